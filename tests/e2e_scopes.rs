//! End to end on loopback, through the example server (issue 24, items 1
//! and 2: what MCP 2026-07-28 asks of a resource server about scopes and
//! audiences):
//!
//! * a policy file's `scopes` table is the deployment's scope hierarchy: a
//!   token holding the broad scope calls what the narrower scopes allow
//!   and sees it listed; a 403 names the scopes the call requires, never
//!   the broad one and never `offline_access` (the token's own);
//! * a token whose `aud` is the public URL up to RFC 3986 normalisation
//!   (scheme and host in any case, the default port written) is accepted,
//!   JWT and introspection alike; one for another path, port or scheme is
//!   refused.

mod support;
use support::mcp_server;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

use axum::{routing, Form, Json, Router};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeys},
    introspection::Introspector,
};

const KEY: &str = "mcp_sk_e2e-scopes-key-0123456789abcdef";
const JWT_SECRET: &str = "e2e-scopes-hs256-secret-0123456789abcdef";
const ACCEPT: &str = "application/json, text/event-stream";

/// Serves `app` on 127.0.0.1:0.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An opaque token for the audience `aud` (hex: a bearer token has no
/// `:` or `%`).
fn opaque(aud: &str) -> String {
    let hex: String = aud.bytes().map(|b| format!("{b:02x}")).collect();
    format!("opaque-{hex}")
}

/// An authorization server's introspection endpoint that finds every
/// token [`opaque`]`(aud)` active, for the audience `aud` (as written).
async fn introspection_endpoint() -> SocketAddr {
    serve(Router::new().route(
        "/introspect",
        routing::post(|Form(form): Form<HashMap<String, String>>| async move {
            let token = form.get("token").cloned().unwrap_or_default();
            let aud = token.strip_prefix("opaque-").map(|hex| {
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                String::from_utf8(bytes).unwrap()
            });
            Json(match aud {
                Some(aud) => json!({
                    "active": true, "sub": "ivy", "token_type": "Bearer",
                    "scope": "read:data", "aud": aud,
                }),
                None => json!({"active": false}),
            })
        }),
    ))
    .await
}

/// The example server, stateless, with `public_url` (its resource
/// identifier; the server listens elsewhere, on loopback), `JWT_SECRET`,
/// introspection, and a policy file when given.
async fn example(public_url: &str, policy_file: Option<PathBuf>) -> SocketAddr {
    let authz = introspection_endpoint().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("ops", KEY));
    let mut config = mcp_server::Config::new(public_url.to_owned(), keys);
    config.stateless = true;
    config.auth.jwt_secret = Some(SecretString::from(JWT_SECRET));
    config.auth.policy_file = policy_file;
    config.auth.introspector = Some(
        Introspector::builder(
            format!("http://{authz}/introspect"),
            "rs",
            SecretString::from("introspection-secret"),
        )
        .audience(public_url)
        .build()
        .unwrap(),
    );
    let app = mcp_server::app(&config).await.unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn jwt(aud: &str, scopes: &[&str]) -> String {
    mcp_server::mint_token(&SecretString::from(JWT_SECRET), aud, "alice", scopes)
}

struct Reply {
    status: u16,
    challenge: String,
    body: Value,
}

/// Each request from its own loopback address: the refusals below would
/// otherwise put the test's one address in the failed-auth cool-down.
async fn post(addr: SocketAddr, token: &str, body: Value) -> Reply {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let [_, _, hi, lo] = n.to_be_bytes();
    let res = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 24, hi, lo]))
        .build()
        .unwrap()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        challenge,
        body,
    }
}

fn tool_call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

// ───────────────── 1. scope hierarchies ─────────────────

/// The hierarchy of the test's policy file.
const POLICY: &str = r#"{
  "default": "authenticated",
  "tools": {
    "get_user_data": { "scheme": "bearer", "scopes": ["read:data"] },
    "update_user_data": { "scheme": "bearer", "scopes": ["write:data"] },
    "delete_user": ["api_key", { "scheme": "bearer", "scopes": ["admin:write"] }],
    "list_all_users": "api_key"
  },
  "scopes": {
    "admin": ["admin:write", "data:all"],
    "data:all": ["read:data", "write:data"]
  }
}"#;

fn policy_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("tma-e2e-scopes-{}.json", std::process::id()));
    std::fs::write(&path, POLICY).unwrap();
    path
}

/// MCP 2026-07-28: "Servers MUST account for scope hierarchies". On the
/// old code the policy file's `scopes` table was an unknown member (the
/// server did not start), and `admin` met no rule asking for `admin:write`.
#[tokio::test]
async fn a_broad_scope_calls_and_sees_what_its_narrower_scopes_allow() {
    let public_url = "http://localhost/mcp";
    let addr = example(public_url, Some(policy_file())).await;
    let admin = jwt(public_url, &["admin"]);
    let user = json!({"user_id": "user_001"});

    // `admin` → `data:all` → `read:data`: two levels down.
    let r = post(addr, &admin, tool_call("get_user_data", user.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["result"]["structuredContent"]["id"], "user_001",
        "{}",
        r.body
    );
    let r = post(
        addr,
        &admin,
        tool_call(
            "delete_user",
            json!({"user_id": "user_002", "reason": "e2e"}),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["result"]["structuredContent"]["deleted"], "user_002",
        "{}",
        r.body
    );

    // The list filter accounts for it too.
    let r = post(
        addr,
        &admin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    let listed: Vec<&str> = r.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for name in ["get_user_data", "update_user_data", "delete_user"] {
        assert!(listed.contains(&name), "{name} not in {listed:?}");
    }
    assert!(!listed.contains(&"list_all_users"), "{listed:?}");

    // A narrower token is refused where it should be: the 403 names every
    // scope the call requires (here `admin:write`), not the broad `admin`,
    // with what the token holds, and never `offline_access`.
    let narrow = jwt(public_url, &["data:all", "offline_access"]);
    let r = post(addr, &narrow, tool_call("get_user_data", user)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        addr,
        &narrow,
        tool_call(
            "delete_user",
            json!({"user_id": "user_003", "reason": "e2e"}),
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.challenge.contains(r#"error="insufficient_scope""#),
        "{}",
        r.challenge
    );
    assert!(
        r.challenge.contains(r#"scope="admin:write data:all""#),
        "{}",
        r.challenge
    );
}

// ───────────────── 2. the audience, up to normalisation ─────────────────

/// The public URL `http://localhost/mcp` (port 80 implied) in other
/// spellings of the same resource, and other resources.
const SAME: [&str; 5] = [
    "http://localhost/mcp",
    "HTTP://localhost/mcp",
    "http://LOCALHOST/mcp",
    "http://localhost:80/mcp",
    "Http://LocalHost:80/%6dcp",
];
const OTHER: [&str; 6] = [
    "http://localhost/other",
    "http://localhost/MCP",
    "http://localhost/mcp/",
    "http://localhost:8080/mcp",
    "https://localhost/mcp",
    "http://example.com/mcp",
];

/// MCP 2026-07-28: `aud` names this server up to RFC 3986 §6.2.2–6.2.3.
/// On the old code every spelling but the first got 401 ("the token is not
/// for this resource"), JWT and introspection alike.
#[tokio::test]
async fn an_audience_in_another_spelling_of_the_public_url_is_accepted() {
    let public_url = "http://localhost/mcp";
    let addr = example(public_url, None).await;
    let call = || tool_call("protected_operation", json!({}));
    for aud in SAME {
        for (how, token) in [
            ("JWT", jwt(aud, &["read:data"])),
            ("introspection", opaque(aud)),
        ] {
            let r = post(addr, &token, call()).await;
            assert_eq!(r.status, 200, "{how} aud {aud}: {} {}", r.challenge, r.body);
            assert!(
                r.body.get("result").is_some(),
                "{how} aud {aud}: {}",
                r.body
            );
        }
    }
}

#[tokio::test]
async fn an_audience_for_another_resource_is_refused() {
    let public_url = "http://localhost/mcp";
    let addr = example(public_url, None).await;
    for aud in OTHER {
        for (how, token) in [
            ("JWT", jwt(aud, &["read:data"])),
            ("introspection", opaque(aud)),
        ] {
            let r = post(addr, &token, tool_call("protected_operation", json!({}))).await;
            assert_eq!(r.status, 401, "{how} aud {aud}: {}", r.body);
            assert!(
                r.challenge.contains(r#"error="invalid_token""#),
                "{how} aud {aud}: {}",
                r.challenge
            );
        }
    }
}
