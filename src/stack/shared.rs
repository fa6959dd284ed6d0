//! A service that is cloned for the price of one reference count.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use tower::Service;

/// `S` behind an [`Arc`]: cloning it costs one reference count, however
/// much a clone of `S` costs; `S` itself is cloned once per call, when
/// the call is readied.
///
/// Layers that answer after an `.await` (the policy layer, while a body
/// is still arriving) move the readied service into their future and
/// leave a clone in its place, as tower's contract asks; axum clones the
/// whole stack for each request besides. A service whose clone is dear pays that at every
/// such step: rmcp's `StreamableHttpService` copies its configuration
/// (allowed hosts and origins among it) on each clone. [`McpAuthLayer`]
/// puts the service it protects behind this, so a request clones it once,
/// as it would unprotected.
///
/// [`McpAuthLayer`]: super::McpAuthLayer
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use tower::{service_fn, ServiceExt};
/// use tower_mcp_auth::stack::SharedService;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = SharedService::new(service_fn(|_: Request<()>| async {
///     Ok::<_, Infallible>(Response::new("hello"))
/// }));
/// let res = svc.clone().oneshot(Request::new(())).await.unwrap();
/// assert_eq!(*res.body(), "hello");
/// # }
/// ```
pub struct SharedService<S> {
    shared: Arc<S>,
    /// The clone readied for the next call (by `poll_ready`).
    ready: Option<S>,
}

impl<S> SharedService<S> {
    /// `service`, shared.
    pub fn new(service: S) -> Self {
        Self {
            shared: Arc::new(service),
            ready: None,
        }
    }
}

impl<S> Clone for SharedService<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            ready: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for SharedService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedService").field(&self.shared).finish()
    }
}

impl<S, R> Service<R> for SharedService<S>
where
    S: Service<R> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let shared = &self.shared;
        self.ready
            .get_or_insert_with(|| S::clone(shared))
            .poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        // Called without `poll_ready` (a caller that knows the service is
        // always ready): a fresh clone, as an unshared service would be.
        let mut service = self.ready.take().unwrap_or_else(|| S::clone(&self.shared));
        service.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        convert::Infallible,
        future::Ready,
        sync::atomic::{AtomicUsize, Ordering},
    };
    use tower::ServiceExt;

    static CLONES: AtomicUsize = AtomicUsize::new(0);

    /// Counts its clones; ready only after `pending` polls.
    struct Counted {
        pending: usize,
        readied: bool,
    }

    impl Clone for Counted {
        fn clone(&self) -> Self {
            CLONES.fetch_add(1, Ordering::Relaxed);
            Self {
                pending: self.pending,
                readied: false,
            }
        }
    }

    impl Service<u32> for Counted {
        type Response = (u32, bool);
        type Error = Infallible;
        type Future = Ready<Result<(u32, bool), Infallible>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            if self.pending > 0 {
                self.pending -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.readied = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: u32) -> Self::Future {
            std::future::ready(Ok((req, self.readied)))
        }
    }

    #[tokio::test]
    async fn clones_are_shared_and_each_call_clones_the_service_once() {
        CLONES.store(0, Ordering::Relaxed);
        let svc = SharedService::new(Counted {
            pending: 2,
            readied: false,
        });
        let copies: Vec<_> = (0..10).map(|_| svc.clone()).collect();
        assert_eq!(CLONES.load(Ordering::Relaxed), 0);
        for (i, copy) in copies.into_iter().enumerate() {
            // Readied through its pending polls on one clone, then called.
            let (n, readied) = copy.oneshot(i as u32).await.unwrap();
            assert_eq!((n, readied), (i as u32, true));
        }
        assert_eq!(CLONES.load(Ordering::Relaxed), 10);
        // Called without being readied: a fresh clone, not readied.
        let mut unready = svc.clone();
        assert_eq!(unready.call(7).await.unwrap(), (7, false));
        assert_eq!(CLONES.load(Ordering::Relaxed), 11);
    }
}
