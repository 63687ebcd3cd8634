//! The operator's egress allowlist for a plugin in a plugin directory: the
//! origins it may reach, in `NAME.egress.toml` beside `NAME.wasm`, written
//! by whoever runs the host, not by the plugin:
//!
//! ```toml
//! # Origins (scheme, host, port) this plugin may send requests to.
//! allow = ["https://slack.com", "https://hooks.slack.com"]
//! ```
//!
//! A plugin's `configure` summary names the endpoints it wants; every one of
//! an enabled workspace must be on the list, or `configure` is refused
//! naming the endpoint and the file to change. A plugin with no file may
//! reach nothing: any endpoint it names is refused, naming the file to
//! create. (With `--config` and this project's own component, the host
//! trusts the component's summary; see docs/networking.md.)

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use slack_alert_handler::weburl::WebUrl;

use crate::bindings::ConfigSummary;
use crate::net::Origin;

/// One plugin's allowed origins, and the file they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    file: PathBuf,
    /// Scheme and authority (the port only when not the default), as a
    /// summary's endpoints are written.
    origins: Vec<(String, String)>,
    /// Whether the file exists.
    found: bool,
}

impl Allowlist {
    /// The allowlist of the plugin at `wasm` (`NAME.wasm`):
    /// `NAME.egress.toml` beside it, or, when there is none, an empty list
    /// that says which file would hold it.
    pub fn for_plugin(wasm: &Path) -> Result<Allowlist> {
        let file = wasm.with_extension("egress.toml");
        if !file.exists() {
            return Ok(Allowlist {
                file,
                origins: Vec::new(),
                found: false,
            });
        }
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading the egress allowlist {}", file.display()))?;
        Allowlist::parse(&text, file)
    }

    fn parse(text: &str, file: PathBuf) -> Result<Allowlist> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Text {
            allow: Vec<String>,
        }
        let parsed: Text = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message()))?;
        let mut origins = Vec::new();
        for (n, origin) in parsed.allow.iter().enumerate() {
            let at = || format!("{} allow[{n}] \"{origin}\"", file.display());
            let url = WebUrl::parse(origin).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
            // A WebSocket's origin is its http(s) one (net::Origin::of_websocket).
            let scheme = match url.scheme.as_str() {
                "http" | "ws" => "http",
                "https" | "wss" => "https",
                _ => bail!("{}: an origin is http(s)://host[:port] (or ws(s)://)", at()),
            };
            if url.host.is_empty() {
                bail!("{}: an origin is http(s)://host[:port] (or ws(s)://)", at());
            }
            if url.path != "/" || url.query.is_some() {
                bail!(
                    "{}: an origin has no path (requests to any path of it are allowed)",
                    at()
                );
            }
            origins.push((scheme.to_string(), url.authority()));
        }
        Ok(Allowlist {
            file,
            origins,
            found: true,
        })
    }

    /// The file the list is (or would be) in.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Whether the operator wrote a list for this plugin.
    pub fn found(&self) -> bool {
        self.found
    }

    /// Whether the host may open a connection of its own to `origin` for
    /// this plugin (Socket Mode's WebSocket, at the URL the plugin asked
    /// Slack for): it must be on the list; the error names the origin and
    /// the file, as [`Allowlist::check`]'s do, the origin spelt `wss://`
    /// (`ws://`). A `wss://` URL is its `https://` origin (either spelling
    /// may be listed).
    pub fn allows(&self, origin: &Origin) -> Result<(), String> {
        let listed = self
            .origins
            .iter()
            .any(|(scheme, authority)| Origin::parse(scheme, authority).as_ref() == Some(origin));
        if listed {
            return Ok(());
        }
        // Shown as the WebSocket it is (either spelling may be listed).
        let shown = origin.without_default_port().replacen("http", "ws", 1);
        Err(if self.found {
            format!(
                "{shown} is not in the egress allowlist {}; add \"{shown}\" to its `allow` to let this plugin's Socket Mode connect there",
                self.file.display()
            )
        } else {
            format!(
                "this plugin may reach nothing: {} does not exist; create it with allow = [\"{shown}\"] to let its Socket Mode connect there",
                self.file.display()
            )
        })
    }

    /// Refuses a summary naming an endpoint (of an enabled workspace) that
    /// is not on the list; the message names the endpoint and the file.
    pub fn check(&self, summary: &ConfigSummary) -> Result<(), String> {
        for ws in summary.workspaces.iter().filter(|w| w.enabled) {
            let Some(endpoint) = &ws.endpoint else {
                continue;
            };
            let wanted = (endpoint.scheme.clone(), endpoint.authority.clone());
            if self.origins.contains(&wanted) {
                continue;
            }
            let origin = format!("{}://{}", wanted.0, wanted.1);
            return Err(if self.found {
                format!(
                    "workspace \"{}\": its endpoint {origin} is not in the egress allowlist {}; add \"{origin}\" to its `allow` to let this plugin reach it",
                    ws.id,
                    self.file.display()
                )
            } else {
                format!(
                    "workspace \"{}\": this plugin may reach nothing: {} does not exist; create it with allow = [\"{origin}\"] to let it reach {origin}",
                    ws.id,
                    self.file.display()
                )
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{Endpoint, TlsSettings, WorkspaceSummary};

    fn summary(endpoints: &[(&str, &str, bool)]) -> ConfigSummary {
        ConfigSummary {
            kind: "slack".into(),
            workspaces: endpoints
                .iter()
                .map(|(scheme, authority, enabled)| WorkspaceSummary {
                    id: format!("{scheme}-{authority}"),
                    enabled: *enabled,
                    is_default: false,
                    global: false,
                    state_changes_only: false,
                    channel: None,
                    on_recovery: "new".into(),
                    storm_after: 0,
                    storm_list: 50,
                    endpoint: Some(Endpoint {
                        scheme: scheme.to_string(),
                        authority: authority.to_string(),
                    }),
                    tls: TlsSettings {
                        ssl_ca: None,
                        ssl_cert: None,
                        ssl_key: None,
                        insecure_skip_verify: false,
                    },
                })
                .collect(),
        }
    }

    fn list(text: &str) -> Result<Allowlist> {
        Allowlist::parse(text, PathBuf::from("plugins/slack.egress.toml"))
    }

    #[test]
    fn endpoints_on_the_list_pass_and_default_ports_match() {
        let allow = list(r#"allow = ["https://Slack.com:443", "http://127.0.0.1:8080"]"#).unwrap();
        allow
            .check(&summary(&[
                ("https", "slack.com", true),
                ("http", "127.0.0.1:8080", true),
            ]))
            .unwrap();
    }

    #[test]
    fn a_websocket_origin_must_be_listed_in_either_spelling() {
        let ws = |url: &str| Origin::of_websocket(&url.parse().unwrap()).unwrap();
        let allow = list(r#"allow = ["https://slack.com", "wss://wss-primary.slack.com", "https://wss-backup.slack.com"]"#).unwrap();
        allow
            .allows(&ws("wss://wss-primary.slack.com/link/?ticket=1"))
            .unwrap();
        allow
            .allows(&ws("wss://wss-backup.slack.com:443/link/"))
            .unwrap();
        let e = allow
            .allows(&ws("wss://collector.example/link/?ticket=1"))
            .unwrap_err();
        assert!(
            e.contains("\"wss://collector.example\"") && e.contains("plugins/slack.egress.toml"),
            "{e}"
        );
        assert!(!e.contains("ticket"), "{e}");
        // Plain text is another origin.
        assert!(allow
            .allows(&ws("ws://wss-primary.slack.com/link/"))
            .is_err());
        let none = Allowlist::for_plugin(Path::new("/nonexistent/slack.wasm")).unwrap();
        let e = none
            .allows(&ws("wss://wss-primary.slack.com/"))
            .unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn an_endpoint_off_the_list_is_refused_naming_it_and_the_file() {
        let allow = list(r#"allow = ["https://slack.com"]"#).unwrap();
        let e = allow
            .check(&summary(&[
                ("https", "slack.com", true),
                ("https", "collector.example", true),
            ]))
            .unwrap_err();
        assert!(
            e.contains("https://collector.example") && e.contains("plugins/slack.egress.toml"),
            "{e}"
        );
        // Scheme and port count.
        assert!(allow
            .check(&summary(&[("http", "slack.com", true)]))
            .is_err());
        assert!(allow
            .check(&summary(&[("https", "slack.com:8443", true)]))
            .is_err());
        // A disabled workspace sends nothing: not checked.
        allow
            .check(&summary(&[("https", "elsewhere.example", false)]))
            .unwrap();
    }

    #[test]
    fn without_a_file_nothing_is_reachable_and_the_error_says_what_to_create() {
        let dir = tempfile::tempdir().unwrap();
        let allow = Allowlist::for_plugin(&dir.path().join("slack.wasm")).unwrap();
        assert!(!allow.found());
        let e = allow
            .check(&summary(&[("https", "slack.com", true)]))
            .unwrap_err();
        assert!(
            e.contains("may reach nothing")
                && e.contains("slack.egress.toml")
                && e.contains(r#"allow = ["https://slack.com"]"#),
            "{e}"
        );
    }

    #[test]
    fn a_bad_list_is_refused_naming_the_entry() {
        for (text, want) in [
            (r#"allow = ["slack.com"]"#, "allow[0]"),
            (r#"allow = ["ftp://slack.com"]"#, "http(s)://host"),
            (r#"allow = ["https://slack.com/api"]"#, "no path"),
            (r#"allowed = []"#, "unknown field"),
        ] {
            let e = format!("{:#}", list(text).unwrap_err());
            assert!(
                e.contains(want) && e.contains("slack.egress.toml"),
                "{text}: {e}"
            );
        }
    }
}
