//! The parts of an `http`/`https` URL a request needs: scheme, user-info,
//! authority, path, query. A configured URL is ASCII and absolute, so a
//! few splits do; errors never quote the URL, whose path or query may
//! carry a secret.

/// An absolute `http` or `https` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`, lower-cased.
    pub scheme: String,
    /// `user:password` before the `@`, when given. Never sent: a host's
    /// request has no place for it (use an `Authorization` header).
    pub userinfo: Option<String>,
    /// `host` or `host:port`, as written.
    pub authority: String,
    /// `/` when the URL has none.
    pub path: String,
    pub query: Option<String>,
}

impl Url {
    /// Splits `raw`; the fragment is dropped. The error says what is wrong
    /// without quoting the URL.
    pub fn parse(raw: &str) -> Result<Url, &'static str> {
        let raw = raw.trim();
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "must not hold spaces, control or non-ASCII characters (percent-encode them)",
            );
        }
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or("must be an absolute http:// or https:// URL")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err("must be an http:// or https:// URL");
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, authority) = match authority.rsplit_once('@') {
            Some((info, host)) => (Some(info.to_string()), host),
            None => (None, authority),
        };
        // The port follows the last `:` that is not inside `[IPv6]`.
        let host_end = authority.rfind(']').unwrap_or(0);
        let (host, port) = match authority[host_end..].rfind(':') {
            Some(i) => authority.split_at(host_end + i),
            None => (authority, ""),
        };
        if host.is_empty() {
            return Err("has no host");
        }
        if let Some(port) = port.strip_prefix(':').filter(|p| !p.is_empty()) {
            port.parse::<u16>().map_err(|_| "has an invalid port")?;
        }
        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, Some(query).filter(|q| !q.is_empty())),
            None => (tail, None),
        };
        Ok(Url {
            scheme,
            userinfo,
            authority: authority.to_string(),
            path: if path.is_empty() { "/" } else { path }.to_string(),
            query: query.map(str::to_string),
        })
    }

    /// The path and the query, as a request line carries them.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }

    /// The URL with its user-info and query replaced by `[redacted]`.
    pub fn redacted(&self) -> String {
        let userinfo = if self.userinfo.is_some() {
            "[redacted]@"
        } else {
            ""
        };
        let query = if self.query.is_some() {
            "?[redacted]"
        } else {
            ""
        };
        format!(
            "{}://{userinfo}{}{}{query}",
            self.scheme, self.authority, self.path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_url() {
        let u = Url::parse("HTTPS://me:pw@Hooks.Example.com:8443/a/b?token=x#top").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.userinfo.as_deref(), Some("me:pw"));
        assert_eq!(u.authority, "Hooks.Example.com:8443");
        assert_eq!(u.path_and_query(), "/a/b?token=x");
        let u = Url::parse("http://[::1]:9").unwrap();
        assert_eq!((u.authority.as_str(), u.path.as_str()), ("[::1]:9", "/"));
    }

    #[test]
    fn redacts_user_info_and_query_but_not_the_path() {
        let u = Url::parse("https://me:pw@example.com/hook?token=SECRET").unwrap();
        assert_eq!(
            u.redacted(),
            "https://[redacted]@example.com/hook?[redacted]"
        );
        let u = Url::parse("http://example.com:8080/hook").unwrap();
        assert_eq!(u.redacted(), "http://example.com:8080/hook");
    }

    #[test]
    fn says_what_is_wrong_without_quoting_the_url() {
        for (raw, reason) in [
            ("example.com/SECRET", "absolute"),
            ("ftp://example.com/SECRET", "http:// or https://"),
            ("https:///SECRET", "no host"),
            ("https://x.test:99999/SECRET", "invalid port"),
            ("https://x.test/SE CRET", "spaces"),
            ("https://bücher.test/SECRET", "non-ASCII"),
        ] {
            let e = Url::parse(raw).unwrap_err();
            assert!(e.contains(reason), "{raw}: {e}");
            assert!(!e.contains("SECRET"));
        }
    }
}
