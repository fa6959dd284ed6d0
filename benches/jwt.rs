//! JWT validation per request, all in one run: raw `jsonwebtoken::decode`
//! for HS256 / RS256 / ES256 / EdDSA as the baseline, `JwtLayer` for a
//! first-seen token (signature checked) and for a repeated token (verified
//! token cache hit), and a bare axum route as the floor.
//!
//! A second group puts the layer against the peer a user might pick
//! instead for HS256, `axum-jwt-auth`'s `Claims` extractor (a local
//! decoder, jsonwebtoken 10 on RustCrypto), each in front of a handler
//! that reads the caller's subject.
//!
//! `cargo bench --bench jwt`; compare crypto backends with
//! `cargo bench --bench jwt --no-default-features --features jwt,rust-crypto -- raw`.

use std::{
    hint::black_box,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{body::Body, routing::get, Router};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::Request;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_mcp_auth::{
    jwt::{install_crypto_provider, JwtKey, JwtLayer, JwtValidator},
    AuthScheme, Principal, ProtectedResource,
};

const AUD: &str = "https://mcp.example.com/mcp";
const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";

const BACKEND: &str = if cfg!(feature = "aws-lc-rs") {
    "aws_lc_rs"
} else {
    "rust_crypto"
};

struct Alg {
    name: &'static str,
    alg: Algorithm,
    enc: EncodingKey,
    dec: DecodingKey,
    key: JwtKey,
}

fn algs() -> Vec<Alg> {
    install_crypto_provider();
    let f = |name: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    vec![
        Alg {
            name: "HS256",
            alg: Algorithm::HS256,
            enc: EncodingKey::from_secret(SECRET.as_bytes()),
            dec: DecodingKey::from_secret(SECRET.as_bytes()),
            key: JwtKey::hmac(Algorithm::HS256, &SecretString::from(SECRET)).unwrap(),
        },
        Alg {
            name: "RS256",
            alg: Algorithm::RS256,
            enc: EncodingKey::from_rsa_pem(&f("rsa1_private.pem")).unwrap(),
            dec: DecodingKey::from_rsa_pem(&f("rsa1_public.pem")).unwrap(),
            key: JwtKey::rsa_pem(Algorithm::RS256, &f("rsa1_public.pem")).unwrap(),
        },
        Alg {
            name: "ES256",
            alg: Algorithm::ES256,
            enc: EncodingKey::from_ec_pem(&f("ec256_private.pem")).unwrap(),
            dec: DecodingKey::from_ec_pem(&f("ec256_public.pem")).unwrap(),
            key: JwtKey::ec_pem(Algorithm::ES256, &f("ec256_public.pem")).unwrap(),
        },
        Alg {
            name: "EdDSA",
            alg: Algorithm::EdDSA,
            enc: EncodingKey::from_ed_pem(&f("ed25519_private.pem")).unwrap(),
            dec: DecodingKey::from_ed_pem(&f("ed25519_public.pem")).unwrap(),
            key: JwtKey::ed25519_pem(&f("ed25519_public.pem")).unwrap(),
        },
    ]
}

fn mint(a: &Alg, n: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "bench-user", "aud": AUD, "exp": now + 3600, "iat": now,
                        "scope": "read:data write:data", "client_id": "bench", "jti": n});
    jsonwebtoken::encode(&Header::new(a.alg), &claims, &a.enc).unwrap()
}

fn route() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn request(token: &str) -> Request<Body> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn layered(a: &Alg, cache: bool) -> Router {
    let resource = ProtectedResource::builder(AUD).build().unwrap();
    let mut b = JwtValidator::builder(&resource).key(a.key.clone());
    if !cache {
        b = b.no_token_cache();
    }
    route().layer(JwtLayer::new(b.build().unwrap()))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group(format!("jwt_{BACKEND}"));
    let algs = algs();

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[AUD]);

    for a in &algs {
        let token = mint(a, 0);
        let mut v = validation.clone();
        v.algorithms = vec![a.alg];
        group.bench_function(format!("raw_decode/{}", a.name), |b| {
            b.iter(|| {
                black_box(jsonwebtoken::decode::<Value>(black_box(&token), &a.dec, &v).unwrap())
            })
        });
    }

    let bare = route();
    let any_token = mint(&algs[0], 0);
    group.bench_function("bare_route", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(bare.clone().oneshot(request(&any_token)).await.unwrap()) })
    });

    for a in &algs {
        // First seen: every request checks the signature (cache off, so a
        // token is never seen twice however many iterations run).
        let app = layered(a, false);
        let token = mint(a, 0);
        group.bench_function(format!("layer_first_seen/{}", a.name), |b| {
            b.to_async(&rt).iter(|| async {
                let res = app.clone().oneshot(request(&token)).await.unwrap();
                assert_eq!(res.status(), 200);
                black_box(res)
            })
        });

        // Repeated token: a verified-token cache hit.
        let app = layered(a, true);
        group.bench_function(format!("layer_cache_hit/{}", a.name), |b| {
            b.to_async(&rt).iter(|| async {
                let res = app.clone().oneshot(request(&token)).await.unwrap();
                assert_eq!(res.status(), 200);
                black_box(res)
            })
        });
    }

    // First seen with the cache on (digest + insert included): fresh
    // HS256 tokens, minted outside the timed part.
    let hs = &algs[0];
    let app = layered(hs, true);
    let mut n = 1u64;
    group.bench_function("layer_first_seen_cache_on/HS256", |b| {
        b.to_async(&rt).iter_batched(
            || {
                n += 1;
                request(&mint(hs, n))
            },
            |req| async {
                let res = app.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status(), 200);
                black_box(res)
            },
            BatchSize::SmallInput,
        )
    });
    // The parts of a cache hit: the token's SHA-256 digest and the lookup.
    let token = mint(&algs[1], 0);
    group.bench_function("part/sha256_of_rs256_token", |b| {
        b.iter(|| {
            black_box(<sha2::Sha256 as sha2::Digest>::digest(black_box(
                token.as_bytes(),
            )))
        })
    });

    // The verified-token cache's moka configuration (per-entry expiry,
    // 10 000 entries): insert of a new key, and get of a present one.
    struct Ttl;
    impl moka::Expiry<[u8; 32], (Principal, Duration)> for Ttl {
        fn expire_after_create(
            &self,
            _: &[u8; 32],
            v: &(Principal, Duration),
            _: std::time::Instant,
        ) -> Option<Duration> {
            Some(v.1)
        }
    }
    let cache: moka::sync::Cache<[u8; 32], (Principal, Duration)> = moka::sync::Cache::builder()
        .max_capacity(10_000)
        .expire_after(Ttl)
        .build();
    let principal = Principal::new(AuthScheme::Jwt, "bench-user");
    let mut i = 0u64;
    group.bench_function("part/moka_insert_new", |b| {
        b.iter(|| {
            i += 1;
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            cache.insert(k, (principal.clone(), Duration::from_secs(60)));
        })
    });
    let k = [7u8; 32];
    cache.insert(k, (principal.clone(), Duration::from_secs(60)));
    group.bench_function("part/moka_get_hit", |b| b.iter(|| black_box(cache.get(&k))));
    group.finish();
}

/// The claims `axum-jwt-auth` decodes for the peer handler.
#[derive(serde::Deserialize)]
struct PeerClaims {
    sub: String,
}

#[derive(Clone)]
struct PeerState {
    decoder: axum_jwt_auth::Decoder<PeerClaims>,
}

impl axum::extract::FromRef<PeerState> for axum_jwt_auth::Decoder<PeerClaims> {
    fn from_ref(state: &PeerState) -> Self {
        state.decoder.clone()
    }
}

fn peer(c: &mut Criterion) {
    use jsonwebtoken10 as jwt10;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let algs = algs();
    let hs = &algs[0];
    let token = mint(hs, 0);

    let mut validation = jwt10::Validation::new(jwt10::Algorithm::HS256);
    validation.set_audience(&[AUD]);
    let decoder = axum_jwt_auth::LocalDecoder::builder()
        .keys(vec![jwt10::DecodingKey::from_secret(SECRET.as_bytes())])
        .validation(validation)
        .build()
        .unwrap();
    let peer: Router = Router::new()
        .route(
            "/",
            get(|claims: axum_jwt_auth::Claims<PeerClaims>| async move { claims.claims.sub }),
        )
        .with_state(PeerState {
            decoder: std::sync::Arc::new(decoder),
        });
    let ours = |cache: bool| {
        let resource = ProtectedResource::builder(AUD).build().unwrap();
        let mut b = JwtValidator::builder(&resource).key(hs.key.clone());
        if !cache {
            b = b.no_token_cache();
        }
        Router::new()
            .route("/", get(|p: Principal| async move { p.name().to_owned() }))
            .layer(JwtLayer::new(b.build().unwrap()))
    };
    let variants = [
        ("axum_jwt_auth_claims_extractor", peer),
        ("jwt_layer_first_seen", ours(false)),
        ("jwt_layer_cache_hit", ours(true)),
    ];
    let mut group = c.benchmark_group("jwt_hs256_vs_axum_jwt_auth");
    for (name, app) in variants {
        let res = rt.block_on(app.clone().oneshot(request(&token))).unwrap();
        assert_eq!(res.status(), 200, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(app.clone().oneshot(request(&token)).await.unwrap()) })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, peer);
criterion_main!(benches);
