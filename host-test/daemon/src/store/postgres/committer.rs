//! The group commit's own connection, driven on the commit thread.
//!
//! A group commit used to be a task on the store's runtime, awaited from
//! the commit thread: handing it over woke the store's thread, and its end
//! woke the commit thread again, two wake-ups a commit besides the
//! database's. With several nodes on one machine a node's commits are as
//! many as its share of the writers is small (16 intake connections over
//! three nodes: 5 alerts a commit, against 16 on one node), and on a
//! virtual machine each wake-up of an idle core is dear. Here the commit
//! thread drives a runtime of its own while it commits, with its own
//! connection on it: the commit's statements go out, and their answer is
//! read, on the thread that waits for it.
//!
//! The connection's session plans each statement once
//! ([`COMMITS`], as [`super::pool::GENERIC`] does for a transaction): every
//! statement a group commit runs reaches its rows through the keys it is
//! given. So intake's insert is a statement alone, a transaction of its own
//! without `BEGIN` or `COMMIT`: one request and one answer.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;

use super::pool::{Conn, Db};
use crate::lock;
use crate::store::StoreError;

/// The session of the group commit's connection: each statement planned
/// once (see [`super::pool::GENERIC`] for why every statement of a group
/// commit may be).
const COMMITS: &str = "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off";

/// The commit thread's runtime and connection.
pub struct Committer {
    /// Driven only while a commit runs ([`Committer::block_on`]): between
    /// commits nothing is sent on the connection, so nothing need be read.
    runtime: Option<tokio::runtime::Runtime>,
    conn: Mutex<Option<Conn>>,
}

impl Committer {
    pub fn new() -> std::io::Result<Arc<Committer>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Arc::new(Committer {
            runtime: Some(runtime),
            conn: Mutex::new(None),
        }))
    }

    /// Runs `work` to its end on this thread (the commit thread), its
    /// connection's requests and answers with it. A panic in it is an
    /// error, as a task's was.
    pub fn block_on<T>(&self, work: impl Future<Output = Result<T, String>>) -> Result<T, String> {
        let runtime = self.runtime.as_ref().expect("kept until dropped");
        runtime
            .block_on(std::panic::AssertUnwindSafe(work).catch_unwind())
            .unwrap_or_else(|_| Err("a group commit panicked".into()))
    }

    /// The connection (a new one, its session set, when there is none or
    /// it broke), inside [`Committer::block_on`]; it is kept for the next
    /// commit when the guard drops, unless it broke.
    pub async fn conn(&self, db: &Arc<Db>) -> Result<Held<'_>, StoreError> {
        let kept = lock(&self.conn).take();
        if kept.is_some() {
            // The connection sat idle since the last commit, its task not
            // driven: a server that closed it meanwhile (a restart, a
            // failover, an idle timeout) is seen once the task reads the
            // socket. Two turns of this runtime let it: the first polls the
            // socket, the second runs the task it woke (one was not enough:
            // `a_group_commit_after_its_connection_was_closed_while_idle_goes_through`).
            for _ in 0..2 {
                tokio::task::yield_now().await;
            }
        }
        let conn = match kept {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => {
                let conn = db.connect_here().await?;
                conn.client
                    .batch_execute(COMMITS)
                    .await
                    .map_err(|e| db.failed(e))?;
                conn
            }
        };
        Ok(Held {
            conn: Some(conn),
            home: self,
        })
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Dropped wherever its last user was, maybe inside a runtime.
        lock(&self.conn).take();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The group commit's connection while a commit uses it.
pub struct Held<'a> {
    conn: Option<Conn>,
    home: &'a Committer,
}

impl std::ops::Deref for Held<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("held until dropped")
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.client.is_closed() {
                *lock(&self.home.conn) = Some(conn);
            }
        }
    }
}
