//! Authorization-server metadata: RFC 8414 and OpenID Connect discovery,
//! and a document of your own for servers that publish none.
//!
//! This is the one place that finds an authorization server's metadata:
//! [`AuthorizationServerMetadata::discover`] for you, and the JWT
//! validator's `JwtValidatorBuilder::jwks_from_issuer` (feature `jwks`),
//! which follows the same rules to its `jwks_uri`. It needs either of the
//! `jwks` and `introspection` features (`jwt` alone, local keys only,
//! makes no HTTP request). The metadata hands you the
//! introspection endpoint and the JWKS URI: build an `Introspector` with
//! `AuthorizationServerMetadata::introspector` (feature `introspection`),
//! or a [`ProtectedResource`] with
//! [`protected_resource`](AuthorizationServerMetadata::protected_resource).
//!
//! # The rules of discovery
//!
//! **The issuer** is an absolute `https` URL (`http` on loopback only) with
//! no query and no fragment (RFC 8414 §2); anything else is a
//! configuration error, before any request.
//!
//! **The URLs**, tried in this order (MCP authorization, "Authorization
//! Server Metadata Discovery", which is RFC 8414 §3.1 and OpenID Connect
//! Discovery §4.1 with the path-inserted OpenID form some servers use),
//! after removing a terminating `/` from the issuer's path (both RFCs):
//!
//! | issuer | URLs |
//! | --- | --- |
//! | `https://as.example.com` | `https://as.example.com/.well-known/oauth-authorization-server`, `https://as.example.com/.well-known/openid-configuration` |
//! | `https://as.example.com/t1` | `https://as.example.com/.well-known/oauth-authorization-server/t1`, `https://as.example.com/.well-known/openid-configuration/t1`, `https://as.example.com/t1/.well-known/openid-configuration` |
//!
//! [`AuthorizationServerMetadata::well_known_urls`] gives the list.
//!
//! **One answer decides.** Each URL is fetched once (`GET`, `Accept:
//! application/json`, no redirects followed, a deadline over the whole
//! exchange and a size cap on the body):
//!
//! * a 4xx other than 408 and 429 (404 above all: the server does not
//!   publish this form) moves on to the next URL; when every URL says so,
//!   [`DiscoveryError::NotFound`] lists them;
//! * 200 with a metadata document that passes the checks below is the
//!   answer;
//! * anything else ends discovery with its error, without trying the other
//!   URLs: unreachable, timed out or too large
//!   ([`Unreachable`](DiscoveryError::Unreachable)); any other status,
//!   redirects, 408, 429 and 5xx included ([`Status`](DiscoveryError::Status));
//!   a 200 that is not a metadata object, or whose endpoints are not
//!   valid URLs by the rule above ([`Invalid`](DiscoveryError::Invalid));
//!   a document that names another issuer
//!   ([`IssuerMismatch`](DiscoveryError::IssuerMismatch)).
//!   A server that is down or misconfigured is reported as such, never
//!   papered over with another document.
//!
//! **The issuer must be identical**: the document's `issuer` equals the
//! issuer asked for, character for character (RFC 8414 §3.3, OpenID Connect
//! Discovery §4.3): `https://as.example.com/` is not
//! `https://as.example.com`, nor is `https://AS.example.com`. Tokens are
//! then checked against that same string (`iss`), so configure the issuer
//! exactly as the server writes it.
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
//! use tower_mcp_auth::discovery::AuthorizationServerMetadata;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let metadata = AuthorizationServerMetadata::discover("https://auth.example.com").await?;
//! println!("JWKS at {:?}", metadata.jwks_uri);
//! println!("introspection at {:?}", metadata.introspection_endpoint);
//! # Ok(()) }
//! ```

use std::{fmt, time::Duration};

use axum::{routing::get, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    config::ConfigError,
    fetch::HttpClient,
    metadata::{json_response, ProtectedResource, ProtectedResourceBuilder},
    url::{check_identifier, check_url},
};

/// The RFC 8414 well-known path segment.
pub const OAUTH_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// The OpenID Connect Discovery well-known path segment.
pub const OPENID_WELL_KNOWN: &str = "/.well-known/openid-configuration";
/// Timeout of one metadata request in [`AuthorizationServerMetadata::discover`].
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest metadata document read by [`AuthorizationServerMetadata::discover`],
/// in bytes.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Why an issuer with a query is refused.
const ISSUER_RULE: &str = "it must not have a query component (RFC 8414 §2)";
/// The longest text taken from a fetched document into an error.
const MAX_QUOTED: usize = 256;

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
///
/// `Debug` prints the [`Display`](std::fmt::Display) text, as
/// [`ConfigError`]'s does: it is what `main` shows when it returns one.
#[derive(thiserror::Error)]
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

impl fmt::Debug for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
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
        check_identifier("issuer", &self.issuer, ISSUER_RULE)?;
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

    /// The URLs discovery tries for `issuer`, in order (see the
    /// [module docs](self#the-rules-of-discovery)).
    ///
    /// ```
    /// use tower_mcp_auth::discovery::AuthorizationServerMetadata;
    ///
    /// assert_eq!(
    ///     AuthorizationServerMetadata::well_known_urls("https://as.example.com/t1/")?,
    ///     [
    ///         "https://as.example.com/.well-known/oauth-authorization-server/t1",
    ///         "https://as.example.com/.well-known/openid-configuration/t1",
    ///         "https://as.example.com/t1/.well-known/openid-configuration",
    ///     ]
    /// );
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] when `issuer` is not an absolute `https`
    /// URL (`http` on loopback only), or has a query or a fragment.
    pub fn well_known_urls(issuer: &str) -> Result<Vec<String>, ConfigError> {
        let uri = check_identifier("issuer", issuer, ISSUER_RULE)?;
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        let path = uri.path().trim_end_matches('/');
        Ok(if path.is_empty() {
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
        })
    }

    /// Fetches and checks the metadata of `issuer` by the
    /// [rules of discovery](self#the-rules-of-discovery): the well-known
    /// URLs in order, at most [`DISCOVERY_TIMEOUT`] and
    /// [`MAX_METADATA_BYTES`] each, no redirects; the document must name
    /// exactly this issuer.
    ///
    /// # Errors
    ///
    /// A [`DiscoveryError`]: an invalid issuer URL, an unreachable server,
    /// an unexpected status, no document at all, a document that is not
    /// metadata, or one naming another issuer.
    pub async fn discover(issuer: &str) -> Result<Self, DiscoveryError> {
        let http = HttpClient::with_limits(MAX_METADATA_BYTES, DISCOVERY_TIMEOUT)?;
        Self::discover_by(&http, issuer).await
    }

    /// As [`discover`](Self::discover), with your own `reqwest` client
    /// (proxies, custom roots). The rules and limits are the same; the
    /// client's redirect policy is yours (the default client follows none).
    ///
    /// # Errors
    ///
    /// As [`discover`](Self::discover).
    pub async fn discover_with(
        client: &reqwest::Client,
        issuer: &str,
    ) -> Result<Self, DiscoveryError> {
        let http = HttpClient::new(client.clone(), MAX_METADATA_BYTES, DISCOVERY_TIMEOUT);
        Self::discover_by(&http, issuer).await
    }

    /// Discovery through `http` (its limits): the one implementation, for
    /// [`discover`](Self::discover) and the JWKS alike.
    pub(crate) async fn discover_by(
        http: &HttpClient,
        issuer: &str,
    ) -> Result<Self, DiscoveryError> {
        let urls = Self::well_known_urls(issuer)?;
        for url in &urls {
            let response = http
                .get_json(url)
                .await
                .map_err(|e| DiscoveryError::Unreachable {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
            match response.status().as_u16() {
                200 => {}
                408 | 429 => {
                    return Err(DiscoveryError::Status {
                        url: url.clone(),
                        status: response.status().as_u16(),
                    })
                }
                400..=499 => continue, // not published in this form
                status => {
                    return Err(DiscoveryError::Status {
                        url: url.clone(),
                        status,
                    })
                }
            }
            let invalid = |reason: String| DiscoveryError::Invalid {
                url: url.clone(),
                reason: quoted(&reason),
            };
            let metadata: Self =
                serde_json::from_slice(response.body()).map_err(|e| invalid(e.to_string()))?;
            if metadata.issuer != issuer {
                return Err(DiscoveryError::IssuerMismatch {
                    url: url.clone(),
                    expected: issuer.to_owned(),
                    found: quoted(&metadata.issuer),
                });
            }
            return metadata.validate().map_err(|e| invalid(e.to_string()));
        }
        Err(DiscoveryError::NotFound {
            issuer: issuer.to_owned(),
            tried: urls.join(", "),
        })
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

/// At most [`MAX_QUOTED`] bytes of a text taken from a fetched document
/// (cut on a character boundary), so an error stays short.
fn quoted(text: &str) -> String {
    if text.len() <= MAX_QUOTED {
        return text.to_owned();
    }
    let mut end = MAX_QUOTED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl fmt::Display for AuthorizationServerMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authorization server {}", self.issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            #[cfg(feature = "introspection")]
            {
                let i = found
                    .introspector("rs", secrecy::SecretString::from("s"))
                    .unwrap()
                    .build()
                    .unwrap();
                assert_eq!(i.url(), format!("{origin}/introspect"));
            }
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
        #[cfg(feature = "introspection")]
        {
            let b = found
                .introspector("rs", secrecy::SecretString::from("s"))
                .unwrap();
            assert!(format!("{b:?}").contains("ClientSecretPost"));
        }
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
    fn well_known_urls_insert_then_append() {
        let urls = |i: &str| AuthorizationServerMetadata::well_known_urls(i).unwrap();
        for issuer in ["https://as.example.com", "https://as.example.com/"] {
            assert_eq!(
                urls(issuer),
                [
                    "https://as.example.com/.well-known/oauth-authorization-server",
                    "https://as.example.com/.well-known/openid-configuration",
                ]
            );
        }
        for issuer in ["http://[::1]:8080/a/b", "http://[::1]:8080/a/b/"] {
            assert_eq!(
                urls(issuer),
                [
                    "http://[::1]:8080/.well-known/oauth-authorization-server/a/b",
                    "http://[::1]:8080/.well-known/openid-configuration/a/b",
                    "http://[::1]:8080/a/b/.well-known/openid-configuration",
                ]
            );
        }
        for bad in [
            "https://as.example.com?x=1",
            "https://as.example.com#x",
            "http://as.example.com",
            "as.example.com",
        ] {
            let e = AuthorizationServerMetadata::well_known_urls(bad).unwrap_err();
            assert!(
                matches!(e, ConfigError::InvalidUrl { what: "issuer", .. }),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn a_long_foreign_issuer_is_quoted_briefly() {
        let long = format!("https://evil.example.com/{}", "é".repeat(10_000));
        let origin = serve(move |_| {
            let doc = serde_json::json!({ "issuer": long });
            Router::new().route(
                OAUTH_WELL_KNOWN,
                get(move || {
                    let doc = doc.clone();
                    async move { axum::Json(doc) }
                }),
            )
        })
        .await;
        let e = AuthorizationServerMetadata::discover(&origin)
            .await
            .unwrap_err();
        let DiscoveryError::IssuerMismatch { found, .. } = &e else {
            panic!("{e}");
        };
        assert!(found.len() <= MAX_QUOTED + "…".len(), "{}", found.len());
        assert!(e.to_string().len() < 1024);
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
        #[cfg(feature = "introspection")]
        {
            let m = AuthorizationServerMetadata::new("https://a.example.com");
            assert!(m
                .introspector("rs", secrecy::SecretString::from("s"))
                .is_err());
        }
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
