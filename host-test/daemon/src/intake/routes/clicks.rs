//! `POST /slack/interactions`, the Slack app's Request URL: clicks on
//! alerts' buttons, signed by Slack (serve's token is not asked for).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use tokio::sync::Semaphore;

use crate::intake::answer::{refuse, unavailable, Answer};
use crate::intake::body::{read_within, Unread};
use crate::intake::Front;
use crate::interactions::clicks::Handled;
use crate::interactions::screen::{self, Reason};

/// A click on an alert's buttons. Screened on its head first ([`screen`]):
/// `401` without both signature headers or with a stale timestamp, `413`
/// past the click limit, `429` while every verification slot is taken —
/// each before the body is read or an instance taken. Then `401` unless
/// the component verified it (and nothing changes); `200` once what it
/// asks is recorded, or when it is signed but nothing this handler takes
/// (logged).
pub(crate) async fn respond(
    req: Request<hyper::body::Incoming>,
    front: &Front,
    verifying: &Arc<Semaphore>,
) -> Answer {
    let Some(clicks) = &front.clicks else {
        return refuse(
            front,
            StatusCode::NOT_FOUND,
            "this serve takes no interactions",
        );
    };
    let refused = |reason: Reason, why: &str| {
        clicks.refusals().refused(reason, why);
        let (status, error) = match reason {
            Reason::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than any click ({} KiB, serve --max-click-kib)",
                    front.limits.max_click_bytes / 1024
                ),
            ),
            Reason::Busy => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests to verify at once (serve --max-verifications)".into(),
            ),
            _ => (StatusCode::UNAUTHORIZED, why.to_string()),
        };
        let mut answer = refuse(front, status, &error);
        if reason == Reason::Busy {
            answer
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(1u32));
        }
        answer
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Err(reason) = screen::screen(req.headers(), now, front.limits.max_click_bytes) {
        let why = match reason {
            Reason::Unsigned => "not signed: X-Slack-Request-Timestamp and X-Slack-Signature (v0=<64 hex digits>) are required".to_string(),
            Reason::Stale => format!(
                "X-Slack-Request-Timestamp is not within {} s of now: stale or replayed",
                screen::MAX_AGE
            ),
            _ => "the declared body is larger than any click".to_string(),
        };
        return refused(reason, &why);
    }
    // The slot is held while the body is read and verified: memory and
    // CPU spent on unverified requests are bounded by it.
    let Ok(_verifying) = verifying.clone().try_acquire_owned() else {
        return refused(Reason::Busy, "every verification slot was taken");
    };
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let limit = front.limits.max_click_bytes;
    let body = match read_within(req, front, limit).await {
        Ok(body) => body,
        Err(Unread::TooLarge) => {
            return refused(Reason::TooLarge, "the body grew larger than any click")
        }
        Err(Unread::Refused(refused)) => return refused,
    };
    match clicks.request(headers, body.to_vec()).await {
        Handled::Done => {
            let mut done = Response::new(Full::new(Bytes::new()));
            *done.status_mut() = StatusCode::OK;
            done
        }
        Handled::Refused => refuse(
            front,
            StatusCode::UNAUTHORIZED,
            "not signed by Slack with a signing secret this serve knows, or stale",
        ),
        Handled::Unavailable(why) => {
            unavailable(front, &format!("the click could not be recorded: {why}"))
        }
    }
}
