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

mod alert;
pub mod postgres;

pub use alert::{
    alert_key, with_previous, AlertMessage, FailedAlert, Finished, Pending, Status,
    PREVIOUS_CHANNEL_ID, PREVIOUS_TS,
};
use kapacitor_formats::aggregate::{Collected, Window};

/// A write, numbered in the order it was made: durable once a sync covering
/// its number has succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The alert it accepted (0 when it accepted none).
    pub id: u64,
    /// Its number among the writes made since the store opened.
    record: u64,
}

impl Ticket {
    /// A store's ticket for write number `record` (of alert `id`, or 0).
    pub fn new(id: u64, record: u64) -> Ticket {
        Ticket { id, record }
    }

    /// Its number among the writes made since the store opened.
    pub fn record(&self) -> u64 {
        self.record
    }
}

/// Why a write was not taken.
#[derive(Debug)]
pub enum StoreError {
    /// The spool is at its size limit with what it must keep.
    Full {
        limit: u64,
    },
    Io(anyhow::Error),
    /// A resend named an id that is not a failed alert the spool keeps.
    NotFailed {
        id: u64,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Full { limit } => {
                write!(f, "the spool is full ({limit} bytes of pending alerts)")
            }
            StoreError::Io(e) => write!(f, "the store could not be written: {e:#}"),
            StoreError::NotFailed { id } => write!(
                f,
                "alert {id} is not a failed alert the store keeps (it was delivered, is pending, was resent, or is older than the failures kept)"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// One of the lists a store shows (`GET /spool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Pending alerts' ids, oldest first.
    Pending,
    /// How alerts ended, newest first.
    Finished,
    /// The alert messages kept, oldest first.
    Messages,
    /// Failed alerts that can be sent again (id and why), oldest first.
    Resendable,
}

impl Listing {
    pub const ALL: [Listing; 4] = [
        Listing::Pending,
        Listing::Finished,
        Listing::Messages,
        Listing::Resendable,
    ];

    /// Its name in `GET /spool`.
    pub fn name(self) -> &'static str {
        match self {
            Listing::Pending => "pending",
            Listing::Finished => "finished",
            Listing::Messages => "messages",
            Listing::Resendable => "resendable",
        }
    }

    pub fn named(name: &str) -> Option<Listing> {
        Listing::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// An entry of one of the lists, as `GET /spool` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Entry {
    /// A pending alert's id.
    Pending(u64),
    /// How an alert ended.
    Finished(Finished),
    /// An alert's message, kept for its later events.
    Message(AlertMessage),
    /// A failed alert that can be sent again, and why it failed.
    Resendable {
        /// Its id.
        id: u64,
        /// Why it failed.
        detail: String,
    },
}

/// A page of a list: its entries, and the cursor of the next page (`None`
/// on the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The entries, in the list's order.
    pub items: Vec<Entry>,
    /// Where the next page starts (`?after=`).
    pub next: Option<u64>,
}

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
        -> Result<Ticket, StoreError>;
    /// Adds an event to an `aggregate` handler's open window.
    fn collect(&mut self, handler: &str, event: Collected) -> Result<Ticket, StoreError>;
    /// Closes an aggregate's window, taking the alerts and collections its
    /// event became, at once.
    fn emit(
        &mut self,
        handler: &str,
        accepts: Vec<(String, Vec<(String, String)>)>,
        collects: Vec<(String, Collected)>,
    ) -> Result<(Vec<u64>, Ticket), StoreError>;
    /// Records how an alert ended (and what that makes its message).
    fn finish(&mut self, done: Finished) -> Result<Ticket, StoreError>;
    /// Takes failed alerts again as new ones.
    fn resend(&mut self, ids: &[u64]) -> Result<Vec<(u64, Ticket)>, StoreError>;
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
