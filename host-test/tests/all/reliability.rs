//! serve on a bad day: a disk that fills, senders that pass options that
//! are not theirs or that the component refuses, a flood of templates, and
//! a spool too big to show at once. Each through `host-test serve` (a child
//! process) and the Slack stand-in on 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::common::server::{alert, wait_until, write_config, Connection, Server};
use crate::common::web_api_config;
use host_test::mock_slack::MockSlack;
use serde_json::Value;

/// A tmpfs of `size` (e.g. `2m`) mounted at `dir`, unmounted when dropped.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts it; when this process may not (not root, no `mount`, a
    /// container without the right), why, and how to run the test.
    fn mount(dir: &Path, size: &str) -> Result<SmallDisk, String> {
        let how =
            "it mounts a small tmpfs to fill the spool's disk: run the tests as root, as CI does";
        if !is_root() {
            return Err(format!("not root; {how}"));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("running `mount` ({e}); {how}, with util-linux's `mount`"))?;
        if !mounted.status.success() {
            return Err(format!(
                "`mount -t tmpfs` failed as root ({}: {}); {how}, where root may mount (a container needs CAP_SYS_ADMIN)",
                mounted.status,
                String::from_utf8_lossy(&mounted.stderr).trim()
            ));
        }
        Ok(SmallDisk {
            dir: dir.to_path_buf(),
        })
    }

    /// Gives the filesystem more room, in place (space freed).
    fn grow(&self, size: &str) {
        let grown = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(grown.success(), "remounting the tmpfs");
    }
}

/// Whether this process runs as root (its effective uid is 0).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            uids.split_whitespace().nth(1).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// An alert of about 2 KB.
fn big_alert(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","message":"alert {id} ","details":"{}","time":"2026-11-26T10:00:00Z","level":"CRITICAL"}}"#,
        "d".repeat(1900)
    )
}

/// The alert ids the stand-in was sent (`alert ID ` in each message), with
/// how many times each.
fn delivered_ids(slack: &MockSlack) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for request in slack.requests() {
        let body = String::from_utf8_lossy(&request.body).to_string();
        let mut rest = body.as_str();
        let mut ids = BTreeSet::new();
        while let Some(at) = rest.find("alert df-") {
            let tail = &rest[at + 6..];
            let end = tail.find(' ').unwrap_or(tail.len());
            ids.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
        for id in ids {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    server.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ))
}

/// The issue's disk-full run: a 2 MiB filesystem, 1,500 alerts of ~2 KB
/// from 16 keep-alive clients. Every `202` is delivered exactly once after
/// a `kill -9` and a restart; every refusal is a `503` with `Retry-After`
/// and is never delivered; `/healthz` and `/metrics` say so meanwhile; once
/// space is freed, intake resumes without a restart.
#[test]
fn a_full_disk_refuses_with_503_and_every_acknowledged_alert_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let disk = match SmallDisk::mount(&dir.path().join("disk"), "2m") {
        Ok(disk) => disk,
        Err(why) => return crate::common::lacking("root", &why),
    };
    let slack = MockSlack::start().unwrap();
    // Each acknowledged alert its own message, counted (no storm message).
    let config = write_config(
        dir.path(),
        &format!("{}storm-after = 0\n", web_api_config(&slack)),
    );
    let spool = disk.dir.join("spool");
    // One channel at one message a minute: after the first three (the
    // burst) everything stays pending, so the disk fills.
    let server = Server::start(&config, &spool, &["--channel-interval-ms", "60000"]);
    let addr = server.addr();
    let statuses = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let statuses = statuses.clone();
            std::thread::spawn(move || {
                let mut connection = Connection::open(addr).unwrap();
                for n in 0..1500 / 16 + 1 {
                    let id = format!("df-{c:02}-{n:03}");
                    let status = connection
                        .post("channel=%23alerts", &big_alert(&id))
                        .unwrap_or_else(|e| panic!("posting {id}: {e}"));
                    statuses.lock().unwrap().push((id, status));
                }
            })
        })
        .collect();
    // While they post: the disk fills, and serve says so.
    let mut saw_degraded = None;
    while clients.iter().any(|c| !c.is_finished()) {
        let (status, health) = get(&server, "/healthz");
        if status == 503 && health["status"] == "degraded" {
            saw_degraded = Some(health["reason"].as_str().unwrap_or_default().to_string());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for c in clients {
        c.join().unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    let accepted: BTreeSet<String> = statuses
        .iter()
        .filter(|(_, s)| s.contains(" 202 "))
        .map(|(id, _)| id.clone())
        .collect();
    let refused: BTreeSet<String> = statuses
        .iter()
        .filter(|(_, s)| s.contains(" 503 "))
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        accepted.len() + refused.len(),
        statuses.len(),
        "every answer is a 202 or a 503: {:?}",
        statuses
            .iter()
            .filter(|(_, s)| !s.contains(" 202 ") && !s.contains(" 503 "))
            .take(3)
            .collect::<Vec<_>>()
    );
    assert!(!refused.is_empty(), "the disk filled");
    assert!(accepted.len() > 100, "{} accepted", accepted.len());
    // Told while it happened, and counted.
    if saw_degraded.is_none() {
        // The last failure may have been between polls; it still stands.
        let (status, health) = get(&server, "/healthz");
        assert_eq!(status, 503, "{health}");
        saw_degraded = health["reason"].as_str().map(String::from);
    }
    let reason = saw_degraded.unwrap();
    assert!(
        reason.contains("disk is full") && reason.contains("free space"),
        "{reason}"
    );
    let metrics = Server::metrics(&server);
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("slack_handler_spool_write_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("write errors counted");
    assert!(errors > 0, "{metrics}");
    assert!(
        server.logged().contains("free space"),
        "a log line says what to free"
    );

    // Space comes back, serve is not restarted: intake resumes.
    disk.grow("64m");
    let (status, answer) = server.post_with("channel=%23alerts", &big_alert("df-after-space"));
    assert_eq!(status, 202, "{answer}");
    let (status, health) = get(&server, "/healthz");
    assert_eq!((status, health["status"].as_str()), (200, Some("ready")));
    let mut accepted = accepted;
    accepted.insert("df-after-space".into());

    // kill -9, restart at full speed: exactly the acknowledged alerts.
    server.kill();
    let server = Server::start(&config, &spool, &[]);
    wait_until("every acknowledged alert delivered", || {
        delivered_ids(&slack).len() >= accepted.len()
    });
    wait_until("nothing pending", || {
        server.spool()["pending"] == serde_json::json!([])
    });
    let delivered = delivered_ids(&slack);
    let delivered_set: BTreeSet<String> = delivered.keys().cloned().collect();
    assert_eq!(
        delivered_set.difference(&accepted).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "nothing refused was delivered"
    );
    assert_eq!(
        accepted.difference(&delivered_set).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "nothing acknowledged was lost"
    );
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    eprintln!(
        "disk-full run: {} acknowledged, {} refused with 503, {} delivered, 0 lost",
        accepted.len(),
        refused.len(),
        delivered.len()
    );
}

fn started(dir: &Path, slack: &MockSlack, extra: &[&str]) -> Server {
    let config = write_config(dir, &web_api_config(slack));
    Server::start(&config, &dir.join("spool"), extra)
}

#[test]
fn options_that_are_the_hosts_or_that_the_component_refuses_are_refused_before_storing() {
    let dir = tempfile::tempdir().unwrap();
    let slack = MockSlack::start().unwrap();
    let server = started(dir.path(), &slack, &[]);
    let refused = |query: &str, names: &str| {
        let (status, answer) = server.post_with(query, &alert("cpu"));
        assert_eq!(status, 400, "{query}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(names), "{query}: {error}");
        assert!(!error.contains("xoxb"), "{error}");
    };
    // The host's own: whoever may post must not overwrite any message.
    refused(
        "on-recovery=update&previous-channel-id=C1&previous-ts=1.2",
        "previous-channel-id",
    );
    refused("previous-ts=1.2", "previous-ts");
    // Nor redraw one, nor mark or name an alert for its buttons.
    refused(
        "refresh=true&previous-channel-id=C1&previous-ts=1.2",
        "refresh",
    );
    refused("alert-key=%5B%22other%22%2C%5B%5D%5D", "alert-key");
    refused("acknowledged-by=U1&acknowledged-at=1", "acknowledged-by");
    refused("silenced-by=U1&silenced-until=1", "silenced-by");
    // The app's signing secret is configuration, never an option.
    refused("signing-secret=guess", "signing-secret");
    // What the component does not take, or would refuse.
    refused("bogus=1", "bogus");
    refused("url=http%3A%2F%2Fevil.example", "url");
    refused("token=xoxb-stolen", "token");
    refused("layout=fancy", "layout");
    refused("layout=blocks&title=%7B%7B%23if%7D%7D", "title");
    refused("workspace=nowhere", "nowhere");
    // Nothing refused was stored or sent.
    let shown = server.spool();
    assert_eq!(shown["pending"], serde_json::json!([]));
    assert_eq!(shown["finished"], serde_json::json!([]));
    // A good one still goes, and its options are remembered as good.
    for _ in 0..2 {
        let (status, answer) = server.post_with(
            "channel=%23ops&layout=blocks&title=%7B%7BID%7D%7D",
            &alert("cpu"),
        );
        assert_eq!(status, 202, "{answer}");
    }
    wait_until("both delivered", || slack.requests().len() == 2);
}

/// The issue's template flood: one worker, 300 alerts each with its own
/// large templates. Every one is delivered (none fails on the instance's
/// memory), or refused at intake when a template passes the documented
/// limit.
#[test]
fn a_flood_of_unique_templates_fails_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let slack = MockSlack::start().unwrap();
    let server = started(dir.path(), &slack, &["--max-in-flight", "1"]);
    let mut connection = Connection::open(server.addr()).unwrap();
    let mut accepted = 0;
    for n in 0..300 {
        // Two templates of about 7 KB each, all different, dense with
        // expressions (a compiled template grows with them): 600 such
        // templates once took the instance past its 64 MiB.
        let title = format!("{n} {}", "{{id}}".repeat(1_150));
        let text = format!("{n} {}", "{{message}} ".repeat(580));
        let query = format!(
            "layout=blocks&title={}&text={}",
            encode(&title),
            encode(&text)
        );
        let status = connection.post(&query, &alert(&format!("t{n}"))).unwrap();
        assert!(status.contains(" 202 "), "{n}: {status}");
        accepted += 1;
    }
    // Past the documented limit: refused at intake, naming it.
    let title = "x".repeat(20_000);
    let (status, answer) = server.post_with(
        &format!("layout=blocks&title={}", encode(&title)),
        &alert("too-big"),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("title"),
        "{answer}"
    );
    wait_until("all delivered", || {
        server.spool()["finished"].as_array().map(Vec::len) == Some(accepted)
    });
    let shown = server.spool();
    let failed: Vec<&Value> = shown["finished"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] != "delivered")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /spool` with thousands of endings answers a page, counts first,
/// and every entry can be reached by following `next`.
#[test]
fn get_spool_answers_a_bounded_page_and_pages_reach_everything() {
    let dir = tempfile::tempdir().unwrap();
    let slack = MockSlack::start().unwrap();
    let server = started(dir.path(), &slack, &["--channel-interval-ms", "0"]);
    let mut connection = Connection::open(server.addr()).unwrap();
    for n in 0..1_200 {
        let status = connection
            .post(&format!("channel=%23c{}", n % 50), &alert(&format!("p{n}")))
            .unwrap();
        assert!(status.contains(" 202 "), "{status}");
    }
    wait_until("all delivered", || {
        get(&server, "/spool").1["counts"]["finished"] == 1_200
    });
    let (status, page) = get(&server, "/spool");
    assert_eq!(status, 200);
    assert_eq!(page["counts"]["pending"], 0);
    assert_eq!(page["limit"], 100);
    let finished = page["finished"]["items"].as_array().unwrap();
    assert_eq!(finished.len(), 100, "a page, not everything");
    assert!(
        page.to_string().len() < 64 * 1024,
        "{} bytes",
        page.to_string().len()
    );
    // Newest first; following `next` reaches every ending once.
    let whole = server.spool();
    let ids: BTreeSet<u64> = whole["finished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1_200);
    assert_eq!(
        finished[0]["id"],
        whole["finished"].as_array().unwrap().last().unwrap()["id"]
    );
    // Parameters that make no sense are refused, naming them.
    for (path, names) in [
        ("/spool?limit=0", "limit"),
        ("/spool?limit=lots", "limit"),
        ("/spool?list=everything", "list"),
        ("/spool?after=3", "after"),
        ("/spool?sort=asc", "sort"),
    ] {
        let (status, answer) = get(&server, path);
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(names),
            "{answer}"
        );
    }
    let (_, big) = get(&server, "/spool?list=finished&limit=100000");
    assert_eq!(big["limit"], 1000, "capped");
}
