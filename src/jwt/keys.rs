//! Verification keys: [`JwtKey`] (one key, pinned to one algorithm) and the
//! key set a validator looks keys up in.

use std::{collections::HashMap, fmt, str::FromStr, sync::Arc};

use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse},
    Algorithm, DecodingKey,
};
use secrecy::{ExposeSecret, SecretString};

use crate::config::ConfigError;

/// One verification key, pinned to exactly one algorithm.
///
/// A token is checked against a key only when the token's `alg` header is the
/// key's algorithm, so `alg: none`, HS/RS confusion (an HMAC token "signed"
/// with an RSA public key) and algorithm downgrades are refused before any
/// signature check.
///
/// ```
/// use secrecy::SecretString;
/// use tower_mcp_auth::jwt::{Algorithm, JwtKey};
///
/// let hs = JwtKey::hmac(Algorithm::HS256, &SecretString::from("a-secret-of-at-least-32-bytes!!!"))?
///     .with_kid("local");
/// assert_eq!(hs.algorithm(), Algorithm::HS256);
/// assert_eq!(hs.kid(), Some("local"));
///
/// let jwk = r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
/// let ed = JwtKey::from_jwk_json(jwk)?;
/// assert_eq!(ed.algorithm(), Algorithm::EdDSA);
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct JwtKey {
    kid: Option<String>,
    issuer: Option<String>,
    alg: Algorithm,
    key: Arc<DecodingKey>,
}

impl JwtKey {
    /// An HMAC key (`HS256`, `HS384` or `HS512`) from a shared secret.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `alg` is not an HMAC algorithm, or the
    /// secret is shorter than the hash output (32, 48 or 64 bytes; RFC 7518
    /// §3.2). The error never contains the secret.
    pub fn hmac(alg: Algorithm, secret: &SecretString) -> Result<Self, ConfigError> {
        super::install_crypto_provider();
        let bytes = hmac_secret(alg, secret)?;
        Ok(Self::new(alg, DecodingKey::from_secret(bytes)))
    }

    /// An RSA public key (`RS256`/`RS384`/`RS512`/`PS256`/`PS384`/`PS512`)
    /// from PEM (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `alg` is not an RSA algorithm or the PEM
    /// is not an RSA public key.
    pub fn rsa_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        super::install_crypto_provider();
        family_check(
            alg,
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            "RSA",
        )?;
        let key = DecodingKey::from_rsa_pem(pem)
            .map_err(|_| ConfigError::Invalid("not an RSA public key in PEM".into()))?;
        Ok(Self::new(alg, key))
    }

    /// An EC public key (`ES256` on P-256, `ES384` on P-384) from PEM.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `alg` is not an EC algorithm or the PEM
    /// is not an EC public key.
    pub fn ec_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        super::install_crypto_provider();
        family_check(alg, &[Algorithm::ES256, Algorithm::ES384], "EC")?;
        let key = DecodingKey::from_ec_pem(pem)
            .map_err(|_| ConfigError::Invalid("not an EC public key in PEM".into()))?;
        Ok(Self::new(alg, key))
    }

    /// An Ed25519 public key (`EdDSA`) from PEM.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the PEM is not an Ed25519 public key.
    pub fn ed25519_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        super::install_crypto_provider();
        let key = DecodingKey::from_ed_pem(pem)
            .map_err(|_| ConfigError::Invalid("not an Ed25519 public key in PEM".into()))?;
        Ok(Self::new(Algorithm::EdDSA, key))
    }

    /// A key from a JWK (RFC 7517). Its `kid` is kept. The algorithm is the
    /// JWK's `alg`, or, when absent, follows from the key: `RS256` for RSA,
    /// `ES256` / `ES384` for P-256 / P-384, `EdDSA` for Ed25519. A symmetric
    /// (`oct`) JWK must name its `alg`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for an encryption key (`use: enc`), an
    /// unsupported key type or curve, an `alg` that does not fit the key, or
    /// bad key material.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, ConfigError> {
        super::install_crypto_provider();
        let invalid = |why: &str| ConfigError::Invalid(format!("unusable JWK: {why}"));
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(invalid("it is an encryption key (use: enc)"));
        }
        let named = match jwk.common.key_algorithm {
            Some(a) => Some(
                Algorithm::from_str(&a.to_string())
                    .map_err(|_| invalid("its alg is not a JWS signature algorithm"))?,
            ),
            None => None,
        };
        let (alg, allowed): (Algorithm, &[Algorithm]) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => (
                named.unwrap_or(Algorithm::RS256),
                &[
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ],
            ),
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => (named.unwrap_or(Algorithm::ES256), &[Algorithm::ES256]),
                EllipticCurve::P384 => (named.unwrap_or(Algorithm::ES384), &[Algorithm::ES384]),
                _ => return Err(invalid("unsupported EC curve")),
            },
            AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                EllipticCurve::Ed25519 => (named.unwrap_or(Algorithm::EdDSA), &[Algorithm::EdDSA]),
                _ => return Err(invalid("unsupported OKP curve")),
            },
            AlgorithmParameters::OctetKey(_) => (
                named.ok_or_else(|| invalid("a symmetric (oct) key must name its alg"))?,
                &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            ),
            _ => return Err(invalid("unsupported key type")),
        };
        if !allowed.contains(&alg) {
            return Err(invalid("its alg does not fit its key type"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|_| invalid("bad key material"))?;
        let mut out = Self::new(alg, key);
        out.kid = jwk.common.key_id.clone();
        Ok(out)
    }

    /// A key from a JWK in JSON.
    ///
    /// # Errors
    ///
    /// As [`from_jwk`](Self::from_jwk), and when the JSON is not a JWK.
    pub fn from_jwk_json(json: &str) -> Result<Self, ConfigError> {
        let jwk: Jwk = serde_json::from_str(json)
            .map_err(|_| ConfigError::Invalid("unusable JWK: not a JWK in JSON".into()))?;
        Self::from_jwk(&jwk)
    }

    /// Sets the key id (`kid`) that tokens name to pick this key.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Pins this key to an issuer: a token checked with it must carry
    /// exactly this `iss` (the validator's own issuer list does not apply
    /// to it).
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The issuer this key is pinned to, if any.
    #[must_use]
    pub fn issuer(&self) -> Option<&String> {
        self.issuer.as_ref()
    }

    /// The key id, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    fn new(alg: Algorithm, key: DecodingKey) -> Self {
        Self {
            kid: None,
            issuer: None,
            alg,
            key: Arc::new(key),
        }
    }
}

/// The bytes of an HMAC secret for `alg`, refused when `alg` is not an
/// HMAC algorithm or the secret is shorter than the hash output (32, 48 or
/// 64 bytes; RFC 7518 §3.2). Shared by the verification key and the
/// [`Hs256Signer`](super::Hs256Signer), so a secret one accepts the other
/// accepts. The error never contains the secret.
pub(super) fn hmac_secret(alg: Algorithm, secret: &SecretString) -> Result<&[u8], ConfigError> {
    let min = match alg {
        Algorithm::HS256 => 32,
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        other => {
            return Err(ConfigError::Invalid(format!(
                "{other:?} is not an HMAC algorithm; use HS256, HS384 or HS512"
            )))
        }
    };
    let bytes = secret.expose_secret().as_bytes();
    if bytes.len() < min {
        return Err(ConfigError::Invalid(format!(
            "the {alg:?} secret is shorter than {min} bytes (RFC 7518 §3.2); use a longer random secret"
        )));
    }
    Ok(bytes)
}

fn family_check(alg: Algorithm, allowed: &[Algorithm], family: &str) -> Result<(), ConfigError> {
    if allowed.contains(&alg) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{alg:?} is not an {family} algorithm"
        )))
    }
}

impl fmt::Debug for JwtKey {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Keys indexed by `kid`, plus those without one.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, JwtKey>,
    anonymous: Vec<JwtKey>,
}

/// What a lookup found.
pub(crate) enum Lookup<'a> {
    /// The key to check the token with.
    Found(&'a JwtKey),
    /// Keys exist for this token's `alg` but none without a `kid` (or the
    /// named `kid` is not in the set).
    Unknown,
}

impl KeySet {
    pub(crate) fn insert(&mut self, key: JwtKey) -> Result<(), ConfigError> {
        match &key.kid {
            Some(kid) => {
                if self.by_kid.contains_key(kid) {
                    return Err(ConfigError::Invalid(format!(
                        "two keys share the kid `{kid}`"
                    )));
                }
                self.by_kid.insert(kid.clone(), key);
            }
            None => self.anonymous.push(key),
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    #[cfg(feature = "jwks")]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key for a token: by `kid` when the token names one, else the
    /// first key without a `kid` whose algorithm is the token's.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let found = match kid {
            Some(kid) => self.by_kid.get(kid),
            None => self.anonymous.iter().find(|k| k.alg == alg).or_else(|| {
                // A token without a kid, and exactly one key in the set:
                // that key (its algorithm is still checked).
                (self.len() == 1)
                    .then(|| self.by_kid.values().next())
                    .flatten()
            }),
        };
        found.map_or(Lookup::Unknown, Lookup::Found)
    }
}
