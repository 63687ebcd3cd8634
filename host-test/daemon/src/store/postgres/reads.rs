//! What the database holds, read: the arrivals every node plans, the
//! counts `/metrics` shows, the lists of `GET /spool`, the aggregates'
//! windows, the failed alerts kept for resending; and the bounds on what
//! is kept (the newest finished alerts, failed ones, messages).

use std::collections::BTreeMap;
use std::sync::Arc;

use kapacitor_formats::aggregate::Window;
use tokio_postgres::Row;

use super::pool::{keepable, Db};
use crate::store::record::{MAX_FAILED, MAX_MESSAGES};
use crate::store::{
    AlertMessage, Entry, FailedAlert, Finished, Listing, Lists, Page, Pending, Status, StoreError,
};
use crate::store::{Mark, Slots};

/// Alerts read at once by the arrivals' reader.
const ARRIVALS_AT_ONCE: i64 = 5_000;

fn options_of(text: &str) -> Vec<(String, String)> {
    serde_json::from_str(text).unwrap_or_default()
}

/// How far a node read each origin's arrivals ([`super::writes`]).
#[derive(Default)]
pub struct Watermarks {
    /// The last `seq` read of each origin (one not read yet: every
    /// pending alert of it, none of which this node has read).
    seen: std::collections::HashMap<String, i64>,
}

impl Watermarks {
    /// Each origin read and the last `seq` read of it, as two columns.
    fn columns(&self) -> (Vec<&str>, Vec<i64>) {
        self.seen.iter().map(|(o, s)| (o.as_str(), *s)).unzip()
    }
}

/// A pending alert from a row of `id, seq, accepted_ms, alert, options,
/// origin, planned_channel`; `None` for one passed over (its alert not
/// read).
fn pending_from(r: &Row) -> Option<Pending> {
    Some(Pending {
        id: r.get::<_, i64>(0) as u64,
        seq: r.get::<_, i64>(1).max(0) as u64,
        at: r.get::<_, i64>(2).max(0) as u64,
        alert: r.get::<_, Option<String>>(3)?,
        options: options_of(r.get::<_, Option<&str>>(4).unwrap_or("[]")),
        channel: r.get(6),
    })
}

/// The arrivals read ([`arrivals`]): `$1` and `$2` the origins read before
/// and the last `seq` read of each, `$3` the most a read takes of an
/// origin, `$4` this process's origin, `$5` the slots it owns.
pub(super) const ARRIVALS_READ: &str =
    "SELECT a.id, a.seq, a.accepted_ms, a.alert, a.options, o.origin,
                  a.planned_channel
     FROM origins o
     LEFT JOIN unnest($1::text[], $2::bigint[]) AS w(origin, seen) ON w.origin = o.origin
     CROSS JOIN LATERAL (
         SELECT id, seq, accepted_ms, planned_channel,
                CASE WHEN mine THEN alert END AS alert,
                CASE WHEN mine THEN options END AS options
         FROM alerts a
         CROSS JOIN LATERAL (SELECT a.slot IS NULL OR ($5::bigint >> a.slot) & 1 = 1) m(mine)
         WHERE a.origin = o.origin AND a.status = 'pending'
           AND a.seq > coalesce(w.seen, 0)
         ORDER BY a.seq LIMIT $3) a
     WHERE o.origin <> $4
     ORDER BY a.seq";

/// The pending alerts other processes committed since `seen` (each
/// origin's alerts past the last read of it, oldest first; this
/// process's own, `own`, arrive from its commits) of the slots in `owned`
/// or filed under none, and whether an origin had more than one read
/// takes. The alerts of other slots are passed over (only their `seq` is
/// read): their owner reads them, and this node too once it owns their
/// slot ([`filed`]).
pub async fn arrivals(
    db: &Arc<Db>,
    seen: &mut Watermarks,
    own: &str,
    owned: Slots,
) -> Result<(Vec<Pending>, bool), StoreError> {
    let mut conn = db.get().await?;
    let (origins, marks) = seen.columns();
    let sql = ARRIVALS_READ;
    let rows = async {
        let statement = conn.statement(sql).await?;
        conn.client
            .query(
                &statement,
                &[&origins, &marks, &ARRIVALS_AT_ONCE, &own, &(owned as i64)],
            )
            .await
    }
    .await
    .map_err(|e| db.failed(e))?;
    db.recovered();
    let mut taken: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for r in &rows {
        let origin: &str = r.get(5);
        *taken.entry(origin).or_default() += 1;
        let seq: i64 = r.get(1);
        let mark = seen.seen.entry(origin.to_string()).or_default();
        *mark = (*mark).max(seq);
    }
    let full = taken.values().any(|n| *n >= ARRIVALS_AT_ONCE);
    let pending = rows.iter().filter_map(pending_from).collect();
    Ok((pending, full))
}

/// The pending alerts filed under `slots` (slots this node has just come
/// to own) that its reads of arrivals passed over: those of other origins
/// up to the last `seq` read of each (past it, the next reads take them),
/// and this process's own, whose commits handed over only those of the
/// slots owned then. Oldest first, every one.
pub async fn filed(
    db: &Arc<Db>,
    slots: Slots,
    seen: &Watermarks,
    own: &str,
) -> Result<Vec<Pending>, StoreError> {
    let mut conn = db.get().await?;
    let wanted: Vec<i16> = (0..crate::store::SLOTS)
        .filter(|s| slots & (1 << s) != 0)
        .map(|s| s as i16)
        .collect();
    let (origins, marks) = seen.columns();
    let sql = "SELECT a.id, a.seq, a.accepted_ms, a.alert, a.options, a.origin, a.planned_channel
         FROM alerts a
         LEFT JOIN unnest($2::text[], $3::bigint[]) AS w(origin, seen) ON w.origin = a.origin
         WHERE a.status = 'pending' AND a.slot = ANY($1) AND a.seq > $5
           AND (a.origin = $4 OR a.seq <= w.seen)
         ORDER BY a.seq LIMIT $6";
    let mut alerts = Vec::new();
    let mut after = 0i64;
    loop {
        let rows = async {
            let statement = conn.statement(sql).await?;
            conn.client
                .query(
                    &statement,
                    &[&wanted, &origins, &marks, &own, &after, &ARRIVALS_AT_ONCE],
                )
                .await
        }
        .await
        .map_err(|e| db.failed(e))?;
        let more = rows.len() as i64 >= ARRIVALS_AT_ONCE;
        for r in &rows {
            after = after.max(r.get::<_, i64>(1));
            alerts.extend(pending_from(r));
        }
        if !more {
            return Ok(alerts);
        }
    }
}

/// How many alerts are pending, and when the oldest was accepted, as
/// the store's keeper counted them; and, for [`Db::settled`], the rows
/// `alerts` had when its statistics were last taken (`reltuples`,
/// PostgreSQL's estimate; negative if never). The keeper (`keeper`: this
/// node owns slot 0) counts and keeps the figures (`pending_counts`);
/// another node reads them, and counts and keeps them itself only when
/// none were kept within `stale`.
pub async fn pending_stats(
    db: &Arc<Db>,
    node: &str,
    keeper: bool,
    stale: std::time::Duration,
) -> Result<(usize, Option<u64>), StoreError> {
    let conn = db.get().await?;
    let kept = if keeper {
        None
    } else {
        conn.client
            .query_opt(
                concat!(
                    "SELECT pending, oldest_ms,
                            (SELECT reltuples FROM pg_class WHERE oid = 'alerts'::regclass)
                     FROM pending_counts WHERE counted_ms > ",
                    super::writes::now_ms!(),
                    " - $1"
                ),
                &[&(stale.as_millis() as i64)],
            )
            .await
            .map_err(|e| db.failed(e))?
    };
    let row = match kept {
        Some(row) => row,
        None => conn
            .client
            .query_one(
                concat!(
                    "WITH c AS (SELECT count(*) AS n, min(accepted_ms) AS oldest
                                FROM alerts WHERE status = 'pending')
                     INSERT INTO pending_counts (one, pending, oldest_ms, counted_ms, counted_by)
                     SELECT true, c.n, c.oldest, ",
                    super::writes::now_ms!(),
                    ", $1 FROM c
                     ON CONFLICT (one) DO UPDATE
                         SET pending = EXCLUDED.pending, oldest_ms = EXCLUDED.oldest_ms,
                             counted_ms = EXCLUDED.counted_ms, counted_by = EXCLUDED.counted_by
                     RETURNING pending, oldest_ms,
                         (SELECT reltuples FROM pg_class WHERE oid = 'alerts'::regclass)"
                ),
                &[&node],
            )
            .await
            .map_err(|e| db.failed(e))?,
    };
    db.statistics_of(row.get::<_, Option<f32>>(2).unwrap_or(-1.0));
    Ok((
        row.get::<_, i64>(0).max(0) as usize,
        row.get::<_, Option<i64>>(1).map(|v| v.max(0) as u64),
    ))
}

/// Drops what is past the bounds: finished alerts beyond the newest
/// `keep_finished` (failed ones not yet resent are kept, up to
/// [`MAX_FAILED`]), messages beyond [`MAX_MESSAGES`].
pub async fn prune(db: &Arc<Db>, keep_finished: usize) -> Result<(), StoreError> {
    let conn = db.get().await?;
    conn.client
        .execute(
            "DELETE FROM alerts WHERE status <> 'pending'
               AND NOT (status = 'failed' AND resent_as IS NULL)
               AND ended_seq <= (SELECT ended_seq FROM alerts WHERE status <> 'pending'
                                 ORDER BY ended_seq DESC OFFSET $1 LIMIT 1)",
            &[&(keep_finished as i64)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    conn.client
        .execute(
            "DELETE FROM alerts WHERE status = 'failed' AND resent_as IS NULL
               AND id <= (SELECT id FROM alerts WHERE status = 'failed' AND resent_as IS NULL
                          ORDER BY id DESC OFFSET $1 LIMIT 1)",
            &[&(MAX_FAILED as i64)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    conn.client
        .execute(
            "DELETE FROM messages WHERE kept_seq <= (SELECT kept_seq FROM messages
                 ORDER BY kept_seq DESC OFFSET $1 LIMIT 1)",
            &[&(MAX_MESSAGES as i64)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    conn.client
        .execute(
            "DELETE FROM duplicates WHERE id <= (SELECT id FROM duplicates
                 ORDER BY id DESC OFFSET $1 LIMIT 1)",
            &[&(keep_finished as i64)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    // Clicks are remembered well past the signature window (a replay of
    // an older one is refused by its timestamp).
    conn.client
        .execute(
            concat!(
                "DELETE FROM clicks WHERE recorded_ms < ",
                super::writes::now_ms!(),
                " - $1"
            ),
            &[&(crate::store::CLICKS_KEPT.as_millis() as i64)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    // The origins of processes gone quiet (one a start): an origin that
    // inserts again registers again, in that insert's transaction.
    conn.client
        .execute(
            concat!(
                "DELETE FROM origins o WHERE o.origin <> '' AND o.seen_ms < ",
                super::writes::now_ms!(),
                " - $1 AND NOT EXISTS (SELECT 1 FROM alerts a
                     WHERE a.origin = o.origin AND a.status = 'pending')"
            ),
            &[&(ORIGINS_KEPT.as_millis() as i64)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    // The names of nodes long gone (autoscaled nodes take a name each): a
    // name is taken again as a name never seen.
    conn.client
        .execute(
            concat!(
                "DELETE FROM nodes WHERE seen_ms < ",
                super::writes::now_ms!(),
                " - $1"
            ),
            &[&(NODES_KEPT.as_millis() as i64)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    Ok(())
}

/// How long an origin with no pending alert is kept after its last insert.
const ORIGINS_KEPT: std::time::Duration = std::time::Duration::from_secs(3_600);

/// How long a node's name is kept after its last renewal: far past any
/// lease (a process that could not renew for so long lost its name
/// anyway).
const NODES_KEPT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3_600);

/// The aggregates' open windows.
pub async fn windows(db: Arc<Db>) -> Result<BTreeMap<String, Window>, StoreError> {
    let conn = db.get().await?;
    let rows = conn
        .client
        .query("SELECT handler, state FROM windows", &[])
        .await
        .map_err(|e| db.failed(e))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let window = serde_json::from_str::<Window>(r.get::<_, &str>(1)).ok()?;
            Some((r.get::<_, String>(0), window))
        })
        .collect())
}

fn failed_alert(r: &Row) -> FailedAlert {
    FailedAlert {
        id: r.get::<_, i64>(0) as u64,
        at: r.get::<_, i64>(1).max(0) as u64,
        alert: r.get(2),
        options: options_of(r.get(3)),
        detail: r.get::<_, Option<String>>(4).unwrap_or_default(),
    }
}

/// The failed alerts kept for resending: `ids` (each must be one), or all.
pub async fn resendable(
    db: Arc<Db>,
    ids: Option<Vec<u64>>,
) -> Result<Vec<FailedAlert>, StoreError> {
    let conn = db.get().await?;
    let select = "SELECT id, accepted_ms, alert, options, detail FROM alerts
         WHERE status = 'failed' AND resent_as IS NULL";
    let rows = match &ids {
        None => {
            conn.client
                .query(&format!("{select} ORDER BY id"), &[])
                .await
        }
        Some(ids) => {
            let wanted: Vec<i64> = ids.iter().map(|id| *id as i64).collect();
            conn.client
                .query(
                    &format!("{select} AND id = ANY($1) ORDER BY id"),
                    &[&wanted],
                )
                .await
        }
    }
    .map_err(|e| db.failed(e))?;
    let found: Vec<FailedAlert> = rows.iter().map(failed_alert).collect();
    if let Some(ids) = ids {
        if let Some(missing) = ids.iter().find(|id| !found.iter().any(|f| f.id == **id)) {
            return Err(StoreError::NotFailed { id: *missing });
        }
        // In the order named, each once.
        let mut ordered: Vec<FailedAlert> = Vec::new();
        for id in ids {
            if !ordered.iter().any(|f| f.id == id) {
                ordered.extend(found.iter().find(|f| f.id == id).cloned());
            }
        }
        return Ok(ordered);
    }
    Ok(found)
}

/// Every list's count, and a page of each of `lists` past `after`.
pub async fn lists(
    db: Arc<Db>,
    lists: Vec<Listing>,
    after: Option<u64>,
    limit: usize,
) -> Result<Lists, StoreError> {
    let conn = db.get().await?;
    let row = conn
        .client
        .query_one(
            "SELECT (SELECT count(*) FROM alerts WHERE status = 'pending'),
                    (SELECT count(*) FROM alerts WHERE status <> 'pending'),
                    (SELECT count(*) FROM messages),
                    (SELECT count(*) FROM alerts WHERE status = 'failed' AND resent_as IS NULL),
                    (SELECT count(*) FROM duplicates)",
            &[],
        )
        .await
        .map_err(|e| db.failed(e))?;
    let counts = Listing::ALL
        .iter()
        .enumerate()
        .map(|(n, l)| (*l, row.get::<_, i64>(n).max(0) as usize))
        .collect();
    let mut pages = Vec::new();
    // One more than asked: whether there is a next page.
    let take = limit as i64 + 1;
    let after = after.map(|a| a as i64);
    for list in lists {
        let rows = match list {
            Listing::Pending => {
                conn.client
                    .query(
                        "SELECT id FROM alerts WHERE status = 'pending' AND id > $1
                         ORDER BY id LIMIT $2",
                        &[&after.unwrap_or(0), &take],
                    )
                    .await
            }
            Listing::Finished => {
                conn.client
                    .query(
                        "SELECT ended_seq, id, status, detail, attempts FROM alerts
                         WHERE status <> 'pending' AND ended_seq < $1
                         ORDER BY ended_seq DESC LIMIT $2",
                        &[&after.unwrap_or(i64::MAX), &take],
                    )
                    .await
            }
            Listing::Messages => {
                conn.client
                    .query(
                        "SELECT kept_seq, alert_key, workspace, channel_id, ts, level, digest,
                             alert, acknowledged_by, acknowledged_ms, silenced_by, silenced_until_ms,
                             silence_id
                         FROM messages
                         WHERE kept_seq > $1 ORDER BY kept_seq LIMIT $2",
                        &[&after.unwrap_or(0), &take],
                    )
                    .await
            }
            Listing::Resendable => {
                conn.client
                    .query(
                        "SELECT id, detail FROM alerts
                         WHERE status = 'failed' AND resent_as IS NULL AND id > $1
                         ORDER BY id LIMIT $2",
                        &[&after.unwrap_or(0), &take],
                    )
                    .await
            }
            Listing::Duplicates => {
                conn.client
                    .query(
                        "SELECT id, alert_id, node, recorded_ms, detail, kept FROM duplicates
                         WHERE id < $1 ORDER BY id DESC LIMIT $2",
                        &[&after.unwrap_or(i64::MAX), &take],
                    )
                    .await
            }
        }
        .map_err(|e| db.failed(e))?;
        let mut items: Vec<(u64, Entry)> = rows
            .iter()
            .map(|r| {
                let cursor = r.get::<_, i64>(0) as u64;
                let entry = match list {
                    Listing::Pending => Entry::Pending(cursor),
                    Listing::Finished => Entry::Finished(Finished::new(
                        r.get::<_, i64>(1) as u64,
                        Status::named(r.get::<_, &str>(2)),
                        r.get::<_, Option<&str>>(3).unwrap_or_default(),
                        r.get::<_, i32>(4).max(0) as u32,
                    )),
                    Listing::Messages => Entry::Message(message_from(r, r.get(1), 2)),
                    Listing::Resendable => Entry::Resendable {
                        id: cursor,
                        detail: r.get::<_, Option<String>>(1).unwrap_or_default(),
                    },
                    Listing::Duplicates => Entry::Duplicate {
                        alert: r.get::<_, i64>(1).max(0) as u64,
                        node: r.get(2),
                        recorded_ms: r.get::<_, i64>(3).max(0) as u64,
                        late: r.get(4),
                        kept: r.get(5),
                    },
                };
                (cursor, entry)
            })
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|(c, _)| *c)
        } else {
            None
        };
        pages.push((
            list,
            Page {
                items: items.into_iter().map(|(_, e)| e).collect(),
                next,
            },
        ));
    }
    Ok(Lists { counts, pages })
}

/// The columns a key's message is read from, in the order
/// [`message_from`] reads them.
pub(super) const MESSAGE_COLUMNS: &str = "m.workspace, m.channel_id, m.ts, m.level, m.digest, \
     m.alert, m.acknowledged_by, m.acknowledged_ms, m.silenced_by, m.silenced_until_ms, m.silence_id";

/// Alert `key`'s message from row `r`'s columns from `first` on (the
/// workspace, then as [`MESSAGE_COLUMNS`] lists them).
/// What a claim reads of an alert (joined as `a`, its key's message as
/// `m`): its status, claim, attempts, retry's wait and key; now on the
/// database's clock; whether an earlier event of its key is pending; then
/// the message's columns as [`message_from`] reads them (the 9th on).
macro_rules! claim_columns {
    () => {
        concat!(
            "a.status, a.claimed_by, a.lease_until_ms, a.attempts, a.not_before_ms, a.alert_key, ",
            $crate::store::postgres::writes::now_ms!(),
            ", EXISTS (SELECT 1 FROM alerts e WHERE e.alert_key = a.alert_key
                   AND e.status = 'pending' AND e.seq < a.seq),
               m.workspace, m.channel_id, m.ts, m.level, m.digest,
               m.alert, m.acknowledged_by, m.acknowledged_ms, m.silenced_by, m.silenced_until_ms,
               m.silence_id"
        )
    };
}
pub(super) use claim_columns;

pub(super) fn message_from(r: &tokio_postgres::Row, key: String, first: usize) -> AlertMessage {
    let mark = |column: usize| {
        let by: Option<String> = r.get(column);
        let at: Option<i64> = r.get(column + 1);
        by.zip(at).map(|(by, at)| Mark {
            by,
            at: at.max(0) as u64,
            silence: None,
        })
    };
    AlertMessage {
        key,
        workspace: r.get::<_, Option<String>>(first).unwrap_or_default(),
        channel_id: r.get::<_, Option<String>>(first + 1).unwrap_or_default(),
        ts: r.get::<_, Option<String>>(first + 2).unwrap_or_default(),
        level: r.get(first + 3),
        digest: r.get(first + 4),
        alert: r.get(first + 5),
        acknowledged: mark(first + 6),
        silenced: mark(first + 8).map(|m| Mark {
            silence: r.get(first + 10),
            ..m
        }),
    }
}

/// The message of the alert key a button named (the key, or its digest),
/// if the database keeps one. A digest is looked for among the messages
/// kept (a click is rare; the table is bounded).
pub async fn message(db: Arc<Db>, named: String) -> Result<Option<AlertMessage>, StoreError> {
    let conn = db.get().await?;
    let sql = format!(
        "SELECT m.alert_key, {MESSAGE_COLUMNS} FROM messages m
         WHERE m.alert_key = $1
            OR ($1 LIKE 'sha256:%'
                AND 'sha256:' || encode(sha256(convert_to(m.alert_key, 'UTF8')), 'hex') = $1)
         LIMIT 1"
    );
    let row = conn
        .client
        .query_opt(&sql, &[&keepable(&named)])
        .await
        .map_err(|e| db.failed(e))?;
    Ok(row.map(|r| message_from(&r, r.get(0), 1)))
}

/// Whether click `identity` was acted on (by any node).
pub async fn clicked(db: Arc<Db>, identity: String) -> Result<bool, StoreError> {
    let conn = db.get().await?;
    let row = conn
        .client
        .query_opt(
            "SELECT 1 FROM clicks WHERE identity = $1",
            &[&keepable(&identity)],
        )
        .await
        .map_err(|e| db.failed(e))?;
    db.recovered();
    Ok(row.is_some())
}

/// Endings read at once by [`ended_since`].
const ENDED_AT_ONCE: i64 = 10_000;

/// How many endings before the cursor [`ended_since`] reads again.
const ENDED_OVERLAP: u64 = 1_000;

/// The alerts ended past `after` (their `ended_seq`), and where to read
/// from next ([`crate::store::Health::ended_since`]).
pub async fn ended_since(db: Arc<Db>, after: u64) -> Result<(Vec<u64>, u64), StoreError> {
    let mut conn = db.get().await?;
    let sql = "SELECT id, ended_seq FROM alerts WHERE status <> 'pending' AND ended_seq > $1
         ORDER BY ended_seq LIMIT $2";
    let from = after.saturating_sub(ENDED_OVERLAP) as i64;
    let rows = async {
        let statement = conn.statement(sql).await?;
        conn.client
            .query(&statement, &[&from, &ENDED_AT_ONCE])
            .await
    }
    .await
    .map_err(|e| db.failed(e))?;
    db.recovered();
    let newest = rows
        .last()
        .map_or(after, |r| (r.get::<_, i64>(1).max(0) as u64).max(after));
    Ok((
        rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect(),
        newest,
    ))
}

/// Which of `ids` are pending in the database, with their `seq`.
pub async fn still_pending(db: Arc<Db>, ids: Vec<u64>) -> Result<Vec<(u64, u64)>, StoreError> {
    let ids: Vec<i64> = ids.into_iter().map(|id| id as i64).collect();
    let conn = db.get().await?;
    // The status is looked at here, not asked of the database: asked, it
    // may read the whole partial index of pending alerts to AND it with
    // the ids (see `locked!` in `endings`).
    let rows = conn
        .client
        .query(
            "SELECT id, seq, status FROM alerts WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(|e| db.failed(e))?;
    Ok(rows
        .iter()
        .filter(|r| r.get::<_, &str>(2) == "pending")
        .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1).max(0) as u64))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::pool::on_a_throwaway_database;
    use super::*;

    /// What is past the bounds goes, and only that: finished alerts beyond
    /// the newest kept (a failed one not resent stays), old clicks, quiet
    /// origins without pending alerts, and nodes unseen for a week.
    #[test]
    fn pruning_drops_what_is_past_the_bounds_and_nothing_else() {
        on_a_throwaway_database(|mut client, url| async move {
            super::super::schema::migrate(&mut client).await.unwrap();
            let now = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
            let week = NODES_KEPT.as_millis() as i64;
            client
                .batch_execute(&format!(
                    "INSERT INTO alerts (id, accepted_ms, alert, options, alert_key, status,
                                         ended_seq, origin)
                     SELECT g, 0, '{{}}', '', 'k' || g,
                            CASE WHEN g = 1 THEN 'failed' WHEN g = 10 THEN 'pending'
                                 ELSE 'delivered' END,
                            CASE WHEN g = 10 THEN NULL ELSE g END,
                            CASE WHEN g = 10 THEN 'busy' ELSE 'quiet' END
                     FROM generate_series(1, 10) g;
                     INSERT INTO clicks (identity, recorded_ms)
                         VALUES ('old', 0), ('new', {now});
                     INSERT INTO origins (origin, seen_ms)
                         VALUES ('quiet', 0), ('busy', 0), ('recent', {now});
                     INSERT INTO nodes (id, started_ms, seen_ms, instance)
                         VALUES ('gone', 0, {now} - {week} - 1000, 'i1'),
                                ('away', 0, {now} - {week} + 60000, 'i2'),
                                ('here', 0, {now}, 'i3')"
                ))
                .await
                .unwrap();
            let db = Db::new(
                super::super::connect::StoreUrl::parse(&url).unwrap(),
                tokio::runtime::Handle::current(),
            );
            prune(&db, 3).await.unwrap();
            let list = |sql: &'static str| {
                let client = &client;
                async move {
                    client
                        .query(sql, &[])
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect::<Vec<_>>()
                }
            };
            assert_eq!(
                list("SELECT id::text FROM alerts ORDER BY alerts.id").await,
                ["1", "7", "8", "9", "10"],
                "the 3 newest finished, the failed one not resent, the pending one"
            );
            assert_eq!(list("SELECT identity FROM clicks").await, ["new"]);
            assert_eq!(
                list("SELECT origin FROM origins ORDER BY origin").await,
                ["", "busy", "recent"],
                "a quiet origin with a pending alert stays"
            );
            assert_eq!(
                list("SELECT id FROM nodes ORDER BY id").await,
                ["away", "here"],
                "only the name unseen for a week goes"
            );
        });
    }
}
