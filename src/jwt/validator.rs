//! [`JwtValidator`]: checks one token and turns its claims into a
//! [`Principal`].

use std::{
    borrow::Cow,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

#[cfg(feature = "jwks")]
use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

#[cfg(feature = "jwks")]
use super::jwks::RemoteJwks;
use super::{
    cache::{self, TokenCache},
    error::{map_error, JwtError},
    header::{parse_header, Header, StrictObject},
    keys::{JwtKey, KeySet, Lookup},
};
use crate::{
    principal::{AuthScheme, Principal, Scopes},
    url::Audience,
};

/// A check on a token's verified claims ([`JwtValidatorBuilder::claim_check`](super::JwtValidatorBuilder::claim_check)).
pub(super) type ClaimCheck =
    dyn Fn(&Map<String, Value>) -> Result<(), Cow<'static, str>> + Send + Sync;

/// Checks bearer JWTs. Built once with [`JwtValidator::builder`]; cloning is
/// one reference count. See the [module docs](super) for what is checked.
#[derive(Clone)]
pub struct JwtValidator(pub(super) Arc<Inner>);

/// What a validator holds: built by [`JwtValidatorBuilder::build`](super::JwtValidatorBuilder::build).
pub(super) struct Inner {
    pub(super) keys: KeySet,
    #[cfg(feature = "jwks")]
    pub(super) remote: Option<RemoteJwks>,
    pub(super) validations: Vec<(Algorithm, Validation)>,
    /// The accepted audiences, each with its RFC 3986 normal form.
    pub(super) audiences: Box<[Audience]>,
    pub(super) issuers: Vec<String>,
    pub(super) leeway: u64,
    pub(super) require_at_jwt: bool,
    pub(super) claim_checks: Vec<Arc<ClaimCheck>>,
    pub(super) confirmation_methods: Vec<Box<str>>,
    pub(super) max_token_bytes: usize,
    pub(super) cache: Option<TokenCache>,
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
    /// [`JwtErrorKind::Unavailable`](super::JwtErrorKind::Unavailable) when
    /// the fetch failed (the last good keys, if any, stay in use).
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
        // The digest travels with the principal (cached with it), for a
        // token exchange's cache.
        #[cfg(feature = "token-exchange")]
        let result = match digest {
            Some(d) => result.map(|p| p.with_token_digest(d)),
            None => result,
        };
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

#[cfg(test)]
mod tests {
    use super::super::error::JwtErrorKind;
    use super::super::test_support::*;
    use super::*;
    use crate::{error::AuthError, metadata::ProtectedResource, principal::PrincipalKind};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    #[cfg(not(feature = "jwks"))]
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use secrecy::SecretString;
    use serde_json::json;

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

    /// The principal carries its token's cache digest, on a miss and on a
    /// hit, for the token exchange to key its own cache by; none without
    /// a cache (nothing was hashed).
    #[cfg(feature = "token-exchange")]
    #[tokio::test]
    async fn the_principal_carries_the_cache_digest_of_its_token() {
        let v = validator();
        let token = hs256(&good_claims());
        let digest = cache::digest(&token);
        let miss = v.verify(&token).await.unwrap();
        assert_eq!(miss.token_digest(), Some(&digest));
        let hit = v.verify(&token).await.unwrap();
        assert_eq!(hit.token_digest(), Some(&digest));
        let off = JwtValidator::builder_without_resource()
            .audience(AUD)
            .hs256_secret(&SecretString::from(SECRET))
            .no_token_cache()
            .build()
            .unwrap();
        assert_eq!(off.verify(&token).await.unwrap().token_digest(), None);
    }
}
