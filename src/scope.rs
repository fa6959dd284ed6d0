//! Scope checks for plain routes: [`RequireScopesLayer`].

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use axum::response::Response;
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::future::ResponseFuture;

use crate::{
    audit,
    authenticate::UnverifiedCredential,
    error::{AuthError, ErrorRenderer},
    future::BoxError,
    principal::{Principal, Scopes},
};

/// Requires the request's [`Principal`] to hold scopes: all of a set, or
/// any of a set.
///
/// Put it after an authentication layer. No principal → 401 with the
/// challenge naming the required scopes; a principal without the scopes →
/// 403 `insufficient_scope` naming the scopes it has plus the ones
/// required, the crate's one
/// [step-up rule](crate::AuthError::insufficient_scope)
/// (the same as [`McpPolicyLayer`](crate::mcp::McpPolicyLayer)'s).
///
/// For an MCP endpoint, where each tool needs different scopes, use the MCP
/// policy instead.
///
/// # Example
///
/// ```
/// use axum::{Router, routing::post};
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};
/// use tower_mcp_auth::RequireScopesLayer;
///
/// let keys = ApiKeys::new().with(ApiKey::new("writer", "mcp_sk_writer-0123456789abcdef").scopes(["write:data"]));
///
/// let app: Router = Router::new()
///     .route("/data", post(|| async { "written" }))
///     .layer(
///         ServiceBuilder::new()
///             .layer(ApiKeyLayer::new(keys))
///             .layer(RequireScopesLayer::all(["write:data"])),
///     );
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireScopesLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    scopes: Scopes,
    any: bool,
    renderer: ErrorRenderer,
}

impl RequireScopesLayer {
    /// Requires every one of `scopes`.
    pub fn all<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::with_mode(scopes.into_iter().collect(), false)
    }

    /// Requires at least one of `scopes`.
    pub fn any<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::with_mode(scopes.into_iter().collect(), true)
    }

    fn with_mode(scopes: Scopes, any: bool) -> Self {
        Self {
            config: Arc::new(Config {
                scopes,
                any,
                renderer: ErrorRenderer::default(),
            }),
        }
    }

    /// Renders refusals with a custom renderer.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        Arc::make_mut(&mut self.config).renderer = renderer;
        self
    }
}

impl<S> Layer<S> for RequireScopesLayer {
    type Service = RequireScopes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopes {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`RequireScopesLayer`].
#[derive(Clone, Debug)]
pub struct RequireScopes<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> RequireScopes<S> {
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
    fn check(&self, principal: Option<&Principal>) -> Result<(), AuthError> {
        let Some(p) = principal else {
            return Err(AuthError::missing_credential().with_scope(self.scopes.clone()));
        };
        let granted = p.scopes();
        let ok = if self.any {
            self.scopes.is_empty() || granted.contains_any(self.scopes.iter())
        } else {
            granted.contains_all(self.scopes.iter())
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::step_up(
                granted,
                &self.scopes,
                "the access token lacks a required scope",
            ))
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopes<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let principal = Principal::from_extensions(req.extensions());
        let checked = match UnverifiedCredential::refusal(req.extensions()) {
            Some(err) => Err(err),
            None => config.check(principal),
        };
        if let Err(err) = checked {
            let err = err.with_request_context(req.extensions());
            audit::refused(
                "scopes",
                &err,
                principal,
                req.method(),
                audit::path(req.uri(), req.extensions()),
            );
            return ResponseFuture::refused(config.renderer.render(err));
        }
        ResponseFuture::inner(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthScheme;
    use crate::ProtectedResource;
    use axum::body::Body;
    use http::header;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    async fn run(layer: RequireScopesLayer, scopes: Option<&str>) -> Response {
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_req: Request<Body>| async {
                Ok::<_, Infallible>(http::Response::new(Body::from("ok")))
            });
        let mut req = Request::get("/data").body(Body::empty()).unwrap();
        // As the ProtectedResourceLayer above the stack would.
        req.extensions_mut().insert(
            ProtectedResource::builder("https://api.example.com/data")
                .build()
                .unwrap()
                .challenge(),
        );
        if let Some(s) = scopes {
            req.extensions_mut()
                .insert(Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse(s)));
        }
        svc.oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn all_of() {
        let layer = || RequireScopesLayer::all(["read:data", "write:data"]);
        assert_eq!(
            run(layer(), Some("read:data write:data admin"))
                .await
                .status(),
            200
        );
        let res = run(layer(), Some("read:data")).await;
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="read:data write:data", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/data""#
        );
    }

    /// The step-up rule, the same as `McpPolicyLayer`'s (issue 17, item
    /// 5): the 403 names what the token has plus what the route needs, so
    /// a client re-authorizing with it keeps `profile` (it named only
    /// `write:data` before).
    #[tokio::test]
    async fn the_challenge_names_granted_plus_required() {
        let res = run(RequireScopesLayer::all(["write:data"]), Some("profile")).await;
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="profile write:data", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/data""#
        );
        let res = run(
            RequireScopesLayer::any(["admin", "write:data"]),
            Some("profile"),
        )
        .await;
        let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.contains(r#"scope="admin profile write:data""#),
            "{challenge}"
        );
    }

    #[tokio::test]
    async fn any_of() {
        let layer = || RequireScopesLayer::any(["admin", "write:data"]);
        assert_eq!(run(layer(), Some("write:data")).await.status(), 200);
        assert_eq!(run(layer(), Some("read:data")).await.status(), 403);
    }

    #[tokio::test]
    async fn no_principal_is_401_with_resource_metadata() {
        let res = run(RequireScopesLayer::all(["read:data"]), None).await;
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer scope="read:data", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/data""#
        );
    }

    #[tokio::test]
    async fn a_credential_nobody_verified_is_401_invalid_token() {
        let svc = ServiceBuilder::new()
            .layer(RequireScopesLayer::all(Vec::<String>::new()))
            .service_fn(|_req: Request<Body>| async {
                Ok::<_, Infallible>(http::Response::new(Body::from("ok")))
            });
        let mut req = Request::get("/data").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(UnverifiedCredential::new("jwt"));
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token", error_description="no layer could verify the bearer token""#
        );
    }
}
