//! Interop (issue 29): `TokenExchanger` against a real authorization
//! server, `oidc-provider` from npm with the RFC 8693 grant registered
//! through its extension-grant API (`tests/interop/exchange/server.mjs`),
//! on loopback: the token endpoint found by discovery, the caller's RS256
//! token exchanged for one issued for the downstream API (with `act` for
//! the actor token), accepted there by `JwtLayer` on the issuer's JWKS,
//! where the caller's own token is refused.
//!
//! Needs `node` and the package installed:
//!
//! ```text
//! npm ci --prefix tests/interop/exchange
//! ```
//!
//! Without them the test prints a notice and returns, unless
//! `INTEROP_REQUIRED=1` (set by `scripts/test`, which installs them), which
//! makes it fail. oidc-provider 9 asks for Node 22; the Node 22 of
//! `tests/conformance/node` is used when installed (or `INTEROP_NODE`),
//! else `node`.

mod common;

use std::{path::PathBuf, process::Stdio, time::Duration};

use axum::{routing::get, Json, Router};
use http::request::Parts;
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    discovery::AuthorizationServerMetadata,
    exchange::{KeepSubjectTokenLayer, OAuthErrorCode, Target, TokenExchanger, ACCESS_TOKEN_TYPE},
    jwt::{JwtLayer, JwtValidator},
    Principal, ProtectedResource,
};

const USERS: &str = "https://users.example.com";

/// Skips with a notice, or fails when the interop tests are required.
fn missing(what: &str) {
    assert!(
        std::env::var("INTEROP_REQUIRED").as_deref() != Ok("1"),
        "INTEROP_REQUIRED=1 and {what}"
    );
    eprintln!("NOTICE: skipping the token exchange interop test: {what}");
}

/// Starts the authorization server for `mcp_resource`, or says why not.
async fn start(mcp_resource: &str) -> Option<(tokio::process::Child, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/interop/exchange");
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        missing("oidc-provider is not installed; run `npm ci --prefix tests/interop/exchange`");
        return None;
    }
    let node22 = root.join("tests/conformance/node/node_modules/.bin/node");
    let node = match std::env::var_os("INTEROP_NODE") {
        Some(node) => PathBuf::from(node),
        None if node22.exists() => node22,
        None => PathBuf::from("node"),
    };
    let mut child = match tokio::process::Command::new(node)
        .arg("server.mjs")
        .current_dir(&dir)
        .env("MCP_RESOURCE", mcp_resource)
        .env("USERS_RESOURCE", USERS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            missing(&format!("cannot run `node`: {e}"));
            return None;
        }
    };
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
        .await
        .expect("the authorization server did not start within 30 s")
        .expect("reading its address");
    // oidc-provider writes notices to stdout later: read on, so that a
    // closed pipe does not end it.
    tokio::spawn(async move {
        while stdout
            .read_line(&mut String::new())
            .await
            .is_ok_and(|n| n > 0)
        {}
    });
    let v: Value = serde_json::from_str(&line).expect("a JSON line with the issuer");
    Some((child, v["issuer"].as_str().expect("issuer").to_owned()))
}

/// A client_credentials token for the MCP resource.
async fn client_token(issuer: &str, id: &str, secret: &str, resource: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&scope=read%3Adata&resource={}",
            resource.replace(':', "%3A").replace('/', "%2F")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn oidc_provider_exchanges_the_callers_token_for_the_downstream() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mcp_resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let Some((mut child, issuer)) = start(&mcp_resource).await else {
        return;
    };

    // The downstream API: JwtLayer for its own audience, the issuer's JWKS.
    let users = ProtectedResource::builder(USERS).build().unwrap();
    let users_validator = JwtValidator::builder(&users)
        .jwks_from_issuer(&issuer)
        .build()
        .unwrap();
    let me = |p: Principal| async move {
        Json(
            json!({"sub": p.subject().or(p.client_id()), "act": p.claim("act"),
                    "scope": p.claim("scope"), "aud": p.claim("aud")}),
        )
    };
    let down = Router::new()
        .route("/me", get(me))
        .layer(JwtLayer::new(users_validator));
    let down = format!("http://{}", common::serve(down).await);

    // The MCP side: the token endpoint by discovery (oidc-provider
    // publishes OpenID metadata), an actor token of its own.
    let metadata = AuthorizationServerMetadata::discover(&issuer)
        .await
        .unwrap();
    let actor = client_token(&issuer, "mcp-server", "mcp-secret", &mcp_resource).await;
    let exchanger =
        TokenExchanger::from_metadata(&metadata, "mcp-server", SecretString::from("mcp-secret"))
            .unwrap()
            .actor_token(SecretString::from(actor), ACCESS_TOKEN_TYPE)
            .build()
            .unwrap();
    let resource = ProtectedResource::builder(&mcp_resource)
        .authorization_server(&issuer)
        .build()
        .unwrap();
    let validator = JwtValidator::builder(&resource)
        .jwks_from_issuer(&issuer)
        .build()
        .unwrap();
    let (x, d) = (exchanger.clone(), down.clone());
    let tool = move |parts: Parts| {
        let (x, d) = (x.clone(), d.clone());
        async move {
            let q = parts.uri.query().unwrap_or("");
            let target = if q.contains("elsewhere") {
                Target::resource("https://payroll.example.com")
            } else {
                Target::resource(USERS).scopes([if q.contains("admin") {
                    "admin"
                } else {
                    "users:read"
                }])
            };
            match x.authorization_for(&parts, target).await {
                Ok(h) => {
                    let r = reqwest::Client::new()
                        .get(format!("{d}/me"))
                        .header("authorization", h)
                        .send()
                        .await
                        .unwrap();
                    Json(
                        json!({"status": r.status().as_u16(), "body": r.json::<Value>().await.unwrap()}),
                    )
                }
                Err(e) => Json(json!({"error": e.oauth_code().map(OAuthErrorCode::as_str),
                                      "message": e.to_string()})),
            }
        }
    };
    let app = Router::new().route("/mcp", get(tool)).layer(
        ServiceBuilder::new()
            .layer(resource.layer())
            .layer(JwtLayer::new(validator))
            .layer(KeepSubjectTokenLayer::new()),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let caller = client_token(&issuer, "caller-app", "caller-secret", &mcp_resource).await;
    let ask = |q: &str| {
        let (url, caller) = (format!("{mcp_resource}?{q}"), caller.clone());
        async move {
            let res = reqwest::Client::new()
                .get(url)
                .bearer_auth(caller)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };

    let r = ask("").await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body"]["sub"], "caller-app");
    assert_eq!(r["body"]["act"]["sub"], "mcp-server");
    assert_eq!(r["body"]["aud"], USERS);
    assert_eq!(r["body"]["scope"], "users:read");

    // Refusals, with their OAuth codes.
    let r = ask("elsewhere").await;
    assert_eq!(r["error"], "invalid_target", "{r}");
    let r = ask("admin").await;
    assert_eq!(r["error"], "invalid_scope", "{r}");

    // The caller's own token at the downstream: refused.
    let res = reqwest::Client::new()
        .get(format!("{down}/me"))
        .bearer_auth(&caller)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    drop(child.stdin.take());
    let _ = child.wait().await;
}
