//! The shared rules of the authenticator model (`tower_mcp_auth::authenticate`),
//! run through the public API against every authenticator of this crate
//! (API key, JWT, JWT with DPoP, introspection) and against a custom one,
//! the module docs' client certificate.

use axum::body::Body;
use http::{header, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use std::convert::Infallible;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyAuthenticator, ApiKeyLayer, ApiKeys},
    authenticate::{
        bearer_token, AuthenticateLayer, Authenticator, Check, UnverifiedCredential, Verdict,
    },
    AuthError, AuthScheme, Principal, ProtectedResource,
};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const CHALLENGE: &str = r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#;
const API_KEY: &str = "mcp_sk_aaaaaaaaaaaaaaaaaaaaaaaa";

static CLIENT_CERT: HeaderName = HeaderName::from_static("x-client-cert-subject");

/// The docs' custom authenticator: a subject a TLS terminator forwards.
#[derive(Clone, Debug)]
struct ClientCert;

impl Authenticator for ClientCert {
    type Credential<'a> = &'a str;
    type Future = std::future::Ready<Verdict>;

    fn scheme(&self) -> AuthScheme {
        AuthScheme::custom("mtls", false)
    }

    fn credential_headers(&self) -> &[HeaderName] {
        std::slice::from_ref(&CLIENT_CERT)
    }

    fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<&'a str>, AuthError> {
        let mut values = req.headers().get_all(&CLIENT_CERT).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AuthError::invalid_request(
                "more than one client certificate",
            ));
        }
        value
            .to_str()
            .map(Some)
            .map_err(|_| AuthError::invalid_token("unreadable subject"))
    }

    fn verify(&self, subject: &str) -> Check<Self::Future> {
        Check::Ready(if subject == "CN=billing" {
            Verdict::Accept(Principal::new(self.scheme(), subject))
        } else {
            Verdict::Refuse(AuthError::invalid_token("this certificate is not allowed"))
        })
    }
}

/// One authenticator under test: its layer, a good and a bad
/// credential, and the subject the good one names.
struct Case<A> {
    layer: AuthenticateLayer<A>,
    good: (HeaderName, String),
    bad: (HeaderName, String),
    subject: &'static str,
}

fn resource() -> ProtectedResource {
    ProtectedResource::builder(RESOURCE).build().unwrap()
}

fn request(
    credential: Option<&(HeaderName, String)>,
    principal: Option<Principal>,
) -> Request<Body> {
    let mut req = Request::get("/mcp").body(Body::empty()).unwrap();
    if let Some((name, value)) = credential {
        req.headers_mut()
            .append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    req
}

/// Sends `req` through the layer to a handler that answers
/// `scheme:subject:<every credential header value sensitive>`.
async fn send<A: Authenticator + Clone>(
    layer: AuthenticateLayer<A>,
    req: Request<Body>,
) -> (StatusCode, Option<String>, String) {
    let names = layer.authenticator().credential_headers().to_vec();
    let svc = ServiceBuilder::new()
        .layer(resource().layer())
        .layer(layer)
        .service_fn(move |req: Request<Body>| {
            let names = names.clone();
            async move {
                let sensitive = names.iter().all(|n| {
                    req.headers()
                        .get_all(n)
                        .iter()
                        .all(HeaderValue::is_sensitive)
                });
                let who = Principal::from_extensions(req.extensions())
                    .map_or("anonymous".to_owned(), |p| {
                        format!("{}:{}:{sensitive}", p.scheme(), p.name())
                    });
                Ok::<_, Infallible>(http::Response::new(Body::from(who)))
            }
        });
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

/// Every shared rule of the module docs, against one authenticator.
async fn shared_rules<A: Authenticator + Clone>(case: Case<A>) {
    let layer = case.layer;
    let scheme = layer.authenticator().scheme();
    let name = scheme.as_str();

    // No credential: 401 with the resource's challenge; a required
    // API key layer offers API keys only (issue 25 item 4).
    let (status, challenge, body) = send(layer.clone(), request(None, None)).await;
    assert_eq!(status, 401, "{name}");
    let want = if scheme == AuthScheme::ApiKey {
        "ApiKey"
    } else {
        CHALLENGE
    };
    assert_eq!(challenge.as_deref(), Some(want), "{name}");
    assert!(body.contains("missing_credential"), "{name}: {body}");

    // Optional: no credential passes on without a principal.
    let (status, _, body) = send(layer.clone().optional(), request(None, None)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "anonymous"),
        "{name}"
    );

    // A good credential: the principal, every credential value sensitive.
    let (status, _, body) = send(layer.clone(), request(Some(&case.good), None)).await;
    assert_eq!(status, 200, "{name}: {body}");
    assert_eq!(body, format!("{name}:{}:true", case.subject));

    // A bad one: 401 invalid_token with the challenge, optional or not.
    for (layer, optional) in [(layer.clone(), false), (layer.clone().optional(), true)] {
        let (status, challenge, _) = send(layer, request(Some(&case.bad), None)).await;
        assert_eq!(status, 401, "{name}");
        let challenge = challenge.unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{name}: {challenge}"
        );
        // A required API key layer offers no OAuth (issue 25 item 4).
        let offers_oauth = scheme != AuthScheme::ApiKey || optional;
        assert_eq!(
            challenge.contains("resource_metadata="),
            offers_oauth,
            "{name}: {challenge}"
        );
    }

    // Two credentials of the same header: 400 before anything is verified.
    let mut req = request(Some(&case.good), None);
    req.headers_mut().append(
        case.good.0.clone(),
        HeaderValue::from_str(&case.good.1).unwrap(),
    );
    let (status, _, _) = send(layer.clone(), req).await;
    assert_eq!(status, 400, "{name}");

    // Already authenticated, no credential of ours: passes on as it is.
    let earlier = Principal::new(AuthScheme::ApiKey, "earlier");
    let (status, _, body) = send(layer.clone(), request(None, Some(earlier.clone()))).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "api_key:earlier:true"),
        "{name}"
    );

    // Already authenticated by another credential, and ours too: two
    // credentials, 400, whatever the earlier scheme (one rule).
    for other in [
        earlier.clone(),
        Principal::new(AuthScheme::custom("cookie", false), "c"),
    ] {
        if other.scheme() == scheme {
            continue;
        }
        let (status, _, body) = send(layer.clone(), request(Some(&case.good), Some(other))).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains("more than one credential"), "{name}: {body}");
    }

    // A principal an earlier bearer authenticator made: the bearer token
    // is verified already for a bearer authenticator (passes on, nothing
    // verified again: the bad one is not even looked at); two
    // credentials for any other.
    let bearer = Principal::new(AuthScheme::custom("earlier_bearer", true), "b");
    let (status, _, body) = send(layer.clone(), request(Some(&case.bad), Some(bearer))).await;
    if scheme.is_bearer() {
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "earlier_bearer:b:true"),
            "{name}"
        );
    } else {
        assert_eq!(status, 400, "{name}: {body}");
    }
}

fn api_key_case() -> Case<ApiKeyAuthenticator> {
    Case {
        layer: ApiKeyLayer::new(ApiKeys::new().with(ApiKey::new("svc", API_KEY))),
        good: (HeaderName::from_static("x-api-key"), API_KEY.to_owned()),
        bad: (
            HeaderName::from_static("x-api-key"),
            "mcp_sk_wrong-wrong-wrong".to_owned(),
        ),
        subject: "svc",
    }
}

#[tokio::test]
async fn shared_rules_api_key() {
    shared_rules(api_key_case()).await;
}

#[tokio::test]
async fn shared_rules_custom_client_certificate() {
    shared_rules(Case {
        layer: AuthenticateLayer::custom(ClientCert),
        good: (CLIENT_CERT.clone(), "CN=billing".to_owned()),
        bad: (CLIENT_CERT.clone(), "CN=mallory".to_owned()),
        subject: "CN=billing",
    })
    .await;
}

/// The JWT cases' secret: HS256, so no key server is needed.
#[cfg(feature = "jwt")]
const JWT_SECRET: &str = "authenticator-rules-hs256-secret-0123456789";

/// A validator of tokens signed with [`JWT_SECRET`] for [`RESOURCE`].
#[cfg(feature = "jwt")]
fn jwt_validator() -> tower_mcp_auth::jwt::JwtValidator {
    tower_mcp_auth::jwt::JwtValidator::builder(&resource())
        .hs256_secret(&secrecy::SecretString::from(JWT_SECRET))
        .build()
        .unwrap()
}

/// A good token for [`jwt_validator`], naming `user-1`.
#[cfg(feature = "jwt")]
fn jwt() -> String {
    tower_mcp_auth::jwt::Hs256Signer::new(&secrecy::SecretString::from(JWT_SECRET))
        .unwrap()
        .token(RESOURCE)
        .subject("user-1")
        .scopes(["read:data", "write:data"])
        .client_id("cli")
        .sign()
        .unwrap()
}

#[cfg(feature = "jwt")]
#[tokio::test]
async fn shared_rules_jwt() {
    shared_rules(Case {
        layer: tower_mcp_auth::jwt::JwtLayer::new(jwt_validator()),
        good: (header::AUTHORIZATION, format!("Bearer {}", jwt())),
        bad: (header::AUTHORIZATION, "Bearer not-a-jwt".to_owned()),
        subject: "user-1",
    })
    .await;
}

#[cfg(feature = "dpop")]
#[tokio::test]
async fn shared_rules_jwt_with_dpop() {
    use tower_mcp_auth::dpop::{Dpop, ProofValidator};
    let dpop = Dpop::new(ProofValidator::builder().build().unwrap());
    shared_rules(Case {
        layer: tower_mcp_auth::jwt::JwtLayer::new(jwt_validator()).dpop(dpop),
        good: (header::AUTHORIZATION, format!("Bearer {}", jwt())),
        bad: (header::AUTHORIZATION, "Bearer not-a-jwt".to_owned()),
        subject: "user-1",
    })
    .await;
}

/// A loopback introspection endpoint: `good` is active for the
/// resource, anything else inactive.
#[cfg(feature = "introspection")]
async fn introspection_endpoint() -> String {
    use axum::{routing::post, Form, Json, Router};
    use std::collections::HashMap;
    let app = Router::new().route(
        "/introspect",
        post(|Form(form): Form<HashMap<String, String>>| async move {
            Json(if form.get("token").map(String::as_str) == Some("good") {
                serde_json::json!({"active": true, "sub": "alice", "aud": RESOURCE})
            } else {
                serde_json::json!({"active": false})
            })
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/introspect")
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn shared_rules_introspection() {
    let introspector = tower_mcp_auth::introspection::Introspector::builder(
        introspection_endpoint().await,
        "rs",
        secrecy::SecretString::from("secret"),
    )
    .audience(RESOURCE)
    .build()
    .unwrap();
    shared_rules(Case {
        layer: tower_mcp_auth::introspection::IntrospectionLayer::new(introspector),
        good: (header::AUTHORIZATION, "Bearer good".to_owned()),
        bad: (header::AUTHORIZATION, "Bearer bad".to_owned()),
        subject: "alice",
    })
    .await;
}

#[tokio::test]
async fn every_value_of_a_credential_header_is_sensitive() {
    // `Authorization: ApiKey` next to another Authorization value: the
    // key's authenticator marks both (it read them both).
    let layer = api_key_case().layer;
    let mut req = request(
        Some(&(header::AUTHORIZATION, format!("ApiKey {API_KEY}"))),
        None,
    );
    req.headers_mut().append(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    let (status, _, body) = send(layer, req).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "api_key:svc:true")
    );
}

/// A bearer authenticator that hands every token on.
#[derive(Clone, Debug)]
struct HandsOn(AuthScheme);

impl Authenticator for HandsOn {
    type Credential<'a> = &'a str;
    type Future = std::future::Ready<Verdict>;

    fn scheme(&self) -> AuthScheme {
        self.0
    }

    fn credential_headers(&self) -> &[HeaderName] {
        std::slice::from_ref(&header::AUTHORIZATION)
    }

    fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<&'a str>, AuthError> {
        bearer_token(req.headers(), 4096)
    }

    fn verify(&self, _: &str) -> Check<Self::Future> {
        Check::Ready(Verdict::HandOn)
    }
}

/// An API key accepted after a bearer authenticator handed its token on
/// (a credential of another kind): the token stays marked, refused later
/// by the authorization step.
#[tokio::test]
async fn an_api_key_after_a_handed_on_token_leaves_it_marked() {
    let marked = |req: &Request<Body>| req.extensions().get::<UnverifiedCredential>().is_some();
    let hand_on = AuthenticateLayer::custom(HandsOn(AuthScheme::custom("first", true)));
    let svc = ServiceBuilder::new()
        .layer(hand_on)
        .layer(api_key_case().layer)
        .service_fn(move |req: Request<Body>| async move {
            Ok::<_, Infallible>(http::Response::new(Body::from(format!("{}", marked(&req)))))
        });
    let mut req = request(Some(&(header::AUTHORIZATION, "Bearer opaque".into())), None);
    req.headers_mut()
        .insert("x-api-key", HeaderValue::from_static(API_KEY));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "true");
}

/// The hand-on mark, with authenticators of the model alone: only a later
/// authenticator of the same kind clears it.
#[tokio::test]
async fn a_handed_on_credential_is_cleared_only_by_one_of_its_kind() {
    let marked = |req: &Request<Body>| req.extensions().get::<UnverifiedCredential>().is_some();
    let hand_on = AuthenticateLayer::custom(HandsOn(AuthScheme::custom("first", true)));

    // Handed on and never verified: marked, no principal.
    let svc = ServiceBuilder::new().layer(hand_on.clone()).service_fn(
        move |req: Request<Body>| async move {
            Ok::<_, Infallible>(http::Response::new(Body::from(format!("{}", marked(&req)))))
        },
    );
    let res = svc
        .oneshot(request(
            Some(&(header::AUTHORIZATION, "Bearer opaque".to_owned())),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "true");

    // A later bearer authenticator accepts it: the mark is cleared.
    #[derive(Clone, Debug)]
    struct AcceptsBearer;
    impl Authenticator for AcceptsBearer {
        type Credential<'a> = &'a str;
        type Future = std::future::Ready<Verdict>;
        fn scheme(&self) -> AuthScheme {
            AuthScheme::custom("second", true)
        }
        fn credential_headers(&self) -> &[HeaderName] {
            std::slice::from_ref(&header::AUTHORIZATION)
        }
        fn find<'a, B>(&self, req: &'a Request<B>) -> Result<Option<&'a str>, AuthError> {
            bearer_token(req.headers(), 4096)
        }
        fn verify(&self, token: &str) -> Check<Self::Future> {
            Check::Ready(Verdict::Accept(Principal::new(self.scheme(), token)))
        }
    }
    let svc = ServiceBuilder::new()
        .layer(hand_on.clone())
        .layer(AuthenticateLayer::custom(AcceptsBearer))
        .service_fn(move |req: Request<Body>| async move {
            Ok::<_, Infallible>(http::Response::new(Body::from(format!(
                "{}:{}",
                marked(&req),
                Principal::from_extensions(req.extensions()).unwrap().name()
            ))))
        });
    let res = svc
        .oneshot(request(
            Some(&(header::AUTHORIZATION, "Bearer opaque".to_owned())),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "false:opaque"
    );
}
