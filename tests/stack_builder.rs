//! `stack::McpAuth` (issue 25 item 1): the whole stack from one builder, in
//! front of a real rmcp `StreamableHttpService` on loopback, refusing,
//! authorizing per tool, filtering lists and throttling as the hand-built
//! stack does; and a hand-built stack in the wrong order is named in the
//! log (tests/stack_order.rs).

use std::net::SocketAddr;

use reqwest::StatusCode;
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
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeys},
    mcp::{handles::HandleBindingLayer, McpPolicy},
    stack::McpAuth,
    Principal, Rule,
};

const KEY: &str = "mcp_sk_stack_builder_0123456789";
const SECRET: &str = "a-long-random-secret-of-32-bytes-or-more";

#[derive(Clone)]
struct Notes(ToolRouter<Self>);

#[tool_router]
impl Notes {
    #[tool(description = "Who is calling")]
    async fn whoami(&self, caller: Principal) -> String {
        caller.name().to_owned()
    }

    #[tool(description = "Read the data (bearer, read:data)")]
    async fn read_data(&self) -> String {
        "the data".into()
    }

    #[tool(description = "Reset everything (API key only)")]
    async fn admin_reset(&self) -> String {
        "reset".into()
    }

    #[tool(description = "A tool no rule names: denied by default")]
    async fn unnamed(&self) -> String {
        "should never run".into()
    }
}

#[tool_handler(router = self.0)]
impl ServerHandler for Notes {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

fn policy() -> McpPolicy {
    McpPolicy::builder()
        .tool("whoami", Rule::authenticated())
        .tool("read_data", Rule::bearer().scopes(["read:data"]))
        .tool("admin_reset", Rule::api_key())
        .unmatched_tool(Rule::deny())
        .build()
        .unwrap()
}

/// The example of the module docs, on loopback: the ten lines a user writes.
async fn serve(per_minute: u32) -> String {
    serve_with(per_minute, None).await
}

/// [`serve`], with the handle binding given.
async fn serve_with(per_minute: u32, handles: Option<HandleBindingLayer>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());

    let mcp = StreamableHttpService::new(
        || Ok(Notes(Notes::tool_router())),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    );
    let mut builder = McpAuth::builder(url.as_str())
        .api_keys(ApiKeys::new().with(ApiKey::new("ops", KEY)))
        .hs256_secret(SecretString::from(SECRET))
        .policy(policy())
        .rate_limit_per_minute(per_minute);
    if let Some(handles) = handles {
        builder = builder.handle_binding(handles);
    }
    let auth = builder.build().await.unwrap();
    let app = auth.router(mcp);

    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    url
}

fn token(url: &str, scopes: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "alice", "aud": url, "exp": now + 600, "scope": scopes});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    format!("Bearer {token}")
}

async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
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
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {}}})
}

fn list() -> Value {
    json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
}

fn names(reply: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = reply["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool list: {reply}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn refuses_authorizes_per_tool_and_filters_lists() {
    let url = serve(1_000).await;
    tower_mcp_auth::jwt::install_crypto_provider();

    // No credential: 401 with the challenge naming the metadata, which
    // lists the scopes the policy names.
    let (status, headers, _) = post(&url, &[], call(1, "whoami")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    let base = url.trim_end_matches("/mcp");
    let doc: Value = reqwest::get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], url.as_str());
    assert_eq!(doc["scopes_supported"], json!(["read:data"]));

    // The API key: its tools, and only those listed.
    let key = ("x-api-key", KEY);
    let (status, _, reply) = post(&url, &[key], call(2, "admin_reset")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["result"]["content"][0]["text"], "reset");
    let (status, _, reply) = post(&url, &[key], call(3, "read_data")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    let (_, _, reply) = post(&url, &[key], list()).await;
    assert_eq!(names(&reply), ["admin_reset", "whoami"]);

    // A bearer token with read:data: its tools; the API-key tool refused.
    let bearer = token(&url, "read:data");
    let auth = ("authorization", bearer.as_str());
    let (status, _, reply) = post(&url, &[auth], call(4, "read_data")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (status, _, reply) = post(&url, &[auth], call(5, "whoami")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["result"]["content"][0]["text"], "alice");
    let (status, _, _) = post(&url, &[auth], call(6, "admin_reset")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, reply) = post(&url, &[auth], list()).await;
    assert_eq!(names(&reply), ["read_data", "whoami"]);

    // A bearer token without the scope: a step-up 403 naming it.
    let weak = token(&url, "profile");
    let (status, headers, _) = post(&url, &[("authorization", &weak)], call(7, "read_data")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("read:data"), "{challenge}");

    // A tool no rule names: denied to everyone, listed to nobody.
    let (status, _, _) = post(&url, &[key], call(8, "unnamed")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A wrong key: 401, not anonymous.
    let (status, _, _) = post(
        &url,
        &[("x-api-key", "mcp_sk_wrong_0000000000000")],
        call(9, "whoami"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The handle binding's own body limit holds in `McpAuth`, where it takes
/// the bytes the policy layer read instead of reading the body itself.
#[tokio::test]
async fn the_handle_bindings_body_limit_holds_under_the_policy_layer() {
    let url = serve_with(100, Some(HandleBindingLayer::new().body_limit(2048))).await;
    let key = ("x-api-key", KEY);
    let (status, _, reply) = post(&url, &[key], call(1, "whoami")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let mut big = call(2, "whoami");
    big["params"]["arguments"] = json!({"padding": "x".repeat(4096)});
    let (status, _, reply) = post(&url, &[key], big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");
}

#[tokio::test]
async fn throttles_per_principal() {
    let url = serve(2).await;
    tower_mcp_auth::jwt::install_crypto_provider();
    let key = ("x-api-key", KEY);
    for id in 0..2 {
        let (status, _, reply) = post(&url, &[key], call(id, "whoami")).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
    }
    let (status, headers, _) = post(&url, &[key], call(3, "whoami")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    // Another principal has its own quota.
    let bearer = token(&url, "read:data");
    let (status, _, reply) = post(&url, &[("authorization", &bearer)], call(4, "whoami")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
}

#[tokio::test]
async fn from_settings_with_a_policy_file() {
    let dir = std::env::temp_dir().join(format!("stack-builder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("policy.json");
    std::fs::write(
        &file,
        r#"{"default": "authenticated", "tools": {"admin_reset": "api_key",
            "read_data": {"scheme": "bearer", "scopes": ["read:data"]}}}"#,
    )
    .unwrap();
    let mut settings = tower_mcp_auth::stack::Settings::new("http://127.0.0.1:1/mcp");
    settings.api_keys = ApiKeys::new().with(ApiKey::new("ops", KEY));
    settings.policy_file = Some(file);
    let auth = tower_mcp_auth::stack::McpAuthBuilder::from(settings)
        .build()
        .await
        .unwrap();
    assert_eq!(auth.path(), "/mcp");
    let ops = Principal::new(tower_mcp_auth::AuthScheme::ApiKey, "ops");
    assert!(auth
        .policy()
        .current()
        .may_call_tool(Some(&ops), "admin_reset"));
    assert!(!auth
        .policy()
        .current()
        .may_call_tool(Some(&ops), "read_data"));
    assert_eq!(auth.resource().scopes_supported().to_string(), "read:data");

    // A file with a mistake names its line.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"tools\": {\"x\": \"nonsense\"}}").unwrap();
    let mut settings = tower_mcp_auth::stack::Settings::new("http://127.0.0.1:1/mcp");
    settings.policy_file = Some(bad);
    let err = tower_mcp_auth::stack::McpAuthBuilder::from(settings)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad.json:1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
