//! An upstream response body that holds its connection slot until it ends
//! (an open SSE stream counts against `UPSTREAM_MAX_CONNECTIONS`).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

/// The upstream's body, frames passed on as they arrive.
pub(super) struct Held {
    body: Incoming,
    _slot: OwnedSemaphorePermit,
}

impl Held {
    pub(super) fn new(body: Incoming, slot: OwnedSemaphorePermit) -> Self {
        Self { body, _slot: slot }
    }
}

impl Body for Held {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
