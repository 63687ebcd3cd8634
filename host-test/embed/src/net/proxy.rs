//! Proxies from the environment, as Kapacitor's Go client takes them:
//! `HTTPS_PROXY` for https destinations, `HTTP_PROXY` for http, `NO_PROXY`
//! for exceptions (and, as Go does, never for localhost or loopback).
//! Requests go through the proxy with `CONNECT` (a tunnel), for both schemes.

use std::net::IpAddr;

use super::cidr::Cidr;

/// A proxy's host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddr {
    /// The proxy's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
}

/// The proxy settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    http: Option<ProxyAddr>,
    https: Option<ProxyAddr>,
    no_proxy: Vec<String>,
}

impl ProxyConfig {
    /// From the process environment (upper-case names first, as Go).
    pub fn from_env() -> Result<ProxyConfig, String> {
        ProxyConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any lookup of `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ProxyConfig, String> {
        let var = |name: &str| {
            get(name)
                .or_else(|| get(&name.to_ascii_lowercase()))
                .filter(|v| !v.is_empty())
        };
        let parse = |name: &str| {
            var(name)
                .map(|v| parse_proxy(&v).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        Ok(ProxyConfig {
            http: parse("HTTP_PROXY")?,
            https: parse("HTTPS_PROXY")?,
            no_proxy: var("NO_PROXY")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The proxy for a request to `host` over `scheme`, if any.
    pub fn for_destination(&self, scheme: &str, host: &str) -> Option<&ProxyAddr> {
        let proxy = if scheme == "https" {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if loopback || self.no_proxy.iter().any(|rule| excepted(rule, &host)) {
            return None;
        }
        Some(proxy)
    }
}

fn excepted(rule: &str, host: &str) -> bool {
    if rule == "*" {
        return true;
    }
    let rule = rule.split(':').next().unwrap_or(rule);
    if let (Ok(cidr), Ok(ip)) = (rule.parse::<Cidr>(), host.parse::<IpAddr>()) {
        return cidr.contains(ip);
    }
    let domain = rule.trim_start_matches('.');
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// `http://host:port` (the scheme and port may be left out).
fn parse_proxy(value: &str) -> Result<ProxyAddr, String> {
    let rest = value.strip_prefix("http://").unwrap_or(value);
    if rest.contains("://") {
        return Err("only http:// proxies are supported".to_string());
    }
    if rest.contains('@') {
        return Err("proxy credentials are not supported".to_string());
    }
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| format!("bad port in `{value}`"))?,
        ),
        _ => (authority.to_string(), 80),
    };
    if host.is_empty() {
        return Err(format!("no host in `{value}`"));
    }
    Ok(ProxyAddr {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> ProxyConfig {
        ProxyConfig::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    #[test]
    fn scheme_picks_the_proxy() {
        let c = config(&[
            ("HTTPS_PROXY", "http://proxy.test:3128"),
            ("http_proxy", "plain.test:8080"),
        ]);
        assert_eq!(
            c.for_destination("https", "slack.com"),
            Some(&ProxyAddr {
                host: "proxy.test".into(),
                port: 3128
            })
        );
        assert_eq!(
            c.for_destination("http", "slack.com"),
            Some(&ProxyAddr {
                host: "plain.test".into(),
                port: 8080
            })
        );
    }

    #[test]
    fn no_proxy_and_loopback_go_direct() {
        let c = config(&[
            ("HTTPS_PROXY", "http://proxy.test:3128"),
            ("NO_PROXY", ".internal, example.com,10.0.0.0/8"),
        ]);
        assert!(c.for_destination("https", "api.internal").is_none());
        assert!(c.for_destination("https", "example.com").is_none());
        assert!(c.for_destination("https", "www.example.com").is_none());
        assert!(c.for_destination("https", "10.1.1.1").is_none());
        assert!(c.for_destination("https", "127.0.0.1").is_none());
        assert!(c.for_destination("https", "localhost").is_none());
        assert!(c.for_destination("https", "notexample.com").is_some());
        assert!(config(&[("HTTPS_PROXY", "p:1"), ("NO_PROXY", "*")])
            .for_destination("https", "x")
            .is_none());
    }

    #[test]
    fn unsupported_proxies_are_errors() {
        assert!(
            ProxyConfig::from_lookup(|k| (k == "HTTPS_PROXY").then(|| "socks5://p:1".into()))
                .is_err()
        );
        assert!(
            ProxyConfig::from_lookup(|k| (k == "HTTPS_PROXY").then(|| "http://u:p@p:1".into()))
                .is_err()
        );
    }
}
