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
//! With `INTAKE_STORES=1`, the journal's rounds and drain are followed
//! by the same on PostgreSQL (`serve --store URL --node NAME`, the other
//! flags the same): a cluster of 1, 2 and 3 nodes, each on a throwaway
//! server of its own (`TestDb`, with `fsync` on as in production, and
//! autovacuum looking every second so that minutes-old tables have the
//! statistics of tables in use), all up at once and taking turns with a
//! serve on the journal, three rounds (each round in another order;
//! medians), so that no side is measured minutes apart from another on
//! this noisy machine. A turn: the 16 connections post a
//! round round-robin to the nodes (the stand-in holding its answers), then
//! that backlog is delivered by all the nodes together (pacing off, 100
//! channels). Every acknowledged alert must be delivered; duplicates are
//! counted and printed. Beside each phase: CPU seconds from `/proc` (the
//! bench, i.e. the clients and the stand-in; the nodes; PostgreSQL's
//! processes), the group commits (`slack_handler_spool_fsyncs_total`), the
//! writing transactions (`pg_current_xact_id()`) and, per cluster, the
//! transactions rolled back (refused claims; `pg_stat_database`, read with
//! `psql` after its stats settle), and any `ERROR`/`WARN` a node logged.
//! Then, as a control, each cluster's intake again with pacing on (one
//! message a second per channel, fresh databases, the same turns, no
//! drain): with pacing off, a node refused a channel another node holds
//! asks again at once.
//!
//! Run: `cargo bench -p host-test --bench intake` (`INTAKE_ALERTS=N` a
//! round, default 40,000; `-- --quick` for 10,000; `INTAKE_CONNECTIONS=N`
//! clients, default 16; `INTAKE_CHANNELS=N` channels, default 100); with
//! PostgreSQL:
//! `INTAKE_STORES=1 cargo bench -p host-test --bench intake -- --quick`
//! (`INTAKE_NODES=1,3` for those node counts only). With
//! `INTAKE_STATEMENTS=1` besides, each cluster's statements that took
//! PostgreSQL the most time over its last turn's intake, then over its
//! drain, are printed, with the time PostgreSQL spent planning them
//! (`pg_stat_statements`, loaded for it, `track_planning` on), and the
//! nodes' CPU over each by thread name (`/proc/PID/task`).

// A bench uses part of the tests' serve helper.
#[allow(dead_code)]
#[path = "../tests/all/common/server.rs"]
mod server;

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use host_test::mock_slack::MockSlack;
use server::{alert, write_config, Connection, Server};
use testdb::{Setup, TestDb};

/// The clients' keep-alive connections, each posting its next alert once
/// the last was acknowledged: `INTAKE_CONNECTIONS`, 16 unless set.
fn connections() -> usize {
    static CONNECTIONS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CONNECTIONS.get_or_init(|| setting("INTAKE_CONNECTIONS", 16))
}

/// The channels the alerts are spread over, each with one message out at
/// a time: `INTAKE_CHANNELS`, 100 unless set.
fn channels() -> usize {
    static CHANNELS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CHANNELS.get_or_init(|| setting("INTAKE_CHANNELS", 100))
}

/// A positive number from the environment variable `name`, or `default`
/// when it is not set; anything else stops the bench, naming it.
fn setting(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Err(_) => default,
        Ok(value) => match value.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}: a positive number, not `{value}`"),
        },
    }
}

const ROUNDS: usize = 3;
/// The PostgreSQL sides: this many nodes on one database.
const NODES: [usize; 3] = [1, 2, 3];
/// serve's flags on every side: pacing off, one message at a time per
/// channel.
const UNPACED: [&str; 4] = ["--channel-interval-ms", "0", "--channel-burst", "1"];
/// The PostgreSQL sides' control for intake: Slack's pace, one message a
/// second per channel.
const PACED: [&str; 4] = ["--channel-interval-ms", "1000", "--channel-burst", "1"];

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let alerts: usize = match std::env::var("INTAKE_ALERTS") {
        Ok(n) => n.parse().context("INTAKE_ALERTS")?,
        Err(_) if quick => 10_000,
        Err(_) => 40_000,
    };
    let per_connection = alerts.div_ceil(connections());
    let baseline = std::env::var_os("INTAKE_BASELINE").map(PathBuf::from);
    let stores = std::env::var("INTAKE_STORES").is_ok_and(|v| !v.is_empty() && v != "0");

    let floor = FloorServer::start()?;
    let current = Subject::start(Path::new(env!("CARGO_BIN_EXE_host-test")))?;
    let old = baseline.as_deref().map(Subject::start).transpose()?;

    let mut rates: [Vec<f64>; 3] = Default::default();
    for round in 0..ROUNDS {
        rates[0].push(post_all(&[floor.addr], round, per_connection)?);
        rates[1].push(post_all(&[current.server.addr()], round, per_connection)?);
        if let Some(old) = &old {
            rates[2].push(post_all(&[old.server.addr()], round, per_connection)?);
        }
    }
    let alerts = per_connection * connections();
    // Then the backlog each took, drained one serve at a time.
    let drained = current.drain(alerts * ROUNDS)?;
    let old_drained = old.as_ref().map(|o| o.drain(alerts * ROUNDS)).transpose()?;

    let floor_rate = median(&mut rates[0]);
    println!(
        "intake over {} keep-alive connections, {ROUNDS} rounds of {alerts} alerts (medians):",
        connections()
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
        "draining that backlog ({} alerts over {} channels, pacing off, default settings: a request out per channel, or the baseline's 8 workers):",
        alerts * ROUNDS,
        channels()
    );
    println!("  host-test serve {drained:>9.0}/s");
    if let (Some(path), Some(rate)) = (&baseline, old_drained) {
        let name = path.parent().and_then(Path::file_name).map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        println!("  serve at {name} {rate:>9.0}/s");
    }
    if stores {
        drop((current, old, floor));
        on_postgres(floor_rate, per_connection)?;
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
        let config = write_config(dir.path(), &slack_config(&slack));
        let config = config.to_str().context("a UTF-8 path")?.to_string();
        let mut target = vec!["--config", &config];
        // A baseline's component lies beside its binary.
        let component = binary.with_file_name("slack_alert_handler.wasm");
        let component = component.to_str().context("a UTF-8 path")?;
        if binary != Path::new(env!("CARGO_BIN_EXE_host-test")) {
            target.extend(["--component", component]);
        }
        let server = Server::start_binary(binary, &target, &dir.path().join("spool"), &UNPACED);
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

/// Posts `per_connection` alerts on each of the [`connections`] at once, the
/// connections round-robin over `addrs`; alerts/s acknowledged with `202`.
fn post_all(addrs: &[SocketAddr], round: usize, per_connection: usize) -> Result<f64> {
    let t = Instant::now();
    let threads: Vec<_> = (0..connections())
        .map(|c| {
            let addr = addrs[c % addrs.len()];
            std::thread::spawn(move || posts(addr, round, c, per_connection))
        })
        .collect();
    for thread in threads {
        thread.join().expect("a poster")?;
    }
    Ok((connections() * per_connection) as f64 / t.elapsed().as_secs_f64())
}

fn posts(addr: SocketAddr, round: usize, connection: usize, count: usize) -> Result<()> {
    let mut serve = Connection::open(addr)?;
    for n in 0..count {
        let body = alert(&format!("intake-{round}-{connection}-{n}"));
        let query = format!("channel=%23c{}", (connection * count + n) % channels());
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

/// The configuration every side runs: one Web API workspace, the stand-in;
/// storms off, so the backlog is one message per alert (a storm would
/// fold a channel's backlog into one message and the drain would wait
/// for requests that never come).
fn slack_config(slack: &MockSlack) -> String {
    format!(
        "[[slack]]\nenabled = true\ndefault = true\nurl = \"{}/api/chat.postMessage\"\ntoken = \"xoxb-intake\"\nchannel = \"#intake\"\nstorm-after = 0\n",
        slack.url()
    )
}

// PostgreSQL's sides (`INTAKE_STORES=1`).

/// The journal's figures, for the PostgreSQL sides to stand beside.
struct Journal {
    intake: f64,
    drain: f64,
    floor: f64,
    phases: [Phase; 2],
    logged: Vec<String>,
}

/// One PostgreSQL side's turns so far.
#[derive(Default)]
struct Turns {
    intake: Vec<f64>,
    drain: Vec<f64>,
    /// Every alert posted to it so far, all to be delivered.
    expected: BTreeSet<String>,
    duplicates: usize,
    phases: [Phase; 2],
}

/// The order the sides take their turns in `round`: each round another
/// side first.
fn in_turn(round: usize, sides: usize) -> impl Iterator<Item = usize> {
    (0..sides).map(move |i| (i + round) % sides)
}

/// The ids [`post_all`] posts in `round`.
fn round_ids(round: usize, per_connection: usize) -> impl Iterator<Item = String> {
    (0..connections())
        .flat_map(move |c| (0..per_connection).map(move |n| format!("intake-{round}-{c}-{n}")))
}

/// One PostgreSQL side's figures.
struct PgSide {
    nodes: usize,
    intake: f64,
    drain: f64,
    duplicates: usize,
    phases: [Phase; 2],
    /// Transactions PostgreSQL committed and rolled back over the whole
    /// run of the cluster.
    transactions: Option<(u64, u64)>,
    /// Intake with pacing on (1 s a channel): alerts/s, and the phase.
    paced: (f64, Phase),
    logged: Vec<String>,
}

/// Intake and drain on 1, 2 and 3 nodes, each on a database of its own,
/// taking turns round by round with a serve on the journal, then the
/// figures beside the journal's.
fn on_postgres(floor: f64, per_connection: usize) -> Result<()> {
    let alerts = per_connection * connections();
    let statements = std::env::var("INTAKE_STATEMENTS").is_ok_and(|v| !v.is_empty() && v != "0");
    let counts: Vec<usize> = match std::env::var("INTAKE_NODES") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .context("INTAKE_NODES: node counts, e.g. 1,3")
            })
            .collect::<Result<_>>()?,
        Err(_) => NODES.to_vec(),
    };
    // Every cluster up at once, idle between its turns: the machine is
    // noisy over minutes, so the node counts take turns within each round
    // (each round in another order) rather than one after another.
    // The journal takes its turns too (the first side), so that the node
    // counts stand beside it measured in the same minutes.
    let clusters = std::iter::once(Cluster::journal())
        .chain(
            counts
                .iter()
                .map(|&nodes| Cluster::start(nodes, &UNPACED, statements)),
        )
        .collect::<Result<Vec<_>>>()?;
    if statements {
        for db in clusters.iter().filter_map(|c| c.db.as_ref()) {
            sql(db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
        }
    }
    let started: Vec<_> = clusters
        .iter()
        .map(|c| c.db.as_ref().and_then(|db| transactions(db).ok()))
        .collect();
    let mut turns: Vec<Turns> = clusters.iter().map(|_| Turns::default()).collect();
    for round in 0..ROUNDS {
        for i in in_turn(round, clusters.len()) {
            let (cluster, turn) = (&clusters[i], &mut turns[i]);
            // The statements of the last round's turns, intake and drain
            // apart.
            let look = cluster
                .db
                .as_ref()
                .filter(|_| statements && round + 1 == ROUNDS);
            if let Some(db) = look {
                sql(db, "SELECT pg_stat_statements_reset()")?;
            }
            let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(Server::addr).collect();
            let pids: Vec<u32> = cluster.nodes.iter().map(Server::pid).collect();
            cluster.slack.hold();
            let threads = ThreadTicks::now(&pids);
            let before = cluster.mark();
            turn.intake.push(post_all(&addrs, round, per_connection)?);
            turn.phases[0].add(before.to(&cluster.mark()));
            if let Some(db) = look {
                print_statements(db, cluster.nodes.len(), "intake")?;
                threads.print_since(&pids, cluster.nodes.len(), "intake");
                sql(db, "SELECT pg_stat_statements_reset()")?;
            }
            turn.expected.extend(round_ids(round, per_connection));
            let threads = ThreadTicks::now(&pids);
            let before = cluster.mark();
            let (rate, duplicates, done) = cluster.drain(&turn.expected, alerts)?;
            turn.drain.push(rate);
            turn.duplicates = duplicates;
            turn.phases[1].add(before.to(&done));
            if let Some(db) = look {
                print_statements(db, cluster.nodes.len(), "drain")?;
                threads.print_since(&pids, cluster.nodes.len(), "drain");
            }
        }
    }
    // The nodes' backends report their counts within 10 s of going idle
    // (PostgreSQL 15).
    std::thread::sleep(Duration::from_secs(11));
    let logged = |c: &Cluster| problems(&c.nodes.iter().map(Server::logged).collect::<Vec<_>>());
    let journal = Journal {
        intake: median(&mut turns[0].intake),
        drain: median(&mut turns[0].drain),
        floor,
        phases: turns[0].phases,
        logged: logged(&clusters[0]),
    };
    let mut sides = Vec::new();
    for ((cluster, turn), started) in clusters.iter().zip(&mut turns).zip(started).skip(1) {
        let db = cluster.db.as_ref().context("a PostgreSQL side")?;
        let transactions = match (started, transactions(db).ok()) {
            (Some((c0, r0)), Some((c1, r1))) => Some((c1 - c0, r1 - r0)),
            _ => None,
        };
        sides.push(PgSide {
            nodes: cluster.nodes.len(),
            intake: median(&mut turn.intake),
            drain: median(&mut turn.drain),
            duplicates: turn.duplicates,
            phases: turn.phases,
            transactions,
            paced: (0.0, Phase::default()),
            logged: logged(cluster),
        });
    }
    drop(clusters);
    // The control: intake alone with pacing on, where a node refused a
    // channel another node holds asks again a second later, not at once;
    // fresh databases, the same turns.
    let clusters = counts
        .iter()
        .map(|&nodes| Cluster::start(nodes, &PACED, false))
        .collect::<Result<Vec<_>>>()?;
    let mut paced_rates: Vec<Vec<f64>> = counts.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for i in in_turn(round, clusters.len()) {
            let cluster = &clusters[i];
            let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(Server::addr).collect();
            let before = cluster.mark();
            paced_rates[i].push(post_all(&addrs, round, per_connection)?);
            sides[i].paced.1.add(before.to(&cluster.mark()));
        }
    }
    for ((side, rates), cluster) in sides.iter_mut().zip(&mut paced_rates).zip(&clusters) {
        side.paced.0 = median(rates);
        side.logged.extend(problems(
            &cluster.nodes.iter().map(Server::logged).collect::<Vec<_>>(),
        ));
    }
    drop(clusters);

    println!(
        "on PostgreSQL (a throwaway server each, fsync on) and on the journal again, taking turns, {ROUNDS} rounds (medians): a turn is {alerts} alerts over the {} connections round-robin to the nodes, then that backlog ({} channels, pacing off) delivered by all the nodes together:",
        connections(),
        channels()
    );
    println!(
        "  {:<30} {:>9} {:>9} {:>11} {:>9} {:>11} {:>11}",
        "", "intake/s", "vs floor", "vs journal", "drain/s", "vs journal", "duplicates"
    );
    let name = |nodes: usize| {
        format!(
            "PostgreSQL, {nodes} node{}",
            if nodes == 1 { "" } else { "s" }
        )
    };
    println!(
        "  {:<30} {:>9.0} {:>8.2}x {:>10.2}x {:>9.0} {:>10.2}x {:>11}",
        "journal",
        journal.intake,
        journal.intake / journal.floor,
        1.0,
        journal.drain,
        1.0,
        "-"
    );
    for side in &sides {
        println!(
            "  {:<30} {:>9.0} {:>8.2}x {:>10.2}x {:>9.0} {:>10.2}x {:>11}",
            name(side.nodes),
            side.intake,
            side.intake / journal.floor,
            side.intake / journal.intake,
            side.drain,
            side.drain / journal.drain,
            side.duplicates
        );
    }
    println!(
        "  the control, intake alone with pacing on (1 s a channel: a node refused a channel another holds asks again a second later, not at once):"
    );
    for side in &sides {
        println!(
            "  {:<30} {:>9.0} {:>8.2}x {:>10.2}x",
            format!("{}, paced", name(side.nodes)),
            side.paced.0,
            side.paced.0 / journal.floor,
            side.paced.0 / journal.intake,
        );
    }
    println!(
        "where the time went: CPU seconds over each phase from /proc (2 cores give 2 a second; bench = the {} clients and the stand-in), group commits (each node's spool_fsyncs), PostgreSQL's writing transactions (pg_current_xact_id):",
        connections()
    );
    println!(
        "  {:<30} {:<7} {:>7} {:>7} {:>7} {:>9} {:>8} {:>13} {:>12}",
        "",
        "phase",
        "wall s",
        "bench",
        "serve",
        "postgres",
        "commits",
        "alerts/commit",
        "xacts/alert"
    );
    let total = (alerts * ROUNDS) as f64;
    let row = |who: &str, phase: &str, p: &Phase| {
        println!(
            "  {who:<30} {phase:<7} {:>7.2} {:>7.2} {:>7.2} {:>9} {:>8} {:>13.1} {:>12}",
            p.wall.as_secs_f64(),
            p.cpu.seconds(p.cpu.bench),
            p.cpu.seconds(p.cpu.serve),
            if p.xids.is_some() {
                format!("{:.2}", p.cpu.seconds(p.cpu.postgres))
            } else {
                "-".into()
            },
            p.commits,
            total / p.commits.max(1) as f64,
            p.xids
                .map_or("-".into(), |x| format!("{:.2}", x as f64 / total)),
        )
    };
    for (phase, p) in ["intake", "drain"].iter().zip(&journal.phases) {
        row("journal", phase, p);
    }
    for side in &sides {
        for (phase, p) in ["intake", "drain"].iter().zip(&side.phases) {
            row(&name(side.nodes), phase, p);
        }
    }
    for side in &sides {
        row(
            &format!("{}, paced", name(side.nodes)),
            "intake",
            &side.paced.1,
        );
    }
    for side in &sides {
        if let Some((committed, rolled_back)) = side.transactions {
            println!(
                "  {}: {committed} transactions committed, {rolled_back} rolled back (claims refused) over the run: {:.2} and {:.2} an alert",
                name(side.nodes),
                committed as f64 / total,
                rolled_back as f64 / total
            );
        }
    }
    let logs = std::iter::once(("journal".to_string(), &journal.logged))
        .chain(sides.iter().map(|s| (name(s.nodes), &s.logged)));
    for (who, logged) in logs {
        if !logged.is_empty() {
            println!(
                "  {who}: serve logged {} ERROR/WARN lines, e.g.:",
                logged.len()
            );
            for line in logged.iter().take(3) {
                println!("    {line}");
            }
        }
    }
    Ok(())
}

/// Nodes on one throwaway PostgreSQL, with their own stand-in, which holds
/// its answers until the rounds are over. Dropped in this order: the
/// nodes before their database.
struct Cluster {
    nodes: Vec<Server>,
    slack: MockSlack,
    /// None: one serve on the journal.
    db: Option<TestDb>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `count` nodes (`n0`, `n1`, ...) started at once, as a cluster comes
    /// up, with `flags`; with `statements`, their database counts its
    /// statements (`pg_stat_statements`).
    fn start(count: usize, flags: &'static [&'static str], statements: bool) -> Result<Cluster> {
        // A database minutes old, not months: autovacuum looks every
        // second, not every minute, so the tables' statistics are those
        // of tables in use (the owner's claims read is planned once a
        // connection only once they are, `Db::settled`).
        let mut options = String::from("-c autovacuum_naptime=1");
        if statements {
            options.push_str(
                " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all \
                 -c pg_stat_statements.track_planning=on",
            );
        }
        let db = TestDb::start_with(Setup {
            durable: true,
            options,
            ..Setup::default()
        });
        let slack = MockSlack::start()?;
        slack.hold();
        let dir = tempfile::tempdir()?;
        let config = write_config(dir.path(), &slack_config(&slack));
        let url = db.url();
        let nodes = std::thread::scope(|s| {
            let started: Vec<_> = (0..count)
                .map(|n| {
                    let (config, url, dir) = (&config, &url, dir.path());
                    s.spawn(move || {
                        let name = format!("n{n}");
                        let mut args = vec!["--node", name.as_str()];
                        args.extend(flags);
                        Server::start_on_store(config, url, &dir.join(format!("{name}.log")), &args)
                    })
                })
                .collect();
            started
                .into_iter()
                .map(|node| node.join().expect("a node started"))
                .collect()
        });
        Ok(Cluster {
            nodes,
            slack,
            db: Some(db),
            _dir: dir,
        })
    }

    /// One serve on its journal, the current build, as [`Subject`] runs
    /// it (pacing off).
    fn journal() -> Result<Cluster> {
        let subject = Subject::start(Path::new(env!("CARGO_BIN_EXE_host-test")))?;
        Ok(Cluster {
            nodes: vec![subject.server],
            slack: subject.slack,
            db: None,
            _dir: subject._dir,
        })
    }

    fn mark(&self) -> Mark {
        mark(&self.nodes.iter().collect::<Vec<_>>(), self.db.as_ref())
    }

    /// Lets Slack answer and waits until every alert in `expected` was
    /// delivered, by any node: alerts/s delivered of the `fresh` posted
    /// since the last drain, how many requests delivered an alert again
    /// (over every drain), and where the nodes stood when the last alert
    /// arrived. Fails if one is missing or unknown.
    fn drain(&self, expected: &BTreeSet<String>, fresh: usize) -> Result<(f64, usize, Mark)> {
        let total = expected.len();
        let t = Instant::now();
        self.slack.release();
        let deadline = t + Duration::from_secs(600);
        let (took, done) = loop {
            if Instant::now() > deadline {
                bail!(
                    "the nodes did not drain their backlog in time: {} of {total} delivered",
                    self.delivered().len()
                );
            }
            if self.slack.received() < total {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            // As many requests as alerts: all delivered, or a duplicate
            // among them.
            if self.delivered().len() >= total {
                break (t.elapsed(), self.mark());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // A moment for a request sent again after its ending went
        // unrecorded.
        std::thread::sleep(Duration::from_secs(1));
        let delivered = self.delivered();
        let missing = expected
            .iter()
            .filter(|id| !delivered.contains_key(*id))
            .count();
        let unknown: Vec<&String> = delivered
            .keys()
            .filter(|id| !expected.contains(*id))
            .take(5)
            .collect();
        if missing > 0 || !unknown.is_empty() {
            bail!("{missing} acknowledged alerts not delivered; delivered but never posted: {unknown:?}");
        }
        let duplicates = delivered.values().map(|n| n - 1).sum();
        Ok((fresh as f64 / took.as_secs_f64(), duplicates, done))
    }

    /// How many messages the stand-in holds for each alert id (`alert(ID)`
    /// says `alert ID`, which Kapacitor's layout puts in the attachment's
    /// text).
    fn delivered(&self) -> HashMap<String, usize> {
        let mut count = HashMap::new();
        for m in self.slack.messages() {
            if let Some(id) = m.body["attachments"][0]["text"]
                .as_str()
                .and_then(|t| t.strip_prefix("alert "))
            {
                *count.entry(id.to_string()).or_insert(0) += 1;
            }
        }
        count
    }
}

/// Where a side stood at a moment; two make a [`Phase`].
struct Mark {
    at: Instant,
    ticks: Ticks,
    /// Group commits, every node's together.
    commits: u64,
    /// PostgreSQL's current transaction id.
    xid: Option<u64>,
}

/// Marks `nodes` (and `db`, on PostgreSQL) now.
fn mark(nodes: &[&Server], db: Option<&TestDb>) -> Mark {
    let pids: Vec<u32> = nodes.iter().map(|n| n.pid()).collect();
    let postmaster = db.and_then(|db| {
        std::fs::read_to_string(db.dir().join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    });
    Mark {
        at: Instant::now(),
        ticks: Ticks::now(&pids, postmaster),
        commits: nodes
            .iter()
            .filter_map(|n| metric(n.addr(), "slack_handler_spool_fsyncs_total"))
            .sum(),
        xid: db.and_then(|db| sql(db, "SELECT pg_current_xact_id()").ok()?.parse().ok()),
    }
}

impl Mark {
    fn to(&self, later: &Mark) -> Phase {
        Phase {
            wall: later.at - self.at,
            cpu: later.ticks.since(self.ticks),
            commits: later.commits.saturating_sub(self.commits),
            xids: self.xid.zip(later.xid).map(|(a, b)| b.saturating_sub(a)),
        }
    }
}

/// What a phase (intake's rounds, or the drain) took.
#[derive(Clone, Copy, Default)]
struct Phase {
    wall: Duration,
    cpu: Ticks,
    commits: u64,
    xids: Option<u64>,
}

impl Phase {
    fn add(&mut self, other: Phase) {
        self.wall += other.wall;
        self.cpu = Ticks {
            bench: self.cpu.bench + other.cpu.bench,
            serve: self.cpu.serve + other.cpu.serve,
            postgres: self.cpu.postgres + other.cpu.postgres,
        };
        self.commits += other.commits;
        self.xids = match (self.xids, other.xids) {
            (None, x) | (x, None) => x,
            (Some(a), Some(b)) => Some(a + b),
        };
    }
}

/// CPU time used (user and system, clock ticks of `/proc/PID/stat`): this
/// process (the clients and the stand-in), the nodes, and PostgreSQL's
/// postmaster with its children.
#[derive(Clone, Copy, Default)]
struct Ticks {
    bench: u64,
    serve: u64,
    postgres: u64,
}

impl Ticks {
    fn now(serve: &[u32], postmaster: Option<u32>) -> Ticks {
        let postgres = postmaster.map_or(0, |pm| {
            ticks_of(pm) + children_of(pm).into_iter().map(ticks_of).sum::<u64>()
        });
        Ticks {
            bench: ticks_of(std::process::id()),
            serve: serve.iter().copied().map(ticks_of).sum(),
            postgres,
        }
    }

    fn since(self, before: Ticks) -> Ticks {
        Ticks {
            bench: self.bench.saturating_sub(before.bench),
            serve: self.serve.saturating_sub(before.serve),
            postgres: self.postgres.saturating_sub(before.postgres),
        }
    }

    /// Ticks in seconds (`USER_HZ` is 100 on Linux).
    fn seconds(self, ticks: u64) -> f64 {
        ticks as f64 / 100.0
    }
}

/// The nodes' CPU by thread name (`/proc/PID/task/TID/stat`, every
/// node's threads of a name together): which of serve's threads a phase's
/// CPU went to.
struct ThreadTicks(std::collections::BTreeMap<String, u64>);

impl ThreadTicks {
    fn now(pids: &[u32]) -> ThreadTicks {
        let mut by_name = std::collections::BTreeMap::new();
        for pid in pids {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.filter_map(|t| t.ok()) {
                if let Some((name, fields)) = stat_at(&task.path().join("stat")) {
                    let name = name.trim_end_matches(|c: char| c.is_ascii_digit());
                    *by_name.entry(name.to_string()).or_default() += ticks_in(&fields);
                }
            }
        }
        ThreadTicks(by_name)
    }

    /// The CPU seconds each thread name took since `self`, most first.
    fn print_since(&self, pids: &[u32], nodes: usize, phase: &str) {
        let now = ThreadTicks::now(pids);
        let mut spent: Vec<(u64, &String)> = now
            .0
            .iter()
            .map(|(name, t)| (t.saturating_sub(*self.0.get(name).unwrap_or(&0)), name))
            .filter(|(t, _)| *t > 0)
            .collect();
        spent.sort_by(|a, b| b.cmp(a));
        let shown: Vec<String> = spent
            .iter()
            .map(|(t, name)| format!("{name} {:.2}", *t as f64 / 100.0))
            .collect();
        println!(
            "serve's threads on {nodes} node(s) over the {phase}, CPU seconds: {}",
            shown.join(", ")
        );
    }
}

/// The fields of `/proc/PID/stat` after the command's name: state (0),
/// ppid (1), ..., utime (11), stime (12).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    stat_at(Path::new(&format!("/proc/{pid}/stat"))).map(|(_, fields)| fields)
}

/// A process's or thread's `stat` file: the command's name, and the fields
/// after it.
fn stat_at(path: &Path) -> Option<(String, Vec<String>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (head, rest) = text.rsplit_once(')')?;
    let (_, name) = head.split_once('(')?;
    Some((
        name.to_string(),
        rest.split_whitespace().map(String::from).collect(),
    ))
}

/// User and system CPU in `stat`'s fields (clock ticks).
fn ticks_in(fields: &[String]) -> u64 {
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    tick(11)
        .zip(tick(12))
        .map_or(0, |(user, system)| user + system)
}

fn ticks_of(pid: u32) -> u64 {
    stat_fields(pid).map_or(0, |f| ticks_in(&f))
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat_fields(*pid)
                .and_then(|f| f.get(1)?.parse::<u32>().ok())
                .is_some_and(|ppid| ppid == parent)
        })
        .collect()
}

/// A counter of `GET /metrics` (Prometheus' text format).
fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut page = String::new();
    stream.read_to_string(&mut page).ok()?;
    page.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse::<f64>().ok().map(|v| v as u64)
    })
}

/// One query's answer from `psql` (unaligned, tuples only), as the
/// superuser over TCP (trusted on the throwaway server).
fn sql(db: &TestDb, query: &str) -> Result<String> {
    let port = db.port().to_string();
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "alerts",
        ])
        .args(["-AtXq", "-c", query])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The statements that took PostgreSQL the most time on `nodes` nodes
/// over `phase` (since the counts were reset: `pg_stat_statements`), and
/// their time together.
fn print_statements(db: &TestDb, nodes: usize, phase: &str) -> Result<()> {
    let all = sql(
        db,
        "SELECT round(sum(total_exec_time))::bigint, sum(calls) FROM pg_stat_statements",
    )?;
    let (total, calls) = all.split_once('|').unwrap_or((&all, "?"));
    let top = sql(
        db,
        "SELECT calls, round(total_exec_time)::bigint, round(1000 * mean_exec_time)::bigint,
                plans, round(total_plan_time)::bigint,
                rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 110)
         FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 15",
    )?;
    let planned = sql(
        db,
        "SELECT round(sum(total_plan_time))::bigint, sum(plans) FROM pg_stat_statements",
    )?;
    let (planning, plans) = planned.split_once('|').unwrap_or((&planned, "?"));
    println!(
        "statements on {nodes} node(s) over the {phase}: {calls} taking {total} ms, and {plans} plans taking {planning} ms; the costliest (calls | total ms | mean µs | plans | planning ms | rows | query):"
    );
    for line in top.lines() {
        println!("  {line}");
    }
    Ok(())
}

/// Transactions committed and rolled back in the `alerts` database so far,
/// as its statistics have them.
fn transactions(db: &TestDb) -> Result<(u64, u64)> {
    let answer = sql(
        db,
        "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = 'alerts'",
    )?;
    let (committed, rolled_back) = answer.split_once('|').context("two columns")?;
    Ok((committed.parse()?, rolled_back.parse()?))
}

/// The `ERROR` and `WARN` lines among serve's logs.
fn problems(logs: &[String]) -> Vec<String> {
    logs.iter()
        .flat_map(|log| log.lines())
        .filter(|line| line.contains("ERROR") || line.contains("WARN"))
        .map(String::from)
        .collect()
}
