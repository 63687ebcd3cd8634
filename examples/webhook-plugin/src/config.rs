//! The configuration: TOML with `[[webhook]]` sections (or one `[webhook]`
//! table), each a destination. Other top-level keys are ignored, so the
//! sections can sit in a larger file.
//!
//! ```toml
//! [[webhook]]
//! workspace = "ops"
//! default = true
//! url = "https://alerts.example.com/hook"
//! headers = { Authorization = "Bearer s3cr3t" }
//! body = '{"text": "{{level}}: {{message}}"}'
//! ```
//!
//! Every error names the section (`[[webhook]] #2`, counted from 1), the
//! key and the rule it breaks, and never quotes a value: header values and
//! URLs carry secrets.

use toml::{Table, Value};

use crate::describe::{self, CONFIG_KEYS};
use crate::error::HandlerError;
use crate::render::{self, Template};
use crate::weburl::Url;

/// The headers the host's HTTP client or this handler sets; a section may
/// not.
const HOST_HEADERS: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "http2-settings",
];

/// Every section, in the order of the text.
#[derive(Debug)]
pub struct Config {
    pub sections: Vec<Section>,
}

/// One `[[webhook]]` section.
#[derive(Debug)]
pub struct Section {
    /// `workspace`; may be empty when it is the only section.
    pub id: String,
    pub enabled: bool,
    /// Whether it answers when a handler names none: `default`, or being
    /// the only section.
    pub is_default: bool,
    pub url: Url,
    /// Header names and values, as written.
    pub headers: Vec<(String, String)>,
    /// `body`, compiled; `None` for the event as JSON.
    pub body: Option<Template>,
    pub content_type: String,
}

impl Config {
    /// Reads the configuration text.
    pub fn parse(text: &str) -> Result<Config, HandlerError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            // Not `e.to_string()`: it quotes the offending line, which may
            // hold a secret.
            let line = e.span().map(|span| {
                let before = text.get(..span.start).unwrap_or(text);
                before.matches('\n').count() + 1
            });
            invalid(match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_string(),
            })
        })?;
        let tables: Vec<&Value> = match table.get("webhook") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(item @ Value::Table(_)) => vec![item],
            Some(_) => {
                return Err(invalid(
                    "`webhook` must be [webhook] or [[webhook]] sections",
                ))
            }
            None => Vec::new(),
        };
        if tables.is_empty() {
            return Err(invalid("there is no [[webhook]] section"));
        }
        let sections = tables
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let table = value
                    .as_table()
                    .ok_or_else(|| invalid(format!("[[webhook]] #{}: must be a table", i + 1)))?;
                Section::parse(table)
                    .map_err(|rule| invalid(format!("[[webhook]] #{}: {rule}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Config::check(sections)
    }

    /// The rules between sections: ids, and which one is the default.
    fn check(mut sections: Vec<Section>) -> Result<Config, HandlerError> {
        if sections.len() == 1 {
            sections[0].is_default = true;
            return Ok(Config { sections });
        }
        for (i, section) in sections.iter().enumerate() {
            if section.id.is_empty() {
                return Err(invalid(format!(
                    "[[webhook]] #{}: `workspace` is required when there are several sections",
                    i + 1
                )));
            }
            if let Some(first) = sections[..i].iter().position(|s| s.id == section.id) {
                return Err(invalid(format!(
                    "[[webhook]] #{}: `workspace` \"{}\" is already section #{}'s",
                    i + 1,
                    section.id,
                    first + 1
                )));
            }
        }
        let defaults: Vec<String> = (0..sections.len())
            .filter(|&i| sections[i].is_default)
            .map(|i| format!("#{}", i + 1))
            .collect();
        match defaults.len() {
            1 => Ok(Config { sections }),
            0 => Err(invalid(
                "no section has `default = true`: with several sections one must",
            )),
            _ => Err(invalid(format!(
                "sections {} all have `default = true`: only one may",
                defaults.join(", ")
            ))),
        }
    }

    /// The section for a handler's `workspace` option: the default when it
    /// is empty.
    pub fn select(&self, id: &str) -> Result<&Section, HandlerError> {
        let section = if id.is_empty() {
            self.sections.iter().find(|s| s.is_default)
        } else {
            self.sections.iter().find(|s| s.id == id)
        }
        .ok_or_else(|| HandlerError::WorkspaceNotFound(id.to_string()))?;
        if !section.enabled {
            return Err(HandlerError::WorkspaceDisabled(section.id.clone()));
        }
        Ok(section)
    }
}

impl Section {
    /// Reads one section; the error is `` `key` `` and the rule.
    fn parse(table: &Table) -> Result<Section, String> {
        let mut id = String::new();
        let mut enabled = true;
        let mut is_default = false;
        let mut url = None;
        let mut headers = Vec::new();
        let mut body = None;
        let mut content_type = "application/json".to_string();
        for (key, value) in table {
            let text = || {
                value
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{key}` must be a string"))
            };
            let flag = || {
                value
                    .as_bool()
                    .ok_or_else(|| format!("`{key}` must be true or false"))
            };
            match key.as_str() {
                "enabled" => enabled = flag()?,
                "default" => is_default = flag()?,
                "workspace" => id = text()?,
                "url" => url = Some(Url::parse(&text()?).map_err(|rule| format!("`url` {rule}"))?),
                "headers" => headers = read_headers(value)?,
                "body" => {
                    body = Some(render::compile(&text()?).map_err(|e| format!("`body`: {e}"))?)
                }
                "content-type" => {
                    let value = text()?;
                    if value.is_empty() || !is_header_value(&value) {
                        return Err("`content-type` must be a media type on one line".to_string());
                    }
                    content_type = value;
                }
                _ => {
                    return Err(format!(
                        "unknown key `{key}` (the keys are {})",
                        describe::names(&CONFIG_KEYS)
                    ))
                }
            }
        }
        Ok(Section {
            id,
            enabled,
            is_default,
            url: url.ok_or("`url` is required")?,
            headers,
            body,
            content_type,
        })
    }
}

/// `headers`: a table of names and string values. A name the host sets
/// itself, or `Content-Type` (the `content-type` key), is refused.
fn read_headers(value: &Value) -> Result<Vec<(String, String)>, String> {
    let table = value
        .as_table()
        .ok_or("`headers` must be a table of header names and values")?;
    let mut headers = Vec::with_capacity(table.len());
    for (name, value) in table {
        let key = format!("`headers.{name}`");
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("{key}: not a valid header name"));
        }
        let lower = name.to_ascii_lowercase();
        if HOST_HEADERS.contains(&lower.as_str()) {
            return Err(format!("{key}: this header is set for you; leave it out"));
        }
        if lower == "content-type" {
            return Err(format!("{key}: set it with the `content-type` key"));
        }
        // The value is never quoted: it is often a credential.
        let value = value
            .as_str()
            .filter(|v| is_header_value(v))
            .ok_or_else(|| format!("{key}: the value must be a string on one line"))?;
        headers.push((name.clone(), value.to_string()));
    }
    Ok(headers)
}

/// RFC 9110's `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Printable ASCII, spaces and tabs: nothing that could end the header.
fn is_header_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

fn invalid(message: impl Into<String>) -> HandlerError {
    HandlerError::InvalidConfig(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        match Config::parse(text) {
            Err(HandlerError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn one_table_is_the_default_section() {
        let c = Config::parse("[webhook]\nurl = \"https://example.com/hook\"\n").unwrap();
        let s = &c.sections[0];
        assert!(s.enabled && s.is_default && s.id.is_empty() && s.body.is_none());
        assert_eq!(s.content_type, "application/json");
        assert_eq!(c.select("").unwrap().url.authority, "example.com");
    }

    #[test]
    fn every_key_is_read() {
        let c = Config::parse(
            r#"
            [[webhook]]
            workspace = "ops"
            enabled = false
            default = true
            url = "http://127.0.0.1:9000/in"
            content-type = "text/plain"
            body = "{{message}}"
            headers = { Authorization = "Bearer t", X-Team = "ops" }

            [[webhook]]
            workspace = "dev"
            url = "https://dev.example.com"
            "#,
        )
        .unwrap();
        let ops = &c.sections[0];
        assert_eq!(ops.id, "ops");
        assert!(!ops.enabled && ops.is_default);
        assert_eq!(ops.content_type, "text/plain");
        assert!(ops.body.is_some());
        assert_eq!(
            ops.headers,
            vec![
                ("Authorization".to_string(), "Bearer t".to_string()),
                ("X-Team".to_string(), "ops".to_string())
            ]
        );
        assert!(!c.sections[1].is_default);
    }

    #[test]
    fn errors_name_the_section_the_key_and_the_rule() {
        for (text, expected) in [
            ("", "there is no [[webhook]] section"),
            ("webhook = 1", "`webhook` must be [webhook] or [[webhook]] sections"),
            ("[[webhook]]\nenabled = true", "[[webhook]] #1: `url` is required"),
            (
                "[[webhook]]\nurl = \"ftp://x/SECRET\"",
                "[[webhook]] #1: `url` must be an http:// or https:// URL",
            ),
            (
                "[[webhook]]\nurl = \"https://x\"\nenabled = \"yes\"",
                "[[webhook]] #1: `enabled` must be true or false",
            ),
            (
                "[[webhook]]\nurl = \"https://x\"\nchannel = \"#ops\"",
                "[[webhook]] #1: unknown key `channel` (the keys are enabled, default, workspace, url, headers, body, content-type)",
            ),
            (
                "[[webhook]]\nurl = \"https://x\"\nbody = \"{{#if}}\"",
                "[[webhook]] #1: `body`: template error",
            ),
            (
                "[[webhook]]\nworkspace = \"a\"\nurl = \"https://x\"\ndefault = true\n[[webhook]]\nurl = \"https://y\"",
                "[[webhook]] #2: `workspace` is required when there are several sections",
            ),
            (
                "[[webhook]]\nworkspace = \"a\"\nurl = \"https://x\"\ndefault = true\n[[webhook]]\nworkspace = \"a\"\nurl = \"https://y\"",
                "[[webhook]] #2: `workspace` \"a\" is already section #1's",
            ),
            (
                "[[webhook]]\nworkspace = \"a\"\nurl = \"https://x\"\n[[webhook]]\nworkspace = \"b\"\nurl = \"https://y\"",
                "no section has `default = true`",
            ),
            (
                "[[webhook]]\nworkspace = \"a\"\nurl = \"https://x\"\ndefault = true\n[[webhook]]\nworkspace = \"b\"\nurl = \"https://y\"\ndefault = true",
                "sections #1, #2 all have `default = true`",
            ),
            ("[[webhook]]\nurl = ", "line 2: "),
        ] {
            let m = refused(text);
            assert!(m.contains(expected), "{text:?}: {m}");
        }
    }

    #[test]
    fn header_errors_never_quote_the_value() {
        for (headers, expected) in [
            (
                "{ Authorization = \"SECRET\\nX: y\" }",
                "`headers.Authorization`: the value must be a string on one line",
            ),
            (
                "{ Authorization = 1 }",
                "`headers.Authorization`: the value must be a string",
            ),
            (
                "{ \"Bad Name\" = \"SECRET\" }",
                "`headers.Bad Name`: not a valid header name",
            ),
            (
                "{ Host = \"SECRET\" }",
                "`headers.Host`: this header is set for you",
            ),
            (
                "{ Content-Type = \"SECRET\" }",
                "set it with the `content-type` key",
            ),
            ("\"SECRET\"", "`headers` must be a table"),
        ] {
            let m = refused(&format!(
                "[[webhook]]\nurl = \"https://x\"\nheaders = {headers}"
            ));
            assert!(m.contains(expected), "{headers}: {m}");
            assert!(!m.contains("SECRET"), "{m}");
        }
        // A TOML syntax error quotes no line either.
        let m = refused("[[webhook]]\nurl = \"https://x\"\nheaders = { A = \"SECRET\" B = 1 }");
        assert!(m.starts_with("line 3: ") && !m.contains("SECRET"), "{m}");
    }

    #[test]
    fn selecting_a_section() {
        let c = Config::parse(
            "[[webhook]]\nworkspace = \"a\"\nurl = \"https://x\"\ndefault = true\n\
             [[webhook]]\nworkspace = \"b\"\nurl = \"https://y\"\nenabled = false",
        )
        .unwrap();
        assert_eq!(c.select("").unwrap().id, "a");
        assert_eq!(c.select("a").unwrap().id, "a");
        assert_eq!(
            c.select("b").unwrap_err(),
            HandlerError::WorkspaceDisabled("b".into())
        );
        assert_eq!(
            c.select("c").unwrap_err(),
            HandlerError::WorkspaceNotFound("c".into())
        );
    }
}
