#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! A table of 1 M entries on a real directory (`OsFs` in a fresh temp dir):
//! 16-byte keys, 100-byte values (half random, half a repeat of the first
//! half, as db_bench's compressible values), 4 KiB blocks, LZ4, 10 Bloom bits
//! per key; and the same table without a filter.
//!
//! - `table/build`: writing the whole table, `finish` (fsync) included;
//! - `table/get_hit`, `table/get_miss_bloom`, `table/get_miss_no_bloom`:
//!   point lookups of random existing keys, and of absent keys that fall
//!   between existing ones (so without a filter each miss reads a block);
//! - `table/scan`: a cursor from the first entry to the last;
//! - `table/seek_next10`: a cursor seek to a random existing key and 10 `next`s;
//! - `table/get_hit_spread_filter`, `table/get_miss_spread_filter` (warm
//!   only): `get_hit` and `get_miss_bloom` on the same table written with
//!   the Bloom filter of format versions 1 and 2 (`cache_local_filter:
//!   false`, every probe anywhere in the bit array) instead of the
//!   cache-local one.
//!
//! Each read case runs `warm` (a 1 GiB block cache filled by a scan
//! beforehand: no block read) and `cold` (a block cache of capacity 0: every
//! data block comes from the file, is checksummed and decompressed; the
//! file itself stays in the OS page cache). Keys are generated before
//! timing starts. Bytes on disk per entry, with and without LZ4, are printed
//! once at start-up.
//!
//! `cargo bench -p kevo-sstable --bench table` takes about 1.5 minutes;
//! add a filter (`-- get_hit`) for less (the tables are still built first).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kevo_core::{Cursor, InternalKey, OsFs, SEQNO_MAX, ValueKind};
use kevo_sstable::{
    Compression, LruBlockCache, ReadOptions, Table, TableMeta, TableOptions, TableWriter,
};

const ENTRIES: u64 = 1_000_000;
const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
/// Random keys generated per read case (cycled through while timing).
const PROBES: usize = 1 << 16;
/// Entries a seek case reads after the seek.
const NEXTS: usize = 10;
const WARM_CACHE_BYTES: usize = 1 << 30;

/// xorshift64: a fixed, reproducible sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// User key `i`: its 16 decimal digits.
fn user_key(i: u64) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    key.copy_from_slice(format!("{i:016}").as_bytes());
    key
}

/// A 16-byte key absent from the table that sorts between keys `i` and
/// `i + 1` (its last digit replaced by `x`, after every digit).
fn absent_key(i: u64) -> [u8; KEY_BYTES] {
    let mut key = user_key(i);
    key[KEY_BYTES - 1] = b'x';
    key
}

/// Every entry of the table, generated once: internal keys (user key `i`,
/// seqno `i + 1`, a put) and values.
struct Entries {
    keys: Vec<Vec<u8>>,
    values: Vec<[u8; VALUE_BYTES]>,
}

impl Entries {
    fn new() -> Self {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut keys = Vec::with_capacity(ENTRIES as usize);
        let mut values = Vec::with_capacity(ENTRIES as usize);
        for i in 0..ENTRIES {
            keys.push(
                InternalKey::new(&user_key(i), i + 1, ValueKind::Put)
                    .as_bytes()
                    .to_vec(),
            );
            let mut value = [0u8; VALUE_BYTES];
            for byte in &mut value[..VALUE_BYTES / 2] {
                *byte = rng.next() as u8;
            }
            value.copy_within(..VALUE_BYTES / 2, VALUE_BYTES / 2);
            values.push(value);
        }
        Entries { keys, values }
    }

    fn write(&self, fs: &OsFs, path: &Path, options: TableOptions) -> TableMeta {
        let mut writer = TableWriter::create(fs, path, options).unwrap();
        for (key, value) in self.keys.iter().zip(&self.values) {
            writer.add(key, value).unwrap();
        }
        writer.finish().unwrap()
    }
}

fn options(compression: Compression, bloom_bits_per_key: u32) -> TableOptions {
    TableOptions {
        block_bytes_target: 4096,
        compression,
        bloom_bits_per_key,
        creation_time_unix_s: Some(1_700_000_000),
        ..TableOptions::default()
    }
}

/// Opens `path` with a block cache of `cache_bytes`; a non-zero cache is
/// filled by a full scan.
fn open(fs: &OsFs, path: &Path, cache_bytes: usize) -> Arc<Table> {
    let cache = Arc::new(LruBlockCache::new(cache_bytes));
    let table = Arc::new(Table::open(fs, path, ReadOptions::default().with_cache(cache)).unwrap());
    if cache_bytes > 0 {
        assert_eq!(scan(&table), ENTRIES);
    }
    table
}

/// Walks the whole table with a cursor; returns the entries seen.
fn scan(table: &Arc<Table>) -> u64 {
    let mut cursor = table.cursor();
    cursor.seek_to_first().unwrap();
    let mut n = 0;
    while cursor.valid() {
        black_box((cursor.key(), cursor.value()));
        n += 1;
        cursor.next().unwrap();
    }
    n
}

/// Runs `op` on `iters` probes, cycling through `probes`; returns the time.
fn timed<P>(probes: &[P], iters: u64, mut op: impl FnMut(&P)) -> Duration {
    let started = Instant::now();
    for probe in probes.iter().cycle().take(iters as usize) {
        op(probe);
    }
    started.elapsed()
}

/// The tables every read case uses, one pair (warm, cold) per file.
struct Tables {
    warm: Arc<Table>,
    cold: Arc<Table>,
}

fn table_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let fs = OsFs::new();
    let entries = Entries::new();

    // The tables read below, and the sizes with and without LZ4.
    let bloom_path = dir.path().join("bloom.sst");
    let no_bloom_path = dir.path().join("no_bloom.sst");
    let plain_path = dir.path().join("plain.sst");
    let spread_path = dir.path().join("spread.sst");
    entries.write(
        &fs,
        &spread_path,
        TableOptions {
            cache_local_filter: false,
            ..options(Compression::Lz4, 10)
        },
    );
    let lz4 = entries.write(&fs, &bloom_path, options(Compression::Lz4, 10));
    let lz4_no_bloom = entries.write(&fs, &no_bloom_path, options(Compression::Lz4, 0));
    let plain = entries.write(&fs, &plain_path, options(Compression::None, 10));
    std::fs::remove_file(&plain_path).unwrap();
    let per_entry = |meta: &TableMeta| meta.file_size as f64 / meta.entry_count as f64;
    eprintln!(
        "table of {ENTRIES} entries ({KEY_BYTES} B keys, {VALUE_BYTES} B values half random), \
         4 KiB blocks: bytes on disk per entry: LZ4 + 10 bits/key {:.1} ({} bytes, {} data blocks), \
         no compression + 10 bits/key {:.1} ({} bytes), LZ4 without filter {:.1} ({} bytes)",
        per_entry(&lz4),
        lz4.file_size,
        lz4.data_block_count,
        per_entry(&plain),
        plain.file_size,
        per_entry(&lz4_no_bloom),
        lz4_no_bloom.file_size,
    );

    build(c, &fs, dir.path(), &entries);
    drop(entries);

    let bloom = Tables {
        warm: open(&fs, &bloom_path, WARM_CACHE_BYTES),
        cold: open(&fs, &bloom_path, 0),
    };
    let no_bloom = Tables {
        warm: open(&fs, &no_bloom_path, WARM_CACHE_BYTES),
        cold: open(&fs, &no_bloom_path, 0),
    };

    let spread = open(&fs, &spread_path, WARM_CACHE_BYTES);

    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let hits: Vec<[u8; KEY_BYTES]> = (0..PROBES).map(|_| user_key(rng.below(ENTRIES))).collect();
    let misses: Vec<[u8; KEY_BYTES]> = (0..PROBES)
        .map(|_| absent_key(rng.below(ENTRIES)))
        .collect();
    let seeks: Vec<InternalKey> = (0..PROBES)
        .map(|_| {
            let i = rng.below(ENTRIES - NEXTS as u64);
            InternalKey::for_lookup(&user_key(i), SEQNO_MAX)
        })
        .collect();

    let mut group = c.benchmark_group("table");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for (temp, table, no_bloom_table) in [
        ("warm", &bloom.warm, &no_bloom.warm),
        ("cold", &bloom.cold, &no_bloom.cold),
    ] {
        group.bench_function(format!("get_hit/{temp}"), |b| {
            b.iter_custom(|iters| {
                timed(&hits, iters, |key| {
                    let found = table.get(key, SEQNO_MAX).unwrap();
                    assert!(black_box(found).is_some());
                })
            });
        });
        for (name, table) in [
            ("get_miss_bloom", table),
            ("get_miss_no_bloom", no_bloom_table),
        ] {
            group.bench_function(format!("{name}/{temp}"), |b| {
                b.iter_custom(|iters| {
                    timed(&misses, iters, |key| {
                        let found = table.get(key, SEQNO_MAX).unwrap();
                        assert!(black_box(found).is_none());
                    })
                });
            });
        }
        group.bench_function(format!("seek_next10/{temp}"), |b| {
            let mut cursor = table.cursor();
            b.iter_custom(|iters| {
                timed(&seeks, iters, |target| {
                    cursor.seek(target.as_bytes()).unwrap();
                    for _ in 0..NEXTS {
                        black_box((cursor.key(), cursor.value()));
                        cursor.next().unwrap();
                    }
                    assert!(cursor.valid());
                })
            });
        });
    }
    group.bench_function("get_hit_spread_filter/warm", |b| {
        b.iter_custom(|iters| {
            timed(&hits, iters, |key| {
                assert!(black_box(spread.get(key, SEQNO_MAX).unwrap()).is_some());
            })
        });
    });
    group.bench_function("get_miss_spread_filter/warm", |b| {
        b.iter_custom(|iters| {
            timed(&misses, iters, |key| {
                assert!(black_box(spread.get(key, SEQNO_MAX).unwrap()).is_none());
            })
        });
    });
    group.finish();

    let mut group = c.benchmark_group("table/scan");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(ENTRIES));
    for (temp, table) in [("warm", &bloom.warm), ("cold", &bloom.cold)] {
        group.bench_function(temp, |b| {
            b.iter(|| assert_eq!(scan(table), ENTRIES));
        });
    }
    group.finish();
}

/// Writing the whole table (LZ4, 10 bits per key), `finish` included, into
/// a file removed (untimed) after each run.
fn build(c: &mut Criterion, fs: &OsFs, dir: &Path, entries: &Entries) {
    let mut group = c.benchmark_group("table/build");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(12))
        .throughput(Throughput::Elements(ENTRIES));
    let path: PathBuf = dir.join("build.sst");
    group.bench_function("1M_lz4_bloom10", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let meta = entries.write(fs, &path, options(Compression::Lz4, 10));
                elapsed += started.elapsed();
                assert_eq!(meta.entry_count, ENTRIES);
                std::fs::remove_file(&path).unwrap();
            }
            elapsed
        });
    });
    group.finish();
}

criterion_group!(benches, table_benches);
criterion_main!(benches);
