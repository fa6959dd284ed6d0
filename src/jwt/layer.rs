//! [`JwtLayer`] and its service [`JwtAuth`].

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{body::Body, response::Response};
use http::{header, HeaderMap, Request};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::validator::{JwtError, JwtValidator, Step};
use crate::{
    audit,
    error::{AuthError, Challenge, ErrorRenderer},
    future::{BoxError, ResponseFuture},
    metadata::ProtectedResource,
    principal::{Principal, UnverifiedCredential},
};

/// A [`Layer`] that authenticates `Authorization: Bearer` JWTs with a
/// [`JwtValidator`]. See the [module docs](super) for the rules.
#[derive(Clone, Debug)]
#[must_use]
pub struct JwtLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    validator: JwtValidator,
    optional: bool,
    pass_opaque: bool,
    challenge: Option<Challenge>,
    renderer: ErrorRenderer,
}

impl JwtLayer {
    /// A required JWT layer. Refusals carry the challenge of the resource
    /// the validator was built for.
    pub fn new(validator: JwtValidator) -> Self {
        let challenge = validator.challenge().cloned();
        Self {
            config: Arc::new(Config {
                validator,
                optional: false,
                pass_opaque: false,
                challenge,
                renderer: ErrorRenderer::default(),
            }),
        }
    }

    /// Lets requests without a bearer token pass on without a principal.
    /// A bearer token that is presented is still verified: a JWT that fails
    /// verification, and a token that is not a JWT at all, are refused with
    /// 401 `invalid_token` (see [`pass_opaque_tokens`](Self::pass_opaque_tokens)
    /// to hand the latter to an introspection layer).
    pub fn optional(mut self) -> Self {
        Arc::make_mut(&mut self.config).optional = true;
        self
    }

    /// Hands a bearer token that is not a JWT at all (an opaque token) on
    /// to a later authenticator, an
    /// [`IntrospectionLayer`](crate::IntrospectionLayer), instead of
    /// refusing it. The request goes on without a principal but marked
    /// [`UnverifiedCredential`]: the introspection layer verifies the token
    /// and clears the mark, and if no layer does (a stack without one),
    /// [`McpPolicyLayer`](crate::mcp::McpPolicyLayer),
    /// [`RequireScopes`](crate::RequireScopes) and the [`Principal`]
    /// extractors refuse the request with 401 `invalid_token`. A JWT-shaped
    /// token that fails verification is refused here, always.
    pub fn pass_opaque_tokens(mut self) -> Self {
        Arc::make_mut(&mut self.config).pass_opaque = true;
        self
    }

    /// Uses this resource's challenge (`resource_metadata`, realm).
    pub fn resource(mut self, resource: &ProtectedResource) -> Self {
        Arc::make_mut(&mut self.config).challenge = Some(resource.challenge());
        self
    }

    /// Renders refusals with a custom renderer.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        Arc::make_mut(&mut self.config).renderer = renderer;
        self
    }
}

impl<S> Layer<S> for JwtLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`JwtLayer`].
#[derive(Clone, Debug)]
pub struct JwtAuth<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> JwtAuth<S> {
    /// Wraps `inner` (same as `JwtLayer::new(validator).layer(inner)`).
    pub fn layer(validator: JwtValidator) -> JwtLayer {
        JwtLayer::new(validator)
    }

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

/// What the `Authorization` headers carry for this layer.
#[derive(Debug, PartialEq, Eq)]
enum Found<'a> {
    None,
    Bearer(&'a str),
}

impl Config {
    fn find<'a>(&self, headers: &'a HeaderMap) -> Result<Found<'a>, AuthError> {
        Ok(
            match crate::bearer::find_bearer(headers, self.validator.max_token_bytes())? {
                Some(token) => Found::Bearer(token),
                None => Found::None,
            },
        )
    }

    fn refuse<B>(&self, err: AuthError, req: &Request<B>) -> Response {
        let err = match &self.challenge {
            Some(c) => err.with_challenge(c.clone()),
            None => err,
        }
        .with_request(req);
        audit::refused(
            "jwt",
            &err,
            Principal::from_extensions(req.extensions()),
            req.method(),
            audit::path(req.uri(), req.extensions()),
        );
        self.renderer.render(err)
    }

    fn accept<B>(&self, principal: Principal, req: &mut Request<B>) {
        audit::accepted(
            "jwt",
            &principal,
            req.method(),
            audit::path(req.uri(), req.extensions()),
        );
        if let Some(v) = req.headers_mut().get_mut(header::AUTHORIZATION) {
            v.set_sensitive(true);
        }
        req.extensions_mut().insert(principal);
    }

    /// Passes an unauthenticated request on (optional mode).
    fn pass_anonymous<B>(&self, req: &mut Request<B>) {
        if let Some(c) = &self.challenge {
            req.extensions_mut().insert(c.clone());
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// Response future of [`JwtAuth`]: answered at once (cache hit, static
    /// key, refusal), or after fetching remote keys.
    pub struct JwtResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Now { #[pin] future: ResponseFuture<F> },
        Fetching { future: BoxFuture<Result<Response, E>> },
    }
}

impl<F, B, E> Future for JwtResponseFuture<F, E>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Now { future } => future.poll(cx),
            KindProj::Fetching { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> JwtResponseFuture<F, E> {
    fn now(future: ResponseFuture<F>) -> Self {
        Self {
            kind: Kind::Now { future },
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S>
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
    type Future = JwtResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let refused = |r| JwtResponseFuture::now(ResponseFuture::refused(r));
        let has_principal = req.extensions().get::<Principal>().is_some();
        let token = match config.find(req.headers()) {
            Err(err) => return refused(config.refuse(err, &req)),
            Ok(Found::None) if has_principal => None,
            Ok(Found::None) if config.optional => {
                config.pass_anonymous(&mut req);
                None
            }
            Ok(Found::None) => {
                return refused(config.refuse(AuthError::missing_credential(), &req))
            }
            Ok(Found::Bearer(_)) if has_principal => {
                let err = AuthError::invalid_request(
                    "more than one credential was sent; send either an API key or a bearer token",
                );
                return refused(config.refuse(err, &req));
            }
            Ok(Found::Bearer(token)) => Some(token),
        };
        let step = token.map(|t| (config.validator.try_verify(t), t));
        match step {
            // Decided at once: the service `poll_ready` readied takes the
            // call, no clone needed.
            None => JwtResponseFuture::now(ResponseFuture::inner(self.inner.call(req))),
            Some((Step::Done(result), _)) => match config.decide(result, &mut req) {
                None => JwtResponseFuture::now(ResponseFuture::inner(self.inner.call(req))),
                Some(response) => refused(response),
            },
            Some((Step::Fetch, token)) => {
                // The call waits for the keys: it takes the readied service
                // and leaves a clone in its place.
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                let token = token.to_owned();
                let config = self.config.clone();
                JwtResponseFuture {
                    kind: Kind::Fetching {
                        future: Box::pin(async move {
                            let result = config.validator.verify_after_fetch(&token).await;
                            drop(token);
                            match config.decide(result, &mut req) {
                                None => inner.call(req).await.map(|r| r.map(Body::new)),
                                Some(response) => Ok(response),
                            }
                        }),
                    },
                }
            }
        }
    }
}

impl Config {
    /// Accepts (inserting the principal) or hands an opaque token on,
    /// marked unverified, when asked to (`None`: go on), or renders the
    /// refusal.
    fn decide<B>(
        &self,
        result: Result<Principal, JwtError>,
        req: &mut Request<B>,
    ) -> Option<Response> {
        let config = self;
        match result {
            Ok(principal) => {
                config.accept(principal, req);
                None
            }
            Err(e) if e.is_not_jwt() && config.pass_opaque => {
                // Not ours: an opaque token for a later introspection
                // layer, which clears the mark when it verifies it.
                req.extensions_mut()
                    .insert(UnverifiedCredential::new("jwt"));
                config.pass_anonymous(req);
                None
            }
            Err(e) => Some(config.refuse(AuthError::from(e), req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        jwt::validator::tests::{good_claims, hs256, validator},
        principal::AuthScheme,
    };
    use http::StatusCode;
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    async fn echo(req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
        let sensitive = req
            .headers()
            .get(header::AUTHORIZATION)
            .is_some_and(http::HeaderValue::is_sensitive);
        let who = Principal::from_extensions(req.extensions())
            .map_or("anonymous".to_owned(), |p| {
                format!("{}:{}:{}:{sensitive}", p.scheme(), p.subject(), p.scopes())
            });
        Ok(http::Response::new(Body::from(who)))
    }

    async fn send(layer: JwtLayer, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
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

    fn bearer(value: &str) -> Request<Body> {
        Request::get("/mcp")
            .header("authorization", value)
            .body(Body::empty())
            .unwrap()
    }

    const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    #[tokio::test]
    async fn valid_token_any_scheme_case() {
        let token = hs256(&good_claims());
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let (status, _, body) = send(
                JwtLayer::new(validator()),
                bearer(&format!("{scheme} {token}")),
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(body, "jwt:user-1:read:data write:data:true");
        }
    }

    #[tokio::test]
    async fn missing_token_is_401_with_the_resource_challenge() {
        let (status, headers, body) = send(
            JwtLayer::new(validator()),
            Request::get("/mcp").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            format!(r#"Bearer resource_metadata="{METADATA}""#)
        );
        assert_eq!(
            body,
            r#"{"error":"missing_credential","error_description":"authentication is required"}"#
        );
        // Another scheme is not ours: required mode still wants a bearer.
        let (status, _, _) = send(JwtLayer::new(validator()), bearer("Basic dXNlcjpwYXNz")).await;
        assert_eq!(status, 401);
    }

    // Interop regression: an MCP message (JSON POST accepting SSE) refused
    // before its id is read gets a JSON-RPC error with a null id, which MCP
    // SDKs surface with its message.
    #[tokio::test]
    async fn bad_jwt_on_a_streamable_http_message_is_a_jsonrpc_error() {
        let mut claims = good_claims();
        claims["aud"] = serde_json::json!("https://other.example.com");
        let token = hs256(&claims);
        let req = Request::post("/mcp")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .body(Body::from(
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
            ))
            .unwrap();
        let (status, _, body) = send(JwtLayer::new(validator()).optional(), req).await;
        assert_eq!(status, 401);
        assert_eq!(
            body,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"the token is not for this resource","data":{"error":"invalid_token","error_description":"the token is not for this resource"}}}"#
        );
        assert!(!body.contains(&token));
    }

    #[tokio::test]
    async fn bad_jwt_is_401_even_when_optional() {
        let mut claims = good_claims();
        claims["aud"] = serde_json::json!("https://other.example.com");
        let token = hs256(&claims);
        for layer in [
            JwtLayer::new(validator()),
            JwtLayer::new(validator()).optional(),
        ] {
            let (status, headers, body) = send(layer, bearer(&format!("Bearer {token}"))).await;
            assert_eq!(status, 401);
            assert_eq!(
                headers[header::WWW_AUTHENTICATE],
                format!(
                    r#"Bearer error="invalid_token", error_description="the token is not for this resource", resource_metadata="{METADATA}""#
                )
            );
            assert_eq!(
                body,
                r#"{"error":"invalid_token","error_description":"the token is not for this resource"}"#
            );
            assert!(!body.contains(&token));
        }
    }

    #[tokio::test]
    async fn optional_passes_no_token_on_but_refuses_opaque_tokens() {
        let layer = || JwtLayer::new(validator()).optional();
        let (status, _, body) = send(layer(), Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "anonymous"));
        // A presented credential nobody verifies is not anonymous: in
        // optional mode and in required mode alike, an opaque token is 401.
        for layer in [layer(), JwtLayer::new(validator())] {
            let (status, headers, _) = send(layer, bearer("Bearer opaque-token-1234567890")).await;
            assert_eq!(status, 401);
            let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(
                challenge.contains(r#"error="invalid_token""#),
                "{challenge}"
            );
            assert!(
                challenge.contains("the bearer token is not a JWT"),
                "{challenge}"
            );
        }
    }

    #[tokio::test]
    async fn opaque_tokens_handed_on_are_marked_and_refused_by_the_extractor() {
        // The marker reaches the inner service; the `Principal` extractors
        // (the end of a misconfigured stack) refuse it.
        let svc = ServiceBuilder::new()
            .layer(JwtLayer::new(validator()).optional().pass_opaque_tokens())
            .service_fn(|req: Request<Body>| async move {
                let marked = req.extensions().get::<UnverifiedCredential>().copied();
                let (mut parts, _) = req.into_parts();
                let optional =
                    <Principal as axum::extract::OptionalFromRequestParts<()>>::from_request_parts(
                        &mut parts,
                        &(),
                    )
                    .await;
                let status = optional.map_or_else(|e| e.status().as_u16(), |_| 200);
                Ok::<_, Infallible>(http::Response::new(Body::from(format!(
                    "{}:{status}",
                    marked.map_or("none", |m| m.by())
                ))))
            });
        let res = svc
            .clone()
            .oneshot(bearer("Bearer opaque-token-1234567890"))
            .await
            .unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"jwt:401");
        let res = svc
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"none:200");
    }

    #[tokio::test]
    async fn ambiguous_credentials_are_400() {
        let token = hs256(&good_claims());
        let req = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let (status, headers, _) = send(JwtLayer::new(validator()).optional(), req).await;
        assert_eq!(status, 400);
        assert!(headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_request""#));

        let mut req = bearer(&format!("Bearer {token}"));
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::ApiKey, "svc"));
        let (status, _, _) = send(JwtLayer::new(validator()), req).await;
        assert_eq!(status, 400);

        // A principal already there and no bearer token: pass on.
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::ApiKey, "svc"));
        let (status, _, body) = send(JwtLayer::new(validator()), req).await;
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "api_key:svc::false")
        );
    }

    #[tokio::test]
    async fn empty_huge_and_non_ascii_tokens_are_401() {
        let huge = format!("Bearer {}", "a".repeat(64 * 1024));
        for value in [
            "Bearer".to_owned(),
            "Bearer    ".to_owned(),
            huge,
            "Bearer a b".to_owned(),
        ] {
            let (status, _, body) =
                send(JwtLayer::new(validator()).optional(), bearer(&value)).await;
            assert_eq!(status, 401, "{value:.20}");
            assert!(body.len() < 200);
        }
        let req = Request::get("/")
            .header(
                "authorization",
                http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
            )
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = send(JwtLayer::new(validator()), req).await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn renderer_and_resource_override() {
        let resource = ProtectedResource::builder("https://other.example.com/api")
            .build()
            .unwrap();
        let layer = JwtLayer::new(validator())
            .resource(&resource)
            .renderer(ErrorRenderer::new(|e| {
                let mut r = axum::response::IntoResponse::into_response(e);
                r.headers_mut().insert("x-refused", "1".parse().unwrap());
                r
            }));
        let (status, headers, _) =
            send(layer, Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(status, 401);
        assert_eq!(headers["x-refused"], "1");
        assert!(headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("https://other.example.com/.well-known/oauth-protected-resource/api"));
    }
}
