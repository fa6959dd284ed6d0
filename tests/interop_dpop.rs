//! DPoP interoperability (RFC 9449, MCP SEP-1932): the example MCP server
//! (`examples/mcp_server/`, served in-process on loopback) accepting
//! DPoP-bound access tokens that a real authorization server issued to a
//! real client library, none of it written here:
//!
//! - the authorization server is `oidc-provider`
//!   (`tests/interop/dpop/authserver.mjs`): its `dPoP` feature (server
//!   nonces required at its token endpoint) and `resourceIndicators` with
//!   JWT access tokens, so each token is an RFC 9068 JWT whose `aud` is the
//!   MCP server's resource identifier and whose `cnf.jkt` names the
//!   client's key;
//! - the client is `openid-client` (on `oauth4webapi`)
//!   (`tests/interop/dpop/client.mjs`): it makes the key pair, fetches the
//!   token with a proof, and signs a fresh proof for every request the
//!   official MCP TypeScript SDK's transport makes (initialize, the GET
//!   stream, tools/list, tools/call), retrying on `use_dpop_nonce` itself.
//!
//! The example is configured the way a user configures it: `OAUTH_ISSUER`
//! alone (its JWKS found by discovery; no DPoP setting) for the default
//! server, a second server with `DPOP_REQUIRED=1` and `DPOP_NONCES=1`, and
//! a third that also introspects opaque tokens (`OAUTH_INTROSPECTION_URL`,
//! `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET`: oidc-provider's
//! `/token/introspection`, whose answer carries the token's `cnf.jkt`).
//!
//! Flows (one JSON result line each, then a table):
//!
//! | flow | what |
//! | --- | --- |
//! | `dpop` | token with a proof (after the authorization server's own nonce round trip), `cnf.jkt` = the key's thumbprint, initialize, tools/list, tools/call `get_user_data`, each request with a fresh proof for its method and URL |
//! | `nonce` | the server with nonces: first answer 401 `use_dpop_nonce` with `DPoP-Nonce`, the library retries with it, the session and the tool call succeed |
//! | `bearer_downgrade` | the DPoP-bound token sent as `Bearer` is refused (401); with its proof it is accepted |
//! | `wrong_htu` | a proof the library made for another URL of the server is refused (401 `invalid_dpop_proof`); one for the endpoint is accepted |
//! | `replay` | the library's proof sent twice: accepted once, refused (401 `invalid_dpop_proof`) the second time |
//! | `dpop_required` | an unbound bearer token is accepted by the default server and refused (401) by the one with `DPOP_REQUIRED=1` |
//! | `introspection` | an opaque DPoP-bound token, its binding learnt by introspection: the same session as `dpop`; sent as `Bearer`, refused |
//! | `metadata` | the protected-resource metadata: `dpop_signing_alg_values_supported` on both servers, `dpop_bound_access_tokens_required: true` on the strict one only |
//!
//! Install (`scripts/test` does it):
//!
//! ```text
//! npm ci --prefix tests/interop/dpop
//! ```
//!
//! `oidc-provider` 9 supports Node.js 22 and later: the node used is
//! `INTEROP_NODE`, else `node` when it is 22 or later, else the Node 22
//! that `npm ci --prefix tests/conformance/node` installs (`scripts/test`
//! installs it when the machine's node is older). A missing package or node
//! is skipped with a notice, unless `INTEROP_REQUIRED=1` (set by
//! `scripts/test`), which turns it into a failure.

mod interop_common;
mod support;
use interop_common::{root, set_env, AuthServer};
use support::mcp_server;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

const API_KEY: &str = "mcp_sk_interop-dpop-0123456789abcdef0";
const CLIENT_ID: &str = "dpop-client";
const CLIENT_SECRET: &str = "dpop-client-secret-0123456789";
const BEARER_CLIENT_ID: &str = "bearer-client";
const BEARER_CLIENT_SECRET: &str = "bearer-client-secret-0123456789";
/// The example server's client at the introspection endpoint.
const RS_CLIENT_ID: &str = "resource-server";
const RS_CLIENT_SECRET: &str = "resource-server-secret-0123456789";
/// The client library's flows, in order.
const CLIENT_FLOWS: [&str; 7] = [
    "dpop",
    "nonce",
    "bearer_downgrade",
    "wrong_htu",
    "replay",
    "dpop_required",
    "introspection",
];
/// The client library's name in the report.
const CLIENT: &str = "openid-client";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// The oldest Node.js major that `oidc-provider` 9 supports.
const NODE_MAJOR: u32 = 22;

fn dir() -> PathBuf {
    root().join("tests/interop/dpop")
}

/// Says why the flows are skipped; fails instead under `INTEROP_REQUIRED=1`.
fn missing(what: &str, fix: &str) {
    interop_common::missing("interop_dpop", what, fix);
}

/// The major version of `node`, if it runs.
fn node_major(node: &Path) -> Option<u32> {
    let out = std::process::Command::new(node)
        .args(["-e", "process.stdout.write(process.versions.node)"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let version = String::from_utf8(out.stdout).ok()?;
    version.split('.').next()?.parse().ok()
}

/// A node that `oidc-provider` supports, and the installed packages.
fn node() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("INTEROP_NODE") {
        Some(node) => vec![node.into()],
        None => vec![
            "node".into(),
            root().join("tests/conformance/node/node_modules/.bin/node"),
        ],
    };
    let Some(node) = candidates
        .into_iter()
        .find(|n| node_major(n).is_some_and(|m| m >= NODE_MAJOR))
    else {
        missing(
            &format!("Node.js {NODE_MAJOR} or later (oidc-provider 9 supports no older)"),
            "npm ci --prefix tests/conformance/node, or set INTEROP_NODE",
        );
        return None;
    };
    for package in [
        "oidc-provider",
        "openid-client",
        "@modelcontextprotocol/sdk",
    ] {
        if !dir()
            .join("node_modules")
            .join(package)
            .join("package.json")
            .exists()
        {
            missing(
                &format!("{package} (tests/interop/dpop)"),
                "npm ci --prefix tests/interop/dpop",
            );
            return None;
        }
    }
    Some(node)
}

/// Starts oidc-provider for `resources` (JWT access tokens) and
/// `opaque_resource` (blocking: it runs before any runtime exists, so that
/// its issuer can go into the environment).
fn start_authserver(node: &Path, resources: &[&str], opaque_resource: &str) -> AuthServer {
    let mut command = std::process::Command::new(node);
    command
        .arg("authserver.mjs")
        .current_dir(dir())
        .env("RESOURCES", resources.join(","))
        .env("OPAQUE_RESOURCES", opaque_resource)
        .env("RS_CLIENT_ID", RS_CLIENT_ID)
        .env("RS_CLIENT_SECRET", RS_CLIENT_SECRET)
        .env("SCOPES", mcp_server::SCOPES.join(" "))
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("BEARER_CLIENT_ID", BEARER_CLIENT_ID)
        .env("BEARER_CLIENT_SECRET", BEARER_CLIENT_SECRET);
    AuthServer::spawn(command, "tests/interop/dpop/authserver.mjs")
}

/// A flow's outcome, one row of the report.
#[derive(Clone, Debug)]
struct Outcome {
    flow: String,
    /// `pass` or `fail`.
    result: String,
    details: Value,
}

/// Runs the client library's flows; a flow with no result line fails.
async fn run_client(node: &Path, env: &[(&str, String)]) -> Vec<Outcome> {
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg("client.mjs")
        .args(CLIENT_FLOWS)
        .current_dir(dir())
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
        .expect("the DPoP client timed out")
        .expect("run tests/interop/dpop/client.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "interop_dpop: {CLIENT} ran {CLIENT_FLOWS:?} in {:.1} s (exit {})",
        started.elapsed().as_secs_f64(),
        output.status
    );
    if !stderr.trim().is_empty() {
        eprintln!("--- {CLIENT} stderr ---\n{}\n---", stderr.trim());
    }
    let mut outcomes: Vec<Outcome> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Outcome {
            flow: v["flow"].as_str().unwrap_or("?").into(),
            result: v["result"].as_str().unwrap_or("fail").into(),
            details: v["details"].clone(),
        })
        .collect();
    for flow in CLIENT_FLOWS {
        if !outcomes.iter().any(|o| o.flow == flow) {
            outcomes.push(Outcome {
                flow: flow.into(),
                result: "fail".into(),
                details: json!({"error": "no result line", "exit": output.status.to_string()}),
            });
        }
    }
    outcomes
}

/// The protected-resource metadata of the MCP endpoint `public_url`.
async fn metadata(public_url: &str) -> Result<Value, String> {
    let url = public_url.replacen("/mcp", "/.well-known/oauth-protected-resource/mcp", 1);
    let res = reqwest::get(&url).await.map_err(|e| e.to_string())?;
    if res.status() != 200 {
        return Err(format!("{url}: {}", res.status()));
    }
    res.json().await.map_err(|e| e.to_string())
}

/// Both servers advertise DPoP; only the strict one requires it.
async fn metadata_outcome(public_url: &str, strict_url: &str) -> Outcome {
    let result = async {
        let relaxed = metadata(public_url).await?;
        let strict = metadata(strict_url).await?;
        let algs = |prm: &Value| {
            prm["dpop_signing_alg_values_supported"]
                .as_array()
                .is_some_and(|a| a.iter().any(|alg| alg == "ES256"))
        };
        let ok = algs(&relaxed)
            && algs(&strict)
            && relaxed
                .get("dpop_bound_access_tokens_required")
                .is_none_or(|v| v == false)
            && strict["dpop_bound_access_tokens_required"] == true;
        let details = json!({
            "default": {
                "dpop_signing_alg_values_supported": relaxed["dpop_signing_alg_values_supported"],
                "dpop_bound_access_tokens_required": relaxed["dpop_bound_access_tokens_required"],
            },
            "strict": {
                "dpop_signing_alg_values_supported": strict["dpop_signing_alg_values_supported"],
                "dpop_bound_access_tokens_required": strict["dpop_bound_access_tokens_required"],
            },
        });
        Ok::<_, String>((ok, details))
    }
    .await;
    let (ok, details) = result.unwrap_or_else(|e| (false, json!({ "error": e })));
    Outcome {
        flow: "metadata".into(),
        result: if ok { "pass" } else { "fail" }.into(),
        details,
    }
}

/// What the authorization server answered: at its token endpoint, a nonce
/// demanded (`use_dpop_nonce`), `DPoP` tokens issued to requests with a
/// proof, bearer tokens to requests without; at its introspection
/// endpoint, the opaque token found active and bound (`cnf.jkt`).
fn check_authserver(seen: &[Value], failures: &mut Vec<String>) {
    let introspected = seen
        .iter()
        .filter(|r| {
            r["endpoint"] == "introspection"
                && r["status"] == 200
                && r["active"] == true
                && r["token_type"] == "DPoP"
                && r["jkt"] == true
        })
        .count();
    if introspected == 0 {
        failures.push(format!(
            "the example server never introspected a DPoP-bound token: {seen:?}"
        ));
    }
    let seen: Vec<&Value> = seen.iter().filter(|r| r["endpoint"] == "token").collect();
    let nonce_demanded = seen
        .iter()
        .filter(|r| r["status"] == 400 && r["error"] == "use_dpop_nonce")
        .count();
    let dpop_tokens = seen
        .iter()
        .filter(|r| r["status"] == 200 && r["token_type"] == "DPoP" && r["dpop_proof"] == true)
        .count();
    let bearer_tokens = seen
        .iter()
        .filter(|r| r["status"] == 200 && r["token_type"] == "Bearer" && r["dpop_proof"] == false)
        .count();
    // dpop, nonce, bearer_downgrade, wrong_htu, replay, introspection: a
    // bound token each; dpop_required: two unbound ones.
    if nonce_demanded == 0 || dpop_tokens < 6 || bearer_tokens < 2 {
        failures.push(format!(
            "the authorization server's token endpoint saw {nonce_demanded} nonce demands, {dpop_tokens} DPoP tokens, {bearer_tokens} bearer tokens: {seen:?}"
        ));
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "| DPoP flow | {CLIENT} (oauth4webapi) + MCP TypeScript SDK, oidc-provider |\n| --- | --- |\n"
    );
    for flow in CLIENT_FLOWS.iter().chain(&["metadata"]) {
        let cell = outcomes
            .iter()
            .find(|o| o.flow == *flow)
            .map_or("-", |o| o.result.as_str());
        let _ = writeln!(out, "| {flow} | {cell} |");
    }
    out
}

/// The example's configuration for the server on `addr`, from the
/// environment as it stands plus `vars`.
fn config(
    addr: std::net::SocketAddr,
    public_url: &str,
    vars: &[(&str, &str)],
) -> mcp_server::Config {
    set_env(&[("BIND", &addr.to_string()), ("PUBLIC_URL", public_url)]);
    set_env(vars);
    mcp_server::Config::from_env().expect("the example's configuration")
}

#[test]
fn dpop_bound_tokens_from_a_real_authorization_server_and_client() {
    let Some(node) = node() else { return };
    // The example reads its configuration from the environment; set it
    // before any other thread exists (a runtime is built below).
    for var in [
        "JWT_SECRET",
        "OAUTH_JWKS_URL",
        "OAUTH_AUDIENCE",
        "OAUTH_INTROSPECTION_URL",
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
        "REDIS_URL",
        "MCP_STATELESS",
        "RATE_LIMIT_PER_MINUTE",
        "DPOP_REQUIRED",
        "DPOP_NONCES",
    ] {
        std::env::remove_var(var);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let strict_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let opaque_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let strict_addr = strict_listener.local_addr().unwrap();
    let opaque_addr = opaque_listener.local_addr().unwrap();
    let public_url = format!("http://{addr}/mcp");
    let strict_url = format!("http://{strict_addr}/mcp");
    let opaque_url = format!("http://{opaque_addr}/mcp");

    let authserver = start_authserver(&node, &[&public_url, &strict_url], &opaque_url);
    set_env(&[("API_KEY", API_KEY), ("OAUTH_ISSUER", &authserver.issuer)]);
    // The default server: OAUTH_ISSUER and nothing about DPoP.
    let relaxed = config(addr, &public_url, &[]);
    // The strict one: unbound tokens refused, server nonces on.
    let strict = config(
        strict_addr,
        &strict_url,
        &[("DPOP_REQUIRED", "1"), ("DPOP_NONCES", "1")],
    );
    // The third: opaque tokens by introspection as well.
    let introspection_url = format!("{}/token/introspection", authserver.issuer);
    let opaque = config(
        opaque_addr,
        &opaque_url,
        &[
            ("DPOP_REQUIRED", "0"),
            ("DPOP_NONCES", "0"),
            ("OAUTH_INTROSPECTION_URL", &introspection_url),
            ("OAUTH_CLIENT_ID", RS_CLIENT_ID),
            ("OAUTH_CLIENT_SECRET", RS_CLIENT_SECRET),
        ],
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (listener, config) in [
            (listener, relaxed),
            (strict_listener, strict),
            (opaque_listener, opaque),
        ] {
            let app = mcp_server::app(&config).await.expect("the example app");
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }

        let env = [
            ("AS_ISSUER", authserver.issuer.clone()),
            ("CLIENT_ID", CLIENT_ID.to_owned()),
            ("CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("BEARER_CLIENT_ID", BEARER_CLIENT_ID.to_owned()),
            ("BEARER_CLIENT_SECRET", BEARER_CLIENT_SECRET.to_owned()),
            ("MCP_URL", public_url.clone()),
            ("MCP_STRICT_URL", strict_url.clone()),
            ("MCP_OPAQUE_URL", opaque_url.clone()),
        ];
        let mut outcomes = run_client(&node, &env).await;
        outcomes.push(metadata_outcome(&public_url, &strict_url).await);

        let seen: Vec<Value> = reqwest::get(format!("{}/interop/requests", authserver.issuer))
            .await
            .expect("the authorization server's record")
            .json()
            .await
            .expect("its JSON");

        for o in &outcomes {
            println!(
                "INTEROP {}",
                json!({"client": CLIENT, "flow": o.flow, "result": o.result, "details": o.details})
            );
        }
        println!("\n{}", table(&outcomes));

        let mut failures: Vec<String> = outcomes
            .iter()
            .filter(|o| o.result != "pass")
            .map(|o| format!("{}: {}", o.flow, o.details))
            .collect();
        check_authserver(&seen, &mut failures);
        assert!(
            failures.is_empty(),
            "DPoP interop failures:\n{}",
            failures.join("\n")
        );
    });
    drop(authserver);
}
