//! Clicks on alerts' buttons through `host-test serve` (journal, fsync on):
//! how long Slack waits for the answer to a signed `POST
//! /slack/interactions` (it allows 3 seconds), and how long until the
//! clicked message is redrawn (`chat.update` at the stand-in), beside the
//! floor in the same run: a plain alert `POST /` to the same serve (one
//! durable write, no component call).
//!
//! Each round: an alert per channel (`CLICKS_CHANNELS`, default 50) is
//! posted and delivered; then each message is acknowledged, one click at a
//! time, and the answer and the redraw timed; then silenced. Three rounds,
//! medians and 99th percentiles.
//!
//! Run: `cargo bench -p host-test --bench clicks`.

// A bench uses part of the tests' serve helper.
#[allow(dead_code)]
#[path = "../tests/all/common/server.rs"]
mod server;

use std::time::{Duration, Instant};

use host_test::mock_slack::{Message, MockSlack};
use host_test::slack_clicks::{block_actions, buttons_config, form, now, request};
use server::{write_config, Server};

const SECRET: &str = "bench-signing-secret";

fn value(m: &Message) -> String {
    m.body["attachments"][0]["blocks"]
        .as_array()
        .and_then(|b| b.last())
        .and_then(|b| b["elements"][0]["value"].as_str())
        .expect("a button")
        .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let channels: usize = std::env::var("CLICKS_CHANNELS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &buttons_config(&slack.url(), SECRET));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    let (mut posts, mut answers, mut redraws) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let before = slack.messages().len();
        for c in 0..channels {
            let alert = format!(
                r#"{{"id":"r{round}-c{c}","message":"cpu high","time":"2026-11-30T10:00:00Z","level":"CRITICAL"}}"#
            );
            let started = Instant::now();
            let (code, _) = server.request(&format!(
                "POST /?channel=%23ch{c} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{alert}",
                alert.len()
            ));
            posts.push(started.elapsed());
            assert_eq!(code, 202);
        }
        server::wait_until("every alert posted", || {
            slack.messages().len() == before + channels
        });
        let messages: Vec<Message> = slack.messages()[before..].to_vec();
        for (i, action) in ["acknowledge", "silence:1h"].iter().enumerate() {
            for m in &messages {
                let payload = block_actions(action, &value(m), "U1", &m.channel_id, &m.ts, "");
                let raw = request(
                    "/slack/interactions",
                    &form(&payload),
                    Some((SECRET, now())),
                );
                let started = Instant::now();
                let (code, _) = server.request(&raw);
                answers.push(started.elapsed());
                assert_eq!(code, 200);
                let ts = m.ts.clone();
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let done = slack.messages().iter().any(|x| x.ts == ts && x.updates > i);
                    if done {
                        break;
                    }
                    assert!(Instant::now() < deadline, "no redraw");
                    std::thread::sleep(Duration::from_micros(200));
                }
                redraws.push(started.elapsed());
            }
        }
    }
    for list in [&mut posts, &mut answers, &mut redraws] {
        list.sort();
    }
    println!(
        "clicks through serve (journal, fsync on), {channels} channels x 3 rounds, one at a time:"
    );
    println!("| | median | p99 |\n|---|---|---|");
    for (what, list) in [
        (
            "alert POST / answered 202 (the floor: one durable write)",
            &posts,
        ),
        (
            "click answered 200 (verified in the component, recorded durably)",
            &answers,
        ),
        ("click to its chat.update at the stand-in", &redraws),
    ] {
        println!(
            "| {what} | {} | {} |",
            ms(percentile(list, 0.5)),
            ms(percentile(list, 0.99))
        );
    }
}
