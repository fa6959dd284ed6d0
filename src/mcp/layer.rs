//! [`McpPolicyLayer`]: inspect each MCP request, decide it with an
//! [`McpPolicy`], and filter list results.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::{request::Parts, HeaderMap, Method, Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    audit,
    budget::ByteBudget,
    error::{AuthError, ErrorRenderer},
    future::BoxError,
    jsonrpc_id::JsonRpcId,
    principal::Principal,
    refusal,
    unverified::UnverifiedCredential,
};

use super::{
    body::{
        self, Unread, ANONYMOUS_REFUSAL_LIMIT, ANONYMOUS_REFUSAL_TIME,
        DEFAULT_ANONYMOUS_BUFFER_BUDGET, DEFAULT_BODY_TIMEOUT, DEFAULT_BUFFER_BUDGET,
    },
    filter::{Filtered, HandedDown, ListFilter},
    inspect::{self, McpCall, McpRequest},
    policy::McpPolicy,
    shared::SharedPolicy,
};

/// The default body limit: 4 MiB, the same as rmcp's.
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The default response limit of the list filter: 16 MiB, for a JSON body
/// or one SSE event it holds to read.
pub const DEFAULT_RESPONSE_LIMIT: usize = 16 * 1024 * 1024;

/// Authorizes every MCP call with an [`McpPolicy`].
///
/// For a POST it first refuses what it can without the body: a credential
/// no layer verified (401), and a call the `Mcp-Method` / `Mcp-Name`
/// headers describe that the policy refuses whatever the body says (the
/// refusal reads at most 16 KiB of the body, for a second, for its id).
/// Then it reads the body once, bounded in size, time and total (see
/// [below](#what-a-body-may-hold)), parses it with [`McpRequest::parse`],
/// checks the `Mcp-Method` / `Mcp-Name` headers against it, puts the
/// [`McpRequest`] and the id of its first request into the request
/// extensions, decides every call, and hands the inner service the very
/// same bytes. A batch goes through only when every element is allowed;
/// otherwise it is refused whole, naming the first refused element (the
/// refusal carries that element's id when it is a request, else the id of
/// the batch's first request, else `null`: never the id of a client's
/// response, which is the server's). Other HTTP methods (GET for the SSE
/// stream, DELETE to end a session) are decided by the rule for a request
/// without a call: the default rule.
///
/// # What a body may hold
///
/// - At most [`body_limit`](Self::body_limit) bytes (4 MiB): a larger
///   `Content-Length` is refused with 413 before reading, a longer stream
///   when it crosses the limit.
/// - Whole within [`body_timeout`](Self::body_timeout) (30 s), else 408
///   with a JSON-RPC error whose id is `null`.
/// - Every byte held is taken, as it arrives, from a budget shared by all
///   requests of this layer and given back when the body is dropped:
///   [`buffer_budget`](Self::buffer_budget) (64 MiB) for callers with a
///   verified credential,
///   [`anonymous_buffer_budget`](Self::anonymous_buffer_budget) (16 MiB)
///   for anonymous ones, so that anonymous bodies never crowd out a
///   caller with a credential. A body that would overrun its budget is
///   refused with 503 and `Retry-After: 1`.
/// - An anonymous caller, when no rule of the policy could allow one
///   ([`McpPolicy::admits_anonymous`]), is read for at most
///   [`ANONYMOUS_REFUSAL_LIMIT`](super::ANONYMOUS_REFUSAL_LIMIT) (64 KiB)
///   and one second: an `initialize` gets its 401 as always, with its id;
///   a longer or slower body gets it on what it has sent, with `"id":
///   null`.
///
/// [`buffered_bytes`](Self::buffered_bytes) tells how many bytes the layer
/// holds now. The deadlines run on tokio's timer: the runtime needs its
/// time driver (`#[tokio::main]` has it; a runtime built by hand needs
/// `enable_time()` or `enable_all()`).
///
/// The layer reads the [`Principal`] from the request extensions, whatever
/// put it there. Refusals carry the resource's challenge (`realm`,
/// `resource_metadata`) and render as JSON-RPC errors. A refusal of an
/// authenticated caller also carries its [`Principal`] in the response
/// extensions, so that an outer
/// [`FailedAuthLayer`](crate::rate_limit::failed_auth::FailedAuthLayer) does not count a
/// verified credential used for the wrong call as a failed authentication.
///
/// Every response of the endpoint goes through the [list filter](crate::mcp#list-filtering)
/// (unless [`filter_lists(false)`](Self::filter_lists)), which must read
/// it: put a compression layer (tower-http's `CompressionLayer`) **outside**
/// this layer, never between it and the MCP service. A compressed reply
/// is not passed on: it is replaced by a JSON-RPC error (502).
///
/// # Example
///
/// ```
/// use axum::{Router, body::Body, routing::post};
/// use tower::ServiceBuilder;
/// use tower_mcp_auth::api_key::{ApiKeyLayer, ApiKeys};
/// use tower_mcp_auth::ProtectedResource;
/// use tower_mcp_auth::mcp::{McpPolicy, McpPolicyLayer};
/// use tower_mcp_auth::Rule;
///
/// let resource = ProtectedResource::builder("https://mcp.example.com/mcp").build().unwrap();
/// let policy = McpPolicy::builder()
///     .default(Rule::authenticated())
///     .tool("create_admin_user", Rule::api_key())
///     .build()
///     .unwrap();
/// let mcp = Router::new().route("/", post(|body: String| async move { body }));
/// let app: Router = Router::new().nest_service(
///     "/mcp",
///     ServiceBuilder::new()
///         .layer(resource.layer()) // its challenge on every 401 and 403
///         .layer(ApiKeyLayer::new(ApiKeys::new()).optional())
///         .layer(McpPolicyLayer::new(policy))
///         .service(mcp),
/// );
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct McpPolicyLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    policy: SharedPolicy,
    renderer: ErrorRenderer,
    body_limit: usize,
    body_timeout: Duration,
    /// Shared by every clone of the layer and its services.
    budget: ByteBudget,
    anonymous_budget: ByteBudget,
    response_limit: usize,
    filter_lists: bool,
    /// Whether a [`HandleBindingLayer`](super::HandleBindingLayer) is
    /// below (set by [`McpAuth`](crate::stack::McpAuth), which puts one
    /// there): the request it reads then keeps the body's bytes, and its
    /// list filter is handed down, for that layer to take.
    handles_below: bool,
}

impl McpPolicyLayer {
    /// A layer enforcing `policy`: an [`McpPolicy`], or a
    /// [`SharedPolicy`] that a reload swaps at run time. List filtering
    /// is on. Its 401 and 403 carry the challenge of the
    /// [`ProtectedResourceLayer`](crate::ProtectedResourceLayer) above.
    pub fn new(policy: impl Into<SharedPolicy>) -> Self {
        Self {
            config: Arc::new(Config {
                policy: policy.into(),
                renderer: ErrorRenderer::default(),
                body_limit: DEFAULT_BODY_LIMIT,
                body_timeout: DEFAULT_BODY_TIMEOUT,
                budget: ByteBudget::new(DEFAULT_BUFFER_BUDGET),
                anonymous_budget: ByteBudget::new(DEFAULT_ANONYMOUS_BUFFER_BUDGET),
                response_limit: DEFAULT_RESPONSE_LIMIT,
                filter_lists: true,
                handles_below: false,
            }),
        }
    }

    /// For a stack with a [`HandleBindingLayer`](super::HandleBindingLayer)
    /// below, which takes back what this hands down: the body's bytes,
    /// kept with the [`McpRequest`] it reads (it then need not scan the
    /// body again), and the exchange's list filter (it filters the
    /// replies in its own pass over them, not in one more). Only for a
    /// stack that has one: else the bytes would live as long as the
    /// request's extensions, outside the body budget, and lists would go
    /// out unfiltered.
    #[cfg(feature = "rate-limit")]
    pub(crate) fn over_handles(mut self) -> Self {
        Arc::make_mut(&mut self.config).handles_below = true;
        self
    }

    /// The largest body read, in bytes (default [`DEFAULT_BODY_LIMIT`]).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).body_limit = bytes;
        self
    }

    /// The longest the layer waits for a whole body (default
    /// [`DEFAULT_BODY_TIMEOUT`](super::DEFAULT_BODY_TIMEOUT), 30 s): a
    /// body not whole by then is refused with 408, and what it sent is
    /// dropped. Give slow links more; a client that stalls holds its
    /// bytes this long at most.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.config).body_timeout = timeout;
        self
    }

    /// The most body bytes that callers with a verified credential hold
    /// together, in all requests of this layer at once (default
    /// [`DEFAULT_BUFFER_BUDGET`](super::DEFAULT_BUFFER_BUDGET), 64 MiB).
    /// A body that would overrun it is refused with 503 and `Retry-After`.
    pub fn buffer_budget(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).budget = ByteBudget::new(bytes);
        self
    }

    /// The most body bytes that anonymous callers hold together, apart
    /// from [`buffer_budget`](Self::buffer_budget) (default
    /// [`DEFAULT_ANONYMOUS_BUFFER_BUDGET`](super::DEFAULT_ANONYMOUS_BUFFER_BUDGET),
    /// 16 MiB). Anonymous bodies past it are refused (503, or 401 when no
    /// rule could allow them anyway); callers with a credential are not
    /// touched.
    pub fn anonymous_buffer_budget(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).anonymous_budget = ByteBudget::new(bytes);
        self
    }

    /// The request body bytes the layer (all its services) holds now, for
    /// a gauge: bodies being read, and bodies read and not yet dropped by
    /// the service behind.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.config.buffered_bytes()
    }

    /// The most the list filter holds of one reply, in bytes (default
    /// [`DEFAULT_RESPONSE_LIMIT`]): a JSON body, or one event of an SSE
    /// stream. A reply over it is not passed on (see [list filtering](crate::mcp#list-filtering)).
    pub fn response_limit(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).response_limit = bytes;
        self
    }

    /// Whether `tools/list`, `prompts/list`, `resources/list` and
    /// `resources/templates/list` results are filtered to what the caller
    /// may call (default `true`), on every response of the endpoint. See
    /// [list filtering](crate::mcp#list-filtering).
    pub fn filter_lists(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).filter_lists = on;
        self
    }

    /// Renders refusals with a custom renderer.
    pub fn renderer(mut self, renderer: ErrorRenderer) -> Self {
        Arc::make_mut(&mut self.config).renderer = renderer;
        self
    }
}

impl<S> Layer<S> for McpPolicyLayer {
    type Service = McpPolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpPolicyService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`McpPolicyLayer`].
#[derive(Clone, Debug)]
pub struct McpPolicyService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> McpPolicyService<S> {
    /// The layer for `policy`: the same as [`McpPolicyLayer::new`].
    pub fn layer(policy: impl Into<SharedPolicy>) -> McpPolicyLayer {
        McpPolicyLayer::new(policy)
    }

    crate::macros::inner_service_accessors!(S);

    /// The request body bytes the layer holds now: see
    /// [`McpPolicyLayer::buffered_bytes`].
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.config.buffered_bytes()
    }
}

/// The response future of [`McpPolicyService`]: boxed, because reading the
/// body may have to wait, and a reply is read before it goes on (to
/// filter its lists).
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl Config {
    fn buffered_bytes(&self) -> usize {
        self.budget.used() + self.anonymous_budget.used()
    }

    fn refuse(
        &self,
        err: AuthError,
        parts: &Parts,
        call: Option<&McpCall>,
        calls: usize,
    ) -> Response {
        let err = err.with_request_context(&parts.extensions);
        self.audit(&err, parts, call, calls);
        let mut response = self.renderer.render(err);
        if let Some(p) = Principal::from_extensions(&parts.extensions) {
            response.extensions_mut().insert(p.clone());
        }
        response
    }

    /// Refuses before the body is read: the refusal reads the body for
    /// the id as the authenticators' do ([`refusal`]: 16 KiB, a second).
    async fn refuse_unread<B>(
        &self,
        err: AuthError,
        parts: Parts,
        body: B,
        call: Option<&McpCall>,
    ) -> Response
    where
        B: http_body::Body + Send + 'static,
    {
        let req = Request::from_parts(parts, body);
        let err = err.with_request(&req);
        let (parts, body) = req.into_parts();
        self.audit(&err, &parts, call, usize::from(call.is_some()));
        let principal = Principal::from_extensions(&parts.extensions).cloned();
        let req = Request::from_parts(parts, body);
        let mut response = match refusal::render(&self.renderer, err, req) {
            refusal::Rendered::Now(response) => response,
            refusal::Rendered::Later(pending) => pending.await,
        };
        if let Some(p) = principal {
            response.extensions_mut().insert(p);
        }
        response
    }

    fn audit(&self, err: &AuthError, parts: &Parts, call: Option<&McpCall>, calls: usize) {
        let principal = Principal::from_extensions(&parts.extensions);
        match call {
            Some(c) => audit::mcp_decision(audit::McpDecision {
                err: Some(err),
                principal,
                rpc_method: c.method(),
                target_kind: c.target().map(|t| t.kind()),
                target: c.target().map(|t| t.name()),
                calls,
                method: &parts.method,
                path: audit::LazyPath::new(&parts.uri, &parts.extensions),
            }),
            None => audit::refused(
                "mcp_policy",
                err,
                principal,
                &parts.method,
                audit::path(&parts.uri, &parts.extensions),
            ),
        }
    }

    /// The refusal the `Mcp-Method` / `Mcp-Name` headers alone decide,
    /// with the call they describe: when the policy refuses every call
    /// they may stand for ([`inspect::header_calls`]). `None` when they do
    /// not say enough, when one of those calls is allowed, or when the
    /// rule that decides has [`Rule::check`](crate::Rule::check)s, which
    /// may look at what only the body says.
    fn decide_headers(
        policy: &McpPolicy,
        principal: Option<&Principal>,
        headers: &HeaderMap,
    ) -> Option<(AuthError, McpCall)> {
        let calls = inspect::header_calls(headers);
        let first = calls.first()?;
        if principal.is_some() && calls.iter().any(|c| policy.rule_for(Some(c)).has_checks()) {
            return None;
        }
        let mut refusals = calls
            .iter()
            .map(|c| policy.authorize(principal, Some(c)).err());
        let err = refusals.next()??;
        if refusals.any(|r| r.is_none()) {
            return None;
        }
        Some((named(err, first, None), first.clone()))
    }

    /// Reads the body of an anonymous caller no rule could allow: within
    /// the refusal's small limits, from the anonymous budget.
    async fn read_refused(&self, parts: &Parts, body: Body) -> Result<body::Buffered, Unread> {
        body::Reading::new(
            &parts.headers,
            body,
            self.body_limit.min(ANONYMOUS_REFUSAL_LIMIT),
            &self.anonymous_budget,
        )
        .finish(self.body_timeout.min(ANONYMOUS_REFUSAL_TIME))
        .await
    }

    /// Decides a POST on its body as read: refused, or on to the service
    /// with the reading ([`McpRequest`], its first id) in its extensions
    /// and the replies' list filter.
    fn decide_read(
        &self,
        policy: McpPolicy,
        principal: Option<Principal>,
        mut parts: Parts,
        read: Result<body::Buffered, Unread>,
    ) -> Decided {
        let buffered = match read {
            Ok(b) => b,
            Err(e) => {
                return Decided::Refused(self.refuse(unread(e.into_error()), &parts, None, 0))
            }
        };
        let mcp = match McpRequest::parse(buffered.bytes()) {
            Ok(m) if self.handles_below => m.with_source(buffered.bytes().clone()),
            Ok(m) => m,
            Err(err) => return Decided::Refused(self.refuse(unread(err), &parts, None, 0)),
        };
        parts
            .extensions
            .insert(mcp.first_request_id().cloned().unwrap_or_else(null_id));
        if let Err(err) = mcp.check_headers(&parts.headers) {
            let first = mcp.calls().first();
            return Decided::Refused(self.refuse(err, &parts, first, mcp.calls().len()));
        }
        self.decide_calls(policy, principal, parts, mcp, buffered.into_body())
    }

    /// Decides the calls of `mcp`: refused, or on to the service.
    fn decide_calls(
        &self,
        policy: McpPolicy,
        principal: Option<Principal>,
        mut parts: Parts,
        mcp: McpRequest,
        body: Body,
    ) -> Decided {
        let n = mcp.calls().len();
        if let Some(err) = UnverifiedCredential::refusal(&parts.extensions) {
            return Decided::Refused(self.refuse(err, &parts, mcp.calls().first(), n));
        }
        if let Err((err, call)) = Config::decide(&policy, principal.as_ref(), &mcp) {
            return Decided::Refused(self.refuse(err, &parts, call, n));
        }
        let first = mcp.calls().first();
        audit::mcp_decision(audit::McpDecision {
            err: None,
            principal: principal.as_ref(),
            rpc_method: first.and_then(McpCall::method),
            target_kind: first.and_then(|c| c.target()).map(|t| t.kind()),
            target: first.and_then(|c| c.target()).map(|t| t.name()),
            calls: n,
            method: &parts.method,
            path: audit::LazyPath::new(&parts.uri, &parts.extensions),
        });
        let mut lists = self
            .filter_lists
            .then(|| ListFilter::new(policy, principal, &mcp, &parts, self.response_limit));
        if self.handles_below {
            if let Some(lists) = lists.take() {
                parts.extensions.insert(HandedDown(lists));
            }
        }
        parts.extensions.insert(mcp);
        Decided::Pass(Request::from_parts(parts, body), lists)
    }

    /// Decides every call by `policy`; the first refusal, named, with its
    /// index.
    fn decide<'r>(
        policy: &McpPolicy,
        principal: Option<&Principal>,
        req: &'r McpRequest,
    ) -> Result<(), (AuthError, Option<&'r McpCall>)> {
        if req.calls().is_empty() {
            return policy.authorize(principal, None).map_err(|e| (e, None));
        }
        for (i, call) in req.calls().iter().enumerate() {
            if let Err(err) = policy.authorize(principal, Some(call)) {
                let index = req.is_batch().then_some(i);
                return Err((named(err, call, index), Some(call)));
            }
        }
        Ok(())
    }
}

/// `err` naming the refused `call` (and its place in a batch), carrying
/// its id when it is a request; otherwise the request's context gives the
/// id (the first request's in the body, else `null`).
fn named(err: AuthError, call: &McpCall, batch_index: Option<usize>) -> AuthError {
    let what = describe(call);
    let description = match batch_index {
        Some(i) => format!("batch element {i} ({what}): {}", err.description()),
        None => format!("{what}: {}", err.description()),
    };
    let mut named = AuthError::new(err.kind(), description);
    if let Some(scope) = err.scope() {
        named = named.with_scope(scope.clone());
    }
    if let Some(id) = call.request_id() {
        named = named.with_jsonrpc_id(id.clone());
    }
    named
}

/// The `null` id (shared: refusals before the body's id is known).
fn null_id() -> JsonRpcId {
    static NULL: std::sync::OnceLock<JsonRpcId> = std::sync::OnceLock::new();
    NULL.get_or_init(JsonRpcId::null).clone()
}

/// `tools/call \`name\``, with the name cut to 64 characters.
fn describe(call: &McpCall) -> String {
    let method = call.method().unwrap_or("response");
    match call.target() {
        None => method.chars().take(64).collect(),
        Some(t) => {
            let name: String = t.name().chars().take(64).collect();
            let method: String = method.chars().take(64).collect();
            format!("{method} `{name}`")
        }
    }
}

/// What the policy decided of a request.
#[allow(
    clippy::large_enum_variant,
    reason = "made and taken apart once per request; a box would cost an allocation"
)]
enum Decided {
    Refused(Response),
    /// On to the service, its replies filtered when there is a filter.
    Pass(Request<Body>, Option<ListFilter>),
}

impl Decided {
    /// The wait for what was decided: the refusal, or the service's
    /// (filtered) reply.
    fn run<S>(self, inner: &mut S) -> Filtered<S::Future, ListFilter>
    where
        S: Service<Request<Body>>,
    {
        match self {
            Self::Refused(response) => Filtered::ready(response),
            Self::Pass(req, lists) => Filtered::calling(inner.call(req), lists),
        }
    }
}

/// A refusal decided before the body's id was known: JSON-RPC's `null` id.
fn unread(err: AuthError) -> AuthError {
    match err.jsonrpc_id() {
        Some(_) => err,
        None => err.with_jsonrpc_id(null_id()),
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for McpPolicyService<S>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let (parts, body) = req.into_parts();
        let principal = parts.extensions.get::<Principal>().cloned();
        if principal.is_none() {
            crate::misorder::Reader::Policy.check(&parts.extensions, &parts.headers);
        }
        // One policy decides the whole request and filters its lists,
        // whatever a reload swaps in meanwhile.
        let policy = config.policy.current();
        // What is decided now calls the service `poll_ready` readied; a
        // call that waits takes it and leaves a clone in its place.
        if parts.method != Method::POST {
            let decided = config.decide_calls(
                policy,
                principal,
                parts,
                McpRequest::empty(),
                Body::new(body),
            );
            return Box::pin(decided.run(&mut self.inner));
        }
        // What is refused whatever the body says is refused before
        // anything is buffered.
        let before = UnverifiedCredential::refusal(&parts.extensions)
            .map(|err| (err, None))
            .or_else(|| {
                Config::decide_headers(&policy, principal.as_ref(), &parts.headers)
                    .map(|(err, call)| (err, Some(call)))
            });
        if let Some((err, call)) = before {
            let config = self.config.clone();
            return Box::pin(async move {
                Ok(config.refuse_unread(err, parts, body, call.as_ref()).await)
            });
        }
        let body = Body::new(body);
        let budget = match &principal {
            Some(_) => &config.budget,
            None if policy.admits_anonymous() => &config.anonymous_budget,
            // No rule could allow it: refused on a short read.
            None => {
                let config = self.config.clone();
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                return Box::pin(async move {
                    let read = match config.read_refused(&parts, body).await {
                        Err(Unread::Broken) => Err(Unread::Broken),
                        Err(_) => {
                            let err = (policy.authorize(None, None).err())
                                .unwrap_or_else(AuthError::missing_credential);
                            return Ok(config.refuse(unread(err), &parts, None, 0));
                        }
                        read => read,
                    };
                    config
                        .decide_read(policy, None, parts, read)
                        .run(&mut inner)
                        .await
                });
            }
        };
        // A body that has come whole already (the usual small one) is
        // decided now, with no timer; the future then only waits for the
        // reply.
        let mut reading = body::Reading::new(&parts.headers, body, config.body_limit, budget);
        match reading.now() {
            Some(read) => Box::pin(
                config
                    .decide_read(policy, principal, parts, read)
                    .run(&mut self.inner),
            ),
            None => {
                let config = self.config.clone();
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                Box::pin(async move {
                    let read = reading.finish(config.body_timeout).await;
                    config
                        .decide_read(policy, principal, parts, read)
                        .run(&mut inner)
                        .await
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtectedResource;
    use crate::{
        principal::{AuthScheme, Scopes},
        Rule,
    };
    use http::header;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    fn resource() -> ProtectedResource {
        ProtectedResource::builder("https://mcp.example.com/mcp")
            .build()
            .unwrap()
    }

    fn layer() -> McpPolicyLayer {
        let policy = McpPolicy::builder()
            .default(Rule::authenticated())
            .tool("read", Rule::bearer().scopes(["read:data"]))
            .tool("admin", Rule::api_key())
            .build()
            .unwrap();
        McpPolicyLayer::new(policy)
    }

    async fn run(
        layer: McpPolicyLayer,
        req: Request<Body>,
    ) -> (http::StatusCode, http::HeaderMap, Bytes) {
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|req: Request<Body>| async move {
                // Echo the body and what the layer put into the extensions.
                let calls = req
                    .extensions()
                    .get::<McpRequest>()
                    .map_or(0, |m| m.calls().len());
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let mut res = http::Response::new(Body::from(body));
                res.headers_mut().insert("x-calls", calls.into());
                Ok::<_, Infallible>(res)
            });
        // As the ProtectedResourceLayer above the stack would.
        let mut req = req;
        req.extensions_mut().insert(resource().challenge());
        let res = svc.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    fn post(body: impl Into<Body>, who: Option<Principal>) -> Request<Body> {
        let mut req = Request::post("/mcp").body(body.into()).unwrap();
        if let Some(p) = who {
            req.extensions_mut().insert(p);
        }
        req
    }

    fn jwt(scopes: &str) -> Option<Principal> {
        Some(Principal::new(AuthScheme::Jwt, "u").with_scopes(Scopes::parse(scopes)))
    }

    const READ: &str =
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read","arguments":{}}}"#;

    #[tokio::test]
    async fn allowed_call_reaches_inner_with_same_bytes() {
        let (status, headers, body) = run(layer(), post(READ, jwt("read:data"))).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-calls"], "1");
        assert_eq!(body, READ.as_bytes());
    }

    /// A service that counts its clones (what a layer calls to keep one).
    struct Counted(Arc<std::sync::atomic::AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Self(self.0.clone())
        }
    }

    impl Service<Request<Body>> for Counted {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<http::Response<Body>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<Body>) -> Self::Future {
            std::future::ready(Ok(http::Response::new(Body::from("ok"))))
        }
    }

    /// A body whose bytes are not there at the first poll.
    struct Late(Option<Bytes>, bool);

    impl http_body::Body for Late {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            if !std::mem::replace(&mut self.1, true) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn a_call_decided_at_once_calls_the_readied_service_and_clones_none() {
        let clones = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut svc = layer().layer(Counted(clones.clone()));
        for req in [post(READ, jwt("read:data")), {
            let mut get = Request::get("/mcp").body(Body::empty()).unwrap();
            get.extensions_mut().insert(jwt("read:data").unwrap());
            get
        }] {
            let ready = ServiceExt::<Request<Body>>::ready(&mut svc).await.unwrap();
            assert_eq!(ready.call(req).await.unwrap().status(), 200);
        }
        assert_eq!(clones.load(std::sync::atomic::Ordering::Relaxed), 0);
        // A body still on its way is waited for: that call takes the
        // readied service and leaves a clone in its place.
        let late = post(
            Body::new(Late(Some(Bytes::from_static(READ.as_bytes())), false)),
            jwt("read:data"),
        );
        let ready = ServiceExt::<Request<Body>>::ready(&mut svc).await.unwrap();
        assert_eq!(ready.call(late).await.unwrap().status(), 200);
        assert_eq!(clones.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    /// A body that arrives in the given chunks, as a socket delivers it.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn a_body_in_chunks_reaches_inner_whole_and_is_limited_whole() {
        for cut in [
            vec![],
            vec![0],
            vec![1, 2],
            vec![10, 10, 30, 31, READ.len()],
        ] {
            let mut chunks = std::collections::VecDeque::new();
            let mut at = 0;
            for end in cut.iter().copied().chain([READ.len()]) {
                chunks.push_back(Bytes::copy_from_slice(&READ.as_bytes()[at..end]));
                at = end;
            }
            let (status, _, body) =
                run(layer(), post(Body::new(Chunks(chunks)), jwt("read:data"))).await;
            assert_eq!(
                (status, &body[..]),
                (http::StatusCode::OK, READ.as_bytes()),
                "{cut:?}"
            );
        }
        let halves: std::collections::VecDeque<Bytes> = [vec![b' '; 600], vec![b' '; 600]]
            .into_iter()
            .map(Bytes::from)
            .collect();
        let req = post(Body::new(Chunks(halves)), jwt(""));
        assert_eq!(run(layer().body_limit(1024), req).await.0, 413);
    }

    #[tokio::test]
    async fn missing_scope_is_step_up_403() {
        let (status, headers, body) = run(layer(), post(READ, jwt("profile"))).await;
        assert_eq!(status, 403);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", error_description="tools/call `read`: the access token lacks a scope this call requires", scope="profile read:data", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], 5);
        assert_eq!(v["error"]["code"], -32003);
    }

    #[tokio::test]
    async fn anonymous_is_401_with_scope() {
        let (status, headers, _) = run(layer(), post(READ, None)).await;
        assert_eq!(status, 401);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            r#"Bearer scope="read:data", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#
        );
    }

    #[tokio::test]
    async fn batch_refused_whole_naming_first_refused() {
        let batch = format!(
            r#"[{READ},{{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{{"name":"admin"}}}},{{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{{"name":"admin"}}}}]"#
        );
        let (status, _, body) = run(layer(), post(batch.clone(), jwt("read:data"))).await;
        assert_eq!(status, 403);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "b");
        assert_eq!(
            v["error"]["message"],
            "batch element 1 (tools/call `admin`): this call requires an API key"
        );
        let key =
            Some(Principal::new(AuthScheme::ApiKey, "k").with_scopes(Scopes::parse("read:data")));
        let (status, _, _) = run(layer(), post(batch, key)).await;
        assert_eq!(status, 403, "the bearer-only element refuses the API key");
    }

    #[tokio::test]
    async fn too_large_and_malformed() {
        let big = vec![b' '; 2048];
        let (status, _, body) = run(layer().body_limit(1024), post(big.clone(), jwt(""))).await;
        assert_eq!(status, 413);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (Value::Null, json!(-32013))
        );
        // Declared length over the limit: refused without reading.
        let mut req = post(Body::empty(), jwt(""));
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, 5000.into());
        assert_eq!(run(layer().body_limit(1024), req).await.0, 413);
        let (status, _, body) = run(layer(), post("not json", jwt(""))).await;
        assert_eq!(status, 400);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], -32700);
    }

    #[tokio::test]
    async fn get_uses_default_rule() {
        let req = Request::get("/mcp").body(Body::empty()).unwrap();
        assert_eq!(run(layer(), req).await.0, 401);
        let mut req = Request::get("/mcp").body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(Principal::new(AuthScheme::ApiKey, "k"));
        let (status, headers, _) = run(layer(), req).await;
        assert_eq!(
            (status.as_u16(), &headers["x-calls"]),
            (200, &http::HeaderValue::from(0))
        );
    }

    #[tokio::test]
    async fn list_filtering_can_be_switched_off() {
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let result =
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"},{"name":"admin"}]}}"#;
        let run = |layer: McpPolicyLayer| async move {
            let svc = ServiceBuilder::new().layer(layer).service_fn(
                move |_req: Request<Body>| async move {
                    let mut res = http::Response::new(Body::from(result));
                    res.headers_mut()
                        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
                    Ok::<_, Infallible>(res)
                },
            );
            let res = svc.oneshot(post(list, jwt("read:data"))).await.unwrap();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()["result"]["tools"]
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!(run(layer()).await, 1);
        assert_eq!(run(layer().filter_lists(false)).await, 2);
    }

    /// Whatever the request (a ping, the GET stream), a list result in the
    /// reply is filtered for the caller of that exchange.
    #[tokio::test]
    async fn lists_are_filtered_on_every_exchange() {
        let result =
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read"},{"name":"admin"}]}}"#;
        let svc =
            ServiceBuilder::new()
                .layer(layer())
                .service_fn(move |req: Request<Body>| async move {
                    let sse = req.method() == Method::GET;
                    let (ct, body) = if sse {
                        ("text/event-stream", format!("data: {result}\n\n"))
                    } else {
                        ("application/json", result.to_owned())
                    };
                    let mut res = http::Response::new(Body::from(body));
                    res.headers_mut()
                        .insert(header::CONTENT_TYPE, ct.parse().unwrap());
                    Ok::<_, Infallible>(res)
                });
        let ping = post(
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            jwt("read:data"),
        );
        let mut get = Request::get("/mcp").body(Body::empty()).unwrap();
        get.extensions_mut()
            .insert(Principal::new(AuthScheme::ApiKey, "k"));
        for (req, want) in [(ping, "read"), (get, "admin")] {
            let res = svc.clone().oneshot(req).await.unwrap();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            let json = text.trim().trim_start_matches("data: ");
            let v: Value = serde_json::from_str(json).unwrap();
            assert_eq!(
                (
                    v["result"]["tools"].clone(),
                    v["result"]["cacheScope"].clone()
                ),
                (json!([{ "name": want }]), json!("private")),
                "{text}"
            );
        }
    }

    /// Issue 23, 6a: a stub server answering `skills/list` (rmcp 3.11's
    /// shape) in JSON and in SSE: through the layer each caller sees only
    /// the skills whose `skills/get` it may make, and `skills/get` agrees.
    #[tokio::test]
    async fn a_skills_list_is_filtered_through_the_layer() {
        let policy = McpPolicy::builder()
            .resource("skill://admin/SKILL.md", Rule::api_key())
            .resource("skill://{name}/SKILL.md", Rule::authenticated())
            .build()
            .unwrap();
        let layer = || McpPolicyLayer::new(policy.clone());
        let skills = json!({"jsonrpc":"2.0","id":2,"result":{"skills":[
            {"uri":"skill://admin/SKILL.md","frontmatter":{"name":"admin","description":"drop tables"},"resources":[{"uri":"skill://admin/SKILL.md","digest":"sha256:00","size":1}]},
            {"uri":"skill://notes/SKILL.md","frontmatter":{"name":"notes","description":"take notes"},"resources":"dynamic"}
        ]}})
        .to_string();
        for sse in [false, true] {
            let skills = skills.clone();
            let svc =
                ServiceBuilder::new()
                    .layer(layer())
                    .service_fn(move |_req: Request<Body>| {
                        let skills = skills.clone();
                        async move {
                            let (ct, body) = if sse {
                                ("text/event-stream", format!("id: 0\ndata: {skills}\n\n"))
                            } else {
                                ("application/json", skills)
                            };
                            let mut res = http::Response::new(Body::from(body));
                            res.headers_mut()
                                .insert(header::CONTENT_TYPE, ct.parse().unwrap());
                            Ok::<_, Infallible>(res)
                        }
                    });
            let list = r#"{"jsonrpc":"2.0","id":2,"method":"skills/list"}"#;
            let key = Some(Principal::new(AuthScheme::ApiKey, "ops"));
            for (who, want) in [
                (jwt(""), vec!["skill://notes/SKILL.md"]),
                (
                    key,
                    vec!["skill://admin/SKILL.md", "skill://notes/SKILL.md"],
                ),
            ] {
                let res = svc.clone().oneshot(post(list, who)).await.unwrap();
                let bytes = res.into_body().collect().await.unwrap().to_bytes();
                let text = String::from_utf8(bytes.to_vec()).unwrap();
                let json = text.trim().trim_start_matches("id: 0\ndata: ");
                let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"));
                let uris: Vec<&str> = v["result"]["skills"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["uri"].as_str().unwrap())
                    .collect();
                assert_eq!(uris, want, "sse {sse}: {text}");
                assert_eq!(v["result"]["cacheScope"], "private");
            }
        }
        // skills/get decides alike: a bearer token may not get the admin skill.
        let get = r#"{"jsonrpc":"2.0","id":3,"method":"skills/get","params":{"uri":"skill://admin/SKILL.md"}}"#;
        let (status, _, _) = run(layer(), post(get, jwt(""))).await;
        assert_eq!(status, 403);
        assert!(policy.may_get_skill(jwt("").as_ref(), "skill://notes/SKILL.md"));
    }

    #[tokio::test]
    async fn header_mismatch() {
        let mut req = post(READ, jwt("read:data"));
        req.headers_mut()
            .insert("mcp-name", "admin".parse().unwrap());
        let (status, _, body) = run(layer(), req).await;
        assert_eq!(status, 400);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (json!(5), json!(-32020))
        );
    }

    // ───────────── issue 23, item 5: what a body may hold ─────────────

    /// A policy with one public tool: anonymous callers may be allowed, so
    /// their bodies are read whole (from the anonymous budget).
    fn open_layer() -> McpPolicyLayer {
        let policy = McpPolicy::builder()
            .default(Rule::authenticated())
            .tool("hello", Rule::public())
            .tool("admin", Rule::api_key())
            .build()
            .unwrap();
        McpPolicyLayer::new(policy)
    }

    /// 4 MiB of zeros, never allocated per body.
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

    /// A body of `len` bytes in 64 KiB chunks that then stalls for ever
    /// (`stall`), or ends.
    struct Trickle {
        left: usize,
        stall: bool,
    }

    impl http_body::Body for Trickle {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            if self.left == 0 {
                return if self.stall {
                    Poll::Pending
                } else {
                    Poll::Ready(None)
                };
            }
            let n = self.left.min(ZEROS.len());
            self.left -= n;
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                &ZEROS[..n],
            )))))
        }
    }

    /// The echo service of [`run`], as a service to share between tasks.
    fn echo(
        layer: McpPolicyLayer,
    ) -> impl Service<
        Request<Body>,
        Response = Response,
        Error = Infallible,
        Future = ResponseFuture<Infallible>,
    > + Clone {
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|req: Request<Body>| async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                Ok::<_, Infallible>(http::Response::new(Body::from(body)))
            })
    }

    async fn json_of(response: Response) -> (http::StatusCode, Value) {
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    const HELLO: &str =
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"hello"}}"#;

    /// A body that does not arrive whole in time is refused with 408 and
    /// a JSON-RPC error whose id is `null`; its bytes are given back. On
    /// the old code the layer waited for ever.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_refused_with_408_at_the_deadline() {
        let layer = open_layer().body_timeout(Duration::from_secs(30));
        let svc = echo(layer.clone());
        let started = tokio::time::Instant::now();
        let stalled = post(
            Body::new(Trickle {
                left: 1000,
                stall: true,
            }),
            None,
        );
        let pending = tokio::spawn(svc.oneshot(stalled));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(layer.buffered_bytes(), 1000, "held while it stalls");
        let response = tokio::time::timeout(Duration::from_secs(3600), pending)
            .await
            .expect("refused, not waited for ever");
        let (status, body) = json_of(response.unwrap().unwrap()).await;
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(status, 408, "{body}");
        assert_eq!(
            (body["id"].clone(), body["error"]["code"].clone()),
            (Value::Null, json!(-32008)),
            "{body}"
        );
        assert_eq!(layer.buffered_bytes(), 0);
    }

    /// Issue 23, item 5: 24 anonymous clients each send 4 MiB less one
    /// byte and stall. On the old code the layer held all of it (96 MiB)
    /// for ever. Now anonymous bodies share the anonymous budget (16 MiB):
    /// the layer holds less than 48 MiB, the rest are refused with 503 at
    /// once, an honest call is answered meanwhile, and the stalled ones
    /// get 408 at the deadline, which gives every byte back.
    #[tokio::test(start_paused = true)]
    async fn stalled_anonymous_bodies_hold_their_budget_only_and_honest_calls_go_on() {
        const BIG: usize = 4 * 1024 * 1024 - 1;
        let layer = open_layer();
        let svc = echo(layer.clone());
        let stalled: Vec<_> = (0..24)
            .map(|_| {
                let req = post(
                    Body::new(Trickle {
                        left: BIG,
                        stall: true,
                    }),
                    None,
                );
                tokio::spawn(svc.clone().oneshot(req))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let held = layer.buffered_bytes();
        assert!(held <= DEFAULT_ANONYMOUS_BUFFER_BUDGET, "{held}");
        assert!(held < 48 * 1024 * 1024, "{held}");
        assert!(held > 3 * BIG, "the budget is used: {held}");

        // Meanwhile: an anonymous call of the public tool, and a call by a
        // caller with a credential, from its own budget.
        let honest = svc.clone().oneshot(post(HELLO, jwt(""))).await.unwrap();
        assert_eq!(honest.status(), 200);
        let big_honest = post(
            Body::new(Trickle {
                left: BIG,
                stall: false,
            }),
            jwt(""),
        );
        let (status, _) = json_of(svc.clone().oneshot(big_honest).await.unwrap()).await;
        assert_eq!(status, 400, "read whole (not JSON), not refused for room");

        let mut statuses = std::collections::BTreeMap::new();
        for task in stalled {
            let response = tokio::time::timeout(Duration::from_secs(3600), task)
                .await
                .expect("refused, not waited for ever")
                .unwrap()
                .unwrap();
            if response.status() == 503 {
                assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
            }
            *statuses.entry(response.status().as_u16()).or_insert(0) += 1;
        }
        assert_eq!(statuses.values().sum::<i32>(), 24);
        assert!(
            statuses.keys().all(|s| [408, 503].contains(s)),
            "{statuses:?}"
        );
        assert_eq!(layer.buffered_bytes(), 0);
    }

    /// Where no rule could allow an anonymous caller, its body is read for
    /// 64 KiB at most: a small call is decided as always (401 with its
    /// id); a large one, declared or sent, is refused on what it has sent,
    /// holding at most 64 KiB.
    #[tokio::test(start_paused = true)]
    async fn an_anonymous_caller_no_rule_allows_is_refused_on_a_short_read() {
        let layer = layer(); // no public rule
        let svc = echo(layer.clone());
        let (status, body) = json_of(svc.clone().oneshot(post(READ, None)).await.unwrap()).await;
        assert_eq!((status.as_u16(), body["id"].clone()), (401, json!(5)));

        let stalled: Vec<_> = (0..24)
            .map(|_| {
                let req = post(
                    Body::new(Trickle {
                        left: 4 * 1024 * 1024 - 1,
                        stall: true,
                    }),
                    None,
                );
                tokio::spawn(svc.clone().oneshot(req))
            })
            .collect();
        for task in stalled {
            let (status, body) = json_of(task.await.unwrap().unwrap()).await;
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["id"], Value::Null);
        }
        assert_eq!(layer.buffered_bytes(), 0);

        // Declared too long: refused before reading a byte.
        let mut req = post(
            Body::new(Trickle {
                left: 0,
                stall: true,
            }),
            None,
        );
        req.headers_mut()
            .insert(http::header::CONTENT_LENGTH, (4 << 20).into());
        let started = tokio::time::Instant::now();
        let (status, _) = json_of(svc.clone().oneshot(req).await.unwrap()).await;
        assert_eq!((status.as_u16(), started.elapsed()), (401, Duration::ZERO));

        // Too slow: refused after a second, not the body timeout.
        let slow = post(
            Body::new(Trickle {
                left: 10,
                stall: true,
            }),
            None,
        );
        let (status, _) = json_of(svc.oneshot(slow).await.unwrap()).await;
        assert_eq!(status, 401);
        assert_eq!(started.elapsed(), ANONYMOUS_REFUSAL_TIME);
    }

    /// The `Mcp-Method` / `Mcp-Name` headers refuse before the body is
    /// read when the policy refuses what they name whatever the body says;
    /// otherwise the body is read and checked against them.
    #[tokio::test(start_paused = true)]
    async fn headers_alone_refuse_before_the_body_is_read() {
        let layer = open_layer();
        let svc = echo(layer.clone());
        let stalled = |method: &str, name: Option<&str>, who: Option<Principal>| {
            let mut req = post(
                Body::new(Trickle {
                    left: 1000,
                    stall: true,
                }),
                who,
            );
            req.headers_mut()
                .insert("mcp-method", method.parse().unwrap());
            if let Some(name) = name {
                req.headers_mut().insert("mcp-name", name.parse().unwrap());
            }
            req
        };
        let started = tokio::time::Instant::now();
        for (method, name, who, status) in [
            ("tools/call", Some("admin"), None, 401),
            ("tools/list", None, None, 401),
            ("tools/call", Some("=?base64?YWRtaW4=?="), None, 401),
        ] {
            let response = svc.clone().oneshot(stalled(method, name, who)).await;
            let (got, body) = json_of(response.unwrap()).await;
            assert_eq!(got, status, "{method} {name:?}: {body}");
            assert_eq!(started.elapsed(), Duration::ZERO, "nothing read");
        }
        assert_eq!(layer.buffered_bytes(), 0);
        // What the headers cannot refuse is read (and the stalled body
        // times out): the public tool; `tools/call` without `Mcp-Name`; a
        // method whose target only the body names; a tool whose rule
        // refuses a bearer token, since a body without `params.name` would
        // be decided by the default rule, which allows it.
        for (method, name, who) in [
            ("tools/call", Some("hello"), None),
            ("tools/call", None, None),
            ("completion/complete", None, None),
            ("tools/call", Some("admin"), jwt("read:data")),
        ] {
            let response = svc.clone().oneshot(stalled(method, name, who)).await;
            assert_eq!(response.unwrap().status(), 408, "{method} {name:?}");
        }
        // Allowed by the headers, the body still must match them.
        let mut req = post(READ, jwt("read:data"));
        req.headers_mut()
            .insert("mcp-method", "tools/call".parse().unwrap());
        req.headers_mut()
            .insert("mcp-name", "hello".parse().unwrap());
        let (status, body) = json_of(svc.oneshot(req).await.unwrap()).await;
        assert_eq!(
            (status.as_u16(), body["error"]["code"].clone()),
            (400, json!(-32020))
        );
    }

    /// A rule with a check may look at what only the body says: the
    /// headers do not decide for it.
    #[tokio::test]
    async fn headers_do_not_decide_for_a_rule_with_checks() {
        let policy = McpPolicy::builder()
            .default(Rule::api_key())
            .tool("mine", Rule::bearer().check(|_, call| call.id().is_some()))
            .build()
            .unwrap();
        let mut req = post(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"mine"}}"#,
            jwt(""),
        );
        req.headers_mut()
            .insert("mcp-method", "tools/call".parse().unwrap());
        req.headers_mut()
            .insert("mcp-name", "mine".parse().unwrap());
        assert_eq!(run(McpPolicyLayer::new(policy), req).await.0, 200);
    }

    // ───── issue 23, item 6d: a refusal never carries a response's id ─────

    /// A client's response to a server request carries the server's id; a
    /// refusal of it says `null` (on the old code `"id": 5`, which the
    /// client matches to its own request 5). In a batch, the refusal
    /// carries the refused element's id when it is a request, else the
    /// first request's, else `null`.
    #[tokio::test]
    async fn a_refused_response_carries_no_id() {
        let hello = |id: u32| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"hello"}}}}"#
            )
        };
        let result = r#"{"jsonrpc":"2.0","id":5,"result":{}}"#;
        let error = r#"{"jsonrpc":"2.0","id":5,"error":{"code":-1,"message":"no"}}"#;
        for (body, want) in [
            (result.to_owned(), Value::Null),
            (error.to_owned(), Value::Null),
            (format!("[{result}]"), Value::Null),
            (format!("[{result},{error}]"), Value::Null),
            (format!("[{result},{}]", hello(7)), json!(7)),
            (format!("[{},{result}]", hello(7)), json!(7)),
        ] {
            let (status, _, bytes) = run(open_layer(), post(body.clone(), None)).await;
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                (status.as_u16(), v["id"].clone()),
                (401, want),
                "{body}: {v}"
            );
        }
        // A request refused: its id, as ever.
        let (status, _, bytes) = run(open_layer(), post(READ, None)).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((status.as_u16(), v["id"].clone()), (401, json!(5)));
    }
}
