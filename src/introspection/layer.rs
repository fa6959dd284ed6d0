//! [`IntrospectionLayer`] and its [`IntrospectionAuthenticator`].

use std::{future::Future, pin::Pin, sync::Arc};

use http::{header, HeaderName, Request};

use super::Introspector;
use crate::{
    authenticate::{AuthenticateLayer, Authenticator, Check, Verdict},
    error::AuthError,
    principal::AuthScheme,
};

/// Default longest bearer token accepted, in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 4096;

/// The [`Layer`](tower_layer::Layer) that authenticates
/// `Authorization: Bearer` tokens by RFC 7662 introspection: the one
/// [`AuthenticateLayer`] around an [`IntrospectionAuthenticator`]. See the
/// [module docs](super) for behaviour and stacking, and the
/// [shared rules](crate::authenticate).
pub type IntrospectionLayer = AuthenticateLayer<IntrospectionAuthenticator>;

/// The [`Authenticator`] of opaque bearer tokens, by introspection. Built
/// by [`IntrospectionLayer::new`].
#[derive(Clone, Debug)]
pub struct IntrospectionAuthenticator {
    introspector: Introspector,
    audience: Option<Arc<str>>,
    max_token_len: usize,
    /// Whether a DPoP wrapper checks the proofs of bound tokens; until
    /// then they are refused.
    pub(crate) dpop: bool,
}

impl AuthenticateLayer<IntrospectionAuthenticator> {
    /// A required introspection layer.
    pub fn new(introspector: Introspector) -> Self {
        let audience = introspector.audience().map(Arc::from);
        Self::custom(IntrospectionAuthenticator {
            introspector,
            audience,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            dpop: false,
        })
    }

    /// The longest token accepted (default 4096 bytes); a longer one is
    /// refused with 401 without being sent anywhere.
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.authenticator_mut().max_token_len = len;
        self
    }
}

/// The slow path: a cache miss waiting on the introspection endpoint.
type Introspecting = Pin<Box<dyn Future<Output = Verdict> + Send>>;

impl IntrospectionAuthenticator {
    /// The longest token read, in bytes.
    #[cfg(feature = "dpop")]
    pub(crate) fn token_limit(&self) -> usize {
        self.max_token_len
    }
}

fn verdict(result: Result<crate::Principal, AuthError>, dpop: bool) -> Verdict {
    match result {
        Ok(principal) => crate::authenticate::refuse_bound(Verdict::Accept(principal), dpop),
        Err(err) => Verdict::Refuse(err),
    }
}

impl Authenticator for IntrospectionAuthenticator {
    type Credential<'a> = &'a str;
    type Future = Introspecting;

    fn scheme(&self) -> AuthScheme {
        AuthScheme::Introspection
    }

    fn credential_headers(&self) -> &[HeaderName] {
        std::slice::from_ref(&header::AUTHORIZATION)
    }

    fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<&'a str>, AuthError> {
        crate::bearer::find_bearer(req.headers(), self.max_token_len)
    }

    fn verify(&self, token: &str) -> Check<Introspecting> {
        if let Some(hit) = self
            .introspector
            .try_cached(token, self.audience.as_deref())
        {
            return Check::Ready(verdict(hit, self.dpop));
        }
        let introspector = self.introspector.clone();
        let audience = self.audience.clone();
        let dpop = self.dpop;
        let token = token.to_owned();
        Check::Pending(Box::pin(async move {
            let verified = introspector.verify_for(&token, audience.as_deref()).await;
            drop(token);
            verdict(verified, dpop)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthScheme;
    use crate::principal::Principal;
    use crate::ProtectedResource;
    use axum::body::Body;
    use http::HeaderMap;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use secrecy::SecretString;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    async fn echo(req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
        let who = Principal::from_extensions(req.extensions())
            .map_or("anonymous".to_owned(), |p| {
                format!("{}:{}", p.scheme(), p.name())
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
        // As the ProtectedResourceLayer above the stack would.
        req.extensions_mut().insert(
            ProtectedResource::builder("https://mcp.example.com/mcp")
                .build()
                .unwrap()
                .challenge(),
        );
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
        let (status, headers, body) = send(IntrospectionLayer::new(unreachable()), None, &[]).await;
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
