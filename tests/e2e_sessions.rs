//! End to end: a Streamable HTTP session belongs to the principal that
//! opened it (issue 13, item 2; the class of CVE-2026-52869). The example
//! server (`examples/mcp_server/`) on loopback, with rmcp's stateful
//! sessions: another principal presenting the owner's `Mcp-Session-Id`
//! gets exactly what rmcp answers for a session it does not know, on POST,
//! GET (with and without `Last-Event-ID`) and DELETE, and the owner's
//! session goes on working. Stateless mode is unchanged.

mod common;
mod support;
use common::Captured;
use support::mcp_server;

use std::{net::SocketAddr, sync::OnceLock};

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower_mcp_auth::api_key::{ApiKey, ApiKeys};

const KEY: &str = "mcp_sk_e2e-sessions-key-0123456789abcdef";
const KEY_NAME: &str = "ci-admin";
const JWT_SECRET: &str = "e2e-sessions-hs256-secret-0123456789abcdef";
const SESSION: &str = "mcp-session-id";

/// Everything written to the `tracing` subscriber of this test binary
/// (one global subscriber: its audit events are the layers' own).
fn audit_log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let capture = Captured::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_env_filter("tower_mcp_auth::audit=info")
            .init();
        capture
    })
}

/// The audit lines written so far that contain every one of `needles`.
fn audit_lines(needles: &[&str]) -> Vec<String> {
    let out = audit_log().text();
    out.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

struct App {
    addr: SocketAddr,
    public_url: String,
    client: reqwest::Client,
}

async fn start(stateless: bool) -> App {
    audit_log();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = ApiKeys::new().with(ApiKey::new(KEY_NAME, KEY));
    let mut config = mcp_server::Config::new(format!("http://{addr}/mcp"), keys);
    config.stateless = stateless;
    config.auth.jwt_secret = Some(SecretString::from(JWT_SECRET));
    let app = mcp_server::app(&config).await.unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        addr,
        public_url: config.auth.public_url,
        client: reqwest::Client::new(),
    }
}

/// Who calls.
#[derive(Clone, Debug)]
enum Who {
    Key,
    Bearer(String),
}

impl App {
    fn bearer(&self, subject: &str, scopes: &[&str]) -> Who {
        Who::Bearer(mcp_server::mint_token(
            &SecretString::from(JWT_SECRET),
            &self.public_url,
            subject,
            scopes,
        ))
    }

    fn request(
        &self,
        method: Method,
        who: &Who,
        session: Option<&str>,
        extra: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, format!("http://{}/mcp", self.addr));
        req = match who {
            Who::Key => req.header("x-api-key", KEY),
            Who::Bearer(token) => req.bearer_auth(token),
        };
        if let Some(id) = session {
            req = req.header(SESSION, id);
        }
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        req
    }

    async fn post(&self, who: &Who, session: Option<&str>, body: &Value) -> Reply {
        let req = self
            .request(Method::POST, who, session, &[])
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_string());
        Reply::read(req.send().await.unwrap()).await
    }

    /// GET (the standalone SSE stream, or a resumption): only the head and
    /// a body that ends (a refusal's) are read.
    async fn get(&self, who: &Who, session: &str, last_event_id: Option<&str>) -> Reply {
        let mut extra = vec![
            ("accept", "text/event-stream"),
            ("mcp-protocol-version", "2025-11-25"),
        ];
        if let Some(id) = last_event_id {
            extra.push(("last-event-id", id));
        }
        let res = self
            .request(Method::GET, who, Some(session), &extra)
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::OK {
            // A live stream: its head is the answer; do not wait for its end.
            return Reply {
                status: res.status(),
                content_type: content_type(&res),
                session: None,
                body: String::new(),
            };
        }
        Reply::read(res).await
    }

    async fn delete(&self, who: &Who, session: &str) -> Reply {
        let req = self
            .request(Method::DELETE, who, Some(session), &[])
            .header("mcp-protocol-version", "2025-11-25");
        Reply::read(req.send().await.unwrap()).await
    }

    /// `initialize` and `notifications/initialized` as `who`: the session
    /// id the client was given.
    async fn open(&self, who: &Who) -> String {
        let init = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "e2e-sessions", "version": "1.0"}
            }
        });
        let reply = self.post(who, None, &init).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.messages()[0]["result"]["serverInfo"].is_object(),
            "{}",
            reply.body
        );
        let id = reply
            .session
            .clone()
            .expect("initialize gives a session id");
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let reply = self.post(who, Some(&id), &initialized).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        id
    }
}

fn content_type(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The parts of a response a client sees.
#[derive(Debug, PartialEq)]
struct Reply {
    status: StatusCode,
    content_type: Option<String>,
    session: Option<String>,
    body: String,
}

impl Reply {
    async fn read(res: reqwest::Response) -> Self {
        let status = res.status();
        let content_type = content_type(&res);
        let session = res
            .headers()
            .get(SESSION)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = tokio::time::timeout(std::time::Duration::from_secs(10), res.text())
            .await
            .expect("the response ends")
            .unwrap();
        Self {
            status,
            content_type,
            session,
            body,
        }
    }

    /// The JSON-RPC messages of the body: one JSON document, or the `data:`
    /// lines of an SSE stream.
    fn messages(&self) -> Vec<Value> {
        if let Ok(v) = serde_json::from_str::<Value>(&self.body) {
            return vec![v];
        }
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    }

    /// What a refusal shows: status, content type and body.
    fn answer(&self) -> (StatusCode, Option<&str>, &str) {
        (self.status, self.content_type.as_deref(), &self.body)
    }
}

fn tools_list(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

fn call(id: u64, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {"param": "x"}}})
}

/// The tool names of a `tools/list` reply.
fn tool_names(reply: &Reply) -> Vec<String> {
    let messages = reply.messages();
    let result = messages
        .iter()
        .find(|m| m.get("result").is_some())
        .unwrap_or_else(|| panic!("no result: {}", reply.body));
    result["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// rmcp's own answers to a session it does not know, for `who`: a session
/// `who` opened and closed (its id is `who`'s, so only rmcp can refuse it).
async fn unknown_session_answers(app: &App, who: &Who) -> [Reply; 4] {
    let ended = app.open(who).await;
    let closed = app.delete(who, &ended).await;
    assert_eq!(closed.status, 202, "{}", closed.body);
    [
        app.post(who, Some(&ended), &tools_list(7)).await,
        app.get(who, &ended, None).await,
        app.get(who, &ended, Some("0")).await,
        app.delete(who, &ended).await,
    ]
}

#[tokio::test]
async fn another_principal_cannot_use_attach_to_or_end_a_session() {
    let app = start(false).await;
    let owner = Who::Key;
    let session = app.open(&owner).await;

    // The owner's session works.
    let reply = app.post(&owner, Some(&session), &tools_list(2)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(tool_names(&reply).contains(&"list_all_users".to_owned()));

    // Another principal (a bearer token that may list tools and call
    // protected_operation), and one with the owner's subject under another
    // scheme: each gets exactly what rmcp answers for a session it does
    // not know.
    for intruder in [
        app.bearer("mallory", &["read:data"]),
        app.bearer(KEY_NAME, &["read:data", "write:data"]),
    ] {
        let unknown = unknown_session_answers(&app, &intruder).await;
        assert_eq!(
            unknown[0].answer(),
            (StatusCode::NOT_FOUND, None, "Not Found: Session not found")
        );
        assert_eq!(unknown[3].answer(), (StatusCode::ACCEPTED, None, ""));

        let foreign = [
            app.post(&intruder, Some(&session), &tools_list(3)).await,
            app.get(&intruder, &session, None).await,
            app.get(&intruder, &session, Some("0")).await,
            app.delete(&intruder, &session).await,
        ];
        for (what, (foreign, unknown)) in ["POST", "GET", "GET Last-Event-ID", "DELETE"]
            .iter()
            .zip(foreign.iter().zip(unknown.iter()))
        {
            assert_eq!(foreign.answer(), unknown.answer(), "{what} as {intruder:?}");
        }
        let post = app
            .post(&intruder, Some(&session), &call(4, "protected_operation"))
            .await;
        assert_eq!(post.answer(), unknown[0].answer());

        // The owner's session survived the foreign DELETE and still works.
        let reply = app.post(&owner, Some(&session), &tools_list(5)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(tool_names(&reply).contains(&"list_all_users".to_owned()));
        let stream = app.get(&owner, &session, None).await;
        assert_eq!(stream.status, 200);
        assert_eq!(stream.content_type.as_deref(), Some("text/event-stream"));
    }

    // Each foreign request was one audit event naming the intruder, never
    // the session id.
    let refused = audit_lines(&[
        "layer=\"session_binding\"",
        "outcome=\"refused\"",
        "reason=\"unknown_session\"",
        "subject=\"mallory\"",
        "scheme=\"jwt\"",
    ]);
    assert_eq!(refused.len(), 5, "{refused:#?}");
    let (bare, _) = session.rsplit_once('.').expect("the id carries its tag");
    assert!(audit_lines(&[bare]).is_empty());
    assert_eq!(
        audit_lines(&["layer=\"session_binding\"", "subject=\"ci-admin\""]).len(),
        5
    );

    // An id with its tag stripped is not the owner's session either.
    let stripped = app.post(&owner, Some(bare), &tools_list(6)).await;
    assert_eq!(stripped.status, 404, "{}", stripped.body);

    // The owner ends its own session; then it is gone for the owner too.
    let ended = app.delete(&owner, &session).await;
    assert_eq!(ended.status, 202);
    let gone = app.post(&owner, Some(&session), &tools_list(8)).await;
    assert_eq!(gone.status, 404, "{}", gone.body);
}

#[tokio::test]
async fn two_principals_keep_their_own_sessions() {
    let app = start(false).await;
    let alice = app.bearer("alice", &["read:data"]);
    let bob = app.bearer("bob", &["read:data"]);
    let a = app.open(&alice).await;
    let b = app.open(&bob).await;
    assert_ne!(a, b);
    for (who, own, other) in [(&alice, &a, &b), (&bob, &b, &a)] {
        let reply = app
            .post(who, Some(own), &call(2, "protected_operation"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let text = reply.messages()[0]["result"]["content"][0]["text"].clone();
        assert!(text.is_string(), "{}", reply.body);
        let reply = app
            .post(who, Some(other), &call(3, "protected_operation"))
            .await;
        assert_eq!(reply.status, 404, "{}", reply.body);
    }
    // The same subject with a fresh token (other scopes) is the same owner.
    let alice_again = app.bearer("alice", &["read:data", "write:data"]);
    let reply = app.post(&alice_again, Some(&a), &tools_list(4)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn stateless_mode_is_unaffected() {
    let app = start(true).await;
    for who in [Who::Key, app.bearer("alice", &["read:data"])] {
        let reply = app.post(&who, None, &tools_list(1)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
        assert_eq!(reply.session, None);
        assert!(tool_names(&reply).contains(&"protected_operation".to_owned()));
        let reply = app.post(&who, None, &call(2, "protected_operation")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.messages()[0]["result"].is_object(), "{}", reply.body);
        assert_eq!(reply.session, None);
    }
}
