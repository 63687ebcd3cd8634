//! Configured instances for the deliveries in flight: one per request out,
//! taken when a delivery starts and given back when it ends, so there are
//! as many as the most requests that were out at once, not one per channel.
//! An instance idle longer than [`IDLE_FOR`] is dropped (its memory with
//! it), and one that served [`RECYCLE_AFTER`] calls is replaced.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use alert_handler_host::{Instance, Runtime};

use crate::{lock, RECYCLE_AFTER};

/// How long an instance nobody needed is kept for the next burst.
pub(super) const IDLE_FOR: Duration = Duration::from_secs(30);

/// An instance and the calls it served.
pub(super) struct Taken {
    pub(super) instance: Instance,
    served: u32,
}

/// The idle instances, and how to make more.
pub(super) struct Instances {
    runtime: Runtime,
    config: String,
    /// Most recently used last: the warmest is taken first, the coldest
    /// ages out.
    idle: Mutex<Vec<(Taken, Instant)>>,
}

impl Instances {
    /// A pool of instances of `runtime` configured with `config`, starting
    /// with `first`.
    pub(super) fn new(runtime: &Runtime, config: &str, first: Instance) -> Instances {
        Instances {
            runtime: runtime.clone(),
            config: config.to_string(),
            idle: Mutex::new(vec![(
                Taken {
                    instance: first,
                    served: 0,
                },
                Instant::now(),
            )]),
        }
    }

    /// An idle instance, or a fresh one configured now.
    pub(super) async fn take(&self) -> anyhow::Result<Taken> {
        let warm = lock(&self.idle).pop();
        let mut taken = match warm {
            Some((taken, _)) if taken.served < RECYCLE_AFTER => taken,
            _ => Taken {
                instance: self.runtime.configured_async(&self.config).await?,
                served: 0,
            },
        };
        taken.served += 1;
        Ok(taken)
    }

    /// Gives an instance back after a call that did not trap (a trapped one
    /// is dropped: it cannot be entered again).
    pub(super) fn give(&self, taken: Taken) {
        lock(&self.idle).push((taken, Instant::now()));
    }

    /// Drops the instances idle since before `now - IDLE_FOR`.
    pub(super) fn trim(&self, now: Instant) {
        let old: Vec<_> = {
            let mut idle = lock(&self.idle);
            let keep = idle.partition_point(|(_, since)| now.duration_since(*since) >= IDLE_FOR);
            idle.drain(..keep).collect()
        };
        // Dropped outside the lock: freeing an instance's memory takes a
        // moment.
        drop(old);
    }
}
