//! [`IntrospectionLayer`] and its service.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::response::Response;
use http::{header, HeaderMap, Request};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Introspector;
use crate::{
    audit,
    error::{AuthError, Challenge, ErrorRenderer},
    future::BoxError,
    metadata::ProtectedResource,
    principal::{Principal, UnverifiedCredential},
};

/// Default longest bearer token accepted, in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 4096;

/// A [`Layer`] that authenticates `Authorization: Bearer` tokens by RFC 7662
/// introspection. See the [module docs](super) for behaviour and stacking.
#[derive(Clone, Debug)]
#[must_use]
pub struct IntrospectionLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    introspector: Introspector,
    optional: bool,
    audience: Option<String>,
    challenge: Option<Challenge>,
    renderer: ErrorRenderer,
    max_token_len: usize,
}

impl IntrospectionLayer {
    /// A required introspection layer.
    pub fn new(introspector: Introspector) -> Self {
        let audience = introspector.audience().map(str::to_owned);
        Self {
            config: Arc::new(Config {
                introspector,
                optional: false,
                audience,
                challenge: None,
                renderer: ErrorRenderer::default(),
                max_token_len: DEFAULT_MAX_TOKEN_LEN,
            }),
        }
    }

    /// Lets requests without a bearer token pass on unauthenticated. A
    /// token that is present but bad is still refused.
    pub fn optional(mut self) -> Self {
        Arc::make_mut(&mut self.config).optional = true;
        self
    }

    /// Adds the resource's `resource_metadata` (and realm) to challenges,
    /// and checks `aud` against its identifier unless the [`Introspector`]
    /// was given an audience of its own.
    pub fn resource(mut self, resource: &ProtectedResource) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.challenge = Some(resource.challenge());
        if config.introspector.audience().is_none() {
            config.audience = Some(resource.resource().to_owned());
        }
        self
    }

    /// Renders refusals with a custom renderer.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        Arc::make_mut(&mut self.config).renderer = renderer;
        self
    }

    /// The longest token accepted (default 4096 bytes); a longer one is
    /// refused with 401 without being sent anywhere.
    pub fn max_token_len(mut self, len: usize) -> Self {
        Arc::make_mut(&mut self.config).max_token_len = len;
        self
    }
}

impl<S> Layer<S> for IntrospectionLayer {
    type Service = IntrospectionAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IntrospectionAuth {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`IntrospectionLayer`].
#[derive(Clone, Debug)]
pub struct IntrospectionAuth<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> IntrospectionAuth<S> {
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

impl Config {
    fn refuse(&self, err: AuthError, req: &Request<impl Sized>) -> Response {
        let err = match &self.challenge {
            Some(c) => err.with_challenge(c.clone()),
            None => err,
        }
        .with_request(req);
        audit::refused(
            "introspection",
            &err,
            Principal::from_extensions(req.extensions()),
            req.method(),
            audit::path(req.uri(), req.extensions()),
        );
        self.renderer.render(err)
    }
}

pin_project! {
    /// The response future of [`IntrospectionAuth`]: the inner service's
    /// future (a cache hit, a refusal, a pass-through), or a boxed one while
    /// a cache miss waits on the network.
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Now { #[pin] future: crate::future::ResponseFuture<F> },
        Introspecting { future: BoxedResponse<E> },
    }
}

type BoxedResponse<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<F, E> ResponseFuture<F, E> {
    fn now(future: F) -> Self {
        Self {
            kind: Kind::Now {
                future: crate::future::ResponseFuture::inner(future),
            },
        }
    }

    fn refused(response: Response) -> Self {
        Self {
            kind: Kind::Now {
                future: crate::future::ResponseFuture::refused(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Now { future } => future.poll(cx),
            KindProj::Introspecting { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for IntrospectionAuth<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let existing = Principal::from_extensions(req.extensions()).map(Principal::scheme);
        let token = match crate::bearer::find_bearer(req.headers(), config.max_token_len) {
            Ok(token) => token,
            Err(err) => return ResponseFuture::refused(config.refuse(err, &req)),
        };
        let (cached, token) = match (existing, token) {
            // An outer layer authenticated the request with something that
            // is not a bearer token (an API key) and a bearer token came too.
            (Some(scheme), Some(_)) if !scheme.is_bearer() => {
                let err = AuthError::invalid_request(
                    "more than one credential was sent; send either an API key or a bearer token",
                );
                return ResponseFuture::refused(config.refuse(err, &req));
            }
            // An outer layer (JwtLayer) verified this request's credential.
            (Some(_), _) => (None, None),
            (None, None) if config.optional => {
                if let Some(c) = &config.challenge {
                    req.extensions_mut().insert(c.clone());
                }
                (None, None)
            }
            (None, None) => {
                let err = AuthError::missing_credential();
                return ResponseFuture::refused(config.refuse(err, &req));
            }
            (None, Some(token)) => match config
                .introspector
                .try_cached(token, config.audience.as_deref())
            {
                Some(hit) => (Some(hit), None),
                None => (None, Some(token.to_owned())),
            },
        };
        match (cached, token) {
            (Some(Err(err)), _) => return ResponseFuture::refused(config.refuse(err, &req)),
            (Some(Ok(principal)), _) => accept(&mut req, principal),
            (None, None) => {}
            (None, Some(token)) => {
                let ready = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, ready);
                let config = self.config.clone();
                return ResponseFuture {
                    kind: Kind::Introspecting {
                        future: Box::pin(async move {
                            let verified = config
                                .introspector
                                .verify_for(&token, config.audience.as_deref())
                                .await;
                            drop(token);
                            match verified {
                                Ok(principal) => {
                                    accept(&mut req, principal);
                                    call_inner(inner, req).await
                                }
                                Err(err) => Ok(config.refuse(err, &req)),
                            }
                        }),
                    },
                };
            }
        }
        ResponseFuture::now(self.inner.call(req))
    }
}

/// Inserts the principal, and clears the mark an outer layer left on the
/// token it handed on ([`UnverifiedCredential`]): verified now.
fn accept<B>(req: &mut Request<B>, principal: Principal) {
    audit::accepted(
        "introspection",
        &principal,
        req.method(),
        audit::path(req.uri(), req.extensions()),
    );
    mark_sensitive(req.headers_mut());
    req.extensions_mut().remove::<UnverifiedCredential>();
    req.extensions_mut().insert(principal);
}

fn mark_sensitive(headers: &mut HeaderMap) {
    if let http::header::Entry::Occupied(mut e) = headers.entry(header::AUTHORIZATION) {
        for v in e.iter_mut() {
            v.set_sensitive(true);
        }
    }
}

async fn call_inner<S, ReqBody, ResBody>(
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response, S::Error>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let response = inner.call(req).await?;
    Ok(response.map(axum::body::Body::new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthScheme;
    use axum::body::Body;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use secrecy::SecretString;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    async fn echo(req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
        let who = Principal::from_extensions(req.extensions())
            .map_or("anonymous".to_owned(), |p| {
                format!("{}:{}", p.scheme(), p.subject())
            });
        Ok(http::Response::new(Body::from(who)))
    }

    /// An introspector whose endpoint nothing listens on: any call would be
    /// a 503, so a 200 proves no call was made.
    fn unreachable() -> Introspector {
        Introspector::builder(
            "http://127.0.0.1:9/introspect",
            "rs",
            SecretString::from("secret"),
        )
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .unwrap()
    }

    async fn send(
        layer: IntrospectionLayer,
        principal: Option<Principal>,
        auth: &[&str],
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::get("/mcp");
        for a in auth {
            req = req.header("authorization", *a);
        }
        let mut req = req.body(Body::empty()).unwrap();
        if let Some(p) = principal {
            req.extensions_mut().insert(p);
        }
        let svc = ServiceBuilder::new().layer(layer).service_fn(echo);
        let res = svc.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn missing_token_is_401_or_passes_when_optional() {
        let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
            .build()
            .unwrap();
        let (status, headers, body) = send(
            IntrospectionLayer::new(unreachable()).resource(&resource),
            None,
            &[],
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
        );
        assert_eq!(
            body,
            r#"{"error":"missing_credential","error_description":"authentication is required"}"#
        );
        let (status, _, body) =
            send(IntrospectionLayer::new(unreachable()).optional(), None, &[]).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "anonymous"));
    }

    #[tokio::test]
    async fn a_bad_token_is_refused_even_when_optional_and_never_echoed() {
        let token = "x".repeat(5000);
        let (status, headers, body) = send(
            IntrospectionLayer::new(unreachable()).optional(),
            None,
            &[&format!("Bearer {token}")],
        )
        .await;
        assert_eq!(status, 401);
        assert!(!body.contains("xxxx"));
        assert!(!headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("xxxx"));
        let (status, _, _) = send(
            IntrospectionLayer::new(unreachable())
                .max_token_len(8000)
                .optional(),
            None,
            &[&format!("Bearer {token}")],
        )
        .await;
        assert_eq!(
            status, 503,
            "within the raised cap, the endpoint is asked (and is down)"
        );
    }

    #[tokio::test]
    async fn an_outer_principal_passes_on_without_introspection() {
        let jwt = Principal::new(AuthScheme::Jwt, "from-jwt");
        let (status, _, body) = send(
            IntrospectionLayer::new(unreachable()),
            Some(jwt.clone()),
            &["Bearer eyJ.eyJ.sig"],
        )
        .await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "jwt:from-jwt"));
        let (status, _, body) = send(IntrospectionLayer::new(unreachable()), Some(jwt), &[]).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "jwt:from-jwt"));
    }

    #[tokio::test]
    async fn api_key_principal_plus_bearer_is_400() {
        let key = Principal::new(AuthScheme::ApiKey, "svc");
        let (status, _, body) = send(
            IntrospectionLayer::new(unreachable()),
            Some(key.clone()),
            &["Bearer opaque"],
        )
        .await;
        assert_eq!(status, 400);
        assert!(body.contains("invalid_request"), "{body}");
        let (status, _, body) = send(IntrospectionLayer::new(unreachable()), Some(key), &[]).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "api_key:svc"));
    }

    #[tokio::test]
    async fn endpoint_down_is_503_with_retry_after() {
        let (status, headers, body) = send(
            IntrospectionLayer::new(unreachable()),
            None,
            &["Bearer opaque"],
        )
        .await;
        assert_eq!(status, 503);
        assert_eq!(headers[header::RETRY_AFTER], "5");
        assert!(body.contains("temporarily_unavailable"), "{body}");
    }
}
