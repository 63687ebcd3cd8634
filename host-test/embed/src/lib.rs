//! Run alert-handler WebAssembly components in your own wasmtime host.
//!
//! An alert-handler component (the WIT world `alert-handler` in this
//! repository's `wit/`) takes an alert and its handler options and sends
//! it — to Slack, for the handler this project builds — through
//! `wasi:http`. This crate is what a host needs to load one and run it
//! safely, and nothing else (no daemon, no command line):
//!
//! ```text
//!   Runtime ──── loads a component once (precompiled: cache), instantiates
//!     │          it cheaply (InstancePre) under the operator's allowlist
//!     ▼
//!   Instance ─── one instance: configure, describe, handle-alert,
//!     │          preview-alert; a trap stops it (Trapped says why, in a line)
//!     ▼
//!   Host ─────── the engine, the linker (WASI + WASI HTTP), the limits:
//!     │          memory cap and call deadline per instance
//!     ▼
//!   net ──────── every request the component makes: allowed only to the
//!                configured endpoints (and the operator's egress list),
//!                TLS per workspace, proxies, deny-list, a keep-alive pool
//! ```
//!
//! - [`Runtime`] and [`Instance`]: loading and calling a component. Each
//!   call is async at heart ([`Instance::handle_alert_async`]: a call
//!   waiting on the network suspends its task, so one thread carries many
//!   instances' requests); the blocking form ([`Instance::handle_alert`])
//!   runs it to its end on the calling thread.
//! - [`Host`] and [`Limits`]: the engine and what an instance may spend.
//! - [`net`]: host-owned networking ([`NetSettings`]); the component never
//!   opens a socket, and the one the host opens itself (Socket Mode's
//!   WebSocket) goes by the same rules ([`net::dial::Dialer`]).
//! - [`plugins`]: a directory of plugins, each loaded on its own, with the
//!   operator's `NAME.egress.toml` ([`Allowlist`]).
//! - [`cache`]: compiled components kept on disk, keyed by their bytes.
//! - [`retry`]: when to send again (Slack's `Retry-After`, backoff).
//! - The WIT's types ([`AlertEvent`], [`HandlerError`], ...), generated
//!   by `wasmtime::component::bindgen!`.
//!
//! ```no_run
//! use alert_handler_host::{AlertEvent, Level, NetSettings, Runtime, Timestamp};
//!
//! # fn main() -> anyhow::Result<()> {
//! let runtime = Runtime::load("slack_alert_handler.wasm", NetSettings::default())?;
//! let config = r##"
//! [[slack]]
//! enabled = true
//! default = true
//! url = "https://hooks.slack.com/services/T000/B000/XXXX"
//! channel = "#alerts"
//! "##;
//! let mut plugin = runtime.configured(config)?;
//! let event = AlertEvent {
//!     id: "cpu:host=web01".into(),
//!     message: "CPU is high on web01".into(),
//!     details: String::new(),
//!     time: Timestamp { seconds: 1_764_000_000, nanoseconds: 0 },
//!     duration: 0,
//!     level: Level::Critical,
//!     previous_level: None,
//!     recoverable: true,
//!     topic: None,
//!     name: "cpu".into(),
//!     task_name: String::new(),
//!     group: String::new(),
//!     tags: vec![("host".into(), "web01".into())],
//!     fields: vec![],
//!     context: vec![],
//! };
//! match plugin.handle_alert(&event, &[("channel".into(), "#ops".into())])? {
//!     Ok(delivery) => println!("posted to {}", delivery.channel),
//!     Err(refused) => eprintln!("{}", refused.describe()),
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod bindings;
pub mod cache;
mod egress;
mod host;
pub mod net;
pub mod plugins;
pub mod retry;
mod runtime;
mod secrets;

pub use bindings::{
    Action, AlertEvent, Click, ConfigSummary, Delivery, Description, Endpoint, FieldValue,
    HandlerError, HttpRequest, InteractionOutcome, Level, Setting, SlackRejection, SocketAnswer,
    Storm, StormLine, Timestamp, TlsSettings, TransientFailure, WorkspaceSummary,
};
pub use egress::Allowlist;
pub use host::{trap_reason, Host, Limits, State, Trapped};
pub use net::{ConnectTo, NetSettings};
pub use runtime::{destinations, Instance, Runtime};
pub use secrets::ENV_PREFIX;
