//! How [`McpPolicyLayer`](super::McpPolicyLayer) reads a request body:
//! bounded in size, in time, and together with every other body it holds.
//!
//! A body is read whole before a call can be decided, so what a caller
//! can make the server hold is bounded three ways:
//!
//! - **per request**: at most the layer's `body_limit` (4 MiB by default;
//!   64 KiB, [`ANONYMOUS_REFUSAL_LIMIT`], for an anonymous caller that no
//!   rule of the policy could allow);
//! - **in time**: the whole body within `body_timeout` ([`DEFAULT_BODY_TIMEOUT`],
//!   30 s: 4 MiB at 140 kB/s), else 408;
//! - **in total**: every byte held is taken, as it arrives, from a budget
//!   shared by all requests of the layer, and given back when the body is
//!   dropped (after the MCP service has read it, or with the refusal).
//!   Verified callers share [`DEFAULT_BUFFER_BUDGET`] (64 MiB), anonymous
//!   ones a budget of their own, [`DEFAULT_ANONYMOUS_BUFFER_BUDGET`]
//!   (16 MiB), so anonymous bodies can never crowd out a caller with a
//!   credential. A body that would overrun its budget is refused with 503
//!   and `Retry-After`.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap};
use http_body::{Frame, SizeHint};

use crate::{
    budget::{ByteBudget, Held},
    error::{AuthError, AuthErrorKind},
};

/// The default time to read a whole body: 30 seconds (4 MiB, the default
/// body limit, at 140 kB/s).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The default budget of body bytes that callers with a verified
/// credential hold together: 64 MiB, sixteen bodies of the default limit.
pub const DEFAULT_BUFFER_BUDGET: usize = 64 * 1024 * 1024;

/// The default budget of body bytes that anonymous callers hold together:
/// 16 MiB, apart from [`DEFAULT_BUFFER_BUDGET`].
pub const DEFAULT_ANONYMOUS_BUFFER_BUDGET: usize = 16 * 1024 * 1024;

/// The most read of an anonymous caller's body when no rule of the policy
/// could allow an anonymous caller: 64 KiB, enough for any `initialize`;
/// read for at most a second. Past either, the caller is refused (401) on
/// what it has sent.
pub const ANONYMOUS_REFUSAL_LIMIT: usize = 64 * 1024;

/// The longest the read of [`ANONYMOUS_REFUSAL_LIMIT`] waits.
pub(crate) const ANONYMOUS_REFUSAL_TIME: Duration = crate::refusal::ID_PEEK_TIME;

/// How long `Retry-After` says to wait when the budget is spent: the
/// budget comes back as bodies complete or time out.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum Unread {
    /// Over this many bytes (declared or sent).
    TooLarge(usize),
    /// Not whole within this time.
    Timeout(Duration),
    /// The budget has no room for it.
    Exhausted,
    /// The body failed (the client went away).
    Broken,
}

impl Unread {
    /// The refusal: 413, 408, 503 with `Retry-After`, or 400.
    pub(crate) fn into_error(self) -> AuthError {
        match self {
            Self::TooLarge(limit) => AuthError::payload_too_large(limit),
            Self::Timeout(time) => AuthError::request_timeout(time),
            Self::Exhausted => AuthError::new(
                AuthErrorKind::Unavailable,
                "the server holds as many request bodies as it may; retry shortly",
            )
            .with_retry_after(RETRY_AFTER),
            Self::Broken => AuthError::malformed_request("the request body could not be read"),
        }
    }
}

/// A body read whole, its bytes still taken from the budget.
#[derive(Debug)]
pub(crate) struct Buffered {
    bytes: Bytes,
    held: Held,
}

impl Buffered {
    /// The bytes.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The same bytes as a body for the inner service, which gives the
    /// budget back when it is dropped.
    pub(crate) fn into_body(self) -> Body {
        Body::new(HeldBody {
            data: Some(self.bytes).filter(|b| !b.is_empty()),
            _held: self.held,
        })
    }
}

/// Reads `body` whole: at most `limit` bytes (a larger `Content-Length`
/// is refused before reading), within `time`, each byte taken from
/// `budget` as it arrives.
///
/// # Errors
///
/// [`Unread`]: too large, too slow, no room in the budget, or broken.
pub(crate) async fn read<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    time: Duration,
    budget: &ByteBudget,
) -> Result<Buffered, Unread>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    Reading::new(headers, Body::new(body), limit, budget)
        .finish(time)
        .await
}

/// A body being read whole ([`read`]), frame by frame as it comes: a
/// reader may first see whether it is whole already ([`Self::now`]), and
/// wait only when it is not.
pub(crate) struct Reading {
    body: Body,
    limit: usize,
    /// The budget taken; handed over with the body read.
    held: Option<Held>,
    /// The first chunk, kept as it came while it is the only one.
    first: Bytes,
    /// The chunks copied together, once there is more than one.
    buf: Vec<u8>,
    total: usize,
    /// Refused before a byte was read (`Content-Length` over the limit).
    refused: Option<Unread>,
}

impl Reading {
    /// Starts reading `body`, at most `limit` bytes taken from `budget`.
    pub(crate) fn new(headers: &HeaderMap, body: Body, limit: usize, budget: &ByteBudget) -> Self {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Self {
            body,
            limit,
            held: Some(budget.hold()),
            first: Bytes::new(),
            buf: Vec::new(),
            total: 0,
            refused: declared
                .is_some_and(|n| n > limit as u64)
                .then_some(Unread::TooLarge(limit)),
        }
    }

    /// The body, when all of it has come already (the usual case for a
    /// small body: the server read it with the head): polled once without
    /// waiting, so the request is decided without a timer or a task
    /// wake-up. `None` when more is to come: then [`Self::finish`].
    pub(crate) fn now(&mut self) -> Option<Result<Buffered, Unread>> {
        match self.poll(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(read) => Some(read),
            Poll::Pending => None,
        }
    }

    /// The body, read to its end within `time`.
    pub(crate) async fn finish(mut self, time: Duration) -> Result<Buffered, Unread> {
        match tokio::time::timeout(time, std::future::poll_fn(|cx| self.poll(cx))).await {
            Ok(read) => read,
            Err(_) => Err(Unread::Timeout(time)),
        }
    }

    /// Reads what has come: a body that arrives in one chunk (the usual
    /// case) is kept as it is, with no copy; a body of several is copied
    /// into one buffer whose whole capacity is counted (it grows by
    /// doubling, up to the limit).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Buffered, Unread>> {
        if let Some(unread) = self.refused.take() {
            return Poll::Ready(Err(unread));
        }
        while let Some(frame) =
            std::task::ready!(http_body::Body::poll_frame(Pin::new(&mut self.body), cx))
        {
            let Ok(frame) = frame else {
                return Poll::Ready(Err(Unread::Broken));
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if let Err(unread) = self.push(data) {
                return Poll::Ready(Err(unread));
            }
        }
        let bytes = if self.buf.is_empty() {
            std::mem::take(&mut self.first)
        } else {
            Bytes::from(std::mem::take(&mut self.buf))
        };
        let held = self.held.take().expect("a reading is polled until it ends");
        Poll::Ready(Ok(Buffered { bytes, held }))
    }

    /// Keeps `data`, counting it.
    fn push(&mut self, data: Bytes) -> Result<(), Unread> {
        if data.len() > self.limit - self.total {
            return Err(Unread::TooLarge(self.limit));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.total += data.len();
        let held = self
            .held
            .as_mut()
            .expect("a reading is polled until it ends");
        if self.total == data.len() {
            if !held.grow(data.len()) {
                return Err(Unread::Exhausted);
            }
            self.first = data;
            return Ok(());
        }
        let buf = &mut self.buf;
        if self.total > buf.capacity() {
            let capacity = self
                .total
                .max(buf.capacity().saturating_mul(2))
                .min(self.limit);
            if !held.grow(capacity - buf.capacity()) {
                return Err(Unread::Exhausted);
            }
            buf.reserve_exact(capacity - buf.len());
        }
        if !self.first.is_empty() {
            buf.extend_from_slice(&self.first);
            held.release(self.first.len());
            self.first = Bytes::new();
        }
        buf.extend_from_slice(&data);
        Ok(())
    }
}

/// The buffered bytes handed to the inner service; the budget they took
/// is given back when it drops the body.
struct HeldBody {
    data: Option<Bytes>,
    _held: Held,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;

    /// A body of these chunks, then (when `stall`) frames that never come.
    struct Chunks {
        chunks: VecDeque<Bytes>,
        stall: bool,
        /// The last chunk is not there at the first look: it comes at the
        /// next poll (the reader is woken for it).
        late: bool,
    }

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.late && self.chunks.len() == 1 {
                self.late = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match self.chunks.pop_front() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None if self.stall => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    fn chunks(sizes: &[usize], stall: bool) -> Chunks {
        Chunks {
            chunks: sizes.iter().map(|&n| Bytes::from(vec![b' '; n])).collect(),
            stall,
            late: false,
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn whole_bodies_are_counted_until_dropped() {
        let budget = ByteBudget::new(1 << 20);
        let headers = HeaderMap::new();
        let one = read(&headers, chunks(&[1000], false), 4096, SECOND, &budget)
            .await
            .unwrap();
        assert_eq!((one.bytes().len(), budget.used()), (1000, 1000));
        let three = read(
            &headers,
            chunks(&[100, 200, 300], false),
            4096,
            SECOND,
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(three.bytes().len(), 600);
        // The buffer's capacity is counted: 300, then 600.
        assert_eq!(budget.used(), 1000 + 600);
        let body = three.into_body();
        assert_eq!(budget.used(), 1600, "held by the body handed on");
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 600);
        drop(one);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn over_the_limit_or_the_budget_is_refused_and_given_back() {
        let budget = ByteBudget::new(1000);
        let headers = HeaderMap::new();
        let too_large = read(&headers, chunks(&[600, 600], false), 1024, SECOND, &budget);
        assert!(matches!(too_large.await, Err(Unread::TooLarge(1024))));
        let too_many = read(&headers, chunks(&[600, 600], false), 4096, SECOND, &budget);
        assert!(matches!(too_many.await, Err(Unread::Exhausted)));
        assert_eq!(budget.used(), 0);
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, 5000.into());
        let unread = read(&declared, chunks(&[], true), 4096, SECOND, &budget);
        assert!(matches!(unread.await, Err(Unread::TooLarge(4096))));
        let err = Unread::Exhausted.into_error();
        assert_eq!(
            (err.status().as_u16(), err.retry_after()),
            (503, Some(RETRY_AFTER))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_and_gives_its_bytes_back() {
        let budget = ByteBudget::new(1 << 20);
        let started = tokio::time::Instant::now();
        let headers = HeaderMap::new();
        let stalled = read(&headers, chunks(&[500], true), 4096, SECOND * 30, &budget);
        let mut stalled = std::pin::pin!(stalled);
        assert!(futures_poll(stalled.as_mut()).is_none());
        assert_eq!(budget.used(), 500, "held while it stalls");
        assert!(matches!(stalled.await, Err(Unread::Timeout(t)) if t == SECOND * 30));
        assert_eq!(started.elapsed(), SECOND * 30);
        assert_eq!(budget.used(), 0);
        let err = Unread::Timeout(SECOND * 30).into_error();
        assert_eq!((err.status().as_u16(), err.jsonrpc_code()), (408, -32008));
    }

    #[tokio::test]
    async fn a_whole_body_is_read_at_once_and_a_late_one_after() {
        let budget = ByteBudget::new(1 << 20);
        let headers = HeaderMap::new();
        let whole = Body::new(chunks(&[300, 200], false));
        let mut reading = Reading::new(&headers, whole, 4096, &budget);
        let read = reading.now().expect("whole at the first look").unwrap();
        assert_eq!((read.bytes().len(), budget.used()), (500, 500));
        drop(read);
        let late = Chunks {
            late: true,
            ..chunks(&[300, 200], false)
        };
        let mut reading = Reading::new(&headers, Body::new(late), 4096, &budget);
        assert!(reading.now().is_none(), "the second chunk is not there yet");
        assert_eq!(budget.used(), 300, "what came is held while it waits");
        let read = reading.finish(SECOND).await.unwrap();
        // One buffer of both chunks, counted once: its capacity, 500.
        assert_eq!((read.bytes().len(), budget.used()), (500, 500));
        drop(read);
        assert_eq!(budget.used(), 0);
        // Over the declared limit: refused at the first look, nothing held.
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, 5000.into());
        let mut reading = Reading::new(&declared, Body::new(chunks(&[], true)), 4096, &budget);
        assert!(matches!(reading.now(), Some(Err(Unread::TooLarge(4096)))));
        assert_eq!(budget.used(), 0);
    }

    /// Polls `f` once.
    fn futures_poll<F: std::future::Future>(f: Pin<&mut F>) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        match f.poll(&mut Context::from_waker(waker)) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }
}
