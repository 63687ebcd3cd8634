//! `POST /spool/resend`: failed alerts the store keeps, accepted again as
//! new alerts.

use hyper::{Request, StatusCode};
use serde_json::json;

use crate::intake::answer::{answer, not_stored, refuse, refused_by_store, Answer};
use crate::intake::body::read_body;
use crate::intake::Front;
use crate::store::StoreError;

/// `{"failed": true}` or `{"ids": [N, ...]}`: `202 {"resent": [{"id": N,
/// "as": M}, ...]}` once on disk; `404` naming an id that is not a kept
/// failed alert (then nothing is resent).
pub(crate) async fn respond(req: Request<hyper::body::Incoming>, front: &Front) -> Answer {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        #[serde(default)]
        failed: bool,
        #[serde(default)]
        ids: Vec<u64>,
    }
    let body = match read_body(req, front).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let ask: Ask = match serde_json::from_slice(&body) {
        Ok(ask) => ask,
        Err(e) => {
            return refuse(
                front,
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"failed\": true}} or {{\"ids\": [N, ...]}}: {e}"),
            )
        }
    };
    let named = (!ask.failed).then_some(ask.ids);
    let found = front.commit.read(|store| store.resendable(named));
    let failed = match found.await {
        Ok(failed) => failed,
        Err(e @ StoreError::NotFailed { .. }) => {
            return refuse(front, StatusCode::NOT_FOUND, &e.to_string())
        }
        Err(e) => return refused_by_store(front, &e),
    };
    let written = front.commit.write(|store| store.resend(&failed));
    let resent = match written {
        Ok((resent, durable)) => match durable.wait().await {
            Ok(()) => resent,
            Err(e) => return not_stored(front, &e),
        },
        Err(e @ StoreError::NotFailed { .. }) => {
            return refuse(front, StatusCode::NOT_FOUND, &e.to_string())
        }
        Err(e) => return refused_by_store(front, &e),
    };
    front.metrics.accepted(resent.len() as u64);
    answer(
        StatusCode::ACCEPTED,
        json!({ "resent": resent
            .iter()
            .map(|(old, t)| json!({"id": old, "as": t.id}))
            .collect::<Vec<_>>() }),
    )
}
