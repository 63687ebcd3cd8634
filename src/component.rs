//! The WIT exports: converts between the generated binding types and the
//! plain core types, keeps this instance's configuration, and sends through
//! the transport.

use std::sync::{Arc, Mutex, PoisonError};

use crate::config::{Config, Sources};
use crate::error::HandlerError;
use crate::event::{AlertEvent, FieldValue, Level};
use crate::handler::{self, Delivery, Prepared, WorkspaceSummary};
use crate::stages::{self, Stage};
use crate::storm::{Storm, StormLine};
use crate::{config_source, describe, interaction, options, response, transport};

wit_bindgen::generate!({
    world: "chat-alert-handler",
    path: "wit",
});

use alerting::handler::types as wit;
use exports::alerting::handler::handler::Guest;
use exports::alerting::handler::interactions as clicks;
use exports::alerting::handler::storms;

struct Component;

export!(Component);

/// This instance's configuration: set by `configure`, else read once from
/// the environment or a preopened file on first use.
static CONFIG: Mutex<Option<Arc<Config>>> = Mutex::new(None);

fn current_config() -> Result<Arc<Config>, HandlerError> {
    let mut slot = CONFIG.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(config) = slot.as_ref() {
        return Ok(config.clone());
    }
    let text = config_source::find(|k| std::env::var(k).ok(), |p| std::fs::read_to_string(p))?;
    let config = Arc::new(Config::parse_with(&text, &Wasi)?);
    *slot = Some(config.clone());
    Ok(config)
}

/// The environment and files, through WASI: only what the host gave this
/// instance (its `--env` and `--dir`, or a host's WASI context).
struct Wasi;

impl Sources for Wasi {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "not found (is its directory given to the component?)".to_string()
            }
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        })
    }
}

fn deliver(prepared: Prepared) -> Result<Delivery, HandlerError> {
    prepared.deliver(|request| exchange(request).map(|(answer, _)| answer))
}

/// Sends `request`: Slack's answer, classified, and its body.
fn exchange(
    request: &crate::payload::Request,
) -> Result<(response::Answer, Vec<u8>), HandlerError> {
    let raw = transport::send(request)?;
    let answer = response::classify(
        raw.status,
        raw.retry_after.as_deref(),
        &raw.body,
        raw.truncated,
    );
    stages::end(Stage::Classify);
    Ok((answer?, raw.body))
}

impl Guest for Component {
    fn describe() -> wit::Description {
        stages::report();
        let settings = |list: &[describe::Setting]| {
            list.iter()
                .map(|(name, doc)| wit::Setting {
                    name: name.to_string(),
                    doc: doc.to_string(),
                    host_only: crate::options::HOST_KEYS.contains(name),
                })
                .collect()
        };
        wit::Description {
            kind: describe::kind().to_string(),
            version: describe::VERSION.to_string(),
            config_keys: settings(&describe::CONFIG_KEYS),
            options: settings(&describe::OPTIONS),
        }
    }

    fn configure(text: String) -> Result<wit::ConfigSummary, wit::HandlerError> {
        let config = Config::parse_with(&text, &Wasi).map_err(to_wit_error)?;
        let workspaces = handler::summary(&config)
            .into_iter()
            .map(to_wit_summary)
            .collect();
        *CONFIG.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(config));
        Ok(wit::ConfigSummary {
            kind: handler::KIND.to_string(),
            workspaces,
        })
    }

    fn handle_alert(
        event: wit::AlertEvent,
        options: Vec<(String, String)>,
    ) -> Result<wit::Delivery, wit::HandlerError> {
        stages::begin();
        let run = || {
            let event = from_wit_event(event);
            stages::end(Stage::FromWit);
            let config = current_config()?;
            stages::end(Stage::Config);
            deliver(handler::prepare_alert(&config, &event, &options)?)
        };
        let out = run().map(to_wit_delivery).map_err(to_wit_error);
        stages::end(Stage::ToWit);
        stages::finish();
        out
    }

    fn preview_alert(
        event: wit::AlertEvent,
        options: Vec<(String, String)>,
    ) -> Result<wit::HttpRequest, wit::HandlerError> {
        stages::begin();
        let run = || {
            let event = from_wit_event(event);
            stages::end(Stage::FromWit);
            let config = current_config()?;
            stages::end(Stage::Config);
            // Profiling (`stages` only): the guest's own work repeated, so a
            // sampling profiler sees it in one `--invoke`.
            for _ in 1..stages::repeat() {
                let _ =
                    handler::prepare_alert(&config, &event, &options).map(|p| p.request.preview());
            }
            let preview = handler::prepare_alert(&config, &event, &options)?
                .request
                .preview();
            stages::end(Stage::Preview);
            Ok(preview)
        };
        let out = run().map(to_wit_request).map_err(to_wit_error);
        stages::end(Stage::ToWit);
        stages::finish();
        out
    }

    fn service_test_options() -> Vec<(String, String)> {
        options::TEST_DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn service_test(options: Vec<(String, String)>) -> Result<wit::Delivery, wit::HandlerError> {
        let run = || {
            let config = current_config()?;
            deliver(handler::prepare_test(&config, &options)?)
        };
        run().map(to_wit_delivery).map_err(to_wit_error)
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

fn from_wit_event(e: wit::AlertEvent) -> AlertEvent {
    AlertEvent {
        id: e.id,
        message: e.message,
        details: e.details,
        time: (e.time.seconds, e.time.nanoseconds),
        duration: e.duration,
        level: from_wit_level(e.level),
        previous_level: e.previous_level.map(from_wit_level),
        recoverable: e.recoverable,
        topic: e.topic,
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

fn to_wit_summary(s: WorkspaceSummary) -> wit::WorkspaceSummary {
    wit::WorkspaceSummary {
        id: s.id,
        enabled: s.enabled,
        is_default: s.is_default,
        global: s.global,
        state_changes_only: s.state_changes_only,
        channel: s.channel,
        endpoint: s
            .endpoint
            .map(|(scheme, authority)| wit::Endpoint { scheme, authority }),
        on_recovery: s.on_recovery,
        tls: wit::TlsSettings {
            ssl_ca: s.ssl_ca,
            ssl_cert: s.ssl_cert,
            ssl_key: s.ssl_key,
            insecure_skip_verify: s.insecure_skip_verify,
        },
        storm_after: s.storm_after,
        storm_list: s.storm_list,
    }
}

fn from_wit_storm(s: storms::Storm) -> Storm {
    Storm {
        key: s.key,
        started: s.started.seconds,
        now: s.now.seconds,
        closed: s.closed,
        group_labels: s.group_labels,
        common_labels: s.common_labels,
        firing: s
            .firing
            .into_iter()
            .map(|(level, n)| (from_wit_level(level), n))
            .collect(),
        resolved: s.resolved,
        total: s.total,
        lines: s
            .lines
            .into_iter()
            .map(|l| StormLine {
                event: from_wit_event(l.event),
                since: l.since.seconds,
                silenced_until: l.silenced_until.map(|t| t.seconds),
            })
            .collect(),
        more: s.more,
    }
}

fn to_wit_delivery(d: Delivery) -> wit::Delivery {
    wit::Delivery {
        workspace: d.workspace,
        channel: d.channel,
        channel_id: d.channel_id,
        ts: d.ts,
        warnings: d.warnings,
    }
}

fn to_wit_request(p: crate::payload::Preview) -> wit::HttpRequest {
    wit::HttpRequest {
        method: p.method,
        url: p.url,
        headers: p.headers,
        body: p.body,
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
        HandlerError::SlackRejected(r) => W::SlackRejected(wit::SlackRejection {
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

impl storms::Guest for Component {
    fn handle_storm(
        storm: storms::Storm,
        options: Vec<(String, String)>,
    ) -> Result<wit::Delivery, wit::HandlerError> {
        let run = || {
            let storm = from_wit_storm(storm);
            let config = current_config()?;
            deliver(handler::prepare_storm(&config, &storm, &options)?)
        };
        run().map(to_wit_delivery).map_err(to_wit_error)
    }

    fn preview_storm(
        storm: storms::Storm,
        options: Vec<(String, String)>,
    ) -> Result<wit::HttpRequest, wit::HandlerError> {
        let run = || {
            let storm = from_wit_storm(storm);
            let config = current_config()?;
            Ok(handler::prepare_storm(&config, &storm, &options)?
                .request
                .preview())
        };
        run().map(to_wit_request).map_err(to_wit_error)
    }
}

impl clicks::Guest for Component {
    fn interaction(
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        now: wit::Timestamp,
    ) -> clicks::InteractionOutcome {
        match current_config() {
            Ok(config) => to_wit_outcome(interaction::read(&config, &headers, &body, now.seconds)),
            Err(e) => clicks::InteractionOutcome::Refuse(e.to_string()),
        }
    }

    fn socket_url(app_token: String) -> Result<String, wit::HandlerError> {
        let run = || {
            let config = current_config()?;
            let (_, body) = exchange(&interaction::socket_open(&config, &app_token)?)?;
            interaction::socket_url(&body)
        };
        run().map_err(to_wit_error)
    }

    fn socket_message(text: String) -> clicks::SocketAnswer {
        let answer = match current_config() {
            Ok(config) => interaction::socket_message(&config, &text),
            Err(e) => interaction::SocketAnswer {
                reply: None,
                outcome: interaction::Outcome::Ignore(e.to_string()),
                reconnect: false,
            },
        };
        clicks::SocketAnswer {
            reply: answer.reply,
            outcome: to_wit_outcome(answer.outcome),
            reconnect: answer.reconnect,
        }
    }

    fn notice(response_url: String, text: String) -> Result<(), wit::HandlerError> {
        let run = || exchange(&interaction::notice(&response_url, &text)?).map(|_| ());
        run().map_err(to_wit_error)
    }
}

fn to_wit_outcome(outcome: interaction::Outcome) -> clicks::InteractionOutcome {
    use clicks::InteractionOutcome as O;
    match outcome {
        interaction::Outcome::Act(i) => O::Act(clicks::Click {
            workspace: i.workspace,
            alert: i.alert,
            action: match i.action {
                interaction::Action::Acknowledge => clicks::Action::Acknowledge,
                interaction::Action::Silence(seconds) => clicks::Action::Silence(seconds),
                interaction::Action::Unsilence => clicks::Action::Unsilence,
            },
            user: i.user,
            user_name: i.user_name,
            channel_id: i.channel_id,
            ts: i.ts,
            message_link: i.message_link,
            response_url: i.response_url,
            identity: i.identity,
        }),
        interaction::Outcome::Ignore(why) => O::Ignore(why),
        interaction::Outcome::Refuse(why) => O::Refuse(why),
    }
}
