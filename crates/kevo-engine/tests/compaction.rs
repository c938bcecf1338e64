//! Compaction in the engine: space is reclaimed, snapshots keep what they
//! saw, a crash at any sync point of a compaction loses nothing and leaks
//! nothing, and a failed compaction leaves the database consistent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, Fs, MemFs};
use kevo_engine::{CompactionStyle, Db, Error, Options, SyncMode, WriteBatch};

const STYLES: [CompactionStyle; 2] = [CompactionStyle::Leveled, CompactionStyle::Tiered];

fn small(style: CompactionStyle) -> Options {
    Options::default()
        .compaction_style(style)
        .memtable_bytes(256 * 1024)
        .target_file_bytes(128 * 1024)
        .base_level_bytes(512 * 1024)
        .l0_compaction_trigger(2)
        .block_bytes(1024)
        .sync_mode(SyncMode::None)
}

fn key(i: u32) -> String {
    format!("key{i:07}")
}

/// 100 bytes that do not compress.
fn noise(i: u32) -> Vec<u8> {
    common::noise(u64::from(i), 100)
}

fn scan_all(db: &Db) -> Vec<(Bytes, Bytes)> {
    db.range::<&[u8], _>(..)
        .collect::<Result<_, _>>()
        .expect("scan")
}

/// Write 200 000 keys, delete them all, `compact_range(..)`: the live
/// tables shrink below 1% of their peak and nothing reads back.
#[test]
fn deleting_everything_and_compacting_reclaims_the_space() {
    for style in STYLES {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = Options::default()
            .compaction_style(style)
            .memtable_bytes(4 << 20)
            .target_file_bytes(2 << 20)
            .base_level_bytes(8 << 20)
            .sync_mode(SyncMode::None);
        let db = Db::open_with(dir.path(), options).expect("open");
        let mut batch = WriteBatch::new();
        for i in 0..200_000 {
            batch.put(key(i), noise(i));
            if batch.len() == 1000 {
                db.write(std::mem::take(&mut batch)).expect("write");
            }
        }
        db.flush().expect("flush");
        let peak = db.stats().table_bytes();
        assert!(peak > 10 << 20, "{style:?}: peak {peak}");
        for i in 0..200_000 {
            batch.delete(key(i));
            if batch.len() == 1000 {
                db.write(std::mem::take(&mut batch)).expect("write");
            }
        }
        db.compact_range::<&[u8], _>(..).expect("compact");
        let stats = db.stats();
        assert!(
            stats.table_bytes() * 100 < peak,
            "{style:?}: {} bytes left of {peak}\n{stats}",
            stats.table_bytes()
        );
        assert_eq!(db.range::<&[u8], _>(..).count(), 0, "{style:?}");
        assert_eq!(db.get(key(12_345)).expect("get"), None);
    }
}

/// A snapshot taken before overwrites and deletes reads the same data after
/// any number of compactions.
#[test]
fn a_snapshot_reads_the_same_after_compactions() {
    for style in STYLES {
        let mem = Arc::new(MemFs::new());
        let db = Db::open_with_fs(mem.clone(), "/db", small(style)).expect("open");
        for i in 0..20_000 {
            db.put(key(i), format!("first-{i}")).expect("put");
        }
        let snapshot = db.snapshot();
        let before = scan_all(&db);
        let mut later = Vec::new();
        for round in 0..4 {
            for i in (0..20_000).step_by(3 + round) {
                if i % 2 == 0 {
                    db.delete(key(i)).expect("delete");
                } else {
                    db.put(key(i), format!("round{round}-{i}")).expect("put");
                }
            }
            later.push(db.snapshot());
            db.compact_range::<&[u8], _>(..).expect("compact");
            let seen: Vec<_> = snapshot
                .range::<&[u8], _>(..)
                .collect::<Result<_, _>>()
                .expect("snapshot scan");
            assert_eq!(seen, before, "{style:?} round {round}");
            for i in (0..20_000).step_by(997) {
                assert_eq!(
                    snapshot.get(key(i)).expect("get"),
                    Some(Bytes::from(format!("first-{i}"))),
                    "{style:?} round {round}"
                );
            }
        }
        // Every later snapshot too, once more after a final compaction.
        let views: Vec<_> = later
            .iter()
            .map(|s| s.range::<&[u8], _>(..).count())
            .collect();
        db.compact_range::<&[u8], _>(..).expect("compact");
        let again: Vec<_> = later
            .iter()
            .map(|s| s.range::<&[u8], _>(..).count())
            .collect();
        assert_eq!(views, again, "{style:?}");
        let stats = db.stats();
        assert!(
            stats.compactions > 0,
            "{style:?}: no compaction ran\n{stats}"
        );
    }
}

/// Background compactions keep the tree in shape under a steady load, and
/// the data matches a model after a reopen.
#[test]
fn background_compactions_keep_up_and_lose_nothing() {
    for style in STYLES {
        let mem = Arc::new(MemFs::new());
        let db = Db::open_with_fs(mem.clone(), "/db", small(style)).expect("open");
        let mut model = BTreeMap::new();
        for i in 0..60_000u32 {
            let k = key((i * 7919) % 30_000);
            if i % 11 == 0 {
                db.delete(&k).expect("delete");
                model.remove(&k);
            } else {
                let v = format!("value-{i}-{}", "x".repeat(40));
                db.put(&k, &v).expect("put");
                model.insert(k, v);
            }
        }
        db.flush().expect("flush");
        db.wait_for_compactions().expect("settle");
        let stats = db.stats();
        assert!(stats.compactions > 0, "{style:?}\n{stats}");
        assert!(
            stats.levels.iter().all(|l| l.score < 1.0),
            "{style:?}: a compaction is still due after settling\n{stats}"
        );
        assert!(
            stats.levels[0].tables < 20,
            "{style:?}: L0 piled up\n{stats}"
        );
        db.close().expect("close");
        let db = Db::open_with_fs(mem, "/db", small(style)).expect("reopen");
        let got: Vec<(String, String)> = scan_all(&db)
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = model.into_iter().collect();
        assert_eq!(got.len(), want.len(), "{style:?}");
        assert!(got == want, "{style:?}: contents differ");
    }
}

/// Builds the same state every time: several L0 tables and deeper levels,
/// with overwrites and deletes, auto compaction off.
fn build(fs: Arc<dyn Fs>, style: CompactionStyle) -> (Db, BTreeMap<String, String>) {
    let options = small(style).auto_compactions(false);
    let db = Db::open_with_fs(fs, "/db", options).expect("open");
    let mut model = BTreeMap::new();
    for round in 0..4u32 {
        for i in 0..3000u32 {
            let k = key((i * 31 + round) % 4000);
            if (i + round) % 9 == 0 {
                db.delete(&k).expect("delete");
                model.remove(&k);
            } else {
                let pad: String = noise(i + round)
                    .iter()
                    .take(60)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let v = format!("r{round}-{i}-{pad}");
                db.put(&k, &v).expect("put");
                model.insert(k, v);
            }
        }
        db.flush().expect("flush");
        if round == 1 {
            db.compact_range::<&[u8], _>(..).expect("first compaction");
        }
    }
    (db, model)
}

fn check(db: &Db, model: &BTreeMap<String, String>, context: &str) {
    let got = scan_all(db);
    assert_eq!(got.len(), model.len(), "{context}");
    for ((k, v), (mk, mv)) in got.iter().zip(model) {
        assert_eq!(
            (&k[..], &v[..]),
            (mk.as_bytes(), mv.as_bytes()),
            "{context}"
        );
    }
}

/// Every `.sst` on disk is a live table and every live table is on disk.
fn no_leaks(mem: &MemFs, db: &Db, context: &str) {
    let on_disk: BTreeSet<u64> = mem
        .file_names()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .filter_map(|p| p.file_stem()?.to_str()?.parse().ok())
        .collect();
    let live: BTreeSet<u64> = db.table_files().iter().map(|t| t.number).collect();
    assert_eq!(on_disk, live, "{context}");
}

/// A crash at each sync point of a compaction in turn: every reopen shows
/// the model's data, with no leaked and no missing file.
#[test]
fn a_crash_at_every_sync_point_of_a_compaction_loses_nothing() {
    for style in STYLES {
        let mut n = 1;
        loop {
            let mem = Arc::new(MemFs::with_seed(n));
            let fs = Arc::new(FaultFs::new(mem.clone()));
            let (db, model) = build(fs.clone(), style);
            // The n-th sync from here on is the crash point: it and every
            // later write fail (the process died), then power is lost.
            fs.add_rule(FaultRule::new(
                FaultOp::Sync,
                FaultTrigger::FromNth(n),
                FaultKind::Eio,
            ));
            fs.add_rule(FaultRule::new(
                FaultOp::SyncDir,
                FaultTrigger::FromNth(n),
                FaultKind::Eio,
            ));
            let result = db.compact_range::<&[u8], _>(..);
            let fired = fs.injected_count() > 0;
            fs.fail_every_change();
            mem.crash();
            drop(db);
            let context = format!("{style:?}, crash at sync #{n}");
            let db = Db::open_with_fs(mem.clone(), "/db", small(style).auto_compactions(false))
                .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
            check(&db, &model, &context);
            no_leaks(&mem, &db, &context);
            db.close().expect("close");
            if !fired {
                result.expect("compaction without faults");
                assert!(
                    n > 3,
                    "{style:?}: the compaction synced only {} times",
                    n - 1
                );
                break;
            }
            n += 1;
        }
    }
}

/// I/O errors in the middle of a compaction: the call reports it, the
/// database stays consistent and writable, nothing is lost, and a later
/// compaction succeeds.
#[test]
fn a_failed_compaction_is_reported_and_loses_nothing() {
    for style in STYLES {
        for (op, nth) in [
            (FaultOp::Create, 1),
            (FaultOp::Write, 1),
            (FaultOp::Sync, 1),
            (FaultOp::Read, 3),
        ] {
            let mem = Arc::new(MemFs::new());
            let fs = Arc::new(FaultFs::new(mem.clone()));
            let (db, model) = build(fs.clone(), style);
            let rule = FaultRule::new(op, FaultTrigger::Nth(nth), FaultKind::Eio);
            let rule = if op == FaultOp::Read {
                rule
            } else {
                rule.on_path_containing(".sst")
            };
            fs.add_rule(rule);
            let context = format!("{style:?}, {op:?} #{nth}");
            match db.compact_range::<&[u8], _>(..) {
                Err(Error::Io { .. }) => {}
                other => panic!("{context}: expected an I/O error, got {other:?}"),
            }
            fs.clear_rules();
            check(&db, &model, &context);
            db.put("after", "failure").expect("still writable");
            db.compact_range::<&[u8], _>(..)
                .expect("a later compaction works");
            check_plus(&db, &model, &context);
            no_leaks(&mem, &db, &context);
            db.close().expect("close");
            let db = Db::open_with_fs(mem.clone(), "/db", small(style)).expect("reopen");
            check_plus(&db, &model, &context);
        }
    }
}

fn check_plus(db: &Db, model: &BTreeMap<String, String>, context: &str) {
    let mut model = model.clone();
    model.insert("after".to_string(), "failure".to_string());
    check(db, &model, context);
}

/// A database left alone settles at the size of its live data: once no
/// write has come for `idle_compaction_delay_ms`, upper levels holding more
/// than `idle_compaction_percent` of the bytes are merged into the last
/// level (old versions dropped); with the percentage at 0 they stay.
#[test]
fn an_idle_database_compacts_its_upper_levels_into_the_last() {
    for percent in [5, 0] {
        let options = small(CompactionStyle::Leveled)
            .idle_compaction_percent(percent)
            .idle_compaction_delay_ms(50);
        let db = Db::open_with_fs(Arc::new(MemFs::new()), "/db", options).unwrap();
        for i in 0..4000 {
            db.put(key(i), noise(i)).unwrap();
        }
        db.compact_range::<&[u8], _>(..).unwrap();
        // 20% overwritten: an L0 table of new versions over the last level.
        for i in (0..4000).step_by(5) {
            db.put(key(i), noise(i + 1)).unwrap();
        }
        db.flush().unwrap();
        db.wait_for_compactions().unwrap();
        let upper = |db: &Db| -> usize {
            let levels = db.stats().levels;
            let last = levels.iter().rposition(|l| l.tables > 0).unwrap();
            levels[..last].iter().map(|l| l.tables).sum()
        };
        assert!(upper(&db) > 0, "the overwrites stay above the last level");
        // Reads that reach tables keep the database from being idle.
        let reading = std::time::Instant::now();
        while reading.elapsed() < std::time::Duration::from_millis(300) {
            for i in (0..4000).step_by(97) {
                assert!(db.get(key(i)).unwrap().is_some());
            }
        }
        assert!(upper(&db) > 0, "no idle compaction under reads");
        let before = db.stats().table_bytes();
        std::thread::sleep(std::time::Duration::from_millis(400));
        db.wait_for_compactions().unwrap();
        if percent == 0 {
            assert!(upper(&db) > 0, "no idle compaction when turned off");
        } else {
            assert_eq!(upper(&db), 0, "idle compaction into the last level");
            assert!(db.stats().table_bytes() < before, "old versions dropped");
        }
        for i in (0..4000).step_by(7) {
            let want = if i % 5 == 0 { noise(i + 1) } else { noise(i) };
            assert_eq!(db.get(key(i)).unwrap().unwrap(), want);
        }
        db.close().unwrap();
    }
}

/// A small database whose tables are all in L0 settles into one level too
/// (its L0 tables may overlap); a tiered one keeps its runs.
#[test]
fn an_idle_l0_only_database_is_merged_into_one_level_unless_tiered() {
    for style in STYLES {
        let options = small(style)
            .l0_compaction_trigger(4)
            .idle_compaction_delay_ms(50);
        let db = Db::open_with_fs(Arc::new(MemFs::new()), "/db", options).unwrap();
        for round in 0..2 {
            for i in 0..300 {
                db.put(key(i), noise(i + round)).unwrap();
            }
            db.flush().unwrap();
        }
        let l0 = |db: &Db| db.stats().levels[0].tables;
        assert_eq!(l0(&db), 2);
        std::thread::sleep(std::time::Duration::from_millis(400));
        db.wait_for_compactions().unwrap();
        if style == CompactionStyle::Leveled {
            assert_eq!(l0(&db), 0, "{}", db.stats());
            assert_eq!(db.stats().table_count(), 1, "{}", db.stats());
        } else {
            assert_eq!(l0(&db), 2, "tiered keeps its runs: {}", db.stats());
        }
        assert_eq!(db.get(key(7)).unwrap().unwrap(), noise(8));
        db.close().unwrap();
    }
}
