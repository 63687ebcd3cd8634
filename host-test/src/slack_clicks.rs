//! Clicks as Slack sends them, for the stand-in's tests: a `block_actions`
//! payload for a button of an alert's message, and the form body Slack
//! posts to the app's Request URL with its `v0` signature (HMAC-SHA256 of
//! `v0:<timestamp>:<body>` under the app's signing secret).

use serde_json::{json, Value};

/// A click on the button `action_id` (value `value`) of message `ts` in
/// channel `channel_id` by `user`, as Slack's `block_actions` payload.
pub fn block_actions(
    action_id: &str,
    value: &str,
    user: &str,
    channel_id: &str,
    ts: &str,
    response_url: &str,
) -> Value {
    // Each click its own, as Slack's are: a trigger id and an action time
    // never seen before (the same click sent again is another test's).
    static CLICKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = CLICKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let trigger_id = format!("{}.{n}.{}", now(), std::process::id());
    let action_ts = format!("{}.{n:06}", now());
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": "on-call", "team_id": "T0001"},
        // The tests' sections name their workspace `alerts`: its domain.
        "team": {"id": "T0001", "domain": "alerts"},
        "api_app_id": "A0001",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel_id, "is_ephemeral": false},
        "channel": {"id": channel_id, "name": "alerts"},
        "message": {"type": "message", "ts": ts},
        "response_url": response_url,
        "trigger_id": trigger_id,
        "actions": [{"action_id": action_id, "block_id": "alert-actions", "value": value,
            "type": "button", "action_ts": action_ts}],
    })
}

/// A `[[slack]]` section for clicks: Web API at `slack_url` (the
/// stand-in's), Block Kit with Acknowledge and Silence buttons, Slack's
/// signing secret `secret` (the benchmarks' workspace).
pub fn buttons_config(slack_url: &str, secret: &str) -> String {
    format!(
        "[[slack]]\nenabled = true\ndefault = true\nworkspace = \"alerts\"\nurl = \"{slack_url}/api/chat.postMessage\"\ntoken = \"xoxb-bench\"\nchannel = \"#alerts\"\nlayout = \"blocks\"\nactions = \"acknowledge,silence\"\nsigning-secret = \"{secret}\"\n"
    )
}

/// The form body Slack posts: `payload=` and the payload, URL-encoded.
pub fn form(payload: &Value) -> String {
    let text = payload.to_string();
    let mut out = String::from("payload=");
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Slack's signature of `body` sent at `timestamp` (Unix seconds) under
/// `secret`: `v0=` and the hex HMAC-SHA256 of `v0:<timestamp>:<body>`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The whole HTTP/1.1 request Slack makes to the Request URL `path`:
/// `body` signed under `secret` at `timestamp` (`None`: unsigned).
pub fn request(path: &str, body: &str, signed: Option<(&str, i64)>) -> String {
    let headers = match signed {
        Some((secret, timestamp)) => format!(
            "X-Slack-Request-Timestamp: {timestamp}\r\nX-Slack-Signature: {}\r\n",
            signature(secret, timestamp, body)
        ),
        None => String::new(),
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
