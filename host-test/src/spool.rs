//! The durable spool: an alert the host accepted stays on disk until Slack
//! confirms it or it fails for good. An append-only journal, one JSON line
//! per record, each fsynced before the caller goes on:
//!
//! - `{"op":"accept","id":7,"alert":"<the alert JSON>","options":[...]}`
//! - `{"op":"done","id":7,"status":"delivered","detail":"..."}`
//!
//! Replaying the journal at start gives back what is pending. When nothing is
//! pending the journal is emptied, and when it would pass its size limit it
//! is rewritten with only the pending records; if that is still too big the
//! spool says it is full. Tokens never reach the spool: it holds alerts and
//! options, not the configuration.
//!
//! A crash between Slack's confirmation and the `done` record re-sends that
//! one alert after restart; that window is one fsync long.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    Accept {
        id: u64,
        alert: String,
        options: Vec<(String, String)>,
    },
    Done(Finished),
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
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Full { limit } => {
                write!(f, "the spool is full ({limit} bytes of pending alerts)")
            }
            SpoolError::Io(e) => write!(f, "the spool could not be written: {e:#}"),
        }
    }
}

/// The spool in one directory.
pub struct Spool {
    path: PathBuf,
    file: File,
    size: u64,
    limit: u64,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    /// Final statuses seen since the journal was last emptied, newest last.
    finished: Vec<Finished>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, replaying its journal.
    pub fn open(dir: &Path, limit: u64) -> Result<Spool> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the spool directory {}", dir.display()))?;
        let path = dir.join("journal.jsonl");
        let mut pending = BTreeMap::new();
        let mut finished = Vec::new();
        let mut next_id = 1;
        if path.exists() {
            let reader = BufReader::new(
                File::open(&path).with_context(|| format!("opening {}", path.display()))?,
            );
            for line in reader.lines() {
                let line = line.with_context(|| format!("reading {}", path.display()))?;
                // A line cut short by a crash mid-write is the last one; skip it.
                let Ok(record) = serde_json::from_str::<Record>(&line) else {
                    continue;
                };
                match record {
                    Record::Accept { id, alert, options } => {
                        next_id = next_id.max(id + 1);
                        pending.insert(id, Pending { id, alert, options });
                    }
                    Record::Done(done) => {
                        pending.remove(&done.id);
                        finished.push(done);
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata()?.len();
        Ok(Spool {
            path,
            file,
            size,
            limit,
            next_id,
            pending,
            finished,
        })
    }

    /// Puts an alert on disk; when this returns `Ok`, it survives a crash.
    pub fn accept(
        &mut self,
        alert: &str,
        options: Vec<(String, String)>,
    ) -> Result<u64, SpoolError> {
        let id = self.next_id;
        let record = Record::Accept {
            id,
            alert: alert.to_string(),
            options: options.clone(),
        };
        let line = serde_json::to_string(&record).map_err(|e| SpoolError::Io(e.into()))?;
        if self.size + line.len() as u64 + 1 > self.limit {
            self.compact().map_err(SpoolError::Io)?;
            if self.size + line.len() as u64 + 1 > self.limit {
                return Err(SpoolError::Full { limit: self.limit });
            }
        }
        self.append(&line).map_err(SpoolError::Io)?;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                id,
                alert: alert.to_string(),
                options,
            },
        );
        Ok(id)
    }

    /// Records how alert `id` ended after `attempts` requests; it is no
    /// longer pending.
    pub fn finish(&mut self, id: u64, status: Status, detail: &str, attempts: u32) -> Result<()> {
        let done = Finished {
            id,
            status,
            detail: detail.to_string(),
            attempts,
        };
        let line = serde_json::to_string(&Record::Done(done.clone()))?;
        self.append(&line)?;
        self.pending.remove(&id);
        self.finished.push(done);
        if self.pending.is_empty() && self.size > self.limit / 2 {
            self.compact()?;
        }
        Ok(())
    }

    /// The ids of the pending alerts, oldest first.
    pub fn pending_ids(&self) -> Vec<u64> {
        self.pending.keys().copied().collect()
    }

    /// One pending alert.
    pub fn get(&self, id: u64) -> Option<Pending> {
        self.pending.get(&id).cloned()
    }

    /// The pending alerts, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.pending.values().cloned().collect()
    }

    /// How the alerts finished since the journal was last compacted.
    pub fn finished(&self) -> &[Finished] {
        &self.finished
    }

    /// The spool as `GET /spool` and `host-test spool --json` show it: the
    /// pending ids and how the others ended.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::json!({"pending": self.pending_ids(), "finished": self.finished})
    }

    fn append(&mut self, line: &str) -> Result<()> {
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.file.sync_data()?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    /// Rewrites the journal with only the pending alerts (atomically: a
    /// new file, fsynced, renamed over the old one).
    fn compact(&mut self) -> Result<()> {
        let fresh = self.path.with_extension("jsonl.new");
        let mut out = File::create(&fresh)?;
        let mut size = 0;
        for p in self.pending.values() {
            let record = Record::Accept {
                id: p.id,
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
        self.size = size;
        Ok(())
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
        spool.finish(a, Status::Delivered, "ts 1.2", 1).unwrap();
        drop(spool);
        let spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            spool.pending().iter().map(|p| p.id).collect::<Vec<_>>(),
            [b]
        );
        assert_eq!(
            spool.finished()[0],
            Finished {
                id: a,
                status: Status::Delivered,
                detail: "ts 1.2".to_string(),
                attempts: 1
            }
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
        let mut spool = Spool::open(dir.path(), 300).unwrap();
        let first = spool.accept(&"x".repeat(100), vec![]).unwrap();
        spool.accept(&"y".repeat(100), vec![]).unwrap();
        match spool.accept(&"z".repeat(100), vec![]) {
            Err(SpoolError::Full { limit }) => assert_eq!(limit, 300),
            other => panic!("expected full, got {other:?}"),
        }
        // Finishing one makes room again (the journal is compacted).
        spool
            .finish(first, Status::Failed, "channel_not_found", 1)
            .unwrap();
        spool.accept(&"z".repeat(100), vec![]).unwrap();
        assert_eq!(spool.pending().len(), 2);
    }
}
