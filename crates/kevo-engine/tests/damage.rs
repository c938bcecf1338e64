//! Damaged metadata, as a bad disk, a careless `rm` or a half-restored
//! backup leaves it: `Db::open` refuses it with `Corruption` naming the
//! file and changes nothing on disk, or opens with every acknowledged
//! write; `repair` then salvages every entry the surviving files hold.
//!
//! Each test is one case of issue #11's "What was seen". A failed open must
//! leave the directory byte for byte as it was: [`DirImage`] lists every
//! file's name, size and checksum before and after.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{Fs, MemFs, xxh3_64};
use kevo_engine::{Db, Error, Options, SyncMode, WriteBatch, WriteOptions};

const DIR: &str = "/db";

/// Every file under `dir` (recursively): name -> (size, xxh3 of content).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DirImage(BTreeMap<PathBuf, (usize, u64)>);

impl DirImage {
    fn of(mem: &MemFs) -> DirImage {
        DirImage(
            mem.file_names()
                .into_iter()
                .filter(|p| p.starts_with(DIR))
                .map(|p| {
                    let bytes = mem.read_file(&p).expect("read");
                    (p, (bytes.len(), xxh3_64(&bytes)))
                })
                .collect(),
        )
    }
}

fn key(i: u32) -> String {
    format!("key{i:06}")
}

/// A value unique to `i`, 100 bytes, different bytes per key (LZ4 cannot
/// make it vanish).
fn value(i: u32) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    let fill = common::noise(u64::from(i), 100 - v.len());
    v.extend(fill.iter().map(|b| b'a' + b % 26));
    v
}

fn put_synced(db: &Db, i: u32) {
    let mut batch = WriteBatch::new();
    batch.put(key(i), value(i));
    db.write_with(batch, &WriteOptions { sync: true })
        .expect("put");
}

/// Which of `0..n` are missing or wrong in `db`.
fn missing(db: &Db, n: u32) -> Vec<u32> {
    (0..n)
        .filter(|&i| db.get(key(i)).expect("get") != Some(Bytes::from(value(i))))
        .collect()
}

fn open(mem: &MemFs, options: Options) -> kevo_engine::Result<Db> {
    Db::open_with_fs(Arc::new(mem.clone()), DIR, options)
}

/// A deep copy of a file system (`MemFs::clone` shares the original).
fn copy(mem: &MemFs) -> MemFs {
    let out = MemFs::new();
    out.create_dir_all(Path::new(DIR)).expect("mkdir");
    for path in mem.file_names() {
        if let Some(parent) = path.parent() {
            out.create_dir_all(parent).expect("mkdir");
        }
        out.write_file(&path, &mem.read_file(&path).expect("read"))
            .expect("write");
    }
    out
}

fn names(mem: &MemFs, suffix: &str) -> Vec<PathBuf> {
    mem.file_names()
        .into_iter()
        .filter(|p| p.parent() == Some(Path::new(DIR)))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// `open` must fail with `Corruption` naming a file whose name contains
/// `names` and must not have touched a byte.
fn assert_refused(mem: &MemFs, options: Options, names: &str) -> Error {
    let before = DirImage::of(mem);
    let err = open(mem, options).expect_err("the open must refuse the damage");
    match &err {
        Error::Corruption { file, .. } => assert!(
            file.to_string_lossy().contains(names),
            "the error should name {names}: {err}"
        ),
        other => panic!("expected Corruption naming {names}, got {other}"),
    }
    assert_eq!(
        DirImage::of(mem),
        before,
        "a failed open changed the directory"
    );
    err
}

/// Case 1: `CURRENT` removed after 10 000 synced puts and a flush. Open
/// must not take the directory for a new database.
#[test]
fn removing_current_is_corruption_not_a_new_database() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default()).expect("open");
    for i in 0..10_000 {
        put_synced(&db, i);
    }
    db.flush().expect("flush");
    db.close().expect("close");
    mem.remove_file(Path::new("/db/CURRENT")).expect("rm");

    assert_refused(&mem, Options::default(), "CURRENT");
    assert_refused(&mem, Options::default().create_if_missing(false), "CURRENT");

    let report = kevo_engine::repair_with_fs(Arc::new(mem.clone()), DIR, &Options::default())
        .expect("repair");
    assert!(!report.tables_kept.is_empty(), "{report:?}");
    let db = open(&mem, Options::default()).expect("open after repair");
    assert_eq!(missing(&db, 10_000), Vec::<u32>::new());
    db.close().expect("close");
}

/// A database whose manifest has seen many edits: 64 KiB memtables and
/// tables, compactions all the time, 20 000 keys.
fn many_tables() -> (MemFs, Options) {
    let options = Options::default()
        .memtable_bytes(64 * 1024)
        .target_file_bytes(64 * 1024)
        .base_level_bytes(256 * 1024)
        .l0_compaction_trigger(2)
        .manifest_rewrite_bytes(1 << 30);
    let mem = MemFs::new();
    let db = open(&mem, options.clone()).expect("open");
    for i in 0..20_000 {
        db.put(key(i), value(i)).expect("put");
    }
    db.wait_for_compactions().expect("compactions");
    assert!(db.stats().table_count() >= 4, "{}", db.stats());
    assert!(db.stats().compactions > 0, "{}", db.stats());
    db.close().expect("close");
    (mem, options)
}

fn current_manifest(mem: &MemFs) -> PathBuf {
    let current = mem.read_file(Path::new("/db/CURRENT")).expect("CURRENT");
    let name = String::from_utf8(current).expect("utf-8");
    Path::new(DIR).join(name.trim_end())
}

/// Case 2: the manifest cut short (its last byte, half of it, or at many
/// other points). Open either refuses it without touching anything, or
/// opens with every key; never fewer keys, never a half-deleted directory.
/// Repair then gets every key back.
#[test]
fn a_truncated_manifest_never_loses_keys() {
    let (original, options) = many_tables();
    let manifest = current_manifest(&original);
    let len = original.read_file(&manifest).expect("manifest").len();
    let mut cuts = vec![len - 1, len / 2];
    cuts.extend((1..12).map(|k| len * k / 12));
    let mut refused = 0;
    for cut in cuts {
        let mem = copy(&original);
        let bytes = mem.read_file(&manifest).expect("manifest");
        mem.write_file(&manifest, &bytes[..cut]).expect("truncate");
        let before = DirImage::of(&mem);
        match open(&mem, options.clone()) {
            Ok(db) => {
                assert_eq!(
                    missing(&db, 20_000),
                    Vec::<u32>::new(),
                    "cut at {cut} of {len}"
                );
                db.close().expect("close");
            }
            Err(Error::Corruption { file, .. }) => {
                refused += 1;
                assert_eq!(
                    DirImage::of(&mem),
                    before,
                    "cut at {cut}: the open changed files"
                );
                assert!(
                    file.to_string_lossy().contains("MANIFEST")
                        || file.ends_with("CURRENT")
                        || file.to_string_lossy().ends_with(".sst")
                        || file.to_string_lossy().ends_with(".wal"),
                    "cut at {cut}: {}",
                    file.display()
                );
                // A second open fails the same way: nothing was destroyed.
                assert!(open(&mem, options.clone()).is_err());
                let report = kevo_engine::repair_with_fs(Arc::new(mem.clone()), DIR, &options)
                    .expect("repair");
                let db = open(&mem, options.clone()).expect("open after repair");
                assert_eq!(
                    missing(&db, 20_000),
                    Vec::<u32>::new(),
                    "cut at {cut}, after repair: {report:?}"
                );
                db.close().expect("close");
            }
            Err(other) => panic!("cut at {cut}: unexpected {other}"),
        }
    }
    assert!(refused > 0, "no cut was refused: the test damages nothing");
}

/// Every put synced, 64 KiB segments, no flush: the WAL holds everything
/// in many segments. Returns the file system and the options.
fn many_segments(close: bool) -> (MemFs, Options) {
    let options = Options::default()
        .memtable_bytes(64 << 20)
        .wal_segment_bytes(64 * 1024)
        .sync_mode(SyncMode::Always);
    let mem = MemFs::new();
    let db = open(&mem, options.clone()).expect("open");
    for i in 0..4_000 {
        db.put(key(i), value(i)).expect("put");
    }
    if close {
        db.close().expect("close");
    } else {
        // Power loss: only what was synced survives.
        drop(db);
        mem.crash();
    }
    assert!(names(&mem, ".wal").len() >= 5, "{:?}", mem.file_names());
    (mem, options)
}

/// Which keys `segment` holds (by replaying it alone).
fn keys_in_segment(mem: &MemFs, segment: &Path) -> Vec<u32> {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/one")).expect("mkdir");
    let name = segment.file_name().expect("name");
    fs.write_file(
        &Path::new("/one").join(name),
        &mem.read_file(segment).expect("read"),
    )
    .expect("write");
    let options = kevo_wal::WalOptions {
        recovery_mode: kevo_wal::RecoveryMode::SkipCorrupted,
        ..kevo_wal::WalOptions::default()
    };
    let replay = kevo_wal::Replay::open(Arc::new(fs), Path::new("/one"), options.recovery_mode, 0)
        .expect("replay");
    let mut keys = Vec::new();
    for batch in replay {
        for entry in batch.expect("batch").batch.iter() {
            let k = std::str::from_utf8(&entry.key[3..]).expect("utf-8");
            keys.push(k.parse().expect("number"));
        }
    }
    keys
}

fn damage_segment_and_check(
    close: bool,
    pick: impl Fn(&MemFs, &[PathBuf]) -> PathBuf,
    damage: impl Fn(&MemFs, &Path),
) {
    let (mem, options) = many_segments(close);
    let segments = names(&mem, ".wal");
    let victim = pick(&mem, &segments);
    let lost = keys_in_segment(&mem, &victim);
    assert!(!lost.is_empty(), "{} holds no key", victim.display());
    damage(&mem, &victim);
    let file = victim
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert_refused(&mem, options.clone(), &file);

    // Repair keeps everything the other segments hold.
    let report = kevo_engine::repair_with_fs(Arc::new(mem.clone()), DIR, &options).expect("repair");
    let db = open(&mem, options).expect("open after repair");
    let gone = missing(&db, 4_000);
    assert!(
        gone.iter().all(|i| lost.contains(i)),
        "repair lost keys outside {file}: {gone:?} ({report:?})"
    );
    db.close().expect("close");
}

fn empty(mem: &MemFs, path: &Path) {
    mem.write_file(path, b"").expect("empty");
}

/// Case 3: a middle segment emptied, every put synced: open used to return
/// `Ok` with ~1 000 synced keys missing in the middle.
#[test]
fn an_emptied_middle_segment_is_corruption() {
    damage_segment_and_check(true, |_, s| s[s.len() / 2].clone(), empty);
}

/// Case 3, variant: a middle segment cut at a 32 KiB block boundary.
#[test]
fn a_middle_segment_cut_at_a_block_boundary_is_corruption() {
    damage_segment_and_check(
        true,
        |_, s| s[s.len() / 2].clone(),
        |mem, path| {
            let bytes = mem.read_file(path).expect("read");
            assert!(bytes.len() > 32 * 1024);
            mem.write_file(path, &bytes[..32 * 1024]).expect("cut");
        },
    );
}

/// Case 4: the oldest unflushed segment deleted.
#[test]
fn a_deleted_oldest_segment_is_corruption() {
    let (mem, options) = many_segments(true);
    let segments = names(&mem, ".wal");
    let oldest = segments[0].clone();
    assert!(!keys_in_segment(&mem, &oldest).is_empty());
    mem.remove_file(&oldest).expect("rm");
    let file = oldest
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert_refused(&mem, options, &file);
}

/// Case 4: the newest segment emptied, after a clean close and after a
/// power loss.
#[test]
fn an_emptied_newest_segment_is_corruption() {
    for close in [true, false] {
        damage_segment_and_check(
            close,
            |mem, s| {
                // The newest segment that holds records (the WAL keeps an
                // empty one ready after the live one).
                s.iter()
                    .rev()
                    .find(|p| !keys_in_segment(mem, p).is_empty())
                    .expect("a segment with records")
                    .clone()
            },
            empty,
        );
    }
}

/// Case 5: after `close()`, every iterator (advanced or not), snapshot and
/// transaction returns `Closed`, a read-only commit included.
#[test]
fn handles_return_closed_after_close() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default()).expect("open");
    for i in 0..100 {
        db.put(key(i), value(i)).expect("put");
    }
    let mut fresh = db.range::<&[u8], _>(..);
    let mut started = db.range::<&[u8], _>(..);
    assert!(started.next().expect("first").is_ok());
    assert!(started.next_back().expect("last").is_ok());
    let mut started_back = db.range::<&[u8], _>(..);
    assert!(started_back.next_back().expect("last").is_ok());
    let mut reversed = db.prefix("key").rev();
    let snapshot = db.snapshot();
    let mut snapshot_iter = snapshot.range::<&[u8], _>(..);
    let mut reader = db.begin();
    assert!(reader.get(key(1)).expect("get").is_some());
    let mut writer = db.begin();
    writer.put("x", "y").expect("buffered put");
    let mut tx_scan = writer.range::<&[u8], _>(..);

    db.close().expect("close");

    let closed = |item: Option<kevo_engine::Result<(Bytes, Bytes)>>| {
        matches!(item, Some(Err(Error::Closed)))
    };
    assert!(closed(fresh.next()), "an iterator never advanced");
    assert!(closed(started.next()), "an advanced iterator, forward");
    assert!(
        closed(started_back.next_back()),
        "an advanced iterator, backward"
    );
    assert!(closed(reversed.next()), "a reversed prefix iterator");
    assert!(closed(snapshot_iter.next()), "a snapshot's iterator");
    assert!(matches!(snapshot.get(key(1)), Err(Error::Closed)));
    assert!(closed(snapshot.range::<&[u8], _>(..).next()));
    assert!(
        matches!(tx_scan.next(), Some(Err(Error::Closed))),
        "a transaction's scan, its own writes included"
    );
    assert!(matches!(reader.get(key(2)), Err(Error::Closed)));
    assert!(matches!(writer.put("z", "z"), Err(Error::Closed)));
    assert!(
        matches!(reader.commit(), Err(Error::Closed)),
        "a read-only commit"
    );
    assert!(matches!(writer.commit(), Err(Error::Closed)));
    // And they stay fused: no data after the error, from either end.
    assert!(fresh.next().is_none());
    assert!(started.next_back().is_none());
}

/// A table cut short (or grown) no longer has the size the manifest
/// recorded: open refuses it by name before reading anything else.
#[test]
fn a_table_of_another_size_is_corruption() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default()).expect("open");
    for i in 0..1000 {
        db.put(key(i), value(i)).expect("put");
    }
    db.flush().expect("flush");
    db.close().expect("close");
    let table = names(&mem, ".sst").pop().expect("a table");
    let bytes = mem.read_file(&table).expect("read");
    let name = table
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    mem.write_file(&table, &bytes[..bytes.len() - 1])
        .expect("cut");
    assert_refused(&mem, Options::default(), &name);
    let mut longer = bytes.clone();
    longer.push(0);
    mem.write_file(&table, &longer).expect("grow");
    assert_refused(&mem, Options::default(), &name);
    mem.write_file(&table, &bytes).expect("restore");
    let db = open(&mem, Options::default()).expect("open");
    assert_eq!(missing(&db, 1000), Vec::<u32>::new());
}
