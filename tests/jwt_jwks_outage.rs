//! JWKS outage: the last good keys keep working and an audit event says so.
//! (Its own test binary: it installs a thread-local `tracing` subscriber.)
#![cfg(feature = "jwks")]

mod common;

use common::*;
use tower_mcp_auth::{
    jwt::{JwtErrorKind, JwtValidator},
    ProtectedResource,
};

fn resource() -> ProtectedResource {
    ProtectedResource::builder(AUD).build().unwrap()
}

#[tokio::test]
async fn outage_serves_stale_keys_and_says_so() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rsa1 = Signer::rsa("rsa1_private.pem", "rsa1");
    let server = JwksServer::start(vec![rsa1.jwk()]).await;
    let v = JwtValidator::builder(&resource())
        .jwks_url(server.url())
        .no_token_cache()
        .build()
        .unwrap();
    v.refresh_keys().await.unwrap();
    server.set_down(true);
    let e = v.refresh_keys().await.unwrap_err();
    assert_eq!(e.kind(), JwtErrorKind::Unavailable);
    // Every token is verified against the stale keys (no token cache).
    for _ in 0..3 {
        assert!(v.verify(&rsa1.sign(&claims("carol"))).await.is_ok());
    }
    let log = captured.text();
    assert!(log.contains("outcome=\"degraded\""), "{log}");
    assert!(log.contains("serving the last good keys"), "{log}");
    assert!(!log.contains("eyJ"), "no token in the audit trail");
}
