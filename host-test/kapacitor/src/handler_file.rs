//! Kapacitor topic-handler files (YAML or JSON): `id`, `topic`, `kind`,
//! `match`, `options`.

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;
use yaml_serde::Value;

use crate::lambda::Lambda;

/// A handler file.
#[derive(Debug, Clone)]
pub struct HandlerFile {
    pub id: String,
    pub topic: Option<String>,
    pub kind: String,
    /// Its `match` expression: the handler takes an event only when it
    /// holds.
    pub matches: Option<Lambda>,
    pub options: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: String,
    #[serde(default)]
    topic: Option<String>,
    kind: String,
    #[serde(default, rename = "match")]
    matches: Option<String>,
    #[serde(default)]
    options: Option<yaml_serde::Mapping>,
}

/// Parses a handler file. Scalar option values are passed on as strings;
/// `fields`, a list of tables, as its JSON text.
pub fn parse(text: &str) -> Result<HandlerFile> {
    let raw: Raw = yaml_serde::from_str(text).map_err(|e| anyhow!("handler file: {e}"))?;
    if raw.id.is_empty()
        || !raw
            .id
            .chars()
            .all(|c| c.is_alphanumeric() || "-._".contains(c))
    {
        bail!(
            "handler file: `id` \"{}\" must match ^[-._\\p{{L}}0-9]+$",
            raw.id
        );
    }
    let mut options = Vec::new();
    for (key, value) in raw.options.unwrap_or_default() {
        let Value::String(key) = key else {
            bail!("handler file: option keys must be strings");
        };
        let value = match value {
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            // `fields` (a Slack handler's) and `topics` (a publish handler's)
            // are lists: passed on as their JSON text.
            list_or_map @ (Value::Sequence(_) | Value::Mapping(_))
                if key == "fields" || key == "topics" =>
            {
                serde_json::to_string(&list_or_map)
                    .map_err(|e| anyhow!("handler file: option `{key}`: {e}"))?
            }
            _ => bail!("handler file: option `{key}` must be a string"),
        };
        options.push((key, value));
    }
    let matches = match raw.matches.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            Some(Lambda::parse(text).map_err(|e| anyhow!("handler file: `match` {e}: `{text}`"))?)
        }
    };
    Ok(HandlerFile {
        id: raw.id,
        topic: raw.topic,
        kind: raw.kind,
        matches,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_handler_file_parses() {
        let h = parse("id: slack-cpu-alert\ntopic: cpu\nkind: slack\noptions:\n  workspace: 'alerts'\n  icon-emoji: ':fire:'\n").unwrap();
        assert_eq!(h.id, "slack-cpu-alert");
        assert_eq!(h.topic.as_deref(), Some("cpu"));
        assert_eq!(h.kind, "slack");
        assert_eq!(
            h.options,
            [
                ("workspace".into(), "alerts".into()),
                ("icon-emoji".into(), ":fire:".into())
            ]
        );
    }

    #[test]
    fn a_match_is_parsed_at_load_and_a_bad_one_named_with_its_column() {
        let h = parse("id: h\nkind: slack\nmatch: level() == CRITICAL AND changed()\n").unwrap();
        assert_eq!(
            h.matches.map(|m| m.text().to_string()).as_deref(),
            Some("level() == CRITICAL AND changed()")
        );
        let e = parse("id: h\nkind: slack\nmatch: level() = CRITICAL\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`match` column 9: `=` alone"), "{e}");
    }

    #[test]
    fn json_handler_files_parse_too() {
        let h = parse(r##"{"id":"h","kind":"slack","options":{"channel":"#x"}}"##).unwrap();
        assert_eq!(h.options, [("channel".into(), "#x".into())]);
    }

    #[test]
    fn bad_ids_and_keys_are_errors() {
        assert!(parse("id: 'a b'\nkind: slack\n")
            .unwrap_err()
            .to_string()
            .contains("`id` \"a b\""));
        assert!(parse("id: a\nkind: slack\nbogus: 1\n")
            .unwrap_err()
            .to_string()
            .contains("unknown field `bogus`"));
        assert!(parse("id: a\nkind: slack\noptions:\n  channel: [1]\n").is_err());
    }
}
