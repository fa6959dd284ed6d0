//! A stack assembled in an order that silently weakens it is named in the
//! log, once, with the fix (issue 25 item 1). The warnings are once per
//! process, so this binary holds one test that checks all three in turn.

use std::sync::{Arc, Mutex};

use axum::{body::Body, extract::ConnectInfo, routing::post, Router};
use http::{Request, StatusCode};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    mcp::{McpPolicy, McpPolicyLayer},
    rate_limit::{Quota, RateLimitLayer},
    Rule,
};

const KEY: &str = "mcp_sk_stack_order_0123456789";

/// Everything logged, as text.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

fn keys() -> ApiKeys {
    ApiKeys::new().with(ApiKey::new("ops", KEY))
}

fn call() -> Request<Body> {
    Request::post("/")
        .header("content-type", "application/json")
        .header("x-api-key", KEY)
        .body(Body::from(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{}}}"#,
        ))
        .unwrap()
}

fn with_peer(mut req: Request<Body>) -> Request<Body> {
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    req
}

fn mcp() -> Router {
    Router::new().route(
        "/",
        post(|| async { r#"{"jsonrpc":"2.0","id":1,"result":{}}"# }),
    )
}

#[tokio::test]
async fn each_misplaced_layer_says_so_once_naming_the_fix() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    // The policy above the authenticator: a valid key gets 401, and the
    // log says why.
    let policy = McpPolicy::builder()
        .default(Rule::authenticated())
        .build()
        .unwrap();
    let wrong = ServiceBuilder::new()
        .layer(McpPolicyLayer::new(policy.clone()))
        .layer(ApiKeyLayer::new(keys()).optional())
        .service(mcp());
    let res = wrong.clone().oneshot(with_peer(call())).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let text = log.take();
    assert!(
        text.contains("McpPolicyLayer saw a request with a credential (x-api-key)"),
        "{text}"
    );
    assert!(text.contains("stack::McpAuth"), "{text}");
    // Once.
    wrong.oneshot(with_peer(call())).await.unwrap();
    assert!(!log.take().contains("McpPolicyLayer saw"));

    // The right order says nothing, with a credential or without one.
    let right = ServiceBuilder::new()
        .layer(ApiKeyLayer::new(keys()).optional())
        .layer(McpPolicyLayer::new(policy))
        .layer(RateLimitLayer::per_principal(Quota::per_minute(100)))
        .service(mcp());
    let res = right.clone().oneshot(with_peer(call())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut anonymous = with_peer(call());
    anonymous.headers_mut().remove("x-api-key");
    right.oneshot(anonymous).await.unwrap();
    let text = log.take();
    assert!(!text.contains("misorder"), "{text}");

    // The limiter above the authenticator: counted per address, said so.
    let wrong = ServiceBuilder::new()
        .layer(RateLimitLayer::per_principal(Quota::per_minute(100)))
        .layer(ApiKeyLayer::new(keys()).optional())
        .service(mcp());
    let res = wrong.oneshot(with_peer(call())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = log.take();
    assert!(
        text.contains("RateLimitLayer saw a request with a credential (x-api-key)"),
        "{text}"
    );
    assert!(
        text.contains("per address") || text.contains("client address"),
        "{text}"
    );

    // No ConnectInfo: anonymous callers share one bucket, said so.
    let limiter = ServiceBuilder::new()
        .layer(RateLimitLayer::per_principal(Quota::per_minute(100)))
        .service(mcp());
    let mut anonymous = call();
    anonymous.headers_mut().remove("x-api-key");
    limiter.oneshot(anonymous).await.unwrap();
    let text = log.take();
    assert!(text.contains("found no client address"), "{text}");
    assert!(
        text.contains("into_make_service_with_connect_info"),
        "{text}"
    );
}
