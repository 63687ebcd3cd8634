//! Acknowledge and silence from Slack, through `serve` (a child process)
//! against the Slack stand-in: buttons on the message, the signed Request
//! URL (`POST /slack/interactions`), what each click does to the message
//! and to the alert's later events, across a `kill -9`.

use host_test::mock_slack::{Message, MockSlack};
use host_test::slack_clicks::{block_actions, form, now, request};
use serde_json::{json, Value};

use crate::common::server::{wait_until, write_config, Server};
use crate::common::web_api_config;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn config(slack: &MockSlack) -> String {
    format!(
        "{}layout = \"blocks\"\nactions = \"acknowledge,silence\"\nsilence-durations = \"1h,3s\"\nsigning-secret = \"{SECRET}\"\n",
        web_api_config(slack)
    )
}

fn firing(message: &str) -> String {
    json!({"id": "cpu", "message": message, "time": "2026-11-30T10:00:00Z", "level": "CRITICAL"})
        .to_string()
}

fn recovered() -> String {
    json!({"id": "cpu", "message": "cpu fine", "time": "2026-11-30T10:05:00Z", "level": "OK"})
        .to_string()
}

/// The buttons of a message: (label, action_id, value).
fn buttons(m: &Message) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for attachment in m.body["attachments"].as_array().into_iter().flatten() {
        for block in attachment["blocks"].as_array().into_iter().flatten() {
            if block["type"] != "actions" {
                continue;
            }
            for e in block["elements"].as_array().unwrap() {
                out.push((
                    e["text"]["text"].as_str().unwrap().to_string(),
                    e["action_id"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

fn labels(m: &Message) -> Vec<String> {
    buttons(m).into_iter().map(|(l, _, _)| l).collect()
}

/// Clicks `action_id` on message `m` as user `user`, signed now.
fn click(server: &Server, slack: &MockSlack, m: &Message, action_id: &str, user: &str) -> u16 {
    server.request(&signed_click(slack, m, action_id, user)).0
}

/// The whole request Slack makes when `user` clicks `action_id` on
/// message `m`, signed now: each call a new click (its own trigger id),
/// the same text a captured click replayed.
fn signed_click(slack: &MockSlack, m: &Message, action_id: &str, user: &str) -> String {
    let value = buttons(m)
        .into_iter()
        .map(|(_, _, v)| v)
        .next()
        .expect("the message has buttons");
    let payload = block_actions(
        action_id,
        &value,
        user,
        &m.channel_id,
        &m.ts,
        &format!("{}/actions/T0001/1/response", slack.url()),
    );
    request(
        "/slack/interactions",
        &form(&payload),
        Some((SECRET, now())),
    )
}

fn statuses(server: &Server) -> Vec<String> {
    server.spool()["finished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap().to_string())
        .collect()
}

fn count(server: &Server, status: &str) -> usize {
    statuses(server).iter().filter(|s| *s == status).count()
}

fn post(server: &Server, alert: &str) {
    let (code, answer) = server.post(alert);
    assert_eq!(code, 202, "{answer}");
}

/// Waits until the stand-in holds `n` messages and the store has recorded
/// the last one as its alert's (a click is answered "no longer known"
/// before then: posted is not yet recorded).
fn recorded(server: &Server, slack: &MockSlack, n: usize) {
    wait_until(&format!("{n} message(s) posted and recorded"), || {
        let messages = slack.messages();
        messages.len() == n && {
            let ts = messages[n - 1].ts.as_str();
            server.spool()["messages"]
                .as_array()
                .is_some_and(|kept| kept.iter().any(|m| m["ts"] == ts))
        }
    });
}

/// Nothing is left to send: a click that acts records its redraw before
/// it is answered, so once answered, nothing pending means no redraw can
/// come later (an event, not a sleep, says nothing happened).
fn nothing_recorded(server: &Server) {
    assert_eq!(
        server.spool()["pending"],
        json!([]),
        "nothing recorded to be sent"
    );
}

fn the_only_message(slack: &MockSlack) -> Message {
    let all = slack.messages();
    assert_eq!(all.len(), 1, "{all:#?}");
    all[0].clone()
}

#[test]
fn only_a_valid_signature_changes_anything() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    post(&server, &firing("cpu high"));
    recorded(&server, &slack, 1);
    let m = the_only_message(&slack);
    assert_eq!(labels(&m), ["Acknowledge", "Silence 1h", "Silence 3s"]);
    let value = &buttons(&m)[0].2;
    assert!(value.contains("cpu") && !value.contains(SECRET), "{value}");
    let payload = block_actions("acknowledge", value, "U1", &m.channel_id, &m.ts, "");
    let body = form(&payload);
    let path = "/slack/interactions";
    let refused = [
        (
            "wrong secret",
            request(path, &body, Some(("another-secret", now()))),
        ),
        (
            "stale: 5 min 1 s",
            request(path, &body, Some((SECRET, now() - 301))),
        ),
        ("missing headers", request(path, &body, None)),
        ("garbage", request(path, "hello", None)),
    ];
    for (what, raw) in refused {
        assert_eq!(server.request(&raw).0, 401, "{what}");
    }
    // The right signature over another body.
    let signed = request(path, &body, Some((SECRET, now())));
    let tampered = signed.replace("U1", "U9");
    assert_eq!(server.request(&tampered).0, 401, "wrong body");
    // Signed but not a click: 200, nothing changes.
    let view = form(&json!({"type": "view_submission"}));
    assert_eq!(
        server
            .request(&request(path, &view, Some((SECRET, now()))))
            .0,
        200
    );
    // Larger than any click (--max-click-kib, 16 MiB): 413, refused from
    // its declared length.
    let big = request(path, "x", Some((SECRET, now())))
        .replace("Content-Length: 1", "Content-Length: 17000000");
    assert_eq!(server.request(&big).0, 413);
    nothing_recorded(&server);
    assert_eq!(the_only_message(&slack).updates, 0, "nothing changed");
    let metrics = server.metrics();
    assert!(
        metrics.contains("slack_handler_interactions_total{outcome=\"refused\"} 6"),
        "{metrics}"
    );
    // The valid one.
    assert_eq!(server.request(&signed).0, 200);
    wait_until("the acknowledgement shown", || {
        the_only_message(&slack).updates == 1
    });
    let logged = server.logged();
    assert!(
        !logged.contains(SECRET),
        "the signing secret is never logged"
    );
}

/// The Request URL needs no token, so anyone can post to it: what cannot
/// be a click Slack signed is refused on its head, before its body is read
/// and before an instance is taken, counted by reason, and logged at most
/// once per 10 s; verifications in flight are bounded (429 past them).
#[test]
fn unsigned_requests_are_refused_on_their_head_counted_and_quiet() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(&slack));
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--max-verifications", "1", "--read-timeout-secs", "120"],
    );
    post(&server, &firing("cpu high"));
    recorded(&server, &slack, 1);
    let m = the_only_message(&slack);
    let path = "/slack/interactions";
    let head = |extra: &str, length: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n{extra}Content-Length: {length}\r\nConnection: close\r\n\r\n"
        )
    };
    let forged = |at: i64| {
        format!(
            "X-Slack-Request-Timestamp: {at}\r\nX-Slack-Signature: v0={}\r\n",
            "ab".repeat(32)
        )
    };
    // Heads alone, their bodies never sent: each is answered at once
    // (were the body awaited, --read-timeout-secs would end it in 408).
    for (what, raw, status) in [
        ("1 MiB, unsigned", head("", 1 << 20), 401),
        ("1 MiB, stale", head(&forged(now() - 301), 1 << 20), 401),
        ("larger than any click", head(&forged(now()), 17 << 20), 413),
    ] {
        assert_eq!(server.exchange(&raw).status, status, "{what}");
    }
    // 500 unsigned requests with bodies.
    let body = form(&json!({"type": "block_actions", "padding": "x".repeat(4096)}));
    for _ in 0..500 {
        assert_eq!(server.request(&request(path, &body, None)).0, 401);
    }
    let metrics = server.metrics();
    for line in [
        "slack_handler_interactions_refused_total{reason=\"unsigned\"} 501",
        "slack_handler_interactions_refused_total{reason=\"stale\"} 1",
        "slack_handler_interactions_refused_total{reason=\"too-large\"} 1",
        "slack_handler_interactions_total{outcome=\"refused\"} 503",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(
        !metrics.contains("reason=\"unverified\""),
        "none reached the component: {metrics}"
    );
    let logged = server.logged();
    let lines = logged
        .lines()
        .filter(|l| l.contains("/slack/interactions"))
        .count();
    assert!(lines <= 2, "{lines} log lines for 503 refusals:\n{logged}");

    // One verification in flight (--max-verifications 1): a signed head
    // whose body has not come holds it; another is answered 429 at once.
    let mut held = std::net::TcpStream::connect(server.addr()).unwrap();
    std::io::Write::write_all(&mut held, head(&forged(now()), 100).as_bytes()).unwrap();
    let wrong = request(path, &body, Some(("another-secret", now())));
    let busy = std::cell::RefCell::new(None);
    wait_until("a verification refused while the slot is held", || {
        let answer = server.exchange(&wrong);
        let refused = answer.status == 429;
        if refused {
            *busy.borrow_mut() = answer.header("retry-after").map(str::to_string);
        }
        refused
    });
    assert_eq!(
        busy.into_inner().as_deref(),
        Some("1"),
        "429 says when to try again"
    );
    drop(held);
    // The slot back, a click Slack signed is taken as before (a 429
    // meanwhile changes nothing).
    wait_until("the click taken", || {
        click(&server, &slack, &m, "acknowledge", "U1") == 200
    });
    wait_until("the acknowledgement shown", || {
        the_only_message(&slack).updates == 1
    });
    assert!(server
        .metrics()
        .contains("slack_handler_interactions_refused_total{reason=\"busy\"}"));
}

#[test]
fn acknowledge_then_silence_then_unsilence_across_a_kill() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(&slack));
    let spool = dir.path().join("spool");
    let server = Server::start(&config, &spool, &[]);
    post(&server, &firing("cpu high"));
    recorded(&server, &slack, 1);
    let m = the_only_message(&slack);

    // Acknowledge: one chat.update of the clicked message, saying who and
    // when, without the Acknowledge button.
    assert_eq!(click(&server, &slack, &m, "acknowledge", "U1"), 200);
    wait_until("the acknowledgement shown", || {
        the_only_message(&slack).updates == 1
    });
    let acked = the_only_message(&slack);
    let text = acked.body.to_string();
    assert!(text.contains("Acknowledged by <@U1>"), "{text}");
    assert!(text.contains("<!date^"), "{text}");
    assert_eq!(labels(&acked), ["Silence 1h", "Silence 3s"]);
    let updates: Vec<Value> = slack
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat.update"))
        .map(|r| r.json())
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["channel"], m.channel_id.as_str());
    assert_eq!(updates[0]["ts"], m.ts.as_str());
    assert!(server
        .metrics()
        .contains("slack_handler_interactions_total{outcome=\"acknowledge\"} 1"));

    // A later event still shows the acknowledgement.
    post(&server, &firing("cpu higher"));
    recorded(&server, &slack, 2);
    let second = slack.messages()[1].clone();
    assert!(second.body.to_string().contains("Acknowledged by <@U1>"));

    // Silence 1h: the message says so and offers Unsilence; the next two
    // firings are recorded as silenced and nothing is posted.
    assert_eq!(click(&server, &slack, &second, "silence:1h", "U2"), 200);
    wait_until("the silence shown", || slack.messages()[1].updates == 1);
    let silenced = slack.messages()[1].clone();
    assert!(silenced
        .body
        .to_string()
        .contains("Silenced by <@U2> until"));
    assert_eq!(labels(&silenced), ["Unsilence"]);
    post(&server, &firing("cpu highest"));
    post(&server, &firing("cpu still high"));
    wait_until("two silenced", || count(&server, "silenced") == 2);
    assert_eq!(slack.messages().len(), 2, "nothing posted while silenced");
    assert!(server
        .metrics()
        .contains("slack_handler_alerts_silenced_total 2"));
    assert!(server.logged().contains("silenced, not sent"));

    // kill -9 and start again: still silenced.
    server.kill();
    let server = Server::start(&config, &spool, &[]);
    post(&server, &firing("cpu after restart"));
    wait_until("silenced after the restart", || {
        count(&server, "silenced") == 3
    });
    assert_eq!(slack.messages().len(), 2);

    // Unsilence: the message gets its Silence buttons back; the next
    // firing is posted.
    assert_eq!(click(&server, &slack, &silenced, "unsilence", "U2"), 200);
    wait_until("the unsilence shown", || slack.messages()[1].updates == 2);
    assert_eq!(labels(&slack.messages()[1]), ["Silence 1h", "Silence 3s"]);
    post(&server, &firing("cpu posted again"));
    recorded(&server, &slack, 3);

    // A silence that runs out by itself: 3 s.
    let third = slack.messages()[2].clone();
    assert_eq!(click(&server, &slack, &third, "silence:3s", "U3"), 200);
    wait_until("the short silence shown", || {
        slack.messages()[2].updates == 1
    });
    post(&server, &firing("cpu during the short silence"));
    wait_until("silenced", || count(&server, "silenced") == 4);
    std::thread::sleep(std::time::Duration::from_millis(3_500));
    post(&server, &firing("cpu after the short silence"));
    recorded(&server, &slack, 4);

    // Recovery during a silence: delivered, and it ends the silence.
    let fourth = slack.messages()[3].clone();
    assert_eq!(click(&server, &slack, &fourth, "silence:1h", "U4"), 200);
    wait_until("silence shown", || slack.messages()[3].updates == 1);
    post(&server, &recovered());
    wait_until("the recovery posted", || slack.messages().len() == 5);
    // Posted is not yet recorded: the key's message is forgotten once the
    // recovery's ending is (a click before then still finds it).
    wait_until("the recovery recorded", || {
        server.spool()["messages"] == json!([])
    });
    let recovery = slack.messages()[4].clone();
    assert!(buttons(&recovery).is_empty(), "a recovery has no buttons");
    assert!(!recovery.body.to_string().contains("Silenced by"));

    // A click on a message of an alert the store no longer knows: an
    // ephemeral answer, nothing changed. (Counters start again with the
    // process: the acknowledgement was counted before the kill.)
    let before = slack.messages();
    assert_eq!(click(&server, &slack, &fourth, "acknowledge", "U5"), 200);
    wait_until("the ephemeral answer", || {
        slack
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/actions/"))
    });
    let notice = slack
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/actions/"))
        .unwrap()
        .json();
    assert_eq!(notice["response_type"], "ephemeral");
    assert!(notice["text"].as_str().unwrap().contains("no longer known"));
    nothing_recorded(&server);
    assert_eq!(slack.messages(), before, "nothing changed");
    let metrics = server.metrics();
    for outcome in ["silence", "unsilence", "unknown-alert"] {
        assert!(
            metrics.contains(&format!(
                "slack_handler_interactions_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome}: {metrics}"
        );
    }
}

/// Socket Mode through `serve`: `--slack-app-token-file`, the component
/// asks the stand-in's `apps.connections.open` with the app token, serve
/// opens the WebSocket it names, acknowledges each envelope and does what
/// its click asks; `disconnect` is one reconnect; `/healthz` and
/// `/metrics` show the connection; the app token is never shown.
#[test]
fn socket_mode_takes_the_same_clicks_without_a_public_address() {
    use host_test::mock_socket_mode::SocketModeStandIn;

    const APP_TOKEN: &str = "xapp-1-A0TEST-1234-5e5e5e5e";
    let slack = MockSlack::start().unwrap();
    let stand_in = SocketModeStandIn::start().unwrap();
    slack.serve_socket_mode(&stand_in);
    let dir = tempfile::tempdir().unwrap();
    // No signing secret: Socket Mode's connection is authenticated.
    let config = write_config(
        dir.path(),
        &format!(
            "{}layout = \"attachment\"\nactions = \"acknowledge,silence\"\n",
            web_api_config(&slack)
        ),
    );
    let token = dir.path().join("app-token");
    std::fs::write(&token, format!("{APP_TOKEN}\n")).unwrap();
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        // The stand-in speaks ws:// (Slack only wss://).
        &[
            "--slack-app-token-file",
            token.to_str().unwrap(),
            "--insecure-allow-ws",
        ],
    );
    wait_until("the Socket Mode connection", || stand_in.ready() == 1);
    let opened = slack
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/apps.connections.open"))
        .expect("apps.connections.open asked");
    assert_eq!(
        opened.header("authorization"),
        Some(&*format!("Bearer {APP_TOKEN}"))
    );
    // The stand-in counts a link once it sent its hello; serve is
    // connected once it read it, a moment later.
    wait_until("serve reading the hello", || {
        let health = server
            .request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .1;
        health["socket_mode"]["connected"] == true
    });
    let health = server
        .request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .1;
    assert!(server
        .metrics()
        .contains("slack_handler_socket_mode_connected 1"));

    post(&server, &firing("disk full"));
    recorded(&server, &slack, 1);
    let m = the_only_message(&slack);
    // Layout attachment: the buttons in a second attachment of the colour.
    assert_eq!(m.body["attachments"].as_array().unwrap().len(), 2);
    let value = buttons(&m)[0].2.clone();
    let click = block_actions(
        "acknowledge",
        &value,
        "U7",
        &m.channel_id,
        &m.ts,
        &format!("{}/actions/T0001/1/response", slack.url()),
    );
    stand_in.push_envelope("env-1", click);
    wait_until("the envelope acknowledged", || stand_in.acks() == ["env-1"]);
    wait_until("the acknowledgement shown", || {
        the_only_message(&slack).updates == 1
    });
    assert!(the_only_message(&slack)
        .body
        .to_string()
        .contains("Acknowledged by <@U7>"));

    // Slack asks for a new connection: exactly one more, never two open.
    stand_in.disconnect("refresh_requested");
    wait_until("one reconnect", || {
        stand_in.connections() == 2 && stand_in.ready() == 1
    });
    // Still taking clicks there: an envelope acknowledged on the new
    // connection is the event after which no other reconnect is pending.
    stand_in.push_envelope(
        "env-2",
        block_actions("silence:1h", &value, "U7", &m.channel_id, &m.ts, ""),
    );
    wait_until("the second envelope acknowledged", || {
        stand_in.acks().len() == 2
    });
    assert_eq!(stand_in.connections(), 2);
    assert_eq!(stand_in.max_open(), 1);
    assert!(server
        .metrics()
        .contains("slack_handler_socket_mode_reconnects_total 1"));
    wait_until("the silence shown", || {
        the_only_message(&slack).updates == 2
    });

    let shown = format!("{}{}{}", server.logged(), server.metrics(), health);
    assert!(!shown.contains(APP_TOKEN), "the app token is never shown");
    assert!(
        !shown.contains("xapp-"),
        "not even its prefix with a part of it"
    );
}

/// On PostgreSQL, two nodes: a click taken by one node silences the alert
/// for both (the mark is the key's, in the shared store), the redraw goes
/// out once, and the silence holds after both are killed and one starts
/// again.
#[test]
fn on_postgresql_a_click_on_one_node_holds_for_every_node() {
    use testdb::TestDb;

    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(&slack));
    let node = |name: &str| {
        Server::start_on_store(
            &config,
            &db.url(),
            &dir.path().join(format!("{name}.log")),
            &["--node", name],
        )
    };
    let (a, b) = (node("a"), node("b"));
    post(&a, &firing("cpu high"));
    recorded(&a, &slack, 1);
    let m = the_only_message(&slack);
    assert_eq!(click(&b, &slack, &m, "silence:1h", "U1"), 200);
    wait_until("the silence shown", || {
        the_only_message(&slack).updates == 1
    });
    nothing_recorded(&a);
    assert_eq!(the_only_message(&slack).updates, 1, "redrawn once");
    post(&a, &firing("cpu higher"));
    post(&b, &firing("cpu highest"));
    wait_until("two silenced", || count(&a, "silenced") == 2);
    assert_eq!(slack.messages().len(), 1);
    a.kill();
    b.kill();
    let c = node("c");
    post(&c, &firing("cpu after both died"));
    wait_until("still silenced", || count(&c, "silenced") == 3);
    assert_eq!(slack.messages().len(), 1);
    assert_eq!(click(&c, &slack, &m, "unsilence", "U1"), 200);
    wait_until("the unsilence shown", || {
        the_only_message(&slack).updates == 2
    });
    post(&c, &firing("cpu posted"));
    wait_until("posted", || slack.messages().len() == 2);
}

/// With `on-recovery = "update"`: a click that arrives while the alert's
/// recovery is on its way is recorded, but its redraw does not draw the
/// firing event back over the recovered message: it ends `superseded`.
#[test]
fn a_redraw_behind_a_recovery_is_superseded_not_drawn_over_it() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("{}on-recovery = \"update\"\n", config(&slack)),
    );
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    post(&server, &firing("cpu high"));
    recorded(&server, &slack, 1);
    let m = the_only_message(&slack);
    // The recovery's request is held at the stand-in while someone clicks.
    slack.hold();
    post(&server, &recovered());
    wait_until("the recovery on its way", || slack.in_flight() == 1);
    assert_eq!(click(&server, &slack, &m, "acknowledge", "U1"), 200);
    slack.release();
    wait_until("the redraw superseded", || {
        count(&server, "superseded") == 1
    });
    let after = the_only_message(&slack);
    assert_eq!(after.updates, 1, "only the recovery updated it");
    assert!(buttons(&after).is_empty(), "it shows the recovery");
    assert!(server.logged().contains("superseded, not sent"));
}

/// Handler options with a long template make an alert key longer than a
/// button may carry: the buttons name it by its SHA-256, and a click on
/// them finds it.
#[test]
fn a_long_alert_key_is_named_by_its_digest_and_clicks_still_find_it() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    let title = format!("cpu{}", "%20high".repeat(400));
    let (code, answer) = server.post_with(&format!("title={title}"), &firing("cpu high"));
    assert_eq!(code, 202, "{answer}");
    recorded(&server, &slack, 1);
    let m = the_only_message(&slack);
    let value = &buttons(&m)[0].2;
    assert!(value.starts_with("sha256:") && value.len() == 71, "{value}");
    assert_eq!(click(&server, &slack, &m, "acknowledge", "U1"), 200);
    wait_until("the acknowledgement shown", || {
        the_only_message(&slack).updates == 1
    });
    assert!(the_only_message(&slack)
        .body
        .to_string()
        .contains("Acknowledged by <@U1>"));
}

/// A captured click sent again, 2 s later (within the signature window),
/// and again after an Unsilence: answered 200, and nothing changes; the
/// alert stays unsilenced. Across a restart too (the identity is durable).
#[test]
fn a_replayed_click_is_answered_and_does_nothing() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(&slack));
    let spool = dir.path().join("spool");
    let server = Server::start(&config, &spool, &[]);
    post(&server, &firing("cpu high"));
    recorded(&server, &slack, 1);
    let m = the_only_message(&slack);
    let captured = signed_click(&slack, &m, "silence:1h", "U1");
    assert_eq!(server.request(&captured).0, 200);
    wait_until("the silence shown", || {
        the_only_message(&slack).updates == 1
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(server.request(&captured).0, 200, "a replay is answered");
    assert_eq!(click(&server, &slack, &m, "unsilence", "U2"), 200);
    wait_until("the unsilence shown", || {
        the_only_message(&slack).updates == 2
    });
    assert_eq!(
        server.request(&captured).0,
        200,
        "replayed after the unsilence"
    );
    drop(server);
    let server = Server::start(&config, &spool, &[]);
    assert_eq!(server.request(&captured).0, 200, "replayed after a restart");
    nothing_recorded(&server);
    let after = the_only_message(&slack);
    assert_eq!(after.updates, 2, "the replays drew nothing");
    assert!(
        !after.body.to_string().contains("Silenced by"),
        "the alert stays unsilenced: {}",
        after.body
    );
    post(&server, &firing("cpu higher"));
    wait_until("the next event sent, not silenced", || {
        slack.received() >= 4 && count(&server, "silenced") == 0
    });
    assert!(server
        .metrics()
        .contains("slack_handler_interactions_total{outcome=\"repeated\"} 1"));
}

/// With `on-recovery = "update"`, Acknowledge is clicked on the CRITICAL
/// message while a newer WARNING is on its way (held at the stand-in):
/// the redraw waits for it and draws the WARNING, acknowledged, never
/// the older CRITICAL over it.
#[test]
fn a_redraw_draws_the_latest_event_not_the_one_clicked() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("{}on-recovery = \"update\"\n", config(&slack)),
    );
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    post(&server, &firing("FIRST"));
    recorded(&server, &slack, 1);
    let m = the_only_message(&slack);
    slack.hold();
    let second = json!({"id": "cpu", "message": "SECOND", "time": "2026-11-30T10:01:00Z", "level": "WARNING"});
    post(&server, &second.to_string());
    wait_until("the WARNING on its way", || slack.in_flight() == 1);
    assert_eq!(click(&server, &slack, &m, "acknowledge", "U1"), 200);
    slack.release();
    wait_until("the WARNING and the redraw", || {
        the_only_message(&slack).updates == 2
    });
    let shown = the_only_message(&slack).body.to_string();
    assert!(
        shown.contains("SECOND") && !shown.contains("FIRST"),
        "the newest event: {shown}"
    );
    assert!(shown.contains("Acknowledged by <@U1>"), "{shown}");
}

/// A click signed with the right secret but from another Slack workspace
/// (its `team.id` names no section) acts on nothing.
#[test]
fn a_click_from_another_workspace_acts_on_nothing() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    post(&server, &firing("cpu high"));
    recorded(&server, &slack, 1);
    let m = the_only_message(&slack);
    let value = buttons(&m)[0].2.clone();
    let mut payload = block_actions("acknowledge", &value, "U6", &m.channel_id, &m.ts, "");
    payload["team"] = json!({"id": "T0OTHER", "domain": "other"});
    let body = form(&payload);
    let answer = server.request(&request(
        "/slack/interactions",
        &body,
        Some((SECRET, now())),
    ));
    assert_eq!(answer.0, 200, "signed: answered, and ignored");
    nothing_recorded(&server);
    assert_eq!(the_only_message(&slack).updates, 0, "nothing changed");
    assert!(server.logged().contains("T0OTHER"), "the log says why");
}

/// A storm message carries the buttons for the storm: Acknowledge marks
/// the storm (`Acknowledged by`), Silence marks it and every line it
/// shows as silenced; each click redraws the one storm message.
#[test]
fn a_storm_message_is_acknowledged_and_silenced_as_a_whole() {
    let slack = MockSlack::start().unwrap();
    slack.answer_after(std::time::Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config(&slack));
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--channel-interval-ms", "1000", "--storm-calm-secs", "600"],
    );
    for i in 0..10 {
        let alert = json!({"id": format!("node{i}"), "message": format!("node{i} down"),
            "time": "2026-11-30T10:00:00Z", "level": "CRITICAL"});
        post(&server, &alert.to_string());
    }
    let storm = || {
        slack.messages().into_iter().find(|m| {
            m.body["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Storm")
        })
    };
    wait_until("the storm message posted and kept", || {
        storm().is_some_and(|m| {
            server.spool()["messages"]
                .as_array()
                .is_some_and(|kept| kept.iter().any(|k| k["ts"] == m.ts))
        }) && server.spool()["pending"] == json!([])
    });
    let m = storm().unwrap();
    assert!(labels(&m).contains(&"Acknowledge".to_string()), "{m:#?}");
    assert_eq!(click(&server, &slack, &m, "acknowledge", "U0ANA"), 200);
    wait_until("the storm message redrawn as acknowledged", || {
        storm().is_some_and(|m| m.body.to_string().contains("Acknowledged by <@U0ANA>"))
    });
    let m = storm().unwrap();
    let (_, silence, _) = buttons(&m)
        .into_iter()
        .find(|(label, _, _)| label == "Silence 1h")
        .expect("a Silence 1h button");
    assert_eq!(click(&server, &slack, &m, &silence, "U0BOB"), 200);
    wait_until("the storm message redrawn as silenced", || {
        storm().is_some_and(|m| {
            let body = m.body.to_string();
            body.contains("Silenced by <@U0BOB>") && body.matches("silenced until").count() >= 5
        })
    });
    let storms = slack
        .messages()
        .iter()
        .filter(|m| {
            m.body["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Storm")
        })
        .count();
    assert_eq!(
        storms,
        1,
        "one storm message, redrawn: {:#?}",
        slack.messages()
    );
}
