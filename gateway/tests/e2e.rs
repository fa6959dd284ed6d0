//! End to end on loopback: a caller → the gateway (the whole stack) → a
//! real rmcp MCP server, or a hand-made upstream for streaming and
//! failures.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::{json, Value};
use tower_mcp_auth_gateway::proxy::JSONRPC_UPSTREAM_ERROR;

fn tool_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_caller_without_credential_gets_the_challenge_and_never_reaches_the_upstream() {
    let (upstream, rec) = rmcp_upstream().await;
    let gw = gateway(&upstream, |_| {}).await;
    let r = gw
        .post(
            Who::Nobody,
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            gw.base
        )),
        "{challenge}"
    );
    let bad = gw
        .request(reqwest::Method::POST, Who::Token("not-a-token"), None)
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(
        rec.requests().is_empty(),
        "the upstream saw a refused request"
    );

    // The RFC 9728 metadata names the gateway's public URL; /healthz is up.
    let meta: Value = gw
        .client
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            gw.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], gw.url);
    let health = gw
        .client
        .get(format!("{}/healthz", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn the_policy_decides_each_tool_and_filters_the_list_for_each_caller() {
    let (upstream, rec) = rmcp_upstream().await;
    let gw = gateway(&upstream, |_| {}).await;
    let token = gw.token("alice", &["data:read"]);

    // The API key: every tool the policy gives `api_key` or any
    // credential; not the bearer-only one, not the one no rule names.
    let key_session = gw.initialize(Who::Key).await;
    let list = gw
        .post(
            Who::Key,
            Some(&key_session),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(tool_names(&list.json()), ["admin_reset", "echo"]);
    let r = gw
        .post(Who::Key, Some(&key_session), call(3, "admin_reset"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["result"]["content"][0]["text"], "reset");
    for (id, tool) in [(4, "read_data"), (5, "secret_tool")] {
        let r = gw.post(Who::Key, Some(&key_session), call(id, tool)).await;
        assert!(
            r.status == 401 || r.status == 403,
            "{tool}: {} {}",
            r.status,
            r.text
        );
        assert_eq!(r.json()["id"], id, "{tool}");
        assert!(r.json()["error"].is_object(), "{tool}");
    }

    // The bearer token with `data:read`.
    let alice = gw.initialize(Who::Token(&token)).await;
    let list = gw
        .post(
            Who::Token(&token),
            Some(&alice),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
    assert_eq!(tool_names(&list.json()), ["echo", "read_data"]);
    let r = gw
        .post(Who::Token(&token), Some(&alice), call(3, "read_data"))
        .await;
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "data",
        "{}",
        r.text
    );
    let r = gw
        .post(Who::Token(&token), Some(&alice), call(4, "admin_reset"))
        .await;
    assert!(r.status == 401 || r.status == 403, "{}", r.text);

    // What the upstream received: its own path and host, the gateway's
    // credential, the MCP headers — never a caller's credential.
    let upstream_authority = upstream
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    let requests = rec.requests();
    assert!(requests.len() >= 6, "{}", requests.len());
    for (path, headers) in &requests {
        assert_eq!(path, "/upstream/mcp");
        assert_eq!(headers["host"], upstream_authority);
        assert_eq!(headers["authorization"], UPSTREAM_AUTHORIZATION);
        assert_eq!(headers.get_all("authorization").iter().count(), 1);
        for never in ["x-api-key", "dpop", "cookie", "origin", "accept-encoding"] {
            assert!(headers.get(never).is_none(), "{never} reached the upstream");
        }
        assert_eq!(headers["mcp-protocol-version"], "2025-11-25");
        assert_eq!(headers["accept"], "application/json, text/event-stream");
    }
}

#[tokio::test]
async fn a_stateless_json_upstream_is_filtered_and_decided_alike() {
    let (upstream, _) = rmcp_json_upstream().await;
    let gw = gateway(&upstream, |_| {}).await;
    let list = gw
        .post(
            Who::Key,
            None,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(list
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        list.header("content-length")
            .map(|n| n.parse::<usize>().unwrap()),
        Some(list.text.len())
    );
    assert_eq!(tool_names(&list.json()), ["admin_reset", "echo"]);
    let r = gw.post(Who::Key, None, call(3, "echo")).await;
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "echoed",
        "{}",
        r.text
    );
    let r = gw.post(Who::Key, None, call(4, "secret_tool")).await;
    assert_eq!(r.status, 403, "{}", r.text);
}

#[tokio::test]
async fn session_ids_leave_sealed_and_belong_to_their_caller() {
    let (upstream, rec) = rmcp_upstream().await;
    let gw = gateway(&upstream, |_| {}).await;
    let sealed = gw.initialize(Who::Key).await;
    let minted = rec.session_ids.lock().unwrap()[0].clone();
    assert_ne!(sealed, minted, "the upstream's session id left unsealed");
    // The upstream received its own id back, unsealed.
    let (_, last) = rec.requests().pop().unwrap();
    assert_eq!(last["mcp-session-id"], minted.as_str());

    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
    let r = gw.post(Who::Key, Some(&sealed), ping.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The raw id, or the sealed one in another caller's hands: the
    // upstream's own answer to a session it does not know (rmcp: 404), for
    // a random id in their place.
    let before = rec.requests().len();
    let r = gw.post(Who::Key, Some(&minted), ping.clone()).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.text, "Not Found: Session not found");
    let mallory = gw.token("mallory", &[]);
    let r = gw.post(Who::Token(&mallory), Some(&sealed), ping).await;
    assert_eq!(r.status, 404, "{}", r.text);
    for (_, headers) in &rec.requests()[before..] {
        let id = headers["mcp-session-id"].to_str().unwrap();
        assert!(id.starts_with("tower-mcp-auth.unknown-session."), "{id}");
    }
    assert_eq!(rec.requests().len(), before + 2);
}

/// Reads `response` until `pattern` has arrived; what came.
async fn read_until(response: &mut reqwest::Response, seen: &mut String, pattern: &str) {
    let wait = async {
        while !seen.contains(pattern) {
            let chunk = response
                .chunk()
                .await
                .unwrap()
                .expect("the stream ended early");
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    // A guard against a hang, not a timing assertion.
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("{pattern:?} never came; so far: {seen:?}"));
}

#[tokio::test]
async fn sse_events_pass_filtered_one_by_one_before_the_stream_ends() {
    let (upstream, events) = sse_upstream().await;
    let gw = gateway(&upstream, |_| {}).await;
    let mut response = gw
        .request(reqwest::Method::POST, Who::Key, None)
        .body(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    // The first event: a progress notification; the second: the list,
    // with a tool the key may not see. The stream stays open after each.
    events
        .send(Bytes::from_static(
            b"id: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"working\"}}\n\n",
        ))
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut response, &mut seen, "working").await;
    assert!(seen.ends_with("\n\n"), "{seen:?}");

    let list = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": [
        {"name": "echo", "inputSchema": {"type": "object"}},
        {"name": "secret_tool", "inputSchema": {"type": "object"}},
        {"name": "admin_reset", "inputSchema": {"type": "object"}}
    ]}});
    events
        .send(Bytes::from(format!("id: 2\ndata: {list}\n\n")))
        .await
        .unwrap();
    read_until(&mut response, &mut seen, "admin_reset").await;
    assert!(!seen.contains("secret_tool"), "{seen:?}");
    let event = seen.split("\n\n").nth(1).unwrap();
    let filtered: Value = serde_json::from_str(event.split("data: ").nth(1).unwrap()).unwrap();
    assert_eq!(tool_names(&filtered), ["admin_reset", "echo"]);

    // The upstream ends the stream: so does the caller's.
    drop(events);
    let rest = response.text().await.unwrap();
    assert_eq!(rest, "");
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_with_a_jsonrpc_error_for_each_id() {
    let gw = gateway(&dead_upstream().await, |_| {}).await;
    let r = gw.post(Who::Key, None, call(41, "echo")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.json()["id"], 41);
    assert_eq!(r.json()["error"]["code"], JSONRPC_UPSTREAM_ERROR);

    let batch = json!([call(1, "echo"), {"jsonrpc": "2.0", "method": "notifications/initialized"}, call(2, "echo")]);
    let r = gw.post(Who::Key, None, batch).await;
    assert_eq!(r.status, 502, "{}", r.text);
    let ids: Vec<Value> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, [json!(1), json!(2)]);

    let stream = reply(
        gw.request(reqwest::Method::GET, Who::Key, None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stream.status, 502);
    assert_eq!(stream.json()["error"], "upstream_unreachable");
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_504_not_a_hang() {
    let gw = gateway(&silent_upstream().await, |u| {
        u.response_timeout = Duration::from_millis(50)
    })
    .await;
    let r = gw.post(Who::Key, None, call(5, "echo")).await;
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(r.json()["id"], 5);
    assert_eq!(r.json()["error"]["data"]["error"], "upstream_timeout");
    let r = reply(
        gw.request(reqwest::Method::DELETE, Who::Key, None)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "upstream_timeout");
}

#[tokio::test]
async fn an_upstream_refusing_the_gateways_credential_is_502_without_its_challenge() {
    let gw = gateway(&refusing_upstream().await, |_| {}).await;
    let r = gw.post(Who::Key, None, call(6, "echo")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.json()["error"]["data"]["error"], "upstream_refused");
    assert!(r.header("www-authenticate").is_none());
}

#[tokio::test]
async fn an_upstream_redirect_is_502_and_its_location_stays_behind() {
    let gw = gateway(&redirecting_upstream().await, |_| {}).await;
    let r = gw.post(Who::Key, None, call(8, "echo")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.json()["id"], 8);
    assert_eq!(r.json()["error"]["data"]["error"], "upstream_redirected");
    assert!(r.header("location").is_none());
}

#[tokio::test]
async fn an_https_upstream_is_reached_over_verified_tls() {
    let (upstream, rec) = rmcp_tls_upstream().await;
    let gw = gateway(&upstream, |u| {
        u.ca_file = Some(fixture("upstream-ca.pem").into())
    })
    .await;
    let session = gw.initialize(Who::Key).await;
    let list = gw
        .post(
            Who::Key,
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
    assert_eq!(tool_names(&list.json()), ["admin_reset", "echo"]);
    let (_, headers) = rec.requests().pop().unwrap();
    assert_eq!(
        headers["host"],
        upstream
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap()
    );
    assert!(headers.get("x-api-key").is_none());

    // Trusting another certificate than its CA (the server's own, not a
    // CA), the gateway refuses the upstream: 502, nothing reaches it.
    let before = rec.requests().len();
    let untrusting = gateway(&upstream, |u| {
        u.ca_file = Some(fixture("upstream-cert.pem").into())
    })
    .await;
    let r = untrusting.post(Who::Key, None, call(1, "echo")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.json()["error"]["data"]["error"], "upstream_unreachable");
    assert_eq!(rec.requests().len(), before);
}

#[tokio::test]
async fn the_endpoint_is_at_the_path_of_the_public_url() {
    let (upstream, rec) = rmcp_upstream().await;
    let gw = gateway_at("/tenant-a/mcp", &upstream, |_| {}).await;
    gw.initialize(Who::Key).await;
    let (path, _) = rec.requests().pop().unwrap();
    assert_eq!(path, "/upstream/mcp");
    let meta: Value = gw
        .client
        .get(format!(
            "{}/.well-known/oauth-protected-resource/tenant-a/mcp",
            gw.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], gw.url);
    let elsewhere = gw
        .client
        .post(format!("{}/mcp", gw.base))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
}

#[tokio::test]
async fn a_foreign_origin_or_host_is_refused_before_anything() {
    let (upstream, rec) = rmcp_upstream().await;
    let gw = gateway(&upstream, |_| {}).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let r = gw
        .request(reqwest::Method::POST, Who::Key, None)
        .header("origin", "http://evil.example")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = gw
        .request(reqwest::Method::POST, Who::Key, None)
        .header("host", "evil.example")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(rec.requests().is_empty());
}

#[tokio::test]
async fn open_streams_hold_the_upstream_connection_slots() {
    let (upstream, events) = sse_upstream().await;
    let gw = gateway(&upstream, |u| {
        u.max_connections = 1;
        u.response_timeout = Duration::from_secs(1);
    })
    .await;
    let open = gw
        .request(reqwest::Method::POST, Who::Key, None)
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    // The one slot is held by the open stream: the next request waits for
    // the timeout, then gets 503.
    let r = gw.post(Who::Key, None, call(2, "echo")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["id"], 2);
    assert_eq!(r.header("retry-after"), Some("1"));
    drop((open, events));
}

#[tokio::test]
async fn the_upstream_learns_the_caller_from_a_short_lived_token_the_gateway_signs() {
    const SECRET: &str = "upstream-identity-secret-0123456789abcdef";
    let (upstream, rec) = rmcp_upstream().await;
    let gw = gateway(&upstream, |u| {
        u.headers.clear();
        u.identity = Some(tower_mcp_auth_gateway::identity::IdentityConfig {
            secret: SECRET.into(),
            audience: None,
            ttl: Duration::from_secs(30),
        });
    })
    .await;
    let token = gw.token("alice", &["data:read"]);
    let session = gw.initialize(Who::Token(&token)).await;
    let r = gw
        .post(Who::Token(&token), Some(&session), call(3, "read_data"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    gw.post(
        Who::Key,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    .await;

    tower_mcp_auth::jwt::install_crypto_provider();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[upstream.as_str()]);
    validation.set_issuer(&[gw.url.as_str()]);
    let requests = rec.requests();
    let claims: Vec<Value> = requests
        .iter()
        .map(|(_, headers)| {
            let bearer = headers["authorization"].to_str().unwrap();
            let jwt = bearer.strip_prefix("Bearer ").unwrap();
            assert_ne!(jwt, token, "the caller's own token reached the upstream");
            let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes());
            jsonwebtoken::decode::<Value>(jwt, &key, &validation)
                .unwrap_or_else(|e| panic!("{e}: {jwt}"))
                .claims
        })
        .collect();
    assert_eq!(claims.len(), 4, "initialize, initialized, read_data, ping");
    for c in &claims[..3] {
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["scope"], "data:read");
        assert_eq!(c["auth_scheme"], "jwt");
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 30);
    }
    assert_eq!(claims[3]["sub"], "ops");
    assert_eq!(claims[3]["auth_scheme"], "api_key");
    assert_ne!(claims[0]["jti"], claims[1]["jti"]);
}
