//! Reading a reply to rewrite it: [`apply`] holds a JSON body whole (or
//! reads an event stream event by event) and hands it to a [`Rewriter`];
//! [`Filtered`] waits for a service's reply and then applies one.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use http_body::Frame;

use crate::future::BoxError;

use super::{first_byte, may_be_json, sse, Rewriter, Unreadable};

/// How a reply's body is written, as its headers say.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// A content coding other than `identity`: the filter cannot read it.
    Encoded,
    /// `text/event-stream`: read event by event.
    EventStream,
    /// Anything else: read whole.
    Whole,
}

/// The framing of a reply, in one pass over its few headers (looking up
/// each name would hash it). The first `Content-Type` decides, as
/// [`HeaderMap::get`] would; any coding in any `Content-Encoding` value
/// makes the body unreadable.
fn framing(headers: &HeaderMap) -> Framing {
    let mut content_type = None;
    for (name, value) in headers {
        if name == header::CONTENT_ENCODING && is_encoded(value) {
            return Framing::Encoded;
        }
        if name == header::CONTENT_TYPE {
            content_type.get_or_insert(value);
        }
    }
    if content_type.is_some_and(is_event_stream) {
        Framing::EventStream
    } else {
        Framing::Whole
    }
}

fn is_event_stream(content_type: &HeaderValue) -> bool {
    content_type.to_str().is_ok_and(|v| {
        v.trim_start()
            .get(..17)
            .is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream"))
    })
}

/// Whether a `Content-Encoding` value names a coding other than
/// `identity`.
fn is_encoded(content_encoding: &HeaderValue) -> bool {
    content_encoding.as_bytes().split(|&b| b == b',').any(|c| {
        let c = c.trim_ascii();
        !c.is_empty() && !c.eq_ignore_ascii_case(b"identity")
    })
}

/// What [`begin`] made of a reply.
enum Begun {
    /// Decided without reading the body.
    Done(Response),
    /// A body to read whole.
    Reading(Plain),
}

/// Starts filtering a response of the MCP endpoint for the exchange's
/// caller: an event stream event by event, as it comes (the rewriter goes
/// with it); any other body to be held whole and checked when it may be
/// JSON, else streamed on.
fn begin<R: Rewriter>(response: Response, rewriter: &mut Option<R>) -> Begun {
    if http_body::Body::size_hint(response.body()).exact() == Some(0) {
        return Begun::Done(response);
    }
    let Some(filter) = rewriter else {
        return Begun::Done(response);
    };
    match framing(response.headers()) {
        Framing::Encoded => Begun::Done(
            filter
                .withhold(Unreadable::Encoded)
                .refuse(Unreadable::Encoded),
        ),
        Framing::EventStream => {
            let (mut parts, body) = response.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let filter = rewriter.take().expect("matched just above");
            Begun::Done(Response::from_parts(
                parts,
                Body::new(sse::SseFilter::new(body, filter)),
            ))
        }
        Framing::Whole => {
            let (parts, body) = response.into_parts();
            Begun::Reading(Plain {
                parts,
                body,
                held: Held::default(),
                json: None,
            })
        }
    }
}

/// `response` filtered by `filter` (the tests' way to run one reply
/// through [`Filtered`]).
#[cfg(test)]
pub(super) async fn apply<R: Rewriter>(response: Response, filter: R) -> Response {
    let reply = std::future::ready(Ok::<_, std::convert::Infallible>(response));
    match Filtered::calling(reply, Some(filter)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// How far a [`Plain`] body was read.
enum Read {
    /// To its end.
    Whole,
    /// Until its first byte showed it is not JSON.
    NotJson,
    /// Until it could not be read.
    Unreadable(Unreadable),
}

/// A body that is not an event stream, being read.
struct Plain {
    parts: http::response::Parts,
    body: Body,
    held: Held,
    /// Whether the body may be JSON, once its first byte has come.
    json: Option<bool>,
}

impl Plain {
    /// Reads what has come, until the body ends or shows it cannot be
    /// read as a reply to filter (more than `limit` bytes).
    fn read(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<Read> {
        while let Some(frame) =
            std::task::ready!(http_body::Body::poll_frame(Pin::new(&mut self.body), cx))
        {
            let Ok(frame) = frame else {
                return Poll::Ready(Read::Unreadable(Unreadable::BodyFailed));
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers: a JSON response has none to keep
            };
            self.held.push(data);
            if self.json.is_none() {
                self.json = first_byte(self.held.bytes()).map(may_be_json);
            }
            match self.json {
                Some(false) => return Poll::Ready(Read::NotJson),
                _ if self.held.bytes().len() > limit => {
                    return Poll::Ready(Read::Unreadable(Unreadable::TooLarge));
                }
                _ => {}
            }
        }
        Poll::Ready(Read::Whole)
    }

    /// The reply, once `read` said how far it was read.
    fn end<R: Rewriter>(self, read: Read, filter: &R) -> Response {
        match read {
            Read::Whole => self.finish(filter),
            Read::NotJson => {
                // What was read, then the rest as it comes.
                let head = self.held.into_bytes();
                Response::from_parts(self.parts, Body::new(Prefixed::new(head, self.body)))
            }
            Read::Unreadable(why) => filter.withhold(why).refuse(why),
        }
    }

    /// The reply read whole: on as it is, or written again.
    fn finish<R: Rewriter>(self, filter: &R) -> Response {
        let Self {
            mut parts,
            held,
            json,
            ..
        } = self;
        let bytes = held.into_bytes();
        if json != Some(true) || !filter.may_carry(&bytes) {
            return Response::from_parts(parts, Body::from(bytes));
        }
        match filter.rewrite(&bytes) {
            Ok(None) => Response::from_parts(parts, Body::from(bytes)),
            Ok(Some(out)) => {
                parts.headers.remove(header::CONTENT_LENGTH);
                Response::from_parts(parts, Body::from(out))
            }
            Err(why) => filter.withhold(why).refuse(why),
        }
    }
}

/// A body held in memory: the first chunk as it came, more copied after.
#[derive(Default)]
struct Held {
    first: Bytes,
    more: Option<Vec<u8>>,
}

impl Held {
    fn push(&mut self, data: Bytes) {
        if let Some(buf) = &mut self.more {
            buf.extend_from_slice(&data);
        } else if self.first.is_empty() {
            self.first = data;
        } else {
            let mut buf = Vec::with_capacity(self.first.len() + data.len());
            buf.extend_from_slice(&self.first);
            buf.extend_from_slice(&data);
            self.more = Some(buf);
        }
    }

    fn bytes(&self) -> &[u8] {
        self.more.as_deref().unwrap_or(&self.first)
    }

    fn into_bytes(self) -> Bytes {
        self.more.map_or(self.first, Bytes::from)
    }
}

/// The bytes read to decide, then the rest of the body as it comes.
struct Prefixed {
    head: Option<Bytes>,
    rest: Body,
}

impl Prefixed {
    fn new(head: Bytes, rest: Body) -> Self {
        Self {
            head: Some(head),
            rest,
        }
    }
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.is_end_stream()
    }
}

pin_project_lite::pin_project! {
    /// A service's reply, once it comes, rewritten by `R` (held whole when
    /// it is JSON, read event by event when it is an event stream): the
    /// wait of a layer that decided before it called the service. Written
    /// out rather than an `async` block: the rewriter stays where it was
    /// put, and the future stays small (it is boxed for every request).
    /// Without a rewriter, the reply goes on as it is.
    pub(crate) struct Filtered<F, R> {
        #[pin]
        step: Step<F>,
        rewriter: Option<R>,
    }
}

pin_project_lite::pin_project! {
    #[project = StepProj]
    enum Step<F> {
        /// Answered without the service.
        Ready { response: Option<Response> },
        /// Waiting for the service's reply.
        Calling { #[pin] reply: F },
        /// Reading the reply to rewrite it.
        Reading { plain: Option<Plain> },
        Done,
    }
}

impl<F, R> Filtered<F, R> {
    /// `response`, at once.
    pub(crate) fn ready(response: Response) -> Self {
        Self {
            step: Step::Ready {
                response: Some(response),
            },
            rewriter: None,
        }
    }

    /// The reply of `reply`, rewritten by `rewriter` when there is one.
    pub(crate) fn calling(reply: F, rewriter: Option<R>) -> Self {
        Self {
            step: Step::Calling { reply },
            rewriter,
        }
    }
}

impl<F, R, E, ResBody> Future for Filtered<F, R>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    R: Rewriter,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.step.as_mut().project() {
                StepProj::Ready { response } => {
                    let response = response.take();
                    this.step.set(Step::Done);
                    return Poll::Ready(Ok(response.expect("a ready response is taken once")));
                }
                StepProj::Calling { reply } => {
                    let response = match std::task::ready!(reply.poll(cx)) {
                        Ok(response) => response.map(Body::new),
                        Err(e) => {
                            this.step.set(Step::Done);
                            return Poll::Ready(Err(e));
                        }
                    };
                    match begin(response, this.rewriter) {
                        Begun::Done(response) => {
                            this.step.set(Step::Done);
                            return Poll::Ready(Ok(response));
                        }
                        Begun::Reading(plain) => {
                            this.step.set(Step::Reading { plain: Some(plain) })
                        }
                    }
                }
                StepProj::Reading { plain } => {
                    let (Some(reading), Some(filter)) = (plain.as_mut(), this.rewriter.as_ref())
                    else {
                        unreachable!("a reading has its body and its rewriter")
                    };
                    // Read in place; taken out only once decided.
                    let read = std::task::ready!(reading.read(cx, filter.limit()));
                    let response = plain.take().expect("matched just above").end(read, filter);
                    this.step.set(Step::Done);
                    return Poll::Ready(Ok(response));
                }
                StepProj::Done => panic!("`Filtered` polled after it completed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_reads_the_headers_as_a_lookup_would() {
        let framing_of = |pairs: &[(&'static str, &str)]| {
            let mut headers = HeaderMap::new();
            for &(name, value) in pairs {
                headers.append(name, value.parse().unwrap());
            }
            framing(&headers)
        };
        let sse = "text/event-stream";
        assert_eq!(framing_of(&[]), Framing::Whole);
        assert_eq!(
            framing_of(&[("content-type", " Text/Event-Stream; charset=utf-8")]),
            Framing::EventStream
        );
        // The first Content-Type decides.
        let json_first = [("content-type", "application/json"), ("content-type", sse)];
        assert_eq!(framing_of(&json_first), Framing::Whole);
        let sse_first = [("content-type", sse), ("content-type", "application/json")];
        assert_eq!(framing_of(&sse_first), Framing::EventStream);
        // A coding in any value, before or after the type, is unreadable.
        let late = [
            ("content-type", sse),
            ("content-encoding", "identity"),
            ("content-encoding", "identity, br"),
        ];
        assert_eq!(framing_of(&late), Framing::Encoded);
        let early = [
            ("content-encoding", "gzip"),
            ("content-type", "application/json"),
        ];
        assert_eq!(framing_of(&early), Framing::Encoded);
        assert_eq!(
            framing_of(&[("content-encoding", "identity , ,IDENTITY")]),
            Framing::Whole
        );
    }
}
