//! Group commit: one thread makes the spool's records durable for everyone
//! waiting on them. A writer appends its record without waiting for the
//! disk ([`Spool::accept_unsynced`], [`Spool::finish_unsynced`]), then asks
//! for its ticket; the committer takes every request that came in
//! meanwhile, makes one fsync that covers them all and answers each. Alone,
//! a record costs one fsync as before; under load one fsync covers a batch,
//! and nobody is answered before their record is on disk.
//!
//! Intake awaits the answer without holding a thread (a `202` is sent only
//! then); workers, on threads of their own, block on it.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::spool::Ticket;
use crate::store::Store;

/// The handle; dropping it answers what is queued and stops the committer.
pub struct GroupCommit {
    inner: Arc<Inner>,
    committer: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(u64, oneshot::Sender<io::Result<()>>)>,
    /// fsyncs made, for tests and metrics.
    syncs: u64,
    stop: bool,
}

impl GroupCommit {
    /// Starts the committer for `spool`; `synced` runs each time a batch is
    /// on disk, before its writers are answered (serve wakes its planner
    /// there).
    pub fn start(
        spool: Arc<Mutex<dyn Store>>,
        synced: impl Fn() + Send + 'static,
    ) -> io::Result<GroupCommit> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let shared = inner.clone();
        let committer = std::thread::Builder::new()
            .name("commit".into())
            .spawn(move || shared.run(&spool, synced))?;
        Ok(GroupCommit {
            inner,
            committer: Some(committer),
        })
    }

    /// Resolves once `ticket`'s record is on disk, or with the error that
    /// kept it off (then the alert must not be acknowledged).
    pub fn durable(&self, ticket: Ticket) -> impl std::future::Future<Output = io::Result<()>> {
        let answer = self.request(ticket);
        async move {
            answer
                .await
                .unwrap_or_else(|_| Err(io::Error::other("the committer stopped")))
        }
    }

    /// [`GroupCommit::durable`] for a thread outside the async runtime.
    pub fn wait(&self, ticket: Ticket) -> io::Result<()> {
        self.request(ticket)
            .blocking_recv()
            .unwrap_or_else(|_| Err(io::Error::other("the committer stopped")))
    }

    /// fsyncs made so far.
    pub fn syncs(&self) -> u64 {
        self.inner.lock().syncs
    }

    fn request(&self, ticket: Ticket) -> oneshot::Receiver<io::Result<()>> {
        let (tx, rx) = oneshot::channel();
        let mut queue = self.inner.lock();
        queue.waiting.push((ticket.record(), tx));
        // Only the first request of a batch has to wake the committer.
        if queue.waiting.len() == 1 {
            self.inner.wake.notify_one();
        }
        rx
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
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self, spool: &Mutex<dyn Store>, synced: impl Fn()) {
        // Records known to be on disk.
        let mut on_disk = 0;
        loop {
            let batch = {
                let mut queue = self.lock();
                while queue.waiting.is_empty() && !queue.stop {
                    queue = self.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
                }
                if queue.waiting.is_empty() {
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let needed = batch.iter().map(|(record, _)| *record).max().unwrap_or(0);
            let result = if needed <= on_disk {
                Ok(())
            } else {
                // Every record in the batch was written before it was asked
                // for, so one fsync of everything written so far covers them.
                let point = spool.lock().unwrap_or_else(|e| e.into_inner()).sync_point();
                let outcome = point.and_then(|point| match point.sync {
                    Some(sync) => {
                        self.lock().syncs += 1;
                        sync().map(|()| point.through)
                    }
                    None => Ok(point.through),
                });
                outcome.map(|upto| on_disk = on_disk.max(upto))
            };
            if result.is_ok() {
                synced();
            }
            for (_, reply) in batch {
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

    #[test]
    fn concurrent_writers_share_fsyncs_and_every_answered_record_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Mutex::new(Spool::open(dir.path(), 64 << 20).unwrap()));
        let commit = Arc::new(GroupCommit::start(spool.clone(), || {}).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (spool, commit) = (spool.clone(), commit.clone());
                std::thread::spawn(move || {
                    for n in 0..50 {
                        let alert = format!("{{\"id\":\"{t}-{n}\"}}");
                        let ticket = spool
                            .lock()
                            .unwrap()
                            .accept_unsynced(&alert, vec![])
                            .unwrap();
                        commit.wait(ticket).unwrap();
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
        let reopened = Spool::open(dir.path(), 64 << 20).unwrap();
        assert_eq!(reopened.pending().len(), 800);
    }

    #[tokio::test]
    async fn intake_awaits_its_record_without_a_thread() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Mutex::new(Spool::open(dir.path(), 1 << 20).unwrap()));
        let woken = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = woken.clone();
        let commit = GroupCommit::start(spool.clone(), move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .unwrap();
        let ticket = spool
            .lock()
            .unwrap()
            .accept_unsynced("{\"id\":\"a\"}", vec![])
            .unwrap();
        commit.durable(ticket).await.unwrap();
        assert_eq!(commit.syncs(), 1);
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(commit);
        drop(spool);
        assert_eq!(Spool::open(dir.path(), 1 << 20).unwrap().pending().len(), 1);
    }
}
