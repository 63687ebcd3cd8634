//! When to try an alert again: a transient failure waits for Slack's
//! `Retry-After` exactly when Slack gave one, else backs off exponentially
//! with jitter, up to a cap; anything else is final. Kapacitor, Alertmanager
//! and Grafana ignore `Retry-After` and lose the alert or hammer Slack.

use std::hash::BuildHasher;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::bindings::{AlertEvent, Delivery, HandlerError, TransientFailure};
use crate::runtime::Instance;

/// How to back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the second attempt, when Slack gave no `Retry-After`.
    pub base: Duration,
    /// The longest wait between attempts.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after this long.
    RetryAfter(Duration),
    /// Do not try again: the failure is permanent.
    GiveUp,
}

impl Backoff {
    /// The decision after the `attempt`-th attempt (1-based) failed with `error`.
    pub fn next(&self, error: &HandlerError, attempt: u32) -> Next {
        if !error.is_retryable() {
            return Next::GiveUp;
        }
        match error {
            // Exactly what Slack asked: no request before it elapses.
            HandlerError::Transient(TransientFailure {
                retry_after_seconds: Some(seconds),
                ..
            }) => Next::RetryAfter(Duration::from_secs(u64::from(*seconds))),
            _ => Next::RetryAfter(self.delay(attempt)),
        }
    }

    /// The wait after the `attempt`-th attempt failed without a
    /// `Retry-After`: `base × 2^(attempt-1)`, capped, with "equal jitter":
    /// between half and all of it, so many senders do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let full = exponential.min(self.cap);
        let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
        let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
        full.mul_f64(fraction)
    }
}

/// What became of an alert sent with retries.
#[derive(Debug)]
pub struct Attempts {
    /// The last answer: the delivery, or the error it stopped on.
    pub outcome: Result<Delivery, HandlerError>,
    /// How many requests were made.
    pub attempts: u32,
    /// Why it stopped, when it was not delivered.
    pub stopped: Option<&'static str>,
}

/// Sends `event`, retrying transient failures until `deadline` would be
/// passed; `on_retry` hears about each wait. A trap is returned as the
/// outer error (that instance is stopped).
pub fn send_with_retries(
    plugin: &mut Instance,
    event: &AlertEvent,
    options: &[(String, String)],
    backoff: &Backoff,
    deadline: Instant,
    mut on_retry: impl FnMut(&HandlerError, u32, Duration),
) -> Result<Attempts> {
    let mut attempt = 1;
    loop {
        let error = match plugin.handle_alert(event, options)? {
            Ok(delivery) => {
                return Ok(Attempts {
                    outcome: Ok(delivery),
                    attempts: attempt,
                    stopped: None,
                })
            }
            Err(error) => error,
        };
        let wait = match backoff.next(&error, attempt) {
            Next::GiveUp => {
                let stopped = Some("the failure is permanent");
                return Ok(Attempts {
                    outcome: Err(error),
                    attempts: attempt,
                    stopped,
                });
            }
            Next::RetryAfter(wait) => wait,
        };
        if Instant::now() + wait > deadline {
            let stopped = Some("the next attempt would be past the retry deadline");
            return Ok(Attempts {
                outcome: Err(error),
                attempts: attempt,
                stopped,
            });
        }
        on_retry(&error, attempt, wait);
        sleep(wait);
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::SlackRejection;

    fn transient(retry_after: Option<u32>) -> HandlerError {
        HandlerError::Transient(TransientFailure {
            status: Some(429),
            code: "rate_limited".into(),
            retry_after_seconds: retry_after,
            message: String::new(),
        })
    }

    #[test]
    fn retry_after_is_honoured_exactly() {
        let b = Backoff::default();
        assert_eq!(
            b.next(&transient(Some(7)), 1),
            Next::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            b.next(&transient(Some(7)), 9),
            Next::RetryAfter(Duration::from_secs(7))
        );
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        for attempt in 1..=8 {
            let Next::RetryAfter(wait) = b.next(&transient(None), attempt) else {
                panic!()
            };
            let full =
                Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?} not within {full:?}"
            );
        }
        let Next::RetryAfter(wait) = b.next(&HandlerError::Transport("reset".into()), 1) else {
            panic!()
        };
        assert!(wait <= Duration::from_millis(100));
    }

    #[test]
    fn permanent_failures_are_never_retried() {
        let b = Backoff::default();
        let rejected = HandlerError::SlackRejected(SlackRejection {
            status: 200,
            code: "fatal_error".into(),
            message: String::new(),
        });
        for e in [
            rejected,
            HandlerError::Tls("untrusted".into()),
            HandlerError::RequestDenied("x".into()),
            HandlerError::WorkspaceNotFound("x".into()),
            HandlerError::InvalidConfig("x".into()),
        ] {
            assert_eq!(b.next(&e, 1), Next::GiveUp, "{e:?}");
        }
    }
}
