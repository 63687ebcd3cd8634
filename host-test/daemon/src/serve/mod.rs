//! `serve`: the daemon. It takes alerts over HTTP in Kapacitor's
//! `post`-handler JSON (a real Kapacitor's `.post('http://…')` can feed
//! it; query parameters are handler options), answers only once the alert
//! is in the store, and delivers from the store: transient failures wait
//! (Slack's `Retry-After` exactly, else backoff), each channel is paced
//! (about one message a second, a short burst allowed), permanent failures
//! end there.
//!
//! Events of one alert (one alert key: its id and handler options) go out
//! in the order they were accepted, each only once the one before has
//! ended, and each is sent with the alert's message so far
//! (`previous-channel-id`, `previous-ts`) for `on-recovery` `update` or
//! `thread`; what the delivery makes the alert's message is recorded with
//! its ending (see [`crate::store`]).
//!
//! [`run`] only wires and drains: the dispatcher (`dispatch.rs`), woken by
//! the committer and by endings, has the planner (`planner.rs`) queue what
//! reached the store and starts a delivery
//! (`delivery.rs`) for each alert the scheduler says is due, each a task
//! with an instance of its own (`instances.rs`) that records its ending
//! (`ending.rs`); the aggregator (`aggregator.rs`) closes aggregate
//! windows; all share `shared.rs`. Intake serves HTTP until the shutdown
//! signal ([`shutdown`]).
//!
//! Threads: intake's runtime ([`intake_threads`]), the delivery runtime
//! ([`delivery_threads`]) for every request in flight (the dispatcher runs
//! on the calling thread), the committer, the aggregator and wasmtime's
//! epoch ticker: a
//! number set by the machine's cores, not by channels or requests.

mod aggregator;
pub(crate) mod channels;
mod delivery;
mod dispatch;
mod ending;
mod owners;
mod planner;
mod repeat;
mod shared;
pub mod shutdown;
mod storm_delivery;
pub mod storms;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alert_handler_host::net::dial::Dialer;
use alert_handler_host::net::tls;
use alert_handler_host::retry::Backoff;
use alert_handler_host::{destinations, ConfigSummary, Runtime, WorkspaceSummary};
use anyhow::Result;
use kapacitor_formats::topics::Handlers;
use slack_alert_handler::alertmanager::Levels;
use tracing::info;

use crate::commit::GroupCommit;
use crate::instances::Instances;
use crate::intake::{self, AlertmanagerWebhook, Front, KapacitorPost, Limits, Token};
use crate::interactions::clicks::{AppToken, Clicks, SocketPeer};
use crate::interactions::socket_mode::{self, SocketState};
use crate::metrics::Metrics;
use crate::option_check::OptionCheck;
use crate::scheduler::{Rules, Scheduler};
use crate::serve::channels::Channels;
use crate::store::Store;
use shared::{Dispatch, Shared};

/// Requests in flight at once by default: every channel that may send
/// now has its request out, up to this many.
pub const MAX_IN_FLIGHT: usize = 1_000;

/// How the server paces, retries and how many requests it has out.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// The time between messages to one channel (Slack: about a second).
    pub channel_interval: Duration,
    /// How many messages a quiet channel may take at once.
    pub channel_burst: u32,
    pub backoff: Backoff,
    /// Requests in flight at once, over all channels, each with its own
    /// instance (one channel has at most one request in flight).
    pub max_in_flight: usize,
    /// When a storm closes, and the workspaces' `chat.update` budget.
    pub storms: storms::StormRules,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            channel_interval: Duration::from_secs(1),
            channel_burst: 3,
            backoff: Backoff::default(),
            max_in_flight: MAX_IN_FLIGHT,
            storms: storms::StormRules::default(),
        }
    }
}

impl Pacing {
    /// The scheduler's rules. The margin for round-trip jitter starts at
    /// 30 ms for Slack's one second (a tenth of shorter intervals) and
    /// grows with `429`s to at most half an interval.
    pub fn rules(&self) -> Rules {
        let interval = self.channel_interval;
        Rules {
            interval,
            burst: self.channel_burst.max(1),
            margin: (interval / 10).min(Duration::from_millis(30)),
            max_margin: (interval / 2).min(Duration::from_millis(500)),
            max_in_flight: self.max_in_flight.max(1),
        }
    }
}

/// What intake takes and from whom.
#[derive(Default)]
pub struct Intake {
    /// Plugins of the directory that did not load, each with why (shown by
    /// `GET /healthz`).
    pub broken: Vec<String>,
    /// The bearer token every request but `GET /healthz` must carry.
    pub token: Option<Token>,
    /// How much a request may send, and how slowly.
    pub limits: Limits,
    /// Topic handlers (`--handlers DIR`): alerts posted with `?topic=` go to
    /// them, and their aggregates publish when their intervals end.
    pub topics: Option<Arc<Handlers>>,
    /// How Alertmanager's alerts' labels give their level.
    pub levels: Levels,
    /// Socket Mode's app-level token (`--slack-app-token-file`): clicks
    /// are taken over a WebSocket serve opens to Slack.
    pub slack_app_token: Option<AppToken>,
    /// Socket Mode may open a `ws://` URL (no TLS): `--insecure-allow-ws`.
    pub insecure_allow_ws: bool,
    /// The Alertmanagers whose alerts serve receives
    /// (`--alertmanager-url`): a Silence click on one of their alerts makes
    /// a silence there.
    pub alertmanagers: Option<crate::silences::Alertmanagers>,
}

/// What `serve` runs, but the store: where it listens, the handler's
/// configuration, the runtime that loads it, the pacing, what intake takes.
pub struct Settings<'a> {
    /// The runtime the component is loaded into.
    pub runtime: &'a Runtime,
    /// The configuration every instance is configured with.
    pub config: &'a str,
    /// The plugin directory's other plugins (`--plugins`), configured: the
    /// alerts of topic handler files of their kinds go to them.
    pub others: Vec<alert_handler_host::plugins::Plugin>,
    /// Bound already (port 0 picks one; `ready` hears which).
    pub listener: TcpListener,
    pub pacing: Pacing,
    pub intake: Intake,
}

/// Serves on `settings.listener` and `store` until `shutdown` resolves:
/// then the requests in flight are answered, the attempts in flight end
/// and are recorded, and it returns (what is still pending is delivered
/// after the next start). `ready` hears the bound address once every
/// instance is configured.
pub fn run(
    settings: Settings<'_>,
    store: impl Store + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let Settings {
        runtime,
        config,
        others,
        listener,
        pacing,
        intake,
    } = settings;
    // Every request in flight is a task here, on a few threads; so are the
    // calls made at start (no thread is left behind for blocking calls).
    let delivering = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(delivery_threads())
        .thread_name("deliver")
        // Name lookups (a new connection's) run on blocking threads: a
        // thousand connections opened at once wait for a few of them
        // rather than start a thread each.
        .max_blocking_threads(delivery_threads())
        .enable_all()
        .build()?;
    // The configuration is checked before anything is accepted, so a bad
    // one stops the start.
    let (first, summary, check) = delivering.block_on(async {
        let mut first = runtime.instantiate_for_async(config).await?;
        let summary = first
            .configure_async(config)
            .await?
            .map_err(|e| anyhow::anyhow!("the configuration was refused: {}", e.describe()))?;
        let check = OptionCheck::new(runtime, config, intake_threads()).await?;
        anyhow::Ok((first, summary, check))
    })?;
    let instances = Arc::new(Instances::new(runtime, config, first));
    // Each other plugin's instances, by its kind.
    let plugins: HashMap<String, Arc<Instances>> = others
        .into_iter()
        .map(|p| {
            let pool = Instances::new(&p.runtime, &p.config, p.instance);
            (p.description.kind, Arc::new(pool))
        })
        .collect();
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let channels = Channels::new(&summary);
    let mut store = store;
    // A shared store files each alert under its channel as it is accepted,
    // as the planner will find it.
    store.plan_by({
        let channels = channels.clone();
        Arc::new(move |id: u64, alert: &str, options: &[(String, String)]| {
            planner::channel_of(&channels, id, alert, options)
        })
    });
    let store: Arc<Mutex<dyn Store>> = Arc::new(Mutex::new(store));
    let changed = Arc::new(tokio::sync::Notify::new());
    let wake_dispatcher = changed.clone();
    let commit = Arc::new(GroupCommit::start(store, move || {
        wake_dispatcher.notify_one();
    })?);
    // Alerts other nodes took wake the dispatcher too.
    let wake_dispatcher = changed.clone();
    commit.watch(Arc::new(move || wake_dispatcher.notify_one()));
    let metrics = Arc::new(Metrics::new());
    commit.read(|store| metrics.this_node(&store.node().unwrap_or_default(), store.kind()));
    let topics = intake.topics;
    let clicks = Clicks::new(
        commit.clone(),
        metrics.clone(),
        instances.clone(),
        delivering.handle().clone(),
        intake.alertmanagers.clone(),
    );
    let intake_alertmanagers = intake.alertmanagers.clone();
    // Socket Mode: by the host's networking, with the TLS settings of the
    // section whose Web API the app's connection is asked of.
    // A plugin that exports only `handler` takes no clicks.
    let takes_clicks = runtime.has_interactions();
    let socket = match intake.slack_app_token {
        Some(_) if !takes_clicks => anyhow::bail!(
            "--slack-app-token-file: the plugin {} takes no clicks (it exports only alerting:handler/handler, not interactions)",
            runtime.path().display()
        ),
        Some(token) => {
            let tls = app_tls(&summary).map_err(|e| anyhow::anyhow!("Socket Mode: {e}"))?;
            let network = socket_mode::Network {
                dialer: Dialer::new(runtime.net(), tls),
                allow_ws: intake.insecure_allow_ws,
                allowlist: runtime.allowlist().cloned(),
            };
            let peer = Arc::new(SocketPeer {
                clicks: clicks.clone(),
                token,
            });
            Some((Arc::new(SocketState::new()), (peer, network)))
        }
        None => None,
    };
    let front = Arc::new(Front {
        commit: commit.clone(),
        metrics: metrics.clone(),
        format: Box::new(KapacitorPost),
        alertmanager: Box::new(AlertmanagerWebhook {
            levels: intake.levels,
        }),
        token: intake.token,
        limits: intake.limits,
        broken: intake.broken,
        topics: topics.clone(),
        check: Some(Arc::new(check)),
        clicks: takes_clicks.then(|| clicks.clone()),
        socket: socket.as_ref().map(|(state, _)| state.clone()),
    });
    let outage = commit.read(|store| store.outage());
    let shared = Arc::new(Shared {
        channels,
        alertmanagers: intake_alertmanagers,
        plugins,
        outage,
        commit,
        metrics,
        stopping: AtomicBool::new(false),
        dispatch: Mutex::new(Dispatch {
            scheduler: Scheduler::new(pacing.rules()),
            queued: HashMap::new(),
            aliases: HashMap::new(),
            storms: storms::Storms::new(pacing.storms).drawn_by_plugin(runtime.has_storms()),
            // Every channel until the store says otherwise: the journal's
            // one node owns all; a shared store's first renewal, before
            // anything is planned, says which.
            owned: crate::store::ALL_SLOTS,
            deferred: Vec::new(),
            ended_after: 0,
        }),
        changed,
    });
    // An alert is written on an intake thread and awaits the committer's
    // fsync without holding it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(intake_threads())
        .thread_name("intake")
        .enable_all()
        .build()?;
    let stopper = shared.clone();
    let intake = std::thread::Builder::new()
        .name("intake".into())
        .spawn(move || {
            rt.block_on(intake::serve(listener, front, async move {
                shutdown.await;
                info!("stopping: finishing the requests and attempts in flight");
                stopper.stop();
            }));
        })?;
    let aggregating = match topics {
        Some(topics) if topics.aggregates().next().is_some() => {
            let shared = shared.clone();
            Some(delivering.spawn(async move { aggregator::run(&shared, &topics).await }))
        }
        _ => None,
    };
    let (stop_socket, socket_stopped) = tokio::sync::oneshot::channel::<()>();
    let socket_mode = socket.map(|(state, (peer, network))| {
        delivering.spawn(socket_mode::run(peer, network, state, async move {
            let _ = socket_stopped.await;
        }))
    });
    ready(bound);
    delivering.block_on(async {
        dispatch::run(shared.clone(), instances, pacing.backoff).await;
        if let Some(aggregating) = aggregating {
            let _ = aggregating.await;
        }
        let _ = stop_socket.send(());
        if let Some(socket_mode) = socket_mode {
            let _ = socket_mode.await;
        }
    });
    let _ = intake.join();
    let pending = shared.commit.read(|store| store.pending_count());
    info!(
        pending,
        "stopped; pending alerts are delivered after the next start"
    );
    Ok(())
}

/// The TLS client settings of the section Socket Mode's connection is asked
/// of: the default one with a Web API, else the first with one (as the
/// component picks it), else the webpki roots.
fn app_tls(summary: &ConfigSummary) -> Result<Arc<rustls::ClientConfig>, String> {
    let web_api = |w: &WorkspaceSummary| w.endpoint.is_some() && w.enabled;
    let all = &summary.workspaces;
    let section = all
        .iter()
        .position(|w| w.is_default && web_api(w))
        .or_else(|| all.iter().position(web_api));
    match section {
        Some(i) => {
            let destination = &destinations(summary)[i];
            tls::client_config(&destination.tls, &destination.id)
        }
        None => tls::client_config(&tls::TlsSettings::default(), ""),
    }
}

/// Threads running deliveries: the machine's cores (at most four). A
/// delivery's own work is the component's rendering and the answer's
/// reading, tens of microseconds; the rest of its time it waits on Slack,
/// as a suspended task.
pub fn delivery_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
}

/// Threads serving intake's connections: half the machine's cores (at
/// least one, at most four), the rest left to the committer, the planner and
/// the deliveries. On two cores one thread takes more alerts than two: the
/// threads would mostly hand work to each other.
pub fn intake_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores / 2).clamp(1, 4)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use alert_handler_host::NetSettings;

    use super::*;
    use crate::spool::Spool;

    /// `run` in this process, on a listener the test bound, until a
    /// shutdown the test sends.
    #[test]
    fn serves_in_process_until_told_to_stop() {
        let runtime = Runtime::load(crate::COMPONENT_PATH, NetSettings::default()).unwrap();
        // Nothing listens on port 1: no alert is posted here anyway.
        let config = "[[slack]]\nenabled = true\ndefault = true\nurl = \"http://127.0.0.1:1/services/T/B/X\"\nchannel = \"#c\"\n";
        let dir = tempfile::tempdir().unwrap();
        let store = Spool::open(dir.path(), 1 << 20).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel();
        let serving = std::thread::spawn(move || {
            let settings = Settings {
                runtime: &runtime,
                config,
                others: Vec::new(),
                listener,
                pacing: Pacing::default(),
                intake: Intake::default(),
            };
            run(
                settings,
                store,
                async move {
                    let _ = stopped.await;
                },
                move |addr| ready.send(addr).unwrap(),
            )
        });
        let addr = bound.recv().unwrap();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"ready\""), "{answer}");
        stop.send(()).unwrap();
        serving.join().unwrap().unwrap();
    }
}
