//! The verified-token cache: SHA-256 digest of a token → its [`Principal`].
//!
//! Only digests are stored, never a token. Each entry lives no longer than
//! its token's `exp` and the configured maximum; entries made under an older
//! key set are ignored and the whole cache is emptied when keys change.

use std::time::{Duration, Instant, SystemTime};

use moka::{sync::Cache, Expiry};
use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// Default maximum life of a cache entry.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Default maximum number of entries.
pub(crate) const DEFAULT_CAPACITY: u64 = 10_000;

#[derive(Clone)]
struct Entry {
    principal: Principal,
    generation: u64,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<[u8; 32], Entry> for PerEntry {
    fn expire_after_create(&self, _: &[u8; 32], value: &Entry, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A bounded cache of verified tokens. Clones share one cache.
#[derive(Clone)]
pub(crate) struct TokenCache {
    cache: Cache<[u8; 32], Entry, DigestHash>,
    max_ttl: Duration,
}

/// Hashes the cache's keys, SHA-256 digests of verified tokens: spread
/// evenly already and chosen by nobody (a token is cached only once
/// verified), so folding their words into a per-process seed spreads them
/// as well as SipHash, for a fraction of its cost on every lookup.
#[derive(Clone)]
struct DigestHash(u64);

impl DigestHash {
    fn new() -> Self {
        use std::hash::BuildHasher as _;
        Self(std::collections::hash_map::RandomState::new().hash_one(0u64))
    }
}

impl std::hash::BuildHasher for DigestHash {
    type Hasher = Folded;

    fn build_hasher(&self) -> Folded {
        Folded(self.0)
    }
}

/// The state of [`DigestHash`]: each eight bytes written, folded in.
struct Folded(u64);

impl std::hash::Hasher for Folded {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type Digest32 = [u8; 32];

pub(crate) fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    pub(crate) fn new(capacity: u64, max_ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntry)
                .build_with_hasher(DigestHash::new()),
            max_ttl,
        }
    }

    /// The principal of a token verified under key-set `generation`.
    pub(crate) fn get(&self, key: &Digest32, generation: u64) -> Option<Principal> {
        let entry = self.cache.get(key)?;
        if entry.generation != generation {
            self.cache.invalidate(key);
            return None;
        }
        // Belt and braces: never serve an expired principal, whatever the
        // cache's own clock says.
        if entry.principal.is_expired_at(SystemTime::now()) {
            self.cache.invalidate(key);
            return None;
        }
        Some(entry.principal)
    }

    /// Remembers a verified token until `min(exp, now + max_ttl)`.
    pub(crate) fn insert(&self, key: Digest32, principal: &Principal, generation: u64) {
        let Some(left) = principal.expires_in() else {
            return;
        };
        let ttl = left.min(self.max_ttl);
        if ttl.is_zero() {
            return;
        }
        self.cache.insert(
            key,
            Entry {
                principal: principal.clone(),
                generation,
                ttl,
            },
        );
    }

    /// Forgets every entry (keys changed).
    #[cfg(any(feature = "jwks", test))]
    pub(crate) fn clear(&self) {
        self.cache.invalidate_all();
    }

    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

/// A callback run when a remote key set changes.
#[cfg(feature = "jwks")]
pub(crate) type OnChange = std::sync::Arc<dyn Fn() + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthScheme;

    #[test]
    fn digests_hash_by_every_word_and_the_seed() {
        use std::hash::BuildHasher as _;
        let (h, other) = (DigestHash::new(), DigestHash::new());
        let a = digest("a");
        assert_eq!(h.hash_one(a), h.hash_one(digest("a")));
        assert_ne!(h.hash_one(a), other.hash_one(a));
        // A change in any one byte changes the hash.
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 1;
            assert_ne!(h.hash_one(a), h.hash_one(b), "byte {i}");
        }
    }

    #[test]
    fn entries_respect_generation_expiry_and_clear() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let p = Principal::new(AuthScheme::Jwt, "u")
            .with_expires_at(SystemTime::now() + Duration::from_secs(300));
        let k = digest("token-a");
        cache.insert(k, &p, 1);
        assert_eq!(cache.get(&k, 1).unwrap().subject(), Some("u"));
        assert!(cache.get(&k, 2).is_none(), "another key set: miss");
        assert!(cache.get(&k, 1).is_none(), "and the stale entry is gone");

        cache.insert(k, &p, 1);
        cache.clear();
        assert!(cache.get(&k, 1).is_none());

        // Already expired, or no expiry: never cached.
        let expired = Principal::new(AuthScheme::Jwt, "old")
            .with_expires_at(SystemTime::now() - Duration::from_secs(1));
        cache.insert(digest("b"), &expired, 1);
        cache.insert(digest("c"), &Principal::new(AuthScheme::Jwt, "x"), 1);
        assert_eq!(cache.entry_count(), 0);
        assert_ne!(digest("a"), digest("b"));
    }

    #[test]
    fn entry_ttl_is_capped_by_exp() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let p = Principal::new(AuthScheme::Jwt, "u")
            .with_expires_at(SystemTime::now() + Duration::from_millis(1200));
        let k = digest("short-lived");
        cache.insert(k, &p, 0);
        assert!(cache.get(&k, 0).is_some());
        std::thread::sleep(Duration::from_millis(1300));
        assert!(cache.get(&k, 0).is_none());
    }
}
