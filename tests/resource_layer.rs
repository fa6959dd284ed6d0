//! One `ProtectedResourceLayer` at the top of the stack gives every
//! refusal below it the resource's `resource_metadata` challenge: the 401
//! of each authenticator (API key, JWT, introspection), the policy's 401
//! and 403. Without it the same requests get the same statuses and errors,
//! with a challenge that names no metadata. The rate limiter's 429 carries
//! no `WWW-Authenticate` either way (RFC 6750 challenges are for 401 and
//! 403).

mod common;

use std::{collections::HashMap, convert::Infallible, time::Duration};

use axum::{body::Body, routing::post, Form, Json, Router};
use common::{claims, serve, Signer, AUD, HS_SECRET};
use http::{Request, Response, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    introspection::{IntrospectionLayer, Introspector},
    jwt::{JwtLayer, JwtValidator},
    mcp::{McpPolicy, McpPolicyLayer},
    rate_limit::{Quota, RateLimitLayer},
    ProtectedResource, Rule,
};

const API_KEY: &str = "mcp_sk_svc-0123456789abcdef0123";
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn resource() -> ProtectedResource {
    ProtectedResource::builder(AUD)
        .authorization_server("https://auth.example.com")
        .build()
        .unwrap()
}

/// An introspection endpoint for which every token is inactive.
async fn introspection_endpoint() -> String {
    let app = Router::new().route(
        "/introspect",
        post(|Form(_): Form<HashMap<String, String>>| async { Json(json!({"active": false})) }),
    );
    format!("http://{}/introspect", serve(app).await)
}

/// Every layer that refuses, in the example server's order, with or
/// without the resource layer on top; served on loopback.
async fn app(with_resource: bool) -> String {
    let resource = resource();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(HS_SECRET))
        .build()
        .unwrap();
    let introspector = Introspector::builder(
        introspection_endpoint().await,
        "rs",
        SecretString::from("client-secret"),
    )
    .audience(AUD)
    .build()
    .unwrap();
    let policy = McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("write", Rule::bearer().scopes(["write:data"]))
        .build()
        .unwrap();
    let stack = ServiceBuilder::new()
        .option_layer(with_resource.then(|| resource.layer()))
        .layer(ApiKeyLayer::new(ApiKeys::new().with(ApiKey::new("svc", API_KEY))).optional())
        .layer(JwtLayer::new(validator).optional().pass_opaque_tokens())
        .layer(IntrospectionLayer::new(introspector).optional())
        .layer(McpPolicyLayer::new(policy))
        .layer(RateLimitLayer::per_principal(Quota::per_minute(1)))
        .service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from(
                r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            )))
        });
    let addr = serve(Router::new().nest_service("/mcp", stack)).await;
    format!("http://{addr}/mcp")
}

/// Calls tool `tool` with `header`; the status and `WWW-Authenticate`.
async fn call(url: &str, tool: &str, header: Option<(&str, &str)>) -> (StatusCode, Option<String>) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .timeout(Duration::from_secs(10))
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": tool, "arguments": {}}})
            .to_string(),
        );
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status(), challenge)
}

/// Every refusal of the stack: its name, the request, and the status and
/// `error` it must get.
async fn refusals(url: &str) -> Vec<(&'static str, StatusCode, Option<String>)> {
    let forged = Signer::hs("not-the-secret-0123456789abcdef0123", None).sign(&claims("mallory"));
    let reader = Signer::hs(HS_SECRET, None).sign(&claims("alice")); // read:data only
    vec![
        (
            "api key layer: wrong key",
            call(
                url,
                "read",
                Some(("x-api-key", "mcp_sk_wrong-0123456789abcdef")),
            )
            .await,
        ),
        (
            "jwt layer: bad signature",
            call(
                url,
                "read",
                Some(("authorization", &format!("Bearer {forged}"))),
            )
            .await,
        ),
        (
            "introspection layer: inactive token",
            call(
                url,
                "read",
                Some(("authorization", "Bearer opaque-inactive")),
            )
            .await,
        ),
        ("policy: no credential", call(url, "read", None).await),
        (
            "policy: missing scope",
            call(
                url,
                "write",
                Some(("authorization", &format!("Bearer {reader}"))),
            )
            .await,
        ),
    ]
    .into_iter()
    .map(|(name, (status, challenge))| (name, status, challenge))
    .collect()
}

const EXPECTED: [(&str, u16, &str); 5] = [
    ("api key layer: wrong key", 401, r#"error="invalid_token""#),
    ("jwt layer: bad signature", 401, r#"error="invalid_token""#),
    (
        "introspection layer: inactive token",
        401,
        r#"error="invalid_token""#,
    ),
    ("policy: no credential", 401, "Bearer"),
    (
        "policy: missing scope",
        403,
        r#"error="insufficient_scope""#,
    ),
];

#[tokio::test]
async fn with_the_resource_layer_every_refusal_names_the_metadata() {
    let url = app(true).await;
    let got = refusals(&url).await;
    for ((name, status, challenge), (want_name, want_status, want_error)) in
        got.into_iter().zip(EXPECTED)
    {
        assert_eq!(name, want_name);
        assert_eq!(status.as_u16(), want_status, "{name}");
        let challenge = challenge.unwrap_or_else(|| panic!("{name}: no WWW-Authenticate"));
        assert!(challenge.contains(want_error), "{name}: {challenge}");
        assert!(
            challenge.ends_with(&format!(r#"resource_metadata="{METADATA}""#)),
            "{name}: {challenge}"
        );
    }

    // The rate limiter: the second call of the minute is 429, with no
    // challenge (it is not an authentication failure).
    let key = Some(("x-api-key", API_KEY));
    assert_eq!(call(&url, "read", key).await, (StatusCode::OK, None));
    assert_eq!(
        call(&url, "read", key).await,
        (StatusCode::TOO_MANY_REQUESTS, None)
    );
}

#[tokio::test]
async fn without_it_the_same_refusals_name_no_metadata() {
    let url = app(false).await;
    let got = refusals(&url).await;
    for ((name, status, challenge), (want_name, want_status, want_error)) in
        got.into_iter().zip(EXPECTED)
    {
        assert_eq!(name, want_name);
        assert_eq!(status.as_u16(), want_status, "{name}");
        let challenge = challenge.unwrap_or_else(|| panic!("{name}: no WWW-Authenticate"));
        assert!(challenge.starts_with("Bearer"), "{name}: {challenge}");
        assert!(challenge.contains(want_error), "{name}: {challenge}");
        assert!(
            !challenge.contains("resource_metadata"),
            "{name}: {challenge}"
        );
    }
    let key = Some(("x-api-key", API_KEY));
    assert_eq!(call(&url, "read", key).await, (StatusCode::OK, None));
    assert_eq!(
        call(&url, "read", key).await,
        (StatusCode::TOO_MANY_REQUESTS, None)
    );
}
