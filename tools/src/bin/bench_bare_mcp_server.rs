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
//!
//! `BENCH_LAYERS` (ablation, to see what each layer costs end to end):
//! `key` puts the example's API-key check in front (`X-API-Key` with
//! `API_KEY`, no principal given), `key,policy` adds its MCP policy, and
//! `key,policy,limit` its per-principal rate limit (`RATE_LIMIT_PER_MINUTE`),
//! each configured as the example configures it.

use std::{convert::Infallible, net::SocketAddr};

use axum::{body::Body, Router};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::ApiKeyLayer,
    mcp::{McpPolicyLayer, SharedPolicy},
    rate_limit::{Quota, RateLimitLayer},
    AuthScheme, ConfigError, Principal, ProtectedResource,
};

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
    let layers = std::env::var("BENCH_LAYERS").unwrap_or_default();
    let layers: Vec<&str> = layers.split(',').filter(|l| !l.is_empty()).collect();
    let app = match ablated(&config, mcp, &layers) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
    };
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

/// The service with no layer (one fixed principal), or behind the layers
/// named in `layers`, outermost first: `key`, `key,policy` or
/// `key,policy,limit`, nested as `McpAuth` nests them (no box between).
fn ablated<S, B>(
    config: &mcp_server::config::Config,
    mcp: S,
    layers: &[&str],
) -> Result<Router, ConfigError>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let policy: SharedPolicy = mcp_server::policy()?.into();
    let resource = ProtectedResource::builder(config.public_url()).build()?;
    let key = || {
        ServiceBuilder::new()
            .layer(resource.layer())
            .layer(ApiKeyLayer::new(config.auth.api_keys.clone()))
    };
    let quota = Quota::per_minute(config.auth.rate_limit_per_minute);
    let router = Router::new();
    let path = mcp_server::config::MCP_PATH;
    Ok(match layers.join(",").as_str() {
        "" => {
            let principal = Principal::new(AuthScheme::ApiKey, "bench");
            let svc = ServiceBuilder::new()
                .map_request(move |mut req: http::Request<Body>| {
                    req.extensions_mut().insert(principal.clone());
                    req
                })
                .service(mcp);
            router.nest_service(path, svc)
        }
        "key" => router.nest_service(path, key().service(mcp)),
        "key,policy" => router.nest_service(
            path,
            key()
                .layer(McpPolicyLayer::new(policy.clone()))
                .service(mcp),
        ),
        "key,policy,limit" => router.nest_service(
            path,
            key()
                .layer(McpPolicyLayer::new(policy.clone()))
                .layer(RateLimitLayer::from_policy(&policy, quota))
                .service(mcp),
        ),
        other => {
            eprintln!("BENCH_LAYERS: {other:?} is none of key, key,policy, key,policy,limit");
            std::process::exit(1);
        }
    })
}
