//! End to end, through the example server (`examples/mcp_server/`) on
//! loopback: identities that used to collide (issue 23, item 6e).
//!
//! * a client-credentials token for the client `user_001` (no `sub`) and a
//!   user token whose `sub` is `user_001` have different quotas and
//!   different sessions (a session opened by one is unknown to the other);
//! * one `sub` at two issuers has two quotas.

mod support;
use support::mcp_server;

mod common;

use std::net::SocketAddr;

use secrecy::SecretString;
use serde_json::{json, Value};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeys},
    jwt::{Hs256Signer, Hs256TokenBuilder},
};

const KEY: &str = "mcp_sk_e2e-identity-key-0123456789abcdef";
const JWT_SECRET: &str = "e2e-identity-hs256-secret-0123456789abcdef";
const SESSION: &str = "mcp-session-id";
const QUOTA: u32 = 3;

struct App {
    addr: SocketAddr,
    public_url: String,
    signer: Hs256Signer,
}

/// The example with `JWT_SECRET` (whose tokens need no `iss`, so any issuer
/// signs with it here) and a quota of `quota` calls a minute.
async fn start(stateless: bool, quota: u32) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("ops", KEY));
    let mut config = mcp_server::Config::new(format!("http://{addr}/mcp"), keys);
    config.stateless = stateless;
    let secret = SecretString::from(JWT_SECRET);
    let signer = Hs256Signer::new(&secret).unwrap();
    config.auth.jwt_secret = Some(secret);
    config.auth.rate_limit_per_minute = quota;
    let app = mcp_server::app(&config).await.unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        addr,
        public_url: config.auth.public_url,
        signer,
    }
}

impl App {
    /// A token for this server, signed with its secret.
    fn token(&self) -> Hs256TokenBuilder<'_> {
        self.signer.token(&self.public_url)
    }

    /// The user `user_001` (its `sub`), signed in through the client `app`.
    fn user(&self) -> String {
        self.token()
            .subject("user_001")
            .client_id("app")
            .sign()
            .unwrap()
    }

    /// The client `user_001` acting for itself (client credentials: no `sub`).
    fn client(&self) -> String {
        self.token().client_id("user_001").sign().unwrap()
    }

    async fn post(
        &self,
        token: &str,
        session: Option<&str>,
        body: &Value,
    ) -> (u16, Option<String>, String) {
        let mut req = reqwest::Client::new()
            .post(format!("http://{}/mcp", self.addr))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(id) = session {
            req = req.header(SESSION, id);
        }
        let res = req.body(body.to_string()).send().await.unwrap();
        let session = res
            .headers()
            .get(SESSION)
            .map(|v| v.to_str().unwrap().to_owned());
        (res.status().as_u16(), session, res.text().await.unwrap())
    }

    async fn call(&self, token: &str) -> u16 {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "protected_operation", "arguments": {"param": "p"}}});
        self.post(token, None, &call).await.0
    }

    /// Spends `token`'s whole quota, then checks it is spent.
    async fn exhaust(&self, token: &str) {
        for _ in 0..QUOTA {
            assert_eq!(self.call(token).await, 200);
        }
        assert_eq!(self.call(token).await, 429, "the quota is spent");
    }

    /// `initialize` and `notifications/initialized`: the session id.
    async fn open(&self, token: &str) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "e2e-identity", "version": "1"}}});
        let (status, session, body) = self.post(token, None, &init).await;
        assert_eq!(status, 200, "{body}");
        let id = session.expect("initialize gives a session id");
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(self.post(token, Some(&id), &initialized).await.0, 202);
        id
    }

    async fn list_in(&self, token: &str, session: &str) -> u16 {
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        self.post(token, Some(session), &list).await.0
    }
}

#[tokio::test]
async fn a_client_named_like_a_user_has_its_own_quota() {
    let app = start(true, QUOTA).await;
    app.exhaust(&app.user()).await;
    assert_eq!(app.call(&app.client()).await, 200, "not the user's bucket");
    // And the other way round: a fresh pair, the client first.
    let app = start(true, QUOTA).await;
    app.exhaust(&app.client()).await;
    assert_eq!(app.call(&app.user()).await, 200, "not the client's bucket");
}

#[tokio::test]
async fn one_subject_at_two_issuers_has_two_quotas() {
    let app = start(true, QUOTA).await;
    let at = |iss: &str| app.token().subject("user_001").issuer(iss).sign().unwrap();
    app.exhaust(&at("https://a.example.com")).await;
    assert_eq!(app.call(&at("https://b.example.com")).await, 200);
    assert_eq!(app.call(&at("https://a.example.com")).await, 429);
}

#[tokio::test]
async fn a_client_named_like_a_user_cannot_use_the_users_session() {
    let app = start(false, 100).await;
    let (user, client) = (app.user(), app.client());
    let users = app.open(&user).await;
    let clients = app.open(&client).await;
    assert_eq!(
        app.list_in(&client, &users).await,
        404,
        "the user's session"
    );
    assert_eq!(
        app.list_in(&user, &clients).await,
        404,
        "the client's session"
    );
    // Each owner's session goes on working.
    assert_eq!(app.list_in(&user, &users).await, 200);
    assert_eq!(app.list_in(&client, &clients).await, 200);
}
