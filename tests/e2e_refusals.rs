//! End to end on loopback: what the README and SECURITY.md say about
//! refusals, checked as a user would see them (issue 17, items 1–4).
//!
//! * a batch costs one unit per message by default;

use std::net::SocketAddr;

use axum::Router;
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    mcp::{McpPolicy, McpPolicyLayer, Rule},
    rate_limit::{Quota, RateLimitLayer},
    ProtectedResource,
};

const KEY: &str = "mcp_sk_e2e-refusals-key-0123456789abcdef";
const ACCEPT: &str = "application/json, text/event-stream";

/// Serves `app` on 127.0.0.1:0 with the client's address known.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn resource(addr: SocketAddr) -> ProtectedResource {
    ProtectedResource::builder(format!("http://{addr}/mcp"))
        .build()
        .unwrap()
}

fn keys() -> ApiKeys {
    ApiKeys::new().with(ApiKey::new("ops", KEY))
}

/// A JSON-RPC `tools/call` with this id.
fn call(id: u32) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "echo", "arguments": {}}})
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

/// POSTs `body` as an MCP client does, with these extra headers.
async fn post(addr: SocketAddr, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

// ─────────────────────── 3. a batch costs per message ───────────────────────

/// SECURITY.md: "a batch costs one unit per call". Without any `.cost(…)`
/// a batch of 40 calls now costs 40 units (it cost 1): after one such
/// batch, a quota of 60 a minute has 20 left, and a second batch is 429.
#[tokio::test]
async fn a_batch_costs_one_unit_per_message_by_default() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let policy = McpPolicy::builder()
        .default(Rule::authenticated())
        .build()
        .unwrap();
    let stack = ServiceBuilder::new()
        .layer(resource(addr).layer())
        .layer(ApiKeyLayer::new(keys()))
        .layer(McpPolicyLayer::new(policy))
        .layer(RateLimitLayer::per_principal(Quota::per_minute(60)));
    let app = Router::new().route_service(
        "/mcp",
        stack.service(Router::new().fallback(|| async { "[]" })),
    );
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let batch = Value::Array((1..=40).map(call).collect());
    let reply = post(addr, &batch, &[("x-api-key", KEY)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.header("ratelimit").starts_with(r#""default";r=20;"#),
        "{}",
        reply.header("ratelimit")
    );
    let reply = post(addr, &batch, &[("x-api-key", KEY)]).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.json()["error"]["data"]["error"], "rate_limited");
    // One message costs one unit: 20 are left for single calls.
    let reply = post(addr, &call(41), &[("x-api-key", KEY)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.header("ratelimit").starts_with(r#""default";r=19;"#),
        "{}",
        reply.header("ratelimit")
    );
}
