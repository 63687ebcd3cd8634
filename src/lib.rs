//! Kapacitor's Slack event handler as a WebAssembly component.
//!
//! The functional core (configuration, workspace choice, options, the
//! message settings and templates, rendering an alert's message and a
//! storm's, what Slack's answer means)
//! is plain Rust, tested natively. The
//! shell, compiled only for wasm, is two modules: `component` (the WIT
//! exports) and `transport` (WASI HTTP).

#[cfg(not(target_arch = "wasm32"))]
pub mod alert_json;
#[cfg(not(target_arch = "wasm32"))]
pub mod alertmanager;
pub mod buttons;
pub mod config;
pub mod config_source;
pub mod describe;
pub mod error;
pub mod event;
pub mod handler;
pub mod interaction;
pub mod options;
pub mod payload;
pub mod redact;
pub mod render;
pub mod response;
pub mod stages;
pub mod storm;
pub mod style;
pub mod template;
pub mod timefmt;
pub mod weburl;

#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod transport;
