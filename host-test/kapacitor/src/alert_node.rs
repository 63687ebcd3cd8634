//! What Kapacitor's alert node does with `global` and `state-changes-only`
//! for an alert node that has no explicit `.slack()`.

use alert_handler_host::{AlertEvent, ConfigSummary, Level};

/// Whether an alert from an alert node without `.slack()` goes to Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it to the default workspace with empty options.
    Send,
    /// The default workspace is not `global`: only `.slack()` sends.
    NotGlobal,
    /// `state-changes-only`: the level is the same as before.
    StateUnchanged,
    /// An `OK` that is not a recovery: Kapacitor's alert node emits none.
    NotARecovery,
}

impl Decision {
    /// Why nothing was sent, for the CLI.
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Send => "sent",
            Decision::NotGlobal => {
                "the default workspace is not global, so only an explicit .slack() sends"
            }
            Decision::StateUnchanged => "state-changes-only: the level did not change",
            Decision::NotARecovery => "an OK event that is not a recovery is not sent",
        }
    }
}

pub fn decide(summary: &ConfigSummary, event: &AlertEvent) -> Decision {
    let Some(default) = summary.workspaces.iter().find(|w| w.is_default) else {
        return Decision::NotGlobal;
    };
    if !default.global {
        return Decision::NotGlobal;
    }
    // A new alert's previous level is OK.
    let previous = event.previous_level.unwrap_or(Level::Ok);
    if default.state_changes_only {
        if event.level == previous {
            return Decision::StateUnchanged;
        }
    } else if event.level == Level::Ok && previous == Level::Ok {
        return Decision::NotARecovery;
    }
    Decision::Send
}
