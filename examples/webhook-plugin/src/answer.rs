//! What the service's answer means: 2xx delivered; 429 and 5xx worth
//! retrying (after `Retry-After`, when it says); anything else refused.

use crate::error::{HandlerError, Rejection, TransientFailure};

/// The most of an answer's body that is read; the rest is not needed.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How much of the body an error message quotes, in characters.
const QUOTED_CHARS: usize = 200;

/// Classifies an answer from `authority` (`host[:port]`).
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    authority: &str,
) -> Result<(), HandlerError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let code = format!("http_{status}");
    let message = describe(status, body, authority);
    if status == 429 || (500..600).contains(&status) {
        return Err(HandlerError::Transient(TransientFailure {
            status: Some(status),
            code,
            // Whole seconds only; an HTTP date is left to the host's backoff.
            retry_after_seconds: retry_after.and_then(|v| v.trim().parse().ok()),
            message,
        }));
    }
    Err(HandlerError::Rejected(Rejection {
        status,
        code,
        message,
    }))
}

/// `host answered HTTP 400: <the start of the body>`, on one line.
fn describe(status: u16, body: &[u8], authority: &str) -> String {
    let text = String::from_utf8_lossy(body);
    let start: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(QUOTED_CHARS)
        .collect();
    if start.is_empty() {
        format!("{authority} answered HTTP {status} with no body")
    } else {
        format!("{authority} answered HTTP {status}: {start}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundreds_are_delivered() {
        for status in [200, 201, 202, 204] {
            assert_eq!(classify(status, None, b"", "x"), Ok(()));
        }
    }

    #[test]
    fn too_many_requests_and_server_errors_are_transient() {
        let e = classify(429, Some(" 30 "), b"slow down", "hooks.example.com").unwrap_err();
        assert_eq!(
            e,
            HandlerError::Transient(TransientFailure {
                status: Some(429),
                code: "http_429".into(),
                retry_after_seconds: Some(30),
                message: "hooks.example.com answered HTTP 429: slow down".into(),
            })
        );
        let e = classify(503, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b"", "x").unwrap_err();
        assert!(matches!(
            e,
            HandlerError::Transient(TransientFailure { status: Some(503), retry_after_seconds: None, ref message, .. })
                if message == "x answered HTTP 503 with no body"
        ));
    }

    #[test]
    fn other_statuses_are_refused_with_the_start_of_the_body() {
        let body = format!("{{\"error\":\n\"bad payload\"}}{}", "x".repeat(1000));
        let Err(HandlerError::Rejected(r)) = classify(400, None, body.as_bytes(), "x") else {
            panic!("expected a rejection");
        };
        assert_eq!((r.status, r.code.as_str()), (400, "http_400"));
        assert!(
            r.message
                .starts_with("x answered HTTP 400: {\"error\": \"bad payload\"}xxx"),
            "{}",
            r.message
        );
        assert!(r.message.chars().count() < 250);
        assert!(matches!(
            classify(404, None, &[0xff, 0xfe], "x"),
            Err(HandlerError::Rejected(_))
        ));
        assert!(matches!(
            classify(301, None, b"", "x"),
            Err(HandlerError::Rejected(_))
        ));
    }
}
