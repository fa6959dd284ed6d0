//! End to end through the example server on loopback, speaking the
//! 2026-07-28 wire: `confirm_delete_user` answers `input_required` (an
//! elicitation and the server's plain `requestState`); behind the stack,
//! `HandleBindingLayer` seals that state to the caller, the call and its
//! arguments for a few minutes. The honest retry deletes the user; a
//! tampered, foreign, expired state, or one replayed on another tool or
//! with other arguments, is refused with `-32602` before the tool runs.
//!
//! `build_report` runs as a task: its id leaves sealed to its creator, who
//! polls it to the report; another principal, or a tampered or bare id,
//! gets exactly what the bare server answers an unknown task. And rmcp's
//! own client, speaking 2026-07-28, drives `confirm_delete_user`'s rounds
//! through the stack by itself.

mod support;
use support::mcp_server::{self, conformance};

mod common;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime},
};

use rmcp::{
    model::{
        CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientCapabilities,
        ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction, ErrorCode,
        GetTaskParams, Implementation, ProtocolVersion, TaskPayload,
    },
    service::{ClientLifecycleMode, ClientServiceExt, RequestContext, RunningService},
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    ClientHandler, ErrorData, RoleClient, ServiceError,
};
use serde_json::{json, Value};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeys},
    AuthScheme, Principal,
};

const KEY: &str = "mcp_sk_e2e-handles-owner-0123456789abcdef";
const OTHER: &str = "mcp_sk_e2e-handles-other-0123456789abcdef";

struct Server {
    url: String,
    /// Seconds added to the layer's clock.
    skew: Arc<AtomicU64>,
}

async fn start(stateless: bool) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/mcp");
    let keys = ApiKeys::new()
        .with(ApiKey::new("owner", KEY))
        .with(ApiKey::new("other", OTHER));
    let mut config = mcp_server::Config::new(url.clone(), keys);
    config.stateless = stateless;
    config.request_state_ttl = Duration::from_secs(120);
    let skew = Arc::new(AtomicU64::new(0));
    let read = skew.clone();
    config.clock = Some(Arc::new(move || {
        SystemTime::now() + Duration::from_secs(read.load(Ordering::SeqCst))
    }));
    let app = mcp_server::app(&config).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { url, skew }
}

/// The 2026-07-28 per-request `_meta`: a client that answers form
/// elicitations and declares the tasks extension.
fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "e2e-handles", "version": "1.0.0"},
        "io.modelcontextprotocol/clientCapabilities": {
            "elicitation": {"form": {}},
            "extensions": {"io.modelcontextprotocol/tasks": {}}
        }
    })
}

/// A 2026-07-28 `tools/call` with the per-request `_meta`, and the retry's
/// members when given.
fn call(id: u64, tool: &str, args: Value, state: Option<&str>) -> Value {
    let mut params = json!({"name": tool, "arguments": args, "_meta": meta()});
    if let Some(state) = state {
        params["requestState"] = Value::from(state);
        params["inputResponses"] =
            json!({"confirm": {"action": "accept", "content": {"confirm": true}}});
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// The JSON-RPC response in a JSON or an SSE answer.
fn response_of(body: &str) -> Value {
    let data = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|d| d.starts_with('{'));
    serde_json::from_str(data.unwrap_or(body)).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A `tasks/*` request naming `task`.
fn task_request(id: u64, method: &str, task: &str) -> Value {
    let mut params = json!({"taskId": task, "_meta": meta()});
    if method == "tasks/update" {
        params["inputResponses"] = json!({"k": {"action": "accept"}});
    }
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Posts `body` to `url` with the 2026-07-28 standard headers (`Mcp-Name`
/// from `params.name` or `params.taskId`, as a client sends them).
async fn post_to(url: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let params = &body["params"];
    let name = params["name"].as_str().or(params["taskId"].as_str());
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-method", body["method"].as_str().unwrap())
        .header("mcp-protocol-version", "2026-07-28");
    if let Some(name) = name {
        request = request.header("mcp-name", name);
    }
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let reply = request.body(body.to_string()).send().await.unwrap();
    let status = reply.status().as_u16();
    (status, response_of(&reply.text().await.unwrap()))
}

async fn post(server: &Server, key: &str, body: &Value) -> Value {
    let (status, v) = post_to(&server.url, Some(key), body).await;
    assert_eq!(status, 200, "{v}");
    v
}

fn args(user: &str) -> Value {
    json!({"user_id": user, "reason": "left the company"})
}

/// The first round: `input_required` with an elicitation; the state.
async fn ask(server: &Server, user: &str) -> String {
    let v = post(
        server,
        KEY,
        &call(1, "confirm_delete_user", args(user), None),
    )
    .await;
    let result = &v["result"];
    assert_eq!(result["resultType"], "input_required", "{v}");
    assert_eq!(
        result["inputRequests"]["confirm"]["method"],
        "elicitation/create"
    );
    result["requestState"].as_str().unwrap().to_owned()
}

fn assert_refused(v: &Value, message: &str) {
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let got = v["error"]["message"].as_str().unwrap();
    assert!(got.contains(message), "{got}");
}

#[tokio::test]
async fn the_server_sees_its_plain_state_and_the_client_a_sealed_one() {
    for stateless in [true, false] {
        let server = start(stateless).await;
        let state = ask(&server, "user_002").await;
        assert!(!state.contains("confirm-delete"), "{state}");
        let v = post(
            &server,
            KEY,
            &call(2, "confirm_delete_user", args("user_002"), Some(&state)),
        )
        .await;
        let text = v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"));
        let done: Value = serde_json::from_str(text).unwrap();
        assert_eq!(done["deleted"], "user_002");
        assert_eq!(done["deleted_by"], "owner");
    }
}

#[tokio::test]
async fn tampered_foreign_replayed_and_expired_states_are_refused() {
    let server = start(true).await;
    let state = ask(&server, "user_003").await;
    let mut tampered = state.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let invalid = "not valid for this request";

    let v = post(
        &server,
        KEY,
        &call(2, "confirm_delete_user", args("user_003"), Some(&tampered)),
    )
    .await;
    assert_refused(&v, invalid);
    // Foreign: another API key presents the owner's state.
    let v = post(
        &server,
        OTHER,
        &call(2, "confirm_delete_user", args("user_003"), Some(&state)),
    )
    .await;
    assert_refused(&v, invalid);
    // Replayed on another tool, and with other arguments.
    let v = post(
        &server,
        KEY,
        &call(2, "delete_user", args("user_003"), Some(&state)),
    )
    .await;
    assert_refused(&v, invalid);
    let v = post(
        &server,
        KEY,
        &call(2, "confirm_delete_user", args("user_001"), Some(&state)),
    )
    .await;
    assert_refused(&v, invalid);
    // The server's own plain state, forged by the client.
    let v = post(
        &server,
        KEY,
        &call(
            2,
            "confirm_delete_user",
            args("user_001"),
            Some("confirm-delete:user_001"),
        ),
    )
    .await;
    assert_refused(&v, invalid);
    // Expired: the layer's clock moves past the 120 s lifetime.
    server.skew.store(121, Ordering::SeqCst);
    let v = post(
        &server,
        KEY,
        &call(2, "confirm_delete_user", args("user_003"), Some(&state)),
    )
    .await;
    assert_refused(&v, "expired");
    // Nothing was deleted: the owner's fresh round still finds both users.
    server.skew.store(0, Ordering::SeqCst);
    for user in ["user_001", "user_003"] {
        let state = ask(&server, user).await;
        let v = post(
            &server,
            KEY,
            &call(3, "confirm_delete_user", args(user), Some(&state)),
        )
        .await;
        assert!(
            v["result"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains(user)),
            "{v}"
        );
    }
}

// ───────────────────────────── task ids ─────────────────────────────

/// The example's MCP service with no layer in front, on its own port: what
/// the server itself answers (here, to a task id it does not know).
async fn bare(conformance_fixtures: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}{}",
        listener.local_addr().unwrap(),
        mcp_server::MCP_PATH
    );
    let mut config = mcp_server::Config::new(url.clone(), ApiKeys::new());
    config.stateless = true;
    config.conformance_fixtures = conformance_fixtures;
    let service = mcp_server::mcp_service(&config).unwrap();
    let app = axum::Router::new().nest_service(mcp_server::MCP_PATH, service);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Polls `tasks/get` as `key` until the task leaves `working`: a bounded
/// loop that yields between polls (the report is built in-process at once;
/// no clock is read).
async fn poll_until_done(server: &Server, key: &str, task: &str) -> Value {
    for id in 100..1_100 {
        let v = post(server, key, &task_request(id, "tasks/get", task)).await;
        let status = v["result"]["status"].as_str();
        if status.unwrap_or_else(|| panic!("{v}")) != "working" {
            return v;
        }
        tokio::task::yield_now().await;
    }
    panic!("task {task} still working after 1000 polls");
}

#[tokio::test]
async fn a_task_id_serves_its_creator_and_is_unknown_to_anyone_else() {
    let bare = bare(false).await;
    for stateless in [true, false] {
        let server = start(stateless).await;
        let title = json!({"title": "Headcount"});
        let v = post(&server, KEY, &call(1, "build_report", title, None)).await;
        assert_eq!(v["result"]["resultType"], "task", "{v}");
        let task = v["result"]["taskId"].as_str().unwrap().to_owned();
        // `<rmcp's id>.<tag>`: sealed to the owner.
        let (bare_id, tag) = task.rsplit_once('.').unwrap_or_else(|| panic!("{task}"));
        assert_eq!(tag.len(), 22, "{task}");

        let done = poll_until_done(&server, KEY, &task).await;
        assert_eq!(done["result"]["status"], "completed", "{done}");
        assert_eq!(done["result"]["taskId"], task.as_str(), "{done}");
        let report = &done["result"]["result"]["structuredContent"];
        assert_eq!(report["title"], "Headcount", "{done}");
        assert_eq!(report["requested_by"], "owner", "{done}");
        assert_eq!(report["total_users"], 3, "{done}");

        let mut tampered = task.clone().into_bytes();
        let i = bare_id.len() + 1 + 5;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
            for (key, presented) in [
                (OTHER, task.as_str()),
                (KEY, tampered.as_str()),
                (KEY, bare_id),
            ] {
                let request = task_request(7, method, presented);
                let got = post(&server, key, &request).await;
                let (status, unknown) = post_to(&bare, None, &request).await;
                assert_eq!(status, 200, "{unknown}");
                assert_eq!(
                    unknown["error"]["message"],
                    format!("unknown task: {presented}"),
                    "{unknown}"
                );
                assert_eq!(got, unknown, "{method} of {presented}");
            }
        }
        // The owner's task is as it was, and the owner may cancel it.
        let v = post(&server, KEY, &task_request(8, "tasks/get", &task)).await;
        assert_eq!(v["result"]["status"], "completed", "{v}");
        assert_eq!(v["result"]["result"]["structuredContent"], *report);
        let v = post(&server, KEY, &task_request(9, "tasks/cancel", &task)).await;
        assert!(v.get("error").is_none() && v["result"].is_object(), "{v}");
    }
}

/// What is true of a task id's lifetime: the layer seals it with no expiry
/// of its own (unlike a `requestState`), so moving the layer's clock far
/// past the state lifetime changes nothing; the task lives as long as the
/// server keeps it (rmcp's task manager: `TASK_TTL_MS` after it
/// finishes), and a task the server forgot is answered as unknown, by the
/// server itself.
#[tokio::test]
async fn a_task_id_has_no_expiry_of_the_layer_its_lifetime_is_the_servers() {
    let server = start(true).await;
    let v = post(
        &server,
        KEY,
        &call(1, "build_report", json!({"title": "Later"}), None),
    )
    .await;
    let task = v["result"]["taskId"].as_str().unwrap().to_owned();
    let done = poll_until_done(&server, KEY, &task).await;
    assert_eq!(done["result"]["status"], "completed", "{done}");
    // A requestState minted now expires in 120 s; a day later it is refused,
    // the task id is not.
    let state = ask(&server, "user_002").await;
    server.skew.store(86_400, Ordering::SeqCst);
    let v = post(
        &server,
        KEY,
        &call(2, "confirm_delete_user", args("user_002"), Some(&state)),
    )
    .await;
    assert_refused(&v, "expired");
    let later = post(&server, KEY, &task_request(3, "tasks/get", &task)).await;
    assert_eq!(later["result"], done["result"], "{later}");
    // And the clock gives nobody else the task.
    let v = post(&server, OTHER, &task_request(4, "tasks/get", &task)).await;
    assert_eq!(
        v["error"]["message"],
        format!("unknown task: {task}"),
        "{v}"
    );
}

#[tokio::test]
async fn without_the_tasks_extension_the_report_comes_inline() {
    let server = start(true).await;
    let mut body = call(1, "build_report", json!({"title": "Inline"}), None);
    let caps = "io.modelcontextprotocol/clientCapabilities";
    body["params"]["_meta"][caps] = json!({});
    let v = post(&server, KEY, &body).await;
    assert!(v["result"].get("taskId").is_none(), "{v}");
    assert_eq!(v["result"]["structuredContent"]["requested_by"], "owner");
}

// ───────────────────────────── conformance fixtures ─────────────────────────────

/// The conformance suite's fixtures (`CONFORMANCE_FIXTURES=1`, for
/// `scripts/conformance`, which drives them bare and behind the stack) are
/// served only when switched on; the example's own rules deny every one of
/// them, and `tests/conformance/fixtures-policy.toml` gives each an
/// authenticated rule.
#[tokio::test]
async fn the_conformance_fixtures_are_served_only_when_switched_on() {
    let list = |id: u64, method: &str| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"_meta": meta()}});
    for fixtures in [false, true] {
        let url = bare(fixtures).await;
        let (status, tools) = post_to(&url, None, &list(1, "tools/list")).await;
        assert_eq!(status, 200, "{tools}");
        let names: Vec<&str> = (tools["result"]["tools"].as_array().unwrap().iter())
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"confirm_delete_user"), "{names:?}");
        for fixture in conformance::TOOLS {
            assert_eq!(names.contains(&fixture), fixtures, "{fixture}");
        }
        let (_, prompts) = post_to(&url, None, &list(2, "prompts/list")).await;
        if fixtures {
            assert_eq!(prompts["result"]["prompts"][0]["name"], conformance::PROMPT);
        } else {
            assert_eq!(prompts["error"]["code"], -32601, "{prompts}");
        }
    }
    let caller = Principal::new(AuthScheme::ApiKey, "conformance");
    let example = mcp_server::policy().unwrap();
    for fixture in conformance::TOOLS {
        assert!(!example.may_call_tool(Some(&caller), fixture), "{fixture}");
    }
    assert!(!example.may_get_prompt(Some(&caller), conformance::PROMPT));
    #[cfg(feature = "toml")]
    {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/conformance/fixtures-policy.toml");
        let rules = tower_mcp_auth::mcp::McpPolicy::from_file(file).unwrap();
        for fixture in conformance::TOOLS {
            assert!(rules.may_call_tool(Some(&caller), fixture), "{fixture}");
            assert!(!rules.may_call_tool(None, fixture), "{fixture}");
        }
        assert!(rules.may_get_prompt(Some(&caller), conformance::PROMPT));
    }
}

// ───────────────────────────── rmcp's own client ─────────────────────────────

/// A client that confirms every elicitation (and remembers what it was
/// asked), declaring form elicitation and the tasks extension.
#[derive(Clone, Default)]
struct Confirming {
    asked: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Confirming {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let ElicitRequestParams::FormElicitationParams { message, .. } = request else {
            panic!("a form elicitation, not {request:?}");
        };
        self.asked.lock().unwrap().push(message);
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({"confirm": true})))
    }

    fn get_info(&self) -> ClientConfig {
        let capabilities = ClientCapabilities::builder()
            .enable_elicitation()
            .enable_tasks()
            .build();
        ClientConfig::new(
            capabilities,
            Implementation::new("e2e-handles-rmcp", "1.0.0"),
        )
    }
}

type RmcpClient = RunningService<RoleClient, Confirming>;

/// rmcp's client over Streamable HTTP with `key`, speaking 2026-07-28
/// (`server/discover`, no session, per-request `_meta`).
async fn rmcp_client(server: &Server, key: &'static str) -> RmcpClient {
    let config = StreamableHttpClientTransportConfig::with_uri(server.url.clone()).custom_headers(
        HashMap::from([(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_static(key),
        )]),
    );
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    Confirming::default()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(config),
            lifecycle,
        )
        .await
        .expect("server/discover")
}

fn arguments(value: Value) -> rmcp::model::JsonObject {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn rmcp_client_drives_the_sealed_rounds_and_polls_its_own_task() {
    for stateless in [true, false] {
        let server = start(stateless).await;
        let owner = rmcp_client(&server, KEY).await;
        let other = rmcp_client(&server, OTHER).await;
        let delete = CallToolRequestParams::new("confirm_delete_user")
            .with_arguments(arguments(args("user_002")));

        // One round by hand: the state the client holds is sealed.
        let CallToolResponse::InputRequired(first) =
            owner.call_tool_once(delete.clone()).await.unwrap()
        else {
            panic!("input_required expected");
        };
        let sealed = first.request_state.clone().unwrap();
        assert!(!sealed.contains("confirm-delete"), "{sealed}");
        // Another principal replaying it, with the answer: refused.
        let mut replay = delete.clone();
        replay.request_state = Some(sealed);
        replay.input_responses = Some(
            [(
                "confirm".to_owned(),
                json!({"action": "accept", "content": {"confirm": true}}),
            )]
            .into_iter()
            .collect(),
        );
        match other.call_tool_once(replay).await {
            Err(ServiceError::McpError(e)) => {
                assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{e:?}");
                assert!(e.message.contains("not valid for this request"), "{e:?}");
            }
            reply => panic!("refusal expected, got {reply:?}"),
        }

        // rmcp's client drives MRTR by itself: input_required, the
        // elicitation answered, the retry with the sealed state; the tool
        // got its own plain state back (else it would ask again).
        let done = owner.call_tool(delete).await.unwrap();
        let text = done.content[0].as_text().unwrap().text.clone();
        let done: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(done["deleted"], "user_002", "{done}");
        assert_eq!(done["deleted_by"], "owner", "{done}");
        assert_eq!(
            *owner.service().asked.lock().unwrap(),
            ["Delete user `user_002`?"]
        );

        // A task through rmcp's client: created, polled, read; the other
        // principal's client is told the task is unknown.
        let report = CallToolRequestParams::new("build_report")
            .with_arguments(arguments(json!({"title": "By rmcp"})));
        let CallToolResponse::Task(created) = owner.call_tool_once(report).await.unwrap() else {
            panic!("a task expected");
        };
        let id = created.task.task_id.clone();
        let mut finished = None;
        for _ in 0..1_000 {
            let got = owner.peer().get_task(GetTaskParams::new(id.clone())).await;
            let task = got.unwrap().task;
            if task.status().is_terminal() {
                finished = Some(task);
                break;
            }
            tokio::task::yield_now().await;
        }
        let finished = finished.expect("the task finishes within 1000 polls");
        let TaskPayload::Completed { result } = finished.payload else {
            panic!("completed expected: {finished:?}");
        };
        assert_eq!(result["structuredContent"]["requested_by"], "owner");
        for attempt in [
            other
                .peer()
                .get_task(GetTaskParams::new(id.clone()))
                .await
                .err(),
            other
                .peer()
                .cancel_task(CancelTaskParams::new(id.clone()))
                .await
                .err(),
        ] {
            match attempt {
                Some(ServiceError::McpError(e)) => {
                    assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{e:?}");
                    assert_eq!(e.message, format!("unknown task: {id}"));
                }
                other => panic!("unknown task expected, got {other:?}"),
            }
        }
        owner.cancel().await.unwrap();
        other.cancel().await.unwrap();
    }
}
