//! The request body: the event as a JSON object, or a handlebars template
//! rendered over that same object.
//!
//! Values a template inserts with `{{ }}` are JSON-escaped (quotes,
//! backslashes, control characters), without quotes of their own, so
//! `"text": "{{message}}"` stays valid JSON whatever the message holds.
//! `{{{ }}}` inserts a value as it is, and `{{{json tags}}}` inserts any
//! value as JSON (`{{json tags}}` gives the same JSON escaped, for inside a
//! string). For a body that is not JSON, use `{{{ }}}`.

use std::sync::OnceLock;

use handlebars::{handlebars_helper, Context, Handlebars, RenderContext, Renderable};
use serde::{Serialize, Serializer};

use crate::event::{rfc3339, AlertEvent, FieldValue, Level};

/// The most bytes a template may have.
pub const MAX_TEMPLATE_BYTES: usize = 8 * 1024;

/// The deepest a template may nest blocks (`{{#…}}`) and brackets inside
/// `{{ }}`, counted together: the template parser recurses once a level,
/// and in a component nothing guards its stack, so deeper is refused
/// before it is compiled.
pub const MAX_TEMPLATE_NESTING: usize = 16;

/// A compiled body template.
#[derive(Debug)]
pub struct Template(handlebars::Template);

/// The event as the default body has it, and as templates see it: `id`,
/// `message`, `details`, `level` (`OK` … `CRITICAL`), `time` (RFC 3339),
/// `duration` (nanoseconds), `name`, `task`, `group`, and the objects
/// `tags`, `fields` and `context` (its keys dotted, as given:
/// `{{lookup context "annotations.summary"}}`).
#[derive(Serialize)]
struct Body<'a> {
    id: &'a str,
    message: &'a str,
    details: &'a str,
    level: Level,
    time: String,
    duration: i64,
    name: &'a str,
    task: &'a str,
    group: &'a str,
    tags: Pairs<'a, String>,
    fields: Pairs<'a, FieldValue>,
    context: Pairs<'a, String>,
}

/// Pairs as a JSON object, in their order.
struct Pairs<'a, T>(&'a [(String, T)]);

impl<T: Serialize> Serialize for Pairs<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// Renders the body for `event`: `template` over the event, or the event
/// as JSON. A template's error is described in words.
pub fn body(event: &AlertEvent, template: Option<&Template>) -> Result<String, String> {
    let body = Body {
        id: &event.id,
        message: &event.message,
        details: &event.details,
        level: event.level,
        time: rfc3339(event.time.0, event.time.1),
        duration: event.duration,
        name: &event.name,
        task: &event.task_name,
        group: &event.group,
        tags: Pairs(&event.tags),
        fields: Pairs(&event.fields),
        context: Pairs(&event.context),
    };
    let Some(Template(template)) = template else {
        return serde_json::to_string(&body).map_err(|e| e.to_string());
    };
    let context = Context::wraps(&body).map_err(|e| e.to_string())?;
    let mut state = RenderContext::new(None);
    let rendered = template.renders(registry(), &context, &mut state);
    rendered.map_err(|e| e.to_string())
}

/// Compiles a body template, refusing one over [`MAX_TEMPLATE_BYTES`] or
/// [`MAX_TEMPLATE_NESTING`] first.
pub fn compile(source: &str) -> Result<Template, String> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "the template is {} bytes; the most a template may have is {MAX_TEMPLATE_BYTES}",
            source.len()
        ));
    }
    if nests_deeper_than(source, MAX_TEMPLATE_NESTING) {
        return Err(format!(
            "the template nests blocks and brackets more than {MAX_TEMPLATE_NESTING} deep"
        ));
    }
    handlebars::Template::compile(source)
        .map(Template)
        .map_err(|e| match e.pos() {
            Some((line, column)) => {
                format!(
                    "template error at line {line}, column {column}: {}",
                    e.reason()
                )
            }
            None => format!("template error: {}", e.reason()),
        })
}

/// `text` JSON-escaped, without the quotes: what `{{ }}` inserts.
pub fn json_escape(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

handlebars_helper!(json: |value: Json| value.to_string());

/// The registry templates render with: JSON escaping, the built-in
/// helpers (`if`, `each`, `lookup`, `eq`, …) and `json`.
fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut h = Handlebars::new();
        h.register_escape_fn(json_escape);
        h.register_helper("json", Box::new(json));
        h
    })
}

/// Whether the template parser could nest deeper than `limit` on `src`.
///
/// It reads `{{#` as a block opened and `{{/` as one closed, and inside
/// `{{ }}` counts `(` against `)`, skipping string literals as the parser
/// reads them. Where that simple reading could be fooled (a comment, a raw
/// block, an escaped `\{{`, a partial, a `[…]` segment or a `{…}` literal
/// that may hide a `}}`) it counts every opening from there on and no
/// closing, which can only overcount.
fn nests_deeper_than(src: &str, limit: usize) -> bool {
    if ["{{{{", "{{!", "\\{{"].iter().any(|p| src.contains(p)) {
        return openings(src.as_bytes(), 0) > limit;
    }
    let s = src.as_bytes();
    let skip = |mut j: usize, what: &[u8]| {
        while s.get(j).is_some_and(|c| what.contains(c)) {
            j += 1;
        }
        j
    };
    let mut blocks = 0usize;
    let mut i = 0;
    while let Some(at) = src[i..].find("{{").map(|p| p + i) {
        let mut j = skip(at + 2, b"{~& \t\r\n");
        match s.get(j) {
            Some(b'>') => return blocks + openings(s, at) > limit,
            Some(b'#') if s.get(skip(j + 1, b" \t\r\n")) == Some(&b'>') => {
                return blocks + openings(s, at) > limit
            }
            Some(b'#') => blocks += 1,
            Some(b'/') => blocks = blocks.saturating_sub(1),
            _ => {}
        }
        let mut brackets = 0usize;
        loop {
            if blocks + brackets > limit {
                return true;
            }
            match s.get(j) {
                None => return false,
                Some(b'}') if s.get(j + 1) == Some(&b'}') => break,
                Some(&quote @ (b'"' | b'\'')) => {
                    j += 1;
                    while let Some(&c) = s.get(j) {
                        j += if c == b'\\' { 2 } else { 1 };
                        if c == quote {
                            break;
                        }
                    }
                    continue;
                }
                Some(b'(') => brackets += 1,
                Some(b')') => brackets = brackets.saturating_sub(1),
                Some(b'[' | b'{') => return blocks + brackets + openings(s, j) > limit,
                _ => {}
            }
            j += 1;
        }
        i = j + 2;
    }
    false
}

/// Every opening from `from` on: `(`, `[`, a `{` alone, and `{{#`.
fn openings(s: &[u8], from: usize) -> usize {
    let mut count = 0;
    let mut i = from;
    while i < s.len() {
        match s[i] {
            b'{' if s.get(i + 1) == Some(&b'{') => {
                i += s[i..].iter().take_while(|&&c| c == b'{').count();
                while s.get(i).is_some_and(|c| b"~ \t\r\n".contains(c)) {
                    i += 1;
                }
                count += usize::from(s.get(i) == Some(&b'#'));
                continue;
            }
            b'(' | b'[' | b'{' => count += 1,
            _ => {}
        }
        i += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn event() -> AlertEvent {
        let mut e = AlertEvent::new("cpu:host=a", "CPU \"high\"\nat 97%", Level::Critical);
        e.details = "<b>details</b>".into();
        e.time = (1_764_181_316, 0);
        e.duration = 300_000_000_000;
        e.name = "cpu".into();
        e.task_name = "cpu_alert".into();
        e.group = "host=a".into();
        e.tags = vec![("host".into(), "a".into()), ("dc".into(), "eu".into())];
        e.fields = vec![
            ("usage".into(), FieldValue::Float(97.5)),
            ("n".into(), FieldValue::Integer(7)),
            ("up".into(), FieldValue::Boolean(false)),
            ("why".into(), FieldValue::String("load".into())),
            ("odd".into(), FieldValue::Float(f64::NAN)),
        ];
        e.context = vec![("annotations.summary".into(), "CPU is high".into())];
        e
    }

    fn render(source: &str) -> String {
        body(&event(), Some(&compile(source).unwrap())).unwrap()
    }

    #[test]
    fn default_body_is_the_event_as_json() {
        let text = body(&event(), None).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "cpu:host=a",
                "message": "CPU \"high\"\nat 97%",
                "details": "<b>details</b>",
                "level": "CRITICAL",
                "time": "2025-11-26T18:21:56Z",
                "duration": 300_000_000_000i64,
                "name": "cpu",
                "task": "cpu_alert",
                "group": "host=a",
                "tags": {"host": "a", "dc": "eu"},
                "fields": {"usage": 97.5, "n": 7, "up": false, "why": "load", "odd": "NaN"},
                "context": {"annotations.summary": "CPU is high"},
            })
        );
        // Keys in the documented order, tags in the event's.
        assert!(
            text.starts_with(r#"{"id":"cpu:host=a","message":"#),
            "{text}"
        );
        assert!(text.contains(r#""tags":{"host":"a","dc":"eu"}"#), "{text}");
    }

    #[test]
    fn a_template_sees_the_same_values() {
        assert_eq!(
            render("{{level}} {{tags.host}} {{fields.n}} {{time}} {{task}} {{lookup context \"annotations.summary\"}}"),
            "CRITICAL a 7 2025-11-26T18:21:56Z cpu_alert CPU is high"
        );
    }

    #[test]
    fn values_are_json_escaped_inside_a_string() {
        let text = render(r#"{"text": "{{message}}", "html": "{{details}}"}"#);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["text"], "CPU \"high\"\nat 97%");
        assert_eq!(value["html"], "<b>details</b>");
        assert_eq!(json_escape("a\\b\t\u{1}"), r"a\\b\t\u0001");
    }

    #[test]
    fn triple_braces_insert_raw_and_json_inserts_json() {
        assert_eq!(render("{{{message}}}"), "CPU \"high\"\nat 97%");
        let text = render(r#"{"tags": {{{json tags}}}, "as_text": "{{json tags}}"}"#);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["tags"], json!({"host": "a", "dc": "eu"}));
        let as_text: Value = serde_json::from_str(value["as_text"].as_str().unwrap()).unwrap();
        assert_eq!(as_text, value["tags"]);
    }

    #[test]
    fn a_helper_error_is_described() {
        let e = body(&event(), Some(&compile("{{json}}").unwrap())).unwrap_err();
        assert!(e.contains("json"), "{e}");
    }

    #[test]
    fn templates_too_long_or_too_deep_are_refused_before_compiling() {
        let e = compile(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).unwrap_err();
        assert!(e.contains("8192"), "{e}");
        let deep = |n: usize| format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n));
        assert!(compile(&deep(MAX_TEMPLATE_NESTING)).is_ok());
        assert!(compile(&deep(MAX_TEMPLATE_NESTING + 1))
            .unwrap_err()
            .contains("more than 16 deep"));
        let parens = |n: usize| format!("{{{{x {}a{}}}}}", "(y ".repeat(n), ")".repeat(n));
        assert!(compile(&parens(MAX_TEMPLATE_NESTING)).is_ok());
        assert!(compile(&parens(MAX_TEMPLATE_NESTING + 1)).is_err());
        // Blocks one after another are not nested.
        assert!(compile(&"{{#if a}}x{{/if}}".repeat(40)).is_ok());
        // A string that looks like a closing does not close anything.
        let fooled = format!(
            "{}{{{{x \"{{{{/if}}}}\"}}}}{}",
            "{{#if a}}".repeat(16),
            "{{#if b}}"
        );
        assert!(compile(&fooled).is_err());
        // After a comment every opening counts.
        let commented = format!("{{{{! {{{{/if}}}} }}}}{}", "{{#if a}}x{{/if}}".repeat(17));
        assert!(compile(&commented).is_err());
        assert!(compile("{{! note }}{{#if a}}{{json tags}}{{/if}}").is_ok());
    }
}
