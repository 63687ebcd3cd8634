//! The WIT exports (`alert-handler` world): converts between the generated
//! binding types and the core's, keeps this instance's configuration, and
//! sends through the transport.

use std::sync::{Arc, Mutex, PoisonError};

use crate::config::Config;
use crate::describe::{self, Setting};
use crate::error::HandlerError;
use crate::event::{AlertEvent, FieldValue, Level};
use crate::options::{self, Options};
use crate::request::{self, Request};
use crate::{answer, transport};

wit_bindgen::generate!({
    world: "alert-handler",
    path: "../../wit",
});

use alerting::handler::types as wit;
use exports::alerting::handler::handler::Guest;

struct Component;

export!(Component);

/// The environment variable read when `configure` was never called.
const CONFIG_VARIABLE: &str = "WEBHOOK_HANDLER_CONFIG";

/// This instance's configuration: set by `configure`, else read once from
/// [`CONFIG_VARIABLE`].
static CONFIG: Mutex<Option<Arc<Config>>> = Mutex::new(None);

fn current_config() -> Result<Arc<Config>, HandlerError> {
    let mut slot = CONFIG.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(config) = slot.as_ref() {
        return Ok(config.clone());
    }
    let text = std::env::var(CONFIG_VARIABLE).map_err(|_| {
        HandlerError::NotConfigured(format!(
            "`configure` was not called and {CONFIG_VARIABLE} is not set"
        ))
    })?;
    let config = Arc::new(Config::parse(&text)?);
    *slot = Some(config.clone());
    Ok(config)
}

/// Sends `request` and reads what the answer means.
fn send(request: &Request) -> Result<wit::Delivery, HandlerError> {
    let answer = transport::send(request)?;
    answer::classify(
        answer.status,
        answer.retry_after.as_deref(),
        &answer.body,
        &request.url.authority,
    )?;
    Ok(wit::Delivery {
        workspace: request.workspace.clone(),
        channel: String::new(),
        channel_id: None,
        ts: None,
        warnings: Vec::new(),
    })
}

impl Guest for Component {
    fn describe() -> wit::Description {
        let settings = |list: &[Setting]| {
            list.iter()
                .map(|&(name, doc, host_only)| wit::Setting {
                    name: name.to_string(),
                    doc: doc.to_string(),
                    host_only,
                })
                .collect()
        };
        wit::Description {
            kind: describe::KIND.to_string(),
            version: describe::VERSION.to_string(),
            config_keys: settings(&describe::CONFIG_KEYS),
            options: settings(&describe::OPTIONS),
        }
    }

    fn configure(text: String) -> Result<wit::ConfigSummary, wit::HandlerError> {
        let config = Config::parse(&text).map_err(to_wit_error)?;
        let workspaces = config
            .sections
            .iter()
            .map(|s| wit::WorkspaceSummary {
                id: s.id.clone(),
                enabled: s.enabled,
                is_default: s.is_default,
                global: false,
                state_changes_only: false,
                channel: None,
                // Scheme and authority only: the path and query may be secret.
                endpoint: Some(wit::Endpoint {
                    scheme: s.url.scheme.clone(),
                    authority: s.url.authority.clone(),
                }),
                on_recovery: "new".to_string(),
                tls: wit::TlsSettings {
                    ssl_ca: None,
                    ssl_cert: None,
                    ssl_key: None,
                    insecure_skip_verify: false,
                },
                storm_after: 0,
                storm_list: 50,
            })
            .collect();
        *CONFIG.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(config));
        Ok(wit::ConfigSummary {
            kind: describe::KIND.to_string(),
            workspaces,
        })
    }

    fn handle_alert(
        event: wit::AlertEvent,
        options: Vec<(String, String)>,
    ) -> Result<wit::Delivery, wit::HandlerError> {
        let run = || {
            let options = Options::parse(&options)?;
            let request = request::prepare(&*current_config()?, &from_wit_event(event), &options)?;
            send(&request)
        };
        run().map_err(to_wit_error)
    }

    fn preview_alert(
        event: wit::AlertEvent,
        options: Vec<(String, String)>,
    ) -> Result<wit::HttpRequest, wit::HandlerError> {
        let run = || {
            let options = Options::parse(&options)?;
            let request = request::prepare(&*current_config()?, &from_wit_event(event), &options)?;
            let preview = request.preview();
            Ok(wit::HttpRequest {
                method: preview.method,
                url: preview.url,
                headers: preview.headers,
                body: preview.body,
            })
        };
        run().map_err(to_wit_error)
    }

    fn service_test_options() -> Vec<(String, String)> {
        options::TEST_DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn service_test(options: Vec<(String, String)>) -> Result<wit::Delivery, wit::HandlerError> {
        let run = || {
            let (options, event) = Options::parse_test(&options)?;
            send(&request::prepare(&*current_config()?, &event, &options)?)
        };
        run().map_err(to_wit_error)
    }
}

fn from_wit_level(level: wit::Level) -> Level {
    match level {
        wit::Level::Ok => Level::Ok,
        wit::Level::Info => Level::Info,
        wit::Level::Warning => Level::Warning,
        wit::Level::Critical => Level::Critical,
    }
}

/// The event's fields this handler uses; `previous-level`, `recoverable`
/// and `topic` are not in its body.
fn from_wit_event(e: wit::AlertEvent) -> AlertEvent {
    AlertEvent {
        id: e.id,
        message: e.message,
        details: e.details,
        time: (e.time.seconds, e.time.nanoseconds),
        duration: e.duration,
        level: from_wit_level(e.level),
        name: e.name,
        task_name: e.task_name,
        group: e.group,
        tags: e.tags,
        fields: e
            .fields
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    wit::FieldValue::Float(f) => FieldValue::Float(f),
                    wit::FieldValue::Integer(i) => FieldValue::Integer(i),
                    wit::FieldValue::String(s) => FieldValue::String(s),
                    wit::FieldValue::Boolean(b) => FieldValue::Boolean(b),
                };
                (k, v)
            })
            .collect(),
        context: e.context,
    }
}

fn to_wit_error(e: HandlerError) -> wit::HandlerError {
    use wit::HandlerError as W;
    match e {
        HandlerError::NotConfigured(m) => W::NotConfigured(m),
        HandlerError::InvalidConfig(m) => W::InvalidConfig(m),
        HandlerError::UnknownOption(m) => W::UnknownOption(m),
        HandlerError::InvalidOption(m) => W::InvalidOption(m),
        HandlerError::WorkspaceNotFound(id) => W::WorkspaceNotFound(id),
        HandlerError::WorkspaceDisabled(id) => W::WorkspaceDisabled(id),
        // The WIT's name is Slack's; the case is any service's refusal.
        HandlerError::Rejected(r) => W::SlackRejected(wit::SlackRejection {
            status: r.status,
            code: r.code,
            message: r.message,
        }),
        HandlerError::Transient(t) => W::Transient(wit::TransientFailure {
            status: t.status,
            code: t.code,
            retry_after_seconds: t.retry_after_seconds,
            message: t.message,
        }),
        HandlerError::Transport(m) => W::Transport(m),
        HandlerError::Tls(m) => W::Tls(m),
        HandlerError::RequestDenied(m) => W::RequestDenied(m),
        HandlerError::Internal(m) => W::Internal(m),
    }
}
