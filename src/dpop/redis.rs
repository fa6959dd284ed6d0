//! [`RedisReplayCache`] (feature `redis`): the replay set in Redis, shared
//! by every replica, so a proof is accepted once across the fleet.

use std::{fmt, sync::Arc, time::Duration};

use redis::aio::ConnectionManager;

use super::{
    error::ProofErrorKind,
    replay::{ReplayCache, ReplayFuture, ReplayKey},
};
use crate::config::ConfigError;

/// The replay set in Redis: one `SET key 1 NX PX ttl` per proof, atomic in
/// Redis, so two replicas receiving the same proof at once accept it once.
/// The key expires when the proof's `iat` leaves the window. Redis down or
/// slower than the [timeout](Self::timeout) (default 250 ms): the proof is
/// refused ([`ProofErrorKind::ReplayStoreUnavailable`], a 503; fail closed).
///
/// # Example
///
/// ```no_run
/// use tower_mcp_auth::dpop::{ProofValidator, RedisReplayCache};
///
/// # async fn run() -> Result<(), tower_mcp_auth::ConfigError> {
/// let validator = ProofValidator::builder()
///     .replay_cache(RedisReplayCache::connect("redis://127.0.0.1:6379/").await?)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayCache {
    conn: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
}

impl RedisReplayCache {
    /// A cache on the Redis at `url` (`redis://[:password@]host:port/db`);
    /// connects lazily.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `url` is not a Redis URL (the message
    /// does not repeat the URL, which may hold a password).
    pub async fn connect(url: &str) -> Result<Self, ConfigError> {
        let conn = crate::redis_connection::lazy_connection(url)?;
        Ok(Self {
            conn,
            prefix: Arc::from("tower-mcp-auth:dpop:"),
            timeout: crate::redis_connection::TIMEOUT,
        })
    }

    /// The prefix of every key (default `tower-mcp-auth:dpop:`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// How long a check may take before the proof is refused (default 250 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for RedisReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayCache")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ReplayCache for RedisReplayCache {
    fn insert_once(&self, key: ReplayKey, now: u64, expires_at: u64) -> ReplayFuture<'_> {
        let redis_key = format!("{}{}", self.prefix, key.to_hex());
        let ttl_ms = expires_at.saturating_sub(now).max(1).saturating_mul(1000);
        let mut conn = self.conn.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let call = async {
                redis::cmd("SET")
                    .arg(&redis_key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            };
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok(Some(_))) => Ok(()),
                Ok(Ok(None)) => Err(ProofErrorKind::Replayed.into()),
                Ok(Err(_)) | Err(_) => Err(ProofErrorKind::ReplayStoreUnavailable.into()),
            }
        })
    }
}
