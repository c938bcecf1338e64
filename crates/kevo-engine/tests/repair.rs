//! `repair` beyond the damage cases of `tests/damage.rs`: damaged tables
//! keep their readable blocks, deletions stay deleted, nothing is ever
//! deleted or overwritten in `lost/`, a second repair is harmless, an open
//! database is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{Fs, MemFs};
use kevo_engine::{Db, Error, Options, repair_with_fs};

const DIR: &str = "/db";

fn options() -> Options {
    Options::default()
        .memtable_bytes(64 * 1024)
        .target_file_bytes(64 * 1024)
        .base_level_bytes(256 * 1024)
        .l0_compaction_trigger(2)
}

fn open(mem: &MemFs) -> Db {
    Db::open_with_fs(Arc::new(mem.clone()), DIR, options()).expect("open")
}

fn repair(mem: &MemFs) -> kevo_engine::RepairReport {
    repair_with_fs(Arc::new(mem.clone()), DIR, &options()).expect("repair")
}

fn key(i: u32) -> String {
    format!("key{i:06}")
}

fn value(i: u32, round: u32) -> String {
    format!("value-{i}-{round}-{}", "x".repeat(80))
}

fn all(db: &Db) -> Vec<(Bytes, Bytes)> {
    db.range::<&[u8], _>(..)
        .collect::<Result<_, _>>()
        .expect("scan")
}

fn tables(mem: &MemFs) -> Vec<PathBuf> {
    mem.file_names()
        .into_iter()
        .filter(|p| p.parent() == Some(Path::new(DIR)))
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .collect()
}

/// Writes `n` keys in `rounds` rounds (each overwriting), with flushes and
/// compactions along the way, and closes.
fn populated(n: u32, rounds: u32) -> MemFs {
    let mem = MemFs::new();
    let db = open(&mem);
    for round in 0..rounds {
        for i in 0..n {
            db.put(key(i), value(i, round)).expect("put");
        }
        db.flush().expect("flush");
    }
    db.wait_for_compactions().expect("compactions");
    db.close().expect("close");
    mem
}

#[test]
fn repairing_a_healthy_database_keeps_everything_and_twice_is_harmless() {
    let mem = populated(3000, 3);
    let before = all(&open(&mem));
    let first = repair(&mem);
    assert!(first.unreadable.is_empty(), "{first:?}");
    assert_eq!(all(&open(&mem)), before);
    let second = repair(&mem);
    assert!(second.unreadable.is_empty(), "{second:?}");
    let db = open(&mem);
    assert_eq!(all(&db), before);
    // Writes go on afterwards, across a reopen.
    db.put("after", "repair").expect("put");
    db.close().expect("close");
    assert_eq!(
        open(&mem).get("after").expect("get").as_deref(),
        Some(&b"repair"[..])
    );
    // Both repairs moved the CURRENT they replaced; the second did not
    // overwrite the first's.
    let lost: Vec<_> = mem
        .file_names()
        .into_iter()
        .filter(|p| p.starts_with("/db/lost"))
        .collect();
    assert!(
        lost.contains(&PathBuf::from("/db/lost/CURRENT")),
        "{lost:?}"
    );
    assert!(
        lost.contains(&PathBuf::from("/db/lost/CURRENT.1")),
        "{lost:?}"
    );
}

#[test]
fn a_damaged_table_keeps_its_readable_blocks() {
    let mem = populated(3000, 1);
    let before = all(&open(&mem));
    let victim = tables(&mem)
        .into_iter()
        .max_by_key(|p| mem.read_file(p).expect("read").len())
        .expect("a table");
    let len = mem.read_file(&victim).expect("read").len() as u64;
    // A byte in the middle of the data: one block's checksum fails.
    mem.corrupt(&victim, len / 3, 0x10).expect("corrupt");
    let scan: Result<Vec<_>, _> = open(&mem).range::<&[u8], _>(..).collect();
    assert!(
        matches!(scan, Err(Error::Corruption { .. })),
        "the damage is read"
    );

    let report = repair(&mem);
    assert!(
        report
            .unreadable
            .iter()
            .any(|u| u.file == victim && u.offset <= len / 3),
        "{report:?}"
    );
    assert!(report.moved.iter().any(|m| m.from == victim), "{report:?}");
    // The original is in lost/, untouched.
    let lost = Path::new("/db/lost").join(victim.file_name().expect("name"));
    assert_eq!(mem.read_file(&lost).expect("lost copy").len() as u64, len);
    let after = all(&open(&mem));
    // Every entry read is right; only one block's worth is missing.
    assert!(after.iter().all(|kv| before.contains(kv)));
    let missing = before.len() - after.len();
    assert!(
        missing > 0 && missing < 100,
        "{missing} of {} missing",
        before.len()
    );
}

/// Deletions survive a repair: a tombstone in a newer table still hides the
/// older value in a deeper one once both are in L0.
#[test]
fn deletions_stay_deleted() {
    let mem = MemFs::new();
    let db = open(&mem);
    for i in 0..2000 {
        db.put(key(i), value(i, 0)).expect("put");
    }
    db.compact_range::<&[u8], _>(..)
        .expect("compact to the bottom");
    for i in (0..2000).step_by(2) {
        db.delete(key(i)).expect("delete");
    }
    db.flush().expect("flush");
    let before = all(&db);
    assert_eq!(before.len(), 1000);
    db.close().expect("close");
    mem.remove_file(Path::new("/db/CURRENT")).expect("rm");
    repair(&mem);
    assert_eq!(all(&open(&mem)), before);
}

/// Range deletions survive a repair: the table of range tombstones is
/// recorded with them, and a salvaged table keeps its tombstones.
#[test]
fn range_deletions_stay_deleted() {
    let mem = MemFs::new();
    let db = open(&mem);
    for i in 0..2000 {
        db.put(key(i), value(i, 0)).expect("put");
    }
    db.compact_range::<&[u8], _>(..)
        .expect("compact to the bottom");
    db.delete_range(key(500)..key(1500)).expect("delete_range");
    db.put(key(1000), "after").expect("put");
    db.flush().expect("flush");
    let before = all(&db);
    assert_eq!(before.len(), 1001);
    db.close().expect("close");
    mem.remove_file(Path::new("/db/CURRENT")).expect("rm");
    repair(&mem);
    assert_eq!(all(&open(&mem)), before);
}

#[test]
fn an_open_database_is_not_repaired() {
    let mem = populated(100, 1);
    let db = open(&mem);
    match repair_with_fs(Arc::new(mem.clone()), DIR, &options()) {
        Err(Error::Busy { .. }) => {}
        other => panic!("expected Busy, got {other:?}"),
    }
    db.close().expect("close");
}

/// A table whose footer is gone does not open at all: it is moved to
/// `lost/`, the rest is kept.
#[test]
fn a_table_that_does_not_open_goes_to_lost() {
    let mem = populated(3000, 1);
    let victim = tables(&mem)[0].clone();
    let bytes = mem.read_file(&victim).expect("read");
    mem.write_file(&victim, &bytes[..bytes.len() - 10])
        .expect("cut");
    let report = repair(&mem);
    assert!(
        report
            .moved
            .iter()
            .any(|m| m.from == victim && m.reason.contains("unreadable")),
        "{report:?}"
    );
    let db = open(&mem);
    assert!(!all(&db).is_empty());
}

#[test]
fn repair_needs_a_directory() {
    let mem = MemFs::new();
    match repair_with_fs(Arc::new(mem), "/nothing", &options()) {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("/nothing")),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// A repair cut short by a failure at any point, then a power loss, leaves
/// a directory a second repair completes with every key: new tables are
/// synced before anything is moved, and `CURRENT` names the new manifest
/// only at the end.
#[test]
fn an_interrupted_repair_is_completed_by_the_next() {
    use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger};
    let original = populated(1500, 2);
    let expected = all(&open(&original));
    original.remove_file(Path::new("/db/CURRENT")).expect("rm");
    let copy = |mem: &MemFs| {
        let out = MemFs::new();
        for path in mem.file_names() {
            out.create_dir_all(path.parent().expect("parent"))
                .expect("mkdir");
            out.write_file(&path, &mem.read_file(&path).expect("read"))
                .expect("write");
        }
        out
    };
    let mut interrupted = 0;
    for op in [
        FaultOp::Create,
        FaultOp::Write,
        FaultOp::Sync,
        FaultOp::Rename,
        FaultOp::SyncDir,
    ] {
        for nth in 1..=8 {
            let mem = copy(&original);
            let fs = Arc::new(FaultFs::new(Arc::new(mem.clone())));
            fs.add_rule(FaultRule::new(
                op,
                FaultTrigger::FromNth(nth),
                FaultKind::Eio,
            ));
            if repair_with_fs(fs, DIR, &options()).is_err() {
                interrupted += 1;
            }
            mem.crash();
            let _ = Db::open_with_fs(Arc::new(mem.clone()), DIR, options()).map(|db| db.close());
            repair(&mem);
            assert_eq!(all(&open(&mem)), expected, "{op:?} #{nth}");
        }
    }
    assert!(
        interrupted >= 15,
        "only {interrupted} repairs were interrupted"
    );
}
