//! Freeing a key set swapped out of an [`ApiKeys`](super::ApiKeys), never
//! in a request.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// How long the thread freeing an old key set waits for the requests
/// still reading it before it lets the last of them free it.
const RETIRE_PATIENCE: Duration = Duration::from_secs(1);

/// Frees a key set swapped out of an [`ApiKeys`](super::ApiKeys), never
/// in a request: at once when nobody else holds it (the usual case), else
/// on a thread of its own that waits for the requests still reading it
/// (they hold it for one map lookup). The caller never waits.
pub(super) fn retire<T: Send + Sync + 'static>(old: Arc<T>) {
    let Err(shared) = Arc::try_unwrap(old).map(drop) else {
        return;
    };
    // If no thread can be made, the closure and its reference are dropped
    // here, and the last holder frees the set, as with any `Arc`.
    let _ = std::thread::Builder::new()
        .name("tower-mcp-auth-key-retire".into())
        .spawn(move || wait_and_free(shared, RETIRE_PATIENCE));
}

/// Waits (up to `patience`) until `old` is held by nobody else, then frees
/// it. Returns whether it was freed here (`false`: it is still held, by
/// another [`ApiKeys`](super::ApiKeys) sharing the set through
/// [`ApiKeys::replace`](super::ApiKeys::replace) or a reader descheduled
/// for longer than `patience`; the last holder frees it).
fn wait_and_free<T>(mut old: Arc<T>, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        match Arc::try_unwrap(old) {
            Ok(set) => {
                drop(set);
                return true;
            }
            Err(shared) if Instant::now() < deadline => {
                old = shared;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_set_is_freed_after_its_last_reader_not_by_it() {
        // A reader still holds the set for 50 ms: the freeing waits for it,
        // so the reader's drop is not the last one.
        let old = Arc::new(vec![0u8; 1024]);
        let reader = Arc::clone(&old);
        let held = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(reader);
        });
        let start = Instant::now();
        assert!(wait_and_free(old, Duration::from_secs(10)));
        assert!(start.elapsed() >= Duration::from_millis(40));
        held.join().unwrap();

        // Held for good (another `ApiKeys` shares it): gives up after its
        // patience, and the other holder keeps a working set.
        let old = Arc::new(vec![0u8; 1024]);
        let other = Arc::clone(&old);
        assert!(!wait_and_free(old, Duration::from_millis(10)));
        assert_eq!(Arc::strong_count(&other), 1);

        // `retire` itself never waits, even for a set held for good.
        let old = Arc::new(vec![0u8; 1024]);
        let other = Arc::clone(&old);
        let start = Instant::now();
        retire(old);
        assert!(start.elapsed() < Duration::from_millis(100));
        drop(other);
    }
}
