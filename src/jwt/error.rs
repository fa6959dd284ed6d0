//! [`JwtError`]: why a token was not accepted, and the refusal it becomes.

use std::{borrow::Cow, fmt, time::Duration};

use jsonwebtoken::errors::ErrorKind;

use crate::error::AuthError;

/// Why a token was not accepted.
///
/// [`is_not_jwt`](Self::is_not_jwt) tells a token that is not a JWT at all
/// (an opaque token, for a later introspection layer) from a JWT that
/// failed verification. Converts into an [`AuthError`]: 401
/// `invalid_token`, or 503 when no keys could ever be fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtError {
    kind: JwtErrorKind,
    description: Cow<'static, str>,
    retry_after: Option<Duration>,
}

/// What kind of [`JwtError`] it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtErrorKind {
    /// The token is not shaped like a JWT (its first segment is not a
    /// base64url JSON object and it does not have three segments).
    NotAJwt,
    /// A JWT that failed a check (signature, algorithm, claims, size).
    Invalid,
    /// The keys needed to decide could not be fetched, or the token names
    /// a key that is not known yet and the key set may not be fetched
    /// again yet (503 with `Retry-After`). Remote keys only (feature
    /// `jwks`): a validator of local keys always decides.
    Unavailable,
}

impl JwtError {
    pub(super) fn invalid(description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: JwtErrorKind::Invalid,
            description: description.into(),
            retry_after: None,
        }
    }

    pub(super) fn not_jwt() -> Self {
        Self {
            kind: JwtErrorKind::NotAJwt,
            description: "the bearer token is not a JWT".into(),
            retry_after: None,
        }
    }

    #[cfg(feature = "jwks")]
    pub(super) fn unavailable() -> Self {
        Self {
            kind: JwtErrorKind::Unavailable,
            description: "the token signing keys are not available yet".into(),
            retry_after: None,
        }
    }

    /// The token names a key that is not in the key set, and the set may
    /// be fetched again in `wait`: cannot decide yet (a key rotation the
    /// server has not seen), so not a bad token.
    #[cfg(feature = "jwks")]
    pub(super) fn key_not_known_yet(wait: Duration) -> Self {
        Self {
            kind: JwtErrorKind::Unavailable,
            description: "the token's signing key is not known yet; retry later".into(),
            retry_after: Some(wait),
        }
    }

    /// The kind.
    #[must_use]
    pub fn kind(&self) -> JwtErrorKind {
        self.kind
    }

    /// Whether the token is not a JWT at all (an opaque token).
    #[must_use]
    pub fn is_not_jwt(&self) -> bool {
        self.kind == JwtErrorKind::NotAJwt
    }

    /// The short, safe description (never contains the token).
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// How long until the validator may be able to decide, for an
    /// [`Unavailable`](JwtErrorKind::Unavailable) error that knows it (a
    /// key not known yet: the time until the key set may be fetched
    /// again).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl std::error::Error for JwtError {}

impl From<JwtError> for AuthError {
    fn from(e: JwtError) -> Self {
        match e.kind {
            JwtErrorKind::Unavailable => AuthError::unavailable(e.description)
                .with_retry_after(e.retry_after.unwrap_or(Duration::from_secs(5))),
            JwtErrorKind::NotAJwt | JwtErrorKind::Invalid => {
                AuthError::invalid_token(e.description)
            }
        }
    }
}

/// The error of a failed `jsonwebtoken` check, in our words.
pub(super) fn map_error(kind: &ErrorKind) -> JwtError {
    JwtError::invalid(match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidAudience => "the token is not for this resource",
        ErrorKind::InvalidIssuer => "the token's issuer is not trusted",
        ErrorKind::InvalidSignature => "the token's signature is not valid",
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key",
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "exp" => "the token's exp claim is missing or not a number",
            "aud" => "the token has no audience",
            "iss" => "the token has no issuer",
            _ => "the token lacks a required claim",
        },
        ErrorKind::InvalidClaimFormat(c) => match c.as_str() {
            "exp" => "the token's exp claim is missing or not a number",
            "nbf" => "the token's nbf claim is not a number",
            _ => "a claim of the token has the wrong type",
        },
        _ => "the token is malformed",
    })
}
