//! The durable spool: an alert the host accepted stays on disk until Slack
//! confirms it or it fails for good. An append-only journal, one JSON line
//! per record ([`crate::store::record`], the writes every store stages):
//!
//! - `{"op":"accept","id":7,"alert":"<the alert JSON>","options":[...]}`
//! - `{"op":"done","id":7,"status":"delivered","detail":"...","attempts":1,
//!   "message":{"key":"...","workspace":"alerts","channel_id":"C0123","ts":"1700000000.000001"}}`
//!   (`message` or `"forget":"<key>"` only when the delivery changed the
//!   alert's message, see below)
//! - `{"op":"message",...}`, `{"op":"window",...}`, `{"op":"failed",...}`
//!   and `{"op":"ids","next":42}` (the first line), written by compaction,
//!   and `collect`, `emit`, `resent` for aggregates and resends.
//!
//! **Write, then apply.** A write is staged in memory and numbered (a
//! [`Ticket`]); the group commit ([`crate::commit`]) appends every staged
//! record in one write and makes them durable with one fsync
//! ([`Spool::begin_sync`], the fsync outside the lock, [`Spool::end_sync`]).
//! Only then are they applied to the state ([`state::State::apply`], the
//! same function replay uses), so what the spool shows, and what serve
//! delivers, is exactly what is on disk. If the append or the fsync fails
//! (a full disk), the journal is cut back to its last durable record, the
//! records of that batch are dropped (their writers are told, none of them
//! takes effect), and the spool says why ([`Spool::trouble`]) until a
//! write succeeds again.
//!
//! Replaying the journal at start ([`replay`]) gives back the state. A last
//! line cut short by a crash is cut off (and the cut fsynced), so the next
//! record starts on its own line; a damaged line anywhere else stops the
//! start with its line number, since records were lost. When nothing is
//! pending and the journal has grown past half its size limit, or when it
//! would pass its limit, it is rewritten with only what the state needs
//! (the next id, alert messages, windows, failed alerts kept, pending
//! alerts); if that is still too big the spool says it is full. The history
//! of finished alerts kept in memory is bounded (`--keep-finished`, at
//! replay too). Tokens never reach the spool: it holds alerts and options,
//! not the configuration.
//!
//! The spool also keeps, per alert key (see [`alert_key`]), the alert's
//! message (`on-recovery` `update` / `thread`: the message later events
//! edit or reply to), in the same line as the `done` record of the delivery
//! that made it, so a crash never leaves one without the other.
//!
//! A crash between Slack's confirmation and the `done` record's fsync
//! re-sends that one alert after restart.

mod compact;
mod file;
mod replay;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use kapacitor_formats::aggregate::{Collected, Window};

use crate::store::record::{NewAlert, Record};
pub use crate::store::record::{KEEP_FINISHED, MAX_FAILED, MAX_MESSAGES};
pub(crate) use crate::store::unix_ms;
use crate::store::{
    self, Act, AlertMessage, Claim, ClaimRequest, Claims, Commits, Entry, FailedAlert, Finished,
    Health, Job, Listing, Lists, Page, Pending, Reads, StoreError, SyncStart, Ticket, Writes,
};
use file::{lock_dir, JournalFile};
pub use file::{DiskOp, Faults};
use state::State;

/// How a spool is opened.
#[derive(Clone)]
pub struct Settings {
    /// The journal's size limit in bytes.
    pub limit: u64,
    /// How many finished alerts it remembers (the newest).
    pub keep_finished: usize,
    /// Makes chosen disk operations fail (tests).
    pub faults: Option<Faults>,
}

impl Settings {
    pub fn new(limit: u64) -> Settings {
        Settings {
            limit,
            keep_finished: KEEP_FINISHED,
            faults: None,
        }
    }
}

/// The spool in one directory.
pub struct Spool {
    /// What the durable records add up to.
    state: State,
    /// `None` when opened read-only.
    file: Option<JournalFile>,
    limit: u64,
    /// Records written but not yet appended, oldest first, each with its
    /// line's length, and their lines.
    staged: Vec<(Record, u64)>,
    staged_bytes: Vec<u8>,
    /// Records appended and being fsynced (outside the lock): applied when
    /// the sync succeeds, dropped when it fails.
    in_flight: Vec<(Record, u64)>,
    in_flight_bytes: u64,
    /// Writes made since the spool opened (the last ticket's number).
    written: u64,
    /// The next id to give out (ids of dropped records are not reused).
    next_id: u64,
    /// Why the last append or fsync failed, while no later one succeeded.
    trouble: Option<String>,
    /// Where serve reports writes that fail (a full disk), as an outage.
    outage: Arc<crate::store::outage::Outage>,
    /// Nothing is pending and the journal grew: compact at the next sync.
    compact_wanted: bool,
    /// The newest id given to the planner ([`Claims::arrivals`]).
    handed: u64,
    /// Held while the spool is open for writing: one writer at a time.
    _lock: Option<std::fs::File>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, replaying its journal.
    pub fn open(dir: &Path, limit: u64) -> Result<Spool> {
        Spool::open_with(dir, Settings::new(limit))
    }

    /// [`Spool::open`] with all its settings.
    pub fn open_with(dir: &Path, settings: Settings) -> Result<Spool> {
        use anyhow::Context;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the spool directory {}", dir.display()))?;
        let lock = lock_dir(dir)?;
        let path = dir.join("journal.jsonl");
        let (state, whole) =
            replay::replay(&path, State::new(settings.limit, settings.keep_finished))?;
        let file = JournalFile::open(&path, whole, settings.faults)?;
        let mut spool = Spool::new(state, Some(file), settings.limit);
        spool._lock = Some(lock);
        Ok(spool)
    }

    /// Reads the spool in `dir` without changing it (a `serve` may be
    /// writing to it): for showing it. Writing fails. It keeps every ending
    /// the journal holds, not only the newest [`KEEP_FINISHED`]: a `serve`
    /// with a larger `--keep-finished` shows them all, and so does this
    /// (the journal's size limit bounds them).
    pub fn open_read_only(dir: &Path) -> Result<Spool> {
        let path = dir.join("journal.jsonl");
        let (state, _) = replay::replay(&path, State::new(u64::MAX, usize::MAX))?;
        Ok(Spool::new(state, None, u64::MAX))
    }

    fn new(state: State, file: Option<JournalFile>, limit: u64) -> Spool {
        Spool {
            next_id: state.next_id,
            state,
            file,
            limit,
            staged: Vec::new(),
            staged_bytes: Vec::new(),
            in_flight: Vec::new(),
            in_flight_bytes: 0,
            written: 0,
            trouble: None,
            outage: Arc::default(),
            compact_wanted: false,
            handed: 0,
            _lock: None,
        }
    }

    /// Stages `record` for the next sync; `bounded` writes are refused when
    /// the spool could not keep them within its limit even compacted.
    fn stage(&mut self, record: Record, bounded: bool) -> Result<u64, StoreError> {
        let Some(file) = &self.file else {
            return Err(StoreError::Io(anyhow::anyhow!(
                "the spool was opened read-only"
            )));
        };
        let line = record.line();
        let size = line.len() as u64 + 1;
        // The journal holds what is in flight already; compacted, it would
        // hold the state and what is in flight (until it is applied).
        let queued = self.staged_bytes.len() as u64 + size;
        if bounded
            && file.len() + queued > self.limit
            && self.state.live_bytes() + self.in_flight_bytes + queued > self.limit
        {
            return Err(StoreError::JournalFull { limit: self.limit });
        }
        self.staged_bytes.extend_from_slice(line.as_bytes());
        self.staged_bytes.push(b'\n');
        self.staged.push((record, size));
        self.written += 1;
        Ok(self.written)
    }

    /// Writes made since the spool opened: the newest ticket's number.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Drops the writes numbered past `to` that are still staged (a
    /// request that could not be taken whole takes nothing).
    pub fn rollback(&mut self, to: u64) {
        while self.written > to {
            let Some((_, size)) = self.staged.pop() else {
                break;
            };
            let kept = self.staged_bytes.len() - size as usize;
            self.staged_bytes.truncate(kept);
            self.written -= 1;
        }
    }

    /// Writes an alert's record without waiting for the disk: it is taken
    /// once a sync covers its ticket ([`crate::commit::GroupCommit`]).
    pub fn accept_unsynced(
        &mut self,
        alert: &str,
        options: Vec<(String, String)>,
    ) -> Result<Ticket, StoreError> {
        let id = self.next_id;
        let record = Record::Accept {
            id,
            at: unix_ms(),
            alert: alert.to_string(),
            options,
        };
        let number = self.stage(record, true)?;
        self.next_id += 1;
        Ok(Ticket::new(id, number))
    }

    /// Adds an event to aggregate `handler`'s window (opening one now if
    /// none is open), without waiting for the disk.
    pub fn collect_unsynced(
        &mut self,
        handler: &str,
        event: Collected,
    ) -> Result<Ticket, StoreError> {
        let start_ms = self
            .state
            .windows
            .get(handler)
            .map_or_else(unix_ms, |w| w.start_ms);
        let record = Record::Collect {
            handler: handler.to_string(),
            start_ms,
            event,
        };
        Ok(Ticket::new(0, self.stage(record, true)?))
    }

    /// Closes aggregate `handler`'s window, accepting the alerts and making
    /// the collections its event led to, in one line; the new alerts' ids.
    pub fn emit_unsynced(
        &mut self,
        handler: &str,
        accepts: Vec<(String, Vec<(String, String)>)>,
        collects: Vec<(String, Collected)>,
    ) -> Result<(Vec<u64>, Ticket), StoreError> {
        let at = unix_ms();
        let first = self.next_id;
        let accepts: Vec<NewAlert> = accepts
            .into_iter()
            .enumerate()
            .map(|(n, (alert, options))| NewAlert {
                id: first + n as u64,
                at,
                alert,
                options,
            })
            .collect();
        let ids: Vec<u64> = accepts.iter().map(|a| a.id).collect();
        let collects: Vec<(String, u64, Collected)> = collects
            .into_iter()
            .map(|(other, event)| {
                let start = self.state.windows.get(&other).map_or(at, |w| w.start_ms);
                (other, start, event)
            })
            .collect();
        let record = Record::Emit {
            handler: handler.to_string(),
            accepts,
            collects,
            closes: None,
        };
        let number = self.stage(record, true)?;
        self.next_id += ids.len() as u64;
        Ok((ids, Ticket::new(0, number)))
    }

    /// Records how an alert ended, without waiting for the disk: once
    /// durable it is no longer pending, and its message is kept.
    pub fn finish_unsynced(&mut self, done: Finished) -> Result<Ticket, StoreError> {
        let id = done.id;
        Ok(Ticket::new(id, self.stage(Record::Done(done), false)?))
    }

    /// Accepts failed alerts `ids` again, each as a new alert with the same
    /// JSON and options, and records that each was resent (so it is not
    /// resent twice). An id that is not a kept failed alert (or is being
    /// resent already) is an error naming it, and nothing is resent.
    pub fn resend_unsynced(&mut self, ids: &[u64]) -> Result<Vec<(u64, Ticket)>, StoreError> {
        let resending =
            |r: &Record, id: u64| matches!(r, Record::Resent { id: was, .. } if *was == id);
        if let Some(unknown) = ids.iter().find(|id| {
            !self.state.failed.by_id.contains_key(id)
                || self
                    .staged
                    .iter()
                    .chain(&self.in_flight)
                    .any(|(r, _)| resending(r, **id))
        }) {
            return Err(StoreError::NotFailed { id: *unknown });
        }
        let start = self.written;
        let mut resent = Vec::with_capacity(ids.len());
        for id in ids {
            if resent.iter().any(|(old, _)| old == id) {
                continue; // named twice
            }
            let Some(alert) = self.state.failed.by_id.get(id).cloned() else {
                continue;
            };
            let written = self
                .accept_unsynced(&alert.alert, alert.options)
                .and_then(|ticket| {
                    let record = Record::Resent {
                        id: *id,
                        as_id: ticket.id,
                    };
                    Ok(Ticket::new(ticket.id, self.stage(record, false)?))
                });
            match written {
                Ok(ticket) => resent.push((*id, ticket)),
                Err(e) => {
                    self.rollback(start);
                    return Err(e);
                }
            }
        }
        Ok(resent)
    }

    /// Appends what is staged and returns the fsync that makes it durable,
    /// to run outside the lock; [`Spool::end_sync`] with its result then.
    /// Compacts first when the journal would pass its limit (or nothing is
    /// pending and it grew). A failed append drops what was staged.
    pub fn begin_sync(&mut self) -> SyncStart {
        let through = self.written;
        let Some(file) = &mut self.file else {
            return SyncStart::Failed {
                through,
                error: io::Error::other("the spool was opened read-only"),
            };
        };
        debug_assert!(self.in_flight.is_empty(), "one sync at a time");
        let needed = file.len() + self.staged_bytes.len() as u64 > self.limit;
        if needed || self.compact_wanted {
            self.compact_wanted = false;
            if let Err(e) = self.compact() {
                if needed {
                    return self.drop_staged(through, e);
                }
            }
        }
        if self.staged.is_empty() {
            return SyncStart::Done { through };
        }
        let Some(file) = &mut self.file else {
            return SyncStart::Done { through };
        };
        if let Err(e) = file.append(&self.staged_bytes) {
            return self.drop_staged(through, e);
        }
        let sync = match file.sync_job() {
            Ok(sync) => sync,
            Err(e) => {
                file.sync_failed();
                return self.drop_staged(through, e);
            }
        };
        self.in_flight = std::mem::take(&mut self.staged);
        self.in_flight_bytes = self.staged_bytes.len() as u64;
        self.staged_bytes.clear();
        SyncStart::Started {
            through,
            sync: Box::new(sync),
        }
    }

    /// Ends what [`Spool::begin_sync`] started: on success its records are
    /// applied; on failure they are cut off the journal and dropped.
    pub fn end_sync(&mut self, synced: io::Result<()>) -> io::Result<()> {
        let batch = std::mem::take(&mut self.in_flight);
        self.in_flight_bytes = 0;
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        match synced {
            Ok(()) => {
                file.synced(file.len());
                for (record, size) in batch {
                    self.state.apply(record, size);
                }
                self.trouble = None;
                // Nothing pending and the journal grew: rewritten now (what
                // was staged meanwhile is appended to the new journal).
                if self.state.pending.is_empty()
                    && file.len() > self.limit / 2
                    && self.compact().is_err()
                {
                    self.compact_wanted = true;
                }
                Ok(())
            }
            Err(e) => {
                file.sync_failed();
                self.trouble = Some(trouble(&e));
                Err(e)
            }
        }
    }

    fn drop_staged(&mut self, through: u64, error: io::Error) -> SyncStart {
        self.staged.clear();
        self.staged_bytes.clear();
        self.trouble = Some(trouble(&error));
        SyncStart::Failed { through, error }
    }

    /// Why the last append or fsync failed, while none has succeeded since.
    pub fn trouble(&self) -> Option<&str> {
        self.trouble.as_deref()
    }

    /// Makes everything staged durable now (the spool's own writes, when no
    /// group commit runs).
    fn commit_now(&mut self) -> io::Result<()> {
        store::sync_now(self)
    }

    /// Puts an alert on disk; when this returns `Ok`, it survives a crash.
    pub fn accept(
        &mut self,
        alert: &str,
        options: Vec<(String, String)>,
    ) -> Result<u64, StoreError> {
        let ticket = self.accept_unsynced(alert, options)?;
        self.commit_now().map_err(|e| StoreError::Io(e.into()))?;
        Ok(ticket.id)
    }

    /// Records how an alert ended, on disk when it returns.
    pub fn finish(&mut self, done: Finished) -> Result<(), StoreError> {
        self.finish_unsynced(done)?;
        self.commit_now().map_err(|e| StoreError::Io(e.into()))
    }

    /// [`Spool::resend_unsynced`], on disk when it returns; the old and new
    /// ids.
    pub fn resend(&mut self, ids: &[u64]) -> Result<Vec<(u64, u64)>, StoreError> {
        let resent = self.resend_unsynced(ids)?;
        self.commit_now().map_err(|e| StoreError::Io(e.into()))?;
        Ok(resent.into_iter().map(|(old, t)| (old, t.id)).collect())
    }

    /// The aggregates' open windows.
    pub fn windows(&self) -> &BTreeMap<String, Window> {
        &self.state.windows
    }

    /// The failed alerts kept for sending again, oldest first.
    pub fn failed_alerts(&self) -> impl Iterator<Item = &FailedAlert> {
        self.state.failed.by_id.values()
    }

    /// How many alerts are pending.
    pub fn pending_count(&self) -> usize {
        self.state.pending.len()
    }

    /// How long the oldest pending alert has waited (`None` when nothing is
    /// pending, or its journal predates the record of when).
    pub fn oldest_pending_age(&self) -> Option<std::time::Duration> {
        let (_, (oldest, _)) = self.state.pending.first_key_value()?;
        (oldest.at > 0)
            .then(|| std::time::Duration::from_millis(unix_ms().saturating_sub(oldest.at)))
    }

    /// The ids of the pending alerts, oldest first.
    pub fn pending_ids(&self) -> Vec<u64> {
        self.state.pending.keys().copied().collect()
    }

    /// The newest id of a durable alert (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.state.next_id - 1
    }

    /// The pending alerts accepted after `id`, oldest first: what a reader
    /// that has seen up to `id` has not, without listing the rest again.
    pub fn pending_after(&self, id: u64) -> Vec<Pending> {
        self.state
            .pending
            .range(id + 1..)
            .map(|(_, (p, _))| p.clone())
            .collect()
    }

    /// The pending alerts, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.state
            .pending
            .values()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// How the alerts finished since the journal was last compacted, at
    /// most the last [`Spool::keep_finished`] of them.
    pub fn finished(&self) -> impl ExactSizeIterator<Item = &Finished> {
        self.state.finished.iter().map(|(_, f)| f)
    }

    /// Remembers at most `n` finished alerts (the newest), so memory stays
    /// flat however long the spool runs. [`Settings::keep_finished`] sets
    /// it before the journal is replayed.
    pub fn keep_finished(&mut self, n: usize) {
        self.state.keep_finished = n;
        self.state.trim_finished();
    }

    /// The message kept for alert `key`, if any.
    pub fn message(&self, key: &str) -> Option<&AlertMessage> {
        self.state.messages.by_key.get(key).map(|(_, m, _)| m)
    }

    /// The alert messages kept, oldest first.
    pub fn messages(&self) -> Vec<AlertMessage> {
        self.state.messages.oldest_first().cloned().collect()
    }
}

impl Spool {
    /// How many entries each list holds.
    pub fn count(&self, list: Listing) -> usize {
        match list {
            Listing::Pending => self.state.pending.len(),
            Listing::Finished => self.state.finished.len(),
            Listing::Messages => self.state.messages.by_key.len(),
            Listing::Resendable => self.state.failed.by_id.len(),
            // One node alone sends: no claim passes on.
            Listing::Duplicates => 0,
        }
    }

    /// At most `limit` entries of `list` past cursor `after` (a page's
    /// `next`), in the list's order.
    pub fn page(&self, list: Listing, after: Option<u64>, limit: usize) -> Page {
        fn paged<T>(
            mut entries: impl Iterator<Item = (u64, T)>,
            limit: usize,
        ) -> (Vec<T>, Option<u64>) {
            let mut items = Vec::new();
            let mut last = None;
            for (cursor, item) in entries.by_ref().take(limit) {
                items.push(item);
                last = Some(cursor);
            }
            let next = last.filter(|_| entries.next().is_some());
            (items, next)
        }
        let (items, next) = match list {
            Listing::Pending => paged(
                self.state
                    .pending
                    .range(after.map_or(0, |a| a + 1)..)
                    .map(|(id, _)| (*id, Entry::Pending(*id))),
                limit,
            ),
            Listing::Finished => paged(
                self.state
                    .finished
                    .iter()
                    .rev()
                    .skip_while(|(seq, _)| after.is_some_and(|a| *seq >= a))
                    .map(|(seq, f)| (*seq, Entry::Finished(f.clone()))),
                limit,
            ),
            Listing::Messages => paged(
                self.state
                    .messages
                    .aged(after.map_or(0, |a| a + 1))
                    .map(|(age, m)| (age, Entry::Message(m.clone()))),
                limit,
            ),
            Listing::Resendable => paged(
                self.state
                    .failed
                    .by_id
                    .range(after.map_or(0, |a| a + 1)..)
                    .map(|(id, f)| {
                        (
                            *id,
                            Entry::Resendable {
                                id: f.id,
                                detail: f.detail.clone(),
                            },
                        )
                    }),
                limit,
            ),
            Listing::Duplicates => (Vec::new(), None),
        };
        Page { items, next }
    }
}

/// What an operator reads about a failed write: what happened and what to
/// do (never a record's content).
fn trouble(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        format!("the spool's disk is full ({e}): free space on the spool directory's filesystem; intake resumes by itself once a write succeeds")
    } else {
        format!("writing the spool's journal failed ({e})")
    }
}

/// The journal file is the embedded store, for one node: its claims are
/// always granted (the scheduler alone paces), and need no lease.
impl Writes for Spool {
    fn accept(
        &mut self,
        alert: &str,
        options: Vec<(String, String)>,
    ) -> Result<Ticket, StoreError> {
        self.accept_unsynced(alert, options)
    }

    fn collect(&mut self, handler: &str, event: Collected) -> Result<Ticket, StoreError> {
        self.collect_unsynced(handler, event)
    }

    fn emit(
        &mut self,
        handler: &str,
        window: &Window,
        accepts: Vec<(String, Vec<(String, String)>)>,
        collects: Vec<(String, Collected)>,
    ) -> Result<(Vec<u64>, Ticket), StoreError> {
        // An event collected since the window was read (durable, or still
        // on its way to the disk) would be closed away with it: nothing is
        // written, and the window is closed at the next look, with it.
        let collecting =
            |r: &Record| matches!(r, Record::Collect { handler: h, .. } if h == handler);
        let changed = self
            .state
            .windows
            .get(handler)
            .is_none_or(|w| w.start_ms != window.start_ms || w.count != window.count)
            || self
                .staged
                .iter()
                .chain(&self.in_flight)
                .any(|(r, _)| collecting(r));
        if changed {
            tracing::info!(
                handler,
                "the aggregate's window took more events since it was read; it is closed at the next look, with them"
            );
            return Ok((Vec::new(), Ticket::new(0, self.written)));
        }
        self.emit_unsynced(handler, accepts, collects)
    }

    fn finish(&mut self, done: Finished) -> Result<Ticket, StoreError> {
        self.finish_unsynced(done)
    }

    fn keep(&mut self, message: AlertMessage) -> Result<Ticket, StoreError> {
        Ok(Ticket::new(0, self.stage(Record::Message(message), false)?))
    }

    fn act(&mut self, key: &str, act: Act, identity: &str) -> Result<Ticket, StoreError> {
        let record = Record::Act {
            key: key.to_string(),
            act,
            click: Some((identity.to_string(), store::unix_ms())),
        };
        Ok(Ticket::new(0, self.stage(record, false)?))
    }

    fn resend(&mut self, failed: &[FailedAlert]) -> Result<Vec<(u64, Ticket)>, StoreError> {
        let ids: Vec<u64> = failed.iter().map(|f| f.id).collect();
        self.resend_unsynced(&ids)
    }

    fn released(&mut self, _release: store::Release) -> Result<Ticket, StoreError> {
        // The scheduler alone paces the journal's one node.
        Ok(Ticket::new(0, self.written))
    }
}

impl Commits for Spool {
    fn written(&self) -> u64 {
        Spool::written(self)
    }

    fn rollback(&mut self, to: u64) {
        Spool::rollback(self, to)
    }

    fn begin_sync(&mut self) -> SyncStart {
        Spool::begin_sync(self)
    }

    fn end_sync(&mut self, synced: io::Result<()>) -> io::Result<()> {
        Spool::end_sync(self, synced)
    }
}

impl Claims for Spool {
    fn arrivals(&mut self) -> Vec<Pending> {
        let fresh = Spool::pending_after(self, self.handed);
        self.handed = Spool::last_id(self);
        fresh
    }

    fn claim(&self, request: ClaimRequest) -> Job<Claim> {
        let message = Spool::message(self, &request.key).cloned().map(Box::new);
        store::ready(Ok(Claim::Granted {
            message,
            attempts: None,
            fence: None,
        }))
    }
}

impl Reads for Spool {
    fn clicked(&self, identity: &str) -> Job<bool> {
        store::ready(Ok(self.state.clicks.seen(identity)))
    }

    fn message(&self, named: &str) -> Job<Option<AlertMessage>> {
        let found = match Spool::message(self, named) {
            Some(m) => Some(m.clone()),
            // A digest: the key it names, among the messages kept.
            None if named.starts_with(store::DIGEST_PREFIX) => self
                .state
                .messages
                .oldest_first()
                .find(|m| store::matches_button(&m.key, named))
                .cloned(),
            None => None,
        };
        store::ready(Ok(found))
    }

    fn windows(&self) -> Job<BTreeMap<String, Window>> {
        store::ready(Ok(Spool::windows(self).clone()))
    }

    fn resendable(&self, ids: Option<Vec<u64>>) -> Job<Vec<FailedAlert>> {
        let found = match ids {
            None => Ok(self.failed_alerts().cloned().collect()),
            Some(ids) => ids
                .iter()
                .map(|id| {
                    self.state
                        .failed
                        .by_id
                        .get(id)
                        .cloned()
                        .ok_or(StoreError::NotFailed { id: *id })
                })
                .collect(),
        };
        store::ready(found)
    }

    fn pending_count(&self) -> usize {
        Spool::pending_count(self)
    }

    fn oldest_pending_age(&self) -> Option<std::time::Duration> {
        Spool::oldest_pending_age(self)
    }

    fn lists(&self, lists: &[Listing], after: Option<u64>, limit: usize) -> Job<Lists> {
        store::ready(Ok(Lists {
            counts: Listing::ALL.iter().map(|l| (*l, self.count(*l))).collect(),
            pages: lists
                .iter()
                .map(|l| (*l, self.page(*l, after, limit)))
                .collect(),
        }))
    }
}

impl Health for Spool {
    fn trouble(&self) -> Option<String> {
        Spool::trouble(self).map(str::to_string)
    }

    fn outage(&self) -> Arc<crate::store::outage::Outage> {
        self.outage.clone()
    }

    fn kind(&self) -> &'static str {
        "journal"
    }
}

impl Drop for Spool {
    /// A spool closed in order leaves what was written on disk.
    fn drop(&mut self) {
        if !self.staged.is_empty() {
            let _ = self.commit_now();
        }
    }
}
