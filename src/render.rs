//! Renders an alert into the message posted for it, in the chosen layout:
//! `kapacitor` (Kapacitor's attachment, byte for byte when none of our
//! settings is used), `attachment` (title, pretext, fields, footer) or
//! `blocks` (Block Kit inside a coloured attachment). Every part is kept
//! within what Slack takes, cut with a visible marker and a warning; a
//! template that fails for one alert falls back to that part's default and
//! warns, so the alert is never lost.

use std::sync::OnceLock;

use handlebars::Context;
use serde_json::{json, Value};

use crate::buttons;
use crate::config::Workspace;
use crate::event::AlertEvent;
use crate::options::{HandlerOptions, HostOptions};
use crate::payload::{self, limits, Attachment, Field, Message, Update};
use crate::style::{FieldSpec, Layout, Style};
use crate::template::{self, cut_with_ellipsis, Escape, Template};

/// A rendered message and the handler's own warnings about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub message: Message,
    pub warnings: Vec<String>,
}

impl Rendered {
    /// The same content as a chat.update of message `ts` in `channel_id`.
    pub fn as_update(&self, channel_id: &str, ts: &str) -> Update {
        Update {
            attachments: self.message.attachments.clone(),
            channel: channel_id.to_string(),
            link_names: self.message.link_names,
            text: self.message.text.clone(),
            ts: ts.to_string(),
        }
    }
}

/// The warning for a part cut to Slack's limit, e.g.
/// `handler_truncated_title`.
fn cut_warning(part: &str) -> String {
    format!("handler_truncated_{part}")
}

/// The warning for a template that failed for this alert.
pub fn template_warning(key: &str) -> String {
    format!("handler_template_failed:{key}")
}

/// The default templates of the `attachment` and `blocks` layouts.
struct Defaults {
    title: Template,
    text: Template,
    footer: Template,
    /// Kapacitor's layout: the message as it is.
    raw_message: Template,
    /// What a field's part that fails renders to.
    empty: Template,
}

fn defaults() -> &'static Defaults {
    static DEFAULTS: OnceLock<Defaults> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        // Fixed sources that compile: checked by the tests.
        let t = |s: &str| Template::compile(s).unwrap_or_else(|e| panic!("default {s:?}: {e}"));
        Defaults {
            title: t("{{emoji level}} {{level}}: {{id}}"),
            text: t("{{message}}"),
            footer: t("{{#if taskName}}{{taskName}} · {{/if}}{{time}}"),
            raw_message: t("{{{message}}}"),
            empty: t(""),
        }
    })
}

/// Renders templates for one alert, collecting warnings.
struct Renderer<'a> {
    /// Built on the first template rendered: Kapacitor's layout without
    /// templates never needs it.
    context: std::cell::OnceCell<Context>,
    workspace: &'a str,
    channel: &'a str,
    event: &'a AlertEvent,
    warnings: Vec<String>,
}

impl Renderer<'_> {
    fn context(&self) -> &Context {
        self.context
            .get_or_init(|| template::context(self.event, self.workspace, self.channel))
    }

    /// `template` rendered, or `default` when it is not set; a failure
    /// renders `default` and warns with `key`.
    fn part(
        &mut self,
        key: &str,
        template: Option<&Template>,
        default: &Template,
        escape: Escape,
    ) -> String {
        let Some(template) = template else {
            return default.render(self.context(), escape).unwrap_or_default();
        };
        match template.render(self.context(), escape) {
            Ok(text) => text,
            Err(_) => {
                self.warn(template_warning(key));
                default.render(self.context(), escape).unwrap_or_default()
            }
        }
    }

    /// A one-line part (title, footer): rendered as [`Renderer::part`],
    /// without the spaces a template's `{{#if}}` leaves at its ends.
    fn line(
        &mut self,
        key: &str,
        template: Option<&Template>,
        default: &Template,
        escape: Escape,
    ) -> String {
        trimmed(self.part(key, template, default, escape))
    }

    /// An optional part, trimmed: `None` when not set or when it renders
    /// empty.
    fn optional(
        &mut self,
        key: &str,
        template: Option<&Template>,
        escape: Escape,
    ) -> Option<String> {
        let template = template?;
        let text = match template.render(self.context(), escape) {
            Ok(text) => trimmed(text),
            Err(_) => {
                self.warn(template_warning(key));
                return None;
            }
        };
        (!text.is_empty()).then_some(text)
    }

    fn warn(&mut self, warning: String) {
        payload::warn_once(&mut self.warnings, warning);
    }

    /// `text` within `max` characters, ending in `…` when cut (a warning
    /// names `part`).
    fn fit(&mut self, part: &str, text: String, max: usize) -> String {
        // No more bytes than `max` is no more characters: nothing to walk.
        if text.len() <= max || text.chars().nth(max).is_none() {
            return text;
        }
        self.warn(cut_warning(part));
        cut_with_ellipsis(&text, max)
    }

    /// A message text within Slack's 40,000 characters, with the long
    /// marker that says how long it was.
    fn fit_text(&mut self, text: String) -> String {
        payload::fit_text(text, &mut self.warnings)
    }

    /// The colour: the template's if it gives one Slack knows, else the
    /// level's.
    fn color(&mut self, style: &Style) -> String {
        let level = self.event.level.color().to_string();
        let Some(template) = &style.color else {
            return level;
        };
        match template.render(self.context(), Escape::Plain) {
            Ok(c) if is_color(c.trim()) => c.trim().to_string(),
            Ok(c) if c.trim().is_empty() => level,
            _ => {
                self.warn(template_warning("color"));
                level
            }
        }
    }

    /// The fields, rendered: the configured ones, else one per tag.
    fn fields(&mut self, specs: Option<&Vec<FieldSpec>>) -> Vec<Field> {
        let mut out = Vec::new();
        match specs {
            Some(specs) => {
                for spec in specs {
                    let empty = &defaults().empty;
                    let title =
                        trimmed(self.part("fields", Some(&spec.title), empty, Escape::Mrkdwn));
                    let value = self.part("fields", Some(&spec.value), empty, Escape::Mrkdwn);
                    if !(title.is_empty() && value.is_empty()) {
                        out.push(Field {
                            title,
                            value,
                            short: spec.short,
                        });
                    }
                }
            }
            None => {
                for (key, value) in &self.event.tags {
                    out.push(Field {
                        title: template::escape_mrkdwn(key),
                        value: template::escape_mrkdwn(value),
                        short: true,
                    });
                }
            }
        }
        out
    }
}

fn trimmed(text: String) -> String {
    let t = text.trim();
    if t.len() == text.len() {
        text
    } else {
        t.to_string()
    }
}

/// `good`, `warning`, `danger`, `#RGB` or `#RRGGBB`.
fn is_color(c: &str) -> bool {
    matches!(c, "good" | "warning" | "danger")
        || (c.starts_with('#')
            && matches!(c.len(), 4 | 7)
            && c[1..].chars().all(|d| d.is_ascii_hexdigit()))
}

/// The message for `event`: Kapacitor's channel, username and icon (option,
/// else section), in the layout the settings choose (`style` is the
/// section's merged with the options').
pub fn message(
    ws: &Workspace,
    options: &HandlerOptions,
    host: &HostOptions,
    style: &Style,
    event: &AlertEvent,
) -> Rendered {
    let pick =
        |option: &str, section: &str| if option.is_empty() { section } else { option }.to_string();
    let channel = pick(&options.channel, &ws.channel);
    let mut r = Renderer {
        context: std::cell::OnceCell::new(),
        workspace: &ws.id,
        channel: &channel,
        event,
        warnings: Vec::new(),
    };
    let mentions = match &style.mention {
        Some(list) if style.mentions_at(event.level) => list.join(" "),
        _ => String::new(),
    };
    let (marks, dropped) = buttons::blocks(style, host, event);
    if let Some(warning) = dropped {
        r.warn(warning.to_string());
    }
    let mut attachments = Vec::with_capacity(2);
    let text = match style.layout() {
        Layout::Kapacitor => {
            let (one, text) = kapacitor(&mut r, style, &mentions);
            attachments.push(one);
            text
        }
        Layout::Attachment => {
            let (one, text) = attachment(&mut r, style, &mentions);
            // An attachment with blocks loses its legacy fields: the
            // buttons go in a second attachment of the same colour.
            if !marks.is_empty() {
                let second = Attachment {
                    fallback: String::new(),
                    color: one.color.clone(),
                    blocks: marks,
                    ..Attachment::default()
                };
                attachments.push(one);
                attachments.push(second);
            } else {
                attachments.push(one);
            }
            text
        }
        Layout::Blocks => {
            let (one, text) = blocks(&mut r, style, &mentions, marks);
            attachments.push(one);
            text
        }
    };
    let warnings = r.warnings;
    Rendered {
        message: Message {
            attachments,
            channel,
            icon_emoji: pick(&options.icon_emoji, &ws.icon_emoji),
            icon_url: style.icon_url.clone(),
            link_names: style.link_names,
            reply_broadcast: None,
            text,
            thread_ts: None,
            username: pick(&options.username, &ws.username),
        },
        warnings,
    }
}

/// Kapacitor's attachment: the message (raw, as Kapacitor sends it, or the
/// `text` template), coloured by level; mentions in the top-level text.
fn kapacitor(r: &mut Renderer, style: &Style, mentions: &str) -> (Attachment, String) {
    let text = match &style.text {
        None => r.event.message.clone(),
        Some(t) => r.part("text", Some(t), &defaults().raw_message, Escape::Mrkdwn),
    };
    let text = r.fit_text(text);
    let attachment = Attachment {
        fallback: text.clone(),
        color: r.color(style),
        text: Some(text),
        mrkdwn_in: vec!["text"],
        ..Attachment::default()
    };
    (attachment, mentions.to_string())
}

/// A legacy attachment with title, pretext, text, fields and footer.
fn attachment(r: &mut Renderer, style: &Style, mentions: &str) -> (Attachment, String) {
    let d = defaults();
    let title = r.line("title", style.title.as_ref(), &d.title, Escape::Mrkdwn);
    let title = r.fit("title", title, limits::ATTACHMENT_TITLE);
    let text = r.part("text", style.text.as_ref(), &d.text, Escape::Mrkdwn);
    let text = r.fit_text(text);
    let pretext = r
        .optional("pretext", style.pretext.as_ref(), Escape::Mrkdwn)
        .map(|p| r.fit("pretext", p, limits::TEXT));
    let footer = r.line("footer", style.footer.as_ref(), &d.footer, Escape::Mrkdwn);
    let footer = r.fit("footer", footer, limits::FOOTER);
    let title_link = r.optional("title-link", style.title_link.as_ref(), Escape::Plain);
    let fields = r.fields(style.fields.as_ref());
    let fallback = if title.is_empty() { &text } else { &title };
    let attachment = Attachment {
        fallback: fallback.clone(),
        color: r.color(style),
        pretext,
        title: (!title.is_empty()).then_some(title),
        title_link,
        text: (!text.is_empty()).then_some(text),
        fields,
        footer: (!footer.is_empty()).then_some(footer),
        mrkdwn_in: vec!["text", "pretext", "fields"],
        ..Attachment::default()
    };
    (attachment, mentions.to_string())
}

/// Block Kit inside an attachment that keeps the colour bar: a header (the
/// title), a section (the text), the fields, a context (the footer and the
/// title's link). The top-level text, which notifications and screen
/// readers read, is never empty: the mentions, then the pretext, else the
/// title, else the text.
fn blocks(
    r: &mut Renderer,
    style: &Style,
    mentions: &str,
    marks: Vec<Value>,
) -> (Attachment, String) {
    let d = defaults();
    let mut blocks: Vec<Value> = Vec::new();

    let header = r.line("title", style.title.as_ref(), &d.title, Escape::Plain);
    let header = r.fit("title", header, limits::HEADER);
    if !header.trim().is_empty() {
        blocks.push(json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}));
    }
    let text = r.part("text", style.text.as_ref(), &d.text, Escape::Mrkdwn);
    let text = r.fit("text", text, limits::SECTION);
    if !text.trim().is_empty() {
        blocks.push(section(&text));
    }

    let fields = r.fields(style.fields.as_ref());
    let mut field_blocks = Vec::new();
    let mut short: Vec<Value> = Vec::new();
    let flush = |short: &mut Vec<Value>, out: &mut Vec<Value>| {
        for chunk in short.chunks(limits::FIELDS_PER_SECTION) {
            out.push(json!({"type": "section", "fields": chunk}));
        }
        short.clear();
    };
    for f in fields {
        let body = field_text(&f);
        if f.short {
            let body = r.fit("fields", body, limits::FIELD);
            short.push(json!({"type": "mrkdwn", "text": body}));
        } else {
            flush(&mut short, &mut field_blocks);
            let body = r.fit("fields", body, limits::SECTION);
            field_blocks.push(section(&body));
        }
    }
    flush(&mut short, &mut field_blocks);

    let footer = r.line("footer", style.footer.as_ref(), &d.footer, Escape::Mrkdwn);
    let footer = r.fit("footer", footer, limits::FOOTER);
    let link = r.optional("title-link", style.title_link.as_ref(), Escape::Plain);
    let mut context: Vec<Value> = Vec::new();
    if !footer.trim().is_empty() {
        context.push(json!({"type": "mrkdwn", "text": footer}));
    }
    if let Some(link) = link {
        // `|` and `>` would end Slack's link sequence early.
        let link = link.replace('|', "%7C").replace('>', "%3E");
        context.push(json!({"type": "mrkdwn", "text": format!("<{link}|Open>")}));
    }

    // Fields give way first when the blocks would pass Slack's 50.
    let room = limits::BLOCKS - blocks.len() - usize::from(!context.is_empty()) - marks.len();
    if field_blocks.len() > room {
        let cut = field_blocks.len() - (room - 1);
        field_blocks.truncate(room - 1);
        r.warn(cut_warning("fields"));
        field_blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("… [{cut} more blocks of fields cut by slack-alert-handler: Slack takes {} blocks]", limits::BLOCKS)}]}));
    }
    blocks.extend(field_blocks);
    if !context.is_empty() {
        blocks.push(json!({"type": "context", "elements": context}));
    }
    if blocks.is_empty() {
        blocks.push(section(r.event.level.as_str()));
    }
    blocks.extend(marks);

    let lead = match r.optional("pretext", style.pretext.as_ref(), Escape::Mrkdwn) {
        Some(pretext) => pretext,
        None => {
            let title = r.line("title", style.title.as_ref(), &d.title, Escape::Mrkdwn);
            if !title.is_empty() {
                title
            } else if !text.trim().is_empty() {
                text
            } else {
                r.event.level.as_str().to_string()
            }
        }
    };
    let top = if mentions.is_empty() {
        lead
    } else {
        format!("{mentions} {lead}")
    };
    let top = r.fit_text(top);
    let attachment = Attachment {
        fallback: top.clone(),
        color: r.color(style),
        blocks,
        ..Attachment::default()
    };
    (attachment, top)
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// A field as mrkdwn: the title in bold over the value.
fn field_text(f: &Field) -> String {
    match (f.title.is_empty(), f.value.is_empty()) {
        (true, _) => f.value.clone(),
        (false, true) => format!("*{}*", f.title),
        (false, false) => format!("*{}*\n{}", f.title, f.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;
    use serde_json::{json, Value};

    fn ws() -> Workspace {
        Workspace::for_tests()
    }

    /// `event` rendered with `style`, no handler or host options.
    fn plain_message(style: &Style, event: &AlertEvent) -> Rendered {
        message(
            &ws(),
            &HandlerOptions::default(),
            &HostOptions::default(),
            style,
            event,
        )
    }

    fn kapacitor(w: &Workspace, o: &HandlerOptions, text: &str, level: Level) -> Rendered {
        message(
            w,
            o,
            &HostOptions::default(),
            &w.style.merged(&o.style),
            &AlertEvent::with_message(text, level),
        )
    }

    /// The body as JSON, after checking it against Slack's limits.
    fn body(m: &Message) -> Value {
        let v = serde_json::to_value(m).unwrap();
        limits::check(&v).unwrap();
        v
    }

    fn styled(pairs: &[(&str, &str)]) -> Style {
        let mut s = Style::default();
        for (k, v) in pairs {
            s.set(k, v, Template::compile).unwrap();
        }
        s
    }

    fn event() -> AlertEvent {
        let mut e = AlertEvent::with_message("CPU is <!channel> & high", Level::Critical);
        e.id = "cpu:host=web01".into();
        e.task_name = "cpu_alert".into();
        e.tags = vec![
            ("host".into(), "web01".into()),
            ("dc".into(), "<eu>".into()),
        ];
        e.time = (1_764_181_316, 0);
        e
    }

    #[test]
    fn kapacitor_oracle_payload() {
        // One section, username kapacitor, option channel #test, CRITICAL.
        let w = Workspace {
            username: "kapacitor".into(),
            channel: String::new(),
            ..ws()
        };
        let o = HandlerOptions {
            channel: "#test".into(),
            ..Default::default()
        };
        let r = kapacitor(&w, &o, "message", Level::Critical);
        assert_eq!(
            body(&r.message),
            json!({"attachments":[{"fallback":"message","color":"danger","text":"message","mrkdwn_in":["text"]}],
                   "channel":"#test","icon_emoji":"","text":"","username":"kapacitor"})
        );
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn keys_are_written_in_gos_sorted_order() {
        let m = kapacitor(&ws(), &HandlerOptions::default(), "m", Level::Ok).message;
        let s = String::from_utf8(payload::Request::new(&ws(), &m).body).unwrap();
        assert_eq!(
            s,
            r##"{"attachments":[{"fallback":"m","color":"good","text":"m","mrkdwn_in":["text"]}],"channel":"#alerts","icon_emoji":"","text":"","username":"AlertBot"}"##
        );
    }

    #[test]
    fn options_override_and_empty_options_fall_back() {
        let w = Workspace {
            icon_emoji: ":ws:".into(),
            ..ws()
        };
        let o = HandlerOptions {
            channel: String::new(),
            username: "Other".into(),
            icon_emoji: ":fire:".into(),
            ..Default::default()
        };
        let m = kapacitor(&w, &o, "x", Level::Warning).message;
        assert_eq!(
            (
                m.channel.as_str(),
                m.username.as_str(),
                m.icon_emoji.as_str()
            ),
            ("#alerts", "Other", ":fire:")
        );
        assert_eq!(m.attachments[0].color, "warning");
        let m = kapacitor(&w, &HandlerOptions::default(), "x", Level::Info).message;
        assert_eq!(m.icon_emoji, ":ws:");
    }

    #[test]
    fn kapacitors_layout_does_no_slack_escaping() {
        let m = kapacitor(
            &ws(),
            &HandlerOptions::default(),
            "a < b & c > d",
            Level::Critical,
        );
        assert_eq!(
            m.message.attachments[0].text.as_deref(),
            Some("a < b & c > d")
        );
    }

    #[test]
    fn a_forty_thousand_character_message_is_kept_whole() {
        let text = "x".repeat(40_000);
        let r = kapacitor(&ws(), &HandlerOptions::default(), &text, Level::Critical);
        assert_eq!(
            r.message.attachments[0].text.as_ref().unwrap().len(),
            40_000
        );
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn a_longer_message_is_cut_with_a_visible_marker_and_a_warning() {
        // Multi-byte characters: the cut must fall on a character boundary.
        let text = "é🔥".repeat(500_000);
        let r = kapacitor(&ws(), &HandlerOptions::default(), &text, Level::Critical);
        let sent = r.message.attachments[0].text.clone().unwrap();
        assert_eq!(sent.chars().count(), payload::MAX_TEXT_CHARS);
        assert!(sent.ends_with(
            "… [message truncated by slack-alert-handler: it had 1000000 characters, Slack takes 40000]"
        ));
        assert!(text.starts_with(sent.split('\n').next().unwrap()));
        assert_eq!(r.message.attachments[0].fallback, sent);
        assert_eq!(r.warnings, [payload::TRUNCATED_WARNING]);
    }

    #[test]
    fn a_cut_that_keeps_the_byte_length_still_warns() {
        // 40,002 ASCII characters cut to 40,000 characters that hold a
        // three-byte `…`: the same number of bytes as the original.
        let text = "x".repeat(40_002);
        let r = kapacitor(&ws(), &HandlerOptions::default(), &text, Level::Critical);
        let sent = r.message.attachments[0].text.clone().unwrap();
        assert_eq!(sent.len(), text.len());
        assert_eq!(r.warnings, [payload::TRUNCATED_WARNING]);
    }

    #[test]
    fn kapacitors_layout_takes_text_color_mentions_and_icon_url() {
        let style = styled(&[
            ("text", "*{{level}}* {{message}}"),
            ("color", "#ff0000"),
            ("mention", "here,U123"),
            ("icon-url", "https://x.test/i.png"),
            ("link-names", "true"),
        ]);
        let r = plain_message(&style, &event());
        assert_eq!(
            body(&r.message),
            json!({"attachments":[{"fallback":"*CRITICAL* CPU is &lt;!channel&gt; &amp; high","color":"#ff0000",
                    "text":"*CRITICAL* CPU is &lt;!channel&gt; &amp; high","mrkdwn_in":["text"]}],
                   "channel":"#alerts","icon_emoji":"","icon_url":"https://x.test/i.png","link_names":true,
                   "text":"<!here> <@U123>","username":"AlertBot"})
        );
    }

    #[test]
    fn mentions_only_at_their_levels() {
        let style = styled(&[("mention", "channel"), ("mention-levels", "WARNING")]);
        let mut e = event();
        let at = |e: &AlertEvent| plain_message(&style, e).message.text;
        assert_eq!(at(&e), "");
        e.level = Level::Warning;
        assert_eq!(at(&e), "<!channel>");
    }

    #[test]
    fn attachment_layout_golden() {
        let style = styled(&[
            ("layout", "attachment"),
            (
                "title-link",
                "https://grafana.test/d?var-host={{tags.host}}&x=1",
            ),
        ]);
        let r = plain_message(&style, &event());
        assert_eq!(
            body(&r.message),
            json!({"attachments":[{"fallback":":red_circle: CRITICAL: cpu:host=web01","color":"danger",
                "title":":red_circle: CRITICAL: cpu:host=web01","title_link":"https://grafana.test/d?var-host=web01&x=1",
                "text":"CPU is &lt;!channel&gt; &amp; high",
                "fields":[{"title":"host","value":"web01","short":true},{"title":"dc","value":"&lt;eu&gt;","short":true}],
                "footer":"cpu_alert · 2025-11-26T18:21:56Z","mrkdwn_in":["text","pretext","fields"]}],
                "channel":"#alerts","icon_emoji":"","text":"","username":"AlertBot"})
        );
    }

    #[test]
    fn blocks_layout_golden() {
        let style = styled(&[("layout", "blocks"), ("mention", "here")]);
        let r = plain_message(&style, &event());
        assert_eq!(
            body(&r.message),
            json!({"attachments":[{"fallback":"<!here> :red_circle: CRITICAL: cpu:host=web01","color":"danger","blocks":[
                {"type":"header","text":{"type":"plain_text","text":":red_circle: CRITICAL: cpu:host=web01","emoji":true}},
                {"type":"section","text":{"type":"mrkdwn","text":"CPU is &lt;!channel&gt; &amp; high"}},
                {"type":"section","fields":[{"type":"mrkdwn","text":"*host*\nweb01"},{"type":"mrkdwn","text":"*dc*\n&lt;eu&gt;"}]},
                {"type":"context","elements":[{"type":"mrkdwn","text":"cpu_alert · 2025-11-26T18:21:56Z"}]}]}],
                "channel":"#alerts","icon_emoji":"","text":"<!here> :red_circle: CRITICAL: cpu:host=web01","username":"AlertBot"})
        );
    }

    #[test]
    fn a_header_shows_alert_data_as_typed() {
        let style = styled(&[("layout", "blocks"), ("title", "{{message}}")]);
        let r = plain_message(&style, &event());
        let b = body(&r.message);
        assert_eq!(
            b["attachments"][0]["blocks"][0]["text"]["text"],
            "CPU is <!channel> & high"
        );
        // The top-level text is mrkdwn: escaped there.
        assert_eq!(b["text"], "CPU is &lt;!channel&gt; &amp; high");
    }

    #[test]
    fn a_failing_template_falls_back_and_warns() {
        let style = styled(&[
            ("layout", "blocks"),
            ("title", "{{truncate message \"x\"}}"),
            ("color", "{{emoji name}}"),
        ]);
        let r = plain_message(&style, &event());
        let b = body(&r.message);
        assert_eq!(
            b["attachments"][0]["blocks"][0]["text"]["text"],
            ":red_circle: CRITICAL: cpu:host=web01"
        );
        assert_eq!(b["attachments"][0]["color"], "danger");
        assert_eq!(
            r.warnings,
            [
                "handler_template_failed:title",
                "handler_template_failed:color"
            ]
        );
    }

    #[test]
    fn block_kit_limits_at_the_edge_and_past_it() {
        for (n, cut) in [(150, false), (151, true)] {
            let style = styled(&[("layout", "blocks"), ("title", &"h".repeat(n))]);
            let r = plain_message(&style, &event());
            let h = body(&r.message)["attachments"][0]["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(h.chars().count(), 150);
            assert_eq!(h.ends_with('…'), cut);
            assert_eq!(
                r.warnings.contains(&"handler_truncated_title".to_string()),
                cut,
                "{n}"
            );
        }
        for (n, cut) in [(3000, false), (3001, true)] {
            let mut e = event();
            e.message = "é".repeat(n);
            let style = styled(&[("layout", "blocks")]);
            let r = plain_message(&style, &e);
            let t = body(&r.message)["attachments"][0]["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(t.chars().count(), 3000);
            assert_eq!(
                r.warnings.contains(&"handler_truncated_text".to_string()),
                cut,
                "{n}"
            );
        }
        for (n, cut) in [(300, false), (301, true)] {
            let style = styled(&[("layout", "blocks"), ("footer", &"f".repeat(n))]);
            let r = plain_message(&style, &event());
            assert_eq!(
                r.warnings.contains(&"handler_truncated_footer".to_string()),
                cut,
                "{n}"
            );
        }
    }

    /// `e` in the default Block Kit layout, and its blocks.
    fn blocks_of(e: &AlertEvent) -> (Rendered, Vec<Value>) {
        let r = message(
            &ws(),
            &HandlerOptions::default(),
            &HostOptions::default(),
            &styled(&[("layout", "blocks")]),
            e,
        );
        let blocks = body(&r.message)["attachments"][0]["blocks"]
            .as_array()
            .unwrap()
            .clone();
        (r, blocks)
    }

    #[test]
    fn many_fields_fill_sections_of_ten_and_stop_at_fifty_blocks() {
        let mut e = event();
        e.tags = (0..25)
            .map(|i| (format!("t{i}"), "v".repeat(2100)))
            .collect();
        let (r, blocks) = blocks_of(&e);
        let sections: Vec<usize> = blocks
            .iter()
            .filter_map(|b| b["fields"].as_array().map(Vec::len))
            .collect();
        assert_eq!(sections, [10, 10, 5]);
        let first = blocks[2]["fields"][0]["text"].as_str().unwrap();
        assert_eq!(first.chars().count(), 2000);
        assert!(r.warnings.contains(&"handler_truncated_fields".to_string()));

        e.tags = (0..1000).map(|i| (format!("t{i}"), "v".into())).collect();
        let (_, blocks) = blocks_of(&e);
        assert_eq!(blocks.len(), 50);
        assert!(blocks[48].to_string().contains("more blocks of fields cut"));
        assert_eq!(blocks[49]["type"], "context");
    }

    #[test]
    fn attachment_title_and_footer_limits() {
        for (n, cut) in [(1024, false), (1025, true)] {
            let style = styled(&[
                ("layout", "attachment"),
                ("title", &"t".repeat(n)),
                ("footer", &"f".repeat(n.min(301))),
            ]);
            let r = plain_message(&style, &event());
            let a = &r.message.attachments[0];
            assert_eq!(a.title.as_ref().unwrap().chars().count(), 1024);
            assert_eq!(a.footer.as_ref().unwrap().chars().count(), 300);
            assert_eq!(
                r.warnings.contains(&"handler_truncated_title".to_string()),
                cut
            );
        }
    }

    #[test]
    fn configured_fields_are_templates() {
        let mut style = styled(&[("layout", "attachment")]);
        style.set("fields", r#"[{"title":"Host","value":"`{{tags.host}}`","short":true},{"title":"Empty","value":"{{tags.none}}"}]"#, Template::compile).unwrap();
        let r = plain_message(&style, &event());
        assert_eq!(
            r.message.attachments[0].fields,
            [
                Field {
                    title: "Host".into(),
                    value: "`web01`".into(),
                    short: true
                },
                Field {
                    title: "Empty".into(),
                    value: String::new(),
                    short: false
                }
            ]
        );
    }

    #[test]
    fn every_default_template_compiles() {
        let d = defaults();
        assert!(!d.title.source().is_empty() && !d.footer.source().is_empty());
        assert_eq!(d.text.source(), "{{message}}");
    }
}
