//! Trust on a bad day, on a real PostgreSQL (`TestDb`) with `serve` nodes
//! as child processes: one live process per node name; an ending written
//! after its node's lease ran out (the node frozen with SIGSTOP while its
//! request was at Slack) is fenced off, recorded as the duplicate it is,
//! and never re-points the alert's message; a database outage is a few log
//! lines, not one per failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use host_test::mock_slack::MockSlack;
use serde_json::Value;
use testdb::TestDb;

use crate::common::server::{wait_until, write_config, Server};
use crate::common::web_api_config;

fn node(db: &TestDb, config: &Path, dir: &Path, name: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--node", name];
    args.extend_from_slice(extra);
    Server::start_on_store(config, &db.url(), &dir.join(format!("{name}.log")), &args)
}

fn health(server: &Server) -> Value {
    server
        .request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .1
}

/// A lease short enough for a test to outlive it.
const SHORT_LEASE: [&str; 2] = ["--lease-ms", "600"];

/// A database, the stand-in, and a configuration whose later events
/// update the alert's message: what the late-ending tests share.
fn updating() -> (TestDb, MockSlack, tempfile::TempDir, PathBuf) {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("{}on-recovery = \"update\"\n", web_api_config(&slack)),
    );
    (db, slack, dir, config)
}

/// Waits until `node` recorded a delivery.
fn delivered_by(node: &Server) {
    wait_until("the node's delivery recorded", || {
        node.spool()["finished"]
            .as_array()
            .is_some_and(|f| f.iter().any(|e| e["status"] == "delivered"))
    });
}

/// The `ts` of the one alert message the store keeps.
fn kept_ts(node: &Server) -> String {
    let kept = node.spool()["messages"].clone();
    assert_eq!(kept.as_array().map(Vec::len), Some(1), "{kept}");
    kept[0]["ts"].as_str().unwrap().to_string()
}

/// Sends `signal` (`STOP`, `CONT`) to the node's process.
fn signal(server: &Server, signal: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(server.pid().to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} sent");
}

fn event(id: &str, level: &str, message: &str) -> String {
    serde_json::json!({"id": id, "message": message, "level": level,
        "time": "2026-12-06T04:00:00Z", "duration": 0, "data": {"series": []}})
    .to_string()
}

/// Two processes under one name would both send (claims held under a
/// name count as that name's own): the second is refused at start, naming
/// the name and where the first runs. Names given by default differ, and
/// `/healthz` shows each; a stopped node's name is free again.
#[test]
fn a_name_a_live_node_holds_is_refused_at_start() {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let first = node(&db, &config, dir.path(), "twin", &["--lease-ms", "1500"]);
    assert_eq!(health(&first)["node"], "twin");
    let started = std::time::Instant::now();
    let second = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--store", &db.url()])
        .args(["--node", "twin", "--lease-ms", "1500"])
        .output()
        .unwrap();
    let refused_in = started.elapsed();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second twin is refused: {said}"
    );
    eprintln!(
        "twin name: refused in {} ms (lease 1500 ms): {}",
        refused_in.as_millis(),
        said.lines().last().unwrap_or_default()
    );
    assert!(
        said.contains("`twin`") && said.contains(&first.addr().to_string()),
        "the refusal names the name and where its holder listens: {said}"
    );
    assert!(
        !String::from_utf8_lossy(&second.stdout).contains("listening on"),
        "the refused node never said it was ready"
    );
    // Two nodes started with no name: each its own.
    let log = |n: &str| dir.path().join(format!("{n}.log"));
    let a = Server::start_on_store(&config, &db.url(), &log("a"), &[]);
    let b = Server::start_on_store(&config, &db.url(), &log("b"), &[]);
    let (name_a, name_b) = (health(&a)["node"].clone(), health(&b)["node"].clone());
    assert_ne!(name_a, name_b, "default names are unique per process");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        name_a.as_str().unwrap().starts_with(host.trim()),
        "a default name starts with the host's: {name_a}"
    );
    // Stopped, its name is free (after its lease, at most).
    first.terminate();
    let again = node(&db, &config, dir.path(), "twin", &["--lease-ms", "1500"]);
    assert_eq!(health(&again)["node"], "twin");
}

/// Node `a` sends an alert, and is frozen (SIGSTOP) while Slack holds its
/// request; its lease runs out, node `b` claims the alert and sends it
/// again (Slack now shows it twice), and records its ending. Then `a`
/// wakes up and writes its own ending: fenced off (its claim is no longer
/// the alert's), it is recorded as a duplicate naming both `ts`, and the
/// alert's message stays `b`'s, the one the recovery then updates.
#[test]
fn an_ending_after_the_lease_passed_is_fenced_and_recorded_as_a_duplicate() {
    let (db, slack, dir, config) = updating();
    let a = node(&db, &config, dir.path(), "a", &SHORT_LEASE);
    slack.hold();
    assert_eq!(a.post(&event("disk", "CRITICAL", "disk full")).0, 202);
    wait_until("a's request at Slack", || slack.in_flight() == 1);
    signal(&a, "STOP");
    std::thread::sleep(Duration::from_millis(1_500));
    let b = node(&db, &config, dir.path(), "b", &SHORT_LEASE);
    wait_until("b's request at Slack too", || slack.in_flight() == 2);
    slack.release();
    delivered_by(&b);
    let messages = slack.messages();
    assert_eq!(messages.len(), 2, "Slack shows the alert twice");
    let (a_ts, b_ts) = (messages[0].ts.clone(), messages[1].ts.clone());
    signal(&a, "CONT");
    wait_until("a's late ending recorded as a duplicate", || {
        a.logged().contains("a duplicate in Slack")
    });
    // Logged as it is written; counted once its transaction committed.
    wait_until("counted in /metrics", || {
        a.metrics()
            .contains("slack_handler_duplicate_sends_total 1")
    });
    let logged = a.logged();
    assert!(
        logged.contains(&a_ts) && logged.contains(&b_ts),
        "the duplicate names both ts ({a_ts}, {b_ts}):\n{logged}"
    );
    assert_eq!(kept_ts(&b), b_ts, "the message kept is b's");
    // Listed by `GET /spool` on either node, naming both sends.
    let (status, spool) = b.request("GET /spool HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200, "{spool}");
    assert_eq!(spool["counts"]["duplicates"], 1, "{spool}");
    let listed = &spool["duplicates"]["items"][0];
    assert_eq!(listed["node"], "a", "{listed}");
    assert!(
        listed["late"].as_str().is_some_and(|l| l.contains(&a_ts))
            && listed["kept"].as_str().is_some_and(|k| k.contains(&b_ts)),
        "the late send's ts and the kept one's: {listed}"
    );
    // The recovery updates the message kept, not the orphan.
    assert_eq!(a.post(&event("disk", "OK", "disk fine")).0, 202);
    wait_until("the recovery drawn", || {
        slack.messages().iter().any(|m| m.updates == 1)
    });
    let after = slack.messages();
    assert_eq!(after[1].updates, 1, "b's message shows the recovery");
    assert_eq!(after[0].updates, 0, "a's duplicate is left as it was");
}

/// PostgreSQL stopped for 6 s under two nodes sending: each node's log
/// says the outage when it starts and when it ends (a line every 30 s
/// while it lasts), not a line per failed claim, renewal or ending.
#[test]
fn an_outage_is_a_few_log_lines() {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One message an alert: the 20 posted before the stop may be read
    // only after it, at once, and open a storm on each channel.
    let config = write_config(
        dir.path(),
        &format!("{}storm-after = 0\n", web_api_config(&slack)),
    );
    let a = node(&db, &config, dir.path(), "a", &["--lease-ms", "2000"]);
    for n in 0..20 {
        let (status, _) = a.post_with(
            &format!("channel=%23o{}", n % 4),
            &event(&format!("o{n}"), "CRITICAL", "x"),
        );
        assert_eq!(status, 202);
    }
    wait_until("delivered", || slack.messages().len() == 20);
    let before = a.logged().lines().count();
    slack.hold();
    for n in 20..40 {
        let (status, _) = a.post_with(
            &format!("channel=%23o{}", n % 4),
            &event(&format!("o{n}"), "CRITICAL", "x"),
        );
        assert_eq!(status, 202);
    }
    db.stop_immediately();
    slack.release();
    std::thread::sleep(Duration::from_secs(6));
    db.start_again();
    wait_until("every alert delivered once the database is back", || {
        slack.messages().len() >= 40
    });
    wait_until("the end of the outage said", || {
        a.logged().contains("the store answers again")
    });
    let logged = a.logged();
    let during: Vec<&str> = logged
        .lines()
        .skip(before)
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    eprintln!(
        "a 6 s database outage under a node sending: {} ERROR/WARN lines: {during:#?}",
        during.len()
    );
    assert!(
        during.len() <= 3,
        "an outage of 6 s is a line when it starts (and at most a couple more), not one per failure: {during:#?}"
    );
}

/// Node `a` is killed (SIGKILL) after Slack took its request and before
/// its answer came back (the stand-in answers 2 s late); its lease runs
/// out and `b` sends the alert again: the one duplicate at-least-once
/// allows. The message kept is the last one Slack gave (`b`'s), and the
/// recovery updates it.
#[test]
fn a_node_killed_mid_request_costs_one_duplicate_and_keeps_the_last_message() {
    let (db, slack, dir, config) = updating();
    let a = node(&db, &config, dir.path(), "a", &SHORT_LEASE);
    slack.answer_after(Duration::from_secs(2));
    assert_eq!(a.post(&event("disk", "CRITICAL", "disk full")).0, 202);
    wait_until("a's request taken by Slack", || slack.received() == 1);
    let killed = std::time::Instant::now();
    a.kill();
    slack.answer_after(Duration::ZERO);
    let b = node(&db, &config, dir.path(), "b", &SHORT_LEASE);
    delivered_by(&b);
    let taken_over = killed.elapsed();
    let posts = slack
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("chat.postMessage"))
        .count();
    assert_eq!(posts, 2, "the one duplicate: a's request reached Slack");
    let last = slack.messages().last().unwrap().ts.clone();
    assert_eq!(
        kept_ts(&b),
        last,
        "the message kept is the last one Slack gave"
    );
    assert_eq!(b.post(&event("disk", "OK", "disk fine")).0, 202);
    wait_until("the recovery updates the kept message", || {
        slack
            .messages()
            .iter()
            .any(|m| m.ts == last && m.updates == 1)
    });
    eprintln!(
        "kill -9 mid-request: {posts} posts for 1 alert (1 duplicate), taken over {} ms after the kill (lease 600 ms), kept message = the last Slack gave",
        taken_over.as_millis()
    );
}
