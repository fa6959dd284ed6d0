//! Introspection: a cache hit against the bare route in the same run, and
//! the number of introspection calls under 1,000 concurrent requests
//! carrying 10 distinct new tokens (single flight: 10).
//!
//! `cargo bench --bench introspection --features introspection`

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use axum::{body::Body, extract::Form, routing::post, Json, Router};
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use secrecy::SecretString;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    introspection::{IntrospectionLayer, Introspector},
    Principal,
};

static CALLS: AtomicUsize = AtomicUsize::new(0);

async fn introspect(Form(form): Form<HashMap<String, String>>) -> Json<serde_json::Value> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    // A little latency, as a real endpoint has, so concurrent requests overlap.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let sub = form.get("token").cloned().unwrap_or_default();
    Json(serde_json::json!({
        "active": true, "sub": sub, "scope": "read:data", "client_id": "bench",
        "aud": "https://mcp.example.com/mcp",
        "exp": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600,
    }))
}

async fn route(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let who = Principal::from_extensions(req.extensions()).map_or(0, |p| p.name().len());
    Ok(Response::new(Body::from(who.to_string())))
}

fn request(token: &str) -> Request<Body> {
    Request::post("/mcp")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/introspect", post(introspect));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/introspect")
    });
    let introspector = Introspector::builder(&url, "bench", SecretString::from("bench-secret"))
        .audience("https://mcp.example.com/mcp")
        .build()
        .unwrap();
    let bare = ServiceBuilder::new().service_fn(route);
    let guarded = ServiceBuilder::new()
        .layer(IntrospectionLayer::new(introspector.clone()))
        .service_fn(route);
    // Warm the cache.
    rt.block_on(async {
        let res = guarded.clone().oneshot(request("hot-token")).await.unwrap();
        assert_eq!(res.status(), 200);
    });

    let mut group = c.benchmark_group("introspection");
    group.bench_function("bare_route", |b| {
        b.to_async(&rt)
            .iter(|| async { bare.oneshot(request("hot-token")).await.unwrap() })
    });
    group.bench_function("verify_cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { introspector.verify("hot-token").await.unwrap() })
    });
    group.bench_function("cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let res = guarded.clone().oneshot(request("hot-token")).await.unwrap();
            debug_assert_eq!(res.status(), 200);
            res
        })
    });

    // The same comparison over real HTTP on loopback (axum::serve, one
    // keep-alive connection): what a client of the server sees.
    let (bare_url, guarded_url) = rt.block_on(async {
        let serve = |app: Router| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}/mcp")
        };
        let bare = serve(Router::new().route_service("/mcp", bare)).await;
        let guarded = serve(Router::new().route_service("/mcp", guarded.clone())).await;
        (bare, guarded)
    });
    let client = reqwest::Client::new();
    let http_call = |url: &str| {
        let req = client
            .post(url)
            .header("authorization", "Bearer hot-token")
            .send();
        async move {
            let res = req.await.unwrap();
            debug_assert_eq!(res.status(), 200);
            res.bytes().await.unwrap()
        }
    };
    group.bench_function("http_bare_route", |b| {
        b.to_async(&rt).iter(|| http_call(&bare_url))
    });
    group.bench_function("http_cache_hit", |b| {
        b.to_async(&rt).iter(|| http_call(&guarded_url))
    });

    // 1,000 concurrent requests, 10 distinct never-seen tokens per burst.
    static BURST: AtomicU64 = AtomicU64::new(0);
    group.sample_size(10);
    group.bench_function("burst_1000_requests_10_new_tokens", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let guarded = guarded.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let burst = BURST.fetch_add(1, Ordering::SeqCst);
                    let before = CALLS.load(Ordering::SeqCst);
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..1000)
                        .map(|i| {
                            let svc = guarded.clone();
                            tokio::spawn(async move {
                                svc.oneshot(request(&format!("burst{burst}-token{}", i % 10)))
                                    .await
                                    .unwrap()
                                    .status()
                            })
                        })
                        .collect();
                    for t in tasks {
                        assert_eq!(t.await.unwrap(), 200);
                    }
                    total += start.elapsed();
                    let calls = CALLS.load(Ordering::SeqCst) - before;
                    assert_eq!(calls, 10, "single flight: 10 distinct tokens, 10 calls");
                }
                total
            }
        })
    });
    group.finish();
    println!(
        "introspection calls in total: {} (1 warm-up + 10 per burst of 1,000 requests over {} bursts)",
        CALLS.load(Ordering::SeqCst),
        BURST.load(Ordering::SeqCst)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
