//! The MCP service itself: rmcp's Streamable HTTP transport over the
//! [`McpServer`], with its DNS-rebinding checks drawn from `PUBLIC_URL`.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use tower_mcp_auth::{ConfigError, ProtectedResource};

use super::{config::Config, store::Store, tools::McpServer};

/// The MCP service itself (tools, resources, rmcp's transport with its
/// DNS-rebinding checks), behind the stack of [`app`](super::app).
///
/// # Errors
///
/// [`ConfigError`] when `PUBLIC_URL` is not a resource identifier.
pub fn mcp_service(config: &Config) -> Result<McpService, ConfigError> {
    // rmcp's allow-lists for the `Host` and `Origin` headers, from the
    // public URL (a loopback URL allows every loopback name on its port).
    let resource = ProtectedResource::builder(config.public_url()).build()?;

    let sessions = Arc::new(LocalSessionManager::default());
    let store = Store::seeded(sessions.clone());
    let conformance = config.conformance_fixtures;
    let mut server_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(resource.allowed_hosts())
        .with_allowed_origins(resource.allowed_origins())
        .enforce_origin_validation();
    if config.stateless {
        server_config = server_config
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None);
    }
    Ok(StreamableHttpService::new(
        move || {
            Ok(if conformance {
                McpServer::with_conformance_fixtures(store.clone())
            } else {
                McpServer::new(store.clone())
            })
        },
        sessions,
        server_config,
    ))
}

/// The MCP service this example serves.
pub type McpService = StreamableHttpService<McpServer, LocalSessionManager>;
