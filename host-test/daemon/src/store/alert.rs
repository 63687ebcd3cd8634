//! What the store keeps of an alert, in the terms every store shares:
//! pending alerts, how they ended, the message each alert key has in
//! Slack, failed alerts kept for sending again.

use serde::{Deserialize, Serialize};

/// A failed alert, kept (the newest, bounded by the store) so it can be
/// sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAlert {
    pub id: u64,
    #[serde(default)]
    pub at: u64,
    pub alert: String,
    pub options: Vec<(String, String)>,
    /// Why it failed.
    pub detail: String,
}

/// How an alert ended: the journal's `done` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    pub id: u64,
    pub status: Status,
    /// Where it went (channel and `ts`, Slack's warnings) or why it failed.
    pub detail: String,
    /// Requests made for it (0 when none was, e.g. a bad option; absent
    /// in journals written before it was recorded).
    #[serde(default)]
    pub attempts: u32,
    /// The alert's message from now on, replacing its key's earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<AlertMessage>,
    /// The alert key whose message is forgotten: the alert recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget: Option<String>,
    /// The claim it ends ([`crate::store::Claim::Granted`]'s `fence`): a
    /// shared store takes the ending only while that claim is the alert's
    /// current one, and records a late one as a duplicate send. `None`:
    /// not fenced (the journal's one node; an alert that failed before
    /// any claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<crate::store::Fence>,
}

impl Finished {
    /// An ending that changes no alert's message.
    pub fn new(id: u64, status: Status, detail: &str, attempts: u32) -> Finished {
        Finished {
            id,
            status,
            detail: detail.to_string(),
            attempts,
            message: None,
            forget: None,
            fence: None,
        }
    }

    /// The same ending, with what the delivery of an event of alert `key`
    /// changes in the message table. The one rule: a delivery of a recovery
    /// (level OK) forgets the key, so the alert's next firing starts a new
    /// message; a delivery of any other level that names its message
    /// (Web API: channel id and `ts`) becomes the key's message. Failures,
    /// and webhook deliveries of a firing, change nothing.
    pub fn remembering(
        mut self,
        key: &str,
        recovered: bool,
        workspace: &str,
        channel_id: Option<&str>,
        ts: Option<&str>,
    ) -> Finished {
        if self.status != Status::Delivered {
            return self;
        }
        if recovered {
            self.forget = Some(key.to_string());
        } else if let (Some(channel_id), Some(ts)) = (channel_id, ts) {
            self.message = Some(AlertMessage {
                key: key.to_string(),
                workspace: workspace.to_string(),
                channel_id: channel_id.to_string(),
                ts: ts.to_string(),
                ..AlertMessage::default()
            });
        }
        self
    }

    /// The same delivery of an alert whose repeats are not sent again: the
    /// key keeps its last event's `level` and `digest` (and its message,
    /// while firing), recovered or not, so a repeat of either is known.
    pub fn tracking(
        mut self,
        key: &str,
        level: &str,
        digest: &str,
        workspace: &str,
        message: Option<(&str, &str)>,
    ) -> Finished {
        if self.status != Status::Delivered {
            return self;
        }
        let (channel_id, ts) = match message {
            Some(m) if level != "OK" => m,
            _ => ("", ""),
        };
        self.forget = None;
        self.message = Some(AlertMessage {
            key: key.to_string(),
            workspace: workspace.to_string(),
            channel_id: channel_id.to_string(),
            ts: ts.to_string(),
            level: Some(level.to_string()),
            digest: Some(digest.to_string()),
            ..AlertMessage::default()
        });
        self
    }
}

impl Finished {
    /// The same ending, its message keeping `alert` (the event delivered,
    /// as Kapacitor's JSON) to be drawn again after a click; only a message
    /// that names a Slack message and has not recovered keeps it.
    pub fn drawn_from(mut self, alert: &str) -> Finished {
        if let Some(m) = self.message.as_mut().filter(|m| m.continues()) {
            m.alert = Some(alert.to_string());
        }
        self
    }
}

/// How the detail of an alert a storm message showed begins (then the
/// message's channel id and `ts`).
pub const SHOWN_IN_STORM: &str = "shown in storm ";

/// How an alert ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Delivered,
    Failed,
    /// Not sent: it repeats the alert's last delivered event (Alertmanager
    /// re-sends firing alerts every `repeat_interval`).
    Repeat,
    /// Not sent: someone silenced the alert from its message.
    Silenced,
    /// Not sent: a redraw of a clicked message whose alert recovered (its
    /// message was forgotten) before the redraw could go.
    Superseded,
}

impl Status {
    /// Its name, as the store keeps it and `GET /spool` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Repeat => "repeat",
            Status::Silenced => "silenced",
            Status::Superseded => "superseded",
        }
    }

    /// The status named `name` (an unknown one is a failure).
    pub fn named(name: &str) -> Status {
        match name {
            "delivered" => Status::Delivered,
            "repeat" => Status::Repeat,
            "silenced" => Status::Silenced,
            "superseded" => Status::Superseded,
            _ => Status::Failed,
        }
    }
}

/// An alert waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub id: u64,
    /// Its place in the order the store accepted alerts in, across nodes
    /// (the database's `seq`; the journal's id): a key's events are sent
    /// in this order.
    pub seq: u64,
    /// When it was accepted (ms since the Unix epoch; 0 if not recorded).
    pub at: u64,
    /// The alert as it was posted (Kapacitor's JSON).
    pub alert: String,
    pub options: Vec<(String, String)>,
    /// The channel (its pacing key, before any alias) the node that
    /// accepted it planned for it, when a shared store filed it under that
    /// channel's slot ([`crate::store::Claims::plan_by`]); `None`: the
    /// planner finds it from the options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// An alert's message: the one its later events edit or reply to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// The alert key ([`alert_key`]).
    pub key: String,
    pub workspace: String,
    /// The channel id Slack answered with, e.g. `C0123`.
    pub channel_id: String,
    pub ts: String,
    /// The level of the alert's last delivered event, and a digest of what
    /// it showed: kept for alerts whose repeats are not sent again
    /// (Alertmanager's), absent for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The last event delivered to it (Kapacitor's alert JSON), from which
    /// the message is drawn again after a click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// Who acknowledged the alert, and when: shown until it recovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Mark>,
    /// Who silenced the alert, and until when: its events are not sent
    /// until then, or until it recovers or is unsilenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silenced: Option<Mark>,
}

/// Who did something to an alert from its message, and a time (when, or
/// until when), in milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The chat service's user id (Slack: `U0123`).
    pub by: String,
    pub at: u64,
    /// For a silence of an Alertmanager alert: the silence's id in
    /// Alertmanager, which Unsilence expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<String>,
}

/// What a click did to an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    /// Acknowledged (by, when).
    Acknowledge(Mark),
    /// Silenced (by, until when).
    Silence(Mark),
    /// The silence ended.
    Unsilence,
}

impl Act {
    /// Its name, as metrics and logs say it.
    pub fn name(&self) -> &'static str {
        match self {
            Act::Acknowledge(_) => "acknowledge",
            Act::Silence(_) => "silence",
            Act::Unsilence => "unsilence",
        }
    }
}

impl AlertMessage {
    /// The message with what `act` does to it.
    pub fn acted(&mut self, act: &Act) {
        match act {
            Act::Acknowledge(mark) => self.acknowledged = Some(mark.clone()),
            Act::Silence(mark) => self.silenced = Some(mark.clone()),
            Act::Unsilence => self.silenced = None,
        }
    }

    /// Takes over the marks of the key's `earlier` message: an alert stays
    /// acknowledged or silenced across its events until it recovers.
    pub fn keeping_marks_of(&mut self, earlier: &AlertMessage) {
        if self.level.as_deref() == Some("OK") {
            return;
        }
        if self.acknowledged.is_none() {
            self.acknowledged.clone_from(&earlier.acknowledged);
        }
        if self.silenced.is_none() {
            self.silenced.clone_from(&earlier.silenced);
        }
    }

    /// Its marks as a message shows them at `now_ms`, as the host-only
    /// options of WIT `handle-alert` (and `handle-storm`): who acknowledged
    /// it and when, who silenced it until when (while in force), in
    /// seconds.
    pub fn mark_options(&self, now_ms: u64) -> Vec<(String, String)> {
        let seconds = |ms: u64| (ms / 1000).to_string();
        let mut options = Vec::new();
        if let Some(mark) = &self.acknowledged {
            options.push((ACKNOWLEDGED_BY.to_string(), mark.by.clone()));
            options.push((ACKNOWLEDGED_AT.to_string(), seconds(mark.at)));
        }
        if let Some(mark) = self.silenced_at(now_ms) {
            options.push((SILENCED_BY.to_string(), mark.by.clone()));
            options.push((SILENCED_UNTIL.to_string(), seconds(mark.at)));
        }
        options
    }

    /// The silence in force at `now_ms`, if any.
    pub fn silenced_at(&self, now_ms: u64) -> Option<&Mark> {
        self.silenced.as_ref().filter(|m| m.at > now_ms)
    }

    /// Whether a later event edits or replies to it: it names a Slack
    /// message, and its alert has not recovered since.
    pub fn continues(&self) -> bool {
        !self.ts.is_empty() && self.level.as_deref() != Some("OK")
    }
}

/// The handler options in which a host names an alert's earlier message
/// (WIT `handle-alert`); never part of an alert key, and never a caller's
/// to give (intake refuses them).
pub const PREVIOUS_CHANNEL_ID: &str = "previous-channel-id";
pub const PREVIOUS_TS: &str = "previous-ts";

/// The handler options in which a host tells the handler what the alert's
/// buttons show (WIT `handle-alert`): the key they name it by, its marks,
/// and that a call only redraws the clicked message. Never part of an
/// alert key, and never a caller's to give (intake refuses them).
pub const ALERT_KEY: &str = "alert-key";
pub const ACKNOWLEDGED_BY: &str = "acknowledged-by";
pub const ACKNOWLEDGED_AT: &str = "acknowledged-at";
pub const SILENCED_BY: &str = "silenced-by";
pub const SILENCED_UNTIL: &str = "silenced-until";
pub const REFRESH: &str = "refresh";

/// The option under which the host keeps which plugin delivers an alert
/// when it is not the `slack` plugin (a topic handler file of another
/// kind): part of the alert's key, never passed to the plugin. A sender
/// cannot give it: the Slack component refuses it as an unknown option.
pub const HANDLER_KIND: &str = "handler-kind";

/// `options` of a handler of `kind`: the `slack` plugin's as they are,
/// another plugin's with [`HANDLER_KIND`] naming it.
pub fn for_plugin(kind: &str, mut options: Vec<(String, String)>) -> Vec<(String, String)> {
    if kind != "slack" {
        options.push((HANDLER_KIND.to_string(), kind.to_string()));
    }
    options
}

/// The plugin kind `options` name (`None`: the `slack` plugin).
pub fn plugin_of(options: &[(String, String)]) -> Option<&str> {
    options
        .iter()
        .find(|(k, _)| k == HANDLER_KIND)
        .map(|(_, v)| v.as_str())
}

/// Every option that is the host's to set.
pub const HOST_OPTIONS: [&str; 8] = [
    PREVIOUS_CHANNEL_ID,
    PREVIOUS_TS,
    ALERT_KEY,
    ACKNOWLEDGED_BY,
    ACKNOWLEDGED_AT,
    SILENCED_BY,
    SILENCED_UNTIL,
    REFRESH,
];

/// The longest alert key a button carries as it is; Slack takes 2,000
/// characters in a button's value.
pub const BUTTON_KEY_MAX: usize = 1_900;

/// What an alert's buttons name it by: its key, or for a key longer than
/// [`BUTTON_KEY_MAX`] (handler options carrying long templates)
/// `sha256:` and the key's SHA-256 in hex, which [`matches_button`] and
/// the stores' `message` resolve.
pub fn button_key(key: &str) -> String {
    if key.len() <= BUTTON_KEY_MAX {
        return key.to_string();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{DIGEST_PREFIX}{hex}")
}

/// How a button's digest of a long key begins.
pub const DIGEST_PREFIX: &str = "sha256:";

/// Whether alert key `key` is the one a button named `named`.
pub fn matches_button(key: &str, named: &str) -> bool {
    key == named || (named.starts_with(DIGEST_PREFIX) && button_key(key) == named)
}

/// Whether an alert's options make it a redraw of a clicked message.
pub fn is_refresh(options: &[(String, String)]) -> bool {
    options.iter().any(|(k, v)| k == REFRESH && v == "true")
}

/// The handler options an alert key was made from (see [`alert_key`]).
pub fn key_options(key: &str) -> Option<Vec<(String, String)>> {
    let (_, options): (String, Vec<(String, String)>) = serde_json::from_str(key).ok()?;
    Some(options)
}

/// The key an alert's message is kept under: its `id` with the handler
/// options it was accepted with (sorted; without [`PREVIOUS_CHANNEL_ID`]
/// and [`PREVIOUS_TS`]), so two handlers of one alert id keep a message
/// each. Canonical JSON: `["cpu:nil",[["channel","#ops"]]]`.
pub fn alert_key(id: &str, options: &[(String, String)]) -> String {
    let mut options: Vec<&(String, String)> = options
        .iter()
        .filter(|(k, _)| !HOST_OPTIONS.contains(&k.as_str()))
        .collect();
    options.sort();
    serde_json::json!([id, options]).to_string()
}

/// `options` naming the message `ts` in channel `channel_id` as the
/// alert's earlier message (any such options already there are replaced).
pub fn with_previous(
    options: &[(String, String)],
    channel_id: &str,
    ts: &str,
) -> Vec<(String, String)> {
    options
        .iter()
        .filter(|(k, _)| k != PREVIOUS_CHANNEL_ID && k != PREVIOUS_TS)
        .cloned()
        .chain([
            (PREVIOUS_CHANNEL_ID.to_string(), channel_id.to_string()),
            (PREVIOUS_TS.to_string(), ts.to_string()),
        ])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_too_long_for_a_button_goes_as_its_digest() {
        let short = alert_key("cpu", &[]);
        assert_eq!(button_key(&short), short);
        assert!(matches_button(&short, &short));
        let long = alert_key("cpu", &[("title".into(), "x".repeat(3_000))]);
        let named = button_key(&long);
        assert!(named.starts_with("sha256:") && named.len() == 71, "{named}");
        assert!(matches_button(&long, &named));
        assert!(!matches_button(&short, &named));
        assert!(!matches_button(&long, "sha256:00"));
    }
}
