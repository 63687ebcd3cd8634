//! What the subcommands share: an alert and its options (`AlertArgs`,
//! [`prepare`]), and opening the handler they run ([`open`]).

pub mod demo;
pub mod describe;
pub mod mock_slack;
pub mod preview;
pub mod publish;
pub mod route;
pub mod send;
pub mod test;

use std::path::{Path, PathBuf};

use alert_handler_host::{AlertEvent, ConfigSummary, Delivery, Host, Instance};
use anyhow::{anyhow, Context};
use clap::Args;
use host_test::report;
use kapacitor_formats::{alert_json, handler_file, tick};
use slack_alertd::cli::{read, Failure, Target};
use slack_alertd::say;
use slack_alertd::store;

/// An alert and where its handler options come from.
#[derive(Args)]
pub struct AlertArgs {
    /// The alert, in Kapacitor's `post`-handler JSON.
    #[arg(long, value_name = "FILE")]
    pub alert: PathBuf,
    /// A Kapacitor topic-handler file (YAML or JSON) whose options to use.
    #[arg(long, value_name = "FILE.yaml", conflicts_with = "tick")]
    pub handler: Option<PathBuf>,
    /// A TICKscript whose `.slack()` chain gives the options.
    #[arg(long, value_name = "FILE.tick")]
    pub tick: Option<PathBuf>,
    /// A handler option (repeatable); overrides the handler file's.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// The alert's earlier message, as a delivery prints it: with
    /// `on-recovery` `update` it is edited, with `thread` replied to
    /// (the options previous-channel-id and previous-ts).
    #[arg(long, value_name = "CHANNEL_ID:TS", value_parser = previous_message)]
    pub previous_message: Option<(String, String)>,
}

pub fn parse_pairs(pairs: &[String]) -> Result<Vec<(String, String)>, Failure> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(Failure::Input(anyhow!(
                "--option takes KEY=VALUE, got `{p}`"
            ))),
        })
        .collect()
}

/// `--previous-message`: a channel id and a message `ts`, e.g.
/// `C0123:1700000000.000001`.
fn previous_message(value: &str) -> Result<(String, String), String> {
    let well_formed = |channel: &str, ts: &str| {
        !channel.is_empty()
            && channel.chars().all(|c| c.is_ascii_alphanumeric())
            && ts.split_once('.').is_some_and(|(s, f)| {
                !s.is_empty()
                    && !f.is_empty()
                    && (s.to_owned() + f).chars().all(|c| c.is_ascii_digit())
            })
    };
    match value.split_once(':') {
        Some((channel, ts)) if well_formed(channel, ts) => Ok((channel.to_string(), ts.to_string())),
        _ => Err(format!(
            "expected CHANNEL_ID:TS as a delivery prints them, e.g. C0123:1700000000.000001, got `{value}`"
        )),
    }
}

/// Loads, instantiates and configures the handler for `kind`.
pub fn open(target: &Target, kind: &str, json: bool) -> Result<(Instance, ConfigSummary), Failure> {
    let host = Host::new(target.net_settings()?, target.limits()).map_err(Failure::Host)?;
    if let Some(dir) = &target.plugins {
        let (loaded, _, _) = target.from_directory(dir, &host, kind, json)?;
        return Ok((loaded.instance, loaded.summary));
    }
    let config_path = target
        .config
        .as_ref()
        .ok_or_else(|| anyhow!("--config or --plugins is required"))?;
    let text = read(config_path, "configuration")?;
    let runtime = target.open_component(host).map_err(Failure::Host)?;
    let mut plugin = runtime.instantiate_for(&text).map_err(Failure::Host)?;
    let summary = plugin
        .configure(&text)
        .map_err(Failure::Host)?
        .map_err(|e| Failure::Handler(e, json))?;
    if summary.kind != kind {
        return Err(Failure::Input(anyhow!(
            "this is a `{kind}` handler, but {} is a `{}` plugin",
            runtime.path().display(),
            summary.kind
        )));
    }
    Ok((plugin, summary))
}

/// The alert at `path`, in Kapacitor's `post`-handler JSON.
pub fn load_alert(path: &Path) -> Result<AlertEvent, Failure> {
    alert_json::decode(&read(path, "alert")?)
        .with_context(|| path.display().to_string())
        .map_err(Failure::Input)
}

/// Prints a delivery, as a line or as JSON.
pub fn print_delivery(d: &Delivery, json: bool) {
    if json {
        say!("{}", report::delivery_json(d));
    } else {
        say!("{}", report::delivery_text(d));
    }
}

/// An alert ready to hand to a plugin: the handler's kind, the event, the
/// options.
pub type AlertToSend = (String, AlertEvent, Vec<(String, String)>);

/// The alert, its handler's kind and options; `None` (after saying so)
/// when the handler's `match` does not take it.
pub fn prepare(what: &AlertArgs, json: bool) -> Result<Option<AlertToSend>, Failure> {
    let mut event = load_alert(&what.alert)?;
    let mut options = Vec::new();
    let mut kind = "slack".to_string();
    if let Some(path) = &what.handler {
        let handler = handler_file::parse(&read(path, "handler file")?)
            .with_context(|| path.display().to_string())?;
        kind = handler.kind;
        match (&event.topic, handler.topic) {
            (Some(alert), Some(subscribed)) if *alert != subscribed => {
                return Err(Failure::Input(anyhow!(
                    "the alert was published to topic `{alert}`, but handler `{}` subscribes to `{subscribed}`",
                    handler.id
                )));
            }
            (None, subscribed) => event.topic = subscribed,
            _ => {}
        }
        // Kapacitor hands an event to a topic handler only when its
        // `match` holds.
        if let Some(lambda) = &handler.matches {
            let holds = lambda.matches(&event);
            if holds != Ok(true) {
                let why = match holds {
                    Ok(_) => format!("match `{}` is false for this alert", lambda.text()),
                    Err(why) => format!("match `{}` cannot be evaluated: {why}", lambda.text()),
                };
                if json {
                    say!(
                        "{}",
                        serde_json::json!({"delivered": false, "suppressed": why})
                    );
                } else {
                    say!("suppressed: handler `{}`: {why}", handler.id);
                }
                return Ok(None);
            }
        }
        options = handler.options;
    }
    if let Some(path) = &what.tick {
        options = tick::slack_options(&read(path, "TICKscript")?)
            .with_context(|| path.display().to_string())?
            .ok_or_else(|| anyhow!("{} has no .slack() handler", path.display()))?;
    }
    options.extend(parse_pairs(&what.options)?);
    if let Some((channel_id, ts)) = &what.previous_message {
        options = store::with_previous(&options, channel_id, ts);
    }
    Ok(Some((kind, event, options)))
}
