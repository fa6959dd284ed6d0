//! The bodies of the fuzz targets, shared by the libFuzzer binaries in
//! `fuzz_targets/` and by the stable replay of the committed corpus
//! (`tests/fuzz_corpus.rs`). Each function takes arbitrary bytes and panics
//! only when a property is broken: a refusal with a 5xx status, a header
//! that fails to round-trip, a forged token accepted.

#![allow(dead_code)]

use std::{convert::Infallible, sync::OnceLock};

use axum::body::Body;
use base64::Engine;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use secrecy::SecretString;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    jwt::{JwtLayer, JwtValidator},
    mcp::{McpRequest, UriTemplate},
    ApiKey, ApiKeyLayer, ApiKeys, AuthError, ProtectedResource, Scopes,
};

/// The HS256 secret the JWT target's validator trusts. Fuzz input cannot
/// know a valid signature, so any accepted token is a forgery.
pub const JWT_SECRET: &str = "fuzz-jwt-secret-0123456789abcdef0123456789";
/// The only API key the header target's layer accepts.
pub const API_KEY: &str = "mcp_sk_fuzz-key-0123456789abcdef";
/// The resource identifier (and JWT audience).
pub const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, as the corpus directories are named.
pub const TARGETS: [(&str, Target); 6] = [
    ("json_rpc_inspect", json_rpc_inspect),
    ("auth_headers", auth_headers),
    ("scopes", scopes),
    ("uri_template", uri_template),
    ("mcp_name", mcp_name),
    ("jwt_validate", jwt_validate),
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn resource() -> ProtectedResource {
    ProtectedResource::builder(RESOURCE).build().unwrap()
}

/// JSON-RPC inspection: any body parses or is refused with a 4xx; a parsed
/// request's header check never panics and refuses with a 4xx.
pub fn json_rpc_inspect(data: &[u8]) {
    match McpRequest::parse(data) {
        Err(e) => assert!(e.status().is_client_error(), "parse: {}", e.status()),
        Ok(req) => {
            let mut headers = HeaderMap::new();
            if let Some(call) = req.calls().first() {
                if let Some(m) = call.method().and_then(|m| HeaderValue::from_str(m).ok()) {
                    headers.insert("mcp-method", m);
                }
            }
            if let Err(e) = req.check_headers(&headers) {
                assert!(e.status().is_client_error(), "headers: {}", e.status());
            }
        }
    }
}

async fn ok(_: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::empty()))
}

/// `X-API-Key` and `Authorization` parsing through the real layers: the
/// input, split at NUL bytes, gives the header values (even parts:
/// `X-API-Key`, odd: `Authorization`). The answer is 200 only when the
/// configured key was sent, and never 5xx.
pub fn auth_headers(data: &[u8]) {
    static VALIDATOR: OnceLock<JwtValidator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        JwtValidator::builder(&resource())
            .hs256_secret(&SecretString::from(JWT_SECRET))
            .build()
            .unwrap()
    });
    let mut req = Request::post("/mcp");
    let mut api_keys = Vec::new();
    let mut auths = Vec::new();
    for (i, part) in data.split(|b| *b == 0).enumerate() {
        let Ok(v) = HeaderValue::from_bytes(part) else {
            return;
        };
        if i % 2 == 0 {
            if part.is_empty() {
                continue;
            }
            api_keys.push(v.clone());
            req = req.header("x-api-key", v);
        } else {
            auths.push(v.clone());
            req = req.header("authorization", v);
        }
    }
    let req = req.body(Body::empty()).unwrap();
    let keys = ApiKeys::new().with(ApiKey::new("fuzz", API_KEY));
    let svc = ServiceBuilder::new()
        .layer(
            ApiKeyLayer::new(keys)
                .accept_authorization_scheme()
                .optional(),
        )
        .layer(JwtLayer::new(validator.clone()))
        .service_fn(ok);
    let status = runtime().block_on(svc.oneshot(req)).unwrap().status();
    assert!(!status.is_server_error(), "{status}");
    if status == StatusCode::OK {
        // Fuzz input cannot sign a JWT: only the configured API key (which
        // the corpus holds) can pass.
        assert!(
            data.windows(API_KEY.len()).any(|w| w == API_KEY.as_bytes()),
            "a request passed without a credential: keys {api_keys:?}, auth {auths:?}"
        );
    }
}

/// Scope parsing: Display of a parsed set parses to the same set, and the
/// JSON forms agree with the string form.
pub fn scopes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = Scopes::parse(&text);
    let shown = parsed.to_string();
    assert_eq!(Scopes::parse(&shown), parsed);
    assert_eq!(
        Scopes::from_json(&serde_json::Value::String(text.clone().into_owned())),
        Some(parsed.clone())
    );
    let words: Vec<serde_json::Value> = text
        .split_ascii_whitespace()
        .map(|w| serde_json::Value::String(w.to_owned()))
        .collect();
    assert_eq!(
        Scopes::from_json(&serde_json::Value::Array(words)),
        Some(parsed)
    );
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = Scopes::from_json(&v);
    }
}

/// URI templates: the input's first line is a template, the rest a URI;
/// parse and match return, and an exact template matches itself.
pub fn uri_template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (template, uri) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(t) = UriTemplate::parse(template) {
        let _ = t.matches(uri);
        if t.is_exact() {
            assert!(t.matches(t.as_str()));
        }
    }
}

/// `Mcp-Name` decoding: the input as a raw header value is accepted or
/// refused with a 4xx; a name sent base64-encoded (`=?base64?…?=`) matches
/// the body's name.
pub fn mcp_name(data: &[u8]) {
    let name = String::from_utf8_lossy(data);
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                  "params": {"name": name}});
    let req = McpRequest::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert("mcp-name", v);
        if let Err(e) = req.check_headers(&headers) {
            assert!(e.status().is_client_error(), "{}", e.status());
        }
    }
    let encoded = format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode(name.as_bytes())
    );
    let mut headers = HeaderMap::new();
    headers.insert("mcp-name", HeaderValue::from_str(&encoded).unwrap());
    let checked: Result<(), AuthError> = req.check_headers(&headers);
    assert!(checked.is_ok(), "{encoded} does not match {name:?}");
}

/// JWT validation up to and including the signature check: any input is
/// refused (fuzz input cannot sign), with a 401, never a panic.
pub fn jwt_validate(data: &[u8]) {
    static VALIDATOR: OnceLock<JwtValidator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        JwtValidator::builder(&resource())
            .hs256_secret(&SecretString::from(JWT_SECRET))
            .build()
            .unwrap()
    });
    let token = String::from_utf8_lossy(data);
    match runtime().block_on(validator.verify(&token)) {
        Ok(p) => panic!("a forged token was accepted for {}", p.subject()),
        Err(e) => {
            let status = AuthError::from(e).status();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
}
