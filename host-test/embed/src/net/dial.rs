//! Connections the host opens for itself, by the same door as the
//! component's requests: a byte stream to an origin under the host's
//! [`NetSettings`] — the connect-to map, the deny-list on every resolved
//! address, the proxy for its scheme (`CONNECT`), TLS with the settings
//! given — for a protocol the HTTP client does not carry (Socket Mode's
//! WebSocket, which runs over the stream this opens).
//!
//! ```no_run
//! # async fn open() -> Result<(), Box<dyn std::error::Error>> {
//! use alert_handler_host::net::{dial::Dialer, tls, NetSettings, Origin};
//!
//! let tls = tls::client_config(&tls::TlsSettings::default(), "")?;
//! let dialer = Dialer::new(&NetSettings::default(), tls);
//! let url: http::Uri = "wss://wss-primary.slack.com/link/".parse()?;
//! let origin = Origin::of_websocket(&url).ok_or("not a WebSocket URL")?;
//! let stream = dialer.open(&origin).await?; // then a WebSocket client over it
//! # drop(stream);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use http::Uri;
use rustls::ClientConfig;

use super::connector::{ConnectError, Connector, Io};
use super::{ConnectTo, NetSettings, Origin};

/// Opens streams to origins under one host's networking and one TLS
/// configuration (a workspace's, from [`tls::client_config`](super::tls::client_config)).
#[derive(Clone)]
pub struct Dialer {
    connect_to: Arc<ConnectTo>,
    connector: Connector,
}

impl Dialer {
    /// A dialer with `settings`' connect-to map, deny-list, proxies and
    /// connect timeout, and `tls` for destinations that are `https` once
    /// rerouted.
    pub fn new(settings: &NetSettings, tls: Arc<ClientConfig>) -> Dialer {
        Dialer {
            connect_to: Arc::new(settings.connect_to.clone()),
            connector: Connector {
                tls,
                deny: Arc::new(settings.deny.clone()),
                proxy: Arc::new(settings.proxy.clone()),
                connect_timeout: settings.connect_timeout,
                opened: settings.opened.clone(),
            },
        }
    }

    /// Where a connection to `origin` really goes: the connect-to map's
    /// target, else `origin` itself.
    pub fn destination(&self, origin: &Origin) -> Origin {
        origin
            .uri()
            .and_then(|uri| self.connect_to.reroute(&uri))
            .and_then(|uri| Origin::of(&uri))
            .unwrap_or_else(|| origin.clone())
    }

    /// Opens a connection to `origin` as a request to it would go: to the
    /// connect-to map's target when it names one; every address the name
    /// resolves to checked against the deny-list
    /// ([`ConnectError::Denied`] names the address and the range); through
    /// the proxy for the destination's scheme, with `CONNECT`, unless
    /// `NO_PROXY` or loopback; TLS when the destination is `https` (the
    /// server's name checked against the destination's host). The
    /// protocol over it (the `Host` a request names) is the caller's.
    pub async fn open(&self, origin: &Origin) -> Result<Box<dyn Io>, ConnectError> {
        let to = self.destination(origin);
        let uri = to
            .uri()
            .ok_or_else(|| ConnectError::BadName(to.authority.clone()))?;
        self.connector.open(&uri).await
    }
}

impl Origin {
    /// The origin of a WebSocket URL, as the host's networking sees it:
    /// `wss://` is the `https` origin of its host and port, `ws://` the
    /// `http` one (for the connect-to map, proxies and TLS alike). `None`
    /// for another scheme or without a host.
    pub fn of_websocket(url: &Uri) -> Option<Origin> {
        let scheme = match url.scheme_str()? {
            "wss" => "https",
            "ws" => "http",
            _ => return None,
        };
        Origin::parse(scheme, url.authority()?.as_str())
    }

    /// `scheme://host:port/`.
    fn uri(&self) -> Option<Uri> {
        format!("{self}/").parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_websocket_url_has_its_http_origin() {
        let origin = |url: &str| Origin::of_websocket(&url.parse().unwrap()).map(|o| o.to_string());
        assert_eq!(
            origin("wss://wss-primary.slack.com/link/?ticket=x").as_deref(),
            Some("https://wss-primary.slack.com:443")
        );
        assert_eq!(
            origin("ws://127.0.0.1:8080/link/").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("https://slack.com/"), None);
    }

    #[test]
    fn the_connect_to_map_picks_the_destination() {
        let mut connect_to = ConnectTo::default();
        connect_to
            .add("https://wss-primary.slack.com", "http://127.0.0.1:9")
            .unwrap();
        let dialer = Dialer::new(
            &NetSettings::with_connect_to(connect_to),
            super::super::tls::client_config(&Default::default(), "").unwrap(),
        );
        let wss =
            Origin::of_websocket(&"wss://wss-primary.slack.com/link/".parse().unwrap()).unwrap();
        assert_eq!(dialer.destination(&wss).to_string(), "http://127.0.0.1:9");
        let other =
            Origin::of_websocket(&"wss://wss-backup.slack.com/link/".parse().unwrap()).unwrap();
        assert_eq!(dialer.destination(&other), other);
    }
}
