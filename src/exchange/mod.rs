//! Calling other APIs for the caller: OAuth 2.0 Token Exchange (RFC 8693).
//!
//! A token issued for this MCP server must not be sent anywhere else (the
//! MCP authorization specification forbids token passthrough). A tool that
//! calls another protected API for its caller exchanges the caller's token
//! at the authorization server for one issued for that API, and sends
//! that:
//!
//! 1. [`KeepSubjectTokenLayer`], below the bearer authenticators, keeps the
//!    caller's verified access token as a [`SubjectToken`] in the request's
//!    extensions: a value nobody can print or read but the exchanger.
//!    With `stack::McpAuth`, wrap the MCP service:
//!    `auth.router(KeepSubjectTokenLayer::new().layer(mcp))`.
//! 2. [`TokenExchanger`] exchanges it (`grant_type` token-exchange,
//!    `subject_token_type` access token, `resource` / `audience`, `scope`,
//!    an optional `actor_token`; `client_secret_basic` or
//!    `client_secret_post`; the token endpoint configured or
//!    [discovered](TokenExchanger::from_metadata)), caches the issued
//!    token per (caller's token digest, target) until shortly before it
//!    expires, makes one call for concurrent identical exchanges, and never
//!    waits past its deadline.
//! 3. A tool either asks for a header,
//!    [`authorization_for(&parts, "https://users.example.com")`](TokenExchanger::authorization_for),
//!    or sends its requests through an HTTP client wrapped in
//!    [`ExchangeLayer`], which adds the header to every request for a
//!    configured [`Downstream`] origin.
//!
//! A caller without an access token (an API key) has nothing to exchange:
//! [`ExchangeError::NoSubjectToken`]. Every exchange, refused or not, is an
//! [audit](crate::audit) event (layer `token_exchange`), never with a token.
//!
//! The downstream API must check that tokens are issued for it (`aud`):
//! this is what makes an exchanged token useless anywhere else, and the
//! caller's own token useless there.
//!
//! # Example
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use http::request::Parts;
//! use secrecy::SecretString;
//! use tower::ServiceBuilder;
//! use tower_mcp_auth::exchange::{ExchangeError, KeepSubjectTokenLayer, Target, TokenExchanger};
//! use tower_mcp_auth::jwt::{JwtLayer, JwtValidator};
//! use tower_mcp_auth::ProtectedResource;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
//!     .authorization_server("https://auth.example.com")
//!     .build()?;
//! let validator = JwtValidator::builder(&resource)
//!     .jwks_from_issuer("https://auth.example.com")
//!     .build()?;
//! let exchanger = TokenExchanger::builder(
//!     "https://auth.example.com/oauth/token",
//!     "mcp-server",
//!     SecretString::from(std::env::var("OAUTH_CLIENT_SECRET")?),
//! )
//! .build()?;
//!
//! let profile = move |parts: Parts| {
//!     let exchanger = exchanger.clone();
//!     async move {
//!         let target = Target::resource("https://users.example.com").scopes(["users:read"]);
//!         match exchanger.authorization_for(&parts, target).await {
//!             Ok(_authorization) => "send it to https://users.example.com".to_owned(),
//!             Err(e) => e.to_string(),
//!         }
//!     }
//! };
//! let app: Router = Router::new().route("/profile", get(profile)).layer(
//!     ServiceBuilder::new()
//!         .layer(resource.layer())
//!         .layer(JwtLayer::new(validator))
//!         .layer(KeepSubjectTokenLayer::new()),
//! );
//! # Ok(()) }
//! ```

mod cache;
mod error;
mod exchanger;
mod layer;
mod subject;
mod target;
mod token;

pub use error::{ExchangeError, OAuthErrorCode};
pub use exchanger::{
    TokenExchanger, TokenExchangerBuilder, ACCESS_TOKEN_TYPE, DEFAULT_CACHE_CAPACITY,
    DEFAULT_REFRESH_BEFORE, DEFAULT_TIMEOUT, GRANT_TYPE, JWT_TOKEN_TYPE, MAX_RESPONSE_BYTES,
};
pub use layer::{BoxError, Downstream, Exchange, ExchangeLayer, ResponseFuture};
pub use subject::{KeepSubjectToken, KeepSubjectTokenLayer, SubjectToken};
pub use target::Target;
pub use token::ExchangedToken;
