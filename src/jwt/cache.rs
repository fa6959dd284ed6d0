//! The verified-token cache: SHA-256 digest of a token → its [`Principal`].
//!
//! Only digests are stored, never a token. Each entry lives no longer than
//! its token's `exp` and the configured maximum; entries made under an older
//! key set are ignored and the whole cache is emptied when keys change.

use std::time::{Duration, Instant, SystemTime};

use moka::{sync::Cache, Expiry};
use sha2::{Digest, Sha256};

use crate::{fx_hash::FxBuild, principal::Principal};

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
    /// Keyed by SHA-256 digests of verified tokens, which nobody chooses:
    /// hashed with FxHash, not SipHash, on every lookup.
    cache: Cache<[u8; 32], Entry, FxBuild>,
    max_ttl: Duration,
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
                .build_with_hasher(FxBuild),
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
