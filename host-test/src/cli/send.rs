//! `send`: one alert through the handler, now, with retries.

use std::time::{Duration, Instant};

use alert_handler_host::retry::{self, Backoff};
use clap::Args;
use host_test::report;
use slack_alertd::cli::{Failure, Target};
use slack_alertd::say;

use super::{open, prepare, print_delivery, AlertArgs};

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub what: AlertArgs,
    /// Print the request that would be sent (secrets redacted) instead of sending.
    #[arg(long)]
    pub dry_run: bool,
    /// Retry transient failures (honouring Slack's Retry-After) for up to
    /// this long; 0 sends once.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub retry_for: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `send`.
pub fn run(args: SendArgs) -> Result<(), Failure> {
    let Some((kind, event, options)) = prepare(&args.what, args.json)? else {
        return Ok(());
    };
    let (mut plugin, _) = open(&args.target, &kind, args.json)?;
    if args.dry_run {
        let request = plugin
            .preview_alert(&event, &options)
            .map_err(Failure::Host)?
            .map_err(|e| Failure::Handler(e, args.json))?;
        if args.json {
            say!("{}", report::request_json(&request));
        } else {
            say!("{}", report::request_text(&request));
        }
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(args.retry_for);
    let sent = retry::send_with_retries(
        &mut plugin,
        &event,
        &options,
        &Backoff::default(),
        deadline,
        |e, n, wait| {
            eprintln!("attempt {n}: {}; retrying in {wait:.1?}", e.describe());
        },
    )
    .map_err(Failure::Host)?;
    match sent.outcome {
        Ok(delivery) => {
            print_delivery(&delivery, args.json);
            Ok(())
        }
        Err(e) => {
            if let (Some(why), false) = (sent.stopped, args.json) {
                eprintln!("gave up after {} attempt(s): {why}", sent.attempts);
            }
            Err(Failure::Handler(e, args.json))
        }
    }
}
