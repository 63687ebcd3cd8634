//! Who may call serve: the bearer token (`--auth-token-file`), checked in
//! constant time on every route but `/healthz` and `/slack/interactions`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::StatusCode;
use subtle::ConstantTimeEq;

use super::answer::{refuse, Answer};
use super::Front;

/// The bearer token callers must present.
pub struct Token(Vec<u8>);

impl Token {
    /// Reads the token from `path` (surrounding whitespace dropped). Errors
    /// name the file, never its content.
    pub fn read(path: &Path) -> Result<Token> {
        let text = std::fs::read(path)
            .with_context(|| format!("reading the auth token file {}", path.display()))?;
        let token = text.trim_ascii();
        if token.is_empty() {
            bail!("the auth token file {} is empty", path.display());
        }
        if token.iter().any(|b| !b.is_ascii_graphic()) {
            bail!(
                "the auth token file {} holds more than one word (a token is printable ASCII without spaces)",
                path.display()
            );
        }
        Ok(Token(token.to_vec()))
    }

    /// Whether `Authorization` carries this token, compared in constant
    /// time.
    fn admits(&self, header: Option<&HeaderValue>) -> bool {
        // The scheme is case-insensitive (RFC 9110); the token is not.
        let Some(given) = header
            .map(HeaderValue::as_bytes)
            .filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case(b"bearer "))
            .map(|h| &h[7..])
        else {
            return false;
        };
        bool::from(given.ct_eq(&self.0))
    }
}

/// The `401` (with `WWW-Authenticate: Bearer`) to answer a request
/// without serve's token; none if serve has no token or the request
/// carries it.
pub(crate) fn refusal(front: &Front, headers: &HeaderMap) -> Option<Answer> {
    let token = front.token.as_ref()?;
    if token.admits(headers.get(AUTHORIZATION)) {
        return None;
    }
    let mut refused = refuse(
        front,
        StatusCode::UNAUTHORIZED,
        "this serve needs Authorization: Bearer <token>",
    );
    refused
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_read_without_its_newline_and_compared_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let token = Token::read(&path).unwrap();
        let header = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(token.admits(Some(&header("Bearer s3cret-token"))));
        assert!(token.admits(Some(&header("bearer s3cret-token"))));
        assert!(!token.admits(Some(&header("Bearer S3CRET-TOKEN"))));
        assert!(!token.admits(Some(&header("Bearer s3cret-toke"))));
        assert!(!token.admits(Some(&header("Bearer s3cret-token2"))));
        assert!(!token.admits(Some(&header("Basic s3cret-token"))));
        assert!(!token.admits(None));
    }

    #[test]
    fn a_bad_token_file_is_named_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "two words\n").unwrap();
        let e = format!("{:#}", Token::read(&path).err().unwrap());
        assert!(
            e.contains(&path.display().to_string()) && !e.contains("two"),
            "{e}"
        );
        std::fs::write(&path, "  \n").unwrap();
        let e = format!("{:#}", Token::read(&path).err().unwrap());
        assert!(e.contains("empty"), "{e}");
        let e = format!("{:#}", Token::read(&dir.path().join("none")).err().unwrap());
        assert!(e.contains("none"), "{e}");
    }
}
