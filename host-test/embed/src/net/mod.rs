//! Host-owned networking: what the guest may reach, and how. The guest asks
//! for a request through `wasi:http`; the host decides whether it may go
//! (an allowlist of the enabled workspaces' endpoints), where it goes (the
//! connect-to map, proxies), over which connection (a keep-alive pool per
//! endpoint) and with which TLS (the workspace's own `ssl-*` settings).
//! A connection the host opens for itself (Socket Mode's WebSocket) goes
//! by the same rules through [`dial::Dialer`].

pub mod cidr;
pub mod connect_to;
pub mod connector;
pub mod dial;
pub mod proxy;
pub mod tls;

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use cidr::DenyList;
pub use connect_to::ConnectTo;
use connector::{ConnectError, Connector};
use proxy::ProxyConfig;
use tls::TlsSettings;

/// Where the host writes what it refuses or warns about.
pub type Logger = Arc<dyn Fn(&str) + Send + Sync>;

/// The host's networking settings, shared by every instance of a runtime.
#[derive(Clone)]
pub struct NetSettings {
    /// Origins sent elsewhere (`--connect-to`), path and headers unchanged.
    pub connect_to: ConnectTo,
    /// Addresses no request may reach (`--deny-cidrs`).
    pub deny: DenyList,
    /// Proxies, as `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` say.
    pub proxy: ProxyConfig,
    /// The longest a connection may take to open.
    pub connect_timeout: Duration,
    /// The longest the host waits for an answer to start, and between its
    /// chunks; a guest may ask for less, never more.
    pub response_timeout: Duration,
    /// The longest a whole answer, head and body, may take from the moment
    /// the request is handed over: an answer that keeps trickling in ends
    /// as wasi:http's `HTTP-response-timeout` (a transport error the guest
    /// reports as retryable) instead of holding its instance until the
    /// call's deadline. Keep it below that deadline (`host::Limits`).
    pub response_deadline: Duration,
    /// Keep connections open for the next request (off only to measure).
    pub reuse_connections: bool,
    /// Where the host says what it refused or warns about.
    pub log: Logger,
    /// Connections opened so far, over every endpoint.
    pub opened: Arc<AtomicU64>,
}

impl Default for NetSettings {
    fn default() -> Self {
        NetSettings {
            connect_to: ConnectTo::default(),
            deny: DenyList::default(),
            proxy: ProxyConfig::default(),
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            response_deadline: Duration::from_secs(30),
            reuse_connections: true,
            log: Arc::new(|line| eprintln!("host: {line}")),
            opened: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl NetSettings {
    /// Default settings with `connect_to`.
    pub fn with_connect_to(connect_to: ConnectTo) -> Self {
        NetSettings {
            connect_to,
            ..NetSettings::default()
        }
    }

    /// Connections opened so far, over every endpoint.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

/// A destination: scheme and `host:port` (the port always explicit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host and port.
    pub authority: String,
}

impl Origin {
    /// The origin of an absolute URI (`None` without scheme or host).
    pub fn of(uri: &Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?.to_string();
        let authority = connect_to::with_port(&scheme, uri.authority()?);
        Some(Origin { scheme, authority })
    }

    pub(crate) fn parse(scheme: &str, authority: &str) -> Option<Origin> {
        Origin::of(&format!("{scheme}://{authority}/").parse().ok()?)
    }

    /// `scheme://host[:port]`, the port only when not the scheme's default
    /// (as an operator writes an origin).
    pub fn without_default_port(&self) -> String {
        let default = if self.scheme == "https" {
            ":443"
        } else {
            ":80"
        };
        let authority = self
            .authority
            .strip_suffix(default)
            .unwrap_or(&self.authority);
        format!("{}://{authority}", self.scheme)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

type HttpClient = Client<Connector, WasiBody>;

/// Idle connections kept per origin: enough for a host with a thousand
/// requests out at once (serve's default) to reuse every one of them on
/// the next round instead of opening most again.
const MAX_IDLE_PER_ORIGIN: usize = 1_024;

/// What a connection reads at once.
const READ_BUFFER: usize = 2_048;

/// What one configured instance may reach, and the clients that reach it.
pub struct NetPolicy {
    /// `None`: any destination (an instance the host never configured).
    allow: Option<HashSet<Origin>>,
    clients: HashMap<Origin, HttpClient>,
    fallback: HttpClient,
    connect_to: Arc<ConnectTo>,
    log: Logger,
    response_timeout: Duration,
    response_deadline: Duration,
}

/// Where one workspace's requests go, as the host's network layer needs
/// it: what a plugin's configuration summary says, in the network's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The workspace id, for messages.
    pub id: String,
    /// Only enabled destinations are reached.
    pub enabled: bool,
    /// Scheme and authority (`https`, `slack.com:443`).
    pub endpoint: Option<(String, String)>,
    /// How to do TLS for it.
    pub tls: TlsSettings,
}

impl NetPolicy {
    /// No allowlist and default TLS, for an instance the host did not
    /// configure (it found its configuration in the environment).
    pub fn open(settings: &NetSettings) -> Result<NetPolicy, String> {
        let fallback = client(settings, tls::client_config(&TlsSettings::default(), "")?);
        Ok(NetPolicy {
            allow: None,
            clients: HashMap::new(),
            fallback,
            connect_to: Arc::new(settings.connect_to.clone()),
            log: settings.log.clone(),
            response_timeout: settings.response_timeout,
            response_deadline: settings.response_deadline,
        })
    }

    /// The policy for a configuration's destinations: only the enabled
    /// ones are reached, each with its own TLS. Unreadable or malformed
    /// certificate files are errors now, naming the key and the path.
    pub fn for_destinations(
        destinations: &[Destination],
        settings: &NetSettings,
    ) -> Result<NetPolicy, String> {
        let mut policy = NetPolicy::open(settings)?;
        let mut allow = HashSet::new();
        let mut seen: HashMap<Origin, (String, TlsSettings)> = HashMap::new();
        for ws in destinations {
            let settings_of_ws = ws.tls.clone();
            // Every workspace's files are checked, enabled or not, as Kapacitor does.
            let config = tls::client_config(&settings_of_ws, &ws.id)?;
            let Some((scheme, authority)) = ws.endpoint.as_ref().filter(|_| ws.enabled) else {
                continue;
            };
            let origin = Origin::parse(scheme, authority).ok_or_else(|| {
                format!(
                    "workspace \"{}\": bad endpoint {scheme}://{authority}",
                    ws.id
                )
            })?;
            if let Some((other, other_tls)) = seen.get(&origin) {
                if *other_tls != settings_of_ws {
                    return Err(format!(
                        "workspaces \"{other}\" and \"{}\" both send to {origin} with different TLS settings; \
                         the host chooses TLS by destination, so give them the same settings",
                        ws.id
                    ));
                }
                continue;
            }
            if settings_of_ws.insecure_skip_verify {
                (settings.log)(&format!(
                    "warning: workspace \"{}\": insecure-skip-verify is set, so {origin}'s TLS certificate is not verified",
                    ws.id
                ));
            }
            seen.insert(origin.clone(), (ws.id.clone(), settings_of_ws));
            policy
                .clients
                .insert(origin.clone(), client(settings, config));
            allow.insert(origin);
        }
        policy.allow = Some(allow);
        Ok(policy)
    }

    /// Sends one guest request under this policy.
    pub fn send(
        self: &Arc<Self>,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> impl Future<Output = Result<http::Response<WasiBody>, Error>> + Send + 'static {
        let this = self.clone();
        async move {
            let origin = Origin::of(request.uri()).ok_or(Error::HttpRequestUriInvalid)?;
            if let Some(allow) = &this.allow {
                if !allow.contains(&origin) {
                    (this.log)(&format!(
                        "egress: denied a request to {origin}: not the endpoint of an enabled workspace"
                    ));
                    return Err(Error::HttpRequestDenied);
                }
            }
            if let Some(target) = this.connect_to.reroute(request.uri()) {
                *request.uri_mut() = target;
            }
            let client = this.clients.get(&origin).unwrap_or(&this.fallback).clone();
            let cap = |asked: Option<Duration>| {
                asked.map_or(this.response_timeout, |a| a.min(this.response_timeout))
            };
            let first_byte = cap(options.and_then(|o| o.first_byte_timeout));
            let between_bytes = cap(options.and_then(|o| o.between_bytes_timeout));
            let now = tokio::time::Instant::now();
            let deadline = Deadline {
                at: now + this.response_deadline,
                after: this.response_deadline,
                origin: origin.clone(),
                log: this.log.clone(),
            };
            let first_byte_first = first_byte < this.response_deadline;
            let head_by = if first_byte_first {
                now + first_byte
            } else {
                deadline.at
            };
            let response = match tokio::time::timeout_at(head_by, client.request(request)).await {
                Err(_) if first_byte_first => return Err(Error::ConnectionReadTimeout),
                Err(_) => return Err(deadline.passed("head")),
                Ok(Err(e)) => return Err(this.failure(&origin, &e)),
                Ok(Ok(response)) => response,
            };
            Ok(response.map(|body| TimedBody::new(body, between_bytes, deadline).boxed_unsync()))
        }
    }

    /// Maps a client failure onto wasi:http's error codes, logging what the
    /// host refused.
    fn failure(&self, origin: &Origin, error: &(dyn StdError + 'static)) -> Error {
        let mut source: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(c) = e.downcast_ref::<ConnectError>() {
                return match c {
                    ConnectError::Denied { .. } => {
                        (self.log)(&format!("egress: refused {origin}: {c}"));
                        Error::DestinationIpProhibited
                    }
                    ConnectError::Dns(_) => Error::DnsError {
                        rcode: None,
                        info_code: None,
                    },
                    ConnectError::Refused => Error::ConnectionRefused,
                    ConnectError::Timeout => Error::ConnectionTimeout,
                    ConnectError::Io(_) | ConnectError::Proxy(_) => {
                        (self.log)(&format!("connecting to {origin}: {c}"));
                        Error::DestinationUnavailable
                    }
                    ConnectError::Tls(io) => tls_error(io).unwrap_or(Error::TlsProtocolError),
                    ConnectError::BadName(_) => Error::TlsProtocolError,
                };
            }
            if let Some(code) = broken_connection(e) {
                return code;
            }
            source = e.source();
        }
        Error::HttpProtocolError
    }
}

/// The wasi:http code when `error` says how the connection broke: a TLS
/// failure, a reset, or an answer cut off. Used for the request and for
/// the body read after it.
fn broken_connection(error: &(dyn StdError + 'static)) -> Option<Error> {
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        if let Some(tls) = tls_error(io) {
            return Some(tls);
        }
        return match io.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                Some(Error::ConnectionTerminated)
            }
            std::io::ErrorKind::UnexpectedEof => Some(Error::HttpResponseIncomplete),
            _ => None,
        };
    }
    let hyper = error.downcast_ref::<hyper::Error>()?;
    (hyper.is_incomplete_message() || hyper.is_closed()).then_some(Error::HttpResponseIncomplete)
}

/// When a whole answer must have arrived, and whom to tell when it has not.
struct Deadline {
    at: tokio::time::Instant,
    /// How long it was, for the log.
    after: Duration,
    origin: Origin,
    log: Logger,
}

impl Deadline {
    /// The error for an answer whose `part` (head or body) was still coming
    /// at the deadline, logged with the deadline's length: the guest's code
    /// has no room for it.
    fn passed(&self, part: &str) -> Error {
        (self.log)(&format!(
            "the answer from {} did not complete within the {:?} response deadline (its {part} was still arriving)",
            self.origin, self.after
        ));
        Error::HttpResponseTimeout
    }
}

/// A response body under the host's timeouts: a read timeout when no data
/// comes for `between_bytes` (a server that starts answering and then
/// stalls), a response timeout when it has not all come by the deadline (a
/// server that trickles, resetting every between-bytes timer).
struct TimedBody {
    inner: hyper::body::Incoming,
    between_bytes: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    deadline: Deadline,
    whole: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(inner: hyper::body::Incoming, between_bytes: Duration, deadline: Deadline) -> Self {
        TimedBody {
            inner,
            between_bytes,
            idle: Box::pin(tokio::time::sleep(between_bytes)),
            whole: Box::pin(tokio::time::sleep_until(deadline.at)),
            deadline,
        }
    }
}

impl Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Error>>> {
        let this = self.get_mut();
        if this.whole.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(this.deadline.passed("body"))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle
                    .as_mut()
                    .reset(tokio::time::Instant::now() + this.between_bytes);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(body_failure(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The wasi:http code for a body that failed part-way: how the connection
/// broke when that is known, else hyper's own account.
fn body_failure(error: hyper::Error) -> Error {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(code) = broken_connection(e) {
            return code;
        }
        source = e.source();
    }
    Error::from(error)
}

/// The wasi:http code for a rustls failure inside an I/O error.
fn tls_error(io: &std::io::Error) -> Option<Error> {
    let rustls_error = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match rustls_error {
        rustls::Error::InvalidCertificate(_) => Error::TlsCertificateError,
        rustls::Error::AlertReceived(alert) => Error::TlsAlertReceived {
            alert_id: Some(u8::from(*alert)),
            alert_message: Some(format!("{alert:?}")),
        },
        _ => Error::TlsProtocolError,
    })
}

fn client(settings: &NetSettings, tls: Arc<rustls::ClientConfig>) -> HttpClient {
    let connector = Connector {
        tls,
        deny: Arc::new(settings.deny.clone()),
        proxy: Arc::new(settings.proxy.clone()),
        connect_timeout: settings.connect_timeout,
        opened: settings.opened.clone(),
    };
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        // Slack's answers are a few kilobytes (a long message's echo more,
        // read in several reads): a connection waiting on one holds 2 KiB
        // for it rather than hyper's adaptive 8 KiB, which counts when a
        // thousand wait at once.
        .http1_read_buf_exact_size(READ_BUFFER)
        .pool_max_idle_per_host(if settings.reuse_connections {
            MAX_IDLE_PER_ORIGIN
        } else {
            0
        })
        .build(connector)
}

/// The WASI HTTP hooks of one instance: every request goes through its policy.
pub struct Hooks {
    /// What this instance may reach, and how.
    pub policy: Arc<NetPolicy>,
    /// When the last request this instance sent was handed whole to its
    /// connection (its body's last frame taken for writing).
    pub left: Departure,
}

/// When a request left: set as its body's frames are taken by the
/// connection, so after any wait for a connection (a new one's TCP and TLS
/// handshakes included), not when the guest asked. Pacing counts from it.
#[derive(Clone, Default)]
pub struct Departure(Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl Departure {
    /// When the last request left, if one did since [`Departure::clear`].
    pub fn at(&self) -> Option<std::time::Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the last departure (a new call starts).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn now(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }
}

/// A request body that notes when its frames are taken for writing.
struct Departing {
    inner: WasiBody,
    left: Departure,
}

impl Body for Departing {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_)) | None) = &polled {
            self.left.now();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        _ = fut;
        let left = self.left.clone();
        let request = request.map(|inner| Departing { inner, left }.boxed_unsync());
        let sending = self.policy.send(request, options);
        Box::new(async move {
            let response = sending.await?;
            // The pool drives the connection; nothing is left to await here.
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}
