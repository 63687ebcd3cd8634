//! One storm send: the storm message posted or edited through the
//! component's `handle-storm`, and, in one durable write, the storm's state
//! kept (its message's `ts`, its lines) with the ending of every alert the
//! send showed (`shown in storm <channel> <ts>`). The scheduler paces it as
//! a message to the storm's channel; an edit also waits for its
//! workspace's `chat.update` budget (`storms.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use alert_handler_host::retry::{Backoff, Next};
use alert_handler_host::{trap_reason, HandlerError, Level};
use tracing::{debug, error, info, warn};

use super::shared::{lock, Queued, Shared};
use crate::instances::Instances;
use crate::scheduler::Attempt;
use crate::store::{self, AlertMessage, Claim, Finished, Retry, Status, StormDone, StormTurn};

/// Sends storm send `id` (the scheduler marked it in flight), records what
/// it showed, and tells the scheduler.
pub(super) async fn send(
    shared: Arc<Shared>,
    instances: Arc<Instances>,
    id: u64,
    backoff: Backoff,
) {
    // What the store keeps of the storm: its marks (its buttons), and its
    // message if another node (or an earlier start) sent it first.
    let key = lock(&shared.dispatch)
        .storms
        .of_send(id)
        .map(str::to_string);
    let mut kept = match &key {
        Some(key) => shared
            .commit
            .read(|store| store.message(key))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    if let (Some(key), Some(message)) = (&key, kept.as_mut()) {
        // Its Alertmanager silence expired or changed there: the mark
        // follows, and the message is drawn again.
        let changed = super::delivery::in_alertmanager_still(&shared, message).await;
        let silence = message
            .silenced_at(store::unix_ms())
            .and_then(|mark| mark.silence.clone());
        let storms = &mut lock(&shared.dispatch).storms;
        if changed {
            storms.redraw(key);
        }
        storms.silenced_in_alertmanager(key, silence);
    }
    if let Some(key) = &key {
        own_messages_first(&shared, key).await;
    }
    let now = Instant::now();
    // An edit waits for its workspace's budget: not sent, asked again then.
    let taken = {
        let mut dispatch = lock(&shared.dispatch);
        let news = key
            .as_deref()
            .is_some_and(|key| dispatch.storms.merge(key, kept.as_ref()));
        let workspace = key
            .as_deref()
            .and_then(|key| dispatch.storms.message_of(key))
            .map(|(w, _, _)| w);
        match workspace.and_then(|w| dispatch.storms.update_wait(&w, now)) {
            Some(at) if news => {
                dispatch.scheduler.done(id, Attempt::Refused { at });
                shared.metrics.storm_request("update", "deferred");
                None
            }
            _ => dispatch.storms.take_send(id, now).map(|send| (send, news)),
        }
    };
    let Some((send, news)) = taken else {
        let mut dispatch = lock(&shared.dispatch);
        if dispatch.storms.of_send(id).is_none() {
            // A storm forgotten meanwhile: nothing to send.
            dispatch.scheduler.done(id, Attempt::Ended);
        }
        drop(dispatch);
        shared.changed.notify_one();
        return;
    };
    let edit = send.message.is_some();
    if !news && edit {
        // Another node's storm message shows all this one would (both
        // nodes hear of every alert): nothing to send; what it showed ends.
        let shown = {
            let mut dispatch = lock(&shared.dispatch);
            let shown = dispatch.storms.sending(&send.key);
            dispatch.storms.failed(id);
            dispatch.scheduler.done(id, Attempt::Ended);
            shown
        };
        let (_, channel_id, ts) = send.message.clone().unwrap_or_default();
        let at = format!("{channel_id} {ts}");
        let endings = shown
            .iter()
            .map(|(alert, item)| shown_in(*alert, item, &at))
            .collect();
        write(&shared, None, endings).await;
        shared.changed.notify_one();
        return;
    }
    // The channel's turn, across nodes: no other node sends to it
    // meanwhile; a post is paced with the channel, an edit spends the
    // workspace's budget (shared by every node of a shared store).
    let turn = StormTurn {
        channel: send.channel.clone(),
        budget: send.message.as_ref().map(|(workspace, _, _)| {
            let rules = lock(&shared.dispatch).storms.rules.updates;
            (format!("updates {workspace}"), rules)
        }),
    };
    let granted = shared
        .commit
        .read(|store| store.storm_turn(turn.clone()))
        .await;
    let wait = match granted {
        Ok(Claim::Granted { .. }) => None,
        Ok(Claim::NotYet { wait }) => Some(wait),
        Ok(Claim::Gone) => Some(Duration::from_millis(500)),
        Err(e) => {
            let wait = backoff.delay(1);
            if !shared.in_outage() {
                error!(
                    storm = send.channel,
                    "the store could not be asked for the storm message's turn: {e}"
                );
            }
            Some(wait)
        }
    };
    // A post granted: another node may have posted the storm message since
    // it was read above (it held the channel meanwhile). Then the turn goes
    // back, and the send comes again as an edit of that message.
    let wait = match wait {
        None if !edit => {
            let again = shared.commit.read(|store| store.message(&send.key)).await;
            match again {
                Ok(Some(kept)) if !kept.ts.is_empty() => {
                    lock(&shared.dispatch).storms.merge(&send.key, Some(&kept));
                    let done = StormDone {
                        turn: turn.clone(),
                        left: None,
                        retry: None,
                    };
                    let _ = shared.commit.read(|store| store.storm_done(done)).await;
                    Some(Duration::from_millis(50))
                }
                _ => None,
            }
        }
        wait => wait,
    };
    if let Some(wait) = wait {
        let mut dispatch = lock(&shared.dispatch);
        dispatch.storms.retry(id, None);
        dispatch.scheduler.done(
            id,
            Attempt::Refused {
                at: Instant::now() + wait,
            },
        );
        drop(dispatch);
        if edit {
            shared.metrics.storm_request("update", "deferred");
        }
        shared.changed.notify_one();
        return;
    }
    let method = if edit { "update" } else { "post" };
    // The marks of the storm (its buttons) and of the alerts it lists.
    let mut options = send.options.clone();
    let mut drawn = send.drawn.clone();
    if let Some(message) = &kept {
        options.extend(message.mark_options(store::unix_ms()));
        if let Some(mark) = message.silenced_at(store::unix_ms()) {
            // A silenced storm silences every alert it shows.
            for line in drawn.lines.iter_mut() {
                line.silenced_until = Some(super::storms::timestamp(mark.at));
            }
        }
    }
    for (line, key) in drawn.lines.iter_mut().zip(&send.line_keys) {
        if line.silenced_until.is_some() || line.event.level == Level::Ok {
            continue;
        }
        let job = shared.commit.read(|store| store.message(key));
        if let Ok(Some(message)) = job.await {
            if let Some(mark) = message.silenced_at(store::unix_ms()) {
                line.silenced_until = Some(super::storms::timestamp(mark.at));
            }
        }
    }
    let (answer, left) = match instances.take().await {
        Ok(mut taken) => {
            let answer = taken.instance.handle_storm_async(&drawn, &options).await;
            let left = taken.instance.request_left();
            if answer.is_ok() {
                instances.give(taken);
            }
            (answer, left)
        }
        Err(e) => (Err(e), None),
    };
    // What the store hears of a retry (a Retry-After blocks the channel
    // or the budget for every node).
    let mut store_retry = None;
    let outcome = match answer {
        Ok(Ok(delivery)) => match (delivery.channel_id.clone(), delivery.ts.clone()) {
            (Some(channel_id), Some(ts)) => {
                shared.metrics.storm_request(method, "sent");
                for warning in &delivery.warnings {
                    if warning.starts_with("handler_posted_new_message") {
                        warn!(
                            storm = send.channel,
                            warning, "the storm message was gone from Slack and was posted again"
                        );
                    }
                }
                record(&shared, id, &send.key, (delivery.workspace, channel_id, ts)).await;
                Attempt::Ended
            }
            _ => {
                // A handler that names no message cannot be edited: what it
                // showed is delivered, and the next change posts again.
                shared.metrics.storm_request(method, "sent");
                failed(
                    &shared,
                    id,
                    &send.key,
                    Status::Delivered,
                    "shown in a storm message Slack named no ts for",
                )
                .await;
                Attempt::Ended
            }
        },
        Ok(Err(error)) => match backoff.next(&error, 1) {
            Next::RetryAfter(wait) => {
                let (retry_after, rate_limited) = match &error {
                    HandlerError::Transient(t) => {
                        (t.retry_after_seconds.is_some(), t.is_rate_limited())
                    }
                    _ => (false, false),
                };
                shared.metrics.retry(rate_limited);
                shared.metrics.storm_request(method, "retried");
                warn!(
                    storm = send.channel,
                    method,
                    error = error.describe(),
                    retry_in_ms = wait.as_millis() as u64,
                    "a storm message could not be sent; will retry"
                );
                store_retry = Some(Retry {
                    wait,
                    retry_after,
                    rate_limited,
                });
                let at = Instant::now() + wait;
                lock(&shared.dispatch)
                    .storms
                    .retry(id, (retry_after && method == "update").then_some(at));
                // An edit's Retry-After holds its workspace's updates (the
                // budget), a post's the channel (the scheduler).
                Attempt::Retry {
                    at,
                    retry_after: retry_after && method == "post",
                    rate_limited: rate_limited && method == "post",
                }
            }
            Next::GiveUp => {
                shared.metrics.storm_request(method, "failed");
                let why = format!("the storm message could not be sent: {}", error.describe());
                failed(&shared, id, &send.key, Status::Failed, &why).await;
                Attempt::Ended
            }
        },
        Err(trap) => {
            // Not the alerts' fault: tried again on a fresh instance.
            let wait = backoff.delay(1);
            error!(
                storm = send.channel,
                retry_in_ms = wait.as_millis() as u64,
                "a storm message's call stopped: {}",
                trap_reason(&trap)
            );
            shared.metrics.storm_request(method, "retried");
            lock(&shared.dispatch).storms.retry(id, None);
            store_retry = Some(Retry {
                wait,
                retry_after: false,
                rate_limited: false,
            });
            Attempt::Retry {
                at: Instant::now() + wait,
                retry_after: false,
                rate_limited: false,
            }
        }
    };
    // The channel let go (a store shared by several nodes holds it for
    // the send); one that cannot be told runs out with its lease.
    let left_at = left.map(|at| SystemTime::now() - at.elapsed());
    let done = StormDone {
        turn,
        left: left_at,
        retry: store_retry,
    };
    if let Err(e) = shared.commit.read(|store| store.storm_done(done)).await {
        if shared.in_outage() {
            debug!(
                storm = send.channel,
                "the storm message's turn could not be let go during the store's outage: {e}"
            );
        } else {
            warn!(
                storm = send.channel,
                "the storm message's turn could not be let go; it runs out with its lease: {e}"
            );
        }
    }
    // A retry stays queued in the scheduler under the same id (and then
    // draws the storm as it is by then).
    let mut dispatch = lock(&shared.dispatch);
    if let Some(at) = left {
        dispatch.scheduler.left(id, at);
    }
    dispatch.scheduler.done(id, outcome);
    drop(dispatch);
    shared.changed.notify_one();
}

/// Keeps the storm's state with its message and ends what the send
/// showed, in one durable write (tried again until it is).
async fn record(shared: &Shared, id: u64, key: &str, message: (String, String, String)) {
    let where_ = format!("{} {}", message.1, message.2);
    let (kept, shown) = {
        let mut dispatch = lock(&shared.dispatch);
        let shown = dispatch.storms.sending(key);
        (dispatch.storms.sent(id, message), shown)
    };
    let endings: Vec<Finished> = shown
        .iter()
        .map(|(alert, item)| shown_in(*alert, item, &where_))
        .collect();
    shared.metrics.shown_in_storm(endings.len() as u64);
    info!(
        storm = key,
        alerts = endings.len(),
        at = where_,
        "storm message sent"
    );
    write(shared, kept, endings).await;
}

/// Ends what a failed send showed with `status` and `why`.
async fn failed(shared: &Shared, id: u64, key: &str, status: Status, why: &str) {
    let shown = {
        let mut dispatch = lock(&shared.dispatch);
        let shown = dispatch.storms.sending(key);
        dispatch.storms.failed(id);
        shown
    };
    if status == Status::Failed {
        for _ in &shown {
            shared.metrics.failed("storm");
        }
    }
    let endings = shown
        .iter()
        .map(|(alert, item)| Finished::new(*alert, status, why, item.attempts + 1))
        .collect();
    write(shared, None, endings).await;
}

/// The ending of an alert a storm message showed: delivered, with where,
/// and what it makes the alert's key keep (a recovery forgets its message;
/// Alertmanager's alerts keep their level and digest, so a repeat after
/// the storm is known).
fn shown_in(id: u64, item: &Queued, at: &str) -> Finished {
    let detail = format!("{}{at}", store::SHOWN_IN_STORM);
    let done = Finished::new(id, Status::Delivered, &detail, item.attempts + 1);
    let level = item.event.level.as_str();
    match &item.tracked {
        Some(digest) => done.tracking(&item.alert, level, digest, "", None),
        None if item.event.level == Level::Ok => {
            done.remembering(&item.alert, true, "", None, None)
        }
        None => done,
    }
}

/// Writes `kept` and `endings` in one durable write, again until it is.
async fn write(shared: &Shared, kept: Option<AlertMessage>, endings: Vec<Finished>) {
    let mut wait = Duration::from_millis(100);
    loop {
        let (kept, endings) = (kept.clone(), endings.clone());
        let written = shared.commit.write(move |store| {
            if let Some(message) = kept {
                store.keep(message)?;
            }
            for done in endings {
                store.finish(done)?;
            }
            Ok::<_, store::StoreError>(())
        });
        let durable = match written {
            Ok((_, durable)) => durable.wait().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match durable {
            Ok(()) => return,
            Err(e) if shared.stopping() => {
                error!("recording a storm message failed; its alerts are shown again after the next start: {e}");
                return;
            }
            Err(e) => {
                if shared.in_outage() {
                    debug!("recording a storm message failed during the store's outage; trying again: {e}");
                } else {
                    error!(
                        retry_in_ms = wait.as_millis() as u64,
                        "recording a storm message failed; trying again: {e}"
                    );
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Events of alerts that have a message of their own, which their later
/// events edit or reply to (`on-recovery` `update` or `thread`; the alert
/// went alone before its channel stormed): taken back out of the storm and
/// sent to that message, so it never shows old news beside the storm.
async fn own_messages_first(shared: &Shared, key: &str) {
    let waiting = lock(&shared.dispatch).storms.waiting(key);
    let asked: Vec<(u64, Queued)> = waiting
        .into_iter()
        .filter(|(_, item)| shared.channels.on_recovery(&item.options) != "new")
        .collect();
    if asked.is_empty() {
        return;
    }
    let reads = asked.iter().map(|(_, item)| {
        let alert = item.alert.clone();
        async move {
            let job = shared.commit.read(|store| store.message(&alert));
            job.await.ok().flatten()
        }
    });
    let messages = futures_util::future::join_all(reads).await;
    let own: Vec<u64> = asked
        .iter()
        .zip(messages)
        .filter(|(_, m)| m.as_ref().is_some_and(AlertMessage::continues))
        .map(|((id, _), _)| *id)
        .collect();
    if own.is_empty() {
        return;
    }
    let now = Instant::now();
    let mut dispatch = lock(&shared.dispatch);
    let dispatch = &mut *dispatch;
    for id in own {
        if let Some(item) = dispatch.storms.pull_out(key, id) {
            dispatch
                .scheduler
                .add(id, item.seq, &item.channel, &item.alert, now);
            dispatch.queued.insert(id, item);
        }
    }
}
