//! What each tool, prompt, resource and method needs: [`Rule`] and
//! [`McpPolicy`].
//!
//! # Rules
//!
//! A rule is one or more alternatives; a call is allowed when any
//! alternative allows it. An alternative names the schemes it accepts —
//! [`Rule::api_key`], [`Rule::bearer`] (JWT or introspection),
//! [`Rule::authenticated`] (alias [`Rule::any`]), or [`Rule::public`] —
//! the scopes it needs ([`Rule::scopes`]: all of them; [`Rule::any_scope`]:
//! at least one), and optional [`Rule::check`]s over the [`Principal`] and
//! the call. [`Rule::or`] adds an alternative. The builder methods apply to
//! the last alternative.
//!
//! # Decisions
//!
//! | situation | answer |
//! | --- | --- |
//! | some alternative allows the call | allowed |
//! | no principal | 401, challenge without an error code, `scope` = what a bearer alternative needs |
//! | a principal of a scheme no alternative accepts | 401 `invalid_token`, same `scope` |
//! | right scheme, scopes missing | 403 `insufficient_scope`, `scope` = granted ∪ required |
//! | right scheme and scopes, a check said no | 403 `forbidden`, no challenge |
//!
//! The 403 `scope` follows the "recommended approach" of MCP 2025-11-25
//! (authorization, *Runtime Insufficient Scope Errors*): the scopes the
//! token already has plus the ones the call needs, so that a client that
//! re-authorizes with it does not lose what it had. (2026-07-28 moves that
//! accumulation to the client; a union is still a correct answer there.)
//!
//! # Which rule applies
//!
//! `tools/call` → the tool's rule, else the `tools/call` method rule, else
//! the default; likewise `prompts/get` → prompt, `resources/read`,
//! `resources/subscribe`, `resources/unsubscribe` and `completion/complete`
//! → resource (an exact URI first, then the most specific matching
//! [`UriTemplate`]); any other method → its method
//! rule, else the default. A request without a call (GET, DELETE) and a
//! client's JSON-RPC response take the default rule.
//!
//! # Example
//!
//! ```
//! use tower_mcp_auth::mcp::{McpPolicy, Rule};
//!
//! let policy = McpPolicy::builder()
//!     .default(Rule::authenticated())
//!     .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
//!     .tool("delete_user", Rule::api_key().or(Rule::bearer().scopes(["admin:write"])))
//!     .resource("user://{user_id}/private", Rule::bearer().scopes(["read:data"]))
//!     .method("logging/setLevel", Rule::api_key())
//!     .build()
//!     .unwrap();
//!
//! // A rule set that cannot be right fails at build time.
//! assert!(McpPolicy::builder().resource("user://{+id}", Rule::public()).build().is_err());
//! assert!(McpPolicy::builder().tool("x", Rule::public().scopes(["a"])).build().is_err());
//! ```

use std::{collections::HashMap, fmt, sync::Arc};

use crate::{
    config::ConfigError,
    error::{AuthError, AuthErrorKind},
    principal::{AuthScheme, Principal, Scopes},
};

use super::{
    inspect::{McpCall, Target},
    template_index::TemplateIndex,
    uri_template::UriTemplate,
};

type CheckFn = dyn Fn(&Principal, &McpCall) -> bool + Send + Sync;

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
}

#[derive(Clone)]
struct Alternative {
    schemes: Schemes,
    all: Scopes,
    any: Vec<Scopes>,
    checks: Vec<Arc<CheckFn>>,
}

impl Alternative {
    fn new(schemes: Schemes) -> Self {
        Self {
            schemes,
            all: Scopes::empty(),
            any: Vec::new(),
            checks: Vec::new(),
        }
    }

    fn required(&self) -> Scopes {
        self.any
            .iter()
            .fold(self.all.clone(), |acc, s| acc.union(s))
    }

    fn has_scopes(&self, granted: &Scopes) -> bool {
        granted.contains_all(self.all.iter())
            && self.any.iter().all(|g| granted.contains_any(g.iter()))
    }
}

/// What a call needs: schemes, scopes, checks, alternatives. See the
/// [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct Rule {
    alts: Vec<Alternative>,
    errors: Vec<String>,
}

/// Why a rule refused, before it is rendered.
enum Miss {
    Credential,
    Scheme,
    Scopes(Scopes),
    Check,
}

impl Rule {
    fn with(schemes: Schemes) -> Self {
        Self {
            alts: vec![Alternative::new(schemes)],
            errors: Vec::new(),
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

    /// The alternatives of `rules` (allowed when any allows). Empty →
    /// an error at [`McpPolicyBuilder::build`].
    pub fn one_of(rules: impl IntoIterator<Item = Rule>) -> Self {
        let mut out = Self {
            alts: Vec::new(),
            errors: Vec::new(),
        };
        for r in rules {
            out = out.or(r);
        }
        if out.alts.is_empty() {
            out.errors
                .push("a rule needs at least one alternative (Rule::one_of got none)".into());
        }
        out
    }

    fn last(&mut self) -> Option<&mut Alternative> {
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
        self
    }

    /// Requires at least one of `scopes` (added to the last alternative;
    /// each call adds one more group that must be met). Empty → an error
    /// at build time: it could never be met.
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
        self
    }

    /// Adds a check over the caller and the call (to the last
    /// alternative). It runs only once the scheme and scopes are met; a
    /// `false` refuses with 403.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::{Rule, Target};
    ///
    /// // Only the owner may read `user://{user_id}/private`.
    /// let owner_only = Rule::bearer().scopes(["read:data"]).check(|principal, call| {
    ///     matches!(call.target(), Some(Target::Resource(uri))
    ///         if uri == &format!("user://{}/private", principal.subject()))
    /// });
    /// ```
    pub fn check<F>(mut self, f: F) -> Self
    where
        F: Fn(&Principal, &McpCall) -> bool + Send + Sync + 'static,
    {
        if let Some(alt) = self.last() {
            alt.checks.push(Arc::new(f));
        }
        self
    }

    /// Adds `other`'s alternatives: the call is allowed when this rule or
    /// `other` allows it.
    pub fn or(mut self, other: Rule) -> Self {
        self.alts.extend(other.alts);
        self.errors.extend(other.errors);
        self
    }

    fn validate(&mut self, scopes: &Scopes) {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if let Some(bad) = scopes.iter().find(|s| {
            !s.bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        }) {
            self.errors.push(format!(
                "scope {bad:?} has characters RFC 6749 §3.3 does not allow"
            ));
        }
    }

    /// Decides one call for `principal` (`None`: anonymous).
    ///
    /// # Errors
    ///
    /// The refusal, as described in the [module docs](self), without the
    /// challenge's `resource_metadata` (the layer adds it).
    pub fn authorize(
        &self,
        principal: Option<&Principal>,
        call: &McpCall,
    ) -> Result<(), AuthError> {
        match self.evaluate(principal, call) {
            Ok(()) => Ok(()),
            Err(miss) => Err(self.refusal(principal, miss)),
        }
    }

    /// Whether `principal` may make `call`, without building a refusal.
    #[must_use]
    pub fn allows(&self, principal: Option<&Principal>, call: &McpCall) -> bool {
        self.evaluate(principal, call).is_ok()
    }

    fn evaluate(&self, principal: Option<&Principal>, call: &McpCall) -> Result<(), Miss> {
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
            if !alt.checks.iter().all(|c| c(p, call)) {
                if matches!(miss, Miss::Credential | Miss::Scheme) {
                    miss = Miss::Check;
                }
                continue;
            }
            return Ok(());
        }
        Err(miss)
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
            Miss::Credential => AuthError::missing_credential().with_scope(self.bearer_scopes()),
            Miss::Scheme => {
                let api = self.alts.iter().any(|a| a.schemes == Schemes::ApiKey);
                let bearer = self.alts.iter().any(|a| a.schemes == Schemes::Bearer);
                let what = match (api, bearer) {
                    (true, false) => "this call requires an API key",
                    (false, true) => "this call requires an OAuth bearer token",
                    _ => "this call requires an API key or an OAuth bearer token",
                };
                AuthError::invalid_token(what).with_scope(self.bearer_scopes())
            }
            Miss::Scopes(required) => {
                let granted = principal
                    .map(Principal::scopes)
                    .cloned()
                    .unwrap_or_default();
                AuthError::new(
                    AuthErrorKind::InsufficientScope,
                    "the access token lacks a scope this call requires",
                )
                .with_scope(granted.union(&required))
            }
            Miss::Check => {
                AuthError::forbidden("the policy does not allow this caller to make this call")
            }
        }
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for a in &self.alts {
            list.entry(&format_args!(
                "{:?} all={:?} any={:?} checks={}",
                a.schemes,
                a.all,
                a.any,
                a.checks.len()
            ));
        }
        list.finish()
    }
}

/// The rules of one MCP endpoint. Built once with [`McpPolicy::builder`];
/// cheap to clone. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct McpPolicy(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    default: Rule,
    tools: HashMap<String, Rule>,
    prompts: HashMap<String, Rule>,
    resources: HashMap<String, Rule>,
    templates: TemplateIndex<Rule>,
    methods: HashMap<String, Rule>,
}

/// Builds an [`McpPolicy`]. Every method takes and returns the builder;
/// mistakes surface at [`build`](Self::build).
#[derive(Debug, Default)]
#[must_use]
pub struct McpPolicyBuilder {
    default: Option<Rule>,
    tools: Vec<(String, Rule)>,
    prompts: Vec<(String, Rule)>,
    resources: Vec<(String, Rule)>,
    methods: Vec<(String, Rule)>,
}

impl McpPolicy {
    /// Starts a policy.
    pub fn builder() -> McpPolicyBuilder {
        <McpPolicyBuilder as Default>::default()
    }

    /// The rule that decides `call` (`None`: a request without a call).
    pub fn rule_for(&self, call: Option<&McpCall>) -> &Rule {
        let inner = &*self.0;
        let Some(call) = call else {
            return &inner.default;
        };
        let Some(method) = call.method() else {
            return &inner.default;
        };
        let specific = match call.target() {
            Some(Target::Tool(name)) => inner.tools.get(name),
            Some(Target::Prompt(name)) => inner.prompts.get(name),
            Some(Target::Resource(uri)) => self.resource_rule(uri),
            None => None,
        };
        specific
            .or_else(|| inner.methods.get(method))
            .unwrap_or(&inner.default)
    }

    fn resource_rule(&self, uri: &str) -> Option<&Rule> {
        let inner = &*self.0;
        inner
            .resources
            .get(uri)
            .or_else(|| inner.templates.find(uri))
    }

    /// Decides one call (`None`: a request without a call; a
    /// [`Rule::check`] then sees a call without method or target).
    ///
    /// # Errors
    ///
    /// The refusal of the rule that applies.
    pub fn authorize(
        &self,
        principal: Option<&Principal>,
        call: Option<&McpCall>,
    ) -> Result<(), AuthError> {
        let rule = self.rule_for(call);
        match call {
            Some(call) => rule.authorize(principal, call),
            None => rule.authorize(principal, &McpCall::no_call()),
        }
    }

    /// Whether `principal` may call the tool `name`.
    #[must_use]
    pub fn may_call_tool(&self, principal: Option<&Principal>, name: &str) -> bool {
        self.allows(
            principal,
            &McpCall::new("tools/call", Some(Target::Tool(name.into()))),
        )
    }

    /// Whether `principal` may get the prompt `name`.
    #[must_use]
    pub fn may_get_prompt(&self, principal: Option<&Principal>, name: &str) -> bool {
        self.allows(
            principal,
            &McpCall::new("prompts/get", Some(Target::Prompt(name.into()))),
        )
    }

    /// Whether `principal` may read the resource `uri` (a URI, or a
    /// template as listed by `resources/templates/list`).
    #[must_use]
    pub fn may_read_resource(&self, principal: Option<&Principal>, uri: &str) -> bool {
        self.allows(
            principal,
            &McpCall::new("resources/read", Some(Target::Resource(uri.into()))),
        )
    }

    fn allows(&self, principal: Option<&Principal>, call: &McpCall) -> bool {
        self.rule_for(Some(call)).allows(principal, call)
    }
}

impl McpPolicyBuilder {
    /// The rule for everything no other rule names. Without one, the
    /// default is [`Rule::authenticated`].
    pub fn default(mut self, rule: Rule) -> Self {
        self.default = Some(rule);
        self
    }

    /// The rule for `tools/call` of the tool `name`.
    pub fn tool(mut self, name: impl Into<String>, rule: Rule) -> Self {
        self.tools.push((name.into(), rule));
        self
    }

    /// The rule for `prompts/get` (and completions) of the prompt `name`.
    pub fn prompt(mut self, name: impl Into<String>, rule: Rule) -> Self {
        self.prompts.push((name.into(), rule));
        self
    }

    /// The rule for reading, subscribing to and completing a resource: an
    /// exact URI, or an RFC 6570 level-1 template (`user://{user_id}/private`).
    pub fn resource(mut self, uri_or_template: impl Into<String>, rule: Rule) -> Self {
        self.resources.push((uri_or_template.into(), rule));
        self
    }

    /// The rule for a JSON-RPC method (`logging/setLevel`, `tools/list`,
    /// or `tools/call` for tools without a rule of their own).
    pub fn method(mut self, method: impl Into<String>, rule: Rule) -> Self {
        self.methods.push((method.into(), rule));
        self
    }

    /// Checks and freezes the policy.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] listing every mistake: a template that is
    /// not level 1, a name given twice, a rule without alternatives, a
    /// public rule with scopes, an empty `any_scope`, a scope with
    /// characters RFC 6749 does not allow, an empty name.
    pub fn build(self) -> Result<McpPolicy, ConfigError> {
        let mut errors = Vec::new();
        let check_rule = |what: &str, rule: &Rule, errors: &mut Vec<String>| {
            errors.extend(rule.errors.iter().map(|e| format!("{what}: {e}")));
        };
        let default = self.default.unwrap_or_else(Rule::authenticated);
        check_rule("default rule", &default, &mut errors);
        let map = |kind: &str, entries: Vec<(String, Rule)>, errors: &mut Vec<String>| {
            let mut out = HashMap::with_capacity(entries.len());
            for (name, rule) in entries {
                let what = format!("{kind} `{name}`");
                check_rule(&what, &rule, errors);
                if name.is_empty() {
                    errors.push(format!("a {kind} name is empty"));
                }
                if out.insert(name, rule).is_some() {
                    errors.push(format!("{what} has two rules"));
                }
            }
            out
        };
        let tools = map("tool", self.tools, &mut errors);
        let prompts = map("prompt", self.prompts, &mut errors);
        let methods = map("method", self.methods, &mut errors);
        let mut resources = HashMap::new();
        let mut templates: Vec<(UriTemplate, Rule)> = Vec::new();
        let mut template_sources = std::collections::HashSet::new();
        for (source, rule) in self.resources {
            check_rule(&format!("resource `{source}`"), &rule, &mut errors);
            match UriTemplate::parse(&source) {
                Err(e) => errors.push(e.to_string()),
                Ok(t) if t.is_exact() => {
                    if resources.insert(source.clone(), rule).is_some() {
                        errors.push(format!("resource `{source}` has two rules"));
                    }
                }
                Ok(t) => {
                    if !template_sources.insert(source.clone()) {
                        errors.push(format!("resource `{source}` has two rules"));
                    }
                    templates.push((t, rule));
                }
            }
        }
        let templates = TemplateIndex::new(templates);
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "invalid MCP policy: {}",
                errors.join("; ")
            )));
        }
        Ok(McpPolicy(Arc::new(Inner {
            default,
            tools,
            prompts,
            resources,
            templates,
            methods,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AuthErrorKind;

    fn jwt(scopes: &str) -> Principal {
        Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse(scopes))
    }

    fn key() -> Principal {
        Principal::new(AuthScheme::ApiKey, "svc")
    }

    fn tool(name: &str) -> McpCall {
        McpCall::new("tools/call", Some(Target::Tool(name.into())))
    }

    fn res(uri: &str) -> McpCall {
        McpCall::new("resources/read", Some(Target::Resource(uri.into())))
    }

    fn policy() -> McpPolicy {
        McpPolicy::builder()
            .default(Rule::authenticated())
            .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
            .tool(
                "delete_user",
                Rule::api_key().or(Rule::bearer().scopes(["admin:write"])),
            )
            .tool("either", Rule::bearer().any_scope(["a", "b"]))
            .tool("open", Rule::public())
            .resource(
                "user://{user_id}/private",
                Rule::bearer().scopes(["read:data"]),
            )
            .resource("user://{user_id}/{section}", Rule::api_key())
            .resource("user://admin/private", Rule::api_key())
            .method("logging/setLevel", Rule::api_key())
            .method("tools/call", Rule::api_key())
            .build()
            .unwrap()
    }

    fn kind(p: &McpPolicy, who: Option<&Principal>, call: &McpCall) -> Option<AuthErrorKind> {
        p.authorize(who, Some(call)).err().map(|e| e.kind())
    }

    #[test]
    fn schemes_and_scopes() {
        use AuthErrorKind::*;
        let p = policy();
        let t = tool("get_user_data");
        assert_eq!(kind(&p, Some(&jwt("read:data")), &t), None);
        assert_eq!(kind(&p, None, &t), Some(MissingCredential));
        assert_eq!(kind(&p, Some(&key()), &t), Some(InvalidToken));
        let err = p.authorize(Some(&jwt("profile")), Some(&t)).unwrap_err();
        assert_eq!(err.kind(), InsufficientScope);
        assert_eq!(
            err.scope().unwrap().to_string(),
            "profile read:data",
            "granted ∪ required"
        );
        let err = p.authorize(None, Some(&t)).unwrap_err();
        assert_eq!(err.scope().unwrap().to_string(), "read:data");
        assert_eq!(kind(&p, None, &tool("open")), None);
        assert_eq!(kind(&p, Some(&jwt("b")), &tool("either")), None);
        assert_eq!(
            kind(&p, Some(&jwt("c")), &tool("either")),
            Some(InsufficientScope)
        );
        // Unnamed tool → the tools/call method rule, then the default.
        assert_eq!(
            kind(&p, Some(&jwt("")), &tool("unknown")),
            Some(InvalidToken)
        );
        assert_eq!(kind(&p, Some(&jwt("")), &McpCall::new("ping", None)), None);
        assert_eq!(
            kind(&p, None, &McpCall::new("ping", None)),
            Some(MissingCredential)
        );
        assert_eq!(
            kind(&p, Some(&jwt("")), &McpCall::new("logging/setLevel", None)),
            Some(InvalidToken)
        );
        assert!(p.authorize(None, None).is_err());
        assert!(p.authorize(Some(&key()), None).is_ok());
    }

    #[test]
    fn alternatives() {
        use AuthErrorKind::*;
        let p = policy();
        let t = tool("delete_user");
        assert_eq!(kind(&p, Some(&key()), &t), None);
        assert_eq!(kind(&p, Some(&jwt("admin:write")), &t), None);
        let err = p.authorize(Some(&jwt("read:data")), Some(&t)).unwrap_err();
        assert_eq!(err.kind(), InsufficientScope);
        assert_eq!(err.scope().unwrap().to_string(), "admin:write read:data");
        let err = p.authorize(None, Some(&t)).unwrap_err();
        assert_eq!(err.scope().unwrap().to_string(), "admin:write");
        assert_eq!(
            kind(
                &p,
                Some(&Principal::new(AuthScheme::Introspection, "x")),
                &t
            ),
            Some(InsufficientScope)
        );
    }

    #[test]
    fn most_specific_resource_wins() {
        use AuthErrorKind::*;
        let p = policy();
        // Exact beats both templates.
        assert_eq!(kind(&p, Some(&key()), &res("user://admin/private")), None);
        assert_eq!(
            kind(&p, Some(&jwt("read:data")), &res("user://admin/private")),
            Some(InvalidToken)
        );
        // `user://{user_id}/private` (15 literals) beats `user://{user_id}/{section}` (8).
        assert_eq!(
            kind(&p, Some(&jwt("read:data")), &res("user://42/private")),
            None
        );
        assert_eq!(
            kind(&p, Some(&key()), &res("user://42/private")),
            Some(InvalidToken)
        );
        assert_eq!(kind(&p, Some(&key()), &res("user://42/public")), None);
        // No template matches → default.
        assert_eq!(kind(&p, Some(&jwt("")), &res("file:///x")), None);
        // A completion names the template itself.
        assert_eq!(
            kind(&p, Some(&key()), &res("user://{user_id}/private")),
            Some(InvalidToken)
        );
        assert!(p.may_read_resource(Some(&jwt("read:data")), "user://{id}/private"));
    }

    #[test]
    fn equal_specificity_keeps_registration_order() {
        let p = McpPolicy::builder()
            .resource("a://{x}/b", Rule::api_key())
            .resource("a://b/{x}", Rule::bearer())
            .build()
            .unwrap();
        assert!(p.may_read_resource(Some(&key()), "a://b/b"));
        assert!(!p.may_read_resource(Some(&jwt("")), "a://b/b"));
        assert!(p.may_read_resource(Some(&jwt("")), "a://b/c"));
    }

    #[test]
    fn checks() {
        let p = McpPolicy::builder()
            .tool(
                "mine",
                Rule::bearer().check(|p, c| c.target().is_some() && p.subject() == "alice"),
            )
            .build()
            .unwrap();
        let alice = Principal::new(AuthScheme::Jwt, "alice");
        assert!(p.may_call_tool(Some(&alice), "mine"));
        let err = p
            .authorize(Some(&jwt("")), Some(&tool("mine")))
            .unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::Forbidden);
    }

    #[test]
    fn build_errors() {
        let cases: Vec<(McpPolicyBuilder, &str)> = vec![
            (
                McpPolicy::builder().resource("u://{+x}", Rule::public()),
                "level-1",
            ),
            (
                McpPolicy::builder().tool("t", Rule::one_of([])),
                "at least one alternative",
            ),
            (
                McpPolicy::builder().tool("t", Rule::public().scopes(["a"])),
                "takes no scopes",
            ),
            (
                McpPolicy::builder().tool("t", Rule::bearer().any_scope(Vec::<&str>::new())),
                "never be satisfied",
            ),
            (
                McpPolicy::builder().tool("t", Rule::bearer().scopes(["a\"b"])),
                "RFC 6749",
            ),
            (
                McpPolicy::builder()
                    .tool("t", Rule::api_key())
                    .tool("t", Rule::bearer()),
                "two rules",
            ),
            (
                McpPolicy::builder()
                    .resource("u://{x}", Rule::api_key())
                    .resource("u://{x}", Rule::bearer()),
                "two rules",
            ),
            (McpPolicy::builder().tool("", Rule::api_key()), "empty"),
            (
                McpPolicy::builder().default(Rule::one_of([])),
                "default rule",
            ),
        ];
        for (b, want) in cases {
            let err = b.build().unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        assert!(McpPolicy::builder()
            .tool("t", Rule::one_of([Rule::api_key(), Rule::bearer()]))
            .build()
            .is_ok());
    }
}
