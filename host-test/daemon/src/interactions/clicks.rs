//! What a click does. The component reads the request (the signature, the
//! payload) and says what it asks; here it is done:
//!
//! 1. the alert's message is looked up in the store by the key the button
//!    carries; a key the store no longer keeps (the alert recovered, its
//!    message was forgotten) gets an ephemeral answer to the clicker alone
//!    and changes nothing;
//! 2. the mark (acknowledged by, silenced until, unsilenced) is recorded,
//!    and with it, in the same durable write, a redraw of the clicked
//!    message: the alert's last event again, as an alert of the same key
//!    with the host-only option `refresh`, so the scheduler sends its
//!    `chat.update` paced like any request to that channel, after any
//!    earlier event of the alert;
//! 3. only then is the click answered (Slack wants an answer within 3 s).
//!
//! A click is done once: its identity (Slack's `trigger_id` and
//! `action_ts`) is recorded with what it did, in the same write, and the
//! same click again (a replay within the signature window, an envelope
//! sent twice) is answered as done and changes nothing, on every node and
//! across restarts. The redraw draws the alert's latest event when it is
//! sent, not the one the click saw (see `serve::delivery`).
//!
//! Calls into the component run on the delivery runtime, where the
//! instances live, whichever runtime the click came in on.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alert_handler_host::{Action, Click, InteractionOutcome, Timestamp};
use tracing::{info, warn};

use super::screen::{Reason, Refusals};
use super::socket_mode::{self, BoxFuture, Peer};
use crate::commit::GroupCommit;
use crate::instances::Instances;
use crate::metrics::Metrics;
use crate::serve::storms::{self, StormSilence};
use crate::silences::{Alertmanagers, Matcher, NewSilence};
use crate::store::{self, Act, AlertMessage, Mark, PREVIOUS_CHANNEL_ID, PREVIOUS_TS, REFRESH};

/// What the clicker is told when the store no longer knows the alert.
pub const UNKNOWN_ALERT: &str = "This alert is no longer known to slack-alertd (it recovered, or its message was forgotten): nothing was changed.";

/// How a click (from the Request URL or Socket Mode) was handled: what intake
/// answers it with, or whether Socket Mode acknowledges its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// `200`: done, or signed but nothing to do (logged).
    Done,
    /// `401`: not verified; nothing changed.
    Refused,
    /// `503`: verified, but it could not be recorded now; nothing changed.
    Unavailable(String),
}

/// Does what clicks ask.
pub struct Clicks {
    commit: Arc<GroupCommit>,
    metrics: Arc<Metrics>,
    instances: Arc<Instances>,
    /// The delivery runtime, where the instances are called.
    runtime: tokio::runtime::Handle,
    /// Refusals, counted and logged quietly (a flood is not a line each).
    refusals: Arc<Refusals>,
    /// The Alertmanagers whose alerts serve receives (`--alertmanager-url`):
    /// a silence of one of their alerts is a silence there.
    alertmanagers: Option<Alertmanagers>,
}

impl Clicks {
    pub(crate) fn new(
        commit: Arc<GroupCommit>,
        metrics: Arc<Metrics>,
        instances: Arc<Instances>,
        runtime: tokio::runtime::Handle,
        alertmanagers: Option<Alertmanagers>,
    ) -> Arc<Clicks> {
        Arc::new(Clicks {
            commit,
            refusals: Refusals::new(metrics.clone()),
            metrics,
            instances,
            runtime,
            alertmanagers,
        })
    }

    /// A request Slack posted to the Request URL (`headers` as received,
    /// `body` raw): verified and read by the component, then done.
    pub async fn request(
        self: &Arc<Self>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Handled {
        let this = self.clone();
        let run = async move {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let now = Timestamp {
                seconds: now.as_secs() as i64,
                nanoseconds: now.subsec_nanos(),
            };
            let outcome = this
                .with_instance(|mut taken| async move {
                    let outcome = taken.instance.interaction_async(&headers, &body, now).await;
                    (taken, outcome)
                })
                .await;
            match outcome {
                Ok(outcome) => this.outcome(outcome).await,
                Err(e) => Handled::Unavailable(format!("{e:#}")),
            }
        };
        self.runtime
            .spawn(run)
            .await
            .unwrap_or_else(|e| Handled::Unavailable(e.to_string()))
    }

    /// Where requests to the Request URL that are refused are counted and
    /// logged.
    pub fn refusals(&self) -> &Arc<Refusals> {
        &self.refusals
    }

    /// Does what the component read from a request or an envelope.
    pub async fn outcome(&self, outcome: InteractionOutcome) -> Handled {
        match outcome {
            InteractionOutcome::Act(click) => match self.act(click).await {
                Ok(()) => Handled::Done,
                Err(e) => Handled::Unavailable(e),
            },
            InteractionOutcome::Ignore(why) => {
                self.metrics.interaction("ignored");
                info!(
                    reason = why,
                    "a request from Slack was verified and ignored"
                );
                Handled::Done
            }
            InteractionOutcome::Refuse(why) => {
                self.refusals.refused(Reason::Unverified, &why);
                Handled::Refused
            }
        }
    }

    /// Does what a verified click asks (see the module's doc); `Err` when
    /// it could not be recorded, and nothing changed.
    pub async fn act(&self, click: Click) -> Result<(), String> {
        // The same click again (a captured request replayed within the
        // signature window, an envelope Slack sent twice): answered as
        // done, and nothing changes.
        let seen = self.commit.read(|store| store.clicked(&click.identity));
        if seen.await.map_err(|e| e.to_string())? {
            self.metrics.interaction("repeated");
            info!(
                alert = click.alert,
                user = click.user,
                "a click already acted on came again (a replay, or sent twice); nothing changed"
            );
            return Ok(());
        }
        let job = self.commit.read(|store| store.message(&click.alert));
        let message = job.await.map_err(|e| e.to_string())?;
        let Some(message) = message.filter(|m| known(m, &click)) else {
            self.metrics.interaction("unknown-alert");
            info!(
                alert = click.alert,
                user = click.user,
                "a click on a message of an alert the store no longer knows; nothing changed"
            );
            self.tell(&click, UNKNOWN_ALERT).await;
            return Ok(());
        };
        let now = store::unix_ms();
        let act = match click.action {
            Action::Acknowledge => Act::Acknowledge(Mark {
                by: click.user.clone(),
                at: now,
                silence: None,
            }),
            Action::Silence(seconds) => Act::Silence(Mark {
                by: click.user.clone(),
                at: now.saturating_add(seconds.saturating_mul(1000)),
                silence: None,
            }),
            Action::Unsilence => Act::Unsilence,
        };
        // An Alertmanager alert's silence is a silence in Alertmanager: made
        // (or expired) there first; if Alertmanager cannot, the clicker is
        // told why and nothing is marked (nor tried again later).
        let (labels, here_only) = match alertmanager_labels(&message) {
            StormSilence::Here => (None, None),
            StormSilence::Alertmanager(labels) => (Some(labels), None),
            StormSilence::HereOnly(why) => (None, Some(why)),
        };
        let act = match (&self.alertmanagers, labels) {
            (Some(ams), Some(labels)) => {
                match in_alertmanager(ams, act, labels, &click, &message).await {
                    Ok(act) => act,
                    Err(why) => {
                        self.metrics.interaction("alertmanager-refused");
                        warn!(
                        alert = click.alert,
                        user = click.user,
                        "a silence from Slack could not be made in Alertmanager; nothing was marked: {why}"
                    );
                        let text = format!("Not silenced: Alertmanager could not take it ({why}). Nothing was changed; try again.");
                        self.tell(&click, &text).await;
                        return Ok(());
                    }
                }
            }
            _ => act,
        };
        // A storm of several groups: silenced here, and the clicker told
        // that Alertmanager was not asked.
        let here_only =
            here_only.filter(|_| self.alertmanagers.is_some() && matches!(act, Act::Silence(_)));
        let (name, redraw) = (act.name(), redraw(&message, &click));
        let redrawn = redraw.is_some();
        // The silence this click made in Alertmanager, if any.
        let made = match &act {
            Act::Silence(mark) => mark.silence.clone(),
            _ => None,
        };
        // The key itself (the button may name it by its digest).
        let key = &message.key;
        let identity = &click.identity;
        let written = self.commit.write(move |store| {
            let ticket = store.act(key, act, identity)?;
            match redraw {
                Some((alert, options)) => store.accept(&alert, options),
                None => Ok(ticket),
            }
        });
        let durable = match written {
            Ok((_, durable)) => durable.wait().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let (Some(ams), Some(made)) = (&self.alertmanagers, &made) {
            self.one_silence(ams, &message.key, made, durable.is_ok())
                .await;
        }
        durable?;
        self.metrics.interaction(name);
        info!(
            alert = click.alert,
            user = click.user,
            action = name,
            redrawn,
            "a click on an alert's message was recorded"
        );
        if let Some(why) = here_only {
            self.tell(&click, &why).await;
        }
        Ok(())
    }

    /// Keeps one silence per message in Alertmanager: the silence `made`
    /// for a click is expired again when the click could not be recorded
    /// (nothing is marked, so nothing may be silenced), or when the mark
    /// the store keeps names another (the same click taken by another
    /// node at once, which recorded its own first).
    async fn one_silence(&self, ams: &Alertmanagers, key: &str, made: &str, recorded: bool) {
        let kept = if recorded {
            let key = key.to_string();
            match self.commit.read(move |store| store.message(&key)).await {
                Ok(message) => message
                    .and_then(|m| m.silenced)
                    .and_then(|mark| mark.silence),
                // Unknown: left as it is.
                Err(_) => return,
            }
        } else {
            None
        };
        if kept.as_deref() == Some(made) {
            return;
        }
        match ams.expire(made).await {
            Ok(()) => info!(
                silence = made,
                "a silence made for a click that another recorded (or none could) was expired again"
            ),
            Err(e) => warn!(
                silence = made,
                "a silence made for a click not recorded could not be expired: {e}"
            ),
        }
    }

    /// Tells the clicker alone `text`, if the click says where.
    async fn tell(&self, click: &Click, text: &str) {
        let Some(url) = click.response_url.clone() else {
            return;
        };
        let text = text.to_string();
        let told = self
            .with_instance(|mut taken| async move {
                let told = taken.instance.notice_async(&url, &text).await;
                (taken, told)
            })
            .await;
        match told {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = e.describe(), "the clicker could not be told"),
            Err(e) => warn!("the clicker could not be told: {e:#}"),
        }
    }

    /// Runs `call` on an instance of the pool (given back unless the call
    /// trapped).
    async fn with_instance<T, F, Fut>(&self, call: F) -> anyhow::Result<T>
    where
        F: FnOnce(crate::instances::Taken) -> Fut,
        Fut: std::future::Future<Output = (crate::instances::Taken, anyhow::Result<T>)>,
    {
        let taken = self.instances.take().await?;
        let (taken, result) = call(taken).await;
        if result.is_ok() {
            self.instances.give(taken);
        }
        result
    }
}

/// An app-level token (`xapp-…`) for Socket Mode, read from a file; shown
/// nowhere (its `Debug` says only that it is set).
#[derive(Clone)]
pub struct AppToken(String);

impl std::fmt::Debug for AppToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppToken([redacted])")
    }
}

impl AppToken {
    /// The token in `path` (surrounding whitespace dropped). The error
    /// names the file and what is wrong, never the token.
    pub fn read(path: &std::path::Path) -> anyhow::Result<AppToken> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "--slack-app-token-file {}: cannot read it: {e}",
                path.display()
            )
        })?;
        let token = text.trim();
        if token.is_empty() {
            anyhow::bail!(
                "--slack-app-token-file {}: the file is empty",
                path.display()
            );
        }
        if !token.starts_with("xapp-") {
            anyhow::bail!(
                "--slack-app-token-file {}: not an app-level token (Socket Mode takes one that starts with xapp-, with the connections:write scope; a bot token xoxb- goes in the configuration's `token`)",
                path.display()
            );
        }
        Ok(AppToken(token.to_string()))
    }
}

/// Socket Mode's clicks: the pump's [`Peer`] over the component and
/// [`Clicks`].
pub struct SocketPeer {
    pub clicks: Arc<Clicks>,
    pub token: AppToken,
}

impl Peer for SocketPeer {
    fn open(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(async move {
            let token = self.token.0.clone();
            let url = self
                .clicks
                .with_instance(|mut taken| async move {
                    let url = taken.instance.socket_url_async(&token).await;
                    (taken, url)
                })
                .await?;
            url.map_err(|e| anyhow::anyhow!("{}", e.describe()))
        })
    }

    fn message(&self, text: String) -> BoxFuture<'_, socket_mode::Next> {
        Box::pin(async move {
            let read = self
                .clicks
                .with_instance(|mut taken| async move {
                    let read = taken.instance.socket_message_async(&text).await;
                    (taken, read)
                })
                .await;
            let read = match read {
                Ok(read) => read,
                Err(e) => {
                    // Not acknowledged: Slack sends the envelope again.
                    warn!("a Socket Mode message could not be read: {e:#}");
                    return socket_mode::Next::default();
                }
            };
            let done = match read.outcome {
                InteractionOutcome::Ignore(why) if why == "hello" => Handled::Done,
                outcome => self.clicks.outcome(outcome).await,
            };
            match done {
                Handled::Done | Handled::Refused => socket_mode::Next {
                    reply: read.reply,
                    reconnect: read.reconnect,
                },
                // Not acknowledged: Slack sends the envelope again.
                Handled::Unavailable(why) => {
                    warn!("a click over Socket Mode could not be recorded; Slack sends it again: {why}");
                    socket_mode::Next {
                        reply: None,
                        reconnect: read.reconnect,
                    }
                }
            }
        })
    }
}

/// Whether the click is on a message of the alert as the store keeps it:
/// firing (not recovered), and in the workspace the component named for
/// the click (the section whose secret signed it, or over Socket Mode
/// able to open it, naming the click's Slack workspace).
fn known(message: &AlertMessage, click: &Click) -> bool {
    message.level.as_deref() != Some("OK") && click.workspace == message.workspace
}

/// The redraw of the clicked message: the alert's last event again, with
/// the options of its key, `refresh`, and the clicked message named.
/// `None` when the store kept no event to draw (a message kept before
/// this version).
fn redraw(message: &AlertMessage, click: &Click) -> Option<(String, Vec<(String, String)>)> {
    let alert = message.alert.clone()?;
    let mut options = store::key_options(&message.key)?;
    options.extend([
        (REFRESH.to_string(), "true".to_string()),
        (PREVIOUS_CHANNEL_ID.to_string(), click.channel_id.clone()),
        (PREVIOUS_TS.to_string(), click.ts.clone()),
    ]);
    Some((alert, options))
}

/// Where a silence of the message's alert is made: in Alertmanager, on
/// the alert's labels, when it came from Alertmanager (`POST
/// /alertmanager`: task `alertmanager`, its labels as `labels.*`); on the
/// labels its alerts share for one Alertmanager group's storm; else here.
fn alertmanager_labels(message: &AlertMessage) -> StormSilence {
    let Some(alert) = message.alert.as_deref() else {
        return StormSilence::Here;
    };
    if storms::is_state(alert) {
        return storms::silence_of_state(alert);
    }
    let Ok(event) = kapacitor_formats::alert_json::decode(alert) else {
        return StormSilence::Here;
    };
    if event.task_name != slack_alert_handler::alertmanager::TASK_NAME {
        return StormSilence::Here;
    }
    let labels = storms::labels_of(&event);
    if labels.is_empty() {
        return StormSilence::Here;
    }
    StormSilence::Alertmanager(labels)
}

/// Who clicked, as a silence's `createdBy` names them: `@name (U0123)`,
/// or the user id alone when the payload gave no name.
fn clicker(click: &Click) -> String {
    match &click.user_name {
        Some(name) => format!("@{name} ({})", click.user),
        None => format!("Slack user {}", click.user),
    }
}

/// Does `act` in Alertmanager: a silence created with the alert's labels as
/// matchers, until the mark's time, by the clicker, its comment linking
/// the message (so a click tried again after a timeout finds the silence
/// the first made instead of making a second), or the message's silence
/// changed when it has one; an unsilence expires the silence the mark
/// keeps. The act, with the silence's id kept on its mark.
async fn in_alertmanager(
    ams: &Alertmanagers,
    act: Act,
    labels: Vec<(String, String)>,
    click: &Click,
    message: &AlertMessage,
) -> Result<Act, String> {
    match act {
        Act::Silence(mark) => {
            let now = store::unix_ms();
            let rfc3339 = |ms: u64| slack_alert_handler::timefmt::rfc3339((ms / 1000) as i64, 0);
            // Silenced already (from Slack, in Alertmanager): that silence
            // is changed, not a second one made.
            let id = message
                .silenced_at(now)
                .and_then(|mark| mark.silence.clone());
            let silence = NewSilence {
                id,
                matchers: labels
                    .into_iter()
                    .map(|(name, value)| Matcher {
                        name,
                        value,
                        is_regex: false,
                        is_equal: true,
                    })
                    .collect(),
                starts_at: rfc3339(now),
                ends_at: rfc3339(mark.at),
                created_by: clicker(click),
                // The same for a click tried again after a timeout: how
                // the silence that one made is found instead of a second.
                comment: format!(
                    "Silenced from Slack by {} on {}",
                    clicker(click),
                    click
                        .message_link
                        .clone()
                        .unwrap_or_else(|| format!("message {} {}", click.channel_id, click.ts)),
                ),
            };
            let id = ams.create(&silence).await?;
            Ok(Act::Silence(Mark {
                silence: Some(id),
                ..mark
            }))
        }
        Act::Unsilence => {
            if let Some(id) = message.silenced.as_ref().and_then(|m| m.silence.as_deref()) {
                ams.expire(id).await?;
            }
            Ok(Act::Unsilence)
        }
        other => Ok(other),
    }
}
