//! The RFC 7662 client: [`Introspector`] and its builder.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use oauth2::{
    basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenResponse, BasicTokenType},
    AccessToken, AsyncHttpClient, AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, HttpRequest, HttpResponse, IntrospectionUrl, RequestTokenError,
    StandardRevocableToken, StandardTokenIntrospectionResponse, TokenIntrospectionResponse,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cache::{token_digest, Cached, TokenCache, Verdict};
use crate::{
    audit,
    config::{secret_from_env, ConfigError},
    error::AuthError,
    fetch::{default_client, FetchError, HttpClient},
    principal::{AuthScheme, Principal, Scopes},
    url::{check_url, Audience},
};

/// Environment variable read by [`Introspector::from_env`] for the endpoint.
pub const ENV_INTROSPECTION_URL: &str = "OAUTH_INTROSPECTION_URL";
/// Environment variable read by [`Introspector::from_env`] for the client id.
pub const ENV_CLIENT_ID: &str = "OAUTH_CLIENT_ID";
/// Environment variable read by [`Introspector::from_env`] for the client
/// secret.
pub const ENV_CLIENT_SECRET: &str = "OAUTH_CLIENT_SECRET";

/// Default timeout of one introspection call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest time an active result is cached.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default time an inactive result is cached.
pub const DEFAULT_INACTIVE_TTL: Duration = Duration::from_secs(5);
/// Default number of cached results.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// Default `Retry-After` of a 503 when the endpoint cannot answer.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Largest introspection response read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What the client description of a refusal says when the endpoint fails.
const UNAVAILABLE: &str = "the token introspection service is unavailable";

/// How the resource server authenticates to the introspection endpoint
/// (RFC 7662 §2.1 requires some client authentication).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret
    /// (RFC 6749 §2.3.1). The default.
    #[default]
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form
    /// body.
    ClientSecretPost,
}

impl ClientAuth {
    /// The RFC 8414 name (`client_secret_basic`, `client_secret_post`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// How strictly the `aud` of an introspection response is checked against
/// the expected audience (the resource identifier).
///
/// The MCP authorization specification requires a server to accept only
/// tokens issued for it, so the default is [`Required`](Self::Required):
/// an active token whose introspection answer has no `aud`, or one without
/// the expected audience, is refused, and so is every token when no
/// audience is configured ([`IntrospectorBuilder::audience`]: the audience
/// is never taken from the request or the stack, so a stack without it
/// fails closed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudienceCheck {
    /// The response must carry `aud`, and it must contain the audience.
    /// The default.
    #[default]
    Required,
    /// When the response carries `aud`, it must contain the audience; a
    /// response without `aud` is accepted.
    ///
    /// **Risk:** only for an authorization server that never sends `aud`
    /// and issues tokens for this server alone. Where the same server
    /// issues tokens to other applications (or plain login tokens), those
    /// tokens carry no `aud` either, and every one of them is accepted here
    /// for every rule that needs only an authenticated caller.
    WhenPresent,
    /// `aud` is not checked at all (for authorization servers that put
    /// something else there; prefer fixing the server). The same risk as
    /// [`WhenPresent`](Self::WhenPresent), and more.
    Off,
}

/// Every member of the response beyond RFC 7662's, kept for the
/// principal's raw claims.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: Map<String, Value>,
}

impl ExtraTokenFields for OtherClaims {}

/// The oauth2 crate's RFC 7662 response, with the extra members kept.
type IntrospectionResponse = StandardTokenIntrospectionResponse<OtherClaims, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    BasicTokenResponse,
    IntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
>;

/// Verifies opaque access tokens with an RFC 7662 introspection endpoint,
/// through a bounded cache with single flight. Cheap to clone; clones share
/// the cache.
///
/// [`verify`](Self::verify) is what [`IntrospectionLayer`](super::IntrospectionLayer)
/// calls; use it directly outside tower.
#[derive(Clone)]
pub struct Introspector(Arc<Inner>);

struct Inner {
    url: IntrospectionUrl,
    client_id: String,
    client_secret: SecretString,
    auth: ClientAuth,
    http: HttpClient,
    timeout: Duration,
    retry_after: Duration,
    audience: Option<Audience>,
    audience_check: AudienceCheck,
    cache: Option<TokenCache>,
    max_ttl: Duration,
    inactive_ttl: Duration,
    confirmation_methods: Vec<Box<str>>,
}

/// Builds an [`Introspector`]; see [`Introspector::builder`].
#[must_use]
pub struct IntrospectorBuilder {
    url: String,
    client_id: String,
    client_secret: SecretString,
    auth: ClientAuth,
    http: Option<reqwest::Client>,
    timeout: Duration,
    retry_after: Duration,
    audience: Option<String>,
    audience_check: AudienceCheck,
    cache: bool,
    capacity: u64,
    max_ttl: Duration,
    inactive_ttl: Duration,
    confirmation_methods: Vec<Box<str>>,
}

impl fmt::Debug for IntrospectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectorBuilder")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("audience", &self.audience)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("url", &self.0.url.as_str())
            .field("client_id", &self.0.client_id)
            .field("auth", &self.0.auth)
            .field("timeout", &self.0.timeout)
            .field("audience", &self.0.audience.as_ref().map(Audience::as_str))
            .field("cache", &self.0.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// Starts an introspector for the endpoint `url`, authenticating as
    /// `client_id` / `client_secret` (`client_secret_basic` unless changed).
    pub fn builder(
        url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> IntrospectorBuilder {
        IntrospectorBuilder {
            url: url.into(),
            client_id: client_id.into(),
            client_secret,
            auth: ClientAuth::default(),
            http: None,
            timeout: DEFAULT_TIMEOUT,
            retry_after: DEFAULT_RETRY_AFTER,
            audience: None,
            audience_check: AudienceCheck::default(),
            cache: true,
            capacity: DEFAULT_CACHE_CAPACITY,
            max_ttl: DEFAULT_CACHE_TTL,
            inactive_ttl: DEFAULT_INACTIVE_TTL,
            confirmation_methods: Vec::new(),
        }
    }

    /// A builder from `OAUTH_INTROSPECTION_URL`, `OAUTH_CLIENT_ID` and
    /// `OAUTH_CLIENT_SECRET`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingEnv`] / [`ConfigError::EmptyEnv`] naming the
    /// first variable that is not set.
    pub fn from_env() -> Result<IntrospectorBuilder, ConfigError> {
        let url = secret_from_env(ENV_INTROSPECTION_URL)?;
        let id = secret_from_env(ENV_CLIENT_ID)?;
        let secret = secret_from_env(ENV_CLIENT_SECRET)?;
        Ok(Self::builder(
            url.expose_secret().trim(),
            id.expose_secret().trim(),
            secret,
        ))
    }

    /// The introspection endpoint.
    #[must_use]
    pub fn url(&self) -> &str {
        self.0.url.as_str()
    }

    /// The audience checked against `aud`, when configured.
    #[must_use]
    pub fn audience(&self) -> Option<&str> {
        self.0.audience.as_ref().map(Audience::as_str)
    }

    /// Verifies a bearer token: the cached verdict when there is one, else
    /// one introspection call shared by every concurrent request carrying
    /// the same token. Checks `exp` and the audience on every use.
    ///
    /// # Errors
    ///
    /// * 401 `invalid_token`: the server says the token is not active, or it
    ///   is expired, names no subject, is not an access token
    ///   (`token_type`), or is not for the audience (with
    ///   [`AudienceCheck::Required`], the default: an answer without `aud`,
    ///   or no audience configured, is refused too).
    /// * 503 with `Retry-After`: the endpoint is down, slower than the
    ///   timeout, refuses our client credentials or answers something that
    ///   is not an RFC 7662 response. Never a pass.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_for(token, self.audience()).await
    }

    /// As [`verify`](Self::verify), with the audience given (the layer
    /// passes its resource identifier when the introspector has none).
    pub(crate) async fn verify_for(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let inner = &*self.0;
        let verdict = match &inner.cache {
            Some(cache) => {
                let digest = token_digest(token);
                cache
                    .try_get_with(digest, async {
                        let verdict = self.call(token).await?;
                        // The digest travels with the principal (cached
                        // with it), for a token exchange's cache.
                        #[cfg(feature = "token-exchange")]
                        let verdict = verdict.with_token_digest(digest);
                        Ok::<_, AuthError>(self.cached(verdict))
                    })
                    .await
                    .map(|c| c.verdict)
                    .map_err(|e| AuthError::clone(&e))?
            }
            None => self.call(token).await?,
        };
        inner.check(verdict, audience, SystemTime::now())
    }

    /// The cached answer for `token`, when the cache can give it without
    /// waiting: `None` on a miss (or with the cache off), and the caller
    /// goes the asynchronous way. Lets the layer serve a hit with no boxed
    /// future.
    pub(crate) fn try_cached(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Option<Result<Principal, AuthError>> {
        let inner = &*self.0;
        let cached = inner.cache.as_ref()?.get_now(&token_digest(token))?;
        Some(inner.check(cached.verdict, audience, SystemTime::now()))
    }

    fn cached(&self, verdict: Verdict) -> Cached {
        let inner = &*self.0;
        let ttl = match &verdict {
            Verdict::Active { principal, .. } => principal
                .expires_at()
                .map(|exp| exp.duration_since(SystemTime::now()).unwrap_or_default())
                .map_or(inner.max_ttl, |left| left.min(inner.max_ttl)),
            Verdict::Refused(_) => inner.inactive_ttl,
        };
        Cached { verdict, ttl }
    }

    /// One introspection call, bounded by the timeout (the deadline of the
    /// crate's one bounded exchange, [`fetch`](crate::fetch)). A failure is
    /// audited here (once per call, not once per waiting request).
    async fn call(&self, token: &str) -> Result<Verdict, AuthError> {
        let inner = &*self.0;
        match inner.introspect(token).await {
            Ok(response) => Ok(inner.verdict(response)),
            Err(failure) => {
                audit::degraded("introspection", &failure);
                Err(AuthError::unavailable(UNAVAILABLE).with_retry_after(inner.retry_after))
            }
        }
    }
}

impl Inner {
    fn client(&self) -> OAuthClient {
        oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_type(match self.auth {
                ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
                ClientAuth::ClientSecretPost => AuthType::RequestBody,
            })
            .set_introspection_url(self.url.clone())
    }

    /// Sends the request through the oauth2 crate. The error is a
    /// description for the audit trail: never the token, never the body.
    async fn introspect(&self, token: &str) -> Result<IntrospectionResponse, String> {
        let client = self.client();
        let token = AccessToken::new(token.to_owned());
        client
            .introspect(&token)
            .set_token_type_hint("access_token")
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(err) => format!(
                    "the introspection endpoint refused the request: {}",
                    err.error()
                ),
                RequestTokenError::Request(err) => {
                    format!("the introspection endpoint failed: {err}")
                }
                RequestTokenError::Parse(err, _) => format!(
                    "the introspection endpoint answered something that is not an RFC 7662 response ({})",
                    err.path()
                ),
                RequestTokenError::Other(msg) => {
                    format!("the introspection endpoint answered unexpectedly: {msg}")
                }
            })
    }

    fn verdict(&self, response: IntrospectionResponse) -> Verdict {
        if !response.active() {
            return Verdict::Refused("the access token is not active");
        }
        if !response
            .token_type()
            .is_none_or(|t| is_access_token_type(t.as_ref()))
        {
            return Verdict::Refused("the token is not an access token");
        }
        // `sub` (or `username`) names a subject; without either, the
        // token is its client's own, never a user of the same name.
        fn nonempty(s: Option<&str>) -> Option<&str> {
            s.filter(|s| !s.is_empty())
        }
        let mut principal = match (
            nonempty(response.sub()).or(nonempty(response.username())),
            nonempty(response.client_id().map(|c| c.as_str())),
        ) {
            (Some(subject), _) => Principal::new(AuthScheme::Introspection, subject),
            (None, Some(client)) => Principal::client(AuthScheme::Introspection, client),
            (None, None) => return Verdict::Refused("the access token names no subject"),
        };
        // The authorization server that vouched: its `iss`, else its
        // endpoint (two servers' users never share an identity).
        principal = principal.with_issuer(nonempty(response.iss()).unwrap_or(self.url.as_str()));
        principal = principal.with_scopes(
            response
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str()).collect())
                .unwrap_or_else(Scopes::empty),
        );
        if let Some(client_id) = response.client_id() {
            principal = principal.with_client_id(client_id.as_str());
        }
        if let Some(exp) = response.exp() {
            principal = principal.with_expires_at(SystemTime::from(exp));
        }
        let audience = response.aud().cloned();
        match crate::principal::cnf_jkt(&response.extra_fields().claims, &self.confirmation_methods)
        {
            Ok(Some(jkt)) => principal = principal.with_cnf_jkt(jkt),
            Ok(None) => {}
            Err(malformed) => return Verdict::Refused(malformed),
        }
        if let Ok(Value::Object(claims)) = serde_json::to_value(&response) {
            principal = principal.with_claims(claims);
        }
        Verdict::Active {
            principal,
            audience: audience.map(Arc::from),
        }
    }

    fn check(
        &self,
        verdict: Verdict,
        audience: Option<&str>,
        now: SystemTime,
    ) -> Result<Principal, AuthError> {
        let (principal, aud) = match verdict {
            Verdict::Active {
                principal,
                audience,
            } => (principal, audience),
            Verdict::Refused(why) => return Err(AuthError::invalid_token(why)),
        };
        if principal.is_expired_at(now) {
            return Err(AuthError::invalid_token("the access token has expired"));
        }
        let ok = match (self.audience_check, audience, aud.as_deref()) {
            (AudienceCheck::Off, _, _) => true,
            // Nothing to check against: refused unless told otherwise.
            (AudienceCheck::Required, None, _) => false,
            (AudienceCheck::WhenPresent, None, _) => true,
            (AudienceCheck::WhenPresent, Some(_), None) => true,
            (AudienceCheck::Required, Some(_), None) => false,
            // Exactly, or up to RFC 3986 normalisation (the configured
            // audience's normal form computed once, at build).
            (_, Some(expected), Some(aud)) => {
                let given;
                let expected = match &self.audience {
                    Some(ours) if ours.as_str() == expected => ours,
                    _ => {
                        given = Audience::new(expected);
                        &given
                    }
                };
                let expected = std::slice::from_ref(expected);
                aud.iter().any(|a| Audience::any_named_by(expected, a))
            }
        };
        if !ok {
            return Err(AuthError::invalid_token(
                "the access token was not issued for this resource",
            ));
        }
        Ok(principal)
    }
}

/// Whether an RFC 7662 `token_type` names an access token: `Bearer`,
/// `DPoP`, `PoP`, `MAC` (the OAuth Access Token Types registry, less
/// `N_A`, which RFC 8693 uses for what is *not* an access token) or RFC
/// 8693's `urn:ietf:params:oauth:token-type:access_token`, in any case.
/// Anything else (`refresh_token`, `id_token`, `N_A`, …) is refused.
fn is_access_token_type(token_type: &str) -> bool {
    [
        "bearer",
        "dpop",
        "pop",
        "mac",
        "urn:ietf:params:oauth:token-type:access_token",
    ]
    .iter()
    .any(|t| token_type.eq_ignore_ascii_case(t))
}

impl IntrospectorBuilder {
    /// Authenticates with `client_secret_post` instead of
    /// `client_secret_basic`.
    pub fn client_secret_post(self) -> Self {
        self.client_auth(ClientAuth::ClientSecretPost)
    }

    /// Sets the client authentication method.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Timeout of one introspection call (default 5 s). Past it the request
    /// is refused with 503.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `Retry-After` sent with a 503 (default 5 s).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The audience `aud` must contain: the resource identifier
    /// ([`ProtectedResource::resource`](crate::ProtectedResource::resource)),
    /// exactly or up to RFC 3986 normalisation (§6.2.2–6.2.3: scheme and
    /// host in any case, the default port written or not,
    /// percent-encodings and dot-segments normalised); a different path
    /// is another resource. Without it every token is refused.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How strictly `aud` is checked (default [`AudienceCheck::Required`];
    /// read the risk of the others before choosing one).
    pub fn audience_check(mut self, check: AudienceCheck) -> Self {
        self.audience_check = check;
        self
    }

    /// Longest time an active result is cached (default 60 s); an entry
    /// never outlives the token's `exp`.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// How long an inactive result is cached (default 5 s), so a flood of
    /// one bad token does not reach the server.
    pub fn inactive_ttl(mut self, ttl: Duration) -> Self {
        self.inactive_ttl = ttl;
        self
    }

    /// How many results the cache holds (default 10,000).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// No cache: every request is one introspection call, so a revoked
    /// token is refused at once (and there is no single flight).
    pub fn no_cache(mut self) -> Self {
        self.cache = false;
        self
    }

    /// Accepts tokens bound by the confirmation method `method` (a member
    /// of the answer's `cnf`, RFC 7800), which this crate does not check:
    /// for a deployment that checks it elsewhere, such as RFC 8705's
    /// `x5t#S256` checked against the client certificate by the TLS
    /// terminator. By default an answer whose `cnf` names any method but
    /// `jkt` (DPoP, checked by the [DPoP layer](crate::dpop)) is refused
    /// with 401 `invalid_token`, never taken as a plain bearer token.
    pub fn allow_confirmation_method(mut self, method: impl Into<String>) -> Self {
        let method = method.into().into_boxed_str();
        if !self.confirmation_methods.contains(&method) {
            self.confirmation_methods.push(method);
        }
        self
    }

    /// Uses this `reqwest` client (proxies, custom roots). It should not
    /// follow redirects.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] when the endpoint is not an absolute
    /// `https` URL (`http` on loopback only); [`ConfigError::Invalid`] for
    /// an empty client id, a zero timeout, or an HTTP client that cannot be
    /// built.
    pub fn build(self) -> Result<Introspector, ConfigError> {
        check_url("introspection endpoint", &self.url)?;
        let url = IntrospectionUrl::new(self.url.clone()).map_err(|_| ConfigError::InvalidUrl {
            what: "introspection endpoint",
            url: self.url.clone(),
            reason: "it is not a valid absolute URL",
        })?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "the introspection client id is empty".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "the introspection timeout must be more than zero".into(),
            ));
        }
        let client = match self.http {
            Some(c) => c,
            None => default_client()?,
        };
        let cache = self.cache.then(|| TokenCache::new(self.capacity.max(1)));
        Ok(Introspector(Arc::new(Inner {
            url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            auth: self.auth,
            http: HttpClient::new(client, MAX_RESPONSE_BYTES, self.timeout),
            timeout: self.timeout,
            retry_after: self.retry_after,
            audience: self.audience.as_deref().map(Audience::new),
            audience_check: self.audience_check,
            cache,
            max_ttl: self.max_ttl,
            inactive_ttl: self.inactive_ttl,
            confirmation_methods: self.confirmation_methods,
        })))
    }
}

/// oauth2's async HTTP client: the crate's one bounded exchange.
impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = FetchError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)
                .map_err(|e| FetchError::Build(e.without_url().to_string()))?;
            self.execute(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inner(check: AudienceCheck) -> Introspector {
        Introspector::builder(
            "https://as.example.com/introspect",
            "rs",
            SecretString::from("secret"),
        )
        .audience_check(check)
        .build()
        .unwrap()
    }

    fn parse(v: Value) -> IntrospectionResponse {
        serde_json::from_value(v).unwrap()
    }

    /// The principal carries its token's cache digest, from the
    /// introspection call and from the cache, for the token exchange to
    /// key its own cache by.
    #[cfg(feature = "token-exchange")]
    #[tokio::test]
    async fn the_principal_carries_the_cache_digest_of_its_token() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = || async {
            axum::Json(
                json!({"active": true, "sub": "alice", "exp": 4_000_000_000u64,
                              "aud": "https://mcp.example.com/mcp"}),
            )
        };
        let app = axum::Router::new().route("/introspect", axum::routing::post(answer));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let i = Introspector::builder(
            format!("http://{addr}/introspect"),
            "rs",
            SecretString::from("secret"),
        )
        .audience("https://mcp.example.com/mcp")
        .build()
        .unwrap();
        let digest = token_digest("opaque-token");
        let called = i.verify("opaque-token").await.unwrap();
        assert_eq!(called.token_digest(), Some(&digest));
        let cached = i.try_cached("opaque-token", i.audience()).unwrap().unwrap();
        assert_eq!(cached.token_digest(), Some(&digest));
    }

    #[test]
    fn active_response_becomes_a_principal_with_raw_claims() {
        let i = inner(AudienceCheck::WhenPresent);
        let v = i.0.verdict(parse(json!({
            "active": true, "sub": "alice", "client_id": "app",
            "scope": "read:data write:data", "exp": 4_000_000_000u64,
            "aud": "https://mcp.example.com/mcp", "tenant": "acme"
        })));
        let p =
            i.0.check(v, Some("https://mcp.example.com/mcp"), SystemTime::now())
                .unwrap();
        assert_eq!(p.scheme(), AuthScheme::Introspection);
        assert_eq!(p.subject(), Some("alice"));
        assert_eq!(p.issuer(), Some("https://as.example.com/introspect"));
        assert_eq!(p.client_id(), Some("app"));
        assert_eq!(p.scopes(), &Scopes::parse("read:data write:data"));
        assert_eq!(
            p.expires_at(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000))
        );
        assert_eq!(p.claim("tenant"), Some(&json!("acme")));
        assert_eq!(p.claim("sub"), Some(&json!("alice")));
        assert_eq!(p.claim("scope"), Some(&json!("read:data write:data")));
    }

    #[test]
    fn cnf_jkt_binds_the_principal_and_a_malformed_cnf_refuses() {
        let i = inner(AudienceCheck::WhenPresent);
        let now = SystemTime::now();
        let v = i.0.verdict(parse(json!({"active": true, "sub": "a", "token_type": "DPoP",
                                         "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})));
        let p = i.0.check(v, None, now).unwrap();
        assert_eq!(
            p.cnf_jkt(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
        let v = i.0.verdict(parse(json!({"active": true, "sub": "a"})));
        assert_eq!(i.0.check(v, None, now).unwrap().cnf_jkt(), None);
        let v = i.0.verdict(parse(
            json!({"active": true, "sub": "a", "cnf": {"jkt": 7}}),
        ));
        assert_eq!(
            i.0.check(v, None, now).unwrap_err().description(),
            "the token's cnf claim is malformed"
        );
    }

    /// Issue 23 6e: without `sub` (or `username`) the token is its
    /// client's own: a client identity, never the user of the same name;
    /// the issuer is the answer's `iss`, else the endpoint.
    #[test]
    fn subject_falls_back_to_username_and_a_client_is_its_own_kind() {
        let i = inner(AudienceCheck::WhenPresent);
        let now = SystemTime::now();
        let v =
            i.0.verdict(parse(json!({"active": true, "username": "bob"})));
        assert_eq!(i.0.check(v, None, now).unwrap().subject(), Some("bob"));
        let v =
            i.0.verdict(parse(json!({"active": true, "client_id": "user_001"})));
        let client = i.0.check(v, None, now).unwrap();
        assert_eq!(client.subject(), None);
        assert_eq!(client.client_id(), Some("user_001"));
        assert_eq!(client.kind(), crate::PrincipalKind::Client);
        let v = i.0.verdict(parse(
            json!({"active": true, "sub": "user_001", "client_id": "app"}),
        ));
        let user = i.0.check(v, None, now).unwrap();
        assert_ne!(user.identity_key(), client.identity_key());
        let v = i.0.verdict(parse(json!({"active": true, "sub": "user_001",
                                         "iss": "https://other.example.com"})));
        let other = i.0.check(v, None, now).unwrap();
        assert_eq!(other.issuer(), Some("https://other.example.com"));
        assert_ne!(user.identity_key(), other.identity_key());
        let v = i.0.verdict(parse(json!({"active": true})));
        assert_eq!(
            i.0.check(v, None, now).unwrap_err().description(),
            "the access token names no subject"
        );
    }

    /// Issue 23 6b: a certificate-bound token (RFC 8705 `x5t#S256`) is not
    /// a bearer token here, unless the deployment checks it elsewhere.
    #[test]
    fn a_cnf_method_nobody_checks_is_refused_unless_allowed() {
        let answer = json!({"active": true, "sub": "a",
                            "cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}});
        let now = SystemTime::now();
        let i = inner(AudienceCheck::WhenPresent);
        let e =
            i.0.check(i.0.verdict(parse(answer.clone())), None, now)
                .unwrap_err();
        assert_eq!(e.status(), 401);
        assert_eq!(e.kind().code(), "invalid_token");
        assert_eq!(
            e.description(),
            "the token is bound by a confirmation method (cnf) this server does not check"
        );
        let allowed = Introspector::builder(
            "https://as.example.com/introspect",
            "rs",
            SecretString::from("secret"),
        )
        .audience_check(AudienceCheck::WhenPresent)
        .allow_confirmation_method("x5t#S256")
        .build()
        .unwrap();
        let p = allowed
            .0
            .check(allowed.0.verdict(parse(answer)), None, now)
            .unwrap();
        assert_eq!(p.subject(), Some("a"));
    }

    #[test]
    fn inactive_and_expired_are_invalid_token() {
        let i = inner(AudienceCheck::WhenPresent);
        let now = SystemTime::now();
        let e =
            i.0.check(i.0.verdict(parse(json!({"active": false}))), None, now)
                .unwrap_err();
        assert_eq!(e.status(), 401);
        assert_eq!(e.description(), "the access token is not active");
        let v =
            i.0.verdict(parse(json!({"active": true, "sub": "a", "exp": 1000})));
        let e = i.0.check(v, None, now).unwrap_err();
        assert_eq!(
            (e.status().as_u16(), e.description()),
            (401, "the access token has expired")
        );
    }

    /// MCP 2026-07-28: the resource identifier in any case of scheme and
    /// host, with its default port, is this resource; another path is
    /// not. Refused before.
    #[test]
    fn the_audience_is_compared_up_to_rfc_3986_normalisation() {
        let now = SystemTime::now();
        let want = Some("https://mcp.example.com/mcp");
        for (aud, ok) in [
            (json!(["HTTPS://MCP.example.com:443/mcp"]), true),
            (json!("https://mcp.example.com/%6dcp"), true),
            (json!(["https://mcp.example.com/other"]), false),
            (json!("https://mcp.example.com/mcp/"), false),
        ] {
            let i = inner(AudienceCheck::Required);
            let body = json!({"active": true, "sub": "a", "aud": aud});
            let r = i.0.check(i.0.verdict(parse(body)), want, now);
            assert_eq!(r.is_ok(), ok, "{aud}");
        }
        // The configured audience's normal form, computed at build.
        let i = Introspector::builder(
            "https://as.example.com/introspect",
            "rs",
            SecretString::from("secret"),
        )
        .audience("https://MCP.example.com:443/mcp")
        .build()
        .unwrap();
        let body = json!({"active": true, "sub": "a", "aud": "https://mcp.example.com/mcp"});
        assert!(i
            .0
            .check(i.0.verdict(parse(body)), i.audience(), now)
            .is_ok());
    }

    #[test]
    fn audience_strictness() {
        let now = SystemTime::now();
        let want = Some("https://mcp.example.com/mcp");
        let with_other = json!({"active": true, "sub": "a", "aud": ["https://other.example.com"]});
        let with_ours =
            json!({"active": true, "sub": "a", "aud": ["x", "https://mcp.example.com/mcp"]});
        let without = json!({"active": true, "sub": "a"});
        let cases = [
            (AudienceCheck::WhenPresent, &with_other, false),
            (AudienceCheck::WhenPresent, &with_ours, true),
            (AudienceCheck::WhenPresent, &without, true),
            (AudienceCheck::Required, &with_other, false),
            (AudienceCheck::Required, &with_ours, true),
            (AudienceCheck::Required, &without, false),
            (AudienceCheck::Off, &with_other, true),
            (AudienceCheck::Off, &without, true),
        ];
        for (check, body, ok) in cases {
            let i = inner(check);
            let r = i.0.check(i.0.verdict(parse(body.clone())), want, now);
            assert_eq!(r.is_ok(), ok, "{check:?} {body}");
            if let Err(e) = r {
                assert_eq!(
                    e.description(),
                    "the access token was not issued for this resource"
                );
            }
        }
        // No expected audience configured: refused, unless told otherwise.
        for (check, ok) in [
            (AudienceCheck::Required, false),
            (AudienceCheck::WhenPresent, true),
            (AudienceCheck::Off, true),
        ] {
            let i = inner(check);
            let r = i.0.check(i.0.verdict(parse(with_ours.clone())), None, now);
            assert_eq!(r.is_ok(), ok, "{check:?}");
        }
    }

    #[test]
    fn the_default_requires_the_audience() {
        let i = Introspector::builder(
            "https://as.example.com/introspect",
            "rs",
            SecretString::from("secret"),
        )
        .build()
        .unwrap();
        let want = Some("https://mcp.example.com/mcp");
        let now = SystemTime::now();
        let without = json!({"active": true, "sub": "a"});
        let e =
            i.0.check(i.0.verdict(parse(without)), want, now)
                .unwrap_err();
        assert_eq!(
            (e.status().as_u16(), e.description()),
            (401, "the access token was not issued for this resource")
        );
    }

    #[test]
    fn only_access_token_types_are_accepted() {
        let i = inner(AudienceCheck::Off);
        let now = SystemTime::now();
        for (token_type, ok) in [
            (None, true),
            (Some("Bearer"), true),
            (Some("bearer"), true),
            (Some("DPoP"), true),
            (Some("urn:ietf:params:oauth:token-type:access_token"), true),
            (Some("refresh_token"), false),
            (Some("Refresh"), false),
            (Some("id_token"), false),
            (Some("N_A"), false),
            (
                Some("urn:ietf:params:oauth:token-type:refresh_token"),
                false,
            ),
        ] {
            let mut body = json!({"active": true, "sub": "a"});
            if let Some(t) = token_type {
                body["token_type"] = json!(t);
            }
            let r = i.0.check(i.0.verdict(parse(body)), None, now);
            assert_eq!(r.is_ok(), ok, "{token_type:?}");
            if let Err(e) = r {
                assert_eq!(
                    (e.status().as_u16(), e.description()),
                    (401, "the token is not an access token")
                );
            }
        }
    }

    #[test]
    fn ttl_is_bounded_by_exp_and_the_maximum() {
        let i = inner(AudienceCheck::WhenPresent);
        let soon = SystemTime::now() + Duration::from_secs(10);
        let secs = soon
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let c = i.cached(i.0.verdict(parse(json!({"active": true, "sub": "a", "exp": secs}))));
        assert!(c.ttl <= Duration::from_secs(10) && c.ttl > Duration::from_secs(7));
        let c = i.cached(i.0.verdict(parse(json!({"active": true, "sub": "a"}))));
        assert_eq!(c.ttl, DEFAULT_CACHE_TTL);
        let c = i.cached(i.0.verdict(parse(json!({"active": false}))));
        assert_eq!(c.ttl, DEFAULT_INACTIVE_TTL);
    }

    #[test]
    fn builder_refuses_bad_configuration_and_debug_hides_the_secret() {
        let b = |url: &str| Introspector::builder(url, "rs", SecretString::from("hunter2-secret"));
        assert!(matches!(
            b("http://as.example.com/introspect").build(),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(b("http://127.0.0.1:9/introspect").build().is_ok());
        assert!(b("https://as.example.com/i")
            .timeout(Duration::ZERO)
            .build()
            .is_err());
        assert!(
            Introspector::builder("https://as.example.com/i", " ", SecretString::from("x"))
                .build()
                .is_err()
        );
        let builder = b("https://as.example.com/i");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let built = builder.build().unwrap();
        assert!(!format!("{built:?}").contains("hunter2"));
    }
}

#[cfg(test)]
mod oauth2_limits {
    use super::IntrospectionResponse;

    /// What oauth2 5's `StandardTokenIntrospectionResponse` refuses to
    /// parse: these answers fail closed (503), never pass.
    #[test]
    fn shapes_oauth2_rejects() {
        for body in [
            r#"{"active":true,"sub":"a","exp":1700000000.5}"#,
            r#"{"active":"true","sub":"a"}"#,
            r#"{"sub":"a"}"#,
            r#"{"active":true,"scope":["a","b"]}"#,
        ] {
            assert!(
                serde_json::from_str::<IntrospectionResponse>(body).is_err(),
                "{body}"
            );
        }
        assert!(serde_json::from_str::<IntrospectionResponse>(
            r#"{"active":true,"aud":"x","exp":1700000000}"#
        )
        .is_ok());
    }
}
