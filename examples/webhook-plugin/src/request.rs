//! What is sent for an alert: the section chosen, its URL and headers, the
//! body rendered; and the same request as a preview, with the secrets
//! redacted.

use crate::config::Config;
use crate::error::HandlerError;
use crate::event::AlertEvent;
use crate::options::Options;
use crate::render;
use crate::weburl::Url;

/// What a preview shows instead of a secret.
pub const REDACTED: &str = "[redacted]";

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The id of the section it goes through.
    pub workspace: String,
    pub url: Url,
    /// `content-type` and `content-length` first, then the section's
    /// headers.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A request as `preview-alert` shows it (the WIT `http-request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Prepares the request for `event` under `options`.
pub fn prepare(
    config: &Config,
    event: &AlertEvent,
    options: &Options,
) -> Result<Request, HandlerError> {
    let section = config.select(&options.workspace)?;
    let body = match &options.body {
        Some(template) => render::body(event, Some(template))
            .map_err(|e| HandlerError::InvalidOption(format!("`body`: {e}")))?,
        None => render::body(event, section.body.as_ref()).map_err(|e| {
            HandlerError::InvalidConfig(format!("workspace \"{}\": `body`: {e}", section.id))
        })?,
    };
    // With the length given, the body is not sent chunked, which not
    // every receiver reads.
    let mut headers = vec![
        ("content-type".to_string(), section.content_type.clone()),
        ("content-length".to_string(), body.len().to_string()),
    ];
    headers.extend(section.headers.iter().cloned());
    Ok(Request {
        workspace: section.id.clone(),
        url: section.url.clone(),
        headers,
        body,
    })
}

impl Request {
    /// The request as it would be sent, with the value of every header
    /// the section configured, and the URL's user-info and query,
    /// redacted. `content-type` and `content-length` are shown.
    pub fn preview(&self) -> Preview {
        Preview {
            method: "POST".to_string(),
            url: self.url.redacted(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| {
                    let shown = if name == "content-type" || name == "content-length" {
                        value.as_str()
                    } else {
                        REDACTED
                    };
                    (name.clone(), shown.to_string())
                })
                .collect(),
            body: self.body.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;

    const CONFIG: &str = r#"
        [[webhook]]
        workspace = "ops"
        default = true
        url = "https://bot:pw@hooks.example.com/in?token=SECRET"
        headers = { Authorization = "Bearer SECRET", X-Team = "ops" }
        body = '{"text": "{{message}}"}'

        [[webhook]]
        workspace = "raw"
        url = "http://127.0.0.1:9000/"
        content-type = "text/plain"
    "#;

    fn prepared(options: &[(&str, &str)]) -> Result<Request, HandlerError> {
        let config = Config::parse(CONFIG).unwrap();
        let pairs: Vec<(String, String)> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let event = AlertEvent::new("cpu", "CPU \"high\"", Level::Warning);
        prepare(&config, &event, &Options::parse(&pairs)?)
    }

    #[test]
    fn the_default_section_sends_its_template_and_headers() {
        let r = prepared(&[]).unwrap();
        assert_eq!(r.workspace, "ops");
        assert_eq!(r.url.path_and_query(), "/in?token=SECRET");
        assert_eq!(r.body, r#"{"text": "CPU \"high\""}"#);
        assert_eq!(
            r.headers,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("content-length".to_string(), "24".to_string()),
                ("Authorization".to_string(), "Bearer SECRET".to_string()),
                ("X-Team".to_string(), "ops".to_string()),
            ]
        );
    }

    #[test]
    fn options_pick_the_section_and_the_body() {
        let r = prepared(&[("workspace", "raw")]).unwrap();
        let length = r.body.len().to_string();
        assert_eq!(
            r.headers,
            vec![
                ("content-type".to_string(), "text/plain".to_string()),
                ("content-length".to_string(), length),
            ]
        );
        assert!(r.body.starts_with(r#"{"id":"cpu","#), "{}", r.body);
        let r = prepared(&[("workspace", "raw"), ("body", "{{{message}}}")]).unwrap();
        assert_eq!(r.body, "CPU \"high\"");
        let e = prepared(&[("workspace", "nope")]).unwrap_err();
        assert_eq!(e, HandlerError::WorkspaceNotFound("nope".into()));
    }

    #[test]
    fn preview_redacts_every_header_but_content_type_and_the_url_secrets() {
        let p = prepared(&[]).unwrap().preview();
        assert_eq!(p.method, "POST");
        assert_eq!(p.url, "https://[redacted]@hooks.example.com/in?[redacted]");
        assert_eq!(
            p.headers,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("content-length".to_string(), "24".to_string()),
                ("Authorization".to_string(), "[redacted]".to_string()),
                ("X-Team".to_string(), "[redacted]".to_string()),
            ]
        );
        assert!(!format!("{p:?}").contains("SECRET"));
    }
}
