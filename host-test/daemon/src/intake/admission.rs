//! Which connections serve keeps: those still sending a request head (new
//! ones, and keep-alive ones between requests) wait in a pool of their own,
//! bounded and shed oldest first; a connection whose head is in takes one
//! of the serving slots (`--max-connections`) for as long as its request
//! lasts. Clients that trickle headers therefore never hold the slots of
//! clients that have sent a request, and accepting never waits for them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::lock;

/// The two pools.
pub(super) struct Gate {
    waiting: Mutex<Waiting>,
    serving: Arc<Semaphore>,
}

/// The connections waiting for a whole head, by when they began waiting.
struct Waiting {
    cap: usize,
    next: u64,
    /// The first entry has waited longest.
    queue: BTreeMap<u64, Arc<Conn>>,
}

/// One accepted connection, as the gate sees it.
pub(super) struct Conn {
    /// Its key in the waiting queue while it waits; changed only under the
    /// gate's lock.
    place: Mutex<Option<u64>>,
    shed: Notify,
    was_shed: AtomicBool,
}

impl Conn {
    /// Resolves once the gate has shed this connection: close it.
    pub(super) async fn shed(&self) {
        self.shed.notified().await;
    }

    /// Whether the gate has shed it.
    pub(super) fn was_shed(&self) -> bool {
        self.was_shed.load(Ordering::Relaxed)
    }
}

/// A serving slot, held while one request is handled; dropped, the
/// connection waits for its next head again.
pub(super) struct Serving {
    gate: Arc<Gate>,
    conn: Arc<Conn>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.gate.wait(&self.conn);
    }
}

impl Gate {
    /// At most `max_waiting` connections waiting for a head, and
    /// `max_serving` requests handled at once.
    pub(super) fn new(max_waiting: usize, max_serving: usize) -> Arc<Gate> {
        Arc::new(Gate {
            waiting: Mutex::new(Waiting {
                cap: max_waiting.max(1),
                next: 0,
                queue: BTreeMap::new(),
            }),
            serving: Arc::new(Semaphore::new(max_serving.max(1))),
        })
    }

    /// A connection just accepted: it waits for its head, and the one that
    /// has waited longest is shed if the pool was full.
    pub(super) fn arrive(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            place: Mutex::new(None),
            shed: Notify::new(),
            was_shed: AtomicBool::new(false),
        });
        self.wait(&conn);
        conn
    }

    /// `conn`'s request head is in: waits for a serving slot (still in the
    /// waiting pool meanwhile, so it can be shed like the rest), then
    /// leaves the pool for as long as the returned slot is held.
    pub(super) async fn head_in(self: &Arc<Self>, conn: &Arc<Conn>) -> Serving {
        // The semaphore is never closed: `None` cannot happen, and would
        // only mean serving without a slot.
        let slot = self.serving.clone().acquire_owned().await.ok();
        self.leave(conn);
        Serving {
            gate: self.clone(),
            conn: conn.clone(),
            _slot: slot,
        }
    }

    /// `conn` is closed: it waits for nothing.
    pub(super) fn leave(&self, conn: &Conn) {
        let mut waiting = lock(&self.waiting);
        if let Some(key) = lock(&conn.place).take() {
            waiting.queue.remove(&key);
        }
    }

    /// How many connections wait for a head.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        lock(&self.waiting).queue.len()
    }

    fn wait(&self, conn: &Arc<Conn>) {
        let mut waiting = lock(&self.waiting);
        let mut place = lock(&conn.place);
        if place.is_some() || conn.was_shed() {
            return;
        }
        if waiting.queue.len() >= waiting.cap {
            if let Some((_, oldest)) = waiting.queue.pop_first() {
                // Its head is the likeliest never to come: a client that
                // means it sends its head at once.
                *lock(&oldest.place) = None;
                oldest.was_shed.store(true, Ordering::Relaxed);
                oldest.shed.notify_one();
            }
        }
        let key = waiting.next;
        waiting.next += 1;
        waiting.queue.insert(key, conn.clone());
        *place = Some(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_waiting_pool_sheds_the_connection_that_waited_longest() {
        let gate = Gate::new(2, 8);
        let first = gate.arrive();
        let second = gate.arrive();
        let third = gate.arrive();
        assert!(first.was_shed());
        assert!(!second.was_shed() && !third.was_shed());
        assert_eq!(gate.waiting(), 2);
    }

    #[tokio::test]
    async fn a_connection_whose_head_is_in_is_not_shed_until_it_waits_again() {
        let gate = Gate::new(2, 8);
        let served = gate.arrive();
        let serving = gate.head_in(&served).await;
        let others: Vec<_> = (0..3).map(|_| gate.arrive()).collect();
        assert!(!served.was_shed());
        assert!(others[0].was_shed());
        // Answered, it waits for its next head as the newest.
        drop(serving);
        assert!(others[1].was_shed() && !served.was_shed());
        let late = gate.arrive();
        assert!(others[2].was_shed() && !served.was_shed() && !late.was_shed());
        assert_eq!(gate.waiting(), 2);
        gate.leave(&served);
        assert_eq!(gate.waiting(), 1);
    }

    #[tokio::test]
    async fn a_head_waits_for_a_serving_slot_and_can_be_shed_meanwhile() {
        let gate = Gate::new(1, 1);
        let busy = gate.arrive();
        let slot = gate.head_in(&busy).await;
        let queued = gate.arrive();
        let gate2 = gate.clone();
        let queued2 = queued.clone();
        let waiter = tokio::spawn(async move {
            let _serving = gate2.head_in(&queued2).await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let newcomer = gate.arrive();
        assert!(queued.was_shed() && !newcomer.was_shed());
        tokio::time::timeout(std::time::Duration::from_secs(1), queued.shed())
            .await
            .expect("the shed connection is told");
        drop(slot);
        waiter.await.unwrap();
    }
}
