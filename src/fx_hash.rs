//! FxHash (rustc's word-at-a-time multiply-rotate), for the tables whose
//! keys no caller chooses: a scope check's table (an operator's scopes),
//! the URI-template index (the configured templates), the verified-token
//! cache (SHA-256 digests of tokens that verified). SipHash would cost
//! more than the rest of a lookup; a caller picks only what is looked up,
//! which cannot make such a table degenerate.

use std::hash::{BuildHasher, Hasher};

/// Builds [`Fx`] hashers.
#[derive(Clone, Copy, Default)]
pub(crate) struct FxBuild;

impl BuildHasher for FxBuild {
    type Hasher = Fx;

    fn build_hasher(&self) -> Fx {
        Fx(0)
    }
}

/// The state: each eight bytes written, folded in.
pub(crate) struct Fx(u64);

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0; 8];
            word.copy_from_slice(w);
            self.add(u64::from_le_bytes(word));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut word = [0; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_of_a_digest_counts() {
        let a = [7u8; 32];
        let h = |k: [u8; 32]| FxBuild.hash_one(k);
        assert_eq!(h(a), h([7u8; 32]));
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 1;
            assert_ne!(h(a), h(b), "byte {i}");
        }
    }
}
