//! Operating `host-test serve`: who may call it (a bearer token, loopback
//! only without one), what it refuses to read (bodies over the limit,
//! requests that trickle in), what it shows (`/healthz`, `/metrics`, log
//! lines in text or JSON) and how it stops (SIGTERM: what is in flight ends
//! and is recorded, exit 0).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::server::{alert, wait_until, whole_spool, write_config, Server};
use crate::common::web_api_config;
use host_test::mock_slack::{MockSlack, Reply};
use serde_json::{json, Value};

const TOKEN: &str = "serve-test-token-4f1c";

/// A raw request with optional bearer token; status and body.
fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

fn with_token(dir: &std::path::Path) -> String {
    let path = dir.join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn with_a_token_every_request_but_healthz_needs_it() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let token = with_token(dir.path());
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--auth-token-file", &token],
    );
    let body = alert("auth");
    for (who, given) in [
        ("no token", None),
        ("a wrong token", Some("serve-test-token-4f1")),
    ] {
        let (status, answer) = call(&server, "POST", "/", given, &body);
        assert_eq!(status, 401, "{who}: {answer}");
        assert!(answer.contains("Authorization: Bearer"), "{answer}");
        assert!(!answer.contains(TOKEN), "the token is never echoed");
    }
    for path in ["/spool", "/metrics"] {
        assert_eq!(call(&server, "GET", path, None, "").0, 401, "GET {path}");
    }
    let (status, health) = call(&server, "GET", "/healthz", None, "");
    assert_eq!(
        (status, health.as_str()),
        (200, r#"{"status":"ready","store":"journal"}"#)
    );

    let (status, answer) = call(&server, "POST", "/", Some(TOKEN), &body);
    assert_eq!(status, 202, "{answer}");
    wait_until("the delivery", || slack.requests().len() == 1);
    let (status, spool) = call(&server, "GET", "/spool", Some(TOKEN), "");
    assert_eq!(status, 200);
    assert!(spool.contains("\"pending\""), "{spool}");
    assert!(
        !server.logged().contains(TOKEN),
        "the token is never logged"
    );
}

#[test]
fn without_a_token_serve_listens_only_on_loopback_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[slack]]\nenabled = true\nurl = \"http://127.0.0.1:9/api/chat.postMessage\"\ntoken = \"xoxb-x\"\nchannel = \"#a\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ])
        .args(["--spool", dir.path().join("spool").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("0.0.0.0:0 without authentication")
            && stderr.contains("--auth-token-file")
            && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );
    // A token file that is not there is named.
    let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ])
        .args(["--spool", dir.path().join("spool").to_str().unwrap()])
        .args(["--auth-token-file", "/nonexistent/token"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/token"), "{stderr}");
}

#[test]
fn a_body_over_the_limit_is_refused_after_reading_no_more_than_the_limit() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--max-alert-kib", "4"],
    );

    // Declared too large: refused on the header, the body never sent.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 268435456\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than 4 KiB"), "{answer}");

    // Chunked, no length: cut off once past the limit, the rest unread.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("1000\r\n{}\r\n", "x".repeat(0x1000));
    let mut sent = 0;
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    // Up to 64 MiB offered; serve answers long before.
    while sent < 64 << 20 {
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
        sent += 0x1000;
        let mut buf = [0u8; 512];
        if let Ok(n) = stream.read(&mut buf) {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{answer:?} after {sent} bytes"
    );
    assert!(sent <= 64 << 10, "answered only after {sent} bytes");

    // An alert within the limit is still taken.
    assert_eq!(server.post(&alert("small")).0, 202);
    let (_, metrics) = call(&server, "GET", "/metrics", None, "");
    assert!(
        metrics.contains("slack_handler_requests_refused_total{status=\"413\"} 2"),
        "{metrics}"
    );
}

#[test]
fn requests_that_trickle_in_are_cut_off() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--read-timeout-secs", "1", "--head-timeout-secs", "1"],
    );

    // Headers that never end: the connection is closed.
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let closed = String::from_utf8_lossy(&buf);
    assert!(
        closed.is_empty() || closed.starts_with("HTTP/1.1 408"),
        "{closed}"
    );

    // Headers a byte every 200 ms: each byte is in time, the whole head is
    // not, and the deadline is the whole head's.
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    // Closed at all: with a deadline per byte it would never be.
    let closed_after = loop {
        let mut byte = [0u8; 1];
        match slow.read(&mut byte) {
            Ok(_) => break started.elapsed(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break started.elapsed(),
        }
        if slow.write_all(b"X").is_err() {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never closed");
    };
    eprintln!("a head trickled a byte every 200 ms was closed after {closed_after:?}");

    // A body that stops halfway: 408.
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\":")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("within 1 s"), "{answer}");

    // An idle keep-alive connection is closed too, and serve still serves.
    let mut idle = TcpStream::connect(server.addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut nothing = Vec::new();
    assert_eq!(idle.read_to_end(&mut nothing).unwrap_or(0), 0);
    assert_eq!(server.post(&alert("after")).0, 202);
}

/// A slowloris: connects, sends a header byte every 2 s for a head that
/// never ends, and connects again as soon as it is closed.
async fn trickle_headers(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let mut answer = [0u8; 256];
        for &b in head.iter().chain(std::iter::repeat(&b'a')) {
            if stop.load(Ordering::Relaxed) || s.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::select! {
                // Closed (or answered, which ends it too): connect again.
                _ = s.read(&mut answer) => break,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }
}

#[test]
fn six_hundred_connections_trickling_headers_starve_no_one() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let token = with_token(dir.path());
    // The defaults: 512 waiting for a head, 5 s for a whole head, 256 serving.
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--auth-token-file", &token],
    );
    let flood = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    for _ in 0..600 {
        flood.spawn(trickle_headers(server.addr(), stop.clone(), opened.clone()));
    }
    wait_until("600 trickling connections", || {
        opened.load(Ordering::Relaxed) >= 600
    });
    // Through a whole-head deadline, so some were closed and came back.
    let started = Instant::now();
    let (mut worst_post, mut worst_health) = (Duration::ZERO, Duration::ZERO);
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(7) {
        let asked = Instant::now();
        let (status, answer) = call(&server, "POST", "/", Some(TOKEN), &alert(&format!("t{n}")));
        worst_post = worst_post.max(asked.elapsed());
        assert_eq!(status, 202, "{answer}");
        let asked = Instant::now();
        let (status, _) = call(&server, "GET", "/healthz", None, "");
        worst_health = worst_health.max(asked.elapsed());
        assert_eq!(status, 200);
        n += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    let connections = opened.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    flood.shutdown_timeout(Duration::from_secs(1));
    eprintln!(
        "600 trickling connections ({connections} opened in all): {n} alerts, worst 202 after {worst_post:?}, worst /healthz after {worst_health:?}"
    );
    // Every alert and every /healthz was answered (asserted above) while
    // they trickled; how fast is a benchmark's figure, printed above.
    assert!(connections > 600, "no trickler was closed and came back");
    wait_until("every alert taken delivered", || {
        slack.requests().len() == n
    });
}

#[test]
fn under_a_flood_of_huge_and_slow_requests_serve_delivers_and_stays_small() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Each alert taken is one request to the stand-in (no storm message).
    let config = write_config(
        dir.path(),
        &format!("{}storm-after = 0\n", web_api_config(&slack)),
    );
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--read-timeout-secs", "2", "--max-connections", "64"],
    );
    let before = server.resident_kib().unwrap_or(0);
    let addr = server.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..48)
        .map(|n| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                    if n % 2 == 0 {
                        // Huge: a chunked body of up to 16 MiB.
                        let _ = s.write_all(
                            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                        );
                        let chunk = format!("10000\r\n{}\r\n", "y".repeat(0x10000));
                        for _ in 0..256 {
                            if s.write_all(chunk.as_bytes()).is_err() {
                                break;
                            }
                        }
                    } else {
                        // Slow: headers a byte at a time.
                        for b in b"POST / HTTP/1.1\r\nHost: x\r\n" {
                            if stop.load(std::sync::atomic::Ordering::Relaxed)
                                || s.write_all(&[*b]).is_err()
                            {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut peak = 0;
    let mut delivered = 0;
    while started.elapsed() < Duration::from_secs(8) {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let body = alert(&format!("during-{delivered}"));
            let raw = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
            let mut answer = String::new();
            if s.write_all(raw.as_bytes()).is_ok()
                && s.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 202")
            {
                delivered += 1;
            }
        }
        peak = peak.max(server.resident_kib().unwrap_or(0));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in flood {
        let _ = t.join();
    }
    wait_until("the alerts taken during the flood to be delivered", || {
        slack.requests().len() == delivered
    });
    eprintln!(
        "flood: resident {before} KiB before, peak {peak} KiB during; {delivered} alerts taken and delivered meanwhile"
    );
    assert!(delivered > 0, "serve took no alert during the flood");
    // 64 connections × 1 MiB at most, plus the runtime: well under 256 MiB.
    assert!(peak < 256 * 1024, "resident {peak} KiB during the flood");
}

#[test]
fn metrics_count_what_happened() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    slack.push_reply(Reply::json(
        200,
        json!({"ok": false, "error": "channel_not_found"}),
    ));
    slack.push_reply(
        Reply::json(429, json!({"ok": false, "error": "ratelimited"}))
            .with_header("Retry-After", "0"),
    );
    for id in ["gone", "limited"] {
        assert_eq!(server.post(&alert(id)).0, 202);
    }
    wait_until("two endings", || {
        server.spool()["finished"].as_array().map_or(0, Vec::len) == 2
    });
    let (status, text) = call(&server, "GET", "/metrics", None, "");
    assert_eq!(status, 200);
    for line in [
        "slack_handler_alerts_accepted_total 2",
        "slack_handler_alerts_delivered_total 1",
        "slack_handler_alerts_failed_total{code=\"channel_not_found\"} 1",
        "slack_handler_retries_total 1",
        "slack_handler_rate_limited_total 1",
        "slack_handler_alerts_pending 0",
        "slack_handler_oldest_pending_age_seconds 0.0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(text.contains("slack_handler_spool_fsyncs_total"), "{text}");
}

#[test]
fn json_logs_have_one_object_a_line_with_the_alert_and_its_channel() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--log-format", "json"],
    );
    assert_eq!(server.post_with("channel=%23ops", &alert("json")).0, 202);
    wait_until("the delivery to be logged", || {
        server.logged().contains("delivered")
    });
    let lines: Vec<Value> = server
        .logged()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let delivered = lines
        .iter()
        .find(|l| l["message"] == "delivered")
        .expect("a delivered line");
    assert_eq!(delivered["alert"], 1);
    assert_eq!(delivered["channel"], "alerts #ops");
    assert_eq!(delivered["level"], "INFO");
    assert!(!server.logged().contains("xoxb-test-token"));
}

#[test]
fn sigterm_lets_the_attempt_in_flight_end_is_recorded_and_exits_zero() {
    let slack = MockSlack::start().unwrap();
    slack.answer_after(Duration::from_millis(700));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let spool = dir.path().join("spool");
    let server = Server::start(&config, &spool, &[]);
    assert_eq!(server.post(&alert("in-flight")).0, 202);
    // Recorded on arrival; the answer comes 700 ms later.
    wait_until("the request in flight", || slack.received() == 1);
    let log = server.log.clone();
    let status = server.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("stopping"), "{logged}");
    // Recorded: the spool shows it delivered, nothing pending.
    let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(["spool", "--dir", spool.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["pending"], json!([]), "{shown}");
    assert_eq!(shown["finished"][0]["status"], "delivered", "{shown}");
    assert_eq!(slack.requests().len(), 1);
}

#[test]
fn failed_alerts_are_sent_again_over_http_or_from_the_cli() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let spool = dir.path().join("spool");
    let token = with_token(dir.path());
    let server = Server::start(&config, &spool, &["--auth-token-file", &token]);
    for _ in 0..2 {
        slack.push_reply(Reply::json(
            200,
            json!({"ok": false, "error": "channel_not_found"}),
        ));
    }
    for id in ["first", "second"] {
        let (status, _) = call(
            &server,
            "POST",
            "/?channel=%23gone",
            Some(TOKEN),
            &alert(id),
        );
        assert_eq!(status, 202);
    }
    let resendable = |server: &Server| -> Vec<u64> {
        let shown = whole_spool(|path| {
            serde_json::from_str(&call(server, "GET", path, Some(TOKEN), "").1).unwrap()
        });
        shown["resendable"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_u64().unwrap())
            .collect()
    };
    wait_until("two failures", || resendable(&server).len() == 2);

    // Over HTTP, authenticated: an unknown id is named and nothing is sent.
    let (status, _) = call(&server, "POST", "/spool/resend", None, r#"{"ids":[1]}"#);
    assert_eq!(status, 401);
    let (status, answer) = call(
        &server,
        "POST",
        "/spool/resend",
        Some(TOKEN),
        r#"{"ids":[1,99]}"#,
    );
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer.contains("alert 99 is not a failed alert"),
        "{answer}"
    );
    let (status, answer) = call(
        &server,
        "POST",
        "/spool/resend",
        Some(TOKEN),
        r#"{"ids":[1]}"#,
    );
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["resent"][0]["id"], 1);
    wait_until("the resent alert delivered", || slack.requests().len() == 3);
    assert_eq!(slack.requests()[2].json()["channel"], "#gone");
    assert_eq!(resendable(&server), [2]);

    // From the CLI: refused while serve runs, then done offline.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_host-test"))
            .args(["spool", "resend", "--dir", spool.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["--failed"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in use") && stderr.contains("POST /spool/resend"),
        "{stderr}"
    );
    server.kill();
    let out = cli(&["--failed"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("#2 resent as #"), "{stdout}");
    let out = cli(&["--id", "2"]);
    assert_eq!(out.status.code(), Some(2), "resent once only");
    let server = Server::start(&config, &spool, &["--auth-token-file", &token]);
    wait_until("the alert resent offline delivered", || {
        slack.requests().len() == 4
    });
    drop(server);
}

/// `spool --dir` shows every ending the journal holds, as a serve run with
/// a larger `--keep-finished` does, not only the newest 10,000.
#[test]
fn spool_dir_shows_every_ending_the_journal_holds() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let n = slack_alertd::spool::KEEP_FINISHED as u64 + 50;
    let mut journal = String::new();
    for id in 1..=n {
        journal +=
            &format!("{{\"op\":\"accept\",\"id\":{id},\"alert\":\"{{}}\",\"options\":[]}}\n");
        journal += &format!(
            "{{\"op\":\"done\",\"id\":{id},\"status\":\"delivered\",\"detail\":\"C1 {id}.0\",\"attempts\":1}}\n"
        );
    }
    std::fs::write(spool.join("journal.jsonl"), journal).unwrap();
    let shown = |json: bool| {
        let mut args = vec!["spool", "--dir", spool.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let listed: Value = serde_json::from_str(&shown(true)).unwrap();
    let finished = listed["finished"].as_array().unwrap();
    assert_eq!(finished.len() as u64, n);
    assert_eq!(finished[0]["id"], 1, "the oldest is there too");
    let text = shown(false);
    assert!(text.contains(&format!("\n{n} finished\n")), "{text:.300}");
    assert!(text.contains("  #1 Delivered after 1 attempt  C1 1.0\n"));
}
