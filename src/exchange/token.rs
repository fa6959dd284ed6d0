//! [`ExchangedToken`]: what an exchange issued.

use std::{fmt, sync::Arc};

use http::HeaderValue;
use secrecy::SecretString;
use tokio::time::Instant;

use crate::principal::Scopes;

/// A token issued by an exchange: for the downstream API, never the
/// caller's own. Cheap to clone. Its `Debug` shows no token.
#[derive(Clone)]
pub struct ExchangedToken(Arc<Issued>);

/// What the token endpoint issued.
pub(crate) struct Issued {
    pub(crate) token: SecretString,
    /// `Bearer <token>`, marked sensitive.
    pub(crate) header: HeaderValue,
    pub(crate) issued_token_type: Option<Box<str>>,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) scopes: Option<Scopes>,
}

impl fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangedToken")
            .field("issued_token_type", &self.0.issued_token_type)
            .field("expires_at", &self.0.expires_at)
            .field("scopes", &self.0.scopes)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl ExchangedToken {
    pub(crate) fn new(issued: Issued) -> Self {
        Self(Arc::new(issued))
    }

    /// `Bearer <token>`, marked sensitive: the `Authorization` value of a
    /// request to the downstream API.
    #[must_use]
    pub fn authorization(&self) -> HeaderValue {
        self.0.header.clone()
    }

    /// The issued access token.
    #[must_use]
    pub fn access_token(&self) -> &SecretString {
        &self.0.token
    }

    /// The `issued_token_type` the server named.
    #[must_use]
    pub fn issued_token_type(&self) -> Option<&str> {
        self.0.issued_token_type.as_deref()
    }

    /// When the token expires (from `expires_in`, on Tokio's clock), when
    /// the server said.
    #[must_use]
    pub fn expires_at(&self) -> Option<Instant> {
        self.0.expires_at
    }

    /// The scopes granted, when the server said (RFC 8693 §2.2.1: it says
    /// when they differ from those asked for).
    #[must_use]
    pub fn scopes(&self) -> Option<&Scopes> {
        self.0.scopes.as_ref()
    }
}
