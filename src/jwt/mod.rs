//! Bearer JWT validation: [`JwtValidator`] (keys and rules, built once) and
//! [`JwtLayer`] (the tower layer around it).
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use secrecy::SecretString;
//! use tower_mcp_auth::{Principal, ProtectedResource};
//! use tower_mcp_auth::jwt::{JwtLayer, JwtValidator};
//!
//! # fn main() -> Result<(), tower_mcp_auth::ConfigError> {
//! let resource = ProtectedResource::builder("https://mcp.example.com/mcp").build()?;
//! let validator = JwtValidator::builder(&resource)        // aud = the resource identifier
//!     .hs256_secret(&SecretString::from("0123456789abcdef0123456789abcdef"))
//!     .build()?;
//! // For an authorization server's tokens instead:
//! //   JwtValidator::builder(&resource).jwks_from_issuer("https://auth.example.com").build()?
//!
//! let app: Router = Router::new()
//!     .route("/whoami", get(|p: Principal| async move { p.name().to_owned() }))
//!     .layer(JwtLayer::new(validator))
//!     .layer(resource.layer()); // outermost: the challenge of every 401
//! # Ok(()) }
//! ```
//!
//! # Minting tokens for tests and login services
//!
//! [`Hs256Signer`] signs the HS256 tokens a validator with the same secret
//! accepts (audience, subject, client, scopes, issuer, lifetime, any other
//! claim), so your tests and a first-party login service sharing
//! `JWT_SECRET` need not call `jsonwebtoken` themselves. It is not an
//! authorization server: third-party clients get tokens from one.
//!
//! # The token
//!
//! Only `Authorization: Bearer <token>` is read (scheme name
//! case-insensitive, RFC 7235); never a query-string `access_token` (the MCP
//! authorization spec forbids it). A token longer than the size cap
//! (8 KiB by default) is refused before any parsing.
//!
//! # What is checked
//!
//! * The header: `alg` must be a JWS signature algorithm (never `none`),
//!   no `crit`, no duplicate member names, and, with
//!   [`require_at_jwt_type`](JwtValidatorBuilder::require_at_jwt_type),
//!   `typ: at+jwt` (RFC 9068).
//! * The key: picked by `kid` (or, without one, a key whose algorithm is the
//!   token's); each key is pinned to one algorithm, so a token whose `alg`
//!   differs from its key's is refused (no HS/RS confusion).
//! * The signature, then the claims: `exp` required (a number), `nbf` and
//!   `iat` checked with the leeway (default 30 s), `aud` required and must
//!   contain one of the audiences (by default the protected resource's
//!   identifier, RFC 8707), `iss` required and trusted when issuers are
//!   configured — a key pinned to an issuer ([`JwtKey::with_issuer`],
//!   [`jwks_issuer`](JwtValidatorBuilder::jwks_issuer),
//!   [`jwks_from_issuer`](JwtValidatorBuilder::jwks_from_issuer)) accepts
//!   only tokens from that issuer, so local HS256 tokens without `iss` and an
//!   authorization server's tokens can share one validator; a claim of the
//!   wrong type is refused; then your
//!   [`claim_check`](JwtValidatorBuilder::claim_check)s.
//!
//! The [`Principal`](crate::Principal) ([`AuthScheme::Jwt`](crate::AuthScheme::Jwt)) takes
//! its subject from `sub` (else `client_id` / `azp`), its client from
//! `client_id` (else `azp`), its scopes from `scope` (space separated) or
//! `scp` (array or string), its expiry from `exp`, and keeps the raw claims.
//!
//! # Refusals
//!
//! | case | status |
//! | --- | --- |
//! | no bearer token (required mode) | 401, challenge without error code |
//! | a bad JWT of any kind | 401 `invalid_token`, short safe description |
//! | remote keys never fetched (endpoint down) | 503, `Retry-After` |
//! | a `kid` not in the key set, which may not be fetched again yet | 503, `Retry-After` until it may |
//! | a `kid` not in the key set just fetched | 401 `invalid_token` |
//! | two `Authorization` headers; a bearer token on a request that already has a principal | 400 `invalid_request` |
//!
//! # Stacking with an introspection layer
//!
//! A bearer token that is not *JWT-shaped* — its first segment is not
//! base64url JSON and it does not have three dot-separated segments, as
//! with most opaque tokens — is refused with 401 `invalid_token`, in
//! [`optional`](JwtLayer::optional) mode too: a presented credential that
//! nobody verifies never passes as anonymous. To hand such tokens to an
//! introspection layer placed after this one, say so with
//! [`pass_opaque_tokens`](JwtLayer::pass_opaque_tokens): the request goes
//! on marked [`UnverifiedCredential`](crate::authenticate::UnverifiedCredential),
//! the introspection layer clears the mark when it verifies the token, and
//! the authorization steps (`McpPolicyLayer`, `AuthorizeLayer`, the
//! `Principal` extractors) refuse a request still marked with 401
//! `invalid_token`, so a stack that forgot the introspection layer still
//! fails closed. A JWT-shaped token that fails verification is always
//! 401: it never falls through to another layer, nor to anonymous.
//!
//! # Remote keys (feature `jwks`)
//!
//! Without the `jwks` feature (on by default) a validator has local keys
//! only and no HTTP client is compiled in. With it,
//! [`jwks_url`](JwtValidatorBuilder::jwks_url) or
//! [`jwks_from_issuer`](JwtValidatorBuilder::jwks_from_issuer) (RFC 8414,
//! then OpenID Connect Discovery, by the [rules of
//! discovery](crate::discovery#the-rules-of-discovery)) fetch the keys. Reads are lock-free; keys refresh in the
//! background; an unknown `kid` triggers at most one refetch per minimum
//! interval (5 s), shared by all the requests that ask; within the
//! interval such a token is answered 503 with `Retry-After` (the key may
//! be one the server has just started signing with: not known yet, not
//! invalid), so a freshly published key is refused for at most the
//! interval plus one fetch; a failed fetch
//! keeps the last good keys and emits an
//! `degraded` [audit](crate::audit) event; no keys ever fetched
//! means 503. Remote `oct` (HMAC) keys are ignored unless
//! [`jwks_allow_hmac`](JwtValidatorBuilder::jwks_allow_hmac).
//!
//! # Verified-token cache
//!
//! On by default: a SHA-256 digest of each accepted token (never the token)
//! maps to its principal for at most 60 s and never past `exp`; the cache is
//! emptied when the remote key set changes. A repeated RS256/ES256 token
//! then costs a hash and a lookup instead of a signature check. Turn it off
//! with [`no_token_cache`](JwtValidatorBuilder::no_token_cache).
//!
//! # Crypto backend
//!
//! jsonwebtoken's crypto comes from this crate's features: `aws-lc-rs`
//! (default) or `rust-crypto`; enabling `jwt` with neither is a compile
//! error. When both are enabled (as with `--all-features`), aws-lc-rs is
//! used: building a [`JwtValidator`] or a [`JwtKey`] installs it as
//! jsonwebtoken's process-wide provider (a provider installed before is
//! kept), so no request can hit jsonwebtoken's "no provider" panic. Code
//! that calls `jsonwebtoken::encode` itself before building a validator
//! should call [`install_crypto_provider`] first ([`Hs256Signer`] does).

#[cfg(all(
    feature = "jwt",
    not(any(feature = "aws-lc-rs", feature = "rust-crypto"))
))]
compile_error!(
    "tower-mcp-auth: the `jwt` feature needs a crypto backend: enable `aws-lc-rs` (the default) or `rust-crypto`"
);

mod builder;
mod cache;
mod error;
mod header;
#[cfg(feature = "jwks")]
mod jwks;
#[cfg(feature = "jwks")]
mod jwks_settings;
mod keys;
mod layer;
mod signer;
#[cfg(test)]
pub(crate) mod test_support;
mod validator;

pub use builder::{JwtValidatorBuilder, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, MAX_LEEWAY};
pub use error::{JwtError, JwtErrorKind};
pub use jsonwebtoken::Algorithm;
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub use jwks::{
    DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MIN_REFETCH_INTERVAL,
    DEFAULT_REFRESH_INTERVAL,
};
pub use keys::JwtKey;
pub use layer::{JwtAuthenticator, JwtLayer};
pub use signer::{Hs256Signer, Hs256TokenBuilder, DEFAULT_TOKEN_LIFETIME};
pub use validator::JwtValidator;

/// Installs this crate's chosen jsonwebtoken crypto provider (aws-lc-rs
/// when the `aws-lc-rs` feature is on, else RustCrypto) as jsonwebtoken's
/// process-wide default, unless one is installed already. Idempotent and
/// cheap; called by every validator and key constructor. Call it yourself
/// before using `jsonwebtoken` directly (for example to mint test tokens)
/// when both backend features may be enabled.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(feature = "aws-lc-rs")]
        let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
        #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
        let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        // Err means another provider was installed first: keep it.
        let _ = provider.install_default();
    });
}
