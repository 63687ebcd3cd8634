//! Kapacitor's formats, as plain functions on plain types: what a
//! Kapacitor user already has keeps working when the alert-handler
//! component and its daemon replace Kapacitor's Slack handler.
//!
//! Every function here is pure (text in, values or an error out; the clock
//! is the caller's) except one: [`topics::Handlers::load`] reads a
//! directory's handler files and hands their names and texts to the pure
//! [`topics::Handlers::from_files`].
//!
//! - [`alert_json`]: the alert JSON of Kapacitor's `post` handler, as the
//!   WIT's alert event.
//! - [`handler_file`]: topic-handler files (YAML or JSON) of kind `slack`.
//! - [`tick`]: a TICKscript's `.slack()` chain, as handler options.
//! - [`lambda`]: `match` expressions, parsed at load and evaluated per
//!   event.
//! - [`topics`]: handler files subscribed to topics, and routing an event
//!   to the handlers of its topic (`slack`, `aggregate`, `publish`).
//! - [`aggregate`]: an aggregate handler's options, its window and the
//!   event it emits.
//! - [`duration`]: Go's and TICKscript's durations (`24h`, `1h30m`, `2d`).
//! - [`alert_node`]: an alert node without `.slack()` (the default workspace,
//!   `global`, `state-changes-only`).
//!
//! Imports run one way: `topics` sits on `handler_file` and `aggregate`,
//! `handler_file` on `lambda`, and `lambda` and `aggregate` on `duration`;
//! nothing here imports `topics`.

pub mod aggregate;
pub mod alert_json;
pub mod alert_node;
pub mod duration;
pub mod handler_file;
pub mod lambda;
pub mod tick;
pub mod topics;
