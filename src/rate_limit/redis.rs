//! [`RedisStore`] (feature `redis`): rate-limit state in Redis, shared by
//! every replica, so N server processes enforce one quota.

use std::{fmt, future::Future, num::NonZeroU32, pin::Pin, sync::Arc, time::Duration};

use redis::{aio::ConnectionManager, Script};

use super::{
    key::RateLimitKey,
    quota::Quota,
    store::{Decision, RateLimitStore, StoreError},
};
use crate::config::ConfigError;

/// GCRA over one key. ARGV: emission interval (µs), burst, cost.
/// Returns {1, remaining, reset_us} or {0, retry_after_us, reset_us}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tau = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tau
if allow_at > now then
  return {0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((tau - (new_tat - now)) / interval), new_tat - now}
";

/// Rate-limit state in Redis. Cheap to clone.
///
/// [`RedisStore`] (feature `redis`): rate-limit state in Redis, shared by
/// every replica, so N server processes enforce one quota.
///
/// Each check is **one** Lua script (GCRA, the same algorithm as the
/// memory store) run atomically by Redis with Redis's own clock (`TIME`),
/// so replicas with skewed clocks still agree. Keys expire when their
/// bucket is full again. The connection is a `redis` `ConnectionManager`
/// that reconnects on its own; a check that cannot be answered within the
/// [timeout](RedisStore::timeout) (default 250 ms) is a [`StoreError`],
/// and the layer's [`FailMode`](super::FailMode) decides.
///
/// # Example
///
/// ```no_run
/// use tower_mcp_auth::rate_limit::{FailMode, Quota, RateLimitLayer, RedisStore};
///
/// # async fn run() -> Result<(), tower_mcp_auth::ConfigError> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// let layer = RateLimitLayer::per_principal(Quota::per_minute(100))
///     .store(store)
///     .fail_mode(FailMode::Open);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    script: Arc<Script>,
    prefix: Arc<str>,
    timeout: Duration,
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[:password@]host:port/db`).
    /// Connects lazily: a Redis that is down at start is handled like one
    /// that goes down later.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `url` is not a Redis URL (the message
    /// does not repeat the URL, which may hold a password).
    pub async fn connect(url: &str) -> Result<Self, ConfigError> {
        let conn = crate::redis_connection::lazy_connection(url)?;
        Ok(Self {
            conn,
            script: Arc::new(Script::new(GCRA)),
            prefix: Arc::from("tower-mcp-auth:rl:"),
            timeout: crate::redis_connection::TIMEOUT,
        })
    }

    /// The prefix of every key (default `tower-mcp-auth:rl:`); give each
    /// service sharing a Redis its own.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// How long a check may take before it counts as a store failure
    /// (default 250 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl RateLimitStore for RedisStore {
    type Future = Pin<Box<dyn Future<Output = Result<Decision, StoreError>> + Send>>;

    fn check(&self, key: &RateLimitKey, quota: Quota, cost: NonZeroU32) -> Self::Future {
        let interval = micros(quota.replenish_interval());
        let burst = quota.burst_size();
        let cost = cost.get().min(burst);
        let redis_key = format!("{}{interval}:{burst}:{key}", self.prefix);
        let mut conn = self.conn.clone();
        let script = self.script.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let call = async {
                script
                    .key(redis_key)
                    .arg(interval)
                    .arg(burst)
                    .arg(cost)
                    .invoke_async::<(i64, i64, i64)>(&mut conn)
                    .await
            };
            let (allowed, a, reset) = match tokio::time::timeout(timeout, call).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Err(StoreError::new(format!("redis: {e}"))),
                Err(_) => return Err(StoreError::new("redis: timed out")),
            };
            let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
            Ok(if allowed == 1 {
                Decision::allow(quota, u32::try_from(a).unwrap_or(0), us(reset))
            } else {
                Decision::deny(quota, us(a), us(reset))
            })
        })
    }
}
