//! The seed's multi-auth MCP server: a real MCP server on rmcp's Streamable
//! HTTP transport behind every layer of `tower-mcp-auth`.
//!
//! ```text
//! cargo run --example mcp_server
//! ```
//!
//! With no configuration it starts in demo mode: it generates an API key and
//! an HS256 secret and prints them with a ready `curl` line and a sample
//! token. The environment variables are listed in [`config`].
//!
//! This file is the stack and nothing else; the scenery sits beside it:
//! [`config`] (the environment), [`tools`], [`tasks`] and [`resources`]
//! (what the server offers), [`store`] (its in-memory users and records) and
//! [`transport`] (rmcp's service, with its DNS-rebinding checks).

pub mod config;
pub mod resources;
pub mod store;
pub mod tasks;
pub mod tools;
pub mod transport;

use std::{net::SocketAddr, time::Duration};

use axum::Router;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::ApiKeyLayer,
    dpop::Dpop,
    introspection::IntrospectionLayer,
    jwt::JwtLayer,
    mcp::{
        handles::HandleBindingLayer, session::SessionBindingLayer, McpPolicy, McpPolicyLayer,
        SharedPolicy,
    },
    rate_limit::{failed_auth::FailedAuthLayer, Quota, RateLimitLayer},
    ConfigError, ProtectedResource, Rule,
};

use config::{Config, MCP_PATH};
use transport::{mcp_service, McpService};

/// The contract's rules: which scheme and scopes each tool and resource
/// needs. A tool or prompt that no rule names (`experimental_operation`,
/// or one whose rule misspells it) is denied to everyone and listed to
/// nobody.
///
/// # Errors
///
/// [`ConfigError`] if the rule set is inconsistent.
pub fn policy() -> Result<McpPolicy, ConfigError> {
    McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
        .tool("read_sensitive_data", Rule::bearer().scopes(["data:read"]))
        .tool("update_user_data", Rule::bearer().scopes(["write:data"]))
        .tool("get_my_profile", Rule::bearer().scopes(["read:profile"]))
        .tool(
            "update_my_profile",
            Rule::bearer().scopes(["write:profile"]),
        )
        .tool("create_admin_user", Rule::api_key())
        .tool(
            "delete_user",
            Rule::api_key().or(Rule::bearer().scopes(["admin:write"])),
        )
        .tool(
            "confirm_delete_user",
            Rule::api_key().or(Rule::bearer().scopes(["admin:write"])),
        )
        .tool("list_all_users", Rule::api_key())
        .tool("get_user_by_id", Rule::api_key())
        .tool("build_report", Rule::authenticated())
        .tool("protected_operation", Rule::authenticated())
        .tool("rate_limited_operation", Rule::authenticated())
        .resource(
            "user://{user_id}/private",
            Rule::bearer().scopes(["read:data"]),
        )
        .resource("admin://system/stats", Rule::api_key())
        // Any other URI (`user://user_001?/private` matches no template):
        // API key only, not the default. The administrator may still get
        // the server's own "not found"; nobody else reaches the handler.
        .unmatched_resource(Rule::api_key())
        // Any tool or prompt no rule names (one added without a rule, or a
        // rule with a typo): nobody, and not listed. The list filter
        // reports each such name once, as an audit event.
        .unmatched_tool(Rule::deny())
        .unmatched_prompt(Rule::deny())
        .build()
}

/// The whole application: RFC 9728 metadata at the root, and the protected
/// MCP service at [`MCP_PATH`].
///
/// # Errors
///
/// [`ConfigError`] for a `PUBLIC_URL` that is not a resource identifier, an
/// impossible quota or an unusable `REDIS_URL`.
pub async fn app(config: &Config) -> Result<Router, ConfigError> {
    let policy = SharedPolicy::new(load_policy(config)?);
    let dpop = config.dpop().await?;
    // `scopes_supported`: every scope the rules in force name.
    let resource = config.resource(&policy, &dpop)?;
    let mcp = mcp_service(config)?;
    Ok(Router::new()
        .merge(resource.router())
        .merge(protect(mcp, config, &resource, policy, &dpop).await?))
}

/// The rules in force: `POLICY_FILE` when set (TOML needs `--features
/// toml`; `policy.toml` beside this file is [`policy`] as data), else
/// [`policy`].
///
/// # Errors
///
/// [`ConfigError`] naming the file's line and rule.
pub fn load_policy(config: &Config) -> Result<McpPolicy, ConfigError> {
    match &config.policy_file {
        Some(path) => McpPolicy::from_file(path),
        None => policy(),
    }
}

/// THE LAYER STACK: everything between the network and the MCP service,
/// outermost first, mounted at [`MCP_PATH`].
///
/// 0. `resource.layer()`: every refusal below carries the resource's
///    challenge (`resource_metadata`, for discovery).
/// 1. `FailedAuthLayer`: an address that keeps sending bad credentials is
///    refused with 429 for a while (key guessing gets nowhere).
/// 2. The authenticators, each optional (no credential: pass on; a bad one:
///    401): `X-API-Key`; bearer JWTs (`JWT_SECRET`, or the authorization
///    server's JWKS); opaque bearer tokens by introspection (the JWT layer
///    hands a token that is not a JWT on only when introspection is there;
///    without it such a token is refused, never anonymous). Both bearer
///    layers take DPoP-bound tokens (`Authorization: DPoP` and a proof,
///    RFC 9449) and refuse a bound token sent as `Bearer`.
/// 3. `McpPolicyLayer`: each JSON-RPC call by `policy` (401 with the
///    challenge, or a 403 step-up); tool and resource lists filtered; a
///    `POLICY_FILE` re-read on `SIGHUP`.
/// 4. `RateLimitLayer`: per principal (per address when anonymous); a batch
///    costs one unit per call; a `POLICY_FILE`'s quotas and tool costs.
/// 5. `SessionBindingLayer`: a session (2025-11-25) belongs to the principal
///    that opened it; anyone else presenting its id is answered as for an
///    unknown one. `HandleBindingLayer`: the 2026-07-28 handles, an
///    `input_required` result's `requestState` and a task id, are sealed
///    to their caller (the state to its request too, for a few minutes).
///
/// # Errors
///
/// [`ConfigError`] for an impossible quota or an unusable `REDIS_URL`.
pub async fn protect(
    mcp: McpService,
    config: &Config,
    resource: &ProtectedResource,
    policy: SharedPolicy,
    dpop: &Dpop,
) -> Result<Router, ConfigError> {
    let quota = Quota::try_new(config.rate_limit_per_minute, Duration::from_secs(60))?;
    let jwt = config.jwt_validator(resource)?.map(|v| {
        let jwt = JwtLayer::new(v).optional();
        let jwt = if config.introspector.is_some() {
            jwt.pass_opaque_tokens()
        } else {
            jwt
        };
        jwt.dpop(dpop.clone())
    });
    let introspection = (config.introspector.clone())
        .map(|i| IntrospectionLayer::new(i).optional().dpop(dpop.clone()));
    // POLICY_FILE: re-read on SIGHUP (a bad file keeps the rules in force).
    #[cfg(unix)]
    if let Some(path) = &config.policy_file {
        policy.reload_on_sighup(path)?.detach();
    }
    // The policy's `[rate_limit]` (POLICY_FILE): each principal's quota
    // (else RATE_LIMIT_PER_MINUTE), the anonymous one and per-tool costs,
    // as reloaded; a batch costs each of its calls.
    let limiter =
        RateLimitLayer::from_policy(&policy, quota).store(config.rate_limit_store().await?);

    let stack = ServiceBuilder::new()
        .layer(resource.layer())
        .layer(FailedAuthLayer::new())
        .layer(ApiKeyLayer::new(config.api_keys.clone()).optional())
        .option_layer(jwt)
        .option_layer(introspection)
        .layer(McpPolicyLayer::new(policy))
        .layer(limiter)
        .layer(SessionBindingLayer::new())
        .layer(handles(config));
    Ok(Router::new().nest_service(MCP_PATH, stack.service(mcp)))
}

/// The 2026-07-28 handle binding, with the configured lifetime (and clock).
fn handles(config: &Config) -> HandleBindingLayer {
    let layer = HandleBindingLayer::new().state_ttl(config.request_state_ttl);
    match config.clock.clone() {
        Some(clock) => layer.clock(move || clock()),
        None => layer,
    }
}

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter.unwrap_or_else(|_| "info".into()))
        .init();

    let config = Config::from_env().unwrap_or_else(|e| exit(format!("configuration error: {e}")));
    let app = app(&config)
        .await
        .unwrap_or_else(|e| exit(format!("configuration error: {e}")));
    let listener = (tokio::net::TcpListener::bind(config.bind).await)
        .unwrap_or_else(|e| exit(format!("cannot listen on {} (BIND): {e}", config.bind)));
    let stateless = if config.stateless { ", stateless" } else { "" };
    println!(
        "MCP server listening on {} (public URL {}{stateless})",
        config.bind, config.public_url
    );
    if let (Some(key), Ok(policy)) = (&config.generated_key, load_policy(&config)) {
        config::print_demo_banner(&config, key, &policy);
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        exit(format!("server error: {e}"));
    }
}

fn exit(message: String) -> ! {
    eprintln!("{message}");
    std::process::exit(1)
}
