//! The one rule set of RFC 8414 / OpenID Connect discovery (issue 15,
//! item 3), run against both of its users on a loopback authorization
//! server whose answers each case sets:
//!
//! * introspection: `AuthorizationServerMetadata::discover`, then its
//!   `introspector`;
//! * JWKS: `JwtValidator::builder(..).jwks_from_issuer(..)`, then a token
//!   signed by the discovered keys.
//!
//! Each case checks what both users get and which well-known URLs were
//! asked, in order. Before, the two disagreed: the JWKS never tried
//! `/.well-known/openid-configuration/<path>`, went on to the next URL after
//! a 5xx, a document that was not metadata or one naming another issuer,
//! and compared the issuer exactly; `discover` stopped at any status but
//! 404, followed redirects and ignored a trailing `/` of the issuer.
#![cfg(all(feature = "jwks", feature = "introspection"))]

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::StatusCode,
    response::Response,
    Router,
};
use common::*;
use secrecy::SecretString;
use serde_json::{json, Value};
use tower_mcp_auth::{
    discovery::{AuthorizationServerMetadata, DiscoveryError},
    jwt::JwtValidator,
    ConfigError, ProtectedResource,
};

const OAUTH: &str = "/.well-known/oauth-authorization-server";
const OPENID: &str = "/.well-known/openid-configuration";

/// What the authorization server answers at a path.
#[derive(Clone)]
enum Answer {
    /// The metadata of `origin + issuer_path` (with `jwks_uri`).
    Metadata(&'static str),
    /// Metadata naming this issuer instead (the origin prepended).
    NamesIssuer(&'static str),
    Status(u16),
    Redirect(&'static str),
    Text(&'static str),
}

#[derive(Default)]
struct AsState {
    origin: Mutex<String>,
    answers: Mutex<HashMap<String, Answer>>,
    asked: Mutex<Vec<String>>,
    jwks: Mutex<Value>,
}

async fn handle(State(s): State<Arc<AsState>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let origin = s.origin.lock().unwrap().clone();
    if path == "/jwks.json" {
        let jwks = s.jwks.lock().unwrap().clone();
        return json_response(200, &jwks);
    }
    s.asked.lock().unwrap().push(path.clone());
    let answer = s.answers.lock().unwrap().get(&path).cloned();
    let metadata = |issuer: String| {
        json!({
            "issuer": issuer,
            "jwks_uri": format!("{origin}/jwks.json"),
            "introspection_endpoint": format!("{origin}/introspect"),
        })
    };
    match answer {
        None => json_response(404, &json!({"error": "not found"})),
        Some(Answer::Metadata(p)) => json_response(200, &metadata(format!("{origin}{p}"))),
        Some(Answer::NamesIssuer(p)) => json_response(200, &metadata(format!("{origin}{p}"))),
        Some(Answer::Status(status)) => json_response(status, &json!({"error": "nope"})),
        Some(Answer::Redirect(to)) => Response::builder()
            .status(302)
            .header("location", to)
            .body(Body::empty())
            .unwrap(),
        Some(Answer::Text(text)) => Response::builder()
            .status(200)
            .header("content-type", "text/html")
            .body(Body::from(text))
            .unwrap(),
    }
}

fn json_response(status: u16, v: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

struct AuthServer {
    origin: String,
    state: Arc<AsState>,
    signer: Signer,
}

impl AuthServer {
    async fn start(answers: &[(&str, Answer)]) -> Self {
        let signer = Signer::ec("ec-discovery");
        let state = Arc::new(AsState::default());
        *state.jwks.lock().unwrap() = json!({"keys": [signer.jwk()]});
        *state.answers.lock().unwrap() = answers
            .iter()
            .map(|(p, a)| ((*p).to_owned(), a.clone()))
            .collect();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let origin = format!("http://{}", serve(app).await);
        *state.origin.lock().unwrap() = origin.clone();
        Self {
            origin,
            state,
            signer,
        }
    }

    /// The well-known paths asked since the last call.
    fn asked(&self) -> Vec<String> {
        std::mem::take(&mut *self.state.asked.lock().unwrap())
    }

    /// The introspection user: discovery, then an introspector for the
    /// discovered endpoint.
    async fn introspection_user(&self, issuer: &str) -> Result<(), DiscoveryError> {
        let metadata = AuthorizationServerMetadata::discover(issuer).await?;
        assert_eq!(metadata.issuer, issuer);
        let introspector = metadata
            .introspector("rs", SecretString::from("secret"))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(introspector.url(), format!("{}/introspect", self.origin));
        Ok(())
    }

    /// The JWKS user: a validator whose keys are discovered from `issuer`
    /// accepts a token of that issuer (`Ok`), or cannot get its keys
    /// (`Err(503)`).
    async fn jwks_user(&self, issuer: &str) -> Result<(), u16> {
        let resource = ProtectedResource::builder(AUD).build().unwrap();
        let v = JwtValidator::builder(&resource)
            .jwks_from_issuer(issuer)
            .build()
            .unwrap();
        let mut c = claims("erin");
        c["iss"] = json!(issuer);
        match v.verify(&self.signer.sign(&c)).await {
            Ok(p) => {
                assert_eq!(p.subject(), Some("erin"));
                Ok(())
            }
            Err(e) => Err(tower_mcp_auth::AuthError::from(e).status().as_u16()),
        }
    }
}

fn paths(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| (*s).to_owned()).collect()
}

/// Rule: no path → the RFC 8414 URL, then OpenID's; with a path →
/// RFC 8414 path-inserted, OpenID path-inserted, OpenID path-appended.
#[tokio::test]
async fn the_urls_and_their_order() {
    let s = AuthServer::start(&[]).await;
    let e = s.introspection_user(&s.origin).await.unwrap_err();
    assert!(matches!(e, DiscoveryError::NotFound { .. }), "{e}");
    assert_eq!(s.asked(), paths(&[OAUTH, OPENID]));
    assert_eq!(s.jwks_user(&s.origin).await, Err(503));
    assert_eq!(s.asked(), paths(&[OAUTH, OPENID]));

    let issuer = format!("{}/t1", s.origin);
    let all = [
        "/.well-known/oauth-authorization-server/t1",
        "/.well-known/openid-configuration/t1",
        "/t1/.well-known/openid-configuration",
    ];
    assert!(s.introspection_user(&issuer).await.is_err());
    assert_eq!(s.asked(), paths(&all));
    assert_eq!(s.jwks_user(&issuer).await, Err(503));
    assert_eq!(s.asked(), paths(&all));

    // Each form is found where it is published (the JWKS used to miss the
    // path-inserted OpenID form).
    for (i, published) in all.into_iter().enumerate() {
        let s = AuthServer::start(&[(published, Answer::Metadata("/t1"))]).await;
        let issuer = format!("{}/t1", s.origin);
        s.introspection_user(&issuer).await.unwrap();
        assert_eq!(s.asked(), paths(&all[..=i]), "{published}");
        s.jwks_user(&issuer).await.unwrap();
        assert_eq!(s.asked(), paths(&all[..=i]), "{published}");
    }
}

/// Rule: a terminating `/` of the issuer's path is removed to build the
/// URLs, but the document's issuer must be identical to the one asked
/// for (`discover` used to ignore a trailing `/`).
#[tokio::test]
async fn the_issuer_must_be_identical() {
    // Asked with a trailing slash, the document says without.
    let s = AuthServer::start(&[(
        "/.well-known/oauth-authorization-server/t1",
        Answer::Metadata("/t1"),
    )])
    .await;
    let asked = format!("{}/t1/", s.origin);
    let e = s.introspection_user(&asked).await.unwrap_err();
    assert!(matches!(e, DiscoveryError::IssuerMismatch { .. }), "{e}");
    assert_eq!(
        s.asked(),
        paths(&["/.well-known/oauth-authorization-server/t1"])
    );
    assert_eq!(s.jwks_user(&asked).await, Err(503));
    assert_eq!(
        s.asked(),
        paths(&["/.well-known/oauth-authorization-server/t1"])
    );
    // Exactly as published: found.
    let exact = format!("{}/t1", s.origin);
    s.introspection_user(&exact).await.unwrap();
    s.jwks_user(&exact).await.unwrap();

    // The root: `origin/` is not `origin`.
    let s = AuthServer::start(&[(OAUTH, Answer::NamesIssuer("/"))]).await;
    let e = s.introspection_user(&s.origin).await.unwrap_err();
    assert!(matches!(e, DiscoveryError::IssuerMismatch { .. }), "{e}");
    assert_eq!(s.jwks_user(&s.origin).await, Err(503));
}

/// Rule: a document naming another issuer ends discovery; it is not a
/// reason to try the next URL (the JWKS used to go on).
#[tokio::test]
async fn another_issuer_ends_discovery() {
    let s = AuthServer::start(&[
        (OAUTH, Answer::NamesIssuer("/someone-else")),
        (OPENID, Answer::Metadata("")),
    ])
    .await;
    let e = s.introspection_user(&s.origin).await.unwrap_err();
    assert!(matches!(e, DiscoveryError::IssuerMismatch { .. }), "{e}");
    assert_eq!(s.asked(), paths(&[OAUTH]));
    assert_eq!(s.jwks_user(&s.origin).await, Err(503));
    assert_eq!(s.asked(), paths(&[OAUTH]));
}

/// Rule: a 4xx other than 408 and 429 means "not published in this form"
/// and moves on (`discover` used to stop at anything but 404).
#[tokio::test]
async fn a_client_error_moves_on() {
    for status in [400, 401, 403, 404, 405, 410] {
        let s = AuthServer::start(&[
            (OAUTH, Answer::Status(status)),
            (OPENID, Answer::Metadata("")),
        ])
        .await;
        s.introspection_user(&s.origin).await.unwrap();
        assert_eq!(s.asked(), paths(&[OAUTH, OPENID]), "{status}");
        s.jwks_user(&s.origin).await.unwrap();
        assert_eq!(s.asked(), paths(&[OAUTH, OPENID]), "{status}");
    }
}

/// Rule: a server error, 408, 429 or a redirect ends discovery with that
/// status (the JWKS used to go on; `discover` used to follow redirects).
#[tokio::test]
async fn a_server_error_or_a_redirect_ends_discovery() {
    for (answer, want) in [
        (Answer::Status(500), 500),
        (Answer::Status(503), 503),
        (Answer::Status(408), 408),
        (Answer::Status(429), 429),
        (Answer::Redirect(OPENID), 302),
    ] {
        let s = AuthServer::start(&[(OAUTH, answer), (OPENID, Answer::Metadata(""))]).await;
        let e = s.introspection_user(&s.origin).await.unwrap_err();
        assert!(
            matches!(e, DiscoveryError::Status { status, .. } if status == want),
            "{e}"
        );
        assert_eq!(s.asked(), paths(&[OAUTH]), "{want}");
        assert_eq!(s.jwks_user(&s.origin).await, Err(503));
        assert_eq!(s.asked(), paths(&[OAUTH]), "{want}");
    }
}

/// Rule: a 200 that is not a metadata document ends discovery (the JWKS
/// used to go on), and so does one whose endpoints are not https.
#[tokio::test]
async fn a_document_that_is_not_metadata_ends_discovery() {
    let s = AuthServer::start(&[
        (OAUTH, Answer::Text("<html>single-page app</html>")),
        (OPENID, Answer::Metadata("")),
    ])
    .await;
    let e = s.introspection_user(&s.origin).await.unwrap_err();
    assert!(matches!(e, DiscoveryError::Invalid { .. }), "{e}");
    assert_eq!(s.asked(), paths(&[OAUTH]));
    assert_eq!(s.jwks_user(&s.origin).await, Err(503));
    assert_eq!(s.asked(), paths(&[OAUTH]));
}

/// Rule: the issuer is an https URL (http on loopback) with no query and
/// no fragment, checked before any request, by both users alike.
#[tokio::test]
async fn a_bad_issuer_is_a_configuration_error_for_both() {
    let s = AuthServer::start(&[(OAUTH, Answer::Metadata(""))]).await;
    let resource = ProtectedResource::builder(AUD).build().unwrap();
    for bad in [
        format!("{}?tenant=1", s.origin),
        format!("{}#x", s.origin),
        "http://auth.example.com".to_owned(),
    ] {
        let e = AuthorizationServerMetadata::discover(&bad)
            .await
            .unwrap_err();
        assert!(
            matches!(e, DiscoveryError::Config(ConfigError::InvalidUrl { .. })),
            "{bad}: {e}"
        );
        let e = JwtValidator::builder(&resource)
            .jwks_from_issuer(bad.clone())
            .build()
            .unwrap_err();
        assert!(matches!(e, ConfigError::InvalidUrl { .. }), "{bad}: {e}");
    }
    assert!(s.asked().is_empty());
}
