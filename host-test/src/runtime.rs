//! Embedding: one engine, the component compiled and pre-instantiated once,
//! a fresh store and instance per plugin handle.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::net::{Hooks, NetPolicy, NetSettings};

wasmtime::component::bindgen!({
    world: "alert-handler",
    path: "../wit",
});

pub use alerting::handler::types::{
    AlertEvent, ConfigSummary, Delivery, Endpoint, FieldValue, HandlerError, HttpRequest, Level,
    SlackRejection, Timestamp, TlsSettings, TransientFailure, WorkspaceSummary,
};

/// The component built from this checkout by `build.rs`.
pub const COMPONENT_PATH: &str = env!("SLACK_HANDLER_WASM");

/// Per-instance host state: WASI, WASI HTTP and the egress hooks.
pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Hooks,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// A loaded handler component, ready to instantiate cheaply.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    pre: AlertHandlerPre<State>,
    net: Arc<NetSettings>,
    /// One policy (and so one connection pool per endpoint) per distinct
    /// configuration, shared by every instance configured with it.
    policies: Arc<Mutex<HashMap<String, Arc<NetPolicy>>>>,
    path: PathBuf,
}

impl Runtime {
    /// Compiles the component at `path` and links it against WASI and WASI
    /// HTTP, whose requests go out under `net` (TLS, proxies, deny-list,
    /// connect-to map).
    pub fn load(path: impl AsRef<Path>, net: NetSettings) -> Result<Runtime> {
        let path = path.as_ref().to_path_buf();
        let engine = Engine::new(&Config::new())?;
        let component = Component::from_file(&engine, &path)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading the component {}", path.display()))?;
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        let pre = AlertHandlerPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Runtime {
            engine,
            pre,
            net: Arc::new(net),
            policies: Arc::default(),
            path,
        })
    }

    /// The component this host runs.
    pub fn load_default(net: NetSettings) -> Result<Runtime> {
        Runtime::load(COMPONENT_PATH, net)
    }

    /// The same compiled component under other network settings (cheap: the
    /// engine and pre-instantiation are shared).
    pub fn with_net(&self, net: NetSettings) -> Runtime {
        Runtime {
            net: Arc::new(net),
            policies: Arc::default(),
            ..self.clone()
        }
    }

    pub fn net(&self) -> &NetSettings {
        &self.net
    }

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
        let policy = Arc::new(NetPolicy::for_summary(summary, &self.net)?);
        policies.insert(key, policy.clone());
        Ok(policy)
    }

    /// A fresh instance with no environment and no preopened directory: it
    /// knows only what `configure` tells it, and may reach nothing until then.
    pub fn instantiate(&self) -> Result<Plugin> {
        let nothing = ConfigSummary {
            kind: String::new(),
            workspaces: vec![],
        };
        let policy = self.policy_for(&nothing).map_err(anyhow::Error::msg)?;
        self.instantiate_under(WasiCtx::builder().build(), policy)
    }

    /// A fresh instance with the given WASI context (environment, preopens),
    /// for a guest that configures itself: the host does not know its
    /// endpoints, so its requests are not limited to them (the deny-list,
    /// proxies and connect-to map still apply).
    pub fn instantiate_with(&self, wasi: WasiCtx) -> Result<Plugin> {
        let open = NetPolicy::open(&self.net).map_err(anyhow::Error::msg)?;
        self.instantiate_under(wasi, Arc::new(open))
    }

    fn instantiate_under(&self, wasi: WasiCtx, policy: Arc<NetPolicy>) -> Result<Plugin> {
        let state = State {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: Hooks { policy },
        };
        let mut store = Store::new(&self.engine, state);
        let bindings = self.pre.instantiate(&mut store)?;
        Ok(Plugin {
            store,
            bindings,
            runtime: self.clone(),
        })
    }
}

/// One instance of the handler. The outer `Result` of each call is a trap
/// or host failure; the inner one is the handler's answer.
pub struct Plugin {
    store: Store<State>,
    bindings: AlertHandler,
    runtime: Runtime,
}

impl Plugin {
    /// Configures the instance, then limits its egress to the enabled
    /// workspaces' endpoints with their TLS settings. A certificate file the
    /// host cannot use makes the configuration invalid now, not at the first
    /// alert.
    pub fn configure(&mut self, config: &str) -> Result<Result<ConfigSummary, HandlerError>> {
        let answer = self
            .bindings
            .alerting_handler_handler()
            .call_configure(&mut self.store, config)?;
        let summary = match answer {
            Ok(summary) => summary,
            Err(e) => return Ok(Err(e)),
        };
        match self.runtime.policy_for(&summary) {
            Ok(policy) => {
                self.store.data_mut().hooks.policy = policy;
                Ok(Ok(summary))
            }
            Err(message) => Ok(Err(HandlerError::InvalidConfig(message))),
        }
    }

    pub fn handle_alert(
        &mut self,
        event: &AlertEvent,
        options: &[(String, String)],
    ) -> Result<Result<Delivery, HandlerError>> {
        Ok(self.bindings.alerting_handler_handler().call_handle_alert(
            &mut self.store,
            event,
            options,
        )?)
    }

    pub fn preview_alert(
        &mut self,
        event: &AlertEvent,
        options: &[(String, String)],
    ) -> Result<Result<HttpRequest, HandlerError>> {
        Ok(self
            .bindings
            .alerting_handler_handler()
            .call_preview_alert(&mut self.store, event, options)?)
    }

    pub fn service_test_options(&mut self) -> Result<Vec<(String, String)>> {
        Ok(self
            .bindings
            .alerting_handler_handler()
            .call_service_test_options(&mut self.store)?)
    }

    pub fn service_test(
        &mut self,
        options: &[(String, String)],
    ) -> Result<Result<Delivery, HandlerError>> {
        Ok(self
            .bindings
            .alerting_handler_handler()
            .call_service_test(&mut self.store, options)?)
    }
}
