//! Claims on the channels this node owns: no transaction of their own.
//!
//! The owner of a channel is the only node sending to it (its slot is
//! leased to it, [`crate::store::SLOTS`]), so nothing needs deciding in
//! the database: its scheduler paces the channel and keeps each alert
//! key's events in order. What the node does not know is read, for every
//! claim asked meanwhile at once, in one statement: whether each alert is
//! still pending (an earlier owner may have ended it), the requests made
//! for it and a retry's wait (by any node), whether an earlier event of
//! its key is still pending, its key's message (whichever node drew it,
//! with its marks), and, for the first claim on a channel since the slot
//! became this node's, the channel's pacing and `Retry-After` as the last
//! owner left them. The claim is fenced by the slot ([`Fence::Slot`]):
//! its ending and release take effect only while the slot is still this
//! node's.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::claims::Claimant;
use super::pool::{generic_query, keepable, Db};
use super::reads;
use crate::lock;
use crate::scheduler::Pace;
use crate::store::{owns, slot_of, Claim, ClaimRequest, Fence, Slots, StoreError};

/// The most claims read in one statement.
const AT_ONCE: usize = 1_000;

/// How long a node waits before asking again for work it cannot take
/// now (another node holds the channel, an earlier event goes first).
const AGAIN: Duration = Duration::from_millis(500);

/// The slots this node owns, as its last renewal said, and for how long.
#[derive(Default)]
pub struct Ownership {
    owned: AtomicU64,
    /// When the last renewal that answered began: the slots are this
    /// node's for a lease from then.
    renewed: Mutex<Option<Instant>>,
    /// Channels claimed since their slot became this node's: its
    /// scheduler has paced them since, so the last owner's pacing is read
    /// only for a channel's first claim.
    paced: Mutex<HashSet<String>>,
    /// Channels with a request out under a claim of this node's (granted,
    /// not yet released), and the alert sent: a slot given back holds
    /// both for their release.
    busy: Mutex<HashMap<String, u64>>,
    /// Told when the slots owned change: the arrivals' reader then reads
    /// the pending alerts of the slots this node has come to own.
    pub changed: tokio::sync::Notify,
    /// The slots given up since the arrivals' reader last looked: one
    /// taken back meanwhile is read again all the same.
    dropped: AtomicU64,
}

/// Whether a claim on a channel goes through its owner.
pub enum Route {
    /// The channel's slot is this node's, under a live lease.
    Owner,
    /// The slot is this node's, but no renewal answered for a lease: it may
    /// be another's by now, so nothing is sent until one does.
    Lapsed,
    /// Another node's slot, or no slot known yet: decided in the database.
    Shared,
}

impl Ownership {
    /// The slots owned now.
    pub fn slots(&self) -> Slots {
        self.owned.load(Ordering::SeqCst)
    }

    /// A renewal that began at `began` answered with `owned`.
    pub fn renewed(&self, owned: Slots, began: Instant) {
        let before = self.owned.swap(owned, Ordering::SeqCst);
        *lock(&self.renewed) = Some(began);
        if before != owned {
            lock(&self.paced).retain(|channel| owns(owned & before, channel));
            self.dropped.fetch_or(before & !owned, Ordering::SeqCst);
            self.changed.notify_one();
        }
    }

    /// The slots given up since the last call.
    pub fn take_dropped(&self) -> Slots {
        self.dropped.swap(0, Ordering::SeqCst)
    }

    /// The channels with a request out now, and the alert sent.
    pub fn busy(&self) -> Vec<(String, u64)> {
        lock(&self.busy)
            .iter()
            .map(|(c, id)| (c.clone(), *id))
            .collect()
    }

    /// The claim on `channel` was let go.
    pub fn released(&self, channel: &str) {
        lock(&self.busy).remove(channel);
    }

    /// The node left: it owns nothing.
    pub fn left(&self) {
        let before = self.owned.swap(0, Ordering::SeqCst);
        self.dropped.fetch_or(before, Ordering::SeqCst);
        self.changed.notify_one();
        lock(&self.paced).clear();
    }

    /// How a claim on `channel` is decided, with leases of `lease`.
    pub fn route(&self, channel: &str, lease: Duration) -> Route {
        if !owns(self.slots(), channel) {
            return Route::Shared;
        }
        match *lock(&self.renewed) {
            Some(at) if at.elapsed() < lease => Route::Owner,
            _ => Route::Lapsed,
        }
    }
}

/// A claim asked of the owner, and where its answer goes.
type Ask = (ClaimRequest, oneshot::Sender<Result<Claim, StoreError>>);

/// The claims of owned channels, read in batches by one task.
pub struct Owner {
    asks: mpsc::UnboundedSender<Ask>,
}

impl Owner {
    /// Starts the reader on the store's runtime.
    pub fn start(db: Arc<Db>, who: Arc<Claimant>, runtime: &tokio::runtime::Handle) -> Owner {
        let (asks, queued) = mpsc::unbounded_channel();
        runtime.spawn(read_claims(db, who, queued));
        Owner { asks }
    }

    /// The claim on `request`, read with every other asked meanwhile.
    pub fn claim(&self, request: ClaimRequest) -> crate::store::Job<Claim> {
        let (answer, answered) = oneshot::channel();
        let sent = self.asks.send((request, answer));
        Box::pin(async move {
            if sent.is_err() {
                return Err(StoreError::Unavailable("the store is closing".into()));
            }
            answered
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("the store is closing".into())))
        })
    }
}

/// Answers the claims as they are asked: the first, with every other
/// queued by then (up to [`AT_ONCE`]), in one statement.
async fn read_claims(db: Arc<Db>, who: Arc<Claimant>, mut queued: mpsc::UnboundedReceiver<Ask>) {
    while let Some(first) = queued.recv().await {
        let mut batch = vec![first];
        while batch.len() < AT_ONCE {
            match queued.try_recv() {
                Ok(ask) => batch.push(ask),
                Err(_) => break,
            }
        }
        let requests: Vec<&ClaimRequest> = batch.iter().map(|(r, _)| r).collect();
        match decide(&db, &who, &requests).await {
            Ok(claims) => {
                for ((_, answer), claim) in batch.into_iter().zip(claims) {
                    let _ = answer.send(Ok(claim));
                }
            }
            Err(e) => {
                let why = e.to_string();
                for (_, answer) in batch {
                    let _ = answer.send(Err(StoreError::Unavailable(why.clone())));
                }
            }
        }
    }
}

/// The owner's claims read: for each claim asked (`$1` the alerts' ids,
/// `$2` their channels), in order, the alert, its key's message and the
/// channel ([`decide_one`] reads the row). Each row is reached through
/// its key in a lateral lookup, which no plan can turn into reading a
/// whole table (a plan made once, while a table was small, would).
const CLAIMS_READ: &str = concat!(
    "SELECT r.n, ",
    reads::claim_columns!(),
    ", c.earliest_ms, c.blocked_until_ms, c.margin_ms, c.held_by, c.held_until_ms
     FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS r(id, channel, n)
     LEFT JOIN LATERAL (SELECT * FROM alerts WHERE id = r.id LIMIT 1) a ON true
     LEFT JOIN LATERAL (SELECT * FROM messages WHERE alert_key = a.alert_key LIMIT 1) m ON true
     LEFT JOIN LATERAL (SELECT * FROM channels WHERE pacing_key = r.channel LIMIT 1) c ON true
     ORDER BY r.n"
);

/// The claims on `requests`, in their order, from one read.
async fn decide(
    db: &Arc<Db>,
    who: &Claimant,
    requests: &[&ClaimRequest],
) -> Result<Vec<Claim>, StoreError> {
    let ids: Vec<i64> = requests.iter().map(|r| r.id as i64).collect();
    let channels: Vec<std::borrow::Cow<'_, str>> =
        requests.iter().map(|r| keepable(&r.channel)).collect();
    let mut conn = db.get().await?;
    let sql = CLAIMS_READ;
    let rows = async {
        let statement = conn.statement(sql).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&ids, &channels];
        // Planned once a connection once `alerts`' statistics are settled
        // (the earlier-event check has a choice of index), at each call
        // before: planning it was 440 µs a call, more than running it.
        if db.settled() {
            generic_query(&conn.client, &statement, &params).await
        } else {
            conn.client.query(&statement, &params).await
        }
    }
    .await;
    let rows = db.answered(rows)?;
    let mut paced = lock(&who.ownership.paced);
    let claims = requests
        .iter()
        .zip(rows)
        .map(|(request, row)| decide_one(who, &mut paced, request, &row))
        .collect();
    Ok(claims)
}

/// One claim, from its row of [`decide`]'s read.
fn decide_one(
    who: &Claimant,
    paced: &mut HashSet<String>,
    request: &ClaimRequest,
    row: &tokio_postgres::Row,
) -> Claim {
    let not_yet = |wait| Claim::NotYet { wait };
    // Gone (pruned), or ended (by an earlier owner of the channel).
    if row.get::<_, Option<&str>>(1) != Some("pending") {
        return Claim::Gone;
    }
    let now: i64 = row.get(7);
    let live = |by: Option<String>, until: Option<i64>| {
        by.zip(until)
            .is_some_and(|(by, until)| by != who.node && until > now)
    };
    // Claimed in the database by another node, under a live lease.
    if live(row.get(2), row.get(3)) {
        return not_yet(AGAIN);
    }
    let not_before: i64 = row.get(5);
    if not_before > now {
        return not_yet(Duration::from_millis((not_before - now) as u64));
    }
    if row.get::<_, bool>(8) {
        return not_yet(AGAIN);
    }
    if !paced.contains(&request.channel) {
        // The first claim since the channel became this node's: the last
        // owner's pacing and `Retry-After`, and a request it may still
        // have out (it holds the channel until its release).
        if live(row.get(23), row.get(24)) {
            return not_yet(AGAIN);
        }
        let moment = |v: Option<i64>| v.map(|v| Duration::from_millis(v.max(0) as u64));
        let pace = Pace {
            earliest: moment(row.get(20)),
            blocked_until: moment(row.get(21)),
            margin: Duration::from_millis(row.get::<_, Option<i64>>(22).unwrap_or(0).max(0) as u64),
        };
        let now_d = Duration::from_millis(now.max(0) as u64);
        if let Some(ready) = pace.ready(&who.rules).filter(|r| *r > now_d) {
            return not_yet(ready - now_d);
        }
        paced.insert(request.channel.clone());
    }
    lock(&who.ownership.busy).insert(request.channel.clone(), request.id);
    let key: String = row.get(6);
    let message = row
        .get::<_, Option<String>>(10)
        .is_some()
        .then(|| Box::new(reads::message_from(row, key, 9)));
    Claim::Granted {
        message,
        attempts: Some(row.get::<_, i32>(4).max(0) as u32),
        fence: Some(Fence::Slot(slot_of(&request.channel))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::pool::{on_a_throwaway_database, GENERIC};
    use super::super::reads::ARRIVALS_READ;
    use super::*;

    /// Runs `test` with a client of a throwaway database at the schema's
    /// version, and the database's URL.
    fn on_a_migrated_database<F: std::future::Future<Output = ()>>(
        test: impl FnOnce(tokio_postgres::Client, String) -> F,
    ) {
        on_a_throwaway_database(|mut client, url| async move {
            super::super::schema::migrate(&mut client).await.unwrap();
            test(client, url).await;
        });
    }

    /// The lines of an `EXPLAIN` PostgreSQL answered to `statement`.
    async fn explain(client: &tokio_postgres::Client, statement: &str) -> String {
        let messages = client.simple_query(statement).await.unwrap();
        let lines: Vec<String> = messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
                _ => None,
            })
            .collect();
        lines.join("\n")
    }

    /// Once `alerts`' statistics are settled ([`Db::settled`]), the
    /// claims read planned once a connection reaches every row through
    /// its key, however much the table grew since: the alert, message and
    /// channel by primary key, the earlier-event check by the index of
    /// pending alerts by key. And statistics of an empty table are not
    /// settled: there the indexes tie, and the check read a whole index.
    #[test]
    fn the_claims_read_planned_once_reaches_every_row_through_its_key() {
        on_a_migrated_database(|client, url| async move {
            let reltuples = || async {
                let row = client
                    .query_one(
                        "SELECT reltuples FROM pg_class WHERE oid = 'alerts'::regclass",
                        &[],
                    )
                    .await
                    .unwrap();
                row.get::<_, f32>(0)
            };
            let fill = |from: i64, to: i64| {
                format!(
                    "INSERT INTO alerts (id, accepted_ms, alert, options, alert_key, origin, slot)
                     SELECT g, 0, '{{}}', '', 'key-' || (g % 500), 'o' || (g % 3), (g % 64)
                     FROM generate_series({from}, {to}) g;
                     INSERT INTO messages (alert_key, workspace, channel_id, ts, kept_seq)
                     SELECT 'key-' || g, 'w', 'C', '1.1', g FROM generate_series({from}, {to}) g
                     ON CONFLICT DO NOTHING;
                     INSERT INTO channels (pacing_key, margin_ms)
                     SELECT 'c' || g, 0 FROM generate_series({from}, least({to}, {from} + 99)) g"
                )
            };
            client.batch_execute("ANALYZE").await.unwrap();
            let db = Db::new(
                crate::store::postgres::connect::StoreUrl::parse(&url).unwrap(),
                tokio::runtime::Handle::current(),
            );
            db.statistics_of(reltuples().await);
            assert!(!db.settled(), "an empty table's statistics are not settled");
            client.batch_execute(&fill(1, 1_500)).await.unwrap();
            client.batch_execute("ANALYZE").await.unwrap();
            db.statistics_of(reltuples().await);
            assert!(db.settled(), "analyzed at 1,500 rows");
            // Planned now (its first run), run again once the table is twenty
            // times as large.
            client
                .batch_execute(&format!(
                    "{GENERIC}; PREPARE claims(bigint[], text[]) AS {CLAIMS_READ};
                     EXECUTE claims('{{1}}', '{{c1}}')"
                ))
                .await
                .unwrap();
            client.batch_execute(&fill(1_501, 30_000)).await.unwrap();
            let plan = explain(
                &client,
                "EXPLAIN EXECUTE claims('{1, 2, 29000}', '{c1, c2, c3}')",
            )
            .await;
            client.batch_execute("COMMIT").await.unwrap();
            for index in [
                "alerts_pkey",
                "messages_pkey",
                "channels_pkey",
                "alerts_pending_by_key",
            ] {
                assert!(plan.contains(index), "{index} not used:\n{plan}");
            }
            for whole in [
                "Seq Scan",
                "Hash",
                "Merge",
                "using alerts_pending on",
                "alerts_pending_by_origin",
                "alerts_seq_key",
            ] {
                assert!(!plan.contains(whole), "{whole} in the plan:\n{plan}");
            }
        });
    }

    /// Statistics taken while few alerts were pending (most delivered),
    /// then a storm: each read still takes the one index that fits it.
    /// The arrivals read, planned at each call, reads its origin's alerts
    /// through the index by origin (it scanned every origin's by `seq`);
    /// the claims read, planned once, checks for an earlier event of the
    /// key through the index by key (it scanned the index by origin).
    #[test]
    fn stale_statistics_leave_each_read_the_index_that_fits_it() {
        on_a_migrated_database(|client, _| async move {
            let fill = |from: i64, to: i64, pending_every: i64| {
                format!(
                    "INSERT INTO alerts (id, accepted_ms, alert, options, alert_key, origin, slot,
                                         status)
                     SELECT g, 0, '{{}}', '', 'key-' || (g % 500), 'o' || (g % 3), (g % 64),
                            CASE WHEN g % {pending_every} = 0 THEN 'pending' ELSE 'delivered' END
                     FROM generate_series({from}, {to}) g;
                     INSERT INTO origins (origin, seen_ms)
                     VALUES ('o0', 0), ('o1', 0), ('o2', 0) ON CONFLICT DO NOTHING"
                )
            };
            client.batch_execute(&fill(1, 3_000, 100)).await.unwrap();
            client.batch_execute("VACUUM ANALYZE").await.unwrap();
            client
                .batch_execute(&format!(
                    "{GENERIC}; PREPARE claims(bigint[], text[]) AS {CLAIMS_READ};
                     EXECUTE claims('{{100}}', '{{c1}}');
                     PREPARE arrivals(text[], bigint[], bigint, text, bigint) AS
                         {ARRIVALS_READ};
                     COMMIT"
                ))
                .await
                .unwrap();
            client.batch_execute(&fill(3_001, 33_000, 1)).await.unwrap();
            client.batch_execute(GENERIC).await.unwrap();
            let claims = explain(
                &client,
                "EXPLAIN EXECUTE claims('{3001, 32000}', '{c1, c2}')",
            )
            .await;
            client.batch_execute("COMMIT").await.unwrap();
            assert!(
                claims.contains("Index Only Scan using alerts_pending_by_key on alerts e"),
                "the earlier-event check by key:\n{claims}"
            );
            assert!(!claims.contains("alerts_pending_by_origin"), "{claims}");
            client
                .batch_execute("SET plan_cache_mode = force_custom_plan")
                .await
                .unwrap();
            let arrivals = explain(
                &client,
                "EXPLAIN EXECUTE arrivals('{o0, o1}', '{3000, 3000}', 5000, 'o2', -1)",
            )
            .await;
            assert!(
                arrivals.contains("alerts_pending_by_origin"),
                "the arrivals read by origin:\n{arrivals}"
            );
            assert!(
                arrivals.contains("Index Cond: ((origin = o.origin)"),
                "{arrivals}"
            );
        });
    }
}
