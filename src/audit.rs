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
//! Every field that a client chooses (subjects and client ids from tokens,
//! tool names, methods, URIs, paths, descriptions that quote input) is cut
//! to [`MAX_FIELD_BYTES`] by the functions of this module, which are the
//! only way the crate emits an event: a prefix is kept, and the cut is
//! marked with the field's original length (`…[cut: 1048576 bytes]`), so a
//! 1 MiB tool name adds a few hundred bytes to the log, not a megabyte.
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

use std::{borrow::Cow, fmt::Write as _, time::Duration};

use axum::extract::OriginalUri;
use http::{Extensions, Method, Uri};

use crate::{
    error::{AuthError, AuthErrorKind},
    principal::Principal,
};

/// The `tracing` target of every audit event.
pub const TARGET: &str = "tower_mcp_auth::audit";

/// The most bytes of one client-chosen field that an event carries.
pub const MAX_FIELD_BYTES: usize = 256;

/// `field` as an event carries it: unchanged (borrowed, no copy) when it
/// holds at most [`MAX_FIELD_BYTES`] bytes, else its longest prefix within
/// that bound (cut on a character boundary) followed by
/// `…[cut: <original length> bytes]`.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::audit::{bounded, MAX_FIELD_BYTES};
///
/// assert_eq!(bounded("get_user_data"), "get_user_data");
/// let long = "x".repeat(1 << 20);
/// let cut = bounded(&long);
/// assert!(cut.len() < MAX_FIELD_BYTES + 32);
/// assert!(cut.ends_with("…[cut: 1048576 bytes]"));
/// ```
#[must_use]
pub fn bounded(field: &str) -> Cow<'_, str> {
    if field.len() <= MAX_FIELD_BYTES {
        return Cow::Borrowed(field);
    }
    let mut end = MAX_FIELD_BYTES;
    while !field.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 32);
    out.push_str(&field[..end]);
    let _ = write!(out, "…[cut: {} bytes]", field.len());
    Cow::Owned(out)
}

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
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return; // nobody listens: no field is even bounded
    }
    let subject = bounded(principal.subject());
    let path = bounded(path);
    tracing::info!(
        target: TARGET,
        outcome = "accepted",
        layer,
        scheme = principal.scheme().as_str(),
        subject = &*subject,
        method = &*bounded(method.as_str()),
        path = &*path,
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
    let outcome = if err.kind() == AuthErrorKind::RateLimited {
        "throttled"
    } else {
        "refused"
    };
    refusal(
        layer,
        outcome,
        Refusal {
            reason: err.kind().code(),
            detail: err.description(),
            status: err.status().as_u16(),
        },
        principal,
        method,
        path,
    );
}

/// Why a layer refused something that is not an [`AuthError`] (a reply it
/// cannot read, a session id that is not the caller's): the `reason` code,
/// a `detail` text and the HTTP `status` given.
#[derive(Clone, Copy, Debug)]
pub struct Refusal<'a> {
    /// A short stable code (`unknown_session`, `unreadable_reply`).
    pub reason: &'static str,
    /// What happened, for a person (bounded like every field).
    pub detail: &'a str,
    /// The status of the answer.
    pub status: u16,
}

/// Emits a `refused` event for a [`Refusal`]. Every client-chosen field is
/// [`bounded`].
pub fn refused_because(
    layer: &'static str,
    why: Refusal<'_>,
    principal: Option<&Principal>,
    method: &Method,
    path: &str,
) {
    refusal(layer, "refused", why, principal, method, path);
}

fn refusal(
    layer: &'static str,
    outcome: &'static str,
    why: Refusal<'_>,
    principal: Option<&Principal>,
    method: &Method,
    path: &str,
) {
    if !tracing::enabled!(target: TARGET, tracing::Level::WARN) {
        return; // nobody listens: no field is even bounded
    }
    let scheme = principal.map(|p| p.scheme().as_str());
    let subject = principal.map(|p| bounded(p.subject()));
    let detail = bounded(why.detail);
    let method = bounded(method.as_str());
    let path = bounded(path);
    tracing::warn!(
        target: TARGET,
        outcome,
        layer,
        scheme,
        subject = subject.as_deref(),
        reason = why.reason,
        detail = &*detail,
        status = why.status,
        method = &*method,
        path = &*path,
    );
}

/// Emits a `degraded` event: a backend failed but the layer still decided
/// (stale keys served, rate-limit store unreachable and failing open).
pub fn degraded(layer: &'static str, detail: &str) {
    let detail = bounded(detail);
    tracing::warn!(target: TARGET, outcome = "degraded", layer, detail = &*detail);
}

/// Emits the `throttled` event of an address that
/// [`FailedAuthLayer`](crate::rate_limit::FailedAuthLayer) starts to
/// refuse for `cooldown`.
pub fn blocked(layer: &'static str, client: &str, cooldown: Duration) {
    let client = bounded(client);
    tracing::warn!(
        target: TARGET,
        outcome = "throttled",
        layer,
        client = &*client,
        reason = "repeated_authentication_failures",
        cooldown_secs = cooldown.as_secs(),
    );
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
    let listening = match err {
        None => tracing::enabled!(target: TARGET, tracing::Level::INFO),
        Some(_) => tracing::enabled!(target: TARGET, tracing::Level::WARN),
    };
    if !listening {
        return; // nobody listens: no field is even bounded
    }
    let scheme = principal.map(|p| p.scheme().as_str());
    let subject = principal.map(|p| bounded(p.subject()));
    let subject = subject.as_deref();
    let rpc_method = rpc_method.map(bounded);
    let rpc_method = rpc_method.as_deref();
    let target = target.map(bounded);
    let target = target.as_deref();
    let method = bounded(method.as_str());
    let method = &*method;
    let path = bounded(path);
    let path = &*path;
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
            method,
            path,
        ),
        Some(err) => {
            let detail = bounded(err.description());
            tracing::warn!(
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
                detail = &*detail,
                status = err.status().as_u16(),
                method,
                path,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_fields_are_borrowed_unchanged() {
        for s in ["", "get_user_data", &"a".repeat(MAX_FIELD_BYTES)] {
            assert!(matches!(bounded(s), Cow::Borrowed(b) if b == s));
        }
    }

    #[test]
    fn long_fields_keep_a_prefix_and_their_length() {
        let long = "é".repeat(MAX_FIELD_BYTES); // 2 bytes a character
        let cut = bounded(&long);
        let (prefix, mark) = cut.split_once('…').unwrap();
        assert_eq!(prefix.len(), MAX_FIELD_BYTES);
        assert!(long.starts_with(prefix));
        assert_eq!(mark, format!("[cut: {} bytes]", 2 * MAX_FIELD_BYTES));
        // A character straddling the bound is dropped whole.
        let odd = format!("a{long}");
        let cut = bounded(&odd);
        assert_eq!(cut.split_once('…').unwrap().0.len(), MAX_FIELD_BYTES - 1);
    }
}
