//! [`ProofError`]: why a DPoP proof was refused, with the RFC 9449 error
//! code and the HTTP status the layer answers with.

use std::fmt;

use http::StatusCode;

/// What is wrong with a DPoP proof (or the server's means to check it).
///
/// Each check of RFC 9449 §4.3 has its own kind, so tests and audit logs
/// can tell them apart; the [`Display`](fmt::Display) text is short, fixed
/// and never repeats the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofErrorKind {
    /// No `DPoP` header.
    Missing,
    /// More than one `DPoP` header value.
    Multiple,
    /// The header value is longer than the configured bound.
    TooLarge,
    /// Not a compact JWS (three base64url parts with JSON header and claims).
    Malformed,
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` is missing, `none`, symmetric or not in the configured list.
    Algorithm,
    /// The header has a `crit` parameter (no extension is understood).
    Critical,
    /// No `jwk` in the header.
    MissingJwk,
    /// The `jwk` carries private key members.
    PrivateJwk,
    /// The `jwk` is not a well-formed public key of the type `alg` needs.
    InvalidJwk,
    /// The signature does not verify with the `jwk`.
    Signature,
    /// A required claim (`jti`, `htm`, `htu`, `iat`) is missing or has the wrong type.
    MissingClaim(&'static str),
    /// `jti` is empty or longer than the bound.
    InvalidJti,
    /// `htm` is not the request's method.
    HtmMismatch,
    /// `htu` is not an http(s) URL this crate can normalise.
    InvalidHtu,
    /// `htu` is not the request's public URL.
    HtuMismatch,
    /// `iat` is older than the window.
    IatTooOld,
    /// `iat` is further in the future than the window.
    IatInFuture,
    /// No `ath` although the request carries an access token.
    MissingAth,
    /// `ath` is not the hash of the access token.
    AthMismatch,
    /// The server requires a nonce and the proof has none.
    NonceMissing,
    /// The nonce is not one the server issued in the current or previous window.
    NonceInvalid,
    /// This proof (`jti` under this key) was already used.
    Replayed,
    /// The proof's key is not the key the access token is bound to.
    KeyMismatch,
    /// The access token is not bound to a key (no `cnf.jkt`) but came with the `DPoP` scheme.
    TokenNotBound,
    /// The in-memory replay cache is full: refused (fail closed).
    ReplayCacheFull,
    /// The replay store (Redis) could not answer: refused (fail closed).
    ReplayStoreUnavailable,
    /// The caller (principal) or the key already holds its share of the
    /// replay store's live proofs: this caller is throttled (429), nobody
    /// else.
    ReplayQuotaExceeded,
}

/// A refused DPoP proof; see [`ProofErrorKind`].
///
/// # Example
///
/// ```
/// use tower_mcp_auth::dpop::{ProofError, ProofErrorKind};
///
/// let e = ProofError::new(ProofErrorKind::HtmMismatch);
/// assert_eq!(e.error_code(), Some("invalid_dpop_proof"));
/// assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
/// assert_eq!(e.to_string(), "DPoP proof htm does not match the request method");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofError {
    kind: ProofErrorKind,
}

impl ProofError {
    /// An error of `kind`.
    pub fn new(kind: ProofErrorKind) -> Self {
        Self { kind }
    }

    /// Which check failed.
    pub fn kind(&self) -> ProofErrorKind {
        self.kind
    }

    /// The RFC 9449 error code for the `WWW-Authenticate` challenge:
    /// `use_dpop_nonce` (§8, §9) for a missing or stale nonce,
    /// `invalid_token` for a token that is not DPoP-bound,
    /// `invalid_dpop_proof` (§7.1) for every other proof failure, and
    /// `None` for the server-side failures (a full replay cache, an
    /// unreachable store) and the throttle (a caller over its share of the
    /// replay store), which are not a bad proof.
    pub fn error_code(&self) -> Option<&'static str> {
        use ProofErrorKind as K;
        match self.kind {
            K::NonceMissing | K::NonceInvalid => Some("use_dpop_nonce"),
            K::TokenNotBound => Some("invalid_token"),
            K::ReplayCacheFull | K::ReplayStoreUnavailable | K::ReplayQuotaExceeded => None,
            _ => Some("invalid_dpop_proof"),
        }
    }

    /// The HTTP status: `503` when the server cannot decide (replay cache
    /// full or store down), `429` for a caller or key over its share of the
    /// replay store, `401` otherwise.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ProofErrorKind::ReplayCacheFull | ProofErrorKind::ReplayStoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProofErrorKind::ReplayQuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// Whether the client should retry with the nonce the server sends in
    /// `DPoP-Nonce`.
    pub fn is_nonce_error(&self) -> bool {
        self.error_code() == Some("use_dpop_nonce")
    }

    /// The fixed message (also the `error_description`): no quote, no
    /// backslash, nothing from the request.
    pub fn message(&self) -> &'static str {
        use ProofErrorKind as K;
        match self.kind {
            K::Missing => "missing DPoP proof",
            K::Multiple => "more than one DPoP proof",
            K::TooLarge => "DPoP proof too large",
            K::Malformed => "DPoP proof is not a well-formed JWT",
            K::Type => "DPoP proof typ must be dpop+jwt",
            K::Algorithm => "DPoP proof alg is not accepted",
            K::Critical => "DPoP proof has unsupported critical header parameters",
            K::MissingJwk => "DPoP proof has no jwk header",
            K::PrivateJwk => "DPoP proof jwk contains private key material",
            K::InvalidJwk => "DPoP proof jwk is not a valid public key for its alg",
            K::Signature => "DPoP proof signature is invalid",
            K::MissingClaim("jti") => "DPoP proof has no jti claim",
            K::MissingClaim("htm") => "DPoP proof has no htm claim",
            K::MissingClaim("htu") => "DPoP proof has no htu claim",
            K::MissingClaim("iat") => "DPoP proof has no iat claim",
            K::MissingClaim(_) => "DPoP proof lacks a required claim",
            K::InvalidJti => "DPoP proof jti is empty or too long",
            K::HtmMismatch => "DPoP proof htm does not match the request method",
            K::InvalidHtu => "DPoP proof htu is not a valid http(s) URL",
            K::HtuMismatch => "DPoP proof htu does not match the request URL",
            K::IatTooOld => "DPoP proof iat is too old",
            K::IatInFuture => "DPoP proof iat is in the future",
            K::MissingAth => "DPoP proof has no ath claim",
            K::AthMismatch => "DPoP proof ath does not match the access token",
            K::NonceMissing => "DPoP proof must carry the server nonce",
            K::NonceInvalid => "DPoP proof nonce is stale or invalid",
            K::Replayed => "DPoP proof was already used",
            K::KeyMismatch => "DPoP proof key does not match the token binding",
            K::TokenNotBound => "access token is not DPoP-bound",
            K::ReplayCacheFull => "DPoP replay cache is full",
            K::ReplayStoreUnavailable => "DPoP replay store is unavailable",
            K::ReplayQuotaExceeded => "too many live DPoP proofs for this caller or key",
        }
    }
}

impl From<ProofErrorKind> for ProofError {
    fn from(kind: ProofErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ProofError {}
