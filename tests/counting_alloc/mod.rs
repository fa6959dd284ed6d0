//! A counting global allocator for the memory tests and benches
//! (`tests/dpop_memory.rs`, `benches/rate_limit.rs`, `benches/scale.rs`,
//! `tools/src/bin/e2e_allocations.rs`):
//! live heap bytes and allocations made, counted beside the system
//! allocator. A user installs it with
//! `#[global_allocator] static GLOBAL: Counting = Counting;`.
#![allow(dead_code)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicIsize, AtomicUsize, Ordering},
};

/// The system allocator, counting on the side.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// The live heap bytes now (differences between two readings are what
/// count).
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// How many allocations (and reallocations) have been made so far
/// (differences between two readings are what count; for work that spans
/// `.await`s, where [`allocations`] cannot wrap it).
pub fn allocated() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// How many allocations (and reallocations) `f` makes.
pub fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

// SAFETY: every call is forwarded unchanged to the system allocator; only
// the counters are updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
