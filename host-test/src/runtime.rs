//! Embedding: one engine, the component compiled and pre-instantiated once,
//! a fresh store and instance per plugin handle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::egress::{ConnectTo, Hooks};

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
    connect_to: Arc<ConnectTo>,
    path: PathBuf,
}

impl Runtime {
    /// Compiles the component at `path` and links it against WASI and WASI
    /// HTTP. `connect_to` reroutes destinations (the demo sends slack.com to
    /// the local stand-in).
    pub fn load(path: impl AsRef<Path>, connect_to: ConnectTo) -> Result<Runtime> {
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
            connect_to: Arc::new(connect_to),
            path,
        })
    }

    /// The component this host runs.
    pub fn load_default(connect_to: ConnectTo) -> Result<Runtime> {
        Runtime::load(COMPONENT_PATH, connect_to)
    }

    /// The same compiled component with another connect-to map (cheap: the
    /// engine and pre-instantiation are shared).
    pub fn with_connect_to(&self, connect_to: ConnectTo) -> Runtime {
        Runtime {
            connect_to: Arc::new(connect_to),
            ..self.clone()
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh instance with no environment and no preopened directory:
    /// it knows only what `configure` tells it.
    pub fn instantiate(&self) -> Result<Plugin> {
        self.instantiate_with(WasiCtx::builder().build())
    }

    /// A fresh instance with the given WASI context (environment, preopens).
    pub fn instantiate_with(&self, wasi: WasiCtx) -> Result<Plugin> {
        let state = State {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: Hooks::new(self.connect_to.clone()),
        };
        let mut store = Store::new(&self.engine, state);
        let bindings = self.pre.instantiate(&mut store)?;
        Ok(Plugin { store, bindings })
    }
}

/// One instance of the handler. The outer `Result` of each call is a trap
/// or host failure; the inner one is the handler's answer.
pub struct Plugin {
    store: Store<State>,
    bindings: AlertHandler,
}

impl Plugin {
    pub fn configure(&mut self, config: &str) -> Result<Result<ConfigSummary, HandlerError>> {
        Ok(self
            .bindings
            .alerting_handler_handler()
            .call_configure(&mut self.store, config)?)
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
