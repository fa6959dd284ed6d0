//! A deployment's scope hierarchy: [`ScopeHierarchy`], where a broad scope
//! implies narrower ones.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::Arc,
};

use crate::{
    config::ConfigError,
    fx_hash::FxBuild,
    principal::{is_scope_token, Scopes},
};

/// The most (broad, narrower) pairs a hierarchy's closure may hold (4 MiB
/// pairs, 32 MiB of ids both ways): far above any real deployment (1,000
/// scopes in a chain, the worst shape, make 500,500), and a mistake that
/// would cost gigabytes is refused at build.
const MAX_PAIRS: usize = 1 << 22;

/// Which broad scopes imply which narrower ones, declared once for a
/// deployment.
///
/// The MCP authorization specification (2026-07-28): "Servers MUST account
/// for scope hierarchies, where a broader scope implies narrower ones, when
/// deciding whether a token is sufficient for an operation." A token that
/// holds `admin` then meets a rule asking for `admin:write` when the
/// hierarchy says `admin` implies `admin:write`.
///
/// Implication is transitive (`admin` → `data:admin` → `read:data`: a
/// token with `admin` holds `read:data`), and a cycle (`a` → `b` → `a`)
/// is refused at [`build`](ScopeHierarchyBuilder::build), naming it.
///
/// Every decision that reads scopes takes the hierarchy from one place:
/// give it to the MCP policy ([`McpPolicyBuilder::scope_hierarchy`], or a
/// policy file's `scopes` table), which hands it to every rule it holds —
/// so its decisions, its list filtering and its step-up refusals account
/// for it — and to [`AuthorizeLayer::scope_hierarchy`](crate::AuthorizeLayer::scope_hierarchy)
/// on a plain route ([`McpPolicy::scope_hierarchy`] gives the policy's). A
/// [`Rule`](crate::Rule) on its own takes one with
/// [`Rule::scope_hierarchy`](crate::Rule::scope_hierarchy).
///
/// A 403 still names the scopes the call requires (`admin:write`), never
/// the broad scope that would also do: the client asks for what the call
/// needs.
///
/// The closure (each scope's every implied scope) is computed once, at
/// build; a rule given the hierarchy keeps a table from each scope that
/// meets one of its requirements (the scope itself, or a broader one) to
/// the requirements it meets, so a decision costs one hash lookup per
/// scope the token holds, whatever the size of the hierarchy
/// (`benches/mcp.rs`, `scope_check`: within 1.5× of the same check
/// without a hierarchy, with 1,000 scopes).
///
/// [`McpPolicyBuilder::scope_hierarchy`]: crate::mcp::McpPolicyBuilder::scope_hierarchy
/// [`McpPolicy::scope_hierarchy`]: crate::mcp::McpPolicy::scope_hierarchy
///
/// # Example
///
/// ```
/// use tower_mcp_auth::{AuthScheme, Principal, Rule, ScopeHierarchy, Scopes};
///
/// let hierarchy = ScopeHierarchy::builder()
///     .implies("admin", ["admin:write", "read:data"])
///     .implies("admin:write", ["admin:read"])
///     .build()?;
///
/// let admin = Scopes::parse("admin");
/// assert!(hierarchy.satisfies(&admin, "admin:read")); // transitively
/// assert!(!hierarchy.satisfies(&Scopes::parse("admin:write"), "admin"));
/// assert_eq!(hierarchy.expand(&admin).to_string(), "admin admin:read admin:write read:data");
///
/// let rule = Rule::bearer().scopes(["admin:write"]).scope_hierarchy(hierarchy.clone());
/// let token = Principal::new(AuthScheme::Jwt, "alice").with_scopes(admin);
/// assert!(rule.permits(Some(&token)));
///
/// // A cycle is refused, named.
/// let err = ScopeHierarchy::builder()
///     .implies("a", ["b"])
///     .implies("b", ["a"])
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("a → b → a"), "{err}");
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct ScopeHierarchy(Option<Arc<Inner>>);

struct Inner {
    /// What each broad scope was declared to imply (for `Debug`).
    declared: BTreeMap<Box<str>, Scopes>,
    /// Every scope the hierarchy names, by name.
    ids: HashMap<Box<str>, u32>,
    /// Each scope's name, by id.
    names: Vec<Box<str>>,
    /// Each scope's every implied scope (transitively; never itself),
    /// sorted ids.
    implies: Vec<Box<[u32]>>,
    /// Each scope's every implying scope (transitively; never itself),
    /// sorted ids.
    implied_by: Vec<Box<[u32]>>,
}

impl ScopeHierarchy {
    /// Starts a hierarchy.
    pub fn builder() -> ScopeHierarchyBuilder {
        ScopeHierarchyBuilder::default()
    }

    /// The hierarchy in which no scope implies another (the default).
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether no scope implies another.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn id(&self, scope: &str) -> Option<(&Inner, usize)> {
        let inner = self.0.as_deref()?;
        let id = *inner.ids.get(scope)?;
        Some((inner, id as usize))
    }

    /// Whether holding `held` gives `scope`: the same scope, or one it
    /// implies (directly or not).
    #[must_use]
    pub fn grants(&self, held: &str, scope: &str) -> bool {
        if held == scope {
            return true;
        }
        let Some((inner, held)) = self.id(held) else {
            return false;
        };
        inner
            .ids
            .get(scope)
            .is_some_and(|s| inner.implies[held].binary_search(s).is_ok())
    }

    /// Whether a token holding `granted` holds `scope`, itself or through a
    /// broader scope.
    #[must_use]
    pub fn satisfies(&self, granted: &Scopes, scope: &str) -> bool {
        if granted.contains(scope) {
            return true;
        }
        let Some((inner, id)) = self.id(scope) else {
            return false;
        };
        inner.implied_by[id]
            .iter()
            .any(|&broad| granted.contains(&inner.names[broad as usize]))
    }

    /// `granted` with every scope it implies: what a token holding
    /// `granted` holds (for a tool that checks a scope itself).
    #[must_use]
    pub fn expand(&self, granted: &Scopes) -> Scopes {
        let Some(inner) = self.0.as_deref() else {
            return granted.clone();
        };
        let implied = granted
            .iter()
            .filter_map(|g| inner.ids.get(g))
            .flat_map(|&id| inner.implies[id as usize].iter())
            .map(|&id| &*inner.names[id as usize]);
        granted.iter().chain(implied).collect()
    }

    /// Every scope `scope` implies, directly or not (not itself).
    #[must_use]
    pub fn implied_by(&self, scope: &str) -> Scopes {
        self.id(scope).map_or_else(Scopes::empty, |(inner, id)| {
            inner.implies[id]
                .iter()
                .map(|&i| &*inner.names[i as usize])
                .collect()
        })
    }

    /// Every scope that implies `scope`, directly or not (not itself): the
    /// broader scopes that also meet a requirement of `scope`.
    #[must_use]
    pub fn broader_than(&self, scope: &str) -> Scopes {
        self.id(scope).map_or_else(Scopes::empty, |(inner, id)| {
            inner.implied_by[id]
                .iter()
                .map(|&i| &*inner.names[i as usize])
                .collect()
        })
    }
}

impl fmt::Debug for ScopeHierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        if let Some(inner) = &self.0 {
            map.entries(inner.declared.iter());
        }
        map.finish()
    }
}

impl PartialEq for ScopeHierarchy {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.declared == b.declared,
            _ => false,
        }
    }
}

/// Builds a [`ScopeHierarchy`]; mistakes surface at
/// [`build`](Self::build).
#[derive(Debug, Default)]
#[must_use]
pub struct ScopeHierarchyBuilder {
    declared: BTreeMap<String, Vec<String>>,
}

impl ScopeHierarchyBuilder {
    /// `broad` implies each of `narrower` (added to what it implies
    /// already).
    pub fn implies<I>(mut self, broad: impl Into<String>, narrower: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.declared
            .entry(broad.into())
            .or_default()
            .extend(narrower.into_iter().map(Into::into));
        self
    }

    /// Checks the hierarchy and computes each scope's closure.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a scope RFC 6749 §3.3 does not allow
    /// (empty, a space, a quote, a backslash, a control character) and for
    /// a cycle, named (`a → b → a`).
    pub fn build(self) -> Result<ScopeHierarchy, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid(format!("scope hierarchy: {reason}"));
        if self.declared.values().all(Vec::is_empty) {
            return Ok(ScopeHierarchy::empty());
        }
        // Ids in sorted order, so that errors and closures are deterministic.
        let mut all: Vec<&str> = self
            .declared
            .iter()
            .flat_map(|(b, n)| std::iter::once(b.as_str()).chain(n.iter().map(String::as_str)))
            .collect();
        all.sort_unstable();
        all.dedup();
        if let Some(bad) = all.iter().find(|s| !is_scope_token(s)) {
            return Err(invalid(format!(
                "scope {bad:?} has characters RFC 6749 §3.3 does not allow"
            )));
        }
        let ids: HashMap<Box<str>, u32> = all
            .iter()
            .enumerate()
            .map(|(i, s)| (Box::from(*s), i as u32))
            .collect();
        let id = |s: &str| ids[s] as usize;
        let mut edges: Vec<Vec<u32>> = vec![Vec::new(); all.len()];
        for (broad, narrower) in &self.declared {
            let e = &mut edges[id(broad)];
            e.extend(narrower.iter().map(|n| id(n) as u32));
            e.sort_unstable();
            e.dedup();
        }
        let order = post_order(&edges).map_err(|cycle| {
            let path: Vec<&str> = cycle.iter().map(|&i| all[i as usize]).collect();
            invalid(format!(
                "a cycle: {} (a broad scope cannot be implied by a scope it implies)",
                path.join(" → ")
            ))
        })?;
        // Children before parents: each closure from its children's.
        let mut implies: Vec<Box<[u32]>> = vec![Box::default(); all.len()];
        let mut pairs = 0usize;
        for &v in &order {
            let v = v as usize;
            let mut set: Vec<u32> = edges[v].clone();
            for &c in &edges[v] {
                set.extend_from_slice(&implies[c as usize]);
            }
            set.sort_unstable();
            set.dedup();
            pairs += set.len();
            if pairs > MAX_PAIRS {
                return Err(invalid(format!(
                    "it implies more than {MAX_PAIRS} (broad, narrower) pairs; declare fewer levels"
                )));
            }
            implies[v] = set.into();
        }
        let mut implied_by: Vec<Vec<u32>> = vec![Vec::new(); all.len()];
        for (broad, set) in implies.iter().enumerate() {
            for &narrow in set.iter() {
                implied_by[narrow as usize].push(broad as u32);
            }
        }
        let declared = self
            .declared
            .iter()
            .map(|(b, n)| (Box::from(b.as_str()), n.iter().collect()))
            .collect();
        let names = all.iter().map(|s| Box::from(*s)).collect();
        Ok(ScopeHierarchy(Some(Arc::new(Inner {
            declared,
            ids,
            names,
            implies,
            // Filled in ascending order of broad ids: already sorted.
            implied_by: implied_by.into_iter().map(Into::into).collect(),
        }))))
    }
}

/// What meets a rule alternative's scope requirements under a hierarchy
/// (the rule keeps it beside the requirements): each requirement (a scope
/// the alternative requires, then a group of which it requires one) is met
/// by its own scopes and by every scope that implies one of them.
#[derive(Clone)]
pub(crate) enum Widened {
    /// Up to 64 requirements: each scope that meets some → the bit of each
    /// requirement it meets. A check is one lookup per granted scope,
    /// whatever the size of the hierarchy.
    Mask {
        meets: HashMap<Box<str>, u64, FxBuild>,
        want: u64,
    },
    /// More: for each requirement, in order, the broader scopes that meet
    /// it too.
    Lists { all: Vec<Scopes>, any: Vec<Scopes> },
}

impl Widened {
    /// The requirements `all` (each) and `any` (one of each group) under
    /// `hierarchy`; `None` when no broader scope meets any of them (the
    /// plain check is then the whole answer).
    pub(crate) fn new(
        hierarchy: &ScopeHierarchy,
        all: &Scopes,
        any: &[Scopes],
    ) -> Option<Box<Self>> {
        if hierarchy.is_empty() {
            return None;
        }
        let broader_all: Vec<Scopes> = all.iter().map(|s| hierarchy.broader_than(s)).collect();
        let broader_any: Vec<Scopes> = any
            .iter()
            .map(|g| {
                g.iter().fold(Scopes::empty(), |acc, s| {
                    acc.union(&hierarchy.broader_than(s))
                })
            })
            .collect();
        if broader_all.iter().chain(&broader_any).all(Scopes::is_empty) {
            return None;
        }
        let requirements = all.len() + any.len();
        if requirements > 64 {
            return Some(Box::new(Self::Lists {
                all: broader_all,
                any: broader_any,
            }));
        }
        // Bit i: the i-th requirement, met by its own scopes and by the
        // broader ones.
        let own = all
            .iter()
            .map(|s| Scopes::from_iter([s]))
            .chain(any.iter().cloned());
        let broader = broader_all.iter().chain(&broader_any);
        let mut meets: HashMap<Box<str>, u64, FxBuild> = HashMap::default();
        for (bit, (own, broader)) in own.zip(broader).enumerate() {
            for s in own.iter().chain(broader.iter()) {
                *meets.entry(s.into()).or_default() |= 1 << bit;
            }
        }
        let want = if requirements == 64 {
            u64::MAX
        } else {
            (1 << requirements) - 1
        };
        Some(Box::new(Self::Mask { meets, want }))
    }

    /// Whether `granted` meets the requirements `all` and `any` this was
    /// made from.
    #[inline]
    pub(crate) fn met_by(&self, granted: &Scopes, all: &Scopes, any: &[Scopes]) -> bool {
        match self {
            Self::Mask { meets, want } => {
                let mut met = 0;
                for g in granted.iter() {
                    if let Some(bits) = meets.get(g) {
                        met |= bits;
                        if met == *want {
                            return true;
                        }
                    }
                }
                false
            }
            // Each requirement: met by its own scopes, else by a broader one.
            Self::Lists {
                all: broader_all,
                any: broader_any,
            } => {
                all.iter()
                    .zip(broader_all)
                    .all(|(s, w)| granted.contains(s) || granted.intersects(w))
                    && any
                        .iter()
                        .zip(broader_any)
                        .all(|(g, w)| granted.contains_any(g.iter()) || granted.intersects(w))
            }
        }
    }
}

/// The nodes of `edges` in post order (every node after the nodes it
/// points to), or a cycle (its nodes, the first repeated at the end).
/// Iterative: a long chain does not exhaust the stack.
fn post_order(edges: &[Vec<u32>]) -> Result<Vec<u32>, Vec<u32>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    let mut order = Vec::with_capacity(edges.len());
    // (node, index of its next child)
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for root in 0..edges.len() as u32 {
        if mark[root as usize] != Mark::New {
            continue;
        }
        mark[root as usize] = Mark::Open;
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            match edges[node as usize].get(next) {
                Some(&child) => {
                    top.1 += 1;
                    match mark[child as usize] {
                        Mark::Done => {}
                        Mark::New => {
                            mark[child as usize] = Mark::Open;
                            stack.push((child, 0));
                        }
                        Mark::Open => {
                            let from = stack.iter().position(|&(n, _)| n == child).unwrap_or(0);
                            let mut cycle: Vec<u32> =
                                stack[from..].iter().map(|&(n, _)| n).collect();
                            cycle.push(child);
                            return Err(cycle);
                        }
                    }
                }
                None => {
                    mark[node as usize] = Mark::Done;
                    order.push(node);
                    stack.pop();
                }
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &[&str])]) -> Result<ScopeHierarchy, ConfigError> {
        pairs
            .iter()
            .fold(ScopeHierarchy::builder(), |b, (broad, narrow)| {
                b.implies(*broad, narrow.iter().copied())
            })
            .build()
    }

    #[test]
    fn transitive_and_only_downwards() {
        let h = h(&[
            ("admin", &["admin:write", "read:data"]),
            ("admin:write", &["admin:read"]),
            ("root", &["admin"]),
        ])
        .unwrap();
        assert!(h.grants("root", "admin:read"));
        assert!(h.grants("admin", "admin:read"));
        assert!(h.grants("read:data", "read:data"));
        assert!(!h.grants("admin:read", "admin"));
        assert!(!h.grants("unknown", "admin:read"));
        assert!(!h.grants("admin", "unknown"));
        assert_eq!(
            h.implied_by("root").to_string(),
            "admin admin:read admin:write read:data"
        );
        assert_eq!(
            h.broader_than("admin:read").to_string(),
            "admin admin:write root"
        );
        assert_eq!(h.broader_than("root").len(), 0);
        let granted = Scopes::parse("admin:write other");
        assert!(h.satisfies(&granted, "admin:read"));
        assert!(h.satisfies(&granted, "other"));
        assert!(!h.satisfies(&granted, "read:data"));
        assert_eq!(
            h.expand(&granted).to_string(),
            "admin:read admin:write other"
        );
    }

    #[test]
    fn cycles_are_refused_and_named() {
        for (pairs, cycle) in [
            (&[("a", &["a"][..])][..], "a → a"),
            (&[("a", &["b"][..]), ("b", &["a"][..])][..], "a → b → a"),
            (
                &[
                    ("x", &["a"][..]),
                    ("a", &["b"][..]),
                    ("b", &["c"][..]),
                    ("c", &["a"][..]),
                ][..],
                "a → b → c → a",
            ),
        ] {
            let err = h(pairs).unwrap_err().to_string();
            assert!(err.contains(cycle) && err.contains("cycle"), "{err}");
        }
        // A diamond is no cycle.
        assert!(h(&[("a", &["b", "c"]), ("b", &["d"]), ("c", &["d"])]).is_ok());
    }

    #[test]
    fn bad_scopes_and_empty() {
        let err = h(&[("admin", &["read data"])]).unwrap_err().to_string();
        assert!(err.contains("\"read data\""), "{err}");
        assert!(h(&[("", &["a"])]).is_err());
        assert!(h(&[]).unwrap().is_empty());
        assert!(h(&[("a", &[])]).unwrap().is_empty());
        assert_eq!(
            ScopeHierarchy::empty()
                .expand(&Scopes::parse("a"))
                .to_string(),
            "a"
        );
    }

    #[test]
    fn a_long_chain_does_not_exhaust_the_stack() {
        let n = 100_000;
        let edges: Vec<Vec<u32>> = (0..n).map(|i| vec![i + 1]).chain([vec![]]).collect();
        assert_eq!(post_order(&edges).unwrap().len(), n as usize + 1);
        let mut edges = edges;
        edges[n as usize] = vec![0];
        assert_eq!(post_order(&edges).unwrap_err().len(), n as usize + 2);
    }

    #[test]
    fn a_closure_too_large_is_refused() {
        // A chain's closure is quadratic: 3,000 scopes imply 4.5 million pairs.
        let chain = (0..3_000).fold(ScopeHierarchy::builder(), |b, i| {
            b.implies(format!("s{i}"), [format!("s{}", i + 1)])
        });
        let err = chain.build().unwrap_err().to_string();
        assert!(err.contains("more than"), "{err}");
        // 1,000 scopes in a chain are fine.
        let chain = (0..1_000).fold(ScopeHierarchy::builder(), |b, i| {
            b.implies(format!("s{i}"), [format!("s{}", i + 1)])
        });
        let h = chain.build().unwrap();
        assert!(h.grants("s0", "s1000"));
        assert_eq!(h.broader_than("s1000").len(), 1_000);
    }
}
