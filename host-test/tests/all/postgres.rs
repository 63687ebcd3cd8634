//! Several `serve` nodes on one PostgreSQL database (`--store URL`), each a
//! child process on a throwaway server (`TestDb`): what one node accepted
//! another delivers; a node killed with SIGKILL loses its claims when its
//! lease ends and the others take them over, repeating at most the requests
//! it had out; pacing and `Retry-After` hold across nodes; an alert's
//! message begun by one node is continued by another; an aggregate's window
//! is counted once and emitted once; a database that restarts or goes away
//! loses nothing acknowledged and says so meanwhile (`503` with
//! `Retry-After`, `/healthz` degraded).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use host_test::mock_slack::{Message, MockSlack};
use serde_json::{json, Value};
use testdb::TestDb;

use crate::common::server::{alert, wait_until, write_config, Server};
use crate::common::web_api_config;
use crate::topics::{error_alert, examples};

const SEC: Duration = Duration::from_secs(1);

/// The stand-in's workspace with storms off: these tests count one message
/// per alert across nodes (storms across nodes have their own test).
fn per_alert(slack: &MockSlack) -> String {
    format!("{}storm-after = 0\n", web_api_config(slack))
}

/// Node `name` on `db`'s `alerts` database, its stderr in `DIR/NAME.log`.
fn node(db: &TestDb, config: &Path, dir: &Path, name: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--node", name];
    args.extend_from_slice(extra);
    Server::start_on_store(config, &db.url(), &dir.join(format!("{name}.log")), &args)
}

/// Nodes `names` on `db`, started at once, as a cluster comes up.
fn nodes(db: &TestDb, config: &Path, dir: &Path, names: &[&str], extra: &[&str]) -> Vec<Server> {
    std::thread::scope(|s| {
        let started: Vec<_> = names
            .iter()
            .map(|name| s.spawn(move || node(db, config, dir, name, extra)))
            .collect();
        started
            .into_iter()
            .map(|node| node.join().expect("the node started"))
            .collect()
    })
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    server.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ))
}

/// The alert id a message body is for: `alert(ID)` says `alert ID`, which
/// Kapacitor's layout puts in the attachment's text.
fn alert_id(body: &Value) -> Option<String> {
    body["attachments"][0]["text"]
        .as_str()?
        .strip_prefix("alert ")
        .map(String::from)
}

/// How many messages the stand-in holds for each alert id.
fn delivered(slack: &MockSlack) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for m in slack.messages() {
        if let Some(id) = alert_id(&m.body) {
            *count.entry(id).or_insert(0) += 1;
        }
    }
    count
}

/// The alert ids delivered more than once, and how many times.
fn duplicates(delivered: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    delivered
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (id.clone(), *n))
        .collect()
}

/// Waits until every id in `acknowledged` is delivered and the store has
/// nothing pending (so a resend of a request whose ending went unrecorded
/// has happened too).
fn wait_all_delivered(slack: &MockSlack, server: &Server, acknowledged: &BTreeSet<String>) {
    wait_until("every acknowledged alert delivered", || {
        let delivered = delivered(slack);
        acknowledged.iter().all(|id| delivered.contains_key(id))
    });
    wait_until("nothing pending in the store", || {
        server.spool()["pending"] == json!([])
    });
}

/// A channel as the stand-in counts it: `#c5` and its id `CC5` are one.
fn channel_of(body: &Value) -> String {
    let name = body["channel"].as_str().unwrap_or_default();
    match name.strip_prefix('#') {
        Some(bare) => std::iter::once('C')
            .chain(
                bare.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .map(|c| c.to_ascii_uppercase()),
            )
            .collect(),
        None => name.to_string(),
    }
}

/// Sets its flag when dropped, also by a panic: a helper thread that loops
/// until the flag is set then ends, and the scope that waits for it too.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A storm of 5 alerts to each of 20 channels, posted round-robin to three
/// nodes at Slack's real rate (one message a second per channel, no burst,
/// against a stand-in 100 ms away that answers `429 Retry-After: 1` to
/// anything sooner); one node is killed with SIGKILL mid-storm, after some
/// deliveries, and the rest of the storm goes to the other two. Every
/// alert acknowledged with `202` is delivered: the dead node's claims are
/// taken over once its 3 s lease ends. A duplicate can only come from a
/// request the dead node had out whose ending it had not yet recorded: at
/// most one per channel (a channel has one request out at a time), each
/// delivered twice, the first time before the kill. Pacing holds across the
/// nodes: arrivals on a channel an interval apart but for at most 3 (each a
/// `429`, as one node alone meets from jitter), and after a `429` nothing
/// on that channel inside its `Retry-After` (but after one the dead node
/// may have met and never recorded).
#[test]
fn three_nodes_kill_one_mid_storm() {
    const CHANNELS: usize = 20;
    const ROUNDS: usize = 5;
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    slack.limit_channels(SEC, SEC);
    slack.answer_after(Duration::from_millis(100));
    // Every answer: (channel, alert id, arrival, status).
    type Arrival = (String, Option<String>, Instant, u16);
    let arrivals = Arc::new(Mutex::new(Vec::<Arrival>::new()));
    let seen = arrivals.clone();
    slack.observe(move |request, reply| {
        let body = request.json();
        seen.lock()
            .unwrap()
            .push((channel_of(&body), alert_id(&body), request.at, reply.status));
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &per_alert(&slack));
    let paced = [
        "--channel-interval-ms",
        "1000",
        "--channel-burst",
        "1",
        "--lease-ms",
        "3000",
    ];
    let mut nodes = nodes(&db, &config, dir.path(), &["a", "b", "c"], &paced);
    let mut acknowledged = BTreeSet::new();
    let mut post = |nodes: &[Server], n: usize| {
        let (c, round) = (n % CHANNELS, n / CHANNELS);
        let id = format!("s{round}-c{c:02}");
        let (status, answer) =
            nodes[n % nodes.len()].post_with(&format!("channel=%23c{c}"), &alert(&id));
        assert_eq!(status, 202, "alert {id} acknowledged: {answer}");
        acknowledged.insert(id);
    };
    for n in 0..CHANNELS * 3 {
        post(&nodes, n);
    }
    wait_until("25 deliveries before the kill", || {
        slack.messages().len() >= 25
    });
    nodes.remove(2).kill();
    let killed_at = Instant::now();
    let by_then = slack.messages().len();
    assert!(
        by_then < CHANNELS * 3,
        "the kill came mid-storm, with alerts still to deliver: {by_then} delivered"
    );
    for n in CHANNELS * 3..CHANNELS * ROUNDS {
        post(&nodes, n);
    }
    wait_all_delivered(&slack, &nodes[0], &acknowledged);

    let finished = nodes[1].spool()["finished"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        finished.len(),
        acknowledged.len(),
        "each acknowledged alert ended once in the shared store"
    );
    assert!(
        finished.iter().all(|f| f["status"] == "delivered"),
        "every alert ended delivered: {finished:#?}"
    );
    let delivered = delivered(&slack);
    let unexpected: Vec<&String> = delivered
        .keys()
        .filter(|id| !acknowledged.contains(*id))
        .collect();
    assert!(
        unexpected.is_empty(),
        "only acknowledged alerts delivered: {unexpected:?}"
    );
    let arrivals = arrivals.lock().unwrap().clone();
    let twice = duplicates(&delivered);
    eprintln!(
        "storm: {} alerts, {} delivered twice {:?}, {} 429s, {} requests",
        acknowledged.len(),
        twice.len(),
        twice.keys().collect::<Vec<_>>(),
        slack.rate_limited(),
        arrivals.len()
    );
    assert!(
        twice.values().all(|n| *n == 2),
        "a duplicate is the dead node's request and one resend, no more: {twice:?}"
    );
    let mut per_channel: HashMap<&str, usize> = HashMap::new();
    for id in twice.keys() {
        *per_channel.entry(&id[id.len() - 3..]).or_insert(0) += 1;
        let first = arrivals
            .iter()
            .filter(|(_, of, _, status)| of.as_deref() == Some(id.as_str()) && *status == 200)
            .map(|(_, _, at, _)| *at)
            .min()
            .expect("a duplicate was answered 200 twice");
        assert!(
            first < killed_at,
            "the first delivery of duplicate {id} was a request the dead node had out, made before the kill"
        );
    }
    assert!(
        per_channel.values().all(|n| *n == 1),
        "at most one duplicate per channel (the dead node had at most one request out on each): {per_channel:?}"
    );
    assert!(
        twice.len() <= CHANNELS,
        "at most {CHANNELS} duplicates, one per channel: {twice:?}"
    );

    // The dead node's channels passed on within its lease (3 s), a
    // renewal (1 s) and a channel interval (1 s), with 2 s to spare: every
    // channel had alerts still to deliver at the kill, and each got its
    // next one by then, whichever node owned it.
    let mut next_after_kill: HashMap<&str, Duration> = HashMap::new();
    for (channel, _, at, status) in &arrivals {
        if *status == 200 && *at > killed_at {
            let after = *at - killed_at;
            next_after_kill
                .entry(channel.as_str())
                .and_modify(|d| *d = (*d).min(after))
                .or_insert(after);
        }
    }
    assert_eq!(
        next_after_kill.len(),
        CHANNELS,
        "every channel sent after the kill"
    );
    let slowest = next_after_kill.values().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(7),
        "the dead node's channels moved within a lease: {next_after_kill:?}"
    );

    // Pacing across the nodes.
    let mut by_channel: HashMap<String, Vec<(Instant, u16)>> = HashMap::new();
    for (channel, _, at, status) in &arrivals {
        by_channel
            .entry(channel.clone())
            .or_default()
            .push((*at, *status));
    }
    assert_eq!(by_channel.len(), CHANNELS, "requests to every channel");
    let mut close = Vec::new();
    for (channel, list) in by_channel.iter_mut() {
        list.sort();
        for pair in list.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            if gap < SEC {
                close.push((channel.clone(), gap, pair[1].1));
            }
        }
        for (i, (at, status)) in list.iter().enumerate() {
            // A 429 the dead node may have met and never recorded: then only
            // pacing keeps the others off the channel.
            let maybe_unrecorded = *at <= killed_at && killed_at - *at < 2 * SEC;
            if *status != 429 || maybe_unrecorded {
                continue;
            }
            if let Some((next, _)) = list.get(i + 1) {
                assert!(
                    *next - *at >= SEC,
                    "a Retry-After seen by one node blocks {channel} for every node: the next request came {:?} after the 429, not after 1 s",
                    *next - *at
                );
            }
        }
    }
    assert!(
        slack.rate_limited() <= 3,
        "pacing held across the nodes: at most 3 429s (jitter, as one node alone meets), not {}",
        slack.rate_limited()
    );
    assert!(
        close.len() <= 3 && close.iter().all(|(_, _, status)| *status == 429),
        "arrivals on a channel are an interval apart but for at most 3, each refused with 429: {close:?}"
    );
}

/// PostgreSQL restarted as a crash would (`pg_ctl restart -m immediate`)
/// while two nodes take a steady stream of alerts to 5 channels: every POST
/// is answered `202` or `503`, each `503` with a `Retry-After`; intake
/// takes alerts again after the restart; every alert acknowledged with
/// `202` is delivered. A duplicate can only be a request out when the
/// database went away: at most one per channel.
#[test]
fn database_restart_mid_run() {
    const CHANNELS: usize = 5;
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &per_alert(&slack));
    let nodes = nodes(
        &db,
        &config,
        dir.path(),
        &["a", "b"],
        &["--lease-ms", "2000"],
    );
    // Every answer: (alert id, status, Retry-After).
    let answers = Mutex::new(Vec::<(String, u16, Option<String>)>::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("r{n:05}");
                let answer = nodes[n % nodes.len()]
                    .post_answer(&format!("channel=%23r{}", n % CHANNELS), &alert(&id));
                let retry_after = answer.header("retry-after").map(String::from);
                answers
                    .lock()
                    .unwrap()
                    .push((id, answer.status, retry_after));
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        wait_until("20 deliveries before the restart", || {
            slack.messages().len() >= 20
        });
        db.restart_immediately();
        let restarted = answers.lock().unwrap().len();
        wait_until("20 alerts acknowledged after the restart", || {
            answers.lock().unwrap()[restarted..]
                .iter()
                .filter(|(_, status, _)| *status == 202)
                .count()
                >= 20
        });
    });
    let answers = answers.into_inner().unwrap();
    let odd: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| *status != 202 && *status != 503)
        .collect();
    assert!(odd.is_empty(), "every POST answered 202 or 503: {odd:?}");
    let refused: Vec<_> = answers.iter().filter(|(_, s, _)| *s == 503).collect();
    assert!(
        refused
            .iter()
            .all(|(_, _, retry)| retry.as_deref().is_some_and(|r| !r.is_empty())),
        "every 503 says when to retry (Retry-After): {refused:?}"
    );
    let acknowledged: BTreeSet<String> = answers
        .iter()
        .filter(|(_, s, _)| *s == 202)
        .map(|(id, _, _)| id.clone())
        .collect();
    wait_all_delivered(&slack, &nodes[0], &acknowledged);
    let delivered = delivered(&slack);
    let twice = duplicates(&delivered);
    eprintln!(
        "restart: {} posted, {} acknowledged, {} refused with 503, {} delivered twice",
        answers.len(),
        acknowledged.len(),
        refused.len(),
        twice.len()
    );
    assert!(
        twice.len() <= CHANNELS && twice.values().all(|n| *n == 2),
        "a duplicate only from a request out when the database went away, at most one per channel: {twice:?}"
    );
}

/// PostgreSQL stopped (`pg_ctl stop -m immediate`) under a node with
/// alerts pending (the stand-in holds one request on each of 5 channels, 5
/// more wait behind them): a POST is refused with `503` and a
/// `Retry-After`, and `/healthz` answers `503` `degraded`; once the
/// database is back, every acknowledged alert is delivered, `/healthz` is
/// ready again and a new alert is taken.
#[test]
fn database_stopped_then_started() {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    slack.hold();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &per_alert(&slack));
    let server = node(&db, &config, dir.path(), "a", &[]);
    let mut acknowledged = BTreeSet::new();
    for n in 0..10 {
        let id = format!("p{n}");
        let (status, answer) = server.post_with(&format!("channel=%23p{}", n % 5), &alert(&id));
        assert_eq!(status, 202, "alert {id} acknowledged: {answer}");
        acknowledged.insert(id);
    }
    wait_until("a request out on each of the 5 channels", || {
        slack.in_flight() == 5
    });

    db.stop_immediately();
    let refused = server.post_answer("channel=%23p0", &alert("while-down"));
    assert_eq!(
        refused.status, 503,
        "a POST while the database is down is refused with 503: {}",
        refused.body
    );
    assert!(
        refused.header("retry-after").is_some_and(|r| !r.is_empty()),
        "the 503 says when to retry (Retry-After): {:?}",
        refused.headers
    );
    wait_until("/healthz to answer 503 degraded", || {
        let (status, health) = get(&server, "/healthz");
        status == 503 && health["status"] == "degraded"
    });
    assert!(
        server.metrics().contains("slack_handler_spool_degraded 1"),
        "/metrics shows the store degraded"
    );

    db.start_again();
    slack.release();
    wait_all_delivered(&slack, &server, &acknowledged);
    wait_until("/healthz to answer 200 ready again", || {
        let (status, health) = get(&server, "/healthz");
        status == 200 && health["status"] == "ready"
    });
    let (status, answer) = server.post_with("channel=%23p0", &alert("after"));
    assert_eq!(
        status, 202,
        "a POST once the database is back is taken: {answer}"
    );
    acknowledged.insert("after".into());
    wait_all_delivered(&slack, &server, &acknowledged);
    assert!(
        server.metrics().contains("slack_handler_spool_degraded 0"),
        "/metrics shows the store well again"
    );
    assert!(
        !delivered(&slack).contains_key("while-down"),
        "the alert refused with 503 was not kept, so never delivered"
    );
}

/// An event of alert `id` in Kapacitor's post-handler JSON.
fn event(id: &str, level: &str, message: &str) -> String {
    format!(
        r#"{{"id":"{id}","message":"{message}","time":"2026-11-26T10:00:00Z","level":"{level}","recoverable":true}}"#
    )
}

fn text(m: &Message) -> &str {
    m.body["attachments"][0]["text"].as_str().unwrap_or("")
}

fn color(m: &Message) -> &str {
    m.body["attachments"][0]["color"].as_str().unwrap_or("")
}

/// Waits until `n` alerts ended in the store `server` reads, all delivered.
fn wait_delivered(server: &Server, n: usize) {
    wait_until(&format!("{n} alerts delivered"), || {
        let spool = server.spool();
        spool["finished"].as_array().map(Vec::len) == Some(n) && spool["pending"] == json!([])
    });
    let finished = server.spool()["finished"].clone();
    assert!(
        finished
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "delivered"),
        "every alert delivered: {finished:#}\n{}",
        server.logged()
    );
}

/// Node a delivers an alert's firing (`on-recovery = MODE`, Web API) and is
/// killed with SIGKILL; node b, started only then, takes the recovery of
/// the same alert id and options. The top-level message, as the stand-in
/// finally shows it.
fn begun_on_a_continued_on_b(mode: &str) -> (MockSlack, Message) {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("{}on-recovery = \"{mode}\"\n", web_api_config(&slack)),
    );
    let lease = ["--lease-ms", "1000"];
    let a = node(&db, &config, dir.path(), "a", &lease);
    let (status, answer) = a.post(&event("cpu", "CRITICAL", "firing"));
    assert_eq!(status, 202, "the firing acknowledged by node a: {answer}");
    wait_delivered(&a, 1);
    let posted = slack.messages();
    let [first] = posted.as_slice() else {
        panic!("node a posted one message: {posted:#?}");
    };
    let first = first.clone();
    a.kill();

    let b = node(&db, &config, dir.path(), "b", &lease);
    let (status, answer) = b.post(&event("cpu", "OK", "resolved"));
    assert_eq!(status, 202, "the recovery acknowledged by node b: {answer}");
    wait_delivered(&b, 2);
    let shown: Vec<Message> = slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.is_none())
        .collect();
    let [top] = shown.as_slice() else {
        panic!("one top-level message, node a's: {:#?}", slack.messages());
    };
    assert_eq!(top.ts, first.ts, "the alert's message is node a's");
    assert_eq!(
        (top.updates, color(top)),
        (1, "good"),
        "node b updated node a's message to resolved: {top:#?}"
    );
    let top = top.clone();
    (slack, top)
}

/// `on-recovery = "thread"`: node b's recovery is a reply in the thread of
/// node a's message (the stand-in's reply carries its `ts` as `thread_ts`),
/// and updates that message.
#[test]
fn thread_begun_on_one_node_continues_on_another() {
    let (slack, parent) = begun_on_a_continued_on_b("thread");
    let replies: Vec<Message> = slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.is_some())
        .collect();
    let [reply] = replies.as_slice() else {
        panic!("one reply, the recovery: {:#?}", slack.messages());
    };
    assert_eq!(
        reply.thread_ts.as_deref(),
        Some(parent.ts.as_str()),
        "the recovery replies in the thread of the firing's message"
    );
    assert_eq!(text(reply), "resolved", "the reply is the recovery");
}

/// `on-recovery = "update"`: node b's recovery edits node a's message
/// (`chat.update`), and posts nothing new.
#[test]
fn update_begun_on_one_node_continues_on_another() {
    let (slack, message) = begun_on_a_continued_on_b("update");
    assert_eq!(
        slack.messages().len(),
        1,
        "one message, updated: {:#?}",
        slack.messages()
    );
    assert_eq!(text(&message), "resolved", "updated to the recovery");
}

/// An alert's events posted to two nodes moments apart (its firing to
/// one, its recovery to the other, before the other heard of the firing)
/// go in the order they were accepted, whichever node owns the channel:
/// the recovery updates the firing's message. The owner hears of its own
/// recovery first, from its commit, and of the other node's firing a
/// moment later; that used to leave both waiting for each other for good.
/// Ten alerts over ten channels, so both nodes own some.
#[test]
fn an_alerts_events_posted_to_two_nodes_moments_apart_go_in_order() {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("{}on-recovery = \"update\"\n", web_api_config(&slack)),
    );
    let running = nodes(
        &db,
        &config,
        dir.path(),
        &["a", "b"],
        &["--lease-ms", "1000"],
    );
    wait_until("two nodes own 32 slots each", || {
        running.iter().all(|n| slots_owned(n) == 32)
    });
    for c in 0..10 {
        let (id, channel) = (format!("cpu{c}"), format!("channel=%23o{c}"));
        let (status, answer) = running[0].post_with(&channel, &event(&id, "CRITICAL", "firing"));
        assert_eq!(status, 202, "{answer}");
        let (status, answer) = running[1].post_with(&channel, &event(&id, "OK", "resolved"));
        assert_eq!(status, 202, "{answer}");
    }
    wait_until("each firing posted, then updated to its recovery", || {
        let shown = slack.messages();
        shown.len() == 10 && shown.iter().all(|m| m.updates == 1 && color(m) == "good")
    });
    let channels: std::collections::BTreeSet<String> = slack
        .messages()
        .iter()
        .map(|m| m.channel_id.clone())
        .collect();
    assert_eq!(channels.len(), 10, "one message a channel: {channels:?}");
}

/// The documentation's pipeline (tests/all/topics.rs) on three nodes: 14
/// alerts to `500-errors` posted to each, counted by the aggregate handler
/// for its 24 hours (12 s here), whose event goes to the `error-reports`
/// workspace. Every node's collections count once, and exactly one node
/// emits: one message, with all 42.
#[test]
fn aggregate_on_three_nodes_emits_once() {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handlers = dir.path().join("handlers");
    std::fs::create_dir(&handlers).unwrap();
    for file in ["500_errors_24h.yaml", "slack_500_errors_daily.yaml"] {
        std::fs::copy(examples().join(file), handlers.join(file)).unwrap();
    }
    let route = format!("https://slack.com={}", slack.url());
    let args = [
        "--handlers",
        handlers.to_str().unwrap(),
        "--time-scale",
        "7200",
        "--connect-to",
        &route,
        "--lease-ms",
        "2000",
    ];
    let nodes = nodes(
        &db,
        &examples().join("kapacitor.conf"),
        dir.path(),
        &["a", "b", "c"],
        &args,
    );
    for n in 0..42 {
        let (status, answer) = nodes[n % 3].post_with("topic=500-errors", &error_alert(n));
        assert_eq!(status, 202, "collection {n} acknowledged: {answer}");
        assert_eq!(
            answer["collected"],
            json!(["500-errors-24h"]),
            "collected by the aggregate"
        );
    }
    // Nothing emitted into the store before the interval ended, so
    // nothing can have been sent.
    assert_eq!(nodes[0].spool()["pending"], json!([]));
    assert_eq!(
        slack.received(),
        0,
        "nothing sent before the interval ended"
    );
    wait_until("the aggregated message", || slack.received() >= 1);
    // Every node's aggregator looks at least once a second: time for a
    // second emitter to show itself. (No event says "no node will emit
    // again": a node that looks after the close sees no window and does
    // nothing, so time is the condition here.)
    std::thread::sleep(3 * SEC);
    let requests = slack.requests();
    assert_eq!(
        requests.len(),
        1,
        "exactly one node emits the window: {:#?}",
        requests.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    let body = requests[0].json();
    assert_eq!(body["channel"], "#error-reports", "to error-reports");
    assert_eq!(
        body["attachments"][0]["text"], "42 500 errors last 24 hours.",
        "every node's collections counted once"
    );
}

/// `GET /spool` on node b shows what node a accepted: pending while the
/// stand-in holds the requests, then finished as delivered; node a shows
/// the same.
#[test]
fn spool_on_store() {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    slack.hold();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &per_alert(&slack));
    let nodes = nodes(&db, &config, dir.path(), &["a", "b"], &[]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut ids = BTreeSet::new();
    for n in 0..3 {
        let (status, answer) = a.post_with("channel=%23s", &alert(&format!("on-a-{n}")));
        assert_eq!(status, 202, "acknowledged by node a: {answer}");
        ids.insert(answer["id"].as_u64().expect("a 202 names the alert's id"));
    }
    let ids_of = |list: &Value| -> BTreeSet<u64> {
        list.as_array()
            .unwrap()
            .iter()
            .filter_map(|entry| entry.as_u64().or_else(|| entry["id"].as_u64()))
            .collect()
    };
    wait_until("node b to show node a's alerts pending", || {
        ids_of(&b.spool()["pending"]) == ids
    });
    assert_eq!(
        b.spool()["finished"],
        json!([]),
        "nothing finished while the stand-in holds"
    );

    slack.release();
    wait_until("node b to show node a's alerts finished", || {
        let spool = b.spool();
        spool["pending"] == json!([]) && ids_of(&spool["finished"]) == ids
    });
    let finished = b.spool()["finished"].clone();
    assert!(
        finished
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "delivered"),
        "node b shows them delivered: {finished:#}"
    );
    wait_until("node a to show the one store as node b does", || {
        a.spool() == b.spool()
    });
    assert_eq!(
        delivered(&slack).len(),
        3,
        "each delivered: {:#?}",
        slack.messages()
    );
}

/// `spool --store` shows what the database holds and `spool resend
/// --store` sends a failed alert again, which a running node then
/// delivers; `/healthz` and `/metrics` name the node and its store.
#[test]
fn the_spool_command_shows_and_resends_on_the_store() {
    use host_test::mock_slack::Reply;
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    slack.push_reply(Reply::json(
        200,
        json!({"ok": false, "error": "channel_not_found"}),
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &per_alert(&slack));
    let a = node(&db, &config, dir.path(), "a", &[]);
    let (status, health) = get(&a, "/healthz");
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        (health["store"].as_str(), health["node"].as_str()),
        (Some("postgres"), Some("a")),
        "healthz names the store and the node: {health}"
    );
    let (status, answer) = a.post_with("channel=%23gone", &alert("lost"));
    assert_eq!(status, 202, "{answer}");
    wait_until("the alert to fail and be kept for resending", || {
        a.spool()["resendable"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
    });

    let spool = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_host-test"))
            .arg("spool")
            .args(args)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "spool {args:?}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        said
    };
    let shown: Value = serde_json::from_str(&spool(&["--store", &db.url(), "--json"])).unwrap();
    let resendable = shown["resendable"].as_array().expect("a list");
    assert_eq!(resendable.len(), 1, "{shown:#}");
    assert!(
        resendable[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("channel_not_found")),
        "{shown:#}"
    );
    let said = spool(&["resend", "--store", &db.url(), "--failed"]);
    assert!(said.contains("resent as"), "{said}");
    wait_until("the running node to deliver the resent alert", || {
        delivered(&slack).contains_key("lost")
    });
    let metrics = a.metrics();
    assert!(
        metrics.contains(r#"slack_handler_node{node="a",store="postgres"} 1"#),
        "{metrics}"
    );
}

/// With `--store-url-file` the password is on no command line, and it is
/// shown nowhere: not in the log, `/healthz`, `/metrics` or `/spool`; a
/// wrong one stops the start with a clear message, without it.
#[test]
fn a_password_given_in_a_file_is_never_shown() {
    use testdb::Setup;
    const PASSWORD: &str = "s3cret-Pa55";
    let db = TestDb::start_with(Setup {
        passwords: true,
        ..Setup::default()
    });
    db.psql(&format!("CREATE ROLE serve LOGIN PASSWORD '{PASSWORD}'"));
    db.psql("ALTER DATABASE alerts OWNER TO serve");
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let url_file = dir.path().join("store-url");
    let url = |password: &str| {
        format!(
            "postgres://serve:{password}@127.0.0.1:{}/alerts?sslmode=disable\n",
            db.port()
        )
    };
    std::fs::write(&url_file, url(PASSWORD)).unwrap();
    let log = dir.path().join("a.log");
    let a = Server::start_on(
        &config,
        &["--store-url-file", url_file.to_str().unwrap()],
        &log,
        &["--node", "a"],
    );
    let (status, answer) = a.post_with("channel=%23c", &alert("kept"));
    assert_eq!(status, 202, "{answer}");
    wait_until("delivered", || delivered(&slack).contains_key("kept"));
    let mut shown = String::new();
    for path in ["/healthz", "/metrics", "/spool"] {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(a.addr()).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        stream.read_to_string(&mut shown).unwrap();
    }
    drop(a);
    shown += &std::fs::read_to_string(&log).unwrap();
    assert!(shown.contains("slack-alertd starting"), "{shown}");
    assert!(!shown.contains(PASSWORD), "the password was shown: {shown}");

    std::fs::write(&url_file, url("wrong-Pa55")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--store-url-file"])
        .arg(&url_file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong password stops the start");
    assert!(said.contains("password authentication failed"), "{said}");
    assert!(
        !said.contains("wrong-Pa55"),
        "the password was shown: {said}"
    );
}

/// Two nodes on one database, alerts of one channel posted to both for
/// eight seconds: one storm message, edited by both (the store holds its
/// `ts` and lines, and each node takes in the other's before it edits),
/// and one `chat.update` budget for both: the stand-in allows 30 edits a
/// minute for the workspace's token and serve spends 28 a minute, so two
/// budgets of a node each would meet 429s. None is met, nothing is
/// repeated as a duplicate, every alert ends shown in that one message.
#[test]
fn two_nodes_share_one_storm_message_and_one_update_budget() {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    slack.limit_like_slack();
    slack.limit_updates(30, 3);
    slack.answer_after(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let flags = [
        "--channel-interval-ms",
        "1000",
        "--storm-calm-secs",
        "600",
        "--updates-per-minute",
        "28",
    ];
    let both = nodes(&db, &config, dir.path(), &["a", "b"], &flags);
    let mut posted = 0;
    let started = Instant::now();
    while started.elapsed() < 8 * SEC {
        for node in &both {
            let body = event(&format!("disk{posted:03}"), "CRITICAL", "disk full");
            assert_eq!(node.post(&body).0, 202);
            posted += 1;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let spool = || crate::common::server::whole_spool(|path| get(&both[0], path).1);
    let finished = || spool()["finished"].as_array().cloned().unwrap_or_default();
    wait_until("every alert ended", || {
        let spool = spool();
        spool["pending"] == json!([]) && spool["finished"].as_array().map_or(0, Vec::len) >= posted
    });
    let done = finished();
    let storms: Vec<Message> = slack
        .messages()
        .into_iter()
        .filter(|m| {
            m.body["text"]
                .as_str()
                .unwrap_or_default()
                .contains("Storm")
        })
        .collect();
    assert_eq!(
        storms.len(),
        1,
        "one storm message: {:#?}",
        slack.messages()
    );
    let ts = &storms[0].ts;
    let shown = done
        .iter()
        .filter(|f| {
            f["detail"]
                .as_str()
                .unwrap_or_default()
                .ends_with(ts.as_str())
        })
        .count();
    let alone = slack.messages().len() - 1;
    assert_eq!(shown + alone, posted, "{done:#?}");
    assert_eq!(slack.rate_limited(), 0, "no post over the channel's pace");
    assert_eq!(slack.updates_limited(), 0, "one budget for both nodes");
    for node in &both {
        let metrics = node.metrics();
        assert!(
            metrics.contains("slack_handler_duplicate_sends_total 0"),
            "{metrics}"
        );
    }
    let edits: usize = both
        .iter()
        .map(|n| {
            n.metrics()
                .lines()
                .find(|l| {
                    l.starts_with(
                        "slack_handler_storm_requests_total{method=\"update\",outcome=\"sent\"}",
                    )
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or(0.0) as usize
        })
        .sum();
    assert!(edits >= 3, "both nodes edited the message: {edits} edits");
}

/// The slots of 64 `GET /metrics` says a node owns.
fn slots_owned(server: &Server) -> u32 {
    server
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix("slack_handler_slots_owned "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Channels have owners (issue 33): the 64 channel slots are shared out
/// among the live nodes, every slot owned once; a node joining takes its
/// share within a renewal or two; a node killed has its slots taken by
/// the others once its lease (3 s) runs out; a node stopped gracefully
/// gives them back as it goes (and its name: it starts again at once).
/// Alerts posted to any node are then delivered once each.
#[test]
fn nodes_share_the_channels_and_a_dead_nodes_pass_on_within_a_lease() {
    let db = TestDb::start();
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &per_alert(&slack));
    let lease = ["--lease-ms", "3000"];
    let shared_out = |nodes: &[&Server], fair: u32| {
        let owned: Vec<u32> = nodes.iter().map(|n| slots_owned(n)).collect();
        owned.iter().sum::<u32>() == 64 && owned.iter().all(|n| *n >= fair)
    };
    let mut running = nodes(&db, &config, dir.path(), &["a", "b"], &lease);
    wait_until("two nodes own 32 slots each", || {
        shared_out(&[&running[0], &running[1]], 32)
    });
    // Arrivals are pushed (`LISTEN`/`NOTIFY`): each node keeps a session
    // listening on the channel its commits notify.
    wait_until("both nodes listen for arrivals", || {
        db.query(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = 'alerts' AND query = 'LISTEN slack_alertd_arrivals'",
        )
        .trim()
            == "2"
    });
    running.push(node(&db, &config, dir.path(), "c", &lease));
    wait_until("three nodes own 21 or 22 slots each", || {
        shared_out(&[&running[0], &running[1], &running[2]], 20)
    });
    running.remove(2).kill();
    let killed = Instant::now();
    wait_until("the dead node's slots taken by the other two", || {
        shared_out(&[&running[0], &running[1]], 32)
    });
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(3_000 + 2 * 1_000 + 2_000),
        "within a lease (3 s) and a renewal or two (1 s each): {took:?}"
    );
    // One stopped gracefully gives its slots back as it goes: the other
    // takes them at its next renewal, well within a lease.
    running.push(node(&db, &config, dir.path(), "d", &lease));
    wait_until("a, b and d share the slots", || {
        shared_out(&[&running[0], &running[1], &running[2]], 20)
    });
    assert!(running.remove(2).terminate().success());
    let stopped = Instant::now();
    wait_until("d's slots taken by a and b", || {
        shared_out(&[&running[0], &running[1]], 32)
    });
    assert!(
        stopped.elapsed() < Duration::from_millis(2_500),
        "given back, not left to run out: {:?}",
        stopped.elapsed()
    );
    // d starts again at once under its name (it handed it back).
    running.push(node(&db, &config, dir.path(), "d", &lease));
    wait_until("d back with its share", || {
        shared_out(&[&running[0], &running[1], &running[2]], 20)
    });
    // Alerts to many channels are all delivered, each once, by the three.
    let mut acknowledged = BTreeSet::new();
    for c in 0..30 {
        let id = format!("after-c{c:02}");
        let (status, answer) = running[c % 3].post_with(&format!("channel=%23c{c}"), &alert(&id));
        assert_eq!(status, 202, "{answer}");
        acknowledged.insert(id);
    }
    wait_all_delivered(&slack, &running[0], &acknowledged);
    assert!(duplicates(&delivered(&slack)).is_empty());
}
