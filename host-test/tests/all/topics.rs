//! The documentation's pipeline through `host-test serve --handlers`: a
//! TICKscript publishes 500 errors to `500-errors` (here: alerts posted with
//! `?topic=500-errors`), the aggregate handler `500_errors_24h.yaml` counts
//! them for 24 hours and publishes one event to `500-errors-24h`, and the
//! Slack handler `slack_500_errors_daily.yaml` posts it to the
//! `error-reports` workspace. The files are the examples', unchanged; time
//! runs 3,600 times faster (24 h in 24 s: room for a slow machine to post
//! every alert inside one interval).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::server::{wait_until, Server};
use host_test::mock_slack::MockSlack;

pub(crate) fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// An alert from the documentation's `500_errors.tick`.
pub(crate) fn error_alert(n: usize) -> String {
    format!(
        r#"{{"id":"errors:500=true","message":"500 errors: {n}","details":"","time":"2026-11-26T10:{:02}:00Z","duration":0,"level":"INFO","data":{{"series":[{{"name":"errors","tags":{{"500":"true"}},"columns":["time","count"],"values":[["2026-11-26T10:{:02}:00Z",{n}]]}}]}},"previousLevel":"OK","recoverable":false}}"#,
        n % 60,
        n % 60
    )
}

fn start(slack: &MockSlack, spool: &Path) -> Server {
    start_scaled(slack, spool, "3600")
}

fn start_scaled(slack: &MockSlack, spool: &Path, scale: &str) -> Server {
    let route = format!("https://slack.com={}", slack.url());
    Server::start(
        &examples().join("kapacitor.conf"),
        spool,
        &[
            "--handlers",
            examples().to_str().unwrap(),
            "--time-scale",
            scale,
            "--connect-to",
            &route,
        ],
    )
}

fn post(server: &Server, n: usize) {
    let (status, answer) = server.post_with("topic=500-errors", &error_alert(n));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["collected"], serde_json::json!(["500-errors-24h"]));
    assert_eq!(answer["ids"], serde_json::json!([]));
}

/// The one message the pipeline posts, once it has.
fn the_daily_message(server: &Server, slack: &MockSlack) -> serde_json::Value {
    wait_until("the aggregated message", || slack.requests().len() == 1);
    // And no second one: the next interval has no events, and nothing
    // else was emitted into the store to send.
    wait_until("its ending recorded", || {
        server.spool()["pending"] == serde_json::json!([])
    });
    assert_eq!(slack.requests().len(), 1);
    slack.requests()[0].json()
}

#[test]
fn forty_two_errors_become_one_message_in_error_reports_when_the_interval_ends() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&slack, &dir.path().join("spool"));
    for n in 0..42 {
        post(&server, n);
    }
    // The interval (24 s here) has not ended: nothing emitted into the
    // store yet, so nothing can have been sent.
    assert_eq!(server.spool()["pending"], serde_json::json!([]));
    assert!(
        slack.requests().is_empty(),
        "sent before the interval ended"
    );
    let body = the_daily_message(&server, &slack);
    // Kapacitor's body, to the error-reports workspace's channel and name.
    assert_eq!(body["channel"], "#error-reports");
    assert_eq!(body["username"], "StatsBot");
    assert_eq!(
        body["attachments"][0]["text"],
        "42 500 errors last 24 hours."
    );
    assert_eq!(body["attachments"][0]["color"], "good", "INFO is good");
    let request = &slack.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some("Bearer mY5uP3Rs3CrE7t0keN2"),
        "the error-reports workspace's token"
    );
}

#[test]
fn a_restart_mid_interval_loses_no_count() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let server = start(&slack, &spool);
    for n in 0..20 {
        post(&server, n);
    }
    server.kill();
    let server = start(&slack, &spool);
    for n in 20..42 {
        post(&server, n);
    }
    let body = the_daily_message(&server, &slack);
    assert_eq!(
        body["attachments"][0]["text"],
        "42 500 errors last 24 hours."
    );
    drop(server);
}

#[test]
fn a_topic_needs_handlers_and_a_topic_nobody_handles_is_said() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&slack, &dir.path().join("spool"));
    let (status, answer) = server.post_with("topic=nobody", &error_alert(1));
    assert_eq!(status, 202);
    assert_eq!(answer["note"], "no handler of topic `nobody` took it");
    // A slack handler of the examples: delivered at once, by its options.
    let (status, answer) = server.post_with(
        "topic=cpu",
        &std::fs::read_to_string(examples().join("alerts/cpu-critical.json")).unwrap(),
    );
    assert_eq!(status, 202, "{answer}");
    assert!(!answer["ids"].as_array().unwrap().is_empty(), "{answer}");
    wait_until("the cpu handlers' deliveries", || {
        slack.requests().len() == answer["ids"].as_array().unwrap().len()
    });

    let without = tempfile::tempdir().unwrap();
    let config =
        crate::common::server::write_config(without.path(), &crate::common::web_api_config(&slack));
    let plain = Server::start(&config, &without.path().join("spool"), &[]);
    let (status, answer) = plain.post_with("topic=cpu", &error_alert(1));
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("--handlers"),
        "{answer}"
    );
}

#[test]
fn an_interval_that_ends_while_serve_is_down_is_delivered_when_it_comes_back() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // A day in six seconds.
    let server = start_scaled(&slack, &spool, "14400");
    for n in 0..5 {
        post(&server, n);
    }
    server.kill();
    std::thread::sleep(Duration::from_millis(6_500));
    assert!(slack.requests().is_empty());
    let server = start_scaled(&slack, &spool, "14400");
    let body = the_daily_message(&server, &slack);
    assert_eq!(
        body["attachments"][0]["text"],
        "5 500 errors last 24 hours."
    );
    drop(server);
}
