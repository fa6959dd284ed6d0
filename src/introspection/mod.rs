//! OAuth 2.0 token introspection (RFC 7662): [`Introspector`] and
//! [`IntrospectionLayer`], for opaque access tokens that only the
//! authorization server can read.
//!
//! The layer takes the token from `Authorization: Bearer` (scheme name
//! case-insensitive, RFC 6750 `b64token` syntax, at most
//! [`DEFAULT_MAX_TOKEN_LEN`] bytes by default), asks the introspection
//! endpoint about it through the [`oauth2`] crate's RFC 7662 client
//! (`token_type_hint=access_token`, `client_secret_basic` by default or
//! `client_secret_post`), and inserts a [`Principal`](crate::Principal)
//! with [`AuthScheme::Introspection`](crate::AuthScheme::Introspection):
//! subject from `sub` (else `username`, else `client_id`), `client_id`,
//! `scope`, `exp`, and the whole response as raw claims.
//!
//! | the server says / the endpoint does | answer |
//! | --- | --- |
//! | `active: true`, audience and `exp` fine | passes on with the principal |
//! | `active: false` | 401 `invalid_token` |
//! | `active: true` but `exp` past | 401 `invalid_token` |
//! | `aud` missing, or without the resource identifier, or no audience configured ([`AudienceCheck::Required`], the default) | 401 `invalid_token` |
//! | `active: true` but a `token_type` that is not an access token (`refresh_token`, `id_token`, `N_A`, …) | 401 `invalid_token` |
//! | down, slower than the timeout (5 s), refuses our client credentials, or answers garbage | 503 with `Retry-After`, audit events `degraded` and `refused` |
//!
//! It never lets a request through because the endpoint could not answer.
//!
//! Responses are parsed by oauth2's `StandardTokenIntrospectionResponse`,
//! which requires `active` to be a JSON boolean, `scope` a string, and
//! `exp` / `iat` / `nbf` integers; a server that sends a fractional
//! NumericDate (which RFC 7519 allows) or a non-JSON content type (such as
//! RFC 9701 JWT responses) is treated as answering garbage: 503.
//!
//! # Cache and single flight
//!
//! Results are cached in a bounded cache keyed by the SHA-256 digest of the
//! token (never the token itself): an active result for min(`exp`, 60 s),
//! an inactive one for 5 s, so a flood of one bad token reaches the server
//! once. Concurrent requests carrying the same uncached token share one
//! introspection call. `exp` and the audience are checked on every use, so
//! a cached token stops working the second it expires. For strict
//! revocation turn the cache off ([`IntrospectorBuilder::no_cache`]).
//!
//! # Stacking with `JwtLayer`
//!
//! A server that accepts both JWT access tokens and opaque ones stacks the
//! JWT layer **outside** (before) this one, and tells it to hand opaque
//! tokens on:
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(JwtLayer::new(validator).optional().pass_opaque_tokens()) // JWT-shaped: verified
//!     .layer(IntrospectionLayer::new(introspector)) // no Principal yet: introspect
//!     .service(mcp)
//! ```
//!
//! The JWT layer marks the request it hands on
//! ([`UnverifiedCredential`](crate::authenticate::UnverifiedCredential)); this
//! layer clears the mark when it verifies the token.
//!
//! When a request reaches this layer with a [`Principal`](crate::Principal)
//! already in its extensions, the bearer token it carries is the one the
//! JWT layer verified, and it passes on without an introspection call. A
//! principal from an API key together with a bearer token is two
//! credentials: 400 `invalid_request`. The other order (introspection
//! outside) would send every JWT to the authorization server.
//!
//! # Example
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use secrecy::SecretString;
//! use tower_mcp_auth::{
//!     introspection::{IntrospectionLayer, Introspector},
//!     Principal, ProtectedResource,
//! };
//!
//! # fn run() -> Result<(), tower_mcp_auth::ConfigError> {
//! let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
//!     .authorization_server("https://auth.example.com")
//!     .build()?;
//!
//! let introspector = Introspector::builder(
//!     "https://auth.example.com/oauth2/introspect",
//!     "mcp-server",
//!     SecretString::from("client-secret"),
//! )
//! .audience(resource.resource()) // `aud` must name this resource
//! .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/mcp", post(|p: Principal| async move { p.name().to_owned() }))
//!     .layer(IntrospectionLayer::new(introspector))
//!     .layer(resource.layer()) // outermost: every refusal's challenge
//!     .merge(resource.router());
//! # Ok(()) }
//! ```

mod cache;
mod discovered;
mod introspector;
mod layer;

pub use introspector::{
    AudienceCheck, ClientAuth, Introspector, IntrospectorBuilder, DEFAULT_CACHE_CAPACITY,
    DEFAULT_CACHE_TTL, DEFAULT_INACTIVE_TTL, DEFAULT_RETRY_AFTER, DEFAULT_TIMEOUT, ENV_CLIENT_ID,
    ENV_CLIENT_SECRET, ENV_INTROSPECTION_URL, MAX_RESPONSE_BYTES,
};
pub use layer::{IntrospectionAuthenticator, IntrospectionLayer, DEFAULT_MAX_TOKEN_LEN};
