//! End to end, found by the conformance run (`scripts/conformance`): on the
//! 2026-07-28 wire rmcp marks `tools/list` results `cacheScope: "public"`
//! (SEP-2549: any client or intermediary may cache the result and serve it
//! to any user). Behind the policy layer the list is filtered for the
//! caller, so it must leave as `private`, or a shared cache would serve an
//! API-key caller's list (admin tools included) to a bearer caller, and a
//! filtered list to a caller who may use more. Through the real example
//! server, with sessions (SSE answer) and stateless (JSON answer).

mod support;
use support::mcp_server;

mod common;

use axum::Router;
use serde_json::{json, Value};
use tower_mcp_auth::api_key::{ApiKey, ApiKeys};

const KEY: &str = "mcp_sk_list-cache-scope-0123456789abcdef";

/// A 2026-07-28 `tools/list`: routing headers and the per-request `_meta`.
fn tools_list() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/list",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "cache-scope-test", "version": "1.0.0"},
            "io.modelcontextprotocol/clientCapabilities": {}
        }}
    })
}

/// The JSON-RPC response in a JSON or an SSE answer.
fn response_of(body: &str) -> Value {
    let data = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|d| d.starts_with('{'));
    serde_json::from_str(data.unwrap_or(body)).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Serves the example on loopback, behind its stack or bare (the rmcp
/// service alone), and posts one 2026-07-28 `tools/list` with the API key;
/// returns the result.
async fn list_tools(stateless: bool, stack: bool) -> Value {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/mcp");
    let mut config =
        mcp_server::Config::new(url.clone(), ApiKeys::new().with(ApiKey::new("svc", KEY)));
    config.stateless = stateless;
    let app = if stack {
        mcp_server::app(&config).await.unwrap()
    } else {
        Router::new().nest_service(
            mcp_server::MCP_PATH,
            mcp_server::mcp_service(&config).unwrap(),
        )
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let reply = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-method", "tools/list")
        .header("mcp-protocol-version", "2026-07-28")
        .header("x-api-key", KEY)
        .body(tools_list().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let v = response_of(&reply.text().await.unwrap());
    assert_eq!(v["id"], 1, "{v}");
    v["result"].clone()
}

fn names(result: &Value) -> Vec<&str> {
    result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_filtered_tool_list_is_private_to_its_caller() {
    for stateless in [false, true] {
        // The service alone: every tool, and rmcp's `public`.
        let bare = list_tools(stateless, false).await;
        assert_eq!(bare["cacheScope"], "public", "{bare}");
        assert!(names(&bare).contains(&"get_user_data"));

        // Behind the stack: the API-key caller's list, marked private;
        // the freshness hint is the server's.
        let stack = list_tools(stateless, true).await;
        assert_eq!(
            stack["cacheScope"], "private",
            "stateless {stateless}: {stack}"
        );
        assert_eq!(stack["ttlMs"], bare["ttlMs"]);
        let listed = names(&stack);
        assert!(listed.contains(&"create_admin_user"), "{listed:?}");
        assert!(
            !listed.contains(&"get_user_data"),
            "bearer-only tools are filtered: {listed:?}"
        );
    }
}
