//! Recording how an alert ended: durably, and retried until it is, with a
//! log line for each ending.

use std::time::Duration;

use tracing::{debug, error, info, warn};

use super::shared::Shared;
use crate::store::{Finished, Release, Status};

/// Records how an alert ended (and what that makes its alert's message),
/// with how its attempt let its claim go (`release`) in the same group
/// commit, and logs it.
pub(super) async fn record(
    shared: &Shared,
    channel: &str,
    done: Finished,
    release: Option<Release>,
) {
    let (id, attempts) = (done.id, done.attempts);
    match done.status {
        Status::Delivered => info!(
            alert = id,
            channel,
            attempts,
            detail = done.detail,
            "delivered"
        ),
        Status::Failed => warn!(alert = id, channel, attempts, error = done.detail, "failed"),
        Status::Repeat => info!(
            alert = id,
            channel,
            detail = done.detail,
            "repeat, not sent"
        ),
        Status::Superseded => info!(
            alert = id,
            channel,
            detail = done.detail,
            "superseded, not sent"
        ),
        Status::Silenced => info!(
            alert = id,
            channel,
            detail = done.detail,
            "silenced, not sent"
        ),
    }
    // Deliveries ending at once share fsyncs, as intake does; the
    // ending is on disk before the alert's next event is sent. One that
    // cannot be written (a full disk) is written again until it is: the
    // alert stays pending meanwhile, and is sent again after a restart if
    // serve stops first (at least once).
    let mut wait = Duration::from_millis(100);
    loop {
        let recorded = shared
            .commit
            .write(|store| {
                let ticket = store.finish(done.clone())?;
                if let Some(release) = &release {
                    store.released(release.clone())?;
                }
                Ok::<_, crate::store::StoreError>(ticket)
            })
            .map_err(|e| anyhow::anyhow!("{e}"));
        let recorded = match recorded {
            Ok((_, durable)) => durable.wait().await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match recorded {
            Ok(()) => return,
            Err(e) if shared.stopping() => {
                error!(
                    alert = id,
                    "recording the end of the alert failed; it is sent again after the next start: {e:#}"
                );
                return;
            }
            Err(e) => {
                if shared.in_outage() {
                    debug!(alert = id, "recording the end of the alert failed during the store's outage; trying again: {e:#}");
                } else {
                    error!(
                        alert = id,
                        retry_in_ms = wait.as_millis() as u64,
                        "recording the end of the alert failed; trying again: {e:#}"
                    );
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
