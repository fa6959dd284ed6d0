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
//! | `CONFORMANCE_FIXTURES` | `1`: also serve the conformance suite's fixture tools and prompt ([`tools::conformance`](super::tools::conformance); `scripts/conformance` only, with a policy that has rules for them) |
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
    sync::Arc,
    time::{Duration, SystemTime},
};

use secrecy::{ExposeSecret, SecretString};
use tower_mcp_auth::{
    api_key::ApiKeys,
    jwt::Hs256Signer,
    mcp::McpPolicy,
    stack::{McpAuthBuilder, Settings},
    ConfigError,
};

/// Where the MCP endpoint is mounted in the router.
pub const MCP_PATH: &str = "/mcp";

/// The default listen address.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    3000,
));

/// The name of the key generated in demo mode.
pub const DEMO_KEY_NAME: &str = tower_mcp_auth::stack::DEMO_KEY_NAME;

// ───────────────────────────── configuration ─────────────────────────────

/// The example server's configuration: its own settings, and the stack's
/// ([`Settings`], every credential and limit). Its `Debug` redacts secrets.
pub struct Config {
    /// The listen address (`BIND`).
    pub bind: SocketAddr,
    /// rmcp without sessions, plain JSON responses (`MCP_STATELESS=1`).
    pub stateless: bool,
    /// Also serve the conformance suite's fixture tools and prompt
    /// (`CONFORMANCE_FIXTURES=1`; for `scripts/conformance` only, with
    /// rules for them: see [`tools::conformance`](super::tools::conformance)).
    pub conformance_fixtures: bool,
    /// How long a sealed `requestState` opens (5 minutes).
    pub request_state_ttl: Duration,
    /// The clock `requestState` expiries are read from (`None`: the
    /// system's); tests move time with it.
    #[allow(clippy::type_complexity)]
    pub clock: Option<Arc<dyn Fn() -> SystemTime + Send + Sync>>,
    /// What the stack accepts: the variables of the table above but
    /// `BIND` and `MCP_STATELESS`.
    pub auth: Settings,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("stateless", &self.stateless)
            .field("conformance_fixtures", &self.conformance_fixtures)
            .field("request_state_ttl", &self.request_state_ttl)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration for `public_url` accepting `api_keys`, listening on
    /// [`DEFAULT_BIND`], with sessions.
    pub fn new(public_url: impl Into<String>, api_keys: ApiKeys) -> Self {
        let mut auth = Settings::new(public_url);
        auth.api_keys = api_keys;
        Self {
            bind: DEFAULT_BIND,
            stateless: false,
            conformance_fixtures: false,
            request_state_ttl: tower_mcp_auth::mcp::handles::DEFAULT_STATE_TTL,
            clock: None,
            auth,
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
        let stateless = env_flag("MCP_STATELESS", "expected 1 (stateless) or 0 (sessions)")?;
        let conformance_fixtures = env_flag(
            "CONFORMANCE_FIXTURES",
            "expected 1 (serve the conformance suite's fixtures) or 0",
        )?;
        Ok(Self {
            bind,
            stateless,
            conformance_fixtures,
            request_state_ttl: tower_mcp_auth::mcp::handles::DEFAULT_STATE_TTL,
            clock: None,
            auth: Settings::from_env(&default_public_url(bind))?,
        })
    }

    /// The public URL clients use (`PUBLIC_URL`).
    pub fn public_url(&self) -> &str {
        &self.auth.public_url
    }

    /// The stack this configuration asks for, with `policy` when no
    /// `POLICY_FILE` is set, named for the metadata, with the handle
    /// lifetime (and clock) of this configuration.
    pub fn auth(
        &self,
        policy: impl FnOnce() -> Result<McpPolicy, ConfigError>,
    ) -> Result<McpAuthBuilder, ConfigError> {
        let mut auth = McpAuthBuilder::from(self.auth.clone())
            .resource_name("tower-mcp-auth example MCP server")
            .request_state_ttl(self.request_state_ttl);
        if self.auth.policy_file.is_none() {
            auth = auth.policy(policy()?);
        }
        if let Some(clock) = self.clock.clone() {
            auth = auth.clock(move || clock());
        }
        Ok(auth)
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

/// Signs an HS256 access token for `subject` with `scopes`, valid for an
/// hour, whose audience is the resource identifier: what a login service
/// sharing `JWT_SECRET` would issue. For the demo banner.
///
/// # Panics
///
/// When `secret` is shorter than 32 bytes (the validator refuses it too).
pub fn mint_token(
    secret: &SecretString,
    public_url: &str,
    subject: &str,
    scopes: &[&str],
) -> String {
    Hs256Signer::new(secret)
        .and_then(|signer| {
            (signer.token(public_url))
                .subject(subject)
                .client_id("mcp-demo")
                .scopes(scopes.iter().copied())
                .sign()
        })
        .expect("a JWT_SECRET the validator takes signs")
}

/// `http://<bind>/mcp`, with `localhost` in place of an unspecified address.
pub fn default_public_url(bind: SocketAddr) -> String {
    if bind.ip().is_unspecified() {
        format!("http://localhost:{}{MCP_PATH}", bind.port())
    } else {
        format!("http://{bind}{MCP_PATH}")
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
    let url = config.public_url();
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
    if let (true, Some(secret)) = (config.auth.generated_jwt_secret, &config.auth.jwt_secret) {
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
