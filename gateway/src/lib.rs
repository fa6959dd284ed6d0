//! `mcp-auth-gateway`: the `tower-mcp-auth` stack in front of any MCP
//! server that speaks Streamable HTTP (Python, TypeScript, anything).
//!
//! ```text
//! UPSTREAM_URL=http://127.0.0.1:8000/mcp cargo run -p tower-mcp-auth-gateway
//! ```
//!
//! Callers reach the gateway's endpoint (`PUBLIC_URL`, by default
//! `http://127.0.0.1:3000/mcp`) with an API key or a bearer token;
//! the gateway authenticates them, decides each JSON-RPC call by the
//! policy, filters the lists, limits the rate, seals the session ids, and
//! forwards what it allows to the upstream with the upstream's own
//! credential: a caller's `Authorization`, `X-API-Key`, `DPoP` or cookies
//! never reach it.
//!
//! - [`config`]: the gateway's own variables (`BIND`, `UPSTREAM_*`);
//! - [`stack`]: the layers and their variables (`API_KEY`, `JWT_SECRET`,
//!   `POLICY_FILE`, …);
//! - [`proxy`]: the forwarding service;
//! - [`site`]: the DNS-rebinding check;
//! - [`identity`]: telling the upstream who calls (optional);
//! - [`demo`]: demo mode;
//! - `metrics` (feature `metrics`, on by default): the Prometheus endpoint.
//!
//! # Example
//!
//! ```no_run
//! use tower_mcp_auth::{api_key::{ApiKey, ApiKeys}, stack::Settings};
//! use tower_mcp_auth_gateway::config::UpstreamConfig;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = UpstreamConfig::new("http://127.0.0.1:8000/mcp")?;
//! let keys = ApiKeys::new().with(ApiKey::new("ops", "mcp_sk_0123456789abcdef0123456789"));
//! let mut settings = Settings::new("http://127.0.0.1:3000/mcp");
//! settings.api_keys = keys;
//! let app = tower_mcp_auth_gateway::app(&upstream, &settings).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! let grace = std::time::Duration::from_secs(10);
//! tower_mcp_auth_gateway::serve(listener, app, std::future::pending(), grace).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod config;
pub mod demo;
pub mod identity;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod proxy;
pub mod site;
pub mod stack;

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{routing::get, Router};
use tower_mcp_auth::ConfigError;

use config::UpstreamConfig;
use proxy::Proxy;
use tower_mcp_auth::stack::Settings;

/// The gateway's whole application: the protected proxy at `/mcp`, the
/// RFC 9728 metadata, and `/healthz` (200 while the gateway runs; it does
/// not call the upstream).
///
/// # Errors
///
/// [`ConfigError`] from [`Proxy::new`] or [`stack::app`].
pub async fn app(upstream: &UpstreamConfig, settings: &Settings) -> Result<Router, ConfigError> {
    let app = stack::app(Proxy::new(upstream, &settings.public_url)?, settings).await?;
    Ok(app.route("/healthz", get(|| async { "ok\n" })))
}

/// Serves `app` on `listener` (each request knows its peer's address, for
/// the per-address limits) until `shutdown` completes; then stops
/// accepting, lets the requests in flight finish, and after `grace` closes
/// what is still open (an SSE stream may never end by itself).
///
/// # Errors
///
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let deadline = async move {
        match stopped.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(target: "mcp_auth_gateway", "connections still open after the shutdown grace period: closed");
            Ok(())
        }
    }
}
