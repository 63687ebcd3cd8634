//! Sends a prepared request through WASI HTTP
//! (`wasi:http/outgoing-handler`): the host owns the socket, TLS and what
//! may be reached. As in the Slack component, the body is written in
//! chunks as `check-write` permits (one write larger than the permit is a
//! trap): what the host takes at once before the request is handed over,
//! the rest while the host sends it.

use std::time::Duration;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

use crate::answer::MAX_ANSWER_BYTES;
use crate::error::HandlerError;
use crate::request::Request;

/// How long to wait for the connection (and TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the answer to start, and between its chunks.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer, as read off the wire: at most [`MAX_ANSWER_BYTES`] of its
/// body.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// Sends `request` and reads the answer. Every failure is a
/// [`HandlerError`] naming the endpoint's authority, never its path, query
/// or a header's value.
pub fn send(request: &Request) -> Result<Answer, HandlerError> {
    let authority = request.url.authority.as_str();
    let fields = Fields::new();
    for (name, value) in &request.headers {
        fields
            .append(name, &value.clone().into_bytes())
            .map_err(|e| match e {
                HeaderError::Forbidden => HandlerError::InvalidConfig(format!(
                    "the host does not let a plugin set the header `{name}`; leave it out"
                )),
                _ => HandlerError::InvalidConfig(format!("the host refused the header `{name}`")),
            })?;
    }
    let outgoing = OutgoingRequest::new(fields);
    let bad = |what: &str| HandlerError::Internal(format!("the host refused the request's {what}"));
    let scheme = if request.url.scheme == "http" {
        Scheme::Http
    } else {
        Scheme::Https
    };
    outgoing
        .set_method(&Method::Post)
        .map_err(|()| bad("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| bad("authority"))?;
    outgoing
        .set_path_with_query(Some(&request.url.path_and_query()))
        .map_err(|()| bad("path"))?;
    let body = outgoing.body().map_err(|()| bad("body"))?;

    let options = RequestOptions::new();
    let nanos = |d: Duration| Some(d.as_nanos() as u64);
    // A host may not support every timeout; that is not a reason to fail.
    let _ = options.set_connect_timeout(nanos(CONNECT_TIMEOUT));
    let _ = options.set_first_byte_timeout(nanos(RESPONSE_TIMEOUT));
    let _ = options.set_between_bytes_timeout(nanos(RESPONSE_TIMEOUT));
    let failed = |code: ErrorCode| from_error_code(code, authority);

    // Waiting for room before `handle` would wait for ever (nobody reads
    // the stream yet), so write what fits, hand the request over, then
    // write the rest. A write that fails does not decide the outcome: the
    // server may answer before the last byte, and a real failure comes
    // back with the response.
    let stream = body.write().map_err(|()| bad("body stream"))?;
    let rest = write(&stream, request.body.as_bytes(), false).unwrap_or_default();
    let future = if rest.is_empty() {
        let _ = stream.flush();
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
        outgoing_handler::handle(outgoing, Some(options)).map_err(failed)?
    } else {
        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(failed)?;
        let _ = write(&stream, rest, true);
        let _ = stream.flush();
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
        future
    };
    let response = wait(&future).map_err(failed)?;
    read(response, authority)
}

/// Writes `bytes` as `check-write` permits; what is left when the stream
/// has no room and `may_wait` is false.
fn write<'a>(
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

/// Reads the status, `Retry-After` and at most [`MAX_ANSWER_BYTES`] of the
/// body; the rest is left unread.
fn read(response: IncomingResponse, authority: &str) -> Result<Answer, HandlerError> {
    let status = response.status();
    let headers = response.headers();
    let retry_after = headers
        .get(&"retry-after".to_string())
        .into_iter()
        .next()
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    drop(headers);
    let taken = || HandlerError::Internal("the response body was already taken".into());
    let body = response.consume().map_err(|()| taken())?;
    let stream = body.stream().map_err(|()| taken())?;
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ANSWER_BYTES {
        match stream.blocking_read((MAX_ANSWER_BYTES - bytes.len()) as u64) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasi::http::types::http_error_code(&e) {
                    Some(code) => from_error_code(code, authority),
                    None => HandlerError::Transport(format!(
                        "reading the answer from {authority} failed"
                    )),
                });
            }
        }
    }
    drop(stream);
    drop(body);
    Ok(Answer {
        status,
        retry_after,
        body: bytes,
    })
}

/// Maps a wasi:http error onto the handler's cases, naming the endpoint.
fn from_error_code(code: ErrorCode, authority: &str) -> HandlerError {
    use ErrorCode as E;
    let at = |what: &str| format!("{what} ({authority})");
    match code {
        E::TlsProtocolError => HandlerError::Tls(at("TLS protocol error")),
        E::TlsCertificateError => {
            HandlerError::Tls(at("the server's TLS certificate is not trusted"))
        }
        E::TlsAlertReceived(alert) => HandlerError::Tls(at(&format!(
            "the server sent TLS alert {} {}",
            alert.alert_id.map(|i| i.to_string()).unwrap_or_default(),
            alert.alert_message.unwrap_or_default()
        ))),
        E::HttpRequestDenied => {
            HandlerError::RequestDenied(at("the host's policy does not allow this destination"))
        }
        E::DestinationIpProhibited => {
            HandlerError::RequestDenied(at("the destination address is prohibited"))
        }
        E::DnsTimeout => HandlerError::Transport(at("DNS lookup timed out")),
        E::DnsError(_) | E::DestinationNotFound => HandlerError::Transport(at("host not found")),
        E::DestinationUnavailable | E::DestinationIpUnroutable => {
            HandlerError::Transport(at("destination unreachable"))
        }
        E::ConnectionRefused => HandlerError::Transport(at("connection refused")),
        E::ConnectionTerminated => HandlerError::Transport(at("connection reset")),
        E::ConnectionTimeout => HandlerError::Transport(at("connection timed out")),
        E::ConnectionReadTimeout | E::HttpResponseTimeout => {
            HandlerError::Transport(at("timed out waiting for the answer"))
        }
        E::ConnectionWriteTimeout => HandlerError::Transport(at("timed out sending")),
        E::ConnectionLimitReached => HandlerError::Transport(at("connection limit reached")),
        E::HttpResponseIncomplete => HandlerError::Transport(at("the answer was cut off")),
        E::HttpProtocolError => HandlerError::Transport(at("HTTP protocol error")),
        other => HandlerError::Internal(at(&format!("wasi:http error {other:?}"))),
    }
}
