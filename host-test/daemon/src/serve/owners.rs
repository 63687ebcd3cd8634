//! Channels have owners (a store shared by several nodes): what a node
//! does when its share of the channel slots changes at a renewal, and how
//! it forgets the alerts of channels another node owns once their owner
//! ended them. The dispatcher sends only the owned channels' alerts; the
//! planner draws storms only for them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dispatch::restore_storms;
use super::planner;
use super::shared::{lock, Shared};
use crate::store;

/// How often a node reads which alerts ended, to forget those of channels
/// it does not own (their owner ended them).
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// How long an alert of a channel another node owns waits before the
/// scheduler offers it again (it is sent here once the channel is this
/// node's).
pub(super) const NOT_OWNED_AGAIN: Duration = Duration::from_millis(500);

/// This node's share of the channels after a renewal: the storms of the
/// channels it no longer owns are forgotten (their alerts wait again, for
/// their new owner to end); the alerts of the channels it has come to own
/// are planned again, their storms taken back from the store first.
pub(super) async fn new_share(shared: &Arc<Shared>, owned: store::Slots) {
    let (gained, lost) = {
        let mut dispatch = lock(&shared.dispatch);
        let before = std::mem::replace(&mut dispatch.owned, owned);
        (owned & !before, before & !owned)
    };
    shared.metrics.slots_owned(owned.count_ones() as i64);
    if lost != 0 {
        let mut dispatch = lock(&shared.dispatch);
        let dispatch = &mut *dispatch;
        let (sends, alerts) = dispatch.storms.forget(|channel| store::owns(lost, channel));
        for id in sends {
            dispatch.scheduler.remove(id);
        }
        let now = Instant::now();
        for (id, item) in alerts {
            dispatch
                .scheduler
                .add(id, item.seq, &item.channel, &item.alert, now);
            dispatch.queued.insert(id, item);
        }
        // An alias holds only where this node owns both slots: an alert
        // paced under its channel's other name waits under its own again.
        let unaliased: Vec<u64> = dispatch
            .queued
            .iter()
            .filter(|(_, item)| {
                item.channel != item.home
                    && (store::owns(lost, &item.channel) || store::owns(lost, &item.home))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in unaliased {
            if dispatch.scheduler.remove(id) {
                if let Some(item) = dispatch.queued.get_mut(&id) {
                    item.channel.clone_from(&item.home);
                    dispatch
                        .scheduler
                        .add(id, item.seq, &item.channel, &item.alert, now);
                }
            }
        }
        tracing::info!(
            slots = lost.count_ones(),
            "channels passed to another node: it sends their alerts now"
        );
    }
    if gained != 0 {
        restore_storms(shared, gained).await;
        planner::replan(shared, gained);
        tracing::info!(
            slots = gained.count_ones(),
            "channels passed to this node: it sends their alerts now"
        );
    }
    shared.changed.notify_one();
}

/// Forgets the alerts of channels another node owns once they ended
/// (their owner ended them), and the deferred clicks likewise: the
/// endings since the last look, read by their order.
pub(super) async fn sweep(shared: Arc<Shared>) {
    let after = {
        let dispatch = lock(&shared.dispatch);
        let owned = dispatch.owned;
        let others = dispatch
            .queued
            .values()
            .any(|item| !store::owns(owned, &item.channel));
        if !others && dispatch.deferred.is_empty() {
            // Nothing to forget: the store is not asked (the endings since
            // are read once there is, at most the finished alerts kept).
            return;
        }
        dispatch.ended_after
    };
    let Ok((ended, next)) = shared.commit.read(|store| store.ended_since(after)).await else {
        return;
    };
    let mut dispatch = lock(&shared.dispatch);
    let dispatch = &mut *dispatch;
    dispatch.ended_after = next;
    if ended.is_empty() {
        return;
    }
    let owned = dispatch.owned;
    for id in &ended {
        // Taken out only if it waits, and is still another node's.
        let others = dispatch
            .queued
            .get(id)
            .is_some_and(|item| !store::owns(owned, &item.channel));
        if others && dispatch.scheduler.remove(*id) {
            dispatch.queued.remove(id);
        }
    }
    if !dispatch.deferred.is_empty() {
        let ended: std::collections::HashSet<u64> = ended.into_iter().collect();
        dispatch.deferred.retain(|(d, _, _)| !ended.contains(d));
    }
}
