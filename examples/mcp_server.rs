//! A real MCP server on rmcp's Streamable HTTP transport, protected by
//! `tower-mcp-auth`.
//!
//! ```text
//! cargo run --example mcp_server
//! ```
//!
//! With no configuration it starts in demo mode: it generates an API key and
//! prints it with a ready-to-paste `curl` line. Variables:
//!
//! | variable | meaning |
//! | --- | --- |
//! | `BIND` | listen address (default `127.0.0.1:3000`) |
//! | `PUBLIC_URL` | the resource identifier, the URL clients use (default `http://<BIND>/mcp`, with `localhost` for an unspecified address) |
//! | `API_KEY` | the service key(s) for `X-API-Key`, comma separated; unset: demo mode |
//! | `MCP_STATELESS` | `1`: rmcp without sessions, plain JSON responses |
//!
//! The layout, so that tests (and later features) can reuse it:
//!
//! * [`Config`]: the configuration, from the environment ([`Config::from_env`])
//!   or from code ([`Config::new`]).
//! * [`app`]: the whole axum application for a configuration.
//! * [`protect`]: THE LAYER STACK in front of the MCP service, in one place.
//! * [`McpServer`] and [`Store`]: the tools and resources, over an in-memory
//!   store of users, profiles and records.
//!
//! `PUBLIC_URL` also drives rmcp's DNS-rebinding protection: only its host
//! (and, for a loopback URL, the other loopback names on the same port) is
//! accepted in `Host`, and only its origin in `Origin`; anything else is
//! refused with 403.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::Router;
use http::request::Parts;
use rmcp::{
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    model::{
        Implementation, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
        ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
    },
    schemars::{self, JsonSchema},
    service::RequestContext,
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData, Json, RoleServer, ServerHandler,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tower::ServiceBuilder;
use tower_mcp_auth::{
    config::optional_secret_from_env,
    introspection::{IntrospectionLayer, Introspector},
    jwt::{JwtLayer, JwtValidator},
    mcp::{McpPolicy, McpPolicyLayer, McpRequest, Rule},
    rate_limit::{AnyStore, FailedAuthLayer, MemoryStore, Quota, RateLimitLayer},
    ApiKey, ApiKeyLayer, ApiKeys, ConfigError, Principal, ProtectedResource,
};

/// Where the MCP endpoint is mounted in the router.
pub const MCP_PATH: &str = "/mcp";

/// The scopes this server's tools and resources use (listed in the
/// protected-resource metadata).
pub const SCOPES: [&str; 6] = [
    "read:data",
    "write:data",
    "data:read",
    "read:profile",
    "write:profile",
    "admin:write",
];

/// The default listen address.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    3000,
));

/// The name of the key generated in demo mode.
pub const DEMO_KEY_NAME: &str = "demo";

/// At most this many users in the store (it is in memory, and callers
/// create users).
const MAX_USERS: usize = 10_000;

/// Longest accepted free-text field.
const MAX_FIELD_LEN: usize = 256;

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
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("api_keys", &self.api_keys)
            .field("generated_key", &self.generated_key)
            .field("stateless", &self.stateless)
            .field("jwt_secret", &self.jwt_secret)
            .field("generated_jwt_secret", &self.generated_jwt_secret)
            .field("oauth_issuer", &self.oauth_issuer)
            .field("oauth_jwks_url", &self.oauth_jwks_url)
            .field("oauth_audience", &self.oauth_audience)
            .field("introspector", &self.introspector)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[REDACTED]"))
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
            jwt_secret: None,
            generated_jwt_secret: false,
            oauth_issuer: None,
            oauth_jwks_url: None,
            oauth_audience: None,
            introspector: None,
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            redis_url: None,
        }
    }

    /// Reads `BIND`, `PUBLIC_URL`, `API_KEY` and `MCP_STATELESS`.
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
        build_resource(&public_url, None).map_err(|e| ConfigError::InvalidEnv {
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

        let stateless = match std::env::var("MCP_STATELESS").as_deref().map(str::trim) {
            Err(std::env::VarError::NotPresent) | Ok("" | "0" | "false") => false,
            Ok("1" | "true") => true,
            _ => {
                return Err(ConfigError::InvalidEnv {
                    var: "MCP_STATELESS".into(),
                    reason: "expected 1 (stateless) or 0 (sessions)".into(),
                })
            }
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
        let redis_url =
            optional_secret_from_env("REDIS_URL")?.map(|url| url.expose_secret().trim().to_owned());

        Ok(Self {
            bind,
            public_url,
            api_keys,
            generated_key,
            stateless,
            jwt_secret,
            generated_jwt_secret,
            oauth_issuer,
            oauth_jwks_url,
            oauth_audience,
            introspector,
            rate_limit_per_minute,
            redis_url,
        })
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

/// A random 256-bit HS256 secret for demo mode.
fn demo_jwt_secret() -> SecretString {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Signs an HS256 access token for `subject` with `scopes`, valid for an
/// hour, whose audience is the resource identifier: what an authorization
/// server sharing `JWT_SECRET` would issue. For the demo banner and tests.
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

/// The bearer-token validator: `JWT_SECRET` (HS256, `aud` = the resource
/// identifier, `exp` required, no `iss`) and/or the authorization server's
/// tokens (`OAUTH_ISSUER`, `OAUTH_JWKS_URL`, `OAUTH_AUDIENCE`), pinned to
/// its issuer. `None` when neither is configured.
fn jwt_validator(
    config: &Config,
    resource: &ProtectedResource,
) -> Result<Option<JwtValidator>, ConfigError> {
    if config.jwt_secret.is_none() && config.oauth_issuer.is_none() {
        return Ok(None);
    }
    let mut builder = JwtValidator::builder(resource);
    if let Some(secret) = &config.jwt_secret {
        builder = builder.hs256_secret(secret);
    }
    builder = match (&config.oauth_issuer, &config.oauth_jwks_url) {
        (Some(iss), Some(url)) => builder.jwks_url(url.clone()).jwks_issuer(iss.clone()),
        (Some(iss), None) => builder.jwks_from_issuer(iss.clone()),
        (None, _) => builder,
    };
    if let Some(aud) = &config.oauth_audience {
        builder = builder.audience(aud.clone()).audience(resource.resource());
    }
    builder.build().map(Some)
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
) -> Result<ProtectedResource, ConfigError> {
    let mut builder = ProtectedResource::builder(public_url);
    if let Some(issuer) = oauth_issuer {
        builder = builder.authorization_server(issuer);
    }
    builder
        .scopes_supported(SCOPES)
        .resource_name("tower-mcp-auth example MCP server")
        .build()
}

// ───────────────────────────── the application ─────────────────────────────

/// The whole application: RFC 9728 metadata at the root, and the protected
/// MCP service at [`MCP_PATH`].
///
/// # Errors
///
/// [`ConfigError`] when `PUBLIC_URL` is not a valid resource identifier.
pub async fn app(config: &Config) -> Result<Router, ConfigError> {
    let resource = build_resource(&config.public_url, config.oauth_issuer.as_deref())?;
    let mcp = mcp_service(config)?;
    Ok(Router::new()
        .merge(resource.router())
        .merge(protect(mcp, config, &resource).await?))
}

/// The MCP service itself (tools, resources, rmcp's transport with its
/// DNS-rebinding checks), before any layer of [`protect`].
///
/// # Errors
///
/// [`ConfigError`] when `PUBLIC_URL` is not a valid URL.
pub fn mcp_service(config: &Config) -> Result<McpService, ConfigError> {
    let (allowed_hosts, allowed_origins) = dns_rebinding_allowlists(&config.public_url)?;

    let sessions = Arc::new(LocalSessionManager::default());
    let store = Store::seeded(sessions.clone());
    let mut server_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts)
        .with_allowed_origins(allowed_origins)
        .enforce_origin_validation();
    if config.stateless {
        server_config = server_config
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None);
    }
    Ok(StreamableHttpService::new(
        move || Ok(McpServer::new(store.clone())),
        sessions,
        server_config,
    ))
}

/// The MCP service this example serves.
pub type McpService = StreamableHttpService<McpServer, LocalSessionManager>;

// ═════════════════════════════ THE LAYER STACK ═════════════════════════════
//
// Everything that stands between the network and the MCP service, outermost
// first:
//
// 1. `FailedAuthLayer`: a client address that keeps sending bad credentials
//    is refused with 429 for a while (key guessing gets nowhere).
// 2. Authenticators, each optional (no credential: pass on; a bad one: 401):
//    `X-API-Key`; bearer JWTs (`JWT_SECRET`, or the authorization server's
//    JWKS); then opaque bearer tokens by introspection (the JWT layer hands
//    a token that is not a JWT on to it, marked unverified, only when
//    introspection is configured).
// 3. `McpPolicyLayer`: reads the JSON-RPC body and decides each call by the
//    contract's rules (401 with the challenge, or a 403 step-up), and filters
//    the tool / resource lists to what the caller may call.
// 4. `RateLimitLayer`: per principal (per address when anonymous); a batch
//    costs one unit per call.
// 5. `SessionBindingLayer`: a session belongs to the principal that opened
//    it; anyone else presenting its id is answered as for an unknown session.

/// The contract's rules: which scheme and scopes each tool and resource
/// needs.
///
/// # Errors
///
/// [`ConfigError`] if the rule set cannot be right (it can: it is tested).
pub fn policy() -> Result<McpPolicy, ConfigError> {
    McpPolicy::builder()
        .default(Rule::authenticated())
        .tool("get_user_data", Rule::bearer().scopes(["read:data"]))
        .tool("read_sensitive_data", Rule::bearer().scopes(["data:read"]))
        .tool("update_user_data", Rule::bearer().scopes(["write:data"]))
        .tool("get_my_profile", Rule::bearer().scopes(["read:profile"]))
        .tool(
            "update_my_profile",
            Rule::bearer().scopes(["write:profile"]),
        )
        .tool("create_admin_user", Rule::api_key())
        .tool(
            "delete_user",
            Rule::api_key().or(Rule::bearer().scopes(["admin:write"])),
        )
        .tool("list_all_users", Rule::api_key())
        .tool("get_user_by_id", Rule::api_key())
        .tool("protected_operation", Rule::authenticated())
        .tool("rate_limited_operation", Rule::authenticated())
        .resource(
            "user://{user_id}/private",
            Rule::bearer().scopes(["read:data"]),
        )
        .resource("admin://system/stats", Rule::api_key())
        // Any other URI (`user://user_001?/private` matches no template):
        // API key only, not the default. The administrator may still get
        // the server's own "not found"; nobody else reaches the handler.
        .unmatched_resource(Rule::api_key())
        .build()
}

/// Wraps the MCP service in the authentication, authorization and rate
/// limiting layers and mounts it at [`MCP_PATH`].
///
/// # Errors
///
/// [`ConfigError`] for an impossible quota or an unusable `REDIS_URL`.
pub async fn protect(
    mcp: McpService,
    config: &Config,
    resource: &ProtectedResource,
) -> Result<Router, ConfigError> {
    let quota = Quota::try_new(config.rate_limit_per_minute, Duration::from_secs(60))?;
    let store = rate_limit_store(config).await?;
    // Opaque bearer tokens go on to introspection only when there is one;
    // without it the JWT layer refuses them (401), never anonymous.
    let jwt = jwt_validator(config, resource)?.map(|v| {
        let jwt = JwtLayer::new(v).optional().resource(resource);
        match config.introspector {
            Some(_) => jwt.pass_opaque_tokens(),
            None => jwt,
        }
    });
    let introspection = config
        .introspector
        .clone()
        .map(|i| IntrospectionLayer::new(i).optional().resource(resource));

    let stack = ServiceBuilder::new()
        .layer(FailedAuthLayer::new())
        .layer(
            ApiKeyLayer::new(config.api_keys.clone())
                .optional()
                .resource(resource),
        )
        .option_layer(jwt)
        .option_layer(introspection)
        .layer(McpPolicyLayer::new(policy()?, resource))
        .layer(
            RateLimitLayer::per_principal(quota)
                .store(store)
                .cost(|parts: &Parts| {
                    parts
                        .extensions
                        .get::<McpRequest>()
                        .map_or(1, |r| u32::try_from(r.calls().len()).unwrap_or(u32::MAX))
                }),
        )
        .layer(tower_mcp_auth::mcp::SessionBindingLayer::new());
    Ok(Router::new().nest_service(MCP_PATH, stack.service(mcp)))
}

/// The rate limiter's store: Redis when `REDIS_URL` is set (replicas share
/// one quota), else in memory.
async fn rate_limit_store(config: &Config) -> Result<AnyStore, ConfigError> {
    match &config.redis_url {
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

// ═══════════════════════════════════════════════════════════════════════════

/// rmcp's allow-lists for the `Host` and `Origin` headers, from the public
/// URL. A loopback URL also allows the other loopback names on its port
/// (`localhost`, `127.0.0.1`, `[::1]`), so `curl localhost:3000` works when
/// the URL says `127.0.0.1:3000`.
fn dns_rebinding_allowlists(public_url: &str) -> Result<(Vec<String>, Vec<String>), ConfigError> {
    let uri: http::Uri = public_url.parse().map_err(|_| ConfigError::InvalidEnv {
        var: "PUBLIC_URL".into(),
        reason: "not a valid URL".into(),
    })?;
    let scheme = uri.scheme_str().unwrap_or("https");
    let host = uri.host().unwrap_or_default();
    let explicit_port = uri.port_u16();
    let port = explicit_port.unwrap_or(if scheme == "http" { 80 } else { 443 });
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let hosts: Vec<String> = if loopback {
        vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
    } else {
        vec![host.to_owned()]
    };
    let allowed_hosts = hosts
        .iter()
        .map(|h| match explicit_port {
            Some(p) => format!("{h}:{p}"),
            None => h.clone(),
        })
        .collect();
    let allowed_origins = hosts
        .iter()
        .map(|h| format!("{scheme}://{h}:{port}"))
        .collect();
    Ok((allowed_hosts, allowed_origins))
}

// ───────────────────────────── the store ─────────────────────────────

/// A user of the (imaginary) product this server fronts.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct User {
    /// Stable id, `user_001`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// `admin` or `member`.
    pub role: String,
    /// Department.
    pub department: String,
    /// Who created the user: `seed`, or the creating principal's subject.
    pub created_by: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

/// A user's private data, served as `user://{user_id}/private`.
#[derive(Clone, Debug, Serialize)]
struct PrivateData {
    phone: String,
    home_address: String,
    date_of_birth: String,
    emergency_contact: String,
}

/// A sensitive record, read by `read_sensitive_data`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SensitiveRecord {
    /// Record id.
    pub data_id: String,
    /// `confidential` or `restricted`.
    pub classification: String,
    /// Owning team.
    pub owner: String,
    /// The content.
    pub content: String,
}

/// A caller's own profile, keyed by the principal's subject.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Profile {
    /// The principal's subject.
    pub subject: String,
    /// Display name.
    pub display_name: String,
    /// Short biography.
    pub bio: String,
    /// IANA time zone.
    pub timezone: String,
    /// Last update, seconds since the Unix epoch (0: never updated).
    pub updated_at: u64,
}

/// The in-memory store behind the tools and resources. Clones share it.
#[derive(Clone)]
pub struct Store(Arc<StoreInner>);

struct StoreInner {
    users: RwLock<BTreeMap<String, User>>,
    private: RwLock<HashMap<String, PrivateData>>,
    profiles: RwLock<HashMap<String, Profile>>,
    records: BTreeMap<String, SensitiveRecord>,
    next_id: AtomicU64,
    calls: AtomicU64,
    started: Instant,
    sessions: Arc<LocalSessionManager>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// A store with a few users, profiles and records.
    pub fn seeded(sessions: Arc<LocalSessionManager>) -> Self {
        let created_at = now();
        let seed_users = [
            (
                "user_001",
                "Alice Martin",
                "alice@example.com",
                "admin",
                "Engineering",
                "+1-555-0101",
                "12 Elm Street, Springfield",
                "1985-04-12",
                "Tom Martin +1-555-0199",
            ),
            (
                "user_002",
                "Bob Chen",
                "bob@example.com",
                "member",
                "Sales",
                "+1-555-0102",
                "48 Oak Avenue, Riverton",
                "1990-09-30",
                "Lin Chen +1-555-0198",
            ),
            (
                "user_003",
                "Carol Diaz",
                "carol@example.com",
                "member",
                "Finance",
                "+1-555-0103",
                "7 Pine Road, Lakeside",
                "1988-01-22",
                "Ana Diaz +1-555-0197",
            ),
        ];
        let mut users = BTreeMap::new();
        let mut private = HashMap::new();
        for (id, name, email, role, department, phone, address, dob, contact) in seed_users {
            users.insert(
                id.to_owned(),
                User {
                    id: id.into(),
                    name: name.into(),
                    email: email.into(),
                    role: role.into(),
                    department: department.into(),
                    created_by: "seed".into(),
                    created_at,
                },
            );
            private.insert(
                id.to_owned(),
                PrivateData {
                    phone: phone.into(),
                    home_address: address.into(),
                    date_of_birth: dob.into(),
                    emergency_contact: contact.into(),
                },
            );
        }
        let records = [
            (
                "fin-2025-q3",
                "confidential",
                "finance",
                "Q3 revenue 4.2M USD, margin 31%, two accounts past due",
            ),
            (
                "hr-salary-bands",
                "restricted",
                "people",
                "Band L3 95-120k, L4 120-150k, L5 150-190k",
            ),
            (
                "sec-incident-17",
                "restricted",
                "security",
                "Phishing attempt on 2025-10-02 contained; one password reset",
            ),
        ]
        .into_iter()
        .map(|(id, class, owner, content)| {
            (
                id.to_owned(),
                SensitiveRecord {
                    data_id: id.into(),
                    classification: class.into(),
                    owner: owner.into(),
                    content: content.into(),
                },
            )
        })
        .collect();
        Self(Arc::new(StoreInner {
            next_id: AtomicU64::new(users.len() as u64 + 1),
            users: RwLock::new(users),
            private: RwLock::new(private),
            profiles: RwLock::new(HashMap::new()),
            records,
            calls: AtomicU64::new(0),
            started: Instant::now(),
            sessions,
        }))
    }

    fn count_call(&self) {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn user(&self, id: &str) -> Result<User, String> {
        read(&self.0.users)
            .get(id)
            .cloned()
            .ok_or_else(|| format!("no user with id `{}`", clip(id)))
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shortens caller-supplied text before echoing it in an error.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn check_text(field: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if value.chars().count() > MAX_FIELD_LEN {
        return Err(format!(
            "`{field}` is longer than {MAX_FIELD_LEN} characters"
        ));
    }
    Ok(value.to_owned())
}

fn check_email(value: &str) -> Result<String, String> {
    let value = check_text("email", value)?;
    match value.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(value),
        _ => Err("`email` is not an e-mail address".into()),
    }
}

// ───────────────────────────── tool parameters and results ─────────────────────────────

/// Names a user.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UserIdParams {
    /// The user's id, such as `user_001`.
    pub user_id: String,
}

/// Names a sensitive record.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DataIdParams {
    /// The record's id, such as `fin-2025-q3`.
    pub data_id: String,
}

/// Fields of a user that may change.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    /// New display name.
    pub name: Option<String>,
    /// New e-mail address.
    pub email: Option<String>,
    /// New department.
    pub department: Option<String>,
}

/// `update_user_data` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateUserParams {
    /// The user's id.
    pub user_id: String,
    /// The fields to change.
    pub data: UserChanges,
}

/// Fields of a profile that may change.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// New biography.
    pub bio: Option<String>,
    /// New IANA time zone, such as `Europe/Paris`.
    pub timezone: Option<String>,
}

/// `update_my_profile` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateProfileParams {
    /// The fields to change.
    pub data: ProfileChanges,
}

/// `create_admin_user` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateAdminParams {
    /// The new admin's e-mail address.
    pub email: String,
    /// The new admin's name.
    pub name: String,
}

/// `delete_user` input.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeleteUserParams {
    /// The user's id.
    pub user_id: String,
    /// Why (kept in the result, for the audit trail).
    pub reason: String,
}

/// Input of the two generic operations.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct OperationParams {
    /// An operation parameter.
    pub param: String,
}

/// Result of `create_admin_user`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Created {
    /// `success`.
    pub status: String,
    /// The new user's id.
    pub user_id: String,
    /// Who created it (the caller's subject).
    pub created_by: String,
    /// The new user.
    pub user: User,
}

/// Result of `update_user_data`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Updated {
    /// `success`.
    pub status: String,
    /// The user's id.
    pub user_id: String,
    /// The fields that changed.
    pub changed: Vec<String>,
    /// Who changed them.
    pub updated_by: String,
    /// The user after the change.
    pub user: User,
}

/// Result of `delete_user`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    /// `success`.
    pub status: String,
    /// The deleted user's id.
    pub deleted: String,
    /// Why.
    pub reason: String,
    /// Who deleted it.
    pub deleted_by: String,
}

/// Result of `list_all_users`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserList {
    /// How many users there are.
    pub total: usize,
    /// The users, by id.
    pub users: Vec<User>,
}

/// Result of `read_sensitive_data`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SensitiveRead {
    /// The record.
    pub record: SensitiveRecord,
    /// Who read it.
    pub accessed_by: String,
}

/// The caller, as the tools see it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Caller {
    /// The principal's subject.
    pub subject: String,
    /// How it authenticated (`api_key`, `jwt`, `introspection`).
    pub scheme: String,
    /// The scopes it was granted.
    pub scopes: Vec<String>,
}

/// Result of `get_my_profile` / `update_my_profile`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MyProfile {
    /// The profile.
    pub profile: Profile,
    /// The caller.
    pub caller: Caller,
}

/// Result of the two generic operations.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OperationResult {
    /// `success`.
    pub status: String,
    /// Which operation ran.
    pub operation: String,
    /// The parameter it ran with.
    pub param: String,
    /// For whom.
    pub performed_by: String,
    /// When, seconds since the Unix epoch.
    pub performed_at: u64,
}

/// The authenticated caller of a tool call: the [`Principal`] an
/// authentication layer put into the request parts that rmcp hands over.
fn caller(parts: &Parts) -> Result<&Principal, String> {
    Principal::from_parts(parts).ok_or_else(|| "this tool needs an authenticated caller".to_owned())
}

fn describe(p: &Principal) -> Caller {
    Caller {
        subject: p.subject().to_owned(),
        scheme: p.scheme().to_string(),
        scopes: p.scopes().iter().map(str::to_owned).collect(),
    }
}

// ───────────────────────────── the MCP server ─────────────────────────────

/// The MCP server: tools and resources over a [`Store`].
#[derive(Clone)]
pub struct McpServer {
    store: Store,
    tool_router: ToolRouter<Self>,
}

/// Tool results: structured JSON, or a tool error (`isError: true`) with a
/// message.
type ToolResult<T> = Result<Json<T>, String>;

#[tool_router]
impl McpServer {
    /// A server over `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Get a user's data (bearer token with read:data).")]
    async fn get_user_data(
        &self,
        Parameters(p): Parameters<UserIdParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<User> {
        caller(&parts)?;
        self.store.count_call();
        self.store.user(&p.user_id).map(Json)
    }

    #[tool(description = "Read a sensitive record (bearer token with data:read).")]
    async fn read_sensitive_data(
        &self,
        Parameters(p): Parameters<DataIdParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<SensitiveRead> {
        let who = caller(&parts)?;
        self.store.count_call();
        let record = self
            .store
            .0
            .records
            .get(&p.data_id)
            .cloned()
            .ok_or_else(|| format!("no record with id `{}`", clip(&p.data_id)))?;
        Ok(Json(SensitiveRead {
            record,
            accessed_by: who.subject().to_owned(),
        }))
    }

    #[tool(
        description = "Change a user's name, email or department (bearer token with write:data)."
    )]
    async fn update_user_data(
        &self,
        Parameters(p): Parameters<UpdateUserParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<Updated> {
        let who = caller(&parts)?;
        self.store.count_call();
        let name = p
            .data
            .name
            .as_deref()
            .map(|v| check_text("name", v))
            .transpose()?;
        let email = p.data.email.as_deref().map(check_email).transpose()?;
        let department = p
            .data
            .department
            .as_deref()
            .map(|v| check_text("department", v))
            .transpose()?;
        let mut users = write(&self.store.0.users);
        let user = users
            .get_mut(&p.user_id)
            .ok_or_else(|| format!("no user with id `{}`", clip(&p.user_id)))?;
        let mut changed = Vec::new();
        for (field, value, slot) in [
            ("name", name, &mut user.name),
            ("email", email, &mut user.email),
            ("department", department, &mut user.department),
        ] {
            if let Some(v) = value {
                *slot = v;
                changed.push(field.to_owned());
            }
        }
        if changed.is_empty() {
            return Err("`data` changes nothing: give name, email or department".into());
        }
        Ok(Json(Updated {
            status: "success".into(),
            user_id: user.id.clone(),
            changed,
            updated_by: who.subject().to_owned(),
            user: user.clone(),
        }))
    }

    #[tool(description = "Get the caller's own profile (bearer token with read:profile).")]
    async fn get_my_profile(&self, Extension(parts): Extension<Parts>) -> ToolResult<MyProfile> {
        let who = caller(&parts)?;
        self.store.count_call();
        let profile = read(&self.store.0.profiles)
            .get(who.subject())
            .cloned()
            .unwrap_or_else(|| default_profile(who.subject()));
        Ok(Json(MyProfile {
            profile,
            caller: describe(who),
        }))
    }

    #[tool(description = "Update the caller's own profile (bearer token with write:profile).")]
    async fn update_my_profile(
        &self,
        Parameters(p): Parameters<UpdateProfileParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<MyProfile> {
        let who = caller(&parts)?;
        self.store.count_call();
        let display_name = p
            .data
            .display_name
            .as_deref()
            .map(|v| check_text("display_name", v))
            .transpose()?;
        let bio = p
            .data
            .bio
            .as_deref()
            .map(|v| check_text("bio", v))
            .transpose()?;
        let timezone = p
            .data
            .timezone
            .as_deref()
            .map(|v| check_text("timezone", v))
            .transpose()?;
        if display_name.is_none() && bio.is_none() && timezone.is_none() {
            return Err("`data` changes nothing: give display_name, bio or timezone".into());
        }
        let mut profiles = write(&self.store.0.profiles);
        if !profiles.contains_key(who.subject()) && profiles.len() >= MAX_USERS {
            return Err("too many profiles in this demo store".into());
        }
        let profile = profiles
            .entry(who.subject().to_owned())
            .or_insert_with(|| default_profile(who.subject()));
        if let Some(v) = display_name {
            profile.display_name = v;
        }
        if let Some(v) = bio {
            profile.bio = v;
        }
        if let Some(v) = timezone {
            profile.timezone = v;
        }
        profile.updated_at = now();
        Ok(Json(MyProfile {
            profile: profile.clone(),
            caller: describe(who),
        }))
    }

    #[tool(description = "Create an admin user (API key); records who created it.")]
    async fn create_admin_user(
        &self,
        Parameters(p): Parameters<CreateAdminParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<Created> {
        let who = caller(&parts)?;
        self.store.count_call();
        let email = check_email(&p.email)?;
        let name = check_text("name", &p.name)?;
        let mut users = write(&self.store.0.users);
        if users.len() >= MAX_USERS {
            return Err(format!("the demo store is full ({MAX_USERS} users)"));
        }
        if users.values().any(|u| u.email.eq_ignore_ascii_case(&email)) {
            return Err(format!(
                "a user with email `{}` already exists",
                clip(&email)
            ));
        }
        let id = format!(
            "user_{:03}",
            self.store.0.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let user = User {
            id: id.clone(),
            name,
            email,
            role: "admin".into(),
            department: "Administration".into(),
            created_by: who.subject().to_owned(),
            created_at: now(),
        };
        users.insert(id.clone(), user.clone());
        Ok(Json(Created {
            status: "success".into(),
            user_id: id,
            created_by: user.created_by.clone(),
            user,
        }))
    }

    #[tool(description = "Delete a user (API key, or bearer token with admin:write).")]
    async fn delete_user(
        &self,
        Parameters(p): Parameters<DeleteUserParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<Deleted> {
        let who = caller(&parts)?;
        self.store.count_call();
        let reason = check_text("reason", &p.reason)?;
        write(&self.store.0.users)
            .remove(&p.user_id)
            .ok_or_else(|| format!("no user with id `{}`", clip(&p.user_id)))?;
        write(&self.store.0.private).remove(&p.user_id);
        Ok(Json(Deleted {
            status: "success".into(),
            deleted: p.user_id,
            reason,
            deleted_by: who.subject().to_owned(),
        }))
    }

    #[tool(description = "List all users (API key).")]
    async fn list_all_users(&self, Extension(parts): Extension<Parts>) -> ToolResult<UserList> {
        caller(&parts)?;
        self.store.count_call();
        let users: Vec<User> = read(&self.store.0.users).values().cloned().collect();
        Ok(Json(UserList {
            total: users.len(),
            users,
        }))
    }

    #[tool(description = "Get a user by id (API key).")]
    async fn get_user_by_id(
        &self,
        Parameters(p): Parameters<UserIdParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<User> {
        caller(&parts)?;
        self.store.count_call();
        self.store.user(&p.user_id).map(Json)
    }

    #[tool(description = "An operation any authenticated caller may run.")]
    async fn protected_operation(
        &self,
        Parameters(p): Parameters<OperationParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<OperationResult> {
        let who = caller(&parts)?;
        self.store.count_call();
        operation("protected_operation", &p.param, who)
    }

    #[tool(
        description = "An operation any authenticated caller may run, within a per-caller quota."
    )]
    async fn rate_limited_operation(
        &self,
        Parameters(p): Parameters<OperationParams>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult<OperationResult> {
        let who = caller(&parts)?;
        self.store.count_call();
        operation("rate_limited_operation", &p.param, who)
    }
}

fn default_profile(subject: &str) -> Profile {
    Profile {
        subject: subject.to_owned(),
        display_name: subject.to_owned(),
        bio: String::new(),
        timezone: "UTC".into(),
        updated_at: 0,
    }
}

fn operation(name: &str, param: &str, who: &Principal) -> ToolResult<OperationResult> {
    Ok(Json(OperationResult {
        status: "success".into(),
        operation: name.into(),
        param: check_text("param", param)?,
        performed_by: who.subject().to_owned(),
        performed_at: now(),
    }))
}

/// The resource template of users' private data.
pub const PRIVATE_TEMPLATE: &str = "user://{user_id}/private";
/// The system statistics resource.
pub const STATS_URI: &str = "admin://system/stats";

fn json_contents(uri: &str, value: &serde_json::Value) -> ReadResourceResponse {
    ReadResourceResult::new(vec![
        ResourceContents::text(value.to_string(), uri).with_mime_type("application/json")
    ])
    .into()
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(
            "tower-mcp-auth-example",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "User administration demo. Tools read the caller from the credential \
             (API key or bearer token) that tower-mcp-auth verified.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            STATS_URI,
            "system_stats",
        )
        .with_description("System statistics (API key)")
        .with_mime_type("application/json")]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(PRIVATE_TEMPLATE, "user_private_data")
                .with_description("A user's private data (bearer token with read:data)")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let who = context
            .extensions
            .get::<Parts>()
            .and_then(Principal::from_parts)
            .ok_or_else(|| {
                ErrorData::invalid_request("this resource needs an authenticated caller", None)
            })?;
        let uri = request.uri.as_str();
        self.store.count_call();
        if uri == STATS_URI {
            let inner = &self.store.0;
            let (total_users, admin_users) = {
                let users = read(&inner.users);
                let admins = users.values().filter(|u| u.role == "admin").count();
                (users.len(), admins)
            };
            let active_sessions = inner.sessions.sessions.read().await.len();
            let stats = serde_json::json!({
                "total_users": total_users,
                "admin_users": admin_users,
                "active_sessions": active_sessions,
                "calls_since_start": inner.calls.load(Ordering::Relaxed),
                "uptime_seconds": inner.started.elapsed().as_secs(),
                "requested_by": who.subject(),
            });
            return Ok(json_contents(uri, &stats));
        }
        if let Some(user_id) = uri
            .strip_prefix("user://")
            .and_then(|rest| rest.strip_suffix("/private"))
            .filter(|id| !id.is_empty() && !id.contains('/'))
        {
            let private = read(&self.store.0.private).get(user_id).cloned();
            if let (Some(private), Ok(user)) = (private, self.store.user(user_id)) {
                let value = serde_json::json!({
                    "user_id": user.id,
                    "name": user.name,
                    "private": private,
                    "accessed_by": who.subject(),
                });
                return Ok(json_contents(uri, &value));
            }
        }
        Err(ErrorData::resource_not_found(
            format!("no resource `{}`", clip(uri)),
            None,
        ))
    }
}

// ───────────────────────────── main ─────────────────────────────

fn print_demo_banner(config: &Config, key: &SecretString) {
    let url = &config.public_url;
    let key = key.expose_secret();
    println!(
        "\nDemo mode: API_KEY is not set, so this run generated an API key (valid until exit):\n\n    \
         {key}\n\nInitialize an MCP session with it:\n\n    \
         curl -i {url} \\\n      \
         -H 'Content-Type: application/json' \\\n      \
         -H 'Accept: application/json, text/event-stream' \\\n      \
         -H 'X-API-Key: {key}' \\\n      \
         -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"curl\",\"version\":\"1.0\"}}}}}}'\n\n\
         Set API_KEY (comma separated for several) to choose the keys yourself."
    );
    if let (true, Some(secret)) = (config.generated_jwt_secret, &config.jwt_secret) {
        let token = mint_token(secret, url, "demo-user", &SCOPES);
        println!(
            "\nJWT_SECRET is not set either, so bearer tokens are HS256-signed with this generated secret:\n\n    \
             {}\n\nA sample access token (subject demo-user, every scope, valid for an hour):\n\n    \
             {token}\n\nUse it with -H 'Authorization: Bearer <token>' in place of the X-API-Key line.\n",
            secret.expose_secret()
        );
    } else {
        println!();
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
    };
    let app = match app(&config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {} (BIND): {e}", config.bind);
            std::process::exit(1);
        }
    };
    println!(
        "MCP server listening on {} (public URL {}{})",
        config.bind,
        config.public_url,
        if config.stateless { ", stateless" } else { "" }
    );
    if let Some(key) = &config.generated_key {
        print_demo_banner(&config, key);
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("server error: {e}");
        std::process::exit(1);
    }
}
