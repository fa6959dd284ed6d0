//! The binary as a user runs it: `mcp-auth-gateway` with no configuration
//! but `UPSTREAM_URL` starts in demo mode, its printed key and token work
//! through it, and SIGTERM stops it cleanly.

mod common;

use std::{process::Stdio, time::Duration};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

#[cfg(unix)]
#[tokio::test]
async fn demo_mode_prints_a_working_key_and_token_and_stops_on_sigterm() {
    let (upstream, rec) = common::rmcp_upstream().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth-gateway"))
        .env_clear()
        .env("BIND", "127.0.0.1:0")
        .env("UPSTREAM_URL", &upstream)
        .env("RUST_LOG", "warn")
        .env("SHUTDOWN_GRACE_SECS", "0.2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut key, mut token) = (None, None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("(public URL ").nth(1) {
                url = Some(rest.split(')').next().unwrap().to_owned());
                assert!(
                    line.ends_with(&format!("forwarding to {upstream}")),
                    "{line}"
                );
            } else if let Some(k) = line.trim().strip_prefix("mcp_sk_") {
                key.get_or_insert(format!("mcp_sk_{k}"));
            } else if line.trim().starts_with("eyJ") {
                token = Some(line.trim().to_owned());
                break;
            }
        }
    };
    // A guard against a hang, not a timing assertion.
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the banner");
    let (url, key, token) = (url.unwrap(), key.unwrap(), token.unwrap());

    let client = reqwest::Client::new();
    let post = |credential: (&'static str, String)| {
        client
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header(credential.0, credential.1)
            .body(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "curl", "version": "1"}}})
                .to_string(),
            )
            .send()
    };
    assert_eq!(post(("x-api-key", key)).await.unwrap().status(), 200);
    let r = post(("authorization", format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = client
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-session-id", &session)
        .body(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(initialized.status(), 202);
    // The session's SSE stream, left open: SIGTERM must not wait for it
    // for ever.
    let stream = client
        .get(&url)
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let anonymous = client
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(rec.requests().len(), 4);

    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the gateway stops on SIGTERM")
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("mcp-auth-gateway stopped"));
    drop((stream, client));
}

#[test]
fn help_and_bad_arguments() {
    let run = |arg: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth-gateway"))
            .arg(arg)
            .output()
            .unwrap()
    };
    let help = run("--help");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("UPSTREAM_URL"));
    let bad = run("--frobnicate");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown argument `--frobnicate`"));
}

#[test]
fn a_bad_variable_is_named() {
    let long = "identity-secret-0123456789abcdef0123";
    for (vars, named, why) in [
        (
            &[("UPSTREAM_URL", "ftp://upstream.example/mcp")][..],
            "UPSTREAM_URL",
            "http:// or https://",
        ),
        (
            &[
                ("UPSTREAM_URL", "https://127.0.0.1:1/mcp"),
                ("UPSTREAM_CA_FILE", "/nonexistent/ca.pem"),
            ][..],
            "UPSTREAM_CA_FILE",
            "cannot read",
        ),
        (
            &[("UPSTREAM_TIMEOUT_SECS", "0")][..],
            "UPSTREAM_TIMEOUT_SECS",
            "seconds",
        ),
        (
            &[("UPSTREAM_HEADER_X_KEY", "a\u{7f}b")][..],
            "UPSTREAM_HEADER_X_KEY",
            "header value",
        ),
        (
            &[("UPSTREAM_IDENTITY_SECRET", "short")][..],
            "UPSTREAM_IDENTITY_SECRET",
            "32 bytes",
        ),
        (
            &[
                ("UPSTREAM_IDENTITY_SECRET", long),
                ("UPSTREAM_AUTHORIZATION", "Bearer x"),
            ][..],
            "UPSTREAM_AUTHORIZATION",
            "UPSTREAM_HEADER_",
        ),
        (
            &[("METRICS_BIND", "nowhere")][..],
            "METRICS_BIND",
            if cfg!(feature = "metrics") {
                "IP address"
            } else {
                "no metrics"
            },
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth-gateway"))
            .env_clear()
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{vars:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named) && err.contains(why), "{vars:?}: {err}");
    }
}
