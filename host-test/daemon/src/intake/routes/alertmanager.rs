//! Alertmanager's webhook, `POST /alertmanager`: its route and its intake
//! format. One payload (version 4) a request, each of its alerts one alert event
//! (`slack_alert_handler::alertmanager` decodes it), all stored in one
//! transaction or none. The handler options come from the query string,
//! as for Kapacitor's posts, and go with every alert of the payload.

use hyper::Request;
use slack_alert_handler::alertmanager::{self, Levels};

use super::alerts::take;
use crate::intake::answer::Answer;
use crate::intake::format::{Incoming, IntakeFormat};
use crate::intake::Front;

/// `POST /alertmanager`: taken as `POST /` takes Kapacitor's posts, in
/// serve's Alertmanager format ([`Front::alertmanager`]).
pub(crate) async fn respond(req: Request<hyper::body::Incoming>, front: &Front) -> Answer {
    take(req, front, &*front.alertmanager).await
}

/// Alertmanager's webhook, with how its alerts' labels give their level.
pub struct AlertmanagerWebhook {
    pub levels: Levels,
}

impl IntakeFormat for AlertmanagerWebhook {
    fn decode(&self, body: &str, options: Vec<(String, String)>) -> Result<Vec<Incoming>, String> {
        if options.iter().any(|(k, _)| k == "topic") {
            return Err(
                "`topic` routes Kapacitor's posts to topic handlers; Alertmanager's webhook takes handler options only (its own routes choose the receiver)"
                    .into(),
            );
        }
        let hook = alertmanager::decode(body, &self.levels)
            .map_err(|e| format!("Alertmanager's webhook: {e}"))?;
        log_warnings(&hook.warnings);
        Ok(hook
            .alerts
            .into_iter()
            .map(|alert| Incoming {
                alert,
                options: options.clone(),
            })
            .collect())
    }
}

/// The most warnings of one payload logged one by one; the rest are counted
/// in one more line (a payload may hold thousands of alerts).
const LOGGED_WARNINGS: usize = 10;

/// Logs what was taken but not as sent (an alert resolved before it
/// started), naming each alert and its times.
fn log_warnings(warnings: &[alertmanager::Warning]) {
    for warning in warnings.iter().take(LOGGED_WARNINGS) {
        tracing::warn!("Alertmanager's webhook: {warning}");
    }
    if warnings.len() > LOGGED_WARNINGS {
        tracing::warn!(
            "Alertmanager's webhook: {} more alerts of this payload with warnings like these",
            warnings.len() - LOGGED_WARNINGS
        );
    }
}
