//! The JSON-RPC peek: what a POST to the MCP endpoint asks for.
//!
//! [`McpRequest::parse`] reads a single message or a batch in one pass
//! that checks all of the body is JSON but builds nothing it does not
//! need: the `arguments` of a tool call and every other member are
//! skipped, never built into a tree. For each message it keeps the `id`,
//! the `method` and the target:
//!
//! | method | target |
//! | --- | --- |
//! | `tools/call` | [`Target::Tool`] from `params.name` |
//! | `prompts/get` | [`Target::Prompt`] from `params.name` |
//! | `resources/read`, `resources/subscribe`, `resources/unsubscribe` | [`Target::Resource`] from `params.uri` |
//! | `completion/complete` | `params.ref`: `ref/prompt` → [`Target::Prompt`] (`name`), `ref/resource` → [`Target::Resource`] (`uri`) |
//!
//! Errors are 400s that render as JSON-RPC errors: a body that is not JSON
//! is a parse error (`-32700`); JSON that is not a JSON-RPC request,
//! notification or response — or whose `params` lack the string the target
//! needs — is an invalid request (`-32600`). Duplicate `id`, `method`,
//! `params`, `name`, `uri` or `ref` members are refused too: another parser
//! downstream might take the other copy.
//!
//! # Example
//!
//! ```
//! use tower_mcp_auth::mcp::{McpRequest, Target};
//!
//! let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call",
//!                 "params":{"name":"get_user_data","arguments":{"id":"42"}}}"#;
//! let req = McpRequest::parse(body).unwrap();
//! let call = &req.calls()[0];
//! assert_eq!(call.method(), Some("tools/call"));
//! assert_eq!(call.target(), Some(&Target::Tool("get_user_data".into())));
//! assert_eq!(call.id().unwrap().get(), "7");
//!
//! let err = McpRequest::parse(b"{not json").unwrap_err();
//! assert_eq!(err.status(), 400);
//! assert_eq!(err.jsonrpc_code(), -32700);
//! ```

use std::borrow::Cow;

use http::HeaderMap;
use serde::Deserialize;

use super::json::{JsonStr, Scanner, SyntaxError, MAX_DEPTH};

use crate::error::{AuthError, JsonRpcId, JSONRPC_INVALID_REQUEST, JSONRPC_PARSE_ERROR};

/// JSON-RPC error code for `Mcp-Method` / `Mcp-Name` headers that
/// contradict the body (`HeaderMismatch`, MCP protocol 2026-07-28).
pub const JSONRPC_HEADER_MISMATCH: i64 = -32020;

/// The `Mcp-Method` request header (MCP 2026-07-28).
pub const MCP_METHOD: &str = "mcp-method";
/// The `Mcp-Name` request header (MCP 2026-07-28).
pub const MCP_NAME: &str = "mcp-name";

/// What one call is aimed at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// A tool, by name.
    Tool(String),
    /// A prompt, by name.
    Prompt(String),
    /// A resource, by URI (or, for a completion, the template's URI).
    Resource(String),
}

impl Target {
    /// The tool or prompt name, or the resource URI.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Tool(s) | Self::Prompt(s) | Self::Resource(s) => s,
        }
    }

    /// `tool`, `prompt` or `resource`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tool(_) => "tool",
            Self::Prompt(_) => "prompt",
            Self::Resource(_) => "resource",
        }
    }
}

/// What kind of JSON-RPC message a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// A request: it has a `method` and an `id`.
    Request,
    /// A notification: a `method` and no `id`.
    Notification,
    /// A response from the client to a server request: `result` or
    /// `error`, and no `method`.
    Response,
}

/// One JSON-RPC message of a request: its id, method and target.
#[derive(Clone, Debug)]
pub struct McpCall {
    id: Option<JsonRpcId>,
    method: Option<Cow<'static, str>>,
    target: Option<Target>,
    kind: MessageKind,
}

impl McpCall {
    /// A request for `method` aimed at `target`, without an id (for
    /// evaluating a [`Rule`](crate::mcp::Rule) outside a request, as list
    /// filtering does).
    #[must_use]
    pub fn new(method: impl Into<String>, target: Option<Target>) -> Self {
        Self {
            id: None,
            method: Some(Cow::Owned(method.into())),
            target,
            kind: MessageKind::Request,
        }
    }

    /// The stand-in for a request without a JSON-RPC body (GET, DELETE):
    /// no id, no method, no target.
    pub(crate) fn no_call() -> Self {
        Self {
            id: None,
            method: None,
            target: None,
            kind: MessageKind::Request,
        }
    }

    /// The JSON-RPC id (requests and responses).
    #[must_use]
    pub fn id(&self) -> Option<&JsonRpcId> {
        self.id.as_ref()
    }

    /// The method (requests and notifications).
    #[must_use]
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The tool, prompt or resource the call is aimed at, if any.
    #[must_use]
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// Request, notification or response.
    #[must_use]
    pub fn kind(&self) -> MessageKind {
        self.kind
    }
}

/// The summary of one HTTP request to the MCP endpoint, put into the
/// request extensions by [`McpPolicyLayer`](crate::mcp::McpPolicyLayer)
/// for the layers and handlers after it (a rate limiter pricing tools, a
/// handler logging what was called).
///
/// A GET (the SSE stream) or DELETE (end of session) has no calls.
#[derive(Clone, Debug, Default)]
pub struct McpRequest {
    calls: Vec<McpCall>,
    batch: bool,
}

impl McpRequest {
    /// A request without a JSON-RPC body (GET, DELETE).
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// The messages, in body order (one unless it is a batch).
    #[must_use]
    pub fn calls(&self) -> &[McpCall] {
        &self.calls
    }

    /// Whether the body was a JSON array (a batch, MCP 2025-03-26).
    #[must_use]
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The id of the first message that has one.
    #[must_use]
    pub fn first_id(&self) -> Option<&JsonRpcId> {
        self.calls.iter().find_map(McpCall::id)
    }

    /// Parses a body: one JSON-RPC message or a batch.
    ///
    /// The whole body is checked to be JSON (so no parser after this one
    /// reads a different message), but only the members that decide a
    /// call are read; the rest, a tool's `arguments` above all, is skipped
    /// without being built.
    ///
    /// # Errors
    ///
    /// A 400 [`AuthError`] with JSON-RPC code `-32700` when the body is not
    /// JSON, `-32600` when it is not a well-formed JSON-RPC message or
    /// batch (the error carries the message's id when it could be read).
    pub fn parse(body: &[u8]) -> Result<Self, AuthError> {
        let read = read_body(body).map_err(|e| {
            // The reading stops at the first member of the wrong shape;
            // a body that is not JSON further on says so instead.
            let e = match e {
                ReadError::Shape(_) => check_json(body).err().map_or(e, ReadError::Syntax),
                e => e,
            };
            e.into_error(body)
        })?;
        match read {
            Read::One(message) => Ok(Self {
                calls: vec![message.into_call()?],
                batch: false,
            }),
            Read::Batch(messages) if messages.is_empty() => {
                Err(invalid("an empty batch is not a JSON-RPC request"))
            }
            Read::Batch(messages) => Ok(Self {
                calls: messages
                    .into_iter()
                    .map(Message::into_call)
                    .collect::<Result<Vec<_>, _>>()?,
                batch: true,
            }),
        }
    }

    /// Checks the MCP 2026-07-28 `Mcp-Method` and `Mcp-Name` headers, when
    /// present, against the body. Values may be `=?base64?…?=` encoded.
    /// The headers describe one message, so a batch carrying them is
    /// refused.
    ///
    /// # Errors
    ///
    /// A 400 [`AuthError`] with JSON-RPC code `-32020` (`HeaderMismatch`)
    /// when a header is repeated, not decodable, or differs from the body.
    pub fn check_headers(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let method = header_value(headers, MCP_METHOD)?;
        let name = header_value(headers, MCP_NAME)?;
        if method.is_none() && name.is_none() {
            return Ok(());
        }
        let ([call], false) = (self.calls.as_slice(), self.batch) else {
            return Err(mismatch(
                "Mcp-Method and Mcp-Name describe a single message, not a batch",
            ));
        };
        if let Some(m) = method {
            if call.method() != Some(m.as_ref()) {
                return Err(mismatch(
                    "the Mcp-Method header does not match the body's method",
                ));
            }
        }
        if let Some(n) = name {
            if call.target().map(Target::name) != Some(n.as_ref()) {
                return Err(mismatch(
                    "the Mcp-Name header does not match the body's params.name or params.uri",
                ));
            }
        }
        Ok(())
    }
}

fn invalid(description: &'static str) -> AuthError {
    AuthError::malformed_request(description).with_jsonrpc_code(JSONRPC_INVALID_REQUEST)
}

fn mismatch(description: &'static str) -> AuthError {
    AuthError::malformed_request(description).with_jsonrpc_code(JSONRPC_HEADER_MISMATCH)
}

/// One header's value, decoded from `=?base64?…?=` when so marked.
fn header_value<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<Cow<'h, str>>, AuthError> {
    use base64::Engine as _;
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(mismatch("an Mcp-Method or Mcp-Name header is repeated"));
    }
    let s = value
        .to_str()
        .map_err(|_| mismatch("an Mcp-Method or Mcp-Name header has invalid characters"))?;
    match s
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        None => Ok(Some(Cow::Borrowed(s))),
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(|s| Some(Cow::Owned(s)))
            .ok_or_else(|| mismatch("an Mcp-Method or Mcp-Name header is not valid base64 UTF-8")),
    }
}

/// Why a body could not be read as JSON-RPC messages.
enum ReadError {
    /// Not JSON (`-32700`).
    Syntax(SyntaxError),
    /// JSON, but not JSON-RPC (`-32600`).
    Shape(&'static str),
}

impl From<SyntaxError> for ReadError {
    fn from(e: SyntaxError) -> Self {
        Self::Syntax(e)
    }
}

impl ReadError {
    fn into_error(self, body: &[u8]) -> AuthError {
        match self {
            Self::Syntax(e) => {
                let (line, column) = e.line_column(body);
                AuthError::malformed_request(format!(
                    "the body is not valid JSON at line {line}, column {column}: expected {}",
                    e.expected
                ))
                .with_jsonrpc_code(JSONRPC_PARSE_ERROR)
            }
            Self::Shape(description) => invalid(description),
        }
    }
}

/// Checks that all of `body` is one JSON value.
fn check_json(body: &[u8]) -> Result<(), SyntaxError> {
    let mut s = Scanner::new(body);
    s.value(MAX_DEPTH)?;
    s.end()
}

/// The messages of a body.
enum Read<'a> {
    One(Message<'a>),
    Batch(Vec<Message<'a>>),
}

/// Reads the body's messages, checking that all of it is JSON.
fn read_body(body: &[u8]) -> Result<Read<'_>, ReadError> {
    let mut s = Scanner::new(body);
    let read = match s.peek() {
        Some(b'[') => {
            s.expect(b'[', "`[`")?;
            let mut messages = Vec::new();
            if !s.eat(b']') {
                loop {
                    messages.push(read_message(&mut s, MAX_DEPTH - 1)?);
                    if !s.next_element()? {
                        break;
                    }
                }
            }
            Read::Batch(messages)
        }
        Some(b'{') => Read::One(read_message(&mut s, MAX_DEPTH)?),
        _ => {
            s.value(MAX_DEPTH)?;
            s.end()?;
            return Err(ReadError::Shape(
                "the body must be a JSON-RPC message object or a batch array",
            ));
        }
    };
    s.end()?;
    Ok(read)
}

/// One message as read from the body, borrowing from it.
#[derive(Default)]
struct Message<'a> {
    /// Whether `jsonrpc` is "2.0".
    jsonrpc: Option<bool>,
    /// The id's JSON text.
    id: Option<&'a [u8]>,
    method: Option<Cow<'static, str>>,
    params: Option<Params<'a>>,
    result_or_error: bool,
}

/// `params`: an object (with the members that name a target, as JSON
/// text), or anything else.
enum Params<'a> {
    Object {
        name: Option<&'a [u8]>,
        uri: Option<&'a [u8]>,
        reference: Option<&'a [u8]>,
    },
    Other,
}

/// Reads one message object, its values nested at most `depth` deep.
fn read_message<'a>(s: &mut Scanner<'a>, depth: usize) -> Result<Message<'a>, ReadError> {
    if !s.eat(b'{') {
        s.value(depth)?;
        return Err(ReadError::Shape(
            "each element of a batch must be a JSON-RPC message object",
        ));
    }
    let mut m = Message::default();
    if s.eat(b'}') {
        return Ok(m);
    }
    let inner = depth - 1;
    loop {
        let name = s.member_name()?.name()?;
        match &*name {
            b"jsonrpc" => {
                let v = string_member(
                    s,
                    m.jsonrpc.is_some(),
                    "`jsonrpc` must be the string \"2.0\"",
                )?;
                m.jsonrpc = Some(v.is("2.0"));
            }
            b"method" => {
                let v = string_member(s, m.method.is_some(), "`method` must be a string")?;
                m.method = Some(method_name(v)?);
            }
            b"id" => {
                if m.id.is_some() {
                    return Err(duplicate());
                }
                m.id = Some(s.value(inner)?);
            }
            b"params" => {
                if m.params.is_some() {
                    return Err(duplicate());
                }
                m.params = Some(read_params(s, inner)?);
            }
            b"result" | b"error" => {
                s.value(inner)?;
                m.result_or_error = true;
            }
            _ => {
                s.value(inner)?;
            }
        }
        if !s.next_member()? {
            return Ok(m);
        }
    }
}

fn duplicate() -> ReadError {
    ReadError::Shape(
        "a JSON-RPC message repeats `jsonrpc`, `id`, `method` or `params` (or `params` repeats `name`, `uri` or `ref`)",
    )
}

/// A member whose value must be a string, and must not be repeated.
fn string_member<'a>(
    s: &mut Scanner<'a>,
    repeated: bool,
    not_a_string: &'static str,
) -> Result<JsonStr<'a>, ReadError> {
    if repeated {
        return Err(duplicate());
    }
    if s.peek() != Some(b'"') {
        return Err(ReadError::Shape(not_a_string));
    }
    Ok(s.string("a string")?)
}

/// Reads `params`, its values nested at most `depth` deep.
fn read_params<'a>(s: &mut Scanner<'a>, depth: usize) -> Result<Params<'a>, ReadError> {
    if !s.eat(b'{') {
        s.value(depth)?;
        return Ok(Params::Other);
    }
    let (mut name, mut uri, mut reference) = (None, None, None);
    if !s.eat(b'}') {
        let inner = depth - 1;
        loop {
            let key = s.member_name()?.name()?;
            let slot = match &*key {
                b"name" => Some(&mut name),
                b"uri" => Some(&mut uri),
                b"ref" => Some(&mut reference),
                _ => None,
            };
            match slot {
                Some(slot) if slot.is_some() => return Err(duplicate()),
                Some(slot) => *slot = Some(s.value(inner)?),
                None => {
                    s.value(inner)?;
                }
            }
            if !s.next_member()? {
                break;
            }
        }
    }
    Ok(Params::Object {
        name,
        uri,
        reference,
    })
}

/// The methods MCP defines, so that a call's method needs no allocation.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
];

/// A method name: one of [`KNOWN_METHODS`] without allocating, else
/// decoded.
fn method_name(method: JsonStr<'_>) -> Result<Cow<'static, str>, SyntaxError> {
    match KNOWN_METHODS.iter().find(|m| method.is(m)) {
        Some(m) => Ok(Cow::Borrowed(m)),
        None => Ok(Cow::Owned(method.decode()?.into_owned())),
    }
}

impl Message<'_> {
    fn into_call(self) -> Result<McpCall, AuthError> {
        let id = match self.id {
            None => None,
            Some(raw) => {
                let ok = matches!(raw.first(), Some(b'"' | b'-' | b'0'..=b'9')) || raw == b"null";
                // The scanner checked the grammar; a string id must also be
                // UTF-8 to be echoed back.
                match std::str::from_utf8(raw).ok().filter(|_| ok) {
                    Some(text) => Some(JsonRpcId::from_checked_json(text)),
                    None => return Err(invalid("a JSON-RPC id must be a string or a number")),
                }
            }
        };
        let with_id = |err: AuthError| match &id {
            Some(id) => err.with_jsonrpc_id(id.clone()),
            None => err,
        };
        if self.jsonrpc != Some(true) {
            return Err(with_id(invalid("`jsonrpc` must be \"2.0\"")));
        }
        let Some(method) = self.method else {
            if self.result_or_error && id.is_some() {
                return Ok(McpCall {
                    id,
                    method: None,
                    target: None,
                    kind: MessageKind::Response,
                });
            }
            return Err(with_id(invalid(
                "a JSON-RPC message needs a `method`, or a `result` or `error` and an `id`",
            )));
        };
        let target = target(&method, self.params.as_ref()).map_err(&with_id)?;
        let kind = if id.is_some() {
            MessageKind::Request
        } else {
            MessageKind::Notification
        };
        Ok(McpCall {
            id,
            method: Some(method),
            target,
            kind,
        })
    }
}

/// A JSON value's text, when it is a string: the string.
fn json_string(raw: Option<&[u8]>) -> Option<String> {
    let mut s = Scanner::new(raw?);
    let string = s.string("a string").ok()?;
    s.end().ok()?;
    string.decode().ok().map(Cow::into_owned)
}

fn target(method: &str, params: Option<&Params<'_>>) -> Result<Option<Target>, AuthError> {
    let (name, uri, reference) = match params {
        Some(Params::Object {
            name,
            uri,
            reference,
        }) => (*name, *uri, *reference),
        _ => (None, None, None),
    };
    let string = |raw: Option<&[u8]>, what: &'static str| -> Result<String, AuthError> {
        json_string(raw).ok_or_else(|| invalid(what))
    };
    Ok(Some(match method {
        "tools/call" => Target::Tool(string(name, "tools/call needs a string `params.name`")?),
        "prompts/get" => Target::Prompt(string(name, "prompts/get needs a string `params.name`")?),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            Target::Resource(string(uri, "resources methods need a string `params.uri`")?)
        }
        "completion/complete" => {
            #[derive(Deserialize)]
            struct Ref<'a> {
                #[serde(rename = "type", borrow)]
                kind: Cow<'a, str>,
                #[serde(borrow, default)]
                name: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                uri: Option<Cow<'a, str>>,
            }
            const BAD: &str =
                "completion/complete needs `params.ref` with a `type` and a string `name` or `uri`";
            let r: Ref<'_> = reference
                .and_then(|raw| serde_json::from_slice(raw).ok())
                .ok_or_else(|| invalid(BAD))?;
            match (&*r.kind, r.name, r.uri) {
                ("ref/prompt", Some(name), _) => Target::Prompt(name.into_owned()),
                ("ref/resource", _, Some(uri)) => Target::Resource(uri.into_owned()),
                ("ref/prompt" | "ref/resource", _, _) => return Err(invalid(BAD)),
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn one(body: &str) -> McpCall {
        let r = McpRequest::parse(body.as_bytes()).unwrap();
        assert!(!r.is_batch());
        r.calls()[0].clone()
    }

    fn code(body: &str) -> i64 {
        let err = McpRequest::parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.status(), 400, "{body}");
        err.jsonrpc_code()
    }

    #[test]
    fn targets() {
        let c = one(
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"arguments":{"name":"not me"},"name":"get_user_data"}}"#,
        );
        assert_eq!(c.target(), Some(&Target::Tool("get_user_data".into())));
        assert_eq!(c.id().unwrap().get(), r#""a""#);
        assert_eq!(c.kind(), MessageKind::Request);
        let c = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"gr\u0065et"}}"#,
        );
        assert_eq!(
            c.target(),
            Some(&Target::Prompt("greet".into())),
            "escapes decoded"
        );
        for m in [
            "resources/read",
            "resources/subscribe",
            "resources/unsubscribe",
        ] {
            let c = one(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{m}","params":{{"uri":"user://1/private"}}}}"#
            ));
            assert_eq!(
                c.target(),
                Some(&Target::Resource("user://1/private".into()))
            );
        }
        let c = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"user://{user_id}/private"},"argument":{"name":"user_id","value":"4"}}}"#,
        );
        assert_eq!(
            c.target(),
            Some(&Target::Resource("user://{user_id}/private".into()))
        );
        let c = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"}}}"#,
        );
        assert_eq!(c.target(), Some(&Target::Prompt("p".into())));
        let c = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(
            (c.kind(), c.target(), c.id().is_none()),
            (MessageKind::Notification, None, true)
        );
        let c = one(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
        assert_eq!((c.kind(), c.method()), (MessageKind::Response, None));
        let c = one(r#"{"jsonrpc":"2.0","id":3,"method":"ping","params":[1,2]}"#);
        assert_eq!(c.method(), Some("ping"));
    }

    #[test]
    fn errors() {
        for body in [
            "",
            "{",
            "nope",
            "{\"jsonrpc\":\"2.0\",}",
            "[{\"a\":",
            "{} x",
        ] {
            assert_eq!(code(body), -32700, "{body:?}");
        }
        for body in [
            "5",
            "\"s\"",
            "[]",
            "[1]",
            "[[\"2.0\",1,\"tools/call\"]]",
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["get_user_data"]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":null}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
        ] {
            assert_eq!(code(body), -32600, "{body}");
        }
    }

    #[test]
    fn invalid_request_keeps_the_id() {
        let err = McpRequest::parse(
            br#"{"jsonrpc":"2.0","id":"x9","method":"tools/call","params":{"name":1}}"#,
        )
        .unwrap_err();
        assert_eq!(err.jsonrpc_id().unwrap().get(), r#""x9""#);
    }

    #[test]
    fn batches() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
                      {"jsonrpc":"2.0","method":"notifications/progress"},
                      {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"x://y"}}]"#;
        let r = McpRequest::parse(body.as_bytes()).unwrap();
        assert!(r.is_batch());
        assert_eq!(r.calls().len(), 3);
        assert_eq!(r.first_id().unwrap().get(), "1");
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn header_checks() {
        let r = McpRequest::parse(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Hello, 世界"}}"#
                .as_bytes(),
        )
        .unwrap();
        assert!(r.check_headers(&HeaderMap::new()).is_ok());
        assert!(r
            .check_headers(&headers(&[
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?SGVsbG8sIOS4lueVjA==?=")
            ]))
            .is_ok());
        for bad in [
            vec![("mcp-method", "prompts/get")],
            vec![("mcp-method", "tools/call"), ("mcp-method", "tools/call")],
            vec![("mcp-name", "Hello")],
            vec![("mcp-name", "=?base64?!!!?=")],
            vec![("mcp-name", "=?base64?/w==?=")],
        ] {
            let err = r.check_headers(&headers(&bad)).unwrap_err();
            assert_eq!(
                (err.status().as_u16(), err.jsonrpc_code()),
                (400, -32020),
                "{bad:?}"
            );
        }
        let ping = McpRequest::parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert!(ping
            .check_headers(&headers(&[("mcp-method", "ping")]))
            .is_ok());
        assert!(ping.check_headers(&headers(&[("mcp-name", "x")])).is_err());
        let batch = McpRequest::parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap();
        assert!(batch
            .check_headers(&headers(&[("mcp-method", "ping")]))
            .is_err());
    }
}
