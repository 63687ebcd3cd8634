//! An alert's buttons, and what was done with them, as Block Kit: a
//! context line per mark (`Acknowledged by <@U…>` and when, `Silenced by
//! <@U…> until …`) and an actions block (`Acknowledge`, `Silence <d>` per
//! duration, or `Unsilence` while silenced). A recovered alert's message
//! has neither. Each button's `action_id` says what it asks
//! ([`crate::interaction`] reads it back) and its `value` names the alert:
//! the key the host keeps its message under, nothing secret.

use serde_json::{json, Value};

use crate::event::{AlertEvent, Level};
use crate::interaction::{ACKNOWLEDGE, SILENCE, UNSILENCE};
use crate::options::{HostOptions, Mark};
use crate::style::{Button, Style};
use crate::timefmt;

/// Slack's longest button `value`.
pub const MAX_VALUE: usize = 2_000;

/// The warning when the alert's key is too long to be a button's value:
/// the message goes without buttons.
pub const TOO_LONG: &str = "handler_buttons_dropped:alert_key_over_2000_characters";

/// The blocks for `event`'s marks and buttons (none for a recovery), and a
/// warning when the buttons had to be left out.
pub fn blocks(
    style: &Style,
    state: &HostOptions,
    event: &AlertEvent,
) -> (Vec<Value>, Option<&'static str>) {
    if event.level == Level::Ok {
        return (Vec::new(), None);
    }
    let value = if state.key.is_empty() {
        &event.id
    } else {
        &state.key
    };
    for_value(style, state, value)
}

/// The marks and buttons of a message whose buttons carry `value`: an
/// alert's (its key) or a storm's (the storm's key).
pub fn for_value(
    style: &Style,
    state: &HostOptions,
    value: &str,
) -> (Vec<Value>, Option<&'static str>) {
    let mut out = Vec::new();
    let mut lines = Vec::new();
    if let Some(Mark { by, at }) = &state.acknowledged {
        lines.push(format!("Acknowledged by <@{by}> {}", date(*at)));
    }
    if let Some(Mark { by, at }) = &state.silenced {
        lines.push(format!("Silenced by <@{by}> until {}", date(*at)));
    }
    if !lines.is_empty() {
        let elements: Vec<Value> = lines
            .into_iter()
            .map(|text| json!({"type": "mrkdwn", "text": text}))
            .collect();
        out.push(json!({"type": "context", "elements": elements}));
    }
    let Some(actions) = style.actions.as_ref().filter(|a| !a.is_empty()) else {
        return (out, None);
    };
    if value.chars().count() > MAX_VALUE {
        return (out, Some(TOO_LONG));
    }
    let button = |label: &str, action_id: &str| {
        json!({"type": "button", "text": {"type": "plain_text", "text": label},
            "action_id": action_id, "value": value})
    };
    let mut elements = Vec::new();
    if actions.contains(&Button::Acknowledge) && state.acknowledged.is_none() {
        elements.push(button("Acknowledge", ACKNOWLEDGE));
    }
    if actions.contains(&Button::Silence) {
        if state.silenced.is_some() {
            elements.push(button("Unsilence", UNSILENCE));
        } else {
            for (written, _) in style.silence_durations() {
                elements.push(button(
                    &format!("Silence {written}"),
                    &format!("{SILENCE}{written}"),
                ));
            }
        }
    }
    if !elements.is_empty() {
        out.push(json!({"type": "actions", "block_id": "alert-actions", "elements": elements}));
    }
    (out, None)
}

/// A time as Slack shows it in each reader's own time zone
/// (`<!date^…^{date_short_pretty} at {time}|…>`), with UTC as the
/// fallback.
fn date(seconds: i64) -> String {
    let fallback = timefmt::rfc3339(seconds, 0);
    format!("<!date^{seconds}^{{date_short_pretty}} at {{time}}|{fallback}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(actions: &str, durations: &str) -> Style {
        let mut s = Style::default();
        s.set("actions", actions, crate::template::Template::compile)
            .unwrap();
        s.set(
            "silence-durations",
            durations,
            crate::template::Template::compile,
        )
        .unwrap();
        s
    }

    fn firing() -> AlertEvent {
        AlertEvent::with_message("cpu high", Level::Critical)
    }

    fn labels(blocks: &[Value]) -> Vec<String> {
        blocks
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().unwrap().clone())
            .map(|e| e["text"]["text"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_firing_alert_gets_the_buttons_configured() {
        let state = HostOptions {
            key: "[\"cpu\",[]]".into(),
            ..HostOptions::default()
        };
        let (b, warning) = blocks(&style("acknowledge,silence", ""), &state, &firing());
        assert_eq!(warning, None);
        assert_eq!(labels(&b), ["Acknowledge", "Silence 1h", "Silence 1d"]);
        let ids: Vec<&str> = b[0]["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["acknowledge", "silence:1h", "silence:1d"]);
        assert_eq!(b[0]["elements"][0]["value"], "[\"cpu\",[]]");
        let (b, _) = blocks(&style("silence", "30m,4h"), &state, &firing());
        assert_eq!(labels(&b), ["Silence 30m", "Silence 4h"]);
    }

    #[test]
    fn marks_show_and_change_the_buttons() {
        let state = HostOptions {
            key: "k".into(),
            acknowledged: Some(Mark {
                by: "U1".into(),
                at: 1_764_460_800,
            }),
            silenced: Some(Mark {
                by: "U2".into(),
                at: 1_764_464_400,
            }),
            ..HostOptions::default()
        };
        let (b, _) = blocks(&style("acknowledge,silence", ""), &state, &firing());
        let context = b[0]["elements"].to_string();
        assert!(
            context.contains("Acknowledged by <@U1> <!date^1764460800^"),
            "{context}"
        );
        assert!(
            context.contains("Silenced by <@U2> until <!date^1764464400^"),
            "{context}"
        );
        assert!(context.contains("|2025-11-30T01:00:00Z>"), "{context}");
        assert_eq!(labels(&b), ["Unsilence"]);
    }

    #[test]
    fn a_recovery_has_neither_marks_nor_buttons() {
        let state = HostOptions {
            acknowledged: Some(Mark {
                by: "U1".into(),
                at: 1,
            }),
            ..HostOptions::default()
        };
        let ok = AlertEvent::with_message("fine", Level::Ok);
        assert_eq!(
            blocks(&style("acknowledge", ""), &state, &ok),
            (vec![], None)
        );
    }

    #[test]
    fn a_key_too_long_for_slack_drops_the_buttons_and_says_so() {
        let state = HostOptions {
            key: "k".repeat(MAX_VALUE + 1),
            ..HostOptions::default()
        };
        let (b, warning) = blocks(&style("acknowledge", ""), &state, &firing());
        assert!(b.is_empty());
        assert_eq!(warning, Some(TOO_LONG));
    }
}
