//! Clicks on an alert's buttons, however they reach serve: Slack's signed
//! Request URL (`POST /slack/interactions`, through intake) or Socket Mode
//! ([`socket_mode`]: a WebSocket serve opens itself, for a serve with no
//! public address). The component reads each (it knows Slack's signature,
//! payloads and envelopes); [`clicks`] does what it asks: records it
//! durably, answers, and has the message redrawn through the scheduler
//! like any request to its channel.

pub mod clicks;
pub mod screen;
pub mod socket_mode;
