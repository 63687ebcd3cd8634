//! `POST /?topic=NAME` (`serve --handlers DIR`): each alert goes to the
//! handlers of the topic whose `match` holds: a delivery spooled per
//! `slack` handler, a collection per `aggregate`, `publish` passing it on.
//! Where each alert goes is decided first ([`route`]); only the writes it
//! decided are made under the store's lock, all of them in one write.

use hyper::StatusCode;
use serde_json::json;

use crate::intake::answer::{answer, not_stored, refuse, refused_by_store, Answer};
use crate::intake::format::Incoming;
use crate::intake::Front;
use crate::store::StoreError;
use kapacitor_formats::aggregate::Collected;
use kapacitor_formats::alert_json;
use kapacitor_formats::topics::{Handlers, Route};

/// `202` once all of it is on disk, with the new alerts' ids and the
/// aggregates that collected it.
pub(super) async fn publish(front: &Front, topic: &str, alerts: Vec<Incoming>) -> Answer {
    let Some(handlers) = &front.topics else {
        return refuse(
            front,
            StatusCode::BAD_REQUEST,
            "`topic` needs serve --handlers DIR (a directory of topic-handler files)",
        );
    };
    let routed = match route(handlers, topic, &alerts) {
        Ok(routed) => routed,
        Err(e) => return refused_by_store(front, &e),
    };
    let collected: Vec<String> = routed
        .iter()
        .flat_map(|r| &r.writes)
        .filter_map(|write| match write {
            Write::Collect { handler, .. } => Some(handler.clone()),
            Write::Deliver(_) => None,
        })
        .collect();
    let written = front.commit.write(|store| {
        let mut ids = Vec::new();
        for Routed { alert, writes } in routed {
            for write in writes {
                match write {
                    Write::Deliver(options) => ids.push(store.accept(&alert, options)?.id),
                    Write::Collect { handler, event } => {
                        store.collect(&handler, event)?;
                    }
                }
            }
        }
        Ok::<_, StoreError>(ids)
    });
    let ids = match written {
        Ok((ids, durable)) => match durable.wait().await {
            Ok(()) => ids,
            Err(e) => return not_stored(front, &e),
        },
        Err(e) => return refused_by_store(front, &e),
    };
    front.metrics.accepted(ids.len() as u64);
    let mut body = json!({ "ids": ids, "collected": collected });
    if ids.is_empty() && collected.is_empty() {
        body["note"] = json!(format!("no handler of topic `{topic}` took it"));
    }
    answer(StatusCode::ACCEPTED, body)
}

/// One alert published to a topic, and what its handlers write.
struct Routed {
    /// The alert JSON with `topic` set, as it is spooled.
    alert: String,
    /// In the order the handlers take it.
    writes: Vec<Write>,
}

/// A write a topic's handler asks for.
enum Write {
    /// A delivery, spooled with a `slack` handler's options.
    Deliver(Vec<(String, String)>),
    /// A collection in an `aggregate` handler's window.
    Collect { handler: String, event: Collected },
}

/// Where each alert goes among `topic`'s handlers, their notes logged. An
/// alert that is not Kapacitor's JSON goes nowhere; one an aggregate cannot
/// collect refuses the whole request, as a write the store could not make.
fn route(handlers: &Handlers, topic: &str, alerts: &[Incoming]) -> Result<Vec<Routed>, StoreError> {
    let mut routed = Vec::new();
    for incoming in alerts {
        let Ok(mut event) = alert_json::decode(&incoming.alert) else {
            continue;
        };
        event.topic = Some(topic.to_string());
        // Spooled with its topic, as Kapacitor's event has it (templates
        // can show it).
        let alert = with_topic(&incoming.alert, topic);
        let (routes, notes) = handlers.route(topic, &event);
        for note in notes {
            tracing::warn!(topic, "{note}");
        }
        let writes = routes
            .into_iter()
            .map(|route| match route {
                Route::Deliver { kind, options, .. } => {
                    Ok(Write::Deliver(crate::store::for_plugin(&kind, options)))
                }
                Route::Collect { handler } => {
                    let event = Collected::from_alert(&alert)
                        .map_err(|e| StoreError::Io(anyhow::anyhow!(e)))?;
                    Ok(Write::Collect { handler, event })
                }
            })
            .collect::<Result<_, StoreError>>()?;
        routed.push(Routed { alert, writes });
    }
    Ok(routed)
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &str =
        r#"{"id":"cpu","message":"m","time":"2026-11-26T10:00:00Z","level":"CRITICAL"}"#;

    fn incoming(alert: &str) -> Incoming {
        Incoming {
            alert: alert.into(),
            options: vec![],
        }
    }

    #[test]
    fn a_topics_handlers_decide_its_writes_in_their_order_with_the_topic_set() {
        let handlers = Handlers::from_files(
            [
                (
                    "a_ops.yaml",
                    "id: ops\ntopic: t\nkind: slack\noptions:\n  channel: '#ops'\n",
                ),
                (
                    "b_daily.yaml",
                    "id: daily\ntopic: t\nkind: aggregate\noptions:\n  interval: 24h\n  topic: u\n",
                ),
            ],
            1.0,
        )
        .unwrap();
        let routed = route(&handlers, "t", &[incoming(ALERT)]).unwrap();
        assert_eq!(routed.len(), 1);
        let spooled: serde_json::Value = serde_json::from_str(&routed[0].alert).unwrap();
        assert_eq!(spooled["topic"], "t");
        assert_eq!(spooled["id"], "cpu");
        match &routed[0].writes[..] {
            [Write::Deliver(options), Write::Collect { handler, .. }] => {
                assert!(options.contains(&("channel".into(), "#ops".into())));
                assert_eq!(handler, "daily");
            }
            _ => panic!("expected a delivery, then a collection"),
        }
    }

    #[test]
    fn an_alert_no_handler_takes_writes_nothing() {
        let handlers =
            Handlers::from_files([("ops.yaml", "id: ops\ntopic: t\nkind: slack\n")], 1.0).unwrap();
        let routed = route(&handlers, "elsewhere", &[incoming(ALERT)]).unwrap();
        assert!(routed.iter().all(|r| r.writes.is_empty()));
        assert!(route(&handlers, "t", &[incoming("not json")])
            .unwrap()
            .is_empty());
    }
}
