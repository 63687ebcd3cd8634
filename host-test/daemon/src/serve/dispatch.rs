//! The dispatcher: starts a delivery for each alert the scheduler says is
//! due, as a task of its own, and waits for the next one. Concurrency
//! follows the channels: every channel that may send now has its request
//! out (up to the scheduler's `max_in_flight`), each on its own instance,
//! all on a few threads; a request waiting on Slack is a suspended task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_handler_host::retry::Backoff;
use tokio::task::JoinSet;

use super::delivery::{deliver, no_plugin};
use super::owners::{new_share, sweep, NOT_OWNED_AGAIN, SWEEP_EVERY};
use super::shared::{lock, Shared};
use super::storms::{self, STORM_IDS};
use super::{planner, storm_delivery};
use crate::instances::Instances;
use crate::scheduler::{Attempt, Decision};
use crate::store;

/// Queues what reaches the store ([`planner::catch_up`]) and starts
/// deliveries as they fall due until serve stops, then waits for those in
/// flight to end and be recorded.
pub(super) async fn run(shared: Arc<Shared>, instances: Arc<Instances>, backoff: Backoff) {
    let mut in_flight = JoinSet::new();
    let mut trimmed = Instant::now();
    // Claims are renewed a third of their lease apart, so two renewals can
    // fail before one runs out.
    let renew_every = shared.commit.read(|store| store.lease()).map(|l| l / 3);
    let mut renewed = Instant::now();
    let mut swept = Instant::now();
    if renew_every.is_some() {
        // Which channels are this node's, before anything is planned.
        let owned = match shared.commit.read(|store| store.renew()).await {
            Ok(owned) => owned,
            Err(e) => {
                tracing::warn!("this node's share of the channels could not be asked for; it sends nothing until a renewal answers: {e}");
                0
            }
        };
        lock(&shared.dispatch).owned = owned;
    }
    let owned = lock(&shared.dispatch).owned;
    shared.metrics.slots_owned(owned.count_ones() as i64);
    restore_storms(&shared, owned).await;
    // Whether to look at the store: at start, and after each wake-up.
    let mut look = true;
    while !shared.stopping() {
        if look {
            // What reached the store since the last look, queued first.
            planner::catch_up(&shared);
            look = false;
        }
        let now = Instant::now();
        if now.duration_since(trimmed) >= Duration::from_secs(1) {
            instances.trim(now);
            for pool in shared.plugins.values() {
                pool.trim(now);
            }
            trimmed = now;
            // Calm storms close; their last edit is queued.
            let mut dispatch = lock(&shared.dispatch);
            let dispatch = &mut *dispatch;
            dispatch.storms.tick(now);
            for (id, channel, key) in dispatch.storms.due_sends() {
                dispatch.scheduler.add(id, id, &channel, &key, now);
            }
            shared.metrics.storms_open(dispatch.storms.len() as i64);
        }
        if renew_every.is_some_and(|every| now.duration_since(renewed) >= every) {
            renewed = now;
            let renewal = shared.commit.read(|store| store.renew());
            let outage = shared.outage.clone();
            let shared = shared.clone();
            in_flight.spawn(async move {
                match renewal.await {
                    Err(e) if outage.ongoing() => tracing::debug!("renewing this node's claims failed during the store's outage: {e}"),
                    Err(e) => tracing::warn!("renewing this node's claims failed; they run out unless a renewal succeeds in time: {e}"),
                    Ok(owned) => new_share(&shared, owned).await,
                }
            });
        }
        if renew_every.is_some() && now.duration_since(swept) >= SWEEP_EVERY {
            swept = now;
            in_flight.spawn(sweep(shared.clone()));
        }
        let due = {
            let mut dispatch = lock(&shared.dispatch);
            let owned = dispatch.owned;
            let not_owned = Attempt::Refused {
                at: now + NOT_OWNED_AGAIN,
            };
            match dispatch.scheduler.next(now) {
                Decision::Send(id) if id >= STORM_IDS => Ok((id, None)),
                Decision::Send(id) => match dispatch.queued.get(&id) {
                    // Another node's channel: its owner sends it.
                    Some(item) if !store::owns(owned, &item.channel) => {
                        dispatch.scheduler.done(id, not_owned);
                        continue;
                    }
                    Some(item) => Ok((id, Some(item.clone()))),
                    None => {
                        dispatch.scheduler.done(id, Attempt::Ended);
                        continue;
                    }
                },
                Decision::Wait(until) => Err(until),
            }
        };
        match due {
            Ok((id, item)) => {
                shared.metrics.in_flight(1);
                // The plugin of the alert's kind, else the slack plugin.
                let kind = item.as_ref().and_then(|i| i.plugin.clone());
                let pool = match &kind {
                    Some(kind) => shared.plugins.get(kind).cloned(),
                    None => Some(instances.clone()),
                };
                let shared = shared.clone();
                in_flight.spawn(async move {
                    match (item, pool) {
                        (Some(item), Some(pool)) => {
                            deliver(shared.clone(), pool, id, item, backoff).await
                        }
                        (Some(item), None) => no_plugin(shared.clone(), id, item).await,
                        (None, pool) => {
                            let pool = pool.expect("storms are the slack plugin's");
                            storm_delivery::send(shared.clone(), pool, id, backoff).await
                        }
                    }
                    shared.metrics.in_flight(-1);
                });
            }
            Err(until) => {
                let longest = renew_every.map_or(Duration::from_secs(1), |every| {
                    every.clamp(Duration::from_millis(1), Duration::from_secs(1))
                });
                let wait = until.map_or(longest, |t| {
                    t.saturating_duration_since(now)
                        .clamp(Duration::from_millis(1), longest)
                });
                // An arrival or an ending after the look above left a
                // wake-up: not missed.
                let _ = tokio::time::timeout(wait, shared.changed.notified()).await;
                look = true;
            }
        }
        // Ended deliveries are reaped as they go, so the set stays as big as
        // what is in flight.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    if renew_every.is_some() {
        // Its channels passed on now, not once its lease runs out.
        if let Err(e) = shared.commit.read(|store| store.leave()).await {
            tracing::warn!("this node's channels could not be given back; the other nodes take them once its lease runs out: {e}");
        }
    }
}

/// Takes back the storms the store keeps (their messages and lines) of
/// the channels in `slots`, so a restart (or a node coming to own their
/// channels) continues each storm message instead of starting another.
pub(super) async fn restore_storms(shared: &Shared, slots: store::Slots) {
    if slots == 0 {
        return;
    }
    use crate::store::{Entry, Listing};
    let mut after = None;
    let now = Instant::now();
    loop {
        let page = shared
            .commit
            .read(|store| store.lists(&[Listing::Messages], after, 1_000));
        let lists = match page.await {
            Ok(lists) => lists,
            Err(e) => {
                tracing::warn!("the storms kept in the store could not be read; an open storm's next alerts start a new storm message: {e}");
                return;
            }
        };
        let Some((_, page)) = lists.pages.into_iter().next() else {
            return;
        };
        let mut dispatch = lock(&shared.dispatch);
        for entry in &page.items {
            if let Entry::Message(message) = entry {
                let ours = message
                    .alert
                    .as_deref()
                    .filter(|a| storms::is_state(a))
                    .and_then(storms::channel_of_state)
                    .is_some_and(|channel| store::owns(slots, &channel));
                if ours && !dispatch.storms.has(&message.key) {
                    dispatch.storms.restore(message, now);
                }
            }
        }
        drop(dispatch);
        match page.next {
            Some(next) => after = Some(next),
            None => return,
        }
    }
}
