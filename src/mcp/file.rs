//! Policy as data: the policy-file format (TOML or JSON), read into an
//! [`McpPolicy`], each mistake named by its line and its rule.

use std::{collections::HashSet, fmt, path::Path};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::{config::ConfigError, rule::Rule, scope_hierarchy::ScopeHierarchy};

use super::{
    limits::RateLimits,
    policy::{McpPolicy, McpPolicyBuilder},
    template_index::TemplatePrecedence,
    uri_template::UriTemplate,
};

/// The longest name or URI an error message quotes.
const MAX_QUOTED: usize = 64;

/// The format of a policy text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    #[cfg(feature = "toml")]
    Toml,
}

/// Loading a policy from a file.
///
/// # The policy file
///
/// One document, TOML (feature `toml`) or JSON (always), with these
/// members, all optional:
///
/// | member | what | builder method |
/// | --- | --- | --- |
/// | `default` | a rule: everything no other rule names (absent: `"authenticated"`) | [`default`](McpPolicyBuilder::default) |
/// | `tools`, `prompts`, `resources`, `methods` | a table (object) from a name, a URI or RFC 6570 level-1 template, or a JSON-RPC method to a rule | [`tool`](McpPolicyBuilder::tool), [`prompt`](McpPolicyBuilder::prompt), [`resource`](McpPolicyBuilder::resource), [`method`](McpPolicyBuilder::method) |
/// | `unmatched` | a table with `tool`, `prompt`, `resource`: the rules for targets that match no rule of their own | [`unmatched_tool`](McpPolicyBuilder::unmatched_tool), … |
/// | `rate_limit` | `per_minute`, `anonymous_per_minute` (calls a minute, at least 1) and `costs` (a table from a tool to the units a call of it costs, at least 1) | [`rate_limits`](McpPolicyBuilder::rate_limits) ([`RateLimits`]) |
/// | `scopes` | the scope hierarchy: a table from a broad scope to the narrower scopes it implies (`admin = ["admin:write", "read:data"]`), transitive; a cycle is refused, named | [`scope_hierarchy`](McpPolicyBuilder::scope_hierarchy) ([`ScopeHierarchy`]) |
/// | `template_precedence` | `"most_specific"` (absent) or `"first_registered"`: which template decides a URI several match; with `"first_registered"`, the order of `resources` is the registration order | [`template_precedence`](McpPolicyBuilder::template_precedence) ([`TemplatePrecedence`]) |
///
/// A **rule** is one alternative or an array of alternatives (any of
/// them allows the call: [`Rule::or`]). An **alternative** is a scheme
/// name — `"public"`, `"authenticated"`, `"api_key"`, `"bearer"` — or a
/// table `{ scheme = "…", scopes = […], any_scope = […] }`: `scopes`, every
/// one required ([`Rule::scopes`]); `any_scope`, at least one of them
/// ([`Rule::any_scope`]). [`Rule::check`]s are code and have no file form.
/// `"deny"` is [`Rule::deny`]: nobody may make the call, and no list shows
/// the target; it takes no scopes, and in an array it adds nothing
/// (`["deny", "api_key"]` is `"api_key"`).
///
/// A name under `tools` or `prompts` that the server never lists (a typo,
/// `wirte_note` for `write_note`) matches nothing, and the real target
/// then falls to `unmatched` (else the method rule, else `default`): give
/// `unmatched.tool` and `unmatched.prompt` the rule `"deny"` so that such a
/// mistake closes the target instead of opening it. The list filter
/// reports both names, once each (see [list filtering](super#list-filtering)).
///
/// Everything is checked at load, and a mistake is a
/// [`ConfigError::PolicyFile`] naming the line of the rule (TOML: where
/// its value starts; JSON: where it ends) and the rule: a member or field the format does not know, a scheme that is
/// not one of the five, a name given twice, a template that is not level
/// 1, scopes on `"public"` or `"deny"`, an empty `any_scope`, a scope RFC
/// 6749 does not allow, a rule requiring `offline_access`, an empty name, a
/// cycle in `scopes`.
///
/// ```
/// # #[cfg(feature = "toml")] {
/// use tower_mcp_auth::mcp::McpPolicy;
/// use tower_mcp_auth::{AuthScheme, Principal, Scopes};
///
/// let policy = McpPolicy::from_toml(r#"
///     default = "authenticated"
///
///     [tools]
///     get_user_data = { scheme = "bearer", scopes = ["read:data"] }
///     create_admin_user = "api_key"
///     ## An API key, or a bearer token with admin:write.
///     delete_user = ["api_key", { scheme = "bearer", scopes = ["admin:write"] }]
///
///     [resources]
///     "user://{user_id}/private" = { scheme = "bearer", scopes = ["read:data"] }
///
///     [unmatched]
///     resource = "api_key"
///     ## A tool or prompt no rule names: nobody, and not listed.
///     tool = "deny"
///     prompt = "deny"
///
///     ## A token with `admin` holds `admin:write` and `read:data` too.
///     [scopes]
///     admin = ["admin:write", "read:data"]
/// "#)?;
///
/// let admin = Principal::new(AuthScheme::Jwt, "alice").with_scopes(Scopes::parse("admin:write"));
/// assert!(policy.may_call_tool(Some(&admin), "delete_user"));
/// assert!(!policy.may_call_tool(Some(&admin), "create_admin_user"));
/// let root = Principal::new(AuthScheme::Jwt, "root").with_scopes(Scopes::parse("admin"));
/// assert!(policy.may_call_tool(Some(&root), "get_user_data"));
/// assert!(!policy.may_call_tool(Some(&admin), "delete_usr")); // a tool no rule names
/// assert_eq!(policy.scopes_named().to_string(), "admin:write read:data");
///
/// // A mistake names its line and its rule.
/// let err = McpPolicy::from_toml("[tools]\nx = \"api_key\"\ny = { scheme = \"bearr\" }\n")
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "policy:3: tool `y`: unknown scheme `bearr` (expected public, authenticated, api_key, bearer or deny)"
/// );
/// # }
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
///
/// The same policy in JSON (no feature needed):
///
/// ```
/// use tower_mcp_auth::mcp::McpPolicy;
///
/// let policy = McpPolicy::from_json(r#"{
///   "default": "authenticated",
///   "tools": {
///     "get_user_data": { "scheme": "bearer", "scopes": ["read:data"] },
///     "create_admin_user": "api_key",
///     "delete_user": ["api_key", { "scheme": "bearer", "scopes": ["admin:write"] }]
///   },
///   "resources": { "user://{user_id}/private": { "scheme": "bearer", "scopes": ["read:data"] } },
///   "unmatched": { "resource": "api_key", "tool": "deny", "prompt": "deny" },
///   "scopes": { "admin": ["admin:write", "read:data"] }
/// }"#)?;
/// assert_eq!(policy.scopes_named().to_string(), "admin:write read:data");
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
impl McpPolicy {
    /// Reads a policy file: TOML when its name ends in `.toml` (feature
    /// `toml`), else JSON. See [the format](#the-policy-file).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] when the file cannot be read;
    /// [`ConfigError::PolicyFile`] naming the line and the rule of a
    /// mistake; [`ConfigError::Invalid`] for a `.toml` file in a build
    /// without the `toml` feature.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        Self::from_file_text(path, &read_text(path)?)
    }

    /// A policy from `text`, read from `path` (whose name gives the
    /// format, and which errors name).
    pub(super) fn from_file_text(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let format = match path.extension().and_then(|e| e.to_str()) {
            #[cfg(feature = "toml")]
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            #[cfg(not(feature = "toml"))]
            Some(ext) if ext.eq_ignore_ascii_case("toml") => {
                return Err(ConfigError::Invalid(format!(
                    "{}: TOML policy files need the `toml` feature of tower-mcp-auth; enable it or write the policy in JSON",
                    path.display()
                )));
            }
            _ => Format::Json,
        };
        parse(text, format, Some(path))
    }

    /// A policy from JSON text. See [the format](#the-policy-file).
    ///
    /// # Errors
    ///
    /// [`ConfigError::PolicyFile`] naming the line and the rule of a
    /// mistake.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        parse(text, Format::Json, None)
    }

    /// A policy from TOML text. See [the format](#the-policy-file).
    ///
    /// # Errors
    ///
    /// [`ConfigError::PolicyFile`] naming the line and the rule of a
    /// mistake.
    #[cfg(feature = "toml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "toml")))]
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        parse(text, Format::Toml, None)
    }
}

fn parse(text: &str, format: Format, path: Option<&Path>) -> Result<McpPolicy, ConfigError> {
    let error = |line: usize, reason: String| ConfigError::PolicyFile {
        path: path.map(Path::to_path_buf),
        line,
        reason,
    };
    let file: PolicyFile = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            let full = e.to_string();
            let at = format!(" at line {} column {}", e.line(), e.column());
            let reason = full.strip_suffix(&at).unwrap_or(&full).to_owned();
            error(e.line().max(1), reason)
        })?,
        #[cfg(feature = "toml")]
        Format::Toml => toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            error(line, e.message().trim_end().to_owned())
        })?,
    };
    // Every rule was checked as it was read; what is left for `build`
    // (nothing, when the checks above are complete) has no line.
    file.builder.build().map_err(|e| error(1, e.to_string()))
}

/// The 1-based line of byte `offset` of `text`.
#[cfg(feature = "toml")]
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A whole file, read straight into a builder.
struct PolicyFile {
    builder: McpPolicyBuilder,
}

impl<'de> Deserialize<'de> for PolicyFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FileVisitor)
    }
}

const MEMBERS: &[&str] = &[
    "default",
    "tools",
    "prompts",
    "resources",
    "methods",
    "unmatched",
    "rate_limit",
    "template_precedence",
    "scopes",
];

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = PolicyFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a policy: a table of `default`, `tools`, `prompts`, `resources`, `methods`, `unmatched`, `rate_limit`, `template_precedence`, `scopes`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PolicyFile, A::Error> {
        let mut b = McpPolicy::builder();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(refuse(
                    &mut map,
                    format!("`{}` is given twice", quoted(&key)),
                ));
            }
            b = match key.as_str() {
                "default" => b.default(map.next_value_seed(RuleSeed::named("default rule"))?),
                "tools" => map.next_value_seed(Entries {
                    kind: Kind::Tool,
                    b,
                })?,
                "prompts" => map.next_value_seed(Entries {
                    kind: Kind::Prompt,
                    b,
                })?,
                "resources" => map.next_value_seed(Entries {
                    kind: Kind::Resource,
                    b,
                })?,
                "methods" => map.next_value_seed(Entries {
                    kind: Kind::Method,
                    b,
                })?,
                "unmatched" => map.next_value_seed(UnmatchedSeed(b))?,
                "rate_limit" => b.rate_limits(map.next_value::<RateLimits>()?),
                "template_precedence" => {
                    b.template_precedence(map.next_value::<PrecedenceName>()?.into())
                }
                "scopes" => b.scope_hierarchy(map.next_value_seed(HierarchySeed)?),
                other => {
                    let msg = unknown(other, MEMBERS);
                    return Err(map
                        .next_value_seed(Refuse(msg))
                        .err()
                        .unwrap_or_else(|| de::Error::custom("an unknown member")));
                }
            };
        }
        Ok(PolicyFile { builder: b })
    }
}

/// The file's name of a [`TemplatePrecedence`].
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum PrecedenceName {
    MostSpecific,
    FirstRegistered,
}

impl From<PrecedenceName> for TemplatePrecedence {
    fn from(name: PrecedenceName) -> Self {
        match name {
            PrecedenceName::MostSpecific => Self::MostSpecific,
            PrecedenceName::FirstRegistered => Self::FirstRegistered,
        }
    }
}

/// What a table of rules names.
#[derive(Clone, Copy)]
enum Kind {
    Tool,
    Prompt,
    Resource,
    Method,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Prompt => "prompt",
            Self::Resource => "resource",
            Self::Method => "method",
        }
    }
}

/// A table from names to rules, added to the builder.
struct Entries {
    kind: Kind,
    b: McpPolicyBuilder,
}

impl<'de> de::DeserializeSeed<'de> for Entries {
    type Value = McpPolicyBuilder;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Entries {
    type Value = McpPolicyBuilder;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a table from each {} to its rule", self.kind.name())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Self { kind, mut b } = self;
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            let what = format!("{} `{}`", kind.name(), quoted(&name));
            // Raised while the value is read, so the error carries its line.
            let problem = if name.is_empty() {
                Some(format!("a {} name is empty", kind.name()))
            } else if !seen.insert(name.clone()) {
                Some(format!("{what} has two rules"))
            } else if let (Kind::Resource, Err(e)) = (kind, UriTemplate::parse(&name)) {
                Some(format!("{what}: {e}"))
            } else {
                None
            };
            let rule = map.next_value_seed(RuleSeed { what, problem })?;
            b = match kind {
                Kind::Tool => b.tool(name, rule),
                Kind::Prompt => b.prompt(name, rule),
                Kind::Resource => b.resource(name, rule),
                Kind::Method => b.method(name, rule),
            };
        }
        Ok(b)
    }
}

/// The `scopes` table: the scope hierarchy, checked (cycles, scopes) as
/// it is read, so that the error carries the table's line.
struct HierarchySeed;

impl<'de> de::DeserializeSeed<'de> for HierarchySeed {
    type Value = ScopeHierarchy;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HierarchySeed {
    type Value = ScopeHierarchy;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table from each broad scope to the array of narrower scopes it implies")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut b = ScopeHierarchy::builder();
        let mut seen = HashSet::new();
        while let Some(broad) = map.next_key::<String>()? {
            if !seen.insert(broad.clone()) {
                let msg = format!("`scopes.{}` is given twice", quoted(&broad));
                return Err(refuse(&mut map, msg));
            }
            let narrower: Vec<String> = map.next_value()?;
            b = b.implies(broad, narrower);
        }
        b.build().map_err(de::Error::custom)
    }
}

/// The `unmatched` table.
struct UnmatchedSeed(McpPolicyBuilder);

impl<'de> de::DeserializeSeed<'de> for UnmatchedSeed {
    type Value = McpPolicyBuilder;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UnmatchedSeed {
    type Value = McpPolicyBuilder;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of `tool`, `prompt`, `resource`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut b = self.0;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                let msg = format!("`unmatched.{}` is given twice", quoted(&key));
                return Err(refuse(&mut map, msg));
            }
            b = match key.as_str() {
                "tool" => {
                    b.unmatched_tool(map.next_value_seed(RuleSeed::named("unmatched tool rule"))?)
                }
                "prompt" => b.unmatched_prompt(
                    map.next_value_seed(RuleSeed::named("unmatched prompt rule"))?,
                ),
                "resource" => b.unmatched_resource(
                    map.next_value_seed(RuleSeed::named("unmatched resource rule"))?,
                ),
                other => {
                    let msg = unknown(other, &["tool", "prompt", "resource"]);
                    return Err(map
                        .next_value_seed(Refuse(msg))
                        .err()
                        .unwrap_or_else(|| de::Error::custom("an unknown member")));
                }
            };
        }
        Ok(b)
    }
}

/// One rule, read and checked while its value is read (so that the
/// format's error carries the line), its errors naming it.
struct RuleSeed {
    what: String,
    /// A mistake of the rule's name, known before its value is read.
    problem: Option<String>,
}

impl RuleSeed {
    fn named(what: &str) -> Self {
        Self {
            what: what.into(),
            problem: None,
        }
    }

    fn finish<E: de::Error>(self, alts: Vec<AltTable>) -> Result<Rule, E> {
        if let Some(problem) = self.problem {
            return Err(E::custom(problem));
        }
        let what = self.what;
        let alts = alts
            .into_iter()
            .map(AltTable::into_rule)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| E::custom(format_args!("{what}: {e}")))?;
        let rule = Rule::one_of(alts);
        match rule.errors().first() {
            Some(e) => Err(E::custom(format_args!("{what}: {e}"))),
            None => Ok(rule),
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for RuleSeed {
    type Value = Rule;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Rule, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RuleSeed {
    type Value = Rule;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rule: a scheme, a table { scheme, scopes, any_scope }, or an array of them")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Rule, E> {
        self.finish(vec![AltTable::scheme(v.to_owned())])
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Rule, A::Error> {
        let alt = AltTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.finish(vec![alt])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rule, A::Error> {
        let mut alts = Vec::new();
        while let Some(Alt(alt)) = seq.next_element()? {
            alts.push(alt);
        }
        self.finish(alts)
    }
}

/// One alternative as written, in its table form (a scheme name alone is
/// a table without scopes).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AltTable {
    scheme: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    any_scope: Option<Vec<String>>,
}

impl AltTable {
    fn scheme(scheme: String) -> Self {
        Self {
            scheme,
            scopes: Vec::new(),
            any_scope: None,
        }
    }

    fn into_rule(self) -> Result<Rule, String> {
        let mut rule = match self.scheme.as_str() {
            "public" => Rule::public(),
            "authenticated" => Rule::authenticated(),
            "api_key" => Rule::api_key(),
            "bearer" => Rule::bearer(),
            "deny" => Rule::deny(),
            other => {
                return Err(format!(
                    "unknown scheme `{}` (expected public, authenticated, api_key, bearer or deny)",
                    quoted(other)
                ))
            }
        };
        if !self.scopes.is_empty() {
            rule = rule.scopes(self.scopes);
        }
        if let Some(any) = self.any_scope {
            rule = rule.any_scope(any);
        }
        Ok(rule)
    }
}

/// An alternative in either form (a scheme name, or a table).
struct Alt(AltTable);

impl<'de> Deserialize<'de> for Alt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AltVisitor).map(Alt)
    }
}

struct AltVisitor;

impl<'de> Visitor<'de> for AltVisitor {
    type Value = AltTable;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scheme (\"public\", \"authenticated\", \"api_key\", \"bearer\", \"deny\") or a table { scheme, scopes, any_scope }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AltTable, E> {
        Ok(AltTable::scheme(v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AltTable, A::Error> {
        AltTable::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

/// serde's "unknown field" message.
fn unknown(field: &str, expected: &[&str]) -> String {
    let list: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    format!(
        "unknown field `{}`, expected one of {}",
        quoted(field),
        list.join(", ")
    )
}

/// The error `msg`, raised while the map's next value is read.
fn refuse<'de, A: MapAccess<'de>>(map: &mut A, msg: String) -> A::Error {
    match map.next_value_seed(Refuse(msg)) {
        Err(e) => e,
        Ok(()) => de::Error::custom("a value was refused"),
    }
}

/// Refuses whatever value it is given, with its message, while the value
/// is read (so that the format's error carries the value's line).
struct Refuse(String);

impl<'de> de::DeserializeSeed<'de> for Refuse {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Refuse {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(self.0))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.0))
    }
}

/// `s`, cut to [`MAX_QUOTED`] characters.
fn quoted(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_QUOTED).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// A file's text, or the error [`McpPolicy::from_file`] gives.
pub(super) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{AuthScheme, Principal, Scopes};

    fn jwt(scopes: &str) -> Principal {
        Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse(scopes))
    }

    fn key() -> Principal {
        Principal::new(AuthScheme::ApiKey, "svc")
    }

    const JSON: &str = r#"{
  "default": "api_key",
  "tools": {
    "read": { "scheme": "bearer", "scopes": ["read:data"] },
    "either": { "scheme": "bearer", "any_scope": ["a", "b"] },
    "delete": ["api_key", { "scheme": "bearer", "scopes": ["admin:write"] }],
    "open": "public"
  },
  "prompts": { "greet": "authenticated" },
  "resources": { "user://{id}/private": { "scheme": "bearer", "scopes": ["read:data"] } },
  "methods": { "logging/setLevel": "api_key" },
  "unmatched": { "resource": "api_key", "tool": { "scheme": "bearer", "scopes": ["tools:any"] } },
  "rate_limit": { "per_minute": 30, "anonymous_per_minute": 5, "costs": { "read": 4 } }
}"#;

    #[test]
    fn a_json_policy_decides_as_its_code_twin() {
        let file = McpPolicy::from_json(JSON).unwrap();
        let code = McpPolicy::builder()
            .default(Rule::api_key())
            .tool("read", Rule::bearer().scopes(["read:data"]))
            .tool("either", Rule::bearer().any_scope(["a", "b"]))
            .tool(
                "delete",
                Rule::api_key().or(Rule::bearer().scopes(["admin:write"])),
            )
            .tool("open", Rule::public())
            .prompt("greet", Rule::authenticated())
            .resource("user://{id}/private", Rule::bearer().scopes(["read:data"]))
            .method("logging/setLevel", Rule::api_key())
            .unmatched_resource(Rule::api_key())
            .unmatched_tool(Rule::bearer().scopes(["tools:any"]))
            .rate_limits(RateLimits {
                per_minute: std::num::NonZeroU32::new(30),
                anonymous_per_minute: std::num::NonZeroU32::new(5),
                tool_costs: [("read".to_owned(), std::num::NonZeroU32::new(4).unwrap())].into(),
            })
            .build()
            .unwrap();
        assert_eq!(file.rate_limits(), code.rate_limits());
        let who = [
            None,
            Some(key()),
            Some(jwt("")),
            Some(jwt("read:data")),
            Some(jwt("a")),
            Some(jwt("admin:write")),
            Some(jwt("tools:any")),
        ];
        for p in &who {
            let p = p.as_ref();
            for tool in ["read", "either", "delete", "open", "other"] {
                assert_eq!(
                    file.may_call_tool(p, tool),
                    code.may_call_tool(p, tool),
                    "{tool} {p:?}"
                );
            }
            for uri in ["user://1/private", "file:///etc/passwd"] {
                assert_eq!(
                    file.may_read_resource(p, uri),
                    code.may_read_resource(p, uri)
                );
            }
            assert_eq!(
                file.may_get_prompt(p, "greet"),
                code.may_get_prompt(p, "greet")
            );
        }
        assert_eq!(file.scopes_named(), code.scopes_named());
        assert_eq!(
            file.scopes_named().to_string(),
            "a admin:write b read:data tools:any"
        );
    }

    fn json_err(text: &str) -> String {
        McpPolicy::from_json(text).unwrap_err().to_string()
    }

    #[test]
    fn json_mistakes_name_the_line_and_the_rule() {
        let cases = [
            (
                "{\n\"tools\": {\n\"a\": \"api_key\",\n\"b\": { \"scheme\": \"bearr\" }\n}\n}",
                "policy:4: tool `b`: unknown scheme `bearr` (expected public, authenticated, api_key, bearer or deny)",
            ),
            (
                "{\n\"tools\": {\n\"a\": \"public\",\n\"a\": \"api_key\"\n}\n}",
                "policy:4: tool `a` has two rules",
            ),
            (
                "{\n\"resources\": {\n\"u://{+x}\": \"api_key\"\n}\n}",
                "policy:3: resource `u://{+x}`: ",
            ),
            (
                "{\n\"tools\": {\n\"t\": { \"scheme\": \"public\", \"scopes\": [\"a\"] }\n}\n}",
                "policy:3: tool `t`: Rule::public() takes no scopes",
            ),
            (
                "{\n\"tools\": {\n\"t\": { \"scheme\": \"bearer\", \"any_scope\": [] }\n}\n}",
                "policy:3: tool `t`: Rule::any_scope([]) can never be satisfied",
            ),
            (
                "{\n\"tools\": {\n\"t\": { \"scheme\": \"bearer\", \"scopes\": [\"a\\\"b\"] }\n}\n}",
                "policy:3: tool `t`: scope \"a\\\"b\" has characters RFC 6749",
            ),
            (
                "{\n\"tools\": {\n\"t\": { \"scheme\": \"bearer\", \"scope\": [\"a\"] }\n}\n}",
                "policy:3: unknown field `scope`, expected one of `scheme`, `scopes`, `any_scope`",
            ),
            ("{\n\"tool\": {}\n}", "policy:2: unknown field `tool`"),
            ("{\n\"default\": []\n}", "policy:2: default rule: a rule needs at least one alternative"),
            (
                "{\n\"unmatched\": { \"resource\": \"bearer\", \"tools\": \"api_key\" }\n}",
                "policy:2: unknown field `tools`, expected one of `tool`, `prompt`, `resource`",
            ),
            ("{\n\"tools\": {\n\"\": \"api_key\"\n}\n}", "policy:3: a tool name is empty"),
            ("{\n\"tools\": 7\n}", "policy:2: invalid type: integer `7`"),
            (
                "{\n\"tools\": {},\n\"tools\": {}\n}",
                "policy:3: `tools` is given twice",
            ),
            ("{\n\"tools\": {", "policy:2: EOF while parsing"),
            (
                "{\n\"rate_limit\": {\n\"costs\": { \"t\": 0 }\n}\n}",
                "policy:3: invalid value: integer `0`, expected a nonzero u32",
            ),
            (
                "{\n\"rate_limit\": {\n\"per_minut\": 5\n}\n}",
                "policy:3: unknown field `per_minut`",
            ),
        ];
        for (text, want) in cases {
            let err = json_err(text);
            assert!(err.starts_with(want), "want {want:?}\n got {err:?}");
        }
    }

    /// MCP 2026-07-28: the `scopes` table is the policy's scope
    /// hierarchy (an unknown member before).
    #[test]
    fn the_scopes_table_is_the_scope_hierarchy() {
        let p = McpPolicy::from_json(
            r#"{
              "tools": {
                "delete_user": { "scheme": "bearer", "scopes": ["admin:write"] },
                "profile": { "scheme": "bearer", "scopes": ["read:profile"] }
              },
              "scopes": { "admin": ["admin:write", "read:data"], "read:data": ["read:profile"] }
            }"#,
        )
        .unwrap();
        let admin = jwt("admin");
        assert!(p.may_call_tool(Some(&admin), "delete_user"));
        assert!(p.may_call_tool(Some(&admin), "profile"));
        assert!(p.may_call_tool(Some(&jwt("read:data")), "profile"));
        assert!(!p.may_call_tool(Some(&jwt("read:data")), "delete_user"));
        assert!(p.scope_hierarchy().grants("admin", "read:profile"));
        // The hierarchy is no list of scopes a rule names.
        assert_eq!(p.scopes_named().to_string(), "admin:write read:profile");
        for (text, want) in [
            (
                "{\n\"scopes\": {\n\"a\": [\"b\"],\n\"b\": [\"c\"],\n\"c\": [\"a\"]\n}\n}",
                "policy:6: scope hierarchy: a cycle: a → b → c → a",
            ),
            (
                "{\n\"scopes\": {\n\"a\": [\"b\"],\n\"a\": [\"c\"]\n}\n}",
                "policy:4: `scopes.a` is given twice",
            ),
            (
                "{\n\"scopes\": {\n\"a\": \"b\"\n}\n}",
                "policy:3: invalid type: string \"b\", expected a sequence",
            ),
            (
                "{\n\"scopes\": {\n\"a\": [\"b c\"]\n}\n}",
                "policy:4: scope hierarchy: scope \"b c\" has characters",
            ),
            (
                "{\n\"tools\": {\n\"t\": { \"scheme\": \"bearer\", \"scopes\": [\"offline_access\"] }\n}\n}",
                "policy:3: tool `t`: a rule cannot require `offline_access`",
            ),
        ] {
            let err = json_err(text);
            assert!(err.starts_with(want), "want {want:?}\n got {err:?}");
        }
    }

    #[cfg(feature = "toml")]
    #[test]
    fn the_scopes_table_in_toml_and_its_cycle_line() {
        let p = McpPolicy::from_toml(
            "[tools]\ndelete_user = { scheme = \"bearer\", scopes = [\"admin:write\"] }\n\n[scopes]\nadmin = [\"admin:write\", \"read:data\"]\n",
        )
        .unwrap();
        assert!(p.may_call_tool(Some(&jwt("admin")), "delete_user"));
        let err =
            McpPolicy::from_toml("[tools]\nt = \"api_key\"\n[scopes]\na = [\"b\"]\nb = [\"a\"]\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("policy:3: scope hierarchy: a cycle: a → b → a"),
            "{err}"
        );
    }

    #[test]
    fn a_file_error_names_the_file() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("tma-policy-{}.json", std::process::id()));
        std::fs::write(&path, "{\n\"methods\": { \"x\": \"nobody\" }\n}").unwrap();
        let err = McpPolicy::from_file(&path).unwrap_err();
        assert!(
            matches!(err, ConfigError::PolicyFile { line: 2, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: method `x`: unknown scheme `nobody` (expected public, authenticated, api_key, bearer or deny)",
                path.display()
            )
        );
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            McpPolicy::from_file(&path).unwrap_err(),
            ConfigError::Io { .. }
        ));
    }

    /// `"deny"`: nobody, in JSON and TOML alike; adds nothing to an array;
    /// takes no scopes.
    #[test]
    fn deny_in_a_file() {
        use crate::error::AuthErrorKind;
        let json = McpPolicy::from_json(
            r#"{ "tools": { "write_note": "api_key", "off": "deny", "either": ["deny", "api_key"] },
                 "unmatched": { "tool": "deny", "prompt": "deny" } }"#,
        )
        .unwrap();
        let mut all = vec![key(), jwt("a b read:data admin:write")];
        all.push(Principal::new(AuthScheme::Introspection, "i"));
        for p in &all {
            for tool in ["off", "wirte_note", "anything"] {
                assert!(!json.may_call_tool(Some(p), tool), "{tool} {p:?}");
            }
            assert!(!json.may_get_prompt(Some(p), "any_prompt"));
        }
        assert!(json.may_call_tool(Some(&key()), "write_note"));
        assert!(json.may_call_tool(Some(&key()), "either"));
        assert!(!json.may_call_tool(Some(&jwt("")), "either"));
        let call = super::super::inspect::McpCall::new(
            "tools/call",
            Some(super::super::inspect::Target::Tool("off".into())),
        );
        for who in [None, Some(&key())] {
            let err = json.authorize(who, Some(&call)).unwrap_err();
            assert_eq!(err.kind(), AuthErrorKind::Forbidden);
        }
        let err =
            json_err("{\n\"tools\": {\n\"t\": { \"scheme\": \"deny\", \"scopes\": [\"a\"] }\n}\n}");
        assert!(
            err.starts_with("policy:3: tool `t`: Rule::deny() takes no scopes"),
            "{err}"
        );
        #[cfg(feature = "toml")]
        {
            let toml = McpPolicy::from_toml(
                "[tools]\nwrite_note = \"api_key\"\noff = \"deny\"\n[unmatched]\ntool = \"deny\"\n",
            )
            .unwrap();
            for p in &all {
                for tool in ["write_note", "off", "wirte_note"] {
                    assert_eq!(
                        toml.may_call_tool(Some(p), tool),
                        json.may_call_tool(Some(p), tool)
                    );
                }
            }
        }
    }

    #[cfg(not(feature = "toml"))]
    #[test]
    fn a_toml_file_without_the_feature_says_what_to_do() {
        let path = std::env::temp_dir().join(format!("tma-no-toml-{}.toml", std::process::id()));
        std::fs::write(&path, "default = \"api_key\"\n").unwrap();
        let err = McpPolicy::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("need the `toml` feature"), "{err}");
        std::fs::remove_file(path).unwrap();
    }

    /// `template_precedence`: the file's order of `resources` is the
    /// registration order (the broad template first, though it sorts
    /// after the specific one), and a bad value names its line.
    #[test]
    fn template_precedence_follows_the_files_order() {
        use super::super::inspect::{McpCall, Target};
        let read = McpCall::new(
            "resources/read",
            Some(Target::Resource("notes://ann/shared".into())),
        );
        let json = |precedence: &str| {
            McpPolicy::from_json(&format!(
                r#"{{ {precedence}
  "resources": {{
    "notes://{{owner}}/{{name}}": "api_key",
    "notes://{{owner}}/shared": "public"
  }}
}}"#
            ))
            .unwrap()
        };
        let ordered = json(r#""template_precedence": "first_registered","#);
        assert!(ordered.authorize(None, Some(&read)).is_err());
        assert!(json("").authorize(None, Some(&read)).is_ok());
        assert!(json(r#""template_precedence": "most_specific","#)
            .authorize(None, Some(&read))
            .is_ok());
        let err = McpPolicy::from_json("{\n\"template_precedence\": \"first\"\n}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":2:") && err.contains("first_registered"),
            "{err}"
        );
        #[cfg(feature = "toml")]
        {
            let toml = McpPolicy::from_toml(
                "template_precedence = \"first_registered\"\n[resources]\n\"notes://{owner}/{name}\" = \"api_key\"\n\"notes://{owner}/shared\" = \"public\"\n",
            )
            .unwrap();
            assert!(toml.authorize(None, Some(&read)).is_err());
        }
    }

    #[cfg(feature = "toml")]
    #[test]
    fn toml_reads_as_json_does_and_names_lines() {
        let toml = r#"
default = "api_key"
[tools]
read = { scheme = "bearer", scopes = ["read:data"] }
either = { scheme = "bearer", any_scope = ["a", "b"] }
delete = ["api_key", { scheme = "bearer", scopes = ["admin:write"] }]
open = "public"
[prompts]
greet = "authenticated"
[resources]
"user://{id}/private" = { scheme = "bearer", scopes = ["read:data"] }
[methods]
"logging/setLevel" = "api_key"
[unmatched]
resource = "api_key"
tool = { scheme = "bearer", scopes = ["tools:any"] }
[rate_limit]
per_minute = 30
anonymous_per_minute = 5
costs = { read = 4 }
"#;
        let t = McpPolicy::from_toml(toml).unwrap();
        let j = McpPolicy::from_json(JSON).unwrap();
        assert_eq!(t.rate_limits(), j.rate_limits());
        assert_eq!(t.scopes_named(), j.scopes_named());
        for p in [None, Some(key()), Some(jwt("read:data")), Some(jwt("b"))] {
            for tool in ["read", "either", "delete", "open", "other"] {
                assert_eq!(
                    t.may_call_tool(p.as_ref(), tool),
                    j.may_call_tool(p.as_ref(), tool)
                );
            }
        }
        let err = |text: &str| McpPolicy::from_toml(text).unwrap_err().to_string();
        for (text, want) in [
            (
                "[tools]\na = \"api_key\"\nb = { scheme = \"bearr\" }\n",
                "policy:3: tool `b`: unknown scheme `bearr`",
            ),
            (
                "[tools]\na = \"api_key\"\n\n[resources]\n\"u://{+x}\" = \"api_key\"\n",
                "policy:5: resource `u://{+x}`",
            ),
            (
                "[tools]\na = \"api_key\"\nb = { scheme = \"bearer\", scope = [\"x\"] }\n",
                "policy:3: unknown field `scope`",
            ),
            (
                "default = \"api_key\"\n[tool]\na = \"api_key\"\n",
                "policy:2: unknown field `tool`",
            ),
            ("[tools]\na = \"api_key\"\na = \"bearer\"\n", "policy:3: "),
            ("[tools\n", "policy:1: "),
        ] {
            let got = err(text);
            assert!(got.starts_with(want), "want {want:?}\n got {got:?}");
        }
    }
}
