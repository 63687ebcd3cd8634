//! The `[[slack]]` configuration: parsing, Kapacitor's validation rules (with
//! its messages), the rules we add, and choosing a workspace.
//!
//! Errors name the line, the section and the key. They never quote a value,
//! because `url` and `token` are secrets.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::HandlerError;
use crate::style::{self, RawField, Style};
use crate::template::Template;
use crate::weburl::WebUrl;

/// Kapacitor's keys of a `[[slack]]` section; [`style::KEYS`] are ours.
pub const KEYS: [&str; 14] = [
    "enabled",
    "default",
    "workspace",
    "url",
    "token",
    "channel",
    "username",
    "icon-emoji",
    "global",
    "state-changes-only",
    "ssl-ca",
    "ssl-cert",
    "ssl-key",
    "insecure-skip-verify",
];

/// Keys naming a file that holds a secret (Alertmanager's convention).
pub const FILE_KEYS: [&str; 3] = ["token-file", "url-file", "signing-secret-file"];

/// Our secret keys beside Kapacitor's: the Slack app's signing secret,
/// which verifies the clicks on an alert's buttons (`interaction`).
pub const SECRET_KEYS: [&str; 1] = ["signing-secret"];

/// A string that must not be printed: `Debug` shows only whether it is set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

/// One `[[slack]]` section. A section read from a file starts from zero
/// values, as in Kapacitor: `username` is `""`, `default` is `false`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub enabled: bool,
    /// `default` as written; see [`Config::is_default`] for the effective value.
    pub default: bool,
    pub url: Secret,
    pub token: Secret,
    pub channel: String,
    pub username: String,
    pub icon_emoji: String,
    pub global: bool,
    pub state_changes_only: bool,
    pub ssl_ca: String,
    pub ssl_cert: String,
    pub ssl_key: String,
    pub insecure_skip_verify: bool,
    /// The Slack app's signing secret: a section without one takes no
    /// interactions.
    pub signing_secret: Secret,
    /// The message settings this handler adds (`layout`, templates, ...).
    pub style: Style,
}

impl Workspace {
    /// An enabled Web API section posting to `#alerts` as `AlertBot`, with
    /// no token: the unit tests' workspace.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Workspace {
        Workspace {
            enabled: true,
            url: Secret::new("https://slack.com/api/chat.postMessage"),
            channel: "#alerts".into(),
            username: "AlertBot".into(),
            ..Workspace::default()
        }
    }

    /// Whether it posts through the Web API (with a token) rather than a
    /// webhook, which cannot edit or thread messages.
    pub fn is_web_api(&self) -> bool {
        !self.token.is_empty()
    }
}

/// How the sections were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// One `[slack]` table.
    Table,
    /// One or more `[[slack]]` sections.
    Array,
}

/// A validated Slack configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub form: Form,
    pub workspaces: Vec<Workspace>,
}

impl Config {
    /// Parses and validates the configuration text: `[[slack]]` sections, one
    /// `[slack]` table, or a whole `kapacitor.conf` whose other sections are
    /// ignored. Every problem found is reported, one per line.
    pub fn parse(text: &str) -> Result<Config, HandlerError> {
        Config::parse_with(text, &NoSources)
    }

    /// [`Config::parse`], with the environment and files as `sources`
    /// give them: Kapacitor's `KAPACITOR_SLACK_<n>_<KEY>` overrides for the
    /// n-th section (0-based, its keys upper-cased with `_` for `-`), then
    /// `token-file` and `url-file` (Alertmanager's convention: the secret is
    /// the file's text, surrounding whitespace dropped). A problem names the
    /// key, the variable or the path, never a value.
    pub fn parse_with(text: &str, sources: &dyn Sources) -> Result<Config, HandlerError> {
        let doc = DeTable::parse(text).map_err(|e| {
            // The error's own Display quotes the offending line, which may
            // hold a token: report only the position and the message.
            let at = e
                .span()
                .map(|s| format!("line {}: ", line_of(text, s.start)))
                .unwrap_or_default();
            HandlerError::InvalidConfig(format!("{at}TOML syntax error: {}", e.message().trim()))
        })?;
        let doc = doc.get_ref();
        let slack = doc.get("slack").ok_or_else(|| {
            HandlerError::InvalidConfig(
                "no [slack] or [[slack]] section found in the configuration".to_string(),
            )
        })?;

        let (form, tables): (Form, Vec<&Spanned<DeValue>>) = match slack.get_ref() {
            DeValue::Table(_) => (Form::Table, vec![slack]),
            DeValue::Array(items) => (Form::Array, items.iter().collect()),
            other => {
                return Err(HandlerError::InvalidConfig(format!(
                    "line {}: `slack` must be a table ([slack]) or an array of tables ([[slack]]), not {}",
                    line_of(text, slack.span().start),
                    other.type_str()
                )))
            }
        };

        let mut problems = Problems::new(text);
        let mut workspaces = Vec::with_capacity(tables.len());
        for (index, item) in tables.iter().enumerate() {
            let section = Section {
                form,
                index,
                id: None,
            };
            match item.get_ref() {
                DeValue::Table(table) => {
                    let span = item.span();
                    workspaces.push(read_section(table, span, section, &mut problems, sources));
                }
                other => problems.push(
                    item.span(),
                    &section,
                    format!("must be a table, not {}", other.type_str()),
                ),
            }
        }
        let spans: Vec<Range<usize>> = tables.iter().map(|t| t.span()).collect();
        validate(form, &workspaces, &spans, &mut problems);
        problems.finish()?;
        Ok(Config { form, workspaces })
    }

    /// Whether `ws` answers when a handler names no workspace: with exactly
    /// one section it does, whatever `default` says.
    pub fn is_default(&self, ws: &Workspace) -> bool {
        self.workspaces.len() == 1 || ws.default
    }

    /// The default workspace, if any.
    pub fn default_workspace(&self) -> Option<&Workspace> {
        self.workspaces.iter().find(|ws| self.is_default(ws))
    }

    /// Chooses the workspace for a handler's `workspace` option, exactly as
    /// Kapacitor: empty means the default; a default with an id answers to
    /// both; an unknown id is an error with no fallback; a disabled section
    /// cannot send.
    pub fn select(&self, id: &str) -> Result<&Workspace, HandlerError> {
        if self.workspaces.is_empty() {
            return Err(HandlerError::NotConfigured(
                "no slack configuration found".to_string(),
            ));
        }
        let ws = if id.is_empty() {
            self.default_workspace()
                .ok_or_else(|| HandlerError::WorkspaceNotFound("(default)".to_string()))?
        } else {
            self.workspaces
                .iter()
                .find(|ws| ws.id == id)
                .ok_or_else(|| HandlerError::WorkspaceNotFound(id.to_string()))?
        };
        if !ws.enabled {
            return Err(HandlerError::WorkspaceDisabled(ws.id.clone()));
        }
        Ok(ws)
    }
}

/// Which section a message is about, for people: `[slack]`,
/// `[[slack]] #2 (workspace "alerts")`.
struct Section {
    form: Form,
    index: usize,
    id: Option<String>,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.form {
            Form::Table => f.write_str("[slack]")?,
            Form::Array => write!(f, "[[slack]] #{}", self.index + 1)?,
        }
        match &self.id {
            Some(id) if !id.is_empty() => write!(f, " (workspace \"{id}\")"),
            _ => Ok(()),
        }
    }
}

/// Collects problems with their positions, to report them in file order.
struct Problems<'t> {
    text: &'t str,
    found: Vec<(usize, String)>,
}

impl<'t> Problems<'t> {
    fn new(text: &'t str) -> Self {
        Problems {
            text,
            found: Vec::new(),
        }
    }

    fn push(&mut self, span: Range<usize>, section: &Section, message: String) {
        let line = line_of(self.text, span.start);
        self.found
            .push((span.start, format!("line {line}, {section}: {message}")));
    }

    fn push_global(&mut self, message: String) {
        self.found.push((usize::MAX, message));
    }

    fn finish(mut self) -> Result<(), HandlerError> {
        if self.found.is_empty() {
            return Ok(());
        }
        self.found.sort_by_key(|(at, _)| *at);
        let lines: Vec<String> = self.found.into_iter().map(|(_, m)| m).collect();
        Err(HandlerError::InvalidConfig(lines.join("\n")))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Where secrets come from besides the configuration text.
pub trait Sources {
    /// An environment variable, when set.
    fn var(&self, name: &str) -> Option<String>;
    /// A file's text, or why it cannot be read (never its content).
    fn read(&self, path: &str) -> Result<String, String>;
}

/// No environment and no files: what [`Config::parse`] sees.
pub struct NoSources;

impl Sources for NoSources {
    fn var(&self, _: &str) -> Option<String> {
        None
    }

    fn read(&self, _: &str) -> Result<String, String> {
        Err("no files can be read here".to_string())
    }
}

/// `KAPACITOR_SLACK_0_ICON_EMOJI` for `icon-emoji` in the first section.
pub fn env_name(index: usize, key: &str) -> String {
    format!(
        "KAPACITOR_SLACK_{index}_{}",
        key.to_ascii_uppercase().replace('-', "_")
    )
}

/// Go's `strconv.ParseBool`, as Kapacitor reads a boolean variable.
fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A `token-file` or `url-file` and where it was set.
struct FileKey {
    path: String,
    /// The key's span in the text, or the section's when a variable set it.
    span: Range<usize>,
    /// The variable that set it, if one did.
    from_env: Option<String>,
}

fn read_section(
    table: &DeTable,
    table_span: Range<usize>,
    mut section: Section,
    problems: &mut Problems,
    sources: &dyn Sources,
) -> Workspace {
    // The id first, so every message about this section can name it.
    if let Some(v) = table.get("workspace") {
        if let Some(id) = v.get_ref().as_str() {
            section.id = Some(id.to_string());
        }
    }
    let mut ws = Workspace::default();
    let (mut token_file, mut url_file, mut secret_file) = (None, None, None);
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        let span = key.span();
        if FILE_KEYS.contains(&name) {
            let Some(path) = value.get_ref().as_str() else {
                problems.push(
                    span,
                    &section,
                    format!(
                        "`{name}` must be a string (a path), not {}",
                        value.get_ref().type_str()
                    ),
                );
                continue;
            };
            let file = Some(FileKey {
                path: path.to_string(),
                span,
                from_env: None,
            });
            match name {
                "token-file" => token_file = file,
                "url-file" => url_file = file,
                _ => secret_file = file,
            }
            continue;
        }
        let mut bool_into = |slot: &mut bool| match value.get_ref().as_bool() {
            Some(b) => *slot = b,
            None => problems.push(
                span.clone(),
                &section,
                format!(
                    "`{name}` must be a boolean, not {}",
                    value.get_ref().type_str()
                ),
            ),
        };
        match name {
            "enabled" => bool_into(&mut ws.enabled),
            "default" => bool_into(&mut ws.default),
            "global" => bool_into(&mut ws.global),
            "state-changes-only" => bool_into(&mut ws.state_changes_only),
            "insecure-skip-verify" => bool_into(&mut ws.insecure_skip_verify),
            _ if style::KEYS.contains(&name) => {
                if let Err(message) = read_style_key(&mut ws.style, name, value.get_ref()) {
                    problems.push(span, &section, message);
                }
            }
            _ => {
                let slot: &mut String = match name {
                    "workspace" => &mut ws.id,
                    "url" => &mut ws.url.0,
                    "token" => &mut ws.token.0,
                    "signing-secret" => &mut ws.signing_secret.0,
                    "channel" => &mut ws.channel,
                    "username" => &mut ws.username,
                    "icon-emoji" => &mut ws.icon_emoji,
                    "ssl-ca" => &mut ws.ssl_ca,
                    "ssl-cert" => &mut ws.ssl_cert,
                    "ssl-key" => &mut ws.ssl_key,
                    _ => {
                        problems.push(span, &section, unknown_key_message(name));
                        continue;
                    }
                };
                match value.get_ref().as_str() {
                    Some(s) => *slot = s.to_string(),
                    None => problems.push(
                        span,
                        &section,
                        format!(
                            "`{name}` must be a string, not {}",
                            value.get_ref().type_str()
                        ),
                    ),
                }
            }
        }
    }
    // Kapacitor's environment overrides, over what the text says.
    let mut token_from_env = None;
    let mut url_from_env = None;
    let mut secret_from_env = None;
    // Kapacitor's keys, and ours for files and secrets.
    for &key in KEYS
        .iter()
        .chain(FILE_KEYS.iter())
        .chain(SECRET_KEYS.iter())
    {
        let variable = env_name(section.index, key);
        let Some(value) = sources.var(&variable).filter(|v| !v.is_empty()) else {
            continue;
        };
        let flag = |slot: &mut bool, problems: &mut Problems| match go_bool(&value) {
            Some(b) => *slot = b,
            None => problems.push(
                table_span.clone(),
                &section,
                format!("{variable} must be true or false (or 1, 0, t, f)"),
            ),
        };
        match key {
            "enabled" => flag(&mut ws.enabled, problems),
            "default" => flag(&mut ws.default, problems),
            "global" => flag(&mut ws.global, problems),
            "state-changes-only" => flag(&mut ws.state_changes_only, problems),
            "insecure-skip-verify" => flag(&mut ws.insecure_skip_verify, problems),
            "workspace" => ws.id = value,
            "url" => {
                ws.url = Secret::new(value);
                url_from_env = Some(variable);
            }
            "token" => {
                ws.token = Secret::new(value);
                token_from_env = Some(variable);
            }
            "signing-secret" => {
                ws.signing_secret = Secret::new(value);
                secret_from_env = Some(variable);
            }
            "channel" => ws.channel = value,
            "username" => ws.username = value,
            "icon-emoji" => ws.icon_emoji = value,
            "ssl-ca" => ws.ssl_ca = value,
            "ssl-cert" => ws.ssl_cert = value,
            "ssl-key" => ws.ssl_key = value,
            "token-file" | "url-file" | "signing-secret-file" => {
                let file = Some(FileKey {
                    path: value,
                    span: table_span.clone(),
                    from_env: Some(variable),
                });
                match key {
                    "token-file" => token_file = file,
                    "url-file" => url_file = file,
                    _ => secret_file = file,
                }
            }
            _ => {}
        }
    }
    // Secrets from files, read once, here.
    for (key, file, slot, set_by) in [
        ("token", token_file, &mut ws.token, token_from_env),
        ("url", url_file, &mut ws.url, url_from_env),
        (
            "signing-secret",
            secret_file,
            &mut ws.signing_secret,
            secret_from_env,
        ),
    ] {
        let Some(file) = file else { continue };
        let named = match &file.from_env {
            Some(variable) => format!("`{key}-file` (from {variable})"),
            None => format!("`{key}-file`"),
        };
        if !slot.is_empty() {
            let other = match set_by {
                Some(variable) => format!("`{key}` (from {variable})"),
                None => format!("`{key}`"),
            };
            problems.push(
                file.span,
                &section,
                format!("{other} and {named} are both set: keep one"),
            );
            continue;
        }
        match sources.read(&file.path) {
            Ok(text) if text.trim().is_empty() => problems.push(
                file.span,
                &section,
                format!("{named} \"{}\" is empty", file.path),
            ),
            Ok(text) => *slot = Secret::new(text.trim()),
            Err(why) => problems.push(
                file.span,
                &section,
                format!("{named} \"{}\": cannot read it: {why}", file.path),
            ),
        }
    }
    ws
}

/// Reads one of our message settings from its TOML value: text for most,
/// booleans for `link-names` and `thread-broadcast`, an array of tables for
/// `fields`. Templates are compiled here, once.
fn read_style_key(style: &mut Style, name: &str, value: &DeValue) -> Result<(), String> {
    match name {
        "link-names" | "thread-broadcast" => match value.as_bool() {
            Some(flag) => {
                style.set_flag(name, flag);
                Ok(())
            }
            None => Err(format!(
                "`{name}` must be a boolean, not {}",
                value.type_str()
            )),
        },
        "fields" => {
            let shape =
                "`fields` must be an array of tables: { title = \"...\", value = \"...\", short = true }";
            let DeValue::Array(items) = value else {
                return Err(format!("{shape}, not {}", value.type_str()));
            };
            let mut fields = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let DeValue::Table(table) = item.get_ref() else {
                    return Err(format!(
                        "{shape}; item {} is {}",
                        i + 1,
                        item.get_ref().type_str()
                    ));
                };
                let mut raw = RawField::default();
                for (k, v) in table.iter() {
                    let key: &str = k.get_ref();
                    match (key, v.get_ref()) {
                        ("title", DeValue::String(s)) => raw.title = s.to_string(),
                        ("value", DeValue::String(s)) => raw.value = s.to_string(),
                        ("short", DeValue::Boolean(b)) => raw.short = *b,
                        _ => {
                            return Err(format!(
                                "`fields` item {}: `{key}` must be title (a string), value (a string) or short (a boolean)",
                                i + 1
                            ))
                        }
                    }
                }
                fields.push(raw.compile(i, Template::compile)?);
            }
            style.fields = Some(fields);
            Ok(())
        }
        "storm-after" | "storm-list" => match value {
            // Read as text so that one rule (and its message) decides what
            // a key takes, whether it came from here or from an option.
            DeValue::Integer(n) => match i128::from_str_radix(n.as_str(), n.radix()) {
                Ok(n) => style.set(name, &n.to_string(), Template::compile),
                Err(_) => style.set(name, n.as_str(), Template::compile),
            },
            _ => Err(format!(
                "`{name}` must be an integer, not {}",
                value.type_str()
            )),
        },
        // Lists: a comma-separated string, or an array of strings.
        "actions" | "silence-durations" if matches!(value, DeValue::Array(_)) => {
            let DeValue::Array(items) = value else {
                return Ok(());
            };
            let mut list = Vec::with_capacity(items.len());
            for item in items.iter() {
                match item.get_ref().as_str() {
                    Some(text) => list.push(text),
                    None => {
                        return Err(format!(
                            "`{name}` must be strings, not {}",
                            item.get_ref().type_str()
                        ))
                    }
                }
            }
            style.set(name, &list.join(","), Template::compile)
        }
        _ => match value.as_str() {
            Some(text) => style.set(name, text, Template::compile),
            None => Err(format!(
                "`{name}` must be a string, not {}",
                value.type_str()
            )),
        },
    }
}

fn unknown_key_message(name: &str) -> String {
    let normalised = normalise_key(name);
    let all = KEYS
        .iter()
        .chain(FILE_KEYS.iter())
        .chain(SECRET_KEYS.iter())
        .chain(style::KEYS.iter());
    match all.clone().find(|k| normalise_key(k) == normalised) {
        Some(known) => format!("unknown key `{name}` (did you mean `{known}`?)"),
        None => format!(
            "unknown key `{name}`; the keys are {}",
            all.copied().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Lower-cases and drops `-` and `_`, so `icon_emoji`, `iconEmoji` and
/// `stateChangesOnly` are recognised as typos of the real key.
pub(crate) fn normalise_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Kapacitor's rules, per section then over all sections, with its messages;
/// then ours (URL shape, duplicate ids, more than one default).
fn validate(form: Form, all: &[Workspace], spans: &[Range<usize>], problems: &mut Problems) {
    for (index, (ws, span)) in all.iter().zip(spans).enumerate() {
        let section = Section {
            form,
            index,
            id: Some(ws.id.clone()),
        };
        let mut say = |message: &str| problems.push(span.clone(), &section, message.to_string());
        if ws.enabled && ws.url.is_empty() {
            say("must specify url");
        }
        if !ws.url.is_empty() {
            if let Err(reason) = check_url(ws.url.expose()) {
                // Kapacitor quotes the URL here; it is a secret, so we don't.
                say(&format!("invalid url (key `url`): {reason}"));
            }
        }
        if all.len() > 1 && ws.id.is_empty() {
            say("id must not be empty (set `workspace`)");
        }
        if ws.global && !ws.default {
            say("only the default config may be assigned as global");
        }
        if ws.state_changes_only && !(ws.default && ws.global) {
            say("stateChangesOnly may only be assigned when the config is both default and global");
        }
        if let Err(message) = ws.style.check_layout() {
            say(&message);
        }
        let on_recovery = ws.style.on_recovery();
        if on_recovery != style::OnRecovery::New && !ws.url.is_empty() && !ws.is_web_api() {
            say(&webhook_cannot(on_recovery));
        }
        if ws.style.has_buttons() && !ws.is_web_api() {
            say(&webhook_cannot_buttons());
        }
        if let Some(n) = ws.style.storm_after.filter(|n| *n > 0) {
            if !ws.url.is_empty() && !ws.is_web_api() {
                say(&format!(
                    "`storm-after` = {n}: {}; set 0 or leave it out",
                    webhook_cannot_storm()
                ));
            }
        }
        match (ws.ssl_cert.is_empty(), ws.ssl_key.is_empty()) {
            (false, true) => say("Must provide both key and cert files: only cert file provided."),
            (true, false) => say("Must provide both key and cert files: only key file provided."),
            _ => {}
        }
        // Beyond Kapacitor, which lets the later of two equal ids win.
        if !ws.id.is_empty() {
            if let Some(first) = all[..index].iter().position(|o| o.id == ws.id) {
                say(&format!(
                    "duplicate workspace id \"{}\": section #{} already uses it",
                    ws.id,
                    first + 1
                ));
            }
        }
    }
    if all.len() > 1 {
        let defaults: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].default)
            .map(|i| i + 1)
            .collect();
        match defaults.len() {
            0 => {
                problems.push_global("at least one Slack config must be set as default".to_string())
            }
            1 => {}
            _ => problems.push_global(format!(
                "only one Slack config may be set as default; sections {} all are",
                defaults
                    .iter()
                    .map(|i| format!("#{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Why a webhook's section cannot carry `actions`.
pub fn webhook_cannot_buttons() -> String {
    "`actions` needs the Web API (a `token` and chat.postMessage's URL): a click updates the alert's message, which a webhook cannot edit".to_string()
}

/// Why a webhook cannot send a storm message (nor take `storm-after`
/// above 0).
pub fn webhook_cannot_storm() -> String {
    "a storm message needs the Web API (a `token` and chat.postMessage's URL): it is edited in place (chat.update), which a webhook cannot do".to_string()
}

/// Why `on-recovery` `update` or `thread` cannot work with a webhook.
pub fn webhook_cannot(on_recovery: style::OnRecovery) -> String {
    format!(
        "on-recovery = \"{}\" needs the Web API (a `token` and chat.postMessage's URL): a webhook cannot edit or reply to a message",
        on_recovery.as_str()
    )
}

/// The URL must be absolute `http` or `https` with a host. The reason never
/// quotes the URL.
fn check_url(raw: &str) -> Result<WebUrl, String> {
    let parsed = WebUrl::parse(raw)?;
    if parsed.scheme != "https" && parsed.scheme != "http" {
        return Err(format!(
            "the scheme must be https or http, not `{}`",
            parsed.scheme
        ));
    }
    if parsed.host.is_empty() {
        return Err("the URL has no host".to_string());
    }
    Ok(parsed)
}

/// The scheme and authority (`host[:port]`, no user-info) of a workspace's
/// URL: where its requests go, without the secret path.
pub fn endpoint(ws: &Workspace) -> Option<(String, String)> {
    if ws.url.is_empty() {
        return None;
    }
    let url = check_url(ws.url.expose()).ok()?;
    Some((url.scheme.clone(), url.authority()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Config::parse(text) {
            Err(HandlerError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    const SEED: &str = r##"
[[slack]]
  enabled = true
  default = true
  workspace = "alerts"
  url = "https://slack.com/api/chat.postMessage"
  token = "mY5uP3Rs3CrE7t0keN1"
  channel = "#alerts"
  username = "AlertBot"
  global = false
  state-changes-only = false

[[slack]]
  enabled = true
  default = false
  workspace = "error-reports"
  url = "https://slack.com/api/chat.postMessage"
  token = "mY5uP3Rs3CrE7t0keN2"
  channel = "#error-reports"
  username = "StatsBot"
  global = false
  state-changes-only = false
"##;

    #[test]
    fn a_section_template_is_bounded_as_an_option_is() {
        let section = |key: &str, template: &str| {
            format!("[slack]\nenabled = true\nurl = \"https://slack.test/api/chat.postMessage\"\nlayout = \"blocks\"\n{key} = '{template}'\n")
        };
        let e = err(&section("footer", &"f".repeat(8_193)));
        assert!(
            e.ends_with(
                "`footer`: the template is 8,193 bytes; the most a template may have is 8,192"
            ),
            "{e}"
        );
        assert!(e.starts_with("line 5,"), "{e}");
        let deep = format!("{}x{}", "{{#if a}}".repeat(17), "{{/if}}".repeat(17));
        let e = err(&section("title", &deep));
        assert!(e.contains("`title`: the template nests"), "{e}");
    }

    #[test]
    fn storm_keys_are_integers_in_their_ranges() {
        let section = |keys: &str| {
            format!("[[slack]]\nworkspace = \"ops\"\nenabled = true\nurl = \"https://slack.test/api/chat.postMessage\"\ntoken = \"t\"\n{keys}")
        };
        let c = Config::parse(&section("storm-after = 0\nstorm-list = 0x10\n")).unwrap();
        let style = &c.workspaces[0].style;
        assert_eq!((style.storm_after(), style.storm_list()), (0, 16));
        let c = Config::parse(&section("")).unwrap();
        let style = &c.workspaces[0].style;
        assert_eq!((style.storm_after(), style.storm_list()), (4, 50));
        for (keys, rule) in [
            ("storm-after = -1", "line 6, [[slack]] #1 (workspace \"ops\"): `storm-after` must be a whole number, 0 or more (0 turns storms off), not \"-1\""),
            ("storm-after = \"4\"", "line 6, [[slack]] #1 (workspace \"ops\"): `storm-after` must be an integer, not string"),
            ("storm-list = 0", "line 6, [[slack]] #1 (workspace \"ops\"): `storm-list` must be a whole number from 1 to 200, not \"0\""),
            ("storm-list = 1_000", "line 6, [[slack]] #1 (workspace \"ops\"): `storm-list` must be a whole number from 1 to 200, not \"1000\""),
        ] {
            assert_eq!(err(&section(keys)), rule, "{keys}");
        }
    }

    #[test]
    fn seed_configuration_parses() {
        let c = Config::parse(SEED).unwrap();
        assert_eq!(c.form, Form::Array);
        assert_eq!(c.workspaces.len(), 2);
        let a = &c.workspaces[0];
        assert_eq!(a.id, "alerts");
        assert_eq!(a.token.expose(), "mY5uP3Rs3CrE7t0keN1");
        assert_eq!(a.channel, "#alerts");
        assert_eq!(a.username, "AlertBot");
        assert!(c.is_default(a));
        assert!(!c.is_default(&c.workspaces[1]));
    }

    #[test]
    fn all_fourteen_keys_are_read() {
        let c = Config::parse(
            r##"[slack]
enabled = true
default = true
workspace = "w"
url = "https://slack.com/api/chat.postMessage"
token = "t"
channel = "#c"
username = "u"
icon-emoji = ":e:"
global = true
state-changes-only = true
ssl-ca = "/ca.pem"
ssl-cert = "/cert.pem"
ssl-key = "/key.pem"
insecure-skip-verify = true
"##,
        )
        .unwrap();
        let w = &c.workspaces[0];
        assert_eq!(c.form, Form::Table);
        assert_eq!(
            (
                w.enabled,
                w.default,
                w.global,
                w.state_changes_only,
                w.insecure_skip_verify
            ),
            (true, true, true, true, true)
        );
        assert_eq!(
            [
                &w.id,
                &w.channel,
                &w.username,
                &w.icon_emoji,
                &w.ssl_ca,
                &w.ssl_cert,
                &w.ssl_key
            ],
            ["w", "#c", "u", ":e:", "/ca.pem", "/cert.pem", "/key.pem"]
        );
        assert_eq!(w.url.expose(), "https://slack.com/api/chat.postMessage");
        assert_eq!(w.token.expose(), "t");
    }

    #[test]
    fn a_section_starts_from_zero_values() {
        let c = Config::parse("[slack]\nenabled = true\nurl = \"https://x.test/\"\n").unwrap();
        let w = &c.workspaces[0];
        assert_eq!(w.username, "");
        assert!(!w.default);
        // ...but the only section is the default whatever `default` says.
        assert!(c.is_default(w));
    }

    #[test]
    fn whole_kapacitor_conf_ignores_other_sections() {
        let text = format!(
            "hostname = \"localhost\"\n[http]\nbind-address = \":9092\"\n[[influxdb]]\nname = \"x\"\n{SEED}\n[smtp]\nenabled = false\n"
        );
        assert_eq!(Config::parse(&text).unwrap().workspaces.len(), 2);
    }

    #[test]
    fn enabled_without_url_is_an_error() {
        let m = err("[slack]\nenabled = true\n");
        assert!(m.contains("[slack]: must specify url"), "{m}");
    }

    #[test]
    fn disabled_without_url_is_fine() {
        assert!(Config::parse("[slack]\nenabled = false\n").is_ok());
    }

    #[test]
    fn unparseable_url_is_an_error_without_quoting_it() {
        let m = err("[slack]\nurl = \"not a url/SECRETPATH\"\n");
        assert!(m.contains("invalid url (key `url`)"), "{m}");
        assert!(!m.contains("SECRETPATH"), "{m}");
    }

    #[test]
    fn url_with_other_scheme_or_no_host_is_an_error() {
        assert!(
            err("[slack]\nurl = \"ftp://slack.com/x\"\n").contains("scheme must be https or http")
        );
        assert!(err("[slack]\nurl = \"https://\"\n").contains("invalid url"));
        assert!(err("[slack]\nurl = \"/api/chat.postMessage\"\n").contains("invalid url"));
    }

    #[test]
    fn several_sections_need_ids() {
        let m = err(
            "[[slack]]\ndefault = true\nworkspace = \"a\"\n[[slack]]\nurl = \"https://x.test/\"\n",
        );
        assert!(
            m.contains("line 4, [[slack]] #2: id must not be empty"),
            "{m}"
        );
    }

    #[test]
    fn global_needs_default() {
        // Even a single [slack] needs `default = true` for `global` (checked).
        let m = err("[slack]\nglobal = true\n");
        assert!(
            m.contains("only the default config may be assigned as global"),
            "{m}"
        );
        assert!(Config::parse("[slack]\ndefault = true\nglobal = true\n").is_ok());
    }

    #[test]
    fn state_changes_only_needs_default_and_global() {
        let m = err("[slack]\ndefault = true\nstate-changes-only = true\n");
        assert!(m.contains(
            "stateChangesOnly may only be assigned when the config is both default and global"
        ));
        assert!(Config::parse(
            "[slack]\ndefault = true\nglobal = true\nstate-changes-only = true\n"
        )
        .is_ok());
    }

    #[test]
    fn several_sections_need_a_default() {
        let m = err("[[slack]]\nworkspace = \"a\"\n[[slack]]\nworkspace = \"b\"\n");
        assert!(
            m.contains("at least one Slack config must be set as default"),
            "{m}"
        );
    }

    #[test]
    fn cert_and_key_go_together() {
        assert!(err("[slack]\nssl-cert = \"/c.pem\"\n")
            .contains("Must provide both key and cert files: only cert file provided."));
        assert!(err("[slack]\nssl-key = \"/k.pem\"\n")
            .contains("Must provide both key and cert files: only key file provided."));
    }

    #[test]
    fn duplicate_workspace_ids_are_an_error() {
        let m = err("[[slack]]\ndefault = true\nworkspace = \"a\"\n[[slack]]\nworkspace = \"a\"\n");
        assert!(
            m.contains("line 4, [[slack]] #2 (workspace \"a\"): duplicate workspace id \"a\": section #1 already uses it"),
            "{m}"
        );
    }

    #[test]
    fn two_defaults_are_an_error() {
        let m = err("[[slack]]\ndefault = true\nworkspace = \"a\"\n[[slack]]\ndefault = true\nworkspace = \"b\"\n");
        assert!(
            m.contains("only one Slack config may be set as default; sections #1, #2"),
            "{m}"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_section_and_a_suggestion() {
        let m = err("[[slack]]\ndefault = true\nworkspace = \"w\"\nicon_emoji = \":x:\"\nstatechangesonly = true\nbogus = 1\n");
        assert!(m.contains("line 4, [[slack]] #1 (workspace \"w\"): unknown key `icon_emoji` (did you mean `icon-emoji`?)"), "{m}");
        assert!(m.contains("line 5, [[slack]] #1 (workspace \"w\"): unknown key `statechangesonly` (did you mean `state-changes-only`?)"), "{m}");
        assert!(m.contains("line 6, [[slack]] #1 (workspace \"w\"): unknown key `bogus`; the keys are enabled,"), "{m}");
    }

    #[test]
    fn wrong_types_are_named() {
        let m = err("[slack]\nenabled = \"yes\"\nchannel = 5\n");
        assert!(
            m.contains("line 2, [slack]: `enabled` must be a boolean, not string"),
            "{m}"
        );
        assert!(
            m.contains("line 3, [slack]: `channel` must be a string, not integer"),
            "{m}"
        );
    }

    #[test]
    fn syntax_errors_give_a_line_and_no_source_text() {
        let m = err("[slack]\ntoken = \"xoxb-SECRET\nurl = 3\n");
        assert!(m.starts_with("line 2: TOML syntax error"), "{m}");
        assert!(!m.contains("xoxb-SECRET"), "{m}");
    }

    #[test]
    fn missing_or_misshapen_slack_section_is_an_error() {
        assert!(err("").contains("no [slack] or [[slack]] section"));
        assert!(err("[http]\nx = 1\n").contains("no [slack] or [[slack]] section"));
        assert!(err("slack = 3\n").contains("`slack` must be a table"));
        assert!(err("slack = [1]\n").contains("[[slack]] #1: must be a table, not integer"));
    }

    #[test]
    fn every_problem_is_reported() {
        let m = err("[slack]\nenabled = true\nglobal = true\nssl-key = \"/k\"\n");
        assert_eq!(m.lines().count(), 3, "{m}");
    }

    #[test]
    // Kapacitor's server test builds an unnamed default beside
    // `company_private` in code, which skips this rule; from a file it holds.
    fn kapacitor_rejects_an_unnamed_section_among_several() {
        assert!(matches!(
            Config::parse("[[slack]]\ndefault = true\n[[slack]]\nworkspace = \"b\"\n"),
            Err(HandlerError::InvalidConfig(m)) if m.contains("id must not be empty")
        ));
    }

    fn named() -> Config {
        Config::parse(
            r#"[[slack]]
enabled = true
default = true
workspace = "main"
url = "http://127.0.0.1:1/default"
[[slack]]
enabled = true
workspace = "company_private"
url = "http://127.0.0.1:1/private"
token = "my_secret_token"
[[slack]]
enabled = false
workspace = "off"
"#,
        )
        .unwrap()
    }

    #[test]
    fn empty_workspace_selects_the_default() {
        assert_eq!(named().select("").unwrap().id, "main");
    }

    #[test]
    fn default_answers_to_its_id_too() {
        assert_eq!(named().select("main").unwrap().id, "main");
    }

    #[test]
    fn named_workspace_is_selected() {
        assert_eq!(
            named().select("company_private").unwrap().token.expose(),
            "my_secret_token"
        );
    }

    #[test]
    fn unknown_workspace_is_an_error() {
        assert_eq!(
            named().select("nope"),
            Err(HandlerError::WorkspaceNotFound("nope".to_string()))
        );
    }

    #[test]
    fn disabled_workspace_is_an_error() {
        assert_eq!(
            named().select("off"),
            Err(HandlerError::WorkspaceDisabled("off".to_string()))
        );
    }

    #[test]
    fn lone_unnamed_section_does_not_answer_to_a_name() {
        // Kapacitor issue 2054: no fallback to the default.
        let c = Config::parse("[slack]\nenabled = true\nurl = \"https://x.test/\"\n").unwrap();
        assert_eq!(
            c.select("alerts"),
            Err(HandlerError::WorkspaceNotFound("alerts".into()))
        );
        assert!(c.select("").is_ok());
    }

    #[test]
    fn endpoint_has_no_path_or_user_info() {
        let mut w = Workspace {
            url: Secret::new("https://user:pw@hooks.slack.com:8443/services/T0/B0/SECRET?x=1"),
            ..Workspace::default()
        };
        assert_eq!(
            endpoint(&w),
            Some(("https".into(), "hooks.slack.com:8443".into()))
        );
        w.url = Secret::new("https://slack.com/api/chat.postMessage");
        assert_eq!(endpoint(&w), Some(("https".into(), "slack.com".into())));
        w.url = Secret::new("");
        assert_eq!(endpoint(&w), None);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = named();
        let shown = format!("{c:?}");
        assert!(!shown.contains("my_secret_token"), "{shown}");
        assert!(!shown.contains("/private"), "{shown}");
    }

    /// An environment and files for [`Config::parse_with`].
    #[derive(Default)]
    struct Fake {
        vars: Vec<(&'static str, &'static str)>,
        files: Vec<(&'static str, &'static str)>,
    }

    impl Sources for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }

        fn read(&self, path: &str) -> Result<String, String> {
            self.files
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, t)| t.to_string())
                .ok_or_else(|| "No such file or directory".to_string())
        }
    }

    const WITH_FILES: &str = "[[slack]]\nenabled = true\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken-file = \"/run/secrets/slack-token\"\nchannel = \"#a\"\n";

    #[test]
    fn token_and_url_come_from_files_without_their_newline() {
        let fake = Fake {
            files: vec![
                ("/run/secrets/slack-token", "xoxb-from-file\n"),
                (
                    "/run/secrets/hook",
                    "https://hooks.slack.com/services/T/B/SECRET\r\n",
                ),
            ],
            ..Fake::default()
        };
        let c = Config::parse_with(WITH_FILES, &fake).unwrap();
        assert_eq!(c.workspaces[0].token.expose(), "xoxb-from-file");
        let hook = "[slack]\nenabled = true\nurl-file = \"/run/secrets/hook\"\n";
        let c = Config::parse_with(hook, &fake).unwrap();
        assert_eq!(
            c.workspaces[0].url.expose(),
            "https://hooks.slack.com/services/T/B/SECRET"
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_is_named_by_key_and_path() {
        let e = Config::parse_with(WITH_FILES, &Fake::default()).unwrap_err();
        let HandlerError::InvalidConfig(m) = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            m,
            "line 4, [[slack]] #1: `token-file` \"/run/secrets/slack-token\": cannot read it: No such file or directory"
        );
        let empty = Fake {
            files: vec![("/run/secrets/slack-token", " \n")],
            ..Fake::default()
        };
        let e = Config::parse_with(WITH_FILES, &empty).unwrap_err();
        assert!(format!("{e:?}").contains("is empty"), "{e:?}");
        // Without a source of files at all (Config::parse), the same.
        assert!(Config::parse(WITH_FILES).is_err());
    }

    #[test]
    fn a_secret_given_twice_is_refused_naming_both() {
        let text = WITH_FILES.replace("channel", "token = \"xoxb-inline\"\nchannel");
        let fake = Fake {
            files: vec![("/run/secrets/slack-token", "xoxb-from-file")],
            ..Fake::default()
        };
        let e = format!("{:?}", Config::parse_with(&text, &fake).unwrap_err());
        assert!(e.contains("`token` and `token-file` are both set"), "{e}");
        assert!(!e.contains("xoxb"), "no secret in the error: {e}");
        let env = Fake {
            vars: vec![("KAPACITOR_SLACK_0_TOKEN", "xoxb-env")],
            files: vec![("/run/secrets/slack-token", "xoxb-from-file")],
        };
        let e = format!("{:?}", Config::parse_with(WITH_FILES, &env).unwrap_err());
        assert!(
            e.contains("`token` (from KAPACITOR_SLACK_0_TOKEN) and `token-file` are both set"),
            "{e}"
        );
    }

    #[test]
    fn kapacitors_environment_overrides_apply_by_section_index() {
        let text = "[[slack]]\nworkspace = \"a\"\nenabled = false\nurl = \"https://slack.com/api/chat.postMessage\"\nchannel = \"#a\"\n[[slack]]\nworkspace = \"b\"\ndefault = true\nenabled = true\nurl = \"https://slack.com/api/chat.postMessage\"\nchannel = \"#b\"\n";
        let fake = Fake {
            vars: vec![
                ("KAPACITOR_SLACK_0_ENABLED", "TRUE"),
                ("KAPACITOR_SLACK_0_TOKEN", "xoxb-env"),
                ("KAPACITOR_SLACK_1_ICON_EMOJI", ":fire:"),
                ("KAPACITOR_SLACK_1_CHANNEL", ""),
                ("KAPACITOR_SLACK_2_TOKEN", "no such section: ignored"),
            ],
            ..Fake::default()
        };
        let c = Config::parse_with(text, &fake).unwrap();
        assert!(c.workspaces[0].enabled);
        assert_eq!(c.workspaces[0].token.expose(), "xoxb-env");
        assert_eq!(c.workspaces[1].icon_emoji, ":fire:");
        assert_eq!(
            c.workspaces[1].channel, "#b",
            "an empty variable sets nothing"
        );
        assert_eq!(c.workspaces.len(), 2);
    }

    #[test]
    fn a_bad_boolean_variable_is_named_not_quoted() {
        let fake = Fake {
            vars: vec![("KAPACITOR_SLACK_0_GLOBAL", "sometimes")],
            files: vec![("/run/secrets/slack-token", "xoxb")],
        };
        let e = format!("{:?}", Config::parse_with(WITH_FILES, &fake).unwrap_err());
        assert!(
            e.contains("[[slack]] #1: KAPACITOR_SLACK_0_GLOBAL must be true or false"),
            "{e}"
        );
        assert!(!e.contains("sometimes"), "{e}");
    }

    #[test]
    fn a_variable_can_name_the_token_file() {
        let text = WITH_FILES.replace("token-file = \"/run/secrets/slack-token\"\n", "");
        let fake = Fake {
            vars: vec![("KAPACITOR_SLACK_0_TOKEN_FILE", "/elsewhere/token")],
            files: vec![("/elsewhere/token", "xoxb-elsewhere\n")],
        };
        let c = Config::parse_with(&text, &fake).unwrap();
        assert_eq!(c.workspaces[0].token.expose(), "xoxb-elsewhere");
    }
}
