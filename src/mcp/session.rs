//! [`SessionBindingLayer`]: a Streamable HTTP session belongs to the
//! principal that opened it.
//!
//! With stateful sessions the server routes a request to a session by its
//! `Mcp-Session-Id` header alone. Without this layer, any authenticated
//! caller who learns another caller's session id can POST into that
//! session, attach its GET stream (and take over results in flight with
//! `Last-Event-ID`), or DELETE it: the class of CVE-2026-52869 (the Python
//! SDK before `mcp` 1.27.2), "session hijacking" in the MCP security best
//! practices, which ask to bind session ids to user-specific information.
//!
//! # Design: the session id carries a MAC of its owner
//!
//! On the way out, every `Mcp-Session-Id` the server sends (rmcp sends it on
//! the `initialize` response; any response is rewritten) becomes
//! `<id>.<tag>`, where `tag` is HMAC-SHA256 (128 bits, base64url) under a
//! key of this layer over the owner (the [`Principal`]'s
//! [identity key](Principal::identity_key): its scheme, issuer, kind —
//! a subject, or a client acting for itself — and name; or "anonymous")
//! and the id. On
//! the way in, the layer recomputes the tag for the caller of *this*
//! request and, if it matches, hands the server the bare `<id>`. Otherwise
//! (another principal, a tampered or stripped tag, two `Mcp-Session-Id`
//! headers) the server never sees the id: the layer answers exactly as
//! rmcp 3.11's `StreamableHttpService` answers an unknown session id (or as
//! the server behind it does, set with
//! [`SessionBindingLayer::unknown_session_answer`]) and emits an
//! [audit event](crate::audit).
//!
//! Why a MAC and not a map of session id → owner learned from the
//! `initialize` response:
//!
//! - **No state**: nothing grows with the number of sessions, nothing to
//!   cap, expire or evict (a map must evict, and an evicted session must
//!   then fail closed, killing honest sessions under load); nothing to
//!   learn from a response body or to forget on DELETE.
//! - **Replicas**: with one key ([`SessionBindingLayer::with_key`]) every
//!   replica verifies every other's ids, as a session store shared by rmcp
//!   replicas needs; a map would have to be shared too.
//! - **Cost**: one HMAC-SHA256 over a few dozen bytes per request that
//!   carries a session id, or per response that opens a session; nothing
//!   else. `benches/session.rs` (1 KiB `tools/call`, one run): about
//!   +0.55 µs with the owner's id (1.7× a bare route that only reads the
//!   body, 0.77 µs), +0.13 µs without one (stateless mode).
//!
//! The price: the id the client sees is 23 characters longer, and a
//! session outlives a key change (a new random key at each start, by
//! default) only if the key is set. Clients treat the id as opaque (MCP,
//! Streamable HTTP, "Session Management"), so the longer id changes
//! nothing for them; it stays visible ASCII.
//!
//! # Why a layer of its own
//!
//! The binding reads only the [`Principal`] from the request extensions and
//! one header; it needs no JSON-RPC parsing, no policy and no body. As its
//! own layer it works in front of any MCP server with sessions (not only
//! rmcp, and with or without [`McpPolicyLayer`](super::McpPolicyLayer)),
//! and it costs nothing but a header lookup in stateless mode. Put it after
//! the authentication layers (it needs their [`Principal`]); the example
//! puts it innermost, right before the MCP service.
//!
//! # What the caller of a foreign session id gets
//!
//! The answer rmcp 3.11 gives an id it does not know, so that a session id
//! of somebody else cannot be told apart from an id that never existed or
//! has ended: POST and GET (with or without `Last-Event-ID`) get `404` with
//! the body `Not Found: Session not found`; DELETE gets `202` with no body
//! (rmcp closes an unknown session without complaint). The answer does not
//! depend on whether the session is alive: the layer never asks. Other
//! HTTP methods go on to the server without the header (rmcp answers them
//! `405` whatever the session).
//!
//! That answer is rmcp's; another server answers an unknown id its own way
//! (tower-mcp 0.25: `404` and a JSON-RPC error `-32005` on every method,
//! DELETE included). Give the layer that server's answer with
//! [`SessionBindingLayer::unknown_session_answer`], so that its clients
//! read a refused id as the expired session they handle already.
//!
//! When that answer cannot be known in advance (a gateway in front of
//! servers written in other languages),
//! [`SessionBindingLayer::unknown_session_from_server`] lets the server
//! give it: the request goes on with a random id in place of the presented
//! one, and the server answers as it answers any id it never issued.
//!
//! A request without `Mcp-Session-Id` (stateless mode, `initialize`, the
//! 2026-07-28 revision's per-request protocol) passes untouched.
//! In front of a server without sessions (rmcp's stateless mode ignores the
//! header), a request that carries an id anyway, which no such server
//! issued, is refused all the same; a client answers the 404 by opening a
//! new session without one (MCP, Streamable HTTP, "Session Management").
//!
//! Sessions opened anonymously (when the policy lets an anonymous caller
//! initialize) belong to "anonymous": any anonymous caller may use them,
//! and no authenticated caller may.
//!
//! # Example
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_mcp_auth::api_key::{ApiKeyLayer, ApiKeys};
//! use tower_mcp_auth::ProtectedResource;
//! use tower_mcp_auth::mcp::session::SessionBindingLayer;
//! use tower_mcp_auth::mcp::{McpPolicy, McpPolicyLayer};
//! use tower_mcp_auth::Rule;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resource = ProtectedResource::builder("https://mcp.example.com/mcp").build()?;
//! let policy = McpPolicy::builder().default(Rule::authenticated()).build()?;
//! // Replicas behind one load balancer share the key; one process needs none.
//! let key = [7u8; 32]; // read it from a secret store
//! let layers = ServiceBuilder::new()
//!     .layer(resource.layer())
//!     .layer(ApiKeyLayer::new(ApiKeys::new()).optional())
//!     .layer(McpPolicyLayer::new(policy))
//!     .layer(SessionBindingLayer::with_key(key)?);
//! # let _ = layers; Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use axum::{body::Body, response::Response};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header::HeaderName, HeaderMap, HeaderValue, Method, Request, StatusCode};
use pin_project_lite::pin_project;
use sha2::Sha256;
use tower_layer::Layer;
use tower_service::Service;

use crate::{audit, config::ConfigError, future::BoxError, principal::Principal};

/// The `Mcp-Session-Id` header (MCP, Streamable HTTP, "Session Management").
pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// The shortest key [`SessionBindingLayer::with_key`] accepts, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// A fresh random key for a binding layer.
///
/// # Panics
///
/// When the operating system has no randomness to give.
pub(crate) fn random_key() -> [u8; MIN_KEY_LEN] {
    let mut key = [0u8; MIN_KEY_LEN];
    getrandom::fill(&mut key).expect("the operating system's random source failed");
    key
}

/// `key`, when it is long enough for the `what` binding layer.
pub(crate) fn checked_key<'k>(key: &'k [u8], what: &str) -> Result<&'k [u8], ConfigError> {
    if key.len() < MIN_KEY_LEN {
        return Err(ConfigError::Invalid(format!(
            "a {what} binding key needs at least {MIN_KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(key)
}

/// The tag's length in bytes (HMAC-SHA256 truncated to 128 bits).
const TAG_LEN: usize = 16;
/// The tag's length in base64url without padding.
const TAG_B64_LEN: usize = 22;
/// Domain separation: these tags mean nothing anywhere else.
const DOMAIN: &[u8] = b"tower-mcp-auth session binding v1";
/// Body of rmcp 3.11's answer to an unknown session id (POST and GET).
const UNKNOWN_SESSION_BODY: &str = "Not Found: Session not found";

/// Binds each Streamable HTTP session to the principal that opened it.
/// See the [module docs](self) for the design.
#[derive(Clone, Debug)]
#[must_use]
pub struct SessionBindingLayer {
    key: Arc<SessionKey>,
    unknown: UnknownSession,
}

/// How the layer answers a session id that is not the caller's: the way
/// the server behind it answers a session id it does not know.
#[derive(Clone)]
enum UnknownSession {
    /// This answer, made by the layer.
    Answer(Arc<dyn Fn(&Method) -> Response + Send + Sync>),
    /// The server's own: it gets a random stand-in id.
    Server,
}

impl fmt::Debug for UnknownSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answer(_) => f.write_str("UnknownSession::Answer(..)"),
            Self::Server => f.write_str("UnknownSession::Server"),
        }
    }
}

impl Default for UnknownSession {
    fn default() -> Self {
        Self::Answer(Arc::new(rmcp_unknown_session))
    }
}

/// A session id no server ever issued: 128 random bits.
fn stand_in_session() -> HeaderValue {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("the operating system's random source failed");
    HeaderValue::try_from(format!(
        "tower-mcp-auth.unknown-session.{}",
        URL_SAFE_NO_PAD.encode(nonce)
    ))
    .expect("base64url is a valid header value")
}

impl SessionBindingLayer {
    /// A layer with a fresh random key: session ids it issued stop being
    /// valid when the process ends (a client then opens a new session).
    ///
    /// # Panics
    ///
    /// When the operating system has no randomness to give (never on a
    /// supported platform).
    pub fn new() -> Self {
        Self::from_key_bytes(&random_key())
    }

    /// A layer with the given key, so that replicas sharing it accept each
    /// other's session ids and sessions survive a restart.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the key is shorter than
    /// [`MIN_KEY_LEN`] bytes.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::session::SessionBindingLayer;
    ///
    /// assert!(SessionBindingLayer::with_key([1u8; 32]).is_ok());
    /// assert!(SessionBindingLayer::with_key(b"short").is_err());
    /// ```
    pub fn with_key(key: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Ok(Self::from_key_bytes(checked_key(key.as_ref(), "session")?))
    }

    fn from_key_bytes(key: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
        mac.update(DOMAIN);
        Self {
            key: Arc::new(SessionKey { keyed: mac }),
            unknown: UnknownSession::default(),
        }
    }

    /// Answers a session id that is not the caller's with `answer` (given
    /// the request's method) instead of rmcp 3.11's answer to an unknown
    /// id (404 `Not Found: Session not found`; 202 for DELETE).
    ///
    /// Give the answer of the server behind the layer to an id it never
    /// issued, so that a client treats a refused id as the expired session
    /// it handles already (the MCP client answers a 404 by opening a new
    /// session). Another principal's id, a tampered one and one that never
    /// existed get this same answer whatever `answer` is: the layer never
    /// asks the server whether a session is alive.
    ///
    /// tower-mcp 0.25 answers an unknown id with a JSON-RPC error
    /// (`-32005`) and 404 on every method:
    ///
    /// ```
    /// use axum::{body::Body, response::Response};
    /// use http::{header::CONTENT_TYPE, StatusCode};
    /// use tower_mcp_auth::mcp::session::SessionBindingLayer;
    ///
    /// let layer = SessionBindingLayer::new().unknown_session_answer(|_method| {
    ///     let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"Session not found or expired. Please re-initialize the connection."}}"#;
    ///     Response::builder()
    ///         .status(StatusCode::NOT_FOUND)
    ///         .header(CONTENT_TYPE, "application/json")
    ///         .body(Body::from(body))
    ///         .expect("a valid response")
    /// });
    /// # let _ = layer;
    /// ```
    pub fn unknown_session_answer(
        mut self,
        answer: impl Fn(&Method) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.unknown = UnknownSession::Answer(Arc::new(answer));
        self
    }

    /// Lets the server answer a session id that is not the caller's: the
    /// request goes on with a random id in its place (128 bits, an id the
    /// server never issued), so the server answers exactly as it answers
    /// any unknown session — its status, headers and body, whatever the
    /// server is. The presented id never reaches it; the
    /// [audit event](crate::audit) is emitted with the server's status.
    ///
    /// For a server whose answer the layer cannot know in advance: a
    /// gateway in front of MCP servers written in other languages
    /// (`mcp-auth-gateway`). The cost: the request reaches the server
    /// (after every other layer has allowed it), where
    /// [`unknown_session_answer`](Self::unknown_session_answer) answers in
    /// the layer.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::session::SessionBindingLayer;
    ///
    /// let layer = SessionBindingLayer::new().unknown_session_from_server();
    /// # let _ = layer;
    /// ```
    pub fn unknown_session_from_server(mut self) -> Self {
        self.unknown = UnknownSession::Server;
        self
    }
}

impl Default for SessionBindingLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for SessionBindingLayer {
    type Service = SessionBinding<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionBinding {
            inner,
            key: self.key.clone(),
            unknown: self.unknown.clone(),
        }
    }
}

/// The HMAC state keyed once (and fed the domain), cloned per tag.
#[derive(Clone)]
struct SessionKey {
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

/// Feeds one field, length first, so that no two field lists feed the same
/// bytes.
pub(crate) fn field(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

/// Feeds who owns a handle: the one definition of an owner that every
/// binding (sessions here, `requestState` and task ids in
/// [`handles`](super::handles)) uses. The [`Principal`]'s scheme, its `iss`
/// claim when it has one, and its subject; or "anonymous" (`None`).
pub(crate) fn feed_owner(mac: &mut Hmac<Sha256>, owner: Option<&Principal>) {
    match owner {
        None => mac.update(b"\x00"),
        Some(p) => {
            // Scheme, issuer, kind (subject or client) and name.
            mac.update(b"\x02");
            field(mac, p.identity_key().as_bytes());
        }
    }
}

impl SessionKey {
    /// The MAC of `id` for `owner`.
    fn mac(&self, owner: Option<&Principal>, id: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        feed_owner(&mut mac, owner);
        field(&mut mac, id);
        mac
    }

    /// `<id>.<tag>` for `owner`.
    fn seal(&self, owner: Option<&Principal>, id: &HeaderValue) -> HeaderValue {
        let tag = self.mac(owner, id.as_bytes()).finalize().into_bytes();
        let mut sealed = Vec::with_capacity(id.len() + 1 + TAG_B64_LEN);
        sealed.extend_from_slice(id.as_bytes());
        sealed.push(b'.');
        let start = sealed.len();
        sealed.resize(start + TAG_B64_LEN, 0);
        let written = URL_SAFE_NO_PAD
            .encode_slice(&tag[..TAG_LEN], &mut sealed[start..])
            .expect("22 bytes hold 16 in base64url");
        debug_assert_eq!(written, TAG_B64_LEN);
        let mut value = HeaderValue::from_maybe_shared(Bytes::from(sealed))
            .expect("a header value followed by base64url is a header value");
        value.set_sensitive(id.is_sensitive());
        value
    }

    /// The bare id of `presented` when its tag is `owner`'s, in constant
    /// time in the tag.
    fn open(&self, owner: Option<&Principal>, presented: &HeaderValue) -> Option<HeaderValue> {
        let bytes = presented.as_bytes();
        let dot = bytes.iter().rposition(|&b| b == b'.')?;
        let (id, tag) = (&bytes[..dot], &bytes[dot + 1..]);
        if id.is_empty() || tag.len() != TAG_B64_LEN {
            return None;
        }
        let mut decoded = [0u8; TAG_LEN + 2];
        let n = URL_SAFE_NO_PAD.decode_slice(tag, &mut decoded).ok()?;
        if n != TAG_LEN {
            return None;
        }
        self.mac(owner, id)
            .verify_truncated_left(&decoded[..TAG_LEN])
            .ok()?;
        HeaderValue::from_bytes(id).ok()
    }

    /// Seals every `Mcp-Session-Id` of a response for `owner`.
    fn seal_all(&self, owner: Option<&Principal>, headers: &mut HeaderMap) {
        if !headers.contains_key(SESSION_ID) {
            return;
        }
        let sealed: Vec<HeaderValue> = headers
            .get_all(SESSION_ID)
            .iter()
            .map(|id| self.seal(owner, id))
            .collect();
        headers.remove(SESSION_ID);
        for value in sealed {
            headers.append(SESSION_ID, value);
        }
    }
}

/// The service made by [`SessionBindingLayer`].
#[derive(Clone, Debug)]
pub struct SessionBinding<S> {
    inner: S,
    key: Arc<SessionKey>,
    unknown: UnknownSession,
}

impl<S> SessionBinding<S> {
    /// A layer with a fresh random key: the same as
    /// [`SessionBindingLayer::new`].
    pub fn layer() -> SessionBindingLayer {
        SessionBindingLayer::new()
    }

    crate::macros::inner_service_accessors!(S);
}

/// What rmcp 3.11's `StreamableHttpService` answers a request naming a
/// session it does not know: 202 and no body for DELETE (closing an unknown
/// session is not an error there), 404 `Not Found: Session not found` for
/// POST and GET. The default of
/// [`SessionBindingLayer::unknown_session_answer`].
fn rmcp_unknown_session(method: &Method) -> Response {
    let (status, body) = if method == Method::DELETE {
        (StatusCode::ACCEPTED, Body::empty())
    } else {
        (StatusCode::NOT_FOUND, Body::from(UNKNOWN_SESSION_BODY))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// The audit event of a refused session id. The id itself is not logged.
fn audit_refusal<B>(req: &Request<B>, owner: Option<&Principal>, status: StatusCode) {
    audit_unknown(
        owner,
        req.method(),
        audit::path(req.uri(), req.extensions()),
        status,
    );
}

/// What the audit event of a session id the server got a stand-in for
/// needs once the server has answered.
#[derive(Debug)]
struct RefusedRequest {
    method: Method,
    path: String,
}

fn audit_refused_request(r: &RefusedRequest, owner: Option<&Principal>, status: StatusCode) {
    audit_unknown(owner, &r.method, &r.path, status);
}

fn audit_unknown(owner: Option<&Principal>, method: &Method, path: &str, status: StatusCode) {
    audit::refused_because(
        "session_binding",
        audit::Refusal {
            reason: "unknown_session",
            detail: "the session id was not issued to this caller",
            status: status.as_u16(),
        },
        owner,
        method,
        path,
    );
}

impl<S, B, ResBody> Service<Request<B>> for SessionBinding<S>
where
    S: Service<Request<B>, Response = http::Response<ResBody>> + Clone,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let owner = Principal::from_extensions(req.extensions()).cloned();
        let mut refused = None;
        let mut presented = req.headers().get_all(SESSION_ID).iter();
        if let Some(first) = presented.next() {
            // Two ids: rmcp would take the first; refuse rather than guess.
            let bare = match presented.next() {
                None => self.key.open(owner.as_ref(), first),
                Some(_) => None,
            };
            match bare {
                Some(bare) => {
                    req.headers_mut().insert(SESSION_ID, bare);
                }
                None if matches!(*req.method(), Method::POST | Method::GET | Method::DELETE) => {
                    match &self.unknown {
                        UnknownSession::Answer(answer) => {
                            let response = answer(req.method());
                            audit_refusal(&req, owner.as_ref(), response.status());
                            return ResponseFuture {
                                kind: Kind::Refused {
                                    response: Some(response),
                                },
                            };
                        }
                        UnknownSession::Server => {
                            req.headers_mut().insert(SESSION_ID, stand_in_session());
                            refused = Some(RefusedRequest {
                                method: req.method().clone(),
                                path: audit::path(req.uri(), req.extensions()).to_owned(),
                            });
                        }
                    }
                }
                None => {
                    req.headers_mut().remove(SESSION_ID);
                }
            }
        }
        let future = self.inner.call(req);
        ResponseFuture {
            kind: Kind::Inner {
                future,
                owner,
                key: self.key.clone(),
                refused,
            },
        }
    }
}

pin_project! {
    /// The response future of [`SessionBinding`]: the inner service's
    /// response with its session ids sealed, or the unknown-session answer.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner {
            #[pin] future: F,
            owner: Option<Principal>,
            key: Arc<SessionKey>,
            // A foreign id the server got a stand-in for: audited with its answer.
            refused: Option<RefusedRequest>,
        },
        Refused { response: Option<Response> },
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner {
                future,
                owner,
                key,
                refused,
            } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(r) = refused.take() {
                    audit_refused_request(&r, owner.as_ref(), response.status());
                }
                key.seal_all(owner.as_ref(), response.headers_mut());
                Poll::Ready(Ok(response.map(Body::new)))
            }
            KindProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{Arc, Mutex},
    };

    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::AuthScheme;

    /// Taken by every test whose requests are refused: an audit event's
    /// callsite registered by another thread while the audit test sets
    /// up its subscriber may be cached as unwanted.
    static REFUSALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// What the inner service saw: the `Mcp-Session-Id` of each request.
    type Seen = Arc<Mutex<Vec<Option<String>>>>;

    /// A server that opens session `sess-1` on a request without one, and
    /// otherwise echoes the id it was given.
    fn server(
        layer: &SessionBindingLayer,
        seen: &Seen,
    ) -> impl Service<
        Request<Body>,
        Response = Response,
        Error = Infallible,
        Future = impl Future<Output = Result<Response, Infallible>>,
    > + Clone {
        let seen = seen.clone();
        ServiceBuilder::new()
            .layer(layer.clone())
            .service(tower::service_fn(move |req: Request<Body>| {
                let id = req
                    .headers()
                    .get(SESSION_ID)
                    .map(|v| v.to_str().unwrap().to_owned());
                seen.lock().unwrap().push(id.clone());
                async move {
                    let mut res = Response::new(Body::from("served"));
                    if id.is_none() {
                        res.headers_mut()
                            .insert(SESSION_ID, HeaderValue::from_static("sess-1"));
                    }
                    Ok::<_, Infallible>(res)
                }
            }))
    }

    fn request(method: Method, who: Option<&Principal>, session: Option<&str>) -> Request<Body> {
        let mut req = Request::builder()
            .method(method)
            .uri("/mcp")
            .body(Body::empty())
            .unwrap();
        if let Some(p) = who {
            req.extensions_mut().insert(p.clone());
        }
        if let Some(id) = session {
            req.headers_mut()
                .insert(SESSION_ID, HeaderValue::from_str(id).unwrap());
        }
        req
    }

    async fn body(res: Response) -> String {
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    fn alice() -> Principal {
        Principal::new(AuthScheme::Jwt, "alice")
            .with_issuer("https://as.example.com")
            .with_claims(
                json!({"iss": "https://as.example.com", "sub": "alice"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
    }

    fn bob() -> Principal {
        Principal::new(AuthScheme::Jwt, "bob").with_claims(
            json!({"iss": "https://as.example.com", "sub": "bob"})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    /// Opens a session as `who` and returns the id the client sees.
    async fn open(
        svc: impl Service<Request<Body>, Response = Response, Error = Infallible>,
        who: Option<&Principal>,
    ) -> String {
        let res = svc.oneshot(request(Method::POST, who, None)).await.unwrap();
        assert_eq!(res.status(), 200);
        res.headers()[SESSION_ID].to_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn the_owner_gets_a_sealed_id_and_the_server_the_bare_one() {
        let layer = SessionBindingLayer::new();
        let seen = Seen::default();
        let svc = server(&layer, &seen);
        let id = open(svc.clone(), Some(&alice())).await;
        let (bare, tag) = id.rsplit_once('.').unwrap();
        assert_eq!(bare, "sess-1");
        assert_eq!(tag.len(), TAG_B64_LEN);
        assert!(id.bytes().all(|b| b.is_ascii_graphic()), "{id}");

        for method in [Method::POST, Method::GET, Method::DELETE] {
            let res = svc
                .clone()
                .oneshot(request(method, Some(&alice()), Some(&id)))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(body(res).await, "served");
        }
        assert_eq!(
            *seen.lock().unwrap(),
            [
                None,
                Some("sess-1".into()),
                Some("sess-1".into()),
                Some("sess-1".into())
            ]
        );
    }

    #[tokio::test]
    async fn another_principal_is_answered_as_rmcp_answers_an_unknown_session() {
        let _serial = REFUSALS.lock().await;
        let layer = SessionBindingLayer::new();
        let seen = Seen::default();
        let svc = server(&layer, &seen);
        let id = open(svc.clone(), Some(&alice())).await;

        for method in [Method::POST, Method::GET] {
            let res = svc
                .clone()
                .oneshot(request(method, Some(&bob()), Some(&id)))
                .await
                .unwrap();
            assert_eq!(res.status(), 404);
            assert!(res.headers().get(http::header::CONTENT_TYPE).is_none());
            assert_eq!(body(res).await, "Not Found: Session not found");
        }
        let res = svc
            .clone()
            .oneshot(request(Method::DELETE, Some(&bob()), Some(&id)))
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        assert_eq!(body(res).await, "");
        // The server never heard of the foreign requests.
        assert_eq!(*seen.lock().unwrap(), [None]);
    }

    #[tokio::test]
    async fn with_unknown_session_from_server_a_foreign_id_reaches_it_as_a_stand_in() {
        let _serial = REFUSALS.lock().await;
        let layer = SessionBindingLayer::new().unknown_session_from_server();
        let seen = Seen::default();
        let svc = server(&layer, &seen);
        let id = open(svc.clone(), Some(&alice())).await;
        let mut tampered = id.clone();
        tampered.pop();

        for (who, presented) in [(bob(), id.as_str()), (alice(), tampered.as_str())] {
            for method in [Method::POST, Method::GET, Method::DELETE] {
                let res = svc
                    .clone()
                    .oneshot(request(method, Some(&who), Some(presented)))
                    .await
                    .unwrap();
                // The server's own answer (here it serves any id it gets).
                assert_eq!(body(res).await, "served");
            }
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 7);
        let stand_ins: Vec<&str> = seen[1..].iter().map(|s| s.as_deref().unwrap()).collect();
        for s in &stand_ins {
            assert!(s.starts_with("tower-mcp-auth.unknown-session."), "{s}");
            assert!(!s.contains("sess-1"), "{s}");
        }
        let distinct: std::collections::HashSet<&&str> = stand_ins.iter().collect();
        assert_eq!(distinct.len(), 6, "a fresh stand-in each time");

        // The owner still reaches its session.
        let res = svc
            .clone()
            .oneshot(request(Method::POST, Some(&alice()), Some(&id)))
            .await
            .unwrap();
        assert_eq!(body(res).await, "served");
    }

    #[tokio::test]
    async fn a_foreign_id_gets_the_answer_of_the_server_behind() {
        // tower-mcp's answer to an unknown id: 404 and a JSON-RPC error on
        // every method, DELETE included (rmcp: 202).
        let _serial = REFUSALS.lock().await;
        let layer = SessionBindingLayer::new().unknown_session_answer(|method| {
            let body = json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32005, "message": format!("{method}: session not found")}});
            let mut res = Response::new(Body::from(body.to_string()));
            *res.status_mut() = StatusCode::NOT_FOUND;
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        });
        let seen = Seen::default();
        let svc = server(&layer, &seen);
        let id = open(svc.clone(), Some(&alice())).await;

        for (method, who) in [
            (Method::POST, Some(bob())),
            (Method::GET, None),
            (Method::DELETE, Some(bob())),
        ] {
            let res = svc
                .clone()
                .oneshot(request(method.clone(), who.as_ref(), Some(&id)))
                .await
                .unwrap();
            assert_eq!(res.status(), 404, "{method}");
            assert_eq!(
                res.headers()[http::header::CONTENT_TYPE],
                "application/json"
            );
            let body: Value = serde_json::from_str(&body(res).await).unwrap();
            assert_eq!(body["error"]["code"], -32005);
            assert_eq!(
                body["error"]["message"],
                format!("{method}: session not found")
            );
        }
        // Its owner still reaches it; the server never heard of the others.
        let res = svc
            .clone()
            .oneshot(request(Method::POST, Some(&alice()), Some(&id)))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(*seen.lock().unwrap(), [None, Some("sess-1".to_owned())]);
    }

    #[tokio::test]
    async fn the_owner_is_scheme_issuer_kind_and_subject() {
        let _serial = REFUSALS.lock().await;
        let layer = SessionBindingLayer::new();
        let seen = Seen::default();
        let svc = server(&layer, &seen);
        let id = open(svc.clone(), Some(&alice())).await;

        let same_sub_other_scheme = Principal::new(AuthScheme::ApiKey, "alice");
        let same_sub_other_issuer =
            Principal::new(AuthScheme::Jwt, "alice").with_issuer("https://evil.example.com");
        let same_sub_no_issuer = Principal::new(AuthScheme::Jwt, "alice");
        // Issue 23 6e: a client named alice (a token without sub) is not
        // the user alice.
        let client_of_that_name =
            Principal::client(AuthScheme::Jwt, "alice").with_issuer("https://as.example.com");
        let same_owner_other_token = Principal::new(AuthScheme::Jwt, "alice")
            .with_issuer("https://as.example.com")
            .with_scopes(crate::Scopes::parse("read:data"))
            .with_claims(
                json!({"iss": "https://as.example.com", "jti": "2"})
                    .as_object()
                    .unwrap()
                    .clone(),
            );
        for (who, status) in [
            (Some(&same_sub_other_scheme), 404),
            (Some(&same_sub_other_issuer), 404),
            (Some(&same_sub_no_issuer), 404),
            (Some(&client_of_that_name), 404),
            (None, 404),
            (Some(&same_owner_other_token), 200),
        ] {
            let res = svc
                .clone()
                .oneshot(request(Method::POST, who, Some(&id)))
                .await
                .unwrap();
            assert_eq!(res.status(), status, "{who:?}");
        }
    }

    #[tokio::test]
    async fn a_stripped_tampered_or_doubled_id_is_an_unknown_session() {
        let _serial = REFUSALS.lock().await;
        let layer = SessionBindingLayer::new();
        let seen = Seen::default();
        let svc = server(&layer, &seen);
        let id = open(svc.clone(), Some(&alice())).await;
        let (bare, tag) = id.rsplit_once('.').unwrap();
        let mut flipped = tag.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{bare}.{}", std::str::from_utf8(&flipped).unwrap());

        for presented in [
            bare.to_owned(),
            format!("{bare}."),
            format!(".{tag}"),
            format!("{id}.{tag}"),
            format!("{bare}.{}", &tag[..21]),
            format!("{bare}.{tag}A"),
            format!("{bare}.{}", "=".repeat(22)),
            flipped,
            format!("{bare}x.{tag}"),
        ] {
            let res = svc
                .clone()
                .oneshot(request(Method::POST, Some(&alice()), Some(&presented)))
                .await
                .unwrap();
            assert_eq!(res.status(), 404, "{presented}");
        }

        let mut doubled = request(Method::POST, Some(&alice()), Some(&id));
        doubled
            .headers_mut()
            .append(SESSION_ID, HeaderValue::from_str(&id).unwrap());
        assert_eq!(svc.clone().oneshot(doubled).await.unwrap().status(), 404);
        assert_eq!(*seen.lock().unwrap(), [None]);
    }

    #[tokio::test]
    async fn anonymous_sessions_belong_to_anonymous_callers() {
        let _serial = REFUSALS.lock().await;
        let layer = SessionBindingLayer::new();
        let seen = Seen::default();
        let svc = server(&layer, &seen);
        let id = open(svc.clone(), None).await;
        let res = svc
            .clone()
            .oneshot(request(Method::POST, None, Some(&id)))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let res = svc
            .clone()
            .oneshot(request(Method::POST, Some(&alice()), Some(&id)))
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }

    #[tokio::test]
    async fn without_a_session_id_nothing_changes() {
        let layer = SessionBindingLayer::new();
        let seen = Seen::default();
        let stateless = ServiceBuilder::new()
            .layer(layer)
            .service(tower::service_fn(|req: Request<Body>| async move {
                assert!(req.headers().get(SESSION_ID).is_none());
                Ok::<_, Infallible>(Response::new(Body::from("stateless")))
            }));
        let res = stateless
            .oneshot(request(Method::POST, Some(&alice()), None))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get(SESSION_ID).is_none());
        assert_eq!(body(res).await, "stateless");
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn other_methods_reach_the_server_without_a_foreign_id() {
        let layer = SessionBindingLayer::new();
        let seen = Seen::default();
        let svc = server(&layer, &seen);
        let id = open(svc.clone(), Some(&alice())).await;
        let res = svc
            .clone()
            .oneshot(request(Method::PUT, Some(&bob()), Some(&id)))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(*seen.lock().unwrap(), [None, None]);
    }

    #[tokio::test]
    async fn replicas_sharing_a_key_accept_each_others_ids_and_no_one_else_does() {
        let _serial = REFUSALS.lock().await;
        let key = [42u8; 32];
        let seen = Seen::default();
        let one = server(&SessionBindingLayer::with_key(key).unwrap(), &seen);
        let two = server(&SessionBindingLayer::with_key(key).unwrap(), &seen);
        let other = server(&SessionBindingLayer::new(), &seen);
        let id = open(one, Some(&alice())).await;
        let res = two
            .oneshot(request(Method::POST, Some(&alice()), Some(&id)))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let res = other
            .oneshot(request(Method::POST, Some(&alice()), Some(&id)))
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        let err = SessionBindingLayer::with_key([0u8; 31]).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        assert!(!format!("{:?}", SessionBindingLayer::with_key(key).unwrap()).contains("42"));
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refusal_is_one_bounded_audit_event_without_the_id() {
        let _serial = REFUSALS.lock().await;
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        // Another test's thread may have registered the event's callsite
        // while no subscriber wanted it: ask again.
        tracing::callsite::rebuild_interest_cache();

        let layer = SessionBindingLayer::new();
        let seen = Seen::default();
        let svc = server(&layer, &seen);
        let id = open(svc.clone(), Some(&alice())).await;
        let long = Principal::new(AuthScheme::ApiKey, "m".repeat(100_000));
        let res = svc
            .oneshot(request(Method::DELETE, Some(&long), Some(&id)))
            .await
            .unwrap();
        assert_eq!(res.status(), 202);

        let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let line = lines[0];
        for field in [
            "tower_mcp_auth::audit",
            "outcome=\"refused\"",
            "layer=\"session_binding\"",
            "reason=\"unknown_session\"",
            "scheme=\"api_key\"",
            "status=202",
            "method=\"DELETE\"",
        ] {
            assert!(line.contains(field), "{field}: {line}");
        }
        assert!(!line.contains(&id) && !line.contains("sess-1"), "{line}");
        let kept = crate::audit::MAX_FIELD_BYTES;
        assert!(line.contains(&"m".repeat(kept)) && !line.contains(&"m".repeat(kept + 1)));
        assert!(line.len() < 1000, "{}", line.len());
    }
}
