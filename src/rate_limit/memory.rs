//! [`MemoryStore`]: rate-limit state in this process, on `governor`'s GCRA,
//! with a bounded number of keys and a sweep run by the store itself.

use std::{
    fmt,
    future::{ready, Ready},
    num::{NonZeroU32, NonZeroU64},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use dashmap::{mapref::entry::Entry, DashMap};
use governor::{
    clock::{Clock, DefaultClock, Reference},
    middleware::{NoOpMiddleware, StateInformationMiddleware},
    nanos::Nanos,
    state::{keyed::ShrinkableKeyedStateStore, StateStore},
    RateLimiter,
};

use super::{
    key::RateLimitKey,
    quota::Quota,
    store::{Decision, RateLimitStore, StoreError},
};
use crate::audit;

/// The default maximum number of keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// The default time between sweeps.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// At most this many distinct quotas (from overrides) get their own
/// limiter; calls under further quotas are checked against the first quota
/// used (normally the layer's default) and reported as `degraded`.
pub const MAX_DISTINCT_QUOTAS: usize = 64;

/// In-process rate-limit state. Clones share
/// the state.
///
/// Generic over governor's [`Clock`] so tests can use
/// [`FakeRelativeClock`](governor::clock::FakeRelativeClock).
///
/// [`MemoryStore`]: rate-limit state in this process, on `governor`'s GCRA,
/// with a bounded number of keys and a sweep run by the store itself.
///
/// # Memory under attack
///
/// An anonymous attacker picks the key (a new source address per request),
/// so the store bounds what it keeps:
///
/// * **Sweep.** Every [`sweep_interval`](MemoryStore::sweep_interval)
///   (default 10 s) the next check removes every key whose bucket has been
///   full again for one refill interval (governor's `retain_recent`): such
///   a key is indistinguishable from one never seen. The sweep is amortised into checks rather than
///   run by a background task: it needs no runtime, cannot outlive the
///   store, follows the store's clock (so tests with a fake clock are
///   deterministic), and one check at a time runs it (a try-lock) while the
///   others go on; it visits one map shard at a time, so other checks wait
///   at most for one shard. When the store is full a sweep also runs at
///   once, at most once a second.
/// * **Maximum key count** ([`max_keys`](MemoryStore::max_keys), default
///   100 000 for the whole store). A check that finds the store full makes
///   room: it sweeps, and then evicts an eighth of the keys, those that
///   lose least: anonymous callers' (client addresses) before principals'
///   and custom keys, and among them the buckets that are fullest (the
///   earliest GCRA arrival time; a full bucket is the same as none). An
///   evicted caller starts again with a full bucket. A full table never
///   refuses anyone: there is no shared overflow bucket that a flood could
///   exhaust for every newcomer (issue 23). While another thread is making
///   room, a new key is checked as a new key is (a full bucket) without
///   being stored. Memory stays at `max_keys` entries (give or take one
///   per thread racing on the last slot). A `degraded` audit event
///   reports, once per sweep, that the store was full.
///
/// # Example
///
/// ```
/// use std::{num::NonZeroU32, time::Duration};
/// use governor::clock::FakeRelativeClock;
/// use tower_mcp_auth::rate_limit::{MemoryStore, Quota, RateLimitKey};
///
/// let clock = FakeRelativeClock::default();
/// let store = MemoryStore::with_clock(clock.clone()).max_keys(10_000);
/// let key = RateLimitKey::custom("tenant-1");
/// let quota = Quota::per_minute(2);
/// let one = NonZeroU32::MIN;
///
/// assert!(store.check_now(&key, quota, one).is_allowed());
/// assert!(store.check_now(&key, quota, one).is_allowed());
/// let refused = store.check_now(&key, quota, one);
/// assert!(!refused.is_allowed());
/// assert_eq!(refused.retry_after(), Duration::from_secs(30));
///
/// clock.advance(Duration::from_secs(30));
/// assert!(store.check_now(&key, quota, one).is_allowed());
/// ```
pub struct MemoryStore<C: Clock = DefaultClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock> Clone for MemoryStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

type Limiter<C> = RateLimiter<RateLimitKey, BoundedState, C, StateInformationMiddleware>;

/// One quota's limiter, its map (for eviction) and when it was made (its
/// arrival times count from then), in nanoseconds since the store's start.
struct Quoted<C: Clock> {
    quota: Quota,
    limiter: Arc<Limiter<C>>,
    map: Arc<DashMap<RateLimitKey, AtomicU64>>,
    since: u64,
}

impl<C: Clock> Clone for Quoted<C> {
    fn clone(&self) -> Self {
        Self {
            quota: self.quota,
            limiter: self.limiter.clone(),
            map: self.map.clone(),
            since: self.since,
        }
    }
}

struct Inner<C: Clock> {
    clock: C,
    start: C::Instant,
    limiters: ArcSwap<Vec<Quoted<C>>>,
    add_limiter: Mutex<()>,
    shared: Arc<Shared>,
    sweep_interval: u64,
    next_sweep: AtomicU64,
    last_sweep: AtomicU64,
    sweeping: AtomicBool,
    reported_overflow: AtomicU64,
    quota_overflow: AtomicBool,
}

/// What every limiter's map shares: the key budget.
#[derive(Debug)]
struct Shared {
    len: AtomicUsize,
    max: AtomicUsize,
    overflowed: AtomicU64,
}

impl MemoryStore<DefaultClock> {
    /// A store on the default (monotonic) clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl Default for MemoryStore<DefaultClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> MemoryStore<C>
where
    C: Clock + Clone + Send + Sync + 'static,
{
    /// A store on the given clock.
    #[must_use]
    pub fn with_clock(clock: C) -> Self {
        let start = clock.now();
        Self {
            inner: Arc::new(Inner {
                clock,
                start,
                limiters: ArcSwap::from_pointee(Vec::new()),
                add_limiter: Mutex::new(()),
                shared: Arc::new(Shared {
                    len: AtomicUsize::new(0),
                    max: AtomicUsize::new(DEFAULT_MAX_KEYS),
                    overflowed: AtomicU64::new(0),
                }),
                sweep_interval: nanos(DEFAULT_SWEEP_INTERVAL),
                next_sweep: AtomicU64::new(nanos(DEFAULT_SWEEP_INTERVAL)),
                last_sweep: AtomicU64::new(0),
                sweeping: AtomicBool::new(false),
                reported_overflow: AtomicU64::new(0),
                quota_overflow: AtomicBool::new(false),
            }),
        }
    }

    /// Sets the maximum number of keys (at least 1); see the
    /// [`MemoryStore`] docs for what happens past it.
    #[must_use]
    pub fn max_keys(self, max: usize) -> Self {
        self.inner.shared.max.store(max.max(1), Ordering::Relaxed);
        self
    }

    /// Sets the time between sweeps (at least 1 ms).
    ///
    /// # Panics
    ///
    /// When called on a store that has already been cloned.
    #[must_use]
    pub fn sweep_interval(mut self, every: Duration) -> Self {
        let every = nanos(every.max(Duration::from_millis(1)));
        let inner =
            Arc::get_mut(&mut self.inner).expect("configure a MemoryStore before cloning it");
        inner.sweep_interval = every;
        *inner.next_sweep.get_mut() = every;
        self
    }

    /// How many keys the store holds now (all quotas together).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.shared.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many checks so far found the store full (each made room, or was
    /// checked as a new key without being stored).
    #[must_use]
    pub fn overflowed(&self) -> u64 {
        self.inner.shared.overflowed.load(Ordering::Relaxed)
    }

    /// Removes every key whose bucket is full again, now. Checks run this
    /// on their own every [`sweep_interval`](Self::sweep_interval).
    pub fn sweep(&self) {
        for q in self.inner.limiters.load().iter() {
            q.limiter.retain_recent();
            if q.limiter.is_empty() {
                q.limiter.shrink_to_fit();
            }
        }
        let overflowed = self.overflowed();
        let before = self
            .inner
            .reported_overflow
            .swap(overflowed, Ordering::Relaxed);
        if overflowed > before {
            audit::degraded(
                "rate_limit",
                &format!(
                    "rate-limit store full ({} keys): {} checks made room for a new key by evicting idle ones",
                    self.inner.shared.max.load(Ordering::Relaxed),
                    overflowed - before
                ),
            );
        }
    }

    /// Checks synchronously (what [`RateLimitStore::check`] does, without
    /// the future).
    pub fn check_now(&self, key: &RateLimitKey, quota: Quota, cost: NonZeroU32) -> Decision {
        let now = self.inner.clock.now();
        let since_start = nanos_between(now, self.inner.start);
        self.maybe_sweep(since_start);
        if self.len() >= self.inner.shared.max.load(Ordering::Relaxed) {
            self.inner.shared.overflowed.fetch_add(1, Ordering::Relaxed);
            self.make_room(since_start);
        }
        let list = self.inner.limiters.load();
        let found;
        let (quota, limiter) = match list.iter().find(|q| q.quota == quota) {
            Some(q) => (q.quota, &*q.limiter),
            None => {
                found = self.limiter(quota);
                (found.0, &*found.1)
            }
        };
        let cost = cost.min(quota.burst_nonzero());
        let interval = quota.replenish_interval();
        match limiter.check_key_n(key, cost) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity().min(quota.burst_size());
                let used = quota.burst_size() - remaining;
                Decision::allow(quota, remaining, interval * used)
            }
            Ok(Err(not_until)) => {
                let retry = not_until.wait_time_from(now);
                let rest = quota.burst_size() - cost.get();
                Decision::deny(quota, retry, retry + interval * rest)
            }
            // Unreachable: the cost is clamped to the burst.
            Err(_) => Decision::deny(quota, quota.window(), quota.window()),
        }
    }

    fn limiter(&self, quota: Quota) -> (Quota, Arc<Limiter<C>>) {
        let find = |list: &[Quoted<C>]| {
            list.iter()
                .find(|q| q.quota == quota)
                .map(|q| (q.quota, q.limiter.clone()))
        };
        if let Some(found) = find(&self.inner.limiters.load()) {
            return found;
        }
        let _guard = self
            .inner
            .add_limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = self.inner.limiters.load_full();
        if let Some(found) = find(&list) {
            return found;
        }
        if list.len() >= MAX_DISTINCT_QUOTAS {
            if !self.inner.quota_overflow.swap(true, Ordering::Relaxed) {
                audit::degraded(
                    "rate_limit",
                    "more distinct rate-limit quotas than the memory store keeps; extra quotas use the first one",
                );
            }
            return (list[0].quota, list[0].limiter.clone());
        }
        let map = Arc::new(DashMap::new());
        let state = BoundedState {
            map: map.clone(),
            shared: self.inner.shared.clone(),
        };
        let since = nanos_between(self.inner.clock.now(), self.inner.start);
        let limiter = Arc::new(
            RateLimiter::<_, _, _, NoOpMiddleware<C::Instant>>::new(
                quota.to_governor(),
                state,
                self.inner.clock.clone(),
            )
            .with_middleware::<StateInformationMiddleware>(),
        );
        let mut next = Vec::clone(&list);
        next.push(Quoted {
            quota,
            limiter: limiter.clone(),
            map,
            since,
        });
        self.inner.limiters.store(Arc::new(next));
        (quota, limiter)
    }

    /// Makes room in a full store (one thread at a time; the others go on
    /// and check new keys unstored): sweeps, then evicts the eighth of the
    /// keys that lose least, anonymous before principals, fullest bucket
    /// (earliest arrival time) first.
    fn make_room(&self, now: u64) {
        let inner = &*self.inner;
        if inner
            .sweeping
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        inner.last_sweep.store(now, Ordering::Relaxed);
        self.sweep();
        let max = inner.shared.max.load(Ordering::Relaxed);
        let target = (max / 8).max(1);
        let len = self.len();
        if len + target > max {
            let list = inner.limiters.load();
            let score = |q: &Quoted<C>, key: &RateLimitKey, tat: &AtomicU64| {
                let tat = q.since.saturating_add(tat.load(Ordering::Relaxed));
                (u8::from(!key.is_anonymous()), tat)
            };
            let mut scores: Vec<(u8, u64)> = Vec::with_capacity(len);
            for q in list.iter() {
                scores.extend(q.map.iter().map(|e| score(q, e.key(), e.value())));
            }
            let evict = (len + target - max).min(scores.len());
            if evict > 0 {
                let cutoff = *scores.select_nth_unstable(evict - 1).1;
                drop(scores);
                let mut left = evict;
                for q in list.iter() {
                    let mut removed = 0;
                    q.map.retain(|key, tat| {
                        let drop_it = left > 0 && score(q, key, tat) <= cutoff;
                        left -= usize::from(drop_it);
                        removed += usize::from(drop_it);
                        !drop_it
                    });
                    inner.shared.len.fetch_sub(removed, Ordering::Relaxed);
                }
            }
        }
        inner.sweeping.store(false, Ordering::Release);
    }

    fn maybe_sweep(&self, now: u64) {
        let inner = &*self.inner;
        let due = now >= inner.next_sweep.load(Ordering::Relaxed)
            || (self.len() >= inner.shared.max.load(Ordering::Relaxed)
                && now >= inner.last_sweep.load(Ordering::Relaxed) + nanos(Duration::from_secs(1)));
        if !due
            || inner
                .sweeping
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        inner.last_sweep.store(now, Ordering::Relaxed);
        inner
            .next_sweep
            .store(now + inner.sweep_interval, Ordering::Relaxed);
        self.sweep();
        inner.sweeping.store(false, Ordering::Release);
    }
}

impl<C> RateLimitStore for MemoryStore<C>
where
    C: Clock + Clone + Send + Sync + 'static,
{
    type Future = Ready<Result<Decision, StoreError>>;

    fn check(&self, key: &RateLimitKey, quota: Quota, cost: NonZeroU32) -> Self::Future {
        ready(Ok(self.check_now(key, quota, cost)))
    }
}

impl<C: Clock> fmt::Debug for MemoryStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.inner.shared.len.load(Ordering::Relaxed))
            .field("max_keys", &self.inner.shared.max.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn nanos_between<I: Reference>(now: I, start: I) -> u64 {
    now.duration_since(start).as_u64()
}

/// One quota's keyed GCRA state: governor's `StateStore` over a `DashMap`
/// that stops growing at the shared key budget.
struct BoundedState {
    map: Arc<DashMap<RateLimitKey, AtomicU64>>,
    shared: Arc<Shared>,
}

/// The GCRA "theoretical arrival time" update, as governor's own in-memory
/// state does it: compare-and-swap until no other check raced us.
fn measure<T, E, F>(cell: &AtomicU64, f: F) -> Result<T, E>
where
    F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
{
    let mut prev = cell.load(Ordering::Acquire);
    loop {
        let (result, next) = f(NonZeroU64::new(prev).map(|n| Nanos::from(n.get())))?;
        match cell.compare_exchange_weak(prev, next.into(), Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return Ok(result),
            Err(actual) => prev = actual,
        }
    }
}

impl StateStore for BoundedState {
    type Key = RateLimitKey;

    fn measure_and_replace<T, F, E>(&self, key: &RateLimitKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(cell) = self.map.get(key) {
            return measure(&cell, f);
        }
        if self.shared.len.load(Ordering::Relaxed) >= self.shared.max.load(Ordering::Relaxed) {
            // Full, and another check is making room: decide as for a new
            // key (a full bucket) without storing it. Never a shared
            // bucket: one that a flood exhausts refuses every newcomer.
            return f(None).map(|(result, _)| result);
        }
        let cell = match self.map.entry(key.clone()) {
            Entry::Occupied(o) => o.into_ref(),
            Entry::Vacant(v) => {
                self.shared.len.fetch_add(1, Ordering::Relaxed);
                v.insert(AtomicU64::new(0))
            }
        }
        .downgrade();
        measure(&cell, f)
    }
}

impl ShrinkableKeyedStateStore<RateLimitKey> for BoundedState {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = u64::from(drop_below);
        let mut removed = 0;
        self.map.retain(|_, v| {
            let keep = v.load(Ordering::Relaxed) > drop_below;
            removed += usize::from(!keep);
            keep
        });
        self.shared.len.fetch_sub(removed, Ordering::Relaxed);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::{IpAddr, Ipv4Addr};

    const ONE: NonZeroU32 = NonZeroU32::MIN;

    fn store() -> (FakeRelativeClock, MemoryStore<FakeRelativeClock>) {
        let clock = FakeRelativeClock::default();
        (clock.clone(), MemoryStore::with_clock(clock))
    }

    #[test]
    fn quota_is_exact_and_refills_at_its_rate() {
        let (clock, store) = store();
        let key = RateLimitKey::custom("k");
        let q = Quota::per_minute(100);
        for i in 0..100 {
            let d = store.check_now(&key, q, ONE);
            assert!(d.is_allowed(), "call {i}");
            assert_eq!(d.remaining(), 99 - i);
        }
        let d = store.check_now(&key, q, ONE);
        assert!(!d.is_allowed());
        assert_eq!(d.retry_after(), Duration::from_millis(600));
        assert_eq!(d.reset(), Duration::from_millis(600 * 100));
        clock.advance(Duration::from_millis(599));
        assert!(!store.check_now(&key, q, ONE).is_allowed());
        clock.advance(Duration::from_millis(1));
        assert!(store.check_now(&key, q, ONE).is_allowed());
        assert!(!store.check_now(&key, q, ONE).is_allowed());
        // A full minute later the whole quota is back, and no more.
        clock.advance(Duration::from_secs(60));
        for _ in 0..100 {
            assert!(store.check_now(&key, q, ONE).is_allowed());
        }
        assert!(!store.check_now(&key, q, ONE).is_allowed());
    }

    #[test]
    fn burst_is_exact() {
        let (clock, store) = store();
        let key = RateLimitKey::custom("k");
        let q = Quota::per_second(10).burst(3);
        for _ in 0..3 {
            assert!(store.check_now(&key, q, ONE).is_allowed());
        }
        let d = store.check_now(&key, q, ONE);
        assert!(!d.is_allowed());
        assert_eq!(d.retry_after(), Duration::from_millis(100));
        clock.advance(Duration::from_millis(100));
        assert!(store.check_now(&key, q, ONE).is_allowed());
        assert!(!store.check_now(&key, q, ONE).is_allowed());
        // Idle for a long time: still only the burst.
        clock.advance(Duration::from_secs(100));
        for _ in 0..3 {
            assert!(store.check_now(&key, q, ONE).is_allowed());
        }
        assert!(!store.check_now(&key, q, ONE).is_allowed());
    }

    #[test]
    fn costs_take_several_units_and_are_clamped_to_the_burst() {
        let (clock, store) = store();
        let key = RateLimitKey::custom("k");
        let q = Quota::per_second(10);
        let d = store.check_now(&key, q, NonZeroU32::new(7).unwrap());
        assert_eq!((d.is_allowed(), d.remaining()), (true, 3));
        let d = store.check_now(&key, q, NonZeroU32::new(4).unwrap());
        assert!(!d.is_allowed());
        assert_eq!(d.retry_after(), Duration::from_millis(100));
        clock.advance(Duration::from_secs(1));
        let d = store.check_now(&key, q, NonZeroU32::new(1000).unwrap());
        assert_eq!((d.is_allowed(), d.remaining()), (true, 0));
    }

    #[test]
    fn keys_and_quotas_are_independent() {
        let (_, store) = store();
        let (a, b) = (RateLimitKey::custom("a"), RateLimitKey::custom("b"));
        let q = Quota::per_hour(1);
        assert!(store.check_now(&a, q, ONE).is_allowed());
        assert!(!store.check_now(&a, q, ONE).is_allowed());
        assert!(store.check_now(&b, q, ONE).is_allowed());
        // Same key under another quota is another bucket.
        assert!(store.check_now(&a, Quota::per_hour(2), ONE).is_allowed());
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn memory_stays_bounded_with_a_million_keys() {
        let (clock, store) = store();
        let store = store
            .max_keys(10_000)
            .sweep_interval(Duration::from_secs(1));
        let q = Quota::per_second(1);
        // A caller active before the flood keeps its own bucket.
        let regular = RateLimitKey::custom("regular");
        assert!(store.check_now(&regular, q, ONE).is_allowed());
        let mut max_seen = 0;
        for i in 0u32..1_000_000 {
            let key = RateLimitKey::ip(IpAddr::V4(Ipv4Addr::from(i)));
            store.check_now(&key, q, ONE);
            if i % 1000 == 999 {
                // 20 000 new addresses per second: twice what fits.
                clock.advance(Duration::from_millis(50));
                // The regular caller keeps its bucket (one call a second).
                if i % 20_000 == 19_999 {
                    assert!(store.check_now(&regular, q, ONE).is_allowed(), "at {i}");
                }
            }
            max_seen = max_seen.max(store.len());
        }
        assert!(max_seen <= 10_001, "{max_seen} keys held");
        assert!(store.overflowed() > 0);
        // Once the flood stops, the next sweep empties the store.
        clock.advance(Duration::from_secs(2));
        store.check_now(&regular, q, ONE);
        assert!(store.len() <= 2, "{} keys left", store.len());
    }

    /// Issue 23, item 1: a store full of a flood's exhausted buckets never
    /// refuses a newcomer (it used to check every new key against one
    /// shared overflow bucket, which the flood had emptied), and the
    /// callers it evicts are the flood's addresses, not a principal.
    #[test]
    fn a_full_store_never_refuses_a_newcomer() {
        let (_, store) = store();
        let store = store.max_keys(100);
        let q = Quota::per_hour(1);
        let regular = RateLimitKey::custom("regular");
        assert!(store.check_now(&regular, q, ONE).is_allowed());
        for i in 0..1000u32 {
            let key = RateLimitKey::ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
            store.check_now(&key, q, ONE);
            store.check_now(&key, q, ONE);
            assert!(store.len() <= 101, "{} keys held", store.len());
        }
        for i in 0..50 {
            let newcomer = RateLimitKey::custom(format!("new-{i}"));
            assert!(
                store.check_now(&newcomer, q, ONE).is_allowed(),
                "newcomer {i}"
            );
            assert!(
                !store.check_now(&newcomer, q, ONE).is_allowed(),
                "its own quota holds"
            );
        }
        assert!(store.len() <= 101, "{} keys held", store.len());
        assert!(store.overflowed() > 0);
        // The principal from before the flood kept its (used) bucket.
        assert!(!store.check_now(&regular, q, ONE).is_allowed());
    }

    #[test]
    fn sweep_removes_only_full_buckets() {
        let (clock, store) = store();
        let q = Quota::per_second(1);
        store.check_now(&RateLimitKey::custom("old"), q, ONE);
        // governor keeps a key until its bucket has been full for one
        // refill interval: used at 0, full at 1 s, dropped from 2 s.
        clock.advance(Duration::from_millis(2000));
        store.check_now(&RateLimitKey::custom("new"), q, ONE);
        store.sweep();
        assert_eq!(store.len(), 1);
        let d = store.check_now(&RateLimitKey::custom("new"), q, ONE);
        assert!(!d.is_allowed(), "the recent key kept its state");
    }
}
