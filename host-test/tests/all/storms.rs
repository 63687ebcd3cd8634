//! Storms (issue 29): many alerts into one channel become one storm
//! message, edited in place at Slack's pace, through `host-test serve` as
//! users run it, against a stand-in that enforces Slack's rules (one
//! message a second per channel with a burst of 3; `chat.update` in tier 3
//! per token). Every alert still ends on its own in `GET /spool`.

use std::path::Path;
use std::time::Duration;

use crate::common::server::{wait_until, write_config, Connection, Server};
use crate::common::web_api_config;
use host_test::mock_slack::{Message, MockSlack};
use serde_json::{json, Value};

/// An event of alert `id` at `level`, in Kapacitor's post-handler JSON.
fn event(id: &str, level: &str) -> String {
    format!(
        r#"{{"id":"{id}","message":"{id} is {level}","time":"2026-12-06T10:00:00Z","duration":60000000000,"level":"{level}","recoverable":true}}"#
    )
}

/// `serve` on the stand-in with `extra` lines in the section, paced at
/// Slack's one message a second per channel; storms close after 2 calm
/// seconds unless `flags` say.
fn serve(slack: &MockSlack, dir: &Path, extra: &str, flags: &[&str]) -> Server {
    let config = write_config(dir, &format!("{}{extra}\n", web_api_config(slack)));
    // Slack's pace, as the stand-in enforces it.
    let mut args = vec!["--channel-interval-ms", "1000"];
    args.extend_from_slice(flags);
    if !flags.contains(&"--storm-calm-secs") {
        args.extend(["--storm-calm-secs", "2"]);
    }
    Server::start(&config, &dir.join("spool"), &args)
}

/// Posts `events` over one keep-alive connection, as Kapacitor does.
fn post_all(server: &Server, events: impl IntoIterator<Item = String>) {
    let mut connection = Connection::open(server.addr()).unwrap();
    for body in events {
        let status = connection.post("", &body).unwrap();
        assert!(status.contains("202"), "{status}");
    }
}

fn finished(server: &Server) -> Vec<Value> {
    server.spool()["finished"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `n` alerts ended and none is pending; every one delivered.
fn wait_ended(server: &Server, n: usize) -> Vec<Value> {
    wait_until(&format!("{n} alerts to end"), || {
        finished(server).len() >= n && server.spool()["pending"] == json!([])
    });
    let done = finished(server);
    assert!(
        done.iter().all(|f| f["status"] == "delivered"),
        "{done:#?}\n{}",
        server.logged()
    );
    done
}

/// The stand-in's storm messages (their text names the storm).
fn storm_messages(slack: &MockSlack) -> Vec<Message> {
    slack
        .messages()
        .into_iter()
        .filter(|m| m.body["text"].as_str().unwrap_or_default().contains("torm"))
        .collect()
}

/// Neither a post nor an edit went past Slack's limits.
fn within_limits(slack: &MockSlack) {
    assert_eq!(slack.rate_limited(), 0, "no post over the channel's pace");
    assert_eq!(slack.updates_limited(), 0, "no edit over tier 3");
}

/// 40 alerts into one channel: a few go as their own messages before the
/// queue builds, the rest are one storm message; every alert ends in
/// `GET /spool`, most `shown in storm`; the recoveries edit that message
/// (no new message), and once the channel is calm it says the storm is
/// over. Nothing went past Slack's limits.
#[test]
fn a_storm_is_one_message_edited_in_place_and_closed_when_calm() {
    let slack = MockSlack::start().unwrap();
    slack.limit_like_slack();
    slack.answer_after(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&slack, dir.path(), "", &[]);
    post_all(
        &server,
        (0..40).map(|i| event(&format!("host{i:02}"), "CRITICAL")),
    );
    let done = wait_ended(&server, 40);
    let in_storm = done
        .iter()
        .filter(|f| f["detail"].as_str().unwrap().starts_with("shown in storm "))
        .count();
    let storms = storm_messages(&slack);
    assert_eq!(
        storms.len(),
        1,
        "one storm message: {:#?}",
        slack.messages()
    );
    let alone = slack.messages().len() - 1;
    assert!(alone <= 8, "{alone} alerts went alone before the storm");
    assert_eq!(in_storm + alone, 40, "{done:#?}");
    let storm = &storms[0];
    let shown = storm.body.to_string();
    assert!(
        shown.contains("host39"),
        "the newest alert is listed: {shown}"
    );
    // The recoveries: the storm's lines change, no message is posted.
    let posted = slack.messages().len();
    post_all(
        &server,
        (0..40).map(|i| event(&format!("host{i:02}"), "OK")),
    );
    wait_ended(&server, 80);
    wait_until("the storm message says it is over", || {
        let storm = &storm_messages(&slack)[0];
        storm.body.to_string().to_lowercase().contains("over")
    });
    assert_eq!(
        slack.messages().len(),
        posted,
        "recoveries edit, never post"
    );
    let storm = &storm_messages(&slack)[0];
    assert!(storm.updates >= 2, "edited in place: {storm:#?}");
    within_limits(&slack);
    let metrics = server.metrics();
    assert!(
        metrics.contains("slack_handler_storm_requests_total{method=\"update\",outcome=\"sent\"}"),
        "{metrics}"
    );
}

/// Three alerts into a quiet channel: three messages, as always.
#[test]
fn a_quiet_channel_keeps_one_message_per_alert() {
    let slack = MockSlack::start().unwrap();
    slack.limit_like_slack();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&slack, dir.path(), "", &[]);
    post_all(&server, (0..3).map(|i| event(&format!("db{i}"), "WARNING")));
    let done = wait_ended(&server, 3);
    assert!(
        done.iter()
            .all(|f| !f["detail"].as_str().unwrap().contains("storm")),
        "{done:#?}"
    );
    assert_eq!(slack.messages().len(), 3);
    assert!(storm_messages(&slack).is_empty());
    within_limits(&slack);
}

/// `storm-after = 0` turns storms off: one message per alert, paced.
#[test]
fn storm_after_zero_keeps_one_message_per_alert() {
    let slack = MockSlack::start().unwrap();
    slack.limit_like_slack();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&slack, dir.path(), "storm-after = 0", &[]);
    post_all(
        &server,
        (0..8).map(|i| event(&format!("web{i}"), "CRITICAL")),
    );
    wait_ended(&server, 8);
    assert_eq!(slack.messages().len(), 8);
    assert!(storm_messages(&slack).is_empty());
    within_limits(&slack);
}

/// serve killed (-9) in a storm, its next alerts still pending: the next
/// start continues the same storm message (its `ts` is in the store),
/// edited, not a second one.
#[test]
fn a_restart_mid_storm_continues_the_same_message() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&slack, dir.path(), "", &["--storm-calm-secs", "600"]);
    post_all(
        &server,
        (0..20).map(|i| event(&format!("rack{i:02}"), "CRITICAL")),
    );
    wait_until("the storm message posted", || {
        storm_messages(&slack).len() == 1 && server.spool()["pending"] == json!([])
    });
    // Slack stops answering: the next alerts wait, pending, when serve dies.
    slack.hold();
    post_all(
        &server,
        (20..30).map(|i| event(&format!("rack{i:02}"), "CRITICAL")),
    );
    server.kill();
    slack.release();
    let server = serve(&slack, dir.path(), "", &["--storm-calm-secs", "600"]);
    wait_until("every alert ended", || {
        finished(&server).len() >= 30 && server.spool()["pending"] == json!([])
    });
    let storms = storm_messages(&slack);
    assert_eq!(
        storms.len(),
        1,
        "one storm message: {:#?}",
        slack.messages()
    );
    let shown = storms[0].body.to_string();
    assert!(
        shown.contains("rack29"),
        "continued with the new alerts: {shown}"
    );
    let in_storm = finished(&server)
        .iter()
        .filter(|f| f["detail"].as_str().unwrap().starts_with("shown in storm "))
        .count();
    assert!(in_storm > 20, "{in_storm}");
    assert!(
        shown.contains(&format!("{in_storm} alerts")),
        "its totals count every alert it showed, before and after the restart ({in_storm}): {shown}"
    );
}

/// The workspace's `chat.update` budget under Slack's `429`: serve told to
/// spend more than the stand-in takes meets a `429` with `Retry-After`,
/// waits it out (no edit inside the window), and every alert still ends.
#[test]
fn an_edit_refused_with_retry_after_waits_it_out() {
    let slack = MockSlack::start().unwrap();
    slack.limit_updates(20, 1);
    slack.answer_after(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        &slack,
        dir.path(),
        "",
        &["--updates-per-minute", "6000", "--storm-calm-secs", "600"],
    );
    post_all(
        &server,
        (0..10).map(|i| event(&format!("a{i}"), "CRITICAL")),
    );
    wait_until("the storm message posted", || {
        storm_messages(&slack).len() == 1
    });
    for round in 0..5 {
        post_all(
            &server,
            (0..3).map(|i| event(&format!("b{round}{i}"), "WARNING")),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_until("every alert ended", || {
        finished(&server).len() >= 25 && server.spool()["pending"] == json!([])
    });
    assert!(slack.updates_limited() >= 1, "the stand-in refused an edit");
    assert_eq!(
        slack.updates_inside_retry_after(),
        0,
        "no edit inside the Retry-After window"
    );
    let shown = storm_messages(&slack)[0].body.to_string();
    assert!(shown.contains("b42"), "the last change is shown: {shown}");
    let metrics = server.metrics();
    assert!(
        metrics
            .contains("slack_handler_storm_requests_total{method=\"update\",outcome=\"retried\"}"),
        "{metrics}"
    );
}

/// With `on-recovery = "update"`, alerts that went alone before their
/// channel stormed keep their own messages: their recoveries during the
/// storm edit those, not a line of the storm (no old news left firing
/// beside it).
#[test]
fn an_alert_with_its_own_message_is_updated_there_during_a_storm() {
    let slack = MockSlack::start().unwrap();
    slack.answer_after(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        &slack,
        dir.path(),
        "on-recovery = \"update\"",
        &["--storm-calm-secs", "600"],
    );
    post_all(
        &server,
        (0..2).map(|i| event(&format!("early{i}"), "CRITICAL")),
    );
    wait_ended(&server, 2);
    assert_eq!(slack.messages().len(), 2);
    let mut events: Vec<String> = (0..12)
        .map(|i| event(&format!("late{i:02}"), "WARNING"))
        .collect();
    events.insert(6, event("early0", "OK"));
    events.push(event("early1", "OK"));
    post_all(&server, events);
    wait_ended(&server, 16);
    let storms = storm_messages(&slack);
    assert_eq!(storms.len(), 1, "{:#?}", slack.messages());
    let storm = storms[0].body.to_string();
    assert!(!storm.contains("early"), "not in the storm: {storm}");
    let early: Vec<Message> = slack
        .messages()
        .into_iter()
        .filter(|m| m.body.to_string().contains("early"))
        .collect();
    assert_eq!(early.len(), 2, "{:#?}", slack.messages());
    for m in &early {
        assert_eq!(m.updates, 1, "its own message updated: {m:#?}");
        assert_eq!(m.body["attachments"][0]["color"], "good", "{m:#?}");
    }
}
