//! A tool that reads from another API for its caller (the seed's
//! `get_user_data` reading from a user service), with a token exchanged for
//! that API (RFC 8693), never the caller's own: the caller's verified token
//! is kept by `KeepSubjectTokenLayer`, the tool asks the exchanger for an
//! `Authorization` value in one line, and an `ExchangeError` becomes the
//! tool's JSON-RPC error by `?`.
//!
//! ```text
//! OAUTH_ISSUER=https://auth.example.com OAUTH_CLIENT_ID=mcp-server OAUTH_CLIENT_SECRET=… \
//!   USERS_API=https://users.example.com \
//!   cargo run --example token_exchange --features token-exchange,rmcp
//! curl -s http://127.0.0.1:3000/mcp -H "Authorization: Bearer $TOKEN" \
//!   -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
//!   -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_user_data","arguments":{}}}'
//! ```
//!
//! The authorization server must allow this client the token exchange
//! grant for `USERS_API` (its resource identifier: `USERS_API_RESOURCE`,
//! default `USERS_API`), and the users API must check `aud`. A caller with
//! no access token gets JSON-RPC error -32001, a refused exchange -32003,
//! an authorization server that is down -32053.

use axum::Router;
use http::{header::AUTHORIZATION, request::Parts};
use rmcp::{
    handler::server::{router::tool::ToolRouter, tool::Extension},
    model::*,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, ServerHandler,
};
use secrecy::SecretString;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    discovery::AuthorizationServerMetadata,
    exchange::{KeepSubjectTokenLayer, Target, TokenExchanger},
    jwt::{JwtLayer, JwtValidator},
    ConfigError, ProtectedResource,
};

/// Where the users API is, and the identifier tokens for it name.
#[derive(Clone)]
pub struct UsersApi {
    /// Its base URL (`GET {url}/me`).
    pub url: String,
    /// Its resource identifier, the exchange's `resource`.
    pub resource: String,
}

/// THE STACK: the caller's JWT verified, then kept for the exchanger.
pub fn app(
    resource: &ProtectedResource,
    validator: JwtValidator,
    exchanger: TokenExchanger,
    users: UsersApi,
) -> Result<Router, ConfigError> {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(resource.allowed_hosts())
        .with_allowed_origins(resource.allowed_origins())
        .with_legacy_session_mode(false)
        .with_json_response(true);
    let mcp = StreamableHttpService::new(
        move || Ok(Users::new(exchanger.clone(), users.clone())),
        LocalSessionManager::default().into(),
        config,
    );
    let stack = ServiceBuilder::new()
        .layer(resource.layer())
        .layer(JwtLayer::new(validator).optional())
        .layer(KeepSubjectTokenLayer::new()) // below the authenticator
        .service(mcp);
    Ok(Router::new()
        .merge(resource.router())
        .nest_service("/mcp", stack))
}

/// The MCP server: one tool.
#[derive(Clone)]
struct Users {
    exchanger: TokenExchanger,
    users: UsersApi,
    tools: ToolRouter<Self>,
}

#[tool_router]
impl Users {
    fn new(exchanger: TokenExchanger, users: UsersApi) -> Self {
        Self {
            exchanger,
            users,
            tools: Self::tool_router(),
        }
    }

    /// The request's `Parts` carry the caller's kept token.
    #[tool(description = "The caller's record, from the users API.")]
    async fn get_user_data(&self, Extension(parts): Extension<Parts>) -> Result<String, ErrorData> {
        let target = Target::resource(&self.users.resource).scopes(["users:read"]);
        let authorization = self.exchanger.authorization_for(&parts, target).await?;
        let failed = |e: reqwest::Error| {
            ErrorData::internal_error(format!("the users API failed: {}", e.without_url()), None)
        };
        let response = reqwest::Client::new()
            .get(format!("{}/me", self.users.url))
            .header(AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let body = response.text().await.map_err(failed)?;
        if !status.is_success() {
            return Err(ErrorData::internal_error(
                format!("the users API answered {status}"),
                None,
            ));
        }
        Ok(body)
    }
}

#[tool_handler(router = self.tools)]
impl ServerHandler for Users {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let issuer = env("OAUTH_ISSUER")?;
    let users_url = env("USERS_API")?;
    let users = UsersApi {
        resource: env("USERS_API_RESOURCE").unwrap_or_else(|_| users_url.clone()),
        url: users_url,
    };
    let addr = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let public_url = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}/mcp"));

    let metadata = AuthorizationServerMetadata::discover(&issuer).await?;
    let resource = metadata.protected_resource(&public_url).build()?;
    let validator = JwtValidator::builder(&resource)
        .jwks_from_issuer(&issuer)
        .build()?;
    let secret: SecretString = tower_mcp_auth::secret_from_env("OAUTH_CLIENT_SECRET")?;
    let exchanger =
        TokenExchanger::from_metadata(&metadata, env("OAUTH_CLIENT_ID")?, secret)?.build()?;

    let app = app(&resource, validator, exchanger, users)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("MCP server on {public_url}; get_user_data reads from the users API");
    axum::serve(listener, app).await?;
    Ok(())
}
