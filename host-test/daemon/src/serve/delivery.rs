//! One delivery: an alert the scheduler said is due, sent on an instance
//! taken for it, and how it went recorded. It is a task, not a thread: while
//! its request is out it holds an instance and a few kilobytes, no thread
//! (see [`super::dispatch`]). Each request is three steps: [`attempt`] (the
//! call), [`judge`] (what its answer means: an ending, or a retry and
//! when), [`record`] (the ending, durably), and the scheduler hears the
//! outcome.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use alert_handler_host::retry::{Backoff, Next};
use alert_handler_host::{
    trap_reason, Delivery, FieldValue, HandlerError, Instance, Level, Trapped,
};
use tracing::{debug, error, info, warn};

use super::ending::record;
use super::repeat;
use super::shared::{lock, Queued, Shared};
use crate::instances::Instances;
use crate::scheduler::Attempt;
use crate::serve::channels::pacing_key;
use crate::store::{
    self, AlertMessage, Claim, ClaimRequest, Fence, Finished, Release, Retry, Status,
};

/// Attempts an alert gets when each is stopped by a host limit (the call
/// deadline, the memory cap): the first and two more on fresh instances,
/// then it fails for good with the limit's one-line reason.
const LIMIT_TRAP_ATTEMPTS: u32 = 3;

/// What an answer means for the alert.
struct Verdict {
    outcome: Attempt,
    /// How the alert ended, when it did.
    ending: Option<Finished>,
    /// A channel's id learnt from a delivery, to pace it with its name.
    alias: Option<(String, String)>,
    /// The instance trapped and must be replaced.
    dead: bool,
}

impl Verdict {
    /// The alert ended so.
    fn ended(ending: Finished) -> Verdict {
        Verdict {
            outcome: Attempt::Ended,
            ending: Some(ending),
            alias: None,
            dead: false,
        }
    }

    /// Refused by the store (another node's turn): asked again after
    /// `wait`.
    fn refused(wait: Duration) -> Verdict {
        Verdict {
            outcome: Attempt::Refused {
                at: Instant::now() + wait,
            },
            ending: None,
            alias: None,
            dead: false,
        }
    }

    /// Ended elsewhere (another node): nothing to record here.
    fn gone() -> Verdict {
        Verdict {
            outcome: Attempt::Ended,
            ending: None,
            alias: None,
            dead: false,
        }
    }

    /// Tried again after `wait`; `retry_after`: Slack said when;
    /// `rate_limited`: it was a `429`.
    fn retry(wait: Duration, retry_after: bool, rate_limited: bool) -> Verdict {
        Verdict {
            outcome: Attempt::Retry {
                at: Instant::now() + wait,
                retry_after,
                rate_limited,
            },
            ending: None,
            alias: None,
            dead: false,
        }
    }
}

/// Delivers alert `id` once (the scheduler marked it in flight) if the
/// store grants its claim, records its ending if it ended, lets the claim
/// go, and tells the scheduler.
pub(super) async fn deliver(
    shared: Arc<Shared>,
    instances: Arc<Instances>,
    id: u64,
    mut item: Queued,
    backoff: Backoff,
) {
    let request = ClaimRequest {
        id,
        channel: item.channel.clone(),
        key: item.alert.clone(),
    };
    let claim = shared.commit.read(|store| store.claim(request));
    let (message, fence) = match claim.await {
        Ok(Claim::Granted {
            message,
            attempts,
            fence,
        }) => {
            // Every node's requests: the store's count, or this node's own
            // when the store has not yet been told of its last retry.
            if let Some(attempts) = attempts {
                item.attempts = item.attempts.max(attempts);
            }
            (message.map(|m| *m), fence)
        }
        Ok(Claim::NotYet { wait }) => {
            // Not this node's turn: asked again then; nothing was sent, so
            // neither an attempt nor the channel's pace counts it.
            return settle(&shared, id, &item, Verdict::refused(wait), None);
        }
        Ok(Claim::Gone) => {
            // Another node ended it.
            return settle(&shared, id, &item, Verdict::gone(), None);
        }
        Err(e) => {
            let wait = backoff.delay(1);
            if shared.in_outage() {
                debug!(
                    alert = id,
                    "the store could not be asked whether to send the alert: {e}"
                );
            } else {
                error!(
                    alert = id,
                    retry_in_ms = wait.as_millis() as u64,
                    "the store could not be asked whether to send the alert: {e}"
                );
            }
            return settle(&shared, id, &item, Verdict::retry(wait, false, false), None);
        }
    };
    if item.refresh {
        latest_event(&mut item, message.as_ref());
    }
    let mut message = message;
    if let Some(m) = message.as_mut() {
        if in_alertmanager_still(&shared, m).await {
            redraw_repeat(&shared, &mut item, m);
        }
    }
    let (verdict, left) = match not_sent(&shared, &item, message.as_ref()) {
        Some(ending) => (Verdict::ended(Finished { id, ..ending }), None),
        None => match instances.take().await {
            Ok(mut taken) => {
                item.attempts += 1;
                let answer = attempt(&mut taken.instance, &item, message).await;
                let left = taken.instance.request_left();
                let verdict = judge(&shared, id, &item, answer, &backoff);
                if !verdict.dead {
                    instances.give(taken);
                }
                (verdict, left)
            }
            Err(e) => {
                // Not the alert's fault, and no request left: tried again,
                // not counted as an attempt.
                let wait = backoff.delay(1);
                error!(
                    alert = id,
                    retry_in_ms = wait.as_millis() as u64,
                    "no instance to send with (a fresh one failed to configure): {e:#}"
                );
                (Verdict::retry(wait, false, false), None)
            }
        },
    };
    let release = release(id, &item, &verdict, left, fence);
    match verdict.ending.clone() {
        Some(ending) => {
            let plugin = item.plugin.as_deref().unwrap_or("slack");
            shared.metrics.plugin_ended(plugin, ending.status.as_str());
            // Taken only while this claim holds; written with its release
            // in one group commit.
            let ending = Finished { fence, ..ending };
            record(&shared, &item.channel, ending, Some(release)).await;
        }
        None => let_go(&shared, release),
    }
    settle(&shared, id, &item, verdict, left);
}

/// An alert for a plugin kind no plugin of the directory has now (it was
/// accepted under another directory): it fails, saying so, and is kept to
/// be sent again once the plugin is back (`spool resend`).
pub(super) async fn no_plugin(shared: Arc<Shared>, id: u64, item: Queued) {
    let kind = item.plugin.clone().unwrap_or_default();
    shared.metrics.failed("no-plugin");
    shared.metrics.plugin_ended(&kind, "failed");
    let why =
        format!("no plugin of kind `{kind}` is loaded (serve --plugins DIR has none): not sent");
    let ending = Finished::new(id, Status::Failed, &why, item.attempts);
    record(&shared, &item.channel, ending, None).await;
    settle(&shared, id, &item, Verdict::gone(), None);
}

/// Whether the Alertmanager silence a message's mark names still holds, at
/// the alert's next event: one expired (or deleted) in Alertmanager lifts
/// the mark, one whose end was changed there moves it; recorded durably,
/// so every node sees it. Alertmanager not answering leaves the mark as
/// it is.
/// Whether the mark changed (recorded).
pub(super) async fn in_alertmanager_still(shared: &Shared, message: &mut AlertMessage) -> bool {
    let Some(ams) = &shared.alertmanagers else {
        return false;
    };
    let Some(mark) = message.silenced_at(store::unix_ms()).cloned() else {
        return false;
    };
    let Some(id) = mark.silence.clone() else {
        return false;
    };
    let now = match ams.get(&id).await {
        Ok(now) => now,
        Err(e) => {
            debug!(
                silence = id,
                "Alertmanager was not asked about the silence: {e}"
            );
            return false;
        }
    };
    let act = match now {
        Some(s) if s.status.state != "expired" => {
            let ends = slack_alert_handler::alert_json::unix_seconds(&s.ends_at)
                .map(|secs| (secs.max(0) as u64) * 1000);
            match ends {
                Some(at) if at.abs_diff(mark.at) > 1_000 => {
                    store::Act::Silence(store::Mark { at, ..mark })
                }
                _ => return false,
            }
        }
        _ => store::Act::Unsilence,
    };
    let key = message.key.clone();
    let identity = format!("alertmanager {id} {}", store::unix_ms());
    let acted = act.clone();
    let written = shared
        .commit
        .write(move |store| store.act(&key, acted, &identity));
    let durable = match written {
        Ok((_, durable)) => durable.wait().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match durable {
        Ok(()) => {
            info!(
                silence = id,
                change = act.name(),
                "the alert's silence changed in Alertmanager; its mark follows"
            );
            message.acted(&act);
            true
        }
        Err(e) => {
            warn!(
                silence = id,
                "the silence's change in Alertmanager could not be recorded: {e}"
            );
            false
        }
    }
}

/// The alert's silence changed in Alertmanager, and its next event is a
/// repeat (recorded, not sent): its message is drawn again instead, with
/// the mark as it is now, so the message does not go on saying
/// "Silenced" once Alertmanager's silence is gone.
fn redraw_repeat(shared: &Shared, item: &mut Queued, message: &AlertMessage) {
    if item.refresh || item.event.level == Level::Ok || !message.continues() {
        return;
    }
    let Some(digest) = item.tracked.as_deref() else {
        return;
    };
    let on_recovery = shared.channels.on_recovery(&item.options);
    let level = item.event.level.as_str();
    if repeat::repeat_of(Some(message), level, digest, &on_recovery).is_none() {
        return;
    }
    item.refresh = true;
    item.options.extend([
        (store::REFRESH.to_string(), "true".to_string()),
        (
            store::PREVIOUS_CHANNEL_ID.to_string(),
            message.channel_id.clone(),
        ),
        (store::PREVIOUS_TS.to_string(), message.ts.clone()),
    ]);
}

/// A redraw after a click draws the alert's latest event as the store
/// keeps it when the redraw is sent, not the one copied when the click
/// came: an event that was on its way then has been drawn since, and
/// drawing the older one over it would paint old news.
fn latest_event(item: &mut Queued, message: Option<&AlertMessage>) {
    let Some(latest) = message.and_then(|m| m.alert.as_deref()) else {
        return;
    };
    if latest == item.raw {
        return;
    }
    if let Ok(event) = kapacitor_formats::alert_json::decode(latest) {
        item.event = event;
        item.raw = latest.to_string();
    }
}

/// How an alert ends without being sent, if it does: it repeats the
/// alert's last event, or someone silenced the alert from its message (a
/// recovery is always sent, and ends the silence). A redraw of a clicked
/// message is sent while the alert has not recovered.
fn not_sent(shared: &Shared, item: &Queued, message: Option<&AlertMessage>) -> Option<Finished> {
    if item.refresh {
        // The alert recovered (and its message was forgotten) after the
        // click: drawing its firing event again would undo the recovery.
        if message.is_some_and(AlertMessage::continues) {
            return None;
        }
        let why = "a redraw after a click, not sent: the alert recovered first";
        return Some(Finished::new(0, Status::Superseded, why, item.attempts));
    }
    let level = item.event.level.as_str();
    if level != "OK" {
        if let Some(silence) = message.and_then(|m| m.silenced_at(store::unix_ms())) {
            shared.metrics.silenced();
            let why = format!(
                "silenced by {} until {}",
                silence.by,
                rfc3339_ms(silence.at)
            );
            return Some(Finished::new(0, Status::Silenced, &why, item.attempts));
        }
    }
    let digest = item.tracked.as_deref()?;
    let on_recovery = shared.channels.on_recovery(&item.options);
    let why = repeat::repeat_of(message, level, digest, &on_recovery)?;
    shared.metrics.repeated();
    Some(Finished::new(0, Status::Repeat, &why, item.attempts))
}

/// A time in milliseconds since the Unix epoch, as RFC 3339 in UTC.
fn rfc3339_ms(ms: u64) -> String {
    slack_alert_handler::timefmt::rfc3339((ms / 1000) as i64, 0)
}

/// How the attempt lets its claim go: the channel paced from when the
/// request left, a retry's wait.
fn release(
    id: u64,
    item: &Queued,
    verdict: &Verdict,
    left: Option<Instant>,
    fence: Option<Fence>,
) -> Release {
    let retry = match verdict.outcome {
        Attempt::Ended => None,
        // A refusal holds no claim and is not released; said as a retry.
        Attempt::Refused { at } => Some(Retry {
            wait: at.saturating_duration_since(Instant::now()),
            retry_after: false,
            rate_limited: false,
        }),
        Attempt::Retry {
            at,
            retry_after,
            rate_limited,
        } => Some(Retry {
            wait: at.saturating_duration_since(Instant::now()),
            retry_after,
            rate_limited,
        }),
    };
    Release {
        id,
        channel: item.channel.clone(),
        left: left.map(|at| SystemTime::now() - at.elapsed()),
        retry,
        attempts: item.attempts,
        fence,
    }
}

/// Lets the claim of an attempt to be tried again go, with the next group
/// commit; not waited for (this node's scheduler paces the channel and
/// waits out the retry; the store keeps them for a node that takes the
/// channel over). One that cannot be written lets the claim run out with
/// its lease instead.
fn let_go(shared: &Shared, release: Release) {
    let (id, channel) = (release.id, release.channel.clone());
    if let Err(e) = shared.commit.write(|store| store.released(release)) {
        if shared.in_outage() {
            debug!(
                alert = id,
                "the claim could not be let go during the store's outage: {e}"
            );
            return;
        }
        warn!(
            alert = id,
            channel, "the claim could not be let go; it runs out with its lease: {e}"
        );
    }
}

/// Tells the scheduler how the attempt went, and wakes the dispatcher.
fn settle(shared: &Shared, id: u64, item: &Queued, verdict: Verdict, left: Option<Instant>) {
    let mut dispatch = lock(&shared.dispatch);
    if let Some((id_key, name_key)) = verdict.alias {
        dispatch.aliases.insert(id_key, name_key);
    }
    match verdict.outcome {
        Attempt::Ended => {
            dispatch.queued.remove(&id);
        }
        Attempt::Retry { .. } | Attempt::Refused { .. } => {
            if let Some(kept) = dispatch.queued.get_mut(&id) {
                kept.attempts = item.attempts;
            }
        }
    }
    if let Some(at) = left {
        dispatch.scheduler.left(id, at);
    }
    dispatch.scheduler.done(id, verdict.outcome);
    drop(dispatch);
    shared.changed.notify_one();
}

/// One request: the alert with its message so far, for `on-recovery`
/// `update` and `thread` (a handler with `new` ignores it).
async fn attempt(
    plugin: &mut Instance,
    item: &Queued,
    message: Option<AlertMessage>,
) -> anyhow::Result<Result<Delivery, HandlerError>> {
    let mut options = match &message {
        // A redraw names the clicked message itself.
        Some(m) if m.continues() && !item.refresh => {
            store::with_previous(&item.options, &m.channel_id, &m.ts)
        }
        _ => item.options.clone(),
    };
    // Which plugin sends it is the host's to know, not the plugin's.
    options.retain(|(k, _)| k != store::HANDLER_KIND);
    options.extend(buttons(item, message.as_ref()));
    plugin.handle_alert_async(&item.event, &options).await
}

/// What the alert's buttons show, as the host-only options of WIT
/// `handle-alert`: the key they name it by, who acknowledged it, who
/// silenced it until when (while in force). A recovery shows none.
fn buttons(item: &Queued, message: Option<&AlertMessage>) -> Vec<(String, String)> {
    let mut options = vec![(store::ALERT_KEY.to_string(), store::button_key(&item.alert))];
    if let Some(m) = message.filter(|_| item.event.level != Level::Ok) {
        options.extend(m.mark_options(store::unix_ms()));
    }
    options
}

/// What the answer to attempt `item.attempts` of alert `id` means.
fn judge(
    shared: &Shared,
    id: u64,
    item: &Queued,
    answer: anyhow::Result<Result<Delivery, HandlerError>>,
    backoff: &Backoff,
) -> Verdict {
    let attempt = item.attempts;
    match answer {
        Ok(Ok(delivery)) => {
            shared.metrics.delivered();
            Verdict {
                alias: channel_alias(&delivery),
                ..Verdict::ended(delivered(id, item, &delivery))
            }
        }
        Ok(Err(error)) => match backoff.next(&error, attempt) {
            Next::GiveUp => {
                shared.metrics.failed(&error_code(&error));
                // Options wrong for the configuration: no request left.
                let requests = attempt - u32::from(error.refused_before_sending());
                Verdict::ended(Finished::new(
                    id,
                    Status::Failed,
                    &error.describe(),
                    requests,
                ))
            }
            Next::RetryAfter(wait) => {
                warn!(
                    alert = id,
                    attempt,
                    channel = item.channel,
                    error = error.describe(),
                    retry_in_ms = wait.as_millis() as u64,
                    "attempt failed; will retry"
                );
                let (retry_after, rate_limited) = match &error {
                    HandlerError::Transient(t) => {
                        (t.retry_after_seconds.is_some(), t.is_rate_limited())
                    }
                    _ => (false, false),
                };
                shared.metrics.retry(rate_limited);
                Verdict::retry(wait, retry_after, rate_limited)
            }
        },
        Err(trap) => {
            let detail = trap_reason(&trap);
            let verdict = if let Some(wait) = after_trap(&trap, attempt, backoff) {
                warn!(
                    alert = id,
                    attempt,
                    channel = item.channel,
                    error = detail,
                    retry_in_ms = wait.as_millis() as u64,
                    "attempt stopped by a host limit; will retry on a fresh instance"
                );
                shared.metrics.retry(false);
                Verdict::retry(wait, false, false)
            } else {
                shared.metrics.failed("trap");
                Verdict::ended(Finished::new(id, Status::Failed, &detail, attempt))
            };
            Verdict {
                dead: true,
                ..verdict
            }
        }
    }
}

/// When to try again after attempt `attempt` trapped: a trap caused by a
/// host limit (the call's deadline, the memory cap) is not the alert's
/// fault, so it is tried again on a fresh instance with backoff, up to
/// [`LIMIT_TRAP_ATTEMPTS`] attempts; any other trap ends the alert.
fn after_trap(trap: &anyhow::Error, attempt: u32, backoff: &Backoff) -> Option<Duration> {
    let limit = trap.downcast_ref::<Trapped>().is_some_and(|t| t.limit);
    if !limit || attempt >= LIMIT_TRAP_ATTEMPTS {
        return None;
    }
    Some(backoff.delay(attempt))
}

/// The ending of a delivery, with what it makes the alert's message.
fn delivered(id: u64, item: &Queued, delivery: &Delivery) -> Finished {
    let mut detail = format!(
        "{} {}",
        delivery.channel,
        delivery.ts.as_deref().unwrap_or_default()
    )
    .trim()
    .to_string();
    let mut warnings = delivery.warnings.clone();
    // Alertmanager left alerts of the group out of its payload
    // (`max_alerts`): said with the delivery, as the message says it.
    if item.tracked.is_some() {
        let truncated = item.event.fields.iter().find_map(|(k, v)| match v {
            FieldValue::Integer(n) if k == "truncatedAlerts" && *n > 0 => Some(*n),
            _ => None,
        });
        if let Some(n) = truncated {
            warnings.push(format!(
                "alertmanager-truncated: Alertmanager left {n} alerts of this group out of its payload"
            ));
        }
    }
    if !warnings.is_empty() {
        detail += &format!(" (warnings: {})", warnings.join(", "));
    }
    let done = Finished::new(id, Status::Delivered, &detail, item.attempts);
    // A redraw (after a click, or of a repeat after the alert's silence
    // changed in Alertmanager) changes nothing the store keeps.
    if item.refresh {
        return Finished {
            detail: format!("redrawn: {detail}"),
            ..done
        };
    }
    let done = match &item.tracked {
        Some(digest) => done.tracking(
            &item.alert,
            item.event.level.as_str(),
            digest,
            &delivery.workspace,
            delivery.channel_id.as_deref().zip(delivery.ts.as_deref()),
        ),
        None => done.remembering(
            &item.alert,
            matches!(item.event.level, Level::Ok),
            &delivery.workspace,
            delivery.channel_id.as_deref(),
            delivery.ts.as_deref(),
        ),
    };
    done.drawn_from(&item.raw)
}

/// The channel's id a delivery named, to pace with the channel's name.
fn channel_alias(delivery: &Delivery) -> Option<(String, String)> {
    delivery
        .channel_id
        .as_deref()
        .filter(|c| !delivery.channel.is_empty() && *c != delivery.channel)
        .map(|channel_id| {
            (
                pacing_key(&delivery.workspace, channel_id),
                pacing_key(&delivery.workspace, &delivery.channel),
            )
        })
}

/// The `code` label of a failure: Slack's error code when Slack refused,
/// else the handler error's case.
fn error_code(error: &HandlerError) -> String {
    match error {
        HandlerError::SlackRejected(r) => r.code.clone(),
        HandlerError::Transient(t) => t.code.clone(),
        other => other.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trapped(limit: bool) -> anyhow::Error {
        anyhow::Error::new(Trapped {
            limit,
            reason: "the component tried to use more than 64 MiB of memory and was stopped".into(),
        })
    }

    #[test]
    fn a_host_limit_trap_is_tried_again_twice_then_ends() {
        let backoff = Backoff::default();
        let first = after_trap(&trapped(true), 1, &backoff).expect("retried");
        assert!(
            first >= backoff.base / 2 && first <= backoff.base,
            "{first:?}"
        );
        assert!(after_trap(&trapped(true), 2, &backoff).is_some());
        assert_eq!(
            after_trap(&trapped(true), LIMIT_TRAP_ATTEMPTS, &backoff),
            None
        );
    }

    #[test]
    fn any_other_trap_ends_the_alert_at_once() {
        assert_eq!(after_trap(&trapped(false), 1, &Backoff::default()), None);
        let plain = anyhow::anyhow!("the component trapped: unreachable");
        assert_eq!(after_trap(&plain, 1, &Backoff::default()), None);
    }
}
