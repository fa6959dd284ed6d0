//! Secret hygiene: no API key, token, secret or `Authorization` value ever
//! appears in any `tracing` output (all targets, TRACE level) nor in any
//! response (status line, headers, body), for a run of every refusal kind
//! the example server's full stack can give; `Debug` of every configuration
//! type redacts secrets; and the layers mark the credential header they
//! accepted as sensitive before passing the request on.

mod support;
use support::mcp_server;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{body::Body, routing::post, Router};
use base64::Engine;
use http::{Request, Response, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    introspection::{IntrospectionLayer, Introspector},
    jwt::{JwtKey, JwtLayer, JwtValidator},
    mcp::McpPolicyLayer,
    rate_limit::{failed_auth::FailedAuthLayer, Quota, RateLimitLayer},
    ProtectedResource, Rule,
};

const KEY: &str = "mcp_sk_hygiene-admin-key-0123456789abcdef";
const KEY_THROTTLED: &str = "mcp_sk_hygiene-busy-key-0123456789abcdef";
const WRONG_KEY: &str = "mcp_sk_hygiene-wrong-key-0123456789abcdef";
const JWT_SECRET: &str = "hygiene-jwt-secret-0123456789abcdef0123456789";
const OTHER_SECRET: &str = "hygiene-other-secret-0123456789abcdef012345";
const CLIENT_SECRET: &str = "hygiene-client-secret-0123456789";
const OPAQUE: &str = "opaque-hygiene-token-0123456789abcdef";
const REDIS_PASSWORD: &str = "hygiene-redis-password-0123456789";
const ACCEPT: &str = "application/json, text/event-stream";
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"hygiene","version":"1.0"}}}"#;

// ───────────────────────────── log capture ─────────────────────────────

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One process-wide subscriber at TRACE for every target (the server runs on
/// the test runtime's worker threads, so a thread-local default would miss
/// events).
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .init();
        capture
    })
}

fn logs() -> String {
    String::from_utf8_lossy(&capture().0.lock().unwrap()).into_owned()
}

// ───────────────────────────── tokens ─────────────────────────────

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(secret: &str, claims: &serde_json::Value) -> String {
    tower_mcp_auth::jwt::install_crypto_provider();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn b64(value: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

// ───────────────────────────── servers ─────────────────────────────

/// An RFC 7662 endpoint that reports every token inactive.
async fn introspection_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/introspect",
        post(|| async { axum::Json(json!({"active": false})) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/introspect")
}

/// An RFC 7662 endpoint that reports every token active, for the resource
/// `http://127.0.0.1:1/mcp`.
async fn active_introspection_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/introspect",
        post(|| async {
            axum::Json(
                json!({"active": true, "sub": "hygiene-user", "aud": "http://127.0.0.1:1/mcp"}),
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/introspect")
}

fn introspector(url: &str, audience: &str) -> Introspector {
    Introspector::builder(url, "hygiene-client", SecretString::from(CLIENT_SECRET))
        .audience(audience.to_owned())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn config(public_url: String, introspection_url: &str) -> mcp_server::Config {
    let keys = ApiKeys::new()
        .with(ApiKey::new("hygiene-admin", KEY))
        .with(ApiKey::new("hygiene-busy", KEY_THROTTLED));
    let mut config = mcp_server::Config::new(public_url.clone(), keys);
    config.stateless = true;
    config.auth.jwt_secret = Some(SecretString::from(JWT_SECRET));
    config.auth.introspector = Some(introspector(introspection_url, &public_url));
    config.auth.rate_limit_per_minute = 5;
    config
}

// ───────────────────────────── the run ─────────────────────────────

/// A refusal to provoke: its name, a query string, and headers.
type Failure = (&'static str, String, Vec<(&'static str, String)>);

struct Exchange {
    what: &'static str,
    /// The status line, every header and the body, as text.
    text: String,
    status: StatusCode,
}

struct Client {
    http: reqwest::Client,
    url: String,
    exchanges: Vec<Exchange>,
    /// Every credential value sent, to look for afterwards.
    sent: Vec<String>,
}

impl Client {
    async fn send(
        &mut self,
        what: &'static str,
        query: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> StatusCode {
        let mut req = self
            .http
            .post(format!("{}{query}", self.url))
            .header("content-type", "application/json")
            .header("accept", ACCEPT);
        for (name, value) in headers {
            req = req.header(*name, *value);
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("x-api-key")
            {
                self.sent.push((*value).to_owned());
                if let Some((_, token)) = value.split_once(' ') {
                    self.sent.push(token.to_owned());
                }
            }
        }
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status();
        let mut text = format!("{:?} {status}\n", resp.version());
        for (name, value) in resp.headers() {
            text.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        text.push_str(&resp.text().await.unwrap_or_default());
        self.exchanges.push(Exchange { what, text, status });
        status
    }
}

fn call(id: u32, tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_refusal_leaks_a_credential_into_logs_or_responses() {
    capture();
    let introspection_url = introspection_endpoint().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let public_url = format!("http://{addr}/mcp");
    let router = mcp_server::app(&config(public_url.clone(), &introspection_url))
        .await
        .unwrap();
    let app = router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let exp = now() + 3600;
    let good = |scope: &str| {
        hs256(
            JWT_SECRET,
            &json!({"sub": "hygiene-user", "aud": public_url, "exp": exp, "scope": scope}),
        )
    };
    let read_token = good("read:data");
    let expired = hs256(
        JWT_SECRET,
        &json!({"sub": "u", "aud": public_url, "exp": now() - 3600}),
    );
    let wrong_aud = hs256(
        JWT_SECRET,
        &json!({"sub": "u", "aud": "http://elsewhere.example/mcp", "exp": exp}),
    );
    let bad_signature = hs256(
        OTHER_SECRET,
        &json!({"sub": "u", "aud": public_url, "exp": exp}),
    );
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&json!({"sub": "admin", "aud": public_url, "exp": exp, "scope": "admin:write"}))
    );
    let oversized = format!("{}{}", "x".repeat(9 * 1024), read_token);

    let mut c = Client {
        http: reqwest::Client::new(),
        url: public_url.clone(),
        exchanges: Vec::new(),
        sent: vec![
            KEY.into(),
            KEY_THROTTLED.into(),
            WRONG_KEY.into(),
            JWT_SECRET.into(),
            OTHER_SECRET.into(),
            CLIENT_SECRET.into(),
            OPAQUE.into(),
        ],
    };
    let bearer = |t: &str| format!("Bearer {t}");

    // First the refusals the failed-auth counter ignores, and the accepted calls.
    assert_eq!(
        c.send("accepted key", "", &[("x-api-key", KEY)], INIT)
            .await,
        200
    );
    let auth = bearer(&read_token);
    assert_eq!(
        c.send("accepted jwt", "", &[("authorization", &auth)], INIT)
            .await,
        200
    );
    assert_eq!(
        c.send(
            "duplicate key",
            "",
            &[("x-api-key", KEY), ("x-api-key", KEY)],
            INIT
        )
        .await,
        400
    );
    assert_eq!(
        c.send(
            "key and bearer",
            "",
            &[("x-api-key", KEY), ("authorization", &auth)],
            INIT
        )
        .await,
        400
    );
    assert_eq!(
        c.send(
            "insufficient scope",
            "",
            &[("authorization", &auth)],
            call(2, "update_user_data")
        )
        .await,
        403
    );
    assert_eq!(
        c.send(
            "wrong scheme",
            "",
            &[("authorization", &auth)],
            call(3, "create_admin_user")
        )
        .await,
        403
    );
    assert_eq!(
        c.send(
            "malformed json-rpc",
            "",
            &[("x-api-key", KEY)],
            "{\"jsonrpc\": \"2.0\", "
        )
        .await,
        400
    );
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":4,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "a".repeat(5 * 1024 * 1024)
    );
    // In process: over TCP the server's early 413 races the client's write
    // of the rest of the body (broken pipe).
    let mut req = Request::post("/mcp")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("x-api-key", KEY)
        .body(Body::from(huge))
        .unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(SocketAddr::from((
            [127, 0, 0, 1],
            1,
        ))));
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let mut text = format!("{status}\n");
    for (name, value) in resp.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    text.push_str(&String::from_utf8_lossy(&body));
    assert_eq!(status, 413, "{text}");
    c.exchanges.push(Exchange {
        what: "body too large",
        text,
        status,
    });
    let mut throttled = false;
    for _ in 0..10 {
        if c.send("throttled", "", &[("x-api-key", KEY_THROTTLED)], INIT)
            .await
            == StatusCode::TOO_MANY_REQUESTS
        {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the per-principal quota of 5 never refused");

    // Then the credential failures (each counts towards the cool-down).
    let failures: Vec<Failure> = vec![
        ("missing credential", String::new(), vec![]),
        (
            "key in query string",
            format!("?api_key={KEY}&access_token={read_token}"),
            vec![],
        ),
        (
            "wrong key",
            String::new(),
            vec![("x-api-key", WRONG_KEY.to_owned())],
        ),
        // Requests without a credential are not counted (discovery): three
        // more failed credentials make the ten that start the cool-down.
        (
            "wrong key, again",
            String::new(),
            vec![("x-api-key", format!("{WRONG_KEY}-2"))],
        ),
        (
            "wrong key, a third time",
            String::new(),
            vec![("x-api-key", format!("{WRONG_KEY}-3"))],
        ),
        (
            "wrong key, a fourth time",
            String::new(),
            vec![("x-api-key", format!("{WRONG_KEY}-4"))],
        ),
        (
            "an Authorization scheme nobody accepts",
            String::new(),
            vec![("authorization", format!("Basic {WRONG_KEY}"))],
        ),
        (
            "bad signature",
            String::new(),
            vec![("authorization", bearer(&bad_signature))],
        ),
        (
            "expired",
            String::new(),
            vec![("authorization", bearer(&expired))],
        ),
        (
            "alg none",
            String::new(),
            vec![("authorization", bearer(&alg_none))],
        ),
        (
            "wrong aud",
            String::new(),
            vec![("authorization", bearer(&wrong_aud))],
        ),
        (
            "oversized token",
            String::new(),
            vec![("authorization", bearer(&oversized))],
        ),
        (
            "inactive opaque",
            String::new(),
            vec![("authorization", bearer(OPAQUE))],
        ),
    ];
    for (what, query, headers) in &failures {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let status = c
            .send(what, query, &headers, call(5, "protected_operation"))
            .await;
        assert_eq!(status, 401, "{what}");
    }
    // The address is now cooling down: even the good key is refused.
    assert_eq!(
        c.send("cool-down", "", &[("x-api-key", KEY)], INIT).await,
        429
    );

    let logs = logs();
    assert!(
        logs.contains("tower_mcp_auth::audit"),
        "the audit events were captured"
    );
    for secret in &c.sent {
        assert!(
            !logs.contains(secret.as_str()),
            "a credential ({} bytes) appears in the logs",
            secret.len()
        );
        for e in &c.exchanges {
            assert!(
                !e.text.contains(secret.as_str()),
                "a credential appears in the `{}` response ({}):\n{}",
                e.what,
                e.status,
                e.text
            );
        }
    }
    // The refusals said why, without echoing anything.
    let kinds: Vec<_> = c
        .exchanges
        .iter()
        .map(|e| (e.what, e.status.as_u16()))
        .collect();
    assert!(kinds.contains(&("cool-down", 429)), "{kinds:?}");
}

// ───────────────────────────── Debug ─────────────────────────────

fn assert_redacted(what: &str, debug: &str) {
    for secret in [
        KEY,
        KEY_THROTTLED,
        JWT_SECRET,
        CLIENT_SECRET,
        REDIS_PASSWORD,
    ] {
        assert!(
            !debug.contains(secret),
            "Debug of {what} shows a secret: {debug}"
        );
    }
    // Nor the key digests (they would allow offline guessing).
    for key in [KEY, KEY_THROTTLED] {
        let hex = ApiKeys::digest_hex(&SecretString::from(key));
        assert!(!debug.contains(&hex), "Debug of {what} shows a digest");
    }
}

#[tokio::test]
async fn debug_of_every_config_type_redacts_secrets() {
    let resource = ProtectedResource::builder("http://127.0.0.1:1/mcp")
        .build()
        .unwrap();
    let key = ApiKey::new("hygiene-admin", KEY);
    assert_redacted("ApiKey", &format!("{key:?}"));
    let keys = ApiKeys::new()
        .with(key)
        .with(ApiKey::new("hygiene-busy", KEY_THROTTLED));
    assert_redacted("ApiKeys", &format!("{keys:?}"));
    let api_layer = ApiKeyLayer::new(keys.clone()).optional();
    assert_redacted("ApiKeyLayer", &format!("{api_layer:?}"));

    let secret = SecretString::from(JWT_SECRET);
    let builder = JwtValidator::builder(&resource).hs256_secret(&secret);
    assert_redacted("JwtValidatorBuilder", &format!("{builder:?}"));
    let validator = builder.build().unwrap();
    assert_redacted("JwtValidator", &format!("{validator:?}"));
    let jwt_key = JwtKey::hmac(jsonwebtoken::Algorithm::HS256, &secret).unwrap();
    assert_redacted("JwtKey", &format!("{jwt_key:?}"));
    let jwt_layer = JwtLayer::new(validator).optional();
    assert_redacted("JwtLayer", &format!("{jwt_layer:?}"));

    let ib = Introspector::builder(
        "http://127.0.0.1:1/introspect",
        "hygiene-client",
        SecretString::from(CLIENT_SECRET),
    );
    assert_redacted("IntrospectorBuilder", &format!("{ib:?}"));
    let introspector = ib.build().unwrap();
    assert_redacted("Introspector", &format!("{introspector:?}"));
    let il = IntrospectionLayer::new(introspector.clone());
    assert_redacted("IntrospectionLayer", &format!("{il:?}"));

    let policy = mcp_server::policy().unwrap();
    assert_redacted("McpPolicy", &format!("{policy:?}"));
    let pl = McpPolicyLayer::new(policy);
    assert_redacted("McpPolicyLayer", &format!("{pl:?}"));
    let rl = RateLimitLayer::per_principal(Quota::per_minute(5));
    assert_redacted("RateLimitLayer", &format!("{rl:?}"));
    let fl = FailedAuthLayer::new();
    assert_redacted("FailedAuthLayer", &format!("{fl:?}"));
    assert_redacted("Rule", &format!("{:?}", Rule::api_key()));

    let mut config = mcp_server::Config::new("http://127.0.0.1:1/mcp", keys);
    config.auth.jwt_secret = Some(secret);
    config.auth.generated_key = Some(SecretString::from(KEY));
    config.auth.introspector = Some(introspector);
    config.auth.redis_url = Some(format!("redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"));
    assert_redacted("the example's Config", &format!("{config:?}"));
}

// ───────────────────────────── sensitive headers ─────────────────────────────

/// Answers 200 if every credential header the inner service sees is marked
/// sensitive, else 500 naming the one that is not.
async fn sensitive_check(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let mut seen = 0;
    for name in ["x-api-key", "authorization"] {
        for v in req.headers().get_all(name) {
            seen += 1;
            if !v.is_sensitive() {
                let mut resp = Response::new(Body::from(format!("{name} not sensitive")));
                *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return Ok(resp);
            }
        }
    }
    assert_eq!(seen, 1, "one credential header reached the inner service");
    Ok(Response::new(Body::empty()))
}

async fn check(
    svc: impl tower::Service<Request<Body>, Response = axum::response::Response, Error = Infallible>,
    header: (&str, &str),
) {
    let req = Request::post("/mcp")
        .header(header.0, header.1)
        .body(Body::empty())
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn accepted_credential_headers_are_marked_sensitive() {
    let resource = ProtectedResource::builder("http://127.0.0.1:1/mcp")
        .build()
        .unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("hygiene-admin", KEY));
    check(
        ServiceBuilder::new()
            .layer(ApiKeyLayer::new(keys.clone()))
            .service_fn(sensitive_check),
        ("x-api-key", KEY),
    )
    .await;
    let auth_api_key = format!("ApiKey {KEY}");
    check(
        ServiceBuilder::new()
            .layer(ApiKeyLayer::new(keys))
            .service_fn(sensitive_check),
        ("authorization", &auth_api_key),
    )
    .await;

    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(JWT_SECRET))
        .build()
        .unwrap();
    let token = hs256(
        JWT_SECRET,
        &json!({"sub": "u", "aud": resource.resource(), "exp": now() + 60}),
    );
    check(
        ServiceBuilder::new()
            .layer(JwtLayer::new(validator))
            .service_fn(sensitive_check),
        ("authorization", &format!("Bearer {token}")),
    )
    .await;

    let url = active_introspection_endpoint().await;
    check(
        ServiceBuilder::new()
            .layer(IntrospectionLayer::new(introspector(
                &url,
                resource.resource(),
            )))
            .service_fn(sensitive_check),
        ("authorization", &format!("Bearer {OPAQUE}")),
    )
    .await;
}
