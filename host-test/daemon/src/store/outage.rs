//! What the log says while the store cannot be used: one line when an
//! outage starts, one every [`REMIND_EVERY`] while it lasts (with how many
//! operations failed meanwhile), one when it ends. Every part of serve that
//! meets the outage (intake's commits, claims, renewals, releases, endings)
//! reports it here instead of logging each failure: a 20-second outage of
//! a busy node is three lines, not two hundred.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock;

/// How often a lasting outage is said again.
pub const REMIND_EVERY: Duration = Duration::from_secs(30);

/// The store's outages, as logged.
#[derive(Debug, Default)]
pub struct Outage {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the outage began, while there is one.
    since: Option<Instant>,
    /// Why, as last said.
    why: String,
    /// When it was last said.
    said: Option<Instant>,
    /// Operations that failed since it was last said.
    failures: u64,
    /// And since it began.
    total: u64,
    /// What makes the store unusable for good (this node's name taken by
    /// another process): no answer ends it.
    fatal: Option<String>,
}

/// What [`Outage::failing`] logged, for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// The outage began: said.
    Began,
    /// It lasts, and it was time to say so again.
    Reminded,
    /// Counted, not said.
    Counted,
}

impl Outage {
    /// An operation failed because the store cannot be used (`why`, never
    /// a secret): the outage begins, or is counted, or said again.
    pub fn failing(&self, why: &str) -> Said {
        self.failing_at(why, Instant::now())
    }

    fn failing_at(&self, why: &str, now: Instant) -> Said {
        let mut state = lock(&self.state);
        state.failures += 1;
        state.total += 1;
        let Some(since) = state.since else {
            state.since = Some(now);
            state.said = Some(now);
            state.why = why.to_string();
            state.failures = 0;
            tracing::error!(
                "the store is unavailable; alerts are refused with 503 and deliveries wait until it answers (said again every {} s while it lasts): {why}",
                REMIND_EVERY.as_secs()
            );
            return Said::Began;
        };
        if state
            .said
            .is_none_or(|at| now.duration_since(at) >= REMIND_EVERY)
        {
            let failed = std::mem::take(&mut state.failures);
            state.said = Some(now);
            state.why = why.to_string();
            tracing::error!(
                for_s = now.duration_since(since).as_secs(),
                failed,
                "the store is still unavailable: {why}"
            );
            return Said::Reminded;
        }
        Said::Counted
    }

    /// The store can no longer be used by this node, whatever it answers
    /// (`why`): said once; [`Outage::ongoing`] from now on, so failures
    /// are not logged one by one.
    pub fn fatal(&self, why: &str) {
        let mut state = lock(&self.state);
        if state.fatal.is_none() {
            tracing::error!("{why}");
            state.fatal = Some(why.to_string());
        }
    }

    /// Why the store can no longer be used, if it cannot.
    pub fn fatal_reason(&self) -> Option<String> {
        lock(&self.state).fatal.clone()
    }

    /// An operation succeeded: an outage, if there was one, is over.
    pub fn answered(&self) {
        let mut state = lock(&self.state);
        if let Some(since) = state.since.take() {
            tracing::info!(
                after_ms = since.elapsed().as_millis() as u64,
                failed = state.total,
                "the store answers again"
            );
            let fatal = state.fatal.take();
            *state = State {
                fatal,
                ..State::default()
            };
        }
    }

    /// Whether an outage is going on (or the store is lost for good).
    pub fn ongoing(&self) -> bool {
        let state = lock(&self.state);
        state.since.is_some() || state.fatal.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_said_when_it_starts_every_thirty_seconds_and_when_it_ends() {
        let outage = Outage::default();
        let start = Instant::now();
        assert_eq!(outage.failing_at("down", start), Said::Began);
        let mut said = 0;
        // Ten failures a second for 65 s: two reminders.
        for tenth in 1..650 {
            let at = start + Duration::from_millis(tenth * 100);
            if outage.failing_at("down", at) == Said::Reminded {
                said += 1;
            }
        }
        assert_eq!(said, 2);
        assert!(outage.ongoing());
        outage.answered();
        assert!(!outage.ongoing());
        assert_eq!(outage.failing_at("down again", start), Said::Began);
    }
}
