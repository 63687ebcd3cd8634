//! `test`: the service test, as `kapacitor service-tests slack` runs it.

use clap::Args;
use slack_alertd::cli::{Failure, Target};
use slack_alertd::say;

use super::{open, parse_pairs};

#[derive(Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub target: Target,
    /// A service-test option (workspace, channel, message, level, username, icon-emoji).
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

/// Runs the service test.
pub fn run(args: TestArgs) -> Result<(), Failure> {
    let options = parse_pairs(&args.options)?;
    let (mut plugin, _) = open(&args.target, "slack", true)?;
    // Kapacitor's service-test answer: {"success": bool, "message": "..."}.
    match plugin.service_test(&options).map_err(Failure::Host)? {
        Ok(_) => {
            say!("{}", serde_json::json!({"success": true, "message": ""}));
            Ok(())
        }
        Err(e) => {
            say!(
                "{}",
                serde_json::json!({"success": false, "message": e.describe()})
            );
            Err(Failure::Reported)
        }
    }
}
