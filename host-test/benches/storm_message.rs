//! Issue 29's storm message, measured: N alerts fire into one channel, then
//! all N recover, against a Slack stand-in that enforces Slack's rules (one
//! message a second per channel with a burst of 3, `429` + `Retry-After: 1`
//! past it; `chat.update` in tier 3, 50 a minute per token, burst 3) and
//! answers 200 ms after each request. Three contenders:
//!
//! 1. `serve` with storms (its defaults, `--storm-calm-secs 5`): the storm
//!    is one message, edited in place;
//! 2. `serve` with `storm-after = 0`: one message per alert, as before
//!    issue 29. At one message a second 1,000 alerts take a quarter of an
//!    hour, so it takes `STORM_MESSAGE_OFF_ALERTS` (60; `--quick` 30) of
//!    them, and its time for N is extrapolated from its measured rate
//!    (labelled so);
//! 3. Alertmanager's own Slack notifier (`slack_configs` to an incoming
//!    webhook at the stand-in), the N alerts one group (`group_by:
//!    ['alertname']`), pushed through `POST /api/v2/alerts` and resolved
//!    the same way. Debian's `prometheus-alertmanager`, or the binary
//!    `ALERTMANAGER` names; skipped, saying why, when it cannot start.
//!
//! For each: seconds until every alert is shown (serve: until every alert
//! ended in `GET /spool`; Alertmanager: until the stand-in received the
//! group's `[FIRING:N]` message), seconds until every recovery is shown
//! (Alertmanager: its `[RESOLVED]` message), the Slack calls made, the
//! channel's top-level messages, `429`s (posts and edits) and requests
//! inside a `Retry-After` window. A markdown table at the end.
//!
//! Run: `cargo bench -p host-test --bench storm_message` (`-- --quick`: 200
//! alerts; `STORM_MESSAGE_ALERTS=N`, default 1,000). It fails only when
//! serve loses an alert (one that does not end `delivered`): slowness is
//! what it measures.

// A bench uses part of the tests' serve helper.
#[allow(dead_code)]
#[path = "../tests/all/common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use host_test::mock_slack::MockSlack;
use server::{write_config, Connection, Server};

/// Slack's round trip, as the stand-in answers.
const RTT: Duration = Duration::from_millis(200);
/// `--storm-calm-secs` of the storm row: long enough that the recoveries,
/// posted right after the last firing alert ended, land in the same storm.
const CALM_SECS: u64 = 5;
/// Keep-alive connections posting the alerts into serve, so that intake
/// (each `202` waits for the journal) is not what is measured.
const POSTERS: usize = 8;
/// A phase whose count has not moved for this long has stopped: what has
/// not ended by then is lost. Not a timed assertion: a stuck run must end.
const STUCK: Duration = Duration::from_secs(120);
/// How often serve's counts and the stand-in's requests are read.
const POLL: Duration = Duration::from_millis(50);

/// How one contender took the storm and its recovery.
struct Row {
    who: String,
    /// Alerts it was given (fewer than the storm's for `storm-after = 0`).
    alerts: usize,
    /// From the first alert posted until every alert was shown.
    fired: Option<Duration>,
    /// From the first recovery posted until every recovery was shown.
    recovered: Option<Duration>,
    calls: usize,
    top_level: usize,
    limited: usize,
    inside_window: usize,
}

impl Row {
    /// The stand-in's figures, the times still to come.
    fn new(who: String, alerts: usize, slack: &MockSlack, top_level: usize) -> Row {
        Row {
            who,
            alerts,
            fired: None,
            recovered: None,
            calls: slack.received(),
            top_level,
            limited: slack.rate_limited() + slack.updates_limited(),
            inside_window: slack.inside_retry_after() + slack.updates_inside_retry_after(),
        }
    }

    fn print(&self) {
        println!(
            "  {}: {} alerts; all firing shown after {}, all recovered after {}; \
             {} Slack calls, {} top-level messages, {} × 429, {} inside a Retry-After window",
            self.who,
            self.alerts,
            seconds(self.fired),
            seconds(self.recovered),
            self.calls,
            self.top_level,
            self.limited,
            self.inside_window,
        );
    }

    fn table_line(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.who,
            self.alerts,
            seconds(self.fired),
            seconds(self.recovered),
            self.calls,
            self.top_level,
            self.limited,
            self.inside_window
        )
    }
}

fn seconds(took: Option<Duration>) -> String {
    took.map_or("did not end".into(), |t| {
        format!("{:.1} s", t.as_secs_f64())
    })
}

/// `NAME` from the environment, else `quick` or `full`.
fn count(name: &str, quick: bool, quick_default: usize, full: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(n) => n.parse().with_context(|| format!("{name}: a number")),
        Err(_) if quick => Ok(quick_default),
        Err(_) => Ok(full),
    }
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let alerts = count("STORM_MESSAGE_ALERTS", quick, 200, 1_000)?;
    let off_alerts = count("STORM_MESSAGE_OFF_ALERTS", quick, 30, 60)?.min(alerts);
    if off_alerts < 5 {
        bail!("at least 5 alerts, for a storm to form");
    }
    println!(
        "{alerts} alerts into one channel, then all recover; Slack {} ms away, \
         1 message/s per channel (burst 3), chat.update 50/min per token (burst 3):",
        RTT.as_millis()
    );
    let mut rows = Vec::new();
    let mut lost = Vec::new();

    let (row, missing) = serve(alerts, true)?;
    row.print();
    lost.extend(missing);
    rows.push(row.table_line());

    let (row, missing) = serve(off_alerts, false)?;
    row.print();
    lost.extend(missing);
    rows.push(row.table_line());
    let rate = |took: Option<Duration>| {
        took.map(|t| off_alerts as f64 / t.as_secs_f64())
            .filter(|r| *r > 0.0)
    };
    let extrapolated = |took: Option<Duration>| match rate(took) {
        Some(rate) => format!("~{:.0} s (extrapolated)", alerts as f64 / rate),
        None => "-".into(),
    };
    let per_second =
        |took: Option<Duration>| rate(took).map_or("-".into(), |r| format!("{r:.2} alerts/s"));
    // The floor: past a burst of 3, one message a second, and the last
    // answer a round trip later.
    println!(
        "    measured rate: firing {}, recovering {}; for {alerts} alerts: firing {}, recovering {} \
         (the rate limit's floor: {:.0} s each)",
        per_second(row.fired),
        per_second(row.recovered),
        extrapolated(row.fired),
        extrapolated(row.recovered),
        alerts.saturating_sub(3) as f64 + RTT.as_secs_f64(),
    );
    rows.push(format!(
        "| serve, `storm-after = 0`, extrapolated from {off_alerts} | {alerts} | {} | {} | - | - | - | - |",
        extrapolated(row.fired),
        extrapolated(row.recovered),
    ));

    match alertmanager(alerts) {
        Ok(row) => {
            row.print();
            rows.push(row.table_line());
        }
        Err(why) => println!("  Alertmanager: skipped ({why:#})"),
    }

    println!();
    println!(
        "| {alerts} alerts into one channel, then all recover | alerts | all firing shown | all recovered shown | Slack calls | top-level messages | 429s | inside Retry-After |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!("{row}");
    }
    if !lost.is_empty() {
        bail!("serve lost alerts: {}", lost.join("; "));
    }
    Ok(())
}

// serve.

/// One Web API workspace at the stand-in, its default channel `#storm`.
fn config(url: &str, storms: bool) -> String {
    let off = if storms { "" } else { "storm-after = 0\n" };
    format!(
        "[[slack]]\nenabled = true\ndefault = true\nurl = \"{url}/api/chat.postMessage\"\ntoken = \"xoxb-bench\"\nchannel = \"#storm\"\n{off}"
    )
}

/// An event of alert `id` at `level`, in Kapacitor's post-handler JSON.
fn event(id: &str, level: &str) -> String {
    format!(
        r#"{{"id":"{id}","message":"{id} is {level}","time":"2026-12-06T10:00:00Z","duration":60000000000,"level":"{level}","recoverable":true}}"#
    )
}

/// `host-test serve` with `alerts` alerts firing, then recovering; the row,
/// and what it lost (as a sentence), if anything.
fn serve(alerts: usize, storms: bool) -> Result<(Row, Option<String>)> {
    let who = if storms {
        format!("serve, storms (`storm-after` 4, calm {CALM_SECS} s)")
    } else {
        "serve, `storm-after = 0` (measured)".to_string()
    };
    let slack = MockSlack::start()?;
    slack.limit_like_slack();
    slack.answer_after(RTT);
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), &config(&slack.url(), storms));
    let calm = CALM_SECS.to_string();
    // serve's defaults, given because the helper scales time down unless
    // told.
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &[
            "--channel-interval-ms",
            "1000",
            "--backoff-base-ms",
            "500",
            "--storm-calm-secs",
            &calm,
        ],
    );
    let first_post = Instant::now();
    post_all(server.addr(), alerts, "CRITICAL")?;
    let intake = first_post.elapsed();
    let fired = wait_ended(&server, alerts).then(|| first_post.elapsed());
    let mut recovered = None;
    let mut recovery_intake = Duration::ZERO;
    if fired.is_some() {
        let started = Instant::now();
        post_all(server.addr(), alerts, "OK")?;
        recovery_intake = started.elapsed();
        recovered = wait_ended(&server, 2 * alerts).then(|| started.elapsed());
        println!(
            "    the recoveries were posted {:.2} s after the first alert",
            (started - first_post).as_secs_f64()
        );
    }
    println!(
        "    posting the alerts took {:.0} ms, the recoveries {:.0} ms",
        intake.as_secs_f64() * 1e3,
        recovery_intake.as_secs_f64() * 1e3
    );
    if storms && recovered.is_some() {
        // The storm's last edit, once calm, says it is over: a Slack call
        // of this storm too.
        let closing = Instant::now();
        // Its top-level text begins so (a bare "over" is in "recovered").
        let closed = || {
            slack.messages().iter().any(|m| {
                m.body["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Storm over"))
            })
        };
        while !closed() && closing.elapsed() < Duration::from_secs(CALM_SECS + 60) {
            std::thread::sleep(POLL);
        }
        if closed() {
            println!(
                "    the storm message said it was over {:.1} s after the last recovery ended",
                closing.elapsed().as_secs_f64()
            );
        } else {
            println!(
                "    note: no storm message said it was over {} s after the last recovery ended",
                CALM_SECS + 60
            );
        }
    }
    let endings = server.spool()["finished"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let delivered = endings
        .iter()
        .filter(|e| e["status"] == "delivered")
        .count();
    let in_storm = endings
        .iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("shown in storm "))
        })
        .count();
    let messages = slack.messages();
    let top_level = messages.iter().filter(|m| m.thread_ts.is_none()).count();
    let row = Row {
        fired,
        recovered,
        ..Row::new(who, alerts, &slack, top_level)
    };
    println!(
        "    {} events ended: {delivered} delivered ({in_storm} shown in a storm message), {} in threads, {} edits",
        endings.len(),
        messages.len() - top_level,
        messages.iter().map(|m| m.updates).sum::<usize>(),
    );
    if let Some(last) = messages.iter().rev().find(|m| m.thread_ts.is_none()) {
        let text = last.body["text"]
            .as_str()
            .filter(|t| !t.is_empty())
            .or(last.body["attachments"][0]["text"].as_str())
            .unwrap_or_default();
        println!(
            "    the channel's last message now begins: {:?}",
            text.lines().next().unwrap_or_default()
        );
    }
    let calls = slack.requests();
    if calls.len() <= 12 {
        let when: Vec<String> = calls
            .iter()
            .map(|r| {
                let method = r.path.rsplit('/').next().unwrap_or_default();
                format!("{method} +{:.2} s", (r.at - first_post).as_secs_f64())
            })
            .collect();
        println!("    Slack calls: {}", when.join(", "));
    }
    let logged = server.logged();
    let warned: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    if let Some(first) = warned.first() {
        println!(
            "    serve logged {} ERROR/WARN lines, the first: {first}",
            warned.len()
        );
    }
    let lost = (delivered < 2 * alerts).then(|| {
        let mut statuses: Vec<String> = endings
            .iter()
            .filter(|e| e["status"] != "delivered")
            .map(|e| e["status"].to_string())
            .collect();
        statuses.sort();
        statuses.dedup();
        format!(
            "{}: {} of {} events not delivered (other endings: {})",
            row.who,
            2 * alerts - delivered,
            2 * alerts,
            statuses.join(", ")
        )
    });
    Ok((row, lost))
}

/// Posts alerts `host0000`… at `level`, spread over [`POSTERS`] keep-alive
/// connections.
fn post_all(addr: SocketAddr, alerts: usize, level: &str) -> Result<()> {
    std::thread::scope(|scope| {
        let posters: Vec<_> = (0..POSTERS.min(alerts))
            .map(|first| {
                scope.spawn(move || -> Result<()> {
                    let mut serve = Connection::open(addr)?;
                    for n in (first..alerts).step_by(POSTERS) {
                        let status = serve.post("", &event(&format!("host{n:04}"), level))?;
                        if !status.contains(" 202 ") {
                            bail!("serve refused an alert: {status}");
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        posters
            .into_iter()
            .try_for_each(|p| p.join().map_err(|_| anyhow!("a poster panicked"))?)
    })
}

/// Whether `total` events ended and none is pending, before the count
/// stood still for [`STUCK`]. Reads `GET /spool`'s counts only.
fn wait_ended(server: &Server, total: usize) -> bool {
    let counts = || {
        let (_, answer) = server.request(
            "GET /spool?list=pending&limit=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let n = |list: &str| answer["counts"][list].as_u64().unwrap_or(0) as usize;
        (n("finished"), n("pending"))
    };
    let (mut seen, mut progress) = (0, Instant::now());
    loop {
        let (finished, pending) = counts();
        if finished >= total && pending == 0 {
            return true;
        }
        if finished > seen {
            (seen, progress) = (finished, Instant::now());
        } else if progress.elapsed() > STUCK {
            println!(
                "    note: stuck at {finished} of {total} ended, {pending} pending, for {} s",
                STUCK.as_secs()
            );
            return false;
        }
        std::thread::sleep(POLL);
    }
}

// Alertmanager.

/// A real Alertmanager on a free port of 127.0.0.1, stopped when dropped.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts `binary` with one route grouping by `alertname` into a Slack
    /// receiver posting to the incoming webhook `webhook`.
    fn start(binary: &Path, webhook: &str) -> Result<Alertmanager> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                r#"route:
  receiver: slack
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: slack
    slack_configs:
      - api_url: '{webhook}'
        channel: '#storm'
        send_resolved: true
"#
            ),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (apt-get install prometheus-alertmanager, or ALERTMANAGER=PATH)",
                    binary.display()
                )
            })?;
        let am = Alertmanager {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        let starting = Instant::now();
        while am.call("GET", "/-/ready", "").map(|(s, _)| s) != Some(200) {
            if starting.elapsed() > Duration::from_secs(60) {
                bail!("{} not ready after 60 s", binary.display());
            }
            std::thread::sleep(POLL);
        }
        Ok(am)
    }

    /// One request to its API; the status and body, or `None` when it does
    /// not answer (yet).
    fn call(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(self.addr).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let status = answer.split_whitespace().nth(1)?.parse().ok()?;
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((status, body))
    }

    /// Pushes `alerts` through its API v2, as Prometheus does.
    fn push(&self, alerts: &Value) -> Result<()> {
        match self.call("POST", "/api/v2/alerts", &alerts.to_string()) {
            Some((200, _)) => Ok(()),
            Some((status, body)) => bail!("Alertmanager refused the alerts: {status} {body}"),
            None => bail!("Alertmanager did not answer"),
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rfc3339(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    slack_alert_handler::timefmt::rfc3339(secs, 0)
}

/// `--version`'s `version X.Y.Z`, else the binary's name.
fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let said = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            said.split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .map(|v| format!("Alertmanager {v}"))
        })
        .unwrap_or_else(|| binary.display().to_string())
}

/// Alertmanager's Slack notifier given the storm as one group; `Err` says
/// why the row is skipped.
fn alertmanager(alerts: usize) -> Result<Row> {
    let binary = std::env::var_os("ALERTMANAGER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("prometheus-alertmanager"));
    let slack = MockSlack::start()?;
    slack.limit_like_slack();
    slack.answer_after(RTT);
    // An incoming webhook's accepted post is a top-level message; the
    // stand-in keeps only the Web API's. Counted as answered, a round trip
    // after arrival.
    let posted = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let (counted, replied) = (posted.clone(), answered.clone());
    slack.observe(move |req, reply| {
        if !req.is_web_api() && reply.status == 200 {
            counted.fetch_add(1, Ordering::Relaxed);
        }
        replied.fetch_add(1, Ordering::Relaxed);
    });
    let webhook = format!("{}/services/T000/B000/XXXX", slack.url());
    let am = Alertmanager::start(&binary, &webhook)?;
    let who = format!("{} `slack_configs`, one group", version(&binary));
    let starts = rfc3339(SystemTime::now());
    let group = |ends: Option<&str>| {
        let alerts: Vec<Value> = (0..alerts)
            .map(|n| {
                let instance = format!("host{n:04}");
                let mut alert = json!({
                    "labels": {"alertname": "HostDown", "severity": "critical", "instance": instance},
                    "annotations": {"summary": format!("{instance} is down")},
                    "startsAt": starts,
                    "generatorURL": "http://prometheus.example/graph",
                });
                if let Some(ends) = ends {
                    alert["endsAt"] = json!(ends);
                }
                alert
            })
            .collect();
        Value::Array(alerts)
    };
    let started = Instant::now();
    am.push(&group(None))?;
    let fired = wait_for_request(&slack, started, &format!("[FIRING:{alerts}]"));
    let mut recovered = None;
    if fired.is_some() {
        let started = Instant::now();
        am.push(&group(Some(&rfc3339(SystemTime::now()))))?;
        recovered = wait_for_request(&slack, started, "[RESOLVED]");
    }
    // Every request answered, so the last message is counted.
    let answering = Instant::now();
    while answered.load(Ordering::Relaxed) < slack.received() && answering.elapsed() < STUCK {
        std::thread::sleep(POLL);
    }
    if let Some(first) = slack.requests().first() {
        let shown = &first.json()["attachments"][0];
        println!(
            "    its first message: title {}, text of {} characters",
            shown["title"],
            shown["text"].as_str().map_or(0, |t| t.chars().count()),
        );
    }
    Ok(Row {
        fired,
        recovered,
        ..Row::new(who, alerts, &slack, posted.load(Ordering::Relaxed))
    })
}

/// How long after `since` a request whose body holds `text` reached the
/// stand-in; `None` when none came for [`STUCK`].
fn wait_for_request(slack: &MockSlack, since: Instant, text: &str) -> Option<Duration> {
    loop {
        let arrived = slack
            .requests()
            .into_iter()
            .find(|r| r.at >= since && String::from_utf8_lossy(&r.body).contains(text))
            .map(|r| r.at - since);
        if arrived.is_some() {
            return arrived;
        }
        if since.elapsed() > STUCK {
            println!(
                "    note: no message with {text:?} within {} s",
                STUCK.as_secs()
            );
            return None;
        }
        std::thread::sleep(POLL);
    }
}
