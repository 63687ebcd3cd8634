//! The reference wasmtime host for alert-handler components: it loads the
//! component the way a real alerting host would, owns its networking, and is
//! the test bed (with a local Slack stand-in).

pub mod aggregate;
pub mod alert_json;
pub mod bindings;
pub mod cache;
pub mod commit;
pub mod demo;
pub mod destination;
pub mod egress;
pub mod handler_file;
pub mod host;
pub mod intake;
pub mod lambda;
pub mod metrics;
pub mod mock_slack;
pub mod net;
pub mod option_check;
pub mod plugins;
pub mod pool;
pub mod preview;
pub mod report;
pub mod retry;
pub mod route;
pub mod runtime;
pub mod scheduler;
pub mod secrets;
pub mod serve;
pub mod spool;
pub mod store;
pub mod tick;
pub mod topics;

/// `println!` that does not panic when standard output is gone (a pipe
/// closed early, as `| head` does): what is left to print is dropped.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
