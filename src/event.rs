//! The alert event as plain Rust: what the WIT `alert-event` carries.

use std::fmt;
use std::str::FromStr;

/// An alert's severity, Kapacitor's four levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Info,
    Warning,
    Critical,
}

impl Level {
    /// The attachment colour Kapacitor gives the level: `WARNING` is
    /// `warning`, `CRITICAL` is `danger`, everything else `good`.
    pub fn color(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Critical => "danger",
            Level::Ok | Level::Info => "good",
        }
    }

    /// Kapacitor's spelling: `OK`, `INFO`, `WARNING`, `CRITICAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    /// Parses a level as Kapacitor does: case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "OK" => Ok(Level::Ok),
            "INFO" => Ok(Level::Info),
            "WARNING" => Ok(Level::Warning),
            "CRITICAL" => Ok(Level::Critical),
            _ => Err(format!(
                "unknown level \"{s}\": expected OK, INFO, WARNING or CRITICAL"
            )),
        }
    }
}

/// A typed field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Float(f64),
    Integer(i64),
    String(String),
    Boolean(bool),
}

/// One alert event.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub id: String,
    pub message: String,
    pub details: String,
    /// Seconds and nanoseconds since the Unix epoch.
    pub time: (i64, u32),
    /// Nanoseconds.
    pub duration: i64,
    pub level: Level,
    pub previous_level: Option<Level>,
    pub recoverable: bool,
    pub topic: Option<String>,
    pub name: String,
    pub task_name: String,
    pub group: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, FieldValue)>,
    /// More for templates from where the event came in (dotted keys:
    /// `annotations.summary`); Kapacitor's alerts have none.
    pub context: Vec<(String, String)>,
}

impl AlertEvent {
    /// An event with the given message and level and every other field
    /// empty, as the service test sends.
    pub fn with_message(message: &str, level: Level) -> Self {
        AlertEvent {
            id: String::new(),
            message: message.to_string(),
            details: String::new(),
            time: (0, 0),
            duration: 0,
            level,
            previous_level: None,
            recoverable: false,
            topic: None,
            name: String::new(),
            task_name: String::new(),
            group: "nil".to_string(),
            tags: Vec::new(),
            fields: Vec::new(),
            context: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_follow_kapacitor() {
        assert_eq!(Level::Ok.color(), "good");
        assert_eq!(Level::Info.color(), "good");
        assert_eq!(Level::Warning.color(), "warning");
        assert_eq!(Level::Critical.color(), "danger");
    }

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!("critical".parse::<Level>(), Ok(Level::Critical));
        assert_eq!("Warning".parse::<Level>(), Ok(Level::Warning));
        assert!("BAD"
            .parse::<Level>()
            .unwrap_err()
            .contains("unknown level \"BAD\""));
    }
}
