//! The RFC 8693 client: [`TokenExchanger`], its builder and
//! [`ExchangedToken`].

use std::{fmt, sync::Arc, time::Duration};

use base64::Engine as _;
use http::{request::Parts, HeaderValue, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use super::{
    cache::{Entry, ExchangeCache},
    token::{ExchangedToken, Issued},
    ExchangeError, OAuthErrorCode, SubjectToken, Target,
};
use crate::{
    audit,
    config::ConfigError,
    discovery::AuthorizationServerMetadata,
    fetch::{default_client, FetchError, HttpClient},
    introspection::ClientAuth,
    principal::{Principal, Scopes},
    url::check_url,
};

/// The grant type of a token exchange (RFC 8693 §2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of an OAuth access token (RFC 8693 §3): the type of the
/// caller's token sent, and of the token asked for.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The token type of a JWT (RFC 8693 §3), accepted as an issued access
/// token's type.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Default deadline of one exchange, from connecting to the last byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of exchanged tokens cached.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// Default margin before an issued token's expiry at which it is no longer
/// served from the cache (a new one is exchanged).
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(30);
/// Largest token endpoint answer read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Exchanges a caller's verified access token ([`SubjectToken`]) for a
/// token issued for a downstream API (RFC 8693), through a bounded cache
/// with single flight. Cheap to clone; clones share the cache.
///
/// # Example
///
/// A tool that reads from another API for its caller:
///
/// ```no_run
/// use http::request::Parts;
/// use secrecy::SecretString;
/// use tower_mcp_auth::exchange::{ExchangeError, TokenExchanger};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let exchanger = TokenExchanger::builder(
///     "https://auth.example.com/oauth/token",
///     "mcp-server",
///     SecretString::from(std::env::var("OAUTH_CLIENT_SECRET")?),
/// )
/// .build()?;
///
/// async fn get_user_data(
///     exchanger: &TokenExchanger,
///     parts: &Parts,
///     http: &reqwest::Client,
/// ) -> Result<String, Box<dyn std::error::Error>> {
///     let authorization = exchanger
///         .authorization_for(parts, "https://users.example.com")
///         .await?; // ExchangeError: a clear JSON-RPC error for the tool's client
///     let body = http
///         .get("https://users.example.com/me")
///         .header(http::header::AUTHORIZATION, authorization)
///         .send()
///         .await?
///         .text()
///         .await?;
///     Ok(body)
/// }
/// # let _ = exchanger; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenExchanger(Arc<Inner>);

struct Inner {
    endpoint: String,
    client_id: String,
    client_secret: SecretString,
    auth: ClientAuth,
    actor: Option<(SecretString, String)>,
    http: HttpClient,
    refresh_before: Duration,
    cache: ExchangeCache,
}

impl fmt::Debug for TokenExchanger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchanger")
            .field("endpoint", &self.0.endpoint)
            .field("client_id", &self.0.client_id)
            .field("auth", &self.0.auth)
            .field("actor", &self.0.actor.as_ref().map(|(_, t)| t))
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenExchanger`]; see [`TokenExchanger::builder`].
#[must_use]
pub struct TokenExchangerBuilder {
    endpoint: String,
    client_id: String,
    client_secret: SecretString,
    auth: ClientAuth,
    actor: Option<(SecretString, String)>,
    http: Option<reqwest::Client>,
    timeout: Duration,
    capacity: u64,
    refresh_before: Duration,
}

impl fmt::Debug for TokenExchangerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchangerBuilder")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TokenExchanger {
    /// Starts an exchanger for the token endpoint `endpoint`,
    /// authenticating as `client_id` / `client_secret`
    /// (`client_secret_basic` unless changed).
    pub fn builder(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> TokenExchangerBuilder {
        TokenExchangerBuilder {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret,
            auth: ClientAuth::default(),
            actor: None,
            http: None,
            timeout: DEFAULT_TIMEOUT,
            capacity: DEFAULT_CACHE_CAPACITY,
            refresh_before: DEFAULT_REFRESH_BEFORE,
        }
    }

    /// A builder for the `token_endpoint` of a discovered authorization
    /// server ([`AuthorizationServerMetadata::discover`]), authenticating
    /// with `client_secret_basic`, or `client_secret_post` when that is the
    /// only one of the two the server lists.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the metadata names no token endpoint,
    /// or lists its grant types without token exchange.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use secrecy::SecretString;
    /// use tower_mcp_auth::discovery::AuthorizationServerMetadata;
    /// use tower_mcp_auth::exchange::TokenExchanger;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let metadata = AuthorizationServerMetadata::discover("https://auth.example.com").await?;
    /// let exchanger = TokenExchanger::from_metadata(
    ///     &metadata,
    ///     "mcp-server",
    ///     SecretString::from("…"),
    /// )?
    /// .build()?;
    /// # let _ = exchanger; Ok(()) }
    /// ```
    pub fn from_metadata(
        metadata: &AuthorizationServerMetadata,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Result<TokenExchangerBuilder, ConfigError> {
        let endpoint = metadata.token_endpoint.as_deref().ok_or_else(|| {
            ConfigError::Invalid(format!(
                "the authorization server {} publishes no token_endpoint",
                metadata.issuer
            ))
        })?;
        let grants = &metadata.grant_types_supported;
        if !grants.is_empty() && !grants.iter().any(|g| g == GRANT_TYPE) {
            return Err(ConfigError::Invalid(format!(
                "the authorization server {} does not list the token exchange grant ({GRANT_TYPE}) in grant_types_supported",
                metadata.issuer
            )));
        }
        let methods = &metadata.token_endpoint_auth_methods_supported;
        let has = |m: ClientAuth| methods.iter().any(|x| x == m.as_str());
        let auth = if !has(ClientAuth::ClientSecretBasic) && has(ClientAuth::ClientSecretPost) {
            ClientAuth::ClientSecretPost
        } else {
            ClientAuth::ClientSecretBasic
        };
        Ok(Self::builder(endpoint, client_id, client_secret).client_auth(auth))
    }

    /// The token endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.0.endpoint
    }

    /// A token for `target` on behalf of the owner of `subject`: a fresh
    /// cached one, else one exchange, shared by every concurrent call for
    /// the same caller token and target, within the deadline. Each
    /// exchange (not each cache hit) is an audit event.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Refused`] when the server refuses (its OAuth error
    /// code: `invalid_target`, `invalid_scope`, `invalid_grant`, …);
    /// [`ExchangeError::Unavailable`] when it cannot be reached within the
    /// deadline, answers another status, or answers something that is not
    /// a bearer access token.
    pub async fn exchange(
        &self,
        subject: &SubjectToken,
        target: &Target,
    ) -> Result<ExchangedToken, ExchangeError> {
        let cache = &self.0.cache;
        let key = ExchangeCache::key(subject, target);
        if let Some(hit) = cache.get_fresh_now(&key, target) {
            return Ok(hit);
        }
        // The slow path boxed: the future of every call stays small.
        Box::pin(cache.get_or_exchange(key, target, || self.0.call(subject, target))).await
    }

    /// The `Authorization` value for a request to `target` on behalf of
    /// the caller of the request `parts` belong to (its [`SubjectToken`],
    /// kept by [`KeepSubjectTokenLayer`](super::KeepSubjectTokenLayer)).
    /// The one call a tool handler makes.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::NoSubjectToken`] when the request carries no
    /// access token to exchange (an API key's caller); else as
    /// [`exchange`](Self::exchange).
    pub async fn authorization_for(
        &self,
        parts: &Parts,
        target: impl Into<Target>,
    ) -> Result<HeaderValue, ExchangeError> {
        let target = target.into();
        let ext = &parts.extensions;
        let caller = Principal::from_extensions(ext).map(Principal::name);
        let subject = require_subject(ext.get::<SubjectToken>(), caller, &target)?;
        Ok(self.exchange(subject, &target).await?.authorization())
    }
}

/// `subject`, or [`ExchangeError::NoSubjectToken`] audited for `caller`
/// (the principal's name, when there is one).
pub(crate) fn require_subject<'a>(
    subject: Option<&'a SubjectToken>,
    caller: Option<&str>,
    target: &Target,
) -> Result<&'a SubjectToken, ExchangeError> {
    subject.ok_or_else(|| {
        let err = ExchangeError::NoSubjectToken;
        audit::token_exchange(
            caller.unwrap_or(""),
            target.name(),
            audit::ExchangeOutcome::Refused {
                reason: "no_subject_token",
                detail: &err.to_string(),
            },
        );
        err
    })
}

/// A token endpoint's success answer (RFC 8693 §2.2.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    issued_token_type: Option<String>,
    expires_in: Option<serde_json::Number>,
    scope: Option<String>,
}

/// A token endpoint's error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

impl Inner {
    /// One exchange and its audit event.
    async fn call(&self, subject: &SubjectToken, target: &Target) -> Result<Entry, ExchangeError> {
        let result = self.request(subject, target).await;
        let outcome = match &result {
            Ok(_) => audit::ExchangeOutcome::Exchanged,
            Err(ExchangeError::Refused { code, description }) => audit::ExchangeOutcome::Refused {
                reason: code.label(),
                detail: description.as_deref().unwrap_or(code.as_str()),
            },
            Err(e) => audit::ExchangeOutcome::Failed(e.to_string()),
        };
        audit::token_exchange(subject.subject(), target.name(), outcome);
        result
    }

    async fn request(
        &self,
        subject: &SubjectToken,
        target: &Target,
    ) -> Result<Entry, ExchangeError> {
        let (form, authorization) = self.form(subject, target)?;
        let sent_at = Instant::now();
        let response = self
            .http
            .post_form(&self.endpoint, authorization, form)
            .await
            .map_err(unavailable)?;
        self.parse(response.status(), response.body(), sent_at, target)
    }

    /// The request's form, and its `Authorization` value with
    /// `client_secret_basic` (RFC 8693 §2.1).
    fn form(
        &self,
        subject: &SubjectToken,
        target: &Target,
    ) -> Result<(String, Option<HeaderValue>), ExchangeError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", GRANT_TYPE)
            .append_pair("subject_token", subject.expose())
            .append_pair("subject_token_type", ACCESS_TOKEN_TYPE)
            .append_pair("requested_token_type", ACCESS_TOKEN_TYPE);
        for r in target.resources() {
            form.append_pair("resource", r);
        }
        for a in target.audiences() {
            form.append_pair("audience", a);
        }
        if let Some(scope) = target.scope_param() {
            form.append_pair("scope", &scope);
        }
        if let Some((token, token_type)) = &self.actor {
            form.append_pair("actor_token", token.expose_secret())
                .append_pair("actor_token_type", token_type);
        }
        let authorization = match self.auth {
            ClientAuth::ClientSecretPost => {
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_secret", self.client_secret.expose_secret());
                None
            }
            _ => Some(self.basic()?),
        };
        Ok((form.finish(), authorization))
    }

    /// RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
    fn basic(&self) -> Result<HeaderValue, ExchangeError> {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!(
            "{}:{}",
            enc(&self.client_id),
            enc(self.client_secret.expose_secret())
        );
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        HeaderValue::try_from(value)
            .map_err(|_| ExchangeError::Unavailable("the client credentials cannot be sent".into()))
    }

    fn parse(
        &self,
        status: StatusCode,
        body: &[u8],
        sent_at: Instant,
        target: &Target,
    ) -> Result<Entry, ExchangeError> {
        if status.is_client_error() {
            return Err(match serde_json::from_slice::<ErrorResponse>(body) {
                Ok(e) => ExchangeError::Refused {
                    code: OAuthErrorCode::parse(&e.error),
                    description: e
                        .error_description
                        .map(|d| audit::bounded(&d).into_owned().into_boxed_str()),
                },
                Err(_) => ExchangeError::Unavailable(
                    format!("the token endpoint answered {status} without an OAuth error").into(),
                ),
            });
        }
        if status != StatusCode::OK {
            return Err(ExchangeError::Unavailable(
                format!("the token endpoint answered {status}").into(),
            ));
        }
        let r: TokenResponse = serde_json::from_slice(body).map_err(|e| {
            // serde's message may quote the body; only where it failed.
            ExchangeError::Unavailable(
                format!(
                    "the token endpoint answered something that is not a token response (line {}, column {})",
                    e.line(),
                    e.column()
                )
                .into(),
            )
        })?;
        if !r.token_type.eq_ignore_ascii_case("bearer") {
            return Err(ExchangeError::Unavailable(
                format!(
                    "the token endpoint issued a token of type {}, not a bearer access token",
                    audit::bounded(&r.token_type)
                )
                .into(),
            ));
        }
        if let Some(t) = r.issued_token_type.as_deref() {
            if t != ACCESS_TOKEN_TYPE && t != JWT_TOKEN_TYPE {
                return Err(ExchangeError::Unavailable(
                    format!(
                        "the token endpoint issued a {}, not an access token",
                        audit::bounded(t)
                    )
                    .into(),
                ));
            }
        }
        let mut header = HeaderValue::try_from(format!("Bearer {}", r.access_token))
            .ok()
            .filter(|_| !r.access_token.is_empty())
            .ok_or_else(|| {
                ExchangeError::Unavailable(
                    "the token endpoint issued an empty or malformed access token".into(),
                )
            })?;
        header.set_sensitive(true);
        let lifetime = r
            .expires_in
            .as_ref()
            .and_then(|n| n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)))
            .map(Duration::from_secs);
        let expires_at = lifetime.and_then(|l| sent_at.checked_add(l));
        // Measured from when the request left, so the cached token is
        // never served past its real expiry.
        let fresh_until = lifetime
            .and_then(|l| l.checked_sub(self.refresh_before))
            .filter(|l| !l.is_zero())
            .and_then(|l| sent_at.checked_add(l));
        let token = ExchangedToken::new(Issued {
            token: SecretString::from(r.access_token),
            header,
            issued_token_type: r.issued_token_type.map(String::into_boxed_str),
            expires_at,
            scopes: r.scope.as_deref().map(Scopes::parse),
        });
        Ok(Entry {
            token,
            fresh_until,
            target: target.clone(),
        })
    }
}

fn unavailable(e: FetchError) -> ExchangeError {
    ExchangeError::Unavailable(format!("the token endpoint failed: {e}").into())
}

impl TokenExchangerBuilder {
    /// Authenticates with `client_secret_post` instead of
    /// `client_secret_basic`.
    pub fn client_secret_post(self) -> Self {
        self.client_auth(ClientAuth::ClientSecretPost)
    }

    /// Sets the client authentication method (the introspection client's
    /// [`ClientAuth`]).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sends `token` as the `actor_token` of every exchange, with its
    /// `token_type` (an RFC 8693 §3 URI, such as [`ACCESS_TOKEN_TYPE`] or
    /// [`JWT_TOKEN_TYPE`]): the server may then issue a delegation token
    /// naming this server as the actor (`act`, RFC 8693 §4.1).
    pub fn actor_token(mut self, token: SecretString, token_type: impl Into<String>) -> Self {
        self.actor = Some((token, token_type.into()));
        self
    }

    /// The deadline of one exchange (default 5 s), from connecting to the
    /// last byte of the answer; past it the exchange fails with
    /// [`ExchangeError::Unavailable`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many exchanged tokens the cache holds (default 10,000).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long before an issued token's expiry it stops being served from
    /// the cache (default 30 s), so a downstream API never gets a token
    /// about to expire. A token issued without `expires_in`, or for less
    /// than this margin, is not cached.
    pub fn refresh_before(mut self, margin: Duration) -> Self {
        self.refresh_before = margin;
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
    pub fn build(self) -> Result<TokenExchanger, ConfigError> {
        check_url("token endpoint", &self.endpoint)?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "the token exchange client id is empty".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "the token exchange timeout must be more than zero".into(),
            ));
        }
        let client = match self.http {
            Some(c) => c,
            None => default_client()?,
        };
        Ok(TokenExchanger(Arc::new(Inner {
            endpoint: self.endpoint,
            client_id: self.client_id,
            client_secret: self.client_secret,
            auth: self.auth,
            actor: self.actor,
            http: HttpClient::new(client, MAX_RESPONSE_BYTES, self.timeout),
            refresh_before: self.refresh_before,
            cache: ExchangeCache::new(self.capacity),
        })))
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A token as the endpoint's answer `body` makes it.
    pub(crate) fn token(body: &str) -> ExchangedToken {
        super::tests::exchanger()
            .0
            .parse(
                StatusCode::OK,
                body.as_bytes(),
                Instant::now(),
                &Target::resource("https://r"),
            )
            .unwrap()
            .token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn exchanger() -> TokenExchanger {
        TokenExchanger::builder(
            "https://as.example.com/token",
            "mcp",
            SecretString::from("hunter2-secret"),
        )
        .build()
        .unwrap()
    }

    fn parse(status: u16, body: &str) -> Result<Entry, ExchangeError> {
        exchanger().0.parse(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            Instant::now(),
            &Target::resource("https://r"),
        )
    }

    /// A cache hit is found by the digest the subject token carries (its
    /// authenticator's), never by hashing the token again: another token
    /// under the same digest is a hit, and the first token under its own
    /// SHA-256 is a miss.
    #[tokio::test]
    async fn a_hit_is_keyed_by_the_carried_digest_not_a_new_hash() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let issue = move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                axum::Json(serde_json::json!({
                    "access_token": format!("issued-{n}"),
                    "token_type": "Bearer",
                    "expires_in": 300,
                }))
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/token", axum::routing::post(issue));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let x = TokenExchanger::builder(
            format!("http://{addr}/token"),
            "mcp",
            SecretString::from("s"),
        )
        .build()
        .unwrap();
        let target = Target::resource("https://users.example.com");
        let header = |t: ExchangedToken| t.authorization();
        let first = SubjectToken::with_digest("token-one", "alice", [7; 32]);
        let same_digest = SubjectToken::with_digest("token-two", "alice", [7; 32]);
        let own_digest = SubjectToken::new("token-one", "alice");
        let got = header(x.exchange(&first, &target).await.unwrap());
        assert_eq!(got, "Bearer issued-1");
        let got = header(x.exchange(&same_digest, &target).await.unwrap());
        assert_eq!(got, "Bearer issued-1");
        let got = header(x.exchange(&own_digest, &target).await.unwrap());
        assert_eq!(got, "Bearer issued-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn answers_that_are_not_bearer_access_tokens_are_refused() {
        let ok = parse(200, r#"{"access_token":"t","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","expires_in":300,"scope":"a b"}"#).unwrap();
        assert_eq!(ok.token.authorization(), "Bearer t");
        assert!(ok.token.authorization().is_sensitive());
        assert_eq!(ok.token.scopes(), Some(&Scopes::parse("a b")));
        assert!(ok.fresh_until.is_some());
        for (status, body, why) in [
            (
                200,
                r#"{"access_token":"t","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
                "type N_A",
            ),
            (
                200,
                r#"{"access_token":"t","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:refresh_token"}"#,
                "refresh_token",
            ),
            (200, r#"{"access_token":"","token_type":"Bearer"}"#, "empty"),
            (
                200,
                r#"{"access_token":"a\nb","token_type":"Bearer"}"#,
                "malformed",
            ),
            (200, r#"{"token_type":"Bearer"}"#, "not a token response"),
            (500, r#"{"error":"server_error"}"#, "500"),
            (302, "", "302"),
            (400, "<html>", "without an OAuth error"),
        ] {
            let e = parse(status, body).unwrap_err();
            assert!(matches!(e, ExchangeError::Unavailable(_)), "{body}: {e:?}");
            assert!(e.to_string().contains(why), "{e}");
        }
    }

    #[test]
    fn oauth_errors_are_refusals_with_their_code() {
        let e = parse(
            400,
            r#"{"error":"invalid_target","error_description":"no such API"}"#,
        )
        .unwrap_err();
        assert_eq!(e.oauth_code(), Some(&OAuthErrorCode::InvalidTarget));
        assert!(e.to_string().ends_with("invalid_target (no such API)"));
        let e = parse(401, r#"{"error":"invalid_client"}"#).unwrap_err();
        assert_eq!(e.oauth_code(), Some(&OAuthErrorCode::InvalidClient));
    }

    #[test]
    fn short_or_unknown_lifetimes_are_not_cached() {
        let body = |exp: &str| format!(r#"{{"access_token":"t","token_type":"bearer"{exp}}}"#);
        assert!(parse(200, &body("")).unwrap().fresh_until.is_none());
        assert!(parse(200, &body(r#","expires_in":30"#))
            .unwrap()
            .fresh_until
            .is_none());
        assert!(parse(200, &body(r#","expires_in":31"#))
            .unwrap()
            .fresh_until
            .is_some());
        assert!(parse(200, &body(r#","expires_in":120.5"#))
            .unwrap()
            .fresh_until
            .is_some());
    }

    #[test]
    fn basic_credentials_are_form_encoded_first_and_debug_hides_secrets() {
        let x = TokenExchanger::builder(
            "https://as.example.com/token",
            "a:b",
            SecretString::from("p w"),
        )
        .build()
        .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("a%3Ab:p+w");
        assert_eq!(x.0.basic().unwrap(), format!("Basic {b64}").as_str());
        assert!(!format!("{:?}", exchanger()).contains("hunter2"));
        let built =
            super::tests_support::token(r#"{"access_token":"secret-tok","token_type":"Bearer"}"#);
        assert!(!format!("{built:?}").contains("secret-tok"));
    }

    #[test]
    fn builder_checks() {
        let b = |url: &str| TokenExchanger::builder(url, "c", SecretString::from("s"));
        assert!(matches!(
            b("http://as.example.com/token").build(),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(b("http://127.0.0.1:9/token").build().is_ok());
        assert!(b("https://as.example.com/t")
            .timeout(Duration::ZERO)
            .build()
            .is_err());
        assert!(
            TokenExchanger::builder("https://as.example.com/t", " ", SecretString::from("s"))
                .build()
                .is_err()
        );
    }

    #[test]
    fn from_metadata_takes_the_endpoint_and_checks_the_grant() {
        let meta = AuthorizationServerMetadata::new("https://as.example.com")
            .token_endpoint("https://as.example.com/token");
        let x = TokenExchanger::from_metadata(&meta, "c", SecretString::from("s"))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(x.endpoint(), "https://as.example.com/token");
        let listed = meta.clone().grant_types_supported(["authorization_code"]);
        assert!(TokenExchanger::from_metadata(&listed, "c", SecretString::from("s")).is_err());
        let ok = meta.grant_types_supported(["authorization_code", GRANT_TYPE]);
        assert!(TokenExchanger::from_metadata(&ok, "c", SecretString::from("s")).is_ok());
        let none = AuthorizationServerMetadata::new("https://as.example.com");
        assert!(TokenExchanger::from_metadata(&none, "c", SecretString::from("s")).is_err());
    }
}
