//! The [`RateLimitStore`] trait the layer checks against, and what a check
//! answers ([`Decision`]).

use std::{fmt, future::Future, num::NonZeroU32, time::Duration};

use super::{key::RateLimitKey, quota::Quota};

/// Where rate-limit state lives: [`MemoryStore`](super::MemoryStore) in
/// this process, or (feature `redis`) `RedisStore` shared by replicas.
///
/// A check takes `cost` units from `key`'s bucket under `quota`, all or
/// nothing. A cost above the quota's burst is taken as the whole burst
/// (such a call needs a full bucket), so an expensive call is slow, never
/// impossible.
pub trait RateLimitStore: Clone + Send + Sync + 'static {
    /// The future of one check. A store that can answer at once returns a
    /// ready future (`std::future::Ready`), and the layer then decides in
    /// `call` itself; box an I/O future (`Pin<Box<dyn Future …>>`).
    type Future: Future<Output = Result<Decision, StoreError>> + Send + Unpin + 'static;

    /// Takes `cost` units from `key`'s bucket.
    fn check(&self, key: &RateLimitKey, quota: Quota, cost: NonZeroU32) -> Self::Future;
}

/// The answer of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    quota: Quota,
    remaining: u32,
    reset: Duration,
    retry_after: Duration,
}

impl Decision {
    /// The call may go on; `remaining` units are left and the bucket is
    /// full again after `reset`.
    #[must_use]
    pub fn allow(quota: Quota, remaining: u32, reset: Duration) -> Self {
        Self {
            allowed: true,
            quota,
            remaining,
            reset,
            retry_after: Duration::ZERO,
        }
    }

    /// The call is refused; it would conform after `retry_after`, and the
    /// bucket is full again after `reset`.
    #[must_use]
    pub fn deny(quota: Quota, retry_after: Duration, reset: Duration) -> Self {
        Self {
            allowed: false,
            quota,
            remaining: 0,
            reset: reset.max(retry_after),
            retry_after,
        }
    }

    /// Whether the call may go on.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The quota that decided.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Units left after this call (0 when refused).
    #[must_use]
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Time until the bucket is full again.
    #[must_use]
    pub fn reset(&self) -> Duration {
        self.reset
    }

    /// When refused: time until the same call would conform.
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

/// A store could not answer (Redis unreachable, timed out, …). The layer's
/// [`FailMode`](super::FailMode) decides what happens to the call.
#[derive(Clone)]
pub struct StoreError(String);

impl StoreError {
    /// An error with a description (shown in audit events, never to
    /// clients; must not contain credentials).
    #[must_use]
    pub fn new(description: impl Into<String>) -> Self {
        Self(description.into())
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreError({:?})", self.0)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// A store chosen at run time: the memory store, or (feature `redis`)
/// Redis when it is configured. One layer type either way; the memory
/// path stays unboxed.
///
/// ```
/// use tower_mcp_auth::rate_limit::{AnyStore, MemoryStore, Quota, RateLimitLayer};
///
/// # async fn run() -> Result<(), tower_mcp_auth::ConfigError> {
/// let store = match std::env::var("REDIS_URL") {
///     #[cfg(feature = "redis")]
///     Ok(url) => AnyStore::from(tower_mcp_auth::rate_limit::RedisStore::connect(&url).await?),
///     _ => AnyStore::from(MemoryStore::new()),
/// };
/// let layer = RateLimitLayer::per_principal(Quota::per_minute(100)).store(store);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyStore {
    /// In this process.
    Memory(super::MemoryStore),
    /// In Redis, shared by replicas.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis(super::RedisStore),
}

impl From<super::MemoryStore> for AnyStore {
    fn from(store: super::MemoryStore) -> Self {
        Self::Memory(store)
    }
}

#[cfg(feature = "redis")]
impl From<super::RedisStore> for AnyStore {
    fn from(store: super::RedisStore) -> Self {
        Self::Redis(store)
    }
}

/// The future of an [`AnyStore`] check.
#[derive(Debug)]
pub struct AnyStoreFuture(AnyFuture);

enum AnyFuture {
    Memory(std::future::Ready<Result<Decision, StoreError>>),
    #[cfg(feature = "redis")]
    Redis(<super::RedisStore as RateLimitStore>::Future),
}

impl fmt::Debug for AnyFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyFuture")
    }
}

impl Future for AnyStoreFuture {
    type Output = Result<Decision, StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut self.0 {
            AnyFuture::Memory(f) => std::pin::Pin::new(f).poll(cx),
            #[cfg(feature = "redis")]
            AnyFuture::Redis(f) => f.as_mut().poll(cx),
        }
    }
}

impl RateLimitStore for AnyStore {
    type Future = AnyStoreFuture;

    fn check(&self, key: &RateLimitKey, quota: Quota, cost: NonZeroU32) -> Self::Future {
        AnyStoreFuture(match self {
            Self::Memory(s) => AnyFuture::Memory(s.check(key, quota, cost)),
            #[cfg(feature = "redis")]
            Self::Redis(s) => AnyFuture::Redis(s.check(key, quota, cost)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::MemoryStore;

    #[tokio::test]
    async fn any_store_forwards_to_the_memory_store() {
        let store = AnyStore::from(MemoryStore::new());
        let key = RateLimitKey::custom("k");
        let q = Quota::per_hour(1);
        let d = store.check(&key, q, NonZeroU32::MIN).await.unwrap();
        assert_eq!((d.is_allowed(), d.remaining()), (true, 0));
        let d = store.check(&key, q, NonZeroU32::MIN).await.unwrap();
        assert!(!d.is_allowed());
        assert!(d.retry_after() > Duration::from_secs(3599));
    }
}
