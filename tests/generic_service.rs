//! The layers that do not read the body are generic over the request and
//! response body types: here they wrap a plain `tower::service_fn` whose
//! bodies are `http_body_util::Full<Bytes>`, not axum's `Body`, and whose
//! error type is not `Infallible`.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    AuthorizeLayer, Principal, ProtectedResource, Rule,
};

const WRITER: &str = "mcp_sk_writer-0123456789abcdef";
const READER: &str = "mcp_sk_reader-0123456789abcdef";

fn keys() -> ApiKeys {
    ApiKeys::new()
        .with(ApiKey::new("writer", WRITER).scopes(["read:data", "write:data"]))
        .with(ApiKey::new("reader", READER).scopes(["read:data"]))
}

fn resource() -> ProtectedResource {
    ProtectedResource::builder("https://api.example.com/data")
        .build()
        .unwrap()
}

/// A non-axum service: echoes who called and the request body, and counts
/// its calls. Its error type is `std::io::Error`.
fn echo(
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<Full<Bytes>>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let who = Principal::from_extensions(req.extensions())
                .map_or("anonymous".to_owned(), |p| {
                    format!("{}:{}", p.name(), p.scopes())
                });
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let text = format!("{who}|{}", String::from_utf8_lossy(&body));
            Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from(text))))
        }
    })
}

fn request(key: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/data");
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    builder
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap()
}

async fn parts(response: axum::response::Response) -> (StatusCode, http::HeaderMap, String) {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn api_key_layer_around_a_plain_service_fn() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(resource().layer())
        .layer(ApiKeyLayer::new(keys()))
        .service(echo(calls.clone()));

    // Accepted: the principal reaches the service, the body is untouched.
    let response: Result<_, std::io::Error> = svc.clone().oneshot(request(Some(READER))).await;
    let (status, _, body) = parts(response.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "reader:read:data|payload");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // No key: 401 with the challenge; the service is not called. A
    // required key layer takes API keys only: its challenge offers no
    // OAuth (issue 25 item 4).
    let (status, headers, body) = parts(svc.clone().oneshot(request(None)).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "ApiKey");
    assert_eq!(
        body,
        r#"{"error":"missing_credential","error_description":"authentication is required"}"#
    );

    // Wrong key: 401 invalid_token, never echoed.
    let wrong = "mcp_sk_wrong-0123456789abcdef";
    let (status, headers, body) =
        parts(svc.clone().oneshot(request(Some(wrong))).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        r#"ApiKey error="invalid_token", error_description="the API key is not valid""#
    );
    assert!(!body.contains(wrong));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "refusals never reach the service"
    );

    // Optional: no key passes on anonymously.
    let optional = ServiceBuilder::new()
        .layer(resource().layer())
        .layer(ApiKeyLayer::new(keys()).optional())
        .service(echo(calls.clone()));
    let (status, _, body) = parts(optional.oneshot(request(None)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "anonymous|payload");
}

#[tokio::test]
async fn authorize_layer_around_a_plain_service_fn() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = ServiceBuilder::new()
        .layer(resource().layer())
        .layer(ApiKeyLayer::new(keys()))
        .layer(AuthorizeLayer::new(Rule::authenticated().scopes(["write:data"])).unwrap())
        .service(echo(calls.clone()));

    let (status, _, body) = parts(svc.clone().oneshot(request(Some(WRITER))).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "writer:read:data write:data|payload");

    let (status, headers, body) =
        parts(svc.clone().oneshot(request(Some(READER))).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope", error_description="the access token lacks a scope this call requires", scope="read:data write:data", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/data""#
    );
    assert_eq!(
        body,
        r#"{"error":"insufficient_scope","error_description":"the access token lacks a scope this call requires","scope":"read:data write:data"}"#
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Any-of, alone (no authentication layer): no principal is a 401.
    let any = ServiceBuilder::new()
        .layer(
            AuthorizeLayer::new(Rule::authenticated().any_scope(["admin", "write:data"])).unwrap(),
        )
        .service(echo(calls.clone()));
    let (status, headers, _) = parts(any.clone().oneshot(request(None)).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        r#"Bearer scope="admin write:data""#
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
