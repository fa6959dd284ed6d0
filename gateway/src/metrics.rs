//! Metrics (feature `metrics`, on by default): the library's decision
//! counters and the upstream's latency and statuses, in the Prometheus
//! text format on a separate address (`METRICS_BIND`), at `/metrics`.
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `tower_mcp_auth_decisions_total` | counter | `layer`, `outcome`, `reason` (every authentication and authorization decision: see `tower_mcp_auth::audit`) |
//! | `mcp_gateway_upstream_requests_total` | counter | `outcome` (`response`, `unreachable`, `timeout`, `busy`, `refused`, `redirected`), `status` (the upstream's status code, `none` without a response) |
//! | `mcp_gateway_upstream_response_seconds` | histogram | `outcome`: from sending the request to the upstream's response headers (or the failure) |
//!
//! Every label value is from a fixed set: no caller-chosen text becomes a
//! label.

use std::time::Duration;

use axum::{routing::get, Router};
use http::{header, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The counter of upstream exchanges.
pub const UPSTREAM_REQUESTS: &str = "mcp_gateway_upstream_requests_total";

/// The histogram of the upstream's time to response headers.
pub const UPSTREAM_SECONDS: &str = "mcp_gateway_upstream_response_seconds";

/// The histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often the recorder's histograms are drained.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder as the process's metrics recorder and
/// starts its upkeep. Call once, within a Tokio runtime.
///
/// # Errors
///
/// The exporter's error: another recorder is installed already.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(UPSTREAM_SECONDS.into()),
            &BUCKETS,
        )?
        .install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// `GET /metrics`: the Prometheus text exposition of `handle`.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let text = handle.render();
            async move {
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    text,
                )
            }
        }),
    )
}

/// Serves [`router`] on `listener` until the process ends.
///
/// # Errors
///
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
) -> std::io::Result<()> {
    axum::serve(listener, router(handle)).await
}

/// Counts one upstream exchange and its time.
pub(crate) fn upstream(outcome: &'static str, status: Option<StatusCode>, elapsed: Duration) {
    let status = status.map_or_else(|| "none".to_owned(), |s| s.as_str().to_owned());
    metrics::counter!(UPSTREAM_REQUESTS, "outcome" => outcome, "status" => status).increment(1);
    metrics::histogram!(UPSTREAM_SECONDS, "outcome" => outcome).record(elapsed.as_secs_f64());
}
