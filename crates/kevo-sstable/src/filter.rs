//! The Bloom filters over a table's user keys. No I/O here. Public for
//! tools and benchmarks that build or probe a filter on its own;
//! [`Table`](crate::Table) builds and consults its filter itself.
//!
//! Two layouts, told apart by the footer's filter type (the byte-by-byte
//! rules are in `docs/format/sstable.md`):
//!
//! - **Bloom** (filter type 2, every format version):
//!   `bit array (m / 8 bytes) | k: u8`. For a user key `u`:
//!   `h = xxh3_64(u)`, `h1 = h & 0xffff_ffff`, `h2 = h >> 32`; probe `i`
//!   (for `i` in `0..k`) sets or tests bit `(h1 + i * h2) mod m`, where bit
//!   `j` is bit `j % 8` (least significant first) of byte `j / 8`: double
//!   hashing after Kirsch and Mitzenmacher.
//!   `k = clamp(round(bits_per_key * ln 2), 1, 30)` and
//!   `m = 8 * ceil(max(64, keys * bits_per_key) / 8)`. Its `k` probes land
//!   anywhere in the array: a lookup in a large table waits for up to `k`
//!   cache misses.
//! - **Cache-local Bloom** (filter type 3, format version 3): the bit
//!   array is `L` lines of 64 bytes (a CPU cache line each),
//!   `lines (64 * L bytes) | k: u8`. The high half of `h` picks one line,
//!   `((h >> 32) * L) >> 32`, and all `k` probes stay inside it: with
//!   `x = h & 0xffff_ffff`, probe `i` is bit `x_i >> 23` of the line (its
//!   top 9 bits: 0..512), `x_0 = x`, `x_(i+1) = x_i * 0x9e37_79b9 mod 2^32`.
//!   One cache miss per lookup, for a slightly higher false-positive rate
//!   at the same size. `L = ceil(max(512, keys * bits_per_key) / 512)`, `k`
//!   as above.

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
pub fn key_hash(user_key: &[u8]) -> u64 {
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

/// The bits a filter of `keys` keys wants at `bits_per_key` (clamped to
/// [`BLOOM_BITS_PER_KEY_MAX`]), at least `min_bits`, and its probe count.
fn shape(keys: usize, bits_per_key: u32, min_bits: u64) -> (u64, u8) {
    let bits_per_key = bits_per_key.min(BLOOM_BITS_PER_KEY_MAX);
    let wanted = (keys as u64)
        .saturating_mul(u64::from(bits_per_key))
        .max(min_bits);
    (wanted, probes_for(bits_per_key))
}

/// Bytes of one line of a cache-local filter.
pub(crate) const LINE_BYTES: usize = 64;

/// Bits in one line of a cache-local filter.
const LINE_BITS: u64 = LINE_BYTES as u64 * 8;

/// One line of a cache-local filter, aligned so that it is exactly one
/// CPU cache line.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Line([u8; LINE_BYTES]);

/// The line of `lines` that `hash` probes (`lines` is below 2^32: the
/// filter block is at most `BLOCK_BYTES_MAX`).
fn local_line(hash: u64, lines: usize) -> usize {
    (((hash >> 32) * lines as u64) >> 32) as usize
}

/// The bit positions inside its line of one key (each below 512).
fn for_each_local_probe(hash: u64, probes: u8, mut f: impl FnMut(usize) -> bool) -> bool {
    let mut x = hash as u32;
    for _ in 0..probes {
        if !f((x >> 23) as usize) {
            return false;
        }
        x = x.wrapping_mul(0x9e37_79b9);
    }
    true
}

/// Encodes the cache-local filter (filter type 3) for `hashes` (one per
/// distinct user key, from [`key_hash`]) at `bits_per_key` (at most
/// [`BLOOM_BITS_PER_KEY_MAX`]; more counts as that).
pub fn build_local_bloom(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    let (wanted, probes) = shape(hashes.len(), bits_per_key, LINE_BITS);
    let lines = wanted.div_ceil(LINE_BITS) as usize;
    let mut out = vec![0u8; lines * LINE_BYTES + 1];
    for &hash in hashes {
        let line = &mut out[local_line(hash, lines) * LINE_BYTES..][..LINE_BYTES];
        for_each_local_probe(hash, probes, |bit| {
            line[bit / 8] |= 1 << (bit % 8);
            true
        });
    }
    out[lines * LINE_BYTES] = probes;
    out
}

/// Encodes the Bloom filter (filter type 2) for `hashes` (one per
/// distinct user key, from [`key_hash`]) at `bits_per_key` (at most
/// [`BLOOM_BITS_PER_KEY_MAX`]; more counts as that).
pub fn build_bloom(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    let (wanted, probes) = shape(hashes.len(), bits_per_key, BLOOM_BITS_MIN);
    let bytes = wanted.div_ceil(8) as usize;
    let bits = bytes as u64 * 8;
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

/// A decoded filter, of either layout.
#[derive(Debug, Clone)]
pub struct BloomFilter {
    bits: Bits,
    probes: u8,
}

#[derive(Debug, Clone)]
enum Bits {
    /// Filter type 2: one bit array, probes anywhere in it.
    Spread(Vec<u8>),
    /// Filter type 3: cache lines, every probe of a key in one of them.
    Local(Vec<Line>),
}

impl BloomFilter {
    /// Bytes this filter holds in memory.
    pub fn memory_bytes(&self) -> usize {
        match &self.bits {
            Bits::Spread(bits) => bits.capacity(),
            Bits::Local(lines) => lines.capacity() * LINE_BYTES,
        }
    }

    /// Checks and takes a Bloom (filter type 2) block's bytes.
    pub fn new(mut data: Vec<u8>) -> Result<BloomFilter, &'static str> {
        let probes = take_probes(&mut data)?;
        Ok(BloomFilter {
            bits: Bits::Spread(data),
            probes,
        })
    }

    /// Checks and copies a cache-local Bloom (filter type 3) block's bytes
    /// into aligned lines.
    pub fn new_local(data: &[u8]) -> Result<BloomFilter, &'static str> {
        let (&probes, bits) = data.split_last().ok_or("empty filter block")?;
        check_probes(probes)?;
        if bits.is_empty() || bits.len() % LINE_BYTES != 0 {
            return Err("cache-local filter is not a whole number of lines");
        }
        let lines = bits
            .chunks_exact(LINE_BYTES)
            .map(|chunk| {
                let mut line = Line([0; LINE_BYTES]);
                line.0.copy_from_slice(chunk);
                line
            })
            .collect();
        Ok(BloomFilter {
            bits: Bits::Local(lines),
            probes,
        })
    }

    /// Whether the table may hold `user_key`; `false` is certain.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(key_hash(user_key))
    }

    /// [`BloomFilter::may_contain`] for a key whose [`key_hash`] is `hash`.
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        match &self.bits {
            Bits::Spread(bits) => for_each_probe(hash, bits.len() as u64 * 8, self.probes, |bit| {
                bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0
            }),
            Bits::Local(lines) => {
                let line = &lines[local_line(hash, lines.len())].0;
                for_each_local_probe(hash, self.probes, |bit| {
                    line[bit / 8] & (1 << (bit % 8)) != 0
                })
            }
        }
    }

    /// Bits of the bit array.
    pub fn bit_count(&self) -> u64 {
        match &self.bits {
            Bits::Spread(bits) => bits.len() as u64 * 8,
            Bits::Local(lines) => lines.len() as u64 * LINE_BITS,
        }
    }

    /// Probes per key.
    pub fn probes(&self) -> u8 {
        self.probes
    }
}

/// Takes the probe count off the end of a filter block, leaving its bits.
fn take_probes(data: &mut Vec<u8>) -> Result<u8, &'static str> {
    let probes = data.pop().ok_or("empty filter block")?;
    check_probes(probes)?;
    if data.is_empty() {
        return Err("filter has no bits");
    }
    Ok(probes)
}

fn check_probes(probes: u8) -> Result<(), &'static str> {
    if probes == 0 || probes > BLOOM_PROBES_MAX {
        return Err("filter probe count out of range");
    }
    Ok(())
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
        let mut local = vec![0u8; LINE_BYTES];
        local.push(7);
        assert!(BloomFilter::new_local(&local).is_ok());
        assert!(BloomFilter::new_local(&[]).is_err());
        assert!(BloomFilter::new_local(&[7]).is_err(), "no line");
        assert!(
            BloomFilter::new_local(&local[1..]).is_err(),
            "part of a line"
        );
        let last = local.len() - 1;
        local[last] = 0;
        assert!(BloomFilter::new_local(&local).is_err());
        local[last] = 31;
        assert!(BloomFilter::new_local(&local).is_err());
    }

    fn hashes(range: std::ops::Range<u64>) -> Vec<u64> {
        range.map(|i| key_hash(&i.to_be_bytes())).collect()
    }

    /// The share of `absent` keys each layout lets through.
    fn false_positive_rate(filter: &BloomFilter, absent: &[u64]) -> f64 {
        let passed = absent
            .iter()
            .filter(|&&h| filter.may_contain_hash(h))
            .count();
        passed as f64 / absent.len() as f64
    }

    #[test]
    fn every_added_key_passes_a_cache_local_filter() {
        for n in [0u64, 1, 2, 50, 51, 1000, 20_000] {
            let added = hashes(0..n);
            let filter = BloomFilter::new_local(&build_local_bloom(&added, 10)).unwrap();
            assert!(added.iter().all(|&h| filter.may_contain_hash(h)), "n {n}");
            assert_eq!(filter.probes(), 7);
            let lines = (n * 10).max(512).div_ceil(512);
            assert_eq!(filter.bit_count(), lines * 512, "n {n}");
        }
    }

    #[test]
    fn a_cache_local_filter_lets_about_as_few_absent_keys_through() {
        let added = hashes(0..100_000);
        let absent = hashes(1 << 40..(1 << 40) + 200_000);
        let spread = BloomFilter::new(build_bloom(&added, 10)).unwrap();
        let local = BloomFilter::new_local(&build_local_bloom(&added, 10)).unwrap();
        let (spread, local) = (
            false_positive_rate(&spread, &absent),
            false_positive_rate(&local, &absent),
        );
        assert!(spread < 0.0095, "spread {spread}");
        // 0.98 % against 0.85 % for these keys.
        assert!(local < 0.011, "local {local}");
    }
}
