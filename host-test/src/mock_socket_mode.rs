//! A local stand-in for Slack's Socket Mode on 127.0.0.1: a WebSocket
//! server that greets each connection with `hello`, sends the envelopes a
//! test pushes, records the acknowledgements it gets back, and can ask for
//! a reconnect (`disconnect`) or drop a connection without a closing
//! handshake. It counts the connections, the most open at once, and when
//! each was opened. It speaks `ws://`, or `wss://` with a server
//! configuration the test provides. It listens on 127.0.0.1 (or another
//! loopback address), and can be advertised under another origin (a name
//! a proxy or the host's connect-to map leads to it). [`MockSlack::serve_socket_mode`](crate::mock_slack::MockSlack::serve_socket_mode)
//! makes the Slack stand-in's `apps.connections.open` point here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use crate::stand_in::Running;

/// What the stand-in tells one connection to do.
#[derive(Debug, Clone)]
enum Command {
    Text(String),
    Ping,
    /// Close the TCP connection, no closing handshake.
    Drop,
    /// Hold the connection open but read and write nothing more: a peer
    /// gone silent (a half-open connection behind a NAT that forgot it).
    Freeze,
}

#[derive(Default)]
struct Shared {
    /// Connections accepted (TCP), ever.
    connections: usize,
    /// Connections open now: from the TCP accept until the client's close
    /// frame, or the end of the socket.
    open: usize,
    max_open: usize,
    connected_at: Vec<Instant>,
    /// Each WebSocket handshake's path and query, in order.
    paths: Vec<String>,
    /// Each WebSocket handshake's `Host` header, in order.
    hosts: Vec<String>,
    /// Every text frame the clients sent.
    frames: Vec<String>,
    /// The `envelope_id` of every acknowledgement.
    acks: Vec<String>,
    pongs: usize,
    /// Open connections that took their hello, oldest first.
    links: Vec<(usize, mpsc::UnboundedSender<Command>)>,
    /// Envelopes pushed while no connection was open: the next one gets them.
    queued: Vec<Command>,
    tickets: usize,
}

/// The running stand-in; stops when dropped.
pub struct SocketModeStandIn {
    addr: SocketAddr,
    tls: bool,
    /// The origin [`Self::origin`] gives instead of the address.
    advertised: Option<String>,
    shared: Arc<Mutex<Shared>>,
    /// The server's thread: dropping it stops the server.
    _running: Running,
}

impl SocketModeStandIn {
    /// Starts on a free port of 127.0.0.1 (`ws://`).
    pub fn start() -> Result<SocketModeStandIn> {
        SocketModeStandIn::start_with(Ipv4Addr::LOCALHOST.into(), None)
    }

    /// Starts a `ws://` stand-in on a free port of `ip`, a loopback
    /// address (127.0.0.2: an address a deny-list can tell from Slack's
    /// stand-in on 127.0.0.1).
    pub fn start_on(ip: IpAddr) -> Result<SocketModeStandIn> {
        SocketModeStandIn::start_with(ip, None)
    }

    /// Starts a `wss://` stand-in on a free port, with `tls` as its server
    /// configuration.
    pub fn start_tls(tls: Arc<rustls::ServerConfig>) -> Result<SocketModeStandIn> {
        SocketModeStandIn::start_with(
            Ipv4Addr::LOCALHOST.into(),
            Some(tokio_rustls::TlsAcceptor::from(tls)),
        )
    }

    /// The same stand-in, advertised as `origin` (`wss://wss-primary.slack.com`):
    /// what [`Self::origin`] and [`Self::url`] give, as Slack's
    /// `apps.connections.open` would, for a test whose proxy or connect-to
    /// map leads there.
    pub fn advertised_as(mut self, origin: &str) -> SocketModeStandIn {
        self.advertised = Some(origin.to_string());
        self
    }

    fn start_with(ip: IpAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> Result<SocketModeStandIn> {
        let tls_on = tls.is_some();
        let listener = std::net::TcpListener::bind((ip, 0))
            .with_context(|| format!("binding the Socket Mode stand-in to {ip}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        let running = Running::start("mock-socket-mode", move |stopped| {
            serve(listener, tls, state, stopped)
        })?;
        Ok(SocketModeStandIn {
            addr,
            tls: tls_on,
            advertised: None,
            shared,
            _running: running,
        })
    }

    /// `wss` for a TLS stand-in, else `ws`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "wss"
        } else {
            "ws"
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The origin `apps.connections.open` names: `ws://127.0.0.1:PORT`
    /// (`wss://` for a TLS stand-in), or the one it is advertised as.
    pub fn origin(&self) -> String {
        self.advertised
            .clone()
            .unwrap_or_else(|| format!("{}://{}", self.scheme(), self.addr))
    }

    /// A URL to connect to, as `apps.connections.open` gives one:
    /// `ORIGIN/link/?ticket=…`, a new ticket each call.
    pub fn url(&self) -> String {
        let mut shared = self.shared.lock().unwrap();
        shared.tickets += 1;
        format!(
            "{}/link/?ticket=stand-in-ticket-{:04}&app_id=A0STANDIN",
            self.origin(),
            shared.tickets
        )
    }

    /// Sends `{"envelope_id", "type":"interactive", "payload"}` on the
    /// newest open connection, or on the next one to open.
    pub fn push_envelope(&self, envelope_id: &str, payload: Value) {
        self.push(Command::Text(envelope(envelope_id, payload).to_string()));
    }

    /// Sends `text` as it is on the newest open connection, or on the next
    /// one to open.
    pub fn push_text(&self, text: &str) {
        self.push(Command::Text(text.to_string()));
    }

    fn push(&self, command: Command) {
        let mut shared = self.shared.lock().unwrap();
        let sent = shared
            .links
            .last()
            .is_some_and(|(_, link)| link.send(command.clone()).is_ok());
        if !sent {
            shared.queued.push(command);
        }
    }

    /// Asks every open connection to reconnect:
    /// `{"type":"disconnect","reason":reason}` (Slack: `refresh_requested`,
    /// `warning`, `link_disabled`).
    pub fn disconnect(&self, reason: &str) {
        let text = json!({"type": "disconnect", "reason": reason,
                          "debug_info": {"host": "applink-stand-in"}})
        .to_string();
        self.to_all(Command::Text(text));
    }

    /// Closes every open connection's TCP socket without a closing
    /// handshake, as a network failure would.
    pub fn drop_connections(&self) {
        self.to_all(Command::Drop);
    }

    /// Makes every open connection go silent: kept open, nothing read or
    /// written (not even pongs) until [`Self::drop_connections`].
    pub fn freeze(&self) {
        self.to_all(Command::Freeze);
    }

    /// Pings every open connection (their pongs are counted by [`Self::pongs`]).
    pub fn ping(&self) {
        self.to_all(Command::Ping);
    }

    fn to_all(&self, command: Command) {
        for (_, link) in &self.shared.lock().unwrap().links {
            let _ = link.send(command.clone());
        }
    }

    /// Connections accepted, ever.
    pub fn connections(&self) -> usize {
        self.shared.lock().unwrap().connections
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.shared.lock().unwrap().open
    }

    /// Connections open now that got their hello (envelopes can go there).
    pub fn ready(&self) -> usize {
        self.shared.lock().unwrap().links.len()
    }

    /// The most connections that were ever open at once.
    pub fn max_open(&self) -> usize {
        self.shared.lock().unwrap().max_open
    }

    /// When each connection was accepted, in order.
    pub fn connected_at(&self) -> Vec<Instant> {
        self.shared.lock().unwrap().connected_at.clone()
    }

    /// The path and query each WebSocket handshake asked for, in order.
    pub fn paths(&self) -> Vec<String> {
        self.shared.lock().unwrap().paths.clone()
    }

    /// The `Host` header each WebSocket handshake carried, in order.
    pub fn hosts(&self) -> Vec<String> {
        self.shared.lock().unwrap().hosts.clone()
    }

    /// The `envelope_id`s acknowledged, in the order the acks came.
    pub fn acks(&self) -> Vec<String> {
        self.shared.lock().unwrap().acks.clone()
    }

    /// Every text frame the clients sent, in order.
    pub fn frames(&self) -> Vec<String> {
        self.shared.lock().unwrap().frames.clone()
    }

    /// Pongs received.
    pub fn pongs(&self) -> usize {
        self.shared.lock().unwrap().pongs
    }
}

/// A Socket Mode envelope of an interaction, as Slack sends it.
pub fn envelope(envelope_id: &str, payload: Value) -> Value {
    json!({
        "envelope_id": envelope_id,
        "type": "interactive",
        "payload": payload,
        "accepts_response_payload": false,
    })
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
                let id = {
                    let mut shared = shared.lock().unwrap();
                    shared.connections += 1;
                    shared.open += 1;
                    shared.max_open = shared.max_open.max(shared.open);
                    shared.connected_at.push(Instant::now());
                    shared.connections
                };
                let shared = shared.clone();
                match tls.clone() {
                    None => drop(tokio::spawn(link(stream, id, shared))),
                    Some(acceptor) => drop(tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(stream) => link(stream, id, shared).await,
                            // Counted as closed: the handshake failed.
                            Err(_) => Open { shared, id, counted: true }.end(),
                        }
                    })),
                }
            }
        }
    }
}

/// Serves one connection until it ends.
// The handshake callback's error type is tungstenite's (an HTTP response).
#[allow(clippy::result_large_err)]
async fn link<S>(stream: S, id: usize, shared: Arc<Mutex<Shared>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut open = Open {
        shared: shared.clone(),
        id,
        counted: true,
    };
    let path = Arc::new(Mutex::new((String::new(), String::new())));
    let seen = path.clone();
    let handshake =
        tokio_tungstenite::accept_hdr_async(stream, move |req: &Request, res: Response| {
            let host = req.headers().get("host").and_then(|h| h.to_str().ok());
            *seen.lock().unwrap() = (
                req.uri()
                    .path_and_query()
                    .map_or("/".to_string(), |p| p.to_string()),
                host.unwrap_or_default().to_string(),
            );
            Ok(res)
        })
        .await;
    let Ok(mut ws) = handshake else { return };
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let mut shared = shared.lock().unwrap();
        let (path, host) = path.lock().unwrap().clone();
        shared.paths.push(path);
        shared.hosts.push(host);
        let hello = json!({"type": "hello", "num_connections": shared.open,
                           "debug_info": {"host": "applink-stand-in", "build_number": 1,
                                          "approximate_connection_time": 18060},
                           "connection_info": {"app_id": "A0STANDIN"}});
        let _ = tx.send(Command::Text(hello.to_string()));
        for command in std::mem::take(&mut shared.queued) {
            let _ = tx.send(command);
        }
        shared.links.push((id, tx));
    }
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Text(text)) => {
                    if ws.send(Message::text(text)).await.is_err() { break }
                }
                Some(Command::Ping) => {
                    if ws.send(Message::Ping(Default::default())).await.is_err() { break }
                }
                Some(Command::Freeze) => {
                    // The socket is held, unread, until told to drop it.
                    while let Some(command) = rx.recv().await {
                        if matches!(command, Command::Drop) {
                            break;
                        }
                    }
                    break;
                }
                Some(Command::Drop) | None => break,
            },
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let mut shared = shared.lock().unwrap();
                    let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    if let Some(id) = value["envelope_id"].as_str() {
                        shared.acks.push(id.to_string());
                    }
                    shared.frames.push(text.as_str().to_string());
                }
                Some(Ok(Message::Pong(_))) => shared.lock().unwrap().pongs += 1,
                // The client is closing: counted as closed now, before
                // tungstenite's answer reaches it (with the next read),
                // so its next connection is never seen overlapping this one.
                Some(Ok(Message::Close(_))) => open.end(),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    open.end();
    // Dropping the socket closes TCP: with no close frame after a `Drop`.
}

/// One connection counted as open until it ends (once).
struct Open {
    shared: Arc<Mutex<Shared>>,
    id: usize,
    counted: bool,
}

impl Open {
    fn end(&mut self) {
        if std::mem::take(&mut self.counted) {
            let mut shared = self.shared.lock().unwrap();
            shared.open -= 1;
            shared.links.retain(|(id, _)| *id != self.id);
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.end();
    }
}
