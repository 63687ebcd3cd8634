//! Removing secrets from what is shown: a legacy webhook URL carries its
//! secret in the path, a token travels in `Authorization`.

use crate::weburl::WebUrl;

/// What stands in for a removed secret.
pub const REDACTED: &str = "[redacted]";

/// The URL with user-info, query and fragment removed and, unless it is a
/// Web API method (`/api/...`), the path replaced by `/[redacted]`.
pub fn url(raw: &str) -> String {
    let Ok(mut parsed) = WebUrl::parse(raw) else {
        return REDACTED.to_string();
    };
    if parsed.host.is_empty() {
        return REDACTED.to_string();
    }
    if parsed.query.is_some() {
        parsed.query = Some(REDACTED.to_string());
    }
    let web_api_method = parsed
        .path
        .strip_prefix("/api/")
        .is_some_and(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
    if !web_api_method && parsed.path != "/" {
        parsed.path = format!("/{REDACTED}");
    }
    parsed.to_url()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_api_url_keeps_its_method() {
        assert_eq!(
            url("https://slack.com/api/chat.postMessage"),
            "https://slack.com/api/chat.postMessage"
        );
    }

    #[test]
    fn webhook_path_is_removed() {
        assert_eq!(
            url("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/[redacted]"
        );
    }

    #[test]
    fn user_info_and_query_are_removed() {
        let shown = url("https://me:pw@slack.example:8443/api/chat.postMessage?token=SECRET#x");
        assert_eq!(
            shown,
            "https://slack.example:8443/api/chat.postMessage?[redacted]"
        );
    }

    #[test]
    fn unparseable_url_is_fully_redacted() {
        assert_eq!(url("::SECRET"), REDACTED);
    }
}
