//! Kapacitor's alert JSON for the host: the core's decoder
//! (`slack_alert_handler::alert_json`, fuzzed there) and the conversion to
//! the WIT `alert-event`.

use anyhow::{anyhow, Result};
use slack_alert_handler::event;

use alert_handler_host::{AlertEvent, FieldValue, Level, Timestamp};

/// Decodes one alert. Errors name the field that is wrong.
pub fn decode(text: &str) -> Result<AlertEvent> {
    slack_alert_handler::alert_json::decode(text)
        .map(to_wit)
        .map_err(|e| anyhow!(e))
}

fn level(l: event::Level) -> Level {
    match l {
        event::Level::Ok => Level::Ok,
        event::Level::Info => Level::Info,
        event::Level::Warning => Level::Warning,
        event::Level::Critical => Level::Critical,
    }
}

fn to_wit(e: event::AlertEvent) -> AlertEvent {
    AlertEvent {
        id: e.id,
        message: e.message,
        details: e.details,
        time: Timestamp {
            seconds: e.time.0,
            nanoseconds: e.time.1,
        },
        duration: e.duration,
        level: level(e.level),
        previous_level: e.previous_level.map(level),
        recoverable: e.recoverable,
        topic: e.topic,
        name: e.name,
        task_name: e.task_name,
        group: e.group,
        tags: e.tags,
        fields: e
            .fields
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    event::FieldValue::Float(f) => FieldValue::Float(f),
                    event::FieldValue::Integer(i) => FieldValue::Integer(i),
                    event::FieldValue::String(s) => FieldValue::String(s),
                    event::FieldValue::Boolean(b) => FieldValue::Boolean(b),
                };
                (k, v)
            })
            .collect(),
        context: e.context,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_into_the_wit_event() {
        let e = decode(r#"{"id":"cpu","message":"m","time":"2024-05-01T10:00:00.5Z","level":"warning","previousLevel":"OK",
            "data":{"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","idle"],"values":[["t",12.5]]}]}}"#)
        .unwrap();
        assert!(matches!(e.level, Level::Warning));
        assert!(matches!(e.previous_level, Some(Level::Ok)));
        assert_eq!(e.time.nanoseconds, 500_000_000);
        assert!(matches!(e.fields[0], (ref k, FieldValue::Float(f)) if k == "idle" && f == 12.5));
        let e = decode(r#"{"id":"x","message":"m","time":"1970-01-01T00:00:00Z","level":"LOUD"}"#)
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("`level`: unknown level \"LOUD\""),
            "{e:#}"
        );
    }
}
