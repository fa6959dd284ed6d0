//! Tokens and a validator for the tests of every layer that reads JWTs.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header as JwtHeader};
use secrecy::SecretString;
use serde_json::{json, Value};

use super::JwtValidator;
use crate::metadata::ProtectedResource;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub(crate) const SECRET: &str = "unit-test-secret-unit-test-secret-0123";
pub(crate) const AUD: &str = "https://mcp.example.com/mcp";

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn hs256(claims: &Value) -> String {
    super::install_crypto_provider();
    jsonwebtoken::encode(
        &JwtHeader::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Signs raw header and payload JSON text with the HS256 secret.
pub(crate) fn hs256_raw(header: &str, payload: &str) -> String {
    super::install_crypto_provider();
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{msg}.{sig}")
}

pub(crate) fn good_claims() -> Value {
    json!({"sub": "user-1", "aud": AUD, "exp": now() + 600, "iat": now(),
           "scope": "read:data write:data", "client_id": "cli"})
}

pub(crate) fn validator() -> JwtValidator {
    let resource = ProtectedResource::builder(AUD).build().unwrap();
    JwtValidator::builder(&resource)
        .hs256_secret(&SecretString::from(SECRET))
        .build()
        .unwrap()
}
