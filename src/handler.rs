//! The handler's operations on plain types: summarise a configuration,
//! prepare the request for an alert or a service test, and turn Slack's
//! answer into a delivery. No I/O: the caller sends the request.

use crate::config::{self, Config};
use crate::error::HandlerError;
use crate::event::AlertEvent;
use crate::options::{HandlerOptions, TestOptions};
use crate::payload::{self, Request};
use crate::response::Answer;

/// The handler kind, as a Kapacitor handler file's `kind`.
pub const KIND: &str = "slack";

/// What a host needs to know of one workspace (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSummary {
    pub id: String,
    pub enabled: bool,
    pub is_default: bool,
    pub global: bool,
    pub state_changes_only: bool,
    /// Scheme and authority of the URL.
    pub endpoint: Option<(String, String)>,
    pub ssl_ca: Option<String>,
    pub ssl_cert: Option<String>,
    pub ssl_key: Option<String>,
    pub insecure_skip_verify: bool,
}

/// Summarises a configuration for the host.
pub fn summary(config: &Config) -> Vec<WorkspaceSummary> {
    let path = |p: &str| (!p.is_empty()).then(|| p.to_string());
    config
        .workspaces
        .iter()
        .map(|ws| WorkspaceSummary {
            id: ws.id.clone(),
            enabled: ws.enabled,
            is_default: config.is_default(ws),
            global: ws.global,
            state_changes_only: ws.state_changes_only,
            endpoint: config::endpoint(ws),
            ssl_ca: path(&ws.ssl_ca),
            ssl_cert: path(&ws.ssl_cert),
            ssl_key: path(&ws.ssl_key),
            insecure_skip_verify: ws.insecure_skip_verify,
        })
        .collect()
}

/// A request ready to send, with where it goes.
#[derive(Clone)]
pub struct Prepared {
    pub workspace: String,
    pub channel: String,
    pub request: Request,
    /// Whether the message was cut to Slack's limit.
    pub truncated: bool,
}

/// Prepares the request for an alert with a handler's options.
pub fn prepare_alert(
    config: &Config,
    event: &AlertEvent,
    options: &[(String, String)],
) -> Result<Prepared, HandlerError> {
    let options = HandlerOptions::parse(options)?;
    prepare(config, &options, &event.message, event)
}

/// Prepares the service test's request.
pub fn prepare_test(
    config: &Config,
    options: &[(String, String)],
) -> Result<Prepared, HandlerError> {
    let test = TestOptions::parse(options)?;
    let event = AlertEvent::with_message(&test.message, test.level);
    prepare(config, &test.handler, &test.message, &event)
}

fn prepare(
    config: &Config,
    options: &HandlerOptions,
    text: &str,
    event: &AlertEvent,
) -> Result<Prepared, HandlerError> {
    let ws = config.select(&options.workspace)?;
    let message = payload::message(ws, options, text, event.level);
    Ok(Prepared {
        workspace: ws.id.clone(),
        channel: message.channel.clone(),
        request: Request::new(ws, &message),
        truncated: message.attachments[0].text.len() != text.len(),
    })
}

/// What was delivered (the WIT `delivery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub workspace: String,
    pub channel: String,
    pub channel_id: Option<String>,
    pub ts: Option<String>,
    pub warnings: Vec<String>,
}

impl Prepared {
    /// The delivery, given Slack's successful answer.
    /// The handler's own warning (a cut message) comes first.
    pub fn delivered(self, answer: Answer) -> Delivery {
        let mut warnings = answer.warnings;
        if self.truncated {
            warnings.insert(0, payload::TRUNCATED_WARNING.to_string());
        }
        Delivery {
            workspace: self.workspace,
            channel: self.channel,
            channel_id: answer.channel_id,
            ts: answer.ts,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn seed() -> Config {
        Config::parse(include_str!("../examples/kapacitor.conf")).unwrap()
    }

    #[test]
    fn explicit_slack_with_no_options_uses_the_default_workspace() {
        let event = AlertEvent::with_message("Hey, check your CPU", Level::Warning);
        let p = prepare_alert(&seed(), &event, &[]).unwrap();
        assert_eq!(
            (p.workspace.as_str(), p.channel.as_str()),
            ("alerts", "#alerts")
        );
        assert_eq!(p.request.token.expose(), "mY5uP3Rs3CrE7t0keN1");
    }

    #[test]
    fn workspace_option_picks_the_section() {
        let event = AlertEvent::with_message("500s", Level::Info);
        let p = prepare_alert(&seed(), &event, &pairs(&[("workspace", "error-reports")])).unwrap();
        assert_eq!(
            (p.workspace.as_str(), p.channel.as_str()),
            ("error-reports", "#error-reports")
        );
        assert_eq!(p.request.token.expose(), "mY5uP3Rs3CrE7t0keN2");
    }

    #[test]
    fn unknown_option_stops_before_anything_is_sent() {
        let event = AlertEvent::with_message("x", Level::Ok);
        let e = prepare_alert(&seed(), &event, &pairs(&[("color", "red")]))
            .err()
            .unwrap();
        assert!(matches!(e, HandlerError::UnknownOption(_)));
    }

    #[test]
    fn service_test_sends_kapacitors_test_message() {
        let p = prepare_test(&seed(), &[]).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&p.request.body).unwrap();
        assert_eq!(body["attachments"][0]["text"], "test slack message");
        assert_eq!(body["attachments"][0]["color"], "danger");
        assert_eq!(body["channel"], "#alerts");
    }

    #[test]
    fn summary_has_endpoints_and_no_secrets() {
        let s = summary(&seed());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].endpoint, Some(("https".into(), "slack.com".into())));
        assert!(s[0].is_default && !s[1].is_default);
        assert!(!format!("{s:?}").contains("mY5uP3Rs3CrE7t0keN"));
    }
}
