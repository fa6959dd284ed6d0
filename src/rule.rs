//! The one rule language: [`Rule`], for an MCP endpoint's policy and for a
//! plain route alike.

use std::{any::Any, fmt, sync::Arc};

use crate::{
    error::AuthError,
    principal::{is_scope_token, AuthScheme, Principal, Scopes, OFFLINE_ACCESS},
    scope_hierarchy::{ScopeHierarchy, Widened},
};

/// A check over the caller and what it calls, erased to `&dyn Any` so that
/// the core names no layer's types: the layer that adds a check (the MCP
/// policy's `Rule::check`) knows what it will be shown.
pub(crate) type CheckFn = dyn Fn(&Principal, &dyn Any) -> bool + Send + Sync;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schemes {
    Public,
    Any,
    ApiKey,
    Bearer,
}

impl Schemes {
    fn accepts(self, scheme: AuthScheme) -> bool {
        match self {
            Self::Public | Self::Any => true,
            Self::ApiKey => scheme == AuthScheme::ApiKey,
            Self::Bearer => scheme.is_bearer(),
        }
    }

    fn accepts_bearer(self) -> bool {
        !matches!(self, Self::ApiKey)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Any => "authenticated",
            Self::ApiKey => "api_key",
            Self::Bearer => "bearer",
        }
    }
}

#[derive(Clone)]
struct Alternative {
    schemes: Schemes,
    all: Scopes,
    any: Vec<Scopes>,
    checks: Vec<Arc<CheckFn>>,
    /// What meets `all` and `any` under the rule's scope hierarchy
    /// (`None`: no hierarchy, or no broader scope meets any of them; the
    /// check is then exactly the one without).
    wider: Option<Box<Widened>>,
}

impl Alternative {
    fn new(schemes: Schemes) -> Self {
        Self {
            schemes,
            all: Scopes::empty(),
            any: Vec::new(),
            checks: Vec::new(),
            wider: None,
        }
    }

    fn required(&self) -> Scopes {
        self.any
            .iter()
            .fold(self.all.clone(), |acc, s| acc.union(s))
    }

    fn has_scopes(&self, granted: &Scopes) -> bool {
        match &self.wider {
            None => {
                granted.contains_all(self.all.iter())
                    && self.any.iter().all(|g| granted.contains_any(g.iter()))
            }
            Some(wider) => wider.met_by(granted, &self.all, &self.any),
        }
    }

    /// Recomputes [`Alternative::wider`] for `hierarchy`.
    fn widen(&mut self, hierarchy: &ScopeHierarchy) {
        self.wider = Widened::new(hierarchy, &self.all, &self.any);
    }
}

/// What a caller needs: the schemes it may use, the scopes it must hold,
/// alternatives.
///
/// One rule language for every place that decides: the MCP policy
/// (`mcp::McpPolicy`, one rule per tool, prompt, resource or method) and a
/// plain route ([`AuthorizeLayer`](crate::AuthorizeLayer)).
///
/// A rule is one or more alternatives; a caller is allowed when any
/// alternative allows it. An alternative names the schemes it accepts —
/// [`Rule::api_key`], [`Rule::bearer`] (JWT or introspection),
/// [`Rule::authenticated`] (alias [`Rule::any`]), or [`Rule::public`] —
/// and the scopes it needs ([`Rule::scopes`]: all of them;
/// [`Rule::any_scope`]: at least one). [`Rule::or`] adds an alternative;
/// the other builder methods apply to the last alternative. With the
/// `mcp` feature, `Rule::check` adds a check over the caller and the MCP
/// call.
///
/// A deployment's [`ScopeHierarchy`] (a broad scope implies narrower
/// ones) is accounted for in every decision once given
/// ([`Rule::scope_hierarchy`]; the MCP policy and
/// [`AuthorizeLayer`](crate::AuthorizeLayer) give theirs to their rules):
/// a scope the rule requires is met by the scope itself or by any scope
/// that implies it. Refusals still name the scopes the rule requires.
///
/// [`Rule::deny`] is the rule with no alternative: nobody. In an any-of it
/// contributes nothing (`Rule::deny().or(x)` decides as `x`).
///
/// Mistakes (an empty [`Rule::one_of`], scopes on a public or deny rule, a
/// scope RFC 6749 does not allow, a requirement of `offline_access`, which
/// asks for a refresh token and is no permission a resource checks) are
/// collected and reported by whoever takes
/// the rule: `McpPolicyBuilder::build`, [`AuthorizeLayer::new`](crate::AuthorizeLayer::new).
///
/// # Decisions
///
/// | situation | answer |
/// | --- | --- |
/// | some alternative allows the caller | allowed |
/// | no principal | 401, challenge without an error code, `scope` = what a bearer alternative needs |
/// | a principal of a scheme no alternative accepts | 403 `forbidden` naming the scheme needed, no challenge |
/// | right scheme, scopes missing | 403 `insufficient_scope`, `scope` = granted ∪ required |
/// | right scheme and scopes, a check said no | 403 `forbidden`, no challenge |
/// | [`Rule::deny`] (no alternative), anyone or anonymous | 403 `forbidden`, no challenge |
///
/// The 403 `scope` is the crate's one
/// [step-up rule](crate::AuthError::insufficient_scope), for the MCP
/// policy and [`AuthorizeLayer`](crate::AuthorizeLayer) alike: the scopes
/// the token already has plus the ones the call needs.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::{AuthScheme, Principal, Rule, Scopes};
///
/// // An API key, or a bearer token with `admin:write`.
/// let admin = Rule::api_key().or(Rule::bearer().scopes(["admin:write"]));
///
/// let key = Principal::new(AuthScheme::ApiKey, "ops");
/// let token = Principal::new(AuthScheme::Jwt, "alice");
/// assert!(admin.permits(Some(&key)));
/// assert!(!admin.permits(Some(&token)));
/// assert!(admin.permits(Some(&token.with_scopes(Scopes::parse("admin:write")))));
/// assert!(!admin.permits(None));
/// assert_eq!(admin.scopes_named().to_string(), "admin:write");
/// ```
#[derive(Clone)]
#[must_use]
pub struct Rule {
    alts: Vec<Alternative>,
    errors: Vec<String>,
    hierarchy: ScopeHierarchy,
}

/// Why a rule refused, before it is rendered.
enum Miss {
    Credential,
    Scheme,
    Scopes(Scopes),
    Check,
    /// The rule has no alternative ([`Rule::deny`]).
    Denied,
}

impl Rule {
    fn with(schemes: Schemes) -> Self {
        Self {
            alts: vec![Alternative::new(schemes)],
            errors: Vec::new(),
            hierarchy: ScopeHierarchy::empty(),
        }
    }

    /// Callers authenticated with an API key.
    pub fn api_key() -> Self {
        Self::with(Schemes::ApiKey)
    }

    /// Callers with an OAuth bearer token (JWT or introspected).
    pub fn bearer() -> Self {
        Self::with(Schemes::Bearer)
    }

    /// Any authenticated caller, whatever the scheme.
    pub fn authenticated() -> Self {
        Self::with(Schemes::Any)
    }

    /// Alias of [`Rule::authenticated`].
    pub fn any() -> Self {
        Self::authenticated()
    }

    /// Everyone, authenticated or not. Takes no scopes or checks.
    pub fn public() -> Self {
        Self::with(Schemes::Public)
    }

    /// Nobody: every caller, authenticated or not, is refused with 403
    /// `forbidden` (no challenge: no credential would help), and an MCP
    /// policy hides the target from every list. `"deny"` in a policy file.
    ///
    /// It is the rule without alternatives, so in an any-of it contributes
    /// nothing: `Rule::deny().or(x)` and `x.or(Rule::deny())` decide as `x`
    /// (an any-of is allowed when some alternative allows; deny allows
    /// none). It takes no scopes or checks (an error when the rule is
    /// taken).
    ///
    /// Give it to the targets no rule names, so that a tool added to the
    /// server without a rule, or a rule whose name has a typo, leaves the
    /// tool closed rather than open to every caller:
    ///
    /// ```
    /// # #[cfg(feature = "mcp")] {
    /// use tower_mcp_auth::mcp::McpPolicy;
    /// use tower_mcp_auth::{AuthScheme, Principal, Rule};
    ///
    /// let policy = McpPolicy::builder()
    ///     .tool("write_note", Rule::api_key())
    ///     .unmatched_tool(Rule::deny())
    ///     .build()?;
    /// let key = Principal::new(AuthScheme::ApiKey, "ops");
    /// assert!(policy.may_call_tool(Some(&key), "write_note"));
    /// assert!(!policy.may_call_tool(Some(&key), "wirte_note"));
    /// assert!(!Rule::deny().permits(Some(&key)));
    /// # }
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    pub fn deny() -> Self {
        Self {
            alts: Vec::new(),
            errors: Vec::new(),
            hierarchy: ScopeHierarchy::empty(),
        }
    }

    /// The alternatives of `rules` (allowed when any allows). Empty → an
    /// error when the rule is taken. [`Rule::deny`] among them adds no
    /// alternative.
    pub fn one_of(rules: impl IntoIterator<Item = Rule>) -> Self {
        let mut out = Self::deny();
        let mut given = false;
        for r in rules {
            given = true;
            out = out.or(r);
        }
        if !given {
            out.errors
                .push("a rule needs at least one alternative (Rule::one_of got none)".into());
        }
        out
    }

    fn last(&mut self) -> Option<&mut Alternative> {
        if self.alts.is_empty() && self.errors.is_empty() {
            self.errors
                .push("Rule::deny() takes no scopes or checks: it refuses every caller".into());
            return None;
        }
        let last = self.alts.last_mut();
        if matches!(
            last,
            Some(Alternative {
                schemes: Schemes::Public,
                ..
            })
        ) {
            self.errors.push(
                "Rule::public() takes no scopes or checks; use Rule::authenticated() to require a caller"
                    .into(),
            );
            return None;
        }
        last
    }

    /// Requires every one of `scopes` (added to the last alternative).
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let scopes: Scopes = scopes.into_iter().collect();
        self.validate(&scopes);
        if let Some(alt) = self.last() {
            alt.all = alt.all.union(&scopes);
        }
        self.widen();
        self
    }

    /// Requires at least one of `scopes` (added to the last alternative;
    /// each call adds one more group that must be met). Empty → an error
    /// when the rule is taken: it could never be met.
    pub fn any_scope<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let scopes: Scopes = scopes.into_iter().collect();
        self.validate(&scopes);
        if scopes.is_empty() {
            self.errors
                .push("Rule::any_scope([]) can never be satisfied".into());
        }
        if let Some(alt) = self.last() {
            alt.any.push(scopes);
        }
        self.widen();
        self
    }

    /// Adds an erased check to the last alternative (the MCP policy's
    /// `Rule::check` wraps its typed closure in one).
    #[cfg_attr(not(feature = "mcp"), allow(dead_code))]
    pub(crate) fn push_check(mut self, check: Arc<CheckFn>) -> Self {
        if let Some(alt) = self.last() {
            alt.checks.push(check);
        }
        self
    }

    /// Adds `other`'s alternatives: the caller is allowed when this rule
    /// or `other` allows it.
    pub fn or(mut self, other: Rule) -> Self {
        self.alts.extend(other.alts);
        self.errors.extend(other.errors);
        if self.hierarchy.is_empty() {
            self.hierarchy = other.hierarchy;
        }
        self.widen();
        self
    }

    /// The scope hierarchy the rule's scope checks account for (replacing
    /// any given before): a scope the rule requires is then also met by
    /// every scope that implies it. The MCP policy
    /// ([`McpPolicyBuilder::scope_hierarchy`](crate::mcp::McpPolicyBuilder::scope_hierarchy))
    /// and [`AuthorizeLayer::scope_hierarchy`](crate::AuthorizeLayer::scope_hierarchy)
    /// give theirs to their rules.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthScheme, Principal, Rule, ScopeHierarchy, Scopes};
    ///
    /// let hierarchy = ScopeHierarchy::builder().implies("admin", ["admin:write"]).build()?;
    /// let rule = Rule::bearer().scopes(["admin:write"]).scope_hierarchy(hierarchy);
    /// let admin = Principal::new(AuthScheme::Jwt, "ann").with_scopes(Scopes::parse("admin"));
    /// assert!(rule.permits(Some(&admin)));
    /// // A refusal names what the rule requires, not the broad scope.
    /// assert_eq!(rule.scopes_named().to_string(), "admin:write");
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    pub fn scope_hierarchy(mut self, hierarchy: ScopeHierarchy) -> Self {
        self.set_scope_hierarchy(hierarchy);
        self
    }

    /// As [`Rule::scope_hierarchy`], in place.
    pub(crate) fn set_scope_hierarchy(&mut self, hierarchy: ScopeHierarchy) {
        self.hierarchy = hierarchy;
        self.widen();
    }

    fn widen(&mut self) {
        let hierarchy = &self.hierarchy;
        for alt in &mut self.alts {
            alt.widen(hierarchy);
        }
    }

    fn validate(&mut self, scopes: &Scopes) {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
            self.errors.push(format!(
                "scope {bad:?} has characters RFC 6749 §3.3 does not allow"
            ));
        }
        if scopes.contains(OFFLINE_ACCESS) {
            self.errors.push(format!(
                "a rule cannot require `{OFFLINE_ACCESS}`: it asks for a refresh token, it is no permission of this resource (and challenges never name it)"
            ));
        }
    }

    /// The mistakes collected while the rule was built (empty: none).
    pub(crate) fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Whether the rule is [`Rule::deny`] (no alternative).
    #[cfg_attr(not(feature = "mcp"), allow(dead_code))]
    pub(crate) fn is_deny(&self) -> bool {
        self.alts.is_empty()
    }

    /// Whether some alternative carries a check.
    pub(crate) fn has_checks(&self) -> bool {
        self.alts.iter().any(|a| !a.checks.is_empty())
    }

    /// Every scope the rule names, in any alternative (for a resource's
    /// `scopes_supported`).
    #[must_use]
    pub fn scopes_named(&self) -> Scopes {
        self.alts
            .iter()
            .fold(Scopes::empty(), |acc, a| acc.union(&a.required()))
    }

    /// Whether the rule allows `principal` (`None`: anonymous), its
    /// checks, if any, shown no call (so a rule with a check refuses).
    #[must_use]
    pub fn permits(&self, principal: Option<&Principal>) -> bool {
        self.evaluate(principal, &()).is_ok()
    }

    /// Decides for `principal`, its checks shown `ctx`.
    pub(crate) fn decide(
        &self,
        principal: Option<&Principal>,
        ctx: &dyn Any,
    ) -> Result<(), AuthError> {
        self.evaluate(principal, ctx)
            .map_err(|miss| self.refusal(principal, miss))
    }

    /// Whether the rule allows `principal`, its checks shown `ctx`.
    #[cfg_attr(not(feature = "mcp"), allow(dead_code))]
    pub(crate) fn allows_with(&self, principal: Option<&Principal>, ctx: &dyn Any) -> bool {
        self.evaluate(principal, ctx).is_ok()
    }

    fn evaluate(&self, principal: Option<&Principal>, ctx: &dyn Any) -> Result<(), Miss> {
        if self.alts.is_empty() {
            return Err(Miss::Denied);
        }
        let mut miss = Miss::Credential;
        for alt in &self.alts {
            if alt.schemes == Schemes::Public {
                return Ok(());
            }
            let Some(p) = principal else { continue };
            if !alt.schemes.accepts(p.scheme()) {
                if matches!(miss, Miss::Credential) {
                    miss = Miss::Scheme;
                }
                continue;
            }
            if !alt.has_scopes(p.scopes()) {
                if !matches!(miss, Miss::Scopes(_)) {
                    miss = Miss::Scopes(alt.required());
                }
                continue;
            }
            if !alt.checks.iter().all(|c| c(p, ctx)) {
                if matches!(miss, Miss::Credential | Miss::Scheme) {
                    miss = Miss::Check;
                }
                continue;
            }
            return Ok(());
        }
        Err(miss)
    }

    /// Whether API keys are all the rule takes (and it takes something).
    fn api_key_only(&self) -> bool {
        !self.alts.is_empty() && self.alts.iter().all(|a| a.schemes == Schemes::ApiKey)
    }

    /// The scopes a bearer caller would need (for a 401's `scope`).
    fn bearer_scopes(&self) -> Scopes {
        self.alts
            .iter()
            .filter(|a| a.schemes.accepts_bearer())
            .fold(Scopes::empty(), |acc, a| acc.union(&a.required()))
    }

    fn refusal(&self, principal: Option<&Principal>, miss: Miss) -> AuthError {
        match miss {
            // A rule that takes API keys only offers no OAuth in its
            // challenge (issue 25 item 4).
            Miss::Credential if self.api_key_only() => {
                AuthError::missing_credential().with_api_key_challenge()
            }
            Miss::Credential => AuthError::missing_credential().with_scope(self.bearer_scopes()),
            Miss::Scheme => {
                // A verified credential of a kind this target does not take:
                // 403, not 401 `invalid_token` (which tells an OAuth client
                // to throw a good token away); see `AuthErrorKind::Forbidden`.
                let api = self.alts.iter().any(|a| a.schemes == Schemes::ApiKey);
                let bearer = self.alts.iter().any(|a| a.schemes == Schemes::Bearer);
                let what = match (api, bearer) {
                    (true, false) => "this call requires an API key",
                    (false, true) => "this call requires an OAuth bearer token",
                    _ => "this call requires an API key or an OAuth bearer token",
                };
                AuthError::forbidden(what)
            }
            Miss::Scopes(required) => {
                let granted = principal
                    .map(Principal::scopes)
                    .cloned()
                    .unwrap_or_default();
                AuthError::step_up(
                    &granted,
                    &required,
                    "the access token lacks a scope this call requires",
                )
            }
            Miss::Check => {
                AuthError::forbidden("the policy does not allow this caller to make this call")
            }
            Miss::Denied => AuthError::forbidden("the policy allows this call to nobody"),
        }
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.alts.is_empty() {
            return f.write_str("deny");
        }
        let mut list = f.debug_list();
        for a in &self.alts {
            list.entry(&format_args!(
                "{} all={:?} any={:?} checks={}",
                a.schemes.name(),
                a.all,
                a.any,
                a.checks.len()
            ));
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AuthErrorKind;

    fn jwt(scopes: &str) -> Principal {
        Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse(scopes))
    }

    #[test]
    fn decisions_without_a_call() {
        let rule = Rule::api_key().or(Rule::bearer().scopes(["admin:write"]));
        let key = Principal::new(AuthScheme::ApiKey, "svc");
        assert!(rule.decide(Some(&key), &()).is_ok());
        assert!(rule.decide(Some(&jwt("admin:write")), &()).is_ok());
        let err = rule.decide(Some(&jwt("read")), &()).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InsufficientScope);
        assert_eq!(err.scope().unwrap().to_string(), "admin:write read");
        let err = rule.decide(None, &()).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::MissingCredential);
        assert_eq!(err.scope().unwrap().to_string(), "admin:write");
        assert!(Rule::public().permits(None));
        // A valid credential of a kind the rule does not take: 403 naming
        // the scheme, no challenge, no scope (issue 25 item 3).
        let err = Rule::api_key().decide(Some(&jwt("read")), &()).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::Forbidden);
        assert_eq!(err.description(), "this call requires an API key");
        assert!(err.scope().is_none());
        let err = Rule::bearer().decide(Some(&key), &()).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::Forbidden);
        assert_eq!(
            err.description(),
            "this call requires an OAuth bearer token"
        );
    }

    #[test]
    fn a_check_sees_only_what_it_was_written_for() {
        let rule = Rule::bearer().push_check(Arc::new(|_, ctx: &dyn Any| {
            ctx.downcast_ref::<u32>() == Some(&7)
        }));
        assert!(rule.has_checks());
        assert!(rule.allows_with(Some(&jwt("")), &7u32));
        assert!(!rule.allows_with(Some(&jwt("")), &8u32));
        // Shown something else (a plain route shows `()`): refused.
        assert!(!rule.permits(Some(&jwt(""))));
    }

    fn hierarchy() -> ScopeHierarchy {
        ScopeHierarchy::builder()
            .implies("admin", ["admin:write", "read:data"])
            .implies("admin:write", ["admin:read"])
            .build()
            .unwrap()
    }

    /// MCP 2026-07-28: a broader scope meets a narrower requirement; on
    /// the old code `admin` never met `admin:write`.
    #[test]
    fn a_broader_scope_meets_a_narrower_requirement() {
        let rule = Rule::api_key()
            .or(Rule::bearer()
                .scopes(["admin:read", "read:data"])
                .any_scope(["x", "admin:write"]))
            .scope_hierarchy(hierarchy());
        assert!(rule.permits(Some(&jwt("admin"))));
        assert!(rule.permits(Some(&jwt("admin:write read:data"))));
        assert!(rule.permits(Some(&jwt("admin:read read:data x"))));
        // `admin:write` implies `admin:read`, not `read:data`.
        assert!(!rule.permits(Some(&jwt("admin:write"))));
        // Implication goes down only.
        assert!(!rule.permits(Some(&jwt("admin:read read:data"))));
        // The refusal names what the rule requires, all of it in one
        // challenge (with what the token holds), never the broad scope.
        let err = rule.decide(Some(&jwt("admin:write")), &()).unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InsufficientScope);
        assert_eq!(
            err.scope().unwrap().to_string(),
            "admin:read admin:write read:data x"
        );
        let err = rule.decide(None, &()).unwrap_err();
        assert_eq!(
            err.scope().unwrap().to_string(),
            "admin:read admin:write read:data x"
        );
        // Without a hierarchy: the old decisions.
        let plain = Rule::bearer().scopes(["admin:write"]);
        assert!(!plain.permits(Some(&jwt("admin"))));
        assert!(plain
            .clone()
            .scope_hierarchy(hierarchy())
            .permits(Some(&jwt("admin"))));
        assert!(!plain
            .scope_hierarchy(hierarchy())
            .scope_hierarchy(ScopeHierarchy::empty())
            .permits(Some(&jwt("admin"))));
    }

    #[test]
    fn the_hierarchy_holds_whatever_the_order_of_the_builder_calls() {
        let admin = jwt("admin");
        let before = Rule::bearer()
            .scope_hierarchy(hierarchy())
            .scopes(["admin:read"]);
        assert!(before.permits(Some(&admin)));
        let joined = Rule::api_key()
            .scope_hierarchy(hierarchy())
            .or(Rule::bearer().scopes(["admin:write"]));
        assert!(joined.permits(Some(&admin)));
        let other_side = Rule::api_key().or(Rule::bearer()
            .scopes(["read:data"])
            .scope_hierarchy(hierarchy()));
        assert!(other_side.permits(Some(&admin)));
    }

    #[test]
    fn many_requirements_take_the_list_path_and_decide_alike() {
        for n in [63, 64, 65, 130] {
            let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
            let h = ScopeHierarchy::builder()
                .implies("root", names.iter().cloned())
                .build()
                .unwrap();
            let rule = Rule::bearer()
                .scopes(names.iter().skip(1))
                .any_scope(["x", "s0"])
                .scope_hierarchy(h);
            assert!(rule.permits(Some(&jwt("root"))), "{n}");
            assert!(rule.permits(Some(&jwt(&names.join(" ")))), "{n}");
            assert!(!rule.permits(Some(&jwt(&names[1..].join(" ")))), "{n}");
            let mut some = names[..n - 1].to_vec();
            some.push("x".into());
            assert!(!rule.permits(Some(&jwt(&some.join(" ")))), "{n}");
        }
    }

    #[test]
    fn offline_access_cannot_be_required() {
        let errors = Rule::bearer().scopes(["offline_access"]).errors().to_vec();
        assert!(errors[0].contains("offline_access"), "{errors:?}");
        assert!(!Rule::bearer()
            .any_scope(["a", "offline_access"])
            .errors()
            .is_empty());
    }

    #[test]
    fn scopes_named_and_errors() {
        let rule = Rule::bearer()
            .scopes(["a"])
            .any_scope(["b", "c"])
            .or(Rule::api_key().scopes(["d"]));
        assert_eq!(rule.scopes_named().to_string(), "a b c d");
        assert!(rule.errors().is_empty());
        assert!(!Rule::bearer().scopes(["a\"b"]).errors().is_empty());
        assert!(!Rule::public().scopes(["a"]).errors().is_empty());
    }

    #[test]
    fn deny_refuses_everyone_with_403_and_adds_nothing_to_an_any_of() {
        let deny = Rule::deny();
        assert!(deny.errors().is_empty());
        let key = Principal::new(AuthScheme::ApiKey, "svc");
        for who in [None, Some(&key), Some(&jwt("admin:write read:data"))] {
            assert!(!deny.permits(who));
            let err = deny.decide(who, &()).unwrap_err();
            assert_eq!(err.kind(), AuthErrorKind::Forbidden, "{who:?}");
            assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
            assert!(err.scope().is_none());
        }
        assert!(deny.scopes_named().is_empty());
        assert_eq!(format!("{deny:?}"), "deny");
        // deny.or(x) == x, x.or(deny) == x: the same decisions.
        let x = Rule::bearer().scopes(["a"]);
        for rule in [
            Rule::deny().or(x.clone()),
            x.clone().or(Rule::deny()),
            Rule::one_of([Rule::deny(), x.clone()]),
        ] {
            assert_eq!(format!("{rule:?}"), format!("{x:?}"));
            for who in [None, Some(&key), Some(&jwt("a")), Some(&jwt("b"))] {
                assert_eq!(
                    rule.decide(who, &()).map_err(|e| e.kind()),
                    x.decide(who, &()).map_err(|e| e.kind())
                );
            }
        }
        // Only deny: still deny, no error; scopes on deny: an error.
        let only = Rule::one_of([Rule::deny()]);
        assert!(only.errors().is_empty());
        assert!(!only.permits(Some(&key)));
        let err = Rule::deny().scopes(["a"]).errors().join("");
        assert!(err.contains("Rule::deny() takes no scopes"), "{err}");
        assert!(!Rule::deny().any_scope(["a"]).errors().is_empty());
    }
}
