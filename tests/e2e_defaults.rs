//! End to end, through the example server (`examples/mcp_server/`) on
//! loopback: the defaults that used to fail open or lock users out
//! (issue 13, items 3 and 4).
//!
//! * audit lines stay bounded whatever a client sends (a 1 MiB tool name);
//! * a bearer token nobody verifies is 401 `invalid_token`, with JWT only,
//!   with JWT and introspection, and in a stack that hands it on to an
//!   introspection layer it lacks;
//! * introspection refuses tokens without this server's audience and
//!   active tokens that are not access tokens;
//! * discovery (requests without credentials) locks nobody out;
//! * a key rotation is "not known yet" (503, `Retry-After`) until the key
//!   set may be fetched again, never counted as guessing; a key that has
//!   left a set fetched after the token was issued is 401 at once.

mod support;
use support::mcp_server;

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{Form, State},
    http::HeaderMap,
    routing, Json, Router,
};
use common::{now, Captured, JwksServer, Signer};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeys},
    introspection::Introspector,
    jwt::{JwtLayer, JwtValidator},
    mcp::McpPolicyLayer,
    ProtectedResource,
};

const KEY: &str = "mcp_sk_e2e-defaults-key-0123456789abcdef";
const JWT_SECRET: &str = "e2e-defaults-hs256-secret-0123456789abcdef";
const ACCEPT: &str = "application/json, text/event-stream";

// ───────────────────────────── harness ─────────────────────────────

/// A listener on 127.0.0.1:0 and the example's config for it: an API key,
/// `JWT_SECRET`, stateless (raw calls need no session), no introspection.
async fn config() -> (tokio::net::TcpListener, mcp_server::Config) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("ops", KEY));
    let mut config = mcp_server::Config::new(format!("http://{addr}/mcp"), keys);
    config.stateless = true;
    config.auth.jwt_secret = Some(SecretString::from(JWT_SECRET));
    (listener, config)
}

fn spawn(listener: tokio::net::TcpListener, app: Router) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn serve(listener: tokio::net::TcpListener, config: &mcp_server::Config) -> SocketAddr {
    spawn(listener, mcp_server::app(config).await.unwrap())
}

enum Cred<'a> {
    None,
    Key,
    Bearer(&'a str),
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn post(addr: SocketAddr, cred: Cred<'_>, body: impl Into<reqwest::Body>) -> Reply {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", ACCEPT);
    match cred {
        Cred::None => {}
        Cred::Key => req = req.header("x-api-key", KEY),
        Cred::Bearer(t) => req = req.bearer_auth(t),
    }
    let res = req.body(body).send().await.unwrap();
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

fn tool_call(name: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": {"param": "p"}}})
    .to_string()
}

fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "e2e-defaults", "version": "1"}}})
    .to_string()
}

// ───────────────────────────── 3. bounded audit lines ─────────────────────────────

#[tokio::test]
async fn a_1_mib_tool_name_adds_a_bounded_audit_line() {
    // A current-thread runtime: the server's tasks run on this thread, so
    // the thread-local subscriber sees their events.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "tower_mcp_auth::audit=info",
        ))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (listener, config) = config().await;
    let addr = serve(listener, &config).await;

    let before = captured.text().len();
    post(addr, Cred::Key, tool_call("no_such_tool")).await;
    let small = captured.text().len() - before;

    let name = "n".repeat(1 << 20);
    let before = captured.text().len();
    post(addr, Cred::Key, tool_call(&name)).await;
    let log = captured.text();
    let added = &log[before..];
    // The policy accepted the call (an unknown tool falls to the default
    // rule), and its line carries a prefix of the name, the cut and the
    // length: a few hundred bytes more than for a short name, not 1 MiB.
    assert!(
        added.contains("outcome=\"accepted\"") && added.contains("layer=\"mcp_policy\""),
        "{}",
        &added[..added.len().min(2000)]
    );
    assert!(
        added.contains("…[cut: 1048576 bytes]"),
        "{}",
        &added[..added.len().min(2000)]
    );
    assert!(
        added.len() < small + 512,
        "a 1 MiB tool name added {} bytes to the audit log (a short one {small})",
        added.len()
    );
}

// ───────────────────────────── 4a. unverified credentials ─────────────────────────────

const OPAQUE: &str = "2YotnFZFEjr1zCsicMWpAA";

#[tokio::test]
async fn jwt_only_stack_refuses_an_opaque_token_as_invalid() {
    // The README's quick-start stack: API key and JWT, no introspection.
    let (listener, config) = config().await;
    let addr = serve(listener, &config).await;
    for body in [tool_call("protected_operation"), initialize()] {
        let reply = post(addr, Cred::Bearer(OPAQUE), body).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        let challenge = reply.header("www-authenticate");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(
            challenge.contains("the bearer token is not a JWT"),
            "{challenge}"
        );
    }
    // A real JWT still works.
    let token = mcp_server::mint_token(
        &SecretString::from(JWT_SECRET),
        &config.auth.public_url,
        "alice",
        &[],
    );
    let reply = post(addr, Cred::Bearer(&token), tool_call("protected_operation")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn a_stack_that_hands_tokens_to_a_missing_introspection_layer_refuses_them() {
    // Misconfigured on purpose: the JWT layer hands opaque tokens on, and
    // no introspection layer follows. The MCP policy refuses what nobody
    // verified, whatever the rule (here: `initialize`, `ping`, a tool).
    let (listener, config) = config().await;
    let resource = ProtectedResource::builder(&config.auth.public_url)
        .build()
        .unwrap();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(JWT_SECRET))
        .build()
        .unwrap();
    let stack = ServiceBuilder::new()
        .layer(resource.layer())
        .layer(JwtLayer::new(validator).optional().pass_opaque_tokens())
        .layer(McpPolicyLayer::new(mcp_server::policy().unwrap()))
        .service(mcp_server::mcp_service(&config).unwrap());
    let addr = spawn(listener, Router::new().nest_service("/mcp", stack));
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}).to_string();
    for body in [tool_call("protected_operation"), initialize(), ping] {
        let reply = post(addr, Cred::Bearer(OPAQUE), body.clone()).await;
        assert_eq!(reply.status, 401, "{body}: {}", reply.body);
        let challenge = reply.header("www-authenticate");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(
            reply
                .body
                .contains("no layer could verify the bearer token"),
            "{}",
            reply.body
        );
    }
}

const INTROSPECT_ID: &str = "mcp-defaults";
const INTROSPECT_SECRET: &str = "introspection-client-secret";

/// An RFC 7662 endpoint: `opaque-active` is an access token for this
/// server; `opaque-noaud` is active with no `aud` (another application's
/// token, say); `opaque-refresh` is an active refresh token.
async fn introspect(
    State((calls, aud)): State<(Arc<AtomicUsize>, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    use base64::Engine;
    calls.fetch_add(1, Ordering::SeqCst);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{INTROSPECT_ID}:{INTROSPECT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&basic) {
        return Json(json!({"active": false}));
    }
    let active = json!({"active": true, "sub": "intro-user", "client_id": "app",
                        "scope": "read:data", "exp": now() + 600});
    let mut body = active.clone();
    match form.get("token").map(String::as_str) {
        Some("opaque-active") => {
            body["aud"] = json!(aud);
            body["token_type"] = json!("Bearer");
        }
        Some("opaque-noaud") => {}
        Some("opaque-refresh") => {
            body["aud"] = json!(aud);
            body["token_type"] = json!("refresh_token");
        }
        _ => body = json!({"active": false}),
    }
    Json(body)
}

#[tokio::test]
async fn jwt_and_introspection_stack_introspects_opaque_tokens() {
    let (listener, mut config) = config().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let authz = common::serve(
        Router::new()
            .route("/introspect", routing::post(introspect))
            .with_state((calls.clone(), config.auth.public_url.clone())),
    )
    .await;
    // The example's way: the audience is the resource identifier, given
    // to the introspector (never taken from the stack).
    config.auth.introspector = Some(
        Introspector::builder(
            format!("http://{authz}/introspect"),
            INTROSPECT_ID,
            SecretString::from(INTROSPECT_SECRET),
        )
        .audience(config.auth.public_url.clone())
        .build()
        .unwrap(),
    );
    let addr = serve(listener, &config).await;

    let reply = post(
        addr,
        Cred::Bearer("opaque-active"),
        tool_call("protected_operation"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("intro-user"), "{}", reply.body);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // 4b: without this server's audience, and an active refresh token.
    for token in ["opaque-noaud", "opaque-refresh", "opaque-unknown"] {
        let reply = post(addr, Cred::Bearer(token), tool_call("protected_operation")).await;
        assert_eq!(reply.status, 401, "{token}: {}", reply.body);
        let challenge = reply.header("www-authenticate");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{token}: {challenge}"
        );
    }
    // JWTs are still verified locally, never introspected.
    let token = mcp_server::mint_token(
        &SecretString::from(JWT_SECRET),
        &config.auth.public_url,
        "alice",
        &[],
    );
    let before = calls.load(Ordering::SeqCst);
    let reply = post(addr, Cred::Bearer(&token), tool_call("protected_operation")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(calls.load(Ordering::SeqCst), before);
}

// ───────────────────────────── 4c. discovery locks nobody out ─────────────────────────────

#[tokio::test]
async fn unauthenticated_initialize_calls_do_not_lock_an_address_out() {
    let (listener, config) = config().await;
    let addr = serve(listener, &config).await;
    // Every MCP client's first request: no credential, 401 with the
    // challenge that points at the metadata.
    for _ in 0..12 {
        let reply = post(addr, Cred::None, initialize()).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(
            reply
                .header("www-authenticate")
                .contains("resource_metadata="),
            "{:?}",
            reply.headers
        );
    }
    // The same address, now with a valid key.
    let reply = post(addr, Cred::Key, tool_call("protected_operation")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Bad credentials from the address still count.
    for _ in 0..10 {
        let mut req = reqwest::Client::new()
            .post(format!("http://{addr}/mcp"))
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .header("x-api-key", "mcp_sk_wrong-key-0123456789abcdef");
        req = req.body(initialize());
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    let reply = post(addr, Cred::Key, tool_call("protected_operation")).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
}

// ───────────────────────────── 4e. key rotation ─────────────────────────────

#[tokio::test]
async fn a_rotated_signing_key_is_not_known_yet_then_accepted() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let rsa2 = Signer::rsa("rsa2_private.pem", "rsa2");
    let jwks = JwksServer::start(vec![rsa1.jwk()]).await;
    let (listener, mut config) = config().await;
    config.auth.jwt_secret = None;
    config.auth.oauth_issuer = Some(jwks.base.clone());
    config.auth.oauth_jwks_url = Some(jwks.url());
    let addr = serve(listener, &config).await;
    let claims = |sub: &str| {
        json!({"sub": sub, "iss": jwks.base, "aud": config.auth.public_url,
               "iat": now(), "exp": now() + 600})
    };

    let reply = post(
        addr,
        Cred::Bearer(&rsa1.sign(&claims("before"))),
        tool_call("protected_operation"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let fetched = jwks.hits();

    // The authorization server rotates without publishing ahead: its new
    // tokens name a key the server fetched no more than a moment ago.
    // A client retrying more often than the failed-auth threshold is
    // neither refused as invalid nor throttled: 503 until a fetch is
    // allowed (the unknown-kid refetch interval, 5 s).
    jwks.set_keys(vec![rsa1.jwk(), rsa2.jwk()]);
    let token = rsa2.sign(&claims("after"));
    let mut retry_after = 0;
    for _ in 0..12 {
        let reply = post(addr, Cred::Bearer(&token), tool_call("protected_operation")).await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(
            reply
                .body
                .contains("the token's signing key is not known yet"),
            "{}",
            reply.body
        );
        retry_after = reply.header("retry-after").parse::<u64>().unwrap();
        assert!((1..=5).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(jwks.hits(), fetched, "no fetch within the interval");

    jump(Duration::from_secs(retry_after)).await;
    let reply = post(addr, Cred::Bearer(&token), tool_call("protected_operation")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("after"), "{}", reply.body);
    // The address was not counted as guessing.
    let reply = post(addr, Cred::Key, tool_call("protected_operation")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Moves Tokio's clock (the example's JWKS refetch interval runs on it)
/// forward by `by` at once; paused only while no request is in flight.
async fn jump(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Issue 23 6f: once the server has fetched a key set without the key a
/// token names, a token issued before that fetch is 401 `invalid_token`
/// at once (before: 503 with `Retry-After`, again in every refetch
/// window), with no further fetch.
#[tokio::test]
async fn a_removed_signing_key_is_401_at_once_after_the_new_set_is_fetched() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let rsa2 = Signer::rsa("rsa2_private.pem", "rsa2");
    let jwks = JwksServer::start(vec![rsa1.jwk()]).await;
    let (listener, mut config) = config().await;
    config.auth.jwt_secret = None;
    config.auth.oauth_issuer = Some(jwks.base.clone());
    config.auth.oauth_jwks_url = Some(jwks.url());
    let addr = serve(listener, &config).await;
    let claims = |sub: &str, iat: u64| {
        json!({"sub": sub, "iss": jwks.base, "aud": config.auth.public_url,
               "iat": iat, "exp": now() + 600})
    };
    // A token issued two minutes ago, before the rotation.
    let old = rsa1.sign(&claims("old", now() - 120));
    let reply = post(addr, Cred::Bearer(&old), tool_call("protected_operation")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The authorization server rotates: rsa1 leaves the set. Once a
    // refetch is allowed, a token of the new key makes the server fetch
    // the new set.
    jwks.set_keys(vec![rsa2.jwk()]);
    jump(Duration::from_secs(5)).await;
    let new = rsa2.sign(&claims("new", now()));
    let reply = post(addr, Cred::Bearer(&new), tool_call("protected_operation")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let fetched = jwks.hits();

    // A token of the removed key issued before that fetch: 401 at once,
    // in this refetch window and the next, and no fetch.
    for window in 0..2 {
        if window == 1 {
            jump(Duration::from_secs(5)).await;
        }
        let reply = post(addr, Cred::Bearer(&old), tool_call("protected_operation")).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(
            reply.header("www-authenticate").contains("invalid_token"),
            "{}",
            reply.header("www-authenticate")
        );
        assert!(
            reply.body.contains("the token's signing key is unknown"),
            "{}",
            reply.body
        );
        assert_eq!(reply.header("retry-after"), "");
    }
    assert_eq!(jwks.hits(), fetched, "no fetch for a key that left the set");
}

// ───────────────────────────── issue 25 item 7: the demo banner ─────────────────────────────

/// The JSON body of the banner's `curl -d '…'` line.
fn banner_body(banner: &str) -> &str {
    let start = banner.find("-d '").expect("a curl -d line") + 4;
    let len = banner[start..].find('\'').expect("the closing quote");
    &banner[start..start + len]
}

/// The demo banner tells the truth about the mode it runs in: with
/// sessions its `curl` line initializes one; stateless (`MCP_STATELESS=1`)
/// it names no session to initialize, and its request works as it stands.
#[tokio::test]
async fn the_demo_banner_matches_stateless_and_session_modes() {
    let key = SecretString::from(KEY);
    let policy = mcp_server::policy().unwrap();

    let (listener, config) = config().await;
    assert!(config.stateless);
    let banner = mcp_server::demo_banner(&config, &key, &policy);
    assert!(!banner.contains("Initialize an MCP session"), "{banner}");
    assert!(banner.contains("stateless (MCP_STATELESS=1)"), "{banner}");
    assert!(banner.contains(&config.auth.public_url), "{banner}");
    let addr = serve(listener, &config).await;
    let reply = post(addr, Cred::Key, banner_body(&banner).to_owned()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("\"tools\""), "{}", reply.body);
    assert_eq!(reply.header("mcp-session-id"), "");

    let (listener, mut sessions) = self::config().await;
    sessions.stateless = false;
    let banner = mcp_server::demo_banner(&sessions, &key, &policy);
    assert!(banner.contains("Initialize an MCP session"), "{banner}");
    assert!(!banner.contains("stateless"), "{banner}");
    let addr = serve(listener, &sessions).await;
    let reply = post(addr, Cred::Key, banner_body(&banner).to_owned()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_ne!(
        reply.header("mcp-session-id"),
        "",
        "a session was initialized"
    );
}
