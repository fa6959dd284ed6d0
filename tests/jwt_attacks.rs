//! End to end over real HTTP: a `JwtLayer` in front of an axum route, the
//! happy paths for every key type, and the attack table — each refused
//! with the exact status, challenge and body, never a panic.
#![cfg(feature = "jwt")]

mod common;

use std::net::SocketAddr;

use axum::{routing::get, Json, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::*;
use secrecy::SecretString;
use serde_json::{json, Value};
use tower_mcp_auth::{
    jwt::{Algorithm, JwtKey, JwtLayer, JwtValidator},
    Principal, ProtectedResource,
};

const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

async fn whoami(p: Principal) -> Json<Value> {
    Json(json!({
        "sub": p.subject(),
        "scheme": p.scheme().as_str(),
        "scopes": p.scopes(),
        "client_id": p.client_id(),
    }))
}

async fn app(optional: bool) -> SocketAddr {
    app_with(move |l| if optional { l.optional() } else { l }).await
}

async fn app_with(mode: impl FnOnce(JwtLayer) -> JwtLayer) -> SocketAddr {
    let resource = ProtectedResource::builder(AUD).build().unwrap();
    let validator = JwtValidator::builder(&resource)
        .key(
            JwtKey::rsa_pem(Algorithm::RS256, &fixture("rsa1_public.pem"))
                .unwrap()
                .with_kid("rsa1"),
        )
        .key(
            JwtKey::ec_pem(Algorithm::ES256, &fixture("ec256_public.pem"))
                .unwrap()
                .with_kid("ec"),
        )
        .key(
            JwtKey::ed25519_pem(&fixture("ed25519_public.pem"))
                .unwrap()
                .with_kid("ed"),
        )
        .hs256_secret(&SecretString::from(HS_SECRET))
        .build()
        .unwrap();
    let layer = mode(JwtLayer::new(validator));
    let app = Router::new()
        .route("/mcp", get(whoami))
        .route(
            "/open",
            get(|p: Option<Principal>| async move {
                p.map_or("anonymous".to_owned(), |p| p.name().to_owned())
            }),
        )
        .layer(layer)
        .layer(resource.layer())
        .merge(resource.router());
    serve(app).await
}

async fn call(addr: SocketAddr, path: &str, auth: &[String]) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    for a in auth {
        req = req.header("authorization", a);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, res.text().await.unwrap())
}

#[tokio::test]
async fn every_key_type_is_accepted_end_to_end() {
    let addr = app(false).await;
    for signer in [
        Signer::rsa("rsa1_private.pem", "rsa1"),
        Signer::ec("ec"),
        Signer::ed("ed"),
        Signer::hs(HS_SECRET, None),
    ] {
        let mut c = claims("alice");
        c["client_id"] = json!("cli-1");
        let (status, _, body) = call(addr, "/mcp", &[format!("Bearer {}", signer.sign(&c))]).await;
        assert_eq!(status, 200, "{:?}: {body}", signer.alg);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"sub": "alice", "scheme": "jwt", "scopes": ["read:data"], "client_id": "cli-1"})
        );
    }
    // The metadata the challenge points to is served next to it.
    let body = reqwest::get(format!(
        "http://{addr}/.well-known/oauth-protected-resource/mcp"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(body.contains(AUD));
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// The attack table: (name, Authorization values, expected status,
/// expected error_description).
fn attacks() -> Vec<(&'static str, Vec<String>, u16, &'static str)> {
    let rsa = Signer::rsa("rsa1_private.pem", "rsa1");
    let hs = Signer::hs(HS_SECRET, None);
    let good = rsa.sign(&claims("alice"));
    let exp = now() + 600;
    let payload = |extra: &str| format!(r#"{{"sub":"alice","aud":"{AUD}"{extra}}}"#);

    // HS256 "signed" with the RSA public key (alg confusion).
    let public_pem = String::from_utf8(fixture("rsa1_public.pem")).unwrap();
    let confused = Signer::hs(&public_pem, Some("rsa1")).sign(&claims("alice"));
    let confused_no_kid = Signer::hs(&public_pem, None).sign(&claims("alice"));

    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","kid":"rsa1"}"#),
        b64(&payload(&format!(r#","exp":{exp}"#)))
    );
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let tampered_payload = {
        let forged = b64(&payload(&format!(r#","exp":{exp},"scope":"admin""#)));
        format!("{}.{forged}.{}", parts[0], parts[2])
    };
    let tampered_sig = {
        let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
        sig[10] ^= 0x01;
        parts[2] = URL_SAFE_NO_PAD.encode(sig);
        parts.join(".")
    };
    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 3600);
    let mut future = claims("alice");
    future["nbf"] = json!(now() + 3600);
    let mut wrong_aud = claims("alice");
    wrong_aud["aud"] = json!("https://attacker.example.com/mcp");
    let mut no_exp = claims("alice");
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut string_exp = claims("alice");
    string_exp["exp"] = json!(exp.to_string());
    let unknown_kid = Signer::rsa("rsa2_private.pem", "rsa-unknown").sign(&claims("alice"));
    let duplicate = hs.sign_raw(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!(r#"{{"sub":"alice","aud":"{AUD}","exp":{exp},"sub":"admin"}}"#),
    );
    let bearer = |t: &str| vec![format!("Bearer {t}")];
    vec![
        (
            "alg none",
            bearer(&none),
            401,
            "the token's algorithm is not supported",
        ),
        (
            "HS256 with the RSA public key",
            bearer(&confused),
            401,
            "the token's algorithm does not match its key",
        ),
        (
            "HS256 with the RSA public key, no kid",
            bearer(&confused_no_kid),
            401,
            "the token's signature is not valid",
        ),
        (
            "expired",
            bearer(&rsa.sign(&expired)),
            401,
            "the token has expired",
        ),
        (
            "nbf in the future",
            bearer(&rsa.sign(&future)),
            401,
            "the token is not valid yet",
        ),
        (
            "wrong aud",
            bearer(&rsa.sign(&wrong_aud)),
            401,
            "the token is not for this resource",
        ),
        (
            "missing exp",
            bearer(&rsa.sign(&no_exp)),
            401,
            "the token's exp claim is missing or not a number",
        ),
        (
            "exp as a string",
            bearer(&rsa.sign(&string_exp)),
            401,
            "the token's exp claim is missing or not a number",
        ),
        (
            "tampered payload",
            bearer(&tampered_payload),
            401,
            "the token's signature is not valid",
        ),
        (
            "tampered signature",
            bearer(&tampered_sig),
            401,
            "the token's signature is not valid",
        ),
        (
            "unknown kid",
            bearer(&unknown_kid),
            401,
            "the token's signing key is unknown",
        ),
        (
            "truncated",
            bearer(&good[..good.len() - 21]),
            401,
            "the token is malformed",
        ),
        (
            "truncated to two segments",
            bearer(good.rsplit_once('.').unwrap().0),
            401,
            "the token is malformed",
        ),
        (
            "not base64",
            bearer("!!!.@@@.###"),
            401,
            "the token is malformed",
        ),
        (
            "64 KiB token",
            bearer(&"a".repeat(64 * 1024)),
            401,
            "the token is too large",
        ),
        (
            "two Authorization headers",
            vec![format!("Bearer {good}"), format!("Bearer {good}")],
            400,
            "more than one Authorization header was sent",
        ),
        (
            "Bearer with no token",
            vec!["Bearer".into()],
            401,
            "the bearer token is empty",
        ),
        (
            "Bearer and spaces",
            vec!["Bearer   ".into()],
            401,
            "the bearer token is empty",
        ),
        (
            "JSON with duplicate keys",
            bearer(&duplicate),
            401,
            "the token is malformed",
        ),
    ]
}

#[tokio::test]
async fn attack_table_is_refused_in_both_modes() {
    for optional in [false, true] {
        let addr = app(optional).await;
        for (name, auth, status, description) in attacks() {
            let (got, challenge, body) = call(addr, "/mcp", &auth).await;
            assert_eq!(got, status, "{name} (optional: {optional}): {body}");
            let error = if status == 400 {
                "invalid_request"
            } else {
                "invalid_token"
            };
            assert_eq!(
                challenge,
                format!(
                    r#"Bearer error="{error}", error_description="{description}", resource_metadata="{METADATA}""#
                ),
                "{name}"
            );
            assert_eq!(
                serde_json::from_str::<Value>(&body).unwrap(),
                json!({"error": error, "error_description": description}),
                "{name}"
            );
            for a in &auth {
                let token = a.trim_start_matches("Bearer").trim();
                if token.len() > 8 {
                    assert!(
                        !body.contains(token) && !challenge.contains(token),
                        "{name} echoed"
                    );
                }
            }
        }
        // The server is still up and well after all of that.
        let ok = Signer::ed("ed").sign(&claims("still-up"));
        let (got, _, _) = call(addr, "/mcp", &[format!("Bearer {ok}")]).await;
        assert_eq!(got, 200);
    }
}

#[tokio::test]
async fn optional_mode_stacking_rule() {
    let required = app(false).await;
    let optional = app(true).await;
    // No token: required → 401 with the bare challenge; optional → anonymous.
    let (status, challenge, _) = call(required, "/open", &[]).await;
    assert_eq!(
        (status, challenge.as_str()),
        (
            401,
            format!(r#"Bearer resource_metadata="{METADATA}""#).as_str()
        )
    );
    let (status, _, body) = call(optional, "/open", &[]).await;
    assert_eq!((status, body.as_str()), (200, "anonymous"));
    // An opaque token: a presented credential nobody verifies is 401
    // `invalid_token` in both modes, never anonymous.
    let opaque = vec!["Bearer 2YotnFZFEjr1zCsicMWpAA".to_owned()];
    for app in [required, optional] {
        let (status, challenge, body) = call(app, "/open", &opaque).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("the bearer token is not a JWT"), "{body}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
    // Handed on for an introspection layer that the stack lacks: the
    // `Option<Principal>` extractor at the end refuses it.
    let handing = app_with(|l| l.optional().pass_opaque_tokens()).await;
    let (status, challenge, body) = call(handing, "/open", &opaque).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("no layer could verify the bearer token"),
        "{body}"
    );
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let (status, _, body) = call(handing, "/open", &[]).await;
    assert_eq!((status, body.as_str()), (200, "anonymous"));
    // Another scheme is not ours either.
    let basic = vec!["Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_owned()];
    let (status, _, body) = call(optional, "/open", &basic).await;
    assert_eq!((status, body.as_str()), (200, "anonymous"));
    // A JWT-shaped token that fails is 401 in both.
    let mut bad = claims("alice");
    bad["exp"] = json!(1);
    let bad = vec![format!("Bearer {}", Signer::ed("ed").sign(&bad))];
    assert_eq!(call(optional, "/open", &bad).await.0, 401);
    assert_eq!(call(required, "/open", &bad).await.0, 401);
}
