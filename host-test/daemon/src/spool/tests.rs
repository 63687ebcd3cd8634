//! The spool's unit tests: records survive reopening, compaction and torn
//! writes; tables stay bounded.

use std::fs::OpenOptions;
use std::io::Write;

use super::state::Messages;
use super::*;
use crate::store::{alert_key, with_previous, Status};

#[test]
fn accepted_alerts_survive_a_reopen_until_finished() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let a = spool
        .accept("{\"id\":\"a\"}", vec![("channel".into(), "#x".into())])
        .unwrap();
    let b = spool.accept("{\"id\":\"b\"}", vec![]).unwrap();
    spool
        .finish(Finished::new(a, Status::Delivered, "ts 1.2", 1))
        .unwrap();
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        spool.pending().iter().map(|p| p.id).collect::<Vec<_>>(),
        [b]
    );
    assert_eq!(
        spool.finished().next(),
        Some(&Finished::new(a, Status::Delivered, "ts 1.2", 1))
    );
    // Ids keep increasing across restarts.
    let mut spool = spool;
    assert!(spool.accept("{}", vec![]).unwrap() > b);
}

#[test]
fn a_torn_last_line_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool.accept("{\"id\":\"a\"}", vec![]).unwrap();
    drop(spool);
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join("journal.jsonl"))
        .unwrap();
    file.write_all(b"{\"op\":\"accept\",\"id\":2,\"al").unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.pending().len(), 1);
}

#[test]
fn the_spool_is_bounded_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Room for two of these, and the compacted journal's first line.
    let mut spool = Spool::open(dir.path(), 400).unwrap();
    let first = spool.accept(&"x".repeat(100), vec![]).unwrap();
    spool.accept(&"y".repeat(100), vec![]).unwrap();
    match spool.accept(&"z".repeat(100), vec![]) {
        Err(StoreError::JournalFull { limit }) => assert_eq!(limit, 400),
        other => panic!("expected full, got {other:?}"),
    }
    // Finishing one makes room again (the journal is compacted).
    spool
        .finish(Finished::new(first, Status::Failed, "channel_not_found", 1))
        .unwrap();
    spool.accept(&"z".repeat(100), vec![]).unwrap();
    assert_eq!(spool.pending().len(), 2);
}

fn delivered(spool: &mut Spool, key: &str, recovered: bool, ts: &str) {
    let id = spool.accept("{}", vec![]).unwrap();
    let done = Finished::new(id, Status::Delivered, ts, 1).remembering(
        key,
        recovered,
        "alerts",
        Some("C1"),
        Some(ts),
    );
    spool.finish(done).unwrap();
}

fn kept(spool: &Spool) -> Vec<(String, String)> {
    spool
        .messages()
        .into_iter()
        .map(|m| (m.key, m.ts))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn an_alert_key_is_its_id_and_sorted_options_without_the_previous_message() {
    let a = alert_key("cpu", &pairs(&[("channel", "#a"), ("username", "x")]));
    let b = alert_key(
        "cpu",
        &pairs(&[("username", "x"), ("previous-ts", "1.1"), ("channel", "#a")]),
    );
    assert_eq!(a, b);
    assert_eq!(a, r##"["cpu",[["channel","#a"],["username","x"]]]"##);
    assert_ne!(a, alert_key("cpu", &pairs(&[("channel", "#b")])));
    assert_ne!(alert_key("cpu", &[]), alert_key("mem", &[]));
}

#[test]
fn the_previous_message_options_replace_any_given() {
    let options = with_previous(
        &pairs(&[("channel", "#a"), ("previous-ts", "1.1")]),
        "C9",
        "2.2",
    );
    assert_eq!(
        options,
        pairs(&[
            ("channel", "#a"),
            ("previous-channel-id", "C9"),
            ("previous-ts", "2.2")
        ])
    );
}

#[test]
fn a_firing_delivery_is_remembered_and_a_recovery_forgets_it() {
    let done = |status| Finished::new(1, status, "", 1);
    let fired = done(Status::Delivered).remembering("k", false, "w", Some("C1"), Some("1.1"));
    assert_eq!(fired.message.as_ref().map(|m| m.ts.as_str()), Some("1.1"));
    assert_eq!(fired.forget, None);
    let recovered = done(Status::Delivered).remembering("k", true, "w", Some("C1"), Some("1.1"));
    assert_eq!(
        (recovered.message, recovered.forget.as_deref()),
        (None, Some("k"))
    );
    // Nothing to remember: a failure, or a webhook (no channel id, no ts).
    assert_eq!(
        done(Status::Failed).remembering("k", false, "w", Some("C1"), Some("1.1")),
        done(Status::Failed)
    );
    assert_eq!(
        done(Status::Delivered).remembering("k", false, "w", None, None),
        done(Status::Delivered)
    );
}

#[test]
fn alert_messages_survive_a_reopen_and_a_forget_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    delivered(&mut spool, "a", false, "1.1");
    delivered(&mut spool, "b", false, "2.2");
    delivered(&mut spool, "a", false, "1.3");
    delivered(&mut spool, "b", true, "2.4");
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(kept(&spool), [("a".to_string(), "1.3".to_string())]);
    assert_eq!(spool.message("a").unwrap().channel_id, "C1");
    assert_eq!(spool.message("b"), None);
}

#[test]
fn alert_messages_survive_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 4096).unwrap();
    delivered(&mut spool, "a", false, "1.1");
    delivered(&mut spool, "b", false, "2.2");
    let pending = spool.accept("{\"id\":\"p\"}", vec![]).unwrap();
    spool.compact().unwrap();
    let journal = std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap();
    assert!(!journal.contains("\"op\":\"done\""), "compacted: {journal}");
    assert!(journal.contains("\"op\":\"message\""), "{journal}");
    drop(spool);
    let mut spool = Spool::open(dir.path(), 4096).unwrap();
    assert_eq!(spool.pending_ids(), [pending]);
    assert_eq!(
        kept(&spool),
        [("a".into(), "1.1".into()), ("b".into(), "2.2".into())]
    );
    // Compacted again, still in age order: `a` replaced is now newest.
    delivered(&mut spool, "a", false, "1.5");
    spool.compact().unwrap();
    drop(spool);
    let spool = Spool::open(dir.path(), 4096).unwrap();
    assert_eq!(
        kept(&spool),
        [("b".into(), "2.2".into()), ("a".into(), "1.5".into())]
    );
}

#[test]
fn a_torn_done_record_leaves_the_alert_pending_and_the_next_record_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    delivered(&mut spool, "a", false, "1.1");
    let id = spool.accept("{}", vec![]).unwrap();
    drop(spool);
    let done = Finished::new(id, Status::Delivered, "", 1).remembering(
        "a",
        false,
        "alerts",
        Some("C1"),
        Some("1.9"),
    );
    let line = serde_json::to_string(&Record::Done(done)).unwrap();
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join("journal.jsonl"))
        .unwrap();
    file.write_all(&line.as_bytes()[..line.len() - 5]).unwrap();
    drop(file);
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.pending_ids(), [id]);
    assert_eq!(kept(&spool), [("a".into(), "1.1".into())]);
    // The torn tail is gone: the next record is read back.
    spool
        .finish(Finished::new(id, Status::Delivered, "", 1).remembering(
            "a",
            false,
            "alerts",
            Some("C1"),
            Some("1.7"),
        ))
        .unwrap();
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert!(spool.pending_ids().is_empty());
    assert_eq!(kept(&spool), [("a".into(), "1.7".into())]);
}

#[test]
fn reading_a_spool_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool.accept("{}", vec![]).unwrap();
    drop(spool);
    let path = dir.path().join("journal.jsonl");
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"{\"op\":\"acc").unwrap();
    let before = std::fs::read(&path).unwrap();
    let spool = Spool::open_read_only(dir.path()).unwrap();
    assert_eq!(spool.pending().len(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_journal_from_before_alert_messages_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("journal.jsonl"),
        concat!(
            r#"{"op":"accept","id":1,"alert":"{}","options":[]}"#,
            "\n",
            r#"{"op":"accept","id":2,"alert":"{}","options":[]}"#,
            "\n",
            r##"{"op":"done","id":1,"status":"delivered","detail":"#c 1.1"}"##,
            "\n",
        ),
    )
    .unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.pending_ids(), [2]);
    assert_eq!(
        spool.finished().cloned().collect::<Vec<_>>(),
        [Finished::new(1, Status::Delivered, "#c 1.1", 0)]
    );
    assert!(spool.messages().is_empty());
}

#[test]
fn the_message_table_drops_the_oldest_past_its_bounds() {
    let message = |n: usize| AlertMessage {
        key: format!("k{n}"),
        workspace: "w".into(),
        channel_id: "C1".into(),
        ts: format!("1.{n:06}"),
        ..AlertMessage::default()
    };
    let mut table = Messages::new(u64::MAX);
    for n in 0..=MAX_MESSAGES {
        table.remember(message(n));
    }
    assert_eq!(table.by_key.len(), MAX_MESSAGES);
    assert!(!table.by_key.contains_key("k0"));
    assert!(table.by_key.contains_key("k1"));
    // A quarter of the spool's limit bounds it too: room for two here.
    let size = Messages::record_size(&message(1));
    let mut table = Messages::new(size * 2);
    for n in 1..=3 {
        table.remember(message(n));
    }
    let keys: Vec<&str> = table.oldest_first().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["k2", "k3"]);
    assert_eq!(table.bytes, size * 2);
    table.forget("k2");
    assert_eq!(table.bytes, size);
}

#[test]
fn a_torn_tail_then_an_accepted_alert_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let a = spool.accept("{\"id\":\"a\"}", vec![]).unwrap();
    drop(spool);
    let path = dir.path().join("journal.jsonl");
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"{\"op\":\"accept\",\"id\":2,\"al").unwrap();
    drop(file);
    // What a crash would do next: open, acknowledge one more, die.
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let b = spool.accept("{\"id\":\"b\"}", vec![]).unwrap();
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.pending_ids(), [a, b]);
}

#[test]
fn a_damaged_line_in_the_middle_stops_the_start_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool.accept("{\"id\":\"a\"}", vec![]).unwrap();
    drop(spool);
    let path = dir.path().join("journal.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text += "{\"op\":\"accept\",\"id\":2,\"alert\":\"x\"\n";
    std::fs::write(&path, &text).unwrap();
    // As the last line it is a write the crash cut short: cut off.
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.pending_ids(), [1]);
    spool.accept("{\"id\":\"c\"}", vec![]).unwrap();
    drop(spool);
    assert!(!std::fs::read_to_string(&path).unwrap().contains("\"x\"\n"));
    // In the middle, records were lost: refuse, naming the line.
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.insert(1, "garbage".to_string());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = Spool::open(dir.path(), 1 << 20).err().expect("refused");
    let shown = format!("{e:#}");
    assert!(shown.contains("line 2 is damaged"), "{shown}");
}

#[test]
fn ids_are_never_given_twice_across_compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    // A small limit, so finishing the last pending alert compacts.
    let mut spool = Spool::open(dir.path(), 400).unwrap();
    let path = dir.path().join("journal.jsonl");
    // Until a compaction leaves no record naming any id given out.
    let last = loop {
        let last = spool.accept(&"x".repeat(60), vec![]).unwrap();
        spool
            .finish(Finished::new(last, Status::Delivered, "", 1))
            .unwrap();
        let journal = std::fs::read_to_string(&path).unwrap();
        if !journal.contains("accept") || last >= 10 {
            break last;
        }
    };
    drop(spool);
    let journal = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        journal,
        format!("{{\"op\":\"ids\",\"next\":{}}}\n", last + 1)
    );
    let mut spool = Spool::open(dir.path(), 400).unwrap();
    assert!(spool.accept("{}", vec![]).unwrap() > last);
}

#[test]
fn the_finished_history_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool.keep_finished(3);
    for _ in 0..10 {
        let id = spool.accept("{}", vec![]).unwrap();
        spool
            .finish(Finished::new(id, Status::Delivered, "", 1))
            .unwrap();
    }
    let ids: Vec<u64> = spool.finished().map(|f| f.id).collect();
    assert_eq!(ids, [8, 9, 10]);
}

#[test]
fn a_failed_alert_is_resent_once_across_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let failed = spool
        .accept("{\"id\":\"gone\"}", vec![("channel".into(), "#x".into())])
        .unwrap();
    let delivered = spool.accept("{}", vec![]).unwrap();
    spool
        .finish(Finished::new(
            failed,
            Status::Failed,
            "channel_not_found",
            1,
        ))
        .unwrap();
    spool
        .finish(Finished::new(delivered, Status::Delivered, "#x 1.2", 1))
        .unwrap();
    assert_eq!(
        spool.failed_alerts().map(|f| f.id).collect::<Vec<_>>(),
        [failed]
    );
    // Nothing pending: compacted; the failed alert survives it.
    spool.compact().unwrap();
    drop(spool);
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let kept: Vec<_> = spool.failed_alerts().cloned().collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].detail, "channel_not_found");
    assert!(matches!(
        spool.resend(&[delivered]),
        Err(StoreError::NotFailed { id }) if id == delivered
    ));
    let resent = spool.resend(&[failed]).unwrap();
    let (old, new) = resent[0];
    assert_eq!(old, failed);
    assert!(new > delivered, "a new id");
    let pending = spool.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].alert, "{\"id\":\"gone\"}");
    assert_eq!(
        pending[0].options,
        [("channel".to_string(), "#x".to_string())]
    );
    drop(spool);
    // Resent is recorded: not resendable again after a restart.
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.failed_alerts().count(), 0);
    assert!(spool.resend(&[failed]).is_err());
    assert_eq!(spool.pending().len(), 1);
}

#[test]
fn one_process_writes_a_spool_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Spool::open(dir.path(), 1 << 20).unwrap();
    let e = Spool::open(dir.path(), 1 << 20).err().unwrap().to_string();
    assert!(e.contains("in use by another process"), "{e}");
    // Reading it is still fine.
    assert!(Spool::open_read_only(dir.path()).is_ok());
}

fn collected(message: &str) -> Collected {
    Collected::from_alert(&format!(
        r#"{{"id":"errors","message":"{message}","time":"2026-11-26T10:00:00Z","level":"INFO"}}"#
    ))
    .unwrap()
}

#[test]
fn an_aggregates_window_survives_reopen_and_compaction_and_closes_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    for n in 0..3 {
        spool
            .collect_unsynced("agg", collected(&format!("e{n}")))
            .unwrap();
        spool.commit_now().unwrap();
    }
    let start = spool.windows()["agg"].start_ms;
    drop(spool);
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.windows()["agg"].count, 3);
    assert_eq!(spool.windows()["agg"].start_ms, start);
    spool.compact().unwrap();
    drop(spool);
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.windows()["agg"].count, 3, "kept by compaction");
    let (ids, _) = spool
        .emit_unsynced(
            "agg",
            vec![(
                "{\"id\":\"agg\"}".into(),
                vec![("workspace".into(), "w".into())],
            )],
            vec![("other".into(), collected("chained"))],
        )
        .unwrap();
    spool.commit_now().unwrap();
    assert_eq!(ids.len(), 1);
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert!(!spool.windows().contains_key("agg"), "closed");
    assert_eq!(spool.windows()["other"].count, 1);
    let pending = spool.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, ids[0]);
    assert_eq!(
        pending[0].options,
        [("workspace".to_string(), "w".to_string())]
    );
}

/// Switches that make the journal's appends, fsyncs or cuts fail with
/// ENOSPC, as a full disk does.
#[derive(Clone, Default)]
struct Disk {
    appends: Arc<AtomicBool>,
    syncs: Arc<AtomicBool>,
    cuts: Arc<AtomicBool>,
}

impl Disk {
    fn faults(&self) -> Faults {
        let disk = self.clone();
        Arc::new(move |op| {
            let fails = match op {
                DiskOp::Append { .. } | DiskOp::Compact { .. } => &disk.appends,
                DiskOp::Sync => &disk.syncs,
                DiskOp::Cut => &disk.cuts,
            };
            fails
                .load(Ordering::SeqCst)
                .then(|| std::io::Error::from_raw_os_error(28))
        })
    }

    fn open(&self, dir: &Path) -> Spool {
        Spool::open_with(
            dir,
            Settings {
                faults: Some(self.faults()),
                ..Settings::new(1 << 20)
            },
        )
        .unwrap()
    }
}

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn journal(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("journal.jsonl")).unwrap()
}

#[test]
fn a_failed_append_takes_nothing_and_leaves_no_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::default();
    let mut spool = disk.open(dir.path());
    let kept = spool.accept("{\"id\":\"kept\"}", vec![]).unwrap();
    let before = journal(dir.path());
    disk.appends.store(true, Ordering::SeqCst);
    let e = spool.accept("{\"id\":\"refused\"}", vec![]).unwrap_err();
    assert!(e.to_string().contains("No space left"), "{e}");
    // Half of the batch reached the file and was cut off again.
    assert_eq!(journal(dir.path()), before);
    assert_eq!(
        spool.pending_ids(),
        [kept],
        "a refused alert is not pending"
    );
    let trouble = spool.trouble().expect("says why").to_string();
    assert!(
        trouble.contains("disk is full") && trouble.contains("free space"),
        "{trouble}"
    );
    // Space comes back: the next write works, with no restart.
    disk.appends.store(false, Ordering::SeqCst);
    let later = spool.accept("{\"id\":\"later\"}", vec![]).unwrap();
    assert!(spool.trouble().is_none());
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.pending_ids(), [kept, later]);
    assert!(!journal(dir.path()).contains("refused"));
}

#[test]
fn a_failed_fsync_cuts_its_records_off_and_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::default();
    let mut spool = disk.open(dir.path());
    let kept = spool.accept("{\"id\":\"kept\"}", vec![]).unwrap();
    let before = journal(dir.path());
    disk.syncs.store(true, Ordering::SeqCst);
    assert!(spool.accept("{\"id\":\"refused\"}", vec![]).is_err());
    assert!(spool
        .finish(Finished::new(kept, Status::Delivered, "#c 1.1", 1))
        .is_err());
    assert_eq!(journal(dir.path()), before);
    assert_eq!(spool.pending_ids(), [kept], "the ending did not count");
    assert_eq!(spool.finished().len(), 0);
    disk.syncs.store(false, Ordering::SeqCst);
    spool
        .finish(Finished::new(kept, Status::Delivered, "#c 1.1", 1))
        .unwrap();
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert!(spool.pending_ids().is_empty());
    assert_eq!(spool.finished().len(), 1);
}

#[test]
fn a_cut_that_fails_is_made_before_anything_more_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::default();
    let mut spool = disk.open(dir.path());
    let kept = spool.accept("{\"id\":\"kept\"}", vec![]).unwrap();
    disk.appends.store(true, Ordering::SeqCst);
    disk.cuts.store(true, Ordering::SeqCst);
    assert!(spool.accept("{\"id\":\"refused\"}", vec![]).is_err());
    // The half-written batch is still there...
    assert!(journal(dir.path()).lines().count() == 2);
    disk.appends.store(false, Ordering::SeqCst);
    // ...and nothing is appended behind it while it cannot be cut.
    assert!(spool.accept("{\"id\":\"also-refused\"}", vec![]).is_err());
    disk.cuts.store(false, Ordering::SeqCst);
    let later = spool.accept("{\"id\":\"later\"}", vec![]).unwrap();
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.pending_ids(), [kept, later]);
}

#[test]
fn a_failed_compaction_leaves_the_old_journal() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::default();
    let mut spool = Spool::open_with(
        dir.path(),
        Settings {
            faults: Some(disk.faults()),
            ..Settings::new(600)
        },
    )
    .unwrap();
    let a = spool.accept(&"a".repeat(100), vec![]).unwrap();
    spool
        .finish(Finished::new(a, Status::Delivered, "", 1))
        .unwrap();
    let b = spool.accept(&"b".repeat(100), vec![]).unwrap();
    let before = journal(dir.path());
    disk.appends.store(true, Ordering::SeqCst);
    // Past the limit: compaction is needed, and fails.
    for _ in 0..3 {
        let _ = spool.accept(&"c".repeat(100), vec![]);
    }
    assert_eq!(journal(dir.path()), before);
    assert!(!dir.path().join("journal.jsonl.new").exists());
    disk.appends.store(false, Ordering::SeqCst);
    let c = spool.accept(&"c".repeat(100), vec![]).unwrap();
    drop(spool);
    assert_eq!(Spool::open(dir.path(), 600).unwrap().pending_ids(), [b, c]);
}

#[test]
fn the_finished_history_kept_holds_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let n = KEEP_FINISHED as u64 + 50;
    for id in 1..=n {
        text += &format!("{{\"op\":\"accept\",\"id\":{id},\"alert\":\"{{}}\",\"options\":[]}}\n");
        text +=
            &format!("{{\"op\":\"done\",\"id\":{id},\"status\":\"delivered\",\"detail\":\"\"}}\n");
    }
    std::fs::write(dir.path().join("journal.jsonl"), text).unwrap();
    let settings = Settings {
        keep_finished: 50_000,
        ..Settings::new(64 << 20)
    };
    let spool = Spool::open_with(dir.path(), settings).unwrap();
    assert_eq!(spool.finished().len() as u64, n);
}

/// `spool --dir` reads the journal as it is: a `serve` run with a larger
/// `--keep-finished` keeps more than the default, and showing it offline
/// must not drop the oldest of them.
#[test]
fn read_only_the_spool_shows_every_ending_its_journal_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let n = KEEP_FINISHED as u64 + 50;
    for id in 1..=n {
        text += &format!("{{\"op\":\"accept\",\"id\":{id},\"alert\":\"{{}}\",\"options\":[]}}\n");
        text +=
            &format!("{{\"op\":\"done\",\"id\":{id},\"status\":\"delivered\",\"detail\":\"\"}}\n");
    }
    std::fs::write(dir.path().join("journal.jsonl"), text).unwrap();
    let spool = Spool::open_read_only(dir.path()).unwrap();
    assert_eq!(spool.finished().len() as u64, n);
    assert_eq!(spool.finished().next().map(|f| f.id), Some(1), "the oldest");
    assert_eq!(spool.count(Listing::Finished) as u64, n);
}
