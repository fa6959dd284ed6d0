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
#[derive(Clone)]
pub struct JsonRpcId(Text);

/// An id's JSON text: held inline when short (most ids are a number or a
/// short string: no allocation to read one, none to copy it), else
/// shared.
#[derive(Clone)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

/// The longest id text held inline, in bytes.
const INLINE: usize = 22;

impl std::fmt::Debug for JsonRpcId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JsonRpcId").field(&self.get()).finish()
    }
}

impl JsonRpcId {
    /// The id whose JSON text is `text`.
    pub(crate) fn from_text(text: &str) -> Self {
        Self(match u8::try_from(text.len()) {
            Ok(len) if text.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Text::Inline { len, bytes }
            }
            _ => Text::Shared(Arc::from(text)),
        })
    }
}

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
        Self::from_text(raw.get())
    }

    /// The `null` id, for a request whose id could not be read.
    #[must_use]
    pub fn null() -> Self {
        Self::from_text("null")
    }

    /// The id as raw JSON text.
    #[must_use]
    pub fn get(&self) -> &str {
        match &self.0 {
            // Copied from a `str` whole: always UTF-8.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Shared(text) => text,
        }
    }

    /// The id as a refusal carries it, the way rmcp would echo it: a
    /// string as sent, a number as the integer rmcp reads (`7.0` → `7`),
    /// `null` for anything rmcp would not take as an id.
    pub(crate) fn rendered(&self) -> Box<RawValue> {
        let id = self.get();
        let text = if id.starts_with('"') {
            serde_json::from_str::<&RawValue>(id)
                .ok()
                .map(|_| id.to_owned())
        } else {
            serde_json::from_str(id).ok().and_then(rmcp_id)
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
    Some(JsonRpcId::from_text(&text))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_ids_read_alike() {
        let long = format!("\"{}\"", "x".repeat(64));
        for text in [
            "1",
            "null",
            "\"req-7\"",
            "\"ünïcødé\"",
            "\"abcdefghijklmnopqrst\"",
            &long,
        ] {
            let id = JsonRpcId::from_text(text);
            assert_eq!(id.get(), text);
            assert_eq!(id.clone().get(), text);
            assert_eq!(format!("{id:?}"), format!("JsonRpcId({text:?})"));
        }
        assert!(matches!(JsonRpcId::from_text(&long).0, Text::Shared(_)));
        assert!(matches!(
            JsonRpcId::from_text("\"req-7\"").0,
            Text::Inline { .. }
        ));
        assert_eq!(JsonRpcId::from_text("7.0").rendered().get(), "7");
    }
}
