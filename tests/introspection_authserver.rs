//! Interop: `IntrospectionLayer` and discovery against a real authorization
//! server, `oauth2-mock-server` from npm, started on loopback by
//! `tests/interop/authserver/server.mjs`.
//!
//! Needs `node` and the package installed:
//!
//! ```text
//! npm ci --prefix tests/interop/authserver
//! ```
//!
//! Without them the test prints a notice and returns.
#![cfg(feature = "introspection")]

use std::{path::PathBuf, process::Stdio, time::Duration};

use axum::{routing::get, Router};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, BufReader};
use tower_mcp_auth::{
    discovery::AuthorizationServerMetadata, introspection::IntrospectionLayer, Principal,
};

const CLIENT_ID: &str = "mcp-resource-server";
const CLIENT_SECRET: &str = "interop secret/with:odd&chars";

fn authserver_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/authserver")
}

/// Starts the authorization server, or says why it cannot.
async fn start_authserver(resource: &str) -> Option<(tokio::process::Child, String)> {
    let dir = authserver_dir();
    if !dir
        .join("node_modules/oauth2-mock-server/package.json")
        .exists()
    {
        eprintln!(
            "NOTICE: skipping the authorization-server interop test: oauth2-mock-server is not installed; run `npm ci --prefix tests/interop/authserver`"
        );
        return None;
    }
    let mut child = match tokio::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("RESOURCE", resource)
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "NOTICE: skipping the authorization-server interop test: cannot run `node`: {e}"
            );
            return None;
        }
    };
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("the authorization server did not start within 30 s")
    .expect("reading its address");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line with the issuer");
    Some((child, v["issuer"].as_str().expect("issuer").to_owned()))
}

async fn form_post(url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A client_credentials access token from the authorization server.
async fn token(issuer: &str, client: &str, scope: &str) -> String {
    let res = form_post(
        &format!("{issuer}/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

async fn call(app: &str, token: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .get(app)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn opaque_tokens_from_a_real_authorization_server() {
    // Our app's address first: it is the resource identifier the server
    // puts into `aud`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let Some((mut child, issuer)) = start_authserver(&app_url).await else {
        return;
    };

    // Discovery (the mock publishes OpenID metadata only: the fallback).
    let metadata = AuthorizationServerMetadata::discover(&issuer)
        .await
        .unwrap();
    assert_eq!(metadata.issuer, issuer);
    assert_eq!(
        metadata.introspection_endpoint.as_deref(),
        Some(format!("{issuer}/introspect").as_str())
    );
    assert_eq!(
        metadata.jwks_uri.as_deref(),
        Some(format!("{issuer}/jwks").as_str())
    );
    assert_eq!(
        metadata.token_endpoint.as_deref(),
        Some(format!("{issuer}/token").as_str())
    );

    let resource = metadata.protected_resource(&app_url).build().unwrap();
    assert_eq!(
        resource.authorization_servers(),
        std::slice::from_ref(&issuer)
    );
    let introspector = metadata
        .introspector(CLIENT_ID, SecretString::from(CLIENT_SECRET))
        .unwrap()
        .audience(resource.resource())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/mcp",
            get(|p: Principal| async move {
                format!(
                    "{}|{}|{}|{}",
                    p.scheme(),
                    p.name(),
                    p.client_id().unwrap_or("-"),
                    p.scopes()
                )
            }),
        )
        .route_layer(IntrospectionLayer::new(introspector))
        .route_layer(resource.layer())
        .merge(resource.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Active: accepted end to end.
    let active = token(&issuer, "billing-app", "read:data write:data").await;
    assert_eq!(
        call(&app_url, &active).await,
        (
            200,
            "introspection|billing-app|billing-app|read:data write:data".to_owned()
        )
    );

    // Revoked at the server (RFC 7009) before first use: inactive, 401.
    let revoked = token(&issuer, "billing-app", "read:data").await;
    let res = form_post(&format!("{issuer}/revoke"), &[("token", &revoked)]).await;
    assert_eq!(res.status(), 200);
    let (status, body) = call(&app_url, &revoked).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("the access token is not active"), "{body}");

    // Never issued by it: 401.
    assert_eq!(call(&app_url, "not-a-token-it-issued").await.0, 401);

    // Issued for another resource: 401.
    let other = {
        let res = form_post(
            &format!("{issuer}/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "x"),
                ("aud", "https://other.example.com/mcp"),
            ],
        )
        .await;
        let v: serde_json::Value = res.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    };
    let (status, body) = call(&app_url, &other).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not issued for this resource"), "{body}");

    // client_secret_post works against it too, and wrong client
    // credentials fail closed (503), not open.
    for (secret, post, want) in [(CLIENT_SECRET, true, 200), ("wrong", false, 503)] {
        // Used directly, the introspector needs the audience it checks.
        let mut b = metadata
            .introspector(CLIENT_ID, SecretString::from(secret))
            .unwrap()
            .audience(app_url.clone())
            .no_cache();
        if post {
            b = b.client_secret_post();
        }
        let p = b.build().unwrap().verify(&active).await;
        assert_eq!(
            p.map(|_| 200).unwrap_or_else(|e| e.status().as_u16()),
            want,
            "{secret}"
        );
    }

    child.kill().await.ok();
}

mod support;
use support::mcp_server;

/// A `tools/call` of `get_user_data` on the example server, stateless mode.
async fn call_tool(url: &str, token: &str) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_user_data","arguments":{"user_id":"user_001"}}}"#,
        )
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn example_server_accepts_tokens_the_authorization_server_reports_active() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app_url = format!("http://{addr}/mcp");
    let Some((mut child, issuer)) = start_authserver(&app_url).await else {
        return;
    };

    // The example configured as by OAUTH_INTROSPECTION_URL, OAUTH_CLIENT_ID
    // and OAUTH_CLIENT_SECRET (and an API key, so no demo secret).
    let keys = tower_mcp_auth::api_key::ApiKeys::new().with(tower_mcp_auth::api_key::ApiKey::new(
        "svc",
        "mcp_sk_introspection-e2e-0123456789",
    ));
    let mut config = mcp_server::Config::new(app_url.clone(), keys);
    config.stateless = true;
    config.auth.introspector = Some(
        tower_mcp_auth::introspection::Introspector::builder(
            format!("{issuer}/introspect"),
            CLIENT_ID,
            SecretString::from(CLIENT_SECRET),
        )
        .audience(app_url.clone())
        .build()
        .unwrap(),
    );
    let app = mcp_server::app(&config)
        .await
        .unwrap()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Active, with the scope the tool needs: the tool runs.
    let active = token(&issuer, "reporting-app", "read:data").await;
    let (status, body) = call_tool(&app_url, &active).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 7);
    assert!(body["result"]["isError"] != true, "{body}");
    assert_eq!(
        body["result"]["structuredContent"]["id"], "user_001",
        "{body}"
    );

    // Active without the scope: the step-up 403.
    let narrow = token(&issuer, "reporting-app", "read:profile").await;
    let (status, body) = call_tool(&app_url, &narrow).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["id"], 7);

    // Reported inactive (revoked): 401, and the tool never runs. (Another
    // client: the mock would otherwise mint the very token used above,
    // which the cache has seen active.)
    let revoked = token(&issuer, "revoked-app", "read:data").await;
    let res = form_post(&format!("{issuer}/revoke"), &[("token", &revoked)]).await;
    assert_eq!(res.status(), 200);
    let (status, body) = call_tool(&app_url, &revoked).await;
    assert_eq!(status, 401, "{body}");
    // Refused by the authenticator, which reads the refused body for its
    // id: a JSON-RPC error with the request's id (what MCP clients
    // surface), the OAuth error in its data.
    assert_eq!(body["id"], 7, "{body}");
    assert_eq!(body["error"]["data"]["error"], "invalid_token", "{body}");

    child.kill().await.ok();
}
