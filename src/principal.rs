//! Who is calling: [`Principal`], its [`AuthScheme`] and its [`Scopes`].

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use http::request::Parts;
use serde_json::{Map, Value};

/// How a [`Principal`] proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// An API key (`X-API-Key` or `Authorization: ApiKey …`).
    ApiKey,
    /// A bearer access token that is a JWT, verified locally.
    Jwt,
    /// A bearer access token verified by RFC 7662 introspection.
    Introspection,
    /// A scheme of your own ([`AuthScheme::custom`]): a client
    /// certificate, a signed header, a session cookie.
    Custom(CustomScheme),
}

/// The name and kind of a scheme of your own; see [`AuthScheme::custom`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CustomScheme {
    name: &'static str,
    bearer: bool,
}

impl AuthScheme {
    /// A scheme of your own, for the principals an
    /// [`Authenticator`](crate::authenticate::Authenticator) of yours
    /// makes: its `name` (the audit events' `scheme` and `layer`, so a
    /// short snake_case word such as `mtls`), and whether its credential is
    /// an OAuth bearer token (`Authorization: Bearer`), which decides how
    /// it chains with the other bearer authenticators.
    ///
    /// ```
    /// use tower_mcp_auth::AuthScheme;
    ///
    /// let mtls = AuthScheme::custom("mtls", false);
    /// assert_eq!(mtls.as_str(), "mtls");
    /// assert!(!mtls.is_bearer());
    /// ```
    #[must_use]
    pub const fn custom(name: &'static str, bearer: bool) -> Self {
        Self::Custom(CustomScheme { name, bearer })
    }

    /// `true` for the OAuth bearer-token schemes ([`Jwt`](Self::Jwt),
    /// [`Introspection`](Self::Introspection), and a custom one made as
    /// such).
    #[must_use]
    pub fn is_bearer(self) -> bool {
        match self {
            Self::Jwt | Self::Introspection => true,
            Self::ApiKey => false,
            Self::Custom(c) => c.bearer,
        }
    }

    /// A short, stable name for logs and metrics: `api_key`, `jwt`,
    /// `introspection`, or a custom scheme's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
            Self::Introspection => "introspection",
            Self::Custom(c) => c.name,
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scope a client asks for to get a refresh token: not a permission
/// of a resource, so the MCP authorization specification (2026-07-28)
/// says servers SHOULD NOT list it in `scopes_supported` or a challenge's
/// `scope`. This crate drops it from both.
pub(crate) const OFFLINE_ACCESS: &str = "offline_access";

/// Which kind of identity a [`Principal`] is: a subject, or an OAuth
/// client acting on its own behalf.
///
/// The two are kept apart so that a client named `user_001` (a
/// client-credentials token, which has no `sub`) is never the user whose
/// `sub` is `user_001`: [`Principal::subject`] is `None` for a client, and
/// [`Principal::identity_key`] (what sessions, quotas and audit key by)
/// names the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrincipalKind {
    /// A subject the credential names: a token's `sub` (for
    /// introspection, `sub`, else `username`), an API key's name, a
    /// custom scheme's subject.
    Subject,
    /// An OAuth client acting for itself (client credentials): a token
    /// without `sub`, named by its `client_id` (or, for a JWT, `azp`).
    Client,
}

impl PrincipalKind {
    /// A short, stable name for logs and keys: `subject` or `client`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Client => "client",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of OAuth scopes.
///
/// Parsed from a space-separated `scope` string (RFC 6749 §3.3), a JSON
/// array or string (`scp`), or built from an iterator. Kept sorted and
/// de-duplicated; cloning is cheap.
///
/// ```
/// use tower_mcp_auth::Scopes;
///
/// let scopes = Scopes::parse("write:data  read:data read:data");
/// assert_eq!(scopes.len(), 2);
/// assert_eq!(scopes.to_string(), "read:data write:data");
/// assert!(scopes.contains_all(["read:data"]));
///
/// let from_json = Scopes::from_json(&serde_json::json!(["admin", "read:data"])).unwrap();
/// assert!(from_json.contains("admin"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(Arc<[Box<str>]>);

impl Scopes {
    /// The empty set.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a space-separated list (RFC 6749 §3.3). Runs of white space
    /// and duplicates are ignored.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        s.split_ascii_whitespace().collect()
    }

    /// Reads scopes from a JSON claim: a space-separated string (`scope`) or
    /// an array of strings (`scp`). `None` for any other shape.
    #[must_use]
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(Self::parse(s)),
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str())
                .collect::<Option<Vec<_>>>()
                .map(|v| {
                    v.into_iter()
                        .flat_map(str::split_ascii_whitespace)
                        .collect()
                }),
            _ => None,
        }
    }

    /// Whether `scope` is in the set.
    #[must_use]
    pub fn contains(&self, scope: &str) -> bool {
        self.0.binary_search_by(|s| (**s).cmp(scope)).is_ok()
    }

    /// Whether every one of `required` is in the set (true for none).
    pub fn contains_all<I>(&self, required: I) -> bool
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        required.into_iter().all(|s| self.contains(s.as_ref()))
    }

    /// Whether at least one of `candidates` is in the set (false for none).
    pub fn contains_any<I>(&self, candidates: I) -> bool
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        candidates.into_iter().any(|s| self.contains(s.as_ref()))
    }

    /// Whether the two sets share a scope.
    #[must_use]
    pub fn intersects(&self, other: &Scopes) -> bool {
        let (small, large) = if self.len() <= other.len() {
            (self, other)
        } else {
            (other, self)
        };
        small.iter().any(|s| large.contains(s))
    }

    /// The set without `scope` (the same set, no copy, when it lacks it).
    #[must_use]
    pub(crate) fn without(&self, scope: &str) -> Scopes {
        if self.contains(scope) {
            self.iter().filter(|s| *s != scope).collect()
        } else {
            self.clone()
        }
    }

    /// The scopes of `self` that are missing from `granted`.
    #[must_use]
    pub fn missing_from(&self, granted: &Scopes) -> Scopes {
        self.iter().filter(|s| !granted.contains(s)).collect()
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(&self, other: &Scopes) -> Scopes {
        self.iter().chain(other.iter()).collect()
    }

    /// The scopes, in sorted order. `for scope in &scopes` does the same.
    pub fn iter(&self) -> ScopesIter<'_> {
        ScopesIter(self.0.iter())
    }

    /// How many scopes there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut v: Vec<Box<str>> = iter
            .into_iter()
            .flat_map(|s| {
                s.as_ref()
                    .split_ascii_whitespace()
                    .map(Box::<str>::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        Self(v.into())
    }
}

/// Borrows the scopes of a [`Scopes`], in sorted order: `for scope in &scopes`,
/// or [`Scopes::iter`].
#[derive(Clone, Debug)]
pub struct ScopesIter<'a>(std::slice::Iter<'a, Box<str>>);

impl<'a> Iterator for ScopesIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.0.next().map(|s| &**s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for ScopesIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|s| &**s)
    }
}

impl ExactSizeIterator for ScopesIter<'_> {}

impl std::iter::FusedIterator for ScopesIter<'_> {}

impl<'a> IntoIterator for &'a Scopes {
    type Item = &'a str;
    type IntoIter = ScopesIter<'a>;

    fn into_iter(self) -> ScopesIter<'a> {
        self.iter()
    }
}

/// The scopes of a [`Scopes`] taken by value, in sorted order, as owned
/// `String`s (the set is shared, so each one is copied out): what
/// `scopes_supported(policy.scopes_named())` iterates.
#[derive(Clone, Debug)]
pub struct ScopesIntoIter {
    scopes: Scopes,
    front: usize,
    back: usize,
}

impl Iterator for ScopesIntoIter {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.front == self.back {
            return None;
        }
        let scope = String::from(&*self.scopes.0[self.front]);
        self.front += 1;
        Some(scope)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for ScopesIntoIter {
    fn next_back(&mut self) -> Option<String> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        Some(String::from(&*self.scopes.0[self.back]))
    }
}

impl ExactSizeIterator for ScopesIntoIter {}

impl std::iter::FusedIterator for ScopesIntoIter {}

impl IntoIterator for Scopes {
    type Item = String;
    type IntoIter = ScopesIntoIter;

    fn into_iter(self) -> ScopesIntoIter {
        let back = self.len();
        ScopesIntoIter {
            scopes: self,
            front: 0,
            back,
        }
    }
}

impl fmt::Display for Scopes {
    /// Space separated, as in a `scope` parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// The authenticated caller of one request.
///
/// Inserted into the request extensions by an authentication layer
/// ([`ApiKeyLayer`](crate::api_key::ApiKeyLayer), the JWT or introspection layers).
/// Cloning is cheap (one reference count).
///
/// # As an axum extractor
///
/// `Principal` refuses the request with `401` and a `WWW-Authenticate`
/// challenge when no layer authenticated it; `Option<Principal>` never
/// refuses.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_mcp_auth::Principal;
///
/// async fn me(principal: Principal) -> String {
///     format!("hello {}", principal.name())
/// }
///
/// async fn maybe(principal: Option<Principal>) -> String {
///     principal.map_or("anonymous".into(), |p| p.name().to_owned())
/// }
///
/// let app: Router = Router::new().route("/me", get(me)).route("/hi", get(maybe));
/// ```
///
/// # In an rmcp tool
///
/// rmcp hands the request's [`http::request::Parts`] to tools; the principal
/// is in their extensions:
///
/// ```
/// use tower_mcp_auth::Principal;
///
/// fn caller(parts: &http::request::Parts) -> Option<&Principal> {
///     Principal::from_parts(parts)
/// }
/// ```
///
/// Authentication layers insert exactly one [`Principal`] into the request
/// extensions; everything after them (scope checks, the MCP policy, the rate
/// limiter, your handlers and rmcp tools) reads it from there.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::{AuthScheme, Principal, Scopes};
///
/// let principal = Principal::new(AuthScheme::Jwt, "user-42")
///     .with_scopes(Scopes::parse("read:data write:data"))
///     .with_client_id("my-client");
///
/// assert_eq!(principal.subject(), Some("user-42"));
/// assert!(principal.scopes().contains("read:data"));
/// assert!(principal.scheme().is_bearer());
///
/// // A client acting for itself is not the user of the same name.
/// let client = Principal::client(AuthScheme::Jwt, "user-42");
/// assert_eq!(client.subject(), None);
/// assert_eq!(client.client_id(), Some("user-42"));
/// assert_ne!(client.identity_key(), principal.identity_key());
/// ```
///
/// # Identity
///
/// Who the caller is, for anything kept per caller, is the
/// [`identity_key`](Self::identity_key): the scheme, the issuer, the
/// [kind](PrincipalKind) and the name (the subject or the client id). Two
/// authorization servers' users with the same `sub`, or a client and a
/// user with the same name, never share a session, a quota or a profile
/// keyed by it. [`subject`](Self::subject) alone is not an identity across
/// issuers.
#[derive(Clone, PartialEq)]
pub struct Principal(Arc<Inner>);

#[derive(Clone, PartialEq)]
struct Inner {
    scheme: AuthScheme,
    kind: PrincipalKind,
    /// The subject, or the client id of a client identity.
    name: Box<str>,
    issuer: Option<Box<str>>,
    /// scheme, issuer, kind and name in one injective string; shared, so a
    /// rate-limit key can hold it without a copy.
    identity: Arc<str>,
    scopes: Scopes,
    client_id: Option<String>,
    expires_at: Option<SystemTime>,
    claims: Option<Arc<Map<String, Value>>>,
    cnf_jkt: Option<Box<str>>,
    #[cfg(feature = "token-exchange")]
    token_digest: TokenDigest,
}

/// The SHA-256 digest of the access token a bearer authenticator of this
/// crate verified the principal from: the key it computed for its own
/// cache, carried so that the token exchange keys its cache by it without
/// hashing the token again. Crate-private; not part of who the caller is,
/// so equality ignores it.
#[cfg(feature = "token-exchange")]
#[derive(Clone, Copy, Default)]
struct TokenDigest(Option<[u8; 32]>);

#[cfg(feature = "token-exchange")]
impl PartialEq for TokenDigest {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `<len>:<scheme>:<kind>:<-|len:issuer>:<name>`: every field but the
/// last is length-prefixed or fixed, so no two identities share a key.
fn identity_key(
    scheme: AuthScheme,
    kind: PrincipalKind,
    issuer: Option<&str>,
    name: &str,
) -> Arc<str> {
    let scheme = scheme.as_str();
    let issuer = match issuer {
        None => "-".to_owned(),
        Some(iss) => format!("{}:{iss}", iss.len()),
    };
    Arc::from(format!(
        "{}:{scheme}:{}:{issuer}:{name}",
        scheme.len(),
        kind.as_str()
    ))
}

impl Principal {
    /// A principal with a scheme and a subject ([`PrincipalKind::Subject`]),
    /// and no scopes.
    #[must_use]
    pub fn new(scheme: AuthScheme, subject: impl Into<String>) -> Self {
        Self::of_kind(scheme, PrincipalKind::Subject, subject.into())
    }

    /// An OAuth client acting on its own behalf
    /// ([`PrincipalKind::Client`]): a token without `sub`, such as a
    /// client-credentials grant's. It has no [`subject`](Self::subject);
    /// its [`client_id`](Self::client_id) is `client_id`.
    #[must_use]
    pub fn client(scheme: AuthScheme, client_id: impl Into<String>) -> Self {
        let client_id = client_id.into();
        let mut p = Self::of_kind(scheme, PrincipalKind::Client, client_id.clone());
        Arc::make_mut(&mut p.0).client_id = Some(client_id);
        p
    }

    fn of_kind(scheme: AuthScheme, kind: PrincipalKind, name: String) -> Self {
        Self(Arc::new(Inner {
            scheme,
            kind,
            identity: identity_key(scheme, kind, None, &name),
            name: name.into_boxed_str(),
            issuer: None,
            scopes: Scopes::empty(),
            client_id: None,
            expires_at: None,
            claims: None,
            cnf_jkt: None,
            #[cfg(feature = "token-exchange")]
            token_digest: TokenDigest::default(),
        }))
    }

    /// Sets who issued the credential (a token's `iss`; for introspection,
    /// the answer's `iss`, else the introspection endpoint). Part of the
    /// [`identity_key`](Self::identity_key).
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        let inner = Arc::make_mut(&mut self.0);
        inner.issuer = Some(issuer.into().into_boxed_str());
        inner.identity = identity_key(
            inner.scheme,
            inner.kind,
            inner.issuer.as_deref(),
            &inner.name,
        );
        self
    }

    /// Sets the granted scopes.
    #[must_use]
    pub fn with_scopes(mut self, scopes: Scopes) -> Self {
        Arc::make_mut(&mut self.0).scopes = scopes;
        self
    }

    /// Sets the OAuth client the token was issued to (`client_id` / `azp`).
    #[must_use]
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.0).client_id = Some(client_id.into());
        self
    }

    /// Sets when the credential expires.
    #[must_use]
    pub fn with_expires_at(mut self, expires_at: SystemTime) -> Self {
        Arc::make_mut(&mut self.0).expires_at = Some(expires_at);
        self
    }

    /// Keeps the raw claims of the token (JWT payload or introspection
    /// response).
    #[must_use]
    pub fn with_claims(mut self, claims: Map<String, Value>) -> Self {
        Arc::make_mut(&mut self.0).claims = Some(Arc::new(claims));
        self
    }

    /// Sets the key the access token is bound to: its `cnf.jkt`
    /// (RFC 9449 §6), the JWK SHA-256 thumbprint of the client's DPoP key.
    #[must_use]
    pub fn with_cnf_jkt(mut self, jkt: impl Into<Box<str>>) -> Self {
        Arc::make_mut(&mut self.0).cnf_jkt = Some(jkt.into());
        self
    }

    /// Records the SHA-256 digest of the access token this principal was
    /// verified from (the authenticator's cache key). Free when the
    /// principal was just made (its only reference).
    #[cfg(feature = "token-exchange")]
    pub(crate) fn with_token_digest(mut self, digest: [u8; 32]) -> Self {
        Arc::make_mut(&mut self.0).token_digest = TokenDigest(Some(digest));
        self
    }

    /// The SHA-256 digest of the access token this principal was verified
    /// from, when its authenticator computed one.
    #[cfg(feature = "token-exchange")]
    pub(crate) fn token_digest(&self) -> Option<&[u8; 32]> {
        self.0.token_digest.0.as_ref()
    }

    /// The key the access token is bound to (`cnf.jkt`, RFC 9449 §6), read
    /// by the JWT and introspection verifiers from the token's claims or
    /// the introspection response: `Some` for a DPoP-bound token, which a
    /// DPoP layer accepts only with a proof signed by that key.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthScheme, Principal};
    ///
    /// let p = Principal::new(AuthScheme::Jwt, "alice").with_cnf_jkt("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    /// assert_eq!(p.cnf_jkt(), Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
    /// ```
    #[must_use]
    pub fn cnf_jkt(&self) -> Option<&str> {
        self.0.cnf_jkt.as_deref()
    }

    /// How the caller authenticated.
    #[must_use]
    pub fn scheme(&self) -> AuthScheme {
        self.0.scheme
    }

    /// The subject: the token's `sub` (for introspection, `sub`, else
    /// `username`), the API key's name, a custom scheme's subject. `None`
    /// for a [client identity](PrincipalKind::Client): a token without
    /// `sub` names no user, and its client id is never taken for one.
    ///
    /// A subject is unique within its issuer only: key per-caller state by
    /// [`identity_key`](Self::identity_key).
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        match self.0.kind {
            PrincipalKind::Subject => Some(&self.0.name),
            PrincipalKind::Client => None,
        }
    }

    /// Which kind of identity this is: a subject or a client.
    #[must_use]
    pub fn kind(&self) -> PrincipalKind {
        self.0.kind
    }

    /// Who issued the credential, when known (see
    /// [`with_issuer`](Self::with_issuer)); `None` for API keys and for
    /// tokens without `iss`.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.0.issuer.as_deref()
    }

    /// The name to show: the [subject](Self::subject), or a client
    /// identity's client id. For display and logs only: a client and a
    /// user may share a name, and two issuers a subject. Key per-caller
    /// state by [`identity_key`](Self::identity_key).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The identity, as one stable string: the scheme, the
    /// [issuer](Self::issuer), the [kind](Self::kind) and the
    /// [name](Self::name), encoded so that two principals have the same
    /// key exactly when all four are equal. Session and handle bindings,
    /// quotas and audit events key by it; so should a tool's per-caller
    /// state.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthScheme, Principal};
    ///
    /// let a = Principal::new(AuthScheme::Jwt, "alice").with_issuer("https://a.example.com");
    /// let b = Principal::new(AuthScheme::Jwt, "alice").with_issuer("https://b.example.com");
    /// assert_ne!(a.identity_key(), b.identity_key());
    /// assert_eq!(a.identity_key(), "3:jwt:subject:21:https://a.example.com:alice");
    /// ```
    #[must_use]
    pub fn identity_key(&self) -> &str {
        &self.0.identity
    }

    /// The [`identity_key`](Self::identity_key), shared: a reference
    /// count, no copy (for a key that outlives the request, such as a rate
    /// limiter's).
    #[must_use]
    pub fn shared_identity_key(&self) -> Arc<str> {
        self.0.identity.clone()
    }

    /// The granted scopes.
    #[must_use]
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// The OAuth client id, when the credential names one.
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// When the credential expires, when known.
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }

    /// Whether the credential has expired at `now` (never, when no expiry
    /// is known).
    #[must_use]
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.0.expires_at.is_some_and(|exp| exp <= now)
    }

    /// Seconds until expiry, when known and in the future.
    #[must_use]
    pub fn expires_in(&self) -> Option<Duration> {
        self.0
            .expires_at
            .and_then(|exp| exp.duration_since(SystemTime::now()).ok())
    }

    /// The raw claims of the token, when the scheme has any.
    #[must_use]
    pub fn claims(&self) -> Option<&Map<String, Value>> {
        self.0.claims.as_deref()
    }

    /// One raw claim by name.
    #[must_use]
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().and_then(|c| c.get(name))
    }

    /// The principal that an authentication layer put into these request
    /// parts (what rmcp hands to a tool), if any.
    #[must_use]
    pub fn from_parts(parts: &Parts) -> Option<&Principal> {
        parts.extensions.get::<Principal>()
    }

    /// The principal in a request's extensions, if any.
    #[must_use]
    pub fn from_extensions(extensions: &http::Extensions) -> Option<&Principal> {
        extensions.get::<Principal>()
    }
}

impl fmt::Debug for Principal {
    /// Never prints the raw claims: only who, how, and what was granted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("scheme", &self.0.scheme)
            .field("kind", &self.0.kind)
            .field("issuer", &self.0.issuer)
            .field("name", &self.0.name)
            .field("scopes", &self.0.scopes)
            .field("client_id", &self.0.client_id)
            .field("expires_at", &self.0.expires_at)
            .field("cnf_jkt", &self.0.cnf_jkt)
            .finish_non_exhaustive()
    }
}

/// The confirmation methods ([RFC 7800] `cnf` members) this crate checks
/// itself: `jkt` (RFC 9449 DPoP, by the DPoP layer).
///
/// [RFC 7800]: https://www.rfc-editor.org/rfc/rfc7800
#[cfg(any(feature = "jwt", feature = "introspection"))]
pub(crate) const CHECKED_CONFIRMATION_METHODS: [&str; 1] = ["jkt"];

/// The refusal of a token bound by a method nobody here checks.
#[cfg(any(feature = "jwt", feature = "introspection"))]
pub(crate) const UNCHECKED_CONFIRMATION: &str =
    "the token is bound by a confirmation method (cnf) this server does not check";

/// The `cnf.jkt` of a token's claims (or introspection response): `None`
/// without `cnf` or without `jkt` in it.
///
/// A `cnf` member other than `jkt` and those in `allowed` (a confirmation
/// method checked elsewhere, such as RFC 8705's `x5t#S256` by a TLS
/// terminator) is a binding this stack cannot verify: the token is
/// refused, never taken as a plain bearer token.
///
/// # Errors
///
/// A fixed description when `cnf` is not an object, `jkt` not a non-empty
/// string of at most 128 bytes, or `cnf` names a method not checked.
#[cfg(any(feature = "jwt", feature = "introspection"))]
pub(crate) fn cnf_jkt<'a>(
    claims: &'a Map<String, Value>,
    allowed: &[Box<str>],
) -> Result<Option<&'a str>, &'static str> {
    /// The longest `cnf.jkt` read (a SHA-256 thumbprint is 43 characters).
    const MAX_JKT_LEN: usize = 128;
    const MALFORMED: &str = "the token's cnf claim is malformed";
    match claims.get("cnf") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(cnf)) => {
            if cnf.keys().any(|method| {
                !CHECKED_CONFIRMATION_METHODS.contains(&method.as_str())
                    && !allowed.iter().any(|a| **a == **method)
            }) {
                return Err(UNCHECKED_CONFIRMATION);
            }
            match cnf.get("jkt") {
                None => Ok(None),
                Some(Value::String(jkt)) if !jkt.is_empty() && jkt.len() <= MAX_JKT_LEN => {
                    Ok(Some(jkt))
                }
                Some(_) => Err(MALFORMED),
            }
        }
        Some(_) => Err(MALFORMED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Issue 25 item 5: `Scopes` iterates as the obvious line expects,
    /// borrowed (`&str`) and by value (`String`, what
    /// `scopes_supported(policy.scopes_named())` takes).
    #[test]
    fn scopes_iterate_borrowed_and_owned() {
        let scopes = Scopes::parse("write:data read:data admin");
        let mut seen = Vec::new();
        for scope in &scopes {
            seen.push(scope);
        }
        assert_eq!(seen, ["admin", "read:data", "write:data"]);
        assert_eq!((&scopes).into_iter().next_back(), Some("write:data"));
        assert_eq!(scopes.iter().len(), 3);

        let owned: Vec<String> = scopes.clone().into_iter().collect();
        assert_eq!(owned, ["admin", "read:data", "write:data"]);
        let mut it = scopes.into_iter();
        assert_eq!(it.len(), 3);
        assert_eq!(it.next_back().as_deref(), Some("write:data"));
        assert_eq!(it.next().as_deref(), Some("admin"));
        assert_eq!(it.next().as_deref(), Some("read:data"));
        assert_eq!(it.next(), None);
        assert_eq!(it.next_back(), None);
        assert_eq!(Scopes::empty().into_iter().next(), None);
    }

    #[cfg(any(feature = "jwt", feature = "introspection"))]
    #[test]
    fn cnf_jkt_shapes() {
        let c = |v: Value| v.as_object().unwrap().clone();
        let none: &[Box<str>] = &[];
        let x5t: &[Box<str>] = &["x5t#S256".into()];
        assert_eq!(cnf_jkt(&c(json!({})), none), Ok(None));
        assert_eq!(cnf_jkt(&c(json!({"cnf": {}})), none), Ok(None));
        // Issue 23 6b: a binding nobody here checks is refused, unless
        // allowed (checked elsewhere).
        for unchecked in [
            json!({"cnf": {"x5t#S256": "a"}}),
            json!({"cnf": {"jwk": {"kty": "EC"}}}),
            json!({"cnf": {"jkt": "abc", "x5t#S256": "a"}}),
        ] {
            assert_eq!(cnf_jkt(&c(unchecked), none), Err(UNCHECKED_CONFIRMATION));
        }
        assert_eq!(
            cnf_jkt(&c(json!({"cnf": {"x5t#S256": "a"}})), x5t),
            Ok(None)
        );
        assert_eq!(
            cnf_jkt(&c(json!({"cnf": {"jkt": "abc", "x5t#S256": "a"}})), x5t),
            Ok(Some("abc"))
        );
        assert_eq!(
            cnf_jkt(&c(json!({"cnf": {"jkt": "abc"}})), none),
            Ok(Some("abc"))
        );
        for bad in [
            json!({"cnf": "abc"}),
            json!({"cnf": {"jkt": 1}}),
            json!({"cnf": {"jkt": ""}}),
            json!({"cnf": {"jkt": "a".repeat(129)}}),
        ] {
            assert!(cnf_jkt(&c(bad), none).is_err());
        }
    }

    #[test]
    fn scopes_parse_sorts_and_dedups() {
        let s = Scopes::parse("  b a\tb  c ");
        assert_eq!(s.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(s.to_string(), "a b c");
        assert_eq!(Scopes::parse(&s.to_string()), s, "round trip");
        assert!(Scopes::parse("").is_empty());
    }

    #[test]
    fn scopes_from_json_shapes() {
        assert_eq!(
            Scopes::from_json(&json!("read write")).unwrap(),
            Scopes::parse("read write")
        );
        assert_eq!(
            Scopes::from_json(&json!(["read", "write"])).unwrap(),
            Scopes::parse("read write")
        );
        assert!(Scopes::from_json(&json!(["read", 1])).is_none());
        assert!(Scopes::from_json(&json!(7)).is_none());
        assert!(Scopes::from_json(&json!({"a": 1})).is_none());
    }

    #[test]
    fn scopes_set_operations() {
        let granted = Scopes::parse("read:data");
        let required = Scopes::parse("read:data write:data");
        assert!(!granted.contains_all(required.iter()));
        assert!(granted.contains_any(required.iter()));
        assert!(granted.contains_all(Vec::<&str>::new()));
        assert!(!granted.contains_any(Vec::<&str>::new()));
        assert_eq!(required.missing_from(&granted), Scopes::parse("write:data"));
        assert!(required.intersects(&granted) && granted.intersects(&required));
        assert!(!granted.intersects(&Scopes::parse("a z")));
        assert!(!Scopes::empty().intersects(&granted));
        assert_eq!(required.without("read:data"), Scopes::parse("write:data"));
        assert_eq!(required.without("x"), required);
        assert_eq!(granted.union(&required), required);
    }

    /// Issue 23 6e: a client and a user of the same name, and one subject
    /// at two issuers, are four identities.
    #[test]
    fn identities_keep_kind_issuer_and_scheme_apart() {
        let user = Principal::new(AuthScheme::Jwt, "user_001");
        let client = Principal::client(AuthScheme::Jwt, "user_001");
        assert_eq!(user.subject(), Some("user_001"));
        assert_eq!(client.subject(), None);
        assert_eq!(client.client_id(), Some("user_001"));
        assert_eq!((user.name(), client.name()), ("user_001", "user_001"));
        assert_eq!(client.kind(), PrincipalKind::Client);
        let a = user.clone().with_issuer("https://a.example.com");
        let b = user.clone().with_issuer("https://b.example.com");
        let keys = [
            user.shared_identity_key(),
            client.shared_identity_key(),
            a.shared_identity_key(),
            b.shared_identity_key(),
            Principal::new(AuthScheme::Introspection, "user_001").shared_identity_key(),
            // A name or issuer that looks like the encoding changes nothing.
            Principal::new(AuthScheme::Jwt, "2:a:b").shared_identity_key(),
            Principal::new(AuthScheme::Jwt, "b")
                .with_issuer("a")
                .shared_identity_key(),
        ];
        for (i, x) in keys.iter().enumerate() {
            for y in &keys[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(a.issuer(), Some("https://a.example.com"));
        assert_eq!(&*a.shared_identity_key(), a.identity_key());
        assert_eq!(
            Principal::new(AuthScheme::ApiKey, "ops").identity_key(),
            "7:api_key:subject:-:ops"
        );
    }

    #[test]
    fn principal_builders_and_debug_hides_claims() {
        let mut claims = Map::new();
        claims.insert("secret_claim".into(), json!("hush"));
        let p = Principal::new(AuthScheme::Jwt, "alice")
            .with_scopes(Scopes::parse("a"))
            .with_client_id("cli")
            .with_expires_at(SystemTime::UNIX_EPOCH + Duration::from_secs(10))
            .with_claims(claims);
        assert_eq!(p.client_id(), Some("cli"));
        assert_eq!(p.claim("secret_claim"), Some(&json!("hush")));
        assert!(p.is_expired_at(SystemTime::now()));
        assert!(p.expires_in().is_none());
        let dbg = format!("{p:?}");
        assert!(dbg.contains("alice") && !dbg.contains("hush"), "{dbg}");
        assert!(!AuthScheme::ApiKey.is_bearer());
        assert_eq!(AuthScheme::Introspection.to_string(), "introspection");
    }
}
