//! [`FailedAuthLayer`]: refuses a client address that keeps presenting bad
//! credentials, so guessing keys or tokens gets nowhere.
//!
//! Place it **outside** the authenticators: it lets a request through,
//! looks at the response, and counts the refusals an authenticator put in
//! its extensions: an [`AuthError`] of kind
//! [`InvalidToken`](AuthErrorKind::InvalidToken), that is a credential that
//! was presented and failed. A request that carries no credential at all
//! is not counted by default: every MCP client's first request carries
//! none (that is how it discovers the authorization server), and ten
//! clients starting behind one NAT must not lock each other out; turn
//! [`count_missing_credentials`](FailedAuthLayer::count_missing_credentials)
//! on to count them too. Nor is a refusal that could not decide (503: an
//! endpoint down, a signing key not fetched yet). A refusal whose response also carries a [`Principal`] in its
//! extensions was made after the credential was verified (an authorization
//! decision, such as [`McpPolicyLayer`](crate::mcp::McpPolicyLayer)
//! refusing a valid API key for a bearer-only tool) and is not counted.
//! After [`threshold`](FailedAuthLayer::threshold) such refusals
//! within the window, every request from that address, good credentials
//! or not, is refused with 429 and `Retry-After` for the
//! [`cool-down`](FailedAuthLayer::cooldown). The refusal says which 429
//! it is: `error` is `too_many_failed_authentications` (a quota's 429 from
//! [`RateLimitLayer`](super::RateLimitLayer) is `rate_limited`) and the
//! description names the cool-down and the seconds left
//! ([`AuthError::too_many_failed_authentications`]). Other addresses are not
//! affected. Addresses are found as [`KeyExtractor::client_ip`] does
//! (`ConnectInfo`, [`TrustedProxies`]): serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`, and behind a
//! proxy configure [`trusted_proxies`](FailedAuthLayer::trusted_proxies),
//! or every client shares the proxy's (or, without `ConnectInfo`, one
//! common) entry and one guesser blocks them all. A DPoP refusal that only
//! asks for the server's nonce (`use_dpop_nonce`) is not counted either:
//! every DPoP client of a server with nonces meets one.
//!
//! # What counts as a failed login
//!
//! | the request | counted |
//! | --- | --- |
//! | a credential a layer read and refused (401 `invalid_token`): a wrong or expired key or token, a token for another resource, a bearer token no layer verifies — an API key sent as `Authorization: Bearer <key>` is such a token | yes |
//! | no credential a layer reads (401 `missing_credential`): MCP discovery, and a key where no layer looks (another header, the query string, `Authorization: Basic`, `Authorization: ApiKey` under [`authorization_scheme(false)`](crate::api_key::ApiKeyLayer::authorization_scheme)) | only with [`count_missing_credentials(true)`](FailedAuthLayer::count_missing_credentials) |
//! | a verified credential refused by an authorization layer (the wrong scheme or too few scopes for a tool: the response carries the [`Principal`]) | no |
//! | two credentials or a malformed request (400), a backend that cannot decide (503), a throttled call (429) | no |
//!
//! # Local development
//!
//! Testing with curl, a typo in a key is a failed login like any other:
//! ten within a minute and your own address (`127.0.0.1`) is refused for
//! five minutes with 429 `too_many_failed_authentications`, whose
//! description and `Retry-After` say how long is left. Requests without a
//! key (discovery, a key in a header no layer reads) are not counted
//! unless you turn [`count_missing_credentials`](FailedAuthLayer::count_missing_credentials)
//! on. To get out of a cool-down: wait for `Retry-After`; restart the
//! server (the counts live in its memory); send from another loopback
//! address (`curl --interface 127.0.0.2 …`: on Linux every `127.x.y.z`
//! is its own client); or call [`clear`](FailedAuthLayer::clear) on a clone of the
//! layer, from an endpoint of your own. In a development build, a
//! generous threshold and a short cool-down keep the layer in the stack
//! without getting in the way:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{net::SocketAddr, time::Duration};
//! use axum::{body::Body, extract::ConnectInfo, routing::get, Router};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_mcp_auth::api_key::{ApiKey, ApiKeyLayer, ApiKeys};
//! use tower_mcp_auth::rate_limit::failed_auth::FailedAuthLayer;
//!
//! let failed_auth = if cfg!(debug_assertions) {
//!     FailedAuthLayer::new().threshold(3, Duration::from_secs(60)).cooldown(Duration::from_secs(5))
//! } else {
//!     FailedAuthLayer::new()
//! };
//! let keys = ApiKeys::new().with(ApiKey::new("dev", "mcp_sk_dev-0123456789abcdef"));
//! let app = Router::new().route("/", get(|| async { "ok" })).layer(
//!     ServiceBuilder::new().layer(failed_auth.clone()).layer(ApiKeyLayer::new(keys)),
//! );
//! let send = |key: &'static str| {
//!     let mut req = http::Request::get("/").header("x-api-key", key).body(Body::empty()).unwrap();
//!     req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 50000))));
//!     app.clone().oneshot(req)
//! };
//! for _ in 0..3 {
//!     assert_eq!(send("mcp_sk_typo-0123456789abcdef").await?.status(), 401);
//! }
//! assert_eq!(send("mcp_sk_dev-0123456789abcdef").await?.status(), 429); // locked out
//! failed_auth.clear();
//! assert_eq!(send("mcp_sk_dev-0123456789abcdef").await?.status(), 200);
//! # Ok(()) }
//! ```
//!
//! To see why a request was refused, read the audit trail
//! ([`crate::audit`]): `RUST_LOG=tower_mcp_auth::audit=info` with a
//! `tracing_subscriber` `EnvFilter`: each refusal names its `layer` and
//! `reason`, and an address this layer blocks is a `throttled` event
//! naming the `client`.
//!
//! Blocking an address is an audit event with `outcome = "throttled"`,
//! `layer = "failed_auth"` and the `client` address; each refused request
//! during the cool-down is another.
//!
//! Memory is bounded: entries expire when their window and cool-down are
//! over and are swept every 10 s (amortised into requests, like
//! [`MemoryStore`](super::MemoryStore)); past
//! [`max_keys`](FailedAuthLayer::max_keys) addresses (default 100 000),
//! new addresses share one overflow entry, so during a flood from more
//! addresses than that, the untracked ones are throttled together while
//! tracked ones keep their own counts.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use tower::ServiceBuilder;
//! use tower_mcp_auth::api_key::{ApiKeyLayer, ApiKeys};
//! use tower_mcp_auth::rate_limit::failed_auth::FailedAuthLayer;
//!
//! let app: Router = Router::new().route("/", get(|| async { "ok" })).layer(
//!     ServiceBuilder::new()
//!         .layer(FailedAuthLayer::new().threshold(5, Duration::from_secs(60)).cooldown(Duration::from_secs(900)))
//!         .layer(ApiKeyLayer::new(ApiKeys::new())),
//! );
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::Duration,
};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock, Reference};
use http::Request;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::key::{KeyExtractor, RateLimitKey, TrustedProxies};
use crate::{
    audit,
    error::{AuthError, AuthErrorKind, ErrorRenderer},
    future::BoxError,
    principal::Principal,
    refusal,
};

const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A [`Layer`] that throttles addresses after repeated authentication
/// failures; see the [module docs](self). Clones share one state.
#[must_use]
pub struct FailedAuthLayer<C: Clock = DefaultClock> {
    tracker: Arc<Tracker<C>>,
}

impl<C: Clock> Clone for FailedAuthLayer<C> {
    fn clone(&self) -> Self {
        Self {
            tracker: self.tracker.clone(),
        }
    }
}

struct Tracker<C: Clock> {
    clock: C,
    start: C::Instant,
    threshold: u32,
    window: u64,
    cooldown: u64,
    max_keys: usize,
    count_missing: bool,
    keys: KeyExtractor,
    renderer: ErrorRenderer,
    map: DashMap<RateLimitKey, Entry>,
    len: AtomicUsize,
    next_sweep: AtomicU64,
    last_sweep: AtomicU64,
    sweeping: AtomicBool,
}

impl<C: Clock + Clone> Tracker<C> {
    /// The same configuration, with no failures recorded yet.
    fn reconfigurable(&self) -> Self {
        Self {
            clock: self.clock.clone(),
            start: self.start,
            threshold: self.threshold,
            window: self.window,
            cooldown: self.cooldown,
            max_keys: self.max_keys,
            count_missing: self.count_missing,
            keys: self.keys.clone(),
            renderer: self.renderer.clone(),
            map: DashMap::new(),
            len: AtomicUsize::new(0),
            next_sweep: AtomicU64::new(nanos(SWEEP_EVERY)),
            last_sweep: AtomicU64::new(0),
            sweeping: AtomicBool::new(false),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    window_start: u64,
    failures: u32,
    blocked_until: u64,
}

impl FailedAuthLayer<DefaultClock> {
    /// 10 failures within a minute block an address for 5 minutes.
    pub fn new() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl Default for FailedAuthLayer<DefaultClock> {
    fn default() -> Self {
        Self::new()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<C: Clock + Clone + Send + Sync + 'static> FailedAuthLayer<C> {
    /// As [`new`](FailedAuthLayer::new), on the given clock (for tests).
    pub fn with_clock(clock: C) -> Self {
        let start = clock.now();
        Self {
            tracker: Arc::new(Tracker {
                clock,
                start,
                threshold: 10,
                window: nanos(Duration::from_secs(60)),
                cooldown: nanos(Duration::from_secs(300)),
                max_keys: super::memory::DEFAULT_MAX_KEYS,
                count_missing: false,
                keys: KeyExtractor::default(),
                renderer: ErrorRenderer::default(),
                map: DashMap::new(),
                len: AtomicUsize::new(0),
                next_sweep: AtomicU64::new(nanos(SWEEP_EVERY)),
                last_sweep: AtomicU64::new(0),
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// The configuration, to change: a layer that shares its tracker with
    /// clones gets a tracker of its own first (copy on write, as
    /// `Arc::make_mut` for the other layers; its failures start from none).
    fn config(&mut self) -> &mut Tracker<C> {
        if Arc::get_mut(&mut self.tracker).is_none() {
            self.tracker = Arc::new(self.tracker.reconfigurable());
        }
        Arc::get_mut(&mut self.tracker).expect("a tracker just made is not shared")
    }

    /// Blocks an address after `failures` refused credentials within
    /// `window` (`failures` at least 1).
    pub fn threshold(mut self, failures: u32, window: Duration) -> Self {
        let c = self.config();
        c.threshold = failures.max(1);
        c.window = nanos(window);
        self
    }

    /// How long a blocked address stays blocked.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.config().cooldown = nanos(cooldown);
        self
    }

    /// The most addresses tracked at once (at least 1).
    pub fn max_keys(mut self, max: usize) -> Self {
        self.config().max_keys = max.max(1);
        self
    }

    /// Whether a request without any credential counts as a failure
    /// (default `false`). Every MCP client's first request carries no
    /// credential (discovery), so counting them lets ten clients behind one
    /// address lock each other, valid credentials included, out for the
    /// cool-down; turn it on only where clients are known to authenticate
    /// from their first request.
    pub fn count_missing_credentials(mut self, on: bool) -> Self {
        self.config().count_missing = on;
        self
    }

    /// Believes forwarding headers from these proxies.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        let c = self.config();
        c.keys = std::mem::take(&mut c.keys).trusted_proxies(proxies);
        self
    }

    /// Renders refusals with a custom renderer.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        self.config().renderer = renderer;
        self
    }

    /// How many addresses are tracked now.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.tracker.len.load(Ordering::Relaxed)
    }

    /// Forgets every failure and lifts every cool-down at once, for this
    /// layer and every clone of it (the services it made included): for an
    /// operator's endpoint or a test, or a developer who locked their own
    /// address out (see the module docs, "Local development").
    pub fn clear(&self) {
        let t = &*self.tracker;
        let mut removed = 0;
        t.map.retain(|_, _| {
            removed += 1;
            false
        });
        t.len.fetch_sub(removed, Ordering::Relaxed);
    }
}

impl<C: Clock> fmt::Debug for FailedAuthLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &*self.tracker;
        f.debug_struct("FailedAuthLayer")
            .field("threshold", &t.threshold)
            .field("window", &Duration::from_nanos(t.window))
            .field("cooldown", &Duration::from_nanos(t.cooldown))
            .field("max_keys", &t.max_keys)
            .finish_non_exhaustive()
    }
}

impl<C: Clock + Send + Sync + 'static> Tracker<C> {
    fn now(&self) -> u64 {
        self.clock.now().duration_since(self.start).as_u64()
    }

    fn key<B>(&self, req: &Request<B>) -> RateLimitKey {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        match peer {
            Some(peer) => RateLimitKey::ip(self.keys.proxies().client_ip(peer, req.headers())),
            None => RateLimitKey::unknown_client(),
        }
    }

    /// How long `key` is still blocked for, if it is.
    fn blocked(&self, key: &RateLimitKey, now: u64) -> Option<Duration> {
        if self.len.load(Ordering::Relaxed) == 0 {
            // Nobody has failed lately: no lookup (the common case).
            return None;
        }
        let until = match self.map.get(key) {
            Some(e) => e.blocked_until,
            None if self.len.load(Ordering::Relaxed) >= self.max_keys => {
                self.map.get(&RateLimitKey::overflow())?.blocked_until
            }
            None => return None,
        };
        (until > now).then(|| Duration::from_nanos(until - now))
    }

    fn record_failure(&self, key: RateLimitKey, now: u64) -> bool {
        let mut entry = match self.map.get_mut(&key) {
            Some(e) => e,
            None => {
                let key = if self.len.load(Ordering::Relaxed) >= self.max_keys {
                    RateLimitKey::overflow()
                } else {
                    key
                };
                self.map.entry(key).or_insert_with(|| {
                    self.len.fetch_add(1, Ordering::Relaxed);
                    Entry {
                        window_start: now,
                        failures: 0,
                        blocked_until: 0,
                    }
                })
            }
        };
        if now >= entry.window_start.saturating_add(self.window) {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures += 1;
        if entry.failures >= self.threshold {
            entry.blocked_until = now.saturating_add(self.cooldown);
            entry.failures = 0;
            entry.window_start = now;
            return true;
        }
        false
    }

    fn maybe_sweep(&self, now: u64) {
        let due = now >= self.next_sweep.load(Ordering::Relaxed)
            || (self.len.load(Ordering::Relaxed) >= self.max_keys
                && now >= self.last_sweep.load(Ordering::Relaxed) + nanos(Duration::from_secs(1)));
        if !due
            || self
                .sweeping
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.last_sweep.store(now, Ordering::Relaxed);
        self.next_sweep
            .store(now + nanos(SWEEP_EVERY), Ordering::Relaxed);
        let mut removed = 0;
        self.map.retain(|_, e| {
            let keep = e.blocked_until > now || now < e.window_start.saturating_add(self.window);
            removed += usize::from(!keep);
            keep
        });
        self.len.fetch_sub(removed, Ordering::Relaxed);
        self.sweeping.store(false, Ordering::Release);
    }

    fn counts(&self, kind: AuthErrorKind) -> bool {
        kind == AuthErrorKind::InvalidToken
            || (self.count_missing && kind == AuthErrorKind::MissingCredential)
    }
}

/// A DPoP refusal that only asks for the server's nonce (RFC 9449 §8): a
/// step of the protocol every client of a server with nonces goes through,
/// after its token and proof were checked, not a failed credential.
fn asks_for_nonce(err: &AuthError) -> bool {
    err.error_code() == "use_dpop_nonce"
}

impl<S, C: Clock> Layer<S> for FailedAuthLayer<C> {
    type Service = FailedAuth<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        FailedAuth {
            inner,
            tracker: self.tracker.clone(),
        }
    }
}

/// The service made by [`FailedAuthLayer`].
pub struct FailedAuth<S, C: Clock = DefaultClock> {
    inner: S,
    tracker: Arc<Tracker<C>>,
}

impl<S: Clone, C: Clock> Clone for FailedAuth<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            tracker: self.tracker.clone(),
        }
    }
}

impl<S: fmt::Debug, C: Clock> fmt::Debug for FailedAuth<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailedAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clock> FailedAuth<S, C> {
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

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for FailedAuth<S, C>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    C: Clock + Send + Sync + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let t = &*self.tracker;
        let now = t.now();
        t.maybe_sweep(now);
        let key = t.key(&req);
        if let Some(wait) = t.blocked(&key, now) {
            let err = AuthError::too_many_failed_authentications(wait).with_request(&req);
            audit::refused(
                "failed_auth",
                &err,
                Principal::from_extensions(req.extensions()),
                req.method(),
                audit::path(req.uri(), req.extensions()),
            );
            return ResponseFuture {
                kind: match refusal::render(&t.renderer, err, req) {
                    refusal::Rendered::Now(response) => Kind::Refused {
                        response: Some(response),
                    },
                    refusal::Rendered::Later(future) => Kind::Rendering { future },
                },
            };
        }
        ResponseFuture {
            kind: Kind::Inner {
                future: self.inner.call(req),
                key: Some(key),
                tracker: self.tracker.clone(),
            },
        }
    }
}

pin_project! {
    /// Response future of [`FailedAuth`].
    pub struct ResponseFuture<F, C: Clock> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C: Clock> {
        Inner { #[pin] future: F, key: Option<RateLimitKey>, tracker: Arc<Tracker<C>> },
        Refused { response: Option<Response> },
        // A refusal reading the request's JSON-RPC id first.
        Rendering { future: refusal::Pending },
    }
}

impl<F, C: Clock> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, C, B, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    C: Clock + Send + Sync + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner {
                future,
                key,
                tracker,
            } => {
                let res = ready!(future.poll(cx))?;
                // A refusal after the credential was verified (the
                // response carries the principal) is not a failed login.
                let failed = res.extensions().get::<Principal>().is_none()
                    && res
                        .extensions()
                        .get::<AuthError>()
                        .is_some_and(|e| tracker.counts(e.kind()) && !asks_for_nonce(e));
                if let (true, Some(key)) = (failed, key.take()) {
                    let client = key.to_string();
                    if tracker.record_failure(key, tracker.now()) {
                        audit::blocked(
                            "failed_auth",
                            &client,
                            Duration::from_nanos(tracker.cooldown),
                        );
                    }
                }
                Poll::Ready(Ok(res.map(Body::new)))
            }
            KindProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            KindProj::Rendering { future } => future.as_mut().poll(cx).map(Ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuring_a_cloned_layer_leaves_the_clone_alone_and_never_panics() {
        let first = FailedAuthLayer::new();
        let second = first
            .clone()
            .threshold(3, Duration::from_secs(1))
            .cooldown(Duration::from_secs(2));
        assert_eq!(
            (second.tracker.threshold, second.tracker.cooldown),
            (3, 2_000_000_000)
        );
        assert_eq!(
            first.tracker.threshold, 10,
            "the clone keeps its configuration"
        );
        assert!(!Arc::ptr_eq(&first.tracker, &second.tracker));
    }
    use crate::api_key::{ApiKey, ApiKeyLayer, ApiKeys};
    use axum::{extract::ConnectInfo, response::IntoResponse};
    use governor::clock::FakeRelativeClock;
    use http::{header, StatusCode};
    use std::{convert::Infallible, net::SocketAddr};
    use tower::{ServiceBuilder, ServiceExt};

    const KEY: &str = "mcp_sk_good-key-0123456789abcdef";

    async fn ok(_req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
        Ok(http::Response::new(Body::from("ok")))
    }

    fn req(peer: &str, key: &str) -> Request<Body> {
        let mut req = Request::get("/")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    async fn send(
        layer: &FailedAuthLayer<FakeRelativeClock>,
        req: Request<Body>,
    ) -> (StatusCode, Option<String>) {
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .layer(ApiKeyLayer::new(
                ApiKeys::new().with(ApiKey::new("good", KEY)),
            ))
            .service_fn(ok);
        let res = svc.oneshot(req).await.unwrap();
        let retry = res
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        (res.status(), retry)
    }

    #[tokio::test]
    async fn guessing_blocks_one_address_for_the_cooldown() {
        let clock = FakeRelativeClock::default();
        let layer = FailedAuthLayer::with_clock(clock.clone())
            .threshold(3, Duration::from_secs(60))
            .cooldown(Duration::from_secs(300));
        let attacker = "203.0.113.66:5000";
        for i in 0..3 {
            let guess = format!("mcp_sk_guess-{i:020}");
            assert_eq!(send(&layer, req(attacker, &guess)).await.0, 401);
        }
        // Blocked now, even with the right key.
        assert_eq!(
            send(&layer, req(attacker, KEY)).await,
            (StatusCode::TOO_MANY_REQUESTS, Some("300".into()))
        );
        // Others are not affected.
        assert_eq!(send(&layer, req("198.51.100.2:1", KEY)).await.0, 200);
        clock.advance(Duration::from_millis(299_500));
        assert_eq!(
            send(&layer, req(attacker, KEY)).await,
            (StatusCode::TOO_MANY_REQUESTS, Some("1".into()))
        );
        clock.advance(Duration::from_millis(500));
        assert_eq!(send(&layer, req(attacker, KEY)).await.0, 200);
    }

    #[tokio::test]
    async fn clear_lifts_every_cooldown_for_every_clone() {
        let layer = FailedAuthLayer::with_clock(FakeRelativeClock::default())
            .threshold(1, Duration::from_secs(60));
        let clone = layer.clone();
        for peer in ["192.0.2.81:1", "192.0.2.82:1"] {
            assert_eq!(
                send(&layer, req(peer, "mcp_sk_wrong-000000000000")).await.0,
                401
            );
            assert_eq!(send(&layer, req(peer, KEY)).await.0, 429);
        }
        assert_eq!(layer.tracked(), 2);
        clone.clear();
        assert_eq!(layer.tracked(), 0);
        for peer in ["192.0.2.81:1", "192.0.2.82:1"] {
            assert_eq!(send(&layer, req(peer, KEY)).await.0, 200);
        }
    }

    /// The cool-down is told apart from a quota: its own `error` code and
    /// a message naming the cool-down and the seconds left (issue 17,
    /// item 4; both used to say `rate_limited` / "rate limit exceeded").
    #[tokio::test]
    async fn the_cooldown_names_itself_and_the_time_left() {
        use http_body_util::BodyExt;
        let clock = FakeRelativeClock::default();
        let layer = FailedAuthLayer::with_clock(clock.clone())
            .threshold(1, Duration::from_secs(60))
            .cooldown(Duration::from_secs(300));
        let peer = "192.0.2.77:1";
        assert_eq!(
            send(&layer, req(peer, "mcp_sk_wrong-000000000000")).await.0,
            401
        );
        clock.advance(Duration::from_secs(60));
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .layer(ApiKeyLayer::new(
                ApiKeys::new().with(ApiKey::new("good", KEY)),
            ))
            .service_fn(ok);
        let res = svc.oneshot(req(peer, KEY)).await.unwrap();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[header::RETRY_AFTER], "240");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "too_many_failed_authentications",
                "error_description": "too many failed authentications from this client address: it is in a cool-down for 240 more seconds",
                "retry_after": 240,
            })
        );
        // A quota's refusal keeps its own code.
        assert_eq!(
            AuthError::rate_limited(Duration::from_secs(1))
                .kind()
                .code(),
            "rate_limited"
        );
    }

    #[tokio::test]
    async fn refusals_of_a_verified_principal_are_not_counted() {
        // An authorization layer refusing a good credential puts the
        // principal into the response; that is not a failed login.
        let layer = FailedAuthLayer::new().threshold(2, Duration::from_secs(60));
        let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(
            |req: Request<Body>| async move {
                let verified = req.headers().contains_key("x-verified");
                let mut res =
                    AuthError::invalid_token("this call requires an API key").into_response();
                if verified {
                    res.extensions_mut()
                        .insert(Principal::new(crate::AuthScheme::Jwt, "alice"));
                }
                Ok::<_, Infallible>(res)
            },
        );
        let send = |verified: bool| {
            let svc = svc.clone();
            async move {
                let mut r = req("192.0.2.20:1", KEY);
                if verified {
                    r.headers_mut()
                        .insert("x-verified", http::HeaderValue::from_static("1"));
                }
                svc.oneshot(r).await.unwrap().status()
            }
        };
        for _ in 0..5 {
            assert_eq!(send(true).await, 401);
        }
        assert_eq!(layer.tracked(), 0);
        // Without the principal, the same refusal counts.
        assert_eq!(send(false).await, 401);
        assert_eq!(send(false).await, 401);
        assert_eq!(send(true).await, 429);
    }

    #[tokio::test]
    async fn failures_outside_the_window_do_not_add_up() {
        let clock = FakeRelativeClock::default();
        let layer =
            FailedAuthLayer::with_clock(clock.clone()).threshold(2, Duration::from_secs(10));
        let peer = "192.0.2.9:1";
        assert_eq!(
            send(&layer, req(peer, "mcp_sk_wrong-000000000000")).await.0,
            401
        );
        clock.advance(Duration::from_secs(11));
        assert_eq!(
            send(&layer, req(peer, "mcp_sk_wrong-000000000000")).await.0,
            401
        );
        assert_eq!(send(&layer, req(peer, KEY)).await.0, 200);
        // The sweep forgets addresses whose window is over.
        clock.advance(Duration::from_secs(30));
        assert_eq!(send(&layer, req("192.0.2.10:1", KEY)).await.0, 200);
        assert_eq!(layer.tracked(), 0);
    }

    #[tokio::test]
    async fn bounded_memory_with_many_addresses() {
        let clock = FakeRelativeClock::default();
        let layer = FailedAuthLayer::with_clock(clock.clone())
            .threshold(2, Duration::from_secs(60))
            .max_keys(100);
        let tracked = "192.0.2.1:1";
        assert_eq!(
            send(&layer, req(tracked, "mcp_sk_wrong-000000000000"))
                .await
                .0,
            401
        );
        for i in 0..1000u32 {
            let peer = SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + i), 1)).to_string();
            send(&layer, req(&peer, "mcp_sk_wrong-000000000000")).await;
        }
        assert!(layer.tracked() <= 101, "{}", layer.tracked());
        // The tracked address kept its own count: one more failure blocks it.
        assert_eq!(
            send(&layer, req(tracked, "mcp_sk_wrong-000000000000"))
                .await
                .0,
            401
        );
        assert_eq!(send(&layer, req(tracked, KEY)).await.0, 429);
    }

    fn anonymous(peer: &str) -> Request<Body> {
        let mut req = Request::get("/").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    async fn send_required(layer: &FailedAuthLayer, req: Request<Body>) -> StatusCode {
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .layer(ApiKeyLayer::new(
                ApiKeys::new().with(ApiKey::new("good", KEY)),
            ))
            .service_fn(ok);
        svc.oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn missing_credentials_are_not_counted_by_default() {
        // Discovery: every MCP client's first request carries nothing.
        let layer = FailedAuthLayer::new().threshold(3, Duration::from_secs(60));
        let peer = "192.0.2.30:1";
        for _ in 0..10 {
            assert_eq!(send_required(&layer, anonymous(peer)).await, 401);
        }
        assert_eq!(layer.tracked(), 0);
        assert_eq!(send_required(&layer, req(peer, KEY)).await, 200);
    }

    #[tokio::test]
    async fn missing_credentials_count_when_asked() {
        let layer = FailedAuthLayer::new()
            .threshold(3, Duration::from_secs(60))
            .count_missing_credentials(true);
        let peer = "192.0.2.31:1";
        for _ in 0..3 {
            assert_eq!(send_required(&layer, anonymous(peer)).await, 401);
        }
        assert_eq!(send_required(&layer, req(peer, KEY)).await, 429);
    }
}
