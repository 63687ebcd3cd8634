//! What is posted to Slack: the message body (Kapacitor's by default, ours
//! with the extensions), the chat.update body, Slack's size limits, and the
//! HTTP request that carries them. Plain data, built in this one place;
//! `render` fills it in.

use std::cell::Cell;

use serde::Serialize;
use serde_json::Value;

use crate::config::{Secret, Workspace};
use crate::redact;
use crate::weburl::WebUrl;

/// A chat.postMessage / webhook body. Kapacitor's fields are in the order
/// Go's encoder writes them (sorted), so the bytes match too apart from
/// Go's `\u003c`-style escapes; ours are left out when not set, so without
/// them the body is Kapacitor's exactly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub attachments: Vec<Attachment>,
    pub channel: String,
    pub icon_emoji: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_names: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_broadcast: Option<bool>,
    /// Kapacitor leaves it empty (the message is in the attachment); here
    /// it carries the mentions, and with Block Kit the notification text.
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    pub username: String,
}

/// The chat.update body: the message's channel id and `ts`, and what it
/// now says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Update {
    pub attachments: Vec<Attachment>,
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_names: Option<bool>,
    pub text: String,
    pub ts: String,
}

/// The one attachment. Kapacitor's has `fallback`, `color`, `text`,
/// `mrkdwn_in`, in that order; the others are ours.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Attachment {
    pub fallback: String,
    pub color: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    /// Block Kit blocks, inside the attachment so its colour bar stays.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mrkdwn_in: Vec<&'static str>,
}

/// A legacy attachment field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub title: String,
    pub value: String,
    pub short: bool,
}

/// Slack's size limits, in characters: what the handler never sends more of.
pub mod limits {
    /// A message's text (Slack cuts above it, or refuses `msg_too_long`).
    pub const TEXT: usize = 40_000;
    /// A Block Kit header's `plain_text`.
    pub const HEADER: usize = 150;
    /// A Block Kit section's text.
    pub const SECTION: usize = 3_000;
    /// One Block Kit section field.
    pub const FIELD: usize = 2_000;
    /// Fields in one Block Kit section.
    pub const FIELDS_PER_SECTION: usize = 10;
    /// Blocks in one message.
    pub const BLOCKS: usize = 50;
    /// A legacy attachment's title.
    pub const ATTACHMENT_TITLE: usize = 1_024;
    /// A legacy attachment's footer.
    pub const FOOTER: usize = 300;

    use serde_json::Value;

    /// Checks a message body against Slack's limits: what every request the
    /// handler sends is held to (by its tests and fuzzers). The error names
    /// the part and its size.
    pub fn check(body: &Value) -> Result<(), String> {
        fn at_most(what: &str, v: &Value, max: usize) -> Result<(), String> {
            let n = v.as_str().map_or(0, |s| s.chars().count());
            if n > max {
                return Err(format!("{what} has {n} characters; Slack takes {max}"));
            }
            Ok(())
        }
        fn filled(what: &str, v: &Value, max: usize) -> Result<(), String> {
            if v.as_str().is_none_or(|s| s.trim().is_empty()) {
                return Err(format!("{what} is empty; Slack refuses that"));
            }
            at_most(what, v, max)
        }
        at_most("text", &body["text"], TEXT)?;
        let empty = Vec::new();
        for a in body["attachments"].as_array().unwrap_or(&empty) {
            for (key, max) in [
                ("fallback", TEXT),
                ("pretext", TEXT),
                ("text", TEXT),
                ("title", ATTACHMENT_TITLE),
                ("footer", FOOTER),
            ] {
                at_most(&format!("attachment {key}"), &a[key], max)?;
            }
            let Some(blocks) = a["blocks"].as_array() else {
                continue;
            };
            filled(
                "the top-level text of a Block Kit message",
                &body["text"],
                TEXT,
            )?;
            if blocks.is_empty() || blocks.len() > BLOCKS {
                return Err(format!(
                    "{} blocks; Slack takes 1 to {BLOCKS}",
                    blocks.len()
                ));
            }
            for b in blocks {
                match b["type"].as_str().unwrap_or_default() {
                    "header" => filled("a header", &b["text"]["text"], HEADER)?,
                    "section" => {
                        if let Some(fields) = b["fields"].as_array() {
                            if fields.is_empty() || fields.len() > FIELDS_PER_SECTION {
                                return Err(format!(
                                    "a section has {} fields; Slack takes 1 to {FIELDS_PER_SECTION}",
                                    fields.len()
                                ));
                            }
                            for f in fields {
                                filled("a section field", &f["text"], FIELD)?;
                            }
                        } else {
                            filled("a section's text", &b["text"]["text"], SECTION)?;
                        }
                    }
                    "context" => {
                        let elements = b["elements"].as_array().unwrap_or(&empty);
                        if elements.is_empty() || elements.len() > 10 {
                            return Err("a context block needs 1 to 10 elements".to_string());
                        }
                        for e in elements {
                            filled("a context element", &e["text"], SECTION)?;
                        }
                    }
                    "actions" => {
                        let elements = b["elements"].as_array().unwrap_or(&empty);
                        if elements.is_empty() || elements.len() > 25 {
                            return Err("an actions block needs 1 to 25 elements".to_string());
                        }
                    }
                    other => return Err(format!("unexpected block type `{other}`")),
                }
            }
        }
        Ok(())
    }
}

/// The most characters of an alert's message sent to Slack: Slack cuts a
/// message's text above 40,000 characters (and may refuse it with
/// `msg_too_long`), silently for whoever reads it.
pub const MAX_TEXT_CHARS: usize = limits::TEXT;

/// The warning returned with a delivery whose message was cut to
/// [`MAX_TEXT_CHARS`].
pub const TRUNCATED_WARNING: &str = "handler_truncated_message";

/// Adds `warning` to `warnings` unless it is there already.
pub fn warn_once(warnings: &mut Vec<String>, warning: String) {
    if !warnings.contains(&warning) {
        warnings.push(warning);
    }
}

/// `text` within Slack's 40,000 characters ([`truncate`]), with
/// [`TRUNCATED_WARNING`] added to `warnings` when it was cut.
pub fn fit_text(text: String, warnings: &mut Vec<String>) -> String {
    match truncate(&text) {
        Some(cut) => {
            warn_once(warnings, TRUNCATED_WARNING.to_string());
            cut
        }
        None => text,
    }
}

/// `text` cut to at most [`MAX_TEXT_CHARS`] characters, with a visible
/// marker at the end saying how long it was; `None` when it fits. Cut on a
/// character boundary, so the text stays valid UTF-8.
pub fn truncate(text: &str) -> Option<String> {
    // No more bytes than the limit is no more characters: nothing to walk.
    if text.len() <= MAX_TEXT_CHARS {
        return None;
    }
    // Counting stops just past the limit, so a huge message is not walked twice.
    text.chars().nth(MAX_TEXT_CHARS)?;
    let total = text.chars().count();
    let marker = format!(
        "\n… [message truncated by slack-alert-handler: it had {total} characters, Slack takes {MAX_TEXT_CHARS}]"
    );
    let keep = MAX_TEXT_CHARS - marker.chars().count();
    let cut = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    Some(format!("{}{marker}", &text[..cut]))
}

/// `value` as JSON, written into room for the last body this thread wrote
/// and a bit: a handler's messages are much alike, and growing the buffer
/// from serde_json's 128 bytes copied it several times per alert.
fn to_json(value: &impl Serialize) -> Vec<u8> {
    thread_local! {
        static LAST_LEN: Cell<usize> = const { Cell::new(0) };
    }
    let room = LAST_LEN.get();
    let mut body = Vec::with_capacity((room + room / 8).max(512));
    // Serializing plain data into a Vec cannot fail.
    if serde_json::to_writer(&mut body, value).is_err() {
        body.clear();
    }
    LAST_LEN.set(body.len());
    body
}

/// The request to send: it holds the URL and token, so it is never printed;
/// [`Request::preview`] is the printable form.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub url: Secret,
    pub token: Secret,
    pub body: Vec<u8>,
}

/// The `User-Agent` the handler sends.
pub const USER_AGENT: &str = concat!("slack-alert-handler/", env!("CARGO_PKG_VERSION"));

impl Request {
    /// `POST` of the message to the workspace's URL.
    pub fn new(ws: &Workspace, message: &Message) -> Self {
        Request {
            url: ws.url.clone(),
            token: ws.token.clone(),
            body: to_json(message),
        }
    }

    /// `POST` of an update to the workspace's Web API: its URL with the
    /// last path segment replaced by `chat.update`.
    pub fn update(ws: &Workspace, update: &Update) -> Self {
        Request {
            url: Secret::new(method_url(ws.url.expose(), "chat.update")),
            token: ws.token.clone(),
            body: to_json(update),
        }
    }

    /// The headers as sent: JSON, and a bearer token only when there is one.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("content-length".to_string(), self.body.len().to_string()),
            ("user-agent".to_string(), USER_AGENT.to_string()),
        ];
        if !self.token.is_empty() {
            headers.push((
                "authorization".to_string(),
                format!("Bearer {}", self.token.expose()),
            ));
        }
        headers
    }

    /// The request as a dry run shows it: secrets redacted.
    pub fn preview(&self) -> Preview {
        let headers = self
            .headers()
            .into_iter()
            .map(|(k, v)| {
                if k == "authorization" {
                    (k, format!("Bearer {}", redact::REDACTED))
                } else {
                    (k, v)
                }
            })
            .collect();
        Preview {
            method: "POST".to_string(),
            url: redact::url(self.url.expose()),
            headers,
            // serde_json wrote it, so it is UTF-8: the whole-string check is
            // much faster than the lossy conversion's walk.
            body: String::from_utf8(self.body.clone())
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }
}

/// `url` with its last path segment replaced by `method`
/// (`…/api/chat.postMessage` → `…/api/chat.update`); the query stays.
pub fn method_url(url: &str, method: &str) -> String {
    match WebUrl::parse(url) {
        Ok(mut parsed) => {
            let dir = parsed.path.rfind('/').map_or("", |i| &parsed.path[..i]);
            parsed.path = format!("{dir}/{method}");
            parsed.to_url()
        }
        // The configuration was validated; keep the URL as it is.
        Err(_) => url.to_string(),
    }
}

/// A request with its secrets removed (the WIT `http-request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> Workspace {
        Workspace::for_tests()
    }

    fn message() -> Message {
        Message {
            attachments: vec![],
            channel: "#alerts".into(),
            icon_emoji: String::new(),
            icon_url: None,
            link_names: None,
            reply_broadcast: None,
            text: "x".into(),
            thread_ts: None,
            username: String::new(),
        }
    }

    #[test]
    fn bearer_only_with_a_token() {
        let without = Request::new(&ws(), &message());
        assert!(!without.headers().iter().any(|(k, _)| k == "authorization"));
        let with = Request::new(
            &Workspace {
                token: Secret::new("xoxb-1"),
                ..ws()
            },
            &message(),
        );
        assert!(with
            .headers()
            .contains(&("authorization".into(), "Bearer xoxb-1".into())));
        assert!(with
            .headers()
            .contains(&("content-type".into(), "application/json".into())));
    }

    #[test]
    fn preview_redacts_token_and_webhook_path() {
        let w = Workspace {
            url: Secret::new("https://hooks.slack.com/services/T0/B0/SECRETPATH"),
            token: Secret::new("xoxb-SECRET"),
            ..ws()
        };
        let p = Request::new(&w, &message()).preview();
        let shown = format!("{p:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(p.url, "https://hooks.slack.com/[redacted]");
        assert!(p
            .headers
            .contains(&("authorization".into(), "Bearer [redacted]".into())));
    }

    #[test]
    fn chat_update_replaces_the_last_path_segment() {
        assert_eq!(
            method_url("https://slack.com/api/chat.postMessage", "chat.update"),
            "https://slack.com/api/chat.update"
        );
        assert_eq!(
            method_url(
                "http://127.0.0.1:9/slack/api/chat.postMessage?x=1",
                "chat.update"
            ),
            "http://127.0.0.1:9/slack/api/chat.update?x=1"
        );
    }

    #[test]
    fn truncate_cuts_to_exactly_the_limit() {
        assert!(truncate(&"x".repeat(MAX_TEXT_CHARS)).is_none());
        let one_more = "x".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(truncate(&one_more).unwrap().chars().count(), MAX_TEXT_CHARS);
    }

    proptest::proptest! {
        /// Over lengths around the limit and text in several scripts: the
        /// text is cut exactly when it is longer than Slack takes, to
        /// exactly the limit, on a character boundary, keeping its start.
        #[test]
        fn truncation_by_characters_not_bytes(
            extra in 0usize..6,
            under in proptest::bool::ANY,
            script in proptest::sample::select(vec!["x", "é", "🔥", "日本", "a\u{301}", "<&>"]),
        ) {
            let unit_chars = script.chars().count();
            let target = if under { MAX_TEXT_CHARS - extra } else { MAX_TEXT_CHARS + extra };
            let text: String = script.repeat(target.div_ceil(unit_chars)).chars().take(target).collect();
            let len = text.chars().count();
            match truncate(&text) {
                None => proptest::prop_assert!(len <= MAX_TEXT_CHARS),
                Some(cut) => {
                    proptest::prop_assert!(len > MAX_TEXT_CHARS);
                    proptest::prop_assert_eq!(cut.chars().count(), MAX_TEXT_CHARS);
                    let kept = cut.split("\n… [message truncated").next().unwrap();
                    proptest::prop_assert!(text.starts_with(kept));
                    let marker = format!("it had {len} characters");
                    proptest::prop_assert!(cut.contains(&marker));
                }
            }
        }
    }
}
