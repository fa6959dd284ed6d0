//! [`Quota`]: how many calls a key may make in a window, and how many at
//! once.

use std::{fmt, num::NonZeroU32, time::Duration};

use crate::config::ConfigError;

/// How many calls (cost units) a key may make per window, and the largest
/// burst allowed at once.
///
/// The limiter is a GCRA (a token bucket without timers): the bucket holds
/// [`burst_size`](Self::burst_size) units (the quota's `limit` unless
/// [`burst`](Self::burst) says otherwise) and refills one unit every
/// `window / limit`. So `Quota::per_minute(100)` allows 100 calls at once,
/// then one more every 600 ms.
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::rate_limit::Quota;
///
/// let q = Quota::per_minute(100).burst(10);
/// assert_eq!(q.limit(), 100);
/// assert_eq!(q.window(), Duration::from_secs(60));
/// assert_eq!(q.burst_size(), 10);
/// assert_eq!(q.replenish_interval(), Duration::from_millis(600));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct Quota {
    limit: NonZeroU32,
    window: Duration,
    burst: NonZeroU32,
}

impl Quota {
    /// `n` calls per second.
    ///
    /// # Panics
    ///
    /// When `n` is 0; use [`try_new`](Self::try_new) for a value read at
    /// run time.
    pub fn per_second(n: u32) -> Self {
        Self::expect(n, Duration::from_secs(1))
    }

    /// `n` calls per minute.
    ///
    /// # Panics
    ///
    /// When `n` is 0; use [`try_new`](Self::try_new) for a value read at
    /// run time.
    pub fn per_minute(n: u32) -> Self {
        Self::expect(n, Duration::from_secs(60))
    }

    /// `n` calls per hour.
    ///
    /// # Panics
    ///
    /// When `n` is 0; use [`try_new`](Self::try_new) for a value read at
    /// run time.
    pub fn per_hour(n: u32) -> Self {
        Self::expect(n, Duration::from_secs(3600))
    }

    /// `limit` calls per `window`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when `limit` is 0, or `window` is shorter
    /// than one millisecond or longer than a year.
    pub fn try_new(limit: u32, window: Duration) -> Result<Self, ConfigError> {
        let limit = NonZeroU32::new(limit).ok_or_else(|| {
            ConfigError::Invalid("a rate-limit quota must allow at least 1 call".into())
        })?;
        if window < Duration::from_millis(1) || window > Duration::from_secs(366 * 86_400) {
            return Err(ConfigError::Invalid(
                "a rate-limit window must be between 1 ms and one year".into(),
            ));
        }
        Ok(Self {
            limit,
            window,
            burst: limit,
        })
    }

    fn expect(n: u32, window: Duration) -> Self {
        match Self::try_new(n, window) {
            Ok(q) => q,
            Err(_) => panic!("a rate-limit quota must allow at least 1 call"),
        }
    }

    /// Sets the burst: how many calls may be made at once from a full
    /// bucket (default: the limit). The refill rate stays `limit / window`.
    /// A burst of 0 is taken as 1.
    pub fn burst(mut self, n: u32) -> Self {
        self.burst = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// Calls allowed per window (the `q` of `RateLimit-Policy`).
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit.get()
    }

    /// The window (the `w` of `RateLimit-Policy`).
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The burst size: the bucket's capacity.
    #[must_use]
    pub fn burst_size(&self) -> u32 {
        self.burst.get()
    }

    /// The time to refill one unit: `window / limit`, at least 1 ns.
    #[must_use]
    pub fn replenish_interval(&self) -> Duration {
        (self.window / self.limit.get()).max(Duration::from_nanos(1))
    }

    pub(crate) fn burst_nonzero(&self) -> NonZeroU32 {
        self.burst
    }

    /// The equivalent `governor` quota.
    pub(crate) fn to_governor(self) -> governor::Quota {
        governor::Quota::with_period(self.replenish_interval())
            .expect("the replenish interval is at least 1 ns")
            .allow_burst(self.burst)
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Quota({} per {:?}, burst {})",
            self.limit, self.window, self.burst
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors() {
        assert_eq!(
            Quota::per_second(10).replenish_interval(),
            Duration::from_millis(100)
        );
        assert_eq!(
            Quota::per_hour(3600).replenish_interval(),
            Duration::from_secs(1)
        );
        assert_eq!(Quota::per_minute(100).burst_size(), 100);
        assert_eq!(Quota::per_minute(100).burst(0).burst_size(), 1);
        assert!(Quota::try_new(0, Duration::from_secs(1)).is_err());
        assert!(Quota::try_new(1, Duration::ZERO).is_err());
        assert_eq!(
            Quota::per_second(u32::MAX).replenish_interval(),
            Duration::from_nanos(1)
        );
    }

    #[test]
    #[should_panic(expected = "at least 1 call")]
    fn zero_panics_at_configuration() {
        let _ = Quota::per_minute(0);
    }
}
