//! End to end: DPoP (RFC 9449, MCP SEP-1932) through the example MCP
//! server (`examples/mcp_server/`) on loopback. Access tokens come from an
//! authorization server's JWKS on loopback (RS256, `cnf.jkt` naming the
//! client's ES256 key) or from an introspection endpoint on loopback; the
//! client signs a fresh proof for each request.
//!
//! The server's public URL is `http://localhost:<port>/mcp` while the
//! tests connect to `127.0.0.1:<port>`: a proof for the socket's URL is
//! refused, one for the public URL accepted.
//!
//! Every refusal is checked for its status, the error code in its
//! `WWW-Authenticate` challenge and its body, and that no tool ran (the
//! server's call counter, read with the API key, did not move).

mod support;
use support::mcp_server;

mod common;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicU64, AtomicU8, Ordering},
};

use axum::{routing, Form, Json, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::{now, JwksServer, Signer};
use jsonwebtoken::{
    jwk::{Jwk, ThumbprintHash},
    Algorithm, EncodingKey,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeys},
    introspection::Introspector,
};

const KEY: &str = "mcp_sk_e2e-dpop-key-0123456789abcdef01";
const ACCEPT: &str = "application/json, text/event-stream";

// ───────────────────────────── the client's keys ─────────────────────────────

/// A client's DPoP key: its private key, public JWK and thumbprint.
struct DpopKey {
    enc: EncodingKey,
    jwk: Value,
    jkt: String,
}

impl DpopKey {
    fn es256(file: &str) -> Self {
        tower_mcp_auth::jwt::install_crypto_provider();
        let enc = EncodingKey::from_ec_pem(&common::fixture(file)).unwrap();
        let jwk = Jwk::from_encoding_key(&enc, Algorithm::ES256).unwrap();
        let jkt = jwk.thumbprint(ThumbprintHash::SHA256).unwrap();
        Self {
            enc,
            jwk: serde_json::to_value(jwk).unwrap(),
            jkt,
        }
    }

    fn a() -> Self {
        Self::es256("ec256_private.pem")
    }

    fn b() -> Self {
        Self::es256("ec256_b_private.pem")
    }

    /// The claims of a good proof for a POST to `htu` with `token`.
    fn claims(htu: &str, token: &str) -> Value {
        static JTI: AtomicU64 = AtomicU64::new(0);
        json!({
            "jti": format!("e2e-{}-{}", now(), JTI.fetch_add(1, Ordering::Relaxed)),
            "htm": "POST",
            "htu": htu,
            "iat": now(),
            "ath": ath(token),
        })
    }

    /// The header of a good proof.
    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
    }

    /// Signs `header` and `claims` as they are.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &self.enc, Algorithm::ES256).unwrap();
        format!("{msg}.{sig}")
    }

    /// A good proof for a POST to `htu` with `token`.
    fn proof(&self, htu: &str, token: &str) -> String {
        self.sign(&self.header(), &Self::claims(htu, token))
    }
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

// ───────────────────────────── the server ─────────────────────────────

struct App {
    addr: SocketAddr,
    /// The resource identifier: `http://localhost:<port>/mcp`.
    public_url: String,
    /// The authorization server: its JWKS and signing key.
    jwks: JwksServer,
    issuer_key: Signer,
    /// How many times [`tool_calls`](Self::tool_calls) read the counter
    /// (each read counts as a call).
    reads: AtomicU64,
}

impl App {
    /// The socket's URL, which is not the public one.
    fn socket_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// An RS256 access token from the authorization server, bound to
    /// `jkt` when given.
    fn token(&self, jkt: Option<&str>, scope: &str) -> String {
        self.token_for("dpop-user", jkt, scope)
    }

    /// [`token`](Self::token) for the subject `sub`.
    fn token_for(&self, sub: &str, jkt: Option<&str>, scope: &str) -> String {
        let mut claims = json!({
            "sub": sub, "iss": self.jwks.base, "aud": self.public_url,
            "iat": now(), "exp": now() + 600, "scope": scope, "client_id": "dpop-client",
        });
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({"jkt": jkt});
        }
        self.issuer_key.sign(&claims)
    }

    /// How many tool calls the server has run, read with the API key (the
    /// reads themselves not counted).
    async fn tool_calls(&self) -> u64 {
        let reads = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let body = json!({"jsonrpc": "2.0", "id": 99, "method": "resources/read",
                          "params": {"uri": "admin://system/stats"}});
        let res = reqwest::Client::new()
            .post(self.socket_url())
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .header("x-api-key", KEY)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let reply: Value = res.json().await.unwrap();
        let text = reply["result"]["contents"][0]["text"].as_str().unwrap();
        let stats: Value = serde_json::from_str(text).unwrap();
        stats["calls_since_start"].as_u64().unwrap() - reads
    }

    async fn metadata(&self) -> Value {
        reqwest::get(format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            self.addr
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    }
}

/// The example, stateless, with an API key, the authorization server's
/// tokens (`OAUTH_ISSUER`, `OAUTH_JWKS_URL`) and whatever `setup` adds.
async fn start(setup: impl FnOnce(&mut mcp_server::Config)) -> App {
    let issuer_key = Signer::rsa("rsa1_private.pem", "as-key");
    let jwks = JwksServer::start(vec![issuer_key.jwk()]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let public_url = format!("http://localhost:{}/mcp", addr.port());
    let keys = ApiKeys::new().with(ApiKey::new("admin", KEY));
    let mut config = mcp_server::Config::new(public_url.clone(), keys);
    config.stateless = true;
    config.auth.oauth_issuer = Some(jwks.base.clone());
    config.auth.oauth_jwks_url = Some(jwks.url());
    setup(&mut config);
    let app = mcp_server::app(&config).await.unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        addr,
        public_url,
        jwks,
        issuer_key,
        reads: AtomicU64::new(0),
    }
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Every `WWW-Authenticate` value, in order.
    fn challenges(&self) -> Vec<String> {
        self.headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `DPoP` challenge.
    fn dpop_challenge(&self) -> String {
        self.challenges()
            .into_iter()
            .find(|c| c.starts_with("DPoP "))
            .unwrap_or_else(|| panic!("no DPoP challenge in {:?}", self.challenges()))
    }

    fn nonce(&self) -> Option<String> {
        self.headers
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

/// A client from its own loopback address (the failed-auth throttle counts
/// per address, and is not what is under test).
fn client() -> reqwest::Client {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 16, n]))
        .build()
        .unwrap()
}

/// POSTs `body` to the MCP endpoint with `Authorization: <authorization>`
/// and each of `proofs` as a `DPoP` header.
async fn post(app: &App, authorization: &str, proofs: &[String], body: &str) -> Reply {
    let mut req = client()
        .post(app.socket_url())
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("authorization", authorization);
    for proof in proofs {
        req = req.header("dpop", proof);
    }
    let res = req.body(body.to_owned()).send().await.unwrap();
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

fn get_user_data() -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": "get_user_data", "arguments": {"user_id": "user_001"}}})
    .to_string()
}

/// Asserts a refusal: `status`, `code` in the challenge of `scheme` (the
/// other challenge carrying no error) and in the body, no tool run.
async fn assert_refused(
    app: &App,
    before: u64,
    reply: &Reply,
    scheme: &str,
    code: &str,
    why: &str,
) {
    assert_eq!(reply.status, 401, "{why}: {}", reply.body);
    let challenges = reply.challenges();
    assert_eq!(challenges.len(), 2, "{why}: {challenges:?}");
    assert!(
        challenges[0].starts_with("Bearer "),
        "{why}: {challenges:?}"
    );
    assert!(challenges[1].starts_with("DPoP "), "{why}: {challenges:?}");
    for c in &challenges {
        let has_error = c.contains(&format!(r#"error="{code}""#));
        assert_eq!(has_error, c.starts_with(scheme), "{why}: {challenges:?}");
        assert!(c.contains("resource_metadata="), "{why}: {c}");
    }
    assert_eq!(reply.json()["error"]["data"]["error"], code, "{why}");
    assert_eq!(app.tool_calls().await, before, "{why}: a tool ran");
}

// ───────────────────────────── the tests ─────────────────────────────

#[tokio::test]
async fn a_bound_token_with_fresh_proofs_calls_tools() {
    let app = start(|_| {}).await;
    let key = DpopKey::a();
    let token = app.token(Some(&key.jkt), "read:data");
    let before = app.tool_calls().await;
    for _ in 0..2 {
        let proof = key.proof(&app.public_url, &token);
        let reply = post(&app, &format!("DPoP {token}"), &[proof], &get_user_data()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json()["result"]["structuredContent"]["name"],
            "Alice Martin"
        );
        assert_eq!(reply.nonce(), None, "nonces are off");
    }
    assert_eq!(app.tool_calls().await, before + 2);

    // The scheme name is case-insensitive.
    let proof = key.proof(&app.public_url, &token);
    let reply = post(&app, &format!("dpop {token}"), &[proof], &get_user_data()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Advertised: the metadata and both challenges of a 401.
    let meta = app.metadata().await;
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
    assert!(meta.get("dpop_bound_access_tokens_required").is_none());
    let reply = client()
        .post(app.socket_url())
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .body(get_user_data())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    let challenges: Vec<_> = reply
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let metadata = format!(
        "http://localhost:{}/.well-known/oauth-protected-resource/mcp",
        app.addr.port()
    );
    assert_eq!(
        challenges,
        [
            format!(r#"Bearer scope="read:data", resource_metadata="{metadata}""#),
            format!(
                r#"DPoP scope="read:data", algs="ES256 EdDSA RS256 PS256", resource_metadata="{metadata}""#
            ),
        ]
    );

    // Unbound tokens keep working as bearer tokens.
    let reply = post(
        &app,
        &format!("Bearer {}", app.token(None, "read:data")),
        &[],
        &get_user_data(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn every_bad_proof_is_refused_before_any_tool_runs() {
    let app = start(|_| {}).await;
    let key = DpopKey::a();
    let token = app.token(Some(&key.jkt), "read:data");
    let url = app.public_url.clone();
    let with = |edit: &dyn Fn(&mut Value, &mut Value)| {
        let mut header = key.header();
        let mut claims = DpopKey::claims(&url, &token);
        edit(&mut header, &mut claims);
        key.sign(&header, &claims)
    };
    let mut private = key.jwk.clone();
    private["d"] = json!("AAAA");
    let alg_none = {
        let header = json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk});
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(DpopKey::claims(&url, &token).to_string())
        )
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "htu of the socket, not the public URL",
            vec![key.proof(&app.socket_url(), &token)],
        ),
        (
            "htu of another path",
            vec![key.proof(&format!("{url}/other"), &token)],
        ),
        (
            "htm GET for a POST",
            vec![with(&|_, c| c["htm"] = json!("GET"))],
        ),
        (
            "signed by another key",
            vec![DpopKey::b().proof(&url, &token)],
        ),
        (
            "no ath",
            vec![with(&|_, c| {
                c.as_object_mut().unwrap().remove("ath");
            })],
        ),
        (
            "ath of another token",
            vec![with(&|_, c| c["ath"] = json!(ath("another-token")))],
        ),
        (
            "iat ten minutes ago",
            vec![with(&|_, c| c["iat"] = json!(now() - 600))],
        ),
        (
            "iat ten minutes ahead",
            vec![with(&|_, c| c["iat"] = json!(now() + 600))],
        ),
        ("typ JWT", vec![with(&|h, _| h["typ"] = json!("JWT"))]),
        ("alg none", vec![alg_none]),
        (
            "a private jwk",
            vec![with(&|h, _| h["jwk"] = private.clone())],
        ),
        (
            "two proofs",
            vec![key.proof(&url, &token), key.proof(&url, &token)],
        ),
        ("no proof", vec![]),
    ];
    let before = app.tool_calls().await;
    for (why, proofs) in &cases {
        let reply = post(&app, &format!("DPoP {token}"), proofs, &get_user_data()).await;
        assert_refused(&app, before, &reply, "DPoP", "invalid_dpop_proof", why).await;
        assert!(
            !reply.body.contains(&token) && !reply.dpop_challenge().contains(&token),
            "{why}: the token is echoed"
        );
    }

    // A proof is good once: replayed, it is refused.
    let proof = key.proof(&url, &token);
    let reply = post(
        &app,
        &format!("DPoP {token}"),
        std::slice::from_ref(&proof),
        &get_user_data(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let before = app.tool_calls().await;
    let reply = post(&app, &format!("DPoP {token}"), &[proof], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "DPoP",
        "invalid_dpop_proof",
        "replayed jti",
    )
    .await;
    assert!(reply.dpop_challenge().contains("already used"));
}

#[tokio::test]
async fn no_downgrade_and_no_unbound_token_as_dpop() {
    let app = start(|_| {}).await;
    let key = DpopKey::a();
    let before = app.tool_calls().await;

    // A bound token sent as a bearer token: refused, in the Bearer challenge.
    let bound = app.token(Some(&key.jkt), "read:data");
    let reply = post(&app, &format!("Bearer {bound}"), &[], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "Bearer",
        "invalid_token",
        "bound as Bearer",
    )
    .await;
    // ... even with a good proof beside it.
    let proof = key.proof(&app.public_url, &bound);
    let reply = post(&app, &format!("Bearer {bound}"), &[proof], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "Bearer",
        "invalid_token",
        "bound as Bearer + proof",
    )
    .await;

    // An unbound token sent as DPoP, with a good proof: refused, in the
    // DPoP challenge.
    let unbound = app.token(None, "read:data");
    let proof = key.proof(&app.public_url, &unbound);
    let reply = post(&app, &format!("DPoP {unbound}"), &[proof], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "DPoP",
        "invalid_token",
        "unbound as DPoP",
    )
    .await;
    assert!(reply.dpop_challenge().contains("not DPoP-bound"));

    // A bad token as DPoP: invalid_token in the DPoP challenge.
    let proof = key.proof(&app.public_url, "not.a.jwt");
    let reply = post(&app, "DPoP not.a.jwt", &[proof], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "DPoP",
        "invalid_token",
        "bad token as DPoP",
    )
    .await;
}

#[tokio::test]
async fn dpop_required_refuses_unbound_bearer_tokens() {
    let app = start(|c| c.auth.dpop_required = true).await;
    let key = DpopKey::a();
    let before = app.tool_calls().await;
    let unbound = app.token(None, "read:data");
    let reply = post(&app, &format!("Bearer {unbound}"), &[], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "Bearer",
        "invalid_token",
        "DPOP_REQUIRED",
    )
    .await;
    assert!(reply.challenges()[0].contains("accepts only DPoP-bound access tokens"));

    let bound = app.token(Some(&key.jkt), "read:data");
    let proof = key.proof(&app.public_url, &bound);
    let reply = post(&app, &format!("DPoP {bound}"), &[proof], &get_user_data()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let meta = app.metadata().await;
    assert_eq!(meta["dpop_bound_access_tokens_required"], true);
    assert!(meta["dpop_signing_alg_values_supported"].is_array());
}

#[tokio::test]
async fn the_nonce_round_trip() {
    let app = start(|c| {
        c.auth.dpop_nonce_secret =
            Some(SecretString::from("e2e-dpop-nonce-secret-0123456789abcdef"));
    })
    .await;
    let key = DpopKey::a();
    let token = app.token(Some(&key.jkt), "read:data");
    let before = app.tool_calls().await;

    // No nonce: 401 use_dpop_nonce with the nonce to use.
    let proof = key.proof(&app.public_url, &token);
    let reply = post(&app, &format!("DPoP {token}"), &[proof], &get_user_data()).await;
    assert_refused(&app, before, &reply, "DPoP", "use_dpop_nonce", "no nonce").await;
    let nonce = reply.nonce().expect("a DPoP-Nonce header");

    // A nonce the server did not issue: the same answer.
    let mut claims = DpopKey::claims(&app.public_url, &token);
    claims["nonce"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let proof = key.sign(&key.header(), &claims);
    let reply = post(&app, &format!("DPoP {token}"), &[proof], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "DPoP",
        "use_dpop_nonce",
        "forged nonce",
    )
    .await;
    assert_eq!(reply.nonce().as_deref(), Some(nonce.as_str()));

    // The retry with the nonce succeeds, and the answer carries the
    // current nonce.
    let mut claims = DpopKey::claims(&app.public_url, &token);
    claims["nonce"] = json!(nonce);
    let proof = key.sign(&key.header(), &claims);
    let reply = post(&app, &format!("DPoP {token}"), &[proof], &get_user_data()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.tool_calls().await, before + 1);
    assert_eq!(reply.nonce().as_deref(), Some(nonce.as_str()));

    // Asking for the nonce is not a failed credential: one address goes
    // through the round trip more often than the failed-auth threshold
    // (10) allows failures, and is never throttled.
    let one = client();
    for _ in 0..12 {
        let proof = key.proof(&app.public_url, &token);
        let res = one
            .post(app.socket_url())
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(get_user_data())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let mut claims = DpopKey::claims(&app.public_url, &token);
    claims["nonce"] = json!(nonce);
    let res = one
        .post(app.socket_url())
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.sign(&key.header(), &claims))
        .body(get_user_data())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_step_up_403_names_the_scope_in_the_dpop_challenge() {
    let app = start(|_| {}).await;
    let key = DpopKey::a();
    let token = app.token(Some(&key.jkt), "read:data");
    let before = app.tool_calls().await;
    let call = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": {"name": "update_user_data",
                   "arguments": {"user_id": "user_001", "data": {"name": "Eve"}}}})
    .to_string();
    let proof = key.proof(&app.public_url, &token);
    let reply = post(&app, &format!("DPoP {token}"), &[proof], &call).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let challenges = reply.challenges();
    assert!(
        !challenges[0].contains("error="),
        "the Bearer challenge carries no error: {challenges:?}"
    );
    let dpop = reply.dpop_challenge();
    assert!(dpop.contains(r#"error="insufficient_scope""#), "{dpop}");
    assert!(dpop.contains(r#"scope="read:data write:data""#), "{dpop}");
    assert_eq!(reply.json()["error"]["data"]["error"], "insufficient_scope");
    assert_eq!(app.tool_calls().await, before);

    // With the scope, the same client goes through.
    let token = app.token(Some(&key.jkt), "read:data write:data");
    let proof = key.proof(&app.public_url, &token);
    let reply = post(&app, &format!("DPoP {token}"), &[proof], &call).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.tool_calls().await, before + 1);
}

// ───────────────────────────── introspection ─────────────────────────────

const INTROSPECT_ID: &str = "mcp-dpop";
const INTROSPECT_SECRET: &str = "introspection-dpop-secret";

#[tokio::test]
async fn introspected_tokens_bound_by_cnf_jkt() {
    let key = DpopKey::a();
    let jkt = key.jkt.clone();
    // The example's listener first: the endpoint's answers name its URL.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let aud = format!("http://localhost:{port}/mcp");
    let endpoint = {
        let aud = aud.clone();
        common::serve(Router::new().route(
            "/introspect",
            routing::post(move |Form(form): Form<HashMap<String, String>>| {
                let (aud, jkt) = (aud.clone(), jkt.clone());
                async move {
                    let active = json!({"active": true, "sub": "intro-user", "scope": "read:data",
                                        "exp": now() + 600, "aud": aud, "token_type": "DPoP"});
                    Json(match form.get("token").map(String::as_str) {
                        Some("opaque-bound") => {
                            let mut a = active;
                            a["cnf"] = json!({"jkt": jkt});
                            a
                        }
                        Some("opaque-unbound") => active,
                        _ => json!({"active": false}),
                    })
                }
            }),
        ))
        .await
    };
    // The example, with introspection only.
    let keys = ApiKeys::new().with(ApiKey::new("admin", KEY));
    let mut config = mcp_server::Config::new(aud.clone(), keys);
    config.stateless = true;
    config.auth.introspector = Some(
        Introspector::builder(
            format!("http://{endpoint}/introspect"),
            INTROSPECT_ID,
            SecretString::from(INTROSPECT_SECRET),
        )
        .audience(aud.clone())
        .build()
        .unwrap(),
    );
    let router = mcp_server::app(&config).await.unwrap();
    let router = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let issuer_key = Signer::rsa("rsa1_private.pem", "unused");
    let app = App {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        public_url: aud.clone(),
        jwks: JwksServer::start(vec![]).await,
        issuer_key,
        reads: AtomicU64::new(0),
    };
    let before = app.tool_calls().await;

    let proof = key.proof(&aud, "opaque-bound");
    let reply = post(&app, "DPoP opaque-bound", &[proof], &get_user_data()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.tool_calls().await, before + 1);
    let before = before + 1;

    let reply = post(&app, "Bearer opaque-bound", &[], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "Bearer",
        "invalid_token",
        "introspected, bound, as Bearer",
    )
    .await;

    let proof = DpopKey::b().proof(&aud, "opaque-bound");
    let reply = post(&app, "DPoP opaque-bound", &[proof], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "DPoP",
        "invalid_dpop_proof",
        "introspected, another key",
    )
    .await;

    let proof = key.proof(&aud, "opaque-unbound");
    let reply = post(&app, "DPoP opaque-unbound", &[proof], &get_user_data()).await;
    assert_refused(
        &app,
        before,
        &reply,
        "DPoP",
        "invalid_token",
        "introspected, unbound, as DPoP",
    )
    .await;

    let reply = post(&app, "Bearer opaque-unbound", &[], &get_user_data()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.tool_calls().await, before + 1);
}

// ─────────────── issue 23: the replay store and the DPoP scheme ───────────────

/// One holder of a bound token sends good proofs as fast as it can: at its
/// share of the replay store it is refused itself (429 with
/// `Retry-After`, no tool run), while another caller's proofs are still
/// accepted. A stolen token used with the thief's own key leaves nothing
/// in the store: its real holder keeps its whole share.
#[tokio::test]
async fn one_caller_flooding_the_replay_store_leaves_everyone_else_served() {
    const SHARE: usize = 5;
    let app = start(|c| c.auth.dpop_replay_per_caller = SHARE).await;
    let (a, b) = (DpopKey::a(), DpopKey::b());
    let mallory = app.token_for("mallory", Some(&a.jkt), "read:data");
    let before = app.tool_calls().await;
    let mut served = 0;
    for _ in 0..3 * SHARE {
        let proof = a.proof(&app.public_url, &mallory);
        let reply = post(&app, &format!("DPoP {mallory}"), &[proof], &get_user_data()).await;
        match reply.status {
            200 => served += 1,
            429 => {
                assert_eq!(reply.json()["error"]["data"]["error"], "rate_limited");
                assert!(reply.headers.contains_key("retry-after"));
                assert!(
                    reply.body.contains("too many live DPoP proofs"),
                    "{}",
                    reply.body
                );
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    assert_eq!(served, SHARE);
    assert_eq!(app.tool_calls().await, before + SHARE as u64);

    // Alice, another caller with another key, is served.
    let alice = app.token_for("alice", Some(&b.jkt), "read:data");
    for _ in 0..SHARE {
        let proof = b.proof(&app.public_url, &alice);
        let reply = post(&app, &format!("DPoP {alice}"), &[proof], &get_user_data()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    // Bob's token (bound to key b) stolen and used with key a: every proof
    // is refused on the key, before the replay store...
    let bob = app.token_for("bob", Some(&b.jkt), "read:data");
    for _ in 0..3 * SHARE {
        let proof = a.proof(&app.public_url, &bob);
        let reply = post(&app, &format!("DPoP {bob}"), &[proof], &get_user_data()).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(reply.dpop_challenge().contains("invalid_dpop_proof"));
    }
    // ... so Bob still has his whole share.
    for _ in 0..SHARE {
        let proof = b.proof(&app.public_url, &bob);
        let reply = post(&app, &format!("DPoP {bob}"), &[proof], &get_user_data()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}

/// A proof dated more than a few seconds ahead is refused: it would hold
/// its replay entry that much longer.
#[tokio::test]
async fn a_proof_dated_in_the_future_is_refused() {
    let app = start(|_| {}).await;
    let key = DpopKey::a();
    let token = app.token(Some(&key.jkt), "read:data");
    let mut claims = DpopKey::claims(&app.public_url, &token);
    claims["iat"] = json!(now() + 290);
    let before = app.tool_calls().await;
    let reply = post(
        &app,
        &format!("DPoP {token}"),
        &[key.sign(&key.header(), &claims)],
        &get_user_data(),
    )
    .await;
    assert_refused(
        &app,
        before,
        &reply,
        "DPoP",
        "invalid_dpop_proof",
        "iat ahead",
    )
    .await;
    assert!(reply.dpop_challenge().contains("in the future"));
}

/// `Authorization: DPoP <token>` where the token layer has no `.dpop()`:
/// a presented credential that no layer verifies is refused, never served
/// as anonymous, even for a public tool (issue 23, 6c).
#[tokio::test]
async fn a_dpop_token_where_no_layer_takes_dpop_is_refused_not_anonymous() {
    use tower::ServiceBuilder;
    use tower_mcp_auth::{
        jwt::{JwtLayer, JwtValidator},
        mcp::{McpPolicy, McpPolicyLayer},
        ProtectedResource, Rule,
    };
    const SECRET: &str = "e2e-dpop-6c-hs256-secret-0123456789abcdef";
    static SERVED: AtomicU64 = AtomicU64::new(0);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/mcp");
    let resource = ProtectedResource::builder(url.clone()).build().unwrap();
    let validator = JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(SECRET))
        .build()
        .unwrap();
    let policy = McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("public_info", Rule::public())
        .build()
        .unwrap();
    let stack = ServiceBuilder::new()
        .layer(resource.layer())
        .layer(JwtLayer::new(validator).optional())
        .layer(McpPolicyLayer::new(policy));
    let served = Router::new().fallback(|| async {
        SERVED.fetch_add(1, Ordering::SeqCst);
        Json(json!({"jsonrpc": "2.0", "id": 1, "result": {}}))
    });
    let app = Router::new().route_service("/mcp", stack.service(served));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "public_info", "arguments": {}}})
    .to_string();
    let send = |authorization: Option<String>| {
        let mut req = client()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .body(call.clone());
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let www = res
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, www, res.text().await.unwrap())
        }
    };
    // No credential: the public tool is served to anyone.
    let (status, _, body) = send(None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(SERVED.load(Ordering::SeqCst), 1);
    // A token in the DPoP scheme, good or not: 401 invalid_token.
    let claims = json!({"sub": "someone", "aud": url, "iat": now(), "exp": now() + 600});
    let good = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    for token in ["x".to_owned(), good.clone()] {
        let (status, www, body) = send(Some(format!("DPoP {token}"))).await;
        assert_eq!(status, 401, "{body}");
        assert!(www.contains(r#"error="invalid_token""#), "{www}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["id"], 1);
    }
    assert_eq!(SERVED.load(Ordering::SeqCst), 1, "served as anonymous");
    // The same token as a bearer token is served.
    let (status, _, body) = send(Some(format!("Bearer {good}"))).await;
    assert_eq!(status, 200, "{body}");
}
