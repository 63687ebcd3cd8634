//! `host-test`: run the Slack alert-handler component the way an alerting
//! host would. Exit codes: 0 delivered (or deliberately not sent), 1 the
//! handler's error, 2 bad input to the CLI, 3 the host or component failed.

use host_test::say;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};

use host_test::host::{Host, Limits};
use host_test::intake::{self, Token};
use host_test::mock_slack::MockSlack;
use host_test::net::cidr::DenyList;
use host_test::net::proxy::ProxyConfig;
use host_test::net::{ConnectTo, NetSettings};
use host_test::plugins::{self, Broken, Reason};
use host_test::retry::{self, Backoff};
use host_test::route::{self, Decision};
use host_test::runtime::{
    AlertEvent, ConfigSummary, Delivery, HandlerError, Plugin, Runtime, COMPONENT_PATH,
};
use host_test::serve::{self, Pacing};
use host_test::spool::{self, Spool};
use host_test::topics::{Handlers, Route};
use host_test::{alert_json, demo, handler_file, report, tick};

#[derive(Parser)]
#[command(
    name = "host-test",
    version,
    about = "Runs the Slack alert-handler WebAssembly component in wasmtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send one alert, as an explicit `.slack()` handler or a topic handler.
    Send(SendArgs),
    /// Run the service test (`kapacitor service-tests slack`).
    Test(TestArgs),
    /// Send an alert from an alert node with no `.slack()`: it goes to the
    /// default workspace only if that is `global` (and, with
    /// `state-changes-only`, only when the level changed).
    Route(RouteArgs),
    /// A long-running host: takes alerts over HTTP (Kapacitor's post-handler
    /// JSON; query parameters are options), spools them, delivers them.
    Serve(ServeArgs),
    /// Show a spool: the alerts pending, how the others ended, the failed
    /// ones that can be resent (`spool resend`).
    Spool(SpoolArgs),
    /// Publish one alert to a topic of a handler directory, as Kapacitor's
    /// alert service would: each handler whose `match` holds takes it (a
    /// `slack` handler sends it now; an `aggregate` needs `serve`, which
    /// keeps its window).
    Publish(PublishArgs),
    /// Draw the message the component would send for an alert, as Slack
    /// draws it, in a self-contained HTML page (nothing is sent).
    Preview(PreviewArgs),
    /// Say what a handler component is and what it takes (its `describe`):
    /// kind, version, configuration keys and options, each with a line.
    Describe {
        /// The component (default: the one built from this checkout).
        #[arg(long, value_name = "FILE.wasm")]
        component: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the documentation's examples against a local Slack stand-in.
    Demo {
        /// The examples directory.
        #[arg(long, value_name = "DIR")]
        examples: Option<PathBuf>,
        /// Also write, for each example, the page `preview` draws of the
        /// message, into this directory.
        #[arg(long, value_name = "DIR")]
        html: Option<PathBuf>,
    },
    /// Run the Slack stand-in alone, printing each request it receives.
    MockSlack {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

#[derive(Args)]
struct Target {
    /// The handler's configuration: `[[slack]]` sections or a whole kapacitor.conf.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "plugins",
        conflicts_with = "plugins"
    )]
    config: Option<PathBuf>,
    /// A plugin directory: every NAME.wasm with NAME.toml beside it; the
    /// handler's kind picks the plugin.
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// The component to run with --config (default: the one built from this checkout).
    #[arg(long, value_name = "FILE.wasm")]
    component: Option<PathBuf>,
    /// Send requests for one origin to another, e.g.
    /// https://slack.com=http://127.0.0.1:8080 (repeatable).
    #[arg(long, value_name = "FROM=TO")]
    connect_to: Vec<String>,
    /// Refuse destinations whose address is in these ranges: `private`
    /// and/or CIDRs, comma-separated (Kapacitor's -blacklist-cidrs).
    #[arg(long, value_name = "CIDRS")]
    deny_cidrs: Option<String>,
    /// Where compiled components are kept (default: $XDG_CACHE_HOME/host-test
    /// or ~/.cache/host-test).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the component every time.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Stop a call that runs longer than this, network waits included.
    #[arg(long, value_name = "SECONDS", default_value_t = 90)]
    deadline_secs: u64,
    /// Memory cap per instance.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    memory_mib: usize,
    /// The longest wait for Slack's answer to start, and between its chunks
    /// (the component may ask for less).
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    response_timeout_ms: u64,
    /// The longest Slack's whole answer, head and body, may take once the
    /// request is sent: one that trickles in past it ends as a transport
    /// error (retried) instead of holding the call until --deadline-secs,
    /// which it must be below.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    response_deadline_secs: u64,
}

impl Target {
    /// The component to run with --config: the flag's, else this checkout's.
    fn component(&self) -> PathBuf {
        self.component
            .clone()
            .unwrap_or_else(|| PathBuf::from(COMPONENT_PATH))
    }

    fn limits(&self) -> Limits {
        Limits {
            call_deadline: std::time::Duration::from_secs(self.deadline_secs),
            memory_bytes: self.memory_mib << 20,
        }
    }

    fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            let home = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(home.join("host-test"))
        })
    }

    /// The host's network settings: these flags, and proxies from the
    /// environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) as Kapacitor takes them.
    fn net_settings(&self) -> anyhow::Result<NetSettings> {
        let mut connect_to = ConnectTo::default();
        for pair in &self.connect_to {
            connect_to.add_pair(pair)?;
        }
        let deny = match &self.deny_cidrs {
            Some(spec) => DenyList::parse(spec).map_err(|e| anyhow!("--deny-cidrs: {e}"))?,
            None => DenyList::default(),
        };
        let proxy =
            ProxyConfig::from_env().map_err(|e| anyhow!("proxy from the environment: {e}"))?;
        // A deadline at or past the call's would never fire first: the
        // call would be stopped instead, and the alert fail for good.
        if self.response_deadline_secs == 0 || self.response_deadline_secs >= self.deadline_secs {
            bail!(
                "--response-deadline-secs {} must be at least 1 and below --deadline-secs {}: an answer still arriving at the call's deadline fails the alert for good instead of being retried",
                self.response_deadline_secs,
                self.deadline_secs
            );
        }
        Ok(NetSettings {
            connect_to,
            deny,
            proxy,
            response_timeout: std::time::Duration::from_millis(self.response_timeout_ms),
            response_deadline: std::time::Duration::from_secs(self.response_deadline_secs),
            ..NetSettings::default()
        })
    }
}

#[derive(Args)]
struct SendArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    what: AlertArgs,
    /// Print the request that would be sent (secrets redacted) instead of sending.
    #[arg(long)]
    dry_run: bool,
    /// Retry transient failures (honouring Slack's Retry-After) for up to
    /// this long; 0 sends once.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    retry_for: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PreviewArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    what: AlertArgs,
    /// Where to write the page.
    #[arg(long, value_name = "OUT.html")]
    html: PathBuf,
}

/// An alert and where its handler options come from.
#[derive(Args)]
struct AlertArgs {
    /// The alert, in Kapacitor's `post`-handler JSON.
    #[arg(long, value_name = "FILE")]
    alert: PathBuf,
    /// A Kapacitor topic-handler file (YAML or JSON) whose options to use.
    #[arg(long, value_name = "FILE.yaml", conflicts_with = "tick")]
    handler: Option<PathBuf>,
    /// A TICKscript whose `.slack()` chain gives the options.
    #[arg(long, value_name = "FILE.tick")]
    tick: Option<PathBuf>,
    /// A handler option (repeatable); overrides the handler file's.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// The alert's earlier message, as a delivery prints it: with
    /// `on-recovery` `update` it is edited, with `thread` replied to
    /// (the options previous-channel-id and previous-ts).
    #[arg(long, value_name = "CHANNEL_ID:TS", value_parser = previous_message)]
    previous_message: Option<(String, String)>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    target: Target,
    /// Where to listen, e.g. 127.0.0.1:9100 (port 0 picks one; the first
    /// line printed says which).
    #[arg(long, value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// The spool directory.
    #[arg(long, value_name = "DIR")]
    spool: PathBuf,
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
    /// Configured instances delivering at once, to different channels (one
    /// channel has at most one request in flight).
    #[arg(long, value_name = "N", default_value_t = 8)]
    workers: usize,
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
    /// How log lines on stderr look: `text`, or `json` (one object a line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// A directory of Kapacitor topic-handler files (slack, aggregate,
    /// publish): alerts posted with `?topic=NAME` go to that topic's handlers.
    #[arg(long, value_name = "DIR")]
    handlers: Option<PathBuf>,
    /// Divides the handlers' intervals, for demos and tests: 3600 turns an
    /// aggregate's 24 h into 24 s.
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    time_scale: f64,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args)]
struct PublishArgs {
    #[command(flatten)]
    target: Target,
    /// The directory of topic-handler files.
    #[arg(long, value_name = "DIR")]
    handlers: PathBuf,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// The alert, in Kapacitor's `post`-handler JSON.
    #[arg(long, value_name = "FILE")]
    alert: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct SpoolArgs {
    #[command(subcommand)]
    action: Option<SpoolAction>,
    /// The spool directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum SpoolAction {
    /// Send failed alerts again, each as a new alert with the same JSON and
    /// options, for a `serve` started on the spool to deliver. With `serve`
    /// running on it, do the same over HTTP: `POST /spool/resend` with
    /// `{"failed": true}` or `{"ids": [N, ...]}`.
    Resend {
        /// The spool directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Every failed alert the spool keeps.
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        failed: bool,
        /// A failed alert's id (repeatable).
        #[arg(long, value_name = "N")]
        id: Vec<u64>,
    },
}

#[derive(Args)]
struct TestArgs {
    #[command(flatten)]
    target: Target,
    /// A service-test option (workspace, channel, message, level, username, icon-emoji).
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
}

#[derive(Args)]
struct RouteArgs {
    #[command(flatten)]
    target: Target,
    /// The alert, in Kapacitor's `post`-handler JSON.
    #[arg(long, value_name = "FILE")]
    alert: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// How a command fails, and its exit code.
enum Failure {
    /// Bad input to the CLI (exit 2).
    Input(anyhow::Error),
    /// The handler's answer (exit 1).
    Handler(HandlerError, bool),
    /// The host or component failed (exit 3).
    Host(anyhow::Error),
    /// Not delivered, and already reported on stdout (exit 1).
    Reported,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Input(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Send(args) => send(args),
        Command::Test(args) => service_test(args),
        Command::Route(args) => route_alert(args),
        Command::Describe { component, json } => describe(component, json),
        Command::Publish(args) => publish(args),
        Command::Preview(args) => preview(args),
        Command::Demo { examples, html } => demo::run(
            &examples.unwrap_or_else(demo::examples_dir),
            html.as_deref(),
        )
        .map_err(Failure::Host),
        Command::MockSlack { port } => mock_slack(port).map_err(Failure::Host),
        Command::Serve(args) => serve(args),
        Command::Spool(args) => match (args.action, args.dir) {
            (Some(SpoolAction::Resend { dir, failed, id }), _) => resend(&dir, failed, &id),
            (None, Some(dir)) => show_spool(&dir, args.json).map_err(Failure::Host),
            (None, None) => Err(Failure::Input(anyhow!(
                "spool needs --dir DIR (or: spool resend --dir DIR --failed)"
            ))),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Handler(e, json)) => {
            if json {
                say!("{}", report::error_json(&e));
            } else {
                eprintln!("{}", e.describe());
            }
            ExitCode::from(1)
        }
        Err(Failure::Host(e)) => {
            eprintln!("host error: {e:#}");
            ExitCode::from(3)
        }
        Err(Failure::Reported) => ExitCode::from(1),
    }
}

fn read(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} {}", path.display()))
        .map_err(Failure::Input)
}

fn parse_pairs(pairs: &[String]) -> Result<Vec<(String, String)>, Failure> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(Failure::Input(anyhow!(
                "--option takes KEY=VALUE, got `{p}`"
            ))),
        })
        .collect()
}

/// `--previous-message`: a channel id and a message `ts`, e.g.
/// `C0123:1700000000.000001`.
fn previous_message(value: &str) -> Result<(String, String), String> {
    let well_formed = |channel: &str, ts: &str| {
        !channel.is_empty()
            && channel.chars().all(|c| c.is_ascii_alphanumeric())
            && ts.split_once('.').is_some_and(|(s, f)| {
                !s.is_empty()
                    && !f.is_empty()
                    && (s.to_owned() + f).chars().all(|c| c.is_ascii_digit())
            })
    };
    match value.split_once(':') {
        Some((channel, ts)) if well_formed(channel, ts) => Ok((channel.to_string(), ts.to_string())),
        _ => Err(format!(
            "expected CHANNEL_ID:TS as a delivery prints them, e.g. C0123:1700000000.000001, got `{value}`"
        )),
    }
}

/// Loads, instantiates and configures the handler for `kind`.
fn open(target: &Target, kind: &str, json: bool) -> Result<(Plugin, ConfigSummary), Failure> {
    let host = Host::new(target.net_settings()?, target.limits()).map_err(Failure::Host)?;
    let cache_dir = target.cache_dir();
    if let Some(dir) = &target.plugins {
        let loaded = from_directory(dir, &host, target, kind, json)?;
        return Ok((loaded.plugin, loaded.summary));
    }
    let config_path = target
        .config
        .as_ref()
        .ok_or_else(|| anyhow!("--config or --plugins is required"))?;
    let text = read(config_path, "configuration")?;
    let component = target.component();
    let runtime = Runtime::open(host, &component, cache_dir.as_deref()).map_err(Failure::Host)?;
    let mut plugin = runtime.instantiate_for(&text).map_err(Failure::Host)?;
    let summary = plugin
        .configure(&text)
        .map_err(Failure::Host)?
        .map_err(|e| Failure::Handler(e, json))?;
    if summary.kind != kind {
        return Err(Failure::Input(anyhow!(
            "this is a `{kind}` handler, but {} is a `{}` plugin",
            component.display(),
            summary.kind
        )));
    }
    Ok((plugin, summary))
}

fn load_alert(path: &Path) -> Result<AlertEvent, Failure> {
    alert_json::decode(&read(path, "alert")?)
        .with_context(|| path.display().to_string())
        .map_err(Failure::Input)
}

fn print_delivery(d: &Delivery, json: bool) {
    if json {
        say!("{}", report::delivery_json(d));
    } else {
        say!("{}", report::delivery_text(d));
    }
}

/// An alert ready to hand to a plugin: the handler's kind, the event, the
/// options.
type Prepared = (String, AlertEvent, Vec<(String, String)>);

/// The alert, its handler's kind and options; `None` (after saying so)
/// when the handler's `match` does not take it.
fn prepare(what: &AlertArgs, json: bool) -> Result<Option<Prepared>, Failure> {
    let mut event = load_alert(&what.alert)?;
    let mut options = Vec::new();
    let mut kind = "slack".to_string();
    if let Some(path) = &what.handler {
        let handler = handler_file::parse(&read(path, "handler file")?)
            .with_context(|| path.display().to_string())?;
        kind = handler.kind;
        match (&event.topic, handler.topic) {
            (Some(alert), Some(subscribed)) if *alert != subscribed => {
                return Err(Failure::Input(anyhow!(
                    "the alert was published to topic `{alert}`, but handler `{}` subscribes to `{subscribed}`",
                    handler.id
                )));
            }
            (None, subscribed) => event.topic = subscribed,
            _ => {}
        }
        // Kapacitor hands an event to a topic handler only when its
        // `match` holds.
        if let Some(lambda) = &handler.matches {
            let holds = lambda.matches(&event);
            if holds != Ok(true) {
                let why = match holds {
                    Ok(_) => format!("match `{}` is false for this alert", lambda.text()),
                    Err(why) => format!("match `{}` cannot be evaluated: {why}", lambda.text()),
                };
                if json {
                    say!(
                        "{}",
                        serde_json::json!({"delivered": false, "suppressed": why})
                    );
                } else {
                    say!("suppressed: handler `{}`: {why}", handler.id);
                }
                return Ok(None);
            }
        }
        options = handler.options;
    }
    if let Some(path) = &what.tick {
        options = tick::slack_options(&read(path, "TICKscript")?)
            .with_context(|| path.display().to_string())?
            .ok_or_else(|| anyhow!("{} has no .slack() handler", path.display()))?;
    }
    options.extend(parse_pairs(&what.options)?);
    if let Some((channel_id, ts)) = &what.previous_message {
        options = spool::with_previous(&options, channel_id, ts);
    }
    Ok(Some((kind, event, options)))
}

/// `preview`: the message the component would send, drawn as Slack draws
/// it, in an HTML page.
fn preview(args: PreviewArgs) -> Result<(), Failure> {
    let Some((kind, event, options)) = prepare(&args.what, false)? else {
        return Ok(());
    };
    let (mut plugin, _) = open(&args.target, &kind, false)?;
    let request = plugin
        .preview_alert(&event, &options)
        .map_err(Failure::Host)?
        .map_err(|e| Failure::Handler(e, false))?;
    let title = format!("{} — {}", event.id, args.what.alert.display());
    std::fs::write(&args.html, host_test::preview::page(&title, &request.body))
        .with_context(|| format!("writing {}", args.html.display()))
        .map_err(Failure::Host)?;
    say!("wrote {}", args.html.display());
    Ok(())
}

fn send(args: SendArgs) -> Result<(), Failure> {
    let Some((kind, event, options)) = prepare(&args.what, args.json)? else {
        return Ok(());
    };
    let (mut plugin, _) = open(&args.target, &kind, args.json)?;
    if args.dry_run {
        let request = plugin
            .preview_alert(&event, &options)
            .map_err(Failure::Host)?
            .map_err(|e| Failure::Handler(e, args.json))?;
        if args.json {
            say!("{}", report::request_json(&request));
        } else {
            say!("{}", report::request_text(&request));
        }
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(args.retry_for);
    let sent = retry::send_with_retries(
        &mut plugin,
        &event,
        &options,
        &Backoff::default(),
        deadline,
        |e, n, wait| {
            eprintln!("attempt {n}: {}; retrying in {wait:.1?}", e.describe());
        },
    )
    .map_err(Failure::Host)?;
    match sent.outcome {
        Ok(delivery) => {
            print_delivery(&delivery, args.json);
            Ok(())
        }
        Err(e) => {
            if let (Some(why), false) = (sent.stopped, args.json) {
                eprintln!("gave up after {} attempt(s): {why}", sent.attempts);
            }
            Err(Failure::Handler(e, args.json))
        }
    }
}

fn service_test(args: TestArgs) -> Result<(), Failure> {
    let options = parse_pairs(&args.options)?;
    let (mut plugin, _) = open(&args.target, "slack", true)?;
    // Kapacitor's service-test answer: {"success": bool, "message": "..."}.
    match plugin.service_test(&options).map_err(Failure::Host)? {
        Ok(_) => {
            say!("{}", serde_json::json!({"success": true, "message": ""}));
            Ok(())
        }
        Err(e) => {
            say!(
                "{}",
                serde_json::json!({"success": false, "message": e.describe()})
            );
            Err(Failure::Reported)
        }
    }
}

fn route_alert(args: RouteArgs) -> Result<(), Failure> {
    let event = load_alert(&args.alert)?;
    let (mut plugin, summary) = open(&args.target, "slack", args.json)?;
    let decision = route::decide(&summary, &event);
    if decision != Decision::Send {
        if args.json {
            say!(
                "{}",
                serde_json::json!({"delivered": false, "suppressed": decision.reason()})
            );
        } else {
            say!("suppressed: {}", decision.reason());
        }
        return Ok(());
    }
    let delivery = plugin
        .handle_alert(&event, &[])
        .map_err(Failure::Host)?
        .map_err(|e| Failure::Handler(e, args.json))?;
    print_delivery(&delivery, args.json);
    Ok(())
}

/// The plugin for `kind` from a plugin directory. The others load on their
/// own: each that did not is named on stderr with why, and returned.
fn from_directory_reporting(
    dir: &Path,
    host: &Arc<Host>,
    target: &Target,
    kind: &str,
    json: bool,
) -> Result<(plugins::Loaded, Vec<String>), Failure> {
    let mut directory =
        plugins::load(dir, host, target.cache_dir().as_deref()).map_err(Failure::Host)?;
    let broken: Vec<String> = directory.broken.iter().map(Broken::to_string).collect();
    for line in &broken {
        eprintln!("warning: {line}");
    }
    let names = directory.names();
    match directory.take(kind) {
        Ok(loaded) => Ok((loaded, broken)),
        Err(Some(Broken {
            reason: Reason::Config(error),
            ..
        })) => Err(Failure::Handler(error.clone(), json)),
        Err(Some(
            broken @ Broken {
                reason: Reason::SameKind { .. },
                ..
            },
        )) => Err(Failure::Input(anyhow!("{broken}"))),
        Err(Some(broken)) => Err(Failure::Host(anyhow!("{broken}"))),
        Err(None) => Err(Failure::Input(anyhow!(
            "no plugin in {} handles kind `{kind}`; loaded: {}",
            dir.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))),
    }
}

fn from_directory(
    dir: &Path,
    host: &Arc<Host>,
    target: &Target,
    kind: &str,
    json: bool,
) -> Result<plugins::Loaded, Failure> {
    Ok(from_directory_reporting(dir, host, target, kind, json)?.0)
}

fn serve(args: ServeArgs) -> Result<(), Failure> {
    let host =
        Host::new(args.target.net_settings()?, args.target.limits()).map_err(Failure::Host)?;
    let (runtime, text, broken) = match (&args.target.plugins, &args.target.config) {
        (Some(dir), _) => {
            let (loaded, broken) =
                from_directory_reporting(dir, &host, &args.target, "slack", false)?;
            (loaded.runtime, loaded.config, broken)
        }
        (None, Some(path)) => {
            let text = read(path, "configuration")?;
            let component = args.target.component();
            let runtime = Runtime::open(host, &component, args.target.cache_dir().as_deref())
                .map_err(Failure::Host)?;
            (runtime, text, Vec::new())
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
        Some(dir) => Some(Arc::new(
            Handlers::load(dir, args.time_scale).map_err(Failure::Input)?,
        )),
        None => None,
    };
    let access = serve::Access {
        topics,
        broken,
        token,
        limits: intake::Limits {
            max_alert_bytes: args.max_alert_kib.max(1) * 1024,
            read_timeout: Duration::from_secs(args.read_timeout_secs.max(1)),
            head_timeout: Duration::from_secs(args.head_timeout_secs.max(1)),
            max_connections: args.max_connections.max(1),
            max_waiting: args.max_waiting_connections.max(1),
        },
    };
    init_logs(args.log_format);
    // The history kept is bounded before the journal is replayed, so it
    // holds across restarts.
    let settings = spool::Settings {
        keep_finished: args.keep_finished,
        ..spool::Settings::new(args.spool_max_kib * 1024)
    };
    let spool = Spool::open_with(&args.spool, settings).map_err(Failure::Host)?;
    let pending = spool.pending().len();
    let pacing = Pacing {
        channel_interval: Duration::from_millis(args.channel_interval_ms),
        channel_burst: args.channel_burst,
        backoff: Backoff {
            base: Duration::from_millis(args.backoff_base_ms),
            ..Backoff::default()
        },
        workers: args.workers.max(1),
    };
    serve::run(
        &runtime,
        &text,
        args.listen,
        spool,
        pacing,
        access,
        |addr| {
            // One write, and no panic if whoever started us stopped reading.
            use std::io::Write;
            let mut out = std::io::stdout();
            let said = format!(
                "listening on {addr}\n{pending} alert(s) pending in {}\n",
                args.spool.display()
            );
            let _ = out.write_all(said.as_bytes()).and_then(|()| out.flush());
        },
    )
    .map_err(Failure::Host)
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

fn show_spool(dir: &Path, json: bool) -> anyhow::Result<()> {
    if !dir.join("journal.jsonl").exists() {
        bail!("{} holds no spool", dir.display());
    }
    let spool = Spool::open_read_only(dir)?;
    let pending = spool.pending();
    if json {
        say!("{}", spool.status_json());
        return Ok(());
    }
    say!("{} pending", pending.len());
    for p in &pending {
        let id = serde_json::from_str::<serde_json::Value>(&p.alert)
            .ok()
            .and_then(|v| v["id"].as_str().map(String::from));
        say!("  #{} pending  alert {}", p.id, id.unwrap_or_default());
    }
    for f in spool.finished() {
        let plural = if f.attempts == 1 { "" } else { "s" };
        say!(
            "  #{} {:?} after {} attempt{plural}  {}",
            f.id,
            f.status,
            f.attempts,
            f.detail
        );
    }
    let messages = spool.messages();
    say!("{} alert message(s) kept for later events", messages.len());
    for m in &messages {
        let workspace = if m.workspace.is_empty() {
            "(default)"
        } else {
            &m.workspace
        };
        say!(
            "  alert {}  workspace \"{workspace}\"  --previous-message {}:{}",
            m.key,
            m.channel_id,
            m.ts
        );
    }
    Ok(())
}

/// `publish`: one alert through a topic's handlers, once.
fn publish(args: PublishArgs) -> Result<(), Failure> {
    let handlers = Handlers::load(&args.handlers, 1.0).map_err(Failure::Input)?;
    let mut event = load_alert(&args.alert)?;
    event.topic = Some(args.topic.clone());
    let (routes, notes) = handlers.route(&args.topic, &event);
    for note in &notes {
        eprintln!("note: {note}");
    }
    if routes.is_empty() {
        say!("no handler of topic `{}` took it", args.topic);
        return Ok(());
    }
    let mut plugin = None;
    let mut failed = None;
    for route in routes {
        match route {
            Route::Collect { handler } => say!(
                "aggregate `{handler}` collects it: `serve --handlers` keeps its window and publishes when the interval ends"
            ),
            Route::Deliver { handler, options } => {
                if plugin.is_none() {
                    plugin = Some(open(&args.target, "slack", args.json)?.0);
                }
                let plugin = plugin.as_mut().expect("opened above");
                match plugin.handle_alert(&event, &options).map_err(Failure::Host)? {
                    Ok(delivery) => {
                        say!("handler `{handler}`:");
                        print_delivery(&delivery, args.json);
                    }
                    Err(e) => {
                        eprintln!("handler `{handler}`: {}", e.describe());
                        failed = Some(e);
                    }
                }
            }
        }
    }
    match failed {
        Some(e) => Err(Failure::Handler(e, args.json)),
        None => Ok(()),
    }
}

/// `describe`: what a component says it is, before any configuration.
fn describe(component: Option<PathBuf>, json: bool) -> Result<(), Failure> {
    let component = component.unwrap_or_else(|| PathBuf::from(COMPONENT_PATH));
    let host = Host::new(NetSettings::default(), Limits::default()).map_err(Failure::Host)?;
    let d = Runtime::open(host, &component, None)
        .and_then(|r| r.instantiate())
        .and_then(|mut p| p.describe())
        .map_err(Failure::Host)?;
    let list = |settings: &[host_test::runtime::Setting]| {
        settings
            .iter()
            .map(|s| (s.name.clone(), s.doc.clone()))
            .collect::<Vec<_>>()
    };
    if json {
        let object = |settings: &[host_test::runtime::Setting]| {
            settings
                .iter()
                .map(
                    |s| serde_json::json!({"name": s.name, "doc": s.doc, "host-only": s.host_only}),
                )
                .collect::<Vec<_>>()
        };
        say!(
            "{}",
            serde_json::json!({
                "kind": d.kind,
                "version": d.version,
                "config-keys": object(&d.config_keys),
                "options": object(&d.options),
            })
        );
        return Ok(());
    }
    say!("kind {} version {}", d.kind, d.version);
    for (title, settings) in [
        ("configuration keys", &d.config_keys),
        ("options", &d.options),
    ] {
        say!("{title}:");
        for (name, doc) in list(settings) {
            say!("  {name:<22} {doc}");
        }
    }
    Ok(())
}

/// `spool resend`: failed alerts accepted again, for the next serve.
fn resend(dir: &Path, all_failed: bool, ids: &[u64]) -> Result<(), Failure> {
    if !dir.join("journal.jsonl").exists() {
        return Err(Failure::Input(anyhow!("{} holds no spool", dir.display())));
    }
    let mut spool = Spool::open(dir, u64::MAX).map_err(|e| {
        Failure::Input(e.context("to resend while serve runs, POST /spool/resend to it"))
    })?;
    let ids: Vec<u64> = if all_failed {
        spool.failed_alerts().map(|f| f.id).collect()
    } else {
        ids.to_vec()
    };
    let resent = spool
        .resend(&ids)
        .map_err(|e| Failure::Input(anyhow!("{e}")))?;
    for (old, new) in &resent {
        say!("#{old} resent as #{new}");
    }
    say!(
        "{} alert(s) resent; serve delivers them when it starts on {}",
        resent.len(),
        dir.display()
    );
    Ok(())
}

fn mock_slack(port: u16) -> anyhow::Result<()> {
    let slack = MockSlack::start_on(port)?;
    slack.observe(|r, reply| {
        let auth = if r.header("authorization").is_some() {
            "Bearer [redacted]"
        } else {
            "(none)"
        };
        say!(
            "{} {}{} Authorization: {auth} -> {} {}\n{}",
            r.method,
            r.host,
            r.path,
            reply.status,
            String::from_utf8_lossy(&reply.body),
            serde_json::to_string_pretty(&r.json()).unwrap_or_default()
        );
    });
    say!(
        "Slack stand-in listening on {} (Ctrl-C stops it)",
        slack.url()
    );
    say!(
        "chat.postMessage: POST {}/api/chat.postMessage; webhooks: POST {}/services/...",
        slack.url(),
        slack.url()
    );
    slack.wait();
    bail!("the Slack stand-in stopped")
}
