//! Fault injection (issue 9, part 3): the JWKS and introspection endpoints
//! down, slow, answering garbage, 10 MB, the wrong content type, 500 or a
//! redirect; the inner MCP service slow, failing or cancelled behind the
//! full stack. Every test is bounded in time ([`bounded`]) so a hang fails
//! instead of stalling CI.
//!
//! What the other test files already cover, and is not repeated here:
//!
//! * `tests/jwt_jwks.rs`: JWKS HTTP 500 before the first fetch → 503 with
//!   `Retry-After` over HTTP (and recovery through an explicit
//!   `refresh_keys`); a JWKS over a small size cap and a slow JWKS at the
//!   validator level; rotation; unknown-`kid` floods.
//! * `tests/jwt_jwks_outage.rs`: a failed refresh keeps the last good keys
//!   and emits a `degraded` audit event.
//! * `tests/introspection.rs`: an introspection endpoint that is down
//!   (connection refused), slow, answers garbage JSON, an HTML page,
//!   `"active": "yes"`, HTTP 500, a 100 KB body, or refuses our client
//!   credentials → 503 with `Retry-After`; failures are not cached.
//! * `tests/rate_limit_redis.rs`: Redis killed and restarted, both fail
//!   modes, and recovery. (Here: Redis that hangs, stopped with SIGSTOP.)
#![cfg(all(
    feature = "jwt",
    feature = "mcp",
    feature = "rate-limit",
    feature = "introspection"
))]

mod common;

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, Request, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use bytes::Bytes;
use common::{claims, now, Signer, AUD};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    introspection::{IntrospectionLayer, Introspector},
    jwt::{JwtLayer, JwtValidator},
    mcp::{McpPolicy, McpPolicyLayer},
    rate_limit::{failed_auth::FailedAuthLayer, Quota, RateLimitLayer},
    Principal, ProtectedResource, Rule,
};

/// The timeout configured on the JWKS and introspection clients.
const TIMEOUT: Duration = Duration::from_millis(300);
/// What a refusal may take beyond [`TIMEOUT`] on a loaded two-core CI
/// machine.
const MARGIN: Duration = Duration::from_secs(2);
/// The size of the oversized bodies.
const TEN_MB: usize = 10 * 1024 * 1024;

/// Runs a test body under a hard deadline: a hang is a failure, not a
/// stuck CI job.
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the test did not finish within 60 s: something hangs")
}

fn resource() -> ProtectedResource {
    ProtectedResource::builder(AUD)
        .authorization_server("http://127.0.0.1")
        .build()
        .unwrap()
}

/// A loopback port that nothing listens on (connection refused), which a
/// test may later bind to bring the endpoint up.
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

// ───────────────────────── the faulty endpoint ─────────────────────────

/// How the fault server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// The right answer.
    Ok,
    /// The right answer, after 10 s (far past [`TIMEOUT`]) unless the test
    /// sets another delay.
    Slow,
    /// 200, `application/json`, a truncated JSON document.
    Garbage,
    /// 200, `text/html`: a login page.
    Html,
    /// The right answer labelled `text/plain`.
    WrongType,
    /// 200 with a 10 MB body and its `Content-Length`.
    Huge,
    /// 200 with a 10 MB body, chunked (no length announced).
    HugeChunked,
    /// HTTP 500.
    Error,
    /// 302 to `/good`, which would give the right answer.
    Redirect,
}

const MODES: [Mode; 9] = [
    Mode::Ok,
    Mode::Slow,
    Mode::Garbage,
    Mode::Html,
    Mode::WrongType,
    Mode::Huge,
    Mode::HugeChunked,
    Mode::Error,
    Mode::Redirect,
];

/// A JWKS (`GET /jwks.json`) and introspection (`POST /introspect`)
/// endpoint whose behaviour the test switches.
struct FaultServer {
    base: String,
    state: Arc<FaultState>,
}

struct FaultState {
    mode: AtomicU8,
    /// How long [`Mode::Slow`] waits.
    delay_ms: AtomicU64,
    jwks: Mutex<Value>,
    hits: AtomicUsize,
    /// Hits on the redirect target: must stay 0.
    redirect_target_hits: AtomicUsize,
    /// Bytes of oversized bodies handed to the connection.
    huge_bytes_sent: AtomicUsize,
    /// Whether an oversized body was ever sent to its end.
    huge_completed: AtomicBool,
}

impl FaultState {
    fn mode(&self) -> Mode {
        MODES[usize::from(self.mode.load(Ordering::SeqCst))]
    }
}

/// A 10 MB body produced chunk by chunk, counting what is taken.
struct HugeBody {
    left: usize,
    announce_length: bool,
    state: Arc<FaultState>,
}

impl http_body::Body for HugeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 64 * 1024] = [b'a'; 64 * 1024];
        if self.left == 0 {
            self.state.huge_completed.store(true, Ordering::SeqCst);
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK.len());
        self.left -= n;
        self.state.huge_bytes_sent.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }

    fn size_hint(&self) -> SizeHint {
        if self.announce_length {
            SizeHint::with_exact(self.left as u64)
        } else {
            SizeHint::default()
        }
    }
}

fn introspection_answer(token: &str) -> Value {
    match token.strip_prefix("good-") {
        Some(subject) => json!({
            "active": true, "sub": subject, "scope": "read:data",
            "exp": now() + 600, "aud": AUD, "client_id": "app",
        }),
        None => json!({"active": false}),
    }
}

/// The faulty answer for the current mode; `good` is the right one.
async fn answer(state: &Arc<FaultState>, good: Value) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let json = [("content-type", "application/json")];
    match state.mode() {
        Mode::Ok => (json, good.to_string()).into_response(),
        Mode::Slow => {
            let delay = state.delay_ms.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            (json, good.to_string()).into_response()
        }
        Mode::Garbage => (json, r#"{"keys": [{"kty": "RSA", "n": "#).into_response(),
        Mode::Html => (
            [("content-type", "text/html")],
            "<html><body><form action=/login>Sign in</form></body></html>",
        )
            .into_response(),
        Mode::WrongType => ([("content-type", "text/plain")], good.to_string()).into_response(),
        Mode::Huge | Mode::HugeChunked => {
            let body = HugeBody {
                left: TEN_MB,
                announce_length: state.mode() == Mode::Huge,
                state: state.clone(),
            };
            (json, Body::new(body)).into_response()
        }
        Mode::Error => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
        Mode::Redirect => (StatusCode::FOUND, [("location", "/good")]).into_response(),
    }
}

async fn jwks(State(s): State<Arc<FaultState>>) -> Response {
    let good = s.jwks.lock().unwrap().clone();
    answer(&s, good).await
}

async fn introspect(State(s): State<Arc<FaultState>>, body: String) -> Response {
    let token = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap_or_default()
        .to_owned();
    answer(&s, introspection_answer(&token)).await
}

/// The redirect target: would answer correctly, so following the redirect
/// would be visible (it must not be followed).
async fn good(State(s): State<Arc<FaultState>>, body: String) -> Response {
    s.redirect_target_hits.fetch_add(1, Ordering::SeqCst);
    let token = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap_or_default();
    let doc = if token.is_empty() {
        s.jwks.lock().unwrap().clone()
    } else {
        introspection_answer(token)
    };
    ([("content-type", "application/json")], doc.to_string()).into_response()
}

impl FaultServer {
    /// Serves on `addr` (a port from [`free_addr`]) or on a fresh port.
    async fn start_on(addr: Option<SocketAddr>, keys: Vec<Value>) -> Self {
        let state = Arc::new(FaultState {
            mode: AtomicU8::new(Mode::Ok as u8),
            delay_ms: AtomicU64::new(10_000),
            jwks: Mutex::new(json!({ "keys": keys })),
            hits: AtomicUsize::new(0),
            redirect_target_hits: AtomicUsize::new(0),
            huge_bytes_sent: AtomicUsize::new(0),
            huge_completed: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/jwks.json", get(jwks))
            .route("/introspect", post(introspect))
            .route("/good", get(good).post(good))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr.unwrap_or(free_addr()))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, state }
    }

    async fn start(keys: Vec<Value>) -> Self {
        Self::start_on(None, keys).await
    }

    fn set(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.base)
    }

    fn introspection_url(&self) -> String {
        format!("{}/introspect", self.base)
    }
}

// ───────────────────────── the protected app ─────────────────────────

/// A loopback app behind `layer`; its handler counts its calls.
struct Protected {
    url: String,
    inner_calls: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl Protected {
    async fn start<L>(layer: L) -> Self
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
    {
        let inner_calls = Arc::new(AtomicUsize::new(0));
        let calls = inner_calls.clone();
        let app = Router::new()
            .route(
                "/mcp",
                get(move |p: Principal| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    format!("inner:{}", p.name())
                }),
            )
            .route_layer(layer)
            .route_layer(resource().layer());
        Self {
            url: format!("http://{}/mcp", common::serve(app).await),
            inner_calls,
            client: reqwest::Client::new(),
        }
    }

    /// Sends one bearer token; returns the status, headers, body and time.
    async fn call(&self, token: &str) -> (StatusCode, HeaderMap, String, Duration) {
        let started = Instant::now();
        let res = self
            .client
            .get(&self.url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.text().await.unwrap();
        (status, headers, body, started.elapsed())
    }

    fn inner_calls(&self) -> usize {
        self.inner_calls.load(Ordering::SeqCst)
    }
}

/// 503 with `Retry-After` and the `temporarily_unavailable` body, fast.
fn assert_unavailable(
    (status, headers, body, took): &(StatusCode, HeaderMap, String, Duration),
    what: &str,
) {
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(
        headers.get("retry-after").is_some(),
        "{what}: Retry-After missing"
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{what}");
    assert!(
        *took < TIMEOUT + MARGIN,
        "{what}: refused after {took:?}, beyond the {TIMEOUT:?} timeout"
    );
}

/// 401 `invalid_token` with the bearer challenge, fast.
fn assert_invalid_token(
    (status, headers, body, took): &(StatusCode, HeaderMap, String, Duration),
    what: &str,
) {
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
    assert!(*took < TIMEOUT + MARGIN, "{what}: refused after {took:?}");
}

/// The faults a JWKS endpoint may show before any key was fetched, beyond
/// the HTTP 500 `tests/jwt_jwks.rs` already covers.
const JWKS_FAULTS: [Mode; 6] = [
    Mode::Slow,
    Mode::Garbage,
    Mode::Html,
    Mode::Huge,
    Mode::HugeChunked,
    Mode::Redirect,
];

fn jwks_validator(url: String) -> JwtValidator {
    JwtValidator::builder(&resource())
        .jwks_url(url)
        .jwks_fetch_timeout(TIMEOUT)
        .jwks_min_refetch_interval(Duration::from_millis(1))
        .no_token_cache()
        .build()
        .unwrap()
}

// ───────────────────────── JWKS ─────────────────────────

#[tokio::test]
async fn jwks_down_before_the_first_fetch_is_503_and_recovers_by_itself() {
    bounded(async {
        let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
        let addr = free_addr();
        let v = JwtValidator::builder(&resource())
            .jwks_url(format!("http://{addr}/jwks.json"))
            .jwks_fetch_timeout(TIMEOUT)
            .jwks_min_refetch_interval(Duration::from_millis(200))
            .build()
            .unwrap();
        let app = Protected::start(JwtLayer::new(v.clone())).await;
        let token = rsa1.sign(&claims("alice"));

        // Connection refused: 503 at once, and the inner service never runs.
        for _ in 0..3 {
            assert_unavailable(&app.call(&token).await, "connection refused");
        }
        assert_eq!(app.inner_calls(), 0);

        // The endpoint comes up: once the refetch interval has passed, the
        // next request fetches the keys by itself (no refresh_keys call).
        let server = FaultServer::start_on(Some(addr), vec![rsa1.jwk()]).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (status, _, body, _) = app.call(&token).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "inner:alice"));
        assert_eq!(app.inner_calls(), 1);
        assert_eq!(server.state.hits.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test]
async fn jwks_faults_before_the_first_fetch_are_503_within_the_timeout() {
    bounded(async {
        let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
        let server = FaultServer::start(vec![rsa1.jwk()]).await;
        for mode in JWKS_FAULTS {
            server.set(mode);
            // A fresh validator: no keys were ever fetched.
            let v = jwks_validator(server.jwks_url());
            let app = Arc::new(Protected::start(JwtLayer::new(v)).await);
            // Several at once: those waiting for the one fetch in flight
            // are bounded by the same timeout. (They used to start a fetch
            // each in turn once the 1 ms refetch interval had passed, so
            // the eighth waited eight timeouts.)
            let calls: Vec<_> = (0..8)
                .map(|i| {
                    let app = app.clone();
                    let token = rsa1.sign(&claims(&format!("user{i}")));
                    tokio::spawn(async move { app.call(&token).await })
                })
                .collect();
            for call in calls {
                assert_unavailable(&call.await.unwrap(), &format!("{mode:?}"));
            }
            assert_eq!(app.inner_calls(), 0, "{mode:?}: the inner service ran");
        }
        assert_eq!(
            server.state.redirect_target_hits.load(Ordering::SeqCst),
            0,
            "the redirect was followed"
        );
        // The 10 MB bodies were abandoned at the cap, not read to the end.
        assert!(
            !server.state.huge_completed.load(Ordering::SeqCst),
            "a 10 MB JWKS was read to its end ({} bytes sent)",
            server.state.huge_bytes_sent.load(Ordering::SeqCst)
        );

        // The keys served as text/plain: the content type carries no
        // authority over a configured URL; the body must still be a JWKS.
        server.set(Mode::WrongType);
        let app = Protected::start(JwtLayer::new(jwks_validator(server.jwks_url()))).await;
        let (status, ..) = app.call(&rsa1.sign(&claims("text"))).await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn jwks_faults_with_keys_known_keep_the_keys_and_refuse_unknown_ones_with_401() {
    bounded(async {
        let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
        let rsa2 = Signer::rsa("rsa2_private.pem", "rsa2");
        let mut forged = Signer::rsa("rsa2_private.pem", "rsa2");
        forged.kid = Some("rsa1".into()); // rsa1's kid, rsa2's signature
        let server = FaultServer::start(vec![rsa1.jwk()]).await;
        let v = jwks_validator(server.jwks_url());
        v.refresh_keys().await.unwrap();
        let app = Protected::start(JwtLayer::new(v)).await;

        let mut served = 0;
        for mode in [Mode::Error, Mode::Redirect, Mode::WrongType]
            .into_iter()
            .chain(JWKS_FAULTS)
        {
            server.set(mode);
            let what = format!("{mode:?}");
            // Known key: served from the last good keys.
            let (status, _, body, _) = app.call(&rsa1.sign(&claims("alice"))).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "inner:alice"));
            served += 1;
            // Unknown kid: one refetch (which fails), then 401, never 200.
            assert_invalid_token(&app.call(&rsa2.sign(&claims("bob"))).await, &what);
            // Known kid, wrong signature: 401 without any fetch.
            assert_invalid_token(&app.call(&forged.sign(&claims("eve"))).await, &what);
            assert_eq!(app.inner_calls(), served, "{what}");
        }

        // Recovery: the endpoint serves the new key; it is fetched on use.
        server.set(Mode::Ok);
        server.state.jwks.lock().unwrap()["keys"] = json!([rsa1.jwk(), rsa2.jwk()]);
        let (status, _, body, _) = app.call(&rsa2.sign(&claims("bob"))).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "inner:bob"));
    })
    .await;
}

/// A request dropped while it fetches the JWKS (its client went away) must
/// not leave the others without keys. It used to: the fetch was cancelled
/// with the request, yet counted as the attempt of the minimum refetch
/// interval (30 s by default), so every request in that interval was 503.
#[tokio::test]
async fn jwks_fetch_survives_the_cancellation_of_the_request_that_started_it() {
    bounded(async {
        let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
        let server = FaultServer::start(vec![rsa1.jwk()]).await;
        server.set(Mode::Slow);
        server.state.delay_ms.store(500, Ordering::SeqCst);
        let v = JwtValidator::builder(&resource())
            .jwks_url(server.jwks_url())
            .jwks_fetch_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let inner_calls = Arc::new(AtomicUsize::new(0));
        let calls = inner_calls.clone();
        let svc = ServiceBuilder::new()
            .layer(JwtLayer::new(v))
            .service(tower::service_fn(move |_req: Request<Body>| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(Response::new(Body::from("inner"))) }
            }));
        let request = |sub: &str| {
            Request::get("/mcp")
                .header(
                    "authorization",
                    format!("Bearer {}", rsa1.sign(&claims(sub))),
                )
                .body(Body::empty())
                .unwrap()
        };

        // The first request starts the (slow) fetch and is dropped.
        let first = tokio::time::timeout(
            Duration::from_millis(100),
            svc.clone().oneshot(request("gone")),
        )
        .await;
        assert!(first.is_err(), "the first request should still be waiting");
        assert_eq!(server.state.hits.load(Ordering::SeqCst), 1);

        // The fetch it started completes anyway, and the next request is
        // answered from it (within the default 30 s refetch interval, no
        // second fetch is allowed).
        let started = Instant::now();
        let res = svc.clone().oneshot(request("carol")).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "after {:?}",
            started.elapsed()
        );
        assert_eq!(inner_calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            server.state.hits.load(Ordering::SeqCst),
            1,
            "one fetch, shared"
        );
    })
    .await;
}

// ───────────────────────── introspection ─────────────────────────

fn introspector(url: String) -> Introspector {
    Introspector::builder(url, "mcp-rs", SecretString::from("client-secret-0123"))
        .timeout(TIMEOUT)
        .audience(AUD)
        .build()
        .unwrap()
}

#[tokio::test]
async fn introspection_faults_are_503_within_the_timeout_and_never_pass() {
    bounded(async {
        let server = FaultServer::start(vec![]).await;
        for mode in [
            Mode::Redirect,
            Mode::WrongType,
            Mode::Huge,
            Mode::HugeChunked,
            Mode::Slow,
        ] {
            server.set(mode);
            let app = Arc::new(
                Protected::start(IntrospectionLayer::new(introspector(
                    server.introspection_url(),
                )))
                .await,
            );
            // The same token from several requests at once (one call,
            // shared) and a few different ones.
            let calls: Vec<_> = (0..8)
                .map(|i| {
                    let app = app.clone();
                    let token = format!("good-user{}", i % 3);
                    tokio::spawn(async move { app.call(&token).await })
                })
                .collect();
            for call in calls {
                assert_unavailable(&call.await.unwrap(), &format!("{mode:?}"));
            }
            assert_eq!(app.inner_calls(), 0, "{mode:?}: the inner service ran");
        }
        assert_eq!(
            server.state.redirect_target_hits.load(Ordering::SeqCst),
            0,
            "the redirect was followed (with our client credentials)"
        );
        assert!(
            !server.state.huge_completed.load(Ordering::SeqCst),
            "a 10 MB introspection response was read to its end ({} bytes sent)",
            server.state.huge_bytes_sent.load(Ordering::SeqCst)
        );
    })
    .await;
}

#[tokio::test]
async fn introspection_recovers_when_the_endpoint_comes_back() {
    bounded(async {
        let addr = free_addr();
        let app = Protected::start(IntrospectionLayer::new(introspector(format!(
            "http://{addr}/introspect"
        ))))
        .await;
        assert_unavailable(&app.call("good-alice").await, "connection refused");

        let server = FaultServer::start_on(Some(addr), vec![]).await;
        server.set(Mode::Garbage);
        assert_unavailable(&app.call("good-alice").await, "garbage");
        server.set(Mode::Error);
        assert_unavailable(&app.call("good-alice").await, "500");
        assert_eq!(app.inner_calls(), 0);

        // Back to normal: failures were not cached, the token is accepted
        // at once and an inactive one is 401.
        server.set(Mode::Ok);
        let (status, _, body, _) = app.call("good-alice").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "inner:alice"));
        assert_invalid_token(&app.call("revoked-token").await, "inactive");
        assert_eq!(app.inner_calls(), 1);
    })
    .await;
}

/// The request leading a single-flight introspection call is dropped: the
/// requests waiting on the same token still get their answer.
#[tokio::test]
async fn introspection_waiters_survive_the_cancellation_of_the_leader() {
    bounded(async {
        let server = FaultServer::start(vec![]).await;
        server.set(Mode::Slow);
        server.state.delay_ms.store(400, Ordering::SeqCst);
        let i = Introspector::builder(
            server.introspection_url(),
            "mcp-rs",
            SecretString::from("client-secret-0123"),
        )
        .timeout(Duration::from_secs(5))
        .audience(AUD)
        .build()
        .unwrap();
        let svc = ServiceBuilder::new()
            .layer(IntrospectionLayer::new(i))
            .service(tower::service_fn(|req: Request<Body>| async move {
                let who = Principal::from_extensions(req.extensions())
                    .map(|p| p.name().to_owned())
                    .unwrap_or_default();
                Ok::<_, Infallible>(Response::new(Body::from(who)))
            }));
        let request = || {
            Request::get("/mcp")
                .header("authorization", "Bearer good-dana")
                .body(Body::empty())
                .unwrap()
        };
        let leader = tokio::spawn(svc.clone().oneshot(request()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let waiter = tokio::spawn(svc.clone().oneshot(request()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        let res = waiter.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "dana");
    })
    .await;
}

// ───────────────────────── the inner MCP service ─────────────────────────

const KEY: &str = "mcp_sk_faults-test-key-0123456789abcdef";
const ACCEPT: &str = "application/json, text/event-stream";

/// What the fault-injecting inner service saw.
#[derive(Default)]
struct InnerState {
    calls: AtomicUsize,
    finished: AtomicUsize,
    /// Calls whose future was dropped before it finished.
    dropped_unfinished: AtomicUsize,
}

/// Counts a call's future dropped before it finished.
struct DropGuard(Arc<InnerState>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        let counter = if self.1 {
            &self.0.finished
        } else {
            &self.0.dropped_unfinished
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

const INNER_500_BODY: &str = "the inner service exploded";

fn rpc_error_body(id: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id,
           "error": {"code": -32603, "message": "inner failure"}})
    .to_string()
}

/// The inner MCP service, by tool name: `slow` (3 s), `fail_500`,
/// `rpc_error`, anything else answers at once.
async fn inner_call(state: Arc<InnerState>, req: Request<Body>) -> Result<Response, Infallible> {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let mut guard = DropGuard(state, false);
    let who = Principal::from_extensions(req.extensions())
        .map(|p| p.name().to_owned())
        .unwrap_or_default();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let msg: Value = serde_json::from_slice(&body).unwrap();
    let id = msg["id"].clone();
    let ok = |text: String| {
        (
            [("content-type", "application/json")],
            json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}})
                .to_string(),
        )
            .into_response()
    };
    let res = match msg["params"]["name"].as_str().unwrap_or_default() {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ok(format!("slow:{who}"))
        }
        "fail_500" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-inner", "boom")],
            INNER_500_BODY,
        )
            .into_response(),
        "rpc_error" => {
            ([("content-type", "application/json")], rpc_error_body(&id)).into_response()
        }
        _ => ok(format!("ok:{who}")),
    };
    guard.1 = true;
    Ok(res)
}

type Stack = tower::util::BoxCloneSyncService<Request<Body>, Response, Infallible>;

/// The example server's stack (examples/mcp_server/main.rs, `protect`):
/// FailedAuthLayer → ApiKeyLayer (optional) → JwtLayer (optional, HS256)
/// → IntrospectionLayer (optional) → McpPolicyLayer → RateLimitLayer,
/// around the fault-injecting inner service.
fn full_stack(inner: Arc<InnerState>, introspection_url: String) -> Stack {
    let resource = resource();
    let keys = ApiKeys::new().with(ApiKey::new("ops", KEY));
    let jwt = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(common::HS_SECRET))
        .build()
        .unwrap();
    let policy = McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("admin_only", Rule::bearer().scopes(["admin:write"]))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(resource.layer())
        .layer(FailedAuthLayer::new())
        .layer(ApiKeyLayer::new(keys).optional())
        .layer(JwtLayer::new(jwt).optional().pass_opaque_tokens())
        .layer(IntrospectionLayer::new(introspector(introspection_url)).optional())
        .layer(McpPolicyLayer::new(policy))
        .layer(RateLimitLayer::per_principal(Quota::per_minute(1000)))
        .service(tower::service_fn(move |req| inner_call(inner.clone(), req)));
    Stack::new(svc)
}

struct McpApp {
    url: String,
    inner: Arc<InnerState>,
    stack: Stack,
    client: reqwest::Client,
    _introspection: FaultServer,
}

#[derive(Clone)]
enum Cred {
    None,
    Key(&'static str),
    Bearer(String),
}

fn tool_call(tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": tool, "arguments": {}}})
    .to_string()
}

impl McpApp {
    async fn start() -> Self {
        let introspection = FaultServer::start(vec![]).await;
        let inner = Arc::new(InnerState::default());
        let stack = full_stack(inner.clone(), introspection.introspection_url());
        let app = Router::new()
            .nest_service("/mcp", stack.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/mcp"),
            inner,
            stack,
            client: reqwest::Client::new(),
            _introspection: introspection,
        }
    }

    /// A `tools/call` of `tool` over HTTP: status, headers, body.
    async fn call(&self, cred: &Cred, tool: &str) -> (StatusCode, HeaderMap, String) {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .body(tool_call(tool));
        match cred {
            Cred::None => {}
            Cred::Key(k) => req = req.header("x-api-key", *k),
            Cred::Bearer(t) => req = req.bearer_auth(t),
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        (status, headers, res.text().await.unwrap())
    }

    /// The same, in process (no HTTP), so a test can drop the future.
    fn request(&self, tool: &str) -> Request<Body> {
        let mut req = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .header("x-api-key", KEY)
            .body(Body::from(tool_call(tool)))
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 9], 5000))));
        req
    }

    fn inner_calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }
}

fn jwt(sub: &str, scope: &str) -> String {
    let mut c = claims(sub);
    c["scope"] = json!(scope);
    Signer::hs(common::HS_SECRET, None).sign(&c)
}

#[tokio::test]
async fn inner_failures_pass_through_unchanged_and_refusals_never_become_them() {
    bounded(async {
        let app = McpApp::start().await;

        // Authorized: the inner service's answer, unchanged.
        let (status, headers, body) = app.call(&Cred::Key(KEY), "fail_500").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(headers["x-inner"], "boom");
        assert_eq!(body, INNER_500_BODY);
        let (status, _, body) = app
            .call(&Cred::Bearer(jwt("alice", "read:data")), "rpc_error")
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, rpc_error_body(&json!(7)));
        let (status, _, body) = app.call(&Cred::Bearer("good-bob".into()), "ok").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("ok:bob"), "{body}");
        assert_eq!(app.inner_calls(), 3);

        // Refused: the refusal, never the inner answer, and the inner
        // service never runs.
        let expired = {
            let mut c = claims("mallory");
            c["exp"] = json!(now() - 3600);
            Signer::hs(common::HS_SECRET, None).sign(&c)
        };
        let cases = [
            (Cred::None, "fail_500", StatusCode::UNAUTHORIZED),
            (
                Cred::Key("mcp_sk_wrong-key-0123456789abcdef"),
                "fail_500",
                StatusCode::UNAUTHORIZED,
            ),
            (Cred::Bearer(expired), "rpc_error", StatusCode::UNAUTHORIZED),
            (
                Cred::Bearer("not-active-token".into()),
                "fail_500",
                StatusCode::UNAUTHORIZED,
            ),
            (
                Cred::Bearer(jwt("carol", "read:data")),
                "admin_only",
                StatusCode::FORBIDDEN,
            ),
        ];
        for (cred, tool, expected) in cases {
            let (status, headers, body) = app.call(&cred, tool).await;
            assert_eq!(status, expected, "{tool}: {body}");
            assert!(headers.get("x-inner").is_none());
            assert!(!body.contains(INNER_500_BODY) && !body.contains("inner failure"));
            assert!(headers.get("www-authenticate").is_some(), "{tool}");
        }
        assert_eq!(
            app.inner_calls(),
            3,
            "a refused call reached the inner service"
        );

        // The inner service's own failures are not authentication failures:
        // many 500s from one address never get it throttled.
        for _ in 0..25 {
            let (status, ..) = app.call(&Cred::Key(KEY), "fail_500").await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        }
        let (status, ..) = app.call(&Cred::Key(KEY), "ok").await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_inner_call_holds_no_slot_or_lock() {
    bounded(async {
        let app = Arc::new(McpApp::start().await);
        let slow = {
            let app = app.clone();
            tokio::spawn(async move { app.call(&Cred::Key(KEY), "slow").await })
        };
        // Wait until the slow call is inside the inner service.
        while app.inner_calls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Another principal, and the same principal again, are served
        // while it sleeps.
        for cred in [
            Cred::Bearer(jwt("erin", "read:data")),
            Cred::Bearer("good-frank".into()),
            Cred::Key(KEY),
        ] {
            let started = Instant::now();
            let (status, _, body) = app.call(&cred, "ok").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "served after {:?}: it waited for the slow call",
                started.elapsed()
            );
        }
        assert!(!slow.is_finished(), "the slow call should still be running");
        let (status, _, body) = slow.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("slow:ops"), "{body}");
    })
    .await;
}

/// A body that never ends (a client that stalls mid-upload).
struct Stalled;

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

#[tokio::test]
async fn a_cancelled_call_leaves_nothing_stuck() {
    bounded(async {
        let app = McpApp::start().await;

        // Dropped while the inner service sleeps: the inner future is
        // dropped with it (not left running), and the next calls are served.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(200),
            app.stack.clone().oneshot(app.request("slow")),
        )
        .await;
        assert!(cancelled.is_err());
        assert_eq!(app.inner.dropped_unfinished.load(Ordering::SeqCst), 1);

        // Dropped while the policy layer reads a body that never ends.
        let mut stalled = app.request("ok");
        *stalled.body_mut() = Body::new(Stalled);
        let cancelled = tokio::time::timeout(
            Duration::from_millis(200),
            app.stack.clone().oneshot(stalled),
        )
        .await;
        assert!(cancelled.is_err());

        for _ in 0..3 {
            let res = tokio::time::timeout(
                Duration::from_secs(5),
                app.stack.clone().oneshot(app.request("ok")),
            )
            .await
            .expect("a call after the cancellations hangs")
            .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
        assert_eq!(app.inner.finished.load(Ordering::SeqCst), 3);
        assert_eq!(app.inner_calls(), 4);
        assert_eq!(app.inner.dropped_unfinished.load(Ordering::SeqCst), 1);

        // The same over HTTP: the client gives up on a slow call; the
        // server goes on serving.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(200),
            app.call(&Cred::Key(KEY), "slow"),
        )
        .await;
        assert!(gave_up.is_err());
        let (status, ..) = app.call(&Cred::Key(KEY), "ok").await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
}

// ───────────────────────── Redis that hangs ─────────────────────────

/// Redis stopped (`SIGSTOP`: it still accepts connections but never
/// answers), which `tests/rate_limit_redis.rs` (Redis killed and
/// restarted) does not cover: every check is bounded by the store's
/// timeout, the fail mode decides, and answers come back on `SIGCONT`.
#[cfg(feature = "redis")]
mod redis_hangs {
    use std::process::{Child, Command, Stdio};

    use tower_mcp_auth::{
        rate_limit::{FailMode, RedisStore},
        AuthScheme,
    };

    use super::*;

    struct Redis {
        child: Child,
        port: u16,
    }

    impl Redis {
        fn start() -> Option<Self> {
            let port = free_addr().port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(Self { child, port })
        }

        fn signal(&self, sig: &str) {
            let ok = Command::new("kill")
                .args([sig, &self.child.id().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "kill {sig}");
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill(); // SIGKILL also ends a stopped process
            let _ = self.child.wait();
        }
    }

    async fn call<S>(svc: &S, who: &str) -> (StatusCode, Option<String>, Duration)
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone,
    {
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::ApiKey, who));
        let started = Instant::now();
        let res = svc.clone().oneshot(req).await.unwrap();
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (res.status(), retry, started.elapsed())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_redis_costs_one_timeout_per_check_and_recovers() {
        bounded(async {
            let Some(redis) = Redis::start() else {
                eprintln!("NOTICE: redis-server not found; skipping the hung-Redis test");
                return;
            };
            let store = RedisStore::connect(&format!("redis://127.0.0.1:{}/", redis.port))
                .await
                .unwrap()
                .prefix(format!("hung-{}:", std::process::id()));
            let inner_calls = Arc::new(AtomicUsize::new(0));
            let make = |mode: FailMode| {
                let calls = inner_calls.clone();
                ServiceBuilder::new()
                    .layer(
                        RateLimitLayer::per_principal(Quota::per_hour(100))
                            .store(store.clone())
                            .fail_mode(mode),
                    )
                    .service(tower::service_fn(move |_req: Request<Body>| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, Infallible>(Response::new(Body::from("inner"))) }
                    }))
            };
            let (open, closed) = (make(FailMode::Open), make(FailMode::Closed));
            assert_eq!(call(&closed, "alice").await.0, StatusCode::OK);

            redis.signal("-STOP");
            // Several at once, both fail modes: each bounded by the 250 ms
            // store timeout.
            let tasks: Vec<_> = (0..10)
                .map(|i| {
                    let (open, closed) = (open.clone(), closed.clone());
                    tokio::spawn(async move {
                        if i % 2 == 0 {
                            (FailMode::Open, call(&open, "alice").await)
                        } else {
                            (FailMode::Closed, call(&closed, "alice").await)
                        }
                    })
                })
                .collect();
            let before = inner_calls.load(Ordering::SeqCst);
            for t in tasks {
                let (mode, (status, retry, took)) = t.await.unwrap();
                assert!(
                    took < Duration::from_millis(250) + MARGIN,
                    "{mode:?}: {took:?}"
                );
                match mode {
                    FailMode::Open => assert_eq!(status, StatusCode::OK),
                    _ => {
                        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                        assert_eq!(retry.as_deref(), Some("1"));
                    }
                }
            }
            assert_eq!(
                inner_calls.load(Ordering::SeqCst),
                before + 5,
                "only the fail-open calls ran"
            );

            // Redis answers again: the closed replica serves within seconds.
            redis.signal("-CONT");
            let deadline = Instant::now() + Duration::from_secs(10);
            while call(&closed, "bob").await.0 != StatusCode::OK {
                assert!(Instant::now() < deadline, "no recovery after SIGCONT");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    }
}
