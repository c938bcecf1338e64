//! Bytes on disk per entry and a rough warm point-get time for a table of
//! 1 M entries (16-byte keys, 100-byte values half random and half
//! repeated, as db_bench's compressible values), with and without LZ4.
//!
//! `cargo run --release -p kevo-sstable --example table_size [entries]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kevo_core::{InternalKey, MemFs, SEQNO_MAX, ValueKind};
use kevo_sstable::{Compression, LruBlockCache, ReadOptions, Table, TableOptions, TableWriter};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("entry count"));
    let variants = [
        (Compression::None, 10),
        (Compression::Lz4, 10),
        (Compression::Lz4, 0),
    ];
    for (compression, bloom_bits_per_key) in variants {
        let fs = MemFs::new();
        let path = Path::new("/table.sst");
        let options = TableOptions {
            compression,
            bloom_bits_per_key,
            ..TableOptions::default()
        };
        let mut writer = TableWriter::create(&fs, path, options).unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut value = vec![0u8; 100];
        let started = Instant::now();
        for i in 0..n {
            for byte in &mut value[..50] {
                *byte = rng.next() as u8;
            }
            value.copy_within(..50, 50);
            let key = InternalKey::new(format!("{i:016}").as_bytes(), i + 1, ValueKind::Put);
            writer.add(key.as_bytes(), &value).unwrap();
        }
        let meta = writer.finish().unwrap();
        let write_s = started.elapsed().as_secs_f64();

        let cache = Arc::new(LruBlockCache::new(1 << 30));
        let table = Table::open(&fs, path, ReadOptions::default().with_cache(cache)).unwrap();
        // Warm every data block.
        for i in 0..n {
            table.get(format!("{i:016}").as_bytes(), SEQNO_MAX).unwrap();
        }
        let keys: Vec<String> = (0..100_000)
            .map(|_| format!("{:016}", rng.next() % n))
            .collect();
        let mut batch_ns = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            for key in &keys {
                let found = table.get(key.as_bytes(), SEQNO_MAX).unwrap();
                assert!(found.is_some());
            }
            batch_ns.push(started.elapsed().as_nanos() as f64 / keys.len() as f64);
        }
        batch_ns.sort_by(f64::total_cmp);
        let started = Instant::now();
        for i in 0..100_000u64 {
            let key = format!("{:016}x", i);
            std::hint::black_box(table.get(key.as_bytes(), SEQNO_MAX).unwrap());
        }
        let miss_ns = started.elapsed().as_nanos() as f64 / 100_000.0;
        println!(
            "{compression:?}, bloom {bloom_bits_per_key} bits/key: {} entries, file {} bytes = {:.1} bytes/entry ({} data blocks), \
             written in {write_s:.2} s; warm get hit median {:.0} ns (batches of 100k random keys, \
             min {:.0}, max {:.0}); miss {miss_ns:.0} ns",
            meta.entry_count,
            meta.file_size,
            meta.file_size as f64 / n as f64,
            meta.data_block_count,
            batch_ns[batch_ns.len() / 2],
            batch_ns[0],
            batch_ns[batch_ns.len() - 1],
        );
    }
}
