//! API keys: the [`ApiKeys`] store and the [`ApiKeyLayer`] that checks them.
//!
//! Keys are read from `X-API-Key` (or another header,
//! [`header`](ApiKeyLayer::header)) and from `Authorization: ApiKey <key>`
//! (turned off with [`authorization_scheme(false)`](ApiKeyLayer::authorization_scheme));
//! never from the query string. A key anywhere else (another header, the
//! query, `Authorization: Basic`) is no credential to this layer: see
//! [`FailedAuthLayer`](crate::rate_limit::failed_auth::FailedAuthLayer)
//! for what counts as a failed login. Only a
//! SHA-256 digest of each key is kept in memory, in a map keyed by that
//! digest: a presented key is hashed once and looked up, so checking it
//! costs the same with one key or a hundred thousand. The key's name
//! becomes the [`Principal`](crate::Principal)'s subject.
//!
//! # Timing
//!
//! The lookup's timing depends only on the digest of the presented key
//! (and its comparison with a stored digest is constant time). An attacker
//! learns at most something about the SHA-256 digest of a string they
//! chose; to turn that into a valid key they would need a preimage of a
//! stored digest, which SHA-256 does not give. See SECURITY.md.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};
//! use tower_mcp_auth::Principal;
//!
//! let keys = ApiKeys::new()
//!     .with(ApiKey::new("billing-service", "mcp_sk_billing-0123456789abcdef").scopes(["read:data"]))
//!     .with(ApiKey::new("admin", "mcp_sk_admin-0123456789abcdef0123"));
//!
//! let app: Router = Router::new()
//!     .route("/whoami", get(|p: Principal| async move { p.name().to_owned() }))
//!     .layer(ApiKeyLayer::new(keys));
//! ```
//!
//! # Rotation and reload
//!
//! Several keys may share a name (old and new during a rotation). Clones of
//! an [`ApiKeys`] share one key set, swapped atomically:
//! [`ApiKeys::reload_digest_file`] and [`ApiKeys::replace`] take effect for
//! the very next request, with no restart and no lock on the request path.
//! A request sees either the old set or the new one, never a mix; the new
//! set is built before the swap, and the old one is freed by the thread
//! that swapped it out (or, while requests are still reading it, by a
//! short-lived thread once they are done), not by a request.

mod authenticator;
mod digest_file;
mod env;
mod retire;
mod store;

pub use authenticator::{ApiKeyAuthenticator, ApiKeyLayer, DEFAULT_HEADER};
pub use store::{ApiKey, ApiKeys, KEY_PREFIX, MIN_KEY_LEN};

/// Keys the tests of this module's files share.
#[cfg(test)]
mod test_keys {
    pub(super) const KEY_A: &str = "mcp_sk_aaaaaaaaaaaaaaaaaaaaaaaa";
    pub(super) const KEY_B: &str = "mcp_sk_bbbbbbbbbbbbbbbbbbbbbbbb";
}
