//! Composable [`tower`](https://docs.rs/tower) layers that put real authentication, authorization
//! and rate limiting in front of an MCP server speaking Streamable HTTP
//! (rmcp's `StreamableHttpService` first of all), or any axum route.
//!
//! Each layer does one job and inserts or reads one [`Principal`] in the
//! request extensions. A request goes through them in this order, the
//! only one that protects fully, which `stack::McpAuth` (features `mcp`,
//! `rate-limit`) assembles from one builder:
//!
//! | # | layer | job |
//! | --- | --- | --- |
//! | 0 | [`ProtectedResource::layer`] | every refusal below carries the `resource_metadata` challenge ([`ProtectedResource::router`]: the RFC 9728 metadata beside it) |
//! | 1 | `rate_limit::failed_auth::FailedAuthLayer` | an address that keeps sending bad credentials is refused with 429 for a while |
//! | 2 | [`ApiKeyLayer`](api_key::ApiKeyLayer) | `X-API-Key` (or `Authorization: ApiKey`) against an [`ApiKeys`](api_key::ApiKeys) set |
//! | 2 | `jwt::JwtLayer` (feature `jwt`) | `Authorization: Bearer` JWTs: static keys, or a remote JWKS (feature `jwks`); DPoP-bound tokens with `.dpop(..)` (feature `dpop`) |
//! | 2 | `introspection::IntrospectionLayer` (feature `introspection`) | opaque bearer tokens by RFC 7662 introspection, cached, single flight; DPoP as above |
//! | 2 | [`AuthenticateLayer::custom`](authenticate::AuthenticateLayer::custom) | your own [`Authenticator`](authenticate::Authenticator) (a client certificate, a signed header) |
//! | 3 | `mcp::McpPolicyLayer` | per-tool / per-resource rules on one MCP endpoint, step-up 403s, list filtering |
//! | 3 | [`AuthorizeLayer`] | a [`Rule`] on a plain route ("an API key, or a bearer token with `admin:write`"), the rule language of the MCP policy |
//! | 4 | `rate_limit::RateLimitLayer` | per principal (per address when anonymous), with the policy's quotas and costs |
//! | 5 | `mcp::session::SessionBindingLayer` | a Streamable HTTP session (2025-11-25) belongs to the principal that opened it |
//! | 5 | `mcp::handles::HandleBindingLayer` | a `requestState` and a task id (2026-07-28) belong to their caller |
//! | 5 | `exchange::KeepSubjectTokenLayer` (feature `token-exchange`) | keeps the verified caller token, so that a tool calls another API with a token exchanged for it (RFC 8693: `exchange::TokenExchanger`, or `exchange::ExchangeLayer` on an outbound client), never the caller's own |
//! | 6 | the MCP service | rmcp's `StreamableHttpService`, or any tower service |
//!
//! The source files show the tiers: the core every layer shares
//! (`principal`, `error`, `challenge`, `jsonrpc_id`, `refusal`, `rule`,
//! `scope_hierarchy`, `bearer`, `extract`, `config`, `audit`) imports no
//! layer (`scripts/module-graph` checks it); the layers (`api_key`,
//! `authenticate`, `jwt`, `introspection`, `dpop`, `mcp`, `rate_limit`,
//! `resource`, `authorize`, `exchange`) build on it; `stack` composes them.
//!
//! The three authenticators are one [model](authenticate): one layer, one
//! service and one future run an [`Authenticator`](authenticate::Authenticator)
//! and own the steps every scheme shares (optional, two credentials,
//! already authenticated, the refusal with its challenge, the audit event,
//! sensitive headers, the principal, handing a credential on).
//!
//! # One path per item
//!
//! Every public item has one path. The core that every layer shares sits at
//! the crate root and only there: [`Principal`], [`AuthScheme`],
//! [`CustomScheme`], [`Scopes`], [`AuthError`] with [`AuthErrorKind`],
//! [`Challenge`] with [`ExtraChallenge`], [`JsonRpcId`], [`ErrorRenderer`] and the `JSONRPC_*`
//! codes, [`ConfigError`] with [`secret_from_env`] and
//! [`optional_secret_from_env`], [`ProtectedResource`] with its builder and
//! [`ProtectedResourceLayer`], [`Rule`] with [`AuthorizeLayer`] (whose future is
//! [`future::ResponseFuture`]), and [`ScopeHierarchy`] with its builder. Each layer's items sit in that layer's
//! module only, as in tower-http: [`api_key::ApiKeyLayer`],
//! [`authenticate::AuthenticateLayer`], `jwt::JwtLayer`,
//! `introspection::IntrospectionLayer`, `mcp::McpPolicyLayer`,
//! `rate_limit::RateLimitLayer`, `dpop`, `discovery`, [`audit`]. A module
//! holds at most one `ResponseFuture`, so where a feature has a second layer
//! it has its own module: `mcp::session::SessionBindingLayer`,
//! `rate_limit::failed_auth::FailedAuthLayer`. Nothing is re-exported at a
//! second path.
//!
//! Names follow tower-http: a layer `FooLayer` makes the service `Foo`
//! (`RateLimitLayer` → `RateLimit`, `AuthenticateLayer` → `Authenticate`),
//! and each module's future is its `ResponseFuture`. Where `Foo` already
//! names the data the layer carries, a type users build and share, the
//! service is `FooService` instead: `mcp::McpPolicyLayer` carries an
//! `McpPolicy` and makes an `McpPolicyService`; [`ProtectedResourceLayer`]
//! carries a [`ProtectedResource`] and makes a [`ProtectedResourceService`].
//! Renaming the data to free the name would rename the two types users
//! write most for a service type they never write.
//!
//! Refusals are [`AuthError`]s: the right status, an RFC 6750
//! `WWW-Authenticate: Bearer` challenge carrying `resource_metadata`, and a
//! JSON (or JSON-RPC) body that never echoes a credential. Every decision
//! is an [audit] event.
//!
//! # Quick start
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use tower::ServiceBuilder;
//! use tower_mcp_auth::api_key::{ApiKeyLayer, ApiKeys};
//! use tower_mcp_auth::{Principal, ProtectedResource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
//!     .authorization_server("https://auth.example.com")
//!     .scopes_supported(["read:data", "write:data"])
//!     .build()?;
//!
//! let mcp = Router::new().route(
//!     "/",
//!     post(|p: Principal| async move { format!("hello {}", p.name()) }),
//! );
//!
//! let app = Router::new()
//!     .merge(resource.router())
//!     .nest_service(
//!         "/mcp",
//!         ServiceBuilder::new()
//!             .layer(resource.layer()) // every refusal names the metadata
//!             .layer(ApiKeyLayer::new(ApiKeys::from_env("API_KEY")?))
//!             .service(mcp),
//!     );
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `jwt` | yes | bearer JWT validation (jsonwebtoken) with local keys: HS256 secrets, PEM, JWK; no HTTP client |
//! | `jwks` | yes | remote keys for `jwt`: a JWKS URL or an issuer's (RFC 8414 / OpenID metadata discovery), on reqwest (implies `jwt`) |
//! | `aws-lc-rs` | yes | jsonwebtoken's crypto on aws-lc-rs |
//! | `rust-crypto` | no | jsonwebtoken's crypto on the RustCrypto crates |
//! | `mcp` | yes | MCP-aware authorization: [`mcp::McpPolicyLayer`], [`mcp::session::SessionBindingLayer`] (hmac) |
//! | `rate-limit` | yes | `rate_limit`: per-principal rate limiting (governor), failed-auth throttling |
//! | `redis` | no | a Redis store for the rate limiter, shared by replicas (implies `rate-limit`) |
//! | `metrics` | no | every decision counted on the `metrics` facade: `tower_mcp_auth_decisions_total` by layer, outcome and reason (see [audit]) |
//! | `dpop` | yes | DPoP (RFC 9449, SEP-1932): `.dpop(..)` on the JWT and introspection layers, proof validation, replay caches, nonces: `dpop` (implies `jwt`; hmac) |
//! | `introspection` | yes | RFC 7662 introspection (oauth2, moka), RFC 8414 / OpenID metadata discovery |
//! | `rmcp` | no | `caller: Principal` as an rmcp `#[tool]` parameter, `rmcp::caller(&ctx)` for other handlers (adds rmcp's `server` part) |
//! | `token-exchange` | no | RFC 8693 token exchange: a tool calls another API with a token issued for it, never the caller's (`exchange`; implies `introspection`) |
//! | `toml` | no | policy files in TOML (`mcp::McpPolicy::from_file`; JSON needs no feature) |
//! | `full` | no | everything |
//!
//! API keys plus HS256 (or PEM) tokens need only
//! `default-features = false, features = ["jwt", "aws-lc-rs"]` (or
//! `"rust-crypto"`): no HTTP client is compiled in.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api_key;
pub mod audit;
pub mod authenticate;
mod authorize;
mod bearer;
mod budget;
mod challenge;
mod config;
#[cfg(any(feature = "jwks", feature = "introspection"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "jwks", feature = "introspection"))))]
pub mod discovery;
mod dns_rebinding;
#[cfg(feature = "dpop")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
pub mod dpop;
mod error;
#[cfg(feature = "token-exchange")]
#[cfg_attr(docsrs, doc(cfg(feature = "token-exchange")))]
pub mod exchange;
mod extract;
#[cfg(any(feature = "jwks", feature = "introspection"))]
mod fetch;
pub mod future;
mod fx_hash;
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub mod introspection;
mod jsonrpc_id;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub mod jwt;
mod macros;
#[cfg(feature = "mcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "mcp")))]
pub mod mcp;
mod metadata;
#[cfg(any(feature = "mcp", feature = "rate-limit"))]
mod misorder;
mod principal;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub mod rate_limit;
#[cfg(feature = "redis")]
mod redis_connection;
mod refusal;
mod resource;
#[cfg(feature = "rmcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "rmcp")))]
pub mod rmcp;
mod rule;
mod scope_hierarchy;
#[cfg(all(feature = "mcp", feature = "rate-limit"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "mcp", feature = "rate-limit"))))]
pub mod stack;
mod unverified;
mod url;

pub use authorize::{Authorize, AuthorizeLayer};
pub use challenge::{Challenge, ExtraChallenge};
pub use config::{optional_secret_from_env, secret_from_env, ConfigError};
pub use error::{
    AuthError, AuthErrorKind, ErrorRenderer, JSONRPC_FORBIDDEN, JSONRPC_INVALID_REQUEST,
    JSONRPC_PARSE_ERROR, JSONRPC_RATE_LIMITED, JSONRPC_REQUEST_TIMEOUT, JSONRPC_TOO_LARGE,
    JSONRPC_UNAUTHORIZED, JSONRPC_UNAVAILABLE,
};
pub use jsonrpc_id::JsonRpcId;
pub use metadata::{ProtectedResource, ProtectedResourceBuilder, ScopeSource, WELL_KNOWN_PATH};
pub use principal::{
    AuthScheme, CustomScheme, Principal, PrincipalKind, Scopes, ScopesIntoIter, ScopesIter,
};
pub use resource::{ProtectedResourceLayer, ProtectedResourceService};
pub use rule::Rule;
pub use scope_hierarchy::{ScopeHierarchy, ScopeHierarchyBuilder};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
