//! OAuth 2.1 with an authorization server's JWKS, and scopes per tool and
//! resource (the seed's "OAuth2 Provider Setup" and "Scope-Based
//! Authorization"): access tokens are JWTs signed by the issuer's keys,
//! found by RFC 8414 / OpenID discovery.
//!
//! ```text
//! OAUTH_ISSUER=https://auth.example.com cargo run --example oauth_jwks
//!
//! curl -s http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp
//! curl -s http://127.0.0.1:3000/mcp -H "Authorization: Bearer $TOKEN" \
//!   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_user_data","arguments":{"user_id":"user_001"}}}'
//! ```
//!
//! A token needs `iss` = `OAUTH_ISSUER`, `aud` = `PUBLIC_URL` (default
//! `http://127.0.0.1:3000/mcp`) and an unexpired `exp`. No token: 401 with
//! a `WWW-Authenticate` that points the client at the metadata above. A
//! token without the tool's scope: 403 with the scope to ask for.

use axum::Router;
use http::request::Parts;
use rmcp::{
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    model::*,
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, RoleServer, ServerHandler,
};
use serde::Deserialize;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    jwt::{JwtLayer, JwtValidator},
    mcp::{McpPolicy, McpPolicyLayer},
    ConfigError, Principal, ProtectedResource, Rule,
};

/// THE STACK: the resource names its authorization server; the validator
/// finds the issuer's keys and checks `iss`, `aud` and `exp`; the policy
/// gives each tool and resource its scope.
pub fn app(public_url: &str, issuer: &str) -> Result<Router, ConfigError> {
    let resource = ProtectedResource::builder(public_url)
        .authorization_server(issuer)
        .scopes_supported(["read:data", "write:data"])
        .build()?;
    let validator = JwtValidator::builder(&resource) // `aud` = the resource
        .jwks_from_issuer(issuer) // discovery, then the JWKS, refreshed
        .build()?;
    let policy = McpPolicy::builder()
        .default(Rule::bearer())
        .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
        .tool("update_user_data", Rule::bearer().scopes(["write:data"]))
        .resource(
            "user://{user_id}/private",
            Rule::bearer().scopes(["read:data"]),
        )
        .build()?;
    let mcp = ServiceBuilder::new()
        .layer(resource.layer()) // every refusal names the resource's metadata
        .layer(JwtLayer::new(validator)) // no or bad token: 401
        .layer(McpPolicyLayer::new(policy)) // missing scope: 403
        .service(StreamableHttpService::new(
            || Ok(Users(Users::tool_router())),
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
struct UpdateUser {
    user_id: String,
    name: String,
}

/// The MCP server: its tools (and the router rmcp built for them).
#[derive(Clone)]
struct Users(ToolRouter<Self>);

fn subject(parts: &Parts) -> Result<&str, String> {
    Principal::from_parts(parts)
        .map(Principal::name)
        .ok_or_else(|| "no caller".to_owned())
}

#[tool_router]
impl Users {
    #[tool(description = "Get a user's data (scope read:data).")]
    async fn get_user_data(
        &self,
        Parameters(p): Parameters<UserId>,
        Extension(parts): Extension<Parts>,
    ) -> Result<String, String> {
        Ok(format!(
            "{}: Alice Martin (read by {})",
            p.user_id,
            subject(&parts)?
        ))
    }

    #[tool(description = "Rename a user (scope write:data).")]
    async fn update_user_data(
        &self,
        Parameters(p): Parameters<UpdateUser>,
        Extension(parts): Extension<Parts>,
    ) -> Result<String, String> {
        Ok(format!(
            "{} is now {} (by {})",
            p.user_id,
            p.name,
            subject(&parts)?
        ))
    }
}

#[tool_handler(router = self.0)]
impl ServerHandler for Users {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder().enable_tools();
        ServerConfig::new(capabilities.enable_resources().build())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let user = (request.uri.strip_prefix("user://"))
            .and_then(|rest| rest.strip_suffix("/private"))
            .ok_or_else(|| ErrorData::resource_not_found("no such resource", None))?;
        let text = serde_json::json!({"user_id": user, "phone": "+1-555-0101"}).to_string();
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri)]).into())
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
    let issuer = std::env::var("OAUTH_ISSUER").map_err(|_| "set OAUTH_ISSUER")?;
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let public_url = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}/mcp"));
    let app = app(&public_url, &issuer)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("MCP server on {public_url}, tokens from {issuer}");
    axum::serve(listener, app).await?;
    Ok(())
}
