//! A handler's options (`handle-alert`, `preview-alert`) and the service
//! test's. An empty value means the section's setting. The host-only
//! options a generic host may pass to any plugin are ignored; any other
//! key this handler does not take is `unknown-option`.

use crate::describe::{self, Setting, OPTIONS};
use crate::error::HandlerError;
use crate::event::{AlertEvent, Level};
use crate::render::{self, Template};

/// The options of one call.
#[derive(Debug, Default)]
pub struct Options {
    /// The section to send through; empty for the default.
    pub workspace: String,
    /// A body template instead of the section's.
    pub body: Option<Template>,
}

/// The service test's options and their defaults.
pub const TEST_DEFAULTS: [(&str, &str); 5] = [
    ("workspace", ""),
    ("body", ""),
    ("id", "webhook-test"),
    ("message", "test webhook message"),
    ("level", "OK"),
];

impl Options {
    /// Reads a handler's options.
    pub fn parse(pairs: &[(String, String)]) -> Result<Options, HandlerError> {
        let mut options = Options::default();
        for (key, value) in pairs {
            if !options.take(key, value)? && !is_host_only(key) {
                return Err(unknown(key, &describe::names(&OPTIONS)));
            }
        }
        Ok(options)
    }

    /// Reads the service test's options over [`TEST_DEFAULTS`]: the
    /// handler's options, and the test event's `id`, `message` and `level`.
    pub fn parse_test(pairs: &[(String, String)]) -> Result<(Options, AlertEvent), HandlerError> {
        let mut options = Options::default();
        let mut event = AlertEvent::new(TEST_DEFAULTS[2].1, TEST_DEFAULTS[3].1, Level::Ok);
        for (key, value) in pairs {
            match key.as_str() {
                "id" => event.id = value.clone(),
                "message" => event.message = value.clone(),
                "level" => {
                    event.level = Level::parse(value).ok_or_else(|| {
                        HandlerError::InvalidOption(
                            "`level` must be OK, INFO, WARNING or CRITICAL".to_string(),
                        )
                    })?
                }
                _ if options.take(key, value)? || is_host_only(key) => {}
                _ => {
                    let keys: Vec<&str> = TEST_DEFAULTS.iter().map(|(k, _)| *k).collect();
                    return Err(unknown(key, &keys.join(", ")));
                }
            }
        }
        Ok((options, event))
    }

    /// Takes `key` if it is one of this handler's options.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, HandlerError> {
        match key {
            "workspace" => self.workspace = value.to_string(),
            "body" if value.is_empty() => self.body = None,
            "body" => {
                let template = render::compile(value)
                    .map_err(|e| HandlerError::InvalidOption(format!("`body`: {e}")))?;
                self.body = Some(template);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn is_host_only(key: &str) -> bool {
    OPTIONS
        .iter()
        .any(|&(name, _, host_only): &Setting| host_only && name == key)
}

fn unknown(key: &str, keys: &str) -> HandlerError {
    HandlerError::UnknownOption(format!("unknown option `{key}` (the options are {keys})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn workspace_and_body_are_read() {
        let o = Options::parse(&pairs(&[("workspace", "ops"), ("body", "{{message}}")])).unwrap();
        assert_eq!(o.workspace, "ops");
        assert!(o.body.is_some());
        let o = Options::parse(&pairs(&[("body", "")])).unwrap();
        assert!(o.body.is_none());
    }

    #[test]
    fn host_only_options_are_ignored() {
        let host = pairs(&[
            ("alert-key", "k"),
            ("previous-channel-id", "C1"),
            ("previous-ts", "1.2"),
            ("acknowledged-by", "U1"),
            ("acknowledged-at", "1"),
            ("silenced-by", "U1"),
            ("silenced-until", "2"),
            ("refresh", "true"),
        ]);
        assert!(Options::parse(&host).is_ok());
        assert!(Options::parse_test(&host).is_ok());
    }

    #[test]
    fn unknown_option_is_an_error_naming_the_keys() {
        let e = Options::parse(&pairs(&[("channel", "#ops")])).unwrap_err();
        assert_eq!(
            e,
            HandlerError::UnknownOption(
                "unknown option `channel` (the options are workspace, body)".into()
            )
        );
        let e = Options::parse_test(&pairs(&[("colour", "red")])).unwrap_err();
        assert_eq!(
            e,
            HandlerError::UnknownOption(
                "unknown option `colour` (the options are workspace, body, id, message, level)"
                    .into()
            )
        );
    }

    #[test]
    fn a_body_that_does_not_compile_is_invalid() {
        let e = Options::parse(&pairs(&[("body", "{{#if}}")])).unwrap_err();
        assert!(
            matches!(&e, HandlerError::InvalidOption(m) if m.starts_with("`body`: template error")),
            "{e:?}"
        );
    }

    #[test]
    fn the_service_test_sends_a_test_event() {
        let (o, e) = Options::parse_test(&[]).unwrap();
        assert_eq!(
            (
                e.id.as_str(),
                e.message.as_str(),
                e.level,
                o.workspace.as_str()
            ),
            ("webhook-test", "test webhook message", Level::Ok, "")
        );
        let (_, e) =
            Options::parse_test(&pairs(&[("level", "critical"), ("message", "hi")])).unwrap();
        assert_eq!((e.level, e.message.as_str()), (Level::Critical, "hi"));
        let e = Options::parse_test(&pairs(&[("level", "fatal")])).unwrap_err();
        assert!(matches!(e, HandlerError::InvalidOption(_)));
    }
}
