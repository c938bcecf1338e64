#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The iterator stack over in-memory sources: 100 000 entries in all
//! (16-byte user keys, 100-byte values, one version each), spread at random
//! over 1, 4 or 8 [`VecCursor`]s behind a `MergingCursor<Box<dyn Cursor>>`.
//!
//! - `merge/scan/N`: `seek_to_first`, then `next` to the end, reading every
//!   key and value;
//! - `merge/seek_next10/N`: a `seek` to a random existing key, then 10
//!   `next`s (the same 1024 targets in turn);
//! - `visible/scan/8`: a `VisibleCursor` scan over the 8-source merge;
//! - `visible/seek_next10/8` and `visible/seek_next10_100rt/8`: seek + 10
//!   nexts through a `VisibleCursor` over the 8-source merge, without and
//!   with 100 range tombstones (each over 10 keys, spread evenly: 1% of the
//!   keys deleted), the cost of checking every entry against them.
//!
//! Throughput is reported in entries, so criterion's element rate is per
//! entry visited (11 per seek+10). `cargo bench -p kevo-iter --bench merge`
//! takes about 45 s.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;

use kevo_core::{Cursor, FragmentedTombstones, InternalKey, RangeTombstone, SEQNO_MAX, ValueKind};
use kevo_iter::{MergingCursor, UserCursor, VecCursor, VisibleCursor};

const ENTRIES: u64 = 100_000;
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
const SOURCE_COUNTS: [usize; 3] = [1, 4, 8];
const SEEK_TARGETS: usize = 1024;
const NEXTS_PER_SEEK: u64 = 10;

/// A deterministic pseudo-random sequence (SplitMix64).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn user_key(i: u64) -> Vec<u8> {
    let key = format!("key-{i:012}").into_bytes();
    assert_eq!(key.len(), KEY_BYTES);
    key
}

/// `ENTRIES` puts spread at random over `n` sources.
fn sources(n: usize) -> Vec<VecCursor> {
    let mut parts: Vec<Vec<(Bytes, Bytes)>> = vec![Vec::new(); n];
    let mut rng = 42;
    for i in 0..ENTRIES {
        let key = InternalKey::new(&user_key(i), i + 1, ValueKind::Put);
        let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
        let part = (splitmix(&mut rng) % n as u64) as usize;
        parts[part].push((Bytes::copy_from_slice(key.as_bytes()), value));
    }
    parts
        .into_iter()
        .map(|entries| VecCursor::new(entries).unwrap())
        .collect()
}

fn merged(sources: &[VecCursor]) -> MergingCursor {
    MergingCursor::new(
        sources
            .iter()
            .map(|s| Box::new(s.clone()) as Box<dyn Cursor>)
            .collect(),
    )
}

fn scan(c: &mut impl Cursor) -> usize {
    let mut bytes = 0;
    c.seek_to_first().unwrap();
    while c.valid() {
        bytes += black_box(c.key()).len() + black_box(c.value()).len();
        c.next().unwrap();
    }
    bytes
}

/// `SEEK_TARGETS` lookup keys of random existing user keys.
fn seek_targets() -> Vec<Vec<u8>> {
    let mut rng = 7;
    (0..SEEK_TARGETS)
        .map(|_| {
            let i = splitmix(&mut rng) % (ENTRIES - NEXTS_PER_SEEK);
            InternalKey::for_lookup(&user_key(i), SEQNO_MAX)
                .as_bytes()
                .to_vec()
        })
        .collect()
}

fn bench_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge");
    for n in SOURCE_COUNTS {
        let sources = sources(n);
        let mut cursor = merged(&sources);

        group.throughput(Throughput::Elements(ENTRIES));
        group.sample_size(10);
        group.bench_function(format!("scan/{n}"), |b| {
            b.iter(|| {
                assert_eq!(
                    scan(&mut cursor),
                    ENTRIES as usize * (KEY_BYTES + 8 + VALUE_BYTES)
                )
            });
        });

        let targets = seek_targets();
        let mut turn = 0;
        group.throughput(Throughput::Elements(NEXTS_PER_SEEK + 1));
        group.sample_size(50);
        group.bench_function(format!("seek_next10/{n}"), |b| {
            b.iter(|| {
                cursor.seek(&targets[turn % SEEK_TARGETS]).unwrap();
                turn += 1;
                for _ in 0..NEXTS_PER_SEEK {
                    black_box(cursor.value());
                    cursor.next().unwrap();
                }
                black_box(cursor.key());
            });
        });
    }
    group.finish();
}

fn bench_visible(c: &mut Criterion) {
    let mut group = c.benchmark_group("visible");
    let sources = sources(8);
    let mut cursor = VisibleCursor::new(merged(&sources), ENTRIES);
    group.throughput(Throughput::Elements(ENTRIES));
    group.sample_size(10);
    group.bench_function("scan/8", |b| {
        b.iter(|| {
            let mut visited = 0;
            cursor.seek_to_first().unwrap();
            while cursor.valid() {
                black_box(cursor.key());
                black_box(cursor.value());
                visited += 1;
                cursor.next().unwrap();
            }
            assert_eq!(visited, ENTRIES);
        });
    });

    let targets = seek_targets();
    let tombstones = Arc::new(FragmentedTombstones::new((0..100).map(|i| {
        let from = i * (ENTRIES / 100);
        RangeTombstone::new(user_key(from), user_key(from + 10), ENTRIES + 1)
    })));
    let plain = VisibleCursor::new(merged(&sources), ENTRIES + 1);
    let ranged =
        VisibleCursor::new(merged(&sources), ENTRIES + 1).with_range_tombstones(tombstones);
    for (name, mut cursor) in [("seek_next10/8", plain), ("seek_next10_100rt/8", ranged)] {
        let mut turn = 0;
        group.throughput(Throughput::Elements(NEXTS_PER_SEEK + 1));
        group.sample_size(50);
        group.bench_function(name, |b| {
            b.iter(|| {
                cursor.seek(&targets[turn % SEEK_TARGETS]).unwrap();
                turn += 1;
                for _ in 0..NEXTS_PER_SEEK {
                    black_box(cursor.value());
                    cursor.next().unwrap();
                }
                black_box(cursor.key());
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_merge, bench_visible
}
criterion_main!(benches);
