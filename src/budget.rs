//! A budget of buffered bytes shared by every request that holds some:
//! [`ByteBudget`], taken as bytes arrive and given back when the buffer
//! is dropped ([`Held`]).
//!
//! Plumbing for the layers that buffer a request body (the MCP policy's
//! read, a refusal's read of the id): whatever a caller sends, the bytes
//! all requests hold at once stay under the budget's capacity.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

/// A capacity of bytes, shared by its clones. Lock free: one atomic.
#[derive(Clone, Debug)]
pub(crate) struct ByteBudget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    used: AtomicUsize,
    capacity: usize,
}

impl ByteBudget {
    /// A budget of `capacity` bytes, none taken.
    pub(crate) fn new(capacity: usize) -> Self {
        Self(Arc::new(Inner {
            used: AtomicUsize::new(0),
            capacity,
        }))
    }

    /// The bytes taken now.
    #[cfg_attr(not(feature = "mcp"), allow(dead_code))]
    pub(crate) fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// A holding of nothing yet, to [`grow`](Held::grow) as bytes arrive.
    pub(crate) fn hold(&self) -> Held {
        Held {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, n: usize) -> bool {
        let capacity = self.0.capacity;
        self.0
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= capacity)
            })
            .is_ok()
    }
}

/// Bytes taken from a [`ByteBudget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: ByteBudget,
    bytes: usize,
}

impl Held {
    /// Takes `n` more bytes; `false` (and nothing taken) when the budget
    /// has not that many left.
    #[must_use]
    pub(crate) fn grow(&mut self, n: usize) -> bool {
        let ok = self.budget.take(n);
        if ok {
            self.bytes += n;
        }
        ok
    }

    /// Gives `n` of the bytes taken back (a buffer copied and dropped).
    #[cfg_attr(not(feature = "mcp"), allow(dead_code))]
    pub(crate) fn release(&mut self, n: usize) {
        let n = n.min(self.bytes);
        self.bytes -= n;
        self.budget.0.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// The bytes this holding took.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.0.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_share_the_capacity_and_give_it_back() {
        let budget = ByteBudget::new(100);
        let mut a = budget.hold();
        let mut b = budget.clone().hold();
        assert!(a.grow(60));
        assert!(!b.grow(41), "over the capacity: nothing taken");
        assert!(b.grow(40));
        assert_eq!((budget.used(), a.bytes(), b.bytes()), (100, 60, 40));
        assert!(!a.grow(1));
        a.release(10);
        assert_eq!((budget.used(), a.bytes()), (90, 50));
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(!b.grow(usize::MAX), "no overflow");
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
