//! Your own HS256 tokens (the seed's "Custom Authentication: Token
//! Validation"): a shared secret signs them, the layer checks the signature
//! (HS256 only), `exp`, `aud` and a `user_id` claim before any tool runs,
//! and the tool reads the verified claims instead of taking a token
//! argument.
//!
//! ```text
//! JWT_SECRET=a-long-random-secret-of-32-bytes-or-more cargo run --example custom_hs256
//! # prints a sample token for user 42; then:
//! curl -s http://127.0.0.1:3000/mcp -H "Authorization: Bearer $TOKEN" \
//!   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"protected_operation","arguments":{"param":"x"}}}'
//! ```
//!
//! A token that is expired, signed with another secret or another
//! algorithm, meant for another audience or without `user_id`: 401.

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
use secrecy::SecretString;
use serde::Deserialize;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    jwt::{Hs256Signer, JwtLayer, JwtValidator},
    secret_from_env, ConfigError, Principal, ProtectedResource,
};

/// THE STACK: one layer. The validator pins HS256 to the secret, requires
/// `exp` and `aud` = the resource, and runs the claim check once per token.
pub fn app(public_url: &str, secret: &SecretString) -> Result<Router, ConfigError> {
    let resource = ProtectedResource::builder(public_url).build()?;
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(secret)
        .claim_check(|claims| match claims.get("user_id") {
            Some(id) if id.is_string() => Ok(()),
            _ => Err("the token carries no user_id".into()),
        })
        .build()?;
    let mcp = ServiceBuilder::new()
        .layer(resource.layer()) // every refusal names the resource's metadata
        .layer(JwtLayer::new(validator))
        .service(StreamableHttpService::new(
            || Ok(Operations(Operations::tool_router())),
            LocalSessionManager::default().into(),
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true),
        ));
    Ok(Router::new()
        .merge(resource.router())
        .nest_service("/mcp", mcp))
}

/// Signs a token for `user_id`, valid for an hour: what your login service
/// would issue.
///
/// # Errors
///
/// [`ConfigError`] for a secret shorter than 32 bytes.
pub fn issue_token(
    secret: &SecretString,
    public_url: &str,
    user_id: &str,
) -> Result<String, ConfigError> {
    (Hs256Signer::new(secret)?.token(public_url))
        .subject(user_id)
        .claim("user_id", user_id)
        .sign()
}

#[derive(Deserialize, JsonSchema)]
struct Operation {
    param: String,
}

/// The MCP server: its tools (and the router rmcp built for them).
#[derive(Clone)]
struct Operations(ToolRouter<Self>);

#[tool_router]
impl Operations {
    #[tool(description = "Run an operation as the token's user.")]
    async fn protected_operation(
        &self,
        Parameters(p): Parameters<Operation>,
        Extension(parts): Extension<Parts>,
    ) -> Result<String, String> {
        // The claims the layer verified; the check above made `user_id` sure.
        let user_id = Principal::from_parts(&parts)
            .and_then(|who| who.claim("user_id")?.as_str())
            .ok_or("no verified user_id")?;
        Ok(format!("ran with param {} for user_id {user_id}", p.param))
    }
}

#[tool_handler(router = self.0)]
impl ServerHandler for Operations {
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
    let secret = secret_from_env("JWT_SECRET")?;
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let public_url = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}/mcp"));
    let app = app(&public_url, &secret)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("MCP server on {public_url}");
    println!(
        "a token for user 42: {}",
        issue_token(&secret, &public_url, "42")?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
