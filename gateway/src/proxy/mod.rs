//! The service at the bottom of the stack: each request forwarded to the
//! upstream MCP server over HTTP/1.1 (hyper-util's pooled client), each
//! response streamed back as it arrives.
//!
//! - The URL: the upstream's path (`UPSTREAM_URL`) whatever the gateway's
//!   public path, the caller's query appended to the upstream's own.
//! - Headers: see [`headers`](self) — an allow-list towards the upstream
//!   (no caller credential ever leaves), the upstream's own credential
//!   from configuration, `Host` set to the upstream's.
//! - Bodies: a request body is handed over as the layers above left it
//!   (the policy layer has read and bounded it); a response body is
//!   streamed frame by frame, so an SSE event reaches the list filter,
//!   and the caller, as soon as the upstream sends it.
//! - Failures: 502 (refused, reset, not HTTP, a redirect, or a 401 for
//!   the gateway's own credential), 504 (no response headers within the
//!   timeout), 503 (every connection slot busy for the timeout); a POST
//!   gets a JSON-RPC error per request id.

mod body;
mod failure;
mod headers;
mod tls;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::body::Body;
use http::{header::HeaderValue, uri::PathAndQuery, Request, Response, StatusCode, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::{sync::Semaphore, time::Instant};
use tower_mcp_auth::{mcp::McpRequest, ConfigError, Principal};

pub use failure::JSONRPC_UPSTREAM_ERROR;

use crate::{config::UpstreamConfig, identity::Signer};
use body::Held;
use failure::Failure;

/// How long an idle upstream connection stays in the pool.
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// A `tower::Service` that forwards every request to the upstream MCP
/// server. Cheap to clone (one `Arc`); never fails (`Infallible`): an
/// upstream failure is a response.
///
/// # Example
///
/// ```no_run
/// use tower_mcp_auth_gateway::{config::UpstreamConfig, proxy::Proxy};
///
/// # fn main() -> Result<(), tower_mcp_auth::ConfigError> {
/// let upstream = UpstreamConfig::new("http://127.0.0.1:8000/mcp")?;
/// let proxy = Proxy::new(&upstream, "http://127.0.0.1:3000/mcp")?;
/// // `stack::app` puts the layers in front of it.
/// # let _ = proxy; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// `http://host:port` or `https://host:port`.
    origin: String,
    /// The upstream's path and query.
    path: PathAndQuery,
    host: HeaderValue,
    headers: http::HeaderMap,
    timeout: std::time::Duration,
    slots: Arc<Semaphore>,
    identity: Option<Signer>,
}

impl Proxy {
    /// A proxy to `upstream` for a gateway whose public URL is
    /// `public_url` (the issuer of the identity tokens, when
    /// `upstream.identity` is set). Must be called within a Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an https upstream without root certificates
    /// (none on the system, or an unreadable `UPSTREAM_CA_FILE`).
    pub fn new(upstream: &UpstreamConfig, public_url: &str) -> Result<Self, ConfigError> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(upstream.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let https = upstream.url.scheme_str() == Some("https");
        let connector = tls::connector(connector, https, upstream.ca_file.as_deref())?;
        // An idle pooled connection is dropped before the upstream would
        // close it (uvicorn's and Node's keep-alive timeout: 5 s), so a
        // request is not sent on a connection closing under it.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        let authority = upstream
            .url
            .authority()
            .map_or_else(String::new, ToString::to_string);
        let path = upstream
            .url
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let scheme = if https { "https" } else { "http" };
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                origin: format!("{scheme}://{authority}"),
                path,
                host: HeaderValue::from_str(&authority)
                    .expect("an authority is a valid header value"),
                headers: upstream.headers.clone(),
                timeout: upstream.response_timeout,
                slots: Arc::new(Semaphore::new(upstream.max_connections)),
                identity: (upstream.identity.as_ref())
                    .map(|i| Signer::new(i, public_url, &upstream.url.to_string())),
            }),
        })
    }
}

impl Inner {
    /// The upstream URL of a request whose query is `query`.
    fn target(&self, query: Option<&str>) -> Uri {
        let path = self.path.path();
        let url = match (self.path.query(), query) {
            (Some(own), Some(q)) => format!("{}{path}?{own}&{q}", self.origin),
            (Some(q), None) | (None, Some(q)) => format!("{}{path}?{q}", self.origin),
            (None, None) => format!("{}{path}", self.origin),
        };
        // Both parts were valid URI parts on their own.
        url.parse().unwrap_or_else(|_| Uri::from_static("/"))
    }

    async fn forward(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let fail = |f: Failure| f.response(&parts.method, parts.extensions.get::<McpRequest>());
        let mut upstream = Request::new(body);
        *upstream.method_mut() = parts.method.clone();
        *upstream.uri_mut() = self.target(parts.uri.query());
        *upstream.version_mut() = Version::HTTP_11;
        *upstream.headers_mut() =
            headers::outbound(&parts.headers, &self.headers, self.host.clone());

        if let Some(signer) = &self.identity {
            if let Some(token) = Principal::from_extensions(&parts.extensions)
                .and_then(|caller| signer.authorization(caller))
            {
                upstream
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, token);
            }
        }
        let start = Instant::now();
        let deadline = start + self.timeout;
        let fail = |f: Failure, status: Option<StatusCode>| {
            observe(f.outcome(), status, start);
            fail(f)
        };
        let Ok(Ok(slot)) =
            tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await
        else {
            tracing::warn!(target: "mcp_auth_gateway", "every upstream connection slot busy");
            return fail(Failure::Busy, None);
        };
        let response = match tokio::time::timeout_at(deadline, self.client.request(upstream)).await
        {
            Err(_) => {
                tracing::warn!(target: "mcp_auth_gateway", "upstream timed out");
                return fail(Failure::Timeout, None);
            }
            Ok(Err(e)) => {
                let failure = if timed_out(&e) {
                    Failure::Timeout
                } else {
                    Failure::Unreachable
                };
                tracing::warn!(target: "mcp_auth_gateway", error = %error_chain(&e), "upstream failed");
                return fail(failure, None);
            }
            Ok(Ok(response)) => response,
        };
        if response.status() == StatusCode::UNAUTHORIZED {
            tracing::error!(
                target: "mcp_auth_gateway",
                "the upstream refused the gateway's credential (UPSTREAM_AUTHORIZATION / UPSTREAM_HEADER_*)"
            );
            return fail(Failure::Refused, Some(response.status()));
        }
        let location = response.headers().get(http::header::LOCATION);
        if response.status().is_redirection() && location.is_some() {
            tracing::error!(
                target: "mcp_auth_gateway",
                location = ?location,
                "the upstream redirects: set UPSTREAM_URL to its endpoint (a trailing slash?)"
            );
            return fail(Failure::Redirected, Some(response.status()));
        }
        observe("response", Some(response.status()), start);
        let (mut head, body) = response.into_parts();
        headers::inbound(&mut head.headers);
        Response::from_parts(head, Body::new(Held::new(body, slot)))
    }
}

/// Counts an upstream exchange (feature `metrics`).
#[cfg(feature = "metrics")]
fn observe(outcome: &'static str, status: Option<StatusCode>, start: Instant) {
    crate::metrics::upstream(outcome, status, start.elapsed());
}

#[cfg(not(feature = "metrics"))]
fn observe(_: &'static str, _: Option<StatusCode>, _: Instant) {}

/// Whether the client's error is a connect timeout.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// The error and its causes, for the log.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

impl tower::Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.forward(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paths_and_queries() {
        let proxy =
            |url: &str| Proxy::new(&UpstreamConfig::new(url).unwrap(), "http://gw/mcp").unwrap();
        let p = proxy("http://127.0.0.1:8000/mcp");
        assert_eq!(p.inner.target(None), "http://127.0.0.1:8000/mcp");
        assert_eq!(p.inner.target(Some("a=1")), "http://127.0.0.1:8000/mcp?a=1");
        let p = proxy("http://up.internal/v1/mcp/?tenant=x");
        assert_eq!(p.inner.host, "up.internal");
        assert_eq!(
            p.inner.target(Some("a=1")),
            "http://up.internal/v1/mcp/?tenant=x&a=1"
        );
        let p = proxy("http://up.internal");
        assert_eq!(p.inner.target(None), "http://up.internal/");
    }
}
