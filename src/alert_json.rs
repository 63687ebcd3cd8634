//! Kapacitor's alert as its HTTP `post` and TCP handlers send it (one JSON
//! object), decoded into an [`AlertEvent`]. Hosts use it (the guest takes
//! the WIT `alert-event`); it lives here so it is fuzzed with the rest of
//! the core.

use serde::Deserialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::event::{AlertEvent, FieldValue, Level};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostAlert {
    id: String,
    message: String,
    #[serde(default)]
    details: String,
    time: String,
    #[serde(default)]
    duration: i64,
    level: String,
    #[serde(default)]
    data: Data,
    #[serde(default)]
    previous_level: Option<String>,
    #[serde(default)]
    recoverable: bool,
    // Not in Kapacitor's post body; accepted so an alert file can carry them.
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    task_name: Option<String>,
    #[serde(default)]
    group: Option<String>,
    /// Not Kapacitor's: more for templates from where the alert came in
    /// (Alertmanager's annotations, labels, URLs), dotted keys to strings.
    #[serde(default)]
    context: serde_json::Map<String, Value>,
}

#[derive(Deserialize, Default)]
struct Data {
    #[serde(default)]
    series: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    name: String,
    #[serde(default)]
    tags: serde_json::Map<String, Value>,
    #[serde(default)]
    columns: Vec<String>,
    #[serde(default)]
    values: Vec<Vec<Value>>,
}

/// Decodes one alert. The error names the field that is wrong, as
/// `alert JSON: ...`.
/// An RFC 3339 time (Alertmanager's `endsAt`) as Unix seconds.
pub fn unix_seconds(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

pub fn decode(text: &str) -> Result<AlertEvent, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("alert JSON: {e}"))?;
    if !value.is_object() {
        return Err(format!(
            "alert JSON: an alert is a JSON object, not {}",
            json_kind(&value)
        ));
    }
    let alert: PostAlert = serde_json::from_value(value).map_err(|e| format!("alert JSON: {e}"))?;
    let time = OffsetDateTime::parse(&alert.time, &Rfc3339).map_err(|e| {
        format!(
            "alert JSON: `time` \"{}\" is not an RFC 3339 time: {e}",
            alert.time
        )
    })?;
    let level = level_of(&alert.level, "level")?;
    let previous_level = match alert.previous_level.as_deref() {
        None | Some("") => None,
        Some(l) => Some(level_of(l, "previousLevel")?),
    };
    let series = alert.data.series.into_iter().next();
    let (name, tags, fields) = match series {
        Some(s) => {
            let tags = s
                .tags
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect::<Vec<_>>();
            let row = s.values.last().cloned().unwrap_or_default();
            let fields = s
                .columns
                .into_iter()
                .zip(row)
                .filter(|(column, _)| column != "time")
                .filter_map(|(column, value)| field_value(value).map(|v| (column, v)))
                .collect();
            (s.name, tags, fields)
        }
        None => (String::new(), Vec::new(), Vec::new()),
    };
    let group = alert.group.unwrap_or_else(|| {
        if tags.is_empty() {
            "nil".to_string()
        } else {
            tags.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    });
    Ok(AlertEvent {
        id: alert.id,
        message: alert.message,
        details: alert.details,
        time: (time.unix_timestamp(), time.nanosecond()),
        duration: alert.duration,
        level,
        previous_level,
        recoverable: alert.recoverable,
        topic: alert.topic,
        name,
        task_name: alert.task_name.unwrap_or_default(),
        group,
        tags,
        fields,
        context: alert
            .context
            .into_iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                (k, v)
            })
            .collect(),
    })
}

/// A level as Kapacitor parses it (case-insensitively), the error naming
/// the field.
fn level_of(text: &str, field: &str) -> Result<Level, String> {
    text.parse()
        .map_err(|e| format!("alert JSON: `{field}`: {e}"))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn field_value(value: Value) -> Option<FieldValue> {
    match value {
        Value::Bool(b) => Some(FieldValue::Boolean(b)),
        Value::String(s) => Some(FieldValue::String(s)),
        Value::Number(n) => n
            .as_i64()
            .map(FieldValue::Integer)
            .or_else(|| n.as_f64().map(FieldValue::Float)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"id":"id","message":"message","details":"details","time":"1970-01-01T00:00:00Z","duration":0,"level":"CRITICAL","data":{"series":[{"name":"alert","columns":["time","value"],"values":[["1970-01-01T00:00:00Z",1]]}]},"previousLevel":"OK","recoverable":true}"#;

    #[test]
    fn kapacitors_post_body_decodes() {
        let e = decode(SPEC).unwrap();
        assert_eq!(e.id, "id");
        assert_eq!(e.message, "message");
        assert_eq!(e.level, Level::Critical);
        assert_eq!(e.previous_level, Some(Level::Ok));
        assert_eq!(e.name, "alert");
        assert_eq!(e.group, "nil");
        assert_eq!(e.fields.len(), 1);
        assert!(matches!(e.fields[0], (ref k, FieldValue::Integer(1)) if k == "value"));
        assert_eq!(e.time, (0, 0));
    }

    #[test]
    fn tags_make_the_group_and_fields_keep_their_types() {
        let e = decode(r#"{"id":"cpu:host=a","message":"m","time":"2024-05-01T10:00:00.5+02:00","level":"warning",
            "data":{"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","usage_idle","ok","note"],
            "values":[["t",12.5,true,"x"]]}]}}"#)
        .unwrap();
        assert_eq!(e.group, "host=a");
        assert_eq!(e.time.1, 500_000_000);
        assert!(matches!(e.fields[0].1, FieldValue::Float(f) if f == 12.5));
        assert!(matches!(e.fields[1].1, FieldValue::Boolean(true)));
        assert!(matches!(e.fields[2].1, FieldValue::String(ref s) if s == "x"));
    }

    #[test]
    fn bad_input_names_the_field() {
        let e = decode(r#"{"id":"x","message":"m","time":"yesterday","level":"OK"}"#).unwrap_err();
        assert!(e.contains("`time` \"yesterday\""), "{e}");
        let e =
            decode(r#"{"id":"x","message":"m","time":"1970-01-01T00:00:00Z","level":"SEVERE"}"#)
                .unwrap_err();
        assert!(e.contains("`level`: unknown level \"SEVERE\""), "{e}");
        let e = decode(r#"{"id":"x","time":"1970-01-01T00:00:00Z","level":"OK"}"#).unwrap_err();
        assert!(e.contains("missing field `message`"), "{e}");
    }
}
