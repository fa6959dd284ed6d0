//! The one way this crate connects to Redis (the rate limiter's shared
//! store and the DPoP replay cache): a lazy [`ConnectionManager`] with short
//! timeouts, so a Redis that is down at start is handled like one that goes
//! down later, and a slow one costs a request at most [`TIMEOUT`].

use std::time::Duration;

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, Client};

use crate::config::ConfigError;

/// The connection, response and per-command timeout.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(250);

/// A lazy connection to the Redis at `url` (`redis://[:password@]host:port/db`).
///
/// # Errors
///
/// [`ConfigError::Invalid`] when `url` is not a Redis URL. The message does
/// not repeat the URL, which may hold a password.
pub(crate) fn lazy_connection(url: &str) -> Result<ConnectionManager, ConfigError> {
    let client = Client::open(url)
        .map_err(|_| ConfigError::Invalid("REDIS_URL is not a valid Redis URL".into()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(100));
    ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
        ConfigError::Invalid(format!(
            "cannot set up the Redis connection: {:?}",
            e.kind()
        ))
    })
}
