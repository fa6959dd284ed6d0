//! End to end: `McpPolicyLayer` over real HTTP on loopback, in front of a
//! real rmcp `StreamableHttpService` (stateless; JSON and SSE responses).
#![cfg(feature = "mcp")]

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use axum::{extract::Request, middleware::Next, response::Response, Router};
use rmcp::{
    handler::server::{router::tool::ToolRouter, tool::Extension},
    model::{
        ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ServerCapabilities,
        ServerConfig,
    },
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, RoleServer, ServerHandler,
};
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    mcp::{McpPolicy, McpPolicyLayer},
    AuthScheme, Principal, ProtectedResource, Rule, Scopes,
};

const API_KEY: &str = "mcp_sk_test-0123456789abcdef0123";

/// How many tool bodies have run (to prove refused calls never ran).
static TOOL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone)]
struct Server {
    #[allow(dead_code)]
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Server {
    #[tool(description = "Read user data")]
    async fn get_user_data(&self) -> String {
        TOOL_RUNS.fetch_add(1, Ordering::SeqCst);
        "user data".into()
    }

    #[tool(description = "Update user data")]
    async fn update_user_data(&self) -> String {
        TOOL_RUNS.fetch_add(1, Ordering::SeqCst);
        "updated".into()
    }

    #[tool(description = "Create an admin")]
    async fn create_admin_user(&self) -> String {
        TOOL_RUNS.fetch_add(1, Ordering::SeqCst);
        "created".into()
    }

    #[tool(description = "Delete a user")]
    async fn delete_user(&self) -> String {
        TOOL_RUNS.fetch_add(1, Ordering::SeqCst);
        "deleted".into()
    }

    #[tool(description = "Any authenticated caller")]
    async fn protected_operation(&self) -> String {
        "ok".into()
    }

    /// How a tool reads the caller: rmcp hands over the request's parts.
    #[tool(description = "Who is calling")]
    async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        match Principal::from_parts(&parts) {
            Some(p) => format!("{} via {} [{}]", p.name(), p.scheme(), p.scopes()),
            None => "anonymous".into(),
        }
    }
}

#[tool_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(serde_json::from_value(json!({"resources": [
            {"uri": "admin://system/stats", "name": "stats"},
            {"uri": "user://alice/private", "name": "alice"},
            {"uri": "docs://readme", "name": "readme"}
        ]}))
        .unwrap())
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(serde_json::from_value(json!({"resourceTemplates": [
            {"uriTemplate": "user://{user_id}/private", "name": "private"},
            {"uriTemplate": "docs://{page}", "name": "docs"}
        ]}))
        .unwrap())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let result: ReadResourceResult = serde_json::from_value(json!({"contents": [
            {"uri": request.uri, "text": "secret"}
        ]}))
        .unwrap();
        Ok(result.into())
    }
}

/// A test-only bearer layer: `Authorization: Bearer <subject>:<scopes,…>`
/// becomes a JWT principal. It stands for `JwtLayer`; the policy does not
/// know which layer made the principal.
async fn fake_bearer(mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if let Some((sub, scopes)) = token.as_deref().and_then(|t| t.split_once(':')) {
        let p = Principal::new(AuthScheme::Jwt, sub)
            .with_scopes(Scopes::parse(&scopes.replace(',', " ")));
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

fn policy() -> McpPolicy {
    McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
        .tool("update_user_data", Rule::bearer().scopes(["write:data"]))
        .tool("create_admin_user", Rule::api_key())
        .tool(
            "delete_user",
            Rule::api_key().or(Rule::bearer().scopes(["admin:write"])),
        )
        .resource(
            "user://{user_id}/private",
            Rule::bearer().scopes(["read:data"]),
        )
        .resource("admin://system/stats", Rule::api_key())
        .build()
        .unwrap()
}

struct App {
    url: String,
    metadata: String,
    http: reqwest::Client,
}

async fn spawn(json_response: bool) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let resource = ProtectedResource::builder(format!("http://{addr}/mcp"))
        .scopes_supported(["read:data", "write:data", "admin:write"])
        .build()
        .unwrap();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(json_response)
        .with_sse_keep_alive(None);
    let service: StreamableHttpService<Server, LocalSessionManager> = StreamableHttpService::new(
        || {
            Ok(Server {
                tool_router: Server::tool_router(),
            })
        },
        Default::default(),
        config,
    );
    let keys = ApiKeys::new().with(ApiKey::new("svc", API_KEY));
    let mcp = ServiceBuilder::new()
        .layer(resource.layer())
        .layer(axum::middleware::from_fn(fake_bearer))
        .layer(ApiKeyLayer::new(keys).optional())
        .layer(McpPolicyLayer::new(policy()))
        .service(service);
    let app = Router::new()
        .merge(resource.router())
        .nest_service("/mcp", mcp);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        url: format!("http://{addr}/mcp"),
        metadata: resource.metadata_url().to_owned(),
        http: reqwest::Client::new(),
    }
}

#[derive(Clone, Copy)]
enum Who<'a> {
    Nobody,
    Key,
    Bearer(&'a str),
}

struct Reply {
    status: u16,
    www: Option<String>,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// The JSON-RPC message of a JSON body or of the SSE event carrying it.
    fn message(&self) -> Value {
        if self.content_type.starts_with("text/event-stream") {
            let data = self
                .text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .find(|d| d.contains("\"result\"") || d.contains("\"error\""))
                .unwrap_or_else(|| panic!("no result event in {}", self.text));
            serde_json::from_str(data).unwrap()
        } else {
            self.json()
        }
    }
}

impl App {
    async fn post_with(
        &self,
        who: Who<'_>,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        req = match who {
            Who::Nobody => req,
            Who::Key => req.header("x-api-key", API_KEY),
            Who::Bearer(t) => req.header("authorization", format!("Bearer {t}")),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.body(body).send().await.unwrap();
        let status = res.status().as_u16();
        let www = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = res.text().await.unwrap();
        Reply {
            status,
            www,
            content_type,
            text,
        }
    }

    async fn post(&self, who: Who<'_>, body: impl Into<reqwest::Body>) -> Reply {
        self.post_with(who, body, &[]).await
    }

    async fn call(&self, who: Who<'_>, tool: &str) -> Reply {
        self.post(who, call_body(1, tool)).await
    }
}

fn call_body(id: u32, tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
        .to_string()
}

fn read_body(uri: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 9, "method": "resources/read", "params": {"uri": uri}})
        .to_string()
}

#[tokio::test]
async fn allowed_calls_reach_the_tools() {
    let app = spawn(true).await;
    let r = app
        .call(Who::Bearer("alice:read:data"), "get_user_data")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.message()["result"]["content"][0]["text"], "user data");
    let r = app.call(Who::Key, "create_admin_user").await;
    assert_eq!(r.message()["result"]["content"][0]["text"], "created");
    // delete_user: an API key, or a bearer token with admin:write.
    for who in [Who::Key, Who::Bearer("root:admin:write")] {
        let r = app.call(who, "delete_user").await;
        assert_eq!(r.message()["result"]["content"][0]["text"], "deleted");
    }
    for who in [Who::Key, Who::Bearer("bob:")] {
        assert_eq!(app.call(who, "protected_operation").await.status, 200);
    }
}

#[tokio::test]
async fn tools_see_the_principal() {
    let app = spawn(true).await;
    let r = app
        .call(Who::Bearer("alice:read:data,write:data"), "whoami")
        .await;
    assert_eq!(
        r.message()["result"]["content"][0]["text"],
        "alice via jwt [read:data write:data]"
    );
    let r = app.call(Who::Key, "whoami").await;
    assert_eq!(
        r.message()["result"]["content"][0]["text"],
        "svc via api_key []"
    );
}

#[tokio::test]
async fn anonymous_is_401_with_the_challenge_and_wrong_scheme_403() {
    let app = spawn(true).await;
    let md = &app.metadata;
    let r = app.call(Who::Nobody, "get_user_data").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.www.as_deref(),
        Some(&*format!(
            r#"Bearer scope="read:data", resource_metadata="{md}""#
        ))
    );
    assert_eq!(r.json()["id"], 1);
    assert_eq!(r.json()["error"]["code"], -32001);

    // A valid credential of the wrong kind: 403 naming the scheme, no
    // `invalid_token` challenge (issue 25 item 3).
    for (who, tool, message) in [
        (
            Who::Key,
            "get_user_data",
            "tools/call `get_user_data`: this call requires an OAuth bearer token",
        ),
        (
            Who::Bearer("alice:read:data"),
            "create_admin_user",
            "tools/call `create_admin_user`: this call requires an API key",
        ),
    ] {
        let r = app.call(who, tool).await;
        assert_eq!(r.status, 403, "{tool}");
        assert_eq!(r.www, None, "{tool}");
        assert_eq!(r.json()["error"]["code"], -32003, "{tool}");
        assert_eq!(r.json()["error"]["message"], message, "{tool}");
        assert_eq!(r.json()["error"]["data"]["error"], "forbidden", "{tool}");
    }
    // Default rule (authenticated) for a method without a rule of its own.
    let r = app
        .post(
            Who::Nobody,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.www.as_deref(),
        Some(&*format!(r#"Bearer resource_metadata="{md}""#))
    );
}

#[tokio::test]
async fn missing_scope_is_a_step_up_403() {
    let app = spawn(true).await;
    let md = &app.metadata;
    let r = app
        .call(
            Who::Bearer("alice:read:data,read:profile"),
            "update_user_data",
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.www.as_deref(),
        Some(&*format!(
            r#"Bearer error="insufficient_scope", error_description="tools/call `update_user_data`: the access token lacks a scope this call requires", scope="read:data read:profile write:data", resource_metadata="{md}""#
        ))
    );
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "id": 1, "error": {
            "code": -32003,
            "message": "tools/call `update_user_data`: the access token lacks a scope this call requires",
            "data": {
                "error": "insufficient_scope",
                "error_description": "tools/call `update_user_data`: the access token lacks a scope this call requires",
                "scope": "read:data read:profile write:data"
            }
        }})
    );
    let r = app
        .call(Who::Bearer("alice:read:data"), "delete_user")
        .await;
    assert_eq!(r.status, 403);
    assert!(r.www.unwrap().contains(r#"scope="admin:write read:data""#));
}

#[tokio::test]
async fn resources_by_uri_and_template() {
    let app = spawn(true).await;
    let r = app
        .post(
            Who::Bearer("alice:read:data"),
            read_body("user://alice/private"),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.message()["result"]["contents"][0]["text"], "secret");
    assert_eq!(
        app.post(Who::Key, read_body("user://alice/private"))
            .await
            .status,
        403
    );
    assert_eq!(
        app.post(Who::Bearer("a:"), read_body("user://alice/private"))
            .await
            .status,
        403
    );
    assert_eq!(
        app.post(Who::Key, read_body("admin://system/stats"))
            .await
            .status,
        200
    );
    assert_eq!(
        app.post(
            Who::Bearer("a:read:data"),
            read_body("admin://system/stats")
        )
        .await
        .status,
        403
    );
    // Not matched by any rule: the default.
    assert_eq!(
        app.post(Who::Bearer("a:"), read_body("docs://readme"))
            .await
            .status,
        200
    );
    // A variable never spans a `/`: this URI is not the template's, so the
    // default rule applies, not the template's.
    assert_eq!(
        app.post(Who::Key, read_body("user://a/b/private"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn batches_are_all_or_nothing() {
    let app = spawn(true).await;
    let before = TOOL_RUNS.load(Ordering::SeqCst);
    let batch = format!(
        "[{},{},{}]",
        call_body(1, "get_user_data"),
        call_body(2, "create_admin_user"),
        call_body(3, "get_user_data")
    );
    let r = app.post(Who::Bearer("alice:read:data"), batch).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["id"], 2);
    assert_eq!(
        r.json()["error"]["message"],
        "batch element 1 (tools/call `create_admin_user`): this call requires an API key"
    );
    assert_eq!(TOOL_RUNS.load(Ordering::SeqCst), before, "no element ran");
    // All allowed: the batch goes to rmcp, which answers as it does.
    let ok = format!(
        "[{},{}]",
        call_body(1, "protected_operation"),
        call_body(2, "whoami")
    );
    let r = app.post(Who::Key, ok).await;
    assert!(
        r.status != 401 && r.status != 403 && r.status < 500,
        "{}",
        r.status
    );
}

#[tokio::test]
async fn ten_thousand_element_batch_is_bounded() {
    let app = spawn(true).await;
    let pings: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#))
        .collect();
    let mut refused = pings.clone();
    refused[9_999] = call_body(9_999, "create_admin_user");
    let start = Instant::now();
    let r = app
        .post(Who::Bearer("a:"), format!("[{}]", refused.join(",")))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["id"], 9_999);
    let r = app
        .post(Who::Bearer("a:"), format!("[{}]", pings.join(",")))
        .await;
    assert!(r.status < 500, "{}", r.status);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn header_body_mismatch_is_400_header_mismatch() {
    let app = spawn(true).await;
    let who = Who::Bearer("a:read:data");
    let r = app
        .post_with(
            who,
            call_body(4, "get_user_data"),
            &[("mcp-method", "tools/call"), ("mcp-name", "get_user_data")],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .post_with(
            who,
            call_body(4, "get_user_data"),
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?Z2V0X3VzZXJfZGF0YQ==?="),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "base64 form of the same name");
    for headers in [
        [("mcp-method", "prompts/get"), ("mcp-name", "get_user_data")],
        [
            ("mcp-method", "tools/call"),
            ("mcp-name", "protected_operation"),
        ],
    ] {
        let r = app
            .post_with(who, call_body(4, "get_user_data"), &headers)
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(
            (r.json()["id"].clone(), r.json()["error"]["code"].clone()),
            (json!(4), json!(-32020))
        );
    }
}

#[tokio::test]
async fn bad_bodies_are_400_never_5xx() {
    let app = spawn(true).await;
    let who = Who::Bearer("a:read:data");
    for body in [
        "",
        "hello",
        "{\"jsonrpc\":",
        "\u{0}\u{1}garbage",
        "{\"a\":1}}",
    ] {
        let r = app.post(who, body.to_owned()).await;
        assert_eq!(r.status, 400, "{body:?}");
        assert_eq!(r.json()["error"]["code"], -32700, "{body:?}");
        assert_eq!(r.json()["id"], Value::Null);
    }
    for body in [
        "[]",
        "5",
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"protected_operation","name":"get_user_data"}}"#,
    ] {
        let r = app.post(who, body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["error"]["code"], -32600, "{body}");
    }
    let r = app
        .post(
            who,
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"a","name":"a"}}"#
                .to_owned(),
        )
        .await;
    assert_eq!(r.json()["id"], 6, "the id is kept when it could be read");
    // A call whose target the layer cannot read is decided as one that
    // matches no rule (here the default: any caller), then the server
    // answers it: never a refusal of the layer's own.
    for body in [
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":"get_user_data"}"#,
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":["get_user_data"]}}"#,
        r#"{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":7}}"#,
    ] {
        let r = app.post(who, body.to_owned()).await;
        assert!(
            !r.text.contains("malformed_request"),
            "{body}: {} {}",
            r.status,
            r.text
        );
    }
    // 5 MiB: over the 4 MiB limit.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(5 << 20)
    );
    let r = app.post(who, big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], -32013);
}

async fn list(app: &App, who: Who<'_>, method: &str, field: &str, key: &str) -> Vec<String> {
    let r = app
        .post(
            who,
            json!({"jsonrpc": "2.0", "id": "l", "method": method}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let msg = r.message();
    assert_eq!(msg["id"], "l");
    let mut names: Vec<String> = msg["result"][field]
        .as_array()
        .unwrap_or_else(|| panic!("{msg}"))
        .iter()
        .map(|t| t[key].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn list_filtering(json_response: bool) {
    let app = spawn(json_response).await;
    let tools = |who| {
        let app = &app;
        async move { list(app, who, "tools/list", "tools", "name").await }
    };
    assert_eq!(
        tools(Who::Key).await,
        [
            "create_admin_user",
            "delete_user",
            "protected_operation",
            "whoami"
        ]
    );
    assert_eq!(
        tools(Who::Bearer("a:read:data")).await,
        ["get_user_data", "protected_operation", "whoami"]
    );
    assert_eq!(
        tools(Who::Bearer("a:read:data,write:data,admin:write")).await,
        [
            "delete_user",
            "get_user_data",
            "protected_operation",
            "update_user_data",
            "whoami"
        ]
    );
    assert_eq!(
        list(&app, Who::Key, "resources/list", "resources", "uri").await,
        ["admin://system/stats", "docs://readme"]
    );
    assert_eq!(
        list(
            &app,
            Who::Bearer("a:read:data"),
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate"
        )
        .await,
        ["docs://{page}", "user://{user_id}/private"]
    );
    assert_eq!(
        list(
            &app,
            Who::Key,
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate"
        )
        .await,
        ["docs://{page}"]
    );
}

#[tokio::test]
async fn list_filtering_over_json() {
    list_filtering(true).await;
}

#[tokio::test]
async fn list_filtering_over_sse() {
    let app = spawn(false).await;
    let r = app
        .post(
            Who::Key,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
        .await;
    assert!(
        r.content_type.starts_with("text/event-stream"),
        "{}",
        r.content_type
    );
    list_filtering(false).await;
}
