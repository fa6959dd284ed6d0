//! Scale: what one request costs as the deployment grows (issue 18).
//!
//! * API-key verification with 1, 100, 10,000 and 100,000 keys in the set;
//! * the rule for a `resources/read` with 10, 100, 1,000 and 10,000 URI
//!   templates, the matching one listed last;
//! * a `tools/list` result of 100, 1,000 and 10,000 tools filtered for the
//!   caller, through `McpPolicyLayer`;
//! * live heap bytes per entry of the in-memory rate limiter, the
//!   failed-auth map, the verified-token (JWT) cache and the introspection
//!   cache, printed before the timings.
//!
//! Before timing, it checks that a key check and a rule lookup allocate
//! nothing. Each group ends with its ratios to its smallest case, measured in the
//! same run (median of criterion's samples).
//!
//! `cargo bench --all-features --bench scale -- --warm-up-time 1 --measurement-time 2`

#[path = "../tests/counting_alloc/mod.rs"]
mod counting_alloc;
use counting_alloc::{allocations, Counting};

use std::{
    collections::BTreeMap,
    convert::Infallible,
    hint::black_box,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use axum::{body::Body, extract::ConnectInfo, extract::Form, routing::post, Json, Router};
use criterion::{criterion_group, BenchmarkId, Criterion};
use http::Request;
use http_body_util::BodyExt;
use secrecy::SecretString;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    introspection::Introspector,
    jwt::{install_crypto_provider, JwtValidator},
    mcp::{McpCall, McpPolicy, McpPolicyLayer, Target},
    rate_limit::{failed_auth::FailedAuthLayer, MemoryStore, Quota, RateLimitKey},
    AuthScheme, Principal, ProtectedResource, Rule, Scopes,
};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Nanoseconds per call of each (group, size), one entry per round of
/// [`interleaved`].
static SAMPLES: Mutex<BTreeMap<(&'static str, usize), Vec<f64>>> = Mutex::new(BTreeMap::new());

/// The ratios' own measurement: `rounds` rounds, each timing a batch of
/// calls of every case in turn, so that a change in the machine's load (it
/// is shared) hits every case alike rather than whichever criterion was
/// measuring at the time. The ratio table uses the median round.
fn interleaved(group: &'static str, rounds: usize, cases: &mut [(usize, usize, &mut dyn FnMut())]) {
    for (_, batch, f) in cases.iter_mut() {
        for _ in 0..*batch {
            f(); // warm up
        }
    }
    let mut samples = SAMPLES.lock().unwrap();
    for _ in 0..rounds {
        for (n, batch, f) in cases.iter_mut() {
            let start = Instant::now();
            for _ in 0..*batch {
                f();
            }
            let ns = start.elapsed().as_nanos() as f64 / *batch as f64;
            samples.entry((group, *n)).or_default().push(ns);
        }
    }
}

fn api_key(i: usize) -> String {
    format!("mcp_sk_customer-{i:010}-0123456789abcdefghij")
}

fn key_set(n: usize) -> ApiKeys {
    (0..n)
        .map(|i| ApiKey::new(format!("customer-{i}"), api_key(i)).scopes(["read:data"]))
        .collect()
}

fn keys(c: &mut Criterion) {
    const SIZES: [usize; 4] = [1, 100, 10_000, 100_000];
    let sets: Vec<(ApiKeys, String)> = SIZES
        .iter()
        .map(|&n| (key_set(n), api_key(n - 1)))
        .collect();
    let invalid = "mcp_sk_made-up-key-0123456789abcdefghijklmno";
    for (set, valid) in &sets {
        let made = allocations(|| drop(black_box(set.verify(valid))));
        assert_eq!(made, 0, "a key check allocates nothing");
    }
    let mut g = c.benchmark_group("scale/api_key_verify");
    for (n, (set, valid)) in SIZES.iter().zip(&sets) {
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| black_box(set.verify(black_box(valid)).unwrap()))
        });
        g.bench_function(BenchmarkId::new("invalid", n), |b| {
            b.iter(|| assert!(set.verify(black_box(invalid)).is_none()))
        });
    }
    g.finish();
    if !wanted("scale/api_key_verify") {
        return;
    }
    let mut valid: Vec<_> = sets
        .iter()
        .map(|(set, key)| move || drop(black_box(set.verify(black_box(key)).unwrap())))
        .collect();
    let mut cases: Vec<(usize, usize, &mut dyn FnMut())> = SIZES
        .iter()
        .zip(valid.iter_mut())
        .map(|(&n, f)| (n, 5_000, f as &mut dyn FnMut()))
        .collect();
    interleaved("api_key_verify", 60, &mut cases);
    let mut invalid: Vec<_> = sets
        .iter()
        .map(|(set, _)| move || assert!(set.verify(black_box(invalid)).is_none()))
        .collect();
    let mut cases: Vec<(usize, usize, &mut dyn FnMut())> = SIZES
        .iter()
        .zip(invalid.iter_mut())
        .map(|(&n, f)| (n, 5_000, f as &mut dyn FnMut()))
        .collect();
    interleaved("api_key_verify_invalid", 60, &mut cases);
}

/// Whether the command line's filter (if any) selects `name`.
fn wanted(name: &str) -> bool {
    filter().is_none_or(|f| name.contains(&f))
}

/// The positional argument criterion takes as its filter: the first one
/// that is neither an option nor an option's value.
fn filter() -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--output-format",
        "--color",
        "--profile-time",
        "--plotting-backend",
        "--format",
        "--logfile",
        "--skip",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

/// `n` templates of two realistic shapes: a literal path per service
/// (`res://service-7/{id}`) and a literal field per template
/// (`user://{id}/field-7`), interleaved; and the URI that only the last one
/// listed matches.
fn templates(n: usize) -> (McpPolicy, String) {
    let mut b = McpPolicy::builder();
    let mut last = String::new();
    for i in 0..n {
        if i % 2 == 0 {
            b = b.resource(format!("res://service-{i}/{{id}}"), Rule::api_key());
            last = format!("res://service-{i}/42");
        } else {
            b = b.resource(format!("user://{{id}}/field-{i}"), Rule::bearer());
            last = format!("user://42/field-{i}");
        }
    }
    (b.build().unwrap(), last)
}

fn rules(c: &mut Criterion) {
    const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
    let cases: Vec<(McpPolicy, McpCall)> = SIZES
        .iter()
        .map(|&n| {
            let (policy, uri) = templates(n);
            (
                policy,
                McpCall::new("resources/read", Some(Target::Resource(uri))),
            )
        })
        .collect();
    for (policy, call) in &cases {
        let made = allocations(|| {
            black_box(policy.rule_for(Some(call)));
        });
        assert_eq!(made, 0, "deciding a URI allocates nothing");
    }
    let mut g = c.benchmark_group("scale/resource_rule");
    for (n, (policy, call)) in SIZES.iter().zip(&cases) {
        let default = policy.rule_for(None) as *const Rule;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let rule = policy.rule_for(Some(black_box(call)));
                assert!(!std::ptr::eq(rule, default), "a template matched");
            })
        });
    }
    g.finish();
    if !wanted("scale/resource_rule") {
        return;
    }
    let mut calls: Vec<_> = cases
        .iter()
        .map(|(policy, call)| {
            move || {
                black_box(policy.rule_for(Some(black_box(call))));
            }
        })
        .collect();
    let mut cases: Vec<(usize, usize, &mut dyn FnMut())> = SIZES
        .iter()
        .zip(calls.iter_mut())
        .map(|(&n, f)| (n, 5_000, f as &mut dyn FnMut()))
        .collect();
    interleaved("resource_rule", 60, &mut cases);
}

/// A `tools/list` result of `n` tools; a rule for every third one that the
/// caller does not meet, so the filter drops a third of the list.
fn tools_list(n: usize) -> (McpPolicy, bytes::Bytes) {
    let mut b = McpPolicy::builder().default(Rule::authenticated());
    let mut tools = Vec::with_capacity(n);
    for i in 0..n {
        if i % 3 == 0 {
            b = b.tool(format!("tool_{i}"), Rule::bearer().scopes(["admin"]));
        }
        tools.push(serde_json::json!({
            "name": format!("tool_{i}"),
            "description": "Does one thing to one record and says what it did.",
            "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}},
        }));
    }
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}});
    (
        b.build().unwrap(),
        serde_json::to_vec(&body).unwrap().into(),
    )
}

fn lists(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
        .build()
        .unwrap();
    let request = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let mut g = c.benchmark_group("scale/tools_list_filter");
    g.sample_size(20);
    let mut calls: Vec<(usize, Box<dyn FnMut() + '_>)> = Vec::new();
    for n in [100usize, 1_000, 10_000] {
        let (policy, listing) = tools_list(n);
        let svc = ServiceBuilder::new()
            .layer(resource.layer())
            .layer(McpPolicyLayer::new(policy))
            .service_fn(move |_req: Request<Body>| {
                let listing = listing.clone();
                async move {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/json")
                            .body(Body::from(listing))
                            .unwrap(),
                    )
                }
            });
        let call = move || {
            let mut req = Request::post("/mcp")
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(Body::from(&request[..]))
                .unwrap();
            req.extensions_mut().insert(
                Principal::new(AuthScheme::Jwt, "alice").with_scopes(Scopes::parse("read:data")),
            );
            let mut svc = svc.clone();
            async move {
                let res = ServiceExt::<Request<Body>>::ready(&mut svc)
                    .await
                    .unwrap()
                    .call(req)
                    .await
                    .unwrap();
                res.into_body().collect().await.unwrap().to_bytes()
            }
        };
        let kept = rt.block_on(call());
        let listed: serde_json::Value = serde_json::from_slice(&kept).unwrap();
        assert_eq!(
            listed["result"]["tools"].as_array().unwrap().len(),
            n - n.div_ceil(3),
            "the filter drops every third tool"
        );
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| black_box(rt.block_on(call())))
        });
        let rt = &rt;
        calls.push((n, Box::new(move || drop(black_box(rt.block_on(call()))))));
    }
    g.finish();
    if !wanted("scale/tools_list_filter") {
        return;
    }
    let mut cases: Vec<(usize, usize, &mut dyn FnMut())> = calls
        .iter_mut()
        .map(|(n, f)| (*n, (20_000 / *n).max(1), &mut **f as &mut dyn FnMut()))
        .collect();
    interleaved("tools_list_filter", 10, &mut cases);
}

/// Live bytes per entry after `n` insertions made by `insert`, measured
/// once the warm-up (`insert(0)`, allocating the structure itself) is done.
fn per_entry(n: usize, mut insert: impl FnMut(usize)) -> f64 {
    insert(usize::MAX);
    let before = counting_alloc::live();
    for i in 0..n {
        insert(i);
    }
    (counting_alloc::live() - before) as f64 / n as f64
}

fn memory() {
    let n = 100_000usize;
    let one = NonZeroU32::MIN;
    let q = Quota::per_minute(100);
    eprintln!("memory per entry (live heap bytes, {n} entries unless said):");

    // Rate limiter: principals with a 25-byte subject.
    let store = MemoryStore::new().max_keys(10 * n);
    // Counted: what stays after the request (the key holds the subject,
    // shared with the principal, which is gone).
    let bytes = per_entry(n, |i| {
        let p = Principal::new(AuthScheme::Jwt, format!("user-{i:08}@example.com"));
        store.check_now(&RateLimitKey::principal(&p), q, one);
    });
    eprintln!(
        "  rate limiter, per principal: {bytes:.0} B with its 25-byte subject, {:.0} B beyond it",
        bytes - 25.0
    );
    let store = MemoryStore::new().max_keys(10 * n);
    let bytes = per_entry(n, |i| {
        let ip = IpAddr::V4(Ipv4Addr::from(i as u32));
        store.check_now(&RateLimitKey::ip(ip), q, one);
    });
    eprintln!("  rate limiter, per client address: {bytes:.0} B");

    // Failed-auth map: one entry per client address that sent a bad key.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failed = FailedAuthLayer::new().max_keys(10 * n);
    let svc = ServiceBuilder::new()
        .layer(failed.clone())
        .layer(ApiKeyLayer::new(key_set(1)))
        .service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        });
    let bytes = per_entry(n, |i| {
        let ip = Ipv4Addr::from(0x0a00_0000_u32.wrapping_add(i as u32));
        let mut req = Request::get("/mcp")
            .header("x-api-key", "mcp_sk_made-up-key-0123456789abcdef")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
        let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
        assert_eq!(res.status(), 401);
    });
    eprintln!(
        "  failed-auth map, per client address ({} tracked): {bytes:.0} B",
        failed.tracked()
    );

    // Verified-token cache: n distinct HS256 tokens, each verified once.
    install_crypto_provider();
    let secret = "scale-bench-hs256-secret-0123456789abcdef";
    let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
        .build()
        .unwrap();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(secret))
        .token_cache(Duration::from_secs(3600), 10 * n as u64)
        .build()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt_n = 20_000;
    let tokens: Vec<String> = (0..=jwt_n)
        .map(|i| {
            let claims = serde_json::json!({"sub": format!("user-{i:08}@example.com"),
                "aud": "https://mcp.example.com/mcp", "exp": now + 3600, "scope": "read:data"});
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        })
        .collect();
    let bytes = per_entry(jwt_n, |i| {
        let token = tokens.get(i).unwrap_or(&tokens[jwt_n]);
        let p = rt.block_on(validator.verify(token)).unwrap();
        drop(p);
    });
    // The principal alone (scopes, subject, raw claims): what the cache
    // holds per entry besides its own bookkeeping.
    let uncached = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(secret))
        .no_token_cache()
        .build()
        .unwrap();
    let mut kept = Vec::with_capacity(jwt_n + 1);
    let principal = per_entry(jwt_n, |i| {
        let token = tokens.get(i).unwrap_or(&tokens[jwt_n]);
        kept.push(rt.block_on(uncached.verify(token)).unwrap());
    });
    eprintln!(
        "  verified-token (JWT) cache, per token ({jwt_n} tokens, 25-byte sub): {bytes:.0} B, \
         of which the principal with its raw claims {principal:.0} B"
    );
    drop(kept);

    // Introspection cache: n distinct opaque tokens from a local endpoint.
    let url = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/introspect",
            post(
                move |Form(form): Form<std::collections::HashMap<String, String>>| async move {
                    Json(serde_json::json!({
                        "active": true, "sub": form.get("token").cloned().unwrap_or_default(),
                        "scope": "read:data", "client_id": "bench", "exp": now + 3600,
                        "aud": "https://mcp.example.com/mcp",
                    }))
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/introspect")
    });
    let introspector = Introspector::builder(&url, "bench", SecretString::from("bench-secret"))
        .audience("https://mcp.example.com/mcp")
        .build()
        .unwrap();
    let intro_n = 5_000;
    let opaque: Vec<String> = (0..=intro_n).map(|i| format!("opaque-{i:018}")).collect();
    // Warm the HTTP client's connection pool first.
    rt.block_on(introspector.verify("warm-up-token-0000"))
        .unwrap();
    let bytes = per_entry(intro_n, |i| {
        let token = opaque.get(i).unwrap_or(&opaque[intro_n]);
        rt.block_on(introspector.verify(token)).unwrap();
    });
    eprintln!("  introspection cache, per token ({intro_n} tokens, 25-byte sub, claims kept): {bytes:.0} B");
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn report() {
    let mut samples = SAMPLES.lock().unwrap();
    let mut groups: BTreeMap<&str, Vec<(usize, f64)>> = BTreeMap::new();
    for ((group, n), s) in samples.iter_mut() {
        groups.entry(group).or_default().push((*n, median(s)));
    }
    eprintln!("\nratios to the smallest case (median of interleaved rounds, ns per call):");
    for (group, rows) in &groups {
        let (n0, base) = rows[0];
        for &(n, ns) in rows {
            let per = if *group == "tools_list_filter" {
                format!(
                    ", per tool {:.1} ns ({:.2}×)",
                    ns / n as f64,
                    (ns / n as f64) / (base / n0 as f64)
                )
            } else {
                String::new()
            };
            eprintln!(
                "  {group:<24} n = {n:>6}: {ns:>10.1} ns  {:.2}× n = {n0}{per}",
                ns / base
            );
        }
    }
    let ratio = |group: &str, n: usize, n0: usize| {
        let rows = groups.get(group)?;
        let at = |k| rows.iter().find(|r| r.0 == k).map(|r| r.1);
        at(n).zip(at(n0)).map(|(a, b)| a / b)
    };
    if let Some(r) = ratio("api_key_verify", 100_000, 1) {
        eprintln!("target: key verification at 100,000 keys ≤ 1.5× of 1 key: {r:.2}×");
    }
    if let Some(r) = ratio("resource_rule", 10_000, 10) {
        eprintln!("target: rule lookup at 10,000 templates ≤ 2× of 10: {r:.2}×");
    }
}

criterion_group!(benches, keys, rules, lists);

fn main() {
    // Building a large key set, and a large template policy, once.
    let start = Instant::now();
    let mut set = ApiKeys::new();
    for i in 0..100_000 {
        set = set.with(ApiKey::new(format!("customer-{i}"), api_key(i)));
    }
    eprintln!(
        "building 100,000 keys with ApiKeys::with: {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    drop(black_box(set));
    let start = Instant::now();
    drop(black_box(templates(10_000)));
    eprintln!(
        "building a policy of 10,000 templates: {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    if wanted("memory") {
        memory();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    report();
}
