//! A policy file that is watched (issue 25, item 2), end to end through a
//! real server on loopback: the stack is the one-line pieces
//! (`SharedPolicy::watch_file`, `RateLimitLayer::from_policy`,
//! `ProtectedResourceBuilder::scopes_from`), and after the file is
//! rewritten the new per-principal and anonymous quotas, the new tool
//! costs, the new rules and the new scopes (metadata and challenges) are
//! in force; a file with a mistake changes nothing. The watcher runs on
//! Tokio's paused clock, and the test waits for its reloads with
//! `PolicyReloader::next_reload`, never for a wall-clock time. Reading the
//! policy at each request costs the limiter no allocation.

#[path = "counting_alloc/mod.rs"]
mod counting_alloc;
use counting_alloc::Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests of this binary one at a time, so that one's allocations are
/// not counted in the other's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use axum::{body::Body, Router};
use http::{header, Request, Response};
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt as _};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    mcp::{McpPolicy, McpPolicyLayer, McpRequest, PolicyReloader, SharedPolicy},
    rate_limit::{Quota, RateLimitLayer},
    AuthScheme, Principal, ProtectedResource,
};

const KEY: &str = "mcp_sk_reload-e2e-key-0123456789abcdef";

/// Calls by an API key: `report` (a key, costs 2), `ping` (anyone);
/// `audit` needs a bearer token with `read:audit`.
const BEFORE: &str = r#"{
  "tools": {
    "report": "api_key",
    "ping": "public",
    "audit": { "scheme": "bearer", "scopes": ["read:audit"] }
  },
  "rate_limit": { "per_minute": 3, "anonymous_per_minute": 2, "costs": { "report": 2 } }
}"#;

/// More calls a minute for both, `report` dearer, and a new tool whose
/// scope the metadata must now list.
const AFTER: &str = r#"{
  "tools": {
    "report": "api_key",
    "ping": "public",
    "audit": { "scheme": "bearer", "scopes": ["read:audit"] },
    "deploy": { "scheme": "bearer", "scopes": ["ops:deploy"] }
  },
  "rate_limit": { "per_minute": 10, "anonymous_per_minute": 5, "costs": { "report": 5 } }
}"#;

struct App {
    addr: SocketAddr,
    policy: SharedPolicy,
    reloader: PolicyReloader,
}

/// The stack on loopback, its policy read from `path` and watched.
async fn serve(path: PathBuf) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let policy = SharedPolicy::from_file(&path).unwrap();
    let reloader = policy.watch_file(&path, Duration::from_secs(2));
    let resource = ProtectedResource::builder(format!("http://{addr}/mcp"))
        .scopes_from(policy.clone())
        .build()
        .unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("ops", KEY));
    let mcp = ServiceBuilder::new()
        .layer(resource.layer())
        .layer(ApiKeyLayer::new(keys).optional())
        .layer(McpPolicyLayer::new(policy.clone()))
        .layer(RateLimitLayer::from_policy(&policy, Quota::per_minute(100)))
        .service_fn(|_: Request<Body>| async {
            let mut res = Response::new(Body::from(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            Ok::<_, std::convert::Infallible>(res)
        });
    let app = Router::new()
        .merge(resource.router())
        .nest_service("/mcp", mcp)
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        addr,
        policy,
        reloader,
    }
}

impl App {
    /// Calls `tool`, with the API key or anonymously: the status and the
    /// `RateLimit-Policy` and `WWW-Authenticate` fields.
    async fn call(&self, tool: &str, key: bool) -> (u16, String, String) {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": tool, "arguments": {}}});
        let mut req = reqwest::Client::new()
            .post(format!("http://{}/mcp", self.addr))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if key {
            req = req.header("x-api-key", KEY);
        }
        let res = req.send().await.unwrap();
        let field = |name: &str| {
            res.headers()
                .get(name)
                .map_or(String::new(), |v| v.to_str().unwrap().to_owned())
        };
        let (policy, challenge) = (field("ratelimit-policy"), field("www-authenticate"));
        (res.status().as_u16(), policy, challenge)
    }

    async fn scopes_supported(&self) -> Value {
        let doc: Value = reqwest::get(format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            self.addr
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        doc["scopes_supported"].clone()
    }
}

#[tokio::test(start_paused = true)]
async fn a_rewritten_policy_file_brings_its_quotas_costs_and_scopes_into_force() {
    let _serial = SERIAL.lock().await;
    let path = std::env::temp_dir().join(format!("tma-e2e-reload-{}.json", std::process::id()));
    std::fs::write(&path, BEFORE).unwrap();
    let mut app = serve(path.clone()).await;

    // Before: 3 a minute for the key, `report` costs 2; 2 for anonymous.
    let (status, policy, _) = app.call("report", true).await;
    assert_eq!((status, policy.as_str()), (200, r#""default";q=3;w=60"#));
    assert_eq!(
        app.call("report", true).await.0,
        429,
        "2 more than the 1 left"
    );
    assert_eq!(app.call("ping", true).await.0, 200);
    for want in [200, 200, 429] {
        let (status, policy, _) = app.call("ping", false).await;
        assert_eq!((status, policy.as_str()), (want, r#""default";q=2;w=60"#));
    }
    assert_eq!(app.scopes_supported().await, json!(["read:audit"]));
    let (status, _, challenge) = app.call("deploy", false).await;
    assert_eq!(status, 401, "no rule: the default, authenticated");
    assert!(!challenge.contains("ops:deploy"), "{challenge}");

    // The operator rewrites the file; the watcher swaps it in.
    std::fs::write(&path, AFTER).unwrap();
    assert!(app.reloader.next_reload().await.unwrap().is_ok());

    // 10 a minute for the key, `report` costs 5; 5 for anonymous.
    let (status, policy, _) = app.call("report", true).await;
    assert_eq!((status, policy.as_str()), (200, r#""default";q=10;w=60"#));
    assert_eq!(app.call("report", true).await.0, 200);
    assert_eq!(app.call("report", true).await.0, 429, "10 units spent");
    for want in [200, 200, 200, 200, 200, 429] {
        let (status, policy, _) = app.call("ping", false).await;
        assert_eq!((status, policy.as_str()), (want, r#""default";q=5;w=60"#));
    }
    // The new rule and its scope: in the metadata and in the challenge.
    assert_eq!(
        app.scopes_supported().await,
        json!(["ops:deploy", "read:audit"])
    );
    let (status, _, challenge) = app.call("deploy", true).await;
    assert_eq!(status, 403, "an API key on a bearer-only tool");
    let (status, _, challenge_anonymous) = app.call("deploy", false).await;
    assert_eq!(status, 401);
    assert!(
        challenge_anonymous.contains(r#"scope="ops:deploy""#),
        "{challenge_anonymous} / {challenge}"
    );

    // A mistake: reported, and the rules in force stay.
    std::fs::write(&path, AFTER.replace("\"api_key\"", "\"apikey\"")).unwrap();
    let err = app.reloader.next_reload().await.unwrap().unwrap_err();
    assert!(
        err.to_string()
            .contains(":3: tool `report`: unknown scheme `apikey`"),
        "{err}"
    );
    assert!(app
        .policy
        .current()
        .rate_limits()
        .per_minute
        .is_some_and(|n| n.get() == 10));
    // The key spent its 10 units: still refused under the same figure.
    let (status, policy, _) = app.call("ping", true).await;
    assert_eq!((status, policy.as_str()), (429, r#""default";q=10;w=60"#));
    assert_eq!(
        app.scopes_supported().await,
        json!(["ops:deploy", "read:audit"])
    );
    std::fs::remove_file(path).unwrap();
}

/// A limiter whose quota and costs are read from the policy at each
/// request allocates no more per request than one with a fixed quota and
/// cost (the policy's figure's `RateLimit-Policy` is made once). Without
/// that, 4 more a request.
#[test]
fn from_policy_allocates_no_more_per_request_than_a_fixed_quota() {
    let _serial = SERIAL.blocking_lock();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let call = McpRequest::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"report"}}"#,
    )
    .unwrap();
    let caller = Principal::new(AuthScheme::ApiKey, "ops");
    let per_request = |layer: RateLimitLayer| {
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_: Request<Body>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
            });
        let send = || {
            let mut req = Request::post("/mcp").body(Body::empty()).unwrap();
            req.extensions_mut().insert(caller.clone());
            req.extensions_mut().insert(call.clone());
            let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(
                res.headers()["ratelimit-policy"],
                r#""default";q=100000;w=60"#
            );
        };
        send(); // the caller's bucket, the header value: made once
                // The fewest of five rounds: what another thread allocates
                // meanwhile (a sweep, a runtime shutting down) only adds.
        (0..5)
            .map(|_| counting_alloc::allocations(|| (0..100).for_each(|_| send())))
            .min()
            .unwrap()
    };
    let fixed = per_request(
        RateLimitLayer::per_principal(Quota::per_minute(100_000))
            .cost(|_: &http::request::Parts| 2),
    );
    let policy = SharedPolicy::new(
        McpPolicy::from_json(r#"{"rate_limit":{"per_minute":100000,"costs":{"report":2}}}"#)
            .unwrap(),
    );
    let from_policy = per_request(RateLimitLayer::from_policy(&policy, Quota::per_minute(60)));
    assert!(
        from_policy <= fixed,
        "from_policy: {from_policy} allocations for 100 requests, a fixed quota: {fixed}"
    );
}
