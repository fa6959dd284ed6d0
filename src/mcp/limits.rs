//! The rate-limit numbers a policy carries: [`RateLimits`].

use std::{collections::HashMap, num::NonZeroU32};

use serde::Deserialize;

use super::inspect::{McpRequest, Target};

/// The rate-limit quotas and per-tool costs of a policy (the
/// `[rate_limit]` table of a [policy file](super::McpPolicy#the-policy-file)),
/// for `rate_limit::RateLimitLayer::from_policy` (feature `rate-limit`),
/// which reads them from the policy in force at each request, so a reload
/// changes them too.
///
/// ```
/// use std::num::NonZeroU32;
/// use tower_mcp_auth::mcp::{McpPolicy, McpRequest, RateLimits};
///
/// let mut limits = RateLimits::default();
/// limits.per_minute = NonZeroU32::new(100);
/// limits.tool_costs.insert("generate_report".into(), NonZeroU32::new(10).unwrap());
/// let policy = McpPolicy::builder().rate_limits(limits).build()?;
///
/// let batch = McpRequest::parse(br#"[
///     {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"generate_report"}},
///     {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ping_db"}}
/// ]"#).unwrap();
/// assert_eq!(policy.rate_limits().cost(&batch), 11);
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimits {
    /// Calls a minute for each principal (`None`: the layer's own quota).
    #[serde(default)]
    pub per_minute: Option<NonZeroU32>,
    /// Calls a minute for each anonymous client address (`None`: the
    /// layer's own).
    #[serde(default)]
    pub anonymous_per_minute: Option<NonZeroU32>,
    /// Units a `tools/call` of the named tool costs; every other call
    /// costs 1.
    #[serde(default, rename = "costs")]
    pub tool_costs: HashMap<String, NonZeroU32>,
}

impl RateLimits {
    /// What `req` costs: the sum over its calls (a batch costs each of its
    /// calls), a `tools/call` of a tool with a cost costing that, every
    /// other call 1; at least 1 (a request without a call, such as the
    /// GET stream), at most `u32::MAX`.
    #[must_use]
    pub fn cost(&self, req: &McpRequest) -> u32 {
        req.calls()
            .iter()
            .map(|c| match (c.method(), c.target()) {
                (Some("tools/call"), Some(Target::Tool(name))) => {
                    self.tool_costs.get(name).map_or(1, |n| n.get())
                }
                _ => 1,
            })
            .fold(0u32, u32::saturating_add)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_add_up_per_call() {
        let mut limits = RateLimits::default();
        limits
            .tool_costs
            .insert("big".into(), NonZeroU32::new(u32::MAX).unwrap());
        let req = |body: &str| McpRequest::parse(body.as_bytes()).unwrap();
        assert_eq!(limits.cost(&McpRequest::empty()), 1);
        assert_eq!(
            limits.cost(&req(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)),
            1
        );
        let batch = (0..40)
            .map(|i| {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"t"}}}}"#
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(limits.cost(&req(&format!("[{batch}]"))), 40);
        let two_big = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"big"}},
                         {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"big"}}]"#;
        assert_eq!(limits.cost(&req(two_big)), u32::MAX, "saturates");
    }
}
