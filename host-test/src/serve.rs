//! `host-test serve`: a long-running host. It takes alerts over HTTP in
//! Kapacitor's `post`-handler JSON (a real Kapacitor's `.post('http://…')`
//! can feed it; query parameters are handler options), answers only once the
//! alert is in the spool, and delivers from the spool: transient failures
//! wait (Slack's `Retry-After` exactly, else backoff), each channel is paced
//! (about one message a second, a short burst allowed), permanent failures
//! end there.
//!
//! Events of one alert (one alert key: its id and handler options) go out
//! in the order they were accepted, each only once the one before has
//! ended, and each is sent with the alert's message so far
//! (`previous-channel-id`, `previous-ts`) for `on-recovery` `update` or
//! `thread`; what the delivery makes the alert's message is recorded with
//! its `done` record (see [`crate::spool`]).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::retry::{Backoff, Next};
use crate::runtime::{HandlerError, Level, Runtime};
use crate::spool::{self, Finished, Spool, SpoolError, Status};
use crate::{alert_json, report};

/// How the server paces and retries.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// The time between messages to one channel (Slack: about a second).
    pub channel_interval: Duration,
    /// How many messages a quiet channel may take at once.
    pub channel_burst: u32,
    pub backoff: Backoff,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            channel_interval: Duration::from_secs(1),
            channel_burst: 3,
            backoff: Backoff::default(),
        }
    }
}

/// A pending alert, decoded.
struct Prepared {
    /// Its alert's key ([`spool::alert_key`]): one key's events go in order.
    alert: String,
    event: crate::runtime::AlertEvent,
    options: Vec<(String, String)>,
    /// Where its request goes (URL and channel): the pacing key, known
    /// once it was previewed.
    channel: Option<String>,
}

/// A token bucket per channel.
struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Shared {
    spool: Mutex<Spool>,
    arrived: Condvar,
}

/// Serves until the process ends. `ready` hears the bound address.
pub fn run(
    runtime: &Runtime,
    config: &str,
    listen: SocketAddr,
    spool: Spool,
    pacing: Pacing,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let mut plugin = runtime.configured(config)?;
    let listener =
        std::net::TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let shared = Arc::new(Shared {
        spool: Mutex::new(spool),
        arrived: Condvar::new(),
    });
    let intake = shared.clone();
    std::thread::Builder::new()
        .name("intake".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(accept_loop(listener, intake));
        })?;
    ready(bound);

    let mut state: HashMap<u64, (u32, Instant)> = HashMap::new();
    let mut blocked: HashMap<String, Instant> = HashMap::new();
    let mut buckets: HashMap<String, Bucket> = HashMap::new();
    // Each pending alert decoded once, and previewed once it is its alert's
    // next event.
    let mut prepared: HashMap<u64, Prepared> = HashMap::new();
    loop {
        let pending = shared
            .spool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending_ids();
        let now = Instant::now();
        let mut next_wake = now + Duration::from_secs(1);
        let mut sent_one = false;
        // The alerts whose next event this pass has met: a later event of
        // one of them waits, even when that one cannot go yet.
        let mut heads: HashSet<String> = HashSet::new();
        for id in pending {
            if let std::collections::hash_map::Entry::Vacant(slot) = prepared.entry(id) {
                let Some(item) = shared
                    .spool
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(id)
                else {
                    continue;
                };
                match alert_json::decode(&item.alert) {
                    Ok(event) => {
                        slot.insert(Prepared {
                            alert: spool::alert_key(&event.id, &item.options),
                            event,
                            options: item.options,
                            channel: None,
                        });
                    }
                    Err(e) => {
                        finish(
                            &shared,
                            Finished::new(id, Status::Failed, &format!("{e:#}"), 0),
                        );
                        continue;
                    }
                }
            }
            let item = &prepared[&id];
            if !heads.insert(item.alert.clone()) {
                continue;
            }
            let (attempts, not_before) = *state.entry(id).or_insert((0, now));
            if not_before > now {
                next_wake = next_wake.min(not_before);
                continue;
            }
            let channel = match &item.channel {
                Some(channel) => channel.clone(),
                // The channel the request goes to: the rate limit's key.
                None => match plugin.preview_alert(&item.event, &options_for(&shared, item)) {
                    Ok(Ok(request)) => {
                        let body: serde_json::Value =
                            serde_json::from_str(&request.body).unwrap_or_default();
                        let channel = format!(
                            "{} {}",
                            request.url,
                            body["channel"].as_str().unwrap_or_default()
                        );
                        if let Some(item) = prepared.get_mut(&id) {
                            item.channel = Some(channel.clone());
                        }
                        channel
                    }
                    Ok(Err(e)) => {
                        let done = Finished::new(id, Status::Failed, &report::error_text(&e), 0);
                        finish(&shared, done);
                        // Its alert's next event may go in this pass.
                        if let Some(item) = prepared.remove(&id) {
                            heads.remove(&item.alert);
                        }
                        state.remove(&id);
                        continue;
                    }
                    Err(e) => {
                        finish(
                            &shared,
                            Finished::new(id, Status::Failed, &format!("{e:#}"), 0),
                        );
                        if let Some(item) = prepared.remove(&id) {
                            heads.remove(&item.alert);
                        }
                        state.remove(&id);
                        plugin = runtime.configured(config)?;
                        continue;
                    }
                },
            };
            if let Some(until) = blocked.get(&channel).filter(|until| **until > now) {
                next_wake = next_wake.min(*until);
                continue;
            }
            let bucket = buckets.entry(channel.clone()).or_insert(Bucket {
                tokens: f64::from(pacing.channel_burst),
                last: now,
            });
            let refill = now.duration_since(bucket.last).as_secs_f64()
                / pacing.channel_interval.as_secs_f64();
            bucket.tokens = (bucket.tokens + refill).min(f64::from(pacing.channel_burst.max(1)));
            bucket.last = now;
            if bucket.tokens < 1.0 {
                let wait = pacing.channel_interval.mul_f64(1.0 - bucket.tokens);
                next_wake = next_wake.min(now + wait);
                continue;
            }
            // Whole tokens only: a fraction left by a late wake-up would let
            // the next message leave less than an interval after this answer.
            bucket.tokens = (bucket.tokens - 1.0).floor();
            sent_one = true;
            let attempt = attempts + 1;
            let Some(item) = prepared.get(&id) else {
                break;
            };
            let answer = plugin.handle_alert(&item.event, &options_for(&shared, item));
            // The time the request was out earns no tokens: the next one
            // leaves an interval after this answer came back, so it reaches
            // Slack an interval after this one did, whatever the delays.
            if let Some(bucket) = buckets.get_mut(&channel) {
                bucket.last = Instant::now();
            }
            match answer {
                Ok(Ok(delivery)) => {
                    let mut detail = format!(
                        "{} {}",
                        delivery.channel,
                        delivery.ts.as_deref().unwrap_or_default()
                    )
                    .trim()
                    .to_string();
                    if !delivery.warnings.is_empty() {
                        detail += &format!(" (warnings: {})", delivery.warnings.join(", "));
                    }
                    let done = Finished::new(id, Status::Delivered, &detail, attempt).remembering(
                        &item.alert,
                        matches!(item.event.level, Level::Ok),
                        &delivery.workspace,
                        delivery.channel_id.as_deref(),
                        delivery.ts.as_deref(),
                    );
                    finish(&shared, done);
                    state.remove(&id);
                    prepared.remove(&id);
                }
                Ok(Err(error)) => match pacing.backoff.next(&error, attempt) {
                    Next::GiveUp => {
                        let detail = report::error_text(&error);
                        finish(&shared, Finished::new(id, Status::Failed, &detail, attempt));
                        state.remove(&id);
                        prepared.remove(&id);
                    }
                    Next::RetryAfter(wait) => {
                        eprintln!(
                            "serve: #{id} attempt {attempt}: {}; next try in {} ms",
                            report::error_text(&error),
                            wait.as_millis()
                        );
                        let until = Instant::now() + wait;
                        if let HandlerError::Transient(t) = &error {
                            if t.retry_after_seconds.is_some() {
                                // Nothing to this channel until then, and no
                                // burst after: one message then, and the steady rate on.
                                if let Some(bucket) = buckets.get_mut(&channel) {
                                    bucket.tokens = 0.0;
                                    bucket.last =
                                        until.checked_sub(pacing.channel_interval).unwrap_or(until);
                                }
                                blocked.insert(channel, until);
                            }
                        }
                        state.insert(id, (attempt, until));
                    }
                },
                Err(trap) => {
                    let detail = format!("{trap:#}");
                    finish(&shared, Finished::new(id, Status::Failed, &detail, attempt));
                    state.remove(&id);
                    prepared.remove(&id);
                    plugin = runtime.configured(config)?;
                }
            }
            break; // re-read the spool: new alerts and new times
        }
        if !sent_one {
            let spool = shared.spool.lock().unwrap_or_else(|e| e.into_inner());
            let wait = next_wake
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let _ = shared.arrived.wait_timeout(spool, wait);
        }
    }
}

/// `item`'s options with its alert's message so far, for `on-recovery`
/// `update` and `thread` (a handler with `new` ignores it).
fn options_for(shared: &Shared, item: &Prepared) -> Vec<(String, String)> {
    let kept = shared.spool.lock().unwrap_or_else(|e| e.into_inner());
    match kept.message(&item.alert) {
        Some(m) => spool::with_previous(&item.options, &m.channel_id, &m.ts),
        None => item.options.clone(),
    }
}

/// Records how an alert ended (and what that makes its alert's message),
/// and says so on stderr.
fn finish(shared: &Shared, done: Finished) {
    let Finished {
        id,
        status,
        attempts,
        ..
    } = done;
    let plural = if attempts == 1 { "" } else { "s" };
    let verb = match status {
        Status::Delivered => "delivered to",
        Status::Failed => "failed:",
    };
    eprintln!(
        "serve: #{id} {verb} {} ({attempts} attempt{plural})",
        done.detail
    );
    let mut spool = shared.spool.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = spool.finish(done) {
        eprintln!("serve: recording the end of alert {id} failed: {e:#}");
    }
}

async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| intake(req, shared.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Decodes a query component: `%XX` escapes and `+` for a space.
fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(status: u16, body: serde_json::Value) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

async fn intake(
    req: hyper::Request<hyper::body::Incoming>,
    shared: Arc<Shared>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    if req.method() == hyper::Method::GET {
        let spool = shared.spool.lock().unwrap_or_else(|e| e.into_inner());
        return Ok(answer(200, spool.status_json()));
    }
    let options: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (percent_decode(k), percent_decode(v)),
                    None => (percent_decode(p), String::new()),
                })
                .collect()
        })
        .unwrap_or_default();
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(answer(
            400,
            json!({"error": "the request body could not be read"}),
        ));
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return Ok(answer(400, json!({"error": "the alert is not UTF-8"})));
    };
    if let Err(e) = alert_json::decode(text) {
        return Ok(answer(400, json!({"error": format!("{e:#}")})));
    }
    let accepted = shared
        .spool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .accept(text, options);
    match accepted {
        Ok(id) => {
            shared.arrived.notify_all();
            Ok(answer(202, json!({"id": id})))
        }
        Err(e @ SpoolError::Full { .. }) => Ok(answer(503, json!({"error": e.to_string()}))),
        Err(e) => Ok(answer(500, json!({"error": e.to_string()}))),
    }
}
