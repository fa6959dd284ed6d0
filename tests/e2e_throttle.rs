//! End to end through the example server (`examples/mcp_server/`): the
//! failed-login throttle can neither be turned against honest clients nor
//! outrun (issue 23, items 1 and 4).
//!
//! * A failed-login table filled from more addresses than it holds never
//!   refuses a valid key from a new address (item 1): in process, on the
//!   example's whole application, with the client address in `ConnectInfo`
//!   (100,000 loopback connections would only make it slow).
//! * 200 concurrent wrong keys from one address, each with a body that
//!   never comes, over loopback: at most the limit (10) are answered 401,
//!   the rest 429 (item 4).

mod support;
use support::mcp_server;

use std::net::{Ipv4Addr, SocketAddr};

use axum::{body::Body, extract::ConnectInfo, http::Request, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;
use tower_mcp_auth::api_key::{ApiKey, ApiKeys};

const KEY: &str = "mcp_sk_e2e-throttle-key-0123456789abcdef";
const WRONG: &str = "mcp_sk_e2e-throttle-wrong-0123456789abc";
const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"protected_operation","arguments":{"param":"x"}}}"#;
/// The example's failed-login table: `FailedAuthLayer::new()`.
const MAX_KEYS: u32 = 100_000;
const THRESHOLD: usize = 10;

fn config(public_url: String) -> mcp_server::Config {
    let mut config =
        mcp_server::Config::new(public_url, ApiKeys::new().with(ApiKey::new("e2e", KEY)));
    config.stateless = true;
    config
}

fn call(key: &str, client: SocketAddr) -> Request<Body> {
    let mut req = Request::post("/mcp")
        .header("host", "127.0.0.1:3000")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-api-key", key)
        .body(Body::from(CALL))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(client));
    req
}

/// Item 1: one wrong key from each of 100,010 addresses (more than the
/// table holds, the last ten from addresses it did not track: on the old
/// code they got the shared overflow entry blocked), then a valid key
/// from a new address is answered 200, and so are fifty more; a guesser
/// is still blocked after its ten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_failed_login_table_never_refuses_a_valid_key() {
    let app: Router = mcp_server::app(&config("http://127.0.0.1:3000/mcp".into()))
        .await
        .unwrap();
    let client = |i: u32| SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i), 40_000));
    // Bodiless (the refusal has no id to read): the cheapest wrong key.
    let guess = |client: SocketAddr| {
        let mut req = Request::get("/mcp")
            .header("host", "127.0.0.1:3000")
            .header("x-api-key", WRONG)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(client));
        req
    };
    for i in 0..MAX_KEYS + 10 {
        let res = app.clone().oneshot(guess(client(i))).await.unwrap();
        assert_eq!(res.status(), 401, "wrong key {i}");
    }
    for i in 0..50 {
        let fresh = SocketAddr::from((Ipv4Addr::new(192, 0, 2, i), 40_000));
        let res = app.clone().oneshot(call(KEY, fresh)).await.unwrap();
        assert_eq!(res.status(), 200, "a valid key from {fresh}");
    }
    let guesser = SocketAddr::from(([198, 51, 100, 7], 40_000));
    for _ in 0..THRESHOLD {
        let res = app.clone().oneshot(call(WRONG, guesser)).await.unwrap();
        assert_eq!(res.status(), 401);
    }
    let res = app.clone().oneshot(call(KEY, guesser)).await.unwrap();
    assert_eq!(res.status(), 429, "the throttle still works");
}

/// Item 4: 200 connections from 127.0.23.1 at once, each a JSON-RPC POST
/// with its own wrong key whose body never comes (the refusal waits a
/// second for it, for the id). The old layer counted a failure when the
/// response was finished, after that wait, and answered 199 of them 401;
/// now each failure counts when the key is refused, and requests in
/// flight hold one of the address's ten slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stalled_wrong_keys_get_at_most_the_limit_of_401s() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = mcp_server::app(&config(format!("http://{addr}/mcp")))
        .await
        .unwrap()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            tokio::spawn(async move {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(SocketAddr::from(([127, 0, 23, 1], 0))).unwrap();
                let mut stream = socket.connect(addr).await.unwrap();
                let head = format!(
                    "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                     accept: application/json, text/event-stream\r\n\
                     x-api-key: mcp_sk_guess-{i:032}\r\ncontent-length: 200\r\n\r\n{{\"jsonrpc\""
                );
                stream.write_all(head.as_bytes()).await.unwrap();
                // The rest of the body never comes; the connection stays
                // open until the answer's status line is read.
                let mut answer = Vec::new();
                let mut buf = [0u8; 1024];
                while !answer.windows(2).any(|w| w == b"\r\n") {
                    let n = stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "connection closed without an answer");
                    answer.extend_from_slice(&buf[..n]);
                }
                let line = String::from_utf8_lossy(&answer).into_owned();
                line.split(' ').nth(1).unwrap().parse::<u16>().unwrap()
            })
        })
        .collect();
    let mut counts = std::collections::BTreeMap::<u16, usize>::new();
    for task in tasks {
        *counts.entry(task.await.unwrap()).or_default() += 1;
    }
    let refused = counts.get(&401).copied().unwrap_or(0);
    let throttled = counts.get(&429).copied().unwrap_or(0);
    assert!(
        (1..=THRESHOLD).contains(&refused),
        "at most {THRESHOLD} wrong keys checked: {counts:?}"
    );
    assert_eq!(refused + throttled, 200, "{counts:?}");
}
