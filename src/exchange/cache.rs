//! The bounded cache of exchanged tokens, served until shortly before the
//! issued token expires, with single flight (concurrent exchanges of one
//! key make one call, whose answer or error every waiter gets).
//!
//! The key is the SHA-256 digest of the caller's token (the token itself is
//! never kept), computed once per request: by the authenticator for its
//! own cache and carried on the [`SubjectToken`]; and the target's 64-bit
//! hash under a per-process random key, computed when the [`Target`] is
//! built. An entry also keeps its target, which a hit must equal exactly.
//! So a hit hashes nothing, and a collision of target hashes (one
//! caller's own entries only) is a miss and an uncached exchange, never
//! another target's token.
//!
//! Freshness is judged on Tokio's clock, on every read: a test (or a
//! paused runtime) moves it, and an entry past its time is never served.
//! moka's own expiry (on its clock) only frees the memory.

use std::{
    future::Future,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use moka::{future::Cache, ops::compute::Op, Expiry};
use tokio::time::Instant;

use super::{token::ExchangedToken, ExchangeError, SubjectToken, Target};

/// The cache key: SHA-256 of the caller's token, and the target's hash.
pub(crate) type Key = ([u8; 32], u64);

/// An exchanged token, for which target, and until when it is served.
/// Kept behind an `Arc`: a hit clones a reference, not the target.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) token: ExchangedToken,
    /// `None`: not to be served again (no `expires_in`, or too short a
    /// life); the waiters of its exchange get it all the same.
    pub(crate) fresh_until: Option<Instant>,
    pub(crate) target: Target,
}

impl Entry {
    fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|until| now < until)
    }
}

struct UntilStale;

impl Expiry<Key, Arc<Entry>> for UntilStale {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.fresh_until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(Instant::now())
        }))
    }
}

/// The shared cache.
#[derive(Clone)]
pub(crate) struct ExchangeCache {
    cache: Cache<Key, Arc<Entry>>,
}

impl ExchangeCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity.max(1))
                .expire_after(UntilStale)
                .build(),
        }
    }

    /// The key of `subject`'s token exchanged for `target`: both parts
    /// computed already, nothing hashed here.
    pub(crate) fn key(subject: &SubjectToken, target: &Target) -> Key {
        (*subject.digest(), target.hash())
    }

    /// The fresh token for `key` and `target`, when the cache can give it
    /// without waiting: moka's `get` is `async` only because it may help
    /// with housekeeping; it is polled once here, and `None` (go the
    /// asynchronous way) is returned if it would wait. Lets a hit skip
    /// the exchange's future altogether.
    pub(crate) fn get_fresh_now(&self, key: &Key, target: &Target) -> Option<ExchangedToken> {
        let mut get = std::pin::pin!(self.cache.get(key));
        match get.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Some(hit)) if hit.is_fresh(Instant::now()) && hit.target == *target => {
                Some(hit.token.clone())
            }
            _ => None,
        }
    }

    /// The fresh token for `key` and `target`, or the one an exchange
    /// (`exchange()`) gets, run once for every concurrent caller with this
    /// key. Errors are not cached.
    pub(crate) async fn get_or_exchange<F, Fut>(
        &self,
        key: Key,
        target: &Target,
        exchange: F,
    ) -> Result<ExchangedToken, ExchangeError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Entry, ExchangeError>>,
    {
        if let Some(hit) = self.cache.get(&key).await {
            let fresh = hit.is_fresh(Instant::now());
            if fresh && hit.target == *target {
                return Ok(hit.token.clone());
            }
            if fresh {
                // Another target with the same hash: its entry stays.
                return exchange().await.map(|e| e.token);
            }
            // Stale on our clock: removed, unless a concurrent caller has
            // put a fresh one there meanwhile (compute is serial per key).
            self.cache
                .entry(key)
                .and_compute_with(|entry| async move {
                    match entry {
                        Some(e) if !e.value().is_fresh(Instant::now()) => Op::Remove,
                        _ => Op::Nop,
                    }
                })
                .await;
        }
        let entry = self
            .cache
            .try_get_with(key, async { exchange().await.map(Arc::new) })
            .await
            .map_err(|e| ExchangeError::clone(&e))?;
        if entry.target == *target {
            Ok(entry.token.clone())
        } else {
            // A concurrent exchange for another target with the same hash.
            exchange().await.map(|e| e.token)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn issued(name: &str, target: &Target) -> Entry {
        let body = format!(r#"{{"access_token":"{name}","token_type":"Bearer"}}"#);
        let token = super::super::exchanger::tests_support::token(&body);
        Entry {
            token,
            fresh_until: Some(Instant::now() + Duration::from_secs(60)),
            target: target.clone(),
        }
    }

    /// Two targets whose hashes collide never get each other's token.
    #[tokio::test]
    async fn colliding_target_hashes_never_share_a_token() {
        let cache = ExchangeCache::new(100);
        let subject = SubjectToken::new("caller", "alice");
        // Every target hashes alike.
        let (a, b) = (
            Target::resource("https://a").with_hash(0),
            Target::resource("https://b").with_hash(0),
        );
        let (ka, kb) = (
            ExchangeCache::key(&subject, &a),
            ExchangeCache::key(&subject, &b),
        );
        assert_eq!(ka, kb);
        let calls = AtomicUsize::new(0);
        let get = |t: &Target, k: Key| {
            let t = t.clone();
            let calls = &calls;
            let cache = &cache;
            async move {
                let tt = t.clone();
                cache
                    .get_or_exchange(k, &t, move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let e = issued(&tt.resources()[0], &tt);
                        async move { Ok(e) }
                    })
                    .await
                    .unwrap()
                    .authorization()
            }
        };
        assert_eq!(get(&a, ka).await, "Bearer https://a");
        assert_eq!(get(&b, kb).await, "Bearer https://b");
        assert_eq!(get(&a, ka).await, "Bearer https://a");
        assert!(cache.get_fresh_now(&kb, &b).is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
