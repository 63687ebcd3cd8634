//! The alert-handler world on top of [`Host`]: the component compiled and
//! pre-instantiated once, a fresh store and instance per plugin handle, and
//! each instance's egress limited to the workspaces it was configured with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use wasmtime::component::Component;
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;

use crate::cache::{self, Source};
use crate::egress::Allowlist;
use crate::host::{Host, Limits, State};
use crate::net::{Destination, NetPolicy, NetSettings};

use crate::bindings::exports::alerting::handler::{handler, interactions, storms};
use crate::bindings::{
    AlertEvent, ConfigSummary, Delivery, Description, HandlerError, HttpRequest,
    InteractionOutcome, SocketAnswer, Storm, Timestamp,
};

/// A plugin's configuration summary in the network layer's terms: where
/// each workspace's requests go and with which TLS.
pub fn destinations(summary: &ConfigSummary) -> Vec<Destination> {
    summary
        .workspaces
        .iter()
        .map(|ws| Destination {
            id: ws.id.clone(),
            enabled: ws.enabled,
            endpoint: ws
                .endpoint
                .as_ref()
                .map(|e| (e.scheme.clone(), e.authority.clone())),
            tls: crate::net::tls::TlsSettings {
                ssl_ca: ws.tls.ssl_ca.clone(),
                ssl_cert: ws.tls.ssl_cert.clone(),
                ssl_key: ws.tls.ssl_key.clone(),
                insecure_skip_verify: ws.tls.insecure_skip_verify,
            },
        })
        .collect()
}

/// What a loaded component exports, found from its type at load: the
/// `handler` every alert-handler plugin exports (world `alert-handler`),
/// and `interactions` and `storms` where it exports them (world
/// `chat-alert-handler`, Slack's).
#[derive(Clone)]
struct Exports {
    handler: handler::GuestIndices,
    interactions: Option<interactions::GuestIndices>,
    storms: Option<storms::GuestIndices>,
}

/// A loaded handler component, ready to instantiate cheaply.
#[derive(Clone)]
pub struct Runtime {
    host: Arc<Host>,
    pre: wasmtime::component::InstancePre<State>,
    exports: Exports,
    /// One policy (and so one connection pool per endpoint) per distinct
    /// configuration, shared by every instance configured with it.
    policies: Arc<Mutex<HashMap<String, Arc<NetPolicy>>>>,
    path: PathBuf,
    /// Compiled now, or loaded precompiled.
    source: Source,
    /// The operator's list of what a plugin from a directory may reach;
    /// `None` trusts the component's own summary (this project's
    /// component, run with `--config`).
    allowlist: Option<Arc<Allowlist>>,
    /// The plugin's kind, when a plugin directory learnt it: an instance
    /// of a kind other than `slack` is given none of Kapacitor's Slack
    /// variables or the directories they name (see [`crate::secrets`]).
    kind: Option<String>,
}

impl Runtime {
    /// Compiles the component at `path` for a host whose requests go out
    /// under `net` (TLS, proxies, deny-list, connect-to map), with the
    /// default limits: the simplest way in.
    pub fn load(path: impl AsRef<Path>, net: NetSettings) -> Result<Runtime> {
        Runtime::open(Host::new(net, Limits::default())?, path.as_ref(), None)
    }

    /// Loads the component at `path` for `host`: precompiled from
    /// `cache_dir` when there is one and it holds this component (see
    /// [`cache`](crate::cache); [`Runtime::source`] says which), else
    /// compiled now.
    pub fn open(host: Arc<Host>, path: &Path, cache_dir: Option<&Path>) -> Result<Runtime> {
        let wasm = std::fs::read(path)
            .with_context(|| format!("loading the component {}: reading it", path.display()))?;
        Runtime::open_bytes(host, path, &wasm, cache_dir)
    }

    /// Loads the component whose bytes are `wasm` (one built into the
    /// host's binary, say) as [`Runtime::open`] does: precompiled from
    /// `cache_dir` when it holds these bytes compiled, else compiled now.
    /// `path` is how errors, logs and [`Runtime::path`] name it (its file,
    /// or a label for one built in).
    pub fn open_bytes(
        host: Arc<Host>,
        path: &Path,
        wasm: &[u8],
        cache_dir: Option<&Path>,
    ) -> Result<Runtime> {
        let (component, source) = match cache_dir {
            Some(dir) => cache::load(host.engine(), path, wasm, dir),
            None => Component::from_binary(host.engine(), wasm)
                .map(|c| (c, Source::Compiled))
                .map_err(anyhow::Error::from),
        }
        .with_context(|| format!("loading the component {}", path.display()))?;
        let pre = host.linker().instantiate_pre(&component)?;
        let exports = Exports {
            handler: handler::GuestIndices::new(&pre).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not an alert-handler plugin: it does not export alerting:handler/handler@0.4.0 (the world `alert-handler` of wit/handler.wit): {e}",
                    path.display()
                )
            })?,
            interactions: interactions::GuestIndices::new(&pre).ok(),
            storms: storms::GuestIndices::new(&pre).ok(),
        };
        Ok(Runtime {
            host,
            pre,
            exports,
            policies: Arc::default(),
            path: path.to_path_buf(),
            allowlist: None,
            kind: None,
            source,
        })
    }

    /// Whether the component takes clicks on its messages (it exports
    /// `interactions`, world `chat-alert-handler`).
    pub fn has_interactions(&self) -> bool {
        self.exports.interactions.is_some()
    }

    /// Whether the component draws storm messages (it exports `storms`).
    pub fn has_storms(&self) -> bool {
        self.exports.storms.is_some()
    }

    /// Whether the component was compiled for this runtime or loaded
    /// precompiled from the cache.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The same runtime under the operator's egress allowlist: a summary
    /// naming an endpoint off the list is refused at `configure`.
    pub fn with_allowlist(mut self, allowlist: Allowlist) -> Runtime {
        self.allowlist = Some(Arc::new(allowlist));
        self
    }

    /// The same runtime for a plugin of `kind`: only a `slack` plugin's
    /// instances read Kapacitor's `KAPACITOR_SLACK_*` variables and the
    /// files they name; any other kind's see no environment and no
    /// directory.
    pub fn of_kind(mut self, kind: &str) -> Runtime {
        self.kind = Some(kind.to_string());
        self
    }

    /// The operator's egress allowlist, for a plugin from a directory
    /// (`None`: the component's own summary is trusted). A connection the
    /// host opens for the plugin itself (Socket Mode's) is checked against it.
    pub fn allowlist(&self) -> Option<&Allowlist> {
        self.allowlist.as_deref()
    }

    /// The same compiled component under other network settings and
    /// limits: nothing is recompiled, the engine and pre-instantiation are
    /// shared.
    pub fn with_settings(&self, net: NetSettings, limits: Limits) -> Runtime {
        let host = self.host.with_settings(net, limits);
        Runtime {
            host,
            policies: Arc::default(),
            ..self.clone()
        }
    }

    /// The host it runs on.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Its network settings.
    pub fn net(&self) -> &NetSettings {
        self.host.net()
    }

    /// The component's file (or the label of one built in).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy for a configuration, built once and then shared.
    fn policy_for(&self, summary: &ConfigSummary) -> Result<Arc<NetPolicy>, String> {
        let key = format!("{summary:?}");
        let mut policies = self.policies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(policy) = policies.get(&key) {
            return Ok(policy.clone());
        }
        let policy = Arc::new(NetPolicy::for_destinations(
            &destinations(summary),
            self.host.net(),
        )?);
        policies.insert(key, policy.clone());
        Ok(policy)
    }

    /// A fresh instance with no environment and no preopened directory: it
    /// knows only what `configure` tells it, and may reach nothing until then.
    pub fn instantiate(&self) -> Result<Instance> {
        let policy = self.unconfigured()?;
        block(self.instantiate_under(WasiCtx::builder().build(), policy))
    }

    /// A fresh instance with the given WASI context (environment, preopens),
    /// for a guest that configures itself: the host does not know its
    /// endpoints, so its requests are not limited to them (the deny-list,
    /// proxies and connect-to map still apply).
    pub fn instantiate_with(&self, wasi: WasiCtx) -> Result<Instance> {
        let open = NetPolicy::open(self.host.net()).map_err(anyhow::Error::msg)?;
        block(self.instantiate_under(wasi, Arc::new(open)))
    }

    /// A fresh instance about to be configured with `config`: it may read
    /// Kapacitor's `KAPACITOR_SLACK_*` variables and, read-only, the
    /// directories of the files `config` names (see [`crate::secrets`]);
    /// like [`Runtime::instantiate`] it reaches nothing until configured.
    pub fn instantiate_for(&self, config: &str) -> Result<Instance> {
        block(self.instantiate_for_async(config))
    }

    /// [`Runtime::instantiate_for`] for async code.
    pub async fn instantiate_for_async(&self, config: &str) -> Result<Instance> {
        let policy = self.unconfigured()?;
        let wasi = match self.kind.as_deref() {
            None | Some("slack") => crate::secrets::wasi_for(config),
            Some(_) => WasiCtx::builder().build(),
        };
        self.instantiate_under(wasi, policy).await
    }

    /// A fresh instance configured with `config`; a refused configuration
    /// is an error saying why.
    pub fn configured(&self, config: &str) -> Result<Instance> {
        block(self.configured_async(config))
    }

    /// [`Runtime::configured`] for async code: what a host that keeps many
    /// instances in flight on one thread calls.
    pub async fn configured_async(&self, config: &str) -> Result<Instance> {
        let mut plugin = self.instantiate_for_async(config).await?;
        if let Err(e) = plugin.configure_async(config).await? {
            bail!("the configuration was refused: {}", e.describe());
        }
        Ok(plugin)
    }

    /// The policy of an instance nobody configured yet: it reaches nothing.
    fn unconfigured(&self) -> Result<Arc<NetPolicy>> {
        let nothing = ConfigSummary {
            kind: String::new(),
            workspaces: vec![],
        };
        self.policy_for(&nothing).map_err(anyhow::Error::msg)
    }

    async fn instantiate_under(&self, wasi: WasiCtx, policy: Arc<NetPolicy>) -> Result<Instance> {
        let mut store = self.host.store(wasi, policy);
        self.host.arm(&mut store);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| self.host.explain(e))?;
        let handler = self.exports.handler.load(&mut store, &instance)?;
        let interactions = match &self.exports.interactions {
            Some(indices) => Some(indices.load(&mut store, &instance)?),
            None => None,
        };
        let storms = match &self.exports.storms {
            Some(indices) => Some(indices.load(&mut store, &instance)?),
            None => None,
        };
        Ok(Instance {
            store,
            handler,
            interactions,
            storms,
            runtime: self.clone(),
            stopped: false,
        })
    }
}

/// An optional export of the instance, or the error saying the plugin does
/// not export it (a handler-only plugin has no `interactions` or `storms`).
fn exported<'a, T>(api: &'a Option<T>, name: &str) -> Result<&'a T> {
    api.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "this plugin does not export alerting:handler/{name}@0.4.0 (it is an `alert-handler`, not a `chat-alert-handler`)"
        )
    })
}

/// Runs an instance's async call to its end on this thread: how the sync
/// methods are made. Not for a thread that is running async tasks (call
/// the `_async` method there).
fn block<F: std::future::Future>(call: F) -> F::Output {
    wasmtime_wasi::runtime::in_tokio(call)
}

/// One instance of the handler. The outer `Result` of each call is a trap
/// or host failure (after which the instance is stopped: make a new one);
/// the inner one is the handler's answer.
///
/// Each call has a blocking form (`handle_alert`) and an async one
/// (`handle_alert_async`), as wasmtime has `call` and `call_async`: the
/// engine runs every call on a fiber, so an instance waiting on the network
/// holds a task, not a thread. An instance runs one call at a time (`&mut
/// self`); keep one per request in flight.
pub struct Instance {
    store: Store<State>,
    handler: handler::Guest,
    /// Absent for a plugin that exports only `handler`.
    interactions: Option<interactions::Guest>,
    storms: Option<storms::Guest>,
    runtime: Runtime,
    stopped: bool,
}

impl Instance {
    /// Starts a call: refused on a stopped instance, else the deadline is
    /// armed.
    fn enter(&mut self) -> Result<()> {
        if self.stopped {
            bail!("this instance was stopped by an earlier trap; make a new one");
        }
        self.runtime.host.arm(&mut self.store);
        self.store.data().hooks.left.clear();
        Ok(())
    }

    /// When the request of the last call left: handed whole to its
    /// connection, after any wait for one (`None`: it sent nothing). A host
    /// pacing requests per destination counts from here, not from when it
    /// made the call.
    pub fn request_left(&self) -> Option<std::time::Instant> {
        self.store.data().hooks.left.at()
    }

    /// Ends a call: a trap stops this instance and is said in one line.
    fn leave<T>(&mut self, outcome: wasmtime::Result<T>) -> Result<T> {
        outcome.map_err(|e| {
            self.stopped = true;
            self.runtime.host.explain(e)
        })
    }

    /// Configures the instance, then limits its egress to the enabled
    /// workspaces' endpoints with their TLS settings. A certificate file the
    /// host cannot use makes the configuration invalid now, not at the first
    /// alert.
    pub fn configure(&mut self, config: &str) -> Result<Result<ConfigSummary, HandlerError>> {
        block(self.configure_async(config))
    }

    /// [`Instance::configure`] for async code.
    pub async fn configure_async(
        &mut self,
        config: &str,
    ) -> Result<Result<ConfigSummary, HandlerError>> {
        self.enter()?;
        let answer = self.handler.call_configure(&mut self.store, config).await;
        let summary = match self.leave(answer)? {
            Ok(summary) => summary,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(allowlist) = &self.runtime.allowlist {
            if let Err(message) = allowlist.check(&summary) {
                return Ok(Err(HandlerError::InvalidConfig(message)));
            }
        }
        match self.runtime.policy_for(&summary) {
            Ok(policy) => {
                self.store.data_mut().hooks.policy = policy;
                Ok(Ok(summary))
            }
            Err(message) => Ok(Err(HandlerError::InvalidConfig(message))),
        }
    }

    /// Sends one alert (the WIT's `handle-alert`).
    pub fn handle_alert(
        &mut self,
        event: &AlertEvent,
        options: &[(String, String)],
    ) -> Result<Result<Delivery, HandlerError>> {
        block(self.handle_alert_async(event, options))
    }

    /// [`Instance::handle_alert`] for async code: while the request is out
    /// the task is suspended and its thread free.
    pub async fn handle_alert_async(
        &mut self,
        event: &AlertEvent,
        options: &[(String, String)],
    ) -> Result<Result<Delivery, HandlerError>> {
        self.enter()?;
        let answer = self
            .handler
            .call_handle_alert(&mut self.store, event, options)
            .await;
        self.leave(answer)
    }

    /// Sends a storm message, or edits it (the WIT's `handle-storm`): with
    /// `previous-channel-id` and `previous-ts` among the options, the
    /// storm message so far is edited in place.
    pub async fn handle_storm_async(
        &mut self,
        storm: &Storm,
        options: &[(String, String)],
    ) -> Result<Result<Delivery, HandlerError>> {
        self.enter()?;
        let answer = exported(&self.storms, "storms")?
            .call_handle_storm(&mut self.store, storm, options)
            .await;
        self.leave(answer)
    }

    /// Builds the request `handle_storm_async` would send, without sending
    /// it.
    pub fn preview_storm(
        &mut self,
        storm: &Storm,
        options: &[(String, String)],
    ) -> Result<Result<HttpRequest, HandlerError>> {
        block(async {
            self.enter()?;
            let answer = exported(&self.storms, "storms")?
                .call_preview_storm(&mut self.store, storm, options)
                .await;
            self.leave(answer)
        })
    }

    /// What the handler is and takes (callable before `configure`).
    pub fn describe(&mut self) -> Result<Description> {
        block(self.describe_async())
    }

    /// [`Instance::describe`] for async code.
    pub async fn describe_async(&mut self) -> Result<Description> {
        self.enter()?;
        let answer = self.handler.call_describe(&mut self.store).await;
        self.leave(answer)
    }

    /// Builds the request `handle_alert` would send, without sending it.
    pub fn preview_alert(
        &mut self,
        event: &AlertEvent,
        options: &[(String, String)],
    ) -> Result<Result<HttpRequest, HandlerError>> {
        block(self.preview_alert_async(event, options))
    }

    /// [`Instance::preview_alert`] for async code.
    pub async fn preview_alert_async(
        &mut self,
        event: &AlertEvent,
        options: &[(String, String)],
    ) -> Result<Result<HttpRequest, HandlerError>> {
        self.enter()?;
        let answer = self
            .handler
            .call_preview_alert(&mut self.store, event, options)
            .await;
        self.leave(answer)
    }

    /// Reads a click on one of an alert's buttons, as the chat service
    /// posted it (`headers`, raw `body`), at `now`: what it asks, or why it
    /// is ignored or refused (the handler verifies it).
    pub fn interaction(
        &mut self,
        headers: &[(String, String)],
        body: &[u8],
        now: Timestamp,
    ) -> Result<InteractionOutcome> {
        block(self.interaction_async(headers, body, now))
    }

    /// [`Instance::interaction`], on the caller's task.
    pub async fn interaction_async(
        &mut self,
        headers: &[(String, String)],
        body: &[u8],
        now: Timestamp,
    ) -> Result<InteractionOutcome> {
        self.enter()?;
        let answer = exported(&self.interactions, "interactions")?
            .call_interaction(&mut self.store, headers, body, now)
            .await;
        self.leave(answer)
    }

    /// Where to open the chat service's event socket, asked with an
    /// app-level token (the request goes through this host's network).
    pub async fn socket_url_async(
        &mut self,
        app_token: &str,
    ) -> Result<Result<String, HandlerError>> {
        self.enter()?;
        let answer = exported(&self.interactions, "interactions")?
            .call_socket_url(&mut self.store, app_token)
            .await;
        self.leave(answer)
    }

    /// Reads one text message of the event socket: what to send back, what
    /// it asks, whether to reconnect.
    pub async fn socket_message_async(&mut self, text: &str) -> Result<SocketAnswer> {
        self.enter()?;
        let answer = exported(&self.interactions, "interactions")?
            .call_socket_message(&mut self.store, text)
            .await;
        self.leave(answer)
    }

    /// Tells the person who clicked, alone, `text` (through the click's
    /// `response_url`).
    pub async fn notice_async(
        &mut self,
        response_url: &str,
        text: &str,
    ) -> Result<Result<(), HandlerError>> {
        self.enter()?;
        let answer = exported(&self.interactions, "interactions")?
            .call_notice(&mut self.store, response_url, text)
            .await;
        self.leave(answer)
    }

    /// The service test's options and their defaults.
    pub fn service_test_options(&mut self) -> Result<Vec<(String, String)>> {
        block(async {
            self.enter()?;
            let answer = self
                .handler
                .call_service_test_options(&mut self.store)
                .await;
            self.leave(answer)
        })
    }

    /// Runs the service test (Kapacitor's `service-tests slack`).
    pub fn service_test(
        &mut self,
        options: &[(String, String)],
    ) -> Result<Result<Delivery, HandlerError>> {
        block(async {
            self.enter()?;
            let answer = self
                .handler
                .call_service_test(&mut self.store, options)
                .await;
            self.leave(answer)
        })
    }
}
