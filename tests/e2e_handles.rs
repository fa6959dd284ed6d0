//! End to end through the example server on loopback, speaking the
//! 2026-07-28 wire: `confirm_delete_user` answers `input_required` (an
//! elicitation and the server's plain `requestState`); behind the stack,
//! `HandleBindingLayer` seals that state to the caller, the call and its
//! arguments for a few minutes. The honest retry deletes the user; a
//! tampered, foreign, expired state, or one replayed on another tool or
//! with other arguments, is refused with `-32602` before the tool runs.

mod support;
use support::mcp_server;

mod common;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use serde_json::{json, Value};
use tower_mcp_auth::api_key::{ApiKey, ApiKeys};

const KEY: &str = "mcp_sk_e2e-handles-owner-0123456789abcdef";
const OTHER: &str = "mcp_sk_e2e-handles-other-0123456789abcdef";

struct Server {
    url: String,
    /// Seconds added to the layer's clock.
    skew: Arc<AtomicU64>,
}

async fn start(stateless: bool) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/mcp");
    let keys = ApiKeys::new()
        .with(ApiKey::new("owner", KEY))
        .with(ApiKey::new("other", OTHER));
    let mut config = mcp_server::Config::new(url.clone(), keys);
    config.stateless = stateless;
    config.request_state_ttl = Duration::from_secs(120);
    let skew = Arc::new(AtomicU64::new(0));
    let read = skew.clone();
    config.clock = Some(Arc::new(move || {
        SystemTime::now() + Duration::from_secs(read.load(Ordering::SeqCst))
    }));
    let app = mcp_server::app(&config).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { url, skew }
}

/// A 2026-07-28 `tools/call` with the per-request `_meta`, and the retry's
/// members when given.
fn call(id: u64, tool: &str, args: Value, state: Option<&str>) -> Value {
    let mut params = json!({
        "name": tool,
        "arguments": args,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "e2e-handles", "version": "1.0.0"},
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}
        }
    });
    if let Some(state) = state {
        params["requestState"] = Value::from(state);
        params["inputResponses"] =
            json!({"confirm": {"action": "accept", "content": {"confirm": true}}});
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
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

async fn post(server: &Server, key: &str, body: &Value) -> Value {
    let reply = reqwest::Client::new()
        .post(&server.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-method", "tools/call")
        .header("mcp-name", body["params"]["name"].as_str().unwrap())
        .header("mcp-protocol-version", "2026-07-28")
        .header("x-api-key", key)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    response_of(&reply.text().await.unwrap())
}

fn args(user: &str) -> Value {
    json!({"user_id": user, "reason": "left the company"})
}

/// The first round: `input_required` with an elicitation; the state.
async fn ask(server: &Server, user: &str) -> String {
    let v = post(
        server,
        KEY,
        &call(1, "confirm_delete_user", args(user), None),
    )
    .await;
    let result = &v["result"];
    assert_eq!(result["resultType"], "input_required", "{v}");
    assert_eq!(
        result["inputRequests"]["confirm"]["method"],
        "elicitation/create"
    );
    result["requestState"].as_str().unwrap().to_owned()
}

fn assert_refused(v: &Value, message: &str) {
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let got = v["error"]["message"].as_str().unwrap();
    assert!(got.contains(message), "{got}");
}

#[tokio::test]
async fn the_server_sees_its_plain_state_and_the_client_a_sealed_one() {
    for stateless in [true, false] {
        let server = start(stateless).await;
        let state = ask(&server, "user_002").await;
        assert!(!state.contains("confirm-delete"), "{state}");
        let v = post(
            &server,
            KEY,
            &call(2, "confirm_delete_user", args("user_002"), Some(&state)),
        )
        .await;
        let text = v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"));
        let done: Value = serde_json::from_str(text).unwrap();
        assert_eq!(done["deleted"], "user_002");
        assert_eq!(done["deleted_by"], "owner");
    }
}

#[tokio::test]
async fn tampered_foreign_replayed_and_expired_states_are_refused() {
    let server = start(true).await;
    let state = ask(&server, "user_003").await;
    let mut tampered = state.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let invalid = "not valid for this request";

    let v = post(
        &server,
        KEY,
        &call(2, "confirm_delete_user", args("user_003"), Some(&tampered)),
    )
    .await;
    assert_refused(&v, invalid);
    // Foreign: another API key presents the owner's state.
    let v = post(
        &server,
        OTHER,
        &call(2, "confirm_delete_user", args("user_003"), Some(&state)),
    )
    .await;
    assert_refused(&v, invalid);
    // Replayed on another tool, and with other arguments.
    let v = post(
        &server,
        KEY,
        &call(2, "delete_user", args("user_003"), Some(&state)),
    )
    .await;
    assert_refused(&v, invalid);
    let v = post(
        &server,
        KEY,
        &call(2, "confirm_delete_user", args("user_001"), Some(&state)),
    )
    .await;
    assert_refused(&v, invalid);
    // The server's own plain state, forged by the client.
    let v = post(
        &server,
        KEY,
        &call(
            2,
            "confirm_delete_user",
            args("user_001"),
            Some("confirm-delete:user_001"),
        ),
    )
    .await;
    assert_refused(&v, invalid);
    // Expired: the layer's clock moves past the 120 s lifetime.
    server.skew.store(121, Ordering::SeqCst);
    let v = post(
        &server,
        KEY,
        &call(2, "confirm_delete_user", args("user_003"), Some(&state)),
    )
    .await;
    assert_refused(&v, "expired");
    // Nothing was deleted: the owner's fresh round still finds both users.
    server.skew.store(0, Ordering::SeqCst);
    for user in ["user_001", "user_003"] {
        let state = ask(&server, user).await;
        let v = post(
            &server,
            KEY,
            &call(3, "confirm_delete_user", args(user), Some(&state)),
        )
        .await;
        assert!(
            v["result"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains(user)),
            "{v}"
        );
    }
}
