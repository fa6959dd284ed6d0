//! [`ProtectedResourceLayer`]: the one place a stack is given its protected resource.

use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::{challenge::Challenge, metadata::ProtectedResource};

/// The [`Layer`] that gives a stack its protected resource, built by
/// [`ProtectedResource::layer`]: the one place a stack is given it.
///
/// Put it outermost (the first layer a request meets). It puts the
/// resource's [`Challenge`] (`realm`, `resource_metadata`) on every
/// request's extensions, and every refusal below it reads it from there:
/// the authenticators' 401s, [`Authorize`](crate::Authorize)'s and
/// the MCP policy's 401 and 403, the rate limiters' 429, the session
/// binding's refusals and the [`Principal`](crate::Principal) extractors.
/// No other layer takes the resource.
///
/// The token audience is not taken from here: it is configuration of the
/// verifier ([`JwtValidator::builder`](crate::jwt::JwtValidator::builder),
/// [`IntrospectorBuilder::audience`](crate::introspection::IntrospectorBuilder::audience)),
/// so a stack that forgets this layer still checks the audience.
///
/// **Without this layer** every refusal keeps its status, `error` and
/// `error_description`, and `WWW-Authenticate` is still sent where it
/// belongs (`Bearer error="invalid_token", …`), but with no `realm` and no
/// `resource_metadata`: an MCP client then cannot discover the
/// authorization server from the 401. Nothing is let through that would
/// have been refused.
///
/// ```
/// use axum::{routing::post, Router};
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};
/// use tower_mcp_auth::ProtectedResource;
///
/// let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
///     .authorization_server("https://auth.example.com")
///     .build()?;
/// let keys = ApiKeys::new().with(ApiKey::new("demo", "k_0123456789abcdef0123456789abcdef"));
///
/// let app: Router = Router::new()
///     .route("/mcp", post(|| async { "ok" }))
///     .layer(
///         ServiceBuilder::new()
///             .layer(resource.layer()) // outermost: every refusal's challenge
///             .layer(ApiKeyLayer::new(keys)),
///     )
///     .merge(resource.router());
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ProtectedResourceLayer {
    challenge: Challenge,
}

impl ProtectedResource {
    /// The [`ProtectedResourceLayer`] of this resource: put it outermost.
    pub fn layer(&self) -> ProtectedResourceLayer {
        ProtectedResourceLayer {
            challenge: self.challenge(),
        }
    }
}

impl<S> Layer<S> for ProtectedResourceLayer {
    type Service = ProtectedResourceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProtectedResourceService {
            inner,
            challenge: self.challenge.clone(),
        }
    }
}

/// The service made by [`ProtectedResourceLayer`]: its future is the inner
/// service's.
#[derive(Clone, Debug)]
pub struct ProtectedResourceService<S> {
    inner: S,
    challenge: Challenge,
}

impl<S, B> Service<Request<B>> for ProtectedResourceService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.challenge.clone());
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{service_fn, ServiceExt};

    #[tokio::test]
    async fn every_request_carries_the_challenge() {
        let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
            .build()
            .unwrap();
        let svc = resource
            .layer()
            .layer(service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>(
                    req.extensions()
                        .get::<Challenge>()
                        .and_then(|c| c.resource_metadata().map(str::to_owned)),
                )
            }));
        let got = svc.oneshot(Request::new(())).await.unwrap();
        assert_eq!(got.as_deref(), Some(resource.metadata_url()));
    }
}
