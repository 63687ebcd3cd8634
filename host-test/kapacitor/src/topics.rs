//! Kapacitor's topic handlers, as its alert service runs them: a directory of
//! handler files (`--handlers DIR`), each subscribed to one topic. An event
//! published to a topic goes to every handler of that topic whose `match`
//! holds, in the order the files sort by name (Kapacitor's load directory
//! reads them in that order). Kinds:
//!
//! - `slack`: this component, with the file's options;
//! - `aggregate`: collects events and publishes one to its `topic` every
//!   `interval` (see [`crate::aggregate`]);
//! - `publish`: the same event to other `topics`.
//!
//! [`Handlers::from_files`] makes the handlers from file names and texts;
//! [`Handlers::load`] reads a directory and hands its files to it. An
//! unknown kind, a missing option or a `match` that does not parse stops
//! the load, naming the file; so does a file that cannot be read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::aggregate::{self, AggregateSpec};
use crate::duration;
use crate::handler_file;
use crate::lambda::Lambda;
use alert_handler_host::AlertEvent;

/// One handler file.
#[derive(Debug, Clone)]
pub struct Handler {
    pub id: String,
    /// The file's name as [`Handlers::from_files`] was given it
    /// ([`Handlers::load`] gives its path).
    pub file: PathBuf,
    pub topic: String,
    pub matches: Option<Lambda>,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// Sent by the plugin of this kind (`slack`, or any other a plugin
    /// directory offers: Kapacitor routes a handler file by its `kind`).
    Deliver {
        kind: String,
        options: Vec<(String, String)>,
    },
    Aggregate(AggregateSpec),
    Publish {
        topics: Vec<String>,
    },
}

/// What an event published to a topic leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Send it through the plugin of `kind` with the handler's options.
    Deliver {
        handler: String,
        kind: String,
        options: Vec<(String, String)>,
    },
    /// Collect it in an `aggregate` handler's window.
    Collect { handler: String },
}

/// The handlers of a directory.
#[derive(Debug, Clone, Default)]
pub struct Handlers {
    list: Vec<Handler>,
}

/// How deep `publish` handlers may chain an event.
const MAX_HOPS: usize = 8;

impl Handlers {
    /// Reads every `*.yaml`, `*.yml` and `*.json` in `dir` and makes them
    /// handlers with [`Handlers::from_files`]. The one function of this
    /// crate that touches the disk.
    pub fn load(dir: &Path, time_scale: f64) -> Result<Handlers> {
        // Named before the directory is read, as it always was.
        check_time_scale(time_scale)?;
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading the handler directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            })
            .collect();
        // In name order, so that of two unreadable files the first is named.
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .context("reading it")
                .with_context(|| format!("handler file {}", path.display()))?;
            files.push((path, text));
        }
        Handlers::from_files(files, time_scale)
    }

    /// The handlers of handler files given as `(file name, text)`, taken in
    /// the order the names sort; intervals are divided by `time_scale`
    /// (`3600` turns 24 h into 24 s). Pure: a name orders its file and
    /// names it in errors, and is kept as [`Handler::file`].
    pub fn from_files<P, T>(
        files: impl IntoIterator<Item = (P, T)>,
        time_scale: f64,
    ) -> Result<Handlers>
    where
        P: Into<PathBuf>,
        T: AsRef<str>,
    {
        check_time_scale(time_scale)?;
        let mut files: Vec<(PathBuf, T)> = files
            .into_iter()
            .map(|(name, text)| (name.into(), text))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut list = Vec::new();
        let mut ids = BTreeSet::new();
        for (file, text) in files {
            let handler = parse_one(&file, text.as_ref(), time_scale)
                .with_context(|| format!("handler file {}", file.display()))?;
            if !ids.insert((handler.topic.clone(), handler.id.clone())) {
                bail!(
                    "handler file {}: topic `{}` has two handlers with id `{}`",
                    file.display(),
                    handler.topic,
                    handler.id
                );
            }
            list.push(handler);
        }
        Ok(Handlers { list })
    }

    /// Refuses a handler file whose `kind` no plugin offers, naming the
    /// file and the kinds on offer (`offered`, and the host's own
    /// `aggregate` and `publish`).
    pub fn require_kinds(&self, offered: &[&str]) -> Result<()> {
        for h in &self.list {
            if let Kind::Deliver { kind, .. } = &h.kind {
                if !offered.contains(&kind.as_str()) {
                    let mut on_offer: Vec<&str> = offered.to_vec();
                    on_offer.extend(["aggregate", "publish"]);
                    bail!(
                        "handler file {}: unknown kind `{kind}`: no plugin handles it; the kinds on offer are {}",
                        h.file.display(),
                        on_offer.join(", ")
                    );
                }
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Handler> {
        self.list.iter()
    }

    /// The `aggregate` handler `id`, if there is one.
    pub fn aggregate(&self, id: &str) -> Option<&AggregateSpec> {
        self.list.iter().find_map(|h| match &h.kind {
            Kind::Aggregate(spec) if h.id == id => Some(spec),
            _ => None,
        })
    }

    /// The `aggregate` handlers.
    pub fn aggregates(&self) -> impl Iterator<Item = (&str, &AggregateSpec)> {
        self.list.iter().filter_map(|h| match &h.kind {
            Kind::Aggregate(spec) => Some((h.id.as_str(), spec)),
            _ => None,
        })
    }

    /// Where `event`, published to `topic`, goes: for each handler of the
    /// topic whose `match` holds, in order, a delivery or a collection;
    /// `publish` handlers pass it on to their topics (each topic once). A
    /// `match` that cannot be evaluated does not hold and is reported.
    pub fn route(&self, topic: &str, event: &AlertEvent) -> (Vec<Route>, Vec<String>) {
        let mut routes = Vec::new();
        let mut notes = Vec::new();
        let mut visited = BTreeSet::new();
        self.route_into(topic, event, 0, &mut visited, &mut routes, &mut notes);
        (routes, notes)
    }

    fn route_into(
        &self,
        topic: &str,
        event: &AlertEvent,
        hops: usize,
        visited: &mut BTreeSet<String>,
        routes: &mut Vec<Route>,
        notes: &mut Vec<String>,
    ) {
        if !visited.insert(topic.to_string()) {
            return;
        }
        if hops > MAX_HOPS {
            notes.push(format!(
                "topic `{topic}`: more than {MAX_HOPS} publish hops; not passed on"
            ));
            return;
        }
        for h in self.list.iter().filter(|h| h.topic == topic) {
            if let Some(lambda) = &h.matches {
                match lambda.matches(event) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(why) => {
                        notes.push(format!(
                            "handler `{}`: match `{}` cannot be evaluated: {why}",
                            h.id,
                            lambda.text()
                        ));
                        continue;
                    }
                }
            }
            match &h.kind {
                Kind::Deliver { kind, options } => routes.push(Route::Deliver {
                    handler: h.id.clone(),
                    kind: kind.clone(),
                    options: options.clone(),
                }),
                Kind::Aggregate(_) => routes.push(Route::Collect {
                    handler: h.id.clone(),
                }),
                Kind::Publish { topics } => {
                    for next in topics {
                        self.route_into(next, event, hops + 1, visited, routes, notes);
                    }
                }
            }
        }
    }
}

fn check_time_scale(time_scale: f64) -> Result<()> {
    if !(time_scale.is_finite() && time_scale > 0.0) {
        bail!("--time-scale must be a positive number");
    }
    Ok(())
}

/// One handler file's text as a handler.
fn parse_one(file: &Path, text: &str, time_scale: f64) -> Result<Handler> {
    let parsed = handler_file::parse(text)?;
    let topic = parsed
        .topic
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("a topic handler needs a `topic`"))?;
    let option = |name: &str| {
        parsed
            .options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let only = |allowed: &[&str]| -> Result<()> {
        if let Some((key, _)) = parsed
            .options
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            bail!(
                "kind `{}` takes the options {}; `{key}` is not one of them",
                parsed.kind,
                allowed.join(", ")
            );
        }
        Ok(())
    };
    let kind = match parsed.kind.as_str() {
        "slack" => Kind::Deliver {
            kind: "slack".into(),
            options: parsed.options.clone(),
        },
        "aggregate" => {
            only(&["interval", "topic", "message"])?;
            let interval_text =
                option("interval").ok_or_else(|| anyhow!("an aggregate needs an `interval`"))?;
            let nanos = duration::parse_go(&interval_text).ok_or_else(|| {
                anyhow!("`interval` \"{interval_text}\" is not a duration like 24h or 10m")
            })?;
            if nanos == 0 {
                bail!("`interval` must be longer than zero");
            }
            let scaled = (nanos as f64 / time_scale).max(1e6);
            let topic = option("topic")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| anyhow!("an aggregate needs a `topic` to publish to"))?;
            let message =
                option("message").unwrap_or_else(|| aggregate::DEFAULT_MESSAGE.to_string());
            aggregate::check_template(&message).map_err(|e| anyhow!("`message`: {e}"))?;
            Kind::Aggregate(AggregateSpec {
                interval_text,
                interval: Duration::from_nanos(scaled as u64),
                topic,
                message,
            })
        }
        "publish" => {
            only(&["topics"])?;
            let raw = option("topics").ok_or_else(|| anyhow!("a publish needs `topics`"))?;
            let topics: Vec<String> = serde_json::from_str(&raw)
                .unwrap_or_else(|_| vec![raw.clone()])
                .into_iter()
                .filter(|t: &String| !t.is_empty())
                .collect();
            if topics.is_empty() {
                bail!("a publish needs at least one topic in `topics`");
            }
            Kind::Publish { topics }
        }
        "" => bail!("`kind` is empty"),
        // Any other kind is a plugin's: the host says whether one offers
        // it (`Handlers::require_kinds`).
        other => Kind::Deliver {
            kind: other.to_string(),
            options: parsed.options.clone(),
        },
    };
    Ok(Handler {
        id: parsed.id,
        file: file.to_path_buf(),
        topic,
        matches: parsed.matches,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
    }

    fn event(level: alert_handler_host::Level) -> AlertEvent {
        crate::alert_json::decode(&format!(
            r#"{{"id":"e","message":"m","time":"2026-11-26T10:00:00Z","level":"{}"}}"#,
            level.as_str()
        ))
        .unwrap()
    }

    /// The handlers an event reaches, in order.
    fn reached(routes: &[Route]) -> Vec<&str> {
        routes
            .iter()
            .map(|r| match r {
                Route::Deliver { handler, .. } | Route::Collect { handler } => handler.as_str(),
            })
            .collect()
    }

    #[test]
    fn the_documentations_pipeline_loads_from_the_examples() {
        let handlers = Handlers::load(&examples(), 3600.0).unwrap();
        let spec = handlers.aggregate("500-errors-24h").unwrap();
        assert_eq!(spec.interval, Duration::from_secs(24));
        assert_eq!(spec.topic, "500-errors-24h");
        assert_eq!(spec.message, "{{ .Count }} 500 errors last 24 hours.");
        let e = event(alert_handler_host::Level::Info);
        let (routes, _) = handlers.route("500-errors", &e);
        assert_eq!(
            routes,
            [Route::Collect {
                handler: "500-errors-24h".into()
            }]
        );
        let (routes, _) = handlers.route("500-errors-24h", &e);
        assert_eq!(
            routes,
            [Route::Deliver {
                handler: "slack-500-errors-daily".into(),
                kind: "slack".into(),
                options: vec![("workspace".into(), "error-reports".into())],
            }]
        );
        assert!(handlers.route("nobody-listens", &e).0.is_empty());
    }

    #[test]
    fn match_and_publish_decide_where_an_event_goes_in_file_order() {
        // Given out of order: the names decide.
        let handlers = Handlers::from_files(
            [
                (
                    "d_tagged.yaml",
                    "id: tagged\ntopic: u\nkind: slack\nmatch: '\"host\" == ''a'''\n",
                ),
                (
                    "b_fanout.yaml",
                    "id: fan\ntopic: t\nkind: publish\noptions:\n  topics: [u, t]\n",
                ),
                (
                    "a_critical.yaml",
                    "id: crit\ntopic: t\nkind: slack\nmatch: level() == CRITICAL\noptions:\n  channel: '#crit'\n",
                ),
                (
                    "c_all.yaml",
                    "id: all\ntopic: u\nkind: slack\noptions:\n  channel: '#all'\n",
                ),
            ],
            1.0,
        )
        .unwrap();
        let (routes, notes) = handlers.route("t", &event(alert_handler_host::Level::Critical));
        assert_eq!(reached(&routes), ["crit", "all"]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("no tag \"host\""), "{notes:?}");
        let (routes, _) = handlers.route("t", &event(alert_handler_host::Level::Warning));
        assert_eq!(reached(&routes), ["all"]);
    }

    #[test]
    fn a_kind_no_plugin_offers_is_refused_naming_the_file_and_the_kinds() {
        let handlers = Handlers::from_files(
            [
                ("ops.yaml", "id: ops\ntopic: t\nkind: slack\n"),
                ("mail.yaml", "id: mail\ntopic: t\nkind: email\n"),
            ],
            1.0,
        )
        .unwrap();
        let why = handlers
            .require_kinds(&["slack", "webhook"])
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("mail.yaml") && why.contains("unknown kind `email`"),
            "{why}"
        );
        assert!(why.contains("slack, webhook, aggregate, publish"), "{why}");
        handlers.require_kinds(&["slack", "email"]).unwrap();
    }

    #[test]
    fn a_bad_file_stops_the_load_naming_it() {
        for (text, says) in [
            ("id: x\nkind: slack\n", "needs a `topic`"),
            ("id: x\ntopic: t\nkind: aggregate\noptions:\n  topic: u\n", "needs an `interval`"),
            (
                "id: x\ntopic: t\nkind: aggregate\noptions:\n  interval: 1 day\n  topic: u\n",
                "not a duration",
            ),
            (
                "id: x\ntopic: t\nkind: aggregate\noptions:\n  interval: 0s\n  topic: u\n",
                "longer than zero",
            ),
            (
                "id: x\ntopic: t\nkind: aggregate\noptions:\n  interval: 1h\n  topic: u\n  message: '{{ .Sum }}'\n",
                "`.Sum`",
            ),
            ("id: x\ntopic: t\nkind: publish\n", "needs `topics`"),
            ("id: x\ntopic: t\nkind: slack\nmatch: level() = OK\n", "`match` column 9"),
            ("id: [unclosed\n", "line 1 column 5"),
        ] {
            let e = format!(
                "{:#}",
                Handlers::from_files([("h.yaml", text)], 1.0).unwrap_err()
            );
            assert!(e.contains("h.yaml") && e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn two_handlers_of_a_topic_cannot_share_an_id() {
        let e = Handlers::from_files(
            [
                ("a.yaml", "id: x\ntopic: t\nkind: slack\n"),
                ("b.yaml", "id: x\ntopic: t\nkind: slack\n"),
            ],
            1.0,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("b.yaml") && e.contains("two handlers with id `x`"),
            "{e}"
        );
    }

    #[test]
    fn an_aggregate_interval_is_divided_by_the_time_scale_and_has_a_default_message() {
        let handlers = Handlers::from_files(
            [(
                "agg.yaml",
                "id: agg\ntopic: t\nkind: aggregate\noptions:\n  interval: 1h30m\n  topic: u\n",
            )],
            60.0,
        )
        .unwrap();
        let spec = handlers.aggregate("agg").unwrap();
        assert_eq!(spec.interval, Duration::from_secs(90));
        assert_eq!(spec.interval_text, "1h30m");
        assert_eq!(spec.message, aggregate::DEFAULT_MESSAGE);
    }

    #[test]
    fn a_time_scale_must_be_a_positive_number() {
        for scale in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = Handlers::from_files([("h.yaml", "id: x\ntopic: t\nkind: slack\n")], scale)
                .unwrap_err();
            assert!(e.to_string().contains("--time-scale"), "{scale}: {e}");
        }
    }

    #[test]
    fn load_reads_handler_files_only_and_names_one_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yml"), "id: a\ntopic: t\nkind: slack\n").unwrap();
        std::fs::write(dir.path().join("notes.md"), "not: [a handler").unwrap();
        let handlers = Handlers::load(dir.path(), 1.0).unwrap();
        let ids: Vec<&str> = handlers.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        assert_eq!(
            handlers.iter().next().unwrap().file,
            dir.path().join("a.yml")
        );
        // A directory named like a handler file cannot be read as one.
        std::fs::create_dir(dir.path().join("b.yaml")).unwrap();
        let e = format!("{:#}", Handlers::load(dir.path(), 1.0).unwrap_err());
        assert!(e.contains("b.yaml") && e.contains("reading it"), "{e}");
    }
}
