//! `preview`: the message the component would send, drawn as Slack
//! draws it, in a self-contained HTML page.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use slack_alertd::cli::{Failure, Target};
use slack_alertd::say;

use super::{open, prepare, AlertArgs};
use alert_handler_host::{AlertEvent, Level, Storm, StormLine, Timestamp};

#[derive(Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub what: AlertArgs,
    /// Where to write the page.
    #[arg(long, value_name = "OUT.html")]
    pub html: PathBuf,
    /// Draw the storm message `serve` would show for N alerts like this one
    /// (`ALERT-01` … `ALERT-N`, a quarter of them recovered) instead of
    /// the alert's own message.
    #[arg(long, value_name = "N")]
    pub storm: Option<u32>,
}

/// `preview`: the message the component would send, drawn as Slack draws
/// it, in an HTML page.
pub fn run(args: PreviewArgs) -> Result<(), Failure> {
    let Some((kind, event, options)) = prepare(&args.what, false)? else {
        return Ok(());
    };
    let (mut plugin, _) = open(&args.target, &kind, false)?;
    let request = match args.storm {
        Some(n) => plugin.preview_storm(&storm_of(&event, n), &options),
        None => plugin.preview_alert(&event, &options),
    };
    let request = request
        .map_err(Failure::Host)?
        .map_err(|e| Failure::Handler(e, false))?;
    let title = format!("{} — {}", event.id, args.what.alert.display());
    std::fs::write(&args.html, host_test::preview::page(&title, &request.body))
        .with_context(|| format!("writing {}", args.html.display()))
        .map_err(Failure::Host)?;
    say!("wrote {}", args.html.display());
    Ok(())
}

/// A storm of `n` alerts like `event` (`ID-01` … `ID-N`), as `serve` would
/// hand it to the component: every fourth recovered, the newest first,
/// at most 50 lines.
fn storm_of(event: &AlertEvent, n: u32) -> Storm {
    let n = n.max(1);
    let now = event.time;
    let minutes = |m: i64| Timestamp {
        seconds: now.seconds - m * 60,
        nanoseconds: 0,
    };
    let lines: Vec<StormLine> = (1..=n)
        .rev()
        .map(|i| {
            let mut line = event.clone();
            line.id = format!("{}-{i:02}", event.id);
            if i % 4 == 0 {
                line.level = Level::Ok;
            }
            StormLine {
                event: line,
                since: minutes(i64::from(n - i) + 1),
                silenced_until: None,
            }
        })
        .collect();
    let resolved = lines.iter().filter(|l| l.event.level == Level::Ok).count() as u32;
    let firing = n - resolved;
    let shown: Vec<StormLine> = lines.into_iter().take(50).collect();
    Storm {
        key: format!("storm {}", event.id),
        started: minutes(i64::from(n) + 1),
        now,
        closed: false,
        group_labels: Vec::new(),
        common_labels: Vec::new(),
        firing: if firing > 0 && event.level != Level::Ok {
            vec![(event.level, firing)]
        } else {
            Vec::new()
        },
        resolved,
        total: n,
        more: n.saturating_sub(shown.len() as u32),
        lines: shown,
    }
}
