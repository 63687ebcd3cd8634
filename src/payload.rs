//! What is posted to Slack for an alert: Kapacitor's message body and the
//! HTTP request that carries it. Plain data, built in this one place.

use serde::Serialize;

use crate::config::{Secret, Workspace};
use crate::event::Level;
use crate::options::HandlerOptions;
use crate::redact;

/// Kapacitor's chat.postMessage / webhook body. The fields are in the order
/// Go's encoder writes them (sorted), so the bytes match too apart from
/// Go's `\u003c`-style escapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub attachments: Vec<Attachment>,
    pub channel: String,
    pub icon_emoji: String,
    /// Always empty: Kapacitor sends the alert's message in the attachment.
    pub text: String,
    pub username: String,
}

/// The one attachment Kapacitor sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub fallback: String,
    pub color: &'static str,
    pub text: String,
    pub mrkdwn_in: [&'static str; 1],
}

/// The most characters of an alert's message sent to Slack: Slack cuts a
/// message's text above 40,000 characters (and may refuse it with
/// `msg_too_long`), silently for whoever reads it.
pub const MAX_TEXT_CHARS: usize = 40_000;

/// The warning returned with a delivery whose message was cut to
/// [`MAX_TEXT_CHARS`].
pub const TRUNCATED_WARNING: &str = "handler_truncated_message";

/// `text` cut to at most [`MAX_TEXT_CHARS`] characters, with a visible
/// marker at the end saying how long it was; `None` when it fits. Cut on a
/// character boundary, so the text stays valid UTF-8.
pub fn truncate(text: &str) -> Option<String> {
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

/// Kapacitor's message: channel, username and icon from the options, else
/// the workspace; the alert's message as one attachment coloured by level.
/// A message longer than Slack takes is cut with a marker ([`truncate`]).
pub fn message(ws: &Workspace, options: &HandlerOptions, text: &str, level: Level) -> Message {
    let pick =
        |option: &str, section: &str| if option.is_empty() { section } else { option }.to_string();
    let text = truncate(text).unwrap_or_else(|| text.to_string());
    Message {
        attachments: vec![Attachment {
            fallback: text.clone(),
            color: level.color(),
            text,
            mrkdwn_in: ["text"],
        }],
        channel: pick(&options.channel, &ws.channel),
        icon_emoji: pick(&options.icon_emoji, &ws.icon_emoji),
        text: String::new(),
        username: pick(&options.username, &ws.username),
    }
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
            // Serializing plain strings into a Vec cannot fail.
            body: serde_json::to_vec(message).unwrap_or_default(),
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
            body: String::from_utf8_lossy(&self.body).into_owned(),
        }
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
    use serde_json::{json, Value};

    fn ws() -> Workspace {
        Workspace {
            enabled: true,
            url: Secret::new("https://slack.com/api/chat.postMessage"),
            channel: "#alerts".into(),
            username: "AlertBot".into(),
            ..Workspace::default()
        }
    }

    fn body(m: &Message) -> Value {
        serde_json::to_value(m).unwrap()
    }

    #[test]
    fn kapacitor_oracle_payload() {
        // One section, username kapacitor, option channel #test, CRITICAL.
        let w = Workspace {
            username: "kapacitor".into(),
            channel: String::new(),
            ..ws()
        };
        let o = HandlerOptions {
            channel: "#test".into(),
            ..Default::default()
        };
        assert_eq!(
            body(&message(&w, &o, "message", Level::Critical)),
            json!({"attachments":[{"fallback":"message","color":"danger","text":"message","mrkdwn_in":["text"]}],
                   "channel":"#test","icon_emoji":"","text":"","username":"kapacitor"})
        );
    }

    #[test]
    fn keys_are_written_in_gos_sorted_order() {
        let m = message(&ws(), &HandlerOptions::default(), "m", Level::Ok);
        let s = String::from_utf8(Request::new(&ws(), &m).body).unwrap();
        assert!(s.starts_with(r##"{"attachments":[{"fallback":"m","color":"good","text":"m","mrkdwn_in":["text"]}],"channel":"#alerts","icon_emoji":"","text":"","username":"AlertBot"}"##), "{s}");
    }

    #[test]
    fn options_override_and_empty_options_fall_back() {
        let w = Workspace {
            icon_emoji: ":ws:".into(),
            ..ws()
        };
        let o = HandlerOptions {
            channel: String::new(),
            username: "Other".into(),
            icon_emoji: ":fire:".into(),
            ..Default::default()
        };
        let m = message(&w, &o, "x", Level::Warning);
        assert_eq!(
            (
                m.channel.as_str(),
                m.username.as_str(),
                m.icon_emoji.as_str()
            ),
            ("#alerts", "Other", ":fire:")
        );
        assert_eq!(m.attachments[0].color, "warning");
        let m = message(&w, &HandlerOptions::default(), "x", Level::Info);
        assert_eq!(m.icon_emoji, ":ws:");
    }

    #[test]
    fn no_slack_escaping_is_done() {
        let m = message(
            &ws(),
            &HandlerOptions::default(),
            "a < b & c > d",
            Level::Critical,
        );
        assert_eq!(m.attachments[0].text, "a < b & c > d");
    }

    #[test]
    fn bearer_only_with_a_token() {
        let m = message(&ws(), &HandlerOptions::default(), "x", Level::Critical);
        let without = Request::new(&ws(), &m);
        assert!(!without.headers().iter().any(|(k, _)| k == "authorization"));
        let with = Request::new(
            &Workspace {
                token: Secret::new("xoxb-1"),
                ..ws()
            },
            &m,
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
        let p =
            Request::new(&w, &message(&w, &HandlerOptions::default(), "x", Level::Ok)).preview();
        let shown = format!("{p:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(p.url, "https://hooks.slack.com/[redacted]");
        assert!(p
            .headers
            .contains(&("authorization".into(), "Bearer [redacted]".into())));
    }

    #[test]
    fn a_forty_thousand_character_message_is_kept_whole() {
        let text = "x".repeat(40_000);
        let m = message(&ws(), &HandlerOptions::default(), &text, Level::Critical);
        assert_eq!(m.attachments[0].text.len(), 40_000);
        assert!(truncate(&text).is_none());
    }

    #[test]
    fn a_longer_message_is_cut_with_a_visible_marker() {
        // Multi-byte characters: the cut must fall on a character boundary.
        let text = "é🔥".repeat(500_000);
        let m = message(&ws(), &HandlerOptions::default(), &text, Level::Critical);
        let sent = &m.attachments[0].text;
        assert_eq!(sent.chars().count(), MAX_TEXT_CHARS);
        assert!(sent.ends_with(
            "… [message truncated by slack-alert-handler: it had 1000000 characters, Slack takes 40000]"
        ), "{}", &sent[sent.len() - 200..]);
        assert!(text.starts_with(sent.split('\n').next().unwrap()));
        assert_eq!(m.attachments[0].fallback, *sent);
        let one_more = "x".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(truncate(&one_more).unwrap().chars().count(), MAX_TEXT_CHARS);
    }
}
