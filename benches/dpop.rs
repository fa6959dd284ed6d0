//! DPoP (RFC 9449) proof validation: one proof, ES256 and EdDSA, against
//! the bearer path it rides on (a JWT layer's verified-token cache hit),
//! measured in the same run; the ratios are printed at the end.
//!
//! - `bearer_cache_hit/ES256`: a request through `JwtLayer` whose token is
//!   in the verified-token cache (the baseline);
//! - `proof_validate/{ES256,EdDSA}`: `ProofValidator::validate_at` on a
//!   fresh proof (parse, jwk, signature, claims, htu, ath, replay insert);
//! - `part/verify_only/{alg}`: the same without the replay insert;
//! - `part/signature_only/{alg}`: the signature check alone;
//! - `part/replay_insert`: the in-memory replay cache's insert;
//! - `layer/dpop_request/{ES256,EdDSA}`: a whole request through
//!   `JwtLayer::new(v).dpop(d)` (below `ProtectedResource::layer()`) with
//!   a bound token (cache hit) and a fresh proof;
//! - `layer/bearer_through_dpop_layer/ES256`: an unbound bearer token
//!   through the same layer (what `.dpop(..)` costs the bearer path).
//!
//! Run: `cargo bench --bench dpop`.

use std::{
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    routing::{get, post},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderValue, Method, Request};
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_mcp_auth::{
    dpop::{Binding, Dpop, MemoryReplayCache, ProofValidator, ReplayKey, ReplayOwner},
    jwt::{install_crypto_provider, JwtKey, JwtLayer, JwtValidator},
    ProtectedResource,
};

const URL: &str = "https://mcp.example.com/mcp";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct ProofKey {
    name: &'static str,
    jkt: String,
    alg: Algorithm,
    enc: EncodingKey,
    header: String,
}

fn proof_keys() -> Vec<ProofKey> {
    let make = |name, alg, enc: EncodingKey| {
        let jwk = Jwk::from_encoding_key(&enc, alg).unwrap();
        let header = json!({"typ": "dpop+jwt", "alg": name, "jwk": jwk});
        ProofKey {
            name,
            jkt: jwk
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap(),
            alg,
            header: URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            enc,
        }
    };
    vec![
        make(
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&fixture("ec256_private.pem")).unwrap(),
        ),
        make(
            "EdDSA",
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&fixture("ed25519_private.pem")).unwrap(),
        ),
    ]
}

/// A fresh proof (new `jti`) for `token`.
fn proof(k: &ProofKey, token: &str) -> HeaderValue {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
    let claims = json!({"jti": JTI.fetch_add(1, Ordering::Relaxed).to_string(), "htm": "POST",
                        "htu": URL, "iat": now(), "ath": ath});
    let input = format!(
        "{}.{}",
        k.header,
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &k.enc, k.alg).unwrap();
    HeaderValue::from_str(&format!("{input}.{sig}")).unwrap()
}

fn bearer_app() -> (Router, String) {
    let enc = EncodingKey::from_ec_pem(&fixture("ec256_private.pem")).unwrap();
    let key = JwtKey::ec_pem(Algorithm::ES256, &fixture("ec256_public.pem")).unwrap();
    let resource = ProtectedResource::builder(URL).build().unwrap();
    let validator = JwtValidator::builder(&resource).key(key).build().unwrap();
    let claims = json!({"sub": "bench-user", "aud": URL, "exp": now() + 3600, "iat": now(),
                        "scope": "read:data", "client_id": "bench"});
    let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &enc).unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(JwtLayer::new(validator));
    (app, token)
}

fn bearer_request(token: &str) -> Request<Body> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

/// `POST /mcp` behind the resource's layer and `JwtLayer::new(v).dpop(d)`,
/// with an unbound token and one token bound to each proof key.
fn dpop_app(keys: &[ProofKey]) -> (Router, String, Vec<String>) {
    let enc = EncodingKey::from_ec_pem(&fixture("ec256_private.pem")).unwrap();
    let key = JwtKey::ec_pem(Algorithm::ES256, &fixture("ec256_public.pem")).unwrap();
    let dpop = Dpop::new(validator());
    let resource = ProtectedResource::builder(URL).dpop(&dpop).build().unwrap();
    let jwt = JwtValidator::builder(&resource).key(key).build().unwrap();
    let token = |cnf: Option<String>| {
        let mut claims = json!({"sub": "bench-user", "aud": URL, "exp": now() + 3600,
                                "iat": now(), "scope": "read:data", "client_id": "bench"});
        if let Some(jkt) = cnf {
            claims["cnf"] = json!({"jkt": jkt});
        }
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &enc).unwrap()
    };
    let bound = keys
        .iter()
        .map(|k| {
            let jwk = Jwk::from_encoding_key(&k.enc, k.alg).unwrap();
            let jkt = jwk
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap();
            token(Some(jkt))
        })
        .collect();
    let app = Router::new()
        .route("/mcp", post(|| async { "ok" }))
        .layer(JwtLayer::new(jwt).dpop(dpop))
        .layer(resource.layer());
    (app, token(None), bound)
}

fn dpop_request(token: &str, proof: Option<HeaderValue>) -> Request<Body> {
    let req = Request::post("/mcp");
    match proof {
        Some(p) => req
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", p),
        None => req.header("authorization", format!("Bearer {token}")),
    }
    .body(Body::empty())
    .unwrap()
}

fn validator() -> ProofValidator {
    ProofValidator::builder()
        .replay_cache(
            MemoryReplayCache::with_capacity(usize::MAX)
                .per_principal(usize::MAX)
                .per_key(usize::MAX),
        )
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("dpop");
    let (app, token) = bearer_app();
    group.bench_function("bearer_cache_hit/ES256", |b| {
        b.to_async(&rt).iter(|| async {
            let res = app.clone().oneshot(bearer_request(&token)).await.unwrap();
            assert_eq!(res.status(), 200);
            black_box(res)
        })
    });
    let v = validator();
    for k in proof_keys() {
        group.bench_function(format!("proof_validate/{}", k.name), |b| {
            b.iter_batched(
                || proof(&k, &token),
                |p| {
                    let binding = Binding::new(Some(&k.jkt), "bench-user");
                    let fut = v.validate_at([&p], &Method::POST, URL, &token, binding, now());
                    black_box(rt.block_on(fut).unwrap())
                },
                BatchSize::SmallInput,
            )
        });
        let p = proof(&k, &token);
        group.bench_function(format!("part/verify_only/{}", k.name), |b| {
            b.iter(|| {
                black_box(
                    v.verify_at([&p], &Method::POST, URL, &token, now())
                        .unwrap(),
                )
            })
        });
        // The signature check alone (jsonwebtoken on the configured backend).
        let text = p.to_str().unwrap();
        let (input, sig) = text.rsplit_once('.').unwrap();
        let jwk = Jwk::from_encoding_key(&k.enc, k.alg).unwrap();
        let dec = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        group.bench_function(format!("part/signature_only/{}", k.name), |b| {
            b.iter(|| {
                assert!(jsonwebtoken::crypto::verify(sig, input.as_bytes(), &dec, k.alg).unwrap())
            })
        });
    }
    let cache = MemoryReplayCache::with_capacity(usize::MAX)
        .per_principal(usize::MAX)
        .per_key(usize::MAX);
    let owner = ReplayOwner::new("jkt", "bench-user");
    let n = AtomicU64::new(0);
    group.bench_function("part/replay_insert", |b| {
        b.iter(|| {
            let key = ReplayKey::new("jkt", &n.fetch_add(1, Ordering::Relaxed).to_string());
            cache.insert_once_sync(key, owner, 1_000, 1_301).unwrap()
        })
    });
    let keys = proof_keys();
    let (app, unbound, bound) = dpop_app(&keys);
    group.bench_function("layer/bearer_through_dpop_layer/ES256", |b| {
        b.to_async(&rt).iter(|| async {
            let res = app
                .clone()
                .oneshot(dpop_request(&unbound, None))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            black_box(res)
        })
    });
    for (k, token) in keys.iter().zip(&bound) {
        group.bench_function(format!("layer/dpop_request/{}", k.name), |b| {
            b.iter_batched(
                || dpop_request(token, Some(proof(k, token))),
                |req| {
                    let res = rt.block_on(app.clone().oneshot(req)).unwrap();
                    assert_eq!(res.status(), 200);
                    black_box(res)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The mean of `iters` calls of `f`.
fn mean(iters: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed() / iters
}

/// Ratios in this run: one proof validation over the bearer cache hit.
fn ratios(_: &mut Criterion) {
    install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, token) = bearer_app();
    let base = mean(20_000, || {
        let res = rt
            .block_on(app.clone().oneshot(bearer_request(&token)))
            .unwrap();
        black_box(res);
    });
    println!("ratio baseline bearer_cache_hit/ES256: {base:?}");
    let v = validator();
    for k in proof_keys() {
        let proofs: Vec<HeaderValue> = (0..4_000).map(|_| proof(&k, &token)).collect();
        let mut it = proofs.iter();
        let t = mean(3_600, || {
            let p = it.next().unwrap();
            black_box(
                rt.block_on(v.validate_at(
                    [p],
                    &Method::POST,
                    URL,
                    &token,
                    Binding::new(Some(&k.jkt), "bench-user"),
                    now(),
                ))
                .unwrap(),
            );
        });
        println!(
            "ratio proof_validate/{} = {t:?} = {:.1}x the bearer cache hit; a DPoP request = {:.1}x a bearer request",
            k.name,
            t.as_secs_f64() / base.as_secs_f64(),
            (t + base).as_secs_f64() / base.as_secs_f64(),
        );
    }
    // Through the layer: `JwtLayer::new(v).dpop(d)`, whole requests.
    let keys = proof_keys();
    let (app, unbound, bound) = dpop_app(&keys);
    let t = mean(20_000, || {
        let res = rt
            .block_on(app.clone().oneshot(dpop_request(&unbound, None)))
            .unwrap();
        black_box(res);
    });
    println!(
        "ratio layer/bearer_through_dpop_layer/ES256 = {t:?} = {:.2}x the bearer cache hit",
        t.as_secs_f64() / base.as_secs_f64()
    );
    for (k, token) in keys.iter().zip(&bound) {
        // What a DPoP request adds over a bearer request through the same
        // layer, against one signature verification of the proof's
        // algorithm alone (the floor of what it must add), over distinct
        // proofs as requests carry them. Five interleaved rounds, medians:
        // one round alone means little on a shared machine.
        let jwk = Jwk::from_encoding_key(&k.enc, k.alg).unwrap();
        let dec = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let (mut extras, mut signatures, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..5 {
            let bearer = mean(5_000, || {
                let res = rt
                    .block_on(app.clone().oneshot(dpop_request(&unbound, None)))
                    .unwrap();
                black_box(res);
            });
            let signed: Vec<String> = (0..1_100)
                .map(|_| proof(k, token).to_str().unwrap().to_owned())
                .collect();
            let mut it = signed.iter();
            let signature = mean(1_000, || {
                let (input, sig) = it.next().unwrap().rsplit_once('.').unwrap();
                assert!(jsonwebtoken::crypto::verify(sig, input.as_bytes(), &dec, k.alg).unwrap());
            });
            let reqs: Vec<_> = (0..1_100)
                .map(|_| dpop_request(token, Some(proof(k, token))))
                .collect();
            let mut it = reqs.into_iter();
            let dpop = mean(1_000, || {
                let res = rt
                    .block_on(app.clone().oneshot(it.next().unwrap()))
                    .unwrap();
                assert_eq!(res.status(), 200);
                black_box(res);
            });
            let extra = dpop.saturating_sub(bearer);
            ratios.push(extra.as_secs_f64() / signature.as_secs_f64());
            extras.push(extra);
            signatures.push(signature);
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        ratios.sort_by(f64::total_cmp);
        println!(
            "ratio dpop_extra/{} = {:?} over a bearer request = {:.2}x one signature verification ({:?}); medians of 5 rounds, each round's ratio: {}",
            k.name,
            median(&mut extras),
            ratios[ratios.len() / 2],
            median(&mut signatures),
            ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" "),
        );
    }
}

criterion_group!(benches, bench, ratios);
criterion_main!(benches);
