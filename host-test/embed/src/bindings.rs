//! The bottom layer: the types and calls `bindgen!` generates from the
//! WIT, and what the host says of a handler's error — whether a retry can
//! help, its WIT case name, and its wording — defined once, here, for the
//! retry policy, the CLI and `serve` alike.

wasmtime::component::bindgen!({
    world: "chat-alert-handler",
    path: "../../wit",
    // Exports are called on fibers: a call waiting on the network suspends
    // its task instead of blocking a thread.
    exports: { default: async },
});

pub use alerting::handler::types::{
    AlertEvent, ConfigSummary, Delivery, Description, Endpoint, FieldValue, HandlerError,
    HttpRequest, Level, Setting, SlackRejection, Timestamp, TlsSettings, TransientFailure,
    WorkspaceSummary,
};
pub use exports::alerting::handler::interactions::{
    Action, Click, InteractionOutcome, SocketAnswer,
};
pub use exports::alerting::handler::storms::{Storm, StormLine};

impl Level {
    /// Kapacitor's spelling: `OK`, `INFO`, `WARNING`, `CRITICAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    }
}

impl TransientFailure {
    /// Whether this is Slack's rate limit (a `429`, or a Web API
    /// `rate_limited`): the component's definition, shared.
    pub fn is_rate_limited(&self) -> bool {
        slack_alert_handler::response::is_rate_limited(self.status, &self.code)
    }
}

impl HandlerError {
    /// Whether sending the same alert again can succeed without a person
    /// changing something, as the WIT documents each case.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            HandlerError::Transient(_) | HandlerError::Transport(_)
        )
    }

    /// Whether the handler refused before any request left: the alert or
    /// its options were wrong for the configuration.
    pub fn refused_before_sending(&self) -> bool {
        matches!(
            self,
            HandlerError::NotConfigured(_)
                | HandlerError::InvalidConfig(_)
                | HandlerError::UnknownOption(_)
                | HandlerError::InvalidOption(_)
                | HandlerError::WorkspaceNotFound(_)
                | HandlerError::WorkspaceDisabled(_)
        )
    }

    /// The WIT case name, e.g. `slack-rejected`.
    pub fn kind(&self) -> &'static str {
        match self {
            HandlerError::NotConfigured(_) => "not-configured",
            HandlerError::InvalidConfig(_) => "invalid-config",
            HandlerError::UnknownOption(_) => "unknown-option",
            HandlerError::InvalidOption(_) => "invalid-option",
            HandlerError::WorkspaceNotFound(_) => "workspace-not-found",
            HandlerError::WorkspaceDisabled(_) => "workspace-disabled",
            HandlerError::SlackRejected(_) => "slack-rejected",
            HandlerError::Transient(_) => "transient",
            HandlerError::Transport(_) => "transport",
            HandlerError::Tls(_) => "tls",
            HandlerError::RequestDenied(_) => "request-denied",
            HandlerError::Internal(_) => "internal",
        }
    }

    /// One sentence for a person, saying whether retrying can help.
    pub fn describe(&self) -> String {
        let text = match self {
            HandlerError::NotConfigured(m) => format!("not configured: {m}"),
            HandlerError::InvalidConfig(m) => {
                format!("invalid configuration:\n  {}", m.replace('\n', "\n  "))
            }
            HandlerError::UnknownOption(m) => m.clone(),
            HandlerError::InvalidOption(m) => format!("invalid option: {m}"),
            HandlerError::WorkspaceNotFound(id) => format!("workspace id not found: \"{id}\""),
            HandlerError::WorkspaceDisabled(id) => {
                format!("service is not enabled (workspace \"{id}\")")
            }
            HandlerError::SlackRejected(r) => {
                format!(
                    "Slack rejected the message: {} (HTTP {}): {}",
                    r.code, r.status, r.message
                )
            }
            HandlerError::Transient(t) => {
                let mut s = format!("Slack is temporarily failing: {}", t.code);
                if let Some(status) = t.status {
                    s += &format!(" (HTTP {status})");
                }
                s += &format!(": {}", t.message);
                if let Some(secs) = t.retry_after_seconds {
                    s += &format!("; Slack asks to retry after {secs}s");
                }
                s
            }
            HandlerError::Transport(m) => format!("transport error: {m}"),
            HandlerError::Tls(m) => format!("TLS error: {m}"),
            HandlerError::RequestDenied(m) => format!("request denied by the host: {m}"),
            HandlerError::Internal(m) => format!("internal error: {m}"),
        };
        let retry = if self.is_retryable() {
            "retrying can help"
        } else {
            "retrying will not help"
        };
        format!("error ({}, {retry}): {text}", self.kind())
    }
}
