//! [`Target`]: what the exchanged token is for.

use std::{
    collections::hash_map::RandomState,
    fmt,
    hash::{BuildHasher, Hash, Hasher},
    sync::OnceLock,
};

/// What a token is asked for: the downstream API as `resource` (its URI,
/// RFC 8707) and/or `audience` (a name the authorization server knows it
/// by), and the `scope`s wanted (none: the server's default).
///
/// A `&str` or `String` is a target by resource.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::exchange::Target;
///
/// let users = Target::resource("https://users.example.com").scopes(["users:read"]);
/// let by_name = Target::audience("users-api");
/// let both = Target::from("https://users.example.com").and_audience("users-api");
/// assert_eq!(both.resources(), ["https://users.example.com"]);
/// # let _ = (users, by_name);
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct Target {
    /// The hash of the other fields under a per-process random key,
    /// computed when the target is built, not on each exchange: the
    /// exchange cache's key for it. First, so that unequal targets mostly
    /// differ at once.
    hash: u64,
    resources: Vec<String>,
    audiences: Vec<String>,
    scopes: Vec<String>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("resources", &self.resources)
            .field("audiences", &self.audiences)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl Hash for Target {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Target {
    /// A token for the resource `uri` (an absolute URI, RFC 8707).
    pub fn resource(uri: impl Into<String>) -> Self {
        Self::empty().and_resource(uri)
    }

    /// A token for the audience `name`.
    pub fn audience(name: impl Into<String>) -> Self {
        Self::empty().and_audience(name)
    }

    fn empty() -> Self {
        Self {
            hash: 0,
            resources: Vec::new(),
            audiences: Vec::new(),
            scopes: Vec::new(),
        }
    }

    /// Recomputes [`hash`](Self::hash) after a change.
    fn rehashed(mut self) -> Self {
        static KEY: OnceLock<RandomState> = OnceLock::new();
        self.hash = KEY.get_or_init(RandomState::new).hash_one((
            &self.resources,
            &self.audiences,
            &self.scopes,
        ));
        self
    }

    /// Adds a resource (RFC 8693 allows several).
    pub fn and_resource(mut self, uri: impl Into<String>) -> Self {
        self.resources.push(uri.into());
        self.rehashed()
    }

    /// Adds an audience (RFC 8693 allows several).
    pub fn and_audience(mut self, name: impl Into<String>) -> Self {
        self.audiences.push(name.into());
        self.rehashed()
    }

    /// The scopes wanted (in any order; duplicates count once).
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self.scopes.sort_unstable();
        self.scopes.dedup();
        self.rehashed()
    }

    /// The target's hash, computed when it was built: two equal targets
    /// have the same; two different ones rarely do (the exchange cache
    /// checks the target itself on a hit).
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// This target with `hash` as its hash: targets that collide.
    #[cfg(test)]
    pub(crate) fn with_hash(mut self, hash: u64) -> Self {
        self.hash = hash;
        self
    }

    /// The resources.
    #[must_use]
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The audiences.
    #[must_use]
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The scopes, sorted.
    #[must_use]
    pub fn scope_list(&self) -> &[String] {
        &self.scopes
    }

    /// The `scope` parameter: the scopes, space separated; `None` without
    /// any.
    pub(crate) fn scope_param(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(" "))
    }

    /// The first resource, else the first audience: how the audit trail
    /// names it.
    pub(crate) fn name(&self) -> &str {
        self.resources
            .first()
            .or(self.audiences.first())
            .map_or("", String::as_str)
    }
}

impl From<&str> for Target {
    fn from(uri: &str) -> Self {
        Self::resource(uri)
    }
}

impl From<String> for Target {
    fn from(uri: String) -> Self {
        Self::resource(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn scopes_are_a_set_and_parts_are_told_apart() {
        let h = std::collections::hash_map::RandomState::new();
        let a = Target::resource("r").scopes(["b", "a", "b"]);
        let b = Target::resource("r").scopes(["a", "b"]);
        assert_eq!(a, b);
        assert_eq!(h.hash_one(&a), h.hash_one(&b));
        assert_eq!(a.scope_param().as_deref(), Some("a b"));
        assert_ne!(Target::resource("x"), Target::audience("x"));
        assert_ne!(
            Target::resource("ab"),
            Target::resource("a").and_resource("b")
        );
        assert_eq!(Target::resource("r").scope_param(), None);
    }
}
