//! The IETF `RateLimit-Policy` and `RateLimit` response fields, as
//! defined in [draft-ietf-httpapi-ratelimit-headers-09] (Structured Field
//! lists of items whose value is the policy name; the newer -10 keeps the
//! same field syntax).
//!
//! ```text
//! RateLimit-Policy: "default";q=100;w=60
//! RateLimit: "default";r=42;t=35
//! ```
//!
//! * `q`: the quota (calls, or cost units, per window); `w`: the window
//!   in seconds.
//! * `r`: units remaining now; `t`: seconds until the bucket is full again
//!   (rounded up; 0 when it is full).
//!
//! The older `RateLimit-Limit` / `-Remaining` / `-Reset` trio of drafts
//! ≤ -06 is not sent.
//!
//! [draft-ietf-httpapi-ratelimit-headers-09]: https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/09/
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower_mcp_auth::rate_limit::{headers, Decision, Quota};
//!
//! let d = Decision::allow(Quota::per_minute(100), 42, Duration::from_millis(34_200));
//! let mut h = http::HeaderMap::new();
//! headers::insert(&mut h, "default", &d);
//! assert_eq!(h["ratelimit-policy"], r#""default";q=100;w=60"#);
//! assert_eq!(h["ratelimit"], r#""default";r=42;t=35"#);
//! ```

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::store::Decision;

/// `RateLimit-Policy`.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Inserts both fields for `decision` under the policy name `policy` (a
/// Structured Field string: characters outside printable ASCII, `"` and
/// `\\` are dropped).
pub fn insert(headers: &mut HeaderMap, policy: &str, decision: &Decision) {
    let name = sanitize(policy);
    if let Some(p) = policy_value(&name, decision) {
        headers.insert(RATELIMIT_POLICY.clone(), p);
        insert_state(headers, &name, decision);
    }
}

/// Keeps what a Structured Field string may hold.
pub(crate) fn sanitize(policy: &str) -> String {
    policy
        .chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

/// The `RateLimit-Policy` value for `decision`'s quota; `name` must be
/// [`sanitize`]d.
pub(crate) fn policy_value(name: &str, decision: &Decision) -> Option<HeaderValue> {
    let quota = decision.quota();
    HeaderValue::try_from(format!(
        "\"{name}\";q={};w={}",
        quota.limit(),
        ceil_secs(quota.window())
    ))
    .ok()
}

/// Inserts the `RateLimit` field only; `name` must be [`sanitize`]d.
pub(crate) fn insert_state(headers: &mut HeaderMap, name: &str, decision: &Decision) {
    // Built by hand, not with `format!`, and to the exact size, so the
    // bytes become the header value without another allocation: this runs
    // on every allowed call.
    let (mut r, mut t) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (r, t) = (
        r.format(decision.remaining()),
        t.format(ceil_secs(decision.reset())),
    );
    let mut value = Vec::with_capacity(name.len() + r.len() + t.len() + 8);
    value.push(b'"');
    value.extend_from_slice(name.as_bytes());
    value.extend_from_slice(b"\";r=");
    value.extend_from_slice(r.as_bytes());
    value.extend_from_slice(b";t=");
    value.extend_from_slice(t.as_bytes());
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        headers.insert(RATELIMIT.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::Quota;

    #[test]
    fn refused_and_odd_names() {
        let d = Decision::deny(
            Quota::per_hour(10).burst(2),
            Duration::from_millis(1),
            Duration::from_secs(360),
        );
        let mut h = HeaderMap::new();
        insert(&mut h, "per-user \"x\"\\é", &d);
        assert_eq!(h[&RATELIMIT_POLICY], r#""per-user x";q=10;w=3600"#);
        assert_eq!(h[&RATELIMIT], r#""per-user x";r=0;t=360"#);
    }
}
