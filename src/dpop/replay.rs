//! Replay detection (RFC 9449 §11.1): each proof (its `jti` under its key)
//! is accepted once while its `iat` is inside the window.
//!
//! [`ReplayCache`] is the store's trait; [`MemoryReplayCache`] is the
//! default, one process, bounded; `RedisReplayCache` (feature `redis`)
//! shares the set between replicas.

use std::{
    cmp::Reverse,
    collections::{BTreeSet, BinaryHeap, HashMap},
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
        hex(&self.0)
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({})", self.to_hex())
    }
}

/// Whom a proof is counted against in the replay store: the key that
/// signed it (its RFC 7638 thumbprint) and the caller (principal) its
/// access token was issued to. Each is kept as the first 16 bytes of a
/// SHA-256, so the store holds a fixed size per owner whatever the token
/// says.
///
/// ```
/// use tower_mcp_auth::dpop::ReplayOwner;
///
/// let a = ReplayOwner::new("jkt", "alice");
/// assert_eq!(a, ReplayOwner::new("jkt", "alice"));
/// assert_ne!(a.principal_hex(), ReplayOwner::new("jkt", "bob").principal_hex());
/// assert_eq!(a.key_hex(), ReplayOwner::new("jkt", "bob").key_hex());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayOwner {
    key: [u8; 16],
    principal: [u8; 16],
}

impl ReplayOwner {
    /// The owner of a proof signed by the key of thumbprint `jkt` for the
    /// caller `principal` (any string naming the caller; the DPoP layer
    /// passes the token's issuer and subject).
    pub fn new(jkt: &str, principal: &str) -> Self {
        Self {
            key: digest16(b"jkt", jkt.as_bytes()),
            principal: digest16(b"principal", principal.as_bytes()),
        }
    }

    /// Lowercase hex of the key's 16 bytes (a Redis key suffix).
    pub fn key_hex(&self) -> String {
        hex(&self.key)
    }

    /// Lowercase hex of the caller's 16 bytes (a Redis key suffix).
    pub fn principal_hex(&self) -> String {
        hex(&self.principal)
    }

    fn key_id(&self) -> u64 {
        u64::from_le_bytes(self.key[..8].try_into().expect("8 bytes"))
    }

    fn principal_id(&self) -> u64 {
        u64::from_le_bytes(self.principal[..8].try_into().expect("8 bytes"))
    }
}

impl fmt::Debug for ReplayOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayOwner")
            .field("key", &self.key_hex())
            .field("principal", &self.principal_hex())
            .finish()
    }
}

fn digest16(domain: &[u8], value: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(domain);
    h.update([0]);
    h.update(value);
    let digest = h.finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn hex(bytes: &[u8; 16]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A set of proofs already seen.
///
/// `insert_once` records `key` for `owner` until `expires_at` (Unix
/// seconds; the validator passes the last second at which the proof's
/// `iat` is still inside the window, plus one) and answers `Ok(())` the
/// first time, [`ProofErrorKind::Replayed`] after. The validator calls it
/// only for a proof that passed every other check, its key binding
/// included, so what a store holds is always a caller's own good proofs.
///
/// A store bounds the live entries of each owner's key and caller
/// ([`ProofErrorKind::ReplayQuotaExceeded`], a 429, for the owner over its
/// share, and only for it), and must fail closed when it cannot answer:
/// [`ProofErrorKind::ReplayCacheFull`] or
/// [`ProofErrorKind::ReplayStoreUnavailable`].
pub trait ReplayCache: Send + Sync + 'static {
    /// Records `key` if it is new; see the [trait docs](ReplayCache).
    fn insert_once(
        &self,
        key: ReplayKey,
        owner: ReplayOwner,
        now: u64,
        expires_at: u64,
    ) -> ReplayFuture<'_>;
}

/// A shared store (kept, for example, to read its size).
impl<T: ReplayCache> ReplayCache for std::sync::Arc<T> {
    fn insert_once(
        &self,
        key: ReplayKey,
        owner: ReplayOwner,
        now: u64,
        expires_at: u64,
    ) -> ReplayFuture<'_> {
        (**self).insert_once(key, owner, now, expires_at)
    }
}

/// The default most proofs remembered by a [`MemoryReplayCache`]: a proof
/// is remembered until its `iat` leaves the window (about 5 minutes at the
/// default window), so this covers about 650 fresh proofs a second,
/// sustained, in about 25 MB (about 130 bytes per entry, measured at
/// 100 000 entries by `tests/dpop_memory.rs`).
pub const DEFAULT_REPLAY_CAPACITY: usize = 200_000;

/// The default share of one caller (principal) in a [`MemoryReplayCache`]
/// or a `RedisReplayCache`: 10 000 live proofs, about 33 requests a second
/// sustained at the default 5-minute window.
pub const DEFAULT_REPLAY_PER_PRINCIPAL: usize = 10_000;

/// The default share of one key (thumbprint): 20 000 live proofs (a key
/// may serve several callers, a server-side client acting for its users).
pub const DEFAULT_REPLAY_PER_KEY: usize = 20_000;

/// A bounded in-process replay set, shared fairly between callers.
///
/// **Bounds.** At most [`capacity`](Self::with_capacity) live entries in
/// all; at most [`per_principal`](Self::per_principal) for one caller and
/// [`per_key`](Self::per_key) for one key. A caller or key at its bound is
/// refused itself ([`ProofErrorKind::ReplayQuotaExceeded`], 429 with
/// `Retry-After`) while everyone else's proofs are still accepted.
///
/// **A full table never refuses an honest caller.** When the table is at
/// capacity (many callers at once), a caller holding fewer than its fair
/// share (capacity divided by the callers holding entries) is still
/// accepted: room is made by dropping the soonest-expiring entry of the
/// caller holding the most, which is over its fair share. That caller's
/// dropped proofs must stay refused, so it keeps a watermark: from then
/// on, until the dropped entries would have expired, any of its proofs
/// that expires no later than the last dropped one is refused as a
/// replay. No live proof is ever forgotten in a way that lets it be
/// accepted twice (fail closed); only a caller at or over its fair share
/// of a full table is refused (429).
///
/// Memory: each proof costs a 16-byte [`ReplayKey`], its expiry and its
/// owner's ids in a hash map, and two heap items (global expiry, the
/// caller's own), about 130 bytes in all (measured, with the containers'
/// growth slack); expired entries are dropped on every insert
/// (cheapest-first, from the heap).
///
/// One process only: replicas behind a load balancer each have their own
/// set, so a proof can be replayed once per replica; share one Redis
/// (`RedisReplayCache`) or use server nonces to narrow that.
///
/// # Example
///
/// ```
/// # tokio_test_block_on(async {
/// use tower_mcp_auth::dpop::{
///     MemoryReplayCache, ProofErrorKind, ReplayCache, ReplayKey, ReplayOwner,
/// };
///
/// let cache = MemoryReplayCache::with_capacity(100).per_principal(2);
/// let alice = ReplayOwner::new("jkt-a", "alice");
/// let key = ReplayKey::new("jkt-a", "jti-1");
/// assert!(cache.insert_once(key, alice, 1_000, 1_301).await.is_ok());
/// let again = cache.insert_once(key, alice, 1_001, 1_302).await.unwrap_err();
/// assert_eq!(again.kind(), ProofErrorKind::Replayed);
/// // Alice's share is two live proofs; Bob is not concerned.
/// cache.insert_once(ReplayKey::new("jkt-a", "jti-2"), alice, 1_000, 1_301).await.unwrap();
/// let over = cache
///     .insert_once(ReplayKey::new("jkt-a", "jti-3"), alice, 1_000, 1_301)
///     .await
///     .unwrap_err();
/// assert_eq!(over.kind(), ProofErrorKind::ReplayQuotaExceeded);
/// let bob = ReplayOwner::new("jkt-b", "bob");
/// assert!(cache.insert_once(ReplayKey::new("jkt-b", "jti-1"), bob, 1_000, 1_301).await.is_ok());
/// // After the proof has expired, its entry is gone.
/// assert!(cache.insert_once(key, alice, 1_301, 1_602).await.is_ok());
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct MemoryReplayCache {
    inner: Mutex<Entries>,
    capacity: usize,
    per_principal: usize,
    per_key: usize,
}

/// One live proof.
struct Live {
    expires_at: u64,
    key_id: u64,
    principal_id: u64,
}

/// One caller's live proofs.
#[derive(Default)]
struct Caller {
    live: u32,
    /// Its entries, soonest expiry first (expired ones dropped lazily, on
    /// every visit).
    own: BinaryHeap<Reverse<(u64, [u8; 16])>>,
    /// Its proofs expiring no later than this were dropped to make room:
    /// refused as replays.
    watermark: u64,
}

#[derive(Default)]
struct Entries {
    seen: HashMap<[u8; 16], Live>,
    /// Expiry, replay key, caller.
    by_expiry: BinaryHeap<Reverse<(u64, [u8; 16], u64)>>,
    keys: HashMap<u64, u32>,
    callers: HashMap<u64, Caller>,
    /// The callers holding entries, by how many (the heaviest last).
    by_load: BTreeSet<(u32, u64)>,
}

impl Entries {
    /// Drops every entry expired at `now`, and the callers left with
    /// nothing to remember.
    fn sweep(&mut self, now: u64) {
        while let Some(Reverse((exp, k, principal))) = self.by_expiry.peek().copied() {
            if exp > now {
                break;
            }
            self.by_expiry.pop();
            if self.seen.get(&k).is_some_and(|l| l.expires_at == exp) {
                self.remove(&k);
            }
            self.forget_if_done(principal, now);
        }
    }

    /// Rebuilds the expiry heap from the live entries, and one item per
    /// caller whose watermark outlives its entries (so it is forgotten in
    /// time): the items of dropped entries would otherwise pile up while a
    /// full table is under a flood.
    fn compact(&mut self) {
        let mut items: Vec<_> = self
            .seen
            .iter()
            .map(|(k, l)| Reverse((l.expires_at, *k, l.principal_id)))
            .collect();
        items.extend(
            self.callers
                .iter()
                .filter(|(_, c)| c.watermark > 0)
                .map(|(p, c)| Reverse((c.watermark, [0; 16], *p))),
        );
        self.by_expiry = BinaryHeap::from(items);
    }

    /// Removes a live entry and its counts; its caller's heap item is
    /// dropped lazily.
    fn remove(&mut self, k: &[u8; 16]) -> Option<Live> {
        let live = self.seen.remove(k)?;
        if let Some(n) = self.keys.get_mut(&live.key_id) {
            *n -= 1;
            if *n == 0 {
                self.keys.remove(&live.key_id);
            }
        }
        if let Some(c) = self.callers.get_mut(&live.principal_id) {
            self.by_load.remove(&(c.live, live.principal_id));
            c.live -= 1;
            if c.live > 0 {
                self.by_load.insert((c.live, live.principal_id));
            }
        }
        Some(live)
    }

    /// Forgets a caller that holds no entry and no live watermark.
    fn forget_if_done(&mut self, principal: u64, now: u64) {
        if self
            .callers
            .get(&principal)
            .is_some_and(|c| c.live == 0 && c.watermark <= now)
        {
            self.callers.remove(&principal);
        }
    }

    /// Drops the soonest-expiring live entry of the heaviest caller and
    /// raises its watermark. `false` when there is none.
    fn evict_heaviest(&mut self) -> bool {
        let Some(&(_, victim)) = self.by_load.last() else {
            return false;
        };
        loop {
            let Some(c) = self.callers.get_mut(&victim) else {
                return false;
            };
            let Some(Reverse((exp, k))) = c.own.pop() else {
                return false;
            };
            let is_live = self
                .seen
                .get(&k)
                .is_some_and(|l| l.expires_at == exp && l.principal_id == victim);
            if is_live {
                c.watermark = c.watermark.max(exp);
                self.remove(&k);
                return true;
            }
        }
    }
}

impl MemoryReplayCache {
    /// A cache of at most [`DEFAULT_REPLAY_CAPACITY`] live proofs,
    /// [`DEFAULT_REPLAY_PER_PRINCIPAL`] per caller and
    /// [`DEFAULT_REPLAY_PER_KEY`] per key.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// A cache of at most `capacity` live proofs (at least 1); one
    /// caller's share is [`DEFAULT_REPLAY_PER_PRINCIPAL`] and one key's
    /// [`DEFAULT_REPLAY_PER_KEY`], or a twentieth and a tenth of
    /// `capacity` when those are smaller (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Mutex::new(Entries::default()),
            capacity,
            per_principal: DEFAULT_REPLAY_PER_PRINCIPAL.min(capacity / 20).max(1),
            per_key: DEFAULT_REPLAY_PER_KEY.min(capacity / 10).max(1),
        }
    }

    /// The most live proofs of one caller (principal), at least 1.
    #[must_use]
    pub fn per_principal(mut self, n: usize) -> Self {
        self.per_principal = n.clamp(1, u32::MAX as usize);
        self
    }

    /// The most live proofs of one key (thumbprint), at least 1.
    #[must_use]
    pub fn per_key(mut self, n: usize) -> Self {
        self.per_key = n.clamp(1, u32::MAX as usize);
        self
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

    /// The callers (principals) the cache keeps a record of: those holding
    /// entries and those with a live watermark.
    pub fn callers(&self) -> usize {
        self.lock().callers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The synchronous check behind [`ReplayCache::insert_once`].
    ///
    /// # Errors
    ///
    /// [`ProofErrorKind::Replayed`] for a live key (or one dropped to make
    /// room), [`ProofErrorKind::ReplayQuotaExceeded`] for a caller or key
    /// at its share (or a caller at its fair share of a full table),
    /// [`ProofErrorKind::ReplayCacheFull`] when the table is full and no
    /// entry can be dropped.
    pub fn insert_once_sync(
        &self,
        key: ReplayKey,
        owner: ReplayOwner,
        now: u64,
        expires_at: u64,
    ) -> Result<(), ProofError> {
        let (key_id, principal_id) = (owner.key_id(), owner.principal_id());
        let expires_at = expires_at.max(now.saturating_add(1));
        let mut e = self.lock();
        e.sweep(now);
        if e.by_expiry.len() > self.capacity.saturating_mul(2).saturating_add(1024) {
            e.compact();
        }
        if e.seen.contains_key(&key.0) {
            return Err(ProofErrorKind::Replayed.into());
        }
        let (live, watermark) = match e.callers.get_mut(&principal_id) {
            Some(c) => {
                while c.own.peek().is_some_and(|Reverse((exp, _))| *exp <= now) {
                    c.own.pop();
                }
                (c.live as usize, c.watermark)
            }
            None => (0, 0),
        };
        if expires_at <= watermark {
            return Err(ProofErrorKind::Replayed.into());
        }
        let key_live = e.keys.get(&key_id).copied().unwrap_or(0) as usize;
        if live >= self.per_principal || key_live >= self.per_key {
            return Err(ProofErrorKind::ReplayQuotaExceeded.into());
        }
        if e.seen.len() >= self.capacity {
            // Full: a caller below its fair share takes room from the
            // heaviest, which is over it; one at its share is refused.
            let holders = e.by_load.len() + usize::from(live == 0);
            if live >= self.capacity / holders.max(1) {
                return Err(ProofErrorKind::ReplayQuotaExceeded.into());
            }
            if !e.evict_heaviest() {
                return Err(ProofErrorKind::ReplayCacheFull.into());
            }
        }
        e.seen.insert(
            key.0,
            Live {
                expires_at,
                key_id,
                principal_id,
            },
        );
        e.by_expiry.push(Reverse((expires_at, key.0, principal_id)));
        *e.keys.entry(key_id).or_insert(0) += 1;
        let c = e.callers.entry(principal_id).or_default();
        c.own.push(Reverse((expires_at, key.0)));
        let before = c.live;
        c.live += 1;
        let after = c.live;
        e.by_load.remove(&(before, principal_id));
        e.by_load.insert((after, principal_id));
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
            .field("per_principal", &self.per_principal)
            .field("per_key", &self.per_key)
            .field("len", &self.len())
            .finish()
    }
}

impl ReplayCache for MemoryReplayCache {
    fn insert_once(
        &self,
        key: ReplayKey,
        owner: ReplayOwner,
        now: u64,
        expires_at: u64,
    ) -> ReplayFuture<'_> {
        let result = self.insert_once_sync(key, owner, now, expires_at);
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(caller: &str) -> ReplayOwner {
        ReplayOwner::new(&format!("jkt-{caller}"), caller)
    }

    fn k(caller: &str, i: usize) -> ReplayKey {
        ReplayKey::new(&format!("jkt-{caller}"), &i.to_string())
    }

    #[test]
    fn once_then_replayed_then_expired() {
        let c = MemoryReplayCache::with_capacity(10);
        let k = ReplayKey::new("t", "j");
        let o = ReplayOwner::new("t", "p");
        assert!(c.insert_once_sync(k, o, 100, 400).is_ok());
        assert_eq!(
            c.insert_once_sync(k, o, 399, 700).unwrap_err().kind(),
            ProofErrorKind::Replayed
        );
        assert!(c.insert_once_sync(k, o, 400, 700).is_ok());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn each_caller_and_key_has_its_share() {
        let c = MemoryReplayCache::with_capacity(1_000)
            .per_principal(3)
            .per_key(5);
        for i in 0..3 {
            c.insert_once_sync(k("mallory", i), owner("mallory"), 100, 400)
                .unwrap();
        }
        let e = c
            .insert_once_sync(k("mallory", 3), owner("mallory"), 100, 400)
            .unwrap_err();
        assert_eq!(e.kind(), ProofErrorKind::ReplayQuotaExceeded);
        // Nobody else is concerned.
        c.insert_once_sync(k("alice", 0), owner("alice"), 100, 400)
            .unwrap();
        // One key, several callers: the key's share.
        let shared = |caller: &str, i: usize| {
            c.insert_once_sync(
                ReplayKey::new("one-key", &format!("{caller}{i}")),
                ReplayOwner::new("one-key", caller),
                100,
                400,
            )
        };
        for i in 0..5 {
            shared(["u1", "u2", "u3"][i % 3], i).unwrap();
        }
        assert_eq!(
            shared("u4", 9).unwrap_err().kind(),
            ProofErrorKind::ReplayQuotaExceeded
        );
        // A refusal leaves nothing behind.
        assert_eq!(c.len(), 3 + 1 + 5);
        // Shares free up as entries expire.
        c.insert_once_sync(k("mallory", 3), owner("mallory"), 400, 700)
            .unwrap();
        assert_eq!(c.len(), 1);
    }

    /// Many callers fill the table together: a caller below its fair share
    /// is still accepted (room taken from the heaviest, whose dropped
    /// proofs stay refused), one at its fair share is refused itself.
    #[test]
    fn a_full_table_refuses_only_callers_at_their_fair_share() {
        let c = MemoryReplayCache::with_capacity(10)
            .per_principal(10)
            .per_key(10);
        for i in 0..10 {
            // Mallory's proofs, the first ones expiring soonest.
            c.insert_once_sync(k("mallory", i), owner("mallory"), 100, 300 + i as u64)
                .unwrap();
        }
        assert_eq!(c.len(), 10);
        // Alice (no entry, fair share 10 / 2 = 5) gets in.
        for i in 0..4 {
            c.insert_once_sync(k("alice", i), owner("alice"), 100, 400)
                .unwrap();
        }
        assert_eq!(c.len(), 10);
        // Mallory is over its share: refused, while alice and bob are not.
        let e = c
            .insert_once_sync(k("mallory", 99), owner("mallory"), 100, 400)
            .unwrap_err();
        assert_eq!(e.kind(), ProofErrorKind::ReplayQuotaExceeded);
        c.insert_once_sync(k("bob", 0), owner("bob"), 100, 400)
            .unwrap();
        // Alice now holds 4 of 10 with 3 callers: over her fair share (3).
        let e = c
            .insert_once_sync(k("alice", 4), owner("alice"), 100, 400)
            .unwrap_err();
        assert_eq!(e.kind(), ProofErrorKind::ReplayQuotaExceeded);
        assert_eq!(c.len(), 10);
        // Mallory's dropped proofs (expiring at 300..=305) are still refused
        // as replays, and so is any of its proofs expiring by then.
        for i in 0..6 {
            let e = c
                .insert_once_sync(k("mallory", i), owner("mallory"), 100, 300 + i as u64)
                .unwrap_err();
            assert_eq!(e.kind(), ProofErrorKind::Replayed, "{i}");
        }
        // Once they would have expired, Mallory's record of them goes too.
        c.insert_once_sync(k("mallory", 0), owner("mallory"), 306, 600)
            .unwrap();
    }

    /// A flood of many callers against a full table: the memory stays
    /// bounded (the expiry heap is compacted, callers' records dropped).
    #[test]
    fn a_flood_against_a_full_table_stays_bounded() {
        let c = MemoryReplayCache::with_capacity(100)
            .per_principal(100)
            .per_key(100);
        for i in 0..100 {
            c.insert_once_sync(k("big", i), owner("big"), 100, 400)
                .unwrap();
        }
        for i in 0..20_000 {
            let who = format!("caller-{}", i % 500);
            let _ = c.insert_once_sync(k(&who, i), owner(&who), 100, 400);
        }
        assert_eq!(c.len(), 100);
        let e = c.lock();
        assert!(
            e.by_expiry.len() <= 2 * 100 + 1024 + 1,
            "{}",
            e.by_expiry.len()
        );
        assert!(e.callers.len() <= 100 + 500, "{}", e.callers.len());
        drop(e);
        // All of it expires.
        c.insert_once_sync(k("late", 0), owner("late"), 401, 700)
            .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.callers(), 1);
    }
}
