//! The scenery of the gateway's end-to-end tests: a real rmcp MCP server
//! as the upstream (recording the headers it receives), hand-made
//! upstreams for streaming and failures, and the gateway in front, all on
//! loopback.
#![allow(dead_code)] // each test binary uses a part

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
    routing::{any, post},
    Router,
};
use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use rmcp::{
    handler::server::router::tool::ToolRouter,
    model::{ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ServerHandler,
};
use secrecy::SecretString;
use serde_json::Value;
use tokio::{net::TcpListener, sync::mpsc};
use tower_mcp_auth::api_key::{ApiKey, ApiKeys};
use tower_mcp_auth::stack::Settings;
use tower_mcp_auth_gateway::config::UpstreamConfig;

pub const API_KEY: &str = "mcp_sk_gateway-test-0123456789abcdef";
pub const JWT_SECRET: &str = "gateway-test-secret-0123456789abcdef0123456789";
/// The gateway's own credential towards the upstream.
pub const UPSTREAM_AUTHORIZATION: &str = "Bearer upstream-only-credential";

/// The rules the gateway enforces in these tests, as a `POLICY_FILE`.
pub const POLICY: &str = r#"{
    "tools": {
        "echo": "authenticated",
        "admin_reset": "api_key",
        "read_data": {"scheme": "bearer", "scopes": ["data:read"]}
    },
    "unmatched": {"tool": "deny"}
}"#;

#[derive(Clone)]
pub struct Tools {
    #[allow(dead_code)]
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    #[tool(description = "Echo")]
    async fn echo(&self) -> String {
        "echoed".into()
    }

    #[tool(description = "Reset everything (administrators)")]
    async fn admin_reset(&self) -> String {
        "reset".into()
    }

    #[tool(description = "Read data (data:read)")]
    async fn read_data(&self) -> String {
        "data".into()
    }

    #[tool(description = "A tool no rule names")]
    async fn secret_tool(&self) -> String {
        "secret".into()
    }
}

#[tool_handler]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// What the upstream received and answered.
#[derive(Clone, Default)]
pub struct Recorder {
    pub requests: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    pub session_ids: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn requests(&self) -> Vec<(String, HeaderMap)> {
        self.requests.lock().unwrap().clone()
    }
}

async fn record(State(rec): State<Recorder>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    rec.requests
        .lock()
        .unwrap()
        .push((path, req.headers().clone()));
    let response = next.run(req).await;
    if let Some(id) = response.headers().get("mcp-session-id") {
        rec.session_ids
            .lock()
            .unwrap()
            .push(id.to_str().unwrap().to_owned());
    }
    response
}

async fn listen(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A real rmcp server (sessions, SSE responses) at `/upstream/mcp`: its
/// URL and what it records.
pub async fn rmcp_upstream() -> (String, Recorder) {
    rmcp_upstream_with(StreamableHttpServerConfig::default().with_sse_keep_alive(None)).await
}

/// The same server without sessions, answering plain JSON.
pub async fn rmcp_json_upstream() -> (String, Recorder) {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None);
    rmcp_upstream_with(config).await
}

async fn rmcp_upstream_with(config: StreamableHttpServerConfig) -> (String, Recorder) {
    let (app, rec) = rmcp_app(config);
    let addr = listen(app).await;
    (format!("http://{addr}/upstream/mcp"), rec)
}

/// A test fixture's path.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The rmcp server over TLS, with the certificate of
/// `fixtures/upstream-cert.pem` (for 127.0.0.1, signed by
/// `fixtures/upstream-ca.pem`).
pub async fn rmcp_tls_upstream() -> (String, Recorder) {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let (app, rec) = rmcp_app(StreamableHttpServerConfig::default().with_sse_keep_alive(None));
    let certs = CertificateDer::pem_file_iter(fixture("upstream-cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("upstream-key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}/upstream/mcp"), rec)
}

fn rmcp_app(config: StreamableHttpServerConfig) -> (Router, Recorder) {
    let service: StreamableHttpService<Tools, LocalSessionManager> = StreamableHttpService::new(
        || {
            Ok(Tools {
                tool_router: Tools::tool_router(),
            })
        },
        Default::default(),
        config,
    );
    let rec = Recorder::default();
    let app = Router::new()
        .route_service("/upstream/mcp", service)
        .layer(middleware::from_fn_with_state(rec.clone(), record));
    (app, rec)
}

/// A body fed by a channel: each message one frame, the end when the
/// sender is dropped.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// An upstream whose one POST answer is an SSE stream the test writes
/// event by event (through the returned sender) and ends by dropping it.
pub async fn sse_upstream() -> (String, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel(8);
    let rx = Arc::new(Mutex::new(Some(rx)));
    let app = Router::new().route(
        "/mcp",
        post(move || {
            let rx = rx.lock().unwrap().take().expect("one request");
            async move {
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::new(ChannelBody(rx)))
                    .unwrap()
            }
        }),
    );
    let addr = listen(app).await;
    (format!("http://{addr}/mcp"), tx)
}

/// An upstream that accepts every request and never answers.
pub async fn silent_upstream() -> String {
    let app = Router::new().route("/mcp", any(std::future::pending::<String>));
    format!("http://{}/mcp", listen(app).await)
}

/// An upstream that answers 401 to everything (it wants a credential the
/// gateway does not have).
pub async fn refusing_upstream() -> String {
    let app = Router::new().route(
        "/mcp",
        any(|| async {
            Response::builder()
                .status(401)
                .header("www-authenticate", "Bearer realm=\"upstream\"")
                .body(Body::empty())
                .unwrap()
        }),
    );
    format!("http://{}/mcp", listen(app).await)
}

/// An upstream that redirects `/mcp` to `/mcp/`, as Starlette does.
pub async fn redirecting_upstream() -> String {
    let app = Router::new().route(
        "/mcp",
        any(|| async {
            Response::builder()
                .status(307)
                .header("location", "http://127.0.0.1:1/mcp/")
                .body(Body::empty())
                .unwrap()
        }),
    );
    format!("http://{}/mcp", listen(app).await)
}

/// A URL where nothing listens (connection refused).
pub async fn dead_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/mcp")
}

/// The gateway in front of `upstream`, with the test key, the test JWT
/// secret and [`POLICY`]; `tweak` adjusts the upstream settings.
pub struct Gateway {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The MCP endpoint (`PUBLIC_URL`).
    pub url: String,
    pub client: reqwest::Client,
}

pub async fn gateway(upstream: &str, tweak: impl FnOnce(&mut UpstreamConfig)) -> Gateway {
    gateway_at("/mcp", upstream, tweak).await
}

/// [`gateway`] with `path` as the path of its `PUBLIC_URL`.
pub async fn gateway_at(
    path: &str,
    upstream: &str,
    tweak: impl FnOnce(&mut UpstreamConfig),
) -> Gateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}{path}");
    let mut upstream = UpstreamConfig::new(upstream).unwrap();
    let mut auth = HeaderMap::new();
    auth.insert("authorization", UPSTREAM_AUTHORIZATION.parse().unwrap());
    upstream.headers = auth;
    tweak(&mut upstream);

    let policy = std::env::temp_dir().join(format!(
        "gateway-policy-{}-{}.json",
        std::process::id(),
        addr.port()
    ));
    std::fs::write(&policy, POLICY).unwrap();
    let mut stack = Settings::new(url.clone());
    stack.api_keys = ApiKeys::new().with(ApiKey::new("ops", API_KEY));
    stack.jwt_secret = Some(SecretString::from(JWT_SECRET));
    stack.policy_file = Some(policy);
    let app = tower_mcp_auth_gateway::app(&upstream, &stack)
        .await
        .unwrap();
    tokio::spawn(tower_mcp_auth_gateway::serve(
        listener,
        app,
        std::future::pending(),
        std::time::Duration::from_secs(1),
    ));
    Gateway {
        base: format!("http://{addr}"),
        url,
        client: reqwest::Client::new(),
    }
}

/// Who calls.
#[derive(Clone, Copy)]
pub enum Who<'a> {
    Nobody,
    Key,
    Token(&'a str),
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body's JSON: a plain JSON body, or the first SSE `data:` line
    /// that is a JSON-RPC message with an id.
    pub fn json(&self) -> Value {
        if let Ok(v) = serde_json::from_str(&self.text) {
            return v;
        }
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or_else(|| panic!("no JSON in {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

impl Gateway {
    pub fn token(&self, subject: &str, scopes: &[&str]) -> String {
        tower_mcp_auth_gateway::demo::mint_token(
            &SecretString::from(JWT_SECRET),
            &self.url,
            subject,
            scopes,
        )
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        who: Who<'_>,
        session: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self
            .client
            .request(method, &self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-11-25")
            // Never to be forwarded.
            .header("cookie", "caller-session=never-forwarded")
            .header("dpop", "never-forwarded");
        rb = match who {
            Who::Nobody => rb,
            Who::Key => rb.header("x-api-key", API_KEY),
            Who::Token(t) => rb.bearer_auth(t),
        };
        if let Some(s) = session {
            rb = rb.header("mcp-session-id", s);
        }
        rb
    }

    pub async fn post(&self, who: Who<'_>, session: Option<&str>, body: Value) -> Reply {
        let r = self
            .request(reqwest::Method::POST, who, session)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        reply(r).await
    }

    /// Initializes a session as `who`: the session id the gateway gave.
    pub async fn initialize(&self, who: Who<'_>) -> String {
        let r = self
            .post(
                who,
                None,
                serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "gateway-test", "version": "1"}}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let session = r.header("mcp-session-id").expect("a session id").to_owned();
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = self.post(who, Some(&session), note).await;
        assert_eq!(r.status, 202, "{}", r.text);
        session
    }
}

pub async fn reply(r: reqwest::Response) -> Reply {
    Reply {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}

pub fn call(id: u32, tool: &str) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}
