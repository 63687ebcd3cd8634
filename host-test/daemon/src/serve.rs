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
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{error, info, warn};

use crate::commit::GroupCommit;
use crate::destination::{pacing_key, Destinations};
use crate::intake::{self, Front, KapacitorPost, Limits, Token};
use crate::metrics::Metrics;
use crate::option_check::OptionCheck;
use crate::scheduler::{Decision, Outcome, Rules, Scheduler};
use crate::spool::{self, Finished, Status};
use crate::store::Store;
use alert_handler_host::retry::{Backoff, Next};
use alert_handler_host::{trap_reason, Trapped};
use alert_handler_host::{AlertEvent, HandlerError, Level, Plugin, Runtime};
use kapacitor_formats::aggregate::{self, Collected, Window};
use kapacitor_formats::alert_json;
use kapacitor_formats::topics::{Handlers, Route};

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
    /// Its pacing key: the workspace and the channel.
    channel: String,
    event: AlertEvent,
    options: Vec<(String, String)>,
    /// Requests made for it so far.
    attempts: u32,
}

struct Shared {
    /// Where alerts go: their pacing keys.
    destinations: Destinations,
    /// The store, written and read through its group commit: concurrent
    /// writers share fsyncs; a `202` still means on disk.
    commit: Arc<GroupCommit>,
    metrics: Arc<Metrics>,
    /// Set on SIGTERM (or SIGINT): workers finish their attempt and stop.
    stopping: AtomicBool,
    /// Counts the times accepted alerts reached the disk; signalled with
    /// `arrived` each time, for the planner.
    arrivals: Arc<Mutex<u64>>,
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

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who may call serve and how much it reads.
#[derive(Default)]
pub struct Access {
    /// Plugins of the directory that did not load, each with why (shown by
    /// `GET /healthz`).
    pub broken: Vec<String>,
    /// The bearer token every request but `GET /healthz` must carry.
    pub token: Option<Token>,
    pub limits: Limits,
    /// Topic handlers (`--handlers DIR`): alerts posted with `?topic=` go to
    /// them, and their aggregates publish when their intervals end.
    pub topics: Option<Arc<Handlers>>,
}

/// Serves until SIGTERM or SIGINT: then the requests in flight are
/// answered, the attempts in flight end and are recorded, and it returns
/// (what is still pending is delivered after the next start). `ready` hears
/// the bound address.
pub fn run(
    runtime: &Runtime,
    config: &str,
    listen: SocketAddr,
    store: impl Store + 'static,
    pacing: Pacing,
    access: Access,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    // Each instance is configured before anything is accepted, so a bad
    // configuration stops the start.
    let summary = runtime
        .instantiate_for(config)?
        .configure(config)?
        .map_err(|e| anyhow::anyhow!("the configuration was refused: {}", e.describe()))?;
    let workers: Vec<Plugin> = (0..pacing.workers.max(1))
        .map(|_| runtime.configured(config))
        .collect::<Result<_>>()?;
    let listener =
        std::net::TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    // The file spool, or any other store.
    let store: Arc<Mutex<dyn Store>> = Arc::new(Mutex::new(store));
    let arrivals = Arc::new(Mutex::new(0u64));
    let arrived = Arc::new(Condvar::new());
    let (count, wake_planner) = (arrivals.clone(), arrived.clone());
    let commit = Arc::new(GroupCommit::start(store, move || {
        *lock(&count) += 1;
        wake_planner.notify_all();
    })?);
    let metrics = Arc::new(Metrics::new());
    let front = Arc::new(Front {
        commit: commit.clone(),
        metrics: metrics.clone(),
        format: Box::new(KapacitorPost),
        token: access.token,
        limits: access.limits,
        broken: access.broken,
        topics: access.topics.clone(),
        check: Some(Arc::new(OptionCheck::new(
            runtime,
            config,
            intake_threads(),
        )?)),
    });
    let shared = Arc::new(Shared {
        destinations: Destinations::new(&summary),
        commit,
        metrics,
        stopping: AtomicBool::new(false),
        arrivals,
        arrived,
        engine: Mutex::new(Engine {
            scheduler: Scheduler::new(pacing.rules()),
            items: HashMap::new(),
            aliases: HashMap::new(),
        }),
        changed: Condvar::new(),
    });
    // An alert is written on an intake thread and awaits the committer's
    // fsync without holding it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(intake_threads())
        .enable_all()
        .build()?;
    let signals = rt.block_on(async { Signals::new() })?;
    let stopper = shared.clone();
    let intake = std::thread::Builder::new()
        .name("intake".into())
        .spawn(move || {
            rt.block_on(intake::serve(listener, front, async move {
                let signal = signals.next().await;
                info!(
                    signal,
                    "stopping: finishing the requests and attempts in flight"
                );
                stopper.stop();
            }));
        })?;
    let mut delivering = Vec::new();
    for (n, plugin) in workers.into_iter().enumerate() {
        let (shared, runtime, config) = (shared.clone(), runtime.clone(), config.to_string());
        delivering.push(
            std::thread::Builder::new()
                .name(format!("worker-{n}"))
                .spawn(move || deliver(&shared, &runtime, &config, plugin, pacing.backoff))?,
        );
    }
    let aggregating = match access.topics {
        Some(topics) if topics.aggregates().next().is_some() => {
            let shared = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("aggregate".into())
                    .spawn(move || aggregate(&shared, &topics))?,
            )
        }
        _ => None,
    };
    ready(bound);

    // Queue what is pending, then each alert once intake has it on disk:
    // decoded and handed to the scheduler under its destination.
    let mut seen = 0;
    while !shared.stopping() {
        // Taken before looking: an arrival after it is never missed.
        let arrivals = *lock(&shared.arrivals);
        let fresh = {
            let spool = shared.commit.store();
            // Read and marked seen under one lock: nothing accepted between.
            let fresh = (spool.last_id() > seen).then(|| spool.pending_after(seen));
            seen = spool.last_id();
            fresh
        };
        match fresh {
            Some(fresh) => plan(&shared, fresh),
            None => {
                let mut now = lock(&shared.arrivals);
                while *now == arrivals && !shared.stopping() {
                    now = shared
                        .arrived
                        .wait_timeout(now, Duration::from_secs(1))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
    for worker in delivering {
        let _ = worker.join();
    }
    if let Some(aggregating) = aggregating {
        let _ = aggregating.join();
    }
    let _ = intake.join();
    let pending = shared.commit.store().pending_count();
    info!(
        pending,
        "stopped; pending alerts are delivered after the next start"
    );
    Ok(())
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Tells the planner and the workers to stop, and wakes them.
    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Under each lock, so no waiter misses it between check and wait.
        drop(lock(&self.arrivals));
        self.arrived.notify_all();
        drop(lock(&self.engine));
        self.changed.notify_all();
    }
}

/// SIGTERM and SIGINT, listened for from the start.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the next signal.
    async fn next(mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Closes each aggregate's window when its interval ends, and publishes
/// its event to the aggregate's topic: the alerts and collections that
/// leads to are written with the window's closing, in one record. A window
/// whose interval ended while serve was down closes at once.
fn aggregate(shared: &Shared, topics: &Handlers) {
    while !shared.stopping() {
        let now = unix_ms();
        let mut next = now + 1_000;
        let due: Vec<(String, Window)> = shared
            .commit
            .store()
            .windows()
            .into_iter()
            .filter_map(|(handler, window)| {
                let ends = match topics.aggregate(&handler) {
                    Some(spec) => window.ends_ms(spec),
                    // Its handler file is gone: the window closes unsent.
                    None => now,
                };
                if ends <= now {
                    Some((handler, window))
                } else {
                    next = next.min(ends);
                    None
                }
            })
            .collect();
        for (handler, window) in due {
            close_window(shared, topics, &handler, &window);
        }
        let wait = next.saturating_sub(unix_ms()).clamp(5, 1_000);
        std::thread::sleep(Duration::from_millis(wait));
    }
}

fn close_window(shared: &Shared, topics: &Handlers, handler: &str, window: &Window) {
    let (mut accepts, mut collects) = (Vec::new(), Vec::new());
    let spec = topics.aggregate(handler);
    let event = spec.and_then(|spec| Some((spec, aggregate::emit(handler, spec, window)?)));
    if let Some((spec, alert)) = &event {
        match alert_json::decode(alert) {
            Ok(mut decoded) => {
                decoded.topic = Some(spec.topic.clone());
                let (routes, notes) = topics.route(&spec.topic, &decoded);
                for note in notes {
                    warn!(topic = spec.topic, "{note}");
                }
                for route in routes {
                    match route {
                        Route::Deliver { options, .. } => accepts.push((alert.clone(), options)),
                        Route::Collect { handler: next } => {
                            if let Ok(c) = Collected::from_alert(alert) {
                                collects.push((next, c));
                            }
                        }
                    }
                }
            }
            Err(e) => error!(handler, "the aggregated event is not an alert: {e:#}"),
        }
    } else if spec.is_none() {
        warn!(
            handler,
            "no aggregate handler has this id any more; its window closes unsent"
        );
    }
    let closed = shared
        .commit
        .write(|store| store.emit(handler, accepts, collects));
    // Not closed unless durable: the window stays open, to be closed again.
    match closed
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|((ids, _), durable)| {
            durable.wait_blocking()?;
            Ok(ids)
        }) {
        Ok(ids) => info!(
            handler,
            events = window.count,
            alerts = ?ids,
            "aggregate interval ended"
        ),
        Err(e) => error!(handler, "closing the aggregate's window failed: {e:#}"),
    }
}

/// Now, in milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
                shared.metrics.failed("invalid-alert");
                finish(
                    shared,
                    "",
                    Finished::new(id, Status::Failed, &format!("{e:#}"), 0),
                );
                continue;
            }
        };
        let key = shared.destinations.pacing_key(&item.options);
        let prepared = Prepared {
            alert: spool::alert_key(&event.id, &item.options),
            channel: key.clone(),
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
    for (id, key, mut prepared) in queued {
        let key = engine.aliases.get(&key).cloned().unwrap_or(key);
        prepared.channel.clone_from(&key);
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

/// Attempts an alert gets when each is stopped by a host limit (the call
/// deadline, the memory cap): the first and two more on fresh instances,
/// then it fails for good with the limit's one-line reason.
const LIMIT_TRAP_ATTEMPTS: u32 = 3;

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
                Err(e) => error!("a fresh instance failed to configure: {e:#}"),
            }
        }
        let (id, mut item) = {
            let mut engine = lock(&shared.engine);
            loop {
                if shared.stopping() {
                    return;
                }
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
                shared.metrics.delivered();
                finish(shared, &item.channel, done);
                Outcome::Ended
            }
            Ok(Err(error)) => match backoff.next(&error, attempt) {
                Next::GiveUp => {
                    let detail = error.describe();
                    // Options wrong for the configuration: no request left.
                    let requests = attempt - u32::from(error.refused_before_sending());
                    shared.metrics.failed(&error_code(&error));
                    finish(
                        shared,
                        &item.channel,
                        Finished::new(id, Status::Failed, &detail, requests),
                    );
                    Outcome::Ended
                }
                Next::RetryAfter(wait) => {
                    warn!(
                        alert = id,
                        attempt,
                        channel = item.channel,
                        error = error.describe(),
                        retry_in_ms = wait.as_millis() as u64,
                        "attempt failed; will retry"
                    );
                    let (retry_after, rate_limited) = match &error {
                        HandlerError::Transient(t) => (
                            t.retry_after_seconds.is_some(),
                            t.status == Some(429)
                                || matches!(t.code.as_str(), "rate_limited" | "ratelimited"),
                        ),
                        _ => (false, false),
                    };
                    shared.metrics.retry(rate_limited);
                    Outcome::Retry {
                        at: Instant::now() + wait,
                        retry_after,
                        rate_limited,
                    }
                }
            },
            Err(trap) => {
                // A trapped instance is dead: replaced before the next request.
                served = RECYCLE_AFTER;
                let detail = trap_reason(&trap);
                let limit = trap.downcast_ref::<Trapped>().is_some_and(|t| t.limit);
                if limit && attempt < LIMIT_TRAP_ATTEMPTS {
                    // The host's limit stopped it (its deadline, its memory
                    // cap), not the alert: tried again on a fresh instance.
                    let wait = match backoff.next(&HandlerError::Transport(detail.clone()), attempt)
                    {
                        Next::RetryAfter(wait) => wait,
                        Next::GiveUp => backoff.base,
                    };
                    warn!(
                        alert = id,
                        attempt,
                        channel = item.channel,
                        error = detail,
                        retry_in_ms = wait.as_millis() as u64,
                        "attempt stopped by a host limit; will retry on a fresh instance"
                    );
                    shared.metrics.retry(false);
                    Outcome::Retry {
                        at: Instant::now() + wait,
                        retry_after: false,
                        rate_limited: false,
                    }
                } else {
                    shared.metrics.failed("trap");
                    finish(
                        shared,
                        &item.channel,
                        Finished::new(id, Status::Failed, &detail, attempt),
                    );
                    Outcome::Ended
                }
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
    let kept = shared.commit.store();
    match kept.message(&item.alert) {
        Some(m) => spool::with_previous(&item.options, &m.channel_id, &m.ts),
        None => item.options.clone(),
    }
}

/// Records how an alert ended (and what that makes its alert's message),
/// and logs it.
fn finish(shared: &Shared, channel: &str, done: Finished) {
    let (id, attempts) = (done.id, done.attempts);
    match done.status {
        Status::Delivered => info!(
            alert = id,
            channel,
            attempts,
            detail = done.detail,
            "delivered"
        ),
        Status::Failed => warn!(alert = id, channel, attempts, error = done.detail, "failed"),
    }
    // Workers ending alerts at once share fsyncs, as intake does; the
    // ending is on disk before the alert's next event is sent. One that
    // cannot be written (a full disk) is written again until it is: the
    // alert stays pending meanwhile, and is sent again after a restart if
    // serve stops first (at least once).
    let mut wait = Duration::from_millis(100);
    loop {
        let recorded = shared
            .commit
            .write(|store| store.finish(done.clone()))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|(_, durable)| Ok(durable.wait_blocking()?));
        match recorded {
            Ok(()) => return,
            Err(e) if shared.stopping() => {
                error!(
                    alert = id,
                    "recording the end of the alert failed; it is sent again after the next start: {e:#}"
                );
                return;
            }
            Err(e) => {
                error!(
                    alert = id,
                    retry_in_ms = wait.as_millis() as u64,
                    "recording the end of the alert failed; trying again: {e:#}"
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The `code` label of a failure: Slack's error code when Slack refused,
/// else the handler error's case.
fn error_code(error: &HandlerError) -> String {
    match error {
        HandlerError::SlackRejected(r) => r.code.clone(),
        HandlerError::Transient(t) => t.code.clone(),
        other => other.kind().to_string(),
    }
}
