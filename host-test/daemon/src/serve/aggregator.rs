//! The aggregator: closes each aggregate's window when its interval ends,
//! and publishes its event to the aggregate's topic.

use std::time::Duration;

use kapacitor_formats::aggregate::{self, Collected, Window};
use kapacitor_formats::alert_json;
use kapacitor_formats::topics::{Handlers, Route};
use tracing::{error, info, warn};

use super::shared::Shared;
use crate::store::{self, unix_ms};

/// Closes each aggregate's window when its interval ends, and publishes
/// its event to the aggregate's topic: the alerts and collections that
/// leads to are written with the window's closing, in one record. A window
/// whose interval ended while serve was down closes at once. With several
/// nodes every one looks; the store lets only the first close a window,
/// and only as it holds it then.
pub(super) async fn run(shared: &Shared, topics: &Handlers) {
    while !shared.stopping() {
        let now = unix_ms();
        let mut next = now + 1_000;
        let windows = shared.commit.read(|store| store.windows());
        let due: Vec<(String, Window)> = match windows.await {
            Ok(windows) => windows
                .into_iter()
                .filter_map(|(handler, window)| {
                    let ends = match topics.aggregate(&handler) {
                        Some(spec) => window.ends_ms(spec),
                        // Its handler file is gone: the window closes unsent.
                        None => now,
                    };
                    if ends <= now {
                        Some((handler, window))
                    } else {
                        next = next.min(ends);
                        None
                    }
                })
                .collect(),
            Err(e) => {
                error!("reading the aggregates' windows failed: {e}");
                Vec::new()
            }
        };
        for (handler, window) in due {
            close_window(shared, topics, &handler, &window).await;
        }
        let wait = next.saturating_sub(unix_ms()).clamp(5, 1_000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

async fn close_window(shared: &Shared, topics: &Handlers, handler: &str, window: &Window) {
    let (mut accepts, mut collects) = (Vec::new(), Vec::new());
    let spec = topics.aggregate(handler);
    let event = spec.and_then(|spec| Some((spec, aggregate::emit(handler, spec, window)?)));
    if let Some((spec, alert)) = &event {
        match alert_json::decode(alert) {
            Ok(mut decoded) => {
                decoded.topic = Some(spec.topic.clone());
                let (routes, notes) = topics.route(&spec.topic, &decoded);
                for note in notes {
                    warn!(topic = spec.topic, "{note}");
                }
                for route in routes {
                    match route {
                        Route::Deliver { kind, options, .. } => {
                            accepts.push((alert.clone(), store::for_plugin(&kind, options)))
                        }
                        Route::Collect { handler: next } => {
                            if let Ok(c) = Collected::from_alert(alert) {
                                collects.push((next, c));
                            }
                        }
                    }
                }
            }
            Err(e) => error!(handler, "the aggregated event is not an alert: {e:#}"),
        }
    } else if spec.is_none() {
        warn!(
            handler,
            "no aggregate handler has this id any more; its window closes unsent"
        );
    }
    let closed = shared
        .commit
        .write(|store| store.emit(handler, window, accepts, collects));
    // Not closed unless durable: the window stays open, to be closed again.
    let closed = match closed {
        Ok(((ids, _), durable)) => durable
            .wait()
            .await
            .map(|()| ids)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match closed {
        Ok(ids) => info!(
            handler,
            events = window.count,
            alerts = ?ids,
            "aggregate interval ended"
        ),
        Err(e) => error!(handler, "closing the aggregate's window failed: {e}"),
    }
}
