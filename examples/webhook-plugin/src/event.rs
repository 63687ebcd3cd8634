//! One alert event as the handler sees it: the WIT `alert-event`, as plain
//! Rust, with the fields this handler puts in a request.

use serde::{Serialize, Serializer};

/// An alert's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Info,
    Warning,
    Critical,
}

impl Level {
    /// Kapacitor's spelling: `OK`, `INFO`, `WARNING`, `CRITICAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    }

    /// Reads a level in any case (`ok`, `Critical`).
    pub fn parse(text: &str) -> Option<Level> {
        [Level::Ok, Level::Info, Level::Warning, Level::Critical]
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The value of one field of the alert's data.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Float(f64),
    Integer(i64),
    String(String),
    Boolean(bool),
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::Float(f) if f.is_finite() => s.serialize_f64(*f),
            // JSON has no NaN or infinities: Go's spelling of them.
            FieldValue::Float(f) if f.is_nan() => s.serialize_str("NaN"),
            FieldValue::Float(f) if *f > 0.0 => s.serialize_str("+Inf"),
            FieldValue::Float(_) => s.serialize_str("-Inf"),
            FieldValue::Integer(i) => s.serialize_i64(*i),
            FieldValue::String(text) => s.serialize_str(text),
            FieldValue::Boolean(b) => s.serialize_bool(*b),
        }
    }
}

/// One alert event.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub id: String,
    pub message: String,
    pub details: String,
    /// Seconds and nanoseconds since the Unix epoch.
    pub time: (i64, u32),
    /// Nanoseconds in a non-OK state.
    pub duration: i64,
    pub level: Level,
    pub name: String,
    pub task_name: String,
    pub group: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, FieldValue)>,
    /// Dotted keys (`annotations.summary`) and their text.
    pub context: Vec<(String, String)>,
}

impl AlertEvent {
    /// An event with only an id, a message and a level, at the epoch.
    pub fn new(id: &str, message: &str, level: Level) -> AlertEvent {
        AlertEvent {
            id: id.to_string(),
            message: message.to_string(),
            details: String::new(),
            time: (0, 0),
            duration: 0,
            level,
            name: String::new(),
            task_name: String::new(),
            group: String::new(),
            tags: Vec::new(),
            fields: Vec::new(),
            context: Vec::new(),
        }
    }
}

/// `2026-11-26T18:21:56Z`, with the nanoseconds when there are any
/// (RFC 3339 in UTC, as Go's `time.RFC3339Nano`). Written out here rather
/// than adding a date crate to the component.
pub fn rfc3339(seconds: i64, nanoseconds: u32) -> String {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let nanos = nanoseconds.min(999_999_999);
    let fraction = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{fraction}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_181_316, 0), "2025-11-26T18:21:56Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339(1_500_000_000, 120_000_000),
            "2017-07-14T02:40:00.12Z"
        );
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59Z");
        let _ = rfc3339(i64::MIN, u32::MAX);
        let _ = rfc3339(i64::MAX, 0);
    }

    #[test]
    fn levels_read_in_any_case() {
        assert_eq!(Level::parse("ok"), Some(Level::Ok));
        assert_eq!(Level::parse("Critical"), Some(Level::Critical));
        assert_eq!(Level::parse("fatal"), None);
    }
}
