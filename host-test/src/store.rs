//! What `serve` keeps so that nothing it acknowledged is lost: the store,
//! behind one interface. The journal file of [`crate::spool`] is the
//! embedded store; one shared by several nodes (PostgreSQL) implements the
//! same trait.
//!
//! Writes are made without waiting for durability and return a [`Ticket`];
//! a write is durable once a [`SyncPoint`] taken after it has run, which
//! [`crate::commit::GroupCommit`] shares among every writer waiting.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::aggregate::{Collected, Window};
use crate::spool::{AlertMessage, Finished, Pending, Spool, SpoolError, Ticket};

/// What makes every write so far durable, run outside the store's lock,
/// and how many writes it covers.
pub struct SyncPoint {
    /// Writes made so far (a [`Ticket`] is durable once this passes it).
    pub through: u64,
    /// `None` when every write is durable already.
    pub sync: Option<Box<dyn FnOnce() -> std::io::Result<()> + Send>>,
}

/// The store `serve` runs on.
pub trait Store: Send {
    /// Takes an alert for delivery (with its handler options).
    fn accept(&mut self, alert: &str, options: Vec<(String, String)>)
        -> Result<Ticket, SpoolError>;
    /// Adds an event to an `aggregate` handler's open window.
    fn collect(&mut self, handler: &str, event: Collected) -> Result<Ticket, SpoolError>;
    /// Closes an aggregate's window, taking the alerts and collections its
    /// event became, at once.
    fn emit(
        &mut self,
        handler: &str,
        accepts: Vec<(String, Vec<(String, String)>)>,
        collects: Vec<(String, Collected)>,
    ) -> Result<(Vec<u64>, Ticket), SpoolError>;
    /// Records how an alert ended (and what that makes its message).
    fn finish(&mut self, done: Finished) -> Result<Ticket>;
    /// Takes failed alerts again as new ones.
    fn resend(&mut self, ids: &[u64]) -> Result<Vec<(u64, Ticket)>, SpoolError>;

    /// The pending alerts accepted after `id`, oldest first.
    fn pending_after(&self, id: u64) -> Vec<Pending>;
    /// The newest id given out.
    fn last_id(&self) -> u64;
    /// The message kept for alert key `key`.
    fn message(&self, key: &str) -> Option<AlertMessage>;
    /// The aggregates' open windows.
    fn windows(&self) -> BTreeMap<String, Window>;
    /// The failed alerts that can be resent, oldest first.
    fn failed_ids(&self) -> Vec<u64>;
    fn pending_count(&self) -> usize;
    fn oldest_pending_age(&self) -> Option<std::time::Duration>;
    /// What `GET /spool` shows.
    fn status_json(&self) -> serde_json::Value;

    /// What makes every write so far durable.
    fn sync_point(&mut self) -> std::io::Result<SyncPoint>;
}

impl Store for Spool {
    fn accept(
        &mut self,
        alert: &str,
        options: Vec<(String, String)>,
    ) -> Result<Ticket, SpoolError> {
        self.accept_unsynced(alert, options)
    }

    fn collect(&mut self, handler: &str, event: Collected) -> Result<Ticket, SpoolError> {
        self.collect_unsynced(handler, event)
    }

    fn emit(
        &mut self,
        handler: &str,
        accepts: Vec<(String, Vec<(String, String)>)>,
        collects: Vec<(String, Collected)>,
    ) -> Result<(Vec<u64>, Ticket), SpoolError> {
        self.emit_unsynced(handler, accepts, collects)
    }

    fn finish(&mut self, done: Finished) -> Result<Ticket> {
        self.finish_unsynced(done)
    }

    fn resend(&mut self, ids: &[u64]) -> Result<Vec<(u64, Ticket)>, SpoolError> {
        self.resend_unsynced(ids)
    }

    fn pending_after(&self, id: u64) -> Vec<Pending> {
        Spool::pending_after(self, id)
    }

    fn last_id(&self) -> u64 {
        Spool::last_id(self)
    }

    fn message(&self, key: &str) -> Option<AlertMessage> {
        Spool::message(self, key).cloned()
    }

    fn windows(&self) -> BTreeMap<String, Window> {
        Spool::windows(self).clone()
    }

    fn failed_ids(&self) -> Vec<u64> {
        self.failed_alerts().map(|f| f.id).collect()
    }

    fn pending_count(&self) -> usize {
        Spool::pending_count(self)
    }

    fn oldest_pending_age(&self) -> Option<std::time::Duration> {
        Spool::oldest_pending_age(self)
    }

    fn status_json(&self) -> serde_json::Value {
        Spool::status_json(self)
    }

    fn sync_point(&mut self) -> std::io::Result<SyncPoint> {
        let (file, through) = Spool::sync_point(self)?;
        Ok(SyncPoint {
            through,
            sync: file.map(|file| {
                Box::new(move || file.sync_data())
                    as Box<dyn FnOnce() -> std::io::Result<()> + Send>
            }),
        })
    }
}
