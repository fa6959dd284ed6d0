//! Rate limiting: the in-memory check per request against a bare route and
//! tower_governor in the same run, the store's 2-thread throughput, memory
//! per tracked key, and the Redis round trip per check on loopback.
//!
//! `cargo bench --features full --bench rate_limit`

#[path = "../tests/counting_alloc/mod.rs"]
mod counting_alloc;
use counting_alloc::Counting;

use std::{
    convert::Infallible,
    hint::black_box,
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{body::Body, routing::get, Router};
use criterion::{criterion_group, Criterion, Throughput};
use http::Request;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    rate_limit::{MemoryStore, Quota, RateLimitKey, RateLimitLayer, RateLimitStore, RedisStore},
    AuthScheme, Principal,
};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn route() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn principals() -> Vec<Principal> {
    (0..1000)
        .map(|i| Principal::new(AuthScheme::ApiKey, format!("service-account-{i}")))
        .collect()
}

/// A quota no benchmark exhausts.
fn unlimited() -> Quota {
    Quota::per_hour(u32::MAX)
}

async fn call<S>(svc: &S, principal: &Principal)
where
    S: Service<Request<Body>, Error = Infallible> + Clone,
{
    let mut req = Request::get("/").body(Body::empty()).unwrap();
    req.extensions_mut().insert(principal.clone());
    black_box(svc.clone().oneshot(req).await.unwrap());
}

fn per_request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let who = principals();
    let mut g = c.benchmark_group("rate_limit/per_request");

    let bare = route().into_service::<Body>();
    let mut i = 0;
    g.bench_function("bare_route", |b| {
        b.to_async(&rt).iter(|| {
            i += 1;
            call(&bare, &who[i % who.len()])
        })
    });

    let ours = ServiceBuilder::new()
        .layer(RateLimitLayer::per_principal(unlimited()))
        .service(route().into_service::<Body>());
    g.bench_function("memory_store_per_principal", |b| {
        b.to_async(&rt).iter(|| {
            i += 1;
            call(&ours, &who[i % who.len()])
        })
    });

    let quiet = ServiceBuilder::new()
        .layer(RateLimitLayer::per_principal(unlimited()).headers_on_allowed(false))
        .service(route().into_service::<Body>());
    g.bench_function("memory_store_no_headers", |b| {
        b.to_async(&rt).iter(|| {
            i += 1;
            call(&quiet, &who[i % who.len()])
        })
    });

    let config = tower_governor::governor::GovernorConfigBuilder::default()
        .key_extractor(tower_governor::key_extractor::GlobalKeyExtractor)
        .per_nanosecond(1)
        .burst_size(u32::MAX)
        .finish()
        .unwrap();
    let theirs = ServiceBuilder::new()
        .layer(tower_governor::GovernorLayer::new(config))
        .service(route().into_service::<Body>());
    g.bench_function("tower_governor_global", |b| {
        b.to_async(&rt).iter(|| {
            i += 1;
            call(&theirs, &who[i % who.len()])
        })
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_limit/store");
    let keys: Vec<RateLimitKey> = principals().iter().map(RateLimitKey::principal).collect();
    let store = MemoryStore::new();
    let one = NonZeroU32::MIN;
    let mut i = 0;
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_1_thread", |b| {
        b.iter(|| {
            i += 1;
            black_box(store.check_now(&keys[i % keys.len()], unlimited(), one))
        })
    });
    g.throughput(Throughput::Elements(2));
    g.bench_function("check_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2 {
                    let (store, keys) = (&store, &keys);
                    s.spawn(move || {
                        for n in 0..iters as usize {
                            let k = &keys[(n * 2 + t) % keys.len()];
                            black_box(store.check_now(k, unlimited(), one));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.finish();
}

fn redis(c: &mut Criterion) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Ok(mut child) = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!("NOTICE: redis-server not found; skipping the Redis round-trip bench");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(RedisStore::connect(&format!("redis://127.0.0.1:{port}/")))
        .unwrap();
    let key = RateLimitKey::custom("bench");
    c.bench_function("rate_limit/redis_check_loopback", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                store
                    .check(&key, unlimited(), NonZeroU32::MIN)
                    .await
                    .unwrap(),
            )
        })
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// Live heap bytes per key the memory store tracks, after `n` distinct
/// anonymous addresses and `n` distinct principals.
fn memory_per_key() {
    let n = 100_000usize;
    let one = NonZeroU32::MIN;
    let store = MemoryStore::new().max_keys(10 * n);
    let q = Quota::per_minute(100);
    let warm = RateLimitKey::custom("warm-up");
    store.check_now(&warm, q, one);
    let before = counting_alloc::live();
    for i in 0..n {
        let key = RateLimitKey::ip(IpAddr::V4(Ipv4Addr::from(i as u32)));
        store.check_now(&key, q, one);
    }
    let ip = counting_alloc::live() - before;
    let keys: Vec<RateLimitKey> = (0..n)
        .map(|i| {
            RateLimitKey::principal(&Principal::new(
                AuthScheme::Jwt,
                format!("user-{i:08}@example.com"),
            ))
        })
        .collect();
    let before = counting_alloc::live();
    for key in &keys {
        store.check_now(key, q, one);
    }
    let principal = counting_alloc::live() - before;
    eprintln!(
        "memory per tracked key ({n} keys, {} held): client address {} B, principal (25-byte subject) {} B",
        store.len(),
        ip / n as isize,
        principal / n as isize
    );
    drop(keys);
    black_box(Arc::new(store));
}

criterion_group!(benches, per_request, store, redis);

fn main() {
    memory_per_key();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
