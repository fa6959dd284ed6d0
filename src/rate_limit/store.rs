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
