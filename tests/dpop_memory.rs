//! The in-memory DPoP replay cache's memory, measured with a counting
//! allocator: bytes per remembered proof, and no growth at the bound
//! (where new proofs are refused: fail closed).

mod counting_alloc;
use counting_alloc::Counting;

use tower_mcp_auth::dpop::{MemoryReplayCache, ProofErrorKind, ReplayKey};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn bytes_per_entry_and_no_growth_at_the_bound() {
    const N: usize = 100_000;
    let keys: Vec<ReplayKey> = (0..N + 1_000)
        .map(|i| ReplayKey::new("thumbprint", &format!("jti-{i}")))
        .collect();
    let before = counting_alloc::live();
    let cache = MemoryReplayCache::with_capacity(N);
    for k in &keys[..N] {
        cache.insert_once_sync(*k, 1_000, 1_301).unwrap();
    }
    let full = counting_alloc::live();
    let per_entry = (full - before) as f64 / N as f64;
    println!("DPoP replay cache: {per_entry:.1} bytes per entry at {N} entries");
    // 16-byte key + 8-byte expiry in a hash map and in a heap, with their
    // growth slack: well under 128 bytes.
    assert!(per_entry < 128.0, "{per_entry} bytes per entry");
    for k in &keys[N..] {
        let e = cache.insert_once_sync(*k, 1_000, 1_301).unwrap_err();
        assert_eq!(e.kind(), ProofErrorKind::ReplayCacheFull);
    }
    // 1 000 refused proofs: no growth (a few bytes of the test harness's
    // own, on its other thread, may land in the window).
    let grown = counting_alloc::live() - full;
    assert!(grown < 1_000, "{grown} bytes grown at the bound");
    // Once they expire, entries are swept and new proofs fit again.
    cache.insert_once_sync(keys[N], 1_301, 1_602).unwrap();
    assert_eq!(cache.len(), 1);
}
