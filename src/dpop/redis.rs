//! [`RedisReplayCache`] (feature `redis`): the replay set in Redis, shared
//! by every replica, so a proof is accepted once across the fleet, with
//! each caller's and each key's live proofs bounded.

use std::{fmt, sync::Arc, time::Duration};

use redis::{aio::ConnectionManager, Script};

use super::{
    error::ProofErrorKind,
    replay::{
        ReplayCache, ReplayFuture, ReplayKey, ReplayOwner, DEFAULT_REPLAY_PER_KEY,
        DEFAULT_REPLAY_PER_PRINCIPAL,
    },
};
use crate::config::ConfigError;

/// Checks and records one proof, atomically: the proof's key (replayed
/// when present), then the caller's and the key's sorted sets of live
/// proofs (expired members dropped first; at its share, refused), then the
/// proof recorded in all three, each set kept only as long as its last
/// member. Returns 1 (accepted), 0 (replayed) or -1 (over a share).
///
/// KEYS: proof, caller's set, key's set. ARGV: now (s), expiry (s), ttl
/// (ms), caller's share, key's share, the member (the proof's key hex).
const INSERT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return -1 end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], 1, 'PX', ttl)
for i = 2, 3 do
  redis.call('ZADD', KEYS[i], tonumber(ARGV[2]), ARGV[6])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
";

/// The replay set in Redis, shared by every replica: one Lua script per
/// proof, atomic in Redis, so two replicas receiving the same proof at
/// once accept it once. The proof's key expires when its `iat` leaves the
/// window.
///
/// **Bounds.** Each caller (principal) and each key (thumbprint) has a
/// sorted set of its live proofs, expiring with them: at
/// [`per_principal`](Self::per_principal) (default
/// [`DEFAULT_REPLAY_PER_PRINCIPAL`]) or [`per_key`](Self::per_key)
/// (default [`DEFAULT_REPLAY_PER_KEY`]) live proofs that caller or key is
/// refused ([`ProofErrorKind::ReplayQuotaExceeded`], a 429) and nothing is
/// written, while every other caller's proofs are accepted. So a flood by
/// one token holder costs Redis at most its share (about 500 bytes a
/// proof, measured by `tests/dpop_redis.rs`), however long it lasts. There
/// is no global bound here: Redis has no fixed table to fill, and its
/// memory grows only with the number of callers holding live proofs.
///
/// Redis down or slower than the [timeout](Self::timeout) (default
/// 250 ms): the proof is refused ([`ProofErrorKind::ReplayStoreUnavailable`],
/// a 503; fail closed). The three keys of one proof are not in one hash
/// slot: a single Redis (or a replicated primary), not a Redis Cluster.
///
/// # Example
///
/// ```no_run
/// use tower_mcp_auth::dpop::{ProofValidator, RedisReplayCache};
///
/// # async fn run() -> Result<(), tower_mcp_auth::ConfigError> {
/// let validator = ProofValidator::builder()
///     .replay_cache(RedisReplayCache::connect("redis://127.0.0.1:6379/").await?.per_principal(5_000))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayCache {
    conn: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
    script: Arc<Script>,
    per_principal: usize,
    per_key: usize,
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
            script: Arc::new(Script::new(INSERT)),
            per_principal: DEFAULT_REPLAY_PER_PRINCIPAL,
            per_key: DEFAULT_REPLAY_PER_KEY,
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

    /// The most live proofs of one caller (principal), at least 1 (default
    /// [`DEFAULT_REPLAY_PER_PRINCIPAL`]).
    #[must_use]
    pub fn per_principal(mut self, n: usize) -> Self {
        self.per_principal = n.max(1);
        self
    }

    /// The most live proofs of one key (thumbprint), at least 1 (default
    /// [`DEFAULT_REPLAY_PER_KEY`]).
    #[must_use]
    pub fn per_key(mut self, n: usize) -> Self {
        self.per_key = n.max(1);
        self
    }
}

impl fmt::Debug for RedisReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayCache")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("per_principal", &self.per_principal)
            .field("per_key", &self.per_key)
            .finish_non_exhaustive()
    }
}

impl ReplayCache for RedisReplayCache {
    fn insert_once(
        &self,
        key: ReplayKey,
        owner: ReplayOwner,
        now: u64,
        expires_at: u64,
    ) -> ReplayFuture<'_> {
        let member = key.to_hex();
        let proof_key = format!("{}{member}", self.prefix);
        let caller_key = format!("{}p:{}", self.prefix, owner.principal_hex());
        let jkt_key = format!("{}k:{}", self.prefix, owner.key_hex());
        let expires_at = expires_at.max(now.saturating_add(1));
        let ttl_ms = (expires_at - now).saturating_mul(1000);
        let mut conn = self.conn.clone();
        let timeout = self.timeout;
        let (per_principal, per_key) = (self.per_principal, self.per_key);
        Box::pin(async move {
            let call = async {
                self.script
                    .key(proof_key)
                    .key(caller_key)
                    .key(jkt_key)
                    .arg(now)
                    .arg(expires_at)
                    .arg(ttl_ms)
                    .arg(per_principal)
                    .arg(per_key)
                    .arg(member)
                    .invoke_async::<i64>(&mut conn)
                    .await
            };
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok(1)) => Ok(()),
                Ok(Ok(0)) => Err(ProofErrorKind::Replayed.into()),
                Ok(Ok(_)) => Err(ProofErrorKind::ReplayQuotaExceeded.into()),
                Ok(Err(_)) | Err(_) => Err(ProofErrorKind::ReplayStoreUnavailable.into()),
            }
        })
    }
}
