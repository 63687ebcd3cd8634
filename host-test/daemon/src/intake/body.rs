//! Reading a request's body within the limits: refused on its
//! `Content-Length` before reading, else once it grows past the limit;
//! `408` for one that trickles in.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::CONTENT_LENGTH;
use hyper::{Request, StatusCode};

use super::answer::{refuse, Answer};
use super::Front;

/// Reads a request's body within the limits, or says why not.
pub(crate) async fn read_body(
    req: Request<hyper::body::Incoming>,
    front: &Front,
) -> Result<Bytes, Answer> {
    let limit = front.limits.max_alert_bytes;
    match read_within(req, front, limit).await {
        Ok(body) => Ok(body),
        Err(Unread::TooLarge) => Err(refuse(
            front,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the body is larger than {} KiB (serve --max-alert-kib)",
                limit / 1024
            ),
        )),
        Err(Unread::Refused(refused)) => Err(refused),
    }
}

/// Why a body was not read.
pub(crate) enum Unread {
    /// It is (declared, or grew) larger than the limit: not yet answered.
    TooLarge,
    /// Answered: it broke off, or trickled in too slowly.
    Refused(Answer),
}

/// Reads a request's body of at most `limit` bytes, refused on its
/// `Content-Length` before reading, else once past it.
pub(crate) async fn read_within(
    req: Request<hyper::body::Incoming>,
    front: &Front,
    limit: usize,
) -> Result<Bytes, Unread> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Unread::TooLarge);
    }
    let body = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(front.limits.read_timeout, body).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Unread::TooLarge),
        Ok(Err(_)) => Err(Unread::Refused(refuse(
            front,
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        ))),
        Err(_) => Err(Unread::Refused(refuse(
            front,
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the body did not arrive within {} s",
                front.limits.read_timeout.as_secs()
            ),
        ))),
    }
}
