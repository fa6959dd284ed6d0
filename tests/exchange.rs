//! RFC 8693 token exchange end to end, on loopback (issue 29): a fake
//! authorization server's token endpoint, an MCP-side app whose tools call
//! a downstream API for their caller (by `authorization_for` and through
//! `ExchangeLayer` on hyper-util's client), and that downstream API,
//! protected by this crate's `JwtLayer` for its own audience; and the
//! `token_exchange` example's rmcp tool.

mod common;
#[allow(dead_code)]
#[path = "../examples/token_exchange.rs"]
mod token_exchange;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    extract::{Query, Request, State},
    http::{request::Parts, HeaderMap, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Form, Json, Router,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use common::{claims, now, serve, Captured, Signer, AUD, HS_SECRET};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    api_key::{ApiKeyLayer, ApiKeys},
    discovery::AuthorizationServerMetadata,
    exchange::{
        Downstream, ExchangeError, ExchangeLayer, KeepSubjectTokenLayer, OAuthErrorCode,
        SubjectToken, Target, TokenExchanger, ACCESS_TOKEN_TYPE, GRANT_TYPE,
    },
    jwt::{JwtLayer, JwtValidator},
    Principal, ProtectedResource, JSONRPC_FORBIDDEN, JSONRPC_UNAUTHORIZED, JSONRPC_UNAVAILABLE,
};

/// The downstream API's resource identifier.
const USERS: &str = "https://users.example.com";
const CLIENT_ID: &str = "mcp-server";
const CLIENT_SECRET: &str = "s3cret value";
const ACTOR_TOKEN: &str = "mcp-server-actor-token";
const API_KEY: &str = "mcp_sk_ops-0123456789abcdef0123";

// ---------------------------------------------------------------- the AS

/// What the fake token endpoint does and saw.
#[derive(Default)]
struct AsState {
    calls: AtomicUsize,
    /// Answers nothing, ever.
    stall: AtomicBool,
    /// When set, each call waits for a permit (and says it entered).
    gate: Option<Semaphore>,
    entered: Notify,
    expires_in: AtomicU64,
    /// The form and client authentication method of every call.
    seen: Mutex<Vec<(HashMap<String, String>, &'static str)>>,
    issued: AtomicUsize,
    /// The audience the caller's tokens are for (default: `AUD`).
    subject_audience: Mutex<Option<String>>,
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": format!("fake: {code}")})),
    )
        .into_response()
}

/// RFC 6749 §2.3.1: the id and secret are form-encoded inside Basic.
fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let raw = STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

async fn token_endpoint(
    State(st): State<Arc<AsState>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    st.calls.fetch_add(1, Ordering::SeqCst);
    st.entered.notify_one();
    if st.stall.load(Ordering::SeqCst) {
        return std::future::pending().await;
    }
    if let Some(gate) = &st.gate {
        gate.acquire().await.unwrap().forget();
    }
    let f: HashMap<String, String> = form.iter().cloned().collect();
    let (client, method) = match basic_client(&headers) {
        Some(c) => (Some(c), "basic"),
        None => (
            f.get("client_id")
                .cloned()
                .zip(f.get("client_secret").cloned()),
            "post",
        ),
    };
    st.seen.lock().unwrap().push((f.clone(), method));
    if client != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if f.get("grant_type").map(String::as_str) != Some(GRANT_TYPE) {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    if f.get("subject_token_type").map(String::as_str) != Some(ACCESS_TOKEN_TYPE) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // The subject token must be one of ours, for the MCP server.
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let audience = st.subject_audience.lock().unwrap().clone();
    v.set_audience(&[audience.as_deref().unwrap_or(AUD)]);
    let Ok(subject) = jsonwebtoken::decode::<Value>(
        f.get("subject_token").map_or("", String::as_str),
        &jsonwebtoken::DecodingKey::from_secret(HS_SECRET.as_bytes()),
        &v,
    ) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if f.get("resource").map(String::as_str) != Some(USERS) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target");
    }
    let scope = f.get("scope").cloned().unwrap_or_default();
    if scope.split(' ').any(|s| s == "admin") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    let expires_in = st.expires_in.load(Ordering::SeqCst);
    let n = st.issued.fetch_add(1, Ordering::SeqCst);
    let mut claims = json!({
        "iss": "https://as.example.com", "sub": subject.claims["sub"], "aud": USERS,
        "exp": now() + expires_in, "iat": now(), "scope": scope, "jti": format!("x{n}"),
    });
    match f.get("actor_token").map(String::as_str) {
        Some(ACTOR_TOKEN) => claims["act"] = json!({"sub": CLIENT_ID}),
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        None => {}
    }
    Json(json!({
        "access_token": Signer::hs(HS_SECRET, None).sign(&claims),
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
    }))
    .into_response()
}

struct FakeAs {
    state: Arc<AsState>,
    origin: String,
}

impl FakeAs {
    async fn start(gated: bool) -> Self {
        let state = Arc::new(AsState {
            gate: gated.then(|| Semaphore::new(0)),
            expires_in: AtomicU64::new(120),
            ..AsState::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let metadata = AuthorizationServerMetadata::new(origin.clone())
            .token_endpoint(format!("{origin}/token"))
            .grant_types_supported(["authorization_code", GRANT_TYPE]);
        let mut metadata = serde_json::to_value(&metadata).unwrap();
        metadata["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
        let app = Router::new()
            .route("/token", post(token_endpoint))
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || async move { Json(metadata) }),
            )
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state, origin }
    }

    fn exchanger(&self) -> tower_mcp_auth::exchange::TokenExchangerBuilder {
        TokenExchanger::builder(
            format!("{}/token", self.origin),
            CLIENT_ID,
            SecretString::from(CLIENT_SECRET),
        )
    }

    fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<(HashMap<String, String>, &'static str)> {
        self.state.seen.lock().unwrap().clone()
    }
}

// ---------------------------------------------------- downstream and apps

/// Every header of every request a server received.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<HeaderMap>>>);

impl Recorder {
    fn headers(&self) -> Vec<HeaderMap> {
        self.0.lock().unwrap().clone()
    }
}

async fn record(State(rec): State<Recorder>, req: Request, next: Next) -> Response {
    rec.0.lock().unwrap().push(req.headers().clone());
    next.run(req).await
}

/// The downstream API: `JwtLayer` for its own audience, same issuer keys.
async fn downstream(rec: Recorder) -> String {
    let resource = ProtectedResource::builder(USERS).build().unwrap();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(HS_SECRET))
        .build()
        .unwrap();
    let me = |p: Principal| async move {
        Json(json!({"sub": p.subject(), "act": p.claim("act"), "scope": p.claim("scope")}))
    };
    let app = Router::new()
        .route("/me", get(me))
        .layer(JwtLayer::new(validator))
        .layer(middleware::from_fn_with_state(rec, record));
    format!("http://{}", serve(app).await)
}

/// Another origin, not configured as a downstream: records and says ok.
async fn elsewhere(rec: Recorder) -> String {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(middleware::from_fn_with_state(rec, record));
    format!("http://{}", serve(app).await)
}

#[derive(Clone)]
struct Tools {
    exchanger: TokenExchanger,
    layer: ExchangeLayer,
    downstream: String,
    elsewhere: String,
}

/// What a tool answers on failure: a JSON-RPC error.
fn rpc_error(e: &ExchangeError) -> Json<Value> {
    Json(json!({"error": {"code": e.json_rpc_code(), "message": e.to_string()}}))
}

/// A tool calling the downstream with `authorization_for`.
async fn tool(
    State(t): State<Tools>,
    Query(q): Query<HashMap<String, String>>,
    parts: Parts,
) -> Json<Value> {
    let target = Target::resource(q.get("resource").map_or(USERS, String::as_str)).scopes(
        q.get("scope")
            .map_or("users:read", String::as_str)
            .split(' '),
    );
    match t.exchanger.authorization_for(&parts, target).await {
        Ok(authorization) => {
            let r = reqwest::Client::new()
                .get(format!("{}/me", t.downstream))
                .header("authorization", authorization)
                .send()
                .await
                .unwrap();
            Json(json!({"status": r.status().as_u16(), "body": r.json::<Value>().await.unwrap()}))
        }
        Err(e) => rpc_error(&e),
    }
}

/// A tool calling through hyper-util's client wrapped in `ExchangeLayer`:
/// the downstream, then another origin.
async fn tool_layer(State(t): State<Tools>, parts: Parts) -> Json<Value> {
    let client = ServiceBuilder::new()
        .layer(t.layer.for_caller(&parts))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let get = |url: String| {
        http::Request::get(url)
            .header("authorization", "Bearer should-be-replaced")
            .body(Empty::new())
            .unwrap()
    };
    let r = match client
        .clone()
        .oneshot(get(format!("{}/me", t.downstream)))
        .await
    {
        Ok(r) => r,
        Err(e) => return rpc_error(e.downcast_ref::<ExchangeError>().unwrap()),
    };
    let status = r.status().as_u16();
    let body: Value =
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let other = client.oneshot(get(t.elsewhere.clone())).await.unwrap();
    Json(json!({"status": status, "body": body, "elsewhere": other.status().as_u16()}))
}

/// The MCP-side app: an API key or a JWT for the MCP server, the token
/// kept for exchange.
async fn mcp_app(exchanger: TokenExchanger, downstream: String, elsewhere: String) -> String {
    let resource = ProtectedResource::builder(AUD).build().unwrap();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(HS_SECRET))
        .build()
        .unwrap();
    let keys = ApiKeys::from_list("KEYS", &SecretString::from(format!("ops:{API_KEY}"))).unwrap();
    let layer = ExchangeLayer::new(
        exchanger.clone(),
        [Downstream::new(&downstream, Target::resource(USERS).scopes(["users:read"])).unwrap()],
    );
    let tools = Tools {
        exchanger,
        layer,
        downstream,
        elsewhere,
    };
    let app = Router::new()
        .route("/tool", post(tool))
        .route("/tool-layer", post(tool_layer))
        .with_state(tools)
        .layer(
            ServiceBuilder::new()
                .layer(resource.layer())
                .layer(ApiKeyLayer::new(keys).optional())
                .layer(JwtLayer::new(validator).optional())
                .layer(KeepSubjectTokenLayer::new()),
        );
    format!("http://{}", serve(app).await)
}

fn caller_token(sub: &str) -> String {
    Signer::hs(HS_SECRET, None).sign(&claims(sub))
}

async fn call(url: &str, token: Option<&str>, key: Option<&str>) -> Value {
    let mut req = reqwest::Client::new().post(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// A `SubjectToken` as a tool gets it: the caller's token verified by
/// `JwtLayer`, kept by `KeepSubjectTokenLayer`.
async fn subject(token: &str) -> SubjectToken {
    let resource = ProtectedResource::builder(AUD).build().unwrap();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(HS_SECRET))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(JwtLayer::new(validator))
        .layer(KeepSubjectTokenLayer::new())
        .service_fn(|req: http::Request<axum::body::Body>| async move {
            let kept = req.extensions().get::<SubjectToken>().cloned().unwrap();
            let mut res = http::Response::new(axum::body::Body::empty());
            res.extensions_mut().insert(kept);
            Ok::<_, std::convert::Infallible>(res)
        });
    let req = http::Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    res.extensions().get::<SubjectToken>().cloned().unwrap()
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn the_downstream_gets_an_exchanged_token_and_never_the_callers() {
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

    let authz = FakeAs::start(false).await;
    let down_rec = Recorder::default();
    let other_rec = Recorder::default();
    let down = downstream(down_rec.clone()).await;
    let other = elsewhere(other_rec.clone()).await;
    let mcp = mcp_app(authz.exchanger().build().unwrap(), down.clone(), other).await;
    let alice = caller_token("alice");

    // A tool with `authorization_for`.
    let r = call(&format!("{mcp}/tool"), Some(&alice), None).await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body"]["sub"], "alice");
    assert_eq!(r["body"]["scope"], "users:read");
    // The same caller through `ExchangeLayer`: the cached token (the same
    // caller token, target and scopes), one exchange in all.
    let r = call(&format!("{mcp}/tool-layer"), Some(&alice), None).await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body"]["sub"], "alice");
    assert_eq!(r["elsewhere"], 200);
    assert_eq!(authz.calls(), 1);

    // What the authorization server was sent.
    let (form, method) = authz.seen().remove(0);
    assert_eq!(method, "basic");
    assert_eq!(form["grant_type"], GRANT_TYPE);
    assert_eq!(form["subject_token"], alice);
    assert_eq!(form["subject_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(form["requested_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(form["resource"], USERS);
    assert_eq!(form["scope"], "users:read");
    assert!(!form.contains_key("client_secret") && !form.contains_key("actor_token"));

    // The caller's own token at the downstream: refused (its audience).
    let res = reqwest::Client::new()
        .get(format!("{down}/me"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("the token is not for this resource"),
        "{challenge}"
    );

    // Every request the tools sent: the downstream's carried a token that
    // is not the caller's; the other origin's got the one the tool set
    // there (the layer adds nothing for it), and never the caller's.
    let sent_by_tools: Vec<HeaderMap> = down_rec.headers()[..2].to_vec();
    for headers in sent_by_tools.iter().chain(other_rec.headers().iter()) {
        for (name, value) in headers {
            assert!(
                !value
                    .as_bytes()
                    .windows(alice.len())
                    .any(|w| w == alice.as_bytes()),
                "the caller's token in {name}"
            );
        }
    }
    for h in &sent_by_tools {
        assert!(h["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ey"));
        assert_ne!(h["authorization"], "Bearer should-be-replaced");
    }
    assert_eq!(
        other_rec.headers()[0]["authorization"],
        "Bearer should-be-replaced"
    );

    // The audit trail: one `exchanged` event, never a token.
    let log = captured.text();
    assert_eq!(log.matches("outcome=\"exchanged\"").count(), 1, "{log}");
    assert!(log.contains("layer=\"token_exchange\"") && log.contains("subject=\"alice\""));
    assert!(log.contains(&format!("downstream=\"{USERS}\"")));
    assert!(!log.contains(&alice) && !log.contains("eyJ"), "{log}");
}

#[tokio::test]
async fn an_api_key_caller_has_nothing_to_exchange() {
    let authz = FakeAs::start(false).await;
    let down = downstream(Recorder::default()).await;
    let other = elsewhere(Recorder::default()).await;
    let mcp = mcp_app(authz.exchanger().build().unwrap(), down, other).await;
    for path in ["/tool", "/tool-layer"] {
        let r = call(&format!("{mcp}{path}"), None, Some(API_KEY)).await;
        assert_eq!(r["error"]["code"], JSONRPC_UNAUTHORIZED, "{path}: {r}");
        assert!(r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("an API key cannot be exchanged"));
    }
    assert_eq!(authz.calls(), 0);
}

#[tokio::test]
async fn refusals_carry_their_oauth_code() {
    let authz = FakeAs::start(false).await;
    let down = downstream(Recorder::default()).await;
    let other = elsewhere(Recorder::default()).await;
    let mcp = mcp_app(authz.exchanger().build().unwrap(), down, other).await;
    let alice = caller_token("alice");
    let url = |q: &str| format!("{mcp}/tool?{q}");
    let r = call(
        &url("resource=https://payroll.example.com"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(r["error"]["code"], JSONRPC_FORBIDDEN, "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid_target (fake: invalid_target)"));
    let r = call(&url("scope=users:read%20admin"), Some(&alice), None).await;
    assert_eq!(r["error"]["code"], JSONRPC_FORBIDDEN, "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid_scope"));

    // This server's own credentials refused: its configuration, 503-like.
    let wrong = TokenExchanger::builder(
        format!("{}/token", authz.origin),
        CLIENT_ID,
        SecretString::from("not it"),
    )
    .build()
    .unwrap();
    let e = wrong
        .exchange(&subject(&alice).await, &Target::resource(USERS))
        .await
        .unwrap_err();
    assert_eq!(e.oauth_code(), Some(&OAuthErrorCode::InvalidClient));
    assert_eq!(e.json_rpc_code(), JSONRPC_UNAVAILABLE);
    // Refusals are not cached: each is asked again.
    let calls = authz.calls();
    let x = authz.exchanger().build().unwrap();
    let s = subject(&alice).await;
    for _ in 0..2 {
        let e = x
            .exchange(&s, &Target::resource("https://payroll.example.com"))
            .await;
        assert_eq!(
            e.unwrap_err().oauth_code(),
            Some(&OAuthErrorCode::InvalidTarget)
        );
    }
    assert_eq!(authz.calls(), calls + 2);
}

#[tokio::test]
async fn cached_per_caller_and_target_until_shortly_before_expiry() {
    let authz = FakeAs::start(false).await;
    // Issued for 120 s, refreshed 30 s before: served for 90 s.
    let x = authz.exchanger().build().unwrap();
    let alice = subject(&caller_token("alice")).await;
    let bob = subject(&caller_token("bob")).await;
    let users = Target::resource(USERS).scopes(["users:read"]);

    let first = x.exchange(&alice, &users).await.unwrap();
    let again = x
        .exchange(&alice, &users.clone().scopes(["users:read"]))
        .await
        .unwrap();
    assert_eq!(first.authorization(), again.authorization());
    assert_eq!(authz.calls(), 1);
    // Another scope set, another caller: their own exchanges.
    let wider = x
        .exchange(
            &alice,
            &Target::resource(USERS).scopes(["users:read", "users:write"]),
        )
        .await
        .unwrap();
    assert_ne!(wider.authorization(), first.authorization());
    let for_bob = x.exchange(&bob, &users).await.unwrap();
    assert_ne!(for_bob.authorization(), first.authorization());
    assert_eq!(authz.calls(), 3);

    // On the paused clock: still served at 89 s, exchanged again past 90 s.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(89)).await;
    let hit = x.exchange(&alice, &users).await.unwrap();
    assert_eq!(hit.authorization(), first.authorization());
    assert_eq!(authz.calls(), 3);
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::time::resume();
    let renewed = x.exchange(&alice, &users).await.unwrap();
    assert_ne!(renewed.authorization(), first.authorization());
    assert_eq!(authz.calls(), 4);
    let hit = x.exchange(&alice, &users).await.unwrap();
    assert_eq!(hit.authorization(), renewed.authorization());
    assert_eq!(authz.calls(), 4);

    // A token issued for less than the margin is never served again.
    authz.state.expires_in.store(20, Ordering::SeqCst);
    let carol = subject(&caller_token("carol")).await;
    x.exchange(&carol, &users).await.unwrap();
    x.exchange(&carol, &users).await.unwrap();
    assert_eq!(authz.calls(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_exchanges_make_one_call() {
    let authz = FakeAs::start(true).await;
    let x = authz.exchanger().build().unwrap();
    let alice = subject(&caller_token("alice")).await;
    let started = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (x, alice, started) = (x.clone(), alice.clone(), started.clone());
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                x.exchange(&alice, &Target::resource(USERS)).await
            })
        })
        .collect();
    // The one call is in the endpoint, held there; every task has started.
    authz.state.entered.notified().await;
    while started.load(Ordering::SeqCst) < 16 {
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(authz.calls(), 1);
    authz.state.gate.as_ref().unwrap().add_permits(16);
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap().authorization());
    }
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(authz.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_server_is_a_deadline_not_a_hang() {
    let authz = FakeAs::start(false).await;
    authz.state.stall.store(true, Ordering::SeqCst);
    let x = authz
        .exchanger()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let alice = subject(&caller_token("alice")).await;
    let e = x
        .exchange(&alice, &Target::resource(USERS))
        .await
        .unwrap_err();
    assert!(matches!(e, ExchangeError::Unavailable(_)), "{e:?}");
    assert!(
        e.to_string().contains("no complete answer within 3s"),
        "{e}"
    );
    assert_eq!(e.json_rpc_code(), JSONRPC_UNAVAILABLE);
    // Failures are not cached: the server back, the next call works.
    tokio::time::resume();
    authz.state.stall.store(false, Ordering::SeqCst);
    x.exchange(&alice, &Target::resource(USERS)).await.unwrap();

    // A server that is not there at all.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}/token", l.local_addr().unwrap());
    drop(l);
    let x = TokenExchanger::builder(gone, CLIENT_ID, SecretString::from(CLIENT_SECRET))
        .build()
        .unwrap();
    let e = x
        .exchange(&alice, &Target::resource(USERS))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("could not be reached"), "{e}");
}

#[tokio::test]
async fn discovered_endpoint_client_secret_post_and_an_actor_token() {
    let authz = FakeAs::start(false).await;
    let metadata = AuthorizationServerMetadata::discover(&authz.origin)
        .await
        .unwrap();
    // The server lists only client_secret_post: that is what is used.
    let x = TokenExchanger::from_metadata(&metadata, CLIENT_ID, SecretString::from(CLIENT_SECRET))
        .unwrap()
        .actor_token(SecretString::from(ACTOR_TOKEN), ACCESS_TOKEN_TYPE)
        .build()
        .unwrap();
    let rec = Recorder::default();
    let down = downstream(rec).await;
    let other = elsewhere(Recorder::default()).await;
    let mcp = mcp_app(x, down, other).await;
    let r = call(&format!("{mcp}/tool"), Some(&caller_token("alice")), None).await;
    assert_eq!(r["status"], 200, "{r}");
    // Delegation: the downstream sees the caller, and this server acting.
    assert_eq!(r["body"]["sub"], "alice");
    assert_eq!(r["body"]["act"]["sub"], CLIENT_ID);
    let (form, method) = authz.seen().remove(0);
    assert_eq!(method, "post");
    assert_eq!(form["actor_token"], ACTOR_TOKEN);
    assert_eq!(form["actor_token_type"], ACCESS_TOKEN_TYPE);
}

#[tokio::test]
async fn the_example_tool_calls_the_users_api_with_an_exchanged_token() {
    let authz = FakeAs::start(false).await;
    let rec = Recorder::default();
    let down = downstream(rec.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    *authz.state.subject_audience.lock().unwrap() = Some(url.clone());
    let resource = ProtectedResource::builder(&url).build().unwrap();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(HS_SECRET))
        .build()
        .unwrap();
    let users = token_exchange::UsersApi {
        url: down,
        resource: USERS.into(),
    };
    let app = token_exchange::app(
        &resource,
        validator,
        authz.exchanger().build().unwrap(),
        users,
    )
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut claims = claims("alice");
    claims["aud"] = url.clone().into();
    let alice = Signer::hs(HS_SECRET, None).sign(&claims);
    let tool_call = |token: Option<String>| {
        let url = url.clone();
        async move {
            let mut req = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(
                    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "get_user_data", "arguments": {}}})
                    .to_string(),
                );
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };

    let r = tool_call(Some(alice.clone())).await;
    let text = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    let me: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("{r}"));
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["scope"], "users:read");
    for headers in rec.headers() {
        let sent = headers["authorization"].to_str().unwrap();
        assert!(sent.starts_with("Bearer ") && !sent.contains(&alice));
    }
    // No token (the layer is optional here): the tool's JSON-RPC error.
    let r = tool_call(None).await;
    assert_eq!(r["error"]["code"], JSONRPC_UNAUTHORIZED, "{r}");
    assert_eq!(authz.calls(), 1);
}

/// With `McpAuth`, the MCP service wrapped in `KeepSubjectTokenLayer` gets
/// the token of a bearer caller, and none for an API key's.
#[tokio::test]
async fn mcp_auth_with_the_service_wrapped_keeps_the_token() {
    use tower::Layer;
    use tower_mcp_auth::{mcp::McpPolicy, stack::McpAuth, Rule};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let auth = McpAuth::builder(&url)
        .hs256_secret(SecretString::from(HS_SECRET))
        .api_keys(
            ApiKeys::from_list("KEYS", &SecretString::from(format!("ops:{API_KEY}"))).unwrap(),
        )
        .policy(
            McpPolicy::builder()
                .default(Rule::authenticated())
                .build()
                .unwrap(),
        )
        .build()
        .await
        .unwrap();
    let mcp = tower::service_fn(|req: http::Request<axum::body::Body>| async move {
        let kept = req
            .extensions()
            .get::<SubjectToken>()
            .map(SubjectToken::subject);
        let body = json!({"jsonrpc": "2.0", "id": 1, "result": {"kept": kept}}).to_string();
        Ok::<_, std::convert::Infallible>(
            http::Response::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap(),
        )
    });
    let app = auth.router(KeepSubjectTokenLayer::new().layer(mcp));
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut claims = claims("alice");
    claims["aud"] = url.clone().into();
    let alice = Signer::hs(HS_SECRET, None).sign(&claims);
    let ping = |credential: (&'static str, String)| {
        let url = url.clone();
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header(credential.0, credential.1)
                .body(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    let r = ping(("authorization", format!("Bearer {alice}"))).await;
    assert_eq!(r["result"]["kept"], "alice", "{r}");
    let r = ping(("x-api-key", API_KEY.to_owned())).await;
    assert_eq!(r["result"]["kept"], Value::Null, "{r}");
}
