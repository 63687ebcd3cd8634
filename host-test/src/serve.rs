//! `host-test serve`: a long-running host. It takes alerts over HTTP in
//! Kapacitor's `post`-handler JSON (a real Kapacitor's `.post('http://…')`
//! can feed it; query parameters are handler options), answers only once the
//! alert is in the spool, and delivers from the spool: transient failures
//! wait (Slack's `Retry-After` exactly, else backoff), each channel is paced
//! (about one message a second, a short burst allowed), permanent failures
//! end there.
//!
//! Events of one alert (one alert key: its id and handler options) go out
//! in the order they were accepted, each only once the one before has
//! ended, and each is sent with the alert's message so far
//! (`previous-channel-id`, `previous-ts`) for `on-recovery` `update` or
//! `thread`; what the delivery makes the alert's message is recorded with
//! its `done` record (see [`crate::spool`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::alert_json;
use crate::commit::GroupCommit;
use crate::destination::{pacing_key, Destinations};
use crate::retry::{Backoff, Next};
use crate::runtime::{AlertEvent, HandlerError, Level, Plugin, Runtime};
use crate::scheduler::{Decision, Outcome, Rules, Scheduler};
use crate::spool::{self, Finished, Spool, SpoolError, Status};

/// How the server paces, retries and how many requests it has out.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// The time between messages to one channel (Slack: about a second).
    pub channel_interval: Duration,
    /// How many messages a quiet channel may take at once.
    pub channel_burst: u32,
    pub backoff: Backoff,
    /// Configured instances delivering at once (one channel has at most
    /// one request in flight).
    pub workers: usize,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            channel_interval: Duration::from_secs(1),
            channel_burst: 3,
            backoff: Backoff::default(),
            workers: 8,
        }
    }
}

impl Pacing {
    /// The scheduler's rules. The margin for round-trip jitter starts at
    /// 30 ms for Slack's one second (a tenth of shorter intervals) and
    /// grows with `429`s to at most half an interval.
    fn rules(&self) -> Rules {
        let interval = self.channel_interval;
        Rules {
            interval,
            burst: self.channel_burst.max(1),
            margin: (interval / 10).min(Duration::from_millis(30)),
            max_margin: (interval / 2).min(Duration::from_millis(500)),
            max_in_flight: self.workers.max(1),
        }
    }
}

/// A pending alert, decoded, with its keys.
#[derive(Clone)]
struct Prepared {
    /// Its alert's key ([`spool::alert_key`]): one key's events go in order.
    alert: String,
    event: AlertEvent,
    options: Vec<(String, String)>,
    /// Requests made for it so far.
    attempts: u32,
}

struct Shared {
    /// Where alerts go: their pacing keys.
    destinations: Destinations,
    spool: Arc<Mutex<Spool>>,
    /// Concurrent intake shares fsyncs; a `202` still means on disk.
    commit: GroupCommit,
    /// Signalled (with `spool`) when accepted alerts are on disk.
    arrived: Arc<Condvar>,
    engine: Mutex<Engine>,
    /// Signalled (with `engine`) when an alert is queued or an attempt ends.
    changed: Condvar,
}

/// The scheduler and the alerts it knows.
struct Engine {
    scheduler: Scheduler,
    items: HashMap<u64, Prepared>,
    /// A channel's id (`CALERTS`, learnt from a delivery) to the pacing key
    /// of its name (`#alerts`): one Slack channel, one pace.
    aliases: HashMap<String, String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves until the process ends. `ready` hears the bound address.
pub fn run(
    runtime: &Runtime,
    config: &str,
    listen: SocketAddr,
    spool: Spool,
    pacing: Pacing,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    // Each instance is configured before anything is accepted, so a bad
    // configuration stops the start.
    let summary = runtime
        .instantiate()?
        .configure(config)?
        .map_err(|e| anyhow::anyhow!("the configuration was refused: {}", e.describe()))?;
    let workers: Vec<Plugin> = (0..pacing.workers.max(1))
        .map(|_| runtime.configured(config))
        .collect::<Result<_>>()?;
    let listener =
        std::net::TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let spool = Arc::new(Mutex::new(spool));
    let arrived = Arc::new(Condvar::new());
    let wake_planner = arrived.clone();
    let shared = Arc::new(Shared {
        destinations: Destinations::new(&summary),
        commit: GroupCommit::start(spool.clone(), move || wake_planner.notify_all())?,
        spool,
        arrived,
        engine: Mutex::new(Engine {
            scheduler: Scheduler::new(pacing.rules()),
            items: HashMap::new(),
            aliases: HashMap::new(),
        }),
        changed: Condvar::new(),
    });
    let intake = shared.clone();
    std::thread::Builder::new()
        .name("intake".into())
        .spawn(move || {
            // An alert is written on an intake thread and awaits the
            // committer's fsync without holding it.
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(intake_threads())
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(accept_loop(listener, intake));
        })?;
    for (n, plugin) in workers.into_iter().enumerate() {
        let (shared, runtime, config) = (shared.clone(), runtime.clone(), config.to_string());
        std::thread::Builder::new()
            .name(format!("worker-{n}"))
            .spawn(move || deliver(&shared, &runtime, &config, plugin, pacing.backoff))?;
    }
    ready(bound);

    // Queue what is pending, then each alert once intake has it on disk:
    // decoded and handed to the scheduler under its destination.
    let mut seen = 0;
    loop {
        let fresh = {
            let mut spool = lock(&shared.spool);
            while spool.last_id() <= seen {
                spool = shared
                    .arrived
                    .wait_timeout(spool, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            // Read and marked seen under one lock: nothing accepted between.
            let fresh = spool.pending_after(seen);
            seen = spool.last_id();
            fresh
        };
        plan(&shared, fresh);
    }
}

/// Decodes accepted alerts and queues them under their destinations; an
/// alert that cannot be decoded fails now.
fn plan(shared: &Shared, fresh: Vec<spool::Pending>) {
    let mut queued = Vec::with_capacity(fresh.len());
    for item in fresh {
        let id = item.id;
        let event = match alert_json::decode(&item.alert) {
            Ok(event) => event,
            Err(e) => {
                finish(
                    shared,
                    Finished::new(id, Status::Failed, &format!("{e:#}"), 0),
                );
                continue;
            }
        };
        let key = shared.destinations.pacing_key(&item.options);
        let prepared = Prepared {
            alert: spool::alert_key(&event.id, &item.options),
            event,
            options: item.options,
            attempts: 0,
        };
        queued.push((id, key, prepared));
    }
    if queued.is_empty() {
        return;
    }
    let mut engine = lock(&shared.engine);
    let now = Instant::now();
    for (id, key, prepared) in queued {
        let key = engine.aliases.get(&key).cloned().unwrap_or(key);
        engine.scheduler.add(id, &key, &prepared.alert, now);
        engine.items.insert(id, prepared);
    }
    shared.changed.notify_all();
}

/// Threads serving intake's connections: half the machine's cores (at
/// least one, at most four), the rest left to the committer, the planner and
/// the workers. On two cores one thread takes more alerts than two: the
/// threads would mostly hand work to each other.
pub fn intake_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores / 2).clamp(1, 4)
}

/// Requests an instance makes before a worker replaces it with a fresh
/// one: a long-lived store keeps growing with the calls it served (the soak
/// bench measured about 100 bytes a delivery), a fresh one costs about a
/// millisecond.
const RECYCLE_AFTER: u32 = 10_000;

/// One worker: takes what the scheduler says to send, sends it with its
/// own instance, records the ending, tells the scheduler.
fn deliver(shared: &Shared, runtime: &Runtime, config: &str, mut plugin: Plugin, backoff: Backoff) {
    let mut served = 0;
    loop {
        served += 1;
        if served > RECYCLE_AFTER {
            match runtime.configured(config) {
                Ok(fresh) => {
                    plugin = fresh;
                    served = 1;
                }
                Err(e) => eprintln!("serve: a fresh instance failed to configure: {e:#}"),
            }
        }
        let (id, mut item) = {
            let mut engine = lock(&shared.engine);
            loop {
                let now = Instant::now();
                let wait = match engine.scheduler.next(now) {
                    Decision::Send(id) => match engine.items.get(&id) {
                        Some(item) => break (id, item.clone()),
                        None => {
                            engine.scheduler.done(id, Outcome::Ended);
                            continue;
                        }
                    },
                    Decision::Wait(until) => until.map_or(Duration::from_secs(1), |t| {
                        t.saturating_duration_since(now)
                            .clamp(Duration::from_millis(1), Duration::from_secs(1))
                    }),
                };
                engine = shared
                    .changed
                    .wait_timeout(engine, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        item.attempts += 1;
        let attempt = item.attempts;
        let answer = plugin.handle_alert(&item.event, &options_for(shared, &item));
        // A channel's id learnt from this delivery, to pace with its name.
        let mut alias = None;
        let outcome = match answer {
            Ok(Ok(delivery)) => {
                let mut detail = format!(
                    "{} {}",
                    delivery.channel,
                    delivery.ts.as_deref().unwrap_or_default()
                )
                .trim()
                .to_string();
                if !delivery.warnings.is_empty() {
                    detail += &format!(" (warnings: {})", delivery.warnings.join(", "));
                }
                alias = delivery
                    .channel_id
                    .as_deref()
                    .filter(|c| !delivery.channel.is_empty() && *c != delivery.channel)
                    .map(|channel_id| {
                        (
                            pacing_key(&delivery.workspace, channel_id),
                            pacing_key(&delivery.workspace, &delivery.channel),
                        )
                    });
                let done = Finished::new(id, Status::Delivered, &detail, attempt).remembering(
                    &item.alert,
                    matches!(item.event.level, Level::Ok),
                    &delivery.workspace,
                    delivery.channel_id.as_deref(),
                    delivery.ts.as_deref(),
                );
                finish(shared, done);
                Outcome::Ended
            }
            Ok(Err(error)) => match backoff.next(&error, attempt) {
                Next::GiveUp => {
                    let detail = error.describe();
                    // Options wrong for the configuration: no request left.
                    let requests = attempt - u32::from(error.refused_before_sending());
                    finish(shared, Finished::new(id, Status::Failed, &detail, requests));
                    Outcome::Ended
                }
                Next::RetryAfter(wait) => {
                    eprintln!(
                        "serve: #{id} attempt {attempt}: {}; next try in {} ms",
                        error.describe(),
                        wait.as_millis()
                    );
                    let (retry_after, rate_limited) = match &error {
                        HandlerError::Transient(t) => (
                            t.retry_after_seconds.is_some(),
                            t.status == Some(429)
                                || matches!(t.code.as_str(), "rate_limited" | "ratelimited"),
                        ),
                        _ => (false, false),
                    };
                    Outcome::Retry {
                        at: Instant::now() + wait,
                        retry_after,
                        rate_limited,
                    }
                }
            },
            Err(trap) => {
                let detail = format!("{trap:#}");
                finish(shared, Finished::new(id, Status::Failed, &detail, attempt));
                // A trapped instance is dead: replaced before the next request.
                served = RECYCLE_AFTER;
                Outcome::Ended
            }
        };
        let mut engine = lock(&shared.engine);
        if let Some((id_key, name_key)) = alias {
            engine.aliases.insert(id_key, name_key);
        }
        match outcome {
            Outcome::Ended => {
                engine.items.remove(&id);
            }
            Outcome::Retry { .. } => {
                if let Some(kept) = engine.items.get_mut(&id) {
                    kept.attempts = attempt;
                }
            }
        }
        engine.scheduler.done(id, outcome);
        shared.changed.notify_all();
    }
}

/// `item`'s options with its alert's message so far, for `on-recovery`
/// `update` and `thread` (a handler with `new` ignores it).
fn options_for(shared: &Shared, item: &Prepared) -> Vec<(String, String)> {
    let kept = lock(&shared.spool);
    match kept.message(&item.alert) {
        Some(m) => spool::with_previous(&item.options, &m.channel_id, &m.ts),
        None => item.options.clone(),
    }
}

/// Records how an alert ended (and what that makes its alert's message),
/// and says so on stderr.
fn finish(shared: &Shared, done: Finished) {
    let Finished {
        id,
        status,
        attempts,
        ..
    } = done;
    let plural = if attempts == 1 { "" } else { "s" };
    let verb = match status {
        Status::Delivered => "delivered to",
        Status::Failed => "failed:",
    };
    eprintln!(
        "serve: #{id} {verb} {} ({attempts} attempt{plural})",
        done.detail
    );
    // Workers ending alerts at once share fsyncs, as intake does; the
    // ending is on disk before the alert's next event is sent.
    let recorded = lock(&shared.spool).finish_unsynced(done);
    if let Err(e) = recorded.and_then(|ticket| Ok(shared.commit.wait(ticket)?)) {
        eprintln!("serve: recording the end of alert {id} failed: {e:#}");
    }
}

async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| intake(req, shared.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Decodes a query component: `%XX` escapes and `+` for a space.
fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(status: u16, body: serde_json::Value) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

async fn intake(
    req: hyper::Request<hyper::body::Incoming>,
    shared: Arc<Shared>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    if req.method() == hyper::Method::GET {
        let spool = shared.spool.lock().unwrap_or_else(|e| e.into_inner());
        return Ok(answer(200, spool.status_json()));
    }
    let options: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (percent_decode(k), percent_decode(v)),
                    None => (percent_decode(p), String::new()),
                })
                .collect()
        })
        .unwrap_or_default();
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(answer(
            400,
            json!({"error": "the request body could not be read"}),
        ));
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return Ok(answer(400, json!({"error": "the alert is not UTF-8"})));
    };
    if let Err(e) = alert_json::decode(text) {
        return Ok(answer(400, json!({"error": format!("{e:#}")})));
    }
    // Written now, acknowledged once on disk: the committer shares one
    // fsync among every alert written meanwhile.
    let ticket = lock(&shared.spool).accept_unsynced(text, options);
    let accepted = match ticket {
        Ok(ticket) => shared
            .commit
            .durable(ticket)
            .await
            .map(|()| ticket.id)
            .map_err(|e| SpoolError::Io(e.into())),
        Err(e) => Err(e),
    };
    match accepted {
        Ok(id) => Ok(answer(202, json!({"id": id}))),
        Err(e @ SpoolError::Full { .. }) => Ok(answer(503, json!({"error": e.to_string()}))),
        Err(e) => Ok(answer(500, json!({"error": e.to_string()}))),
    }
}
