//! `slack-alertd`: the daemon operators run. `serve` takes alerts over HTTP
//! and delivers them to Slack through the alert-handler component; `spool`
//! shows what its journal holds and sends failed alerts again. Exit codes:
//! 0 done, 1 the handler refused, 2 bad input, 3 the host failed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use slack_alertd::cli::{self, serve::ServeArgs, spool::SpoolArgs};

#[derive(Parser)]
#[command(
    name = "slack-alertd",
    version,
    about = "Delivers alerts to Slack through the alert-handler WebAssembly component"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Take alerts over HTTP (Kapacitor's post-handler JSON; query
    /// parameters are options), keep them in the spool, deliver them.
    Serve(ServeArgs),
    /// Show a spool: the alerts pending, how the others ended, the failed
    /// ones that can be resent (`spool resend`).
    Spool(SpoolArgs),
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Spool(args) => cli::spool::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(|e| {
            serde_json::json!({"delivered": false, "error": e.kind(), "message": e.describe()})
                .to_string()
        }),
    }
}
