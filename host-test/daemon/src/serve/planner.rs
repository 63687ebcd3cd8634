//! The planner: what reached the store is decoded and queued under its
//! channel for the scheduler; an alert that cannot be decoded fails now.

use std::sync::Arc;
use std::time::Instant;

use kapacitor_formats::alert_json;

use super::shared::{lock, Queued, Shared};
use super::{ending, repeat};
use crate::store::{self, Finished, Status};

/// Queues what reached the store since the last call (everything pending,
/// the first time). The dispatcher calls it each time it wakes, so an
/// arrival costs one wake-up: the committer's (or, for alerts another
/// node took, the store's).
pub(super) fn catch_up(shared: &Arc<Shared>) {
    let fresh = shared.commit.arrivals();
    if !fresh.is_empty() {
        plan(shared, fresh);
    }
}

/// Decodes accepted alerts and queues them under their channels. An alert
/// that cannot be decoded fails in a task of its own: the dispatcher never
/// waits on an ending (a store failing would hold every delivery).
fn plan(shared: &Arc<Shared>, fresh: Vec<store::Pending>) {
    let mut queued = Vec::with_capacity(fresh.len());
    for item in fresh {
        let id = item.id;
        let event = match alert_json::decode(&item.alert) {
            Ok(event) => event,
            Err(e) => {
                shared.metrics.failed("invalid-alert");
                let ending = Finished::new(id, Status::Failed, &format!("{e:#}"), 0);
                let shared = shared.clone();
                tokio::spawn(async move { ending::record(&shared, "", ending).await });
                continue;
            }
        };
        let key = shared.channels.pacing_key(&item.options);
        let queued_alert = Queued {
            alert: store::alert_key(&event.id, &item.options),
            channel: key.clone(),
            tracked: repeat::tracked(&event).then(|| repeat::digest(&event)),
            event,
            raw: item.alert,
            refresh: store::is_refresh(&item.options),
            options: item.options,
            attempts: 0,
        };
        queued.push((id, key, queued_alert));
    }
    if queued.is_empty() {
        return;
    }
    let mut dispatch = lock(&shared.dispatch);
    let now = Instant::now();
    for (id, key, mut alert) in queued {
        let key = dispatch.aliases.get(&key).cloned().unwrap_or(key);
        alert.channel.clone_from(&key);
        dispatch.scheduler.add(id, &key, &alert.alert, now);
        dispatch.queued.insert(id, alert);
    }
}
