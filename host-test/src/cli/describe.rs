//! `describe`: what a component says it is, before any configuration.

use std::path::PathBuf;

use alert_handler_host::{Host, Limits, NetSettings, Runtime};
use slack_alertd::cli::Failure;
use slack_alertd::say;

/// `describe`: what a component says it is, before any configuration.
pub fn run(component: Option<PathBuf>, json: bool) -> Result<(), Failure> {
    let host = Host::new(NetSettings::default(), Limits::default()).map_err(Failure::Host)?;
    let runtime = match &component {
        Some(path) => Runtime::open(host, path, None),
        None => Runtime::open_bytes(
            host,
            std::path::Path::new(slack_alertd::BUILT_IN),
            slack_alertd::COMPONENT,
            None,
        ),
    }
    .map_err(Failure::Host)?;
    let d = runtime
        .instantiate()
        .and_then(|mut p| p.describe())
        .map_err(Failure::Host)?;
    // What it exports beside `handler` (world `alert-handler` or
    // `chat-alert-handler`), from its type.
    let exports: Vec<&str> = [
        ("handler", true),
        ("interactions", runtime.has_interactions()),
        ("storms", runtime.has_storms()),
    ]
    .into_iter()
    .filter_map(|(name, has)| has.then_some(name))
    .collect();
    let list = |settings: &[alert_handler_host::Setting]| {
        settings
            .iter()
            .map(|s| (s.name.clone(), s.doc.clone()))
            .collect::<Vec<_>>()
    };
    if json {
        let object = |settings: &[alert_handler_host::Setting]| {
            settings
                .iter()
                .map(
                    |s| serde_json::json!({"name": s.name, "doc": s.doc, "host-only": s.host_only}),
                )
                .collect::<Vec<_>>()
        };
        say!(
            "{}",
            serde_json::json!({
                "kind": d.kind,
                "version": d.version,
                "exports": exports,
                "config-keys": object(&d.config_keys),
                "options": object(&d.options),
            })
        );
        return Ok(());
    }
    say!("kind {} version {}", d.kind, d.version);
    say!("exports {}", exports.join(", "));
    for (title, settings) in [
        ("configuration keys", &d.config_keys),
        ("options", &d.options),
    ] {
        say!("{title}:");
        for (name, doc) in list(settings) {
            say!("  {name:<22} {doc}");
        }
    }
    Ok(())
}
