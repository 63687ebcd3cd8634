//! Group commit on the database: every write staged meanwhile, in one
//! transaction. Alerts go in with one statement, endings with another,
//! the claims they let go (the channels' pacing, a retry's wait) with two
//! more; aggregates' collections and closings one by one, in the order
//! written.
//! A transaction that inserts alerts inserts them as this process's
//! origin (registered first, its row locked, and refreshed once a
//! minute): one
//! process's group commits follow each other, so its alerts become
//! visible in `seq` order, and a node reading each origin's arrivals by
//! `seq` misses none, with no lock across nodes.

use std::collections::HashMap;
use std::time::Instant;

use kapacitor_formats::aggregate::{Collected, Window};
use tokio_postgres::types::ToSql;
use tokio_postgres::Transaction;

use super::claims::Claimant;
use super::committer::Committer;
use super::endings::{self, Late};
use super::notices::{self, Said};
use super::pool::{keepable, prepared, Cache, Conn, Db};
use super::Staged;
use crate::store::record::Record;
use crate::store::{alert_key, slot_of, Act, Finished, Pending, Release, Slots, ALL_SLOTS};

/// Now on the database's clock, in milliseconds since the Unix epoch (a
/// literal, for `concat!`).
macro_rules! now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}
pub(crate) use now_ms;

/// How often an origin's last insert is written down, in milliseconds
/// (a literal, for `concat!`): inserts meanwhile leave its row as it is,
/// though they lock it (`ON CONFLICT DO UPDATE` locks the row its `WHERE`
/// passes over), so the pruning of quiet origins (an hour) never drops an
/// origin inserting at that moment.
macro_rules! origin_refreshed_ms {
    () => {
        "60000"
    };
}

/// Registers this process's origin (parameter `$origin`), or refreshes its
/// last insert once [`origin_refreshed_ms`] passed, in the transaction
/// of the inserts.
macro_rules! register_origin {
    ($origin:literal) => {
        concat!(
            "INSERT INTO origins (origin, seen_ms) VALUES (",
            $origin,
            ", ",
            now_ms!(),
            ") ON CONFLICT (origin) DO UPDATE SET seen_ms = EXCLUDED.seen_ms
                 WHERE origins.seen_ms < EXCLUDED.seen_ms - ",
            origin_refreshed_ms!()
        )
    };
}

/// Inserts the gathered alerts ([`Batch::columns`], `$1` to `$8`) in the
/// order gathered, `$join` joined in, and answers each one's `id` and
/// `seq`.
macro_rules! insert_alerts {
    ($join:literal) => {
        concat!(
            "INSERT INTO alerts (id, accepted_ms, alert, options, alert_key, origin, slot,
                                 planned_channel)
             SELECT a.id, a.at, a.alert, a.options, a.key, $6, a.slot, a.channel
             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                         $7::smallint[], $8::text[])
                  WITH ORDINALITY AS a(id, at, alert, options, key, slot, channel, n) ",
            $join,
            " ORDER BY a.n
             RETURNING id, seq"
        )
    };
}

/// The origin of a batch written by no claimant (none in serve).
static NO_ORIGIN: String = String::new();

/// Times a transaction that lost a deadlock (or a serialization
/// conflict) is tried again before its writers are told it failed.
const TRIES: usize = 3;

/// How long a transaction that lost a deadlock waits before it is tried
/// again, times its tries so far: the transaction that won takes the rows
/// it waited for first. Tried again at once, it took them back under load
/// and lost again, three times over
/// (`a_deadlock_in_the_endings_commit_is_tried_again_and_each_alert_ends_once`).
const AGAIN_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// Writes `batch` in one transaction; once it committed, the alerts it
/// inserted (this node's own arrivals, handed over without reading them
/// back). A transaction PostgreSQL aborted to break a deadlock is tried
/// again: its writers (intake among them) are not refused for another's
/// lock order. On an error, the batch comes back with it: whether its
/// alerts were inserted is for the arrivals' reader to find out (a commit
/// whose answer was lost may have been made).
pub async fn commit(
    db: &std::sync::Arc<Db>,
    committer: &Committer,
    who: &std::sync::Arc<Claimant>,
    batch: Vec<Staged>,
) -> Result<Vec<Pending>, (String, Vec<Staged>)> {
    let mut conn = match committer.conn(db).await {
        Ok(conn) => conn,
        Err(e) => return Err((e.to_string(), batch)),
    };
    let mut tried = 1;
    loop {
        let said = Said::default();
        let written = write(&mut conn, who, &batch, &said).await;
        if written.is_err() {
            // Whether it committed or not, one notification more is
            // harmless; one too few leaves the alerts to the poll.
            notify_later(db, who, who.notices.rolled_back(&said));
        }
        match written {
            Err(e) if tried < TRIES && lost_a_conflict(&e) => {
                tokio::time::sleep(AGAIN_AFTER * tried as u32).await;
                tried += 1;
            }
            written => {
                let (late, inserted) = match db.answered(written) {
                    Ok(done) => done,
                    Err(e) => return Err((e.to_string(), batch)),
                };
                notify_later(db, who, who.notices.committed(&said));
                // Counted and said once committed, not for each try (one
                // rolled back said nothing).
                let duplicates = late.iter().filter(|l| l.duplicate).count();
                db.duplicates_recorded(duplicates as u64);
                for ending in &late {
                    ending.say();
                }
                return Ok(inserted);
            }
        }
    }
}

/// Sends, at `at`, a notification of its own of the slots owed then (see
/// [`super::notices`]); if it cannot, the next commit names them.
fn notify_later(db: &std::sync::Arc<Db>, who: &std::sync::Arc<Claimant>, at: Option<Instant>) {
    let Some(at) = at else { return };
    let (later, who) = (db.clone(), who.clone());
    db.spawn(async move {
        let db = later;
        tokio::time::sleep_until(at.into()).await;
        let slots = who.notices.due();
        if slots == 0 {
            return;
        }
        let heard = notices::say(&who.origin, slots);
        let sent = match db.get().await {
            Ok(conn) => conn
                .client
                .execute(
                    "SELECT pg_notify($1, $2)",
                    &[&notices::ARRIVALS_CHANNEL, &heard],
                )
                .await
                .is_ok(),
            Err(_) => false,
        };
        if !sent {
            who.notices.unsent(slots);
        }
    });
}

/// Whether PostgreSQL aborted the transaction to break a deadlock or a
/// serialization conflict (trying again may succeed).
pub fn lost_a_conflict(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// `batch` in one transaction on `conn`: the late endings it recorded
/// (to say once it committed), and the alerts it inserted.
async fn write(
    conn: &mut Conn,
    who: &Claimant,
    batch: &[Staged],
    said: &Said,
) -> Result<(Vec<Late>, Vec<Pending>), tokio_postgres::Error> {
    if batch
        .iter()
        .all(|s| matches!(s, Staged::Record(Record::Accept { .. })))
    {
        return Ok((Vec::new(), intake(conn, who, batch, said).await?));
    }
    if batch
        .iter()
        .all(|s| matches!(s, Staged::Release(_) | Staged::Record(Record::Done(_))))
    {
        return Ok((endings::commit(conn, who, batch).await?, Vec::new()));
    }
    {
        let (tx, cache) = conn.transaction().await?;
        let mut pending = Batch {
            node: &who.node,
            who: Some(who),
            said: Some(said),
            ..Batch::default()
        };
        for staged in batch {
            let record = match staged {
                Staged::Record(record) => record,
                Staged::Release(release) => {
                    pending.releases.push(release);
                    continue;
                }
            };
            match record {
                Record::Accept {
                    id,
                    at,
                    alert,
                    options,
                } => pending.accept(*id, *at, alert, options),
                Record::Done(done) => pending.done.push(done),
                Record::Act { key, act, click } => {
                    pending.flush(&tx, cache).await?;
                    // Once per click, across nodes: a click whose identity
                    // is recorded already changes nothing.
                    if let Some((identity, _)) = click {
                        let sql = concat!(
                            "INSERT INTO clicks (identity, recorded_ms) VALUES ($1, ",
                            now_ms!(),
                            ") ON CONFLICT (identity) DO NOTHING"
                        );
                        let statement = prepared(cache, &tx, sql).await?;
                        if tx.execute(&statement, &[&keepable(identity)]).await? == 0 {
                            continue;
                        }
                    }
                    let sql = match act {
                        Act::Acknowledge(_) => {
                            "UPDATE messages SET acknowledged_by = $2, acknowledged_ms = $3 WHERE alert_key = $1"
                        }
                        Act::Silence(_) | Act::Unsilence => {
                            "UPDATE messages SET silenced_by = $2, silenced_until_ms = $3, silence_id = $4 WHERE alert_key = $1"
                        }
                    };
                    let (by, at, silence) = match act {
                        Act::Acknowledge(m) | Act::Silence(m) => (
                            Some(keepable(&m.by).into_owned()),
                            Some(m.at as i64),
                            m.silence.clone(),
                        ),
                        Act::Unsilence => (None, None, None),
                    };
                    let statement = prepared(cache, &tx, sql).await?;
                    match act {
                        Act::Acknowledge(_) => {
                            tx.execute(&statement, &[&keepable(key), &by, &at]).await?
                        }
                        _ => {
                            tx.execute(&statement, &[&keepable(key), &by, &at, &silence])
                                .await?
                        }
                    };
                }
                Record::Resent { id, as_id } => {
                    pending.flush(&tx, cache).await?;
                    let sql =
                        "UPDATE alerts SET resent_as = $2 WHERE id = $1 AND resent_as IS NULL";
                    let statement = prepared(cache, &tx, sql).await?;
                    tx.execute(&statement, &[&(*id as i64), &(*as_id as i64)])
                        .await?;
                }
                Record::Collect {
                    handler,
                    start_ms,
                    event,
                } => {
                    pending.flush(&tx, cache).await?;
                    collect(&tx, cache, handler, *start_ms, event).await?;
                }
                Record::Emit {
                    handler,
                    accepts,
                    collects,
                    closes,
                } => {
                    pending.flush(&tx, cache).await?;
                    if close(&tx, cache, handler, *closes).await? {
                        for a in accepts {
                            pending.accept(a.id, a.at, &a.alert, &a.options);
                        }
                        pending.flush(&tx, cache).await?;
                        for (other, start_ms, event) in collects {
                            collect(&tx, cache, other, *start_ms, event).await?;
                        }
                    }
                }
                // Compaction's records: the database keeps its state whole.
                Record::Message(message) => {
                    pending.flush(&tx, cache).await?;
                    endings::upsert_messages(&tx, cache, &[message]).await?;
                }
                Record::Ids { .. }
                | Record::Failed(_)
                | Record::Window { .. }
                | Record::Clicked { .. } => {}
            }
        }
        pending.flush(&tx, cache).await?;
        tx.commit().await?;
        Ok((pending.late, pending.inserted))
    }
}

/// A batch of alerts alone (intake's usual group commit), in one
/// statement, a transaction of its own: the origin registered, the
/// alerts inserted, and the listening nodes told of their slots at commit
/// (unless a notification went out less than [`notices::SPACING`] ago;
/// the nodes owning none of them do not look).
async fn intake(
    conn: &mut Conn,
    who: &Claimant,
    batch: &[Staged],
    said: &Said,
) -> Result<Vec<Pending>, tokio_postgres::Error> {
    let mut alerts = Batch {
        node: &who.node,
        who: Some(who),
        said: Some(said),
        ..Batch::default()
    };
    for staged in batch {
        if let Staged::Record(Record::Accept {
            id,
            at,
            alert,
            options,
        }) = staged
        {
            alerts.accept(*id, *at, alert, options);
        }
    }
    let mut params = alerts.columns().to_vec();
    let heard = alerts.notice();
    let statement = match &heard {
        Some(heard) => {
            let sql = concat!(
                "WITH o AS (",
                register_origin!("$6"),
                "), n AS (SELECT pg_notify($9, $10)) ",
                insert_alerts!("CROSS JOIN n")
            );
            params.extend([&notices::ARRIVALS_CHANNEL as &(dyn ToSql + Sync), heard]);
            conn.statement(sql).await?
        }
        None => {
            let sql = concat!(
                "WITH o AS (",
                register_origin!("$6"),
                ") ",
                insert_alerts!("")
            );
            conn.statement(sql).await?
        }
    };
    // A statement alone is a transaction of its own: one request, one
    // answer, once committed. Planned once a connection (the group
    // commit's session, [`super::committer`]; it reads no table but
    // `origins`, by its key), not at each group commit (a fifth of the
    // database's CPU in three nodes' intake).
    let numbered = conn.client.query(&statement, &params).await?;
    alerts.numbered(&numbered);
    Ok(alerts.inserted)
}

/// Alerts and endings gathered, to write with one statement each (the
/// batch's records borrowed: a transaction tried again copies nothing).
#[derive(Default)]
struct Batch<'a> {
    ids: Vec<i64>,
    at: Vec<i64>,
    alerts: Vec<std::borrow::Cow<'a, str>>,
    options: Vec<String>,
    keys: Vec<String>,
    /// Each alert's slot and channel as this node planned it (none when
    /// it plans nothing: every node reads those).
    slots: Vec<Option<i16>>,
    channels: Vec<Option<String>>,
    /// The slots of the alerts gathered ([`crate::store::ALL_SLOTS`] for
    /// one filed under none): who is to hear of them.
    filed: Slots,
    done: Vec<&'a Finished>,
    releases: Vec<&'a Release>,
    /// This node, named in the duplicates it records.
    node: &'a str,
    /// What the transaction's notifications named, and did not.
    said: Option<&'a Said>,
    /// Its pacing rules, for the releases.
    who: Option<&'a Claimant>,
    /// This process's origin is registered in this transaction.
    registered: bool,
    /// Endings that came after their claim had passed on.
    late: Vec<Late>,
    /// The alerts inserted, as arrivals.
    inserted: Vec<Pending>,
}

impl<'a> Batch<'a> {
    /// The origin this process inserts as.
    fn origin(&self) -> &'a String {
        self.who.map_or(&NO_ORIGIN, |who| &who.origin)
    }

    /// The gathered alerts as [`insert_alerts`] takes them.
    fn columns(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.ids,
            &self.at,
            &self.alerts,
            &self.options,
            &self.keys,
            self.origin(),
            &self.slots,
            &self.channels,
        ]
    }

    /// The inserted alerts' `seq`, from the insert's answer (id, seq).
    fn numbered(&mut self, rows: &[tokio_postgres::Row]) {
        let seqs: HashMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for alert in &mut self.inserted {
            if let Some(seq) = seqs.get(&(alert.id as i64)) {
                alert.seq = (*seq).max(0) as u64;
            }
        }
    }

    /// What the notification of these alerts says ([`notices::say`]): the
    /// slots they are filed under, with those owed by earlier commits;
    /// none within [`notices::SPACING`] of the last. This node's own slots
    /// are named too: one may be passing to another node as it commits
    /// (its alerts are then the new owner's, told only by this).
    fn notice(&self) -> Option<String> {
        let named = match (self.said, self.who) {
            (Some(said), Some(who)) => said.name(&who.notices, self.filed),
            _ => self.filed,
        };
        (named != 0).then(|| notices::say(self.origin(), named))
    }

    fn accept(&mut self, id: u64, at: u64, alert: &'a str, options: &[(String, String)]) {
        let channel = self
            .who
            .and_then(|who| who.channel_of.get())
            .and_then(|channel_of| channel_of(id, alert, options));
        let slot = channel.as_deref().map(slot_of);
        self.filed |= slot.map_or(ALL_SLOTS, |s| 1 << s);
        self.slots.push(slot.map(|s| s as i16));
        self.channels
            .push(channel.as_deref().map(|c| keepable(c).into_owned()));
        self.inserted.push(Pending {
            id,
            // Set from the insert's answer.
            seq: 0,
            at,
            alert: alert.to_string(),
            options: options.to_vec(),
            channel,
        });
        self.ids.push(id as i64);
        self.at.push(at as i64);
        self.keys.push(key_of(alert, options));
        self.options
            .push(serde_json::to_string(options).unwrap_or_else(|_| "[]".into()));
        self.alerts.push(keepable(alert));
    }

    /// Writes what was gathered: endings first (an ending's alert was
    /// committed before: it was claimed), then alerts, so the lock on
    /// inserts is held as briefly as can be.
    async fn flush(
        &mut self,
        tx: &Transaction<'_>,
        cache: &mut Cache,
    ) -> Result<(), tokio_postgres::Error> {
        if !self.done.is_empty() {
            let done = std::mem::take(&mut self.done);
            let late = endings::end(tx, cache, self.node, &done).await?;
            self.late.extend(late);
        }
        if !self.releases.is_empty() {
            let releases = std::mem::take(&mut self.releases);
            if let Some(who) = self.who {
                endings::release(tx, cache, who, &releases).await?;
            }
        }
        if !self.ids.is_empty() {
            if !self.registered {
                let sql = register_origin!("$1");
                let statement = prepared(cache, tx, sql).await?;
                tx.execute(&statement, &[&self.origin()]).await?;
                self.registered = true;
            }
            // The listening nodes hear of the alerts at commit (one
            // notification for however many alerts, naming the origin,
            // whose own are not read back, and their slots, which only
            // their owners look at).
            if let Some(heard) = self.notice() {
                let sql = "SELECT pg_notify($1, $2)";
                let statement = prepared(cache, tx, sql).await?;
                tx.execute(&statement, &[&notices::ARRIVALS_CHANNEL, &heard])
                    .await?;
            }
            self.filed = 0;
            let statement = prepared(cache, tx, insert_alerts!("")).await?;
            let numbered = tx.query(&statement, &self.columns()).await?;
            self.numbered(&numbered);
            self.ids.clear();
            self.at.clear();
            self.alerts.clear();
            self.options.clear();
            self.keys.clear();
            self.slots.clear();
            self.channels.clear();
        }
        Ok(())
    }
}

/// The alert key of an alert as posted: its `id` with its options (an
/// alert whose JSON has no id gets the empty one; the planner fails it).
fn key_of(alert: &str, options: &[(String, String)]) -> String {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(default)]
        id: String,
    }
    let id = serde_json::from_str::<Id>(alert)
        .map(|i| i.id)
        .unwrap_or_default();
    alert_key(&id, options)
}

/// Adds `event` to `handler`'s window, opening one that starts at
/// `start_ms` if none is open; the row is locked, so collections from
/// every node count once.
async fn collect(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    handler: &str,
    start_ms: u64,
    event: &Collected,
) -> Result<(), tokio_postgres::Error> {
    let handler = keepable(handler);
    let sql = "SELECT state FROM windows WHERE handler = $1 FOR UPDATE";
    let statement = prepared(cache, tx, sql).await?;
    let row = tx.query_opt(&statement, &[&handler]).await?;
    let mut window = row
        .and_then(|r| serde_json::from_str::<Window>(r.get::<_, &str>(0)).ok())
        .unwrap_or_else(|| Window::open(start_ms));
    window.add(event.clone());
    let state = serde_json::to_string(&window).unwrap_or_default();
    let sql = "INSERT INTO windows (handler, state) VALUES ($1, $2)
         ON CONFLICT (handler) DO UPDATE SET state = EXCLUDED.state";
    let statement = prepared(cache, tx, sql).await?;
    tx.execute(&statement, &[&handler, &state]).await?;
    Ok(())
}

/// Closes `handler`'s window if it is still the one its closer saw (start
/// and count): whether this transaction closed it.
async fn close(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    handler: &str,
    closes: Option<(u64, u64)>,
) -> Result<bool, tokio_postgres::Error> {
    let handler = keepable(handler);
    let sql = "SELECT state FROM windows WHERE handler = $1 FOR UPDATE";
    let statement = prepared(cache, tx, sql).await?;
    let Some(row) = tx.query_opt(&statement, &[&handler]).await? else {
        tracing::info!(
            handler = handler.as_ref(),
            "another node closed the aggregate's window first; this node's closing is dropped"
        );
        return Ok(false);
    };
    let held = serde_json::from_str::<Window>(row.get::<_, &str>(0)).ok();
    let same = match (closes, held) {
        (Some((start, count)), Some(w)) => w.start_ms == start && w.count == count,
        (None, _) => true,
        (_, None) => true,
    };
    if !same {
        tracing::info!(
            handler = handler.as_ref(),
            "the aggregate's window took more events since it was read; it is closed at the next look, with them"
        );
        return Ok(false);
    }
    let sql = "DELETE FROM windows WHERE handler = $1";
    let statement = prepared(cache, tx, sql).await?;
    tx.execute(&statement, &[&handler]).await?;
    Ok(true)
}
