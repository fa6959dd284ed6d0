//! [`Settings`]: the credentials and limits of a stack, from code or from
//! the environment.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use crate::{
    api_key::{ApiKey, ApiKeys},
    optional_secret_from_env, ConfigError,
};

#[cfg(feature = "introspection")]
use crate::introspection::Introspector;

/// The default per-principal quota: 100 calls a minute.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 100;

/// The name of the API key generated in demo mode.
pub const DEMO_KEY_NAME: &str = "demo";

/// What a stack accepts and how much: the part of an
/// [`McpAuthBuilder`](super::McpAuthBuilder) the environment can give
/// ([`from_env`](Self::from_env)). Its `Debug` redacts every secret,
/// `redis_url` included (it may carry a password).
///
/// | variable | field |
/// | --- | --- |
/// | `PUBLIC_URL` | [`public_url`](Self::public_url): the resource identifier, the URL clients use |
/// | `API_KEY` | [`api_keys`](Self::api_keys): comma separated, each `key` or `name:key[:scope scope …]`; unset: demo mode |
/// | `JWT_SECRET` | [`jwt_secret`](Self::jwt_secret): HS256 secret of your own tokens (`aud` = the public URL, `exp` required); generated in demo mode |
/// | `OAUTH_ISSUER`, `OAUTH_JWKS_URL`, `OAUTH_AUDIENCE` | an authorization server's JWT access tokens (`iss` must match; keys discovered unless the JWKS URL is given; `aud` the public URL unless given) |
/// | `OAUTH_INTROSPECTION_URL`, `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET` | opaque tokens by RFC 7662 introspection |
/// | `RATE_LIMIT_PER_MINUTE` | calls per minute per principal where the policy names none (default 100) |
/// | `REDIS_URL` | Redis shared by replicas, for the rate limiter and the DPoP replay cache (feature `redis`) |
/// | `DPOP_REQUIRED` | `1`: refuse access tokens that are not DPoP-bound |
/// | `DPOP_NONCES`, `DPOP_NONCE_SECRET` | `1`: DPoP proofs carry a server nonce, made with the secret (at least 32 bytes, the same on every replica; default generated) |
/// | `DPOP_REPLAY_PER_CALLER` | the most live DPoP proofs one caller holds in the replay cache |
/// | `POLICY_FILE` | the rules as data (TOML with feature `toml`, or JSON), re-read on `SIGHUP` |
///
/// **Demo mode.** When `API_KEY` is unset, [`from_env`](Self::from_env)
/// generates a random key (and, when `JWT_SECRET` is unset too, a random
/// HS256 secret), valid until exit and known only to this process: print
/// them ([`generated_key`](Self::generated_key),
/// [`generated_jwt_secret`](Self::generated_jwt_secret)) to try the
/// server. Set `API_KEY` in production.
#[derive(Clone)]
#[non_exhaustive]
pub struct Settings {
    /// The resource identifier: the MCP endpoint as clients reach it.
    pub public_url: String,
    /// The accepted API keys.
    pub api_keys: ApiKeys,
    /// The key generated in demo mode, to print.
    pub generated_key: Option<SecretString>,
    /// HS256 secret of locally issued tokens.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub jwt_secret: Option<SecretString>,
    /// Whether [`jwt_secret`](Self::jwt_secret) was generated (demo mode).
    pub generated_jwt_secret: bool,
    /// An authorization server's issuer: listed in the metadata, and its
    /// JWT access tokens accepted (feature `jwks`).
    pub oauth_issuer: Option<String>,
    /// Its JWKS (default: discovered from the issuer).
    #[cfg(feature = "jwks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    pub oauth_jwks_url: Option<String>,
    /// An audience its tokens carry besides the public URL.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub oauth_audience: Option<String>,
    /// Opaque tokens by RFC 7662 introspection.
    #[cfg(feature = "introspection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
    pub introspector: Option<Introspector>,
    /// Calls per minute per principal where the policy names none.
    pub rate_limit_per_minute: u32,
    /// Redis shared by replicas (feature `redis`).
    pub redis_url: Option<String>,
    /// Refuse access tokens that are not DPoP-bound.
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub dpop_required: bool,
    /// The key of DPoP server nonces, when they are on.
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub dpop_nonce_secret: Option<SecretString>,
    /// The most live DPoP proofs of one caller in the replay cache.
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub dpop_replay_per_caller: usize,
    /// The rules as data, re-read on `SIGHUP`.
    pub policy_file: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Settings");
        d.field("public_url", &self.public_url)
            .field("api_keys", &self.api_keys)
            .field("generated_key", &self.generated_key);
        #[cfg(feature = "jwt")]
        d.field("jwt_secret", &self.jwt_secret);
        d.field("generated_jwt_secret", &self.generated_jwt_secret)
            .field("oauth_issuer", &self.oauth_issuer);
        #[cfg(feature = "jwks")]
        d.field("oauth_jwks_url", &self.oauth_jwks_url);
        #[cfg(feature = "jwt")]
        d.field("oauth_audience", &self.oauth_audience);
        #[cfg(feature = "introspection")]
        d.field("introspector", &self.introspector);
        d.field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[REDACTED]"));
        #[cfg(feature = "dpop")]
        d.field("dpop_required", &self.dpop_required)
            .field("dpop_nonce_secret", &self.dpop_nonce_secret)
            .field("dpop_replay_per_caller", &self.dpop_replay_per_caller);
        d.field("policy_file", &self.policy_file).finish()
    }
}

impl Settings {
    /// Settings for `public_url` that accept nothing yet, with the default
    /// quota.
    #[must_use]
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into(),
            api_keys: ApiKeys::new(),
            generated_key: None,
            #[cfg(feature = "jwt")]
            jwt_secret: None,
            generated_jwt_secret: false,
            oauth_issuer: None,
            #[cfg(feature = "jwks")]
            oauth_jwks_url: None,
            #[cfg(feature = "jwt")]
            oauth_audience: None,
            #[cfg(feature = "introspection")]
            introspector: None,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            redis_url: None,
            #[cfg(feature = "dpop")]
            dpop_required: false,
            #[cfg(feature = "dpop")]
            dpop_nonce_secret: None,
            #[cfg(feature = "dpop")]
            dpop_replay_per_caller: crate::dpop::DEFAULT_REPLAY_PER_PRINCIPAL,
            policy_file: None,
        }
    }

    /// Reads the variables in the table above; `PUBLIC_URL` defaults to
    /// `default_public_url`. Unset (or empty) optional variables are off.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable that is wrong (never its
    /// value), or the feature a variable needs that this build lacks.
    pub fn from_env(default_public_url: &str) -> Result<Self, ConfigError> {
        let public_url = match env_text("PUBLIC_URL")? {
            Some(url) => url,
            None if std::env::var_os("PUBLIC_URL").is_some() => {
                return Err(ConfigError::EmptyEnv {
                    var: "PUBLIC_URL".into(),
                })
            }
            None => default_public_url.to_owned(),
        };
        // Fail now, naming the variable, rather than when the stack is built.
        crate::ProtectedResource::builder(public_url.as_str())
            .build()
            .map_err(|e| invalid("PUBLIC_URL", e.to_string()))?;
        let mut settings = Self::new(public_url);

        match optional_secret_from_env("API_KEY")? {
            Some(value) => settings.api_keys = ApiKeys::from_list("API_KEY", &value)?,
            None => {
                let key = ApiKeys::generate();
                settings.api_keys =
                    ApiKeys::new().try_with(ApiKey::new(DEMO_KEY_NAME, key.expose_secret()))?;
                settings.generated_key = Some(key);
            }
        }
        let jwt_secret = optional_secret_from_env("JWT_SECRET")?;
        #[cfg(feature = "jwt")]
        {
            settings.jwt_secret = match jwt_secret {
                Some(secret) => Some(secret),
                None if settings.generated_key.is_some() => {
                    settings.generated_jwt_secret = true;
                    Some(random_secret())
                }
                None => None,
            };
            settings.oauth_audience = env_text("OAUTH_AUDIENCE")?;
        }
        #[cfg(not(feature = "jwt"))]
        if jwt_secret.is_some() {
            return Err(needs("JWT_SECRET", "jwt"));
        }

        settings.oauth_issuer = env_text("OAUTH_ISSUER")?;
        let jwks_url = env_text("OAUTH_JWKS_URL")?;
        if jwks_url.is_some() && settings.oauth_issuer.is_none() {
            return Err(invalid(
                "OAUTH_ISSUER",
                "OAUTH_JWKS_URL needs OAUTH_ISSUER (the `iss` its tokens carry)",
            ));
        }
        #[cfg(feature = "jwks")]
        {
            settings.oauth_jwks_url = jwks_url;
        }
        #[cfg(not(feature = "jwks"))]
        if jwks_url.is_some() {
            return Err(needs("OAUTH_JWKS_URL", "jwks"));
        }

        if std::env::var_os("OAUTH_INTROSPECTION_URL").is_some() {
            #[cfg(feature = "introspection")]
            {
                let introspector = Introspector::from_env()?
                    .audience(settings.public_url.clone())
                    .build()?;
                settings.introspector = Some(introspector);
            }
            #[cfg(not(feature = "introspection"))]
            return Err(needs("OAUTH_INTROSPECTION_URL", "introspection"));
        }

        if let Some(n) = env_text("RATE_LIMIT_PER_MINUTE")? {
            settings.rate_limit_per_minute = match n.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(invalid(
                        "RATE_LIMIT_PER_MINUTE",
                        "expected a whole number of calls per minute, at least 1",
                    ))
                }
            };
        }
        settings.redis_url =
            optional_secret_from_env("REDIS_URL")?.map(|url| url.expose_secret().trim().to_owned());
        settings.policy_file = env_text("POLICY_FILE")?.map(PathBuf::from);
        settings.read_dpop()?;
        Ok(settings)
    }

    /// `DPOP_REQUIRED`, `DPOP_NONCES`, `DPOP_NONCE_SECRET`,
    /// `DPOP_REPLAY_PER_CALLER`.
    fn read_dpop(&mut self) -> Result<(), ConfigError> {
        let required = env_flag(
            "DPOP_REQUIRED",
            "expected 1 (only DPoP-bound tokens) or 0 (bearer tokens too)",
        )?;
        let nonces = env_flag("DPOP_NONCES", "expected 1 (server nonces) or 0 (none)")?;
        let secret = optional_secret_from_env("DPOP_NONCE_SECRET")?;
        if secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < 32)
        {
            return Err(invalid("DPOP_NONCE_SECRET", "expected at least 32 bytes"));
        }
        let per_caller = match env_text("DPOP_REPLAY_PER_CALLER")? {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(invalid(
                        "DPOP_REPLAY_PER_CALLER",
                        "expected a whole number of proofs, at least 1",
                    ))
                }
            },
        };
        #[cfg(feature = "dpop")]
        {
            self.dpop_required = required;
            self.dpop_nonce_secret = match secret {
                Some(secret) => Some(secret),
                None if nonces => Some(random_secret()),
                None => None,
            };
            if let Some(n) = per_caller {
                self.dpop_replay_per_caller = n;
            }
        }
        #[cfg(not(feature = "dpop"))]
        if required || nonces || secret.is_some() || per_caller.is_some() {
            return Err(needs("DPOP_*", "dpop"));
        }
        Ok(())
    }

    /// Whether DPoP is advertised: tokens come from an authorization server
    /// (an issuer, introspection), or DPoP was asked for.
    #[cfg(feature = "dpop")]
    pub(crate) fn dpop_advertised(&self) -> bool {
        #[allow(unused_mut)]
        let mut on = self.oauth_issuer.is_some();
        #[cfg(feature = "introspection")]
        {
            on |= self.introspector.is_some();
        }
        #[cfg(feature = "dpop")]
        {
            on |= self.dpop_required || self.dpop_nonce_secret.is_some();
        }
        on
    }
}

fn invalid(var: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidEnv {
        var: var.into(),
        reason: reason.into(),
    }
}

#[allow(dead_code)]
fn needs(var: &str, feature: &str) -> ConfigError {
    invalid(
        var,
        format!("this build has no support for it; enable the `{feature}` feature"),
    )
}

/// A `0`/`1` variable: false when unset or empty.
fn env_flag(var: &str, expected: &str) -> Result<bool, ConfigError> {
    match env_text(var)?.as_deref() {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(_) => Err(invalid(var, expected)),
    }
}

/// An optional, non-secret variable, trimmed: `None` when unset or empty.
fn env_text(var: &str) -> Result<Option<String>, ConfigError> {
    match std::env::var(var) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(invalid(var, "not valid UTF-8")),
    }
}

/// A random 256-bit secret, base64url (demo mode's HS256 secret, the DPoP
/// nonce key).
#[cfg(any(feature = "jwt", feature = "dpop"))]
fn random_secret() -> SecretString {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
