//! Interoperability: the example MCP server (`examples/mcp_server/`, served
//! in-process on loopback) driven by MCP clients nobody here wrote — the
//! official TypeScript SDK (`tests/interop/node/client.mjs`) and the official
//! Python SDK (`tests/interop/python/client.py`) — with a real OAuth 2
//! authorization server, `oauth2-mock-server`
//! (`tests/interop/authserver/server.mjs`).
//!
//! Flows (one JSON result line per flow and client):
//!
//! | flow | what |
//! | --- | --- |
//! | `api_key` | `X-API-Key`: initialize, list tools, `create_admin_user`, read `admin://system/stats` |
//! | `wrong_key` | a wrong `X-API-Key` is refused and the SDK shows the server's reason |
//! | `bearer` | a client-credentials token from the authorization server, `get_user_data` |
//! | `bad_token` | a token the server rejects is refused and the SDK shows the server's reason |
//! | `oauth` | no credential: the SDK's own OAuth client — 401, `resource_metadata`, protected-resource metadata, authorization-server metadata, pre-registered client, authorization code + PKCE (redirect automated), tool call |
//! | `step_up` | a `read:data` token calls `update_user_data`: 403 `insufficient_scope`, the SDK re-authorizes with the scope, the call succeeds |
//!
//! rmcp's own client (Rust) runs `bearer`, `oauth` and `step_up` here (its
//! step-up is driven by the application: rmcp hands over the 403 challenge,
//! `ServiceError::auth_challenge`); its `api_key` flow is
//! `tests/e2e_api_key.rs`.
//!
//! The server is configured the way a user configures it, through the
//! example's environment contract (`PUBLIC_URL`, `API_KEY`, `OAUTH_ISSUER`,
//! `OAUTH_JWKS_URL`). The bearer flows are expected to pass only when the
//! server advertises the authorization server in its protected-resource
//! metadata; otherwise they are reported as skipped, with the reason.
//!
//! Install the clients (`scripts/test` does it):
//!
//! ```text
//! npm ci --prefix tests/interop/node
//! npm ci --prefix tests/interop/authserver
//! python3 -m venv target/interop-venv
//! target/interop-venv/bin/pip install -r tests/interop/python/requirements.txt
//! ```
//!
//! Missing ones are skipped with a notice, unless `INTEROP_REQUIRED=1` (set
//! by `scripts/test`), which turns a missing client into a failure.
//! `INTEROP_PYTHON` names another Python interpreter that has `mcp`.

mod interop_common;
mod support;
use interop_common::{root, set_env, AuthServer};
use support::mcp_server;

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use http::{HeaderName, HeaderValue};
use rmcp::{
    model::{CallToolRequestParams, ClientConfig},
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    ServiceExt as _,
};
use serde_json::{json, Value};

const API_KEY: &str = "mcp_sk_interop-0123456789abcdef0123";
const CLIENT_ID: &str = "interop-client";
/// Never contacted: the authorization server's redirect is read, not followed.
const REDIRECT_URL: &str = "http://127.0.0.1:9/callback";
const FLOWS: [&str; 6] = [
    "api_key",
    "wrong_key",
    "bearer",
    "bad_token",
    "oauth",
    "step_up",
];
/// Flows that need the server to accept the authorization server's tokens.
const OAUTH_FLOWS: [&str; 4] = ["bearer", "bad_token", "oauth", "step_up"];
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Says why something is skipped; fails instead under `INTEROP_REQUIRED=1`.
fn missing(what: &str, fix: &str) {
    interop_common::missing("interop", what, fix);
}

/// One MCP client implementation: how to run its flows.
struct ExternalClient {
    name: &'static str,
    program: PathBuf,
    script: PathBuf,
}

fn node_client() -> Option<ExternalClient> {
    let dir = root().join("tests/interop/node");
    if !dir
        .join("node_modules/@modelcontextprotocol/sdk/package.json")
        .exists()
    {
        missing(
            "the TypeScript SDK (@modelcontextprotocol/sdk)",
            "npm ci --prefix tests/interop/node",
        );
        return None;
    }
    Some(ExternalClient {
        name: "typescript",
        program: "node".into(),
        script: dir.join("client.mjs"),
    })
}

fn python_client() -> Option<ExternalClient> {
    let venv = root().join("target/interop-venv/bin/python");
    let program: PathBuf = match std::env::var_os("INTEROP_PYTHON") {
        Some(p) => p.into(),
        None if venv.exists() => venv,
        None => "python3".into(),
    };
    let has_sdk = std::process::Command::new(&program)
        .args(["-c", "import mcp.client.streamable_http, httpx2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        missing(
            &format!("the Python SDK (`mcp`) for {}", program.display()),
            "python3 -m venv target/interop-venv && target/interop-venv/bin/pip install -r tests/interop/python/requirements.txt",
        );
        return None;
    }
    Some(ExternalClient {
        name: "python",
        program,
        script: root().join("tests/interop/python/client.py"),
    })
}

/// Starts the authorization server (blocking: it runs before any runtime
/// exists, so that its issuer can go into the environment).
fn start_authserver(resource: &str) -> Option<AuthServer> {
    let dir = root().join("tests/interop/authserver");
    if !dir
        .join("node_modules/oauth2-mock-server/package.json")
        .exists()
    {
        missing(
            "the authorization server (oauth2-mock-server)",
            "npm ci --prefix tests/interop/authserver",
        );
        return None;
    }
    let mut command = std::process::Command::new("node");
    command
        .arg("server.mjs")
        .current_dir(&dir)
        .env("RESOURCE", resource);
    Some(AuthServer::spawn(
        command,
        "node tests/interop/authserver/server.mjs",
    ))
}

/// Serves the example app, configured through its environment contract, on
/// the already bound `listener`.
async fn serve_example(listener: tokio::net::TcpListener) {
    let config = mcp_server::Config::from_env().expect("the example's configuration");
    let app = mcp_server::app(&config).await.expect("the example app");
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

/// Whether the server's protected-resource metadata lists `issuer`.
async fn advertises(public_url: &str, issuer: &str) -> (bool, Value) {
    let url = public_url.replacen("/mcp", "/.well-known/oauth-protected-resource/mcp", 1);
    let res = reqwest::get(&url).await.expect("fetch the PRM");
    assert_eq!(res.status(), 200, "protected-resource metadata at {url}");
    let prm: Value = res.json().await.expect("PRM JSON");
    assert_eq!(prm["resource"], public_url, "PRM resource: {prm}");
    let listed = prm["authorization_servers"].as_array().is_some_and(|a| {
        a.iter().any(|s| {
            // A root issuer with or without its trailing slash.
            s.as_str()
                .is_some_and(|s| s.trim_end_matches('/') == issuer.trim_end_matches('/'))
        })
    });
    (listed, prm)
}

/// A flow's outcome, one row of the report.
#[derive(Clone, Debug)]
struct Outcome {
    client: String,
    flow: String,
    /// `pass`, `fail` or `skip`.
    result: String,
    details: Value,
}

async fn run_client(
    client: &ExternalClient,
    flows: &[&str],
    env: &[(&str, String)],
) -> Vec<Outcome> {
    let mut cmd = tokio::process::Command::new(&client.program);
    cmd.arg(&client.script)
        .args(flows)
        .current_dir(client.script.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let output = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} client timed out", client.name))
        .unwrap_or_else(|e| panic!("run the {} client: {e}", client.name));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "interop: {} client ran {flows:?} in {:.1} s (exit {})",
        client.name,
        started.elapsed().as_secs_f64(),
        output.status
    );
    if !stderr.trim().is_empty() {
        eprintln!(
            "--- {} client stderr ---\n{}\n---",
            client.name,
            stderr.trim()
        );
    }
    let mut outcomes: Vec<Outcome> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Outcome {
            client: client.name.into(),
            flow: v["flow"].as_str().unwrap_or("?").into(),
            result: v["result"].as_str().unwrap_or("fail").into(),
            details: v["details"].clone(),
        })
        .collect();
    for flow in flows {
        if !outcomes.iter().any(|o| o.flow == *flow) {
            outcomes.push(Outcome {
                client: client.name.into(),
                flow: (*flow).into(),
                result: "fail".into(),
                details: json!({"error": "no result line", "exit": output.status.to_string()}),
            });
        }
    }
    outcomes
}

/// rmcp's own client with a bearer token from the authorization server.
async fn rmcp_bearer(public_url: &str, issuer: &str) -> Outcome {
    let result = async {
        let token = client_credentials(issuer, "read:data").await?;
        let headers = HashMap::from([(
            HeaderName::from_static("authorization"),
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?,
        )]);
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(public_url.to_owned())
                .custom_headers(headers),
        );
        let client = ClientConfig::default()
            .serve(transport)
            .await
            .map_err(|e| format!("initialize: {e}"))?;
        let args = json!({"user_id": "user_001"});
        let res = client
            .call_tool(
                CallToolRequestParams::new("get_user_data")
                    .with_arguments(args.as_object().cloned().unwrap_or_default()),
            )
            .await
            .map_err(|e| format!("tools/call: {e}"))?;
        let _ = client.cancel().await;
        let user = res
            .structured_content
            .filter(|_| res.is_error != Some(true))
            .ok_or_else(|| format!("tool error: {:?}", res.content))?;
        Ok::<_, String>(user)
    }
    .await;
    let (ok, details) = match result {
        Ok(user) => (user["id"] == "user_001", json!({"user": user["id"]})),
        Err(e) => (false, json!({"error": e})),
    };
    Outcome {
        client: "rust-rmcp".into(),
        flow: "bearer".into(),
        result: if ok { "pass" } else { "fail" }.into(),
        details,
    }
}

/// The challenge of an unauthenticated initialize.
async fn unauthenticated_challenge(public_url: &str) -> Result<String, String> {
    let res = reqwest::Client::new()
        .post(public_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"rmcp-interop","version":"1.0"}}}"#)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status() != 401 {
        return Err(format!("unauthenticated initialize: {}", res.status()));
    }
    res.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| "401 without WWW-Authenticate".into())
}

/// rmcp's own OAuth client (`rmcp::transport::auth`) answering `challenge`:
/// discovery from it, the pre-registered client, authorization code + PKCE
/// with the redirect read (not followed). Returns the authorized manager and
/// what the authorization request said.
async fn rmcp_authorize(
    public_url: &str,
    challenge: String,
    scopes: &[&str],
) -> Result<(rmcp::transport::auth::AuthorizationManager, Value), String> {
    use rmcp::transport::auth::{AuthorizationManager, AuthorizationRequest, OAuthState};

    // Loopback servers are private addresses, which rmcp refuses by default.
    let manager = AuthorizationManager::new_allowing_private_addresses(public_url)
        .await
        .map_err(|e| format!("manager: {e}"))?;
    let mut state = OAuthState::Unauthorized(manager);
    let mut request = AuthorizationRequest::new(REDIRECT_URL)
        .with_preregistered_client(CLIENT_ID)
        .with_challenge(challenge);
    if !scopes.is_empty() {
        request = request.with_scopes(scopes.iter().copied());
    }
    state
        .start_authorization(request)
        .await
        .map_err(|e| format!("start_authorization: {e}"))?;
    let url = state
        .get_authorization_url()
        .await
        .map_err(|e| format!("authorization url: {e}"))?;
    let parsed = reqwest::Url::parse(&url).map_err(|e| e.to_string())?;
    let param = |name: &str| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let asked = json!({
        "resource": param("resource"),
        "requested_scope": param("scope"),
        "pkce": param("code_challenge_method"),
    });
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?
        .get(&url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("authorization endpoint answered {}", res.status()))?
        .to_owned();
    state
        .handle_callback_url(&location)
        .await
        .map_err(|e| format!("callback: {e}"))?;
    let manager = state
        .into_authorization_manager()
        .ok_or("not authorized after the callback")?;
    Ok((manager, asked))
}

type RmcpClient = rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>;

async fn rmcp_connect(
    public_url: &str,
    manager: rmcp::transport::auth::AuthorizationManager,
) -> Result<RmcpClient, String> {
    let transport = StreamableHttpClientTransport::with_client(
        rmcp::transport::auth::AuthClient::new(reqwest::Client::default(), manager),
        StreamableHttpClientTransportConfig::with_uri(public_url.to_owned()),
    );
    ClientConfig::default()
        .serve(transport)
        .await
        .map_err(|e| format!("initialize: {e}"))
}

async fn rmcp_call(
    client: &RmcpClient,
    tool: &str,
    args: Value,
) -> Result<Result<Value, String>, rmcp::ServiceError> {
    let res = client
        .call_tool(
            CallToolRequestParams::new(tool.to_owned())
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await?;
    Ok(res
        .structured_content
        .filter(|_| res.is_error != Some(true))
        .ok_or_else(|| format!("{tool}: tool error: {:?}", res.content)))
}

fn rmcp_outcome(flow: &str, result: Result<(bool, Value), String>) -> Outcome {
    let (ok, details) = result.unwrap_or_else(|e| (false, json!({ "error": e })));
    Outcome {
        client: "rust-rmcp".into(),
        flow: flow.into(),
        result: if ok { "pass" } else { "fail" }.into(),
        details,
    }
}

/// rmcp's OAuth client from the 401 to a tool call.
async fn rmcp_oauth(public_url: &str) -> Outcome {
    let result = async {
        let challenge = unauthenticated_challenge(public_url).await?;
        let (manager, mut details) = rmcp_authorize(public_url, challenge, &[]).await?;
        let client = rmcp_connect(public_url, manager).await?;
        let user = rmcp_call(&client, "get_user_data", json!({"user_id": "user_002"}))
            .await
            .map_err(|e| format!("tools/call: {e}"))??;
        let _ = client.cancel().await;
        details["user"] = user["id"].clone();
        Ok((
            user["id"] == "user_002" && details["resource"] == public_url,
            details,
        ))
    }
    .await;
    rmcp_outcome("oauth", result)
}

/// rmcp's step-up: rmcp surfaces the 403 `insufficient_scope` challenge
/// (`ServiceError::auth_challenge`); the application authorizes again with
/// it and reconnects.
async fn rmcp_step_up(public_url: &str) -> Outcome {
    let result = async {
        let challenge = unauthenticated_challenge(public_url).await?;
        let (manager, _) = rmcp_authorize(public_url, challenge, &["read:data"]).await?;
        let client = rmcp_connect(public_url, manager).await?;
        rmcp_call(&client, "get_user_data", json!({"user_id": "user_003"}))
            .await
            .map_err(|e| format!("tools/call: {e}"))??;
        let update = json!({"user_id": "user_003", "data": {"department": "Legal"}});
        let refused = rmcp_call(&client, "update_user_data", update.clone()).await;
        let _ = client.cancel().await;
        let challenge = match refused {
            Err(e) => e
                .auth_challenge()
                .map(str::to_owned)
                .ok_or_else(|| format!("update_user_data failed without a challenge: {e}"))?,
            Ok(r) => return Err(format!("update_user_data with read:data: {r:?}")),
        };
        let insufficient = challenge.contains("insufficient_scope");
        let (manager, mut details) = rmcp_authorize(public_url, challenge, &[]).await?;
        let client = rmcp_connect(public_url, manager).await?;
        let updated = rmcp_call(&client, "update_user_data", update)
            .await
            .map_err(|e| format!("tools/call: {e}"))??;
        let _ = client.cancel().await;
        details["insufficient_scope"] = insufficient.into();
        details["changed"] = updated["changed"].clone();
        Ok((insufficient && updated["status"] == "success", details))
    }
    .await;
    rmcp_outcome("step_up", result)
}

async fn client_credentials(issuer: &str, scope: &str) -> Result<String, String> {
    let res = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={CLIENT_ID}&scope={}",
            scope.replace(':', "%3A").replace(' ', "+")
        ))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("token endpoint: {}", res.status()));
    }
    let v: Value = res.json().await.map_err(|e| e.to_string())?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "no access_token".into())
}

fn skipped(client: &str, flow: &str, reason: &str) -> Outcome {
    Outcome {
        client: client.into(),
        flow: flow.into(),
        result: "skip".into(),
        details: json!({ "reason": reason }),
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let clients = ["typescript", "python", "rust-rmcp"];
    let mut out =
        String::from("| flow | typescript | python | rust-rmcp |\n| --- | --- | --- | --- |\n");
    for flow in FLOWS {
        let cells: Vec<&str> = clients
            .iter()
            .map(|c| {
                if *c == "rust-rmcp" && (flow == "api_key" || flow == "wrong_key") {
                    return "tests/e2e_api_key.rs";
                }
                if *c == "rust-rmcp" && flow == "bad_token" {
                    return "src/jwt/layer.rs tests";
                }
                outcomes
                    .iter()
                    .find(|o| o.client == *c && o.flow == flow)
                    .map_or("-", |o| o.result.as_str())
            })
            .collect();
        let _ = writeln!(out, "| {flow} | {} |", cells.join(" | "));
    }
    out
}

#[test]
fn official_sdks_against_the_example_server() {
    // The example reads its configuration from the environment; set it
    // before any other thread exists (a runtime is built below).
    for var in [
        "JWT_SECRET",
        "OAUTH_AUDIENCE",
        "OAUTH_INTROSPECTION_URL",
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
        "REDIS_URL",
        "MCP_STATELESS",
        "RATE_LIMIT_PER_MINUTE",
    ] {
        std::env::remove_var(var);
    }
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let public_url = format!("http://{addr}/mcp");
    set_env(&[
        ("BIND", &addr.to_string()),
        ("PUBLIC_URL", &public_url),
        ("API_KEY", API_KEY),
    ]);

    let node = node_client();
    let python = python_client();
    let clients: Vec<ExternalClient> = node.into_iter().chain(python).collect();

    // The authorization server first, so that its issuer is in the
    // environment before the example reads it.
    let authserver = start_authserver(&public_url);
    if let Some(auth) = &authserver {
        set_env(&[
            ("OAUTH_ISSUER", &auth.issuer),
            ("OAUTH_JWKS_URL", &format!("{}/jwks", auth.issuer)),
        ]);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    rt.block_on(async {
        std_listener.set_nonblocking(true).unwrap();
        serve_example(tokio::net::TcpListener::from_std(std_listener).unwrap()).await;

        let oauth = match &authserver {
            None => Err("the authorization server is not installed".to_owned()),
            Some(auth) => match advertises(&public_url, &auth.issuer).await {
                (true, _) => Ok(auth.issuer.clone()),
                (false, prm) => Err(format!(
                    "the server does not advertise the authorization server (OAUTH_ISSUER) in its protected-resource metadata: {prm}"
                )),
            },
        };
        if let Err(reason) = &oauth {
            eprintln!("NOTICE: interop: bearer, oauth and step_up are skipped: {reason}");
        }
        let oauth = oauth.map_err(|reason| {
            reason
                .split_once(':')
                .map_or(reason.clone(), |(short, _)| short.to_owned())
        });

        let mut env = vec![
            ("MCP_URL", public_url.clone()),
            ("MCP_API_KEY", API_KEY.to_owned()),
            ("OAUTH_CLIENT_ID", CLIENT_ID.to_owned()),
        ];
        if let Some(auth) = &authserver {
            env.push(("AS_ISSUER", auth.issuer.clone()));
        }

        let mut outcomes = Vec::new();
        for client in &clients {
            let flows: Vec<&str> = FLOWS
                .into_iter()
                .filter(|f| oauth.is_ok() || !OAUTH_FLOWS.contains(f))
                .collect();
            outcomes.extend(run_client(client, &flows, &env).await);
            if let Err(reason) = &oauth {
                for flow in OAUTH_FLOWS {
                    outcomes.push(skipped(client.name, flow, reason));
                }
            }
        }
        match &oauth {
            Ok(issuer) => {
                outcomes.push(rmcp_bearer(&public_url, issuer).await);
                outcomes.push(rmcp_oauth(&public_url).await);
                outcomes.push(rmcp_step_up(&public_url).await);
            }
            Err(reason) => {
                for flow in ["bearer", "oauth", "step_up"] {
                    outcomes.push(skipped("rust-rmcp", flow, reason));
                }
            }
        }

        // What the clients sent to the authorization server.
        let seen: Vec<Value> = match &authserver {
            Some(auth) => reqwest::get(format!("{}/interop/requests", auth.issuer))
                .await
                .unwrap()
                .json()
                .await
                .unwrap(),
            None => Vec::new(),
        };

        for o in &outcomes {
            println!(
                "INTEROP {}",
                json!({"client": o.client, "flow": o.flow, "result": o.result, "details": o.details})
            );
        }
        println!("\n{}", table(&outcomes));

        let mut failures = Vec::new();
        for o in &outcomes {
            if o.result == "fail" {
                failures.push(format!("{} {}: {}", o.client, o.flow, o.details));
            }
            // The API-key caller sees and calls the API-key tools.
            if o.flow == "api_key" && o.result == "pass" {
                let tools = o.details["tools"].as_array().cloned().unwrap_or_default();
                for tool in ["create_admin_user", "get_user_by_id", "list_all_users"] {
                    if !tools.iter().any(|t| t == tool) {
                        failures.push(format!("{} api_key: {tool} not listed", o.client));
                    }
                }
            }
        }
        // A refusal's reason reaches the user through each SDK (the
        // JSON-RPC error body, with the request's id).
        for o in outcomes
            .iter()
            .filter(|o| (o.flow == "wrong_key" || o.flow == "bad_token") && o.result == "pass")
        {
            if o.details["shows_reason"] != true {
                failures.push(format!("{} wrong_key: the SDK hid the reason: {}", o.client, o.details));
            }
        }
        // RFC 8707: every authorization and code exchange named our resource,
        // with PKCE.
        for req in &seen {
            let interactive = req["endpoint"] == "authorize"
                || req["grant_type"] == "authorization_code";
            if interactive && (req["resource"] != public_url.as_str() || req["pkce"] != true) {
                failures.push(format!("authorization server saw {req}"));
            }
        }
        if oauth.is_ok() {
            let codes = seen
                .iter()
                .filter(|r| r["grant_type"] == "authorization_code")
                .count();
            // oauth and step_up, for each external client.
            assert!(
                codes >= 2 * clients.len(),
                "expected a code exchange per oauth/step_up flow and client: {seen:?}"
            );
        }
        assert!(failures.is_empty(), "interop failures:\n{}", failures.join("\n"));
    });
    drop(authserver);
}
