//! List filtering: every `tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list` and `skills/list` result that leaves the MCP
//! endpoint is trimmed to what the caller of that HTTP exchange may call;
//! what the policy does not name is reported ([`Gaps`](gaps::Gaps)).

pub(super) mod gaps;
mod names;
mod reply;
mod shape;
mod sse;

pub(crate) use self::names::Names;
pub(crate) use self::reply::Filtered;
pub(crate) use self::shape::may_spell_letters;

use std::sync::Arc;

use axum::{body::Body, extract::OriginalUri, response::Response};
use http::{header, request::Parts, HeaderValue, Method, StatusCode, Uri};
use serde_json::Value;

use crate::{audit, jsonrpc_id::JsonRpcId, principal::Principal};

use self::shape::ListKind;
use super::{inspect::McpRequest, policy::McpPolicy};

/// Why a reply could not be filtered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unreadable {
    Encoded,
    NotJson,
    TooLarge,
    BodyFailed,
    /// An `input_required` result that answers no request of its exchange
    /// (the handle binding cannot bind its `requestState`).
    Unbound,
}

impl Unreadable {
    fn describe(self) -> &'static str {
        match self {
            Self::Encoded => "the reply has a Content-Encoding (compressed); put compression outside the policy layer",
            Self::NotJson => "the reply is not valid JSON",
            Self::TooLarge => "the reply is larger than the response limit",
            Self::BodyFailed => "the reply's body failed while being read",
            Self::Unbound => "an input_required result answers no request of this exchange",
        }
    }
}

/// What rewrites the replies of one exchange: the list filter, the handle
/// binding, or both in one pass ([`Both`]). [`Filtered`] reads JSON bodies
/// whole and event streams event by event, and hands each text that
/// [`may_carry`](Self::may_carry) to [`rewrite`](Self::rewrite).
pub(crate) trait Rewriter: Send + Unpin + 'static {
    /// The member names this rewriter reads: [`Both`] searches for its
    /// two rewriters' names in one pass.
    fn names(&self) -> Names;
    /// Whether `text` holds, as written, a text of this exchange's own
    /// that this rewriter looks for besides its [`names`](Self::names).
    fn other_names_in(&self, _text: &[u8]) -> bool {
        false
    }
    /// Whether a reader could find what this rewriter changes in `text`:
    /// its names (or a text of its own) as written, or an escape that
    /// could spell one ([`may_spell_letters`]); `false` lets the text go
    /// on unparsed.
    fn may_carry(&self, text: &[u8]) -> bool {
        self.names().found_in(text) || self.other_names_in(text) || may_spell_letters(text)
    }
    /// `text` written again, `None` when it goes on as it is.
    fn rewrite(&self, text: &[u8]) -> Result<Option<Vec<u8>>, Unreadable>;
    /// The most bytes of one reply (or event) held to read it.
    fn limit(&self) -> usize;
    /// The withheld-reply errors and audit for a reply unreadable `why`.
    fn withhold(&self, why: Unreadable) -> &Withhold;
}

/// The rewriters of two layers in one pass: `inner`'s (the handle
/// binding's), then `outer`'s (the list filter's) on what `inner` wrote,
/// as when each layer reads the reply in turn, but with one read of the
/// body, one search for both layers' names, one for escapes, one body
/// handed on.
/// [`McpAuth`](crate::stack::McpAuth)'s policy layer hands its list filter
/// down ([`HandedDown`]) to the handle binding below it, which applies
/// both.
pub(crate) struct Both<I, O> {
    inner: I,
    outer: O,
    /// Whether `outer`'s rewriting failed (the reply is then withheld in
    /// its name, as it would have been when it read the reply itself).
    outer_failed: std::sync::atomic::AtomicBool,
}

impl<I: Rewriter, O: Rewriter> Both<I, O> {
    pub(crate) fn new(inner: I, outer: O) -> Self {
        Self {
            inner,
            outer,
            outer_failed: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl<I: Rewriter, O: Rewriter> Rewriter for Both<I, O> {
    fn names(&self) -> Names {
        self.inner.names().and(self.outer.names())
    }

    fn other_names_in(&self, text: &[u8]) -> bool {
        self.inner.other_names_in(text) || self.outer.other_names_in(text)
    }

    fn rewrite(&self, text: &[u8]) -> Result<Option<Vec<u8>>, Unreadable> {
        let inner = if self.inner.may_carry(text) {
            self.inner.rewrite(text)?
        } else {
            None
        };
        let text = inner.as_deref().unwrap_or(text);
        if !self.outer.may_carry(text) {
            return Ok(inner);
        }
        match self.outer.rewrite(text) {
            Ok(outer) => Ok(outer.or(inner)),
            Err(why) => {
                (self.outer_failed).store(true, std::sync::atomic::Ordering::Relaxed);
                Err(why)
            }
        }
    }

    fn limit(&self) -> usize {
        self.inner.limit().min(self.outer.limit())
    }

    /// A reply too large is withheld by the layer with the smaller limit
    /// (the inner one when they are the same, as [`McpAuth`] builds
    /// them); one that fails `outer`'s rewriting by `outer`; any other
    /// (encoded, broken, failing `inner`'s rewriting) by `inner`, which
    /// met it first.
    ///
    /// [`McpAuth`]: crate::stack::McpAuth
    fn withhold(&self, why: Unreadable) -> &Withhold {
        let outer_first = match why {
            Unreadable::TooLarge => self.outer.limit() < self.inner.limit(),
            _ => self.outer_failed.load(std::sync::atomic::Ordering::Relaxed),
        };
        if outer_first {
            self.outer.withhold(why)
        } else {
            self.inner.withhold(why)
        }
    }
}

/// The list filter of an exchange, handed down as a request extension by
/// the policy layer to the handle binding below it (both in
/// [`McpAuth`](crate::stack::McpAuth)), which takes it out before the
/// service is called and filters with it in its own pass ([`Both`]).
#[derive(Clone)]
pub(crate) struct HandedDown(pub(crate) ListFilter);

impl HandedDown {
    /// How `layer` withholds the replies of the same exchange, holding at
    /// most `limit` bytes: what it says of the exchange is the list
    /// filter's, made once.
    pub(crate) fn withhold_for(&self, layer: &'static str, limit: usize) -> Withhold {
        self.0.withhold.for_layer(layer, limit)
    }
}

/// How the replies of one exchange are withheld when they cannot be read:
/// one JSON-RPC error per id of the request, an audit event.
#[derive(Clone)]
pub(crate) struct Withhold {
    /// The layer named in the audit event and the error.
    layer: &'static str,
    limit: usize,
    /// What the errors and the audit event say of the exchange: shared by
    /// the layers that read its replies, made once.
    exchange: Arc<Exchange>,
}

/// The exchange a reply is withheld from.
struct Exchange {
    principal: Option<Principal>,
    /// The ids of the request's requests (for the errors that replace an
    /// unreadable reply; never a response's id, which is the server's).
    first_id: Option<JsonRpcId>,
    more_ids: Vec<JsonRpcId>,
    method: Method,
    uri: Uri,
}

impl Withhold {
    /// For the exchange of `parts` and `req`, holding at most `limit`
    /// bytes of a reply.
    pub(crate) fn new(
        layer: &'static str,
        principal: Option<Principal>,
        req: &McpRequest,
        parts: &Parts,
        limit: usize,
    ) -> Self {
        let mut ids = req.calls().iter().filter_map(|c| c.request_id().cloned());
        let first_id = ids.next();
        let more_ids = ids.collect();
        let exchange = Exchange {
            principal,
            first_id,
            more_ids,
            method: parts.method.clone(),
            uri: parts
                .extensions
                .get::<OriginalUri>()
                .map_or_else(|| parts.uri.clone(), |o| o.0.clone()),
        };
        Self {
            layer,
            limit,
            exchange: Arc::new(exchange),
        }
    }

    /// For the same exchange, in the name of another `layer` holding at
    /// most `limit` bytes.
    pub(crate) fn for_layer(&self, layer: &'static str, limit: usize) -> Self {
        Self {
            layer,
            limit,
            exchange: Arc::clone(&self.exchange),
        }
    }

    /// The most bytes of one reply (or event) held to read it.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The JSON-RPC errors that stand for an unreadable reply: one per id
    /// of the request, or one with the `null` id.
    fn errors(&self, why: Unreadable) -> Vec<String> {
        let what = match self.layer {
            "mcp_policy" => "the list filter",
            _ => "the handle binding",
        };
        let message = |id: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32603,"message":"the server's reply was withheld: {what} could not read it","data":{{"error":"unreadable_reply","error_description":"{}"}}}}}}"#,
                why.describe()
            )
        };
        let exchange = &*self.exchange;
        match &exchange.first_id {
            None => vec![message("null")],
            Some(first) => std::iter::once(first)
                .chain(&exchange.more_ids)
                .map(|id| message(id.get()))
                .collect(),
        }
    }

    /// The response that replaces an unreadable reply (502).
    fn refuse(&self, why: Unreadable) -> Response {
        self.audit(why);
        let mut errors = self.errors(why);
        let body = if errors.len() == 1 {
            errors.remove(0)
        } else {
            format!("[{}]", errors.join(","))
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    fn audit(&self, why: Unreadable) {
        audit::refused_because(
            self.layer,
            audit::Refusal {
                reason: "unreadable_reply",
                detail: why.describe(),
                status: 502,
            },
            self.exchange.principal.as_ref(),
            &self.exchange.method,
            self.exchange.uri.path(),
        );
    }
}

/// The filter of one HTTP exchange: for whom, and how to refuse.
#[derive(Clone)]
pub(crate) struct ListFilter {
    policy: McpPolicy,
    withhold: Withhold,
}

impl ListFilter {
    /// The filter for the exchange of `parts` and `req`, holding at most
    /// `limit` bytes of a reply.
    pub(crate) fn new(
        policy: McpPolicy,
        principal: Option<Principal>,
        req: &McpRequest,
        parts: &Parts,
        limit: usize,
    ) -> Self {
        Self {
            policy,
            withhold: Withhold::new("mcp_policy", principal, req, parts, limit),
        }
    }

    fn allowed(&self, kind: ListKind, name: &str) -> bool {
        let p = self.withhold.exchange.principal.as_ref();
        match kind {
            ListKind::Tools => self.policy.may_call_tool(p, name),
            ListKind::Prompts => self.policy.may_get_prompt(p, name),
            ListKind::Resources | ListKind::Templates => self.policy.may_read_resource(p, name),
            ListKind::Skills => self.policy.may_get_skill(p, name),
        }
    }
}

impl Rewriter for ListFilter {
    fn names(&self) -> Names {
        Names::LISTS
    }

    /// `text`, when it carries a list result, filtered and written again.
    fn rewrite(&self, text: &[u8]) -> Result<Option<Vec<u8>>, Unreadable> {
        if !shape::carries_list(text).map_err(|_| Unreadable::NotJson)? {
            return Ok(None);
        }
        let mut value: Value = serde_json::from_slice(text).map_err(|_| Unreadable::NotJson)?;
        shape::filter(
            &mut value,
            &|kind, name| self.allowed(kind, name),
            &|kind, items, last_page| {
                self.policy
                    .gaps()
                    .observe(&self.policy, kind, items, last_page);
            },
        );
        serde_json::to_vec(&value)
            .map(Some)
            .map_err(|_| Unreadable::NotJson)
    }

    fn limit(&self) -> usize {
        self.withhold.limit()
    }

    fn withhold(&self, _: Unreadable) -> &Withhold {
        &self.withhold
    }
}

/// The first byte of `text` that is not JSON white space.
fn first_byte(text: &[u8]) -> Option<u8> {
    text.iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Whether a text whose first byte (after white space) is `b` may be read
/// as JSON by a client: an object or array, or the byte order mark or the
/// first byte of a UTF-16 / UTF-32 text, which some clients decode before
/// parsing. Anything else cannot be a JSON-RPC message.
fn may_be_json(b: u8) -> bool {
    matches!(b, b'{' | b'[' | 0xEF | 0xFE | 0xFF | 0x00)
}

#[cfg(test)]
mod tests {
    use super::reply::apply;
    use super::*;
    use crate::{
        mcp::McpRequest,
        principal::{AuthScheme, Scopes},
        Rule,
    };
    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::BodyExt;
    use serde_json::json;
    use std::collections::VecDeque;
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    fn policy() -> McpPolicy {
        McpPolicy::builder()
            .tool("key_tool", Rule::api_key())
            .tool("read_tool", Rule::bearer().scopes(["read:data"]))
            .prompt("key_prompt", Rule::api_key())
            .resource("user://{id}/private", Rule::bearer().scopes(["read:data"]))
            .build()
            .unwrap()
    }

    /// The filter of a POST of `body` by an API key (or a bearer token with
    /// `scopes`), holding at most `limit` bytes.
    fn filter_with(scheme: AuthScheme, scopes: &str, body: &str, limit: usize) -> ListFilter {
        let p = Principal::new(scheme, "u").with_scopes(Scopes::parse(scopes));
        let method = if body.is_empty() { "GET" } else { "POST" };
        let (parts, ()) = http::Request::builder()
            .method(method)
            .uri("/mcp")
            .body(())
            .unwrap()
            .into_parts();
        let req = if body.is_empty() {
            McpRequest::empty()
        } else {
            McpRequest::parse(body.as_bytes()).unwrap()
        };
        ListFilter::new(policy(), Some(p), &req, &parts, limit)
    }

    fn key_filter(body: &str) -> ListFilter {
        filter_with(AuthScheme::ApiKey, "", body, DEFAULT_LIMIT)
    }

    const DEFAULT_LIMIT: usize = 1 << 20;
    const TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    const RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"key_tool"},{"name":"read_tool"},{"name":"open_tool"},{"nameless":1}],"nextCursor":"c"}}"#;
    /// What an API key may see of `RESULT`.
    fn key_view(id: Value) -> Value {
        json!({"jsonrpc":"2.0","id":id,"result":{"tools":[{"name":"key_tool"},{"name":"open_tool"}],"nextCursor":"c","cacheScope":"private"}})
    }

    fn response(content_type: Option<&str>, body: impl Into<Body>) -> Response {
        let mut res = Response::new(body.into());
        if let Some(ct) = content_type {
            res.headers_mut()
                .insert(header::CONTENT_TYPE, ct.parse().unwrap());
        }
        res
    }

    async fn body_of(r: Response) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    async fn json_of(r: Response) -> Value {
        let text = body_of(r).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// An inner rewriter for [`Both`]: replaces `from` with `to`, or
    /// fails on it; its withhold names the handle binding.
    struct Swap {
        from: &'static str,
        to: &'static str,
        fails: bool,
        withhold: Withhold,
    }

    impl Swap {
        fn new(from: &'static str, to: &'static str, fails: bool, limit: usize) -> Self {
            let (parts, ()) = http::Request::post("/mcp").body(()).unwrap().into_parts();
            let req = McpRequest::parse(TOOLS.as_bytes()).unwrap();
            let withhold = Withhold::new("handle_binding", None, &req, &parts, limit);
            Self {
                from,
                to,
                fails,
                withhold,
            }
        }
    }

    impl Rewriter for Swap {
        fn names(&self) -> Names {
            Names::NONE
        }

        fn other_names_in(&self, text: &[u8]) -> bool {
            memchr::memmem::find(text, self.from.as_bytes()).is_some()
        }

        fn rewrite(&self, text: &[u8]) -> Result<Option<Vec<u8>>, Unreadable> {
            let text = std::str::from_utf8(text).unwrap();
            match (text.contains(self.from), self.fails) {
                (false, _) => Ok(None),
                (true, true) => Err(Unreadable::Unbound),
                (true, false) => Ok(Some(text.replace(self.from, self.to).into_bytes())),
            }
        }

        fn limit(&self) -> usize {
            self.withhold.limit()
        }

        fn withhold(&self, _: Unreadable) -> &Withhold {
            &self.withhold
        }
    }

    #[tokio::test]
    async fn both_rewrite_in_turn_in_one_pass() {
        // The inner one's output is what the outer one filters: the tool it
        // renames to one the key may not call is filtered out.
        let inner = Swap::new("open_tool", "read_tool", false, DEFAULT_LIMIT);
        let both = Both::new(inner, key_filter(TOOLS));
        let out = json_of(apply(response(None, RESULT), both).await).await;
        assert_eq!(
            out,
            json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"key_tool"}],"nextCursor":"c","cacheScope":"private"}})
        );
        // Only the inner one has something to do: its rewriting goes out.
        let inner = Swap::new("\"x\"", "\"y\"", false, DEFAULT_LIMIT);
        let plain = r#"{"jsonrpc":"2.0","id":1,"result":{"content":"x"}}"#;
        let both = Both::new(inner, key_filter(TOOLS));
        assert_eq!(
            body_of(apply(response(None, plain), both).await).await,
            plain.replace("\"x\"", "\"y\"")
        );
        // Neither: the reply goes on as it came.
        let inner = Swap::new("nowhere", "", true, DEFAULT_LIMIT);
        let both = Both::new(inner, key_filter(TOOLS));
        assert_eq!(
            body_of(apply(response(None, plain), both).await).await,
            plain
        );
    }

    #[tokio::test]
    async fn both_withhold_in_the_name_of_the_layer_that_could_not_read() {
        let message = |v: &Value| v["error"]["message"].as_str().unwrap().to_owned();
        // The inner one fails: the handle binding's withhold.
        let inner = Swap::new("open_tool", "", true, DEFAULT_LIMIT);
        let res = apply(response(None, RESULT), Both::new(inner, key_filter(TOOLS))).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert!(message(&json_of(res).await).contains("the handle binding"));
        // The outer one fails (a list in a text that is not JSON): the
        // list filter's.
        let inner = Swap::new("nowhere", "", true, DEFAULT_LIMIT);
        let broken = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[}"#;
        let res = apply(response(None, broken), Both::new(inner, key_filter(TOOLS))).await;
        assert!(message(&json_of(res).await).contains("the list filter"));
        // Too large: the smaller limit, and its layer; the inner one's when
        // they are the same.
        for (inner_limit, outer_limit, layer) in [
            (16, DEFAULT_LIMIT, "the handle binding"),
            (DEFAULT_LIMIT, 16, "the list filter"),
            (16, 16, "the handle binding"),
        ] {
            let inner = Swap::new("nowhere", "", false, inner_limit);
            let outer = filter_with(AuthScheme::ApiKey, "", TOOLS, outer_limit);
            let res = apply(response(None, RESULT), Both::new(inner, outer)).await;
            assert!(message(&json_of(res).await).contains(layer), "{layer}");
        }
        // Encoded: the inner one met it first.
        let inner = Swap::new("nowhere", "", false, DEFAULT_LIMIT);
        let mut res = response(None, RESULT);
        res.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let res = apply(
            res,
            Both::new(inner, filter_with(AuthScheme::ApiKey, "", TOOLS, 16)),
        )
        .await;
        assert!(message(&json_of(res).await).contains("the handle binding"));
    }

    #[tokio::test]
    async fn json_response_is_filtered_and_marked_private() {
        let mut res = response(Some("application/json"), RESULT);
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, RESULT.len().into());
        let out = apply(res, key_filter(TOOLS)).await;
        assert_eq!(out.status(), 200);
        assert!(out.headers().get(header::CONTENT_LENGTH).is_none());
        assert_eq!(json_of(out).await, key_view(json!(1)));
    }

    /// 1a: rmcp answers `1.0`, `1e0`, `10E-1` with the id `1` and `-0` with
    /// `0`; the filter must not depend on the spelling.
    #[tokio::test]
    async fn ids_rmcp_rewrites_are_filtered() {
        for (sent, echoed) in [("1.0", 1), ("1e0", 1), ("10E-1", 1), ("-0", 0)] {
            let req = TOOLS.replace("\"id\":1", &format!("\"id\":{sent}"));
            let reply = RESULT.replace("\"id\":1", &format!("\"id\":{echoed}"));
            let out = apply(response(Some("application/json"), reply), key_filter(&req)).await;
            assert_eq!(json_of(out).await, key_view(json!(echoed)), "id {sent}");
        }
    }

    /// 1b: a list result on the response to a ping (rmcp routed it there by
    /// a reused id), and on the GET stream, is filtered for that caller.
    #[tokio::test]
    async fn a_list_on_any_exchange_is_filtered() {
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let out = apply(response(Some("application/json"), RESULT), key_filter(ping)).await;
        assert_eq!(json_of(out).await, key_view(json!(1)));

        let stream = format!("id: 3\ndata: {RESULT}\n\n");
        let out = apply(response(Some("text/event-stream"), stream), key_filter("")).await;
        let text = body_of(out).await;
        let data = text
            .strip_prefix("id: 3\ndata: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            serde_json::from_str::<Value>(data).unwrap(),
            key_view(json!(1))
        );
    }

    #[tokio::test]
    async fn every_list_kind_and_batches_and_escaped_names() {
        let batch = json!([
            {"jsonrpc":"2.0","id":"a","result":{"prompts":[{"name":"key_prompt"},{"name":"p"}],"cacheScope":"public"}},
            {"jsonrpc":"2.0","id":"b","result":{"resources":[{"uri":"user://1/private"},{"uri":"file:///x"}]}},
            {"jsonrpc":"2.0","id":"c","result":{"resourceTemplates":[{"uriTemplate":"user://{id}/private"},{"uriTemplate":"x://{y}"}]}},
            {"jsonrpc":"2.0","id":"d","result":{"content":[]}},
        ]);
        let out = apply(
            response(Some("application/json"), batch.to_string()),
            key_filter(TOOLS),
        )
        .await;
        assert_eq!(
            json_of(out).await,
            json!([
                {"jsonrpc":"2.0","id":"a","result":{"prompts":[{"name":"key_prompt"},{"name":"p"}],"cacheScope":"private"}},
                {"jsonrpc":"2.0","id":"b","result":{"resources":[{"uri":"file:///x"}],"cacheScope":"private"}},
                {"jsonrpc":"2.0","id":"c","result":{"resourceTemplates":[{"uriTemplate":"x://{y}"}],"cacheScope":"private"}},
                {"jsonrpc":"2.0","id":"d","result":{"content":[]}},
            ])
        );
        // A bearer without the scope does not get the API-key prompt.
        let prompts = r#"{"jsonrpc":"2.0","id":2,"result":{"prompts":[{"name":"key_prompt"}]}}"#;
        let out = apply(
            response(Some("application/json"), prompts),
            filter_with(AuthScheme::Jwt, "", TOOLS, DEFAULT_LIMIT),
        )
        .await;
        assert_eq!(json_of(out).await["result"]["prompts"], json!([]));
        // Member names spelled with escapes are the same names to a client.
        let escaped =
            r#"{"jsonrpc":"2.0","id":1,"r\u0065sult":{"t\u006fols":[{"name":"read_tool"}]}}"#;
        let out = apply(
            response(Some("application/json"), escaped),
            key_filter(TOOLS),
        )
        .await;
        assert_eq!(json_of(out).await["result"]["tools"], json!([]));
    }

    /// Issue 23, 6a: `skills/list` (rmcp 3.11, SEP-2640) names every
    /// skill's URI, description and files; each skill stays only when
    /// `skills/get` of its `uri` is allowed (its resource rule, else the
    /// unmatched resource rule, else the `skills/get` method rule), in a
    /// JSON body and an SSE stream alike.
    #[tokio::test]
    async fn skills_are_filtered_by_the_skills_get_rule() {
        let policy = McpPolicy::builder()
            .resource(
                "skill://billing/SKILL.md",
                Rule::bearer().scopes(["billing"]),
            )
            .method("skills/get", Rule::api_key())
            .build()
            .unwrap();
        let skill = |name: &str| {
            json!({"uri": format!("skill://{name}/SKILL.md"),
                   "frontmatter": {"name": name, "description": format!("the {name} skill")},
                   "resources": [{"uri": format!("skill://{name}/SKILL.md"), "digest": "sha256:00", "size": 1}]})
        };
        let reply =
            json!({"jsonrpc":"2.0","id":4,"result":{"skills":[skill("billing"), skill("notes")]}})
                .to_string();
        let req = r#"{"jsonrpc":"2.0","id":4,"method":"skills/list"}"#;
        let filter = |who: Principal| {
            let (parts, ()) = http::Request::post("/mcp").body(()).unwrap().into_parts();
            let mcp = McpRequest::parse(req.as_bytes()).unwrap();
            ListFilter::new(policy.clone(), Some(who), &mcp, &parts, DEFAULT_LIMIT)
        };
        let key = || Principal::new(AuthScheme::ApiKey, "ops");
        let billing =
            || Principal::new(AuthScheme::Jwt, "ann").with_scopes(Scopes::parse("billing"));
        for (who, want) in [(key(), "notes"), (billing(), "billing")] {
            let out = apply(
                response(Some("application/json"), reply.clone()),
                filter(who),
            )
            .await;
            let v = json_of(out).await;
            assert_eq!(v["result"]["skills"], json!([skill(want)]), "{v}");
            assert_eq!(v["result"]["cacheScope"], "private");
        }
        let stream = format!("id: 1\ndata: {reply}\n\n");
        let out = apply(
            response(Some("text/event-stream"), Body::new(Chunks::of(&stream, 7))),
            filter(key()),
        )
        .await;
        let text = body_of(out).await;
        assert!(text.contains("skill://notes/SKILL.md"), "{text}");
        assert!(!text.contains("billing"), "{text}");
    }

    #[tokio::test]
    async fn replies_without_a_list_pass_as_they_are() {
        let other = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"tools\":[1]}"}],"tools":{"not":"an array"}}}"#;
        let out = apply(response(Some("application/json"), other), key_filter(TOOLS)).await;
        assert_eq!(body_of(out).await, other);
        // Unparsed when no list member name can be in it, valid or not:
        // JSON in a text (fixed escapes only), a reply cut short.
        let text = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"a\":\"b\\n\"}"}],"isError":false}}"#;
        for reply in [text, &text[..40]] {
            let out = apply(response(Some("application/json"), reply), key_filter(TOOLS)).await;
            assert_eq!(out.status(), 200);
            assert_eq!(body_of(out).await, reply);
        }
        // Text that cannot be a JSON-RPC message streams through, length kept.
        let mut res = response(Some("text/plain"), "Session not found");
        res.headers_mut().insert(header::CONTENT_LENGTH, 17.into());
        let out = apply(res, key_filter(TOOLS)).await;
        assert_eq!(out.headers()[header::CONTENT_LENGTH], "17");
        assert_eq!(body_of(out).await, "Session not found");
    }

    /// 1d: a list in a body of another content type is filtered all the same.
    #[tokio::test]
    async fn content_type_does_not_matter() {
        for ct in [None, Some("text/plain"), Some("application/x-unknown")] {
            let out = apply(response(ct, RESULT), key_filter(TOOLS)).await;
            assert_eq!(json_of(out).await, key_view(json!(1)), "{ct:?}");
        }
    }

    async fn assert_refused(out: Response, id: Value, why: &str) {
        assert_eq!(out.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(out.headers()[header::CONTENT_TYPE], "application/json");
        let v = json_of(out).await;
        assert_eq!(
            (&v["id"], &v["error"]["code"], &v["error"]["data"]["error"]),
            (&id, &json!(-32603), &json!("unreadable_reply")),
            "{v}"
        );
        assert!(
            v["error"]["data"]["error_description"]
                .as_str()
                .unwrap()
                .contains(why),
            "{v}"
        );
        assert!(!v.to_string().contains("read_tool"), "{v}");
    }

    /// 1d: what the filter cannot read does not go out.
    #[tokio::test]
    async fn unreadable_replies_fail_closed() {
        // Compressed, whatever the content type (here an SSE stream).
        for ct in ["application/json", "text/event-stream"] {
            let mut res = response(Some(ct), RESULT);
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
            assert_refused(apply(res, key_filter(TOOLS)).await, json!(1), "compress").await;
        }
        let mut res = response(Some("application/json"), RESULT);
        res.headers_mut()
            .insert(header::CONTENT_ENCODING, "identity".parse().unwrap());
        assert_eq!(
            json_of(apply(res, key_filter(TOOLS)).await).await,
            key_view(json!(1))
        );
        // Not JSON (a trailing object, NaN, a byte order mark).
        for bad in [
            format!("{RESULT}{{}}"),
            RESULT.replace("\"c\"", "NaN"),
            format!("\u{feff}{RESULT}"),
        ] {
            let out = apply(response(Some("application/json"), bad), key_filter(TOOLS)).await;
            assert_refused(out, json!(1), "not valid JSON").await;
        }
        // Over the limit, and a body that fails.
        let small = filter_with(AuthScheme::ApiKey, "", TOOLS, 64);
        let out = apply(response(Some("application/json"), RESULT), small).await;
        assert_refused(out, json!(1), "larger").await;
        let failing = Body::new(Chunks::failing(vec![Bytes::from_static(b"{\"jsonrpc\"")]));
        let out = apply(
            response(Some("application/json"), failing),
            key_filter(TOOLS),
        )
        .await;
        assert_refused(out, json!(1), "failed").await;
        // A batch request gets one error per id; a GET the null id.
        let batch = format!(r#"[{TOOLS},{{"jsonrpc":"2.0","id":"x","method":"ping"}}]"#);
        let cut = r#"{"result":{"tools":["#;
        let out = apply(response(Some("application/json"), cut), key_filter(&batch)).await;
        let v = json_of(out).await;
        assert_eq!((&v[0]["id"], &v[1]["id"]), (&json!(1), &json!("x")));
        let out = apply(response(Some("application/json"), cut), key_filter("")).await;
        assert_refused(out, Value::Null, "not valid JSON").await;
    }

    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

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
    async fn an_unreadable_reply_is_an_audit_event() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut res = response(Some("application/json"), RESULT);
        res.headers_mut()
            .insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        let _ = apply(res, key_filter(TOOLS)).await;
        let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        for field in [
            "tower_mcp_auth::audit",
            r#"outcome="refused""#,
            r#"reason="unreadable_reply""#,
            r#"subject="u""#,
            "status=502",
            r#"method="POST""#,
            r#"path="/mcp""#,
        ] {
            assert!(out.contains(field), "{field} in {out}");
        }
    }

    #[tokio::test]
    async fn sse_filters_every_list_event_across_chunk_boundaries() {
        let progress =
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
        let priming = "id: 0\nretry: 3000\ndata:\n\n";
        let result = format!("id: 7\r\ndata: {RESULT}\r\n\r\n");
        // A second list result (another id), split over two data lines.
        let second = "data: {\"jsonrpc\":\"2.0\",\"id\":2,\ndata: \"result\":{\"tools\":[{\"name\":\"read_tool\"}]}}\r\r";
        let whole = format!("{priming}{progress}{result}{second}");
        for size in [1, 5, 64, whole.len()] {
            let body = Body::new(Chunks::of(&whole, size));
            let out = apply(
                response(Some("text/event-stream"), body),
                filter_with(AuthScheme::Jwt, "read:data", TOOLS, DEFAULT_LIMIT),
            )
            .await;
            let text = body_of(out).await;
            let lists = text
                .strip_prefix(&format!("{priming}{progress}"))
                .unwrap_or_else(|| panic!("chunks of {size}: {text}"));
            let (first, second) = lists
                .strip_prefix("id: 7\ndata: ")
                .and_then(|l| l.strip_suffix("\n\n"))
                .and_then(|l| l.split_once("\n\ndata: "))
                .unwrap_or_else(|| panic!("chunks of {size}: {lists}"));
            let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap();
            let mut want = key_view(json!(1));
            want["result"]["tools"] = json!([{"name":"read_tool"},{"name":"open_tool"}]);
            assert_eq!(parse(first), want, "chunks of {size}");
            assert_eq!(
                parse(second),
                json!({"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read_tool"}],"cacheScope":"private"}}),
                "chunks of {size}"
            );
        }
    }

    #[tokio::test]
    async fn sse_with_a_byte_order_mark_is_filtered() {
        let stream = format!("\u{feff}data: {RESULT}\n\n");
        let out = apply(
            response(Some("text/event-stream"), stream),
            key_filter(TOOLS),
        )
        .await;
        let text = body_of(out).await;
        assert!(!text.contains("read_tool"), "{text}");
        assert!(text.contains("key_tool"), "{text}");
    }

    /// An unreadable event is replaced by the errors, and nothing follows.
    #[tokio::test]
    async fn sse_fails_closed() {
        let ok = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
        let cases = [
            (
                format!("{ok}data: {RESULT}x\n\ndata: {RESULT}\n\n"),
                DEFAULT_LIMIT,
                "not valid JSON",
            ),
            (format!("{ok}data: {RESULT}\n\n"), ok.len() + 20, "larger"),
        ];
        for (stream, limit, why) in cases {
            let body = Body::new(Chunks::of(&stream, 16));
            let out = apply(
                response(Some("text/event-stream"), body),
                filter_with(AuthScheme::ApiKey, "", TOOLS, limit),
            )
            .await;
            let text = body_of(out).await;
            let rest = text.strip_prefix(ok).unwrap_or_else(|| panic!("{text}"));
            let data = rest
                .strip_prefix("event: message\ndata: ")
                .and_then(|r| r.strip_suffix("\n\n"))
                .unwrap_or_else(|| panic!("{rest}"));
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!((&v["id"], &v["error"]["code"]), (&json!(1), &json!(-32603)));
            assert!(v.to_string().contains(why), "{v}");
        }
    }

    /// 4 MiB in 1 KiB chunks: the event is scanned once and the held bytes
    /// are not copied again per chunk (a rescan or a recopy would touch
    /// about 8 GiB).
    #[tokio::test]
    async fn sse_work_is_linear_in_the_stream() {
        let mut text =
            String::from("data: {\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"s\":\"");
        text.extend(std::iter::repeat_n('x', 4 << 20));
        text.push_str("\"}}\n\n");
        let started = std::time::Instant::now();
        let body = Body::new(Chunks::of(&text, 1024));
        let out = apply(
            response(Some("text/event-stream"), body),
            filter_with(AuthScheme::ApiKey, "", TOOLS, 8 << 20),
        )
        .await;
        assert_eq!(body_of(out).await.len(), text.len());
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
        eprintln!("4 MiB in 1 KiB chunks: {took:?}");
    }

    /// A body that yields its chunks one frame at a time, then maybe fails.
    struct Chunks(VecDeque<Bytes>, bool);

    impl Chunks {
        fn of(text: &str, size: usize) -> Self {
            Self(
                text.as_bytes()
                    .chunks(size)
                    .map(Bytes::copy_from_slice)
                    .collect(),
                false,
            )
        }
        fn failing(chunks: Vec<Bytes>) -> Self {
            Self(chunks.into(), true)
        }
    }

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.0.pop_front() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None if self.1 => Poll::Ready(Some(Err(std::io::Error::other("reset")))),
                None => Poll::Ready(None),
            }
        }
    }
}
