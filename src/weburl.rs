//! The parts of an `http`/`https` URL the handler needs: scheme, host,
//! port, path and query. Written here rather than taken from the `url`
//! crate, which with its international-domain machinery is about 50 KB of
//! a component that must stay under 700 KiB (see docs/dependencies.md); a workspace URL is an absolute ASCII `http(s)` URL, so this is
//! enough. Errors never quote the URL: a webhook's path is its secret.

/// An absolute URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUrl {
    /// Lower-cased, e.g. `https`.
    pub scheme: String,
    /// Lower-cased host name, IPv4 address or `[IPv6]` address.
    pub host: String,
    /// The port when it is not the scheme's default.
    pub port: Option<u16>,
    /// `/` when the URL has none; never empty.
    pub path: String,
    pub query: Option<String>,
}

impl WebUrl {
    /// Splits `raw`. Any scheme is accepted here (the caller decides which
    /// it takes); user-info and the fragment are dropped.
    pub fn parse(raw: &str) -> Result<WebUrl, String> {
        let raw = raw.trim();
        let (scheme, rest) = raw
            .split_once(':')
            .filter(|(s, _)| {
                s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            })
            .ok_or("relative URL without a base")?;
        let scheme = scheme.to_ascii_lowercase();
        let Some(rest) = rest.strip_prefix("//") else {
            // `mailto:x`: no authority, so no host.
            return Ok(WebUrl {
                scheme,
                host: String::new(),
                port: None,
                path: rest.to_string(),
                query: None,
            });
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_port(host_port)?;
        if host.is_empty() {
            return Err("empty host".to_string());
        }
        if !host.is_ascii() {
            return Err(
                "international domain names are not supported: write the host in ASCII (punycode)"
                    .to_string(),
            );
        }
        if host
            .chars()
            .any(|c| c.is_ascii_whitespace() || "<>^|%\\\"{}`".contains(c))
        {
            return Err("invalid domain character".to_string());
        }
        let default = match scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        };
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(encode(q))),
            None => (tail, None),
        };
        Ok(WebUrl {
            host: host.to_ascii_lowercase(),
            port: port.filter(|p| Some(*p) != default),
            path: if path.is_empty() {
                "/".to_string()
            } else {
                encode(path)
            },
            query,
            scheme,
        })
    }

    /// `host` or `host:port` (the port only when not the default).
    pub fn authority(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }

    /// The path and the query, as a request line carries them.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// The whole URL, without user-info or fragment.
    pub fn to_url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme,
            self.authority(),
            self.path_and_query()
        )
    }
}

/// `host:port` split; IPv6 addresses keep their brackets.
fn split_port(host_port: &str) -> Result<(&str, Option<u16>), String> {
    let colon = if host_port.starts_with('[') {
        let close = host_port.find(']').ok_or("invalid IPv6 address")?;
        host_port[close..].find(':').map(|i| i + close)
    } else {
        host_port.rfind(':')
    };
    let Some(colon) = colon else {
        return Ok((host_port, None));
    };
    let (host, port) = (&host_port[..colon], &host_port[colon + 1..]);
    if port.is_empty() {
        return Ok((host, None));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| "invalid port number".to_string())?;
    Ok((host, Some(port)))
}

/// Percent-encodes what may not appear in a request line as it is:
/// controls, spaces, non-ASCII, and `"<>\^`{|}`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_web_api_url() {
        let u = WebUrl::parse("https://slack.com/api/chat.postMessage").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.authority(), u.path_and_query()),
            (
                "https",
                "slack.com".to_string(),
                "/api/chat.postMessage".to_string()
            )
        );
    }

    #[test]
    fn drops_user_info_fragment_and_default_port() {
        let u = WebUrl::parse("HTTPS://me:pw@Hooks.Slack.com:443/services/T/B/X?x=1#frag").unwrap();
        assert_eq!(u.to_url(), "https://hooks.slack.com/services/T/B/X?x=1");
        let u = WebUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.authority(), u.path.as_str()),
            ("127.0.0.1:8080".into(), "/")
        );
        let u = WebUrl::parse("http://[::1]:9/a b").unwrap();
        assert_eq!(u.to_url(), "http://[::1]:9/a%20b");
    }

    #[test]
    fn says_what_is_wrong_without_quoting_the_url() {
        for (raw, reason) in [
            ("not a url", "relative URL without a base"),
            ("/api/chat.postMessage", "relative URL without a base"),
            ("https://", "empty host"),
            ("https://x.test:99999/SECRET", "invalid port number"),
            ("https://bad host/SECRET", "invalid domain character"),
            (
                "https://bücher.example/SECRET",
                "international domain names",
            ),
        ] {
            let e = WebUrl::parse(raw).unwrap_err();
            assert!(e.contains(reason), "{raw}: {e}");
            assert!(!e.contains("SECRET"));
        }
        assert_eq!(
            WebUrl::parse("mailto:ops@example.com").unwrap().scheme,
            "mailto"
        );
    }
}
