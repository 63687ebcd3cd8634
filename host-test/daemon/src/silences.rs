//! Alertmanager's silences, through its API v2 (issue 31's first part): a
//! silence created, found again by its comment, read, and expired, on the
//! Alertmanagers the operator named (an HA pair shares its silences by
//! gossip: the first that answers takes the request). Requests go out by
//! the host's networking ([`Dialer`]: connect-to, deny-list, proxy, TLS),
//! each within a short deadline, so a click can be answered within
//! Slack's 3 seconds whatever Alertmanager does. The bearer token, when
//! given, is never shown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alert_handler_host::net::dial::Dialer;
use alert_handler_host::net::Origin;
use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

/// How long one request to one Alertmanager may take, connection included.
pub const DEADLINE: Duration = Duration::from_millis(1_200);

/// How long one operation (a silence looked up and made, read, expired)
/// may take across every Alertmanager and request, so a click is
/// answered within Slack's 3 seconds whatever they do.
pub const BUDGET: Duration = Duration::from_millis(2_000);

/// The most of an answer read.
const MAX_ANSWER: usize = 4 << 20;

/// The Alertmanagers `serve` may silence alerts in.
#[derive(Clone)]
pub struct Alertmanagers {
    urls: Vec<Uri>,
    token: Option<String>,
    dialer: Dialer,
    deadline: Duration,
    /// The one that answered last: asked first next time, so one of an HA
    /// pair that hangs costs its deadline once, not at every request.
    answered: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Alertmanagers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertmanagers")
            .field("urls", &self.urls)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// One equality matcher of a silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// A silence to create (or, with `id`, to change).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSilence {
    /// The silence it changes (Alertmanager changes it in place when only
    /// its end differs, else expires it and makes a new one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub matchers: Vec<Matcher>,
    /// RFC 3339.
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    /// Says where it came from; also how a retry finds it again.
    pub comment: String,
}

/// A silence as Alertmanager shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub created_by: String,
    pub comment: String,
    pub starts_at: String,
    pub ends_at: String,
    pub status: Status,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// `active`, `pending` or `expired`.
    pub state: String,
}

impl Alertmanagers {
    /// The Alertmanagers at `urls` (each `http(s)://host:port`, with any
    /// path prefix Alertmanager is served under), with an optional bearer
    /// token, reached by `dialer`.
    pub fn new(
        urls: &[String],
        token: Option<String>,
        dialer: Dialer,
    ) -> Result<Alertmanagers, String> {
        let urls = urls
            .iter()
            .map(|u| {
                let uri: Uri = u
                    .trim_end_matches('/')
                    .parse()
                    .map_err(|e| format!("--alertmanager-url {u}: not a URL ({e})"))?;
                match uri.scheme_str() {
                    Some("http" | "https") if uri.host().is_some() => Ok(uri),
                    _ => Err(format!(
                        "--alertmanager-url {u}: not an http:// or https:// URL with a host"
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err("no --alertmanager-url given".into());
        }
        Ok(Alertmanagers {
            urls,
            token,
            dialer,
            deadline: DEADLINE,
            answered: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Whether `url` (an alert's `externalURL`) is one of these: only then
    /// is it used (an alert's sender must not choose where serve sends).
    pub fn knows(&self, url: &str) -> bool {
        let url = url.trim_end_matches('/');
        self.urls
            .iter()
            .any(|u| u.to_string().trim_end_matches('/') == url)
    }

    /// Makes `silence` and says its id, within [`BUDGET`]. Without an
    /// `id`, an active silence of the same matchers, creator and comment
    /// (a create that timed out after Alertmanager took it, then tried
    /// again) is found first and used (its end moved if it differs), so
    /// no second is made. With an `id`, that silence is changed (its
    /// start kept, so Alertmanager changes it in place), or made anew if
    /// it is gone or expired.
    pub async fn create(&self, silence: &NewSilence) -> Result<String, String> {
        within(BUDGET, async {
            let mut silence = silence.clone();
            let mut existing = match &silence.id {
                Some(id) => self.get(id).await?,
                None => None,
            };
            existing = existing.filter(|s| s.status.state != "expired");
            if existing.is_none() {
                existing = self.find(&silence).await?;
            }
            match existing {
                Some(found) => {
                    let same_end = match (
                        slack_alert_handler::alert_json::unix_seconds(&found.ends_at),
                        slack_alert_handler::alert_json::unix_seconds(&silence.ends_at),
                    ) {
                        (Some(a), Some(b)) => a.abs_diff(b) <= 60,
                        _ => false,
                    };
                    if same_end && silence.id.is_none() {
                        return Ok(found.id);
                    }
                    silence.id = Some(found.id);
                    silence.starts_at = found.starts_at;
                }
                None => silence.id = None,
            }
            self.post(&silence).await
        })
        .await
    }

    /// `POST /api/v2/silences`: the silence's id.
    async fn post(&self, silence: &NewSilence) -> Result<String, String> {
        let body = serde_json::to_string(silence).map_err(|e| e.to_string())?;
        let (status, answer) = self
            .first(Method::POST, "/api/v2/silences", Some(body))
            .await?;
        if status != 200 {
            return Err(refused("creating the silence", status, &answer));
        }
        /// Alertmanager's answer: `{"silenceID": "..."}`.
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "silenceID")]
            silence_id: String,
        }
        serde_json::from_slice::<Created>(&answer)
            .map(|c| c.silence_id)
            .map_err(|e| {
                format!("Alertmanager's answer to the new silence was not understood: {e}")
            })
    }

    /// The active or pending silence that `silence` would make again: the
    /// same comment, creator and matchers.
    pub async fn find(&self, silence: &NewSilence) -> Result<Option<Silence>, String> {
        let (status, answer) = self.first(Method::GET, "/api/v2/silences", None).await?;
        if status != 200 {
            return Err(refused("listing the silences", status, &answer));
        }
        let all: Vec<Silence> = serde_json::from_slice(&answer)
            .map_err(|e| format!("Alertmanager's list of silences was not understood: {e}"))?;
        let same_matchers = |theirs: &[Matcher]| {
            theirs.len() == silence.matchers.len()
                && theirs.iter().all(|m| silence.matchers.contains(m))
        };
        Ok(all.into_iter().find(|s| {
            s.status.state != "expired"
                && s.comment == silence.comment
                && s.created_by == silence.created_by
                && same_matchers(&s.matchers)
        }))
    }

    /// Silence `id` as Alertmanager has it now (`None`: it has none).
    pub async fn get(&self, id: &str) -> Result<Option<Silence>, String> {
        within(BUDGET, async {
            let path = format!("/api/v2/silence/{}", path_segment(id));
            let (status, answer) = self.first(Method::GET, &path, None).await?;
            match status {
                200 => serde_json::from_slice(&answer)
                    .map(Some)
                    .map_err(|e| format!("Alertmanager's silence was not understood: {e}")),
                404 => Ok(None),
                _ => Err(refused("reading the silence", status, &answer)),
            }
        })
        .await
    }

    /// Expires silence `id` (a silence already expired or unknown is
    /// done too).
    pub async fn expire(&self, id: &str) -> Result<(), String> {
        within(BUDGET, async {
            let path = format!("/api/v2/silence/{}", path_segment(id));
            let (status, answer) = self.first(Method::DELETE, &path, None).await?;
            match status {
                200 | 404 => Ok(()),
                // Alertmanager answers 500 "silence ... already expired".
                500 if String::from_utf8_lossy(&answer).contains("expired") => Ok(()),
                _ => Err(refused("expiring the silence", status, &answer)),
            }
        })
        .await
    }

    /// The first Alertmanager to answer `method path`: its status and body.
    async fn first(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut why = Vec::new();
        let start = self.answered.load(Ordering::Relaxed);
        let n = self.urls.len();
        for i in (0..n).map(|k| (start + k) % n) {
            let url = &self.urls[i];
            let asked = tokio::time::timeout(
                self.deadline,
                self.request(url, method.clone(), path, body.clone()),
            )
            .await;
            match asked {
                Ok(Ok(answer)) => {
                    self.answered.store(i, Ordering::Relaxed);
                    return Ok(answer);
                }
                Ok(Err(e)) => why.push(format!("{}: {e}", shown(url))),
                Err(_) => why.push(format!(
                    "{}: no answer within {} ms",
                    shown(url),
                    self.deadline.as_millis()
                )),
            }
        }
        Err(format!("no Alertmanager answered ({})", why.join("; ")))
    }

    async fn request(
        &self,
        url: &Uri,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Vec<u8>), String> {
        let origin = Origin::of(url).ok_or("the URL has no origin")?;
        let stream = self.dialer.open(&origin).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let prefix = url.path().trim_end_matches('/');
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{prefix}{path}"))
            .header(
                "host",
                url.authority().map(|a| a.as_str()).unwrap_or_default(),
            )
            .header("accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body))),
            None => request.body(Full::new(Bytes::new())),
        }
        .map_err(|e| e.to_string())?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        let limited = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER);
        let body = limited
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body.to_vec()))
    }
}

/// `work`, or an error saying it took longer than `budget`.
async fn within<T>(
    budget: Duration,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(budget, work)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the Alertmanagers took longer than {} ms",
                budget.as_millis()
            ))
        })
}

/// An Alertmanager's URL as logs may show it: no user-info, no query.
fn shown(url: &Uri) -> String {
    format!(
        "{}://{}{}",
        url.scheme_str().unwrap_or_default(),
        url.host().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    )
}

/// A silence id as one path segment (ids are UUIDs; anything else is
/// percent-encoded).
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Alertmanager refused `what`: its status and the start of its answer.
fn refused(what: &str, status: u16, answer: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(answer).chars().take(200).collect();
    format!("Alertmanager refused {what}: {status} {}", text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_operators_url_is_known_and_bad_ones_are_named() {
        let dialer = Dialer::new(
            &alert_handler_host::NetSettings::default(),
            alert_handler_host::net::tls::client_config(&Default::default(), "").unwrap(),
        );
        let ams = Alertmanagers::new(&["http://am1:9093/".into()], None, dialer.clone()).unwrap();
        assert!(ams.knows("http://am1:9093"));
        assert!(!ams.knows("http://evil:9093"));
        let e = Alertmanagers::new(&["ftp://x".into()], None, dialer).unwrap_err();
        assert!(e.contains("ftp://x") && e.contains("http://"), "{e}");
        assert_eq!(path_segment("a1-b/2"), "a1-b%2F2");
    }
}
