//! [`ExchangeError`]: why no token for the downstream API could be had.

use std::fmt;

use crate::error::{JSONRPC_FORBIDDEN, JSONRPC_UNAUTHORIZED, JSONRPC_UNAVAILABLE};

/// An OAuth error code of a refused token exchange (RFC 6749 §5.2, RFC
/// 8693 §2.2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`: the request is malformed.
    InvalidRequest,
    /// `invalid_client`: this server's client authentication failed.
    InvalidClient,
    /// `invalid_grant`: the caller's token is not valid for an exchange
    /// (expired, revoked, or not one the server exchanges).
    InvalidGrant,
    /// `unauthorized_client`: this client may not use token exchange.
    UnauthorizedClient,
    /// `unsupported_grant_type`: the server does not do token exchange.
    UnsupportedGrantType,
    /// `invalid_scope`: a requested scope is not allowed.
    InvalidScope,
    /// `invalid_target`: the server will not issue a token for this
    /// resource or audience (RFC 8693 §2.2.2).
    InvalidTarget,
    /// Any other code, as sent (at most
    /// [`MAX_FIELD_BYTES`](crate::audit::MAX_FIELD_BYTES)).
    Other(Box<str>),
}

impl OAuthErrorCode {
    /// The code as it is written on the wire.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::Other(code) => code,
        }
    }

    /// The code for a metric label: one of a fixed set (`other` for a code
    /// this crate does not name).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::Other(_) => "other",
        }
    }

    pub(crate) fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_target" => Self::InvalidTarget,
            other => Self::Other(crate::audit::bounded(other).into()),
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no token for the downstream API could be had. Its text never
/// carries a token or a secret, so a tool may hand it to its client as a
/// JSON-RPC error ([`json_rpc_code`](Self::json_rpc_code); with the `rmcp`
/// feature, `?` turns it into an `rmcp::ErrorData`).
///
/// # Example
///
/// ```
/// use tower_mcp_auth::exchange::ExchangeError;
///
/// let e = ExchangeError::NoSubjectToken;
/// assert_eq!(e.json_rpc_code(), tower_mcp_auth::JSONRPC_UNAUTHORIZED);
/// assert!(e.to_string().contains("access token"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The request carries no token to exchange: the caller used an API
    /// key (or another credential that is not an OAuth access token), or
    /// no [`KeepSubjectTokenLayer`](super::KeepSubjectTokenLayer) runs
    /// below the bearer authenticators.
    #[error("this call needs the caller's OAuth access token, and the caller sent none (an API key cannot be exchanged)")]
    NoSubjectToken,
    /// The authorization server refused the exchange.
    #[error("the authorization server refused the token exchange: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// Its OAuth error code.
        code: OAuthErrorCode,
        /// Its `error_description`, when sent (at most
        /// [`MAX_FIELD_BYTES`](crate::audit::MAX_FIELD_BYTES)).
        description: Option<Box<str>>,
    },
    /// The authorization server could not be reached in time, or answered
    /// something that is not a usable token response (the detail says
    /// what, never with a token).
    #[error("the token exchange service is unavailable: {0}")]
    Unavailable(Box<str>),
}

impl ExchangeError {
    /// The JSON-RPC error code for a tool's answer: [`JSONRPC_UNAUTHORIZED`]
    /// for a caller with nothing to exchange, [`JSONRPC_FORBIDDEN`] for an
    /// exchange refused for this caller or target (`invalid_grant`,
    /// `invalid_scope`, `invalid_target`), [`JSONRPC_UNAVAILABLE`] for the
    /// rest (the server down, or this server's own client refused: its
    /// configuration, not the caller's fault).
    #[must_use]
    pub fn json_rpc_code(&self) -> i64 {
        match self {
            Self::NoSubjectToken => JSONRPC_UNAUTHORIZED,
            Self::Refused {
                code:
                    OAuthErrorCode::InvalidGrant
                    | OAuthErrorCode::InvalidScope
                    | OAuthErrorCode::InvalidTarget,
                ..
            } => JSONRPC_FORBIDDEN,
            Self::Refused { .. } | Self::Unavailable(_) => JSONRPC_UNAVAILABLE,
        }
    }

    /// The OAuth error code, when the server refused.
    #[must_use]
    pub fn oauth_code(&self) -> Option<&OAuthErrorCode> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[cfg(feature = "rmcp")]
impl From<ExchangeError> for ::rmcp::ErrorData {
    fn from(e: ExchangeError) -> Self {
        ::rmcp::ErrorData::new(
            ::rmcp::model::ErrorCode(e.json_rpc_code() as i32),
            e.to_string(),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_bounded() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "invalid_target",
        ] {
            let parsed = OAuthErrorCode::parse(code);
            assert_eq!((parsed.as_str(), parsed.label()), (code, code));
        }
        let long = "x".repeat(10_000);
        let other = OAuthErrorCode::parse(&long);
        assert_eq!(other.label(), "other");
        assert!(other.as_str().len() < 400);
    }

    #[test]
    fn json_rpc_codes() {
        let refused = |code| ExchangeError::Refused {
            code,
            description: None,
        };
        assert_eq!(
            refused(OAuthErrorCode::InvalidTarget).json_rpc_code(),
            JSONRPC_FORBIDDEN
        );
        assert_eq!(
            refused(OAuthErrorCode::InvalidClient).json_rpc_code(),
            JSONRPC_UNAVAILABLE
        );
        assert_eq!(
            ExchangeError::Unavailable("down".into()).json_rpc_code(),
            JSONRPC_UNAVAILABLE
        );
        let e = ExchangeError::Refused {
            code: OAuthErrorCode::InvalidScope,
            description: Some("no".into()),
        };
        assert_eq!(
            e.to_string(),
            "the authorization server refused the token exchange: invalid_scope (no)"
        );
    }
}
