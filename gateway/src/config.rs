//! The gateway's own settings: where it listens and the upstream it
//! forwards to ([`GatewayConfig::from_env`]). The authentication and
//! authorization settings (`API_KEY`, `JWT_SECRET`, `POLICY_FILE`, …) are
//! the stack's, read in [`stack`](crate::stack).
//!
//! | variable | meaning |
//! | --- | --- |
//! | `BIND` | listen address (default `127.0.0.1:3000`) |
//! | `UPSTREAM_URL` | the MCP server's Streamable HTTP endpoint, `http://` or `https://` (default `http://127.0.0.1:8000/mcp`, FastMCP's) |
//! | `UPSTREAM_CA_FILE` | for an `https://` upstream: a PEM file of the CA certificates to trust, in place of the system's roots |
//! | `UPSTREAM_AUTHORIZATION` | the `Authorization` value the gateway sends the upstream (its own credential, never a caller's) |
//! | `UPSTREAM_HEADER_<NAME>` | any other header sent to the upstream: `UPSTREAM_HEADER_X_API_KEY=…` sends `x-api-key: …` |
//! | `UPSTREAM_CONNECT_TIMEOUT_SECS` | TCP connect timeout (default 5; decimals allowed) |
//! | `UPSTREAM_TIMEOUT_SECS` | from sending a request to the upstream's response headers (default 60); a stream's body then runs as long as it runs |
//! | `UPSTREAM_MAX_CONNECTIONS` | the most requests in flight to the upstream, open SSE streams included (default 1024); over it a request waits, within `UPSTREAM_TIMEOUT_SECS`, then gets 503 |
//! | `UPSTREAM_IDENTITY_SECRET` | tell the upstream who calls: an HS256 secret (at least 32 bytes) signing a short-lived JWT per request, sent as the upstream's `Authorization: Bearer` (see [`identity`](crate::identity), its claims and risks); unset: off |
//! | `UPSTREAM_IDENTITY_AUDIENCE` | the identity token's `aud` (default `UPSTREAM_URL`) |
//! | `UPSTREAM_IDENTITY_TTL_SECS` | the identity token's lifetime (default 60) |
//! | `SHUTDOWN_GRACE_SECS` | after SIGTERM or Ctrl-C, how long requests in flight and open SSE streams may run before they are closed (default 10) |
//! | `METRICS_BIND` | serve the metrics in the Prometheus format at `http://<METRICS_BIND>/metrics` (feature `metrics`, on by default); unset: no metrics |

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    time::Duration,
};

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use secrecy::{ExposeSecret, SecretString};
use tower_mcp_auth::{optional_secret_from_env, ConfigError};

use crate::identity::{IdentityConfig, DEFAULT_TTL, MIN_SECRET_LEN};

/// The default listen address.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3000));

/// The default upstream: FastMCP's Streamable HTTP endpoint on its default
/// port.
pub const DEFAULT_UPSTREAM_URL: &str = "http://127.0.0.1:8000/mcp";

/// The default TCP connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default wait for the upstream's response headers.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The default limit of requests in flight to the upstream.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The default wait for open requests and streams at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The prefix of the variables that add a header to every upstream
/// request.
pub const UPSTREAM_HEADER_PREFIX: &str = "UPSTREAM_HEADER_";

/// Where the gateway listens and what it forwards to.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The listen address (`BIND`).
    pub bind: SocketAddr,
    /// The MCP server behind the gateway.
    pub upstream: UpstreamConfig,
    /// Where the Prometheus metrics are served (`METRICS_BIND`).
    pub metrics_bind: Option<SocketAddr>,
    /// How long a graceful shutdown waits for open requests and streams
    /// (`SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace: Duration,
}

/// The MCP server behind the gateway and how it is reached. Its `Debug`
/// redacts the configured headers' values.
#[derive(Clone)]
pub struct UpstreamConfig {
    /// Its Streamable HTTP endpoint (`UPSTREAM_URL`): `http://` or
    /// `https://`, with a host, a path and an optional query.
    pub url: Uri,
    /// The CAs trusted for an `https://` upstream (`UPSTREAM_CA_FILE`, a
    /// PEM file); `None`: the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Headers sent with every upstream request: the upstream's own
    /// credential (`UPSTREAM_AUTHORIZATION`, `UPSTREAM_HEADER_<NAME>`),
    /// marked sensitive.
    pub headers: HeaderMap,
    /// TCP connect timeout (`UPSTREAM_CONNECT_TIMEOUT_SECS`).
    pub connect_timeout: Duration,
    /// The wait for response headers (`UPSTREAM_TIMEOUT_SECS`).
    pub response_timeout: Duration,
    /// The most requests in flight (`UPSTREAM_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Identity tokens for the upstream (`UPSTREAM_IDENTITY_*`); `None`:
    /// off.
    pub identity: Option<IdentityConfig>,
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("UpstreamConfig")
            .field("url", &self.url)
            .field("ca_file", &self.ca_file)
            .field("headers", &names)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_connections", &self.max_connections)
            .field("identity", &self.identity)
            .finish()
    }
}

impl UpstreamConfig {
    /// The upstream at `url` with the default timeouts and limit and no
    /// headers of its own.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] unless `url` is an absolute `http://`
    /// or `https://` URL with a host.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_mcp_auth_gateway::config::UpstreamConfig;
    ///
    /// let upstream = UpstreamConfig::new("http://127.0.0.1:8000/mcp").unwrap();
    /// assert_eq!(upstream.url.path(), "/mcp");
    /// assert!(UpstreamConfig::new("https://mcp.internal/mcp").is_ok());
    /// assert!(UpstreamConfig::new("ftp://example.com/").is_err());
    /// ```
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            url: upstream_url(url)?,
            ca_file: None,
            headers: HeaderMap::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            identity: None,
        })
    }
}

fn upstream_url(url: &str) -> Result<Uri, ConfigError> {
    let invalid = |reason| ConfigError::InvalidUrl {
        what: "upstream URL",
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("expected an http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    Ok(uri)
}

impl GatewayConfig {
    /// Reads the variables in the table above.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable that is wrong.
    pub fn from_env() -> Result<Self, ConfigError> {
        let bind = match env_opt("BIND")? {
            None => DEFAULT_BIND,
            Some(v) => v.parse().map_err(|_| ConfigError::InvalidEnv {
                var: "BIND".into(),
                reason: "expected an IP address and port such as 127.0.0.1:3000 or [::]:8080"
                    .into(),
            })?,
        };
        let url = env_opt("UPSTREAM_URL")?.unwrap_or_else(|| DEFAULT_UPSTREAM_URL.into());
        let mut upstream = UpstreamConfig::new(&url).map_err(|e| ConfigError::InvalidEnv {
            var: "UPSTREAM_URL".into(),
            reason: e.to_string(),
        })?;
        upstream.headers = upstream_headers(std::env::vars_os())?;
        upstream.ca_file = env_opt("UPSTREAM_CA_FILE")?.map(Into::into);
        if let Some(t) = env_secs("UPSTREAM_CONNECT_TIMEOUT_SECS")? {
            upstream.connect_timeout = t;
        }
        if let Some(t) = env_secs("UPSTREAM_TIMEOUT_SECS")? {
            upstream.response_timeout = t;
        }
        if let Some(v) = env_opt("UPSTREAM_MAX_CONNECTIONS")? {
            upstream.max_connections = match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ConfigError::InvalidEnv {
                        var: "UPSTREAM_MAX_CONNECTIONS".into(),
                        reason: "expected a whole number, at least 1".into(),
                    })
                }
            };
        }
        upstream.identity = identity_from_env()?;
        if upstream.identity.is_some() && upstream.headers.contains_key(http::header::AUTHORIZATION)
        {
            return Err(ConfigError::InvalidEnv {
                var: "UPSTREAM_AUTHORIZATION".into(),
                reason: "UPSTREAM_IDENTITY_SECRET sends the identity token as the upstream's \
                         Authorization; pass the upstream's static credential in another header \
                         (UPSTREAM_HEADER_<NAME>)"
                    .into(),
            });
        }
        let metrics_bind = env_opt("METRICS_BIND")?
            .map(|v| {
                if cfg!(not(feature = "metrics")) {
                    return Err(ConfigError::InvalidEnv {
                        var: "METRICS_BIND".into(),
                        reason: "this build has no metrics; build with `--features metrics`".into(),
                    });
                }
                v.parse().map_err(|_| ConfigError::InvalidEnv {
                    var: "METRICS_BIND".into(),
                    reason: "expected an IP address and port such as 127.0.0.1:9090".into(),
                })
            })
            .transpose()?;
        Ok(Self {
            bind,
            upstream,
            metrics_bind,
            shutdown_grace: env_secs("SHUTDOWN_GRACE_SECS")?.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        })
    }
}

/// `UPSTREAM_IDENTITY_SECRET`, `_AUDIENCE`, `_TTL_SECS`.
fn identity_from_env() -> Result<Option<IdentityConfig>, ConfigError> {
    let Some(secret) = optional_secret_from_env("UPSTREAM_IDENTITY_SECRET")? else {
        return Ok(None);
    };
    if secret.expose_secret().len() < MIN_SECRET_LEN {
        return Err(ConfigError::InvalidEnv {
            var: "UPSTREAM_IDENTITY_SECRET".into(),
            reason: format!("expected at least {MIN_SECRET_LEN} bytes"),
        });
    }
    Ok(Some(IdentityConfig {
        secret,
        audience: env_opt("UPSTREAM_IDENTITY_AUDIENCE")?,
        ttl: env_secs("UPSTREAM_IDENTITY_TTL_SECS")?.unwrap_or(DEFAULT_TTL),
    }))
}

/// `UPSTREAM_AUTHORIZATION` and every `UPSTREAM_HEADER_<NAME>` of `vars`,
/// as sensitive header values.
fn upstream_headers(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<HeaderMap, ConfigError> {
    let mut headers = HeaderMap::new();
    let mut add = |var: &str, name: HeaderName| -> Result<(), ConfigError> {
        if let Some(value) = optional_secret_from_env(var)? {
            headers.insert(name, header_value(var, &value)?);
        }
        Ok(())
    };
    add("UPSTREAM_AUTHORIZATION", http::header::AUTHORIZATION)?;
    for (var, _) in vars {
        let Some(var) = var.to_str() else { continue };
        let Some(suffix) = var.strip_prefix(UPSTREAM_HEADER_PREFIX) else {
            continue;
        };
        let name = suffix.replace('_', "-").to_ascii_lowercase();
        let name = HeaderName::try_from(name.as_str()).map_err(|_| ConfigError::InvalidEnv {
            var: var.into(),
            reason: "the part after UPSTREAM_HEADER_ is not a header name".into(),
        })?;
        add(var, name)?;
    }
    Ok(headers)
}

fn header_value(var: &str, value: &SecretString) -> Result<HeaderValue, ConfigError> {
    let mut value = HeaderValue::from_str(value.expose_secret().trim()).map_err(|_| {
        ConfigError::InvalidEnv {
            var: var.into(),
            reason: "not a valid header value (visible ASCII only)".into(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// An optional, non-secret variable: `None` when unset or empty.
pub(crate) fn env_opt(var: &str) -> Result<Option<String>, ConfigError> {
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

/// A positive number of seconds (decimals allowed).
fn env_secs(var: &str) -> Result<Option<Duration>, ConfigError> {
    env_opt(var)?
        .map(|v| match v.parse::<f64>() {
            Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(ConfigError::InvalidEnv {
                var: var.into(),
                reason: "expected a number of seconds, more than 0 and at most 86400".into(),
            }),
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        assert!(UpstreamConfig::new("http://localhost:8000/mcp").is_ok());
        assert!(UpstreamConfig::new("https://x/mcp").is_ok());
        for bad in ["ws://x/mcp", "/mcp", "http:///mcp", "not a url"] {
            assert!(UpstreamConfig::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_variables_name_their_header() {
        // Only the names are read from the iterator; the values from the
        // environment of this process, where none of these are set.
        let vars = [("PATH".into(), "x".into())].into_iter();
        assert!(upstream_headers(vars).unwrap().is_empty());
        let bad = [("UPSTREAM_HEADER_BAD NAME".into(), "x".into())].into_iter();
        assert!(upstream_headers(bad).is_err());
    }
}
