//! Opens connections for the host's HTTP client: resolve, check the
//! deny-list on every resolved address, dial (directly or through a
//! `CONNECT` proxy), then TLS with the endpoint's own configuration.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::cidr::DenyList;
use super::proxy::ProxyConfig;

/// Why no connection could be made.
#[derive(Debug)]
pub enum ConnectError {
    /// The name did not resolve.
    Dns(String),
    /// A resolved address is in the deny-list.
    Denied {
        /// The address a name resolved to.
        ip: IpAddr,
        /// The denied range it is in.
        range: String,
    },
    /// Nothing listens there.
    Refused,
    /// Connecting took longer than allowed.
    Timeout,
    /// Any other failure.
    Io(io::Error),
    /// The TLS handshake failed.
    Tls(io::Error),
    /// The proxy refused or broke the tunnel.
    Proxy(String),
    /// A `https` destination whose host is not a valid TLS server name.
    BadName(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Dns(e) => write!(f, "name not resolved: {e}"),
            ConnectError::Denied { ip, range } => write!(f, "address {ip} is denied (in {range})"),
            ConnectError::Refused => write!(f, "connection refused"),
            ConnectError::Timeout => write!(f, "connection timed out"),
            ConnectError::Io(e) => write!(f, "connection failed: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            ConnectError::Proxy(e) => write!(f, "proxy: {e}"),
            ConnectError::BadName(h) => write!(f, "`{h}` is not a valid TLS server name"),
        }
    }
}

impl std::error::Error for ConnectError {}

impl ConnectError {
    fn from_io(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut => ConnectError::Timeout,
            _ => ConnectError::Io(e),
        }
    }
}

/// Any byte stream a connection can be.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connection, plain or TLS, as hyper wants it.
pub struct Stream(TokioIo<Box<dyn Io>>);

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Connects to one endpoint's destinations; cloned per connection attempt.
#[derive(Clone)]
pub struct Connector {
    /// TLS for `https` destinations.
    pub tls: Arc<ClientConfig>,
    /// Addresses no connection may reach.
    pub deny: Arc<DenyList>,
    /// Proxies to connect through.
    pub proxy: Arc<ProxyConfig>,
    /// The longest a connection may take to open.
    pub connect_timeout: Duration,
    /// Counts connections opened (for tests and benchmarks).
    pub opened: Arc<AtomicU64>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(uri).await })
    }
}

impl Connector {
    async fn connect(self, uri: Uri) -> Result<Stream, ConnectError> {
        Ok(Stream(TokioIo::new(self.open(&uri).await?)))
    }

    /// Opens a connection to `uri`'s host and port (`https`: TLS with this
    /// connector's configuration, else plain), through the proxy for its
    /// scheme when there is one, refused when an address is denied. The
    /// byte stream itself, for the pool and for [`Dialer`](super::dial::Dialer).
    pub(crate) async fn open(&self, uri: &Uri) -> Result<Box<dyn Io>, ConnectError> {
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let scheme = if https { "https" } else { "http" };
        let tcp = match self.proxy.for_destination(scheme, bare) {
            Some(proxy) => {
                let mut tcp = self.dial(&proxy.host, proxy.port).await?;
                tunnel(&mut tcp, host, port).await?;
                tcp
            }
            None => self.dial(bare, port).await?,
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
        if !https {
            return Ok(Box::new(tcp));
        }
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| ConnectError::BadName(bare.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(ConnectError::Tls)?;
        Ok(Box::new(tls))
    }

    /// Resolves `host`, refuses if any address is denied (so DNS cannot
    /// steer around the list), and connects to the first that answers.
    async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
        let addrs: Vec<SocketAddr> =
            timeout(self.connect_timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| ConnectError::Timeout)?
                .map_err(|e| ConnectError::Dns(e.to_string()))?
                .collect();
        if addrs.is_empty() {
            return Err(ConnectError::Dns(format!("{host} has no addresses")));
        }
        for addr in &addrs {
            if let Some(range) = self.deny.denies(addr.ip()) {
                return Err(ConnectError::Denied {
                    ip: addr.ip(),
                    range: range.to_string(),
                });
            }
        }
        let mut last = ConnectError::Refused;
        for addr in addrs {
            match timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Ok(Err(e)) => last = ConnectError::from_io(e),
                Err(_) => last = ConnectError::Timeout,
            }
        }
        Err(last)
    }
}

/// Opens a `CONNECT` tunnel to `host:port` through the proxy on `tcp`.
async fn tunnel(tcp: &mut TcpStream, host: &str, port: u16) -> Result<(), ConnectError> {
    let target = format!("{host}:{port}");
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(ConnectError::from_io)?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > 8192 {
            return Err(ConnectError::Proxy(
                "its answer to CONNECT is too long".to_string(),
            ));
        }
        if tcp.read(&mut byte).await.map_err(ConnectError::from_io)? == 0 {
            return Err(ConnectError::Proxy(
                "it closed the connection during CONNECT".to_string(),
            ));
        }
        answer.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default().to_string();
    match status_line.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        _ => Err(ConnectError::Proxy(format!(
            "it refused the tunnel to {target}: {status_line}"
        ))),
    }
}
