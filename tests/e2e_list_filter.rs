//! End to end: list filtering cannot be escaped (issue 13, item 1), through
//! the example server (`examples/mcp_server/`) on loopback.
//!
//! - ids that rmcp rewrites (`1.0`, `1e0`, `10E-1` come back as `1`, `-0`
//!   as `0`) on `tools/list`, `resources/list` and
//!   `resources/templates/list`: the API key sees its 6 tools, its one
//!   resource, and not the bearer-only template `user://{user_id}/private`;
//!   every list result says `"cacheScope": "private"`;
//! - 240 concurrent same-id pairs (`tools/list` and `ping`) in one stateful
//!   session, with the session's GET stream open: rmcp routes replies by id,
//!   so list results leave on the ping's exchange and on the GET stream;
//!   none carries a tool the API key may not call.

mod support;
use support::mcp_server;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use secrecy::SecretString;
use serde_json::{json, Value};
use tower_mcp_auth::api_key::{ApiKey, ApiKeys};

const KEY: &str = "mcp_sk_e2e-list-filter-key-0123456789abcd";
const JWT_SECRET: &str = "e2e-list-filter-hs256-secret-0123456789abc";
const ACCEPT: &str = "application/json, text/event-stream";

/// The tools an API key may call (examples/mcp_server/main.rs `policy()`).
const KEY_TOOLS: [&str; 8] = [
    "build_report",
    "confirm_delete_user",
    "create_admin_user",
    "delete_user",
    "get_user_by_id",
    "list_all_users",
    "protected_operation",
    "rate_limited_operation",
];
/// Tools only a bearer token may call: none may reach the API key.
const BEARER_ONLY: [&str; 5] = [
    "get_user_data",
    "read_sensitive_data",
    "update_user_data",
    "get_my_profile",
    "update_my_profile",
];

struct App {
    addr: SocketAddr,
    public_url: String,
}

impl App {
    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

async fn start(stateless: bool) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("ci-admin", KEY));
    let mut config = mcp_server::Config::new(format!("http://{addr}/mcp"), keys);
    config.stateless = stateless;
    config.auth.jwt_secret = Some(SecretString::from(JWT_SECRET));
    config.auth.rate_limit_per_minute = 1_000_000;
    let app = mcp_server::app(&config).await.unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        addr,
        public_url: config.auth.public_url,
    }
}

fn names(result: &Value, field: &str, key: &str) -> Vec<String> {
    let mut names: Vec<String> = result[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {result}"))
        .iter()
        .map(|t| t[key].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn ids_rmcp_rewrites_do_not_escape_the_filter() {
    let app = start(true).await; // stateless: application/json replies
    let client = reqwest::Client::new();
    let reader = mcp_server::mint_token(
        &SecretString::from(JWT_SECRET),
        &app.public_url,
        "alice",
        &["read:data"],
    );
    for (spelling, echoed) in [("1.0", 1), ("1e0", 1), ("10E-1", 1), ("-0", 0)] {
        let call = |method: &str, bearer: Option<&str>| {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{spelling},"method":"{method}"}}"#);
            let req = client
                .post(app.url())
                .header("content-type", "application/json")
                .header("accept", ACCEPT)
                .body(body);
            let req = match bearer {
                Some(t) => req.bearer_auth(t),
                None => req.header("x-api-key", KEY),
            };
            async move {
                let res = req.send().await.unwrap();
                assert_eq!(res.status(), 200);
                let v: Value = res.json().await.unwrap();
                // rmcp answers with the id rewritten: what the old filter
                // missed.
                assert_eq!(v["id"], json!(echoed), "{spelling}: {v}");
                v["result"].clone()
            }
        };
        let tools = call("tools/list", None).await;
        assert_eq!(names(&tools, "tools", "name"), KEY_TOOLS, "id {spelling}");
        let resources = call("resources/list", None).await;
        assert_eq!(
            names(&resources, "resources", "uri"),
            ["admin://system/stats"],
            "id {spelling}"
        );
        let templates = call("resources/templates/list", None).await;
        assert!(
            names(&templates, "resourceTemplates", "uriTemplate").is_empty(),
            "id {spelling}: the bearer-only template shown to an API key: {templates}"
        );
        for result in [&tools, &resources, &templates] {
            assert_eq!(result["cacheScope"], "private", "{spelling}: {result}");
        }
        // The reader with read:data does see the template (the filter is
        // per caller, not a blanket removal).
        let templates = call("resources/templates/list", Some(&reader)).await;
        assert_eq!(
            names(&templates, "resourceTemplates", "uriTemplate"),
            ["user://{user_id}/private"],
            "id {spelling}"
        );
    }
}

/// Reads a streamed body for at most `wait`: what came (rmcp may never end
/// the stream of a request whose reply it routed elsewhere).
async fn read_for(mut res: reqwest::Response, wait: Duration, into: &Mutex<Vec<u8>>) {
    let _ = tokio::time::timeout(wait, async {
        while let Ok(Some(chunk)) = res.chunk().await {
            into.lock().unwrap().extend_from_slice(&chunk);
        }
    })
    .await;
}

/// A POST with the API key (in `session` when given).
async fn send(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("x-api-key", KEY)
        .body(body);
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    req.send().await
}

fn leaks(text: &str) -> Vec<&'static str> {
    BEARER_ONLY
        .iter()
        .copied()
        .filter(|t| text.contains(t))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_id_pairs_in_one_session_never_leak_on_any_stream() {
    let app = start(false).await; // sessions: SSE replies, routed by id
    let client = reqwest::Client::new();
    let url = app.url();
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1.0"}}}"#;
    let res = send(&client, &url, None, init.into()).await.unwrap();
    assert_eq!(res.status(), 200);
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = res.text().await;
    let res = send(
        &client,
        &url,
        Some(&session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 202);

    // The session's standalone GET stream, read in the background.
    let get = client
        .get(app.url())
        .header("accept", "text/event-stream")
        .header("x-api-key", KEY)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let on_get = Arc::new(Mutex::new(Vec::new()));
    let get_task = tokio::spawn({
        let on_get = on_get.clone();
        async move { read_for(get, Duration::from_secs(600), &on_get).await }
    });

    const PAIRS: u64 = 240;
    const WAVE: u64 = 40;
    let mut replies = Vec::new();
    for wave in 0..PAIRS / WAVE {
        let mut pairs = tokio::task::JoinSet::new();
        for i in 0..WAVE {
            let id = 1000 + wave * WAVE + i;
            let list = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
            let ping = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let (client, url, session) = (client.clone(), url.clone(), session.clone());
            pairs.spawn(async move {
                // Half the pairs send the list first, half the ping: rmcp
                // routes the first reply to the later exchange and the
                // second to the GET stream.
                let list_first = id.is_multiple_of(2);
                let (first, second) = if list_first {
                    (list, ping)
                } else {
                    (ping, list)
                };
                let (first, second) =
                    tokio::join!(send(&client, &url, Some(&session), first), async {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        send(&client, &url, Some(&session), second).await
                    });
                let (first, second) = (first.unwrap(), second.unwrap());
                let (a, b) = if list_first {
                    (first, second)
                } else {
                    (second, first)
                };
                assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
                let (list, ping) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
                let wait = Duration::from_secs(3);
                tokio::join!(read_for(a, wait, &list), read_for(b, wait, &ping));
                (id, list.into_inner().unwrap(), ping.into_inner().unwrap())
            });
        }
        replies.extend(pairs.join_all().await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    get_task.abort();

    let mut lists_on_ping = 0;
    for (id, list, ping) in &replies {
        let (list, ping) = (String::from_utf8_lossy(list), String::from_utf8_lossy(ping));
        assert!(
            leaks(&list).is_empty(),
            "id {id}, tools/list exchange: {list}"
        );
        assert!(leaks(&ping).is_empty(), "id {id}, ping exchange: {ping}");
        lists_on_ping += usize::from(ping.contains("create_admin_user"));
    }
    let on_get = String::from_utf8_lossy(&on_get.lock().unwrap()).into_owned();
    assert!(leaks(&on_get).is_empty(), "GET stream: {on_get}");
    let lists_on_get = on_get.matches("create_admin_user").count();
    eprintln!(
        "{PAIRS} same-id pairs: {lists_on_ping} list results on the ping's exchange, \
         {lists_on_get} on the GET stream, no tool the API key may not call in any"
    );
    assert!(
        lists_on_ping + lists_on_get > 0,
        "no reply was routed to another exchange: the race was not provoked"
    );
    // Every list result seen was the API key's six tools, marked private.
    for text in replies
        .iter()
        .flat_map(|(_, l, p)| [l, p])
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .chain([on_get])
    {
        for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if v["result"]["tools"].is_array() {
                assert_eq!(names(&v["result"], "tools", "name"), KEY_TOOLS, "{v}");
                assert_eq!(v["result"]["cacheScope"], "private", "{v}");
            }
        }
    }
}
