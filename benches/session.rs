//! `SessionBindingLayer` per request against the bare route, in one run: a
//! 1 KiB `tools/call` with a [`Principal`] already on it (the layer comes
//! after authentication), to a service that reads the whole body.
//!
//! | variant | what |
//! | --- | --- |
//! | `bare_route` | the route alone, no session id |
//! | `bare_route_session_id` | the route alone, a session id header |
//! | `binding_no_session` | stateless mode: no session id, nothing to do |
//! | `binding_initialize` | the response carries a new session id: one MAC to seal it |
//! | `binding_owner` | the owner's sealed id: one MAC to open it |
//! | `binding_foreign` | another principal's id: refused (404) before the route |
//!
//! After the measurements it prints each median over its baseline's median
//! (same request to the bare route), from criterion's estimates of this run.
//!
//! `cargo bench --bench session -- --warm-up-time 1 --measurement-time 3`

use std::{
    convert::Infallible,
    hint::black_box,
    path::{Path, PathBuf},
    time::SystemTime,
};

use axum::body::Body;
use criterion::{Criterion, Throughput};
use http::{HeaderValue, Request};
use http_body_util::BodyExt;
use tower::{util::BoxCloneSyncService, ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    mcp::session::{SessionBindingLayer, SESSION_ID},
    AuthScheme, Principal,
};

const GROUP: &str = "session_binding_1KiB_tools_call";
const BARE_ID: &str = "0f8e2b8c-6a57-4d0e-9a51-3c2f4b7d9e10";

/// A `tools/call` padded to about `size` bytes.
fn call_body(size: usize) -> bytes::Bytes {
    let pad = "x".repeat(size.saturating_sub(120));
    format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"protected_operation","arguments":{{"param":"{pad}"}}}}}}"#
    )
    .into()
}

fn principal(subject: &str) -> Principal {
    let claims = serde_json::json!({"iss": "https://auth.example.com", "sub": subject});
    Principal::new(AuthScheme::Jwt, subject).with_claims(claims.as_object().unwrap().clone())
}

/// Reads the whole body; with `new_session`, answers with a session id as
/// rmcp answers `initialize`.
async fn route(req: Request<Body>, new_session: bool) -> Result<http::Response<Body>, Infallible> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut res = http::Response::new(Body::from(body.len().to_string()));
    if new_session {
        res.headers_mut()
            .insert(SESSION_ID, HeaderValue::from_static(BARE_ID));
    }
    Ok(res)
}

type Svc = BoxCloneSyncService<Request<Body>, http::Response<Body>, Infallible>;

fn bare() -> Svc {
    BoxCloneSyncService::new(tower::service_fn(|req| route(req, false)))
}

fn bound(layer: &SessionBindingLayer, new_session: bool) -> Svc {
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(layer.clone())
            .service_fn(move |req| route(req, new_session)),
    )
}

fn request(body: &bytes::Bytes, who: &Principal, session: Option<&HeaderValue>) -> Request<Body> {
    let mut req = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("content-length", body.len())
        .body(Body::from(body.clone()))
        .unwrap();
    if let Some(id) = session {
        req.headers_mut().insert(SESSION_ID, id.clone());
    }
    req.extensions_mut().insert(who.clone());
    req
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let body = call_body(1024);
    let layer = SessionBindingLayer::new();
    let owner = principal("bench-user");
    let intruder = principal("someone-else");
    let bare_id = HeaderValue::from_static(BARE_ID);
    // The sealed id the owner was given when it opened the session.
    let sealed = rt
        .block_on(bound(&layer, true).oneshot(request(&body, &owner, None)))
        .unwrap()
        .headers()[SESSION_ID]
        .clone();

    let variants: [(&str, Svc, &Principal, Option<&HeaderValue>, u16); 6] = [
        ("bare_route", bare(), &owner, None, 200),
        ("bare_route_session_id", bare(), &owner, Some(&bare_id), 200),
        (
            "binding_no_session",
            bound(&layer, false),
            &owner,
            None,
            200,
        ),
        ("binding_initialize", bound(&layer, true), &owner, None, 200),
        (
            "binding_owner",
            bound(&layer, false),
            &owner,
            Some(&sealed),
            200,
        ),
        (
            "binding_foreign",
            bound(&layer, false),
            &intruder,
            Some(&sealed),
            404,
        ),
    ];

    let mut group = c.benchmark_group(GROUP);
    group.throughput(Throughput::Bytes(body.len() as u64));
    for (name, svc, who, session, status) in variants {
        let res = rt
            .block_on(svc.clone().oneshot(request(&body, who, session)))
            .unwrap();
        assert_eq!(res.status(), status, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let req = request(&body, who, session);
                let svc = svc.clone();
                async move { black_box(svc.oneshot(req).await.unwrap()) }
            })
        });
    }
    group.finish();
}

/// Criterion's median estimate (ns) of `bench` in this run, if measured.
fn median(dir: &Path, bench: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(bench).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// The bare route called with the same request.
fn baseline_of(variant: &str) -> &'static str {
    match variant {
        "binding_owner" | "binding_foreign" | "bare_route_session_id" => "bare_route_session_id",
        _ => "bare_route",
    }
}

fn print_ratios(started: SystemTime) {
    let root = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("criterion"))
        })
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/criterion"));
    let dir = root.join(GROUP);
    let fresh = |b: &str| {
        std::fs::metadata(dir.join(b).join("new/estimates.json"))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= started)
    };
    println!(
        "\n{GROUP}: median per request, ratio to the bare route with the same request (same run)\n"
    );
    println!("| variant | median | baseline | × baseline |");
    println!("| --- | ---: | --- | ---: |");
    for b in [
        "bare_route",
        "bare_route_session_id",
        "binding_no_session",
        "binding_initialize",
        "binding_owner",
        "binding_foreign",
    ] {
        let baseline = baseline_of(b);
        let base = fresh(baseline).then(|| median(&dir, baseline)).flatten();
        if let (true, Some(m), Some(base)) = (fresh(b), median(&dir, b), base) {
            println!(
                "| {b} | {:.3} µs | {baseline} | {:.2}× |",
                m / 1000.0,
                m / base
            );
        }
    }
}

fn main() {
    let started = SystemTime::now();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_ratios(started);
}
