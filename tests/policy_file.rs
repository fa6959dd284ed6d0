//! Policy as data, end to end (issue 17, items 7 and 8): the example's
//! `examples/mcp_server/policy.toml` gives the same decisions as its
//! built-in `policy()` for every tool, resource and prompt the server
//! offers and every kind of caller, in process and through the real server
//! (`POLICY_FILE`); the metadata's `scopes_supported` is every scope the
//! policy names; a `SharedPolicy` reload changes what a running stack
//! allows, and a bad file changes nothing.

mod support;
use support::mcp_server;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use axum::{body::Body, Router};
use http::{Request, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt as _};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    mcp::{McpPolicy, McpPolicyLayer, McpRequest, SharedPolicy},
    AuthScheme, Principal, Scopes,
};

const KEY: &str = "mcp_sk_policy-file-key-0123456789abcdef";
const JWT_SECRET: &str = "policy-file-hs256-secret-0123456789abcdef";
const ACCEPT: &str = "application/json, text/event-stream";

fn policy_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mcp_server/policy.toml")
}

struct App {
    addr: SocketAddr,
    public_url: String,
}

/// The example on loopback, stateless (raw calls need no session), with
/// the built-in rules (`None`) or a policy file.
async fn serve(policy_file: Option<PathBuf>) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("ops", KEY));
    let mut config = mcp_server::Config::new(format!("http://{addr}/mcp"), keys);
    config.stateless = true;
    config.auth.jwt_secret = Some(SecretString::from(JWT_SECRET));
    config.auth.policy_file = policy_file;
    let app = mcp_server::app(&config).await.unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        addr,
        public_url: config.auth.public_url,
    }
}

/// The example's MCP service with no layer in front: what it offers.
async fn offered() -> (Vec<String>, Vec<String>, Vec<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = mcp_server::Config::new(format!("http://{addr}/mcp"), ApiKeys::new());
    config.stateless = true;
    let bare = Router::new().nest_service("/mcp", mcp_server::mcp_service(&config).unwrap());
    tokio::spawn(async move { axum::serve(listener, bare).await.unwrap() });
    let list = |method: &'static str, member: &'static str, field: &'static str| async move {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method}).to_string();
        let reply: Value = reqwest::Client::new()
            .post(format!("http://{addr}/mcp"))
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = reply["result"][member]
            .as_array()
            .cloned()
            .unwrap_or_default();
        items
            .iter()
            .map(|i| i[field].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let tools = list("tools/list", "tools", "name").await;
    let resources = list("resources/list", "resources", "uri").await;
    let templates = list(
        "resources/templates/list",
        "resourceTemplates",
        "uriTemplate",
    )
    .await;
    let prompts = list("prompts/list", "prompts", "name").await;
    assert!(tools.len() >= 11, "the example offers its tools: {tools:?}");
    assert!(!templates.is_empty(), "{templates:?}");
    let mut uris = resources;
    for t in &templates {
        uris.push(t.clone()); // a completion names the template itself
        uris.push(t.replace("{user_id}", "user_001"));
    }
    uris.extend([
        "user://user_001?/private".to_owned(),
        "file:///etc/passwd".to_owned(),
    ]);
    let mut tools = tools;
    tools.push("no_such_tool".into());
    let mut prompts = prompts;
    prompts.push("no_such_prompt".into());
    (tools, uris, prompts)
}

/// Every kind of caller: anonymous, an API key, bearer tokens (JWT and
/// introspected) with no scope, each scope either policy names, an
/// unrelated one, and all of them.
fn callers(scopes: &Scopes) -> Vec<Option<Principal>> {
    let jwt = |s: &str| Some(Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse(s)));
    let mut out = vec![
        None,
        Some(Principal::new(AuthScheme::ApiKey, "ops")),
        Some(Principal::new(AuthScheme::Introspection, "i")),
        jwt(""),
        jwt("unrelated:scope"),
        jwt(&scopes.to_string()),
    ];
    out.extend(scopes.iter().map(jwt));
    out
}

fn call(body: Value) -> tower_mcp_auth::mcp::McpCall {
    McpRequest::parse(body.to_string().as_bytes())
        .unwrap()
        .calls()[0]
        .clone()
}

/// A decision as a user sees it: allowed, or the refusal's kind,
/// description and `scope`.
fn decision(
    p: &McpPolicy,
    who: Option<&Principal>,
    c: Option<&tower_mcp_auth::mcp::McpCall>,
) -> String {
    match p.authorize(who, c) {
        Ok(()) => "allowed".into(),
        Err(e) => format!(
            "{:?} {} scope={:?}",
            e.kind(),
            e.description(),
            e.scope().map(ToString::to_string)
        ),
    }
}

#[tokio::test]
async fn the_file_and_the_code_decide_alike_for_everything_the_server_offers() {
    let file = McpPolicy::from_file(policy_file()).unwrap();
    let code = mcp_server::policy().unwrap();
    assert_eq!(file.scopes_named(), code.scopes_named());
    let (tools, uris, prompts) = offered().await;

    let mut calls = Vec::new();
    for t in &tools {
        calls.push(call(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": t}}),
        ));
    }
    for u in &uris {
        for method in ["resources/read", "resources/subscribe"] {
            calls.push(call(
                json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"uri": u}}),
            ));
        }
    }
    for p in &prompts {
        calls.push(call(
            json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": p}}),
        ));
    }
    for method in [
        "initialize",
        "ping",
        "tools/list",
        "resources/list",
        "logging/setLevel",
    ] {
        calls.push(call(json!({"jsonrpc": "2.0", "id": 1, "method": method})));
    }

    let mut compared = 0;
    for who in callers(&code.scopes_named()) {
        let who = who.as_ref();
        assert_eq!(decision(&file, who, None), decision(&code, who, None));
        for c in &calls {
            assert_eq!(
                decision(&file, who, Some(c)),
                decision(&code, who, Some(c)),
                "{:?} {:?} by {who:?}",
                c.method(),
                c.target()
            );
            compared += 1;
        }
    }
    assert!(compared > 300, "{compared}");
}

/// What a caller sees of one call: the status, the challenge (with the
/// server's own address taken out) and the JSON-RPC error, if any.
async fn seen(app: &App, cred: &Option<String>, bearer: bool, body: &str) -> String {
    let mut req = reqwest::Client::new()
        .post(format!("http://{}/mcp", app.addr))
        .header("content-type", "application/json")
        .header("accept", ACCEPT);
    match cred {
        Some(c) if bearer => req = req.bearer_auth(c),
        Some(c) => req = req.header("x-api-key", c),
        None => {}
    }
    let res = req.body(body.to_owned()).send().await.unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().replace(&app.addr.to_string(), "ADDR"))
        .unwrap_or_default();
    let reply: Value = res.json().await.unwrap_or(Value::Null);
    let error = if status == 200 {
        // Past the policy: whether the server ran it is what matters.
        json!(reply.get("result").is_some())
    } else {
        reply["error"].clone()
    };
    format!("{status} {challenge} {error}")
}

#[tokio::test]
async fn through_the_real_server_policy_file_changes_nothing_a_caller_sees() {
    let code = serve(None).await;
    let file = serve(Some(policy_file())).await;
    let scopes = mcp_server::policy().unwrap().scopes_named();
    let token = |app: &App, s: &str| {
        let s: Vec<&str> = s.split_whitespace().collect();
        mcp_server::mint_token(
            &SecretString::from(JWT_SECRET),
            &app.public_url,
            "alice",
            &s,
        )
    };
    let mut creds: Vec<(Option<&str>, bool)> = vec![(None, false), (Some(KEY), false)];
    let each: Vec<String> = scopes.iter().map(str::to_owned).collect();
    let all = scopes.to_string();
    creds.push((Some(""), true));
    creds.extend(each.iter().map(|s| (Some(s.as_str()), true)));
    creds.push((Some(all.as_str()), true));

    let (tools, uris, _) = offered().await;
    let mut bodies = Vec::new();
    for t in &tools {
        bodies.push(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": t, "arguments": {}}})
                .to_string(),
        );
    }
    for u in &uris {
        bodies.push(
            json!({"jsonrpc": "2.0", "id": 7, "method": "resources/read", "params": {"uri": u}})
                .to_string(),
        );
    }
    let mut refusals = 0;
    for (cred, bearer) in &creds {
        for body in &bodies {
            let with = |app: &App| match cred {
                Some(s) if *bearer => Some(token(app, s)),
                Some(k) => Some((*k).to_owned()),
                None => None,
            };
            let a = seen(&code, &with(&code), *bearer, body).await;
            let b = seen(&file, &with(&file), *bearer, body).await;
            assert_eq!(a, b, "{cred:?} bearer={bearer}: {body}");
            refusals += usize::from(!a.starts_with("200"));
        }
    }
    assert!(
        refusals > 50,
        "the comparison covers refusals too: {refusals}"
    );
}

#[tokio::test]
async fn the_metadata_lists_every_scope_the_policy_names() {
    let contract = [
        "admin:write",
        "data:read",
        "read:data",
        "read:profile",
        "write:data",
        "write:profile",
    ];
    for policy_file in [None, Some(policy_file())] {
        let app = serve(policy_file).await;
        let doc: Value = reqwest::get(format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            app.addr
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(doc["scopes_supported"], json!(contract), "{doc}");
        assert_eq!(*mcp_server::SCOPES, contract);
    }
    // A policy that names a scope more: the metadata follows.
    let path = std::env::temp_dir().join(format!("tma-policy-more-{}.toml", std::process::id()));
    let text = std::fs::read_to_string(policy_file()).unwrap();
    std::fs::write(
        &path,
        format!("{text}\n[methods]\n\"logging/setLevel\" = {{ scheme = \"bearer\", scopes = [\"ops:logs\"] }}\n"),
    )
    .unwrap();
    let app = serve(Some(path.clone())).await;
    let doc: Value = reqwest::get(format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        app.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let listed: Vec<&str> = doc["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(listed.contains(&"ops:logs"), "{listed:?}");
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn a_reload_changes_what_a_running_stack_allows_and_a_bad_file_changes_nothing() {
    let path = std::env::temp_dir().join(format!("tma-policy-reload-{}.toml", std::process::id()));
    std::fs::write(&path, "[tools]\ndeploy = \"api_key\"\n").unwrap();
    let policy = SharedPolicy::from_file(&path).unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("ops", KEY));
    let svc = ServiceBuilder::new()
        .layer(ApiKeyLayer::new(keys).optional())
        .layer(McpPolicyLayer::new(policy.clone()))
        .service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::from("{}")))
        });
    let deploy = || {
        Request::post("/mcp")
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}}"#,
            ))
            .unwrap()
    };
    assert_eq!(
        svc.clone().oneshot(deploy()).await.unwrap().status(),
        StatusCode::OK
    );

    std::fs::write(
        &path,
        "[tools]\ndeploy = { scheme = \"bearer\", scopes = [\"deploy\"] }\n",
    )
    .unwrap();
    policy.reload_file(&path).unwrap();
    // The API key is valid but of the wrong kind now: 403 (issue 25 item 3).
    let res = svc.clone().oneshot(deploy()).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // A mistake on line 3: refused, naming it; the stack keeps the rules in force.
    std::fs::write(&path, "[tools]\ndeploy = \"api_key\"\nrollback = { scheme = \"bearer\", scopes = [] , any_scope = [] }\n").unwrap();
    let err = policy.reload_file(&path).unwrap_err().to_string();
    assert!(
        err.ends_with(":3: tool `rollback`: Rule::any_scope([]) can never be satisfied"),
        "{err}"
    );
    let res = svc.clone().oneshot(deploy()).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "the old rules stay");
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn the_files_quota_and_tool_costs_throttle_the_real_server() {
    // policy.toml ends with its (empty) `[rate_limit]` table.
    let path = std::env::temp_dir().join(format!("tma-policy-rate-{}.toml", std::process::id()));
    let text = std::fs::read_to_string(policy_file()).unwrap();
    std::fs::write(
        &path,
        format!("{text}\nper_minute = 5\ncosts = {{ get_my_profile = 3 }}\n"),
    )
    .unwrap();
    let app = serve(Some(path.clone())).await;
    let token = mcp_server::mint_token(
        &SecretString::from(JWT_SECRET),
        &app.public_url,
        "frank",
        &["read:profile", "read:data"],
    );
    let call = |tool: &str| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
            .to_string()
    };
    let post = |body: String| {
        reqwest::Client::new()
            .post(format!("http://{}/mcp", app.addr))
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .bearer_auth(&token)
            .body(body)
            .send()
    };
    // 5 a minute: get_my_profile costs 3, get_user_data 1.
    let res = post(call("get_my_profile")).await.unwrap();
    assert_eq!(res.status(), 200);
    // 3 of the 5 units spent: 2 left.
    let state = res.headers()["ratelimit"].to_str().unwrap();
    assert!(state.starts_with("\"default\";r=2;"), "{state}");
    assert_eq!(post(call("get_user_data")).await.unwrap().status(), 200);
    let res = post(call("get_my_profile")).await.unwrap();
    assert_eq!(res.status(), 429, "3 more units than the 1 left");
    assert_eq!(post(call("get_user_data")).await.unwrap().status(), 200);
    assert_eq!(post(call("get_user_data")).await.unwrap().status(), 429);
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn a_reload_reprices_calls_for_a_running_rate_limiter() {
    use tower_mcp_auth::rate_limit::{Quota, RateLimitLayer};
    let path = std::env::temp_dir().join(format!("tma-policy-cost-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"rate_limit":{"costs":{"deploy":10}}}"#).unwrap();
    let policy = SharedPolicy::from_file(&path).unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("ops", KEY));
    let svc = ServiceBuilder::new()
        .layer(ApiKeyLayer::new(keys).optional())
        .layer(McpPolicyLayer::new(policy.clone()))
        .layer(RateLimitLayer::from_policy(&policy, Quota::per_minute(12)))
        .service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::from("{}")))
        });
    let deploy = || {
        let mut req = Request::post("/mcp")
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}}"#,
            ))
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::from((
                [127, 0, 0, 1],
                9,
            ))));
        req
    };
    let remaining =
        |res: &http::Response<Body>| res.headers()["ratelimit"].to_str().unwrap().to_owned();
    let res = svc.clone().oneshot(deploy()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(remaining(&res).contains(";r=2;"), "{}", remaining(&res));
    // Cheaper and a bigger quota from now on.
    std::fs::write(
        &path,
        r#"{"rate_limit":{"per_minute":60,"costs":{"deploy":1}}}"#,
    )
    .unwrap();
    policy.reload_file(&path).unwrap();
    let res = svc.clone().oneshot(deploy()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(remaining(&res).contains(";r=59;"), "{}", remaining(&res));
    std::fs::remove_file(path).unwrap();
}

/// The example re-reads `POLICY_FILE` on `SIGHUP`: sent to this process
/// (the server runs in it), the new rules decide the next call, the
/// metadata lists the scopes they name, and a bad file leaves them in
/// force.
#[cfg(unix)]
#[tokio::test]
async fn the_example_reloads_policy_file_on_sighup() {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered before anything is sent, so SIGHUP can never end the
    // test process, whenever the server's own handler starts listening.
    let _hangup = signal(SignalKind::hangup()).unwrap();
    let path = std::env::temp_dir().join(format!("tma-policy-hup-{}.toml", std::process::id()));
    let text = std::fs::read_to_string(policy_file()).unwrap();
    std::fs::write(&path, &text).unwrap();
    let app = serve(Some(path.clone())).await;
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "list_all_users", "arguments": {}}})
    .to_string();
    let status = || async {
        reqwest::Client::new()
            .post(format!("http://{}/mcp", app.addr))
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .header("x-api-key", KEY)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let hangup_until = |want: u16| async move {
        for _ in 0..50 {
            let ok = std::process::Command::new("kill")
                .args(["-HUP", &std::process::id().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if status().await == want {
                return true;
            }
        }
        false
    };
    assert_eq!(status().await, 200, "an API key may list all users");

    let listed = || async {
        let doc: Value = reqwest::get(format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            app.addr
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        doc["scopes_supported"].to_string()
    };
    assert!(!listed().await.contains("admin:users"));

    // The operator makes list_all_users bearer-only, with a scope no rule
    // named before, and sends SIGHUP.
    let stricter = text.replace(
        "list_all_users = \"api_key\"",
        "list_all_users = { scheme = \"bearer\", scopes = [\"admin:users\"] }",
    );
    assert_ne!(stricter, text);
    std::fs::write(&path, &stricter).unwrap();
    assert!(hangup_until(403).await, "the new rule decides after SIGHUP");
    // The metadata lists the new scope at once (issue 25, item 2).
    assert!(
        listed().await.contains("\"admin:users\""),
        "{}",
        listed().await
    );

    // A file with a mistake: refused, the stricter rules stay.
    std::fs::write(
        &path,
        text.replace(
            "list_all_users = \"api_key\"",
            "list_all_users = \"apikey\"",
        ),
    )
    .unwrap();
    for _ in 0..3 {
        assert!(std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap()
            .success());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(status().await, 403, "a bad file changes nothing");
    }
    // And a good one again.
    std::fs::write(&path, &text).unwrap();
    assert!(hangup_until(200).await);
    std::fs::remove_file(path).unwrap();
}
