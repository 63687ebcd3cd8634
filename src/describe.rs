//! What this handler is and what it takes, for `describe` (callable before
//! `configure`): its kind, version, configuration keys and handler options,
//! each with a one-line doc. A test keeps the lists equal to the keys
//! `config` and `options` accept.

use crate::handler::KIND;

/// A configuration key or handler option and its one-line doc.
pub type Setting = (&'static str, &'static str);

/// The handler's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The keys of a `[[slack]]` section.
pub const CONFIG_KEYS: [Setting; 36] = [
    (
        "enabled",
        "Whether this workspace may send (default false).",
    ),
    ("default", "The workspace handlers use when they name none."),
    ("workspace", "The id handlers select this workspace by."),
    (
        "url",
        "The Web API (chat.postMessage) or incoming-webhook URL; secret for a webhook.",
    ),
    ("token", "The bot token for the Web API (secret)."),
    (
        "channel",
        "The channel messages go to when a handler names none.",
    ),
    ("username", "The name messages are posted as."),
    (
        "icon-emoji",
        "The emoji messages are posted with, e.g. :fire:.",
    ),
    ("global", "Alert nodes without .slack() send here too."),
    (
        "state-changes-only",
        "With global: send only when the level changes.",
    ),
    (
        "ssl-ca",
        "A CA bundle that replaces the default roots for this workspace.",
    ),
    (
        "ssl-cert",
        "A client certificate (PEM) for mutual TLS; with ssl-key.",
    ),
    ("ssl-key", "The client certificate's private key (PEM)."),
    (
        "insecure-skip-verify",
        "Accept any server certificate (logged; for testing only).",
    ),
    (
        "token-file",
        "A file holding the token, instead of token (its text, trimmed).",
    ),
    (
        "url-file",
        "A file holding the URL, instead of url (a webhook's URL is secret).",
    ),
    (
        "signing-secret-file",
        "A file holding the Slack app's signing secret, instead of signing-secret.",
    ),
    (
        "signing-secret",
        "The Slack app's signing secret: verifies the clicks on an alert's buttons.",
    ),
    (
        "layout",
        "kapacitor (default), attachment or blocks (Block Kit).",
    ),
    ("title", "The message's title (a template)."),
    ("title-link", "The URL the title links to (a template)."),
    (
        "text",
        "The message text (a template; default: the alert's message).",
    ),
    ("pretext", "A line above the message (a template)."),
    ("footer", "A line below the message (a template)."),
    (
        "color",
        "The colour bar, e.g. #ff0000 (a template; default: by level).",
    ),
    (
        "fields",
        "Label and value pairs shown in columns (templates).",
    ),
    (
        "icon-url",
        "An image URL messages are posted with, instead of an emoji.",
    ),
    (
        "link-names",
        "Let Slack link @names and #channels in the text.",
    ),
    ("mention", "Who to mention, e.g. <!here> or <@U123>."),
    (
        "mention-levels",
        "The levels that mention (default: CRITICAL only).",
    ),
    (
        "on-recovery",
        "new (default), update the alert's message, or reply in its thread.",
    ),
    (
        "thread-broadcast",
        "With on-recovery thread: show the reply in the channel too.",
    ),
    (
        "actions",
        "Buttons on a firing alert's message: acknowledge, silence (needs a token).",
    ),
    (
        "silence-durations",
        "The Silence buttons' durations (default: 1h,1d).",
    ),
    (
        "storm-after",
        "Alerts that may wait for a channel before one storm message shows them (default 4; 0: never).",
    ),
    (
        "storm-list",
        "The most alerts a storm message lists, 1 to 200 (default 50).",
    ),
];

/// The options `handle-alert` takes: Kapacitor's handler options, our
/// style keys with the same names as above, and what a host passes back.
pub const OPTIONS: [Setting; 30] = [
    (
        "workspace",
        "The workspace to send with (default: the default one).",
    ),
    (
        "channel",
        "The channel to post to (default: the workspace's).",
    ),
    (
        "username",
        "The name to post as (default: the workspace's).",
    ),
    (
        "icon-emoji",
        "The emoji to post with (default: the workspace's).",
    ),
    ("layout", "As the configuration key; the option wins."),
    ("title", "As the configuration key; the option wins."),
    ("title-link", "As the configuration key; the option wins."),
    ("text", "As the configuration key; the option wins."),
    ("pretext", "As the configuration key; the option wins."),
    ("footer", "As the configuration key; the option wins."),
    ("color", "As the configuration key; the option wins."),
    (
        "fields",
        "As the configuration key (a JSON list); the option wins.",
    ),
    ("icon-url", "As the configuration key; the option wins."),
    ("link-names", "As the configuration key; the option wins."),
    ("mention", "As the configuration key; the option wins."),
    (
        "mention-levels",
        "As the configuration key; the option wins.",
    ),
    ("on-recovery", "As the configuration key; the option wins."),
    (
        "thread-broadcast",
        "As the configuration key; the option wins.",
    ),
    ("actions", "As the configuration key; the option wins."),
    (
        "silence-durations",
        "As the configuration key; the option wins.",
    ),
    ("storm-after", "As the configuration key; the option wins."),
    ("storm-list", "As the configuration key; the option wins."),
    (
        "previous-channel-id",
        "Set by the host: the channel id of the alert's message so far.",
    ),
    (
        "previous-ts",
        "Set by the host: the ts of the alert's message so far.",
    ),
    (
        "alert-key",
        "Set by the host: what the alert's buttons name it by.",
    ),
    (
        "acknowledged-by",
        "Set by the host: who acknowledged the alert (a user id).",
    ),
    ("acknowledged-at", "Set by the host: when (Unix seconds)."),
    (
        "silenced-by",
        "Set by the host: who silenced the alert (a user id).",
    ),
    (
        "silenced-until",
        "Set by the host: until when (Unix seconds).",
    ),
    (
        "refresh",
        "Set by the host: edit the message at previous-ts in place (after a click).",
    ),
];

/// The handler kind, as a Kapacitor handler file's `kind`.
pub fn kind() -> &'static str {
    KIND
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config, options, style};

    fn names(list: &[Setting]) -> Vec<&'static str> {
        list.iter().map(|(name, _)| *name).collect()
    }

    #[test]
    fn the_lists_are_the_keys_the_handler_takes() {
        let config: Vec<&str> = config::KEYS
            .iter()
            .chain(config::FILE_KEYS.iter())
            .chain(config::SECRET_KEYS.iter())
            .chain(style::KEYS.iter())
            .copied()
            .collect();
        assert_eq!(names(&CONFIG_KEYS), config);
        let options: Vec<&str> = options::HANDLER_KEYS
            .iter()
            .chain(style::KEYS.iter())
            .chain(options::HOST_KEYS.iter())
            .copied()
            .collect();
        assert_eq!(names(&OPTIONS), options);
    }

    #[test]
    fn the_storm_keys_are_described_as_keys_and_options() {
        for list in [&CONFIG_KEYS[..], &OPTIONS[..]] {
            for key in ["storm-after", "storm-list"] {
                assert!(names(list).contains(&key), "{key}");
            }
        }
    }

    #[test]
    fn every_doc_is_one_line() {
        for (name, doc) in CONFIG_KEYS.iter().chain(OPTIONS.iter()) {
            assert!(
                !doc.is_empty() && !doc.contains('\n') && doc.len() < 100,
                "{name}: {doc}"
            );
        }
    }
}
