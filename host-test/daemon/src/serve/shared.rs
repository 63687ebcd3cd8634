//! What the serve threads share: the store's handle, the scheduler with the
//! alerts it knows, and how they tell each other to stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use alert_handler_host::AlertEvent;

use crate::channels::Channels;
use crate::commit::GroupCommit;
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;

/// A pending alert, decoded, with its keys, as the workers take it.
#[derive(Clone)]
pub(crate) struct Queued {
    /// Its alert's key ([`store::alert_key`]): one key's events go in order.
    pub(crate) alert: String,
    /// Its pacing key: the workspace and the channel.
    pub(crate) channel: String,
    pub(crate) event: AlertEvent,
    pub(crate) options: Vec<(String, String)>,
    /// Requests made for it so far.
    pub(crate) attempts: u32,
}

/// What the serve threads share.
pub(crate) struct Shared {
    /// Which channel each alert goes to: its pacing key.
    pub(crate) channels: Channels,
    /// The store, written and read through its group commit: concurrent
    /// writers share fsyncs; a `202` still means on disk.
    pub(crate) commit: Arc<GroupCommit>,
    pub(crate) metrics: Arc<Metrics>,
    /// Set on the shutdown signal: workers finish their attempt and stop.
    pub(crate) stopping: AtomicBool,
    /// Counts the times accepted alerts reached the disk; signalled with
    /// `arrived` each time, for the planner.
    pub(crate) arrivals: Arc<Mutex<u64>>,
    pub(crate) arrived: Arc<Condvar>,
    pub(crate) dispatch: Mutex<Dispatch>,
    /// Signalled (with `dispatch`) when an alert is queued or an attempt
    /// ends.
    pub(crate) changed: Condvar,
}

/// The scheduler and the alerts it knows.
pub(crate) struct Dispatch {
    pub(crate) scheduler: Scheduler,
    pub(crate) queued: HashMap<u64, Queued>,
    /// A channel's id (`CALERTS`, learnt from a delivery) to the pacing key
    /// of its name (`#alerts`): one Slack channel, one pace.
    pub(crate) aliases: HashMap<String, String>,
}

pub(crate) use crate::lock;

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Tells the planner and the workers to stop, and wakes them.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Under each lock, so no waiter misses it between check and wait.
        drop(lock(&self.arrivals));
        self.arrived.notify_all();
        drop(lock(&self.dispatch));
        self.changed.notify_all();
    }
}
