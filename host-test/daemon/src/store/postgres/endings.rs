//! A delivery's endings and the claims they let go, as the group commit
//! writes them: each alert's ending fenced on its claim, with its key's
//! message kept or forgotten ([`END`]); a retry's wait; each channel's
//! pacing from when its request left.
//!
//! A batch of these alone (a drain's usual group commit) goes out in two
//! round trips ([`commit`]): `BEGIN`, the endings, the retries and the
//! channels' rows read together, then the channels' pacing and `COMMIT`
//! together, each statement planned once a connection (the group commit's
//! session, [`super::committer`]); awaited one at a time they took six. In a
//! batch with other writes the same statements run one at a time
//! ([`end`], [`release`]). PostgreSQL runs what is sent in the order
//! sent, so the locks are taken in the one order every writer takes
//! them: alerts, then messages, then channels. An ending whose claim had
//! passed on is recorded as the duplicate it is ([`Late`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use futures_util::future::{join, join4};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, GenericClient, Row, Statement};

use super::claims::{ms, paced_after, Claimant};
use super::pool::{keepable, prepared, Begun, Cache, Conn};
use super::writes::now_ms;
use super::Staged;
use crate::scheduler::Pace;
use crate::store::record::Record;
use crate::store::{slot_of, AlertMessage, Fence, Finished, Release};

/// The rows of the alerts `$1` (ids), locked in id order as renewals lock
/// them (two transactions never wait on each other in a circle), as
/// `locked` (id, status, claim_gen, claimed_by): a statement fences on
/// these, never on `a.status = 'pending'`, which PostgreSQL matched to the
/// partial index of pending alerts and read all of it (a bitmap AND with
/// the ids: 2 ms a commit at 30,000 pending, its statistics believing
/// pending alerts few).
macro_rules! locked {
    () => {
        "WITH locked AS MATERIALIZED (
             SELECT id, status, claim_gen, claimed_by FROM alerts
             WHERE id = ANY($1) ORDER BY id FOR UPDATE)"
    };
}

/// Keeps the rows of `$rows` (key, workspace, channel_id, ts, level,
/// digest, alert, numbered `n`, one a key) as their keys' messages, in
/// the order numbered. A key's marks stay across its events until it
/// recovers (level OK).
macro_rules! keep_messages {
    ($rows:literal) => {
        concat!(
            "INSERT INTO messages (alert_key, workspace, channel_id, ts, level, digest, alert,
                                   kept_seq)
             SELECT key, workspace, channel_id, ts, level, digest, alert, nextval('kept_seq')
             FROM ",
            $rows,
            " ORDER BY n
             ON CONFLICT (alert_key) DO UPDATE SET workspace = EXCLUDED.workspace,
                 channel_id = EXCLUDED.channel_id, ts = EXCLUDED.ts,
                 level = EXCLUDED.level, digest = EXCLUDED.digest,
                 alert = EXCLUDED.alert, kept_seq = EXCLUDED.kept_seq,
                 acknowledged_by = CASE WHEN EXCLUDED.level = 'OK' THEN NULL
                     ELSE messages.acknowledged_by END,
                 acknowledged_ms = CASE WHEN EXCLUDED.level = 'OK' THEN NULL
                     ELSE messages.acknowledged_ms END,
                 silenced_by = CASE WHEN EXCLUDED.level = 'OK' THEN NULL
                     ELSE messages.silenced_by END,
                 silenced_until_ms = CASE WHEN EXCLUDED.level = 'OK' THEN NULL
                     ELSE messages.silenced_until_ms END,
                 silence_id = CASE WHEN EXCLUDED.level = 'OK' THEN NULL
                     ELSE messages.silence_id END"
        )
    };
}

/// Ends the alerts still pending under their ending's fence ([`locked`]:
/// the claim's generation, or the slot this node owns), and makes each
/// key's message what the last of its endings taken says: kept, or
/// forgotten (it recovered). Answers the ids taken; the others are late.
/// `a.id = ANY($1)` besides the join, and the messages forgotten by an
/// array of their keys: the rows are found by their key, whatever the
/// statistics said when it was planned ([`super::pool::GENERIC`]).
const END: &str = concat!(
    locked!(),
    ", ended AS (
         UPDATE alerts AS a SET status = d.status, detail = d.detail,
             attempts = d.attempts, ended_seq = nextval('ended_seq'),
             ended_ms = ",
    now_ms!(),
    ", claimed_by = NULL, lease_until_ms = NULL
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::bigint[],
                     $6::int[])
              AS d(id, status, detail, attempts, claim, slot),
              locked AS l
         WHERE a.id = ANY($1) AND a.id = d.id AND l.id = d.id
           AND l.status = 'pending'
           AND (d.claim IS NULL OR l.claim_gen = d.claim)
           AND (d.slot IS NULL OR l.claimed_by = $7
                OR EXISTS (SELECT 1 FROM channel_slots s
                    WHERE s.slot = d.slot AND s.owner = $7))
         RETURNING a.id),
     last AS (
         SELECT DISTINCT ON (m.key) m.*
         FROM unnest($8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[],
                     $13::text[], $14::text[], $15::text[], $16::bool[]) WITH ORDINALITY
              AS m(id, key, workspace, channel_id, ts, level, digest, alert, forget, n)
         JOIN ended e ON e.id = m.id
         ORDER BY m.key, m.n DESC),
     kept AS (",
    keep_messages!("last WHERE NOT forget"),
    "),
     forgotten AS (DELETE FROM messages
         WHERE alert_key = ANY (ARRAY(SELECT key FROM last WHERE forget)))
     SELECT id FROM ended"
);

/// Lets the claims of retried alerts go, their wait and requests kept on
/// the alert (for whichever node sends it next), fenced on the locked
/// rows ([`locked`]): a claim that passed to another node is left to it.
const RETRIED: &str = concat!(
    locked!(),
    " UPDATE alerts AS a SET claimed_by = NULL, lease_until_ms = NULL,
         attempts = r.attempts, not_before_ms = ",
    now_ms!(),
    " + r.wait
     FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::int[])
          AS r(id, attempts, wait, claim, slot),
          locked AS l
     WHERE a.id = ANY($1) AND a.id = r.id AND l.id = r.id AND l.status = 'pending'
       AND ((r.claim IS NULL AND r.slot IS NULL AND l.claimed_by = $6)
         OR (l.claimed_by = $6 AND l.claim_gen = r.claim)
         OR (r.slot IS NOT NULL AND l.claimed_by = $6)
         OR EXISTS (SELECT 1 FROM channel_slots s WHERE s.slot = r.slot AND s.owner = $6))"
);

/// The channels' rows, locked in key order (as a claim's is, after its
/// alert's): pacing, holder, the database's now, and whether the slot is
/// this node's. Found by their keys (`= ANY($1)`) whatever the plan's
/// statistics said, as [`PACE`] finds them.
const CHANNELS: &str = concat!(
    "SELECT c.pacing_key, c.earliest_ms, c.blocked_until_ms, c.margin_ms, c.held_by,
         c.held_until_ms, ",
    now_ms!(),
    ", EXISTS (SELECT 1 FROM channel_slots s WHERE s.slot = k.slot AND s.owner = $3)
     FROM unnest($1::text[], $2::int[]) AS k(key, slot)
     JOIN channels c ON c.pacing_key = k.key AND c.pacing_key = ANY($1)
     ORDER BY c.pacing_key FOR UPDATE OF c"
);

/// A channel never sent to before (the owner's claims do not create its
/// row), created quiet.
const NEW_CHANNELS: &str = "INSERT INTO channels (pacing_key, margin_ms)
     SELECT k, $2 FROM unnest($1::text[]) AS k
     ORDER BY k ON CONFLICT (pacing_key) DO NOTHING";

/// The channels' pacing as the releases left it.
const PACE: &str =
    "UPDATE channels AS c SET earliest_ms = u.earliest, blocked_until_ms = u.blocked,
         margin_ms = u.margin, held_by = u.held_by, held_until_ms = u.held_until
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
                 $6::bigint[]) AS u(key, earliest, blocked, margin, held_by, held_until)
     WHERE c.pacing_key = u.key AND c.pacing_key = ANY($1)";

/// A batch of endings and releases alone, in one transaction of two round
/// trips (see the module's documentation): the late endings it recorded,
/// to say once it committed. A statement's error is answered, the
/// transaction rolled back.
pub(super) async fn commit(
    conn: &mut Conn,
    who: &Claimant,
    batch: &[Staged],
) -> Result<Vec<Late>, Error> {
    let mut done = Vec::new();
    let mut releases = Vec::new();
    for staged in batch {
        match staged {
            Staged::Record(Record::Done(d)) => done.push(d),
            Staged::Release(r) => releases.push(r),
            Staged::Record(_) => {}
        }
    }
    let node = &who.node;
    let endings = Endings::of(&done);
    let retried = Retried::of(&releases);
    let channels = ChannelKeys::of(&releases);
    let (client, cache) = conn.parts();
    // Prepared first (once a connection): the requests sent together name
    // them.
    let end = prepared(cache, client, END).await?;
    let retry = prepared(cache, client, RETRIED).await?;
    let read = prepared(cache, client, CHANNELS).await?;
    let pace = prepared(cache, client, PACE).await?;
    // The group commit's session plans each statement once.
    let (tx, begin) = Begun::begin(client, "BEGIN");
    let (began, ended, released, rows) = join4(
        begin,
        async {
            match done.is_empty() {
                true => Ok(Vec::new()),
                false => tx.query(&end, &endings.params(node)).await,
            }
        },
        async {
            match &retried {
                Some(retried) => tx.execute(&retry, &retried.params(node)).await,
                None => Ok(0),
            }
        },
        async {
            match releases.is_empty() {
                true => Ok(Vec::new()),
                false => tx.query(&read, &channels.params(node)).await,
            }
        },
    )
    .await;
    // The first error in the order sent is the cause: the statements after
    // it were refused for the transaction it failed.
    began?;
    let ended = ended?;
    released?;
    let rows = rows?;
    let late = late(client, cache, node, &done, &ended).await?;
    if releases.is_empty() {
        tx.commit().await?;
        return Ok(late);
    }
    let rows = created(client, cache, who, &channels, &read, rows).await?;
    let paced = Paced::of(who, &releases, &rows);
    let (paced, committed) = join(tx.execute(&pace, &paced.params()), tx.commit()).await;
    paced?;
    committed?;
    Ok(late)
}

/// Ends `done` ([`END`]), one statement after another's: the late
/// endings, recorded.
pub(super) async fn end<C: GenericClient + Sync>(
    on: &C,
    cache: &mut Cache,
    node: &str,
    done: &[&Finished],
) -> Result<Vec<Late>, Error> {
    let statement = prepared(cache, on, END).await?;
    let node = node.to_string();
    let ended = on
        .query(&statement, &Endings::of(done).params(&node))
        .await?;
    late(on, cache, &node, done, &ended).await
}

/// Lets the claims of `releases` go, in the order they were made, one
/// statement after another's: a retry's wait and requests kept on the
/// alert, each channel paced from when its request left, a `Retry-After`
/// blocking it, and no longer held by this node. A release whose fence no
/// longer holds (the claim or the channel passed to another node) changes
/// nothing.
pub(super) async fn release<C: GenericClient + Sync>(
    on: &C,
    cache: &mut Cache,
    who: &Claimant,
    releases: &[&Release],
) -> Result<(), Error> {
    if let Some(retried) = Retried::of(releases) {
        let statement = prepared(cache, on, RETRIED).await?;
        on.execute(&statement, &retried.params(&who.node)).await?;
    }
    let channels = ChannelKeys::of(releases);
    let read = prepared(cache, on, CHANNELS).await?;
    let rows = on.query(&read, &channels.params(&who.node)).await?;
    let rows = created(on, cache, who, &channels, &read, rows).await?;
    let statement = prepared(cache, on, PACE).await?;
    on.execute(&statement, &Paced::of(who, releases, &rows).params())
        .await?;
    Ok(())
}

/// Keeps each of `kept` as its key's message (one a key), with one
/// statement.
pub(super) async fn upsert_messages<C: GenericClient + Sync>(
    on: &C,
    cache: &mut Cache,
    kept: &[&AlertMessage],
) -> Result<(), Error> {
    if kept.is_empty() {
        return Ok(());
    }
    let sql = keep_messages!(
        "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[]) WITH ORDINALITY
             AS m(key, workspace, channel_id, ts, level, digest, alert, n)"
    );
    let statement = prepared(cache, on, sql).await?;
    let m = Messages::of(kept.iter().map(|m| (0, Some(*m), None)));
    on.execute(&statement, &m.columns()).await?;
    Ok(())
}

/// The endings of `done` that [`END`] did not take (`ended`, the ids it
/// took): their claim had passed on. A send is recorded as the duplicate
/// it is, and changes no message; an alert another node's storm message
/// showed first (shown twice in one message is no duplicate) is dropped
/// quietly.
async fn late<C: GenericClient + Sync>(
    on: &C,
    cache: &mut Cache,
    node: &str,
    done: &[&Finished],
    ended: &[Row],
) -> Result<Vec<Late>, Error> {
    let taken: HashSet<i64> = ended.iter().map(|r| r.get(0)).collect();
    let mut late = Vec::new();
    for d in done {
        if !taken.contains(&(d.id as i64)) && !d.detail.starts_with(crate::store::SHOWN_IN_STORM) {
            late.push(duplicate(on, cache, node, d).await?);
        }
    }
    Ok(late)
}

/// `rows` ([`CHANNELS`]) with the channels never sent to before created
/// (quiet) and read with the others.
async fn created<C: GenericClient + Sync>(
    on: &C,
    cache: &mut Cache,
    who: &Claimant,
    channels: &ChannelKeys,
    read: &Statement,
    rows: Vec<Row>,
) -> Result<Vec<Row>, Error> {
    if rows.len() >= channels.keys.len() {
        return Ok(rows);
    }
    let statement = prepared(cache, on, NEW_CHANNELS).await?;
    on.execute(&statement, &[&channels.keys, &ms(who.rules.margin)])
        .await?;
    on.query(read, &channels.params(&who.node)).await
}

/// Records a late ending: its claim had passed to another node (its lease
/// ran out while its request was at Slack) or the alert had ended. A
/// delivery is a duplicate in Slack, kept with what the alert's recorded
/// ending says (the kept message's channel and `ts`); a late ending that
/// sent nothing is dropped. Either is said once the transaction commits.
async fn duplicate<C: GenericClient + Sync>(
    on: &C,
    cache: &mut Cache,
    node: &str,
    late: &Finished,
) -> Result<Late, tokio_postgres::Error> {
    if late.status != crate::store::Status::Delivered {
        return Ok(Late {
            id: late.id,
            status: late.status.as_str(),
            detail: String::new(),
            kept: None,
            duplicate: false,
        });
    }
    let sql = concat!(
        "INSERT INTO duplicates (alert_id, node, recorded_ms, detail, kept)
         SELECT $1, $2, ",
        now_ms!(),
        ", $3, (SELECT CASE WHEN status = 'pending'
                    THEN 'pending, claimed by ' || coalesce(claimed_by, 'no node')
                    ELSE status || ': ' || coalesce(detail, '') END
                FROM alerts WHERE id = $1)
         RETURNING kept"
    );
    let statement = prepared(cache, on, sql).await?;
    let detail = keepable(&late.detail);
    let row = on
        .query_one(&statement, &[&(late.id as i64), &node, &detail])
        .await?;
    Ok(Late {
        id: late.id,
        status: late.status.as_str(),
        detail: late.detail.clone(),
        kept: row.get(0),
        duplicate: true,
    })
}

/// An ending that came after its claim had passed to another node: a send
/// recorded as the duplicate it is, or an ending dropped (nothing was
/// sent). Said once its transaction committed.
pub(super) struct Late {
    id: u64,
    status: &'static str,
    /// What the late send showed (its channel and `ts`).
    detail: String,
    /// What the alert's recorded ending says.
    kept: Option<String>,
    pub(super) duplicate: bool,
}

impl Late {
    pub(super) fn say(&self) {
        if !self.duplicate {
            tracing::info!(
                alert = self.id,
                status = self.status,
                "an ending after this node's claim had passed to another node; dropped (nothing was sent)"
            );
            return;
        }
        tracing::warn!(
            alert = self.id,
            late = self.detail,
            kept = self.kept.as_deref().unwrap_or("the alert is no longer kept"),
            "a duplicate in Slack: this node's request was answered after its claim had passed to another node (its lease ran out while the request was out); the alert's message stays the kept one"
        );
    }
}

/// A batch's fences as two columns: the claim generations and the slots.
fn fences(of: impl Iterator<Item = Option<Fence>>) -> (Vec<Option<i64>>, Vec<Option<i32>>) {
    of.map(|fence| match fence {
        Some(Fence::Claim(generation)) => (Some(generation as i64), None),
        Some(Fence::Slot(slot)) => (None, Some(slot as i32)),
        None => (None, None),
    })
    .unzip()
}

/// Endings as [`END`] takes them.
struct Endings<'a> {
    ids: Vec<i64>,
    status: Vec<&'static str>,
    detail: Vec<Cow<'a, str>>,
    attempts: Vec<i32>,
    claims: Vec<Option<i64>>,
    slots: Vec<Option<i32>>,
    /// The messages they keep or forget, in the endings' order.
    messages: Messages<'a>,
}

impl<'a> Endings<'a> {
    fn of(done: &[&'a Finished]) -> Endings<'a> {
        let (claims, slots) = fences(done.iter().map(|d| d.fence));
        Endings {
            ids: done.iter().map(|d| d.id as i64).collect(),
            status: done.iter().map(|d| d.status.as_str()).collect(),
            detail: done.iter().map(|d| keepable(&d.detail)).collect(),
            attempts: done.iter().map(|d| d.attempts as i32).collect(),
            claims,
            slots,
            messages: Messages::of(done.iter().filter_map(|d| match (&d.message, &d.forget) {
                (Some(m), _) => Some((d.id as i64, Some(m), None)),
                (None, Some(key)) => Some((d.id as i64, None, Some(key.as_str()))),
                (None, None) => None,
            })),
        }
    }

    fn params<'s>(&'s self, node: &'s String) -> Vec<&'s (dyn ToSql + Sync)> {
        let m = &self.messages;
        let mut params: Vec<&'s (dyn ToSql + Sync)> = vec![
            &self.ids,
            &self.status,
            &self.detail,
            &self.attempts,
            &self.claims,
            &self.slots,
            node,
            &m.ids,
        ];
        params.extend(m.columns());
        params.push(&m.forget);
        params
    }
}

/// Messages as columns: each the ending's (id) that keeps it, or the key
/// it forgets.
#[derive(Default)]
struct Messages<'a> {
    ids: Vec<i64>,
    keys: Vec<Cow<'a, str>>,
    workspaces: Vec<Option<Cow<'a, str>>>,
    channels: Vec<Option<Cow<'a, str>>>,
    ts: Vec<Option<Cow<'a, str>>>,
    levels: Vec<Option<&'a str>>,
    digests: Vec<Option<&'a str>>,
    alerts: Vec<Option<Cow<'a, str>>>,
    forget: Vec<bool>,
}

impl<'a> Messages<'a> {
    /// The messages' own columns: key, workspace, channel id, `ts`, level,
    /// digest and alert.
    fn columns(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.keys,
            &self.workspaces,
            &self.channels,
            &self.ts,
            &self.levels,
            &self.digests,
            &self.alerts,
        ]
    }

    fn of(
        rows: impl Iterator<Item = (i64, Option<&'a AlertMessage>, Option<&'a str>)>,
    ) -> Messages<'a> {
        let mut m = Messages::default();
        for (id, kept, forgotten) in rows {
            m.ids.push(id);
            m.keys.push(keepable(
                kept.map_or(forgotten.unwrap_or_default(), |k| &k.key),
            ));
            m.workspaces.push(kept.map(|k| keepable(&k.workspace)));
            m.channels.push(kept.map(|k| keepable(&k.channel_id)));
            m.ts.push(kept.map(|k| keepable(&k.ts)));
            m.levels.push(kept.and_then(|k| k.level.as_deref()));
            m.digests.push(kept.and_then(|k| k.digest.as_deref()));
            m.alerts
                .push(kept.and_then(|k| k.alert.as_deref()).map(keepable));
            m.forget.push(kept.is_none());
        }
        m
    }
}

/// Retried alerts' releases as [`RETRIED`] takes them.
struct Retried {
    ids: Vec<i64>,
    attempts: Vec<i32>,
    waits: Vec<i64>,
    claims: Vec<Option<i64>>,
    slots: Vec<Option<i32>>,
}

impl Retried {
    /// None when no release is a retry.
    fn of(releases: &[&Release]) -> Option<Retried> {
        let retried: Vec<&&Release> = releases.iter().filter(|r| r.retry.is_some()).collect();
        if retried.is_empty() {
            return None;
        }
        let (claims, slots) = fences(retried.iter().map(|r| r.fence));
        Some(Retried {
            ids: retried.iter().map(|r| r.id as i64).collect(),
            attempts: retried.iter().map(|r| r.attempts as i32).collect(),
            waits: retried
                .iter()
                .map(|r| r.retry.map_or(0, |retry| ms(retry.wait)))
                .collect(),
            claims,
            slots,
        })
    }

    fn params<'s>(&'s self, node: &'s String) -> [&'s (dyn ToSql + Sync); 6] {
        [
            &self.ids,
            &self.attempts,
            &self.waits,
            &self.claims,
            &self.slots,
            node,
        ]
    }
}

/// The channels released, each once in key order, with their slots, as
/// [`CHANNELS`] takes them.
struct ChannelKeys {
    keys: Vec<String>,
    slots: Vec<i32>,
}

impl ChannelKeys {
    fn of(releases: &[&Release]) -> ChannelKeys {
        let mut keys: Vec<String> = releases
            .iter()
            .map(|r| keepable(&r.channel).into_owned())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let slots = keys.iter().map(|k| slot_of(k) as i32).collect();
        ChannelKeys { keys, slots }
    }

    fn params<'s>(&'s self, node: &'s String) -> [&'s (dyn ToSql + Sync); 3] {
        [&self.keys, &self.slots, node]
    }
}

/// A channel's row as a release reads it: its pacing, the node holding it
/// (another's is left to it), whether its slot is still this node's.
type Channel = (Pace<std::time::Duration>, Option<(String, i64)>, bool);

/// The channels' pacing once `releases` let them go, as [`PACE`] takes it.
struct Paced {
    keys: Vec<String>,
    earliest: Vec<Option<i64>>,
    blocked: Vec<Option<i64>>,
    margins: Vec<i64>,
    held_by: Vec<Option<String>>,
    held_until: Vec<Option<i64>>,
}

impl Paced {
    /// From the channels' `rows` ([`CHANNELS`]), in the order the claims
    /// were made.
    fn of(who: &Claimant, releases: &[&Release], rows: &[Row]) -> Paced {
        let moment = |v: Option<i64>| v.map(|v| std::time::Duration::from_millis(v.max(0) as u64));
        let mut channels: HashMap<String, Channel> = HashMap::new();
        let mut now = 0i64;
        for row in rows {
            now = row.get(6);
            let pace = Pace {
                earliest: moment(row.get(1)),
                blocked_until: moment(row.get(2)),
                margin: std::time::Duration::from_millis(row.get::<_, i64>(3).max(0) as u64),
            };
            // Still held by another node (a claim of this node's ran out
            // and it took the channel): left to it.
            let held = row
                .get::<_, Option<String>>(4)
                .zip(row.get::<_, Option<i64>>(5))
                .filter(|(by, _)| *by != who.node);
            channels.insert(row.get(0), (pace, held, row.get(7)));
        }
        let now = std::time::Duration::from_millis(now.max(0) as u64);
        for r in releases {
            let Some((pace, _, owned)) = channels.get_mut(keepable(&r.channel).as_ref()) else {
                continue;
            };
            // The channel passed to another node: its pacing is the
            // owner's.
            if matches!(r.fence, Some(Fence::Slot(_))) && !*owned {
                continue;
            }
            let ago = r.left.map(|at| {
                std::time::SystemTime::now()
                    .duration_since(at)
                    .unwrap_or_default()
            });
            paced_after(pace, now, ago, r.retry.as_ref(), &who.rules);
        }
        let mut paced = Paced {
            keys: Vec::new(),
            earliest: Vec::new(),
            blocked: Vec::new(),
            margins: Vec::new(),
            held_by: Vec::new(),
            held_until: Vec::new(),
        };
        for (key, (pace, held, _)) in channels {
            paced.keys.push(key);
            paced.earliest.push(pace.earliest.map(ms));
            paced.blocked.push(pace.blocked_until.map(ms));
            paced.margins.push(ms(pace.margin));
            let (by, until) = held.unzip();
            paced.held_by.push(by);
            paced.held_until.push(until);
        }
        paced
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.keys,
            &self.earliest,
            &self.blocked,
            &self.margins,
            &self.held_by,
            &self.held_until,
        ]
    }
}
