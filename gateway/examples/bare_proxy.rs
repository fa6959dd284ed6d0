//! FOR BENCHMARKS ONLY (`scripts/bench-gateway`): the gateway's proxy with
//! NO layers in front of it, to measure what the stack costs in the
//! gateway. An example, not a binary: the release binary
//! `mcp-auth-gateway` has no way to turn the layers off. It binds
//! loopback only.
//!
//! ```text
//! BIND=127.0.0.1:3002 UPSTREAM_URL=http://127.0.0.1:8000/mcp \
//!     cargo run --release -p tower-mcp-auth-gateway --example bare_proxy
//! ```

use std::time::Duration;

use axum::{routing::any_service, Router};
use tower_mcp_auth_gateway::{config::GatewayConfig, proxy::Proxy};

#[tokio::main]
async fn main() {
    let config = GatewayConfig::from_env().unwrap_or_else(|e| {
        eprintln!("configuration error: {e}");
        std::process::exit(1)
    });
    if !config.bind.ip().is_loopback() {
        eprintln!("this unauthenticated benchmark proxy binds loopback only");
        std::process::exit(1);
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .unwrap_or_else(|e| {
            eprintln!("cannot listen on {} (BIND): {e}", config.bind);
            std::process::exit(1)
        });
    let public_url = format!("http://{}/mcp", config.bind);
    let proxy = Proxy::new(&config.upstream, &public_url).unwrap_or_else(|e| {
        eprintln!("configuration error: {e}");
        std::process::exit(1)
    });
    let app = Router::new().route_service("/mcp", any_service(proxy));
    println!(
        "bare proxy (no layers, benchmarks only) on {}, forwarding to {}",
        config.bind, config.upstream.url
    );
    let grace = Duration::from_secs(1);
    if let Err(e) =
        tower_mcp_auth_gateway::serve(listener, app, std::future::pending(), grace).await
    {
        eprintln!("server error: {e}");
        std::process::exit(1);
    }
}
