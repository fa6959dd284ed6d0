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

#[tokio::test]
async fn rotation_new_kid_is_fetched_and_removed_key_stops_working() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let rsa2 = Signer::rsa("rsa2_private.pem", "rsa2");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_min_refetch_interval(Duration::from_millis(200))
        .jwks_refresh_interval(Duration::from_millis(700))
        .build()
        .unwrap();

    let old_token = rsa1.sign(&claims("alice"));
    assert_eq!(v.verify(&old_token).await.unwrap().subject(), "alice");
    assert_eq!(server.hits(), 1, "first use fetches the keys once");

    // A new key appears: a token naming it triggers one refetch.
    server.set_keys(vec![rsa1.jwk(), rsa2.jwk()]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let new_token = rsa2.sign(&claims("bob"));
    assert_eq!(v.verify(&new_token).await.unwrap().subject(), "bob");
    assert_eq!(server.hits(), 2);

    // The old key is removed: once the background refresh sees it, tokens
    // signed with it are refused, cached ones included.
    server.set_keys(vec![rsa2.jwk()]);
    assert!(
        v.verify(&old_token).await.is_ok(),
        "still cached until refresh"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(server.hits() >= 3, "the background refresh ran");
    let e = v.verify(&old_token).await.unwrap_err();
    assert_eq!(e.description(), "the token's signing key is unknown");
    assert!(v.verify(&new_token).await.is_ok());
}

#[tokio::test]
async fn a_key_published_within_the_interval_is_not_known_yet_then_accepted() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let rsa2 = Signer::rsa("rsa2_private.pem", "rsa2");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_min_refetch_interval(Duration::from_millis(1500))
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
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(1500),
        "{wait:?}"
    );
    let refusal = tower_mcp_auth::AuthError::from(e);
    assert_eq!(refusal.status(), 503);
    assert_eq!(server.hits(), 1);
    // Once the wait is over, the fetch finds it.
    tokio::time::sleep(wait).await;
    assert_eq!(v.verify(&new_token).await.unwrap().subject(), "bob");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn never_fetched_is_503_over_http() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    server.set_down(true);
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/mcp",
            get(|p: Principal| async move { p.subject().to_owned() }),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_flood_costs_one_fetch_per_interval() {
    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    server.set_delay(150);
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .jwks_min_refetch_interval(Duration::from_millis(1000))
        .build()
        .unwrap();

    // Sign every wave first (RSA signing is slow in debug builds), then
    // fire each wave at once.
    let mut attacker = Signer::rsa("rsa1_private.pem", "x");
    let mut waves: Vec<Vec<String>> = (0..3)
        .map(|w| {
            (0..100)
                .map(|i| {
                    attacker.kid = Some(format!("attacker-{w}-{i}"));
                    attacker.sign(&claims("mallory"))
                })
                .collect()
        })
        .collect();
    // A wave that causes a fetch is 401 (the fetched set lacks the kid;
    // a straggler that starts after the fetch is over may get the 503 of
    // the interval); one within the interval cannot be decided yet: 503.
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
            let mut invalid = 0;
            for t in tasks {
                let e = t.await.unwrap().unwrap_err();
                if e.kind() == JwtErrorKind::Invalid {
                    assert!(fetched);
                    assert_eq!(e.description(), "the token's signing key is unknown");
                    invalid += 1;
                } else {
                    assert_eq!(e.kind(), JwtErrorKind::Unavailable);
                    let wait = e.retry_after().unwrap();
                    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
                }
            }
            // Most of a fetching wave waited for the fetch.
            assert_eq!(fetched, invalid > 50, "{invalid} of 100 were 401");
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
    tokio::time::sleep(Duration::from_millis(1100)).await;
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
    assert_eq!(v.verify(&ec.sign(&c)).await.unwrap().subject(), "erin");
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

    let slow = JwksServer::start(vec![rsa1.jwk()]).await;
    slow.set_delay(2000);
    let timed = JwtValidator::builder(&resource())
        .jwks_url(slow.url())
        .jwks_fetch_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let e = timed.verify(&rsa1.sign(&claims("gina"))).await.unwrap_err();
    assert_eq!(e.kind(), JwtErrorKind::Unavailable);
    assert!(started.elapsed() < Duration::from_millis(1500));
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
    assert_eq!(v.verify(&local).await.unwrap().subject(), "local-user");
    // The authorization server's tokens must carry its issuer.
    let e = v.verify(&rsa1.sign(&claims("remote"))).await.unwrap_err();
    assert_eq!(e.description(), "the token has no issuer");
    let mut c = claims("remote");
    c["iss"] = json!("https://auth.example.com");
    assert_eq!(v.verify(&rsa1.sign(&c)).await.unwrap().subject(), "remote");
}
