//! The metamorphic test (Pebble's `metamorphic/`): one random operation
//! script runs under many option sets, and every read must give the same
//! result under all of them, and the result a `BTreeMap` model gives.
//!
//! Options change everything below the API (memtable, block and file
//! sizes, restart interval, compression, Bloom filters, compaction style,
//! sync mode, background threads, automatic compactions, caches, manifest
//! rewrites, WAL segment size) and nothing a reader may see: a difference
//! names the option set, the operation and both results.
//!
//! Scripts: writes, batches, deletes, range and prefix deletes (alone and
//! inside batches), gets, ranges both ways, prefixes,
//! snapshots read later, flushes, `compact_range`, reopens. In CI a few
//! scripts run (`KEVO_METAMORPHIC_SCRIPTS`, `KEVO_METAMORPHIC_OPS`);
//! `cargo xtask metamorphic` runs many more. `KEVO_METAMORPHIC_SEED`
//! replays a run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Rng;
use kevo_core::{MemFs, xxh3_64};
use kevo_engine::{
    CompactionStyle, Compression, Db, Options, RecoveryMode, Snapshot, SyncMode, WriteBatch,
    WriteOptions,
};

mod common;

type Model = BTreeMap<Bytes, Bytes>;

#[derive(Debug, Clone)]
enum Op {
    Put(Bytes, Bytes, bool),
    Delete(Bytes, bool),
    Batch(Vec<(Bytes, Option<Bytes>)>),
    /// Deletes `a..b`.
    DeleteRange(Bytes, Bytes),
    DeletePrefix(Bytes),
    /// A put, a range delete over `a..b`, a put: one batch.
    BatchWithRange(Bytes, Bytes, Bytes, Bytes),
    Get(Bytes),
    Range(Bytes, Bytes, bool),
    Prefix(Bytes, bool),
    TakeSnapshot,
    ReadSnapshot(usize, Bytes, Bytes),
    Flush,
    Compact(Bytes, Bytes),
    Reopen,
}

fn key(n: u64) -> Bytes {
    Bytes::from(format!("key{:03}", n % 400))
}

fn script(seed: u64, len: usize) -> Vec<Op> {
    let mut rng = Rng(seed);
    let mut counter = 0u64;
    let mut value = |rng: &mut Rng| {
        counter += 1;
        let len = match rng.below(8) {
            0 => 0,
            1..=5 => rng.below(100),
            _ => 500 + rng.below(3000),
        } as usize;
        let mut v = format!("v{counter}:").into_bytes();
        let fill = rng.next();
        v.extend((0..len).map(|i| (fill >> (i % 57)) as u8 ^ i as u8));
        Bytes::from(v)
    };
    // Range ends past the last key are fine: `key400` sorts after them all.
    let range = |rng: &mut Rng| {
        let a = rng.below(400);
        let b = a + rng.below(120);
        (key(a), Bytes::from(format!("key{b:03}")))
    };
    (0..len)
        .map(|_| match rng.below(100) {
            0..=35 => {
                let k = key(rng.below(400));
                Op::Put(k, value(&mut rng), rng.below(10) == 0)
            }
            36..=37 => {
                let (a, b) = range(&mut rng);
                Op::DeleteRange(a, b)
            }
            38 => Op::DeletePrefix(Bytes::from(format!("key{}", rng.below(40)))),
            39 => {
                let (a, b) = range(&mut rng);
                let before = key(rng.below(400));
                let after = key(rng.below(400));
                Op::BatchWithRange(a, b, before, after)
            }
            40..=47 => Op::Delete(key(rng.below(400)), rng.below(10) == 0),
            48..=57 => {
                let n = 1 + rng.below(10);
                Op::Batch(
                    (0..n)
                        .map(|_| {
                            let k = key(rng.below(400));
                            let v = (rng.below(5) != 0).then(|| value(&mut rng));
                            (k, v)
                        })
                        .collect(),
                )
            }
            58..=69 => Op::Get(key(rng.below(410))),
            70..=77 => {
                let (a, b) = range(&mut rng);
                Op::Range(a, b, rng.below(2) == 0)
            }
            78..=81 => Op::Prefix(
                Bytes::from(format!("key{}", rng.below(40))),
                rng.below(2) == 0,
            ),
            82..=85 => Op::TakeSnapshot,
            86..=90 => {
                let (a, b) = range(&mut rng);
                Op::ReadSnapshot(rng.below(1000) as usize, a, b)
            }
            91..=94 => Op::Flush,
            95..=97 => {
                let (a, b) = range(&mut rng);
                Op::Compact(a, b)
            }
            _ => Op::Reopen,
        })
        .collect()
}

/// The option sets: each changes what lies below the API, never what a
/// reader sees.
fn option_sets() -> Vec<(&'static str, Options)> {
    let small = || {
        Options::default()
            .memtable_bytes(64 * 1024)
            .target_file_bytes(64 * 1024)
            .base_level_bytes(128 * 1024)
            .level_multiplier(4)
    };
    vec![
        ("defaults", Options::default()),
        (
            "64 KiB memtables",
            Options::default().memtable_bytes(64 * 1024),
        ),
        ("small everything", small()),
        (
            "256 B blocks, restart every key",
            small().block_bytes(256).block_restart_interval(1),
        ),
        (
            "64 KiB blocks, restart every 128",
            small().block_bytes(64 * 1024).block_restart_interval(128),
        ),
        ("no compression", small().compression(Compression::None)),
        ("no Bloom filter", small().bloom_bits_per_key(0)),
        ("tiered", small().compaction_style(CompactionStyle::Tiered)),
        (
            "tiered, merge 2 runs",
            small()
                .compaction_style(CompactionStyle::Tiered)
                .l0_compaction_trigger(2),
        ),
        (
            "leveled, tiny levels",
            small()
                .base_level_bytes(64 * 1024)
                .level_multiplier(2)
                .l0_compaction_trigger(2),
        ),
        ("sync always", small().sync_mode(SyncMode::Always)),
        ("sync never", small().sync_mode(SyncMode::None)),
        (
            "sync every ms",
            small().sync_mode(SyncMode::Interval(Duration::from_millis(1))),
        ),
        ("1 background thread", small().background_threads(1)),
        ("4 background threads", small().background_threads(4)),
        ("no automatic compactions", small().auto_compactions(false)),
        ("no block cache", small().block_cache_bytes(0)),
        ("16 open tables", small().table_cache_tables(16)),
        ("1 immutable memtable", small().max_immutable_memtables(1)),
        ("64 KiB WAL segments", small().wal_segment_bytes(64 * 1024)),
        (
            "manifest rewritten often",
            small().manifest_rewrite_bytes(64 * 1024),
        ),
        (
            "L0 stalls early",
            small()
                .l0_compaction_trigger(2)
                .l0_slowdown_trigger(3)
                .l0_stop_trigger(4),
        ),
        (
            "absolute consistency",
            small().recovery_mode(RecoveryMode::AbsoluteConsistency),
        ),
        (
            "tiered, 4 threads, no compression, no filter",
            small()
                .compaction_style(CompactionStyle::Tiered)
                .background_threads(4)
                .compression(Compression::None)
                .bloom_bits_per_key(0)
                .block_bytes(512),
        ),
        (
            "everything tiny",
            small()
                .block_bytes(256)
                .block_restart_interval(2)
                .wal_segment_bytes(64 * 1024)
                .manifest_rewrite_bytes(64 * 1024)
                .max_immutable_memtables(1)
                .block_cache_bytes(0)
                .table_cache_tables(16)
                .l0_compaction_trigger(2)
                .l0_slowdown_trigger(3)
                .l0_stop_trigger(5),
        ),
    ]
}

fn digest(items: &[(Bytes, Bytes)]) -> String {
    let mut out = format!("{} entries", items.len());
    for (k, v) in items {
        out.push_str(&format!(" {}={:x}", String::from_utf8_lossy(k), xxh3_64(v)));
    }
    out
}

fn value_digest(value: Option<&Bytes>) -> String {
    value.map_or("none".to_string(), |v| format!("{:x}", xxh3_64(v)))
}

/// The result of every read of `ops` run on the model.
fn run_model(ops: &[Op]) -> Vec<String> {
    let mut model = Model::new();
    let mut snapshots: Vec<Model> = Vec::new();
    let mut out = Vec::new();
    let list = |m: &Model, a: &Bytes, b: &Bytes, rev: bool| {
        let mut items: Vec<_> = m
            .range(a.clone()..b.clone())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if rev {
            items.reverse();
        }
        digest(&items)
    };
    for op in ops {
        match op {
            Op::Put(k, v, _) => {
                model.insert(k.clone(), v.clone());
            }
            Op::Delete(k, _) => {
                model.remove(k);
            }
            Op::Batch(entries) => {
                for (k, v) in entries {
                    match v {
                        Some(v) => model.insert(k.clone(), v.clone()),
                        None => model.remove(k),
                    };
                }
            }
            Op::DeleteRange(a, b) => model.retain(|k, _| !(k >= a && k < b)),
            Op::DeletePrefix(p) => model.retain(|k, _| !k.starts_with(p)),
            Op::BatchWithRange(a, b, before, after) => {
                model.insert(before.clone(), before.clone());
                model.retain(|k, _| !(k >= a && k < b));
                model.insert(after.clone(), after.clone());
            }
            Op::Get(k) => out.push(value_digest(model.get(k))),
            Op::Range(a, b, rev) => out.push(list(&model, a, b, *rev)),
            Op::Prefix(p, rev) => {
                let mut items: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| k.starts_with(p))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if *rev {
                    items.reverse();
                }
                out.push(digest(&items));
            }
            Op::TakeSnapshot => snapshots.push(model.clone()),
            Op::ReadSnapshot(i, a, b) => {
                if !snapshots.is_empty() {
                    out.push(list(&snapshots[i % snapshots.len()], a, b, false));
                }
            }
            Op::Reopen => snapshots.clear(),
            Op::Flush | Op::Compact(..) => {}
        }
    }
    out
}

/// What a run went through, to check that the scripts exercise something.
#[derive(Debug, Default)]
struct Seen {
    flushes: u64,
    compactions: u64,
    reopens: u64,
}

/// The result of every read of `ops` run on a database with `options`.
fn run_db(ops: &[Op], options: &Options, seen: &mut Seen) -> Vec<String> {
    let mem = Arc::new(MemFs::new());
    let open = || Db::open_with_fs(mem.clone(), "/db", options.clone()).expect("open");
    let mut db = open();
    let mut snapshots: Vec<Snapshot> = Vec::new();
    let mut out = Vec::new();
    let collect = |iter: kevo_engine::DbIter, rev: bool| {
        let items: Vec<(Bytes, Bytes)> = if rev {
            iter.rev().collect::<Result<_, _>>().expect("scan")
        } else {
            iter.collect::<Result<_, _>>().expect("scan")
        };
        digest(&items)
    };
    for op in ops {
        match op {
            Op::Put(k, v, sync) => {
                let mut batch = WriteBatch::new();
                batch.put(k, v);
                db.write_with(batch, &WriteOptions { sync: *sync })
                    .expect("put");
            }
            Op::Delete(k, sync) => {
                let mut batch = WriteBatch::new();
                batch.delete(k);
                db.write_with(batch, &WriteOptions { sync: *sync })
                    .expect("delete");
            }
            Op::Batch(entries) => {
                let mut batch = WriteBatch::new();
                for (k, v) in entries {
                    match v {
                        Some(v) => batch.put(k, v),
                        None => batch.delete(k),
                    }
                }
                db.write(batch).expect("batch");
            }
            Op::DeleteRange(a, b) => db.delete_range(a.clone()..b.clone()).expect("delete_range"),
            Op::DeletePrefix(p) => db.delete_prefix(p).expect("delete_prefix"),
            Op::BatchWithRange(a, b, before, after) => {
                let mut batch = WriteBatch::new();
                batch.put(before, before);
                batch.delete_range(a.clone()..b.clone());
                batch.put(after, after);
                db.write(batch).expect("batch with a range delete");
            }
            Op::Get(k) => out.push(value_digest(db.get(k).expect("get").as_ref())),
            Op::Range(a, b, rev) => out.push(collect(db.range(a.clone()..b.clone()), *rev)),
            Op::Prefix(p, rev) => out.push(collect(db.prefix(p), *rev)),
            Op::TakeSnapshot => snapshots.push(db.snapshot()),
            Op::ReadSnapshot(i, a, b) => {
                if !snapshots.is_empty() {
                    let snapshot = &snapshots[i % snapshots.len()];
                    out.push(collect(snapshot.range(a.clone()..b.clone()), false));
                }
            }
            Op::Flush => db.flush().expect("flush"),
            Op::Compact(a, b) => db.compact_range(a.clone()..=b.clone()).expect("compact"),
            Op::Reopen => {
                snapshots.clear();
                seen.flushes += db.stats().flushes;
                seen.compactions += db.stats().compactions;
                seen.reopens += 1;
                db.close().expect("close");
                db = open();
            }
        }
    }
    seen.flushes += db.stats().flushes;
    seen.compactions += db.stats().compactions;
    db.close().expect("close");
    out
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_option_set_reads_the_same() {
    let scripts = env("KEVO_METAMORPHIC_SCRIPTS", 6);
    let len = env("KEVO_METAMORPHIC_OPS", 1000) as usize;
    let seed = env("KEVO_METAMORPHIC_SEED", 0x6d65_7461);
    let sets = option_sets();
    assert!(sets.len() >= 20, "only {} option sets", sets.len());
    let started = std::time::Instant::now();
    let mut reads = 0;
    let mut seen = Seen::default();
    // The option sets run side by side, one share per core: each run is
    // single-threaded and this is the longest test of the suite.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    for s in 0..scripts {
        let script_seed = seed.wrapping_add(s);
        let ops = script(script_seed, len);
        let expected = run_model(&ops);
        reads += expected.len() * sets.len();
        std::thread::scope(|scope| {
            let runs: Vec<_> = sets
                .chunks(sets.len().div_ceil(threads))
                .map(|share| {
                    let (ops, expected) = (&ops, &expected);
                    scope.spawn(move || {
                        let mut seen = Seen::default();
                        for (name, options) in share {
                            let got = run_db(ops, options, &mut seen);
                            if let Some(i) = (0..expected.len().max(got.len()))
                                .find(|&i| got.get(i) != expected.get(i))
                            {
                                panic!(
                                    "script {script_seed} (KEVO_METAMORPHIC_SEED={script_seed} KEVO_METAMORPHIC_SCRIPTS=1 \
                                     KEVO_METAMORPHIC_OPS={len}), option set \"{name}\": read {i} differs\n  got:  {:?}\n  want: {:?}",
                                    got.get(i),
                                    expected.get(i)
                                );
                            }
                        }
                        seen
                    })
                })
                .collect();
            for run in runs {
                let share = run.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                seen.flushes += share.flushes;
                seen.compactions += share.compactions;
                seen.reopens += share.reopens;
            }
        });
    }
    println!(
        "metamorphic: {scripts} scripts of {len} operations under {} option sets, {reads} reads \
         identical across all and equal to the model ({} flushes, {} compactions, {} reopens), \
         {:.1} s",
        sets.len(),
        seen.flushes,
        seen.compactions,
        seen.reopens,
        started.elapsed().as_secs_f64()
    );
    assert!(
        seen.flushes > 0 && seen.compactions > 0 && seen.reopens > 0,
        "{seen:?}"
    );
}
