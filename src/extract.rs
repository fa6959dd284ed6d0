//! The [`Principal`] extractors (documented on [`Principal`]): apart from
//! the type, so that the core types depend on nobody.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::{
    challenge::Challenge, error::AuthError, principal::Principal, unverified::UnverifiedCredential,
};

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(err) = UnverifiedCredential::refusal(&parts.extensions) {
            return Err(err);
        }
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let mut err = AuthError::missing_credential();
        if let Some(challenge) = parts.extensions.get::<Challenge>() {
            err = err.with_challenge(challenge.clone());
        }
        Err(err.with_request_context(&parts.extensions))
    }
}

/// `Option<Principal>`: `None` for an anonymous request; a request that
/// carries a credential no layer verified ([`UnverifiedCredential`]) is
/// refused with 401 rather than passed to the handler as anonymous.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match UnverifiedCredential::refusal(&parts.extensions) {
            Some(err) => Err(err),
            None => Ok(parts.extensions.get::<Principal>().cloned()),
        }
    }
}
