//! The JSON-RPC peek: what a POST to the MCP endpoint asks for.

use std::borrow::Cow;

use http::HeaderMap;

use super::json::{JsonStr, Scanner, SyntaxError, MAX_DEPTH};

use crate::{
    error::{AuthError, JSONRPC_INVALID_REQUEST, JSONRPC_PARSE_ERROR},
    jsonrpc_id::JsonRpcId,
};

/// JSON-RPC error code for `Mcp-Method` / `Mcp-Name` headers that
/// contradict the body (`HeaderMismatch`, MCP protocol 2026-07-28).
pub const JSONRPC_HEADER_MISMATCH: i64 = -32020;

/// The `Mcp-Method` request header (MCP 2026-07-28).
pub const MCP_METHOD: &str = "mcp-method";
/// The `Mcp-Name` request header (MCP 2026-07-28).
pub const MCP_NAME: &str = "mcp-name";

/// [`MCP_METHOD`] and [`MCP_NAME`] as header names: a lookup by a
/// `HeaderName` skips parsing the name on every request.
pub(crate) static MCP_METHOD_HEADER: http::HeaderName = http::HeaderName::from_static(MCP_METHOD);
pub(crate) static MCP_NAME_HEADER: http::HeaderName = http::HeaderName::from_static(MCP_NAME);

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
    /// A task of the tasks extension (SEP-2663), by `taskId`.
    Task(String),
}

impl Target {
    /// The tool or prompt name, the resource URI, or the task id.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Tool(s) | Self::Prompt(s) | Self::Resource(s) | Self::Task(s) => s,
        }
    }

    /// `tool`, `prompt`, `resource` or `task`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tool(_) => "tool",
            Self::Prompt(_) => "prompt",
            Self::Resource(_) => "resource",
            Self::Task(_) => "task",
        }
    }
}

/// The kind of target a method names, for a call whose body did not name
/// one the layer could read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Tool,
    Prompt,
    Resource,
    Task,
}

/// Where a method that names one target names it.
#[derive(Clone, Copy)]
enum Source {
    Name,
    Uri,
    TaskId,
}

/// The methods that name one target: its kind and the `params` member.
fn single_target(method: &str) -> Option<(Kind, Source)> {
    Some(match method {
        "tools/call" => (Kind::Tool, Source::Name),
        "prompts/get" => (Kind::Prompt, Source::Name),
        "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "resources/directory/read"
        | "skills/get" => (Kind::Resource, Source::Uri),
        "tasks/get" | "tasks/update" | "tasks/cancel" | "tasks/result" => {
            (Kind::Task, Source::TaskId)
        }
        _ => return None,
    })
}

/// Whether `Mcp-Name` carries the target of `method`: `params.name` of
/// `tools/call` and `prompts/get`, `params.uri` of `resources/read`
/// (MCP 2026-07-28, Streamable HTTP, "Standard Request Headers") and of the
/// legacy `resources/subscribe` / `resources/unsubscribe`, `params.taskId`
/// of `tasks/get`, `tasks/update` and `tasks/cancel` (SEP-2663). The same
/// set rmcp checks; for any other method the header is the server's.
fn mcp_name_names_target(method: &str) -> bool {
    matches!(
        method,
        "tools/call"
            | "prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "tasks/get"
            | "tasks/update"
            | "tasks/cancel"
    )
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

/// One JSON-RPC message of a request: its id, method and targets.
#[derive(Clone, Debug)]
pub struct McpCall {
    id: Option<JsonRpcId>,
    method: Option<Cow<'static, str>>,
    /// The first target.
    target: Option<Target>,
    /// The targets after the first (`subscriptions/listen`).
    more: Vec<Target>,
    /// The kind of target the method names when the body named none the
    /// layer could read.
    unread: Option<Kind>,
    kind: MessageKind,
    /// Whether rmcp reads the message as a request (a `method`, an `id`,
    /// no `result` or `error`): only then does a refusal carry its id.
    request: bool,
}

impl McpCall {
    /// A request for `method` aimed at `target`, without an id (for
    /// evaluating a [`Rule`](crate::Rule) outside a request, as list
    /// filtering does). Without a target, a method that names one (say
    /// `tools/call`) is decided as a call whose target matches no rule.
    #[must_use]
    pub fn new(method: impl Into<String>, target: Option<Target>) -> Self {
        let method = method.into();
        let unread = match target {
            None => single_target(&method).map(|(kind, _)| kind),
            Some(_) => None,
        };
        Self {
            id: None,
            method: Some(Cow::Owned(method)),
            target,
            more: Vec::new(),
            unread,
            kind: MessageKind::Request,
            request: false,
        }
    }

    /// The same call aimed at `target` alone (one of several targets,
    /// decided on its own).
    pub(crate) fn with_target(&self, target: Target) -> Self {
        Self {
            id: self.id.clone(),
            method: self.method.clone(),
            target: Some(target),
            more: Vec::new(),
            unread: None,
            kind: self.kind,
            request: self.request,
        }
    }

    /// The stand-in for a request without a JSON-RPC body (GET, DELETE):
    /// no id, no method, no target.
    pub(crate) fn no_call() -> Self {
        Self {
            id: None,
            method: None,
            target: None,
            more: Vec::new(),
            unread: None,
            kind: MessageKind::Request,
            request: false,
        }
    }

    /// The JSON-RPC id (requests and responses).
    #[must_use]
    pub fn id(&self) -> Option<&JsonRpcId> {
        self.id.as_ref()
    }

    /// The id a refusal of this message carries: a request's id, as rmcp
    /// tells a request (a `method` and an `id`, no `result` or `error`).
    /// A client's response to a server request has the *server's* id,
    /// which the client would match to a request of its own: `None`.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::McpRequest;
    ///
    /// let call = McpRequest::parse(br#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#).unwrap();
    /// assert_eq!(call.calls()[0].request_id().unwrap().get(), "5");
    /// let reply = McpRequest::parse(br#"{"jsonrpc":"2.0","id":5,"result":{}}"#).unwrap();
    /// assert_eq!(reply.calls()[0].id().unwrap().get(), "5");
    /// assert!(reply.calls()[0].request_id().is_none());
    /// ```
    #[must_use]
    pub fn request_id(&self) -> Option<&JsonRpcId> {
        self.id.as_ref().filter(|_| self.request)
    }

    /// The method (requests and notifications).
    #[must_use]
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The tool, prompt, resource or task the call is aimed at, if any
    /// (the first, for a call with several).
    #[must_use]
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// Every target of the call, in body order: one for most methods,
    /// none or several for `subscriptions/listen` (one per resource it
    /// subscribes to).
    ///
    /// ```
    /// use tower_mcp_auth::mcp::{McpRequest, Target};
    ///
    /// let body = br#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen",
    ///     "params":{"notifications":{"resourceSubscriptions":["a://1","a://2"]}}}"#;
    /// let req = McpRequest::parse(body).unwrap();
    /// let uris: Vec<&str> = req.calls()[0].targets().map(Target::name).collect();
    /// assert_eq!(uris, ["a://1", "a://2"]);
    /// ```
    pub fn targets(&self) -> impl Iterator<Item = &Target> + '_ {
        self.target.iter().chain(&self.more)
    }

    /// The targets after the first.
    pub(crate) fn more_targets(&self) -> &[Target] {
        &self.more
    }

    /// The kind of target the method names when the body named none the
    /// layer could read (a `resources/read` without a string
    /// `params.uri`).
    pub(crate) fn unread_target(&self) -> Option<Kind> {
        self.unread
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
///
/// The JSON-RPC peek: what a POST to the MCP endpoint asks for.
///
/// [`McpRequest::parse`] reads a single message or a batch in one pass
/// that checks all of the body is JSON but builds nothing it does not
/// need: the `arguments` of a tool call and every other member are
/// skipped, never built into a tree. For each message it keeps the `id`,
/// the `method` and the targets:
///
/// | method | target |
/// | --- | --- |
/// | `tools/call` | [`Target::Tool`] from `params.name` |
/// | `prompts/get` | [`Target::Prompt`] from `params.name` |
/// | `resources/read`, `resources/subscribe`, `resources/unsubscribe`, `resources/directory/read` and `skills/get` (skills extension) | [`Target::Resource`] from `params.uri` |
/// | `subscriptions/listen` (MCP 2026-07-28) | one [`Target::Resource`] per URI of `params.notifications.resourceSubscriptions` (none when it is absent or `null`) |
/// | `tasks/get`, `tasks/update`, `tasks/cancel` (tasks extension, SEP-2663), `tasks/result` (2025-11-25) | [`Target::Task`] from `params.taskId` |
/// | `completion/complete` | `params.ref`: `ref/prompt` → [`Target::Prompt`] (`name`), `ref/resource` → [`Target::Resource`] (`uri`) |
///
/// The shapes are those of the MCP 2026-07-28 schema and its extensions,
/// as rmcp 3 reads them (`GetTaskParams`, `GetSkillRequestParams`,
/// `ReadResourceDirectoryRequestParams`, `SubscriptionFilter`).
///
/// Errors are 400s that render as JSON-RPC errors: a body that is not JSON
/// is a parse error (`-32700`); JSON that is not a JSON-RPC request,
/// notification or response is an invalid request (`-32600`). Duplicate
/// `id`, `method` or `params` members are refused too, and so is a repeated
/// `name`, `uri`, `ref`, `taskId` or `notifications` in the `params` of a
/// method that reads it: another parser downstream might take the other
/// copy.
///
/// A message whose `params` lack the member that names its target, or hold
/// something other than a string there, is **not** refused: it is a call
/// without a target, and the [`McpPolicy`](crate::mcp::McpPolicy) decides
/// it as it decides a target that matches no rule (the rule for unmatched
/// targets of its kind, else its method's rule, else the default). If that
/// allows the caller, the server gives its own answer (invalid params, or
/// method not found for a method its protocol revision removed), exactly
/// as it would without this layer.
///
/// # Example
///
/// ```
/// use tower_mcp_auth::mcp::{McpRequest, Target};
///
/// let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call",
///                 "params":{"name":"get_user_data","arguments":{"id":"42"}}}"#;
/// let req = McpRequest::parse(body).unwrap();
/// let call = &req.calls()[0];
/// assert_eq!(call.method(), Some("tools/call"));
/// assert_eq!(call.target(), Some(&Target::Tool("get_user_data".into())));
/// assert_eq!(call.id().unwrap().get(), "7");
///
/// let err = McpRequest::parse(b"{not json").unwrap_err();
/// assert_eq!(err.status(), 400);
/// assert_eq!(err.jsonrpc_code(), -32700);
/// ```
#[derive(Clone, Debug, Default)]
pub struct McpRequest {
    calls: Calls,
    batch: bool,
    /// Whether a message's `params` has a `requestState` or `taskId`
    /// member (a handle [`HandleBindingLayer`](super::HandleBindingLayer)
    /// must open).
    handles: bool,
    /// The body this was read from, when the reader keeps it: a layer
    /// below that gets the very same bytes may trust what was read.
    source: ReadFrom,
}

/// The messages of a body: one, inline (most bodies, whose reading and
/// every copy of which then allocate no list), or a batch's.
#[derive(Clone)]
enum Calls {
    One(McpCall),
    Batch(Vec<McpCall>),
}

impl Calls {
    fn as_slice(&self) -> &[McpCall] {
        match self {
            Self::One(call) => std::slice::from_ref(call),
            Self::Batch(calls) => calls,
        }
    }
}

impl Default for Calls {
    fn default() -> Self {
        Self::Batch(Vec::new())
    }
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// The bytes a request was read from (never shown: a body may hold
/// secrets).
#[derive(Clone, Default)]
struct ReadFrom(Option<bytes::Bytes>);

impl std::fmt::Debug for ReadFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(b) => write!(f, "ReadFrom({} bytes)", b.len()),
            None => f.write_str("ReadFrom(None)"),
        }
    }
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
        self.calls.as_slice()
    }

    /// Whether the body was a JSON array (a batch, MCP 2025-03-26).
    #[must_use]
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The id of the first message that has one.
    #[must_use]
    pub fn first_id(&self) -> Option<&JsonRpcId> {
        self.calls().iter().find_map(McpCall::id)
    }

    /// The id of the first request ([`McpCall::request_id`]): the id a
    /// refusal of the whole body carries. `None` for a body of responses
    /// and notifications only, whose refusal carries `null`.
    #[must_use]
    pub fn first_request_id(&self) -> Option<&JsonRpcId> {
        self.calls().iter().find_map(McpCall::request_id)
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
                handles: message.carries_handle(),
                calls: Calls::One(message.into_call()?),
                batch: false,
                source: ReadFrom::default(),
            }),
            Read::Batch(messages) if messages.is_empty() => {
                Err(invalid("an empty batch is not a JSON-RPC request"))
            }
            Read::Batch(messages) => Ok(Self {
                handles: messages.iter().any(Message::carries_handle),
                calls: Calls::Batch(
                    messages
                        .into_iter()
                        .map(Message::into_call)
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                batch: true,
                source: ReadFrom::default(),
            }),
        }
    }

    /// Keeps the body this was parsed from, for a layer below that is
    /// handed the very same body ([`McpAuth`](crate::stack::McpAuth)'s
    /// handle binding, under its policy layer with nothing between that
    /// touches bodies): it takes the bytes rather than reading them again.
    pub(crate) fn with_source(mut self, body: bytes::Bytes) -> Self {
        self.source = ReadFrom(Some(body));
        self
    }

    /// The body this was parsed from, when it was kept ([`with_source`]),
    /// and whether a message of it has a `requestState` or `taskId` in its
    /// `params`. Taken: a second call finds nothing.
    ///
    /// [`with_source`]: Self::with_source
    pub(crate) fn take_source(&mut self) -> Option<(bytes::Bytes, bool)> {
        Some((self.source.0.take()?, self.handles))
    }

    /// Checks the MCP 2026-07-28 `Mcp-Method` and `Mcp-Name` headers, when
    /// present, against the body. Values may be `=?base64?…?=` encoded.
    /// The headers describe one message, so a batch carrying them is
    /// refused.
    ///
    /// `Mcp-Name` is compared only for the methods whose name source the
    /// protocol defines, and only when the body has that value, as rmcp
    /// does: `params.name` of `tools/call` and `prompts/get`, `params.uri`
    /// of `resources/read`, `resources/subscribe` and
    /// `resources/unsubscribe`, `params.taskId` of `tasks/get`,
    /// `tasks/update` and `tasks/cancel`. For any other method the header
    /// is left to the server.
    ///
    /// # Errors
    ///
    /// A 400 [`AuthError`] with JSON-RPC code `-32020` (`HeaderMismatch`)
    /// when a header it compares is repeated, not decodable, or differs
    /// from the body.
    pub fn check_headers(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        if !has_mcp_headers(headers) {
            return Ok(());
        }
        let method = header_value(headers, &MCP_METHOD_HEADER)?;
        if method.is_none() && !headers.contains_key(&MCP_NAME_HEADER) {
            return Ok(());
        }
        let ([call], false) = (self.calls(), self.batch) else {
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
        let named = match (call.method(), call.target()) {
            (Some(m), Some(t)) if mcp_name_names_target(m) => t,
            _ => return Ok(()),
        };
        if let Some(n) = header_value(headers, &MCP_NAME_HEADER)? {
            if n != named.name() {
                return Err(mismatch(
                    "the Mcp-Name header does not match the body's params.name, params.uri or params.taskId",
                ));
            }
        }
        Ok(())
    }
}

/// The calls the `Mcp-Method` and `Mcp-Name` headers describe, to decide
/// a request before its body is read: if the policy refuses every one of
/// them, it refuses the body's call too, whenever the headers match the
/// body (and when they do not, [`McpRequest::check_headers`] refuses the
/// request). Empty when the headers do not say enough:
///
/// * no `Mcp-Method`, or a header that does not decode (the body's check
///   answers it);
/// * a method whose target only the body names (`completion/complete`,
///   `subscriptions/listen`, `resources/directory/read`, `skills/get`);
/// * a method whose target `Mcp-Name` carries, without `Mcp-Name`.
///
/// With `Mcp-Name`, two calls: the one aimed at the named target, and the
/// one whose body lacks the member (`check_headers` compares the header
/// only with a member that is there), decided as an unmatched target.
pub(crate) fn header_calls(headers: &HeaderMap) -> Vec<McpCall> {
    if !has_mcp_headers(headers) {
        return Vec::new();
    }
    let Ok(Some(method)) = header_value(headers, &MCP_METHOD_HEADER) else {
        return Vec::new();
    };
    let method = method.into_owned();
    if mcp_name_names_target(&method) {
        let (Ok(Some(name)), Some((kind, _))) = (
            header_value(headers, &MCP_NAME_HEADER),
            single_target(&method),
        ) else {
            return Vec::new();
        };
        let name = name.into_owned();
        let target = match kind {
            Kind::Tool => Target::Tool(name),
            Kind::Prompt => Target::Prompt(name),
            Kind::Resource => Target::Resource(name),
            Kind::Task => Target::Task(name),
        };
        return vec![
            McpCall::new(method.clone(), Some(target)),
            McpCall::new(method, None),
        ];
    }
    if single_target(&method).is_some()
        || matches!(&*method, "subscriptions/listen" | "completion/complete")
    {
        return Vec::new();
    }
    vec![McpCall::new(method, None)]
}

fn invalid(description: &'static str) -> AuthError {
    AuthError::malformed_request(description).with_jsonrpc_code(JSONRPC_INVALID_REQUEST)
}

fn mismatch(description: &'static str) -> AuthError {
    AuthError::malformed_request(description).with_jsonrpc_code(JSONRPC_HEADER_MISMATCH)
}

/// Whether `headers` has an `Mcp-Method` or an `Mcp-Name`: one pass over
/// a request's few header names, where looking each up would hash it
/// (most requests have neither).
fn has_mcp_headers(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name == MCP_METHOD_HEADER || name == MCP_NAME_HEADER)
}

/// One header's value, decoded from `=?base64?…?=` when so marked.
fn header_value<'h>(
    headers: &'h HeaderMap,
    name: &http::HeaderName,
) -> Result<Option<Cow<'h, str>>, AuthError> {
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

/// A member of `params` that can name a target.
#[derive(Clone, Copy, Default)]
enum Member<'a> {
    #[default]
    Absent,
    /// Its JSON text.
    One(&'a [u8]),
    /// Given more than once: refused if the method reads it.
    Repeated,
}

/// The members of an object `params` that name a target (all absent when
/// `params` is missing or not an object).
#[derive(Default)]
struct Params<'a> {
    name: Member<'a>,
    uri: Member<'a>,
    reference: Member<'a>,
    task_id: Member<'a>,
    notifications: Member<'a>,
    /// Whether a `requestState` member is there (any value).
    request_state: bool,
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
    ReadError::Shape("a JSON-RPC message repeats `jsonrpc`, `id`, `method` or `params`")
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
    let mut p = Params::default();
    if !s.eat(b'{') {
        s.value(depth)?;
        return Ok(p);
    }
    if !s.eat(b'}') {
        let inner = depth - 1;
        loop {
            let key = s.member_name()?.name()?;
            let slot = match &*key {
                b"name" => Some(&mut p.name),
                b"uri" => Some(&mut p.uri),
                b"ref" => Some(&mut p.reference),
                b"taskId" => Some(&mut p.task_id),
                b"notifications" => Some(&mut p.notifications),
                b"requestState" => {
                    p.request_state = true;
                    None
                }
                _ => None,
            };
            let value = s.value(inner)?;
            if let Some(slot) = slot {
                *slot = match slot {
                    Member::Absent => Member::One(value),
                    _ => Member::Repeated,
                };
            }
            if !s.next_member()? {
                break;
            }
        }
    }
    Ok(p)
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
    "resources/directory/read",
    "skills/list",
    "skills/get",
    "subscriptions/listen",
    "tasks/update",
];

/// A method name: one of [`KNOWN_METHODS`] without allocating, else
/// owned. Decoded once (borrowed from the body when it has no escape),
/// then compared.
fn method_name(method: JsonStr<'_>) -> Result<Cow<'static, str>, SyntaxError> {
    let decoded = method.decode()?;
    Ok(match KNOWN_METHODS.iter().find(|m| **m == decoded) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(decoded.into_owned()),
    })
}

impl Message<'_> {
    /// Whether `params` has a member a handle may be in.
    fn carries_handle(&self) -> bool {
        self.params
            .as_ref()
            .is_some_and(|p| p.request_state || !matches!(p.task_id, Member::Absent))
    }

    fn into_call(self) -> Result<McpCall, AuthError> {
        let id = match self.id {
            None => None,
            Some(raw) => {
                let ok = matches!(raw.first(), Some(b'"' | b'-' | b'0'..=b'9')) || raw == b"null";
                // The scanner checked the grammar; a string id must also be
                // UTF-8 to be echoed back.
                match std::str::from_utf8(raw).ok().filter(|_| ok) {
                    // Checked to be one JSON value by the scanner: one
                    // allocation, no second parse.
                    Some(text) => Some(JsonRpcId::from_text(text)),
                    None => return Err(invalid("a JSON-RPC id must be a string or a number")),
                }
            }
        };
        // A refusal carries the id of a request only (see
        // `McpCall::request_id`); a response's refusal gets the layer's.
        let request = self.method.is_some() && !self.result_or_error;
        let with_id = |err: AuthError| match &id {
            Some(id) if request => err.with_jsonrpc_id(id.clone()),
            _ => err,
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
                    more: Vec::new(),
                    unread: None,
                    kind: MessageKind::Response,
                    request: false,
                });
            }
            return Err(with_id(invalid(
                "a JSON-RPC message needs a `method`, or a `result` or `error` and an `id`",
            )));
        };
        let found = targets(&method, &self.params.unwrap_or_default()).map_err(&with_id)?;
        let request = request && id.is_some();
        let kind = if id.is_some() {
            MessageKind::Request
        } else {
            MessageKind::Notification
        };
        Ok(McpCall {
            id,
            method: Some(method),
            target: found.first,
            more: found.more,
            unread: found.unread,
            kind,
            request,
        })
    }
}

/// A JSON value's text, when it is a string: the string. `raw` is one
/// value the body's scan has checked (its strings UTF-8, without control
/// characters), so a string without a backslash is its own text.
fn json_string(raw: &[u8]) -> Option<String> {
    if let [b'"', text @ .., b'"'] = raw {
        if memchr::memchr(b'\\', text).is_none() {
            return std::str::from_utf8(text).ok().map(str::to_owned);
        }
    }
    let mut s = Scanner::new(raw);
    let string = s.string("a string").ok()?;
    s.end().ok()?;
    string.decode().ok().map(Cow::into_owned)
}

/// The targets of one message.
#[derive(Default)]
struct Found {
    first: Option<Target>,
    more: Vec<Target>,
    unread: Option<Kind>,
}

impl Found {
    fn one(target: Target) -> Self {
        Self {
            first: Some(target),
            ..Self::default()
        }
    }

    fn unread(kind: Kind) -> Self {
        Self {
            unread: Some(kind),
            ..Self::default()
        }
    }
}

/// The JSON text of a member the method reads; a repeated one is refused
/// (another parser might take the other copy).
fn member<'a>(m: Member<'a>) -> Result<Option<&'a [u8]>, AuthError> {
    match m {
        Member::Absent => Ok(None),
        Member::One(raw) => Ok(Some(raw)),
        Member::Repeated => Err(invalid(
            "the member that names the call's target is repeated (`params.name`, `uri`, `taskId`, `ref` or its `type`, `notifications` or its `resourceSubscriptions`)",
        )),
    }
}

/// The targets `method` names in `params`. A target that is missing or
/// not a string is not an error: the call has no target (see the module
/// docs).
fn targets(method: &str, params: &Params<'_>) -> Result<Found, AuthError> {
    if let Some((kind, source)) = single_target(method) {
        let raw = member(match source {
            Source::Name => params.name,
            Source::Uri => params.uri,
            Source::TaskId => params.task_id,
        })?;
        let Some(name) = raw.and_then(json_string) else {
            return Ok(Found::unread(kind));
        };
        return Ok(Found::one(match kind {
            Kind::Tool => Target::Tool(name),
            Kind::Prompt => Target::Prompt(name),
            Kind::Resource => Target::Resource(name),
            Kind::Task => Target::Task(name),
        }));
    }
    match method {
        "completion/complete" => completion_target(member(params.reference)?),
        "subscriptions/listen" => subscription_targets(member(params.notifications)?),
        _ => Ok(Found::default()),
    }
}

/// The members `keys` of `raw`, a JSON value the scanner has checked:
/// `None` when it is not an object.
fn object_members<'a, const N: usize>(raw: &'a [u8], keys: [&[u8]; N]) -> Option<[Member<'a>; N]> {
    let mut s = Scanner::new(raw);
    let mut out = [Member::Absent; N];
    if !s.eat(b'{') {
        return None;
    }
    if s.eat(b'}') {
        return Some(out);
    }
    loop {
        let key = s.member_name().ok()?.name().ok()?;
        let value = s.value(MAX_DEPTH).ok()?;
        if let Some(slot) = keys.iter().position(|k| *k == &*key).map(|i| &mut out[i]) {
            *slot = match slot {
                Member::Absent => Member::One(value),
                _ => Member::Repeated,
            };
        }
        if !s.next_member().ok()? {
            return Some(out);
        }
    }
}

/// `params.ref` of `completion/complete`: `ref/prompt` names a prompt by
/// `name`, `ref/resource` a resource by `uri`. Only `type` and the member
/// its type reads count (as for rmcp, which ignores the others), so a
/// stray or repeated other member cannot hide the target.
fn completion_target(raw: Option<&[u8]>) -> Result<Found, AuthError> {
    let Some([kind, name, uri]) =
        raw.and_then(|raw| object_members(raw, [b"type", b"name", b"uri"]))
    else {
        return Ok(Found::default());
    };
    let (kind, source) = match member(kind)?.and_then(json_string).as_deref() {
        Some("ref/prompt") => (Kind::Prompt, name),
        Some("ref/resource") => (Kind::Resource, uri),
        _ => return Ok(Found::default()),
    };
    Ok(match member(source)?.and_then(json_string) {
        Some(name) if kind == Kind::Prompt => Found::one(Target::Prompt(name)),
        Some(uri) => Found::one(Target::Resource(uri)),
        None => Found::unread(kind),
    })
}

/// `params.notifications` of `subscriptions/listen` (MCP 2026-07-28,
/// `SubscriptionFilter`): one resource target per URI of
/// `resourceSubscriptions`; none when it is absent or `null` (the stream
/// asks for list changes only). A filter the layer cannot read is a call
/// whose resources it cannot name.
fn subscription_targets(raw: Option<&[u8]>) -> Result<Found, AuthError> {
    let Some([uris]) = raw.and_then(|raw| object_members(raw, [b"resourceSubscriptions"])) else {
        return Ok(Found::unread(Kind::Resource));
    };
    let uris = match member(uris)? {
        None | Some(b"null") => Vec::new(),
        Some(raw) => match serde_json::from_slice::<Vec<String>>(raw) {
            Ok(uris) => uris,
            Err(_) => return Ok(Found::unread(Kind::Resource)),
        },
    };
    let mut uris = uris.into_iter().map(Target::Resource);
    Ok(Found {
        first: uris.next(),
        more: uris.collect(),
        unread: None,
    })
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
    fn a_string_without_escapes_is_its_own_text() {
        // The short way (no backslash) and the scanner's agree.
        for raw in [r#""x""#, r#""""#, r#""é ü""#, r#""a\u0062c""#, r#""q\"\\""#] {
            let mut s = Scanner::new(raw.as_bytes());
            let slow = s.string("a string").unwrap().decode().unwrap().into_owned();
            assert_eq!(json_string(raw.as_bytes()), Some(slow), "{raw}");
        }
        assert_eq!(json_string(b"12"), None);
        assert_eq!(json_string(br#"{"a":"b"}"#), None);
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

    /// Issue 23, item 6d: a refusal carries the id of a request (as rmcp
    /// tells one: `method` and `id`, no `result` or `error`), never the id
    /// of a client's response, which is the server's.
    #[test]
    fn only_a_request_lends_its_id_to_a_refusal() {
        let parsed = |body: &str| McpRequest::parse(body.as_bytes()).unwrap();
        let request_id = |body: &str| {
            parsed(body).calls()[0]
                .request_id()
                .map(|i| i.get().to_owned())
        };
        assert_eq!(
            request_id(r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#).as_deref(),
            Some("5")
        );
        for body in [
            r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":5,"error":{"code":1,"message":"x"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"ping","result":{}}"#,
        ] {
            assert_eq!(request_id(body), None, "{body}");
        }
        let batch = parsed(
            r#"[{"jsonrpc":"2.0","id":5,"result":{}},{"jsonrpc":"2.0","id":7,"method":"ping"}]"#,
        );
        assert_eq!(batch.first_id().unwrap().get(), "5");
        assert_eq!(batch.first_request_id().unwrap().get(), "7");
        let replies = parsed(r#"[{"jsonrpc":"2.0","id":5,"result":{}}]"#);
        assert!(replies.first_request_id().is_none());
        // A malformed response's refusal carries no id either; a malformed
        // request's does.
        let err = McpRequest::parse(br#"{"jsonrpc":"1.0","id":5,"result":{}}"#).unwrap_err();
        assert!(err.jsonrpc_id().is_none());
        let err = McpRequest::parse(br#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#).unwrap_err();
        assert_eq!(err.jsonrpc_id().unwrap().get(), "5");
    }

    /// The calls the headers stand for, when they say enough.
    #[test]
    fn calls_the_headers_describe() {
        let calls = |pairs: &[(&str, &str)]| {
            header_calls(&headers(pairs))
                .iter()
                .map(|c| (c.method().unwrap().to_owned(), c.target().cloned()))
                .collect::<Vec<_>>()
        };
        let tool = |n: &str| Some(Target::Tool(n.into()));
        assert_eq!(
            calls(&[
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?YQ==?=")
            ]),
            vec![
                ("tools/call".to_owned(), tool("a")),
                ("tools/call".to_owned(), None)
            ]
        );
        assert_eq!(
            calls(&[("mcp-method", "tasks/get"), ("mcp-name", "t-1")])[0].1,
            Some(Target::Task("t-1".into()))
        );
        assert_eq!(
            calls(&[("mcp-method", "tools/list")]),
            vec![("tools/list".to_owned(), None)]
        );
        for pairs in [
            &[][..],
            &[("mcp-name", "a")],
            &[("mcp-method", "tools/call")],
            &[("mcp-method", "completion/complete")],
            &[("mcp-method", "subscriptions/listen")],
            &[("mcp-method", "skills/get"), ("mcp-name", "skill://a")],
            &[("mcp-method", "=?base64?!!?=")],
            &[("mcp-method", "tools/list"), ("mcp-method", "ping")],
        ] {
            assert!(calls(pairs).is_empty(), "{pairs:?}");
        }
    }

    #[test]
    fn targets_of_the_2026_07_28_methods_and_extensions() {
        for m in ["resources/directory/read", "skills/get"] {
            let c = one(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{m}","params":{{"cursor":"c","uri":"skill://a/SKILL.md"}}}}"#
            ));
            assert_eq!(
                c.target(),
                Some(&Target::Resource("skill://a/SKILL.md".into())),
                "{m}"
            );
        }
        for m in ["tasks/get", "tasks/update", "tasks/cancel", "tasks/result"] {
            let c = one(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{m}","params":{{"inputResponses":{{}},"taskId":"t\u002d1"}}}}"#
            ));
            assert_eq!(c.target(), Some(&Target::Task("t-1".into())), "{m}");
            assert_eq!(c.target().unwrap().kind(), "task");
        }
        let c = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"_meta":{},"notifications":{"toolsListChanged":true,"resourceSubscriptions":["user://1/private","admin://system/stats"]}}}"#,
        );
        assert_eq!(
            c.targets().collect::<Vec<_>>(),
            [
                &Target::Resource("user://1/private".into()),
                &Target::Resource("admin://system/stats".into())
            ]
        );
        assert_eq!(
            c.target(),
            Some(&Target::Resource("user://1/private".into()))
        );
        // List changes only: no target, and nothing unread.
        for notifications in [
            r#"{"toolsListChanged":true}"#,
            r#"{"resourceSubscriptions":null}"#,
            r#"{"resourceSubscriptions":[]}"#,
        ] {
            let c = one(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{{"notifications":{notifications}}}}}"#
            ));
            assert_eq!(
                (c.targets().count(), c.unread_target()),
                (0, None),
                "{notifications}"
            );
        }
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
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"skills/get","params":{"uri":"a","uri":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"a","taskId":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{},"ref":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{},"notifications":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":[],"resourceSubscriptions":["a"]}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","type":"ref/resource","name":"p","uri":"u"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p","name":"q"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
        ] {
            assert_eq!(code(body), -32600, "{body}");
        }
    }

    #[test]
    fn a_repeated_member_the_method_does_not_read_is_the_servers() {
        // rmcp reads `ping`'s params as a map, where the last copy wins;
        // no target depends on it.
        let c = one(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"uri":"a","uri":"b"}}"#);
        assert_eq!((c.method(), c.target()), (Some("ping"), None));
        let c = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","uri":1,"uri":2}}"#,
        );
        assert_eq!(c.target(), Some(&Target::Tool("t".into())));
        // rmcp's `PromptReference` has no `uri`: a stray one, repeated or
        // not a string, cannot hide the prompt.
        let c = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"uri":1,"type":"ref/prompt","uri":[],"name":"s\u0065cret"}}}"#,
        );
        assert_eq!(c.target(), Some(&Target::Prompt("secret".into())));
        let c = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"toolsListChanged":false,"resourceSubscriptions":["a"]}}}"#,
        );
        assert_eq!(c.target(), Some(&Target::Resource("a".into())));
    }

    #[test]
    fn a_missing_target_is_no_error_but_a_call_without_target() {
        use Kind::*;
        for (body, kind) in [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
                Some(Tool),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["get_user_data"]}"#,
                Some(Tool),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
                Some(Tool),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#,
                Some(Tool),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{}}"#,
                Some(Prompt),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":null}}"#,
                Some(Resource),
            ),
            // Removed in 2026-07-28: the server says "method not found".
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{}}"#,
                Some(Resource),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/unsubscribe"}"#,
                Some(Resource),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"skills/get","params":{"uri":["a"]}}"#,
                Some(Resource),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":5}}"#,
                Some(Task),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt"}}}"#,
                Some(Prompt),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource"}}}"#,
                Some(Resource),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":7}}"#,
                None,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{}}"#,
                Some(Resource),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["a",1]}}}"#,
                Some(Resource),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":"a"}}}"#,
                Some(Resource),
            ),
        ] {
            let c = one(body);
            assert_eq!(c.target(), None, "{body}");
            assert_eq!(c.unread_target(), kind, "{body}");
            assert_eq!(c.id().unwrap().get(), "1");
        }
    }

    #[test]
    fn an_escaped_method_is_decoded_once() {
        use crate::mcp::json::ESCAPED_DECODES;
        for (body, method) in [
            // The last known method, and one that is not known.
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tasks\/update"}"#,
                "tasks/update",
            ),
            (r#"{"jsonrpc":"2.0","id":1,"method":"x\u002fy"}"#, "x/y"),
        ] {
            ESCAPED_DECODES.with(|n| n.set(0));
            let c = one(body);
            assert_eq!(c.method(), Some(method));
            assert_eq!(ESCAPED_DECODES.with(std::cell::Cell::get), 1, "{body}");
        }
    }

    #[test]
    fn invalid_request_keeps_the_id() {
        let err = McpRequest::parse(
            br#"{"jsonrpc":"2.0","id":"x9","method":"tools/call","params":{"name":"a","name":"a"}}"#,
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

    fn check(body: &str, pairs: &[(&str, &str)]) -> Result<(), i64> {
        McpRequest::parse(body.as_bytes())
            .unwrap()
            .check_headers(&headers(pairs))
            .map_err(|e| {
                assert_eq!(e.status(), 400);
                e.jsonrpc_code()
            })
    }

    #[test]
    fn mcp_name_names_the_target_of_the_methods_that_define_it() {
        // tasks/* (SEP-2663): `Mcp-Name` is `params.taskId`.
        for m in ["tasks/get", "tasks/update", "tasks/cancel"] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{m}","params":{{"taskId":"task-7"}}}}"#
            );
            assert_eq!(
                check(&body, &[("mcp-method", m), ("mcp-name", "task-7")]),
                Ok(()),
                "{m}"
            );
            assert_eq!(
                check(&body, &[("mcp-method", m), ("mcp-name", "task-8")]),
                Err(-32020),
                "{m}"
            );
        }
        let read = r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a://b"}}"#;
        assert_eq!(check(read, &[("mcp-name", "a://b")]), Ok(()));
        assert_eq!(check(read, &[("mcp-name", "a://c")]), Err(-32020));
        // Methods whose name source the protocol does not define: the
        // header is the server's, whatever it holds (rmcp ignores it too).
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/result","params":{"taskId":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"skills/get","params":{"uri":"s://a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/directory/read","params":{"uri":"s://a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["s://a"]}}}"#,
        ] {
            for name in ["other", "=?base64?!!!?="] {
                assert_eq!(check(body, &[("mcp-name", name)]), Ok(()), "{body} {name}");
            }
        }
        // A body without the value: nothing to compare (the server
        // answers the missing `params.uri`).
        let bare = r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe"}"#;
        assert_eq!(
            check(
                bare,
                &[("mcp-method", "resources/subscribe"), ("mcp-name", "x")]
            ),
            Ok(())
        );
        // Mcp-Method is still compared for every method.
        assert_eq!(
            check(bare, &[("mcp-method", "resources/read")]),
            Err(-32020)
        );
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
        let batch = McpRequest::parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap();
        assert!(batch.check_headers(&headers(&[("mcp-name", "x")])).is_err());
        assert!(batch
            .check_headers(&headers(&[("mcp-method", "ping")]))
            .is_err());
    }
}

#[cfg(test)]
mod handle_members {
    use super::McpRequest;

    fn read(body: &str) -> (McpRequest, bytes::Bytes) {
        let bytes = bytes::Bytes::copy_from_slice(body.as_bytes());
        (
            McpRequest::parse(&bytes)
                .unwrap()
                .with_source(bytes.clone()),
            bytes,
        )
    }

    #[test]
    fn a_handle_member_of_params_is_seen_however_it_is_spelled() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","requestState":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","requestState":{"x":1}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","request\u0053tate":"s"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t-1"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"task\u0049d":7}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"t"}}]"#,
        ] {
            let (mut req, bytes) = read(body);
            let (source, handles) = req.take_source().unwrap();
            assert!(handles, "{body}");
            assert_eq!(source.as_ptr(), bytes.as_ptr(), "{body}");
            // Taken: the bytes are let go, and asked again, nothing.
            assert!(req.take_source().is_none(), "{body}");
        }
    }

    #[test]
    fn no_handle_member_of_params_is_none() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"requestState":"s","taskId":"t"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"requestState"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","requestState":"s"}"#,
        ] {
            let (mut req, _) = read(body);
            assert!(!req.take_source().unwrap().1, "{body}");
        }
        // Parsed without its source: nothing to take.
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        assert!(McpRequest::parse(body).unwrap().take_source().is_none());
    }
}
