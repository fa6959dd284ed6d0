//! The response future of [`Authorize`](crate::Authorize)
//! : either the inner service's future, or a
//! refusal ready at once.

use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use pin_project_lite::pin_project;

/// A boxed error, as http-body uses.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// Response future of [`Authorize`](crate::Authorize): the inner service's response
    /// (its body converted into an [`axum::body::Body`], which costs nothing
    /// when it already is one) or a refusal.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn refused(response: Response) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                Poll::Ready(ready!(future.poll(cx)).map(|r| r.map(Body::new)))
            }
            KindProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
