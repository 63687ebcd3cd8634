//! `host-test serve`'s intake: alerts acknowledged per second over 16
//! keep-alive connections, each `202` only once its record is on disk,
//! beside the floor for this machine in the same run: a hyper server on as
//! many runtime threads that answers `202` without reading the alert or
//! touching the disk, driven by the same clients.
//!
//! Slack (a stand-in on 127.0.0.1) holds its answers while alerts come
//! in, so intake is measured alone; the backlog is then checked: every
//! acknowledged alert delivered once.
//!
//! With `INTAKE_BASELINE=PATH` (a `host-test` built from another commit,
//! e.g. by `scripts/bench-baseline.sh`), that serve takes the same rounds
//! beside this one.
//!
//! The machine is noisy: each side runs three rounds, taking turns, and
//! the medians are compared.
//!
//! Run: `cargo bench -p host-test --bench intake` (`INTAKE_ALERTS=N` a
//! round, default 40,000; `-- --quick` for 10,000).

// A bench uses part of the tests' serve helper.
#[allow(dead_code)]
#[path = "../tests/all/common/server.rs"]
mod server;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use host_test::mock_slack::MockSlack;
use server::{alert, write_config, Connection, Server};

const CONNECTIONS: usize = 16;
const ROUNDS: usize = 3;

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let alerts: usize = match std::env::var("INTAKE_ALERTS") {
        Ok(n) => n.parse().context("INTAKE_ALERTS")?,
        Err(_) if quick => 10_000,
        Err(_) => 40_000,
    };
    let per_connection = alerts.div_ceil(CONNECTIONS);
    let baseline = std::env::var_os("INTAKE_BASELINE").map(PathBuf::from);

    let floor = FloorServer::start()?;
    let current = Subject::start(Path::new(env!("CARGO_BIN_EXE_host-test")))?;
    let old = baseline.as_deref().map(Subject::start).transpose()?;

    let mut rates: [Vec<f64>; 3] = Default::default();
    for round in 0..ROUNDS {
        rates[0].push(post_all(floor.addr, round, per_connection)?);
        rates[1].push(post_all(current.server.addr(), round, per_connection)?);
        if let Some(old) = &old {
            rates[2].push(post_all(old.server.addr(), round, per_connection)?);
        }
    }
    let alerts = per_connection * CONNECTIONS;
    // Then the backlog each took, drained one serve at a time.
    let drained = current.drain(alerts * ROUNDS)?;
    let old_drained = old.as_ref().map(|o| o.drain(alerts * ROUNDS)).transpose()?;

    let floor_rate = median(&mut rates[0]);
    println!(
        "intake over {CONNECTIONS} keep-alive connections, {ROUNDS} rounds of {alerts} alerts (medians):"
    );
    let row = |name: &str, rate: f64| {
        println!(
            "  {name:<44} {rate:>9.0}/s  ({:.2}x the floor)",
            rate / floor_rate
        )
    };
    row("host-test serve, each 202 on disk", median(&mut rates[1]));
    if let Some(path) = &baseline {
        // `.tools/baseline-COMMIT/host-test` reads as `baseline-COMMIT`.
        let name = path.parent().and_then(Path::file_name).map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        row(&format!("serve at {name}"), median(&mut rates[2]));
    }
    row("hyper answering 202, no disk (the floor)", floor_rate);
    println!(
        "draining that backlog ({} alerts over 100 channels, pacing off, default settings: a request out per channel, or the baseline's 8 workers):",
        alerts * ROUNDS
    );
    println!("  host-test serve {drained:>9.0}/s");
    if let (Some(path), Some(rate)) = (&baseline, old_drained) {
        let name = path.parent().and_then(Path::file_name).map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        println!("  serve at {name} {rate:>9.0}/s");
    }
    Ok(())
}

/// A serve under test with its own Slack stand-in, which holds its answers
/// until the rounds are over.
struct Subject {
    slack: MockSlack,
    server: Server,
    _dir: tempfile::TempDir,
}

impl Subject {
    fn start(binary: &Path) -> Result<Subject> {
        let slack = MockSlack::start()?;
        let dir = tempfile::tempdir()?;
        let config = write_config(
            dir.path(),
            &format!(
                "[[slack]]\nenabled = true\ndefault = true\nurl = \"{}/api/chat.postMessage\"\ntoken = \"xoxb-intake\"\nchannel = \"#intake\"\n",
                slack.url()
            ),
        );
        let config = config.to_str().context("a UTF-8 path")?.to_string();
        let mut target = vec!["--config", &config];
        // A baseline's component lies beside its binary.
        let component = binary.with_file_name("slack_alert_handler.wasm");
        let component = component.to_str().context("a UTF-8 path")?;
        if binary != Path::new(env!("CARGO_BIN_EXE_host-test")) {
            target.extend(["--component", component]);
        }
        let server = Server::start_binary(
            binary,
            &target,
            &dir.path().join("spool"),
            &["--channel-interval-ms", "0", "--channel-burst", "1"],
        );
        slack.hold();
        Ok(Subject {
            slack,
            server,
            _dir: dir,
        })
    }

    /// Lets Slack answer and waits for the backlog: every acknowledged
    /// alert delivered once; alerts/s delivered.
    fn drain(&self, total: usize) -> Result<f64> {
        let t = Instant::now();
        self.slack.release();
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.slack.received() < total {
            if Instant::now() > deadline {
                bail!("serve did not drain its backlog in time");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let rate = total as f64 / t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(200));
        if self.slack.received() != total {
            bail!("{} requests for {total} alerts", self.slack.received());
        }
        Ok(rate)
    }
}

fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Posts `per_connection` alerts on each of 16 connections at once;
/// alerts/s acknowledged with `202`.
fn post_all(addr: SocketAddr, round: usize, per_connection: usize) -> Result<f64> {
    let t = Instant::now();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|c| std::thread::spawn(move || posts(addr, round, c, per_connection)))
        .collect();
    for thread in threads {
        thread.join().expect("a poster")?;
    }
    Ok((CONNECTIONS * per_connection) as f64 / t.elapsed().as_secs_f64())
}

fn posts(addr: SocketAddr, round: usize, connection: usize, count: usize) -> Result<()> {
    let mut serve = Connection::open(addr)?;
    for n in 0..count {
        let body = alert(&format!("intake-{round}-{connection}-{n}"));
        let query = format!("channel=%23c{}", (connection * count + n) % 100);
        let status = serve.post(&query, &body)?;
        if !status.contains(" 202 ") {
            bail!("answered {status}");
        }
    }
    Ok(())
}

/// A hyper server (as many runtime threads as serve's intake has) that
/// reads the body and answers `202` at once: what the same clients reach
/// with nothing behind HTTP.
struct FloorServer {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl FloorServer {
    fn start() -> Result<FloorServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(slack_alertd::serve::intake_threads())
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service =
                        service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                            let _ = req.into_body().collect().await;
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(202)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(b"{\"id\":1}")))
                                    .expect("a response"),
                            )
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FloorServer {
            addr,
            _runtime: runtime,
        })
    }
}
