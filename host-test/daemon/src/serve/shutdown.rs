//! When `serve` stops: SIGTERM or SIGINT.

use tracing::info;

/// SIGTERM and SIGINT, listened for from the start.
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Listens for both from now on (inside a tokio runtime).
    pub fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the next signal.
    pub async fn next(mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Resolves at the first SIGTERM or SIGINT (listened for from the first
/// poll), saying which.
pub async fn signal() {
    match Signals::new() {
        Ok(signals) => {
            let signal = signals.next().await;
            info!(signal, "signal received");
        }
        // Without signals, serve runs until killed.
        Err(_) => std::future::pending::<()>().await,
    }
}
