//! `publish`: one alert through a topic's handlers, once, as Kapacitor's
//! alert service would.

use std::path::PathBuf;

use clap::Args;
use kapacitor_formats::topics::{Handlers, Route};
use slack_alertd::cli::{Failure, Target};
use slack_alertd::say;

use super::{load_alert, open, print_delivery};

#[derive(Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub target: Target,
    /// The directory of topic-handler files.
    #[arg(long, value_name = "DIR")]
    pub handlers: PathBuf,
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// The alert, in Kapacitor's `post`-handler JSON.
    #[arg(long, value_name = "FILE")]
    pub alert: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `publish`: one alert through a topic's handlers, once.
pub fn run(args: PublishArgs) -> Result<(), Failure> {
    let handlers = Handlers::load(&args.handlers, 1.0).map_err(Failure::Input)?;
    let mut event = load_alert(&args.alert)?;
    event.topic = Some(args.topic.clone());
    let (routes, notes) = handlers.route(&args.topic, &event);
    for note in &notes {
        eprintln!("note: {note}");
    }
    if routes.is_empty() {
        say!("no handler of topic `{}` took it", args.topic);
        return Ok(());
    }
    let mut plugin = None;
    let mut failed = None;
    for route in routes {
        match route {
            Route::Collect { handler } => say!(
                "aggregate `{handler}` collects it: `serve --handlers` keeps its window and publishes when the interval ends"
            ),
            Route::Deliver { handler, options, .. } => {
                if plugin.is_none() {
                    plugin = Some(open(&args.target, "slack", args.json)?.0);
                }
                let plugin = plugin.as_mut().expect("opened above");
                match plugin.handle_alert(&event, &options).map_err(Failure::Host)? {
                    Ok(delivery) => {
                        say!("handler `{handler}`:");
                        print_delivery(&delivery, args.json);
                    }
                    Err(e) => {
                        eprintln!("handler `{handler}`: {}", e.describe());
                        failed = Some(e);
                    }
                }
            }
        }
    }
    match failed {
        Some(e) => Err(Failure::Handler(e, args.json)),
        None => Ok(()),
    }
}
