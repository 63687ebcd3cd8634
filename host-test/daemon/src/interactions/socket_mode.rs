//! Socket Mode's pump: keeps one WebSocket to Slack open for a `serve` that
//! Slack cannot call, hands every text message to the component (through a
//! [`Peer`]) and sends its answer back at once, and opens a new connection
//! when Slack asks or the old one is lost — never two at once.
//!
//! What a message means (hello, an envelope and its acknowledgement, a
//! disconnect) is the component's rule; this module only moves frames. The
//! app token never reaches it: [`Peer::open`] returns the URL to open, and
//! every error and log line it writes goes through [`redact`] anyway.
//!
//! The connection leaves by the host's networking, as the component's
//! requests do ([`Network`]): the connect-to map, the deny-list, the proxy
//! (`CONNECT`), the section's TLS, the operator's egress allowlist for a
//! plugin, and `wss://` only unless the operator allows `ws://`.
//!
//! ```text
//!   open (apps.connections.open) ─▶ connect (host's dialer, WebSocket)
//!        ▲                               │ text ─▶ Peer::message ─▶ reply
//!        │ at once: Slack's disconnect   ▼
//!        └── after a backoff: lost, refused, failed to open
//! ```
//!
//! While up, the pump pings every [`Timing::ping_every`]; a connection
//! from which nothing at all was heard for [`Timing::silent_for`] is taken
//! as lost (a half-open connection would otherwise never end).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alert_handler_host::net::connector::{ConnectError, Io};
use alert_handler_host::net::dial::Dialer;
use alert_handler_host::net::Origin;
use alert_handler_host::Allowlist;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{info, warn};

/// A boxed future that can move between threads (what [`Peer`]'s calls return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the pump needs from the component and the engine: implemented by
/// serve over an instance; tests may use their own.
pub trait Peer: Send + Sync + 'static {
    /// The URL to open (the component's `socket-url`, which asks Slack's
    /// `apps.connections.open`). An error's text must never contain the
    /// token.
    fn open(&self) -> BoxFuture<'_, anyhow::Result<String>>;

    /// One text message: the peer asks the component (`socket-message`),
    /// does what the outcome asks (records a click durably), and returns
    /// what to send back and whether to reconnect.
    fn message(&self, text: String) -> BoxFuture<'_, Next>;
}

/// What to do after a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Next {
    /// A text frame to send back at once (an envelope's acknowledgement).
    pub reply: Option<String>,
    /// Close this connection and open a new one now (Slack's `disconnect`).
    pub reconnect: bool,
}

/// The pump's state for `/healthz` and `/metrics`, updated as it goes.
#[derive(Debug, Default)]
pub struct SocketState {
    connected: AtomicBool,
    connections: AtomicU64,
    reconnects: AtomicU64,
    acked: AtomicU64,
    error: Mutex<Option<String>>,
}

/// [`SocketState`] at one moment, as `/healthz` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SocketStatus {
    /// Whether a WebSocket to Slack is open now.
    pub connected: bool,
    /// WebSockets opened since start.
    pub connections: u64,
    /// Times a connection ended (asked by Slack or lost) and another was opened.
    pub reconnects: u64,
    /// Replies sent (envelopes acknowledged).
    pub acked: u64,
    /// Why the last attempt failed or the last connection was lost; `None`
    /// once connected again.
    pub error: Option<String>,
}

impl SocketState {
    /// Not connected, nothing counted.
    pub fn new() -> SocketState {
        SocketState::default()
    }

    /// Whether a WebSocket to Slack is open now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// WebSockets opened since start.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Times a connection ended (asked by Slack or lost) and another was opened.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::SeqCst)
    }

    /// Replies sent (envelopes acknowledged).
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Why the last attempt failed or the last connection was lost (never
    /// the token, nor the URL's ticket); `None` while connected.
    pub fn error(&self) -> Option<String> {
        crate::lock(&self.error).clone()
    }

    /// Everything at once, for `/healthz`.
    pub fn status(&self) -> SocketStatus {
        SocketStatus {
            connected: self.connected(),
            connections: self.connections(),
            reconnects: self.reconnects(),
            acked: self.acked(),
            error: self.error(),
        }
    }

    fn up(&self) {
        *crate::lock(&self.error) = None;
        self.connections.fetch_add(1, Ordering::SeqCst);
        self.connected.store(true, Ordering::SeqCst);
    }

    fn down(&self, error: Option<String>) {
        self.connected.store(false, Ordering::SeqCst);
        if error.is_some() {
            *crate::lock(&self.error) = error;
        }
    }
}

/// How long the pump waits, and for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The wait after a first failure; it doubles with each failure in a row.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// A connection that was up this long (or heard Slack's first message)
    /// starts the backoff over.
    pub healthy_after: Duration,
    /// How long opening may take: TCP, TLS and the WebSocket handshake.
    pub connect_timeout: Duration,
    /// How long a closing handshake may take before the socket is dropped.
    pub close_timeout: Duration,
    /// How often the pump pings Slack while the connection is up.
    pub ping_every: Duration,
    /// A connection from which nothing (not a message, not a pong) was
    /// heard for this long is taken as lost: a peer gone silent without
    /// closing (a NAT or a load balancer that forgot the connection)
    /// would otherwise hold serve's only connection forever.
    pub silent_for: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            healthy_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            ping_every: Duration::from_secs(30),
            silent_for: Duration::from_secs(75),
        }
    }
}

/// Exponential backoff with jitter: the pure rule of how long to wait
/// before the next attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            failures: 0,
        }
    }

    /// The wait after one more failure: the base (`first`, doubled per
    /// failure before it, at most `max`) plus `jitter` (0 to 1) of half the
    /// base, never over `max`. Never shorter than the base, so a test (or
    /// Slack) sees at least the documented wait.
    pub fn next(&mut self, jitter: f64) -> Duration {
        let doublings = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let base = self.first.saturating_mul(1 << doublings).min(self.max);
        (base + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)).min(self.max)
    }

    /// After a healthy connection: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A number from 0 to 1, different at each call: std's randomly keyed
/// hasher is enough to spread the nodes' retries apart.
fn jitter() -> f64 {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (random >> 11) as f64 / (1u64 << 53) as f64
}

/// How the pump reaches Slack: by the host's networking, as the
/// component's requests do, and only where the operator allows.
#[derive(Clone)]
pub struct Network {
    /// Opens the connection: the host's connect-to map, deny-list, proxies
    /// (`CONNECT`) and connect timeout, with the TLS of the section whose
    /// Web API `apps.connections.open` was asked of.
    pub dialer: Dialer,
    /// Take a `ws://` URL (no TLS) from `apps.connections.open`
    /// (`--insecure-allow-ws`): Slack gives only `wss://`, so a `ws://` URL
    /// is a stand-in's or someone else's.
    pub allow_ws: bool,
    /// The operator's egress allowlist of a plugin from a directory: the
    /// URL's origin must be on it, since the plugin chose the URL. `None`
    /// with `--config` (this project's component, trusted).
    pub allowlist: Option<Allowlist>,
}

/// Runs the pump until `stop` resolves, with the default [`Timing`]:
/// opens through `peer`, connects over `network`, answers every text
/// message, reconnects as needed, and records it all in `state`. At stop
/// the open connection is closed with a closing handshake.
pub async fn run(
    peer: Arc<dyn Peer>,
    network: Network,
    state: Arc<SocketState>,
    stop: impl Future<Output = ()> + Send,
) {
    run_with(peer, network, state, Timing::default(), stop).await
}

/// [`run`] with its waits given.
pub async fn run_with(
    peer: Arc<dyn Peer>,
    network: Network,
    state: Arc<SocketState>,
    timing: Timing,
    stop: impl Future<Output = ()> + Send,
) {
    let mut stop = std::pin::pin!(stop);
    let mut backoff = Backoff::new(timing.first_backoff, timing.max_backoff);
    let pump = Pump {
        peer: &*peer,
        network: &network,
        state: &state,
        timing: &timing,
    };
    loop {
        let error = match pump.session(stop.as_mut()).await {
            Ended::Stopped => break,
            Ended::Refresh => {
                info!("socket mode: Slack asked for a new connection");
                state.reconnects.fetch_add(1, Ordering::SeqCst);
                state.down(None);
                backoff.reset();
                continue;
            }
            Ended::Lost { why, healthy } => {
                state.reconnects.fetch_add(1, Ordering::SeqCst);
                if healthy {
                    backoff.reset();
                }
                why
            }
            Ended::Failed(why) => why,
        };
        let error = redact(&error);
        let wait = backoff.next(jitter());
        warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "socket mode: not connected");
        state.down(Some(error));
        tokio::select! {
            _ = stop.as_mut() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    state.down(None);
    info!("socket mode: stopped");
}

/// How one connection (or the attempt to open it) ended.
enum Ended {
    /// The stop signal came.
    Stopped,
    /// Slack asked for a new connection (`disconnect`).
    Refresh,
    /// The connection was up and was lost; `healthy` if it heard Slack or
    /// lived long enough to start the backoff over.
    Lost { why: String, healthy: bool },
    /// No connection was made.
    Failed(String),
}

/// A WebSocket over the stream the host's dialer opened (TCP, TLS, a
/// proxy's tunnel).
type Socket = WebSocketStream<Box<dyn Io>>;

/// One run's borrowed parts.
struct Pump<'a> {
    peer: &'a dyn Peer,
    network: &'a Network,
    state: &'a SocketState,
    timing: &'a Timing,
}

impl Pump<'_> {
    /// Opens one connection and serves it until it ends (or `stop`).
    async fn session<S: Future<Output = ()> + Send>(&self, mut stop: Pin<&mut S>) -> Ended {
        let opened = tokio::select! {
            _ = stop.as_mut() => return Ended::Stopped,
            opened = self.peer.open() => opened,
        };
        let url = match opened {
            Ok(url) => url,
            Err(e) => return Ended::Failed(format!("apps.connections.open: {e:#}")),
        };
        let target = match Target::parse(&url) {
            Ok(target) => target,
            Err(e) => return Ended::Failed(format!("apps.connections.open gave {e}")),
        };
        let connecting = tokio::time::timeout(self.timing.connect_timeout, self.connect(&target));
        let mut socket = tokio::select! {
            _ = stop.as_mut() => return Ended::Stopped,
            connected = connecting => match connected {
                Ok(Ok(socket)) => socket,
                Ok(Err(e)) => return Ended::Failed(format!("connecting to {}: {e}", target.shown())),
                Err(_) => return Ended::Failed(format!(
                    "connecting to {}: no answer within {:?}", target.shown(), self.timing.connect_timeout)),
            },
        };
        self.state.up();
        info!(url = %target.shown(), "socket mode: connected");
        let since = Instant::now();
        let mut heard = false;
        let mut closed_by_slack = None;
        let mut last_heard = Instant::now();
        let every = self.timing.ping_every.max(Duration::from_millis(10));
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let ended = loop {
            let frame = tokio::select! {
                biased;
                _ = stop.as_mut() => {
                    self.close(socket).await;
                    return Ended::Stopped;
                }
                frame = socket.next() => frame,
                _ = ping.tick() => {
                    let silent = last_heard.elapsed();
                    if silent >= self.timing.silent_for {
                        break Ended::Lost {
                            why: format!(
                                "nothing heard for {} s, pings unanswered",
                                silent.as_secs()
                            ),
                            healthy: false,
                        };
                    }
                    if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                        break Ended::Lost {
                            why: format!("a ping could not be sent: {e}"),
                            healthy: false,
                        };
                    }
                    continue;
                }
            };
            last_heard = Instant::now();
            match frame {
                None => {
                    break Ended::Lost {
                        why: closed_by_slack
                            .take()
                            .unwrap_or_else(|| "the connection ended".to_string()),
                        healthy: false,
                    }
                }
                Some(Err(e)) => {
                    break Ended::Lost {
                        why: format!("the connection failed: {e}"),
                        healthy: false,
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    heard = true;
                    // Served one at a time, in order; a click being
                    // recorded finishes even when the stop comes meanwhile.
                    let answer = self.peer.message(text.as_str().to_string()).await;
                    if let Some(reply) = answer.reply {
                        if let Err(e) = socket.send(Message::text(reply)).await {
                            break Ended::Lost {
                                why: format!("sending an acknowledgement failed: {e}"),
                                healthy: false,
                            };
                        }
                        self.state.acked.fetch_add(1, Ordering::SeqCst);
                    }
                    if answer.reconnect {
                        break Ended::Refresh;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite answers the close; the stream ends next.
                    closed_by_slack = Some(match frame {
                        Some(frame) => format!(
                            "Slack closed the connection ({}: {})",
                            u16::from(frame.code),
                            frame.reason
                        ),
                        None => "Slack closed the connection".to_string(),
                    });
                }
                // A ping's pong is queued by tungstenite and goes out with
                // the next read, which comes at once.
                Some(Ok(_)) => {}
            }
        };
        self.close(socket).await;
        match ended {
            Ended::Lost { why, .. } => Ended::Lost {
                why: format!("{}: {why}", target.shown()),
                healthy: heard || since.elapsed() >= self.timing.healthy_after,
            },
            other => other,
        }
    }

    /// Checks what the operator allows (`ws://`, the plugin's allowlist),
    /// opens the stream by the host's dialer, then the WebSocket handshake
    /// over it (its `Host` the URL's, whatever the connect-to map says).
    async fn connect(&self, target: &Target) -> Result<Socket, String> {
        if !target.tls && !self.network.allow_ws {
            return Err("refused: a ws:// URL (no TLS); serve opens only wss:// \
                        unless started with --insecure-allow-ws"
                .to_string());
        }
        let origin = Origin::of_websocket(&target.uri).ok_or("a URL without a host")?;
        if let Some(allowlist) = &self.network.allowlist {
            allowlist
                .allows(&origin)
                .map_err(|e| format!("refused: {e}"))?;
        }
        let io = self
            .network
            .dialer
            .open(&origin)
            .await
            .map_err(|e| match e {
                ConnectError::Denied { ip, range } => {
                    format!("refused by --deny-cidrs: address {ip} is in {range}")
                }
                other => other.to_string(),
            })?;
        let (socket, _) = tokio_tungstenite::client_async(target.uri.clone(), io)
            .await
            .map_err(|e| format!("the WebSocket handshake failed: {e}"))?;
        Ok(socket)
    }

    /// Closes `socket` fully before the next is opened: a closing
    /// handshake, what is left read until the peer's close (bounded), then
    /// the socket dropped.
    async fn close(&self, mut socket: Socket) {
        let _ = tokio::time::timeout(self.timing.close_timeout, async {
            let _ = socket.close(None).await;
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
        drop(socket);
        self.state.connected.store(false, Ordering::SeqCst);
    }
}

/// Where a Socket Mode URL points.
#[derive(Debug, Clone)]
struct Target {
    uri: http::Uri,
    tls: bool,
}

impl Target {
    /// `ws://` or `wss://` URL with a host; an error never repeats the URL
    /// (its query is a ticket).
    fn parse(url: &str) -> Result<Target, String> {
        let uri: http::Uri = url.parse().map_err(|_| "a malformed URL".to_string())?;
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            other => {
                return Err(format!(
                    "a URL whose scheme is {}, not ws or wss",
                    other.unwrap_or("missing")
                ))
            }
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err("a URL without a host".to_string());
        }
        Ok(Target { uri, tls })
    }

    /// The URL without its query, for logs and errors.
    fn shown(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        let authority = self.uri.authority().map_or("", |a| a.as_str());
        format!("{scheme}://{authority}{}", self.uri.path())
    }
}

/// `text` with Slack's tokens (`xapp-…`, `xoxb-…`, …) and a URL's
/// `ticket=` value blanked: the last guard on what the pump logs and shows.
pub fn redact(text: &str) -> String {
    const SECRETS: [&str; 7] = [
        "xapp-", "xoxb-", "xoxp-", "xoxa-", "xoxe-", "xoxs-", "ticket=",
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) = SECRETS
        .iter()
        .filter_map(|p| rest.find(p).map(|at| (at, *p)))
        .min()
    {
        let after = at + prefix.len();
        out.push_str(&rest[..after]);
        let secret = rest[after..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.%~".contains(c)))
            .map_or(rest.len(), |end| after + end);
        if secret > after {
            out.push_str("[redacted]");
        }
        rest = &rest[secret..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(ms(250), Duration::from_secs(30));
        let waits: Vec<_> = (0..10).map(|_| b.next(0.0)).collect();
        assert_eq!(
            waits,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000].map(ms)
        );
    }

    #[test]
    fn backoff_jitter_adds_at_most_half_and_never_passes_the_cap() {
        let mut b = Backoff::new(ms(1000), ms(1800));
        assert_eq!(b.next(1.0), ms(1500));
        assert_eq!(b.next(1.0), ms(1800));
        for _ in 0..100 {
            let wait = Backoff::new(ms(1000), ms(30_000)).next(jitter());
            assert!(wait >= ms(1000) && wait <= ms(1500), "{wait:?}");
        }
    }

    #[test]
    fn backoff_starts_over_after_a_reset() {
        let mut b = Backoff::new(ms(250), ms(30_000));
        b.next(0.0);
        b.next(0.0);
        b.reset();
        assert_eq!(b.next(0.0), ms(250));
    }

    #[test]
    fn a_long_run_of_failures_does_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..1000 {
            assert!(b.next(0.5) <= Duration::from_secs(30));
        }
    }

    #[test]
    fn tokens_and_tickets_are_redacted() {
        let text = "invalid_auth for xapp-1-A0123-4567-abcdef (wss://wss-primary.slack.com/link/?ticket=12ab-cd&app_id=A1) and xoxb-99-x";
        let shown = redact(text);
        for secret in ["A0123-4567-abcdef", "12ab-cd", "99-x"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(
            shown,
            "invalid_auth for xapp-[redacted] (wss://wss-primary.slack.com/link/?ticket=[redacted]&app_id=A1) and xoxb-[redacted]"
        );
        assert_eq!(redact("nothing secret"), "nothing secret");
        assert_eq!(redact("ends with xapp-"), "ends with xapp-");
    }

    #[test]
    fn a_target_is_ws_or_wss_and_shown_without_its_query() {
        let t = Target::parse("wss://wss-primary.slack.com/link/?ticket=abc&app_id=A1").unwrap();
        assert!(t.tls);
        assert_eq!(t.shown(), "wss://wss-primary.slack.com/link/");
        let t = Target::parse("ws://127.0.0.1:8080/link/?ticket=abc").unwrap();
        assert!(!t.tls);
        assert_eq!(t.shown(), "ws://127.0.0.1:8080/link/");
        assert_eq!(
            Target::parse("ws://[::1]/x").unwrap().shown(),
            "ws://[::1]/x"
        );
    }

    #[test]
    fn a_url_that_is_not_a_websocket_is_refused_without_repeating_it() {
        let e = Target::parse("https://slack.com/?ticket=secret").unwrap_err();
        assert!(e.contains("scheme is https"), "{e}");
        assert!(!e.contains("secret"));
        assert!(Target::parse("not a url ticket=secret")
            .unwrap_err()
            .contains("malformed"));
        assert!(Target::parse("/link/?ticket=x").is_err());
    }

    #[test]
    fn status_clears_the_error_once_connected() {
        let s = SocketState::new();
        s.down(Some("refused".into()));
        assert_eq!(s.status().error.as_deref(), Some("refused"));
        assert!(!s.connected());
        s.up();
        assert_eq!(
            s.status(),
            SocketStatus {
                connected: true,
                connections: 1,
                ..SocketStatus::default()
            }
        );
    }
}
