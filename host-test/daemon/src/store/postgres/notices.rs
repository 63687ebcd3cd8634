//! The arrivals' notifications (`NOTIFY`): what one says, and how often a
//! node sends them.
//!
//! A notification names its origin and the slots of the alerts it tells
//! of, so that a node owning none of them does not look (its own slots
//! too: one may be passing to another node as it commits). And a node
//! notifies at most once every [`SPACING`]: every listening backend
//! is woken by every notification (PostgreSQL signals each listener of
//! the database, whatever its channel), and so is each node's listener,
//! while a node hearing one waits [`super::COALESCE_HEARD`] to read them
//! all at once anyway. The slots of the commits in between are named by
//! the next commit due to notify or, once the spacing has passed and no
//! commit came, by a notification of their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock;
use crate::store::{Slots, ALL_SLOTS};

/// The channel a commit with new alerts notifies (`pg_notify`), every
/// node listening.
pub(crate) const ARRIVALS_CHANNEL: &str = "slack_alertd_arrivals";

/// How long a node waits at least between two notifications of its
/// arrivals.
pub const SPACING: Duration = Duration::from_millis(10);

/// Who a notification of arrivals is from, and the slots of the alerts it
/// tells of (every slot, for a notification that does not say).
pub fn read(payload: &str) -> (&str, Slots) {
    payload
        .rsplit_once(' ')
        .and_then(|(origin, slots)| Some((origin, u64::from_str_radix(slots, 16).ok()?)))
        .unwrap_or((payload, ALL_SLOTS))
}

/// What a notification of `slots` from `origin` says.
pub fn say(origin: &str, slots: Slots) -> String {
    format!("{origin} {slots:x}")
}

/// One node's notifications: when it last sent one, and the slots of its
/// committed alerts no notification has named yet.
#[derive(Default)]
pub struct Notices {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last: Option<Instant>,
    owed: Slots,
    /// A notification of what is owed is to be sent once the spacing has
    /// passed.
    armed: bool,
}

/// What one transaction's notifications named, and the slots of its
/// alerts they did not (named once it committed).
#[derive(Default)]
pub struct Said {
    named: AtomicU64,
    unsaid: AtomicU64,
}

impl Said {
    /// The slots a transaction's statement inserting alerts of `slots` is
    /// to name in its notification: none (`0`: it sends none) within
    /// [`SPACING`] of the last, then these and every slot owed.
    pub fn name(&self, notices: &Notices, slots: Slots) -> Slots {
        let mut state = lock(&notices.state);
        let due = state.last.is_none_or(|at| at.elapsed() >= SPACING);
        if !due || slots | state.owed == 0 {
            self.unsaid.fetch_or(slots, Ordering::Relaxed);
            return 0;
        }
        let named = slots | std::mem::take(&mut state.owed);
        state.last = Some(Instant::now());
        self.named.fetch_or(named, Ordering::Relaxed);
        named
    }
}

impl Notices {
    /// A transaction committed: what it did not name is owed. Whether a
    /// notification of its own is to be sent, at the instant given
    /// ([`Notices::due`] then).
    pub fn committed(&self, said: &Said) -> Option<Instant> {
        let owe = said.unsaid.load(Ordering::Relaxed) & !said.named.load(Ordering::Relaxed);
        self.owe(owe)
    }

    /// A transaction rolled back: what it named is owed again (the slots
    /// owed before it were committed by earlier ones).
    pub fn rolled_back(&self, said: &Said) -> Option<Instant> {
        self.owe(said.named.load(Ordering::Relaxed))
    }

    fn owe(&self, slots: Slots) -> Option<Instant> {
        let mut state = lock(&self.state);
        state.owed |= slots;
        if state.owed == 0 || state.armed {
            return None;
        }
        state.armed = true;
        Some(state.last.map_or_else(Instant::now, |at| at + SPACING))
    }

    /// The slots owed, to name in a notification of their own now (none if
    /// a commit named them meanwhile).
    pub fn due(&self) -> Slots {
        let mut state = lock(&self.state);
        state.armed = false;
        let owed = std::mem::take(&mut state.owed);
        if owed != 0 {
            state.last = Some(Instant::now());
        }
        owed
    }

    /// A notification of `slots` of its own could not be sent: owed again,
    /// named by the next commit.
    pub fn unsent(&self, slots: Slots) {
        lock(&self.state).owed |= slots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_names_its_origin_and_slots_or_every_slot() {
        assert_eq!(read("n1/ab12 c0"), ("n1/ab12", 0xc0));
        assert_eq!(
            read("n1/ab12"),
            ("n1/ab12", ALL_SLOTS),
            "a version 6 node's says only its origin"
        );
        assert_eq!(read("node one/ab12 1"), ("node one/ab12", 1));
        assert_eq!(read(&say("n1/ab12", 0xc0)), ("n1/ab12", 0xc0));
    }

    #[test]
    fn commits_within_the_spacing_are_named_by_the_next_due_or_on_their_own() {
        let notices = Notices::default();
        // The first commit notifies at once.
        let first = Said::default();
        assert_eq!(first.name(&notices, 0b1), 0b1);
        assert_eq!(notices.committed(&first), None);
        // The next, within the spacing, does not: its slots are owed once
        // it committed, and a notification of their own is armed.
        let second = Said::default();
        assert_eq!(second.name(&notices, 0b10), 0);
        let at = notices.committed(&second).expect("armed");
        assert!(at > Instant::now() && at <= Instant::now() + SPACING);
        // Another meanwhile adds to what is owed, arms nothing more.
        let third = Said::default();
        assert_eq!(third.name(&notices, 0b100), 0);
        assert_eq!(notices.committed(&third), None);
        std::thread::sleep(SPACING);
        assert_eq!(notices.due(), 0b110);
        assert_eq!(notices.due(), 0, "owed once");
        // A commit inserting nothing, nothing owed: no notification.
        std::thread::sleep(SPACING);
        let own = Said::default();
        assert_eq!(own.name(&notices, 0), 0);
        assert_eq!(notices.committed(&own), None);
    }

    #[test]
    fn a_due_commit_names_what_is_owed_and_a_rolled_back_one_owes_it_again() {
        let notices = Notices::default();
        let first = Said::default();
        assert_eq!(first.name(&notices, 0b1), 0b1);
        let second = Said::default();
        assert_eq!(second.name(&notices, 0b10), 0);
        assert!(notices.committed(&second).is_some());
        std::thread::sleep(SPACING);
        let third = Said::default();
        assert_eq!(third.name(&notices, 0b100), 0b110);
        assert_eq!(notices.rolled_back(&third), None, "armed already");
        assert_eq!(notices.due(), 0b110);
    }
}
