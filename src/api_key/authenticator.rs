//! The API-key [`Authenticator`]: where a key is read from, and the
//! [`ApiKeyLayer`] that checks it against an [`ApiKeys`] set.

use http::{header, HeaderName, Request};

use crate::{
    authenticate::{AuthenticateLayer, Authenticator, Check, Verdict},
    error::AuthError,
    principal::AuthScheme,
};

use super::store::ApiKeys;

/// The default header: `X-API-Key`.
pub static DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// The [`Layer`](tower_layer::Layer) that authenticates requests by API
/// key: the one [`AuthenticateLayer`] around an [`ApiKeyAuthenticator`].
/// See the [module docs](super) and the [shared rules](crate::authenticate).
///
/// * Required (default): no key → 401 with the challenge.
/// * [`optional`](AuthenticateLayer::optional): no key → the request passes
///   on without a principal (a later layer or the policy decides).
/// * A key that is present but wrong → 401 `invalid_token`, always.
/// * Two key headers, or a key on a request that already has a principal
///   (another credential) → 400 `invalid_request`.
pub type ApiKeyLayer = AuthenticateLayer<ApiKeyAuthenticator>;

/// The [`Authenticator`] of API keys: reads the key from its header and
/// from `Authorization: ApiKey <key>` (unless turned off) and looks it up
/// in an [`ApiKeys`] set. Built by [`ApiKeyLayer::new`].
#[derive(Clone, Debug)]
pub struct ApiKeyAuthenticator {
    keys: ApiKeys,
    /// The key header, then `Authorization` when that scheme is accepted.
    headers: Vec<HeaderName>,
}

impl ApiKeyAuthenticator {
    fn header(&self) -> &HeaderName {
        &self.headers[0]
    }

    fn authorization_scheme(&self) -> bool {
        self.headers.len() > 1
    }
}

impl AuthenticateLayer<ApiKeyAuthenticator> {
    /// A required API-key layer reading `X-API-Key` and
    /// `Authorization: ApiKey <key>` (scheme name case-insensitive); a key
    /// in both is two credentials (400).
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use tower::ServiceExt;
    /// use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = ApiKeys::new().with(ApiKey::new("ci", "mcp_sk_ci-0123456789abcdef"));
    /// let app = Router::new().route("/", get(|| async { "ok" })).layer(ApiKeyLayer::new(keys));
    /// for (name, value) in [
    ///     ("x-api-key", "mcp_sk_ci-0123456789abcdef"),
    ///     ("authorization", "ApiKey mcp_sk_ci-0123456789abcdef"),
    /// ] {
    ///     let req = http::Request::get("/").header(name, value).body(axum::body::Body::empty())?;
    ///     assert_eq!(app.clone().oneshot(req).await?.status(), 200);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn new(keys: ApiKeys) -> Self {
        Self::custom(ApiKeyAuthenticator {
            keys,
            headers: vec![DEFAULT_HEADER.clone(), header::AUTHORIZATION],
        })
    }

    /// Reads the key from another header instead of `X-API-Key`.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.authenticator_mut().headers[0] = name;
        self
    }

    /// Whether `Authorization: ApiKey <key>` is read too (default `true`).
    /// Turned off, such a header is no credential to this layer (as any
    /// header it does not read).
    pub fn authorization_scheme(mut self, accept: bool) -> Self {
        let auth = self.authenticator_mut();
        auth.headers.truncate(1);
        if accept {
            auth.headers.push(header::AUTHORIZATION);
        }
        self
    }
}

fn strip_apikey_scheme(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("apikey").then_some(rest)
}

impl Authenticator for ApiKeyAuthenticator {
    type Credential<'a> = &'a str;
    type Future = std::future::Ready<Verdict>;

    fn scheme(&self) -> AuthScheme {
        AuthScheme::ApiKey
    }

    fn credential_headers(&self) -> &[HeaderName] {
        &self.headers
    }

    fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<&'a str>, AuthError> {
        // One pass over the request's few headers: a lookup per name
        // would hash each. Then the same checks, in the same order, as
        // reading the key's header first and `Authorization` after.
        let (key_header, read_authorization) = (self.header(), self.authorization_scheme());
        let (mut in_header, mut in_headers) = (None, 0_usize);
        let (mut in_authorization, mut in_authorizations) = (None, 0_usize);
        for (name, value) in req.headers() {
            if name == key_header {
                in_header.get_or_insert(value);
                in_headers += 1;
            }
            if read_authorization && name == header::AUTHORIZATION {
                if let Some(key) = value.to_str().ok().and_then(strip_apikey_scheme) {
                    in_authorization.get_or_insert(key);
                    in_authorizations += 1;
                }
            }
        }
        if in_headers > 1 {
            return Err(AuthError::invalid_request(
                "more than one API key header was sent",
            ));
        }
        let mut found = match in_header {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| AuthError::invalid_token("the API key is not valid"))?,
            ),
            None => None,
        };
        if let Some(key) = in_authorization {
            if found.is_some() || in_authorizations > 1 {
                return Err(AuthError::invalid_request("more than one API key was sent"));
            }
            found = Some(key);
        }
        Ok(found.map(str::trim))
    }

    fn verify(&self, key: &str) -> Check<Self::Future> {
        Check::Ready(match self.keys.verify(key) {
            Some(principal) => Verdict::Accept(principal),
            None => Verdict::Refuse(AuthError::invalid_token("the API key is not valid")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::ApiKey;
    use super::super::test_keys::{KEY_A, KEY_B};
    use super::*;
    use crate::principal::Principal;
    use secrecy::SecretString;

    use crate::metadata::ProtectedResource;
    use axum::body::Body;
    use http::{HeaderMap, StatusCode};
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    async fn echo(req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
        let who = Principal::from_extensions(req.extensions())
            .map_or("anonymous".to_owned(), |p| {
                format!("{}:{}:{}", p.scheme(), p.name(), p.scopes())
            });
        Ok(http::Response::new(Body::from(who)))
    }

    fn keys() -> ApiKeys {
        ApiKeys::new()
            .with(ApiKey::new("svc-a", KEY_A).scopes(["read:data"]))
            .with(ApiKey::new("svc-b", KEY_B))
    }

    async fn send(layer: ApiKeyLayer, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
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

    fn get() -> http::request::Builder {
        Request::get("/mcp")
    }

    #[tokio::test]
    async fn valid_key_inserts_principal() {
        let (status, _, body) = send(
            ApiKeyLayer::new(keys()),
            get()
                .header("x-api-key", KEY_A)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body, "api_key:svc-a:read:data");
    }

    #[tokio::test]
    async fn missing_key_is_401_with_challenge() {
        let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
            .build()
            .unwrap();
        // As the ProtectedResourceLayer above the stack would.
        let mut req = get().body(Body::empty()).unwrap();
        req.extensions_mut().insert(resource.challenge());
        let (status, headers, body) = send(ApiKeyLayer::new(keys()), req).await;
        assert_eq!(status, 401);
        // A required key layer takes API keys only: no OAuth offered
        // (issue 25 item 4).
        assert_eq!(headers[header::WWW_AUTHENTICATE], "ApiKey");
        assert_eq!(
            body,
            r#"{"error":"missing_credential","error_description":"authentication is required"}"#
        );
    }

    #[tokio::test]
    async fn wrong_key_is_401_even_when_optional_and_never_echoed() {
        for (layer, scheme) in [
            (ApiKeyLayer::new(keys()), "ApiKey"),
            (ApiKeyLayer::new(keys()).optional(), "Bearer"),
        ] {
            let (status, headers, body) = send(
                layer,
                get()
                    .header("x-api-key", "mcp_sk_guessguessguessguess")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 401);
            assert_eq!(
                headers[header::WWW_AUTHENTICATE],
                format!(
                    r#"{scheme} error="invalid_token", error_description="the API key is not valid""#
                )
            );
            assert!(!body.contains("guess"));
        }
    }

    /// Where the key may be and how often, in either order of the
    /// headers: one key, in the key's header or in `Authorization: ApiKey`.
    #[tokio::test]
    async fn one_key_in_one_place_whatever_the_order_of_the_headers() {
        /// The request's headers, in order; the status; what the body says.
        type Case<'a> = (&'a [(&'static str, &'a [u8])], StatusCode, &'static str);
        let apikey = format!("ApiKey {KEY_A}");
        let cases: [Case<'_>; 7] = [
            (&[("x-api-key", KEY_A.as_bytes())], StatusCode::OK, "svc-a"),
            (
                &[("authorization", apikey.as_bytes())],
                StatusCode::OK,
                "svc-a",
            ),
            // A bearer token is no API key: this layer reads past it.
            (
                &[
                    ("authorization", b"Bearer abc"),
                    ("x-api-key", KEY_A.as_bytes()),
                ],
                StatusCode::OK,
                "svc-a",
            ),
            (
                &[
                    ("x-api-key", KEY_A.as_bytes()),
                    ("x-api-key", KEY_B.as_bytes()),
                ],
                StatusCode::BAD_REQUEST,
                "more than one API key header was sent",
            ),
            (
                &[
                    ("authorization", apikey.as_bytes()),
                    ("x-api-key", KEY_A.as_bytes()),
                ],
                StatusCode::BAD_REQUEST,
                "more than one API key was sent",
            ),
            (
                &[
                    ("authorization", apikey.as_bytes()),
                    ("authorization", apikey.as_bytes()),
                ],
                StatusCode::BAD_REQUEST,
                "more than one API key was sent",
            ),
            // The key's header is read first, as it always was.
            (
                &[
                    ("authorization", apikey.as_bytes()),
                    ("x-api-key", b"mcp_sk_\xff"),
                ],
                StatusCode::UNAUTHORIZED,
                "the API key is not valid",
            ),
        ];
        for (headers, status, says) in cases {
            let mut req = get().body(Body::empty()).unwrap();
            for (name, value) in headers {
                req.headers_mut().append(
                    HeaderName::from_static(name),
                    http::HeaderValue::from_bytes(value).unwrap(),
                );
            }
            let (got, _, body) = send(ApiKeyLayer::new(keys()), req).await;
            assert_eq!(got, status, "{headers:?}: {body}");
            assert!(body.contains(says), "{headers:?}: {body}");
        }
    }

    #[tokio::test]
    async fn optional_passes_anonymous_on() {
        let (status, _, body) = send(
            ApiKeyLayer::new(keys()).optional(),
            get().body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body, "anonymous");
    }

    #[tokio::test]
    async fn duplicate_or_ambiguous_credentials_are_400() {
        let (status, _, _) = send(
            ApiKeyLayer::new(keys()),
            get()
                .header("x-api-key", KEY_A)
                .header("x-api-key", KEY_B)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400);

        let (status, _, _) = send(
            ApiKeyLayer::new(keys()),
            get()
                .header("x-api-key", KEY_A)
                .header("authorization", format!("ApiKey {KEY_B}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400);

        // A principal from another layer plus an API key: two credentials.
        let mut req = get()
            .header("x-api-key", KEY_A)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::Jwt, "someone"));
        let (status, headers, _) = send(ApiKeyLayer::new(keys()), req).await;
        assert_eq!(status, 400);
        assert!(headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_request""#));
    }

    #[tokio::test]
    async fn principal_already_present_passes_on() {
        let mut req = get().body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::Jwt, "someone"));
        let (status, _, body) = send(ApiKeyLayer::new(keys()), req).await;
        assert_eq!(status, 200);
        assert_eq!(body, "jwt:someone:");
    }

    #[tokio::test]
    async fn authorization_apikey_header_is_marked_sensitive() {
        let svc = ServiceBuilder::new()
            .layer(ApiKeyLayer::new(keys()))
            .service_fn(|req: Request<Body>| async move {
                let v = &req.headers()[header::AUTHORIZATION];
                Ok::<_, Infallible>(http::Response::new(Body::from(if v.is_sensitive() {
                    "sensitive"
                } else {
                    "plain"
                })))
            });
        let req = get()
            .header("authorization", format!("ApiKey {KEY_B}"))
            .body(Body::empty())
            .unwrap();
        let resp = svc.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "sensitive");
    }

    /// README: `ApiKeyLayer` reads `X-API-Key` "(or `Authorization:
    /// ApiKey`)". It did only after `.accept_authorization_scheme()`; now
    /// by default (issue 17, item 1), and `.authorization_scheme(false)`
    /// turns it off.
    #[tokio::test]
    async fn authorization_apikey_is_read_by_default() {
        let req = || {
            get()
                .header("authorization", format!("apikey {KEY_B}"))
                .body(Body::empty())
                .unwrap()
        };
        let (status, _, body) = send(ApiKeyLayer::new(keys()), req()).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "api_key:svc-b:"));
        let (status, _, body) =
            send(ApiKeyLayer::new(keys()).authorization_scheme(false), req()).await;
        assert_eq!(status, 401);
        assert!(body.contains("missing_credential"), "{body}");
        // Turned on again, and with another key header.
        let layer = ApiKeyLayer::new(keys())
            .header(HeaderName::from_static("x-key"))
            .authorization_scheme(false)
            .authorization_scheme(true);
        assert_eq!(send(layer, req()).await.0, 200);
    }

    #[tokio::test]
    async fn query_string_key_is_never_read() {
        let (status, _, _) = send(
            ApiKeyLayer::new(keys()),
            Request::get(format!("/mcp?api_key={KEY_A}&x-api-key={KEY_A}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn custom_header_name() {
        let (status, _, _) = send(
            ApiKeyLayer::new(keys()).header(HeaderName::from_static("x-service-key")),
            get()
                .header("x-service-key", KEY_B)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn non_ascii_header_value_is_401_not_500() {
        let (status, _, _) = send(
            ApiKeyLayer::new(keys()),
            get()
                .header(
                    "x-api-key",
                    http::HeaderValue::from_bytes(b"\xff\xfe-not-ascii").unwrap(),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn reload_swaps_keys_for_running_layers() {
        let dir = std::env::temp_dir().join(format!("tma-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.txt");
        let old = SecretString::from(KEY_A);
        let new = SecretString::from(KEY_B);
        std::fs::write(&path, ApiKeys::digest_line("svc", &old, ["read:data"])).unwrap();
        let keys = ApiKeys::from_digest_file(&path).unwrap();
        let svc = ServiceBuilder::new()
            .layer(ApiKeyLayer::new(keys.clone()))
            .service_fn(echo);
        let status = |key: &'static str| {
            let svc = svc.clone();
            async move {
                svc.oneshot(get().header("x-api-key", key).body(Body::empty()).unwrap())
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(status(KEY_A).await, 200);
        assert_eq!(status(KEY_B).await, 401);

        std::fs::write(&path, ApiKeys::digest_line("svc", &new, ["read:data"])).unwrap();
        keys.reload_digest_file(&path).unwrap();
        assert_eq!(status(KEY_A).await, 401, "old key stops working");
        assert_eq!(status(KEY_B).await, 200, "new key starts working");

        std::fs::write(&path, "garbage").unwrap();
        assert!(keys.reload_digest_file(&path).is_err());
        assert_eq!(status(KEY_B).await, 200, "a failed reload keeps the keys");
    }
}
