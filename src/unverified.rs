//! The mark on a credential that an authenticator handed on unverified:
//! core, so that the extractors and the authorization steps refuse it
//! without knowing the authenticators. Its public path is
//! `authenticate::UnverifiedCredential`.

use crate::{error::AuthError, principal::AuthScheme};

/// A credential that an authenticator found, did not verify, and handed on
/// to a later one (for example an opaque bearer token that
/// [`JwtLayer::pass_opaque_tokens`](crate::jwt::JwtLayer::pass_opaque_tokens)
/// leaves for an [`IntrospectionLayer`](crate::introspection::IntrospectionLayer)).
///
/// The [authenticator model](crate::authenticate) keeps it: an
/// authenticator whose verdict is
/// [`HandOn`](crate::authenticate::Verdict::HandOn) leaves this marker in
/// the request extensions, and a later one of the same kind (a bearer
/// authenticator for a bearer token) that accepts the credential removes
/// it as the [`Principal`](crate::Principal) is inserted. A request that still carries it when it
/// reaches an authorization step
/// ([`McpPolicyLayer`](crate::mcp::McpPolicyLayer),
/// [`Authorize`](crate::Authorize), the [`Principal`](crate::Principal) and
/// `Option<Principal>` extractors) is refused with 401 `invalid_token`: a
/// presented credential that no layer verifies never passes as anonymous,
/// however the stack is put together. An authenticator of your own takes
/// part through its verdicts, with nothing to do about the marker.
///
/// # Example
///
/// ```
/// use http::Extensions;
/// use tower_mcp_auth::authenticate::UnverifiedCredential;
///
/// let mut ext = Extensions::new();
/// ext.insert(UnverifiedCredential::new("jwt"));
/// assert_eq!(UnverifiedCredential::refusal(&ext).unwrap().status(), 401);
/// ext.remove::<UnverifiedCredential>(); // verified by a later layer
/// assert!(UnverifiedCredential::refusal(&ext).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnverifiedCredential {
    by: &'static str,
    bearer: bool,
}

impl UnverifiedCredential {
    /// A marker left on a bearer token by the layer named `by` (`"jwt"`, …).
    #[must_use]
    pub fn new(by: &'static str) -> Self {
        Self { by, bearer: true }
    }

    /// The marker an authenticator of `scheme` leaves on the credential it
    /// hands on.
    pub(crate) fn handed_on_by(scheme: AuthScheme) -> Self {
        Self {
            by: scheme.as_str(),
            bearer: scheme.is_bearer(),
        }
    }

    /// Whether an authenticator of `scheme` that accepts a credential
    /// verifies the one this marker is on: a bearer authenticator a bearer
    /// token, any other the credential of its own scheme.
    pub(crate) fn is_verified_by(&self, scheme: AuthScheme) -> bool {
        if self.bearer {
            scheme.is_bearer()
        } else {
            scheme.as_str() == self.by
        }
    }

    /// The layer that handed the credential on.
    #[must_use]
    pub fn by(&self) -> &'static str {
        self.by
    }

    /// The refusal for a request whose extensions still carry the marker
    /// (401 `invalid_token`, with the request's challenge and JSON-RPC id
    /// when known); `None` when they do not.
    #[must_use]
    pub fn refusal(extensions: &http::Extensions) -> Option<AuthError> {
        extensions.get::<Self>()?;
        Some(
            AuthError::invalid_token("no layer could verify the bearer token")
                .with_request_context(extensions),
        )
    }
}
