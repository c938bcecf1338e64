//! `Db::checkpoint`: a directory that opens as its own database holding
//! exactly one prefix of the history (every write acknowledged before the
//! call), made while writers, flushes and compactions run; tables linked,
//! not copied; a crash or failure at any step leaves no target that opens
//! wrong; bad targets refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, Fs, MemFs};
use kevo_engine::{CheckpointOptions, Db, Error, KeyspaceOptions, Options, SyncMode, WriteBatch};

/// Small memtables and tables, so that flushes and compactions run while
/// the checkpoints are made.
fn busy_options() -> Options {
    Options::default()
        .memtable_bytes(64 << 10)
        .target_file_bytes(64 << 10)
        .l0_compaction_trigger(2)
}

fn key(writer: u64, i: u64) -> String {
    format!("w{writer}-{i:08}")
}

/// What the checkpoint holds of `writer`'s history: the number of its
/// writes, which must be a prefix (keys `0..n` in both keyspaces, its
/// `last` key saying `n - 1`), as one batch at a time made them.
fn writes_held(db: &Db, ks: &kevo_engine::Keyspace, writer: u64) -> u64 {
    let prefix = format!("w{writer}-");
    let keys: Vec<_> = db.prefix(&prefix).collect::<Result<_, _>>().unwrap();
    let n = keys.len() as u64;
    for (i, (k, v)) in keys.iter().enumerate() {
        assert_eq!(k.as_ref(), key(writer, i as u64).as_bytes(), "a hole");
        assert_eq!(v.as_ref(), i.to_string().as_bytes());
    }
    let mirrored: Vec<_> = ks.prefix(&prefix).collect::<Result<_, _>>().unwrap();
    assert_eq!(mirrored.len() as u64, n, "a batch torn across keyspaces");
    let last = db.get(format!("last-{writer}")).unwrap();
    let want = n.checked_sub(1).map(|i| i.to_string());
    assert_eq!(last.as_deref(), want.as_deref().map(str::as_bytes));
    n
}

#[test]
fn checkpoints_hold_every_acknowledged_write_while_writers_flushes_and_compactions_run() {
    const WRITERS: u64 = 2;
    const CHECKPOINTS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path().join("db"), busy_options()).unwrap();
    let ks = db.keyspace("mirror", KeyspaceOptions::default()).unwrap();
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (db, ks, acked, stop) = (db.clone(), ks.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    // One batch: the key in both keyspaces and the writer's
                    // last-written marker.
                    let mut batch = WriteBatch::new();
                    let value = i.to_string();
                    batch.put(key(w, i), &value);
                    batch.put_in(&ks, key(w, i), &value);
                    batch.put(format!("last-{w}"), &value);
                    db.write(batch).unwrap();
                    i += 1;
                    acked[w as usize].store(i, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let mut made = Vec::new();
    for c in 0..CHECKPOINTS {
        std::thread::sleep(std::time::Duration::from_millis(60));
        let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        let target = dir.path().join(format!("cp{c}"));
        let options = CheckpointOptions {
            flush_first: c % 3 == 2,
        };
        let info = db.checkpoint_with(&target, &options).unwrap();
        let after: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        assert_eq!(info.dir, target);
        assert_eq!(
            info.tables, info.tables_linked,
            "same file system: all linked"
        );
        made.push((target, before, after, info));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let stats = db.stats();
    assert!(stats.flushes > 0 && stats.compactions > 0, "{stats}");
    db.close().unwrap();

    for (target, before, after, info) in made {
        let copy = Db::open_with(&target, busy_options()).unwrap();
        let ks = copy.keyspace("mirror", KeyspaceOptions::default()).unwrap();
        for w in 0..WRITERS {
            let held = writes_held(&copy, &ks, w);
            let (lo, hi) = (before[w as usize], after[w as usize]);
            assert!(
                lo <= held && held <= hi,
                "{}: writer {w} holds {held} writes, acknowledged {lo} before the call and {hi} after",
                target.display()
            );
        }
        // Exactly the history up to the seqno it reports.
        assert_eq!(copy.stats().last_seqno, info.seqno, "{}", target.display());
        // Its own database: writes to it stay in it.
        copy.put("only-in-the-copy", "x").unwrap();
        copy.close().unwrap();
    }
}

#[test]
fn a_checkpoint_links_its_tables_and_outlives_the_compactions_that_drop_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path().join("db"), busy_options()).unwrap();
    for i in 0..3000u64 {
        db.put(key(0, i), "old").unwrap();
    }
    db.flush().unwrap();
    db.put("after-the-flush", "in the WAL").unwrap();
    let info = db.checkpoint(dir.path().join("cp")).unwrap();
    assert!(
        info.tables > 0 && info.tables_linked == info.tables,
        "{info:?}"
    );
    assert!(info.wal_bytes > 0 && info.wal_segments > 0, "{info:?}");
    assert_eq!(
        info.bytes_copied,
        info.wal_bytes
            + std::fs::metadata(newest_options(&info.dir))
                .map(|m| m.len())
                .unwrap_or(0),
        "only the WAL and the options file are copied: {info:?}"
    );
    // The live database rewrites everything and drops its old tables.
    for i in 0..3000u64 {
        db.put(key(0, i), "new").unwrap();
    }
    db.compact_range::<&[u8], _>(..).unwrap();
    db.close().unwrap();

    let copy = Db::open(&info.dir).unwrap();
    let all: Vec<_> = copy.prefix("w0-").collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len(), 3000);
    assert!(all.iter().all(|(_, v)| v.as_ref() == b"old"));
    assert_eq!(
        copy.get("after-the-flush").unwrap().as_deref(),
        Some(&b"in the WAL"[..])
    );
    copy.close().unwrap();
    let db = Db::open(dir.path().join("db")).unwrap();
    assert_eq!(db.get(key(0, 7)).unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(db.get("only-in-the-copy").unwrap(), None);
}

fn newest_options(dir: &Path) -> std::path::PathBuf {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(kevo_engine::OPTIONS_FILE_PREFIX))
        .collect();
    names.sort();
    dir.join(names.pop().unwrap_or_default())
}

#[test]
fn flush_first_leaves_no_records_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db")).unwrap();
    for i in 0..500u64 {
        db.put(key(1, i), "v").unwrap();
    }
    let options = CheckpointOptions { flush_first: true };
    let info = db.checkpoint_with(dir.path().join("cp"), &options).unwrap();
    assert!(info.tables > 0, "{info:?}");
    // The segment started by the flush holds no record: its header and
    // its `Predecessor` fragment only.
    let empty = (kevo_wal::SEGMENT_HEADER_BYTES + kevo_wal::PREDECESSOR_FRAGMENT_BYTES) as u64;
    assert!(
        info.wal_bytes <= empty * info.wal_segments as u64,
        "{info:?}"
    );
    db.close().unwrap();
    let copy = Db::open(&info.dir).unwrap();
    assert_eq!(copy.prefix("w1-").count(), 500);
}

#[test]
fn bad_targets_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db")).unwrap();
    db.put("k", "v").unwrap();
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    for target in [
        dir.path().join("taken"),
        dir.path().join("db"),
        dir.path().join("no/such/parent"),
        // Inside the database directory, as given or through `..`.
        dir.path().join("db/inside"),
        dir.path().join("taken/../db/inside"),
    ] {
        match db.checkpoint(&target) {
            Err(Error::InvalidArgument(reason)) => assert!(!reason.is_empty()),
            other => panic!("{}: {other:?}", target.display()),
        }
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains("checkpoint-tmp")),
        "{names:?}"
    );
    // Two at once to one target: the second is refused, the first made.
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let (db, target) = (db.clone(), dir.path().join("raced"));
            std::thread::spawn(move || db.checkpoint(target))
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(Error::InvalidArgument(_)))),
        "{results:?}"
    );
    Db::open(dir.path().join("raced")).unwrap().close().unwrap();
    // Read-only and closed databases make none.
    db.close().unwrap();
    assert!(matches!(
        db.checkpoint(dir.path().join("cp")),
        Err(Error::Closed)
    ));
    let ro = Db::open_read_only(dir.path().join("db")).unwrap();
    assert!(matches!(
        ro.checkpoint(dir.path().join("cp")),
        Err(Error::ReadOnly { .. })
    ));
    assert!(!dir.path().join("cp").exists());
}

/// The operations a checkpoint makes in its directory, failed one at a
/// time from the n-th on (the process dies there: nothing after it
/// happens, cleanup included), then a crash: the target is absent or a
/// complete checkpoint, the database intact, and a second checkpoint to the
/// same target succeeds.
#[test]
fn a_crash_at_any_step_of_a_checkpoint_leaves_no_target_that_opens_wrong() {
    let options = || {
        Options::default()
            .memtable_bytes(64 << 10)
            .sync_mode(SyncMode::Always)
            .background_threads(1)
    };
    let mut steps = 0;
    for op in [
        FaultOp::Create,
        FaultOp::Write,
        FaultOp::Sync,
        FaultOp::SyncDir,
        FaultOp::Rename,
    ] {
        for n in 1.. {
            let mem = Arc::new(MemFs::new());
            let fs = Arc::new(FaultFs::new(mem.clone()));
            let db = Db::open_with_fs(fs.clone(), "/db", options()).unwrap();
            let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
            for i in 0..800u64 {
                db.put(key(0, i), i.to_string()).unwrap();
                ks.put(key(0, i), i.to_string()).unwrap();
            }
            db.flush().unwrap();
            for i in 800..900u64 {
                db.put(key(0, i), i.to_string()).unwrap();
            }
            // Dead at the n-th `op` under the checkpoint's names: it and
            // every later one fail, and so does the cleanup (a dead
            // process cleans nothing up).
            fs.add_rule(
                FaultRule::new(op, FaultTrigger::FromNth(n), FaultKind::Eio)
                    .on_path_containing("snap"),
            );
            fs.add_rule(
                FaultRule::new(FaultOp::Remove, FaultTrigger::Always, FaultKind::Eio)
                    .on_path_containing("snap"),
            );
            let failed = db.checkpoint("/snap").is_err();
            // The process dies: every handle goes (a keyspace handle left
            // alive would keep the engine's threads writing after the
            // crash, which no dead process does).
            drop(ks);
            drop(db);
            mem.crash();
            fs.clear_rules();
            if mem.exists(Path::new("/snap")).unwrap() {
                let copy = Db::open_with_fs(mem.clone(), "/snap", options())
                    .expect("a target that exists opens");
                assert_eq!(copy.prefix("w0-").count(), 900, "{op:?} {n}");
                let ks = copy.keyspace("ks", KeyspaceOptions::default()).unwrap();
                assert_eq!(ks.prefix("w0-").count(), 800, "{op:?} {n}");
                copy.close().unwrap();
            }
            let db = Db::open_with_fs(mem.clone(), "/db", options()).unwrap();
            assert_eq!(db.prefix("w0-").count(), 900, "{op:?} {n}");
            if !mem.exists(Path::new("/snap")).unwrap() {
                let info = db.checkpoint("/snap").expect("a second try succeeds");
                assert!(info.tables > 0);
            }
            db.close().unwrap();
            let copy = Db::open_with_fs(mem.clone(), "/snap", options()).unwrap();
            assert_eq!(copy.prefix("w0-").count(), 900, "{op:?} {n}");
            copy.close().unwrap();
            if !failed {
                break;
            }
            steps += 1;
        }
    }
    assert!(steps > 10, "only {steps} failure points");
}
