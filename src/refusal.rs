//! The JSON-RPC id of a refusal made before anything read the body: the
//! authenticators' and [`FailedAuthLayer`]'s.
//!
//! A refusal of a Streamable HTTP message (a `POST` of JSON that accepts
//! SSE) is a JSON-RPC error, and should carry the request's `id`. A layer
//! that refuses before the body was read (no [`JsonRpcId`] in the
//! extensions) reads it then, and only then: never the body of a request
//! it lets through (that one reaches the MCP server untouched), only the
//! body of one it refuses, which nobody else will read. The read is
//! bounded: at most [`ID_PEEK_LIMIT`] bytes (a body that says it is longer
//! is not read at all), for at most [`ID_PEEK_TIME`] (one second), so a
//! refused request holds at most 16 KiB for at most a second; a body that
//! does not arrive in time gets `"id": null`. All refusals reading at once
//! hold at most [`PEEK_BUDGET`] bytes together: past it, a refusal does not
//! read and says `"id": null`. The id is then parsed as rmcp parses it:
//! the body must be one JSON object (a batch is not) that is a *request*
//! as rmcp tells one (a `method` string and an `id`, no `result` or
//! `error`: a client's response to a server request carries the server's
//! id, which the client would take for one of its own), with one `id`
//! member that is a string or an integer (`1.0` and `1e2` are integers,
//! rendered `1` and `100` as rmcp renders them; past ±2^53 written as a
//! float, or not an integer, rmcp refuses the message and so is there no
//! id). Anything else is `"id": null`, which JSON-RPC 2.0 (§5) prescribes
//! when the id cannot be determined.
//!
//! [`FailedAuthLayer`]: crate::rate_limit::failed_auth::FailedAuthLayer

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::response::Response;
use bytes::Buf;
use http::Request;
use http_body::Body;
use pin_project_lite::pin_project;

use crate::{
    budget::{ByteBudget, Held},
    error::{is_streamable_http_message, AuthError, ErrorRenderer},
    jsonrpc_id::{id_of, JsonRpcId},
};

/// The most bytes of a refused request's body read to find its id.
pub(crate) const ID_PEEK_LIMIT: usize = 16 * 1024;

/// The longest a refusal waits for the body that carries its id: a client
/// that sends its headers and then trickles (or never sends) the body gets
/// its refusal with `"id": null` after this, instead of holding the
/// refusal open.
pub(crate) const ID_PEEK_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// The most bytes all refusals together hold while they read bodies for
/// their ids: 8 MiB, 512 reads of [`ID_PEEK_LIMIT`]. A refusal that finds
/// it spent does not read, and answers with `"id": null` at once.
pub(crate) const PEEK_BUDGET: usize = 8 * 1024 * 1024;

/// The budget of [`PEEK_BUDGET`] bytes, one for the process.
fn peek_budget() -> &'static ByteBudget {
    static BUDGET: std::sync::OnceLock<ByteBudget> = std::sync::OnceLock::new();
    BUDGET.get_or_init(|| ByteBudget::new(PEEK_BUDGET))
}

/// A refusal still reading the body for its id.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A rendered refusal, now or once the id is read.
pub(crate) enum Rendered {
    Now(Response),
    Later(Pending),
}

/// Renders `err` (already given the request's context with
/// [`AuthError::with_request`]) for `req`, reading the request's id from
/// its body first when it is a Streamable HTTP message whose id nobody
/// read.
pub(crate) fn render<B>(renderer: &ErrorRenderer, err: AuthError, req: Request<B>) -> Rendered
where
    B: Body + Send + 'static,
{
    if req.extensions().get::<JsonRpcId>().is_some() || !is_streamable_http_message(&req) {
        return Rendered::Now(renderer.render(err));
    }
    let renderer = renderer.clone();
    let peek = Peek::new(req.into_body());
    Rendered::Later(Box::pin(async move {
        let body = tokio::time::timeout(ID_PEEK_TIME, peek)
            .await
            .ok()
            .flatten();
        let id = body.as_deref().and_then(id_of);
        renderer.render(err.with_jsonrpc_id(id.unwrap_or_else(JsonRpcId::null)))
    }))
}

pin_project! {
    /// Reads a body whole, up to [`ID_PEEK_LIMIT`] bytes, each taken from
    /// the [`PEEK_BUDGET`]: `None` past the limit or the budget, or when
    /// the body fails.
    struct Peek<B> {
        #[pin]
        body: B,
        buf: Vec<u8>,
        held: Held,
        over: bool,
    }
}

impl<B: Body> Peek<B> {
    fn new(body: B) -> Self {
        Self::with_budget(body, peek_budget())
    }

    fn with_budget(body: B, budget: &ByteBudget) -> Self {
        let over = body.size_hint().lower() > ID_PEEK_LIMIT as u64;
        Self {
            body,
            buf: Vec::new(),
            held: budget.hold(),
            over,
        }
    }
}

impl<B: Body> Future for Peek<B> {
    type Output = Option<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if *this.over {
            return Poll::Ready(None);
        }
        loop {
            match std::task::ready!(this.body.as_mut().poll_frame(cx)) {
                None => return Poll::Ready(Some(std::mem::take(this.buf))),
                Some(Err(_)) => return Poll::Ready(None),
                Some(Ok(frame)) => {
                    let Ok(mut data) = frame.into_data() else {
                        continue;
                    };
                    if data.remaining() > ID_PEEK_LIMIT - this.buf.len()
                        || !this.held.grow(data.remaining())
                    {
                        *this.over = true;
                        return Poll::Ready(None);
                    }
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        this.buf.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(body: &str) -> Option<String> {
        id_of(body.as_bytes()).map(|id| id.get().to_owned())
    }

    #[test]
    fn ids_as_rmcp_reads_them() {
        let msg = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
        for (given, want) in [
            ("7", Some("7")),
            ("-3", Some("-3")),
            (r#""req-7""#, Some(r#""req-7""#)),
            (r#""\u0041""#, Some(r#""A""#)),
            ("1.0", Some("1")),
            ("1e2", Some("100")),
            ("-0", Some("0")),
            ("9223372036854775807", Some("9223372036854775807")),
            ("9223372036854775808", None),
            ("1.5", None),
            ("1e300", None),
            ("null", None),
            ("true", None),
            ("{}", None),
            ("[1]", None),
        ] {
            assert_eq!(id(&msg(given)).as_deref(), want, "{given}");
        }
        // One message object, one id; anything else has none.
        assert_eq!(id(r#"{"id":1,"id":2,"method":"ping"}"#), None);
        assert_eq!(id(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","method":"ping"}"#), None);
        assert_eq!(id("not json"), None);
        // The member named with an escape is the member rmcp reads.
        assert_eq!(id(r#"{"\u0069d":5,"method":"ping"}"#).as_deref(), Some("5"));
    }

    /// A client's response to a server request carries the server's id
    /// (issue 23, item 6d): a refusal never echoes it, or the client would
    /// match the error to its own request 5. Only a request, as rmcp tells
    /// one, lends its id.
    #[test]
    fn a_response_lends_no_id() {
        for body in [
            r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":5,"result":null}"#,
            r#"{"jsonrpc":"2.0","id":5,"error":{"code":-1,"message":"no"}}"#,
            // Neither a request nor a response to rmcp: no id either.
            r#"{"jsonrpc":"2.0","id":5,"method":"ping","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"ping","error":{}}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":null}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"a","method":"b"}"#,
            r#"{"jsonrpc":"2.0","id":5}"#,
        ] {
            assert_eq!(id(body), None, "{body}");
        }
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#).as_deref(),
            Some("5")
        );
    }

    #[tokio::test]
    async fn the_peek_is_bounded() {
        let small = format!(r#"{{"id":1,"pad":"{}"}}"#, "x".repeat(ID_PEEK_LIMIT - 20));
        assert!(small.len() <= ID_PEEK_LIMIT);
        assert!(Peek::new(axum::body::Body::from(small)).await.is_some());
        let large = "x".repeat(ID_PEEK_LIMIT + 1);
        // Known to be too long: not read at all.
        let body = axum::body::Body::from(large.clone());
        assert!(body.size_hint().lower() > ID_PEEK_LIMIT as u64);
        assert_eq!(Peek::new(body).await, None);
        // A stream of unknown length: read up to the limit, then given up.
        let chunks = large
            .as_bytes()
            .chunks(1024)
            .map(bytes::Bytes::copy_from_slice);
        assert_eq!(Peek::new(Chunks(chunks.collect())).await, None);
    }

    /// The reads of all refusals together hold at most the budget: past
    /// it a refusal does not read (and says `"id": null`).
    #[tokio::test]
    async fn the_peeks_share_a_budget() {
        let budget = ByteBudget::new(ID_PEEK_LIMIT + 10);
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let held = {
            let mut h = budget.hold();
            assert!(h.grow(ID_PEEK_LIMIT - 20));
            h
        };
        let peek = Peek::with_budget(Chunks([body.into()].into()), &budget);
        assert_eq!(peek.await, None, "the budget has 30 bytes left");
        drop(held);
        let peek = Peek::with_budget(Chunks([body.into()].into()), &budget);
        assert_eq!(peek.await.as_deref(), Some(body.as_bytes()));
        assert_eq!(budget.used(), 0, "given back once read");
    }

    /// A client that sends a JSON-RPC POST's headers and never its body
    /// gets its refusal after [`ID_PEEK_TIME`], with `"id": null`.
    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_comes_is_waited_for_a_second_only() {
        let req = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Never)
            .unwrap();
        let Rendered::Later(pending) = render(
            &ErrorRenderer::default(),
            AuthError::missing_credential(),
            req,
        ) else {
            panic!("a Streamable HTTP message without an id read is rendered later");
        };
        let started = tokio::time::Instant::now();
        let response = pending.await;
        assert_eq!(started.elapsed(), ID_PEEK_TIME);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["id"], serde_json::Value::Null, "{body}");
    }

    /// A body whose frames never come.
    struct Never;

    impl Body for Never {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    /// A body of frames with no length hint.
    struct Chunks(std::collections::VecDeque<bytes::Bytes>);

    impl Body for Chunks {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
        }
    }
}
