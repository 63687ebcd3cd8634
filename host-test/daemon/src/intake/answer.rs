//! What intake answers: JSON bodies, refusals (each counted by status), and
//! the `503` that tells a client nothing was kept and when to try again.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::Front;
use crate::store::StoreError;

/// An HTTP answer, its body whole.
pub(crate) type Answer = Response<Full<Bytes>>;

/// How long a client should wait before posting again after a `503`.
const RETRY_AFTER_SECS: u64 = 5;

/// `status` with a JSON body.
pub(crate) fn answer(status: StatusCode, body: serde_json::Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A refusal: counted, and said in JSON.
pub(crate) fn refuse(front: &Front, status: StatusCode, error: &str) -> Answer {
    front.metrics.refused(status.as_u16());
    answer(status, json!({ "error": error }))
}

/// `503` with `Retry-After`: nothing of the request was kept.
pub(crate) fn unavailable(front: &Front, error: &str) -> Answer {
    let mut refused = refuse(front, StatusCode::SERVICE_UNAVAILABLE, error);
    refused
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    refused
}

/// A write the store would not take (full, or a resend of nothing).
pub(crate) fn refused_by_store(front: &Front, e: &StoreError) -> Answer {
    match e {
        StoreError::NotFailed { .. } => refuse(front, StatusCode::NOT_FOUND, &e.to_string()),
        StoreError::JournalFull { .. } | StoreError::Unavailable(_) => {
            unavailable(front, &e.to_string())
        }
        StoreError::Io(_) => refuse(front, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A write the store could not make durable (a full disk): dropped, so
/// the client may send it again without making a duplicate.
pub(crate) fn not_stored(front: &Front, e: &std::io::Error) -> Answer {
    let why = front
        .commit
        .read(|store| store.trouble())
        .unwrap_or_else(|| e.to_string());
    unavailable(
        front,
        &format!("nothing of this request was stored, send it again later: {why}"),
    )
}
