//! The handler's errors, one case per WIT `handler-error` case. Messages
//! never carry a header value, a URL's path, query or user-info: those are
//! where a webhook keeps its secrets.

/// The service refused the request (the WIT `slack-rejection`, which is the
/// generic "the service said no" case despite its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status of the answer.
    pub status: u16,
    /// `http_<status>`.
    pub code: String,
    /// The status and the start of the answer's body.
    pub message: String,
}

/// A failure that should go away on its own (the WIT `transient-failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransientFailure {
    /// The HTTP status of the answer.
    pub status: Option<u16>,
    /// `http_<status>`.
    pub code: String,
    /// The answer's `Retry-After`, when it gave whole seconds.
    pub retry_after_seconds: Option<u32>,
    /// The status and the start of the answer's body.
    pub message: String,
}

/// Why an alert was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    /// `configure` was not called and `WEBHOOK_HANDLER_CONFIG` is not set.
    NotConfigured(String),
    /// The configuration names a key, a section and a rule it breaks.
    InvalidConfig(String),
    /// An option this handler does not take; names it and the keys there are.
    UnknownOption(String),
    /// An option this handler takes with a value it cannot use.
    InvalidOption(String),
    /// No section has the `workspace` asked for.
    WorkspaceNotFound(String),
    /// The section asked for has `enabled = false`.
    WorkspaceDisabled(String),
    /// The service answered with a status that retrying will not change.
    Rejected(Rejection),
    /// The service answered 429 or 5xx.
    Transient(TransientFailure),
    /// No answer: refused, reset, timed out, name not found.
    Transport(String),
    /// TLS failed.
    Tls(String),
    /// The host's egress policy refused the destination.
    RequestDenied(String),
    /// A bug in the handler or the host.
    Internal(String),
}
