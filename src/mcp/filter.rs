//! List filtering: `tools/list`, `prompts/list`, `resources/list` and
//! `resources/templates/list` results trimmed to what the caller may call.
//!
//! An item stays when the [`McpPolicy`] would allow the caller to use it:
//! a tool when `tools/call` of its `name` is allowed, a prompt when
//! `prompts/get` of its `name` is, a resource when `resources/read` of its
//! `uri` is, a resource template when reading its `uriTemplate` is (the
//! template string matches a rule registered for the same template, and
//! any template whose variables cover it). An item without that member is
//! dropped.
//!
//! A filtered list depends on the caller, so a result carrying the
//! 2026-07-28 caching hints (`ttlMs`, `cacheScope`) leaves with
//! `cacheScope: "private"`: `public` (also the meaning of an absent scope)
//! would let a gateway or a client's shared cache serve one caller's list
//! to another. A result without the hints is not cacheable and gets none.
//!
//! Both response shapes are handled:
//!
//! - `application/json`: the body (one response, or a batch of them) is
//!   read, the results whose `id` is a list request's are rewritten.
//! - `text/event-stream`: events pass through one by one as they complete;
//!   the event whose data is the response to the list request is
//!   rewritten, and once every list response has gone by the rest of the
//!   stream is forwarded frame by frame without looking at it. A single
//!   event larger than 16 MiB ends the stream with an error rather than
//!   go out unfiltered.
//!
//! Switch it off with
//! [`McpPolicyLayer::filter_lists(false)`](crate::mcp::McpPolicyLayer::filter_lists).
//!
//! # Example
//!
//! ```
//! use tower_mcp_auth::mcp::{McpPolicy, Rule};
//! use tower_mcp_auth::{AuthScheme, Principal};
//!
//! let policy = McpPolicy::builder()
//!     .tool("create_admin_user", Rule::api_key())
//!     .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
//!     .build()
//!     .unwrap();
//! let key = Principal::new(AuthScheme::ApiKey, "svc");
//! // What the filter asks for each listed tool:
//! assert!(policy.may_call_tool(Some(&key), "create_admin_user"));
//! assert!(!policy.may_call_tool(Some(&key), "get_user_data"));
//! ```

use std::{
    pin::Pin,
    task::{ready, Context, Poll},
};

use axum::{body::Body, response::Response};
use bytes::{Bytes, BytesMut};
use http::header;
use http_body::Frame;
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use serde_json::Value;

use crate::principal::Principal;

use super::{inspect::McpRequest, policy::McpPolicy};

const MAX_EVENT: usize = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    fn from_method(method: &str) -> Option<Self> {
        Some(match method {
            "tools/list" => Self::Tools,
            "prompts/list" => Self::Prompts,
            "resources/list" => Self::Resources,
            "resources/templates/list" => Self::Templates,
            _ => return None,
        })
    }

    /// The result member holding the items, and the item member naming one.
    fn members(self) -> (&'static str, &'static str) {
        match self {
            Self::Tools => ("tools", "name"),
            Self::Prompts => ("prompts", "name"),
            Self::Resources => ("resources", "uri"),
            Self::Templates => ("resourceTemplates", "uriTemplate"),
        }
    }
}

/// What to filter in one response: the list requests' ids and kinds.
pub(crate) struct ListFilter {
    policy: McpPolicy,
    principal: Option<Principal>,
    pending: Vec<(Value, ListKind)>,
}

impl ListFilter {
    /// The list requests of `req`, if any.
    pub(crate) fn new(
        policy: &McpPolicy,
        principal: Option<Principal>,
        req: &McpRequest,
    ) -> Option<Self> {
        let pending: Vec<_> = req
            .calls()
            .iter()
            .filter_map(|c| {
                let kind = ListKind::from_method(c.method()?)?;
                let id = serde_json::from_str::<Value>(c.id()?.get()).ok()?;
                Some((id, kind))
            })
            .collect();
        (!pending.is_empty()).then(|| Self {
            policy: policy.clone(),
            principal,
            pending,
        })
    }

    fn allowed(&self, kind: ListKind, name: &str) -> bool {
        let p = self.principal.as_ref();
        match kind {
            ListKind::Tools => self.policy.may_call_tool(p, name),
            ListKind::Prompts => self.policy.may_get_prompt(p, name),
            ListKind::Resources | ListKind::Templates => self.policy.may_read_resource(p, name),
        }
    }

    /// Filters one JSON-RPC message in place; `true` when it was the
    /// response to a pending list request (which is then done).
    fn message(&mut self, msg: &mut Value) -> bool {
        let Some(obj) = msg.as_object_mut() else {
            return false;
        };
        let Some(pos) = obj
            .get("id")
            .and_then(|id| self.pending.iter().position(|(p, _)| p == id))
        else {
            return false;
        };
        let (_, kind) = self.pending.swap_remove(pos);
        let (field, key) = kind.members();
        let Some(result) = obj.get_mut("result").and_then(Value::as_object_mut) else {
            return true;
        };
        if let Some(items) = result.get_mut(field).and_then(Value::as_array_mut) {
            items.retain(|item| {
                item.get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|name| self.allowed(kind, name))
            });
        }
        // The list is now this caller's: a cacheable one (SEP-2549 `ttlMs`
        // or `cacheScope`; without them nothing caches it) must not say
        // `public`, which lets a shared cache serve it to other callers.
        if result.contains_key("ttlMs") || result.contains_key("cacheScope") {
            result.insert("cacheScope".into(), Value::String("private".into()));
        }
        true
    }

    fn done(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Filters a response for the list requests in `filter`.
pub(crate) async fn apply(response: Response, filter: ListFilter) -> Response {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        response.map(|body| Body::new(SseFilter::new(body, filter)))
    } else if content_type.starts_with("application/json") {
        json(response, filter).await
    } else {
        response
    }
}

async fn json(response: Response, mut filter: ListFilter) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = http::StatusCode::BAD_GATEWAY;
            return r;
        }
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let changed = match &mut value {
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, m| filter.message(m) | acc),
        v => filter.message(v),
    };
    if !changed {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let out = serde_json::to_vec(&value).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

pin_project! {
    /// An SSE body that rewrites the events carrying list results.
    struct SseFilter {
        #[pin]
        inner: Body,
        buf: BytesMut,
        filter: Option<ListFilter>,
    }
}

impl SseFilter {
    fn new(inner: Body, filter: ListFilter) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            filter: Some(filter),
        }
    }
}

/// Where the event at the start of `buf` ends (after its blank line).
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'\n' => {
                let line = &buf[line_start..i];
                if line.is_empty() || line == b"\r" {
                    return Some(i + 1);
                }
                line_start = i + 1;
            }
            b'\r' if buf.get(i + 1) != Some(&b'\n') && i + 1 < buf.len() => {
                // A lone CR ends a line too.
                if i == line_start {
                    return Some(i + 1);
                }
                line_start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Rewrites one event when it carries a pending list response.
fn event(filter: &mut ListFilter, raw: &[u8], out: &mut BytesMut) {
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(_) => return out.extend_from_slice(raw),
    };
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let data: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    if data.is_empty() {
        return out.extend_from_slice(raw);
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&data.join("\n")) else {
        return out.extend_from_slice(raw);
    };
    if !filter.message(&mut value) {
        return out.extend_from_slice(raw);
    }
    let json = serde_json::to_string(&value).unwrap_or_default();
    let mut wrote_data = false;
    for line in lines.iter().filter(|l| !l.is_empty()) {
        if line.starts_with("data:") {
            if !wrote_data {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(json.as_bytes());
                out.extend_from_slice(b"\n");
                wrote_data = true;
            }
        } else {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\n");
        }
    }
    out.extend_from_slice(b"\n");
}

impl http_body::Body for SseFilter {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            let Some(filter) = this.filter.as_mut() else {
                if !this.buf.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))));
                }
                return this.inner.poll_frame(cx);
            };
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let data = match frame.into_data() {
                        Ok(d) => d,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    this.buf.extend_from_slice(&data);
                    let mut out = BytesMut::new();
                    while let Some(end) = event_end(this.buf) {
                        let ev = this.buf.split_to(end);
                        event(filter, &ev, &mut out);
                        if filter.done() {
                            out.extend_from_slice(&this.buf.split());
                            *this.filter = None;
                            break;
                        }
                    }
                    if this.filter.is_some() && this.buf.len() > MAX_EVENT {
                        *this.filter = None;
                        this.buf.clear();
                        return Poll::Ready(Some(Err(axum::Error::new(
                            "an SSE event exceeds the list-filter limit",
                        ))));
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    let mut out = BytesMut::new();
                    if !this.buf.is_empty() {
                        let rest = this.buf.split();
                        event(filter, &rest, &mut out);
                    }
                    *this.filter = None;
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        mcp::{McpRequest, Rule},
        principal::{AuthScheme, Scopes},
    };

    fn filter(scheme: AuthScheme, scopes: &str, body: &str) -> ListFilter {
        let policy = McpPolicy::builder()
            .tool("key_tool", Rule::api_key())
            .tool("read_tool", Rule::bearer().scopes(["read:data"]))
            .resource("user://{id}/private", Rule::bearer().scopes(["read:data"]))
            .build()
            .unwrap();
        let p = Principal::new(scheme, "u").with_scopes(Scopes::parse(scopes));
        ListFilter::new(
            &policy,
            Some(p),
            &McpRequest::parse(body.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    const TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    const RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"key_tool"},{"name":"read_tool"},{"name":"open_tool"},{"nameless":1}],"nextCursor":"c"}}"#;

    async fn body_of(r: Response) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn json_response() {
        let mut res = Response::new(Body::from(RESULT));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, RESULT.len().into());
        let out = apply(res, filter(AuthScheme::ApiKey, "", TOOLS)).await;
        assert!(out.headers().get(header::CONTENT_LENGTH).is_none());
        let v: Value = serde_json::from_str(&body_of(out).await).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"key_tool"},{"name":"open_tool"}],"nextCursor":"c"}})
        );
    }

    #[tokio::test]
    async fn a_cacheable_list_becomes_private() {
        for hints in [
            r#""ttlMs":60000,"cacheScope":"public""#,
            r#""ttlMs":60000"#,
            r#""cacheScope":"public""#,
        ] {
            let result = RESULT.replace(r#""nextCursor":"c""#, hints);
            let mut res = Response::new(Body::from(result));
            res.headers_mut()
                .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            let out = apply(res, filter(AuthScheme::ApiKey, "", TOOLS)).await;
            let v: Value = serde_json::from_str(&body_of(out).await).unwrap();
            assert_eq!(v["result"]["cacheScope"], "private", "{hints}");
            assert_eq!(
                v["result"]["ttlMs"],
                if hints.contains("ttlMs") {
                    serde_json::json!(60000)
                } else {
                    Value::Null
                },
                "{hints}: ttlMs kept as it was"
            );
            assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 2);
        }
    }

    #[tokio::test]
    async fn other_ids_are_untouched() {
        let other = RESULT.replace("\"id\":1", "\"id\":2");
        let mut res = Response::new(Body::from(other.clone()));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let out = apply(res, filter(AuthScheme::ApiKey, "", TOOLS)).await;
        assert_eq!(body_of(out).await, other);
    }

    #[tokio::test]
    async fn sse_rewrites_only_the_result_event_across_chunk_boundaries() {
        let progress =
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
        let result = format!("id: 7\r\ndata: {RESULT}\r\n\r\n");
        let tail = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"key_tool\"}]}}\n\n";
        let whole = format!("{progress}{result}{tail}");
        // Split into 5-byte chunks.
        let body = Body::new(Chunks(
            whole
                .as_bytes()
                .chunks(5)
                .map(Bytes::copy_from_slice)
                .collect(),
        ));
        let mut res = Response::new(body);
        res.headers_mut()
            .insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
        let out = body_of(apply(res, filter(AuthScheme::Jwt, "read:data", TOOLS)).await).await;
        let want_result = "id: 7\ndata: {\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{\"nextCursor\":\"c\",\"tools\":[{\"name\":\"read_tool\"},{\"name\":\"open_tool\"}]}}\n\n";
        assert_eq!(
            out,
            format!("{progress}{want_result}{tail}"),
            "after the result, bytes pass as they are"
        );
    }

    /// A body that yields its chunks one frame at a time.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[test]
    fn event_boundaries() {
        assert_eq!(event_end(b"data: x\n\nrest"), Some(9));
        assert_eq!(event_end(b"data: x\r\n\r\nrest"), Some(11));
        assert_eq!(event_end(b"data: x\n"), None);
        assert_eq!(event_end(b"\n"), Some(1));
    }
}
