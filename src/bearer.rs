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
    match find_token(headers, max_len, false)? {
        Some((Scheme::Bearer, token)) => Ok(Some(token)),
        _ => Ok(None),
    }
}

/// Whether the request's (one) `Authorization` header uses the `DPoP`
/// scheme (any case): an access token, whether or not the layer that sees
/// it takes DPoP proofs.
pub(crate) fn uses_dpop_scheme(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| strip_scheme(v.as_bytes(), b"dpop").is_some())
}

/// The scheme an access token came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Authorization: Bearer` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// [`find_bearer`], and with `dpop` the `DPoP` scheme too (any case; its
/// token68 is the same `b64token`), with the same checks.
pub(crate) fn find_token(
    headers: &HeaderMap,
    max_len: usize,
    dpop: bool,
) -> Result<Option<(Scheme, &str)>, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(
            "more than one Authorization header was sent",
        ));
    }
    let value = value.as_bytes();
    let (scheme, token) = match strip_scheme(value, b"bearer") {
        Some(token) => (Scheme::Bearer, token),
        None => match strip_scheme(value, b"dpop").filter(|_| dpop) {
            Some(token) => (Scheme::Dpop, token),
            None => return Ok(None),
        },
    };
    let token = token.trim_ascii();
    if token.is_empty() {
        return Err(AuthError::invalid_token(match scheme {
            Scheme::Bearer => "the bearer token is empty",
            Scheme::Dpop => "the DPoP access token is empty",
        }));
    }
    if token.len() > max_len {
        return Err(AuthError::invalid_token("the token is too large"));
    }
    if !is_b64token(token) {
        return Err(AuthError::invalid_token("the token is malformed"));
    }
    // A b64token is ASCII.
    Ok(std::str::from_utf8(token).ok().map(|t| (scheme, t)))
}

/// The bytes after `scheme` (lowercase; matched in any case) and white
/// space, if the value uses that scheme.
fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let (name, rest) = value.split_at_checked(scheme.len())?;
    if !name.eq_ignore_ascii_case(scheme) {
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
    /// Whether `c` may be in a `b64token` before its `=` padding, without
    /// a branch or a table, so that the check over a whole token (read on
    /// every request) runs many bytes at a time.
    #[inline(always)]
    fn body(c: u8) -> bool {
        let letter = (c | 0x20).wrapping_sub(b'a') < 26;
        let digit = c.wrapping_sub(b'0') < 10;
        let mark =
            (c == b'-') | (c == b'.') | (c == b'_') | (c == b'~') | (c == b'+') | (c == b'/');
        letter | digit | mark
    }
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    // Sixteen bytes at a time, with no early exit inside, so that the
    // compiler checks each block in vector registers.
    let (blocks, rest) = token[..body_len].as_chunks::<16>();
    let blocks_ok = blocks
        .iter()
        .all(|block| block.iter().fold(true, |ok, &b| ok & body(b)));
    body_len > 0 && blocks_ok && rest.iter().all(|&b| body(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64token_is_exactly_the_rfc_6750_alphabet_then_padding() {
        for b in 0..=255u8 {
            let allowed =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token(&[b'a', b, b'z']), allowed, "{b:#04x}");
            assert_eq!(is_b64token(&[b]), allowed, "{b:#04x}");
        }
        assert!(is_b64token(b"abc=="));
        assert!(!is_b64token(b"=="));
        assert!(!is_b64token(b"a=b"));
    }

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

    #[test]
    fn dpop_scheme_is_recognised() {
        assert!(uses_dpop_scheme(&h(&["DPoP abc"])));
        assert!(uses_dpop_scheme(&h(&["dpop"])));
        assert!(!uses_dpop_scheme(&h(&["DPoPabc"])));
        assert!(!uses_dpop_scheme(&h(&["Bearer abc"])));
        assert!(!uses_dpop_scheme(&h(&[])));
    }

    #[test]
    fn dpop_scheme_only_when_asked() {
        assert_eq!(find_bearer(&h(&["DPoP abc"]), 10).unwrap(), None);
        assert_eq!(
            find_token(&h(&["dpop abc"]), 10, true).unwrap(),
            Some((Scheme::Dpop, "abc"))
        );
        assert_eq!(
            find_token(&h(&["Bearer abc"]), 10, true).unwrap(),
            Some((Scheme::Bearer, "abc"))
        );
        assert_eq!(find_token(&h(&["DPoPabc"]), 10, true).unwrap(), None);
        let e = find_token(&h(&["DPoP  "]), 10, true).unwrap_err();
        assert_eq!(e.description(), "the DPoP access token is empty");
        let e = find_token(&h(&["DPoP a b"]), 10, true).unwrap_err();
        assert_eq!(e.status(), 401);
    }
}
