//! [`McpPolicyLayer`]: inspect each MCP request, decide it with an
//! [`McpPolicy`], and filter list results.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::{header, request::Parts, Method, Request};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    audit,
    error::{AuthError, ErrorRenderer, JsonRpcId},
    future::BoxError,
    principal::Principal,
};

use super::{
    file::SharedPolicy,
    filter::{self, ListFilter},
    inspect::{McpCall, McpRequest},
    policy::McpPolicy,
};

/// The default body limit: 4 MiB, the same as rmcp's.
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The default response limit of the list filter: 16 MiB, for a JSON body
/// or one SSE event it holds to read.
pub const DEFAULT_RESPONSE_LIMIT: usize = 16 * 1024 * 1024;

/// Authorizes every MCP call with an [`McpPolicy`].
///
/// For a POST it reads the body once (up to [`body_limit`](Self::body_limit):
/// a larger `Content-Length` is refused with 413 before reading, a longer
/// stream when it crosses the limit), parses it with
/// [`McpRequest::parse`], checks the `Mcp-Method` / `Mcp-Name` headers,
/// puts the [`McpRequest`] and the first [`JsonRpcId`] into the request
/// extensions, decides every call, and hands the inner service the very
/// same bytes. A batch goes through only when every element is allowed;
/// otherwise it is refused whole, naming the first refused element (the
/// refusal carries that element's id). Other HTTP methods (GET for the SSE
/// stream, DELETE to end a session) are decided by the rule for a request
/// without a call: the default rule.
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
    response_limit: usize,
    filter_lists: bool,
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
                response_limit: DEFAULT_RESPONSE_LIMIT,
                filter_lists: true,
            }),
        }
    }

    /// The largest body read, in bytes (default [`DEFAULT_BODY_LIMIT`]).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).body_limit = bytes;
        self
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

/// The response future of [`McpPolicyService`]: boxed, because reading the
/// body is an honest async step.
pub type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl Config {
    fn refuse(
        &self,
        err: AuthError,
        parts: &Parts,
        call: Option<&McpCall>,
        calls: usize,
    ) -> Response {
        let err = err.with_request_context(&parts.extensions);
        let principal = Principal::from_extensions(&parts.extensions);
        match call {
            Some(c) => audit::mcp_decision(
                Some(&err),
                principal,
                c.method(),
                c.target().map(|t| t.kind()),
                c.target().map(|t| t.name()),
                calls,
                &parts.method,
                audit::path(&parts.uri, &parts.extensions),
            ),
            None => audit::refused(
                "mcp_policy",
                &err,
                principal,
                &parts.method,
                audit::path(&parts.uri, &parts.extensions),
            ),
        }
        let mut response = self.renderer.render(err);
        if let Some(p) = principal {
            response.extensions_mut().insert(p.clone());
        }
        response
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
                let what = describe(call);
                let description = if req.is_batch() {
                    format!("batch element {i} ({what}): {}", err.description())
                } else {
                    format!("{what}: {}", err.description())
                };
                let mut named = AuthError::new(err.kind(), description);
                if let Some(scope) = err.scope() {
                    named = named.with_scope(scope.clone());
                }
                if let Some(id) = call.id() {
                    named = named.with_jsonrpc_id(id.clone());
                }
                return Err((named, Some(call)));
            }
        }
        Ok(())
    }
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

pub(crate) async fn read_body<B>(parts: &Parts, body: B, limit: usize) -> Result<Bytes, AuthError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(AuthError::payload_too_large(limit));
    }
    // Collected by hand: a body that arrives in one chunk (the usual case)
    // is kept as it is, with no buffer list and no copy.
    let mut body = std::pin::pin!(Limited::new(body, limit));
    let mut first = Bytes::new();
    let mut more: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(AuthError::payload_too_large(limit));
            }
            Err(_) => {
                return Err(AuthError::malformed_request(
                    "the request body could not be read",
                ))
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if let Some(buf) = &mut more {
            buf.extend_from_slice(&data);
        } else if first.is_empty() {
            first = data;
        } else {
            let mut buf = Vec::with_capacity(first.len() + data.len());
            buf.extend_from_slice(&first);
            buf.extend_from_slice(&data);
            more = Some(buf);
        }
    }
    Ok(more.map_or(first, Bytes::from))
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
        let config = self.config.clone();
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let (mcp, body) = if parts.method == Method::POST {
                // Refused before the id is known: JSON-RPC's `null` id.
                let unread = |err: AuthError| match err.jsonrpc_id() {
                    Some(_) => err,
                    None => err.with_jsonrpc_id(null_id()),
                };
                let bytes = match read_body(&parts, body, config.body_limit).await {
                    Ok(b) => b,
                    Err(err) => return Ok(config.refuse(unread(err), &parts, None, 0)),
                };
                let mcp = match McpRequest::parse(&bytes) {
                    Ok(m) => m,
                    Err(err) => return Ok(config.refuse(unread(err), &parts, None, 0)),
                };
                parts
                    .extensions
                    .insert(mcp.first_id().cloned().unwrap_or_else(null_id));
                if let Err(err) = mcp.check_headers(&parts.headers) {
                    let first = mcp.calls().first();
                    return Ok(config.refuse(err, &parts, first, mcp.calls().len()));
                }
                (mcp, Body::from(bytes))
            } else {
                (McpRequest::empty(), Body::new(body))
            };
            let principal = parts.extensions.get::<Principal>().cloned();
            let n = mcp.calls().len();
            if let Some(err) = crate::authenticate::UnverifiedCredential::refusal(&parts.extensions)
            {
                return Ok(config.refuse(err, &parts, mcp.calls().first(), n));
            }
            // One policy decides the whole request and filters its lists,
            // whatever a reload swaps in meanwhile.
            let policy = config.policy.current();
            if let Err((err, call)) = Config::decide(&policy, principal.as_ref(), &mcp) {
                return Ok(config.refuse(err, &parts, call, n));
            }
            let first = mcp.calls().first();
            audit::mcp_decision(
                None,
                principal.as_ref(),
                first.and_then(McpCall::method),
                first.and_then(|c| c.target()).map(|t| t.kind()),
                first.and_then(|c| c.target()).map(|t| t.name()),
                n,
                &parts.method,
                audit::path(&parts.uri, &parts.extensions),
            );
            let lists = config
                .filter_lists
                .then(|| ListFilter::new(policy, principal, &mcp, &parts, config.response_limit));
            parts.extensions.insert(mcp);
            let response = inner.call(Request::from_parts(parts, body)).await?;
            let response = response.map(Body::new);
            Ok(match lists {
                Some(f) => filter::apply(response, f).await,
                None => response,
            })
        })
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
        assert_eq!(status, 401);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "b");
        assert_eq!(
            v["error"]["message"],
            "batch element 1 (tools/call `admin`): this call requires an API key"
        );
        let key =
            Some(Principal::new(AuthScheme::ApiKey, "k").with_scopes(Scopes::parse("read:data")));
        let (status, _, _) = run(layer(), post(batch, key)).await;
        assert_eq!(status, 401, "the bearer-only element refuses the API key");
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
        assert_eq!(status, 401);
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
}
