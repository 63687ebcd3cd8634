//! serve's HTTP front: who may call it, how much of a request it reads,
//! what it takes in, and its routes.
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
//! kept in two pools (`intake/admission.rs`): those that have not yet sent a whole
//! request head (new ones, and keep-alive ones between requests) are at
//! most `max_waiting` (512), each closed unless its whole head arrives
//! within `head_timeout` (5 s, counted from the connection or the previous
//! answer, not reset by each byte); when that pool is full, a new
//! connection closes the one that has waited longest. A connection whose
//! head is in takes one of `max_connections` (256) serving slots while its
//! request is read and answered. So clients trickling headers take turns
//! among themselves, and a client that sends a request is served at once.

mod admission;
mod alertmanager;

pub use alertmanager::AlertmanagerWebhook;

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{
    HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::commit::GroupCommit;
use crate::interactions::clicks::{Answer as ClickAnswer, Clicks};
use crate::interactions::screen::{self, Reason};
use crate::interactions::socket_mode::SocketState;
use crate::metrics::{self, Metrics, SpoolGauges};
use crate::option_check::OptionCheck;
use crate::store::{Listing, Lists, StoreError};
use admission::Gate;
use kapacitor_formats::aggregate::Collected;
use kapacitor_formats::alert_json;
use kapacitor_formats::topics::{Handlers, Route};

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

/// An alert as intake hands it to the spool: Kapacitor's alert JSON and
/// the handler options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub alert: String,
    pub options: Vec<(String, String)>,
}

/// A format serve takes alerts in. Kapacitor's `post` handler is the one
/// there is; Alertmanager's webhook (several alerts a request) slots in
/// beside it.
pub trait IntakeFormat: Send + Sync + 'static {
    /// Turns a request body and the query's handler options into alerts,
    /// or says what is wrong with it.
    fn decode(&self, body: &str, options: Vec<(String, String)>) -> Result<Vec<Incoming>, String>;
}

/// Kapacitor's `post`-handler JSON, one alert a request, kept as sent.
pub struct KapacitorPost;

impl IntakeFormat for KapacitorPost {
    fn decode(&self, body: &str, options: Vec<(String, String)>) -> Result<Vec<Incoming>, String> {
        alert_json::decode(body).map_err(|e| format!("{e:#}"))?;
        Ok(vec![Incoming {
            alert: body.to_string(),
            options,
        }])
    }
}

/// The bearer token callers must present.
pub struct Token(Vec<u8>);

impl Token {
    /// Reads the token from `path` (surrounding whitespace dropped). Errors
    /// name the file, never its content.
    pub fn read(path: &Path) -> Result<Token> {
        let text = std::fs::read(path)
            .with_context(|| format!("reading the auth token file {}", path.display()))?;
        let token = text.trim_ascii();
        if token.is_empty() {
            bail!("the auth token file {} is empty", path.display());
        }
        if token.iter().any(|b| !b.is_ascii_graphic()) {
            bail!(
                "the auth token file {} holds more than one word (a token is printable ASCII without spaces)",
                path.display()
            );
        }
        Ok(Token(token.to_vec()))
    }

    /// Whether `Authorization` carries this token, compared in constant
    /// time.
    fn admits(&self, header: Option<&HeaderValue>) -> bool {
        // The scheme is case-insensitive (RFC 9110); the token is not.
        let Some(given) = header
            .map(HeaderValue::as_bytes)
            .filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case(b"bearer "))
            .map(|h| &h[7..])
        else {
            return false;
        };
        bool::from(given.ct_eq(&self.0))
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

/// Serves connections until `stop` resolves, then lets the requests in
/// flight finish (each alert already written is answered) and returns.
pub async fn serve(
    listener: std::net::TcpListener,
    front: Arc<Front>,
    stop: impl std::future::Future<Output = ()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let gate = Gate::new(front.limits.max_waiting, front.limits.max_connections);
    let verifying = Arc::new(tokio::sync::Semaphore::new(
        front.limits.max_verifications.max(1),
    ));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let conn = gate.arrive();
        let service = {
            let (gate, conn, front) = (gate.clone(), conn.clone(), front.clone());
            let verifying = verifying.clone();
            service_fn(move |req| {
                let (gate, conn, front) = (gate.clone(), conn.clone(), front.clone());
                let verifying = verifying.clone();
                async move {
                    let _serving = gate.head_in(&conn).await;
                    respond(req, front, &verifying).await
                }
            })
        };
        // hyper's header timeout is for the whole head, started afresh for
        // each request (so it also closes an idle keep-alive connection).
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(front.limits.head_timeout)
            // hyper reads a head into a buffer of up to ~400 KiB by default:
            // with the waiting pool full that could be 200 MiB. A head this
            // size still takes a query of several templates at their limit.
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let gate = gate.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                () = conn.shed() => {}
            }
            gate.leave(&conn);
        });
    }
    graceful.shutdown().await;
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: serde_json::Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A refusal: counted, and said in JSON.
fn refuse(front: &Front, status: StatusCode, error: &str) -> Answer {
    front.metrics.refused(status.as_u16());
    answer(status, json!({ "error": error }))
}

async fn respond(
    req: Request<hyper::body::Incoming>,
    front: Arc<Front>,
    verifying: &Arc<tokio::sync::Semaphore>,
) -> Result<Answer, Infallible> {
    if req.method() == Method::GET && req.uri().path() == "/healthz" {
        // Ready: serve listens only once its spool is open and its
        // instances are configured. Plugins that did not load are named.
        // Degraded while the spool cannot be written (a full disk): alerts
        // are refused with 503 until a write succeeds again.
        let (trouble, kind, node) = {
            let store = front.commit.store();
            (store.trouble(), store.kind(), store.node())
        };
        let (status, mut health) = match &trouble {
            None => (StatusCode::OK, json!({"status": "ready"})),
            Some(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "degraded", "reason": why}),
            ),
        };
        health["store"] = json!(kind);
        if let Some(node) = node {
            health["node"] = json!(node);
        }
        if !front.broken.is_empty() {
            health["broken"] = json!(front.broken);
        }
        if let Some(socket) = &front.socket {
            health["socket_mode"] = json!(socket.status());
        }
        return Ok(answer(status, health));
    }
    // Slack cannot send serve's bearer token: this one path is
    // authenticated by Slack's request signature instead (the component
    // verifies it).
    if req.method() == Method::POST && req.uri().path() == "/slack/interactions" {
        return Ok(interactions(req, &front, verifying).await);
    }
    if let Some(token) = &front.token {
        if !token.admits(req.headers().get(AUTHORIZATION)) {
            let mut refused = refuse(
                &front,
                StatusCode::UNAUTHORIZED,
                "this serve needs Authorization: Bearer <token>",
            );
            refused
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(refused);
        }
    }
    match *req.method() {
        Method::GET if req.uri().path() == "/metrics" => Ok(metrics_page(&front)),
        Method::GET => Ok(spool_pages(&front, req.uri().query().unwrap_or_default()).await),
        Method::POST if req.uri().path() == "/spool/resend" => Ok(resend(req, &front).await),
        Method::POST if req.uri().path() == "/alertmanager" => {
            Ok(take(req, &front, &*front.alertmanager).await)
        }
        Method::POST => Ok(take(req, &front, &*front.format).await),
        _ => Ok(refuse(
            &front,
            StatusCode::METHOD_NOT_ALLOWED,
            "POST an alert, or GET /healthz, /metrics or the spool",
        )),
    }
}

/// `POST /slack/interactions`, the Slack app's Request URL: a click on an
/// alert's buttons, signed by Slack. Screened on its head first
/// ([`screen`]): `401` without both signature headers or with a stale
/// timestamp, `413` past the click limit, `429` while every verification
/// slot is taken — each before the body is read or an instance taken.
/// Then `401` unless the component verified it (and nothing changes);
/// `200` once what it asks is recorded, or when it is signed but nothing
/// this handler takes (logged).
async fn interactions(
    req: Request<hyper::body::Incoming>,
    front: &Front,
    verifying: &Arc<tokio::sync::Semaphore>,
) -> Answer {
    let Some(clicks) = &front.clicks else {
        return refuse(
            front,
            StatusCode::NOT_FOUND,
            "this serve takes no interactions",
        );
    };
    let refused = |reason: Reason, why: &str| {
        clicks.refusals().refused(reason, why);
        let (status, error) = match reason {
            Reason::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than any click ({} KiB, serve --max-click-kib)",
                    front.limits.max_click_bytes / 1024
                ),
            ),
            Reason::Busy => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests to verify at once (serve --max-verifications)".into(),
            ),
            _ => (StatusCode::UNAUTHORIZED, why.to_string()),
        };
        let mut answer = refuse(front, status, &error);
        if reason == Reason::Busy {
            answer
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(1u32));
        }
        answer
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Err(reason) = screen::screen(req.headers(), now, front.limits.max_click_bytes) {
        let why = match reason {
            Reason::Unsigned => "not signed: X-Slack-Request-Timestamp and X-Slack-Signature (v0=<64 hex digits>) are required".to_string(),
            Reason::Stale => format!(
                "X-Slack-Request-Timestamp is not within {} s of now: stale or replayed",
                screen::MAX_AGE
            ),
            _ => "the declared body is larger than any click".to_string(),
        };
        return refused(reason, &why);
    }
    // The slot is held while the body is read and verified: memory and
    // CPU spent on unverified requests are bounded by it.
    let Ok(_verifying) = verifying.clone().try_acquire_owned() else {
        return refused(Reason::Busy, "every verification slot was taken");
    };
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let limit = front.limits.max_click_bytes;
    let body = match read_within(req, front, limit).await {
        Ok(body) => body,
        Err(Unread::TooLarge) => {
            return refused(Reason::TooLarge, "the body grew larger than any click")
        }
        Err(Unread::Refused(refused)) => return refused,
    };
    match clicks.request(headers, body.to_vec()).await {
        ClickAnswer::Done => {
            let mut done = Response::new(Full::new(Bytes::new()));
            *done.status_mut() = StatusCode::OK;
            done
        }
        ClickAnswer::Refused => refuse(
            front,
            StatusCode::UNAUTHORIZED,
            "not signed by Slack with a signing secret this serve knows, or stale",
        ),
        ClickAnswer::Unavailable(why) => {
            unavailable(front, &format!("the click could not be recorded: {why}"))
        }
    }
}

/// Entries of each list `GET /spool` shows unless `limit` says otherwise,
/// and the most it shows.
const SPOOL_PAGE: usize = 100;
const SPOOL_PAGE_MAX: usize = 1_000;

/// `GET /spool[?list=L][&after=CURSOR][&limit=N]`: how many entries each
/// list holds, then a page of each list (or of list `L`), with the cursor
/// of its next page. Read under the store's lock, written after it.
async fn spool_pages(front: &Front, query: &str) -> Answer {
    let (mut list, mut after, mut limit) = (None, None, SPOOL_PAGE);
    for (key, value) in query_options(query) {
        let bad = |what: &str| {
            refuse(
                front,
                StatusCode::BAD_REQUEST,
                &format!(
                    "`{key}` {what}, not `{}`",
                    value.chars().take(40).collect::<String>()
                ),
            )
        };
        match key.as_str() {
            "list" => match Listing::named(&value) {
                Some(named) => list = Some(named),
                None => return bad("is one of pending, finished, messages, resendable"),
            },
            "after" => match value.parse() {
                Ok(cursor) => after = Some(cursor),
                Err(_) => return bad("is a page's `next` cursor (a number)"),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if n > 0 => limit = n.min(SPOOL_PAGE_MAX),
                _ => return bad("is a number of entries (1 to 1000)"),
            },
            _ => {
                return refuse(
                    front,
                    StatusCode::BAD_REQUEST,
                    &format!("GET /spool takes list, after and limit, not `{key}`"),
                )
            }
        }
    }
    if after.is_some() && list.is_none() {
        return refuse(
            front,
            StatusCode::BAD_REQUEST,
            "`after` continues one list: add list=pending, finished, messages or resendable",
        );
    }
    let lists: Vec<Listing> = list.map_or(Listing::ALL.to_vec(), |l| vec![l]);
    let listed = front.commit.store().lists(&lists, after, limit);
    let Lists { counts, pages } = match listed.await {
        Ok(listed) => listed,
        Err(e) => return refused_by_store(front, &e),
    };
    let mut body = json!({
        "counts": counts
            .into_iter()
            .map(|(l, n)| (l.name().to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "limit": limit,
    });
    for (list, page) in pages {
        body[list.name()] = json!({"items": page.items, "next": page.next});
    }
    answer(StatusCode::OK, body)
}

fn metrics_page(front: &Front) -> Answer {
    let mut gauges = {
        let store = front.commit.store();
        SpoolGauges {
            pending: store.pending_count(),
            oldest_age_seconds: store
                .oldest_pending_age()
                .map_or(0.0, |age| age.as_secs_f64()),
            degraded: store.trouble().is_some(),
            ..SpoolGauges::default()
        }
    };
    gauges.fsyncs = front.commit.syncs();
    gauges.write_errors = front.commit.failures();
    if let Some(socket) = &front.socket {
        front
            .metrics
            .socket_mode(socket.connected(), socket.reconnects());
    }
    let text = front.metrics.render(&gauges);
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}

/// Reads a request's body within the limits, or says why not.
async fn read_body(req: Request<hyper::body::Incoming>, front: &Front) -> Result<Bytes, Answer> {
    let limit = front.limits.max_alert_bytes;
    match read_within(req, front, limit).await {
        Ok(body) => Ok(body),
        Err(Unread::TooLarge) => Err(refuse(
            front,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the body is larger than {} KiB (serve --max-alert-kib)",
                limit / 1024
            ),
        )),
        Err(Unread::Refused(refused)) => Err(refused),
    }
}

/// Why a body was not read.
enum Unread {
    /// It is (declared, or grew) larger than the limit: not yet answered.
    TooLarge,
    /// Answered: it broke off, or trickled in too slowly.
    Refused(Answer),
}

/// Reads a request's body of at most `limit` bytes, refused on its
/// `Content-Length` before reading, else once past it.
async fn read_within(
    req: Request<hyper::body::Incoming>,
    front: &Front,
    limit: usize,
) -> Result<Bytes, Unread> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Unread::TooLarge);
    }
    let body = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(front.limits.read_timeout, body).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Unread::TooLarge),
        Ok(Err(_)) => Err(Unread::Refused(refuse(
            front,
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        ))),
        Err(_) => Err(Unread::Refused(refuse(
            front,
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the body did not arrive within {} s",
                front.limits.read_timeout.as_secs()
            ),
        ))),
    }
}

/// `POST /spool/resend`: failed alerts accepted again.
async fn resend(req: Request<hyper::body::Incoming>, front: &Front) -> Answer {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        #[serde(default)]
        failed: bool,
        #[serde(default)]
        ids: Vec<u64>,
    }
    let body = match read_body(req, front).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let ask: Ask = match serde_json::from_slice(&body) {
        Ok(ask) => ask,
        Err(e) => {
            return refuse(
                front,
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"failed\": true}} or {{\"ids\": [N, ...]}}: {e}"),
            )
        }
    };
    let found = front
        .commit
        .store()
        .resendable((!ask.failed).then_some(ask.ids));
    let failed = match found.await {
        Ok(failed) => failed,
        Err(e @ StoreError::NotFailed { .. }) => {
            return refuse(front, StatusCode::NOT_FOUND, &e.to_string())
        }
        Err(e) => return refused_by_store(front, &e),
    };
    let written = front.commit.write(|store| store.resend(&failed));
    let resent = match written {
        Ok((resent, durable)) => match durable.wait().await {
            Ok(()) => resent,
            Err(e) => return not_stored(front, &e),
        },
        Err(e @ StoreError::NotFailed { .. }) => {
            return refuse(front, StatusCode::NOT_FOUND, &e.to_string())
        }
        Err(e) => return refused_by_store(front, &e),
    };
    front.metrics.accepted(resent.len() as u64);
    answer(
        StatusCode::ACCEPTED,
        json!({ "resent": resent
            .iter()
            .map(|(old, t)| json!({"id": old, "as": t.id}))
            .collect::<Vec<_>>() }),
    )
}

/// `POST /?topic=NAME`: each alert goes to the handlers of the topic whose
/// `match` holds: a delivery spooled per `slack` handler, a collection per
/// `aggregate`, `publish` passing it on. `202` once all of it is on disk,
/// with the new alerts' ids and the aggregates that collected it.
async fn publish(front: &Front, topic: &str, alerts: Vec<Incoming>) -> Answer {
    let Some(handlers) = &front.topics else {
        return refuse(
            front,
            StatusCode::BAD_REQUEST,
            "`topic` needs serve --handlers DIR (a directory of topic-handler files)",
        );
    };
    let mut ids = Vec::new();
    let mut collected = Vec::new();
    let written = front.commit.write(|spool| {
        alerts.iter().try_for_each(|incoming| {
            let Ok(mut event) = kapacitor_formats::alert_json::decode(&incoming.alert) else {
                return Ok(());
            };
            event.topic = Some(topic.to_string());
            // Spooled with its topic, as Kapacitor's event has it (templates
            // can show it).
            let alert = with_topic(&incoming.alert, topic);
            let (routes, notes) = handlers.route(topic, &event);
            for note in notes {
                tracing::warn!(topic, "{note}");
            }
            for route in routes {
                match route {
                    Route::Deliver { options, .. } => {
                        ids.push(spool.accept(&alert, options)?.id);
                    }
                    Route::Collect { handler } => {
                        let event = Collected::from_alert(&alert)
                            .map_err(|e| StoreError::Io(anyhow::anyhow!(e)))?;
                        spool.collect(&handler, event)?;
                        collected.push(handler);
                    }
                }
            }
            Ok(())
        })
    });
    match written {
        Ok(((), durable)) => {
            if let Err(e) = durable.wait().await {
                return not_stored(front, &e);
            }
        }
        Err(e) => return refused_by_store(front, &e),
    }
    front.metrics.accepted(ids.len() as u64);
    let mut body = json!({ "ids": ids, "collected": collected });
    if ids.is_empty() && collected.is_empty() {
        body["note"] = json!(format!("no handler of topic `{topic}` took it"));
    }
    answer(StatusCode::ACCEPTED, body)
}

/// The alert JSON with `topic` set.
fn with_topic(alert: &str, topic: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(alert) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("topic".into(), json!(topic));
            serde_json::Value::Object(map).to_string()
        }
        _ => alert.to_string(),
    }
}

/// Reads, decodes and spools one `POST`.
async fn take(
    req: Request<hyper::body::Incoming>,
    front: &Front,
    format: &dyn IntakeFormat,
) -> Answer {
    let options = query_options(req.uri().query().unwrap_or_default());
    let body = match read_body(req, front).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return refuse(front, StatusCode::BAD_REQUEST, "the alert is not UTF-8");
    };
    let alerts = match format.decode(text, options) {
        Ok(alerts) if alerts.is_empty() => {
            return refuse(front, StatusCode::BAD_REQUEST, "the request holds no alert");
        }
        Ok(alerts) => alerts,
        Err(e) => return refuse(front, StatusCode::BAD_REQUEST, &e),
    };
    // `?topic=NAME`: published to a topic, for its handlers to take.
    let topic = alerts[0]
        .options
        .iter()
        .rev()
        .find(|(k, _)| k == "topic")
        .map(|(_, v)| v.clone());
    // Refused here, naming what is wrong, rather than stored to fail later:
    // options the host reserves, and (for a delivery) options the component
    // would refuse. A topic's handlers bring their own options.
    if let Some(check) = &front.check {
        for incoming in &alerts {
            let verdict = match topic {
                Some(_) => check.refuse_host_only(&incoming.options),
                None => check.check(&incoming.alert, &incoming.options).await,
            };
            if let Err(e) = verdict {
                return refuse(front, StatusCode::BAD_REQUEST, &e);
            }
        }
    }
    if let Some(topic) = topic {
        return publish(front, &topic, alerts).await;
    }
    // Written now, acknowledged once on disk: the committer shares one
    // fsync among every alert written meanwhile.
    // One request is one write: all of its alerts or none.
    let written = front.commit.write(|spool| {
        alerts
            .into_iter()
            .map(|a| spool.accept(&a.alert, a.options))
            .collect::<Result<Vec<_>, StoreError>>()
    });
    let tickets = match written {
        Ok((tickets, durable)) => match durable.wait().await {
            Ok(()) => tickets,
            Err(e) => return not_stored(front, &e),
        },
        Err(e) => return refused_by_store(front, &e),
    };
    front.metrics.accepted(tickets.len() as u64);
    match tickets.as_slice() {
        [one] => answer(StatusCode::ACCEPTED, json!({ "id": one.id })),
        many => answer(
            StatusCode::ACCEPTED,
            json!({ "ids": many.iter().map(|t| t.id).collect::<Vec<_>>() }),
        ),
    }
}

/// The largest request head (request line, query, headers) read: a
/// bigger one closes the connection.
const MAX_HEAD_BYTES: usize = 128 * 1024;

/// How long a client should wait before posting again after a `503`.
const RETRY_AFTER_SECS: u64 = 5;

/// `503` with `Retry-After`: nothing of the request was kept.
fn unavailable(front: &Front, error: &str) -> Answer {
    let mut refused = refuse(front, StatusCode::SERVICE_UNAVAILABLE, error);
    refused
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    refused
}

/// A write the store would not take (full, or a resend of nothing).
fn refused_by_store(front: &Front, e: &StoreError) -> Answer {
    match e {
        StoreError::NotFailed { .. } => refuse(front, StatusCode::NOT_FOUND, &e.to_string()),
        StoreError::Full { .. } | StoreError::Unavailable(_) => unavailable(front, &e.to_string()),
        StoreError::Io(_) => refuse(front, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A write the store could not make durable (a full disk): dropped, so
/// the client may send it again without making a duplicate.
fn not_stored(front: &Front, e: &std::io::Error) -> Answer {
    let why = front
        .commit
        .store()
        .trouble()
        .unwrap_or_else(|| e.to_string());
    unavailable(
        front,
        &format!("nothing of this request was stored, send it again later: {why}"),
    )
}

/// A query's parameters, decoded: the handler options.
fn query_options(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Decodes a query component: `+` for a space, then `%XX` escapes (so
/// `%2B` stays a `+`).
fn percent_decode(text: &str) -> String {
    crate::percent::decode(&text.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_read_without_its_newline_and_compared_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let token = Token::read(&path).unwrap();
        let header = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(token.admits(Some(&header("Bearer s3cret-token"))));
        assert!(token.admits(Some(&header("bearer s3cret-token"))));
        assert!(!token.admits(Some(&header("Bearer S3CRET-TOKEN"))));
        assert!(!token.admits(Some(&header("Bearer s3cret-toke"))));
        assert!(!token.admits(Some(&header("Bearer s3cret-token2"))));
        assert!(!token.admits(Some(&header("Basic s3cret-token"))));
        assert!(!token.admits(None));
    }

    #[test]
    fn a_bad_token_file_is_named_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "two words\n").unwrap();
        let e = format!("{:#}", Token::read(&path).err().unwrap());
        assert!(
            e.contains(&path.display().to_string()) && !e.contains("two"),
            "{e}"
        );
        std::fs::write(&path, "  \n").unwrap();
        let e = format!("{:#}", Token::read(&path).err().unwrap());
        assert!(e.contains("empty"), "{e}");
        let e = format!("{:#}", Token::read(&dir.path().join("none")).err().unwrap());
        assert!(e.contains("none"), "{e}");
    }

    #[test]
    fn query_options_are_percent_decoded() {
        assert_eq!(
            query_options("channel=%23ops&username=a+b&flag&&x=%zz"),
            [
                ("channel".to_string(), "#ops".to_string()),
                ("username".into(), "a b".into()),
                ("flag".into(), String::new()),
                ("x".into(), "%zz".into()),
            ]
        );
    }

    #[test]
    fn kapacitor_post_takes_one_alert_as_sent_and_names_what_is_wrong() {
        let body = r#"{"id":"cpu","message":"m","time":"2026-11-26T10:00:00Z","level":"CRITICAL"}"#;
        let alerts = KapacitorPost.decode(body, vec![]).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].alert, body);
        let loud = body.replace("CRITICAL", "LOUD");
        let e = KapacitorPost.decode(&loud, vec![]).unwrap_err();
        assert!(e.contains("level"), "{e}");
    }
}
