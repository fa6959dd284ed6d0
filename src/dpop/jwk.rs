//! The proof's `jwk` header: a public key of the type its `alg` needs, its
//! RFC 7638 thumbprint, and the constant-time comparison with `cnf.jkt`.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ProofErrorKind;

/// Members that only a private (or symmetric) JWK has (RFC 7517 / 7518).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The smallest and largest RSA modulus accepted, in bits: below is weak,
/// above costs verification time an attacker chooses.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// A checked public key: what verifies the signature and its thumbprint.
pub(crate) struct PublicJwk {
    pub(crate) key: DecodingKey,
    pub(crate) thumbprint: String,
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, ProofErrorKind> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or(ProofErrorKind::InvalidJwk)
}

/// A base64url (no padding, canonical) member that decodes to `len` bytes
/// (any length when `None`).
fn b64_member<'a>(
    jwk: &'a Map<String, Value>,
    name: &str,
    len: Option<usize>,
) -> Result<(&'a str, Vec<u8>), ProofErrorKind> {
    let s = member(jwk, name)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| ProofErrorKind::InvalidJwk)?;
    match len {
        Some(n) if bytes.len() != n => Err(ProofErrorKind::InvalidJwk),
        _ => Ok((s, bytes)),
    }
}

/// Checks `jwk` against `alg` and builds the verifying key and thumbprint.
pub(crate) fn public_jwk(
    jwk: &Map<String, Value>,
    alg: Algorithm,
) -> Result<PublicJwk, ProofErrorKind> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofErrorKind::PrivateJwk);
    }
    let kty = member(jwk, "kty")?;
    let (key, members): (DecodingKey, Vec<(&str, &str)>) = match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            let (crv, size) = if alg == Algorithm::ES256 {
                ("P-256", 32)
            } else {
                ("P-384", 48)
            };
            if kty != "EC" || member(jwk, "crv")? != crv {
                return Err(ProofErrorKind::InvalidJwk);
            }
            let (x, _) = b64_member(jwk, "x", Some(size))?;
            let (y, _) = b64_member(jwk, "y", Some(size))?;
            let key =
                DecodingKey::from_ec_components(x, y).map_err(|_| ProofErrorKind::InvalidJwk)?;
            (key, vec![("crv", crv), ("kty", "EC"), ("x", x), ("y", y)])
        }
        Algorithm::EdDSA => {
            if kty != "OKP" || member(jwk, "crv")? != "Ed25519" {
                return Err(ProofErrorKind::InvalidJwk);
            }
            let (x, _) = b64_member(jwk, "x", Some(32))?;
            let key = DecodingKey::from_ed_components(x).map_err(|_| ProofErrorKind::InvalidJwk)?;
            (key, vec![("crv", "Ed25519"), ("kty", "OKP"), ("x", x)])
        }
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => {
            if kty != "RSA" {
                return Err(ProofErrorKind::InvalidJwk);
            }
            let (n, n_bytes) = b64_member(jwk, "n", None)?;
            let (e, e_bytes) = b64_member(jwk, "e", None)?;
            let bits =
                n_bytes.len() * 8 - n_bytes.first().map_or(8, |b| b.leading_zeros() as usize);
            if n_bytes.first() == Some(&0)
                || !RSA_BITS.contains(&bits)
                || e_bytes.is_empty()
                || e_bytes.len() > 4
                || e_bytes[0] == 0
            {
                return Err(ProofErrorKind::InvalidJwk);
            }
            let key = DecodingKey::from_rsa_raw_components(&n_bytes, &e_bytes);
            (key, vec![("e", e), ("kty", "RSA"), ("n", n)])
        }
        _ => return Err(ProofErrorKind::Algorithm),
    };
    Ok(PublicJwk {
        key,
        thumbprint: thumbprint_of(&members),
    })
}

/// RFC 7638 §3: the required members, in lexicographic order (the caller
/// lists them so), as JSON with no white space; SHA-256; base64url.
///
/// Written by hand: every name and value here is a fixed member or curve
/// name or a checked base64url string ([`b64_member`]), none of which JSON
/// escapes, so the text is exactly what a serializer writes (a proof is
/// verified on every DPoP request).
fn thumbprint_of(members: &[(&str, &str)]) -> String {
    let mut json = Vec::with_capacity(
        2 + members
            .iter()
            .map(|(n, v)| n.len() + v.len() + 6)
            .sum::<usize>(),
    );
    json.push(b'{');
    for (i, (name, value)) in members.iter().enumerate() {
        debug_assert!(
            [name, value].iter().all(|s| s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
            "a thumbprint member that JSON would escape"
        );
        if i > 0 {
            json.push(b',');
        }
        json.push(b'"');
        json.extend_from_slice(name.as_bytes());
        json.extend_from_slice(b"\":\"");
        json.extend_from_slice(value.as_bytes());
        json.push(b'"');
    }
    json.push(b'}');
    URL_SAFE_NO_PAD.encode(Sha256::digest(&json))
}

/// Whether a proof's key thumbprint equals an access token's `cnf.jkt`,
/// in constant time (for equal lengths).
///
/// # Example
///
/// ```
/// use tower_mcp_auth::dpop::jkt_matches;
///
/// assert!(jkt_matches("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
/// assert!(!jkt_matches("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "other"));
/// ```
pub fn jkt_matches(thumbprint: &str, cnf_jkt: &str) -> bool {
    thumbprint.as_bytes().ct_eq(cnf_jkt.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn rfc7638_example_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let thumb = thumbprint_of(&[("e", "AQAB"), ("kty", "RSA"), ("n", n)]);
        assert_eq!(thumb, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn private_members_refused() {
        for m in PRIVATE_MEMBERS {
            let mut jwk = Map::new();
            jwk.insert("kty".into(), "EC".into());
            jwk.insert(m.into(), "AAAA".into());
            assert_eq!(
                public_jwk(&jwk, Algorithm::ES256).err(),
                Some(ProofErrorKind::PrivateJwk),
                "{m}"
            );
        }
    }

    #[test]
    fn key_type_must_fit_alg() {
        let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let okp: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
                .unwrap();
        assert_eq!(
            public_jwk(&okp, Algorithm::ES256).err(),
            Some(ProofErrorKind::InvalidJwk)
        );
        assert!(public_jwk(&okp, Algorithm::EdDSA).is_ok());
        // Padding and wrong lengths are refused.
        let padded: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": format!("{x}=")}),
        )
        .unwrap();
        assert!(public_jwk(&padded, Algorithm::EdDSA).is_err());
        let short: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([7u8; 31])}),
        )
        .unwrap();
        assert!(public_jwk(&short, Algorithm::EdDSA).is_err());
    }

    #[test]
    fn jkt_comparison() {
        assert!(jkt_matches("abc", "abc"));
        assert!(!jkt_matches("abc", "abd"));
        assert!(!jkt_matches("abc", "abcd"));
        assert!(!jkt_matches("abc", ""));
    }
}
