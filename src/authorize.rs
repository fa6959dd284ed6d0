//! The rule of a plain route: [`AuthorizeLayer`].

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
    audit, config::ConfigError, error::ErrorRenderer, future::BoxError, principal::Principal,
    rule::Rule, scope_hierarchy::ScopeHierarchy, unverified::UnverifiedCredential,
};

/// Guards a plain route (an `/admin` axum route, any tower service) with a
/// [`Rule`]: the same rule language the MCP policy speaks for each tool.
///
/// Put it after the authentication layers (made `.optional()` when the
/// rule admits several schemes). The refusals are the [`Rule`]'s: no
/// principal → 401 with the challenge; a principal of a scheme the rule
/// does not accept → 401 `invalid_token`; missing scopes → 403
/// `insufficient_scope` (RFC 6750 §3.1). A credential that no layer
/// verified → 401 `invalid_token`.
///
/// Scopes only: `AuthorizeLayer::new(Rule::authenticated().scopes([..]))`
/// (every one) or `Rule::authenticated().any_scope([..])` (at least one).
///
/// # Errors
///
/// [`new`](Self::new) refuses a rule with mistakes (see [`Rule`]) and a
/// rule with MCP checks (`Rule::check`, which needs an MCP call to look
/// at).
///
/// # Example
///
/// An API key, or a bearer token with `admin:write`:
///
/// ```
/// use axum::{Router, routing::post};
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};
/// use tower_mcp_auth::{AuthorizeLayer, Rule};
///
/// # fn main() -> Result<(), tower_mcp_auth::ConfigError> {
/// let keys = ApiKeys::new().with(ApiKey::new("ops", "mcp_sk_ops-0123456789abcdef"));
/// let admin = Rule::api_key().or(Rule::bearer().scopes(["admin:write"]));
///
/// let app: Router = Router::new()
///     .route("/admin", post(|| async { "done" }))
///     .layer(
///         ServiceBuilder::new()
///             .layer(ApiKeyLayer::new(keys).optional())
///             // .layer(JwtLayer::new(validator).optional())
///             .layer(AuthorizeLayer::new(admin)?),
///     );
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthorizeLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    rule: Rule,
    renderer: ErrorRenderer,
}

impl AuthorizeLayer {
    /// A layer that lets through what `rule` allows.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] listing the rule's mistakes, or saying that
    /// it carries MCP checks.
    pub fn new(rule: Rule) -> Result<Self, ConfigError> {
        let mut errors = rule.errors().to_vec();
        if rule.has_checks() {
            errors.push(
                "Rule::check looks at an MCP call; a plain route has none (use the MCP policy)"
                    .into(),
            );
        }
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "invalid rule for AuthorizeLayer: {}",
                errors.join("; ")
            )));
        }
        Ok(Self {
            config: Arc::new(Config {
                rule,
                renderer: ErrorRenderer::default(),
            }),
        })
    }

    /// The deployment's scope hierarchy (a broad scope implies narrower
    /// ones), for the rule's decisions (see [`Rule::scope_hierarchy`]);
    /// [`McpPolicy::scope_hierarchy`](crate::mcp::McpPolicy::scope_hierarchy)
    /// gives an MCP policy's.
    ///
    /// ```
    /// use tower_mcp_auth::{AuthorizeLayer, Rule, ScopeHierarchy};
    ///
    /// let hierarchy = ScopeHierarchy::builder().implies("admin", ["admin:write"]).build()?;
    /// let layer = AuthorizeLayer::new(Rule::bearer().scopes(["admin:write"]))?.scope_hierarchy(hierarchy);
    /// # let _ = layer;
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    pub fn scope_hierarchy(mut self, hierarchy: ScopeHierarchy) -> Self {
        Arc::make_mut(&mut self.config)
            .rule
            .set_scope_hierarchy(hierarchy);
        self
    }

    /// Renders refusals with a custom renderer.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        Arc::make_mut(&mut self.config).renderer = renderer;
        self
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`AuthorizeLayer`].
#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Authorize<S> {
    crate::macros::inner_service_accessors!(S);
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Authorize<S>
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
            None => config.rule.decide(principal, &()),
        };
        if let Err(err) = checked {
            let err = err.with_request_context(req.extensions());
            audit::refused(
                "authorize",
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
    use crate::principal::{AuthScheme, Scopes};
    use crate::ProtectedResource;
    use axum::body::Body;
    use http::header;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    fn layer(rule: Rule) -> AuthorizeLayer {
        AuthorizeLayer::new(rule).unwrap()
    }

    async fn run(layer: AuthorizeLayer, who: Option<Principal>) -> Response {
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
        if let Some(p) = who {
            req.extensions_mut().insert(p);
        }
        svc.oneshot(req).await.unwrap()
    }

    fn jwt(scopes: &str) -> Option<Principal> {
        Some(Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse(scopes)))
    }

    fn key() -> Option<Principal> {
        Some(Principal::new(AuthScheme::ApiKey, "ops"))
    }

    #[tokio::test]
    async fn all_of() {
        let all = || layer(Rule::authenticated().scopes(["read:data", "write:data"]));
        assert_eq!(
            run(all(), jwt("read:data write:data admin")).await.status(),
            200
        );
        let res = run(all(), jwt("read:data")).await;
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", error_description="the access token lacks a scope this call requires", scope="read:data write:data", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/data""#
        );
    }

    /// MCP 2026-07-28: the deployment's scope hierarchy holds on a plain
    /// route too; the 403 names the required scopes, not the broad one,
    /// and never `offline_access`.
    #[tokio::test]
    async fn a_broader_scope_passes_and_the_challenge_names_the_narrower() {
        let hierarchy = ScopeHierarchy::builder()
            .implies("admin", ["admin:write", "read:data"])
            .build()
            .unwrap();
        let admin = || {
            layer(Rule::bearer().scopes(["admin:write", "read:data"]))
                .scope_hierarchy(hierarchy.clone())
        };
        assert_eq!(run(admin(), jwt("admin")).await.status(), 200);
        let plain = layer(Rule::bearer().scopes(["admin:write", "read:data"]));
        assert_eq!(run(plain, jwt("admin")).await.status(), 403);
        let res = run(admin(), jwt("admin:write offline_access")).await;
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", error_description="the access token lacks a scope this call requires", scope="admin:write read:data", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/data""#
        );
    }

    #[tokio::test]
    async fn any_of() {
        let any = || layer(Rule::authenticated().any_scope(["admin", "write:data"]));
        assert_eq!(run(any(), jwt("write:data")).await.status(), 200);
        assert_eq!(run(any(), jwt("read:data")).await.status(), 403);
    }

    #[tokio::test]
    async fn an_api_key_or_a_bearer_token_with_admin_write() {
        let admin = || layer(Rule::api_key().or(Rule::bearer().scopes(["admin:write"])));
        assert_eq!(run(admin(), key()).await.status(), 200);
        assert_eq!(run(admin(), jwt("admin:write")).await.status(), 200);
        let res = run(admin(), jwt("read:data")).await;
        assert_eq!(res.status(), 403);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", error_description="the access token lacks a scope this call requires", scope="admin:write read:data", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/data""#
        );
        let res = run(admin(), None).await;
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer scope="admin:write", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/data""#
        );
        // Issue 25 item 3: a valid credential of the wrong kind is 403
        // naming the scheme needed, never 401 `invalid_token` (which tells
        // an OAuth client to throw its good token away).
        for (rule, who, needs) in [
            (
                Rule::api_key(),
                jwt("admin:write"),
                "this call requires an API key",
            ),
            (
                Rule::bearer(),
                key(),
                "this call requires an OAuth bearer token",
            ),
        ] {
            let res = run(layer(rule), who).await;
            assert_eq!(res.status(), 403);
            assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], "forbidden");
            assert_eq!(body["error_description"], needs);
        }
    }

    #[tokio::test]
    async fn deny_refuses_every_caller_with_403() {
        for who in [None, key(), jwt("admin:write read:data")] {
            let res = run(layer(Rule::deny()), who.clone()).await;
            assert_eq!(res.status(), 403, "{who:?}");
            let body = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains("forbidden"), "{body}");
            assert_ne!(body, "ok", "the route never runs");
        }
        // In an any-of, deny adds nothing: the other alternative decides.
        let either = || layer(Rule::deny().or(Rule::api_key()));
        assert_eq!(run(either(), key()).await.status(), 200);
        assert_eq!(run(either(), jwt("")).await.status(), 403);
    }

    #[test]
    fn a_rule_with_mistakes_is_refused_at_construction() {
        let err = AuthorizeLayer::new(Rule::public().scopes(["a"])).unwrap_err();
        assert!(err.to_string().contains("takes no scopes"), "{err}");
        let err = AuthorizeLayer::new(Rule::one_of([])).unwrap_err();
        assert!(
            err.to_string().contains("at least one alternative"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn no_principal_is_401_with_resource_metadata() {
        let res = run(layer(Rule::authenticated().scopes(["read:data"])), None).await;
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer scope="read:data", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/data""#
        );
    }

    #[tokio::test]
    async fn a_credential_nobody_verified_is_401_invalid_token() {
        let svc = ServiceBuilder::new()
            .layer(layer(Rule::authenticated()))
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
