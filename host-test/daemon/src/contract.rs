//! The store contract, each case a test on each store on its own
//! (`contract::on_journal::*` needs no PostgreSQL; `contract::on_postgres::*`
//! starts a throwaway server, from the dev-only `testdb` crate). Then what
//! only a store shared by several nodes has to show: claims exclusive, pacing and
//! `Retry-After` across nodes, leases that run out, a window closed once.

use std::time::{Duration, Instant, SystemTime};

use kapacitor_formats::aggregate::Collected;

use std::io;

use crate::scheduler::Rules;
use crate::spool::Spool;
use crate::store::postgres::{self, PgStore};
use crate::store::*;
use testdb::TestDb;

/// Runs a store's job to its end.
fn wait<T>(job: Job<T>) -> Result<T, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(job)
}

/// Makes what was staged durable, as the group commit does.
fn commit(store: &mut dyn Store) -> io::Result<()> {
    sync_now(store)
}

/// Arrivals until `n` came (a shared store reads them a moment later).
fn arrivals(store: &mut dyn Store, n: usize) -> Vec<Pending> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(store.arrivals());
        if got.len() < n {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    got
}

/// Accepts a barrier alert and waits for it: whether it arrived alone.
/// Arrivals come in the order alerts became durable, so nothing written
/// before it (an alert given again, one rolled back, one emitted) can
/// arrive after it: "nothing else arrived" is seen on an event, not
/// after a sleep.
fn arrived_alone(store: &mut dyn Store) -> bool {
    let barrier = store.accept(&alert("barrier"), vec![]).unwrap();
    commit(store).unwrap();
    let came = arrivals(store, 1);
    came.len() == 1 && came[0].id == barrier.id
}

fn alert(id: &str) -> String {
    format!("{{\"id\":\"{id}\",\"level\":\"CRITICAL\",\"message\":\"m\",\"time\":\"2026-11-29T10:00:00Z\"}}")
}

fn options(channel: &str) -> Vec<(String, String)> {
    vec![("channel".into(), channel.into())]
}

fn request(id: u64, channel: &str, alert_id: &str) -> ClaimRequest {
    ClaimRequest {
        id,
        channel: crate::serve::channels::pacing_key("", channel),
        key: alert_key(alert_id, &options(channel)),
    }
}

fn granted(claim: Claim) -> Option<AlertMessage> {
    match claim {
        Claim::Granted { message, .. } => message.map(|m| *m),
        other => panic!("expected the claim granted, got {other:?}"),
    }
}

fn rules() -> Rules {
    Rules {
        interval: Duration::from_secs(1),
        burst: 1,
        margin: Duration::from_millis(30),
        max_margin: Duration::from_millis(500),
        max_in_flight: 100,
    }
}

fn node(db: &TestDb, name: &str, lease: Duration) -> PgStore {
    node_pacing(db, name, lease, rules())
}

fn node_pacing(db: &TestDb, name: &str, lease: Duration, rules: Rules) -> PgStore {
    PgStore::open(postgres::Settings {
        url: postgres::connect::StoreUrl::parse(&db.url()).unwrap(),
        node: name.into(),
        address: Some(format!("the contract tests, as {name}")),
        lease,
        rules,
        keep_finished: 100,
    })
    .unwrap()
}

/// An event an aggregate collects.
fn collected(n: u64) -> Collected {
    Collected::from_alert(&alert(&format!("e{n}"))).unwrap()
}

/// Runs a contract case on a fresh journal (no PostgreSQL needed).
fn on_journal(case: fn(&mut dyn Store)) {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Spool::open(dir.path(), 1 << 20).unwrap();
    case(&mut journal);
}

/// Runs a contract case on a fresh PostgreSQL store (a throwaway server).
fn on_postgres(case: fn(&mut dyn Store)) {
    let db = TestDb::start();
    // Pacing that lets a channel take the cases' few messages at once, as
    // the journal (whose claims the scheduler alone paces) does.
    let quick = Rules {
        interval: Duration::from_millis(1),
        burst: 10,
        margin: Duration::ZERO,
        ..rules()
    };
    let mut shared = node_pacing(&db, "a", Duration::from_secs(10), quick);
    case(&mut shared);
}

/// Each case of the contract as a test on each store, on its own:
/// `contract::on_journal::CASE` and `contract::on_postgres::CASE`.
macro_rules! on_each_store {
    ($($case:ident),* $(,)?) => {
        mod on_journal {
            $(#[test]
            fn $case() {
                super::on_journal(super::$case)
            })*
        }
        mod on_postgres {
            $(#[test]
            fn $case() {
                super::on_postgres(super::$case)
            })*
        }
    };
}

on_each_store!(
    accepted_alerts_arrive_once_in_order_and_only_once_durable,
    a_write_rolled_back_takes_nothing,
    an_ending_keeps_the_alert_keys_message_for_its_next_claim_and_a_recovery_forgets_it,
    a_commits_endings_leave_each_key_the_message_of_its_last,
    a_click_marks_the_keys_message_until_it_recovers_and_a_silenced_event_is_an_ending,
    a_key_too_long_for_a_button_is_found_by_its_digest,
    a_repeat_is_an_ending_and_a_tracked_message_keeps_its_level_and_digest,
    a_failed_alert_is_kept_for_resending_once,
    the_lists_page_with_cursors,
    a_nul_in_an_option_is_kept_without_failing_the_others_in_its_transaction,
    a_click_is_recorded_once_by_its_identity,
    an_aggregate_window_collects_then_closes_into_alerts,
    a_window_that_took_an_event_since_it_was_read_is_not_closed_away_with_it,
);

fn accepted_alerts_arrive_once_in_order_and_only_once_durable(store: &mut dyn Store) {
    let a = store.accept(&alert("a"), options("#x")).unwrap();
    let b = store.accept(&alert("b"), options("#x")).unwrap();
    assert!(store.arrivals().is_empty(), "not before it is durable");
    commit(store).unwrap();
    let came = arrivals(store, 2);
    assert_eq!(
        came.iter().map(|p| p.id).collect::<Vec<_>>(),
        [a.id, b.id],
        "in the order accepted"
    );
    assert_eq!(came[0].options, options("#x"));
    let barrier = arrived_alone(store);
    assert!(barrier, "given once: a later alert arrives alone");
}

fn a_write_rolled_back_takes_nothing(store: &mut dyn Store) {
    let before = store.written();
    store.accept(&alert("a"), vec![]).unwrap();
    store.rollback(before);
    commit(store).unwrap();
    let lists = wait(store.lists(&[Listing::Pending], None, 10)).unwrap();
    assert_eq!(lists.counts[0], (Listing::Pending, 0));
    assert!(arrived_alone(store), "the rolled-back alert never arrives");
}

fn an_ending_keeps_the_alert_keys_message_for_its_next_claim_and_a_recovery_forgets_it(
    store: &mut dyn Store,
) {
    let first = store.accept(&alert("cpu"), options("#x")).unwrap();
    commit(store).unwrap();
    arrivals(store, 1);
    let asked = request(first.id, "#x", "cpu");
    assert_eq!(granted(wait(store.claim(asked.clone())).unwrap()), None);
    let done = Finished::new(first.id, Status::Delivered, "#x 1.1", 1).remembering(
        &asked.key,
        false,
        "",
        Some("C1"),
        Some("1.1"),
    );
    store.finish(done).unwrap();
    let next = store.accept(&alert("cpu"), options("#x")).unwrap();
    commit(store).unwrap();
    arrivals(store, 1);
    let message = granted(wait(store.claim(request(next.id, "#x", "cpu"))).unwrap());
    assert_eq!(
        message.map(|m| (m.channel_id, m.ts)),
        Some(("C1".into(), "1.1".into())),
        "the key's message"
    );
    let recovered = Finished::new(next.id, Status::Delivered, "#x 1.2", 1).remembering(
        &asked.key,
        true,
        "",
        Some("C1"),
        Some("1.2"),
    );
    store.finish(recovered).unwrap();
    commit(store).unwrap();
    let lists = wait(store.lists(&Listing::ALL, None, 10)).unwrap();
    let count = |l| lists.counts.iter().find(|(x, _)| *x == l).unwrap().1;
    assert_eq!(count(Listing::Pending), 0);
    assert_eq!(count(Listing::Finished), 2);
    assert_eq!(count(Listing::Messages), 0, "forgotten at the recovery");
}

/// Endings of one key committed together leave it the message of the last
/// of them, kept or forgotten (it recovered), whatever came before it in
/// the commit; forgetting a key never kept is no error.
fn a_commits_endings_leave_each_key_the_message_of_its_last(store: &mut dyn Store) {
    let names = ["cpu", "cpu", "mem", "mem", "disk"];
    let ids: Vec<u64> = names
        .iter()
        .map(|name| store.accept(&alert(name), options("#x")).unwrap().id)
        .collect();
    commit(store).unwrap();
    arrivals(store, names.len());
    let key = |name: &str| alert_key(name, &options("#x"));
    let ended = |i: usize, recovered: bool, ts: &str| {
        Finished::new(ids[i], Status::Delivered, &format!("#x {ts}"), 1).remembering(
            &key(names[i]),
            recovered,
            "",
            Some("C1"),
            Some(ts),
        )
    };
    for done in [
        ended(0, false, "1.1"),
        ended(2, false, "2.1"),
        ended(1, false, "1.2"),
        ended(3, true, "2.2"),
        ended(4, true, "3.1"),
    ] {
        store.finish(done).unwrap();
    }
    commit(store).unwrap();
    let ts = |name: &str| wait(store.message(&key(name))).unwrap().map(|m| m.ts);
    assert_eq!(
        ts("cpu").as_deref(),
        Some("1.2"),
        "the last ending's message"
    );
    assert_eq!(ts("mem"), None, "forgotten by the last ending");
    assert_eq!(ts("disk"), None);
    let lists = wait(store.lists(&Listing::ALL, None, 10)).unwrap();
    let count = |l| lists.counts.iter().find(|(x, _)| *x == l).unwrap().1;
    assert_eq!(count(Listing::Pending), 0);
    assert_eq!(count(Listing::Finished), names.len());
    assert_eq!(count(Listing::Messages), 1);
}

fn a_click_marks_the_keys_message_until_it_recovers_and_a_silenced_event_is_an_ending(
    store: &mut dyn Store,
) {
    let key = alert_key("cpu", &options("#x"));
    let mark = |by: &str, at: u64| Mark {
        by: by.into(),
        at,
        silence: None,
    };
    // A key without a message: the mark changes nothing.
    store
        .act(&key, Act::Acknowledge(mark("U0", 1)), "c0")
        .unwrap();
    commit(store).unwrap();
    assert_eq!(wait(store.message(&key)).unwrap(), None);

    let first = store.accept(&alert("cpu"), options("#x")).unwrap();
    commit(store).unwrap();
    arrivals(store, 1);
    wait(store.claim(request(first.id, "#x", "cpu"))).unwrap();
    let done = Finished::new(first.id, Status::Delivered, "#x 1.1", 1)
        .remembering(&key, false, "w", Some("C1"), Some("1.1"))
        .drawn_from(&alert("cpu"));
    store.finish(done).unwrap();
    commit(store).unwrap();
    let kept = wait(store.message(&key))
        .unwrap()
        .expect("the key's message");
    assert_eq!(
        kept.alert.as_deref(),
        Some(&*alert("cpu")),
        "its event kept"
    );

    store
        .act(&key, Act::Acknowledge(mark("U1", 10)), "c1")
        .unwrap();
    // A silence made in Alertmanager keeps its id there with the mark.
    let silenced = Mark {
        silence: Some("am-silence-1".into()),
        ..mark("U2", 20)
    };
    store
        .act(&key, Act::Silence(silenced.clone()), "c2")
        .unwrap();
    commit(store).unwrap();
    let marked = wait(store.message(&key)).unwrap().unwrap();
    assert_eq!(marked.acknowledged, Some(mark("U1", 10)));
    assert_eq!(marked.silenced, Some(silenced.clone()));

    // The next event: silenced, and the marks stay with the key's
    // newer message.
    let second = store.accept(&alert("cpu"), options("#x")).unwrap();
    commit(store).unwrap();
    arrivals(store, 1);
    let claimed = granted(wait(store.claim(request(second.id, "#x", "cpu"))).unwrap());
    assert_eq!(
        claimed.unwrap().silenced,
        Some(silenced.clone()),
        "with the claim"
    );
    store
        .finish(Finished::new(second.id, Status::Silenced, "silenced", 0))
        .unwrap();
    let third = store.accept(&alert("cpu"), options("#x")).unwrap();
    commit(store).unwrap();
    arrivals(store, 1);
    wait(store.claim(request(third.id, "#x", "cpu"))).unwrap();
    let done = Finished::new(third.id, Status::Delivered, "#x 1.3", 1).remembering(
        &key,
        false,
        "w",
        Some("C1"),
        Some("1.3"),
    );
    store.finish(done).unwrap();
    commit(store).unwrap();
    let newer = wait(store.message(&key)).unwrap().unwrap();
    assert_eq!(newer.ts, "1.3");
    assert_eq!(
        newer.acknowledged,
        Some(mark("U1", 10)),
        "kept across events"
    );
    store.act(&key, Act::Unsilence, "c3").unwrap();
    commit(store).unwrap();
    let unsilenced = wait(store.message(&key)).unwrap().unwrap();
    assert_eq!(unsilenced.silenced, None);
    assert_eq!(unsilenced.acknowledged, Some(mark("U1", 10)));
    let lists = wait(store.lists(&[Listing::Finished], None, 10)).unwrap();
    let statuses: Vec<Status> = lists.pages[0]
        .1
        .items
        .iter()
        .filter_map(|e| match e {
            Entry::Finished(f) => Some(f.status),
            _ => None,
        })
        .collect();
    assert!(statuses.contains(&Status::Silenced), "{statuses:?}");
}

fn a_key_too_long_for_a_button_is_found_by_its_digest(store: &mut dyn Store) {
    let long = vec![("title".to_string(), "t".repeat(3_000))];
    let key = alert_key("cpu", &long);
    let first = store.accept(&alert("cpu"), long.clone()).unwrap();
    commit(store).unwrap();
    arrivals(store, 1);
    let asked = ClaimRequest {
        id: first.id,
        channel: crate::serve::channels::pacing_key("", "#x"),
        key: key.clone(),
    };
    wait(store.claim(asked)).unwrap();
    let done = Finished::new(first.id, Status::Delivered, "#x 1.1", 1).remembering(
        &key,
        false,
        "w",
        Some("C1"),
        Some("1.1"),
    );
    store.finish(done).unwrap();
    commit(store).unwrap();
    let named = button_key(&key);
    assert!(named.len() < 2_000, "{named}");
    let found = wait(store.message(&named))
        .unwrap()
        .expect("found by its digest");
    assert_eq!(found.key, key);
    assert_eq!(wait(store.message(&key)).unwrap().unwrap().key, key);
    assert_eq!(wait(store.message("sha256:00")).unwrap(), None);
}

fn a_repeat_is_an_ending_and_a_tracked_message_keeps_its_level_and_digest(store: &mut dyn Store) {
    let first = store.accept(&alert("am"), options("#x")).unwrap();
    commit(store).unwrap();
    arrivals(store, 1);
    let asked = request(first.id, "#x", "am");
    granted(wait(store.claim(asked.clone())).unwrap());
    let done = Finished::new(first.id, Status::Delivered, "#x 1.1", 1).tracking(
        &asked.key,
        "CRITICAL",
        "d1",
        "",
        Some(("C1", "1.1")),
    );
    store.finish(done).unwrap();
    let again = store.accept(&alert("am"), options("#x")).unwrap();
    commit(store).unwrap();
    arrivals(store, 1);
    let kept = granted(wait(store.claim(request(again.id, "#x", "am"))).unwrap())
        .expect("the key's message");
    assert_eq!(
        (
            kept.level.as_deref(),
            kept.digest.as_deref(),
            kept.ts.as_str()
        ),
        (Some("CRITICAL"), Some("d1"), "1.1")
    );
    store
        .finish(Finished::new(again.id, Status::Repeat, "a repeat", 0))
        .unwrap();
    commit(store).unwrap();
    let lists = wait(store.lists(&[Listing::Finished], None, 10)).unwrap();
    let newest = match &lists.pages[0].1.items[0] {
        Entry::Finished(f) => f.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!((newest.id, newest.status), (again.id, Status::Repeat));
    assert!(
        wait(store.resendable(None)).unwrap().is_empty(),
        "not a failure"
    );
}

fn a_failed_alert_is_kept_for_resending_once(store: &mut dyn Store) {
    let a = store.accept(&alert("a"), options("#x")).unwrap();
    commit(store).unwrap();
    arrivals(store, 1);
    store
        .finish(Finished::new(a.id, Status::Failed, "channel_not_found", 1))
        .unwrap();
    commit(store).unwrap();
    let failed = wait(store.resendable(None)).unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].detail, "channel_not_found");
    match wait(store.resendable(Some(vec![a.id + 12_345]))) {
        Err(StoreError::NotFailed { id }) => assert_eq!(id, a.id + 12_345),
        other => panic!("expected NotFailed, got {:?}", other.map(|f| f.len())),
    }
    let resent = store.resend(&failed).unwrap();
    commit(store).unwrap();
    assert_eq!(resent[0].0, a.id);
    let again = arrivals(store, 1);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, resent[0].1.id);
    assert_eq!(again[0].alert, alert("a"));
    assert!(
        wait(store.resendable(None)).unwrap().is_empty(),
        "resent once"
    );
}

fn an_aggregate_window_collects_then_closes_into_alerts(store: &mut dyn Store) {
    for n in 0..3 {
        store.collect("agg", collected(n)).unwrap();
    }
    commit(store).unwrap();
    let windows = wait(store.windows()).unwrap();
    let window = windows["agg"].clone();
    assert_eq!(window.count, 3);
    let (ids, _) = store
        .emit("agg", &window, vec![(alert("sum"), options("#x"))], vec![])
        .unwrap();
    commit(store).unwrap();
    assert!(wait(store.windows()).unwrap().is_empty(), "closed");
    let came = arrivals(store, 1);
    assert_eq!(came.iter().map(|p| p.id).collect::<Vec<_>>(), ids);
}

fn a_window_that_took_an_event_since_it_was_read_is_not_closed_away_with_it(store: &mut dyn Store) {
    for n in 0..2 {
        store.collect("agg", collected(n)).unwrap();
    }
    commit(store).unwrap();
    let stale = wait(store.windows()).unwrap()["agg"].clone();
    store.collect("agg", collected(2)).unwrap();
    commit(store).unwrap();
    let sum = vec![(alert("sum"), options("#x"))];
    store.emit("agg", &stale, sum.clone(), vec![]).unwrap();
    commit(store).unwrap();
    let windows = wait(store.windows()).unwrap();
    assert_eq!(windows["agg"].count, 3, "still open, with the late event");
    assert!(arrived_alone(store), "nothing emitted");
    // Closed at the next look, with it.
    let (ids, _) = store.emit("agg", &windows["agg"], sum, vec![]).unwrap();
    commit(store).unwrap();
    assert!(wait(store.windows()).unwrap().is_empty());
    assert_eq!(
        arrivals(store, 1).iter().map(|p| p.id).collect::<Vec<_>>(),
        ids
    );
}

fn the_lists_page_with_cursors(store: &mut dyn Store) {
    for n in 0..5 {
        store.accept(&alert(&format!("a{n}")), vec![]).unwrap();
    }
    commit(store).unwrap();
    let first = wait(store.lists(&[Listing::Pending], None, 2)).unwrap();
    let (_, page) = &first.pages[0];
    assert_eq!(page.items.len(), 2);
    let next = page.next.expect("more");
    let second = wait(store.lists(&[Listing::Pending], Some(next), 10)).unwrap();
    assert_eq!(second.pages[0].1.items.len(), 3);
    assert_eq!(second.pages[0].1.next, None);
}

// What several nodes on one database show.

/// The ids of `arrived`, in the order given.
fn ids_of(arrived: Vec<Pending>) -> Vec<u64> {
    arrived.iter().map(|p| p.id).collect()
}

fn accepted(store: &mut PgStore, id: &str, channel: &str) -> u64 {
    let t = store.accept(&alert(id), options(channel)).unwrap();
    commit(store).unwrap();
    t.id
}

fn not_yet(claim: Claim) -> Duration {
    match claim {
        Claim::NotYet { wait } => wait,
        other => panic!("expected not yet, got {other:?}"),
    }
}

fn release(store: &mut PgStore, id: u64, channel: &str, retry: Option<Retry>) {
    store
        .released(Release {
            id,
            channel: crate::serve::channels::pacing_key("", channel),
            left: Some(SystemTime::now()),
            retry,
            attempts: 1,
            fence: None,
        })
        .unwrap();
    commit(store).unwrap();
}

#[test]
fn one_node_holds_a_claim_and_the_other_hears_it_is_gone_once_ended() {
    let db = TestDb::start();
    let (mut a, b) = (
        node(&db, "a", Duration::from_secs(10)),
        node(&db, "b", Duration::from_secs(10)),
    );
    let x = accepted(&mut a, "x", "#c");
    granted(wait(a.claim(request(x, "#c", "x"))).unwrap());
    assert!(not_yet(wait(b.claim(request(x, "#c", "x"))).unwrap()) <= Duration::from_secs(1));
    a.finish(Finished::new(x, Status::Delivered, "#c 1.1", 1))
        .unwrap();
    commit(&mut a).unwrap();
    release(&mut a, x, "#c", None);
    assert_eq!(wait(b.claim(request(x, "#c", "x"))).unwrap(), Claim::Gone);
}

#[test]
fn a_channel_is_paced_across_nodes_by_the_schedulers_rule() {
    let db = TestDb::start();
    let (mut a, mut b) = (
        node(&db, "a", Duration::from_secs(10)),
        node(&db, "b", Duration::from_secs(10)),
    );
    let x = accepted(&mut a, "x", "#c");
    let y = accepted(&mut b, "y", "#c");
    let z = accepted(&mut b, "z", "#other");
    granted(wait(a.claim(request(x, "#c", "x"))).unwrap());
    // One request out per channel, whichever node asks.
    not_yet(wait(b.claim(request(y, "#c", "y"))).unwrap());
    // Another channel goes at once.
    granted(wait(b.claim(request(z, "#other", "z"))).unwrap());
    a.finish(Finished::new(x, Status::Delivered, "#c 1.1", 1))
        .unwrap();
    commit(&mut a).unwrap();
    release(&mut a, x, "#c", None);
    // Paced from when the request left: at most an interval and the
    // margin (less by however long this machine took since; no bound on
    // how fast it is).
    let wait_for = not_yet(wait(b.claim(request(y, "#c", "y"))).unwrap());
    assert!(wait_for <= Duration::from_millis(1_100), "{wait_for:?}");
    std::thread::sleep(wait_for);
    granted(wait(b.claim(request(y, "#c", "y"))).unwrap());
}

/// The group commit's connection closed by the server while idle (a
/// failover, an idle timeout, an operator's `pg_terminate_backend`): the
/// next commit goes through on a new connection, its writers never told
/// of the old one's end.
#[test]
fn a_group_commit_after_its_connection_was_closed_while_idle_goes_through() {
    let db = TestDb::start();
    let mut a = node(&db, "a", Duration::from_secs(10));
    accepted(&mut a, "x", "#c");
    // The group commit's backend: the one whose last statement was
    // intake's insert.
    let ended = rows(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query LIKE 'WITH o AS (INSERT INTO origins%'",
    );
    assert_eq!(ended, [["t"]], "the group commit's backend, ended");
    std::thread::sleep(Duration::from_millis(300));
    let y = a.accept(&alert("y"), options("#c")).unwrap();
    commit(&mut a).expect("committed on a new connection");
    assert!(
        arrivals(&mut a, 2).iter().any(|p| p.id == y.id),
        "and it arrives"
    );
}

/// Another writer locks two alerts in the other order than the endings'
/// group commit (which locks by id): PostgreSQL breaks the circle by
/// aborting the endings' transaction, whose statements went out together.
/// It is rolled back whole and tried again, its writers answered once it
/// committed, and each alert ended once.
#[test]
fn a_deadlock_in_the_endings_commit_is_tried_again_and_each_alert_ends_once() {
    // Three seconds before a waiting backend looks for a circle: room for
    // the other writer to close it first.
    let db = TestDb::start_with(testdb::Setup {
        options: "-c deadlock_timeout=3s".into(),
        ..testdb::Setup::default()
    });
    let mut a = node(&db, "a", Duration::from_secs(10));
    let (x, y) = (accepted(&mut a, "x", "#c"), accepted(&mut a, "y", "#c"));
    let (low, high) = (x.min(y) as i64, x.max(y) as i64);
    let url = postgres::connect::StoreUrl::parse(&db.url()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The other writer holds the later alert; it looks for a circle only
    // after the endings' backend would have.
    let other = rt.block_on(async {
        let other = url.connect().await.unwrap();
        other
            .batch_execute("SET deadlock_timeout = '30s'; BEGIN")
            .await
            .unwrap();
        other
            .execute("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", &[&high])
            .await
            .unwrap();
        other
    });
    for (id, ts) in [(low, "#c 1.1"), (high, "#c 1.2")] {
        a.finish(Finished::new(id as u64, Status::Delivered, ts, 1))
            .unwrap();
    }
    let committing = std::thread::spawn(move || {
        let committed = commit(&mut a);
        (a, committed)
    });
    // The endings' transaction holds the earlier alert and waits for the
    // later one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows(&db, "SELECT count(*) FROM pg_locks WHERE NOT granted") != [["1"]] {
        assert!(Instant::now() < deadline, "the endings never waited");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The other writer asks for the earlier alert: a circle. It is granted
    // while this transaction still holds the later one, so the endings'
    // transaction let the earlier one go without committing.
    rt.block_on(async {
        other
            .execute("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", &[&low])
            .await
            .expect("granted once PostgreSQL aborted the endings' transaction");
        other.batch_execute("COMMIT").await.unwrap();
    });
    let (_a, committed) = committing.join().unwrap();
    committed.expect("the endings, tried again, committed");
    assert_eq!(
        rows(
            &db,
            &format!("SELECT status, detail FROM alerts WHERE id IN ({low}, {high}) ORDER BY id")
        ),
        [["delivered", "#c 1.1"], ["delivered", "#c 1.2"]]
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM duplicates"), [["0"]]);
}

#[test]
fn a_retry_after_seen_by_one_node_blocks_the_channel_for_every_node() {
    let db = TestDb::start();
    let (mut a, mut b) = (
        node(&db, "a", Duration::from_secs(10)),
        node(&db, "b", Duration::from_secs(10)),
    );
    let x = accepted(&mut a, "x", "#c");
    let y = accepted(&mut b, "y", "#c");
    granted(wait(a.claim(request(x, "#c", "x"))).unwrap());
    let retry = Retry {
        wait: Duration::from_secs(3),
        retry_after: true,
        rate_limited: true,
    };
    release(&mut a, x, "#c", Some(retry));
    let wait_for = not_yet(wait(b.claim(request(y, "#c", "y"))).unwrap());
    assert!(wait_for > Duration::from_millis(2_500), "{wait_for:?}");
    // The alert waits too, on every node.
    let again = not_yet(wait(b.claim(request(x, "#c", "x"))).unwrap());
    assert!(again > Duration::from_millis(2_500), "{again:?}");
}

#[test]
fn an_earlier_event_of_the_alert_goes_first_whichever_node_asks() {
    let db = TestDb::start();
    let (mut a, mut b) = (
        node(&db, "a", Duration::from_secs(10)),
        node(&db, "b", Duration::from_secs(10)),
    );
    let first = accepted(&mut a, "cpu", "#c");
    let second = accepted(&mut b, "cpu", "#c");
    not_yet(wait(b.claim(request(second, "#c", "cpu"))).unwrap());
    granted(wait(a.claim(request(first, "#c", "cpu"))).unwrap());
}

#[test]
fn a_claim_whose_lease_ran_out_goes_to_another_node_and_renewal_keeps_it() {
    let db = TestDb::start();
    let lease = Duration::from_millis(400);
    let (mut a, b) = (node(&db, "a", lease), node(&db, "b", lease));
    let x = accepted(&mut a, "x", "#c");
    granted(wait(a.claim(request(x, "#c", "x"))).unwrap());
    // Renewed: still a's.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(150));
        wait(a.renew()).unwrap();
    }
    not_yet(wait(b.claim(request(x, "#c", "x"))).unwrap());
    // a stops renewing (it died): once the lease ran out, b takes it.
    std::thread::sleep(lease + Duration::from_millis(100));
    granted(wait(b.claim(request(x, "#c", "x"))).unwrap());
}

#[test]
fn a_window_collected_on_two_nodes_counts_once_and_closes_once() {
    let db = TestDb::start();
    let lease = Duration::from_secs(10);
    let (mut a, mut b) = (node(&db, "a", lease), node(&db, "b", lease));
    for n in 0..3 {
        let store = if n == 1 { &mut b } else { &mut a };
        store
            .collect(
                "agg",
                Collected::from_alert(&alert(&format!("e{n}"))).unwrap(),
            )
            .unwrap();
        commit(store).unwrap();
    }
    let seen_a = wait(a.windows()).unwrap()["agg"].clone();
    let seen_b = wait(b.windows()).unwrap()["agg"].clone();
    assert_eq!((seen_a.count, seen_b.count), (3, 3));
    let sum = vec![(alert("sum"), options("#x"))];
    a.emit("agg", &seen_a, sum.clone(), vec![]).unwrap();
    b.emit("agg", &seen_b, sum, vec![]).unwrap();
    commit(&mut a).unwrap();
    commit(&mut b).unwrap();
    let pending = wait(a.lists(&[Listing::Pending], None, 10)).unwrap();
    assert_eq!(
        pending.counts[0],
        (Listing::Pending, 1),
        "one event emitted"
    );
}

fn a_nul_in_an_option_is_kept_without_failing_the_others_in_its_transaction(store: &mut dyn Store) {
    let odd = store.accept(&alert("a"), options("#x\0y")).unwrap();
    let plain = store.accept(&alert("b"), options("#x")).unwrap();
    commit(store).unwrap();
    let came = arrivals(store, 2);
    assert_eq!(came.len(), 2, "both taken");
    let claim = wait(store.claim(request(odd.id, "#x\0y", "a"))).unwrap();
    granted(claim);
    store
        .finish(Finished::new(
            odd.id,
            Status::Failed,
            "channel #x\0y not found",
            1,
        ))
        .unwrap();
    store
        .finish(Finished::new(plain.id, Status::Delivered, "#x 1.1", 1))
        .unwrap();
    commit(store).unwrap();
    assert_eq!(wait(store.resendable(None)).unwrap().len(), 1);
}

#[test]
fn while_the_database_is_away_writes_fail_whole_and_it_says_why_then_recovers() {
    let db = TestDb::start();
    let mut a = node(&db, "a", Duration::from_secs(10));
    accepted(&mut a, "before", "#c");
    db.stop_immediately();
    a.accept(&alert("during"), options("#c")).unwrap();
    assert!(
        commit(&mut a).is_err(),
        "not durable while the database is away"
    );
    let why = a.trouble().expect("degraded");
    assert!(!why.contains("password"), "{why}");
    assert!(wait(a.claim(request(1, "#c", "x"))).is_err());
    db.start_again();
    // Reconnected with backoff (at most five seconds apart).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        a.accept(&alert("after"), options("#c")).unwrap();
        if commit(&mut a).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the store came back");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(a.trouble(), None, "no longer degraded");
    let lists = wait(a.lists(&[], None, 1)).unwrap();
    assert_eq!(
        lists.counts[0],
        (Listing::Pending, 2),
        "before and after; nothing of what failed"
    );
}

/// What `sql` reads from the store's database, as text.
fn rows(db: &TestDb, sql: &str) -> Vec<Vec<String>> {
    let url = postgres::connect::StoreUrl::parse(&db.url()).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = url.connect().await.unwrap();
            let messages = client.simple_query(sql).await.unwrap();
            messages
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).unwrap_or_default().to_string())
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        })
}

/// The fencing token a granted claim carries.
fn fence_of(claim: Claim) -> (Option<AlertMessage>, u64) {
    match claim {
        Claim::Granted {
            message,
            fence: Some(Fence::Claim(generation)),
            ..
        } => (message.map(|m| *m), generation),
        other => panic!("expected the claim granted, got {other:?}"),
    }
}

/// Node `a`'s lease runs out while its request is out; `b` claims the
/// alert (a later generation) and ends it. `a`'s ending, written late,
/// changes nothing: the alert stays as `b` ended it, its message stays
/// `b`'s, and `a`'s send is kept as a duplicate naming both `ts`.
#[test]
fn an_ending_under_a_claim_that_passed_to_another_node_is_fenced_off() {
    let db = TestDb::start();
    let (mut a, mut b) = (
        node(&db, "a", Duration::from_millis(300)),
        node(&db, "b", Duration::from_millis(300)),
    );
    let x = accepted(&mut a, "x", "#c");
    let (_, first) = fence_of(wait(a.claim(request(x, "#c", "x"))).unwrap());
    // Past the lease and the channel's interval.
    std::thread::sleep(Duration::from_millis(1_100));
    let (_, second) = fence_of(wait(b.claim(request(x, "#c", "x"))).unwrap());
    assert!(second > first, "each claim a later generation");
    let key = alert_key("x", &options("#c"));
    let ended = |ts: &str, fence: u64| Finished {
        fence: Some(Fence::Claim(fence)),
        ..Finished::new(x, Status::Delivered, &format!("CC {ts}"), 1).remembering(
            &key,
            false,
            "",
            Some("CC"),
            Some(ts),
        )
    };
    b.finish(ended("2.2", second)).unwrap();
    commit(&mut b).unwrap();
    a.finish(ended("1.1", first)).unwrap();
    commit(&mut a).unwrap();
    let kept = wait(a.message(&key)).unwrap().expect("kept");
    assert_eq!(
        kept.ts, "2.2",
        "the late ending never re-points the message"
    );
    let lists = wait(a.lists(&[Listing::Finished], None, 10)).unwrap();
    let Entry::Finished(f) = &lists.pages[0].1.items[0] else {
        panic!("{lists:?}")
    };
    assert_eq!(f.detail, "CC 2.2", "the alert ended as b ended it");
    let dups = rows(&db, "SELECT node, detail, kept FROM duplicates");
    assert_eq!(dups.len(), 1, "{dups:?}");
    assert_eq!(dups[0][0], "a");
    assert_eq!(dups[0][1], "CC 1.1");
    assert!(dups[0][2].contains("CC 2.2"), "{dups:?}");
    // Listed as what it is, from either node (`GET /spool`, `spool`).
    let lists = wait(b.lists(&Listing::ALL, None, 10)).unwrap();
    let count = lists.counts.iter().find(|(l, _)| *l == Listing::Duplicates);
    assert_eq!(count, Some(&(Listing::Duplicates, 1)), "{lists:?}");
    let listed = lists
        .pages
        .iter()
        .find(|(l, _)| *l == Listing::Duplicates)
        .map(|(_, p)| p.items.clone());
    let Some(
        [Entry::Duplicate {
            alert,
            node,
            late,
            kept,
            ..
        }],
    ) = listed.as_deref()
    else {
        panic!("one duplicate listed: {listed:?}")
    };
    assert_eq!((*alert, node.as_str(), late.as_str()), (x, "a", "CC 1.1"));
    assert!(
        kept.as_deref().is_some_and(|k| k.contains("CC 2.2")),
        "{kept:?}"
    );
    // A release under the passed claim does not touch the alert's retry.
    let y = accepted(&mut a, "y", "#d");
    let (_, old) = fence_of(wait(a.claim(request(y, "#d", "y"))).unwrap());
    // Past the lease and the channel's interval.
    std::thread::sleep(Duration::from_millis(1_100));
    fence_of(wait(b.claim(request(y, "#d", "y"))).unwrap());
    a.released(Release {
        id: y,
        channel: crate::serve::channels::pacing_key("", "#d"),
        left: Some(SystemTime::now()),
        retry: Some(Retry {
            wait: Duration::from_secs(60),
            retry_after: false,
            rate_limited: false,
        }),
        attempts: 9,
        fence: Some(Fence::Claim(old)),
    })
    .unwrap();
    commit(&mut a).unwrap();
    let claim = rows(
        &db,
        "SELECT attempts::text, claimed_by FROM alerts WHERE id = (SELECT max(id) FROM alerts)",
    );
    assert_eq!(claim[0], ["0", "b"], "still b's claim, untouched");
}

/// The owner of a channel claims its alerts without writing anything (a
/// read tells it the alert's state and its key's message), fenced by the
/// channel's slot. Once its lease ran out and another node took the
/// slots, it claims nothing more there, and its late ending is fenced
/// off: the alert stays as the new owner ended it, the late send kept as
/// a duplicate; its late release leaves the new owner's channel alone.
#[test]
fn the_owner_of_a_channel_claims_without_a_write_and_is_fenced_by_the_slot() {
    let db = TestDb::start();
    let lease = Duration::from_millis(300);
    let mut a = node(&db, "a", lease);
    assert_eq!(
        wait(a.renew()).unwrap(),
        ALL_SLOTS,
        "alone, a owns every slot"
    );
    let x = accepted(&mut a, "x", "#c");
    let slot = slot_of(&crate::serve::channels::pacing_key("", "#c"));
    let claim = wait(a.claim(request(x, "#c", "x"))).unwrap();
    assert!(
        matches!(claim, Claim::Granted { fence: Some(Fence::Slot(s)), .. } if s == slot),
        "{claim:?}"
    );
    let claimed = rows(
        &db,
        &format!("SELECT claimed_by IS NULL, claim_gen::text FROM alerts WHERE id = {x}"),
    );
    assert_eq!(claimed[0], ["t", "0"], "nothing written for the claim");
    // `a` stops renewing; `b` takes the slots once a's lease ran out.
    let mut b = node(&db, "b", lease);
    std::thread::sleep(lease + Duration::from_millis(100));
    assert_eq!(
        wait(b.renew()).unwrap(),
        ALL_SLOTS,
        "b takes the run-out slots"
    );
    assert!(
        not_yet(wait(a.claim(request(x, "#c", "x"))).unwrap()) > Duration::ZERO,
        "a's lease ran out: it sends nothing"
    );
    let claim = wait(b.claim(request(x, "#c", "x"))).unwrap();
    assert!(matches!(
        claim,
        Claim::Granted {
            fence: Some(Fence::Slot(_)),
            ..
        }
    ));
    let key = alert_key("x", &options("#c"));
    let ended = |ts: &str| Finished {
        fence: Some(Fence::Slot(slot)),
        ..Finished::new(x, Status::Delivered, &format!("CC {ts}"), 1).remembering(
            &key,
            false,
            "",
            Some("CC"),
            Some(ts),
        )
    };
    let let_go = |retry| Release {
        id: x,
        channel: crate::serve::channels::pacing_key("", "#c"),
        left: Some(SystemTime::now()),
        retry,
        attempts: 1,
        fence: Some(Fence::Slot(slot)),
    };
    b.finish(ended("2.2")).unwrap();
    b.released(let_go(None)).unwrap();
    commit(&mut b).unwrap();
    let paced = "SELECT coalesce(blocked_until_ms, 0)::text FROM channels WHERE pacing_key = ' #c'";
    let blocked_before = rows(&db, paced);
    a.finish(ended("1.1")).unwrap();
    a.released(let_go(Some(Retry {
        wait: Duration::from_secs(600),
        retry_after: true,
        rate_limited: true,
    })))
    .unwrap();
    commit(&mut a).unwrap();
    assert_eq!(wait(a.message(&key)).unwrap().expect("kept").ts, "2.2");
    let dups = rows(&db, "SELECT node, detail FROM duplicates");
    assert_eq!(dups, [["a", "CC 1.1"]], "the late send kept as a duplicate");
    assert_eq!(rows(&db, paced), blocked_before, "b's channel left alone");
}

/// Two nodes, `a` and `b`, on `db`, that file each alert under its
/// channel's slot (the planner's way, by the `channel` option), the slots
/// shared out between them; and a channel of each one's slots.
fn two_filing_nodes(db: &TestDb) -> (PgStore, PgStore, String, String) {
    let lease = Duration::from_secs(10);
    let key = |channel: &str| crate::serve::channels::pacing_key("", channel);
    let filing: ChannelOf = std::sync::Arc::new(|_, _, options: &[(String, String)]| {
        let channel = options.iter().find(|(k, _)| k == "channel")?;
        Some(crate::serve::channels::pacing_key("", &channel.1))
    });
    let (mut a, mut b) = (node(db, "a", lease), node(db, "b", lease));
    a.plan_by(filing.clone());
    b.plan_by(filing);
    wait(a.renew()).unwrap();
    wait(b.renew()).unwrap();
    let mine = wait(a.renew()).unwrap();
    let theirs = wait(b.renew()).unwrap();
    assert_eq!((mine & theirs, mine | theirs), (0, ALL_SLOTS), "shared out");
    let of = |slots: Slots| {
        (0..)
            .map(|n| format!("#c{n}"))
            .find(|c| owns(slots, &key(c)))
            .unwrap()
    };
    let (ca, cb) = (of(mine), of(theirs));
    (a, b, ca, cb)
}

/// Each alert is filed under its channel's slot as it is accepted, and a
/// node is given only the alerts of the slots it owns, whichever node
/// accepted them: another node's are not read, decoded or queued there.
/// A slot it comes to own (its owner left) brings that slot's pending
/// alerts, those the other node accepted and its own.
#[test]
fn a_node_is_given_only_its_own_slots_alerts_and_a_slot_it_takes_brings_its_pending_ones() {
    let db = TestDb::start();
    let (mut a, mut b, ca, cb) = two_filing_nodes(&db);
    let key = |channel: &str| crate::serve::channels::pacing_key("", channel);
    let ids = |got: Vec<Pending>| {
        let mut ids: Vec<u64> = got.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids
    };
    let sorted = |mut v: Vec<u64>| {
        v.sort_unstable();
        v
    };
    // Each node accepts an alert for each channel.
    let a_for_a = accepted(&mut a, "1", &ca);
    let a_for_b = accepted(&mut a, "2", &cb);
    let b_for_b = accepted(&mut b, "3", &cb);
    let b_for_a = accepted(&mut b, "4", &ca);
    let filed = rows(
        &db,
        &format!("SELECT slot::text, planned_channel FROM alerts WHERE id = {a_for_b}"),
    );
    assert_eq!(filed[0], [slot_of(&key(&cb)).to_string(), key(&cb)]);
    // A barrier each, from the other node: arrivals come in the order of
    // their origin's commits, so nothing of that node's comes after it.
    let a_barrier = accepted(&mut b, "5", &ca);
    let b_barrier = accepted(&mut a, "6", &cb);
    assert_eq!(
        ids(arrivals(&mut a, 3)),
        sorted(vec![a_for_a, b_for_a, a_barrier]),
        "a is given its slots' alerts only"
    );
    let given_b = arrivals(&mut b, 3);
    // Each with its place in the order the database accepted them, its
    // own (from its commit) as the others' (read): a key's events are
    // sent in that order, whichever node heard of which first.
    for p in &given_b {
        let seq = rows(
            &db,
            &format!("SELECT seq::text FROM alerts WHERE id = {}", p.id),
        );
        assert_eq!(seq[0][0], p.seq.to_string(), "{p:?}");
    }
    assert_eq!(
        ids(given_b),
        sorted(vec![b_for_b, a_for_b, b_barrier]),
        "b is given its slots' alerts only"
    );
    std::thread::sleep(Duration::from_millis(200));
    let given = a.arrivals();
    assert!(given.is_empty(), "nothing else: {given:?}");
    // b leaves: its slots' pending alerts come to a, whoever accepted them.
    wait(b.leave()).unwrap();
    assert_eq!(wait(a.renew()).unwrap(), ALL_SLOTS);
    assert_eq!(
        ids(arrivals(&mut a, 3)),
        sorted(vec![a_for_b, b_for_b, b_barrier]),
        "b's slots' pending alerts, and no other"
    );
}

/// A node's arrivals are named by their slots, so only their owners
/// look, and a burst of its commits in few notifications: at once after a
/// quiet moment, then at most one every [`notices::SPACING`], the last of
/// the burst named by one sent after it. Heard as a node hears them.
#[test]
fn a_nodes_commits_are_notified_by_slot_spaced_and_none_lost() {
    use crate::store::postgres::notices;
    let db = TestDb::start();
    let (mut a, mut b, ca, cb) = two_filing_nodes(&db);
    let key = |channel: &str| crate::serve::channels::pacing_key("", channel);
    let slot_b: Slots = 1 << slot_of(&key(&cb));
    // What a says, as every node hears it: when, and the slots named.
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Instant, Slots)>::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = postgres::connect::StoreUrl::parse(&db.url()).unwrap();
    let hearing = heard.clone();
    let _listening = runtime
        .block_on(url.listen(
            notices::ARRIVALS_CHANNEL,
            move |payload: &str| {
                let (from, slots) = notices::read(payload);
                if from.starts_with("a/") {
                    hearing.lock().unwrap().push((Instant::now(), slots));
                }
            },
            || {},
        ))
        .unwrap();
    let said = || heard.lock().unwrap().clone();
    let slot_a: Slots = 1 << slot_of(&key(&ca));
    // Alerts of a's own slots: named too (a slot may be passing to
    // another node as a commits), though a hands them to itself.
    let own: Vec<u64> = (0..3)
        .map(|n| accepted(&mut a, &format!("own{n}"), &ca))
        .collect();
    assert_eq!(
        ids_of(arrivals(&mut a, 3)),
        own,
        "a's own, from its commits"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while said().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(said()[0].1, slot_a, "a's own slot named");
    std::thread::sleep(Duration::from_millis(300));
    assert!(b.arrivals().is_empty(), "b does not look");
    // A burst for b's slot: the first commit notifies at once, the rest
    // are named at most once a spacing, the last after the burst.
    let started = Instant::now();
    let mut burst = Vec::new();
    let mut last_began = started;
    for n in 0..12 {
        last_began = Instant::now();
        burst.push(accepted(&mut a, &format!("burst{n}"), &cb));
    }
    let took = started.elapsed();
    let mut got = ids_of(arrivals(&mut b, burst.len()));
    got.sort_unstable();
    assert_eq!(got, burst, "b is given every alert of the burst");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !said().iter().any(|(at, _)| *at >= last_began) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let told: Vec<(Instant, Slots)> = said()
        .into_iter()
        .filter(|(at, _)| *at >= started)
        .collect();
    assert!(
        told.iter().all(|(_, slots)| *slots == slot_b),
        "only b's slot named: {told:?}"
    );
    assert!(
        told.iter().any(|(at, _)| *at >= last_began),
        "the burst's last commit is named after it began: {told:?}"
    );
    let most = (took.as_millis() / notices::SPACING.as_millis()) as usize + 2;
    assert!(
        (1..=most).contains(&told.len()),
        "{} notifications for 12 commits over {took:?} (at most {most})",
        told.len()
    );
}

/// A node that gives a slot back at a renewal (another node joined)
/// while a request is out on one of its channels holds that channel and
/// alert until the request's release: the next owner does not send it
/// meanwhile, and the request's ending is taken, though the slot is no
/// longer the sender's. No duplicate.
#[test]
fn a_slot_given_back_with_a_request_out_is_held_until_its_ending() {
    let db = TestDb::start();
    let lease = Duration::from_secs(10);
    let mut a = node(&db, "a", lease);
    assert_eq!(wait(a.renew()).unwrap(), ALL_SLOTS);
    // A channel in the upper half of the slots: the half a gives back.
    let channel = (0..)
        .map(|n| format!("#c{n}"))
        .find(|c| slot_of(&crate::serve::channels::pacing_key("", c)) >= 32)
        .unwrap();
    let slot = slot_of(&crate::serve::channels::pacing_key("", &channel));
    let x = accepted(&mut a, "x", &channel);
    let claim = wait(a.claim(request(x, &channel, "x"))).unwrap();
    assert!(matches!(claim, Claim::Granted { .. }), "{claim:?}");
    let b = node(&db, "b", lease);
    wait(b.renew()).unwrap();
    let kept = wait(a.renew()).unwrap();
    assert_eq!(kept.count_ones(), 32, "a gives half back");
    assert_eq!(kept & (1 << slot), 0, "the channel's slot among them");
    assert_ne!(wait(b.renew()).unwrap() & (1 << slot), 0, "b takes it");
    assert!(
        not_yet(wait(b.claim(request(x, &channel, "x"))).unwrap()) > Duration::ZERO,
        "b waits for a's request"
    );
    let key = alert_key("x", &options(&channel));
    a.finish(Finished {
        fence: Some(Fence::Slot(slot)),
        ..Finished::new(x, Status::Delivered, "CC 1.1", 1).remembering(
            &key,
            false,
            "",
            Some("CC"),
            Some("1.1"),
        )
    })
    .unwrap();
    a.released(Release {
        id: x,
        channel: crate::serve::channels::pacing_key("", &channel),
        left: Some(SystemTime::now()),
        retry: None,
        attempts: 1,
        fence: Some(Fence::Slot(slot)),
    })
    .unwrap();
    commit(&mut a).unwrap();
    assert_eq!(
        wait(b.claim(request(x, &channel, "x"))).unwrap(),
        Claim::Gone
    );
    assert!(rows(&db, "SELECT * FROM duplicates").is_empty());
    let held = rows(
        &db,
        "SELECT count(*)::text FROM channels WHERE held_by IS NOT NULL",
    );
    assert_eq!(held, [["0"]], "the hold let go with the release");
}

/// No lock orders the nodes' inserts: an alert whose transaction took
/// its `seq` first but committed after another node's higher one is
/// still heard of, by every node (each origin's alerts are read past its
/// own last `seq`).
#[test]
fn an_alert_committed_after_a_higher_seq_of_another_node_still_arrives() {
    let db = TestDb::start();
    let mut a = node(&db, "a", Duration::from_secs(10));
    let mut reader = node(&db, "reader", Duration::from_secs(10));
    // Whatever is pending at the reader's start arrives first.
    assert!(arrived_alone(&mut reader));
    let url = postgres::connect::StoreUrl::parse(&db.url()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut slow = runtime.block_on(url.connect()).unwrap();
    // A node's group commit, as `writes` makes it, left open: its seq is
    // taken, its commit not made.
    let open = runtime.block_on(async {
        let tx = slow.transaction().await.unwrap();
        tx.batch_execute(
            "INSERT INTO origins (origin, seen_ms) VALUES ('slow/1', 0);
             INSERT INTO alerts (id, accepted_ms, alert, options, alert_key, origin)
                 VALUES (999999999, 0, '{\"id\":\"late\"}', '[]', 'late', 'slow/1')",
        )
        .await
        .unwrap();
        tx
    });
    let b = accepted(&mut a, "b", "#c");
    let came = arrivals(&mut reader, 1);
    assert_eq!(came.iter().map(|p| p.id).collect::<Vec<_>>(), [b]);
    runtime.block_on(open.commit()).unwrap();
    let came = arrivals(&mut reader, 1);
    assert_eq!(
        came.iter().map(|p| p.id).collect::<Vec<_>>(),
        [999_999_999],
        "the lower seq committed later arrives"
    );
    assert!(arrived_alone(&mut reader), "and once");
}

/// A process that lost its name (it could not renew it, and another
/// process took it) claims and renews nothing more.
#[test]
fn a_node_whose_name_was_taken_claims_nothing() {
    let db = TestDb::start();
    let a = node(&db, "n", Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(400));
    // `a` renewed nothing for a lease: another process takes the name.
    let mut b = node(&db, "n", Duration::from_millis(300));
    let x = accepted(&mut b, "x", "#c");
    let refused = wait(a.claim(request(x, "#c", "x")))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("took this node's name `n`"), "{refused}");
    assert!(wait(a.renew()).is_err(), "nor renews");
    assert!(
        a.trouble()
            .is_some_and(|t| t.contains("took this node's name")),
        "it says so in /healthz, for good"
    );
    assert!(
        a.outage().ongoing(),
        "its failures are not logged one by one"
    );
    granted(wait(b.claim(request(x, "#c", "x"))).unwrap());
}

fn a_click_is_recorded_once_by_its_identity(store: &mut dyn Store) {
    let mark = |by: &str, at: u64| Mark {
        by: by.into(),
        at,
        silence: None,
    };
    let key = alert_key("x", &options("#c"));
    let t = store.accept(&alert("x"), options("#c")).unwrap();
    commit(store).unwrap();
    let ended = Finished::new(t.id, Status::Delivered, "CC 1.1", 1).remembering(
        &key,
        false,
        "",
        Some("CC"),
        Some("1.1"),
    );
    store.finish(ended).unwrap();
    commit(store).unwrap();
    assert!(!wait(store.clicked("t1/1.5")).unwrap());
    store
        .act(&key, Act::Silence(mark("U1", 10)), "t1/1.5")
        .unwrap();
    commit(store).unwrap();
    assert!(wait(store.clicked("t1/1.5")).unwrap());
    // The same click again, written anyway (two nodes at once): no effect.
    store.act(&key, Act::Unsilence, "t2/1.6").unwrap();
    store
        .act(&key, Act::Silence(mark("U9", 99)), "t1/1.5")
        .unwrap();
    commit(store).unwrap();
    let m = wait(store.message(&key)).unwrap().unwrap();
    assert_eq!(
        m.silenced, None,
        "the repeat did not silence it again: {m:?}"
    );
}

/// The pending count is the store's, the same on every node, and counted
/// by one: the node owning slot 0 counts and keeps it, the other reads
/// what it kept and counts nothing. When the keeper leaves, the node that
/// takes slot 0 counts.
#[test]
fn the_pending_count_is_counted_by_the_owner_of_slot_0_and_read_by_the_others() {
    let db = TestDb::start();
    let (mut a, mut b, ca, cb) = two_filing_nodes(&db);
    accepted(&mut a, "1", &ca);
    accepted(&mut a, "2", &cb);
    accepted(&mut b, "3", &cb);
    let a_keeps = wait(a.renew()).unwrap() & 1 != 0;
    let (keeper, other) = if a_keeps { (a, b) } else { (b, a) };
    let (keeper_name, other_name) = if a_keeps { ("a", "b") } else { ("b", "a") };
    let counted_by = || {
        rows(
            &db,
            "SELECT counted_by, counted_ms::text FROM pending_counts",
        )
        .into_iter()
        .next()
        .map(|r| (r[0].clone(), r[1].clone()))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(keeper.pending_count() == 3
        && other.pending_count() == 3
        && counted_by().is_some_and(|(by, _)| by == keeper_name))
    {
        assert!(
            Instant::now() < deadline,
            "both nodes show 3 pending, counted by {keeper_name}: {} and {}, {:?}",
            keeper.pending_count(),
            other.pending_count(),
            counted_by()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Over the next counts, only the keeper counts; the other reads.
    let (_, first) = counted_by().unwrap();
    let watched = Instant::now() + COUNT_LOOK;
    while Instant::now() < watched {
        let (by, _) = counted_by().unwrap();
        assert_eq!(by, keeper_name, "only the keeper counts");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, later) = counted_by().unwrap();
    assert_ne!(first, later, "the keeper kept counting");
    assert!(other.oldest_pending_age().is_some(), "the oldest's age too");
    // The keeper leaves: its slots, slot 0 among them, pass to the other,
    // which counts from then on.
    wait(keeper.leave()).unwrap();
    assert_eq!(wait(other.renew()).unwrap(), ALL_SLOTS);
    let mut other = other;
    accepted(&mut other, "4", &ca);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(other.pending_count() == 4 && counted_by().is_some_and(|(by, _)| by == other_name)) {
        assert!(
            Instant::now() < deadline,
            "{other_name} counts once it owns slot 0: {}, {:?}",
            other.pending_count(),
            counted_by()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Long enough to see two of the keeper's counts (one every 2 s).
const COUNT_LOOK: Duration = Duration::from_millis(4_500);
