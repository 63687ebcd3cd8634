//! One live process per node name. Claims held under a name count as that
//! name's own, so two processes sharing one would both send. A process
//! holds its name by an instance (random per process) in the `nodes` row,
//! and shows it is alive by renewing `seen_ms` with its leases (a third of
//! a lease apart). At start:
//!
//! - no row, or one not renewed for a lease: the name is taken;
//! - a row renewed within a lease: the holder may be alive, or may have
//!   just died (a restart after a crash keeps its name). The start waits
//!   up to a lease: the holder renewing meanwhile refuses the start,
//!   naming the name and where the holder runs; silence takes the name.

use std::sync::Arc;
use std::time::Duration;

use super::pool::Db;
use super::writes::now_ms;

/// How often a start looks whether the holder of its name renewed it.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Takes `node` for this process (`instance`, running at `address`), or
/// says why not: another live process holds it (named with its address),
/// or the database failed.
pub async fn take(
    db: &Arc<Db>,
    node: &str,
    instance: &str,
    address: &str,
    lease: Duration,
) -> Result<(), String> {
    let lease_ms = lease.as_millis().min(i64::MAX as u128) as i64;
    // The holder's seen_ms when first looked at, to tell a renewal.
    let mut first_seen: Option<i64> = None;
    let deadline = tokio::time::Instant::now() + lease + lease / 3;
    loop {
        let conn = db.get().await.map_err(|e| e.to_string())?;
        let sql = concat!(
            "INSERT INTO nodes (id, started_ms, seen_ms, instance, address)
             VALUES ($1, ",
            now_ms!(),
            ", ",
            now_ms!(),
            ", $2, $3)
             ON CONFLICT (id) DO UPDATE SET started_ms = EXCLUDED.started_ms,
                 seen_ms = EXCLUDED.seen_ms, instance = EXCLUDED.instance,
                 address = EXCLUDED.address
             WHERE nodes.seen_ms < ",
            now_ms!(),
            " - $4 OR nodes.instance = $2
             RETURNING id"
        );
        let taken = conn
            .client
            .query_opt(sql, &[&node, &instance, &address, &lease_ms])
            .await
            .map_err(|e| db.failed(e).to_string())?;
        if taken.is_some() {
            return Ok(());
        }
        let sql = concat!(
            "SELECT seen_ms, coalesce(address, 'an address not recorded (a version before 3)'), ",
            now_ms!(),
            " FROM nodes WHERE id = $1"
        );
        let Some(holder) = conn
            .client
            .query_opt(sql, &[&node])
            .await
            .map_err(|e| db.failed(e).to_string())?
        else {
            // Let go between the two statements: try again.
            continue;
        };
        drop(conn);
        let (seen, address, now): (i64, String, i64) =
            (holder.get(0), holder.get(1), holder.get(2));
        let renewed = first_seen.is_some_and(|first| seen != first);
        if renewed || tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the node name `{node}` is held by a live slack-alertd ({address}; renewed {} ms ago): give this node a name of its own with --node, or stop that one (a name is freed {} ms after its node stops)",
                (now - seen).max(0),
                lease_ms
            ));
        }
        first_seen.get_or_insert(seen);
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// A token no other process has: 64 bits from the OS's randomness (std's
/// hasher keys), with the process id and the time, as hex.
pub fn random_part() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", hasher.finish())
}
