//! Sends a prepared request through WASI HTTP (`wasi:http/outgoing-handler`):
//! the host owns the socket and TLS.
//!
//! Written on the `wasi` crate rather than wasi-http-client 0.2.1, whose
//! `send` writes the body in one `blocking-write-and-flush` (a trap above
//! 4096 bytes), sets no response timeout and can panic on a spurious wake-up.
//! Here the body is written in chunks as `check-write` permits: what the
//! host takes at once before the request is handed over, the rest while
//! the host sends it.

use std::time::Duration;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

use crate::error::HandlerError;
use crate::payload::Request;
use crate::stages::{self, Stage};
use crate::weburl::WebUrl;

/// How long to wait for the connection (and TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the response to start, and between its chunks;
/// Kapacitor's client gives a whole request 30 s.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Slack's answers are small (chat.postMessage echoes the message, which
/// Slack cuts at 40,000 characters); past this the rest is not read.
pub const MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// Slack's answer, as read off the wire.
pub struct RawResponse {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
    /// The body was longer than [`MAX_RESPONSE_BODY`]; `body` is its start.
    pub truncated: bool,
}

/// Sends `request` and reads the answer. Never traps: every failure is a
/// [`HandlerError`] naming the endpoint's host, never its path or token.
pub fn send(request: &Request) -> Result<RawResponse, HandlerError> {
    let url = WebUrl::parse(request.url.expose())
        .map_err(|_| HandlerError::Internal("the workspace URL does not parse".into()))?;
    let authority = url.authority();
    let scheme = match url.scheme.as_str() {
        "http" => Scheme::Http,
        _ => Scheme::Https,
    };
    let path = url.path_and_query();

    let headers: Vec<(String, Vec<u8>)> = request
        .headers()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    let fields = Fields::from_list(&headers)
        .map_err(|e| HandlerError::Internal(format!("the host refused a header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let bad = |what: &str| HandlerError::Internal(format!("the host refused the request's {what}"));
    outgoing
        .set_method(&Method::Post)
        .map_err(|()| bad("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("scheme"))?;
    outgoing
        .set_authority(Some(&authority))
        .map_err(|()| bad("authority"))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|()| bad("path"))?;
    let body = outgoing.body().map_err(|()| bad("body"))?;

    let options = RequestOptions::new();
    let nanos = |d: Duration| Some(d.as_nanos() as u64);
    // A host may not support every timeout; that is not a reason to fail.
    let _ = options.set_connect_timeout(nanos(CONNECT_TIMEOUT));
    let _ = options.set_first_byte_timeout(nanos(RESPONSE_TIMEOUT));
    let _ = options.set_between_bytes_timeout(nanos(RESPONSE_TIMEOUT));

    let on_the_way = |code: ErrorCode| from_error_code(code, &authority);
    stages::end(Stage::BuildRequest);

    // What the host takes at once is written before `handle`, so the
    // request leaves whole: the host's client need not be woken again for
    // the body, which on one instance cost a trip through the host's
    // runtime per alert. A longer body is streamed after `handle`, while
    // the host reads it (waiting for room before `handle` would wait for
    // ever). What happens while writing does not decide the outcome: a
    // server may answer (and hyper drop the body stream) before the last
    // write, and when the connection really failed the response carries
    // the reason.
    let Ok(stream) = body.write() else {
        return Err(bad("body stream"));
    };
    let rest = write_body(&stream, &request.body, false).unwrap_or_default();
    let future = if rest.is_empty() {
        let _ = stream.flush();
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
        stages::end(Stage::WriteBody);
        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(on_the_way)?;
        stages::end(Stage::Handle);
        future
    } else {
        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(on_the_way)?;
        stages::end(Stage::Handle);
        let _ = write_body(&stream, rest, true);
        let _ = stream.flush();
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
        stages::end(Stage::WriteBody);
        future
    };
    let response = wait(&future).map_err(on_the_way)?;
    stages::end(Stage::Wait);
    let raw = read(response, &authority);
    stages::end(Stage::ReadResponse);
    raw
}

/// Writes `bytes` as `check-write` permits (a single write of more than
/// the permit is a trap); what is left when the stream has no room and
/// `may_wait` is false (then nobody may be reading it yet).
fn write_body<'a>(
    stream: &OutputStream,
    bytes: &'a [u8],
    may_wait: bool,
) -> Result<&'a [u8], StreamError> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let permitted = stream.check_write()?;
        if permitted == 0 {
            if !may_wait {
                break;
            }
            stream.subscribe().block();
            continue;
        }
        let n = rest
            .len()
            .min(usize::try_from(permitted).unwrap_or(usize::MAX));
        stream.write(&rest[..n])?;
        rest = &rest[n..];
    }
    Ok(rest)
}

fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, ErrorCode> {
    loop {
        match future.get() {
            Some(Ok(result)) => return result,
            Some(Err(())) => {
                return Err(ErrorCode::InternalError(Some(
                    "response already taken".into(),
                )))
            }
            None => future.subscribe().block(),
        }
    }
}

fn read(response: IncomingResponse, authority: &str) -> Result<RawResponse, HandlerError> {
    let status = response.status();
    let headers = response.headers();
    let header = |name: &str| headers.get(&name.to_string()).into_iter().next();
    let retry_after = header("retry-after").map(|v| String::from_utf8_lossy(&v).into_owned());
    // With the length known, the answer is complete once that much is in:
    // no further read just to learn that the stream ended.
    let length: Option<usize> =
        header("content-length").and_then(|v| String::from_utf8(v).ok()?.trim().parse().ok());
    drop(headers);
    let body = response
        .consume()
        .map_err(|()| HandlerError::Internal("the response body was already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| HandlerError::Internal("the response body was already taken".into()))?;
    let mut bytes = Vec::new();
    let mut truncated = false;
    loop {
        if length.is_some_and(|n| bytes.len() >= n) {
            break;
        }
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_RESPONSE_BODY {
                    bytes.truncate(MAX_RESPONSE_BODY);
                    truncated = true;
                    break;
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                // The host's debug text can carry a backtrace: keep its
                // first line.
                let detail = wasi::http::types::http_error_code(&e)
                    .map(|c| from_error_code(c, authority).to_string())
                    .unwrap_or_else(|| {
                        let text = e.to_debug_string();
                        text.lines()
                            .next()
                            .unwrap_or_default()
                            .chars()
                            .take(200)
                            .collect()
                    });
                return Err(HandlerError::Transport(format!(
                    "reading the answer from {authority} failed: {detail}"
                )));
            }
        }
    }
    drop(stream);
    drop(body);
    Ok(RawResponse {
        status,
        retry_after,
        body: bytes,
        truncated,
    })
}

/// Maps a wasi:http error onto the handler's cases, naming the endpoint.
fn from_error_code(code: ErrorCode, authority: &str) -> HandlerError {
    use ErrorCode as E;
    let at = |what: String| format!("{what} ({authority})");
    match code {
        E::TlsProtocolError => HandlerError::Tls(at("TLS protocol error".into())),
        E::TlsCertificateError => {
            HandlerError::Tls(at("the server's TLS certificate is not trusted".into()))
        }
        E::TlsAlertReceived(alert) => HandlerError::Tls(at(format!(
            "the server sent TLS alert {} {}",
            alert.alert_id.map(|i| i.to_string()).unwrap_or_default(),
            alert.alert_message.unwrap_or_default()
        ))),
        E::HttpRequestDenied => HandlerError::RequestDenied(at(
            "the host's policy does not allow this destination".into(),
        )),
        E::DestinationIpProhibited => {
            HandlerError::RequestDenied(at("the destination address is prohibited".into()))
        }
        E::DnsTimeout => HandlerError::Transport(at("DNS lookup timed out".into())),
        E::DnsError(d) => HandlerError::Transport(at(format!(
            "DNS lookup failed: {}",
            d.rcode.unwrap_or_default()
        ))),
        E::DestinationNotFound => HandlerError::Transport(at("host not found".into())),
        E::DestinationUnavailable => HandlerError::Transport(at("destination unavailable".into())),
        E::DestinationIpUnroutable => HandlerError::Transport(at("address unroutable".into())),
        E::ConnectionRefused => HandlerError::Transport(at("connection refused".into())),
        E::ConnectionTerminated => HandlerError::Transport(at("connection reset".into())),
        E::ConnectionTimeout => HandlerError::Transport(at("connection timed out".into())),
        E::ConnectionReadTimeout => {
            HandlerError::Transport(at("timed out waiting for the answer".into()))
        }
        // The host's whole-answer deadline: the answer kept coming, too slowly.
        E::HttpResponseTimeout => HandlerError::Transport(at(
            "the answer did not complete within the host's response deadline".into(),
        )),
        E::ConnectionWriteTimeout => HandlerError::Transport(at("timed out sending".into())),
        E::ConnectionLimitReached => HandlerError::Transport(at("connection limit reached".into())),
        E::HttpResponseIncomplete => HandlerError::Transport(at("the answer was cut off".into())),
        E::HttpProtocolError => HandlerError::Transport(at("HTTP protocol error".into())),
        other => HandlerError::Internal(at(format!("wasi:http error {other:?}"))),
    }
}
