//! What intake takes in: an alert as the store keeps it ([`Incoming`]),
//! the formats that decode a request into alerts ([`IntakeFormat`]:
//! Kapacitor's post JSON here, Alertmanager's webhook in
//! `routes/alertmanager.rs`), and the query's handler options.

use kapacitor_formats::alert_json;

/// An alert as intake hands it to the spool: Kapacitor's alert JSON and
/// the handler options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub alert: String,
    pub options: Vec<(String, String)>,
}

/// A format serve takes alerts in. Kapacitor's `post` handler is the one
/// there is; Alertmanager's webhook (several alerts a request) slots in
/// beside it.
pub trait IntakeFormat: Send + Sync + 'static {
    /// Turns a request body and the query's handler options into alerts,
    /// or says what is wrong with it.
    fn decode(&self, body: &str, options: Vec<(String, String)>) -> Result<Vec<Incoming>, String>;
}

/// The `taskName` of the alerts serve's `/alertmanager` route makes.
pub use slack_alert_handler::alertmanager::TASK_NAME as ALERTMANAGER_TASK;

/// Kapacitor's `post`-handler JSON, one alert a request, kept as sent.
pub struct KapacitorPost;

impl IntakeFormat for KapacitorPost {
    fn decode(&self, body: &str, options: Vec<(String, String)>) -> Result<Vec<Incoming>, String> {
        let event = alert_json::decode(body).map_err(|e| format!("{e:#}"))?;
        // An Alertmanager alert's labels become a silence's matchers in
        // Alertmanager when someone clicks Silence: only serve's own
        // `/alertmanager` route may say an alert came from there.
        if event.task_name == ALERTMANAGER_TASK {
            return Err(format!(
                "taskName: `{ALERTMANAGER_TASK}` is kept for alerts that came through POST /alertmanager (their Silence is made in Alertmanager, on their labels); an alert posted here may not claim it"
            ));
        }
        Ok(vec![Incoming {
            alert: body.to_string(),
            options,
        }])
    }
}

/// A query's parameters, decoded: the handler options.
pub(crate) fn query_options(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Decodes a query component: `+` for a space, then `%XX` escapes (so
/// `%2B` stays a `+`).
fn percent_decode(text: &str) -> String {
    crate::percent::decode(&text.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options_are_percent_decoded() {
        assert_eq!(
            query_options("channel=%23ops&username=a+b&flag&&x=%zz"),
            [
                ("channel".to_string(), "#ops".to_string()),
                ("username".into(), "a b".into()),
                ("flag".into(), String::new()),
                ("x".into(), "%zz".into()),
            ]
        );
    }

    #[test]
    fn kapacitor_post_takes_one_alert_as_sent_and_names_what_is_wrong() {
        let body = r#"{"id":"cpu","message":"m","time":"2026-11-26T10:00:00Z","level":"CRITICAL"}"#;
        let alerts = KapacitorPost.decode(body, vec![]).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].alert, body);
        let claimed = body.replace(
            r#""level""#,
            r#""taskName":"alertmanager","context":{"labels.severity":"critical"},"level""#,
        );
        let e = KapacitorPost.decode(&claimed, vec![]).unwrap_err();
        assert!(e.starts_with("taskName: `alertmanager` is kept"), "{e}");
        let loud = body.replace("CRITICAL", "LOUD");
        let e = KapacitorPost.decode(&loud, vec![]).unwrap_err();
        assert!(e.contains("level"), "{e}");
    }
}
