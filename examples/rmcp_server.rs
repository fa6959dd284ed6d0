//! rmcp without reading rmcp: the real `StreamableHttpService` behind API
//! keys and HS256 tokens, its DNS-rebinding lists drawn from the public
//! URL, a tool and `read_resource` that read their caller in one line.
//!
//! ```text
//! API_KEY=mcp_sk_change_me JWT_SECRET=a-long-random-secret-of-32-bytes-or-more \
//!   cargo run --example rmcp_server --features rmcp     # MCP_STATELESS=1: no sessions
//! # prints a token for alice; then (stateless):
//! curl -s http://127.0.0.1:3000/mcp -H 'X-API-Key: mcp_sk_change_me' \
//!   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
//! ```
//!
//! No credential, or a bad one: 401 with the challenge. A `Host` or
//! `Origin` that is not the public URL's: 403 from rmcp.

use axum::Router;
use rmcp::{
    handler::server::router::tool::ToolRouter,
    model::*,
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, RoleServer, ServerHandler,
};
use secrecy::SecretString;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKeyLayer, ApiKeys},
    jwt::{Hs256Signer, JwtLayer, JwtValidator},
    mcp::{session::SessionBindingLayer, McpPolicy, McpPolicyLayer},
    ConfigError, Principal, ProtectedResource, Rule,
};

/// The one resource: the caller's own notes.
pub const NOTES_URI: &str = "notes://mine";

/// THE STACK and rmcp's settings; a session (`Mcp-Session-Id`) is only
/// its opener's.
pub fn app(
    public_url: &str,
    keys: ApiKeys,
    secret: &SecretString,
    stateless: bool,
) -> Result<Router, ConfigError> {
    let resource = ProtectedResource::builder(public_url).build()?;
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(secret)
        .build()?;
    let policy = McpPolicy::builder()
        .default(Rule::authenticated())
        .build()?;

    // rmcp refuses a Host or Origin other than the public URL's (DNS
    // rebinding; its default allows loopback only). Stateless: no sessions,
    // each POST answered with plain JSON; else (rmcp's default) `initialize`
    // opens a session and answers come as SSE.
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(resource.allowed_hosts())
        .with_allowed_origins(resource.allowed_origins())
        .with_legacy_session_mode(!stateless)
        .with_json_response(stateless);
    let mcp = StreamableHttpService::new(
        || Ok(Notes(Notes::tool_router())),
        LocalSessionManager::default().into(),
        config,
    );

    let stack = ServiceBuilder::new()
        .layer(resource.layer()) // every refusal names the resource's metadata
        .layer(ApiKeyLayer::new(keys).optional())
        .layer(JwtLayer::new(validator).optional())
        .layer(McpPolicyLayer::new(policy)) // anonymous: 401
        .layer(SessionBindingLayer::new()) // a session belongs to its opener
        .service(mcp);
    Ok(Router::new()
        .merge(resource.router())
        .nest_service("/mcp", stack))
}

/// The MCP server: one tool, one resource.
#[derive(Clone)]
struct Notes(ToolRouter<Self>);

#[tool_router]
impl Notes {
    /// The caller is a parameter (feature `rmcp`): no `Extension<Parts>`.
    #[tool(description = "Who is calling, and how.")]
    async fn whoami(&self, caller: Principal) -> String {
        format!("{} via {}", caller.name(), caller.scheme())
    }
}

#[tool_handler(router = self.0)]
impl ServerHandler for Notes {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            NOTES_URI, "my_notes",
        )]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = tower_mcp_auth::rmcp::caller(&ctx)?; // one line elsewhere
        if request.uri != NOTES_URI {
            return Err(ErrorData::resource_not_found("no such resource", None));
        }
        let text = format!("the notes of {}", caller.name());
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
    let keys = ApiKeys::from_env("API_KEY")?;
    let secret = tower_mcp_auth::secret_from_env("JWT_SECRET")?;
    let stateless = std::env::var("MCP_STATELESS").is_ok_and(|v| v == "1");
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let public_url = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}/mcp"));
    let app = app(&public_url, keys, &secret, stateless)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("MCP server on {public_url} (stateless: {stateless})");
    let alice = token(&secret, &public_url, "alice")?;
    println!("a token for alice: {alice}");
    axum::serve(listener, app).await?;
    Ok(())
}

/// An HS256 token for `sub`, valid for an hour: what your login service
/// would issue.
///
/// # Errors
///
/// [`ConfigError`] for a secret shorter than 32 bytes.
pub fn token(secret: &SecretString, public_url: &str, sub: &str) -> Result<String, ConfigError> {
    Hs256Signer::new(secret)?
        .token(public_url)
        .subject(sub)
        .sign()
}
