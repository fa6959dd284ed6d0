//! End-to-end tests of `IntrospectionLayer` over real HTTP, against a
//! loopback introspection endpoint of our own that can be active, inactive,
//! slow, down, garbage, and counts its calls.
#![cfg(feature = "introspection")]

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::{Form, State},
    http::{HeaderMap, Request, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::Engine;
use secrecy::SecretString;
use serde_json::{json, Value};
use tower_mcp_auth::{
    introspection::{AudienceCheck, IntrospectionLayer, Introspector},
    AuthScheme, Principal, ProtectedResource,
};

const RESOURCE: &str = "http://127.0.0.1/mcp";
const CLIENT_ID: &str = "mcp-rs";
const CLIENT_SECRET: &str = "s3cret value/with:odd&chars";

/// The fake authorization server's state.
#[derive(Default)]
struct As {
    calls: AtomicUsize,
    per_token: Mutex<HashMap<String, usize>>,
    methods: Mutex<Vec<&'static str>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `POST /introspect`: the token's prefix decides the answer.
async fn introspect(
    State(state): State<Arc<As>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let token = form.get("token").cloned().unwrap_or_default();
    *state
        .per_token
        .lock()
        .unwrap()
        .entry(token.clone())
        .or_default() += 1;
    // Client authentication, either way, with RFC 6749 §2.3.1 encoding.
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let authed = if let Some(basic) = basic {
        state.methods.lock().unwrap().push("basic");
        let (id, secret) = basic.split_once(':').unwrap_or_default();
        form_urlencoded_decode(id) == CLIENT_ID && form_urlencoded_decode(secret) == CLIENT_SECRET
    } else {
        state.methods.lock().unwrap().push("post");
        form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
    };
    if !authed {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if form.get("token_type_hint").map(String::as_str) != Some("access_token") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    }
    let (kind, subject) = token.split_once('-').unwrap_or((&token, "x"));
    let active = |extra: Value| {
        let mut body = json!({
            "active": true,
            "sub": subject,
            "client_id": "app",
            "scope": "read:data write:data",
            "exp": now() + 3600,
            "aud": [RESOURCE, "https://other.example.com"],
            "iss": "http://127.0.0.1",
            "tenant": "acme",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        Json(body).into_response()
    };
    match kind {
        "active" => active(json!({})),
        "bound" => active(json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})),
        "slowish" => {
            tokio::time::sleep(Duration::from_millis(150)).await;
            active(json!({}))
        }
        "inactive" => Json(json!({"active": false})).into_response(),
        "expired" => active(json!({"exp": now() - 10})),
        "otheraud" => active(json!({"aud": "https://other.example.com"})),
        "refresh" => active(json!({"token_type": "refresh_token"})),
        "bearertype" => active(json!({"token_type": "Bearer"})),
        "noaud" => {
            let mut r = json!({"active": true, "sub": subject, "exp": now() + 3600});
            r.as_object_mut().unwrap().remove("aud");
            Json(r).into_response()
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            active(json!({}))
        }
        "garbage" => ([("content-type", "application/json")], "{\"active\": tru").into_response(),
        "html" => ([("content-type", "text/html")], "<h1>login</h1>").into_response(),
        "activestring" => Json(json!({"active": "yes", "sub": subject})).into_response(),
        "error" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "huge" => {
            Json(json!({"active": true, "sub": "x", "pad": "a".repeat(100_000)})).into_response()
        }
        _ => Json(json!({"active": false})).into_response(),
    }
}

fn form_urlencoded_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn start_as() -> (Arc<As>, String) {
    let state = Arc::new(As::default());
    let app = Router::new()
        .route("/introspect", post(introspect))
        .with_state(state.clone());
    let addr = serve(app).await;
    (state, format!("http://{addr}/introspect"))
}

/// An introspector for the mock, expecting `aud` to name [`RESOURCE`].
fn builder(url: &str) -> tower_mcp_auth::introspection::IntrospectorBuilder {
    Introspector::builder(url, CLIENT_ID, SecretString::from(CLIENT_SECRET))
        .timeout(Duration::from_millis(500))
        .audience(RESOURCE)
}

fn resource() -> ProtectedResource {
    ProtectedResource::builder(RESOURCE)
        .authorization_server("http://127.0.0.1")
        .build()
        .unwrap()
}

async fn whoami(p: Principal) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        p.scheme(),
        p.name(),
        p.client_id().unwrap_or("-"),
        p.scopes(),
        p.claim("tenant").and_then(Value::as_str).unwrap_or("-")
    )
}

/// The protected app, on its own loopback port.
async fn start_app(layer: IntrospectionLayer) -> String {
    let app = Router::new()
        .route("/mcp", get(whoami))
        .route_layer(layer)
        .route_layer(resource().layer())
        .merge(resource().router());
    format!("http://{}/mcp", serve(app).await)
}

async fn get_with(url: &str, auth: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap())
}

#[tokio::test]
async fn active_token_reaches_the_handler_with_its_principal() {
    let (state, url) = start_as().await;
    let app = start_app(IntrospectionLayer::new(builder(&url).build().unwrap())).await;
    let (status, _, body) = get_with(&app, Some("Bearer active-alice")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "introspection|alice|app|read:data write:data|acme");
    // The scheme name is case-insensitive.
    let (status, _, body) = get_with(&app, Some("bEaReR active-bob")).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "introspection|bob|app|read:data write:data|acme")
    );
    assert_eq!(state.calls.load(Ordering::SeqCst), 2);
    assert_eq!(*state.methods.lock().unwrap(), ["basic", "basic"]);
}

#[tokio::test]
async fn a_dpop_bound_token_is_refused_by_a_layer_without_dpop() {
    let (_, url) = start_as().await;
    let app = start_app(IntrospectionLayer::new(builder(&url).build().unwrap())).await;
    let (status, headers, body) = get_with(&app, Some("Bearer bound-alice")).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"error="invalid_token""#));
    assert!(body.contains("DPoP-bound"), "{body}");
    let (status, _, _) = get_with(&app, Some("Bearer active-alice")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn client_secret_post_is_used_when_asked() {
    let (state, url) = start_as().await;
    let layer = IntrospectionLayer::new(builder(&url).client_secret_post().build().unwrap());
    let app = start_app(layer).await;
    let (status, _, _) = get_with(&app, Some("Bearer active-carol")).await;
    assert_eq!(status, 200);
    assert_eq!(*state.methods.lock().unwrap(), ["post"]);
}

#[tokio::test]
async fn refusals_are_401_with_the_challenge() {
    let (_state, url) = start_as().await;
    let app = start_app(IntrospectionLayer::new(builder(&url).build().unwrap())).await;
    let md = "resource_metadata=\"http://127.0.0.1/.well-known/oauth-protected-resource/mcp\"";
    for (auth, description) in [
        ("Bearer inactive-x", "the access token is not active"),
        ("Bearer expired-x", "the access token has expired"),
        (
            "Bearer otheraud-x",
            "the access token was not issued for this resource",
        ),
        ("Bearer unknown-x", "the access token is not active"),
        ("Bearer bad token", "the token is malformed"),
        ("Bearer ", "the bearer token is empty"),
    ] {
        let (status, headers, body) = get_with(&app, Some(auth)).await;
        assert_eq!(status, 401, "{auth}");
        assert_eq!(
            headers["www-authenticate"],
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\", {md}"),
            "{auth}"
        );
        assert_eq!(
            body,
            json!({"error": "invalid_token", "error_description": description}).to_string()
        );
    }
    let (status, headers, body) = get_with(&app, None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], format!("Bearer {md}"));
    assert_eq!(
        body,
        r#"{"error":"missing_credential","error_description":"authentication is required"}"#
    );
    // Another scheme is not a bearer token.
    let (status, _, _) = get_with(&app, Some("Basic dXNlcjpwYXNz")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn audience_from_the_introspector_only_and_strictness() {
    let (_state, url) = start_as().await;
    // No audience on the introspector: nothing to check against, so
    // refused, although the stack's ProtectedResourceLayer names the
    // resource (the audience is never taken from a request's extensions).
    let bare = Introspector::builder(&url, CLIENT_ID, SecretString::from(CLIENT_SECRET))
        .build()
        .unwrap();
    let app = start_app(IntrospectionLayer::new(bare)).await;
    assert_eq!(get_with(&app, Some("Bearer active-x")).await.0, 401);
    // The audience configured on the introspector.
    let app = start_app(IntrospectionLayer::new(builder(&url).build().unwrap())).await;
    assert_eq!(get_with(&app, Some("Bearer active-x")).await.0, 200);
    assert_eq!(get_with(&app, Some("Bearer otheraud-x")).await.0, 401);
    // Required by default: a response without aud is refused (a token of
    // some other application of the same authorization server).
    let app = start_app(IntrospectionLayer::new(builder(&url).build().unwrap())).await;
    let (status, headers, _) = get_with(&app, Some("Bearer noaud-x")).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("the access token was not issued for this resource"),
        "{headers:?}"
    );
    assert_eq!(get_with(&app, Some("Bearer active-x")).await.0, 200);
    // The opt-out for authorization servers that never send aud.
    let app = start_app(IntrospectionLayer::new(
        builder(&url)
            .audience_check(AudienceCheck::WhenPresent)
            .build()
            .unwrap(),
    ))
    .await;
    assert_eq!(get_with(&app, Some("Bearer noaud-x")).await.0, 200);
    assert_eq!(get_with(&app, Some("Bearer otheraud-x")).await.0, 401);
}

#[tokio::test]
async fn an_active_refresh_token_is_not_an_access_token() {
    let (_state, url) = start_as().await;
    let app = start_app(IntrospectionLayer::new(builder(&url).build().unwrap())).await;
    let (status, headers, _) = get_with(&app, Some("Bearer refresh-x")).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\""),
        "{headers:?}"
    );
    assert_eq!(get_with(&app, Some("Bearer bearertype-x")).await.0, 200);
}

fn assert_503(status: StatusCode, headers: &HeaderMap, body: &str, what: &str) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(headers["retry-after"], "5", "{what}");
    assert!(headers.get("www-authenticate").is_none(), "{what}");
    assert_eq!(
        body,
        json!({
            "error": "temporarily_unavailable",
            "error_description": "the token introspection service is unavailable",
            "retry_after": 5
        })
        .to_string(),
        "{what}"
    );
}

#[tokio::test]
async fn fail_closed_when_the_endpoint_is_slow_broken_or_refuses_us() {
    let (state, url) = start_as().await;
    let app = start_app(IntrospectionLayer::new(builder(&url).build().unwrap())).await;
    for token in [
        "slow-x",
        "garbage-x",
        "html-x",
        "activestring-x",
        "error-x",
        "huge-x",
    ] {
        let started = std::time::Instant::now();
        let (status, headers, body) = get_with(&app, Some(&format!("Bearer {token}"))).await;
        assert_503(status, &headers, &body, token);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{token}: timeout honoured"
        );
    }
    // Failures are not cached: the next request asks again.
    let before = state.calls.load(Ordering::SeqCst);
    let (status, ..) = get_with(&app, Some("Bearer garbage-x")).await;
    assert_eq!(status, 503);
    assert_eq!(state.calls.load(Ordering::SeqCst), before + 1);

    // Wrong client credentials: the server says invalid_client; the caller
    // is not at fault, so 503, never 401 and never a pass.
    let wrong = Introspector::builder(&url, CLIENT_ID, SecretString::from("wrong"))
        .build()
        .unwrap();
    let app = start_app(IntrospectionLayer::new(wrong)).await;
    let (status, headers, body) = get_with(&app, Some("Bearer active-x")).await;
    assert_503(status, &headers, &body, "invalid_client");
}

#[tokio::test]
async fn fail_closed_when_the_endpoint_is_down() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let introspector = builder(&format!("http://{addr}/introspect"))
        .build()
        .unwrap();
    let app = start_app(IntrospectionLayer::new(introspector)).await;
    let (status, headers, body) = get_with(&app, Some("Bearer active-x")).await;
    assert_503(status, &headers, &body, "down");
}

#[tokio::test]
async fn results_are_cached_and_inactive_ones_briefly() {
    let (state, url) = start_as().await;
    let app = start_app(IntrospectionLayer::new(
        builder(&url)
            .inactive_ttl(Duration::from_millis(1500))
            .build()
            .unwrap(),
    ))
    .await;
    for _ in 0..5 {
        assert_eq!(get_with(&app, Some("Bearer active-a")).await.0, 200);
        assert_eq!(get_with(&app, Some("Bearer inactive-b")).await.0, 401);
    }
    {
        let per = state.per_token.lock().unwrap();
        assert_eq!(per["active-a"], 1);
        assert_eq!(per["inactive-b"], 1);
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(get_with(&app, Some("Bearer inactive-b")).await.0, 401);
    assert_eq!(get_with(&app, Some("Bearer active-a")).await.0, 200);
    let per = state.per_token.lock().unwrap();
    assert_eq!(per["inactive-b"], 2, "the inactive entry expired");
    assert_eq!(per["active-a"], 1, "the active entry did not");
}

#[tokio::test]
async fn cache_off_asks_every_time() {
    let (state, url) = start_as().await;
    let app = start_app(IntrospectionLayer::new(
        builder(&url).no_cache().build().unwrap(),
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(get_with(&app, Some("Bearer active-a")).await.0, 200);
    }
    assert_eq!(state.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn single_flight_1000_concurrent_requests_10_tokens_10_calls() {
    let (state, url) = start_as().await;
    let app = start_app(IntrospectionLayer::new(builder(&url).build().unwrap())).await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let client = client.clone();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let res = client
                .get(&app)
                .header("authorization", format!("Bearer slowish-u{}", i % 10))
                .send()
                .await
                .unwrap();
            (res.status(), res.text().await.unwrap())
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200);
        assert!(
            body.starts_with(&format!("introspection|u{}|", i % 10)),
            "{body}"
        );
    }
    assert_eq!(state.calls.load(Ordering::SeqCst), 10);
    let per = state.per_token.lock().unwrap();
    assert_eq!(per.len(), 10);
    assert!(per.values().all(|&n| n == 1), "{per:?}");
}

/// Stand-in for an outer `JwtLayer` in optional mode: a JWT-shaped token
/// (three dot-separated parts) is "verified" and gets a principal; an
/// opaque one passes on without, marked unverified (as
/// `pass_opaque_tokens` does).
#[derive(Clone)]
struct FakeJwtLayer;

impl<S> tower::Layer<S> for FakeJwtLayer {
    type Service = FakeJwt<S>;
    fn layer(&self, inner: S) -> FakeJwt<S> {
        FakeJwt(inner)
    }
}

#[derive(Clone)]
struct FakeJwt<S>(S);

impl<S: tower::Service<Request<Body>>> tower::Service<Request<Body>> for FakeJwt<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, mut req: Request<Body>) -> S::Future {
        let jwt = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.split('.').count() == 3);
        if jwt {
            req.extensions_mut()
                .insert(Principal::new(AuthScheme::Jwt, "jwt-user"));
        } else {
            // As `JwtLayer::pass_opaque_tokens` does.
            req.extensions_mut()
                .insert(tower_mcp_auth::authenticate::UnverifiedCredential::new(
                    "jwt",
                ));
        }
        self.0.call(req)
    }
}

#[tokio::test]
async fn behind_a_jwt_layer_only_opaque_tokens_are_introspected() {
    let (state, url) = start_as().await;
    let app = Router::new().route("/mcp", get(whoami)).route_layer(
        tower::ServiceBuilder::new()
            .layer(FakeJwtLayer)
            .layer(IntrospectionLayer::new(builder(&url).build().unwrap())),
    );
    let app = format!("http://{}/mcp", serve(app).await);
    let (status, _, body) = get_with(&app, Some("Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "jwt|jwt-user|-||-"));
    assert_eq!(
        state.calls.load(Ordering::SeqCst),
        0,
        "a JWT is not introspected"
    );
    let (status, _, body) = get_with(&app, Some("Bearer active-opaque")).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("introspection|opaque|"), "{body}");
    assert_eq!(state.calls.load(Ordering::SeqCst), 1);
}
