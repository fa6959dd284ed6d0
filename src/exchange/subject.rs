//! [`SubjectToken`], the caller's verified access token kept for an
//! exchange, and [`KeepSubjectTokenLayer`], which keeps it.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::Request;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use crate::principal::{AuthScheme, Principal};

/// The caller's verified access token, in the request's extensions for
/// [`TokenExchanger`](super::TokenExchanger) to exchange, when a
/// [`KeepSubjectTokenLayer`] runs below the bearer authenticators.
///
/// It gives nothing away: no `Display`, a `Debug` that prints only who it
/// belongs to, and no public way to read the token. Only the exchanger
/// reads it, to send it to the authorization server's token endpoint. It
/// is dropped (and zeroed) with the request and its clones.
///
/// # Example
///
/// ```
/// use http::request::Parts;
/// use tower_mcp_auth::exchange::SubjectToken;
///
/// fn has_token(parts: &Parts) -> bool {
///     parts.extensions.get::<SubjectToken>().is_some()
/// }
/// ```
#[derive(Clone)]
pub struct SubjectToken(Arc<Inner>);

struct Inner {
    token: SecretString,
    /// SHA-256 of the token: the exchange cache's key, computed once.
    digest: [u8; 32],
    /// The caller's name, for the audit trail.
    subject: Box<str>,
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectToken")
            .field("subject", &self.0.subject)
            .field("token", &"[redacted]")
            .finish()
    }
}

impl SubjectToken {
    /// The token, whose digest is computed here.
    pub(crate) fn new(token: &str, subject: &str) -> Self {
        Self::with_digest(token, subject, Sha256::digest(token.as_bytes()).into())
    }

    /// The token, and its SHA-256 `digest` as its authenticator computed
    /// it.
    pub(crate) fn with_digest(token: &str, subject: &str, digest: [u8; 32]) -> Self {
        Self(Arc::new(Inner {
            token: SecretString::from(token),
            digest,
            subject: subject.into(),
        }))
    }

    /// The name of the caller the token belongs to (the principal's
    /// [`name`](Principal::name)).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The token: for the exchanger only.
    pub(crate) fn expose(&self) -> &str {
        self.0.token.expose_secret()
    }

    /// SHA-256 of the token: the exchange cache's key for this caller.
    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.0.digest
    }
}

/// Keeps the caller's verified access token as a [`SubjectToken`] in the
/// request's extensions, for a tool that calls another API on the
/// caller's behalf. Put it **below** the bearer authenticators (`JwtLayer`,
/// `IntrospectionLayer`): it keeps the token only when one of them
/// verified it (the request carries their [`Principal`]); a request from an
/// API key, an anonymous one, or one it sees before any authenticator
/// gets none, and an exchange for it is refused with
/// [`ExchangeError::NoSubjectToken`](super::ExchangeError::NoSubjectToken).
///
/// A stack without this layer keeps nothing: the default path pays
/// nothing for token exchange.
///
/// # Example
///
/// ```
/// use axum::{routing::post, Router};
/// use secrecy::SecretString;
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::exchange::KeepSubjectTokenLayer;
/// use tower_mcp_auth::jwt::{JwtLayer, JwtValidator};
/// use tower_mcp_auth::ProtectedResource;
///
/// # fn main() -> Result<(), tower_mcp_auth::ConfigError> {
/// let resource = ProtectedResource::builder("https://mcp.example.com/mcp").build()?;
/// let validator = JwtValidator::builder(&resource)
///     .hs256_secret(&SecretString::from("0123456789abcdef0123456789abcdef"))
///     .build()?;
/// let app: Router = Router::new().route("/mcp", post(|| async { "ok" })).layer(
///     ServiceBuilder::new()
///         .layer(JwtLayer::new(validator))     // verifies the caller's token
///         .layer(KeepSubjectTokenLayer::new()), // then keeps it for an exchange
/// );
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct KeepSubjectTokenLayer(());

impl KeepSubjectTokenLayer {
    /// The layer.
    pub fn new() -> Self {
        Self(())
    }
}

impl<S> Layer<S> for KeepSubjectTokenLayer {
    type Service = KeepSubjectToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeepSubjectToken { inner }
    }
}

/// The service made by [`KeepSubjectTokenLayer`].
#[derive(Clone, Debug)]
pub struct KeepSubjectToken<S> {
    inner: S,
}

impl<S> KeepSubjectToken<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

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

/// The longest token kept: far above any the authenticators accept.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

impl<S, B> Service<Request<B>> for KeepSubjectToken<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(subject) = verified_token(&req) {
            req.extensions_mut().insert(subject);
        }
        self.inner.call(req)
    }
}

/// The request's access token, when a bearer authenticator of this crate
/// verified it: the principal it made is there, and the token it read is
/// the one `Authorization` header (`Bearer`, or `DPoP` with its proof
/// checked). Anything else (no principal, an API key's, a custom
/// scheme's) keeps nothing.
///
/// The token's digest is the one its authenticator computed for its own
/// cache and left on the principal; only an authenticator without a cache
/// leaves none, and the digest is computed here, once per request.
fn verified_token<B>(req: &Request<B>) -> Option<SubjectToken> {
    let principal = Principal::from_extensions(req.extensions())?;
    if !matches!(
        principal.scheme(),
        AuthScheme::Jwt | AuthScheme::Introspection
    ) {
        return None;
    }
    let (_, token) = crate::bearer::find_token(req.headers(), MAX_TOKEN_BYTES, true).ok()??;
    Some(match principal.token_digest() {
        Some(digest) => SubjectToken::with_digest(token, principal.name(), *digest),
        None => SubjectToken::new(token, principal.name()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    async fn kept(req: Request<()>) -> Option<SubjectToken> {
        ServiceBuilder::new()
            .layer(KeepSubjectTokenLayer::new())
            .service_fn(|req: Request<()>| async move {
                Ok::<_, Infallible>(req.extensions().get::<SubjectToken>().cloned())
            })
            .oneshot(req)
            .await
            .unwrap()
    }

    fn request(auth: Option<&str>, principal: Option<Principal>) -> Request<()> {
        let mut b = Request::builder();
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let mut req = b.body(()).unwrap();
        if let Some(p) = principal {
            req.extensions_mut().insert(p);
        }
        req
    }

    #[tokio::test]
    async fn only_a_token_a_bearer_authenticator_verified_is_kept() {
        let jwt = || Some(Principal::new(AuthScheme::Jwt, "alice"));
        let t = kept(request(Some("Bearer abc.def"), jwt())).await.unwrap();
        assert_eq!((t.expose(), t.subject()), ("abc.def", "alice"));
        let p = Some(Principal::new(AuthScheme::Introspection, "bob"));
        let t = kept(request(Some("DPoP opaque"), p)).await.unwrap();
        assert_eq!(t.expose(), "opaque");
        // No principal: nobody verified it.
        assert!(kept(request(Some("Bearer abc"), None)).await.is_none());
        // An API key's principal, or a custom scheme's.
        let key = Some(Principal::new(AuthScheme::ApiKey, "svc"));
        assert!(kept(request(Some("Bearer abc"), key)).await.is_none());
        let custom = Some(Principal::new(AuthScheme::custom("sso", true), "c"));
        assert!(kept(request(Some("Bearer abc"), custom)).await.is_none());
        // A principal and no token.
        assert!(kept(request(None, jwt())).await.is_none());
    }

    /// The digest kept is the one the authenticator left on the
    /// principal, not a new hash of the token (a principal made with a
    /// digest that is not the token's shows it); only without one is the
    /// token hashed here.
    #[tokio::test]
    async fn the_digest_is_the_authenticators_when_it_left_one() {
        let carried = Principal::new(AuthScheme::Jwt, "alice").with_token_digest([7; 32]);
        let t = kept(request(Some("Bearer abc.def"), Some(carried)))
            .await
            .unwrap();
        assert_eq!(t.digest(), &[7; 32]);
        let none = Principal::new(AuthScheme::Introspection, "bob");
        let t = kept(request(Some("Bearer abc.def"), Some(none)))
            .await
            .unwrap();
        let sha256: [u8; 32] = Sha256::digest(b"abc.def").into();
        assert_eq!(t.digest(), &sha256);
    }

    /// Through the JWT layer: the token kept carries the digest of the
    /// validator's cache, which the principal brought.
    #[cfg(feature = "jwt")]
    #[tokio::test]
    async fn a_verified_jwt_is_kept_with_the_validators_digest() {
        use crate::jwt::{
            test_support::{good_claims, hs256, validator},
            JwtLayer,
        };
        use axum::body::Body;
        type Digests = (Option<[u8; 32]>, [u8; 32]);
        let token = hs256(&good_claims());
        let req = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let res = ServiceBuilder::new()
            .layer(JwtLayer::new(validator()))
            .layer(KeepSubjectTokenLayer::new())
            .service_fn(|req: Request<Body>| async move {
                let p = Principal::from_extensions(req.extensions()).unwrap();
                let kept = req.extensions().get::<SubjectToken>().unwrap();
                let mut res = http::Response::new(Body::empty());
                let digests: Digests = (p.token_digest().copied(), *kept.digest());
                res.extensions_mut().insert(digests);
                Ok::<_, Infallible>(res)
            })
            .oneshot(req)
            .await
            .unwrap();
        let sha256: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let digests = res.extensions().get::<Digests>().copied();
        assert_eq!(digests, Some((Some(sha256), sha256)));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = SubjectToken::new("hunter2-token", "alice");
        let shown = format!("{t:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"));
    }
}
