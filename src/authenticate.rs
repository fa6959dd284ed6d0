//! One authenticator model: the [`Authenticator`] trait, and the one layer
//! ([`AuthenticateLayer`]), service ([`Authenticate`]) and
//! [`ResponseFuture`] that every authenticator of this crate (API key,
//! JWT, introspection) and of yours runs in.
//!
//! An authenticator says two things: where its credential is
//! ([`find`](Authenticator::find)) and whether it is good
//! ([`verify`](Authenticator::verify), at once or after waiting, as a
//! remote key set or an introspection endpoint may make it). Everything
//! else is decided here, once, the same way for every scheme:
//!
//! | the request | what happens |
//! | --- | --- |
//! | no credential of this authenticator's, and a [`Principal`] already there | passes on |
//! | no credential, layer [`optional`](AuthenticateLayer::optional) | passes on without a principal (a later layer may refuse it) |
//! | no credential | 401 `missing_credential` with the challenge |
//! | a credential that cannot be read (two of them, malformed) | what [`find`](Authenticator::find) says (400 / 401) |
//! | a credential, and a principal an earlier authenticator made | **one rule**: a bearer token is one credential, so a principal made from it by an earlier bearer authenticator means it is verified already (passes on); any other pair is two credentials: 400 `invalid_request` |
//! | [`Verdict::Accept`] | `accepted` audit event; **every** value of each [credential header](Authenticator::credential_headers) marked sensitive; the [`Principal`] inserted |
//! | [`Verdict::Refuse`] | `refused` audit event; the refusal with the challenge and, for a JSON-RPC POST, the request's id (read from at most 16 KiB of the refused body within one second, as rmcp reads it, else `null`; never from a body that passes on), rendered by the layer's [`ErrorRenderer`] |
//! | a response of this layer, accepted or refused | the authenticator's [response header](Authenticator::response_header), if any (DPoP's `DPoP-Nonce`) |
//! | [`Verdict::HandOn`] | passes on without a principal, marked [`UnverifiedCredential`]: a later authenticator of the same kind verifies it (and clears the mark) or the request is refused 401 `invalid_token` by whatever authorizes it |
//! | a bearer authenticator without DPoP, and `Authorization: DPoP <token>` | a credential, not none: the same rules as a found one; when optional, handed on as by [`Verdict::HandOn`] (a later layer with DPoP may verify it); when required, 401 `invalid_token` |
//!
//! A layer outside the authenticators that needs to know what was decided
//! as soon as it is (before a refusal waits for the body that carries its
//! JSON-RPC id, before the inner service runs) puts an
//! [`OnAuthentication`] listener into the request's extensions: the first
//! acceptance or refusal is told to it, once per authenticator that decides.
//! [`FailedAuthLayer`](crate::rate_limit::failed_auth::FailedAuthLayer)
//! counts a failed login this way.
//!
//! "The challenge" is the request's: the `realm` and `resource_metadata`
//! that a [`ProtectedResourceLayer`](crate::ProtectedResourceLayer) above
//! the stack put on it (a bare `Bearer` challenge without one).
//!
//! # Your own authenticator
//!
//! A client certificate checked by the TLS terminator in front of the
//! server, which forwards the certificate's subject in a header it strips
//! from client requests:
//!
//! ```
//! use axum::{Router, routing::get};
//! use http::{HeaderMap, HeaderName, Request};
//! use tower_mcp_auth::{
//!     authenticate::{AuthenticateLayer, Authenticator, Check, Verdict},
//!     AuthError, AuthScheme, Principal,
//! };
//!
//! static CLIENT_CERT: HeaderName = HeaderName::from_static("x-client-cert-subject");
//!
//! #[derive(Clone)]
//! struct ClientCert {
//!     allowed: Vec<String>,
//! }
//!
//! impl Authenticator for ClientCert {
//!     type Credential<'a> = &'a str;
//!     // Decided at once: this future is never made.
//!     type Future = std::future::Ready<Verdict>;
//!
//!     fn scheme(&self) -> AuthScheme {
//!         AuthScheme::custom("mtls", false)
//!     }
//!
//!     fn credential_headers(&self) -> &[HeaderName] {
//!         std::slice::from_ref(&CLIENT_CERT)
//!     }
//!
//!     fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<&'a str>, AuthError> {
//!         let mut values = req.headers().get_all(&CLIENT_CERT).iter();
//!         let Some(value) = values.next() else { return Ok(None) };
//!         if values.next().is_some() {
//!             return Err(AuthError::invalid_request("more than one client certificate"));
//!         }
//!         value.to_str().map(Some).map_err(|_| AuthError::invalid_token("unreadable subject"))
//!     }
//!
//!     fn verify(&self, subject: &str) -> Check<Self::Future> {
//!         Check::Ready(if self.allowed.iter().any(|a| a == subject) {
//!             Verdict::Accept(Principal::new(self.scheme(), subject))
//!         } else {
//!             Verdict::Refuse(AuthError::invalid_token("this certificate is not allowed"))
//!         })
//!     }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/whoami", get(|p: Principal| async move { p.name().to_owned() }))
//!     .layer(AuthenticateLayer::custom(ClientCert { allowed: vec!["CN=billing".into()] }));
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use axum::{body::Body, response::Response};
use http::{HeaderMap, HeaderName, Request};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use crate::unverified::UnverifiedCredential;
use crate::{
    audit,
    error::{AuthError, ErrorRenderer},
    future::BoxError,
    principal::{AuthScheme, Principal},
    refusal,
};

/// Turns a request's credential into a [`Principal`], or refuses it. See
/// the [module docs](self) for the steps every authenticator shares.
pub trait Authenticator: Send + Sync + 'static {
    /// The credential as [`find`](Self::find) reads it, borrowed from the
    /// request.
    type Credential<'a>;

    /// The slow path of [`verify`](Self::verify) (a key set or an
    /// introspection endpoint to wait for). An authenticator that always
    /// decides at once names any future here, `std::future::Ready<Verdict>`
    /// for example, and never makes one.
    type Future: Future<Output = Verdict> + Send + 'static;

    /// The scheme of the principals this authenticator makes. Its
    /// [name](AuthScheme::as_str) is the `layer` field of the audit events
    /// and metrics; whether it [is a bearer scheme](AuthScheme::is_bearer)
    /// decides the chaining rules (module docs).
    fn scheme(&self) -> AuthScheme;

    /// The headers the credential is read from: every value of each is
    /// marked sensitive once the request goes on, so that no later layer
    /// logs it.
    fn credential_headers(&self) -> &[HeaderName];

    /// Finds this authenticator's credential: `Ok(None)` when the request
    /// carries none (another scheme is not this authenticator's).
    ///
    /// # Errors
    ///
    /// A credential that cannot be read: two of them (400
    /// `invalid_request`), an empty or malformed one (401 `invalid_token`).
    fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<Self::Credential<'a>>, AuthError>;

    /// Verifies a credential [`find`](Self::find) found: at once when it
    /// can ([`Check::Ready`], the fast path, which allocates nothing of its
    /// own), else a future ([`Check::Pending`]).
    fn verify(&self, credential: Self::Credential<'_>) -> Check<Self::Future>;

    /// A header for the response to every request this authenticator
    /// accepted or refused (DPoP's `DPoP-Nonce`, RFC 9449 §8); none by
    /// default.
    fn response_header(&self) -> Option<(HeaderName, http::HeaderValue)> {
        None
    }
}

/// What an [`Authenticator`] decided about a credential.
#[derive(Debug)]
pub enum Verdict {
    /// Verified: the caller.
    Accept(Principal),
    /// Refused, for this reason (the layer adds the challenge, the
    /// request's JSON-RPC id, and renders it).
    Refuse(AuthError),
    /// Not this authenticator's to verify (an opaque token for a JWT
    /// authenticator): handed on, marked [`UnverifiedCredential`], to a
    /// later authenticator of the same kind.
    HandOn,
}

/// The verdict of a bearer authenticator on a token it verified. Unless a
/// DPoP wrapper checks the proofs of this authenticator's tokens (`dpop`),
/// a DPoP-bound token (one whose principal carries `cnf.jkt`) is refused:
/// taken without its proof it would be a bearer token again, and a stolen
/// one would work (RFC 9449 §7.1).
#[cfg(any(feature = "jwt", feature = "introspection"))]
pub(crate) fn refuse_bound(verdict: Verdict, dpop: bool) -> Verdict {
    match verdict {
        Verdict::Accept(p) if !dpop && p.cnf_jkt().is_some() => {
            Verdict::Refuse(AuthError::invalid_token(
                "the access token is DPoP-bound, and this resource takes no DPoP proofs",
            ))
        }
        other => other,
    }
}

/// [`Authenticator::verify`]'s answer: decided now, or a future.
#[derive(Debug)]
pub enum Check<F> {
    /// Decided at once (the fast path).
    Ready(Verdict),
    /// Decided once this future is.
    Pending(F),
}

/// The [`Layer`] that runs an [`Authenticator`]. Built by
/// [`ApiKeyLayer::new`](crate::api_key::ApiKeyLayer), `JwtLayer::new`,
/// `IntrospectionLayer::new`, or [`custom`](Self::custom) for your own.
#[must_use]
pub struct AuthenticateLayer<A> {
    config: Arc<Config<A>>,
}

impl<A> Clone for AuthenticateLayer<A> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<A: fmt::Debug> fmt::Debug for AuthenticateLayer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticateLayer")
            .field("config", &self.config)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Config<A> {
    pub(crate) authenticator: A,
    optional: bool,
    renderer: ErrorRenderer,
}

impl<A: Authenticator> AuthenticateLayer<A> {
    /// A required layer around your own authenticator.
    pub fn custom(authenticator: A) -> Self {
        Self {
            config: Arc::new(Config {
                authenticator,
                optional: false,
                renderer: ErrorRenderer::default(),
            }),
        }
    }

    /// The authenticator.
    #[must_use]
    pub fn authenticator(&self) -> &A {
        &self.config.authenticator
    }

    pub(crate) fn authenticator_mut(&mut self) -> &mut A
    where
        A: Clone,
    {
        &mut Arc::make_mut(&mut self.config).authenticator
    }

    /// The same layer (optional or not, its renderer) around another
    /// authenticator made from this one.
    #[cfg(feature = "dpop")]
    pub(crate) fn map_authenticator<B>(self, f: impl FnOnce(A) -> B) -> AuthenticateLayer<B>
    where
        A: Clone,
    {
        let config = Arc::unwrap_or_clone(self.config);
        AuthenticateLayer {
            config: Arc::new(Config {
                authenticator: f(config.authenticator),
                optional: config.optional,
                renderer: config.renderer,
            }),
        }
    }
}

impl<A: Authenticator + Clone> AuthenticateLayer<A> {
    /// Lets requests without a credential pass on without a principal (a
    /// later layer or the policy decides). A credential that is presented
    /// is still verified, and refused when bad.
    pub fn optional(mut self) -> Self {
        Arc::make_mut(&mut self.config).optional = true;
        self
    }

    /// Renders refusals with a custom renderer.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        Arc::make_mut(&mut self.config).renderer = renderer;
        self
    }
}

impl<S, A> Layer<S> for AuthenticateLayer<A> {
    type Service = Authenticate<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`AuthenticateLayer`].
pub struct Authenticate<S, A> {
    inner: S,
    config: Arc<Config<A>>,
}

impl<S: Clone, A> Clone for Authenticate<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, A: fmt::Debug> fmt::Debug for Authenticate<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticate")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, A> Authenticate<S, A> {
    crate::macros::inner_service_accessors!(S);
}

/// The one text of the two-credentials refusal.
const TWO_CREDENTIALS: &str =
    "more than one credential was sent; send either an API key or a bearer token";

impl<A: Authenticator> Config<A> {
    /// Refuses: the request's context (its challenge, from
    /// [`ProtectedResourceLayer`](crate::ProtectedResourceLayer)), the audit
    /// event, the rendering (after reading the request's JSON-RPC id from
    /// its body when nothing read it yet: [`refusal`](crate::refusal)).
    fn refuse<B>(&self, err: AuthError, req: Request<B>) -> refusal::Rendered
    where
        B: http_body::Body + Send + 'static,
    {
        // A required API key layer guards a target that takes API keys
        // only: its 401 offers no OAuth (no `Bearer`/`DPoP` challenge, no
        // `resource_metadata`).
        let err = if !self.optional
            && self.authenticator.scheme() == AuthScheme::ApiKey
            && err.status() == http::StatusCode::UNAUTHORIZED
        {
            err.with_api_key_challenge()
        } else {
            err
        };
        let err = err.with_request(&req);
        OnAuthentication::tell(
            req.extensions(),
            Decision::Refused {
                error: &err,
                principal: Principal::from_extensions(req.extensions()),
            },
        );
        audit::refused(
            self.authenticator.scheme().as_str(),
            &err,
            Principal::from_extensions(req.extensions()),
            req.method(),
            audit::path(req.uri(), req.extensions()),
        );
        match (
            refusal::render(&self.renderer, err, req),
            self.authenticator.response_header(),
        ) {
            (rendered, None) => rendered,
            (refusal::Rendered::Now(response), Some(header)) => {
                refusal::Rendered::Now(with_header(response, header))
            }
            (refusal::Rendered::Later(pending), Some(header)) => refusal::Rendered::Later(
                Box::pin(async move { with_header(pending.await, header) }),
            ),
        }
    }

    /// The response header of an accepted request.
    fn extra(&self, verdict: &Verdict) -> Extra {
        match verdict {
            Verdict::Accept(_) => self.authenticator.response_header().map(Box::new),
            _ => None,
        }
    }

    /// Applies a verdict: `None` to go on, else the refusal to render.
    fn apply<B>(&self, verdict: Verdict, req: &mut Request<B>) -> Option<AuthError> {
        let scheme = self.authenticator.scheme();
        match verdict {
            Verdict::Accept(principal) => {
                audit::accepted(
                    scheme.as_str(),
                    &principal,
                    req.method(),
                    audit::LazyPath::new(req.uri(), req.extensions()),
                );
                mark_sensitive(req.headers_mut(), self.authenticator.credential_headers());
                let ext = req.extensions_mut();
                // An acceptance is the last decision the listener hears:
                // it leaves with it, so the service (and every clone of
                // the request's parts there) does not carry it.
                OnAuthentication::take_and_tell(ext, Decision::Accepted(&principal));
                if ext
                    .get::<UnverifiedCredential>()
                    .is_some_and(|mark| mark.is_verified_by(scheme))
                {
                    ext.remove::<UnverifiedCredential>();
                }
                ext.insert(principal);
                None
            }
            Verdict::Refuse(err) => Some(err),
            Verdict::HandOn => {
                mark_sensitive(req.headers_mut(), self.authenticator.credential_headers());
                req.extensions_mut()
                    .insert(UnverifiedCredential::handed_on_by(scheme));
                None
            }
        }
    }
}

/// Finds the bearer token of a request (`Authorization: Bearer <token>`,
/// RFC 6750 §2.1) the way every bearer authenticator of this crate does,
/// for a bearer authenticator of your own: `Ok(None)` when no
/// `Authorization` header uses the `Bearer` scheme (any case); never from
/// the query string or the body.
///
/// # Errors
///
/// 400 `invalid_request` for more than one `Authorization` header; 401
/// `invalid_token` for an empty token, one longer than `max_len` bytes, or
/// one that is not an RFC 6750 `b64token`.
///
/// # Example
///
/// ```
/// use http::HeaderMap;
/// use tower_mcp_auth::authenticate::bearer_token;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", "bearer abc.def".parse().unwrap());
/// assert_eq!(bearer_token(&headers, 4096).unwrap(), Some("abc.def"));
/// headers.insert("authorization", "Bearer a b".parse().unwrap());
/// assert_eq!(bearer_token(&headers, 4096).unwrap_err().status(), 401);
/// ```
pub fn bearer_token(headers: &HeaderMap, max_len: usize) -> Result<Option<&str>, AuthError> {
    crate::bearer::find_bearer(headers, max_len)
}

/// `response` with an authenticator's [response
/// header](Authenticator::response_header).
fn with_header(mut response: Response, (name, value): (HeaderName, http::HeaderValue)) -> Response {
    response.headers_mut().insert(name, value);
    response
}

/// The response header of an accepted request, boxed: most authenticators
/// have none, and the future every request carries stays small.
type Extra = Option<Box<(HeaderName, http::HeaderValue)>>;

/// Marks every value of each header sensitive: one pass over the headers,
/// comparing names (no hashing, no lookup per name).
fn mark_sensitive(headers: &mut HeaderMap, names: &[HeaderName]) {
    for (name, value) in headers.iter_mut() {
        if names.contains(name) {
            value.set_sensitive(true);
        }
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for Authenticate<S, A>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone,
    A: Authenticator,
    ReqBody: http_body::Body + Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, A, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let authenticator = &config.authenticator;
        let existing = Principal::from_extensions(req.extensions()).map(Principal::scheme);
        let mut verified_before = false;
        // Decided while the credential borrows the request; refused after,
        // when the refusal may take the request's body for its id.
        let mut extra = None;
        let check = match authenticator.find(&req) {
            Err(err) => Err(err),
            // An access token in a scheme this bearer authenticator does
            // not take (`Authorization: DPoP` where no `.dpop()` is on):
            // a credential all the same, never the absence of one.
            Ok(None)
                if authenticator.scheme().is_bearer()
                    && crate::bearer::uses_dpop_scheme(req.headers()) =>
            {
                match existing {
                    Some(e) if e.is_bearer() => {
                        verified_before = true;
                        Ok(None)
                    }
                    Some(_) => Err(AuthError::invalid_request(TWO_CREDENTIALS)),
                    // Handed on, marked: a later layer with DPoP verifies
                    // it, or whatever authorizes the request refuses it.
                    None if config.optional => Ok(Some(Check::Ready(Verdict::HandOn))),
                    None => Err(AuthError::invalid_token(
                        "this resource takes no DPoP-bound access tokens",
                    )),
                }
            }
            Ok(None) => Ok(None),
            // One rule for "already authenticated": a bearer token is one
            // credential, which an earlier bearer authenticator verified.
            Ok(Some(_))
                if existing
                    .is_some_and(|e| e.is_bearer() && authenticator.scheme().is_bearer()) =>
            {
                verified_before = true;
                Ok(None)
            }
            Ok(Some(_)) if existing.is_some() => Err(AuthError::invalid_request(TWO_CREDENTIALS)),
            Ok(Some(credential)) => Ok(Some(authenticator.verify(credential))),
        };
        let check = match check {
            Ok(check) => check,
            Err(err) => return ResponseFuture::refused(config.refuse(err, req)),
        };
        match check {
            // It goes on carrying the credential: sensitive, whoever
            // verified it.
            None if verified_before => {
                mark_sensitive(req.headers_mut(), authenticator.credential_headers());
            }
            None if existing.is_some() => {}
            // Anonymous so far: said, for the layers below that read the
            // principal (so that they can tell this from a stack with no
            // authenticator above them).
            None if config.optional => {
                req.extensions_mut().insert(AuthenticatorRan);
            }
            None => {
                let err = AuthError::missing_credential();
                return ResponseFuture::refused(config.refuse(err, req));
            }
            Some(Check::Ready(verdict)) => {
                extra = config.extra(&verdict);
                if let Some(err) = config.apply(verdict, &mut req) {
                    return ResponseFuture::refused(config.refuse(err, req));
                }
            }
            Some(Check::Pending(future)) => {
                // The call waits: it takes the readied service and leaves a
                // clone in its place.
                let ready = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, ready);
                return ResponseFuture {
                    state: State::Verifying {
                        future,
                        // Boxed: the slow path only, so that the future
                        // every request carries stays small.
                        rest: Some(Box::new(Waiting {
                            inner,
                            req,
                            config: self.config.clone(),
                        })),
                    },
                };
            }
        }
        // Decided at once: the service `poll_ready` readied takes the call,
        // no clone needed.
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(req),
                extra,
            },
        }
    }
}

/// Left on a request an optional authenticator passed on without a
/// credential of its own: an authenticator did run above whatever reads
/// the principal next (see `misorder`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AuthenticatorRan;

/// What a pending verification holds until it is decided.
struct Waiting<S, A, B> {
    inner: S,
    req: Request<B>,
    config: Arc<Config<A>>,
}

pin_project! {
    /// The response future of [`Authenticate`]: the inner service's
    /// response (its body converted into an [`axum::body::Body`], free when
    /// it already is one), a refusal, or a verification to wait for first.
    pub struct ResponseFuture<S, A, B>
    where
        S: Service<Request<B>>,
        A: Authenticator,
    {
        #[pin]
        state: State<S, A, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, A, B>
    where
        S: Service<Request<B>>,
        A: Authenticator,
    {
        Inner { #[pin] future: S::Future, extra: Extra },
        Refused { response: Option<Response> },
        // A refusal reading the request's JSON-RPC id first.
        Rendering { future: refusal::Pending },
        Verifying { #[pin] future: A::Future, rest: Option<Box<Waiting<S, A, B>>> },
    }
}

impl<S, A, B> ResponseFuture<S, A, B>
where
    S: Service<Request<B>>,
    A: Authenticator,
{
    fn refused(refusal: refusal::Rendered) -> Self {
        Self {
            state: State::refused(refusal),
        }
    }
}

impl<S, A, B> State<S, A, B>
where
    S: Service<Request<B>>,
    A: Authenticator,
{
    fn refused(refusal: refusal::Rendered) -> Self {
        match refusal {
            refusal::Rendered::Now(response) => Self::Refused {
                response: Some(response),
            },
            refusal::Rendered::Later(future) => Self::Rendering { future },
        }
    }
}

impl<S, A, B> fmt::Debug for ResponseFuture<S, A, B>
where
    S: Service<Request<B>>,
    A: Authenticator,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, A, B, ResBody> Future for ResponseFuture<S, A, B>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
    A: Authenticator,
    B: http_body::Body + Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Inner { future, extra } => {
                    let result = ready!(future.poll(cx)).map(|r| r.map(Body::new));
                    return Poll::Ready(result.map(|mut response| {
                        if let Some(header) = extra.take() {
                            let (name, value) = *header;
                            response.headers_mut().insert(name, value);
                        }
                        response
                    }));
                }
                StateProj::Refused { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
                StateProj::Rendering { future } => return future.as_mut().poll(cx).map(Ok),
                StateProj::Verifying { future, rest } => {
                    let verdict = ready!(future.poll(cx));
                    let Waiting {
                        mut inner,
                        mut req,
                        config,
                    } = *rest.take().expect("polled after completion");
                    let extra = config.extra(&verdict);
                    match config.apply(verdict, &mut req) {
                        None => State::Inner {
                            future: inner.call(req),
                            extra,
                        },
                        Some(err) => State::refused(config.refuse(err, req)),
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

/// What an authenticator decided, as an [`AuthenticationListener`] is told.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Decision<'a> {
    /// The credential was verified: the caller.
    Accepted(&'a Principal),
    /// The request is refused (a bad or missing credential, two of them, a
    /// backend that cannot decide), before the refusal is rendered.
    Refused {
        /// The refusal.
        error: &'a AuthError,
        /// The principal an earlier layer verified, if any (a refusal of a
        /// verified caller is not a failed credential).
        principal: Option<&'a Principal>,
    },
}

/// Told what an authenticator decided about a request, when it decides;
/// see [`OnAuthentication`].
pub trait AuthenticationListener: Send + Sync + 'static {
    /// An authenticator decided. Called synchronously on the request's
    /// path: keep it short and never block.
    fn decided(&self, decision: Decision<'_>);
}

/// A listener in a request's extensions that every authenticator of the
/// [authenticator model](self) tells what it decided, as soon as it
/// decides: an acceptance before the request goes on, a refusal before it
/// is rendered (which may wait up to a second for the body that carries the
/// request's id). A layer outside the authenticators inserts it; the
/// authenticators know nothing of who listens. One listener per request: a
/// second insert replaces the first.
///
/// # Example
///
/// ```
/// use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
/// use tower_mcp_auth::authenticate::{AuthenticationListener, Decision, OnAuthentication};
///
/// #[derive(Default)]
/// struct Refusals(AtomicUsize);
///
/// impl AuthenticationListener for Refusals {
///     fn decided(&self, decision: Decision<'_>) {
///         if let Decision::Refused { .. } = decision {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let refusals = Arc::new(Refusals::default());
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(OnAuthentication::new(refusals.clone()));
/// ```
#[derive(Clone)]
pub struct OnAuthentication(Arc<dyn AuthenticationListener>);

impl OnAuthentication {
    /// A listener to insert into a request's extensions.
    #[must_use]
    pub fn new(listener: Arc<dyn AuthenticationListener>) -> Self {
        Self(listener)
    }

    /// Takes the listener out of `extensions`, if any, and tells it.
    pub(crate) fn take_and_tell(extensions: &mut http::Extensions, decision: Decision<'_>) {
        if let Some(listener) = extensions.remove::<Self>() {
            listener.0.decided(decision);
        }
    }

    /// Tells the listener in `extensions`, if any.
    pub(crate) fn tell(extensions: &http::Extensions, decision: Decision<'_>) {
        if let Some(listener) = extensions.get::<Self>() {
            listener.0.decided(decision);
        }
    }
}

impl fmt::Debug for OnAuthentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnAuthentication").finish_non_exhaustive()
    }
}
