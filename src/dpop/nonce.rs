//! Server-provided nonces (RFC 9449 §8, §9) without shared state.
//!
//! A nonce is `base64url(window ‖ MAC)`: the number of the time window it
//! was issued in (8 bytes, big endian) and the first 16 bytes of
//! HMAC-SHA-256 over a fixed label and that number, keyed by a secret
//! every replica shares. Any replica checks any nonce with the key alone;
//! a nonce of the current or the previous window is accepted, so one lives
//! between one and two windows. Nonces are not single-use (the `jti`
//! replay check is); they bound how long before use a proof can have been
//! made.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::ConfigError;

const LABEL: &[u8] = b"tower-mcp-auth dpop nonce v1\0";
/// Encoded nonces are exactly this long.
const NONCE_LEN: usize = 32;

/// Issues and checks stateless DPoP nonces (RFC 9449 §8, §9).
///
/// A nonce is `base64url(window ‖ MAC)`: the number of the time window it
/// was issued in (8 bytes, big endian) and the first 16 bytes of
/// HMAC-SHA-256 over a fixed label and that number, keyed by a secret
/// every replica shares. Any replica checks any nonce with the key alone;
/// a nonce of the current or the previous window is accepted, so one lives
/// between one and two windows. Nonces are not single-use (the `jti`
/// replay check is); they bound how long before use a proof can have been
/// made.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_auth::dpop::Nonces;
///
/// let nonces = Nonces::new([7u8; 32])?.window(Duration::from_secs(60));
/// let n = nonces.current_at(1_000);
/// assert!(nonces.check_at(&n, 1_000));
/// assert!(nonces.check_at(&n, 1_060)); // the previous window
/// assert!(!nonces.check_at(&n, 1_140)); // two windows later: stale
/// assert!(!Nonces::new([8u8; 32])?.check_at(&n, 1_000)); // another key
/// # Ok::<(), tower_mcp_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Nonces {
    mac: Hmac<Sha256>,
    window: u64,
}

impl Nonces {
    /// The default window: 5 minutes (a nonce lives 5 to 10 minutes).
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

    /// Nonces keyed by `secret` (at least 32 bytes; give every replica the
    /// same one).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a secret shorter than 32 bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.len() < 32 {
            return Err(ConfigError::Invalid(
                "the DPoP nonce secret must be at least 32 bytes".into(),
            ));
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
        Ok(Self {
            mac,
            window: Self::DEFAULT_WINDOW.as_secs(),
        })
    }

    /// The window length (default [`DEFAULT_WINDOW`](Self::DEFAULT_WINDOW);
    /// at least one second).
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.as_secs().max(1);
        self
    }

    fn tag(&self, index: u64) -> [u8; 16] {
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(&index.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0; 16];
        tag.copy_from_slice(&full[..16]);
        tag
    }

    /// The nonce to send now in `DPoP-Nonce`.
    pub fn current(&self) -> String {
        self.current_at(unix_now())
    }

    /// The nonce of the window holding `now` (Unix seconds).
    pub fn current_at(&self, now: u64) -> String {
        let index = now / self.window;
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&index.to_be_bytes());
        raw[8..].copy_from_slice(&self.tag(index));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `nonce` was issued in the window holding `now` or the one
    /// before.
    pub fn check_at(&self, nonce: &str, now: u64) -> bool {
        if nonce.len() != NONCE_LEN {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Ok(raw) = <[u8; 24]>::try_from(raw.as_slice()) else {
            return false;
        };
        let index = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        let current = now / self.window;
        if index != current && Some(index) != current.checked_sub(1) {
            return false;
        }
        self.tag(index).ct_eq(&raw[8..]).into()
    }
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("window_secs", &self.window)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_forgery() {
        let n = Nonces::new([1u8; 32])
            .unwrap()
            .window(Duration::from_secs(10));
        let a = n.current_at(100);
        assert_eq!(a.len(), NONCE_LEN);
        assert_eq!(a, n.current_at(109));
        assert_ne!(a, n.current_at(110));
        assert!(n.check_at(&a, 119));
        assert!(!n.check_at(&a, 120));
        // A nonce "from the future" is not accepted either.
        assert!(!n.check_at(&n.current_at(110), 100));
        // A flipped bit in the tag, a truncated nonce, garbage.
        let mut raw = URL_SAFE_NO_PAD.decode(&a).unwrap();
        raw[20] ^= 1;
        assert!(!n.check_at(&URL_SAFE_NO_PAD.encode(raw), 100));
        assert!(!n.check_at(&a[..31], 100));
        assert!(!n.check_at("", 100));
        assert!(!n.check_at(&"!".repeat(32), 100));
        assert!(Nonces::new([1u8; 31]).is_err());
    }
}
