//! Per-user rate limiting shared by every replica through Redis (the
//! seed's "Rate Limiting by User", 100 calls a minute): each API key is a
//! user, and all replicas count that user's calls in one place.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/ API_KEYS=alice=mcp_sk_alice_key_0001,bob=mcp_sk_bob_key_00001 \
//!   cargo run --example rate_limit_redis --features redis
//!
//! curl -si http://127.0.0.1:3000/mcp -H 'X-API-Key: mcp_sk_alice_key_0001' \
//!   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rate_limited_operation","arguments":{"param":"x"}}}'
//! ```
//!
//! The 101st call of alice's within a minute, on any replica, gets 429 with
//! `Retry-After`; bob's calls are counted apart. `RATE_LIMIT_PER_MINUTE`
//! changes the quota. Redis down: refused with 503 (fail closed), never
//! unlimited.

use std::{net::SocketAddr, time::Duration};

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
use secrecy::ExposeSecret;
use serde::Deserialize;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    rate_limit::{FailMode, Quota, RateLimitLayer, RedisStore},
    secret_from_env, ConfigError, Principal,
};

/// THE STACK: who is calling (the key's name), then that user's quota,
/// counted in Redis.
///
/// # Errors
///
/// [`ConfigError`] for a `REDIS_URL` that is not one, or a quota of 0.
pub async fn app(redis_url: &str, keys: ApiKeys, per_minute: u32) -> Result<Router, ConfigError> {
    let store = RedisStore::connect(redis_url).await?;
    let mcp = ServiceBuilder::new()
        .layer(ApiKeyLayer::new(keys))
        .layer(
            RateLimitLayer::per_principal(Quota::try_new(per_minute, Duration::from_secs(60))?)
                .store(store)
                .fail_mode(FailMode::Closed), // Redis down: 503, never unlimited
        )
        .service(StreamableHttpService::new(
            || Ok(Limited(Limited::tool_router())),
            LocalSessionManager::default().into(),
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true),
        ));
    Ok(Router::new().nest_service("/mcp", mcp))
}

/// `alice=KEY,bob=KEY`: one named key per user.
fn keys_from_env() -> Result<ApiKeys, ConfigError> {
    let list = secret_from_env("API_KEYS")?;
    let mut keys = ApiKeys::new();
    for entry in list.expose_secret().split(',') {
        let (user, key) = entry
            .trim()
            .split_once('=')
            .ok_or(ConfigError::InvalidEnv {
                var: "API_KEYS".into(),
                reason: "expected user=key, comma separated".into(),
            })?;
        keys = keys.try_with(ApiKey::new(user, key))?;
    }
    Ok(keys)
}

#[derive(Deserialize, JsonSchema)]
struct Operation {
    param: String,
}

/// The MCP server: its tools (and the router rmcp built for them).
#[derive(Clone)]
struct Limited(ToolRouter<Self>);

#[tool_router]
impl Limited {
    #[tool(description = "An operation within the caller's quota.")]
    async fn rate_limited_operation(
        &self,
        Parameters(p): Parameters<Operation>,
        Extension(parts): Extension<Parts>,
    ) -> Result<String, String> {
        let user = Principal::from_parts(&parts).ok_or("no caller")?.name();
        Ok(format!("ran with param {} for {user}", p.param))
    }
}

#[tool_handler(router = self.0)]
impl ServerHandler for Limited {
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
    let redis_url = secret_from_env("REDIS_URL")?; // may carry a password
    let per_minute = match std::env::var("RATE_LIMIT_PER_MINUTE") {
        Ok(n) => n
            .trim()
            .parse()
            .map_err(|_| "RATE_LIMIT_PER_MINUTE: a whole number")?,
        Err(_) => 100,
    };
    let app = app(redis_url.expose_secret(), keys_from_env()?, per_minute).await?;
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("MCP server on http://{addr}/mcp, {per_minute} calls a minute per user");
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
