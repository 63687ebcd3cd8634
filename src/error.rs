//! The handler's errors: one case per thing a user can get wrong or Slack
//! can answer, mapped one to one onto the WIT `handler-error` variant.

use std::fmt;

/// Slack refused the message (see the WIT `slack-rejection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackRejection {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// A failure that should go away on its own (see the WIT `transient-failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransientFailure {
    pub status: Option<u16>,
    pub code: String,
    pub retry_after_seconds: Option<u32>,
    pub message: String,
}

/// Why an alert was not delivered. Messages never carry a token or a
/// webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerError {
    NotConfigured(String),
    InvalidConfig(String),
    UnknownOption(String),
    InvalidOption(String),
    WorkspaceNotFound(String),
    WorkspaceDisabled(String),
    SlackRejected(SlackRejection),
    Transient(TransientFailure),
    Transport(String),
    Tls(String),
    RequestDenied(String),
    Internal(String),
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::NotConfigured(m) => write!(f, "not configured: {m}"),
            HandlerError::InvalidConfig(m) => write!(f, "invalid configuration: {m}"),
            HandlerError::UnknownOption(m) => f.write_str(m),
            HandlerError::InvalidOption(m) => write!(f, "invalid option: {m}"),
            HandlerError::WorkspaceNotFound(id) => {
                write!(f, "workspace id not found: \"{id}\"")
            }
            HandlerError::WorkspaceDisabled(id) => {
                write!(f, "service is not enabled (workspace \"{id}\")")
            }
            HandlerError::SlackRejected(r) => {
                write!(
                    f,
                    "Slack rejected the message (HTTP {}, {}): {}",
                    r.status, r.code, r.message
                )
            }
            HandlerError::Transient(t) => {
                write!(f, "Slack is temporarily unavailable ({}", t.code)?;
                if let Some(status) = t.status {
                    write!(f, ", HTTP {status}")?;
                }
                if let Some(secs) = t.retry_after_seconds {
                    write!(f, ", retry after {secs}s")?;
                }
                write!(f, "): {}", t.message)
            }
            HandlerError::Transport(m) => write!(f, "transport error: {m}"),
            HandlerError::Tls(m) => write!(f, "TLS error: {m}"),
            HandlerError::RequestDenied(m) => write!(f, "request denied by the host: {m}"),
            HandlerError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for HandlerError {}
