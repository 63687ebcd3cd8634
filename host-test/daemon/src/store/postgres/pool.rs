//! The node's connections to the database: a few, on a runtime of their
//! own, each with the statements it prepared; reconnected with backoff when
//! the database goes away, and while it is away every caller is told at
//! once (no connection storm), with why, never the password.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, Row, Statement, Transaction};

use super::connect::StoreUrl;
use crate::lock;
use crate::store::outage::Outage;
use crate::store::{Job, StoreError};

/// Connections a node keeps open at most: claims and releases of the
/// requests in flight, the arrivals' reader. Renewals have one more of
/// their own ([`Db::own`]), the group commit one ([`super::committer`]),
/// and the arrivals' notifications one.
pub const CONNECTIONS: usize = 8;

/// The first wait after a failed connection, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// The database, as this node reaches it.
pub struct Db {
    url: StoreUrl,
    runtime: tokio::runtime::Handle,
    idle: Mutex<Vec<Conn>>,
    slots: Arc<Semaphore>,
    health: Mutex<Health>,
    /// The connection renewals use alone: a lease is renewed even while
    /// every pooled connection is busy with claims and commits.
    own: Arc<tokio::sync::Mutex<Option<Conn>>>,
    outage: Arc<Outage>,
    /// This node's sends found to be duplicates (late endings), committed.
    duplicates: std::sync::atomic::AtomicU64,
    /// `alerts`' statistics were last taken of a table of [`SETTLED`] rows
    /// or more, as the pending count last read them ([`Db::settled`]).
    settled: std::sync::atomic::AtomicBool,
}

/// The rows `alerts` must have had when its statistics were last taken
/// for a plan made once a connection to be trusted with the owner's
/// claims read ([`Db::settled`]).
pub const SETTLED: f32 = 1_000.0;

#[derive(Default)]
struct Health {
    /// Why the database cannot be used, while it cannot.
    trouble: Option<String>,
    /// No connection is tried before then.
    retry_at: Option<Instant>,
    delay: Duration,
}

/// How a transaction begins whose statements are each planned once a
/// connection, with a plan that holds whatever the statistics say.
///
/// serve's connections plan every statement at each execution
/// (`plan_cache_mode=force_custom_plan`, [`super::connect`]), and
/// planning was a quarter of the database's CPU in three nodes' drain
/// (`perf`). A plan made once a connection is made with the statistics
/// of that moment, though, and kept: made while a table was small, it may
/// scan the table, or pick the wrong index, and go on doing so once the
/// table is large (which is why every statement is planned as it runs).
/// So only statements that reach every row through the key they are
/// given (`= ANY($1)` on a primary key or unique index, a correlated
/// lookup by primary key), where no other plan is left once sequential
/// scans are off, are run this way: every statement of the group commit,
/// whose connection's session is set so ([`super::committer`]): the
/// endings (with `EXPLAIN` on tables analyzed at 10 rows, then filled, and
/// `auto_explain` over the drain bench) and intake's insert (which reads
/// no table but `origins`, through its key). The owner's claims read is
/// not, until the statistics are settled ([`Db::settled`]): planned while
/// `alerts` was small, its check for an earlier pending event of the key
/// read the whole index of pending alerts by origin (12 ms a call, 28,000
/// rows filtered), even written as a comparison only the index by key can
/// take as its condition: with the table small, reading either index whole
/// cost the planner the same. Set for the transaction only: other
/// statements are planned as they run.
pub const GENERIC: &str =
    "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off";

/// `statement` in a transaction of its own begun [`GENERIC`], in one
/// round trip: its `BEGIN` and `COMMIT` sent with it.
pub async fn generic_query(
    client: &Client,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let (tx, begin) = Begun::begin(client, GENERIC);
    let rows = tx.query(statement, params);
    let (began, rows, committed) = futures_util::future::join3(begin, rows, tx.commit()).await;
    began?;
    let rows = rows?;
    committed?;
    Ok(rows)
}

/// The statements a connection prepared, by their SQL.
pub type Cache = HashMap<&'static str, Statement>;

/// A connection and the statements prepared on it.
pub struct Conn {
    pub client: Client,
    prepared: Cache,
}

impl Conn {
    /// A transaction, with the prepared statements beside it.
    pub async fn transaction(
        &mut self,
    ) -> Result<(Transaction<'_>, &mut Cache), tokio_postgres::Error> {
        let tx = self.client.transaction().await?;
        Ok((tx, &mut self.prepared))
    }

    /// The client, with the prepared statements beside it (for a
    /// transaction [`Begun`] by hand).
    pub fn parts(&mut self) -> (&Client, &mut Cache) {
        (&self.client, &mut self.prepared)
    }

    /// `sql` prepared once per connection, for a statement of its own
    /// (outside a transaction).
    pub async fn statement(
        &mut self,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// `sql` prepared once per connection, on it or within a transaction.
pub async fn prepared<C: GenericClient + Sync>(
    cache: &mut Cache,
    on: &C,
    sql: &'static str,
) -> Result<Statement, tokio_postgres::Error> {
    if let Some(statement) = cache.get(sql) {
        return Ok(statement.clone());
    }
    let statement = on.prepare(sql).await?;
    cache.insert(sql, statement.clone());
    Ok(statement)
}

/// A transaction begun by hand, so that its `BEGIN` and its `COMMIT` go
/// out with its statements: tokio-postgres sends the requests of futures
/// polled together one after the other without waiting for the answers
/// (PostgreSQL runs them in the order sent), where its `Transaction`
/// awaits `BEGIN` and `COMMIT` alone. Dropped before [`Begun::commit`]
/// (a statement failed, the future was dropped), it is rolled back as
/// tokio-postgres's is: the `ROLLBACK` sent, its answer not awaited.
///
/// Its statements go through [`Begun::query`] and [`Begun::execute`],
/// which take only prepared statements ([`Statement`]s): a query given as
/// text is prepared first, a round trip of its own, and its execution
/// then goes out after whatever was sent meanwhile, the `COMMIT` included
/// (its test found it run outside the transaction).
pub struct Begun<'a> {
    client: &'a Client,
    open: bool,
}

impl<'a> Begun<'a> {
    /// The transaction, and its beginning (`begin`: `BEGIN`, and any `SET
    /// LOCAL` with it): poll it with (and before) its first statements.
    pub fn begin(
        client: &'a Client,
        begin: &'static str,
    ) -> (
        Begun<'a>,
        impl Future<Output = Result<(), tokio_postgres::Error>> + 'a,
    ) {
        (Begun { client, open: true }, client.batch_execute(begin))
    }

    /// A statement of the transaction, its rows: poll it with the others,
    /// in the order they are to run.
    pub fn query<'s>(
        &self,
        statement: &'s Statement,
        params: &'s [&'s (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + 's
    where
        'a: 's,
    {
        // Borrowing the client, not the transaction: its `COMMIT` goes
        // out with it.
        let client = self.client;
        async move { client.query(statement, params).await }
    }

    /// A statement of the transaction, the rows it changed: poll it with
    /// the others, in the order they are to run.
    pub fn execute<'s>(
        &self,
        statement: &'s Statement,
        params: &'s [&'s (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, tokio_postgres::Error>> + 's
    where
        'a: 's,
    {
        let client = self.client;
        async move { client.execute(statement, params).await }
    }

    /// Its `COMMIT`: poll it with (and after) its last statements. A
    /// transaction one of them failed is rolled back by it: their error is
    /// the one to answer.
    pub async fn commit(mut self) -> Result<(), tokio_postgres::Error> {
        // Dropped before its `COMMIT` was answered, it rolls back (a
        // `ROLLBACK` after a `COMMIT` changes nothing).
        let committed = self.client.batch_execute("COMMIT").await;
        self.open = false;
        committed
    }
}

impl Drop for Begun<'_> {
    fn drop(&mut self) {
        if self.open {
            // Sent as the future is first polled; the answer is left to
            // the connection, which reads past an answer nobody awaits.
            let _ = self.client.batch_execute("ROLLBACK").now_or_never();
        }
    }
}

/// A connection taken from the pool; it goes back when dropped, unless it
/// broke.
pub struct Pooled {
    conn: Option<Conn>,
    db: Arc<Db>,
    _slot: OwnedSemaphorePermit,
}

impl std::ops::Deref for Pooled {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("held until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.client.is_closed() {
                lock(&self.db.idle).push(conn);
            }
        }
    }
}

impl Db {
    /// The database at `url`, reached from `runtime` (the store's own).
    pub fn new(url: StoreUrl, runtime: tokio::runtime::Handle) -> Arc<Db> {
        Arc::new(Db {
            url,
            runtime,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(CONNECTIONS)),
            health: Mutex::new(Health::default()),
            own: Arc::new(tokio::sync::Mutex::new(None)),
            outage: Arc::default(),
            duplicates: std::sync::atomic::AtomicU64::new(0),
            settled: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether a plan made once a connection ([`GENERIC`]) may be trusted
    /// with a read whose plan has a choice of index: `alerts`' statistics
    /// (PostgreSQL's `reltuples`) were last taken of a table of [`SETTLED`]
    /// rows or more. A plan made then picks the index a plan made at each
    /// call would (it scales the statistics to the table's size as it is
    /// now, and a table that grows keeps its shape), while statistics of an
    /// empty or never analyzed table leave the indexes tied. A node starts
    /// unsettled; the pending count says, every few seconds.
    pub fn settled(&self) -> bool {
        self.settled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `alerts`' statistics were last taken of `rows` rows (`reltuples`:
    /// negative, never).
    pub fn statistics_of(&self, rows: f32) {
        self.settled
            .store(rows >= SETTLED, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts `n` of this node's sends found to be duplicates.
    pub fn duplicates_recorded(&self, n: u64) {
        self.duplicates
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// This node's sends found to be duplicates since it started.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where this node's failures to use the database are reported.
    pub fn outage(&self) -> Arc<Outage> {
        self.outage.clone()
    }

    /// The connection of renewals alone (opened when it is not), outside
    /// the pool: renewals never queue behind claims and commits.
    pub async fn own(self: &Arc<Self>) -> Result<OwnedMutexGuard<Option<Conn>>, StoreError> {
        let mut own = self.own.clone().lock_owned().await;
        if own.as_ref().is_none_or(|c| c.client.is_closed()) {
            *own = None;
            *own = Some(self.connect_pooled().await?);
        }
        Ok(own)
    }

    /// Where the database is (its password hidden when shown).
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Runs `work` on the store's runtime, as a job anyone can await (a
    /// task of another runtime, the group commit's included).
    pub fn job<T, F>(&self, work: F) -> Job<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let running = self.runtime.spawn(work);
        Box::pin(async move {
            running
                .await
                .unwrap_or_else(|e| Err(StoreError::Io(anyhow::anyhow!("a store task ended: {e}"))))
        })
    }

    /// Runs `work` on the store's runtime, awaited by nobody.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(work);
    }

    /// A connection: an idle one, or a new one unless the last attempt
    /// failed too recently (then the reason it failed).
    pub async fn get(self: &Arc<Self>) -> Result<Pooled, StoreError> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closing".into()))?;
        loop {
            let idle = lock(&self.idle).pop();
            match idle {
                Some(conn) if conn.client.is_closed() => continue,
                Some(conn) => {
                    return Ok(Pooled {
                        conn: Some(conn),
                        db: self.clone(),
                        _slot: slot,
                    })
                }
                None => break,
            }
        }
        Ok(Pooled {
            conn: Some(self.connect_pooled().await?),
            db: self.clone(),
            _slot: slot,
        })
    }

    /// A new connection for the pool or the renewals, driven on the
    /// store's runtime whichever runtime asks for it.
    async fn connect_pooled(self: &Arc<Self>) -> Result<Conn, StoreError> {
        let db = self.clone();
        self.runtime
            .spawn(async move { db.connect_here().await })
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(anyhow::anyhow!("a store task ended: {e}"))))
    }

    /// A new connection driven on the runtime that awaits this, unless the
    /// last attempt failed too recently (then the reason it failed): the
    /// pool's, the renewals' and the group commit's
    /// ([`super::committer`]), by one backoff.
    pub(super) async fn connect_here(&self) -> Result<Conn, StoreError> {
        {
            let health = lock(&self.health);
            if health.retry_at.is_some_and(|at| Instant::now() < at) {
                let why = health.trouble.clone().unwrap_or_default();
                drop(health);
                self.outage.failing(&why);
                return Err(StoreError::Unavailable(why));
            }
        }
        match self.url.connect().await {
            Ok(client) => {
                self.recovered();
                Ok(Conn {
                    client,
                    prepared: HashMap::new(),
                })
            }
            Err(why) => {
                let mut health = lock(&self.health);
                health.delay = (health.delay * 2).clamp(FIRST_RETRY, LAST_RETRY);
                health.retry_at = Some(Instant::now() + health.delay);
                health.trouble = Some(why.clone());
                drop(health);
                self.outage.failing(&why);
                Err(StoreError::Unavailable(why))
            }
        }
    }

    /// The database answered: whatever was wrong is over.
    pub fn recovered(&self) {
        let mut health = lock(&self.health);
        health.trouble = None;
        health.retry_at = None;
        health.delay = Duration::ZERO;
        drop(health);
        self.outage.answered();
    }

    /// What a failed statement means: the database away (the store is
    /// degraded until it answers again), or a refusal.
    pub fn failed(&self, e: tokio_postgres::Error) -> StoreError {
        let said = error_text(&e);
        if is_connection_error(&e) {
            lock(&self.health).trouble = Some(said.clone());
            self.outage.failing(&said);
            StoreError::Unavailable(said)
        } else {
            StoreError::Io(anyhow::anyhow!("{said}"))
        }
    }

    /// What the database's answer to some work means: it answered (any
    /// trouble is over), or [`Db::failed`].
    pub fn answered<T>(&self, result: Result<T, tokio_postgres::Error>) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                self.recovered();
                Ok(value)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Why the database cannot be used, while it cannot (or, for good,
    /// why this node may no longer use it).
    pub fn trouble(&self) -> Option<String> {
        self.outage
            .fatal_reason()
            .or_else(|| lock(&self.health).trouble.clone())
    }
}

/// An error with its causes, on one line.
fn error_text(e: &tokio_postgres::Error) -> String {
    let mut said = format!("the store: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        said += &format!(": {cause}");
        source = cause.source();
    }
    said
}

/// Whether the connection (not the statement) failed: no SQL state, a
/// connection exception (class 08), or the server shutting down (57P).
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        None => true,
        Some(code) => {
            let code = code.code();
            // 57014: a statement cancelled by statement_timeout (a database
            // too slow to answer is, for serve, away).
            code.starts_with("08") || code.starts_with("57P") || code == "57014"
        }
    }
}

/// `text` as the database can keep it: PostgreSQL's text refuses the NUL
/// character, which an option (`%00` in a query) or an error quoting one
/// may hold; it becomes U+FFFD, so one such value never fails the other
/// writes of its transaction.
pub fn keepable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Runs `test` on a current-thread runtime with a client of a throwaway
/// database, and the database's URL (the store's tests of SQL alone).
#[cfg(test)]
pub(super) fn on_a_throwaway_database<F: Future<Output = ()>>(
    test: impl FnOnce(Client, String) -> F,
) {
    let db = testdb::TestDb::start();
    let url = db.url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        test(client, url).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction begun by hand keeps what it wrote once committed, and
    /// its `SET LOCAL` ends with it; one whose statement failed, or one
    /// dropped unfinished, leaves nothing, and the connection goes on
    /// outside any transaction.
    #[test]
    fn a_transaction_begun_by_hand_commits_whole_or_leaves_nothing() {
        on_a_throwaway_database(|client, _| async move {
            client
                .batch_execute("CREATE TABLE t (n int PRIMARY KEY)")
                .await
                .unwrap();
            // Prepared, as the statements of a pipelined transaction must
            // be (see [`Begun`]).
            let insert = client.prepare("INSERT INTO t VALUES ($1)").await.unwrap();
            let count = || async {
                let row = client.query_one("SELECT count(*) FROM t", &[]).await;
                row.unwrap().get::<_, i64>(0)
            };
            // Committed: the row stays, the plan setting does not.
            let (tx, begin) = Begun::begin(&client, GENERIC);
            let inserted = tx.execute(&insert, &[&1i32]);
            let (began, inserted, committed) =
                futures_util::future::join3(begin, inserted, tx.commit()).await;
            began.unwrap();
            inserted.unwrap();
            committed.unwrap();
            assert_eq!(count().await, 1);
            let mode = client.query_one("SHOW plan_cache_mode", &[]).await.unwrap();
            assert_ne!(mode.get::<_, String>(0), "force_generic_plan");
            // A statement failed: the one before it is rolled back with it,
            // and its error is the one answered.
            let (tx, begin) = Begun::begin(&client, GENERIC);
            let (inserted, failed) = (tx.execute(&insert, &[&2i32]), tx.execute(&insert, &[&1i32]));
            let (began, inserted, failed, committed) =
                futures_util::future::join4(begin, inserted, failed, tx.commit()).await;
            began.unwrap();
            inserted.unwrap();
            assert!(failed.unwrap_err().code().is_some());
            committed.unwrap();
            assert_eq!(count().await, 1, "nothing of the failed transaction kept");
            // Dropped unfinished: rolled back before the next request.
            {
                let (tx, begin) = Begun::begin(&client, GENERIC);
                begin.await.unwrap();
                tx.execute(&insert, &[&3i32]).await.unwrap();
            }
            assert_eq!(count().await, 1, "nothing of the dropped transaction kept");
            client.execute(&insert, &[&4i32]).await.unwrap();
            // In a transaction still open since the dropped one's insert,
            // this would name its id.
            let open = client
                .query_one("SELECT pg_current_xact_id_if_assigned()::text", &[])
                .await
                .unwrap();
            assert_eq!(
                open.get::<_, Option<String>>(0),
                None,
                "the connection is in no transaction"
            );
            assert_eq!(count().await, 2);
        });
    }
}
