//! The planner: what reached the store is decoded and queued under its
//! channel for the scheduler; an alert that cannot be decoded fails now.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use kapacitor_formats::alert_json;

use super::channels::Channels;
use super::shared::{lock, Dispatch, Queued, Shared};
use super::{ending, repeat, storms};
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

/// The channel (pacing key) an alert goes to, before any alias: a redraw
/// its storm message's (if it names one); another plugin's alert its
/// own, paced by nothing but its retries; a Slack alert the `workspace`
/// and `channel` of its options, or the configuration's. A shared store
/// files each alert under it as it is accepted
/// ([`store::Claims::plan_by`]).
pub(crate) fn channel_of(
    channels: &Channels,
    id: u64,
    alert: &str,
    options: &[(String, String)],
) -> Option<String> {
    if store::is_refresh(options) && storms::is_state(alert) {
        return storms::channel_of_state(alert);
    }
    Some(match store::plugin_of(options) {
        Some(kind) => format!("{kind} #{id}"),
        None => channels.pacing_key(options),
    })
}

/// Decodes accepted alerts and queues them under their channels, or shows
/// them in their channel's storm (`storms.rs`): an alert whose line a storm
/// shows, an alert of a channel (or an Alertmanager group) that storms, and
/// the alerts waiting for a channel when more wait than `storm-after`. An
/// alert that cannot be decoded fails in a task of its own: the dispatcher
/// never waits on an ending (a store failing would hold every delivery).
fn plan(shared: &Arc<Shared>, fresh: Vec<store::Pending>) {
    let mut queued = Vec::with_capacity(fresh.len());
    let mut endings = Vec::new();
    let mut redraws = Vec::new();
    let known: Vec<bool> = {
        // Given twice (read when this node came to own its slot, and
        // handed over by the commit or read as it arrived): planned once.
        let dispatch = lock(&shared.dispatch);
        fresh
            .iter()
            .map(|item| dispatch.queued.contains_key(&item.id))
            .collect()
    };
    for (item, known) in fresh.into_iter().zip(known) {
        if known {
            continue;
        }
        let id = item.id;
        if store::is_refresh(&item.options) && storms::is_state(&item.alert) {
            // A click on a storm message: the storm is drawn again.
            redraws.push((
                id,
                storms::key_of_state(&item.alert, &item.options),
                item.channel
                    .or_else(|| storms::channel_of_state(&item.alert)),
            ));
            continue;
        }
        let event = match alert_json::decode(&item.alert) {
            Ok(event) => event,
            Err(e) => {
                shared.metrics.failed("invalid-alert");
                endings.push(Finished::new(id, Status::Failed, &format!("{e:#}"), 0));
                continue;
            }
        };
        let plugin = store::plugin_of(&item.options).map(str::to_string);
        // As it was filed when accepted, if it was.
        let key = item.channel.clone().unwrap_or_else(|| {
            channel_of(&shared.channels, id, &item.alert, &item.options).unwrap_or_default()
        });
        let tracked = repeat::tracked(&event);
        let queued_alert = Queued {
            alert: store::alert_key(&event.id, &item.options),
            channel: key.clone(),
            home: key.clone(),
            seq: item.seq,
            tracked: tracked.then(|| repeat::digest(&event)),
            event,
            raw: item.alert,
            refresh: store::is_refresh(&item.options),
            options: item.options,
            attempts: 0,
            plugin,
        };
        queued.push((id, key, queued_alert));
    }
    let mut dispatch = lock(&shared.dispatch);
    let dispatch = &mut *dispatch;
    for (id, key, channel) in redraws {
        if channel
            .as_deref()
            .is_some_and(|c| !store::owns(dispatch.owned, c))
        {
            // Another node's storm: it redraws it (kept here in case this
            // node comes to own the channel first).
            dispatch
                .deferred
                .push((id, key, channel.unwrap_or_default()));
            continue;
        }
        redraw(dispatch, id, key, &mut endings);
    }
    route(shared, dispatch, queued, &mut endings);
    if !endings.is_empty() {
        let shared = shared.clone();
        tokio::spawn(async move {
            for ending in endings {
                ending::record(&shared, "", ending, None).await;
            }
        });
    }
}

/// A click on storm `key`'s message (alert `id`): the storm is drawn
/// again, or, if it is over, the redraw ends.
fn redraw(dispatch: &mut Dispatch, id: u64, key: Option<String>, endings: &mut Vec<Finished>) {
    let redrawn = key.is_some_and(|key| dispatch.storms.redraw(&key));
    let (status, why) = if redrawn {
        (
            Status::Delivered,
            "redrawn with its storm message after a click",
        )
    } else {
        (
            Status::Superseded,
            "a redraw after a click, not sent: the storm is over",
        )
    };
    endings.push(Finished::new(id, status, why, 0));
}

/// The alerts of the channels in `gained` (slots this node has just come
/// to own) planned again as if they had just arrived, so a storm of theirs
/// opens or goes on here; and the redraws of their storm messages.
pub(super) fn replan(shared: &Arc<Shared>, gained: store::Slots) {
    let mut endings = Vec::new();
    let mut dispatch = lock(&shared.dispatch);
    let dispatch = &mut *dispatch;
    let mut ids: Vec<u64> = dispatch
        .queued
        .iter()
        .filter(|(_, item)| store::owns(gained, &item.channel))
        .map(|(id, _)| *id)
        .collect();
    ids.sort_unstable();
    let mut again = Vec::with_capacity(ids.len());
    for id in ids {
        // Only what waits: one in flight ends as it is.
        if dispatch.scheduler.remove(id) {
            if let Some(item) = dispatch.queued.remove(&id) {
                again.push((id, item.channel.clone(), item));
            }
        }
    }
    let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut dispatch.deferred)
        .into_iter()
        .partition(|(_, _, channel)| store::owns(gained, channel));
    dispatch.deferred = others;
    for (id, key, _) in mine {
        redraw(dispatch, id, key, &mut endings);
    }
    route(shared, dispatch, again, &mut endings);
    if !endings.is_empty() {
        let shared = shared.clone();
        tokio::spawn(async move {
            for ending in endings {
                ending::record(&shared, "", ending, None).await;
            }
        });
    }
}

/// Queues decoded alerts under their channels for the scheduler, or
/// shows them in their channel's storm, for the channels this node owns;
/// the others' alerts wait in the scheduler (their owner sends them).
fn route(
    shared: &Arc<Shared>,
    dispatch: &mut Dispatch,
    queued: Vec<(u64, String, Queued)>,
    endings: &mut Vec<Finished>,
) {
    let now = Instant::now();
    // This batch's alerts by channel and by Alertmanager group: where a
    // storm may open.
    let mut channels: HashMap<String, u64> = HashMap::new();
    let mut groups: HashMap<(String, String), Vec<u64>> = HashMap::new();
    for (id, key, mut alert) in queued {
        // One Slack channel named by its id and by its name is paced as
        // one, where this node owns both: the alert stays the node's whose
        // slot it was filed under ([`new_share`](super::owners::new_share)
        // takes the alias back when either slot goes).
        let key = match dispatch.aliases.get(&key) {
            Some(named) if store::owns(dispatch.owned, named) => named.clone(),
            _ => key,
        };
        alert.channel.clone_from(&key);
        let group = alert
            .tracked
            .as_ref()
            .and_then(|_| storms::group_of(&alert.event))
            .map(str::to_string);
        if !alert.refresh && alert.plugin.is_none() && store::owns(dispatch.owned, &key) {
            let storm = dispatch
                .storms
                .storm_for(&alert.alert, &key, group.as_deref())
                .map(str::to_string);
            if let Some(storm) = storm {
                show(
                    shared,
                    &mut dispatch.storms,
                    &storm,
                    id,
                    alert,
                    now,
                    endings,
                );
                continue;
            }
            channels.entry(key.clone()).or_insert(id);
            if let Some(group) = group {
                groups.entry((key.clone(), group)).or_default().push(id);
            }
        }
        dispatch
            .scheduler
            .add(id, alert.seq, &key, &alert.alert, now);
        dispatch.queued.insert(id, alert);
    }
    if !dispatch.storms.open_at_all() {
        // The plugin draws no storm messages.
        groups.clear();
        channels.clear();
    }
    // An Alertmanager group of more than `storm-after` alerts in one
    // payload: one message for the group from the start.
    for ((channel, group), ids) in groups {
        let Some(first) = dispatch.queued.get(&ids[0]) else {
            continue;
        };
        let (after, list) = shared.channels.storm(&first.options);
        if after == 0 || ids.len() <= after as usize {
            continue;
        }
        let storm = dispatch
            .storms
            .open(&channel, Some(&group), first, list, now);
        for id in ids {
            if dispatch.scheduler.remove(id) {
                if let Some(alert) = dispatch.queued.remove(&id) {
                    show(
                        shared,
                        &mut dispatch.storms,
                        &storm,
                        id,
                        alert,
                        now,
                        endings,
                    );
                }
            }
        }
    }
    // More alerts wait for a channel than Slack's pace lets through
    // promptly: they, and the channel's next alerts until it is calm, go
    // into one storm message.
    for (channel, first) in channels {
        if dispatch.storms.storm_for("", &channel, None).is_some() {
            continue;
        }
        let Some(first) = dispatch.queued.get(&first) else {
            continue;
        };
        let (after, list) = shared.channels.storm(&first.options);
        if after == 0 || dispatch.scheduler.waiting(&channel) <= after as usize {
            continue;
        }
        let storm = dispatch.storms.open(&channel, None, first, list, now);
        for id in dispatch.scheduler.take_waiting(&channel) {
            let Some(alert) = dispatch.queued.remove(&id) else {
                continue;
            };
            if alert.refresh {
                // A redraw of an alert's own message stays one.
                dispatch
                    .scheduler
                    .add(id, alert.seq, &channel, &alert.alert, now);
                dispatch.queued.insert(id, alert);
                continue;
            }
            show(
                shared,
                &mut dispatch.storms,
                &storm,
                id,
                alert,
                now,
                endings,
            );
        }
    }
    for (id, channel, key) in dispatch.storms.due_sends() {
        dispatch.scheduler.add(id, id, &channel, &key, now);
    }
}

/// Shows alert `id` in `storm`; a repeat of what its line shows ends as a
/// repeat.
fn show(
    shared: &Shared,
    storms: &mut storms::Storms,
    storm: &str,
    id: u64,
    alert: Queued,
    now: Instant,
    endings: &mut Vec<Finished>,
) {
    if !storms.fold(storm, id, alert, now) {
        shared.metrics.repeated();
        let why = "repeats what its line in the storm message shows";
        endings.push(Finished::new(id, Status::Repeat, why, 0));
    }
}
