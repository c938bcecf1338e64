//! The engine against a model: a `BTreeMap`, over `MemFs`, with flushes,
//! snapshots, clean reopens and crashes.
//!
//! After a crash the database must equal the model as of some acknowledged
//! prefix of the history that includes every write known durable (made with
//! `sync: true`, under `SyncMode::Always`, or before a completed `flush` or
//! a clean close). Snapshots must always read what they read when taken.
//!
//! A crash is simulated as a process kill followed by power loss: every
//! mutating file operation of the old instance starts failing (a `FaultFs`
//! kill switch), then `MemFs::crash()` drops what was not synced, then the
//! old instance is dropped and a new one opened on the same `MemFs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kevo_core::{FaultFs, MemFs};
use kevo_engine::{CompactionStyle, Db, Options, Snapshot, SyncMode, WriteBatch, WriteOptions};
use proptest::prelude::*;

type Model = BTreeMap<Bytes, Bytes>;

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: u8,
        len: u16,
        sync: bool,
    },
    Delete {
        key: u8,
        sync: bool,
    },
    Batch {
        entries: Vec<(u8, Option<u16>)>,
        sync: bool,
    },
    /// Deletes keys `a..b` (as model keys); `digit`: a prefix instead.
    DeleteRange {
        a: u8,
        b: u8,
        sync: bool,
    },
    DeletePrefix {
        digit: u8,
        sync: bool,
    },
    /// A put, then a range delete over it and others, then puts inside
    /// the range: one batch.
    BatchWithRange {
        a: u8,
        b: u8,
        before: u8,
        after: u8,
        len: u16,
    },
    Get {
        key: u8,
    },
    Range {
        a: u8,
        b: u8,
        rev: bool,
    },
    Prefix {
        digit: u8,
        rev: bool,
    },
    TakeSnapshot,
    ReadSnapshot {
        index: usize,
        key: u8,
    },
    Flush,
    Compact {
        a: u8,
        b: u8,
    },
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..64;
    let len = prop_oneof![3 => 0u16..64, 1 => 64u16..2048];
    prop_oneof![
        30 => (key.clone(), len.clone(), prop::bool::weighted(0.1))
            .prop_map(|(key, len, sync)| Op::Put { key, len, sync }),
        8 => (key.clone(), prop::bool::weighted(0.1)).prop_map(|(key, sync)| Op::Delete { key, sync }),
        8 => (prop::collection::vec((key.clone(), prop::option::weighted(0.7, len.clone())), 1..8), prop::bool::weighted(0.2))
            .prop_map(|(entries, sync)| Op::Batch { entries, sync }),
        4 => (key.clone(), key.clone(), prop::bool::weighted(0.1)).prop_map(|(a, b, sync)| Op::DeleteRange { a, b, sync }),
        1 => (0u8..7, prop::bool::weighted(0.1)).prop_map(|(digit, sync)| Op::DeletePrefix { digit, sync }),
        2 => (key.clone(), key.clone(), key.clone(), key.clone(), len.clone())
            .prop_map(|(a, b, before, after, len)| Op::BatchWithRange { a, b, before, after, len }),
        10 => key.clone().prop_map(|key| Op::Get { key }),
        6 => (key.clone(), key.clone(), any::<bool>()).prop_map(|(a, b, rev)| Op::Range { a, b, rev }),
        3 => (0u8..7, any::<bool>()).prop_map(|(digit, rev)| Op::Prefix { digit, rev }),
        4 => Just(Op::TakeSnapshot),
        5 => (any::<prop::sample::Index>(), key.clone()).prop_map(|(index, key)| Op::ReadSnapshot { index: index.index(usize::MAX), key }),
        3 => Just(Op::Flush),
        3 => (key.clone(), key.clone()).prop_map(|(a, b)| Op::Compact { a, b }),
        3 => Just(Op::Reopen),
        4 => Just(Op::Crash),
    ]
}

fn key_bytes(key: u8) -> Bytes {
    Bytes::from(format!("k{:02}", key % 64))
}

/// Values are unique, so that a recovered state names the prefix it is.
fn value_bytes(counter: &mut u64, len: u16) -> Bytes {
    *counter += 1;
    let mut value = format!("v{counter}-").into_bytes();
    value.resize(value.len().max(len as usize), b'x');
    Bytes::from(value)
}

/// `mode`: the sync mode (0 None, 1 Always, 2 Interval) and, from bit 2,
/// the compaction style (0 leveled, 1 tiered).
fn options(mode: u8) -> Options {
    let style = if mode & 4 == 0 {
        CompactionStyle::Leveled
    } else {
        CompactionStyle::Tiered
    };
    let mode = mode & 3;
    let sync_mode = match mode {
        0 => SyncMode::None,
        1 => SyncMode::Always,
        _ => SyncMode::Interval(Duration::from_millis(5)),
    };
    Options::default()
        .memtable_bytes(64 * 1024)
        .max_immutable_memtables(1 + mode as usize % 2)
        .wal_segment_bytes(64 * 1024)
        .block_bytes(512)
        .block_cache_bytes(if mode == 2 { 0 } else { 1 << 20 })
        .background_threads(1)
        .sync_mode(sync_mode)
        .manifest_rewrite_bytes(64 * 1024)
        .compaction_style(style)
        .l0_compaction_trigger(2)
        .l0_slowdown_trigger(8)
        .l0_stop_trigger(12)
        .target_file_bytes(64 * 1024)
        .base_level_bytes(64 * 1024)
        .level_multiplier(4)
}

struct Life {
    fs: Arc<FaultFs>,
    db: Db,
}

fn open(mem: &Arc<MemFs>, mode: u8) -> Life {
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let db = Db::open_with_fs(fs.clone(), "/db", options(mode)).expect("open");
    Life { fs, db }
}

fn scan(iter: impl Iterator<Item = kevo_engine::Result<(Bytes, Bytes)>>) -> Vec<(Bytes, Bytes)> {
    iter.collect::<Result<_, _>>().expect("scan")
}

fn expected<'a>(
    items: impl DoubleEndedIterator<Item = (&'a Bytes, &'a Bytes)>,
    rev: bool,
) -> Vec<(Bytes, Bytes)> {
    let items: Vec<_> = items.map(|(k, v)| (k.clone(), v.clone())).collect();
    if rev {
        items.into_iter().rev().collect()
    } else {
        items
    }
}

/// What a run went through, to check that the histories test something.
#[derive(Debug, Default)]
struct Seen {
    flushes: u64,
    compactions: u64,
    crashes: u64,
    tables_at_end: usize,
}

fn run(ops: Vec<Op>, mode: u8, seed: u64) -> Result<Seen, TestCaseError> {
    let mut seen = Seen::default();
    let mem = Arc::new(MemFs::with_seed(seed));
    let mut life = open(&mem, mode);
    let mut model = Model::new();
    // States after each acknowledged write since the last known-durable
    // point; `history[durable]` is the oldest a crash may go back to.
    let mut history = vec![model.clone()];
    let mut durable = 0usize;
    let mut snapshots: Vec<(Snapshot, Model)> = Vec::new();
    let mut counter = 0u64;
    let always = mode & 3 == 1;

    for op in ops {
        match op {
            Op::Put { key, len, sync } => {
                let value = value_bytes(&mut counter, len);
                let mut batch = WriteBatch::new();
                batch.put(key_bytes(key), &value);
                life.db
                    .write_with(batch, &WriteOptions { sync })
                    .expect("put");
                model.insert(key_bytes(key), value);
                history.push(model.clone());
                if sync || always {
                    durable = history.len() - 1;
                }
            }
            Op::Delete { key, sync } => {
                let mut batch = WriteBatch::new();
                batch.delete(key_bytes(key));
                life.db
                    .write_with(batch, &WriteOptions { sync })
                    .expect("delete");
                model.remove(&key_bytes(key));
                history.push(model.clone());
                if sync || always {
                    durable = history.len() - 1;
                }
            }
            Op::Batch { entries, sync } => {
                let mut batch = WriteBatch::new();
                for (key, value) in entries {
                    match value {
                        Some(len) => {
                            let value = value_bytes(&mut counter, len);
                            batch.put(key_bytes(key), &value);
                            model.insert(key_bytes(key), value);
                        }
                        None => {
                            batch.delete(key_bytes(key));
                            model.remove(&key_bytes(key));
                        }
                    }
                }
                life.db
                    .write_with(batch, &WriteOptions { sync })
                    .expect("batch");
                history.push(model.clone());
                if sync || always {
                    durable = history.len() - 1;
                }
            }
            Op::DeleteRange { a, b, sync } => {
                let (a, b) = (key_bytes(a.min(b)), key_bytes(a.max(b)));
                let mut batch = WriteBatch::new();
                batch.delete_range(a.clone()..b.clone());
                life.db
                    .write_with(batch, &WriteOptions { sync })
                    .expect("delete_range");
                model.retain(|k, _| !(*k >= a && *k < b));
                history.push(model.clone());
                if sync || always {
                    durable = history.len() - 1;
                }
            }
            Op::DeletePrefix { digit, sync } => {
                let prefix = format!("k{digit}");
                let mut batch = WriteBatch::new();
                batch.delete_prefix(&prefix);
                life.db
                    .write_with(batch, &WriteOptions { sync })
                    .expect("delete_prefix");
                model.retain(|k, _| !k.starts_with(prefix.as_bytes()));
                history.push(model.clone());
                if sync || always {
                    durable = history.len() - 1;
                }
            }
            Op::BatchWithRange {
                a,
                b,
                before,
                after,
                len,
            } => {
                let (a, b) = (key_bytes(a.min(b)), key_bytes(a.max(b)));
                let mut batch = WriteBatch::new();
                let value = value_bytes(&mut counter, len);
                batch.put(key_bytes(before), &value);
                model.insert(key_bytes(before), value);
                batch.delete_range(a.clone()..b.clone());
                model.retain(|k, _| !(*k >= a && *k < b));
                let value = value_bytes(&mut counter, len);
                batch.put(key_bytes(after), &value);
                model.insert(key_bytes(after), value);
                life.db.write(batch).expect("batch with a range delete");
                history.push(model.clone());
                if always {
                    durable = history.len() - 1;
                }
            }
            Op::Get { key } => {
                let got = life.db.get(key_bytes(key)).expect("get");
                prop_assert_eq!(got.as_ref(), model.get(&key_bytes(key)));
            }
            Op::Range { a, b, rev } => {
                let (a, b) = (key_bytes(a.min(b)), key_bytes(a.max(b)));
                let got = if rev {
                    scan(life.db.range(a.clone()..b.clone()).rev())
                } else {
                    scan(life.db.range(a.clone()..b.clone()))
                };
                prop_assert_eq!(got, expected(model.range(a..b), rev));
            }
            Op::Prefix { digit, rev } => {
                let prefix = format!("k{digit}");
                let got = if rev {
                    scan(life.db.prefix(&prefix).rev())
                } else {
                    scan(life.db.prefix(&prefix))
                };
                let want = expected(
                    model
                        .iter()
                        .filter(|(k, _)| k.starts_with(prefix.as_bytes())),
                    rev,
                );
                prop_assert_eq!(got, want);
            }
            Op::TakeSnapshot => snapshots.push((life.db.snapshot(), model.clone())),
            Op::ReadSnapshot { index, key } => {
                if !snapshots.is_empty() {
                    let (snapshot, seen) = &snapshots[index % snapshots.len()];
                    prop_assert_eq!(
                        scan(snapshot.range::<&[u8], _>(..)),
                        expected(seen.iter(), false)
                    );
                    prop_assert_eq!(
                        scan(snapshot.range::<&[u8], _>(..).rev()),
                        expected(seen.iter(), true)
                    );
                    let got = snapshot.get(key_bytes(key)).expect("snapshot get");
                    prop_assert_eq!(got.as_ref(), seen.get(&key_bytes(key)));
                }
            }
            Op::Flush => {
                life.db.flush().expect("flush");
                durable = history.len() - 1;
            }
            Op::Compact { a, b } => {
                let (a, b) = (key_bytes(a.min(b)), key_bytes(a.max(b)));
                life.db.compact_range(a..=b).expect("compact");
                // compact_range flushes first.
                durable = history.len() - 1;
            }
            Op::Reopen => {
                seen.flushes += life.db.stats().flushes;
                seen.compactions += life.db.stats().compactions;
                life.db.close().expect("close");
                snapshots.clear();
                life = open(&mem, mode);
                let got = scan(life.db.range::<&[u8], _>(..));
                prop_assert_eq!(got, expected(model.iter(), false), "after a clean reopen");
                history = vec![model.clone()];
                durable = 0;
            }
            Op::Crash => {
                seen.flushes += life.db.stats().flushes;
                seen.compactions += life.db.stats().compactions;
                seen.crashes += 1;
                life.fs.fail_every_change();
                mem.crash();
                snapshots.clear();
                drop(life);
                life = open(&mem, mode);
                let got: Model = scan(life.db.range::<&[u8], _>(..)).into_iter().collect();
                let found = (durable..history.len()).rev().find(|&i| history[i] == got);
                let Some(found) = found else {
                    return Err(TestCaseError::fail(format!(
                        "after a crash the database holds {} keys, matching no acknowledged \
                         state from {durable} to {} (durable prefix: {:?})",
                        got.len(),
                        history.len() - 1,
                        history[durable].len()
                    )));
                };
                model = history[found].clone();
                history = vec![model.clone()];
                durable = 0;
            }
        }
    }
    // The end: a clean close and reopen shows the model exactly.
    seen.flushes += life.db.stats().flushes;
    seen.compactions += life.db.stats().compactions;
    life.db.close().expect("final close");
    drop(snapshots);
    let life = open(&mem, mode);
    prop_assert_eq!(
        scan(life.db.range::<&[u8], _>(..)),
        expected(model.iter(), false)
    );
    seen.tables_at_end = life.db.stats().table_count();
    life.db.close().expect("close");
    Ok(seen)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("KEVO_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_the_model(
        ops in prop::collection::vec(op(), 1..120),
        mode in prop_oneof![0u8..3, 4u8..7],
        seed in any::<u64>(),
    ) {
        run(ops, mode, seed)?;
    }
}

/// The generator must actually produce crashes and flushes to tables in
/// most cases; this checks a fixed long history with both.
#[test]
fn a_long_history_with_crashes_and_flushes() {
    let mut ops = Vec::new();
    for round in 0..6u8 {
        for i in 0..150u8 {
            ops.push(Op::Put {
                key: i.wrapping_mul(7).wrapping_add(round),
                len: 900,
                sync: i % 50 == 0,
            });
            if i % 9 == 0 {
                ops.push(Op::Delete {
                    key: i,
                    sync: false,
                });
            }
            if i % 40 == 0 {
                ops.push(Op::TakeSnapshot);
            }
            if i % 33 == 0 {
                ops.push(Op::ReadSnapshot {
                    index: i as usize,
                    key: i,
                });
            }
        }
        ops.push(if round % 2 == 0 {
            Op::Crash
        } else {
            Op::Reopen
        });
    }
    for mode in [0, 1, 2, 4, 5, 6] {
        let seen = run(ops.clone(), mode, 42 + mode as u64).expect("long history");
        assert!(seen.compactions > 0, "mode {mode}: {seen:?}");
        assert!(seen.flushes >= 6, "mode {mode}: {seen:?}");
        assert_eq!(seen.crashes, 3, "mode {mode}: {seen:?}");
        assert!(seen.tables_at_end >= 1, "mode {mode}: {seen:?}");
    }
}
