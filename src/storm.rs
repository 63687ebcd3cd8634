//! A storm message: when more alerts wait for one channel than Slack's pace
//! lets through promptly, the host shows them in one message it edits as
//! they fire and recover. This module draws that message from a plain
//! [`Storm`] in the workspace's layout: a top-level text for
//! notifications, counts by level, one line per alert, the alerts'
//! buttons. It always stays within Slack's limits: lines that do not fit
//! are left out whole and counted in "and N more", never cut in the middle.

use serde_json::{json, Value};

use crate::buttons;
use crate::config::Workspace;
use crate::event::{AlertEvent, Level};
use crate::options::{HandlerOptions, HostOptions};
use crate::payload::{self, limits, Attachment, Message, Update};
use crate::render::template_warning;
use crate::style::{Layout, Style};
use crate::template::{self, cut_with_ellipsis, escape_mrkdwn, level_emoji, Escape};
use crate::timefmt;

/// What a storm message shows, as of `now` (the WIT `storm`). Times are
/// Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Storm {
    /// What its buttons carry (unless the host's `alert-key` option says
    /// otherwise), naming the storm when clicked.
    pub key: String,
    pub started: i64,
    pub now: i64,
    /// The channel is calm again: the message says the storm is over.
    pub closed: bool,
    /// The labels that name an Alertmanager group; shown once.
    pub group_labels: Vec<(String, String)>,
    /// The labels every alert of the group shares: left out of each line.
    pub common_labels: Vec<(String, String)>,
    /// How many alerts fire now, by level.
    pub firing: Vec<(Level, u32)>,
    pub resolved: u32,
    pub total: u32,
    /// Newest change first.
    pub lines: Vec<StormLine>,
    /// Alerts left out after `lines`.
    pub more: u32,
}

/// One alert's line.
#[derive(Debug, Clone, PartialEq)]
pub struct StormLine {
    /// The alert's latest event (a recovery has level `OK`).
    pub event: AlertEvent,
    /// When it began firing.
    pub since: i64,
    /// Until when someone silenced it, while they have.
    pub silenced_until: Option<i64>,
}

/// A storm message drawn, and the handler's own warnings about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    /// The message as posted: its text carries the mentions when a line
    /// calls for them.
    pub message: Message,
    /// The top-level text of an edit: the same without the mentions (Slack
    /// notifies no one of an edit; the text stays as it was).
    pub quiet_text: String,
    pub warnings: Vec<String>,
}

impl Drawn {
    /// The same content as a chat.update of message `ts` in `channel_id`.
    pub fn as_update(&self, channel_id: &str, ts: &str) -> Update {
        Update {
            attachments: self.message.attachments.clone(),
            channel: channel_id.to_string(),
            link_names: self.message.link_names,
            text: self.quiet_text.clone(),
            ts: ts.to_string(),
        }
    }
}

/// The most characters of a line's name (escaped from a template, as
/// given otherwise): any line then fits a section with room to spare.
const NAME: usize = 300;

/// Room kept for the "and N more" line in a text layout.
const MORE_LINE: usize = 40;

/// The storm message for `storm`: channel, username and icon as an alert's
/// (option, else section), in the layout `style` chooses (the section's
/// merged with the options').
pub fn message(
    ws: &Workspace,
    options: &HandlerOptions,
    host: &HostOptions,
    style: &Style,
    storm: &Storm,
) -> Drawn {
    let pick =
        |option: &str, section: &str| if option.is_empty() { section } else { option }.to_string();
    let channel = pick(&options.channel, &ws.channel);
    let listed = &storm.lines[..storm.lines.len().min(style.storm_list() as usize)];
    let mut d = Draw {
        ws: &ws.id,
        channel: &channel,
        style,
        common: &storm.common_labels,
        now: storm.now,
        warnings: Vec::new(),
    };
    let lines: Vec<String> = listed.iter().map(|l| d.line(l)).collect();
    let more = storm
        .more
        .saturating_add(u32::try_from(storm.lines.len() - listed.len()).unwrap_or(u32::MAX));
    let mentions = match &style.mention {
        Some(list)
            if listed
                .iter()
                .any(|l| l.silenced_until.is_none() && style.mentions_at(l.event.level)) =>
        {
            list.join(" ")
        }
        _ => String::new(),
    };
    let quiet = d.fit_text(escape_mrkdwn(&summary(storm, &channel)));
    let head = head(storm);
    // A storm that is over with nothing firing has nothing left to act on.
    let marks = if storm.closed && firing(storm) == 0 {
        Vec::new()
    } else {
        let key = if host.key.is_empty() {
            &storm.key
        } else {
            &host.key
        };
        let (marks, dropped) = buttons::for_value(style, host, key);
        if let Some(warning) = dropped {
            d.warn(warning.to_string());
        }
        marks
    };
    let color = worst(storm).map_or("good", Level::color).to_string();

    let mut attachments = Vec::with_capacity(2);
    let quiet = match style.layout() {
        Layout::Kapacitor => listing(
            format!("{quiet}\n{head}"),
            &lines,
            mentions.chars().count() + 1,
            more,
        ),
        Layout::Attachment => {
            attachments.push(Attachment {
                fallback: quiet.clone(),
                color: color.clone(),
                text: Some(listing(head, &lines, 0, more)),
                mrkdwn_in: vec!["text"],
                ..Attachment::default()
            });
            // An attachment with blocks loses its text: the buttons go in a
            // second attachment of the same colour, as on an alert's.
            if !marks.is_empty() {
                attachments.push(Attachment {
                    color: color.clone(),
                    blocks: marks,
                    ..Attachment::default()
                });
            }
            quiet
        }
        Layout::Blocks => {
            let header = cut_with_ellipsis(&summary(storm, &channel), limits::HEADER);
            let mut blocks = vec![
                json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
                context(&head),
            ];
            // Lines give way when the blocks would pass Slack's 50: the
            // header, the counts and the buttons stay.
            let room = limits::BLOCKS - blocks.len() - marks.len();
            let mut packed = pack(&lines, room);
            let left = |taken: usize| more.saturating_add((lines.len() - taken) as u32);
            if left(packed.1) > 0 && packed.0.len() == room {
                packed = pack(&lines, room - 1);
            }
            blocks.extend(packed.0.iter().map(|text| section(text)));
            if left(packed.1) > 0 {
                blocks.push(context(&and_more(left(packed.1))));
            }
            blocks.extend(marks);
            attachments.push(Attachment {
                fallback: quiet.clone(),
                color: color.clone(),
                blocks,
                ..Attachment::default()
            });
            quiet
        }
    };
    let quiet = d.fit_text(quiet);
    let text = if mentions.is_empty() {
        quiet.clone()
    } else {
        d.fit_text(format!("{mentions} {quiet}"))
    };
    let warnings = d.warnings;
    Drawn {
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
        quiet_text: quiet,
        warnings,
    }
}

/// Draws lines for one storm, collecting warnings.
struct Draw<'a> {
    ws: &'a str,
    channel: &'a str,
    style: &'a Style,
    /// The labels every alert shares, left out of each line.
    common: &'a [(String, String)],
    now: i64,
    warnings: Vec<String>,
}

impl Draw<'_> {
    fn warn(&mut self, warning: String) {
        payload::warn_once(&mut self.warnings, warning);
    }

    /// A message text within Slack's 40,000 characters.
    fn fit_text(&mut self, text: String) -> String {
        payload::fit_text(text, &mut self.warnings)
    }

    /// One alert's line, as mrkdwn: `:red_circle: *CRITICAL* name · firing
    /// 5m`, a recovery struck through.
    fn line(&mut self, line: &StormLine) -> String {
        let e = &line.event;
        let name = self.name(e);
        if e.level == Level::Ok {
            let after = span(e.time.0.saturating_sub(line.since));
            return format!(
                "{} OK ~{name}~ · resolved after {after}",
                level_emoji(Level::Ok)
            );
        }
        let mut text = format!(
            "{} *{}* {name} · firing {}",
            level_emoji(e.level),
            e.level.as_str(),
            span(self.now.saturating_sub(line.since))
        );
        if let Some(until) = line.silenced_until {
            text.push_str(" · silenced until ");
            text.push_str(&clock(until, self.now));
        }
        text
    }

    /// The alert's name, escaped: the `title` template where the user set
    /// one, else an Alertmanager alert's own labels (those not in
    /// the storm's common labels, `alertname` first), else its id.
    fn name(&mut self, e: &AlertEvent) -> String {
        if let Some(title) = &self.style.title {
            let context = template::context(e, self.ws, self.channel);
            match title.render(&context, Escape::Mrkdwn) {
                Ok(text) => {
                    let text = one_line(&text);
                    if !text.is_empty() {
                        return cut_escaped(&text, NAME);
                    }
                }
                Err(_) => self.warn(template_warning("title")),
            }
        }
        let labels = e
            .context
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("labels.")?, v.as_str())));
        let own = labels
            .filter(|(k, v)| !self.common.iter().any(|(ck, cv)| ck == k && cv == v))
            .map(|(k, v)| format!("{k}={v}"));
        let (first, rest): (Vec<String>, Vec<String>) =
            own.partition(|kv| kv.starts_with("alertname="));
        let shown = [first, rest].concat().join(" ");
        let raw = match (shown.is_empty(), e.id.is_empty()) {
            (false, _) => shown,
            (true, false) => e.id.clone(),
            (true, true) => "(no id)".to_string(),
        };
        escape_mrkdwn(&cut_with_ellipsis(&one_line(&raw), NAME))
    }
}

/// The top-level text, unescaped: `Storm in #ops: 40 alerts firing (12
/// CRITICAL, 28 WARNING)`, or `Storm over in #ops: 40 alerts, 36
/// resolved, 4 still firing`.
fn summary(storm: &Storm, channel: &str) -> String {
    let at = if channel.is_empty() {
        String::new()
    } else {
        format!(" in {channel}")
    };
    let firing = firing(storm);
    if storm.closed {
        let mut text = format!(
            "Storm over{at}: {}, {} resolved",
            alerts(storm.total),
            storm.resolved
        );
        if firing > 0 {
            text.push_str(&format!(", {firing} still firing"));
        }
        return text;
    }
    let by_level: Vec<String> = by_level(storm)
        .map(|(level, n)| format!("{n} {level}"))
        .collect();
    let mut text = format!("Storm{at}: {} firing", alerts(firing));
    if !by_level.is_empty() {
        text.push_str(&format!(" ({})", by_level.join(", ")));
    }
    if storm.resolved > 0 {
        text.push_str(&format!(", {} resolved", storm.resolved));
    }
    text
}

/// The line over the alerts, as mrkdwn: the group's labels, the counts
/// by level, when it began.
fn head(storm: &Storm) -> String {
    let mut parts = Vec::new();
    if !storm.group_labels.is_empty() {
        let labels: Vec<String> = storm
            .group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.push(escape_mrkdwn(&cut_with_ellipsis(
            &one_line(&labels.join(" ")),
            NAME,
        )));
    }
    parts.extend(by_level(storm).map(|(level, n)| format!("{} {n} {level}", level_emoji(level))));
    if storm.resolved > 0 {
        parts.push(format!(
            "{} {} resolved",
            level_emoji(Level::Ok),
            storm.resolved
        ));
    }
    parts.push(format!("since {}", clock(storm.started, storm.now)));
    parts.join(" · ")
}

/// The firing counts, the worst level first, levels with none left out.
fn by_level(storm: &Storm) -> impl Iterator<Item = (Level, u32)> + '_ {
    [Level::Critical, Level::Warning, Level::Info]
        .into_iter()
        .map(|level| {
            let n = storm
                .firing
                .iter()
                .filter(|(l, _)| *l == level)
                .fold(0u32, |sum, (_, n)| sum.saturating_add(*n));
            (level, n)
        })
        .filter(|(_, n)| *n > 0)
}

/// How many alerts fire now.
fn firing(storm: &Storm) -> u32 {
    by_level(storm).fold(0, |sum, (_, n)| sum.saturating_add(n))
}

/// The worst level firing, if any.
fn worst(storm: &Storm) -> Option<Level> {
    by_level(storm).next().map(|(level, _)| level)
}

fn alerts(n: u32) -> String {
    if n == 1 {
        "1 alert".to_string()
    } else {
        format!("{n} alerts")
    }
}

fn and_more(n: u32) -> String {
    format!("… and {n} more")
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
}

/// The lines, in order, packed into at most `max` section texts of at most
/// Slack's 3,000 characters each, and how many lines they hold.
fn pack(lines: &[String], max: usize) -> (Vec<String>, usize) {
    let mut sections: Vec<String> = Vec::new();
    let mut chars = 0;
    let mut taken = 0;
    for line in lines {
        let n = line.chars().count();
        let full = sections.len() == max;
        match sections.last_mut() {
            Some(last) if chars + 1 + n <= limits::SECTION => {
                last.push('\n');
                last.push_str(line);
                chars += 1 + n;
            }
            _ if full => break,
            _ => {
                sections.push(line.clone());
                chars = n;
            }
        }
        taken += 1;
    }
    (sections, taken)
}

/// `first`, then the lines, in order, that fit in Slack's 40,000
/// characters beside `reserved` more, then "and N more" when some of them,
/// or `more`, are left out.
fn listing(first: String, lines: &[String], reserved: usize, more: u32) -> String {
    let budget = limits::TEXT.saturating_sub(first.chars().count() + reserved + MORE_LINE);
    let mut text = first;
    let mut used = 0;
    let mut taken = 0;
    for line in lines {
        used += line.chars().count() + 1;
        if used > budget {
            break;
        }
        text.push('\n');
        text.push_str(line);
        taken += 1;
    }
    let left = more.saturating_add((lines.len() - taken) as u32);
    if left > 0 {
        text.push('\n');
        text.push_str(&and_more(left));
    }
    text
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.trim().replace(['\n', '\r'], " ")
}

/// Mrkdwn cut to at most `max` characters with `…`, never inside an
/// entity (`&amp;`) or a link (`<…>`), which would show as typed.
fn cut_escaped(text: &str, max: usize) -> String {
    let cut = cut_with_ellipsis(text, max);
    let Some(kept) = cut.strip_suffix('…').filter(|_| cut != text) else {
        return cut;
    };
    let open = |start: char, end: char| match kept.rfind(start) {
        Some(i) if !kept[i..].contains(end) => i,
        _ => kept.len(),
    };
    let end = open('&', ';').min(open('<', '>'));
    format!("{}…", &kept[..end])
}

/// A duration as a person reads it at a glance: `42s`, `5m`, `2h5m`,
/// `3d4h`.
fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{m}m"),
        3_600..86_400 if m == 0 => format!("{h}h"),
        3_600..86_400 => format!("{h}h{m}m"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
}

/// `14:05 UTC`, with the date when it is not `now`'s day.
fn clock(at: i64, now: i64) -> String {
    let time = timefmt::rfc3339(at, 0);
    let (date, of_day) = time.split_once('T').unwrap_or((&time, ""));
    let hm = of_day.get(..5).unwrap_or(of_day);
    if at.div_euclid(86_400) == now.div_euclid(86_400) {
        format!("{hm} UTC")
    } else {
        format!("{date} {hm} UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Mark;
    use crate::template::Template;

    /// 2025-11-29T10:00:00Z.
    const T0: i64 = 1_764_410_400;

    fn styled(pairs: &[(&str, &str)]) -> Style {
        let mut s = Style::default();
        for (k, v) in pairs {
            s.set(k, v, Template::compile).unwrap();
        }
        s
    }

    fn alert(id: &str, level: Level) -> AlertEvent {
        let mut e = AlertEvent::with_message("cpu high", level);
        e.id = id.into();
        e.time = (T0 + 600, 0);
        e
    }

    /// An Alertmanager alert: its labels in the event's context.
    fn am(labels: &[(&str, &str)], level: Level) -> AlertEvent {
        let mut e = alert("fp", level);
        e.context = labels
            .iter()
            .map(|(k, v)| (format!("labels.{k}"), v.to_string()))
            .collect();
        e
    }

    fn line(event: AlertEvent) -> StormLine {
        StormLine {
            event,
            since: T0,
            silenced_until: None,
        }
    }

    /// A storm in `#ops` as of 5 minutes past T0 with `lines`, the counts
    /// as the host would give them.
    fn storm(lines: Vec<StormLine>) -> Storm {
        let count = |level| lines.iter().filter(|l| l.event.level == level).count() as u32;
        Storm {
            key: "storm:#ops".into(),
            started: T0,
            now: T0 + 300,
            closed: false,
            group_labels: vec![],
            common_labels: vec![],
            firing: vec![
                (Level::Warning, count(Level::Warning)),
                (Level::Critical, count(Level::Critical)),
            ],
            resolved: count(Level::Ok),
            total: lines.len() as u32,
            lines,
            more: 0,
        }
    }

    fn draw(style: &Style, host: &HostOptions, storm: &Storm) -> Drawn {
        let ws = Workspace {
            channel: "#ops".into(),
            ..Workspace::for_tests()
        };
        message(&ws, &HandlerOptions::default(), host, style, storm)
    }

    /// The body as JSON, after checking it against Slack's limits.
    fn body(d: &Drawn) -> Value {
        let v = serde_json::to_value(&d.message).unwrap();
        limits::check(&v).unwrap_or_else(|e| panic!("{e}"));
        v
    }

    /// The lines of a one-line storm in the attachment layout.
    fn lines_of(style: &[(&str, &str)], storm: &Storm) -> (Vec<String>, Vec<String>) {
        let mut pairs = vec![("layout", "attachment")];
        pairs.extend_from_slice(style);
        let d = draw(&styled(&pairs), &HostOptions::default(), storm);
        let text = body(&d)["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        let lines = text.lines().skip(1).map(str::to_string).collect();
        (lines, d.warnings)
    }

    #[test]
    fn a_line_is_the_level_a_name_and_how_long_it_has_fired() {
        let (lines, _) = lines_of(&[], &storm(vec![line(alert("cpu:web01", Level::Critical))]));
        assert_eq!(lines, [":red_circle: *CRITICAL* cpu:web01 · firing 5m"]);
    }

    #[test]
    fn a_title_template_names_the_line_with_its_values_escaped() {
        let mut e = alert("cpu:web01", Level::Warning);
        e.tags = vec![("host".into(), "<web01> & co".into())];
        let (lines, _) = lines_of(&[("title", "{{tags.host}}\nis hot")], &storm(vec![line(e)]));
        assert_eq!(
            lines,
            [":large_yellow_circle: *WARNING* &lt;web01&gt; &amp; co is hot · firing 5m"]
        );
    }

    #[test]
    fn a_failing_title_falls_back_to_the_id_and_warns_once() {
        let s = storm(vec![
            line(alert("a", Level::Critical)),
            line(alert("b", Level::Critical)),
        ]);
        let (lines, warnings) = lines_of(&[("title", "{{truncate id \"x\"}}")], &s);
        assert!(lines[0].contains("*CRITICAL* a ·"), "{lines:?}");
        assert_eq!(warnings, ["handler_template_failed:title"]);
    }

    #[test]
    fn an_alertmanager_line_shows_its_own_labels_alertname_first() {
        let mut s = storm(vec![line(am(
            &[
                ("alertname", "HighLatency"),
                ("instance", "web<01>"),
                ("job", "api"),
                ("severity", "critical"),
            ],
            Level::Critical,
        ))]);
        s.common_labels = vec![
            ("job".into(), "api".into()),
            ("severity".into(), "critical".into()),
        ];
        s.group_labels = vec![("job".into(), "api".into())];
        let (lines, _) = lines_of(&[], &s);
        assert_eq!(
            lines,
            [":red_circle: *CRITICAL* alertname=HighLatency instance=web&lt;01&gt; · firing 5m"]
        );
        // A label shared by name but not by value is the alert's own.
        s.common_labels = vec![("instance".into(), "web02".into())];
        let (lines, _) = lines_of(&[], &s);
        assert!(
            lines[0].contains("instance=web&lt;01&gt; job=api"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_plain_line_is_named_by_its_escaped_id() {
        let (lines, _) = lines_of(&[], &storm(vec![line(alert("a<b>&c", Level::Info))]));
        assert_eq!(
            lines,
            [":large_blue_circle: *INFO* a&lt;b&gt;&amp;c · firing 5m"]
        );
    }

    #[test]
    fn a_recovered_line_is_struck_through_and_says_how_long_it_fired() {
        let mut e = alert("disk:db01", Level::Ok);
        e.time = (T0 + 12 * 60, 0);
        let (lines, _) = lines_of(&[], &storm(vec![line(e)]));
        assert_eq!(
            lines,
            [":large_green_circle: OK ~disk:db01~ · resolved after 12m"]
        );
    }

    #[test]
    fn a_silenced_line_says_until_when() {
        let mut l = line(alert("cpu", Level::Critical));
        l.silenced_until = Some(T0 + 3_600 + 5 * 60);
        let (lines, _) = lines_of(&[], &storm(vec![l.clone()]));
        assert!(
            lines[0].ends_with("· firing 5m · silenced until 11:05 UTC"),
            "{lines:?}"
        );
        l.silenced_until = Some(T0 + 86_400);
        let (lines, _) = lines_of(&[], &storm(vec![l]));
        assert!(
            lines[0].ends_with("silenced until 2025-11-30 10:00 UTC"),
            "{lines:?}"
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        for (s, text) in [
            (-5, "0s"),
            (42, "42s"),
            (300, "5m"),
            (3_600, "1h"),
            (7_500, "2h5m"),
            (86_400, "1d"),
            (273_600, "3d4h"),
        ] {
            assert_eq!(span(s), text, "{s}");
        }
    }

    #[test]
    fn a_long_name_is_cut_with_a_marker_never_inside_an_entity() {
        let (lines, _) = lines_of(
            &[],
            &storm(vec![line(alert(&"&".repeat(400), Level::Info))]),
        );
        let name = lines[0]
            .strip_prefix(":large_blue_circle: *INFO* ")
            .unwrap()
            .split(" · ")
            .next()
            .unwrap();
        assert_eq!(name, format!("{}…", "&amp;".repeat(NAME - 1)));
        assert_eq!(
            cut_escaped(&"a&amp;".repeat(100), 10),
            "a&amp;a…",
            "an entity cut in half is left out"
        );
        assert_eq!(cut_escaped("ab <https://x.test|x>", 12), "ab …");
        assert_eq!(cut_escaped("short", 10), "short");
    }

    #[test]
    fn the_top_text_counts_the_firing_alerts_by_level() {
        let mut lines: Vec<StormLine> = (0..12)
            .map(|i| line(alert(&format!("c{i}"), Level::Critical)))
            .collect();
        lines.extend((0..28).map(|i| line(alert(&format!("w{i}"), Level::Warning))));
        let d = draw(
            &styled(&[("layout", "blocks")]),
            &HostOptions::default(),
            &storm(lines),
        );
        let b = body(&d);
        assert_eq!(
            b["text"],
            "Storm in #ops: 40 alerts firing (12 CRITICAL, 28 WARNING)"
        );
        assert_eq!(b["attachments"][0]["color"], "danger");
        let blocks = b["attachments"][0]["blocks"].as_array().unwrap();
        assert_eq!(
            blocks[0]["text"]["text"],
            "Storm in #ops: 40 alerts firing (12 CRITICAL, 28 WARNING)"
        );
        assert_eq!(
            blocks[1]["elements"][0]["text"],
            ":red_circle: 12 CRITICAL · :large_yellow_circle: 28 WARNING · since 10:00 UTC"
        );
    }

    #[test]
    fn a_closed_storm_says_it_is_over_with_its_totals() {
        let mut s = storm(vec![line(alert("still", Level::Warning))]);
        s.closed = true;
        s.total = 40;
        s.resolved = 39;
        let d = draw(
            &styled(&[("layout", "blocks")]),
            &HostOptions::default(),
            &s,
        );
        assert_eq!(
            body(&d)["text"],
            "Storm over in #ops: 40 alerts, 39 resolved, 1 still firing"
        );
        assert_eq!(body(&d)["attachments"][0]["color"], "warning");
        s.firing.clear();
        s.lines.clear();
        s.resolved = 40;
        let d = draw(
            &styled(&[("layout", "blocks")]),
            &HostOptions::default(),
            &s,
        );
        assert_eq!(
            body(&d)["text"],
            "Storm over in #ops: 40 alerts, 40 resolved"
        );
        assert_eq!(body(&d)["attachments"][0]["color"], "good");
    }

    /// 200 lines of 1,524 characters once escaped: two do not fit in a
    /// section.
    fn long_storm() -> Storm {
        let lines = (0..200)
            .map(|i| {
                let id = format!("{i:03}{}", "&".repeat(NAME - 3));
                line(alert(&id, Level::Critical))
            })
            .collect();
        let mut s = storm(lines);
        s.more = 7;
        s
    }

    #[test]
    fn lines_fill_sections_of_3000_and_stop_at_50_blocks_whole() {
        let s = long_storm();
        let style = styled(&[
            ("layout", "blocks"),
            ("storm-list", "200"),
            ("actions", "acknowledge"),
        ]);
        let d = draw(&style, &HostOptions::default(), &s);
        let b = body(&d);
        let blocks = b["attachments"][0]["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 50);
        let sections: Vec<&str> = blocks
            .iter()
            .filter(|b| b["type"] == "section")
            .map(|b| b["text"]["text"].as_str().unwrap())
            .collect();
        // Header, counts, 46 sections of one line, "and N more", buttons.
        assert_eq!(sections.len(), 46);
        let drawn: Vec<String> = {
            let mut d = Draw {
                ws: "",
                channel: "#ops",
                style: &style,
                common: &[],
                now: s.now,
                warnings: vec![],
            };
            s.lines.iter().map(|l| d.line(l)).collect()
        };
        for (i, text) in sections.iter().enumerate() {
            assert_eq!(*text, drawn[i], "line {i} is whole");
        }
        assert_eq!(blocks[48]["elements"][0]["text"], "… and 161 more");
        assert_eq!(blocks[49]["type"], "actions");
    }

    #[test]
    fn short_lines_share_sections_and_the_list_is_capped_by_storm_list() {
        let lines = (0..120)
            .map(|i| line(alert(&format!("alert-{i}"), Level::Warning)))
            .collect();
        let s = storm(lines);
        let d = draw(
            &styled(&[("layout", "blocks")]),
            &HostOptions::default(),
            &s,
        );
        let b = body(&d);
        let blocks = b["attachments"][0]["blocks"].as_array().unwrap();
        let shown: usize = blocks
            .iter()
            .filter(|b| b["type"] == "section")
            .map(|b| b["text"]["text"].as_str().unwrap().lines().count())
            .sum();
        assert_eq!(shown, 50, "storm-list's default");
        assert_eq!(
            blocks.len(),
            2 + 1 + 1,
            "one section holds fifty short lines"
        );
        assert_eq!(
            blocks.last().unwrap()["elements"][0]["text"],
            "… and 70 more"
        );
    }

    #[test]
    fn a_text_layout_keeps_whole_lines_within_40000_characters() {
        for layout in ["kapacitor", "attachment"] {
            let style = styled(&[("layout", layout), ("storm-list", "200")]);
            let d = draw(&style, &HostOptions::default(), &long_storm());
            let b = body(&d);
            let text = if layout == "kapacitor" {
                assert_eq!(b["attachments"], json!([]));
                b["text"].as_str().unwrap().to_string()
            } else {
                b["attachments"][0]["text"].as_str().unwrap().to_string()
            };
            assert!(text.chars().count() <= limits::TEXT);
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("firing 5m")).collect();
            // 1,525 characters a line with its break: 26 fit in 40,000.
            assert_eq!(lines.len(), 26, "{layout}");
            assert!(lines.iter().all(|l| l.chars().count() == 1_524));
            assert!(text.ends_with("… and 181 more"), "{layout}");
            assert!(d.warnings.is_empty(), "{layout}: {:?}", d.warnings);
        }
    }

    #[test]
    fn kapacitors_layout_is_plain_text() {
        let d = draw(
            &Style::default(),
            &HostOptions::default(),
            &storm(vec![line(alert("cpu", Level::Critical))]),
        );
        assert_eq!(
            body(&d)["text"],
            "Storm in #ops: 1 alert firing (1 CRITICAL)\n:red_circle: 1 CRITICAL · since 10:00 UTC\n:red_circle: *CRITICAL* cpu · firing 5m"
        );
    }

    fn acknowledged() -> HostOptions {
        HostOptions {
            acknowledged: Some(Mark {
                by: "U7".into(),
                at: T0,
            }),
            ..HostOptions::default()
        }
    }

    #[test]
    fn buttons_carry_the_storms_key_and_show_the_marks() {
        let s = storm(vec![line(alert("cpu", Level::Critical))]);
        let style = styled(&[("layout", "blocks"), ("actions", "acknowledge,silence")]);
        let d = draw(&style, &HostOptions::default(), &s);
        let blocks = body(&d)["attachments"][0]["blocks"].clone();
        let actions = blocks.as_array().unwrap().last().unwrap();
        assert_eq!(actions["elements"][0]["text"]["text"], "Acknowledge");
        assert_eq!(actions["elements"][0]["value"], "storm:#ops");
        let d = draw(&style, &acknowledged(), &s);
        let text = body(&d).to_string();
        assert!(text.contains("Acknowledged by <@U7>"), "{text}");
        assert!(!text.contains("\"Acknowledge\""), "{text}");
        // The attachment layout: beside the lines, in the same colour.
        let style = styled(&[("layout", "attachment"), ("actions", "silence")]);
        let b = body(&draw(&style, &HostOptions::default(), &s));
        assert_eq!(b["attachments"][1]["color"], "danger");
        assert_eq!(
            b["attachments"][1]["blocks"][0]["elements"][0]["text"]["text"],
            "Silence 1h"
        );
    }

    #[test]
    fn a_closed_storm_with_nothing_firing_has_no_buttons() {
        let mut s = storm(vec![line(alert("cpu", Level::Ok))]);
        let style = styled(&[("layout", "blocks"), ("actions", "acknowledge,silence")]);
        assert!(body(&draw(&style, &acknowledged(), &s))
            .to_string()
            .contains("\"actions\""));
        s.closed = true;
        let text = body(&draw(&style, &acknowledged(), &s)).to_string();
        assert!(
            !text.contains("\"actions\"") && !text.contains("Acknowledged"),
            "{text}"
        );
    }

    #[test]
    fn mentions_only_for_a_line_at_their_levels_and_only_in_a_post() {
        let style = styled(&[("layout", "blocks"), ("mention", "here")]);
        let warning = storm(vec![line(alert("w", Level::Warning))]);
        let d = draw(&style, &HostOptions::default(), &warning);
        assert!(!d.message.text.contains("<!here>"));
        let mut critical = storm(vec![line(alert("c", Level::Critical))]);
        let d = draw(&style, &HostOptions::default(), &critical);
        assert_eq!(
            d.message.text,
            "<!here> Storm in #ops: 1 alert firing (1 CRITICAL)"
        );
        assert_eq!(
            d.as_update("C1", "1.1").text,
            "Storm in #ops: 1 alert firing (1 CRITICAL)"
        );
        // A silenced alert calls no one.
        critical.lines[0].silenced_until = Some(T0 + 3_600);
        let d = draw(&style, &HostOptions::default(), &critical);
        assert!(!d.message.text.contains("<!here>"));
    }

    #[test]
    fn group_labels_show_once_escaped() {
        let mut s = storm(vec![line(alert("x", Level::Warning))]);
        s.group_labels = vec![("alertname".into(), "Disk<Full>".into())];
        let d = draw(
            &styled(&[("layout", "blocks")]),
            &HostOptions::default(),
            &s,
        );
        let head = body(&d)["attachments"][0]["blocks"][1]["elements"][0]["text"].clone();
        assert!(
            head.as_str()
                .unwrap()
                .starts_with("alertname=Disk&lt;Full&gt; · "),
            "{head}"
        );
    }
}
