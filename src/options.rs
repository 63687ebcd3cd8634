//! Handler options (`.slack().channel('#x')` in a TICKscript, `options:` in
//! a handler file) and the service test's options.

use std::cell::RefCell;
use std::rc::Rc;

use crate::config::normalise_key;
use crate::error::HandlerError;
use crate::event::Level;
use crate::style::{self, Style};
use crate::template::Template;

/// The options of one Slack handler. An empty value means "use the
/// workspace's setting".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerOptions {
    pub workspace: String,
    pub channel: String,
    pub username: String,
    pub icon_emoji: String,
    /// Our message settings; they win over the section's.
    pub style: Style,
}

/// What the host says of an alert (the host-only options, [`HOST_KEYS`]):
/// its earlier message, the key its buttons name it by, who acknowledged
/// or silenced it, and whether this call only redraws its message after a
/// click. They differ from alert to alert, where a handler's options
/// repeat, so they are read apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOptions {
    /// The alert's earlier message (`previous-channel-id`, `previous-ts`).
    pub previous: Option<PreviousMessage>,
    /// `alert-key`: the buttons' value (else the alert's id).
    pub key: String,
    /// `acknowledged-by` and `acknowledged-at`.
    pub acknowledged: Option<Mark>,
    /// `silenced-by` and `silenced-until`.
    pub silenced: Option<Mark>,
    /// `refresh`: edit the message at `previous-ts` in place, whatever
    /// `on-recovery` says, and post nothing new if it is gone.
    pub refresh: bool,
}

/// Who did something to an alert, and a time (when, or until when).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// A Slack user id.
    pub by: String,
    /// Unix seconds.
    pub at: i64,
}

/// An alert's earlier message: where `update` edits and `thread` replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousMessage {
    pub channel_id: String,
    pub ts: String,
}

/// Kapacitor's handler-file keys; `iconEmoji` (TICKscript) is accepted too.
pub const HANDLER_KEYS: [&str; 4] = ["workspace", "channel", "username", "icon-emoji"];

/// Every option that is the host's to set, not a person's: the earlier
/// message, and what the alert's buttons show.
pub const HOST_KEYS: [&str; 8] = [
    "previous-channel-id",
    "previous-ts",
    "alert-key",
    "acknowledged-by",
    "acknowledged-at",
    "silenced-by",
    "silenced-until",
    "refresh",
];

impl HandlerOptions {
    /// Reads options strictly, as Kapacitor decodes topic-handler options:
    /// an unknown key is an error. A repeated key takes its last value.
    /// Templates are compiled once per distinct text, not per alert.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, HandlerError> {
        let mut options = HandlerOptions::default();
        for (key, value) in pairs {
            if HOST_KEYS.contains(&key.as_str()) {
                continue;
            }
            if !options.set(key, value)? {
                return Err(unknown(key, &all_keys()));
            }
        }
        Ok(options)
    }

    /// As [`HandlerOptions::parse`], but a list equal to the last one this
    /// thread parsed is not parsed again: a handler's options come with
    /// every alert and repeat, and reading them (a `fields` list is JSON,
    /// every template a cache lookup) cost more than rendering Kapacitor's
    /// layout. Only the last list is kept, and only when it was valid.
    pub fn parse_repeated(pairs: &[(String, String)]) -> Result<Rc<Self>, HandlerError> {
        /// The last valid list and what it read as.
        type Last = Option<(Vec<(String, String)>, Rc<HandlerOptions>)>;
        thread_local! {
            static LAST: RefCell<Last> = const { RefCell::new(None) };
        }
        // The host's options differ from alert to alert; the person's are
        // what repeats, and what is compared.
        let person = || {
            pairs
                .iter()
                .filter(|(k, _)| !HOST_KEYS.contains(&k.as_str()))
        };
        let hit = LAST.with_borrow(|last| {
            last.as_ref()
                .filter(|(seen, _)| seen.iter().eq(person()))
                .map(|(_, options)| options.clone())
        });
        if let Some(options) = hit {
            return Ok(options);
        }
        let options = Rc::new(HandlerOptions::parse(pairs)?);
        let seen = person().cloned().collect();
        LAST.with_borrow_mut(|last| *last = Some((seen, options.clone())));
        Ok(options)
    }
}

impl HostOptions {
    /// Reads the host's options of `pairs` (the others are left alone).
    pub fn parse(pairs: &[(String, String)]) -> Result<HostOptions, HandlerError> {
        let mut host = HostOptions::default();
        let (mut channel_id, mut ts) = (String::new(), String::new());
        let mut marks: [(String, String); 2] = Default::default();
        for (key, value) in pairs {
            match key.as_str() {
                "previous-channel-id" => channel_id = value.clone(),
                "previous-ts" => ts = value.clone(),
                "alert-key" => host.key = value.clone(),
                "acknowledged-by" => marks[0].0 = value.clone(),
                "acknowledged-at" => marks[0].1 = value.clone(),
                "silenced-by" => marks[1].0 = value.clone(),
                "silenced-until" => marks[1].1 = value.clone(),
                "refresh" => host.refresh = value == "true",
                _ => {}
            }
        }
        let [acknowledged, silenced] = marks;
        host.acknowledged = mark(acknowledged, "acknowledged-by", "acknowledged-at")?;
        host.silenced = mark(silenced, "silenced-by", "silenced-until")?;
        host.previous = match (channel_id.is_empty(), ts.is_empty()) {
            (true, true) => None,
            (false, false) => Some(PreviousMessage { channel_id, ts }),
            _ => {
                return Err(HandlerError::InvalidOption(
                    "`previous-channel-id` and `previous-ts` go together: one was given without the other".to_string(),
                ))
            }
        };
        Ok(host)
    }
}

impl HandlerOptions {
    /// Sets one option; false when the key is not a handler option.
    fn set(&mut self, key: &str, value: &str) -> Result<bool, HandlerError> {
        let slot = match key {
            "workspace" => &mut self.workspace,
            "channel" => &mut self.channel,
            "username" => &mut self.username,
            "icon-emoji" | "iconEmoji" => &mut self.icon_emoji,
            _ => {
                let Some(key) = style::canonical(key) else {
                    return Ok(false);
                };
                self.style
                    .set(key, value, Template::compile_cached)
                    .map_err(HandlerError::InvalidOption)?;
                return Ok(true);
            }
        };
        *slot = value.to_string();
        Ok(true)
    }
}

/// A mark from its two host-only options: both or neither.
fn mark(
    (by, at): (String, String),
    by_key: &str,
    at_key: &str,
) -> Result<Option<Mark>, HandlerError> {
    match (by.is_empty(), at.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => match at.parse::<i64>() {
            Ok(at) => Ok(Some(Mark { by, at })),
            Err(_) => Err(HandlerError::InvalidOption(format!(
                "`{at_key}` must be Unix seconds"
            ))),
        },
        _ => Err(HandlerError::InvalidOption(format!(
            "`{by_key}` and `{at_key}` go together: one was given without the other"
        ))),
    }
}

/// Every handler option a person sets.
fn all_keys() -> Vec<&'static str> {
    HANDLER_KEYS
        .iter()
        .chain(style::KEYS.iter())
        .copied()
        .collect()
}

/// The service test's options (`kapacitor service-tests slack`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOptions {
    pub handler: HandlerOptions,
    pub message: String,
    pub level: Level,
}

/// The service test's option keys and Kapacitor's defaults.
pub const TEST_DEFAULTS: [(&str, &str); 6] = [
    ("workspace", ""),
    ("channel", ""),
    ("message", "test slack message"),
    ("level", "CRITICAL"),
    ("username", ""),
    ("icon-emoji", ""),
];

impl TestOptions {
    /// Reads the service test's options over Kapacitor's defaults.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, HandlerError> {
        let mut options = TestOptions {
            handler: HandlerOptions::default(),
            message: "test slack message".to_string(),
            level: Level::Critical,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "message" => options.message = value.clone(),
                "level" => {
                    options.level = value
                        .parse()
                        .map_err(|e| HandlerError::InvalidOption(format!("`level`: {e}")))?;
                }
                _ => {
                    if !options.handler.set(key, value)? {
                        let keys: Vec<&str> = TEST_DEFAULTS.iter().map(|(k, _)| *k).collect();
                        return Err(unknown(key, &keys));
                    }
                }
            }
        }
        Ok(options)
    }
}

/// Which option was meant, when the key is a near miss.
fn unknown(key: &str, known: &[&str]) -> HandlerError {
    let normalised = normalise_key(key);
    match known.iter().find(|k| normalise_key(k) == normalised) {
        Some(k) => {
            HandlerError::UnknownOption(format!("unknown option `{key}` (did you mean `{k}`?)"))
        }
        None => HandlerError::UnknownOption(format!(
            "unknown option `{key}` (the options are {})",
            known.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{MAX_TEMPLATE_BYTES, MAX_TEMPLATE_NESTING};

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn repeated_options_read_as_the_first_time_and_a_changed_list_is_read_anew() {
        let first = pairs(&[("channel", "#a"), ("layout", "blocks"), ("title", "{{id}}")]);
        let second = pairs(&[
            ("channel", "#b"),
            ("previous-channel-id", "C1"),
            ("previous-ts", "1.2"),
        ]);
        for list in [&first, &first, &second, &second, &first] {
            assert_eq!(
                *HandlerOptions::parse_repeated(list).unwrap(),
                HandlerOptions::parse(list).unwrap()
            );
        }
        let bad = pairs(&[("colour", "red")]);
        for _ in 0..2 {
            assert!(matches!(
                HandlerOptions::parse_repeated(&bad),
                Err(HandlerError::UnknownOption(_))
            ));
        }
    }

    #[test]
    fn the_hosts_options_vary_per_alert_and_the_persons_are_read_once() {
        let with = |key: &str| {
            pairs(&[
                ("layout", "blocks"),
                ("actions", "acknowledge"),
                ("alert-key", key),
                ("acknowledged-by", "U1"),
                ("acknowledged-at", "1764460800"),
            ])
        };
        let first = HandlerOptions::parse_repeated(&with("k1")).unwrap();
        for key in ["k2", "k1"] {
            let o = HandlerOptions::parse_repeated(&with(key)).unwrap();
            assert!(
                Rc::ptr_eq(&o, &first),
                "read once while the person's repeat"
            );
            let host = HostOptions::parse(&with(key)).unwrap();
            assert_eq!(host.key, key);
            assert_eq!(host.acknowledged.as_ref().unwrap().at, 1_764_460_800);
        }
        let half = pairs(&[("layout", "blocks"), ("silenced-by", "U1")]);
        assert!(HostOptions::parse(&half).is_err());
    }

    #[test]
    fn handler_file_keys_are_read() {
        let o = HandlerOptions::parse(&pairs(&[
            ("workspace", "alerts"),
            ("channel", "#c"),
            ("username", "bot"),
            ("icon-emoji", ":fire:"),
        ]))
        .unwrap();
        assert_eq!(
            o,
            HandlerOptions {
                workspace: "alerts".into(),
                channel: "#c".into(),
                username: "bot".into(),
                icon_emoji: ":fire:".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn tickscript_spelling_is_accepted() {
        let o = HandlerOptions::parse(&pairs(&[("iconEmoji", ":smile:")])).unwrap();
        assert_eq!(o.icon_emoji, ":smile:");
    }

    #[test]
    fn unknown_option_is_an_error() {
        let e = HandlerOptions::parse(&pairs(&[("icon_emoji", ":x:")])).unwrap_err();
        assert_eq!(
            e,
            HandlerError::UnknownOption(
                "unknown option `icon_emoji` (did you mean `icon-emoji`?)".into()
            )
        );
        let e = HandlerOptions::parse(&pairs(&[("colour", "red")])).unwrap_err();
        assert!(e
            .to_string()
            .contains("the options are workspace, channel, username, icon-emoji, layout, title"));
    }

    #[test]
    fn message_settings_are_options_too() {
        let o = HandlerOptions::parse(&pairs(&[
            ("layout", "blocks"),
            ("titleLink", "https://x.test/{{id}}"),
            ("on-recovery", "thread"),
        ]))
        .unwrap();
        assert_eq!(o.style.layout, Some(crate::style::Layout::Blocks));
        assert_eq!(
            o.style.title_link.unwrap().source(),
            "https://x.test/{{id}}"
        );
        let e = HandlerOptions::parse(&pairs(&[("title", "{{#each}}")])).unwrap_err();
        assert!(
            matches!(&e, HandlerError::InvalidOption(m) if m.starts_with("`title`: template error at line 1")),
            "{e:?}"
        );
    }

    #[test]
    fn storm_options_take_their_ranges_in_either_spelling() {
        let o =
            HandlerOptions::parse(&pairs(&[("stormAfter", "0"), ("storm-list", "200")])).unwrap();
        assert_eq!(
            (o.style.storm_after, o.style.storm_list),
            (Some(0), Some(200))
        );
        let o = HandlerOptions::parse(&pairs(&[("storm-after", ""), ("stormList", "1")])).unwrap();
        assert_eq!((o.style.storm_after, o.style.storm_list), (None, Some(1)));
        for (key, value, rule) in [
            ("storm-after", "-1", "`storm-after` must be a whole number, 0 or more (0 turns storms off), not \"-1\""),
            ("stormAfter", "four", "`storm-after` must be a whole number, 0 or more (0 turns storms off), not \"four\""),
            ("storm-list", "0", "`storm-list` must be a whole number from 1 to 200, not \"0\""),
            ("storm-list", "201", "`storm-list` must be a whole number from 1 to 200, not \"201\""),
        ] {
            assert_eq!(
                HandlerOptions::parse(&pairs(&[(key, value)])).unwrap_err(),
                HandlerError::InvalidOption(rule.into()),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn an_over_long_template_option_names_the_key_and_the_limit() {
        let e = HandlerOptions::parse(&pairs(&[("title", &"t".repeat(9_312))])).unwrap_err();
        assert_eq!(
            e,
            HandlerError::InvalidOption(
                "`title`: the template is 9,312 bytes; the most a template may have is 8,192"
                    .into()
            )
        );
        let fields = format!(
            r#"[{{"title":"t","value":"{}"}}]"#,
            "v".repeat(MAX_TEMPLATE_BYTES)
        );
        let e = HandlerOptions::parse(&pairs(&[("fields", &fields)])).unwrap_err();
        assert!(
            matches!(&e, HandlerError::InvalidOption(m) if m == "`fields` is 8,218 bytes; the most it may have, its templates and their JSON together, is 8,192"),
            "{e:?}"
        );
    }

    #[test]
    fn an_over_deep_template_option_names_the_key_and_the_limit() {
        let deep = format!("{}x{}", "{{#if a}}".repeat(17), "{{/if}}".repeat(17));
        let e = HandlerOptions::parse(&pairs(&[("text", &deep)])).unwrap_err();
        assert!(
            matches!(&e, HandlerError::InvalidOption(m) if m.starts_with("`text`: the template nests") && m.ends_with("the most a template may nest is 16")),
            "{e:?}"
        );
        let fields = format!(r#"[{{"title":"t","value":"{deep}"}}]"#);
        let e = HandlerOptions::parse(&pairs(&[("fields", &fields)])).unwrap_err();
        assert!(
            matches!(&e, HandlerError::InvalidOption(m) if m.starts_with("`fields` item 1 `value`: the template nests")),
            "{e:?}"
        );
    }

    #[test]
    fn template_options_at_the_limits_are_accepted() {
        let long = "t".repeat(MAX_TEMPLATE_BYTES);
        let deep = format!(
            "{}x{}",
            "{{#if a}}".repeat(MAX_TEMPLATE_NESTING),
            "{{/if}}".repeat(MAX_TEMPLATE_NESTING)
        );
        let o = HandlerOptions::parse(&pairs(&[("title", &long), ("text", &deep)])).unwrap();
        assert_eq!(o.style.title.unwrap().source(), long);
        assert_eq!(o.style.text.unwrap().source(), deep);
    }

    #[test]
    fn the_earlier_message_comes_as_a_pair() {
        let o = HostOptions::parse(&pairs(&[
            ("previous-channel-id", "C1"),
            ("previous-ts", "1.2"),
        ]))
        .unwrap();
        assert_eq!(
            o.previous,
            Some(PreviousMessage {
                channel_id: "C1".into(),
                ts: "1.2".into()
            })
        );
        let e = HostOptions::parse(&pairs(&[("previous-ts", "1.2")])).unwrap_err();
        assert!(e.to_string().contains("go together"));
    }

    #[test]
    fn no_options_means_all_from_the_workspace() {
        assert_eq!(
            HandlerOptions::parse(&[]).unwrap(),
            HandlerOptions::default()
        );
    }

    #[test]
    fn test_options_have_kapacitors_defaults() {
        let t = TestOptions::parse(&[]).unwrap();
        assert_eq!(t.message, "test slack message");
        assert_eq!(t.level, Level::Critical);
        assert_eq!(t.handler, HandlerOptions::default());
    }

    #[test]
    fn test_options_override_defaults() {
        let t = TestOptions::parse(&pairs(&[
            ("channel", "#t"),
            ("message", "hi"),
            ("level", "warning"),
        ]))
        .unwrap();
        assert_eq!(
            (t.handler.channel.as_str(), t.message.as_str(), t.level),
            ("#t", "hi", Level::Warning)
        );
    }

    #[test]
    fn bad_test_level_is_an_invalid_option() {
        let e = TestOptions::parse(&pairs(&[("level", "SEVERE")])).unwrap_err();
        assert!(
            matches!(e, HandlerError::InvalidOption(m) if m.starts_with("`level`: unknown level \"SEVERE\""))
        );
    }
}
