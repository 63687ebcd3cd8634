//! `host-test serve`: alerts posted over HTTP are on disk before the answer,
//! delivered from the spool, and still delivered after the host is killed
//! and restarted, each exactly once.

use std::process::Command;
use std::time::Duration;

use crate::common::server::{alert, wait_until, write_config, Server};
use crate::common::web_api_config;
use host_test::mock_slack::MockSlack;
use serde_json::Value;

#[test]
fn posted_alerts_are_spooled_and_delivered() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    for id in ["a", "b", "c"] {
        let (status, answer) = server.post(&alert(id));
        assert_eq!(status, 202, "{answer}");
    }
    wait_until("three deliveries", || slack.requests().len() == 3);
    wait_until("an empty queue", || {
        server.spool()["finished"].as_array().map(Vec::len) == Some(3)
    });
    let spool = server.spool();
    assert_eq!(spool["pending"], serde_json::json!([]));
    assert!(spool["finished"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["status"] == "delivered"));
    let texts: Vec<_> = slack
        .requests()
        .iter()
        .map(|r| r.json()["attachments"][0]["text"].clone())
        .collect();
    assert_eq!(texts, ["alert a", "alert b", "alert c"]);
}

#[test]
fn serve_takes_the_slack_plugin_from_a_plugin_directory() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(host_test::COMPONENT_PATH, plugins.join("slack.wasm")).unwrap();
    std::fs::write(plugins.join("slack.toml"), web_api_config(&slack)).unwrap();
    // Not a component at all: named, and the slack plugin still serves.
    std::fs::write(plugins.join("broken.wasm"), b"not wasm").unwrap();
    std::fs::write(plugins.join("broken.toml"), "").unwrap();
    // The operator allows the plugin to reach the stand-in, nothing else.
    std::fs::write(
        plugins.join("slack.egress.toml"),
        format!("allow = [\"{}\"]\n", slack.url()),
    )
    .unwrap();
    let server = Server::start_with(
        &["--plugins", plugins.to_str().unwrap()],
        &dir.path().join("spool"),
        &[],
    );
    assert_eq!(server.post(&alert("p")).0, 202);
    wait_until("the delivery", || slack.requests().len() == 1);
    // A plugin that did not load is named by /healthz; the others serve.
    let (status, health) =
        server.request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let broken = health["broken"][0].as_str().unwrap_or_default();
    assert!(
        broken.contains("plugin ") && broken.contains("broken.wasm"),
        "{health}"
    );
    assert_eq!(
        slack.requests()[0].json()["attachments"][0]["text"],
        "alert p"
    );
}

#[test]
fn bad_alerts_are_refused_with_a_named_error_and_options_come_from_the_query() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    let (status, answer) =
        server.post(r#"{"id":"x","message":"m","time":"2026-11-26T10:00:00Z","level":"LOUD"}"#);
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown level \"LOUD\""),
        "{answer}"
    );
    let body = alert("q");
    let (status, _) = server.request(&format!(
        "POST /?channel=%23other HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(status, 202);
    wait_until("the delivery", || slack.requests().len() == 1);
    assert_eq!(slack.requests()[0].json()["channel"], "#other");
}

#[test]
fn a_killed_host_delivers_what_was_pending_after_restart_exactly_once() {
    // A port where Slack is not yet listening: every attempt is refused.
    let port = crate::common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &format!("[slack]\nenabled = true\nurl = \"http://127.0.0.1:{port}/api/chat.postMessage\"\ntoken = \"xoxb-t\"\nchannel = \"#c\"\n"));
    let spool = dir.path().join("spool");
    let server = Server::start(&config, &spool, &[]);
    for id in ["one", "two"] {
        assert_eq!(server.post(&alert(id)).0, 202);
    }
    server.kill();

    let shown = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(["spool", "--dir", spool.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["pending"], serde_json::json!([1, 2]));

    let slack = MockSlack::start_on(port).unwrap();
    let server = Server::start(&config, &spool, &[]);
    wait_until("both deliveries", || slack.requests().len() == 2);
    wait_until("the spool to record them", || {
        server.spool()["pending"] == serde_json::json!([])
    });
    // Both recorded and nothing pending: nothing left to deliver again.
    assert_eq!(slack.requests().len(), 2, "nothing delivered twice");
}

#[test]
fn a_full_spool_says_so() {
    let port = crate::common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("[slack]\nenabled = true\nurl = \"http://127.0.0.1:{port}/x\"\n"),
    );
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--spool-max-kib", "1"],
    );
    let mut statuses = Vec::new();
    for n in 0..20 {
        let (status, answer) = server.post(&alert(&format!("{n:0>40}")));
        statuses.push(status);
        if status == 503 {
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap()
                    .contains("the journal is full"),
                "{answer}"
            );
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 202).count() >= 2);
}

#[test]
fn a_storm_to_one_channel_is_paced_and_each_alert_delivered_once() {
    // Slack's limit scaled down: one message per 5 ms per channel, a 429
    // with Retry-After: 1 for anything sooner.
    let slack = MockSlack::start().unwrap();
    slack.limit_channels(Duration::from_millis(5), Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    // One message per alert, as before storms (storms.rs has those).
    let config = write_config(
        dir.path(),
        &format!("{}storm-after = 0\n", web_api_config(&slack)),
    );
    // A burst of 3 makes the stand-in answer 429 at least once.
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--channel-interval-ms", "10", "--channel-burst", "3"],
    );
    for n in 0..1000 {
        assert_eq!(server.post(&alert(&format!("storm-{n:04}"))).0, 202);
    }
    wait_until("a thousand deliveries", || {
        server.spool()["finished"].as_array().map(Vec::len) == Some(1000)
    });
    let accepted: Vec<String> = slack
        .requests()
        .iter()
        .filter_map(|r| {
            r.json()["attachments"][0]["text"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let mut unique = accepted.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1000, "every alert arrived");
    assert_eq!(
        accepted.len(),
        1000 + slack.rate_limited(),
        "each delivered once, plus the refused tries"
    );
    assert!(slack.rate_limited() >= 1, "the burst met the rate limit");
    assert_eq!(
        slack.inside_retry_after(),
        0,
        "no request inside a Retry-After window"
    );
}

#[test]
fn a_soak_with_one_request_in_five_failing_loses_and_repeats_nothing() {
    let slack = MockSlack::start().unwrap();
    slack.fail_every(5);
    let dir = tempfile::tempdir().unwrap();
    // Each alert its own request, counted (no storm message).
    let config = write_config(
        dir.path(),
        &format!("{}storm-after = 0\n", web_api_config(&slack)),
    );
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--channel-interval-ms", "1", "--channel-burst", "50"],
    );
    const ALERTS: usize = 10_000;
    for n in 0..ALERTS {
        let body = alert(&format!("soak-{n:05}"));
        let (status, _) = server.request(&format!(
            "POST /?channel=%23c{} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            n % 100,
            body.len()
        ));
        assert_eq!(status, 202);
    }
    wait_until("every alert to end", || {
        server.spool()["finished"].as_array().map(Vec::len) == Some(ALERTS)
    });
    let delivered: Vec<String> = slack
        .requests()
        .iter()
        .zip(1..)
        .filter(|(_, seq): &(_, usize)| !seq.is_multiple_of(5))
        .filter_map(|(r, _)| {
            r.json()["attachments"][0]["text"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ALERTS, "nothing lost");
    assert_eq!(delivered.len(), ALERTS, "nothing delivered twice");
    let finished = server.spool()["finished"].as_array().unwrap().clone();
    assert!(finished.iter().all(|f| f["status"] == "delivered"));
}

#[test]
fn a_retry_after_from_one_webhook_blocks_that_webhook_only() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two webhooks, each bound to its channel: their URLs differ only in
    // the secret path, which a preview redacts; each is its own pace.
    let config = format!(
        "[[slack]]\nenabled = true\ndefault = true\nworkspace = \"a\"\nurl = \"{0}/services/T0/BA/AAAA\"\n\n\
         [[slack]]\nenabled = true\nworkspace = \"b\"\nurl = \"{0}/services/T0/BB/BBBB\"\n",
        slack.url()
    );
    let config = write_config(dir.path(), &config);
    slack.push_reply(
        host_test::mock_slack::Reply::text(429, "rate_limited").with_header("retry-after", "2"),
    );
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    assert_eq!(server.post_with("workspace=a", &alert("a1")).0, 202);
    wait_until("the 429", || slack.received() == 1);
    assert_eq!(server.post_with("workspace=b", &alert("b1")).0, 202);
    wait_until("both delivered", || {
        server.spool()["finished"].as_array().map(Vec::len) == Some(2)
    });
    let requests = slack.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/services/T0/BA/AAAA",
            "/services/T0/BB/BBBB",
            "/services/T0/BA/AAAA"
        ]
    );
    // b did not wait out a's Retry-After (it went before a's retry, the
    // order above); a did.
    assert!(requests[2].at - requests[0].at >= Duration::from_secs(2));
}
