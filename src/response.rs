//! What Slack's answer means: delivered, refused (don't retry) or transient
//! (retry, after `Retry-After` when given). Pure functions of the status,
//! the `Retry-After` header and the body.
//!
//! Kapacitor counts any 200 as success; here a Web API `200 {"ok":false}` is
//! an error carrying Slack's code.

use serde_json::{Map, Value};

use crate::error::{HandlerError, SlackRejection, TransientFailure};

/// A successful answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// chat.postMessage's `channel` (an id such as `C0123`).
    pub channel_id: Option<String>,
    /// chat.postMessage's `ts`.
    pub ts: Option<String>,
    /// `warning` and `response_metadata.warnings`, in that order.
    pub warnings: Vec<String>,
}

/// The warning added when a 2xx answer is neither the Web API's JSON nor a
/// webhook's `ok`: Slack-compatible servers (Mattermost, Rocket.Chat) answer
/// that way, and Kapacitor counts it as delivered, so we do too, visibly.
pub const UNRECOGNISED_SUCCESS: &str = "unrecognised_response";

/// The warning added when a 2xx answer was too large to read whole (the
/// transport stops at its limit): Slack accepted the message, but its
/// details (channel id, `ts`) could not be read.
pub const TRUNCATED_SUCCESS: &str = "response_too_large";

/// Web API error codes that say Slack is rate limiting the sender (the
/// Web API spells it both ways).
const RATE_LIMITED_CODES: [&str; 2] = ["rate_limited", "ratelimited"];

/// Whether an answer (its HTTP status, its error code) is Slack's rate
/// limit: the one definition, for the component and for hosts.
pub fn is_rate_limited(status: Option<u16>, code: &str) -> bool {
    status == Some(429) || RATE_LIMITED_CODES.contains(&code)
}

/// Web API error codes that go away on their own.
const TRANSIENT_CODES: [&str; 5] = [
    RATE_LIMITED_CODES[0],
    RATE_LIMITED_CODES[1],
    "internal_error",
    "service_unavailable",
    "request_timeout",
];

/// Classifies one HTTP answer from a Slack endpoint. `truncated` says the
/// body is only the start of a larger one.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    truncated: bool,
) -> Result<Answer, HandlerError> {
    if truncated && (200..300).contains(&status) {
        return Ok(Answer {
            warnings: vec![TRUNCATED_SUCCESS.to_string()],
            ..Answer::default()
        });
    }
    let json: Option<Map<String, Value>> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let code = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| looks_like_code(text).then(|| text.to_string()));
    let retry_after_seconds = retry_after
        .and_then(|h| h.trim().parse::<u32>().ok())
        .or_else(|| {
            json.as_ref()
                .and_then(|j| j.get("retry_after"))
                .and_then(Value::as_u64)
                .map(|s| s.min(u64::from(u32::MAX)) as u32)
        });

    if (200..300).contains(&status) {
        if let Some(ok) = json
            .as_ref()
            .and_then(|j| j.get("ok"))
            .and_then(Value::as_bool)
        {
            let j = json.as_ref().expect("ok came from the JSON");
            if ok {
                return Ok(web_api_success(j));
            }
            let code = code.unwrap_or_else(|| "unknown".to_string());
            return Err(refusal_or_transient(
                status,
                code,
                retry_after_seconds,
                Some(j),
            ));
        }
        if text == "ok" {
            return Ok(Answer::default());
        }
        return Ok(Answer {
            warnings: vec![UNRECOGNISED_SUCCESS.to_string()],
            ..Answer::default()
        });
    }

    let code_or_status = code.clone().unwrap_or_else(|| format!("http_{status}"));
    if status == 429 {
        return Err(HandlerError::Transient(TransientFailure {
            status: Some(status),
            code: code.unwrap_or_else(|| "rate_limited".to_string()),
            retry_after_seconds,
            message: "Slack is rate limiting this sender".to_string(),
        }));
    }
    if status == 408 || status >= 500 {
        return Err(HandlerError::Transient(TransientFailure {
            status: Some(status),
            message: match &code {
                Some(c) => describe(c, None),
                None => not_understood(status, text),
            },
            code: code_or_status,
            retry_after_seconds,
        }));
    }
    match code {
        Some(code) => Err(refusal_or_transient(
            status,
            code,
            retry_after_seconds,
            json.as_ref(),
        )),
        None => Err(HandlerError::SlackRejected(SlackRejection {
            status,
            code: "unknown".to_string(),
            message: not_understood(status, text),
        })),
    }
}

fn web_api_success(j: &Map<String, Value>) -> Answer {
    let string = |key: &str| j.get(key).and_then(Value::as_str).map(str::to_string);
    let mut warnings: Vec<String> = string("warning")
        .map(|w| {
            w.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(list) = j
        .get("response_metadata")
        .and_then(|m| m.get("warnings"))
        .and_then(Value::as_array)
    {
        for w in list.iter().filter_map(Value::as_str) {
            if !warnings.iter().any(|have| have == w) {
                warnings.push(w.to_string());
            }
        }
    }
    Answer {
        channel_id: string("channel"),
        ts: string("ts"),
        warnings,
    }
}

fn refusal_or_transient(
    status: u16,
    code: String,
    retry_after_seconds: Option<u32>,
    json: Option<&Map<String, Value>>,
) -> HandlerError {
    let message = describe(&code, json);
    if TRANSIENT_CODES.contains(&code.as_str()) {
        HandlerError::Transient(TransientFailure {
            status: Some(status),
            code,
            retry_after_seconds,
            message,
        })
    } else {
        HandlerError::SlackRejected(SlackRejection {
            status,
            code,
            message,
        })
    }
}

/// A Slack error code is short lower-case snake case.
fn looks_like_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Kapacitor's message for an answer it could not read, with the body cut
/// short.
fn not_understood(status: u16, text: &str) -> String {
    let excerpt: String = text.chars().take(200).collect();
    let more = if text.chars().count() > 200 {
        "..."
    } else {
        ""
    };
    format!("failed to understand Slack response. code: {status} content: {excerpt}{more}")
}

/// What a person should know about a Slack error code.
fn describe(code: &str, json: Option<&Map<String, Value>>) -> String {
    let field = |k: &str| {
        json.and_then(|j| j.get(k))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    match code {
        "channel_not_found" => "the channel does not exist or the bot cannot see it".into(),
        "not_in_channel" => {
            "the bot is not in the channel: invite it, or grant chat:write.public".into()
        }
        "is_archived" | "channel_is_archived" => "the channel is archived".into(),
        "msg_too_long" => "the message is too long".into(),
        "no_text" => "the message has no text".into(),
        "invalid_blocks" => "the message's blocks are invalid".into(),
        "restricted_action" => "a workspace preference prevents posting to this channel".into(),
        "too_many_attachments" => "the message has too many attachments".into(),
        "invalid_auth" | "invalid_token" => "the token is not valid".into(),
        "not_authed" => "no token was sent: set `token` for a Web API URL".into(),
        "account_inactive" => "the token's user or app is deactivated".into(),
        "token_revoked" => "the token has been revoked".into(),
        "access_denied" => "access was denied".into(),
        "missing_scope" => format!(
            "the token lacks a scope: needed {}, provided {}",
            field("needed"),
            field("provided")
        ),
        "invalid_arguments" => "Slack did not accept the request's arguments".into(),
        "invalid_payload" => "Slack could not read the message body".into(),
        "user_not_found" => "the user named as channel does not exist".into(),
        "action_prohibited" => "an administrator has restricted this webhook".into(),
        "posting_to_general_channel_denied" => "only admins may post to #general".into(),
        "no_service" => "the webhook is disabled or was removed".into(),
        "fatal_error" => {
            "Slack failed and may have posted the message anyway; not retried, to avoid a duplicate"
                .into()
        }
        code if is_rate_limited(None, code) => "Slack is rate limiting this sender".into(),
        "internal_error" | "service_unavailable" | "rollup_error" => {
            "Slack had an internal failure".into()
        }
        "request_timeout" => "Slack timed out receiving the request".into(),
        _ => format!("Slack answered `{code}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(r: Result<Answer, HandlerError>) -> SlackRejection {
        match r {
            Err(HandlerError::SlackRejected(s)) => s,
            other => panic!("expected slack-rejected, got {other:?}"),
        }
    }

    fn transient(r: Result<Answer, HandlerError>) -> TransientFailure {
        match r {
            Err(HandlerError::Transient(t)) => t,
            other => panic!("expected transient, got {other:?}"),
        }
    }

    #[test]
    fn web_api_success_gives_channel_ts_and_warnings() {
        let a = classify(
            200,
            None,
            br#"{"ok":true,"channel":"C123","ts":"1503435956.000247","warning":"missing_charset","response_metadata":{"warnings":["missing_charset","message_truncated"]}}"#, false,
        )
        .unwrap();
        assert_eq!(a.channel_id.as_deref(), Some("C123"));
        assert_eq!(a.ts.as_deref(), Some("1503435956.000247"));
        assert_eq!(a.warnings, ["missing_charset", "message_truncated"]);
    }

    #[test]
    fn ok_false_at_200_is_reported() {
        let r = rejected(classify(
            200,
            None,
            br#"{"ok":false,"error":"channel_not_found"}"#,
            false,
        ));
        assert_eq!((r.status, r.code.as_str()), (200, "channel_not_found"));
    }

    #[test]
    fn missing_scope_names_the_scope() {
        let r = rejected(classify(
            200,
            None,
            br#"{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"users:read"}"#, false,
        ));
        assert_eq!(
            r.message,
            "the token lacks a scope: needed chat:write, provided users:read"
        );
    }

    #[test]
    fn transient_web_api_codes_are_transient() {
        for code in TRANSIENT_CODES {
            let body = format!(r#"{{"ok":false,"error":"{code}"}}"#);
            assert_eq!(
                transient(classify(200, None, body.as_bytes(), false)).code,
                code
            );
        }
    }

    #[test]
    fn fatal_error_is_not_retried() {
        let r = classify(200, None, br#"{"ok":false,"error":"fatal_error"}"#, false);
        assert!(matches!(r, Err(HandlerError::SlackRejected(_))));
    }

    #[test]
    fn webhook_ok_is_success() {
        assert_eq!(
            classify(200, None, b"ok", false).unwrap(),
            Answer::default()
        );
    }

    #[test]
    fn webhook_text_errors_are_errors() {
        for (status, code) in [
            (400, "invalid_payload"),
            (400, "user_not_found"),
            (403, "action_prohibited"),
            (403, "invalid_token"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
        ] {
            let r = rejected(classify(status, None, code.as_bytes(), false));
            assert_eq!((r.status, r.code.as_str()), (status, code));
        }
        let t = transient(classify(500, None, b"rollup_error", false));
        assert_eq!((t.status, t.code.as_str()), (Some(500), "rollup_error"));
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let t = transient(classify(
            429,
            Some("7"),
            br#"{"ok":false,"error":"rate_limited"}"#,
            false,
        ));
        assert_eq!(
            (t.code.as_str(), t.retry_after_seconds),
            ("rate_limited", Some(7))
        );
        let t = transient(classify(
            429,
            None,
            br#"{"retry_after":3,"ok":false,"error":"ratelimited"}"#,
            false,
        ));
        assert_eq!(t.retry_after_seconds, Some(3));
        let t = transient(classify(429, None, b"", false));
        assert_eq!(
            (t.code.as_str(), t.retry_after_seconds),
            ("rate_limited", None)
        );
    }

    #[test]
    fn non_2xx_reads_slacks_error() {
        let r = rejected(classify(403, None, br#"{"error":"invalid_auth"}"#, false));
        assert_eq!(r.code, "invalid_auth");
    }

    #[test]
    fn unreadable_non_2xx_is_reported_as_kapacitor_does() {
        let r = rejected(classify(404, None, b"<html>Not Found</html>", false));
        assert_eq!(r.code, "unknown");
        assert_eq!(
            r.message,
            "failed to understand Slack response. code: 404 content: <html>Not Found</html>"
        );
    }

    #[test]
    fn server_errors_are_transient() {
        let t = transient(classify(503, None, b"<html>down</html>", false));
        assert_eq!((t.code.as_str(), t.status), ("http_503", Some(503)));
    }

    #[test]
    fn too_large_2xx_is_delivered_with_a_warning() {
        let a = classify(
            200,
            None,
            b"{\"ok\":true,\"message\":{\"text\":\"xxxx",
            true,
        )
        .unwrap();
        assert_eq!(a.warnings, [TRUNCATED_SUCCESS]);
        let t = classify(503, None, b"<html>", true).unwrap_err();
        assert!(matches!(t, HandlerError::Transient(_)));
    }

    #[test]
    fn unrecognised_2xx_is_delivered_with_a_warning() {
        let a = classify(200, None, br#"{"success":true}"#, false).unwrap();
        assert_eq!(a.warnings, [UNRECOGNISED_SUCCESS]);
    }
}
