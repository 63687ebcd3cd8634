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

/// The most bytes of text one template may have: each template given as a
/// handler option (`title`, `title-link`, `text`, `pretext`, `footer`,
/// `color`, each `fields` item, and the `fields` option as a whole) and each
/// of a `[[slack]]` section's. Longer text is refused before it is compiled:
/// a compiled template takes up to about 100 times its text in memory, and
/// Slack shows at most 3,000 characters of a section anyway.
pub const MAX_TEMPLATE_BYTES: usize = 8 * 1024;

/// The deepest one template may nest blocks (`{{#if}}`, `{{#each}}`, any
/// `{{#…}}`) and brackets inside `{{ }}` (subexpressions `( )`, literals
/// `[ ]` and `{ }`), counted together. Deeper is refused before it is
/// compiled: the template parser recurses once a level, and in the
/// component nothing guards its stack.
pub const MAX_TEMPLATE_NESTING: usize = 16;

/// The most option templates the instance keeps compiled.
pub const MAX_CACHED_TEMPLATES: usize = 256;

/// The most template text, in bytes, the option templates kept compiled may
/// have together. A compiled template can take about 100 times its text
/// (measured on a 64-bit host; less in the 32-bit component), so this keeps
/// the cache under some 25 MiB at worst, well inside an instance's 64 MiB,
/// while still holding hundreds of ordinary templates.
pub const MAX_CACHED_TEMPLATE_BYTES: usize = 256 * 1024;

/// A compiled template and its source. Two templates are equal when their
/// sources are; a clone shares the compiled form.
#[derive(Clone)]
pub struct Template {
    source: Arc<str>,
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

impl Template {
    /// Compiles `source`. Text over [`MAX_TEMPLATE_BYTES`] or nesting over
    /// [`MAX_TEMPLATE_NESTING`] is refused before compiling; any other error
    /// names the line and column inside the template and what is wrong there.
    pub fn compile(source: &str) -> Result<Template, String> {
        check_bounds(source)?;
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
            source: source.into(),
            compiled: Arc::new(compiled),
        })
    }

    /// Compiles `source` once per instance: handler options carry their
    /// templates with every alert, and a handler's options repeat, so each
    /// distinct source is compiled the first time it is seen and kept while
    /// the cache's bounds allow.
    pub fn compile_cached(source: &str) -> Result<Template, String> {
        static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| {
            Mutex::new(Cache::new(MAX_CACHED_TEMPLATES, MAX_CACHED_TEMPLATE_BYTES))
        });
        if let Some(t) = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(source)
        {
            return Ok(t);
        }
        let template = Template::compile(source)?;
        cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(template.clone());
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

/// Compiled templates by source, bounded by count and by the bytes of
/// their sources; past either bound the least recently used go first, so
/// a stream of new templates cannot push out the ones every alert uses.
struct Cache {
    entries: HashMap<Arc<str>, Cached>,
    bytes: usize,
    clock: u64,
    max_entries: usize,
    max_bytes: usize,
}

struct Cached {
    template: Template,
    used: u64,
}

impl Cache {
    fn new(max_entries: usize, max_bytes: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            bytes: 0,
            clock: 0,
            max_entries,
            max_bytes,
        }
    }

    fn get(&mut self, source: &str) -> Option<Template> {
        self.clock += 1;
        let entry = self.entries.get_mut(source)?;
        entry.used = self.clock;
        Some(entry.template.clone())
    }

    fn insert(&mut self, template: Template) {
        let size = template.source.len();
        if size > self.max_bytes || self.entries.contains_key(&template.source) {
            return;
        }
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_entries || self.bytes + size > self.max_bytes)
        {
            self.evict_least_recently_used();
        }
        self.clock += 1;
        self.bytes += size;
        let used = self.clock;
        self.entries
            .insert(template.source.clone(), Cached { template, used });
    }

    fn evict_least_recently_used(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, c)| c.used)
            .map(|(source, _)| source.clone());
        if let Some(source) = oldest {
            self.entries.remove(&source);
            self.bytes -= source.len();
        }
    }
}

/// Refuses a template over [`MAX_TEMPLATE_BYTES`] or
/// [`MAX_TEMPLATE_NESTING`], in words that name the limit.
fn check_bounds(source: &str) -> Result<(), String> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "the template is {} bytes; the most a template may have is {}",
            grouped(source.len()),
            grouped(MAX_TEMPLATE_BYTES)
        ));
    }
    if nests_deeper_than(source.as_bytes(), MAX_TEMPLATE_NESTING) {
        return Err(format!(
            "the template nests blocks (`{{{{#…}}}}`) and brackets more than {MAX_TEMPLATE_NESTING} deep; the most a template may nest is {MAX_TEMPLATE_NESTING}"
        ));
    }
    Ok(())
}

/// `n` with a comma between thousands: `8,192`.
pub(crate) fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whether the template parser would nest deeper than `limit` on `src`:
/// blocks (`{{#…}}` … `{{/…}}`) and, inside `{{ }}`, brackets.
///
/// One pass, no recursion, so the check itself cannot be made deep. It
/// reads the template as the parser does where that is simple: text with
/// its `\{{` escapes, comments, strings, `[…]` path segments. After
/// anything else that could hide a closing `{{/…}}` or bracket from a
/// simple reading (a raw block `{{{{`, a partial `{{>`, an object literal,
/// a `[…]` holding quotes or brackets) it stops reading closes and counts
/// every opening from there on, which can only overcount.
fn nests_deeper_than(src: &[u8], limit: usize) -> bool {
    let at = |i: usize, s: &[u8]| src.get(i..).is_some_and(|rest| rest.starts_with(s));
    let skip_blank = |mut i: usize| {
        while src
            .get(i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'~'))
        {
            i += 1;
        }
        i
    };
    let find = |from: usize, s: &[u8]| {
        src.get(from..)
            .and_then(|rest| rest.windows(s.len()).position(|w| w == s))
            .map(|p| from + p)
    };
    // Where the next `--}}` is, remembered so that many unclosed `{{!--`
    // do not each search to the end.
    let mut long_comment_end: Option<Option<usize>> = None;
    let mut blocks = 0;
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'\\' => {
                let run = src[i..].iter().take_while(|&&c| c == b'\\').count();
                i += run;
                // `\{{` (and `\{{{{`) is literal text; `\\{{` is a
                // backslash and then a real `{{`.
                if run == 1 && at(i, b"{{") {
                    i += if at(i + 2, b"{{") { 4 } else { 2 };
                }
            }
            b'{' if at(i, b"{{{{") => return openings_exceed(src, i, blocks, limit),
            b'{' if at(i, b"{{!") => {
                let long = at(i, b"{{!--").then(|| {
                    if long_comment_end.is_none_or(|end| end.is_some_and(|e| e < i + 5)) {
                        long_comment_end = Some(find(i + 5, b"--}}"));
                    }
                    long_comment_end.flatten().map(|e| e + 4)
                });
                i = match long.flatten() {
                    Some(end) => end,
                    None => find(i + 3, b"}}").map_or(src.len(), |e| e + 2),
                };
            }
            b'{' if at(i, b"{{") => {
                let start = i;
                let mut j = skip_blank(i + 2);
                match src.get(j) {
                    Some(b'#') => {
                        j = skip_blank(j + 1);
                        if src.get(j) == Some(&b'>') {
                            return openings_exceed(src, start, blocks, limit);
                        }
                        blocks += 1;
                        if blocks > limit {
                            return true;
                        }
                    }
                    Some(b'/') => blocks = usize::saturating_sub(blocks, 1),
                    Some(b'>') => return openings_exceed(src, start, blocks, limit),
                    // `{{{ }}}`: the third brace is not a literal.
                    Some(b'{') => j += 1,
                    _ => {}
                }
                // The expression, up to its `}}`.
                let mut brackets = 0;
                loop {
                    match src.get(j) {
                        None => return false,
                        Some(&quote @ (b'"' | b'\'')) => {
                            j += 1;
                            while let Some(&c) = src.get(j) {
                                j += if c == b'\\' { 2 } else { 1 };
                                if c == quote {
                                    break;
                                }
                            }
                        }
                        Some(b'(') => {
                            brackets += 1;
                            if blocks + brackets > limit {
                                return true;
                            }
                            j += 1;
                        }
                        Some(b')') => {
                            brackets = usize::saturating_sub(brackets, 1);
                            j += 1;
                        }
                        Some(b'[') => {
                            // A path segment `[...]` or an array literal:
                            // both end at the first `]` when nothing in
                            // between could start a string or a bracket.
                            // A segment after `.` or `/` (`x.[a b]`) names
                            // a key and nests nothing; any other `[` is
                            // counted as a level, which can only overcount.
                            let segment = matches!(src[j - 1], b'.' | b'/');
                            let end = src[j + 1..]
                                .iter()
                                .position(|c| {
                                    matches!(
                                        c,
                                        b']' | b'"'
                                            | b'\''
                                            | b'['
                                            | b'('
                                            | b')'
                                            | b'{'
                                            | b'}'
                                            | b'\\'
                                    )
                                })
                                .map(|p| j + 1 + p);
                            match end {
                                Some(e) if src[e] == b']' => {
                                    if !segment && blocks + brackets + 1 > limit {
                                        return true;
                                    }
                                    j = e + 1;
                                }
                                Some(_) => {
                                    return openings_exceed(src, j, blocks + brackets, limit)
                                }
                                None => return blocks + brackets + 1 > limit,
                            }
                        }
                        Some(b'{') => return openings_exceed(src, j, blocks + brackets, limit),
                        Some(b'}') if at(j, b"}}") => break,
                        Some(_) => j += 1,
                    }
                }
                i = j + 2;
            }
            _ => i += 1,
        }
    }
    false
}

/// Whether `depth` plus every opening from `from` on passes `limit`:
/// `{{#`, `(`, `[` and a `{` that is not part of `{{`. Closings are not
/// counted, so this is never less than the real depth.
fn openings_exceed(src: &[u8], from: usize, mut depth: usize, limit: usize) -> bool {
    let mut i = from;
    while i < src.len() {
        match src[i] {
            b'(' | b'[' => depth += 1,
            b'{' => {
                let run = src[i..].iter().take_while(|&&c| c == b'{').count();
                let mut j = i + run;
                if run == 1 {
                    depth += 1;
                } else {
                    while src
                        .get(j)
                        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'~'))
                    {
                        j += 1;
                    }
                    if src.get(j) == Some(&b'#') {
                        depth += 1;
                    }
                }
                i = j.max(i + run);
                if depth > limit {
                    return true;
                }
                continue;
            }
            _ => {}
        }
        if depth > limit {
            return true;
        }
        i += 1;
    }
    false
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
    if text.len() <= max || text.chars().nth(max).is_none() {
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
    let mut value = value;
    if let Value::Object(map) = &mut value {
        add_context(map, &event.context);
    }
    // Building a context from a JSON value cannot fail.
    Context::wraps(value).unwrap_or_else(|_| Context::null())
}

/// Adds the event's `context` (dotted keys) to the template values; a key
/// whose first part names one of the event's own values is left out, so
/// `{{message}}` or `{{tags.host}}` always mean what they mean for every
/// alert.
fn add_context(map: &mut Map<String, Value>, context: &[(String, String)]) {
    const OWN: &[&str] = &[
        "id",
        "message",
        "details",
        "level",
        "previousLevel",
        "recoverable",
        "name",
        "taskName",
        "group",
        "topic",
        "tags",
        "fields",
        "time",
        "unixTime",
        "duration",
        "workspace",
        "channel",
    ];
    for (key, text) in context {
        let (head, rest) = match key.split_once('.') {
            Some((head, rest)) => (head, Some(rest)),
            None => (key.as_str(), None),
        };
        if head.is_empty() || OWN.contains(&head) {
            continue;
        }
        match rest {
            None => {
                map.entry(head.to_string())
                    .or_insert_with(|| Value::String(text.clone()));
            }
            Some(rest) => {
                let inner = map
                    .entry(head.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(inner) = inner {
                    inner.insert(rest.to_string(), Value::String(text.clone()));
                }
            }
        }
    }
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
    fn an_events_context_adds_dotted_values_but_never_replaces_its_own() {
        let mut e = event();
        e.context = vec![
            ("annotations.summary".into(), "p99 above 2s".into()),
            ("labels.severity".into(), "critical".into()),
            ("status".into(), "firing".into()),
            ("generatorURL".into(), "http://prom/graph".into()),
            ("message".into(), "not this".into()),
            ("tags.host".into(), "not this either".into()),
        ];
        let out = Template::compile(
            "{{annotations.summary}}|{{labels.severity}}|{{status}}|{{generatorURL}}|{{message}}|{{tags.host}}",
        )
        .unwrap()
        .render(&context(&e, "alerts", "#ops"), Escape::Plain)
        .unwrap();
        assert_eq!(
            out,
            "p99 above 2s|critical|firing|http://prom/graph|CPU <!channel> & more|a<b>"
        );
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

    /// `n` blocks nested, opened with `open` and closed with `{{/name}}`,
    /// with `inside` after each opening.
    fn nested(n: usize, (open, name): (&str, &str), inside: &str) -> String {
        let close = format!("{{{{/{name}}}}}");
        format!(
            "{}x{}",
            format!("{open}{inside}").repeat(n),
            close.repeat(n)
        )
    }

    const BLOCKS: [(&str, &str); 5] = [
        ("{{#if a}}", "if"),
        ("{{#each tags}}", "each"),
        ("{{#with tags}}", "with"),
        ("{{#unless a}}", "unless"),
        ("{{~# mine a ~}}", "mine"),
    ];

    #[test]
    fn a_template_at_the_byte_limit_compiles() {
        let text = format!("{{{{level}}}}{}", "x".repeat(MAX_TEMPLATE_BYTES - 9));
        assert_eq!(text.len(), MAX_TEMPLATE_BYTES);
        assert!(Template::compile(&text).is_ok());
    }

    #[test]
    fn a_template_over_the_byte_limit_is_refused_before_compiling() {
        let before = compilations();
        let e = Template::compile(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).unwrap_err();
        assert_eq!(
            e,
            "the template is 8,193 bytes; the most a template may have is 8,192"
        );
        assert_eq!(compilations(), before);
    }

    #[test]
    fn nesting_at_the_limit_compiles_for_every_block_helper() {
        for block in BLOCKS {
            let text = nested(MAX_TEMPLATE_NESTING, block, "");
            assert!(Template::compile(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn nesting_one_deeper_is_refused_before_compiling() {
        let before = compilations();
        for block in BLOCKS {
            let e = Template::compile(&nested(MAX_TEMPLATE_NESTING + 1, block, "")).unwrap_err();
            assert_eq!(
                e,
                "the template nests blocks (`{{#…}}`) and brackets more than 16 deep; the most a template may nest is 16",
                "{block:?}"
            );
        }
        assert_eq!(compilations(), before);
    }

    #[test]
    fn blocks_one_after_another_do_not_add_up() {
        let text = "{{#if a}}{{#each tags}}{{@key}}{{/each}}{{/if}}".repeat(100);
        assert!(Template::compile(&text).is_ok());
    }

    #[test]
    fn brackets_inside_an_expression_count_as_nesting() {
        let parens = |n: usize| {
            format!(
                "{{{{#if {}a{}}}}}x{{{{/if}}}}",
                "(eq ".repeat(n),
                " b)".repeat(n)
            )
        };
        assert!(Template::compile(&parens(MAX_TEMPLATE_NESTING - 1)).is_ok());
        assert!(Template::compile(&parens(MAX_TEMPLATE_NESTING))
            .unwrap_err()
            .contains("more than 16 deep"));
        let arrays = |n: usize| format!("{{{{lookup {}1{} 0}}}}", "[".repeat(n), "]".repeat(n));
        assert!(Template::compile(&arrays(MAX_TEMPLATE_NESTING)).is_ok());
        assert!(Template::compile(&arrays(MAX_TEMPLATE_NESTING + 1))
            .unwrap_err()
            .contains("more than 16 deep"));
    }

    /// Text the parser reads as no closing at all, though it holds `{{/if}}`
    /// or `)`; whether the check reads it exactly (else it overcounts); and
    /// how deep its own brackets nest (brackets count as nesting).
    const HIDERS: [(&str, bool, usize); 12] = [
        (r"\{{/if}}", true, 0),
        (r"\\{{x}}", true, 0),
        ("{{x \"{{/if}}\"}}", true, 0),
        ("{{x 'a\\'{{/if}}'}}", true, 0),
        ("{{x (y \")\" \"{{/if}}\")}}", true, 1),
        ("{{!-- {{/if}} --}}", true, 0),
        ("{{! {{/if}}", true, 0),
        ("{{x.[a b]}}", true, 0),
        ("{{{{raw}}}}{{/if}}{{{{/raw}}}}", false, 0),
        ("{{x.[ {{/if}} ]}}", false, 0),
        ("{{x [\"{{/if}}\" 1]}}", false, 1),
        ("{{> p \"{{/if}}\"}}", false, 0),
    ];

    #[test]
    fn closings_the_parser_does_not_see_do_not_hide_depth() {
        for (hider, _, _) in HIDERS {
            // The parser takes the blocks around the hider as really nested.
            let at_limit = nested(MAX_TEMPLATE_NESTING, BLOCKS[0], hider);
            handlebars::Template::compile(&at_limit).unwrap_or_else(|e| panic!("{hider}: {e}"));
            let deeper = nested(MAX_TEMPLATE_NESTING + 1, BLOCKS[0], hider);
            let e = Template::compile(&deeper).unwrap_err();
            assert!(e.contains("more than 16 deep"), "{hider}: {e}");
        }
    }

    /// A path's `[...]` segment after `.` or `/` nests nothing: a template
    /// at the limit with one is taken (found by the property test below,
    /// which proptest-regressions/template.txt replays).
    #[test]
    fn a_path_segment_in_brackets_is_not_a_level() {
        for path in ["{{x.[a b]}}", "{{x/[a b]}}", "{{@root.[a b].c}}"] {
            let at_limit = nested(MAX_TEMPLATE_NESTING, BLOCKS[0], path);
            assert_eq!(check_bounds(&at_limit), Ok(()), "{path}");
            handlebars::Template::compile(&at_limit).unwrap_or_else(|e| panic!("{path}: {e}"));
            let deeper = nested(MAX_TEMPLATE_NESTING + 1, BLOCKS[0], path);
            assert!(check_bounds(&deeper).is_err(), "{path}");
        }
        // An array literal (or a path starting with a segment) is counted.
        let array = nested(MAX_TEMPLATE_NESTING, BLOCKS[0], "{{x [1 2]}}");
        assert!(check_bounds(&array).is_err());
    }

    #[test]
    fn hostile_text_at_the_byte_limit_is_checked_without_panicking() {
        for unit in [
            "{{!--", "{{!", "\\", "{{a [", "{{a \"", "{{{{", "{{#", "{{/", "[", "(", "{{a (",
            "{{a {",
        ] {
            let text: String = unit.repeat(MAX_TEMPLATE_BYTES / unit.len());
            let _ = Template::compile(&text);
        }
    }

    proptest::proptest! {
        /// Any text made of the template syntax's characters is checked
        /// without panicking.
        #[test]
        fn the_check_takes_any_text(text in "[{}#/()\\[\\]\"'\\\\!~> a=-]{0,300}") {
            let _ = check_bounds(&text);
        }

        /// Templates of blocks in any order with text the parser does not
        /// read as closings between them: the check refuses every one nested
        /// deeper than the limit, and refuses none within it when it reads
        /// that text exactly.
        #[test]
        fn the_check_never_undercounts_nesting(
            steps in proptest::collection::vec((0u8..4, 0usize..HIDERS.len()), 0..60),
        ) {
            let (mut text, mut open, mut deepest, mut exact) = (String::new(), Vec::new(), 0, true);
            for (step, hider) in steps {
                match step {
                    0 | 1 => {
                        let name = ["if", "each"][usize::from(step)];
                        text.push_str(&format!("{{{{#{name} a}}}}"));
                        open.push(name);
                        deepest = deepest.max(open.len());
                    }
                    2 => {
                        if let Some(name) = open.pop() {
                            text.push_str(&format!("{{{{/{name}}}}}"));
                        }
                    }
                    _ => {
                        let (hider, reads_exactly, brackets) = HIDERS[hider];
                        text.push_str(hider);
                        exact &= reads_exactly;
                        deepest = deepest.max(open.len() + brackets);
                    }
                }
            }
            while let Some(name) = open.pop() {
                text.push_str(&format!("{{{{/{name}}}}}"));
            }
            let refused = check_bounds(&text).is_err();
            if deepest > MAX_TEMPLATE_NESTING {
                proptest::prop_assert!(refused, "{text}");
            } else if exact {
                proptest::prop_assert!(!refused, "{text}");
                proptest::prop_assert!(handlebars::Template::compile(&text).is_ok(), "{text}");
            }
        }
    }

    #[test]
    fn the_cache_keeps_what_its_byte_bound_allows_and_drops_the_least_recently_used() {
        let mut cache = Cache::new(MAX_CACHED_TEMPLATES, MAX_CACHED_TEMPLATE_BYTES);
        let big = |i: usize| format!("{i:05}{}", "x".repeat(MAX_TEMPLATE_BYTES - 5));
        let fit = MAX_CACHED_TEMPLATE_BYTES / MAX_TEMPLATE_BYTES;
        for i in 0..fit {
            cache.insert(Template::compile(&big(i)).unwrap());
        }
        assert_eq!(
            (cache.entries.len(), cache.bytes),
            (fit, MAX_CACHED_TEMPLATE_BYTES)
        );
        assert!(cache.get(&big(0)).is_some());
        cache.insert(Template::compile(&big(fit)).unwrap());
        assert_eq!(cache.entries.len(), fit);
        assert!(cache.bytes <= MAX_CACHED_TEMPLATE_BYTES);
        assert!(cache.get(&big(1)).is_none(), "the least recently used goes");
        assert!(cache.get(&big(0)).is_some() && cache.get(&big(fit)).is_some());
        // Small templates take the room of one big one, as many as fit.
        for i in 0..100 {
            cache.insert(Template::compile(&format!("{i} {{{{level}}}}")).unwrap());
        }
        assert!(cache.bytes <= MAX_CACHED_TEMPLATE_BYTES);
        assert!(cache.get("99 {{level}}").is_some());
    }

    #[test]
    fn the_cache_keeps_at_most_its_count() {
        let mut cache = Cache::new(MAX_CACHED_TEMPLATES, MAX_CACHED_TEMPLATE_BYTES);
        for i in 0..=MAX_CACHED_TEMPLATES {
            cache.insert(Template::compile(&format!("{i}")).unwrap());
        }
        assert_eq!(cache.entries.len(), MAX_CACHED_TEMPLATES);
        assert!(cache.get("0").is_none());
        assert!(cache.get(&MAX_CACHED_TEMPLATES.to_string()).is_some());
    }

    #[test]
    fn cut_with_ellipsis_counts_characters() {
        assert_eq!(cut_with_ellipsis("ééééé", 5), "ééééé");
        assert_eq!(cut_with_ellipsis("éééééé", 5), "éééé…");
        assert_eq!(cut_with_ellipsis("abc", 0), "");
    }
}
