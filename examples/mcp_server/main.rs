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

use std::net::SocketAddr;

use axum::Router;
use tower_mcp_auth::{mcp::McpPolicy, ConfigError, Rule};

use config::Config;
use transport::mcp_service;

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

/// The whole application, from [`McpAuth`](tower_mcp_auth::stack::McpAuth):
/// RFC 9728 metadata at the root, and the protected MCP service at
/// [`MCP_PATH`](config::MCP_PATH), behind every layer in the only right order:
///
/// 0. every refusal carries the resource's challenge (`resource_metadata`);
/// 1. an address that keeps sending bad credentials is refused with 429;
/// 2. the authenticators the configuration names, each optional: `X-API-Key`;
///    bearer JWTs (`JWT_SECRET`, or the authorization server's JWKS); opaque
///    tokens by introspection; DPoP-bound tokens on both bearer kinds;
/// 3. each JSON-RPC call by [`policy`] (or `POLICY_FILE`, re-read on
///    `SIGHUP`): 401 with the challenge, or a 403 step-up; lists filtered;
/// 4. the rate limit per principal (per address when anonymous), with a
///    policy file's quotas and tool costs;
/// 5. a session (2025-11-25) belongs to the principal that opened it; the
///    2026-07-28 handles (`requestState`, task ids) are sealed to their
///    caller.
///
/// # Errors
///
/// [`ConfigError`] for a `PUBLIC_URL` that is not a resource identifier, a
/// bad policy file, an impossible quota or an unusable `REDIS_URL`.
pub async fn app(config: &Config) -> Result<Router, ConfigError> {
    let auth = config.auth(policy)?.build().await?;
    Ok(auth.router(mcp_service(config)?))
}

/// The rules in force: `POLICY_FILE` when set (TOML needs `--features
/// toml`; `policy.toml` beside this file is [`policy`] as data), else
/// [`policy`].
///
/// # Errors
///
/// [`ConfigError`] naming the file's line and rule.
pub fn load_policy(config: &Config) -> Result<McpPolicy, ConfigError> {
    match &config.auth.policy_file {
        Some(path) => McpPolicy::from_file(path),
        None => policy(),
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
        config.bind,
        config.public_url()
    );
    if let (Some(key), Ok(policy)) = (&config.auth.generated_key, load_policy(&config)) {
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
