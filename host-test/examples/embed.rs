//! The smallest wasmtime host for the alert-handler component, as docs/embedding.md
//! shows it. `cargo test` compiles it, so the snippet stays true.
//!
//! cargo run -p host-test --example embed -- COMPONENT.wasm CONFIG.toml
//! (it really posts: point the configuration's url at `host-test mock-slack`)

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

wasmtime::component::bindgen!({ world: "alert-handler", path: "../wit" });
use alerting::handler::types::{AlertEvent, Level, Timestamp};

struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: MyHooks,
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
/// Your egress policy and TLS go in `send_request`; the default sends as is.
struct MyHooks;
impl wasmtime_wasi_http::WasiHttpHooks for MyHooks {}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(wasm), Some(config)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: embed COMPONENT.wasm CONFIG.toml");
    };
    let engine = Engine::default();
    let component = Component::from_file(&engine, &wasm)?;
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    let pre = AlertHandlerPre::new(linker.instantiate_pre(&component)?)?; // once

    let state = State {
        wasi: WasiCtx::builder().build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        hooks: MyHooks,
    };
    let mut store = Store::new(&engine, state);
    let handler = pre.instantiate(&mut store)?; // per instance: cheap
    let api = handler.alerting_handler_handler();
    let summary = api
        .call_configure(&mut store, &std::fs::read_to_string(config)?)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?; // endpoints and TLS settings, no secrets
    println!("{} workspaces", summary.workspaces.len());

    let event = AlertEvent {
        id: "cpu:nil".into(),
        message: "Hey, check your CPU".into(),
        details: "".into(),
        time: Timestamp {
            seconds: 0,
            nanoseconds: 0,
        },
        duration: 0,
        level: Level::Critical,
        previous_level: Some(Level::Ok),
        recoverable: true,
        topic: None,
        name: "cpu".into(),
        task_name: "cpu_alert".into(),
        group: "nil".into(),
        tags: vec![],
        fields: vec![],
        context: vec![],
    };
    let options = vec![("channel".to_string(), "#ops".to_string())];
    match api.call_handle_alert(&mut store, &event, &options)? {
        Ok(delivery) => println!("posted to {} (ts {:?})", delivery.channel, delivery.ts),
        Err(error) => eprintln!("not delivered: {error:?}"),
    }
    Ok(())
}
