//! `host-test`: run the Slack alert-handler component the way an alerting
//! host would, and the harness around it (the Slack stand-in, previews,
//! the demo). `serve` and `spool` are `slack-alertd`'s, the daemon
//! operators install. Exit codes: 0 delivered (or deliberately not sent),
//! 1 the handler's error, 2 bad input to the CLI, 3 the host or component
//! failed. Each subcommand is a file of `cli/`; this one parses and
//! dispatches.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use host_test::report;
use slack_alertd::cli::serve::ServeArgs;
use slack_alertd::cli::spool::SpoolArgs;

#[derive(Parser)]
#[command(
    name = "host-test",
    version,
    about = "Runs the Slack alert-handler WebAssembly component in wasmtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Send one alert, as an explicit `.slack()` handler or a topic handler.
    Send(cli::send::SendArgs),
    /// Run the service test (`kapacitor service-tests slack`).
    Test(cli::test::TestArgs),
    /// Send an alert from an alert node with no `.slack()`: it goes to the
    /// default workspace only if that is `global` (and, with
    /// `state-changes-only`, only when the level changed).
    Route(cli::route::RouteArgs),
    /// The daemon, as `slack-alertd serve` runs it: takes alerts over HTTP
    /// (Kapacitor's post-handler JSON; query parameters are options),
    /// spools them, delivers them.
    Serve(ServeArgs),
    /// Show a spool: the alerts pending, how the others ended, the failed
    /// ones that can be resent (`spool resend`).
    Spool(SpoolArgs),
    /// Publish one alert to a topic of a handler directory, as Kapacitor's
    /// alert service would: each handler whose `match` holds takes it (a
    /// `slack` handler sends it now; an `aggregate` needs `serve`, which
    /// keeps its window).
    Publish(cli::publish::PublishArgs),
    /// Draw the message the component would send for an alert, as Slack
    /// draws it, in a self-contained HTML page (nothing is sent).
    Preview(cli::preview::PreviewArgs),
    /// Say what a handler component is and what it takes (its `describe`):
    /// kind, version, configuration keys and options, each with a line.
    Describe {
        /// The component (default: the one built into this binary).
        #[arg(long, value_name = "FILE.wasm")]
        component: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the documentation's examples against a local Slack stand-in.
    Demo {
        /// The examples directory.
        #[arg(long, value_name = "DIR")]
        examples: Option<PathBuf>,
        /// Also write, for each example, the page `preview` draws of the
        /// message, into this directory.
        #[arg(long, value_name = "DIR")]
        html: Option<PathBuf>,
    },
    /// Run the Slack stand-in alone, printing each request it receives.
    MockSlack {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Send(args) => cli::send::run(args),
        Command::Test(args) => cli::test::run(args),
        Command::Route(args) => cli::route::run(args),
        Command::Describe { component, json } => cli::describe::run(component, json),
        Command::Publish(args) => cli::publish::run(args),
        Command::Preview(args) => cli::preview::run(args),
        Command::Demo { examples, html } => cli::demo::run(examples, html),
        Command::MockSlack { port } => {
            cli::mock_slack::run(port).map_err(slack_alertd::cli::Failure::Host)
        }
        Command::Serve(args) => slack_alertd::cli::serve::run(args),
        Command::Spool(args) => slack_alertd::cli::spool::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(|e| report::error_json(e).to_string()),
    }
}
