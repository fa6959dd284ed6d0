//! Shared helpers for the JWT integration tests: fixture keys, token
//! minting, a JWKS server on loopback, and serving an app.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const AUD: &str = "https://mcp.example.com/mcp";
pub const HS_SECRET: &str = "integration-test-secret-0123456789abcdef";

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key from the fixtures (or an HMAC secret).
#[derive(Clone)]
pub struct Signer {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub key: EncodingKey,
}

impl Signer {
    pub fn rsa(file: &str, kid: &str) -> Self {
        tower_mcp_auth::jwt::install_crypto_provider();
        Self {
            alg: Algorithm::RS256,
            kid: Some(kid.into()),
            key: EncodingKey::from_rsa_pem(&fixture(file)).unwrap(),
        }
    }
    pub fn ec(kid: &str) -> Self {
        tower_mcp_auth::jwt::install_crypto_provider();
        Self {
            alg: Algorithm::ES256,
            kid: Some(kid.into()),
            key: EncodingKey::from_ec_pem(&fixture("ec256_private.pem")).unwrap(),
        }
    }
    pub fn ed(kid: &str) -> Self {
        tower_mcp_auth::jwt::install_crypto_provider();
        Self {
            alg: Algorithm::EdDSA,
            kid: Some(kid.into()),
            key: EncodingKey::from_ed_pem(&fixture("ed25519_private.pem")).unwrap(),
        }
    }
    pub fn hs(secret: &str, kid: Option<&str>) -> Self {
        tower_mcp_auth::jwt::install_crypto_provider();
        Self {
            alg: Algorithm::HS256,
            kid: kid.map(Into::into),
            key: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// Signs raw header and payload JSON text.
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &self.key, self.alg).unwrap();
        format!("{msg}.{sig}")
    }

    /// The public JWK of this key (with its kid and alg).
    pub fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id.clone_from(&self.kid);
        serde_json::to_value(jwk).unwrap()
    }
}

pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "aud": AUD, "exp": now() + 600, "iat": now(),
           "scope": "read:data", "jti": format!("{sub}-{}", rand_u64())})
}

pub fn rand_u64() -> u64 {
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A JWKS (and issuer metadata) server on loopback whose keys, health and
/// latency the test controls.
#[derive(Clone)]
pub struct JwksServer {
    pub base: String,
    pub state: Arc<JwksState>,
}

pub struct JwksState {
    pub jwks: Mutex<Value>,
    pub hits: AtomicUsize,
    pub down: AtomicBool,
    pub delay_ms: AtomicU64,
    pub issuer: Mutex<String>,
}

async fn jwks_handler(State(s): State<Arc<JwksState>>) -> impl IntoResponse {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if s.down.load(Ordering::SeqCst) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "down"})),
        );
    }
    let body = s.jwks.lock().unwrap().clone();
    (StatusCode::OK, Json(body))
}

async fn metadata_handler(State(s): State<Arc<JwksState>>) -> Json<Value> {
    let issuer = s.issuer.lock().unwrap().clone();
    Json(
        json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json"),
                "token_endpoint": format!("{issuer}/token")}),
    )
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> Self {
        let state = Arc::new(JwksState {
            jwks: Mutex::new(json!({ "keys": keys })),
            hits: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            issuer: Mutex::new(String::new()),
        });
        let app = Router::new()
            .route("/jwks.json", get(jwks_handler))
            .route(
                "/.well-known/oauth-authorization-server",
                get(metadata_handler),
            )
            .with_state(state.clone());
        let addr = serve(app).await;
        let base = format!("http://{addr}");
        *state.issuer.lock().unwrap() = base.clone();
        Self { base, state }
    }

    pub fn url(&self) -> String {
        format!("{}/jwks.json", self.base)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.state.jwks.lock().unwrap() = json!({ "keys": keys });
    }

    pub fn set_jwks(&self, doc: Value) {
        *self.state.jwks.lock().unwrap() = doc;
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn set_delay(&self, ms: u64) {
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }
}

/// Serves `app` on 127.0.0.1:0 and returns its address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// A `tracing` writer that keeps what is written, to assert audit events.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
