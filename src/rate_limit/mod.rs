//! Rate limiting (feature `rate-limit`): [`RateLimitLayer`] throttles each
//! principal (each client address when anonymous) to a [`Quota`], and
//! [`FailedAuthLayer`](failed_auth::FailedAuthLayer) stops credential guessing per client address.
//!
//! * **Keys** ([`KeyExtractor`]): the principal's scheme and subject; anonymous
//!   requests by client address from axum's `ConnectInfo` (IPv6 by its
//!   /64, configurable), believing
//!   `X-Forwarded-For` / `Forwarded` only from [`TrustedProxies`] and
//!   taking the right-most untrusted hop; or a custom function.
//! * **Quotas** ([`Quota`]): `Quota::per_minute(100).burst(10)`, overridden
//!   per principal ([`RateLimitLayer::override_quota`]), or all read from
//!   an MCP policy's `[rate_limit]` table, reload after reload
//!   (`RateLimitLayer::from_policy`, feature `mcp`). A request costs
//!   one unit per JSON-RPC message the MCP inspect step found in it (a
//!   batch of 40 calls costs 40), else one; [`RateLimitLayer::cost`]
//!   prices calls your own way.
//! * **Refusals**: 429 with `Retry-After` in whole seconds rounded up
//!   (never 0), a JSON (or JSON-RPC, with the request's id) body, and the
//!   IETF `RateLimit-Policy` / `RateLimit` fields ([`headers`]), which
//!   allowed responses carry too unless turned off. Each refusal is an
//!   audit event with `outcome = "throttled"`.
//! * **Stores**: [`MemoryStore`] (default; governor's GCRA, bounded and
//!   swept), or `RedisStore` (feature `redis`) shared by replicas, with a
//!   [`FailMode`] for when it is down.
//! * The check runs in `call`, never in `poll_ready`: a throttled caller
//!   gets its 429 at once and does not hold up anyone else.
//!
//! Place the layer after the authenticators (and after the MCP inspect
//! step when costs depend on the tool), so the principal is known.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::post};
//! use http::request::Parts;
//! use tower::ServiceBuilder;
//! use tower_mcp_auth::api_key::{ApiKeyLayer, ApiKeys};
//! use tower_mcp_auth::Principal;
//! use tower_mcp_auth::rate_limit::failed_auth::FailedAuthLayer;
//! use tower_mcp_auth::rate_limit::{Quota, RateLimitLayer};
//!
//! /// What an earlier layer (the MCP inspect step) put into the extensions.
//! #[derive(Clone)]
//! struct ToolName(&'static str);
//!
//! let limits = RateLimitLayer::per_principal(Quota::per_minute(100))
//!     .override_quota(|p: &Principal| (p.subject() == Some("batch-job")).then(|| Quota::per_hour(10_000)))
//!     .cost(|parts: &Parts| match parts.extensions.get::<ToolName>() {
//!         Some(ToolName("expensive_report")) => 10,
//!         _ => 1,
//!     });
//!
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "ok" }))
//!     .layer(
//!         ServiceBuilder::new()
//!             .layer(FailedAuthLayer::new())
//!             .layer(ApiKeyLayer::new(ApiKeys::new()).optional())
//!             .layer(limits),
//!     );
//! ```

mod any_store;
pub mod failed_auth;
pub mod headers;
mod key;
mod layer;
mod memory;
mod quota;
#[cfg(feature = "redis")]
mod redis;
mod store;

/// governor's clocks, for [`MemoryStore::with_clock`] and
/// [`FailedAuthLayer::with_clock`](failed_auth::FailedAuthLayer::with_clock) (`FakeRelativeClock` in tests).
pub use governor::clock;

pub use any_store::{AnyStore, AnyStoreFuture};
pub use key::{KeyExtractor, ProxyHeader, RateLimitKey, TrustedProxies, DEFAULT_IPV6_PREFIX};
pub use layer::{FailMode, RateLimit, RateLimitLayer, ResponseFuture};
pub use memory::{MemoryStore, DEFAULT_MAX_KEYS, DEFAULT_SWEEP_INTERVAL, MAX_DISTINCT_QUOTAS};
pub use quota::Quota;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisStore;
pub use store::{Decision, RateLimitStore, StoreError};
