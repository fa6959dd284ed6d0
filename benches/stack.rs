//! The full MCP stack per request against a bare route, in one run: what
//! `stack::McpAuth` assembles (`mcp_auth_*`), and, hand-built,
//! API key → JWT (HS256) → `McpPolicyLayer` → `RateLimitLayer` in front of a
//! trivial service that reads the whole body (as an MCP server does), on a
//! 1 KiB `tools/call`; and each layer alone on the same request and service.
//! The route answers as an MCP server does: a JSON-RPC result in an
//! `application/json` body (or one SSE event, for the `_sse` variants); the
//! `_tools_list` variants send `tools/list` and get the example server's 11
//! tools back, which the policy layer filters.
//! After the measurements it prints the ratio table (median of each bench
//! over the median of its bare-route baseline, from criterion's estimates of
//! this run).
//!
//! `cargo bench --bench stack -- --warm-up-time 1 --measurement-time 3`

use std::{
    convert::Infallible,
    hint::black_box,
    path::{Path, PathBuf},
    time::SystemTime,
};

use axum::body::Body;
use criterion::{Criterion, Throughput};
use http::{request::Parts, Request};
use http_body_util::BodyExt;
use secrecy::SecretString;
use tower::{util::BoxCloneSyncService, ServiceBuilder, ServiceExt};
use tower_layer::Layer;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    jwt::{install_crypto_provider, JwtLayer, JwtValidator},
    mcp::{McpPolicy, McpPolicyLayer, McpRequest},
    rate_limit::{Quota, RateLimitLayer},
    stack::McpAuth,
    AuthScheme, Principal, ProtectedResource, Rule,
};

const GROUP: &str = "stack_1KiB_tools_call";
const AUD: &str = "https://mcp.example.com/mcp";
const KEY: &str = "mcp_sk_benchbenchbenchbenchbenchbenchbench12";
const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";

/// A `tools/call` of `protected_operation`, padded to about `size` bytes.
fn call_body(size: usize) -> bytes::Bytes {
    let mut items = Vec::new();
    let mut len = 0;
    let mut i = 0;
    while len + 140 < size {
        let item = format!(r#"{{"key":"field_{i}","value":"some text with \"escapes\" {i}"}}"#);
        len += item.len() + 1;
        items.push(item);
        i += 1;
    }
    format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"protected_operation","arguments":{{"param":"x","items":[{}]}}}}}}"#,
        items.join(",")
    )
    .into()
}

fn token() -> String {
    install_crypto_provider();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": "bench-user", "aud": AUD, "iat": now,
        "exp": now + 3600, "scope": "read:data"});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The example server's rules (examples/mcp_server/main.rs `policy()`).
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
        .tool("protected_operation", Rule::authenticated())
        .resource(
            "user://{user_id}/private",
            Rule::bearer().scopes(["read:data"]),
        )
        .build()
        .unwrap()
}

/// A `tools/list` request.
const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/list"}"#;

/// The service behind every variant: reads the whole body, answers 200
/// with a JSON-RPC result, as an MCP server in JSON-response mode does: the
/// example server's 11 tools to a `tools/list`, else a `tools/call` result
/// naming the body's length.
async fn route(req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    Ok(http::Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(reply(&body)))
        .unwrap())
}

/// The same replies as one SSE event, as an MCP server streams them.
async fn sse_route(req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    Ok(http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(format!(
            "event: message\ndata: {}\n\n",
            reply(&body)
        )))
        .unwrap())
}

fn reply(body: &[u8]) -> String {
    if body == TOOLS_LIST.as_bytes() {
        let tools: Vec<String> = [
            "get_user_data",
            "read_sensitive_data",
            "update_user_data",
            "get_my_profile",
            "update_my_profile",
            "create_admin_user",
            "delete_user",
            "list_all_users",
            "get_user_by_id",
            "protected_operation",
            "rate_limited_operation",
        ]
        .iter()
        .map(|n| {
            format!(
                r#"{{"name":"{n}","description":"The {n} tool.","inputSchema":{{"type":"object","properties":{{"id":{{"type":"string"}}}}}}}}"#
            )
        })
        .collect();
        format!(
            r#"{{"jsonrpc":"2.0","id":42,"result":{{"tools":[{}]}}}}"#,
            tools.join(",")
        )
    } else {
        format!(
            r#"{{"jsonrpc":"2.0","id":42,"result":{{"content":[{{"type":"text","text":"{}"}}],"isError":false}}}}"#,
            body.len()
        )
    }
}

type Svc = BoxCloneSyncService<Request<Body>, http::Response<Body>, Infallible>;

#[derive(Clone, Copy)]
enum Cred {
    ApiKey,
    Bearer,
    /// A principal already on the request (what an outer layer leaves).
    Principal,
}

fn request(body: &bytes::Bytes, cred: Cred, bearer: &str) -> Request<Body> {
    let b = Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("content-length", body.len());
    let b = match cred {
        Cred::ApiKey => b.header("x-api-key", KEY),
        Cred::Bearer => b.header("authorization", bearer),
        Cred::Principal => b,
    };
    let mut req = b.body(Body::from(body.clone())).unwrap();
    if let Cred::Principal = cred {
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::Jwt, "bench-user"));
    }
    req
}

struct Layers {
    resource: ProtectedResource,
    /// Everything `stack::McpAuth` assembles (failed-auth throttle, session
    /// and handle binding included), with the same keys, secret and rules.
    mcp_auth: McpAuth,
}

impl Layers {
    fn api_key(&self) -> ApiKeyLayer {
        ApiKeyLayer::new(ApiKeys::new().with(ApiKey::new("svc", KEY).scopes(["read:data"])))
            .optional()
    }

    fn jwt(&self) -> JwtLayer {
        let v = JwtValidator::builder(&self.resource)
            .hs256_secret(&SecretString::from(SECRET))
            .build()
            .unwrap();
        JwtLayer::new(v).optional()
    }

    fn rate_limit(&self) -> RateLimitLayer {
        RateLimitLayer::per_principal(Quota::per_hour(u32::MAX)).cost(|parts: &Parts| {
            parts
                .extensions
                .get::<McpRequest>()
                .map_or(1, |r| u32::try_from(r.calls().len()).unwrap_or(u32::MAX))
        })
    }

    /// The example server's order (without its failed-auth throttle, which
    /// only acts on refusals).
    fn full(&self) -> Svc {
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(self.resource.layer())
                .layer(self.api_key())
                .layer(self.jwt())
                .layer(McpPolicyLayer::new(policy()))
                .layer(self.rate_limit())
                .service_fn(route),
        )
    }
}

/// What a variant is called with: the request body and the credential.
#[derive(Clone, Copy)]
enum Call {
    /// The 1 KiB `tools/call`.
    ToolsCall,
    /// `tools/list` (its reply is filtered by the policy layer).
    ToolsList,
}

/// The bare route and every layered variant, each with the call and the
/// credential it is called with.
fn variants(l: &Layers) -> Vec<(&'static str, Svc, Call, Cred)> {
    // The bare route is an axum route_service with the same service; every
    // layered variant is boxed the same way, so the box is in the baseline.
    let mount = |svc: Svc| -> Svc {
        BoxCloneSyncService::new(
            axum::Router::new()
                .route_service("/mcp", svc)
                .into_service::<Body>(),
        )
    };
    let bare: Svc = BoxCloneSyncService::new(
        axum::Router::new()
            .route_service("/mcp", ServiceBuilder::new().service_fn(route))
            .into_service::<Body>(),
    );
    let bare_sse: Svc = BoxCloneSyncService::new(
        axum::Router::new()
            .route_service("/mcp", ServiceBuilder::new().service_fn(sse_route))
            .into_service::<Body>(),
    );
    let policy = || {
        ServiceBuilder::new()
            .layer(l.resource.layer())
            .layer(McpPolicyLayer::new(policy()))
            .into_inner()
    };
    vec![
        ("bare_route", bare.clone(), Call::ToolsCall, Cred::ApiKey),
        // The same route with the request that the layers after
        // authentication get: a principal in its extensions, no header.
        (
            "bare_route_principal",
            bare.clone(),
            Call::ToolsCall,
            Cred::Principal,
        ),
        (
            "full_stack_api_key",
            mount(l.full()),
            Call::ToolsCall,
            Cred::ApiKey,
        ),
        (
            "full_stack_jwt_cache_hit",
            mount(l.full()),
            Call::ToolsCall,
            Cred::Bearer,
        ),
        (
            "mcp_auth_api_key",
            mount(BoxCloneSyncService::new(
                l.mcp_auth.layer().layer(tower::service_fn(route)),
            )),
            Call::ToolsCall,
            Cred::ApiKey,
        ),
        (
            "mcp_auth_jwt_cache_hit",
            mount(BoxCloneSyncService::new(
                l.mcp_auth.layer().layer(tower::service_fn(route)),
            )),
            Call::ToolsCall,
            Cred::Bearer,
        ),
        (
            "api_key_alone",
            mount(BoxCloneSyncService::new(
                ServiceBuilder::new().layer(l.api_key()).service_fn(route),
            )),
            Call::ToolsCall,
            Cred::ApiKey,
        ),
        (
            "jwt_cache_hit_alone",
            mount(BoxCloneSyncService::new(
                ServiceBuilder::new().layer(l.jwt()).service_fn(route),
            )),
            Call::ToolsCall,
            Cred::Bearer,
        ),
        (
            "policy_alone",
            mount(BoxCloneSyncService::new(
                ServiceBuilder::new().layer(policy()).service_fn(route),
            )),
            Call::ToolsCall,
            Cred::Principal,
        ),
        (
            "rate_limit_alone",
            mount(BoxCloneSyncService::new(
                ServiceBuilder::new()
                    .layer(l.rate_limit())
                    .service_fn(route),
            )),
            Call::ToolsCall,
            Cred::Principal,
        ),
        ("bare_route_sse", bare_sse, Call::ToolsCall, Cred::Principal),
        (
            "policy_alone_sse",
            mount(BoxCloneSyncService::new(
                ServiceBuilder::new().layer(policy()).service_fn(sse_route),
            )),
            Call::ToolsCall,
            Cred::Principal,
        ),
        (
            "bare_route_tools_list",
            bare,
            Call::ToolsList,
            Cred::Principal,
        ),
        (
            "policy_alone_tools_list",
            mount(BoxCloneSyncService::new(
                ServiceBuilder::new().layer(policy()).service_fn(route),
            )),
            Call::ToolsList,
            Cred::Principal,
        ),
    ]
}

/// The bodies of one run: the 1 KiB `tools/call` and `tools/list`.
struct Bodies {
    call: bytes::Bytes,
    list: bytes::Bytes,
}

impl Bodies {
    fn of(&self, call: Call) -> &bytes::Bytes {
        match call {
            Call::ToolsCall => &self.call,
            Call::ToolsList => &self.list,
        }
    }
}

fn setup() -> (tokio::runtime::Runtime, Layers, Bodies, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mcp_auth = rt.block_on(
        McpAuth::builder(AUD)
            .api_keys(ApiKeys::new().with(ApiKey::new("svc", KEY).scopes(["read:data"])))
            .hs256_secret(SecretString::from(SECRET))
            .policy(policy())
            .rate_limit_per_minute(u32::MAX)
            .build(),
    );
    let l = Layers {
        resource: ProtectedResource::builder(AUD).build().unwrap(),
        mcp_auth: mcp_auth.unwrap(),
    };
    let bodies = Bodies {
        call: call_body(1024),
        list: bytes::Bytes::from_static(TOOLS_LIST.as_bytes()),
    };
    (rt, l, bodies, format!("Bearer {}", token()))
}

/// `STACK_PROFILE=<variant>:<n>`: runs one variant `n` times and nothing
/// else, for an instruction profile without criterion's own work:
///
/// ```text
/// STACK_PROFILE=full_stack_api_key:6000 valgrind --tool=callgrind \
///     --toggle-collect='*profile_loop*' target/release/deps/stack-…
/// ```
///
/// `scripts/profile-stack` runs this for every variant.
fn profile(spec: &str) {
    let (name, n) = spec
        .split_once(':')
        .expect("STACK_PROFILE is <variant>:<iterations>");
    let n: u32 = n.parse().expect("STACK_PROFILE iterations");
    let (rt, l, bodies, bearer) = setup();
    let (_, svc, call, cred) = variants(&l)
        .into_iter()
        .find(|(v, _, _, _)| *v == name)
        .unwrap_or_else(|| panic!("no variant {name}"));
    profile_loop(&rt, svc, bodies.of(call), cred, &bearer, n);
}

/// The requests of a profile run, in a function of their own so that the
/// profiler can count them alone (`--toggle-collect=*profile_loop*`). Not
/// `async`: the poll of an async body may be inlined into `block_on` and
/// escape the toggle; this frame holds the whole run.
#[inline(never)]
fn profile_loop(
    rt: &tokio::runtime::Runtime,
    svc: Svc,
    body: &bytes::Bytes,
    cred: Cred,
    bearer: &str,
    n: u32,
) {
    rt.block_on(requests(svc, body, cred, bearer, n));
}

/// `n` requests, each answered 200 and its body read.
async fn requests(svc: Svc, body: &bytes::Bytes, cred: Cred, bearer: &str, n: u32) {
    for _ in 0..n {
        let res = svc
            .clone()
            .oneshot(request(body, cred, bearer))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        black_box(drain(res).await);
    }
}

fn bench(c: &mut Criterion) {
    let (rt, l, bodies, bearer) = setup();
    let variants = variants(&l);

    let mut group = c.benchmark_group(GROUP);
    for (name, svc, call, cred) in variants {
        let body = bodies.of(call);
        group.throughput(Throughput::Bytes(body.len() as u64));
        // Check once, outside the timing, that the variant lets it through.
        let res = rt
            .block_on(svc.clone().oneshot(request(body, cred, &bearer)))
            .unwrap();
        assert_eq!(res.status(), 200, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let req = request(body, cred, &bearer);
                let svc = svc.clone();
                // The body is read, as the server writing it out would:
                // the SSE filter does its work while the body is polled.
                async move { black_box(drain(svc.oneshot(req).await.unwrap()).await) }
            })
        });
    }
    group.finish();
}

/// Reads a response's body whole.
async fn drain(res: http::Response<Body>) -> bytes::Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

/// Criterion's median estimate (ns) of `bench` in this run, if measured.
fn median(dir: &Path, bench: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(bench).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// The baseline of a variant: the bare route called with the same request
/// (a principal already on it for the layers that come after
/// authentication).
fn baseline_of(variant: &str) -> &'static str {
    match variant {
        "policy_alone" | "rate_limit_alone" | "bare_route_principal" => "bare_route_principal",
        "policy_alone_sse" | "bare_route_sse" => "bare_route_sse",
        "policy_alone_tools_list" | "bare_route_tools_list" => "bare_route_tools_list",
        _ => "bare_route",
    }
}

fn print_ratios(started: SystemTime) {
    let root = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/criterion"));
    let dir = root.join(GROUP);
    let fresh = |b: &str| {
        std::fs::metadata(dir.join(b).join("new/estimates.json"))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= started)
    };
    if !fresh("bare_route") {
        return;
    }
    let Some(base) = median(&dir, "bare_route") else {
        return;
    };
    println!(
        "\n{GROUP}: median per request, ratio to the bare route with the same request (same run)\n"
    );
    println!("| variant | median | baseline | × baseline |");
    println!("| --- | ---: | --- | ---: |");
    for b in [
        "bare_route",
        "bare_route_principal",
        "full_stack_api_key",
        "full_stack_jwt_cache_hit",
        "api_key_alone",
        "jwt_cache_hit_alone",
        "policy_alone",
        "rate_limit_alone",
        "bare_route_sse",
        "policy_alone_sse",
        "bare_route_tools_list",
        "policy_alone_tools_list",
    ] {
        let baseline = baseline_of(b);
        let base = match baseline {
            "bare_route" => Some(base),
            other => fresh(other).then(|| median(&dir, other)).flatten(),
        };
        if let (true, Some(m), Some(base)) = (fresh(b), median(&dir, b), base) {
            println!(
                "| {b} | {:.2} µs | {baseline} | {:.2}× |",
                m / 1000.0,
                m / base
            );
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("STACK_PROFILE") {
        return profile(&spec);
    }
    let started = SystemTime::now();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_ratios(started);
}
