//! Which channel an alert goes to, as Slack's rate limit counts it: the
//! workspace and the channel (its pacing key). Read from the alert's
//! options and the configuration's summary, as the WIT's
//! `workspace-summary.channel` promises, so the host paces an alert
//! without asking the plugin to render it first.

use std::collections::HashMap;

use alert_handler_host::ConfigSummary;

/// The pacing key: the workspace and the channel. A webhook bound to one
/// channel (no `channel` configured or asked for) is its own key.
pub fn pacing_key(workspace: &str, channel: &str) -> String {
    format!("{workspace} {channel}")
}

/// Each workspace's default channel, and which workspace is the default.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    default_workspace: String,
    channels: HashMap<String, String>,
    /// Each workspace's `on-recovery`.
    on_recovery: HashMap<String, String>,
    /// Each workspace's `storm-after` and `storm-list`.
    storms: HashMap<String, (u32, u32)>,
}

impl Channels {
    pub fn new(summary: &ConfigSummary) -> Channels {
        Channels {
            default_workspace: summary
                .workspaces
                .iter()
                .find(|w| w.is_default)
                .map(|w| w.id.clone())
                .unwrap_or_default(),
            channels: summary
                .workspaces
                .iter()
                .filter_map(|w| Some((w.id.clone(), w.channel.clone()?)))
                .collect(),
            on_recovery: summary
                .workspaces
                .iter()
                .map(|w| (w.id.clone(), w.on_recovery.clone()))
                .collect(),
            storms: summary
                .workspaces
                .iter()
                .map(|w| (w.id.clone(), (w.storm_after, w.storm_list)))
                .collect(),
        }
    }

    /// When an alert with these handler options storms, and how many lines
    /// its storm message lists: the `storm-after` and `storm-list`
    /// options, else its workspace's (`storm-after` 0: never).
    pub fn storm(&self, options: &[(String, String)]) -> (u32, u32) {
        let workspace = option(options, "workspace").unwrap_or(&self.default_workspace);
        let (after, list) = self.storms.get(workspace).copied().unwrap_or((0, 50));
        let number = |names: [&str; 2], or: u32| {
            names
                .iter()
                .find_map(|n| option(options, n))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(or)
        };
        (
            number(["storm-after", "stormAfter"], after),
            number(["storm-list", "stormList"], list).max(1),
        )
    }

    /// What a later event of an alert with these handler options does with
    /// its message: the `on-recovery` option, else its workspace's.
    pub fn on_recovery(&self, options: &[(String, String)]) -> String {
        option(options, "on-recovery")
            .map(str::to_string)
            .or_else(|| {
                let workspace = option(options, "workspace").unwrap_or(&self.default_workspace);
                self.on_recovery.get(workspace).cloned()
            })
            .unwrap_or_else(|| "new".into())
    }

    /// The pacing key of an alert with these handler options: the
    /// `workspace` option or the default workspace, the `channel` option or
    /// that workspace's channel (an empty option counts as none, as in
    /// Kapacitor; the last of a repeated option wins).
    pub fn pacing_key(&self, options: &[(String, String)]) -> String {
        let workspace = option(options, "workspace").unwrap_or(&self.default_workspace);
        let channel = option(options, "channel")
            .or_else(|| self.channels.get(workspace).map(String::as_str))
            .unwrap_or_default();
        pacing_key(workspace, channel)
    }
}

/// Handler option `name`: the last one given, an empty one counting as
/// none (as in Kapacitor).
fn option<'a>(options: &'a [(String, String)], name: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alert_handler_host::{TlsSettings, WorkspaceSummary};

    fn workspace(id: &str, is_default: bool, channel: Option<&str>) -> WorkspaceSummary {
        WorkspaceSummary {
            id: id.into(),
            enabled: true,
            is_default,
            global: false,
            state_changes_only: false,
            channel: channel.map(str::to_string),
            endpoint: None,
            on_recovery: "new".into(),
            storm_after: 4,
            storm_list: 50,
            tls: TlsSettings {
                ssl_ca: None,
                ssl_cert: None,
                ssl_key: None,
                insecure_skip_verify: false,
            },
        }
    }

    fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn destinations() -> Channels {
        Channels::new(&ConfigSummary {
            kind: "slack".into(),
            workspaces: vec![
                workspace("ops", true, Some("#ops")),
                workspace("db", false, Some("#db")),
                workspace("hook", false, None),
            ],
        })
    }

    #[test]
    fn options_name_the_channel_and_the_workspace() {
        let d = destinations();
        assert_eq!(d.pacing_key(&options(&[("channel", "#x")])), "ops #x");
        assert_eq!(
            d.pacing_key(&options(&[("workspace", "db"), ("channel", "#x")])),
            "db #x"
        );
    }

    #[test]
    fn without_options_the_workspace_default_channel_counts() {
        let d = destinations();
        assert_eq!(d.pacing_key(&[]), "ops #ops");
        assert_eq!(d.pacing_key(&options(&[("workspace", "db")])), "db #db");
        assert_eq!(
            d.pacing_key(&options(&[("channel", ""), ("workspace", "")])),
            "ops #ops"
        );
    }

    #[test]
    fn a_webhook_bound_to_its_channel_is_its_own_key() {
        let d = destinations();
        assert_eq!(d.pacing_key(&options(&[("workspace", "hook")])), "hook ");
    }

    #[test]
    fn the_last_of_a_repeated_option_wins() {
        let d = destinations();
        assert_eq!(
            d.pacing_key(&options(&[("channel", "#a"), ("channel", "#b")])),
            "ops #b"
        );
    }
}
