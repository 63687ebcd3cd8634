//! Message templates: handlebars, compiled once, rendered per alert with
//! the alert as context and values escaped for where they land.
//!
//! In Slack's mrkdwn only `&`, `<` and `>` are control characters, so a
//! value inserted with `{{ }}` into mrkdwn text has exactly those three
//! escaped (`&amp;`, `&lt;`, `&gt;`): a tag or message holding `<!channel>`
//! never pings anyone. A `plain_text` object (a Block Kit header) shows text
//! as typed, so there nothing is escaped. `{{{ }}}` inserts a value raw.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use handlebars::{
    handlebars_helper, Context, Handlebars, Helper, HelperResult, Output, RenderContext,
    RenderErrorReason, Renderable,
};
use serde_json::{json, Map, Value};

use crate::event::{AlertEvent, FieldValue, Level};
use crate::timefmt;

/// A compiled template and its source. Two templates are equal when their
/// sources are; a clone shares the compiled form.
#[derive(Clone)]
pub struct Template {
    source: String,
    compiled: Arc<handlebars::Template>,
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Template {}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

thread_local! {
    /// Templates compiled on this thread, for the test that proves an
    /// alert compiles none.
    static COMPILATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many templates this thread has compiled.
pub fn compilations() -> usize {
    COMPILATIONS.with(std::cell::Cell::get)
}

/// The most option templates kept compiled; past it the cache starts over.
const CACHE_LIMIT: usize = 256;

impl Template {
    /// Compiles `source`. The error names the line and column inside the
    /// template and what is wrong there.
    pub fn compile(source: &str) -> Result<Template, String> {
        COMPILATIONS.with(|n| n.set(n.get() + 1));
        let compiled = handlebars::Template::compile(source).map_err(|e| {
            let reason = e.reason().to_string();
            match e.pos() {
                Some((line, column)) => {
                    format!("template error at line {line}, column {column}: {reason}")
                }
                None => format!("template error: {reason}"),
            }
        })?;
        Ok(Template {
            source: source.to_string(),
            compiled: Arc::new(compiled),
        })
    }

    /// Compiles `source` once per instance: handler options carry their
    /// templates with every alert, and a handler's options repeat, so each
    /// distinct source is compiled the first time it is seen.
    pub fn compile_cached(source: &str) -> Result<Template, String> {
        static CACHE: OnceLock<Mutex<HashMap<String, Template>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(t) = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(source)
        {
            return Ok(t.clone());
        }
        let template = Template::compile(source)?;
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(source.to_string(), template.clone());
        Ok(template)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template; an error (a helper that failed, e.g. `truncate`
    /// given a word for a length) is described in words.
    pub fn render(&self, context: &Context, escape: Escape) -> Result<String, String> {
        let registry = match escape {
            Escape::Mrkdwn => &registries().0,
            Escape::Plain => &registries().1,
        };
        self.compiled
            .renders(registry, context, &mut RenderContext::new(None))
            .map_err(|e| e.to_string())
    }
}

/// Where rendered text lands, which says how `{{ }}` values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Slack mrkdwn (and attachment fields): `&`, `<`, `>` escaped.
    Mrkdwn,
    /// A `plain_text` object: shown as typed.
    Plain,
}

/// Escapes Slack's three control characters, and nothing else.
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The two registries, mrkdwn and plain: the same helpers, different
/// escaping. Built once per instance.
fn registries() -> &'static (Handlebars<'static>, Handlebars<'static>) {
    static REGISTRIES: OnceLock<(Handlebars<'static>, Handlebars<'static>)> = OnceLock::new();
    REGISTRIES.get_or_init(|| {
        let build = |escape: fn(&str) -> String| {
            let mut h = Handlebars::new();
            h.register_escape_fn(escape);
            h.register_helper("emoji", Box::new(emoji));
            h.register_helper("upper", Box::new(upper));
            h.register_helper("lower", Box::new(lower));
            h.register_helper("truncate", Box::new(truncate));
            h
        };
        (build(escape_mrkdwn), build(handlebars::no_escape))
    })
}

/// The Slack emoji for a level: `{{emoji level}}`.
pub fn level_emoji(level: Level) -> &'static str {
    match level {
        Level::Ok => ":large_green_circle:",
        Level::Info => ":large_blue_circle:",
        Level::Warning => ":large_yellow_circle:",
        Level::Critical => ":red_circle:",
    }
}

/// `{{emoji level}}`: the level's emoji; an error for anything that is not
/// a level.
fn emoji(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let param = h
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("emoji", 0))?;
    let text = param.value().as_str().unwrap_or_default();
    let level: Level = text
        .parse()
        .map_err(|e: String| RenderErrorReason::Other(format!("emoji: {e}")))?;
    out.write(level_emoji(level))?;
    Ok(())
}

handlebars_helper!(upper: |s: str| s.to_uppercase());
handlebars_helper!(lower: |s: str| s.to_lowercase());
handlebars_helper!(truncate: |s: str, n: u64| cut_with_ellipsis(s, n as usize));

/// `text` cut to at most `max` characters, the last of them `…` when cut.
pub fn cut_with_ellipsis(text: &str, max: usize) -> String {
    if text.chars().nth(max).is_none() {
        return text.to_string();
    }
    let keep = max.saturating_sub(1);
    let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    let mut out = text[..end].to_string();
    if max > 0 {
        out.push('…');
    }
    out
}

/// The context templates see. `workspace` and `channel` are where the
/// message goes.
pub fn context(event: &AlertEvent, workspace: &str, channel: &str) -> Context {
    let tags: Map<String, Value> = event
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let fields: Map<String, Value> = event
        .fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                // JSON has no NaN or infinities: Go's spelling of them.
                FieldValue::Float(f) => serde_json::Number::from_f64(*f)
                    .map(Value::Number)
                    .unwrap_or_else(|| {
                        Value::String(
                            match (f.is_nan(), *f > 0.0) {
                                (true, _) => "NaN",
                                (false, true) => "+Inf",
                                (false, false) => "-Inf",
                            }
                            .to_string(),
                        )
                    }),
                FieldValue::Integer(i) => json!(i),
                FieldValue::String(s) => json!(s),
                FieldValue::Boolean(b) => json!(b),
            };
            (k.clone(), v)
        })
        .collect();
    let value = json!({
        "id": event.id,
        "message": event.message,
        "details": event.details,
        "level": event.level.as_str(),
        "previousLevel": event.previous_level.map(Level::as_str).unwrap_or_default(),
        "recoverable": event.recoverable,
        "name": event.name,
        "taskName": event.task_name,
        "group": event.group,
        "topic": event.topic.clone().unwrap_or_default(),
        "tags": tags,
        "fields": fields,
        "time": timefmt::rfc3339(event.time.0, event.time.1),
        "unixTime": event.time.0,
        "duration": timefmt::go_duration(event.duration),
        "workspace": workspace,
        "channel": channel,
    });
    // Building a context from a JSON value cannot fail.
    Context::wraps(value).unwrap_or_else(|_| Context::null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AlertEvent {
        let mut e = AlertEvent::with_message("CPU <!channel> & more", Level::Critical);
        e.id = "cpu:host=a".into();
        e.tags = vec![("host".into(), "a<b>".into())];
        e.fields = vec![
            ("usage_idle".into(), FieldValue::Float(3.5)),
            ("n".into(), FieldValue::Integer(7)),
        ];
        e.duration = 300_000_000_000;
        e.time = (1_764_181_316, 0);
        e.previous_level = Some(Level::Ok);
        e
    }

    fn render(src: &str, escape: Escape) -> Result<String, String> {
        Template::compile(src)
            .unwrap()
            .render(&context(&event(), "alerts", "#ops"), escape)
    }

    #[test]
    fn the_context_has_every_documented_name() {
        let out = render(
            "{{id}}|{{level}}|{{previousLevel}}|{{name}}|{{taskName}}|{{group}}|{{topic}}|{{tags.host}}|{{fields.usage_idle}}|{{fields.n}}|{{time}}|{{duration}}|{{workspace}}|{{channel}}",
            Escape::Plain,
        )
        .unwrap();
        assert_eq!(
            out,
            "cpu:host=a|CRITICAL|OK|||nil||a<b>|3.5|7|2025-11-26T18:21:56Z|5m0s|alerts|#ops"
        );
    }

    #[test]
    fn mrkdwn_escapes_only_the_three_control_characters() {
        assert_eq!(
            render("{{message}} \"q\" '{{tags.host}}'", Escape::Mrkdwn).unwrap(),
            "CPU &lt;!channel&gt; &amp; more \"q\" 'a&lt;b&gt;'"
        );
        assert_eq!(
            render("{{message}}", Escape::Plain).unwrap(),
            "CPU <!channel> & more"
        );
        assert_eq!(
            render("{{{message}}}", Escape::Mrkdwn).unwrap(),
            "CPU <!channel> & more"
        );
    }

    #[test]
    fn helpers_emoji_case_and_truncate() {
        assert_eq!(
            render(
                "{{emoji level}} {{lower level}} {{upper tags.host}}",
                Escape::Plain
            )
            .unwrap(),
            ":red_circle: critical A<B>"
        );
        assert_eq!(
            render("{{truncate message 5}}", Escape::Plain).unwrap(),
            "CPU …"
        );
        assert_eq!(
            render("{{truncate message 5}}", Escape::Mrkdwn).unwrap(),
            "CPU …"
        );
    }

    #[test]
    fn a_helper_error_is_a_render_error() {
        assert!(render("{{truncate message \"x\"}}", Escape::Plain).is_err());
        assert!(render("{{emoji message}}", Escape::Plain)
            .unwrap_err()
            .contains("unknown level"));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = Template::compile("ok\n{{#if x}}never closed").unwrap_err();
        assert!(e.starts_with("template error at line 2, column"), "{e}");
        let e = Template::compile("{{ level").unwrap_err();
        assert!(e.contains("line 1, column"), "{e}");
    }

    #[test]
    fn cached_compilation_gives_the_same_template() {
        let a = Template::compile_cached("{{level}}!").unwrap();
        let b = Template::compile_cached("{{level}}!").unwrap();
        assert_eq!(a, b);
        assert!(Template::compile_cached("{{#if}}").is_err());
    }

    #[test]
    fn cut_with_ellipsis_counts_characters() {
        assert_eq!(cut_with_ellipsis("ééééé", 5), "ééééé");
        assert_eq!(cut_with_ellipsis("éééééé", 5), "éééé…");
        assert_eq!(cut_with_ellipsis("abc", 0), "");
    }
}
