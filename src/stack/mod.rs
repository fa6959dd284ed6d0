//! The whole stack in the only right order, from one builder.
//!
//! The layers of this crate compose like any tower layers, and most orders
//! compile; only one protects fully. [`McpAuth`] builds that one from what
//! you want protected and with which credentials:
//!
//! | order | layer | job |
//! | --- | --- | --- |
//! | 0 | [`ProtectedResource::layer`] | every refusal below carries the `resource_metadata` challenge |
//! | 1 | [`FailedAuthLayer`] | an address that keeps sending bad credentials is refused for a while |
//! | 2 | the authenticators | `X-API-Key` ([`api_keys`](McpAuthBuilder::api_keys)), JWTs ([`hs256_secret`](McpAuthBuilder::hs256_secret), [`oauth_issuer`](McpAuthBuilder::oauth_issuer)), opaque tokens by introspection ([`introspection`](McpAuthBuilder::introspection)), each optional, all taking DPoP-bound tokens |
//! | 3 | [`McpPolicyLayer`] | each JSON-RPC call by the [policy](McpAuthBuilder::policy); lists filtered |
//! | 4 | [`RateLimitLayer`] | per principal (per address when anonymous), with the policy's quotas and costs |
//! | 5 | [`SessionBindingLayer`], [`HandleBindingLayer`] | sessions (2025-11-25) and `requestState` / task ids (2026-07-28) belong to their caller |
//!
//! The RFC 9728 metadata names the authorization server, every scope the
//! policy names, and DPoP when tokens come from an authorization server.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use tower_mcp_auth::{api_key::ApiKeys, mcp::McpPolicy, stack::McpAuth, Rule};
//! # async fn run(mcp: axum::Router) -> Result<(), Box<dyn std::error::Error>> {
//!
//! let policy = McpPolicy::builder()
//!     .default(Rule::authenticated())
//!     .tool("delete_user", Rule::api_key())
//!     .build()?;
//! let auth = McpAuth::builder("https://mcp.example.com/mcp")
//!     .api_keys(ApiKeys::from_env("API_KEY")?)
//!     .oauth_issuer("https://auth.example.com")
//!     .policy(policy)
//!     .build()
//!     .await?;
//! let app = auth.router(mcp); // the metadata, and the MCP service at /mcp
//!
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! The same configuration from the environment (`API_KEY`, `JWT_SECRET`,
//! `OAUTH_ISSUER`, `POLICY_FILE`, …) is [`Settings::from_env`], made a
//! builder with `McpAuthBuilder::from(settings)`.
//!
//! The single layers stay for stacks of your own. Where one is assembled
//! in an order that weakens it (the policy or the limiter above the
//! authenticators, a server without `ConnectInfo`), the layer that can
//! tell says so once, as a `tracing` warning naming the fix.

mod settings;
mod shared;

use std::{
    convert::Infallible,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{body::Body, Router};
use bytes::Bytes;
use http::Request;
#[cfg(feature = "jwt")]
use secrecy::SecretString;
use tower::util::Either;
use tower_layer::Layer;
use tower_service::Service;

pub use settings::{Settings, DEMO_KEY_NAME};
pub use shared::SharedService;

use crate::{
    api_key::{ApiKeyAuthenticator, ApiKeyLayer, ApiKeys},
    authenticate::Authenticate,
    future::BoxError,
    mcp::{
        handles::{HandleBinding, HandleBindingLayer},
        session::{SessionBinding, SessionBindingLayer},
        McpPolicy, McpPolicyLayer, McpPolicyService, SharedPolicy,
    },
    rate_limit::{
        failed_auth::{FailedAuth, FailedAuthLayer},
        AnyStore, MemoryStore, Quota, RateLimit, RateLimitLayer, TrustedProxies,
    },
    ConfigError, ProtectedResource, ProtectedResourceLayer, ProtectedResourceService, Rule,
};

#[cfg(feature = "dpop")]
use crate::dpop::{Dpop, DpopAuthenticator};
#[cfg(feature = "introspection")]
use crate::introspection::{IntrospectionAuthenticator, IntrospectionLayer, Introspector};
#[cfg(feature = "jwt")]
use crate::jwt::{JwtAuthenticator, JwtLayer, JwtValidator};

pub use settings::DEFAULT_RATE_LIMIT_PER_MINUTE;

/// The clock handle lifetimes are read from.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Configures an [`McpAuth`]: what to protect, with which credentials.
/// The credentials and limits are [`Settings`] (from code, or the
/// environment with [`Settings::from_env`]); the rest is code only. See
/// the [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct McpAuthBuilder {
    settings: Settings,
    policy: Option<SharedPolicy>,
    resource_name: Option<String>,
    trusted_proxies: Option<TrustedProxies>,
    request_state_ttl: Duration,
    clock: Option<Clock>,
    sessions: Option<SessionBindingLayer>,
    handles: Option<HandleBindingLayer>,
}

impl From<Settings> for McpAuthBuilder {
    fn from(settings: Settings) -> Self {
        Self {
            settings,
            policy: None,
            resource_name: None,
            trusted_proxies: None,
            request_state_ttl: crate::mcp::handles::DEFAULT_STATE_TTL,
            clock: None,
            sessions: None,
            handles: None,
        }
    }
}

impl std::fmt::Debug for McpAuthBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpAuthBuilder")
            .field("settings", &self.settings)
            .field("policy", &self.policy.as_ref().map(|_| "given"))
            .field("resource_name", &self.resource_name)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("request_state_ttl", &self.request_state_ttl)
            .finish_non_exhaustive()
    }
}

/// The stack, built: its [`router`](Self::router) or [`layer`](Self::layer),
/// and what it was built from. Cheap to clone.
#[derive(Clone, Debug)]
pub struct McpAuth {
    resource: ProtectedResource,
    policy: SharedPolicy,
    layer: McpAuthLayer,
    path: String,
}

impl McpAuth {
    /// A builder for the MCP endpoint at `public_url`, the resource
    /// identifier clients use (`https://mcp.example.com/mcp`). With
    /// nothing else set it accepts no credential at all: name at least
    /// one kind.
    pub fn builder(public_url: impl Into<String>) -> McpAuthBuilder {
        McpAuthBuilder::from(Settings::new(public_url))
    }

    /// The protected resource: its metadata document and challenge.
    #[must_use]
    pub fn resource(&self) -> &ProtectedResource {
        &self.resource
    }

    /// The rules in force (a policy file's, as reloaded).
    #[must_use]
    pub fn policy(&self) -> &SharedPolicy {
        &self.policy
    }

    /// The path of the MCP endpoint: the public URL's (`/mcp`).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The stack as one [`Layer`], for a service you mount yourself.
    #[must_use]
    pub fn layer(&self) -> McpAuthLayer {
        self.layer.clone()
    }

    /// The application: the RFC 9728 metadata at its well-known paths, and
    /// `mcp` behind the stack at the public URL's [path](Self::path) (at
    /// the root when the path is `/`). Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`: the throttles
    /// tell anonymous callers apart by address.
    pub fn router<S, B>(&self, mcp: S) -> Router
    where
        S: Service<Request<Body>, Response = http::Response<B>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let service = self.layer.layer(mcp);
        let router = self.resource.router();
        match self.path.as_str() {
            "" | "/" => router.fallback_service(service),
            path => router.nest_service(path, service),
        }
    }
}

impl McpAuthBuilder {
    /// The `resource_name` of the metadata document.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Accepts these API keys (`X-API-Key`).
    pub fn api_keys(mut self, keys: ApiKeys) -> Self {
        self.settings.api_keys = keys;
        self
    }

    /// Accepts HS256 JWTs signed with `secret` whose `aud` is the public
    /// URL and that carry `exp` (your own login service's tokens).
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn hs256_secret(mut self, secret: SecretString) -> Self {
        self.settings.jwt_secret = Some(secret);
        self
    }

    /// The authorization server: listed in the metadata, and (feature
    /// `jwks`) its JWT access tokens accepted, checked against its keys
    /// (found by RFC 8414 / OpenID discovery unless
    /// [`oauth_jwks_url`](Self::oauth_jwks_url) names them) and pinned to
    /// `iss` = `issuer`. DPoP is advertised.
    pub fn oauth_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.settings.oauth_issuer = Some(issuer.into());
        self
    }

    /// The authorization server's JWKS, when discovery should not find it.
    #[cfg(feature = "jwks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    pub fn oauth_jwks_url(mut self, url: impl Into<String>) -> Self {
        self.settings.oauth_jwks_url = Some(url.into());
        self
    }

    /// An audience accepted besides the public URL (an authorization
    /// server that names the API differently).
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn oauth_audience(mut self, audience: impl Into<String>) -> Self {
        self.settings.oauth_audience = Some(audience.into());
        self
    }

    /// Accepts opaque access tokens by RFC 7662 introspection (and hands
    /// such tokens past the JWT check to it). DPoP is advertised.
    #[cfg(feature = "introspection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
    pub fn introspection(mut self, introspector: Introspector) -> Self {
        self.settings.introspector = Some(introspector);
        self
    }

    /// The rules (by default every operation needs an authenticated
    /// caller). A [`SharedPolicy`] you keep can be swapped later.
    pub fn policy(mut self, policy: impl Into<SharedPolicy>) -> Self {
        self.policy = Some(policy.into());
        self
    }

    /// The rules from a policy file (TOML with feature `toml`, or JSON),
    /// read at [`build`](Self::build) and re-read on `SIGHUP`; a bad file
    /// keeps the rules in force.
    pub fn policy_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.policy_file = Some(path.into());
        self.policy = None;
        self
    }

    /// Calls per minute per principal where the policy names no quota
    /// (default [`DEFAULT_RATE_LIMIT_PER_MINUTE`]).
    pub fn rate_limit_per_minute(mut self, n: u32) -> Self {
        self.settings.rate_limit_per_minute = n;
        self
    }

    /// Redis, shared by the replicas for the rate limiter and the DPoP
    /// replay cache (feature `redis`; without it [`build`](Self::build)
    /// says so).
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.settings.redis_url = Some(url.into());
        self
    }

    /// Refuses access tokens that are not DPoP-bound (RFC 9449).
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn dpop_required(mut self, required: bool) -> Self {
        self.settings.dpop_required = required;
        self
    }

    /// DPoP proofs must carry a server nonce made with `secret` (at least
    /// 32 bytes, the same on every replica).
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn dpop_nonce_secret(mut self, secret: SecretString) -> Self {
        self.settings.dpop_nonce_secret = Some(secret);
        self
    }

    /// The most live DPoP proofs one caller holds in the replay cache
    /// (default [`DEFAULT_REPLAY_PER_PRINCIPAL`](crate::dpop::DEFAULT_REPLAY_PER_PRINCIPAL)).
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn dpop_replay_per_caller(mut self, n: usize) -> Self {
        self.settings.dpop_replay_per_caller = n;
        self
    }

    /// Believes forwarding headers from these proxies (the throttles and
    /// the limiter's anonymous quota key by the client behind them).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = Some(proxies);
        self
    }

    /// How long a sealed `requestState` opens (default 5 minutes).
    pub fn request_state_ttl(mut self, ttl: Duration) -> Self {
        self.request_state_ttl = ttl;
        self
    }

    /// The clock `requestState` expiries are read from (default the
    /// system's); for tests.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The session binding, when replicas must share its key
    /// ([`SessionBindingLayer::with_key`]); default a random key.
    pub fn session_binding(mut self, layer: SessionBindingLayer) -> Self {
        self.sessions = Some(layer);
        self
    }

    /// The handle binding, when replicas must share its key
    /// ([`HandleBindingLayer::with_key`]); default a random key.
    /// [`request_state_ttl`](Self::request_state_ttl) and
    /// [`clock`](Self::clock) apply to it.
    pub fn handle_binding(mut self, layer: HandleBindingLayer) -> Self {
        self.handles = Some(layer);
        self
    }

    /// Builds the stack: reads the policy file, connects to Redis, checks
    /// every URL.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming what is wrong: a public URL that is not a
    /// resource identifier, a policy file's line, an unreachable Redis, a
    /// feature this build lacks.
    pub async fn build(self) -> Result<McpAuth, ConfigError> {
        let policy = match (&self.policy, &self.settings.policy_file) {
            (Some(shared), _) => shared.clone(),
            (None, Some(path)) => {
                let shared = SharedPolicy::from_file(path)?;
                #[cfg(unix)]
                shared.reload_on_sighup(path.as_path())?.detach();
                shared
            }
            (None, None) => SharedPolicy::new(
                McpPolicy::builder()
                    .default(Rule::authenticated())
                    .build()?,
            ),
        };
        #[cfg(feature = "dpop")]
        let dpop = self.dpop().await?;
        let resource = {
            let mut builder = ProtectedResource::builder(self.settings.public_url.as_str());
            if let Some(issuer) = &self.settings.oauth_issuer {
                builder = builder.authorization_server(issuer.as_str());
            }
            if let Some(name) = &self.resource_name {
                builder = builder.resource_name(name.as_str());
            }
            #[cfg(feature = "dpop")]
            if self.settings.dpop_advertised() {
                builder = builder.dpop(&dpop);
            }
            builder
                // Every scope the policy in force names, reload after reload.
                .scopes_from(policy.clone())
                .build()?
        };
        let path = http::Uri::try_from(resource.resource())
            .map(|uri| uri.path().to_owned())
            .unwrap_or_default();

        #[cfg(feature = "jwt")]
        let jwt = self.jwt_validator(&resource)?.map(|validator| {
            let jwt = JwtLayer::new(validator).optional();
            #[cfg(feature = "introspection")]
            let jwt = if self.settings.introspector.is_some() {
                jwt.pass_opaque_tokens()
            } else {
                jwt
            };
            #[cfg(feature = "dpop")]
            let jwt = jwt.dpop(dpop.clone());
            jwt
        });
        #[cfg(feature = "introspection")]
        let introspection = self.settings.introspector.clone().map(|i| {
            let layer = IntrospectionLayer::new(i).optional();
            #[cfg(feature = "dpop")]
            let layer = layer.dpop(dpop.clone());
            layer
        });

        let quota = Quota::try_new(self.settings.rate_limit_per_minute, Duration::from_secs(60))?;
        // The policy's quotas (each principal's, the anonymous one) and
        // tool costs, as reloaded; `quota` where it names none.
        let mut limiter =
            RateLimitLayer::from_policy(&policy, quota).store(self.rate_limit_store().await?);
        let mut failed_auth = FailedAuthLayer::new();
        if let Some(proxies) = &self.trusted_proxies {
            limiter = limiter.trusted_proxies(proxies.clone());
            failed_auth = failed_auth.trusted_proxies(proxies.clone());
        }
        let handles = self
            .handles
            .clone()
            .unwrap_or_default()
            .state_ttl(self.request_state_ttl)
            .under_policy();
        let handles = match self.clock.clone() {
            Some(clock) => handles.clock(move || clock()),
            None => handles,
        };
        let api_key = (!self.settings.api_keys.is_empty())
            .then(|| ApiKeyLayer::new(self.settings.api_keys.clone()).optional());
        let layer = McpAuthLayer(Arc::new(Layers {
            resource: resource.layer(),
            failed_auth,
            api_key,
            #[cfg(feature = "jwt")]
            jwt,
            #[cfg(feature = "introspection")]
            introspection,
            policy: McpPolicyLayer::new(policy.clone()).over_handles(),
            limiter,
            sessions: self.sessions.clone().unwrap_or_default(),
            handles,
        }));
        Ok(McpAuth {
            resource,
            policy,
            layer,
            path,
        })
    }

    /// The JWT validator: the HS256 secret and/or the issuer's keys.
    #[cfg(feature = "jwt")]
    fn jwt_validator(
        &self,
        resource: &ProtectedResource,
    ) -> Result<Option<JwtValidator>, ConfigError> {
        #[cfg(feature = "jwks")]
        let issuer = self.settings.oauth_issuer.as_deref();
        #[cfg(not(feature = "jwks"))]
        let issuer: Option<&str> = None;
        if self.settings.jwt_secret.is_none() && issuer.is_none() {
            return Ok(None);
        }
        let mut builder = JwtValidator::builder(resource);
        if let Some(secret) = &self.settings.jwt_secret {
            builder = builder.hs256_secret(secret);
        }
        #[cfg(feature = "jwks")]
        {
            builder = match (issuer, &self.settings.oauth_jwks_url) {
                (Some(iss), Some(url)) => builder.jwks_url(url.clone()).jwks_issuer(iss),
                (Some(iss), None) => builder.jwks_from_issuer(iss),
                (None, _) => builder,
            };
        }
        if let Some(aud) = &self.settings.oauth_audience {
            builder = builder.audience(aud.clone()).audience(resource.resource());
        }
        builder.build().map(Some)
    }

    /// DPoP on the bearer layers: proofs with the default algorithms, a
    /// replay cache (in Redis when configured), nonces when asked for.
    #[cfg(feature = "dpop")]
    async fn dpop(&self) -> Result<Dpop, ConfigError> {
        use crate::dpop::{MemoryReplayCache, Nonces, ProofValidator};
        use secrecy::ExposeSecret;
        let mut proofs = ProofValidator::builder();
        if let Some(secret) = &self.settings.dpop_nonce_secret {
            proofs = proofs.nonces(Nonces::new(secret.expose_secret().as_bytes())?);
        }
        let per_caller = self.settings.dpop_replay_per_caller;
        match &self.settings.redis_url {
            None => {
                proofs = proofs.replay_cache(MemoryReplayCache::new().per_principal(per_caller));
            }
            #[cfg(feature = "redis")]
            Some(url) => {
                let cache = crate::dpop::RedisReplayCache::connect(url).await?;
                proofs = proofs.replay_cache(cache.per_principal(per_caller));
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => return Err(no_redis()),
        }
        let dpop = Dpop::new(proofs.build()?);
        Ok(if self.settings.dpop_required {
            dpop.required()
        } else {
            dpop
        })
    }

    /// The rate limiter's store: Redis when configured, else memory.
    async fn rate_limit_store(&self) -> Result<AnyStore, ConfigError> {
        match &self.settings.redis_url {
            None => Ok(AnyStore::from(MemoryStore::new())),
            #[cfg(feature = "redis")]
            Some(url) => {
                let store = crate::rate_limit::RedisStore::connect(url).await?;
                Ok(AnyStore::from(store))
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => Err(no_redis()),
        }
    }
}

#[cfg(not(feature = "redis"))]
fn no_redis() -> ConfigError {
    ConfigError::InvalidEnv {
        var: "REDIS_URL".into(),
        reason: "this build has no Redis support; enable the `redis` feature".into(),
    }
}

/// The JWT authenticator as the stack runs it.
#[cfg(all(feature = "jwt", feature = "dpop"))]
type JwtAuth = DpopAuthenticator<JwtAuthenticator>;
#[cfg(all(feature = "jwt", not(feature = "dpop")))]
type JwtAuth = JwtAuthenticator;
/// The introspection authenticator as the stack runs it.
#[cfg(all(feature = "introspection", feature = "dpop"))]
type IntrospectionAuth = DpopAuthenticator<IntrospectionAuthenticator>;
#[cfg(all(feature = "introspection", not(feature = "dpop")))]
type IntrospectionAuth = IntrospectionAuthenticator;

/// Layers 4 and 5 of the stack over `S`.
type Limited<S> = RateLimit<SessionBinding<HandleBinding<SharedService<S>>>, AnyStore>;
/// Layer 3 and below.
type Policed<S> = McpPolicyService<Limited<S>>;
/// Introspection, when configured, and below.
#[cfg(feature = "introspection")]
type Introspected<S> = Either<Authenticate<Policed<S>, IntrospectionAuth>, Policed<S>>;
#[cfg(not(feature = "introspection"))]
type Introspected<S> = Policed<S>;
/// The JWT check, when configured, and below.
#[cfg(feature = "jwt")]
type Jwt<S> = Either<Authenticate<Introspected<S>, JwtAuth>, Introspected<S>>;
#[cfg(not(feature = "jwt"))]
type Jwt<S> = Introspected<S>;
/// API keys, when configured, and below.
type Keyed<S> = Either<Authenticate<Jwt<S>, ApiKeyAuthenticator>, Jwt<S>>;

/// The service [`McpAuthLayer`] makes: every layer of the stack over `S`,
/// with no box between them.
pub type McpAuthService<S> = ProtectedResourceService<FailedAuth<Keyed<S>>>;

/// The whole stack as one layer ([`McpAuth::layer`]).
#[derive(Clone)]
pub struct McpAuthLayer(Arc<Layers>);

struct Layers {
    resource: ProtectedResourceLayer,
    failed_auth: FailedAuthLayer,
    api_key: Option<ApiKeyLayer>,
    #[cfg(feature = "jwt")]
    jwt: Option<crate::authenticate::AuthenticateLayer<JwtAuth>>,
    #[cfg(feature = "introspection")]
    introspection: Option<crate::authenticate::AuthenticateLayer<IntrospectionAuth>>,
    policy: McpPolicyLayer,
    limiter: RateLimitLayer<AnyStore>,
    sessions: SessionBindingLayer,
    handles: HandleBindingLayer,
}

impl std::fmt::Debug for McpAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let layers = &self.0;
        let mut d = f.debug_struct("McpAuthLayer");
        d.field("api_key", &layers.api_key.is_some());
        #[cfg(feature = "jwt")]
        d.field("jwt", &layers.jwt.is_some());
        #[cfg(feature = "introspection")]
        d.field("introspection", &layers.introspection.is_some());
        d.finish_non_exhaustive()
    }
}

/// `layer` over `inner` when it is configured, else `inner` itself.
fn maybe<L: Layer<S>, S>(layer: Option<&L>, inner: S) -> Either<L::Service, S> {
    match layer {
        Some(layer) => Either::Left(layer.layer(inner)),
        None => Either::Right(inner),
    }
}

impl<S> Layer<S> for McpAuthLayer {
    type Service = McpAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let l = &*self.0;
        let inner = l.handles.layer(SharedService::new(inner));
        let inner = l.sessions.layer(inner);
        let inner = l.limiter.layer(inner);
        let inner = l.policy.layer(inner);
        #[cfg(feature = "introspection")]
        let inner = maybe(l.introspection.as_ref(), inner);
        #[cfg(feature = "jwt")]
        let inner = maybe(l.jwt.as_ref(), inner);
        let inner = maybe(l.api_key.as_ref(), inner);
        let inner = l.failed_auth.layer(inner);
        l.resource.layer(inner)
    }
}
