//! Storms: when more alerts wait for one channel than Slack's pace lets
//! through promptly (more than `storm-after`), the waiting alerts and every
//! later one until the channel is calm are shown in one storm message,
//! edited in place, instead of one message a second for minutes. An
//! Alertmanager group of more than `storm-after` alerts in one payload is
//! a storm of its own from the start (one message for the group).
//!
//! This module is the storms' state, with no I/O: which alert goes to which
//! storm, each storm's lines, when a storm is calm and closes, and the
//! workspace's budget of `chat.update` calls. `storm_delivery.rs` sends what
//! it says, through the component's `handle-storm`.
//!
//! Each alert is still accepted, stored and ended on its own: it ends
//! `shown in storm <channel> <ts>` once a storm message showing it was
//! sent, in the same durable write that keeps the storm's state (its
//! message's `ts` and its lines, under the storm's key in the store's
//! messages), so a restart or another node continues the same message.
//!
//! A storm's sends are queued in the scheduler as requests of the storm's
//! channel (one id each, [`STORM_IDS`] and up): posting is paced as any
//! message to the channel, and at most one send of a storm is queued or in
//! flight: edits wait for it and then draw the latest state, so pending
//! edits of one message are never two.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alert_handler_host::{AlertEvent, Level, Storm as Drawn, StormLine, Timestamp};
use serde::{Deserialize, Serialize};

use super::shared::Queued;
use crate::scheduler::{Pace, Rules};
use crate::store::{self, AlertMessage};

/// Scheduler ids of storm sends start here (alert ids are far below).
pub(crate) const STORM_IDS: u64 = 1 << 62;

/// What the storm's state in the store begins with, so a redraw after a
/// click on a storm message is told from an alert's event.
const STATE_TAG: &str = "{\"storm\":";

/// How storms behave, beside each alert's `storm-after` and `storm-list`.
#[derive(Debug, Clone, Copy)]
pub struct StormRules {
    /// A storm closes once no alert of it changed for this long.
    pub calm: Duration,
    /// A recovered alert's line stays this long, then drops off (counted
    /// in the totals).
    pub resolved_kept: Duration,
    /// The workspace's `chat.update` budget (Slack's tier 3: about 50 a
    /// minute, short bursts).
    pub updates: Rules,
}

impl Default for StormRules {
    fn default() -> Self {
        StormRules {
            calm: Duration::from_secs(60),
            resolved_kept: Duration::from_secs(5 * 60),
            updates: Rules {
                // 50 a minute.
                interval: Duration::from_millis(1_200),
                burst: 3,
                margin: Duration::from_millis(30),
                max_margin: Duration::from_millis(600),
                max_in_flight: usize::MAX,
            },
        }
    }
}

impl StormRules {
    /// The rules with a `chat.update` budget of `n` edits a minute.
    pub fn with_updates_per_minute(mut self, n: u32) -> StormRules {
        self.updates.interval = Duration::from_secs(60) / n.max(1);
        self
    }
}

/// A storm as the store keeps it (the `alert` of its message): enough to
/// draw the message again after a restart, on any node.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// The state's version (and the tag telling it from an event).
    storm: u32,
    /// The pacing key of its channel.
    channel: String,
    /// The handler options of its first alert (channel, layout, ...).
    options: Vec<(String, String)>,
    /// Alertmanager's `groupKey`, for a group's storm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    started_ms: u64,
    closed: bool,
    /// Recovered lines dropped off (counted in the totals).
    #[serde(default)]
    dropped: u32,
    /// How many lines the message lists.
    list: u32,
    lines: Vec<Line>,
}

/// One alert's line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    /// The alert key.
    key: String,
    /// Its latest event, as stored (Kapacitor's alert JSON).
    alert: String,
    level: String,
    /// What it shows (Alertmanager's alerts): an event showing the same is
    /// a repeat and changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    since_ms: u64,
    changed_ms: u64,
    /// Its order of change: the highest is drawn first.
    seq: u64,
}

/// A storm: its state, what waits to be shown, and its message.
pub(crate) struct Storm {
    /// The key its message is kept under in the store (an alert key: its
    /// buttons name it).
    pub(crate) key: String,
    state: State,
    /// Alerts folded in since the last send: they end once a send shows
    /// them. Those of the send in flight are in `sending`.
    shown: Vec<(u64, Queued)>,
    pub(crate) sending: Vec<(u64, Queued)>,
    /// Its message so far: workspace, channel id, `ts`.
    pub(crate) message: Option<(String, String, String)>,
    /// A send is queued in the scheduler or in flight (its id).
    pub(crate) scheduled: Option<u64>,
    /// What the message shows is behind the state.
    dirty: bool,
    /// A click asked for it to be drawn again: the next send goes even if
    /// the store's state shows the same.
    redrawn: bool,
    last_change: Instant,
    next_seq: u64,
    /// The Alertmanager silence its mark names, as of its last send: a
    /// repeat then asks for a send, which asks Alertmanager whether the
    /// silence still holds (Alertmanager sends nothing of a group while it
    /// is silenced, so a repeat says it may be gone).
    silence: Option<String>,
}

/// What one storm send takes: the storm drawn, its options, what it shows.
pub(crate) struct Send {
    pub(crate) key: String,
    pub(crate) channel: String,
    pub(crate) drawn: Drawn,
    pub(crate) options: Vec<(String, String)>,
    /// The alert keys of the lines drawn, to mark silenced ones.
    pub(crate) line_keys: Vec<String>,
    /// The storm's message so far (an edit), or none (a post).
    pub(crate) message: Option<(String, String, String)>,
}

/// Every storm this node keeps, and the workspaces' update budgets.
pub(crate) struct Storms {
    pub(crate) rules: StormRules,
    storms: HashMap<String, Storm>,
    /// Open storms by where new alerts go: a channel's pacing key, or a
    /// pacing key and an Alertmanager `groupKey` ([`group_slot`]).
    open: HashMap<String, String>,
    /// The storm each alert key's line is in.
    lines_of: HashMap<String, String>,
    /// The storm of each scheduled send.
    ids: HashMap<u64, String>,
    next_id: u64,
    /// Each workspace's `chat.update` pace.
    budget: HashMap<String, Pace<Instant>>,
    /// The plugin draws storm messages (it exports `storms`): else no
    /// storm opens, and each alert keeps its own message.
    drawn: bool,
}

/// Where a group's new alerts go: its channel and its `groupKey`.
fn group_slot(channel: &str, group: &str) -> String {
    format!("{channel}\u{1f}{group}")
}

/// The Alertmanager `groupKey` of an event, if it came with one.
pub(crate) fn group_of(event: &AlertEvent) -> Option<&str> {
    event
        .context
        .iter()
        .find(|(k, _)| k == "groupKey")
        .map(|(_, v)| v.as_str())
        .filter(|g| !g.is_empty())
}

/// Whether a stored alert is a storm's state (a redraw after a click on
/// a storm message carries it).
pub(crate) fn is_state(alert: &str) -> bool {
    alert.starts_with(STATE_TAG)
}

/// Where a Silence on a storm's message is made, from its stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StormSilence {
    /// No alert of it came from Alertmanager: in serve alone.
    Here,
    /// One Alertmanager group's storm: one silence there, on the labels
    /// every one of its alerts shares (the group's, and any more in
    /// common), as Alertmanager's own "silence this group" would.
    Alertmanager(Labels),
    /// In serve alone, and why not in Alertmanager (for the clicker): its
    /// Alertmanager alerts share no label, or come from several groups,
    /// whose common labels could match far more than the storm.
    HereOnly(String),
}

/// Where a Silence on the storm whose state is `alert` is made.
pub(crate) fn silence_of_state(alert: &str) -> StormSilence {
    let Ok(state) = serde_json::from_str::<State>(alert) else {
        return StormSilence::Here;
    };
    let events: Vec<AlertEvent> = state
        .lines
        .iter()
        .filter_map(|l| kapacitor_formats::alert_json::decode(&l.alert).ok())
        .filter(|e| e.task_name == slack_alert_handler::alertmanager::TASK_NAME)
        .collect();
    if events.is_empty() {
        return StormSilence::Here;
    }
    if state.group.is_none() || events.len() < state.lines.len() {
        return StormSilence::HereOnly(
            "Silenced here only: this storm gathers alerts of several Alertmanager groups (or other alerts too), and a silence on what they share could match far more than it shows. Alertmanager still notifies its other receivers; silence the groups there."
                .into(),
        );
    }
    let common = common_labels(&events);
    if common.is_empty() {
        return StormSilence::HereOnly(
            "Silenced here only: this group's alerts share no label, so one silence in Alertmanager would match every alert. Alertmanager still notifies its other receivers."
                .into(),
        );
    }
    StormSilence::Alertmanager(common)
}

/// The pacing key of the channel a storm's state is for.
pub(crate) fn channel_of_state(alert: &str) -> Option<String> {
    serde_json::from_str::<State>(alert).ok().map(|s| s.channel)
}

/// The storm key a storm's state names.
pub(crate) fn key_of_state(alert: &str, options: &[(String, String)]) -> Option<String> {
    let state: State = serde_json::from_str(alert).ok()?;
    Some(storm_key(&state.channel, state.group.as_deref(), options))
}

/// The key a storm's message is kept under: an alert key (its buttons
/// name it so), of the storm's channel and group, with its first alert's
/// handler options.
fn storm_key(channel: &str, group: Option<&str>, options: &[(String, String)]) -> String {
    let name = match group {
        Some(group) => format!("storm {channel} group {group}"),
        None => format!("storm {channel}"),
    };
    store::alert_key(&name, options)
}

impl Storms {
    pub(crate) fn new(rules: StormRules) -> Storms {
        Storms {
            rules,
            storms: HashMap::new(),
            open: HashMap::new(),
            lines_of: HashMap::new(),
            ids: HashMap::new(),
            next_id: STORM_IDS,
            budget: HashMap::new(),
            drawn: true,
        }
    }

    /// The same, for a plugin that does (`true`) or does not draw storm
    /// messages.
    pub(crate) fn drawn_by_plugin(mut self, drawn: bool) -> Storms {
        self.drawn = drawn;
        self
    }

    /// Whether storms open at all.
    pub(crate) fn open_at_all(&self) -> bool {
        self.drawn
    }

    /// Storms kept now (open, or closed with lines still firing).
    pub(crate) fn len(&self) -> usize {
        self.storms.len()
    }

    /// The storm a new event of alert `key` for `channel` goes to: the one
    /// showing the alert's line, else its group's open storm, else its
    /// channel's.
    pub(crate) fn storm_for(&self, key: &str, channel: &str, group: Option<&str>) -> Option<&str> {
        if let Some(storm) = self.lines_of.get(key) {
            return Some(storm);
        }
        if let Some(storm) = group.and_then(|g| self.open.get(&group_slot(channel, g))) {
            return Some(storm);
        }
        self.open.get(channel).map(String::as_str)
    }

    /// Opens a storm for `channel` (or its Alertmanager `group`), with the
    /// options of `first`, its first alert, listing `list` lines. Its key.
    pub(crate) fn open(
        &mut self,
        channel: &str,
        group: Option<&str>,
        first: &Queued,
        list: u32,
        now: Instant,
    ) -> String {
        let options: Vec<(String, String)> = first
            .options
            .iter()
            .filter(|(k, _)| !store::HOST_OPTIONS.contains(&k.as_str()))
            .cloned()
            .collect();
        let key = storm_key(channel, group, &options);
        let slot = group.map_or_else(|| channel.to_string(), |g| group_slot(channel, g));
        self.open.insert(slot, key.clone());
        self.storms.entry(key.clone()).or_insert_with(|| Storm {
            key: key.clone(),
            state: State {
                storm: 1,
                channel: channel.to_string(),
                options,
                group: group.map(str::to_string),
                started_ms: store::unix_ms(),
                closed: false,
                dropped: 0,
                list,
                lines: Vec::new(),
            },
            shown: Vec::new(),
            sending: Vec::new(),
            message: None,
            scheduled: None,
            dirty: false,
            redrawn: false,
            last_change: now,
            next_seq: 0,
            silence: None,
        });
        key
    }

    /// Takes a storm back from the store (its message and state), as a
    /// restart or another node left it; `false` if `message` is not a
    /// storm's.
    pub(crate) fn restore(&mut self, message: &AlertMessage, now: Instant) -> bool {
        let Some(state) = message
            .alert
            .as_deref()
            .filter(|a| is_state(a))
            .and_then(|a| serde_json::from_str::<State>(a).ok())
        else {
            return false;
        };
        let firing = state.lines.iter().any(|l| l.level != "OK");
        if state.closed && !firing {
            return true;
        }
        let key = message.key.clone();
        if !state.closed {
            let slot = match &state.group {
                Some(g) => group_slot(&state.channel, g),
                None => state.channel.clone(),
            };
            self.open.insert(slot, key.clone());
        }
        for line in &state.lines {
            self.lines_of.insert(line.key.clone(), key.clone());
        }
        let next_seq = state.lines.iter().map(|l| l.seq + 1).max().unwrap_or(0);
        let kept = (!message.ts.is_empty()).then(|| {
            (
                message.workspace.clone(),
                message.channel_id.clone(),
                message.ts.clone(),
            )
        });
        self.storms.insert(
            key.clone(),
            Storm {
                key,
                state,
                shown: Vec::new(),
                sending: Vec::new(),
                message: kept,
                scheduled: None,
                dirty: false,
                redrawn: false,
                last_change: now,
                next_seq,
                silence: None,
            },
        );
        true
    }

    /// Whether this node keeps a storm of `key`.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.storms.contains_key(key)
    }

    /// Forgets the storms of the channels `gone` says (another node owns
    /// them now: it draws them): the ids of their sends queued in the
    /// scheduler, and the alerts they were to show, which wait again as
    /// this node's alerts of a channel it does not own.
    pub(crate) fn forget(&mut self, gone: impl Fn(&str) -> bool) -> (Vec<u64>, Vec<(u64, Queued)>) {
        let keys: Vec<String> = self
            .storms
            .iter()
            .filter(|(_, storm)| gone(&storm.state.channel))
            .map(|(key, _)| key.clone())
            .collect();
        let (mut sends, mut alerts) = (Vec::new(), Vec::new());
        for key in keys {
            let Some(mut storm) = self.storms.remove(&key) else {
                continue;
            };
            if let Some(id) = storm.scheduled {
                self.ids.remove(&id);
                sends.push(id);
            }
            alerts.append(&mut storm.shown);
            alerts.append(&mut storm.sending);
            self.open.retain(|_, k| *k != key);
            self.lines_of.retain(|_, k| *k != key);
        }
        (sends, alerts)
    }

    /// Shows alert `id` (an event of `item.alert`) in storm `key`. `false`
    /// when it repeats what the alert's line shows (Alertmanager's
    /// re-sends): nothing to draw, the caller ends it as a repeat.
    pub(crate) fn fold(&mut self, key: &str, id: u64, item: Queued, now: Instant) -> bool {
        let Some(storm) = self.storms.get_mut(key) else {
            return false;
        };
        let level = item.event.level.as_str().to_string();
        let now_ms = store::unix_ms();
        let seq = storm.next_seq;
        let state = &mut storm.state;
        let since_ms = began(&item.event).unwrap_or(now_ms);
        match state.lines.iter_mut().find(|l| l.key == item.alert) {
            Some(line) => {
                if line.level == level && item.tracked.is_some() && line.digest == item.tracked {
                    if storm.silence.is_some() {
                        storm.dirty = true;
                    }
                    return false;
                }
                if line.level == "OK" && level != "OK" {
                    // Firing again: its time anew.
                    line.since_ms = since_ms;
                }
                line.level.clone_from(&level);
                line.alert.clone_from(&item.raw);
                line.digest.clone_from(&item.tracked);
                line.changed_ms = now_ms;
                line.seq = seq;
            }
            None => {
                state.lines.push(Line {
                    key: item.alert.clone(),
                    alert: item.raw.clone(),
                    level,
                    digest: item.tracked.clone(),
                    since_ms,
                    changed_ms: now_ms,
                    seq,
                });
            }
        }
        storm.next_seq += 1;
        self.lines_of.insert(item.alert.clone(), key.to_string());
        storm.shown.push((id, item));
        storm.dirty = true;
        storm.last_change = now;
        true
    }

    /// Takes in what the store keeps of storm `key` (another node's sends,
    /// or an earlier start's): its message, and its lines merged with this
    /// node's (for each alert the latest change wins), so there is one
    /// storm message, edited, and no line is lost. Whether this node's
    /// storm shows anything the kept one does not (else a send would
    /// change nothing).
    pub(crate) fn merge(&mut self, key: &str, kept: Option<&AlertMessage>) -> bool {
        let kept_ms = self.rules.resolved_kept.as_millis() as u64;
        let Some(storm) = self.storms.get_mut(key) else {
            return false;
        };
        let redrawn = std::mem::take(&mut storm.redrawn);
        let stored = kept.filter(|k| !k.ts.is_empty()).and_then(|kept| {
            let state = kept
                .alert
                .as_deref()
                .filter(|a| is_state(a))
                .and_then(|a| serde_json::from_str::<State>(a).ok())?;
            Some((kept, state))
        });
        let Some((kept, stored)) = stored else {
            return true;
        };
        storm.message = Some((
            kept.workspace.clone(),
            kept.channel_id.clone(),
            kept.ts.clone(),
        ));
        let now_ms = store::unix_ms();
        let state = &mut storm.state;
        let mut news = redrawn || state.closed != stored.closed || state.dropped > stored.dropped;
        for line in &state.lines {
            let same = stored
                .lines
                .iter()
                .any(|l| l.key == line.key && l.level == line.level && l.alert == line.alert);
            news |= !same;
        }
        for theirs in &stored.lines {
            let expired =
                theirs.level == "OK" && now_ms.saturating_sub(theirs.changed_ms) >= kept_ms;
            match state.lines.iter_mut().find(|l| l.key == theirs.key) {
                Some(mine) if mine.changed_ms < theirs.changed_ms => {
                    *mine = Line {
                        seq: mine.seq,
                        ..theirs.clone()
                    };
                }
                Some(_) => {}
                None if !expired => {
                    state.lines.push(Line {
                        seq: theirs.seq.min(storm.next_seq),
                        ..theirs.clone()
                    });
                    self.lines_of.insert(theirs.key.clone(), key.to_string());
                }
                None => {}
            }
        }
        state.dropped = state.dropped.max(stored.dropped);
        state.started_ms = state.started_ms.min(stored.started_ms);
        news
    }

    /// Storm `key`'s mark names Alertmanager silence `id` (or none).
    pub(crate) fn silenced_in_alertmanager(&mut self, key: &str, id: Option<String>) {
        if let Some(storm) = self.storms.get_mut(key) {
            storm.silence = id;
        }
    }

    /// Marks storm `key` to be drawn again (after a click on it).
    pub(crate) fn redraw(&mut self, key: &str) -> bool {
        match self.storms.get_mut(key) {
            Some(storm) => {
                storm.dirty = true;
                storm.redrawn = true;
                true
            }
            None => false,
        }
    }

    /// The storms that need a send queued: each gets an id, which the
    /// caller adds to the scheduler (channel and key given).
    pub(crate) fn due_sends(&mut self) -> Vec<(u64, String, String)> {
        let mut due = Vec::new();
        for storm in self.storms.values_mut() {
            if storm.dirty && storm.scheduled.is_none() {
                let id = self.next_id;
                self.next_id += 1;
                storm.scheduled = Some(id);
                self.ids.insert(id, storm.key.clone());
                due.push((id, storm.state.channel.clone(), storm.key.clone()));
            }
        }
        due
    }

    /// Closes the storms that are calm at `now`, drops resolved lines kept
    /// long enough, and forgets storms with nothing left to show. Storms
    /// that closed need one more send (the caller schedules it).
    pub(crate) fn tick(&mut self, now: Instant) {
        let now_ms = store::unix_ms();
        let kept_ms = self.rules.resolved_kept.as_millis() as u64;
        let mut gone = Vec::new();
        for storm in self.storms.values_mut() {
            let busy = storm.scheduled.is_some() || !storm.shown.is_empty();
            if !storm.state.closed
                && !busy
                && now.duration_since(storm.last_change) >= self.rules.calm
            {
                storm.state.closed = true;
                storm.dirty = true;
                self.open.retain(|_, k| *k != storm.key);
            }
            let before = storm.state.lines.len();
            storm
                .state
                .lines
                .retain(|l| l.level != "OK" || now_ms.saturating_sub(l.changed_ms) < kept_ms);
            let dropped = (before - storm.state.lines.len()) as u32;
            storm.state.dropped += dropped;
            if dropped > 0 && !storm.state.closed {
                storm.dirty = true;
            }
            let firing = storm.state.lines.iter().any(|l| l.level != "OK");
            if storm.state.closed && !firing && !storm.dirty && !busy {
                gone.push(storm.key.clone());
            }
        }
        for key in gone {
            self.storms.remove(&key);
            self.lines_of.retain(|_, k| *k != key);
        }
    }

    /// The storm of scheduled send `id`.
    pub(crate) fn of_send(&self, id: u64) -> Option<&str> {
        self.ids.get(&id).map(String::as_str)
    }

    /// When an edit may go in `workspace` at `now` (its update budget), or
    /// `None` when it may now.
    pub(crate) fn update_wait(&self, workspace: &str, now: Instant) -> Option<Instant> {
        let ready = self
            .budget
            .get(workspace)
            .and_then(|p| p.ready(&self.rules.updates))?;
        (ready > now).then_some(ready)
    }

    /// Takes what storm send `id` sends: the storm drawn as of now, its
    /// options, its message; the alerts it shows move to `sending`. An
    /// edit counts against its workspace's budget.
    pub(crate) fn take_send(&mut self, id: u64, now: Instant) -> Option<Send> {
        let key = self.ids.get(&id)?.clone();
        let storm = self.storms.get_mut(&key)?;
        storm.dirty = false;
        storm.sending = std::mem::take(&mut storm.shown);
        if let Some((workspace, _, _)) = &storm.message {
            let rules = self.rules.updates;
            self.budget
                .entry(workspace.clone())
                .or_insert_with(|| Pace::new(&rules))
                .sent(now, &rules);
        }
        let (drawn, line_keys) = draw(&storm.key, &storm.state, store::unix_ms());
        let mut options = storm.state.options.clone();
        options.push((store::ALERT_KEY.to_string(), store::button_key(&storm.key)));
        if let Some((_, channel_id, ts)) = &storm.message {
            options = store::with_previous(&options, channel_id, ts);
        }
        Some(Send {
            key: storm.key.clone(),
            channel: storm.state.channel.clone(),
            drawn,
            options,
            line_keys,
            message: storm.message.clone(),
        })
    }

    /// Send `id` was sent: its message is now `message`, the alerts it
    /// showed are ended by the caller. The storm's state and message, to
    /// keep in the store.
    pub(crate) fn sent(
        &mut self,
        id: u64,
        message: (String, String, String),
    ) -> Option<AlertMessage> {
        let key = self.ids.remove(&id)?;
        let storm = self.storms.get_mut(&key)?;
        storm.scheduled = None;
        storm.sending.clear();
        storm.message = Some(message.clone());
        let (workspace, channel_id, ts) = message;
        Some(AlertMessage {
            key: storm.key.clone(),
            workspace,
            channel_id,
            ts,
            alert: Some(serde_json::to_string(&storm.state).unwrap_or_default()),
            ..AlertMessage::default()
        })
    }

    /// Send `id` is tried again later (the scheduler keeps it queued): what
    /// it showed waits again, and an edit's `Retry-After` holds the
    /// workspace's budget until `at`.
    pub(crate) fn retry(&mut self, id: u64, retry_after: Option<Instant>) {
        let Some(storm) = self.ids.get(&id).and_then(|key| self.storms.get_mut(key)) else {
            return;
        };
        let mut sending = std::mem::take(&mut storm.sending);
        sending.append(&mut storm.shown);
        storm.shown = sending;
        storm.dirty = true;
        if let (Some(at), Some((workspace, _, _))) = (retry_after, &storm.message) {
            let rules = self.rules.updates;
            self.budget
                .entry(workspace.clone())
                .or_insert_with(|| Pace::new(&rules))
                .retry(at, true, true, &rules);
        }
    }

    /// The message of storm `key` so far: workspace, channel id, `ts`.
    pub(crate) fn message_of(&self, key: &str) -> Option<(String, String, String)> {
        self.storms.get(key)?.message.clone()
    }

    /// Send `id` failed for good: the alerts it showed are ended as failed
    /// by the caller; the storm stays (a later change tries again).
    pub(crate) fn failed(&mut self, id: u64) {
        let Some(key) = self.ids.remove(&id) else {
            return;
        };
        if let Some(storm) = self.storms.get_mut(&key) {
            storm.scheduled = None;
            storm.sending.clear();
        }
    }

    /// The alerts waiting to be shown in storm `key` whose key is not yet a
    /// line of another event: those that may have a message of their own.
    pub(crate) fn waiting(&self, key: &str) -> Vec<(u64, Queued)> {
        self.storms
            .get(key)
            .map(|s| s.shown.clone())
            .unwrap_or_default()
    }

    /// Takes alert `id` back out of storm `key` before it is shown: its
    /// alert has a message of its own that its events edit or reply to
    /// (`on-recovery` `update` or `thread`), so it goes there instead. Its
    /// line goes too, if this event made it.
    pub(crate) fn pull_out(&mut self, key: &str, id: u64) -> Option<Queued> {
        let storm = self.storms.get_mut(key)?;
        let at = storm.shown.iter().position(|(i, _)| *i == id)?;
        let (_, item) = storm.shown.remove(at);
        let made_by_it = storm
            .state
            .lines
            .iter()
            .position(|l| l.key == item.alert && l.alert == item.raw);
        if let Some(line) = made_by_it {
            let others = storm
                .shown
                .iter()
                .any(|(_, other)| other.alert == item.alert);
            if !others {
                storm.state.lines.remove(line);
                self.lines_of.remove(&item.alert);
            }
        }
        Some(item)
    }

    /// The alerts the send of storm `key` in flight shows.
    pub(crate) fn sending(&self, key: &str) -> Vec<(u64, Queued)> {
        self.storms
            .get(key)
            .map(|s| s.sending.clone())
            .unwrap_or_default()
    }
}

/// When the event's alert began firing: its time less how long it has
/// fired (Kapacitor's `duration`), in ms since the Unix epoch.
fn began(event: &AlertEvent) -> Option<u64> {
    let at = u64::try_from(event.time.seconds).ok()? * 1000
        + u64::from(event.time.nanoseconds / 1_000_000);
    let fired = u64::try_from(event.duration.max(0)).ok()? / 1_000_000;
    Some(at.saturating_sub(fired))
}

/// A time in ms since the Unix epoch, as the WIT's timestamp.
pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp {
        seconds: (ms / 1000) as i64,
        nanoseconds: ((ms % 1000) * 1_000_000) as u32,
    }
}

/// The storm as the component draws it at `now_ms`: its counts and its
/// first `list` lines, newest change first; and those lines' alert keys.
fn draw(key: &str, state: &State, now_ms: u64) -> (Drawn, Vec<String>) {
    let mut lines: Vec<&Line> = state.lines.iter().collect();
    lines.sort_by_key(|l| std::cmp::Reverse(l.seq));
    let mut firing: Vec<(Level, u32)> = Vec::new();
    for level in [Level::Critical, Level::Warning, Level::Info] {
        let n = lines.iter().filter(|l| l.level == level.as_str()).count() as u32;
        if n > 0 {
            firing.push((level, n));
        }
    }
    let list = state.list.max(1) as usize;
    let mut drawn = Vec::new();
    let mut keys = Vec::new();
    for line in lines.iter().take(list) {
        let Ok(event) = kapacitor_formats::alert_json::decode(&line.alert) else {
            continue;
        };
        keys.push(line.key.clone());
        drawn.push(StormLine {
            event,
            since: timestamp(line.since_ms),
            silenced_until: None,
        });
    }
    let more = (lines.len() - drawn.len()) as u32;
    let (group_labels, common_labels) = labels(state, &drawn);
    (
        Drawn {
            key: key.to_string(),
            started: timestamp(state.started_ms),
            now: timestamp(now_ms),
            closed: state.closed,
            group_labels,
            common_labels,
            firing,
            resolved: lines.iter().filter(|l| l.level == "OK").count() as u32 + state.dropped,
            total: lines.len() as u32 + state.dropped,
            lines: drawn,
            more,
        },
        keys,
    )
}

pub(crate) type Labels = Vec<(String, String)>;

/// An Alertmanager alert's labels (its `labels.*` context).
pub(crate) fn labels_of(event: &AlertEvent) -> Labels {
    event
        .context
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("labels.")?.to_string(), v.clone())))
        .collect()
}

/// The labels every one of `events` has (none for no events).
fn common_labels<E: std::borrow::Borrow<AlertEvent>>(events: &[E]) -> Labels {
    let Some((first, rest)) = events.split_first() else {
        return Vec::new();
    };
    let mut common = labels_of(first.borrow());
    for event in rest {
        let these = labels_of(event.borrow());
        common.retain(|pair| these.contains(pair));
    }
    common
}

/// A group's labels (its `group`, `k=v,k2=v2`) and the labels every line
/// shown shares (Alertmanager's `commonLabels` for the payload), for a
/// group's storm; none for a channel's.
fn labels(state: &State, lines: &[StormLine]) -> (Labels, Labels) {
    if state.group.is_none() {
        return (Vec::new(), Vec::new());
    }
    let events: Vec<&AlertEvent> = lines.iter().map(|l| &l.event).collect();
    let common = common_labels(&events);
    let group = lines
        .first()
        .map(|l| {
            l.event
                .group
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    (group, common)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: &str, level: &str) -> Queued {
        let raw = serde_json::json!({
            "id": id, "message": format!("{id} is {level}"), "details": "",
            "time": "2026-12-06T10:00:00Z", "duration": 60_000_000_000u64, "level": level,
            "data": {"series": [{"name": "cpu", "columns": ["time"], "values": [["2026-12-06T10:00:00Z"]]}]}
        })
        .to_string();
        let event = kapacitor_formats::alert_json::decode(&raw).unwrap();
        Queued {
            alert: store::alert_key(id, &[]),
            channel: "ops #ops".into(),
            home: "ops #ops".into(),
            seq: 0,
            event,
            raw,
            options: Vec::new(),
            refresh: false,
            attempts: 0,
            tracked: None,
            plugin: None,
        }
    }

    #[test]
    fn a_storm_lists_newest_changes_first_and_counts_levels() {
        let mut storms = Storms::new(StormRules::default());
        let now = Instant::now();
        let key = storms.open("ops #ops", None, &queued("a", "CRITICAL"), 2, now);
        for (i, (id, level)) in [("a", "CRITICAL"), ("b", "WARNING"), ("c", "CRITICAL")]
            .into_iter()
            .enumerate()
        {
            assert!(storms.fold(&key, i as u64, queued(id, level), now));
        }
        // a recovers: its line changes, and goes first.
        assert!(storms.fold(&key, 9, queued("a", "OK"), now));
        let due = storms.due_sends();
        assert_eq!(due.len(), 1);
        let send = storms.take_send(due[0].0, now).unwrap();
        let ids: Vec<&str> = send
            .drawn
            .lines
            .iter()
            .map(|l| l.event.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(send.drawn.more, 1);
        assert_eq!(send.drawn.total, 3);
        assert_eq!(send.drawn.resolved, 1);
        assert_eq!(
            send.drawn.firing,
            vec![(Level::Critical, 1), (Level::Warning, 1)]
        );
        assert!(send.message.is_none(), "a post first");
        assert_eq!(storms.sending(&key).len(), 4);
    }

    #[test]
    fn one_send_at_a_time_and_an_edit_spends_the_budget() {
        let mut storms = Storms::new(StormRules::default());
        let now = Instant::now();
        let key = storms.open("ops #ops", None, &queued("a", "CRITICAL"), 50, now);
        storms.fold(&key, 1, queued("a", "CRITICAL"), now);
        let (id, _, _) = storms.due_sends()[0].clone();
        storms.take_send(id, now).unwrap();
        storms.fold(&key, 2, queued("b", "CRITICAL"), now);
        assert!(
            storms.due_sends().is_empty(),
            "never two sends of one storm"
        );
        let kept = storms
            .sent(id, ("ops".into(), "C1".into(), "1.1".into()))
            .unwrap();
        assert!(is_state(kept.alert.as_deref().unwrap()));
        let (next, _, _) = storms.due_sends()[0].clone();
        let send = storms.take_send(next, now).unwrap();
        assert_eq!(send.message.as_ref().unwrap().2, "1.1");
        assert!(send
            .options
            .iter()
            .any(|(k, v)| k == "previous-ts" && v == "1.1"));
        // Three edits at once (the burst), then the next waits.
        assert_eq!(storms.update_wait("ops", now), None);
        storms.retry(next, Some(now + Duration::from_secs(5)));
        assert!(storms.update_wait("ops", now).is_some());
    }

    #[test]
    fn a_calm_storm_closes_and_a_restart_takes_it_back() {
        let rules = StormRules {
            calm: Duration::from_millis(0),
            ..StormRules::default()
        };
        let mut storms = Storms::new(rules);
        let now = Instant::now();
        let key = storms.open("ops #ops", None, &queued("a", "CRITICAL"), 50, now);
        storms.fold(&key, 1, queued("a", "CRITICAL"), now);
        let (id, _, _) = storms.due_sends()[0].clone();
        storms.take_send(id, now);
        let kept = storms
            .sent(id, ("ops".into(), "C1".into(), "1.1".into()))
            .unwrap();
        storms.tick(now);
        assert_eq!(storms.storm_for("x", "ops #ops", None), None, "closed");
        assert_eq!(
            storms.storm_for(&store::alert_key("a", &[]), "ops #ops", None),
            Some(key.as_str()),
            "a line still firing stays with its storm"
        );
        let mut again = Storms::new(StormRules::default());
        assert!(again.restore(&kept, now));
        assert_eq!(again.storm_for("x", "ops #ops", None), Some(key.as_str()));
    }

    /// A Silence on a storm: one Alertmanager group's storm is silenced
    /// there on the labels its alerts share; a storm of several groups, or
    /// of a group sharing nothing, only here (and says why); a storm of
    /// Kapacitor's alerts here, as before.
    #[test]
    fn a_storm_is_silenced_in_alertmanager_only_as_one_group() {
        let am = |instance: &str, extra: Option<(&str, &str)>| {
            let mut context = serde_json::json!({
                "labels.alertname": "DiskFull", "labels.instance": instance, "groupKey": "{}:{alertname=\"DiskFull\"}"
            });
            if let Some((k, v)) = extra {
                context[format!("labels.{k}")] = serde_json::json!(v);
            }
            serde_json::json!({"id": instance, "message": "m", "time": "2026-12-06T10:00:00Z",
                "level": "CRITICAL", "taskName": "alertmanager", "context": context,
                "data": {"series": []}})
            .to_string()
        };
        let state = |group: Option<&str>, alerts: Vec<String>| {
            let lines: Vec<serde_json::Value> = alerts
                .into_iter()
                .enumerate()
                .map(|(i, alert)| {
                    serde_json::json!({"key": format!("k{i}"), "alert": alert, "level": "CRITICAL",
                        "since_ms": 0, "changed_ms": 0, "seq": i})
                })
                .collect();
            serde_json::json!({"storm": 1, "channel": "ops #ops", "options": [], "group": group,
                "started_ms": 0, "closed": false, "list": 50, "lines": lines})
            .to_string()
        };
        let group = Some("{}:{alertname=\"DiskFull\"}");
        let one = state(
            group,
            vec![
                am("db1", Some(("team", "storage"))),
                am("db2", Some(("team", "storage"))),
            ],
        );
        assert_eq!(
            silence_of_state(&one),
            StormSilence::Alertmanager(vec![
                ("alertname".into(), "DiskFull".into()),
                ("team".into(), "storage".into())
            ])
        );
        let several = state(None, vec![am("db1", None), am("db2", None)]);
        assert!(
            matches!(silence_of_state(&several), StormSilence::HereOnly(why) if why.contains("several"))
        );
        let nothing_shared = state(
            group,
            vec![
                serde_json::json!({"id": "a", "message": "m", "time": "2026-12-06T10:00:00Z", "level": "CRITICAL",
                    "taskName": "alertmanager", "context": {"labels.a": "1"}, "data": {"series": []}})
                .to_string(),
                serde_json::json!({"id": "b", "message": "m", "time": "2026-12-06T10:00:00Z", "level": "CRITICAL",
                    "taskName": "alertmanager", "context": {"labels.b": "2"}, "data": {"series": []}})
                .to_string(),
            ],
        );
        assert!(
            matches!(silence_of_state(&nothing_shared), StormSilence::HereOnly(why) if why.contains("share no label"))
        );
        let kapacitor = state(None, vec![queued("cpu", "CRITICAL").raw]);
        assert_eq!(silence_of_state(&kapacitor), StormSilence::Here);
    }
}
