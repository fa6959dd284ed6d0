//! RFC 9728 protected-resource metadata: [`ProtectedResource`].

use std::{fmt, sync::Arc};

use arc_swap::ArcSwap;
use axum::{body::Body, response::Response, routing::get, Router};
use bytes::Bytes;
use http::{header, HeaderValue};
use serde::Serialize;

use crate::{
    challenge::{Challenge, ExtraChallenge},
    config::ConfigError,
    principal::{Scopes, OFFLINE_ACCESS},
    url::{check_identifier, check_url},
};

/// The well-known path prefix of RFC 9728 metadata.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// `Cache-Control` of a document whose scopes come from a [`ScopeSource`]:
/// a change (a policy reload) reaches caches within a minute.
const DYNAMIC_CACHE_CONTROL: HeaderValue = HeaderValue::from_static("public, max-age=60");

/// Where a resource's `scopes_supported` comes from when it can change at
/// run time (a policy that is reloaded): asked each time the metadata is
/// served, never on the request path of a protected call. Given to
/// [`ProtectedResourceBuilder::scopes_from`].
///
/// A closure `Fn() -> Scopes` is one; so is `mcp::SharedPolicy` (feature
/// `mcp`: every scope the policy in force names).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tower_mcp_auth::{ProtectedResource, Scopes};
///
/// let current = Arc::new(Mutex::new(Scopes::parse("read:data")));
/// let source = current.clone();
/// let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
///     .scopes_from(move || source.lock().unwrap().clone())
///     .build()?;
/// assert_eq!(resource.scopes_supported().to_string(), "read:data");
/// *current.lock().unwrap() = Scopes::parse("read:data write:data");
/// assert_eq!(resource.scopes_supported().to_string(), "read:data write:data");
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
pub trait ScopeSource: Send + Sync + 'static {
    /// The scopes to list now.
    fn scopes(&self) -> Scopes;
}

impl<F> ScopeSource for F
where
    F: Fn() -> Scopes + Send + Sync + 'static,
{
    fn scopes(&self) -> Scopes {
        self()
    }
}

/// A [`ScopeSource`] in the builder (which is `Clone` and `Debug`).
#[derive(Clone)]
struct Source(Arc<dyn ScopeSource>);

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScopeSource")
    }
}

/// An OAuth protected resource (an MCP endpoint): its identifier, the
/// authorization servers that issue tokens for it, and the scopes it knows.
///
/// Built with [`ProtectedResource::builder`]; cheap to clone.
///
/// The resource identifier (the MCP endpoint's canonical URL) is what tokens
/// must be issued for (their audience, RFC 8707) and the anchor of the
/// metadata URL that every `401` challenge carries in `resource_metadata`.
///
/// # Example
///
/// ```
/// use axum::Router;
/// use tower_mcp_auth::ProtectedResource;
///
/// let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
///     .authorization_server("https://auth.example.com")
///     .scopes_supported(["read:data", "write:data"])
///     .resource_name("Example MCP server")
///     .build()?;
///
/// assert_eq!(
///     resource.metadata_url(),
///     "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
/// );
///
/// // Serves the document at both well-known paths.
/// let app: Router = Router::new().merge(resource.router());
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ProtectedResource(Arc<Inner>);

struct Inner {
    metadata: Metadata,
    metadata_url: String,
    metadata_paths: Vec<String>,
    document: Bytes,
    challenge: Challenge,
    dynamic: Option<Dynamic>,
}

/// The scopes a [`ScopeSource`] adds, and the document last served with
/// them (made again only when they change).
struct Dynamic {
    source: Source,
    published: ArcSwap<Published>,
}

struct Published {
    scopes: Scopes,
    document: Bytes,
}

/// The RFC 9728 §2 document.
#[derive(Clone, Debug, Serialize)]
struct Metadata {
    resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    bearer_methods_supported: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dpop_signing_alg_values_supported: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dpop_bound_access_tokens_required: bool,
}

/// Builds a [`ProtectedResource`]; see [`ProtectedResource::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ProtectedResourceBuilder {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    jwks_uri: Option<String>,
    realm: Option<String>,
    dpop_signing_alg_values_supported: Vec<String>,
    dpop_bound_access_tokens_required: bool,
    scope_source: Option<Source>,
}

impl ProtectedResource {
    /// Starts a resource whose identifier is `resource`: the absolute URL of
    /// the MCP endpoint as clients reach it (`https://mcp.example.com/mcp`).
    pub fn builder(resource: impl Into<String>) -> ProtectedResourceBuilder {
        ProtectedResourceBuilder {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            jwks_uri: None,
            realm: None,
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
            scope_source: None,
        }
    }

    /// The resource identifier, as given.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.0.metadata.resource
    }

    /// The authorization servers (issuers) listed in the metadata.
    #[must_use]
    pub fn authorization_servers(&self) -> &[String] {
        &self.0.metadata.authorization_servers
    }

    /// The scopes listed in the metadata now: those given to
    /// [`scopes_supported`](ProtectedResourceBuilder::scopes_supported)
    /// and those of the [`ScopeSource`], if any.
    #[must_use]
    pub fn scopes_supported(&self) -> Scopes {
        let fixed: Scopes = self.0.metadata.scopes_supported.iter().collect();
        match &self.0.dynamic {
            None => fixed,
            Some(d) => fixed.union(&d.source.0.scopes().without(OFFLINE_ACCESS)),
        }
    }

    /// The URL of the metadata document, with the well-known segment inserted
    /// before the resource's path (RFC 9728 §3.1). This is the
    /// `resource_metadata` of every challenge.
    #[must_use]
    pub fn metadata_url(&self) -> &str {
        &self.0.metadata_url
    }

    /// The challenge parameters (`realm`, `resource_metadata`) for refusals.
    #[must_use]
    pub fn challenge(&self) -> Challenge {
        self.0.challenge.clone()
    }

    /// The metadata document as JSON bytes. With a [`ScopeSource`], its
    /// `scopes_supported` is the source's now (the document is made again
    /// only when they change).
    #[must_use]
    pub fn document(&self) -> Bytes {
        let Some(dynamic) = &self.0.dynamic else {
            return self.0.document.clone();
        };
        let scopes = self.scopes_supported();
        let published = dynamic.published.load();
        if published.scopes == scopes {
            return published.document.clone();
        }
        // The fixed scopes first, in their order, then the source's.
        let mut metadata = self.0.metadata.clone();
        let added = scopes
            .iter()
            .filter(|s| !metadata.scopes_supported.iter().any(|f| f == s))
            .map(str::to_owned)
            .collect::<Vec<_>>();
        metadata.scopes_supported.extend(added);
        // Strings only: serializing cannot fail; were it to, the document
        // of the fixed scopes is served.
        let Ok(document) = serialize(&metadata) else {
            return self.0.document.clone();
        };
        dynamic.published.store(Arc::new(Published {
            scopes,
            document: document.clone(),
        }));
        document
    }

    /// An axum router serving the metadata at
    /// `/.well-known/oauth-protected-resource` and, for a resource with a
    /// path, at the path-inserted form (`…/oauth-protected-resource/mcp`).
    ///
    /// Served with `Access-Control-Allow-Origin: *` (the document is public,
    /// and browser-based MCP clients fetch it cross-origin).
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let mut router = Router::new();
        for path in &self.0.metadata_paths {
            let resource = self.clone();
            router = router.route(
                path,
                get(move || {
                    let mut response = json_response(resource.document());
                    if resource.0.dynamic.is_some() {
                        response
                            .headers_mut()
                            .insert(header::CACHE_CONTROL, DYNAMIC_CACHE_CONTROL);
                    }
                    std::future::ready(response)
                }),
            );
        }
        router
    }
}

/// A public JSON document response (metadata): cacheable, CORS open.
pub(crate) fn json_response(doc: Bytes) -> Response {
    let mut response = Response::new(Body::from(doc));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

impl fmt::Debug for ProtectedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedResource")
            .field("resource", &self.0.metadata.resource)
            .field(
                "authorization_servers",
                &self.0.metadata.authorization_servers,
            )
            .field("metadata_url", &self.0.metadata_url)
            .finish_non_exhaustive()
    }
}

impl ProtectedResourceBuilder {
    /// Adds an authorization server (its issuer identifier) that issues
    /// tokens for this resource.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Sets the scopes the resource understands (`scopes_supported`).
    /// `offline_access` is left out: it asks an authorization server for
    /// a refresh token and is no requirement of the resource, so the MCP
    /// authorization specification (2026-07-28) says a server SHOULD NOT
    /// list it (an authorization server's own `scopes_supported`, which
    /// discovery copies here, often has it).
    ///
    /// ```
    /// use tower_mcp_auth::ProtectedResource;
    ///
    /// let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
    ///     .scopes_supported(["openid", "offline_access", "read:data"])
    ///     .build()?;
    /// assert_eq!(resource.scopes_supported().to_string(), "openid read:data");
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    pub fn scopes_supported<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.scopes_supported = scopes
            .into_iter()
            .map(Into::into)
            .filter(|s: &String| s != OFFLINE_ACCESS)
            .collect();
        self
    }

    /// Adds to `scopes_supported`, each time the metadata is served, the
    /// scopes `source` gives then: a policy that is reloaded
    /// (`mcp::SharedPolicy`, feature `mcp`) publishes the scopes it names
    /// as soon as it is in force, without a restart. The scopes given to
    /// [`scopes_supported`](Self::scopes_supported) stay listed, first;
    /// `offline_access` is left out. The document is then served with
    /// `Cache-Control: public, max-age=60` (else an hour), so that caches
    /// see a reload within a minute.
    ///
    /// ```
    /// # #[cfg(feature = "mcp")] {
    /// use tower_mcp_auth::{mcp::{McpPolicy, SharedPolicy}, ProtectedResource};
    ///
    /// let policy = SharedPolicy::new(McpPolicy::from_json(
    ///     r#"{ "tools": { "read": { "scheme": "bearer", "scopes": ["read:data"] } } }"#,
    /// )?);
    /// let resource = ProtectedResource::builder("https://mcp.example.com/mcp")
    ///     .scopes_supported(["openid"])
    ///     .scopes_from(policy.clone())
    ///     .build()?;
    /// assert_eq!(resource.scopes_supported().to_string(), "openid read:data");
    ///
    /// // A reload that names a new scope: the metadata lists it at once.
    /// policy.replace(McpPolicy::from_json(
    ///     r#"{ "tools": { "read": { "scheme": "bearer", "scopes": ["read:data", "audit"] } } }"#,
    /// )?);
    /// let doc: serde_json::Value = serde_json::from_slice(&resource.document()).unwrap();
    /// assert_eq!(doc["scopes_supported"], serde_json::json!(["openid", "audit", "read:data"]));
    /// # }
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    pub fn scopes_from(mut self, source: impl ScopeSource) -> Self {
        self.scope_source = Some(Source(Arc::new(source)));
        self
    }

    /// Sets the human-readable `resource_name`.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Sets `resource_documentation`, a URL for developers.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// Sets `jwks_uri`, the resource's own signing keys (rarely needed).
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.jwks_uri = Some(url.into());
        self
    }

    /// Sets `dpop_signing_alg_values_supported` (RFC 9728 §2): the DPoP
    /// proof algorithms accepted (none listed by default).
    pub fn dpop_signing_alg_values_supported<I>(mut self, algs: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.dpop_signing_alg_values_supported = algs.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `dpop_bound_access_tokens_required` (RFC 9728 §2): unbound
    /// tokens are refused (listed only when true).
    pub fn dpop_bound_access_tokens_required(mut self, required: bool) -> Self {
        self.dpop_bound_access_tokens_required = required;
        self
    }

    /// Sets the `realm` of challenges (none by default).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] when the resource identifier, an
    /// authorization server, the documentation or JWKS URL is not an
    /// absolute `https` URL (`http` is allowed on loopback hosts only), or
    /// carries a fragment; the resource identifier must also have no query.
    pub fn build(self) -> Result<ProtectedResource, ConfigError> {
        let uri = check_identifier(
            "resource identifier",
            &self.resource,
            "it must not have a query component (RFC 8707 §2)",
        )?;
        for url in &self.authorization_servers {
            check_url("authorization server", url)?;
        }
        if let Some(url) = &self.resource_documentation {
            check_url("resource documentation URL", url)?;
        }
        if let Some(url) = &self.jwks_uri {
            check_url("JWKS URI", url)?;
        }

        let scheme = uri.scheme_str().unwrap_or("https");
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let path = uri.path().trim_end_matches('/');
        let metadata_url = format!("{scheme}://{authority}{WELL_KNOWN_PATH}{path}");
        let mut metadata_paths = vec![format!("{WELL_KNOWN_PATH}{path}")];
        if !path.is_empty() {
            metadata_paths.push(WELL_KNOWN_PATH.to_owned());
        }

        let metadata = Metadata {
            resource: self.resource,
            authorization_servers: self.authorization_servers,
            scopes_supported: self.scopes_supported,
            bearer_methods_supported: ["header"],
            resource_name: self.resource_name,
            resource_documentation: self.resource_documentation,
            jwks_uri: self.jwks_uri,
            dpop_signing_alg_values_supported: self.dpop_signing_alg_values_supported,
            dpop_bound_access_tokens_required: self.dpop_bound_access_tokens_required,
        };
        let document = serialize(&metadata)
            .map_err(|e| ConfigError::Invalid(format!("cannot serialize metadata: {e}")))?;
        let mut challenge = Challenge::new(self.realm, Some(metadata_url.clone()))
            .with_public_origin(format!("{scheme}://{authority}"));
        if !metadata.dpop_signing_alg_values_supported.is_empty() {
            // RFC 9449 §7.1: a `DPoP` challenge beside `Bearer`, listing
            // the proof algorithms.
            challenge = challenge.with_extra(
                ExtraChallenge::new("DPoP")
                    .param("algs", metadata.dpop_signing_alg_values_supported.join(" ")),
            );
        }
        let dynamic = self.scope_source.map(|source| Dynamic {
            source,
            published: ArcSwap::from_pointee(Published {
                scopes: metadata.scopes_supported.iter().collect(),
                document: document.clone(),
            }),
        });
        Ok(ProtectedResource(Arc::new(Inner {
            metadata,
            metadata_url,
            metadata_paths,
            document,
            challenge,
            dynamic,
        })))
    }
}

/// The document's JSON.
fn serialize(metadata: &Metadata) -> Result<Bytes, serde_json::Error> {
    serde_json::to_vec(metadata).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// MCP 2026-07-28: servers SHOULD NOT list `offline_access` in
    /// `scopes_supported` (an authorization server's list, copied by
    /// discovery, often has it); listed before.
    #[test]
    fn offline_access_is_left_out_of_scopes_supported() {
        let r = ProtectedResource::builder("https://mcp.example.com/mcp")
            .scopes_supported(["openid", "offline_access", "read:data"])
            .build()
            .unwrap();
        assert_eq!(r.scopes_supported().to_string(), "openid read:data");
        let doc: serde_json::Value = serde_json::from_slice(&r.document()).unwrap();
        assert_eq!(
            doc["scopes_supported"],
            serde_json::json!(["openid", "read:data"])
        );
    }

    /// A [`ScopeSource`]: the document and `scopes_supported()` follow it
    /// (fixed scopes first, `offline_access` left out), the document is
    /// made again only when the scopes change, and the router serves it
    /// with a one-minute cache lifetime.
    #[tokio::test]
    async fn a_scope_source_is_published_as_it_changes() {
        let current = Arc::new(std::sync::Mutex::new(Scopes::parse("read:data")));
        let source = current.clone();
        let r = ProtectedResource::builder("https://mcp.example.com/mcp")
            .scopes_supported(["openid"])
            .scopes_from(move || source.lock().unwrap().clone())
            .build()
            .unwrap();
        let listed = |doc: &Bytes| -> serde_json::Value {
            serde_json::from_slice::<serde_json::Value>(doc).unwrap()["scopes_supported"].clone()
        };
        let first = r.document();
        assert_eq!(listed(&first), serde_json::json!(["openid", "read:data"]));
        assert_eq!(
            r.document().as_ptr(),
            first.as_ptr(),
            "unchanged: the same bytes"
        );
        *current.lock().unwrap() = Scopes::parse("offline_access admin:write read:data openid");
        assert_eq!(
            listed(&r.document()),
            serde_json::json!(["openid", "admin:write", "read:data"])
        );
        assert_eq!(
            r.scopes_supported().to_string(),
            "admin:write openid read:data"
        );

        let app: Router = r.router();
        let response = app
            .oneshot(
                http::Request::get("/.well-known/oauth-protected-resource/mcp")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "public, max-age=60"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            listed(&body),
            serde_json::json!(["openid", "admin:write", "read:data"])
        );
    }

    #[test]
    fn metadata_url_inserts_well_known_before_path() {
        let cases = [
            (
                "https://mcp.example.com/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://mcp.example.com/",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://mcp.example.com",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "http://127.0.0.1:3000/a/b/",
                "http://127.0.0.1:3000/.well-known/oauth-protected-resource/a/b",
            ),
            (
                "http://[::1]:8080/mcp",
                "http://[::1]:8080/.well-known/oauth-protected-resource/mcp",
            ),
        ];
        for (resource, want) in cases {
            let r = ProtectedResource::builder(resource).build().unwrap();
            assert_eq!(r.metadata_url(), want, "{resource}");
            assert_eq!(r.challenge().resource_metadata(), Some(want));
        }
    }

    #[test]
    fn dpop_members_are_listed_only_when_set() {
        let doc = |b: ProtectedResourceBuilder| -> serde_json::Value {
            serde_json::from_slice(&b.build().unwrap().document()).unwrap()
        };
        let plain = doc(ProtectedResource::builder("https://mcp.example.com/mcp"));
        assert!(plain.get("dpop_signing_alg_values_supported").is_none());
        assert!(plain.get("dpop_bound_access_tokens_required").is_none());
        let dpop = doc(ProtectedResource::builder("https://mcp.example.com/mcp")
            .dpop_signing_alg_values_supported(["ES256", "EdDSA"])
            .dpop_bound_access_tokens_required(true));
        assert_eq!(
            dpop["dpop_signing_alg_values_supported"],
            serde_json::json!(["ES256", "EdDSA"])
        );
        assert_eq!(dpop["dpop_bound_access_tokens_required"], true);
    }

    #[test]
    fn invalid_identifiers_are_refused_at_build_time() {
        for bad in [
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/mcp#frag",
            "https://mcp.example.com/mcp?x=1",
            "/mcp",
            "mcp.example.com/mcp",
            "ftp://mcp.example.com/mcp",
            "not a url",
        ] {
            let err = ProtectedResource::builder(bad).build().unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidUrl { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains(bad), "{err}");
        }
        let err = ProtectedResource::builder("https://ok.example.com/mcp")
            .authorization_server("http://auth.example.com")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("authorization server"), "{err}");
        assert!(ProtectedResource::builder("http://localhost:3000/mcp")
            .build()
            .is_ok());
    }

    #[tokio::test]
    async fn router_serves_both_well_known_paths() {
        let r = ProtectedResource::builder("https://mcp.example.com/mcp")
            .authorization_server("https://auth.example.com")
            .scopes_supported(["read:data", "write:data"])
            .resource_name("Example")
            .resource_documentation("https://docs.example.com")
            .build()
            .unwrap();
        let want = serde_json::json!({
            "resource": "https://mcp.example.com/mcp",
            "authorization_servers": ["https://auth.example.com"],
            "scopes_supported": ["read:data", "write:data"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Example",
            "resource_documentation": "https://docs.example.com",
        });
        for path in [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
        ] {
            let app: Router = r.router();
            let response = app
                .oneshot(http::Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(got, want);
        }
    }
}
