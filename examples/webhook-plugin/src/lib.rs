//! A generic JSON webhook as an alert-handler plugin: the second example of
//! the `alert-handler` world (`wit/handler.wit`), written to its `handler`
//! interface alone. Each alert is POSTed to the configured URL, as the
//! event in JSON or as a handlebars template renders it.
//!
//! The core is plain Rust, tested natively: `config` (the TOML),
//! `options` (a handler's options), `render` (the body), `request` (what is
//! sent, and its preview with the secrets redacted), `answer` (what the
//! service's answer means). The shell, compiled only for wasm, is
//! `component` (the WIT exports) and `transport` (WASI HTTP).

pub mod answer;
pub mod config;
pub mod describe;
pub mod error;
pub mod event;
pub mod options;
pub mod render;
pub mod request;
pub mod weburl;

#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod transport;
