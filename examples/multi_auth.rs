//! Several schemes on one endpoint, a rule per tool (the seed's "Multi-Auth
//! Strategy"): OAuth bearer tokens for what users do to themselves, API
//! keys for what services do to everyone.
//!
//! ```text
//! API_KEY=mcp_sk_change_me OAUTH_ISSUER=https://auth.example.com cargo run --example multi_auth
//!
//! curl -s http://127.0.0.1:3000/mcp -H 'X-API-Key: mcp_sk_change_me' \
//!   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_all_users","arguments":{}}}'
//! curl -s http://127.0.0.1:3000/mcp -H "Authorization: Bearer $TOKEN" \
//!   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_my_profile","arguments":{}}}'
//! ```
//!
//! | tool | needs |
//! | --- | --- |
//! | `get_my_profile` / `update_my_profile` | a bearer token with `read:profile` / `write:profile` |
//! | `list_all_users`, `get_user_by_id` | the API key |
//!
//! The API key on a profile tool, or a token on an admin tool: 401 saying
//! what the tool needs (a bearer token and its scope, or an API key); a
//! token without the scope: 403. `tools/list` shows each caller only what
//! it may call.

use axum::Router;
use http::request::Parts;
use rmcp::{
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    model::*,
    schemars::{self, JsonSchema},
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ServerHandler,
};
use serde::Deserialize;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKeyLayer, ApiKeys},
    jwt::{JwtLayer, JwtValidator},
    mcp::{McpPolicy, McpPolicyLayer},
    ConfigError, Principal, ProtectedResource, Rule,
};

/// THE STACK: both authenticators optional (no credential of theirs: pass
/// on; a bad one: 401), then one policy deciding per tool.
pub fn app(public_url: &str, issuer: &str, keys: ApiKeys) -> Result<Router, ConfigError> {
    let resource = ProtectedResource::builder(public_url)
        .authorization_server(issuer)
        .scopes_supported(["read:profile", "write:profile"])
        .build()?;
    let tokens = JwtValidator::builder(&resource)
        .jwks_from_issuer(issuer)
        .build()?;
    let policy = McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("get_my_profile", Rule::bearer().scopes(["read:profile"]))
        .tool(
            "update_my_profile",
            Rule::bearer().scopes(["write:profile"]),
        )
        .tool("list_all_users", Rule::api_key())
        .tool("get_user_by_id", Rule::api_key())
        .build()?;
    let mcp = ServiceBuilder::new()
        .layer(resource.layer()) // every refusal names the resource's metadata
        .layer(ApiKeyLayer::new(keys).optional())
        .layer(JwtLayer::new(tokens).optional())
        .layer(McpPolicyLayer::new(policy))
        .service(StreamableHttpService::new(
            || Ok(Accounts(Accounts::tool_router())),
            LocalSessionManager::default().into(),
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true),
        ));
    Ok(Router::new()
        .merge(resource.router())
        .nest_service("/mcp", mcp))
}

#[derive(Deserialize, JsonSchema)]
struct UserId {
    user_id: String,
}

#[derive(Deserialize, JsonSchema)]
struct Profile {
    display_name: String,
}

/// The MCP server: its tools (and the router rmcp built for them).
#[derive(Clone)]
struct Accounts(ToolRouter<Self>);

fn caller(parts: &Parts) -> Result<&Principal, String> {
    Principal::from_parts(parts).ok_or_else(|| "no caller".to_owned())
}

#[tool_router]
impl Accounts {
    #[tool(description = "The caller's own profile (OAuth, read:profile).")]
    async fn get_my_profile(&self, Extension(parts): Extension<Parts>) -> Result<String, String> {
        let who = caller(&parts)?;
        Ok(format!("profile of {} ({})", who.name(), who.scopes()))
    }

    #[tool(description = "Change the caller's display name (OAuth, write:profile).")]
    async fn update_my_profile(
        &self,
        Parameters(p): Parameters<Profile>,
        Extension(parts): Extension<Parts>,
    ) -> Result<String, String> {
        Ok(format!(
            "{} is now shown as {}",
            caller(&parts)?.name(),
            p.display_name
        ))
    }

    #[tool(description = "List all users (API key).")]
    async fn list_all_users(&self) -> String {
        "user_001 Alice Martin, user_002 Bob Chen".into()
    }

    #[tool(description = "Get a user by id (API key).")]
    async fn get_user_by_id(&self, Parameters(p): Parameters<UserId>) -> String {
        format!("{}: Alice Martin", p.user_id)
    }
}

#[tool_handler(router = self.0)]
impl ServerHandler for Accounts {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // An error returned from `main` prints with `Debug`; print its message.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let keys = ApiKeys::from_env("API_KEY")?;
    let issuer = std::env::var("OAUTH_ISSUER").map_err(|_| "set OAUTH_ISSUER")?;
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let public_url = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}/mcp"));
    let app = app(&public_url, &issuer, keys)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("MCP server on {public_url}: X-API-Key, or bearer tokens from {issuer}");
    axum::serve(listener, app).await?;
    Ok(())
}
