//! What a request in flight costs `serve`: resident memory and threads with
//! 0, 100, 300 and 1,000 requests out at once. The Slack stand-in holds
//! every request unanswered, so each channel's request stays out (and its
//! instance, connection and task with it) until the bench lets go.
//!
//! Resident memory is read two ways from `/proc`: `VmRSS` (what `ps` and
//! most dashboards show) and `Pss` (`smaps_rollup`: a page shared by
//! several mappings counted once). They differ because every instance maps
//! the component's data image (its initialised statics) copy-on-write from
//! one shared file: `VmRSS` counts those pages once per instance, `Pss`
//! once.
//!
//! Run: `cargo bench -p host-test --bench inflight` (`--quick`: up to 300;
//! `SMAPS=1` also prints serve's mappings by size, to see where it goes:
//! each instance has a 1 MiB stack region, the data image, a heap tail and
//! a 2 MiB fiber stack, and the allocator's arenas hold the rest).

// A bench uses part of the tests' serve helper.
#[allow(dead_code)]
#[path = "../tests/all/common/server.rs"]
mod server;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use host_test::mock_slack::MockSlack;
use server::{alert, proc_figure, write_config, Server};

fn config(url: &str) -> String {
    format!(
        "[[slack]]\nenabled = true\ndefault = true\nurl = \"{url}/api/chat.postMessage\"\ntoken = \"xoxb-bench\"\nchannel = \"#fallback\"\n"
    )
}

struct Sample {
    out: usize,
    rss: u64,
    pss: u64,
    threads: u64,
}

fn sample(server: &Server, out: usize) -> Sample {
    let pid = server.pid();
    Sample {
        out,
        rss: proc_figure(pid, "status", "VmRSS:").unwrap_or(0),
        pss: proc_figure(pid, "smaps_rollup", "Pss:").unwrap_or(0),
        threads: proc_figure(pid, "status", "Threads:").unwrap_or(0),
    }
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let steps: &[usize] = if quick {
        &[100, 300]
    } else {
        &[100, 300, 1_000]
    };
    let slack = MockSlack::start()?;
    slack.hold();
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), &config(&slack.url()));
    // `host-test serve` as users run it, built with the bench profile.
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut samples = vec![sample(&server, 0)];
    let mut posted = 0;
    for &out in steps {
        while posted < out {
            let (status, answer) = server.post_with(
                &format!("channel=%23c{posted}"),
                &alert(&format!("held-{posted}")),
            );
            if status != 202 {
                bail!("serve refused an alert: {status} {answer}");
            }
            posted += 1;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while slack.in_flight() < out {
            if Instant::now() > deadline {
                bail!("only {} of {out} requests came out", slack.in_flight());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Settled: every request out, nothing more under way.
        std::thread::sleep(Duration::from_millis(300));
        samples.push(sample(&server, out));
        if std::env::var_os("SMAPS").is_some() {
            let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", server.pid()))?;
            let mut by: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
            let mut size = 0;
            for l in smaps.lines() {
                if let Some(v) = l.strip_prefix("Size:") {
                    size = v.trim().trim_end_matches("kB").trim().parse()?;
                }
                if let Some(v) = l.strip_prefix("Rss:") {
                    let r: u64 = v.trim().trim_end_matches("kB").trim().parse()?;
                    let e = by.entry(size).or_default();
                    e.0 += 1;
                    e.1 += r;
                }
            }
            for (size, (n, r)) in by {
                if r > 1000 {
                    println!("    mappings of {size} KiB: {n}, rss {r} KiB");
                }
            }
        }
    }
    println!("serve with requests held in flight (stand-in answers nothing until released):");
    println!(
        "  {:>8} {:>10} {:>10} {:>8} {:>16} {:>16}",
        "in flight", "VmRSS MiB", "Pss MiB", "threads", "VmRSS KiB/req", "Pss KiB/req"
    );
    let base = &samples[0];
    for s in &samples {
        let per = |now: u64, then: u64| match s.out {
            0 => "-".to_string(),
            n => format!("{:.0}", now.saturating_sub(then) as f64 / n as f64),
        };
        println!(
            "  {:>8} {:>10.1} {:>10.1} {:>8} {:>16} {:>16}",
            s.out,
            s.rss as f64 / 1024.0,
            s.pss as f64 / 1024.0,
            s.threads,
            per(s.rss, base.rss),
            per(s.pss, base.pss),
        );
    }
    slack.release();
    Ok(())
}
