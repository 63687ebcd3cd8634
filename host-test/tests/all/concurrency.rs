//! Concurrency follows the channels, not the threads: `serve` keeps a
//! request out for every channel that may send, each a task with its own
//! instance, on a number of threads that does not grow with them.

use std::collections::HashMap;

use host_test::mock_slack::MockSlack;

use crate::common::server::{alert, wait_until, write_config, Server};

fn config(slack: &MockSlack) -> String {
    format!(
        "[[slack]]\nenabled = true\ndefault = true\nurl = \"{}/api/chat.postMessage\"\ntoken = \"xoxb-test\"\nchannel = \"#fallback\"\n",
        slack.url()
    )
}

fn post_to_channels(server: &Server, channels: std::ops::Range<usize>, round: usize) {
    for c in channels {
        let (status, answer) = server.post_with(
            &format!("channel=%23c{c}"),
            &alert(&format!("a{c}-{round}")),
        );
        assert_eq!(status, 202, "{answer}");
    }
}

#[test]
fn every_channel_has_its_request_out_on_threads_that_do_not_grow_with_them() {
    let slack = MockSlack::start().unwrap();
    // Every request waits, unanswered, until released: what is out stays out.
    slack.hold();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);

    post_to_channels(&server, 0..10, 0);
    wait_until("10 requests out", || slack.in_flight() == 10);
    let threads_at_10 = server.threads().unwrap();

    post_to_channels(&server, 10..300, 0);
    wait_until("300 requests out", || slack.in_flight() == 300);
    let threads_at_300 = server.threads().unwrap();
    // A second alert to each channel waits its turn: one request out per
    // channel (checked over the whole run below: never more than 300 out).
    post_to_channels(&server, 0..300, 1);
    assert!(
        threads_at_300 <= threads_at_10,
        "threads grew with the channels: {threads_at_10} with 10 requests out, {threads_at_300} with 300"
    );
    assert!(threads_at_300 < 32, "{threads_at_300} threads");

    slack.release();
    wait_until("every alert delivered", || {
        server.spool()["finished"].as_array().map_or(0, Vec::len) == 600
    });
    assert_eq!(
        slack.max_in_flight(),
        300,
        "one request out per channel, the second alerts held back while the first were out"
    );
    // Each channel got its two alerts in the order they were accepted.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for request in slack.requests() {
        let body = request.json();
        seen.entry(body["channel"].as_str().unwrap().to_string())
            .or_default()
            .push(body["attachments"][0]["text"].to_string());
    }
    assert_eq!(seen.len(), 300);
    for (channel, texts) in &seen {
        let c = channel.trim_start_matches("#c");
        assert_eq!(texts.len(), 2, "{channel}: {texts:?}");
        assert!(
            texts[0].contains(&format!("a{c}-0")) && texts[1].contains(&format!("a{c}-1")),
            "{channel}: {texts:?}"
        );
    }
}
