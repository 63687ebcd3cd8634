//! Alertmanager's webhook as an intake format: `POST /alertmanager`, one
//! payload (version 4) a request, each of its alerts one alert event
//! (`slack_alert_handler::alertmanager` decodes it), all stored in one
//! transaction or none. The handler options come from the query string,
//! as for Kapacitor's posts, and go with every alert of the payload.

use slack_alert_handler::alertmanager::{self, Levels};

use super::{Incoming, IntakeFormat};

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
