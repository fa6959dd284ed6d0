//! MCP-aware authorization: per-tool, per-prompt, per-resource and
//! per-method rules on one Streamable HTTP endpoint.
//!
//! | piece | job |
//! | --- | --- |
//! | [`McpRequest::parse`] ([`inspect`]) | the JSON-RPC peek: each call's id, method and target |
//! | [`Rule`], [`McpPolicy`] ([`policy`]) | what each call needs |
//! | [`UriTemplate`] ([`uri_template`]) | RFC 6570 level-1 templates for resources |
//! | [`TemplateIndex`] ([`template_index`]) | many templates decided without a linear scan |
//! | [`McpPolicyLayer`] ([`layer`]) | reads the body once, decides, hands on the same bytes |
//! | [`filter`] | list results trimmed to what the caller may call, on every response |
//! | [`SessionBindingLayer`] ([`session`]) | a session belongs to the principal that opened it |
//!
//! Put the layer after the authentication layers (made `.optional()` so the
//! policy decides what needs a credential) and before the MCP service. It
//! reads the [`Principal`](crate::Principal) from the request extensions
//! and knows nothing of the layer that put it there.
//!
//! # Spec decisions
//!
//! - `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28, Streamable HTTP, "Request
//!   Metadata"): checked when present, `=?base64?…?=` values decoded; a
//!   mismatch is 400 with JSON-RPC code `-32020` (`HeaderMismatch`, the
//!   code the draft schema gives; an earlier draft of the transport page
//!   said `-32001`, which this crate already uses for 401). Their absence
//!   is not refused: requiring them is the server's protocol-version call.
//!   `Mcp-Name` is compared only for the methods whose name source the
//!   protocol defines (`tools/call`, `prompts/get`: `params.name`;
//!   `resources/read`, `resources/subscribe`, `resources/unsubscribe`:
//!   `params.uri`; `tasks/get`, `tasks/update`, `tasks/cancel`:
//!   `params.taskId`, SEP-2663), and only when the body has that value: the
//!   set rmcp checks, so the two agree; for other methods it is the
//!   server's.
//! - A call the layer cannot give a target (a removed or malformed method)
//!   is not refused as malformed: the policy decides it as a target that
//!   matches no rule, and the server answers it if that allows the caller
//!   (see [`policy`]).
//! - 403 `insufficient_scope` lists granted ∪ required scopes (MCP
//!   2025-11-25, authorization, "Runtime Insufficient Scope Errors",
//!   recommended approach), with `resource_metadata` and
//!   `error_description`.
//!
//! # Tools see the principal
//!
//! rmcp hands the request's [`http::request::Parts`] to tools as an
//! extension; the [`Principal`](crate::Principal) is in their extensions:
//!
//! ```
//! use rmcp::{handler::server::{router::tool::ToolRouter, tool::Extension}, tool, tool_router};
//! use tower_mcp_auth::Principal;
//!
//! #[derive(Clone)]
//! struct Server {
//!     tool_router: ToolRouter<Self>,
//! }
//!
//! #[tool_router]
//! impl Server {
//!     #[tool(description = "Who am I?")]
//!     async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
//!         Principal::from_parts(&parts).map_or("anonymous".into(), |p| p.subject().to_owned())
//!     }
//! }
//! # let _ = Server { tool_router: Server::tool_router() }.tool_router;
//! ```
//!
//! (tests/mcp_policy.rs runs exactly this against a real rmcp server.)
//!
//! # Example
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_mcp_auth::{api_key::{ApiKeyLayer, ApiKeys}, ProtectedResource};
//! use tower_mcp_auth::mcp::{McpPolicy, McpPolicyLayer, Rule};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
//!     .scopes_supported(["read:data", "write:data"])
//!     .build()?;
//! let policy = McpPolicy::builder()
//!     .default(Rule::authenticated())
//!     .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
//!     .tool("create_admin_user", Rule::api_key())
//!     .resource("user://{user_id}/private", Rule::bearer().scopes(["read:data"]))
//!     .build()?;
//! let layers = ServiceBuilder::new()
//!     .layer(resource.layer()) // every refusal names the resource's metadata
//!     .layer(ApiKeyLayer::new(ApiKeys::new()).optional())
//!     .layer(McpPolicyLayer::new(policy));
//! # let _ = layers; Ok(()) }
//! ```

mod filter;
mod inspect;
mod json;
mod layer;
mod policy;
pub mod session;
mod template_index;
mod uri_template;

pub use inspect::{
    McpCall, McpRequest, MessageKind, Target, JSONRPC_HEADER_MISMATCH, MCP_METHOD, MCP_NAME,
};
pub use layer::{
    McpPolicyLayer, McpPolicyService, ResponseFuture, DEFAULT_BODY_LIMIT, DEFAULT_RESPONSE_LIMIT,
};
pub use policy::{McpPolicy, McpPolicyBuilder, Rule};
pub use template_index::TemplateIndex;
pub use uri_template::UriTemplate;
