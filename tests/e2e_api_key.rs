//! End to end: the example MCP server (`examples/mcp_server/`) behind
//! `ApiKeyLayer`, served on loopback, driven by rmcp's own Streamable HTTP
//! client and by raw HTTP requests.

mod support;
use support::mcp_server;

use std::{collections::HashMap, net::SocketAddr};

use http::{HeaderName, HeaderValue};
use rmcp::{
    model::{CallToolRequestParams, CallToolResult, ClientConfig, ReadResourceRequestParams},
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    RoleClient, ServiceExt as _,
};
use serde_json::{json, Value};
use tower_mcp_auth::api_key::{ApiKey, ApiKeys};

const KEY: &str = "mcp_sk_e2e-test-key-0123456789abcdef";
const KEY_NAME: &str = "ci-admin";
const JWT_SECRET: &str = "e2e-api-key-test-hs256-secret-0123456789";
const ACCEPT: &str = "application/json, text/event-stream";
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1.0"}}}"#;

/// Serves the example app on 127.0.0.1:0; returns its address.
async fn serve(stateless: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = ApiKeys::new().with(ApiKey::new(KEY_NAME, KEY));
    let mut config = mcp_server::Config::new(format!("http://{addr}/mcp"), keys);
    config.stateless = stateless;
    config.auth.jwt_secret = Some(secrecy::SecretString::from(JWT_SECRET));
    let app = mcp_server::app(&config).await.unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

type Client = rmcp::service::RunningService<RoleClient, ClientConfig>;

async fn rmcp_client(
    addr: SocketAddr,
    key: &'static str,
) -> Result<Client, rmcp::service::ClientInitializeError> {
    let headers = HashMap::from([(
        HeaderName::from_static("x-api-key"),
        HeaderValue::from_static(key),
    )]);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .custom_headers(headers),
    );
    ClientConfig::default().serve(transport).await
}

/// An rmcp client whose requests carry `Authorization: Bearer <token>`.
async fn bearer_client(addr: SocketAddr, token: String) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(token),
    );
    ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialize with the token")
}

/// An rmcp call refused with 403 `forbidden` and `description`, without a
/// challenge (rmcp keeps an unchallenged 403 as a transport error).
fn assert_refused_403(err: rmcp::ServiceError, description: &str) {
    let text = format!("{err:?}");
    assert!(text.contains("403"), "{text}");
    assert!(text.contains(description), "{text}");
    assert!(text.contains("forbidden"), "{text}");
    assert!(!text.contains("invalid_token"), "{text}");
}

fn args(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("arguments are an object"),
    }
}

fn structured(result: &CallToolResult) -> &Value {
    assert_ne!(result.is_error, Some(true), "tool error: {result:?}");
    result
        .structured_content
        .as_ref()
        .expect("structured content")
}

fn metadata_url(addr: SocketAddr) -> String {
    format!("http://{addr}/.well-known/oauth-protected-resource/mcp")
}

#[tokio::test]
async fn rmcp_client_with_key_lists_calls_and_reads() {
    let addr = serve(false).await;
    let client = rmcp_client(addr, KEY)
        .await
        .expect("initialize with the key");

    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        // Only what an API key may call (the bearer-only tools are
        // filtered out of the listing).
        [
            "build_report",
            "confirm_delete_user",
            "create_admin_user",
            "delete_user",
            "get_user_by_id",
            "list_all_users",
            "protected_operation",
            "rate_limited_operation",
        ]
    );

    // The tool reads the principal that ApiKeyLayer put into the request parts.
    let created = client
        .call_tool(
            CallToolRequestParams::new("create_admin_user").with_arguments(args(
                json!({"email": "dana@example.com", "name": "Dana Park"}),
            )),
        )
        .await
        .unwrap();
    let created = structured(&created);
    assert_eq!(created["status"], "success");
    assert_eq!(created["created_by"], KEY_NAME);
    assert_eq!(created["user"]["created_by"], KEY_NAME);
    assert_eq!(created["user"]["role"], "admin");
    let user_id = created["user_id"].as_str().unwrap().to_owned();
    assert_eq!(user_id, "user_004");

    // The store really changed.
    let fetched = client
        .call_tool(
            CallToolRequestParams::new("get_user_by_id")
                .with_arguments(args(json!({"user_id": user_id}))),
        )
        .await
        .unwrap();
    assert_eq!(structured(&fetched)["email"], "dana@example.com");
    let duplicate = client
        .call_tool(
            CallToolRequestParams::new("create_admin_user")
                .with_arguments(args(json!({"email": "DANA@example.com", "name": "Dana"}))),
        )
        .await
        .unwrap();
    assert_eq!(duplicate.is_error, Some(true));

    let op = call(&client, "protected_operation", json!({"param": "p"})).await;
    assert_eq!(structured(&op)["performed_by"], KEY_NAME);

    let resources = client.list_all_resources().await.unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].uri, "admin://system/stats");
    let stats = client
        .read_resource(ReadResourceRequestParams::new("admin://system/stats"))
        .await
        .unwrap();
    let text = match &stats.contents[..] {
        [rmcp::model::ResourceContents::TextResourceContents { uri, text, .. }] => {
            assert_eq!(uri, "admin://system/stats");
            text
        }
        other => panic!("unexpected contents {other:?}"),
    };
    let stats: Value = serde_json::from_str(text).unwrap();
    assert_eq!(stats["total_users"], 4);
    assert_eq!(stats["admin_users"], 2);
    assert_eq!(stats["requested_by"], KEY_NAME);
    assert!(stats["active_sessions"].as_u64().unwrap() >= 1, "{stats}");

    // The private-data template needs a bearer token: not listed for a key.
    let templates = client.list_all_resource_templates().await.unwrap();
    assert!(templates.is_empty(), "{templates:?}");
    // A resource no rule names falls to the default rule (any caller) and
    // reaches the server, which does not have it.
    let missing = client
        .read_resource(ReadResourceRequestParams::new("admin://system/nothing"))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, rmcp::ServiceError::McpError(e) if e.message.contains("no resource `admin://system/nothing`")),
        "{missing:?}"
    );

    // Bearer-only tools and resources refuse the key: 403 naming the
    // scheme they need, no `invalid_token` challenge (issue 25 item 3).
    let refused = client
        .call_tool(CallToolRequestParams::new("get_my_profile"))
        .await
        .unwrap_err();
    assert_refused_403(
        refused,
        "tools/call `get_my_profile`: this call requires an OAuth bearer token",
    );
    let refused = client
        .read_resource(ReadResourceRequestParams::new("user://user_002/private"))
        .await
        .unwrap_err();
    assert_refused_403(
        refused,
        "resources/read `user://user_002/private`: this call requires an OAuth bearer token",
    );

    client.cancel().await.unwrap();
}

async fn call(client: &Client, tool: &'static str, arguments: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args(arguments)))
        .await
        .unwrap()
}

#[tokio::test]
async fn every_tool_works_and_writes_change_the_store() {
    let addr = serve(false).await;
    let client = rmcp_client(addr, KEY).await.expect("initialize");
    // The bearer-only tools, with a token signed with JWT_SECRET carrying
    // every scope of the contract.
    let token = mcp_server::mint_token(
        &secrecy::SecretString::from(JWT_SECRET),
        &format!("http://{addr}/mcp"),
        "alice",
        &mcp_server::SCOPES,
    );
    let bearer = bearer_client(addr, token).await;

    let user = call(&bearer, "get_user_data", json!({"user_id": "user_003"})).await;
    assert_eq!(structured(&user)["name"], "Carol Diaz");
    let missing = call(&bearer, "get_user_data", json!({"user_id": "user_999"})).await;
    assert_eq!(missing.is_error, Some(true));

    let record = call(
        &bearer,
        "read_sensitive_data",
        json!({"data_id": "hr-salary-bands"}),
    )
    .await;
    let record = structured(&record);
    assert_eq!(record["record"]["classification"], "restricted");
    assert_eq!(record["accessed_by"], "alice");

    let updated = call(
        &bearer,
        "update_user_data",
        json!({"user_id": "user_002", "data": {"department": "Partnerships"}}),
    )
    .await;
    let updated = structured(&updated);
    assert_eq!(updated["changed"], json!(["department"]));
    assert_eq!(updated["updated_by"], "alice");
    // The bearer caller's write is seen by the API-key caller.
    let user = call(&client, "get_user_by_id", json!({"user_id": "user_002"})).await;
    assert_eq!(structured(&user)["department"], "Partnerships");
    let bad_email = call(
        &bearer,
        "update_user_data",
        json!({"user_id": "user_002", "data": {"email": "nope"}}),
    )
    .await;
    assert_eq!(bad_email.is_error, Some(true));
    // Unknown fields are refused (rmcp reports input errors as tool errors).
    let unknown_field = call(
        &bearer,
        "update_user_data",
        json!({"user_id": "user_002", "data": {"role": "admin"}}),
    )
    .await;
    assert_eq!(unknown_field.is_error, Some(true));
    assert!(format!("{:?}", unknown_field.content).contains("unknown field `role`"));

    let profile = call(
        &bearer,
        "update_my_profile",
        json!({"data": {"display_name": "CI bot", "timezone": "Europe/Paris"}}),
    )
    .await;
    assert_eq!(structured(&profile)["profile"]["display_name"], "CI bot");
    let profile = bearer
        .call_tool(CallToolRequestParams::new("get_my_profile"))
        .await
        .unwrap();
    let profile = structured(&profile);
    assert_eq!(profile["profile"]["subject"], "alice");
    assert_eq!(profile["profile"]["timezone"], "Europe/Paris");
    assert_eq!(profile["caller"]["scheme"], "jwt");

    let deleted = call(
        &client,
        "delete_user",
        json!({"user_id": "user_003", "reason": "left the company"}),
    )
    .await;
    let deleted = structured(&deleted);
    assert_eq!(deleted["deleted"], "user_003");
    assert_eq!(deleted["deleted_by"], KEY_NAME);
    let gone = call(&client, "get_user_by_id", json!({"user_id": "user_003"})).await;
    assert_eq!(gone.is_error, Some(true));
    let all = client
        .call_tool(CallToolRequestParams::new("list_all_users"))
        .await
        .unwrap();
    let all = structured(&all);
    assert_eq!(all["total"], 2);
    assert_eq!(all["users"][0]["id"], "user_001");
    assert_eq!(all["users"][1]["id"], "user_002");

    for tool in ["protected_operation", "rate_limited_operation"] {
        for (who, name) in [(&client, KEY_NAME), (&bearer, "alice")] {
            let done = call(who, tool, json!({"param": "42"})).await;
            let done = structured(&done);
            assert_eq!(done["operation"], tool);
            assert_eq!(done["performed_by"], name);
        }
    }

    client.cancel().await.unwrap();
    bearer.cancel().await.unwrap();
}

#[tokio::test]
async fn rmcp_client_in_stateless_mode() {
    let addr = serve(true).await;
    let client = rmcp_client(addr, KEY).await.expect("initialize");
    let result = client
        .call_tool(
            CallToolRequestParams::new("protected_operation")
                .with_arguments(args(json!({"param": "reindex"}))),
        )
        .await
        .unwrap();
    let result = structured(&result);
    assert_eq!(result["performed_by"], KEY_NAME);
    assert_eq!(result["param"], "reindex");
    client.cancel().await.unwrap();

    // Plain JSON, not SSE.
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("x-api-key", KEY)
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn rmcp_client_with_a_wrong_key_cannot_initialize() {
    let addr = serve(false).await;
    assert!(rmcp_client(addr, "mcp_sk_wrong-key-0123456789abcdef")
        .await
        .is_err());
}

async fn post_init(addr: SocketAddr, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", ACCEPT);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.body(INIT).send().await.unwrap()
}

#[tokio::test]
async fn no_key_is_401_with_a_challenge_whose_url_serves_the_metadata() {
    let addr = serve(false).await;
    let response = post_init(addr, &[]).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            r#"Bearer resource_metadata="http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp""#,
            addr.port()
        )
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    // The policy decides (the API key is optional): a JSON-RPC error with
    // the request's id.
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"initialize: authentication is required","data":{"error":"missing_credential","error_description":"initialize: authentication is required"}}}"#
    );

    // Follow the challenge.
    let url = challenge
        .strip_prefix(r#"Bearer resource_metadata=""#)
        .and_then(|s| s.strip_suffix('"'))
        .unwrap();
    assert_eq!(url, metadata_url(addr));
    let want = json!({
        "resource": format!("http://{addr}/mcp"),
        // Every scope the example's policy names, sorted.
        "scopes_supported": [
            "admin:write", "data:read", "read:data",
            "read:profile", "write:data", "write:profile"
        ],
        "bearer_methods_supported": ["header"],
        "resource_name": "tower-mcp-auth example MCP server",
    });
    for url in [
        url.to_owned(),
        format!("http://{addr}/.well-known/oauth-protected-resource"),
    ] {
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let got: Value = response.json().await.unwrap();
        assert_eq!(got, want, "{url}");
    }

    // GET (the SSE stream) and DELETE need the key too.
    let client = reqwest::Client::new();
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = client
            .request(method.clone(), format!("http://{addr}/mcp"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method}");
        assert_eq!(
            response.headers()["www-authenticate"],
            challenge.as_str(),
            "{method}"
        );
        // No JSON-RPC message: the plain JSON body.
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"error":"missing_credential","error_description":"authentication is required"}"#,
            "{method}"
        );
    }
}

#[tokio::test]
async fn wrong_key_is_401_invalid_token() {
    let addr = serve(false).await;
    let response = post_init(addr, &[("x-api-key", "mcp_sk_not-the-right-key-000000")]).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        format!(
            r#"Bearer error="invalid_token", error_description="the API key is not valid", resource_metadata="{}""#,
            metadata_url(addr)
        )
        .as_str()
    );
    let body = response.text().await.unwrap();
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"the API key is not valid","data":{"error":"invalid_token","error_description":"the API key is not valid"}}}"#
    );
    assert!(!body.contains("not-the-right-key"));
}

#[tokio::test]
async fn unknown_origin_or_host_is_403() {
    let addr = serve(false).await;

    let response = post_init(
        addr,
        &[("x-api-key", KEY), ("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.text().await.unwrap(),
        "Forbidden: Origin header is not allowed"
    );

    // Same host, another port: another origin.
    let other_port = format!("http://127.0.0.1:{}", addr.port().wrapping_add(1).max(1));
    let response = post_init(addr, &[("x-api-key", KEY), ("origin", &other_port)]).await;
    assert_eq!(response.status(), 403);

    // DNS rebinding: a foreign name resolving to us.
    let response = post_init(addr, &[("x-api-key", KEY), ("host", "evil.example")]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.text().await.unwrap(),
        "Forbidden: Host header is not allowed"
    );

    // The public URL's own origin, and the other loopback names, pass.
    for origin in [
        format!("http://127.0.0.1:{}", addr.port()),
        format!("http://localhost:{}", addr.port()),
    ] {
        let response = post_init(addr, &[("x-api-key", KEY), ("origin", &origin)]).await;
        assert_eq!(response.status(), 200, "{origin}");
    }
    let localhost = format!("localhost:{}", addr.port());
    let response = post_init(addr, &[("x-api-key", KEY), ("host", &localhost)]).await;
    assert_eq!(response.status(), 200);
}

/// The only test that touches the environment (tests run in parallel).
#[test]
fn config_from_env_names_the_variable() {
    use mcp_server::Config;
    use secrecy::ExposeSecret;

    let vars = ["BIND", "PUBLIC_URL", "API_KEY", "MCP_STATELESS"];
    let clear = || vars.iter().for_each(|v| std::env::remove_var(v));
    let err_for = |var: &str, value: &str| {
        clear();
        std::env::set_var(var, value);
        let err = Config::from_env().unwrap_err().to_string();
        assert!(err.contains(&format!("`{var}`")), "{var}={value}: {err}");
        err
    };

    // Demo mode: no API_KEY generates a working key.
    clear();
    let config = Config::from_env().unwrap();
    assert_eq!(config.bind, mcp_server::DEFAULT_BIND);
    assert_eq!(config.auth.public_url, "http://127.0.0.1:3000/mcp");
    assert!(!config.stateless);
    let key = config.auth.generated_key.as_ref().expect("a generated key");
    assert!(key.expose_secret().starts_with("mcp_sk_"));
    assert_eq!(
        config
            .auth
            .api_keys
            .verify(key.expose_secret())
            .unwrap()
            .name(),
        mcp_server::DEMO_KEY_NAME
    );

    // API_KEY set: those keys, no generated one.
    std::env::set_var(
        "API_KEY",
        format!("{KEY},mcp_sk_second-key-0123456789abcdef"),
    );
    std::env::set_var("BIND", "0.0.0.0:8080");
    std::env::set_var("MCP_STATELESS", "1");
    let config = Config::from_env().unwrap();
    assert!(config.auth.generated_key.is_none());
    assert_eq!(config.auth.api_keys.len(), 2);
    assert_eq!(
        config.auth.api_keys.verify(KEY).unwrap().subject(),
        Some("api_key")
    );
    assert_eq!(config.auth.public_url, "http://localhost:8080/mcp");
    assert!(config.stateless);

    err_for("BIND", "not-an-address");
    err_for("PUBLIC_URL", "http://mcp.example.com/mcp");
    err_for("PUBLIC_URL", "");
    let err = err_for("API_KEY", "short");
    assert!(!err.contains("short\""), "{err}");
    err_for("API_KEY", " , ");
    err_for("MCP_STATELESS", "yes");
    clear();
}
