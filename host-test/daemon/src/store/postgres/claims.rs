//! Claims: which node sends an alert, and when, decided in the database
//! by the scheduler's own rule ([`Pace`]) applied to the channel's row.
//!
//! A claim locks the alert's row, then its channel's (always in that
//! order), and is granted only if the alert is still pending and not
//! claimed under a live lease, no earlier event of its alert key is
//! pending, it is not waiting out a backoff, no other node is sending to
//! the channel, and the channel's pacing lets a message go now. The
//! channel then counts the message sent and is held by this node under the
//! lease; the release paces it from when the request left, and applies a
//! retry (a `Retry-After` blocks the channel for every node).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_postgres::Transaction;

use super::pool::{keepable, prepared, Cache, Db};
use super::reads;
use super::writes::now_ms;
use crate::scheduler::{Pace, Rules};
use crate::store::{Claim, ClaimRequest, Fence, Retry, Slots, StoreError, StormDone, StormTurn};

/// Who claims, for how long, by which pacing.
pub struct Claimant {
    pub node: String,
    /// This process's hold on the name ([`super::names`]): claims are
    /// granted and renewed only while it is the name's.
    pub instance: String,
    /// The origin its inserts are read by (node name and instance: one
    /// process's, [`super::writes`]).
    pub origin: String,
    pub lease: Duration,
    pub rules: Rules,
    /// The channel slots it owns ([`super::owned`]).
    pub ownership: super::owned::Ownership,
    /// How the alerts it accepts are filed under their channel's slot
    /// ([`crate::store::Claims::plan_by`]); unset, they are filed under
    /// none, and every node reads them.
    pub channel_of: std::sync::OnceLock<crate::store::ChannelOf>,
    /// Its notifications of arrivals, spaced ([`super::notices`]).
    pub notices: super::notices::Notices,
}

/// Why a node may no longer claim: another process holds its name. Said
/// once (and shown by `/healthz`), not at every claim.
fn name_lost(db: &Db, who: &Claimant) -> StoreError {
    let why = format!(
        "another process took this node's name `{}` (this one could not renew it in time; a name unrenewed for a week is released for any process to take): this node claims nothing more; stop it, or start it with its own --node",
        who.node
    );
    db.outage().fatal(&why);
    StoreError::Io(anyhow::anyhow!(why))
}

pub(super) fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// What a request let go does to its channel's pacing, at `now` on the
/// database's clock: paced from when it left (`left_ago` before now), and
/// a retry's margin and `Retry-After`.
pub(super) fn paced_after(
    pace: &mut Pace<Duration>,
    now: Duration,
    left_ago: Option<Duration>,
    retry: Option<&Retry>,
    rules: &Rules,
) {
    if let Some(ago) = left_ago {
        pace.left(now.saturating_sub(ago), rules);
    }
    if let Some(retry) = retry {
        pace.retry(
            now + retry.wait,
            retry.retry_after,
            retry.rate_limited,
            rules,
        );
    }
}

fn after(from: i64, to: i64) -> Duration {
    Duration::from_millis(to.saturating_sub(from).max(1) as u64)
}

/// How long a node waits before asking again for a channel (or an alert)
/// another node is sending to: at least an interval, and never less than
/// [`OTHERS_TURN`], so that with pacing off the nodes do not spin on each
/// other's claims. The node that holds a channel goes on with it (every
/// node knows every pending alert), so waiting loses nothing.
fn others_turn(rules: &Rules) -> Duration {
    rules.interval.max(OTHERS_TURN)
}

/// The least wait for work another node is doing.
const OTHERS_TURN: Duration = Duration::from_millis(500);

/// How a transaction waits for a row another holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Locked {
    /// Waits for it (a release must be written).
    Wait,
    /// Skips it (`SKIP LOCKED`): another node is claiming it right now.
    Skip,
}

/// A channel's pacing, who holds it and until when, and now on the
/// database's clock.
type ChannelRow = (Pace<Duration>, Option<String>, Option<i64>, i64);

/// The channel's row, created quiet if it is new, and locked; `None` when
/// `locked` is [`Locked::Skip`] and another transaction holds it.
async fn channel_row(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    key: &str,
    rules: &Rules,
    locked: Locked,
) -> Result<Option<ChannelRow>, tokio_postgres::Error> {
    let key = keepable(key);
    let sql = match locked {
        Locked::Wait => concat!(
            "SELECT earliest_ms, blocked_until_ms, margin_ms, held_by, held_until_ms, ",
            now_ms!(),
            " FROM channels WHERE pacing_key = $1 FOR UPDATE"
        ),
        Locked::Skip => concat!(
            "SELECT earliest_ms, blocked_until_ms, margin_ms, held_by, held_until_ms, ",
            now_ms!(),
            " FROM channels WHERE pacing_key = $1 FOR UPDATE SKIP LOCKED"
        ),
    };
    let statement = prepared(cache, tx, sql).await?;
    let row = match tx.query_opt(&statement, &[&key]).await? {
        Some(row) => row,
        None => {
            // A new channel (created quiet, and locked by this insert), or
            // one another transaction holds (then nothing is inserted).
            let sql = concat!(
                "INSERT INTO channels (pacing_key, margin_ms) VALUES ($1, $2)
                 ON CONFLICT (pacing_key) DO NOTHING
                 RETURNING earliest_ms, blocked_until_ms, margin_ms, held_by, held_until_ms, ",
                now_ms!()
            );
            let statement = prepared(cache, tx, sql).await?;
            match tx.query_opt(&statement, &[&key, &ms(rules.margin)]).await? {
                Some(row) => row,
                None => return Ok(None),
            }
        }
    };
    let moment = |v: Option<i64>| v.map(|v| Duration::from_millis(v.max(0) as u64));
    let pace = Pace {
        earliest: moment(row.get(0)),
        blocked_until: moment(row.get(1)),
        margin: Duration::from_millis(row.get::<_, i64>(2).max(0) as u64),
    };
    Ok(Some((pace, row.get(3), row.get(4), row.get(5))))
}

/// Writes the channel's pacing and who holds it.
async fn save_channel(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    key: &str,
    pace: &Pace<Duration>,
    held: Option<(&str, i64)>,
) -> Result<(), tokio_postgres::Error> {
    let sql = "UPDATE channels SET earliest_ms = $2, blocked_until_ms = $3, margin_ms = $4,
             held_by = $5, held_until_ms = $6
         WHERE pacing_key = $1";
    let key = keepable(key);
    let statement = prepared(cache, tx, sql).await?;
    tx.execute(
        &statement,
        &[
            &key,
            &pace.earliest.map(ms),
            &pace.blocked_until.map(ms),
            &ms(pace.margin),
            &held.map(|h| h.0),
            &held.map(|h| h.1),
        ],
    )
    .await?;
    Ok(())
}

/// Asks to send alert `request.id` now: three statements between `BEGIN`
/// and `COMMIT` (the alert with its key's message and whether an earlier
/// event of its key is pending; the channel; both updated).
pub async fn claim(
    db: Arc<Db>,
    who: Arc<Claimant>,
    request: ClaimRequest,
) -> Result<Claim, StoreError> {
    let mut conn = db.get().await?;
    let decided = async {
        let (tx, cache) = conn.transaction().await?;
        let sql = concat!(
            "SELECT ",
            reads::claim_columns!(),
            ", EXISTS (SELECT 1 FROM channel_slots s WHERE s.slot = $2 AND s.owner <> $3
                   AND s.until_ms > ",
            now_ms!(),
            ")
             FROM alerts a LEFT JOIN messages m ON m.alert_key = a.alert_key
             WHERE a.id = $1 FOR UPDATE OF a SKIP LOCKED"
        );
        let statement = prepared(cache, &tx, sql).await?;
        let slot = crate::store::slot_of(&request.channel) as i32;
        let found = tx
            .query_opt(&statement, &[&(request.id as i64), &slot, &who.node])
            .await?;
        let Some(alert) = found else {
            // Gone, or another node is claiming or ending it right now.
            let sql = "SELECT 1 FROM alerts WHERE id = $1 AND status = 'pending'";
            let statement = prepared(cache, &tx, sql).await?;
            return Ok(Ok(
                match tx.query_opt(&statement, &[&(request.id as i64)]).await? {
                    Some(_) => Claim::NotYet {
                        wait: others_turn(&who.rules),
                    },
                    None => Claim::Gone,
                },
            ));
        };
        if alert.get::<_, &str>(0) != "pending" {
            return Ok(Ok(Claim::Gone));
        }
        let now: i64 = alert.get(6);
        let rules = &who.rules;
        // The channel is another node's: its owner sends it.
        if alert.get::<_, bool>(19) {
            return Ok(Ok(Claim::NotYet {
                wait: others_turn(rules),
            }));
        }
        let (claimed_by, lease_until): (Option<String>, Option<i64>) = (alert.get(1), alert.get(2));
        if let (Some(by), Some(until)) = (&claimed_by, lease_until) {
            if *by != who.node && until > now {
                return Ok(Ok(Claim::NotYet {
                    wait: others_turn(rules),
                }));
            }
        }
        let not_before: i64 = alert.get(4);
        if not_before > now {
            return Ok(Ok(Claim::NotYet {
                wait: after(now, not_before),
            }));
        }
        // An earlier event of the alert is pending: it goes first.
        if alert.get::<_, bool>(7) {
            return Ok(Ok(Claim::NotYet {
                wait: others_turn(rules),
            }));
        }
        let Some((mut pace, held_by, held_until, _)) =
            channel_row(&tx, cache, &request.channel, rules, Locked::Skip).await?
        else {
            // Another node is claiming or releasing the channel now.
            return Ok(Ok(Claim::NotYet {
                wait: others_turn(rules),
            }));
        };
        if let (Some(by), Some(until)) = (&held_by, held_until) {
            if *by != who.node && until > now {
                return Ok(Ok(Claim::NotYet {
                    wait: others_turn(rules),
                }));
            }
        }
        let now_d = Duration::from_millis(now.max(0) as u64);
        if let Some(ready) = pace.ready(rules).filter(|r| *r > now_d) {
            return Ok(Ok(Claim::NotYet {
                wait: ready - now_d,
            }));
        }
        pace.sent(now_d, rules);
        let until = now + ms(who.lease);
        // The claim takes the alert's next generation (its fencing token),
        // only while this process holds the node's name.
        let sql = "WITH c AS (
                 UPDATE channels SET earliest_ms = $2, blocked_until_ms = $3, margin_ms = $4,
                     held_by = $5, held_until_ms = $6
                 WHERE pacing_key = $1
                   AND EXISTS (SELECT 1 FROM nodes WHERE id = $5 AND instance = $8))
             UPDATE alerts SET claimed_by = $5, lease_until_ms = $6, channel = $1,
                 claim_gen = claim_gen + 1
             WHERE id = $7 AND EXISTS (SELECT 1 FROM nodes WHERE id = $5 AND instance = $8)
             RETURNING claim_gen";
        let statement = prepared(cache, &tx, sql).await?;
        let channel = keepable(&request.channel);
        let claimed = tx
            .query_opt(
                &statement,
                &[
                    &channel,
                    &pace.earliest.map(ms),
                    &pace.blocked_until.map(ms),
                    &ms(pace.margin),
                    &who.node,
                    &until,
                    &(request.id as i64),
                    &who.instance,
                ],
            )
            .await?;
        let Some(claimed) = claimed else {
            return Ok(Err(name_lost(&db, &who)));
        };
        let fence: i64 = claimed.get(0);
        let key: String = alert.get(5);
        let message = alert
            .get::<_, Option<String>>(9)
            .is_some()
            .then(|| Box::new(reads::message_from(&alert, key, 8)));
        let attempts: i32 = alert.get(3);
        tx.commit().await?;
        Ok(Ok(Claim::Granted {
            message,
            attempts: Some(attempts.max(0) as u32),
            fence: Some(Fence::Claim(fence.max(0) as u64)),
        }))
    }
    .await;
    db.answered(decided)?
}

/// A storm message's turn on its channel (see [`crate::store::Claims::storm_turn`]):
/// the channel's row locked, not held by another node under its lease,
/// its pacing applied to a post; an edit's workspace budget (a row of
/// `channels` of its own, by the update rules) applied and spent; then the
/// channel held by this node under the lease.
pub async fn storm_turn(
    db: Arc<Db>,
    who: Arc<Claimant>,
    turn: StormTurn,
) -> Result<Claim, StoreError> {
    let mut conn = db.get().await?;
    let decided = async {
        let (tx, cache) = conn.transaction().await?;
        let rules = &who.rules;
        let not_yet = |wait| Ok(Claim::NotYet { wait });
        let Some((mut pace, held_by, held_until, now)) =
            channel_row(&tx, cache, &turn.channel, rules, Locked::Skip).await?
        else {
            return not_yet(others_turn(rules));
        };
        if let (Some(by), Some(until)) = (&held_by, held_until) {
            if *by != who.node && until > now {
                return not_yet(others_turn(rules));
            }
        }
        let now_d = Duration::from_millis(now.max(0) as u64);
        match &turn.budget {
            None => {
                if let Some(ready) = pace.ready(rules).filter(|r| *r > now_d) {
                    return not_yet(ready - now_d);
                }
                pace.sent(now_d, rules);
            }
            Some((key, budget)) => {
                let Some((mut spent, _, _, _)) =
                    channel_row(&tx, cache, key, budget, Locked::Wait).await?
                else {
                    return not_yet(others_turn(rules));
                };
                if let Some(ready) = spent.ready(budget).filter(|r| *r > now_d) {
                    return not_yet(ready - now_d);
                }
                spent.sent(now_d, budget);
                save_channel(&tx, cache, key, &spent, None).await?;
            }
        }
        let until = now + ms(who.lease);
        save_channel(&tx, cache, &turn.channel, &pace, Some((&who.node, until))).await?;
        tx.commit().await?;
        Ok(Claim::Granted {
            message: None,
            attempts: None,
            fence: None,
        })
    }
    .await;
    db.answered(decided)
}

/// Ends a storm message's turn: a post paces the channel from when it
/// left; a retry's `Retry-After` blocks the channel (a post) or the
/// workspace's budget (an edit) for every node; the channel is let go.
pub async fn storm_done(
    db: Arc<Db>,
    who: Arc<Claimant>,
    done: StormDone,
) -> Result<(), StoreError> {
    let left_ago = done
        .left
        .map(|at| SystemTime::now().duration_since(at).unwrap_or_default());
    let mut conn = db.get().await?;
    let ended = async {
        let (tx, cache) = conn.transaction().await?;
        let rules = &who.rules;
        let turn = &done.turn;
        let Some((mut pace, held_by, held_until, now)) =
            channel_row(&tx, cache, &turn.channel, rules, Locked::Wait).await?
        else {
            return tx.commit().await;
        };
        let now_d = Duration::from_millis(now.max(0) as u64);
        match &turn.budget {
            None => paced_after(&mut pace, now_d, left_ago, done.retry.as_ref(), rules),
            Some((key, budget)) => {
                if let Some(retry) = done.retry.filter(|r| r.retry_after) {
                    if let Some((mut spent, _, _, _)) =
                        channel_row(&tx, cache, key, budget, Locked::Wait).await?
                    {
                        spent.retry(now_d + retry.wait, true, retry.rate_limited, budget);
                        save_channel(&tx, cache, key, &spent, None).await?;
                    }
                }
            }
        }
        let held = match (held_by.as_deref(), held_until) {
            (Some(by), Some(until)) if by != who.node => Some((by, until)),
            _ => None,
        };
        save_channel(&tx, cache, &turn.channel, &pace, held).await?;
        tx.commit().await
    }
    .await;
    db.answered(ended)
}

/// Renews the leases of every claim `who` holds and of the channel slots
/// it owns, and says it is alive, on the renewals' own connection; only
/// while this process holds the node's name (else nothing is renewed, and
/// the error says why). Then shares the slots out: a node owning more
/// than its share of the live nodes' gives the rest back, one owning
/// fewer takes free (or run-out) ones. The slots it owns now.
pub async fn renew(db: Arc<Db>, who: Arc<Claimant>) -> Result<Slots, StoreError> {
    let began = std::time::Instant::now();
    let mut own = db.own().await?;
    let conn = own.as_mut().expect("opened by Db::own");
    let done = async {
        let (tx, cache) = conn.transaction().await?;
        let lease = ms(who.lease);
        let sql = concat!(
            "UPDATE nodes SET seen_ms = ",
            now_ms!(),
            " WHERE id = $1 AND instance = $2"
        );
        let statement = prepared(cache, &tx, sql).await?;
        if tx.execute(&statement, &[&who.node, &who.instance]).await? == 0 {
            return Ok(Err(name_lost(&db, &who)));
        }
        let sql = concat!(
            "UPDATE alerts SET lease_until_ms = ",
            now_ms!(),
            " + $2 WHERE id IN (SELECT id FROM alerts WHERE claimed_by = $1
                 AND status = 'pending' ORDER BY id FOR UPDATE)"
        );
        let statement = prepared(cache, &tx, sql).await?;
        tx.execute(&statement, &[&who.node, &lease]).await?;
        let sql = concat!(
            "UPDATE channels SET held_until_ms = ",
            now_ms!(),
            " + $2 WHERE held_by = $1 AND EXISTS (SELECT 1 FROM alerts
                 WHERE claimed_by = $1 AND status = 'pending' AND channel = channels.pacing_key)"
        );
        let statement = prepared(cache, &tx, sql).await?;
        tx.execute(&statement, &[&who.node, &lease]).await?;
        let owned = share_slots(&tx, cache, &who, lease).await?;
        tx.commit().await?;
        who.ownership.renewed(owned, began);
        Ok(Ok(owned))
    }
    .await;
    db.answered(done)?
}

/// `who` stops: its slots given back, and it is no longer seen as live
/// (only while this process holds the node's name).
pub async fn leave(db: Arc<Db>, who: Arc<Claimant>) -> Result<(), StoreError> {
    who.ownership.left();
    let mut conn = db.get().await?;
    let done = async {
        let (tx, cache) = conn.transaction().await?;
        let sql = "UPDATE nodes SET seen_ms = 0 WHERE id = $1 AND instance = $2";
        let statement = prepared(cache, &tx, sql).await?;
        if tx.execute(&statement, &[&who.node, &who.instance]).await? == 1 {
            let sql = "UPDATE channel_slots SET owner = NULL, until_ms = NULL WHERE owner = $1";
            let statement = prepared(cache, &tx, sql).await?;
            tx.execute(&statement, &[&who.node]).await?;
        }
        tx.commit().await
    }
    .await;
    db.answered(done)
}

/// This node's share of the slots ([`crate::store::SLOTS`] among the
/// nodes seen within a lease): its own renewed, the ones past its share
/// given back (the highest), free or run-out ones taken up to it. The
/// slots it owns after.
async fn share_slots(
    tx: &Transaction<'_>,
    cache: &mut Cache,
    who: &Claimant,
    lease: i64,
) -> Result<Slots, tokio_postgres::Error> {
    let node = who.node.as_str();
    let sql = concat!(
        "SELECT count(*) FROM nodes WHERE seen_ms > ",
        now_ms!(),
        " - $1"
    );
    let statement = prepared(cache, tx, sql).await?;
    let live: i64 = tx.query_one(&statement, &[&lease]).await?.get(0);
    let slots = i64::from(crate::store::SLOTS);
    let share = (slots + live.max(1) - 1) / live.max(1);
    let sql = concat!(
        "UPDATE channel_slots SET until_ms = ",
        now_ms!(),
        " + $2 WHERE owner = $1 RETURNING slot"
    );
    let statement = prepared(cache, tx, sql).await?;
    let mut owned: Vec<i32> = tx
        .query(&statement, &[&node, &lease])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    owned.sort_unstable();
    let have = owned.len() as i64;
    if have > share {
        let back = owned.split_off(share as usize);
        let sql = "UPDATE channel_slots SET owner = NULL, until_ms = NULL
             WHERE owner = $1 AND slot = ANY($2)";
        let statement = prepared(cache, tx, sql).await?;
        tx.execute(&statement, &[&node, &back]).await?;
        // A channel given back with a request out stays held by this node
        // until the request's release (or the lease): the next owner does
        // not send to it meanwhile, and the request's ending is taken.
        let (busy, sent): (Vec<String>, Vec<i64>) = who
            .ownership
            .busy()
            .into_iter()
            .filter(|(c, _)| back.contains(&(crate::store::slot_of(c) as i32)))
            .map(|(c, id)| (keepable(&c).into_owned(), id as i64))
            .unzip();
        if !busy.is_empty() {
            // The alerts out, claimed by this node under the lease: their
            // endings are taken though the slot is no longer its own.
            // (Renewed with this node's claims, the channel's hold too.)
            let sql = concat!(
                "UPDATE alerts AS a SET claimed_by = $3, channel = b.channel, lease_until_ms = ",
                now_ms!(),
                " + $4 FROM unnest($1::bigint[], $2::text[]) AS b(id, channel)
                 WHERE a.id = b.id AND a.status = 'pending'"
            );
            let statement = prepared(cache, tx, sql).await?;
            tx.execute(&statement, &[&sent, &busy, &node, &lease])
                .await?;
            let sql = concat!(
                "INSERT INTO channels (pacing_key, margin_ms, held_by, held_until_ms)
                 SELECT k, $2, $3, ",
                now_ms!(),
                " + $4 FROM unnest($1::text[]) AS k ORDER BY k
                 ON CONFLICT (pacing_key) DO UPDATE SET held_by = EXCLUDED.held_by,
                     held_until_ms = EXCLUDED.held_until_ms"
            );
            let statement = prepared(cache, tx, sql).await?;
            tx.execute(&statement, &[&busy, &ms(who.rules.margin), &node, &lease])
                .await?;
        }
    } else if have < share {
        let sql = concat!(
            "UPDATE channel_slots SET owner = $1, until_ms = ",
            now_ms!(),
            " + $2 WHERE slot IN (SELECT slot FROM channel_slots
                 WHERE owner IS NULL OR until_ms < ",
            now_ms!(),
            " ORDER BY slot LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING slot"
        );
        let statement = prepared(cache, tx, sql).await?;
        let taken = tx
            .query(&statement, &[&node, &lease, &(share - have)])
            .await?;
        owned.extend(taken.iter().map(|r| r.get::<_, i32>(0)));
    }
    Ok(owned
        .into_iter()
        .filter(|s| (0..crate::store::SLOTS as i32).contains(s))
        .fold(0, |mask, s| mask | (1 << s)))
}
