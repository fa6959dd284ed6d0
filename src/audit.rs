//! Audit events: every accept, refusal and throttle is a `tracing` event on
//! the target [`TARGET`] (`tower_mcp_auth::audit`) with structured fields.
//!
//! | field | meaning |
//! | --- | --- |
//! | `outcome` | `accepted`, `refused`, `throttled`, `degraded` |
//! | `scheme` | `api_key`, `jwt`, `introspection` (when known) |
//! | `subject` | the token's `sub` or the API key's name (when known) |
//! | `reason` | the refusal's code (`invalid_token`, `insufficient_scope`, …) |
//! | `detail` | the refusal's description |
//! | `method`, `path` | the HTTP request |
//! | `rpc_method`, `target_kind`, `target`, `calls` | the MCP call decided (MCP policy) |
//!
//! Events never carry a key, token, secret or `Authorization` value.
//!
//! # Example
//!
//! Route the audit trail to its own output with a target filter:
//!
//! ```no_run
//! use tracing_subscriber::{EnvFilter, fmt};
//!
//! fmt().with_env_filter(EnvFilter::new("tower_mcp_auth::audit=info")).init();
//! ```

use axum::extract::OriginalUri;
use http::{Extensions, Method, Uri};

use crate::{
    error::{AuthError, AuthErrorKind},
    principal::Principal,
};

/// The `tracing` target of every audit event.
pub const TARGET: &str = "tower_mcp_auth::audit";

/// The request's path for an event: the path as the client sent it (axum's
/// [`OriginalUri`], so `/mcp` rather than the `/` a nested service sees),
/// else the URI's path. Never the query string, which may hold a
/// credential that this crate never reads but a client may have sent.
#[must_use]
pub fn path<'a>(uri: &'a Uri, extensions: &'a Extensions) -> &'a str {
    extensions
        .get::<OriginalUri>()
        .map_or(uri.path(), |original| original.0.path())
}

/// Emits an `accepted` event for a verified credential.
pub fn accepted(layer: &'static str, principal: &Principal, method: &Method, path: &str) {
    tracing::info!(
        target: TARGET,
        outcome = "accepted",
        layer,
        scheme = principal.scheme().as_str(),
        subject = principal.subject(),
        method = method.as_str(),
        path,
    );
}

/// Emits a `refused` (or `throttled`) event for a refusal. `subject` and
/// `scheme` are the caller's when it is known.
pub fn refused(
    layer: &'static str,
    err: &AuthError,
    principal: Option<&Principal>,
    method: &Method,
    path: &str,
) {
    let scheme = principal.map(|p| p.scheme().as_str());
    let subject = principal.map(Principal::subject);
    let outcome = if err.kind() == AuthErrorKind::RateLimited {
        "throttled"
    } else {
        "refused"
    };
    tracing::warn!(
        target: TARGET,
        outcome,
        layer,
        scheme,
        subject,
        reason = err.kind().code(),
        detail = err.description(),
        status = err.status().as_u16(),
        method = method.as_str(),
        path,
    );
}

/// Emits a `degraded` event: a backend failed but the layer still decided
/// (stale keys served, rate-limit store unreachable and failing open).
pub fn degraded(layer: &'static str, detail: &str) {
    tracing::warn!(target: TARGET, outcome = "degraded", layer, detail);
}

/// Emits the MCP policy's decision on one request: `accepted` (with the
/// first call and how many calls the request held) or `refused`/… (with
/// the call that was refused). `rpc_method` and `target` are the JSON-RPC
/// method and the tool, prompt or resource (`target_kind` says which).
#[allow(clippy::too_many_arguments)]
pub fn mcp_decision(
    err: Option<&AuthError>,
    principal: Option<&Principal>,
    rpc_method: Option<&str>,
    target_kind: Option<&'static str>,
    target: Option<&str>,
    calls: usize,
    method: &Method,
    path: &str,
) {
    let scheme = principal.map(|p| p.scheme().as_str());
    let subject = principal.map(Principal::subject);
    match err {
        None => tracing::info!(
            target: TARGET,
            outcome = "accepted",
            layer = "mcp_policy",
            scheme,
            subject,
            rpc_method,
            target_kind,
            target,
            calls,
            method = method.as_str(),
            path,
        ),
        Some(err) => tracing::warn!(
            target: TARGET,
            outcome = "refused",
            layer = "mcp_policy",
            scheme,
            subject,
            rpc_method,
            target_kind,
            target,
            calls,
            reason = err.kind().code(),
            detail = err.description(),
            status = err.status().as_u16(),
            method = method.as_str(),
            path,
        ),
    }
}
