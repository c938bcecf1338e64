//! What the profiling examples share: the workload of `cargo xtask bench`
//! (its keys, values and orders), so that each example measures exactly
//! what the bench does.
#![allow(dead_code)]

/// Keys in the bench's workloads.
pub(crate) const KEYS: u64 = 1_000_000;

/// The bench's key `i`: `2 i` in 16 decimal digits.
pub(crate) fn key(i: u64) -> [u8; 16] {
    let mut k = [b'0'; 16];
    let mut v = i * 2;
    for digit in k.iter_mut().rev() {
        *digit = b'0' + (v % 10) as u8;
        v /= 10;
    }
    k
}

/// A xorshift step: the workloads' only randomness.
pub(crate) fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Every key index once, shuffled by `seed`.
pub(crate) fn shuffled(seed: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..KEYS).collect();
    let mut rng = seed;
    for i in (1..order.len()).rev() {
        order.swap(i, (next(&mut rng) % (i as u64 + 1)) as usize);
    }
    order
}

/// The bench's 100-byte value, about half compressible.
pub(crate) fn value() -> Vec<u8> {
    (0..100u8)
        .map(|i| if i < 50 { b' ' + (i * 37) % 95 } else { b'x' })
        .collect()
}
