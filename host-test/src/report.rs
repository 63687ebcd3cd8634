//! How the CLI shows results: a line for people, or JSON with `--json`.

use serde_json::{json, Value};
use slack_alert_handler::payload::TRUNCATED_WARNING;

use alert_handler_host::{ConfigSummary, Delivery, HandlerError, HttpRequest};

pub fn error_json(e: &HandlerError) -> Value {
    let mut v = json!({"delivered": false, "error": e.kind(), "retryable": e.is_retryable()});
    match e {
        HandlerError::SlackRejected(r) => {
            v["status"] = json!(r.status);
            v["code"] = json!(r.code);
            v["message"] = json!(r.message);
        }
        HandlerError::Transient(t) => {
            v["status"] = json!(t.status);
            v["code"] = json!(t.code);
            v["retry_after_seconds"] = json!(t.retry_after_seconds);
            v["message"] = json!(t.message);
        }
        HandlerError::NotConfigured(m)
        | HandlerError::InvalidConfig(m)
        | HandlerError::UnknownOption(m)
        | HandlerError::InvalidOption(m)
        | HandlerError::WorkspaceNotFound(m)
        | HandlerError::WorkspaceDisabled(m)
        | HandlerError::Transport(m)
        | HandlerError::Tls(m)
        | HandlerError::RequestDenied(m)
        | HandlerError::Internal(m) => v["message"] = json!(m),
    }
    v
}

pub fn delivery_text(d: &Delivery) -> String {
    let workspace = if d.workspace.is_empty() {
        "(default)"
    } else {
        &d.workspace
    };
    let mut s = format!(
        "delivered: workspace \"{workspace}\", channel \"{}\"",
        d.channel
    );
    if let Some(id) = &d.channel_id {
        s += &format!(", channel id {id}");
    }
    if let Some(ts) = &d.ts {
        s += &format!(", ts {ts}");
    }
    if let (Some(id), Some(ts)) = (&d.channel_id, &d.ts) {
        // As `send --previous-message` takes it, for the alert's next event.
        s += &format!(" (message {id}:{ts})");
    }
    if d.warnings.iter().any(|w| w == TRUNCATED_WARNING) {
        s += " (the message was longer than Slack's 40,000 characters and was cut, marked at its end)";
    }
    // The handler's own warnings start with `handler_`; the rest are Slack's.
    let (handler, slack): (Vec<&str>, Vec<&str>) = d
        .warnings
        .iter()
        .map(String::as_str)
        .filter(|w| *w != TRUNCATED_WARNING)
        .partition(|w| w.starts_with("handler_"));
    if !handler.is_empty() {
        s += &format!(" (the handler warned: {})", handler.join(", "));
    }
    if !slack.is_empty() {
        s += &format!(" (Slack warned: {})", slack.join(", "));
    }
    s
}

pub fn delivery_json(d: &Delivery) -> Value {
    json!({
        "delivered": true,
        "workspace": d.workspace,
        "channel": d.channel,
        "channel_id": d.channel_id,
        "ts": d.ts,
        "warnings": d.warnings,
    })
}

pub fn request_json(r: &HttpRequest) -> Value {
    let body: Value = serde_json::from_str(&r.body).unwrap_or_else(|_| json!(r.body));
    json!({
        "method": r.method,
        "url": r.url,
        "headers": r.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "body": body,
    })
}

pub fn request_text(r: &HttpRequest) -> String {
    let mut s = format!("{} {}\n", r.method, r.url);
    for (k, v) in &r.headers {
        s += &format!("{k}: {v}\n");
    }
    let body: Value = serde_json::from_str(&r.body).unwrap_or_else(|_| json!(r.body));
    s += &format!(
        "\n{}",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
    s
}

pub fn summary_json(s: &ConfigSummary) -> Value {
    json!({
        "kind": s.kind,
        "workspaces": s.workspaces.iter().map(|w| json!({
            "id": w.id,
            "enabled": w.enabled,
            "default": w.is_default,
            "global": w.global,
            "state-changes-only": w.state_changes_only,
            "channel": w.channel,
            "endpoint": w.endpoint.as_ref().map(|e| format!("{}://{}", e.scheme, e.authority)),
            "ssl-ca": w.tls.ssl_ca,
            "ssl-cert": w.tls.ssl_cert,
            "ssl-key": w.tls.ssl_key,
            "insecure-skip-verify": w.tls.insecure_skip_verify,
        })).collect::<Vec<_>>(),
    })
}
