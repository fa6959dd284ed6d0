//! DNS-rebinding protection for the gateway's own endpoint: `Host` must
//! name the public URL's host, and a browser's `Origin`, when present, its
//! origin (the MCP transport's "servers MUST validate the Origin header").
//!
//! The upstream cannot do this check for the gateway: it sees the gateway's
//! `Host` and no `Origin` (neither is forwarded), so the gateway does it
//! before anything else, from
//! [`ProtectedResource::allowed_hosts`] and
//! [`ProtectedResource::allowed_origins`].

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use http::{header, HeaderMap, StatusCode, Uri};
use tower_mcp_auth::ProtectedResource;

/// The hosts and origins the gateway answers to.
#[derive(Clone, Debug)]
pub struct Site {
    hosts: Arc<[String]>,
    origins: Arc<[String]>,
}

impl Site {
    /// The allow-lists of `resource` (its public URL).
    ///
    /// # Example
    ///
    /// ```
    /// use http::HeaderMap;
    /// use tower_mcp_auth::ProtectedResource;
    /// use tower_mcp_auth_gateway::site::Site;
    ///
    /// let resource = ProtectedResource::builder("https://mcp.example.com/mcp").build().unwrap();
    /// let site = Site::of(&resource);
    /// let mut headers = HeaderMap::new();
    /// headers.insert("host", "mcp.example.com".parse().unwrap());
    /// assert!(site.check(&headers).is_ok());
    /// headers.insert("origin", "https://evil.example".parse().unwrap());
    /// assert!(site.check(&headers).is_err());
    /// ```
    #[must_use]
    pub fn of(resource: &ProtectedResource) -> Self {
        let lower = |v: Vec<String>| -> Arc<[String]> {
            v.into_iter().map(|s| s.to_ascii_lowercase()).collect()
        };
        Self {
            hosts: lower(resource.allowed_hosts()),
            origins: lower(resource.allowed_origins()),
        }
    }

    /// Whether a request with `headers` may reach the endpoint.
    ///
    /// # Errors
    ///
    /// What is wrong, for the 403's description.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or("the request has no Host header")?
            .to_ascii_lowercase();
        if !self
            .hosts
            .iter()
            .any(|allowed| host_matches(allowed, &host))
        {
            return Err("the Host header does not name this server");
        }
        match headers.get(header::ORIGIN) {
            None => Ok(()),
            Some(origin) => origin
                .to_str()
                .ok()
                .and_then(normalized_origin)
                .filter(|o| self.origins.contains(o))
                .map(|_| ())
                .ok_or("the Origin header is not this server's"),
        }
    }
}

/// `allowed` with a port matches exactly; without one, any port.
fn host_matches(allowed: &str, host: &str) -> bool {
    if allowed == host {
        return true;
    }
    let without_port = match host.rfind(':') {
        // `[::1]` has colons but its port follows the bracket.
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    !has_port(allowed) && allowed == without_port
}

fn has_port(host: &str) -> bool {
    host.rfind(':').is_some_and(|i| !host[i..].contains(']'))
}

/// `scheme://host:port`, the port made explicit.
fn normalized_origin(origin: &str) -> Option<String> {
    let uri: Uri = origin.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some(format!("{scheme}://{host}:{port}"))
}

/// The middleware: 403 with a JSON error for a request [`Site::check`]
/// refuses.
pub async fn guard(State(site): State<Site>, req: Request<Body>, next: Next) -> Response {
    match site.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(why) => {
            tracing::warn!(target: "mcp_auth_gateway", reason = why, "request refused: DNS-rebinding check");
            (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({"error": "forbidden", "error_description": why})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(url: &str) -> Site {
        Site::of(&ProtectedResource::builder(url).build().unwrap())
    }

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", host.parse().unwrap());
        if let Some(o) = origin {
            h.insert("origin", o.parse().unwrap());
        }
        h
    }

    #[test]
    fn hosts_and_origins() {
        let local = site("http://127.0.0.1:3000/mcp");
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "[::1]:3000",
            "LOCALHOST:3000",
        ] {
            assert!(local.check(&headers(ok, None)).is_ok(), "{ok}");
        }
        for bad in ["127.0.0.1:3001", "evil.example:3000", "evil.example"] {
            assert!(local.check(&headers(bad, None)).is_err(), "{bad}");
        }
        assert!(local
            .check(&headers("localhost:3000", Some("http://localhost:3000")))
            .is_ok());
        for bad in ["http://evil.example:3000", "null", "https://localhost:3000"] {
            assert!(
                local.check(&headers("localhost:3000", Some(bad))).is_err(),
                "{bad}"
            );
        }
        let public = site("https://mcp.example.com/mcp");
        assert!(public
            .check(&headers("mcp.example.com", Some("https://mcp.example.com")))
            .is_ok());
        assert!(public.check(&headers("mcp.example.com:8443", None)).is_ok());
        assert!(public.check(&HeaderMap::new()).is_err());
    }
}
