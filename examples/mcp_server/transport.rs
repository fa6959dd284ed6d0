//! The MCP service itself: rmcp's Streamable HTTP transport over the
//! [`McpServer`], with its DNS-rebinding checks drawn from `PUBLIC_URL`.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use tower_mcp_auth::ConfigError;

use super::{config::Config, store::Store, tools::McpServer};

/// The MCP service itself (tools, resources, rmcp's transport with its
/// DNS-rebinding checks), before any layer of [`protect`](super::protect).
///
/// # Errors
///
/// [`ConfigError`] when `PUBLIC_URL` is not a valid URL.
pub fn mcp_service(config: &Config) -> Result<McpService, ConfigError> {
    let (allowed_hosts, allowed_origins) = dns_rebinding_allowlists(&config.public_url)?;

    let sessions = Arc::new(LocalSessionManager::default());
    let store = Store::seeded(sessions.clone());
    let mut server_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts)
        .with_allowed_origins(allowed_origins)
        .enforce_origin_validation();
    if config.stateless {
        server_config = server_config
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None);
    }
    Ok(StreamableHttpService::new(
        move || Ok(McpServer::new(store.clone())),
        sessions,
        server_config,
    ))
}

/// The MCP service this example serves.
pub type McpService = StreamableHttpService<McpServer, LocalSessionManager>;

/// rmcp's allow-lists for the `Host` and `Origin` headers, from the public
/// URL. A loopback URL also allows the other loopback names on its port
/// (`localhost`, `127.0.0.1`, `[::1]`), so `curl localhost:3000` works when
/// the URL says `127.0.0.1:3000`.
fn dns_rebinding_allowlists(public_url: &str) -> Result<(Vec<String>, Vec<String>), ConfigError> {
    let uri: http::Uri = public_url.parse().map_err(|_| ConfigError::InvalidEnv {
        var: "PUBLIC_URL".into(),
        reason: "not a valid URL".into(),
    })?;
    let scheme = uri.scheme_str().unwrap_or("https");
    let host = uri.host().unwrap_or_default();
    let explicit_port = uri.port_u16();
    let port = explicit_port.unwrap_or(if scheme == "http" { 80 } else { 443 });
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let hosts: Vec<String> = if loopback {
        vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
    } else {
        vec![host.to_owned()]
    };
    let allowed_hosts = hosts
        .iter()
        .map(|h| match explicit_port {
            Some(p) => format!("{h}:{p}"),
            None => h.clone(),
        })
        .collect();
    let allowed_origins = hosts
        .iter()
        .map(|h| format!("{scheme}://{h}:{port}"))
        .collect();
    Ok((allowed_hosts, allowed_origins))
}
