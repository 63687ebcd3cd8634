//! The bundled harness around the alert-handler component: the Slack
//! stand-in (`mock_slack`) and its Socket Mode (`mock_socket_mode`), the
//! HTML preview, the demo, an instance pool, and how the `host-test` CLI
//! reports results. It builds the component from this checkout
//! (`build.rs`) and runs it with the embedding in `alert-handler-host`;
//! `host-test serve` runs the daemon of `slack-alertd`, the one operators
//! install.

use std::path::Path;

use alert_handler_host::{NetSettings, Runtime};

pub mod demo;
pub mod mock_slack;
pub mod mock_socket_mode;
pub mod pool;
pub mod preview;
pub mod report;
pub mod slack_clicks;
mod stand_in;

pub use slack_alertd::COMPONENT_PATH;

/// The example webhook plugin (`examples/webhook-plugin/`) built from this
/// checkout by `build.rs`: a component of the `alert-handler` world alone.
pub const WEBHOOK_COMPONENT_PATH: &str = env!("WEBHOOK_WASM");

/// This checkout's component, loaded for a host whose requests go out
/// under `net`.
pub fn load_default(net: NetSettings) -> anyhow::Result<Runtime> {
    Runtime::load(Path::new(COMPONENT_PATH), net)
}

pub use slack_alertd::say;
