//! FOR BENCHMARKS ONLY (`scripts/bench-e2e`): heap allocations per
//! accepted request, end to end over loopback HTTP, of the example MCP
//! server with its whole stack against the same service bare (as
//! `bench_bare_mcp_server` serves it), in one process with a counting
//! allocator.
//!
//! Both servers and the client run in this process, so each count holds
//! the client's allocations too; the client does the same work for both,
//! so the difference is what the stack allocates. Counts are exact and
//! repeatable (single-threaded runtime, one keep-alive connection), unlike
//! timings on a shared machine.
//!
//! ```text
//! cargo run --release -p tower-mcp-auth-tools --bin e2e_allocations
//! ```
//!
//! With `E2E_PROFILE=<bare|api_key|token>:<N>` it makes only `N` calls
//! (after the warm-up) of that variant and prints nothing: what
//! `scripts/profile-e2e` counts the instructions of, under callgrind.

use std::net::SocketAddr;

use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeys},
    AuthScheme, Principal,
};

#[allow(dead_code, unreachable_pub)]
#[path = "../../../examples/mcp_server/main.rs"]
mod mcp_server;

#[path = "../../../tests/counting_alloc/mod.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const KEY: &str = "mcp_sk_e2e_allocations_0123456789abcdef";
const SECRET: &str = "e2e-allocations-secret-0123456789abcdef";
const WARM_UP: usize = 200;
const REQUESTS: usize = 2_000;

/// The 1 KiB `tools/call` of `scripts/bench-e2e`.
fn body() -> Bytes {
    let pad = "x".repeat(900);
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"protected_operation","arguments":{{"param":"bench","padding":"{pad}"}}}}}}"#
    )
    .into()
}

fn serve(listener: TcpListener, app: Router) {
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
}

/// Allocations per request of `REQUESTS` calls on one connection, after
/// `WARM_UP` (first-seen caches, connection set-up).
async fn per_request(addr: SocketAddr, credential: Option<(&str, &str)>) -> f64 {
    calls(addr, credential, REQUESTS).await
}

/// `WARM_UP` calls, then `n` more on the same connection: the allocations
/// per call of the `n`.
async fn calls(addr: SocketAddr, credential: Option<(&str, &str)>, n: usize) -> f64 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let body = body();
    let host = addr.to_string();
    let mut call = || {
        let mut b = http::Request::post("/mcp")
            .header("host", &host)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some((name, value)) = credential {
            b = b.header(name, value);
        }
        let req = b.body(Full::new(body.clone())).unwrap();
        let sent = sender.send_request(req);
        async move {
            let res = sent.await.unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            assert!(
                status.is_success() && !bytes.windows(7).any(|w| w == b"\"error\""),
                "{status} {}",
                String::from_utf8_lossy(&bytes)
            );
        }
    };
    for _ in 0..WARM_UP {
        call().await;
    }
    let before = counting_alloc::allocated();
    for _ in 0..n {
        call().await;
    }
    (counting_alloc::allocated() - before) as f64 / n.max(1) as f64
}

/// `E2E_PROFILE`: the variant and the number of calls, when set.
fn profile_request() -> Option<(String, usize)> {
    let spec = std::env::var("E2E_PROFILE").ok()?;
    let (variant, n) = spec
        .split_once(':')
        .expect("E2E_PROFILE is <bare|api_key|token>:<calls>");
    Some((
        variant.to_owned(),
        n.parse().expect("E2E_PROFILE: a number of calls"),
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bare_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let full_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (bare, full) = (
        bare_listener.local_addr().unwrap(),
        full_listener.local_addr().unwrap(),
    );
    // Each server answers for its own address (rmcp checks `Host`).
    let config_for = |addr: SocketAddr| {
        let mut config = mcp_server::config::Config::new(
            format!("http://{addr}/mcp"),
            ApiKeys::new().with(ApiKey::new("bench", KEY).scopes(["read:data"])),
        );
        config.stateless = true;
        config.auth.jwt_secret = Some(SecretString::from(SECRET));
        config.auth.rate_limit_per_minute = u32::MAX;
        config
    };
    let config = config_for(full);

    {
        let principal = Principal::new(AuthScheme::ApiKey, "bench");
        let svc = ServiceBuilder::new()
            .map_request(move |mut req: http::Request<axum::body::Body>| {
                req.extensions_mut().insert(principal.clone());
                req
            })
            .service(mcp_server::transport::mcp_service(&config_for(bare)).unwrap());
        let app = Router::new().nest_service(mcp_server::config::MCP_PATH, svc);
        serve(bare_listener, app);
    }
    serve(full_listener, mcp_server::app(&config).await.unwrap());
    let token = format!(
        "Bearer {}",
        mcp_server::config::mint_token(
            &SecretString::from(SECRET),
            config.public_url(),
            "bench-user",
            &["read:data"],
        )
    );

    if let Some((variant, n)) = profile_request() {
        match variant.as_str() {
            "bare" => calls(bare, None, n).await,
            "api_key" => calls(full, Some(("x-api-key", KEY)), n).await,
            "token" => calls(full, Some(("authorization", &token)), n).await,
            other => panic!("E2E_PROFILE: no variant {other:?} (bare, api_key, token)"),
        };
        return;
    }
    let base = per_request(bare, None).await;
    let rows = [
        (
            "full stack, API key",
            per_request(full, Some(("x-api-key", KEY))).await,
        ),
        (
            "full stack, HS256 token",
            per_request(full, Some(("authorization", &token))).await,
        ),
    ];
    println!("Allocations per accepted request, end to end over loopback (client included):");
    println!();
    println!("| server | allocations / request | added by the stack |");
    println!("| --- | ---: | ---: |");
    println!("| bare service | {base:.1} | |");
    for (name, n) in rows {
        println!("| {name} | {n:.1} | {:+.1} |", n - base);
    }
}
