//! A storm at Slack's real rate: alerts posted all at once to `serve`, which
//! delivers them to a Slack stand-in that enforces one message per second
//! per channel (a `429` with `Retry-After: 1` for anything sooner, as Slack
//! answers). Reports how long the storm took against the floor the rate
//! limit sets, `(alerts per channel - 1) × 1 s`, and how many `429`s it met.
//!
//! Run: `scripts/bench.sh` (both benches) or
//! `cargo bench -p host-test --bench storm` (`--quick` for a short storm;
//! `STORM_ALERTS=N` for N alerts to one channel, default 30).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use host_test::mock_slack::MockSlack;
use host_test::net::NetSettings;
use host_test::retry::Backoff;
use host_test::runtime::Runtime;
use host_test::serve::{self, Pacing};
use host_test::spool::Spool;

const INTERVAL: Duration = Duration::from_secs(1);

fn config(url: &str) -> String {
    format!(
        "[[slack]]\nenabled = true\ndefault = true\nurl = \"{url}/api/chat.postMessage\"\ntoken = \"xoxb-bench\"\nchannel = \"#storm\"\n"
    )
}

/// Starts `serve` on a thread; its address.
fn start_serve(slack: &MockSlack, burst: u32, spool: &std::path::Path) -> Result<SocketAddr> {
    let config = config(&slack.url());
    let spool = Spool::open(spool, 64 << 20)?;
    let pacing = Pacing {
        channel_interval: INTERVAL,
        channel_burst: burst,
        backoff: Backoff::default(),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match Runtime::load_default(NetSettings::default()) {
            Ok(r) => r,
            Err(e) => return eprintln!("loading the component: {e:#}"),
        };
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let ran = serve::run(&runtime, &config, listen, spool, pacing, |addr| {
            let _ = tx.send(addr);
        });
        if let Err(e) = ran {
            eprintln!("serve: {e:#}");
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .context("serve did not start")
}

fn request(addr: SocketAddr, raw: &str) -> Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(raw.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

fn post(addr: SocketAddr, channel: &str, n: usize) -> Result<()> {
    let body = format!(
        r#"{{"id":"storm-{n}","message":"storm alert {n}","time":"2026-11-26T10:00:00Z","level":"CRITICAL"}}"#
    );
    let answer = request(
        addr,
        &format!(
            "POST /?channel=%23{channel} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )?;
    if !answer.starts_with("HTTP/1.1 202") {
        bail!("serve refused alert {n}: {answer}");
    }
    Ok(())
}

fn finished(addr: SocketAddr) -> Result<usize> {
    let answer = request(
        addr,
        "GET /spool HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )?;
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let spool: serde_json::Value = serde_json::from_str(body)?;
    Ok(spool["finished"].as_array().map_or(0, Vec::len))
}

/// One storm: `per_channel` alerts to each of `channels` channels.
fn storm(channels: usize, per_channel: usize, burst: u32) -> Result<()> {
    let slack = MockSlack::start()?;
    slack.limit_channels(INTERVAL, Duration::from_secs(1));
    let dir = tempfile::tempdir()?;
    let addr = start_serve(&slack, burst, dir.path())?;
    let total = channels * per_channel;
    let started = Instant::now();
    for n in 0..per_channel {
        for c in 0..channels {
            post(addr, &format!("c{c}"), n * channels + c)?;
        }
    }
    let posted = started.elapsed();
    let deadline = started + INTERVAL * (per_channel as u32 * 3 + 30);
    while finished(addr)? < total {
        if Instant::now() > deadline {
            bail!("the storm did not end in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let delivered = slack.requests().len() - slack.rate_limited();
    let floor = INTERVAL * (per_channel as u32 - 1);
    println!(
        "  {channels} channel(s) × {per_channel} alerts, burst {burst}: {:.2} s (floor {:.0} s, {:.1} % of the rate limit's pace); \
         {delivered} delivered, {} × 429, {} inside a Retry-After window; posting took {:.0} ms",
        took.as_secs_f64(),
        floor.as_secs_f64(),
        100.0 * floor.as_secs_f64() / took.as_secs_f64(),
        slack.rate_limited(),
        slack.inside_retry_after(),
        posted.as_secs_f64() * 1000.0,
    );
    if delivered != total || slack.inside_retry_after() != 0 {
        bail!("the storm lost alerts or ignored a Retry-After");
    }
    Ok(())
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let alerts: usize = match std::env::var("STORM_ALERTS") {
        Ok(n) => n.parse().context("STORM_ALERTS")?,
        Err(_) if quick => 10,
        Err(_) => 30,
    };
    if alerts < 2 {
        bail!("STORM_ALERTS must be at least 2");
    }
    println!("storm at Slack's rate (1 message/s per channel, 429 + Retry-After: 1 past it):");
    // A burst of one matches the stand-in's strict limit; the default
    // burst of three meets a 429 at the start, as it would with a Slack
    // that allows no burst.
    storm(1, alerts, 1)?;
    storm(1, alerts, 3)?;
    storm(10, alerts / 2, 1)?;
    Ok(())
}
