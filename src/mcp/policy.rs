//! What each tool, prompt, resource and method needs: [`McpPolicy`], in
//! the crate's one rule language, [`Rule`].

use std::{any::Any, collections::HashMap, sync::Arc};

use crate::{
    config::ConfigError,
    error::AuthError,
    principal::{Principal, Scopes},
    rule::Rule,
    scope_hierarchy::ScopeHierarchy,
};

use super::{
    filter::gaps::{Gaps, NamedTargets},
    inspect::{Kind, McpCall, Target},
    limits::RateLimits,
    template_index::{TemplateIndex, TemplatePrecedence},
    uri_template::UriTemplate,
};

/// The MCP side of the [`Rule`] language: checks over the call, and
/// decisions of one call.
impl Rule {
    /// Adds a check over the caller and the MCP call (to the last
    /// alternative). It runs only once the scheme and scopes are met; a
    /// `false` refuses with 403. A rule with a check guards MCP calls only:
    /// [`AuthorizeLayer::new`](crate::AuthorizeLayer::new) refuses it.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::Target;
    /// use tower_mcp_auth::Rule;
    ///
    /// // Only the owner may read `user://{user_id}/private`.
    /// let owner_only = Rule::bearer().scopes(["read:data"]).check(|principal, call| {
    ///     matches!(call.target(), Some(Target::Resource(uri))
    ///         if principal.subject().is_some_and(|sub| uri == &format!("user://{sub}/private")))
    /// });
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "mcp")))]
    pub fn check<F>(self, f: F) -> Self
    where
        F: Fn(&Principal, &McpCall) -> bool + Send + Sync + 'static,
    {
        // Shown anything but an MCP call, the check refuses.
        self.push_check(Arc::new(move |p: &Principal, ctx: &dyn Any| {
            ctx.downcast_ref::<McpCall>().is_some_and(|call| f(p, call))
        }))
    }

    /// Decides one call for `principal` (`None`: anonymous).
    ///
    /// # Errors
    ///
    /// The refusal, as described in the [`Rule`] docs, without the
    /// challenge's `resource_metadata` (the layer adds it).
    #[cfg_attr(docsrs, doc(cfg(feature = "mcp")))]
    pub fn authorize(
        &self,
        principal: Option<&Principal>,
        call: &McpCall,
    ) -> Result<(), AuthError> {
        self.decide(principal, call)
    }

    /// Whether `principal` may make `call`, without building a refusal.
    #[cfg_attr(docsrs, doc(cfg(feature = "mcp")))]
    #[must_use]
    pub fn allows(&self, principal: Option<&Principal>, call: &McpCall) -> bool {
        self.allows_with(principal, call)
    }
}

/// The rules of one MCP endpoint. Built once with [`McpPolicy::builder`];
/// cheap to clone.
///
/// Each tool, prompt, resource and method gets a [`Rule`], the crate's
/// one rule language (its docs give the decisions and refusals); on an
/// MCP endpoint a rule may also carry [`Rule::check`]s over the call.
///
/// # Which rule applies
///
/// For a call aimed at a target (the table in [`McpRequest`](super::McpRequest)),
/// the first of:
///
/// 1. the target's own rule: the tool's ([`tool`](McpPolicyBuilder::tool)),
///    the prompt's ([`prompt`](McpPolicyBuilder::prompt)), the resource's
///    ([`resource`](McpPolicyBuilder::resource): an exact URI first, then
///    the most specific matching [`UriTemplate`]);
/// 2. the rule for targets of its kind that match no rule of their own
///    ([`unmatched_tool`](McpPolicyBuilder::unmatched_tool),
///    [`unmatched_prompt`](McpPolicyBuilder::unmatched_prompt),
///    [`unmatched_resource`](McpPolicyBuilder::unmatched_resource)), when
///    set;
/// 3. the method's rule ([`method`](McpPolicyBuilder::method));
/// 4. the default.
///
/// Without step 2 a tool that no rule names (one added to the server
/// later, or whose rule has a typo: `wirte_note` for `write_note`) falls
/// to the default, by default [`Rule::authenticated`]: any caller with any
/// credential may call it and sees it listed. Give
/// [`unmatched_tool`](McpPolicyBuilder::unmatched_tool) and
/// [`unmatched_prompt`](McpPolicyBuilder::unmatched_prompt) a strict rule,
/// [`Rule::deny`] (nobody; not listed), to fail closed. Either way, the
/// list filter reports each listed target that no rule names, and each
/// rule that names a tool or prompt the server never lists, once, as an
/// audit event (see [list filtering](super#list-filtering)).
///
/// Resources are named by `resources/read`, `resources/subscribe`,
/// `resources/unsubscribe`, `resources/directory/read`, `skills/get`,
/// `subscriptions/listen` and `completion/complete` (`ref/resource`), so
/// a resource rule holds for every way of reaching the resource. Tasks
/// (`tasks/get`, `tasks/update`, `tasks/cancel`) have no rules of their
/// own: their method's rule decides, and its [`Rule::check`]s see the
/// [`Target::Task`]. A method without a target → its method rule, else the
/// default. A request without a call (GET, DELETE) and a client's
/// JSON-RPC response take the default rule.
///
/// A call with several targets (`subscriptions/listen` with several
/// resource subscriptions) is allowed only if each target is; the refusal
/// names the first target refused.
///
/// A call whose method names a target that the body lacks (a
/// `resources/read` without a string `params.uri`) is decided as a target
/// that matches no rule: step 2 (unless that rule is [`Rule::deny`], which
/// closes targets, and such a call reaches none), else 3, else 4. That is safe: such a call
/// can never match a target's rule, so no target's rule is skipped; the
/// layer reads the target where rmcp does (the same member, escapes
/// decoded, repeated members refused), so when the layer finds no target
/// the server finds none either and answers with its own error (invalid
/// params, or method not found for a method its revision removed)
/// without running any handler; and it gets no more than any unknown
/// target would. Refusing it instead as malformed would change what the
/// server answers.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::mcp::McpPolicy;
/// use tower_mcp_auth::Rule;
///
/// let policy = McpPolicy::builder()
///     .default(Rule::authenticated())
///     .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
///     .tool("delete_user", Rule::api_key().or(Rule::bearer().scopes(["admin:write"])))
///     .resource("user://{user_id}/private", Rule::bearer().scopes(["read:data"]))
///     // A URI no resource rule matches: API key only, not the default.
///     .unmatched_resource(Rule::api_key())
///     // A tool or prompt no rule names: nobody, and not listed.
///     .unmatched_tool(Rule::deny())
///     .unmatched_prompt(Rule::deny())
///     .method("logging/setLevel", Rule::api_key())
///     .build()
///     .unwrap();
///
/// let anyone = tower_mcp_auth::Principal::new(tower_mcp_auth::AuthScheme::ApiKey, "ops");
/// assert!(!policy.may_call_tool(Some(&anyone), "delete_usr"));
///
/// // A rule set that cannot be right fails at build time.
/// assert!(McpPolicy::builder().resource("user://{+id}", Rule::public()).build().is_err());
/// assert!(McpPolicy::builder().tool("x", Rule::public().scopes(["a"])).build().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct McpPolicy(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    default: Rule,
    unmatched: Unmatched,
    tools: HashMap<String, Rule>,
    prompts: HashMap<String, Rule>,
    resources: HashMap<String, Rule>,
    templates: TemplateIndex<Rule>,
    methods: HashMap<String, Rule>,
    rate_limits: RateLimits,
    hierarchy: ScopeHierarchy,
    /// What the list filter has reported about this policy (one report
    /// per name per policy: a reload starts afresh).
    gaps: Gaps,
}

/// Builds an [`McpPolicy`]. Every method takes and returns the builder;
/// mistakes surface at [`build`](Self::build).
#[derive(Debug, Default)]
#[must_use]
pub struct McpPolicyBuilder {
    default: Option<Rule>,
    unmatched: Unmatched,
    tools: Vec<(String, Rule)>,
    prompts: Vec<(String, Rule)>,
    resources: Vec<(String, Rule)>,
    methods: Vec<(String, Rule)>,
    rate_limits: RateLimits,
    template_precedence: TemplatePrecedence,
    hierarchy: ScopeHierarchy,
}

/// The rules for targets that match no rule of their own.
#[derive(Debug, Default)]
struct Unmatched {
    tool: Option<Rule>,
    prompt: Option<Rule>,
    resource: Option<Rule>,
}

impl Unmatched {
    fn get(&self, kind: Kind) -> Option<&Rule> {
        match kind {
            Kind::Tool => self.tool.as_ref(),
            Kind::Prompt => self.prompt.as_ref(),
            Kind::Resource => self.resource.as_ref(),
            Kind::Task => None,
        }
    }
}

impl McpPolicy {
    /// Starts a policy.
    pub fn builder() -> McpPolicyBuilder {
        <McpPolicyBuilder as Default>::default()
    }

    /// The rule that decides `call` (`None`: a request without a call),
    /// as the [`McpPolicy`] docs say; for a call with several targets,
    /// the rule of the first ([`authorize`](Self::authorize) decides each).
    pub fn rule_for(&self, call: Option<&McpCall>) -> &Rule {
        let inner = &*self.0;
        let Some(call) = call else {
            return &inner.default;
        };
        let Some(method) = call.method() else {
            return &inner.default;
        };
        let (specific, kind) = match call.target() {
            Some(Target::Tool(name)) => (inner.tools.get(name), Some(Kind::Tool)),
            Some(Target::Prompt(name)) => (inner.prompts.get(name), Some(Kind::Prompt)),
            Some(Target::Resource(uri)) => (self.resource_rule(uri), Some(Kind::Resource)),
            Some(Target::Task(_)) => (None, Some(Kind::Task)),
            // The method names a target the body lacks: an unmatched one.
            None => (None, call.unread_target()),
        };
        // A call without its target reaches no target (the server answers
        // it with its own error): `deny`, which closes the targets no rule
        // names, does not decide it.
        let targetless = call.target().is_none();
        specific
            .or_else(|| {
                kind.and_then(|k| inner.unmatched.get(k))
                    .filter(|rule| !(targetless && rule.is_deny()))
            })
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
        let Some(call) = call else {
            return self
                .rule_for(None)
                .authorize(principal, &McpCall::no_call());
        };
        let more = call.more_targets();
        if more.is_empty() {
            return self.rule_for(Some(call)).authorize(principal, call);
        }
        // Several targets: each decided on its own, the refusal naming it.
        let first = call.target().cloned().map(|t| call.with_target(t));
        let each = first
            .into_iter()
            .chain(more.iter().map(|t| call.with_target(t.clone())));
        for one in each {
            if let Err(err) = self.rule_for(Some(&one)).authorize(principal, &one) {
                return Err(name_target(err, &one));
            }
        }
        Ok(())
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

    /// Whether `principal` may get the skill whose `SKILL.md` is at `uri`
    /// (`skills/get`: the resource's rule, else the unmatched resource
    /// rule, else the `skills/get` method rule, else the default).
    #[must_use]
    pub fn may_get_skill(&self, principal: Option<&Principal>, uri: &str) -> bool {
        self.allows(
            principal,
            &McpCall::new("skills/get", Some(Target::Resource(uri.into()))),
        )
    }

    fn allows(&self, principal: Option<&Principal>, call: &McpCall) -> bool {
        self.rule_for(Some(call)).allows(principal, call)
    }

    /// Whether any rule of the policy could allow an anonymous caller
    /// (a [`Rule::public`] alternative anywhere: the default, an unmatched
    /// rule, a tool's, prompt's, resource's, template's or method's). When
    /// none could, [`McpPolicyLayer`](super::McpPolicyLayer) refuses an
    /// anonymous request on what little it reads of the body.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::McpPolicy;
    /// use tower_mcp_auth::Rule;
    ///
    /// let closed = McpPolicy::builder().tool("x", Rule::api_key()).build()?;
    /// assert!(!closed.admits_anonymous());
    /// let open = McpPolicy::builder().tool("hello", Rule::public()).build()?;
    /// assert!(open.admits_anonymous());
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn admits_anonymous(&self) -> bool {
        self.rules().any(|rule| rule.permits(None))
    }

    /// What the list filter has reported about this policy.
    pub(crate) fn gaps(&self) -> &Gaps {
        &self.0.gaps
    }

    /// The rate-limit quotas and per-tool costs the policy carries.
    #[must_use]
    pub fn rate_limits(&self) -> &RateLimits {
        &self.0.rate_limits
    }

    /// The scope hierarchy every rule of the policy accounts for (empty:
    /// none); give it to an [`AuthorizeLayer`](crate::AuthorizeLayer) on a
    /// plain route of the same deployment.
    #[must_use]
    pub fn scope_hierarchy(&self) -> &ScopeHierarchy {
        &self.0.hierarchy
    }

    /// Every scope some rule of the policy names: the resource's
    /// `scopes_supported` (RFC 9728), so that the metadata and the
    /// policy never disagree.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::McpPolicy;
    /// use tower_mcp_auth::{ProtectedResource, Rule};
    ///
    /// let policy = McpPolicy::builder()
    ///     .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
    ///     .tool("delete_user", Rule::api_key().or(Rule::bearer().scopes(["admin:write"])))
    ///     .build()?;
    /// let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
    ///     .scopes_supported(policy.scopes_named().iter())
    ///     .build()?;
    /// assert_eq!(resource.scopes_supported().to_string(), "admin:write read:data");
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn scopes_named(&self) -> Scopes {
        self.rules()
            .fold(Scopes::empty(), |acc, rule| acc.union(&rule.scopes_named()))
    }

    /// Every rule of the policy: the default, the unmatched ones, and
    /// those of each tool, prompt, resource, template and method.
    fn rules(&self) -> impl Iterator<Item = &Rule> {
        let inner = &*self.0;
        let unmatched = [
            &inner.unmatched.tool,
            &inner.unmatched.prompt,
            &inner.unmatched.resource,
        ];
        std::iter::once(&inner.default)
            .chain(unmatched.into_iter().flatten())
            .chain(inner.tools.values())
            .chain(inner.prompts.values())
            .chain(inner.resources.values())
            .chain(inner.templates.iter().map(|(_, rule)| rule))
            .chain(inner.methods.values())
    }
}

/// `err`, its description prefixed with the target it refused (cut to 64
/// characters).
fn name_target(err: AuthError, call: &McpCall) -> AuthError {
    let Some(t) = call.target() else { return err };
    let name: String = t.name().chars().take(64).collect();
    let mut named = AuthError::new(
        err.kind(),
        format!("{} `{name}`: {}", t.kind(), err.description()),
    );
    if let Some(scope) = err.scope() {
        named = named.with_scope(scope.clone());
    }
    named
}

impl McpPolicyBuilder {
    /// The rule for everything no other rule names. Without one, the
    /// default is [`Rule::authenticated`].
    pub fn default(mut self, rule: Rule) -> Self {
        self.default = Some(rule);
        self
    }

    /// The rule for a tool that has no rule of its own (before the
    /// `tools/call` method rule and the default; see the
    /// [`McpPolicy`] docs). [`Rule::deny`] fails closed: a tool added to
    /// the server without a rule, or one whose rule misspells it, is then
    /// called and listed by nobody.
    pub fn unmatched_tool(mut self, rule: Rule) -> Self {
        self.unmatched.tool = Some(rule);
        self
    }

    /// The rule for a prompt that has no rule of its own (`prompts/get`,
    /// completions), before the method rule and the default.
    pub fn unmatched_prompt(mut self, rule: Rule) -> Self {
        self.unmatched.prompt = Some(rule);
        self
    }

    /// The rule for a resource URI that no [`resource`](Self::resource)
    /// rule matches, whichever method names it (`resources/read`,
    /// `resources/subscribe`, `resources/directory/read`, `skills/get`,
    /// `subscriptions/listen`, completions), before the method rule and
    /// the default. Also decides those methods when the body names no URI.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::McpPolicy;
    /// use tower_mcp_auth::Rule;
    /// use tower_mcp_auth::{AuthScheme, Principal};
    ///
    /// let policy = McpPolicy::builder()
    ///     .default(Rule::authenticated())
    ///     .resource("user://{user_id}/private", Rule::bearer())
    ///     .unmatched_resource(Rule::api_key())
    ///     .build()
    ///     .unwrap();
    /// let bearer = Principal::new(AuthScheme::Jwt, "alice");
    /// let key = Principal::new(AuthScheme::ApiKey, "ops");
    /// assert!(policy.may_read_resource(Some(&bearer), "user://42/private"));
    /// // `?` is no part of a `{user_id}`: the URI matches no template.
    /// assert!(!policy.may_read_resource(Some(&bearer), "user://42?/private"));
    /// assert!(policy.may_read_resource(Some(&key), "user://42?/private"));
    /// ```
    pub fn unmatched_resource(mut self, rule: Rule) -> Self {
        self.unmatched.resource = Some(rule);
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

    /// Which template's rule decides a URI that several templates match:
    /// the one the server serves it from ([`TemplatePrecedence`]; the
    /// default, the most specific). For a server that tries its templates
    /// in registration order (tower-mcp), give
    /// [`FirstRegistered`](TemplatePrecedence::FirstRegistered) and the
    /// templates in the server's order, so that a URI is never judged by a
    /// looser rule than the handler that serves it.
    ///
    /// ```
    /// use tower_mcp_auth::{
    ///     mcp::{McpCall, McpPolicy, Target, TemplatePrecedence},
    ///     Rule,
    /// };
    ///
    /// let policy = |precedence| {
    ///     McpPolicy::builder()
    ///         .template_precedence(precedence)
    ///         .resource("notes://{owner}/{name}", Rule::api_key())
    ///         .resource("notes://{owner}/shared", Rule::public())
    ///         .build()
    /// };
    /// let read = McpCall::new(
    ///     "resources/read",
    ///     Some(Target::Resource("notes://ann/shared".into())),
    /// );
    /// // A server that serves `notes://ann/shared` from the first template
    /// // it registered: the API-key rule decides it, not the public one.
    /// let ordered = policy(TemplatePrecedence::FirstRegistered)?;
    /// assert!(ordered.authorize(None, Some(&read)).is_err());
    /// // By default the most specific template's rule decides.
    /// assert!(policy(TemplatePrecedence::MostSpecific)?.authorize(None, Some(&read)).is_ok());
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    pub fn template_precedence(mut self, precedence: TemplatePrecedence) -> Self {
        self.template_precedence = precedence;
        self
    }

    /// The rate-limit quotas and per-tool costs the policy carries (see
    /// [`RateLimits`]).
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// The deployment's scope hierarchy (a broad scope implies narrower
    /// ones), given to every rule of the policy at
    /// [`build`](Self::build) (replacing any a rule carries): every
    /// decision, list filter and step-up refusal of the policy accounts
    /// for it. A policy file's `scopes` table.
    ///
    /// ```
    /// use tower_mcp_auth::{mcp::McpPolicy, AuthScheme, Principal, Rule, ScopeHierarchy, Scopes};
    ///
    /// let policy = McpPolicy::builder()
    ///     .scope_hierarchy(ScopeHierarchy::builder().implies("admin", ["admin:write", "read:data"]).build()?)
    ///     .tool("delete_user", Rule::bearer().scopes(["admin:write"]))
    ///     .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
    ///     .build()?;
    /// let admin = Principal::new(AuthScheme::Jwt, "ann").with_scopes(Scopes::parse("admin"));
    /// assert!(policy.may_call_tool(Some(&admin), "delete_user"));
    /// assert!(policy.may_call_tool(Some(&admin), "get_user_data"));
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    pub fn scope_hierarchy(mut self, hierarchy: ScopeHierarchy) -> Self {
        self.hierarchy = hierarchy;
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
    pub fn build(mut self) -> Result<McpPolicy, ConfigError> {
        let hierarchy = self.hierarchy.clone();
        self.apply_hierarchy(&hierarchy);
        let mut errors = Vec::new();
        let check_rule = |what: &str, rule: &Rule, errors: &mut Vec<String>| {
            errors.extend(rule.errors().iter().map(|e| format!("{what}: {e}")));
        };
        let default = self.default.unwrap_or_else(Rule::authenticated);
        check_rule("default rule", &default, &mut errors);
        let unmatched = self.unmatched;
        for (what, rule) in [
            ("unmatched tool rule", &unmatched.tool),
            ("unmatched prompt rule", &unmatched.prompt),
            ("unmatched resource rule", &unmatched.resource),
        ] {
            if let Some(rule) = rule {
                check_rule(what, rule, &mut errors);
            }
        }
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
        let templates = TemplateIndex::with_precedence(templates, self.template_precedence);
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "invalid MCP policy: {}",
                errors.join("; ")
            )));
        }
        Ok(McpPolicy(Arc::new(Inner {
            default,
            unmatched,
            tools,
            prompts,
            resources,
            templates,
            methods,
            rate_limits: self.rate_limits,
            hierarchy,
            gaps: Gaps::default(),
        })))
    }

    /// Gives `hierarchy` to every rule (before `build` files them).
    fn apply_hierarchy(&mut self, hierarchy: &ScopeHierarchy) {
        let unmatched = [
            &mut self.unmatched.tool,
            &mut self.unmatched.prompt,
            &mut self.unmatched.resource,
        ];
        let rules = (self.default.iter_mut())
            .chain(unmatched.into_iter().flatten())
            .chain(self.tools.iter_mut().map(|(_, r)| r))
            .chain(self.prompts.iter_mut().map(|(_, r)| r))
            .chain(self.resources.iter_mut().map(|(_, r)| r))
            .chain(self.methods.iter_mut().map(|(_, r)| r));
        for rule in rules {
            rule.set_scope_hierarchy(hierarchy.clone());
        }
    }
}

/// The targets the rules name, as the list filter's report reads them.
impl NamedTargets for McpPolicy {
    /// Whether a tool rule names `name` (not an unmatched rule).
    fn names_tool(&self, name: &str) -> bool {
        self.0.tools.contains_key(name)
    }

    /// Whether a prompt rule names `name`.
    fn names_prompt(&self, name: &str) -> bool {
        self.0.prompts.contains_key(name)
    }

    /// Whether a resource rule (an exact URI, or a template that matches)
    /// decides `uri` (a URI, or a template as listed).
    fn names_resource(&self, uri: &str) -> bool {
        self.resource_rule(uri).is_some()
    }

    /// The tools the rules name.
    fn tools_named(&self) -> impl Iterator<Item = &str> {
        self.0.tools.keys().map(String::as_str)
    }

    /// The prompts the rules name.
    fn prompts_named(&self) -> impl Iterator<Item = &str> {
        self.0.prompts.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AuthErrorKind;
    use crate::principal::AuthScheme;

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

    /// MCP 2026-07-28: the policy's scope hierarchy reaches every rule it
    /// holds (tools, templates, unmatched, methods, the default) and each
    /// target of a multi-target call; on the old code `admin` met none.
    #[test]
    fn the_scope_hierarchy_reaches_every_rule() {
        let hierarchy = ScopeHierarchy::builder()
            .implies("admin", ["admin:write", "read:data"])
            .implies("read:data", ["read:profile"])
            .build()
            .unwrap();
        let p = McpPolicy::builder()
            .scope_hierarchy(hierarchy.clone())
            .default(Rule::bearer().scopes(["read:profile"]))
            .tool("delete_user", Rule::bearer().scopes(["admin:write"]))
            .unmatched_tool(Rule::bearer().any_scope(["x", "read:data"]))
            .resource(
                "user://{id}/private",
                Rule::bearer().scopes(["read:profile"]),
            )
            .resource("admin://stats", Rule::bearer().scopes(["admin:write"]))
            .method("logging/setLevel", Rule::bearer().scopes(["admin:write"]))
            .build()
            .unwrap();
        assert_eq!(p.scope_hierarchy(), &hierarchy);
        let admin = jwt("admin");
        let listen = crate::mcp::McpRequest::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["user://1/private","admin://stats"]}}}"#,
        )
        .unwrap()
        .calls()[0]
            .clone();
        for call in [
            tool("delete_user"),
            tool("anything"),
            res("user://1/private"),
            res("admin://stats"),
            McpCall::new("logging/setLevel", None),
            McpCall::new("ping", None),
            listen.clone(),
        ] {
            assert!(p.authorize(Some(&admin), Some(&call)).is_ok(), "{call:?}");
        }
        assert!(p.authorize(Some(&admin), None).is_ok());
        assert!(p.may_call_tool(Some(&admin), "delete_user"));
        assert!(p.may_read_resource(Some(&jwt("read:data")), "user://1/private"));
        // A narrower token is still refused where it should be; the 403
        // names the target's required scope, not `admin`.
        let err = p
            .authorize(Some(&jwt("read:data")), Some(&listen))
            .unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InsufficientScope);
        assert_eq!(err.scope().unwrap().to_string(), "admin:write read:data");
    }

    #[test]
    fn schemes_and_scopes() {
        use AuthErrorKind::*;
        let p = policy();
        let t = tool("get_user_data");
        assert_eq!(kind(&p, Some(&jwt("read:data")), &t), None);
        assert_eq!(kind(&p, None, &t), Some(MissingCredential));
        assert_eq!(kind(&p, Some(&key()), &t), Some(Forbidden));
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
        assert_eq!(kind(&p, Some(&jwt("")), &tool("unknown")), Some(Forbidden));
        assert_eq!(kind(&p, Some(&jwt("")), &McpCall::new("ping", None)), None);
        assert_eq!(
            kind(&p, None, &McpCall::new("ping", None)),
            Some(MissingCredential)
        );
        assert_eq!(
            kind(&p, Some(&jwt("")), &McpCall::new("logging/setLevel", None)),
            Some(Forbidden)
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
            Some(Forbidden)
        );
        // `user://{user_id}/private` (15 literals) beats `user://{user_id}/{section}` (8).
        assert_eq!(
            kind(&p, Some(&jwt("read:data")), &res("user://42/private")),
            None
        );
        assert_eq!(
            kind(&p, Some(&key()), &res("user://42/private")),
            Some(Forbidden)
        );
        assert_eq!(kind(&p, Some(&key()), &res("user://42/public")), None);
        // No template matches → default.
        assert_eq!(kind(&p, Some(&jwt("")), &res("file:///x")), None);
        // A completion names the template itself.
        assert_eq!(
            kind(&p, Some(&key()), &res("user://{user_id}/private")),
            Some(Forbidden)
        );
        assert!(p.may_read_resource(Some(&jwt("read:data")), "user://{id}/private"));
    }

    fn parsed(body: &str) -> McpCall {
        crate::mcp::McpRequest::parse(body.as_bytes())
            .unwrap()
            .calls()[0]
            .clone()
    }

    fn unmatched_policy() -> McpPolicy {
        McpPolicy::builder()
            .default(Rule::authenticated())
            .tool("mine", Rule::bearer())
            .prompt("greet", Rule::public())
            .resource(
                "user://{user_id}/private",
                Rule::bearer().scopes(["read:data"]),
            )
            .resource("admin://system/stats", Rule::api_key())
            .unmatched_tool(Rule::bearer().scopes(["tools:any"]))
            .unmatched_prompt(Rule::api_key())
            .unmatched_resource(Rule::api_key())
            .method("resources/read", Rule::public())
            .method("tools/call", Rule::public())
            .build()
            .unwrap()
    }

    #[test]
    fn unmatched_targets_have_their_own_rule_before_the_method_rule() {
        use AuthErrorKind::*;
        let p = unmatched_policy();
        let reader = jwt("read:data");
        // The issue's URI: `?` is no part of `{user_id}`, so no template
        // matches; before, the default (any caller) decided it.
        assert_eq!(
            kind(&p, Some(&reader), &res("user://user_001?/private")),
            Some(Forbidden)
        );
        assert_eq!(
            kind(&p, Some(&key()), &res("user://user_001?/private")),
            None
        );
        assert_eq!(
            kind(&p, Some(&reader), &res("user://user_001/private")),
            None
        );
        // The unmatched rule comes before the (public) method rule.
        assert_eq!(
            kind(&p, None, &res("file:///etc/passwd")),
            Some(MissingCredential)
        );
        assert_eq!(
            kind(&p, Some(&jwt("")), &tool("other")),
            Some(InsufficientScope)
        );
        assert_eq!(kind(&p, Some(&jwt("tools:any")), &tool("other")), None);
        assert_eq!(kind(&p, Some(&key()), &tool("mine")), Some(Forbidden));
        let prompt = |n: &str| McpCall::new("prompts/get", Some(Target::Prompt(n.into())));
        assert_eq!(kind(&p, None, &prompt("greet")), None);
        assert_eq!(kind(&p, Some(&jwt("")), &prompt("other")), Some(Forbidden));
        // Every method that names a resource meets its rule.
        for method in [
            "resources/subscribe",
            "resources/directory/read",
            "skills/get",
        ] {
            let c = parsed(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"uri":"admin://system/stats"}}}}"#
            ));
            assert_eq!(kind(&p, Some(&reader), &c), Some(Forbidden), "{method}");
            assert_eq!(kind(&p, Some(&key()), &c), None, "{method}");
            let c = parsed(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"uri":"user://7/private"}}}}"#
            ));
            assert_eq!(kind(&p, Some(&reader), &c), None, "{method}");
            assert_eq!(kind(&p, Some(&key()), &c), Some(Forbidden), "{method}");
        }
        // Without an unmatched rule, the method rule and then the default.
        let p = policy();
        assert_eq!(kind(&p, Some(&jwt("")), &res("file:///x")), None);
    }

    #[test]
    fn a_call_without_its_target_is_decided_as_an_unmatched_one() {
        use AuthErrorKind::*;
        let p = unmatched_policy();
        let reader = jwt("read:data");
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"skills/get","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[1]}}}"#,
        ] {
            let c = parsed(body);
            assert_eq!(kind(&p, Some(&reader), &c), Some(Forbidden), "{body}");
            assert_eq!(kind(&p, Some(&key()), &c), None, "{body}");
        }
        // tools/call without a name: the unmatched tool rule.
        let c = parsed(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#);
        assert_eq!(kind(&p, Some(&jwt("")), &c), Some(InsufficientScope));
        // No unmatched rule: the method rule, else the default (as before
        // for a method without target).
        let p = McpPolicy::builder()
            .default(Rule::api_key())
            .method("resources/subscribe", Rule::authenticated())
            .resource("user://{id}/private", Rule::public())
            .build()
            .unwrap();
        let c = parsed(r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe"}"#);
        assert_eq!(kind(&p, Some(&reader), &c), None);
        assert_eq!(kind(&p, None, &c), Some(MissingCredential));
        let c = parsed(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read"}"#);
        assert_eq!(kind(&p, Some(&reader), &c), Some(Forbidden));
        // `deny` for unmatched targets closes targets, not a call without
        // one: the method rule, else the default decides it, and the
        // server answers it with its own error.
        let p = McpPolicy::builder()
            .unmatched_tool(Rule::deny())
            .unmatched_prompt(Rule::deny())
            .build()
            .unwrap();
        let c = parsed(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#);
        assert_eq!(kind(&p, Some(&reader), &c), None);
        assert_eq!(kind(&p, None, &c), Some(MissingCredential));
        let c = parsed(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":7}}"#);
        assert_eq!(kind(&p, Some(&key()), &c), None);
        assert_eq!(kind(&p, Some(&key()), &tool("unnamed")), Some(Forbidden));
    }

    #[test]
    fn every_subscription_must_be_allowed() {
        use AuthErrorKind::*;
        let p = unmatched_policy();
        let listen = |uris: &str| {
            parsed(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{{"notifications":{{"resourceSubscriptions":[{uris}]}}}}}}"#
            ))
        };
        let reader = jwt("read:data");
        let both = listen(r#""user://1/private","user://2/private""#);
        assert_eq!(kind(&p, Some(&reader), &both), None);
        assert_eq!(kind(&p, Some(&key()), &both), Some(Forbidden));
        // One refused target refuses the call, and the refusal names it.
        let mixed = listen(r#""user://1/private","admin://system/stats""#);
        let err = p.authorize(Some(&reader), Some(&mixed)).unwrap_err();
        assert_eq!(err.kind(), Forbidden);
        assert_eq!(
            err.description(),
            "resource `admin://system/stats`: this call requires an API key"
        );
        let err = p
            .authorize(
                Some(&jwt("")),
                Some(&listen(r#""user://1/private","user://2/private""#)),
            )
            .unwrap_err();
        assert_eq!(err.kind(), InsufficientScope);
        assert_eq!(err.scope().unwrap().to_string(), "read:data");
        // No resource subscription: the method rule, else the default.
        let lists_only = parsed(
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true}}}"#,
        );
        assert_eq!(kind(&p, Some(&reader), &lists_only), None);
        assert_eq!(kind(&p, None, &lists_only), Some(MissingCredential));
    }

    #[test]
    fn task_calls_take_their_method_rule_and_checks_see_the_task() {
        // A server whose task ids start with their owner's subject.
        let p = McpPolicy::builder()
            .method(
                "tasks/get",
                Rule::bearer().check(|who, call| {
                    matches!(call.target(), Some(Target::Task(id))
                        if id.starts_with(&format!("{}:", who.name())))
                }),
            )
            .build()
            .unwrap();
        let get = |id: &str| {
            parsed(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{{"taskId":"{id}"}}}}"#
            ))
        };
        assert_eq!(kind(&p, Some(&jwt("")), &get("u:42")), None);
        assert_eq!(
            kind(&p, Some(&jwt("")), &get("mallory:42")),
            Some(AuthErrorKind::Forbidden)
        );
        // Other task methods: the default (authenticated).
        let cancel =
            parsed(r#"{"jsonrpc":"2.0","id":1,"method":"tasks/cancel","params":{"taskId":"x"}}"#);
        assert_eq!(kind(&p, Some(&key()), &cancel), None);
        assert_eq!(
            kind(&p, None, &cancel),
            Some(AuthErrorKind::MissingCredential)
        );
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
                Rule::bearer().check(|p, c| c.target().is_some() && p.subject() == Some("alice")),
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
            (
                McpPolicy::builder().unmatched_resource(Rule::public().scopes(["a"])),
                "unmatched resource rule",
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
