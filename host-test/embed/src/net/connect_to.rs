//! The host's "connect-to" map (like curl's `--connect-to`): requests for
//! one origin are sent to another. It is how the demo sends
//! `https://slack.com` to the local stand-in; any host can use it to point a
//! workspace at a relay or a test double without touching the configuration.

use anyhow::{bail, Context, Result};
use http::uri::{Authority, Scheme, Uri};

/// One rerouting: requests for `from` (scheme and authority) are sent to
/// `to` instead. The path, query, headers (including `Host`) and body are
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    from_scheme: String,
    from_authority: String,
    to_scheme: Scheme,
    to_authority: Authority,
}

/// A set of reroutings; empty means every request goes where it says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectTo {
    routes: Vec<Route>,
}

impl ConnectTo {
    /// Adds a route from `https://slack.com` (or `https://slack.com:443`) to
    /// e.g. `http://127.0.0.1:8080`.
    pub fn add(&mut self, from: &str, to: &str) -> Result<()> {
        let (from_scheme, from_authority) =
            origin(from).with_context(|| format!("connect-to source `{from}`"))?;
        let (to_scheme, to_authority) =
            origin(to).with_context(|| format!("connect-to target `{to}`"))?;
        self.routes.push(Route {
            from_scheme,
            from_authority,
            to_scheme: to_scheme.parse()?,
            to_authority: to_authority.parse()?,
        });
        Ok(())
    }

    /// Parses `FROM=TO`, the CLI's `--connect-to` form.
    pub fn add_pair(&mut self, pair: &str) -> Result<()> {
        match pair.split_once('=') {
            Some((from, to)) => self.add(from, to),
            None => {
                bail!("--connect-to takes FROM=TO, e.g. https://slack.com=http://127.0.0.1:8080")
            }
        }
    }

    /// Where a request for `uri` should really go, if rerouted.
    pub fn reroute(&self, uri: &Uri) -> Option<Uri> {
        let scheme = uri.scheme_str()?;
        let authority = with_port(scheme, uri.authority()?);
        let route = self
            .routes
            .iter()
            .find(|r| r.from_scheme == scheme && r.from_authority == authority)?;
        let mut parts = uri.clone().into_parts();
        parts.scheme = Some(route.to_scheme.clone());
        parts.authority = Some(route.to_authority.clone());
        Uri::from_parts(parts).ok()
    }

    /// Whether no origin is mapped.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// `scheme://host[:port]` → (`scheme`, `host:port`), the port made
/// explicit. A WebSocket's `wss://` (`ws://`) is its `https` (`http`)
/// origin, as the host's networking takes it (`Origin::of_websocket`).
fn origin(text: &str) -> Result<(String, String)> {
    let uri: Uri = text.parse()?;
    let scheme = match uri.scheme_str().context("needs a scheme (http or https)")? {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        _ => bail!("the scheme must be http or https (or ws, wss)"),
    };
    let authority = uri.authority().context("needs a host")?;
    Ok((scheme.to_string(), with_port(scheme, authority)))
}

pub(crate) fn with_port(scheme: &str, authority: &Authority) -> String {
    let default = if scheme == "https" { 443 } else { 80 };
    format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(default)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reroutes_only_the_mapped_origin() {
        let mut c = ConnectTo::default();
        c.add("https://slack.com", "http://127.0.0.1:9999").unwrap();
        let u: Uri = "https://slack.com/api/chat.postMessage".parse().unwrap();
        assert_eq!(
            c.reroute(&u).unwrap().to_string(),
            "http://127.0.0.1:9999/api/chat.postMessage"
        );
        let u: Uri = "https://slack.com:443/api/x?y=1".parse().unwrap();
        assert_eq!(
            c.reroute(&u).unwrap().to_string(),
            "http://127.0.0.1:9999/api/x?y=1"
        );
        assert!(c
            .reroute(&"http://slack.com/api".parse().unwrap())
            .is_none());
        assert!(c
            .reroute(&"https://hooks.slack.com/x".parse().unwrap())
            .is_none());
    }

    #[test]
    fn bad_pairs_are_errors() {
        let mut c = ConnectTo::default();
        assert!(c.add_pair("https://slack.com").is_err());
        assert!(c.add_pair("ftp://x=http://127.0.0.1:1").is_err());
        assert!(c.add_pair("https://slack.com=http://127.0.0.1:1").is_ok());
    }

    #[test]
    fn a_websocket_origin_is_its_http_one() {
        let mut c = ConnectTo::default();
        c.add_pair("wss://wss-primary.slack.com=ws://127.0.0.1:9")
            .unwrap();
        let u: Uri = "https://wss-primary.slack.com/link/?ticket=1"
            .parse()
            .unwrap();
        assert_eq!(
            c.reroute(&u).unwrap().to_string(),
            "http://127.0.0.1:9/link/?ticket=1"
        );
    }
}
