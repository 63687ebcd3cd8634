//! Kapacitor's `aggregate` handler, read off its `services/alert/handlers.go`
//! (see `docs/spec/kapacitor-aggregate.md`): the events an aggregate handler
//! collects over an interval become one event, published to its topic:
//!
//! - `id`: the handler's id; `message`: its `message` template over
//!   `{{ .Count }}` (how many events) and `{{ .Interval }}` (the interval as
//!   written);
//! - `level`: the highest of the events'; `time`: the latest; `duration`:
//!   the longest; `details`: their messages, one per line; `data.series`:
//!   their series, in order.
//!
//! An interval in which no event came publishes nothing. Pure: the window's
//! state is the spool's, and the clock is the caller's.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::duration;

/// An `aggregate` handler's options, as its handler file gives them
/// (`interval`, `topic`, `message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateSpec {
    /// As written (`24h`), for `{{ .Interval }}`.
    pub interval_text: String,
    /// As the host waits it: the interval divided by the time scale.
    pub interval: Duration,
    /// Where the aggregated event is published.
    pub topic: String,
    /// The message template (`{{ .Count }}`, `{{ .Interval }}`), checked by
    /// [`check_template`].
    pub message: String,
}

/// Kapacitor's default aggregate message.
pub const DEFAULT_MESSAGE: &str = "Received {{ .Count }} events in the last {{ .Interval }}.";

/// What an aggregate keeps of one event it collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collected {
    pub level: String,
    /// RFC 3339, as the alert had it.
    pub time: String,
    /// The same time, for ordering: seconds and nanoseconds since the epoch.
    #[serde(default)]
    pub at: (i64, u32),
    /// Nanoseconds.
    pub duration: i64,
    pub message: String,
    /// The alert's `data.series`.
    #[serde(default)]
    pub series: Vec<Value>,
}

impl Collected {
    /// Keeps what an aggregate needs of an alert in Kapacitor's JSON.
    pub fn from_alert(alert: &str) -> Result<Collected, String> {
        let event = crate::alert_json::decode(alert).map_err(|e| format!("{e:#}"))?;
        let raw: Value = serde_json::from_str(alert).map_err(|e| e.to_string())?;
        Ok(Collected {
            level: level_name(rank_of(raw["level"].as_str().unwrap_or("OK"))).to_string(),
            time: raw["time"].as_str().unwrap_or_default().to_string(),
            at: (event.time.seconds, event.time.nanoseconds),
            duration: event.duration,
            message: event.message,
            series: raw["data"]["series"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        })
    }
}

fn rank_of(level: &str) -> u8 {
    match level.to_ascii_uppercase().as_str() {
        "CRITICAL" => 3,
        "WARNING" => 2,
        "INFO" => 1,
        _ => 0,
    }
}

fn level_name(rank: u8) -> &'static str {
    ["OK", "INFO", "WARNING", "CRITICAL"][usize::from(rank.min(3))]
}

/// How many events a window keeps whole (for `details` and `data.series`);
/// past it only the count, the highest level, the latest time and the
/// longest duration grow, and `details` ends with how many were left out.
pub const KEEP: usize = 1_000;

/// An aggregate handler's open interval: when it started and what came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// When its first event came, in milliseconds since the Unix epoch:
    /// the interval ends `interval` later.
    pub start_ms: u64,
    pub count: u64,
    /// The highest level so far.
    pub level: String,
    /// The latest event's time (RFC 3339) and its ordering key.
    pub time: String,
    pub at: (i64, u32),
    /// The longest duration, nanoseconds.
    pub duration: i64,
    /// The first [`KEEP`] events.
    pub kept: Vec<Collected>,
}

impl Window {
    pub fn open(start_ms: u64) -> Window {
        Window {
            start_ms,
            count: 0,
            level: "OK".into(),
            time: String::new(),
            at: (i64::MIN, 0),
            duration: 0,
            kept: Vec::new(),
        }
    }

    pub fn add(&mut self, event: Collected) {
        self.count += 1;
        if rank_of(&event.level) > rank_of(&self.level) {
            self.level = event.level.clone();
        }
        if event.at > self.at {
            self.at = event.at;
            self.time = event.time.clone();
        }
        self.duration = self.duration.max(event.duration);
        if self.kept.len() < KEEP {
            self.kept.push(event);
        }
    }

    /// When the interval ends.
    pub fn ends_ms(&self, spec: &AggregateSpec) -> u64 {
        self.start_ms + spec.interval.as_millis() as u64
    }
}

/// The placeholders a message template may use.
const PLACEHOLDERS: [&str; 2] = [".Count", ".Interval"];

/// Refuses a template with a placeholder other than `{{ .Count }}` and
/// `{{ .Interval }}`, naming it.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "a `{{` is not closed by `}}`".to_string())?;
        let inside = after[..close].trim();
        if !PLACEHOLDERS.contains(&inside) {
            return Err(format!(
                "`{inside}` is not available here: an aggregate's message has {{{{ .Count }}}} and {{{{ .Interval }}}}"
            ));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

/// The template with its placeholders filled in.
pub fn render(template: &str, count: usize, interval: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        match after[..close].trim() {
            ".Count" => out.push_str(&count.to_string()),
            ".Interval" => out.push_str(interval),
            other => out.push_str(other),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// The event an aggregate publishes for its window, in Kapacitor's alert
/// JSON, or `None` when no event came.
pub fn emit(handler: &str, spec: &AggregateSpec, window: &Window) -> Option<String> {
    if window.count == 0 {
        return None;
    }
    let mut details: Vec<String> = window.kept.iter().map(|e| e.message.clone()).collect();
    let left_out = window.count - window.kept.len() as u64;
    if left_out > 0 {
        details.push(format!("… and {left_out} more"));
    }
    let series: Vec<Value> = window.kept.iter().flat_map(|e| e.series.clone()).collect();
    let interval = go_duration_text(&spec.interval_text);
    Some(
        json!({
            "id": handler,
            "message": render(&spec.message, window.count as usize, &interval),
            "details": details.join("\n"),
            "time": window.time,
            "duration": window.duration,
            "level": window.level,
            "data": {"series": series},
            "topic": spec.topic,
        })
        .to_string(),
    )
}

/// `{{ .Interval }}` as Go prints a `time.Duration` (`24h0m0s`), from the
/// interval as written.
fn go_duration_text(written: &str) -> String {
    match duration::parse_go(written) {
        Some(nanos) => slack_alert_handler::timefmt::go_duration(nanos as i64),
        None => written.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AggregateSpec {
        AggregateSpec {
            interval_text: "24h".into(),
            interval: Duration::from_secs(24),
            topic: "500-errors-24h".into(),
            message: "{{ .Count }} 500 errors last 24 hours.".into(),
        }
    }

    fn alert(level: &str, time: &str, duration: i64, message: &str) -> Collected {
        Collected::from_alert(&format!(
            r#"{{"id":"errors:500","message":"{message}","time":"{time}","duration":{duration},"level":"{level}","data":{{"series":[{{"name":"errors","tags":{{"500":"true"}},"columns":["time","count"],"values":[["{time}",1]]}}]}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn forty_two_events_become_the_documentations_message() {
        let events: Vec<Collected> = (0..42)
            .map(|n| {
                alert(
                    if n == 7 { "WARNING" } else { "INFO" },
                    &format!("2026-11-26T10:{:02}:00Z", n % 60),
                    n * 1_000_000_000,
                    &format!("500 error {n}"),
                )
            })
            .collect();
        let mut window = Window::open(0);
        for e in events {
            window.add(e);
        }
        let out: Value =
            serde_json::from_str(&emit("500-errors-24h", &spec(), &window).unwrap()).unwrap();
        assert_eq!(out["id"], "500-errors-24h");
        assert_eq!(out["message"], "42 500 errors last 24 hours.");
        assert_eq!(out["level"], "WARNING");
        assert_eq!(out["time"], "2026-11-26T10:41:00Z");
        assert_eq!(out["duration"], 41_000_000_000i64);
        assert_eq!(out["details"].as_str().unwrap().lines().count(), 42);
        assert_eq!(out["data"]["series"].as_array().unwrap().len(), 42);
        // It is an alert serve takes.
        crate::alert_json::decode(&out.to_string()).unwrap();
    }

    #[test]
    fn an_empty_interval_publishes_nothing() {
        assert_eq!(emit("x", &spec(), &Window::open(0)), None);
    }

    #[test]
    fn a_huge_window_keeps_its_count_but_not_every_event() {
        let mut window = Window::open(0);
        for n in 0..(KEEP + 5) {
            window.add(alert("INFO", "2026-11-26T10:00:00Z", 0, &format!("e{n}")));
        }
        let out: Value = serde_json::from_str(&emit("x", &spec(), &window).unwrap()).unwrap();
        assert_eq!(
            out["message"],
            format!("{} 500 errors last 24 hours.", KEEP + 5)
        );
        assert!(out["details"].as_str().unwrap().ends_with("… and 5 more"));
        assert_eq!(window.kept.len(), KEEP);
    }

    #[test]
    fn templates_have_count_and_interval_only() {
        assert_eq!(
            render(
                "Received {{.Count}} events in the last {{ .Interval }}.",
                3,
                "24h0m0s"
            ),
            "Received 3 events in the last 24h0m0s."
        );
        assert!(check_template("{{ .Count }} in {{ .Interval }}").is_ok());
        assert!(check_template("{{ .Level }}")
            .unwrap_err()
            .contains("`.Level`"));
        assert!(check_template("{{ .Count")
            .unwrap_err()
            .contains("not closed"));
        assert_eq!(go_duration_text("24h"), "24h0m0s");
    }
}
