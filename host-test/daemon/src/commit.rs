//! Group commit: one thread makes the store's writes durable for everyone
//! waiting on them, and the one way serve writes to its store.
//!
//! [`GroupCommit::write`] runs a write under the store's lock and registers
//! its writer before the lock is let go, so the committer knows every
//! writer of every write it syncs. The committer appends everything staged
//! meanwhile and fsyncs once for all of them, outside the lock, then
//! answers each: alone, a write costs one fsync; under load one fsync
//! covers a batch. A write that the sync could not make durable (a full
//! disk) is dropped and its writer gets the error: nobody is answered
//! before their write is on disk, and nothing answered with an error takes
//! effect.
//!
//! Intake awaits the answer without holding a thread (a `202` is sent only
//! then), and so does a delivery recording its ending.
//!
//! Under load the committer waits a moment for the writers it just
//! answered ([`LINGER`], as PostgreSQL's `commit_delay`): a writer that
//! got its answer usually writes again at once (an intake connection's
//! next alert), and one sync for all of them costs less than one each
//! (on PostgreSQL a commit costs its server about 0.3 ms whatever its
//! size). Alone, a write is synced at once.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::lock;
use crate::store::{Store, SyncStart};

/// How long the committer waits, at most, for as many writers as its
/// last sync answered before it syncs fewer.
pub const LINGER: Duration = Duration::from_millis(1);

/// The handle; dropping it answers what is queued and stops the committer.
pub struct GroupCommit {
    inner: Arc<Inner>,
    committer: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    store: Arc<Mutex<dyn Store>>,
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Writers waiting, by the number of their last write.
    waiting: Vec<(u64, oneshot::Sender<io::Result<()>>)>,
    /// How many writers the last sync answered: the next waits a moment
    /// for as many.
    last_batch: usize,
    /// fsyncs made, and syncs that failed, for tests and metrics.
    syncs: u64,
    failures: u64,
    stop: bool,
}

/// A write's durability, to wait for.
pub struct Durable(Option<oneshot::Receiver<io::Result<()>>>);

impl Durable {
    /// Resolves once the write is on disk, or with the error that kept it
    /// off (then it did not take effect, and must not be acknowledged).
    pub async fn wait(self) -> io::Result<()> {
        match self.0 {
            None => Ok(()),
            Some(answer) => answer.await.unwrap_or_else(|_| Err(stopped())),
        }
    }

    /// [`Durable::wait`] for a thread outside the async runtime.
    pub fn wait_blocking(self) -> io::Result<()> {
        match self.0 {
            None => Ok(()),
            Some(answer) => answer.blocking_recv().unwrap_or_else(|_| Err(stopped())),
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the committer stopped")
}

impl GroupCommit {
    /// Starts the committer for `store`; `synced` runs each time writes
    /// took effect, before their writers are answered (serve wakes its
    /// planner there).
    pub fn start(
        store: Arc<Mutex<dyn Store>>,
        synced: impl Fn() + Send + 'static,
    ) -> io::Result<GroupCommit> {
        let inner = Arc::new(Inner {
            store,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let shared = inner.clone();
        let committer = std::thread::Builder::new()
            .name("commit".into())
            .spawn(move || shared.run(synced))?;
        Ok(GroupCommit {
            inner,
            committer: Some(committer),
        })
    }

    /// Runs `read` on the store under its lock, which it never hands out:
    /// a shared reference, so nothing but [`GroupCommit::write`] writes.
    /// What needs a round trip comes back as a job, awaited after the
    /// lock is let go.
    pub fn read<T>(&self, read: impl FnOnce(&dyn Store) -> T) -> T {
        read(&*lock(&self.inner.store))
    }

    /// The pending alerts this node has not been given yet
    /// ([`crate::store::Claims::arrivals`]: it moves the store's cursor).
    pub fn arrivals(&self) -> Vec<crate::store::Pending> {
        lock(&self.inner.store).arrivals()
    }

    /// Has the store call `wake` when other nodes' alerts arrive.
    pub fn watch(&self, wake: crate::store::Wake) {
        lock(&self.inner.store).watch(wake)
    }

    /// Runs `write` on the store under its lock, all or nothing (an error
    /// drops whatever it wrote), and returns its value with what to wait on
    /// for its writes to be durable.
    pub fn write<T, E>(
        &self,
        write: impl FnOnce(&mut dyn Store) -> Result<T, E>,
    ) -> Result<(T, Durable), E> {
        let mut store = lock(&self.inner.store);
        let before = store.written();
        let value = match write(&mut *store) {
            Ok(value) => value,
            Err(e) => {
                store.rollback(before);
                return Err(e);
            }
        };
        let after = store.written();
        if after == before {
            return Ok((value, Durable(None)));
        }
        // Registered before the store's lock is let go: the committer
        // cannot sync this write without knowing who waits for it.
        let (tx, rx) = oneshot::channel();
        let mut queue = self.inner.lock();
        queue.waiting.push((after, tx));
        // The first writer wakes the committer, and the one it lingers for
        // last (every wake-up is a context switch).
        if queue.waiting.len() == 1 || queue.waiting.len() == queue.last_batch {
            self.inner.wake.notify_one();
        }
        Ok((value, Durable(Some(rx))))
    }

    /// fsyncs made so far.
    pub fn syncs(&self) -> u64 {
        self.inner.lock().syncs
    }

    /// Syncs that failed (their writes dropped) so far.
    pub fn failures(&self) -> u64 {
        self.inner.lock().failures
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.inner.lock().stop = true;
        self.inner.wake.notify_one();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    fn run(&self, synced: impl Fn()) {
        // Failing writes are an outage of the store, said as one.
        let outage = lock(&self.store).outage();
        loop {
            {
                let mut queue = self.lock();
                while queue.waiting.is_empty() && !queue.stop {
                    queue = self.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
                if queue.waiting.is_empty() {
                    return;
                }
                // The writers the last sync answered are likely writing
                // again: one sync for them all.
                let deadline = Instant::now() + LINGER;
                while queue.waiting.len() < queue.last_batch && !queue.stop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    queue = self
                        .wake
                        .wait_timeout(queue, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            // Every write staged so far has its writer registered.
            let start = lock(&self.store).begin_sync();
            let (through, result) = match start {
                SyncStart::Done { through } => (through, Ok(())),
                SyncStart::Failed { through, error } => (through, Err(error)),
                SyncStart::Started { through, sync } => {
                    self.lock().syncs += 1;
                    let outcome = sync();
                    (through, lock(&self.store).end_sync(outcome))
                }
            };
            match &result {
                Ok(()) => {
                    outage.answered();
                    synced();
                }
                Err(e) => {
                    self.lock().failures += 1;
                    let why = lock(&self.store).trouble().unwrap_or_else(|| e.to_string());
                    outage.failing(&why);
                }
            }
            let answered: Vec<_> = {
                let mut queue = self.lock();
                let (done, left): (Vec<_>, Vec<_>) = std::mem::take(&mut queue.waiting)
                    .into_iter()
                    .partition(|(record, _)| *record <= through);
                queue.waiting = left;
                queue.last_batch = done.len();
                done
            };
            for (_, reply) in answered {
                let _ = reply.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Spool;

    /// The spool at `dir` opened again once the test let it go. Its lock
    /// can outlive the drop by a moment: another test of this binary that
    /// starts a process (PostgreSQL's) shares every open file with the
    /// child between its fork and its exec, this lock's too.
    fn reopen(dir: &std::path::Path, limit: u64) -> Spool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Spool::open(dir, limit) {
                Ok(spool) => return spool,
                Err(e)
                    if e.to_string().contains("in use") && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("{e:#}"),
            }
        }
    }

    fn started(dir: &std::path::Path, limit: u64) -> (Arc<Mutex<dyn Store>>, GroupCommit) {
        let spool: Arc<Mutex<dyn Store>> = Arc::new(Mutex::new(Spool::open(dir, limit).unwrap()));
        let commit = GroupCommit::start(spool.clone(), || {}).unwrap();
        (spool, commit)
    }

    #[test]
    fn concurrent_writers_share_fsyncs_and_every_answered_record_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, commit) = started(dir.path(), 64 << 20);
        let commit = Arc::new(commit);
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let commit = commit.clone();
                std::thread::spawn(move || {
                    for n in 0..50 {
                        let alert = format!("{{\"id\":\"{t}-{n}\"}}");
                        let (_, durable) = commit.write(|s| s.accept(&alert, vec![])).unwrap();
                        durable.wait_blocking().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let syncs = commit.syncs();
        assert!((1..800).contains(&syncs), "{syncs} fsyncs for 800 alerts");
        drop(commit);
        drop(spool);
        let reopened = reopen(dir.path(), 64 << 20);
        assert_eq!(reopened.pending().len(), 800);
    }

    #[tokio::test]
    async fn intake_awaits_its_record_without_a_thread() {
        let dir = tempfile::tempdir().unwrap();
        let spool: Arc<Mutex<dyn Store>> =
            Arc::new(Mutex::new(Spool::open(dir.path(), 1 << 20).unwrap()));
        let woken = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = woken.clone();
        let commit = GroupCommit::start(spool.clone(), move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .unwrap();
        let (_, durable) = commit
            .write(|s| s.accept("{\"id\":\"a\"}", vec![]))
            .unwrap();
        // Not shown before it is durable.
        durable.wait().await.unwrap();
        assert_eq!(commit.read(|store| store.pending_count()), 1);
        assert_eq!(commit.syncs(), 1);
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(commit);
        drop(spool);
        assert_eq!(reopen(dir.path(), 1 << 20).pending().len(), 1);
    }

    #[test]
    fn a_write_that_fails_part_way_takes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, commit) = started(dir.path(), 64 << 20);
        let e = commit
            .write(|s| {
                s.accept("{\"id\":\"a\"}", vec![])?;
                s.resend(&[crate::store::FailedAlert {
                    id: 12345,
                    at: 0,
                    alert: "{}".into(),
                    options: vec![],
                    detail: String::new(),
                }])
            })
            .err()
            .expect("refused");
        assert!(e.to_string().contains("12345"), "{e}");
        assert_eq!(spool.lock().unwrap().written(), 0);
        drop(commit);
        drop(spool);
        assert!(reopen(dir.path(), 1 << 20).pending().is_empty());
    }

    /// The disk-full run in miniature: 16 writers, a disk whose appends and
    /// fsyncs fail now and then. Every write answered `Ok` is on disk after
    /// a reopen; none answered with an error is.
    #[test]
    fn every_acknowledged_write_survives_failing_appends_and_fsyncs_and_no_refused_one_does() {
        use crate::spool::{DiskOp, Settings};
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let ops = Arc::new(AtomicU64::new(0));
        let counter = ops.clone();
        let settings = Settings {
            faults: Some(Arc::new(move |op| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let fails = match op {
                    DiskOp::Append { .. } => n % 5 == 1,
                    DiskOp::Sync => n % 7 == 3,
                    _ => false,
                };
                fails.then(|| io::Error::from_raw_os_error(28))
            })),
            ..Settings::new(64 << 20)
        };
        let spool: Arc<Mutex<dyn Store>> =
            Arc::new(Mutex::new(Spool::open_with(dir.path(), settings).unwrap()));
        let commit = Arc::new(GroupCommit::start(spool.clone(), || {}).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let commit = commit.clone();
                std::thread::spawn(move || {
                    let (mut kept, mut refused) = (vec![], vec![]);
                    for n in 0..40 {
                        let alert = format!("{{\"id\":\"{t}-{n}\"}}");
                        let (ticket, durable) = commit.write(|s| s.accept(&alert, vec![])).unwrap();
                        match durable.wait_blocking() {
                            Ok(()) => kept.push(ticket.id),
                            Err(_) => refused.push(ticket.id),
                        }
                    }
                    (kept, refused)
                })
            })
            .collect();
        let (mut kept, mut refused) = (vec![], vec![]);
        for t in threads {
            let (k, r) = t.join().unwrap();
            kept.extend(k);
            refused.extend(r);
        }
        assert!(
            commit.failures() > 0 && !refused.is_empty(),
            "faults were hit"
        );
        assert!(!kept.is_empty());
        // What serve would deliver now: exactly the acknowledged.
        let mut pending = commit.arrivals().iter().map(|p| p.id).collect::<Vec<_>>();
        kept.sort_unstable();
        pending.sort_unstable();
        assert_eq!(pending, kept);
        drop(commit);
        drop(spool);
        let reopened = reopen(dir.path(), 64 << 20);
        assert_eq!(reopened.pending_ids(), kept, "after a restart too");
    }
}
