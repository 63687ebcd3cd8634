//! serve under a flood of unsigned requests to its Request URL (`POST
//! /slack/interactions`, which needs no token), beside the same serve
//! without the flood, in one run: its CPU, its resident memory, the lines
//! it logs, and the latency of the alerts posted meanwhile (to `202`, and
//! to their `chat.postMessage` at the stand-in).
//!
//! Two phases of `FLOOD_SECS` (30) each on one serve (journal, fsync on):
//! quiet, then flooded. In both an alert is posted every 50 ms (100
//! channels in turn). In the flood, `FLOOD_CLIENTS` (16) threads post
//! unsigned requests as fast as they are answered, each on a new
//! connection: half 4 KiB forms, half 1 MiB bodies (no signature headers:
//! refused on the head, the body never read). The clients share the
//! machine's cores with serve.
//!
//! Run: `cargo bench -p host-test --bench flood`.

// A bench uses part of the tests' serve helper.
#[allow(dead_code)]
#[path = "../tests/all/common/server.rs"]
mod server;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use host_test::mock_slack::MockSlack;
use host_test::slack_clicks::buttons_config;
use server::{write_config, Server};

const SECRET: &str = "bench-signing-secret";

/// What one phase measured.
struct Figures {
    cpu_percent: f64,
    rss_peak_mib: f64,
    log_lines: usize,
    log_bytes: u64,
    alerts: usize,
    accepted: Vec<Duration>,
    delivered: Vec<Duration>,
    undelivered: usize,
    flood_requests: u64,
    flood_refused: u64,
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// serve's CPU time so far (user + system), from `/proc/PID/stat`.
fn cpu_time(pid: u32, tick: f64) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_secs_f64(ticks as f64 / tick)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One unsigned request; its status, if an answer came.
fn unsigned(addr: SocketAddr, body: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    let head = format!(
        "POST /slack/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    // serve may answer on the head and close before the body is all sent.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let line = String::from_utf8_lossy(&answer[..answer.len().min(32)]).to_string();
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn phase(
    server: &Server,
    seen: &Arc<Mutex<HashMap<String, Instant>>>,
    name: &str,
    secs: u64,
    clients: usize,
    tick: f64,
) -> Figures {
    let pid = server.pid();
    let log_before = std::fs::read_to_string(&server.log).unwrap_or_default();
    let cpu_before = cpu_time(pid, tick);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut threads = Vec::new();
    for c in 0..clients {
        let (stop, sent, refused, addr) =
            (stop.clone(), sent.clone(), refused.clone(), server.addr());
        let body = if c % 2 == 0 {
            format!("payload={}", "x".repeat(4096)).into_bytes()
        } else {
            vec![b'x'; 1 << 20]
        };
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let status = unsigned(addr, &body);
                sent.fetch_add(1, Ordering::Relaxed);
                if matches!(status, Some(401 | 413 | 429)) {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let rss = server::proc_figure(pid, "status", "VmRSS:").unwrap_or(0);
                peak.fetch_max(rss, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut posted = Vec::new();
    let mut accepted = Vec::new();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        let id = format!("{name}-{i}");
        let alert = format!(
            r#"{{"id":"{id}","message":"latency {id} end","time":"2026-11-30T10:00:00Z","level":"CRITICAL"}}"#
        );
        let at = Instant::now();
        let (code, _) = server.request(&format!(
            "POST /?channel=%23ch{} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{alert}",
            i % 100,
            alert.len()
        ));
        if code == 202 {
            accepted.push(at.elapsed());
            posted.push((id, at));
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(50).saturating_sub(at.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let _ = sampler.join();
    let cpu = cpu_time(pid, tick) - cpu_before;
    let wall = started.elapsed();
    // Every alert of the phase delivered (or 30 s more).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let seen = seen.lock().unwrap();
        if posted.iter().all(|(id, _)| seen.contains_key(id)) {
            break;
        }
        drop(seen);
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = seen.lock().unwrap();
    let mut delivered: Vec<Duration> = posted
        .iter()
        .filter_map(|(id, at)| seen.get(id).map(|d| d.duration_since(*at)))
        .collect();
    let undelivered = posted.len() - delivered.len();
    let log_after = std::fs::read_to_string(&server.log).unwrap_or_default();
    let added = &log_after[log_before.len().min(log_after.len())..];
    accepted.sort();
    delivered.sort();
    Figures {
        cpu_percent: cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        rss_peak_mib: peak.load(Ordering::Relaxed) as f64 / 1024.0,
        log_lines: added.lines().count(),
        log_bytes: added.len() as u64,
        alerts: posted.len(),
        accepted,
        delivered,
        undelivered,
        flood_requests: sent.load(Ordering::Relaxed),
        flood_refused: refused.load(Ordering::Relaxed),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn ratio(flood: f64, quiet: f64) -> String {
    if quiet == 0.0 {
        return "—".into();
    }
    format!("{:.2}x", flood / quiet)
}

fn main() {
    let secs = env("FLOOD_SECS", 30);
    let clients = env("FLOOD_CLIENTS", 16) as usize;
    let tick = clock_ticks();
    let slack = MockSlack::start().unwrap();
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    {
        let seen = seen.clone();
        slack.observe(move |r, _| {
            if !r.path.ends_with("/chat.postMessage") {
                return;
            }
            let text = String::from_utf8_lossy(&r.body);
            if let Some(id) = text
                .split("latency ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
            {
                seen.lock().unwrap().entry(id.to_string()).or_insert(r.at);
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &buttons_config(&slack.url(), SECRET));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    let quiet = phase(&server, &seen, "quiet", secs, 0, tick);
    let flood = phase(&server, &seen, "flood", secs, clients, tick);
    println!(
        "serve (journal, fsync on), an alert every 50 ms for {secs} s, without and with {clients} clients flooding POST /slack/interactions unsigned (half 4 KiB, half 1 MiB):"
    );
    println!("| | without the flood | with the flood | ratio |\n|---|---|---|---|");
    let row =
        |what: &str, q: String, f: String, r: String| println!("| {what} | {q} | {f} | {r} |");
    row(
        "unsigned requests answered (refused)",
        "0".into(),
        format!(
            "{} ({}/s; {} refused)",
            flood.flood_requests,
            flood.flood_requests / secs.max(1),
            flood.flood_refused
        ),
        "—".into(),
    );
    row(
        "serve's CPU (of one core)",
        format!("{:.1} %", quiet.cpu_percent),
        format!("{:.1} %", flood.cpu_percent),
        ratio(flood.cpu_percent, quiet.cpu_percent),
    );
    row(
        "serve's resident memory, peak",
        format!("{:.1} MiB", quiet.rss_peak_mib),
        format!("{:.1} MiB", flood.rss_peak_mib),
        ratio(flood.rss_peak_mib, quiet.rss_peak_mib),
    );
    row(
        "log lines (bytes)",
        format!("{} ({} B)", quiet.log_lines, quiet.log_bytes),
        format!("{} ({} B)", flood.log_lines, flood.log_bytes),
        ratio(flood.log_lines as f64, quiet.log_lines as f64),
    );
    row(
        "alerts posted (undelivered)",
        format!("{} ({})", quiet.alerts, quiet.undelivered),
        format!("{} ({})", flood.alerts, flood.undelivered),
        "—".into(),
    );
    for (what, q, f) in [
        ("alert to 202, median", &quiet.accepted, &flood.accepted),
        (
            "alert to chat.postMessage, median",
            &quiet.delivered,
            &flood.delivered,
        ),
    ] {
        let (q, f) = (percentile(q, 0.5), percentile(f, 0.5));
        row(what, ms(q), ms(f), ratio(f.as_secs_f64(), q.as_secs_f64()));
    }
    for (what, q, f) in [
        ("alert to 202, p99", &quiet.accepted, &flood.accepted),
        (
            "alert to chat.postMessage, p99",
            &quiet.delivered,
            &flood.delivered,
        ),
    ] {
        let (q, f) = (percentile(q, 0.99), percentile(f, 0.99));
        row(what, ms(q), ms(f), ratio(f.as_secs_f64(), q.as_secs_f64()));
    }
    let metrics = server.metrics();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("slack_handler_interactions_refused_total{"))
    {
        println!("{line}");
    }
}
