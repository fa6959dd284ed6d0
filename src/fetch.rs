//! The one bounded HTTP exchange, for everything this crate fetches from an
//! authorization server: JWKS, metadata (discovery), introspection and
//! token exchange.
//!
//! * **Time**: one deadline over the whole exchange, from connecting to the
//!   last byte of the body, whatever client is used (so a server that
//!   trickles its answer cannot hold a request past it).
//! * **Size**: a `Content-Length` above the cap is refused before reading;
//!   a body is read chunk by chunk and refused as soon as it passes the cap
//!   (so a lying or absent length cannot make us buffer more).
//! * **Redirects**: the default client follows none: a JWKS, a metadata
//!   document or an introspection answer comes from the configured (or
//!   discovered) URL itself, and client credentials never travel elsewhere.
//!   A 3xx is a status like any other for the caller to judge.
//! * **Errors** never carry a request body, a header or a response body;
//!   the URL is left out of transport errors (the caller knows it).

use std::time::Duration;

use crate::config::ConfigError;

/// A `reqwest` client (shared by clones) with the limits of every exchange.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    max_bytes: usize,
    timeout: Duration,
}

/// Why an exchange failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    /// The request could not be built (a URL the client refuses).
    #[error("the request could not be built: {0}")]
    Build(String),
    /// Connecting, TLS, sending or reading failed.
    #[error("the server could not be reached: {0}")]
    Transport(String),
    /// No complete answer within the deadline.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// The answer is larger than the cap.
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
}

impl HttpClient {
    /// `client` with a size cap and a deadline per exchange.
    pub(crate) fn new(client: reqwest::Client, max_bytes: usize, timeout: Duration) -> Self {
        Self {
            client,
            max_bytes,
            timeout,
        }
    }

    /// The default client (no redirects, rustls) with these limits.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the TLS backend cannot be set up.
    pub(crate) fn with_limits(max_bytes: usize, timeout: Duration) -> Result<Self, ConfigError> {
        Ok(Self::new(default_client()?, max_bytes, timeout))
    }

    /// Sends `request` and reads the whole answer, within the deadline and
    /// the cap. Any status is an answer: judging it is the caller's job.
    pub(crate) async fn execute(
        &self,
        request: reqwest::Request,
    ) -> Result<http::Response<Vec<u8>>, FetchError> {
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .unwrap_or(Err(FetchError::Timeout(self.timeout)))
    }

    /// `GET url` with `Accept: application/json`.
    pub(crate) async fn get_json(&self, url: &str) -> Result<http::Response<Vec<u8>>, FetchError> {
        let request = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .build()
            .map_err(|e| FetchError::Build(e.without_url().to_string()))?;
        self.execute(request).await
    }

    /// `POST url` of an `application/x-www-form-urlencoded` `form`, with
    /// `Accept: application/json` and, when given, an `Authorization`
    /// value (marked sensitive).
    #[cfg(feature = "token-exchange")]
    pub(crate) async fn post_form(
        &self,
        url: &str,
        authorization: Option<http::HeaderValue>,
        form: String,
    ) -> Result<http::Response<Vec<u8>>, FetchError> {
        let mut request = self
            .client
            .post(url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        if let Some(mut value) = authorization {
            value.set_sensitive(true);
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let request = request
            .build()
            .map_err(|e| FetchError::Build(e.without_url().to_string()))?;
        self.execute(request).await
    }

    async fn exchange(
        &self,
        request: reqwest::Request,
    ) -> Result<http::Response<Vec<u8>>, FetchError> {
        let mut response = self.client.execute(request).await.map_err(transport)?;
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let mut out = http::Response::builder()
            .status(response.status())
            .body(Vec::new())
            .map_err(|e| FetchError::Build(e.to_string()))?;
        *out.headers_mut() = std::mem::take(response.headers_mut());
        let body = out.body_mut();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// A transport error without the URL (the caller knows it; audit lines
/// stay short), with its cause (connection refused, TLS, …), which
/// reqwest's own message ("error sending request") leaves out.
fn transport(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Transport("timed out".into());
    }
    let e = e.without_url();
    match std::error::Error::source(&e) {
        Some(cause) => FetchError::Transport(format!("{e}: {cause}")),
        None => FetchError::Transport(e.to_string()),
    }
}

/// A `reqwest` client that follows no redirects (so client credentials never
/// travel anywhere but the configured endpoint, and a document comes from
/// the URL it is checked against).
///
/// # Errors
///
/// [`ConfigError::Invalid`] when the client cannot be built (TLS backend).
pub(crate) fn default_client() -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ConfigError::Invalid(format!("cannot build the HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, response::Response, routing::get, Router};
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        origin
    }

    /// `chunks` chunks of 1 KiB, without a length, one every `every`.
    struct Trickle {
        chunks: usize,
        every: Duration,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    impl http_body::Body for Trickle {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
            if self.chunks == 0 {
                return Poll::Ready(None);
            }
            let every = self.every;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            if std::future::Future::poll(sleep.as_mut(), cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
            self.chunks -= 1;
            Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from(
                vec![b' '; 1024],
            )))))
        }
    }

    fn trickle(chunks: usize, every: Duration) -> Response {
        Response::new(Body::new(Trickle {
            chunks,
            every,
            sleep: None,
        }))
    }

    async fn origin() -> String {
        serve(
            Router::new()
                .route("/small", get(|| async { "[1, 2, 3]" }))
                .route("/big", get(|| async { vec![b' '; 8 * 1024] }))
                .route(
                    "/unsized",
                    get(|| async { trickle(8, Duration::from_millis(1)) }),
                )
                .route(
                    "/slow",
                    get(|| async { trickle(50, Duration::from_millis(100)) }),
                )
                .route(
                    "/moved",
                    get(|| async {
                        Response::builder()
                            .status(302)
                            .header("location", "/small")
                            .body(Body::empty())
                            .unwrap()
                    }),
                ),
        )
        .await
    }

    #[tokio::test]
    async fn the_cap_holds_with_and_without_a_length() {
        let o = origin().await;
        let http = HttpClient::with_limits(4096, Duration::from_secs(5)).unwrap();
        let r = http.get_json(&format!("{o}/small")).await.unwrap();
        assert_eq!(
            (r.status().as_u16(), r.body().as_slice()),
            (200, &b"[1, 2, 3]"[..])
        );
        for path in ["/big", "/unsized"] {
            let e = http.get_json(&format!("{o}{path}")).await.unwrap_err();
            assert_eq!(e, FetchError::TooLarge(4096), "{path}");
        }
    }

    #[tokio::test]
    async fn the_deadline_covers_the_whole_body() {
        let o = origin().await;
        // The headers come at once, the body trickles for 5 s.
        let http = HttpClient::with_limits(1 << 20, Duration::from_millis(300)).unwrap();
        let started = std::time::Instant::now();
        let e = http.get_json(&format!("{o}/slow")).await.unwrap_err();
        assert_eq!(e, FetchError::Timeout(Duration::from_millis(300)));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn redirects_are_not_followed_and_down_is_a_transport_error() {
        let o = origin().await;
        let http = HttpClient::with_limits(4096, Duration::from_secs(5)).unwrap();
        let r = http.get_json(&format!("{o}/moved")).await.unwrap();
        assert_eq!(r.status(), 302);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = http
            .get_json(&format!("http://{addr}/jwks.json"))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Transport(_)), "{e:?}");
        assert!(!e.to_string().contains("jwks.json"), "no URL: {e}");
    }
}
