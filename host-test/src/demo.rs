//! `host-test demo`: the seed's examples against the local Slack stand-in,
//! then our extensions (templates, Block Kit, mentions, one message per
//! alert).
//! The configuration keeps its `https://slack.com/...` URL; the host, which
//! owns networking, routes slack.com to the stand-in.

use crate::say;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::mock_slack::MockSlack;
use crate::report;
use alert_handler_host::net::{ConnectTo, NetSettings};
use alert_handler_host::Runtime;
use kapacitor_formats::{alert_json, handler_file, tick};

/// The examples shipped with this checkout.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
}

/// Where a demo alert's options come from.
enum Source {
    Tick(&'static str),
    HandlerFile(&'static str),
}

const SCENARIOS: [(Source, &str); 4] = [
    (
        Source::Tick("slack-cpu-alert.tick"),
        "alerts/cpu-warning.json",
    ),
    (
        Source::HandlerFile("slack_cpu_handler.yaml"),
        "alerts/cpu-critical.json",
    ),
    (
        Source::Tick("slack-cpu-alert-workspace.tick"),
        "alerts/machine-on-fire.json",
    ),
    (
        Source::HandlerFile("slack_500_errors_daily.yaml"),
        "alerts/500-errors-24h.json",
    ),
];

/// Writes the page `preview` draws for the request the plugin would send,
/// as `DIR/NAME.html`, when a directory is given.
fn write_preview(
    html: Option<&Path>,
    name: &str,
    plugin: &mut alert_handler_host::Instance,
    event: &alert_handler_host::AlertEvent,
    options: &[(String, String)],
) -> Result<()> {
    let Some(dir) = html else {
        return Ok(());
    };
    let request = match plugin.preview_alert(event, options)? {
        Ok(request) => request,
        Err(e) => bail!("previewing {name}: {}", e.describe()),
    };
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{file}.html"));
    std::fs::write(&path, crate::preview::page(name, &request.body))
        .with_context(|| format!("writing {}", path.display()))?;
    say!("   preview: {}", path.display());
    Ok(())
}

pub fn run(examples: &Path, html: Option<&Path>) -> Result<()> {
    if let Some(dir) = html {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let read = |name: &str| {
        let path = examples.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let slack = MockSlack::start()?;
    let mut connect_to = ConnectTo::default();
    connect_to.add("https://slack.com", &slack.url())?;
    say!(
        "Slack stand-in listening on {}; the host routes https://slack.com there.",
        slack.url()
    );

    let runtime = crate::load_default(NetSettings::with_connect_to(connect_to))?;
    say!("Loaded {}", runtime.path().display());
    let mut plugin = runtime.instantiate()?;
    let summary = match plugin.configure(&read("kapacitor.conf")?)? {
        Ok(summary) => summary,
        Err(e) => bail!("examples/kapacitor.conf: {}", e.describe()),
    };
    say!("Configured from examples/kapacitor.conf:");
    say!(
        "{}\n",
        serde_json::to_string_pretty(&report::summary_json(&summary))?
    );

    let mut delivered = 0;
    for (source, alert_file) in SCENARIOS {
        let (label, options) = match source {
            Source::Tick(file) => {
                let options = tick::slack_options(&read(file)?)?.unwrap_or_default();
                (format!("{file} (.slack() in a TICKscript)"), options)
            }
            Source::HandlerFile(file) => {
                let handler = handler_file::parse(&read(file)?)?;
                (
                    format!("{file} (topic handler `{}`)", handler.id),
                    handler.options,
                )
            }
        };
        let event =
            alert_json::decode(&read(alert_file)?).with_context(|| alert_file.to_string())?;
        say!("== {label}, alert {alert_file}");
        let shown: Vec<String> = options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        say!("   options: [{}]", shown.join(", "));
        let seen_before = slack.requests().len();
        write_preview(
            html,
            &format!(
                "{}-{}",
                delivered + 1,
                alert_file
                    .trim_start_matches("alerts/")
                    .trim_end_matches(".json")
            ),
            &mut plugin,
            &event,
            &options,
        )?;
        match plugin.handle_alert(&event, &options)? {
            Ok(d) => {
                delivered += 1;
                say!("   {}", report::delivery_text(&d));
            }
            Err(e) => say!("   {}", e.describe()),
        }
        show_requests(&slack, seen_before)?;
    }
    let received = slack.requests().len();
    say!(
        "{delivered} of {} alerts delivered; the Slack stand-in received {received} requests.\n",
        SCENARIOS.len()
    );
    if delivered != SCENARIOS.len() || received != SCENARIOS.len() {
        bail!("the demo did not deliver every alert exactly once");
    }
    rendered(examples, &runtime, &slack, html)?;
    pipeline(examples, &mut plugin, &slack)
}

/// The documentation's pipeline: `500_errors.tick` publishes 500 errors to
/// `500-errors`, `500_errors_24h.yaml` aggregates a day of them into one
/// event on `500-errors-24h`, `slack_500_errors_daily.yaml` posts it. The
/// demo runs the same cores `serve --handlers` runs, with the day passing
/// at once (`serve --time-scale` runs it in real time, faster).
fn pipeline(
    examples: &Path,
    plugin: &mut alert_handler_host::Instance,
    slack: &MockSlack,
) -> Result<()> {
    use kapacitor_formats::aggregate::{self, Collected, Window};
    use kapacitor_formats::topics::{Handlers, Route};
    say!(
        "== the 500-errors pipeline: 500_errors_24h.yaml (aggregate), slack_500_errors_daily.yaml"
    );
    let handlers = Handlers::load(examples, 1.0)?;
    let mut windows: Vec<(String, Window)> = Vec::new();
    for n in 1..=42 {
        let alert = format!(
            r#"{{"id":"errors:500=true","message":"500 errors: {n}","time":"2026-11-26T10:{:02}:00Z","level":"INFO","data":{{"series":[{{"name":"errors","tags":{{"500":"true"}},"columns":["time","count"],"values":[["2026-11-26T10:{:02}:00Z",{n}]]}}]}}}}"#,
            n % 60,
            n % 60
        );
        let mut event = alert_json::decode(&alert)?;
        event.topic = Some("500-errors".into());
        for route in handlers.route("500-errors", &event).0 {
            if let Route::Collect { handler } = route {
                let at = windows.iter().position(|(h, _)| *h == handler);
                let at = at.unwrap_or_else(|| {
                    windows.push((handler, Window::open(0)));
                    windows.len() - 1
                });
                windows[at]
                    .1
                    .add(Collected::from_alert(&alert).map_err(anyhow::Error::msg)?);
            }
        }
    }
    say!("   42 alerts published to `500-errors`; nothing is sent until the interval ends.");
    let seen_before = slack.requests().len();
    for (handler, window) in &windows {
        let Some(spec) = handlers.aggregate(handler) else {
            continue;
        };
        let Some(alert) = aggregate::emit(handler, spec, window) else {
            continue;
        };
        say!(
            "   {} later, `{handler}` publishes to `{}`:",
            spec.interval_text,
            spec.topic
        );
        let mut event = alert_json::decode(&alert)?;
        event.topic = Some(spec.topic.clone());
        for route in handlers.route(&spec.topic, &event).0 {
            if let Route::Deliver {
                handler, options, ..
            } = route
            {
                match plugin.handle_alert(&event, &options)? {
                    Ok(d) => say!("   handler `{handler}`: {}", report::delivery_text(&d)),
                    Err(e) => say!("   handler `{handler}`: {}", e.describe()),
                }
            }
        }
    }
    show_requests(slack, seen_before)?;
    let sent = slack.requests().len() - seen_before;
    if sent != 1 {
        bail!("the pipeline sent {sent} messages, not one");
    }
    Ok(())
}

/// The alert's life the rendered examples follow: firing, still firing,
/// recovered.
const LIFE: [&str; 3] = [
    "alerts/cpu-critical.json",
    "alerts/cpu-still-critical.json",
    "alerts/cpu-recovered.json",
];

/// Our extensions: `slack-rendered.conf` (Block Kit, templates, a mention,
/// `on-recovery = thread`), then `slack_cpu_update.yaml` (an attachment
/// edited in place). Like a host, the demo passes each delivery's message
/// back with the alert's next event.
fn rendered(
    examples: &Path,
    runtime: &Runtime,
    slack: &MockSlack,
    html: Option<&Path>,
) -> Result<()> {
    let read = |name: &str| {
        let path = examples.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let mut plugin = runtime.instantiate()?;
    if let Err(e) = plugin.configure(&read("slack-rendered.conf")?)? {
        bail!("examples/slack-rendered.conf: {}", e.describe());
    }
    let update = handler_file::parse(&read("slack_cpu_update.yaml")?)?;
    let handlers = [
        (
            "slack-rendered.conf: blocks, templates, <!here> on CRITICAL, on-recovery = thread",
            Vec::new(),
        ),
        (
            "slack_cpu_update.yaml: attachment layout, on-recovery = update",
            update.options,
        ),
    ];
    let mut delivered = 0;
    for (label, options) in handlers {
        say!("== {label}");
        let mut previous: Option<(String, String)> = None;
        for alert_file in LIFE {
            let event =
                alert_json::decode(&read(alert_file)?).with_context(|| alert_file.to_string())?;
            let mut with_previous = options.clone();
            if let Some((channel_id, ts)) = &previous {
                with_previous.push(("previous-channel-id".into(), channel_id.clone()));
                with_previous.push(("previous-ts".into(), ts.clone()));
            }
            say!("-- alert {alert_file}");
            let seen_before = slack.requests().len();
            let name = format!(
                "{}-{}",
                label.split(':').next().unwrap_or(label),
                alert_file
                    .trim_start_matches("alerts/")
                    .trim_end_matches(".json")
            );
            write_preview(html, &name, &mut plugin, &event, &with_previous)?;
            match plugin.handle_alert(&event, &with_previous)? {
                Ok(d) => {
                    delivered += 1;
                    say!("   {}", report::delivery_text(&d));
                    previous = d.channel_id.zip(d.ts);
                }
                Err(e) => say!("   {}", e.describe()),
            }
            show_requests(slack, seen_before)?;
        }
    }
    say!(
        "{delivered} of {} rendered alerts delivered.",
        2 * LIFE.len()
    );
    if delivered != 2 * LIFE.len() {
        bail!("the demo did not deliver every rendered alert");
    }
    Ok(())
}

/// Prints what the stand-in received since `seen_before`, the token
/// redacted.
fn show_requests(slack: &MockSlack, seen_before: usize) -> Result<()> {
    for r in slack.requests().into_iter().skip(seen_before) {
        let auth = match r.header("authorization") {
            Some(_) => "Bearer [redacted]",
            None => "(none)",
        };
        say!(
            "   Slack received: {} https://{}{}  Authorization: {auth}",
            r.method,
            r.host,
            r.path
        );
        let body = serde_json::to_string_pretty(&r.json())?;
        say!("   {}", body.replace('\n', "\n   "));
    }
    say!();
    Ok(())
}
