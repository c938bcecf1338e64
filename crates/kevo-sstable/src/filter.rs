//! The Bloom filter over a table's user keys. No I/O here.
//!
//! ```text
//! bit array (m / 8 bytes) | k: u8
//! ```
//!
//! For a user key `u`: `h = xxh3_64(u)`, `h1 = h & 0xffff_ffff`,
//! `h2 = h >> 32`; probe `i` (for `i` in `0..k`) sets or tests bit
//! `(h1 + i * h2) mod m`, where bit `j` is bit `j % 8` (least significant
//! first) of byte `j / 8`. This is double hashing after Kirsch and
//! Mitzenmacher. `k = clamp(round(bits_per_key * ln 2), 1, 30)` and
//! `m = 8 * ceil(max(64, keys * bits_per_key) / 8)`.

use kevo_core::xxh3_64;

/// Most probes a filter may ask for.
pub const BLOOM_PROBES_MAX: u8 = 30;

/// Default filter size per distinct user key.
pub const BLOOM_BITS_PER_KEY_DEFAULT: u32 = 10;

/// Largest configurable filter size per key.
pub const BLOOM_BITS_PER_KEY_MAX: u32 = 64;

/// Smallest bit array.
const BLOOM_BITS_MIN: u64 = 64;

/// The number of probes for `bits_per_key`.
pub(crate) fn probes_for(bits_per_key: u32) -> u8 {
    let k = (f64::from(bits_per_key) * std::f64::consts::LN_2).round();
    (k as u8).clamp(1, BLOOM_PROBES_MAX)
}

/// The hash a filter is built from.
pub(crate) fn key_hash(user_key: &[u8]) -> u64 {
    xxh3_64(user_key)
}

/// The bit positions of one key: `(h1 + i * h2) mod m`, computed
/// incrementally.
fn for_each_probe(hash: u64, bits: u64, probes: u8, mut f: impl FnMut(u64) -> bool) -> bool {
    let mut pos = (hash & 0xffff_ffff) % bits;
    let delta = (hash >> 32) % bits;
    for _ in 0..probes {
        if !f(pos) {
            return false;
        }
        pos += delta;
        if pos >= bits {
            pos -= bits;
        }
    }
    true
}

/// Encodes the filter for `hashes` (one per distinct user key).
pub(crate) fn build_bloom(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    let wanted = (hashes.len() as u64)
        .saturating_mul(u64::from(bits_per_key))
        .max(BLOOM_BITS_MIN);
    let bytes = wanted.div_ceil(8) as usize;
    let bits = bytes as u64 * 8;
    let probes = probes_for(bits_per_key);
    let mut out = vec![0u8; bytes + 1];
    for &hash in hashes {
        for_each_probe(hash, bits, probes, |bit| {
            out[(bit / 8) as usize] |= 1 << (bit % 8);
            true
        });
    }
    out[bytes] = probes;
    out
}

/// A decoded Bloom filter.
#[derive(Debug, Clone)]
pub(crate) struct BloomFilter {
    bits: Vec<u8>,
    probes: u8,
}

impl BloomFilter {
    /// Bytes this filter holds in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.bits.capacity()
    }

    /// Checks and takes the filter block's bytes.
    pub(crate) fn new(mut data: Vec<u8>) -> Result<BloomFilter, &'static str> {
        let probes = data.pop().ok_or("empty filter block")?;
        if probes == 0 || probes > BLOOM_PROBES_MAX {
            return Err("filter probe count out of range");
        }
        if data.is_empty() {
            return Err("filter has no bits");
        }
        Ok(BloomFilter { bits: data, probes })
    }

    /// Whether the table may hold `user_key`; `false` is certain.
    pub(crate) fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(key_hash(user_key))
    }

    pub(crate) fn may_contain_hash(&self, hash: u64) -> bool {
        let bits = self.bits.len() as u64 * 8;
        for_each_probe(hash, bits, self.probes, |bit| {
            self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0
        })
    }

    /// Bytes of the bit array.
    pub(crate) fn bit_count(&self) -> u64 {
        self.bits.len() as u64 * 8
    }

    /// Probes per key.
    pub(crate) fn probes(&self) -> u8 {
        self.probes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_added_key_may_be_contained() {
        let keys: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let hashes: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
        let filter = BloomFilter::new(build_bloom(&hashes, 10)).unwrap();
        assert!(keys.iter().all(|k| filter.may_contain(k)));
        assert_eq!(filter.probes(), 7);
        assert_eq!(filter.bit_count(), 10_000);
    }

    #[test]
    fn probe_count_follows_bits_per_key() {
        assert_eq!(probes_for(1), 1);
        assert_eq!(probes_for(10), 7);
        assert_eq!(probes_for(64), BLOOM_PROBES_MAX);
    }

    #[test]
    fn malformed_filters_are_rejected() {
        assert!(BloomFilter::new(vec![]).is_err());
        assert!(BloomFilter::new(vec![7]).is_err());
        assert!(BloomFilter::new(vec![0, 0]).is_err());
        assert!(BloomFilter::new(vec![0, 31]).is_err());
    }
}
