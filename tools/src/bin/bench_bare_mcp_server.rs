//! FOR BENCHMARKS ONLY (`scripts/bench-e2e`, `scripts/conformance`): the
//! example MCP server's service (`examples/mcp_server/transport.rs`, the
//! same tools, store and rmcp transport) served with NO authentication
//! layers, to measure what the layer stack of `examples/mcp_server/main.rs`
//! costs end to end.
//!
//! Every request gets one fixed principal (the tools need a caller), so the
//! tools do the same work as behind the stack, and logging is set up as
//! the example sets it up (`RUST_LOG`), so both pay the same for rmcp's own
//! `tracing`. Never deploy this: anyone
//! reaching it acts as that principal. It binds loopback only.
//!
//! ```text
//! BIND=127.0.0.1:3001 MCP_STATELESS=1 API_KEY=mcp_sk_unused_0123456789abcdef cargo run --release -p tower-mcp-auth-tools --bin bench_bare_mcp_server
//! ```

use std::net::SocketAddr;

use axum::Router;
use tower::ServiceBuilder;
use tower_mcp_auth::{AuthScheme, Principal};

#[allow(dead_code, unreachable_pub)]
#[path = "../../../examples/mcp_server/main.rs"]
mod mcp_server;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let config = match mcp_server::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
    };
    if !config.bind.ip().is_loopback() {
        eprintln!("this unauthenticated benchmark server binds loopback only");
        std::process::exit(1);
    }
    let mcp = match mcp_server::transport::mcp_service(&config) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
    };
    let principal = Principal::new(AuthScheme::ApiKey, "bench");
    let svc = ServiceBuilder::new()
        .map_request(move |mut req: http::Request<axum::body::Body>| {
            req.extensions_mut().insert(principal.clone());
            req
        })
        .service(mcp);
    let app = Router::new().nest_service(mcp_server::config::MCP_PATH, svc);
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {} (BIND): {e}", config.bind);
            std::process::exit(1);
        }
    };
    println!(
        "bare MCP server (no auth, benchmarks only) on {}",
        config.bind
    );
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("server error: {e}");
        std::process::exit(1);
    }
}
