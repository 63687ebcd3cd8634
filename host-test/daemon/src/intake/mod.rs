//! serve's HTTP front: who may call it, how much of a request it reads,
//! what it takes in, and its routes.
//!
//! ```text
//!   server.rs ─── accepts (admission.rs: the waiting pool, the serving
//!      │          slots), routes by method and path, checks the token
//!      ▼          (auth.rs) on every route but /healthz and clicks
//!   routes/alerts.rs        POST /  (any other POST)  ─┐
//!   routes/topics.rs        POST /?topic=NAME          │ written through
//!   routes/alertmanager.rs  POST /alertmanager         ├─ commit into
//!   routes/resend.rs        POST /spool/resend        ─┘ the store
//!   routes/clicks.rs        POST /slack/interactions  ── interactions
//!   routes/spool.rs         GET  /spool (any other GET)
//!   routes/metrics.rs       GET  /metrics
//!   routes/health.rs        GET  /healthz
//! ```
//!
//! Beside them: `answer.rs` (answers, and refusals, each counted),
//! `body.rs` (bodies read within the limits), `format.rs` (what a request
//! decodes into: [`IntakeFormat`]; the query's handler options).
//!
//! - `POST` (any path): alerts in the intake format (Kapacitor's `post`
//!   JSON; query parameters are handler options), answered `202 {"id":N}`
//!   once on disk; `400` naming what is wrong — the alert, an option the
//!   host reserves (`previous-channel-id`, `previous-ts`), or an option the
//!   component refuses ([`crate::option_check`]) —, `401` without the
//!   token, `408` for a body that trickles in, `413` for one over the limit
//!   (refused on its `Content-Length` before reading it, else after reading
//!   no more than the limit), `503` with `Retry-After` when the spool is
//!   full or could not write it (a full disk): then nothing of the request
//!   was stored, and sending it again makes no duplicate.
//! - `POST /?topic=NAME`: published to a topic (`serve --handlers DIR`):
//!   each handler of the topic whose `match` holds takes it (a delivery, an
//!   aggregate's collection, a publish to other topics); `202 {"ids": [...],
//!   "collected": [...]}` once all of it is on disk (all of it or none).
//! - `POST /alertmanager`: Alertmanager's webhook, as `POST /` (its
//!   alerts all stored or none).
//! - `POST /slack/interactions`: clicks on alerts' buttons, signed by
//!   Slack instead of carrying the token.
//! - `POST /spool/resend` with `{"failed": true}` or `{"ids": [N, ...]}`:
//!   failed alerts the spool keeps are accepted again as new alerts,
//!   `202 {"resent": [{"id": N, "as": M}, ...]}` once on disk; `404` naming
//!   an id that is not a kept failed alert (then nothing is resent).
//! - `GET /healthz`, without authentication, for load balancers: `200`
//!   ready, or `503` degraded with the reason while the spool cannot be
//!   written; with the plugins of the directory that did not load and why.
//! - `GET /metrics`: Prometheus' text format.
//! - Any other `GET` (`/spool`): how many entries each of the spool's
//!   lists holds (`counts`), then a page of each (pending ids, endings
//!   newest first, alert messages, resendable failures), each with the
//!   cursor of its next page; `?list=NAME&after=CURSOR` continues one list,
//!   `?limit=N` (100, at most 1,000) sizes the pages.
//!
//! Connections are accepted as they come, never held back by others, and
//! kept in two pools (`admission.rs`): those that have not yet sent a
//! whole request head (new ones, and keep-alive ones between requests) are at
//! most `max_waiting` (512), each closed unless its whole head arrives
//! within `head_timeout` (5 s, counted from the connection or the previous
//! answer, not reset by each byte); when that pool is full, a new
//! connection closes the one that has waited longest. A connection whose
//! head is in takes one of `max_connections` (256) serving slots while its
//! request is read and answered. So clients trickling headers take turns
//! among themselves, and a client that sends a request is served at once.

mod admission;
mod answer;
mod auth;
mod body;
mod format;
mod routes;
mod server;

pub use auth::Token;
pub use format::{Incoming, IntakeFormat, KapacitorPost};
pub use routes::alertmanager::AlertmanagerWebhook;
pub use server::serve;

use std::sync::Arc;
use std::time::Duration;

use crate::commit::GroupCommit;
use crate::interactions::clicks::Clicks;
use crate::interactions::screen;
use crate::interactions::socket_mode::SocketState;
use crate::metrics::Metrics;
use crate::option_check::OptionCheck;
use kapacitor_formats::topics::Handlers;

/// How much the front reads and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest body taken (`--max-alert-kib`).
    pub max_alert_bytes: usize,
    /// For a request's body (`--read-timeout-secs`).
    pub read_timeout: Duration,
    /// For a whole request head, from the connection's start or the
    /// previous answer: also how long an idle keep-alive connection stays
    /// open (`--head-timeout-secs`).
    pub head_timeout: Duration,
    /// Requests read and answered at once: connections that have sent a
    /// head (`--max-connections`).
    pub max_connections: usize,
    /// Connections waiting for a whole head; past it the longest-waiting
    /// is closed (`--max-waiting-connections`).
    pub max_waiting: usize,
    /// The largest body `POST /slack/interactions` takes
    /// (`--max-click-kib`): the largest click this handler's messages can
    /// bring ([`screen::MAX_CLICK_BYTES`]).
    pub max_click_bytes: usize,
    /// Requests to `/slack/interactions` read and verified at once; past
    /// it `429` (`--max-verifications`).
    pub max_verifications: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_alert_bytes: 1024 * 1024,
            read_timeout: Duration::from_secs(10),
            head_timeout: Duration::from_secs(5),
            max_connections: 256,
            max_waiting: 512,
            max_click_bytes: screen::MAX_CLICK_BYTES,
            max_verifications: screen::MAX_VERIFICATIONS,
        }
    }
}

/// What the front needs of serve.
pub struct Front {
    /// The store, written and read through its group commit.
    pub commit: Arc<GroupCommit>,
    pub metrics: Arc<Metrics>,
    pub format: Box<dyn IntakeFormat>,
    /// Alertmanager's webhook (`POST /alertmanager`).
    pub alertmanager: Box<dyn IntakeFormat>,
    pub token: Option<Token>,
    pub limits: Limits,
    /// Plugins that did not load, each with why, for `/healthz`.
    pub broken: Vec<String>,
    /// The topic handlers (`--handlers`), for alerts posted with `?topic=`.
    pub topics: Option<Arc<Handlers>>,
    /// What refuses options before anything is stored.
    pub check: Option<Arc<OptionCheck>>,
    /// What clicks on alerts' buttons do (`POST /slack/interactions`).
    pub clicks: Option<Arc<Clicks>>,
    /// Socket Mode's connection, when serve takes clicks that way.
    pub socket: Option<Arc<SocketState>>,
}
