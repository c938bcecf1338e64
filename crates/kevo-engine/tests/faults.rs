//! Injected I/O failures at each step of a flush, of a manifest update and
//! of the write path: the database reports the error, keeps serving reads,
//! refuses writes with `ReadOnly`, and after a reopen has lost nothing it
//! acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, MemFs};
use kevo_engine::{Db, Error, Options, SyncMode};

const KEYS: u32 = 300;

fn options() -> Options {
    Options::default()
        .memtable_bytes(1 << 20)
        .sync_mode(SyncMode::Always)
        .background_threads(1)
}

fn key(i: u32) -> String {
    format!("key{i:05}")
}

fn value(i: u32, round: u32) -> String {
    format!("value-{i}-{round}-{}", "x".repeat(50))
}

fn write_all(db: &Db, round: u32) {
    for i in 0..KEYS {
        db.put(key(i), value(i, round)).expect("put");
    }
}

fn check_all(db: &Db, round: u32) {
    for i in (0..KEYS).step_by(7) {
        let got = db.get(key(i)).expect("get");
        assert_eq!(got, Some(Bytes::from(value(i, round))), "key {i}");
    }
    // Only the `keyNNNNN` keys: a write that failed may or may not be
    // there (its outcome is unknown to the caller), but nothing else.
    let all: Vec<_> = db.prefix("key").collect::<Result<_, _>>().expect("scan");
    assert_eq!(all.len(), KEYS as usize);
    assert!(all.iter().all(|(k, v)| {
        let i: u32 = std::str::from_utf8(&k[3..]).unwrap().parse().unwrap();
        v.as_ref() == value(i, round).as_bytes()
    }));
}

/// Writes round 1 and flushes it, writes round 2, then flushes with `rule`
/// armed: the flush must fail and the database turn read-only.
fn flush_fails(rule: FaultRule) {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let db = Db::open_with_fs(fs.clone(), "/db", options()).expect("open");
    write_all(&db, 1);
    db.flush().expect("first flush");
    write_all(&db, 2);

    fs.add_rule(rule.clone());
    let err = db.flush().expect_err("the flush must fail");
    assert!(matches!(err, Error::ReadOnly { .. }), "{rule:?}: {err}");
    assert!(fs.injected_count() > 0, "{rule:?} never fired");
    // Writes are refused with the cause...
    match db.put("late", "write") {
        Err(Error::ReadOnly { cause }) => assert!(!cause.to_string().is_empty()),
        other => panic!("{rule:?}: expected ReadOnly, got {other:?}"),
    }
    // ...reads go on, and see everything acknowledged.
    check_all(&db, 2);
    let stats = db.stats();
    assert!(stats.read_only_cause.is_some(), "{stats}");
    let _ = db.close();
    drop(db);

    // Reopen on the same files, failures gone: nothing acknowledged lost.
    fs.clear_rules();
    let db = Db::open_with_fs(fs.clone(), "/db", options()).expect("reopen");
    check_all(&db, 2);
    assert_eq!(db.get("late").expect("get"), None);
    // And it works again: flush, write, reopen.
    db.flush().expect("flush after reopen");
    write_all(&db, 3);
    db.close().expect("close");
    let db = Db::open_with_fs(fs, "/db", options()).expect("reopen");
    check_all(&db, 3);
    db.close().expect("close");

    // After a crash too.
    mem.crash();
    let db = Db::open_with_fs(mem, "/db", options()).expect("reopen after crash");
    check_all(&db, 3);
}

fn rule(op: FaultOp, path: &str) -> FaultRule {
    FaultRule::new(op, FaultTrigger::Nth(1), FaultKind::Eio).on_path_containing(path)
}

#[test]
fn creating_the_table_fails() {
    flush_fails(rule(FaultOp::Create, ".sst"));
}

#[test]
fn writing_the_table_fails() {
    flush_fails(rule(FaultOp::Write, ".sst"));
}

#[test]
fn writing_the_table_runs_out_of_space() {
    flush_fails(
        FaultRule::new(FaultOp::Write, FaultTrigger::Nth(1), FaultKind::Enospc)
            .on_path_containing(".sst"),
    );
}

/// A short write is not an error: the rest is written by the next call.
#[test]
fn a_short_write_to_the_table_is_completed() {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let db = Db::open_with_fs(fs.clone(), "/db", options()).expect("open");
    write_all(&db, 1);
    fs.add_rule(
        FaultRule::new(FaultOp::Write, FaultTrigger::Nth(1), FaultKind::ShortWrite)
            .on_path_containing(".sst"),
    );
    db.flush().expect("flush");
    assert!(fs.injected_count() > 0);
    assert_eq!(db.stats().levels[0].tables, 1);
    db.close().expect("close");
    mem.crash();
    let db = Db::open_with_fs(mem, "/db", options()).expect("reopen");
    check_all(&db, 1);
}

#[test]
fn syncing_the_table_fails() {
    flush_fails(rule(FaultOp::Sync, ".sst"));
}

#[test]
fn syncing_the_directory_after_the_table_fails() {
    // Every directory sync from here on fails. The rotation takes the spare
    // segment the WAL prepared at open and syncs no directory; the flush
    // syncs it after writing the table. (The WAL's background creation of
    // the next spare may fail too: that costs only the spare.)
    flush_fails(FaultRule::new(
        FaultOp::SyncDir,
        FaultTrigger::FromNth(1),
        FaultKind::Eio,
    ));
}

#[test]
fn appending_the_edit_to_the_manifest_fails() {
    flush_fails(rule(FaultOp::Write, "MANIFEST"));
}

#[test]
fn syncing_the_manifest_fails() {
    flush_fails(rule(FaultOp::Sync, "MANIFEST"));
}

/// Retiring WAL segments after a flush loses nothing if it fails: the
/// database stays writable and the next open deletes the leftovers.
#[test]
fn retiring_wal_segments_fails_harmlessly() {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let options = options().wal_segment_bytes(64 * 1024);
    let db = Db::open_with_fs(fs.clone(), "/db", options.clone()).expect("open");
    write_all(&db, 1);
    fs.add_rule(
        FaultRule::new(FaultOp::Rename, FaultTrigger::Always, FaultKind::Eio)
            .on_path_containing(".wal"),
    );
    fs.add_rule(
        FaultRule::new(FaultOp::Remove, FaultTrigger::Always, FaultKind::Eio)
            .on_path_containing(".wal"),
    );
    db.flush().expect("the flush itself succeeds");
    write_all(&db, 2);
    check_all(&db, 2);
    db.close().expect("close");
    fs.clear_rules();
    let db = Db::open_with_fs(fs, "/db", options).expect("reopen");
    check_all(&db, 2);
}

/// `op` on the WAL fails once: that write fails (and is not applied), the
/// database turns read-only, and nothing acknowledged before is lost, also
/// after a crash. A write whose fsync failed may have reached the file, so
/// it may come back after the crash: its outcome was never acknowledged.
fn a_failed_wal_operation_makes_the_database_read_only(op: FaultOp) {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let db = Db::open_with_fs(fs.clone(), "/db", options()).expect("open");
    write_all(&db, 1);
    fs.add_rule(rule(op, ".wal"));
    assert!(db.put("failed", "write").is_err());
    assert!(matches!(
        db.put("next", "write"),
        Err(Error::ReadOnly { .. })
    ));
    check_all(&db, 1);
    assert_eq!(
        db.get("failed").expect("get"),
        None,
        "a failed write is not applied"
    );
    drop(db);
    mem.crash();
    let db = Db::open_with_fs(mem, "/db", options()).expect("reopen");
    check_all(&db, 1);
    assert_eq!(db.get("next").expect("get"), None);
}

#[test]
fn a_failed_wal_write_makes_the_database_read_only() {
    a_failed_wal_operation_makes_the_database_read_only(FaultOp::Write);
}

/// A failed fsync of the WAL is never retried.
#[test]
fn a_failed_wal_sync_makes_the_database_read_only() {
    a_failed_wal_operation_makes_the_database_read_only(FaultOp::Sync);
}

/// Each file operation of the open (the fresh manifest, the `CURRENT`
/// switch, `OPTIONS-N`, the WAL's new segment) failing in turn: the open
/// reports it, and a later open works and shows everything.
#[test]
fn every_failure_during_open_is_reported_and_recoverable() {
    let mem = Arc::new(MemFs::new());
    {
        let db = Db::open_with_fs(mem.clone(), "/db", options()).expect("open");
        write_all(&db, 1);
        db.flush().expect("flush");
        for i in 0..50 {
            db.put(key(i), value(i, 1)).expect("put");
        }
        db.close().expect("close");
    }
    let ops = [
        FaultOp::Create,
        FaultOp::Write,
        FaultOp::Sync,
        FaultOp::Rename,
        FaultOp::SyncDir,
        FaultOp::Remove,
    ];
    let mut fired = 0;
    for op in ops {
        for nth in 1..=4 {
            let fs = Arc::new(FaultFs::new(mem.clone()));
            fs.add_rule(FaultRule::new(op, FaultTrigger::Nth(nth), FaultKind::Eio));
            match Db::open_with_fs(fs.clone(), "/db", options()) {
                Ok(db) => {
                    // The fault hit nothing the open needed; it may still
                    // have made the database read-only.
                    drop(db);
                }
                Err(e) => {
                    fired += 1;
                    assert!(
                        matches!(e, Error::Io { .. }),
                        "{op:?} #{nth}: expected Io, got {e}"
                    );
                }
            }
            let db = Db::open_with_fs(mem.clone(), "/db", options()).expect("clean reopen");
            check_all(&db, 1);
            db.close().expect("close");
        }
    }
    assert!(fired >= 10, "only {fired} faults made the open fail");
}

/// After a background failure, `close` still syncs the WAL: writes
/// acknowledged under `SyncMode::None` survive a crash after the close.
#[test]
fn close_after_a_background_failure_still_syncs_the_wal() {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let options = options().sync_mode(SyncMode::None);
    let db = Db::open_with_fs(fs.clone(), "/db", options.clone()).expect("open");
    write_all(&db, 1);
    fs.add_rule(rule(FaultOp::Create, ".sst"));
    assert!(matches!(db.flush(), Err(Error::ReadOnly { .. })));
    db.close().expect("close syncs the WAL");
    mem.crash_keep_nothing_unsynced();
    let db = Db::open_with_fs(mem, "/db", options).expect("reopen");
    check_all(&db, 1);
}

/// `sync_wal` makes unsynced writes durable: under `SyncMode::None`, what
/// was written before it survives a crash that keeps nothing unsynced, and
/// what came after it does not (a prefix); a failed sync turns the
/// database read-only rather than report a durability it lacks, and close
/// reports it too.
#[test]
fn sync_wal_makes_earlier_unsynced_writes_durable() {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let options = options().sync_mode(SyncMode::None);
    let db = Db::open_with_fs(fs.clone(), "/db", options.clone()).expect("open");
    write_all(&db, 1);
    db.sync_wal().expect("sync_wal");
    db.put("after", "the sync").expect("put");
    mem.crash_keep_nothing_unsynced();
    drop(db);
    let db = Db::open_with_fs(fs.clone(), "/db", options.clone()).expect("reopen");
    check_all(&db, 1);
    assert_eq!(db.get("after").expect("get"), None, "never synced");

    db.put("doomed", "x").expect("put");
    fs.add_rule(rule(FaultOp::Sync, ".wal"));
    assert!(matches!(db.sync_wal(), Err(Error::ReadOnly { .. })));
    assert!(matches!(db.put("k", "v"), Err(Error::ReadOnly { .. })));
    // "doomed" was acknowledged and never synced: close says so (it used
    // to return `Ok` once a background error was set).
    let closed = db.close();
    assert!(
        matches!(closed, Err(Error::Io { .. })),
        "close after a failed WAL sync: {closed:?}"
    );
    assert!(matches!(db.sync_wal(), Err(Error::Closed)));
}

/// Waits up to 10 s for `f` to hold.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !f() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{what}: still not true after 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn enospc(op: FaultOp, path: &str) -> FaultRule {
    FaultRule::new(op, FaultTrigger::Always, FaultKind::Enospc).on_path_containing(path)
}

/// The disk fills up during a flush: the database turns read-only, then,
/// once there is room again, takes writes again by itself, without a
/// reopen, with every acknowledged write intact (also after a crash).
#[test]
fn a_full_disk_during_a_flush_resumes_by_itself() {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let db = Db::open_with_fs(fs.clone(), "/db", options()).expect("open");
    write_all(&db, 1);
    fs.add_rule(enospc(FaultOp::Write, ".sst"));
    assert!(matches!(db.flush(), Err(Error::ReadOnly { .. })));
    assert!(matches!(
        db.put("late", "write"),
        Err(Error::ReadOnly { .. })
    ));
    check_all(&db, 1);
    // Still full: the automatic attempts keep failing, nothing changes.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(db.stats().read_only_cause.is_some());
    fs.clear_rules();
    eventually("writes are taken again", || db.put("late", "write").is_ok());
    assert!(db.stats().resumes >= 1);
    db.flush().expect("flush after resume");
    write_all(&db, 2);
    check_all(&db, 2);
    drop(db);
    mem.crash();
    let db = Db::open_with_fs(mem, "/db", options()).expect("reopen after crash");
    check_all(&db, 2);
    assert_eq!(db.get("late").expect("get").as_deref(), Some(&b"write"[..]));
}

/// The disk fills up while the WAL gathers appends (`SyncMode::None`, a
/// 64 KiB buffer): the write that hit it fails, the database turns
/// read-only, and resumes by itself once there is room: the gathered,
/// acknowledged writes reach the file after all.
#[test]
fn a_full_disk_during_a_wal_write_resumes_by_itself() {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let options = options().sync_mode(SyncMode::None);
    let db = Db::open_with_fs(fs.clone(), "/db", options.clone()).expect("open");
    write_all(&db, 1);
    fs.add_rule(enospc(FaultOp::Write, ".wal"));
    let wal_key = |i: u32| format!("wal{i:05}");
    let mut acknowledged = 0;
    let failed = loop {
        match db.put(wal_key(acknowledged), value(acknowledged, 3)) {
            Ok(()) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 10_000, "the WAL never wrote its buffer");
    };
    assert!(matches!(failed, Error::ReadOnly { .. }), "{failed}");
    assert!(
        acknowledged > 100,
        "only {acknowledged} writes were gathered"
    );
    fs.clear_rules();
    eventually("writes are taken again", || {
        db.put("after", "resume").is_ok()
    });
    db.close().expect("close");
    mem.crash_keep_nothing_unsynced();
    let db = Db::open_with_fs(mem, "/db", options).expect("reopen");
    check_all(&db, 1);
    for i in 0..acknowledged {
        assert_eq!(
            db.get(wal_key(i)).expect("get").as_deref(),
            Some(value(i, 3).as_bytes()),
            "acknowledged write {i} of {acknowledged}"
        );
    }
    assert_eq!(
        db.get(wal_key(acknowledged)).expect("get"),
        None,
        "the failed write"
    );
    assert_eq!(
        db.get("after").expect("get").as_deref(),
        Some(&b"resume"[..])
    );
}

/// A failed manifest sync (EIO, not a full disk) is not resumed by itself;
/// `resume` starts a fresh manifest and the database goes on, losing
/// nothing, also across a crash.
#[test]
fn resume_after_a_failed_manifest_sync() {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let db = Db::open_with_fs(fs.clone(), "/db", options()).expect("open");
    write_all(&db, 1);
    fs.add_rule(rule(FaultOp::Sync, "MANIFEST"));
    assert!(matches!(db.flush(), Err(Error::ReadOnly { .. })));
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        db.stats().read_only_cause.is_some(),
        "EIO is not resumed by itself"
    );
    db.resume().expect("resume");
    assert!(db.stats().read_only_cause.is_none());
    write_all(&db, 2);
    db.flush().expect("flush");
    check_all(&db, 2);
    drop(db);
    mem.crash();
    let db = Db::open_with_fs(mem, "/db", options()).expect("reopen after crash");
    check_all(&db, 2);
}

/// A failed WAL fsync is never retried: `resume` refuses and says to
/// reopen; the reopen finds every acknowledged write.
#[test]
fn a_failed_wal_fsync_is_not_resumed() {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let db = Db::open_with_fs(fs.clone(), "/db", options()).expect("open");
    write_all(&db, 1);
    fs.add_rule(rule(FaultOp::Sync, ".wal"));
    assert!(db.put("failed", "write").is_err());
    fs.clear_rules();
    let syncs = fs.op_count(FaultOp::Sync);
    match db.resume() {
        Err(e) => assert!(e.to_string().contains("reopen"), "{e}"),
        Ok(()) => panic!("resumed after a failed fsync"),
    }
    assert!(matches!(
        db.put("next", "write"),
        Err(Error::ReadOnly { .. })
    ));
    assert_eq!(fs.op_count(FaultOp::Sync), syncs, "an fsync was retried");
    drop(db);
    let db = Db::open_with_fs(fs, "/db", options()).expect("reopen");
    check_all(&db, 1);
}

/// Resuming a healthy database does nothing.
#[test]
fn resume_on_a_healthy_database_is_a_no_op() {
    let mem = Arc::new(MemFs::new());
    let db = Db::open_with_fs(mem, "/db", options()).expect("open");
    write_all(&db, 1);
    db.resume().expect("resume");
    assert_eq!(db.stats().resumes, 0);
    db.close().expect("close");
    assert!(matches!(db.resume(), Err(Error::Closed)));
}

/// A compaction whose manifest write fails (reserving its output's number,
/// or recording its edit) makes the database read-only; once resumed, the
/// compaction runs again and nothing is lost.
#[test]
fn a_compaction_whose_manifest_write_fails_is_resumed() {
    let mem = Arc::new(MemFs::new());
    let fs = Arc::new(FaultFs::new(mem.clone()));
    let options = options().auto_compactions(false);
    let db = Db::open_with_fs(fs.clone(), "/db", options.clone()).expect("open");
    for round in 1..=3 {
        write_all(&db, round);
        db.flush().expect("flush");
    }
    fs.add_rule(
        FaultRule::new(FaultOp::Sync, FaultTrigger::Always, FaultKind::Eio)
            .on_path_containing("MANIFEST"),
    );
    assert!(matches!(
        db.compact_range::<&[u8], _>(..),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        db.put("late", "write"),
        Err(Error::ReadOnly { .. })
    ));
    check_all(&db, 3);
    fs.clear_rules();
    db.resume().expect("resume");
    db.compact_range::<&[u8], _>(..)
        .expect("compact after resume");
    assert_eq!(db.stats().table_count(), 1, "{}", db.stats());
    check_all(&db, 3);
    drop(db);
    mem.crash();
    let db = Db::open_with_fs(mem, "/db", options).expect("reopen after crash");
    check_all(&db, 3);
}

/// Closing while a full disk is being retried in the background returns
/// promptly: the retry never waits for the writer mutex that `close` holds
/// while it joins the background threads.
#[test]
fn close_while_a_full_disk_is_retried() {
    for round in 0..20u64 {
        let mem = Arc::new(MemFs::new());
        let fs = Arc::new(FaultFs::new(mem.clone()));
        let db = Db::open_with_fs(fs.clone(), "/db", options()).expect("open");
        write_all(&db, 1);
        fs.add_rule(enospc(FaultOp::Write, ".sst"));
        assert!(db.flush().is_err());
        // Land the close at different points of the retry cycle.
        std::thread::sleep(std::time::Duration::from_millis(round * 3));
        let (done, closed) = std::sync::mpsc::channel();
        let closer = db.clone();
        std::thread::spawn(move || {
            let _ = closer.close();
            let _ = done.send(());
        });
        closed
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("close returned within 10 s");
    }
}
