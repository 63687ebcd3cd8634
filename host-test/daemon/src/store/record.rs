//! The writes every store stages, numbered, until a sync makes them
//! durable: the journal writes each as one JSON line, PostgreSQL executes
//! a batch of them in one transaction.

use serde::{Deserialize, Serialize};

use crate::store::{Act, AlertMessage, FailedAlert, Finished};

use kapacitor_formats::aggregate::{Collected, Window};

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Record {
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
    /// What a click did to alert `key`'s message (nothing, if the key has
    /// none by then).
    Act {
        key: String,
        act: Act,
        /// The click's identity and when it was acted on (ms): a click
        /// whose identity is already recorded changes nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        click: Option<(String, u64)>,
    },
    /// A click acted on, kept across a compaction (for
    /// [`crate::store::CLICKS_KEPT`]).
    Clicked {
        identity: String,
        at: u64,
    },
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
        /// The window closed, as its closer saw it (start and count): a
        /// store shared by several nodes closes it only if it still holds
        /// that. The journal has one writer and ignores it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closes: Option<(u64, u64)>,
    },
}

impl Record {
    /// The record as its journal line, without the newline.
    pub(crate) fn line(&self) -> String {
        // Every field is a string, a number or a list of them: this cannot
        // fail (serde_json fails only on maps with non-string keys).
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An alert accepted inside another record (an aggregate's `emit`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NewAlert {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) at: u64,
    pub(crate) alert: String,
    pub(crate) options: Vec<(String, String)>,
}

/// The most failed alerts kept for sending again. Past it, or past an
/// eighth of the spool's size limit (so they never crowd out pending
/// alerts), the oldest is dropped.
pub const MAX_FAILED: usize = 1_000;

/// How many finished alerts a spool remembers by default, newest kept.
pub const KEEP_FINISHED: usize = 10_000;

/// The most alert messages kept. Past it, or past a quarter of the spool's
/// size limit (so pending alerts always keep three quarters), the oldest
/// kept is dropped: that alert's next event starts a new message.
pub const MAX_MESSAGES: usize = 10_000;
