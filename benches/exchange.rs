//! Token exchange (RFC 8693), all in one run: a cache hit of
//! `TokenExchanger::exchange` against a cache hit of
//! `JwtValidator::verify` (the cost every request already pays), and a
//! miss (one exchange with a loopback token endpoint) against a bare POST
//! of the same form to that endpoint (the round trip).
//!
//! The exchange's hit hashes nothing: the caller's token digest is the one
//! the JWT validator computed for its cache (carried by the principal into
//! the `SubjectToken`), and the target's hash was computed when the target
//! was built; the JWT hit digests the token (SHA-256) on every call.
//!
//! `cargo bench --bench exchange --features jwt,token-exchange`
//!
//! Instructions per call, repeatable on a busy machine:
//! `EXCHANGE_PROFILE=<jwt_cache_hit|exchange_cache_hit>:<n>` runs one hit
//! `n` times and nothing else, for callgrind
//! (`--toggle-collect='*profile_loop*'`); the difference of two counts
//! over the difference of their `n` is the cost of one call.

use std::{
    collections::HashMap,
    convert::Infallible,
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{body::Body, extract::Form, routing::post, Json, Router};
use criterion::Criterion;
use http::Request;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    exchange::{KeepSubjectTokenLayer, SubjectToken, Target, TokenExchanger},
    jwt::{JwtLayer, JwtValidator},
    ProtectedResource,
};

const AUD: &str = "https://mcp.example.com/mcp";
const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn token_endpoint(Form(form): Form<HashMap<String, String>>) -> Json<serde_json::Value> {
    Json(json!({
        "access_token": format!("issued-for-{}", form.get("resource").map_or("", String::as_str).len()),
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
}

/// What every variant uses: the runtime, the loopback token endpoint's
/// URL, the validator and its token, the exchanger and the kept token.
struct Setup {
    rt: tokio::runtime::Runtime,
    url: String,
    validator: JwtValidator,
    token: String,
    exchanger: TokenExchanger,
    subject: SubjectToken,
    users: Target,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/token", post(token_endpoint));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/token")
    });
    let resource = ProtectedResource::builder(AUD).build().unwrap();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(SECRET))
        .build()
        .unwrap();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "aud": AUD, "exp": now() + 3600}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    // The caller's token as a tool gets it: verified, kept.
    let subject = rt.block_on(async {
        let svc = ServiceBuilder::new()
            .layer(JwtLayer::new(validator.clone()))
            .layer(KeepSubjectTokenLayer::new())
            .service_fn(|req: Request<Body>| async move {
                let mut res = http::Response::new(Body::empty());
                let kept = req.extensions().get::<SubjectToken>().cloned().unwrap();
                res.extensions_mut().insert(kept);
                Ok::<_, Infallible>(res)
            });
        let req = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        res.extensions().get::<SubjectToken>().cloned().unwrap()
    });
    let exchanger = TokenExchanger::builder(&url, "bench", SecretString::from("bench-secret"))
        .cache_capacity(1_000_000)
        .build()
        .unwrap();
    let users = Target::resource("https://users.example.com").scopes(["users:read"]);
    // Warm both caches.
    rt.block_on(async {
        validator.verify(&token).await.unwrap();
        exchanger.exchange(&subject, &users).await.unwrap();
    });

    Setup {
        rt,
        url,
        validator,
        token,
        exchanger,
        subject,
        users,
    }
}

fn bench(c: &mut Criterion) {
    let Setup {
        rt,
        url,
        validator,
        token,
        exchanger,
        subject,
        users,
    } = setup();
    let mut group = c.benchmark_group("exchange");
    group.bench_function("jwt_cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(validator.verify(black_box(&token)).await.unwrap()) })
    });
    group.bench_function("exchange_cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                exchanger
                    .exchange(black_box(&subject), black_box(&users))
                    .await
                    .unwrap()
                    .authorization(),
            )
        })
    });
    // A miss: a target never asked for before, one exchange each.
    let n = AtomicU64::new(0);
    group.bench_function("exchange_miss", |b| {
        b.to_async(&rt).iter(|| async {
            let i = n.fetch_add(1, Ordering::Relaxed);
            let target = Target::resource(format!("https://r{i}.example.com"));
            black_box(exchanger.exchange(&subject, &target).await.unwrap())
        })
    });
    // The floor of a miss: the same form POSTed by a plain client.
    let client = reqwest::Client::new();
    group.bench_function("token_endpoint_round_trip", |b| {
        b.to_async(&rt).iter(|| async {
            let form = format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token={token}&resource=https%3A%2F%2Fr.example.com"
            );
            let res = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap();
            black_box(res.bytes().await.unwrap())
        })
    });
    group.finish();
}

/// `EXCHANGE_PROFILE=<variant>:<n>`: one cache hit `n` times, nothing else.
fn profile(spec: &str) {
    let (name, n) = spec
        .split_once(':')
        .expect("EXCHANGE_PROFILE is <variant>:<iterations>");
    let n: u32 = n.parse().expect("EXCHANGE_PROFILE iterations");
    let s = setup();
    profile_loop(&s, name, n);
}

/// The calls of a profile run, in a frame of their own for callgrind's
/// `--toggle-collect=*profile_loop*`.
#[inline(never)]
fn profile_loop(s: &Setup, name: &str, n: u32) {
    s.rt.block_on(async {
        for _ in 0..n {
            match name {
                "jwt_cache_hit" => {
                    black_box(s.validator.verify(black_box(&s.token)).await.unwrap());
                }
                "exchange_cache_hit" => {
                    let hit = s
                        .exchanger
                        .exchange(black_box(&s.subject), black_box(&s.users));
                    black_box(hit.await.unwrap().authorization());
                }
                other => panic!("no variant {other}"),
            }
        }
    });
}

fn main() {
    if let Ok(spec) = std::env::var("EXCHANGE_PROFILE") {
        return profile(&spec);
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
