//! Every refusal: [`AuthError`], rendered as a response with the right
//! status, an RFC 6750 `WWW-Authenticate` challenge and a JSON body.

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use http::{header, HeaderValue, StatusCode};
use serde_json::value::RawValue;

use crate::{
    challenge::{Challenge, ExtraChallenge},
    jsonrpc_id::JsonRpcId,
    principal::{Principal, Scopes, OFFLINE_ACCESS},
};

/// JSON-RPC error code for a refused credential (401).
pub const JSONRPC_UNAUTHORIZED: i64 = -32001;
/// JSON-RPC error code for a forbidden call (403).
pub const JSONRPC_FORBIDDEN: i64 = -32003;
/// JSON-RPC error code for a throttled call (429).
pub const JSONRPC_RATE_LIMITED: i64 = -32029;
/// JSON-RPC error code when a backend needed for the decision is down (503).
pub const JSONRPC_UNAVAILABLE: i64 = -32053;
/// JSON-RPC error code for a body over the size limit (413).
pub const JSONRPC_TOO_LARGE: i64 = -32013;
/// JSON-RPC error code for a body that did not arrive in time (408).
pub const JSONRPC_REQUEST_TIMEOUT: i64 = -32008;
/// JSON-RPC "Invalid Request" (-32600).
pub const JSONRPC_INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "Parse error" (-32700).
pub const JSONRPC_PARSE_ERROR: i64 = -32700;

/// What kind of refusal an [`AuthError`] is; decides its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No credential at all (401, challenge without an error code).
    MissingCredential,
    /// A credential that is present but bad, expired, revoked or unverifiable
    /// (401, `invalid_token`). Never a valid credential of the wrong kind:
    /// that is [`Forbidden`](Self::Forbidden).
    InvalidToken,
    /// The credentials are ambiguous or malformed at the HTTP level, such as
    /// two different credentials on one request (400, `invalid_request`).
    InvalidRequest,
    /// The request itself is malformed: not JSON, not JSON-RPC, headers that
    /// contradict the body (400, no challenge).
    MalformedRequest,
    /// Authenticated, but without a scope the call needs (403,
    /// `insufficient_scope`).
    InsufficientScope,
    /// Authenticated, but refused by a policy for another reason (403, no
    /// challenge): a check said no, a rule allows nobody, or the credential
    /// is valid but of a scheme the target does not take (a bearer token
    /// on an API-key-only tool, an API key on a bearer-only one).
    ///
    /// # Why a wrong scheme is 403, not 401 `invalid_token`
    ///
    /// `invalid_token` (RFC 6750 §3.1) says the token is "expired, revoked,
    /// malformed, or invalid for other reasons": an OAuth client that reads
    /// it throws the token away or refreshes it, and may loop, though the
    /// token is good. `insufficient_scope` is wrong too: no scope would
    /// help. RFC 6750 has no code for "this target takes another kind of
    /// credential", and the MCP authorization spec sends 401 only for a
    /// missing or invalid token; so the answer is the truth in HTTP's own
    /// terms: the server understood who is calling and refuses this call
    /// (403), with no `WWW-Authenticate` error and a description naming
    /// the scheme the target needs. A missing credential stays 401.
    Forbidden,
    /// The body is larger than the configured limit (413).
    PayloadTooLarge,
    /// The body did not arrive whole within the configured time (408).
    RequestTimeout,
    /// Throttled by a quota: too many calls (429, `Retry-After`).
    RateLimited,
    /// Throttled because this client address presented too many bad
    /// credentials lately: the failed-authentication cool-down of
    /// [`FailedAuthLayer`](crate::rate_limit::failed_auth::FailedAuthLayer)
    /// (429, `Retry-After`: the rest of the cool-down).
    TooManyFailedAuthentications,
    /// A backend needed for the decision (JWKS, introspection, rate-limit
    /// store) cannot answer (503, `Retry-After`).
    Unavailable,
}

impl AuthErrorKind {
    /// The HTTP status of this kind.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingCredential | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest | Self::MalformedRequest => StatusCode::BAD_REQUEST,
            Self::InsufficientScope | Self::Forbidden => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited | Self::TooManyFailedAuthentications => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The machine-readable code: the RFC 6750 error code where one applies,
    /// else a short snake-case name. Used in bodies and audit events.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingCredential => "missing_credential",
            Self::InvalidToken => "invalid_token",
            Self::InvalidRequest => "invalid_request",
            Self::MalformedRequest => "malformed_request",
            Self::InsufficientScope => "insufficient_scope",
            Self::Forbidden => "forbidden",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::RateLimited => "rate_limited",
            Self::TooManyFailedAuthentications => "too_many_failed_authentications",
            Self::Unavailable => "temporarily_unavailable",
        }
    }

    /// The JSON-RPC error code used when the request was JSON-RPC.
    #[must_use]
    pub fn jsonrpc_code(self) -> i64 {
        match self {
            Self::MissingCredential | Self::InvalidToken => JSONRPC_UNAUTHORIZED,
            Self::InvalidRequest | Self::MalformedRequest => JSONRPC_INVALID_REQUEST,
            Self::InsufficientScope | Self::Forbidden => JSONRPC_FORBIDDEN,
            Self::PayloadTooLarge => JSONRPC_TOO_LARGE,
            Self::RequestTimeout => JSONRPC_REQUEST_TIMEOUT,
            Self::RateLimited | Self::TooManyFailedAuthentications => JSONRPC_RATE_LIMITED,
            Self::Unavailable => JSONRPC_UNAVAILABLE,
        }
    }

    /// The RFC 6750 `error` code carried in the challenge, if any.
    fn challenge_error(self) -> Option<&'static str> {
        match self {
            Self::InvalidToken => Some("invalid_token"),
            Self::InvalidRequest => Some("invalid_request"),
            Self::InsufficientScope => Some("insufficient_scope"),
            _ => None,
        }
    }

    /// Whether a `WWW-Authenticate` challenge goes with this kind.
    fn has_challenge(self) -> bool {
        matches!(
            self,
            Self::MissingCredential
                | Self::InvalidToken
                | Self::InvalidRequest
                | Self::InsufficientScope
        )
    }
}

impl fmt::Display for AuthErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refusal. Renders as a complete HTTP response via [`IntoResponse`]; a
/// copy of the error is put into the response's extensions so an outer
/// layer can render it its own way.
///
/// Every refusal: [`AuthError`], rendered as a response with the right
/// status, an RFC 6750 `WWW-Authenticate` challenge and a JSON body.
///
/// | kind | status | challenge `error` |
/// | --- | --- | --- |
/// | [`MissingCredential`](AuthErrorKind::MissingCredential) | 401 | none (RFC 6750 §3.1) |
/// | [`InvalidToken`](AuthErrorKind::InvalidToken) | 401 | `invalid_token` |
/// | [`InvalidRequest`](AuthErrorKind::InvalidRequest) | 400 | `invalid_request` |
/// | [`MalformedRequest`](AuthErrorKind::MalformedRequest) | 400 | no challenge |
/// | [`InsufficientScope`](AuthErrorKind::InsufficientScope) | 403 | `insufficient_scope` |
/// | [`Forbidden`](AuthErrorKind::Forbidden) | 403 | no challenge |
/// | [`PayloadTooLarge`](AuthErrorKind::PayloadTooLarge) | 413 | no challenge |
/// | [`RequestTimeout`](AuthErrorKind::RequestTimeout) | 408 | no challenge |
/// | [`RateLimited`](AuthErrorKind::RateLimited) | 429 | no challenge, `Retry-After` |
/// | [`TooManyFailedAuthentications`](AuthErrorKind::TooManyFailedAuthentications) | 429 | no challenge, `Retry-After` |
/// | [`Unavailable`](AuthErrorKind::Unavailable) | 503 | no challenge, `Retry-After` |
///
/// The body is `{"error": …, "error_description": …}`, or, when the request
/// was JSON-RPC (a [`JsonRpcId`] is in its extensions), a JSON-RPC error
/// object that carries the request's `id`. A refusal never contains a
/// credential: descriptions are fixed strings chosen by this crate.
///
/// # Example
///
/// ```
/// use axum::response::IntoResponse;
/// use tower_mcp_auth::{AuthError, Scopes};
///
/// let response = AuthError::insufficient_scope(Scopes::parse("write:data")).into_response();
/// assert_eq!(response.status(), 403);
/// assert_eq!(
///     response.headers()["www-authenticate"],
///     r#"Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="write:data""#
/// );
/// ```
#[derive(Clone)]
pub struct AuthError(Box<ErrorInner>);

#[derive(Clone)]
struct ErrorInner {
    kind: AuthErrorKind,
    description: Cow<'static, str>,
    scope: Option<Scopes>,
    challenge: Option<Challenge>,
    retry_after: Option<Duration>,
    jsonrpc_id: Option<JsonRpcId>,
    jsonrpc_code: Option<i64>,
    error_code: Option<&'static str>,
    /// The scheme the refused credential came in, when not `Bearer`.
    extra: Option<ExtraChallenge>,
    api_key_only: bool,
}

impl AuthError {
    /// A refusal of the given kind with a description.
    ///
    /// The description is shown to the client (`error_description`): never
    /// put a credential or anything derived from one in it.
    #[must_use]
    pub fn new(kind: AuthErrorKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self(Box::new(ErrorInner {
            kind,
            description: description.into(),
            scope: None,
            challenge: None,
            retry_after: None,
            jsonrpc_id: None,
            jsonrpc_code: None,
            error_code: None,
            extra: None,
            api_key_only: false,
        }))
    }

    /// No credential was presented (401).
    #[must_use]
    pub fn missing_credential() -> Self {
        Self::new(
            AuthErrorKind::MissingCredential,
            "authentication is required",
        )
    }

    /// A credential was presented but is not valid (401 `invalid_token`).
    #[must_use]
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::InvalidToken, description)
    }

    /// The credentials are ambiguous or malformed (400 `invalid_request`).
    #[must_use]
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::InvalidRequest, description)
    }

    /// The request body or headers are malformed (400).
    #[must_use]
    pub fn malformed_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::MalformedRequest, description)
    }

    /// The caller lacks scopes (403 `insufficient_scope`); `scope` is what
    /// the challenge's `scope` parameter lists.
    ///
    /// # The step-up rule
    ///
    /// Every 403 `insufficient_scope` of this crate
    /// ([`AuthorizeLayer`](crate::AuthorizeLayer) on a plain route,
    /// [`McpPolicyLayer`](crate::mcp::McpPolicyLayer) on an MCP endpoint)
    /// lists **the scopes the token already has plus the ones the refused
    /// call requires** (for an any-of requirement, every scope that would
    /// do). That is the "recommended approach" of the MCP authorization
    /// specification (2025-11-25, *Runtime Insufficient Scope Errors*): a
    /// client that re-authorizes with exactly the challenged `scope` (as
    /// MCP SDKs do) keeps what it had instead of trading one permission
    /// for another and looping; and the specification asks a server to be
    /// consistent in its choice. RFC 6750 §3.1 lets `scope` name the scope
    /// needed; the union is that, plus what the client holds. From MCP
    /// 2026-07-28 clients accumulate scopes themselves, and the union stays
    /// a correct answer. A 401 without a credential names only the
    /// required scopes (there is nothing granted yet). The required scopes
    /// are the ones the rule names, all of them in the one challenge, even
    /// when a broader scope of the deployment's
    /// [`ScopeHierarchy`](crate::ScopeHierarchy) would also do; and
    /// `offline_access` is never named ([`with_scope`](Self::with_scope)).
    ///
    /// ```
    /// use tower_mcp_auth::{AuthError, Scopes};
    ///
    /// // A token with `read:data` calling something that needs `write:data`:
    /// let granted = Scopes::parse("read:data");
    /// let required = Scopes::parse("write:data");
    /// let err = AuthError::insufficient_scope(granted.union(&required));
    /// assert_eq!(err.scope().unwrap().to_string(), "read:data write:data");
    /// ```
    #[must_use]
    pub fn insufficient_scope(scope: Scopes) -> Self {
        Self::new(
            AuthErrorKind::InsufficientScope,
            "the access token lacks a required scope",
        )
        .with_scope(scope)
    }

    /// The step-up refusal of a caller holding `granted` for a call that
    /// requires `required`: 403 `insufficient_scope` whose `scope` is
    /// `granted ∪ required` ([the step-up rule](Self::insufficient_scope)).
    pub(crate) fn step_up(granted: &Scopes, required: &Scopes, description: &'static str) -> Self {
        Self::new(AuthErrorKind::InsufficientScope, description).with_scope(granted.union(required))
    }

    /// Refused by policy for a reason other than scopes (403).
    #[must_use]
    pub fn forbidden(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::Forbidden, description)
    }

    /// The body exceeds `limit` bytes (413).
    #[must_use]
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            AuthErrorKind::PayloadTooLarge,
            format!("the request body exceeds {limit} bytes"),
        )
    }

    /// The body did not arrive whole within `limit` (408).
    #[must_use]
    pub fn request_timeout(limit: Duration) -> Self {
        Self::new(
            AuthErrorKind::RequestTimeout,
            format!(
                "the request body did not arrive within {} seconds",
                limit.as_secs_f64()
            ),
        )
    }

    /// Throttled; the client may retry after `retry_after` (429).
    #[must_use]
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::new(AuthErrorKind::RateLimited, "rate limit exceeded").with_retry_after(retry_after)
    }

    /// This client address is cooling down after too many failed
    /// authentications, for `remaining` more (429, `error`
    /// `too_many_failed_authentications`); the description names the
    /// cool-down and its remaining whole seconds, rounded up like
    /// `Retry-After`, so a developer who locked out their own address
    /// while testing knows why and for how long.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_auth::AuthError;
    ///
    /// let err = AuthError::too_many_failed_authentications(Duration::from_millis(299_500));
    /// assert_eq!(err.status(), 429);
    /// assert_eq!(err.kind().code(), "too_many_failed_authentications");
    /// assert_eq!(
    ///     err.description(),
    ///     "too many failed authentications from this client address: \
    ///      it is in a cool-down for 300 more seconds"
    /// );
    /// ```
    #[must_use]
    pub fn too_many_failed_authentications(remaining: Duration) -> Self {
        let secs = retry_after_secs(remaining);
        Self::new(
            AuthErrorKind::TooManyFailedAuthentications,
            format!(
                "too many failed authentications from this client address: \
                 it is in a cool-down for {secs} more second{}",
                if secs == 1 { "" } else { "s" }
            ),
        )
        .with_retry_after(remaining)
    }

    /// A backend needed for the decision is down (503).
    #[must_use]
    pub fn unavailable(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::Unavailable, description)
    }

    /// Sets the challenge's `scope` parameter (the scopes the call needs),
    /// less `offline_access`: a request for a refresh token, not a
    /// resource's requirement, which the MCP authorization specification
    /// (2026-07-28) says a server SHOULD NOT put in a challenge.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthError, Scopes};
    ///
    /// let err = AuthError::insufficient_scope(Scopes::parse("offline_access read:data"));
    /// assert_eq!(err.scope().unwrap().to_string(), "read:data");
    /// ```
    #[must_use]
    pub fn with_scope(mut self, scope: Scopes) -> Self {
        self.0.scope = Some(scope.without(OFFLINE_ACCESS));
        self
    }

    /// Sets the `realm` and `resource_metadata` of the challenge.
    #[must_use]
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.0.challenge = Some(challenge);
        self
    }

    /// Sets `Retry-After` (rounded up to whole seconds, at least 1).
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.0.retry_after = Some(retry_after);
        self
    }

    /// Renders the body as a JSON-RPC error carrying this id.
    #[must_use]
    pub fn with_jsonrpc_id(mut self, id: JsonRpcId) -> Self {
        self.0.jsonrpc_id = Some(id);
        self
    }

    /// Overrides the JSON-RPC error code (for example
    /// [`JSONRPC_PARSE_ERROR`]).
    #[must_use]
    pub fn with_jsonrpc_code(mut self, code: i64) -> Self {
        self.0.jsonrpc_code = Some(code);
        self
    }

    /// Overrides the challenge's and the body's `error` code with one of
    /// another scheme's registry (RFC 9449's `invalid_dpop_proof`,
    /// `use_dpop_nonce`); the status stays the kind's.
    #[must_use]
    pub fn with_error_code(mut self, code: &'static str) -> Self {
        self.0.error_code = Some(code);
        self
    }

    /// Says the refused credential was presented with the scheme of
    /// `extra` (`DPoP`, RFC 9449 §7.1): the error goes in that challenge,
    /// after its own parameters (`algs="ES256"`), and the `Bearer`
    /// challenge beside it carries only `realm` and `resource_metadata`.
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use tower_mcp_auth::{AuthError, ExtraChallenge};
    ///
    /// let response = AuthError::invalid_token("DPoP proof htm does not match the request method")
    ///     .with_error_code("invalid_dpop_proof")
    ///     .with_extra_challenge(ExtraChallenge::new("DPoP").param("algs", "ES256"))
    ///     .into_response();
    /// let challenges: Vec<_> = response.headers().get_all("www-authenticate").iter().collect();
    /// assert_eq!(challenges[0], "Bearer");
    /// assert_eq!(
    ///     challenges[1],
    ///     r#"DPoP error="invalid_dpop_proof", error_description="DPoP proof htm does not match the request method", algs="ES256""#
    /// );
    /// ```
    #[must_use]
    pub fn with_extra_challenge(mut self, extra: ExtraChallenge) -> Self {
        self.0.extra = Some(extra);
        self
    }

    /// Says the refusing target takes API keys only: the one challenge is
    /// `ApiKey` (the scheme of `Authorization: ApiKey <key>`) with its
    /// `realm` and error, and neither a `Bearer` nor an extra challenge nor
    /// `resource_metadata` is offered, which would point an OAuth client at
    /// a flow that can never succeed there. Set by the rules and by a
    /// required (not optional) [`ApiKeyLayer`](crate::api_key::ApiKeyLayer).
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use tower_mcp_auth::{AuthError, Challenge, ExtraChallenge};
    ///
    /// let response = AuthError::missing_credential()
    ///     .with_challenge(
    ///         Challenge::new(None, Some("https://mcp.example.com/.well-known/oauth-protected-resource".into()))
    ///             .with_extra(ExtraChallenge::new("DPoP").param("algs", "ES256")),
    ///     )
    ///     .with_api_key_challenge()
    ///     .into_response();
    /// let challenges: Vec<_> = response.headers().get_all("www-authenticate").iter().collect();
    /// assert_eq!(challenges, ["ApiKey"]);
    /// ```
    #[must_use]
    pub fn with_api_key_challenge(mut self) -> Self {
        self.0.api_key_only = true;
        self
    }

    /// Whether the challenge offers API keys only
    /// ([`with_api_key_challenge`](Self::with_api_key_challenge)).
    #[must_use]
    pub fn is_api_key_only(&self) -> bool {
        self.0.api_key_only
    }

    /// The `error` code of the challenge and the body: the
    /// [override](Self::with_error_code), else the kind's.
    #[must_use]
    pub fn error_code(&self) -> &'static str {
        self.0.error_code.unwrap_or_else(|| self.0.kind.code())
    }

    /// Picks up what the request's extensions say about how to render: its
    /// [`JsonRpcId`], and a [`Challenge`] when none is set yet.
    #[must_use]
    pub fn with_request_context(mut self, extensions: &http::Extensions) -> Self {
        if self.0.jsonrpc_id.is_none() {
            self.0.jsonrpc_id = extensions.get::<JsonRpcId>().cloned();
        }
        if self.0.challenge.is_none() {
            self.0.challenge = extensions.get::<Challenge>().cloned();
        }
        // A caller whose token is bound to a key (`cnf.jkt`: it proved
        // possession, in the resource's second scheme, DPoP, since a bound
        // token is accepted only so) is answered in that scheme: the 403
        // step-up names the scopes in the extra challenge.
        if self.0.extra.is_none()
            && Principal::from_extensions(extensions).is_some_and(|p| p.cnf_jkt().is_some())
        {
            self.0.extra = self
                .0
                .challenge
                .as_ref()
                .and_then(Challenge::extra)
                .cloned();
        }
        self
    }

    /// [`with_request_context`](Self::with_request_context) for a layer
    /// that has the request but has not read its body (an authentication
    /// layer in front of an MCP endpoint). When no [`JsonRpcId`] is known
    /// and the request is a Streamable HTTP message — a `POST` of
    /// `application/json` that accepts `text/event-stream`, as MCP clients
    /// must send — the body becomes a JSON-RPC error with `id: null`, which
    /// JSON-RPC allows for a message whose id was not read. MCP clients
    /// then show this error's description (the Python SDK otherwise
    /// reports a bare "Server returned an error response"). Any other
    /// request keeps the plain JSON body.
    ///
    /// The crate's own authenticators ([`AuthenticateLayer`](crate::authenticate::AuthenticateLayer))
    /// and [`FailedAuthLayer`](crate::rate_limit::failed_auth::FailedAuthLayer)
    /// go one step further when they refuse such a request: they read up
    /// to 16 KiB of its body (never the body of a request they let
    /// through) and replace the `null` with the request's id, parsed as
    /// rmcp parses it; see README, "Refusals".
    #[must_use]
    pub fn with_request<B>(self, req: &http::Request<B>) -> Self {
        let err = self.with_request_context(req.extensions());
        if err.0.jsonrpc_id.is_none() && is_streamable_http_message(req) {
            err.with_jsonrpc_id(JsonRpcId::null())
        } else {
            err
        }
    }

    /// The kind of refusal.
    #[must_use]
    pub fn kind(&self) -> AuthErrorKind {
        self.0.kind
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.0.kind.status()
    }

    /// The human-readable description sent as `error_description`.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.0.description
    }

    /// The scopes named in the challenge, if any.
    #[must_use]
    pub fn scope(&self) -> Option<&Scopes> {
        self.0.scope.as_ref()
    }

    /// The `Retry-After` delay, if any.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// The JSON-RPC id the body will carry, if the request was JSON-RPC.
    #[must_use]
    pub fn jsonrpc_id(&self) -> Option<&JsonRpcId> {
        self.0.jsonrpc_id.as_ref()
    }

    /// The JSON-RPC error code the body will carry.
    #[must_use]
    pub fn jsonrpc_code(&self) -> i64 {
        self.0
            .jsonrpc_code
            .unwrap_or_else(|| self.0.kind.jsonrpc_code())
    }

    /// The `Bearer` `WWW-Authenticate` value, for kinds that carry a
    /// challenge. It carries the error, unless the refused credential was
    /// presented with another scheme ([`www_authenticate_extra`](Self::www_authenticate_extra)).
    #[must_use]
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        if !self.0.kind.has_challenge() {
            return None;
        }
        if self.0.api_key_only {
            return self.render_challenge("ApiKey", true, &[]);
        }
        self.render_challenge("Bearer", self.0.extra.is_none(), &[])
    }

    /// The second `WWW-Authenticate` value (an [`ExtraChallenge`], such as
    /// RFC 9449's `DPoP`), sent after the `Bearer` one when the resource
    /// accepts a second scheme ([`Challenge::with_extra`]) or the refusal
    /// is of a credential of that scheme
    /// ([`with_extra_challenge`](Self::with_extra_challenge)).
    #[must_use]
    pub fn www_authenticate_extra(&self) -> Option<HeaderValue> {
        if !self.0.kind.has_challenge() || self.0.api_key_only {
            return None;
        }
        let extra = match &self.0.extra {
            Some(extra) => Some(extra),
            None => self.0.challenge.as_ref().and_then(Challenge::extra),
        }?;
        self.render_challenge(extra.scheme(), self.0.extra.is_some(), extra.params())
    }

    /// One challenge: `scheme`, then `realm`, the error when `with_error`,
    /// the scheme's own `params`, `resource_metadata`.
    fn render_challenge(
        &self,
        scheme: &str,
        with_error: bool,
        params: &[(Cow<'static, str>, String)],
    ) -> Option<HeaderValue> {
        let kind = self.0.kind;
        let mut out = String::from(scheme);
        let mut first = true;
        let mut param = |name: &str, value: &str| {
            out.push_str(if first { " " } else { ", " });
            first = false;
            out.push_str(name);
            out.push_str("=\"");
            push_quoted(&mut out, value);
            out.push('"');
        };
        let challenge = self.0.challenge.as_ref();
        if let Some(realm) = challenge.and_then(Challenge::realm) {
            param("realm", realm);
        }
        if let Some(code) = kind.challenge_error().filter(|_| with_error) {
            param("error", self.0.error_code.unwrap_or(code));
            param("error_description", &self.0.description);
        }
        // The scopes go with the error; without an error (no credential)
        // they are a hint for either scheme. An API key challenge offers
        // no OAuth: no scope, no metadata.
        let api_key = self.0.api_key_only;
        let scope_here = !api_key && (with_error || kind.challenge_error().is_none());
        if let Some(scope) = self
            .0
            .scope
            .as_ref()
            .filter(|s| !s.is_empty() && scope_here)
        {
            param("scope", &scope.to_string());
        }
        for (name, value) in params {
            param(name, value);
        }
        if let Some(url) = challenge
            .and_then(Challenge::resource_metadata)
            .filter(|_| !api_key)
        {
            param("resource_metadata", url);
        }
        // Every byte pushed is visible ASCII or a space (see `push_quoted`).
        HeaderValue::from_str(&out).ok()
    }

    fn body(&self) -> String {
        let inner = &*self.0;
        let mut data = serde_json::Map::new();
        data.insert("error".into(), self.error_code().into());
        data.insert(
            "error_description".into(),
            inner.description.as_ref().into(),
        );
        if let Some(scope) = inner.scope.as_ref().filter(|s| !s.is_empty()) {
            data.insert("scope".into(), scope.to_string().into());
        }
        if let Some(retry) = inner.retry_after {
            data.insert("retry_after".into(), retry_after_secs(retry).into());
        }
        match &inner.jsonrpc_id {
            None => serde_json::Value::Object(data).to_string(),
            Some(id) => {
                #[derive(serde::Serialize)]
                struct Envelope<'a> {
                    jsonrpc: &'static str,
                    id: Box<RawValue>,
                    error: ErrorObject<'a>,
                }
                #[derive(serde::Serialize)]
                struct ErrorObject<'a> {
                    code: i64,
                    message: &'a str,
                    data: serde_json::Value,
                }
                serde_json::to_string(&Envelope {
                    jsonrpc: "2.0",
                    id: id.rendered(),
                    error: ErrorObject {
                        code: self.jsonrpc_code(),
                        message: &inner.description,
                        data: serde_json::Value::Object(data),
                    },
                })
                .unwrap_or_default()
            }
        }
    }
}

/// A `POST` of JSON that accepts an SSE answer: a JSON-RPC message on MCP's
/// Streamable HTTP transport.
pub(crate) fn is_streamable_http_message<B>(req: &http::Request<B>) -> bool {
    let headers = req.headers();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    let sse = headers.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|range| {
                range
                    .split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
            })
        })
    });
    req.method() == http::Method::POST && json && sse
}

/// Pushes `value` as the content of a quoted string whose characters stay
/// within what RFC 6750 allows in `error_description` and `scope`
/// (`%x20-21 / %x23-5B / %x5D-7E`): `"` and `\` become `'` and `/`, and
/// anything outside visible ASCII becomes `?`.
fn push_quoted(out: &mut String, value: &str) {
    out.extend(value.chars().map(|c| match c {
        '"' => '\'',
        '\\' => '/',
        ' '..='~' => c,
        _ => '?',
    }));
}

fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = self.www_authenticate() {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(value) = self.www_authenticate_extra() {
            headers.append(header::WWW_AUTHENTICATE, value);
        }
        if let Some(retry) = self.0.retry_after {
            headers.insert(header::RETRY_AFTER, retry_after_secs(retry).into());
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.0.kind)
            .field("description", &self.0.description)
            .field("scope", &self.0.scope)
            .field("retry_after", &self.0.retry_after)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind, self.0.description)
    }
}

impl std::error::Error for AuthError {}

type RenderFn = dyn Fn(AuthError) -> Response + Send + Sync;

/// How a layer turns an [`AuthError`] into a response. The default is
/// [`AuthError`]'s own [`IntoResponse`]; replace it to change bodies or add
/// headers.
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use tower_mcp_auth::api_key::{ApiKeyLayer, ApiKeys};
/// use tower_mcp_auth::ErrorRenderer;
///
/// let renderer = ErrorRenderer::new(|err| {
///     let mut response = err.into_response();
///     response.headers_mut().insert("x-auth-refused", "1".parse().unwrap());
///     response
/// });
/// let layer = ApiKeyLayer::new(ApiKeys::new()).renderer(renderer);
/// ```
#[derive(Clone, Default)]
pub struct ErrorRenderer(Option<Arc<RenderFn>>);

impl ErrorRenderer {
    /// A renderer from a closure.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(AuthError) -> Response + Send + Sync + 'static,
    {
        Self(Some(Arc::new(f)))
    }

    /// Renders a refusal.
    #[must_use]
    pub fn render(&self, err: AuthError) -> Response {
        match &self.0 {
            Some(f) => f(err),
            None => err.into_response(),
        }
    }
}

impl fmt::Debug for ErrorRenderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ErrorRenderer(custom)"
        } else {
            "ErrorRenderer(default)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};

    async fn body_json(response: Response) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn challenge() -> Challenge {
        Challenge::new(
            Some("mcp".into()),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp".into()),
        )
    }

    #[tokio::test]
    async fn missing_credential_has_no_error_code() {
        let response = AuthError::missing_credential()
            .with_challenge(challenge())
            .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="mcp", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
        );
        assert!(response.extensions().get::<AuthError>().is_some());
        assert_eq!(
            body_json(response).await,
            json!({"error": "missing_credential", "error_description": "authentication is required"})
        );
    }

    #[tokio::test]
    async fn insufficient_scope_lists_scopes_and_quotes_safely() {
        let err = AuthError::new(
            AuthErrorKind::InsufficientScope,
            "needs \"write\" \\ more\r\nscope é",
        )
        .with_scope(Scopes::parse("write:data read:data"))
        .with_challenge(challenge());
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="mcp", error="insufficient_scope", error_description="needs 'write' / more??scope ?", scope="read:data write:data", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
        );
    }

    #[tokio::test]
    async fn dpop_challenge_beside_bearer_with_the_error_in_the_scheme_used() {
        let both = challenge().with_extra(ExtraChallenge::new("DPoP").param("algs", "ES256 EdDSA"));
        let meta = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
        let values = |err: AuthError| {
            let response = err.into_response();
            response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        // A bearer token refused: the error in the Bearer challenge.
        assert_eq!(
            values(AuthError::invalid_token("expired").with_challenge(both.clone())),
            [
                format!(
                    r#"Bearer realm="mcp", error="invalid_token", error_description="expired", resource_metadata="{meta}""#
                ),
                format!(r#"DPoP realm="mcp", algs="ES256 EdDSA", resource_metadata="{meta}""#),
            ]
        );
        // A DPoP proof refused: the error (and its code) in the DPoP one.
        let err = AuthError::invalid_token("bad proof")
            .with_error_code("invalid_dpop_proof")
            .with_extra_challenge(ExtraChallenge::new("DPoP").param("algs", "ES256"))
            .with_challenge(both.clone());
        assert_eq!(err.error_code(), "invalid_dpop_proof");
        assert_eq!(
            values(err.clone()),
            [
                format!(r#"Bearer realm="mcp", resource_metadata="{meta}""#),
                format!(
                    r#"DPoP realm="mcp", error="invalid_dpop_proof", error_description="bad proof", algs="ES256", resource_metadata="{meta}""#
                ),
            ]
        );
        assert_eq!(
            body_json(err.into_response()).await["error"],
            "invalid_dpop_proof"
        );
        // A 403 to a caller with a DPoP-bound principal: in the DPoP one.
        let mut ext = http::Extensions::new();
        ext.insert(both.clone());
        ext.insert(crate::Principal::new(crate::AuthScheme::Jwt, "u").with_cnf_jkt("jkt"));
        let err =
            AuthError::insufficient_scope(Scopes::parse("write:data")).with_request_context(&ext);
        let got = values(err);
        assert!(!got[0].contains("error="), "{got:?}");
        assert!(
            got[1].starts_with(r#"DPoP realm="mcp", error="insufficient_scope""#),
            "{got:?}"
        );
        assert!(got[1].contains(r#"scope="write:data""#), "{got:?}");
        // No DPoP on the resource: one Bearer challenge, as before.
        assert_eq!(
            values(AuthError::missing_credential().with_challenge(challenge())).len(),
            1
        );
        // No challenge for a 503.
        assert!(values(
            AuthError::unavailable("down")
                .with_extra_challenge(ExtraChallenge::new("DPoP").param("algs", "ES256"))
        )
        .is_empty());
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut b = http::Request::builder().method(method).uri("/mcp");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    // Interop regression: the Python MCP SDK shows a refusal's message only
    // when the body is a JSON-RPC error (an unread id may be null).
    #[tokio::test]
    async fn streamable_http_message_gets_a_jsonrpc_error_with_null_id() {
        let mcp = request(
            "POST",
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("accept", "application/json, text/event-stream"),
            ],
        );
        let response = AuthError::invalid_token("the API key is not valid")
            .with_request(&mcp)
            .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            body_json(response).await,
            json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {
                    "code": JSONRPC_UNAUTHORIZED,
                    "message": "the API key is not valid",
                    "data": {"error": "invalid_token", "error_description": "the API key is not valid"}
                }
            })
        );

        // A known id wins over the null one.
        let mut with_id = request(
            "POST",
            &[
                ("content-type", "application/json"),
                ("accept", "text/event-stream"),
            ],
        );
        with_id
            .extensions_mut()
            .insert(JsonRpcId::new(&RawValue::from_string("7".into()).unwrap()));
        let err = AuthError::missing_credential().with_request(&with_id);
        assert_eq!(err.jsonrpc_id().map(JsonRpcId::get), Some("7"));

        // Anything else keeps the plain body: a REST POST of JSON, a GET for
        // the SSE stream, a form post.
        for plain in [
            request(
                "POST",
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
                ],
            ),
            request("POST", &[("content-type", "application/json")]),
            request("GET", &[("accept", "text/event-stream")]),
            request(
                "POST",
                &[
                    ("content-type", "text/plain"),
                    ("accept", "text/event-stream"),
                ],
            ),
        ] {
            let err = AuthError::missing_credential().with_request(&plain);
            assert!(err.jsonrpc_id().is_none(), "{plain:?}");
            assert_eq!(
                body_json(err.into_response()).await,
                json!({"error": "missing_credential", "error_description": "authentication is required"})
            );
        }
    }

    #[tokio::test]
    async fn jsonrpc_body_carries_the_request_id() {
        let mut ext = http::Extensions::new();
        ext.insert(JsonRpcId::new(
            &RawValue::from_string("\"req-7\"".into()).unwrap(),
        ));
        let response = AuthError::invalid_token("the token has expired")
            .with_request_context(&ext)
            .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            body_json(response).await,
            json!({
                "jsonrpc": "2.0",
                "id": "req-7",
                "error": {
                    "code": JSONRPC_UNAUTHORIZED,
                    "message": "the token has expired",
                    "data": {"error": "invalid_token", "error_description": "the token has expired"}
                }
            })
        );
    }

    #[tokio::test]
    async fn retry_after_is_rounded_up_and_never_zero() {
        for (d, want) in [
            (Duration::from_millis(1), "1"),
            (Duration::ZERO, "1"),
            (Duration::from_millis(1500), "2"),
            (Duration::from_secs(3), "3"),
        ] {
            let response = AuthError::rate_limited(d).into_response();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[header::RETRY_AFTER], want, "{d:?}");
            assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        }
    }

    #[test]
    fn statuses() {
        use AuthErrorKind::*;
        for (kind, status) in [
            (MissingCredential, 401),
            (InvalidToken, 401),
            (InvalidRequest, 400),
            (MalformedRequest, 400),
            (InsufficientScope, 403),
            (Forbidden, 403),
            (PayloadTooLarge, 413),
            (RequestTimeout, 408),
            (RateLimited, 429),
            (TooManyFailedAuthentications, 429),
            (Unavailable, 503),
        ] {
            assert_eq!(kind.status().as_u16(), status, "{kind}");
        }
        assert_eq!(
            AuthError::malformed_request("x")
                .with_jsonrpc_code(JSONRPC_PARSE_ERROR)
                .jsonrpc_code(),
            -32700
        );
    }

    #[test]
    fn custom_renderer_replaces_default() {
        let r =
            ErrorRenderer::new(|err| (StatusCode::IM_A_TEAPOT, err.to_string()).into_response());
        assert_eq!(
            r.render(AuthError::missing_credential()).status(),
            StatusCode::IM_A_TEAPOT
        );
        assert_eq!(
            ErrorRenderer::default()
                .render(AuthError::missing_credential())
                .status(),
            401
        );
    }
}
