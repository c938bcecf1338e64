//! `Db::open_read_only`: it changes nothing on disk (every file byte for
//! byte, no file created), it reads exactly what was written (tables and
//! the WAL alike), read-only opens share the database and keep a writer
//! out (and a writer keeps them out), and every write is refused with an
//! error that says the database was opened read-only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{FaultFs, FaultOp, Fs, MemFs, xxh3_64};
use kevo_engine::{BusyReason, Db, Error, Options, SyncMode, WriteBatch, WriteOptions};

/// Every entry under `dir`, recursively: a file's size and checksum, or
/// `None` for a directory.
fn image(dir: &Path) -> BTreeMap<PathBuf, Option<(u64, u64)>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(image(&path));
            out.insert(path, None);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.insert(path, Some((bytes.len() as u64, xxh3_64(&bytes))));
        }
    }
    out
}

/// The files of the `.wal` segments under `dir`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    out.sort();
    out
}

fn key(i: u32) -> String {
    format!("key{i:05}")
}

fn value(i: u32, round: u32) -> String {
    format!("value-{i}-{round}-{}", "x".repeat(60))
}

/// What the database must hold, key by key.
type Model = BTreeMap<Bytes, Bytes>;

/// Large memtables and small segments: nothing is flushed unless asked,
/// and the WAL spans several segments. No recycled segment files: a
/// segment's file ends where its records do.
fn options() -> Options {
    Options::default()
        .memtable_bytes(64 << 20)
        .wal_segment_bytes(64 * 1024)
        .wal_recycle_segments(0)
        .sync_mode(SyncMode::Always)
}

/// Writes keys 0..1500 and flushes them to a table, then overwrites a
/// third of them, deletes a few and writes 1500..2500, which stay in the
/// WAL only. Returns the model and the keys only the WAL holds.
fn fill(db: &Db) -> (Model, Vec<u32>) {
    let mut model = Model::new();
    let mut put = |db: &Db, i: u32, round: u32| {
        db.put(key(i), value(i, round)).expect("put");
        model.insert(key(i).into(), value(i, round).into());
    };
    for i in 0..1500 {
        put(db, i, 0);
    }
    db.flush().expect("flush");
    assert!(!db.table_files().is_empty(), "the flush wrote no table");
    for i in (0..1500).step_by(3) {
        put(db, i, 1);
    }
    for i in 1500..2500 {
        put(db, i, 0);
    }
    let mut batch = WriteBatch::new();
    for i in (1..1500).step_by(50) {
        batch.delete(key(i));
        model.remove(key(i).as_bytes());
    }
    db.write_with(batch, &WriteOptions { sync: true })
        .expect("delete");
    let wal_only: Vec<u32> = (1500..2500).collect();
    (model, wal_only)
}

fn collect(iter: impl Iterator<Item = kevo_engine::Result<(Bytes, Bytes)>>) -> Vec<(Bytes, Bytes)> {
    iter.collect::<kevo_engine::Result<_>>().expect("iterate")
}

/// `db` holds exactly `model`: every key by `get`, the whole range and a
/// prefix in both directions, through the handle, a snapshot and a
/// read-only transaction.
fn assert_reads(db: &Db, model: &Model) {
    let all: Vec<(Bytes, Bytes)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let reversed: Vec<(Bytes, Bytes)> = all.iter().rev().cloned().collect();
    assert_eq!(collect(db.range::<&[u8], _>(..)), all);
    assert_eq!(collect(db.range::<&[u8], _>(..).rev()), reversed);
    let prefixed: Vec<(Bytes, Bytes)> = all
        .iter()
        .filter(|(k, _)| k.starts_with(b"key015"))
        .cloned()
        .collect();
    assert!(!prefixed.is_empty());
    assert_eq!(collect(db.prefix("key015")), prefixed);
    let mut back = collect(db.prefix("key015").rev());
    back.reverse();
    assert_eq!(back, prefixed);
    let from = key(1400);
    let to = key(1600);
    let middle: Vec<(Bytes, Bytes)> = all
        .iter()
        .filter(|(k, _)| k.as_ref() >= from.as_bytes() && k.as_ref() < to.as_bytes())
        .cloned()
        .collect();
    assert_eq!(collect(db.range(from.as_str()..to.as_str())), middle);
    let mut back = collect(db.range(from.as_str()..to.as_str()).rev());
    back.reverse();
    assert_eq!(back, middle);
    for i in 0..2600 {
        let want = model.get(key(i).as_bytes());
        assert_eq!(db.get(key(i)).expect("get").as_ref(), want, "{}", key(i));
    }
    let snapshot = db.snapshot();
    assert_eq!(collect(snapshot.range::<&[u8], _>(..).rev()), reversed);
    assert_eq!(
        snapshot.get(key(1700)).expect("get").as_ref(),
        model.get(key(1700).as_bytes())
    );
    let read = db.begin_read();
    assert_eq!(collect(read.prefix("key")), all);
    let mut tx = db.begin();
    assert_eq!(
        tx.get(key(2000)).expect("get").as_ref(),
        model.get(key(2000).as_bytes())
    );
    // A transaction that only read commits: it writes nothing.
    tx.commit().expect("a read-only commit");
}

/// A database with keys in tables and keys in the WAL only, closed
/// cleanly, in a fresh temporary directory.
fn closed_database() -> (tempfile::TempDir, Model, Vec<u32>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open_with(dir.path(), options()).expect("open");
    let (model, wal_only) = fill(&db);
    db.close().expect("close");
    (dir, model, wal_only)
}

/// The same database as a power loss leaves it: its files copied while
/// the writer still has it open (every write synced), so the newest WAL
/// segment is not sealed.
fn crashed_database() -> (tempfile::TempDir, Model, Vec<u32>) {
    let live = tempfile::tempdir().expect("temp dir");
    let db = Db::open_with(live.path(), options()).expect("open");
    let (model, wal_only) = fill(&db);
    let copy = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(live.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    db.close().expect("close");
    (copy, model, wal_only)
}

/// (a) and (b): on a real directory, with data in tables and in the WAL
/// only (closed cleanly, and as a crash leaves it), a read-only open,
/// every kind of read and a close leave every file byte for byte as it
/// was, and the reads return exactly what was written.
#[test]
fn a_read_only_open_changes_no_byte_of_a_real_database() {
    for (what, (dir, model, wal_only)) in [
        ("closed", closed_database()),
        ("crashed", crashed_database()),
    ] {
        assert!(segments(dir.path()).len() > 1, "{what}: one WAL segment");
        let before = image(dir.path());
        let ro = Db::open_read_only(dir.path()).expect("open read-only");
        // The WAL-only keys are in the memtable, not in a table.
        let stats = ro.stats();
        assert!(stats.memtable_bytes > 0, "{what}: nothing replayed");
        let in_tables: u64 = ro.table_files().iter().map(|t| t.entries).sum();
        assert_eq!(in_tables, 1500, "{what}: the tables hold the first flush");
        for &i in &wal_only {
            assert!(ro.get(key(i)).expect("get").is_some(), "{what}: {}", key(i));
        }
        assert_reads(&ro, &model);
        assert!(!ro.stats().to_string().is_empty());
        ro.close().expect("close");
        assert_eq!(
            image(dir.path()),
            before,
            "{what}: a read-only open changed the directory"
        );
        // Dropping the handle instead of closing it changes nothing either.
        let ro = Db::open_read_only(dir.path()).expect("open read-only");
        assert_reads(&ro, &model);
        drop(ro);
        assert_eq!(image(dir.path()), before, "{what}: the drop changed it");
        // And a writer still opens it afterwards, with the same contents.
        let db = Db::open_with(dir.path(), options()).expect("open for writing");
        assert_reads(&db, &model);
        db.close().expect("close");
    }
}

/// Through a `FaultFs` that fails every change: a read-only open, reads
/// and a close attempt no write, sync, creation, rename, removal or
/// truncation at all.
#[test]
fn a_read_only_open_attempts_no_change() {
    let mem = MemFs::new();
    let db = Db::open_with_fs(Arc::new(mem.clone()), "/db", options()).expect("open");
    let (model, _) = fill(&db);
    db.close().expect("close");
    let names = mem.file_names();
    let fault = FaultFs::new(Arc::new(mem.clone()));
    fault.fail_every_change();
    let ro = Db::open_read_only_with_fs(Arc::new(fault.clone()), "/db", options())
        .expect("open read-only");
    assert_reads(&ro, &model);
    ro.close().expect("close");
    for op in [
        FaultOp::Write,
        FaultOp::Sync,
        FaultOp::Create,
        FaultOp::Rename,
        FaultOp::Remove,
        FaultOp::SyncDir,
        FaultOp::SetLen,
    ] {
        assert_eq!(fault.op_count(op), 0, "{op:?} attempted");
    }
    assert!(fault.op_count(FaultOp::Read) > 0);
    assert_eq!(mem.file_names(), names);
}

/// (c) Read-only opens coexist; a writer is refused while any is open,
/// with a message that says why; a read-only open is refused while a
/// writer has the database, with a message that says why.
#[test]
fn read_only_opens_share_the_database_and_exclude_a_writer() {
    let (dir, model, _) = closed_database();
    let first = Db::open_read_only(dir.path()).expect("first read-only open");
    let second = Db::open_read_only(dir.path()).expect("second read-only open");
    assert_reads(&first, &model);
    assert_reads(&second, &model);
    let busy = |reason: &str| {
        format!(
            "database {} is open {reason} by another handle or process",
            dir.path().display()
        )
    };
    let writer_refused = || {
        let err = Db::open(dir.path()).expect_err("a writer beside read-only opens");
        assert!(
            matches!(&err, Error::Busy { path, reason: BusyReason::OpenReadOnly } if path == dir.path()),
            "{err:?}"
        );
        assert_eq!(err.to_string(), busy("read-only"));
    };
    writer_refused();
    // One read-only handle is enough to keep the writer out.
    first.close().expect("close");
    writer_refused();
    drop(second);
    let writer = Db::open_with(dir.path(), options()).expect("open once they closed");
    for _ in 0..2 {
        let err = Db::open_read_only(dir.path()).expect_err("a read-only open beside a writer");
        assert!(
            matches!(&err, Error::Busy { path, reason: BusyReason::OpenForWriting } if path == dir.path()),
            "{err:?}"
        );
        assert_eq!(err.to_string(), busy("for writing"));
    }
    // A second writer is told the same.
    match Db::open(dir.path()) {
        Err(Error::Busy { reason, .. }) => assert_eq!(reason, BusyReason::OpenForWriting),
        other => panic!("expected Busy, got {other:?}"),
    }
    writer.close().expect("close");
    let ro = Db::open_read_only(dir.path()).expect("open read-only after the writer");
    assert_reads(&ro, &model);
}

/// `err` is `ReadOnly` whose cause says the database was opened read-only.
fn assert_opened_read_only(err: Error, dir: &Path, what: &str) {
    match &err {
        Error::ReadOnly { cause } => match cause.as_ref() {
            Error::OpenedReadOnly { path } => assert_eq!(path, dir, "{what}"),
            other => panic!("{what}: the cause is {other:?}"),
        },
        other => panic!("{what}: expected ReadOnly, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("opened read-only"), "{what}: {text}");
    assert!(!text.contains("background"), "{what}: {text}");
}

/// (d) Every write, flush, compaction and resume of a read-only handle is
/// refused with `ReadOnly` caused by `OpenedReadOnly`, and changes nothing:
/// not the files, not what reads see.
#[test]
fn writes_flush_and_compact_on_a_read_only_db_fail_and_change_nothing() {
    let (dir, model, _) = closed_database();
    let before = image(dir.path());
    let ro = Db::open_read_only(dir.path()).expect("open read-only");
    let path = dir.path();
    assert_opened_read_only(ro.put("new", "value").unwrap_err(), path, "put");
    assert_opened_read_only(ro.put(key(0), "other").unwrap_err(), path, "overwrite");
    assert_opened_read_only(ro.delete(key(3)).unwrap_err(), path, "delete");
    let mut batch = WriteBatch::new();
    batch.put("a", "b");
    batch.delete(key(6));
    assert_opened_read_only(ro.write(batch.clone()).unwrap_err(), path, "write");
    let synced = WriteOptions { sync: true };
    assert_opened_read_only(
        ro.write_with(batch, &synced).unwrap_err(),
        path,
        "write_with",
    );
    let mut tx = ro.begin();
    tx.put("tx", "value").expect("buffered");
    assert_opened_read_only(tx.commit().unwrap_err(), path, "transaction commit");
    let run = ro.transaction(|tx| tx.put("tx", "value"));
    assert_opened_read_only(run.unwrap_err(), path, "Db::transaction");
    assert_opened_read_only(ro.flush().unwrap_err(), path, "flush");
    let compacted = ro.compact_range::<&[u8], _>(..);
    assert_opened_read_only(compacted.unwrap_err(), path, "compact_range");
    let compacted = ro.compact_range("key00000".."key00100");
    assert_opened_read_only(compacted.unwrap_err(), path, "compact_range of a range");
    assert_opened_read_only(ro.resume().unwrap_err(), path, "resume");
    let waited = ro.wait_for_compactions();
    assert_opened_read_only(waited.unwrap_err(), path, "wait_for_compactions");
    // Still refused after a resume was tried.
    assert_opened_read_only(ro.put("new", "value").unwrap_err(), path, "put again");

    let cause = ro.stats().read_only_cause.expect("a read-only cause");
    assert!(cause.contains("opened read-only"), "{cause}");
    assert!(ro.stats().to_string().contains("opened read-only"));
    assert_eq!(ro.stats().flushes, 0);
    assert_eq!(ro.stats().writes, 0);
    assert_reads(&ro, &model);
    ro.close().expect("close");
    assert!(matches!(ro.put("new", "value"), Err(Error::Closed)));
    assert!(matches!(ro.get(key(0)), Err(Error::Closed)));
    assert_eq!(
        image(dir.path()),
        before,
        "a refused write changed the files"
    );
}

/// (e) A path that holds no database is refused, and nothing is created:
/// not the directory, not `LOCK`. A directory whose `CURRENT` was lost is
/// damage, refused as `Db::open` refuses it.
#[test]
fn a_path_that_is_not_a_database_is_refused_and_nothing_is_created() {
    let root = tempfile::tempdir().expect("temp dir");
    let missing = root.path().join("missing");
    for options in [
        Options::default(),
        Options::default().create_if_missing(true),
    ] {
        match Db::open_read_only_with(&missing, options) {
            Err(Error::InvalidArgument(message)) => {
                assert!(message.contains("no database"), "{message}")
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        assert!(
            !missing.exists(),
            "the read-only open created the directory"
        );
    }
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "not kevo's").unwrap();
    let before = image(&empty);
    assert!(matches!(
        Db::open_read_only(&empty),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(image(&empty), before, "the read-only open created a file");

    // CURRENT lost, tables and WAL left: damage, named, and untouched.
    let (dir, _, _) = closed_database();
    std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let before = image(dir.path());
    match Db::open_read_only(dir.path()) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, dir.path().join("CURRENT")),
        other => panic!("expected Corruption, got {other:?}"),
    }
    assert_eq!(image(dir.path()), before);

    // The same on an in-memory file system: nothing at all appears.
    let mem = MemFs::new();
    let refused = Db::open_read_only_with_fs(Arc::new(mem.clone()), "/db", Options::default());
    assert!(matches!(refused, Err(Error::InvalidArgument(_))));
    assert!(!mem.exists(Path::new("/db")).unwrap());
    assert!(mem.file_names().is_empty());
}

/// A copy of a database made without its `LOCK` opens read-only, without
/// a lock, and still gets no `LOCK`.
#[test]
fn a_database_without_lock_opens_read_only_without_creating_it() {
    let (dir, model, _) = closed_database();
    std::fs::remove_file(dir.path().join(kevo_engine::LOCK_FILE)).unwrap();
    let before = image(dir.path());
    let first = Db::open_read_only(dir.path()).expect("open read-only");
    let second = Db::open_read_only(dir.path()).expect("open read-only again");
    assert_reads(&first, &model);
    drop((first, second));
    assert_eq!(image(dir.path()), before, "LOCK was created");
}

/// (f) A torn tail in the newest (unsealed) WAL segment, as a crash
/// leaves it: the read-only open skips the torn record in memory and
/// leaves the file as it is; every write before it is read.
#[test]
fn a_torn_wal_tail_is_skipped_in_memory_and_left_in_the_file() {
    let (dir, mut model, _) = crashed_database();
    // The newest segment with records (an empty one may follow it: the
    // WAL prepares the next segment ahead).
    let newest = segments(dir.path())
        .into_iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 200)
        .expect("a segment with records");
    let bytes = std::fs::read(&newest).unwrap();
    // The last write was a batch of deletes (its last byte, a key's, is not
    // zero; the zeros after it are space the WAL wrote ahead); cut into it.
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let cut = end - 20;
    std::fs::write(&newest, &bytes[..cut]).unwrap();
    // The deletes are lost with the torn record.
    for i in (1..1500).step_by(50) {
        model.insert(key(i).into(), value(i, u32::from(i % 3 == 0)).into());
    }
    let before = image(dir.path());
    for _ in 0..2 {
        let ro = Db::open_read_only(dir.path()).expect("open read-only over a torn tail");
        assert!(ro.stats().wal_tail_bytes_dropped > 0);
        assert_reads(&ro, &model);
        ro.close().expect("close");
        assert_eq!(
            std::fs::metadata(&newest).unwrap().len(),
            cut as u64,
            "the torn tail was trimmed"
        );
        assert_eq!(
            image(dir.path()),
            before,
            "the read-only open changed a file"
        );
    }
}
