//! The examples a user copies (`examples/*.rs`, one seed pattern each), run
//! as their doc comments show: each app served on loopback, called over
//! HTTP with the credentials the comment names, every refusal checked.

mod common;

use std::{net::SocketAddr, time::Duration};

use axum::Router;
use common::{now, JwksServer, Signer};
use reqwest::{header::HeaderMap, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower_mcp_auth::api_key::ApiKeys;

#[allow(dead_code)]
#[path = "../examples/api_key.rs"]
mod api_key;
#[allow(dead_code)]
#[path = "../examples/custom_hs256.rs"]
mod custom_hs256;
#[allow(dead_code)]
#[path = "../examples/multi_auth.rs"]
mod multi_auth;
#[allow(dead_code)]
#[path = "../examples/oauth_jwks.rs"]
mod oauth_jwks;
#[allow(dead_code)]
#[path = "../examples/rate_limit_redis.rs"]
mod rate_limit_redis;
#[allow(dead_code)]
#[path = "../examples/rmcp_server.rs"]
mod rmcp_server;

const KEY: &str = "mcp_sk_change_me_0123456789";

/// A listener on a free loopback port and the MCP URL it will serve.
async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    (listener, url)
}

/// Serves `app` as the examples' `main` does (with the client address).
fn serve(listener: tokio::net::TcpListener, app: Router) {
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    /// The text of a successful tool call's first content.
    fn text(&self) -> &str {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        assert_eq!(
            self.body["result"]["isError"],
            json!(false),
            "{}",
            self.body
        );
        self.body["result"]["content"][0]["text"].as_str().unwrap()
    }

    fn challenge(&self) -> &str {
        self.headers["www-authenticate"].to_str().unwrap()
    }
}

/// One JSON-RPC request, as the doc comments' `curl` lines send it.
async fn rpc(url: &str, credential: &[(&str, &str)], method: &str, params: Value) -> Reply {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string());
    for (name, value) in credential {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}

async fn call(url: &str, credential: &[(&str, &str)], tool: &str, args: Value) -> Reply {
    rpc(
        url,
        credential,
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
    .await
}

fn bearer(token: &str) -> [(&'static str, String); 1] {
    [("authorization", format!("Bearer {token}"))]
}

fn refs<'a>(h: &'a [(&'static str, String); 1]) -> [(&'static str, &'a str); 1] {
    [(h[0].0, h[0].1.as_str())]
}

#[tokio::test]
async fn api_key_example_needs_the_key_for_tools_and_the_resource() {
    let (l, url) = listener().await;
    serve(
        l,
        api_key::app(ApiKeys::from_list("API_KEY", &SecretString::from(KEY)).unwrap()),
    );
    let key = [("x-api-key", KEY)];

    let args = json!({"email": "ada@example.com", "name": "Ada"});
    let created = call(&url, &key, "create_admin_user", args.clone()).await;
    assert_eq!(
        created.text(),
        "created admin Ada <ada@example.com>, by api_key"
    );
    let deleted = call(
        &url,
        &key,
        "delete_user",
        json!({"user_id": "u7", "reason": "left"}),
    )
    .await;
    assert_eq!(deleted.text(), "deleted u7 (left), by api_key");
    let stats = rpc(
        &url,
        &key,
        "resources/read",
        json!({"uri": "admin://system/stats"}),
    )
    .await;
    assert_eq!(stats.status, StatusCode::OK);
    assert!(stats.body["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("total_users"));

    for credential in [&[][..], &[("x-api-key", "mcp_sk_wrong_key_0123456789")][..]] {
        let refused = call(&url, credential, "create_admin_user", args.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{:?}",
            refused.body
        );
    }
}

/// An authorization server on loopback (RFC 8414 metadata and a JWKS) and
/// a token minted with its key.
struct Issuer {
    server: JwksServer,
    signer: Signer,
}

impl Issuer {
    async fn start() -> Self {
        let signer = Signer::rsa("rsa1_private.pem", "k1");
        let server = JwksServer::start(vec![signer.jwk()]).await;
        Self { server, signer }
    }

    fn token(&self, aud: &str, sub: &str, scope: &str) -> String {
        let (iss, exp) = (&self.server.base, now() + 600);
        self.signer
            .sign(&json!({"iss": iss, "aud": aud, "sub": sub, "exp": exp, "scope": scope}))
    }
}

#[tokio::test]
async fn oauth_jwks_example_checks_the_token_and_each_scope() {
    let issuer = Issuer::start().await;
    let (l, url) = listener().await;
    serve(l, oauth_jwks::app(&url, &issuer.server.base).unwrap());

    let base = url.trim_end_matches("/mcp");
    let metadata: Value = reqwest::get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], json!(url));
    assert_eq!(
        metadata["authorization_servers"],
        json!([issuer.server.base])
    );

    let none = call(&url, &[], "get_user_data", json!({"user_id": "user_001"})).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none
        .challenge()
        .contains("/.well-known/oauth-protected-resource/mcp"));

    let reader = bearer(&issuer.token(&url, "alice", "read:data"));
    let read = call(
        &url,
        &refs(&reader),
        "get_user_data",
        json!({"user_id": "user_001"}),
    )
    .await;
    assert_eq!(read.text(), "user_001: Alice Martin (read by alice)");
    let private = rpc(
        &url,
        &refs(&reader),
        "resources/read",
        json!({"uri": "user://user_001/private"}),
    )
    .await;
    assert_eq!(private.status, StatusCode::OK, "{:?}", private.body);

    let update = json!({"user_id": "user_001", "name": "Ada"});
    let step_up = call(&url, &refs(&reader), "update_user_data", update.clone()).await;
    assert_eq!(step_up.status, StatusCode::FORBIDDEN);
    assert!(
        step_up.challenge().contains("insufficient_scope"),
        "{}",
        step_up.challenge()
    );
    assert!(
        step_up.challenge().contains("write:data"),
        "{}",
        step_up.challenge()
    );
    let writer = bearer(&issuer.token(&url, "bob", "write:data"));
    let updated = call(&url, &refs(&writer), "update_user_data", update).await;
    assert_eq!(updated.text(), "user_001 is now Ada (by bob)");

    let elsewhere = bearer(&issuer.token("https://other.example.com/mcp", "eve", "read:data"));
    let wrong_aud = call(
        &url,
        &refs(&elsewhere),
        "get_user_data",
        json!({"user_id": "u"}),
    )
    .await;
    assert_eq!(wrong_aud.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn multi_auth_example_gives_each_tool_its_scheme() {
    let issuer = Issuer::start().await;
    let (l, url) = listener().await;
    let keys = ApiKeys::from_list("API_KEY", &SecretString::from(KEY)).unwrap();
    serve(l, multi_auth::app(&url, &issuer.server.base, keys).unwrap());
    let key = [("x-api-key", KEY)];
    let user = bearer(&issuer.token(&url, "alice", "read:profile write:profile"));

    let all = call(&url, &key, "list_all_users", json!({})).await;
    assert_eq!(all.text(), "user_001 Alice Martin, user_002 Bob Chen");
    let one = call(&url, &key, "get_user_by_id", json!({"user_id": "user_002"})).await;
    assert_eq!(one.text(), "user_002: Alice Martin");
    let me = call(&url, &refs(&user), "get_my_profile", json!({})).await;
    assert_eq!(me.text(), "profile of alice (read:profile write:profile)");
    let renamed = call(
        &url,
        &refs(&user),
        "update_my_profile",
        json!({"display_name": "Al"}),
    )
    .await;
    assert_eq!(renamed.text(), "alice is now shown as Al");

    // Each scheme only where its rule allows it: the other one is told
    // what the tool needs.
    // A valid credential of the other kind: 403 naming the scheme needed.
    let key_on_profile = call(&url, &key, "get_my_profile", json!({})).await;
    assert_eq!(
        key_on_profile.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        key_on_profile.body
    );
    assert_eq!(
        key_on_profile.body["error"]["message"],
        "tools/call `get_my_profile`: this call requires an OAuth bearer token"
    );
    let token_on_admin = call(&url, &refs(&user), "list_all_users", json!({})).await;
    assert_eq!(
        token_on_admin.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        token_on_admin.body
    );
    let none = call(&url, &[], "list_all_users", json!({})).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);

    let reader = bearer(&issuer.token(&url, "bob", "read:profile"));
    let step_up = call(
        &url,
        &refs(&reader),
        "update_my_profile",
        json!({"display_name": "B"}),
    )
    .await;
    assert_eq!(step_up.status, StatusCode::FORBIDDEN, "{:?}", step_up.body);
    assert!(
        step_up.challenge().contains("write:profile"),
        "{}",
        step_up.challenge()
    );

    // tools/list shows each caller what it may call.
    let names = |r: Reply| -> Vec<String> {
        let tools = r.body["result"]["tools"].as_array().unwrap().clone();
        tools
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut for_key = names(rpc(&url, &key, "tools/list", json!({})).await);
    for_key.sort();
    assert_eq!(for_key, ["get_user_by_id", "list_all_users"]);
    let mut for_user = names(rpc(&url, &refs(&user), "tools/list", json!({})).await);
    for_user.sort();
    assert_eq!(for_user, ["get_my_profile", "update_my_profile"]);
}

#[tokio::test]
async fn custom_hs256_example_hands_the_verified_user_id_to_the_tool() {
    let secret = SecretString::from("a-long-random-secret-of-32-bytes-or-more");
    let (l, url) = listener().await;
    serve(l, custom_hs256::app(&url, &secret).unwrap());

    let token = bearer(&custom_hs256::issue_token(&secret, &url, "42").unwrap());
    let ran = call(
        &url,
        &refs(&token),
        "protected_operation",
        json!({"param": "x"}),
    )
    .await;
    assert_eq!(ran.text(), "ran with param x for user_id 42");

    let hs = Signer::hs("a-long-random-secret-of-32-bytes-or-more", None);
    let other = Signer::hs("another-secret-entirely-0123456789abcdef", None);
    let claims = |user_id: Option<&str>, aud: &str, exp: u64| {
        let mut c = json!({"sub": "42", "aud": aud, "exp": exp});
        if let Some(id) = user_id {
            c["user_id"] = json!(id);
        }
        c
    };
    for (why, token) in [
        ("no user_id", hs.sign(&claims(None, &url, now() + 600))),
        ("expired", hs.sign(&claims(Some("42"), &url, now() - 600))),
        (
            "another audience",
            hs.sign(&claims(Some("42"), "http://other/mcp", now() + 600)),
        ),
        (
            "another secret",
            other.sign(&claims(Some("42"), &url, now() + 600)),
        ),
        ("no token", String::new()),
    ] {
        let credential = if token.is_empty() {
            vec![]
        } else {
            vec![("authorization", format!("Bearer {token}"))]
        };
        let credential: Vec<(&str, &str)> =
            credential.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let refused = call(
            &url,
            &credential,
            "protected_operation",
            json!({"param": "x"}),
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{why}: {:?}",
            refused.body
        );
    }
}

/// A `redis-server` on a free loopback port, killed on drop; `None` (with
/// a notice) when the binary is missing, as in tests/rate_limit_redis.rs.
struct Redis(std::process::Child, u16);

impl Redis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let Ok(child) = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
        else {
            eprintln!("NOTICE: redis-server not found; skipping the Redis example test");
            return None;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self(child, port))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn rate_limit_redis_example_counts_each_user_across_replicas() {
    let Some(redis) = Redis::start() else { return };
    let redis_url = format!("redis://127.0.0.1:{}/", redis.1);
    let keys = || {
        let alice = tower_mcp_auth::api_key::ApiKey::new("alice", "mcp_sk_alice_key_0001");
        ApiKeys::new()
            .with(alice)
            .with(tower_mcp_auth::api_key::ApiKey::new(
                "bob",
                "mcp_sk_bob_key_00001",
            ))
    };
    let (mut urls, mut replicas) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (l, url) = listener().await;
        replicas.push((
            l,
            rate_limit_redis::app(&redis_url, keys(), 3).await.unwrap(),
        ));
        urls.push(url);
    }
    for (l, app) in replicas {
        serve(l, app);
    }
    let (alice, bob) = (
        [("x-api-key", "mcp_sk_alice_key_0001")],
        [("x-api-key", "mcp_sk_bob_key_00001")],
    );

    for url in [&urls[0], &urls[1], &urls[0]] {
        let ok = call(url, &alice, "rate_limited_operation", json!({"param": "x"})).await;
        assert_eq!(ok.text(), "ran with param x for alice");
    }
    // The fourth call within the minute, on the other replica: refused.
    let throttled = call(
        &urls[1],
        &alice,
        "rate_limited_operation",
        json!({"param": "x"}),
    )
    .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers.contains_key("retry-after"));
    // Bob is counted apart.
    let other = call(
        &urls[1],
        &bob,
        "rate_limited_operation",
        json!({"param": "y"}),
    )
    .await;
    assert_eq!(other.text(), "ran with param y for bob");
    drop(redis);
}

#[tokio::test]
async fn rmcp_server_example_hands_the_caller_to_the_tool_and_the_resource() {
    const SECRET: &str = "a-long-random-secret-of-32-bytes-or-more";
    let secret = SecretString::from(SECRET);
    let (l, url) = listener().await;
    let keys = ApiKeys::from_list("API_KEY", &SecretString::from(KEY)).unwrap();
    serve(l, rmcp_server::app(&url, keys, &secret, true).unwrap());
    let key = [("x-api-key", KEY)];
    let token = bearer(&rmcp_server::token(&secret, &url, "alice").unwrap());

    // The tool's `caller: Principal` and read_resource's `caller(&ctx)`.
    let by_key = call(&url, &key, "whoami", json!({})).await;
    assert_eq!(by_key.text(), "api_key via api_key");
    let by_token = call(&url, &refs(&token), "whoami", json!({})).await;
    assert_eq!(by_token.text(), "alice via jwt");
    let read = rpc(
        &url,
        &refs(&token),
        "resources/read",
        json!({"uri": rmcp_server::NOTES_URI}),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
    assert_eq!(
        read.body["result"]["contents"][0]["text"],
        "the notes of alice"
    );

    // Anonymous or a bad token: 401 with the challenge, before rmcp.
    let anonymous = call(&url, &[], "whoami", json!({})).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.challenge().contains("resource_metadata="));
    let other = bearer(
        &rmcp_server::token(
            &SecretString::from("another-secret-entirely-0123456789abcdef"),
            &url,
            "alice",
        )
        .unwrap(),
    );
    let forged = call(&url, &refs(&other), "whoami", json!({})).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    // rmcp's DNS-rebinding checks use the lists drawn from the public URL:
    // the other loopback names pass, a foreign Host or Origin does not.
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let localhost = format!("localhost:{port}");
    let same = format!("http://localhost:{port}");
    for (header, value, status) in [
        ("host", localhost.as_str(), StatusCode::OK),
        ("origin", same.as_str(), StatusCode::OK),
        ("host", "evil.example", StatusCode::FORBIDDEN),
        ("origin", "http://evil.example", StatusCode::FORBIDDEN),
        ("origin", "http://localhost:1", StatusCode::FORBIDDEN),
    ] {
        let reply = call(&url, &[key[0], (header, value)], "whoami", json!({})).await;
        assert_eq!(reply.status, status, "{header}: {value}: {:?}", reply.body);
    }
}
