//! The bearer token of a request (`Authorization: Bearer <token>`,
//! RFC 6750 §2.1), found the same way by every bearer authenticator.
//!
//! Never read from the query string or the body: the MCP specification
//! forbids tokens in URIs.

use http::{header, HeaderMap};

use crate::error::AuthError;

/// Finds the bearer token. `Ok(None)` when no `Authorization` header uses
/// the `Bearer` scheme (another scheme is not ours). The scheme name is
/// case-insensitive (RFC 7235 §2.1).
///
/// # Errors
///
/// * 400 `invalid_request`: more than one `Authorization` header.
/// * 401 `invalid_token`: an empty token, one longer than `max_len` bytes
///   (refused before anything looks inside it), or one that is not an
///   RFC 6750 `b64token`.
pub(crate) fn find_bearer(headers: &HeaderMap, max_len: usize) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(
            "more than one Authorization header was sent",
        ));
    }
    let Some(token) = strip_bearer(value.as_bytes()) else {
        return Ok(None);
    };
    let token = token.trim_ascii();
    if token.is_empty() {
        return Err(AuthError::invalid_token("the bearer token is empty"));
    }
    if token.len() > max_len {
        return Err(AuthError::invalid_token("the token is too large"));
    }
    if !is_b64token(token) {
        return Err(AuthError::invalid_token("the token is malformed"));
    }
    // A b64token is ASCII.
    Ok(std::str::from_utf8(token).ok())
}

/// The bytes after `Bearer` (any case) and white space, if the value uses
/// that scheme.
fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    match rest.first() {
        None | Some(b' ' | b'\t') => Some(rest),
        Some(_) => None,
    }
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0
        && token[..body_len].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(values: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append(header::AUTHORIZATION, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn finds_bearer_tokens() {
        assert_eq!(find_bearer(&h(&["Bearer abc"]), 10).unwrap(), Some("abc"));
        assert_eq!(
            find_bearer(&h(&["BEARER  a-b.c_d~e+f/g=="]), 64).unwrap(),
            Some("a-b.c_d~e+f/g==")
        );
        assert_eq!(find_bearer(&h(&["bearer\tabc "]), 10).unwrap(), Some("abc"));
        assert_eq!(find_bearer(&h(&["Basic abc"]), 10).unwrap(), None);
        assert_eq!(find_bearer(&h(&["ApiKey abc"]), 10).unwrap(), None);
        assert_eq!(find_bearer(&h(&["Bearerabc"]), 10).unwrap(), None);
        assert_eq!(find_bearer(&h(&[]), 10).unwrap(), None);
    }

    #[test]
    fn refuses_what_is_not_one_token() {
        for (bad, why) in [
            ("Bearer", "the bearer token is empty"),
            ("Bearer   ", "the bearer token is empty"),
            ("Bearer a b", "the token is malformed"),
            ("Bearer ==", "the token is malformed"),
            ("Bearer a=b", "the token is malformed"),
            ("Bearer a\"b", "the token is malformed"),
            ("Bearer abcdefghijk", "the token is too large"),
        ] {
            let e = find_bearer(&h(&[bad]), 10).unwrap_err();
            assert_eq!(
                (e.status().as_u16(), e.description()),
                (401, why),
                "{bad:?}"
            );
        }
        let e = find_bearer(&h(&["Bearer a", "bearer b"]), 10).unwrap_err();
        assert_eq!(e.status(), 400);
        let e = find_bearer(&h(&["Basic x", "Bearer b"]), 10).unwrap_err();
        assert_eq!(e.status(), 400);
    }
}
