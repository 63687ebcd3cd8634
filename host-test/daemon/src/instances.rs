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
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(30);

/// An instance and the calls it served.
pub(crate) struct Taken {
    pub(crate) instance: Instance,
    served: u32,
}

/// The idle instances, and how to make more.
pub(crate) struct Instances {
    runtime: Runtime,
    config: String,
    /// Most recently used last: the warmest is taken first, the coldest
    /// ages out.
    idle: Mutex<Vec<(Taken, Instant)>>,
}

impl Instances {
    /// A pool of instances of `runtime` configured with `config`, starting
    /// with `first`.
    pub(crate) fn new(runtime: &Runtime, config: &str, first: Instance) -> Instances {
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
    pub(crate) async fn take(&self) -> anyhow::Result<Taken> {
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
    pub(crate) fn give(&self, taken: Taken) {
        lock(&self.idle).push((taken, Instant::now()));
    }

    /// Drops the instances idle since before `now - IDLE_FOR`.
    pub(crate) fn trim(&self, now: Instant) {
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

#[cfg(test)]
mod tests {
    use alert_handler_host::NetSettings;

    use super::*;

    const CONFIG: &str = "[[slack]]\nenabled = true\ndefault = true\nurl = \"http://127.0.0.1:1/services/T/B/X\"\nchannel = \"#c\"\n";

    fn idle(pool: &Instances) -> usize {
        lock(&pool.idle).len()
    }

    /// A pool with one configured instance, and a runtime to take from it.
    fn pool() -> (Instances, tokio::runtime::Runtime) {
        let runtime = Runtime::load(crate::COMPONENT_PATH, NetSettings::default()).unwrap();
        let first = runtime.configured(CONFIG).unwrap();
        let pool = Instances::new(&runtime, CONFIG, first);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        (pool, rt)
    }

    #[test]
    fn the_pool_holds_as_many_as_were_out_at_once_and_lets_idle_ones_go() {
        let (pool, rt) = pool();
        // Three out at once: the first, and two made for them.
        let taken: Vec<Taken> = (0..3).map(|_| rt.block_on(pool.take()).unwrap()).collect();
        assert_eq!(idle(&pool), 0);
        for t in taken {
            pool.give(t);
        }
        assert_eq!(idle(&pool), 3);
        // Taken again: no new instance while one is idle.
        let again = rt.block_on(pool.take()).unwrap();
        assert_eq!(idle(&pool), 2);
        pool.give(again);
        let now = Instant::now();
        pool.trim(now);
        assert_eq!(idle(&pool), 3, "none has been idle long");
        pool.trim(now + IDLE_FOR + Duration::from_secs(1));
        assert_eq!(idle(&pool), 0, "all idle past IDLE_FOR are let go");
    }

    #[test]
    fn an_instance_that_served_its_share_is_replaced() {
        let (pool, rt) = pool();
        let mut worn = rt.block_on(pool.take()).unwrap();
        worn.served = RECYCLE_AFTER;
        pool.give(worn);
        let fresh = rt.block_on(pool.take()).unwrap();
        assert_eq!(fresh.served, 1);
    }
}
