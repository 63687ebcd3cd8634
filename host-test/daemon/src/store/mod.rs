//! What `serve` keeps so that nothing it acknowledged is lost: the store,
//! behind one interface. The journal file of [`crate::spool`] is the
//! embedded store; one shared by several nodes (PostgreSQL) implements the
//! same trait.
//!
//! Writes are staged and numbered ([`Ticket`]); they take effect, and are
//! shown, only once a sync covering them succeeded: [`Store::begin_sync`]
//! under the store's lock, the returned job outside it, [`Store::end_sync`]
//! under it again. [`crate::commit::GroupCommit`] runs syncs for every
//! writer waiting and is the only way serve writes. A sync that fails drops
//! its writes: none of them takes effect, and their writers are told.

use std::collections::BTreeMap;
use std::io;

use crate::spool::{AlertMessage, Finished, Listing, Page, Pending, Spool, SpoolError, Ticket};
use kapacitor_formats::aggregate::{Collected, Window};

/// How a sync began.
pub enum SyncStart {
    /// Nothing was staged: every write through `through` has settled.
    Done { through: u64 },
    /// The writes through `through` are written; `sync` makes them durable
    /// (run it outside the lock, then [`Store::end_sync`] with its result).
    Started {
        through: u64,
        sync: Box<dyn FnOnce() -> io::Result<()> + Send>,
    },
    /// The writes through `through` could not be written and are dropped.
    Failed { through: u64, error: io::Error },
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
    fn finish(&mut self, done: Finished) -> Result<Ticket, SpoolError>;
    /// Takes failed alerts again as new ones.
    fn resend(&mut self, ids: &[u64]) -> Result<Vec<(u64, Ticket)>, SpoolError>;
    /// Writes made so far (the newest ticket's number).
    fn written(&self) -> u64;
    /// Drops the writes numbered past `to` that no sync has begun on.
    fn rollback(&mut self, to: u64);

    /// The pending alerts accepted after `id`, oldest first.
    fn pending_after(&self, id: u64) -> Vec<Pending>;
    /// The newest id of a durable alert.
    fn last_id(&self) -> u64;
    /// The message kept for alert key `key`.
    fn message(&self, key: &str) -> Option<AlertMessage>;
    /// The aggregates' open windows.
    fn windows(&self) -> BTreeMap<String, Window>;
    /// The failed alerts that can be resent, oldest first.
    fn failed_ids(&self) -> Vec<u64>;
    fn pending_count(&self) -> usize;
    fn oldest_pending_age(&self) -> Option<std::time::Duration>;
    /// How many entries `list` holds.
    fn count(&self, list: Listing) -> usize;
    /// At most `limit` entries of `list` past cursor `after`.
    fn page(&self, list: Listing, after: Option<u64>, limit: usize) -> Page;
    /// Why writes are failing, while they are.
    fn trouble(&self) -> Option<String>;

    /// Starts making every staged write durable.
    fn begin_sync(&mut self) -> SyncStart;
    /// Ends it: the writes take effect, or (on an error) are dropped.
    fn end_sync(&mut self, synced: io::Result<()>) -> io::Result<()>;
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

    fn finish(&mut self, done: Finished) -> Result<Ticket, SpoolError> {
        self.finish_unsynced(done)
    }

    fn resend(&mut self, ids: &[u64]) -> Result<Vec<(u64, Ticket)>, SpoolError> {
        self.resend_unsynced(ids)
    }

    fn written(&self) -> u64 {
        Spool::written(self)
    }

    fn rollback(&mut self, to: u64) {
        Spool::rollback(self, to)
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

    fn count(&self, list: Listing) -> usize {
        Spool::count(self, list)
    }

    fn page(&self, list: Listing, after: Option<u64>, limit: usize) -> Page {
        Spool::page(self, list, after, limit)
    }

    fn trouble(&self) -> Option<String> {
        Spool::trouble(self).map(str::to_string)
    }

    fn begin_sync(&mut self) -> SyncStart {
        Spool::begin_sync(self)
    }

    fn end_sync(&mut self, synced: io::Result<()>) -> io::Result<()> {
        Spool::end_sync(self, synced)
    }
}
