//! Inspect + policy against a bare route, in the same run; and the cost
//! of a scope check with a scope hierarchy of 1,000 scopes against the
//! same check without one (`scope_check`).
//!
//! `cargo bench --bench mcp -- --warm-up-time 1 --measurement-time 3`
//! `cargo bench --bench mcp -- --warm-up-time 1 --measurement-time 3 scope_check`

use std::convert::Infallible;

use axum::body::Body;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::Request;
use http_body_util::BodyExt;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    mcp::{McpCall, Target},
    mcp::{McpPolicy, McpPolicyLayer, McpRequest},
    AuthScheme, Principal, ProtectedResource, Rule, ScopeHierarchy, Scopes,
};

/// A `tools/call` body of about `size` bytes (the arguments pad it out).
fn call_body(size: usize) -> bytes::Bytes {
    let mut items = Vec::new();
    let mut len = 0;
    let mut i = 0;
    while len + 120 < size {
        let item = format!(
            r#"{{"key":"field_{i}","value":"some text with \"escapes\" and numbers {i}","n":{i}}}"#
        );
        len += item.len() + 1;
        items.push(item);
        i += 1;
    }
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"get_user_data","arguments":{{"items":[{}]}}}}}}"#,
        items.join(",")
    );
    body.into()
}

fn policy() -> McpPolicy {
    McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
        .tool("update_user_data", Rule::bearer().scopes(["write:data"]))
        .tool("create_admin_user", Rule::api_key())
        .tool(
            "delete_user",
            Rule::api_key().or(Rule::bearer().scopes(["admin:write"])),
        )
        .resource(
            "user://{user_id}/private",
            Rule::bearer().scopes(["read:data"]),
        )
        .build()
        .unwrap()
}

/// The route behind both: reads the whole body, as an MCP server does.
async fn route(req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    Ok(http::Response::new(Body::from(body.len().to_string())))
}

fn request(body: &bytes::Bytes) -> Request<Body> {
    let mut req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body.clone()))
        .unwrap();
    req.extensions_mut()
        .insert(Principal::new(AuthScheme::Jwt, "alice").with_scopes(Scopes::parse("read:data")));
    req
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
        .build()
        .unwrap();
    // The resource layer above the policy, as in a real stack (it carries
    // the challenge the policy's refusals use).
    let layer = ServiceBuilder::new()
        .layer(resource.layer())
        .layer(McpPolicyLayer::new(policy()))
        .into_inner();

    let mut group = c.benchmark_group("mcp_1KiB_tools_call");
    let small = call_body(1024);
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("bare_route", |b| {
        let svc = ServiceBuilder::new().service_fn(route);
        b.to_async(&rt).iter(|| {
            let mut svc = svc;
            let req = request(&small);
            async move {
                ServiceExt::<Request<Body>>::ready(&mut svc)
                    .await
                    .unwrap()
                    .call(req)
                    .await
                    .unwrap()
            }
        })
    });
    group.bench_function("inspect_policy", |b| {
        let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(route);
        b.to_async(&rt).iter(|| {
            let mut svc = svc.clone();
            let req = request(&small);
            async move {
                let res = ServiceExt::<Request<Body>>::ready(&mut svc)
                    .await
                    .unwrap()
                    .call(req)
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                res
            }
        })
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| McpRequest::parse(&small).unwrap())
    });
    group.bench_function("parse_and_authorize", |b| {
        let policy = policy();
        let p = Principal::new(AuthScheme::Jwt, "alice").with_scopes(Scopes::parse("read:data"));
        b.iter(|| {
            let req = McpRequest::parse(&small).unwrap();
            policy.authorize(Some(&p), req.calls().first()).unwrap();
        })
    });
    group.finish();

    let mut group = c.benchmark_group("mcp_1MiB_tools_call");
    let big = call_body(1 << 20);
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.sample_size(20);
    group.bench_function("bare_route", |b| {
        let svc = ServiceBuilder::new().service_fn(route);
        b.to_async(&rt).iter(|| {
            let mut svc = svc;
            let req = request(&big);
            async move {
                ServiceExt::<Request<Body>>::ready(&mut svc)
                    .await
                    .unwrap()
                    .call(req)
                    .await
                    .unwrap()
            }
        })
    });
    group.bench_function("inspect_policy", |b| {
        let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(route);
        b.to_async(&rt).iter(|| {
            let mut svc = svc.clone();
            let req = request(&big);
            async move {
                ServiceExt::<Request<Body>>::ready(&mut svc)
                    .await
                    .unwrap()
                    .call(req)
                    .await
                    .unwrap()
            }
        })
    });
    group.bench_with_input(BenchmarkId::new("parse_only", "1MiB"), &big, |b, body| {
        b.iter(|| McpRequest::parse(body).unwrap())
    });
    group.finish();
}

/// The same comparison over real HTTP on loopback (hyper server, reqwest
/// client): what a deployment sees.
fn bench_http(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
        .build()
        .unwrap();
    // The resource layer above the policy, as in a real stack (it carries
    // the challenge the policy's refusals use).
    let layer = ServiceBuilder::new()
        .layer(resource.layer())
        .layer(McpPolicyLayer::new(policy()))
        .into_inner();
    let principal = |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
        req.extensions_mut().insert(
            Principal::new(AuthScheme::Jwt, "alice").with_scopes(Scopes::parse("read:data")),
        );
        next.run(req).await
    };
    let (bare, guarded, reader) = rt.block_on(async {
        let serve = |app: axum::Router| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}/mcp")
        };
        let bare = serve(
            axum::Router::new().route_service(
                "/mcp",
                ServiceBuilder::new()
                    .layer(axum::middleware::from_fn(principal))
                    .service_fn(route),
            ),
        )
        .await;
        let guarded = serve(
            axum::Router::new().route_service(
                "/mcp",
                ServiceBuilder::new()
                    .layer(axum::middleware::from_fn(principal))
                    .layer(layer)
                    .service_fn(route),
            ),
        )
        .await;
        let reader = serve(
            axum::Router::new().route_service(
                "/mcp",
                ServiceBuilder::new()
                    .layer(axum::middleware::from_fn(principal))
                    .layer(axum::middleware::from_fn(
                        |req: axum::extract::Request, next: axum::middleware::Next| async move {
                            let (parts, body) = req.into_parts();
                            let bytes = body.collect().await.unwrap().to_bytes();
                            next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
                                .await
                        },
                    ))
                    .service_fn(route),
            ),
        )
        .await;
        (bare, guarded, reader)
    });
    let client = reqwest::Client::new();
    let small = call_body(1024);
    let mut group = c.benchmark_group("mcp_http_1KiB_tools_call");
    for (name, url) in [
        ("bare_route", bare),
        ("inspect_policy", guarded),
        ("read_only", reader),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let req = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(small.clone());
                async move {
                    let res = req.send().await.unwrap();
                    assert_eq!(res.status(), 200);
                    res.bytes().await.unwrap()
                }
            })
        });
    }
    group.finish();
}

/// A hierarchy of 1,000 scopes: 10 areas, each `area{i}:admin` implying
/// its 99 `area{i}:op{j}`.
fn wide_hierarchy() -> ScopeHierarchy {
    (0..10)
        .fold(ScopeHierarchy::builder(), |b, i| {
            b.implies(
                format!("area{i}:admin"),
                (0..99).map(|j| format!("area{i}:op{j}")),
            )
        })
        .build()
        .unwrap()
}

/// A hierarchy of 1,000 scopes in one chain (`c0` → `c1` → … → `c999`):
/// the worst shape, the leaf implied by 999 broader scopes.
fn chain_hierarchy() -> ScopeHierarchy {
    (0..999)
        .fold(ScopeHierarchy::builder(), |b, i| {
            b.implies(format!("c{i}"), [format!("c{}", i + 1)])
        })
        .build()
        .unwrap()
}

/// One scope check (a rule's decision, and an MCP policy's decision of a
/// `tools/call`) without a hierarchy, and with one of 1,000 scopes: the
/// token holding the required scope itself, or only a broader one.
fn bench_scope_check(c: &mut Criterion) {
    let jwt =
        |scopes: &str| Principal::new(AuthScheme::Jwt, "alice").with_scopes(Scopes::parse(scopes));
    let call = McpCall::new("tools/call", Some(Target::Tool("deploy".into())));
    let cases = [
        // (name, hierarchy, required, granted)
        (
            "none/narrow_held",
            ScopeHierarchy::empty(),
            "area7:op42",
            "area7:op42 openid profile",
        ),
        (
            "wide_1000/narrow_held",
            wide_hierarchy(),
            "area7:op42",
            "area7:op42 openid profile",
        ),
        (
            "wide_1000/broad_held",
            wide_hierarchy(),
            "area7:op42",
            "area7:admin openid profile",
        ),
        (
            "none/chain_leaf_held",
            ScopeHierarchy::empty(),
            "c999",
            "c999 openid profile",
        ),
        (
            "chain_1000/leaf_held",
            chain_hierarchy(),
            "c999",
            "c999 openid profile",
        ),
        (
            "chain_1000/root_held",
            chain_hierarchy(),
            "c999",
            "c0 openid profile",
        ),
    ];
    let mut group = c.benchmark_group("scope_check");
    let mut interleaved: Vec<Case> = Vec::new();
    for (name, hierarchy, required, granted) in cases {
        let rule = Rule::bearer()
            .scopes([required])
            .scope_hierarchy(hierarchy.clone());
        let p = jwt(granted);
        assert!(rule.permits(Some(&p)), "{name}");
        group.bench_function(BenchmarkId::new("rule", name), |b| {
            b.iter(|| rule.permits(Some(std::hint::black_box(&p))))
        });
        let policy = McpPolicy::builder()
            .scope_hierarchy(hierarchy)
            .tool("deploy", Rule::bearer().scopes([required]))
            .build()
            .unwrap();
        group.bench_function(BenchmarkId::new("policy", name), |b| {
            b.iter(|| {
                policy
                    .authorize(Some(std::hint::black_box(&p)), Some(&call))
                    .unwrap()
            })
        });
        let (rule_p, policy_p, call) = (p.clone(), p, call.clone());
        interleaved.push((
            name,
            Box::new(move || rule.permits(Some(std::hint::black_box(&rule_p)))),
        ));
        interleaved.push((
            name,
            Box::new(move || {
                policy
                    .authorize(Some(std::hint::black_box(&policy_p)), Some(&call))
                    .is_ok()
            }),
        ));
    }
    group.finish();
    scope_check_ratios(&interleaved);
}

/// A named check, for [`scope_check_ratios`].
type Case = (&'static str, Box<dyn Fn() -> bool>);

/// The ratios of `scope_check`, measured interleaved (60 rounds, each
/// timing a batch of every case in turn) so that the shared machine's
/// load hits every case alike; each case against its baseline without a
/// hierarchy, by the median round.
fn scope_check_ratios(cases: &[Case]) {
    const ROUNDS: usize = 60;
    const BATCH: u32 = 20_000;
    let mut samples = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for _ in 0..ROUNDS {
        for ((_, f), s) in cases.iter().zip(&mut samples) {
            let start = std::time::Instant::now();
            for _ in 0..BATCH {
                assert!(f());
            }
            s.push(start.elapsed().as_nanos() as f64 / f64::from(BATCH));
        }
    }
    let median = |s: &mut Vec<f64>| {
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let medians: Vec<f64> = samples.iter_mut().map(median).collect();
    eprintln!(
        "\nscope_check, interleaved (median ns per check; × the same check without a hierarchy):"
    );
    // Cases come in (rule, policy) pairs; `none/…` rows are the baselines
    // of the rows after them.
    let mut base = (1.0, 1.0);
    for (i, pair) in cases.chunks(2).enumerate() {
        let (r, p) = (medians[2 * i], medians[2 * i + 1]);
        let name = pair[0].0;
        if name.starts_with("none/") {
            base = (r, p);
        }
        eprintln!(
            "  {name:<24} rule {r:>7.1} ns {:>5.2}×   policy {p:>7.1} ns {:>5.2}×",
            r / base.0,
            p / base.1
        );
    }
}

criterion_group!(benches, bench, bench_http, bench_scope_check);
criterion_main!(benches);
