//! The bounded cache of exchanged tokens: keyed by one SHA-256 over the
//! caller's token and the target (so neither is kept, and a key is 32
//! bytes whatever the caller sent), served until shortly before the issued
//! token expires, with single flight (concurrent exchanges of one key make
//! one call, whose answer or error every waiter gets).
//!
//! Freshness is judged on Tokio's clock, on every read: a test (or a
//! paused runtime) moves it, and an entry past its time is never served.
//! moka's own expiry (on its clock) only frees the memory.

use std::{
    future::Future,
    task::{Context, Poll, Waker},
    time::Duration,
};

use moka::{future::Cache, ops::compute::Op, Expiry};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{ExchangeError, ExchangedToken, SubjectToken, Target};

/// The cache key: SHA-256 of the caller's token and the target.
pub(crate) type Key = [u8; 32];

/// The key of `subject`'s token exchanged for `target`.
pub(crate) fn key(subject: &SubjectToken, target: &Target) -> Key {
    let mut h = Sha256::new();
    let token = subject.expose().as_bytes();
    h.update((token.len() as u64).to_be_bytes());
    h.update(token);
    target.digest_into(&mut h);
    h.finalize().into()
}

/// An exchanged token and until when it is served.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) token: ExchangedToken,
    /// `None`: not to be served again (no `expires_in`, or too short a
    /// life); the waiters of its exchange get it all the same.
    pub(crate) fresh_until: Option<Instant>,
}

impl Entry {
    fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|until| now < until)
    }
}

struct UntilStale;

impl Expiry<Key, Entry> for UntilStale {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.fresh_until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(Instant::now())
        }))
    }
}

/// The shared cache.
#[derive(Clone)]
pub(crate) struct ExchangeCache(Cache<Key, Entry>);

impl ExchangeCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self(
            Cache::builder()
                .max_capacity(capacity.max(1))
                .expire_after(UntilStale)
                .build(),
        )
    }

    /// The fresh token for `key`, when the cache can give it without
    /// waiting: moka's `get` is `async` only because it may help with
    /// housekeeping; it is polled once here, and `None` (go the
    /// asynchronous way) is returned if it would wait. Lets a hit skip
    /// the exchange's future altogether.
    pub(crate) fn get_fresh_now(&self, key: &Key) -> Option<ExchangedToken> {
        let mut get = std::pin::pin!(self.0.get(key));
        match get.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Some(hit)) if hit.is_fresh(Instant::now()) => Some(hit.token),
            _ => None,
        }
    }

    /// The fresh token for `key`, or the one `exchange` gets, run once for
    /// every concurrent caller with this key. Errors are not cached.
    pub(crate) async fn get_or_exchange<F>(
        &self,
        key: Key,
        exchange: F,
    ) -> Result<ExchangedToken, ExchangeError>
    where
        F: Future<Output = Result<Entry, ExchangeError>>,
    {
        if let Some(hit) = self.0.get(&key).await {
            if hit.is_fresh(Instant::now()) {
                return Ok(hit.token);
            }
            // Stale on our clock: removed, unless a concurrent caller has
            // put a fresh one there meanwhile (compute is serial per key).
            self.0
                .entry(key)
                .and_compute_with(|entry| async move {
                    match entry {
                        Some(e) if !e.value().is_fresh(Instant::now()) => Op::Remove,
                        _ => Op::Nop,
                    }
                })
                .await;
        }
        self.0
            .try_get_with(key, exchange)
            .await
            .map(|entry| entry.token)
            .map_err(|e| ExchangeError::clone(&e))
    }
}

