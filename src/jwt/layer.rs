//! [`JwtLayer`] and its [`JwtAuthenticator`].

use std::{future::Future, pin::Pin};

use http::{header, HeaderName, Request};

use super::{
    error::JwtError,
    validator::{JwtValidator, Step},
};
use crate::{
    authenticate::{AuthenticateLayer, Authenticator, Check, Verdict},
    error::AuthError,
    principal::{AuthScheme, Principal},
};

/// The [`Layer`](tower_layer::Layer) that authenticates
/// `Authorization: Bearer` JWTs with a [`JwtValidator`]: the one
/// [`AuthenticateLayer`] around a [`JwtAuthenticator`]. See the
/// [module docs](super) for the rules and the
/// [shared ones](crate::authenticate).
pub type JwtLayer = AuthenticateLayer<JwtAuthenticator>;

/// The [`Authenticator`] of bearer JWTs. Built by [`JwtLayer::new`].
#[derive(Clone, Debug)]
pub struct JwtAuthenticator {
    validator: JwtValidator,
    pass_opaque: bool,
    /// Whether a DPoP wrapper checks the proofs of bound tokens; until
    /// then they are refused.
    pub(crate) dpop: bool,
}

impl AuthenticateLayer<JwtAuthenticator> {
    /// A required JWT layer.
    pub fn new(validator: JwtValidator) -> Self {
        Self::custom(JwtAuthenticator {
            validator,
            pass_opaque: false,
            dpop: false,
        })
    }

    /// Hands a bearer token that is not a JWT at all (an opaque token) on
    /// to a later authenticator, an
    /// [`IntrospectionLayer`](crate::introspection::IntrospectionLayer), instead of
    /// refusing it. The request goes on without a principal but marked
    /// [`UnverifiedCredential`](crate::authenticate::UnverifiedCredential):
    /// the introspection layer verifies the token and clears the mark, and
    /// if no layer does (a stack without one),
    /// [`McpPolicyLayer`](crate::mcp::McpPolicyLayer),
    /// [`Authorize`](crate::Authorize) and the [`Principal`]
    /// extractors refuse the request with 401 `invalid_token`. A JWT-shaped
    /// token that fails verification is refused here, always.
    pub fn pass_opaque_tokens(mut self) -> Self {
        self.authenticator_mut().pass_opaque = true;
        self
    }
}

/// The slow path: waiting for the remote key set (feature `jwks`).
type Fetching = Pin<Box<dyn Future<Output = Verdict> + Send>>;

impl JwtAuthenticator {
    /// The longest token read, in bytes.
    #[cfg(feature = "dpop")]
    pub(crate) fn max_token_bytes(&self) -> usize {
        self.validator.max_token_bytes()
    }

    /// The verdict on a verification's result.
    fn verdict(result: Result<Principal, JwtError>, pass_opaque: bool, dpop: bool) -> Verdict {
        match result {
            Ok(principal) => crate::authenticate::refuse_bound(Verdict::Accept(principal), dpop),
            // Not ours: an opaque token for a later introspection layer.
            Err(e) if e.is_not_jwt() && pass_opaque => Verdict::HandOn,
            Err(e) => Verdict::Refuse(AuthError::from(e)),
        }
    }
}

impl Authenticator for JwtAuthenticator {
    type Credential<'a> = &'a str;
    type Future = Fetching;

    fn scheme(&self) -> AuthScheme {
        AuthScheme::Jwt
    }

    fn credential_headers(&self) -> &[HeaderName] {
        std::slice::from_ref(&header::AUTHORIZATION)
    }

    fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<&'a str>, AuthError> {
        crate::bearer::find_bearer(req.headers(), self.validator.max_token_bytes())
    }

    fn verify(&self, token: &str) -> Check<Fetching> {
        match self.validator.try_verify(token) {
            Step::Done(result) => Check::Ready(Self::verdict(result, self.pass_opaque, self.dpop)),
            #[cfg(feature = "jwks")]
            Step::Fetch => {
                let validator = self.validator.clone();
                let (pass_opaque, dpop) = (self.pass_opaque, self.dpop);
                let token = token.to_owned();
                Check::Pending(Box::pin(async move {
                    let result = validator.verify_after_fetch(&token).await;
                    drop(token);
                    Self::verdict(result, pass_opaque, dpop)
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        error::ErrorRenderer, metadata::ProtectedResource, unverified::UnverifiedCredential,
    };
    use crate::{
        jwt::test_support::{good_claims, hs256, validator},
        principal::AuthScheme,
    };
    use axum::body::Body;
    use http::HeaderMap;
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
                format!("{}:{}:{}:{sensitive}", p.scheme(), p.name(), p.scopes())
            });
        Ok(http::Response::new(Body::from(who)))
    }

    async fn send(layer: JwtLayer, mut req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        // As the ProtectedResourceLayer above the stack would.
        if req.extensions().get::<crate::Challenge>().is_none() {
            req.extensions_mut().insert(
                crate::ProtectedResource::builder("https://mcp.example.com/mcp")
                    .build()
                    .unwrap()
                    .challenge(),
            );
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
    async fn a_dpop_bound_token_is_refused_by_a_layer_without_dpop() {
        let mut claims = good_claims();
        claims["cnf"] = serde_json::json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
        let (status, headers, body) = send(
            JwtLayer::new(validator()),
            bearer(&format!("Bearer {}", hs256(&claims))),
        )
        .await;
        assert_eq!(status, 401);
        assert!(headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#));
        assert!(body.contains("DPoP-bound"), "{body}");
        // The same token without `cnf` is a bearer token like any other.
        let (status, _, _) = send(
            JwtLayer::new(validator()),
            bearer(&format!("Bearer {}", hs256(&good_claims()))),
        )
        .await;
        assert_eq!(status, 200);
    }

    /// `Authorization: DPoP <token>` at a layer without `.dpop()` is a
    /// presented credential, never the absence of one (issue 23, 6c).
    #[tokio::test]
    async fn a_dpop_scheme_token_without_dpop_is_a_credential_not_anonymous() {
        let token = hs256(&good_claims());
        // Optional: handed on, marked; the extractors (the end of the
        // stack here) refuse it.
        let svc = ServiceBuilder::new()
            .layer(JwtLayer::new(validator()).optional())
            .service_fn(|req: Request<Body>| async move {
                let marked = req.extensions().get::<UnverifiedCredential>().copied();
                let sensitive = req.headers()[header::AUTHORIZATION].is_sensitive();
                let (mut parts, _) = req.into_parts();
                let optional =
                    <Principal as axum::extract::OptionalFromRequestParts<()>>::from_request_parts(
                        &mut parts,
                        &(),
                    )
                    .await;
                let status = optional.map_or_else(|e| e.status().as_u16(), |_| 200);
                Ok::<_, Infallible>(http::Response::new(Body::from(format!(
                    "{}:{status}:{sensitive}",
                    marked.map_or("none", |m| m.by())
                ))))
            });
        for value in [format!("DPoP {token}"), "dpop x".to_owned()] {
            let res = svc.clone().oneshot(bearer(&value)).await.unwrap();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"jwt:401:true", "{value}");
        }
        // Required: refused at once, invalid_token.
        let (status, headers, _) =
            send(JwtLayer::new(validator()), bearer(&format!("DPoP {token}"))).await;
        assert_eq!(status, 401);
        let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        // With an API key's principal already there: two credentials.
        let mut req = bearer("DPoP x");
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::ApiKey, "svc"));
        let (status, _, _) = send(JwtLayer::new(validator()).optional(), req).await;
        assert_eq!(status, 400);
        // A bearer principal already there (an earlier layer with DPoP
        // verified this token): nothing more to do.
        let mut req = bearer("DPoP x");
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::Jwt, "user-1"));
        let (status, _, body) = send(JwtLayer::new(validator()), req).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "jwt:user-1::true"));
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
    // by an authenticator gets a JSON-RPC error, which MCP SDKs surface with
    // its message, carrying the request's id (read from the refused body;
    // issue 17, item 2: it was null).
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
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32001,"message":"the token is not for this resource","data":{"error":"invalid_token","error_description":"the token is not for this resource"}}}"#
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
        let layer = JwtLayer::new(validator()).renderer(ErrorRenderer::new(|e| {
            let mut r = axum::response::IntoResponse::into_response(e);
            r.headers_mut().insert("x-refused", "1".parse().unwrap());
            r
        }));
        // As the ProtectedResourceLayer above the stack would.
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        req.extensions_mut().insert(resource.challenge());
        let (status, headers, _) = send(layer, req).await;
        assert_eq!(status, 401);
        assert_eq!(headers["x-refused"], "1");
        assert!(headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("https://other.example.com/.well-known/oauth-protected-resource/api"));
    }
}
