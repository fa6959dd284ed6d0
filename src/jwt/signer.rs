//! [`Hs256Signer`]: mints the HS256 tokens a [`JwtValidator`] built with
//! the same secret accepts, for tests and first-party login services.
//!
//! [`JwtValidator`]: super::JwtValidator

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::config::ConfigError;

/// How long a token minted by [`Hs256Signer`] lives unless
/// [`lifetime`](Hs256TokenBuilder::lifetime) says otherwise: one hour.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The claims each have their own method on [`Hs256TokenBuilder`]; giving
/// one of them to [`claim`](Hs256TokenBuilder::claim) is refused.
const NAMED_CLAIMS: [(&str, &str); 7] = [
    ("sub", "subject"),
    ("aud", "the audience given to token()"),
    ("iss", "issuer"),
    ("exp", "lifetime"),
    ("iat", "issued_at"),
    ("scope", "scopes"),
    ("client_id", "client_id"),
];

/// Mints HS256 access tokens signed with a shared secret: the tokens a
/// [`JwtValidator`](super::JwtValidator) built with
/// [`hs256_secret`](super::JwtValidatorBuilder::hs256_secret) and **the same
/// secret** accepts.
///
/// It is for your own tests, and for a first-party login service that
/// shares `JWT_SECRET` with the MCP server (the `JWT_SECRET` deployment of
/// the example server). It is **not an authorization server**: it checks no
/// password, keeps no client registry, issues no refresh token and
/// publishes no metadata; whoever holds the secret can mint any token, so
/// the secret is as sensitive as every account it can speak for. Third-party
/// MCP clients should get their tokens from a real OAuth authorization
/// server (validated with
/// [`jwks_from_issuer`](super::JwtValidatorBuilder::jwks_from_issuer)).
///
/// Each token carries `aud` (the protected resource's identifier, as the
/// validator requires), `iat` and `exp`, and what the builder adds: `sub`,
/// `client_id`, `scope` (space separated), `iss`, and any other claim.
///
/// ```
/// use std::time::Duration;
/// use secrecy::SecretString;
/// use tower_mcp_auth::jwt::{Hs256Signer, JwtValidator};
/// use tower_mcp_auth::ProtectedResource;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = SecretString::from("0123456789abcdef0123456789abcdef"); // >= 32 bytes
/// let resource = ProtectedResource::builder("https://mcp.example.com/mcp").build()?;
///
/// let token = Hs256Signer::new(&secret)?
///     .token(resource.resource())          // aud: the resource identifier
///     .subject("alice")
///     .client_id("team-notes-login")
///     .scopes(["notes:read", "notes:write"])
///     .lifetime(Duration::from_secs(600))
///     .claim("team", "blue")
///     .sign()?;
///
/// // The validator of the MCP server, with the same secret, accepts it.
/// let validator = JwtValidator::builder(&resource).hs256_secret(&secret).build()?;
/// let alice = validator.verify(&token).await?;
/// assert_eq!(alice.subject(), Some("alice"));
/// assert!(alice.scopes().contains("notes:write"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Hs256Signer {
    key: Arc<EncodingKey>,
}

impl Hs256Signer {
    /// A signer for `secret`: give the validator the same one.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the secret is shorter than 32 bytes
    /// (RFC 7518 §3.2), the rule the validator applies to it too. The error
    /// never contains the secret.
    pub fn new(secret: &SecretString) -> Result<Self, ConfigError> {
        super::install_crypto_provider();
        let bytes = super::keys::hmac_secret(Algorithm::HS256, secret)?;
        Ok(Self {
            key: Arc::new(EncodingKey::from_secret(bytes)),
        })
    }

    /// A token for the resource `audience` (its `aud`: the identifier the
    /// validator checks, normally
    /// [`ProtectedResource::resource`](crate::ProtectedResource::resource)),
    /// issued now, living [`DEFAULT_TOKEN_LIFETIME`].
    pub fn token(&self, audience: impl Into<String>) -> Hs256TokenBuilder<'_> {
        let mut claims = Map::new();
        claims.insert("aud".into(), Value::String(audience.into()));
        Hs256TokenBuilder {
            signer: self,
            claims,
            lifetime: DEFAULT_TOKEN_LIFETIME,
            issued_at: None,
            at_jwt: false,
            refused: None,
        }
    }
}

impl fmt::Debug for Hs256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hs256Signer")
            .field("key", &"[redacted]")
            .finish()
    }
}

/// One token's claims, from [`Hs256Signer::token`]; [`sign`](Self::sign)
/// makes the compact token.
#[must_use]
#[derive(Debug)]
pub struct Hs256TokenBuilder<'a> {
    signer: &'a Hs256Signer,
    claims: Map<String, Value>,
    lifetime: Duration,
    issued_at: Option<SystemTime>,
    at_jwt: bool,
    refused: Option<String>,
}

impl Hs256TokenBuilder<'_> {
    /// `sub`: the user the token speaks for (the principal's subject).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.claims
            .insert("sub".into(), Value::String(subject.into()));
        self
    }

    /// `client_id`: the application the user signed in through (without a
    /// `sub`, the principal's subject too: a client acting for itself).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.claims
            .insert("client_id".into(), Value::String(client_id.into()));
        self
    }

    /// `scope`: the scopes granted, written space separated (RFC 9068
    /// §2.2.3). Replaces earlier ones.
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.claims
            .insert("scope".into(), Value::String(scopes.join(" ")));
        self
    }

    /// `iss`: needed when the validator trusts named issuers
    /// ([`issuer`](super::JwtValidatorBuilder::issuer)).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.claims
            .insert("iss".into(), Value::String(issuer.into()));
        self
    }

    /// How long the token lives after it is issued (`exp` - `iat`); default
    /// [`DEFAULT_TOKEN_LIFETIME`]. Keep it short for a login service.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// When the token is issued (`iat`; default: now). With a time in the
    /// past, a test gets an expired token without waiting.
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        self.issued_at = Some(at);
        self
    }

    /// The header `typ: at+jwt` (RFC 9068), for a validator with
    /// [`require_at_jwt_type`](super::JwtValidatorBuilder::require_at_jwt_type).
    pub fn at_jwt_type(mut self) -> Self {
        self.at_jwt = true;
        self
    }

    /// Any other claim (`user_id`, `jti`, `cnf`, …). The claims with their
    /// own method (`sub`, `aud`, `iss`, `exp`, `iat`, `scope`, `client_id`)
    /// are refused here: [`sign`](Self::sign) says which method to use.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        if let Some((_, method)) = NAMED_CLAIMS.iter().find(|(claim, _)| *claim == name) {
            self.refused.get_or_insert_with(|| {
                format!("the claim `{name}` is set with Hs256TokenBuilder::{method}, not claim()")
            });
        } else {
            self.claims.insert(name, value.into());
        }
        self
    }

    /// The compact token (`header.payload.signature`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a claim given to [`claim`](Self::claim)
    /// that has its own method, an issue time before 1970 or an expiry past
    /// what a JSON number holds exactly.
    pub fn sign(self) -> Result<String, ConfigError> {
        if let Some(why) = self.refused {
            return Err(ConfigError::Invalid(why));
        }
        let issued_at = self.issued_at.unwrap_or_else(SystemTime::now);
        let iat = issued_at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ConfigError::Invalid("the token's issue time is before 1970".into()))?
            .as_secs();
        // Beyond 2^53 a JSON number loses precision in many parsers.
        let exp = iat
            .checked_add(self.lifetime.as_secs())
            .filter(|exp| *exp < 1 << 53)
            .ok_or_else(|| ConfigError::Invalid("the token's lifetime is too long".into()))?;
        let mut claims = self.claims;
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), exp.into());
        let mut header = Header::new(Algorithm::HS256);
        if self.at_jwt {
            header.typ = Some("at+jwt".into());
        }
        jsonwebtoken::encode(&header, &claims, &self.signer.key)
            .map_err(|e| ConfigError::Invalid(format!("the token could not be signed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{jwt::JwtValidator, ProtectedResource};

    const SECRET: &str = "test-secret-of-at-least-32-bytes!!";
    const URL: &str = "https://mcp.example.com/mcp";

    fn validator(secret: &str) -> JwtValidator {
        let resource = ProtectedResource::builder(URL).build().unwrap();
        JwtValidator::builder(&resource)
            .hs256_secret(&SecretString::from(secret))
            .build()
            .unwrap()
    }

    fn signer() -> Hs256Signer {
        Hs256Signer::new(&SecretString::from(SECRET)).unwrap()
    }

    #[tokio::test]
    async fn the_validator_with_the_same_secret_accepts_it_and_another_refuses_it() {
        let token = signer()
            .token(URL)
            .subject("alice")
            .client_id("login")
            .scopes(["read:data", "write:data"])
            .claim("user_id", "u-1")
            .sign()
            .unwrap();
        let alice = validator(SECRET).verify(&token).await.unwrap();
        assert_eq!(alice.subject(), Some("alice"));
        assert_eq!(alice.client_id(), Some("login"));
        assert!(alice.scopes().contains("read:data") && alice.scopes().contains("write:data"));
        assert_eq!(alice.claims().unwrap()["user_id"], "u-1");

        let other = validator("another-secret-of-at-least-32-bytes");
        assert!(other.verify(&token).await.is_err());
    }

    #[tokio::test]
    async fn another_audience_and_an_expired_token_are_refused() {
        let elsewhere = signer()
            .token("https://other.example.com/mcp")
            .subject("alice")
            .sign()
            .unwrap();
        assert!(validator(SECRET).verify(&elsewhere).await.is_err());

        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        let expired = signer()
            .token(URL)
            .subject("alice")
            .issued_at(two_hours_ago)
            .sign()
            .unwrap();
        assert!(validator(SECRET).verify(&expired).await.is_err());
    }

    #[test]
    fn the_claims_and_header_are_what_was_asked() {
        let at = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = signer()
            .token(URL)
            .issuer("https://login.example.com")
            .lifetime(Duration::from_secs(60))
            .issued_at(at)
            .at_jwt_type()
            .sign()
            .unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_audience(&[URL]);
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
            &validation,
        )
        .unwrap();
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(
            data.claims,
            serde_json::json!({
                "aud": URL, "iss": "https://login.example.com",
                "iat": 1_000_000, "exp": 1_000_060,
            })
        );
    }

    #[test]
    fn a_short_secret_and_a_named_claim_through_claim_are_refused() {
        let short = Hs256Signer::new(&SecretString::from("too short")).unwrap_err();
        assert!(short.to_string().contains("32 bytes"), "{short}");
        assert!(!short.to_string().contains("too short"));

        let err = signer().token(URL).claim("exp", 1).sign().unwrap_err();
        assert!(err.to_string().contains("lifetime"), "{err}");
        let err = signer().token(URL).claim("aud", "x").sign().unwrap_err();
        assert!(err.to_string().contains("token()"), "{err}");

        let err = signer()
            .token(URL)
            .lifetime(Duration::MAX)
            .sign()
            .unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert!(!format!("{:?}", signer()).contains(SECRET));
    }
}
