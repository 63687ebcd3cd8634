//! The settings this handler adds to Kapacitor's: how a message looks
//! (`layout`, templates, `fields`, mentions, `icon-url`, `link-names`) and
//! what later events of an alert do (`on-recovery`, `thread-broadcast`),
//! and when a channel's alerts go in one storm message instead
//! (`storm-after`, `storm-list`). Each is a `[[slack]]` key and, with the
//! same name, a handler option; the option wins. None of them set means
//! Kapacitor's message, byte for byte.

use crate::event::Level;
use crate::template::{grouped, Template, MAX_TEMPLATE_BYTES};

/// Every key, as a `[[slack]]` key and a handler option.
pub const KEYS: [&str; 18] = [
    "layout",
    "title",
    "title-link",
    "text",
    "pretext",
    "footer",
    "color",
    "fields",
    "icon-url",
    "link-names",
    "mention",
    "mention-levels",
    "on-recovery",
    "thread-broadcast",
    "actions",
    "silence-durations",
    "storm-after",
    "storm-list",
];

/// The message's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Kapacitor's one attachment: colour, text, nothing else.
    #[default]
    Kapacitor,
    /// A legacy attachment with title, pretext, fields and footer.
    Attachment,
    /// Block Kit (header, section, fields, context) inside an attachment
    /// that keeps the level's colour bar.
    Blocks,
}

/// What later events of the same alert id do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRecovery {
    /// Every event is a new message.
    #[default]
    New,
    /// Later events edit the alert's first message (`chat.update`).
    Update,
    /// Later events reply in the first message's thread; the recovery also
    /// updates the first message.
    Thread,
}

impl OnRecovery {
    pub fn as_str(self) -> &'static str {
        match self {
            OnRecovery::New => "new",
            OnRecovery::Update => "update",
            OnRecovery::Thread => "thread",
        }
    }
}

/// One entry of `fields`: title and value are templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub title: Template,
    pub value: Template,
    pub short: bool,
}

/// The settings of a section or of a handler's options; `None` is "not
/// set here".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Style {
    pub layout: Option<Layout>,
    pub title: Option<Template>,
    pub title_link: Option<Template>,
    pub text: Option<Template>,
    pub pretext: Option<Template>,
    pub footer: Option<Template>,
    pub color: Option<Template>,
    pub fields: Option<Vec<FieldSpec>>,
    pub icon_url: Option<String>,
    pub link_names: Option<bool>,
    /// The mentions as Slack writes them: `<!here>`, `<@U123>`.
    pub mention: Option<Vec<String>>,
    pub mention_levels: Option<Vec<Level>>,
    pub on_recovery: Option<OnRecovery>,
    pub thread_broadcast: Option<bool>,
    /// The buttons a firing alert's message carries (`acknowledge`,
    /// `silence`).
    pub actions: Option<Vec<Button>>,
    /// The `Silence <duration>` buttons: each as written and in seconds.
    pub silence_durations: Option<Vec<(String, u64)>>,
    /// How many alerts may wait for a channel before it storms (0: never).
    pub storm_after: Option<u32>,
    /// The most alerts a storm message lists, one line each.
    pub storm_list: Option<u32>,
}

/// A kind of button an alert's message may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Acknowledge,
    Silence,
}

/// `storm-after` when not set: a fifth waiting alert starts a storm.
pub const DEFAULT_STORM_AFTER: u32 = 4;

/// `storm-list` when not set.
pub const DEFAULT_STORM_LIST: u32 = 50;

/// The most lines `storm-list` may ask for: what 50 Block Kit blocks hold
/// with room to spare.
pub const MAX_STORM_LIST: u32 = 200;

/// The `Silence` buttons when `silence-durations` is not set.
pub const DEFAULT_SILENCE_DURATIONS: [(&str, u64); 2] = [("1h", 3_600), ("1d", 86_400)];

/// The key for a spelling: the key itself, or TICKscript's camelCase
/// (`titleLink`, `onRecovery`).
pub fn canonical(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .copied()
        .find(|k| *k == key || camel_case(k) == key)
}

fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Style {
    /// Sets `key` (a canonical key) from its text, compiling templates with
    /// `compile`. An empty value sets nothing (the section's value, or the
    /// default, stays). The error names the key and what is wrong.
    pub fn set(
        &mut self,
        key: &str,
        value: &str,
        compile: fn(&str) -> Result<Template, String>,
    ) -> Result<(), String> {
        if value.is_empty() {
            return Ok(());
        }
        let template = |slot: &mut Option<Template>| -> Result<(), String> {
            *slot = Some(compile(value).map_err(|e| format!("`{key}`: {e}"))?);
            Ok(())
        };
        match key {
            "layout" => {
                self.layout = Some(match value {
                    "kapacitor" => Layout::Kapacitor,
                    "attachment" => Layout::Attachment,
                    "blocks" => Layout::Blocks,
                    _ => return Err(one_of(key, value, "kapacitor, attachment or blocks")),
                })
            }
            "on-recovery" => {
                self.on_recovery = Some(match value {
                    "new" => OnRecovery::New,
                    "update" => OnRecovery::Update,
                    "thread" => OnRecovery::Thread,
                    _ => return Err(one_of(key, value, "new, update or thread")),
                })
            }
            "title" => template(&mut self.title)?,
            "title-link" => template(&mut self.title_link)?,
            "text" => template(&mut self.text)?,
            "pretext" => template(&mut self.pretext)?,
            "footer" => template(&mut self.footer)?,
            "color" => template(&mut self.color)?,
            "fields" => {
                // Each item's templates are bounded when compiled; the whole
                // list is bounded here, or its number of items would not be.
                if value.len() > MAX_TEMPLATE_BYTES {
                    return Err(format!(
                        "`fields` is {} bytes; the most it may have, its templates and their JSON together, is {}",
                        grouped(value.len()),
                        grouped(MAX_TEMPLATE_BYTES)
                    ));
                }
                self.fields = Some(fields_from_json(value, compile)?)
            }
            "icon-url" => {
                if !(value.starts_with("https://") || value.starts_with("http://")) {
                    return Err("`icon-url` must be an http or https URL".to_string());
                }
                self.icon_url = Some(value.to_string());
            }
            "link-names" | "thread-broadcast" => {
                let flag = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(one_of(key, value, "true or false")),
                };
                self.set_flag(key, flag);
            }
            "mention" => self.mention = Some(mentions(value)?),
            "actions" => {
                let buttons = list(value)
                    .map(|b| match b {
                        "acknowledge" => Ok(Button::Acknowledge),
                        "silence" => Ok(Button::Silence),
                        _ => Err(one_of(
                            key,
                            b,
                            "a comma-separated list of acknowledge, silence",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.actions = Some(buttons);
            }
            "silence-durations" => {
                let durations = list(value)
                    .map(|d| match crate::timefmt::seconds(d) {
                        Some(seconds) => Ok((d.to_string(), seconds)),
                        None => Err(format!(
                            "`silence-durations`: \"{d}\" is not a duration such as 30m, 1h, 1h30m or 1d"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // Slack takes 25 elements in an actions block, and the
                // action ids of one block must differ.
                if durations.len() > 20 {
                    return Err("`silence-durations`: at most 20 durations".to_string());
                }
                self.silence_durations = Some(durations);
            }
            "storm-after" => {
                self.storm_after = Some(value.parse().map_err(|_| {
                    format!("`storm-after` must be a whole number, 0 or more (0 turns storms off), not \"{value}\"")
                })?)
            }
            "storm-list" => {
                self.storm_list = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_STORM_LIST).contains(n))
                        .ok_or_else(|| {
                            format!("`storm-list` must be a whole number from 1 to {MAX_STORM_LIST}, not \"{value}\"")
                        })?,
                )
            }
            "mention-levels" => {
                let levels = value
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        l.parse::<Level>()
                            .map_err(|e| format!("`mention-levels`: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.mention_levels = Some(levels);
            }
            _ => return Err(format!("`{key}` is not a message setting")),
        }
        Ok(())
    }

    /// Sets `link-names` or `thread-broadcast`.
    pub fn set_flag(&mut self, key: &str, flag: bool) {
        match key {
            "link-names" => self.link_names = Some(flag),
            _ => self.thread_broadcast = Some(flag),
        }
    }

    /// `self` with every setting `over` has replacing it.
    pub fn merged(&self, over: &Style) -> Style {
        fn pick<T: Clone>(under: &Option<T>, over: &Option<T>) -> Option<T> {
            over.clone().or_else(|| under.clone())
        }
        Style {
            layout: pick(&self.layout, &over.layout),
            title: pick(&self.title, &over.title),
            title_link: pick(&self.title_link, &over.title_link),
            text: pick(&self.text, &over.text),
            pretext: pick(&self.pretext, &over.pretext),
            footer: pick(&self.footer, &over.footer),
            color: pick(&self.color, &over.color),
            fields: pick(&self.fields, &over.fields),
            icon_url: pick(&self.icon_url, &over.icon_url),
            link_names: pick(&self.link_names, &over.link_names),
            mention: pick(&self.mention, &over.mention),
            mention_levels: pick(&self.mention_levels, &over.mention_levels),
            on_recovery: pick(&self.on_recovery, &over.on_recovery),
            thread_broadcast: pick(&self.thread_broadcast, &over.thread_broadcast),
            actions: pick(&self.actions, &over.actions),
            silence_durations: pick(&self.silence_durations, &over.silence_durations),
            storm_after: pick(&self.storm_after, &over.storm_after),
            storm_list: pick(&self.storm_list, &over.storm_list),
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout.unwrap_or_default()
    }

    /// Whether messages carry buttons.
    pub fn has_buttons(&self) -> bool {
        self.actions.as_ref().is_some_and(|a| !a.is_empty())
    }

    /// The `Silence` buttons' durations, as written and in seconds.
    pub fn silence_durations(&self) -> Vec<(String, u64)> {
        match &self.silence_durations {
            Some(d) => d.clone(),
            None => DEFAULT_SILENCE_DURATIONS
                .iter()
                .map(|(d, s)| (d.to_string(), *s))
                .collect(),
        }
    }

    /// `storm-after`, or its default.
    pub fn storm_after(&self) -> u32 {
        self.storm_after.unwrap_or(DEFAULT_STORM_AFTER)
    }

    /// `storm-list`, or its default.
    pub fn storm_list(&self) -> u32 {
        self.storm_list.unwrap_or(DEFAULT_STORM_LIST)
    }

    pub fn on_recovery(&self) -> OnRecovery {
        self.on_recovery.unwrap_or_default()
    }

    /// Whether an event at `level` carries the mentions (by default only
    /// `CRITICAL` does).
    pub fn mentions_at(&self, level: Level) -> bool {
        match &self.mention_levels {
            Some(levels) => levels.contains(&level),
            None => level == Level::Critical,
        }
    }

    /// Kapacitor's layout has no title, pretext, footer or fields: setting
    /// one of them without choosing a layout that has them is a mistake.
    pub fn check_layout(&self) -> Result<(), String> {
        if self.layout() != Layout::Kapacitor {
            return Ok(());
        }
        let set = [
            ("title", self.title.is_some()),
            ("title-link", self.title_link.is_some()),
            ("pretext", self.pretext.is_some()),
            ("footer", self.footer.is_some()),
            ("fields", self.fields.is_some()),
        ];
        if self.has_buttons() {
            return Err(
                "`actions` needs `layout` = \"attachment\" or \"blocks\": Kapacitor's layout has no room for buttons, pick one".to_string(),
            );
        }
        match set.iter().find(|(_, is_set)| *is_set) {
            Some((key, _)) => Err(format!(
                "`{key}` needs `layout` = \"attachment\" or \"blocks\" (Kapacitor's layout has only `text` and `color`)"
            )),
            None => Ok(()),
        }
    }
}

/// The items of a comma-separated list, trimmed, empty ones skipped.
fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|t| !t.is_empty())
}

fn one_of(key: &str, value: &str, allowed: &str) -> String {
    format!("`{key}` must be {allowed}, not \"{value}\"")
}

/// `here,channel,U123,S456` as Slack's mention sequences.
fn mentions(list: &str) -> Result<Vec<String>, String> {
    let id = |s: &str| s.len() >= 2 && s.chars().all(|c| c.is_ascii_alphanumeric());
    list.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| match m {
            "here" | "channel" | "everyone" => Ok(format!("<!{m}>")),
            _ if (m.starts_with('U') || m.starts_with('W')) && id(m) => Ok(format!("<@{m}>")),
            _ if m.starts_with('S') && id(m) => Ok(format!("<!subteam^{m}>")),
            _ => Err(format!(
                "`mention`: \"{m}\" is not here, channel, everyone, a user id (U… or W…) or a user-group id (S…)"
            )),
        })
        .collect()
}

/// `fields` given as an option: a JSON array of
/// `{"title": "...", "value": "...", "short": true}`.
fn fields_from_json(
    text: &str,
    compile: fn(&str) -> Result<Template, String>,
) -> Result<Vec<FieldSpec>, String> {
    let shape = "`fields` must be a JSON array of {\"title\": \"...\", \"value\": \"...\", \"short\": true}";
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{shape}: {e}"))?;
    let items = value.as_array().ok_or_else(|| shape.to_string())?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let table = item
                .as_object()
                .ok_or_else(|| format!("{shape}: item {} is not an object", i + 1))?;
            let mut raw = RawField::default();
            for (k, v) in table {
                let ok = match (k.as_str(), v) {
                    ("title", serde_json::Value::String(s)) => {
                        raw.title = s.clone();
                        true
                    }
                    ("value", serde_json::Value::String(s)) => {
                        raw.value = s.clone();
                        true
                    }
                    ("short", serde_json::Value::Bool(b)) => {
                        raw.short = *b;
                        true
                    }
                    _ => false,
                };
                if !ok {
                    return Err(format!(
                        "`fields` item {}: `{k}` must be title (text), value (text) or short (true/false)",
                        i + 1
                    ));
                }
            }
            raw.compile(i, compile)
        })
        .collect()
}

/// A `fields` entry as written, before its templates are compiled.
#[derive(Default)]
pub struct RawField {
    pub title: String,
    pub value: String,
    pub short: bool,
}

impl RawField {
    /// Compiles the entry's templates; `index` counts from 0.
    pub fn compile(
        self,
        index: usize,
        compile: fn(&str) -> Result<Template, String>,
    ) -> Result<FieldSpec, String> {
        let at = |part: &str, e: String| format!("`fields` item {} `{part}`: {e}", index + 1);
        Ok(FieldSpec {
            title: compile(&self.title).map_err(|e| at("title", e))?,
            value: compile(&self.value).map_err(|e| at("value", e))?,
            short: self.short,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(pairs: &[(&str, &str)]) -> Result<Style, String> {
        let mut s = Style::default();
        for (k, v) in pairs {
            s.set(k, v, Template::compile)?;
        }
        Ok(s)
    }

    #[test]
    fn keys_have_camel_case_spellings() {
        assert_eq!(canonical("titleLink"), Some("title-link"));
        assert_eq!(canonical("onRecovery"), Some("on-recovery"));
        assert_eq!(canonical("mention-levels"), Some("mention-levels"));
        assert_eq!(canonical("title_link"), None);
    }

    #[test]
    fn mentions_become_slack_sequences() {
        let s = style(&[("mention", "here, channel,U024BE7LH,W0ABC,S0614TZR7")]).unwrap();
        assert_eq!(
            s.mention.unwrap(),
            [
                "<!here>",
                "<!channel>",
                "<@U024BE7LH>",
                "<@W0ABC>",
                "<!subteam^S0614TZR7>"
            ]
        );
        let e = style(&[("mention", "here,@bob")]).unwrap_err();
        assert!(e.contains("\"@bob\" is not"), "{e}");
        assert!(style(&[("mention", "U12>")]).is_err());
    }

    #[test]
    fn mention_levels_default_to_critical() {
        let s = Style::default();
        assert!(s.mentions_at(Level::Critical) && !s.mentions_at(Level::Warning));
        let s = style(&[("mention-levels", "warning,CRITICAL")]).unwrap();
        assert!(s.mentions_at(Level::Warning) && !s.mentions_at(Level::Ok));
        assert!(style(&[("mention-levels", "SEVERE")])
            .unwrap_err()
            .contains("unknown level"));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (k, v, needle) in [
            (
                "layout",
                "cards",
                "`layout` must be kapacitor, attachment or blocks",
            ),
            (
                "on-recovery",
                "edit",
                "`on-recovery` must be new, update or thread",
            ),
            ("link-names", "yes", "`link-names` must be true or false"),
            ("icon-url", "ftp://x", "`icon-url` must be an http"),
            ("title", "{{#if}}", "`title`: template error at line 1"),
            ("fields", "{\"title\":1}", "`fields` must be a JSON array"),
            ("fields", "[{\"name\":\"x\"}]", "`fields` item 1: `name`"),
            (
                "fields",
                "[{\"title\":\"{{x\"}]",
                "`fields` item 1 `title`: template error",
            ),
        ] {
            let e = style(&[(k, v)]).unwrap_err();
            assert!(e.contains(needle), "{k}={v}: {e}");
        }
    }

    #[test]
    fn options_win_and_empty_values_fall_back() {
        let section = style(&[("layout", "blocks"), ("title", "a"), ("footer", "f")]).unwrap();
        let option = style(&[("title", "b"), ("footer", "")]).unwrap();
        let merged = section.merged(&option);
        assert_eq!(merged.layout(), Layout::Blocks);
        assert_eq!(merged.title.unwrap().source(), "b");
        assert_eq!(merged.footer.unwrap().source(), "f");
    }

    #[test]
    fn kapacitors_layout_refuses_a_title() {
        let e = style(&[("title", "x")])
            .unwrap()
            .check_layout()
            .unwrap_err();
        assert!(e.starts_with("`title` needs `layout`"), "{e}");
        assert!(style(&[("text", "x"), ("color", "good")])
            .unwrap()
            .check_layout()
            .is_ok());
    }

    #[test]
    fn fields_from_json_compile_each_template() {
        let s = style(&[(
            "fields",
            r#"[{"title":"Host","value":"{{tags.host}}","short":true},{"title":"Idle","value":"{{fields.idle}}"}]"#,
        )])
        .unwrap();
        let f = s.fields.unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[0].short && !f[1].short);
        assert_eq!(f[1].value.source(), "{{fields.idle}}");
    }
}
