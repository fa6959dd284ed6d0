//! The layer stack in front of the proxy: `tower_mcp_auth::stack::McpAuth`,
//! the builder the example server uses, from the same variables
//! ([`Settings::from_env`]: `PUBLIC_URL`, `API_KEY`, `JWT_SECRET`,
//! `OAUTH_ISSUER`, `OAUTH_JWKS_URL`, `OAUTH_AUDIENCE`,
//! `OAUTH_INTROSPECTION_URL`, `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET`,
//! `POLICY_FILE`, `RATE_LIMIT_PER_MINUTE`, `REDIS_URL` with the `redis`
//! feature, `DPOP_REQUIRED`, `DPOP_NONCES`, `DPOP_NONCE_SECRET`,
//! `DPOP_REPLAY_PER_CALLER`), with two additions of the gateway's own:
//! the `Host` / `Origin` check in front ([`Site`]: an upstream in another
//! language may not check them), and session ids that are not the
//! caller's handed to the upstream as ids it never issued
//! (`SessionBindingLayer::unknown_session_from_server`), so that it answers
//! them as it answers any unknown session.
//!
//! Without `POLICY_FILE` the rules are [`default_policy`].
//!
//! [`app`] is the one place the stack is assembled.

use std::net::SocketAddr;

use axum::{middleware, routing::any_service, Router};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    mcp::{session::SessionBindingLayer, McpPolicy},
    stack::{McpAuthBuilder, Settings},
    ConfigError, Rule,
};

use crate::{proxy::Proxy, site::Site};

/// The MCP endpoint's path in the default `PUBLIC_URL`.
pub const MCP_PATH: &str = "/mcp";

/// The settings of the stack from the environment; `bind` gives the
/// default `PUBLIC_URL`.
///
/// # Errors
///
/// A [`ConfigError`] naming the variable that is wrong.
pub fn settings_from_env(bind: SocketAddr) -> Result<Settings, ConfigError> {
    Settings::from_env(&default_public_url(bind))
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
pub fn load_policy(settings: &Settings) -> Result<McpPolicy, ConfigError> {
    match &settings.policy_file {
        Some(path) => McpPolicy::from_file(path),
        None => Ok(default_policy()),
    }
}

/// THE LAYER STACK in front of `proxy` at the path of `PUBLIC_URL` (by
/// default [`MCP_PATH`]), with the RFC 9728 metadata of `PUBLIC_URL` at its
/// well-known paths: the `Host` / `Origin` check, then `McpAuth` (every
/// refusal carries the challenge; failed credentials throttled; the
/// authenticators the settings name; the policy, lists filtered in JSON and
/// SSE, event by event; the rate limit with the policy's quotas; sessions,
/// `requestState`s and task ids sealed to their caller), then the proxy.
///
/// # Errors
///
/// [`ConfigError`] for a bad `PUBLIC_URL`, `POLICY_FILE`, secret or
/// `REDIS_URL`.
pub async fn app(proxy: Proxy, settings: &Settings) -> Result<Router, ConfigError> {
    let mut auth = McpAuthBuilder::from(settings.clone())
        .resource_name("MCP server behind mcp-auth-gateway")
        .session_binding(SessionBindingLayer::new().unknown_session_from_server());
    if settings.policy_file.is_none() {
        auth = auth.policy(default_policy());
    }
    let auth = auth.build().await?;
    let stack = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(
            Site::of(auth.resource()),
            crate::site::guard,
        ))
        .layer(auth.layer())
        .service(proxy);
    let path = match auth.path() {
        "" => "/",
        path => path,
    };
    Ok(Router::new()
        .merge(auth.resource().router())
        .route_service(path, any_service(stack)))
}
