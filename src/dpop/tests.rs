//! Every check of [`ProofValidator`] with proofs signed by real ES256,
//! EdDSA, RS256 and PS256 keys (the PEM fixtures under `tests/fixtures/`).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use http::{HeaderValue, Method};
use jsonwebtoken::{
    crypto::sign,
    jwk::{Jwk, ThumbprintHash},
    Algorithm, EncodingKey,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::*;

const URL: &str = "https://mcp.example.com/mcp";
const TOKEN: &str = "an-access-token";
const NOW: u64 = 1_800_000_000;

struct Key {
    enc: EncodingKey,
    alg: Algorithm,
    jwk: Value,
}

fn key(pem: &[u8], alg: Algorithm) -> Key {
    crate::jwt::install_crypto_provider();
    let enc = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        _ => EncodingKey::from_rsa_pem(pem),
    }
    .unwrap();
    let jwk = serde_json::to_value(Jwk::from_encoding_key(&enc, alg).unwrap()).unwrap();
    Key { enc, alg, jwk }
}

fn es256() -> Key {
    key(
        include_bytes!("../../tests/fixtures/ec256_private.pem"),
        Algorithm::ES256,
    )
}
fn es256_b() -> Key {
    key(
        include_bytes!("../../tests/fixtures/ec256_b_private.pem"),
        Algorithm::ES256,
    )
}
fn ed25519() -> Key {
    key(
        include_bytes!("../../tests/fixtures/ed25519_private.pem"),
        Algorithm::EdDSA,
    )
}
fn rsa(alg: Algorithm) -> Key {
    key(include_bytes!("../../tests/fixtures/rsa1_private.pem"), alg)
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn claims() -> Map<String, Value> {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let jti = format!("jti-{}", JTI.fetch_add(1, Ordering::Relaxed));
    json!({"jti": jti, "htm": "POST", "htu": URL, "iat": NOW, "ath": ath(TOKEN)})
        .as_object()
        .unwrap()
        .clone()
}

fn header(k: &Key) -> Map<String, Value> {
    json!({"typ": "dpop+jwt", "alg": algorithm_name(k.alg), "jwk": k.jwk})
        .as_object()
        .unwrap()
        .clone()
}

fn b64(v: &impl serde::Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A compact JWS over raw header and claims texts, signed by `k`.
fn signed_raw(k: &Key, header: &str, claims: impl AsRef<[u8]>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = sign(input.as_bytes(), &k.enc, k.alg).unwrap();
    format!("{input}.{sig}")
}

fn signed(k: &Key, header: &Map<String, Value>, claims: &Map<String, Value>) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = sign(input.as_bytes(), &k.enc, k.alg).unwrap();
    format!("{input}.{sig}")
}

/// A proof by `k` with `edit` applied to the default claims.
fn proof_with(k: &Key, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut c = claims();
    edit(&mut c);
    signed(k, &header(k), &c)
}

fn proof(k: &Key) -> String {
    proof_with(k, |_| {})
}

fn validator() -> ProofValidator {
    ProofValidator::builder().build().unwrap()
}

async fn run(
    v: &ProofValidator,
    proofs: &[&str],
    method: Method,
    url: &str,
) -> Result<VerifiedProof, ProofError> {
    let values: Vec<HeaderValue> = proofs
        .iter()
        .map(|p| HeaderValue::from_str(p).unwrap())
        .collect();
    // Bound to the proof's own key (when it has one), for one caller.
    let jkt = v
        .verify_at(&values, &method, url, TOKEN, NOW)
        .map(|p| p.jkt().to_owned());
    let binding = Binding::new(jkt.as_deref().ok(), "caller");
    v.validate_at(&values, &method, url, TOKEN, binding, NOW)
        .await
}

async fn kind(v: &ProofValidator, proof: &str) -> ProofErrorKind {
    run(v, &[proof], Method::POST, URL)
        .await
        .unwrap_err()
        .kind()
}

#[tokio::test]
async fn real_keys_of_each_default_algorithm_pass() {
    let v = validator();
    for k in [
        es256(),
        ed25519(),
        rsa(Algorithm::RS256),
        rsa(Algorithm::PS256),
    ] {
        let ok = run(&v, &[&proof(&k)], Method::POST, URL).await.unwrap();
        assert_eq!(ok.algorithm(), k.alg);
        assert_eq!(ok.iat(), NOW);
        assert_eq!(ok.expires_at(), NOW + 301);
        // The thumbprint agrees with jsonwebtoken's own RFC 7638 code.
        let jwk: Jwk = serde_json::from_value(k.jwk.clone()).unwrap();
        assert_eq!(ok.jkt(), jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
        assert!(ok.check_binding(Some(ok.jkt())).is_ok());
        assert_eq!(
            ok.check_binding(Some(&es256_b_jkt())).unwrap_err().kind(),
            ProofErrorKind::KeyMismatch
        );
        let unbound = ok.check_binding(None).unwrap_err();
        assert_eq!(unbound.kind(), ProofErrorKind::TokenNotBound);
        assert_eq!(unbound.error_code(), Some("invalid_token"));
    }
}

fn es256_b_jkt() -> String {
    let jwk: Jwk = serde_json::from_value(es256_b().jwk).unwrap();
    jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
}

#[tokio::test]
async fn es384_when_configured_and_not_by_default() {
    let k = key(
        include_bytes!("../../tests/fixtures/ec384_private.pem"),
        Algorithm::ES384,
    );
    assert_eq!(
        kind(&validator(), &proof(&k)).await,
        ProofErrorKind::Algorithm
    );
    let v = ProofValidator::builder()
        .algorithms([Algorithm::ES384, Algorithm::ES256])
        .build()
        .unwrap();
    assert_eq!(v.challenge(None), r#"DPoP algs="ES384 ES256""#);
    assert!(run(&v, &[&proof(&k)], Method::POST, URL).await.is_ok());
    // A P-256 key under ES384 is refused before any signature check.
    let p256 = es256();
    let mut h = header(&p256);
    h.insert("alg".into(), "ES384".into());
    let input = format!("{}.{}", b64(&h), b64(&claims()));
    let sig = sign(input.as_bytes(), &k.enc, Algorithm::ES384).unwrap();
    assert_eq!(
        kind(&v, &format!("{input}.{sig}")).await,
        ProofErrorKind::InvalidJwk
    );
}

#[tokio::test]
async fn exactly_one_bounded_header() {
    let v = validator();
    let k = es256();
    assert_eq!(
        run(&v, &[], Method::POST, URL).await.unwrap_err().kind(),
        ProofErrorKind::Missing
    );
    let two = run(&v, &[&proof(&k), &proof(&k)], Method::POST, URL)
        .await
        .unwrap_err();
    assert_eq!(two.kind(), ProofErrorKind::Multiple);
    // Oversized: a validly signed proof with a padded claim.
    let big = proof_with(&k, |c| {
        c.insert("pad".into(), "x".repeat(DEFAULT_MAX_PROOF_BYTES).into());
    });
    assert_eq!(kind(&v, &big).await, ProofErrorKind::TooLarge);
    // The bound is configurable, and a proof under it passes.
    let roomy = ProofValidator::builder()
        .max_proof_bytes(64 * 1024)
        .build()
        .unwrap();
    assert!(run(&roomy, &[&big], Method::POST, URL).await.is_ok());
    // Not visible ASCII.
    let v2 = vec![HeaderValue::from_bytes(b"\xff.a.b").unwrap()];
    assert_eq!(
        v.validate_at(&v2, &Method::POST, URL, TOKEN, Binding::new(None, "c"), NOW)
            .await
            .unwrap_err()
            .kind(),
        ProofErrorKind::Malformed
    );
}

#[tokio::test]
async fn malformed_compact_jws() {
    let v = validator();
    let p = proof(&es256());
    let parts: Vec<&str> = p.split('.').collect();
    for bad in [
        parts[..2].join("."),
        format!("{p}.x"),
        format!("!!.{}.{}", parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("not json"),
            parts[1],
            parts[2]
        ),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
    ] {
        assert_eq!(kind(&v, &bad).await, ProofErrorKind::Malformed, "{bad}");
    }
    // Claims that are not JSON, under a valid signature.
    let k = es256();
    let h = serde_json::to_string(&header(&k)).unwrap();
    assert_eq!(
        kind(&v, &signed_raw(&k, &h, "[1,2]")).await,
        ProofErrorKind::Malformed
    );
    // A duplicated claim is refused, not read one way here and another elsewhere.
    let dup = r#"{"jti":"a","htm":"POST","htm":"GET","htu":"https://mcp.example.com/mcp","iat":1800000000}"#;
    assert_eq!(
        kind(&v, &signed_raw(&k, &h, dup)).await,
        ProofErrorKind::Malformed
    );
    // Claims that are not UTF-8, even in a member nobody reads, are not
    // JSON (RFC 8259 §8.1): refused, under a valid signature.
    let mut latin1 = serde_json::to_vec(&claims()).unwrap();
    latin1.pop();
    latin1.extend_from_slice(b",\"note\":\"caf\xe9\"}");
    assert_eq!(
        kind(&v, &signed_raw(&k, &h, latin1)).await,
        ProofErrorKind::Malformed
    );
}

#[tokio::test]
async fn typ_must_be_dpop_jwt() {
    let v = validator();
    let k = es256();
    for (typ, want) in [
        (Some("JWT"), Some(ProofErrorKind::Type)),
        (Some("at+jwt"), Some(ProofErrorKind::Type)),
        (None, Some(ProofErrorKind::Type)),
        (Some("DPoP+JWT"), None),
    ] {
        let mut h = header(&k);
        match typ {
            Some(t) => h.insert("typ".into(), t.into()),
            None => h.remove("typ"),
        };
        let got = run(&v, &[&signed(&k, &h, &claims())], Method::POST, URL).await;
        assert_eq!(got.err().map(|e| e.kind()), want, "{typ:?}");
    }
}

#[tokio::test]
async fn alg_none_hmac_and_unlisted_are_refused() {
    let v = validator();
    let k = es256();
    // alg none, no signature.
    let mut h = header(&k);
    h.insert("alg".into(), "none".into());
    let none = format!("{}.{}.", b64(&h), b64(&claims()));
    assert_eq!(kind(&v, &none).await, ProofErrorKind::Algorithm);
    // HS256 with a real HMAC signature (the "key" being the jwk text).
    let mut h = header(&k);
    h.insert("alg".into(), "HS256".into());
    let input = format!("{}.{}", b64(&h), b64(&claims()));
    let sig = sign(
        input.as_bytes(),
        &EncodingKey::from_secret(b"secret"),
        Algorithm::HS256,
    )
    .unwrap();
    assert_eq!(
        kind(&v, &format!("{input}.{sig}")).await,
        ProofErrorKind::Algorithm
    );
    // A good proof whose alg is not configured.
    let only_ed = ProofValidator::builder()
        .algorithms([Algorithm::EdDSA])
        .build()
        .unwrap();
    assert_eq!(kind(&only_ed, &proof(&k)).await, ProofErrorKind::Algorithm);
    // alg says RSA, the key is EC.
    let mut h = header(&k);
    h.insert("alg".into(), "RS256".into());
    let p = signed(&k, &h, &claims());
    assert_eq!(kind(&v, &p).await, ProofErrorKind::InvalidJwk);
    // Builder refusals.
    assert!(ProofValidator::builder()
        .algorithms([Algorithm::HS256])
        .build()
        .is_err());
    assert!(ProofValidator::builder().algorithms([]).build().is_err());
    assert!(ProofValidator::builder()
        .iat_window(Duration::ZERO)
        .build()
        .is_err());
}

#[tokio::test]
async fn jwk_must_be_public_present_and_the_signer() {
    let v = validator();
    let k = es256();
    let mut h = header(&k);
    h.remove("jwk");
    assert_eq!(
        kind(&v, &signed(&k, &h, &claims())).await,
        ProofErrorKind::MissingJwk
    );
    // A jwk with its private part.
    let mut h = header(&k);
    h["jwk"]
        .as_object_mut()
        .unwrap()
        .insert("d".into(), URL_SAFE_NO_PAD.encode([1u8; 32]).into());
    assert_eq!(
        kind(&v, &signed(&k, &h, &claims())).await,
        ProofErrorKind::PrivateJwk
    );
    // Signed by one key, naming another.
    let mut h = header(&k);
    h.insert("jwk".into(), es256_b().jwk);
    assert_eq!(
        kind(&v, &signed(&k, &h, &claims())).await,
        ProofErrorKind::Signature
    );
    // Claims changed after signing.
    let p = proof(&k);
    let parts: Vec<&str> = p.split('.').collect();
    let mut c = claims();
    c.insert("htm".into(), "GET".into());
    let forged = format!("{}.{}.{}", parts[0], b64(&c), parts[2]);
    assert_eq!(kind(&v, &forged).await, ProofErrorKind::Signature);
    // crit is not understood.
    let mut h = header(&k);
    h.insert("crit".into(), json!(["exp"]));
    assert_eq!(
        kind(&v, &signed(&k, &h, &claims())).await,
        ProofErrorKind::Critical
    );
}

#[tokio::test]
async fn required_claims() {
    let v = validator();
    let k = ed25519();
    for claim in ["jti", "htm", "htu", "iat"] {
        let p = proof_with(&k, |c| {
            c.remove(claim);
        });
        assert_eq!(kind(&v, &p).await, ProofErrorKind::MissingClaim(claim));
        let p = proof_with(&k, |c| {
            c.insert(claim.into(), json!({"nested": true}));
        });
        assert_eq!(kind(&v, &p).await, ProofErrorKind::MissingClaim(claim));
    }
    let p = proof_with(&k, |c| {
        c.insert("jti".into(), "".into());
    });
    assert_eq!(kind(&v, &p).await, ProofErrorKind::InvalidJti);
    let p = proof_with(&k, |c| {
        c.insert("jti".into(), "j".repeat(MAX_JTI_BYTES + 1).into());
    });
    assert_eq!(kind(&v, &p).await, ProofErrorKind::InvalidJti);
}

#[tokio::test]
async fn htm_is_the_request_method() {
    let v = validator();
    let k = es256();
    let p = proof(&k);
    let e = run(&v, &[&p], Method::GET, URL).await.unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::HtmMismatch);
    let p = proof_with(&k, |c| {
        c.insert("htm".into(), "post".into());
    });
    assert_eq!(kind(&v, &p).await, ProofErrorKind::HtmMismatch);
    let p = proof_with(&k, |c| {
        c.insert("htm".into(), "GET".into());
    });
    assert!(run(&v, &[&p], Method::GET, URL).await.is_ok());
}

#[tokio::test]
async fn htu_is_the_public_url_normalised_without_query() {
    let v = validator();
    let k = es256();
    for (htu, ok) in [
        ("https://mcp.example.com/mcp?session=1#frag", true),
        ("HTTPS://MCP.EXAMPLE.COM:443/mcp", true),
        ("https://mcp.example.com/%6dcp", true),
        ("https://mcp.example.com/x/../mcp", true),
        ("https://mcp.example.com/MCP", false),
        ("https://mcp.example.com/mcp/", false),
        ("http://mcp.example.com/mcp", false),
        ("https://mcp.example.com:8443/mcp", false),
        ("https://evil.example.com/mcp", false),
        ("https://mcp.example.com/other", false),
    ] {
        let p = proof_with(&k, |c| {
            c.insert("htu".into(), htu.into());
        });
        let got = run(&v, &[&p], Method::POST, URL).await;
        if ok {
            assert!(got.is_ok(), "{htu}: {got:?}");
        } else {
            assert_eq!(
                got.unwrap_err().kind(),
                ProofErrorKind::HtuMismatch,
                "{htu}"
            );
        }
    }
    // The request side is normalised the same way, its query ignored.
    let p = proof(&k);
    assert!(run(
        &v,
        &[&p],
        Method::POST,
        "https://MCP.example.com:443/mcp?x=1"
    )
    .await
    .is_ok());
    for bad in [
        "ftp://mcp.example.com/mcp",
        "/mcp",
        "https://u@mcp.example.com/mcp",
    ] {
        let p = proof_with(&k, |c| {
            c.insert("htu".into(), bad.into());
        });
        assert_eq!(kind(&v, &p).await, ProofErrorKind::InvalidHtu, "{bad}");
    }
}

#[tokio::test]
async fn iat_inside_the_window() {
    let v = validator();
    let k = es256();
    for (iat, want) in [
        (json!(NOW - 300), None),
        (json!(NOW + 5), None),
        (json!(NOW as f64 + 0.5), None),
        (json!(NOW - 301), Some(ProofErrorKind::IatTooOld)),
        // Only a small skew ahead: a proof dated in the future would hold
        // its replay entry that much longer.
        (json!(NOW + 6), Some(ProofErrorKind::IatInFuture)),
        (json!(NOW + 300), Some(ProofErrorKind::IatInFuture)),
        (json!(0), Some(ProofErrorKind::IatTooOld)),
        (json!(-1), Some(ProofErrorKind::MissingClaim("iat"))),
        (
            json!(NOW.to_string()),
            Some(ProofErrorKind::MissingClaim("iat")),
        ),
    ] {
        let p = proof_with(&k, |c| {
            c.insert("iat".into(), iat.clone());
        });
        let got = run(&v, &[&p], Method::POST, URL).await;
        assert_eq!(got.err().map(|e| e.kind()), want, "{iat}");
    }
    // A narrower window.
    let narrow = ProofValidator::builder()
        .iat_window(Duration::from_secs(30))
        .build()
        .unwrap();
    let p = proof_with(&k, |c| {
        c.insert("iat".into(), json!(NOW - 31));
    });
    assert_eq!(kind(&narrow, &p).await, ProofErrorKind::IatTooOld);
    // The future skew is configurable, and the window into the past stays.
    let skewed = ProofValidator::builder()
        .iat_future_skew(Duration::from_secs(60))
        .build()
        .unwrap();
    for (iat, ok) in [(NOW + 60, true), (NOW + 61, false), (NOW - 300, true)] {
        let p = proof_with(&k, |c| {
            c.insert("iat".into(), json!(iat));
        });
        assert_eq!(
            run(&skewed, &[&p], Method::POST, URL).await.is_ok(),
            ok,
            "{iat}"
        );
    }
    let strict = ProofValidator::builder()
        .iat_future_skew(Duration::ZERO)
        .build()
        .unwrap();
    let p = proof_with(&k, |c| {
        c.insert("iat".into(), json!(NOW + 1));
    });
    assert_eq!(kind(&strict, &p).await, ProofErrorKind::IatInFuture);
}

#[tokio::test]
async fn ath_is_the_token_hash() {
    let v = validator();
    let k = es256();
    let p = proof_with(&k, |c| {
        c.remove("ath");
    });
    assert_eq!(kind(&v, &p).await, ProofErrorKind::MissingAth);
    let p = proof_with(&k, |c| {
        c.insert("ath".into(), ath("another-token").into());
    });
    assert_eq!(kind(&v, &p).await, ProofErrorKind::AthMismatch);
    // The right proof with another token.
    let p = proof(&k);
    let values = [HeaderValue::from_str(&p).unwrap()];
    let e = v
        .validate_at(
            &values,
            &Method::POST,
            URL,
            "another-token",
            Binding::new(Some(&jkt_of(&k)), "caller"),
            NOW,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::AthMismatch);
}

#[tokio::test]
async fn a_proof_is_accepted_once() {
    let v = validator();
    let k = es256();
    let p = proof(&k);
    assert!(run(&v, &[&p], Method::POST, URL).await.is_ok());
    let e = run(&v, &[&p], Method::POST, URL).await.unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::Replayed);
    assert_eq!(e.error_code(), Some("invalid_dpop_proof"));
    // The same jti under another key is another proof.
    let mut c = claims();
    c.insert("jti".into(), "shared".into());
    assert!(run(&v, &[&signed(&k, &header(&k), &c)], Method::POST, URL)
        .await
        .is_ok());
    let kb = es256_b();
    assert!(
        run(&v, &[&signed(&kb, &header(&kb), &c)], Method::POST, URL)
            .await
            .is_ok()
    );
    // A failed proof does not consume its jti.
    let p = proof(&k);
    assert!(run(&v, &[&p], Method::GET, URL).await.is_err());
    assert!(run(&v, &[&p], Method::POST, URL).await.is_ok());
    // A caller at its share of the store: throttled (429), not a bad proof.
    let tiny = ProofValidator::builder()
        .replay_cache(MemoryReplayCache::with_capacity(1))
        .build()
        .unwrap();
    assert!(run(&tiny, &[&proof(&k)], Method::POST, URL).await.is_ok());
    let full = run(&tiny, &[&proof(&k)], Method::POST, URL)
        .await
        .unwrap_err();
    assert_eq!(full.kind(), ProofErrorKind::ReplayQuotaExceeded);
    assert_eq!(full.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(full.error_code(), None);
    let e = ProofError::new(ProofErrorKind::ReplayCacheFull);
    assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e.error_code(), None);
}

/// The RFC 7638 thumbprint of `k`'s public key.
fn jkt_of(k: &Key) -> String {
    serde_json::from_value::<Jwk>(k.jwk.clone())
        .unwrap()
        .thumbprint(ThumbprintHash::SHA256)
        .unwrap()
}

/// A proof that fails any check, its key binding included, leaves nothing
/// in the replay store: a stolen token with another key cannot fill it.
#[tokio::test]
async fn only_a_fully_checked_proof_reaches_the_replay_store() {
    let cache = std::sync::Arc::new(MemoryReplayCache::with_capacity(100));
    let v = ProofValidator::builder()
        .replay_cache(cache.clone())
        .build()
        .unwrap();
    let (a, b) = (es256(), es256_b());
    let at = |p: &str, jkt: Option<&str>| {
        let values = [HeaderValue::from_str(p).unwrap()];
        let v = v.clone();
        let jkt = jkt.map(str::to_owned);
        async move {
            let binding = Binding::new(jkt.as_deref(), "mallory");
            v.validate_at(&values, &Method::POST, URL, TOKEN, binding, NOW)
                .await
        }
    };
    // A token bound to b, proofs signed by a: refused before the store.
    for _ in 0..50 {
        let e = at(&proof(&a), Some(&jkt_of(&b))).await.unwrap_err();
        assert_eq!(e.kind(), ProofErrorKind::KeyMismatch);
    }
    // A token bound to nothing.
    let e = at(&proof(&a), None).await.unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::TokenNotBound);
    // Proofs that fail a later check.
    let future = proof_with(&a, |c| {
        c.insert("iat".into(), json!(NOW + 200));
    });
    let e = at(&future, Some(&jkt_of(&a))).await.unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::IatInFuture);
    assert_eq!(cache.len(), 0, "a refused proof was remembered");
    // The good one is remembered, once.
    let good = proof(&a);
    at(&good, Some(&jkt_of(&a))).await.unwrap();
    assert_eq!(cache.len(), 1);
    let e = at(&good, Some(&jkt_of(&a))).await.unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::Replayed);
}

/// One caller flooding the replay store is refused itself (429) at its
/// share; another caller's proofs are still accepted, and so are the
/// flooder's once its entries expire (the clock is the validator's `now`).
#[tokio::test]
async fn one_caller_floods_another_is_still_accepted() {
    let cache = std::sync::Arc::new(
        MemoryReplayCache::with_capacity(1_000)
            .per_principal(20)
            .per_key(30),
    );
    let v = ProofValidator::builder()
        .replay_cache(cache.clone())
        .build()
        .unwrap();
    let (a, b) = (es256(), es256_b());
    let send = |k: &Key, caller: &'static str, at: u64| {
        let p = proof_with(k, |c| {
            c.insert("iat".into(), json!(at));
        });
        let values = [HeaderValue::from_str(&p).unwrap()];
        let (v, jkt) = (v.clone(), jkt_of(k));
        async move {
            v.validate_at(
                &values,
                &Method::POST,
                URL,
                TOKEN,
                Binding::new(Some(&jkt), caller),
                at,
            )
            .await
        }
    };
    let mut accepted = 0;
    for _ in 0..100 {
        match send(&a, "mallory", NOW).await {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e.kind(), ProofErrorKind::ReplayQuotaExceeded);
                assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
            }
        }
    }
    assert_eq!(accepted, 20);
    assert_eq!(cache.len(), 20);
    // Another caller, another key: accepted.
    for _ in 0..10 {
        send(&b, "alice", NOW).await.unwrap();
    }
    // The same key for several callers (a server-side client): bounded per
    // key too, so many callers on one key cannot fill the store either.
    let mut by_key = 0;
    for caller in ["c1", "c2", "c3", "c4"] {
        for _ in 0..5 {
            by_key += usize::from(send(&b, caller, NOW).await.is_ok());
        }
    }
    assert_eq!(by_key, 20, "key b's share is 30, alice holds 10");
    // Once the window has passed, the flooder's entries are gone.
    send(&a, "mallory", NOW + 301).await.unwrap();
}

#[tokio::test]
async fn server_nonces() {
    let nonces = Nonces::new([9u8; 32])
        .unwrap()
        .window(Duration::from_secs(60));
    let v = ProofValidator::builder()
        .nonces(nonces.clone())
        .build()
        .unwrap();
    let k = ed25519();
    let e = run(&v, &[&proof(&k)], Method::POST, URL).await.unwrap_err();
    assert_eq!(e.kind(), ProofErrorKind::NonceMissing);
    assert_eq!(e.error_code(), Some("use_dpop_nonce"));
    assert!(e.is_nonce_error());
    assert!(v
        .challenge(Some(&e))
        .starts_with(r#"DPoP error="use_dpop_nonce""#));
    let stale = nonces.current_at(NOW - 120);
    let p = proof_with(&k, |c| {
        c.insert("nonce".into(), stale.into());
    });
    assert_eq!(kind(&v, &p).await, ProofErrorKind::NonceInvalid);
    let other = Nonces::new([10u8; 32]).unwrap().current_at(NOW);
    let p = proof_with(&k, |c| {
        c.insert("nonce".into(), other.into());
    });
    assert_eq!(kind(&v, &p).await, ProofErrorKind::NonceInvalid);
    for n in [nonces.current_at(NOW), nonces.current_at(NOW - 60)] {
        let p = proof_with(&k, |c| {
            c.insert("nonce".into(), n.into());
        });
        assert!(run(&v, &[&p], Method::POST, URL).await.is_ok());
    }
}

#[test]
fn every_kind_has_a_fixed_safe_message() {
    use ProofErrorKind as K;
    let kinds = [
        K::Missing,
        K::Multiple,
        K::TooLarge,
        K::Malformed,
        K::Type,
        K::Algorithm,
        K::Critical,
        K::MissingJwk,
        K::PrivateJwk,
        K::InvalidJwk,
        K::Signature,
        K::MissingClaim("jti"),
        K::MissingClaim("htm"),
        K::MissingClaim("htu"),
        K::MissingClaim("iat"),
        K::InvalidJti,
        K::HtmMismatch,
        K::InvalidHtu,
        K::HtuMismatch,
        K::IatTooOld,
        K::IatInFuture,
        K::MissingAth,
        K::AthMismatch,
        K::NonceMissing,
        K::NonceInvalid,
        K::Replayed,
        K::KeyMismatch,
        K::TokenNotBound,
        K::ReplayCacheFull,
        K::ReplayStoreUnavailable,
        K::ReplayQuotaExceeded,
    ];
    let mut messages = std::collections::HashSet::new();
    for k in kinds {
        let e = ProofError::new(k);
        let m = e.message();
        assert!(messages.insert(m), "{k:?} shares its message");
        assert!(m.len() < 80 && !m.contains('"') && !m.contains('\\'));
        let c = challenge(&DEFAULT_ALGORITHMS, Some(&e));
        assert!(HeaderValue::from_str(&c).is_ok());
    }
}

/// The layer will hold the future across an await in a `Send` service.
#[test]
fn validate_future_is_send_with_header_map_values() {
    fn assert_send<T: Send>(_: &T) {}
    let v = validator();
    let headers = http::HeaderMap::new();
    let fut = v.validate(
        headers.get_all("dpop"),
        &Method::POST,
        URL,
        TOKEN,
        Binding::new(None, "c"),
    );
    assert_send(&fut);
}

/// DPoP on a JWT layer ([`AuthenticateLayer::dpop`](crate::authenticate::AuthenticateLayer::dpop)):
/// what only a layer can get wrong (the end-to-end cases are in
/// `tests/e2e_dpop.rs`).
mod on_a_layer {
    use super::*;
    use crate::{
        jwt::{
            test_support::{good_claims, hs256, validator as jwt_validator},
            JwtLayer,
        },
        Principal, ProtectedResource,
    };
    use axum::{body::Body, Router};
    use http::{header, Request, StatusCode};
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    fn jkt(k: &Key) -> String {
        let jwk: Jwk = serde_json::from_value(k.jwk.clone()).unwrap();
        jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
    }

    fn bound_token(k: &Key) -> String {
        let mut c = good_claims();
        c["cnf"] = json!({"jkt": jkt(k)});
        hs256(&c)
    }

    /// A proof by `k` for a POST to `htu` with `token`, made now, with
    /// `nonce` when given.
    fn live_proof(k: &Key, htu: &str, token: &str, nonce: Option<&str>) -> String {
        proof_with(k, |c| {
            c.insert("htu".into(), json!(htu));
            c.insert("iat".into(), json!(super::super::nonce::unix_now()));
            c.insert("ath".into(), json!(ath(token)));
            if let Some(n) = nonce {
                c.insert("nonce".into(), json!(n));
            }
        })
    }

    /// `POST /mcp` through `app` with `Authorization: DPoP <token>` and `proof`.
    async fn send(app: Router, token: &str, proof: Option<String>) -> http::Response<Body> {
        let mut req = Request::post("/mcp").header(header::AUTHORIZATION, format!("DPoP {token}"));
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    /// `/mcp` nested in a router, behind the resource's layer (or not) and
    /// a JWT layer with `dpop`; the handler answers the caller's `cnf.jkt`.
    fn app(dpop: Dpop, with_resource: bool) -> Router {
        let resource = ProtectedResource::builder(URL).dpop(&dpop).build().unwrap();
        let svc = ServiceBuilder::new()
            .option_layer(with_resource.then(|| resource.layer()))
            .layer(JwtLayer::new(jwt_validator()).dpop(dpop))
            .service_fn(|req: Request<Body>| async move {
                let who = Principal::from_extensions(req.extensions())
                    .and_then(Principal::cnf_jkt)
                    .unwrap_or("unbound")
                    .to_owned();
                Ok::<_, Infallible>(http::Response::new(Body::from(who)))
            });
        Router::new().nest_service("/mcp", svc)
    }

    #[tokio::test]
    async fn the_htu_is_the_public_url_of_the_nested_service() {
        let k = es256();
        let token = bound_token(&k);
        let dpop = Dpop::new(validator());
        // The service sees `/`; the client addressed the public `/mcp`.
        let res = send(
            app(dpop.clone(), true),
            &token,
            Some(live_proof(&k, URL, &token, None)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let root = "https://mcp.example.com/";
        let res = send(
            app(dpop, true),
            &token,
            Some(live_proof(&k, root, &token, None)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn without_a_protected_resource_no_proof_matches() {
        let k = es256();
        let token = bound_token(&k);
        let res = send(
            app(Dpop::new(validator()), false),
            &token,
            Some(live_proof(&k, URL, &token, None)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let dpop = res
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .nth(1)
            .unwrap();
        assert!(dpop
            .to_str()
            .unwrap()
            .starts_with(r#"DPoP error="invalid_dpop_proof""#));
    }

    #[tokio::test]
    async fn nonces_on_refusals_and_on_accepted_requests() {
        let k = es256();
        let token = bound_token(&k);
        let nonces = Nonces::new([9u8; 32]).unwrap();
        let dpop = Dpop::new(
            ProofValidator::builder()
                .nonces(nonces.clone())
                .build()
                .unwrap(),
        );
        // A nonce of the current window (or, across a turn, the one before).
        let issued = |res: &http::Response<Body>| {
            let n = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
            assert!(nonces.check_at(&n, super::super::nonce::unix_now()));
            n
        };
        let res = send(
            app(dpop.clone(), true),
            &token,
            Some(live_proof(&k, URL, &token, None)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let current = issued(&res);
        let challenges: Vec<_> = res
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .collect();
        assert!(challenges[1]
            .to_str()
            .unwrap()
            .contains(r#"error="use_dpop_nonce""#));
        // No credential at all: the refusal still says which nonce to use.
        let res = app(dpop.clone(), true)
            .oneshot(Request::post("/mcp").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        issued(&res);
        let proof = live_proof(&k, URL, &token, Some(&current));
        let res = send(app(dpop, true), &token, Some(proof)).await;
        assert_eq!(res.status(), StatusCode::OK);
        issued(&res);
    }

    #[tokio::test]
    async fn every_dpop_header_value_is_marked_sensitive() {
        let k = es256();
        let token = bound_token(&k);
        let svc = ServiceBuilder::new()
            .layer(ProtectedResource::builder(URL).build().unwrap().layer())
            .layer(JwtLayer::new(jwt_validator()).dpop(Dpop::new(validator())))
            .service_fn(|req: Request<Body>| async move {
                let sensitive = req.headers()["dpop"].is_sensitive()
                    && req.headers()[header::AUTHORIZATION].is_sensitive();
                Ok::<_, Infallible>(http::Response::new(Body::from(sensitive.to_string())))
            });
        let req = Request::post(URL)
            .header(header::AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", live_proof(&k, URL, &token, None))
            .body(Body::empty())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap();
        assert_eq!(body.to_bytes(), "true");
    }
}
