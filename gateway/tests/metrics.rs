//! The Prometheus endpoint (feature `metrics`): the library's decision
//! counters and the upstream's statuses and latency, scraped over HTTP.
//! One test: the recorder is the process's.
#![cfg(feature = "metrics")]

mod common;

use common::*;
use serde_json::json;

/// The value of the first sample whose line starts with `name{` and holds
/// every label of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn decisions_and_upstream_exchanges_are_counted() {
    let handle = tower_mcp_auth_gateway::metrics::install().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scrape = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(tower_mcp_auth_gateway::metrics::serve(listener, handle));

    let (upstream, _) = rmcp_upstream().await;
    let gw = gateway(&upstream, |_| {}).await;
    gw.initialize(Who::Key).await;
    let refused = gw
        .post(
            Who::Nobody,
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    assert_eq!(refused.status, 401);
    let down = gateway(&dead_upstream().await, |_| {}).await;
    assert_eq!(down.post(Who::Key, None, call(1, "echo")).await.status, 502);

    let r = reqwest::get(&scrape).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let decisions = "tower_mcp_auth_decisions_total";
    assert!(
        sample(
            &text,
            decisions,
            &["layer=\"api_key\"", "outcome=\"accepted\""]
        ) >= Some(3.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            decisions,
            &["layer=\"mcp_policy\"", "outcome=\"refused\""]
        ) >= Some(1.0),
        "{text}"
    );
    let upstream = "mcp_gateway_upstream_requests_total";
    assert_eq!(
        sample(&text, upstream, &["outcome=\"response\"", "status=\"200\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, upstream, &["outcome=\"response\"", "status=\"202\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            upstream,
            &["outcome=\"unreachable\"", "status=\"none\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mcp_gateway_upstream_response_seconds_count",
            &["outcome=\"response\""]
        ),
        Some(2.0),
        "{text}"
    );
}
