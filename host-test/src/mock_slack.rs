//! A local Slack stand-in on 127.0.0.1: answers as `chat.update` (a path
//! ending in `/chat.update`), `chat.postMessage` (any other path under
//! `/api/`) or a legacy incoming webhook (any other path) would, records
//! every request, and can be told to give canned answers. It keeps the
//! messages it posted (channel id, `ts`, thread, latest body), so updates
//! and thread replies are checked as Slack checks them, and a test can read
//! what a channel finally shows. It speaks plain HTTP, or HTTPS with a
//! server configuration the test provides (its own certificates, client
//! certificates required or not). Given a Socket Mode stand-in
//! ([`MockSlack::serve_socket_mode`]), `apps.connections.open` answers
//! with a URL of it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::stand_in::Running;

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// The `Host` header: where the client meant to send it.
    pub host: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When its body had arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Whether it went to the Web API rather than a webhook.
    pub fn is_web_api(&self) -> bool {
        self.path.starts_with("/api/")
    }
}

/// A canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/html".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A misbehaviour for one request: one step of a fault script.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Sends the reply's status, headers and the first half of its body,
    /// then resets the connection (TCP RST).
    ResetMidResponse(Reply),
    /// Sends the reply's body in `chunks` pieces with `pause` before each
    /// after the first.
    SlowBody {
        reply: Reply,
        chunks: usize,
        pause: std::time::Duration,
    },
    /// Says nothing for this long, then gives the stand-in's own answer.
    Silent(std::time::Duration),
}

/// What the stand-in does with the next request when told.
#[derive(Debug, Clone)]
enum Step {
    Reply(Reply),
    Fault(Fault),
}

/// A message the stand-in posted, as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The channel id it answered with, e.g. `CALERTS` for `#alerts`.
    pub channel_id: String,
    pub ts: String,
    /// The parent's `ts` when it is a reply in a thread.
    pub thread_ts: Option<String>,
    /// The latest body: the post's, or the last `chat.update`'s.
    pub body: Value,
    /// How many times `chat.update` changed it.
    pub updates: usize,
}

type Observer = Box<dyn Fn(&Received, &Reply) + Send + Sync>;

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    scripted: VecDeque<Step>,
    observer: Option<Observer>,
    tls_failures: usize,
    /// While set, requests wait (for tests of concurrency and queues).
    held: bool,
    gate: Arc<tokio::sync::Notify>,
    in_flight: usize,
    max_in_flight: usize,
    limit: Option<ChannelLimit>,
    /// Slack's `chat.update` limit (tier 3, per token), when enforced.
    updates: Option<UpdateLimit>,
    /// Every `n`th request gets a transient failure (`503`).
    fail_every: Option<usize>,
    /// How long every answer takes (Slack's round trip is about 200 ms).
    delay: std::time::Duration,
    /// The messages posted and not deleted, oldest first.
    messages: Vec<Message>,
    /// Every channel id the stand-in answered with.
    channel_ids: std::collections::HashSet<String>,
    /// The Socket Mode stand-in `apps.connections.open` points at:
    /// `ws://127.0.0.1:PORT` (or `wss://`).
    socket_mode: Option<String>,
}

impl Shared {
    fn delete_message(&mut self, ts: &str) -> bool {
        let before = self.messages.len();
        self.messages
            .retain(|m| m.ts != ts && m.thread_ts.as_deref() != Some(ts));
        self.messages.len() != before
    }
}

/// Slack's `chat.update` limit, enforced by the stand-in: tier 3, counted
/// per token (a workspace's bot), `per_minute` with a burst.
struct UpdateLimit {
    interval: std::time::Duration,
    burst: u32,
    /// Per token: the theoretical time of the next update (GCRA).
    next: std::collections::HashMap<String, std::time::Instant>,
    blocked_until: std::collections::HashMap<String, std::time::Instant>,
    limited: usize,
    inside_window: usize,
}

/// A 429 if `req` is a `chat.update` over its token's tier-3 budget.
fn update_limit(shared: &mut Shared, req: &Received) -> Option<Reply> {
    let limit = shared.updates.as_mut()?;
    if !req.is_web_api() || api_method(req) != "chat.update" {
        return None;
    }
    let token = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if limit
        .blocked_until
        .get(&token)
        .is_some_and(|until| req.at < *until)
    {
        limit.inside_window += 1;
    }
    let tolerance = limit.interval * limit.burst.saturating_sub(1);
    let next = limit.next.get(&token).copied().unwrap_or(req.at);
    let allowed_from = next.checked_sub(tolerance).unwrap_or(req.at);
    if req.at >= allowed_from {
        limit.next.insert(token, next.max(req.at) + limit.interval);
        return None;
    }
    limit.limited += 1;
    let wait = allowed_from - req.at;
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    limit
        .blocked_until
        .insert(token, req.at + std::time::Duration::from_secs(seconds));
    Some(
        Reply::json(
            429,
            json!({"ok": false, "error": "ratelimited", "retry_after": seconds}),
        )
        .with_header("retry-after", &seconds.to_string()),
    )
}

/// Slack's per-channel rate limit, enforced by the stand-in.
struct ChannelLimit {
    interval: std::time::Duration,
    retry_after: std::time::Duration,
    /// Messages a quiet channel takes at once (Slack: a short burst).
    burst: u32,
    /// Per channel: the theoretical time of the next message (GCRA; with a
    /// burst of 1, when the last was accepted plus the interval).
    last_accepted: std::collections::HashMap<String, std::time::Instant>,
    blocked_until: std::collections::HashMap<String, std::time::Instant>,
    limited: usize,
    inside_window: usize,
}

impl ChannelLimit {
    fn new(interval: std::time::Duration, retry_after: std::time::Duration) -> ChannelLimit {
        ChannelLimit {
            interval,
            retry_after,
            burst: 1,
            last_accepted: Default::default(),
            blocked_until: Default::default(),
            limited: 0,
            inside_window: 0,
        }
    }
}

/// A 429 if `req` breaks the channel's rate limit; counts a request that
/// came while its channel was told to wait. `chat.update` is not limited:
/// Slack rates it per workspace (tier 3), not per channel.
fn rate_limit(shared: &mut Shared, req: &Received) -> Option<Reply> {
    let limit = shared.limit.as_mut()?;
    if !req.is_web_api() || api_method(req) == "chat.update" {
        return None;
    }
    // By id: `#alerts` and `CALERTS` are one channel.
    let channel = channel_id(req.json()["channel"].as_str().unwrap_or_default());
    if limit
        .blocked_until
        .get(&channel)
        .is_some_and(|until| req.at < *until)
    {
        limit.inside_window += 1;
    } else if limit.last_accepted.get(&channel).is_some_and(|next| {
        let tolerance = limit.interval * limit.burst.saturating_sub(1);
        req.at + tolerance < *next
    }) {
        limit.limited += 1;
        limit
            .blocked_until
            .insert(channel, req.at + limit.retry_after);
    } else {
        let next = limit.last_accepted.get(&channel).copied().unwrap_or(req.at);
        limit
            .last_accepted
            .insert(channel, next.max(req.at) + limit.interval);
        return None;
    }
    let seconds = limit.retry_after.as_secs().max(1);
    Some(
        Reply::json(
            429,
            json!({"ok": false, "error": "ratelimited", "retry_after": seconds}),
        )
        .with_header("retry-after", &seconds.to_string()),
    )
}

/// The running stand-in; stops when dropped.
pub struct MockSlack {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Mutex<Shared>>,
    running: Running,
}

impl MockSlack {
    /// Starts on a free port of 127.0.0.1.
    pub fn start() -> Result<MockSlack> {
        MockSlack::start_on(0)
    }

    /// Starts on 127.0.0.1:`port`.
    pub fn start_on(port: u16) -> Result<MockSlack> {
        MockSlack::start_with(port, None)
    }

    /// Starts an HTTPS stand-in on a free port, with `tls` as its server
    /// configuration.
    pub fn start_tls(tls: Arc<rustls::ServerConfig>) -> Result<MockSlack> {
        MockSlack::start_with(0, Some(tokio_rustls::TlsAcceptor::from(tls)))
    }

    fn start_with(port: u16, tls: Option<tokio_rustls::TlsAcceptor>) -> Result<MockSlack> {
        let listener = listen(port)
            .with_context(|| format!("binding the Slack stand-in to 127.0.0.1:{port}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let tls_on = tls.is_some();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        let running = Running::start("mock-slack", move |stopped| {
            serve(listener, tls, state, stopped)
        })?;
        Ok(MockSlack {
            addr,
            tls: tls_on,
            shared,
            running,
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` for a TLS stand-in).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Makes requests wait, unanswered, until [`MockSlack::release`].
    pub fn hold(&self) {
        self.shared.lock().unwrap().held = true;
    }

    /// Answers the held requests and stops holding.
    pub fn release(&self) {
        let mut shared = self.shared.lock().unwrap();
        shared.held = false;
        shared.gate.notify_waiters();
    }

    /// Enforces a per-channel rate limit on Web API requests: one per
    /// `interval`; a request sooner gets `429` with `Retry-After:
    /// retry_after` (whole seconds), and that channel is blocked as long.
    pub fn limit_channels(&self, interval: std::time::Duration, retry_after: std::time::Duration) {
        self.shared.lock().unwrap().limit = Some(ChannelLimit::new(interval, retry_after));
    }

    /// Enforces Slack's rules as they are: one message a second per channel
    /// with a burst of 3 (`429`, `Retry-After: 1` past it), and
    /// `chat.update` in tier 3, 50 a minute per token with a burst of 3.
    pub fn limit_like_slack(&self) {
        let second = std::time::Duration::from_secs(1);
        let mut shared = self.shared.lock().unwrap();
        shared.limit = Some(ChannelLimit {
            burst: 3,
            ..ChannelLimit::new(second, second)
        });
        drop(shared);
        self.limit_updates(50, 3);
    }

    /// Enforces `chat.update`'s tier 3 per token: `per_minute`, with a
    /// burst of `burst`; past it `429` with the `Retry-After` until the
    /// next is allowed.
    pub fn limit_updates(&self, per_minute: u32, burst: u32) {
        self.shared.lock().unwrap().updates = Some(UpdateLimit {
            interval: std::time::Duration::from_secs(60) / per_minute.max(1),
            burst: burst.max(1),
            next: Default::default(),
            blocked_until: Default::default(),
            limited: 0,
            inside_window: 0,
        });
    }

    /// How many `chat.update`s the tier-3 limit answered with `429`.
    pub fn updates_limited(&self) -> usize {
        self.shared
            .lock()
            .unwrap()
            .updates
            .as_ref()
            .map_or(0, |l| l.limited)
    }

    /// How many `chat.update`s came inside their token's `Retry-After`.
    pub fn updates_inside_retry_after(&self) -> usize {
        self.shared
            .lock()
            .unwrap()
            .updates
            .as_ref()
            .map_or(0, |l| l.inside_window)
    }

    /// Answers every request `delay` after it arrived, as a Slack far
    /// away would (the rate limit still counts arrivals).
    pub fn answer_after(&self, delay: std::time::Duration) {
        self.shared.lock().unwrap().delay = delay;
    }

    /// Answers every `n`th request with a transient `503`
    /// (`service_unavailable`): `5` is a 20 % fault rate.
    pub fn fail_every(&self, n: usize) {
        self.shared.lock().unwrap().fail_every = Some(n.max(1));
    }

    /// How many `429`s the rate limit answered.
    pub fn rate_limited(&self) -> usize {
        self.shared
            .lock()
            .unwrap()
            .limit
            .as_ref()
            .map_or(0, |l| l.limited)
    }

    /// How many requests came for a channel inside its `Retry-After` window.
    pub fn inside_retry_after(&self) -> usize {
        self.shared
            .lock()
            .unwrap()
            .limit
            .as_ref()
            .map_or(0, |l| l.inside_window)
    }

    /// Requests received and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().unwrap().in_flight
    }

    /// The most requests that were ever unanswered at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.lock().unwrap().max_in_flight
    }

    /// Connections whose TLS handshake failed.
    pub fn tls_failures(&self) -> usize {
        self.shared.lock().unwrap().tls_failures
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests have been received (cheaper than [`MockSlack::requests`]).
    pub fn received(&self) -> usize {
        self.shared.lock().unwrap().received.len()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// The next request gets `reply` instead of the stand-in's own answer;
    /// several queue up in order.
    pub fn push_reply(&self, reply: Reply) {
        self.shared
            .lock()
            .unwrap()
            .scripted
            .push_back(Step::Reply(reply));
    }

    /// The next request meets `fault`; faults and replies queue up together.
    pub fn push_fault(&self, fault: Fault) {
        self.shared
            .lock()
            .unwrap()
            .scripted
            .push_back(Step::Fault(fault));
    }

    /// The messages posted (and not deleted) as they stand now, oldest
    /// first: thread replies among them, with their parent's `ts`.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.lock().unwrap().messages.clone()
    }

    /// Forgets the message `ts` (and its thread's replies), as if someone
    /// deleted it in Slack: updating it is then `message_not_found`, and
    /// replying to it `thread_not_found`. Whether there was one.
    pub fn delete_message(&self, ts: &str) -> bool {
        self.shared.lock().unwrap().delete_message(ts)
    }

    /// Answers `apps.connections.open` (a path ending so) with
    /// `{"ok":true,"url":"ws://…/link/?ticket=…"}` at `stand_in`'s origin, a new
    /// ticket each time, when the request carries an app-level token
    /// (`Bearer xapp-…`; another token is `not_allowed_token_type`, none
    /// `not_authed`). The request is recorded like any other, with its
    /// `Authorization` header. Without a stand-in the path is answered as
    /// `chat.postMessage`.
    pub fn serve_socket_mode(&self, stand_in: &crate::mock_socket_mode::SocketModeStandIn) {
        self.shared.lock().unwrap().socket_mode = Some(stand_in.origin());
    }

    /// Calls `observer` for every request and the answer it got.
    pub fn observe(&self, observer: impl Fn(&Received, &Reply) + Send + Sync + 'static) {
        self.shared.lock().unwrap().observer = Some(Box::new(observer));
    }

    /// Blocks until the stand-in stops (for `host-test mock-slack`).
    pub fn wait(self) {
        self.running.wait();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Mutex<Shared>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                // A second handle on the socket, so a fault can reset it.
                let Ok((stream, twin)) = twin(stream) else { continue };
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let state = shared.clone();
                    let twin = Arc::new(Mutex::new(Some(twin)));
                    let service = service_fn(move |req| answer(req, state.clone(), twin.clone()));
                    match tls {
                        None => {
                            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                            }
                            Err(_) => shared.lock().unwrap().tls_failures += 1,
                        },
                    }
                });
            }
        }
    }
}

/// How many connections may wait to be accepted. std's `bind` listens
/// with 128: a storm that opens a connection per channel (1,000 at once)
/// would overflow it, and each refused handshake is retried a second
/// later, which the benchmark would count against the client.
const BACKLOG: i32 = 4096;

/// A listener on 127.0.0.1:`port` with [`BACKLOG`], reusing the address
/// as std's `bind` does (a fixed port is free again right after a stop).
fn listen(port: u16) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The stream and a duplicate of its socket.
fn twin(
    stream: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let stream = stream.into_std()?;
    let twin = stream.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(stream)?, twin))
}

/// The socket shared with a connection's requests, for a reset.
type Twin = Arc<Mutex<Option<std::net::TcpStream>>>;

/// A response body sent a chunk at a time, with pauses, that may end in a
/// connection reset.
struct Scripted {
    chunks: VecDeque<Bytes>,
    pause: std::time::Duration,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    reset: Option<Twin>,
}

impl Scripted {
    fn whole(body: Vec<u8>) -> Self {
        Scripted {
            chunks: VecDeque::from([Bytes::from(body)]),
            pause: std::time::Duration::ZERO,
            sleep: None,
            reset: None,
        }
    }

    fn in_chunks(body: &[u8], chunks: usize, pause: std::time::Duration) -> Self {
        let size = body.len().div_ceil(chunks.max(1)).max(1);
        Scripted {
            chunks: body.chunks(size).map(Bytes::copy_from_slice).collect(),
            pause,
            sleep: None,
            reset: None,
        }
    }
}

impl hyper::body::Body for Scripted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        match self.chunks.pop_front() {
            Some(chunk) => {
                if !self.pause.is_zero() {
                    self.sleep = Some(Box::pin(tokio::time::sleep(self.pause)));
                }
                Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
            }
            None => match self.reset.take() {
                Some(twin) => {
                    // Linger 0: closing sends RST. Dropping our handle
                    // leaves hyper's as the last, dropped on this error.
                    if let Some(socket) = twin.lock().unwrap().take() {
                        let _ = socket2::SockRef::from(&socket)
                            .set_linger(Some(std::time::Duration::ZERO));
                    }
                    Poll::Ready(Some(Err(std::io::ErrorKind::ConnectionReset.into())))
                }
                None => Poll::Ready(None),
            },
        }
    }
}

async fn answer(
    req: hyper::Request<Incoming>,
    shared: Arc<Mutex<Shared>>,
    twin: Twin,
) -> Result<hyper::Response<Scripted>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let received = Received {
        at: std::time::Instant::now(),
        method: parts.method.to_string(),
        host: parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string(),
        headers,
        body,
    };
    let gate = {
        let mut shared = shared.lock().unwrap();
        shared.in_flight += 1;
        shared.max_in_flight = shared.max_in_flight.max(shared.in_flight);
        shared.gate.clone()
    };
    loop {
        // Registered before the check, so a release in between is not missed.
        let released = gate.notified();
        if !shared.lock().unwrap().held {
            break;
        }
        released.await;
    }
    // Recorded on arrival: a client that gives up on a silent answer drops
    // this future, and the request still happened.
    let (step, seq, delay) = {
        let mut shared = shared.lock().unwrap();
        shared.in_flight -= 1;
        shared.received.push(received.clone());
        (
            shared.scripted.pop_front(),
            shared.received.len(),
            shared.delay,
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(Step::Fault(Fault::Silent(quiet))) = &step {
        tokio::time::sleep(*quiet).await;
    }
    let (reply, body) = {
        let mut shared = shared.lock().unwrap();
        let (reply, body) = match step {
            Some(Step::Reply(reply)) => {
                let body = Scripted::whole(reply.body.clone());
                (reply, body)
            }
            Some(Step::Fault(Fault::ResetMidResponse(reply))) => {
                let half = &reply.body[..reply.body.len() / 2];
                let mut body = Scripted::in_chunks(half, 1, std::time::Duration::from_millis(50));
                body.reset = Some(twin);
                (reply, body)
            }
            Some(Step::Fault(Fault::SlowBody {
                reply,
                chunks,
                pause,
            })) => {
                let body = Scripted::in_chunks(&reply.body, chunks, pause);
                (reply, body)
            }
            Some(Step::Fault(Fault::Silent(_))) | None => {
                let reply = own_answer(&mut shared, &received, seq);
                (reply.clone(), Scripted::whole(reply.body))
            }
        };
        if let Some(observer) = &shared.observer {
            observer(&received, &reply);
        }
        (reply, body)
    };
    let mut response = hyper::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        response = response.header(k, v);
    }
    // The declared length is the whole body's, also when it is cut short.
    response = response.header("content-length", reply.body.len());
    Ok(response
        .body(body)
        .unwrap_or_else(|_| hyper::Response::new(Scripted::whole(Vec::new()))))
}

/// The stand-in's own answer: the rate limit's, the fault rate's, or Slack's.
fn own_answer(shared: &mut Shared, received: &Received, seq: usize) -> Reply {
    if let Some(socket_mode) = &shared.socket_mode {
        if api_method(received) == "apps.connections.open" {
            return connections_open(socket_mode, received, seq);
        }
    }
    match rate_limit(shared, received).or_else(|| update_limit(shared, received)) {
        Some(limited) => limited,
        None if shared.fail_every.is_some_and(|n| seq.is_multiple_of(n)) => {
            Reply::json(503, json!({"ok": false, "error": "service_unavailable"}))
        }
        None => slack_answer(shared, received, seq),
    }
}

/// The Web API method a request names: its path's last segment.
fn api_method(req: &Received) -> &str {
    let path = req.path.split('?').next().unwrap_or_default();
    path.rsplit('/').next().unwrap_or_default()
}

/// Whether `channel` is already a channel id such as `C0123ABC`.
fn is_channel_id(channel: &str) -> bool {
    channel.len() > 1
        && channel.starts_with('C')
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The channel id the stand-in gives a channel: `C` and the name's
/// letters and digits in upper case (`#alerts` → `CALERTS`); an id stays
/// itself.
fn channel_id(channel: &str) -> String {
    if is_channel_id(channel) {
        return channel.to_string();
    }
    std::iter::once('C')
        .chain(
            channel
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_uppercase()),
        )
        .collect()
}

/// What Slack itself would answer a well-formed request.
fn slack_answer(shared: &mut Shared, req: &Received, seq: usize) -> Reply {
    let body = req.json();
    if req.method != "POST" {
        return Reply::text(405, "method_not_allowed");
    }
    if !req.is_web_api() {
        return match body {
            Value::Object(_) => Reply::text(200, "ok"),
            _ => Reply::text(400, "invalid_payload"),
        };
    }
    if !req
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer ") && a.len() > 7)
    {
        return slack_error("not_authed");
    }
    let Value::Object(_) = body else {
        return slack_error("invalid_json");
    };
    let channel = body["channel"].as_str().unwrap_or("");
    if channel.is_empty() {
        return slack_error("channel_not_found");
    }
    let empty = |key: &str| body[key].as_array().is_none_or(|a| a.is_empty());
    let text = body["text"].as_str().unwrap_or("");
    if text.is_empty() && empty("attachments") && empty("blocks") {
        return slack_error("no_text");
    }
    if api_method(req) == "chat.update" {
        update(shared, body)
    } else {
        post(shared, body, seq)
    }
}

/// `apps.connections.open`: a URL of the Socket Mode stand-in at
/// `socket_mode`, for an app-level token.
fn connections_open(socket_mode: &str, req: &Received, seq: usize) -> Reply {
    match req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    {
        Some(token) if token.starts_with("xapp-") => Reply::json(
            200,
            json!({"ok": true,
                   "url": format!("{socket_mode}/link/?ticket=stand-in-ticket-{seq:04}&app_id=A0STANDIN")}),
        ),
        Some(token) if !token.is_empty() => slack_error("not_allowed_token_type"),
        _ => slack_error("not_authed"),
    }
}

fn slack_error(code: &str) -> Reply {
    Reply::json(200, json!({"ok": false, "error": code}))
}

/// `chat.postMessage`: a new message, or a reply in the thread of
/// `thread_ts`, which must be a message in that channel.
fn post(shared: &mut Shared, body: Value, seq: usize) -> Reply {
    let channel_id = channel_id(body["channel"].as_str().unwrap_or_default());
    let thread_ts = body["thread_ts"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(String::from);
    if let Some(parent) = &thread_ts {
        if !shared
            .messages
            .iter()
            .any(|m| m.channel_id == channel_id && m.ts == *parent)
        {
            return slack_error("thread_not_found");
        }
    }
    let ts = format!("1700000000.{seq:06}");
    let text = body["text"].as_str().unwrap_or("");
    let mut message = json!({"type": "message", "subtype": "bot_message", "text": text, "ts": ts,
                             "username": body["username"], "attachments": body["attachments"]});
    if let Some(parent) = &thread_ts {
        message["thread_ts"] = json!(parent);
    }
    shared.channel_ids.insert(channel_id.clone());
    shared.messages.push(Message {
        channel_id: channel_id.clone(),
        ts: ts.clone(),
        thread_ts,
        body,
        updates: 0,
    });
    Reply::json(
        200,
        json!({"ok": true, "channel": channel_id, "ts": ts, "message": message}),
    )
}

/// `chat.update`: `channel` must be a channel id the stand-in gave (a
/// `#name` is `channel_not_found`, as in Slack), `ts` a message in it.
fn update(shared: &mut Shared, body: Value) -> Reply {
    let channel = body["channel"].as_str().unwrap_or_default().to_string();
    if !shared.channel_ids.contains(&channel) {
        return slack_error("channel_not_found");
    }
    let ts = body["ts"].as_str().unwrap_or_default().to_string();
    let Some(message) = shared
        .messages
        .iter_mut()
        .find(|m| m.channel_id == channel && m.ts == ts)
    else {
        return slack_error("message_not_found");
    };
    let answer = json!({
        "ok": true,
        "channel": channel,
        "ts": ts,
        "text": body["text"],
        "message": {"type": "message", "subtype": "bot_message", "text": body["text"],
                    "attachments": body["attachments"], "blocks": body["blocks"]},
    });
    message.body = body;
    message.updates += 1;
    Reply::json(200, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asks the stand-in's own answer for a Web API call with a token.
    fn call(shared: &mut Shared, method: &str, body: Value) -> Value {
        let req = Received {
            method: "POST".into(),
            host: "slack.com".into(),
            path: format!("/api/{method}"),
            headers: vec![("Authorization".into(), "Bearer xoxb-t".into())],
            body: body.to_string().into_bytes(),
            at: std::time::Instant::now(),
        };
        shared.received.push(req.clone());
        let seq = shared.received.len();
        serde_json::from_slice(&own_answer(shared, &req, seq).body).unwrap()
    }

    fn post(shared: &mut Shared, body: Value) -> (String, String) {
        let answer = call(shared, "chat.postMessage", body);
        assert_eq!(answer["ok"], true, "{answer}");
        (
            answer["channel"].as_str().unwrap().to_string(),
            answer["ts"].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn an_update_replaces_the_message_it_names_by_channel_id_and_ts() {
        let mut shared = Shared::default();
        let (channel, ts) = post(&mut shared, json!({"channel": "#alerts", "text": "firing"}));
        assert_eq!(channel, "CALERTS");
        let answer = call(
            &mut shared,
            "chat.update",
            json!({"channel": channel, "ts": ts, "text": "resolved"}),
        );
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(
            (&answer["channel"], &answer["ts"]),
            (&json!(channel), &json!(ts))
        );
        assert_eq!(answer["message"]["text"], "resolved");
        let [message] = shared.messages.as_slice() else {
            panic!("one message: {:?}", shared.messages)
        };
        assert_eq!(
            (message.body["text"].as_str(), message.updates),
            (Some("resolved"), 1)
        );
    }

    #[test]
    fn an_update_needs_the_channel_id_not_its_name() {
        let mut shared = Shared::default();
        let (_, ts) = post(&mut shared, json!({"channel": "#alerts", "text": "firing"}));
        let answer = call(
            &mut shared,
            "chat.update",
            json!({"channel": "#alerts", "ts": ts, "text": "resolved"}),
        );
        assert_eq!(answer, json!({"ok": false, "error": "channel_not_found"}));
        assert_eq!(shared.messages[0].updates, 0);
    }

    #[test]
    fn an_update_of_a_message_it_does_not_have_is_message_not_found() {
        let mut shared = Shared::default();
        let (channel, ts) = post(&mut shared, json!({"channel": "#alerts", "text": "firing"}));
        let unknown = call(
            &mut shared,
            "chat.update",
            json!({"channel": channel, "ts": "1.000009", "text": "x"}),
        );
        assert_eq!(unknown["error"], "message_not_found");
        assert!(shared.delete_message(&ts));
        let deleted = call(
            &mut shared,
            "chat.update",
            json!({"channel": channel, "ts": ts, "text": "x"}),
        );
        assert_eq!(deleted["error"], "message_not_found");
    }

    #[test]
    fn an_update_without_a_token_is_not_authed() {
        let mut shared = Shared::default();
        let req = Received {
            method: "POST".into(),
            host: "slack.com".into(),
            path: "/api/chat.update".into(),
            headers: vec![],
            body: json!({"channel": "C1", "ts": "1.1", "text": "x"})
                .to_string()
                .into_bytes(),
            at: std::time::Instant::now(),
        };
        let answer: Value = serde_json::from_slice(&own_answer(&mut shared, &req, 1).body).unwrap();
        assert_eq!(answer["error"], "not_authed");
    }

    #[test]
    fn a_reply_goes_into_its_parents_thread_in_that_channel_only() {
        let mut shared = Shared::default();
        let (channel, parent) = post(&mut shared, json!({"channel": "#alerts", "text": "firing"}));
        // Posting to the id is posting to the channel.
        let answer = call(
            &mut shared,
            "chat.postMessage",
            json!({"channel": channel, "text": "still", "thread_ts": parent, "reply_broadcast": true}),
        );
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["channel"], "CALERTS");
        assert_eq!(answer["message"]["thread_ts"], json!(parent));
        assert_eq!(
            shared.messages[1].thread_ts.as_deref(),
            Some(parent.as_str())
        );
        assert_eq!(shared.messages[1].body["reply_broadcast"], true);
        let elsewhere = call(
            &mut shared,
            "chat.postMessage",
            json!({"channel": "#other", "text": "x", "thread_ts": parent}),
        );
        assert_eq!(elsewhere, json!({"ok": false, "error": "thread_not_found"}));
        assert_eq!(shared.messages.len(), 2);
    }

    #[test]
    fn deleting_a_parent_takes_its_thread_with_it() {
        let mut shared = Shared::default();
        let (channel, parent) = post(&mut shared, json!({"channel": "#alerts", "text": "firing"}));
        post(
            &mut shared,
            json!({"channel": channel, "text": "r", "thread_ts": parent}),
        );
        post(
            &mut shared,
            json!({"channel": "#alerts", "text": "another"}),
        );
        assert!(shared.delete_message(&parent));
        assert_eq!(shared.messages.len(), 1);
        assert!(!shared.delete_message(&parent));
        let reply = call(
            &mut shared,
            "chat.postMessage",
            json!({"channel": channel, "text": "r", "thread_ts": parent}),
        );
        assert_eq!(reply["error"], "thread_not_found");
    }

    #[test]
    fn the_rate_limit_counts_a_channel_by_id_and_leaves_updates_alone() {
        let mut shared = Shared {
            limit: Some(ChannelLimit::new(
                std::time::Duration::from_secs(60),
                std::time::Duration::from_secs(1),
            )),
            ..Shared::default()
        };
        let (channel, ts) = post(&mut shared, json!({"channel": "#alerts", "text": "a"}));
        let update = call(
            &mut shared,
            "chat.update",
            json!({"channel": channel, "ts": ts, "text": "b"}),
        );
        assert_eq!(update["ok"], true, "{update}");
        let again = call(
            &mut shared,
            "chat.postMessage",
            json!({"channel": "CALERTS", "text": "c"}),
        );
        assert_eq!(again["error"], "ratelimited");
    }
}
