//! What the journal says, as one state machine: [`State::apply`] is the
//! only thing that changes it, for a record read back at replay and for a
//! record just made durable alike, so the two can never drift apart.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kapacitor_formats::aggregate::{Collected, Window};

use crate::store::record::{NewAlert, Record, MAX_FAILED, MAX_MESSAGES};
use crate::store::{Act, AlertMessage, FailedAlert, Finished, Pending, Status};

/// The state a journal's durable records add up to.
pub(crate) struct State {
    /// Ids below it were given out.
    pub(crate) next_id: u64,
    /// Pending alerts, with the size of the `accept` line that keeps each.
    pub(crate) pending: BTreeMap<u64, (Pending, u64)>,
    pub(crate) pending_bytes: u64,
    /// Final statuses seen, newest last, at most `keep_finished` of them,
    /// each numbered in the order it came (a cursor for paging).
    pub(crate) finished: VecDeque<(u64, Finished)>,
    next_finished: u64,
    pub(crate) keep_finished: usize,
    pub(crate) messages: Messages,
    /// Failed alerts that can be sent again, by id.
    pub(crate) failed: Failures,
    /// The `aggregate` handlers' open windows, by handler id.
    pub(crate) windows: BTreeMap<String, Window>,
    /// The clicks acted on lately.
    pub(crate) clicks: Clicks,
}

/// The identities of the clicks acted on within
/// [`crate::store::CLICKS_KEPT`] of the newest, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Clicks {
    by_age: std::collections::VecDeque<(u64, String)>,
    seen: std::collections::HashSet<String>,
}

impl Clicks {
    /// Records click `identity` acted on at `at` (ms): whether it is the
    /// first of its identity. Clicks older than the kept span go.
    pub(crate) fn record(&mut self, identity: String, at: u64) -> bool {
        let kept = crate::store::CLICKS_KEPT.as_millis() as u64;
        while self
            .by_age
            .front()
            .is_some_and(|(old, _)| old.saturating_add(kept) < at)
        {
            if let Some((_, old)) = self.by_age.pop_front() {
                self.seen.remove(&old);
            }
        }
        if !self.seen.insert(identity.clone()) {
            return false;
        }
        self.by_age.push_back((at, identity));
        true
    }

    /// Whether click `identity` was acted on.
    pub(crate) fn seen(&self, identity: &str) -> bool {
        self.seen.contains(identity)
    }

    /// The clicks kept, oldest first, as compaction writes them.
    pub(crate) fn oldest_first(&self) -> impl Iterator<Item = &(u64, String)> {
        self.by_age.iter()
    }
}

impl State {
    /// An empty journal's state, for a spool of size limit `limit`.
    pub(crate) fn new(limit: u64, keep_finished: usize) -> State {
        State {
            next_id: 1,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            finished: VecDeque::new(),
            next_finished: 1,
            keep_finished,
            messages: Messages::new(limit / 4),
            failed: Failures::new(limit / 8),
            windows: BTreeMap::new(),
            clicks: Clicks::default(),
        }
    }

    /// Applies one durable record; `line` is its journal line's length.
    pub(crate) fn apply(&mut self, record: Record, line: u64) {
        match record {
            Record::Accept {
                id,
                at,
                alert,
                options,
            } => self.add_pending(
                Pending {
                    id,
                    seq: id,
                    at,
                    alert,
                    options,
                    channel: None,
                },
                line,
            ),
            Record::Done(done) => {
                if let Some(alert) = self.remove_pending(done.id) {
                    if done.status == Status::Failed {
                        self.failed.keep_pending(alert, &done.detail);
                    }
                }
                self.messages.apply(&done);
                self.finished.push_back((self.next_finished, done));
                self.next_finished += 1;
                self.trim_finished();
            }
            Record::Message(message) => self.messages.keep(message),
            Record::Act { key, act, click } => {
                // A click already acted on (a replay, an envelope sent
                // again) changes nothing.
                let first = click.is_none_or(|(identity, at)| self.clicks.record(identity, at));
                if first {
                    self.messages.act(&key, &act);
                }
            }
            Record::Clicked { identity, at } => {
                self.clicks.record(identity, at);
            }
            Record::Ids { next } => self.next_id = self.next_id.max(next),
            Record::Failed(alert) => {
                self.next_id = self.next_id.max(alert.id + 1);
                self.failed.keep(alert);
            }
            Record::Resent { id, .. } => self.failed.remove(id),
            Record::Collect {
                handler,
                start_ms,
                event,
            } => self.collect(handler, start_ms, event),
            Record::Window { handler, window } => {
                self.windows.insert(handler, window);
            }
            Record::Emit {
                handler,
                accepts,
                collects,
                ..
            } => {
                self.windows.remove(&handler);
                for a in accepts {
                    let line = accept_line_len(&a);
                    self.add_pending(a.into(), line);
                }
                for (other, start_ms, event) in collects {
                    self.collect(other, start_ms, event);
                }
            }
        }
    }

    fn add_pending(&mut self, alert: Pending, line: u64) {
        self.next_id = self.next_id.max(alert.id + 1);
        self.pending_bytes += line;
        if let Some((_, was)) = self.pending.insert(alert.id, (alert, line)) {
            self.pending_bytes -= was;
        }
    }

    fn remove_pending(&mut self, id: u64) -> Option<Pending> {
        let (alert, line) = self.pending.remove(&id)?;
        self.pending_bytes -= line;
        Some(alert)
    }

    /// The event joins `handler`'s window, which opens at `start_ms` if
    /// none is open.
    fn collect(&mut self, handler: String, start_ms: u64, event: Collected) {
        self.windows
            .entry(handler)
            .or_insert_with(|| Window::open(start_ms))
            .add(event);
    }

    pub(crate) fn trim_finished(&mut self) {
        while self.finished.len() > self.keep_finished {
            self.finished.pop_front();
        }
    }
}

impl From<NewAlert> for Pending {
    fn from(a: NewAlert) -> Pending {
        Pending {
            id: a.id,
            seq: a.id,
            at: a.at,
            alert: a.alert,
            options: a.options,
            channel: None,
        }
    }
}

/// The size of the `accept` line that keeps `alert` pending.
fn accept_line_len(alert: &NewAlert) -> u64 {
    Record::Accept {
        id: alert.id,
        at: alert.at,
        alert: alert.alert.clone(),
        options: alert.options.clone(),
    }
    .line()
    .len() as u64
        + 1
}

/// The failed alerts kept for sending again, by id, bounded.
pub(crate) struct Failures {
    pub(crate) by_id: BTreeMap<u64, FailedAlert>,
    /// The size of their `failed` records in the journal.
    pub(crate) bytes: u64,
    max_bytes: u64,
}

impl Failures {
    fn new(max_bytes: u64) -> Failures {
        Failures {
            by_id: BTreeMap::new(),
            bytes: 0,
            max_bytes,
        }
    }

    fn record_size(alert: &FailedAlert) -> u64 {
        Record::Failed(alert.clone()).line().len() as u64 + 1
    }

    fn keep(&mut self, alert: FailedAlert) {
        self.remove(alert.id);
        self.bytes += Failures::record_size(&alert);
        self.by_id.insert(alert.id, alert);
        while self.by_id.len() > MAX_FAILED || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.by_id.pop_first() else {
                break;
            };
            self.bytes -= Failures::record_size(&oldest);
        }
    }

    /// Keeps a pending alert that failed with `detail`.
    fn keep_pending(&mut self, alert: Pending, detail: &str) {
        self.keep(FailedAlert {
            id: alert.id,
            at: alert.at,
            alert: alert.alert,
            options: alert.options,
            detail: detail.to_string(),
        });
    }

    fn remove(&mut self, id: u64) {
        if let Some(gone) = self.by_id.remove(&id) {
            self.bytes -= Failures::record_size(&gone);
        }
    }
}

/// The alert messages by key, oldest first, bounded (see [`MAX_MESSAGES`]).
pub(crate) struct Messages {
    /// Each key's message, with its age and the size of its record
    /// (measured once, when it is stored).
    pub(crate) by_key: HashMap<String, (u64, AlertMessage, u64)>,
    /// Keys by when their message was last stored.
    by_age: BTreeMap<u64, String>,
    next_age: u64,
    /// The size of their `message` records in the journal.
    pub(crate) bytes: u64,
    max_bytes: u64,
}

impl Messages {
    pub(crate) fn new(max_bytes: u64) -> Messages {
        Messages {
            by_key: HashMap::new(),
            by_age: BTreeMap::new(),
            next_age: 0,
            bytes: 0,
            max_bytes,
        }
    }

    pub(crate) fn record_size(message: &AlertMessage) -> u64 {
        Record::Message(message.clone()).line().len() as u64 + 1
    }

    pub(crate) fn remember(&mut self, message: AlertMessage) {
        self.forget(&message.key);
        let size = Messages::record_size(&message);
        self.bytes += size;
        self.by_age.insert(self.next_age, message.key.clone());
        self.by_key
            .insert(message.key.clone(), (self.next_age, message, size));
        self.next_age += 1;
        while self.by_key.len() > MAX_MESSAGES || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            if let Some((_, _, dropped)) = self.by_key.remove(&oldest) {
                self.bytes -= dropped;
            }
        }
    }

    /// Keeps `message` as its key's, with the key's marks (a storm
    /// message kept again after a click marked it).
    pub(crate) fn keep(&mut self, mut message: AlertMessage) {
        if let Some((_, earlier, _)) = self.by_key.get(&message.key) {
            message.keeping_marks_of(earlier);
        }
        self.remember(message);
    }

    pub(crate) fn forget(&mut self, key: &str) {
        if let Some((age, _, size)) = self.by_key.remove(key) {
            self.by_age.remove(&age);
            self.bytes -= size;
        }
    }

    fn apply(&mut self, done: &Finished) {
        if let Some(key) = &done.forget {
            self.forget(key);
        }
        if let Some(message) = &done.message {
            let mut message = message.clone();
            if let Some((_, earlier, _)) = self.by_key.get(&message.key) {
                message.keeping_marks_of(earlier);
            }
            self.remember(message);
        }
    }

    /// What a click did to `key`'s message, if it still has one.
    fn act(&mut self, key: &str, act: &Act) {
        if let Some((_, message, _)) = self.by_key.get(key) {
            let mut message = message.clone();
            message.acted(act);
            self.remember(message);
        }
    }

    /// The messages stored at age `from` or later, oldest first, with
    /// their ages.
    pub(crate) fn aged(&self, from: u64) -> impl Iterator<Item = (u64, &AlertMessage)> {
        self.by_age
            .range(from..)
            .filter_map(|(age, k)| self.by_key.get(k).map(|(_, m, _)| (*age, m)))
    }

    pub(crate) fn oldest_first(&self) -> impl Iterator<Item = &AlertMessage> {
        self.by_age
            .values()
            .filter_map(|k| self.by_key.get(k).map(|(_, m, _)| m))
    }
}
