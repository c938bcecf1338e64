//! How reads reach the disk: filter first, one data block, the cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use kevo_core::{FaultFs, FaultOp, Fs, MemFs, SEQNO_MAX};
use kevo_sstable::{LruBlockCache, ReadOptions, Table, TableOptions};

fn fault_fs_with_table(model: &[Entry]) -> FaultFs {
    let mem = MemFs::new();
    write_table(&mem, PATH, model, options());
    FaultFs::new(Arc::new(mem))
}

fn open_cached(fs: &dyn Fs) -> Table {
    let cache = Arc::new(LruBlockCache::new(8 << 20));
    Table::open(
        fs,
        Path::new(PATH),
        ReadOptions::default().with_cache(cache),
    )
    .unwrap()
}

#[test]
fn cold_get_reads_exactly_one_data_block_and_warm_get_reads_nothing() {
    let model = entries(2000, 50);
    let fs = fault_fs_with_table(&model);
    let table = open_cached(&fs);
    assert!(table.properties().data_block_count > 10);
    for (i, user_key) in [b"key000007", b"key001234", b"key001999"]
        .iter()
        .enumerate()
    {
        let before = fs.op_count(FaultOp::Read);
        let found = table.get(*user_key, SEQNO_MAX).unwrap();
        assert!(found.is_some(), "lookup {i}");
        assert_eq!(fs.op_count(FaultOp::Read) - before, 1, "cold lookup {i}");
        let before = fs.op_count(FaultOp::Read);
        let again = table.get(*user_key, SEQNO_MAX).unwrap();
        assert_eq!(again, found);
        assert_eq!(fs.op_count(FaultOp::Read) - before, 0, "warm lookup {i}");
    }
}

#[test]
fn filtered_miss_reads_nothing() {
    let model = entries(2000, 50);
    let fs = fault_fs_with_table(&model);
    let table = open_cached(&fs);
    let before = fs.op_count(FaultOp::Read);
    let mut passed = 0;
    for i in 0..1000 {
        let key = format!("absent{i}");
        assert!(table.get(key.as_bytes(), SEQNO_MAX).unwrap().is_none());
        passed += usize::from(table.may_contain(key.as_bytes()));
    }
    // Each false positive costs at most one data-block read.
    assert!(fs.op_count(FaultOp::Read) - before <= passed as u64);
    assert!(
        passed < 50,
        "{passed} of 1000 absent keys passed the filter"
    );
}

#[test]
fn open_reads_footer_index_properties_and_filter_once_each() {
    let model = entries(100, 10);
    let fs = fault_fs_with_table(&model);
    let _table = open_cached(&fs);
    assert_eq!(fs.op_count(FaultOp::Read), 4);
}

#[test]
fn bottom_level_table_skips_its_filter_only_when_asked() {
    let model = entries(100, 10);
    let fs = MemFs::new();
    for (filter_bottom_level, has_filter) in [(true, true), (false, false)] {
        write_table(
            &fs,
            PATH,
            &model,
            TableOptions {
                bottom_level: true,
                filter_bottom_level,
                ..options()
            },
        );
        let table = open(&fs);
        assert_eq!(table.filter_shape().is_some(), has_filter);
        assert!(table.get(b"key000010", SEQNO_MAX).unwrap().is_some());
    }
}

#[test]
fn bloom_false_positive_rate_matches_theory_at_10_bits_per_key() {
    let n = 100_000u64;
    let model: Vec<Entry> = (0..n)
        .map(|i| {
            Entry::new(
                format!("present-{i}").as_bytes(),
                1,
                kevo_core::ValueKind::Put,
                b"",
            )
        })
        .collect();
    let model = sorted(model);
    // The cache-local filter rounds up to whole 512-bit lines and lets
    // slightly more through than the spread one: up to 0.3 point over the
    // spread filter's theory.
    for (cache_local_filter, bits_wanted, above) in [
        (false, n * 10, 0.0),
        (true, (n * 10).div_ceil(512) * 512, 0.003),
    ] {
        let options = TableOptions {
            cache_local_filter,
            ..options()
        };
        let fs = memfs_with_table(&model, options);
        let table = open(&fs);
        let (bits, probes) = table.filter_shape().unwrap();
        assert_eq!((bits, probes), (bits_wanted, 7));
        let false_positives = (0..n)
            .filter(|i| table.may_contain(format!("absent-{i}").as_bytes()))
            .count();
        let measured = false_positives as f64 / n as f64;
        let k = f64::from(probes);
        let theory = (1.0 - (-k * n as f64 / bits as f64).exp()).powf(k);
        assert!(
            measured >= theory - 0.005 && measured <= theory + above + 0.005,
            "cache-local {cache_local_filter}: measured {measured:.5}, theory {theory:.5}"
        );
    }
}

#[test]
fn a_cursor_without_cache_fill_uses_cached_blocks_and_caches_none() {
    use kevo_core::Cursor as _;
    use kevo_sstable::BlockCache as _;
    let model = entries(2000, 50);
    let fs = fault_fs_with_table(&model);
    let cache = Arc::new(LruBlockCache::new(8 << 20));
    let table = Arc::new(
        Table::open(
            &fs,
            Path::new(PATH),
            ReadOptions::default().with_cache(cache.clone()),
        )
        .unwrap(),
    );
    let blocks = table.properties().data_block_count;
    // One block cached by a get; a full uncached scan reads every other
    // block from the file and leaves the cache as it was.
    assert!(table.get(b"key000007", SEQNO_MAX).unwrap().is_some());
    let cached = cache.used_bytes();
    assert_eq!(cache.len(), 1);
    let before = fs.op_count(FaultOp::Read);
    let mut cursor = table.cursor().without_cache_fill();
    cursor.seek_to_first().unwrap();
    let mut seen = 0;
    while cursor.valid() {
        seen += 1;
        cursor.next().unwrap();
    }
    assert_eq!(seen, model.len());
    assert_eq!(fs.op_count(FaultOp::Read) - before, blocks - 1);
    assert_eq!((cache.len(), cache.used_bytes()), (1, cached));
    // A filling cursor caches them all; forgetting empties the cache.
    let mut cursor = table.cursor();
    cursor.seek_to_first().unwrap();
    while cursor.valid() {
        cursor.next().unwrap();
    }
    assert_eq!(cache.len() as u64, blocks);
    table.forget_cached_blocks();
    assert_eq!((cache.len(), cache.used_bytes()), (0, 0));
    // The table still reads (from the file) after forgetting.
    assert!(table.get(b"key001999", SEQNO_MAX).unwrap().is_some());
}

#[test]
fn cursors_count_the_blocks_they_hold_in_the_pin_counter() {
    use kevo_core::Cursor as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let model = entries(2000, 50);
    let fs = fault_fs_with_table(&model);
    let pins = Arc::new(AtomicUsize::new(0));
    let table = Arc::new(
        Table::open(
            &fs,
            Path::new(PATH),
            ReadOptions::default().with_pin_counter(pins.clone()),
        )
        .unwrap(),
    );
    assert!(table.metadata_bytes() > 0);
    let mut a = table.cursor();
    let mut b = table.cursor();
    a.seek_to_first().unwrap();
    let one = pins.load(Ordering::Relaxed);
    assert!(one > 0);
    b.seek_to_last().unwrap();
    assert!(pins.load(Ordering::Relaxed) > one);
    // Walking a whole table holds one block at a time.
    while a.valid() {
        a.next().unwrap();
        assert!(pins.load(Ordering::Relaxed) < 3 * one);
    }
    assert!(!a.valid());
    drop(a);
    // A released cursor holds no block, and seeks again as a new one.
    assert!(pins.load(Ordering::Relaxed) > 0);
    b.release();
    assert!(!b.valid());
    assert_eq!(pins.load(Ordering::Relaxed), 0);
    b.seek(&model[1000].key).unwrap();
    assert_eq!(
        (b.key(), b.value()),
        (&model[1000].key[..], &model[1000].value[..])
    );
    assert!(pins.load(Ordering::Relaxed) > 0);
    drop(b);
    assert_eq!(pins.load(Ordering::Relaxed), 0);
}
