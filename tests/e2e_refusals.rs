//! End to end on loopback: what the README and SECURITY.md say about
//! refusals, checked as a user would see them (issue 17, items 1–4).
//!
//! * `Authorization: ApiKey` works as the README's layer table says, and a
//!   key where no layer looks is no credential, never a failed login
//!   (item 1);
//! * every refusal of a JSON-RPC POST carries the request's id, whichever
//!   layer refuses it (item 2), as far as the README says it does;
//! * a batch costs one unit per message by default (item 3);
//! * the README's subscriber line shows the audit events (item 10).

mod support;
use support::mcp_server;

use std::net::{IpAddr, SocketAddr};

use axum::{routing, Json, Router};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    introspection::Introspector,
    mcp::{McpPolicy, McpPolicyLayer},
    rate_limit::{Quota, RateLimitLayer},
    ProtectedResource, Rule,
};

const KEY: &str = "mcp_sk_e2e-refusals-key-0123456789abcdef";
const ACCEPT: &str = "application/json, text/event-stream";
const JWT_SECRET: &str = "e2e-refusals-hs256-secret-0123456789abcdef";

/// Serves `app` on 127.0.0.1:0 with the client's address known.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A client sending from its own loopback address (the failed-auth
/// throttle counts per address).
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 17, last]))
        .build()
        .unwrap()
}

/// The example server (`examples/mcp_server/`) on loopback, stateless,
/// with an API key, `JWT_SECRET`, and opaque tokens introspected by an
/// endpoint that finds every token inactive.
async fn example() -> SocketAddr {
    let authz = serve(Router::new().route(
        "/introspect",
        routing::post(|| async { Json(json!({"active": false})) }),
    ))
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = mcp_server::Config::new(format!("http://{addr}/mcp"), keys());
    config.stateless = true;
    config.auth.jwt_secret = Some(SecretString::from(JWT_SECRET));
    config.auth.introspector = Some(
        Introspector::builder(
            format!("http://{authz}/introspect"),
            "rs",
            SecretString::from("introspection-secret"),
        )
        .audience(config.auth.public_url.clone())
        .build()
        .unwrap(),
    );
    let app = mcp_server::app(&config).await.unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A JWT for this server signed with another secret.
fn forged_token(addr: SocketAddr) -> String {
    mcp_server::mint_token(
        &SecretString::from("not-the-server-secret-0123456789abcdef"),
        &format!("http://{addr}/mcp"),
        "mallory",
        &["read:data"],
    )
}

/// `list_all_users` (API key only) with this raw id.
fn admin_call(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"list_all_users","arguments":{{}}}}}}"#
    )
}

// ───────────────── 1. where an API key may be, and what counts ─────────────────

/// The README's layer table: `ApiKeyLayer` reads `X-API-Key` "(or
/// `Authorization: ApiKey`)". Through the example server, as curl sends
/// it. On the old code the second was 401 "authentication is required"
/// unless `.accept_authorization_scheme()` had been called.
#[tokio::test]
async fn an_api_key_in_either_documented_place_is_accepted() {
    let addr = example().await;
    let client = client_from(60);
    for (name, value) in [
        ("x-api-key", KEY.to_owned()),
        ("authorization", format!("ApiKey {KEY}")),
        ("authorization", format!("apikey {KEY}")),
    ] {
        let reply = post_from(&client, addr, &admin_call("3"), &[(name, &value)]).await;
        assert_eq!(reply.status, 200, "{name}: {value}: {}", reply.body);
        assert_eq!(reply.json()["id"], 3, "{}", reply.body);
    }
    // Both at once: two credentials.
    let reply = post_from(
        &client,
        addr,
        &admin_call("4"),
        &[
            ("x-api-key", KEY),
            ("authorization", &format!("ApiKey {KEY}")),
        ],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

/// FailedAuthLayer's table ("What counts as a failed login"): a valid key
/// where no layer looks is no credential (401 `missing_credential`), not
/// a failed login, so trying it twenty times with curl locks nobody out;
/// a wrong key in a place a layer reads is one.
#[tokio::test]
async fn a_key_where_no_layer_looks_is_no_failed_login() {
    let addr = example().await;
    let client = client_from(70);
    for _ in 0..20 {
        for (name, value) in [
            ("x-api-token", KEY.to_owned()),
            ("authorization", format!("Basic {KEY}")),
        ] {
            let reply = post_from(&client, addr, &admin_call("5"), &[(name, &value)]).await;
            assert_eq!(reply.status, 401, "{name}: {}", reply.body);
            assert_eq!(
                reply.json()["error"]["data"]["error"],
                "missing_credential",
                "{}",
                reply.body
            );
        }
    }
    let reply = post_from(&client, addr, &admin_call("6"), &[("x-api-key", KEY)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Ten wrong keys in `Authorization: ApiKey` are ten failed logins.
    let wrong = "ApiKey mcp_sk_wrong-key-0123456789abcdef";
    for _ in 0..10 {
        let reply = post_from(&client, addr, &admin_call("6"), &[("authorization", wrong)]).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.json()["error"]["data"]["error"], "invalid_token");
    }
    let reply = post_from(&client, addr, &admin_call("6"), &[("x-api-key", KEY)]).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
}

/// Issue 25 item 3: a valid credential of a kind the tool does not take
/// (a bearer token on an API-key-only tool, an API key on a bearer-only
/// one) is 403 `forbidden` naming the scheme the tool needs, with no
/// `error="invalid_token"` challenge that would make an OAuth client throw
/// its good token away; never counted as a failed login. A missing
/// credential stays 401. On the old code both were 401 `invalid_token`.
#[tokio::test]
async fn a_valid_credential_of_the_wrong_kind_is_403_naming_the_scheme() {
    let addr = example().await;
    let client = client_from(70);
    let bearer = format!(
        "Bearer {}",
        mcp_server::mint_token(
            &SecretString::from(JWT_SECRET),
            &format!("http://{addr}/mcp"),
            "alice",
            &mcp_server::SCOPES,
        )
    );
    let bearer_only = r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"get_user_data","arguments":{"user_id":"user_001"}}}"#;
    let cases = [
        (
            admin_call("8"),
            ("authorization", bearer.as_str()),
            "tools/call `list_all_users`: this call requires an API key",
        ),
        (
            bearer_only.to_owned(),
            ("x-api-key", KEY),
            "tools/call `get_user_data`: this call requires an OAuth bearer token",
        ),
    ];
    // More than the failed-auth threshold (10): none of them is a failure.
    for _ in 0..6 {
        for (body, header, message) in &cases {
            let reply = post_from(&client, addr, body, &[*header]).await;
            assert_eq!(reply.status, 403, "{message}: {}", reply.body);
            assert!(
                !reply.header("www-authenticate").contains("invalid_token"),
                "{}",
                reply.header("www-authenticate")
            );
            let json = reply.json();
            assert_eq!(json["id"], 8, "{json}");
            assert_eq!(json["error"]["data"]["error"], "forbidden", "{json}");
            assert_eq!(json["error"]["message"], *message, "{json}");
        }
    }
    // Each credential is still good where it belongs.
    let reply = post_from(&client, addr, &admin_call("9"), &[("x-api-key", KEY)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = post_from(&client, addr, bearer_only, &[("authorization", &bearer)]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // No credential: 401.
    let reply = post_from(&client, addr, &admin_call("9"), &[]).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.json()["error"]["data"]["error"], "missing_credential");
}

// ──────────────────── 2. every refusal carries the id ────────────────────

/// A layer, the headers that reach it, its status and `error` code.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str);

/// Each layer of the example's stack refuses a JSON-RPC POST with a
/// JSON-RPC error carrying the request's id: the authenticators (API key,
/// JWT, introspection) and the failed-auth cool-down, which refuse before
/// the body is read, as well as the policy. On the old code the first
/// four said `"id": null`.
#[tokio::test]
async fn every_layer_refuses_with_the_requests_id() {
    let addr = example().await;
    let forged = format!("Bearer {}", forged_token(addr));
    let bearer = format!(
        "Bearer {}",
        mcp_server::mint_token(
            &SecretString::from(JWT_SECRET),
            &format!("http://{addr}/mcp"),
            "alice",
            &["read:data"],
        )
    );
    let cases: [Case<'_>; 5] = [
        (
            "api_key",
            &[("x-api-key", "mcp_sk_wrong-key-0123456789abcdef")],
            401,
            "invalid_token",
        ),
        (
            "jwt",
            &[("authorization", forged.as_str())],
            401,
            "invalid_token",
        ),
        (
            "introspection",
            &[("authorization", "Bearer opaque-revoked-token")],
            401,
            "invalid_token",
        ),
        ("policy, no credential", &[], 401, "missing_credential"),
        (
            "policy, wrong scheme",
            &[("authorization", bearer.as_str())],
            403,
            "forbidden",
        ),
    ];
    for (i, (layer, headers, status, code)) in cases.into_iter().enumerate() {
        let client = client_from(i as u8 + 1);
        let reply = post_from(&client, addr, &admin_call("7"), headers).await;
        assert_eq!(reply.status, status, "{layer}: {}", reply.body);
        let body = reply.json();
        assert_eq!(body["id"], 7, "{layer}: {body}");
        assert_eq!(body["error"]["data"]["error"], code, "{layer}: {body}");
        // The same with a string id, and an id rmcp reads as an integer.
        for (raw, want) in [(r#""req-7""#, json!("req-7")), ("7.0", json!(7))] {
            let reply = post_from(&client, addr, &admin_call(raw), headers).await;
            assert_eq!(reply.json()["id"], want, "{layer} {raw}: {}", reply.body);
        }
    }

    // The failed-auth cool-down: ten bad keys from one address, then even
    // the right key is 429, with its id.
    let guesser = client_from(100);
    let bad = [("x-api-key", "mcp_sk_wrong-key-0123456789abcdef")];
    for _ in 0..10 {
        let reply = post_from(&guesser, addr, &admin_call("1"), &bad).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
    }
    let reply = post_from(&guesser, addr, &admin_call("9"), &[("x-api-key", KEY)]).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["id"], 9, "{body}");
    assert_eq!(
        body["error"]["data"]["error"], "too_many_failed_authentications",
        "{body}"
    );

    // The right key from another address: the body reached the server
    // whole, and the tool ran.
    let reply = post_from(
        &client_from(101),
        addr,
        &admin_call("8"),
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["id"], 8, "{}", reply.body);
}

/// Where the README says the id is `null`: a refused body longer than the
/// 16 KiB the authenticators read, a batch, an id rmcp would not accept.
#[tokio::test]
async fn the_id_is_null_where_it_cannot_be_read_cheaply_or_as_rmcp_does() {
    let addr = example().await;
    let client = client_from(50);
    let bad = [("x-api-key", "mcp_sk_wrong-key-0123456789abcdef")];
    let padded = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"list_all_users","arguments":{{"pad":"{}"}}}}}}"#,
        "x".repeat(16 * 1024)
    );
    let batch = format!("[{}]", admin_call("7"));
    for (what, body) in [
        ("over 16 KiB", padded),
        ("a batch", batch),
        ("a fractional id", admin_call("7.5")),
        ("an id past i64", admin_call("9223372036854775808")),
        ("two ids", admin_call(r#"7,"id":8"#)),
    ] {
        let reply = post_from(&client, addr, &body, &bad).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        let body = reply.json();
        assert_eq!(body["id"], Value::Null, "{what}: {body}");
        assert_eq!(body["error"]["data"]["error"], "invalid_token", "{what}");
    }
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
    post_from(&reqwest::Client::new(), addr, &body.to_string(), headers).await
}

/// POSTs the raw `body` from `client`.
async fn post_from(
    client: &reqwest::Client,
    addr: SocketAddr,
    body: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = client
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .body(body.to_owned());
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

// ─────────────── 10. reading the audit events in your own app ───────────────

/// A `tracing` writer that keeps what is written.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// README, "Local development": the subscriber line given there, with
/// its filter, shows a refusal as the README prints it, and nothing of
/// the key.
#[tokio::test]
async fn the_readmes_subscriber_line_shows_the_audit_events() {
    use tower::ServiceExt;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,tower_mcp_auth::audit=info",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = Router::new()
        .route("/mcp", axum::routing::post(|| async { "ok" }))
        .layer(ApiKeyLayer::new(keys()));
    let wrong = "mcp_sk_wrong-key-0123456789abcdef";
    let req = http::Request::post("/mcp")
        .header("x-api-key", wrong)
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.oneshot(req).await.unwrap().status(), 401);

    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        out.trim(),
        r#"WARN tower_mcp_auth::audit: outcome="refused" layer="api_key" reason="invalid_token" detail="the API key is not valid" status=401 method="POST" path="/mcp""#,
    );
    assert!(!out.contains(wrong));
}
