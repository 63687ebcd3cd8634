//! `GET /healthz`, without authentication, for load balancers.

use hyper::StatusCode;
use serde_json::json;

use crate::intake::answer::{answer, Answer};
use crate::intake::Front;

/// Ready: serve listens only once its spool is open and its instances are
/// configured. Plugins that did not load are named. Degraded while the
/// spool cannot be written (a full disk): alerts are refused with 503
/// until a write succeeds again.
pub(crate) fn respond(front: &Front) -> Answer {
    let (trouble, kind, node) = front
        .commit
        .read(|store| (store.trouble(), store.kind(), store.node()));
    let (status, mut health) = match &trouble {
        None => (StatusCode::OK, json!({"status": "ready"})),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "degraded", "reason": why}),
        ),
    };
    health["store"] = json!(kind);
    if let Some(node) = node {
        health["node"] = json!(node);
    }
    if !front.broken.is_empty() {
        health["broken"] = json!(front.broken);
    }
    if let Some(socket) = &front.socket {
        health["socket_mode"] = json!(socket.status());
    }
    answer(status, health)
}
