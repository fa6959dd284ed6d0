//! The bounded cache of introspection results, keyed by the SHA-256 digest
//! of the token (the raw token is never kept), with per-entry lifetimes and
//! single flight (moka's `try_get_with`: concurrent lookups of one missing
//! key wait for a single initialisation).

use std::{
    future::Future,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use moka::{future::Cache, Expiry};
use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// The cache key: SHA-256 of the token.
pub(crate) type TokenDigest = [u8; 32];

/// Digests a token for use as a cache key.
pub(crate) fn token_digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// What the authorization server said about a token, before the per-use
/// checks (`exp`, audience).
#[derive(Clone, Debug)]
pub(crate) enum Verdict {
    /// Active: the principal (with its expiry and raw claims) and `aud`.
    Active {
        principal: Principal,
        audience: Option<Arc<[String]>>,
    },
    /// Refused for the given reason (inactive, or unusable).
    Refused(&'static str),
}

#[cfg(feature = "token-exchange")]
impl Verdict {
    /// An active verdict's principal records `digest`, its token's.
    pub(crate) fn with_token_digest(self, digest: TokenDigest) -> Self {
        match self {
            Self::Active {
                principal,
                audience,
            } => Self::Active {
                principal: principal.with_token_digest(digest),
                audience,
            },
            refused => refused,
        }
    }
}

/// A cache entry: the verdict and how long it may be served.
#[derive(Clone, Debug)]
pub(crate) struct Cached {
    pub(crate) verdict: Verdict,
    pub(crate) ttl: Duration,
}

struct PerEntry;

impl Expiry<TokenDigest, Cached> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &TokenDigest,
        value: &Cached,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The shared cache.
#[derive(Clone)]
pub(crate) struct TokenCache(Cache<TokenDigest, Cached>);

impl TokenCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self(
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntry)
                .build(),
        )
    }

    /// The cached entry for `key` if it can be read without waiting.
    /// moka's `get` is `async` only because it may help with housekeeping;
    /// it is polled once here, and `None` (try the asynchronous way) is
    /// returned if it would wait.
    pub(crate) fn get_now(&self, key: &TokenDigest) -> Option<Cached> {
        let mut get = std::pin::pin!(self.0.get(key));
        match get.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(hit) => hit,
            Poll::Pending => None,
        }
    }

    /// The cached entry for `key`, or the result of `init`, run once for
    /// all concurrent callers with the same key. Errors are not cached.
    pub(crate) async fn try_get_with<F, E>(
        &self,
        key: TokenDigest,
        init: F,
    ) -> Result<Cached, Arc<E>>
    where
        F: std::future::Future<Output = Result<Cached, E>>,
        E: Send + Sync + 'static,
    {
        // A hit is served by `get`, which (unlike `try_get_with`)
        // allocates nothing; a miss falls through to the single flight.
        if let Some(hit) = self.0.get(&key).await {
            return Ok(hit);
        }
        self.0.try_get_with(key, init).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthScheme;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn digest_is_sha256() {
        assert_eq!(
            token_digest("abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts ba7816bf"
        );
        assert_ne!(token_digest("a"), token_digest("b"));
    }

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl_and_init_runs_once() {
        let cache = TokenCache::new(100);
        let calls = AtomicUsize::new(0);
        let make = |ttl| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok::<_, ()>(Cached {
                    verdict: Verdict::Active {
                        principal: Principal::new(AuthScheme::Introspection, "a"),
                        audience: None,
                    },
                    ttl,
                })
            }
        };
        let short = token_digest("short");
        let long = token_digest("long");
        cache
            .try_get_with(short, make(Duration::from_millis(50)))
            .await
            .unwrap();
        cache
            .try_get_with(long, make(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Hits: `init` futures are built but never run.
        let ran = AtomicUsize::new(0);
        for key in [short, long] {
            cache
                .try_get_with(key, async {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Err::<Cached, ()>(())
                })
                .await
                .unwrap();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_millis(120)).await;
        let r = cache
            .try_get_with(short, async {
                ran.fetch_add(1, Ordering::SeqCst);
                Err::<Cached, ()>(())
            })
            .await;
        assert!(r.is_err(), "the short entry expired, init ran and failed");
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert!(cache
            .try_get_with(long, async { Err::<Cached, ()>(()) })
            .await
            .is_ok());
    }
}
