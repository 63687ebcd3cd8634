//! What `serve` sends next, when, and to whom: the delivery engine's core.
//! No I/O and no clock of its own (every call takes `now`), so each rule is
//! unit-tested with a fake clock; `serve` is intake, spool and deliveries
//! around it.
//!
//! The rules:
//! - **Order**: first in, first out per channel, and per alert key (an
//!   alert's events): a channel sends its queue's head only, and only when
//!   that alert has no earlier event still pending. "First" is the order
//!   the store accepted them in, which the caller gives: an alert another
//!   node accepted earlier may be heard of after a later one this node
//!   accepted, and still goes first.
//! - **One request in flight per channel**, so its order and pacing hold;
//!   different channels go at once, up to `max_in_flight`.
//! - **Pacing** per channel, at Slack's rate and not below it: a burst of
//!   whole messages, then one per interval counted from when the previous
//!   request *left*, plus a margin for the jitter of the round trips (a
//!   `429` that still comes widens it), so arrivals stay an interval apart.
//! - **`Retry-After`** blocks the channel until then; one message goes when
//!   the block ends, then the steady rate (no burst).
//! - **Backoff**: a failed attempt waits until the time the caller gives
//!   (`retry::Backoff` decides it); giving up is the caller's `Ended`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How the scheduler paces.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Slack's interval between messages to one channel (about 1 s).
    pub interval: Duration,
    /// Messages a quiet channel may take at once.
    pub burst: u32,
    /// The first margin added to the interval for round-trip jitter.
    pub margin: Duration,
    /// The widest the margin grows after `429`s.
    pub max_margin: Duration,
    /// Requests in flight at once, over all channels.
    pub max_in_flight: usize,
}

impl Rules {
    /// How far ahead of the steady rate a burst may run: `burst - 1` steps
    /// of an interval and the channel's margin.
    pub fn tolerance(&self, margin: Duration) -> Duration {
        (self.interval + margin) * self.burst.saturating_sub(1)
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            interval: Duration::from_secs(1),
            burst: 3,
            margin: Duration::from_millis(30),
            max_margin: Duration::from_millis(500),
            max_in_flight: 4,
        }
    }
}

/// What the scheduler says to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send this alert now (it is marked in flight).
    Send(u64),
    /// Nothing can go before this time (`None`: not before something
    /// changes: an alert arrives or a request ends).
    Wait(Option<Instant>),
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Delivered, or failed for good: the alert leaves the scheduler.
    Ended,
    /// Nothing was sent: a store shared with other nodes said not yet (one
    /// of them is sending to the channel, or paced it). The channel's pace
    /// is as it was before; the alert is asked for again at `at`.
    Refused { at: Instant },
    /// Try again at `at`. `retry_after`: Slack said when (the channel waits
    /// too); `rate_limited`: it was a `429`.
    Retry {
        at: Instant,
        retry_after: bool,
        rate_limited: bool,
    },
}

struct Alert {
    channel: String,
    key: String,
    not_before: Instant,
    /// Its place in the order the store accepted alerts in.
    order: u64,
}

struct Channel {
    queue: VecDeque<u64>,
    busy: bool,
    pace: Pace<Instant>,
    /// The pace before the message in flight was counted, for a refusal.
    before: Pace<Instant>,
}

/// A moment on some clock: an [`Instant`] (one node's scheduler) or a
/// [`Duration`] since the Unix epoch (a channel's pacing kept in a store
/// that several nodes share, on the database's clock).
pub trait Moment: Copy + Ord + std::ops::Add<Duration, Output = Self> {
    /// `d` earlier, or itself when that is before the clock's start.
    fn back(self, d: Duration) -> Self;
}

impl Moment for Instant {
    fn back(self, d: Duration) -> Self {
        self.checked_sub(d).unwrap_or(self)
    }
}

impl Moment for Duration {
    fn back(self, d: Duration) -> Self {
        self.checked_sub(d).unwrap_or(self)
    }
}

/// One channel's pacing: the rule every node follows, whether the state
/// lives in this scheduler or in a shared store (each claim there applies
/// it to the channel's row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace<T> {
    /// The theoretical time of the next message at the steady rate; a
    /// message may go `burst - 1` intervals before it (GCRA).
    pub earliest: Option<T>,
    /// Until when Slack said to wait (`Retry-After`).
    pub blocked_until: Option<T>,
    /// The margin added to the interval for round-trip jitter.
    pub margin: Duration,
}

impl<T: Moment> Pace<T> {
    /// A quiet channel's pacing.
    pub fn new(rules: &Rules) -> Pace<T> {
        Pace {
            earliest: None,
            blocked_until: None,
            margin: rules.margin,
        }
    }

    /// When the channel may take a message (`None`: whenever).
    pub fn ready(&self, rules: &Rules) -> Option<T> {
        let tolerance = rules.tolerance(self.margin);
        [self.blocked_until, self.earliest.map(|e| e.back(tolerance))]
            .into_iter()
            .flatten()
            .max()
    }

    /// A message goes at `now`.
    pub fn sent(&mut self, now: T, rules: &Rules) {
        let base = self.earliest.map_or(now, |e| e.max(now));
        self.earliest = Some(base + rules.interval + self.margin);
    }

    /// The request left at `at`: the next message is paced from then.
    pub fn left(&mut self, at: T, rules: &Rules) {
        let paced = at + rules.interval + self.margin;
        self.earliest = Some(self.earliest.map_or(paced, |e| e.max(paced)));
    }

    /// An attempt is tried again at `at`: a `429` widens the margin; a
    /// `Retry-After` blocks the channel until then, after which one message
    /// goes, then the steady rate (no burst).
    pub fn retry(&mut self, at: T, retry_after: bool, rate_limited: bool, rules: &Rules) {
        if rate_limited {
            self.margin = (self.margin * 2).min(rules.max_margin);
        }
        if retry_after {
            self.blocked_until = Some(at);
            self.earliest = Some(at + rules.tolerance(self.margin));
        }
    }
}

/// The pending alerts and the state of each channel.
pub struct Scheduler {
    rules: Rules,
    alerts: HashMap<u64, Alert>,
    channels: HashMap<String, Channel>,
    /// Channels with queued alerts, in the order they get turns.
    turns: VecDeque<String>,
    /// Each alert key's pending events, oldest first.
    keys: HashMap<String, VecDeque<u64>>,
    in_flight: usize,
}

impl Scheduler {
    pub fn new(rules: Rules) -> Scheduler {
        Scheduler {
            rules,
            alerts: HashMap::new(),
            channels: HashMap::new(),
            turns: VecDeque::new(),
            keys: HashMap::new(),
            in_flight: 0,
        }
    }

    /// Queues alert `id` for `channel` (its pacing key), as an event of
    /// alert `key`, ready from `now`, in its place by `order` (the order
    /// the store accepted alerts in): behind every alert accepted before
    /// it, ahead of those accepted after it, but never ahead of one in
    /// flight.
    pub fn add(&mut self, id: u64, order: u64, channel: &str, key: &str, now: Instant) {
        if self.alerts.contains_key(&id) {
            return;
        }
        let key_first_out = self
            .keys
            .get(key)
            .and_then(|events| events.front())
            .is_some_and(|first| self.in_flight(*first));
        let pace = Pace::new(&self.rules);
        let state = self
            .channels
            .entry(channel.to_string())
            .or_insert_with(|| Channel {
                queue: VecDeque::new(),
                busy: false,
                pace,
                before: pace,
            });
        // A channel is in `turns` exactly while its queue is not empty.
        if state.queue.is_empty() {
            self.turns.push_back(channel.to_string());
        }
        place(&mut state.queue, id, order, state.busy, &self.alerts);
        place(
            self.keys.entry(key.to_string()).or_default(),
            id,
            order,
            key_first_out,
            &self.alerts,
        );
        self.alerts.insert(
            id,
            Alert {
                channel: channel.to_string(),
                key: key.to_string(),
                not_before: now,
                order,
            },
        );
    }

    /// Whether alert `id` is in flight: its channel's head, sent.
    fn in_flight(&self, id: u64) -> bool {
        self.alerts
            .get(&id)
            .and_then(|alert| self.channels.get(&alert.channel))
            .is_some_and(|c| c.busy && c.queue.front() == Some(&id))
    }

    /// How many alerts are pending (queued or in flight).
    pub fn pending(&self) -> usize {
        self.alerts.len()
    }

    /// The next alert to send at `now`, or until when to wait.
    pub fn next(&mut self, now: Instant) -> Decision {
        if self.in_flight >= self.rules.max_in_flight {
            return Decision::Wait(None);
        }
        let mut wake: Option<Instant> = None;
        let mut later = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        for turn in 0..self.turns.len() {
            let name = &self.turns[turn];
            let Some(channel) = self.channels.get(name) else {
                continue;
            };
            let Some(&head) = channel.queue.front() else {
                continue;
            };
            if channel.busy {
                continue;
            }
            let alert = &self.alerts[&head];
            // An earlier event of the same alert (in another channel) first.
            if self.keys.get(&alert.key).and_then(|q| q.front()) != Some(&head) {
                continue;
            }
            let ready = channel
                .pace
                .ready(&self.rules)
                .map_or(alert.not_before, |r| r.max(alert.not_before));
            if ready > now {
                later(ready);
                continue;
            }
            // Send: the channel's turn goes to the back.
            let name = self.turns.remove(turn).unwrap_or_default();
            let channel = self.channels.get_mut(&name).expect("looked up above");
            channel.busy = true;
            channel.before = channel.pace;
            channel.pace.sent(now, &self.rules);
            self.turns.push_back(name);
            self.in_flight += 1;
            return Decision::Send(head);
        }
        Decision::Wait(wake)
    }

    /// The request for alert `id` left at `at`: later than when it was
    /// decided, when it waited for an instance or a connection. The
    /// channel's next message is paced from then, so arrivals stay an
    /// interval apart however long the request waited to leave.
    pub fn left(&mut self, id: u64, at: Instant) {
        let Some(alert) = self.alerts.get(&id) else {
            return;
        };
        let Some(channel) = self.channels.get_mut(&alert.channel) else {
            return;
        };
        channel.pace.left(at, &self.rules);
    }

    /// Records how the attempt at alert `id` ended.
    pub fn done(&mut self, id: u64, outcome: Attempt) {
        let Some(alert) = self.alerts.get_mut(&id) else {
            return;
        };
        let name = alert.channel.clone();
        let Some(channel) = self.channels.get_mut(&name) else {
            return;
        };
        if channel.busy {
            channel.busy = false;
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let again = !matches!(outcome, Attempt::Ended);
        match outcome {
            Attempt::Ended => {
                let key = alert.key.clone();
                self.alerts.remove(&id);
                // Almost always the head (first in, first out): O(1) then.
                remove_id(&mut channel.queue, id);
                if channel.queue.is_empty() {
                    self.turns.retain(|c| *c != name);
                }
                if let Some(events) = self.keys.get_mut(&key) {
                    remove_id(events, id);
                    if events.is_empty() {
                        self.keys.remove(&key);
                    }
                }
            }
            Attempt::Refused { at } => {
                alert.not_before = at;
                channel.pace = channel.before;
            }
            Attempt::Retry {
                at,
                retry_after,
                rate_limited,
            } => {
                alert.not_before = at;
                channel
                    .pace
                    .retry(at, retry_after, rate_limited, &self.rules);
            }
        }
        if again {
            self.requeue(id);
        }
    }

    /// Alert `id`, which waits again after an attempt, is put back in its
    /// place if an alert accepted before it was queued behind it while
    /// the attempt was out (one heard of late): that one goes first.
    fn requeue(&mut self, id: u64) {
        let Some(alert) = self.alerts.get(&id) else {
            return;
        };
        let order = alert.order;
        let earlier_behind = |queue: Option<&VecDeque<u64>>| {
            queue.is_some_and(|q| {
                q.iter()
                    .skip_while(|queued| **queued != id)
                    .any(|queued| self.alerts.get(queued).is_some_and(|a| a.order < order))
            })
        };
        let channel_queue = self.channels.get(&alert.channel).map(|c| &c.queue);
        if !earlier_behind(channel_queue) && !earlier_behind(self.keys.get(&alert.key)) {
            return;
        }
        let (channel, key, not_before) =
            (alert.channel.clone(), alert.key.clone(), alert.not_before);
        if self.remove(id) {
            self.add(id, order, &channel, &key, not_before);
        }
    }

    /// How many alerts wait for `channel`: queued, not in flight.
    pub fn waiting(&self, channel: &str) -> usize {
        self.channels
            .get(channel)
            .map_or(0, |c| c.queue.len() - usize::from(c.busy))
    }

    /// Takes the alerts waiting for `channel` out of the scheduler (not
    /// the one in flight), oldest first: a storm shows them instead.
    pub fn take_waiting(&mut self, channel: &str) -> Vec<u64> {
        let Some(state) = self.channels.get(channel) else {
            return Vec::new();
        };
        let skip = usize::from(state.busy);
        let ids: Vec<u64> = state.queue.iter().skip(skip).copied().collect();
        for id in &ids {
            self.remove(*id);
        }
        ids
    }

    /// Takes alert `id` out of the scheduler if it waits (not in flight):
    /// whether it did.
    pub fn remove(&mut self, id: u64) -> bool {
        if self.in_flight(id) {
            return false;
        }
        let Some(alert) = self.alerts.remove(&id) else {
            return false;
        };
        if let Some(channel) = self.channels.get_mut(&alert.channel) {
            remove_id(&mut channel.queue, id);
            if channel.queue.is_empty() {
                self.turns.retain(|c| *c != alert.channel);
            }
        }
        if let Some(events) = self.keys.get_mut(&alert.key) {
            remove_id(events, id);
            if events.is_empty() {
                self.keys.remove(&alert.key);
            }
        }
        true
    }

    /// The margin a channel's pacing adds to the interval now.
    pub fn margin(&self, channel: &str) -> Option<Duration> {
        self.channels.get(channel).map(|c| c.pace.margin)
    }
}

/// Puts `id` into `queue` by `order`: almost always at the back (O(1)
/// then), and never ahead of the first when that one is in flight
/// (`first_out`).
fn place(
    queue: &mut VecDeque<u64>,
    id: u64,
    order: u64,
    first_out: bool,
    alerts: &HashMap<u64, Alert>,
) {
    let floor = usize::from(first_out).min(queue.len());
    let mut at = queue.len();
    while at > floor && alerts.get(&queue[at - 1]).is_some_and(|a| a.order > order) {
        at -= 1;
    }
    queue.insert(at, id);
}

/// Removes `id` from a queue where it is usually the first.
fn remove_id(queue: &mut VecDeque<u64>, id: u64) {
    if queue.front() == Some(&id) {
        queue.pop_front();
    } else {
        queue.retain(|q| *q != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn rules(burst: u32) -> Rules {
        Rules {
            interval: SEC,
            burst,
            margin: Duration::from_millis(30),
            max_margin: Duration::from_millis(500),
            max_in_flight: 8,
        }
    }

    #[test]
    fn a_storm_takes_the_waiting_alerts_and_leaves_the_one_in_flight() {
        let mut s = Scheduler::new(rules(1));
        let t0 = Instant::now();
        for id in 1..=5 {
            s.add(id, id, "#a", &format!("k{id}"), t0);
        }
        s.add(9, 9, "#b", "k9", t0);
        assert_eq!(s.next(t0), Decision::Send(1));
        assert_eq!(s.waiting("#a"), 4);
        assert_eq!(s.take_waiting("#a"), vec![2, 3, 4, 5]);
        assert_eq!(s.waiting("#a"), 0);
        assert!(!s.remove(1), "in flight");
        s.done(1, Attempt::Ended);
        assert_eq!(s.pending(), 1);
        assert_eq!(s.next(t0), Decision::Send(9));
    }

    #[test]
    fn a_request_that_left_late_paces_its_channel_from_when_it_left() {
        let mut s = Scheduler::new(rules(1));
        let t0 = Instant::now();
        s.add(1, 1, "#a", "k1", t0);
        s.add(2, 2, "#a", "k2", t0);
        assert_eq!(s.next(t0), Decision::Send(1));
        // It waited 300 ms for a connection before it left.
        s.left(1, t0 + Duration::from_millis(300));
        s.done(1, Attempt::Ended);
        let paced = t0 + Duration::from_millis(300) + SEC + Duration::from_millis(30);
        assert_eq!(
            s.next(t0 + SEC + Duration::from_millis(30)),
            Decision::Wait(Some(paced))
        );
        assert_eq!(s.next(paced), Decision::Send(2));
    }

    #[test]
    fn a_refused_claim_leaves_the_channels_pace_as_it_was() {
        let mut s = Scheduler::new(rules(1));
        let t0 = Instant::now();
        s.add(1, 1, "#a", "k1", t0);
        assert_eq!(s.next(t0), Decision::Send(1));
        // Another node holds the channel: nothing was sent.
        let later = t0 + Duration::from_millis(200);
        s.done(1, Attempt::Refused { at: later });
        assert_eq!(s.next(t0), Decision::Wait(Some(later)));
        // Asked again then, not a paced interval after the refusal.
        assert_eq!(s.next(later), Decision::Send(1));
    }

    /// Sends everything it can at `now`, ending each attempt at once.
    fn drain(s: &mut Scheduler, now: Instant) -> Vec<u64> {
        let mut sent = Vec::new();
        while let Decision::Send(id) = s.next(now) {
            sent.push(id);
            s.done(id, Attempt::Ended);
        }
        sent
    }

    #[test]
    fn a_quiet_channel_takes_its_burst_in_whole_messages_then_one_per_interval() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(rules(3));
        for id in 1..=6 {
            s.add(id, id, "#a", &format!("k{id}"), t0);
        }
        assert_eq!(drain(&mut s, t0), [1, 2, 3]);
        // The steady rate counts from when the previous request left, plus
        // the margin: not a hair before.
        let next = t0 + SEC + Duration::from_millis(30);
        assert_eq!(s.next(t0), Decision::Wait(Some(next)));
        assert_eq!(
            drain(&mut s, next - Duration::from_millis(1)),
            Vec::<u64>::new()
        );
        assert_eq!(drain(&mut s, next), [4]);
        assert_eq!(
            s.next(next),
            Decision::Wait(Some(next + SEC + Duration::from_millis(30)))
        );
    }

    #[test]
    fn without_a_burst_arrivals_stay_an_interval_and_a_margin_apart() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(rules(1));
        for id in 1..=3 {
            s.add(id, id, "#a", &format!("k{id}"), t0);
        }
        let mut now = t0;
        let mut times = Vec::new();
        while s.pending() > 0 {
            match s.next(now) {
                Decision::Send(id) => {
                    times.push(now);
                    // A slow answer does not delay the next message: pacing
                    // counts from when the request left.
                    s.done(id, Attempt::Ended);
                }
                Decision::Wait(Some(t)) => now = t,
                Decision::Wait(None) => unreachable!(),
            }
        }
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps, [SEC + Duration::from_millis(30); 2]);
    }

    #[test]
    fn one_request_in_flight_per_channel_and_channels_go_at_once() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(rules(3));
        s.add(1, 1, "#a", "k1", t0);
        s.add(2, 2, "#a", "k2", t0);
        s.add(3, 3, "#b", "k3", t0);
        assert_eq!(s.next(t0), Decision::Send(1));
        assert_eq!(s.next(t0), Decision::Send(3));
        // #a's second waits for its first to end.
        assert_eq!(s.next(t0), Decision::Wait(None));
        s.done(1, Attempt::Ended);
        assert_eq!(s.next(t0), Decision::Send(2));
    }

    #[test]
    fn in_flight_requests_are_capped() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(Rules {
            max_in_flight: 2,
            ..rules(1)
        });
        for (id, c) in [(1, "#a"), (2, "#b"), (3, "#c")] {
            s.add(id, id, c, &format!("k{id}"), t0);
        }
        assert_eq!(s.next(t0), Decision::Send(1));
        assert_eq!(s.next(t0), Decision::Send(2));
        assert_eq!(s.next(t0), Decision::Wait(None));
        s.done(2, Attempt::Ended);
        assert_eq!(s.next(t0), Decision::Send(3));
    }

    #[test]
    fn a_channel_is_first_in_first_out_even_while_its_head_backs_off() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(rules(3));
        s.add(1, 1, "#a", "k1", t0);
        s.add(2, 2, "#a", "k2", t0);
        assert_eq!(s.next(t0), Decision::Send(1));
        let later = t0 + Duration::from_millis(500);
        s.done(
            1,
            Attempt::Retry {
                at: later,
                retry_after: false,
                rate_limited: false,
            },
        );
        assert_eq!(s.next(t0), Decision::Wait(Some(later)));
        assert_eq!(s.next(later), Decision::Send(1));
        s.done(1, Attempt::Ended);
        assert_eq!(s.next(later), Decision::Send(2));
    }

    #[test]
    fn an_alerts_events_keep_their_order_across_channels() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(rules(3));
        // The firing went to #a; the recovery (an update) to CA, its id.
        s.add(1, 1, "#a", "cpu", t0);
        s.add(2, 2, "CA", "cpu", t0);
        s.add(3, 3, "#b", "disk", t0);
        assert_eq!(s.next(t0), Decision::Send(1));
        assert_eq!(s.next(t0), Decision::Send(3));
        assert_eq!(s.next(t0), Decision::Wait(None));
        s.done(1, Attempt::Ended);
        assert_eq!(s.next(t0), Decision::Send(2));
    }

    #[test]
    fn an_event_heard_of_after_a_later_one_still_goes_first_but_not_ahead_of_one_in_flight() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(rules(3));
        // This node accepted the recovery (order 11) and hears of the
        // firing another node accepted first (order 10) only then.
        s.add(7, 11, "#a", "cpu", t0);
        s.add(3, 10, "#a", "cpu", t0);
        assert_eq!(s.next(t0), Decision::Send(3), "the firing first");
        assert_eq!(s.next(t0), Decision::Wait(None));
        s.done(3, Attempt::Ended);
        assert_eq!(s.next(t0), Decision::Send(7));
        // One in flight stays first, whatever is heard of meanwhile.
        s.add(8, 20, "#b", "disk", t0);
        assert_eq!(s.next(t0), Decision::Send(8));
        s.add(5, 15, "#b", "disk", t0);
        assert_eq!(s.next(t0), Decision::Wait(None), "#b has a request out");
        s.done(8, Attempt::Ended);
        assert_eq!(s.next(t0), Decision::Send(5));
    }

    #[test]
    fn an_event_heard_of_while_a_later_ones_attempt_was_out_goes_first_when_it_comes_back() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(rules(3));
        s.add(7, 11, "#a", "cpu", t0);
        assert_eq!(s.next(t0), Decision::Send(7));
        // Heard of while 7's claim is out: behind it for now.
        s.add(3, 10, "#a", "cpu", t0);
        // The store refuses 7 (an earlier event of its key is pending).
        s.done(
            7,
            Attempt::Refused {
                at: t0 + Duration::from_millis(500),
            },
        );
        assert_eq!(s.next(t0), Decision::Send(3), "the earlier event first");
        s.done(3, Attempt::Ended);
        assert_eq!(
            s.next(t0 + Duration::from_millis(500)),
            Decision::Send(7),
            "then the later one, at its time"
        );
    }

    #[test]
    fn retry_after_blocks_the_channel_then_one_message_then_the_steady_rate() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(rules(3));
        for id in 1..=4 {
            s.add(id, id, "#a", &format!("k{id}"), t0);
        }
        s.add(9, 9, "#b", "k9", t0);
        assert_eq!(s.next(t0), Decision::Send(1));
        let until = t0 + 2 * SEC;
        s.done(
            1,
            Attempt::Retry {
                at: until,
                retry_after: true,
                rate_limited: true,
            },
        );
        // Other channels go on.
        assert_eq!(s.next(t0), Decision::Send(9));
        s.done(9, Attempt::Ended);
        assert_eq!(s.next(t0), Decision::Wait(Some(until)));
        assert_eq!(
            s.next(until - Duration::from_millis(1)),
            Decision::Wait(Some(until))
        );
        assert_eq!(drain(&mut s, until), [1]);
        // No burst after the block: the next one an interval and the
        // (widened) margin later.
        assert_eq!(s.margin("#a"), Some(Duration::from_millis(60)));
        assert_eq!(
            s.next(until),
            Decision::Wait(Some(until + SEC + Duration::from_millis(60)))
        );
    }

    #[test]
    fn a_429_widens_the_margin_up_to_its_cap() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(rules(1));
        s.add(1, 1, "#a", "k", t0);
        for i in 1..=10 {
            let Decision::Send(id) = s.next(t0 + 10 * i * SEC) else {
                panic!("sends")
            };
            s.done(
                id,
                Attempt::Retry {
                    at: t0,
                    retry_after: false,
                    rate_limited: true,
                },
            );
        }
        assert_eq!(s.margin("#a"), Some(Duration::from_millis(500)));
    }

    #[test]
    fn channels_take_turns() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(Rules {
            max_in_flight: 1,
            ..rules(10)
        });
        for id in 1..=3 {
            s.add(id, id, "#a", &format!("a{id}"), t0);
            s.add(10 + id, 10 + id, "#b", &format!("b{id}"), t0);
        }
        assert_eq!(drain(&mut s, t0), [1, 11, 2, 12, 3, 13]);
    }
}
