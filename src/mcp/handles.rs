//! [`HandleBindingLayer`]: the handles of the MCP 2026-07-28 wire, an
//! `input_required` result's `requestState` and a task id, belong to the
//! principal (and, for state, the request) they were minted for.
//!
//! The 2026-07-28 revision has no protocol session: what a server needs to
//! remember between two requests travels in values it mints and the
//! client echoes. Two of them are bearer handles:
//!
//! - **`requestState`** (Multi Round-Trip Requests, SEP-2322): a server
//!   answers `tools/call`, `prompts/get` or `resources/read` with
//!   `{"resultType": "input_required", "requestState": "…"}` and the client
//!   retries the same request with `params.requestState`. The spec: servers
//!   MUST treat it as attacker-controlled, MUST protect its integrity when
//!   it matters and reject state that fails verification, and SHOULD bind
//!   the principal, a short expiry and the originating request inside it.
//! - **task ids** (tasks extension, SEP-2663): `CreateTaskResult`'s
//!   `taskId`; whoever knows it can `tasks/get`, `tasks/update` and
//!   `tasks/cancel` the task (state-handle hijacking).
//!
//! This layer does all of that for any server behind it, without server
//! code and without state. (The 2025-11-25 wire's `Mcp-Session-Id` is
//! [`SessionBindingLayer`](super::session::SessionBindingLayer)'s; both
//! use one definition of the owner: the [`Principal`]'s scheme, its `iss`
//! claim and its subject, or "anonymous".)
//!
//! # `requestState`: sealed on the way out, opened on the way in
//!
//! Every `input_required` result that leaves (a JSON body or any event of
//! an event stream) has its `requestState` replaced by
//! `base64url(v1 ‖ expiry ‖ nonce ‖ ciphertext ‖ tag)`:
//!
//! - the server's own state, **encrypted** (a keystream of HMAC-SHA256 in
//!   counter mode under a key derived for it, with a fresh 128-bit random
//!   nonce): the client has no business reading the server's state;
//! - **authenticated** (encrypt-then-MAC, HMAC-SHA256 truncated to 128
//!   bits, under another derived key) over the version, expiry, nonce and
//!   ciphertext *and* over what the state is bound to, which is not in
//!   the token at all: the owner, the request's method (`tools/call`,
//!   `prompts/get`, `resources/read`), its target (`params.name` or
//!   `params.uri`) and a digest of its `params.arguments`;
//! - an **expiry**: [`DEFAULT_STATE_TTL`] (5 minutes) after sealing, set
//!   with [`HandleBindingLayer::state_ttl`], read from the layer's clock
//!   ([`HandleBindingLayer::clock`]).
//!
//! A request whose `params.requestState` does not open (forged, tampered,
//! sealed under another key), opens for another principal, another method,
//! target or arguments, or has expired, is refused before the server sees
//! it: a JSON-RPC error `-32602` (invalid params) with the request's id,
//! HTTP 200 with a JSON body (rmcp 3.11 answers an invalid-params error of
//! a well-formed 2026-07-28 request with 200), and an [audit
//! event](crate::audit) (`reason = "invalid_request_state"`). A good one
//! reaches the server as the string the server minted. The two refusals
//! a client can act on differ in their message: "expired" (start over) or
//! "not valid for this request".
//!
//! Crypto without a new dependency: the crate has HMAC-SHA256 already; an
//! AEAD (AES-GCM, ChaCha20-Poly1305) would be a new crate for the same
//! guarantee. HMAC-SHA256 is a PRF, so its counter-mode keystream is a
//! sound stream cipher, and encrypt-then-MAC with independent keys is the
//! textbook composition. Cost: two SHA-256 compressions per 32 bytes of
//! state and a few for the tag (`benches/handles.rs`).
//!
//! ## The arguments digest
//!
//! The spec has the client retry *the original request* with
//! `inputResponses` and `requestState` added, and rmcp's client does
//! exactly that (it clones the first call's params and sets the two
//! members). So the digest covers only `params.arguments` (never
//! `inputResponses`, `requestState` or `_meta`), in a canonical form that
//! does not depend on how a client writes the same value again: members
//! sorted, white space dropped, a number that is an integer written as
//! one (`1.0` and `1` are one value to a JavaScript client); an absent,
//! `null` or empty `arguments` are the same. A retry with other arguments
//! is refused. A server that wants the client to change its arguments
//! between rounds (the spec does not describe it) turns the digest off
//! with [`HandleBindingLayer::bind_arguments`]`(false)`.
//!
//! ## What is not guaranteed: single use
//!
//! A sealed state opens as often as it is presented until it expires, by
//! its owner, on its own request: the spec says as much ("these measures
//! bound the replay window … but do not by themselves guarantee
//! single-use"). A server for which a state must be consumed at most once
//! keeps that record itself; the layer stores nothing.
//!
//! # Task ids: sealed to their creator
//!
//! Every task id that leaves (`result.taskId` of `CreateTaskResult` and of
//! `tasks/get`; `params.taskId` of `notifications/tasks`; and the
//! 2025-11-25 shapes: `result.task.taskId`, the
//! `io.modelcontextprotocol/related-task` `_meta`) becomes
//! `<id>.<tag>`, the tag an HMAC of the owner and the id, as a session id
//! is. A request whose `params.taskId` (`tasks/get`, `tasks/update`,
//! `tasks/cancel`, 2025-11-25's `tasks/result`) is not the caller's gets
//! what rmcp 3.11's `TaskManager` answers an unknown task: JSON-RPC
//! `-32602` `unknown task: <id>` (the id as presented), HTTP 200, and an
//! audit event (`reason = "unknown_task"`); the owner's reaches the
//! server bare, and an `Mcp-Name` header that named the sealed id is
//! rewritten to the bare one (rmcp compares the two).
//!
//! 2025-11-25's `tasks/list` (rmcp 3.11 and the 2026-07-28 extension have
//! none): without state the layer cannot tell whose a bare id in a list
//! is, so it shows a caller none of them (the list is emptied, its cursor
//! dropped, `cacheScope: "private"`). A server that wants lists filters
//! them itself by the [`Principal`].
//!
//! # Replies the layer cannot read
//!
//! As for the list filter: a reply that may carry a handle and is not
//! JSON, is compressed or too large, or an `input_required` result that
//! answers no `tools/call`, `prompts/get` or `resources/read` of its
//! exchange, is withheld (JSON-RPC `-32603`, 502; on an event stream the
//! event is replaced and the stream ends) with an audit event: a handle
//! never leaves unsealed.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_mcp_auth::mcp::handles::HandleBindingLayer;
//! use tower_mcp_auth::mcp::session::SessionBindingLayer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Replicas share the key (read it from a secret store).
//! let key = [7u8; 32];
//! let layers = ServiceBuilder::new()
//!     // … resource, authentication, McpPolicyLayer, rate limit …
//!     .layer(SessionBindingLayer::with_key(key)?) // 2025-11-25 sessions
//!     .layer(HandleBindingLayer::with_key(key)?.state_ttl(Duration::from_secs(120)));
//! # let _ = layers; Ok(()) }
//! ```

use std::{
    borrow::Cow,
    fmt,
    future::Future,
    ops::Range,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header, request::Parts, HeaderValue, Method, Request, StatusCode};
use memchr::memmem;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use super::{
    body::{self, DEFAULT_BODY_TIMEOUT, DEFAULT_BUFFER_BUDGET},
    filter::{
        may_spell_letters, Both, Filtered, HandedDown, ListFilter, Names, Rewriter, Unreadable,
        Withhold,
    },
    inspect::{McpRequest, MCP_NAME_HEADER},
    json::{JsonStr, Scanner, SyntaxError, MAX_DEPTH},
    layer::{DEFAULT_BODY_LIMIT, DEFAULT_RESPONSE_LIMIT},
    session::{checked_key, feed_owner, field, random_key},
};
use crate::{
    audit, budget::ByteBudget, config::ConfigError, future::BoxError, principal::Principal,
};

/// How long a sealed `requestState` stays valid by default: 5 minutes.
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(300);

const STATE_VERSION: u8 = 1;
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// Version, expiry (seconds since the Unix epoch), nonce.
const HEADER_LEN: usize = 1 + 8 + NONCE_LEN;
const TASK_TAG_B64_LEN: usize = 22;
/// The requests that may be answered `input_required` (SEP-2322).
const MRTR_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];
/// The 2025-11-25 `_meta` key naming the task a message belongs to.
const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// The layer's source of the current time.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Binds `requestState` and task ids to their caller. See the [module
/// docs](self).
#[derive(Clone)]
#[must_use]
pub struct HandleBindingLayer {
    config: Arc<Config>,
}

impl fmt::Debug for HandleBindingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleBindingLayer")
            .field("state_ttl", &self.config.ttl)
            .field("bind_arguments", &self.config.bind_arguments)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Config {
    keys: Keys,
    ttl: Duration,
    clock: Clock,
    bind_arguments: bool,
    body_limit: usize,
    body_timeout: Duration,
    budget: ByteBudget,
    response_limit: usize,
    /// Set by [`McpAuth`](crate::stack::McpAuth) only: directly under its
    /// policy layer, with nothing between that touches bodies, so a kept
    /// [`McpRequest`] source is this request's body.
    under_policy: bool,
}

/// Three keys derived from the layer's one: encryption of the state, its
/// tag, task-id tags. Each HMAC keyed once, cloned per use.
#[derive(Clone)]
struct Keys {
    encrypt: Hmac<Sha256>,
    state: Hmac<Sha256>,
    task: Hmac<Sha256>,
}

fn derive(key: &[u8], label: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"tower-mcp-auth handle binding v1 ");
    mac.update(label);
    let derived = mac.finalize().into_bytes();
    Hmac::<Sha256>::new_from_slice(&derived).expect("HMAC takes a key of any length")
}

impl HandleBindingLayer {
    /// A layer with a fresh random key: states and task ids it sealed stop
    /// opening when the process ends.
    ///
    /// # Panics
    ///
    /// When the operating system has no randomness to give.
    pub fn new() -> Self {
        Self::from_key_bytes(&random_key())
    }

    /// A layer with the given key, so that replicas sharing it open each
    /// other's states and task ids. The key may be the one given to
    /// [`SessionBindingLayer::with_key`](super::session::SessionBindingLayer::with_key):
    /// the keys used here are derived from it for these purposes only.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the key is shorter than
    /// [`MIN_KEY_LEN`](super::session::MIN_KEY_LEN) bytes.
    ///
    /// ```
    /// use tower_mcp_auth::mcp::handles::HandleBindingLayer;
    ///
    /// assert!(HandleBindingLayer::with_key([1u8; 32]).is_ok());
    /// assert!(HandleBindingLayer::with_key(b"short").is_err());
    /// ```
    pub fn with_key(key: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Ok(Self::from_key_bytes(checked_key(key.as_ref(), "handle")?))
    }

    fn from_key_bytes(key: &[u8]) -> Self {
        Self {
            config: Arc::new(Config {
                keys: Keys {
                    encrypt: derive(key, b"request state encryption"),
                    state: derive(key, b"request state tag"),
                    task: derive(key, b"task id tag"),
                },
                ttl: DEFAULT_STATE_TTL,
                clock: Arc::new(SystemTime::now),
                bind_arguments: true,
                body_limit: DEFAULT_BODY_LIMIT,
                body_timeout: DEFAULT_BODY_TIMEOUT,
                budget: ByteBudget::new(DEFAULT_BUFFER_BUDGET),
                response_limit: DEFAULT_RESPONSE_LIMIT,
                under_policy: false,
            }),
        }
    }

    /// For [`McpAuth`](crate::stack::McpAuth), which puts this layer
    /// directly under an [`McpPolicyLayer`](super::McpPolicyLayer) that
    /// hands down what it read and its list filter
    /// ([`McpPolicyLayer::over_handles`]), with only layers between that
    /// never touch a body: the bytes the policy read are this request's
    /// body, so they are taken rather than read again, and the body goes
    /// on unread; the replies are sealed and filtered in one pass.
    ///
    /// [`McpPolicyLayer::over_handles`]: super::McpPolicyLayer::over_handles
    #[cfg(feature = "rate-limit")]
    pub(crate) fn under_policy(mut self) -> Self {
        self.config_mut().under_policy = true;
        self
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// How long a sealed `requestState` opens (default
    /// [`DEFAULT_STATE_TTL`]; whole seconds, at least one).
    pub fn state_ttl(mut self, ttl: Duration) -> Self {
        self.config_mut().ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The clock expiries are read from (default [`SystemTime::now`]);
    /// tests move time with it instead of waiting.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }

    /// Whether a state is bound to a digest of its request's
    /// `params.arguments` (default `true`; see the [module
    /// docs](self#the-arguments-digest)).
    pub fn bind_arguments(mut self, on: bool) -> Self {
        self.config_mut().bind_arguments = on;
        self
    }

    /// The largest request body read (default [`DEFAULT_BODY_LIMIT`];
    /// larger: 413).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config_mut().body_limit = bytes;
        self
    }

    /// How long a request body may take to arrive whole (default
    /// [`DEFAULT_BODY_TIMEOUT`]; slower: 408), as for
    /// [`McpPolicyLayer::body_timeout`](super::McpPolicyLayer::body_timeout).
    pub fn body_timeout(mut self, time: Duration) -> Self {
        self.config_mut().body_timeout = time;
        self
    }

    /// The bytes of request bodies all requests through this layer may
    /// hold at once (default [`DEFAULT_BUFFER_BUDGET`]; a body that would
    /// overrun it: 503 with `Retry-After`).
    pub fn buffer_budget(mut self, bytes: usize) -> Self {
        self.config_mut().budget = ByteBudget::new(bytes);
        self
    }

    /// The largest reply body or event held to be read (default
    /// [`DEFAULT_RESPONSE_LIMIT`]; larger: withheld).
    pub fn response_limit(mut self, bytes: usize) -> Self {
        self.config_mut().response_limit = bytes;
        self
    }
}

impl Default for HandleBindingLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for HandleBindingLayer {
    type Service = HandleBinding<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HandleBinding {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`HandleBindingLayer`].
#[derive(Clone)]
pub struct HandleBinding<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for HandleBinding<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleBinding")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> HandleBinding<S> {
    /// A layer with a fresh random key: the same as
    /// [`HandleBindingLayer::new`].
    pub fn layer() -> HandleBindingLayer {
        HandleBindingLayer::new()
    }

    crate::macros::inner_service_accessors!(S);
}

// ---------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------

/// What a state is bound to besides its owner: the originating request.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Binding {
    method: String,
    target: Option<String>,
    /// SHA-256 of the canonical arguments (`None` when not bound).
    arguments: Option<[u8; 32]>,
}

/// Why a presented state was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StateRefusal {
    /// Forged, tampered, another key's, another principal's or another
    /// request's: the tag does not verify, and nothing tells which.
    Invalid,
    /// Verified, but its time is up.
    Expired,
}

impl StateRefusal {
    fn detail(self) -> &'static str {
        match self {
            Self::Invalid => "the requestState was not issued to this caller for this request (forged, tampered, another principal's or another request's)",
            Self::Expired => "the requestState has expired",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid params: requestState is not valid for this request",
            Self::Expired => {
                "Invalid params: requestState has expired; send the request again without it"
            }
        }
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Keys {
    /// XORs `data` with the keystream of `nonce`.
    fn keystream(&self, nonce: &[u8], data: &mut [u8]) {
        for (i, chunk) in data.chunks_mut(32).enumerate() {
            let mut mac = self.encrypt.clone();
            mac.update(nonce);
            mac.update(&(i as u64).to_be_bytes());
            let block = mac.finalize().into_bytes();
            for (b, k) in chunk.iter_mut().zip(block.iter()) {
                *b ^= k;
            }
        }
    }

    /// The tag of a sealed state: over what it is bound to (not in the
    /// token) and all of the token before the tag.
    fn state_tag(
        &self,
        owner: Option<&Principal>,
        binding: &Binding,
        sealed: &[u8],
    ) -> Hmac<Sha256> {
        let mut mac = self.state.clone();
        feed_owner(&mut mac, owner);
        field(&mut mac, binding.method.as_bytes());
        match &binding.target {
            None => mac.update(b"\x00"),
            Some(t) => {
                mac.update(b"\x01");
                field(&mut mac, t.as_bytes());
            }
        }
        match &binding.arguments {
            None => mac.update(b"\x00"),
            Some(d) => {
                mac.update(b"\x01");
                mac.update(d);
            }
        }
        field(&mut mac, sealed);
        mac
    }

    fn seal_state(
        &self,
        owner: Option<&Principal>,
        binding: &Binding,
        expiry: u64,
        nonce: &[u8; NONCE_LEN],
        state: &str,
    ) -> String {
        let mut token = Vec::with_capacity(HEADER_LEN + state.len() + TAG_LEN);
        token.push(STATE_VERSION);
        token.extend_from_slice(&expiry.to_be_bytes());
        token.extend_from_slice(nonce);
        token.extend_from_slice(state.as_bytes());
        self.keystream(nonce, &mut token[HEADER_LEN..]);
        let tag = self
            .state_tag(owner, binding, &token)
            .finalize()
            .into_bytes();
        token.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The server's state in `presented`, when it verifies for `owner`
    /// and `binding` and has not expired at `now`.
    fn open_state(
        &self,
        owner: Option<&Principal>,
        binding: &Binding,
        now: u64,
        presented: &str,
    ) -> Result<String, StateRefusal> {
        let mut token = URL_SAFE_NO_PAD
            .decode(presented)
            .map_err(|_| StateRefusal::Invalid)?;
        if token.len() < HEADER_LEN + TAG_LEN || token[0] != STATE_VERSION {
            return Err(StateRefusal::Invalid);
        }
        let (sealed, tag) = token.split_at(token.len() - TAG_LEN);
        self.state_tag(owner, binding, sealed)
            .verify_truncated_left(tag)
            .map_err(|_| StateRefusal::Invalid)?;
        let expiry = u64::from_be_bytes(sealed[1..9].try_into().expect("8 bytes"));
        if now >= expiry {
            return Err(StateRefusal::Expired);
        }
        let end = token.len() - TAG_LEN;
        token.truncate(end);
        let (header, body) = token.split_at_mut(HEADER_LEN);
        self.keystream(&header[9..], body);
        // The server sealed a string: the bytes are its UTF-8.
        String::from_utf8(body.to_vec()).map_err(|_| StateRefusal::Invalid)
    }

    fn task_mac(&self, owner: Option<&Principal>, id: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.task.clone();
        feed_owner(&mut mac, owner);
        field(&mut mac, id);
        mac
    }

    /// `<id>.<tag>` for `owner`.
    fn seal_task(&self, owner: Option<&Principal>, id: &str) -> String {
        let tag = self.task_mac(owner, id.as_bytes()).finalize().into_bytes();
        let mut sealed = String::with_capacity(id.len() + 1 + TASK_TAG_B64_LEN);
        sealed.push_str(id);
        sealed.push('.');
        URL_SAFE_NO_PAD.encode_string(&tag[..TAG_LEN], &mut sealed);
        sealed
    }

    /// The bare id of `presented` when it is `owner`'s.
    fn open_task<'p>(&self, owner: Option<&Principal>, presented: &'p str) -> Option<&'p str> {
        let (id, tag) = presented.rsplit_once('.')?;
        if id.is_empty() || tag.len() != TASK_TAG_B64_LEN {
            return None;
        }
        let mut decoded = [0u8; TAG_LEN + 2];
        let n = URL_SAFE_NO_PAD
            .decode_slice(tag.as_bytes(), &mut decoded)
            .ok()?;
        if n != TAG_LEN {
            return None;
        }
        self.task_mac(owner, id.as_bytes())
            .verify_truncated_left(&decoded[..TAG_LEN])
            .ok()?;
        Some(id)
    }
}

/// SHA-256 of `arguments` in canonical form (see the [module
/// docs](self#the-arguments-digest)); absent, `null` and `{}` alike.
fn arguments_digest(arguments: Option<&Value>) -> [u8; 32] {
    let mut out = Vec::new();
    match arguments {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) if m.is_empty() => {}
        Some(v) => canonical(v, &mut out),
    }
    Sha256::digest(&out).into()
}

fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut members: Vec<(&String, &Value)> = m.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::from(k.as_str()).to_string().as_bytes());
                out.push(b':');
                canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(v, out);
            }
            out.push(b']');
        }
        Value::Number(n) => {
            let integral = n
                .as_f64()
                .filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0);
            match integral {
                #[allow(clippy::cast_possible_truncation)]
                Some(f) => out.extend_from_slice((f as i64).to_string().as_bytes()),
                None => out.extend_from_slice(n.to_string().as_bytes()),
            }
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

// ---------------------------------------------------------------------------
// Reading a request: where its handles are
// ---------------------------------------------------------------------------

/// A string member of `params` that is a handle.
#[derive(Clone, Copy, Default)]
enum Slot<'a> {
    #[default]
    Absent,
    One(JsonStr<'a>),
    /// Given twice: refused (serde, as rmcp reads it, refuses it too).
    Repeated,
    /// Not a string: the server refuses it as it refuses any bad params.
    Other,
}

/// One message of a request body, as far as the binding cares.
#[derive(Default)]
struct Message<'a> {
    id: Option<&'a [u8]>,
    method: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
    arguments: Option<&'a [u8]>,
    request_state: Slot<'a>,
    task_id: Slot<'a>,
}

impl Message<'_> {
    /// The request this message is: what a state minted for it is bound
    /// to.
    fn binding(&self, bind_arguments: bool) -> Option<Binding> {
        let method = self.method.as_deref()?;
        if !MRTR_METHODS.contains(&method) {
            return None;
        }
        let target = if method == "resources/read" {
            &self.uri
        } else {
            &self.name
        };
        let arguments = bind_arguments.then(|| {
            let value = self
                .arguments
                .and_then(|raw| serde_json::from_slice::<Value>(raw).ok());
            arguments_digest(value.as_ref())
        });
        Some(Binding {
            method: method.to_owned(),
            target: target.as_deref().map(str::to_owned),
            arguments,
        })
    }
}

/// The messages of a body (checked to be JSON by [`McpRequest::parse`]
/// first).
fn read_messages(body: &[u8]) -> Result<Vec<Message<'_>>, SyntaxError> {
    let mut s = Scanner::new(body);
    let mut messages = Vec::new();
    if s.peek() == Some(b'[') {
        s.expect(b'[', "`[`")?;
        if !s.eat(b']') {
            loop {
                messages.push(read_message(&mut s, MAX_DEPTH - 1)?);
                if !s.next_element()? {
                    break;
                }
            }
        }
    } else {
        messages.push(read_message(&mut s, MAX_DEPTH)?);
    }
    s.end()?;
    Ok(messages)
}

fn read_message<'a>(s: &mut Scanner<'a>, depth: usize) -> Result<Message<'a>, SyntaxError> {
    let mut m = Message::default();
    if s.peek() != Some(b'{') {
        s.value(depth)?;
        return Ok(m);
    }
    s.expect(b'{', "`{`")?;
    if s.eat(b'}') {
        return Ok(m);
    }
    let inner = depth - 1;
    loop {
        let name = s.member_name()?.name()?;
        match &*name {
            b"id" => m.id = Some(s.value(inner)?),
            b"method" if s.peek() == Some(b'"') => {
                m.method = Some(s.string("a string")?.decode()?);
            }
            b"params" if s.peek() == Some(b'{') => read_params(s, inner, &mut m)?,
            _ => {
                s.value(inner)?;
            }
        }
        if !s.next_member()? {
            return Ok(m);
        }
    }
}

fn read_params<'a>(
    s: &mut Scanner<'a>,
    depth: usize,
    m: &mut Message<'a>,
) -> Result<(), SyntaxError> {
    s.expect(b'{', "`{`")?;
    if s.eat(b'}') {
        return Ok(());
    }
    let inner = depth - 1;
    let slot = |s: &mut Scanner<'a>, slot: &mut Slot<'a>| -> Result<(), SyntaxError> {
        let next = if s.peek() == Some(b'"') {
            Slot::One(s.string("a string")?)
        } else {
            s.value(inner)?;
            Slot::Other
        };
        *slot = match slot {
            Slot::Absent => next,
            _ => Slot::Repeated,
        };
        Ok(())
    };
    loop {
        let name = s.member_name()?.name()?;
        match &*name {
            b"requestState" => slot(s, &mut m.request_state)?,
            b"taskId" => slot(s, &mut m.task_id)?,
            b"name" if s.peek() == Some(b'"') => m.name = Some(s.string("a string")?.decode()?),
            b"uri" if s.peek() == Some(b'"') => m.uri = Some(s.string("a string")?.decode()?),
            b"arguments" => m.arguments = Some(s.value(inner)?),
            _ => {
                s.value(inner)?;
            }
        }
        if !s.next_member()? {
            return Ok(());
        }
    }
}

/// Whether a reader could find a handle's member name in `text`.
fn may_carry_handle(text: &[u8]) -> bool {
    Names::HANDLES.found_in(text) || may_spell_letters(text)
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

/// A request refused for one of its handles.
struct Refused {
    /// The message's id JSON text (`null` without one).
    id: String,
    error: Value,
    reason: &'static str,
    detail: &'static str,
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One JSON-RPC error per refused message (an array for a batch).
fn refusal_response(refused: &[Refused], batch: bool) -> Response {
    let messages: Vec<String> = refused
        .iter()
        .map(|r| format!(r#"{{"jsonrpc":"2.0","id":{},"error":{}}}"#, r.id, r.error))
        .collect();
    let body = if batch {
        format!("[{}]", messages.join(","))
    } else {
        messages.join("")
    };
    json_response(StatusCode::OK, body)
}

/// `text` with every `from` replaced by `to`.
fn replace_all(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + to.len());
    let mut at = 0;
    for found in memmem::find_iter(text, from) {
        out.extend_from_slice(&text[at..found]);
        out.extend_from_slice(to);
        at = found + from.len();
    }
    out.extend_from_slice(&text[at..]);
    out
}

/// The outcome of checking a request's handles.
enum Checked {
    /// Go on with this body (rewritten when a handle was opened) and this
    /// `Mcp-Name` replacement.
    Pass(Bytes, Option<(String, String)>, Vec<Unknown>),
    Refuse(Response),
}

impl Config {
    fn now(&self) -> u64 {
        unix_seconds((self.clock)())
    }

    /// Opens every handle of a request body for `owner`.
    /// `handles`: whether the policy layer above found a handle in these
    /// very bytes, when it read them for this layer; else the prefilter
    /// looks.
    fn check(
        &self,
        owner: Option<&Principal>,
        parts: &mut Parts,
        body: Bytes,
        handles: Option<bool>,
    ) -> Checked {
        if !handles.unwrap_or_else(|| may_carry_handle(&body)) {
            return Checked::Pass(body, None, Vec::new());
        }
        let parsed = match McpRequest::parse(&body) {
            Ok(parsed) => parsed,
            Err(e) => return Checked::Refuse(e.into_response()),
        };
        let Ok(messages) = read_messages(&body) else {
            return Checked::Refuse(
                crate::AuthError::malformed_request("the body is not valid JSON").into_response(),
            );
        };
        let mut splices: Vec<(Range<usize>, String)> = Vec::new();
        let mut refused = Vec::new();
        let mut name_swap = None;
        let mut unknown = Vec::new();
        let now = self.now();
        for m in &messages {
            let id = m.id.map_or_else(
                || "null".to_owned(),
                |raw| String::from_utf8_lossy(raw).into_owned(),
            );
            match m.request_state {
                Slot::Absent | Slot::Other => {}
                Slot::Repeated => refused.push(Refused {
                    id: id.clone(),
                    error: json!({"code": -32602, "message": StateRefusal::Invalid.message()}),
                    reason: "invalid_request_state",
                    detail: "params.requestState is given twice",
                }),
                Slot::One(state) => {
                    let opened = match (m.binding(self.bind_arguments), state.decode()) {
                        (Some(binding), Ok(presented)) => {
                            self.keys.open_state(owner, &binding, now, &presented)
                        }
                        _ => Err(StateRefusal::Invalid),
                    };
                    match opened {
                        Ok(inner) => splices.push((state.span(), Value::from(inner).to_string())),
                        Err(why) => refused.push(Refused {
                            id: id.clone(),
                            error: json!({"code": -32602, "message": why.message()}),
                            reason: "invalid_request_state",
                            detail: why.detail(),
                        }),
                    }
                }
            }
            match m.task_id {
                Slot::Absent | Slot::Other => {}
                Slot::Repeated => refused.push(Refused {
                    id,
                    error: json!({"code": -32602, "message": "Invalid params: taskId is given twice"}),
                    reason: "unknown_task",
                    detail: "params.taskId is given twice",
                }),
                Slot::One(task) => {
                    let presented = task.decode().unwrap_or_default();
                    match self.keys.open_task(owner, &presented) {
                        Some(bare) => {
                            if !parsed.is_batch() {
                                name_swap = Some((presented.to_string(), bare.to_owned()));
                            }
                            splices.push((task.span(), Value::from(bare).to_string()));
                        }
                        None => {
                            // Not this caller's: the server gets an id it
                            // cannot know, and answers as it answers an
                            // unknown task (its capability checks and all);
                            // its reply names the id as presented.
                            let stand_in = Unknown::new(&presented);
                            if !parsed.is_batch() {
                                name_swap =
                                    Some((presented.to_string(), stand_in.stand_in.clone()));
                            }
                            splices.push((
                                task.span(),
                                Value::from(stand_in.stand_in.as_str()).to_string(),
                            ));
                            audit::refused_because(
                                "handle_binding",
                                audit::Refusal {
                                    reason: "unknown_task",
                                    detail: "the task id was not issued to this caller",
                                    status: 200,
                                },
                                owner,
                                &parts.method,
                                audit::path(&parts.uri, &parts.extensions),
                            );
                            unknown.push(stand_in);
                        }
                    }
                }
            }
        }
        if !refused.is_empty() {
            let path = audit::path(&parts.uri, &parts.extensions);
            for r in &refused {
                audit::refused_because(
                    "handle_binding",
                    audit::Refusal {
                        reason: r.reason,
                        detail: r.detail,
                        status: 200,
                    },
                    owner,
                    &parts.method,
                    path,
                );
            }
            return Checked::Refuse(refusal_response(&refused, parsed.is_batch()));
        }
        if splices.is_empty() {
            return Checked::Pass(body, None, unknown);
        }
        splices.sort_by_key(|(span, _)| span.start);
        let mut out = Vec::with_capacity(body.len());
        let mut at = 0;
        for (span, text) in &splices {
            out.extend_from_slice(&body[at..span.start]);
            out.extend_from_slice(text.as_bytes());
            at = span.end;
        }
        out.extend_from_slice(&body[at..]);
        Checked::Pass(Bytes::from(out), name_swap, unknown)
    }
}

/// Points an `Mcp-Name` header that named the sealed task id at the bare
/// one (rmcp compares the header with `params.taskId`).
fn swap_name_header(parts: &mut Parts, sealed: &str, bare: &str) {
    let Some(value) = parts.headers.get(&MCP_NAME_HEADER) else {
        return;
    };
    let named = value.to_str().ok().and_then(|v| {
        match v
            .strip_prefix("=?base64?")
            .and_then(|r| r.strip_suffix("?="))
        {
            None => Some(v.to_owned()),
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok()),
        }
    });
    if named.as_deref() != Some(sealed) {
        return;
    }
    let value = HeaderValue::from_str(bare).unwrap_or_else(|_| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bare);
        HeaderValue::from_str(&format!("=?base64?{encoded}?=")).expect("base64 is a header value")
    });
    parts.headers.insert(MCP_NAME_HEADER.clone(), value);
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the handle binding does with a request before the service sees it.
#[allow(
    clippy::large_enum_variant,
    reason = "made and taken apart once per request; a box would cost an allocation"
)]
enum Prepared {
    /// Refused: this response goes back.
    Refused(Response),
    /// On to the service, and its replies sealed by this sealer (filtered
    /// too, with the list filter handed down).
    Call(Request<Body>, Sealer, Option<HandedDown>),
}

impl Config {
    /// Opens the handles of `request` (the body as the client sent it, of
    /// which `handles` tells whether it names one, when a reading above
    /// found out) for `owner`, and readies the sealing of the replies.
    fn prepare(
        self: Arc<Self>,
        owner: Option<Principal>,
        mut parts: Parts,
        request: Bytes,
        handles: Option<bool>,
        unchanged_body: Body,
        lists: Option<HandedDown>,
    ) -> Prepared {
        let mut unknown = Vec::new();
        let body = if parts.method == Method::POST {
            match self.check(owner.as_ref(), &mut parts, request.clone(), handles) {
                Checked::Refuse(response) => return Prepared::Refused(response),
                Checked::Pass(new_body, swap, stand_ins) => {
                    unknown = stand_ins;
                    if let Some((sealed, bare)) = swap {
                        swap_name_header(&mut parts, &sealed, &bare);
                    }
                    if new_body.len() != request.len() {
                        parts
                            .headers
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(new_body.len()));
                    }
                    let unchanged =
                        new_body.as_ptr() == request.as_ptr() && new_body.len() == request.len();
                    if unchanged {
                        unchanged_body
                    } else {
                        Body::from(new_body)
                    }
                }
            }
        } else {
            unchanged_body
        };
        let withhold = match &lists {
            // The policy layer above said already what a withheld reply
            // says of this exchange (its caller, ids, method and path).
            Some(lists) => lists.withhold_for("handle_binding", self.response_limit),
            None => {
                // The calls the policy layer above read, when it is there
                // (the same ids and methods: only a state's value was
                // unsealed); else read here.
                let parsed;
                let calls = match parts.extensions.get::<McpRequest>() {
                    Some(read) => read,
                    None => {
                        parsed = McpRequest::parse(&request).unwrap_or_default();
                        &parsed
                    }
                };
                Withhold::new(
                    "handle_binding",
                    owner.clone(),
                    calls,
                    &parts,
                    self.response_limit,
                )
            }
        };
        let sealer = Sealer {
            config: self,
            owner,
            request,
            calls: OnceLock::new(),
            withhold,
            unknown,
        };
        Prepared::Call(Request::from_parts(parts, body), sealer, lists)
    }
}

impl<S, B, ResBody> Service<Request<B>> for HandleBinding<S>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let config = &self.config;
        let owner = Principal::from_extensions(req.extensions()).cloned();
        let (mut parts, body) = req.into_parts();
        // The list filter the policy layer above handed down, taken out
        // before the service sees the request.
        let lists = (config.under_policy)
            .then(|| parts.extensions.remove::<HandedDown>())
            .flatten();
        if parts.method != Method::POST {
            let prepared = Arc::clone(config).prepare(
                owner,
                parts,
                Bytes::new(),
                Some(false),
                Body::new(body),
                lists,
            );
            return Box::pin(sealing(&mut self.inner, prepared));
        }
        // Under McpAuth's policy layer, the bytes it read (and whether
        // they hold a handle) come with its reading, and the body goes on
        // unread: all is decided now, and the future only waits for the
        // reply. Else the body is read here first.
        let kept = (config.under_policy)
            .then(|| parts.extensions.get_mut::<McpRequest>())
            .flatten()
            .and_then(McpRequest::take_source);
        match kept {
            // This layer's own limit holds for bytes it did not read, with
            // the refusal its reading would give.
            Some((bytes, _)) if bytes.len() > config.body_limit => {
                let refused = body::Unread::TooLarge(config.body_limit)
                    .into_error()
                    .into_response();
                Box::pin(std::future::ready(Ok(refused)))
            }
            Some((bytes, handles)) => {
                let prepared = Arc::clone(config).prepare(
                    owner,
                    parts,
                    bytes,
                    Some(handles),
                    Body::new(body),
                    lists,
                );
                Box::pin(sealing(&mut self.inner, prepared))
            }
            // The call waits: it takes the service `poll_ready` readied and
            // leaves a clone in its place.
            None => {
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                let config = Arc::clone(config);
                Box::pin(async move {
                    let read = body::read(
                        &parts.headers,
                        body,
                        config.body_limit,
                        config.body_timeout,
                        &config.budget,
                    )
                    .await;
                    // The buffered body holds its bytes in the budget until
                    // the server drops it.
                    let prepared = match read {
                        Ok(buffered) => {
                            let bytes = buffered.bytes().clone();
                            config.prepare(owner, parts, bytes, None, buffered.into_body(), lists)
                        }
                        Err(e) => Prepared::Refused(e.into_error().into_response()),
                    };
                    sealing(&mut inner, prepared).await
                })
            }
        }
    }
}

/// The rewriting of one exchange's replies: the sealer, and the list
/// filter handed down when there is one (both in one pass, [`Both`]).
#[allow(
    clippy::large_enum_variant,
    reason = "made and taken apart once per request; a box would cost an allocation"
)]
enum Rewriting {
    Seal(Sealer),
    SealAndFilter(Both<Sealer, ListFilter>),
}

impl Rewriter for Rewriting {
    fn names(&self) -> Names {
        match self {
            Self::Seal(r) => r.names(),
            Self::SealAndFilter(r) => r.names(),
        }
    }

    fn other_names_in(&self, text: &[u8]) -> bool {
        match self {
            Self::Seal(r) => r.other_names_in(text),
            Self::SealAndFilter(r) => r.other_names_in(text),
        }
    }

    fn rewrite(&self, text: &[u8]) -> Result<Option<Vec<u8>>, Unreadable> {
        match self {
            Self::Seal(r) => r.rewrite(text),
            Self::SealAndFilter(r) => r.rewrite(text),
        }
    }

    fn limit(&self) -> usize {
        match self {
            Self::Seal(r) => r.limit(),
            Self::SealAndFilter(r) => r.limit(),
        }
    }

    fn withhold(&self, why: Unreadable) -> &Withhold {
        match self {
            Self::Seal(r) => r.withhold(why),
            Self::SealAndFilter(r) => r.withhold(why),
        }
    }
}

/// Calls `inner` with the prepared request (and seals its reply), or
/// answers the refusal.
fn sealing<S>(inner: &mut S, prepared: Prepared) -> Filtered<S::Future, Rewriting>
where
    S: Service<Request<Body>>,
{
    match prepared {
        Prepared::Refused(response) => Filtered::ready(response),
        Prepared::Call(req, sealer, lists) => {
            let rewriting = match lists {
                Some(HandedDown(lists)) => Rewriting::SealAndFilter(Both::new(sealer, lists)),
                None => Rewriting::Seal(sealer),
            };
            Filtered::calling(inner.call(req), Some(rewriting))
        }
    }
}

// ---------------------------------------------------------------------------
// Sealing replies
// ---------------------------------------------------------------------------

/// One request of the exchange a state may be minted for.
struct Call {
    id: Option<Value>,
    binding: Binding,
}

/// Seals the handles of one exchange's replies for its caller.
struct Sealer {
    config: Arc<Config>,
    owner: Option<Principal>,
    /// The request body as the client sent it (the state is bound to it).
    request: Bytes,
    calls: OnceLock<Vec<Call>>,
    withhold: Withhold,
    /// The stand-ins sent in place of task ids this caller does not own.
    unknown: Vec<Unknown>,
}

/// A task id that was not issued to its caller, and the id the server got
/// in its place: random, so the server cannot know it.
struct Unknown {
    stand_in: String,
    /// The presented id as JSON string content (escaped, no quotes), as
    /// the server would have written it back.
    presented: String,
}

impl Unknown {
    fn new(presented: &str) -> Self {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let quoted = Value::from(presented).to_string();
        Self {
            stand_in: format!(
                "tower-mcp-auth.unknown-task.{}",
                URL_SAFE_NO_PAD.encode(nonce)
            ),
            presented: quoted[1..quoted.len() - 1].to_owned(),
        }
    }
}

/// Whether two JSON-RPC ids are one (rmcp writes `1.0` back as `1`).
fn same_id(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Sealer {
    fn calls(&self) -> &[Call] {
        self.calls.get_or_init(|| {
            read_messages(&self.request)
                .unwrap_or_default()
                .iter()
                .filter_map(|m| {
                    Some(Call {
                        id: m.id.and_then(|raw| serde_json::from_slice(raw).ok()),
                        binding: m.binding(self.config.bind_arguments)?,
                    })
                })
                .collect()
        })
    }

    fn seal_task_at(&self, object: &mut Map<String, Value>, member: &str) -> bool {
        match object.get_mut(member) {
            Some(Value::String(id)) => {
                *id = self.config.keys.seal_task(self.owner.as_ref(), id);
                true
            }
            _ => false,
        }
    }

    fn seal_related_task(&self, object: &mut Map<String, Value>) -> bool {
        let related = object
            .get_mut("_meta")
            .and_then(Value::as_object_mut)
            .and_then(|meta| meta.get_mut(RELATED_TASK))
            .and_then(Value::as_object_mut);
        related.is_some_and(|r| self.seal_task_at(r, "taskId"))
    }

    /// Seals the handles of one message; `true` when it changed.
    fn seal_message(&self, message: &mut Value) -> Result<bool, Unreadable> {
        let Some(message) = message.as_object_mut() else {
            return Ok(false);
        };
        let id = message.get("id").cloned();
        let mut changed = false;
        if let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) {
            let input_required =
                result.get("resultType").and_then(Value::as_str) == Some("input_required");
            if input_required && result.get("requestState").is_some_and(Value::is_string) {
                let call = self
                    .calls()
                    .iter()
                    .find(|c| match (&c.id, &id) {
                        (Some(a), Some(b)) => same_id(a, b),
                        _ => false,
                    })
                    .ok_or(Unreadable::Unbound)?;
                let expiry = self.config.now().saturating_add(self.config.ttl.as_secs());
                let mut nonce = [0u8; NONCE_LEN];
                getrandom::fill(&mut nonce).map_err(|_| Unreadable::Unbound)?;
                if let Some(Value::String(state)) = result.get_mut("requestState") {
                    *state = self.config.keys.seal_state(
                        self.owner.as_ref(),
                        &call.binding,
                        expiry,
                        &nonce,
                        state,
                    );
                    changed = true;
                }
            }
            changed |= self.seal_task_at(result, "taskId");
            if let Some(task) = result.get_mut("task").and_then(Value::as_object_mut) {
                changed |= self.seal_task_at(task, "taskId");
            }
            changed |= self.seal_related_task(result);
            let is_task_list = result
                .get("tasks")
                .and_then(Value::as_array)
                .is_some_and(|tasks| tasks.iter().all(|t| t.get("taskId").is_some()));
            if is_task_list {
                result.insert("tasks".into(), Value::Array(Vec::new()));
                result.remove("nextCursor");
                result.insert("cacheScope".into(), Value::from("private"));
                changed = true;
            }
        }
        if message.contains_key("method") {
            if let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) {
                changed |= self.seal_task_at(params, "taskId");
                changed |= self.seal_related_task(params);
            }
        }
        Ok(changed)
    }
}

impl Rewriter for Sealer {
    /// A handle's names.
    fn names(&self) -> Names {
        Names::HANDLES
    }

    /// A stand-in the server may name back.
    fn other_names_in(&self, text: &[u8]) -> bool {
        self.unknown
            .iter()
            .any(|u| memmem::find(text, u.stand_in.as_bytes()).is_some())
    }

    fn rewrite(&self, text: &[u8]) -> Result<Option<Vec<u8>>, Unreadable> {
        // The server's answer names the stand-in: name the id as presented.
        let mut restored: Option<Vec<u8>> = None;
        for u in &self.unknown {
            let current = restored.as_deref().unwrap_or(text);
            if memmem::find(current, u.stand_in.as_bytes()).is_some() {
                restored = Some(replace_all(
                    current,
                    u.stand_in.as_bytes(),
                    u.presented.as_bytes(),
                ));
            }
        }
        let text = restored.as_deref().unwrap_or(text);
        if !may_carry_handle(text) {
            return Ok(restored);
        }
        let mut value: Value = serde_json::from_slice(text).map_err(|_| Unreadable::NotJson)?;
        let changed = match &mut value {
            Value::Array(batch) => {
                let mut changed = false;
                for m in batch {
                    changed |= self.seal_message(m)?;
                }
                changed
            }
            message => self.seal_message(message)?,
        };
        if !changed {
            return Ok(restored);
        }
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

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{
            atomic::{AtomicU64, Ordering},
            Mutex,
        },
    };

    use http_body_util::BodyExt;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::AuthScheme;

    type Seen = Arc<Mutex<Vec<Value>>>;

    /// A server: `tools/call` (and `prompts/get`, `resources/read`)
    /// without `requestState` asks for input with state `srv-state-1`; with
    /// one, completes and echoes it. `tasks/create_tool` creates task
    /// `t-1`; `tasks/get` echoes the task id; `tasks/list` lists two.
    fn server(
        layer: &HandleBindingLayer,
        seen: &Seen,
        sse: bool,
    ) -> impl Service<
        Request<Body>,
        Response = Response,
        Error = Infallible,
        Future = impl Future<Output = Result<Response, Infallible>> + Send,
    > + Clone {
        let seen = seen.clone();
        ServiceBuilder::new()
            .layer(layer.clone())
            .service(tower::service_fn(move |req: Request<Body>| {
                let seen = seen.clone();
                async move {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let msg: Value = serde_json::from_slice(&body).unwrap();
                    seen.lock().unwrap().push(msg.clone());
                    let id = msg["id"].clone();
                    let params = &msg["params"];
                    let method = msg["method"].as_str().unwrap();
                    // rmcp's TaskManager: only t-1 exists.
                    if method.starts_with("tasks/") && method != "tasks/list" && params["taskId"] != "t-1" {
                        let error = json!({"code": -32602, "message": format!("unknown task: {}", params["taskId"].as_str().unwrap())});
                        return Ok(json_response(StatusCode::OK, json!({"jsonrpc": "2.0", "id": id, "error": error}).to_string()));
                    }
                    let result = match method {
                        "tools/call" if params["name"] == "start_task" => {
                            json!({"resultType": "task", "taskId": "t-1", "status": "working",
                                   "createdAt": "x", "lastUpdatedAt": "x", "ttlMs": null})
                        }
                        "tasks/get" => json!({"resultType": "complete", "taskId": params["taskId"],
                                   "status": "working", "createdAt": "x", "lastUpdatedAt": "x", "ttlMs": null}),
                        "tasks/list" => json!({"tasks": [{"taskId": "t-1"}, {"taskId": "t-2"}], "nextCursor": "c"}),
                        "tools/list" => json!({"resultType": "input_required", "requestState": "nope"}),
                        _ => match params.get("requestState") {
                            None => json!({"resultType": "input_required", "requestState": "srv-state-1",
                                   "inputRequests": {"confirm": {"method": "elicitation/create", "params": {}}}}),
                            Some(state) => json!({"resultType": "complete", "content": [{"type": "text", "text": state}]}),
                        },
                    };
                    let reply = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
                    let mut res = if sse {
                        let mut r = Response::new(Body::from(format!("id: 1\ndata: {reply}\n\n")));
                        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                        r
                    } else {
                        json_response(StatusCode::OK, reply)
                    };
                    *res.status_mut() = StatusCode::OK;
                    Ok::<_, Infallible>(res)
                }
            }))
    }

    fn alice() -> Principal {
        Principal::new(AuthScheme::Jwt, "alice").with_claims(
            json!({"iss": "https://as.example.com"})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    fn bob() -> Principal {
        Principal::new(AuthScheme::Jwt, "bob").with_claims(
            json!({"iss": "https://as.example.com"})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    fn post(who: Option<&Principal>, body: &Value) -> Request<Body> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/mcp")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        if let Some(p) = who {
            req.extensions_mut().insert(p.clone());
        }
        req
    }

    /// The JSON-RPC message of a reply (the data of an SSE event).
    async fn reply(res: Response) -> Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = text
            .strip_prefix("id: 1\ndata: ")
            .map_or(text.as_str(), |t| t.trim_end());
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn call(id: u64, name: &str, args: Value, state: Option<&str>) -> Value {
        let mut params = json!({"name": name, "arguments": args});
        if let Some(s) = state {
            params["requestState"] = Value::from(s);
            params["inputResponses"] =
                json!({"confirm": {"action": "accept", "content": {"ok": true}}});
        }
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
    }

    /// A clock the test moves.
    fn clock() -> (
        Arc<AtomicU64>,
        impl Fn() -> SystemTime + Send + Sync + 'static,
    ) {
        let now = Arc::new(AtomicU64::new(1_800_000_000));
        let read = now.clone();
        (now, move || {
            UNIX_EPOCH + Duration::from_secs(read.load(Ordering::SeqCst))
        })
    }

    async fn first_round(
        svc: impl Service<Request<Body>, Response = Response, Error = Infallible>,
        who: Option<&Principal>,
    ) -> String {
        let res = svc
            .oneshot(post(
                who,
                &call(1, "delete_user", json!({"user_id": "u1", "n": 1.0}), None),
            ))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let v = reply(res).await;
        assert_eq!(v["result"]["resultType"], "input_required", "{v}");
        v["result"]["requestState"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn the_owner_retry_reaches_the_server_with_its_own_state() {
        for sse in [false, true] {
            let layer = HandleBindingLayer::new();
            let seen = Seen::default();
            let svc = server(&layer, &seen, sse);
            let sealed = first_round(svc.clone(), Some(&alice())).await;
            assert_ne!(sealed, "srv-state-1");
            assert!(!sealed.contains("srv-state"));
            // Encrypted: the plain state is not in its base64 either.
            let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
            assert!(memmem::find(&raw, b"srv-state-1").is_none());

            // The retry, its arguments written another way.
            let retry = call(
                2,
                "delete_user",
                json!({"n": 1, "user_id": "u1"}),
                Some(&sealed),
            );
            let res = svc
                .clone()
                .oneshot(post(Some(&alice()), &retry))
                .await
                .unwrap();
            let v = reply(res).await;
            assert_eq!(v["result"]["content"][0]["text"], "srv-state-1", "{v}");
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 2);
            assert_eq!(seen[1]["params"]["requestState"], "srv-state-1");
            assert_eq!(
                seen[1]["params"]["inputResponses"]["confirm"]["action"],
                "accept"
            );
        }
    }

    async fn assert_refused(
        svc: impl Service<Request<Body>, Response = Response, Error = Infallible>,
        who: Option<&Principal>,
        body: &Value,
        message: &str,
    ) {
        let res = svc.oneshot(post(who, body)).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let v = reply(res).await;
        assert_eq!(v["id"], body["id"], "{v}");
        assert_eq!(v["error"]["code"], -32602, "{v}");
        let got = v["error"]["message"].as_str().unwrap();
        assert!(got.contains(message), "{got} for {body}");
    }

    #[tokio::test]
    async fn forged_tampered_foreign_mismatched_and_expired_states_never_reach_the_server() {
        let (now, clock) = clock();
        let layer = HandleBindingLayer::new()
            .clock(clock)
            .state_ttl(Duration::from_secs(60));
        let seen = Seen::default();
        let svc = server(&layer, &seen, false);
        let sealed = first_round(svc.clone(), Some(&alice())).await;
        let args = json!({"user_id": "u1", "n": 1});
        let mut flipped = sealed.clone().into_bytes();
        let i = flipped.len() / 2;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let not_valid = "not valid for this request";
        for (who, body) in [
            // Forged: plain state, or garbage.
            (
                alice(),
                call(2, "delete_user", args.clone(), Some("srv-state-1")),
            ),
            (
                alice(),
                call(
                    2,
                    "delete_user",
                    args.clone(),
                    Some(&URL_SAFE_NO_PAD.encode([1u8; 64])),
                ),
            ),
            // Tampered, truncated.
            (
                alice(),
                call(2, "delete_user", args.clone(), Some(&flipped)),
            ),
            (
                alice(),
                call(
                    2,
                    "delete_user",
                    args.clone(),
                    Some(&sealed[..sealed.len() - 2]),
                ),
            ),
            // Another principal.
            (bob(), call(2, "delete_user", args.clone(), Some(&sealed))),
            // Another tool, other arguments, another method.
            (
                alice(),
                call(2, "create_admin_user", args.clone(), Some(&sealed)),
            ),
            (
                alice(),
                call(
                    2,
                    "delete_user",
                    json!({"user_id": "u2", "n": 1}),
                    Some(&sealed),
                ),
            ),
            (alice(), {
                let mut b = call(2, "delete_user", args.clone(), Some(&sealed));
                b["method"] = "prompts/get".into();
                b
            }),
            (alice(), {
                let mut b = call(2, "delete_user", args.clone(), Some(&sealed));
                b["method"] = "ping".into();
                b
            }),
        ] {
            assert_refused(svc.clone(), Some(&who), &body, not_valid).await;
        }
        assert_refused(
            svc.clone(),
            None,
            &call(2, "delete_user", args.clone(), Some(&sealed)),
            not_valid,
        )
        .await;
        // Twice in one params.
        let twice = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_user","requestState":"a","requestState":"b"}}"#;
        let res = svc
            .clone()
            .oneshot(post(Some(&alice()), &Value::Null).map(|_| Body::from(twice)))
            .await
            .unwrap();
        assert_eq!(reply(res).await["error"]["code"], -32602);

        // Still good 59 s later; expired at 60 s.
        now.fetch_add(59, Ordering::SeqCst);
        let good = call(2, "delete_user", args.clone(), Some(&sealed));
        let v = reply(
            svc.clone()
                .oneshot(post(Some(&alice()), &good))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(v["result"]["content"][0]["text"], "srv-state-1");
        now.fetch_add(1, Ordering::SeqCst);
        assert_refused(svc.clone(), Some(&alice()), &good, "expired").await;
        // The server saw the first round and the one good retry only.
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn without_the_arguments_digest_other_arguments_pass() {
        let layer = HandleBindingLayer::new().bind_arguments(false);
        let seen = Seen::default();
        let svc = server(&layer, &seen, false);
        let sealed = first_round(svc.clone(), Some(&alice())).await;
        let other = call(2, "delete_user", json!({"user_id": "u2"}), Some(&sealed));
        let v = reply(
            svc.clone()
                .oneshot(post(Some(&alice()), &other))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(v["result"]["content"][0]["text"], "srv-state-1");
        assert_refused(
            svc,
            Some(&alice()),
            &call(2, "get_user", json!({"user_id": "u2"}), Some(&sealed)),
            "not valid",
        )
        .await;
    }

    #[test]
    fn canonical_arguments_ignore_order_spacing_and_integral_floats() {
        let d = |t: &str| arguments_digest(serde_json::from_str::<Value>(t).ok().as_ref());
        assert_eq!(
            d(r#"{"a":1,"b":[1.0,{"y":2,"x":"s"}]}"#),
            d(r#"{ "b" : [1, {"x":"s","y":2.0}], "a":1e0 }"#)
        );
        assert_eq!(d("null"), arguments_digest(None));
        assert_eq!(d("{}"), arguments_digest(None));
        assert_ne!(d(r#"{"a":1}"#), d(r#"{"a":1.5}"#));
        assert_ne!(d(r#"{"a":"1"}"#), d(r#"{"a":1}"#));
    }

    #[tokio::test]
    async fn replicas_sharing_a_key_open_each_others_states() {
        let key = [9u8; 32];
        let seen = Seen::default();
        let one = server(&HandleBindingLayer::with_key(key).unwrap(), &seen, false);
        let two = server(&HandleBindingLayer::with_key(key).unwrap(), &seen, false);
        let other = server(&HandleBindingLayer::new(), &seen, false);
        let sealed = first_round(one, Some(&alice())).await;
        let retry = call(
            2,
            "delete_user",
            json!({"user_id": "u1", "n": 1}),
            Some(&sealed),
        );
        let v = reply(two.oneshot(post(Some(&alice()), &retry)).await.unwrap()).await;
        assert_eq!(v["result"]["content"][0]["text"], "srv-state-1");
        assert_refused(other, Some(&alice()), &retry, "not valid").await;
        assert!(HandleBindingLayer::with_key([0u8; 31]).is_err());
        assert!(!format!("{:?}", HandleBindingLayer::with_key(key).unwrap()).contains('9'));
    }

    #[tokio::test]
    async fn task_ids_belong_to_their_creator() {
        let layer = HandleBindingLayer::new();
        let seen = Seen::default();
        let svc = server(&layer, &seen, false);
        let res = svc
            .clone()
            .oneshot(post(
                Some(&alice()),
                &call(1, "start_task", json!({}), None),
            ))
            .await
            .unwrap();
        let v = reply(res).await;
        let task = v["result"]["taskId"].as_str().unwrap().to_owned();
        assert!(task.starts_with("t-1.") && task.len() == 4 + 22, "{task}");

        for method in ["tasks/get", "tasks/cancel", "tasks/update", "tasks/result"] {
            let body =
                json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": {"taskId": task}});
            // The owner's reaches the server bare, with its Mcp-Name.
            if method == "tasks/get" {
                let mut req = post(Some(&alice()), &body);
                req.headers_mut()
                    .insert(crate::mcp::MCP_NAME, HeaderValue::from_str(&task).unwrap());
                let v = reply(svc.clone().oneshot(req).await.unwrap()).await;
                assert_eq!(v["result"]["taskId"], task, "{v}");
                assert_eq!(
                    seen.lock().unwrap().last().unwrap()["params"]["taskId"],
                    "t-1"
                );
            }
            // Anyone else: the server is asked about an id it cannot know,
            // and its answer to an unknown task names the id as presented.
            for (who, presented) in [
                (Some(bob()), task.clone()),
                (None, task.clone()),
                (Some(alice()), "t-1".to_owned()),
                (Some(alice()), format!("{task}x")),
            ] {
                let mut body = body.clone();
                body["params"]["taskId"] = Value::from(presented.clone());
                let seen_before = seen.lock().unwrap().len();
                let res = svc
                    .clone()
                    .oneshot(post(who.as_ref(), &body))
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let v = reply(res).await;
                assert_eq!(
                    v,
                    json!({"jsonrpc": "2.0", "id": 5, "error": {"code": -32602, "message": format!("unknown task: {presented}")}}),
                );
                let seen = seen.lock().unwrap();
                assert_eq!(seen.len(), seen_before + 1, "{method}");
                let asked = seen.last().unwrap()["params"]["taskId"].as_str().unwrap();
                assert!(asked.starts_with("tower-mcp-auth.unknown-task."), "{asked}");
            }
        }
    }

    #[tokio::test]
    async fn task_lists_show_no_bare_id_and_unbound_state_is_withheld() {
        let layer = HandleBindingLayer::new();
        let seen = Seen::default();
        let svc = server(&layer, &seen, false);
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/list"});
        let v = reply(
            svc.clone()
                .oneshot(post(Some(&alice()), &list))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(v["result"], json!({"tasks": [], "cacheScope": "private"}));

        let tools = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        let res = svc.oneshot(post(Some(&alice()), &tools)).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        let v = reply(res).await;
        assert_eq!(v["error"]["code"], -32603);
        assert!(!v.to_string().contains("nope"), "{v}");
    }

    #[tokio::test]
    async fn notifications_and_related_task_meta_are_sealed() {
        let layer = HandleBindingLayer::new();
        let owner = alice();
        let sealer = Sealer {
            config: layer.config.clone(),
            owner: Some(owner.clone()),
            request: Bytes::new(),
            calls: OnceLock::new(),
            unknown: Vec::new(),
            withhold: Withhold::new(
                "handle_binding",
                None,
                &McpRequest::empty(),
                &Request::new(()).into_parts().0,
                1 << 20,
            ),
        };
        let text = json!({"jsonrpc": "2.0", "method": "notifications/tasks",
            "params": {"taskId": "t-9", "status": "working",
                       "_meta": {RELATED_TASK: {"taskId": "t-9"}}}})
        .to_string();
        let out: Value =
            serde_json::from_slice(&sealer.rewrite(text.as_bytes()).unwrap().unwrap()).unwrap();
        let sealed = out["params"]["taskId"].as_str().unwrap();
        assert_eq!(
            layer.config.keys.open_task(Some(&owner), sealed),
            Some("t-9")
        );
        assert_eq!(out["params"]["_meta"][RELATED_TASK]["taskId"], sealed);
        // Nothing to seal: goes on as it is.
        assert!(sealer
            .rewrite(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#)
            .unwrap()
            .is_none());
        assert!(!sealer.may_carry(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#));
    }
}
