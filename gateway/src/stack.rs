//! The layer stack in front of the proxy, and the settings it is built
//! from: the same variables, and the same order of layers, as the example
//! server (`examples/mcp_server/main.rs`, `protect()` and `app()`).
//!
//! | variable | meaning |
//! | --- | --- |
//! | `PUBLIC_URL` | the gateway's resource identifier, the URL clients use (default `http://<BIND>/mcp`, `localhost` for an unspecified address); the endpoint is served at its path |
//! | `API_KEY` | the keys accepted in `X-API-Key`, comma separated, each `key` or `name:key[:scope scope …]`; unset: demo mode, one key generated |
//! | `JWT_SECRET` | HS256 secret of bearer tokens (`aud` = `PUBLIC_URL`, `exp` required); generated in demo mode |
//! | `POLICY_FILE` | the rules (JSON, or TOML), re-read on `SIGHUP`; unset: [`default_policy`] |
//! | `RATE_LIMIT_PER_MINUTE` | calls per minute per principal (default 100) |
//!
//! [`app`] is the one place the stack is assembled.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use axum::{middleware, routing::any_service, Router};
use secrecy::{ExposeSecret, SecretString};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    jwt::{JwtLayer, JwtValidator},
    mcp::{
        handles::HandleBindingLayer, session::SessionBindingLayer, McpPolicy, McpPolicyLayer,
        SharedPolicy,
    },
    optional_secret_from_env,
    rate_limit::{failed_auth::FailedAuthLayer, Quota, RateLimitLayer},
    ConfigError, ProtectedResource, Rule, Scopes,
};

use crate::{config::env_opt, proxy::Proxy, site::Site};

/// The MCP endpoint's path in the default `PUBLIC_URL`.
pub const MCP_PATH: &str = "/mcp";

/// The name of the key generated in demo mode.
pub const DEMO_KEY_NAME: &str = "demo";

/// The default per-principal quota.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 100;

/// What the stack is built from. Its `Debug` redacts the secrets.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// The resource identifier (`PUBLIC_URL`).
    pub public_url: String,
    /// The accepted API keys (`API_KEY`).
    pub api_keys: ApiKeys,
    /// The key generated in demo mode, to print.
    pub generated_key: Option<SecretString>,
    /// The HS256 secret of bearer tokens (`JWT_SECRET`).
    pub jwt_secret: Option<SecretString>,
    /// Whether [`jwt_secret`](Self::jwt_secret) was generated (demo mode).
    pub generated_jwt_secret: bool,
    /// The rules as data (`POLICY_FILE`).
    pub policy_file: Option<PathBuf>,
    /// Calls per minute per principal (`RATE_LIMIT_PER_MINUTE`).
    pub rate_limit_per_minute: u32,
}

impl StackConfig {
    /// A configuration for `public_url` accepting `api_keys`, no bearer
    /// tokens, the [`default_policy`], 100 calls a minute.
    #[must_use]
    pub fn new(public_url: impl Into<String>, api_keys: ApiKeys) -> Self {
        Self {
            public_url: public_url.into(),
            api_keys,
            generated_key: None,
            jwt_secret: None,
            generated_jwt_secret: false,
            policy_file: None,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
        }
    }

    /// Reads the variables in the table above; `bind` gives the default
    /// `PUBLIC_URL`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable that is wrong.
    pub fn from_env(bind: SocketAddr) -> Result<Self, ConfigError> {
        let public_url = env_opt("PUBLIC_URL")?.unwrap_or_else(|| default_public_url(bind));
        ProtectedResource::builder(public_url.as_str())
            .build()
            .map_err(|e| ConfigError::InvalidEnv {
                var: "PUBLIC_URL".into(),
                reason: e.to_string(),
            })?;
        let (api_keys, generated_key) = match optional_secret_from_env("API_KEY")? {
            Some(value) => (ApiKeys::from_list("API_KEY", &value)?, None),
            None => {
                let key = ApiKeys::generate();
                let keys =
                    ApiKeys::new().try_with(ApiKey::new(DEMO_KEY_NAME, key.expose_secret()))?;
                (keys, Some(key))
            }
        };
        let (jwt_secret, generated_jwt_secret) = match optional_secret_from_env("JWT_SECRET")? {
            Some(secret) => (Some(secret), false),
            None if generated_key.is_some() => (Some(crate::demo::random_secret()), true),
            None => (None, false),
        };
        let rate_limit_per_minute = match env_opt("RATE_LIMIT_PER_MINUTE")? {
            None => DEFAULT_RATE_LIMIT_PER_MINUTE,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError::InvalidEnv {
                        var: "RATE_LIMIT_PER_MINUTE".into(),
                        reason: "expected a whole number of calls per minute, at least 1".into(),
                    })
                }
            },
        };
        Ok(Self {
            generated_key,
            jwt_secret,
            generated_jwt_secret,
            policy_file: env_opt("POLICY_FILE")?.map(PathBuf::from),
            rate_limit_per_minute,
            ..Self::new(public_url, api_keys)
        })
    }
}

/// `http://<bind>/mcp`, with `localhost` in place of an unspecified address.
#[must_use]
pub fn default_public_url(bind: SocketAddr) -> String {
    if bind.ip().is_unspecified() {
        format!("http://localhost:{}{MCP_PATH}", bind.port())
    } else {
        format!("http://{bind}{MCP_PATH}")
    }
}

/// The rules without a `POLICY_FILE`: every call needs a credential (an
/// API key or a bearer token), any credential, and every tool is listed to
/// every caller. The gateway cannot know the upstream's tools, so it
/// cannot name them; write a `POLICY_FILE` to give tools scopes, hide
/// them, or deny the ones no rule names (`unmatched_tool = "deny"`).
///
/// # Example
///
/// ```
/// use tower_mcp_auth_gateway::stack::default_policy;
///
/// assert!(default_policy().scopes_named().is_empty());
/// ```
#[must_use]
pub fn default_policy() -> McpPolicy {
    McpPolicy::builder()
        .default(Rule::authenticated())
        .build()
        .expect("one rule without scopes is consistent")
}

/// The rules in force: `POLICY_FILE`, else [`default_policy`].
///
/// # Errors
///
/// [`ConfigError`] naming the file's line and rule.
pub fn load_policy(config: &StackConfig) -> Result<McpPolicy, ConfigError> {
    match &config.policy_file {
        Some(path) => McpPolicy::from_file(path),
        None => Ok(default_policy()),
    }
}

/// THE LAYER STACK, outermost first, in front of `proxy` at the path of
/// `PUBLIC_URL` (by default [`MCP_PATH`]), with the RFC 9728 metadata of
/// `PUBLIC_URL` at its well-known paths:
///
/// 0. the DNS-rebinding check ([`Site`]: `Host`, `Origin`), then
///    `resource.layer()` (every refusal below carries the challenge);
/// 1. `FailedAuthLayer` (an address sending bad credentials is cooled
///    down);
/// 2. `X-API-Key`, then HS256 bearer JWTs (`JWT_SECRET`), each optional
///    (no credential: the policy decides; a bad one: 401);
/// 3. `McpPolicyLayer`: each call by the policy, lists filtered (JSON and
///    SSE, event by event); `POLICY_FILE` re-read on `SIGHUP`;
/// 4. `RateLimitLayer`: per principal, the policy file's quotas and costs;
/// 5. `SessionBindingLayer` and `HandleBindingLayer`: the upstream's
///    session ids, `requestState`s and task ids leave sealed to their
///    caller; a session id that is not the caller's reaches the upstream
///    as a random id it never issued, so it answers as it answers any
///    unknown session (the gateway cannot know that answer in advance);
/// 6. the proxy.
///
/// # Errors
///
/// [`ConfigError`] for a bad `PUBLIC_URL`, `POLICY_FILE` or secret.
pub async fn app(proxy: Proxy, config: &StackConfig) -> Result<Router, ConfigError> {
    let policy = load_policy(config)?;
    let resource = ProtectedResource::builder(config.public_url.as_str())
        .scopes_supported(policy.scopes_named().iter())
        .resource_name("MCP server behind mcp-auth-gateway")
        .build()?;
    let jwt = match &config.jwt_secret {
        Some(secret) => Some(
            JwtLayer::new(
                JwtValidator::builder(&resource)
                    .hs256_secret(secret)
                    .build()?,
            )
            .optional(),
        ),
        None => None,
    };
    let quota = Quota::try_new(config.rate_limit_per_minute, Duration::from_secs(60))?;
    let policy = SharedPolicy::new(policy);
    if let Some(path) = &config.policy_file {
        reload_on_sighup(policy.clone(), path.clone(), resource.scopes_supported());
    }
    let per_minute = policy.per_minute_fn();
    let mut limiter = RateLimitLayer::per_principal(quota)
        .override_quota(move |p| per_minute(p).map(|n| Quota::per_minute(n.get())))
        .cost(policy.cost_fn());
    if let Some(n) = policy.current().rate_limits().anonymous_per_minute {
        limiter = limiter.anonymous(Quota::per_minute(n.get()));
    }

    let stack = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(
            Site::of(&resource),
            crate::site::guard,
        ))
        .layer(resource.layer())
        .layer(FailedAuthLayer::new())
        .layer(ApiKeyLayer::new(config.api_keys.clone()).optional())
        .option_layer(jwt)
        .layer(McpPolicyLayer::new(policy))
        .layer(limiter)
        .layer(SessionBindingLayer::new().unknown_session_from_server())
        .layer(HandleBindingLayer::new());
    // The endpoint is where the resource identifier says it is.
    let path = config
        .public_url
        .parse::<http::Uri>()
        .map_or_else(|_| MCP_PATH.to_owned(), |u| u.path().to_owned());
    Ok(Router::new()
        .merge(resource.router())
        .route_service(&path, any_service(stack.service(proxy))))
}

/// Re-reads `path` on `SIGHUP`; a bad file keeps the rules in force.
fn reload_on_sighup(policy: SharedPolicy, path: PathBuf, published: Scopes) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            let (shared, path) = (policy.clone(), path.clone());
            match tokio::task::spawn_blocking(move || shared.reload_file(&path)).await {
                Ok(Err(e)) => eprintln!("POLICY_FILE not reloaded, the rules in force stay: {e}"),
                Ok(Ok(())) => {
                    let unlisted = policy.current().scopes_named().missing_from(&published);
                    if !unlisted.is_empty() {
                        eprintln!("POLICY_FILE names scopes the metadata does not list until a restart: {unlisted}");
                    }
                }
                Err(_) => {}
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (policy, path, published);
}
