//! MCP-aware authorization: per-tool, per-prompt, per-resource and
//! per-method rules on one Streamable HTTP endpoint.
//!
//! | piece | job |
//! | --- | --- |
//! | [`McpRequest::parse`] | the JSON-RPC peek: each call's id, method and target |
//! | [`McpPolicy`] | what each call needs, in the crate's one rule language, [`Rule`](crate::Rule) |
//! | [`McpPolicy::from_file`], [`SharedPolicy`], [`PolicyReloader`] | the policy as data (TOML or JSON), reloaded at run time (a watched file, `SIGHUP`) |
//! | [`UriTemplate`] | RFC 6570 level-1 templates for resources |
//! | [`TemplateIndex`] | many templates decided without a linear scan |
//! | [`McpPolicyLayer`] | reads the body once, decides, hands on the same bytes |
//! | [list filtering](#list-filtering) | list results trimmed to what the caller may call, on every response |
//! | [`session::SessionBindingLayer`] ([`session`]) | a session belongs to the principal that opened it |
//! | [`handles::HandleBindingLayer`] ([`handles`]) | 2026-07-28: a `requestState` and a task id belong to their caller (and the state to its request) |
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
//!   (see [`McpPolicy`]).
//! - 403 `insufficient_scope` lists granted ∪ required scopes (the
//!   crate's one [step-up rule](crate::AuthError::insufficient_scope)),
//!   with `resource_metadata` and `error_description`.
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
//!         Principal::from_parts(&parts).map_or("anonymous".into(), |p| p.name().to_owned())
//!     }
//! }
//! # let _ = Server { tool_router: Server::tool_router() }.tool_router;
//! ```
//!
//! (tests/mcp_policy.rs runs exactly this against a real rmcp server.)
//!
//! # List filtering
//!
//! List filtering: every `tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list` and `skills/list` result that leaves the MCP
//! endpoint is trimmed to what the caller of that HTTP exchange may call.
//!
//! An item stays when the [`McpPolicy`] would allow the caller to use it:
//! a tool when `tools/call` of its `name` is allowed, a prompt when
//! `prompts/get` of its `name` is, a resource when `resources/read` of its
//! `uri` is, a resource template when reading its `uriTemplate` is (the
//! template string matches a rule registered for the same template, and
//! any template whose variables cover it), a skill (the skills extension,
//! SEP-2640, rmcp 3.11) when `skills/get` of its `uri` is
//! ([`McpPolicy::may_get_skill`]). An item without that member is
//! dropped; so is a target whose rule is [`Rule::deny`](crate::Rule::deny). A filtered result is marked `"cacheScope": "private"` (MCP
//! 2026-07-28, SEP-2549: absent means `"public"`, which would let a client
//! or an intermediary serve one caller's list to another).
//!
//! ## What is filtered: the shape, not the id
//!
//! A message is a list result by its shape: its `result` is an object with
//! a `tools`, `prompts`, `resources` or `resourceTemplates` array. Every
//! message of every response of the endpoint is looked at, whatever its
//! `id` and whichever request it answers, and filtered for the principal
//! of the HTTP exchange that carries it: the POST's own JSON body or SSE
//! stream, another POST's stream (rmcp routes a reply by its JSON-RPC id
//! within the session, so a reply can leave on another exchange that
//! reused the id), and the standalone GET stream. Matching replies to
//! requests by id cannot be made safe: rmcp rewrites ids (`1.0`, `1e0`,
//! `-0` come back as `1` and `0`) and routes by them.
//!
//! Most replies are not parsed at all. A reply (or an SSE event) in which
//! no reader can find a list member name goes on byte for byte after one
//! search of its bytes: none of `tools`, `prompts`, `resource` is in it, no
//! escape that may spell a letter (anything but `\"`, `\\`, `\/`, `\b`,
//! `\f`, `\n`, `\r`, `\t`), no NUL byte (UTF-16 and UTF-32 texts spell names
//! with NULs between the letters). Any other reply costs one pass of the
//! crate's JSON scanner, with nothing built: only a list result is parsed
//! into a [`serde_json::Value`] and written again.
//!
//! - A body that is not an event stream (`application/json`, or anything
//!   else) is held until it ends, up to the layer's
//!   [`response_limit`](crate::mcp::McpPolicyLayer::response_limit), when
//!   its first byte that is not white space may start a JSON text (`{`,
//!   `[`, a byte order mark, or the first byte of UTF-16 or UTF-32);
//!   any other body cannot be a JSON-RPC message and streams through
//!   untouched.
//! - `text/event-stream`: events pass one by one as they complete; each is
//!   scanned once (linear in the stream), and an incomplete event is held
//!   up to the same limit.
//!
//! ## Fail closed
//!
//! A reply the filter cannot read never goes out unfiltered:
//!
//! - a body with a `Content-Encoding` (compressed): put a compression
//!   layer **outside** [`McpPolicyLayer`], so
//!   that it compresses what the filter has already read;
//! - a JSON text that does not parse (when a list member name may be in
//!   it: a text without one carries no list, whatever a reader makes of
//!   it, and goes on as it is), a body or event over the limit, a body
//!   that fails while being read.
//!
//! Such a body is replaced by a JSON-RPC error, code `-32603` (internal
//! error: the fault is the server's, not the client's), one for each id of
//! the request (`null` when it had none), with HTTP status 502 Bad
//! Gateway (the layer stands in front of the MCP server as a gateway and
//! got a reply it cannot pass on). On an event stream the headers have
//! gone already: the unreadable event is replaced by those errors and the
//! stream ends. Either way an audit event (`outcome = "refused"`, `reason
//! = "unreadable_reply"`) says why.
//!
//! Switch filtering off with
//! [`McpPolicyLayer::filter_lists(false)`](crate::mcp::McpPolicyLayer::filter_lists).
//!
//! ## What the policy does not name
//!
//! The filter also tells the operator where the policy and the server
//! disagree, before an attacker finds out:
//!
//! - a tool, prompt, resource, resource template or skill that the server
//!   lists and no rule of its kind names (a tool added without a rule: it
//!   falls to the unmatched rule of its kind, else the method rule, else
//!   the default);
//! - a tool or prompt that a rule names and the server's complete list
//!   does not hold (a typo: `wirte_note` for `write_note`, whose rule then
//!   matches nothing), found once a listing's last page (no `nextCursor`)
//!   has been seen, the earlier pages before it.
//!
//! Each name is reported once per policy (a reload starts afresh): an
//! audit event (`outcome = "policy_gap"`, `reason = "no_rule"` or
//! `"never_listed"`, `target_kind`, `target` cut to the audit bound) and a
//! warning in the log. At most 256 names are remembered; then one event
//! (`reason = "too_many_gaps"`) says no more are reported. A listing the
//! filter has seen among the last few costs a hash of its names; only a
//! new one takes a lock. With filtering switched off, nothing is
//! reported.
//!
//! ## Example
//!
//! ```
//! use tower_mcp_auth::mcp::McpPolicy;
//! use tower_mcp_auth::Rule;
//! use tower_mcp_auth::{AuthScheme, Principal};
//!
//! let policy = McpPolicy::builder()
//!     .tool("create_admin_user", Rule::api_key())
//!     .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
//!     .build()
//!     .unwrap();
//! let key = Principal::new(AuthScheme::ApiKey, "svc");
//! // What the filter asks for each listed tool:
//! assert!(policy.may_call_tool(Some(&key), "create_admin_user"));
//! assert!(!policy.may_call_tool(Some(&key), "get_user_data"));
//! ```
//!
//! # Example
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_mcp_auth::api_key::{ApiKeyLayer, ApiKeys};
//! use tower_mcp_auth::ProtectedResource;
//! use tower_mcp_auth::mcp::{McpPolicy, McpPolicyLayer};
//! use tower_mcp_auth::Rule;
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

mod body;
mod file;
mod filter;
pub mod handles;
mod inspect;
mod json;
mod layer;
mod limits;
mod policy;
mod reload;
pub mod session;
mod shared;
mod template_index;
mod uri_template;

pub use body::{
    ANONYMOUS_REFUSAL_LIMIT, DEFAULT_ANONYMOUS_BUFFER_BUDGET, DEFAULT_BODY_TIMEOUT,
    DEFAULT_BUFFER_BUDGET,
};
pub use inspect::{
    McpCall, McpRequest, MessageKind, Target, JSONRPC_HEADER_MISMATCH, MCP_METHOD, MCP_NAME,
};
pub use layer::{
    McpPolicyLayer, McpPolicyService, ResponseFuture, DEFAULT_BODY_LIMIT, DEFAULT_RESPONSE_LIMIT,
};
pub use limits::RateLimits;
pub use policy::{McpPolicy, McpPolicyBuilder};
pub use reload::{PolicyReloader, ReloadOutcome};
pub use shared::SharedPolicy;
pub use template_index::{TemplateIndex, TemplatePrecedence};
pub use uri_template::UriTemplate;
