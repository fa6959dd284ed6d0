//! The stack in front of tower-mcp, end to end over loopback HTTP: each
//! rule, the 401 and 403 challenges, `tools/list` filtered in JSON and in
//! SSE answers, the rate limit, the caller a tool sees, and sessions bound
//! to the principal that opened them.

use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tower_mcp_auth::api_key::{ApiKey, ApiKeys};
use tower_mcp_auth_stack_tower_mcp::{app, bare, Settings, MCP_PATH};

const KEY: &str = "mcp_sk_e2e_0123456789abcdef0123456789";
const KEY_NAME: &str = "ops-bot";
const ACCEPT: &str = "application/json, text/event-stream";
const ALL_TOOLS: [&str; 5] = [
    "delete_user",
    "echo",
    "get_user_data",
    "list_all_users",
    "whoami",
];

struct Server {
    base: String,
    url: String,
    secret: SecretString,
    http: reqwest::Client,
}

#[derive(Clone, Debug)]
enum Cred {
    None,
    Key,
    Bearer(String),
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// The JSON-RPC message of the answer: the body, or in an SSE answer
    /// the `data` of the event that carries it.
    fn json(&self) -> Value {
        let sse = self
            .headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if !sse {
            return serde_json::from_str(&self.body)
                .unwrap_or_else(|e| panic!("{e}: {}", self.body));
        }
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or_else(|| panic!("no JSON-RPC answer in {}", self.body))
    }
}

/// The same server without the layers, on loopback.
async fn start_bare() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = format!("{base}{MCP_PATH}");
    let router = bare(&url, false).unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server {
        base,
        url,
        secret: SecretString::from("unused"),
        http: reqwest::Client::new(),
    }
}

/// The stack on loopback: `per_minute` calls a principal, SSE answers or
/// JSON ones.
async fn start(per_minute: u32, sse: bool) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = format!("{base}{MCP_PATH}");
    let secret = SecretString::from("an-e2e-secret-of-at-least-32-bytes!!");
    let router = app(&Settings {
        public_url: url.clone(),
        api_keys: ApiKeys::new().with(ApiKey::new(KEY_NAME, KEY)),
        jwt_secret: secret.clone(),
        per_minute,
        sse,
    })
    .unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server {
        base,
        url,
        secret,
        http: reqwest::Client::new(),
    }
}

impl Server {
    fn metadata(&self) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource{MCP_PATH}",
            self.base
        )
    }

    /// An HS256 token for `sub` with `scopes`, for this server.
    fn token(&self, sub: &str, scopes: &[&str]) -> String {
        tower_mcp_auth::jwt::install_crypto_provider();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"sub": sub, "aud": self.url, "iat": now, "exp": now + 600,
                            "scope": scopes.join(" ")});
        let key = jsonwebtoken::EncodingKey::from_secret(self.secret.expose_secret().as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    }

    async fn send(
        &self,
        method: reqwest::Method,
        cred: &Cred,
        session: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, &self.url)
            .header("accept", ACCEPT)
            .header("mcp-protocol-version", "2025-06-18");
        match cred {
            Cred::None => {}
            Cred::Key => req = req.header("x-api-key", KEY),
            Cred::Bearer(t) => req = req.bearer_auth(t),
        }
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.unwrap();
        Reply {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        }
    }

    async fn post(&self, cred: &Cred, session: Option<&str>, body: Value) -> Reply {
        self.send(reqwest::Method::POST, cred, session, Some(body))
            .await
    }

    /// `initialize` then `notifications/initialized`: the session id.
    async fn open_session(&self, cred: &Cred) -> String {
        let reply = self.post(cred, None, initialize()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json()["result"]["serverInfo"]["name"],
            "tower-mcp-auth-stack-tower-mcp"
        );
        let id = reply.header("mcp-session-id").to_owned();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let reply = self.post(cred, Some(&id), note).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        id
    }
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"}}})
}

fn call(id: u64, name: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": args}})
}

fn list(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

/// The `Bearer` challenge of a refusal, parameters in the crate's order.
fn challenge(server: &Server, error: Option<(&str, &str)>, scope: Option<&str>) -> String {
    let mut params = Vec::new();
    if let Some((code, description)) = error {
        params.push(format!(r#"error="{code}""#));
        params.push(format!(r#"error_description="{description}""#));
    }
    if let Some(s) = scope {
        params.push(format!(r#"scope="{s}""#));
    }
    params.push(format!(r#"resource_metadata="{}""#, server.metadata()));
    format!("Bearer {}", params.join(", "))
}

/// The structured result of an allowed tool call.
fn result(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    assert!(v["result"]["isError"] != true, "{}", reply.body);
    v["result"].clone()
}

fn tool_names(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut names: Vec<String> = reply.json()["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {}", reply.body))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_public_tool_needs_no_credential_and_the_rest_get_the_401_challenge() {
    let server = start(100, false).await;
    let reply = server
        .post(&Cred::None, None, call(3, "echo", json!({"text": "hi"})))
        .await;
    assert_eq!(result(&reply)["content"][0]["text"], "hi");

    // initialize itself needs a caller: 401, the challenge names the
    // metadata, which names this resource.
    let reply = server.post(&Cred::None, None, initialize()).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(
        reply.header("www-authenticate"),
        challenge(&server, None, None)
    );
    let description = "initialize: authentication is required";
    assert_eq!(
        reply.json(),
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": description,
               "data": {"error": "missing_credential", "error_description": description}}})
    );
    let metadata: Value = server
        .http
        .get(server.metadata())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], server.url);
    let scopes = metadata["scopes_supported"].as_array().unwrap();
    assert!(scopes.contains(&json!("read:data")), "{metadata}");
    assert!(scopes.contains(&json!("admin:write")), "{metadata}");

    // A bearer tool called anonymously: 401 naming the scope it needs.
    let reply = server
        .post(
            &Cred::None,
            None,
            call(4, "get_user_data", json!({"user_id": "user_001"})),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        challenge(&server, None, Some("read:data"))
    );

    // A bad token is not anonymous: 401 invalid_token, even for `echo`.
    let reply = server
        .post(
            &Cred::Bearer("not.a.jwt".into()),
            None,
            call(5, "echo", json!({"text": "x"})),
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply
            .header("www-authenticate")
            .contains(r#"error="invalid_token""#),
        "{}",
        reply.header("www-authenticate")
    );
}

#[tokio::test]
async fn bearer_rules_need_their_scope_api_key_rules_a_key() {
    let server = start(100, false).await;
    let args = json!({"user_id": "user_002"});

    // Bearer + read:data: allowed; the tool names its caller.
    let alice = Cred::Bearer(server.token("alice", &["read:data"]));
    let reply = server
        .post(&alice, None, call(7, "get_user_data", args.clone()))
        .await;
    let r = result(&reply);
    assert_eq!(r["structuredContent"]["user"]["name"], "Bob Chen");
    assert_eq!(r["structuredContent"]["read_by"], "alice");

    // Bearer without the scope: 403 step-up, granted ∪ required.
    let bob = Cred::Bearer(server.token("bob", &["read:profile"]));
    let reply = server
        .post(&bob, None, call(7, "get_user_data", args.clone()))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let description =
        "tools/call `get_user_data`: the access token lacks a scope this call requires";
    assert_eq!(
        reply.header("www-authenticate"),
        challenge(
            &server,
            Some(("insufficient_scope", description)),
            Some("read:data read:profile")
        )
    );
    assert_eq!(reply.json()["error"]["code"], -32003);
    assert_eq!(reply.json()["id"], 7);

    // An API key on a bearer-only tool: 403 naming the scheme it needs, no
    // `invalid_token` challenge.
    let reply = server
        .post(&Cred::Key, None, call(7, "get_user_data", args))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.headers.get("www-authenticate").is_none());
    assert_eq!(
        reply.json()["error"]["message"],
        "tools/call `get_user_data`: this call requires an OAuth bearer token"
    );

    // API-key-only: a key is allowed, a token with every scope is not.
    let reply = server
        .post(&Cred::Key, None, call(8, "list_all_users", json!({})))
        .await;
    assert_eq!(result(&reply)["structuredContent"]["total"], 3);
    let every = Cred::Bearer(server.token("root", &["read:data", "admin:write"]));
    let reply = server
        .post(&every, None, call(8, "list_all_users", json!({})))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.headers.get("www-authenticate").is_none());
    assert_eq!(
        reply.json()["error"]["message"],
        "tools/call `list_all_users`: this call requires an API key"
    );

    // Either: a key, or a bearer token with admin:write; not read:data.
    let args = json!({"user_id": "user_003"});
    let reply = server
        .post(&Cred::Key, None, call(9, "delete_user", args.clone()))
        .await;
    assert_eq!(result(&reply)["structuredContent"]["deleted_by"], KEY_NAME);
    let admin = Cred::Bearer(server.token("root", &["admin:write"]));
    let reply = server
        .post(&admin, None, call(9, "delete_user", args.clone()))
        .await;
    assert_eq!(result(&reply)["structuredContent"]["deleted_by"], "root");
    let reply = server
        .post(&alice, None, call(9, "delete_user", args))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply
        .header("www-authenticate")
        .contains(r#"scope="admin:write read:data""#));
}

#[tokio::test]
async fn a_tool_sees_the_principal_the_layers_verified() {
    let server = start(100, false).await;
    let reply = server
        .post(&Cred::Key, None, call(1, "whoami", json!({})))
        .await;
    assert_eq!(
        result(&reply)["structuredContent"],
        json!({"subject": KEY_NAME, "scheme": "api_key", "scopes": []})
    );
    let carol = Cred::Bearer(server.token("carol", &["read:data", "admin:write"]));
    let reply = server
        .post(&carol, None, call(2, "whoami", json!({})))
        .await;
    assert_eq!(
        result(&reply)["structuredContent"],
        json!({"subject": "carol", "scheme": "jwt", "scopes": ["admin:write", "read:data"]})
    );
    // Anonymous callers never reach it.
    let reply = server
        .post(&Cred::None, None, call(3, "whoami", json!({})))
        .await;
    assert_eq!(reply.status, 401);
}

/// `tools/list` in a session, as each caller sees it.
async fn listings(server: &Server) {
    let key_session = server.open_session(&Cred::Key).await;
    let reply = server.post(&Cred::Key, Some(&key_session), list(2)).await;
    assert_eq!(
        tool_names(&reply),
        ["delete_user", "echo", "list_all_users", "whoami"]
    );
    let reader = Cred::Bearer(server.token("alice", &["read:data"]));
    let session = server.open_session(&reader).await;
    let reply = server.post(&reader, Some(&session), list(2)).await;
    assert_eq!(tool_names(&reply), ["echo", "get_user_data", "whoami"]);
    let admin = Cred::Bearer(server.token("root", &["read:data", "admin:write"]));
    let reply = server.post(&admin, None, list(3)).await;
    assert_eq!(
        tool_names(&reply),
        ["delete_user", "echo", "get_user_data", "whoami"]
    );
}

#[tokio::test]
async fn tools_list_shows_only_what_the_caller_may_call_in_json() {
    let server = start(100, false).await;
    let reply = server.post(&Cred::Key, None, list(1)).await;
    assert!(reply.header("content-type").starts_with("application/json"));
    listings(&server).await;

    // Bare, the same server lists everything: the layer filtered.
    let reply = start_bare().await.post(&Cred::None, None, list(1)).await;
    assert_eq!(tool_names(&reply), ALL_TOOLS);
}

#[tokio::test]
async fn tools_list_shows_only_what_the_caller_may_call_in_sse() {
    let server = start(100, true).await;
    let reply = server.post(&Cred::Key, None, list(1)).await;
    assert!(
        reply
            .header("content-type")
            .starts_with("text/event-stream"),
        "{:?}",
        reply.headers
    );
    listings(&server).await;
}

#[tokio::test]
async fn past_its_quota_a_principal_gets_429_and_others_do_not() {
    let server = start(3, false).await;
    let alice = Cred::Bearer(server.token("alice", &["read:data"]));
    for i in 0..3 {
        let reply = server
            .post(&alice, None, call(i, "whoami", json!({})))
            .await;
        assert_eq!(reply.status, 200, "call {i}: {}", reply.body);
    }
    let reply = server
        .post(&alice, None, call(9, "whoami", json!({})))
        .await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    let retry: u64 = reply.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another principal has its own quota.
    let reply = server
        .post(&Cred::Key, None, call(10, "whoami", json!({})))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn a_session_is_only_its_openers() {
    let server = start(100, false).await;
    let alice = Cred::Bearer(server.token("alice", &["read:data"]));
    let session = server.open_session(&alice).await;
    let (bare_id, tag) = session.rsplit_once('.').expect("a sealed id");
    assert_eq!(tag.len(), 22, "{session}");

    // The opener: calls in the session, opens its GET stream.
    let reply = server
        .post(&alice, Some(&session), call(2, "whoami", json!({})))
        .await;
    assert_eq!(result(&reply)["structuredContent"]["subject"], "alice");
    let stream = server
        .http
        .get(&server.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .bearer_auth(server.token("alice", &["read:data"]))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(stream);

    // Anyone else, with the id or its bare part: tower-mcp's own answer to
    // an unknown session, on POST, GET and DELETE.
    let bob = Cred::Bearer(server.token("bob", &["read:data"]));
    for (method, cred, id) in [
        (reqwest::Method::POST, &bob, session.as_str()),
        (reqwest::Method::POST, &Cred::Key, session.as_str()),
        (reqwest::Method::POST, &alice, bare_id),
        (reqwest::Method::GET, &bob, session.as_str()),
        (reqwest::Method::DELETE, &bob, session.as_str()),
    ] {
        let body = (method == reqwest::Method::POST).then(|| list(3));
        let reply = server.send(method.clone(), cred, Some(id), body).await;
        assert_eq!(reply.status, 404, "{method} {cred:?}: {}", reply.body);
        assert_eq!(reply.json()["error"]["code"], -32005, "{}", reply.body);
    }
    // A session id nobody was given: the same answer, from tower-mcp.
    let reply = server.post(&alice, Some("no-such-session"), list(4)).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], -32005);

    // Bob's DELETE closed nothing; alice's does.
    let reply = server.post(&alice, Some(&session), list(5)).await;
    assert_eq!(tool_names(&reply), ["echo", "get_user_data", "whoami"]);
    let reply = server
        .send(reqwest::Method::DELETE, &alice, Some(&session), None)
        .await;
    assert!(matches!(reply.status, 200 | 202 | 204), "{}", reply.body);
    let reply = server.post(&alice, Some(&session), list(6)).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
}

fn read(id: u64, uri: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "resources/read", "params": {"uri": uri}})
}

/// The record a `resources/read` answered.
fn record(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let text = reply.json()["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no contents in {}", reply.body))
        .to_owned();
    serde_json::from_str(&text).unwrap()
}

/// tower-mcp serves a URI from the first registered template that matches
/// it; the policy of the stack follows the same order
/// (`TemplatePrecedence::FirstRegistered`), so `notes://ann/shared` is
/// judged by the API-key rule of the template that serves it, not by the
/// public rule of the more specific one (which the policy's default,
/// most-specific precedence would apply: an anonymous caller would then
/// read what the API-key template serves).
#[tokio::test]
async fn a_uri_is_judged_by_the_template_tower_mcp_serves_it_from() {
    let server = start(100, false).await;
    let bare = start_bare().await;
    let uri = "notes://ann/shared";
    // Bare tower-mcp: the first registered template answers.
    let served = record(&bare.post(&Cred::None, None, read(1, uri)).await);
    assert_eq!(served["template"], "notes://{owner}/{name}");
    // Behind the layers: that template's rule (API key) decides.
    let reply = server.post(&Cred::None, None, read(2, uri)).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let reader = Cred::Bearer(server.token("alice", &["read:data"]));
    let reply = server.post(&reader, None, read(3, uri)).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let reply = server.post(&Cred::Key, None, read(4, uri)).await;
    assert_eq!(record(&reply)["template"], "notes://{owner}/{name}");
    // The policy's default precedence would have let the anonymous read
    // through: the reason the stack sets the order.
    let call = tower_mcp_auth::mcp::McpCall::new(
        "resources/read",
        Some(tower_mcp_auth::mcp::Target::Resource(uri.into())),
    );
    let default_order = tower_mcp_auth::mcp::McpPolicy::builder()
        .resource(
            tower_mcp_auth_stack_tower_mcp::NOTES_TEMPLATE,
            tower_mcp_auth::Rule::api_key(),
        )
        .resource(
            tower_mcp_auth_stack_tower_mcp::SHARED_NOTE_TEMPLATE,
            tower_mcp_auth::Rule::public(),
        )
        .build()
        .unwrap();
    assert!(default_order.authorize(None, Some(&call)).is_ok());
}

#[tokio::test]
async fn resource_rules_hold_where_tower_mcp_routes_more_loosely_than_the_policy() {
    let server = start(100, false).await;
    let reader = Cred::Bearer(server.token("alice", &["read:data"]));
    let other = Cred::Bearer(server.token("bob", &["read:profile"]));

    // The template's rule; the resource handler sees its caller too.
    let reply = server
        .post(&reader, None, read(1, "user://user_001/private"))
        .await;
    assert_eq!(
        record(&reply),
        json!({"user_id": "user_001", "read_by": "alice"})
    );
    let reply = server
        .post(&other, None, read(2, "user://user_001/private"))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);

    // tower-mcp's `{user_id}` takes `?` and `#`: bare, it serves these URIs
    // from the template to anyone. The policy's does not, so behind the
    // layers the unmatched-resource rule (API key) decides them, not the
    // default (any authenticated caller).
    let bare = start_bare().await;
    for uri in ["user://user_001?x/private", "user://a#b/private"] {
        let reply = bare.post(&Cred::None, None, read(3, uri)).await;
        assert_eq!(record(&reply)["read_by"], Value::Null, "{uri}");
        for cred in [&reader, &other] {
            let reply = server.post(cred, None, read(3, uri)).await;
            assert_eq!(reply.status, 403, "{uri} {cred:?}: {}", reply.body);
            assert!(
                reply.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("this call requires an API key"),
                "{}",
                reply.body
            );
        }
    }

    // API key only; listings show each caller what it may read.
    let reply = server
        .post(&Cred::Key, None, read(4, "admin://system/stats"))
        .await;
    assert_eq!(record(&reply), json!({"users": 3}));
    let reply = server
        .post(&reader, None, read(4, "admin://system/stats"))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let lists = |cred: Cred| {
        let server = &server;
        async move {
            let resources = server
                .post(
                    &cred,
                    None,
                    json!({"jsonrpc": "2.0", "id": 5, "method": "resources/list"}),
                )
                .await
                .json()["result"]["resources"]
                .clone();
            let templates = server
                .post(
                    &cred,
                    None,
                    json!({"jsonrpc": "2.0", "id": 6, "method": "resources/templates/list"}),
                )
                .await
                .json()["result"]["resourceTemplates"]
                .clone();
            let uris = |v: &Value, field: &str| -> Vec<String> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r[field].as_str().unwrap().to_owned())
                    .collect()
            };
            (uris(&resources, "uri"), uris(&templates, "uriTemplate"))
        }
    };
    // tower-mcp lists templates sorted. The shared notes' template is
    // shadowed: tower-mcp serves every URI it matches from the API-key
    // template registered before it, so under the same precedence its own
    // text is that template's too, and only a key holder sees it listed.
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        lists(Cred::Key).await,
        (
            owned(&["admin://system/stats"]),
            owned(&["notes://{owner}/shared", "notes://{owner}/{name}"])
        )
    );
    assert_eq!(
        lists(reader.clone()).await,
        (vec![], owned(&["user://{user_id}/private"]))
    );
    assert_eq!(lists(other).await, (vec![], vec![]));
}
