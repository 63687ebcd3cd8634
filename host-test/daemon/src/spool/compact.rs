//! Compaction: the journal rewritten with only what the state needs — the
//! next id, the alert messages (oldest first), the open windows, the failed
//! alerts kept and the pending alerts — when nothing is pending and it grew
//! past half its limit, or when it would pass its limit. The new journal is
//! written beside the old one, fsynced, and renamed over it
//! ([`JournalFile::replace`](super::file::JournalFile::replace)); if any
//! step fails, the old journal stays.

use std::io;

use super::state::State;
use super::Spool;
use crate::store::record::Record;

impl State {
    /// The records a compacted journal holds: the next id, the alert
    /// messages (oldest first), the open windows, the failed alerts kept,
    /// the clicks acted on lately and the pending alerts. Replaying them gives this state back (but
    /// for the history of endings, which compaction forgets).
    pub(crate) fn snapshot(&self, next_id: u64) -> impl Iterator<Item = Record> + '_ {
        std::iter::once(Record::Ids {
            next: next_id.max(self.next_id),
        })
        .chain(self.messages.oldest_first().cloned().map(Record::Message))
        .chain(self.windows.iter().map(|(handler, window)| Record::Window {
            handler: handler.clone(),
            window: window.clone(),
        }))
        .chain(self.failed.by_id.values().cloned().map(Record::Failed))
        .chain(
            self.clicks
                .oldest_first()
                .map(|(at, identity)| Record::Clicked {
                    identity: identity.clone(),
                    at: *at,
                }),
        )
        .chain(self.pending.values().map(|(p, _)| Record::Accept {
            id: p.id,
            at: p.at,
            alert: p.alert.clone(),
            options: p.options.clone(),
        }))
    }

    /// About the size of the journal compaction would write now.
    pub(crate) fn live_bytes(&self) -> u64 {
        let windows: u64 = self
            .windows
            .iter()
            .map(|(handler, window)| {
                Record::Window {
                    handler: handler.clone(),
                    window: window.clone(),
                }
                .line()
                .len() as u64
                    + 1
            })
            .sum();
        // The `ids` line: 30 bytes is room for any id.
        30 + self.messages.bytes + self.failed.bytes + windows + self.pending_bytes
    }
}

impl Spool {
    /// Rewrites the journal with what the durable state needs, atomically.
    pub(super) fn compact(&mut self) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        file.replace(self.state.snapshot(self.next_id).map(|r| r.line()))
    }
}
