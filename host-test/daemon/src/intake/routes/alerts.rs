//! `POST /` (any path but the others'): alerts in the intake format
//! (Kapacitor's `post` JSON), or with `?topic=NAME` published to a topic
//! (`topics.rs`). [`take`] is also Alertmanager's, with its own format.

use hyper::{Request, StatusCode};
use serde_json::json;

use super::topics;
use crate::intake::answer::{answer, not_stored, refuse, refused_by_store, Answer};
use crate::intake::body::read_body;
use crate::intake::format::{query_options, IntakeFormat};
use crate::intake::Front;
use crate::store::StoreError;

/// Alerts in serve's intake format.
pub(crate) async fn respond(req: Request<hyper::body::Incoming>, front: &Front) -> Answer {
    take(req, front, &*front.format).await
}

/// Reads, decodes and spools one `POST`.
pub(crate) async fn take(
    req: Request<hyper::body::Incoming>,
    front: &Front,
    format: &dyn IntakeFormat,
) -> Answer {
    let options = query_options(req.uri().query().unwrap_or_default());
    let body = match read_body(req, front).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return refuse(front, StatusCode::BAD_REQUEST, "the alert is not UTF-8");
    };
    let alerts = match format.decode(text, options) {
        Ok(alerts) if alerts.is_empty() => {
            return refuse(front, StatusCode::BAD_REQUEST, "the request holds no alert");
        }
        Ok(alerts) => alerts,
        Err(e) => return refuse(front, StatusCode::BAD_REQUEST, &e),
    };
    // `?topic=NAME`: published to a topic, for its handlers to take.
    let topic = alerts[0]
        .options
        .iter()
        .rev()
        .find(|(k, _)| k == "topic")
        .map(|(_, v)| v.clone());
    // Refused here, naming what is wrong, rather than stored to fail later:
    // options the host reserves, and (for a delivery) options the component
    // would refuse. A topic's handlers bring their own options.
    if let Some(check) = &front.check {
        for incoming in &alerts {
            let verdict = match topic {
                Some(_) => check.refuse_host_only(&incoming.options),
                None => check.check(&incoming.alert, &incoming.options).await,
            };
            if let Err(e) = verdict {
                return refuse(front, StatusCode::BAD_REQUEST, &e);
            }
        }
    }
    if let Some(topic) = topic {
        return topics::publish(front, &topic, alerts).await;
    }
    // Written now, acknowledged once on disk: the committer shares one
    // fsync among every alert written meanwhile.
    // One request is one write: all of its alerts or none.
    let written = front.commit.write(|store| {
        alerts
            .into_iter()
            .map(|a| store.accept(&a.alert, a.options))
            .collect::<Result<Vec<_>, StoreError>>()
    });
    let tickets = match written {
        Ok((tickets, durable)) => match durable.wait().await {
            Ok(()) => tickets,
            Err(e) => return not_stored(front, &e),
        },
        Err(e) => return refused_by_store(front, &e),
    };
    front.metrics.accepted(tickets.len() as u64);
    match tickets.as_slice() {
        [one] => answer(StatusCode::ACCEPTED, json!({ "id": one.id })),
        many => answer(
            StatusCode::ACCEPTED,
            json!({ "ids": many.iter().map(|t| t.id).collect::<Vec<_>>() }),
        ),
    }
}
