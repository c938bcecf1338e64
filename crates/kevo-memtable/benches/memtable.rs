#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The memtable against its peers, in the same run and the same groups:
//! `MemTable`, a bare `crossbeam_skiplist::SkipMap<Vec<u8>, Vec<u8>>` (the
//! skip list without our layer) and a `BTreeMap<Vec<u8>, Vec<u8>>` under a
//! `std::sync::RwLock` (the simple locked alternative). 16-byte keys,
//! 100-byte values.
//!
//! - `insert_100k/{sequential,random}`: a fresh structure filled with 100k
//!   entries per iteration (dropping it is not timed).
//! - `get_hit`, `get_miss`: one lookup in a 100k-entry structure with random
//!   keys. `MemTable::get` returns an owned zero-copy `Bytes`; the peers
//!   only borrow the value under their guard (no copy), which favours them.
//! - `scan_100k/{forward,backward}`: a full scan touching every key and
//!   value.
//!
//! `cargo bench -p kevo-memtable --bench memtable` takes about 60 s; add a
//! filter (`-- insert`) for less.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};
use crossbeam_skiplist::SkipMap;
use kevo_core::{Cursor, SEQNO_MAX, ValueKind};
use kevo_memtable::{Lookup, MemTable};

const ENTRIES: usize = 100_000;
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;

type Key = [u8; KEY_BYTES];
type Locked = RwLock<BTreeMap<Vec<u8>, Vec<u8>>>;
type Bare = SkipMap<Vec<u8>, Vec<u8>>;

/// splitmix64: a fixed, dependency-free stream of pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn key(&mut self) -> Key {
        let mut key = [0u8; KEY_BYTES];
        key[..8].copy_from_slice(&self.next().to_le_bytes());
        key[8..].copy_from_slice(&self.next().to_le_bytes());
        key
    }
}

fn sequential_keys() -> Vec<Key> {
    (0..ENTRIES as u64)
        .map(|i| {
            let mut key = [b'0'; KEY_BYTES];
            key[8..].copy_from_slice(&i.to_be_bytes());
            key
        })
        .collect()
}

fn random_keys(seed: u64) -> Vec<Key> {
    let mut rng = Rng(seed);
    (0..ENTRIES).map(|_| rng.key()).collect()
}

fn value() -> Vec<u8> {
    (0..VALUE_BYTES).map(|i| i as u8).collect()
}

fn fill_memtable(keys: &[Key], value: &[u8]) -> MemTable {
    let table = MemTable::new();
    for (i, key) in keys.iter().enumerate() {
        table.insert(key, i as u64 + 1, ValueKind::Put, value);
    }
    table
}

fn fill_locked(keys: &[Key], value: &[u8]) -> Locked {
    let map = RwLock::new(BTreeMap::new());
    for key in keys {
        // One write lock per insert, as concurrent writers would take it.
        map.write().unwrap().insert(key.to_vec(), value.to_vec());
    }
    map
}

fn fill_bare(keys: &[Key], value: &[u8]) -> Bare {
    let map = SkipMap::new();
    for key in keys {
        map.insert(key.to_vec(), value.to_vec());
    }
    map
}

/// Criterion settings that keep the whole run near 60 s: operations that
/// take milliseconds (a fill, a scan) run as 10 flat samples in 2.5 s;
/// single lookups as 50 samples in 2 s.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, long_iterations: bool) {
    group.warm_up_time(Duration::from_millis(500));
    if long_iterations {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_millis(2500));
    } else {
        group
            .sample_size(50)
            .measurement_time(Duration::from_secs(2));
    }
}

fn insert(c: &mut Criterion) {
    let value = value();
    for (pattern, keys) in [
        ("sequential", sequential_keys()),
        ("random", random_keys(1)),
    ] {
        let mut group = c.benchmark_group(format!("insert_100k/{pattern}"));
        configure(&mut group, true);
        group.throughput(Throughput::Elements(ENTRIES as u64));
        group.bench_function("memtable", |b| {
            b.iter_batched(
                || (),
                |()| fill_memtable(&keys, &value),
                BatchSize::PerIteration,
            );
        });
        group.bench_function("skipmap", |b| {
            b.iter_batched(
                || (),
                |()| fill_bare(&keys, &value),
                BatchSize::PerIteration,
            );
        });
        group.bench_function("btreemap_rwlock", |b| {
            b.iter_batched(
                || (),
                |()| fill_locked(&keys, &value),
                BatchSize::PerIteration,
            );
        });
        group.finish();
    }
}

/// The three structures filled with the same random keys.
struct Filled {
    keys: Vec<Key>,
    memtable: Arc<MemTable>,
    bare: Bare,
    locked: Locked,
}

impl Filled {
    fn new() -> Self {
        let keys = random_keys(1);
        let value = value();
        Filled {
            memtable: Arc::new(fill_memtable(&keys, &value)),
            bare: fill_bare(&keys, &value),
            locked: fill_locked(&keys, &value),
            keys,
        }
    }
}

fn get(c: &mut Criterion, filled: &Filled) {
    let misses = random_keys(2);
    for (name, probes) in [("get_hit", &filled.keys), ("get_miss", &misses)] {
        let mut group = c.benchmark_group(name);
        configure(&mut group, false);
        group.throughput(Throughput::Elements(1));
        let mut i = 0;
        let mut next = move || {
            // Walk the probes in a scrambled order (7919 is prime to 100k).
            i = (i + 7919) % ENTRIES;
            &probes[i]
        };
        group.bench_function("memtable", |b| {
            b.iter(|| match filled.memtable.get(next(), SEQNO_MAX) {
                Lookup::Found(value) => value.len(),
                Lookup::Deleted | Lookup::Absent => 0,
            });
        });
        group.bench_function("skipmap", |b| {
            b.iter(|| filled.bare.get(&next()[..]).map_or(0, |e| e.value().len()));
        });
        group.bench_function("btreemap_rwlock", |b| {
            b.iter(|| {
                let map = filled.locked.read().unwrap();
                map.get(&next()[..]).map_or(0, Vec::len)
            });
        });
        group.finish();
    }
}

fn scan(c: &mut Criterion, filled: &Filled) {
    for forward in [true, false] {
        let name = if forward { "forward" } else { "backward" };
        let mut group = c.benchmark_group(format!("scan_100k/{name}"));
        configure(&mut group, true);
        group.throughput(Throughput::Elements(ENTRIES as u64));
        group.bench_function("memtable", |b| {
            b.iter(|| {
                let mut cursor = filled.memtable.cursor();
                let mut bytes = 0;
                if forward {
                    cursor.seek_to_first().unwrap();
                } else {
                    cursor.seek_to_last().unwrap();
                }
                while cursor.valid() {
                    bytes += black_box(cursor.key()).len() + black_box(cursor.value()).len();
                    if forward {
                        cursor.next().unwrap();
                    } else {
                        cursor.prev().unwrap();
                    }
                }
                bytes
            });
        });
        group.bench_function("skipmap", |b| {
            b.iter(|| {
                let sum = |e: crossbeam_skiplist::map::Entry<'_, Vec<u8>, Vec<u8>>| {
                    black_box(e.key()).len() + black_box(e.value()).len()
                };
                if forward {
                    filled.bare.iter().map(sum).sum::<usize>()
                } else {
                    filled.bare.iter().rev().map(sum).sum::<usize>()
                }
            });
        });
        group.bench_function("btreemap_rwlock", |b| {
            b.iter(|| {
                let map = filled.locked.read().unwrap();
                let sum = |(k, v): (&Vec<u8>, &Vec<u8>)| black_box(k).len() + black_box(v).len();
                if forward {
                    map.iter().map(sum).sum::<usize>()
                } else {
                    map.iter().rev().map(sum).sum::<usize>()
                }
            });
        });
        group.finish();
    }
}

fn reads(c: &mut Criterion) {
    let filled = Filled::new();
    get(c, &filled);
    scan(c, &filled);
}

criterion_group! {
    name = benches;
    // Plots and the default 100k bootstrap resamples would add about 40 s.
    config = Criterion::default().without_plots().nresamples(10_000);
    targets = insert, reads
}
criterion_main!(benches);
