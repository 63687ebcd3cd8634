//! `POST /?topic=NAME` (`serve --handlers DIR`): alerts published to a
//! topic, for its handlers to take.

use hyper::StatusCode;
use serde_json::json;

use crate::intake::answer::{answer, not_stored, refuse, refused_by_store, Answer};
use crate::intake::format::Incoming;
use crate::intake::Front;
use crate::store::StoreError;
use kapacitor_formats::aggregate::Collected;
use kapacitor_formats::alert_json;
use kapacitor_formats::topics::Route;

/// `POST /?topic=NAME`: each alert goes to the handlers of the topic whose
/// `match` holds: a delivery spooled per `slack` handler, a collection per
/// `aggregate`, `publish` passing it on. `202` once all of it is on disk,
/// with the new alerts' ids and the aggregates that collected it.
pub(super) async fn publish(front: &Front, topic: &str, alerts: Vec<Incoming>) -> Answer {
    let Some(handlers) = &front.topics else {
        return refuse(
            front,
            StatusCode::BAD_REQUEST,
            "`topic` needs serve --handlers DIR (a directory of topic-handler files)",
        );
    };
    let mut ids = Vec::new();
    let mut collected = Vec::new();
    let written = front.commit.write(|spool| {
        alerts.iter().try_for_each(|incoming| {
            let Ok(mut event) = alert_json::decode(&incoming.alert) else {
                return Ok(());
            };
            event.topic = Some(topic.to_string());
            // Spooled with its topic, as Kapacitor's event has it (templates
            // can show it).
            let alert = with_topic(&incoming.alert, topic);
            let (routes, notes) = handlers.route(topic, &event);
            for note in notes {
                tracing::warn!(topic, "{note}");
            }
            for route in routes {
                match route {
                    Route::Deliver { options, .. } => {
                        ids.push(spool.accept(&alert, options)?.id);
                    }
                    Route::Collect { handler } => {
                        let event = Collected::from_alert(&alert)
                            .map_err(|e| StoreError::Io(anyhow::anyhow!(e)))?;
                        spool.collect(&handler, event)?;
                        collected.push(handler);
                    }
                }
            }
            Ok(())
        })
    });
    match written {
        Ok(((), durable)) => {
            if let Err(e) = durable.wait().await {
                return not_stored(front, &e);
            }
        }
        Err(e) => return refused_by_store(front, &e),
    }
    front.metrics.accepted(ids.len() as u64);
    let mut body = json!({ "ids": ids, "collected": collected });
    if ids.is_empty() && collected.is_empty() {
        body["note"] = json!(format!("no handler of topic `{topic}` took it"));
    }
    answer(StatusCode::ACCEPTED, body)
}

/// The alert JSON with `topic` set.
fn with_topic(alert: &str, topic: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(alert) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("topic".into(), json!(topic));
            serde_json::Value::Object(map).to_string()
        }
        _ => alert.to_string(),
    }
}
