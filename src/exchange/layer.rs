//! [`ExchangeLayer`]: an outbound HTTP client whose requests to a
//! downstream API carry a token exchanged for the current caller.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{header::AUTHORIZATION, request::Parts, Request, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{exchanger::require_subject, SubjectToken, Target, TokenExchanger};
use crate::config::ConfigError;

/// The error of an [`Exchange`] service: an
/// [`ExchangeError`](super::ExchangeError) (downcast it) or the inner
/// client's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A downstream API: every request to its origin gets a token exchanged
/// for its [`Target`].
///
/// # Example
///
/// ```
/// use tower_mcp_auth::exchange::{Downstream, Target};
///
/// let users = Downstream::new(
///     "https://users.example.com",
///     Target::resource("https://users.example.com").scopes(["users:read"]),
/// )?;
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Downstream {
    origin: Origin,
    target: Target,
}

/// Scheme, host (lower case) and port (the scheme's default when none is
/// written).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: Box<str>,
    host: Box<str>,
    port: u16,
}

impl Origin {
    fn of(uri: &Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = match (uri.port_u16(), scheme.as_str()) {
            (Some(p), _) => p,
            (None, "https") => 443,
            (None, "http") => 80,
            _ => return None,
        };
        Some(Self {
            scheme: scheme.into(),
            host: uri.host()?.to_ascii_lowercase().into(),
            port,
        })
    }
}

impl Downstream {
    /// Requests to `origin` (`https://host[:port]`; `http` on loopback
    /// only) get a token for `target`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] when `origin` is not an absolute
    /// `https` URL, or names a path, query or fragment.
    pub fn new(origin: &str, target: impl Into<Target>) -> Result<Self, ConfigError> {
        let uri = crate::url::check_url("downstream origin", origin)?;
        let invalid = |reason| ConfigError::InvalidUrl {
            what: "downstream origin",
            url: origin.to_owned(),
            reason,
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("an origin has no path or query"));
        }
        let origin = Origin::of(&uri).ok_or_else(|| invalid("it is not an http(s) origin"))?;
        Ok(Self {
            origin,
            target: target.into(),
        })
    }
}

/// Wraps an outbound HTTP client (any `Service<http::Request<B>>`, such as
/// `hyper-util`'s legacy `Client`): each request to a configured
/// [`Downstream`] origin leaves with `Authorization: Bearer <token>`, a
/// token exchanged for the caller the layer is bound to
/// ([`for_caller`](Self::for_caller)); an `Authorization` the request
/// carried is replaced. Requests to other origins pass unchanged, and get
/// no token.
///
/// Build it once, bind it per incoming request: the caller is explicit,
/// never taken from a global or a task-local, so a client shared between
/// callers cannot send one caller's token for another.
///
/// # Example
///
/// ```
/// use http::request::Parts;
/// use http_body_util::Empty;
/// use bytes::Bytes;
/// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
/// use secrecy::SecretString;
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_mcp_auth::exchange::{Downstream, ExchangeLayer, TokenExchanger};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let exchanger = TokenExchanger::builder(
///     "https://auth.example.com/oauth/token",
///     "mcp-server",
///     SecretString::from("…"),
/// )
/// .build()?;
/// let users = Downstream::new("https://users.example.com", "https://users.example.com")?;
/// let layer = ExchangeLayer::new(exchanger, [users]);
///
/// // In a tool, for the request `parts` belong to:
/// async fn my_profile(
///     layer: &ExchangeLayer,
///     parts: &Parts,
/// ) -> Result<http::StatusCode, Box<dyn std::error::Error + Send + Sync>> {
///     let client = ServiceBuilder::new()
///         .layer(layer.for_caller(parts))
///         .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
///     let request = http::Request::get("https://users.example.com/me").body(Empty::new())?;
///     Ok(client.oneshot(request).await?.status())
/// }
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ExchangeLayer {
    config: Arc<Config>,
    caller: Option<SubjectToken>,
}

struct Config {
    exchanger: TokenExchanger,
    downstreams: Vec<Downstream>,
}

impl fmt::Debug for ExchangeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeLayer")
            .field("exchanger", &self.config.exchanger)
            .field("downstreams", &self.config.downstreams)
            .field("caller", &self.caller)
            .finish()
    }
}

impl ExchangeLayer {
    /// Exchanges with `exchanger` for each of `downstreams`. Not bound to
    /// a caller: requests to a downstream fail with
    /// [`ExchangeError::NoSubjectToken`](super::ExchangeError::NoSubjectToken)
    /// until [`for_caller`](Self::for_caller) binds one.
    pub fn new(
        exchanger: TokenExchanger,
        downstreams: impl IntoIterator<Item = Downstream>,
    ) -> Self {
        Self {
            config: Arc::new(Config {
                exchanger,
                downstreams: downstreams.into_iter().collect(),
            }),
            caller: None,
        }
    }

    /// This layer bound to the caller of the request `parts` belong to
    /// (its [`SubjectToken`]; none for a caller without an access token,
    /// and requests to a downstream then fail).
    pub fn for_caller(&self, parts: &Parts) -> Self {
        Self {
            config: self.config.clone(),
            caller: parts.extensions.get::<SubjectToken>().cloned(),
        }
    }
}

impl<S> Layer<S> for ExchangeLayer {
    type Service = Exchange<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Exchange {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`ExchangeLayer`].
#[derive(Clone, Debug)]
pub struct Exchange<S> {
    inner: S,
    layer: ExchangeLayer,
}

impl<S> Exchange<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for Exchange<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let config = &self.layer.config;
        let downstream = Origin::of(req.uri())
            .and_then(|o| config.downstreams.iter().position(|d| d.origin == o));
        let Some(downstream) = downstream else {
            return ResponseFuture::direct(self.inner.call(req));
        };
        // The call waits for the exchange: it takes the readied service
        // and leaves a clone in its place.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        // The shared configuration, not a copy of the target.
        let config = config.clone();
        let caller = self.layer.caller.clone();
        ResponseFuture::exchanging(async move {
            let target = &config.downstreams[downstream].target;
            let subject = require_subject(caller.as_ref(), None, target)?;
            let token = config.exchanger.exchange(subject, target).await?;
            req.headers_mut()
                .insert(AUTHORIZATION, token.authorization());
            inner.call(req).await.map_err(Into::into)
        })
    }
}

type Exchanging<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

pin_project! {
    /// The response future of [`Exchange`]: the inner client's, at once
    /// for a request to another origin, after the exchange for a
    /// downstream's (boxed: it waits on I/O).
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: State<F, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Direct { #[pin] future: F },
        Exchanging { future: Exchanging<R> },
    }
}

impl<F, R> ResponseFuture<F, R> {
    fn direct(future: F) -> Self {
        Self {
            state: State::Direct { future },
        }
    }

    fn exchanging(future: impl Future<Output = Result<R, BoxError>> + Send + 'static) -> Self {
        Self {
            state: State::Exchanging {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, R> fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, R, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Direct { future } => future.poll(cx).map_err(Into::into),
            StateProj::Exchanging { future } => future.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_by_scheme_host_and_effective_port() {
        let o = |s: &str| Origin::of(&s.parse::<Uri>().unwrap());
        assert_eq!(
            o("https://A.example.com/x"),
            o("https://a.example.com:443/")
        );
        assert_ne!(o("https://a.example.com"), o("http://a.example.com"));
        assert_ne!(o("https://a.example.com"), o("https://a.example.com:8443"));
        assert_eq!(o("/relative"), None);
        assert!(Downstream::new("https://a.example.com/path", "r").is_err());
        assert!(Downstream::new("http://a.example.com", "r").is_err());
        assert!(Downstream::new("http://127.0.0.1:8080", "r").is_ok());
    }
}
