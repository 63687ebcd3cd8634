//! The command line both binaries share: the flags that say which
//! component runs and how its host behaves ([`Target`]), how a command
//! fails ([`Failure`]), and `slack-alertd`'s own commands ([`serve`],
//! [`spool`]). `host-test` takes the same flags and runs the same `serve`.

pub mod serve;
pub mod spool;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use alert_handler_host::net::cidr::DenyList;
use alert_handler_host::net::proxy::ProxyConfig;
use alert_handler_host::plugins::{self, Broken, Reason};
use alert_handler_host::{ConnectTo, HandlerError, Host, Limits, NetSettings, Runtime};
use anyhow::{anyhow, bail, Context};
use clap::Args;

/// Which handler runs, and the host's limits and networking.
#[derive(Args)]
pub struct Target {
    /// The handler's configuration: `[[slack]]` sections or a whole kapacitor.conf.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "plugins",
        conflicts_with = "plugins"
    )]
    pub config: Option<PathBuf>,
    /// A plugin directory: every NAME.wasm with NAME.toml beside it; the
    /// handler's kind picks the plugin.
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// The component to run with --config (default: the one built into
    /// this binary).
    #[arg(long, value_name = "FILE.wasm")]
    pub component: Option<PathBuf>,
    /// Send requests for one origin to another, e.g.
    /// https://slack.com=http://127.0.0.1:8080 (repeatable).
    #[arg(long, value_name = "FROM=TO")]
    pub connect_to: Vec<String>,
    /// Refuse destinations whose address is in these ranges: `private`
    /// and/or CIDRs, comma-separated (Kapacitor's -blacklist-cidrs).
    #[arg(long, value_name = "CIDRS")]
    pub deny_cidrs: Option<String>,
    /// Where compiled components are kept (default: $XDG_CACHE_HOME/slack-alertd
    /// or ~/.cache/slack-alertd).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the component every time.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Stop a call that runs longer than this, network waits included.
    #[arg(long, value_name = "SECONDS", default_value_t = 90)]
    pub deadline_secs: u64,
    /// Memory cap per instance.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub memory_mib: usize,
    /// The longest wait for Slack's answer to start, and between its chunks
    /// (the component may ask for less).
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub response_timeout_ms: u64,
    /// The longest Slack's whole answer, head and body, may take once the
    /// request is sent: one that trickles in past it ends as a transport
    /// error (retried) instead of holding the call until --deadline-secs,
    /// which it must be below.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub response_deadline_secs: u64,
}

impl Target {
    /// The component to run with --config on `host`: the flag's file,
    /// else the one built into this binary ([`crate::COMPONENT`]);
    /// precompiled from the cache when it holds it.
    pub fn open_component(&self, host: Arc<Host>) -> anyhow::Result<Runtime> {
        let cache_dir = self.cache_dir();
        match &self.component {
            Some(path) => Runtime::open(host, path, cache_dir.as_deref()),
            None => Runtime::open_bytes(
                host,
                std::path::Path::new(crate::BUILT_IN),
                crate::COMPONENT,
                cache_dir.as_deref(),
            ),
        }
    }

    /// What each instance may spend.
    pub fn limits(&self) -> Limits {
        Limits {
            call_deadline: std::time::Duration::from_secs(self.deadline_secs),
            memory_bytes: self.memory_mib << 20,
        }
    }

    /// Where compiled components are kept, unless `--no-cache`.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            let home = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(home.join("slack-alertd"))
        })
    }

    /// The host's network settings: these flags, and proxies from the
    /// environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) as Kapacitor takes them.
    pub fn net_settings(&self) -> anyhow::Result<NetSettings> {
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

    /// The plugin for `kind` from the plugin directory `dir`. The others
    /// load on their own: each that did not is named on stderr with why,
    /// and returned.
    pub fn from_directory(
        &self,
        dir: &Path,
        host: &Arc<Host>,
        kind: &str,
        json: bool,
    ) -> Result<(plugins::Plugin, Vec<plugins::Plugin>, Vec<String>), Failure> {
        let mut directory =
            plugins::load(dir, host, self.cache_dir().as_deref()).map_err(Failure::Host)?;
        let broken: Vec<String> = directory.broken.iter().map(Broken::to_string).collect();
        for line in &broken {
            eprintln!("warning: {line}");
        }
        let names = directory.names();
        match directory.take(kind) {
            Ok(loaded) => Ok((loaded, directory.loaded, broken)),
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
}

/// How a command fails, and its exit code.
pub enum Failure {
    /// Bad input to the CLI (exit 2).
    Input(anyhow::Error),
    /// The handler's answer (exit 1); `true` to print it as JSON.
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

impl Failure {
    /// Says what failed on stderr (a handler's error as `json` renders it
    /// when asked for JSON, on stdout) and gives the exit code.
    pub fn report(self, json: impl Fn(&HandlerError) -> String) -> ExitCode {
        match self {
            Failure::Input(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
            Failure::Handler(e, as_json) => {
                if as_json {
                    use std::io::Write as _;
                    let _ = writeln!(std::io::stdout(), "{}", json(&e));
                } else {
                    eprintln!("{}", e.describe());
                }
                ExitCode::from(1)
            }
            Failure::Host(e) => {
                eprintln!("host error: {e:#}");
                ExitCode::from(3)
            }
            Failure::Reported => ExitCode::from(1),
        }
    }
}

/// Reads `path`, naming it as `what` if it cannot be read.
pub fn read(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} {}", path.display()))
        .map_err(Failure::Input)
}
