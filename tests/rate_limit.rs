//! End to end over real HTTP on loopback: per-principal throttling behind
//! the API-key layer, and the failed-auth throttle stopping a guessing loop.
#![cfg(feature = "rate-limit")]

use std::{net::SocketAddr, time::Duration};

use axum::{routing::post, Router};
use governor::clock::FakeRelativeClock;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    rate_limit::{failed_auth::FailedAuthLayer, MemoryStore, Quota, RateLimitLayer},
    Principal,
};

const ALICE: &str = "mcp_sk_alice-0123456789abcdef0123";
const BOB: &str = "mcp_sk_bob-0123456789abcdef012345";

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn app(clock: FakeRelativeClock) -> Router {
    let keys = ApiKeys::new()
        .with(ApiKey::new("alice", ALICE))
        .with(ApiKey::new("bob", BOB));
    Router::new()
        .route(
            "/mcp",
            post(|p: Principal| async move { p.name().to_owned() }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(
                    FailedAuthLayer::with_clock(clock.clone())
                        .threshold(5, Duration::from_secs(60)),
                )
                .layer(ApiKeyLayer::new(keys))
                .layer(
                    RateLimitLayer::per_principal(Quota::per_minute(100))
                        .store(MemoryStore::with_clock(clock)),
                ),
        )
}

#[tokio::test]
async fn the_101st_call_in_a_minute_is_429_for_one_principal_only() {
    let clock = FakeRelativeClock::default();
    let addr = serve(app(clock.clone())).await;
    let url = format!("http://{addr}/mcp");
    let client = reqwest::Client::new();
    let call = |key: &'static str| client.post(&url).header("x-api-key", key).send();

    for i in 0..100 {
        let res = call(ALICE).await.unwrap();
        assert_eq!(res.status(), 200, "call {}", i + 1);
        assert_eq!(res.headers()["ratelimit-policy"], r#""default";q=100;w=60"#);
        assert_eq!(res.text().await.unwrap(), "alice");
    }
    let res = call(ALICE).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["ratelimit"], r#""default";r=0;t=60"#);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"error":"rate_limited","error_description":"rate limit exceeded","retry_after":1}"#
    );

    let res = call(BOB).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["ratelimit"], r#""default";r=99;t=1"#);

    // One refill interval later alice may make exactly one more call.
    clock.advance(Duration::from_millis(600));
    assert_eq!(call(ALICE).await.unwrap().status(), 200);
    assert_eq!(call(ALICE).await.unwrap().status(), 429);
}

#[tokio::test]
async fn failed_auth_throttle_stops_a_key_guessing_loop() {
    let clock = FakeRelativeClock::default();
    let addr = serve(app(clock)).await;
    let url = format!("http://{addr}/mcp");
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..20 {
        let guess = format!("mcp_sk_guess-{i:024}");
        let res = client
            .post(&url)
            .header("x-api-key", guess)
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses[..5], [401; 5]);
    assert_eq!(statuses[5..], [429; 15]);
    // The right key from the same address is refused too during the cool-down.
    let res = client
        .post(&url)
        .header("x-api-key", ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "300");
}
