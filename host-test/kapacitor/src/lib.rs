//! Kapacitor's formats, as plain functions on plain types (no I/O but
//! reading the files a caller names): what a Kapacitor user already has
//! keeps working when the alert-handler component and its daemon replace
//! Kapacitor's Slack handler.
//!
//! - [`alert_json`]: the alert JSON of Kapacitor's `post` handler, as the
//!   WIT's alert event.
//! - [`handler_file`]: topic-handler files (YAML or JSON) of kind `slack`.
//! - [`tick`]: a TICKscript's `.slack()` chain, as handler options.
//! - [`lambda`]: `match` expressions, parsed at load and evaluated per
//!   event.
//! - [`topics`]: a directory of handler files, and routing an event to the
//!   handlers of its topic (`slack`, `aggregate`, `publish`).
//! - [`aggregate`]: an aggregate handler's window and the event it emits.
//! - [`route`]: an alert node without `.slack()` (the default workspace,
//!   `global`, `state-changes-only`).

pub mod aggregate;
pub mod alert_json;
pub mod handler_file;
pub mod lambda;
pub mod route;
pub mod tick;
pub mod topics;
