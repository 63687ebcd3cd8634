//! What `serve` keeps so that nothing it acknowledged is lost: the store,
//! behind one interface. The journal file of [`crate::spool`] is the
//! embedded store; [`postgres`] is one shared by several nodes. The engine
//! (planner, scheduler, deliveries, aggregator) runs on either without
//! knowing which.
//!
//! **Claims.** A node hears of pending alerts ([`Claims::arrivals`]),
//! schedules them, and before it sends one it claims it
//! ([`Claims::claim`]): the store says go (with the alert key's message so
//! far), not yet (another node is sending to that channel, its pacing or a
//! `Retry-After` says wait, or an earlier event of the alert is pending),
//! or gone (another node ended it). A claim is held under a lease the node
//! renews while its requests are out ([`Claims::renew`]); the attempt ends
//! with [`Writes::finish`] (the ending, durably) and [`Writes::released`]
//! (the channel's pacing from when the request left, a retry's wait),
//! both in one group commit. A node that dies loses its claims when their
//! leases run out. The journal has one node: its claims are always
//! granted, the scheduler alone paces.
//!
//! **Owners.** On a shared store the channels are shared out among the
//! live nodes in slots ([`SLOTS`], leased like claims): the owner of a
//! channel is the only node that sends to it, so its claims need no
//! round trip of their own (a batched read gives the alerts' state and
//! messages) and are fenced by the slot ([`Fence::Slot`]).
//!
//! Writes are staged and numbered ([`Ticket`]); they take effect, and are
//! shown, only once a sync covering them succeeded: [`Commits::begin_sync`]
//! under the store's lock, the returned job outside it, [`Commits::end_sync`]
//! under it again. [`crate::commit::GroupCommit`] runs syncs for every
//! writer waiting and is the only way serve writes. A sync that fails drops
//! its writes: none of them takes effect, and their writers are told.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod alert;
pub mod outage;
pub mod postgres;
pub(crate) mod record;

pub use alert::{
    alert_key, button_key, for_plugin, is_refresh, key_options, matches_button, plugin_of,
    with_previous, Act, AlertMessage, FailedAlert, Finished, Mark, Pending, Status,
    ACKNOWLEDGED_AT, ACKNOWLEDGED_BY, ALERT_KEY, DIGEST_PREFIX, HANDLER_KIND, HOST_OPTIONS,
    PREVIOUS_CHANNEL_ID, PREVIOUS_TS, REFRESH, SHOWN_IN_STORM, SILENCED_BY, SILENCED_UNTIL,
};
use kapacitor_formats::aggregate::{Collected, Window};

/// How long a store remembers a click it acted on, to take the same
/// click again as done: well past the signature window (5 minutes), after
/// which the component refuses a replay by its timestamp.
pub const CLICKS_KEPT: Duration = Duration::from_secs(15 * 60);

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

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
    /// The journal is at its size limit (`--spool-max-kib`) with what it
    /// must keep.
    JournalFull {
        limit: u64,
    },
    Io(anyhow::Error),
    /// A resend named an id that is not a failed alert the store keeps.
    NotFailed {
        id: u64,
    },
    /// The store cannot be reached now (a database away): try again later.
    Unavailable(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::JournalFull { limit } => {
                write!(
                    f,
                    "the journal is full ({limit} bytes of pending alerts, --spool-max-kib)"
                )
            }
            StoreError::Io(e) => write!(f, "the store could not be written: {e:#}"),
            StoreError::NotFailed { id } => write!(
                f,
                "alert {id} is not a failed alert the store keeps (it was delivered, is pending, was resent, or is older than the failures kept)"
            ),
            StoreError::Unavailable(why) => write!(f, "the store is unavailable: {why}"),
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
    /// Sends made twice (an ending that came after its claim had passed
    /// to another node), newest first. Only a store shared by several
    /// nodes has any.
    Duplicates,
}

impl Listing {
    pub const ALL: [Listing; 5] = [
        Listing::Pending,
        Listing::Finished,
        Listing::Messages,
        Listing::Resendable,
        Listing::Duplicates,
    ];

    /// Its name in `GET /spool`.
    pub fn name(self) -> &'static str {
        match self {
            Listing::Pending => "pending",
            Listing::Finished => "finished",
            Listing::Messages => "messages",
            Listing::Resendable => "resendable",
            Listing::Duplicates => "duplicates",
        }
    }

    pub fn named(name: &str) -> Option<Listing> {
        Listing::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Every list's name, for a message naming them all: separated by
    /// `, `, and by `last` before the last one.
    pub fn names(last: &str) -> String {
        let names = Listing::ALL.map(Listing::name);
        let (final_name, others) = names.split_last().expect("lists");
        format!("{}{last}{final_name}", others.join(", "))
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
    /// An alert sent twice: a node's ending that came after its claim had
    /// passed on, so another node may have sent it too.
    Duplicate {
        /// The alert's id.
        alert: u64,
        /// The node whose ending came late.
        node: String,
        /// When it was recorded (ms since the epoch, the database's clock).
        recorded_ms: u64,
        /// What the late ending said (its channel and `ts` when sent).
        late: String,
        /// What the alert's recorded ending says (the message kept).
        kept: Option<String>,
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

/// Makes every write staged in `store` durable now, on this thread (for a
/// store no group commit runs on: the `spool` command, tests).
pub fn sync_now(store: &mut dyn Store) -> io::Result<()> {
    match store.begin_sync() {
        SyncStart::Done { .. } => Ok(()),
        SyncStart::Failed { error, .. } => Err(error),
        SyncStart::Started { sync, .. } => {
            let synced = sync();
            store.end_sync(synced)
        }
    }
}

/// Work a store does outside its lock (a database round trip), awaited
/// by whoever asked; the journal's are ready at once.
pub type Job<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// A [`Job`] already done.
pub fn ready<T: Send + 'static>(value: Result<T, StoreError>) -> Job<T> {
    Box::pin(std::future::ready(value))
}

/// What a node asks before it sends an alert.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub id: u64,
    /// Its pacing key (workspace and channel).
    pub channel: String,
    /// Its alert key: one key's events go in order.
    pub key: String,
}

/// What a claim got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Send it now: it is this node's until its lease runs out.
    Granted {
        /// The alert key's message so far (`on-recovery` `update`,
        /// `thread`), whichever node made it.
        message: Option<Box<AlertMessage>>,
        /// Requests made for it so far, by every node (`None`: the store
        /// does not count them; the node's own count holds).
        attempts: Option<u32>,
        /// The claim's fencing token: its ending and release carry it,
        /// and take effect only while it holds ([`Fence`]). `None`: the
        /// store has one node.
        fence: Option<Fence>,
    },
    /// Not now: ask again after `wait` (another node is sending to the
    /// channel or paced it, or an earlier event of the alert is pending).
    NotYet { wait: Duration },
    /// No longer pending (another node ended it): forget it.
    Gone,
}

/// What fences an attempt's ending and release off once another node
/// may be sending the alert: they take effect only while it holds, and a
/// late delivery is recorded as the duplicate it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fence {
    /// A claim the database granted (the alert's claim generation): while
    /// no later claim of the alert was granted.
    Claim(u64),
    /// The channel is this node's ([`owns`]): while the slot is still
    /// this node's. The owner of a channel claims without a round trip.
    Slot(u32),
}

/// How an attempt left its claim.
#[derive(Debug, Clone)]
pub struct Release {
    pub id: u64,
    pub channel: String,
    /// When the request left (the channel is paced from then).
    pub left: Option<SystemTime>,
    /// It is tried again (`None`: it ended, and [`Writes::finish`] recorded
    /// how).
    pub retry: Option<Retry>,
    /// Requests made for it so far.
    pub attempts: u32,
    /// The claim's fencing token ([`Claim::Granted`]): a release under a
    /// claim that passed to another node changes nothing of the alert's.
    pub fence: Option<Fence>,
}

/// An attempt to be tried again.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// After this long.
    pub wait: Duration,
    /// Slack said when (`Retry-After`): the channel waits too.
    pub retry_after: bool,
    /// It was a `429`.
    pub rate_limited: bool,
}

/// A storm message's send asks for its turn ([`Claims::storm_turn`]).
#[derive(Debug, Clone)]
pub struct StormTurn {
    /// The storm's channel (its pacing key): held by this node while the
    /// send is out; a post is paced with the channel's messages.
    pub channel: String,
    /// For an edit: the workspace's `chat.update` budget (its key, e.g.
    /// `updates <workspace>`, and its rules), spent by every node.
    pub budget: Option<(String, crate::scheduler::Rules)>,
}

/// How a storm message's send ended ([`Claims::storm_done`]).
#[derive(Debug, Clone)]
pub struct StormDone {
    pub turn: StormTurn,
    /// When the request left (a post paces the channel from then).
    pub left: Option<SystemTime>,
    /// It is tried again: a `Retry-After` blocks the channel (a post) or
    /// the workspace's budget (an edit) for every node.
    pub retry: Option<Retry>,
}

/// Lists as `GET /spool` shows them: every list's count and the pages
/// asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lists {
    pub counts: Vec<(Listing, usize)>,
    pub pages: Vec<(Listing, Page)>,
}

/// Called by a store when other nodes wrote something this node should
/// look at (alerts arrived).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The channel (pacing key) an alert goes to, as the planner finds it from
/// its id, its alert JSON and its handler options; `None`: not known
/// before it is decoded (a redraw whose storm names no channel).
pub type ChannelOf = Arc<dyn Fn(u64, &str, &[(String, String)]) -> Option<String> + Send + Sync>;

/// How a sync began.
pub enum SyncStart {
    /// Nothing was staged: every write through `through` has settled.
    Done { through: u64 },
    /// The writes through `through` are written; `sync` makes them durable
    /// (run it outside the lock, then [`Commits::end_sync`] with its result).
    Started {
        through: u64,
        sync: Box<dyn FnOnce() -> io::Result<()> + Send>,
    },
    /// The writes through `through` could not be written and are dropped.
    Failed { through: u64, error: io::Error },
}

/// The store `serve` runs on: the journal file or PostgreSQL, each
/// implementing every role below, each role small enough to read at once.
/// The engine holds it as `dyn Store` and uses the role it needs.
pub trait Store: Writes + Commits + Claims + Reads + Health + Send {}

impl<T: Writes + Commits + Claims + Reads + Health + Send> Store for T {}

/// Durable writes, staged and numbered ([`Ticket`]); they take effect once
/// a sync covering them succeeded ([`Commits`]).
pub trait Writes {
    /// Takes an alert for delivery (with its handler options).
    fn accept(&mut self, alert: &str, options: Vec<(String, String)>)
        -> Result<Ticket, StoreError>;

    /// Adds an event to an `aggregate` handler's open window.
    fn collect(&mut self, handler: &str, event: Collected) -> Result<Ticket, StoreError>;

    /// Closes an aggregate's `window` (as [`Reads::windows`] showed it),
    /// taking the alerts and collections its event became, at once. With
    /// several nodes, only the first to close it does, and only if it
    /// still holds what was shown (else nothing is written, and the
    /// window is closed later from what it holds then).
    fn emit(
        &mut self,
        handler: &str,
        window: &Window,
        accepts: Vec<(String, Vec<(String, String)>)>,
        collects: Vec<(String, Collected)>,
    ) -> Result<(Vec<u64>, Ticket), StoreError>;

    /// Records how an alert ended (and what that makes its message).
    fn finish(&mut self, done: Finished) -> Result<Ticket, StoreError>;

    /// Keeps `message` as its key's message (a storm message and what it
    /// shows), keeping the key's marks (acknowledged, silenced): how a
    /// storm's message lives across restarts and nodes.
    fn keep(&mut self, message: AlertMessage) -> Result<Ticket, StoreError>;

    /// Records what click `identity` did to alert `key`'s message
    /// (acknowledged, silenced, unsilenced); nothing if the key has no
    /// message by then, or if a click of that identity was recorded
    /// before (by any node).
    fn act(&mut self, key: &str, act: Act, identity: &str) -> Result<Ticket, StoreError>;

    /// Takes failed alerts again as new ones (found by
    /// [`Reads::resendable`]).
    fn resend(&mut self, failed: &[FailedAlert]) -> Result<Vec<(u64, Ticket)>, StoreError>;

    /// Lets an attempt's claim go, written with the next group commit
    /// (with the attempt's ending when it ended): the channel paced from
    /// when the request left, a retry's wait and a `Retry-After` kept for
    /// whichever node sends the channel next. The journal's one node
    /// keeps its pacing in its scheduler: nothing to write.
    fn released(&mut self, release: Release) -> Result<Ticket, StoreError>;
}

/// The commit mechanics the group commit ([`crate::commit::GroupCommit`])
/// drives: begin a sync under the lock, run it outside, end it under the
/// lock again.
pub trait Commits {
    /// Writes made so far (the newest ticket's number).
    fn written(&self) -> u64;

    /// Drops the writes numbered past `to` that no sync has begun on.
    fn rollback(&mut self, to: u64);

    /// Starts making every staged write durable.
    fn begin_sync(&mut self) -> SyncStart;

    /// Ends it: the writes take effect, or (on an error) are dropped.
    fn end_sync(&mut self, synced: io::Result<()>) -> io::Result<()>;
}

/// Which node sends what, and when: arrivals, claims and their leases,
/// releases (see the module's doc).
pub trait Claims {
    /// The pending alerts this node has not been given yet, oldest first
    /// (the first call: every pending alert).
    fn arrivals(&mut self) -> Vec<Pending>;

    /// Calls `wake` when alerts arrive that this node did not write.
    fn watch(&mut self, _wake: Wake) {}

    /// How to find an alert's channel as it is accepted. A store shared by
    /// several nodes files each alert under its channel's slot, and gives
    /// a node only the alerts of the slots it owns (a slot it comes to own:
    /// its pending alerts then). The journal's one node owns them all.
    fn plan_by(&mut self, _channel_of: ChannelOf) {}

    /// Asks to send an alert now.
    fn claim(&self, request: ClaimRequest) -> Job<Claim>;

    /// How often this node must renew its claims (`None`: they do not
    /// expire).
    fn lease(&self) -> Option<Duration> {
        None
    }

    /// Renews the leases of every claim this node holds, and of the
    /// channel slots it owns, taking or giving back slots so the live
    /// nodes share them ([`SLOTS`]): the slots it owns now. The journal's
    /// one node owns every one.
    fn renew(&self) -> Job<Slots> {
        ready(Ok(ALL_SLOTS))
    }

    /// This node stops: the channel slots it owns are given back at once
    /// (the others take them at their next renewal, not after a lease),
    /// and it no longer counts among the live nodes.
    fn leave(&self) -> Job<()> {
        ready(Ok(()))
    }

    /// Asks for a storm message's send to go now: no other node is sending
    /// to its channel, a post's channel pacing and an edit's update budget
    /// allow it. Granted ([`Claim::Granted`], nothing in it), the channel
    /// is this node's until [`Claims::storm_done`] or its lease runs out;
    /// else [`Claim::NotYet`]. The journal's one node always may (its
    /// scheduler and budget pace it).
    fn storm_turn(&self, _turn: StormTurn) -> Job<Claim> {
        ready(Ok(Claim::Granted {
            message: None,
            attempts: None,
            fence: None,
        }))
    }

    /// Ends a storm message's turn: the channel paced from when the request
    /// left and let go; a retry's `Retry-After` blocks the channel or the
    /// budget.
    fn storm_done(&self, _done: StormDone) -> Job<()> {
        ready(Ok(()))
    }
}

/// How many slots the channels are shared out in, among the nodes of a
/// shared store: a channel (its pacing key) is in one slot
/// ([`slot_of`]), and a node plans and sends only the alerts of the
/// channels in the slots it owns.
pub const SLOTS: u32 = 64;

/// A set of slots: bit `n` for slot `n`.
pub type Slots = u64;

/// Every slot: a node alone (the journal) owns them all.
pub const ALL_SLOTS: Slots = u64::MAX;

/// The slot of a channel's pacing key: FNV-1a of its bytes, the same on
/// every node and in every version (a change would move every channel).
pub fn slot_of(pacing_key: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pacing_key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(SLOTS)) as u32
}

/// Whether `slots` holds the slot of `pacing_key`.
pub fn owns(slots: Slots, pacing_key: &str) -> bool {
    slots & (1 << slot_of(pacing_key)) != 0
}

/// What the store holds, read: a clicked alert's message, clicks seen,
/// aggregates' windows, failed alerts, the lists `GET /spool` shows, the
/// pending figures.
pub trait Reads {
    /// Whether a click of `identity` was recorded (within
    /// [`CLICKS_KEPT`]), by any node.
    fn clicked(&self, identity: &str) -> Job<bool>;

    /// The message kept under the alert key a button named (the key, or
    /// its digest: [`button_key`]), if any, with its marks and the last
    /// event it showed.
    fn message(&self, named: &str) -> Job<Option<AlertMessage>>;

    /// The aggregates' open windows.
    fn windows(&self) -> Job<BTreeMap<String, Window>>;

    /// The failed alerts kept for sending again: those named (an id that
    /// is not one is [`StoreError::NotFailed`]), or all (`None`).
    fn resendable(&self, ids: Option<Vec<u64>>) -> Job<Vec<FailedAlert>>;

    fn pending_count(&self) -> usize;

    fn oldest_pending_age(&self) -> Option<std::time::Duration>;

    /// Every list's count, and at most `limit` entries of each of `lists`
    /// past cursor `after`.
    fn lists(&self, lists: &[Listing], after: Option<u64>, limit: usize) -> Job<Lists>;
}

/// How the store is: why it fails, where its outages are said, what kind it
/// is, this node's name.
pub trait Health {
    /// Why writes are failing, while they are.
    fn trouble(&self) -> Option<String>;

    /// Where failures to use the store are reported (logged once an
    /// outage, not once a failure).
    fn outage(&self) -> Arc<outage::Outage>;

    /// What kind of store it is (`journal`, `postgres`).
    fn kind(&self) -> &'static str;

    /// This node's name among the nodes sharing the store (`None`: it has
    /// one node).
    fn node(&self) -> Option<String> {
        None
    }

    /// This node's sends found to be duplicates since it started: their
    /// ending came after their claim had passed to another node (a store
    /// shared by several nodes; the journal has none).
    fn duplicates(&self) -> u64 {
        0
    }

    /// The alerts ended (by any node) since cursor `after`, and the
    /// cursor to ask from next: how a node forgets the alerts of channels
    /// it does not own once their owner ended them. The last few endings
    /// before the cursor are given again, since one committed late may
    /// have been numbered before one committed earlier. The journal's one
    /// node ends every alert itself: none.
    fn ended_since(&self, after: u64) -> Job<(Vec<u64>, u64)> {
        ready(Ok((Vec::new(), after)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /spool`'s errors name every list, each by the name it takes.
    #[test]
    fn the_lists_are_named_as_get_spool_takes_them() {
        assert_eq!(
            Listing::names(" or "),
            "pending, finished, messages, resendable or duplicates"
        );
        assert_eq!(
            Listing::names(", "),
            "pending, finished, messages, resendable, duplicates"
        );
        for list in Listing::ALL {
            assert_eq!(Listing::named(list.name()), Some(list));
        }
    }

    /// A channel's slot is the same on every node and in every version
    /// (these values are FNV-1a's: a change would move every channel), and
    /// the slots spread channels evenly enough to share them out.
    #[test]
    fn a_channels_slot_is_fixed_and_slots_spread_channels() {
        assert_eq!(slot_of(""), (0xcbf2_9ce4_8422_2325u64 % 64) as u32);
        assert_eq!(slot_of("alerts #ops"), slot_of("alerts #ops"));
        let mut per_slot = [0u32; SLOTS as usize];
        for c in 0..6_400 {
            per_slot[slot_of(&format!("alerts #c{c}")) as usize] += 1;
        }
        let (least, most) = (
            per_slot.iter().min().copied().unwrap(),
            per_slot.iter().max().copied().unwrap(),
        );
        assert!(
            least >= 60 && most <= 145,
            "{least}..{most} channels a slot"
        );
        assert!(owns(ALL_SLOTS, "alerts #ops"));
        assert!(!owns(0, "alerts #ops"));
        assert!(owns(1 << slot_of("alerts #ops"), "alerts #ops"));
    }
}
