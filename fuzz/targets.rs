//! The bodies of the fuzz targets, shared by the libFuzzer binaries in
//! `fuzz_targets/` and by the stable replay of the committed corpus
//! (`tests/fuzz_corpus.rs`). Each function takes arbitrary bytes and panics
//! only when a property is broken: a refusal with a 5xx status, a header
//! that fails to round-trip, a forged token accepted.

#![allow(dead_code)]

use std::{
    collections::BTreeSet,
    convert::Infallible,
    fmt,
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::body::Body;
use base64::Engine;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Map, Value};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeyLayer, ApiKeys},
    dpop::{Binding, MemoryReplayCache, ProofErrorKind, ProofValidator},
    jwt::{JwtLayer, JwtValidator},
    mcp::{McpRequest, MessageKind, TemplateIndex, UriTemplate},
    AuthError, ProtectedResource, Scopes,
};

/// The HS256 secret the JWT target's validator trusts. Fuzz input cannot
/// know a valid signature, so any accepted token is a forgery.
pub const JWT_SECRET: &str = "fuzz-jwt-secret-0123456789abcdef0123456789";
/// The only API key the header target's layer accepts.
pub const API_KEY: &str = "mcp_sk_fuzz-key-0123456789abcdef";
/// The resource identifier (and JWT audience).
pub const RESOURCE: &str = "https://mcp.example.com/mcp";
/// The issuer the claims target's validator trusts.
pub const JWT_ISSUER: &str = "https://auth.example.com";

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, as the corpus directories are named.
pub const TARGETS: [(&str, Target); 8] = [
    ("json_rpc_inspect", json_rpc_inspect),
    ("auth_headers", auth_headers),
    ("scopes", scopes),
    ("uri_template", uri_template),
    ("mcp_name", mcp_name),
    ("jwt_validate", jwt_validate),
    ("jwt_claims", jwt_claims),
    ("dpop_proof", dpop_proof),
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

/// JSON-RPC inspection: any body parses or is refused with a 4xx. When
/// the body is also plain JSON (`serde_json::Value`, which a downstream
/// server may use), both readings agree on the batch shape and on every
/// message's id, method, kind and target name: a policy decided on the
/// parse is a decision about what the server will run. `Mcp-Method` /
/// `Mcp-Name` headers that match a single message pass; a wrong method,
/// or any such header on a batch, is a 4xx.
pub fn json_rpc_inspect(data: &[u8]) {
    let req = match McpRequest::parse(data) {
        Err(e) => {
            assert!(e.status().is_client_error(), "parse: {}", e.status());
            return;
        }
        Ok(req) => req,
    };
    assert!(!req.calls().is_empty(), "a request without messages");
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let messages = match &value {
            Value::Array(items) => {
                assert!(req.is_batch(), "an array parsed as a single message");
                items.iter().collect::<Vec<_>>()
            }
            other => {
                assert!(!req.is_batch(), "an object parsed as a batch");
                vec![other]
            }
        };
        assert_eq!(messages.len(), req.calls().len(), "message count");
        for (call, msg) in req.calls().iter().zip(messages) {
            let method = msg.get("method").and_then(Value::as_str);
            assert_eq!(call.method(), method, "method of {msg}");
            let id = msg.get("id");
            let parsed_id = call
                .id()
                .map(|id| serde_json::from_str::<Value>(id.get()).unwrap());
            assert_eq!(parsed_id.as_ref(), id, "id of {msg}");
            let kind = match (method, id) {
                (None, _) => MessageKind::Response,
                (Some(_), Some(_)) => MessageKind::Request,
                (Some(_), None) => MessageKind::Notification,
            };
            assert_eq!(call.kind(), kind, "kind of {msg}");
            let params = msg.get("params");
            // A member that is not a string names no target: the call has
            // none (the server refuses it as invalid params).
            let field = |v: Option<&Value>, key: &str| {
                v.and_then(|v| v.get(key))
                    .filter(|v| v.is_string())
                    .cloned()
            };
            let expected: Vec<Value> = match method {
                Some("tools/call" | "prompts/get") => field(params, "name").into_iter().collect(),
                Some(
                    "resources/read"
                    | "resources/subscribe"
                    | "resources/unsubscribe"
                    | "resources/directory/read"
                    | "skills/get",
                ) => field(params, "uri").into_iter().collect(),
                Some("tasks/get" | "tasks/update" | "tasks/cancel" | "tasks/result") => {
                    field(params, "taskId").into_iter().collect()
                }
                Some("subscriptions/listen") => {
                    let uris = params
                        .and_then(|p| p.get("notifications"))
                        .and_then(|n| n.get("resourceSubscriptions"))
                        .and_then(Value::as_array);
                    match uris {
                        Some(uris) if uris.iter().all(Value::is_string) => uris.clone(),
                        _ => Vec::new(),
                    }
                }
                Some("completion/complete") => {
                    let r = params.and_then(|p| p.get("ref"));
                    match r.and_then(|r| r.get("type")).and_then(Value::as_str) {
                        Some("ref/prompt") => field(r, "name").into_iter().collect(),
                        Some("ref/resource") => field(r, "uri").into_iter().collect(),
                        _ => Vec::new(),
                    }
                }
                _ => Vec::new(),
            };
            let targets: Vec<Value> = call
                .targets()
                .map(|t| Value::String(t.name().to_owned()))
                .collect();
            assert_eq!(targets, expected, "targets of {msg}");
        }
    }
    let mut headers = HeaderMap::new();
    if let [call] = req.calls() {
        if let Some(m) = call.method() {
            headers.insert("mcp-method", encoded_header(m));
            if let Some(t) = call.target() {
                headers.insert("mcp-name", encoded_header(t.name()));
            }
        }
    } else {
        headers.insert("mcp-method", HeaderValue::from_static("tools/call"));
    }
    match req.check_headers(&headers) {
        Ok(()) => assert!(
            !req.is_batch() || headers.is_empty(),
            "Mcp-Method accepted on a batch"
        ),
        Err(e) => {
            assert!(e.status().is_client_error(), "headers: {}", e.status());
            assert!(req.is_batch(), "matching headers refused: {e:?}");
        }
    }
    if let [call] = req.calls() {
        if let Some(m) = call.method() {
            let mut wrong = HeaderMap::new();
            wrong.insert("mcp-method", encoded_header(&format!("{m}x")));
            let e = req
                .check_headers(&wrong)
                .expect_err("a wrong Mcp-Method passed");
            assert!(e.status().is_client_error(), "headers: {}", e.status());
            // A wrong Mcp-Name is refused exactly where rmcp compares it:
            // the methods that define its source, when the body has it.
            if let Some(t) = call.target() {
                let mut wrong = HeaderMap::new();
                wrong.insert("mcp-name", encoded_header(&format!("{}x", t.name())));
                let compared = matches!(
                    m,
                    "tools/call"
                        | "prompts/get"
                        | "resources/read"
                        | "resources/subscribe"
                        | "resources/unsubscribe"
                        | "tasks/get"
                        | "tasks/update"
                        | "tasks/cancel"
                );
                assert_eq!(
                    req.check_headers(&wrong).is_err(),
                    compared,
                    "a wrong Mcp-Name on {m}"
                );
            }
        }
    }
}

/// A header value for `text`: as is when it is visible ASCII, else
/// `=?base64?…?=` (how a client sends a name a header cannot carry).
fn encoded_header(text: &str) -> HeaderValue {
    let plain = !text.starts_with("=?base64?")
        && text.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && !text.starts_with(' ')
        && !text.ends_with(' ');
    if plain {
        HeaderValue::from_str(text).unwrap()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        HeaderValue::from_str(&format!("=?base64?{encoded}?=")).unwrap()
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
        .layer(ApiKeyLayer::new(keys).optional())
        .layer(JwtLayer::new(validator.clone()))
        .service_fn(ok);
    let status = runtime().block_on(svc.oneshot(req)).unwrap().status();
    assert!(!status.is_server_error(), "{status}");
    // The API-key credentials sent: each X-API-Key value, and each
    // `Authorization: ApiKey <key>`.
    let scheme_keys: Vec<&str> = auths
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
        .map(|(_, key)| key)
        .collect();
    let header_keys: Vec<&[u8]> = api_keys.iter().map(HeaderValue::as_bytes).collect();
    let sent_the_key = |k: &[u8]| k.trim_ascii() == API_KEY.as_bytes();
    if status == StatusCode::OK {
        // Fuzz input cannot sign a JWT: only the configured API key (which
        // the corpus holds), sent exactly once, can pass.
        let credentials: Vec<&[u8]> = header_keys
            .iter()
            .copied()
            .chain(scheme_keys.iter().map(|k| k.as_bytes()))
            .collect();
        assert!(
            matches!(credentials.as_slice(), [k] if sent_the_key(k)),
            "a request passed without exactly one right key: keys {api_keys:?}, auth {auths:?}"
        );
    }
    if auths.is_empty() && matches!(header_keys.as_slice(), [k] if sent_the_key(k)) {
        assert_eq!(status, StatusCode::OK, "the right key was refused");
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

/// URI templates: the input's first line is a template, the rest a URI.
/// `matches` agrees with a plain backtracking reading of RFC 6570 level 1
/// (a `{var}` is one or more characters other than `/`, `?`, `#`), and the
/// template with every variable replaced by a legal value matches.
pub fn uri_template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (template, uri) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(t) = UriTemplate::parse(template) else {
        return;
    };
    let parts = template_parts(template);
    assert_eq!(
        parts.iter().filter(|p| p.is_none()).count(),
        t.var_count(),
        "variable count of {template:?}"
    );
    let uri: String = uri.chars().take(256).collect();
    assert_eq!(
        t.matches(&uri),
        reference_match(&parts, &uri.chars().collect::<Vec<_>>()),
        "{template:?} against {uri:?}"
    );
    // The index (by literal prefix and suffix) finds the template exactly
    // when it matches, or when the URI is the template's own text.
    let index = TemplateIndex::new([(t.clone(), ())]);
    assert_eq!(
        index.find(&uri).is_some(),
        uri == t.as_str() || t.matches(&uri),
        "index: {template:?} against {uri:?}"
    );
    let value: String = uri
        .chars()
        .filter(|c| !matches!(c, '/' | '?' | '#'))
        .collect();
    let value = if value.is_empty() { "x" } else { &value };
    let filled: String = parts
        .iter()
        .map(|p| match p {
            Some(lit) => lit.to_string(),
            None => value.to_owned(),
        })
        .collect();
    assert!(t.matches(&filled), "{template:?} does not match {filled:?}");
    if t.is_exact() {
        assert!(t.matches(t.as_str()));
    }
}

/// A parsed template as literal characters (`Some`) and variables (`None`).
fn template_parts(template: &str) -> Vec<Option<char>> {
    let mut parts = Vec::new();
    let mut in_var = false;
    for c in template.chars() {
        match (in_var, c) {
            (false, '{') => {
                in_var = true;
                parts.push(None);
            }
            (false, c) => parts.push(Some(c)),
            (true, '}') => in_var = false,
            (true, _) => {}
        }
    }
    parts
}

/// Does `uri` match `parts`? Memoised backtracking, independent of the
/// crate's automaton.
fn reference_match(parts: &[Option<char>], uri: &[char]) -> bool {
    fn go(
        parts: &[Option<char>],
        uri: &[char],
        p: usize,
        u: usize,
        memo: &mut [Option<bool>],
    ) -> bool {
        let slot = p * (uri.len() + 1) + u;
        if let Some(known) = memo[slot] {
            return known;
        }
        let result = match parts.get(p) {
            None => u == uri.len(),
            Some(Some(lit)) => uri.get(u) == Some(lit) && go(parts, uri, p + 1, u + 1, memo),
            Some(None) => {
                let mut end = u;
                let mut found = false;
                while end < uri.len() && !matches!(uri[end], '/' | '?' | '#') {
                    end += 1;
                    if go(parts, uri, p + 1, end, memo) {
                        found = true;
                        break;
                    }
                }
                found
            }
        };
        memo[slot] = Some(result);
        result
    }
    let mut memo = vec![None; (parts.len() + 1) * (uri.len() + 1)];
    go(parts, uri, 0, 0, &mut memo)
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
        Ok(p) => panic!("a forged token was accepted for {}", p.name()),
        Err(e) => {
            let status = AuthError::from(e).status();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
}

/// The leeway the claims target's validator allows (the default).
const JWT_LEEWAY: u64 = 30;
/// The validator's default token size limit.
const JWT_MAX_BYTES: usize = 8 * 1024;

/// JWT claims handling past the signature: the input is the payload of a
/// token the target signs with the validator's own HS256 key, so every
/// claims check runs. The verdict must agree with a model of the rules
/// (RFC 7519 / RFC 9068 as configured: a JSON object without duplicate
/// members; `exp` required, `nbf` and `iat` honoured with a 30 s leeway;
/// `aud` names the resource; `iss` is the trusted issuer; a non-empty
/// subject from `sub` (none, for a client identity named by `client_id`
/// or `azp`); `scope` a string or `scp` a
/// string or array), an accepted token's principal carries the model's
/// subject, client and scopes, and a refusal is a 401. The raw input is
/// signed as is, and its canonical re-serialisation once more.
pub fn jwt_claims(data: &[u8]) {
    static VALIDATOR: OnceLock<JwtValidator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        JwtValidator::builder(&resource())
            .hs256_secret(&SecretString::from(JWT_SECRET))
            .issuer(JWT_ISSUER)
            .no_token_cache()
            .build()
            .unwrap()
    });
    let claims = strict_object(data);
    check_claims(validator, data, claims.as_ref());
    if let Some(claims) = &claims {
        let canonical = serde_json::to_vec(claims).unwrap();
        if canonical != data {
            check_claims(validator, &canonical, Some(claims));
        }
    }
}

fn check_claims(validator: &JwtValidator, payload: &[u8], claims: Option<&Map<String, Value>>) {
    let token = hs256_token(payload);
    let before = unix_now();
    let outcome = runtime().block_on(validator.verify(&token));
    let after = unix_now();
    let verdict = match claims {
        None => Verdict::Refuse("not a JSON object without duplicate members"),
        Some(c) => claims_verdict(c, token.len(), before, after),
    };
    match (outcome, verdict) {
        (Ok(p), Verdict::Accept(expected)) => {
            assert_eq!(p.subject(), expected.subject.as_deref(), "subject");
            assert_eq!(p.client_id(), expected.client_id.as_deref(), "client_id");
            let scopes: BTreeSet<String> = p.scopes().iter().map(str::to_owned).collect();
            assert_eq!(scopes, expected.scopes, "scopes");
            assert_eq!(p.claims(), claims, "claims");
        }
        (Ok(p), Verdict::Refuse(why)) => {
            panic!(
                "accepted ({}) a token that must be refused: {why}",
                p.name()
            )
        }
        (Ok(_), Verdict::Boundary) => {}
        (Err(e), Verdict::Accept(_)) => panic!("refused a valid token: {e}"),
        (Err(e), _) => {
            let status = AuthError::from(e).status();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
}

/// An HS256 token over `payload`, signed with [`JWT_SECRET`].
fn hs256_token(payload: &[u8]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{msg}.{sig}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The JSON object `data` holds, `None` when it is not one or has a
/// duplicate member name at the top level.
fn strict_object(data: &[u8]) -> Option<Map<String, Value>> {
    struct Strict(Map<String, Value>);
    impl<'de> serde::Deserialize<'de> for Strict {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Strict;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Strict, A::Error> {
                    let mut out = Map::new();
                    while let Some((k, v)) = map.next_entry::<String, Value>()? {
                        if out.insert(k, v).is_some() {
                            return Err(serde::de::Error::custom("duplicate"));
                        }
                    }
                    Ok(Strict(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Strict>(data).ok().map(|s| s.0)
}

/// What the model expects of an accepted token.
struct Expected {
    subject: Option<String>,
    client_id: Option<String>,
    scopes: BTreeSet<String>,
}

enum Verdict {
    Accept(Expected),
    Refuse(&'static str),
    /// A time claim within the clock's tick of its limit: either is right.
    Boundary,
}

/// A NumericDate as RFC 7519 allows it and jsonwebtoken reads it: a
/// non-negative number below 2^64, fractions rounded.
fn numeric_date(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    if n.is_i64() {
        return None;
    }
    let f = n.as_f64()?;
    (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.round() as u64)
}

/// Whether an `aud` value names [`RESOURCE`], by a model of RFC 3986
/// §6.2.2–6.2.3 simpler than the crate's: scheme and host in any case,
/// the port 443 written or not. A value the model does not decide (a
/// percent-encoding or a dot-segment) is `Maybe`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Names {
    No,
    Maybe,
    Yes,
}

fn names_resource(aud: &str) -> Names {
    if aud == RESOURCE {
        return Names::Yes;
    }
    if !aud.bytes().all(|b| b.is_ascii_graphic()) {
        return Names::No;
    }
    let Some((scheme, rest)) = aud.split_once("://") else {
        return Names::No;
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return Names::No;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if aud.contains('%') || tail.contains("/.") {
        return Names::Maybe;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let port_ok = match port {
        None | Some("") => true,
        Some(p) => p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>() == Ok(443),
    };
    if port_ok && host.eq_ignore_ascii_case("mcp.example.com") && tail == "/mcp" {
        Names::Yes
    } else {
        Names::No
    }
}

/// The model's verdict on `claims` in a token of `len` bytes verified
/// between `before` and `after` (Unix seconds).
fn claims_verdict(claims: &Map<String, Value>, len: usize, before: u64, after: u64) -> Verdict {
    use Verdict::{Accept, Boundary, Refuse};
    if len > JWT_MAX_BYTES {
        return Refuse("too large");
    }
    let mut boundary = false;
    // exp: required; expired when exp < now - leeway.
    let Some(exp) = claims.get("exp").and_then(numeric_date) else {
        return Refuse("exp missing or not a NumericDate");
    };
    if exp < before.saturating_sub(JWT_LEEWAY) {
        return Refuse("expired");
    }
    // Past what the clock holds (i64 seconds on Unix).
    if exp > i64::MAX as u64 {
        return Refuse("exp out of range");
    }
    boundary |= exp < after.saturating_sub(JWT_LEEWAY);
    // nbf: optional; not yet valid when nbf > now + leeway.
    if let Some(v) = claims.get("nbf") {
        let Some(nbf) = numeric_date(v) else {
            return Refuse("nbf not a NumericDate");
        };
        if nbf > after + JWT_LEEWAY {
            return Refuse("not yet valid");
        }
        boundary |= nbf > before + JWT_LEEWAY;
    }
    // iat: optional; issued in the future when iat > now + leeway. The
    // validator drops the fraction.
    if let Some(v) = claims.get("iat") {
        let iat = match v.as_number() {
            Some(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            }),
            None => None,
        };
        let Some(iat) = iat else {
            return Refuse("iat not a number");
        };
        if iat > after + JWT_LEEWAY {
            return Refuse("issued in the future");
        }
        boundary |= iat > before + JWT_LEEWAY;
    }
    let audience = match claims.get("aud") {
        Some(Value::String(a)) => names_resource(a),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(names_resource)
            .max()
            .unwrap_or(Names::No),
        _ => Names::No,
    };
    match audience {
        Names::No => return Refuse("audience"),
        Names::Maybe => boundary = true,
        Names::Yes => {}
    }
    if claims.get("iss").and_then(Value::as_str) != Some(JWT_ISSUER) {
        return Refuse("issuer");
    }
    let text = |name: &str| match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    // client_id, else azp (read only when client_id is absent).
    let client_id = match text("client_id") {
        Err(()) => return Refuse("client_id not a string"),
        Ok(Some(c)) => Some(c),
        Ok(None) => match text("azp") {
            Err(()) => return Refuse("azp not a string"),
            Ok(a) => a,
        },
    };
    // sub names a subject; without it the token is its client's own (a
    // client identity: no subject).
    let subject = match text("sub") {
        Err(()) => return Refuse("sub not a string"),
        Ok(Some(s)) if s.is_empty() => return Refuse("no subject"),
        Ok(Some(s)) => Some(s),
        Ok(None) if client_id.as_deref().is_none_or(str::is_empty) => return Refuse("no subject"),
        Ok(None) => None,
    };
    // cnf: an object whose only member this stack checks is jkt (a
    // non-empty string of at most 128 bytes); any other binding refuses.
    match claims.get("cnf") {
        None | Some(Value::Null) => {}
        Some(Value::Object(cnf)) => {
            if cnf.keys().any(|k| k != "jkt") {
                return Refuse("cnf names a method not checked");
            }
            match cnf.get("jkt") {
                None => {}
                Some(Value::String(j)) if !j.is_empty() && j.len() <= 128 => {}
                Some(_) => return Refuse("cnf.jkt malformed"),
            }
        }
        Some(_) => return Refuse("cnf not an object"),
    }
    let words =
        |s: &str| -> BTreeSet<String> { s.split_ascii_whitespace().map(str::to_owned).collect() };
    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => words(s),
        (Some(_), _) => return Refuse("scope not a string"),
        (None, Some(Value::String(s))) => words(s),
        (None, Some(Value::Array(items))) => {
            let mut all = BTreeSet::new();
            for item in items {
                let Some(s) = item.as_str() else {
                    return Refuse("scp not strings");
                };
                all.extend(words(s));
            }
            all
        }
        (None, Some(_)) => return Refuse("scp not a string or array"),
        (None, None) => BTreeSet::new(),
    };
    if boundary {
        return Boundary;
    }
    Accept(Expected {
        subject,
        client_id,
        scopes,
    })
}

/// The access token the DPoP target's proofs are presented with.
pub const DPOP_TOKEN: &str = "fuzz-access-token";
/// The DPoP target's clock (Unix seconds).
pub const DPOP_NOW: u64 = 1_800_000_000;

/// DPoP proofs (RFC 9449 §4.3) through `ProofValidator`, two ways.
///
/// Input starting with `{`: the payload of a proof the target signs with
/// its own ES256 key and a correct header, so every claims check runs; a
/// refusal is then always a claims kind (never the header's or the
/// signature's; too large only past the 8 KiB bound), and an accepted proof's claims have `htm` `POST`, the
/// token's `ath`, a `jti` of 1 to 256 bytes and `iat` within ±300 s.
///
/// Any other input: the raw `DPoP` header value. An accepted proof (the
/// input may sign with a key of its own: that is DPoP) has the RFC 7638
/// thumbprint jsonwebtoken computes for the header's `jwk`.
///
/// Both ways: no panic; a refusal is a 401 with an RFC 9449 error code;
/// an accepted proof is refused as `Replayed` the second time.
pub fn dpop_proof(data: &[u8]) {
    let validator = ProofValidator::builder()
        .replay_cache(MemoryReplayCache::with_capacity(4))
        .build()
        .unwrap();
    if data.first() == Some(&b'{') {
        let proof = es256_proof(data);
        match dpop_run(&validator, &proof) {
            Ok(_) => {
                let claims: Map<String, Value> = serde_json::from_slice(data).unwrap();
                let str_of = |k: &str| claims.get(k).and_then(Value::as_str).unwrap();
                assert_eq!(str_of("htm"), "POST");
                let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
                    <sha2::Sha256 as sha2::Digest>::digest(DPOP_TOKEN.as_bytes()),
                );
                assert_eq!(str_of("ath"), ath);
                assert!((1..=256).contains(&str_of("jti").len()));
                let iat = claims["iat"].as_f64().unwrap();
                assert!((DPOP_NOW as f64 - 301.0..=DPOP_NOW as f64 + 301.0).contains(&iat));
            }
            Err(ProofErrorKind::TooLarge) => {
                assert!(proof.len() > tower_mcp_auth::dpop::DEFAULT_MAX_PROOF_BYTES)
            }
            Err(kind) => assert!(
                !matches!(
                    kind,
                    ProofErrorKind::Type
                        | ProofErrorKind::Algorithm
                        | ProofErrorKind::MissingJwk
                        | ProofErrorKind::InvalidJwk
                        | ProofErrorKind::PrivateJwk
                        | ProofErrorKind::Signature
                        | ProofErrorKind::Critical
                ),
                "a well-signed proof refused for {kind:?}"
            ),
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(verified) = dpop_run(&validator, text) {
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(header["jwk"].clone()).unwrap();
        let thumb = jwk
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .unwrap();
        assert_eq!(verified, thumb, "RFC 7638 thumbprints disagree");
    }
}

/// One validation, then (if accepted) the same proof again, which must be
/// a replay. Returns the thumbprint or the refusal's kind.
fn dpop_run(validator: &ProofValidator, proof: &str) -> Result<String, ProofErrorKind> {
    let Ok(value) = HeaderValue::from_str(proof) else {
        return Err(ProofErrorKind::Malformed);
    };
    let method = http::Method::POST;
    let once = |v: &HeaderValue| {
        // Bound to the proof's own key: the binding is not what is fuzzed.
        let jkt = validator
            .verify_at(std::iter::once(v), &method, RESOURCE, DPOP_TOKEN, DPOP_NOW)
            .map(|p| p.jkt().to_owned());
        runtime().block_on(validator.validate_at(
            std::iter::once(v),
            &method,
            RESOURCE,
            DPOP_TOKEN,
            Binding::new(jkt.as_deref().ok(), "fuzz"),
            DPOP_NOW,
        ))
    };
    match once(&value) {
        Ok(p) => {
            let again = once(&value).unwrap_err();
            assert_eq!(again.kind(), ProofErrorKind::Replayed);
            Ok(p.jkt().to_owned())
        }
        Err(e) => {
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED, "{e}");
            assert!(e.error_code().is_some());
            Err(e.kind())
        }
    }
}

/// A DPoP proof over `claims` (as given) signed by the fuzz ES256 key.
fn es256_proof(claims: &[u8]) -> String {
    static KEY: OnceLock<(jsonwebtoken::EncodingKey, String)> = OnceLock::new();
    let (key, header) = KEY.get_or_init(|| {
        tower_mcp_auth::jwt::install_crypto_provider();
        let key = jsonwebtoken::EncodingKey::from_ec_pem(include_bytes!(
            "../tests/fixtures/ec256_private.pem"
        ))
        .unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256)
            .unwrap();
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&header).unwrap());
        (key, header)
    });
    let input = format!(
        "{header}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
    );
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), key, jsonwebtoken::Algorithm::ES256).unwrap();
    format!("{input}.{sig}")
}
