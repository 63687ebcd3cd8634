//! A storm at Slack's real rate: alerts posted all at once to `serve`, which
//! delivers them to a Slack stand-in that enforces one message per second
//! per channel (a `429` with `Retry-After: 1` for anything sooner, as Slack
//! answers). Reports how long the storm took against the floor the rate
//! limit sets, `(alerts per channel - 1) × 1 s`, and how many `429`s it met.
//!
//! Run: `scripts/bench.sh` (both benches) or
//! `cargo bench -p host-test --bench storm` (`--quick` for a short storm;
//! `STORM_ALERTS=N` for N alerts to one channel, default 30).

// A bench uses part of the tests' serve helper.
#[allow(dead_code)]
#[path = "../tests/all/common/server.rs"]
mod server;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use host_test::mock_slack::MockSlack;
use server::{alert, write_config, Server};

const INTERVAL: Duration = Duration::from_secs(1);

fn config(url: &str) -> String {
    format!(
        "[[slack]]\nenabled = true\ndefault = true\nurl = \"{url}/api/chat.postMessage\"\ntoken = \"xoxb-bench\"\nchannel = \"#storm\"\n"
    )
}

fn finished(server: &Server) -> usize {
    server.spool()["finished"].as_array().map_or(0, Vec::len)
}

/// One storm: `per_channel` alerts to each of `channels` channels, to a
/// stand-in that answers `rtt` after each request arrives.
fn storm(channels: usize, per_channel: usize, burst: u32, rtt: Duration) -> Result<()> {
    let slack = MockSlack::start()?;
    slack.limit_channels(INTERVAL, Duration::from_secs(1));
    slack.answer_after(rtt);
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), &config(&slack.url()));
    let interval = INTERVAL.as_millis().to_string();
    let burst = burst.to_string();
    // `host-test serve` as users run it, built with the bench profile.
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &[
            "--channel-interval-ms",
            &interval,
            "--channel-burst",
            &burst,
        ],
    );
    let total = channels * per_channel;
    let started = Instant::now();
    for n in 0..per_channel {
        for c in 0..channels {
            let (status, answer) = server.post_with(
                &format!("channel=%23c{c}"),
                &alert(&format!("storm-{n}-{c}")),
            );
            if status != 202 {
                bail!("serve refused an alert: {status} {answer}");
            }
        }
    }
    let posted = started.elapsed();
    let deadline = started + INTERVAL * (per_channel as u32 * 3 + 30);
    while finished(&server) < total {
        if Instant::now() > deadline {
            bail!("the storm did not end in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let delivered = slack.requests().len() - slack.rate_limited();
    // The last message can reach Slack no sooner, and its answer takes a
    // round trip more.
    let floor = INTERVAL * (per_channel as u32 - 1) + rtt;
    println!(
        "  {channels} channel(s) × {per_channel} alerts, burst {burst}, answers after {} ms: {:.2} s (floor {:.1} s, {:.1} % of the rate limit's pace); \
         {delivered} delivered, {} × 429, {} inside a Retry-After window; posting took {:.0} ms",
        rtt.as_millis(),
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
    let now = Duration::ZERO;
    storm(1, alerts, 1, now)?;
    storm(1, alerts, 3, now)?;
    storm(10, alerts / 2, 1, now)?;
    // Slack's real round trip, many channels: what concurrency is for.
    storm(20, 8, 1, Duration::from_millis(200))?;
    Ok(())
}
