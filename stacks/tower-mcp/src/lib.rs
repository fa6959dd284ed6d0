//! The tower-mcp-auth layers in front of [tower-mcp], a second Rust MCP
//! server stack independent of rmcp: its Streamable HTTP transport (an axum
//! router) behind API keys, HS256 bearer tokens, per-tool rules with
//! `tools/list` filtering, a per-principal rate limit and session binding.
//!
//! A tool reads its caller as it does on rmcp, from the [`Principal`] the
//! layers verified: tower-mcp copies a type from the HTTP request's
//! extensions into the tool's request context once it is registered with
//! [`HttpTransport::bridge_extension`], and a tool takes it with the
//! `Extension<Principal>` extractor (see `whoami`).
//!
//! ```text
//! API_KEY=mcp_sk_change_me_to_32_bytes_or_more JWT_SECRET=a-long-random-secret-of-32-bytes-or-more \
//!   cargo run -p tower-mcp-auth-stack-tower-mcp          # BARE=1: no layers (conformance)
//! ```
//!
//! [tower-mcp]: https://docs.rs/tower-mcp
#![forbid(unsafe_code)]

use std::time::Duration;

use axum::{
    body::Body,
    http::{header::CONTENT_TYPE, HeaderValue, Method, StatusCode},
    response::Response,
    Router,
};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use tower::ServiceBuilder;
use tower_mcp::{
    extract::{Extension, Json},
    protocol::ReadResourceResult,
    CallToolResult, HttpTransport, McpRouter, RequestContext, ResourceBuilder,
    ResourceTemplateBuilder, ToolBuilder,
};
use tower_mcp_auth::{
    api_key::{ApiKeyLayer, ApiKeys},
    jwt::{JwtLayer, JwtValidator},
    mcp::{session::SessionBindingLayer, McpPolicy, McpPolicyLayer, TemplatePrecedence},
    rate_limit::{Quota, RateLimitLayer},
    ConfigError, Principal, ProtectedResource, Rule,
};

/// The template of each user's private record.
pub const PRIVATE_TEMPLATE: &str = "user://{user_id}/private";
/// The server's statistics.
pub const STATS_URI: &str = "admin://system/stats";
/// Any note of any owner: API key only. Registered with tower-mcp
/// **before** [`SHARED_NOTE_TEMPLATE`], so tower-mcp (first registered
/// wins) serves `notes://ann/shared` from this one.
pub const NOTES_TEMPLATE: &str = "notes://{owner}/{name}";
/// Each owner's shared note: public, as far as the rules go.
pub const SHARED_NOTE_TEMPLATE: &str = "notes://{owner}/shared";

/// Where the MCP endpoint is mounted.
pub const MCP_PATH: &str = "/mcp";

/// How the server is set up.
#[derive(Clone)]
pub struct Settings {
    /// The MCP endpoint's public URL (the tokens' audience, the resource of
    /// the protected-resource metadata, the allowed `Host` and `Origin`).
    pub public_url: String,
    /// The API keys (each names its principal).
    pub api_keys: ApiKeys,
    /// The HS256 secret of the bearer tokens.
    pub jwt_secret: SecretString,
    /// Calls a principal may make a minute.
    pub per_minute: u32,
    /// Answer each POST as an SSE stream (`text/event-stream`) rather than
    /// as one JSON body.
    pub sse: bool,
}

/// The rules: what each tool asks of its caller. Everything else
/// (`initialize`, `tools/list`, …) needs an authenticated caller.
///
/// # Errors
///
/// None with these rules; the builder checks them.
pub fn policy() -> Result<McpPolicy, ConfigError> {
    McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("echo", Rule::public())
        .tool("whoami", Rule::authenticated())
        .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
        .tool("list_all_users", Rule::api_key())
        .tool(
            "delete_user",
            Rule::api_key().or(Rule::bearer().scopes(["admin:write"])),
        )
        .resource(PRIVATE_TEMPLATE, Rule::bearer().scopes(["read:data"]))
        .resource(STATS_URI, Rule::api_key())
        // tower-mcp serves a URI from the first template registered that
        // matches it, so the rules follow the same order: `notes://ann/shared`
        // is served by the API-key template and judged by its rule (by
        // default the policy would judge it by the more specific, public one).
        .template_precedence(TemplatePrecedence::FirstRegistered)
        .resource(NOTES_TEMPLATE, Rule::api_key())
        .resource(SHARED_NOTE_TEMPLATE, Rule::public())
        // A URI no resource rule matches: API key only. tower-mcp routes a
        // URI to a template more loosely than the policy matches one (its
        // `{user_id}` takes `?` and `#`, the policy's does not), so
        // `user://user_001?x/private` reaches the template's handler while
        // the policy finds no template for it: this rule, not the default,
        // must decide it.
        .unmatched_resource(Rule::api_key())
        .build()
}

/// THE STACK in front of the tower-mcp server: the protected-resource
/// metadata at its well-known address and the MCP endpoint at
/// [`MCP_PATH`].
///
/// # Errors
///
/// A public URL that is not an absolute `http(s)` URL, a short secret, a
/// zero rate.
pub fn app(settings: &Settings) -> Result<Router, ConfigError> {
    let policy = policy()?;
    let resource = ProtectedResource::builder(&settings.public_url)
        .scopes_supported(policy.scopes_named().iter())
        .build()?;
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&settings.jwt_secret)
        .build()?;
    let quota = Quota::try_new(settings.per_minute, Duration::from_secs(60))?;
    let stack = ServiceBuilder::new()
        .layer(resource.layer()) // every refusal names the metadata
        .layer(ApiKeyLayer::new(settings.api_keys.clone()).optional())
        .layer(JwtLayer::new(validator).optional())
        .layer(McpPolicyLayer::new(policy)) // anonymous: 401; short of a scope: 403
        .layer(RateLimitLayer::per_principal(quota)) // 429 with Retry-After
        // A session is its opener's; anyone else's id is answered as
        // tower-mcp answers an id it does not know.
        .layer(SessionBindingLayer::new().unknown_session_answer(unknown_session));
    let mcp = transport(&resource, settings.sse).into_router();
    Ok(Router::new()
        .merge(resource.router())
        .nest_service(MCP_PATH, stack.service(mcp)))
}

/// tower-mcp 0.25's answer to a session id it does not know, on every
/// method: 404 and a JSON-RPC error `-32005` (it also names the id; this
/// answer does not repeat what the caller sent).
pub fn unknown_session(_method: &Method) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32005,
        "message": "Session not found or expired. Please re-initialize the connection."}});
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The same server without any layer: what the conformance suite compares
/// the stack with.
///
/// # Errors
///
/// A public URL that is not an absolute `http(s)` URL.
pub fn bare(public_url: &str, sse: bool) -> Result<Router, ConfigError> {
    let resource = ProtectedResource::builder(public_url).build()?;
    Ok(Router::new().nest_service(MCP_PATH, transport(&resource, sse).into_router()))
}

/// tower-mcp's Streamable HTTP transport over the tools, the `Principal`
/// bridged into the tools' context, `Host` and `Origin` checked against the
/// public URL (DNS rebinding).
fn transport(resource: &ProtectedResource, sse: bool) -> HttpTransport {
    HttpTransport::new(router())
        .bridge_extension::<Principal>()
        .allowed_hosts(resource.allowed_hosts())
        .allowed_origins(resource.allowed_origins())
        .sse_responses(sse)
}

/// `echo` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoInput {
    /// What to say back.
    pub text: String,
}

/// Names a user.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UserIdInput {
    /// The user's id, such as `user_001`.
    pub user_id: String,
}

/// The users of this demo (read-only: `delete_user` only says what it would
/// delete).
const USERS: [(&str, &str); 3] = [
    ("user_001", "Alice Martin"),
    ("user_002", "Bob Chen"),
    ("user_003", "Carol Diaz"),
];

fn user(id: &str) -> Option<serde_json::Value> {
    USERS
        .iter()
        .find(|(uid, _)| *uid == id)
        .map(|(uid, name)| json!({"id": uid, "name": name}))
}

/// A tool error (`isError: true`) naming an unknown user, its id clipped.
fn no_such_user(id: &str) -> CallToolResult {
    let clipped: String = id.chars().take(64).collect();
    CallToolResult::error(format!("no user with id `{clipped}`"))
}

/// What a tool says of its caller.
fn describe(p: &Principal) -> serde_json::Value {
    json!({
        "subject": p.name(),
        "scheme": p.scheme().to_string(),
        "scopes": p.scopes().iter().collect::<Vec<_>>(),
    })
}

/// The MCP server: five tools, a resource template and a resource, the
/// contract of the rmcp example where it applies.
pub fn router() -> McpRouter {
    let echo = ToolBuilder::new("echo")
        .description("Say the text back (anyone).")
        .extractor_handler((), |Json(input): Json<EchoInput>| async move {
            Ok(CallToolResult::text(input.text))
        })
        .build();
    let whoami = ToolBuilder::new("whoami")
        .description("Who is calling, and how (any authenticated caller).")
        .extractor_handler((), |Extension(caller): Extension<Principal>| async move {
            Ok(CallToolResult::json(describe(&caller)))
        })
        .build();
    let get_user_data = ToolBuilder::new("get_user_data")
        .description("Get a user's data (bearer token with read:data).")
        .extractor_handler(
            (),
            |Extension(caller): Extension<Principal>, Json(input): Json<UserIdInput>| async move {
                Ok(match user(&input.user_id) {
                    Some(u) => CallToolResult::json(json!({"user": u, "read_by": caller.name()})),
                    None => no_such_user(&input.user_id),
                })
            },
        )
        .build();
    let list_all_users = ToolBuilder::new("list_all_users")
        .description("List all users (API key).")
        .extractor_handler((), |Extension(_caller): Extension<Principal>| async move {
            let users: Vec<_> = USERS.iter().filter_map(|(id, _)| user(id)).collect();
            Ok(CallToolResult::json(
                json!({"total": users.len(), "users": users}),
            ))
        })
        .build();
    let delete_user = ToolBuilder::new("delete_user")
        .description("Delete a user (API key, or bearer token with admin:write).")
        .extractor_handler(
            (),
            |Extension(caller): Extension<Principal>, Json(input): Json<UserIdInput>| async move {
                Ok(match user(&input.user_id) {
                    Some(_) => CallToolResult::json(
                        json!({"deleted": input.user_id, "deleted_by": caller.name()}),
                    ),
                    None => no_such_user(&input.user_id),
                })
            },
        )
        .build();
    // A resource reads its caller from the context, as a tool does.
    let private = ResourceTemplateBuilder::new(PRIVATE_TEMPLATE)
        .name("private_record")
        .handler_with_context(|ctx: RequestContext, uri, vars| async move {
            let reader = ctx.extension::<Principal>().map(|p| p.name().to_owned());
            let body = json!({"user_id": vars.get("user_id"), "read_by": reader});
            Ok(ReadResourceResult::text(uri, body.to_string()))
        });
    let notes = ResourceTemplateBuilder::new(NOTES_TEMPLATE)
        .name("note")
        .handler(|uri: String, vars| async move {
            let body = json!({"note": vars.get("name"), "of": vars.get("owner"), "template": NOTES_TEMPLATE});
            Ok(ReadResourceResult::text(uri, body.to_string()))
        });
    let shared = ResourceTemplateBuilder::new(SHARED_NOTE_TEMPLATE)
        .name("shared_note")
        .handler(|uri: String, vars| async move {
            let body = json!({"of": vars.get("owner"), "template": SHARED_NOTE_TEMPLATE});
            Ok(ReadResourceResult::text(uri, body.to_string()))
        });
    let stats = ResourceBuilder::new(STATS_URI)
        .name("system_stats")
        .text(json!({"users": USERS.len()}).to_string());
    McpRouter::new()
        .server_info("tower-mcp-auth-stack-tower-mcp", env!("CARGO_PKG_VERSION"))
        .resource_template(private)
        .resource_template(notes)
        .resource_template(shared)
        .resource(stats)
        .tool(echo)
        .tool(whoami)
        .tool(get_user_data)
        .tool(list_all_users)
        .tool(delete_user)
}
