//! Prometheus Alertmanager's webhook (payload version `"4"`), for hosts:
//! each alert of a payload becomes one alert event, written as Kapacitor's
//! alert JSON ([`crate::alert_json`] decodes it), so everything after
//! intake (store, pacing, rendering, one message per alert) is the same
//! for both. Lives here, beside the Kapacitor decoder, so it is fuzzed
//! with the rest of the core. Errors name the field that is wrong, as
//! `alerts[2].labels: ...`.
//!
//! The event of an alert:
//! - `id`: its `fingerprint` (the same from firing to resolved), else a
//!   hash of its sorted labels;
//! - `level`: `OK` when its `status` is `resolved`, else from its severity
//!   label through [`Levels`] (an alert without one, or with one not
//!   mapped, gets [`Levels::default`]);
//! - `message`: the `summary` annotation, else `description`, else the
//!   `alertname` label; `details`: `description`;
//! - `time`: `startsAt`; `duration`: `endsAt − startsAt` once resolved
//!   (0 when `endsAt` is before `startsAt`, as when the clocks of
//!   Prometheus and Alertmanager differ: the alert is still taken, and a
//!   [`Warning`] names it and both times for the host to log);
//! - its labels as tags (the series' `name` is `alertname`), the group's
//!   labels as Kapacitor's `group` (`k=v,...`, `nil` when none);
//! - `truncatedAlerts` as a field when above zero (Alertmanager left that
//!   many alerts of the group out of the payload: `max_alerts`), said in
//!   the message too.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::event::Level;

/// The `taskName` of every alert made of Alertmanager's webhook: how the
/// host tells them (their labels are `labels.*` in `context`).
pub const TASK_NAME: &str = "alertmanager";

/// How an alert's labels give its level.
#[derive(Debug, Clone, PartialEq)]
pub struct Levels {
    /// The label read (`severity`).
    pub label: String,
    /// Its values, each with the level it means (compared without case).
    pub map: Vec<(String, Level)>,
    /// The level of a firing alert without the label, or with a value not
    /// in the map.
    pub default: Level,
}

impl Default for Levels {
    /// `severity`: `critical` → CRITICAL, `warning` → WARNING, `info` →
    /// INFO; anything else WARNING.
    fn default() -> Self {
        Levels {
            label: "severity".into(),
            map: vec![
                ("critical".into(), Level::Critical),
                ("warning".into(), Level::Warning),
                ("info".into(), Level::Info),
            ],
            default: Level::Warning,
        }
    }
}

impl Levels {
    /// The level a firing alert with `labels` has.
    fn of(&self, labels: &BTreeMap<String, String>) -> Level {
        labels
            .get(&self.label)
            .and_then(|v| {
                self.map
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(v))
                    .map(|(_, level)| *level)
            })
            .unwrap_or(self.default)
    }

    /// Parses `value=LEVEL,...` (e.g. `critical=CRITICAL,warning=WARNING`).
    pub fn parse_map(text: &str) -> Result<Vec<(String, Level)>, String> {
        text.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|pair| {
                let (value, level) = pair.split_once('=').ok_or_else(|| {
                    format!("`{pair}` is not value=LEVEL (e.g. critical=CRITICAL)")
                })?;
                Ok((value.trim().to_string(), level.trim().parse::<Level>()?))
            })
            .collect()
    }
}

/// A payload, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Each alert's event, as Kapacitor's alert JSON, in the payload's order.
    pub alerts: Vec<String>,
    /// Alerts of the group Alertmanager left out (`truncatedAlerts`).
    pub truncated: u64,
    /// What was taken but not as sent, for the host to tell its operator.
    pub warnings: Vec<Warning>,
}

/// An alert taken with something in it that cannot be right: the alert
/// is delivered anyway (dropping a resolution would leave its message
/// firing), and the host logs this.
#[derive(Debug, Clone, PartialEq)]
pub enum Warning {
    /// A resolved alert whose `endsAt` is before its `startsAt` (the clocks
    /// of Prometheus and Alertmanager differ, or Alertmanager's zero time):
    /// how long it lasted is unknown, so its `duration` is 0.
    EndsBeforeStart {
        /// Where it is in the payload (`alerts[2]`).
        at: String,
        /// The alert as Alertmanager's log names it, `alertname[fingerprint]`,
        /// and its labels.
        alert: String,
        /// Its `startsAt` and `endsAt`, as sent.
        starts_at: String,
        ends_at: String,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::EndsBeforeStart {
                at,
                alert,
                starts_at,
                ends_at,
            } => write!(
                f,
                "{at} {alert}: resolved with endsAt {ends_at} before startsAt {starts_at} \
                 (do the clocks of Prometheus and Alertmanager differ?); taken, with duration 0"
            ),
        }
    }
}

/// Decodes a webhook payload. Nothing of a payload with an error is taken:
/// the error names the first field that is wrong.
pub fn decode(text: &str, levels: &Levels) -> Result<Webhook, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let payload = object(&value, "the payload")?;
    let version = string(payload, "version", "version", true)?;
    if version != "4" {
        return Err(format!(
            "version: \"{version}\" is not Alertmanager's webhook version 4"
        ));
    }
    let receiver = string(payload, "receiver", "receiver", false)?;
    let group_key = string(payload, "groupKey", "groupKey", false)?;
    let external_url = string(payload, "externalURL", "externalURL", false)?;
    let group_labels = labels(payload.get("groupLabels"), "groupLabels", false)?;
    labels(payload.get("commonLabels"), "commonLabels", false)?;
    labels(payload.get("commonAnnotations"), "commonAnnotations", false)?;
    let truncated = match payload.get("truncatedAlerts") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or_else(|| {
            format!(
                "truncatedAlerts: expected a count (a whole number, 0 or more), got {}",
                kind(v)
            )
        })?,
    };
    let alerts = match payload.get("alerts") {
        None => return Err("alerts: missing (a list of the group's alerts)".into()),
        Some(Value::Array(alerts)) => alerts,
        Some(other) => {
            return Err(format!("alerts: expected a list, got {}", kind(other)));
        }
    };
    let group = if group_labels.is_empty() {
        "nil".to_string()
    } else {
        group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let shared = Shared {
        receiver,
        group_key,
        external_url,
        group,
        truncated,
    };
    let mut warnings = Vec::new();
    let alerts = alerts
        .iter()
        .enumerate()
        .map(|(n, alert)| {
            event(
                alert,
                &format!("alerts[{n}]"),
                &shared,
                levels,
                &mut warnings,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Webhook {
        alerts,
        truncated,
        warnings,
    })
}

/// What every alert of a payload shares.
struct Shared {
    receiver: String,
    group_key: String,
    external_url: String,
    group: String,
    truncated: u64,
}

fn event(
    value: &Value,
    at: &str,
    shared: &Shared,
    levels: &Levels,
    warnings: &mut Vec<Warning>,
) -> Result<String, String> {
    let alert = object(value, at)?;
    let status = string(alert, "status", &format!("{at}.status"), true)?;
    let resolved = match status.as_str() {
        "firing" => false,
        "resolved" => true,
        other => {
            return Err(format!(
                "{at}.status: \"{other}\" is neither firing nor resolved"
            ))
        }
    };
    let labels = labels(alert.get("labels"), &format!("{at}.labels"), true)?;
    if labels.is_empty() {
        return Err(format!(
            "{at}.labels: empty (an alert is known by its labels)"
        ));
    }
    let annotations = self::labels(
        alert.get("annotations"),
        &format!("{at}.annotations"),
        false,
    )?;
    let starts = string(alert, "startsAt", &format!("{at}.startsAt"), true)?;
    let started = time(&starts, &format!("{at}.startsAt"))?;
    let ends = string(alert, "endsAt", &format!("{at}.endsAt"), false)?;
    // Read once resolved: a firing alert's `endsAt` is Alertmanager's guess.
    let ended = match ends.as_str() {
        "" => None,
        _ if !resolved => None,
        ends => Some(time(ends, &format!("{at}.endsAt"))?),
    };
    let generator_url = string(alert, "generatorURL", &format!("{at}.generatorURL"), false)?;
    let fingerprint = string(alert, "fingerprint", &format!("{at}.fingerprint"), false)?;
    let duration = match ended {
        Some(ended) if ended < started => {
            warnings.push(Warning::EndsBeforeStart {
                at: at.to_string(),
                alert: named(&labels, &fingerprint),
                starts_at: starts.clone(),
                ends_at: ends.clone(),
            });
            0
        }
        Some(ended) => i64::try_from((ended - started).whole_nanoseconds()).unwrap_or(i64::MAX),
        None => 0,
    };
    let id = if fingerprint.is_empty() {
        labels_hash(&labels)
    } else {
        fingerprint
    };
    let level = if resolved {
        Level::Ok
    } else {
        levels.of(&labels)
    };
    let alertname = labels.get("alertname").cloned().unwrap_or_default();
    let mut message = annotations
        .get("summary")
        .or_else(|| annotations.get("description"))
        .cloned()
        .unwrap_or_else(|| alertname.clone());
    if shared.truncated > 0 {
        message += &format!(
            " ({} more alerts of this group left out by Alertmanager)",
            shared.truncated
        );
    }
    let details = annotations.get("description").cloned().unwrap_or_default();
    let mut columns = vec![json!("time")];
    let mut row = vec![json!(starts)];
    if shared.truncated > 0 {
        columns.push(json!("truncatedAlerts"));
        row.push(json!(shared.truncated));
    }
    let context: Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (format!("annotations.{k}"), json!(v)))
        .chain(
            labels
                .iter()
                .map(|(k, v)| (format!("labels.{k}"), json!(v))),
        )
        .chain([
            ("generatorURL".to_string(), json!(generator_url)),
            ("externalURL".to_string(), json!(shared.external_url)),
            ("status".to_string(), json!(status)),
            ("receiver".to_string(), json!(shared.receiver)),
            ("groupKey".to_string(), json!(shared.group_key)),
        ])
        .collect();
    Ok(json!({
        "id": id,
        "message": message,
        "details": details,
        "time": starts,
        "duration": duration,
        "level": level.as_str(),
        "recoverable": true,
        "taskName": TASK_NAME,
        "group": shared.group,
        "data": {"series": [{
            "name": alertname,
            "tags": labels,
            "columns": columns,
            "values": [row],
        }]},
        "context": context,
    })
    .to_string())
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{at}: expected an object, got {}", kind(value)))
}

/// `key` of `object` as a string: missing is an error when `required`, an
/// empty string otherwise.
fn string(
    object: &Map<String, Value>,
    key: &str,
    at: &str,
    required: bool,
) -> Result<String, String> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if !required => Ok(String::new()),
        None | Some(Value::Null) => Err(format!("{at}: missing")),
        Some(other) => Err(format!("{at}: expected a string, got {}", kind(other))),
    }
}

/// A map of strings (labels, annotations).
fn labels(
    value: Option<&Value>,
    at: &str,
    required: bool,
) -> Result<BTreeMap<String, String>, String> {
    let map = match value {
        None | Some(Value::Null) if required => return Err(format!("{at}: missing")),
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(format!(
                "{at}: expected an object of strings, got {}",
                kind(other)
            ))
        }
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(format!("{at}.{k}: expected a string, got {}", kind(other))),
        })
        .collect()
}

fn time(text: &str, at: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("{at}: \"{text}\" is not an RFC 3339 time: {e}"))
}

/// An alert as Alertmanager's log names it, `alertname[fingerprint]`,
/// then its labels (`{instance="web01", ...}`, cut after 200 characters:
/// an alert may carry a thousand).
fn named(labels: &BTreeMap<String, String>, fingerprint: &str) -> String {
    let name = labels.get("alertname").map_or("", String::as_str);
    let fingerprint = if fingerprint.is_empty() {
        "no fingerprint"
    } else {
        fingerprint
    };
    let mut shown = String::new();
    for (k, v) in labels.iter().filter(|(k, _)| *k != "alertname") {
        if shown.chars().count() > 200 {
            shown += ", …";
            break;
        }
        if !shown.is_empty() {
            shown += ", ";
        }
        shown += &format!("{k}={v:?}");
    }
    format!("{name}[{fingerprint}] {{{shown}}}")
}

/// An id for an alert without a fingerprint: FNV-1a over its sorted
/// labels, as hex (stable across runs and hosts).
fn labels_hash(labels: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for byte in k.bytes().chain([0]).chain(v.bytes()).chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert_json;

    fn payload(alerts: &str) -> String {
        format!(
            r#"{{"version":"4","groupKey":"{{}}:{{alertname=\"HighLatency\"}}","truncatedAlerts":0,"status":"firing","receiver":"slack",
               "groupLabels":{{"alertname":"HighLatency"}},"commonLabels":{{"alertname":"HighLatency"}},"commonAnnotations":{{}},
               "externalURL":"http://am.example:9093","alerts":[{alerts}]}}"#
        )
    }

    const FIRING: &str = r#"{"status":"firing","labels":{"alertname":"HighLatency","severity":"critical","instance":"web01"},
        "annotations":{"summary":"p99 above 2s","description":"web01 is slow"},"startsAt":"2026-11-29T10:00:00Z",
        "endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom.example/graph","fingerprint":"c0ffee"}"#;

    #[test]
    fn a_firing_alert_becomes_a_kapacitor_event() {
        let hook = decode(&payload(FIRING), &Levels::default()).unwrap();
        let event = alert_json::decode(&hook.alerts[0]).unwrap();
        assert_eq!(event.id, "c0ffee");
        assert_eq!(event.level, Level::Critical);
        assert_eq!(event.message, "p99 above 2s");
        assert_eq!(event.details, "web01 is slow");
        assert_eq!(event.name, "HighLatency");
        assert_eq!(event.group, "alertname=HighLatency");
        assert_eq!(event.duration, 0);
        assert!(event.tags.contains(&("instance".into(), "web01".into())));
        let context = |key: &str| {
            event
                .context
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(context("annotations.summary"), Some("p99 above 2s"));
        assert_eq!(context("labels.severity"), Some("critical"));
        assert_eq!(context("externalURL"), Some("http://am.example:9093"));
        assert_eq!(context("status"), Some("firing"));
        assert_eq!(context("generatorURL"), Some("http://prom.example/graph"));
        assert_eq!(context("receiver"), Some("slack"));
    }

    #[test]
    fn resolved_is_ok_with_its_duration_and_the_same_id() {
        let resolved = FIRING
            .replace("\"firing\"", "\"resolved\"")
            .replace("0001-01-01T00:00:00Z", "2026-11-29T10:05:00Z");
        let hook = decode(&payload(&resolved), &Levels::default()).unwrap();
        let event = alert_json::decode(&hook.alerts[0]).unwrap();
        assert_eq!((event.id.as_str(), event.level), ("c0ffee", Level::Ok));
        assert_eq!(event.duration, 300 * 1_000_000_000);
    }

    #[test]
    fn resolved_before_it_started_is_taken_with_duration_0_and_a_warning() {
        let resolved = FIRING
            .replace("\"firing\"", "\"resolved\"")
            .replace("0001-01-01T00:00:00Z", "2026-11-29T09:59:30Z");
        let hook = decode(
            &payload(&format!("{FIRING},{resolved}")),
            &Levels::default(),
        )
        .unwrap();
        let event = alert_json::decode(&hook.alerts[1]).unwrap();
        assert_eq!((event.id.as_str(), event.level), ("c0ffee", Level::Ok));
        assert_eq!(event.duration, 0);
        assert_eq!(
            hook.warnings,
            [Warning::EndsBeforeStart {
                at: "alerts[1]".into(),
                alert: "HighLatency[c0ffee] {instance=\"web01\", severity=\"critical\"}".into(),
                starts_at: "2026-11-29T10:00:00Z".into(),
                ends_at: "2026-11-29T09:59:30Z".into(),
            }]
        );
        let said = hook.warnings[0].to_string();
        for part in [
            "alerts[1] HighLatency[c0ffee]",
            "endsAt 2026-11-29T09:59:30Z before startsAt 2026-11-29T10:00:00Z",
            "duration 0",
        ] {
            assert!(said.contains(part), "{part:?} in {said:?}");
        }
        // A firing alert's `endsAt` (the zero time, or Alertmanager's
        // guess) says nothing; a resolution in order says nothing.
        let in_order = FIRING
            .replace("\"firing\"", "\"resolved\"")
            .replace("0001-01-01T00:00:00Z", "2026-11-29T10:05:00Z");
        let hook = decode(
            &payload(&format!("{FIRING},{in_order}")),
            &Levels::default(),
        )
        .unwrap();
        assert_eq!(hook.warnings, []);
    }

    #[test]
    fn a_warning_names_an_alert_without_a_fingerprint_and_cuts_a_thousand_labels() {
        let labels: Vec<String> = (0..1000).map(|n| format!("\"l{n:04}\":\"v\"")).collect();
        let alert = format!(
            r#"{{"status":"resolved","labels":{{{}}},"startsAt":"2026-11-29T10:00:00Z","endsAt":"0001-01-01T00:00:00Z"}}"#,
            labels.join(",")
        );
        let hook = decode(&payload(&alert), &Levels::default()).unwrap();
        let said = hook.warnings[0].to_string();
        assert!(
            said.starts_with("alerts[0] [no fingerprint] {l0000=\"v\", "),
            "{said}"
        );
        assert!(said.contains(", …}"), "{said}");
        assert!(said.len() < 500, "{} bytes", said.len());
    }

    #[test]
    fn levels_come_from_the_severity_label_as_configured() {
        let of = |severity: &str, levels: &Levels| {
            let alert = FIRING.replace("\"critical\"", &format!("\"{severity}\""));
            let hook = decode(&payload(&alert), levels).unwrap();
            alert_json::decode(&hook.alerts[0]).unwrap().level
        };
        let levels = Levels::default();
        assert_eq!(of("warning", &levels), Level::Warning);
        assert_eq!(of("INFO", &levels), Level::Info);
        assert_eq!(of("page", &levels), Level::Warning, "the default");
        let custom = Levels {
            label: "severity".into(),
            map: Levels::parse_map("page=CRITICAL,ticket=info").unwrap(),
            default: Level::Info,
        };
        assert_eq!(of("page", &custom), Level::Critical);
        assert_eq!(of("critical", &custom), Level::Info, "not mapped");
        assert!(Levels::parse_map("page")
            .unwrap_err()
            .contains("value=LEVEL"));
    }

    #[test]
    fn without_a_fingerprint_the_id_is_a_hash_of_the_sorted_labels() {
        let a =
            r#"{"status":"firing","labels":{"b":"2","a":"1"},"startsAt":"2026-11-29T10:00:00Z"}"#;
        let b =
            r#"{"status":"firing","labels":{"a":"1","b":"2"},"startsAt":"2026-11-29T10:01:00Z"}"#;
        let ids: Vec<String> = [a, b]
            .iter()
            .map(|alert| {
                let hook = decode(&payload(alert), &Levels::default()).unwrap();
                alert_json::decode(&hook.alerts[0]).unwrap().id
            })
            .collect();
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[0].len(), 16);
        // No summary or description: the alert's name, or nothing.
        let hook = decode(&payload(a), &Levels::default()).unwrap();
        assert_eq!(alert_json::decode(&hook.alerts[0]).unwrap().message, "");
    }

    #[test]
    fn truncated_alerts_are_said_in_the_message_and_as_a_field() {
        let text = payload(FIRING).replace("\"truncatedAlerts\":0", "\"truncatedAlerts\":7");
        let hook = decode(&text, &Levels::default()).unwrap();
        assert_eq!(hook.truncated, 7);
        let event = alert_json::decode(&hook.alerts[0]).unwrap();
        assert!(event.message.contains("7 more alerts"), "{}", event.message);
        assert!(event
            .fields
            .iter()
            .any(|(k, v)| k == "truncatedAlerts" && *v == crate::event::FieldValue::Integer(7)));
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let levels = Levels::default();
        let cases = [
            ("[]".to_string(), "the payload: expected an object"),
            (
                payload(FIRING).replace("\"version\":\"4\"", "\"version\":\"3\""),
                "version: \"3\"",
            ),
            (
                payload(FIRING).replace("\"version\":\"4\",", ""),
                "version: missing",
            ),
            (r#"{"version":"4"}"#.to_string(), "alerts: missing"),
            (
                payload(FIRING).replace(&format!("[{FIRING}]"), "{}"),
                "alerts: expected a list",
            ),
            (
                payload(&FIRING.replace("\"c0ffee\"", "7")),
                "alerts[0].fingerprint: expected a string, got a number",
            ),
            (
                payload(r#"{"status":"firing","startsAt":"2026-11-29T10:00:00Z"}"#),
                "alerts[0].labels: missing",
            ),
            (
                payload(r#"{"status":"firing","labels":{},"startsAt":"2026-11-29T10:00:00Z"}"#),
                "alerts[0].labels: empty",
            ),
            (
                payload(
                    r#"{"status":"firing","labels":{"a":1},"startsAt":"2026-11-29T10:00:00Z"}"#,
                ),
                "alerts[0].labels.a: expected a string",
            ),
            (
                payload(&format!(
                    "{FIRING},{}",
                    FIRING.replace("\"firing\"", "\"gone\"")
                )),
                "alerts[1].status: \"gone\"",
            ),
            (
                payload(&FIRING.replace("2026-11-29T10:00:00Z", "yesterday")),
                "alerts[0].startsAt: \"yesterday\"",
            ),
            (
                payload(FIRING).replace("\"truncatedAlerts\":0", "\"truncatedAlerts\":-1"),
                "truncatedAlerts: expected a count",
            ),
        ];
        for (text, expected) in cases {
            let e = decode(&text, &levels).unwrap_err();
            assert!(e.contains(expected), "{expected:?} in {e:?}");
        }
    }
}
