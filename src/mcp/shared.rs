//! The reloadable policy: [`SharedPolicy`], one [`McpPolicy`] swapped for
//! every layer that holds a clone.

use std::{
    fmt,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::{audit, config::ConfigError, metadata::ScopeSource, principal::Scopes};

use super::{file::read_text, limits::RateLimits, policy::McpPolicy};

/// An [`McpPolicy`] shared by every layer that holds a clone, and swapped
/// for all of them at once by [`reload_file`](Self::reload_file),
/// [`replace`](Self::replace) or a [`PolicyReloader`](super::PolicyReloader)
/// ([`watch_file`](Self::watch_file), [`reload_on_sighup`](Self::reload_on_sighup)):
/// operators change which tool needs which scope without a rebuild or a
/// restart.
///
/// What follows the policy in force, swap after swap:
///
/// * [`McpPolicyLayer::new`](super::McpPolicyLayer::new) takes one (or a
///   plain [`McpPolicy`], which it wraps). Each request is decided, and its
///   list results filtered, by the policy in force when it arrived; a swap
///   is atomic (`arc-swap`), so a request sees the old policy or the new,
///   never a mix.
/// * `RateLimitLayer::from_policy` (feature `rate-limit`): each principal's
///   quota, the anonymous quota and the tools' costs of the policy's
///   `[rate_limit]` table.
/// * The resource's metadata: a `SharedPolicy` is a [`ScopeSource`], so
///   [`ProtectedResourceBuilder::scopes_from`](crate::ProtectedResourceBuilder::scopes_from)
///   lists in `scopes_supported` every scope the policy in force names
///   ([`McpPolicy::scopes_named`]). A challenge's `scope` is the refused
///   rule's, so it is the policy in force's already.
///
/// ```
/// use tower_mcp_auth::mcp::{McpPolicy, McpPolicyLayer, SharedPolicy};
/// use tower_mcp_auth::{AuthScheme, Principal};
///
/// let path = std::env::temp_dir().join(format!("tma-doc-policy-{}.json", std::process::id()));
/// std::fs::write(&path, r#"{ "tools": { "deploy": "api_key" } }"#)?;
/// let policy = SharedPolicy::from_file(&path)?;
/// let layer = McpPolicyLayer::new(policy.clone());
///
/// let key = Principal::new(AuthScheme::ApiKey, "ops");
/// assert!(policy.current().may_call_tool(Some(&key), "deploy"));
///
/// // An operator edits the file; a reload swaps it in for `layer` too.
/// std::fs::write(&path, r#"{ "tools": { "deploy": "bearer" } }"#)?;
/// policy.reload_file(&path)?;
/// assert!(!policy.current().may_call_tool(Some(&key), "deploy"));
///
/// // A bad file is refused and the policy in force stays.
/// std::fs::write(&path, r#"{ "tools": { "deploy": "bearr" } }"#)?;
/// assert!(policy.reload_file(&path).is_err());
/// assert!(!policy.current().may_call_tool(Some(&key), "deploy"));
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SharedPolicy(Arc<Shared>);

struct Shared {
    policy: ArcSwap<McpPolicy>,
    /// The SHA-256 of the text the policy in force was read from (`None`:
    /// built in code), so a file watcher reloads only what changed.
    source: Mutex<Option<[u8; 32]>>,
}

impl SharedPolicy {
    /// Shares `policy`.
    #[must_use]
    pub fn new(policy: McpPolicy) -> Self {
        Self(Arc::new(Shared {
            policy: ArcSwap::from_pointee(policy),
            source: Mutex::new(None),
        }))
    }

    /// Reads a policy file (see [`McpPolicy::from_file`]) to share.
    ///
    /// # Errors
    ///
    /// As [`McpPolicy::from_file`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = read_text(path)?;
        let shared = Self::new(McpPolicy::from_file_text(path, &text)?);
        shared.set_source(Some(digest(text.as_bytes())));
        Ok(shared)
    }

    /// The policy in force (cheap: one reference count).
    #[must_use]
    pub fn current(&self) -> McpPolicy {
        McpPolicy::clone(&self.0.policy.load())
    }

    /// Swaps `policy` in for every clone.
    pub fn replace(&self, policy: McpPolicy) {
        self.0.policy.store(Arc::new(policy));
        self.set_source(None);
    }

    /// Re-reads a policy file and swaps it in for every clone. A file that
    /// cannot be read or holds a mistake is refused: the policy in force
    /// stays, and the audit event (`outcome = "reload_refused"`, `detail`
    /// naming the line and the rule) says why, as the error does. A
    /// successful reload is an audit event too (`outcome = "reloaded"`).
    ///
    /// Reading the file blocks the calling thread: from async code, call
    /// it in `spawn_blocking`, or let [`watch_file`](Self::watch_file) or
    /// [`reload_on_sighup`](Self::reload_on_sighup) do it.
    ///
    /// # Errors
    ///
    /// As [`McpPolicy::from_file`].
    pub fn reload_file(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = path.as_ref();
        let loaded = read_text(path).map(|text| {
            let policy = McpPolicy::from_file_text(path, &text);
            (policy, digest(text.as_bytes()))
        });
        match loaded {
            Ok((policy, digest)) => self.swap_in(path, policy, digest),
            Err(e) => {
                audit::reload(
                    "mcp_policy",
                    &path.display().to_string(),
                    Some(&e.to_string()),
                );
                Err(e)
            }
        }
    }

    /// Swaps in `policy`, read from `path` (whose text hashes to
    /// `digest`), or reports why not.
    pub(super) fn swap_in(
        &self,
        path: &Path,
        policy: Result<McpPolicy, ConfigError>,
        digest: [u8; 32],
    ) -> Result<(), ConfigError> {
        let source = path.display().to_string();
        match policy {
            Ok(policy) => {
                self.0.policy.store(Arc::new(policy));
                self.set_source(Some(digest));
                audit::reload("mcp_policy", &source, None);
                Ok(())
            }
            Err(e) => {
                audit::reload("mcp_policy", &source, Some(&e.to_string()));
                Err(e)
            }
        }
    }

    /// The SHA-256 of the text the policy in force was read from.
    pub(super) fn source(&self) -> Option<[u8; 32]> {
        *self.0.source.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_source(&self, digest: Option<[u8; 32]>) {
        *self.0.source.lock().unwrap_or_else(PoisonError::into_inner) = digest;
    }

    /// `f` of the rate-limit numbers of the policy in force (one `arc-swap`
    /// load, no allocation).
    #[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
    pub(crate) fn with_rate_limits<R>(&self, f: impl FnOnce(&RateLimits) -> R) -> R {
        f(self.0.policy.load().rate_limits())
    }
}

/// The SHA-256 of a policy text.
pub(super) fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `scopes_supported` of the policy in force: every scope its rules name.
impl ScopeSource for SharedPolicy {
    fn scopes(&self) -> Scopes {
        self.0.policy.load().scopes_named()
    }
}

impl From<McpPolicy> for SharedPolicy {
    fn from(policy: McpPolicy) -> Self {
        Self::new(policy)
    }
}

impl fmt::Debug for SharedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedPolicy")
            .field(&*self.0.policy.load())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{AuthScheme, Principal};

    fn jwt(scopes: &str) -> Principal {
        Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse(scopes))
    }

    fn key() -> Principal {
        Principal::new(AuthScheme::ApiKey, "svc")
    }

    #[test]
    fn a_shared_policy_swaps_for_every_clone_and_keeps_the_old_on_error() {
        let path = std::env::temp_dir().join(format!("tma-shared-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"tools":{"t":"api_key"}}"#).unwrap();
        let shared = SharedPolicy::from_file(&path).unwrap();
        let other = shared.clone();
        assert!(other.current().may_call_tool(Some(&key()), "t"));
        std::fs::write(&path, r#"{"tools":{"t":"bearer"}}"#).unwrap();
        shared.reload_file(&path).unwrap();
        assert!(!other.current().may_call_tool(Some(&key()), "t"));
        assert!(other.current().may_call_tool(Some(&jwt("")), "t"));
        // A bad file: refused, naming the line and the rule; the policy stays.
        std::fs::write(
            &path,
            "{\"tools\":{\n\"t\":\"bearer\",\n\"u\":{\"scheme\":\"x\"}}}",
        )
        .unwrap();
        let err = shared.reload_file(&path).unwrap_err().to_string();
        assert!(err.contains(":3: tool `u`: unknown scheme `x`"), "{err}");
        assert!(other.current().may_call_tool(Some(&jwt("")), "t"));
        std::fs::remove_file(&path).unwrap();
        assert!(shared.reload_file(&path).is_err());
        assert!(other.current().may_call_tool(Some(&jwt("")), "t"));
    }
}
