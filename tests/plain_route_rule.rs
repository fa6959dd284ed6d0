//! One rule language for MCP calls and plain routes (issue 17, item 6), as
//! a user writes it: an axum `/admin` route that takes "an API key, or a
//! bearer token with `admin:write`" with the same `Rule` the MCP policy
//! uses, served on loopback; and API keys from an environment variable
//! carrying scopes (`name:key:scope scope`) next to a bare key.

mod common;

use axum::{routing::post, Router};
use common::{claims, serve, Signer, HS_SECRET};
use http::StatusCode;
use secrecy::SecretString;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKeyLayer, ApiKeys},
    jwt::{JwtLayer, JwtValidator},
    AuthorizeLayer, Principal, ProtectedResource, Rule,
};

const OPS_KEY: &str = "mcp_sk_ops-0123456789abcdef0123";
const BARE_KEY: &str = "mcp_sk_bare-0123456789abcdef012";

async fn app() -> String {
    let resource = ProtectedResource::builder(common::AUD).build().unwrap();
    // As `ADMIN_KEYS="ops:<key>:admin:write read:data,<key>"` would be read
    // by `ApiKeys::from_env("ADMIN_KEYS")`.
    let keys = ApiKeys::from_list(
        "ADMIN_KEYS",
        &SecretString::from(format!("ops:{OPS_KEY}:admin:write read:data,{BARE_KEY}")),
    )
    .unwrap();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(HS_SECRET))
        .build()
        .unwrap();
    let who = |p: Principal| async move { format!("{} {}", p.name(), p.scopes()) };
    let guarded = |rule: Rule| {
        ServiceBuilder::new()
            .layer(resource.layer())
            .layer(ApiKeyLayer::new(keys.clone()).optional())
            .layer(JwtLayer::new(validator.clone()).optional())
            .layer(AuthorizeLayer::new(rule).unwrap())
    };
    let app = Router::new()
        .route(
            "/admin",
            post(who).layer(guarded(
                Rule::api_key().or(Rule::bearer().scopes(["admin:write"])),
            )),
        )
        .route(
            "/scoped",
            post(who).layer(guarded(Rule::authenticated().scopes(["admin:write"]))),
        );
    format!("http://{}", serve(app).await)
}

async fn send(url: &str, key: Option<&str>, token: Option<&str>) -> (StatusCode, String, String) {
    let mut req = reqwest::Client::new().post(url);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, res.text().await.unwrap())
}

fn token(scope: &str) -> String {
    let mut c = claims("alice");
    c["scope"] = scope.into();
    Signer::hs(HS_SECRET, None).sign(&c)
}

#[tokio::test]
async fn an_api_key_or_a_bearer_token_with_admin_write_on_a_plain_route() {
    let base = app().await;
    let admin = format!("{base}/admin");
    let metadata = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    let (status, _, body) = send(&admin, Some(BARE_KEY), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "admin_keys "));
    let (status, _, body) = send(&admin, None, Some(&token("admin:write"))).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "alice admin:write")
    );

    // A bearer token without the scope: 403 step-up, as the MCP policy answers.
    let (status, challenge, _) = send(&admin, None, Some(&token("read:data"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        challenge,
        format!(
            r#"Bearer error="insufficient_scope", error_description="the access token lacks a scope this call requires", scope="admin:write read:data", resource_metadata="{metadata}""#
        )
    );
    // No credential: 401 naming what a bearer token needs.
    let (status, challenge, _) = send(&admin, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge,
        format!(r#"Bearer scope="admin:write", resource_metadata="{metadata}""#)
    );
    // A wrong key is still 401 from the key layer, never anonymous.
    let (status, _, _) = send(&admin, Some("mcp_sk_wrong-0123456789abcdef"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn keys_from_the_environment_carry_their_scopes() {
    let base = app().await;
    let scoped = format!("{base}/scoped");
    // The named key grants admin:write; the bare key grants nothing.
    let (status, _, body) = send(&scoped, Some(OPS_KEY), None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "ops admin:write read:data")
    );
    let (status, challenge, _) = send(&scoped, Some(BARE_KEY), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.contains(r#"scope="admin:write""#), "{challenge}");
}

/// Issue 25 item 4: an API-key-only route offers no OAuth. Under a
/// resource that advertises DPoP, `/admin/stats` behind a required
/// `ApiKeyLayer` and `Rule::api_key()` (and the same rule behind an
/// optional key layer) answers 401 with an `ApiKey` challenge only: no
/// `Bearer resource_metadata=…`, no `DPoP algs=…`. A route that also takes
/// bearer tokens still offers them. On the old code every one of these
/// 401s carried `Bearer …resource_metadata` and `DPoP algs`.
#[tokio::test]
async fn an_api_key_only_route_offers_no_oauth_in_its_challenge() {
    let resource = ProtectedResource::builder(common::AUD)
        .dpop_signing_alg_values_supported(["ES256"])
        .build()
        .unwrap();
    let keys = ApiKeys::from_list(
        "ADMIN_KEYS",
        &SecretString::from(format!("ops:{OPS_KEY}:admin:write")),
    )
    .unwrap();
    let who = |p: Principal| async move { p.name().to_owned() };
    let app = Router::new()
        .route(
            "/admin/stats",
            post(who).layer(
                ServiceBuilder::new()
                    .layer(resource.layer())
                    .layer(ApiKeyLayer::new(keys.clone()))
                    .layer(AuthorizeLayer::new(Rule::api_key()).unwrap()),
            ),
        )
        .route(
            "/admin/optional",
            post(who).layer(
                ServiceBuilder::new()
                    .layer(resource.layer())
                    .layer(ApiKeyLayer::new(keys.clone()).optional())
                    .layer(AuthorizeLayer::new(Rule::api_key()).unwrap()),
            ),
        )
        .route(
            "/either",
            post(who).layer(
                ServiceBuilder::new()
                    .layer(resource.layer())
                    .layer(ApiKeyLayer::new(keys).optional())
                    .layer(AuthorizeLayer::new(Rule::api_key().or(Rule::bearer())).unwrap()),
            ),
        );
    let base = format!("http://{}", serve(app).await);
    let challenges = |res: &reqwest::Response| -> Vec<String> {
        res.headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let post_to = |path: &str, key: Option<&str>| {
        let mut req = reqwest::Client::new().post(format!("{base}{path}"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send()
    };

    for path in ["/admin/stats", "/admin/optional"] {
        let res = post_to(path, None).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(challenges(&res), ["ApiKey"], "{path}");
        let res = post_to(path, Some(OPS_KEY)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    // A wrong key on the required key layer: the error in the `ApiKey`
    // challenge, still no OAuth.
    let res = post_to("/admin/stats", Some("mcp_sk_wrong-0123456789abcdef"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let got = challenges(&res);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(r#"ApiKey error="invalid_token""#),
        "{got:?}"
    );
    assert!(!got[0].contains("resource_metadata"), "{got:?}");

    // A route that also takes bearer tokens offers them.
    let res = post_to("/either", None).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let got = challenges(&res);
    assert!(
        got[0].starts_with("Bearer ") && got[0].contains("resource_metadata="),
        "{got:?}"
    );
    assert!(got.iter().any(|c| c.starts_with("DPoP algs=")), "{got:?}");
}
