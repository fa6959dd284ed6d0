//! [`ProofValidator`]: RFC 9449 §4.3's checks of one DPoP proof.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use http::{HeaderValue, Method};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    error::{ProofError, ProofErrorKind},
    htu,
    jwk::{jkt_matches, public_jwk},
    nonce::{unix_now, Nonces},
    replay::{MemoryReplayCache, ReplayCache, ReplayKey, ReplayOwner},
};
use crate::config::ConfigError;

/// The default bound on a `DPoP` header value, in bytes: a proof with a
/// 4096-bit RSA key is about 2.5 KiB.
pub const DEFAULT_MAX_PROOF_BYTES: usize = 8 * 1024;
/// The default `iat` window into the past: 5 minutes (SEP-1932).
pub const DEFAULT_IAT_WINDOW: Duration = Duration::from_secs(300);
/// The default future skew of `iat`: 5 seconds. A proof is remembered
/// until its `iat` leaves the window, so a proof dated further ahead would
/// hold its replay entry that much longer.
pub const DEFAULT_IAT_FUTURE_SKEW: Duration = Duration::from_secs(5);
/// The longest `jti` accepted, in bytes.
pub const MAX_JTI_BYTES: usize = 256;

/// The algorithms accepted when none are configured: ES256, EdDSA
/// (Ed25519), RS256, PS256.
pub const DEFAULT_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// Checks DPoP proofs; see the [module docs](super). Cheap to clone.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::dpop::{ProofErrorKind, ProofValidator};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use tower_mcp_auth::dpop::Binding;
///
/// let validator = ProofValidator::builder().build()?;
/// let headers = http::HeaderMap::new();
/// let binding = Binding::new(Some("the token's cnf.jkt"), "the token's subject");
/// let err = validator
///     .validate(headers.get_all("dpop"), &http::Method::POST, "https://mcp.example.com/mcp", "token", binding)
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), ProofErrorKind::Missing);
/// assert_eq!(validator.challenge(Some(&err)),
///     r#"DPoP error="invalid_dpop_proof", error_description="missing DPoP proof", algs="ES256 EdDSA RS256 PS256""#);
/// # Ok::<(), tower_mcp_auth::ConfigError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct ProofValidator {
    inner: Arc<Inner>,
}

struct Inner {
    algorithms: Vec<Algorithm>,
    iat_window: u64,
    iat_future_skew: u64,
    max_proof_bytes: usize,
    replay: Arc<dyn ReplayCache>,
    nonces: Option<Nonces>,
}

/// Builds a [`ProofValidator`].
#[must_use]
pub struct ProofValidatorBuilder {
    algorithms: Vec<Algorithm>,
    iat_window: Duration,
    iat_future_skew: Duration,
    max_proof_bytes: usize,
    replay: Option<Arc<dyn ReplayCache>>,
    nonces: Option<Nonces>,
}

impl ProofValidator {
    /// A builder with the defaults: [`DEFAULT_ALGORITHMS`],
    /// [`DEFAULT_IAT_WINDOW`], [`DEFAULT_IAT_FUTURE_SKEW`],
    /// [`DEFAULT_MAX_PROOF_BYTES`], a [`MemoryReplayCache`], no nonces.
    pub fn builder() -> ProofValidatorBuilder {
        ProofValidatorBuilder {
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            iat_window: DEFAULT_IAT_WINDOW,
            iat_future_skew: DEFAULT_IAT_FUTURE_SKEW,
            max_proof_bytes: DEFAULT_MAX_PROOF_BYTES,
            replay: None,
            nonces: None,
        }
    }

    /// The accepted algorithms, in configured order.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.inner.algorithms
    }

    /// The nonces, when the server requires them.
    pub fn nonces(&self) -> Option<&Nonces> {
        self.inner.nonces.as_ref()
    }

    /// The protected-resource metadata members for this validator;
    /// `required` when unbound tokens are refused. Pass them to
    /// [`ProtectedResourceBuilder::dpop_signing_alg_values_supported`](crate::metadata::ProtectedResourceBuilder::dpop_signing_alg_values_supported)
    /// and `dpop_bound_access_tokens_required`.
    pub fn metadata(&self, required: bool) -> super::DpopMetadata {
        super::DpopMetadata::new(&self.inner.algorithms, required)
    }

    /// The `WWW-Authenticate` challenge for a refusal: see [`challenge`](super::challenge).
    pub fn challenge(&self, error: Option<&ProofError>) -> String {
        super::challenge(&self.inner.algorithms, error)
    }

    /// Every check of RFC 9449 §4.3, the key binding included, then the
    /// replay check, at the current time.
    ///
    /// `proofs` are the request's `DPoP` header values
    /// (`headers.get_all("dpop")`); `method` the request's method;
    /// `public_htu` the URL the client addressed, as the public sees it
    /// (the configured public base URL plus the request path; query
    /// ignored); `access_token` the token of `Authorization: DPoP`;
    /// `binding` its `cnf.jkt` and its caller.
    ///
    /// Only a proof that passed every other check reaches the replay
    /// store, counted against its key and its caller: a stolen token with
    /// another key, or any bad proof, leaves nothing behind.
    ///
    /// # Errors
    ///
    /// The first failed check, as a [`ProofError`].
    pub async fn validate<'h>(
        &self,
        proofs: impl IntoIterator<Item = &'h HeaderValue>,
        method: &Method,
        public_htu: &str,
        access_token: &str,
        binding: Binding<'_>,
    ) -> Result<VerifiedProof, ProofError> {
        self.validate_at(
            proofs,
            method,
            public_htu,
            access_token,
            binding,
            unix_now(),
        )
        .await
    }

    /// [`validate`](Self::validate) at `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// The first failed check, as a [`ProofError`].
    pub async fn validate_at<'h>(
        &self,
        proofs: impl IntoIterator<Item = &'h HeaderValue>,
        method: &Method,
        public_htu: &str,
        access_token: &str,
        binding: Binding<'_>,
        now: u64,
    ) -> Result<VerifiedProof, ProofError> {
        let proof = self.verify_at(proofs, method, public_htu, access_token, now)?;
        proof.check_binding(binding.cnf_jkt)?;
        let key = ReplayKey::new(&proof.jkt, &proof.jti);
        let owner = ReplayOwner::new(&proof.jkt, binding.caller);
        self.inner
            .replay
            .insert_once(key, owner, now, proof.expires_at)
            .await?;
        Ok(proof)
    }

    /// Every stateless check of RFC 9449 §4.3 at `now` (Unix seconds):
    /// all of [`validate_at`](Self::validate_at) but the key binding and
    /// the replay check.
    ///
    /// # Errors
    ///
    /// The first failed check, as a [`ProofError`].
    pub fn verify_at<'h>(
        &self,
        proofs: impl IntoIterator<Item = &'h HeaderValue>,
        method: &Method,
        public_htu: &str,
        access_token: &str,
        now: u64,
    ) -> Result<VerifiedProof, ProofError> {
        use ProofErrorKind as K;
        let inner = &*self.inner;
        let mut proofs = proofs.into_iter();
        let proof = proofs.next().ok_or(K::Missing)?;
        if proofs.next().is_some() {
            return Err(K::Multiple.into());
        }
        if proof.len() > inner.max_proof_bytes {
            return Err(K::TooLarge.into());
        }
        let proof = proof.to_str().map_err(|_| K::Malformed)?;
        let mut parts = proof.split('.');
        let (Some(h64), Some(c64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(K::Malformed.into());
        };
        let header: RawHeader = decode_json(h64)?;

        // Header checks.
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
        {
            return Err(K::Type.into());
        }
        let alg = header
            .alg
            .as_deref()
            .and_then(|a| Algorithm::from_str(a).ok())
            .filter(|a| inner.algorithms.contains(a))
            .ok_or(K::Algorithm)?;
        if header.crit.is_some() {
            return Err(K::Critical.into());
        }
        let jwk = header.jwk.ok_or(K::MissingJwk)?;
        let jwk = public_jwk(&jwk, alg)?;

        // The signature, over the bytes as sent.
        let signing_input = &proof[..h64.len() + 1 + c64.len()];
        if s64.is_empty()
            || !jsonwebtoken::crypto::verify(s64, signing_input.as_bytes(), &jwk.key, alg)
                .unwrap_or(false)
        {
            return Err(K::Signature.into());
        }

        // Claims.
        let claims: RawClaims = decode_json(c64)?;
        let jti = claims
            .jti
            .as_ref()
            .and_then(Value::as_str)
            .ok_or(K::MissingClaim("jti"))?;
        if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
            return Err(K::InvalidJti.into());
        }
        let htm = claims
            .htm
            .as_ref()
            .and_then(Value::as_str)
            .ok_or(K::MissingClaim("htm"))?;
        if htm != method.as_str() {
            return Err(K::HtmMismatch.into());
        }
        let claimed_htu = claims
            .htu
            .as_ref()
            .and_then(Value::as_str)
            .ok_or(K::MissingClaim("htu"))?;
        let claimed_htu = htu::normalize(claimed_htu).ok_or(K::InvalidHtu)?;
        if htu::normalize(public_htu).as_deref() != Some(claimed_htu.as_str()) {
            return Err(K::HtuMismatch.into());
        }
        let iat = claims
            .iat
            .as_ref()
            .and_then(numeric_date)
            .ok_or(K::MissingClaim("iat"))?;
        if iat < now.saturating_sub(inner.iat_window) {
            return Err(K::IatTooOld.into());
        }
        if iat > now.saturating_add(inner.iat_future_skew) {
            return Err(K::IatInFuture.into());
        }
        let ath = claims
            .ath
            .as_ref()
            .and_then(Value::as_str)
            .ok_or(K::MissingAth)?;
        let expected_ath = URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()));
        if !bool::from(ath.as_bytes().ct_eq(expected_ath.as_bytes())) {
            return Err(K::AthMismatch.into());
        }
        if let Some(nonces) = &inner.nonces {
            let nonce = claims
                .nonce
                .as_ref()
                .and_then(Value::as_str)
                .ok_or(K::NonceMissing)?;
            if !nonces.check_at(nonce, now) {
                return Err(K::NonceInvalid.into());
            }
        }
        Ok(VerifiedProof {
            jkt: jwk.thumbprint,
            jti: jti.to_owned(),
            iat,
            algorithm: alg,
            expires_at: iat.saturating_add(inner.iat_window).saturating_add(1),
        })
    }
}

impl fmt::Debug for ProofValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofValidator")
            .field("algorithms", &self.inner.algorithms)
            .field("iat_window_secs", &self.inner.iat_window)
            .field("iat_future_skew_secs", &self.inner.iat_future_skew)
            .field("max_proof_bytes", &self.inner.max_proof_bytes)
            .field("nonces", &self.inner.nonces)
            .finish_non_exhaustive()
    }
}

impl ProofValidatorBuilder {
    /// The accepted signing algorithms (asymmetric only), in the order the
    /// challenge and the metadata list them.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How far in the past `iat` may be (default [`DEFAULT_IAT_WINDOW`]).
    /// A proof is remembered for replay until its `iat` is that old.
    pub fn iat_window(mut self, window: Duration) -> Self {
        self.iat_window = window;
        self
    }

    /// How far ahead of the server's clock `iat` may be (default
    /// [`DEFAULT_IAT_FUTURE_SKEW`], whole seconds): a small allowance for
    /// clock skew. A proof dated ahead is remembered that much longer, so
    /// keep it small; zero refuses any `iat` after the server's second.
    pub fn iat_future_skew(mut self, skew: Duration) -> Self {
        self.iat_future_skew = skew;
        self
    }

    /// The longest `DPoP` header value read (default
    /// [`DEFAULT_MAX_PROOF_BYTES`]).
    pub fn max_proof_bytes(mut self, bytes: usize) -> Self {
        self.max_proof_bytes = bytes;
        self
    }

    /// Where seen proofs are remembered (default a [`MemoryReplayCache`]).
    pub fn replay_cache(mut self, cache: impl ReplayCache) -> Self {
        self.replay = Some(Arc::new(cache));
        self
    }

    /// Requires a server nonce (RFC 9449 §8) checked by `nonces`.
    pub fn nonces(mut self, nonces: Nonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// The validator.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for no algorithm, an HMAC algorithm, a
    /// zero window or a proof bound under 256 bytes.
    pub fn build(self) -> Result<ProofValidator, ConfigError> {
        crate::jwt::install_crypto_provider();
        if self.algorithms.is_empty() {
            return Err(ConfigError::Invalid(
                "DPoP needs at least one signing algorithm".into(),
            ));
        }
        if self
            .algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(ConfigError::Invalid(
                "DPoP proofs must use asymmetric algorithms, not HMAC".into(),
            ));
        }
        let mut algorithms = self.algorithms;
        let mut seen = Vec::with_capacity(algorithms.len());
        algorithms.retain(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        });
        let iat_window = self.iat_window.as_secs();
        if iat_window == 0 {
            return Err(ConfigError::Invalid(
                "the DPoP iat window must be at least one second".into(),
            ));
        }
        if self.max_proof_bytes < 256 {
            return Err(ConfigError::Invalid(
                "the DPoP proof bound must be at least 256 bytes".into(),
            ));
        }
        Ok(ProofValidator {
            inner: Arc::new(Inner {
                algorithms,
                iat_window,
                iat_future_skew: self.iat_future_skew.as_secs(),
                max_proof_bytes: self.max_proof_bytes,
                replay: self
                    .replay
                    .unwrap_or_else(|| Arc::new(MemoryReplayCache::new())),
                nonces: self.nonces,
            }),
        })
    }
}

impl fmt::Debug for ProofValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofValidatorBuilder")
            .field("algorithms", &self.algorithms)
            .field("iat_window", &self.iat_window)
            .field("iat_future_skew", &self.iat_future_skew)
            .finish_non_exhaustive()
    }
}

/// What a proof must match besides the request: the access token's key
/// binding (its `cnf.jkt`, `None` for a token without one, which no proof
/// matches) and the caller the token was issued to, whom the replay store
/// counts the proof against (any string naming the caller, such as the
/// issuer and subject; the DPoP layer passes the [`Principal`]'s).
///
/// [`Principal`]: crate::Principal
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    cnf_jkt: Option<&'a str>,
    caller: &'a str,
}

impl<'a> Binding<'a> {
    /// The binding of a token with `cnf_jkt`, issued to `caller`.
    pub fn new(cnf_jkt: Option<&'a str>, caller: &'a str) -> Self {
        Self { cnf_jkt, caller }
    }
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    jkt: String,
    jti: String,
    iat: u64,
    algorithm: Algorithm,
    expires_at: u64,
}

impl VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key (base64url),
    /// what a bound token names in `cnf.jkt`.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The proof's `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat` (Unix seconds).
    pub fn iat(&self) -> u64 {
        self.iat
    }

    /// The proof's signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The first second at which the proof is no longer inside the window.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Checks the access token's binding (its `cnf.jkt`, `None` when the
    /// token has no `cnf.jkt`) against the proof's key, in constant time.
    ///
    /// # Errors
    ///
    /// [`ProofErrorKind::TokenNotBound`] for `None`,
    /// [`ProofErrorKind::KeyMismatch`] for another key.
    pub fn check_binding(&self, cnf_jkt: Option<&str>) -> Result<(), ProofError> {
        match cnf_jkt {
            None => Err(ProofErrorKind::TokenNotBound.into()),
            Some(jkt) if jkt_matches(&self.jkt, jkt) => Ok(()),
            Some(_) => Err(ProofErrorKind::KeyMismatch.into()),
        }
    }
}

#[derive(Deserialize)]
struct RawHeader {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<Map<String, Value>>,
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct RawClaims {
    jti: Option<Value>,
    htm: Option<Value>,
    htu: Option<Value>,
    iat: Option<Value>,
    ath: Option<Value>,
    nonce: Option<Value>,
}

/// A base64url JSON object; duplicate members of the fields read are
/// refused, and so is text that is not UTF-8 anywhere in it (RFC 8259
/// §8.1): `serde_json` reading bytes checks only the strings it keeps.
fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, ProofError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProofErrorKind::Malformed)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ProofErrorKind::Malformed)?;
    serde_json::from_str(text).map_err(|_| ProofErrorKind::Malformed.into())
}

/// A NumericDate (RFC 7519 §2): a non-negative number of seconds; a
/// fraction is dropped.
fn numeric_date(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15)
            .map(|f| f as u64)
    })
}
