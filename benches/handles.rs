//! `HandleBindingLayer` per request against the unsealed path, in one run:
//! a 1 KiB `tools/call` with a [`Principal`] on it, to a service that reads
//! the whole body and answers with a 64-byte `requestState`.
//!
//! | variant | what |
//! | --- | --- |
//! | `bare_input_required` | the route alone answers `input_required` |
//! | `sealed_input_required` | the same behind the layer: the state sealed |
//! | `bare_retry` | the retry carrying the plain state, to the route alone |
//! | `opened_retry` | the retry carrying the sealed state: opened, spliced |
//! | `bare_no_state` / `binding_no_state` | a call with no handle at all |
//!
//! `cargo bench --bench handles -- --warm-up-time 1 --measurement-time 3`

use std::{convert::Infallible, hint::black_box};

use axum::body::Body;
use criterion::Criterion;
use http::Request;
use http_body_util::BodyExt;
use tower::{util::BoxCloneSyncService, ServiceBuilder, ServiceExt};
use tower_mcp_auth::{mcp::handles::HandleBindingLayer, AuthScheme, Principal};

const STATE: &str = "c3RhdGUtb2YtdGhlLXNlcnZlci0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFi";

fn call_body(state: Option<&str>) -> bytes::Bytes {
    let pad = "x".repeat(900);
    let state = state.map_or(String::new(), |s| format!(r#","requestState":"{s}""#));
    format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"confirm_delete_user","arguments":{{"user_id":"user_002","reason":"{pad}"}}{state}}}}}"#
    )
    .into()
}

async fn route(req: Request<Body>) -> Result<http::Response<Body>, Infallible> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let find = |needle: &[u8]| memchr::memmem::find(&body, needle).is_some();
    let reply = if find(b"requestState") || !find(b"confirm_delete_user") {
        r#"{"jsonrpc":"2.0","id":42,"result":{"resultType":"complete","content":[]}}"#.to_owned()
    } else {
        format!(
            r#"{{"jsonrpc":"2.0","id":42,"result":{{"resultType":"input_required","requestState":"{STATE}"}}}}"#
        )
    };
    let mut res = http::Response::new(Body::from(reply));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    Ok(res)
}

type Svc = BoxCloneSyncService<Request<Body>, http::Response<Body>, Infallible>;

fn request(body: &bytes::Bytes, who: &Principal) -> Request<Body> {
    let mut req = Request::post("/mcp")
        .body(Body::from(body.clone()))
        .unwrap();
    req.extensions_mut().insert(who.clone());
    req
}

async fn run(svc: &Svc, body: &bytes::Bytes, who: &Principal) -> bytes::Bytes {
    let res = svc.clone().oneshot(request(body, who)).await.unwrap();
    res.into_body().collect().await.unwrap().to_bytes()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let who = Principal::new(AuthScheme::ApiKey, "svc");
    let bare: Svc = BoxCloneSyncService::new(tower::service_fn(route));
    let bound: Svc = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(HandleBindingLayer::with_key([3u8; 32]).unwrap())
            .service_fn(route),
    );
    let first = call_body(None);
    let plain_retry = call_body(Some(STATE));
    let sealed = rt.block_on(run(&bound, &first, &who));
    let sealed: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    let sealed_retry = call_body(Some(sealed["result"]["requestState"].as_str().unwrap()));
    let reply = rt.block_on(run(&bound, &sealed_retry, &who));
    assert!(
        String::from_utf8_lossy(&reply).contains("complete"),
        "{reply:?}"
    );
    let no_state = bytes::Bytes::from(
        String::from_utf8(first.to_vec())
            .unwrap()
            .replace("confirm_delete_user", "protected_op"),
    );

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("handle_binding_1KiB_tools_call");
    for (name, svc, body) in [
        ("bare_input_required", &bare, &first),
        ("sealed_input_required", &bound, &first),
        ("bare_retry", &bare, &plain_retry),
        ("opened_retry", &bound, &sealed_retry),
        ("bare_no_state", &bare, &no_state),
        ("binding_no_state", &bound, &no_state),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(rt.block_on(run(svc, body, &who))));
        });
    }
    g.finish();
    c.final_summary();
}
