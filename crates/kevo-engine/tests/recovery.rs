//! What open accepts, what it refuses, and what it leaves alone, beyond the
//! damage cases of `tests/damage.rs`: what an interrupted rotation leaves,
//! a segment the manifest never heard of, a database written by the first
//! manifest format, and a failed open on a real directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kevo_core::{Fs, MemFs, xxh3_64};
use kevo_engine::{Db, Error, Options, SyncMode};
use kevo_manifest::{MANIFEST_MAGIC, VersionEdit, VersionSet};
use kevo_wal::{Batch, Wal, WalOptions};

const DIR: &str = "/db";

fn open(mem: &MemFs) -> kevo_engine::Result<Db> {
    Db::open_with_fs(Arc::new(mem.clone()), DIR, Options::default())
}

fn segments(mem: &MemFs) -> Vec<u64> {
    mem.file_names()
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()
                .and_then(kevo_wal::parse_segment_file_name)
        })
        .collect()
}

/// A rotation that created its segment but crashed before the manifest
/// recorded it leaves an empty segment: harmless, and deleted.
#[test]
fn an_empty_segment_the_manifest_never_recorded_is_harmless() {
    let mem = MemFs::new();
    let db = open(&mem).expect("open");
    db.put("k", "v").expect("put");
    db.close().expect("close");
    let next = segments(&mem).into_iter().max().expect("a segment") + 1;
    let path = Path::new(DIR).join(kevo_wal::segment_file_name(next));
    mem.write_file(&path, b"").expect("empty segment");
    let db = open(&mem).expect("open");
    assert_eq!(db.get("k").expect("get").as_deref(), Some(&b"v"[..]));
    db.put("k2", "v2").expect("put");
    db.close().expect("close");
    let db = open(&mem).expect("reopen");
    assert_eq!(db.get("k2").expect("get").as_deref(), Some(&b"v2"[..]));
}

/// A segment holding records that the manifest never recorded means edits
/// were lost (each segment is recorded before its first record).
#[test]
fn a_segment_with_records_the_manifest_never_recorded_is_corruption() {
    let mem = MemFs::new();
    let db = open(&mem).expect("open");
    db.put("k", "v").expect("put");
    db.close().expect("close");
    let next = segments(&mem).into_iter().max().expect("a segment") + 1;
    // A real segment `next` holding one record, written elsewhere.
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (wal, _) = Wal::open(fs, Path::new("/elsewhere"), WalOptions::default())
        .unwrap()
        .finish_with(None, next)
        .unwrap();
    let mut batch = Batch::new();
    batch.set_seqno(1000);
    batch.put("stray", "record");
    wal.append(&batch).unwrap();
    wal.close().unwrap();
    let name = kevo_wal::segment_file_name(next);
    let bytes = mem.read_file(&Path::new("/elsewhere").join(&name)).unwrap();
    mem.write_file(&Path::new(DIR).join(&name), &bytes).unwrap();
    match open(&mem) {
        Err(Error::Corruption { file, reason, .. }) => {
            assert!(file.ends_with(&name), "{file:?}");
            assert!(reason.contains("never recorded"), "{reason}");
        }
        other => panic!("expected Corruption, got {other:?}"),
    }
}

/// A database as the first manifest format left it: a format 1 manifest
/// (no WAL segments recorded, its last seqno the newest at its last flush)
/// and a WAL whose seqnos jump where that code continued after a torn tail,
/// plus two tables the manifest never named: `000060.sst`, an interrupted
/// flush's output (its writes are all in the WAL), and `000050.sst`, which
/// nothing explains.
fn format_1_database(mem: &MemFs) {
    let dir = Path::new(DIR);
    mem.create_dir_all(dir).unwrap();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    // The WAL: seqnos 1-3, then 10-11 (4-9 were lost in a torn tail, and
    // the manifest's last seqno was 9).
    let (wal, _) = Wal::open(fs.clone(), dir, WalOptions::default())
        .unwrap()
        .finish()
        .unwrap();
    for (seqno, key) in [(1, "a"), (2, "b"), (3, "c"), (10, "d"), (11, "e")] {
        let mut batch = Batch::new();
        batch.set_seqno(seqno);
        batch.put(key, format!("value-{key}"));
        wal.append(&batch).unwrap();
    }
    wal.close().unwrap();
    // The manifest, written by format 1: the same fields, version byte 1.
    let mut edit = VersionEdit {
        log_number: Some(1),
        next_file_number: Some(3),
        last_seqno: Some(9),
        ..VersionEdit::default()
    }
    .encode();
    edit[0] = 1;
    let file = fs.create(&dir.join("MANIFEST-000002")).unwrap();
    let mut log = kevo_wal::log::LogWriter::new(file, 2, MANIFEST_MAGIC).unwrap();
    log.add_record(&edit).unwrap();
    log.sync().unwrap();
    mem.write_file(&dir.join("CURRENT"), b"MANIFEST-000002\n")
        .unwrap();
    mem.write_file(&dir.join("000050.sst"), b"not a table anyone can explain")
        .unwrap();
    let mut table = kevo_sstable::TableWriter::create(
        mem,
        &dir.join("000060.sst"),
        kevo_sstable::TableOptions::default(),
    )
    .unwrap();
    for (key, seqno) in [("a", 1), ("b", 2)] {
        let internal =
            kevo_core::InternalKey::new(key.as_bytes(), seqno, kevo_core::ValueKind::Put);
        table
            .add(internal.as_bytes(), format!("value-{key}").as_bytes())
            .unwrap();
    }
    table.finish().unwrap();
}

#[test]
fn a_format_1_database_opens_and_is_upgraded() {
    let mem = MemFs::new();
    format_1_database(&mem);
    let state = VersionSet::recover(&mem, Path::new(DIR)).unwrap().unwrap();
    assert!(!state.tracks_wal_segments);

    let db = open(&mem).expect("open a format 1 database");
    for key in ["a", "b", "c", "d", "e"] {
        let want = format!("value-{key}");
        assert_eq!(db.get(key).expect("get").as_deref(), Some(want.as_bytes()));
    }
    let stats = db.stats();
    assert_eq!(stats.unexplained_files, vec!["000050.sst".to_string()]);
    assert!(stats.to_string().contains("000050.sst"));
    assert!(
        mem.read_file(Path::new("/db/000060.sst")).is_err(),
        "the interrupted flush's table, whose writes the WAL holds, is deleted"
    );
    // The replayed WAL went to a table; the manifest is format 2 now.
    assert_eq!(stats.levels[0].tables, 1, "{stats}");
    db.put("f", "value-f").expect("put");
    drop(db);
    mem.crash();
    let state = VersionSet::recover(&mem, Path::new(DIR)).unwrap().unwrap();
    assert!(state.tracks_wal_segments);
    let db = open(&mem).expect("reopen after a crash");
    for key in ["a", "b", "c", "d", "e"] {
        assert!(db.get(key).expect("get").is_some(), "{key}");
    }
    // The unexplained table stays where it was, untouched, and is still
    // reported: the manifest recorded it as such.
    assert_eq!(
        mem.read_file(Path::new("/db/000050.sst")).unwrap(),
        b"not a table anyone can explain"
    );
    assert_eq!(db.stats().unexplained_files, vec!["000050.sst".to_string()]);
    // Once someone removed it, it is forgotten.
    db.close().expect("close");
    mem.remove_file(Path::new("/db/000050.sst")).unwrap();
    let db = open(&mem).expect("reopen");
    assert!(db.stats().unexplained_files.is_empty());
    db.close().expect("close");
    let db = open(&mem).expect("reopen");
    assert!(db.stats().unexplained_files.is_empty());
}

/// `key00000`, `key00001`, … each with a value of about 70 bytes.
fn put_keys(db: &Db, n: u32) {
    for i in 0..n {
        db.put(
            format!("key{i:05}"),
            format!("value-{i}-{}", "x".repeat(60)),
        )
        .expect("put");
    }
}

/// Every file under `dir`, with its size and checksum.
fn image(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(image(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.insert(path, (bytes.len() as u64, xxh3_64(&bytes)));
        }
    }
    out
}

/// On a real directory: a failed open leaves every file as it was, byte
/// for byte (names, sizes, checksums), and `repair` then opens it.
#[test]
fn a_failed_open_changes_no_byte_of_a_real_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options::default()
        .memtable_bytes(64 * 1024)
        .wal_segment_bytes(64 * 1024)
        .sync_mode(SyncMode::Always);
    let db = Db::open_with(dir.path(), options.clone()).expect("open");
    put_keys(&db, 3000);
    db.close().expect("close");
    let wal = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .min()
        .expect("a segment");
    // Damage: the segment cut to half its records. (A recycled segment
    // file is longer than its records: cutting past them damages nothing.)
    let state = VersionSet::recover(&kevo_core::OsFs::new(), dir.path())
        .unwrap()
        .unwrap();
    let number =
        kevo_wal::parse_segment_file_name(wal.file_name().unwrap().to_str().unwrap()).unwrap();
    let sealed = state
        .wal_segments
        .get(number)
        .flatten()
        .expect("sealed at close");
    let bytes = std::fs::read(&wal).unwrap();
    std::fs::write(&wal, &bytes[..sealed as usize / 2]).unwrap();
    let before = image(dir.path());
    for _ in 0..2 {
        match Db::open_with(dir.path(), options.clone()) {
            Err(Error::Corruption { file, .. }) => assert_eq!(file, wal),
            other => panic!("expected Corruption, got {other:?}"),
        }
        assert_eq!(
            image(dir.path()),
            before,
            "a failed open changed the directory"
        );
    }
    // And with CURRENT gone too.
    std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let before = image(dir.path());
    assert!(matches!(
        Db::open_with(dir.path(), options.clone()),
        Err(Error::Corruption { .. })
    ));
    assert_eq!(image(dir.path()), before);
    let report = kevo_engine::repair(dir.path(), &options).expect("repair");
    assert!(!report.wal_segments_replayed.is_empty(), "{report:?}");
    let db = Db::open_with(dir.path(), options).expect("open after repair");
    // The tables' keys are all there; of the cut segment, its first half.
    assert!(db.get("key00000").expect("get").is_some());
    let count = db.prefix("key").count();
    assert!(count > 2500 && count < 3000, "{count} keys after repair");
}

/// `RecoveryMode::SkipCorrupted` salvages every intact record around
/// damage in the middle of the WAL; the open then writes what it replayed
/// to a table, so that the next open in the default mode finds nothing to
/// refuse.
#[test]
fn a_lenient_recovery_salvages_and_leaves_a_clean_database() {
    let flip = |mem: &MemFs, victim: &Path| mem.corrupt(victim, 5000, 0x01).expect("corrupt");
    let delete = |mem: &MemFs, victim: &Path| mem.remove_file(victim).expect("rm");
    lenient_recovery(flip, 2900);
    lenient_recovery(delete, 2000);
}

fn lenient_recovery(damage: impl Fn(&MemFs, &Path), at_least: usize) {
    let mem = MemFs::new();
    let options = Options::default()
        .memtable_bytes(64 << 20)
        .wal_segment_bytes(64 * 1024)
        .sync_mode(SyncMode::Always);
    let db = Db::open_with_fs(Arc::new(mem.clone()), DIR, options.clone()).expect("open");
    put_keys(&db, 3000);
    db.close().expect("close");
    let mut all = segments(&mem);
    all.sort_unstable();
    let victim = Path::new(DIR).join(kevo_wal::segment_file_name(all[all.len() / 2]));
    damage(&mem, &victim);
    assert!(matches!(
        Db::open_with_fs(Arc::new(mem.clone()), DIR, options.clone()),
        Err(Error::Corruption { .. })
    ));
    let lenient = options
        .clone()
        .recovery_mode(kevo_engine::RecoveryMode::SkipCorrupted);
    let db = Db::open_with_fs(Arc::new(mem.clone()), DIR, lenient).expect("lenient open");
    let salvaged = db.prefix("key").count();
    assert!(
        salvaged > at_least && salvaged < 3000,
        "{salvaged} keys salvaged"
    );
    assert_eq!(
        db.stats().levels[0].tables,
        1,
        "the replayed WAL is in a table"
    );
    db.close().expect("close");
    let db = Db::open_with_fs(Arc::new(mem.clone()), DIR, options).expect("default open");
    assert_eq!(db.prefix("key").count(), salvaged);
}

/// A creation cut short leaves a manifest without data (or, as the first
/// format created it first, a segment without records) and no `CURRENT`:
/// nothing to lose, so open creates the database. One WAL record makes it
/// a database whose `CURRENT` was lost.
#[test]
fn a_creation_cut_short_is_created_again() {
    let mem = MemFs::new();
    mem.create_dir_all(Path::new(DIR)).unwrap();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (wal, _) = Wal::open(fs, Path::new(DIR), WalOptions::default())
        .unwrap()
        .finish()
        .unwrap();
    let file = mem.create(&Path::new(DIR).join("MANIFEST-000002")).unwrap();
    let mut log = kevo_wal::log::LogWriter::new(file, 2, MANIFEST_MAGIC).unwrap();
    log.add_record(&VersionEdit::default().encode()).unwrap();
    log.sync().unwrap();
    // The segment holds no record yet: open creates the database.
    let copy = MemFs::new();
    for path in mem.file_names() {
        copy.create_dir_all(path.parent().unwrap()).unwrap();
        copy.write_file(&path, &mem.read_file(&path).unwrap())
            .unwrap();
    }
    let db = open(&copy).expect("a creation cut short is created again");
    db.put("k", "v").expect("put");
    db.close().expect("close");
    assert_eq!(
        open(&copy).unwrap().get("k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    // With a record in the segment, CURRENT was lost.
    let mut batch = Batch::new();
    batch.set_seqno(1);
    batch.put("k", "v");
    wal.append(&batch).unwrap();
    wal.close().unwrap();
    match open(&mem) {
        Err(Error::Corruption { file, .. }) => assert!(file.ends_with("CURRENT"), "{file:?}"),
        other => panic!("expected Corruption, got {other:?}"),
    }
}

/// Opening and closing a database that holds no unflushed write leaves no
/// segment behind: each open replays the segments the last session left
/// (a live one and its spare, both empty) and, finding nothing in them,
/// retires them, so a database opened again and again (a reader started
/// often, say) keeps the same few files. Before, each open left two more.
#[test]
fn reopening_without_writes_leaves_no_segment_behind() {
    let mem = MemFs::new();
    let db = open(&mem).expect("open");
    db.put("k", "v").expect("put");
    db.flush().expect("flush");
    db.close().expect("close");
    for round in 0..5 {
        let db = open(&mem).expect("open");
        assert_eq!(db.get("k").expect("get").as_deref(), Some(&b"v"[..]));
        db.close().expect("close");
        let left = segments(&mem);
        assert!(left.len() <= 2, "round {round}: segments {left:?}");
    }
    // A write that is still only in the log keeps its segment, and is
    // there after the next open.
    let db = open(&mem).expect("open");
    db.put("unflushed", "w").expect("put");
    db.close().expect("close");
    let db = open(&mem).expect("open");
    assert_eq!(
        db.get("unflushed").expect("get").as_deref(),
        Some(&b"w"[..])
    );
    db.close().expect("close");
    let db = open(&mem).expect("open");
    assert_eq!(
        db.get("unflushed").expect("get").as_deref(),
        Some(&b"w"[..])
    );
    assert_eq!(db.get("k").expect("get").as_deref(), Some(&b"v"[..]));
}

/// The table format versions of a database's tables, by file name.
fn table_formats(mem: &MemFs) -> BTreeMap<String, (u32, kevo_sstable::FilterType)> {
    mem.file_names()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .map(|path| {
            let table = kevo_sstable::Table::open(mem, &path, kevo_sstable::ReadOptions::default())
                .expect("table opens");
            let footer = table.footer();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, (footer.format_version, footer.filter_type))
        })
        .collect()
}

/// `cache_local_filter(false)` writes tables a build from before table
/// format 3 can open (version 1, the spread Bloom filter); the default
/// writes version 3; a database holding both reads both.
#[test]
fn tables_for_older_builds_keep_the_spread_filter() {
    use kevo_sstable::FilterType;
    let mem = MemFs::new();
    // No compaction may merge the two tables before they are looked at.
    let older = Options::new()
        .cache_local_filter(false)
        .auto_compactions(false);
    let db = Db::open_with_fs(Arc::new(mem.clone()), DIR, older).expect("open");
    db.put("old", "1").expect("put");
    db.flush().expect("flush");
    db.close().expect("close");
    let formats: Vec<_> = table_formats(&mem).into_values().collect();
    assert_eq!(formats, [(1, FilterType::Bloom)]);
    let newer = Options::new().auto_compactions(false);
    let db = Db::open_with_fs(Arc::new(mem.clone()), DIR, newer).expect("open");
    db.put("new", "2").expect("put");
    db.flush().expect("flush");
    let mut formats: Vec<_> = table_formats(&mem).into_values().collect();
    formats.sort_by_key(|(version, _)| *version);
    assert_eq!(
        formats,
        [(1, FilterType::Bloom), (3, FilterType::LocalBloom)]
    );
    assert_eq!(db.get("old").expect("get").as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get("new").expect("get").as_deref(), Some(&b"2"[..]));
    assert_eq!(db.get("absent").expect("get"), None);
}
