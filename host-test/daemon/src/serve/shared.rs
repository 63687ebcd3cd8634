//! What serve's tasks share: the store's handle, the scheduler with the
//! alerts it knows, and how they tell each other to stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use alert_handler_host::AlertEvent;
use tokio::sync::Notify;

use crate::commit::GroupCommit;
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::serve::channels::Channels;

/// A pending alert, decoded, with its keys, as a delivery takes it.
#[derive(Clone)]
pub(crate) struct Queued {
    /// Its alert's key ([`store::alert_key`]): one key's events go in order.
    pub(crate) alert: String,
    /// Its pacing key: the workspace and the channel.
    pub(crate) channel: String,
    /// Its pacing key as it was planned, before an alias: a shared store
    /// gives the alert to the owner of this key's slot.
    pub(crate) home: String,
    /// Its place in the order the store accepted alerts in: a key's
    /// events go in this order ([`crate::store::Pending::seq`]).
    pub(crate) seq: u64,
    pub(crate) event: AlertEvent,
    /// The event as it was stored (Kapacitor's alert JSON): kept with the
    /// alert's message, to draw it again after a click.
    pub(crate) raw: String,
    pub(crate) options: Vec<(String, String)>,
    /// It only redraws a clicked message ([`crate::store::is_refresh`]).
    pub(crate) refresh: bool,
    /// Requests made for it so far.
    pub(crate) attempts: u32,
    /// A digest of what it shows, when its repeats are not sent again
    /// (Alertmanager's alerts; see `repeat.rs`).
    pub(crate) tracked: Option<String>,
    /// The kind of the plugin that sends it when it is not the `slack`
    /// plugin (a topic handler file of another kind).
    pub(crate) plugin: Option<String>,
}

/// What serve's tasks share.
pub(crate) struct Shared {
    /// Which channel each alert goes to: its pacing key.
    pub(crate) channels: Channels,
    /// The store, written and read through its group commit: concurrent
    /// writers share fsyncs; a `202` still means on disk.
    pub(crate) commit: Arc<GroupCommit>,
    pub(crate) metrics: Arc<Metrics>,
    /// Set on the shutdown signal: attempts in flight finish, nothing new
    /// starts.
    pub(crate) stopping: AtomicBool,
    pub(crate) dispatch: Mutex<Dispatch>,
    /// Woken when accepted alerts reach the disk (by the committer), when
    /// an attempt ends, and on stop: the dispatcher's one wake-up.
    /// (`notify_one` keeps a wake-up for a dispatcher not yet waiting: none
    /// is missed between its look and its wait.)
    pub(crate) changed: Arc<Notify>,
    /// The Alertmanagers whose silences serve made (`--alertmanager-url`):
    /// asked, at an alert's next event, whether its silence still holds.
    pub(crate) alertmanagers: Option<crate::silences::Alertmanagers>,
    /// The plugin directory's other plugins' instances, by kind.
    pub(crate) plugins: HashMap<String, Arc<crate::instances::Instances>>,
    /// The store's outages, logged once each: a failure met while one is
    /// going on is counted there, not logged again by whoever met it.
    pub(crate) outage: Arc<crate::store::outage::Outage>,
}

impl Shared {
    /// Whether a store failure just met is part of an outage already said
    /// (then the caller logs it at debug level only).
    pub(crate) fn in_outage(&self) -> bool {
        self.outage.ongoing()
    }
}

/// The scheduler and the alerts it knows.
pub(crate) struct Dispatch {
    pub(crate) scheduler: Scheduler,
    pub(crate) queued: HashMap<u64, Queued>,
    /// A channel's id (`CALERTS`, learnt from a delivery) to the pacing key
    /// of its name (`#alerts`): one Slack channel, one pace.
    pub(crate) aliases: HashMap<String, String>,
    /// The storms: channels whose alerts are shown in one message.
    pub(crate) storms: crate::serve::storms::Storms,
    /// The channel slots this node owns ([`crate::store::SLOTS`]): it
    /// sends only their channels' alerts; the others' wait here until
    /// their owner ends them (or this node comes to own them).
    pub(crate) owned: crate::store::Slots,
    /// Clicks on storm messages of channels another node owns: its storm
    /// is redrawn there; here until it ends them (or this node comes to own
    /// the channel). Alert id, storm key, channel.
    pub(crate) deferred: Vec<(u64, Option<String>, String)>,
    /// Where the next look at the store's endings starts
    /// ([`crate::store::Health::ended_since`]).
    pub(crate) ended_after: u64,
}

pub(crate) use crate::lock;

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Tells the dispatcher and the aggregator to stop, and wakes the
    /// dispatcher.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }
}
