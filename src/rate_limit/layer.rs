//! [`RateLimitLayer`], its service [`RateLimit`] and [`ResponseFuture`].

use std::{
    borrow::Cow,
    fmt,
    future::Future,
    num::NonZeroU32,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{ready, Context, Poll, Waker},
    time::{Duration, Instant},
};

use arc_swap::ArcSwapOption;
use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::{request::Parts, HeaderValue, Request};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    headers,
    key::{KeyExtractor, RateLimitKey, TrustedProxies},
    memory::MemoryStore,
    quota::Quota,
    store::{Decision, RateLimitStore, StoreError},
};
use crate::{
    audit,
    error::{AuthError, ErrorRenderer},
    future::BoxError,
    principal::Principal,
};

/// What the layer does with a call when its store cannot answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailMode {
    /// Let the call through and emit a `degraded` audit event (at most one
    /// a second). The default, as Envoy and Kong do: a rate limiter that is
    /// down should not take the service down with it.
    #[default]
    Open,
    /// Refuse the call with 503 and `Retry-After: 1`.
    Closed,
}

type OverrideFn = dyn Fn(&Principal) -> Option<Quota> + Send + Sync;
type AnonymousFn = dyn Fn() -> Option<Quota> + Send + Sync;
type CostFn = dyn Fn(&Parts) -> u32 + Send + Sync;

/// A [`Layer`] that throttles calls per principal (per client address when
/// anonymous). See the [module docs](super).
#[must_use]
pub struct RateLimitLayer<St = MemoryStore> {
    config: Arc<Config>,
    store: St,
}

impl<St: Clone> Clone for RateLimitLayer<St> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            store: self.store.clone(),
        }
    }
}

#[derive(Clone)]
struct Config {
    quota: Quota,
    anonymous: Option<Quota>,
    /// The anonymous quota read at each request (a policy's), before
    /// `anonymous`.
    anonymous_from: Option<Arc<AnonymousFn>>,
    overrides: Option<Arc<OverrideFn>>,
    cost: Option<Arc<CostFn>>,
    keys: KeyExtractor,
    headers_on_allowed: bool,
    policy: String,
    /// `RateLimit-Policy` of the default and anonymous quotas, made once.
    policy_values: [Option<(Quota, HeaderValue)>; 2],
    /// `RateLimit-Policy` of the last quotas met at run time.
    recent_values: Arc<RecentValues>,
    fail_mode: FailMode,
    renderer: ErrorRenderer,
    degraded: Arc<DegradedLog>,
}

/// The `RateLimit-Policy` values of the last few quotas that are neither
/// the layer's nor its anonymous one (a policy's figures, overrides), so
/// that a figure read from a policy at each request is formatted once, not
/// at each request. A quota met for the first time takes the oldest slot.
#[derive(Default)]
struct RecentValues {
    slots: [ArcSwapOption<(Quota, HeaderValue)>; 4],
    next: AtomicUsize,
}

impl RecentValues {
    fn get(&self, quota: Quota) -> Option<HeaderValue> {
        self.slots.iter().find_map(|slot| {
            let entry = slot.load();
            let (q, v) = &**entry.as_ref()?;
            (*q == quota).then(|| v.clone())
        })
    }

    fn put(&self, quota: Quota, value: HeaderValue) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[i].store(Some(Arc::new((quota, value))));
    }
}

/// Emits at most one `degraded` event a second.
#[derive(Debug)]
struct DegradedLog {
    epoch: Instant,
    last: AtomicU64,
}

impl DegradedLog {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn report(&self, err: &StoreError, mode: FailMode) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1000;
        let last = self.last.load(Ordering::Relaxed);
        if now >= last + 1000
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            audit::degraded(
                "rate_limit",
                &format!(
                    "rate-limit store unavailable, failing {}: {err}",
                    if mode == FailMode::Open {
                        "open"
                    } else {
                        "closed"
                    }
                ),
            );
        }
    }
}

impl RateLimitLayer<MemoryStore> {
    /// Limits each principal (each client address when anonymous) to
    /// `quota`, in memory.
    pub fn per_principal(quota: Quota) -> Self {
        Self::with_store(quota, MemoryStore::new())
    }
}

#[cfg(feature = "mcp")]
impl RateLimitLayer<MemoryStore> {
    /// The limiter of a [`SharedPolicy`](crate::mcp::SharedPolicy)'s
    /// `[rate_limit]` table, in memory (`.store(..)` for another store):
    /// each principal's quota is the policy's `per_minute` (else `quota`),
    /// an anonymous client's its `anonymous_per_minute` (else
    /// [`anonymous`](Self::anonymous)'s, else `quota`), and a call of a
    /// tool with a `costs` entry costs that (a batch, the sum over its
    /// calls). Each is read from the policy in force at each request (one
    /// `arc-swap` load, no allocation), so a reload changes them all.
    ///
    /// Put it inside [`McpPolicyLayer`](crate::mcp::McpPolicyLayer), which
    /// leaves the inspected call in the request for the costs.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::{McpPolicy, SharedPolicy};
    /// use tower_mcp_auth::rate_limit::{Quota, RateLimitLayer};
    ///
    /// let policy = SharedPolicy::new(McpPolicy::from_json(r#"{ "rate_limit": {
    ///     "per_minute": 30, "anonymous_per_minute": 5, "costs": { "generate_report": 10 } } }"#)?);
    /// let limiter = RateLimitLayer::from_policy(&policy, Quota::per_minute(100));
    /// # let _ = limiter;
    /// # Ok::<(), tower_mcp_auth::ConfigError>(())
    /// ```
    pub fn from_policy(policy: &crate::mcp::SharedPolicy, quota: Quota) -> Self {
        let per_minute = |n: NonZeroU32| Quota::per_minute(n.get());
        let (principals, anonymous, costs) = (policy.clone(), policy.clone(), policy.clone());
        let mut layer = Self::per_principal(quota)
            .override_quota(move |_| principals.with_rate_limits(|l| l.per_minute.map(per_minute)))
            .cost(move |parts| {
                parts
                    .extensions
                    .get::<crate::mcp::McpRequest>()
                    .map_or(1, |req| costs.with_rate_limits(|l| l.cost(req)))
            });
        Arc::make_mut(&mut layer.config).anonymous_from = Some(Arc::new(move || {
            anonymous.with_rate_limits(|l| l.anonymous_per_minute.map(per_minute))
        }));
        layer
    }
}

impl<St: RateLimitStore> RateLimitLayer<St> {
    /// Limits each key to `quota` in the given store.
    pub fn with_store(quota: Quota, store: St) -> Self {
        Self {
            config: Arc::new(Config {
                quota,
                anonymous: None,
                anonymous_from: None,
                overrides: None,
                cost: None,
                keys: KeyExtractor::default(),
                headers_on_allowed: true,
                policy: "default".into(),
                policy_values: [None, None],
                recent_values: Arc::default(),
                fail_mode: FailMode::default(),
                renderer: ErrorRenderer::default(),
                degraded: Arc::new(DegradedLog::new()),
            }),
            store,
        }
        .refresh()
    }

    /// Makes the cached `RateLimit-Policy` values again.
    fn refresh(mut self) -> Self {
        let config = Arc::make_mut(&mut self.config);
        let value = |q: Quota| {
            headers::policy_value(&config.policy, &Decision::allow(q, 0, Duration::ZERO))
                .map(|v| (q, v))
        };
        config.policy_values = [value(config.quota), config.anonymous.and_then(value)];
        config.recent_values = Arc::default();
        self
    }

    /// Uses another store (a `MemoryStore` on a test clock, a `RedisStore`).
    pub fn store<T: RateLimitStore>(self, store: T) -> RateLimitLayer<T> {
        RateLimitLayer {
            config: self.config,
            store,
        }
    }

    /// A quota per principal: when `f` returns `Some`, that quota replaces
    /// the default for this caller (from an API key's name, a claim, …).
    /// On a [`from_policy`](Self::from_policy) layer, it replaces the
    /// policy's `per_minute`.
    pub fn override_quota<F>(mut self, f: F) -> Self
    where
        F: Fn(&Principal) -> Option<Quota> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).overrides = Some(Arc::new(f));
        self
    }

    /// The quota of anonymous requests (default: the layer's quota). On a
    /// [`from_policy`](Self::from_policy) layer, the policy's
    /// `anonymous_per_minute` comes first when it has one.
    pub fn anonymous(mut self, quota: Quota) -> Self {
        Arc::make_mut(&mut self.config).anonymous = Some(quota);
        self.refresh()
    }

    /// The cost of a request in quota units, replacing the default (0 is
    /// taken as 1; more than the burst is taken as the whole burst). The
    /// function sees the request's [`Parts`], extensions included, so a
    /// call summary put there by an earlier layer (the MCP inspect step's
    /// [`McpRequest`](crate::mcp::McpRequest)) can price a `tools/call` by
    /// tool name.
    ///
    /// **The default** is one unit per JSON-RPC message: a request that
    /// [`McpPolicyLayer`](crate::mcp::McpPolicyLayer) (outside this layer)
    /// inspected costs as many units as its body holds messages, so a
    /// batch of 40 calls costs 40, as 40 requests would; any other request
    /// (a GET stream, a DELETE, a plain route, or no MCP inspection in
    /// front) costs 1. rmcp refuses batches with 415 (MCP 2025-06-18 took
    /// them out of the protocol), so with rmcp a batch only ever costs its
    /// sender; a server that does run batches is not worked 40 times for
    /// one unit.
    ///
    /// ```
    /// use http::request::Parts;
    /// use tower_mcp_auth::mcp::McpRequest;
    /// use tower_mcp_auth::rate_limit::{Quota, RateLimitLayer};
    ///
    /// // `tools/call` of `expensive_report` costs 10, every other message 1.
    /// let limits = RateLimitLayer::per_principal(Quota::per_minute(100)).cost(|parts: &Parts| {
    ///     parts.extensions.get::<McpRequest>().map_or(1, |r| {
    ///         r.calls()
    ///             .iter()
    ///             .map(|c| match c.target().map(|t| t.name()) {
    ///                 Some("expensive_report") => 10,
    ///                 _ => 1,
    ///             })
    ///             .sum()
    ///     })
    /// });
    /// # let _ = limits;
    /// ```
    pub fn cost<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> u32 + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).cost = Some(Arc::new(f));
        self
    }

    /// A custom key function; when it returns `None` the default key is
    /// used (principal, else client address).
    pub fn key_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<RateLimitKey> + Send + Sync + 'static,
    {
        let config = Arc::make_mut(&mut self.config);
        config.keys = std::mem::take(&mut config.keys).custom(f);
        self
    }

    /// Believes `X-Forwarded-For` (or `Forwarded`) from these proxies when
    /// keying anonymous requests by client address.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.keys = std::mem::take(&mut config.keys).trusted_proxies(proxies);
        self
    }

    /// Groups anonymous IPv6 clients by their first `bits` bits (default
    /// [`DEFAULT_IPV6_PREFIX`](super::DEFAULT_IPV6_PREFIX), a /64: one
    /// host with a /64 is one client, not 2^64); see
    /// [`KeyExtractor::ipv6_prefix`].
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.keys = std::mem::take(&mut config.keys).ipv6_prefix(bits);
        self
    }

    /// Whether allowed responses carry `RateLimit-Policy` / `RateLimit`
    /// (default `true`; refusals always carry them).
    pub fn headers_on_allowed(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).headers_on_allowed = on;
        self
    }

    /// The policy name in the headers (default `default`).
    pub fn policy_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        Arc::make_mut(&mut self.config).policy = headers::sanitize(&name.into());
        self.refresh()
    }

    /// What to do when the store cannot answer (default [`FailMode::Open`]).
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        Arc::make_mut(&mut self.config).fail_mode = mode;
        self
    }

    /// Renders refusals with a custom renderer.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        Arc::make_mut(&mut self.config).renderer = renderer;
        self
    }

    /// The layer's store.
    pub fn get_store(&self) -> &St {
        &self.store
    }
}

impl<St: fmt::Debug> fmt::Debug for RateLimitLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("quota", &self.config.quota)
            .field("anonymous", &self.config.anonymous)
            .field("keys", &self.config.keys)
            .field("fail_mode", &self.config.fail_mode)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<S, St: Clone> Layer<S> for RateLimitLayer<St> {
    type Service = RateLimit<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            config: self.config.clone(),
            store: self.store.clone(),
        }
    }
}

/// The service made by [`RateLimitLayer`].
pub struct RateLimit<S, St = MemoryStore> {
    inner: S,
    config: Arc<Config>,
    store: St,
}

impl<S: Clone, St: Clone> Clone for RateLimit<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            store: self.store.clone(),
        }
    }
}

impl<S: fmt::Debug, St: fmt::Debug> fmt::Debug for RateLimit<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<S, St> RateLimit<S, St> {
    crate::macros::inner_service_accessors!(S);
}

impl Config {
    fn quota_for(&self, principal: Option<&Principal>) -> Quota {
        match principal {
            Some(p) => self
                .overrides
                .as_ref()
                .and_then(|f| f(p))
                .unwrap_or(self.quota),
            None => self
                .anonymous_from
                .as_ref()
                .and_then(|f| f())
                .or(self.anonymous)
                .unwrap_or(self.quota),
        }
    }

    fn refuse<B>(&self, err: AuthError, req: &Request<B>, decision: Option<&Decision>) -> Response {
        let err = err.with_request_context(req.extensions());
        audit::refused(
            "rate_limit",
            &err,
            Principal::from_extensions(req.extensions()),
            req.method(),
            audit::path(req.uri(), req.extensions()),
        );
        let mut response = self.renderer.render(err);
        if let Some(d) = decision {
            self.insert_headers(response.headers_mut(), d);
        }
        response
    }

    fn insert_headers(&self, map: &mut http::HeaderMap, d: &Decision) {
        let quota = d.quota();
        let cached = (self.policy_values.iter().flatten())
            .find(|(q, _)| *q == quota)
            .map(|(_, v)| v.clone())
            .or_else(|| self.recent_values.get(quota));
        let made = || {
            let v = headers::policy_value(&self.policy, d)?;
            self.recent_values.put(quota, v.clone());
            Some(v)
        };
        if let Some(v) = cached.or_else(made) {
            map.insert(headers::RATELIMIT_POLICY.clone(), v);
            headers::insert_state(map, &self.policy, d);
        }
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, St>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone,
    St: RateLimitStore,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, S::Future, St::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let (parts, body) = req.into_parts();
        let principal = Principal::from_parts(&parts);
        if principal.is_none() {
            crate::misorder::Reader::RateLimit.check(&parts.extensions, &parts.headers);
        }
        let key = config.keys.extract(&parts);
        let quota = config.quota_for(principal);
        let cost = config.cost.as_ref().map_or_else(
            || default_cost(&parts),
            |f| NonZeroU32::new(f(&parts)).unwrap_or(NonZeroU32::MIN),
        );
        let mut check = self.store.check(&key, quota, cost);
        let req = Request::from_parts(parts, body);
        // A store that answers at once (the memory store) is decided here,
        // calling the inner service that `poll_ready` readied, so the
        // request is neither parked in the future nor the service cloned.
        // Polling once with a no-op waker is fine: a pending check is
        // polled again, with the caller's waker, by the response future,
        // which then owns a ready clone of the service.
        let state = match Pin::new(&mut check).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(outcome) => decide(config, outcome, req, &mut self.inner).with_check(),
            Poll::Pending => {
                let ready = self.inner.clone();
                State::Checking {
                    pending: Some(Box::new(Pending {
                        check,
                        inner: std::mem::replace(&mut self.inner, ready),
                        req,
                    })),
                }
            }
        };
        ResponseFuture {
            state,
            config: self.config.clone(),
        }
    }
}

/// The cost of a request without a [`cost`](RateLimitLayer::cost)
/// function: one unit per JSON-RPC message the MCP inspect step found
/// (a batch of `n` costs `n`), else 1.
fn default_cost(parts: &Parts) -> NonZeroU32 {
    #[cfg(feature = "mcp")]
    if let Some(request) = parts.extensions.get::<crate::mcp::McpRequest>() {
        let n = u32::try_from(request.calls().len()).unwrap_or(u32::MAX);
        return NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    }
    #[cfg(not(feature = "mcp"))]
    let _ = parts;
    NonZeroU32::MIN
}

/// What a check's outcome makes of the call: the inner service's future,
/// or a refusal.
fn decide<S, B, ResBody>(
    config: &Config,
    outcome: Result<Decision, StoreError>,
    req: Request<B>,
    inner: &mut S,
) -> State<S, B, S::Future, ()>
where
    S: Service<Request<B>, Response = http::Response<ResBody>>,
{
    let decision = match outcome {
        Ok(d) if d.is_allowed() => Some(d),
        Ok(d) => {
            let err = AuthError::rate_limited(d.retry_after());
            return State::Refused {
                response: Some(config.refuse(err, &req, Some(&d))),
            };
        }
        Err(e) if config.fail_mode == FailMode::Open => {
            config.degraded.report(&e, FailMode::Open);
            None
        }
        Err(e) => {
            config.degraded.report(&e, FailMode::Closed);
            let err = AuthError::unavailable("the rate-limit store is unavailable")
                .with_retry_after(Duration::from_secs(1));
            return State::Refused {
                response: Some(config.refuse(err, &req, None)),
            };
        }
    };
    State::Running {
        future: inner.call(req),
        decision: decision.filter(|_| config.headers_on_allowed),
    }
}

impl<S, B, F, C> State<S, B, F, C> {
    /// The same state with another check-future type (for states that hold
    /// none).
    fn with_check<C2>(self) -> State<S, B, F, C2> {
        match self {
            State::Running { future, decision } => State::Running { future, decision },
            State::Refused { response } => State::Refused { response },
            State::Checking { .. } | State::Done => State::Done,
        }
    }
}

pin_project! {
    /// Response future of [`RateLimit`]: the store's check (when it did
    /// not answer at once), then the inner service's response (with the
    /// rate-limit headers) or a refusal.
    pub struct ResponseFuture<S, B, F, CF> {
        #[pin]
        state: State<S, B, F, CF>,
        config: Arc<Config>,
    }
}

/// A check the store did not answer at once, with the request and the
/// service it decides on. Boxed: the future of a call the store answers at
/// once (the memory store's, every call) then carries no request, and
/// every layer above moves a few hundred bytes less.
struct Pending<S, B, CF> {
    check: CF,
    inner: S,
    req: Request<B>,
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F, CF> {
        Checking { pending: Option<Box<Pending<S, B, CF>>> },
        Running { #[pin] future: F, decision: Option<Decision> },
        Refused { response: Option<Response> },
        Done,
    }
}

impl<S, B, F, CF> fmt::Debug for ResponseFuture<S, B, F, CF> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, F, CF, ResBody> Future for ResponseFuture<S, B, F, CF>
where
    S: Service<Request<B>, Response = http::Response<ResBody>, Future = F>,
    F: Future<Output = Result<http::Response<ResBody>, S::Error>>,
    CF: Future<Output = Result<Decision, StoreError>> + Unpin,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            let config = &**this.config;
            match this.state.as_mut().project() {
                StateProj::Checking { pending } => {
                    let waiting = pending.as_mut().expect("polled after completion");
                    let outcome = ready!(Pin::new(&mut waiting.check).poll(cx));
                    let Pending { mut inner, req, .. } =
                        *pending.take().expect("polled after completion");
                    this.state
                        .set(decide(config, outcome, req, &mut inner).with_check());
                }
                StateProj::Running { future, decision } => {
                    let result = ready!(future.poll(cx));
                    let decision = decision.take();
                    this.state.set(State::Done);
                    return Poll::Ready(result.map(|res| {
                        let mut res = res.map(Body::new);
                        if let Some(d) = decision {
                            config.insert_headers(res.headers_mut(), &d);
                        }
                        res
                    }));
                }
                StateProj::Refused { response } => {
                    let response = response.take().expect("polled after completion");
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Done => panic!("polled after completion"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{jsonrpc_id::JsonRpcId, principal::AuthScheme, rate_limit::TrustedProxies};
    use axum::extract::ConnectInfo;
    use governor::clock::FakeRelativeClock;
    use http::{header, HeaderMap, StatusCode};
    use http_body_util::BodyExt;
    use std::{convert::Infallible, net::SocketAddr};
    use tower::{ServiceBuilder, ServiceExt};

    async fn echo(_req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
        Ok(http::Response::new(Body::from("ok")))
    }

    fn layer(
        q: Quota,
    ) -> (
        FakeRelativeClock,
        RateLimitLayer<MemoryStore<FakeRelativeClock>>,
    ) {
        let clock = FakeRelativeClock::default();
        let layer = RateLimitLayer::per_principal(q).store(MemoryStore::with_clock(clock.clone()));
        (clock, layer)
    }

    fn as_user(name: &str) -> Request<Body> {
        let mut req = Request::post("/mcp").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::ApiKey, name));
        req
    }

    fn from_peer(peer: &str, xff: Option<&str>) -> Request<Body> {
        let mut b = Request::post("/mcp");
        if let Some(x) = xff {
            b = b.header("x-forwarded-for", x);
        }
        let mut req = b.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    async fn send<St: RateLimitStore>(
        layer: &RateLimitLayer<St>,
        req: Request<Body>,
    ) -> (StatusCode, HeaderMap, String) {
        let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(echo);
        let res = svc.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn hundred_and_first_call_is_429_for_one_principal_only() {
        let (_, layer) = layer(Quota::per_minute(100));
        for i in 0..100 {
            let (status, headers, _) = send(&layer, as_user("alice")).await;
            assert_eq!(status, 200, "call {i}");
            assert_eq!(headers["ratelimit-policy"], r#""default";q=100;w=60"#);
            let t = (i + 1) * 6 / 10 + u32::from((i + 1) * 6 % 10 != 0);
            assert_eq!(
                headers["ratelimit"],
                format!(r#""default";r={};t={t}"#, 99 - i)
            );
        }
        let mut req = as_user("alice");
        req.extensions_mut().insert(JsonRpcId::new(
            &serde_json::value::RawValue::from_string("42".into()).unwrap(),
        ));
        let (status, headers, body) = send(&layer, req).await;
        assert_eq!(status, 429);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(headers["ratelimit"], r#""default";r=0;t=60"#);
        assert_eq!(headers["ratelimit-policy"], r#""default";q=100;w=60"#);
        assert_eq!(
            body,
            r#"{"jsonrpc":"2.0","id":42,"error":{"code":-32029,"message":"rate limit exceeded","data":{"error":"rate_limited","error_description":"rate limit exceeded","retry_after":1}}}"#
        );
        let (status, _, _) = send(&layer, as_user("bob")).await;
        assert_eq!(status, 200);
        // Same subject, other scheme: another caller.
        let mut req = Request::post("/mcp").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::Jwt, "alice"));
        assert_eq!(send(&layer, req).await.0, 200);
    }

    #[tokio::test]
    async fn retry_after_is_rounded_up() {
        // 7 per minute: one every 8.571 s.
        let (clock, layer) = layer(Quota::per_minute(7).burst(1));
        assert_eq!(send(&layer, as_user("a")).await.0, 200);
        let (status, headers, _) = send(&layer, as_user("a")).await;
        assert_eq!(status, 429);
        assert_eq!(headers[header::RETRY_AFTER], "9");
        clock.advance(Duration::from_millis(8_571));
        let (_, headers, _) = send(&layer, as_user("a")).await;
        assert_eq!(headers[header::RETRY_AFTER], "1", "1 ns left is still 1 s");
        clock.advance(Duration::from_millis(1));
        assert_eq!(send(&layer, as_user("a")).await.0, 200);
    }

    #[tokio::test]
    async fn headers_on_allowed_can_be_turned_off() {
        let (_, layer) = layer(Quota::per_hour(1));
        let layer = layer.headers_on_allowed(false).policy_name("per-user");
        let (status, headers, _) = send(&layer, as_user("a")).await;
        assert_eq!(status, 200);
        assert!(headers.get("ratelimit").is_none());
        let (status, headers, _) = send(&layer, as_user("a")).await;
        assert_eq!(status, 429);
        assert_eq!(headers["ratelimit-policy"], r#""per-user";q=1;w=3600"#);
    }

    /// What the MCP inspect step will put into the extensions; any type works.
    #[derive(Clone)]
    struct ToolCall(&'static str);

    #[tokio::test]
    async fn cost_hook_prices_calls_from_extensions() {
        let (_, layer) = layer(Quota::per_minute(20));
        let layer = layer.cost(|parts: &Parts| match parts.extensions.get::<ToolCall>() {
            Some(ToolCall("expensive_report")) => 10,
            Some(_) => 1,
            None => 0, // taken as 1
        });
        let call = |tool: Option<&'static str>| {
            let mut req = as_user("a");
            if let Some(t) = tool {
                req.extensions_mut().insert(ToolCall(t));
            }
            req
        };
        let (s, h, _) = send(&layer, call(Some("expensive_report"))).await;
        assert_eq!(
            (s, h["ratelimit"].to_str().unwrap()),
            (StatusCode::OK, r#""default";r=10;t=30"#)
        );
        assert_eq!(send(&layer, call(None)).await.0, 200);
        assert_eq!(send(&layer, call(Some("echo"))).await.0, 200);
        // 8 left: another report (10) is refused, a cheap call is not.
        let (s, h, _) = send(&layer, call(Some("expensive_report"))).await;
        assert_eq!(s, 429);
        assert_eq!(h[header::RETRY_AFTER], "6");
        assert_eq!(send(&layer, call(Some("echo"))).await.0, 200);
    }

    #[tokio::test]
    async fn overrides_and_anonymous_quota() {
        let (_, layer) = layer(Quota::per_hour(1));
        let layer = layer
            .override_quota(|p| (p.subject() == Some("vip")).then(|| Quota::per_hour(3)))
            .anonymous(Quota::per_hour(2));
        for _ in 0..3 {
            assert_eq!(send(&layer, as_user("vip")).await.0, 200);
        }
        assert_eq!(send(&layer, as_user("vip")).await.0, 429);
        assert_eq!(send(&layer, as_user("pleb")).await.0, 200);
        assert_eq!(send(&layer, as_user("pleb")).await.0, 429);
        for _ in 0..2 {
            assert_eq!(send(&layer, from_peer("192.0.2.1:1", None)).await.0, 200);
        }
        let (s, h, _) = send(&layer, from_peer("192.0.2.1:2", None)).await;
        assert_eq!(s, 429);
        assert_eq!(h["ratelimit-policy"], r#""default";q=2;w=3600"#);
    }

    /// `from_policy`: each principal's quota, the anonymous quota and the
    /// tools' costs are the policy's in force, swap after swap; the base
    /// quota where the policy names none.
    #[cfg(feature = "mcp")]
    #[tokio::test]
    async fn from_policy_follows_the_policy_in_force() {
        use crate::mcp::{McpPolicy, McpRequest, SharedPolicy};
        let policy = SharedPolicy::new(McpPolicy::from_json("{}").unwrap());
        let layer = RateLimitLayer::from_policy(&policy, Quota::per_hour(1))
            .store(MemoryStore::with_clock(FakeRelativeClock::default()));
        let report = |req: Request<Body>| {
            let (mut parts, body) = req.into_parts();
            let call =
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"report"}}"#;
            parts.extensions.insert(McpRequest::parse(call).unwrap());
            Request::from_parts(parts, body)
        };
        // No figures: the base quota for everyone, 1 unit a call.
        assert_eq!(send(&layer, as_user("a")).await.0, 200);
        assert_eq!(send(&layer, as_user("a")).await.0, 429);
        assert_eq!(send(&layer, from_peer("192.0.2.1:1", None)).await.0, 200);
        assert_eq!(send(&layer, from_peer("192.0.2.1:1", None)).await.0, 429);

        policy.replace(
            McpPolicy::from_json(
                r#"{"rate_limit":{"per_minute":4,"anonymous_per_minute":2,"costs":{"report":3}}}"#,
            )
            .unwrap(),
        );
        let (s, h, _) = send(&layer, report(as_user("b"))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["ratelimit-policy"], r#""default";q=4;w=60"#);
        assert!(h["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with(r#""default";r=1;"#));
        assert_eq!(
            send(&layer, report(as_user("b"))).await.0,
            429,
            "3 > 1 left"
        );
        assert_eq!(send(&layer, as_user("b")).await.0, 200);
        for want in [200, 200, 429] {
            let (s, h, _) = send(&layer, from_peer("192.0.2.2:1", None)).await;
            assert_eq!(s, want);
            assert_eq!(h["ratelimit-policy"], r#""default";q=2;w=60"#);
        }
    }

    /// Issue 23, item 1: the anonymous quota of an IPv6 client is its
    /// /64's (configurable), so a host cannot take a fresh quota from each
    /// of its 2^64 addresses.
    #[tokio::test]
    async fn anonymous_ipv6_clients_share_their_prefixs_quota() {
        let (_, layer) = layer(Quota::per_hour(2));
        for i in 1..=2 {
            let peer = format!("[2001:db8:7:1::{i}]:1");
            assert_eq!(send(&layer, from_peer(&peer, None)).await.0, 200);
        }
        let (s, _, _) = send(&layer, from_peer("[2001:db8:7:1:ffff::3]:1", None)).await;
        assert_eq!(s, 429, "the same /64");
        assert_eq!(
            send(&layer, from_peer("[2001:db8:7:2::1]:1", None)).await.0,
            200,
            "another /64"
        );
        // A /56 puts both /64s in one bucket.
        let (_, layer) = self::layer(Quota::per_hour(2));
        let layer = layer.ipv6_prefix(56);
        assert_eq!(
            send(&layer, from_peer("[2001:db8:7:1::1]:1", None)).await.0,
            200
        );
        assert_eq!(
            send(&layer, from_peer("[2001:db8:7:2::1]:1", None)).await.0,
            200
        );
        assert_eq!(
            send(&layer, from_peer("[2001:db8:7:3::1]:1", None)).await.0,
            429
        );
    }

    #[tokio::test]
    async fn spoofed_forwarded_for_does_not_evade_the_limit() {
        let (_, layer) = layer(Quota::per_hour(2));
        // Direct client: the header is ignored.
        for i in 0..2 {
            let spoof = format!("10.0.0.{i}");
            assert_eq!(
                send(&layer, from_peer("198.51.100.1:1", Some(&spoof)))
                    .await
                    .0,
                200
            );
        }
        assert_eq!(
            send(&layer, from_peer("198.51.100.1:1", Some("10.9.9.9")))
                .await
                .0,
            429
        );
        // Behind a trusted proxy: the client may prepend anything, the
        // proxy's right-most entry decides.
        let layer = layer.trusted_proxies(TrustedProxies::new(["127.0.0.1"]).unwrap());
        for i in 0..5 {
            let xff = format!("1.1.1.{i}, 203.0.113.5");
            let want = if i < 2 { 200 } else { 429 };
            assert_eq!(
                send(&layer, from_peer("127.0.0.1:9", Some(&xff))).await.0,
                want,
                "{i}"
            );
        }
        // Another real client behind the proxy is not affected.
        assert_eq!(
            send(&layer, from_peer("127.0.0.1:9", Some("203.0.113.6")))
                .await
                .0,
            200
        );
    }

    #[derive(Clone)]
    struct DownStore;

    impl RateLimitStore for DownStore {
        type Future = std::future::Ready<Result<Decision, StoreError>>;
        fn check(&self, _: &RateLimitKey, _: Quota, _: NonZeroU32) -> Self::Future {
            std::future::ready(Err(StoreError::new("connection refused")))
        }
    }

    /// A store that answers on the second poll, as a remote store does:
    /// the layer parks the request and a ready clone of the service until
    /// it answers.
    #[derive(Clone)]
    struct LaterStore(MemoryStore);

    struct Later(Option<Decision>, bool);

    impl Future for Later {
        type Output = Result<Decision, StoreError>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if std::mem::replace(&mut self.1, true) {
                Poll::Ready(Ok(self.0.take().expect("polled after completion")))
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    impl RateLimitStore for LaterStore {
        type Future = Later;
        fn check(&self, key: &RateLimitKey, quota: Quota, cost: NonZeroU32) -> Self::Future {
            Later(Some(self.0.check_now(key, quota, cost)), false)
        }
    }

    #[tokio::test]
    async fn a_store_that_answers_later_decides_as_one_that_answers_at_once() {
        let layer = RateLimitLayer::with_store(
            Quota::per_hour(10).burst(2),
            LaterStore(MemoryStore::new()),
        );
        for (left, reset) in [(1, 360), (0, 720)] {
            let (s, h, body) = send(&layer, as_user("a")).await;
            assert_eq!((s, body.as_str()), (StatusCode::OK, "ok"));
            let want = format!(r#""default";r={left};t={reset}"#);
            assert_eq!(h["ratelimit"], want.as_str());
        }
        let (s, h, _) = send(&layer, as_user("a")).await;
        assert_eq!(s, 429);
        assert!(h.contains_key(header::RETRY_AFTER));
        // Another principal has a bucket of its own.
        assert_eq!(send(&layer, as_user("b")).await.0, 200);
    }

    #[tokio::test]
    async fn fail_modes() {
        let open = RateLimitLayer::with_store(Quota::per_hour(1), DownStore);
        for _ in 0..3 {
            let (s, h, _) = send(&open, as_user("a")).await;
            assert_eq!(s, 200);
            assert!(h.get("ratelimit").is_none());
        }
        let closed = open.fail_mode(FailMode::Closed);
        let (s, h, body) = send(&closed, as_user("a")).await;
        assert_eq!(s, 503);
        assert_eq!(h[header::RETRY_AFTER], "1");
        assert_eq!(
            body,
            r#"{"error":"temporarily_unavailable","error_description":"the rate-limit store is unavailable","retry_after":1}"#
        );
    }
}
