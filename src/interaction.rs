//! A click on one of an alert's buttons, as Slack posts it to the app's
//! Request URL: verified by its signature under a workspace's signing
//! secret, then read. Slack's rules live here, beside the rest of Slack;
//! the host only passes the request on and does what it asks.
//!
//! - `X-Slack-Signature` must be `v0=` and the hex HMAC-SHA256 of
//!   `v0:<X-Slack-Request-Timestamp>:<raw body>` under a section's
//!   `signing-secret`, compared in constant time, and the timestamp within
//!   [`MAX_AGE`] seconds of now (a replay later is refused).
//! - The body is Slack's form, `payload=<JSON>`, of type `block_actions`;
//!   each button's `action_id` says what it asks (`acknowledge`,
//!   `silence:<duration>`, `unsilence`) and its `value` names the alert.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::config::Config;

/// How far a request's timestamp may be from now, in seconds.
pub const MAX_AGE: i64 = 300;

/// What a button asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    /// Silence the alert for this many seconds.
    Silence(u64),
    Unsilence,
}

/// A verified click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// The section whose signing secret verified it.
    pub workspace: String,
    /// The alert the button names (its `value`: the key the host keeps the
    /// alert's message under).
    pub alert: String,
    pub action: Action,
    /// Who clicked: Slack's user id.
    pub user: String,
    /// The message clicked: its channel id and `ts`.
    pub channel_id: String,
    pub ts: String,
    /// Where to answer the user alone (`response_url`).
    pub response_url: Option<String>,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A verified click: do what it asks.
    Act(Interaction),
    /// Signed, but not a click this handler takes: answer `200`, log why.
    Ignore(String),
    /// Not verified (no or a wrong signature, a stale timestamp): answer
    /// `401`, change nothing.
    Refuse(String),
}

/// Verifies and reads a request Slack posted (`headers` as received, any
/// case; `body` raw), at `now` (Unix seconds).
pub fn read(config: &Config, headers: &[(String, String)], body: &[u8], now: i64) -> Outcome {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let (Some(timestamp), Some(signature)) = (
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
    ) else {
        return Outcome::Refuse(
            "not signed: X-Slack-Request-Timestamp and X-Slack-Signature are required".into(),
        );
    };
    let Ok(at) = timestamp.parse::<i64>() else {
        return Outcome::Refuse("X-Slack-Request-Timestamp is not a number of seconds".into());
    };
    if (now - at).abs() > MAX_AGE {
        return Outcome::Refuse(format!(
            "X-Slack-Request-Timestamp is {} s from now, more than {MAX_AGE}: stale or replayed",
            (now - at).abs()
        ));
    }
    let Some(expected) = signature.strip_prefix("v0=").and_then(unhex) else {
        return Outcome::Refuse("X-Slack-Signature is not v0= and 64 hex digits".into());
    };
    let mut secrets = config
        .workspaces
        .iter()
        .filter(|ws| !ws.signing_secret.is_empty())
        .peekable();
    if secrets.peek().is_none() {
        return Outcome::Refuse(
            "no [[slack]] section has a signing-secret: this handler takes no interactions".into(),
        );
    }
    let signed = secrets.find(|ws| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(ws.signing_secret.expose().as_bytes())
        else {
            return false;
        };
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        // Constant time.
        mac.verify_slice(&expected).is_ok()
    });
    let Some(workspace) = signed else {
        return Outcome::Refuse("X-Slack-Signature matches no section's signing-secret".into());
    };
    match click(body) {
        Ok(mut interaction) => {
            interaction.workspace = workspace.id.clone();
            Outcome::Act(interaction)
        }
        Err(why) => Outcome::Ignore(why),
    }
}

/// The click a signed body holds, or why it holds none this handler takes.
fn click(body: &[u8]) -> Result<Interaction, String> {
    let body = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    let payload = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("payload="))
        .ok_or("the body has no payload= (not an interaction)")?;
    let payload = form_decode(payload).ok_or("payload= is not percent-encoded UTF-8")?;
    // From a slice into a Value, as Slack's answers are read (one
    // deserializer in the component, not two).
    let value = match serde_json::from_slice(payload.as_bytes()) {
        Ok(value @ Value::Object(_)) => value,
        _ => return Err("payload is not a JSON object".into()),
    };
    let kind = value["type"].as_str().unwrap_or_default();
    if kind != "block_actions" {
        return Err(format!(
            "an interaction of type `{kind}`, not block_actions"
        ));
    }
    let action = &value["actions"][0];
    let action_id = action["action_id"]
        .as_str()
        .ok_or("actions[0].action_id: missing")?;
    let alert = action["value"]
        .as_str()
        .ok_or("actions[0].value: missing")?;
    let action =
        match action_id {
            "acknowledge" => Action::Acknowledge,
            "unsilence" => Action::Unsilence,
            other => match other.strip_prefix("silence:") {
                Some(duration) => Action::Silence(seconds(duration).ok_or_else(|| {
                    format!("actions[0].action_id: `{other}` does not say how long")
                })?),
                None => {
                    return Err(format!(
                        "actions[0].action_id: `{other}` is not one of ours"
                    ))
                }
            },
        };
    let text = |v: &Value| v.as_str().map(str::to_string);
    let user = text(&value["user"]["id"]).ok_or("user.id: missing")?;
    let channel_id = text(&value["container"]["channel_id"])
        .or_else(|| text(&value["channel"]["id"]))
        .ok_or("container.channel_id: missing")?;
    let ts = text(&value["container"]["message_ts"])
        .or_else(|| text(&value["message"]["ts"]))
        .ok_or("container.message_ts: missing")?;
    Ok(Interaction {
        workspace: String::new(),
        alert: alert.to_string(),
        action,
        user,
        channel_id,
        ts,
        response_url: text(&value["response_url"]),
    })
}

/// `1h`, `30m`, `1d`, `1h30m`: seconds (Go's units, and Kapacitor's `d`).
pub fn seconds(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
    }
    (number.is_empty() && total > 0).then_some(total)
}

/// Hex digits to bytes (a SHA-256: 32 of them).
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An `application/x-www-form-urlencoded` value: `+` is a space, `%XX` a
/// byte.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const NOW: i64 = 1_764_410_000;

    fn config() -> Config {
        Config::parse(&format!(
            "[[slack]]\nenabled = true\nworkspace = \"alerts\"\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-1\"\nsigning-secret = \"{SECRET}\"\n"
        ))
        .unwrap()
    }

    fn body(action_id: &str) -> String {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U123", "username": "ana"},
            "container": {"type": "message", "message_ts": "1764410000.000100", "channel_id": "C0OPS"},
            "response_url": "https://hooks.slack.com/actions/T1/1/abc",
            "actions": [{"action_id": action_id, "value": "[\"cpu\",[]]", "type": "button"}],
        })
        .to_string();
        let encoded: String = payload
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                b => format!("%{b:02X}"),
            })
            .collect();
        format!("payload={encoded}")
    }

    fn signed(secret: &str, timestamp: i64, body: &str) -> Vec<(String, String)> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{timestamp}:{body}").as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        vec![
            ("X-Slack-Request-Timestamp".into(), timestamp.to_string()),
            ("x-slack-signature".into(), format!("v0={hex}")),
        ]
    }

    #[test]
    fn a_signed_click_is_read() {
        let b = body("silence:1d");
        match read(&config(), &signed(SECRET, NOW, &b), b.as_bytes(), NOW + 10) {
            Outcome::Act(i) => {
                assert_eq!(i.workspace, "alerts");
                assert_eq!(i.alert, "[\"cpu\",[]]");
                assert_eq!(i.action, Action::Silence(86_400));
                assert_eq!((i.user.as_str(), i.channel_id.as_str()), ("U123", "C0OPS"));
                assert_eq!(i.ts, "1764410000.000100");
                assert!(i.response_url.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_a_right_signature_within_five_minutes_is_taken() {
        let b = body("acknowledge");
        let refused = |headers: Vec<(String, String)>, body: &str, now: i64| {
            matches!(
                read(&config(), &headers, body.as_bytes(), now),
                Outcome::Refuse(_)
            )
        };
        assert!(!refused(signed(SECRET, NOW, &b), &b, NOW + MAX_AGE));
        assert!(
            refused(signed("another-secret", NOW, &b), &b, NOW),
            "wrong secret"
        );
        assert!(
            refused(signed(SECRET, NOW, &b), &body("unsilence"), NOW),
            "wrong body"
        );
        assert!(
            refused(signed(SECRET, NOW, &b), &b, NOW + MAX_AGE + 1),
            "stale: 5 min 1 s"
        );
        assert!(refused(vec![], &b, NOW), "missing headers");
        let mut no_signature = signed(SECRET, NOW, &b);
        no_signature.pop();
        assert!(refused(no_signature, &b, NOW), "missing signature");
        // A replay of a valid request, after five minutes.
        assert!(refused(signed(SECRET, NOW, &b), &b, NOW + 301));
        let without = Config::parse(
            "[[slack]]\nenabled = true\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-1\"\n",
        )
        .unwrap();
        match read(&without, &signed(SECRET, NOW, &b), b.as_bytes(), NOW) {
            Outcome::Refuse(why) => assert!(why.contains("no [[slack]] section"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn signed_but_unexpected_is_ignored_naming_why() {
        let view = "payload=%7B%22type%22%3A%22view_submission%22%7D";
        match read(&config(), &signed(SECRET, NOW, view), view.as_bytes(), NOW) {
            Outcome::Ignore(why) => assert!(why.contains("view_submission"), "{why}"),
            other => panic!("{other:?}"),
        }
        let b = body("escalate");
        match read(&config(), &signed(SECRET, NOW, &b), b.as_bytes(), NOW) {
            Outcome::Ignore(why) => assert!(why.contains("`escalate`"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations_are_go_units_and_days() {
        assert_eq!(seconds("1h"), Some(3_600));
        assert_eq!(seconds("1h30m"), Some(5_400));
        assert_eq!(seconds("1d"), Some(86_400));
        assert_eq!(seconds("90s"), Some(90));
        assert_eq!(seconds("1"), None);
        assert_eq!(seconds("0h"), None);
        assert_eq!(seconds("1y"), None);
    }
}
