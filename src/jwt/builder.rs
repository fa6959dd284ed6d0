//! [`JwtValidatorBuilder`]: a [`JwtValidator`]'s configuration, checked
//! at build time (the remote-key methods are in `jwks_settings.rs`).

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, Validation};
use secrecy::SecretString;
use serde_json::{Map, Value};

#[cfg(feature = "jwks")]
use super::jwks::{JwksOptions, JwksSource, RemoteJwks};
use super::{
    cache::{self, TokenCache},
    keys::{JwtKey, KeySet},
    validator::{ClaimCheck, Inner, JwtValidator},
};
use crate::{config::ConfigError, metadata::ProtectedResource, url::Audience};

/// Default cap on a token's size, checked before any parsing.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default clock-skew leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest leeway the builder accepts.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

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
mod tests {
    use super::super::test_support::{AUD, SECRET};
    use super::*;

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
