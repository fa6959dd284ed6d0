//! What the caller gets when the upstream cannot answer: never a hang,
//! never a bare connection reset.
//!
//! A POST gets a JSON-RPC error for each request of its body, with that
//! request's id (a batch gets an array), so a client waiting on an id
//! hears about it. A body without a request (notifications, a client's
//! responses), a GET (the SSE stream) and a DELETE get a plain JSON error.

use axum::body::Body;
use http::{header, HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Value};
use tower_mcp_auth::mcp::McpRequest;

/// The JSON-RPC code of every gateway failure: "Internal error".
pub const JSONRPC_UPSTREAM_ERROR: i64 = -32603;

/// Why the upstream gave no usable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// Refused, reset, closed, or not an HTTP answer: 502.
    Unreachable,
    /// No response headers (or no connection) within the timeout: 504.
    Timeout,
    /// Every upstream connection slot stayed busy for the timeout: 503.
    Busy,
    /// The upstream answered 401: it refused the gateway's own
    /// credential (`UPSTREAM_AUTHORIZATION`), which the caller cannot fix:
    /// 502.
    Refused,
    /// The upstream answered with a redirect (`UPSTREAM_URL` is not its
    /// endpoint, e.g. a missing trailing slash): 502. Its `Location`
    /// names the upstream, which the caller must not be sent to.
    Redirected,
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Self::Unreachable | Self::Refused | Self::Redirected => StatusCode::BAD_GATEWAY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error(self) -> &'static str {
        match self {
            Self::Unreachable => "upstream_unreachable",
            Self::Timeout => "upstream_timeout",
            Self::Busy => "upstream_busy",
            Self::Refused => "upstream_refused",
            Self::Redirected => "upstream_redirected",
        }
    }

    /// The `outcome` label of the upstream metrics.
    pub(super) fn outcome(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::Busy => "busy",
            Self::Refused => "refused",
            Self::Redirected => "redirected",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Unreachable => "The MCP server behind the gateway is unreachable",
            Self::Timeout => "The MCP server behind the gateway did not answer in time",
            Self::Busy => "The gateway is at its limit of connections to the MCP server",
            Self::Refused => "The MCP server behind the gateway refused the gateway's credential",
            Self::Redirected => "The MCP server behind the gateway is not at the configured URL",
        }
    }

    /// The response to a `method` request whose JSON-RPC summary (put in
    /// the extensions by the policy layer) is `mcp`.
    pub(super) fn response(self, method: &Method, mcp: Option<&McpRequest>) -> Response<Body> {
        let body = match (method, mcp) {
            (&Method::POST, Some(mcp)) => {
                let mut errors =
                    mcp.calls().iter().filter_map(|c| c.request_id()).map(|id| {
                        self.jsonrpc(serde_json::from_str(id.get()).unwrap_or(Value::Null))
                    });
                if mcp.is_batch() {
                    let errors: Vec<Value> = errors.collect();
                    (!errors.is_empty()).then_some(Value::Array(errors))
                } else {
                    errors.next()
                }
            }
            // Not behind the policy layer: the id is unknown.
            (&Method::POST, None) => Some(self.jsonrpc(Value::Null)),
            _ => None,
        }
        .unwrap_or_else(|| json!({"error": self.error(), "error_description": self.message()}));
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self == Self::Busy {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }

    fn jsonrpc(self, id: Value) -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": JSONRPC_UPSTREAM_ERROR,
                "message": self.message(),
                "data": {"error": self.error(), "status": self.status().as_u16()},
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn json_of(r: Response<Body>) -> Value {
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn one_error_per_request_id() {
        let single = McpRequest::parse(br#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#).unwrap();
        let r = Failure::Timeout.response(&Method::POST, Some(&single));
        assert_eq!(r.status(), 504);
        let v = json_of(r).await;
        assert_eq!(v["id"], "a");
        assert_eq!(v["error"]["code"], JSONRPC_UPSTREAM_ERROR);

        let batch = McpRequest::parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#,
        )
        .unwrap();
        let v = json_of(Failure::Unreachable.response(&Method::POST, Some(&batch))).await;
        let ids: Vec<&Value> = v.as_array().unwrap().iter().map(|e| &e["id"]).collect();
        assert_eq!(ids, [&json!(1), &json!(2)]);
    }

    #[tokio::test]
    async fn streams_and_notifications_get_a_plain_error() {
        let r = Failure::Unreachable.response(&Method::GET, None);
        assert_eq!(r.status(), 502);
        assert_eq!(json_of(r).await["error"], "upstream_unreachable");
        let note = McpRequest::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .unwrap();
        let r = Failure::Busy.response(&Method::POST, Some(&note));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(json_of(r).await["error"], "upstream_busy");
    }
}
