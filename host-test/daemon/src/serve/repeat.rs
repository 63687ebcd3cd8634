//! Repeats: Alertmanager sends a firing alert again every
//! `repeat_interval` and whenever its group changes. An event of such an
//! alert (one whose repeats are tracked: it came through `POST
//! /alertmanager`) at the level its last delivered event had is a repeat:
//! not sent, recorded as `repeat`. Unless what it shows changed and the
//! alert's message is refreshed in place (`on-recovery` `update`): then it
//! updates the message. A level change is a new event; a resolution is
//! delivered once.

use alert_handler_host::{AlertEvent, FieldValue};

use crate::store::AlertMessage;

/// Whether `event`'s repeats are tracked: Alertmanager's alerts (task
/// `alertmanager`, with the context its decoder gives them).
pub(super) fn tracked(event: &AlertEvent) -> bool {
    event.task_name == slack_alert_handler::alertmanager::TASK_NAME && !event.context.is_empty()
}

/// A digest of what an event shows: its message, details, tags, fields
/// and context (FNV-1a, as hex).
pub(super) fn digest(event: &AlertEvent) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut add = |text: &str| {
        for byte in text.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    add(&event.message);
    add(&event.details);
    for (k, v) in &event.tags {
        add(k);
        add(v);
    }
    for (k, v) in &event.fields {
        add(k);
        add(&match v {
            FieldValue::Float(f) => f.to_string(),
            FieldValue::Integer(i) => i.to_string(),
            FieldValue::String(s) => s.clone(),
            FieldValue::Boolean(b) => b.to_string(),
        });
    }
    for (k, v) in &event.context {
        add(k);
        add(v);
    }
    format!("{hash:016x}")
}

/// Why an event at `level` showing `digest` is a repeat of the alert's
/// `last` delivered event, or `None` when it is to be sent.
pub(super) fn repeat_of(
    last: Option<&AlertMessage>,
    level: &str,
    digest: &str,
    on_recovery: &str,
) -> Option<String> {
    let last = last?;
    if last.level.as_deref() != Some(level) {
        return None;
    }
    if last.digest.as_deref() == Some(digest) {
        return Some(format!(
            "a repeat of the alert's last event ({level}); nothing it shows changed"
        ));
    }
    if level != "OK" && on_recovery == "update" && !last.ts.is_empty() {
        return None;
    }
    Some(format!(
        "a repeat of the alert's last event ({level}); what it shows changed, but its message is refreshed only with on-recovery update (here {on_recovery})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(level: &str, digest: &str, ts: &str) -> AlertMessage {
        AlertMessage {
            key: "k".into(),
            workspace: String::new(),
            channel_id: "C1".into(),
            ts: ts.into(),
            level: Some(level.into()),
            digest: Some(digest.into()),
            ..AlertMessage::default()
        }
    }

    #[test]
    fn the_same_level_showing_the_same_is_a_repeat_whatever_the_mode() {
        for mode in ["new", "update", "thread"] {
            assert!(
                repeat_of(Some(&last("CRITICAL", "d1", "1.1")), "CRITICAL", "d1", mode).is_some()
            );
        }
    }

    #[test]
    fn a_change_shown_refreshes_only_an_updated_message() {
        let l = last("WARNING", "d1", "1.1");
        assert_eq!(repeat_of(Some(&l), "WARNING", "d2", "update"), None);
        assert!(repeat_of(Some(&l), "WARNING", "d2", "thread").is_some());
        assert!(repeat_of(Some(&l), "WARNING", "d2", "new").is_some());
        // A webhook's delivery names no message: nothing to refresh.
        assert!(repeat_of(Some(&last("WARNING", "d1", "")), "WARNING", "d2", "update").is_some());
    }

    #[test]
    fn a_level_change_or_a_first_event_is_sent_and_a_resolution_once() {
        assert_eq!(repeat_of(None, "CRITICAL", "d", "new"), None);
        assert_eq!(
            repeat_of(Some(&last("WARNING", "d", "1.1")), "CRITICAL", "d", "new"),
            None
        );
        assert_eq!(
            repeat_of(Some(&last("CRITICAL", "d", "1.1")), "OK", "d", "new"),
            None
        );
        assert!(repeat_of(Some(&last("OK", "d", "")), "OK", "d2", "update").is_some());
    }
}
