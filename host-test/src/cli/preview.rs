//! `preview`: the message the component would send, drawn as Slack
//! draws it, in a self-contained HTML page.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use slack_alertd::cli::{Failure, Target};
use slack_alertd::say;

use super::{open, prepare, AlertArgs};

#[derive(Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub what: AlertArgs,
    /// Where to write the page.
    #[arg(long, value_name = "OUT.html")]
    pub html: PathBuf,
}

/// `preview`: the message the component would send, drawn as Slack draws
/// it, in an HTML page.
pub fn run(args: PreviewArgs) -> Result<(), Failure> {
    let Some((kind, event, options)) = prepare(&args.what, false)? else {
        return Ok(());
    };
    let (mut plugin, _) = open(&args.target, &kind, false)?;
    let request = plugin
        .preview_alert(&event, &options)
        .map_err(Failure::Host)?
        .map_err(|e| Failure::Handler(e, false))?;
    let title = format!("{} — {}", event.id, args.what.alert.display());
    std::fs::write(&args.html, host_test::preview::page(&title, &request.body))
        .with_context(|| format!("writing {}", args.html.display()))
        .map_err(Failure::Host)?;
    say!("wrote {}", args.html.display());
    Ok(())
}
