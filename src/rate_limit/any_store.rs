//! [`AnyStore`]: the memory store or Redis, chosen at run time. Apart from
//! the store trait, which both stores implement, so that the trait's file
//! names no store.

use std::{fmt, future::Future, num::NonZeroU32};

#[cfg(feature = "redis")]
use super::redis::RedisStore;
use super::{
    key::RateLimitKey,
    memory::MemoryStore,
    quota::Quota,
    store::{Decision, RateLimitStore, StoreError},
};

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
    Memory(MemoryStore),
    /// In Redis, shared by replicas.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis(RedisStore),
}

impl From<MemoryStore> for AnyStore {
    fn from(store: MemoryStore) -> Self {
        Self::Memory(store)
    }
}

#[cfg(feature = "redis")]
impl From<RedisStore> for AnyStore {
    fn from(store: RedisStore) -> Self {
        Self::Redis(store)
    }
}

/// The future of an [`AnyStore`] check.
#[derive(Debug)]
pub struct AnyStoreFuture(AnyFuture);

enum AnyFuture {
    Memory(std::future::Ready<Result<Decision, StoreError>>),
    #[cfg(feature = "redis")]
    Redis(<RedisStore as RateLimitStore>::Future),
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
    use std::time::Duration;

    use super::*;

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
