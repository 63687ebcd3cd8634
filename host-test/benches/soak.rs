//! A long soak of `host-test serve`: `SOAK_ALERTS` alerts (default
//! 1,000,000; `--quick` 100,000) posted over one keep-alive connection to
//! 100 channels with pacing off, never more than 20,000 outstanding, to a
//! Slack stand-in on 127.0.0.1. Reports serve's resident memory at the
//! start, along the way and at the end: it should stay flat however long
//! serve runs (bounded history, nothing re-listed, nothing kept per alert
//! once it ended).
//!
//! Run: `cargo bench -p host-test --bench soak` (a few minutes).

// A bench uses part of the tests' serve helper.
#[allow(dead_code)]
#[path = "../tests/all/common/server.rs"]
mod server;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use host_test::mock_slack::MockSlack;
use server::{alert, write_config, Connection, Server};

const OUTSTANDING: usize = 20_000;

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let total: usize = match std::env::var("SOAK_ALERTS") {
        Ok(n) => n.parse().context("SOAK_ALERTS")?,
        Err(_) if quick => 100_000,
        Err(_) => 1_000_000,
    };
    let slack = MockSlack::start()?;
    let dir = tempfile::tempdir()?;
    let config = write_config(
        dir.path(),
        &format!(
            "[[slack]]\nenabled = true\ndefault = true\nurl = \"{}/api/chat.postMessage\"\ntoken = \"xoxb-soak\"\nchannel = \"#soak\"\n",
            slack.url()
        ),
    );
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--channel-interval-ms", "0", "--channel-burst", "1"],
    );
    let rss = |server: &Server| {
        server
            .resident_kib()
            .map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
    };
    println!("soak: {total} alerts through serve, at most {OUTSTANDING} outstanding");
    println!("  resident at start: {}", rss(&server));
    let mut connection = Connection::open(server.addr())?;
    let started = Instant::now();
    let report_every = total / 5;
    for n in 0..total {
        while n - slack.received().min(n) >= OUTSTANDING {
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = connection.post(
            &format!("channel=%23c{}", n % 100),
            &alert(&format!("soak-{n}")),
        )?;
        if !status.contains(" 202 ") {
            bail!("serve answered {status} at alert {n}");
        }
        if report_every > 0 && (n + 1) % report_every == 0 {
            println!(
                "  {:>8} posted, {:>8} delivered, {:.0} s: resident {}",
                n + 1,
                slack.received(),
                started.elapsed().as_secs_f64(),
                rss(&server)
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while slack.received() < total {
        if Instant::now() > deadline {
            bail!("serve did not deliver every alert in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    println!(
        "  all {total} delivered in {:.0} s ({:.0} alerts/s); resident at the end: {}",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        rss(&server)
    );
    if slack.received() != total {
        bail!("{} requests for {total} alerts", slack.received());
    }
    Ok(())
}
