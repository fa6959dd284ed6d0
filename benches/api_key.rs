//! API-key layer per request against a bare axum route and tower-http's
//! bearer check, all in one run.
//!
//! `cargo bench --bench api_key`

use std::hint::black_box;

use axum::{body::Body, routing::get, Router};
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use tower::ServiceExt;
#[allow(deprecated)]
use tower_http::validate_request::ValidateRequestHeaderLayer;
use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};

const KEY: &str = "mcp_sk_benchbenchbenchbenchbenchbenchbench12";

fn route() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn request(header: Option<(&str, &str)>) -> Request<Body> {
    let mut b = Request::get("/");
    if let Some((k, v)) = header {
        b = b.header(k, v);
    }
    b.body(Body::empty()).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("api_key");

    let bare = route();
    group.bench_function("bare_route", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                bare.clone()
                    .oneshot(request(Some(("x-api-key", KEY))))
                    .await
                    .unwrap(),
            )
        })
    });

    #[allow(deprecated)]
    let tower_http = route().layer(ValidateRequestHeaderLayer::bearer(KEY));
    let bearer = format!("Bearer {KEY}");
    group.bench_function("tower_http_bearer", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                tower_http
                    .clone()
                    .oneshot(request(Some(("authorization", &bearer))))
                    .await
                    .unwrap(),
            )
        })
    });

    for n in [1usize, 16] {
        let mut keys = ApiKeys::new();
        for i in 1..n {
            keys = keys.with(ApiKey::new(format!("other-{i}"), format!("{KEY}-{i}")));
        }
        keys = keys.with(ApiKey::new("svc", KEY).scopes(["read:data"]));
        let app = route().layer(ApiKeyLayer::new(keys));
        group.bench_function(format!("api_key_layer_{n}_keys"), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    app.clone()
                        .oneshot(request(Some(("x-api-key", KEY))))
                        .await
                        .unwrap(),
                )
            })
        });
    }

    let keys = ApiKeys::new().with(ApiKey::new("svc", KEY));
    group.bench_function("verify_only", |b| {
        b.iter(|| black_box(keys.verify(black_box(KEY))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
