//! Remote JWKS: rotation, outage (stale keys keep working; never fetched →
//! 503), a flood of unknown `kid`s, discovery, HMAC keys, size and time caps.
#![cfg(feature = "jwks")]

mod common;

use std::time::Duration;

use axum::{routing::get, Router};
use common::*;
use serde_json::json;
use tower_mcp_auth::{
    jwt::{JwtErrorKind, JwtLayer, JwtValidator},
    Principal, ProtectedResource,
};

fn resource() -> ProtectedResource {
    ProtectedResource::builder(AUD).build().unwrap()
}

/// A refetch interval no test run can outlast by itself: "within the
/// interval" never depends on how fast the machine is.
const LONG: Duration = Duration::from_secs(3600);

/// Moves Tokio's clock (the JWKS intervals and background refresh run on
/// it) forward by `by`, at once: time is paused only while no HTTP
/// exchange is in flight, so no fetch timeout fires early.
async fn jump(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Claims issued `ago` seconds before now.
fn claims_issued(sub: &str, ago: u64) -> serde_json::Value {
    let mut c = claims(sub);
    c["iat"] = json!(now() - ago);
    c
}

#[tokio::test]
async fn rotation_new_kid_is_fetched_and_removed_key_stops_working() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let rsa2 = Signer::rsa("rsa2_private.pem", "rsa2");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_min_refetch_interval(LONG)
        .jwks_refresh_interval(2 * LONG)
        .build()
        .unwrap();

    // Issued a while ago, as a token in use during a rotation is.
    let old_token = rsa1.sign(&claims_issued("alice", 120));
    assert_eq!(v.verify(&old_token).await.unwrap().subject(), Some("alice"));
    assert_eq!(server.hits(), 1, "first use fetches the keys once");

    // A new key appears: a token naming it triggers one refetch once the
    // interval has passed.
    server.set_keys(vec![rsa1.jwk(), rsa2.jwk()]);
    jump(LONG).await;
    let new_token = rsa2.sign(&claims("bob"));
    assert_eq!(v.verify(&new_token).await.unwrap().subject(), Some("bob"));
    assert_eq!(server.hits(), 2);

    // The old key is removed: once the background refresh sees it, tokens
    // signed with it are refused, cached ones included.
    server.set_keys(vec![rsa2.jwk()]);
    assert!(
        v.verify(&old_token).await.is_ok(),
        "still cached until refresh"
    );
    jump(2 * LONG).await;
    // The background refresh is due: wait for its result (however long
    // the fetch takes), with a cap only against a hang.
    tokio::time::timeout(Duration::from_secs(60), async {
        while v.verify(&old_token).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the background refresh ran");
    assert_eq!(server.hits(), 3, "one background fetch");
    let e = v.verify(&old_token).await.unwrap_err();
    assert_eq!(e.description(), "the token's signing key is unknown");
    assert!(v.verify(&new_token).await.is_ok());
    assert_eq!(server.hits(), 3);
}

/// Issue 23 6f: after the server has fetched a key set without the key,
/// a token issued before that fetch is 401 at once (no 503, no fetch),
/// however long after; a token issued since may name a key published
/// since, and is "not known yet".
#[tokio::test]
async fn a_removed_key_is_401_at_once_for_tokens_issued_before_the_fetch() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let rsa2 = Signer::rsa("rsa2_private.pem", "rsa2");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_min_refetch_interval(LONG)
        .jwks_refresh_interval(10 * LONG)
        .build()
        .unwrap();
    let old_token = rsa1.sign(&claims_issued("alice", 120));
    assert!(v.verify(&old_token).await.is_ok());

    // The authorization server rotates: rsa1 leaves the set. A token of
    // the new key makes the validator fetch the new set.
    server.set_keys(vec![rsa2.jwk()]);
    jump(LONG).await;
    assert_eq!(
        v.verify(&rsa2.sign(&claims("bob")))
            .await
            .unwrap()
            .subject(),
        Some("bob")
    );
    assert_eq!(server.hits(), 2);

    // Tokens of the removed key, issued before that fetch: 401, never
    // 503, and no fetch, within the interval and after it.
    for round in 0..2 {
        if round == 1 {
            jump(LONG).await;
        }
        for ago in [120, 3600] {
            let e = v
                .verify(&rsa1.sign(&claims_issued("alice", ago)))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), JwtErrorKind::Invalid, "round {round}");
            assert_eq!(e.description(), "the token's signing key is unknown");
            assert_eq!(e.retry_after(), None);
            let refusal = tower_mcp_auth::AuthError::from(e);
            assert_eq!(refusal.status(), 401);
        }
        assert_eq!(server.hits(), 2, "no fetch for a key that left the set");
    }
    // A made-up kid on an old token is the same: no fetch.
    let mut forger = Signer::rsa("rsa1_private.pem", "made-up");
    let e = v
        .verify(&forger.sign(&claims_issued("mallory", 120)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), JwtErrorKind::Invalid);
    assert_eq!(server.hits(), 2);

    // A token issued now, or without iat, may name a key published since
    // the last fetch: one fetch when allowed (then 401), and within the
    // interval "not known yet" (503 with the wait).
    forger.kid = Some("published-since".into());
    let fresh = forger.sign(&claims("mallory"));
    let mut no_iat = claims("mallory");
    no_iat.as_object_mut().unwrap().remove("iat");
    let no_iat = forger.sign(&no_iat);
    let e = v.verify(&fresh).await.unwrap_err();
    assert_eq!(e.kind(), JwtErrorKind::Invalid);
    assert_eq!(server.hits(), 3, "the interval had passed: one fetch");
    for token in [&fresh, &no_iat] {
        let e = v.verify(token).await.unwrap_err();
        assert_eq!(e.kind(), JwtErrorKind::Unavailable);
        assert!(e.retry_after().unwrap() > Duration::ZERO);
    }
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn a_key_published_within_the_interval_is_not_known_yet_then_accepted() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let rsa2 = Signer::rsa("rsa2_private.pem", "rsa2");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_min_refetch_interval(LONG)
        .jwks_refresh_interval(10 * LONG)
        .build()
        .unwrap();
    assert!(v.verify(&rsa1.sign(&claims("alice"))).await.is_ok());
    // The server rotates and signs with a key we have not fetched, within
    // the interval: cannot decide yet, 503 with the wait, no fetch.
    server.set_keys(vec![rsa1.jwk(), rsa2.jwk()]);
    let new_token = rsa2.sign(&claims("bob"));
    let e = v.verify(&new_token).await.unwrap_err();
    assert_eq!(e.kind(), JwtErrorKind::Unavailable);
    let wait = e.retry_after().unwrap();
    assert!(wait > Duration::ZERO && wait <= LONG, "{wait:?}");
    let refusal = tower_mcp_auth::AuthError::from(e);
    assert_eq!(refusal.status(), 503);
    assert_eq!(server.hits(), 1);
    // Once the wait is over, the fetch finds it.
    jump(wait).await;
    assert_eq!(v.verify(&new_token).await.unwrap().subject(), Some("bob"));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn never_fetched_is_503_over_http() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    server.set_down(true);
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_min_refetch_interval(LONG)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/mcp",
            get(|p: Principal| async move { p.name().to_owned() }),
        )
        .layer(JwtLayer::new(v.clone()));
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let res = client
        .get(format!("http://{addr}/mcp"))
        .bearer_auth(rsa1.sign(&claims("dave")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"error":"temporarily_unavailable","error_description":"the token signing keys are not available yet","retry_after":5}"#
    );
    // A second request within the refetch interval does not hammer the
    // server, and is still 503.
    let res = client
        .get(format!("http://{addr}/mcp"))
        .bearer_auth(rsa1.sign(&claims("dave")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(server.hits(), 1);

    // The server comes back: an explicit refresh makes it work.
    server.set_down(false);
    v.refresh_keys().await.unwrap();
    let res = client
        .get(format!("http://{addr}/mcp"))
        .bearer_auth(rsa1.sign(&claims("dave")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "dave");
}

/// A flood of made-up `kid`s costs one fetch per interval, however many
/// arrive and whatever `iat` they claim. Deterministic: one thread runs
/// every verification of a wave up to its fetch before that fetch's task
/// runs, and the interval is an hour of Tokio's clock, jumped over.
#[tokio::test]
async fn unknown_kid_flood_costs_one_fetch_per_interval() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_min_refetch_interval(LONG)
        .jwks_refresh_interval(10 * LONG)
        .build()
        .unwrap();

    // Sign every wave first. The attacker claims the iat that buys the
    // most: none, or one in the future (both "possibly new").
    let mut attacker = Signer::rsa("rsa1_private.pem", "x");
    let mut waves: Vec<Vec<String>> = (0..3)
        .map(|w| {
            (0..100)
                .map(|i| {
                    attacker.kid = Some(format!("attacker-{w}-{i}"));
                    let mut c = claims("mallory");
                    if i % 2 == 0 {
                        c.as_object_mut().unwrap().remove("iat");
                    } else {
                        c["iat"] = json!(now() + 3600);
                    }
                    attacker.sign(&c)
                })
                .collect()
        })
        .collect();
    // A wave that causes a fetch is 401 (every asker waits for the one
    // fetch, whose set lacks the kid); one within the interval cannot be
    // decided yet: 503.
    let mut wave = |fetched: bool| {
        let v = v.clone();
        let tokens = waves.remove(0);
        async move {
            let tasks: Vec<_> = tokens
                .into_iter()
                .map(|token| {
                    let v = v.clone();
                    tokio::spawn(async move { v.verify(&token).await })
                })
                .collect();
            for t in tasks {
                let e = t.await.unwrap().unwrap_err();
                if fetched {
                    assert_eq!(e.kind(), JwtErrorKind::Invalid);
                    assert_eq!(e.description(), "the token's signing key is unknown");
                } else {
                    assert_eq!(e.kind(), JwtErrorKind::Unavailable);
                    let wait = e.retry_after().unwrap();
                    assert!(wait > Duration::ZERO && wait <= LONG);
                }
            }
        }
    };
    // Never fetched: 100 concurrent askers share one fetch.
    wave(true).await;
    assert_eq!(server.hits(), 1);
    assert_eq!(v.jwks_fetch_count(), 1);
    // Within the interval: no fetch at all.
    wave(false).await;
    assert_eq!(server.hits(), 1);
    // After it: one more, however many ask.
    jump(LONG).await;
    wave(true).await;
    assert_eq!(server.hits(), 2);
    // The real key still works throughout.
    assert!(v.verify(&rsa1.sign(&claims("alice"))).await.is_ok());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn discovery_from_issuer_metadata() {
    let ec = Signer::ec("ec-1");
    let server = JwksServer::start(vec![ec.jwk()]).await;
    let v = JwtValidator::builder(&resource())
        .jwks_from_issuer(server.base.clone())
        .build()
        .unwrap();
    let mut c = claims("erin");
    c["iss"] = json!(server.base);
    assert_eq!(
        v.verify(&ec.sign(&c)).await.unwrap().subject(),
        Some("erin")
    );
    let e = v.verify(&ec.sign(&claims("erin"))).await.unwrap_err();
    assert_eq!(e.description(), "the token has no issuer");
    c["iss"] = json!("https://evil.example.com");
    let e = v.verify(&ec.sign(&c)).await.unwrap_err();
    assert_eq!(e.description(), "the token's issuer is not trusted");
}

#[tokio::test]
async fn remote_hmac_keys_are_ignored_unless_allowed() {
    let secret = "a-shared-secret-published-by-mistake!!";
    let hs = Signer::hs(secret, Some("h1"));
    let ed = Signer::ed("ed-1");
    let server = JwksServer::start(vec![hs.jwk(), ed.jwk()]).await;
    let token = hs.sign(&claims("frank"));
    let strict = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .build()
        .unwrap();
    let e = strict.verify(&token).await.unwrap_err();
    assert_eq!(e.description(), "the token's signing key is unknown");
    assert!(strict.verify(&ed.sign(&claims("frank"))).await.is_ok());

    let lax = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_allow_hmac(true)
        .build()
        .unwrap();
    assert!(lax.verify(&token).await.is_ok());
}

#[tokio::test]
async fn oversized_or_slow_jwks_is_never_trusted() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    server.set_jwks(json!({"keys": [rsa1.jwk()], "padding": "x".repeat(4096)}));
    let capped = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_max_response_bytes(2048)
        .build()
        .unwrap();
    let e = capped
        .verify(&rsa1.sign(&claims("gina")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), JwtErrorKind::Unavailable);

    // A server that would answer in an hour: only the fetch timeout can
    // end the wait (the outer timeout is a cap against a hang).
    let slow = JwksServer::start(vec![rsa1.jwk()]).await;
    slow.set_delay(3_600_000);
    let timed = JwtValidator::builder(&resource())
        .jwks_url(slow.url())
        .jwks_fetch_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        timed.verify(&rsa1.sign(&claims("gina"))),
    )
    .await
    .expect("the fetch timeout ended the wait")
    .unwrap_err();
    assert_eq!(e.kind(), JwtErrorKind::Unavailable);
}

#[tokio::test]
async fn remote_keys_pinned_to_their_issuer_beside_a_local_secret() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    let v = JwtValidator::builder(&resource())
        .hs256_secret(&secrecy::SecretString::from(HS_SECRET))
        .jwks_url(server.url())
        .jwks_issuer("https://auth.example.com")
        .build()
        .unwrap();
    // A local HS256 token needs no issuer.
    let local = Signer::hs(HS_SECRET, None).sign(&claims("local-user"));
    assert_eq!(
        v.verify(&local).await.unwrap().subject(),
        Some("local-user")
    );
    // The authorization server's tokens must carry its issuer.
    let e = v.verify(&rsa1.sign(&claims("remote"))).await.unwrap_err();
    assert_eq!(e.description(), "the token has no issuer");
    let mut c = claims("remote");
    c["iss"] = json!("https://auth.example.com");
    assert_eq!(
        v.verify(&rsa1.sign(&c)).await.unwrap().subject(),
        Some("remote")
    );
}
