//! Writes the seed tables of the `sstable_read` fuzz target: small tables
//! made by the real `TableWriter` (each under 8 KiB), with and without LZ4,
//! with and without a filter, with tombstones and several versions of a key,
//! and (format version 2) with range tombstones, one with no point entry;
//! and (format version 3) with the cache-local filter, with and without
//! range tombstones. The older seeds keep the type-2 filter
//! (`cache_local_filter: false`), so their bytes stay what they were.
//! With a second directory, also writes there the seeds of the
//! `sstable_range_tombstones` target: the range-tombstone block contents of
//! the seed tables that store it uncompressed.
//!
//! `cargo run -p kevo-sstable --example fuzz_seeds -- fuzz/seeds/sstable_read fuzz/seeds/sstable_range_tombstones`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use kevo_core::{InternalKey, OsFs, RangeTombstone, ValueKind};
use kevo_sstable::{BlockKind, Compression, Table, TableOptions, TableWriter};

/// Seeds are at most this big, so libFuzzer's `-max_len` stays small.
const SEED_BYTES_MAX: u64 = 8 << 10;

struct Seed {
    name: &'static str,
    options: TableOptions,
    /// `(user key, seqno, kind, value)`, in internal-key order.
    entries: Vec<(Vec<u8>, u64, ValueKind, Vec<u8>)>,
    /// `(start, end, seqno)`, in any order.
    range_tombstones: Vec<(&'static str, &'static str, u64)>,
}

fn options(
    compression: Compression,
    bloom_bits_per_key: u32,
    block_bytes_target: usize,
    restart_interval: usize,
) -> TableOptions {
    TableOptions {
        block_bytes_target,
        restart_interval,
        compression,
        bloom_bits_per_key,
        cache_local_filter: false,
        creation_time_unix_s: Some(1_700_000_000),
        ..TableOptions::default()
    }
}

/// [`options`] with the cache-local filter (format version 3).
fn local_filter(options: TableOptions) -> TableOptions {
    TableOptions {
        cache_local_filter: true,
        ..options
    }
}

fn put(key: &str, seqno: u64, value: &[u8]) -> (Vec<u8>, u64, ValueKind, Vec<u8>) {
    (key.into(), seqno, ValueKind::Put, value.to_vec())
}

fn delete(key: &str, seqno: u64) -> (Vec<u8>, u64, ValueKind, Vec<u8>) {
    (key.into(), seqno, ValueKind::Delete, Vec::new())
}

/// A compressible value: `len` bytes cycling through a short pattern.
fn value(i: usize, len: usize) -> Vec<u8> {
    format!("v{i:03}-abc-").bytes().cycle().take(len).collect()
}

fn seeds() -> Vec<Seed> {
    vec![
        Seed {
            name: "small_plain",
            options: options(Compression::None, 10, 4096, 16),
            entries: vec![
                put("apple", 3, b"red"),
                put("banana", 2, b"yellow"),
                put("cherry", 5, b"dark red"),
                put("date", 1, b""),
                put("elderberry", 4, b"purple"),
            ],
            range_tombstones: vec![],
        },
        Seed {
            name: "small_lz4",
            options: options(Compression::Lz4, 10, 4096, 16),
            entries: (0..40)
                .map(|i| put(&format!("key{i:04}"), 100 + i as u64, &value(i, 48)))
                .collect(),
            range_tombstones: vec![],
        },
        Seed {
            // Several versions per key, tombstones, many small blocks with
            // short restart intervals, LZ4 where it pays.
            name: "versions_tombstones_lz4",
            options: options(Compression::Lz4, 10, 160, 2),
            entries: (0..24)
                .flat_map(|i| {
                    let key = format!("user/{:03}", i * 7);
                    let base = 1000 - 10 * i as u64;
                    let mut versions = vec![put(&key, base + 5, &value(i, 24))];
                    if i % 3 == 0 {
                        versions.insert(0, delete(&key, base + 8));
                    }
                    if i % 4 == 1 {
                        versions.push(put(&key, base + 1, &value(i + 1, 40)));
                    }
                    versions
                })
                .collect(),
            range_tombstones: vec![],
        },
        Seed {
            // No filter; keys of varied length, the empty user key first;
            // uncompressed 64-byte blocks, a restart at every third entry.
            name: "no_filter_multi_block",
            options: options(Compression::None, 0, 64, 3),
            entries: (0..20)
                .map(|i| {
                    let key = if i == 0 {
                        String::new()
                    } else {
                        format!("{}{i:02}", "k".repeat(i % 5))
                    };
                    (key, i)
                })
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .map(|(key, i)| {
                    if i % 5 == 2 {
                        delete(&key, 50 + i as u64)
                    } else {
                        put(&key, 50 + i as u64, &value(i, i * 3))
                    }
                })
                .collect(),
            range_tombstones: vec![],
        },
        Seed {
            // Uncompressed blocks of ~10 entries with a restart at every
            // other one, and an uncompressed index.
            name: "plain_restarts",
            options: options(Compression::None, 10, 256, 2),
            entries: (0..36)
                .map(|i| {
                    let key = format!("row{:04}", i * 3);
                    if i % 7 == 3 {
                        delete(&key, 500 + i as u64)
                    } else {
                        put(&key, 500 + i as u64, &value(i, 12))
                    }
                })
                .collect(),
            range_tombstones: vec![],
        },
        Seed {
            name: "one_tombstone",
            options: options(Compression::Lz4, 10, 4096, 16),
            entries: vec![delete("gone", 7)],
            range_tombstones: vec![],
        },
        Seed {
            // Format version 2: points and overlapping range tombstones,
            // one before every point, one ending after the last.
            name: "range_tombstones_plain",
            options: options(Compression::None, 10, 128, 2),
            entries: (0..16)
                .map(|i| put(&format!("row{:03}", i * 5), 200 + i as u64, &value(i, 10)))
                .collect(),
            range_tombstones: vec![
                ("row010", "row040", 230),
                ("row020", "row060", 190),
                ("row020", "row060", 250),
                ("a", "b", 5),
                ("row070", "zzz", 300),
            ],
        },
        Seed {
            name: "range_tombstones_lz4",
            options: options(Compression::Lz4, 10, 4096, 16),
            entries: (0..30)
                .map(|i| put(&format!("key{i:04}"), 100 + i as u64, &value(i, 32)))
                .collect(),
            range_tombstones: vec![
                ("key0000", "key0010", 150),
                ("key0005", "key0015", 160),
                ("key0010", "key0020", 170),
                ("key0015", "key0025", 180),
                ("key0020", "key0030", 190),
            ],
        },
        Seed {
            // Format version 3: the cache-local filter over 60 keys
            // (2 lines), LZ4 blocks of ~5 entries.
            name: "local_filter_lz4",
            options: local_filter(options(Compression::Lz4, 10, 256, 4)),
            entries: (0..60)
                .map(|i| put(&format!("key{i:04}"), 100 + i as u64, &value(i, 20)))
                .collect(),
            range_tombstones: vec![],
        },
        Seed {
            // Format version 3 with range tombstones, uncompressed.
            name: "local_filter_range_tombstones",
            options: local_filter(options(Compression::None, 10, 200, 3)),
            entries: (0..20)
                .map(|i| put(&format!("row{:03}", i * 5), 200 + i as u64, &value(i, 8)))
                .collect(),
            range_tombstones: vec![("row010", "row040", 230), ("row070", "zzz", 300)],
        },
        Seed {
            // Range tombstones alone: no data block, an empty index.
            name: "range_tombstones_only",
            options: options(Compression::None, 0, 4096, 16),
            entries: vec![],
            range_tombstones: vec![("b", "f", 9), ("d", "k", 12), ("", "a", 3)],
        },
    ]
}

fn main() {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .expect("usage: fuzz_seeds <table seed directory> [<range-tombstone block seed directory>]")
        .into();
    std::fs::create_dir_all(&dir).unwrap();
    let block_dir: Option<PathBuf> = std::env::args_os().nth(2).map(PathBuf::from);
    if let Some(block_dir) = &block_dir {
        std::fs::create_dir_all(block_dir).unwrap();
    }
    let fs = OsFs::new();
    for seed in seeds() {
        let path = dir.join(seed.name);
        let mut writer = TableWriter::create(&fs, &path, seed.options).unwrap();
        for (key, seqno, kind, value) in &seed.entries {
            writer
                .add(InternalKey::new(key, *seqno, *kind).as_bytes(), value)
                .unwrap();
        }
        for (start, end, seqno) in &seed.range_tombstones {
            writer
                .add_range_tombstone(&RangeTombstone::new((*start).into(), (*end).into(), *seqno))
                .unwrap();
        }
        let meta = writer.finish().unwrap();
        assert!(
            meta.file_size <= SEED_BYTES_MAX,
            "{}: {} bytes",
            seed.name,
            meta.file_size
        );
        let table = Table::open(&fs, &path, Default::default()).unwrap();
        let report = table.verify().unwrap();
        let blocks: Vec<_> = table.blocks().collect::<Result<_, _>>().unwrap();
        let lz4 = blocks
            .iter()
            .filter(|b| b.compression == Some(Compression::Lz4))
            .count();
        println!(
            "{}: {} bytes, {} entries ({} tombstones), {} range tombstones, {} data blocks, \
             {lz4} LZ4 blocks",
            path.display(),
            meta.file_size,
            report.entries,
            report.tombstones,
            report.range_tombstones,
            report.data_blocks,
        );
        // The range-tombstone block's contents, where stored as is.
        let stored_plain = blocks.iter().find(|b| {
            b.kind == BlockKind::RangeTombstones && b.compression == Some(Compression::None)
        });
        if let (Some(block_dir), Some(block)) = (&block_dir, stored_plain) {
            let bytes = std::fs::read(&path).unwrap();
            let start = block.handle.offset as usize;
            let contents = &bytes[start..start + block.handle.size as usize];
            let decoded = kevo_sstable::decode_range_tombstones(contents).unwrap();
            assert_eq!(&decoded, &**table.range_tombstones());
            let block_path = block_dir.join(seed.name);
            std::fs::write(&block_path, contents).unwrap();
            println!("{}: {} bytes", block_path.display(), contents.len());
        }
    }
}
