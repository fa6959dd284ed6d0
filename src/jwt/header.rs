//! A token's header, read before any key is chosen: whether the token is
//! a JWT at all, its `alg`, `kid` and `typ`; and the JSON object reader
//! that refuses duplicate member names.

use std::{fmt, str::FromStr};

use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::error::JwtError;

/// The header fields we look at.
#[derive(Debug)]
pub(crate) struct Header {
    pub(super) alg: Algorithm,
    pub(super) kid: Option<String>,
    pub(super) typ: Option<String>,
}

/// Decides whether `token` is a JWT and reads its header.
///
/// A token is *JWT-shaped* when its first segment (before the first `.`)
/// is base64url of a JSON object, or when it has exactly three segments.
/// Anything else is [`JwtErrorKind::NotAJwt`] (an opaque token). A
/// JWT-shaped token with a bad header is [`JwtErrorKind::Invalid`].
pub(crate) fn parse_header(token: &str) -> Result<Header, JwtError> {
    let mut parts = token.split('.');
    let first = parts.next().unwrap_or_default();
    let segments = 1 + parts.count();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| serde_json::from_str::<StrictObject>(&text).ok());
    let Some(StrictObject(header)) = decoded else {
        // Not a JSON header: an opaque token, unless it looks like a JWS.
        return Err(if segments == 3 {
            JwtError::invalid("the token is malformed")
        } else {
            JwtError::not_jwt()
        });
    };
    if segments != 3 {
        return Err(JwtError::invalid("the token is malformed"));
    }
    if header.contains_key("crit") {
        return Err(JwtError::invalid(
            "the token has critical header parameters",
        ));
    }
    let alg = match header.get("alg") {
        Some(Value::String(a)) => Algorithm::from_str(a)
            .map_err(|_| JwtError::invalid("the token's algorithm is not supported"))?,
        _ => return Err(JwtError::invalid("the token's algorithm is not supported")),
    };
    let text = |name: &str| -> Result<Option<String>, JwtError> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JwtError::invalid("the token header is malformed")),
        }
    };
    Ok(Header {
        alg,
        kid: text("kid")?,
        typ: text("typ")?,
    })
}

/// A JSON object that refuses duplicate member names (RFC 7515 §5.2 /
/// RFC 7519 §4: a JWT with duplicate names must be rejected or use the
/// last; we reject, as parsers disagree).
pub(crate) struct StrictObject(pub(crate) Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
                let mut out = Map::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v: Value = map.next_value()?;
                    if out.insert(k, v).is_some() {
                        return Err(serde::de::Error::custom("duplicate member name"));
                    }
                }
                Ok(StrictObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::super::error::JwtErrorKind;
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn jwt_shape_tells_opaque_tokens_from_broken_jwts() {
        for opaque in ["abc123", "mF_9.B5f-4", "a.b", "ya29.a0AfH6SMB", "!!!"] {
            assert!(parse_header(opaque).unwrap_err().is_not_jwt(), "{opaque}");
        }
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
        for broken in [
            "!!!.@@@.###".to_owned(),
            format!("{h}.payload"),
            h.clone(),
            "a.b.c".into(),
        ] {
            let e = parse_header(&broken).unwrap_err();
            assert_eq!(e.kind(), JwtErrorKind::Invalid, "{broken}");
        }
        assert!(parse_header(&format!("{h}.x.y")).is_ok());
    }
}
