//! Authorization-server metadata: RFC 8414 and OpenID Connect discovery,
//! and a document of your own for servers that publish none.
//!
//! [`AuthorizationServerMetadata::discover`] reads an issuer's metadata the
//! way MCP clients do (RFC 8414 first, then OpenID Connect Discovery, with
//! the path-inserted and path-appended forms for an issuer with a path),
//! checks that the document names the same `issuer` (RFC 8414 §3.3), and
//! hands you its introspection endpoint and JWKS URI — to build an
//! [`Introspector`] with
//! [`introspector`](AuthorizationServerMetadata::introspector), or a
//! [`ProtectedResource`] with
//! [`protected_resource`](AuthorizationServerMetadata::protected_resource).
//!
//! An authorization server that publishes no metadata (the classic
//! `OAuth2Provider(authorize_url, token_url, scopes)` setup) is described
//! with [`AuthorizationServerMetadata::new`] and the endpoint setters, and
//! [`router`](AuthorizationServerMetadata::router) serves that description
//! as an RFC 8414 document at
//! `/.well-known/oauth-authorization-server[/issuer-path]`. Give the
//! document an `issuer` on your own server (its origin, for example) and
//! list that issuer in the [`ProtectedResource`]'s
//! `authorization_servers`, so MCP clients find it.
//!
//! # Example
//!
//! ```
//! use axum::Router;
//! use tower_mcp_auth::discovery::AuthorizationServerMetadata;
//!
//! // The upstream provider publishes nothing; describe it, served from our origin.
//! let metadata = AuthorizationServerMetadata::new("https://mcp.example.com")
//!     .authorization_endpoint("https://github.com/login/oauth/authorize")
//!     .token_endpoint("https://github.com/login/oauth/access_token")
//!     .scopes_supported(["read:user", "repo"])
//!     .validate()?;
//!
//! let resource = metadata
//!     .protected_resource("https://mcp.example.com/mcp")
//!     .build()?;
//! assert_eq!(resource.authorization_servers(), ["https://mcp.example.com"]);
//!
//! let app: Router = Router::new()
//!     .merge(metadata.router()) // /.well-known/oauth-authorization-server
//!     .merge(resource.router());
//! # Ok::<(), tower_mcp_auth::ConfigError>(())
//! ```
//!
//! Discovering a server that does publish metadata:
//!
//! ```no_run
//! use secrecy::SecretString;
//! use tower_mcp_auth::discovery::AuthorizationServerMetadata;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let metadata = AuthorizationServerMetadata::discover("https://auth.example.com").await?;
//! let introspector = metadata
//!     .introspector("mcp-server", SecretString::from("client-secret"))?
//!     .build()?;
//! println!("JWKS at {:?}", metadata.jwks_uri);
//! # Ok(()) }
//! ```

use std::{fmt, time::Duration};

use axum::{routing::get, Router};
use bytes::Bytes;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    config::ConfigError,
    introspection::{ClientAuth, HttpClient, Introspector, IntrospectorBuilder},
    metadata::{check_url, json_response, ProtectedResource, ProtectedResourceBuilder},
};

/// The RFC 8414 well-known path segment.
pub const OAUTH_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// The OpenID Connect Discovery well-known path segment.
pub const OPENID_WELL_KNOWN: &str = "/.well-known/openid-configuration";
/// Timeout of one metadata request in [`AuthorizationServerMetadata::discover`].
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Authorization-server metadata (RFC 8414 §2; the members an OpenID
/// provider publishes are the same). Members this crate does not name are
/// kept in [`other`](Self::other).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// `authorization_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// `token_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// `jwks_uri`: the keys that sign its JWT access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// `registration_endpoint` (RFC 7591 dynamic client registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// `scopes_supported`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// `response_types_supported`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types_supported: Vec<String>,
    /// `grant_types_supported`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types_supported: Vec<String>,
    /// `token_endpoint_auth_methods_supported`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `introspection_endpoint` (RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// `introspection_endpoint_auth_methods_supported`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// `revocation_endpoint` (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// `code_challenge_methods_supported` (PKCE; MCP clients require `S256`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// Every other member, as published.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Why [`AuthorizationServerMetadata::discover`] found nothing usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer is not a valid issuer URL.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A metadata URL could not be fetched (network, timeout, TLS, a
    /// response too large).
    #[error("cannot fetch {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A metadata URL answered with an unexpected status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL tried.
        url: String,
        /// The status.
        status: u16,
    },
    /// Every well-known URL answered 404.
    #[error("the authorization server {issuer} publishes no metadata (tried {tried})")]
    NotFound {
        /// The issuer.
        issuer: String,
        /// The URLs tried, comma separated.
        tried: String,
    },
    /// The document is not a metadata object.
    #[error("{url} is not authorization-server metadata: {reason}")]
    Invalid {
        /// The URL fetched.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The document names another issuer (RFC 8414 §3.3: it must not be
    /// used).
    #[error("{url} names the issuer `{found}`, not `{expected}`")]
    IssuerMismatch {
        /// The URL fetched.
        url: String,
        /// The issuer asked for.
        expected: String,
        /// The issuer in the document.
        found: String,
    },
}

impl AuthorizationServerMetadata {
    /// Metadata for `issuer` with nothing else set: describe a server that
    /// publishes none, then [`validate`](Self::validate) it.
    #[must_use]
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            response_types_supported: vec!["code".into()],
            code_challenge_methods_supported: vec!["S256".into()],
            ..Self::default()
        }
    }

    /// Sets `authorization_endpoint`.
    #[must_use]
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.authorization_endpoint = Some(url.into());
        self
    }

    /// Sets `token_endpoint`.
    #[must_use]
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Sets `jwks_uri`.
    #[must_use]
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.jwks_uri = Some(url.into());
        self
    }

    /// Sets `introspection_endpoint`.
    #[must_use]
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.introspection_endpoint = Some(url.into());
        self
    }

    /// Sets `registration_endpoint`.
    #[must_use]
    pub fn registration_endpoint(mut self, url: impl Into<String>) -> Self {
        self.registration_endpoint = Some(url.into());
        self
    }

    /// Sets `scopes_supported`.
    #[must_use]
    pub fn scopes_supported<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `grant_types_supported`.
    #[must_use]
    pub fn grant_types_supported<I>(mut self, grants: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.grant_types_supported = grants.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the issuer and every endpoint: absolute `https` URLs (`http`
    /// on loopback only) without a fragment; the issuer also without a
    /// query (RFC 8414 §2).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] naming the member that is wrong.
    pub fn validate(self) -> Result<Self, ConfigError> {
        let issuer = check_url("issuer", &self.issuer)?;
        if issuer.query().is_some() {
            return Err(ConfigError::InvalidUrl {
                what: "issuer",
                url: self.issuer,
                reason: "it must not have a query component (RFC 8414 §2)",
            });
        }
        for (what, url) in [
            ("authorization endpoint", &self.authorization_endpoint),
            ("token endpoint", &self.token_endpoint),
            ("JWKS URI", &self.jwks_uri),
            ("registration endpoint", &self.registration_endpoint),
            ("introspection endpoint", &self.introspection_endpoint),
            ("revocation endpoint", &self.revocation_endpoint),
        ] {
            if let Some(url) = url {
                check_url(what, url)?;
            }
        }
        Ok(self)
    }

    /// Fetches and checks the metadata of `issuer`, trying in order (MCP
    /// authorization, "Authorization Server Metadata Discovery"):
    ///
    /// * no path: `/.well-known/oauth-authorization-server`, then
    ///   `/.well-known/openid-configuration`;
    /// * with a path `/p`: `/.well-known/oauth-authorization-server/p`,
    ///   `/.well-known/openid-configuration/p`, `/p/.well-known/openid-configuration`.
    ///
    /// A 404 moves on to the next URL; anything else ends the search.
    ///
    /// # Errors
    ///
    /// A [`DiscoveryError`]: an invalid issuer URL, an unreachable server,
    /// an unexpected status, no document at all, a document that is not
    /// metadata, or one naming another issuer.
    pub async fn discover(issuer: &str) -> Result<Self, DiscoveryError> {
        let client = reqwest::Client::builder()
            .timeout(DISCOVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| ConfigError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Self::discover_with(&client, issuer).await
    }

    /// As [`discover`](Self::discover), with your own `reqwest` client.
    ///
    /// # Errors
    ///
    /// As [`discover`](Self::discover).
    pub async fn discover_with(
        client: &reqwest::Client,
        issuer: &str,
    ) -> Result<Self, DiscoveryError> {
        let uri = check_url("issuer", issuer)?;
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let path = uri.path().trim_end_matches('/');
        let urls: Vec<String> = if path.is_empty() {
            vec![
                format!("{origin}{OAUTH_WELL_KNOWN}"),
                format!("{origin}{OPENID_WELL_KNOWN}"),
            ]
        } else {
            vec![
                format!("{origin}{OAUTH_WELL_KNOWN}{path}"),
                format!("{origin}{OPENID_WELL_KNOWN}{path}"),
                format!("{origin}{path}{OPENID_WELL_KNOWN}"),
            ]
        };
        let http = HttpClient {
            client: client.clone(),
            max_body: crate::introspection::MAX_RESPONSE_BYTES,
        };
        for url in &urls {
            let request = client
                .get(url)
                .header(http::header::ACCEPT, "application/json")
                .build()
                .map_err(|e| DiscoveryError::Unreachable {
                    url: url.clone(),
                    reason: e.without_url().to_string(),
                })?;
            let response =
                http.execute(request)
                    .await
                    .map_err(|e| DiscoveryError::Unreachable {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
            match response.status().as_u16() {
                200 => {}
                404 => continue,
                status => {
                    return Err(DiscoveryError::Status {
                        url: url.clone(),
                        status,
                    })
                }
            }
            let metadata: Self =
                serde_json::from_slice(response.body()).map_err(|e| DiscoveryError::Invalid {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
            if metadata.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                return Err(DiscoveryError::IssuerMismatch {
                    url: url.clone(),
                    expected: issuer.to_owned(),
                    found: metadata.issuer,
                });
            }
            return metadata.validate().map_err(|e| DiscoveryError::Invalid {
                url: url.clone(),
                reason: e.to_string(),
            });
        }
        Err(DiscoveryError::NotFound {
            issuer: issuer.to_owned(),
            tried: urls.join(", "),
        })
    }

    /// An [`Introspector`] builder for this server's
    /// `introspection_endpoint`, authenticating as `client_id` with
    /// `client_secret_basic`, or `client_secret_post` when that is the only
    /// one of the two the server lists.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the metadata names no introspection
    /// endpoint.
    pub fn introspector(
        &self,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Result<IntrospectorBuilder, ConfigError> {
        let url = self.introspection_endpoint.as_deref().ok_or_else(|| {
            ConfigError::Invalid(format!(
                "the authorization server {} publishes no introspection_endpoint",
                self.issuer
            ))
        })?;
        let methods = &self.introspection_endpoint_auth_methods_supported;
        let has = |m: ClientAuth| methods.iter().any(|x| x == m.as_str());
        let auth = if !has(ClientAuth::ClientSecretBasic) && has(ClientAuth::ClientSecretPost) {
            ClientAuth::ClientSecretPost
        } else {
            ClientAuth::ClientSecretBasic
        };
        Ok(Introspector::builder(url, client_id, client_secret).client_auth(auth))
    }

    /// A [`ProtectedResource`] builder for the resource identifier
    /// `resource`, listing this issuer in `authorization_servers` and its
    /// `scopes_supported`.
    pub fn protected_resource(&self, resource: impl Into<String>) -> ProtectedResourceBuilder {
        ProtectedResource::builder(resource)
            .authorization_server(self.issuer.clone())
            .scopes_supported(self.scopes_supported.iter().cloned())
    }

    /// The path this document is served at on the issuer's host: the
    /// RFC 8414 well-known segment with the issuer's path appended.
    #[must_use]
    pub fn well_known_path(&self) -> String {
        let path = self
            .issuer
            .parse::<http::Uri>()
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        format!("{OAUTH_WELL_KNOWN}{path}")
    }

    /// An axum router serving this document at
    /// [`well_known_path`](Self::well_known_path), as `application/json`
    /// with `Access-Control-Allow-Origin: *`.
    ///
    /// # Panics
    ///
    /// Never for metadata built by this crate: serializing it cannot fail.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let doc = Bytes::from(serde_json::to_vec(self).expect("metadata serializes"));
        Router::new().route(
            &self.well_known_path(),
            get(move || {
                let doc = doc.clone();
                async move { json_response(doc) }
            }),
        )
    }
}

impl fmt::Display for AuthorizationServerMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authorization server {}", self.issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    /// Serves `make(origin)` on a fresh loopback port; returns the origin.
    async fn serve(make: impl FnOnce(&str) -> Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let app = make(&origin);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        origin
    }

    fn described(issuer: &str, origin: &str) -> AuthorizationServerMetadata {
        AuthorizationServerMetadata::new(issuer)
            .authorization_endpoint("https://github.com/login/oauth/authorize")
            .token_endpoint("https://github.com/login/oauth/access_token")
            .introspection_endpoint(format!("{origin}/introspect"))
            .scopes_supported(["read:user", "repo"])
            .validate()
            .unwrap()
    }

    #[tokio::test]
    async fn a_served_document_is_discovered_back() {
        for path in ["", "/tenant1"] {
            let origin = serve(|o| described(&format!("{o}{path}"), o).router()).await;
            let issuer = format!("{origin}{path}");
            let found = AuthorizationServerMetadata::discover(&issuer)
                .await
                .unwrap();
            assert_eq!(found, described(&issuer, &origin));
            assert_eq!(found.scopes_supported, ["read:user", "repo"]);
            assert_eq!(found.code_challenge_methods_supported, ["S256"]);
            let i = found
                .introspector("rs", SecretString::from("s"))
                .unwrap()
                .build()
                .unwrap();
            assert_eq!(i.url(), format!("{origin}/introspect"));
            let r = found
                .protected_resource("https://mcp.example.com/mcp")
                .build()
                .unwrap();
            assert_eq!(r.authorization_servers(), std::slice::from_ref(&issuer));
        }
    }

    #[tokio::test]
    async fn openid_configuration_is_the_fallback_and_other_members_are_kept() {
        let origin = serve(|o| {
            let doc = serde_json::json!({
                "issuer": o,
                "jwks_uri": format!("{o}/jwks"),
                "introspection_endpoint": format!("{o}/introspect"),
                "introspection_endpoint_auth_methods_supported": ["client_secret_post"],
                "userinfo_endpoint": format!("{o}/userinfo"),
            });
            Router::new().route(
                OPENID_WELL_KNOWN,
                get(move || {
                    let doc = doc.clone();
                    async move { axum::Json(doc) }
                }),
            )
        })
        .await;
        let found = AuthorizationServerMetadata::discover(&origin)
            .await
            .unwrap();
        assert_eq!(
            found.jwks_uri.as_deref(),
            Some(format!("{origin}/jwks").as_str())
        );
        assert_eq!(
            found.other["userinfo_endpoint"],
            serde_json::json!(format!("{origin}/userinfo"))
        );
        // Only client_secret_post is listed: the introspector uses it.
        let b = found.introspector("rs", SecretString::from("s")).unwrap();
        assert!(format!("{b:?}").contains("ClientSecretPost"));
    }

    #[tokio::test]
    async fn discovery_failures_are_clear() {
        // Nothing published.
        let origin = serve(|_| Router::new()).await;
        let e = AuthorizationServerMetadata::discover(&origin)
            .await
            .unwrap_err();
        assert!(matches!(e, DiscoveryError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains(OPENID_WELL_KNOWN), "{e}");
        // Another issuer named.
        let origin =
            serve(|_| described("https://evil.example.com", "https://evil.example.com").router())
                .await;
        let e = AuthorizationServerMetadata::discover(&origin)
            .await
            .unwrap_err();
        // The evil document is served at the root well-known path.
        assert!(matches!(e, DiscoveryError::IssuerMismatch { .. }), "{e}");
        // A server error.
        let origin = serve(|_| {
            Router::new().route(
                OAUTH_WELL_KNOWN,
                get(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
        })
        .await;
        let e = AuthorizationServerMetadata::discover(&origin)
            .await
            .unwrap_err();
        assert!(
            matches!(e, DiscoveryError::Status { status: 500, .. }),
            "{e}"
        );
        // Not JSON metadata.
        let origin =
            serve(|_| Router::new().route(OAUTH_WELL_KNOWN, get(|| async { "hello" }))).await;
        let e = AuthorizationServerMetadata::discover(&origin)
            .await
            .unwrap_err();
        assert!(matches!(e, DiscoveryError::Invalid { .. }), "{e}");
        // Down.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = AuthorizationServerMetadata::discover(&format!("http://{addr}"))
            .await
            .unwrap_err();
        assert!(matches!(e, DiscoveryError::Unreachable { .. }), "{e}");
        // Bad issuer URL.
        let e = AuthorizationServerMetadata::discover("http://auth.example.com")
            .await
            .unwrap_err();
        assert!(matches!(e, DiscoveryError::Config(_)), "{e}");
    }

    #[test]
    fn validate_checks_every_endpoint() {
        let e = AuthorizationServerMetadata::new("https://a.example.com")
            .token_endpoint("http://a.example.com/token")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("token endpoint"), "{e}");
        assert!(
            AuthorizationServerMetadata::new("https://a.example.com?x=1")
                .validate()
                .is_err()
        );
        let m = AuthorizationServerMetadata::new("https://a.example.com");
        assert!(m.introspector("rs", SecretString::from("s")).is_err());
    }

    #[tokio::test]
    async fn the_router_serves_rfc_8414_json() {
        use tower::ServiceExt;
        let m = described("https://mcp.example.com", "https://mcp.example.com");
        let res = m
            .router::<()>()
            .oneshot(
                http::Request::get(OAUTH_WELL_KNOWN)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "issuer": "https://mcp.example.com",
                "authorization_endpoint": "https://github.com/login/oauth/authorize",
                "token_endpoint": "https://github.com/login/oauth/access_token",
                "introspection_endpoint": "https://mcp.example.com/introspect",
                "scopes_supported": ["read:user", "repo"],
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            })
        );
    }
}
