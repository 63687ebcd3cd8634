//! The durable spool: an alert the host accepted stays on disk until Slack
//! confirms it or it fails for good. An append-only journal, one JSON line
//! per record, each fsynced before the caller goes on:
//!
//! - `{"op":"accept","id":7,"alert":"<the alert JSON>","options":[...]}`
//! - `{"op":"done","id":7,"status":"delivered","detail":"...","attempts":1,
//!   "message":{"key":"...","workspace":"alerts","channel_id":"C0123","ts":"1700000000.000001"}}`
//!   (`message` or `"forget":"<key>"` only when the delivery changed the
//!   alert's message, see below)
//! - `{"op":"message","key":"...","workspace":"...","channel_id":"...","ts":"..."}`,
//!   written by compaction
//! - `{"op":"ids","next":42}`, the first line compaction writes: ids are
//!   never given out twice, across compactions and restarts.
//!
//! Replaying the journal at start gives back what is pending. A last line
//! cut short by a crash is cut off (and the cut fsynced), so the next record
//! starts on its own line; a damaged line anywhere else stops the start
//! with its line number, since records were lost. When nothing is pending
//! and the journal has grown, or when it would pass its size limit, it is
//! rewritten with only the next id, the alert messages and the pending
//! records; if that is still too big the spool says it is full. The history
//! of finished alerts kept in memory is bounded ([`KEEP_FINISHED`] by
//! default). Tokens never reach the spool: it holds alerts and options, not
//! the configuration.
//!
//! The spool also keeps, per alert key (see [`alert_key`]), the alert's
//! message (`on-recovery` `update` / `thread`: the message later events
//! edit or reply to), in the same fsynced line as the `done` record of the
//! delivery that made it, so a crash never leaves one without the other.
//! Compaction keeps the table as `message` records.
//!
//! A crash between Slack's confirmation and the `done` record re-sends that
//! one alert after restart; that window is one fsync long.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Collected, Window};

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    Accept {
        id: u64,
        /// When it was accepted, in milliseconds since the Unix epoch (0 in
        /// journals written before it was recorded).
        #[serde(default)]
        at: u64,
        alert: String,
        options: Vec<(String, String)>,
    },
    Done(Finished),
    /// An alert's message, kept across a compaction.
    Message(AlertMessage),
    /// The first line of a compacted journal: ids below `next` were given
    /// out already, so they are never given again (a compaction may drop
    /// every record that named them).
    Ids {
        next: u64,
    },
    /// A failed alert kept for sending again, across a compaction.
    Failed(FailedAlert),
    /// Failed alert `id` was sent again as alert `as`: it is no longer kept.
    Resent {
        id: u64,
        #[serde(rename = "as")]
        as_id: u64,
    },
    /// An event an `aggregate` handler collected, into its window that
    /// started at `start_ms` (a new one if none is open).
    Collect {
        handler: String,
        start_ms: u64,
        event: Collected,
    },
    /// An aggregate's open window, as compaction keeps it.
    Window {
        handler: String,
        window: Window,
    },
    /// An aggregate's window ended and is closed; the event it published
    /// became these alerts and collections, in the same line so that a
    /// crash keeps both or neither.
    Emit {
        handler: String,
        accepts: Vec<NewAlert>,
        collects: Vec<(String, u64, Collected)>,
    },
}

/// An alert accepted inside another record (an aggregate's `emit`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewAlert {
    id: u64,
    #[serde(default)]
    at: u64,
    alert: String,
    options: Vec<(String, String)>,
}

/// A failed alert, kept (the newest [`MAX_FAILED`]) so it can be sent
/// again.
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

/// The most failed alerts kept for sending again. Past it, or past an
/// eighth of the spool's size limit (so they never crowd out pending
/// alerts), the oldest is dropped.
pub const MAX_FAILED: usize = 1_000;

/// The failed alerts kept for sending again, by id, bounded.
struct Failures {
    by_id: BTreeMap<u64, FailedAlert>,
    /// The size of their `failed` records in the journal.
    bytes: u64,
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
        serde_json::to_string(&Record::Failed(alert.clone())).map_or(0, |l| l.len() as u64 + 1)
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

/// An accepted alert whose record may not be on disk yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub id: u64,
    /// Its record's number since the spool opened.
    record: u64,
}

impl Ticket {
    /// A store's ticket for write number `record` (of alert `id`, or 0).
    pub fn new(id: u64, record: u64) -> Ticket {
        Ticket { id, record }
    }

    /// Its record's number since the spool opened: every record up to it
    /// is on disk once the journal is synced after it was written.
    pub(crate) fn record(&self) -> u64 {
        self.record
    }
}

/// How many finished alerts a spool remembers by default, newest kept.
pub const KEEP_FINISHED: usize = 10_000;

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
            });
        }
        self
    }
}

/// The handler options in which a host names an alert's earlier message
/// (WIT `handle-alert`); never part of an alert key.
pub const PREVIOUS_CHANNEL_ID: &str = "previous-channel-id";
pub const PREVIOUS_TS: &str = "previous-ts";

/// The key an alert's message is kept under: its `id` with the handler
/// options it was accepted with (sorted; without [`PREVIOUS_CHANNEL_ID`]
/// and [`PREVIOUS_TS`]), so two handlers of one alert id keep a message
/// each. Canonical JSON: `["cpu:nil",[["channel","#ops"]]]`.
pub fn alert_key(id: &str, options: &[(String, String)]) -> String {
    let mut options: Vec<&(String, String)> = options
        .iter()
        .filter(|(k, _)| k != PREVIOUS_CHANNEL_ID && k != PREVIOUS_TS)
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

/// An alert's message: the one its later events edit or reply to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// The alert key ([`alert_key`]).
    pub key: String,
    pub workspace: String,
    /// The channel id Slack answered with, e.g. `C0123`.
    pub channel_id: String,
    pub ts: String,
}

/// The most alert messages kept. Past it, or past a quarter of the spool's
/// size limit (so pending alerts always keep three quarters), the oldest
/// kept is dropped: that alert's next event starts a new message.
pub const MAX_MESSAGES: usize = 10_000;

/// The alert messages by key, oldest first, bounded (see [`MAX_MESSAGES`]).
struct Messages {
    by_key: HashMap<String, (u64, AlertMessage)>,
    /// Keys by when their message was last stored.
    by_age: BTreeMap<u64, String>,
    next_age: u64,
    /// The size of their `message` records in the journal.
    bytes: u64,
    max_bytes: u64,
}

impl Messages {
    fn new(max_bytes: u64) -> Messages {
        Messages {
            by_key: HashMap::new(),
            by_age: BTreeMap::new(),
            next_age: 0,
            bytes: 0,
            max_bytes,
        }
    }

    fn record_size(message: &AlertMessage) -> u64 {
        serde_json::to_string(&Record::Message(message.clone())).map_or(0, |l| l.len() as u64 + 1)
    }

    fn remember(&mut self, message: AlertMessage) {
        self.forget(&message.key);
        self.bytes += Messages::record_size(&message);
        self.by_age.insert(self.next_age, message.key.clone());
        self.by_key
            .insert(message.key.clone(), (self.next_age, message));
        self.next_age += 1;
        while self.by_key.len() > MAX_MESSAGES || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            if let Some((_, dropped)) = self.by_key.remove(&oldest) {
                self.bytes -= Messages::record_size(&dropped);
            }
        }
    }

    fn forget(&mut self, key: &str) {
        if let Some((age, message)) = self.by_key.remove(key) {
            self.by_age.remove(&age);
            self.bytes -= Messages::record_size(&message);
        }
    }

    fn apply(&mut self, done: &Finished) {
        if let Some(key) = &done.forget {
            self.forget(key);
        }
        if let Some(message) = &done.message {
            self.remember(message.clone());
        }
    }

    fn oldest_first(&self) -> impl Iterator<Item = &AlertMessage> {
        self.by_age
            .values()
            .filter_map(|k| self.by_key.get(k).map(|(_, m)| m))
    }
}

/// Whether an alert was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Delivered,
    Failed,
}

/// An alert waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub id: u64,
    /// When it was accepted (ms since the Unix epoch; 0 if not recorded).
    pub at: u64,
    /// The alert as it was posted (Kapacitor's JSON).
    pub alert: String,
    pub options: Vec<(String, String)>,
}

/// Why an alert was not accepted.
#[derive(Debug)]
pub enum SpoolError {
    /// The spool is at its size limit with pending alerts.
    Full {
        limit: u64,
    },
    Io(anyhow::Error),
    /// A resend named an id that is not a failed alert the spool keeps.
    NotFailed {
        id: u64,
    },
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Full { limit } => {
                write!(f, "the spool is full ({limit} bytes of pending alerts)")
            }
            SpoolError::Io(e) => write!(f, "the spool could not be written: {e:#}"),
            SpoolError::NotFailed { id } => write!(
                f,
                "alert {id} is not a failed alert this spool keeps (it was delivered, is pending, was resent, or is older than the last {MAX_FAILED} failures)"
            ),
        }
    }
}

/// The spool in one directory.
pub struct Spool {
    path: PathBuf,
    file: File,
    /// Records appended but not yet written to `file`: a group commit
    /// writes them all with one call before its fsync.
    unwritten: Vec<u8>,
    /// The journal's size, `unwritten` included.
    size: u64,
    limit: u64,
    /// Records written since the spool opened, and how many of them are
    /// known to be on disk.
    written: u64,
    synced: u64,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    /// Final statuses seen since the journal was last compacted, newest
    /// last, at most `keep_finished` of them.
    finished: VecDeque<Finished>,
    keep_finished: usize,
    messages: Messages,
    /// Failed alerts that can be sent again, by id.
    failed: Failures,
    /// The `aggregate` handlers' open windows, by handler id.
    windows: BTreeMap<String, Window>,
    /// Held while the spool is open for writing: one writer at a time.
    _lock: Option<File>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, replaying its journal.
    pub fn open(dir: &Path, limit: u64) -> Result<Spool> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the spool directory {}", dir.display()))?;
        let lock = lock_dir(dir)?;
        let path = dir.join("journal.jsonl");
        let (mut spool, whole) = Spool::replay(&path, limit, || {
            OpenOptions::new().create(true).append(true).open(&path)
        })?;
        spool._lock = Some(lock);
        if spool.size > whole {
            // Otherwise the next record would continue the torn line, and
            // be lost with it at the next replay. (Appends go to the end.)
            spool
                .file
                .set_len(whole)
                .and_then(|()| spool.file.sync_data())
                .with_context(|| format!("cutting the torn last line of {}", path.display()))?;
            spool.size = whole;
        }
        Ok(spool)
    }

    /// Reads the spool in `dir` without changing it (a `serve` may be
    /// writing to it): for showing it. Accepting or finishing fails.
    pub fn open_read_only(dir: &Path) -> Result<Spool> {
        let path = dir.join("journal.jsonl");
        Ok(Spool::replay(&path, u64::MAX, || File::open(&path))?.0)
    }

    /// The spool the journal at `path` holds, with `file` opened by `open`,
    /// and the length of the journal up to its last whole line.
    fn replay(
        path: &Path,
        limit: u64,
        open: impl FnOnce() -> std::io::Result<File>,
    ) -> Result<(Spool, u64)> {
        let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut failed = Failures::new(limit / 8);
        let mut windows: BTreeMap<String, Window> = BTreeMap::new();
        let mut finished = VecDeque::new();
        let mut messages = Messages::new(limit / 4);
        let mut next_id = 1;
        let mut whole = 0;
        // A whole line that does not parse is damage; only as the last line
        // can it be a write the crash cut short (and is then cut off).
        let mut damaged: Option<(usize, String)> = None;
        let mut number = 0;
        if path.exists() {
            let mut reader = BufReader::new(
                File::open(path).with_context(|| format!("opening {}", path.display()))?,
            );
            let mut line = Vec::new();
            loop {
                line.clear();
                let read = reader
                    .read_until(b'\n', &mut line)
                    .with_context(|| format!("reading {}", path.display()))?;
                // A line cut short by a crash mid-write is the last one, with
                // no newline: skipped.
                if read == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                number += 1;
                if let Some((at, why)) = damaged.take() {
                    anyhow::bail!(
                        "{} line {at} is damaged ({why}) and is not the last line: the spool will not start on a journal that lost a record in its middle; move the file aside to start empty, or repair that line",
                        path.display()
                    );
                }
                let record = match serde_json::from_slice::<Record>(&line) {
                    Ok(record) => record,
                    Err(e) => {
                        damaged = Some((number, e.to_string()));
                        continue;
                    }
                };
                whole += read as u64;
                match record {
                    Record::Accept {
                        id,
                        at,
                        alert,
                        options,
                    } => {
                        next_id = next_id.max(id + 1);
                        pending.insert(
                            id,
                            Pending {
                                id,
                                at,
                                alert,
                                options,
                            },
                        );
                    }
                    Record::Done(done) => {
                        if let Some(alert) = pending.remove(&done.id) {
                            if done.status == Status::Failed {
                                failed.keep_pending(alert, &done.detail);
                            }
                        }
                        messages.apply(&done);
                        finished.push_back(done);
                        if finished.len() > KEEP_FINISHED {
                            finished.pop_front();
                        }
                    }
                    Record::Message(message) => messages.remember(message),
                    Record::Ids { next } => next_id = next_id.max(next),
                    Record::Failed(alert) => {
                        next_id = next_id.max(alert.id + 1);
                        failed.keep(alert);
                    }
                    Record::Resent { id, .. } => failed.remove(id),
                    Record::Collect {
                        handler,
                        start_ms,
                        event,
                    } => collect_into(&mut windows, handler, start_ms, event),
                    Record::Window { handler, window } => {
                        windows.insert(handler, window);
                    }
                    Record::Emit {
                        handler,
                        accepts,
                        collects,
                    } => {
                        emit_into(
                            &mut windows,
                            &mut pending,
                            &mut next_id,
                            &handler,
                            accepts,
                            collects,
                        );
                    }
                }
            }
        }
        let file = open().with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata()?.len();
        let spool = Spool {
            path: path.to_path_buf(),
            file,
            unwritten: Vec::new(),
            size,
            limit,
            written: 0,
            synced: 0,
            next_id,
            pending,
            finished,
            keep_finished: KEEP_FINISHED,
            messages,
            failed,
            windows,
            _lock: None,
        };
        Ok((spool, whole))
    }

    /// Puts an alert on disk; when this returns `Ok`, it survives a crash.
    pub fn accept(
        &mut self,
        alert: &str,
        options: Vec<(String, String)>,
    ) -> Result<u64, SpoolError> {
        let ticket = self.accept_unsynced(alert, options)?;
        self.sync_through(ticket.record).map_err(SpoolError::Io)?;
        Ok(ticket.id)
    }

    /// Writes an alert's record without waiting for the disk: it is durable
    /// once [`crate::commit::GroupCommit`] returns for the ticket, which shares one
    /// fsync among every record written meanwhile.
    pub fn accept_unsynced(
        &mut self,
        alert: &str,
        options: Vec<(String, String)>,
    ) -> Result<Ticket, SpoolError> {
        let id = self.next_id;
        let at = unix_ms();
        let record = Record::Accept {
            id,
            at,
            alert: alert.to_string(),
            options: options.clone(),
        };
        let line = serde_json::to_string(&record).map_err(|e| SpoolError::Io(e.into()))?;
        self.write_within_limit(&line)?;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                id,
                at,
                alert: alert.to_string(),
                options,
            },
        );
        Ok(Ticket {
            id,
            record: self.written,
        })
    }

    /// Appends a line, compacting first when it would pass the size limit.
    fn write_within_limit(&mut self, line: &str) -> Result<(), SpoolError> {
        if self.size + line.len() as u64 + 1 > self.limit {
            self.compact().map_err(SpoolError::Io)?;
            if self.size + line.len() as u64 + 1 > self.limit {
                return Err(SpoolError::Full { limit: self.limit });
            }
        }
        self.write(line).map_err(SpoolError::Io)
    }

    /// Adds an event to aggregate `handler`'s window (opening one now if
    /// none is open), without waiting for the disk.
    pub fn collect_unsynced(
        &mut self,
        handler: &str,
        event: Collected,
    ) -> Result<Ticket, SpoolError> {
        let start_ms = self
            .windows
            .get(handler)
            .map_or_else(unix_ms, |w| w.start_ms);
        let record = Record::Collect {
            handler: handler.to_string(),
            start_ms,
            event: event.clone(),
        };
        let line = serde_json::to_string(&record).map_err(|e| SpoolError::Io(e.into()))?;
        self.write_within_limit(&line)?;
        collect_into(&mut self.windows, handler.to_string(), start_ms, event);
        Ok(Ticket {
            id: 0,
            record: self.written,
        })
    }

    /// The aggregates' open windows.
    pub fn windows(&self) -> &BTreeMap<String, Window> {
        &self.windows
    }

    /// Closes aggregate `handler`'s window, accepting the alerts and making
    /// the collections its event led to, in one line; the new alerts' ids.
    pub fn emit_unsynced(
        &mut self,
        handler: &str,
        accepts: Vec<(String, Vec<(String, String)>)>,
        collects: Vec<(String, Collected)>,
    ) -> Result<(Vec<u64>, Ticket), SpoolError> {
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
        let collects: Vec<(String, u64, Collected)> = collects
            .into_iter()
            .map(|(other, event)| {
                let start = self.windows.get(&other).map_or(at, |w| w.start_ms);
                (other, start, event)
            })
            .collect();
        let record = Record::Emit {
            handler: handler.to_string(),
            accepts: accepts.clone(),
            collects: collects.clone(),
        };
        let line = serde_json::to_string(&record).map_err(|e| SpoolError::Io(e.into()))?;
        self.write_within_limit(&line)?;
        let ids = emit_into(
            &mut self.windows,
            &mut self.pending,
            &mut self.next_id,
            handler,
            accepts,
            collects,
        );
        Ok((
            ids,
            Ticket {
                id: 0,
                record: self.written,
            },
        ))
    }

    /// Records how an alert ended, and what that changes in the alert
    /// messages, in one fsynced line; it is no longer pending.
    pub fn finish(&mut self, done: Finished) -> Result<()> {
        let ticket = self.finish_unsynced(done)?;
        self.sync_through(ticket.record)
    }

    /// [`Spool::finish`] without waiting for the disk: the ending counts
    /// at once (the alert is no longer pending, its message is kept), and
    /// is durable once [`crate::commit::GroupCommit`] returns for the ticket.
    pub fn finish_unsynced(&mut self, done: Finished) -> Result<Ticket> {
        let line = serde_json::to_string(&Record::Done(done.clone()))?;
        self.write(&line)?;
        let ticket = Ticket {
            id: done.id,
            record: self.written,
        };
        if let Some(alert) = self.pending.remove(&done.id) {
            if done.status == Status::Failed {
                self.failed.keep_pending(alert, &done.detail);
            }
        }
        self.messages.apply(&done);
        self.finished.push_back(done);
        self.trim_finished();
        if self.pending.is_empty() && self.size > self.limit / 2 {
            self.compact()?;
        }
        Ok(ticket)
    }

    /// The ids of the pending alerts, oldest first.
    /// The failed alerts kept for sending again, oldest first.
    pub fn failed_alerts(&self) -> impl Iterator<Item = &FailedAlert> {
        self.failed.by_id.values()
    }

    /// Accepts failed alerts `ids` again, each as a new alert with the same
    /// JSON and options, and records that each was resent (so it is not
    /// resent twice); durable once the last ticket is committed. An id that
    /// is not a kept failed alert is an error naming it, and nothing is
    /// resent.
    pub fn resend_unsynced(&mut self, ids: &[u64]) -> Result<Vec<(u64, Ticket)>, SpoolError> {
        if let Some(unknown) = ids.iter().find(|id| !self.failed.by_id.contains_key(id)) {
            return Err(SpoolError::NotFailed { id: *unknown });
        }
        let mut resent = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(alert) = self.failed.by_id.get(id).cloned() else {
                continue; // named twice
            };
            let ticket = self.accept_unsynced(&alert.alert, alert.options)?;
            let line = serde_json::to_string(&Record::Resent {
                id: *id,
                as_id: ticket.id,
            })
            .map_err(|e| SpoolError::Io(e.into()))?;
            self.write(&line).map_err(SpoolError::Io)?;
            self.failed.remove(*id);
            resent.push((
                *id,
                Ticket {
                    id: ticket.id,
                    record: self.written,
                },
            ));
        }
        Ok(resent)
    }

    /// [`Spool::resend_unsynced`], on disk when it returns; the old and new
    /// ids.
    pub fn resend(&mut self, ids: &[u64]) -> Result<Vec<(u64, u64)>, SpoolError> {
        let resent = self.resend_unsynced(ids)?;
        if let Some((_, last)) = resent.last() {
            self.sync_through(last.record).map_err(SpoolError::Io)?;
        }
        Ok(resent.into_iter().map(|(old, t)| (old, t.id)).collect())
    }

    /// How many alerts are pending.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// How long the oldest pending alert has waited (`None` when nothing is
    /// pending, or its journal predates the record of when).
    pub fn oldest_pending_age(&self) -> Option<std::time::Duration> {
        let (_, oldest) = self.pending.first_key_value()?;
        (oldest.at > 0)
            .then(|| std::time::Duration::from_millis(unix_ms().saturating_sub(oldest.at)))
    }

    pub fn pending_ids(&self) -> Vec<u64> {
        self.pending.keys().copied().collect()
    }

    /// The newest id given out (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// The pending alerts accepted after `id`, oldest first: what a reader
    /// that has seen up to `id` has not, without listing the rest again.
    pub fn pending_after(&self, id: u64) -> Vec<Pending> {
        self.pending
            .range(id + 1..)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The pending alerts, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.pending.values().cloned().collect()
    }

    /// How the alerts finished since the journal was last compacted, at
    /// most the last [`Spool::keep_finished`] of them.
    pub fn finished(&self) -> impl ExactSizeIterator<Item = &Finished> {
        self.finished.iter()
    }

    /// Remembers at most `n` finished alerts (the newest), so memory stays
    /// flat however long the spool runs.
    pub fn keep_finished(&mut self, n: usize) {
        self.keep_finished = n;
        self.trim_finished();
    }

    fn trim_finished(&mut self) {
        while self.finished.len() > self.keep_finished {
            self.finished.pop_front();
        }
    }

    /// The message kept for alert `key`, if any.
    pub fn message(&self, key: &str) -> Option<&AlertMessage> {
        self.messages.by_key.get(key).map(|(_, m)| m)
    }

    /// The alert messages kept, oldest first.
    pub fn messages(&self) -> Vec<AlertMessage> {
        self.messages.oldest_first().cloned().collect()
    }

    /// The spool as `GET /spool` and `host-test spool --json` show it: the
    /// pending ids, how the others ended, and the alert messages kept.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::json!({
            "pending": self.pending_ids(),
            "finished": self.finished,
            "messages": self.messages(),
            "resendable": self
                .failed
                .by_id
                .values()
                .map(|f| serde_json::json!({"id": f.id, "detail": f.detail}))
                .collect::<Vec<_>>(),
        })
    }

    /// Waits until record `record` is on disk (and every one before it).
    fn sync_through(&mut self, record: u64) -> Result<()> {
        if self.synced < record {
            self.flush()?;
            self.file.sync_data()?;
            self.synced = self.written;
        }
        Ok(())
    }

    /// Appends a record without waiting for the disk (nor for the file: it
    /// is written with the others of its group commit).
    fn write(&mut self, line: &str) -> Result<()> {
        self.unwritten.extend_from_slice(line.as_bytes());
        self.unwritten.push(b'\n');
        self.size += line.len() as u64 + 1;
        self.written += 1;
        Ok(())
    }

    /// Writes the appended records to the file in one call: a crash leaves
    /// whole lines and at most one torn last line, never a record without
    /// its newline. If the write fails, the file is cut back to its last
    /// whole line, so a half-written record cannot sit in the middle of the
    /// journal; the records are lost, and none of them was acknowledged.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.unwritten);
        if result.is_err() {
            self.size -= self.unwritten.len() as u64;
            let _ = self.file.set_len(self.size);
        }
        self.unwritten.clear();
        result
    }

    /// What a group commit syncs: the journal with what was appended so far
    /// written to it (none when every record is on disk already, e.g. after
    /// a compaction), and how many records it holds.
    pub(crate) fn sync_point(&mut self) -> std::io::Result<(Option<File>, u64)> {
        if self.synced >= self.written {
            return Ok((None, self.written));
        }
        self.flush()?;
        Ok((Some(self.file.try_clone()?), self.written))
    }

    /// Rewrites the journal with the next id, the alert messages, oldest
    /// first, and the pending alerts (atomically: a new file, fsynced, renamed
    /// over the old one).
    fn compact(&mut self) -> Result<()> {
        let fresh = self.path.with_extension("jsonl.new");
        let mut out = File::create(&fresh)?;
        let ids = serde_json::to_string(&Record::Ids { next: self.next_id })? + "\n";
        out.write_all(ids.as_bytes())?;
        let mut size = ids.len() as u64;
        for m in self.messages.oldest_first() {
            let line = serde_json::to_string(&Record::Message(m.clone()))? + "\n";
            out.write_all(line.as_bytes())?;
            size += line.len() as u64;
        }
        for (handler, window) in &self.windows {
            let record = Record::Window {
                handler: handler.clone(),
                window: window.clone(),
            };
            let line = serde_json::to_string(&record)? + "\n";
            out.write_all(line.as_bytes())?;
            size += line.len() as u64;
        }
        for f in self.failed.by_id.values() {
            let line = serde_json::to_string(&Record::Failed(f.clone()))? + "\n";
            out.write_all(line.as_bytes())?;
            size += line.len() as u64;
        }
        for p in self.pending.values() {
            let record = Record::Accept {
                id: p.id,
                at: p.at,
                alert: p.alert.clone(),
                options: p.options.clone(),
            };
            let line = serde_json::to_string(&record)? + "\n";
            out.write_all(line.as_bytes())?;
            size += line.len() as u64;
        }
        out.sync_all()?;
        std::fs::rename(&fresh, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        // What was appended is in the new journal already.
        self.unwritten.clear();
        self.size = size;
        // The new journal was synced whole: every record is on disk.
        self.synced = self.written;
        Ok(())
    }
}

/// Applies a `collect` record: the event joins `handler`'s window, which
/// opens at `start_ms` if none is open. Live and at replay alike.
fn collect_into(
    windows: &mut BTreeMap<String, Window>,
    handler: String,
    start_ms: u64,
    event: Collected,
) {
    windows
        .entry(handler)
        .or_insert_with(|| Window::open(start_ms))
        .add(event);
}

/// Applies an `emit` record: `handler`'s window closes, its alerts become
/// pending, its collections join their windows. Live and at replay alike;
/// the new alerts' ids.
fn emit_into(
    windows: &mut BTreeMap<String, Window>,
    pending: &mut BTreeMap<u64, Pending>,
    next_id: &mut u64,
    handler: &str,
    accepts: Vec<NewAlert>,
    collects: Vec<(String, u64, Collected)>,
) -> Vec<u64> {
    windows.remove(handler);
    let mut ids = Vec::with_capacity(accepts.len());
    for a in accepts {
        *next_id = (*next_id).max(a.id + 1);
        ids.push(a.id);
        pending.insert(
            a.id,
            Pending {
                id: a.id,
                at: a.at,
                alert: a.alert,
                options: a.options,
            },
        );
    }
    for (other, start_ms, event) in collects {
        collect_into(windows, other, start_ms, event);
    }
    ids
}

/// Takes the spool directory's lock: one process writes a spool at a time.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the spool {} is in use by another process (a serve running on it?)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Now, in milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Drop for Spool {
    /// A spool closed in order leaves what was appended on disk.
    fn drop(&mut self) {
        if !self.unwritten.is_empty() && self.flush().is_ok() {
            let _ = self.file.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_alerts_survive_a_reopen_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let a = spool
            .accept("{\"id\":\"a\"}", vec![("channel".into(), "#x".into())])
            .unwrap();
        let b = spool.accept("{\"id\":\"b\"}", vec![]).unwrap();
        spool
            .finish(Finished::new(a, Status::Delivered, "ts 1.2", 1))
            .unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            spool.pending().iter().map(|p| p.id).collect::<Vec<_>>(),
            [b]
        );
        assert_eq!(
            spool.finished().next(),
            Some(&Finished::new(a, Status::Delivered, "ts 1.2", 1))
        );
        // Ids keep increasing across restarts.
        let mut spool = spool;
        assert!(spool.accept("{}", vec![]).unwrap() > b);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.accept("{\"id\":\"a\"}", vec![]).unwrap();
        drop(spool);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal.jsonl"))
            .unwrap();
        file.write_all(b"{\"op\":\"accept\",\"id\":2,\"al").unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.pending().len(), 1);
    }

    #[test]
    fn the_spool_is_bounded_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        // Room for two of these, and the compacted journal's first line.
        let mut spool = Spool::open(dir.path(), 400).unwrap();
        let first = spool.accept(&"x".repeat(100), vec![]).unwrap();
        spool.accept(&"y".repeat(100), vec![]).unwrap();
        match spool.accept(&"z".repeat(100), vec![]) {
            Err(SpoolError::Full { limit }) => assert_eq!(limit, 400),
            other => panic!("expected full, got {other:?}"),
        }
        // Finishing one makes room again (the journal is compacted).
        spool
            .finish(Finished::new(first, Status::Failed, "channel_not_found", 1))
            .unwrap();
        spool.accept(&"z".repeat(100), vec![]).unwrap();
        assert_eq!(spool.pending().len(), 2);
    }

    fn delivered(spool: &mut Spool, key: &str, recovered: bool, ts: &str) {
        let id = spool.accept("{}", vec![]).unwrap();
        let done = Finished::new(id, Status::Delivered, ts, 1).remembering(
            key,
            recovered,
            "alerts",
            Some("C1"),
            Some(ts),
        );
        spool.finish(done).unwrap();
    }

    fn kept(spool: &Spool) -> Vec<(String, String)> {
        spool
            .messages()
            .into_iter()
            .map(|m| (m.key, m.ts))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_alert_key_is_its_id_and_sorted_options_without_the_previous_message() {
        let a = alert_key("cpu", &pairs(&[("channel", "#a"), ("username", "x")]));
        let b = alert_key(
            "cpu",
            &pairs(&[("username", "x"), ("previous-ts", "1.1"), ("channel", "#a")]),
        );
        assert_eq!(a, b);
        assert_eq!(a, r##"["cpu",[["channel","#a"],["username","x"]]]"##);
        assert_ne!(a, alert_key("cpu", &pairs(&[("channel", "#b")])));
        assert_ne!(alert_key("cpu", &[]), alert_key("mem", &[]));
    }

    #[test]
    fn the_previous_message_options_replace_any_given() {
        let options = with_previous(
            &pairs(&[("channel", "#a"), ("previous-ts", "1.1")]),
            "C9",
            "2.2",
        );
        assert_eq!(
            options,
            pairs(&[
                ("channel", "#a"),
                ("previous-channel-id", "C9"),
                ("previous-ts", "2.2")
            ])
        );
    }

    #[test]
    fn a_firing_delivery_is_remembered_and_a_recovery_forgets_it() {
        let done = |status| Finished::new(1, status, "", 1);
        let fired = done(Status::Delivered).remembering("k", false, "w", Some("C1"), Some("1.1"));
        assert_eq!(fired.message.as_ref().map(|m| m.ts.as_str()), Some("1.1"));
        assert_eq!(fired.forget, None);
        let recovered =
            done(Status::Delivered).remembering("k", true, "w", Some("C1"), Some("1.1"));
        assert_eq!(
            (recovered.message, recovered.forget.as_deref()),
            (None, Some("k"))
        );
        // Nothing to remember: a failure, or a webhook (no channel id, no ts).
        assert_eq!(
            done(Status::Failed).remembering("k", false, "w", Some("C1"), Some("1.1")),
            done(Status::Failed)
        );
        assert_eq!(
            done(Status::Delivered).remembering("k", false, "w", None, None),
            done(Status::Delivered)
        );
    }

    #[test]
    fn alert_messages_survive_a_reopen_and_a_forget_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        delivered(&mut spool, "a", false, "1.1");
        delivered(&mut spool, "b", false, "2.2");
        delivered(&mut spool, "a", false, "1.3");
        delivered(&mut spool, "b", true, "2.4");
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(kept(&spool), [("a".to_string(), "1.3".to_string())]);
        assert_eq!(spool.message("a").unwrap().channel_id, "C1");
        assert_eq!(spool.message("b"), None);
    }

    #[test]
    fn alert_messages_survive_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 4096).unwrap();
        delivered(&mut spool, "a", false, "1.1");
        delivered(&mut spool, "b", false, "2.2");
        let pending = spool.accept("{\"id\":\"p\"}", vec![]).unwrap();
        spool.compact().unwrap();
        let journal = std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap();
        assert!(!journal.contains("\"op\":\"done\""), "compacted: {journal}");
        assert!(journal.contains("\"op\":\"message\""), "{journal}");
        drop(spool);
        let mut spool = Spool::open(dir.path(), 4096).unwrap();
        assert_eq!(spool.pending_ids(), [pending]);
        assert_eq!(
            kept(&spool),
            [("a".into(), "1.1".into()), ("b".into(), "2.2".into())]
        );
        // Compacted again, still in age order: `a` replaced is now newest.
        delivered(&mut spool, "a", false, "1.5");
        spool.compact().unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), 4096).unwrap();
        assert_eq!(
            kept(&spool),
            [("b".into(), "2.2".into()), ("a".into(), "1.5".into())]
        );
    }

    #[test]
    fn a_torn_done_record_leaves_the_alert_pending_and_the_next_record_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        delivered(&mut spool, "a", false, "1.1");
        let id = spool.accept("{}", vec![]).unwrap();
        drop(spool);
        let done = Finished::new(id, Status::Delivered, "", 1).remembering(
            "a",
            false,
            "alerts",
            Some("C1"),
            Some("1.9"),
        );
        let line = serde_json::to_string(&Record::Done(done)).unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal.jsonl"))
            .unwrap();
        file.write_all(&line.as_bytes()[..line.len() - 5]).unwrap();
        drop(file);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.pending_ids(), [id]);
        assert_eq!(kept(&spool), [("a".into(), "1.1".into())]);
        // The torn tail is gone: the next record is read back.
        spool
            .finish(Finished::new(id, Status::Delivered, "", 1).remembering(
                "a",
                false,
                "alerts",
                Some("C1"),
                Some("1.7"),
            ))
            .unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(spool.pending_ids().is_empty());
        assert_eq!(kept(&spool), [("a".into(), "1.7".into())]);
    }

    #[test]
    fn reading_a_spool_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.accept("{}", vec![]).unwrap();
        drop(spool);
        let path = dir.path().join("journal.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"op\":\"acc").unwrap();
        let before = std::fs::read(&path).unwrap();
        let spool = Spool::open_read_only(dir.path()).unwrap();
        assert_eq!(spool.pending().len(), 1);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_journal_from_before_alert_messages_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("journal.jsonl"),
            concat!(
                r#"{"op":"accept","id":1,"alert":"{}","options":[]}"#,
                "\n",
                r#"{"op":"accept","id":2,"alert":"{}","options":[]}"#,
                "\n",
                r##"{"op":"done","id":1,"status":"delivered","detail":"#c 1.1"}"##,
                "\n",
            ),
        )
        .unwrap();
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.pending_ids(), [2]);
        assert_eq!(
            spool.finished().cloned().collect::<Vec<_>>(),
            [Finished::new(1, Status::Delivered, "#c 1.1", 0)]
        );
        assert!(spool.messages().is_empty());
    }

    #[test]
    fn the_message_table_drops_the_oldest_past_its_bounds() {
        let message = |n: usize| AlertMessage {
            key: format!("k{n}"),
            workspace: "w".into(),
            channel_id: "C1".into(),
            ts: format!("1.{n:06}"),
        };
        let mut table = Messages::new(u64::MAX);
        for n in 0..=MAX_MESSAGES {
            table.remember(message(n));
        }
        assert_eq!(table.by_key.len(), MAX_MESSAGES);
        assert!(!table.by_key.contains_key("k0"));
        assert!(table.by_key.contains_key("k1"));
        // A quarter of the spool's limit bounds it too: room for two here.
        let size = Messages::record_size(&message(1));
        let mut table = Messages::new(size * 2);
        for n in 1..=3 {
            table.remember(message(n));
        }
        let keys: Vec<&str> = table.oldest_first().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["k2", "k3"]);
        assert_eq!(table.bytes, size * 2);
        table.forget("k2");
        assert_eq!(table.bytes, size);
    }

    #[test]
    fn a_torn_tail_then_an_accepted_alert_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let a = spool.accept("{\"id\":\"a\"}", vec![]).unwrap();
        drop(spool);
        let path = dir.path().join("journal.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"op\":\"accept\",\"id\":2,\"al").unwrap();
        drop(file);
        // What a crash would do next: open, acknowledge one more, die.
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let b = spool.accept("{\"id\":\"b\"}", vec![]).unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.pending_ids(), [a, b]);
    }

    #[test]
    fn a_damaged_line_in_the_middle_stops_the_start_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.accept("{\"id\":\"a\"}", vec![]).unwrap();
        drop(spool);
        let path = dir.path().join("journal.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text += "{\"op\":\"accept\",\"id\":2,\"alert\":\"x\"\n";
        std::fs::write(&path, &text).unwrap();
        // As the last line it is a write the crash cut short: cut off.
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.pending_ids(), [1]);
        spool.accept("{\"id\":\"c\"}", vec![]).unwrap();
        drop(spool);
        assert!(!std::fs::read_to_string(&path).unwrap().contains("\"x\"\n"));
        // In the middle, records were lost: refuse, naming the line.
        let mut lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.insert(1, "garbage".to_string());
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let e = Spool::open(dir.path(), 1 << 20).err().expect("refused");
        let shown = format!("{e:#}");
        assert!(shown.contains("line 2 is damaged"), "{shown}");
    }

    #[test]
    fn ids_are_never_given_twice_across_compaction_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        // A small limit, so finishing the last pending alert compacts.
        let mut spool = Spool::open(dir.path(), 400).unwrap();
        let path = dir.path().join("journal.jsonl");
        // Until a compaction leaves no record naming any id given out.
        let last = loop {
            let last = spool.accept(&"x".repeat(60), vec![]).unwrap();
            spool
                .finish(Finished::new(last, Status::Delivered, "", 1))
                .unwrap();
            let journal = std::fs::read_to_string(&path).unwrap();
            if !journal.contains("accept") || last >= 10 {
                break last;
            }
        };
        drop(spool);
        let journal = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            journal,
            format!("{{\"op\":\"ids\",\"next\":{}}}\n", last + 1)
        );
        let mut spool = Spool::open(dir.path(), 400).unwrap();
        assert!(spool.accept("{}", vec![]).unwrap() > last);
    }

    #[test]
    fn the_finished_history_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.keep_finished(3);
        for _ in 0..10 {
            let id = spool.accept("{}", vec![]).unwrap();
            spool
                .finish(Finished::new(id, Status::Delivered, "", 1))
                .unwrap();
        }
        let ids: Vec<u64> = spool.finished().map(|f| f.id).collect();
        assert_eq!(ids, [8, 9, 10]);
    }

    #[test]
    fn a_failed_alert_is_resent_once_across_compaction_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let failed = spool
            .accept("{\"id\":\"gone\"}", vec![("channel".into(), "#x".into())])
            .unwrap();
        let delivered = spool.accept("{}", vec![]).unwrap();
        spool
            .finish(Finished::new(
                failed,
                Status::Failed,
                "channel_not_found",
                1,
            ))
            .unwrap();
        spool
            .finish(Finished::new(delivered, Status::Delivered, "#x 1.2", 1))
            .unwrap();
        assert_eq!(
            spool.failed_alerts().map(|f| f.id).collect::<Vec<_>>(),
            [failed]
        );
        // Nothing pending: compacted; the failed alert survives it.
        spool.compact().unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let kept: Vec<_> = spool.failed_alerts().cloned().collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].detail, "channel_not_found");
        assert!(matches!(
            spool.resend(&[delivered]),
            Err(SpoolError::NotFailed { id }) if id == delivered
        ));
        let resent = spool.resend(&[failed]).unwrap();
        let (old, new) = resent[0];
        assert_eq!(old, failed);
        assert!(new > delivered, "a new id");
        let pending = spool.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].alert, "{\"id\":\"gone\"}");
        assert_eq!(
            pending[0].options,
            [("channel".to_string(), "#x".to_string())]
        );
        drop(spool);
        // Resent is recorded: not resendable again after a restart.
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.failed_alerts().count(), 0);
        assert!(spool.resend(&[failed]).is_err());
        assert_eq!(spool.pending().len(), 1);
    }

    #[test]
    fn one_process_writes_a_spool_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Spool::open(dir.path(), 1 << 20).unwrap();
        let e = Spool::open(dir.path(), 1 << 20).err().unwrap().to_string();
        assert!(e.contains("in use by another process"), "{e}");
        // Reading it is still fine.
        assert!(Spool::open_read_only(dir.path()).is_ok());
    }

    fn collected(message: &str) -> Collected {
        Collected::from_alert(&format!(
            r#"{{"id":"errors","message":"{message}","time":"2026-11-26T10:00:00Z","level":"INFO"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn an_aggregates_window_survives_reopen_and_compaction_and_closes_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for n in 0..3 {
            let ticket = spool
                .collect_unsynced("agg", collected(&format!("e{n}")))
                .unwrap();
            spool.sync_through(ticket.record).unwrap();
        }
        let start = spool.windows()["agg"].start_ms;
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.windows()["agg"].count, 3);
        assert_eq!(spool.windows()["agg"].start_ms, start);
        spool.compact().unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.windows()["agg"].count, 3, "kept by compaction");
        let (ids, ticket) = spool
            .emit_unsynced(
                "agg",
                vec![(
                    "{\"id\":\"agg\"}".into(),
                    vec![("workspace".into(), "w".into())],
                )],
                vec![("other".into(), collected("chained"))],
            )
            .unwrap();
        spool.sync_through(ticket.record).unwrap();
        assert_eq!(ids.len(), 1);
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(!spool.windows().contains_key("agg"), "closed");
        assert_eq!(spool.windows()["other"].count, 1);
        let pending = spool.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].id, ids[0]);
        assert_eq!(
            pending[0].options,
            [("workspace".to_string(), "w".to_string())]
        );
    }
}
