//! The PostgreSQL store: several `serve` nodes on one database.
//!
//! - Where the database is and how to reach it, its password never shown
//!   ([`connect`]); a few connections, reconnected with backoff ([`pool`]).
//! - Its schema, created and migrated by `serve` itself ([`schema`]).
//! - Writes are staged and numbered as the journal's are (the same
//!   records), and the group commit writes every one staged meanwhile in
//!   one transaction ([`writes`]): a `202` only once it committed.
//! - The channels are shared out among the live nodes in leased slots;
//!   the owner of a channel claims its alerts without a transaction, many
//!   read at once ([`owned`]). Other claims (a channel whose slot is not
//!   this node's, storm messages' turns) are decided in the database, by
//!   the scheduler's own pacing rule ([`claims`]).
//! - Every node reads the pending alerts as they become visible, and the
//!   lists `GET /spool` shows ([`reads`]).
//!
//! **At least once.** A node that dies with requests out loses its claims
//! when their leases run out (`--lease-ms`, renewed a third of it apart);
//! another node then sends those alerts again. A duplicate reaches Slack
//! only for a request that had reached Slack when its node died, before
//! its ending was committed: at most one per channel the node was sending
//! to, since a channel has one request out.

mod claims;
mod committer;
pub mod connect;
mod endings;
pub mod names;
pub(crate) mod notices;
mod owned;
mod pool;
mod reads;
pub mod schema;
mod writes;

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kapacitor_formats::aggregate::{Collected, Window};

use crate::lock;
use crate::scheduler::Rules;
use crate::store::record::{NewAlert, Record};
use crate::store::unix_ms;
use crate::store::{
    Act, AlertMessage, Claim, ClaimRequest, Claims, Commits, FailedAlert, Finished, Health, Job,
    Listing, Lists, Pending, Reads, Release, StoreError, StormDone, StormTurn, SyncStart, Ticket,
    Wake, Writes,
};
use claims::Claimant;
use connect::StoreUrl;
use pool::Db;

/// Ids a node reserves at once (the `alert_ids` sequence's increment).
const ID_BLOCK: u64 = 1_000;

/// How often a node looks for alerts other nodes took (its own are looked
/// for as soon as they commit).
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// How often other nodes' arrivals are looked for while `LISTEN` hears
/// them: a fallback only (a notification lost with a connection).
const LOOK_EVERY_LISTENING: Duration = Duration::from_secs(1);

/// How long a node waits, once it hears of another node's commit, for
/// more before it reads them all at once.
const COALESCE_HEARD: Duration = Duration::from_millis(20);

/// How often the pending alerts are counted (for `/metrics`) by the
/// node owning slot 0, the store's keeper (a count over every pending
/// alert, 5–20 ms of the database's at 30,000 pending), and read from
/// what it kept by the others.
const COUNT_EVERY: Duration = Duration::from_secs(2);

/// How old the kept pending count may be before a node that is not the
/// keeper counts itself: three of the keeper's counts missed.
const COUNTS_STALE: Duration = Duration::from_secs(3 * COUNT_EVERY.as_secs());

/// How soon a listening connection that failed is tried again.
const LISTEN_AGAIN: Duration = Duration::from_secs(5);

/// How a node opens the store.
pub struct Settings {
    pub url: StoreUrl,
    /// This node's name, unique among the live nodes: a start under a
    /// name a live node holds is refused ([`names`]).
    pub node: String,
    /// Where this node runs (host, process, listen address), shown to a
    /// start refused for its name; `None` for a tool that reads and writes
    /// but never claims (the `spool` command): it takes no name.
    pub address: Option<String>,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// The scheduler's pacing, applied to every channel in the database.
    pub rules: Rules,
    /// How many finished alerts `GET /spool` shows (the newest).
    pub keep_finished: usize,
}

/// A write staged for the next group commit.
// Records are most of what is staged, and were staged unboxed before
// releases joined them: boxing them would cost an allocation an alert.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Staged {
    /// One of the journal's records, as the journal would write it.
    Record(Record),
    /// A claim let go ([`Writes::released`]).
    Release(Release),
}

/// The store shared by several nodes.
pub struct PgStore {
    db: Arc<Db>,
    who: Arc<Claimant>,
    /// Claims on the channels this node owns, read in batches.
    owner: owned::Owner,
    ids: Arc<Mutex<Ids>>,
    staged: Vec<Staged>,
    written: u64,
    view: Arc<View>,
    /// The group commit's connection, on the commit thread.
    committer: Arc<committer::Committer>,
    /// The store's own runtime: the connections, the arrivals' reader.
    runtime: Option<tokio::runtime::Runtime>,
}

/// Alert ids reserved by this node.
#[derive(Default)]
struct Ids {
    next: u64,
    end: u64,
    /// A block reserved ahead.
    spare: Option<u64>,
}

impl Ids {
    fn take(&mut self) -> Option<u64> {
        if self.next >= self.end {
            let start = self.spare.take()?;
            self.next = start;
            self.end = start + ID_BLOCK;
        }
        let id = self.next;
        self.next += 1;
        Some(id)
    }

    /// Whether to reserve another block.
    fn low(&self) -> bool {
        self.spare.is_none() && self.end.saturating_sub(self.next) < ID_BLOCK / 2
    }
}

/// What the arrivals' reader found.
struct View {
    state: Mutex<ViewState>,
    /// Look now: a commit of this node's failed (were its alerts
    /// inserted?), or the store is closing.
    poke: tokio::sync::Notify,
    /// Another node committed alerts (`NOTIFY`): read them soon, once for
    /// however many commits come meanwhile.
    heard: tokio::sync::Notify,
    stop: AtomicBool,
}

impl View {
    /// Alerts read from the database: given as arrivals, and the node
    /// woken.
    fn arrive(&self, alerts: Vec<Pending>) {
        let wake = {
            let mut state = lock(&self.state);
            state.arrivals.extend(alerts);
            state.wake.clone()
        };
        if let Some(wake) = wake {
            wake();
        }
    }
}

#[derive(Default)]
struct ViewState {
    arrivals: Vec<Pending>,
    /// Alerts of this node's commits that failed: inserted if the commit
    /// was made though its answer was lost. Given as arrivals if the
    /// database holds them pending.
    uncertain: Vec<Pending>,
    pending: usize,
    oldest_ms: Option<u64>,
    wake: Option<Wake>,
}

impl PgStore {
    /// Connects, brings the schema to this version, reserves ids, and
    /// starts reading arrivals.
    pub fn open(settings: Settings) -> anyhow::Result<PgStore> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("store")
            .enable_all()
            .build()?;
        let db = Db::new(settings.url, runtime.handle().clone());
        let ids = Arc::new(Mutex::new(Ids::default()));
        let instance = names::random_part();
        runtime.block_on(async {
            let mut conn = db.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            schema::migrate(&mut conn.client)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            drop(conn);
            if let Some(address) = &settings.address {
                names::take(&db, &settings.node, &instance, address, settings.lease)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let start = reserve(db.clone())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            lock(&ids).spare = Some(start);
            anyhow::Ok(())
        })?;
        let view = Arc::new(View {
            state: Mutex::new(ViewState::default()),
            poke: tokio::sync::Notify::new(),
            heard: tokio::sync::Notify::new(),
            stop: AtomicBool::new(false),
        });
        let origin = format!("{}/{instance}", settings.node);
        let who = Arc::new(Claimant {
            origin,
            node: settings.node,
            instance,
            lease: settings.lease,
            rules: settings.rules,
            ownership: owned::Ownership::default(),
            channel_of: std::sync::OnceLock::new(),
            notices: notices::Notices::default(),
        });
        runtime.spawn(read_arrivals(
            db.clone(),
            view.clone(),
            settings.keep_finished,
            who.clone(),
        ));
        let owner = owned::Owner::start(db.clone(), who.clone(), runtime.handle());
        Ok(PgStore {
            db,
            who,
            owner,
            ids,
            staged: Vec::new(),
            written: 0,
            view,
            committer: committer::Committer::new()?,
            runtime: Some(runtime),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.who.node
    }

    /// Where the database is (its password hidden when shown).
    pub fn url(&self) -> &StoreUrl {
        self.db.url()
    }

    fn stage(&mut self, record: Record) -> u64 {
        self.staged.push(Staged::Record(record));
        self.written += 1;
        self.written
    }

    fn new_id(&mut self) -> Result<u64, StoreError> {
        lock(&self.ids).take().ok_or_else(|| {
            StoreError::Unavailable("alert ids are being reserved from the database".into())
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.view.stop.store(true, Ordering::SeqCst);
        self.view.poke.notify_one();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The alerts a failed commit of `batch` may have inserted, filed as it
/// filed them.
fn uncertain(who: &Claimant, batch: Vec<Staged>) -> Vec<Pending> {
    let mut alerts = Vec::new();
    let filed = |id: u64, at: u64, alert: String, options: Vec<(String, String)>| {
        let channel = who
            .channel_of
            .get()
            .and_then(|channel_of| channel_of(id, &alert, &options));
        Pending {
            id,
            // Its `seq`, once the database says it holds it.
            seq: 0,
            at,
            alert,
            options,
            channel,
        }
    };
    for staged in batch {
        match staged {
            Staged::Record(Record::Accept {
                id,
                at,
                alert,
                options,
            }) => alerts.push(filed(id, at, alert, options)),
            Staged::Record(Record::Emit { accepts, .. }) => alerts.extend(
                accepts
                    .into_iter()
                    .map(|a| filed(a.id, a.at, a.alert, a.options)),
            ),
            _ => {}
        }
    }
    alerts
}

/// Whether an alert is for this node, which owns `owned`: filed under one
/// of those slots, or under none.
fn mine(owned: crate::store::Slots, alert: &Pending) -> bool {
    alert
        .channel
        .as_deref()
        .is_none_or(|channel| crate::store::owns(owned, channel))
}

/// Reserves a block of ids: its first.
async fn reserve(db: Arc<Db>) -> Result<u64, StoreError> {
    let conn = db.get().await?;
    let row = conn
        .client
        .query_one("SELECT nextval('alert_ids')", &[])
        .await
        .map_err(|e| db.failed(e))?;
    Ok(row.get::<_, i64>(0).max(1) as u64)
}

/// Reads pending alerts of the slots this node owns as they become
/// visible (heard of by `NOTIFY`, looked for every [`LOOK_EVERY`]
/// otherwise), a slot's pending alerts when this node comes to own it,
/// the pending count (counted by the store's keeper, the node owning
/// slot 0, and read by the others), and, on the keeper, now and then
/// drops what is past the bounds.
async fn read_arrivals(db: Arc<Db>, view: Arc<View>, keep_finished: usize, who: Arc<Claimant>) {
    let origin = who.origin.clone();
    let mut seen = reads::Watermarks::default();
    // The slots whose filed alerts were read when this node came to own
    // them.
    let mut read_for: crate::store::Slots = 0;
    let mut counted: Option<Instant> = None;
    let mut pruned = Instant::now();
    // Other nodes' commits, heard by `LISTEN` (the poll stays, slower,
    // for when the listening connection is down).
    let listening = Arc::new(AtomicBool::new(false));
    let mut _listener: Option<tokio_postgres::Client> = None;
    let mut listen_tried: Option<Instant> = None;
    while !view.stop.load(Ordering::SeqCst) {
        if !listening.load(Ordering::SeqCst)
            && listen_tried.is_none_or(|at| at.elapsed() >= LISTEN_AGAIN)
        {
            listen_tried = Some(Instant::now());
            let (heard, gone) = (view.clone(), listening.clone());
            let up = listening.clone();
            match db
                .url()
                .listen(
                    notices::ARRIVALS_CHANNEL,
                    {
                        let who = who.clone();
                        // This node's own commits' alerts arrive from them;
                        // other slots' alerts are their owners'.
                        move |payload: &str| {
                            let (from, slots) = notices::read(payload);
                            if from != who.origin && slots & who.ownership.slots() != 0 {
                                heard.heard.notify_one()
                            }
                        }
                    },
                    move || gone.store(false, Ordering::SeqCst),
                )
                .await
            {
                Ok(client) => {
                    up.store(true, Ordering::SeqCst);
                    _listener = Some(client);
                }
                Err(e) => tracing::debug!("arrivals are polled: {e}"),
            }
        }
        let mut more = false;
        let unsure = std::mem::take(&mut lock(&view.state).uncertain);
        if !unsure.is_empty() {
            let ids = unsure.iter().map(|p| p.id).collect();
            match reads::still_pending(db.clone(), ids).await {
                Ok(pending) => {
                    let pending: std::collections::HashMap<u64, u64> =
                        pending.into_iter().collect();
                    let owned = who.ownership.slots();
                    let made: Vec<Pending> = unsure
                        .into_iter()
                        .filter_map(|p| {
                            let seq = *pending.get(&p.id)?;
                            mine(owned, &p).then_some(Pending { seq, ..p })
                        })
                        .collect();
                    if !made.is_empty() {
                        tracing::info!(
                            alerts = made.len(),
                            "a commit reported failed had been made: its alerts are delivered"
                        );
                        view.arrive(made);
                    }
                }
                Err(_) => lock(&view.state).uncertain.extend(unsure),
            }
        }
        // Taken before the slots owned: a slot given up and taken back
        // since the last look is read again.
        let dropped = who.ownership.take_dropped();
        let owned = who.ownership.slots();
        read_for &= owned & !dropped;
        let gained = owned & !read_for;
        if gained != 0 {
            // Slots this node has come to own: their alerts the reads
            // passed over (or this node's commits did not hand over).
            match reads::filed(&db, gained, &seen, &origin).await {
                Ok(filed) => {
                    read_for |= gained;
                    if !filed.is_empty() {
                        view.arrive(filed);
                    }
                }
                Err(e) => tracing::debug!("the alerts of the slots taken are read again: {e}"),
            }
        }
        if let Ok((fresh, full)) = reads::arrivals(&db, &mut seen, &origin, owned).await {
            more = full;
            if !fresh.is_empty() {
                view.arrive(fresh);
            }
        }
        // The node owning slot 0 keeps the store: it counts the pending
        // alerts for every node, and drops what is past the bounds.
        let keeper = owned & 1 != 0;
        if counted.is_none_or(|at| at.elapsed() >= COUNT_EVERY) {
            counted = Some(Instant::now());
            if let Ok((pending, oldest)) =
                reads::pending_stats(&db, &who.node, keeper, COUNTS_STALE).await
            {
                let mut state = lock(&view.state);
                state.pending = pending;
                state.oldest_ms = oldest;
            }
        }
        if keeper && pruned.elapsed() >= Duration::from_secs(10) {
            pruned = Instant::now();
            if let Err(e) = reads::prune(&db, keep_finished).await {
                tracing::warn!("dropping what is past the store's bounds failed: {e}");
            }
        }
        if !more {
            let every = if listening.load(Ordering::SeqCst) {
                LOOK_EVERY_LISTENING
            } else {
                LOOK_EVERY
            };
            tokio::select! {
                _ = view.poke.notified() => {}
                _ = who.ownership.changed.notified() => {}
                _ = view.heard.notified() => {
                    // Other nodes' commits come many a second under load:
                    // one read for all of those in the next few ms.
                    tokio::time::sleep(COALESCE_HEARD).await;
                }
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

impl Writes for PgStore {
    fn accept(
        &mut self,
        alert: &str,
        options: Vec<(String, String)>,
    ) -> Result<Ticket, StoreError> {
        let id = self.new_id()?;
        let number = self.stage(Record::Accept {
            id,
            at: unix_ms(),
            alert: alert.to_string(),
            options,
        });
        Ok(Ticket::new(id, number))
    }

    fn collect(&mut self, handler: &str, event: Collected) -> Result<Ticket, StoreError> {
        let number = self.stage(Record::Collect {
            handler: handler.to_string(),
            start_ms: unix_ms(),
            event,
        });
        Ok(Ticket::new(0, number))
    }

    fn emit(
        &mut self,
        handler: &str,
        window: &Window,
        accepts: Vec<(String, Vec<(String, String)>)>,
        collects: Vec<(String, Collected)>,
    ) -> Result<(Vec<u64>, Ticket), StoreError> {
        let at = unix_ms();
        let mut new = Vec::with_capacity(accepts.len());
        for (alert, options) in accepts {
            new.push(NewAlert {
                id: self.new_id()?,
                at,
                alert,
                options,
            });
        }
        let ids = new.iter().map(|a| a.id).collect();
        let number = self.stage(Record::Emit {
            handler: handler.to_string(),
            accepts: new,
            collects: collects
                .into_iter()
                .map(|(other, event)| (other, at, event))
                .collect(),
            closes: Some((window.start_ms, window.count)),
        });
        Ok((ids, Ticket::new(0, number)))
    }

    fn finish(&mut self, done: Finished) -> Result<Ticket, StoreError> {
        let id = done.id;
        Ok(Ticket::new(id, self.stage(Record::Done(done))))
    }

    fn keep(&mut self, message: AlertMessage) -> Result<Ticket, StoreError> {
        Ok(Ticket::new(0, self.stage(Record::Message(message))))
    }

    fn act(&mut self, key: &str, act: Act, identity: &str) -> Result<Ticket, StoreError> {
        let key = key.to_string();
        let click = Some((identity.to_string(), unix_ms()));
        Ok(Ticket::new(0, self.stage(Record::Act { key, act, click })))
    }

    fn resend(&mut self, failed: &[FailedAlert]) -> Result<Vec<(u64, Ticket)>, StoreError> {
        let mut resent = Vec::with_capacity(failed.len());
        for f in failed {
            let ticket = self.accept(&f.alert, f.options.clone())?;
            let number = self.stage(Record::Resent {
                id: f.id,
                as_id: ticket.id,
            });
            resent.push((f.id, Ticket::new(ticket.id, number)));
        }
        Ok(resent)
    }

    fn released(&mut self, release: Release) -> Result<Ticket, StoreError> {
        if matches!(release.fence, Some(crate::store::Fence::Slot(_))) {
            self.who.ownership.released(&release.channel);
        }
        self.staged.push(Staged::Release(release));
        self.written += 1;
        Ok(Ticket::new(0, self.written))
    }
}

impl Commits for PgStore {
    fn written(&self) -> u64 {
        self.written
    }

    fn rollback(&mut self, to: u64) {
        while self.written > to && self.staged.pop().is_some() {
            self.written -= 1;
        }
    }

    fn begin_sync(&mut self) -> SyncStart {
        let through = self.written;
        if self.staged.is_empty() {
            return SyncStart::Done { through };
        }
        let batch = std::mem::take(&mut self.staged);
        let (db, ids) = (self.db.clone(), self.ids.clone());
        let who = self.who.clone();
        let view = self.view.clone();
        let refill = lock(&ids).low();
        let committer = self.committer.clone();
        SyncStart::Started {
            through,
            sync: Box::new(move || {
                let done = committer.block_on(async {
                    match writes::commit(&db, &committer, &who, batch).await {
                        // This node's own alerts arrive as they commit,
                        // not read back (its origin is not read); those
                        // of another node's slots are that node's.
                        Ok(mut inserted) => {
                            let owned = who.ownership.slots();
                            inserted.retain(|p| mine(owned, p));
                            lock(&view.state).arrivals.extend(inserted)
                        }
                        Err((why, batch)) => {
                            // Committed or not? The reader asks, by id.
                            let unsure = uncertain(&who, batch);
                            lock(&view.state).uncertain.extend(unsure);
                            view.poke.notify_one();
                            return Ok(Err(io::Error::other(why)));
                        }
                    }
                    if refill {
                        // On the store's runtime, as its connections are.
                        if let Ok(start) = db.job(reserve(db.clone())).await {
                            lock(&ids).spare = Some(start);
                        }
                    }
                    Ok(Ok(()))
                });
                done.unwrap_or_else(|why| Err(io::Error::other(why)))
            }),
        }
    }

    fn end_sync(&mut self, synced: io::Result<()>) -> io::Result<()> {
        synced
    }
}

impl Claims for PgStore {
    fn arrivals(&mut self) -> Vec<Pending> {
        std::mem::take(&mut lock(&self.view.state).arrivals)
    }

    fn watch(&mut self, wake: Wake) {
        lock(&self.view.state).wake = Some(wake);
    }

    fn plan_by(&mut self, channel_of: crate::store::ChannelOf) {
        let _ = self.who.channel_of.set(channel_of);
    }

    fn claim(&self, request: ClaimRequest) -> Job<Claim> {
        match self.who.ownership.route(&request.channel, self.who.lease) {
            owned::Route::Owner => self.owner.claim(request),
            owned::Route::Lapsed => crate::store::ready(Ok(Claim::NotYet {
                wait: self.who.lease / 3,
            })),
            owned::Route::Shared => {
                self.db
                    .job(claims::claim(self.db.clone(), self.who.clone(), request))
            }
        }
    }

    fn lease(&self) -> Option<Duration> {
        Some(self.who.lease)
    }

    fn renew(&self) -> Job<crate::store::Slots> {
        self.db
            .job(claims::renew(self.db.clone(), self.who.clone()))
    }

    fn leave(&self) -> Job<()> {
        self.db
            .job(claims::leave(self.db.clone(), self.who.clone()))
    }

    fn storm_turn(&self, turn: StormTurn) -> Job<Claim> {
        self.db
            .job(claims::storm_turn(self.db.clone(), self.who.clone(), turn))
    }

    fn storm_done(&self, done: StormDone) -> Job<()> {
        self.db
            .job(claims::storm_done(self.db.clone(), self.who.clone(), done))
    }
}

impl Reads for PgStore {
    fn clicked(&self, identity: &str) -> Job<bool> {
        self.db
            .job(reads::clicked(self.db.clone(), identity.to_string()))
    }

    fn message(&self, key: &str) -> Job<Option<AlertMessage>> {
        self.db
            .job(reads::message(self.db.clone(), key.to_string()))
    }

    fn windows(&self) -> Job<BTreeMap<String, Window>> {
        self.db.job(reads::windows(self.db.clone()))
    }

    fn resendable(&self, ids: Option<Vec<u64>>) -> Job<Vec<FailedAlert>> {
        self.db.job(reads::resendable(self.db.clone(), ids))
    }

    fn pending_count(&self) -> usize {
        lock(&self.view.state).pending
    }

    fn oldest_pending_age(&self) -> Option<Duration> {
        let oldest = lock(&self.view.state).oldest_ms?;
        Some(Duration::from_millis(unix_ms().saturating_sub(oldest)))
    }

    fn lists(&self, lists: &[Listing], after: Option<u64>, limit: usize) -> Job<Lists> {
        self.db
            .job(reads::lists(self.db.clone(), lists.to_vec(), after, limit))
    }
}

impl Health for PgStore {
    fn trouble(&self) -> Option<String> {
        self.db.trouble()
    }

    fn outage(&self) -> Arc<crate::store::outage::Outage> {
        self.db.outage()
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn node(&self) -> Option<String> {
        Some(self.who.node.clone())
    }

    fn duplicates(&self) -> u64 {
        self.db.duplicates()
    }

    fn ended_since(&self, after: u64) -> Job<(Vec<u64>, u64)> {
        self.db.job(reads::ended_since(self.db.clone(), after))
    }
}
