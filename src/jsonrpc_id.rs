//! JSON-RPC ids: [`JsonRpcId`], the id a refusal carries, and the rules
//! by which rmcp reads an id (a string, or an integer however it is
//! written), shared by the refusal itself ([`AuthError`](crate::AuthError)'s
//! body) and by the refusals that read a body for its id
//! (`refusal.rs`).

use std::sync::Arc;

use serde_json::value::RawValue;

/// The JSON-RPC `id` of the request being handled, put into the request
/// extensions by whatever parsed the body (the MCP inspect step). When
/// present, refusals are rendered as JSON-RPC error objects with this id.
#[derive(Clone, Debug)]
pub struct JsonRpcId(pub(crate) Arc<str>);

impl JsonRpcId {
    /// Wraps a raw JSON id (a string, a number, or `null`).
    ///
    /// ```
    /// use serde_json::value::RawValue;
    /// use tower_mcp_auth::JsonRpcId;
    ///
    /// let raw = RawValue::from_string("\"req-7\"".to_owned()).unwrap();
    /// assert_eq!(JsonRpcId::new(&raw).get(), "\"req-7\"");
    /// ```
    #[must_use]
    pub fn new(raw: &RawValue) -> Self {
        Self(Arc::from(raw.get()))
    }

    /// The `null` id, for a request whose id could not be read.
    #[must_use]
    pub fn null() -> Self {
        Self(Arc::from("null"))
    }

    /// The id as raw JSON text.
    #[must_use]
    pub fn get(&self) -> &str {
        &self.0
    }

    /// The id as a refusal carries it, the way rmcp would echo it: a
    /// string as sent, a number as the integer rmcp reads (`7.0` → `7`),
    /// `null` for anything rmcp would not take as an id.
    pub(crate) fn rendered(&self) -> Box<RawValue> {
        let text = if self.0.starts_with('"') {
            serde_json::from_str::<&RawValue>(&self.0)
                .ok()
                .map(|_| self.0.to_string())
        } else {
            serde_json::from_str(&self.0).ok().and_then(rmcp_id)
        };
        RawValue::from_string(text.unwrap_or_else(|| "null".to_owned()))
            .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is JSON"))
    }
}

/// The id of one JSON-RPC message, as rmcp reads it (`NumberOrString`):
/// `None` when the body is not one JSON object with at most one `id`, or
/// the id is not a string or an integer rmcp accepts.
pub(crate) fn id_of(body: &[u8]) -> Option<JsonRpcId> {
    /// The members rmcp tells a message's shape by (`JsonRpcMessageShape`):
    /// a request has `method` and `id`, and neither `result` nor `error`.
    /// A repeated member fails the whole read.
    #[derive(serde::Deserialize)]
    struct Message {
        id: Option<serde_json::Value>,
        method: Option<String>,
        #[serde(default, deserialize_with = "present")]
        result: bool,
        #[serde(default, deserialize_with = "present")]
        error: bool,
    }
    fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| true)
    }
    use serde::Deserialize as _;
    let message = serde_json::from_slice::<Message>(body).ok()?;
    if message.method.is_none() || message.result || message.error {
        return None; // not a request: a response's id is the server's
    }
    let text = rmcp_id(message.id?)?;
    Some(JsonRpcId(text.into()))
}

/// An id as rmcp reads and echoes it (`NumberOrString`): the JSON text of
/// a string, or of the integer a number stands for; `None` for anything
/// else.
pub(crate) fn rmcp_id(id: serde_json::Value) -> Option<String> {
    match id {
        serde_json::Value::String(s) => serde_json::to_string(&s).ok(),
        serde_json::Value::Number(n) => Some(rmcp_integer(&n)?.to_string()),
        _ => None,
    }
}

/// rmcp's reading of a numeric id: an `i64`, a `u64` up to `i64::MAX`, or a
/// float with no fraction below 2^53 in magnitude.
fn rmcp_integer(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.as_u64().is_some() {
        return None; // above i64::MAX
    }
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    let f = n.as_f64()?;
    #[allow(clippy::cast_possible_truncation)]
    (f.fract() == 0.0 && f.abs() < MAX_EXACT).then_some(f as i64)
}
