//! Telling the upstream who is calling, without passing the caller's
//! credential on: a short-lived JWT the gateway signs for each request
//! (off unless `UPSTREAM_IDENTITY_SECRET` is set).
//!
//! The token goes to the upstream as `Authorization: Bearer <jwt>`, so an
//! MCP server with bearer-token support verifies it as it would any access
//! token (FastMCP's `JWTVerifier` with `algorithm="HS256"`, the secret as
//! its key, `issuer` and `audience` as below) and its tools read the
//! caller from it. HS256, claims:
//!
//! | claim | value |
//! | --- | --- |
//! | `iss` | the gateway's `PUBLIC_URL` |
//! | `aud` | `UPSTREAM_IDENTITY_AUDIENCE`, default `UPSTREAM_URL` |
//! | `sub` | the caller: a token's subject, an API key's name, a client identity's client id (as RFC 9068 does) |
//! | `scope` | the caller's scopes, space separated |
//! | `client_id` | the caller's client id, when it has one |
//! | `auth_scheme` | how the caller authenticated: `api_key`, `jwt`, `introspection`, … |
//! | `caller_iss` | who issued the caller's credential, when known |
//! | `iat`, `exp`, `jti` | issued now, valid `UPSTREAM_IDENTITY_TTL_SECS` (default 60), a random id |
//!
//! A call the policy lets through without a credential carries no token.
//!
//! # Risks
//!
//! - The secret is shared: whoever holds it (the upstream, its logs, its
//!   host) can mint any identity for any upstream that trusts the same
//!   secret. Give every upstream its own secret (at least 32 bytes), and
//!   an audience the upstream checks.
//! - The token is a bearer credential for its lifetime: an upstream that
//!   leaks it (logs, a downstream call) lets its holder act as the caller
//!   towards that upstream until `exp`. Keep the lifetime short; the
//!   upstream must never forward it.
//! - The upstream trusts the gateway's decision: the token says who the
//!   gateway let through, not what the caller may do upstream; scopes are
//!   the caller's, not re-checked by the gateway for the upstream.
//! - Nothing stops a caller reaching the upstream directly: run it where
//!   only the gateway can reach it, or let it require this token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use tower_mcp_auth::Principal;

/// The shortest secret accepted (256 bits).
pub const MIN_SECRET_LEN: usize = 32;

/// The default lifetime of an identity token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// What the identity tokens are made from (`UPSTREAM_IDENTITY_*`). Its
/// `Debug` redacts the secret.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// The HS256 secret (`UPSTREAM_IDENTITY_SECRET`).
    pub secret: SecretString,
    /// The `aud` claim (`UPSTREAM_IDENTITY_AUDIENCE`; `None`: the
    /// upstream's URL).
    pub audience: Option<String>,
    /// The tokens' lifetime (`UPSTREAM_IDENTITY_TTL_SECS`).
    pub ttl: Duration,
}

/// Signs one identity token per request.
pub(crate) struct Signer {
    key: EncodingKey,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for tokens from `issuer` (the gateway's public URL) to
    /// `upstream` (its URL, the default audience).
    pub(crate) fn new(config: &IdentityConfig, issuer: &str, upstream: &str) -> Self {
        tower_mcp_auth::jwt::install_crypto_provider();
        Self {
            key: EncodingKey::from_secret(config.secret.expose_secret().as_bytes()),
            issuer: issuer.to_owned(),
            audience: config
                .audience
                .clone()
                .unwrap_or_else(|| upstream.to_owned()),
            ttl: config.ttl,
        }
    }

    /// `Bearer <jwt>` for `caller`, marked sensitive; `None` if signing
    /// failed (logged; the request then carries no identity, and the
    /// upstream that requires one refuses it).
    pub(crate) fn authorization(&self, caller: &Principal) -> Option<HeaderValue> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("sub".into(), json!(caller.name()));
        let scopes: Vec<&str> = caller.scopes().iter().collect();
        claims.insert("scope".into(), json!(scopes.join(" ")));
        if let Some(client) = caller.client_id() {
            claims.insert("client_id".into(), json!(client));
        }
        claims.insert("auth_scheme".into(), json!(caller.scheme().as_str()));
        if let Some(iss) = caller.issuer() {
            claims.insert("caller_iss".into(), json!(iss));
        }
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + self.ttl.as_secs().max(1)));
        claims.insert("jti".into(), json!(random_id()));
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Value::Object(claims),
            &self.key,
        );
        match token.map(|t| HeaderValue::try_from(format!("Bearer {t}"))) {
            Ok(Ok(mut value)) => {
                value.set_sensitive(true);
                Some(value)
            }
            _ => {
                tracing::error!(target: "mcp_auth_gateway", "could not sign the upstream identity token");
                None
            }
        }
    }
}

/// 128 random bits, base64url.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
