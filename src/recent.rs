//! A bounded memory of recently seen keys, shared by threads without a
//! lock: "was this exact frame (or this report id) seen lately?"
//!
//! **Guarantees.** Fixed memory (8 bytes a slot, chosen at creation). A key
//! inserted is found until about `capacity` later insertions have pushed it
//! out (each key has a bucket of 8 slots and replaces a slot at random in a
//! full one, so an older key may go a little sooner or later). A key never
//! inserted is found only on a collision of 64-bit tags within one bucket:
//! about `8 / 2^64` per lookup. Two threads inserting the same key at once
//! may both miss it: a repeat then goes on as new, which is the caller's
//! ordinary case anyway (the store deduplicates by report id).
//!
//! Keys are 16 bytes taken from a hash (SHA-256): the first 8 pick the
//! bucket, the other 8 are the tag, so an attacker who cannot choose the
//! hash cannot aim at a bucket.

use std::sync::atomic::{AtomicU64, Ordering};

const WAYS: usize = 8;

pub struct Recent {
    slots: Box<[AtomicU64]>,
    buckets_mask: usize,
}

impl Recent {
    /// Room for about `capacity` keys (rounded up to a power of two, at
    /// least one bucket).
    pub fn new(capacity: usize) -> Self {
        let buckets = capacity.div_ceil(WAYS).next_power_of_two().max(1);
        Recent {
            slots: (0..buckets * WAYS).map(|_| AtomicU64::new(0)).collect(),
            buckets_mask: buckets - 1,
        }
    }

    fn split(key: &[u8; 16]) -> (usize, u64) {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&key[..8]);
        b.copy_from_slice(&key[8..]);
        // 0 marks an empty slot: tags are never 0.
        (u64::from_le_bytes(a) as usize, u64::from_le_bytes(b) | 1)
    }

    fn bucket(&self, at: usize) -> &[AtomicU64] {
        let start = (at & self.buckets_mask) * WAYS;
        &self.slots[start..start + WAYS]
    }

    pub fn contains(&self, key: &[u8; 16]) -> bool {
        let (at, tag) = Self::split(key);
        self.bucket(at)
            .iter()
            .any(|s| s.load(Ordering::Relaxed) == tag)
    }

    pub fn insert(&self, key: &[u8; 16]) {
        let (at, tag) = Self::split(key);
        let bucket = self.bucket(at);
        if bucket.iter().any(|s| s.load(Ordering::Relaxed) == tag) {
            return;
        }
        for slot in bucket {
            if slot
                .compare_exchange(0, tag, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        // Full: replace a slot picked by the tag's top bits (random, since
        // the tag is a hash).
        bucket[(tag >> 61) as usize].store(tag, Ordering::Relaxed);
    }

    /// Memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.slots.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn key(i: u64) -> [u8; 16] {
        let d = Sha256::digest(i.to_le_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        k
    }

    #[test]
    fn keys_are_remembered_up_to_the_capacity_and_never_invented() {
        let r = Recent::new(1 << 12);
        assert_eq!(r.bytes(), 8 << 12);
        for i in 0..2_000 {
            assert!(!r.contains(&key(i)));
            r.insert(&key(i));
        }
        // Half full: only a bucket of more than 8 (a few in 4,096) forgets.
        let kept = (0..2_000).filter(|&i| r.contains(&key(i))).count();
        assert!(kept >= 1_980, "{kept}");
        // Far past the capacity: the oldest are mostly gone, none invented.
        for i in 2_000..40_000 {
            r.insert(&key(i));
        }
        let kept_old = (0..2_000).filter(|&i| r.contains(&key(i))).count();
        assert!(kept_old < 200, "{kept_old}");
        assert!((40_000..80_000).all(|i| !r.contains(&key(i))));
        assert!((39_000..40_000).filter(|&i| r.contains(&key(i))).count() > 700);
    }
}
