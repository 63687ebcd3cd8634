//! An HTML page that draws a Slack request body the way Slack draws the
//! message: who posts it, the top-level text, each attachment with its
//! colour bar (pretext, title and link, text, fields side by side when
//! short, footer), Block Kit (header, section and its fields, context,
//! divider), mentions and links as Slack shows them, and mrkdwn (bold,
//! italics, strike, code). Self-contained: inline CSS, no script, nothing
//! fetched. Anything it cannot draw is shown as such. It reads only the
//! body: no URL, no header, so no token and no webhook path.

use serde_json::Value;

/// Slack's colours for the named attachment colours.
fn css_color(color: &str) -> String {
    match color {
        "good" => "#2eb886".to_string(),
        "warning" => "#daa038".to_string(),
        "danger" => "#a30200".to_string(),
        c if c.starts_with('#')
            && (c.len() == 7 || c.len() == 4)
            && c[1..].chars().all(|ch| ch.is_ascii_hexdigit()) =>
        {
            c.to_string()
        }
        _ => "#dddddd".to_string(),
    }
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Slack's three entities back to characters.
fn unescape_slack(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A few emoji by name, as Slack shows them; others stay `:name:`.
fn emoji(text: &str) -> String {
    const KNOWN: [(&str, &str); 12] = [
        (":red_circle:", "🔴"),
        (":large_green_circle:", "🟢"),
        (":large_yellow_circle:", "🟡"),
        (":large_blue_circle:", "🔵"),
        (":white_check_mark:", "✅"),
        (":warning:", "⚠️"),
        (":fire:", "🔥"),
        (":exclamation:", "❗"),
        (":information_source:", "ℹ️"),
        (":rotating_light:", "🚨"),
        (":bell:", "🔔"),
        (":x:", "❌"),
    ];
    let mut out = text.to_string();
    for (name, glyph) in KNOWN {
        out = out.replace(name, glyph);
    }
    out
}

/// Plain text (`plain_text` objects, usernames): escaped, emoji drawn.
fn plain(text: &str) -> String {
    emoji(&escape(text))
}

/// mrkdwn as Slack draws it: `<…>` control sequences (links, mentions,
/// channels, user groups), `*bold*`, `_italic_`, `~strike~`, `` `code` ``,
/// ```` ```pre``` ````, line breaks.
pub fn mrkdwn(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&inline(&rest[..open]));
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            out.push_str(&inline(&rest[open..]));
            rest = "";
            break;
        };
        out.push_str(&control(&after[..close]));
        rest = &after[close + 1..];
    }
    out.push_str(&inline(rest));
    out.replace('\n', "<br>")
}

/// One `<…>` sequence.
fn control(inside: &str) -> String {
    let (target, label) = match inside.split_once('|') {
        Some((t, l)) => (t, Some(l)),
        None => (inside, None),
    };
    let mention = |text: String| format!("<span class=\"mention\">{}</span>", escape(&text));
    if let Some(special) = target.strip_prefix('!') {
        let name = special.split('^').next().unwrap_or(special);
        return match name {
            "here" | "channel" | "everyone" => mention(format!("@{name}")),
            "subteam" => mention(format!("@{}", label.unwrap_or("team"))),
            "date" => escape(&unescape_slack(label.unwrap_or(special))),
            _ => mention(format!("@{name}")),
        };
    }
    if let Some(user) = target.strip_prefix('@') {
        return mention(format!("@{}", label.unwrap_or(user)));
    }
    if let Some(channel) = target.strip_prefix('#') {
        return mention(format!("#{}", label.unwrap_or(channel)));
    }
    let url = unescape_slack(target);
    let shown = unescape_slack(label.unwrap_or(target));
    format!("<a href=\"{}\">{}</a>", escape(&url), escape(&shown))
}

/// Formatting within text that has no `<…>` sequence.
fn inline(text: &str) -> String {
    // Code first: nothing inside it is formatted.
    let mut out = String::new();
    let mut parts = text.split("```");
    let mut in_pre = false;
    if let Some(first) = parts.next() {
        out.push_str(&spans(first));
    }
    for part in parts {
        in_pre = !in_pre;
        if in_pre {
            out.push_str("<pre>");
            out.push_str(&escape(&unescape_slack(part)));
            out.push_str("</pre>");
        } else {
            out.push_str(&spans(part));
        }
    }
    out
}

fn spans(text: &str) -> String {
    let mut out = String::new();
    for (n, part) in text.split('`').enumerate() {
        if n % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&escape(&unescape_slack(part)));
            out.push_str("</code>");
        } else {
            out.push_str(&styles(&emoji(&escape(&unescape_slack(part)))));
        }
    }
    out
}

/// `*bold*`, `_italic_`, `~strike~` on escaped text.
fn styles(text: &str) -> String {
    let mut out = text.to_string();
    for (mark, tag) in [('*', "b"), ('_', "i"), ('~', "s")] {
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(start) = rest.find(mark) {
            let after = &rest[start + 1..];
            match after.find(mark) {
                Some(end) if end > 0 && !after[..end].contains('\n') => {
                    result.push_str(&rest[..start]);
                    result.push_str(&format!("<{tag}>{}</{tag}>", &after[..end]));
                    rest = &after[end + 1..];
                }
                _ => {
                    result.push_str(&rest[..=start]);
                    rest = after;
                }
            }
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// A text object of Block Kit (`mrkdwn` or `plain_text`).
fn text_object(value: &Value) -> String {
    let text = value["text"].as_str().unwrap_or_default();
    match value["type"].as_str() {
        Some("plain_text") => plain(text),
        _ => mrkdwn(text),
    }
}

fn unsupported(what: &str) -> String {
    format!(
        "<div class=\"unsupported\">not drawn here: {}</div>",
        escape(what)
    )
}

fn block(b: &Value) -> String {
    match b["type"].as_str().unwrap_or_default() {
        "header" => format!("<div class=\"header\">{}</div>", text_object(&b["text"])),
        "section" => {
            let mut html = String::from("<div class=\"section\">");
            if b.get("text").is_some() {
                html.push_str(&format!(
                    "<div class=\"text\">{}</div>",
                    text_object(&b["text"])
                ));
            }
            if let Some(fields) = b["fields"].as_array() {
                html.push_str("<div class=\"fields\">");
                for f in fields {
                    html.push_str(&format!(
                        "<div class=\"field short\">{}</div>",
                        text_object(f)
                    ));
                }
                html.push_str("</div>");
            }
            if b.get("accessory").is_some() {
                html.push_str(&unsupported("a section accessory"));
            }
            html.push_str("</div>");
            html
        }
        "context" => {
            let elements: Vec<String> = b["elements"]
                .as_array()
                .map(|els| {
                    els.iter()
                        .map(|e| match e["type"].as_str() {
                            Some("mrkdwn" | "plain_text") => text_object(e),
                            Some(other) => unsupported(&format!("a `{other}` context element")),
                            None => unsupported("a context element without a type"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "<div class=\"context\">{}</div>",
                elements.join("<span class=\"dot\"> · </span>")
            )
        }
        "divider" => "<hr class=\"divider\">".to_string(),
        "actions" => {
            let buttons: Vec<String> = b["elements"]
                .as_array()
                .map(|els| {
                    els.iter()
                        .map(|e| match e["type"].as_str() {
                            Some("button") => {
                                format!("<span class=\"button\">{}</span>", text_object(&e["text"]))
                            }
                            Some(other) => unsupported(&format!("a `{other}` action")),
                            None => unsupported("an action without a type"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("<div class=\"actions\">{}</div>", buttons.concat())
        }
        other => unsupported(&format!("a `{other}` block")),
    }
}

fn attachment(a: &Value) -> String {
    const DRAWN: [&str; 10] = [
        "fallback",
        "color",
        "pretext",
        "title",
        "title_link",
        "text",
        "fields",
        "footer",
        "blocks",
        "mrkdwn_in",
    ];
    let in_mrkdwn = |part: &str| {
        a["mrkdwn_in"]
            .as_array()
            .is_some_and(|m| m.iter().any(|v| v == part))
    };
    let draw = |part: &str, text: &str| {
        if in_mrkdwn(part) {
            mrkdwn(text)
        } else {
            plain(&unescape_slack(text))
        }
    };
    let mut html = String::new();
    if let Some(pretext) = a["pretext"].as_str() {
        html.push_str(&format!(
            "<div class=\"pretext\">{}</div>",
            draw("pretext", pretext)
        ));
    }
    let color = css_color(a["color"].as_str().unwrap_or_default());
    html.push_str(&format!(
        "<div class=\"attachment\" style=\"border-left-color: {color}\" data-color=\"{color}\">"
    ));
    if let Some(title) = a["title"].as_str() {
        let title = plain(&unescape_slack(title));
        match a["title_link"].as_str() {
            Some(link) => html.push_str(&format!(
                "<div class=\"title\"><a href=\"{}\">{title}</a></div>",
                escape(link)
            )),
            None => html.push_str(&format!("<div class=\"title\">{title}</div>")),
        }
    }
    if let Some(text) = a["text"].as_str() {
        html.push_str(&format!("<div class=\"text\">{}</div>", draw("text", text)));
    }
    if let Some(fields) = a["fields"].as_array() {
        html.push_str("<div class=\"fields\">");
        for f in fields {
            let short = f["short"].as_bool().unwrap_or(false);
            html.push_str(&format!(
                "<div class=\"field{}\"><div class=\"field-title\">{}</div><div>{}</div></div>",
                if short { " short" } else { "" },
                plain(&unescape_slack(f["title"].as_str().unwrap_or_default())),
                draw("fields", f["value"].as_str().unwrap_or_default())
            ));
        }
        html.push_str("</div>");
    }
    if let Some(blocks) = a["blocks"].as_array() {
        for b in blocks {
            html.push_str(&block(b));
        }
    }
    if let Some(footer) = a["footer"].as_str() {
        html.push_str(&format!(
            "<div class=\"footer\">{}</div>",
            draw("footer", footer)
        ));
    }
    if let Some(map) = a.as_object() {
        for key in map.keys().filter(|k| !DRAWN.contains(&k.as_str())) {
            html.push_str(&unsupported(&format!("the attachment's `{key}`")));
        }
    }
    html.push_str("</div>");
    html
}

const STYLE: &str = "body{font-family:Lato,'Helvetica Neue',Helvetica,Arial,sans-serif;font-size:15px;color:#1d1c1d;background:#fff;margin:0;padding:16px;max-width:760px}\
.meta{color:#616061;font-size:12px;margin-bottom:12px}\
.message{display:flex;gap:8px}\
.avatar{width:36px;height:36px;border-radius:4px;background:#e8e8e8;display:flex;align-items:center;justify-content:center;font-size:22px;flex:none}\
.body{flex:1;min-width:0}\
.username{font-weight:900}\
.app{background:#e8e8e8;color:#616061;font-size:10px;font-weight:700;padding:1px 3px;border-radius:2px;margin-left:4px}\
.toptext{margin:2px 0 4px}\
.attachment{border-left:4px solid #ddd;border-radius:4px 0 0 4px;padding:4px 0 4px 12px;margin:4px 0}\
.pretext{margin-top:4px}\
.title{font-weight:700}\
.title a{color:#1264a3;text-decoration:none}\
.fields{display:flex;flex-wrap:wrap;margin-top:4px}\
.field{width:100%;margin-bottom:6px}\
.field.short{width:50%}\
.field-title{font-weight:700}\
.footer,.context{color:#616061;font-size:12px;margin-top:4px}\
.actions{margin-top:8px}.button{display:inline-block;border:1px solid #c7c7c7;border-radius:4px;padding:3px 12px;margin-right:8px;font-weight:bold;font-size:13px}\
.header{font-weight:900;font-size:18px;margin:4px 0}\
.section{margin:4px 0}\
.divider{border:none;border-top:1px solid #ddd;margin:8px 0}\
.mention{background:#fff3c4;color:#1264a3;border-radius:3px;padding:0 2px}\
a{color:#1264a3}\
code{font-family:Monaco,Menlo,Consolas,monospace;font-size:12px;color:#e01e5a;background:#f8f8f8;border:1px solid #e8e8e8;border-radius:3px;padding:0 3px}\
pre{font-family:Monaco,Menlo,Consolas,monospace;font-size:12px;background:#f8f8f8;border:1px solid #e8e8e8;border-radius:4px;padding:8px;white-space:pre-wrap}\
.unsupported{color:#a30200;font-size:12px;border:1px dashed #a30200;padding:2px 4px;margin:4px 0}";

/// The page for a request body (`chat.postMessage`, `chat.update` or a
/// webhook's), titled `title`.
pub fn page(title: &str, body: &str) -> String {
    let message: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => {
            return wrap(
                title,
                &unsupported(&format!("a body that is not JSON ({e})")),
            )
        }
    };
    let username = message["username"].as_str().filter(|u| !u.is_empty());
    let icon = match (
        message["icon_emoji"].as_str().filter(|e| !e.is_empty()),
        message["icon_url"].as_str(),
    ) {
        (Some(e), _) => emoji(&escape(e)),
        // An image would be fetched: drawn as a placeholder.
        (None, Some(_)) => "🖼".to_string(),
        (None, None) => "🤖".to_string(),
    };
    let mut inner = String::new();
    let target = match (message["channel"].as_str(), message["ts"].as_str()) {
        (Some(channel), Some(ts)) => format!("chat.update of {ts} in {channel}"),
        (Some(channel), None) if !channel.is_empty() => format!("to {channel}"),
        _ => "to the webhook's channel".to_string(),
    };
    let mut meta = escape(&target);
    if let Some(thread) = message["thread_ts"].as_str() {
        meta.push_str(&format!(" · a reply in the thread of {}", escape(thread)));
        if message["reply_broadcast"].as_bool() == Some(true) {
            meta.push_str(" · also sent to the channel");
        }
    }
    inner.push_str(&format!("<div class=\"meta\">{meta}</div>"));
    inner.push_str("<div class=\"message\">");
    inner.push_str(&format!(
        "<div class=\"avatar\">{icon}</div><div class=\"body\">"
    ));
    inner.push_str(&format!(
        "<div><span class=\"username\">{}</span><span class=\"app\">APP</span></div>",
        plain(username.unwrap_or("Kapacitor"))
    ));
    if let Some(text) = message["text"].as_str().filter(|t| !t.is_empty()) {
        inner.push_str(&format!("<div class=\"toptext\">{}</div>", mrkdwn(text)));
    }
    for a in message["attachments"].as_array().into_iter().flatten() {
        inner.push_str(&attachment(a));
    }
    for b in message["blocks"].as_array().into_iter().flatten() {
        inner.push_str(&block(b));
    }
    const DRAWN: [&str; 12] = [
        "attachments",
        "blocks",
        "channel",
        "icon_emoji",
        "icon_url",
        "link_names",
        "reply_broadcast",
        "text",
        "thread_ts",
        "ts",
        "username",
        "mrkdwn",
    ];
    if let Some(map) = message.as_object() {
        for key in map.keys().filter(|k| !DRAWN.contains(&k.as_str())) {
            inner.push_str(&unsupported(&format!("the message's `{key}`")));
        }
    }
    inner.push_str("</div></div>");
    wrap(title, &inner)
}

fn wrap(title: &str, inner: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>{inner}</body></html>\n",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrkdwn_draws_links_mentions_and_styles_and_keeps_escaped_text_as_text() {
        assert_eq!(
            mrkdwn("<https://g.example/d?a=1&amp;b=2|Open> for <!here> and <@U1|ann> in <#C1|ops>"),
            "<a href=\"https://g.example/d?a=1&amp;b=2\">Open</a> for <span class=\"mention\">@here</span> and <span class=\"mention\">@ann</span> in <span class=\"mention\">#ops</span>"
        );
        assert_eq!(
            mrkdwn("*bold* _it_ ~gone~ `a*b*c` x*y"),
            "<b>bold</b> <i>it</i> <s>gone</s> <code>a*b*c</code> x*y"
        );
        // An alert that says `<!channel>` reaches Slack escaped: drawn as text.
        assert_eq!(
            mrkdwn("&lt;!channel&gt; &amp; co"),
            "&lt;!channel&gt; &amp; co"
        );
        assert_eq!(mrkdwn("a\nb"), "a<br>b");
        assert_eq!(mrkdwn("```x &lt;y&gt;```"), "<pre>x &lt;y&gt;</pre>");
    }

    #[test]
    fn the_golden_requests_draw_everything_they_hold() {
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden");
        for name in ["kapacitor", "attachment", "blocks"] {
            for state in ["firing", "recovered"] {
                let body =
                    std::fs::read_to_string(golden.join(format!("{name}-{state}.json"))).unwrap();
                let html = page(name, &body);
                assert!(!html.contains("not drawn here"), "{name}-{state}: {html}");
                assert!(!html.contains("<script"), "no script");
                assert!(!html.contains("src="), "nothing fetched");
            }
        }
    }

    #[test]
    fn what_cannot_be_drawn_is_shown_as_such() {
        let html = page(
            "x",
            r##"{"channel":"#a","text":"","attachments":[{"color":"good","actions":[1]}],"blocks":[{"type":"image"}],"unfurl_links":true}"##,
        );
        for what in [
            "the attachment's `actions`",
            "a `image` block",
            "the message's `unfurl_links`",
        ] {
            assert!(
                html.contains(&format!("not drawn here: {}", escape(what))),
                "{what}: {html}"
            );
        }
        assert!(page("x", "not json").contains("not JSON"));
    }

    proptest::proptest! {
        /// Whatever text an alert carries, the page is drawn: never a panic,
        /// never a raw `<` from the text.
        #[test]
        fn any_text_is_drawn_without_panicking(text in ".{0,80}") {
            let html = mrkdwn(&text);
            proptest::prop_assert!(!html.contains("<script"));
            let body = serde_json::json!({
                "channel": "#a", "text": text, "username": text,
                "attachments": [{"color": text, "title": text, "text": text,
                    "fields": [{"title": text, "value": text, "short": true}],
                    "mrkdwn_in": ["text", "fields"]}],
            });
            let _ = page(&text, &body.to_string());
        }
    }
}
