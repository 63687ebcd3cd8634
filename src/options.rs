//! Handler options (`.slack().channel('#x')` in a TICKscript, `options:` in
//! a handler file) and the service test's options.

use crate::config::normalise_key;
use crate::error::HandlerError;
use crate::event::Level;

/// The options of one Slack handler. An empty value means "use the
/// workspace's setting".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerOptions {
    pub workspace: String,
    pub channel: String,
    pub username: String,
    pub icon_emoji: String,
}

/// The handler-file keys; `iconEmoji` (TICKscript) is accepted too.
pub const HANDLER_KEYS: [&str; 4] = ["workspace", "channel", "username", "icon-emoji"];

impl HandlerOptions {
    /// Reads options strictly, as Kapacitor decodes topic-handler options:
    /// an unknown key is an error. A repeated key takes its last value.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, HandlerError> {
        let mut options = HandlerOptions::default();
        for (key, value) in pairs {
            if !options.set(key, value) {
                return Err(unknown(key, &HANDLER_KEYS));
            }
        }
        Ok(options)
    }

    /// Sets one option; false when the key is not a handler option.
    fn set(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "workspace" => &mut self.workspace,
            "channel" => &mut self.channel,
            "username" => &mut self.username,
            "icon-emoji" | "iconEmoji" => &mut self.icon_emoji,
            _ => return false,
        };
        *slot = value.to_string();
        true
    }
}

/// The service test's options (`kapacitor service-tests slack`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOptions {
    pub handler: HandlerOptions,
    pub message: String,
    pub level: Level,
}

/// The service test's option keys and Kapacitor's defaults.
pub const TEST_DEFAULTS: [(&str, &str); 6] = [
    ("workspace", ""),
    ("channel", ""),
    ("message", "test slack message"),
    ("level", "CRITICAL"),
    ("username", ""),
    ("icon-emoji", ""),
];

impl TestOptions {
    /// Reads the service test's options over Kapacitor's defaults.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, HandlerError> {
        let mut options = TestOptions {
            handler: HandlerOptions::default(),
            message: "test slack message".to_string(),
            level: Level::Critical,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "message" => options.message = value.clone(),
                "level" => {
                    options.level = value
                        .parse()
                        .map_err(|e| HandlerError::InvalidOption(format!("`level`: {e}")))?;
                }
                _ => {
                    if !options.handler.set(key, value) {
                        let keys: Vec<&str> = TEST_DEFAULTS.iter().map(|(k, _)| *k).collect();
                        return Err(unknown(key, &keys));
                    }
                }
            }
        }
        Ok(options)
    }
}

fn unknown(key: &str, known: &[&str]) -> HandlerError {
    let normalised = normalise_key(key);
    match known.iter().find(|k| normalise_key(k) == normalised) {
        Some(k) => {
            HandlerError::UnknownOption(format!("unknown option `{key}` (did you mean `{k}`?)"))
        }
        None => HandlerError::UnknownOption(format!(
            "unknown option `{key}` (the options are {})",
            known.join(", ")
        )),
    }
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
    fn handler_file_keys_are_read() {
        let o = HandlerOptions::parse(&pairs(&[
            ("workspace", "alerts"),
            ("channel", "#c"),
            ("username", "bot"),
            ("icon-emoji", ":fire:"),
        ]))
        .unwrap();
        assert_eq!(
            o,
            HandlerOptions {
                workspace: "alerts".into(),
                channel: "#c".into(),
                username: "bot".into(),
                icon_emoji: ":fire:".into()
            }
        );
    }

    #[test]
    fn tickscript_spelling_is_accepted() {
        let o = HandlerOptions::parse(&pairs(&[("iconEmoji", ":smile:")])).unwrap();
        assert_eq!(o.icon_emoji, ":smile:");
    }

    #[test]
    fn unknown_option_is_an_error() {
        let e = HandlerOptions::parse(&pairs(&[("icon_emoji", ":x:")])).unwrap_err();
        assert_eq!(
            e,
            HandlerError::UnknownOption(
                "unknown option `icon_emoji` (did you mean `icon-emoji`?)".into()
            )
        );
        let e = HandlerOptions::parse(&pairs(&[("color", "red")])).unwrap_err();
        assert!(e
            .to_string()
            .contains("the options are workspace, channel, username, icon-emoji"));
    }

    #[test]
    fn no_options_means_all_from_the_workspace() {
        assert_eq!(
            HandlerOptions::parse(&[]).unwrap(),
            HandlerOptions::default()
        );
    }

    #[test]
    fn test_options_have_kapacitors_defaults() {
        let t = TestOptions::parse(&[]).unwrap();
        assert_eq!(t.message, "test slack message");
        assert_eq!(t.level, Level::Critical);
        assert_eq!(t.handler, HandlerOptions::default());
    }

    #[test]
    fn test_options_override_defaults() {
        let t = TestOptions::parse(&pairs(&[
            ("channel", "#t"),
            ("message", "hi"),
            ("level", "warning"),
        ]))
        .unwrap();
        assert_eq!(
            (t.handler.channel.as_str(), t.message.as_str(), t.level),
            ("#t", "hi", Level::Warning)
        );
    }

    #[test]
    fn bad_test_level_is_an_invalid_option() {
        let e = TestOptions::parse(&pairs(&[("level", "SEVERE")])).unwrap_err();
        assert!(
            matches!(e, HandlerError::InvalidOption(m) if m.starts_with("`level`: unknown level \"SEVERE\""))
        );
    }
}
