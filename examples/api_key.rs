//! API keys only: every call needs `X-API-Key` (the seed's "API Key
//! Authentication": admin tools and a system resource for services).
//!
//! ```text
//! API_KEY=mcp_sk_change_me cargo run --example api_key
//!
//! curl -s http://127.0.0.1:3000/mcp -H 'X-API-Key: mcp_sk_change_me' \
//!   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_admin_user","arguments":{"email":"ada@example.com","name":"Ada"}}}'
//! ```
//!
//! Without the header, or with a wrong key, the answer is 401. Several keys
//! (rotation): `API_KEY=key1,key2`. The caller each tool sees is the key's
//! name (`api_key`: the variable's, in lower case).

use std::net::SocketAddr;

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
    api_key::{ApiKeyLayer, ApiKeys},
    rate_limit::failed_auth::FailedAuthLayer,
    Principal,
};

/// THE STACK: a client address that keeps guessing keys is cooled down
/// (429); every request needs a valid `X-API-Key` (401 otherwise).
pub fn app(keys: ApiKeys) -> Router {
    let mcp = StreamableHttpService::new(
        || Ok(Admin(Admin::tool_router())),
        LocalSessionManager::default().into(),
        // Stateless, plain JSON: one `curl` per call, no session to open.
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    );
    let protected = ServiceBuilder::new()
        .layer(FailedAuthLayer::new())
        .layer(ApiKeyLayer::new(keys))
        .service(mcp);
    Router::new().nest_service("/mcp", protected)
}

#[derive(Deserialize, JsonSchema)]
struct CreateAdmin {
    email: String,
    name: String,
}

#[derive(Deserialize, JsonSchema)]
struct DeleteUser {
    user_id: String,
    reason: String,
}

/// The MCP server: its tools (and the router rmcp built for them).
#[derive(Clone)]
struct Admin(ToolRouter<Self>);

/// The caller the API key layer verified: rmcp hands the tool the request's
/// `Parts`, where the layer put the `Principal`.
fn caller(parts: &Parts) -> Result<&Principal, String> {
    Principal::from_parts(parts).ok_or_else(|| "no authenticated caller".to_owned())
}

#[tool_router]
impl Admin {
    #[tool(description = "Create an admin user (API key required).")]
    async fn create_admin_user(
        &self,
        Parameters(p): Parameters<CreateAdmin>,
        Extension(parts): Extension<Parts>,
    ) -> Result<String, String> {
        let who = caller(&parts)?.name();
        Ok(format!("created admin {} <{}>, by {who}", p.name, p.email))
    }

    #[tool(description = "Delete a user (API key required).")]
    async fn delete_user(
        &self,
        Parameters(p): Parameters<DeleteUser>,
        Extension(parts): Extension<Parts>,
    ) -> Result<String, String> {
        let who = caller(&parts)?.name();
        Ok(format!("deleted {} ({}), by {who}", p.user_id, p.reason))
    }
}

const STATS: &str = "admin://system/stats";

#[tool_handler(router = self.0)]
impl ServerHandler for Admin {
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
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            STATS,
            "system_stats",
        )]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != STATS {
            return Err(ErrorData::resource_not_found("no such resource", None));
        }
        let stats = r#"{"total_users":3,"active_sessions":0}"#;
        Ok(ReadResourceResult::new(vec![ResourceContents::text(stats, STATS)]).into())
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
    let keys = ApiKeys::from_env("API_KEY")?; // an error names the variable, never a key
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("MCP server on http://{addr}/mcp (X-API-Key required)");
    let app = app(keys).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
