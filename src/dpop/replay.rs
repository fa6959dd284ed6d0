//! Replay detection (RFC 9449 §11.1): each proof (its `jti` under its key)
//! is accepted once while its `iat` is inside the window.
//!
//! [`ReplayCache`] is the store's trait; [`MemoryReplayCache`] is the
//! default, one process, bounded; `RedisReplayCache` (feature `redis`)
//! shares the set between replicas.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    fmt,
    future::Future,
    pin::Pin,
    sync::Mutex,
};

use sha2::{Digest, Sha256};

use super::error::{ProofError, ProofErrorKind};

/// What [`ReplayCache::insert_once`] returns.
pub type ReplayFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ProofError>> + Send + 'a>>;

/// The key a proof is remembered under: the first 16 bytes of
/// SHA-256(thumbprint ‖ 0 ‖ jti), so the cache holds a fixed size per
/// proof whatever the client put in `jti`, and one client's `jti` cannot
/// collide with another key's.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 16]);

impl ReplayKey {
    /// The key of the proof with this key thumbprint and `jti`.
    ///
    /// ```
    /// use tower_mcp_auth::dpop::ReplayKey;
    ///
    /// assert_eq!(ReplayKey::new("jkt", "a"), ReplayKey::new("jkt", "a"));
    /// assert_ne!(ReplayKey::new("jkt", "a"), ReplayKey::new("other", "a"));
    /// assert_eq!(ReplayKey::new("jkt", "a").to_hex().len(), 32);
    /// ```
    pub fn new(jkt: &str, jti: &str) -> Self {
        let mut h = Sha256::new();
        h.update(jkt.as_bytes());
        h.update([0]);
        h.update(jti.as_bytes());
        let digest = h.finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Lowercase hex of the 16 bytes (a Redis key suffix).
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.0.iter().fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({})", self.to_hex())
    }
}

/// A set of proofs already seen.
///
/// `insert_once` records `key` until `expires_at` (Unix seconds; the
/// validator passes the last second at which the proof's `iat` is still
/// inside the window, plus one) and answers `Ok(())` the first time,
/// [`ProofErrorKind::Replayed`] after. A store that cannot answer must
/// fail closed: [`ProofErrorKind::ReplayCacheFull`] or
/// [`ProofErrorKind::ReplayStoreUnavailable`].
pub trait ReplayCache: Send + Sync + 'static {
    /// Records `key` if it is new; see the [trait docs](ReplayCache).
    fn insert_once(&self, key: ReplayKey, now: u64, expires_at: u64) -> ReplayFuture<'_>;
}

/// The default most proofs remembered by a [`MemoryReplayCache`]: at the
/// default ±5 minute window a proof is remembered for at most about
/// 5 minutes after its `iat`, so this covers about 650 fresh proofs a
/// second, sustained, in about 13 MB (64 bytes per entry, measured at
/// 100 000 entries by `tests/dpop_memory.rs`).
pub const DEFAULT_REPLAY_CAPACITY: usize = 200_000;

/// A bounded in-process replay set.
///
/// Memory: each proof costs one 16-byte [`ReplayKey`] and an 8-byte expiry
/// in a hash map and again in an expiry heap, about 64 bytes in all
/// (measured, with the containers' growth slack); expired entries are dropped
/// on every insert (cheapest-first, from the heap). At
/// [`capacity`](Self::with_capacity) live entries a new proof is
/// **refused** ([`ProofErrorKind::ReplayCacheFull`], a 503): forgetting a
/// live entry would let that proof be replayed, so the cache fails closed.
///
/// One process only: replicas behind a load balancer each have their own
/// set, so a proof can be replayed once per replica; share one Redis
/// (`RedisReplayCache`) or use server nonces to narrow that.
///
/// # Example
///
/// ```
/// # tokio_test_block_on(async {
/// use tower_mcp_auth::dpop::{MemoryReplayCache, ReplayCache, ReplayKey, ProofErrorKind};
///
/// let cache = MemoryReplayCache::with_capacity(2);
/// let key = ReplayKey::new("jkt", "jti-1");
/// assert!(cache.insert_once(key, 1_000, 1_301).await.is_ok());
/// let again = cache.insert_once(key, 1_001, 1_302).await.unwrap_err();
/// assert_eq!(again.kind(), ProofErrorKind::Replayed);
/// // After the proof has expired, its entry is gone.
/// assert!(cache.insert_once(key, 1_301, 1_602).await.is_ok());
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct MemoryReplayCache {
    inner: Mutex<Entries>,
    capacity: usize,
}

#[derive(Default)]
struct Entries {
    seen: HashMap<[u8; 16], u64>,
    by_expiry: BinaryHeap<Reverse<(u64, [u8; 16])>>,
}

impl MemoryReplayCache {
    /// A cache of at most [`DEFAULT_REPLAY_CAPACITY`] live proofs.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// A cache of at most `capacity` live proofs (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Entries::default()),
            capacity: capacity.max(1),
        }
    }

    /// The most live proofs held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Live (not yet swept) entries.
    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The synchronous check behind [`ReplayCache::insert_once`].
    ///
    /// # Errors
    ///
    /// [`ProofErrorKind::Replayed`] for a live key,
    /// [`ProofErrorKind::ReplayCacheFull`] at capacity.
    pub fn insert_once_sync(
        &self,
        key: ReplayKey,
        now: u64,
        expires_at: u64,
    ) -> Result<(), ProofError> {
        let mut e = self.lock();
        while let Some(Reverse((exp, k))) = e.by_expiry.peek().copied() {
            if exp > now {
                break;
            }
            e.by_expiry.pop();
            if e.seen.get(&k) == Some(&exp) {
                e.seen.remove(&k);
            }
        }
        if e.seen.contains_key(&key.0) {
            return Err(ProofErrorKind::Replayed.into());
        }
        if e.seen.len() >= self.capacity {
            return Err(ProofErrorKind::ReplayCacheFull.into());
        }
        let expires_at = expires_at.max(now.saturating_add(1));
        e.seen.insert(key.0, expires_at);
        e.by_expiry.push(Reverse((expires_at, key.0)));
        Ok(())
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl ReplayCache for MemoryReplayCache {
    fn insert_once(&self, key: ReplayKey, now: u64, expires_at: u64) -> ReplayFuture<'_> {
        let result = self.insert_once_sync(key, now, expires_at);
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_then_replayed_then_expired() {
        let c = MemoryReplayCache::with_capacity(10);
        let k = ReplayKey::new("t", "j");
        assert!(c.insert_once_sync(k, 100, 400).is_ok());
        assert_eq!(
            c.insert_once_sync(k, 399, 700).unwrap_err().kind(),
            ProofErrorKind::Replayed
        );
        assert!(c.insert_once_sync(k, 400, 700).is_ok());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn full_fails_closed_until_entries_expire() {
        let c = MemoryReplayCache::with_capacity(3);
        for i in 0..3 {
            c.insert_once_sync(ReplayKey::new("t", &i.to_string()), 100, 200 + i)
                .unwrap();
        }
        let k = ReplayKey::new("t", "new");
        assert_eq!(
            c.insert_once_sync(k, 150, 450).unwrap_err().kind(),
            ProofErrorKind::ReplayCacheFull
        );
        // The live entries are still refused as replays, not forgotten.
        assert_eq!(
            c.insert_once_sync(ReplayKey::new("t", "0"), 150, 450)
                .unwrap_err()
                .kind(),
            ProofErrorKind::Replayed
        );
        // Once the first expires there is room for one more.
        assert!(c.insert_once_sync(k, 200, 500).is_ok());
        assert_eq!(c.len(), 3);
    }
}
