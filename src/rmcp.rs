//! rmcp handlers read their caller in one line (feature `rmcp`).
//!
//! rmcp's `StreamableHttpService` keeps each request's
//! [`http::request::Parts`] in the handler's context, and the
//! authentication layers put the [`Principal`] into those parts'
//! extensions. This module takes it out for you:
//!
//! * a `#[tool]` (or `#[prompt]`) function takes the caller as a
//!   parameter, `caller: Principal` (this module implements rmcp's
//!   `FromContextPart` for it);
//! * any other handler (`read_resource`, `get_prompt`, ...) calls
//!   [`caller`] on its `RequestContext`.
//!
//! Both answer a JSON-RPC error ([`JSONRPC_UNAUTHORIZED`], "authentication
//! required") when the request carries no principal: a stack without an
//! authentication layer, or an `optional()` one that a policy let through
//! anonymously. For a handler that serves anonymous callers too, read
//! `ctx.extensions.get::<Parts>().and_then(Principal::from_parts)`
//! (an `Option`).
//!
//! Note that rmcp's own `Extension<Principal>` does not work: it reads
//! rmcp's context extensions, where the HTTP request's extensions are one
//! level down, inside `Parts`.
//!
//! # Example
//!
//! ```
//! use rmcp::{
//!     handler::server::router::tool::ToolRouter,
//!     model::{ReadResourceRequestParams, ReadResourceResult, ResourceContents},
//!     service::RequestContext,
//!     tool, tool_router, ErrorData, RoleServer,
//! };
//! use tower_mcp_auth::Principal;
//!
//! #[derive(Clone)]
//! struct Notes(ToolRouter<Self>);
//!
//! #[tool_router]
//! impl Notes {
//!     #[tool(description = "Who am I?")]
//!     async fn whoami(&self, caller: Principal) -> String {
//!         format!("{} ({})", caller.name(), caller.scheme())
//!     }
//! }
//!
//! // In `impl ServerHandler for Notes`:
//! async fn read_resource(
//!     request: ReadResourceRequestParams,
//!     ctx: RequestContext<RoleServer>,
//! ) -> Result<ReadResourceResult, ErrorData> {
//!     let caller = tower_mcp_auth::rmcp::caller(&ctx)?;
//!     let text = format!("notes of {}", caller.name());
//!     Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri)]))
//! }
//! ```

use ::rmcp::{
    handler::server::common::{AsRequestContext, FromContextPart},
    model::ErrorCode,
    service::RequestContext,
    ErrorData, RoleServer,
};
use http::request::Parts;

use crate::{error::JSONRPC_UNAUTHORIZED, principal::Principal};

/// The authenticated caller of the request this context belongs to.
///
/// # Errors
///
/// An [`ErrorData`] with code [`JSONRPC_UNAUTHORIZED`] when the request
/// carries no [`Principal`] (or did not come over HTTP).
pub fn caller(ctx: &RequestContext<RoleServer>) -> Result<&Principal, ErrorData> {
    ctx.extensions
        .get::<Parts>()
        .and_then(Principal::from_parts)
        .ok_or_else(unauthenticated)
}

/// `caller: Principal` as a parameter of a `#[tool]` or `#[prompt]`
/// function: the authenticated caller, or the call fails with
/// [`JSONRPC_UNAUTHORIZED`].
impl<C: AsRequestContext> FromContextPart<C> for Principal {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        caller(context.as_request_context()).cloned()
    }
}

fn unauthenticated() -> ErrorData {
    ErrorData::new(
        // -32001 fits an i32.
        ErrorCode(i32::try_from(JSONRPC_UNAUTHORIZED).unwrap_or(i32::MIN)),
        "authentication required: this call has no authenticated caller",
        None,
    )
}
