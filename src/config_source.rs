//! Where an instance that was never `configure`d finds its configuration:
//! stock hosts such as `wasmtime run --invoke` make a fresh instance per
//! call, so nothing can call `configure` first.

use crate::error::HandlerError;

/// The configuration's TOML text itself (`wasmtime run --env`).
pub const ENV_TEXT: &str = "SLACK_HANDLER_CONFIG";
/// A path to the configuration, inside a preopened directory.
pub const ENV_FILE: &str = "SLACK_HANDLER_CONFIG_FILE";
/// The file looked for in the preopened directories when neither variable is set.
pub const DEFAULT_FILE: &str = "slack.toml";

/// Finds the configuration text: `SLACK_HANDLER_CONFIG`, else the file named
/// by `SLACK_HANDLER_CONFIG_FILE`, else `slack.toml`.
pub fn find(
    env: impl Fn(&str) -> Option<String>,
    read: impl Fn(&str) -> std::io::Result<String>,
) -> Result<String, HandlerError> {
    if let Some(text) = env(ENV_TEXT).filter(|t| !t.trim().is_empty()) {
        return Ok(text);
    }
    if let Some(path) = env(ENV_FILE).filter(|p| !p.is_empty()) {
        return read(&path).map_err(|e| {
            HandlerError::InvalidConfig(format!("cannot read {ENV_FILE} \"{path}\": {e}"))
        });
    }
    read(DEFAULT_FILE).map_err(|_| {
        HandlerError::NotConfigured(format!(
            "configure was not called, and neither {ENV_TEXT} (the TOML text), \
             {ENV_FILE} (a path in a preopened directory) nor {DEFAULT_FILE} in a \
             preopened directory gives a configuration"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    fn missing(_: &str) -> std::io::Result<String> {
        Err(Error::from(ErrorKind::NotFound))
    }

    #[test]
    fn text_in_the_environment_comes_first() {
        let env = |k: &str| (k == ENV_TEXT).then(|| "[slack]".to_string());
        assert_eq!(find(env, missing).unwrap(), "[slack]");
    }

    #[test]
    fn a_file_named_in_the_environment_is_read() {
        let env = |k: &str| (k == ENV_FILE).then(|| "/cfg/k.conf".to_string());
        let read = |p: &str| Ok(format!("read {p}"));
        assert_eq!(find(env, read).unwrap(), "read /cfg/k.conf");
        let e = find(env, missing).unwrap_err();
        assert!(matches!(e, HandlerError::InvalidConfig(m) if m.contains("/cfg/k.conf")));
    }

    #[test]
    fn slack_toml_is_the_fallback() {
        let read = |p: &str| Ok(format!("read {p}"));
        assert_eq!(find(|_| None, read).unwrap(), "read slack.toml");
    }

    #[test]
    fn nothing_anywhere_is_not_configured() {
        let e = find(|_| None, missing).unwrap_err();
        assert!(matches!(e, HandlerError::NotConfigured(m) if m.contains(ENV_TEXT)));
    }
}
