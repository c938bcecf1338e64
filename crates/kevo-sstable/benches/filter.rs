#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The two filter layouts probed on their own, at sizes around and beyond
//! the CPU caches: `filter/{present,absent}/{spread,local}/{keys}` asks a
//! filter of `keys` keys at 10 bits per key (1.2 MiB at 1 M keys, 19 MiB
//! at 16 M, 76 MiB at 64 M) about keys it holds and keys it does not, in
//! random order, hashes computed before timing.
//!
//! - `spread`: the Bloom filter of format versions 1 and 2 (filter type 2):
//!   7 probes anywhere in the bit array, up to 7 cache misses;
//! - `local`: the cache-local Bloom filter of version 3 (filter type 3):
//!   7 probes inside one 64-byte line, one cache miss.
//!
//! `cargo bench -p kevo-sstable --bench filter` takes about 2 minutes
//! (most of it building the 64 M-key filters).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kevo_sstable::filter::{BloomFilter, build_bloom, build_local_bloom, key_hash};

/// Probes per timed batch.
const PROBES: u64 = 1 << 20;

fn filter_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(PROBES));
    for keys in [1_000_000u64, 16_000_000, 64_000_000] {
        let hashes: Vec<u64> = (0..keys).map(|i| key_hash(&i.to_be_bytes())).collect();
        let spread = BloomFilter::new(build_bloom(&hashes, 10)).unwrap();
        let local = BloomFilter::new_local(&build_local_bloom(&hashes, 10)).unwrap();
        drop(hashes);
        // Multiplying by an odd constant visits the keys in a scattered
        // order; the absent keys lie above every key added.
        let present: Vec<u64> = (0..PROBES)
            .map(|i| key_hash(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % keys).to_be_bytes()))
            .collect();
        let absent: Vec<u64> = (0..PROBES)
            .map(|i| key_hash(&(keys + i).to_be_bytes()))
            .collect();
        let label = format!("{}M", keys / 1_000_000);
        for (layout, filter) in [("spread", &spread), ("local", &local)] {
            group.bench_function(format!("present/{layout}/{label}"), |b| {
                b.iter(|| {
                    let passed = present
                        .iter()
                        .filter(|&&h| filter.may_contain_hash(h))
                        .count();
                    assert_eq!(black_box(passed) as u64, PROBES);
                });
            });
            group.bench_function(format!("absent/{layout}/{label}"), |b| {
                b.iter(|| {
                    black_box(
                        absent
                            .iter()
                            .filter(|&&h| filter.may_contain_hash(h))
                            .count(),
                    )
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, filter_benches);
criterion_main!(benches);
