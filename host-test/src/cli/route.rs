//! `route`: an alert from an alert node with no `.slack()`, sent only
//! where Kapacitor would send it.

use std::path::PathBuf;

use clap::Args;
use kapacitor_formats::alert_node::{self, Decision};
use slack_alertd::cli::{Failure, Target};
use slack_alertd::say;

use super::{load_alert, open, print_delivery};

#[derive(Args)]
pub struct RouteArgs {
    #[command(flatten)]
    pub target: Target,
    /// The alert, in Kapacitor's `post`-handler JSON.
    #[arg(long, value_name = "FILE")]
    pub alert: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `route`.
pub fn run(args: RouteArgs) -> Result<(), Failure> {
    let event = load_alert(&args.alert)?;
    let (mut plugin, summary) = open(&args.target, "slack", args.json)?;
    let decision = alert_node::decide(&summary, &event);
    if decision != Decision::Send {
        if args.json {
            say!(
                "{}",
                serde_json::json!({"delivered": false, "suppressed": decision.reason()})
            );
        } else {
            say!("suppressed: {}", decision.reason());
        }
        return Ok(());
    }
    let delivery = plugin
        .handle_alert(&event, &[])
        .map_err(Failure::Host)?
        .map_err(|e| Failure::Handler(e, args.json))?;
    print_delivery(&delivery, args.json);
    Ok(())
}
