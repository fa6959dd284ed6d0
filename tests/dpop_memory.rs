//! The in-memory DPoP replay cache's memory, measured with a counting
//! allocator: bytes per remembered proof, and no growth at the bound
//! (where new proofs are refused: fail closed), and a full table's flood
//! by many callers held to the bound.

mod counting_alloc;
use counting_alloc::Counting;

use tower_mcp_auth::dpop::{MemoryReplayCache, ProofErrorKind, ReplayKey, ReplayOwner};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The allocator counts every thread: one measuring test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn bytes_per_entry_and_no_growth_at_the_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 100_000;
    let keys: Vec<ReplayKey> = (0..N + 1_000)
        .map(|i| ReplayKey::new("thumbprint", &format!("jti-{i}")))
        .collect();
    let owner = ReplayOwner::new("thumbprint", "caller");
    let before = counting_alloc::live();
    let cache = MemoryReplayCache::with_capacity(N)
        .per_principal(N)
        .per_key(N);
    for k in &keys[..N] {
        cache.insert_once_sync(*k, owner, 1_000, 1_301).unwrap();
    }
    let full = counting_alloc::live();
    let per_entry = (full - before) as f64 / N as f64;
    println!("DPoP replay cache: {per_entry:.1} bytes per entry at {N} entries");
    // 16-byte key, 8-byte expiry and two 8-byte owner ids in a hash map,
    // two heap items (global and the caller's), with their growth slack:
    // under 192 bytes.
    assert!(per_entry < 192.0, "{per_entry} bytes per entry");
    for k in &keys[N..] {
        let e = cache.insert_once_sync(*k, owner, 1_000, 1_301).unwrap_err();
        assert_eq!(e.kind(), ProofErrorKind::ReplayQuotaExceeded);
    }
    // 1 000 refused proofs: no growth (a few bytes of the test harness's
    // own, on its other thread, may land in the window).
    let grown = counting_alloc::live() - full;
    assert!(grown < 1_000, "{grown} bytes grown at the bound");
    // Once they expire, entries are swept and new proofs fit again.
    cache
        .insert_once_sync(keys[N], owner, 1_301, 1_602)
        .unwrap();
    assert_eq!(cache.len(), 1);
}

/// A full table flooded by many callers, each below its fair share: room
/// is taken from the heaviest, and memory stays at the bound however long
/// the flood lasts.
#[test]
fn a_full_table_flooded_by_many_callers_stays_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 10_000;
    let before = counting_alloc::live();
    let cache = MemoryReplayCache::with_capacity(N)
        .per_principal(N)
        .per_key(N);
    let big = ReplayOwner::new("big", "big");
    for i in 0..N {
        cache
            .insert_once_sync(ReplayKey::new("big", &i.to_string()), big, 1_000, 1_301)
            .unwrap();
    }
    let full = counting_alloc::live() - before;
    let mut sizes = Vec::new();
    for round in 0..4 {
        for i in 0..50_000 {
            let who = format!("caller-{}", i % 1_000);
            let key = ReplayKey::new(&who, &format!("{round}-{i}"));
            let _ = cache.insert_once_sync(key, ReplayOwner::new(&who, &who), 1_000, 1_301);
        }
        sizes.push(counting_alloc::live() - before);
    }
    println!("DPoP replay cache: {full} bytes full with one caller, {sizes:?} after each flood of 50 000 proofs by 1 000 callers");
    assert_eq!(cache.len(), N);
    assert!(cache.callers() <= 1 + 1_000);
    // 200 000 proofs later, no more than twice the full table's memory
    // (without the heap's compaction, the flood alone would add 6 MB).
    let last = *sizes.last().unwrap();
    assert!(last < 2 * full + 1_000_000, "{last} bytes after the flood");
    assert!(last <= sizes[1] + 300_000, "still growing: {sizes:?}");
}
