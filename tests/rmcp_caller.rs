//! What an rmcp tool receives (feature `rmcp`, issue 17 item 9): the
//! `caller: Principal` parameter and `tower_mcp_auth::rmcp::caller`, end
//! to end through rmcp's real `StreamableHttpService` on loopback, with
//! sessions (the example's default) and without an authenticator.

#[allow(dead_code)]
#[path = "../examples/rmcp_server.rs"]
mod rmcp_server;

use axum::Router;
use reqwest::{header::HeaderMap, StatusCode};
use rmcp::{
    handler::server::router::tool::ToolRouter,
    model::*,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ServerHandler,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower_mcp_auth::{api_key::ApiKeys, AuthScheme, Principal, JSONRPC_UNAUTHORIZED};

const KEY: &str = "mcp_sk_change_me_0123456789";
const SECRET: &str = "a-long-random-secret-of-32-bytes-or-more";

async fn serve(app: impl FnOnce(&str) -> Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = app(&url);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// One POST; the JSON-RPC reply, whether rmcp answered JSON or SSE.
async fn post(url: &str, headers: &[(&str, &str)], body: Value) -> (StatusCode, HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let text = res.text().await.unwrap();
    let reply = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .or_else(|| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    (status, headers, reply)
}

fn whoami(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "whoami", "arguments": {}}})
}

#[tokio::test]
async fn in_a_session_each_call_sees_its_own_caller() {
    let secret = SecretString::from(SECRET);
    let url = serve(|url| {
        let keys = ApiKeys::from_list("API_KEY", &SecretString::from(KEY)).unwrap();
        rmcp_server::app(url, keys, &secret, false).unwrap()
    })
    .await;
    let key = ("x-api-key", KEY);

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}});
    let (status, headers, reply) = post(&url, &[key], init).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let sid = ("mcp-session-id", session.as_str());
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(&url, &[key, sid], initialized).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, _, reply) = post(&url, &[key, sid], whoami(2)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["result"]["content"][0]["text"], "api_key via api_key");
    let read = json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read",
                      "params": {"uri": rmcp_server::NOTES_URI}});
    let (_, _, reply) = post(&url, &[key, sid], read).await;
    assert_eq!(
        reply["result"]["contents"][0]["text"],
        "the notes of api_key"
    );

    // Another caller on that session: the session is not theirs (404 from
    // rmcp, as for an unknown session), and no tool runs.
    let token = format!(
        "Bearer {}",
        rmcp_server::token(&SecretString::from(SECRET), &url, "alice").unwrap()
    );
    let (status, _, reply) = post(&url, &[("authorization", &token), sid], whoami(4)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
}

/// A server whose tool takes `caller: Principal`, served bare or behind a
/// layer that inserts a principal (as an authenticator would).
#[derive(Clone)]
struct Echo(ToolRouter<Self>);

#[tool_router]
impl Echo {
    #[tool(description = "The caller")]
    async fn whoami(&self, caller: Principal) -> String {
        format!("{}:{}", caller.scheme(), caller.name())
    }
}

#[tool_handler(router = self.0)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

fn echo_service() -> StreamableHttpService<Echo, LocalSessionManager> {
    StreamableHttpService::new(
        || Ok(Echo(Echo::tool_router())),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    )
}

#[tokio::test]
async fn the_parameter_is_the_principal_of_the_request() {
    let url = serve(|_| {
        let mcp = tower::ServiceBuilder::new()
            .map_request(|mut req: http::Request<axum::body::Body>| {
                let who = Principal::new(AuthScheme::Jwt, "bob");
                req.extensions_mut().insert(who);
                req
            })
            .service(echo_service());
        Router::new().nest_service("/mcp", mcp)
    })
    .await;
    let (status, _, reply) = post(&url, &[], whoami(1)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["result"]["content"][0]["text"], "jwt:bob");
}

#[tokio::test]
async fn without_a_principal_the_call_fails_with_unauthorized() {
    // No authenticator in front: the tool never runs.
    let url = serve(|_| Router::new().nest_service("/mcp", echo_service())).await;
    let (status, _, reply) = post(&url, &[], whoami(7)).await;
    assert_eq!(status, StatusCode::OK, "a JSON-RPC error, from rmcp");
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["error"]["code"], JSONRPC_UNAUTHORIZED);
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("authentication required"));
}
