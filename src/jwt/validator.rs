//! [`JwtValidator`]: checks one token and turns its claims into a
//! [`Principal`].

use std::{
    borrow::Cow,
    fmt,
    str::FromStr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use jsonwebtoken::{errors::ErrorKind, Algorithm, Validation};
use secrecy::SecretString;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

#[cfg(feature = "jwks")]
use super::jwks::{JwksOptions, JwksSource, RemoteJwks};
use super::{
    cache::{self, TokenCache},
    keys::{JwtKey, KeySet, Lookup},
};
#[cfg(test)]
use crate::principal::PrincipalKind;
use crate::{
    config::ConfigError,
    error::AuthError,
    metadata::ProtectedResource,
    principal::{AuthScheme, Principal, Scopes},
    url::Audience,
};

/// Default cap on a token's size, checked before any parsing.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default clock-skew leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest leeway the builder accepts.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Why a token was not accepted.
///
/// [`is_not_jwt`](Self::is_not_jwt) tells a token that is not a JWT at all
/// (an opaque token, for a later introspection layer) from a JWT that
/// failed verification. Converts into an [`AuthError`]: 401
/// `invalid_token`, or 503 when no keys could ever be fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtError {
    kind: JwtErrorKind,
    description: Cow<'static, str>,
    retry_after: Option<Duration>,
}

/// What kind of [`JwtError`] it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtErrorKind {
    /// The token is not shaped like a JWT (its first segment is not a
    /// base64url JSON object and it does not have three segments).
    NotAJwt,
    /// A JWT that failed a check (signature, algorithm, claims, size).
    Invalid,
    /// The keys needed to decide could not be fetched, or the token names
    /// a key that is not known yet and the key set may not be fetched
    /// again yet (503 with `Retry-After`). Remote keys only (feature
    /// `jwks`): a validator of local keys always decides.
    Unavailable,
}

impl JwtError {
    fn invalid(description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: JwtErrorKind::Invalid,
            description: description.into(),
            retry_after: None,
        }
    }

    fn not_jwt() -> Self {
        Self {
            kind: JwtErrorKind::NotAJwt,
            description: "the bearer token is not a JWT".into(),
            retry_after: None,
        }
    }

    #[cfg(feature = "jwks")]
    fn unavailable() -> Self {
        Self {
            kind: JwtErrorKind::Unavailable,
            description: "the token signing keys are not available yet".into(),
            retry_after: None,
        }
    }

    /// The token names a key that is not in the key set, and the set may
    /// be fetched again in `wait`: cannot decide yet (a key rotation the
    /// server has not seen), so not a bad token.
    #[cfg(feature = "jwks")]
    fn key_not_known_yet(wait: Duration) -> Self {
        Self {
            kind: JwtErrorKind::Unavailable,
            description: "the token's signing key is not known yet; retry later".into(),
            retry_after: Some(wait),
        }
    }

    /// The kind.
    #[must_use]
    pub fn kind(&self) -> JwtErrorKind {
        self.kind
    }

    /// Whether the token is not a JWT at all (an opaque token).
    #[must_use]
    pub fn is_not_jwt(&self) -> bool {
        self.kind == JwtErrorKind::NotAJwt
    }

    /// The short, safe description (never contains the token).
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// How long until the validator may be able to decide, for an
    /// [`Unavailable`](JwtErrorKind::Unavailable) error that knows it (a
    /// key not known yet: the time until the key set may be fetched
    /// again).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl std::error::Error for JwtError {}

impl From<JwtError> for AuthError {
    fn from(e: JwtError) -> Self {
        match e.kind {
            JwtErrorKind::Unavailable => AuthError::unavailable(e.description)
                .with_retry_after(e.retry_after.unwrap_or(Duration::from_secs(5))),
            JwtErrorKind::NotAJwt | JwtErrorKind::Invalid => {
                AuthError::invalid_token(e.description)
            }
        }
    }
}

type ClaimCheck = dyn Fn(&Map<String, Value>) -> Result<(), Cow<'static, str>> + Send + Sync;

/// Checks bearer JWTs. Built once with [`JwtValidator::builder`]; cloning is
/// one reference count. See the [module docs](super) for what is checked.
#[derive(Clone)]
pub struct JwtValidator(Arc<Inner>);

struct Inner {
    keys: KeySet,
    #[cfg(feature = "jwks")]
    remote: Option<RemoteJwks>,
    validations: Vec<(Algorithm, Validation)>,
    /// The accepted audiences, each with its RFC 3986 normal form.
    audiences: Box<[Audience]>,
    issuers: Vec<String>,
    leeway: u64,
    require_at_jwt: bool,
    claim_checks: Vec<Arc<ClaimCheck>>,
    confirmation_methods: Vec<Box<str>>,
    max_token_bytes: usize,
    cache: Option<TokenCache>,
}

/// The result of the synchronous part of a check.
pub(crate) enum Step {
    Done(Result<Principal, JwtError>),
    /// The keys must be fetched (never fetched, or an unknown `kid` and a
    /// refetch is allowed now).
    #[cfg(feature = "jwks")]
    Fetch,
}

impl JwtValidator {
    /// A builder whose audience is the resource's identifier (RFC 8707; the
    /// MCP authorization spec requires the token's `aud` to name this
    /// server). Only the identifier is taken: refusals get the resource's
    /// challenge from [`ProtectedResourceLayer`](crate::ProtectedResourceLayer).
    pub fn builder(resource: &ProtectedResource) -> JwtValidatorBuilder {
        let mut b = JwtValidatorBuilder::new();
        b.default_audience = Some(resource.resource().to_owned());
        b
    }

    /// A builder with no audience yet: call
    /// [`audience`](JwtValidatorBuilder::audience) before `build`.
    pub fn builder_without_resource() -> JwtValidatorBuilder {
        JwtValidatorBuilder::new()
    }

    /// Verifies a token, fetching remote keys when needed.
    ///
    /// # Errors
    ///
    /// A [`JwtError`]: not a JWT, invalid, or keys unavailable.
    pub async fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        match self.try_verify(token) {
            Step::Done(r) => r,
            #[cfg(feature = "jwks")]
            Step::Fetch => self.verify_after_fetch(token).await,
        }
    }

    /// Fetches the remote key set now (single flight with other fetches),
    /// for example at startup to fail fast. Does nothing without a remote
    /// JWKS.
    ///
    /// # Errors
    ///
    /// [`JwtErrorKind::Unavailable`] when the fetch failed (the last good
    /// keys, if any, stay in use).
    #[cfg(feature = "jwks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    pub async fn refresh_keys(&self) -> Result<(), JwtError> {
        match &self.0.remote {
            Some(r) => r.refresh_now().await.map_err(|_| JwtError::unavailable()),
            None => Ok(()),
        }
    }

    /// How many times remote keys were fetched (0 without a remote JWKS).
    #[cfg(feature = "jwks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    #[must_use]
    pub fn jwks_fetch_count(&self) -> u64 {
        self.0.remote.as_ref().map_or(0, RemoteJwks::fetch_count)
    }

    /// The most a token may weigh, in bytes.
    #[must_use]
    pub fn max_token_bytes(&self) -> usize {
        self.0.max_token_bytes
    }

    #[cfg(feature = "jwks")]
    pub(crate) async fn verify_after_fetch(&self, token: &str) -> Result<Principal, JwtError> {
        if let Some(remote) = &self.0.remote {
            remote.refetch().await;
        }
        match self.check(token, true) {
            Step::Done(r) => r,
            // Still missing after the one allowed fetch.
            Step::Fetch => Err(self.missing_key_error()),
        }
    }

    #[cfg(feature = "jwks")]
    fn missing_key_error(&self) -> JwtError {
        match &self.0.remote {
            Some(r) if r.current().is_none() => JwtError::unavailable(),
            _ => JwtError::invalid("the token's signing key is unknown"),
        }
    }

    /// The synchronous part: size, cache, header, key lookup, verification.
    pub(crate) fn try_verify(&self, token: &str) -> Step {
        self.check(token, false)
    }

    /// As [`try_verify`](Self::try_verify); `fetched`: the key set was
    /// just fetched for this token, so a `kid` still unknown is unknown
    /// (401), where before a fetch it is "not known yet" (503 with
    /// `Retry-After` until a fetch is allowed) — unless the token was
    /// issued before the last successful fetch (`iat` plus the leeway not
    /// after its start): then the set it lacks is newer than the token,
    /// and the key is unknown (401) without a fetch.
    #[cfg_attr(not(feature = "jwks"), allow(unused_variables))]
    fn check(&self, token: &str, fetched: bool) -> Step {
        let inner = &*self.0;
        if token.len() > inner.max_token_bytes {
            return Step::Done(Err(JwtError::invalid("the token is too large")));
        }
        #[cfg(feature = "jwks")]
        if let Some(remote) = &inner.remote {
            remote.ensure_refresher();
        }
        #[cfg(feature = "jwks")]
        let generation = inner.remote.as_ref().map_or(0, RemoteJwks::generation);
        #[cfg(not(feature = "jwks"))]
        let generation = 0; // local keys never change
        let digest = inner.cache.as_ref().map(|_| cache::digest(token));
        if let (Some(c), Some(d)) = (&inner.cache, &digest) {
            if let Some(p) = c.get(d, generation) {
                return Step::Done(Ok(p));
            }
        }
        let header = match parse_header(token) {
            Ok(h) => h,
            Err(e) => return Step::Done(Err(e)),
        };
        if inner.require_at_jwt
            && !header.typ.as_deref().is_some_and(|t| {
                t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
            })
        {
            return Step::Done(Err(JwtError::invalid(
                "the token is not an access token (typ must be at+jwt)",
            )));
        }
        let kid = header.kid.as_deref();
        let key = match inner.keys.lookup(kid, header.alg) {
            Lookup::Found(k) => Some(k.clone()),
            #[cfg(not(feature = "jwks"))]
            Lookup::Unknown => None,
            #[cfg(feature = "jwks")]
            Lookup::Unknown => match &inner.remote {
                None => None,
                Some(remote) => match remote.current() {
                    None => return Step::Fetch,
                    Some(loaded) => match loaded.keys.lookup(kid, header.alg) {
                        Lookup::Found(k) => Some(k.clone()),
                        Lookup::Unknown if kid.is_none() || fetched => None,
                        // Issued before a fetch whose set lacks the key:
                        // the key has left the set; no fetch brings it back.
                        Lookup::Unknown
                            if unverified_iat(token).is_some_and(|iat| {
                                remote.fetched_since(iat.saturating_add(inner.leeway))
                            }) =>
                        {
                            None
                        }
                        Lookup::Unknown => match remote.refetch_in() {
                            Duration::ZERO => return Step::Fetch,
                            wait => {
                                return Step::Done(Err(JwtError::key_not_known_yet(wait)));
                            }
                        },
                    },
                },
            },
        };
        let Some(key) = key else {
            return Step::Done(Err(JwtError::invalid("the token's signing key is unknown")));
        };
        let result = self.verify_with(token, &key, &header);
        if let (Ok(p), Some(c), Some(d)) = (&result, &inner.cache, digest) {
            c.insert(d, p, generation);
        }
        Step::Done(result)
    }

    fn verify_with(
        &self,
        token: &str,
        key: &JwtKey,
        header: &Header,
    ) -> Result<Principal, JwtError> {
        let inner = &*self.0;
        if key.algorithm() != header.alg {
            return Err(JwtError::invalid(
                "the token's algorithm does not match its key",
            ));
        }
        let validation = inner
            .validations
            .iter()
            .find(|(a, _)| *a == header.alg)
            .map(|(_, v)| v)
            .ok_or_else(|| JwtError::invalid("the token's algorithm is not supported"))?;
        let data = jsonwebtoken::decode::<StrictObject>(token, key.decoding_key(), validation)
            .map_err(|e| map_error(e.kind()))?;
        let claims = data.claims.0;
        self.principal_from_claims(key, claims)
    }

    fn principal_from_claims(
        &self,
        key: &JwtKey,
        claims: Map<String, Value>,
    ) -> Result<Principal, JwtError> {
        let inner = &*self.0;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let exp = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or_else(|| JwtError::invalid("the token's exp claim is missing or not a number"))?;
        // An exp beyond what SystemTime holds (i64 seconds on Unix) would
        // overflow the principal's expiry: refuse it rather than panic.
        let expires_at = UNIX_EPOCH
            .checked_add(Duration::from_secs(exp))
            .ok_or_else(|| JwtError::invalid("the token's exp claim is out of range"))?;
        if let Some(iat) = claims.get("iat") {
            let iat = numeric_date(iat)
                .ok_or_else(|| JwtError::invalid("the token's iat claim is not a number"))?;
            if iat > now.saturating_add(inner.leeway) {
                return Err(JwtError::invalid("the token was issued in the future"));
            }
        }
        if let Some(nbf) = claims.get("nbf") {
            numeric_date(nbf)
                .ok_or_else(|| JwtError::invalid("the token's nbf claim is not a number"))?;
        }
        // `aud` names this resource when one of its values is an accepted
        // audience up to RFC 3986 normalisation (jsonwebtoken, which
        // compares exactly, only checks that it is there).
        let named = |aud: &str| Audience::any_named_by(&inner.audiences, aud);
        let for_us = match claims.get("aud") {
            Some(Value::String(aud)) => named(aud),
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str().is_some_and(named)),
            _ => return Err(JwtError::invalid("the token has no audience")),
        };
        if !for_us {
            return Err(JwtError::invalid("the token is not for this resource"));
        }
        // The key's own issuer wins over the validator's list. jsonwebtoken
        // would accept an array; RFC 7519 says a string.
        let trusted: &[String] = match key.issuer() {
            Some(iss) => std::slice::from_ref(iss),
            None => &inner.issuers,
        };
        if !trusted.is_empty() {
            match claims.get("iss") {
                Some(Value::String(iss)) if trusted.iter().any(|i| i == iss) => {}
                None | Some(Value::Null) => {
                    return Err(JwtError::invalid("the token has no issuer"))
                }
                _ => return Err(JwtError::invalid("the token's issuer is not trusted")),
            }
        }
        let string_claim = |name: &'static str| -> Result<Option<&str>, JwtError> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(JwtError::invalid(format!(
                    "the token's {name} claim is not a string"
                ))),
            }
        };
        let client_id = match string_claim("client_id")? {
            Some(c) => Some(c),
            None => string_claim("azp")?,
        };
        let issuer = string_claim("iss")?;
        // A token without `sub` is a client acting for itself, never a
        // user of the same name.
        let mut principal = match (string_claim("sub")?, client_id) {
            (Some(sub), _) if !sub.is_empty() => Principal::new(AuthScheme::Jwt, sub),
            (None, Some(client)) if !client.is_empty() => {
                Principal::client(AuthScheme::Jwt, client)
            }
            _ => return Err(JwtError::invalid("the token has no subject")),
        };
        let scopes = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) => Scopes::parse(s),
            (Some(_), _) => {
                return Err(JwtError::invalid("the token's scope claim is not a string"))
            }
            (None, Some(scp)) => Scopes::from_json(scp).ok_or_else(|| {
                JwtError::invalid("the token's scp claim is not a string or array of strings")
            })?,
            (None, None) => Scopes::empty(),
        };
        let jkt = crate::principal::cnf_jkt(&claims, &inner.confirmation_methods)
            .map_err(JwtError::invalid)?;
        for check in &inner.claim_checks {
            check(&claims).map_err(JwtError::invalid)?;
        }
        principal = principal.with_scopes(scopes).with_expires_at(expires_at);
        if let Some(c) = client_id {
            principal = principal.with_client_id(c);
        }
        if let Some(iss) = issuer {
            principal = principal.with_issuer(iss);
        }
        if let Some(jkt) = jkt {
            principal = principal.with_cnf_jkt(jkt);
        }
        Ok(principal.with_claims(claims))
    }

    #[cfg(test)]
    pub(crate) fn cache_entries(&self) -> u64 {
        self.0.cache.as_ref().map_or(0, TokenCache::entry_count)
    }
}

impl fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.0;
        let mut d = f.debug_struct("JwtValidator");
        d.field("static_keys", &inner.keys.len());
        #[cfg(feature = "jwks")]
        d.field("remote_jwks", &inner.remote.is_some());
        d.field("issuers", &inner.issuers)
            .field("leeway_secs", &inner.leeway)
            .field("require_at_jwt", &inner.require_at_jwt)
            .field("claim_checks", &inner.claim_checks.len())
            .field("max_token_bytes", &inner.max_token_bytes)
            .field("token_cache", &inner.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// `NumericDate` (RFC 7519 §2): a non-negative JSON number of seconds.
fn numeric_date(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

/// The `iat` of a token's payload, read without verifying it (for
/// choosing between "unknown key" and "not known yet" only): `None` when
/// the payload is not a JSON object with a numeric `iat`.
#[cfg(feature = "jwks")]
fn unverified_iat(token: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Iat {
        iat: Option<Value>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let Iat { iat } = serde_json::from_slice(&bytes).ok()?;
    numeric_date(&iat?)
}

fn map_error(kind: &ErrorKind) -> JwtError {
    JwtError::invalid(match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::InvalidAudience => "the token is not for this resource",
        ErrorKind::InvalidIssuer => "the token's issuer is not trusted",
        ErrorKind::InvalidSignature => "the token's signature is not valid",
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key",
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "exp" => "the token's exp claim is missing or not a number",
            "aud" => "the token has no audience",
            "iss" => "the token has no issuer",
            _ => "the token lacks a required claim",
        },
        ErrorKind::InvalidClaimFormat(c) => match c.as_str() {
            "exp" => "the token's exp claim is missing or not a number",
            "nbf" => "the token's nbf claim is not a number",
            _ => "a claim of the token has the wrong type",
        },
        _ => "the token is malformed",
    })
}

/// The header fields we look at.
#[derive(Debug)]
pub(crate) struct Header {
    alg: Algorithm,
    kid: Option<String>,
    typ: Option<String>,
}

/// Decides whether `token` is a JWT and reads its header.
///
/// A token is *JWT-shaped* when its first segment (before the first `.`)
/// is base64url of a JSON object, or when it has exactly three segments.
/// Anything else is [`JwtErrorKind::NotAJwt`] (an opaque token). A
/// JWT-shaped token with a bad header is [`JwtErrorKind::Invalid`].
pub(crate) fn parse_header(token: &str) -> Result<Header, JwtError> {
    let mut parts = token.split('.');
    let first = parts.next().unwrap_or_default();
    let segments = 1 + parts.count();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<StrictObject>(&bytes).ok());
    let Some(StrictObject(header)) = decoded else {
        // Not a JSON header: an opaque token, unless it looks like a JWS.
        return Err(if segments == 3 {
            JwtError::invalid("the token is malformed")
        } else {
            JwtError::not_jwt()
        });
    };
    if segments != 3 {
        return Err(JwtError::invalid("the token is malformed"));
    }
    if header.contains_key("crit") {
        return Err(JwtError::invalid(
            "the token has critical header parameters",
        ));
    }
    let alg = match header.get("alg") {
        Some(Value::String(a)) => Algorithm::from_str(a)
            .map_err(|_| JwtError::invalid("the token's algorithm is not supported"))?,
        _ => return Err(JwtError::invalid("the token's algorithm is not supported")),
    };
    let text = |name: &str| -> Result<Option<String>, JwtError> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JwtError::invalid("the token header is malformed")),
        }
    };
    Ok(Header {
        alg,
        kid: text("kid")?,
        typ: text("typ")?,
    })
}

/// A JSON object that refuses duplicate member names (RFC 7515 §5.2 /
/// RFC 7519 §4: a JWT with duplicate names must be rejected or use the
/// last; we reject, as parsers disagree).
pub(crate) struct StrictObject(pub(crate) Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
                let mut out = Map::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v: Value = map.next_value()?;
                    if out.insert(k, v).is_some() {
                        return Err(serde::de::Error::custom("duplicate member name"));
                    }
                }
                Ok(StrictObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The error of a validator built without a key source.
#[cfg(feature = "jwks")]
const NO_KEYS: &str =
    "a JWT validator needs keys: add a key, an HS256 secret, a JWKS URL or an issuer";
#[cfg(not(feature = "jwks"))]
const NO_KEYS: &str = "a JWT validator needs keys: add a key or an HS256 secret \
    (a JWKS URL or an issuer needs the `jwks` feature)";

/// Builds a [`JwtValidator`].
#[must_use]
pub struct JwtValidatorBuilder {
    keys: Vec<JwtKey>,
    errors: Vec<ConfigError>,
    #[cfg(feature = "jwks")]
    pub(super) jwks: Option<JwksSource>,
    #[cfg(feature = "jwks")]
    pub(super) jwks_options: JwksOptions,
    audiences: Vec<String>,
    default_audience: Option<String>,
    issuers: Vec<String>,
    leeway: Duration,
    require_at_jwt: bool,
    claim_checks: Vec<Arc<ClaimCheck>>,
    confirmation_methods: Vec<Box<str>>,
    max_token_bytes: usize,
    cache_ttl: Option<Duration>,
    cache_capacity: u64,
}

impl fmt::Debug for JwtValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("JwtValidatorBuilder");
        d.field("keys", &self.keys);
        #[cfg(feature = "jwks")]
        d.field("jwks", &self.jwks);
        d.field("audiences", &self.audiences)
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

impl JwtValidatorBuilder {
    fn new() -> Self {
        super::install_crypto_provider();
        Self {
            keys: Vec::new(),
            errors: Vec::new(),
            #[cfg(feature = "jwks")]
            jwks: None,
            #[cfg(feature = "jwks")]
            jwks_options: JwksOptions::default(),
            audiences: Vec::new(),
            default_audience: None,
            issuers: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            require_at_jwt: false,
            claim_checks: Vec::new(),
            confirmation_methods: Vec::new(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            cache_ttl: Some(cache::DEFAULT_TTL),
            cache_capacity: cache::DEFAULT_CAPACITY,
        }
    }

    /// Adds a verification key.
    pub fn key(mut self, key: JwtKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Adds an HS256 key from a shared secret (the `JWT_SECRET` case). A
    /// secret shorter than 32 bytes fails at [`build`](Self::build).
    pub fn hs256_secret(mut self, secret: &SecretString) -> Self {
        match JwtKey::hmac(Algorithm::HS256, secret) {
            Ok(k) => self.keys.push(k),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// An accepted audience. Audiences given here replace the default
    /// (the resource identifier); call it several times for several. The
    /// token's `aud` must contain one of them, exactly or up to RFC 3986
    /// normalisation (§6.2.2–6.2.3: scheme and host in any case, the
    /// default port written or not, percent-encodings and dot-segments
    /// normalised); a different path is another resource.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// A trusted issuer; with one or more, `iss` is required and must be
    /// one of them — except for tokens whose key is pinned to its own
    /// issuer ([`JwtKey::with_issuer`], [`jwks_issuer`](Self::jwks_issuer),
    /// [`jwks_from_issuer`](Self::jwks_from_issuer)), which must carry
    /// that one.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        if !self.issuers.contains(&issuer) {
            self.issuers.push(issuer);
        }
        self
    }

    /// The clock-skew leeway for `exp`, `nbf` and `iat` (default 30 s, at
    /// most 5 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the `typ` header `at+jwt` (RFC 9068 access tokens), so an
    /// ID token cannot be used as an access token.
    pub fn require_at_jwt_type(mut self) -> Self {
        self.require_at_jwt = true;
        self
    }

    /// A custom check on the verified claims. Return `Err(description)` to
    /// refuse with 401; the description is sent to the client, so keep it
    /// short and free of secrets. Checks run once per token: the verified
    /// token cache remembers their result.
    pub fn claim_check<F>(mut self, check: F) -> Self
    where
        F: Fn(&Map<String, Value>) -> Result<(), Cow<'static, str>> + Send + Sync + 'static,
    {
        self.claim_checks.push(Arc::new(check));
        self
    }

    /// Accepts tokens bound by the confirmation method `method` (a member
    /// of the `cnf` claim, RFC 7800), which this crate does not check: for
    /// a deployment that checks it elsewhere, such as RFC 8705's
    /// `x5t#S256` (certificate-bound tokens) checked against the client
    /// certificate by the TLS terminator.
    ///
    /// By default a token whose `cnf` names any method but `jkt` (DPoP,
    /// checked by the [DPoP layer](crate::dpop)) is refused with 401
    /// `invalid_token`: taken as a plain bearer token, a stolen
    /// certificate-bound token would work without the certificate.
    ///
    /// ```
    /// # use tower_mcp_auth::{jwt::JwtValidator, ProtectedResource};
    /// # let resource = ProtectedResource::builder("https://mcp.example.com/mcp").build().unwrap();
    /// # let secret = secrecy::SecretString::from("a-secret-of-at-least-32-bytes-0123456789");
    /// let validator = JwtValidator::builder(&resource)
    ///     .hs256_secret(&secret)
    ///     .allow_confirmation_method("x5t#S256") // checked by the TLS terminator
    ///     .build()?;
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    pub fn allow_confirmation_method(mut self, method: impl Into<String>) -> Self {
        let method = method.into().into_boxed_str();
        if !self.confirmation_methods.contains(&method) {
            self.confirmation_methods.push(method);
        }
        self
    }

    /// The largest token accepted, checked before any parsing (default
    /// 8 KiB).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// The verified-token cache: the longest an entry lives (never past
    /// the token's `exp`; default 60 s) and how many entries it holds
    /// (default 10 000).
    pub fn token_cache(mut self, max_ttl: Duration, capacity: u64) -> Self {
        self.cache_ttl = Some(max_ttl);
        self.cache_capacity = capacity;
        self
    }

    /// Turns the verified-token cache off: every request checks the
    /// signature.
    pub fn no_token_cache(mut self) -> Self {
        self.cache_ttl = None;
        self
    }

    /// Builds the validator.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when there is no key source, no audience, a bad
    /// key or URL, a duplicate `kid`, a leeway over 5 min, or a zero size
    /// limit.
    pub fn build(mut self) -> Result<JwtValidator, ConfigError> {
        if let Some(e) = self.errors.drain(..).next() {
            return Err(e);
        }
        #[cfg(feature = "jwks")]
        let no_keys = self.keys.is_empty() && self.jwks.is_none();
        #[cfg(not(feature = "jwks"))]
        let no_keys = self.keys.is_empty();
        if no_keys {
            return Err(ConfigError::Invalid(NO_KEYS.into()));
        }
        if self.audiences.is_empty() {
            self.audiences.extend(self.default_audience.take());
        }
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(ConfigError::Invalid(
                "a JWT validator needs an audience (the resource identifier)".into(),
            ));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::Invalid(
                "the JWT leeway must be at most 5 minutes".into(),
            ));
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::Invalid(
                "the JWT size limit must be above zero".into(),
            ));
        }
        let mut keys = KeySet::default();
        for k in self.keys {
            keys.insert(k)?;
        }
        let cache = self
            .cache_ttl
            .filter(|t| !t.is_zero() && self.cache_capacity > 0)
            .map(|ttl| TokenCache::new(self.cache_capacity, ttl));
        #[cfg(feature = "jwks")]
        let remote = match self.jwks {
            Some(source) => {
                let on_change = cache
                    .clone()
                    .map(|c| Arc::new(move || c.clear()) as cache::OnChange);
                Some(RemoteJwks::new(source, self.jwks_options, on_change)?)
            }
            None => None,
        };
        let leeway = self.leeway.as_secs();
        let validations = [
            Algorithm::HS256,
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ]
        .into_iter()
        .map(|alg| {
            let mut v = Validation::new(alg);
            v.leeway = leeway;
            v.validate_exp = true;
            v.validate_nbf = true;
            // `aud` must be there; its value is checked by us, up to
            // normalisation, and `iss` per key (see principal_from_claims).
            v.validate_aud = false;
            v.set_required_spec_claims(&["exp", "aud"]);
            (alg, v)
        })
        .collect();
        Ok(JwtValidator(Arc::new(Inner {
            keys,
            #[cfg(feature = "jwks")]
            remote,
            validations,
            audiences: self.audiences.iter().map(|a| Audience::new(a)).collect(),
            issuers: self.issuers,
            leeway,
            require_at_jwt: self.require_at_jwt,
            claim_checks: self.claim_checks,
            confirmation_methods: self.confirmation_methods,
            max_token_bytes: self.max_token_bytes,
            cache,
        })))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use serde_json::json;

    pub(crate) const SECRET: &str = "unit-test-secret-unit-test-secret-0123";
    pub(crate) const AUD: &str = "https://mcp.example.com/mcp";

    pub(crate) fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    pub(crate) fn hs256(claims: &Value) -> String {
        super::super::install_crypto_provider();
        jsonwebtoken::encode(
            &JwtHeader::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    /// Signs raw header and payload JSON text with the HS256 secret.
    pub(crate) fn hs256_raw(header: &str, payload: &str) -> String {
        super::super::install_crypto_provider();
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = jsonwebtoken::crypto::sign(
            msg.as_bytes(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{msg}.{sig}")
    }

    pub(crate) fn good_claims() -> Value {
        json!({"sub": "user-1", "aud": AUD, "exp": now() + 600, "iat": now(),
               "scope": "read:data write:data", "client_id": "cli"})
    }

    pub(crate) fn validator() -> JwtValidator {
        let resource = ProtectedResource::builder(AUD).build().unwrap();
        JwtValidator::builder(&resource)
            .hs256_secret(&SecretString::from(SECRET))
            .build()
            .unwrap()
    }

    async fn err(v: &JwtValidator, token: &str) -> JwtError {
        v.verify(token).await.unwrap_err()
    }

    #[tokio::test]
    async fn cnf_jkt_binds_the_principal_and_a_malformed_cnf_is_invalid() {
        let v = validator();
        let mut claims = good_claims();
        claims["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
        let p = v.verify(&hs256(&claims)).await.unwrap();
        assert_eq!(
            p.cnf_jkt(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
        assert_eq!(
            v.verify(&hs256(&good_claims())).await.unwrap().cnf_jkt(),
            None
        );
        claims["cnf"] = json!("0ZcOCORZNYy");
        assert_eq!(
            err(&v, &hs256(&claims)).await.description(),
            "the token's cnf claim is malformed"
        );
    }

    /// Issue 23 6b: a certificate-bound token (RFC 8705 `x5t#S256`) is not
    /// a bearer token here, unless the deployment checks it elsewhere.
    #[tokio::test]
    async fn a_cnf_method_nobody_checks_is_refused_unless_allowed() {
        let mut claims = good_claims();
        claims["cnf"] = json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"});
        let token = hs256(&claims);
        let e = err(&validator(), &token).await;
        assert_eq!(e.kind(), JwtErrorKind::Invalid);
        assert_eq!(
            e.description(),
            "the token is bound by a confirmation method (cnf) this server does not check"
        );
        let refusal = AuthError::from(e);
        assert_eq!(refusal.status(), 401);
        assert_eq!(refusal.kind().code(), "invalid_token");
        let resource = ProtectedResource::builder(AUD).build().unwrap();
        let checked_elsewhere = JwtValidator::builder(&resource)
            .hs256_secret(&SecretString::from(SECRET))
            .allow_confirmation_method("x5t#S256")
            .build()
            .unwrap();
        let p = checked_elsewhere.verify(&token).await.unwrap();
        assert_eq!((p.subject(), p.cnf_jkt()), (Some("user-1"), None));
        // Only that one: another unchecked method is still refused.
        claims["cnf"] = json!({"jwk": {"kty": "EC"}});
        assert_eq!(
            err(&checked_elsewhere, &hs256(&claims)).await.kind(),
            JwtErrorKind::Invalid
        );
    }

    /// Issue 23 6e: a token without `sub` is its client, never the user of
    /// the same name; `iss` is part of the identity.
    #[tokio::test]
    async fn a_token_without_sub_is_a_client_identity() {
        let v = validator();
        let mut user = good_claims();
        user["sub"] = json!("user_001");
        let user = v.verify(&hs256(&user)).await.unwrap();
        let client = v
            .verify(&hs256(&json!({"client_id": "user_001", "aud": AUD,
                                   "exp": now() + 60, "iat": now()})))
            .await
            .unwrap();
        assert_eq!(user.subject(), Some("user_001"));
        assert_eq!(client.subject(), None);
        assert_eq!(client.kind(), PrincipalKind::Client);
        assert_eq!(client.client_id(), Some("user_001"));
        assert_ne!(user.identity_key(), client.identity_key());
        let mut other_issuer = good_claims();
        other_issuer["sub"] = json!("user_001");
        other_issuer["iss"] = json!("https://other.example.com");
        let other = v.verify(&hs256(&other_issuer)).await.unwrap();
        assert_eq!(other.issuer(), Some("https://other.example.com"));
        assert_ne!(user.identity_key(), other.identity_key());
        other_issuer["iss"] = json!(7);
        assert_eq!(
            err(&v, &hs256(&other_issuer)).await.description(),
            "the token's iss claim is not a string"
        );
    }

    #[tokio::test]
    async fn accepts_and_maps_claims() {
        let v = validator();
        let p = v.verify(&hs256(&good_claims())).await.unwrap();
        assert_eq!(p.scheme(), AuthScheme::Jwt);
        assert_eq!(p.subject(), Some("user-1"));
        assert_eq!(p.client_id(), Some("cli"));
        assert_eq!(p.scopes().to_string(), "read:data write:data");
        assert!(p.expires_in().unwrap() > Duration::from_secs(500));
        assert!(p.claim("iat").and_then(Value::as_u64).is_some());

        // scp array, azp, aud as an array, no sub: subject from azp.
        let token = hs256(
            &json!({"azp": "svc", "aud": ["other", AUD], "exp": now() + 60, "scp": ["a", "b"]}),
        );
        let p = v.verify(&token).await.unwrap();
        assert_eq!((p.subject(), p.client_id()), (None, Some("svc")));
        assert_eq!((p.kind(), p.name()), (PrincipalKind::Client, "svc"));
        assert_eq!(p.scopes().to_string(), "a b");
    }

    /// MCP 2026-07-28: the canonical URI in upper case, with its default
    /// port, or percent-encoded is the same resource; another path, port
    /// or scheme is not. Refused as "not for this resource" before.
    #[tokio::test]
    async fn the_audience_is_compared_up_to_rfc_3986_normalisation() {
        let v = validator();
        let with = |aud: Value| {
            let mut c = good_claims();
            c["aud"] = aud;
            hs256(&c)
        };
        for aud in [
            json!("HTTPS://MCP.EXAMPLE.COM/mcp"),
            json!("https://mcp.example.com:443/mcp"),
            json!("https://mcp.example.com/%6Dcp"),
            json!(["other", "https://Mcp.Example.com:443/./mcp"]),
        ] {
            assert!(v.verify(&with(aud.clone())).await.is_ok(), "{aud}");
        }
        for aud in [
            json!("https://mcp.example.com/other"),
            json!("https://mcp.example.com/MCP"),
            json!("https://mcp.example.com/mcp/"),
            json!("https://mcp.example.com:8443/mcp"),
            json!("http://mcp.example.com/mcp"),
            json!([]),
        ] {
            assert_eq!(
                err(&v, &with(aud.clone())).await.description(),
                "the token is not for this resource",
                "{aud}"
            );
        }
        assert!(v.verify(&with(json!([AUD, 7]))).await.is_err());
    }

    #[tokio::test]
    async fn refuses_bad_claims_with_safe_descriptions() {
        let v = validator();
        let base = good_claims();
        let with = |k: &str, val: Value| {
            let mut c = base.clone();
            c[k] = val;
            hs256(&c)
        };
        let without = |k: &str| {
            let mut c = base.clone();
            c.as_object_mut().unwrap().remove(k);
            hs256(&c)
        };
        for (token, want) in [
            (with("exp", json!(now() - 120)), "the token has expired"),
            (
                with("exp", json!("9999999999")),
                "the token's exp claim is missing or not a number",
            ),
            (
                without("exp"),
                "the token's exp claim is missing or not a number",
            ),
            (
                with("nbf", json!(now() + 600)),
                "the token is not valid yet",
            ),
            (
                with("nbf", json!("soon")),
                "the token's nbf claim is not a number",
            ),
            (
                with("iat", json!(now() + 600)),
                "the token was issued in the future",
            ),
            (
                with("aud", json!("https://evil.example.com")),
                "the token is not for this resource",
            ),
            (without("aud"), "the token has no audience"),
            (
                with("sub", json!(42)),
                "the token's sub claim is not a string",
            ),
            (
                with("scope", json!(["a"])),
                "the token's scope claim is not a string",
            ),
            (
                hs256(&json!({"aud": AUD, "exp": now() + 60})),
                "the token has no subject",
            ),
        ] {
            let e = err(&v, &token).await;
            assert_eq!(e.description(), want);
            assert_eq!(e.kind(), JwtErrorKind::Invalid);
            assert!(!e.description().contains(&token));
        }
    }

    /// Found by the `jwt_claims` fuzz target: an `exp` past what the
    /// platform's clock holds panicked building the principal's expiry.
    #[tokio::test]
    async fn an_exp_beyond_the_clock_is_refused_not_a_panic() {
        let v = validator();
        for exp in [json!(u64::MAX), json!(1e19), json!(i64::MAX as u64 + 1)] {
            let mut claims = good_claims();
            claims["exp"] = exp;
            let e = err(&v, &hs256(&claims)).await;
            assert_eq!(e.description(), "the token's exp claim is out of range");
            assert_eq!(AuthError::from(e).status(), 401);
        }
        let mut claims = good_claims();
        claims["exp"] = json!(4_102_444_800u64);
        let p = v.verify(&hs256(&claims)).await.unwrap();
        assert_eq!(
            p.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(4_102_444_800))
        );
    }

    #[tokio::test]
    async fn duplicate_members_alg_none_and_crit_are_refused() {
        let v = validator();
        let exp = now() + 600;
        let dup = hs256_raw(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &format!(r#"{{"sub":"user-1","aud":"{AUD}","exp":{exp},"sub":"admin"}}"#),
        );
        assert_eq!(err(&v, &dup).await.description(), "the token is malformed");
        let dup_header = hs256_raw(
            r#"{"alg":"HS256","alg":"none"}"#,
            &format!(r#"{{"sub":"u","aud":"{AUD}","exp":{exp}}}"#),
        );
        assert_eq!(
            err(&v, &dup_header).await.description(),
            "the token is malformed"
        );
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"u","aud":"{AUD}","exp":{exp}}}"#))
        );
        assert_eq!(
            err(&v, &none).await.description(),
            "the token's algorithm is not supported"
        );
        let crit = hs256_raw(
            r#"{"alg":"HS256","crit":["exp"]}"#,
            &format!(r#"{{"sub":"u","aud":"{AUD}","exp":{exp}}}"#),
        );
        assert_eq!(
            err(&v, &crit).await.description(),
            "the token has critical header parameters"
        );
    }

    #[test]
    fn jwt_shape_tells_opaque_tokens_from_broken_jwts() {
        for opaque in ["abc123", "mF_9.B5f-4", "a.b", "ya29.a0AfH6SMB", "!!!"] {
            assert!(parse_header(opaque).unwrap_err().is_not_jwt(), "{opaque}");
        }
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
        for broken in [
            "!!!.@@@.###".to_owned(),
            format!("{h}.payload"),
            h.clone(),
            "a.b.c".into(),
        ] {
            let e = parse_header(&broken).unwrap_err();
            assert_eq!(e.kind(), JwtErrorKind::Invalid, "{broken}");
        }
        assert!(parse_header(&format!("{h}.x.y")).is_ok());
    }

    #[tokio::test]
    async fn typ_claim_checks_and_size() {
        let resource = ProtectedResource::builder(AUD).build().unwrap();
        let v = JwtValidator::builder(&resource)
            .hs256_secret(&SecretString::from(SECRET))
            .require_at_jwt_type()
            .claim_check(|c| match c.get("tenant").and_then(Value::as_str) {
                Some("acme") => Ok(()),
                _ => Err("the token is for another tenant".into()),
            })
            .max_token_bytes(2048)
            .build()
            .unwrap();
        let mut claims = good_claims();
        claims["tenant"] = json!("acme");
        let plain = hs256(&claims);
        assert_eq!(
            err(&v, &plain).await.description(),
            "the token is not an access token (typ must be at+jwt)"
        );
        let mut header = JwtHeader::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        let sign = |c: &Value| {
            jsonwebtoken::encode(&header, c, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
        };
        assert!(v.verify(&sign(&claims)).await.is_ok());
        claims["tenant"] = json!("other");
        assert_eq!(
            err(&v, &sign(&claims)).await.description(),
            "the token is for another tenant"
        );
        claims["pad"] = json!("x".repeat(3000));
        assert_eq!(
            err(&v, &sign(&claims)).await.description(),
            "the token is too large"
        );
    }

    #[tokio::test]
    async fn issuers_are_required_and_must_be_strings() {
        let v = JwtValidator::builder_without_resource()
            .audience(AUD)
            .issuer("https://auth.example.com")
            .hs256_secret(&SecretString::from(SECRET))
            .build()
            .unwrap();
        let mut c = good_claims();
        assert_eq!(
            err(&v, &hs256(&c)).await.description(),
            "the token has no issuer"
        );
        c["iss"] = json!("https://evil.example.com");
        assert_eq!(
            err(&v, &hs256(&c)).await.description(),
            "the token's issuer is not trusted"
        );
        c["iss"] = json!(["https://auth.example.com"]);
        assert_eq!(
            err(&v, &hs256(&c)).await.description(),
            "the token's issuer is not trusted"
        );
        c["iss"] = json!("https://auth.example.com");
        assert!(v.verify(&hs256(&c)).await.is_ok());
    }

    #[tokio::test]
    async fn a_key_pinned_to_an_issuer_overrides_the_list() {
        let other = "another-secret-for-the-authorization-server";
        let v = JwtValidator::builder_without_resource()
            .audience(AUD)
            .hs256_secret(&SecretString::from(SECRET))
            .key(
                JwtKey::hmac(Algorithm::HS256, &SecretString::from(other))
                    .unwrap()
                    .with_kid("as")
                    .with_issuer("https://as.example.com"),
            )
            .build()
            .unwrap();
        // The local secret: no issuer needed.
        assert!(v.verify(&hs256(&good_claims())).await.is_ok());
        let mut header = JwtHeader::new(Algorithm::HS256);
        header.kid = Some("as".into());
        let sign = |c: &Value| {
            jsonwebtoken::encode(&header, c, &EncodingKey::from_secret(other.as_bytes())).unwrap()
        };
        let mut c = good_claims();
        assert_eq!(
            err(&v, &sign(&c)).await.description(),
            "the token has no issuer"
        );
        c["iss"] = json!("https://evil.example.com");
        assert_eq!(
            err(&v, &sign(&c)).await.description(),
            "the token's issuer is not trusted"
        );
        c["iss"] = json!("https://as.example.com");
        assert!(v.verify(&sign(&c)).await.is_ok());
    }

    #[tokio::test]
    async fn verified_tokens_are_cached_by_digest() {
        let v = validator();
        let token = hs256(&good_claims());
        assert_eq!(v.cache_entries(), 0);
        let a = v.verify(&token).await.unwrap();
        assert_eq!(v.cache_entries(), 1);
        let b = v.verify(&token).await.unwrap();
        assert!(a == b);
        let off = JwtValidator::builder_without_resource()
            .audience(AUD)
            .hs256_secret(&SecretString::from(SECRET))
            .no_token_cache()
            .build()
            .unwrap();
        off.verify(&token).await.unwrap();
        assert_eq!(off.cache_entries(), 0);
    }

    #[test]
    fn builder_errors() {
        let e = |b: JwtValidatorBuilder| b.build().unwrap_err().to_string();
        let base = || JwtValidator::builder_without_resource().audience(AUD);
        assert!(e(base()).contains("needs keys"));
        assert!(e(
            JwtValidator::builder_without_resource().hs256_secret(&SecretString::from(SECRET))
        )
        .contains("needs an audience"));
        let short = e(base().hs256_secret(&SecretString::from("short-secret")));
        assert!(short.contains("shorter than 32 bytes") && !short.contains("short-secret"));
        assert!(e(base()
            .hs256_secret(&SecretString::from(SECRET))
            .leeway(Duration::from_secs(301)))
        .contains("at most 5 minutes"));
        let k = || {
            JwtKey::hmac(Algorithm::HS256, &SecretString::from(SECRET))
                .unwrap()
                .with_kid("a")
        };
        assert!(e(base().key(k()).key(k())).contains("share the kid"));
        #[cfg(feature = "jwks")]
        assert!(e(base().jwks_url("http://auth.example.com/jwks")).contains("https"));
        // Without remote keys, the error says which feature brings them.
        #[cfg(not(feature = "jwks"))]
        assert!(e(base()).contains("needs the `jwks` feature"));
        assert!(JwtKey::rsa_pem(Algorithm::ES256, b"x").is_err());
        assert!(JwtKey::hmac(Algorithm::RS256, &SecretString::from(SECRET)).is_err());
        let v = base()
            .hs256_secret(&SecretString::from(SECRET))
            .build()
            .unwrap();
        assert!(!format!("{v:?}").contains(SECRET));
    }
}
