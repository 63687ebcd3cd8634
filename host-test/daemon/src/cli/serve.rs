//! `serve`: the daemon. Its flags, and how they become the store, the
//! intake's limits, the pacing and the component it runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alert_handler_host::retry::Backoff;
use alert_handler_host::{Host, Runtime};
use anyhow::anyhow;
use clap::Args;
use kapacitor_formats::topics::Handlers;
use tracing::info;

use super::{read, Failure, Target};
use crate::intake::{self, Token};
use crate::interactions::clicks::AppToken;
use crate::serve::storms::StormRules;
use crate::serve::{self, Pacing};
use crate::spool::{self, Spool};
use crate::store::postgres::{self, connect::StoreUrl, PgStore};
use crate::store::Store;
use slack_alert_handler::alertmanager;

/// `serve`'s flags.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub target: Target,
    /// Where to listen, e.g. 127.0.0.1:9100 (port 0 picks one; the first
    /// line printed says which).
    #[arg(long, value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// The spool directory: the journal file, for one node.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["store", "store_url_file"], conflicts_with_all = ["store", "store_url_file"])]
    spool: Option<PathBuf>,
    /// A PostgreSQL database shared by several nodes, as
    /// postgres://USER@HOST:PORT/DB (sslmode and sslrootcert honoured); a
    /// password is better given with --store-url-file.
    #[arg(long, value_name = "URL", conflicts_with = "store_url_file")]
    store: Option<String>,
    /// A file holding the PostgreSQL URL (so its password is not on the
    /// command line).
    #[arg(long, value_name = "FILE")]
    store_url_file: Option<PathBuf>,
    /// This node's name among the nodes sharing the database, unique
    /// among the live ones: a start under a name a live node holds is
    /// refused (default: the host name and a random part, new each start).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// How long a node's claim on an alert holds without renewal: a node
    /// that dies loses its claims after this, and another node sends them.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    lease_ms: u64,
    /// The spool's size limit.
    #[arg(long, value_name = "KIB", default_value_t = 64 * 1024)]
    spool_max_kib: u64,
    /// How many finished alerts `GET /spool` remembers (the newest), so
    /// memory stays flat however long serve runs.
    #[arg(long, value_name = "N", default_value_t = spool::KEEP_FINISHED)]
    keep_finished: usize,
    /// Time between messages to one channel (Slack allows about one a second).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    channel_interval_ms: u64,
    /// Messages a quiet channel may take at once.
    #[arg(long, value_name = "N", default_value_t = 3)]
    channel_burst: u32,
    /// First backoff for transient failures without Retry-After.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    backoff_base_ms: u64,
    /// Requests to Slack in flight at once, to different channels (one
    /// channel has at most one request in flight), each on its own
    /// instance; they are tasks on a few threads, not threads.
    #[arg(long, value_name = "N", default_value_t = crate::serve::MAX_IN_FLIGHT, alias = "workers")]
    max_in_flight: usize,
    /// A storm closes (its message says it is over) once none of its
    /// alerts changed for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    storm_calm_secs: u64,
    /// The `chat.update` budget of each workspace, in edits a minute
    /// (Slack's tier 3: about 50), shared by its storm messages.
    #[arg(long, value_name = "N", default_value_t = 50)]
    updates_per_minute: u32,
    /// A file holding the bearer token every request but `GET /healthz`
    /// must carry (`Authorization: Bearer <token>`).
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a token (anyone who can
    /// reach serve can then post into Slack and read the spool).
    #[arg(long)]
    insecure_no_auth: bool,
    /// The largest alert body taken; larger ones are answered 413.
    #[arg(long, value_name = "KIB", default_value_t = 1024)]
    max_alert_kib: usize,
    /// Seconds a request's body may take to arrive (one that trickles in
    /// is answered 408).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    read_timeout_secs: u64,
    /// Seconds a whole request head may take, from the connection's start
    /// or the previous answer (so also how long an idle keep-alive
    /// connection stays open); not reset by each byte.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    head_timeout_secs: u64,
    /// Requests read and answered at once (connections that have sent a
    /// whole head); more wait, their heads read, for a slot.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_connections: usize,
    /// Connections waiting for a whole request head (new ones, and
    /// keep-alive ones between requests); when full, a new connection
    /// closes the one that has waited longest.
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_waiting_connections: usize,
    /// The largest body `POST /slack/interactions` takes; larger ones are
    /// answered 413 before they are read. The default is the largest click
    /// this handler's messages can bring (a Block Kit message at the
    /// component's limits, as Slack posts it back: docs/interactions.md).
    #[arg(long, value_name = "KIB", default_value_t = crate::interactions::screen::MAX_CLICK_BYTES / 1024)]
    max_click_kib: usize,
    /// Requests to `/slack/interactions` read and verified at once; more
    /// are answered 429 with Retry-After before they are read.
    #[arg(long, value_name = "N", default_value_t = crate::interactions::screen::MAX_VERIFICATIONS)]
    max_verifications: usize,
    /// How log lines on stderr look: `text`, or `json` (one object a line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// A directory of Kapacitor topic-handler files (slack, aggregate,
    /// publish): alerts posted with `?topic=NAME` go to that topic's handlers.
    #[arg(long, value_name = "DIR")]
    handlers: Option<PathBuf>,
    /// The label of an Alertmanager alert that gives its level
    /// (`POST /alertmanager`).
    #[arg(long, value_name = "LABEL", default_value = "severity")]
    alertmanager_severity_label: String,
    /// Each value of that label and the level it means.
    #[arg(
        long,
        value_name = "VALUE=LEVEL,...",
        default_value = "critical=CRITICAL,warning=WARNING,info=INFO"
    )]
    alertmanager_levels: String,
    /// The level of a firing Alertmanager alert without that label, or with
    /// a value not mapped.
    #[arg(long, value_name = "LEVEL", default_value = "WARNING")]
    alertmanager_default_level: String,
    /// A file holding the Slack app's app-level token (`xapp-…`, scope
    /// `connections:write`): serve then takes clicks on alerts' buttons
    /// over Slack's Socket Mode, a WebSocket it opens itself, for a serve
    /// Slack cannot reach (no public Request URL).
    #[arg(long, value_name = "FILE")]
    slack_app_token_file: Option<PathBuf>,
    /// Let Socket Mode open a `ws://` URL (no TLS) that
    /// `apps.connections.open` gives: Slack gives only `wss://`, so this is
    /// for a local stand-in.
    #[arg(long, requires = "slack_app_token_file")]
    insecure_allow_ws: bool,
    /// An Alertmanager whose alerts serve receives (repeatable: an HA
    /// pair): a Silence click on one of its alerts makes a silence there
    /// (its API v2), Unsilence expires it. An alert's own `externalURL` is
    /// never used.
    #[arg(long, value_name = "URL")]
    alertmanager_url: Vec<String>,
    /// A file of Alertmanager URLs, one a line (`#` comments), as
    /// `--alertmanager-url`.
    #[arg(long, value_name = "FILE")]
    alertmanager_url_file: Option<PathBuf>,
    /// A file holding the bearer token sent to the Alertmanagers.
    #[arg(long, value_name = "FILE")]
    alertmanager_token_file: Option<PathBuf>,
    /// A CA bundle to trust for the Alertmanagers' TLS (default: the web's
    /// roots).
    #[arg(long, value_name = "FILE")]
    alertmanager_ca_file: Option<PathBuf>,
    /// A PEM client certificate to present to the Alertmanagers (mutual
    /// TLS, `client_auth_type` in Alertmanager's web config).
    #[arg(long, value_name = "FILE", requires = "alertmanager_key_file")]
    alertmanager_cert_file: Option<PathBuf>,
    /// The PEM key of `--alertmanager-cert-file`.
    #[arg(long, value_name = "FILE", requires = "alertmanager_cert_file")]
    alertmanager_key_file: Option<PathBuf>,
    /// Divides the handlers' intervals, for demos and tests: 3600 turns an
    /// aggregate's 24 h into 24 s.
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    time_scale: f64,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Runs `serve` until SIGTERM or SIGINT.
pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let host =
        Host::new(args.target.net_settings()?, args.target.limits()).map_err(Failure::Host)?;
    let (runtime, text, others, broken) = match (&args.target.plugins, &args.target.config) {
        (Some(dir), _) => {
            let (loaded, others, broken) =
                args.target.from_directory(dir, &host, "slack", false)?;
            (loaded.runtime, loaded.config, others, broken)
        }
        (None, Some(path)) => {
            let text = read(path, "configuration")?;
            let runtime = args.target.open_component(host).map_err(Failure::Host)?;
            (runtime, text, Vec::new(), Vec::new())
        }
        (None, None) => return Err(Failure::Input(anyhow!("serve needs --config or --plugins"))),
    };
    let token = match &args.auth_token_file {
        Some(path) => Some(Token::read(path).map_err(Failure::Input)?),
        None if args.listen.ip().is_loopback() || args.insecure_no_auth => None,
        None => {
            return Err(Failure::Input(anyhow!(
                "serve would listen on {} without authentication: give --auth-token-file FILE, listen on a loopback address (127.0.0.1), or say --insecure-no-auth",
                args.listen
            )))
        }
    };
    let topics = match &args.handlers {
        Some(dir) => {
            let handlers = Handlers::load(dir, args.time_scale).map_err(Failure::Input)?;
            // A handler file's kind picks the plugin of that kind
            // (Kapacitor's rule): one no plugin offers stops the start.
            let mut offered = vec!["slack"];
            offered.extend(others.iter().map(|p| p.description.kind.as_str()));
            handlers.require_kinds(&offered).map_err(Failure::Input)?;
            Some(Arc::new(handlers))
        }
        None => None,
    };
    let levels = alertmanager::Levels {
        label: args.alertmanager_severity_label.clone(),
        map: alertmanager::Levels::parse_map(&args.alertmanager_levels)
            .map_err(|e| Failure::Input(anyhow!("--alertmanager-levels: {e}")))?,
        default: args
            .alertmanager_default_level
            .parse::<slack_alert_handler::event::Level>()
            .map_err(|e| Failure::Input(anyhow!("--alertmanager-default-level: {e}")))?,
    };
    let slack_app_token = match &args.slack_app_token_file {
        Some(path) => Some(AppToken::read(path).map_err(Failure::Input)?),
        None => None,
    };
    let alertmanagers = alertmanagers(&args, &runtime)?;
    let intake = serve::Intake {
        alertmanagers,
        slack_app_token,
        insecure_allow_ws: args.insecure_allow_ws,
        topics,
        levels,
        broken,
        token,
        limits: intake::Limits {
            max_alert_bytes: args.max_alert_kib.max(1) * 1024,
            read_timeout: Duration::from_secs(args.read_timeout_secs.max(1)),
            head_timeout: Duration::from_secs(args.head_timeout_secs.max(1)),
            max_connections: args.max_connections.max(1),
            max_waiting: args.max_waiting_connections.max(1),
            max_click_bytes: args.max_click_kib.max(1) * 1024,
            max_verifications: args.max_verifications.max(1),
        },
    };
    init_logs(args.log_format);
    let pacing = Pacing {
        channel_interval: Duration::from_millis(args.channel_interval_ms),
        channel_burst: args.channel_burst,
        backoff: Backoff {
            base: Duration::from_millis(args.backoff_base_ms),
            ..Backoff::default()
        },
        max_in_flight: args.max_in_flight.max(1),
        storms: StormRules {
            calm: Duration::from_secs(args.storm_calm_secs),
            ..StormRules::default()
        }
        .with_updates_per_minute(args.updates_per_minute),
    };
    // A socket per request in flight and per intake connection, and a few
    // more (the journal or the database, the listener, the cache).
    open_files(pacing.max_in_flight + args.max_connections + args.max_waiting_connections + 64);
    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| Failure::Host(anyhow!("listening on {}: {e}", args.listen)))?;
    let url = match (&args.store, &args.store_url_file) {
        (Some(url), _) => Some(StoreUrl::parse(url).map_err(|e| Failure::Input(anyhow!(e)))?),
        (None, Some(file)) => Some(StoreUrl::read(file).map_err(|e| Failure::Input(anyhow!(e)))?),
        (None, None) => None,
    };
    let serving = Serving(serve::Settings {
        runtime: &runtime,
        config: &text,
        others,
        listener,
        pacing,
        intake,
    });
    match (url, &args.spool) {
        (Some(url), _) => {
            let node = args.node.clone().unwrap_or_else(default_node);
            let address = format!(
                "on {} as process {}, listening on {}",
                host_name(),
                std::process::id(),
                serving
                    .0
                    .listener
                    .local_addr()
                    .map_or_else(|_| args.listen.to_string(), |a| a.to_string())
            );
            info!(
                version = env!("CARGO_PKG_VERSION"),
                store = %url,
                node,
                "slack-alertd starting"
            );
            let shown = url.to_string();
            let store = PgStore::open(postgres::Settings {
                url,
                node,
                address: Some(address),
                lease: Duration::from_millis(args.lease_ms.max(100)),
                rules: pacing.rules(),
                keep_finished: args.keep_finished,
            })
            .map_err(Failure::Host)?;
            serving.run(store, &shown)
        }
        (None, Some(dir)) => {
            info!(
                version = env!("CARGO_PKG_VERSION"),
                spool = %dir.display(),
                "slack-alertd starting"
            );
            // The history kept is bounded before the journal is replayed,
            // so it holds across restarts.
            let settings = spool::Settings {
                keep_finished: args.keep_finished,
                ..spool::Settings::new(args.spool_max_kib * 1024)
            };
            let spool = Spool::open_with(dir, settings).map_err(Failure::Host)?;
            serving.run(spool, &dir.display().to_string())
        }
        (None, None) => Err(Failure::Input(anyhow!(
            "serve needs --spool DIR, or --store URL (or --store-url-file FILE)"
        ))),
    }
}

/// What `serve` runs, but the store.
struct Serving<'a>(serve::Settings<'a>);

impl Serving<'_> {
    /// Serves on `store` (shown as `place`) until SIGTERM or SIGINT.
    fn run(self, store: impl Store + 'static, place: &str) -> Result<(), Failure> {
        let pending = store.pending_count();
        serve::run(self.0, store, serve::shutdown::signal(), |addr| {
            // One write, and no panic if whoever started us stopped
            // reading.
            use std::io::Write;
            let mut out = std::io::stdout();
            let said = format!("listening on {addr}\n{pending} alert(s) pending in {place}\n");
            let _ = out.write_all(said.as_bytes()).and_then(|()| out.flush());
        })
        .map_err(Failure::Host)
    }
}

/// A node's name when none is given: the host's name and a part no other
/// process has (a process id repeats across containers and restarts), so
/// two processes on one host never share a name by default.
fn default_node() -> String {
    let random = postgres::names::random_part();
    format!("{}-{}", host_name(), &random[..8])
}

/// This host's name (`node` when it has none).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// Raises the soft limit on open files to the hard one (as Go's runtime
/// does for every program): with 1,000 requests in flight the common soft
/// limit of 1,024 would refuse sockets. Says so when even the hard limit
/// is below what serve may need.
fn open_files(needed: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                limit = wanted;
            }
        }
        limit.rlim_cur
    };
    if (raised as u128) < needed as u128 {
        tracing::warn!(
            open_files = raised as u64,
            needed,
            "the open-file limit is below what the requests in flight and intake's connections may need; raise it (LimitNOFILE= in a systemd unit, ulimit -n) or lower --max-in-flight"
        );
    }
}

/// serve's log lines on stderr, text or JSON; `RUST_LOG`-style filtering
/// is not offered: every line is an attempt, an ending or a state change.
fn init_logs(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
    };
}

/// The Alertmanagers of `--alertmanager-url` and `--alertmanager-url-file`,
/// reached by the host's networking with their own TLS settings and token.
fn alertmanagers(
    args: &ServeArgs,
    runtime: &Runtime,
) -> Result<Option<crate::silences::Alertmanagers>, Failure> {
    let mut urls = args.alertmanager_url.clone();
    if let Some(file) = &args.alertmanager_url_file {
        let text = read(file, "Alertmanager URL list")?;
        urls.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    if urls.is_empty() {
        return Ok(None);
    }
    let token = match &args.alertmanager_token_file {
        Some(file) => {
            let token = read(file, "Alertmanager token")?.trim().to_string();
            if token.is_empty() {
                return Err(Failure::Input(anyhow!(
                    "--alertmanager-token-file {}: the file is empty",
                    file.display()
                )));
            }
            Some(token)
        }
        None => None,
    };
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let settings = alert_handler_host::net::tls::TlsSettings {
        ssl_ca: path(&args.alertmanager_ca_file),
        ssl_cert: path(&args.alertmanager_cert_file),
        ssl_key: path(&args.alertmanager_key_file),
        ..Default::default()
    };
    let tls = alert_handler_host::net::tls::client_config(&settings, "alertmanager").map_err(|e| {
        Failure::Input(anyhow!(
            "Alertmanager TLS (--alertmanager-ca-file, --alertmanager-cert-file, --alertmanager-key-file): {e}"
        ))
    })?;
    let dialer = alert_handler_host::net::dial::Dialer::new(runtime.net(), tls);
    crate::silences::Alertmanagers::new(&urls, token, dialer)
        .map(Some)
        .map_err(|e| Failure::Input(anyhow!(e)))
}
