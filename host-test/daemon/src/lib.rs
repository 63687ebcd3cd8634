//! `slack-alertd`, the daemon that delivers alerts through an
//! alert-handler component:
//!
//! ```text
//!   intake ──── HTTP: who may call, how much is read, what is taken
//!     │         (Kapacitor's post JSON), options checked (option_check)
//!     ▼
//!   commit ──── group commit: the one way to write the store; a 202 only
//!     │         once the write is durable
//!     ▼
//!   store ───── the contract (arrivals, claims, releases); spool: the
//!     │         journal file, one node; store::postgres: a database
//!     │         several nodes share
//!     ▼
//!   serve ───── the planner (what arrived), the scheduler (what to send
//!               when: each channel paced), the deliveries (a task and an
//!               instance per request in flight, on a few threads),
//!               the aggregator; metrics
//! ```
//!
//! Beside intake, `interactions` takes clicks on alerts' buttons (from
//! intake's `POST /slack/interactions`, or its own Socket Mode
//! connection) and writes through the same commit; `instances` is the
//! pool of configured instances deliveries and clicks share.

pub mod cli;
pub mod commit;
#[cfg(test)]
mod contract;
mod instances;
pub mod intake;
pub mod interactions;
pub mod metrics;
pub mod option_check;
mod percent;
pub mod scheduler;
pub mod serve;
pub mod silences;
pub mod spool;
pub mod store;
/// Locks `m`, going on with its data if a thread panicked holding it:
/// every lock in the daemon guards data a panic leaves consistent.
pub(crate) fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Requests an instance serves before it is replaced by a fresh one: a
/// long-lived store keeps growing with the calls it served (the soak bench
/// measured about 100 bytes a delivery), a fresh one costs about a
/// millisecond.
pub(crate) const RECYCLE_AFTER: u32 = 10_000;

/// Where `host-test/build.rs` put the component built with this binary
/// (for the tests and benches, which read it from the checkout).
pub const COMPONENT_PATH: &str = env!("SLACK_HANDLER_WASM");

/// The component built with this binary (the release build of `src/`,
/// shrunk), carried inside it: run when no `--component` or `--plugins`
/// says otherwise, so a binary copied to another machine runs without the
/// checkout it was built in.
pub static COMPONENT: &[u8] = include_bytes!(env!("SLACK_HANDLER_WASM"));

/// How errors and logs name [`COMPONENT`].
pub const BUILT_IN: &str = "built-in slack_alert_handler.wasm";

/// `println!` that does not panic when standard output is gone (a pipe
/// closed early, as `| head` does): what is left to print is dropped.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
