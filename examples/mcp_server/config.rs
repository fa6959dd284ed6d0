//! The configuration, from the environment ([`Config::from_env`]) or from
//! code ([`Config::new`]):
//!
//! | variable | meaning |
//! | --- | --- |
//! | `BIND` | listen address (default `127.0.0.1:3000`) |
//! | `PUBLIC_URL` | the resource identifier, the URL clients use (default `http://<BIND>/mcp`, with `localhost` for an unspecified address) |
//! | `API_KEY` | the service key(s) for `X-API-Key`, comma separated, each `key` or `name:key[:scope scope …]`; unset: demo mode |
//! | `JWT_SECRET` | HS256 secret for locally issued tokens (`aud` = the resource identifier, `exp` required, `iss` not required); generated in demo mode |
//! | `OAUTH_ISSUER`, `OAUTH_JWKS_URL`, `OAUTH_AUDIENCE` | JWT access tokens from an authorization server (`iss` must match; `aud` defaults to the resource identifier) |
//! | `OAUTH_INTROSPECTION_URL`, `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET` | opaque tokens, RFC 7662 introspection |
//! | `RATE_LIMIT_PER_MINUTE` | per-principal quota (default 100) |
//! | `REDIS_URL` | share rate-limit state between replicas (`--features redis`) |
//! | `MCP_STATELESS` | `1`: rmcp without sessions, plain JSON responses |
//! | `DPOP_REQUIRED` | `1`: refuse access tokens that are not DPoP-bound (RFC 9449); DPoP-bound tokens from `OAUTH_ISSUER` or introspection work without it |
//! | `DPOP_NONCES` | `1`: DPoP proofs must carry a server nonce (401 `use_dpop_nonce` with `DPoP-Nonce`, then the current nonce on every response) |
//! | `DPOP_NONCE_SECRET` | the nonces' key (at least 32 bytes), the same on every replica; default: generated at start |
//! | `DPOP_REPLAY_PER_CALLER` | the most live DPoP proofs one caller holds in the replay cache (default 10 000, about 33 requests a second); over it, that caller gets 429 |
//!
//! DPoP is advertised (protected-resource metadata, `WWW-Authenticate:
//! DPoP`) when tokens come from an authorization server (`OAUTH_ISSUER`,
//! introspection) or a `DPOP_` variable is set; the bearer layers take
//! `Authorization: DPoP` in every configuration, and refuse a DPoP-bound
//! token sent as `Bearer`. With `REDIS_URL` the replicas share the proofs'
//! replay cache.
//! | `POLICY_FILE` | the rules as data (TOML with `--features toml`, or JSON), in place of the built-in `policy()`; re-read on `SIGHUP` (`policy.toml` beside this file reproduces the built-in rules) |
//!
//! `PUBLIC_URL` also drives rmcp's DNS-rebinding protection
//! ([`transport`](super::transport)): only its host (and, for a loopback
//! URL, the other loopback names on the same port) is accepted in `Host`,
//! and only its origin in `Origin`; anything else is refused with 403.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use secrecy::{ExposeSecret, SecretString};
use tower_mcp_auth::{
    api_key::{ApiKey, ApiKeys},
    dpop::{Dpop, Nonces, ProofValidator},
    introspection::Introspector,
    jwt::JwtValidator,
    mcp::{McpPolicy, SharedPolicy},
    optional_secret_from_env,
    rate_limit::{AnyStore, MemoryStore},
    ConfigError, ProtectedResource,
};

/// Where the MCP endpoint is mounted in the router.
pub const MCP_PATH: &str = "/mcp";

/// The default listen address.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    3000,
));

/// The name of the key generated in demo mode.
pub const DEMO_KEY_NAME: &str = "demo";
// ───────────────────────────── configuration ─────────────────────────────

/// The example server's configuration. Its `Debug` redacts secrets,
/// including `REDIS_URL` (which may carry a password).
pub struct Config {
    /// The listen address (`BIND`).
    pub bind: SocketAddr,
    /// The resource identifier: the MCP endpoint as clients reach it
    /// (`PUBLIC_URL`).
    pub public_url: String,
    /// The accepted API keys (`API_KEY`).
    pub api_keys: ApiKeys,
    /// The key generated in demo mode (when `API_KEY` is unset), to print.
    pub generated_key: Option<SecretString>,
    /// rmcp without sessions, plain JSON responses (`MCP_STATELESS=1`).
    pub stateless: bool,
    /// How long a sealed `requestState` opens (5 minutes).
    pub request_state_ttl: std::time::Duration,
    /// The clock `requestState` expiries are read from (`None`: the
    /// system's); tests move time with it.
    pub clock: Option<std::sync::Arc<dyn Fn() -> SystemTime + Send + Sync>>,
    /// HS256 secret for locally issued tokens (`JWT_SECRET`; generated in
    /// demo mode).
    pub jwt_secret: Option<SecretString>,
    /// Whether [`jwt_secret`](Self::jwt_secret) was generated (demo mode),
    /// so the banner prints a sample token.
    pub generated_jwt_secret: bool,
    /// An authorization server's issuer (`OAUTH_ISSUER`): its JWT access
    /// tokens are accepted, and it is listed in the metadata.
    pub oauth_issuer: Option<String>,
    /// Its JWKS (`OAUTH_JWKS_URL`; default: discovered from the issuer).
    pub oauth_jwks_url: Option<String>,
    /// The audience its tokens carry (`OAUTH_AUDIENCE`; default: the
    /// resource identifier).
    pub oauth_audience: Option<String>,
    /// Opaque bearer tokens checked by RFC 7662 introspection
    /// (`OAUTH_INTROSPECTION_URL`, `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET`).
    pub introspector: Option<Introspector>,
    /// Calls per minute per principal (`RATE_LIMIT_PER_MINUTE`, default 100).
    pub rate_limit_per_minute: u32,
    /// Redis shared by replicas for the rate limiter (`REDIS_URL`).
    pub redis_url: Option<String>,
    /// Refuse tokens that are not DPoP-bound (`DPOP_REQUIRED=1`).
    pub dpop_required: bool,
    /// The key of DPoP server nonces, when they are on (`DPOP_NONCES=1`,
    /// `DPOP_NONCE_SECRET`).
    pub dpop_nonce_secret: Option<SecretString>,
    /// The most live DPoP proofs of one caller in the replay cache
    /// (`DPOP_REPLAY_PER_CALLER`, default
    /// [`DEFAULT_REPLAY_PER_PRINCIPAL`](tower_mcp_auth::dpop::DEFAULT_REPLAY_PER_PRINCIPAL)).
    pub dpop_replay_per_caller: usize,
    /// The rules as data (`POLICY_FILE`), in place of the built-in ones.
    pub policy_file: Option<PathBuf>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("api_keys", &self.api_keys)
            .field("generated_key", &self.generated_key)
            .field("stateless", &self.stateless)
            .field("request_state_ttl", &self.request_state_ttl)
            .field("jwt_secret", &self.jwt_secret)
            .field("generated_jwt_secret", &self.generated_jwt_secret)
            .field("oauth_issuer", &self.oauth_issuer)
            .field("oauth_jwks_url", &self.oauth_jwks_url)
            .field("oauth_audience", &self.oauth_audience)
            .field("introspector", &self.introspector)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[REDACTED]"))
            .field("dpop_required", &self.dpop_required)
            .field("dpop_nonce_secret", &self.dpop_nonce_secret)
            .field("dpop_replay_per_caller", &self.dpop_replay_per_caller)
            .field("policy_file", &self.policy_file)
            .finish()
    }
}

/// The default per-principal quota: the seed's 100 calls a minute.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 100;

impl Config {
    /// A configuration for `public_url` accepting `api_keys`, listening on
    /// [`DEFAULT_BIND`], with sessions.
    pub fn new(public_url: impl Into<String>, api_keys: ApiKeys) -> Self {
        Self {
            bind: DEFAULT_BIND,
            public_url: public_url.into(),
            api_keys,
            generated_key: None,
            stateless: false,
            request_state_ttl: tower_mcp_auth::mcp::handles::DEFAULT_STATE_TTL,
            clock: None,
            jwt_secret: None,
            generated_jwt_secret: false,
            oauth_issuer: None,
            oauth_jwks_url: None,
            oauth_audience: None,
            introspector: None,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            redis_url: None,
            dpop_required: false,
            dpop_nonce_secret: None,
            dpop_replay_per_caller: tower_mcp_auth::dpop::DEFAULT_REPLAY_PER_PRINCIPAL,
            policy_file: None,
        }
    }

    /// Reads the variables in the table above.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable that is wrong.
    pub fn from_env() -> Result<Self, ConfigError> {
        let bind = match std::env::var("BIND") {
            Err(std::env::VarError::NotPresent) => DEFAULT_BIND,
            Ok(v) => v.trim().parse().map_err(|_| ConfigError::InvalidEnv {
                var: "BIND".into(),
                reason: "expected an IP address and port such as 127.0.0.1:3000 or [::]:8080"
                    .into(),
            })?,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError::InvalidEnv {
                    var: "BIND".into(),
                    reason: "not valid UTF-8".into(),
                })
            }
        };

        let public_url = match std::env::var("PUBLIC_URL") {
            Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
            Ok(_) => {
                return Err(ConfigError::EmptyEnv {
                    var: "PUBLIC_URL".into(),
                })
            }
            Err(std::env::VarError::NotPresent) => default_public_url(bind),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError::InvalidEnv {
                    var: "PUBLIC_URL".into(),
                    reason: "not valid UTF-8".into(),
                })
            }
        };
        // Fail now, naming the variable, rather than when the app is built.
        build_resource(&public_url, None, None, None).map_err(|e| ConfigError::InvalidEnv {
            var: "PUBLIC_URL".into(),
            reason: e.to_string(),
        })?;

        let (api_keys, generated_key) = match optional_secret_from_env("API_KEY")? {
            Some(value) => (ApiKeys::from_list("API_KEY", &value)?, None),
            None => {
                let key = ApiKeys::generate();
                let keys =
                    ApiKeys::new().try_with(ApiKey::new(DEMO_KEY_NAME, key.expose_secret()))?;
                (keys, Some(key))
            }
        };

        let stateless = env_flag("MCP_STATELESS", "expected 1 (stateless) or 0 (sessions)")?;
        let dpop_required = env_flag(
            "DPOP_REQUIRED",
            "expected 1 (only DPoP-bound tokens) or 0 (bearer tokens too)",
        )?;
        let dpop_nonce_secret = match optional_secret_from_env("DPOP_NONCE_SECRET")? {
            Some(secret) if secret.expose_secret().len() < 32 => {
                return Err(ConfigError::InvalidEnv {
                    var: "DPOP_NONCE_SECRET".into(),
                    reason: "expected at least 32 bytes".into(),
                })
            }
            Some(secret) => Some(secret),
            None if env_flag("DPOP_NONCES", "expected 1 (server nonces) or 0 (none)")? => {
                Some(demo_jwt_secret())
            }
            None => None,
        };

        let (jwt_secret, generated_jwt_secret) = match optional_secret_from_env("JWT_SECRET")? {
            Some(secret) => (Some(secret), false),
            None if generated_key.is_some() => (Some(demo_jwt_secret()), true),
            None => (None, false),
        };
        let oauth_issuer = env_opt("OAUTH_ISSUER")?;
        let oauth_jwks_url = env_opt("OAUTH_JWKS_URL")?;
        let oauth_audience = env_opt("OAUTH_AUDIENCE")?;
        if oauth_jwks_url.is_some() && oauth_issuer.is_none() {
            return Err(ConfigError::InvalidEnv {
                var: "OAUTH_ISSUER".into(),
                reason: "OAUTH_JWKS_URL needs OAUTH_ISSUER (the `iss` its tokens carry)".into(),
            });
        }

        let introspector = if std::env::var_os("OAUTH_INTROSPECTION_URL").is_some() {
            Some(
                Introspector::from_env()?
                    .audience(public_url.clone())
                    .build()?,
            )
        } else {
            None
        };

        let rate_limit_per_minute = match std::env::var("RATE_LIMIT_PER_MINUTE") {
            Err(std::env::VarError::NotPresent) => DEFAULT_RATE_LIMIT_PER_MINUTE,
            Ok(v) => match v.trim().parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError::InvalidEnv {
                        var: "RATE_LIMIT_PER_MINUTE".into(),
                        reason: "expected a whole number of calls per minute, at least 1".into(),
                    })
                }
            },
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError::InvalidEnv {
                    var: "RATE_LIMIT_PER_MINUTE".into(),
                    reason: "not valid UTF-8".into(),
                })
            }
        };
        let dpop_replay_per_caller = match env_opt("DPOP_REPLAY_PER_CALLER")? {
            None => tower_mcp_auth::dpop::DEFAULT_REPLAY_PER_PRINCIPAL,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError::InvalidEnv {
                        var: "DPOP_REPLAY_PER_CALLER".into(),
                        reason: "expected a whole number of proofs, at least 1".into(),
                    })
                }
            },
        };
        let redis_url =
            optional_secret_from_env("REDIS_URL")?.map(|url| url.expose_secret().trim().to_owned());
        let policy_file = env_opt("POLICY_FILE")?.map(PathBuf::from);

        Ok(Self {
            bind,
            generated_key,
            stateless,
            request_state_ttl: tower_mcp_auth::mcp::handles::DEFAULT_STATE_TTL,
            clock: None,
            jwt_secret,
            generated_jwt_secret,
            oauth_issuer,
            oauth_jwks_url,
            oauth_audience,
            introspector,
            rate_limit_per_minute,
            redis_url,
            dpop_required,
            dpop_nonce_secret,
            dpop_replay_per_caller,
            policy_file,
            ..Self::new(public_url, api_keys)
        })
    }
}

/// A `0`/`1` variable: false when unset or empty.
fn env_flag(var: &str, expected: &str) -> Result<bool, ConfigError> {
    match std::env::var(var).as_deref().map(str::trim) {
        Err(std::env::VarError::NotPresent) | Ok("" | "0" | "false") => Ok(false),
        Ok("1" | "true") => Ok(true),
        _ => Err(ConfigError::InvalidEnv {
            var: var.into(),
            reason: expected.into(),
        }),
    }
}

/// An optional, non-secret variable: `None` when unset or empty.
fn env_opt(var: &str) -> Result<Option<String>, ConfigError> {
    match std::env::var(var) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::InvalidEnv {
            var: var.into(),
            reason: "not valid UTF-8".into(),
        }),
    }
}

/// A random 256-bit secret (the HS256 secret of demo mode, the DPoP
/// nonce key).
fn demo_jwt_secret() -> SecretString {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Signs an HS256 access token for `subject` with `scopes`, valid for an
/// hour, whose audience is the resource identifier: what an authorization
/// server sharing `JWT_SECRET` would issue. For the demo banner.
pub fn mint_token(
    secret: &SecretString,
    public_url: &str,
    subject: &str,
    scopes: &[&str],
) -> String {
    tower_mcp_auth::jwt::install_crypto_provider();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let claims = serde_json::json!({
        "sub": subject,
        "aud": public_url,
        "iat": now,
        "exp": now + 3600,
        "scope": scopes.join(" "),
        "client_id": "mcp-demo",
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .expect("HS256 signing does not fail")
}

/// `http://<bind>/mcp`, with `localhost` in place of an unspecified address.
pub fn default_public_url(bind: SocketAddr) -> String {
    if bind.ip().is_unspecified() {
        format!("http://localhost:{}{MCP_PATH}", bind.port())
    } else {
        format!("http://{bind}{MCP_PATH}")
    }
}

fn build_resource(
    public_url: &str,
    oauth_issuer: Option<&str>,
    policy: Option<&SharedPolicy>,
    dpop: Option<&Dpop>,
) -> Result<ProtectedResource, ConfigError> {
    let mut builder = ProtectedResource::builder(public_url);
    if let Some(issuer) = oauth_issuer {
        builder = builder.authorization_server(issuer);
    }
    if let Some(policy) = policy {
        // Every scope the policy in force names, reload after reload.
        builder = builder.scopes_from(policy.clone());
    }
    if let Some(dpop) = dpop {
        builder = builder.dpop(dpop);
    }
    builder
        .resource_name("tower-mcp-auth example MCP server")
        .build()
}

/// What the layer stack is built from.
impl Config {
    /// The protected resource (RFC 9728): the resource identifier, the
    /// authorization server (`OAUTH_ISSUER`), as `scopes_supported` every
    /// scope the policy in force names (so the metadata and the rules
    /// never disagree, reload after reload), and, when
    /// [advertised](Self::dpop_advertised), `dpop`'s members.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `PUBLIC_URL` is not a valid resource identifier.
    pub fn resource(
        &self,
        policy: &SharedPolicy,
        dpop: &Dpop,
    ) -> Result<ProtectedResource, ConfigError> {
        let dpop = self.dpop_advertised().then_some(dpop);
        build_resource(
            &self.public_url,
            self.oauth_issuer.as_deref(),
            Some(policy),
            dpop,
        )
    }

    /// Whether DPoP is advertised: tokens come from an authorization
    /// server (`OAUTH_ISSUER`, introspection), or a `DPOP_` variable is set.
    pub fn dpop_advertised(&self) -> bool {
        self.oauth_issuer.is_some()
            || self.introspector.is_some()
            || self.dpop_required
            || self.dpop_nonce_secret.is_some()
    }

    /// The DPoP configuration of the bearer layers: proofs checked with
    /// the default algorithms, `iat` window (5 minutes back, 5 seconds
    /// ahead), a replay cache in memory (in Redis with `REDIS_URL`) holding
    /// at most `DPOP_REPLAY_PER_CALLER` live proofs per caller, nonces with
    /// `DPOP_NONCES`/`DPOP_NONCE_SECRET`, unbound tokens refused with
    /// `DPOP_REQUIRED`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when Redis is unreachable or this build lacks it.
    pub async fn dpop(&self) -> Result<Dpop, ConfigError> {
        let mut proofs = ProofValidator::builder();
        if let Some(secret) = &self.dpop_nonce_secret {
            proofs = proofs.nonces(Nonces::new(secret.expose_secret().as_bytes())?);
        }
        let per_caller = self.dpop_replay_per_caller;
        match &self.redis_url {
            None => {
                proofs = proofs.replay_cache(
                    tower_mcp_auth::dpop::MemoryReplayCache::new().per_principal(per_caller),
                );
            }
            #[cfg(feature = "redis")]
            Some(url) => {
                proofs = proofs.replay_cache(
                    tower_mcp_auth::dpop::RedisReplayCache::connect(url)
                        .await?
                        .per_principal(per_caller),
                );
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => {
                return Err(ConfigError::InvalidEnv {
                    var: "REDIS_URL".into(),
                    reason: "this build has no Redis support; run with `--features redis`".into(),
                })
            }
        }
        let dpop = Dpop::new(proofs.build()?);
        Ok(if self.dpop_required {
            dpop.required()
        } else {
            dpop
        })
    }

    /// The bearer-token validator: `JWT_SECRET` (HS256, `aud` = the
    /// resource identifier, `exp` required, no `iss`) and/or the
    /// authorization server's tokens (`OAUTH_ISSUER`, `OAUTH_JWKS_URL`,
    /// `OAUTH_AUDIENCE`), pinned to its issuer. `None` when neither is
    /// configured.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an unusable secret or URL.
    pub fn jwt_validator(
        &self,
        resource: &ProtectedResource,
    ) -> Result<Option<JwtValidator>, ConfigError> {
        if self.jwt_secret.is_none() && self.oauth_issuer.is_none() {
            return Ok(None);
        }
        let mut builder = JwtValidator::builder(resource);
        if let Some(secret) = &self.jwt_secret {
            builder = builder.hs256_secret(secret);
        }
        builder = match (&self.oauth_issuer, &self.oauth_jwks_url) {
            (Some(iss), Some(url)) => builder.jwks_url(url.clone()).jwks_issuer(iss.clone()),
            (Some(iss), None) => builder.jwks_from_issuer(iss.clone()),
            (None, _) => builder,
        };
        if let Some(aud) = &self.oauth_audience {
            builder = builder.audience(aud.clone()).audience(resource.resource());
        }
        builder.build().map(Some)
    }

    /// The rate limiter's store: Redis when `REDIS_URL` is set (replicas
    /// share one quota), else in memory.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when Redis is unreachable or this build lacks it.
    pub async fn rate_limit_store(&self) -> Result<AnyStore, ConfigError> {
        match &self.redis_url {
            None => Ok(AnyStore::from(MemoryStore::new())),
            #[cfg(feature = "redis")]
            Some(url) => Ok(AnyStore::from(
                tower_mcp_auth::rate_limit::RedisStore::connect(url).await?,
            )),
            #[cfg(not(feature = "redis"))]
            Some(_) => Err(ConfigError::InvalidEnv {
                var: "REDIS_URL".into(),
                reason: "this build has no Redis support; run with `--features redis`".into(),
            }),
        }
    }
}

/// The demo-mode banner: the generated key, a `curl` line, and (with a
/// generated `JWT_SECRET`) a sample token.
pub fn print_demo_banner(config: &Config, key: &SecretString, policy: &McpPolicy) {
    println!("{}", demo_banner(config, key, policy));
}

/// The text [`print_demo_banner`] prints. With sessions, the `curl` line
/// initializes one; stateless (`MCP_STATELESS=1`) there is no session to
/// initialize, so it lists the tools, a request that stands alone.
pub fn demo_banner(config: &Config, key: &SecretString, policy: &McpPolicy) -> String {
    let url = &config.public_url;
    let key = key.expose_secret();
    let (what, body) = if config.stateless {
        (
            "This server is stateless (MCP_STATELESS=1): there is no session to \
             initialize, every request stands alone. List the tools with it:",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
    } else {
        (
            "Initialize an MCP session with it:",
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1.0"}}}"#,
        )
    };
    let mut banner = format!(
        "\nDemo mode: API_KEY is not set, so this run generated an API key (valid until exit):\n\n    \
         {key}\n\n{what}\n\n    \
         curl -i {url} \\\n      \
         -H 'Content-Type: application/json' \\\n      \
         -H 'Accept: application/json, text/event-stream' \\\n      \
         -H 'X-API-Key: {key}' \\\n      \
         -d '{body}'\n\n\
         Set API_KEY (comma separated for several) to choose the keys yourself."
    );
    if let (true, Some(secret)) = (config.generated_jwt_secret, &config.jwt_secret) {
        let scopes = policy.scopes_named();
        let scopes: Vec<&str> = scopes.iter().collect();
        let token = mint_token(secret, url, "demo-user", &scopes);
        banner.push_str(&format!(
            "\n\nJWT_SECRET is not set either, so bearer tokens are HS256-signed with this generated secret:\n\n    \
             {}\n\nA sample access token (subject demo-user, every scope, valid for an hour):\n\n    \
             {token}\n\nUse it with -H 'Authorization: Bearer <token>' in place of the X-API-Key line.",
            secret.expose_secret()
        ));
    }
    banner.push('\n');
    banner
}
