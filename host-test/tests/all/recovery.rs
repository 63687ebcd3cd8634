//! One message per alert (`on-recovery` `update` / `thread`) through
//! `host-test serve` as users run it: the host keeps each alert's message
//! in its spool and passes it back with the alert's next event, and the
//! Slack stand-in keeps the messages, so each test reads what the channel
//! finally shows. Also `send --previous-message`.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::server::{wait_until, write_config, Server};
use crate::common::web_api_config;
use host_test::mock_slack::{Message, MockSlack, Reply};
use serde_json::{json, Value};

/// An event of alert `id` in Kapacitor's post-handler JSON.
fn event(id: &str, level: &str, message: &str) -> String {
    format!(
        r#"{{"id":"{id}","message":"{message}","time":"2026-11-26T10:00:00Z","level":"{level}","recoverable":true}}"#
    )
}

/// The Web API workspace at the stand-in, with `extra` lines in its section.
fn config_with(slack: &MockSlack, extra: &str) -> String {
    format!("{}{extra}\n", web_api_config(slack))
}

/// `serve` with `on-recovery` (and any more lines) in the configuration.
fn serve(slack: &MockSlack, dir: &Path, extra: &str) -> Server {
    let config = write_config(dir, &config_with(slack, extra));
    Server::start(&config, &dir.join("spool"), &[])
}

fn finished(server: &Server) -> Vec<Value> {
    server.spool()["finished"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `n` alerts ended, and checks that all were delivered.
fn wait_delivered(server: &Server, n: usize) -> Vec<Value> {
    wait_until(&format!("{n} alerts to end"), || {
        finished(server).len() == n && server.spool()["pending"] == json!([])
    });
    let done = finished(server);
    assert!(
        done.iter().all(|f| f["status"] == "delivered"),
        "{done:#?}\n{}",
        server.logged()
    );
    done
}

/// The top-level messages, oldest first.
fn parents(slack: &MockSlack) -> Vec<Message> {
    slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.is_none())
        .collect()
}

/// The replies in the thread of `ts`, oldest first.
fn replies(slack: &MockSlack, ts: &str) -> Vec<Message> {
    slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.as_deref() == Some(ts))
        .collect()
}

/// The colour of a message's attachment (Kapacitor's layout: `danger`
/// for CRITICAL, `good` for OK).
fn color(m: &Message) -> &str {
    m.body["attachments"][0]["color"].as_str().unwrap_or("")
}

fn text(m: &Message) -> &str {
    m.body["attachments"][0]["text"].as_str().unwrap_or("")
}

/// The Web API methods the stand-in was asked, in order.
fn methods(slack: &MockSlack) -> Vec<String> {
    slack
        .requests()
        .iter()
        .map(|r| r.path.rsplit('/').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn with_update_an_alert_keeps_one_message_updated_to_its_recovery() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&slack, dir.path(), r#"on-recovery = "update""#);
    assert_eq!(server.post(&event("cpu", "CRITICAL", "firing")).0, 202);
    wait_delivered(&server, 1);
    let kept = server.spool()["messages"].clone();
    assert_eq!(kept.as_array().map(Vec::len), Some(1), "{kept}");
    assert_eq!(kept[0]["channel_id"], "CALERTS");
    for (level, message) in [("CRITICAL", "still firing"), ("OK", "resolved")] {
        assert_eq!(server.post(&event("cpu", level, message)).0, 202);
    }
    wait_delivered(&server, 3);
    let all = slack.messages();
    let [message] = all.as_slice() else {
        panic!("one message: {all:#?}");
    };
    assert_eq!(message.updates, 2, "{message:#?}");
    assert_eq!(color(message), "good", "{message:#?}");
    assert_eq!(text(message), "resolved");
    assert_eq!(
        methods(&slack),
        ["chat.postMessage", "chat.update", "chat.update"]
    );
    // Recovered: the alert's next firing starts a new message.
    assert_eq!(server.spool()["messages"], json!([]));
}

/// Firing, still firing, resolved, as one thread.
fn a_thread(broadcast: bool) {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = if broadcast {
        "on-recovery = \"thread\"\nthread-broadcast = true"
    } else {
        "on-recovery = \"thread\""
    };
    let server = serve(&slack, dir.path(), extra);
    for (level, message) in [
        ("CRITICAL", "firing"),
        ("CRITICAL", "still firing"),
        ("OK", "resolved"),
    ] {
        assert_eq!(server.post(&event("cpu", level, message)).0, 202);
    }
    let done = wait_delivered(&server, 3);
    let top = parents(&slack);
    let [parent] = top.as_slice() else {
        panic!("one parent: {:#?}", slack.messages());
    };
    let thread = replies(&slack, &parent.ts);
    assert_eq!(thread.len(), 2, "{:#?}", slack.messages());
    assert_eq!(
        thread.iter().map(text).collect::<Vec<_>>(),
        ["still firing", "resolved"]
    );
    for reply in &thread {
        assert_eq!(
            reply.body["reply_broadcast"].as_bool().unwrap_or(false),
            broadcast,
            "{reply:#?}"
        );
    }
    assert_eq!(parent.updates, 1, "the recovery updates the parent once");
    assert_eq!(color(parent), "good", "{parent:#?}");
    // Every delivery names the parent: the alert's own message.
    for f in &done {
        assert!(f["detail"].as_str().unwrap().contains(&parent.ts), "{f}");
    }
    assert_eq!(server.spool()["messages"], json!([]));
}

#[test]
fn with_thread_later_events_reply_in_the_first_ones_thread_and_the_recovery_updates_it() {
    a_thread(false);
}

#[test]
fn with_thread_broadcast_the_replies_are_broadcast() {
    a_thread(true);
}

/// Firing delivered, the host killed with SIGKILL, restarted on the same
/// spool, then the recovery: it still finds the alert's message.
fn killed_between_firing_and_recovery(mode: &str) -> MockSlack {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &config_with(&slack, &format!("on-recovery = \"{mode}\"")),
    );
    let spool = dir.path().join("spool");
    let server = Server::start(&config, &spool, &[]);
    assert_eq!(server.post(&event("cpu", "CRITICAL", "firing")).0, 202);
    wait_delivered(&server, 1);
    server.kill(); // SIGKILL: no chance to tidy up

    let server = Server::start(&config, &spool, &[]);
    assert_eq!(server.post(&event("cpu", "OK", "resolved")).0, 202);
    wait_delivered(&server, 2);
    slack
}

#[test]
fn after_a_kill_9_between_firing_and_recovery_the_recovery_updates_the_same_message() {
    let slack = killed_between_firing_and_recovery("update");
    let all = slack.messages();
    let [message] = all.as_slice() else {
        panic!("one message: {all:#?}");
    };
    assert_eq!((message.updates, color(message)), (1, "good"));
}

#[test]
fn after_a_kill_9_between_firing_and_recovery_the_recovery_lands_in_the_same_thread() {
    let slack = killed_between_firing_and_recovery("thread");
    let top = parents(&slack);
    let [parent] = top.as_slice() else {
        panic!("one parent: {:#?}", slack.messages());
    };
    let thread = replies(&slack, &parent.ts);
    assert_eq!(thread.iter().map(text).collect::<Vec<_>>(), ["resolved"]);
    assert_eq!((parent.updates, color(parent)), (1, "good"));
}

#[test]
fn an_update_of_a_deleted_message_posts_a_new_one_which_the_next_event_updates() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&slack, dir.path(), r#"on-recovery = "update""#);
    assert_eq!(server.post(&event("cpu", "CRITICAL", "firing")).0, 202);
    wait_delivered(&server, 1);
    let first = slack.messages()[0].ts.clone();
    assert!(slack.delete_message(&first));

    assert_eq!(
        server.post(&event("cpu", "CRITICAL", "still firing")).0,
        202
    );
    let done = wait_delivered(&server, 2);
    assert!(
        done[1]["detail"]
            .as_str()
            .unwrap()
            .contains("handler_posted_new_message:message_not_found"),
        "{}",
        done[1]
    );
    let second = slack.messages();
    assert_eq!(second.len(), 1, "{second:#?}");
    assert_ne!(second[0].ts, first);
    assert_eq!(second[0].updates, 0);

    assert_eq!(server.post(&event("cpu", "OK", "resolved")).0, 202);
    wait_delivered(&server, 3);
    let all = slack.messages();
    let [message] = all.as_slice() else {
        panic!("one message: {all:#?}");
    };
    assert_eq!(message.ts, second[0].ts, "the new message is the alert's");
    assert_eq!((message.updates, color(message)), (1, "good"));
}

#[test]
fn two_alerts_interleaved_keep_a_message_each() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&slack, dir.path(), r#"on-recovery = "update""#);
    for (level, step) in [
        ("CRITICAL", "firing"),
        ("CRITICAL", "still"),
        ("OK", "resolved"),
    ] {
        for id in ["cpu", "disk"] {
            let body = event(id, level, &format!("{id} {step}"));
            assert_eq!(server.post(&body).0, 202);
        }
    }
    wait_delivered(&server, 6);
    let all = slack.messages();
    assert_eq!(all.len(), 2, "{all:#?}");
    let mut texts: Vec<&str> = all.iter().map(text).collect();
    texts.sort();
    assert_eq!(texts, ["cpu resolved", "disk resolved"]);
    assert!(all.iter().all(|m| m.updates == 2 && color(m) == "good"));
}

#[test]
fn one_alert_id_under_two_handlers_keeps_a_message_per_handler() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&slack, dir.path(), r#"on-recovery = "update""#);
    for (level, step) in [("CRITICAL", "firing"), ("OK", "resolved")] {
        for channel in ["ops", "dev"] {
            let body = event("cpu", level, &format!("{channel} {step}"));
            assert_eq!(
                server.post_with(&format!("channel=%23{channel}"), &body).0,
                202
            );
        }
    }
    wait_delivered(&server, 4);
    let all = slack.messages();
    let mut seen: Vec<(&str, &str, usize)> = all
        .iter()
        .map(|m| (m.channel_id.as_str(), text(m), m.updates))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("CDEV", "dev resolved", 1), ("COPS", "ops resolved", 1)]
    );
}

#[test]
fn a_firing_that_meets_a_503_is_not_overtaken_by_its_recovery() {
    let slack = MockSlack::start().unwrap();
    slack.push_reply(Reply::json(
        503,
        json!({"ok": false, "error": "service_unavailable"}),
    ));
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&slack, dir.path(), r#"on-recovery = "update""#);
    assert_eq!(server.post(&event("cpu", "CRITICAL", "firing")).0, 202);
    assert_eq!(server.post(&event("cpu", "OK", "resolved")).0, 202);
    let done = wait_delivered(&server, 2);
    assert_eq!(done[0]["attempts"], 2, "{done:#?}");
    assert_eq!(
        methods(&slack),
        ["chat.postMessage", "chat.postMessage", "chat.update"]
    );
    let texts: Vec<Value> = slack
        .requests()
        .iter()
        .map(|r| r.json()["attachments"][0]["text"].clone())
        .collect();
    assert_eq!(texts, ["firing", "firing", "resolved"]);
    let all = slack.messages();
    let [message] = all.as_slice() else {
        panic!("one message: {all:#?}");
    };
    assert_eq!((message.updates, color(message)), (1, "good"));
}

fn host_test(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(args)
        .output()
        .expect("host-test runs")
}

#[test]
fn send_previous_message_updates_the_message_a_delivery_printed() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &config_with(&slack, r#"on-recovery = "update""#),
    );
    let config = config.to_str().unwrap();
    let firing = dir.path().join("firing.json");
    std::fs::write(&firing, event("cpu", "CRITICAL", "firing")).unwrap();
    let resolved = dir.path().join("resolved.json");
    std::fs::write(&resolved, event("cpu", "OK", "resolved")).unwrap();

    let o = host_test(&[
        "send",
        "--config",
        config,
        "--alert",
        firing.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The delivery prints the message as the flag takes it.
    let message = out
        .split("(message ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no message in {out}"));
    assert_eq!(message, format!("CALERTS:{}", slack.messages()[0].ts));

    let o = host_test(&[
        "send",
        "--config",
        config,
        "--alert",
        resolved.to_str().unwrap(),
        "--previous-message",
        message,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(methods(&slack), ["chat.postMessage", "chat.update"]);
    let all = slack.messages();
    let [updated] = all.as_slice() else {
        panic!("one message: {all:#?}");
    };
    assert_eq!((updated.updates, color(updated)), (1, "good"));
}

#[test]
fn a_malformed_previous_message_is_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let alert = dir.path().join("a.json");
    std::fs::write(&alert, event("cpu", "OK", "resolved")).unwrap();
    let config = write_config(
        dir.path(),
        "[slack]\nenabled = true\nurl = \"http://127.0.0.1:9/x\"\n",
    );
    for bad in [
        "C0123",
        "C0123:",
        ":1700000000.000001",
        "#alerts:1700000000.000001",
        "C0123:soon",
    ] {
        let o = host_test(&[
            "send",
            "--config",
            config.to_str().unwrap(),
            "--alert",
            alert.to_str().unwrap(),
            "--previous-message",
            bad,
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--previous-message"), "{bad}: {err}");
        assert!(err.contains("CHANNEL_ID:TS"), "{bad}: {err}");
    }
}
