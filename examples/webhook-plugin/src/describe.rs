//! What this handler is and what it takes, for `describe`: the one list of
//! configuration keys and options, each with a one-line doc. `config` and
//! `options` name these lists when they refuse a key.

/// The handler kind, as a Kapacitor handler file's `kind`.
pub const KIND: &str = "webhook";

/// The handler's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A configuration key or an option: its name, one line of doc, and
/// whether it is the host's to set.
pub type Setting = (&'static str, &'static str, bool);

/// The keys of a `[[webhook]]` section.
pub const CONFIG_KEYS: [Setting; 7] = [
    (
        "enabled",
        "Whether this section may send (default true).",
        false,
    ),
    (
        "default",
        "The section used when a handler names none.",
        false,
    ),
    (
        "workspace",
        "The id handlers select this section by (required with several sections).",
        false,
    ),
    (
        "url",
        "The http:// or https:// URL each alert is POSTed to (required).",
        false,
    ),
    (
        "headers",
        "A table of header names and values sent with each request (values are secret).",
        false,
    ),
    (
        "body",
        "A handlebars template for the body; values are JSON-escaped (default: the event as JSON).",
        false,
    ),
    (
        "content-type",
        "The request's Content-Type (default application/json).",
        false,
    ),
];

/// The options of `handle-alert` and `preview-alert`.
pub const OPTIONS: [Setting; 10] = [
    (
        "workspace",
        "The section to send through (default: the default section).",
        false,
    ),
    (
        "body",
        "A handlebars template for the body, instead of the section's.",
        false,
    ),
    (
        "alert-key",
        "Ignored: a host's option for chat handlers.",
        true,
    ),
    (
        "previous-channel-id",
        "Ignored: a host's option for chat handlers.",
        true,
    ),
    (
        "previous-ts",
        "Ignored: a host's option for chat handlers.",
        true,
    ),
    (
        "acknowledged-by",
        "Ignored: a host's option for chat handlers.",
        true,
    ),
    (
        "acknowledged-at",
        "Ignored: a host's option for chat handlers.",
        true,
    ),
    (
        "silenced-by",
        "Ignored: a host's option for chat handlers.",
        true,
    ),
    (
        "silenced-until",
        "Ignored: a host's option for chat handlers.",
        true,
    ),
    (
        "refresh",
        "Ignored: a host's option for chat handlers.",
        true,
    ),
];

/// The names of `settings` that are not the host's, joined for a message.
pub fn names(settings: &[Setting]) -> String {
    settings
        .iter()
        .filter(|(_, _, host_only)| !host_only)
        .map(|(name, _, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}
