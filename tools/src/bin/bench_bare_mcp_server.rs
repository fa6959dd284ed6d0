//! FOR BENCHMARKS ONLY (`scripts/bench-e2e`, `scripts/conformance`): the
//! example MCP server's service (`examples/mcp_server/transport.rs`, the
//! same tools, store and rmcp transport) served with NO authentication
//! layers, to measure what the layer stack of `examples/mcp_server/main.rs`
//! costs end to end.
//!
//! Every request gets one fixed principal (the tools need a caller), so the
//! tools do the same work as behind the stack, and logging is set up as
//! the example sets it up (`RUST_LOG`), so both pay the same for rmcp's own
//! `tracing`. Never deploy this: anyone
//! reaching it acts as that principal. It binds loopback only.
//!
//! ```text
//! BIND=127.0.0.1:3001 MCP_STATELESS=1 API_KEY=mcp_sk_unused_0123456789abcdef cargo run --release -p tower-mcp-auth-tools --bin bench_bare_mcp_server
//! ```
//!
//! `BENCH_LAYERS` (ablation, to see what each layer costs end to end):
//! `key` puts the example's API-key check in front (`X-API-Key` with
//! `API_KEY`, no principal given), `key,policy` adds its MCP policy, and
//! `key,policy,limit` its per-principal rate limit (`RATE_LIMIT_PER_MINUTE`),
//! each configured as the example configures it. `floor` is what an
//! accepted call cannot do without (issue 28's "floor"), written by hand
//! ([`Floor`]): the key looked up, the body parsed, one quota check.

use std::{convert::Infallible, net::SocketAddr};

use axum::{body::Body, Router};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::ApiKeyLayer,
    mcp::{McpPolicyLayer, SharedPolicy},
    rate_limit::{MemoryStore, Quota, RateLimitKey, RateLimitLayer},
    stack::SharedService,
    AuthScheme, ConfigError, Principal, ProtectedResource,
};

#[allow(dead_code, unreachable_pub)]
#[path = "../../../examples/mcp_server/main.rs"]
mod mcp_server;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let config = match mcp_server::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
    };
    if !config.bind.ip().is_loopback() {
        eprintln!("this unauthenticated benchmark server binds loopback only");
        std::process::exit(1);
    }
    let mcp = match mcp_server::transport::mcp_service(&config) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
    };
    let layers = std::env::var("BENCH_LAYERS").unwrap_or_default();
    let layers: Vec<&str> = layers.split(',').filter(|l| !l.is_empty()).collect();
    let app = match ablated(&config, mcp, &layers) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {} (BIND): {e}", config.bind);
            std::process::exit(1);
        }
    };
    println!(
        "bare MCP server (no auth, benchmarks only) on {}",
        config.bind
    );
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("server error: {e}");
        std::process::exit(1);
    }
}

/// The service with no layer (one fixed principal), or behind the layers
/// named in `layers`, outermost first: `key`, `key,policy` or
/// `key,policy,limit`, nested as `McpAuth` nests them (no box between,
/// the service behind a `SharedService` as `McpAuth` puts it), or behind
/// the hand-written `floor`.
fn ablated<S, B>(
    config: &mcp_server::config::Config,
    mcp: S,
    layers: &[&str],
) -> Result<Router, ConfigError>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let policy: SharedPolicy = mcp_server::policy()?.into();
    let resource = ProtectedResource::builder(config.public_url()).build()?;
    let key = || {
        ServiceBuilder::new()
            .layer(resource.layer())
            .layer(ApiKeyLayer::new(config.auth.api_keys.clone()))
    };
    let quota = Quota::per_minute(config.auth.rate_limit_per_minute);
    let router = Router::new();
    let path = mcp_server::config::MCP_PATH;
    Ok(match layers.join(",").as_str() {
        "" => {
            let principal = Principal::new(AuthScheme::ApiKey, "bench");
            let svc = ServiceBuilder::new()
                .map_request(move |mut req: http::Request<Body>| {
                    req.extensions_mut().insert(principal.clone());
                    req
                })
                .service(mcp);
            router.nest_service(path, svc)
        }
        "key" => router.nest_service(path, key().service(SharedService::new(mcp))),
        "key,policy" => router.nest_service(
            path,
            key()
                .layer(McpPolicyLayer::new(policy.clone()))
                .service(SharedService::new(mcp)),
        ),
        "key,policy,limit" => router.nest_service(
            path,
            key()
                .layer(McpPolicyLayer::new(policy.clone()))
                .layer(RateLimitLayer::from_policy(&policy, quota))
                .service(SharedService::new(mcp)),
        ),
        "floor" => router.nest_service(
            path,
            Floor {
                inner: SharedService::new(mcp),
                keys: config.auth.api_keys.clone(),
                store: MemoryStore::new(),
                quota,
            },
        ),
        other => {
            eprintln!(
                "BENCH_LAYERS: {other:?} is none of key, key,policy, key,policy,limit, floor"
            );
            std::process::exit(1);
        }
    })
}

/// What issue 28 calls the floor of an accepted request, and nothing
/// more: the API key's digest looked up (`ApiKeys::verify`, SHA-256 and a
/// hash lookup), the JSON-RPC body read once and parsed (`serde_json`, the
/// method and the tool's name), one quota check (`MemoryStore::check_now`),
/// the principal handed to the service. No refusal bodies, no list
/// filtering, no bindings, no throttle, no rate-limit headers: a
/// comparison for `scripts/profile-server`, not a way to protect anything.
#[derive(Clone)]
struct Floor<S> {
    inner: S,
    keys: tower_mcp_auth::api_key::ApiKeys,
    store: MemoryStore,
    quota: Quota,
}

/// The members of a JSON-RPC call the floor reads.
#[derive(serde::Deserialize)]
struct Call<'a> {
    #[serde(borrow)]
    method: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    params: Option<Params<'a>>,
}

#[derive(serde::Deserialize)]
struct Params<'a> {
    #[serde(default, borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
}

impl<S, B> tower::Service<http::Request<Body>> for Floor<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let refused = |status: http::StatusCode| {
            let res = http::Response::builder().status(status).body(Body::empty());
            Box::pin(std::future::ready(Ok(res.unwrap_or_default()))) as Self::Future
        };
        let principal = req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .and_then(|k| self.keys.verify(k));
        let Some(principal) = principal else {
            return refused(http::StatusCode::UNAUTHORIZED);
        };
        let key = RateLimitKey::principal(&principal);
        let one = std::num::NonZeroU32::MIN;
        if !self.store.check_now(&key, self.quota, one).is_allowed() {
            return refused(http::StatusCode::TOO_MANY_REQUESTS);
        }
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let Ok(bytes) = http_body_util::BodyExt::collect(body)
                .await
                .map(|b| b.to_bytes())
            else {
                return Ok(http::Response::builder()
                    .status(400)
                    .body(Body::empty())
                    .unwrap_or_default());
            };
            match serde_json::from_slice::<Call<'_>>(&bytes) {
                Ok(call) if !call.method.is_empty() => {
                    std::hint::black_box((&call.method, call.params.and_then(|p| p.name)));
                }
                _ => {
                    return Ok(http::Response::builder()
                        .status(400)
                        .body(Body::empty())
                        .unwrap_or_default());
                }
            }
            parts.extensions.insert(principal);
            let res = inner
                .call(http::Request::from_parts(parts, Body::from(bytes)))
                .await?;
            Ok(res.map(Body::new))
        })
    }
}
