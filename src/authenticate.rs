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
//! | no credential, layer [`optional`](AuthenticateLayer::optional) | passes on without a principal (with the challenge for a later refusal) |
//! | no credential | 401 `missing_credential` with the challenge |
//! | a credential that cannot be read (two of them, malformed) | what [`find`](Authenticator::find) says (400 / 401) |
//! | a credential, and a principal an earlier authenticator made | **one rule**: a bearer token is one credential, so a principal made from it by an earlier bearer authenticator means it is verified already (passes on); any other pair is two credentials: 400 `invalid_request` |
//! | [`Verdict::Accept`] | `accepted` audit event; **every** value of each [credential header](Authenticator::credential_headers) marked sensitive; the [`Principal`] inserted |
//! | [`Verdict::Refuse`] | `refused` audit event; the refusal with the challenge, rendered by the layer's [`ErrorRenderer`] |
//! | [`Verdict::HandOn`] | passes on without a principal, marked [`UnverifiedCredential`]: a later authenticator of the same kind verifies it (and clears the mark) or the request is refused 401 `invalid_token` by whatever authorizes it |
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
//!     .route("/whoami", get(|p: Principal| async move { p.subject().to_owned() }))
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
use http::{header::Entry, HeaderMap, HeaderName, Request};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    audit,
    error::{AuthError, Challenge, ErrorRenderer},
    future::BoxError,
    metadata::ProtectedResource,
    principal::{AuthScheme, Principal, UnverifiedCredential},
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

    /// Called by [`AuthenticateLayer::resource`] with the protected
    /// resource: an authenticator that checks the token's audience may
    /// take the resource's identifier from here. Does nothing by default.
    fn resource(&mut self, resource: &ProtectedResource) {
        let _ = resource;
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

/// [`Authenticator::verify`]'s answer: decided now, or a future.
#[derive(Debug)]
pub enum Check<F> {
    /// Decided at once (the fast path).
    Ready(Verdict),
    /// Decided once this future is.
    Pending(F),
}

/// The [`Layer`] that runs an [`Authenticator`]. Built by
/// [`ApiKeyLayer::new`](crate::ApiKeyLayer), `JwtLayer::new`,
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
    challenge: Option<Challenge>,
    renderer: ErrorRenderer,
}

impl<A: Authenticator> AuthenticateLayer<A> {
    /// A required layer around your own authenticator.
    pub fn custom(authenticator: A) -> Self {
        Self {
            config: Arc::new(Config {
                authenticator,
                optional: false,
                challenge: None,
                renderer: ErrorRenderer::default(),
            }),
        }
    }

    /// The authenticator.
    #[must_use]
    pub fn authenticator(&self) -> &A {
        &self.config.authenticator
    }

    pub(crate) fn challenge(mut self, challenge: Option<Challenge>) -> Self
    where
        A: Clone,
    {
        Arc::make_mut(&mut self.config).challenge = challenge;
        self
    }

    pub(crate) fn authenticator_mut(&mut self) -> &mut A
    where
        A: Clone,
    {
        &mut Arc::make_mut(&mut self.config).authenticator
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

    /// Adds the resource's `resource_metadata` (and realm) to challenges,
    /// and hands the resource to the authenticator
    /// ([`Authenticator::resource`]).
    pub fn resource(mut self, resource: &ProtectedResource) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.challenge = Some(resource.challenge());
        config.authenticator.resource(resource);
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
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The one text of the two-credentials refusal.
const TWO_CREDENTIALS: &str =
    "more than one credential was sent; send either an API key or a bearer token";

impl<A: Authenticator> Config<A> {
    /// Refuses: the challenge, the request's context, the audit event, the
    /// rendering.
    fn refuse<B>(&self, err: AuthError, req: &Request<B>) -> Response {
        let err = match &self.challenge {
            Some(c) => err.with_challenge(c.clone()),
            None => err,
        }
        .with_request(req);
        audit::refused(
            self.authenticator.scheme().as_str(),
            &err,
            Principal::from_extensions(req.extensions()),
            req.method(),
            audit::path(req.uri(), req.extensions()),
        );
        self.renderer.render(err)
    }

    /// Lets a request go on without a principal: the challenge goes with
    /// it for a later refusal.
    fn pass_anonymous<B>(&self, req: &mut Request<B>) {
        if let Some(c) = &self.challenge {
            req.extensions_mut().insert(c.clone());
        }
    }

    /// Applies a verdict: `Ok` to go on, `Err` with the refusal.
    fn apply<B>(&self, verdict: Verdict, req: &mut Request<B>) -> Result<(), Response> {
        let scheme = self.authenticator.scheme();
        match verdict {
            Verdict::Accept(principal) => {
                audit::accepted(
                    scheme.as_str(),
                    &principal,
                    req.method(),
                    audit::path(req.uri(), req.extensions()),
                );
                mark_sensitive(req.headers_mut(), self.authenticator.credential_headers());
                let ext = req.extensions_mut();
                if ext
                    .get::<UnverifiedCredential>()
                    .is_some_and(|mark| mark.is_verified_by(scheme))
                {
                    ext.remove::<UnverifiedCredential>();
                }
                ext.insert(principal);
                Ok(())
            }
            Verdict::Refuse(err) => Err(self.refuse(err, req)),
            Verdict::HandOn => {
                mark_sensitive(req.headers_mut(), self.authenticator.credential_headers());
                req.extensions_mut()
                    .insert(UnverifiedCredential::handed_on_by(scheme));
                self.pass_anonymous(req);
                Ok(())
            }
        }
    }
}

/// Marks every value of each header sensitive.
fn mark_sensitive(headers: &mut HeaderMap, names: &[HeaderName]) {
    for name in names {
        if let Entry::Occupied(mut e) = headers.entry(name) {
            for v in e.iter_mut() {
                v.set_sensitive(true);
            }
        }
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for Authenticate<S, A>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone,
    A: Authenticator,
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
        let check = match authenticator.find(&req) {
            Err(err) => return ResponseFuture::refused(config.refuse(err, &req)),
            Ok(None) => None,
            // One rule for "already authenticated": a bearer token is one
            // credential, which an earlier bearer authenticator verified.
            Ok(Some(_))
                if existing
                    .is_some_and(|e| e.is_bearer() && authenticator.scheme().is_bearer()) =>
            {
                None
            }
            Ok(Some(_)) if existing.is_some() => {
                let err = AuthError::invalid_request(TWO_CREDENTIALS);
                return ResponseFuture::refused(config.refuse(err, &req));
            }
            Ok(Some(credential)) => Some(authenticator.verify(credential)),
        };
        match check {
            None if existing.is_some() => {}
            None if config.optional => config.pass_anonymous(&mut req),
            None => {
                let err = AuthError::missing_credential();
                return ResponseFuture::refused(config.refuse(err, &req));
            }
            Some(Check::Ready(verdict)) => {
                if let Err(response) = config.apply(verdict, &mut req) {
                    return ResponseFuture::refused(response);
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
                        rest: Some(Waiting {
                            inner,
                            req,
                            config: self.config.clone(),
                        }),
                    },
                };
            }
        }
        // Decided at once: the service `poll_ready` readied takes the call,
        // no clone needed.
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(req),
            },
        }
    }
}

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
        Inner { #[pin] future: S::Future },
        Refused { response: Option<Response> },
        Verifying { #[pin] future: A::Future, rest: Option<Waiting<S, A, B>> },
    }
}

impl<S, A, B> ResponseFuture<S, A, B>
where
    S: Service<Request<B>>,
    A: Authenticator,
{
    fn refused(response: Response) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
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
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Inner { future } => {
                    return Poll::Ready(ready!(future.poll(cx)).map(|r| r.map(Body::new)));
                }
                StateProj::Refused { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
                StateProj::Verifying { future, rest } => {
                    let verdict = ready!(future.poll(cx));
                    let Waiting {
                        mut inner,
                        mut req,
                        config,
                    } = rest.take().expect("polled after completion");
                    match config.apply(verdict, &mut req) {
                        Ok(()) => State::Inner {
                            future: inner.call(req),
                        },
                        Err(response) => State::Refused {
                            response: Some(response),
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}
