//! Bad input: oversized keys and values, invalid options, a directory
//! holding garbage, damaged files, and calls after close.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;

use kevo_core::{Fs, MemFs};
use kevo_engine::{Db, Error, KEY_BYTES_MAX, Options, SyncMode, VALUE_BYTES_MAX, WriteBatch};

fn mem_db(mem: &Arc<MemFs>) -> Db {
    Db::open_with_fs(mem.clone(), "/db", Options::default()).expect("open")
}

#[test]
fn oversized_keys_and_values_are_refused_whole() {
    let mem = Arc::new(MemFs::new());
    let db = mem_db(&mem);
    let long_key = vec![b'k'; KEY_BYTES_MAX + 1];
    assert!(matches!(
        db.put(&long_key, "v"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.delete(&long_key),
        Err(Error::InvalidArgument(_))
    ));
    let long_value = vec![0u8; VALUE_BYTES_MAX + 1];
    assert!(matches!(
        db.put("k", &long_value),
        Err(Error::InvalidArgument(_))
    ));
    // A batch with one bad entry applies nothing.
    let mut batch = WriteBatch::new();
    batch.put("good", "value");
    batch.put("bad", &long_value);
    assert!(matches!(db.write(batch), Err(Error::InvalidArgument(_))));
    assert_eq!(db.get("good").expect("get"), None);
    // The limits themselves are fine.
    db.put(vec![b'k'; KEY_BYTES_MAX], "v").expect("longest key");
    db.put("empty", "").expect("empty value");
    assert_eq!(db.get("empty").expect("get").as_deref(), Some(&b""[..]));
    // Nothing was made read-only by the refusals.
    db.put("after", "ok").expect("put");
}

#[test]
fn invalid_options_name_the_field() {
    let mem = Arc::new(MemFs::new());
    let cases = [
        (Options::default().memtable_bytes(10), "memtable_bytes"),
        (
            Options::default().background_threads(0),
            "background_threads",
        ),
        (
            Options::default().sync_mode(SyncMode::Interval(std::time::Duration::ZERO)),
            "sync_mode",
        ),
        (
            Options::default().l0_slowdown_trigger(8).l0_stop_trigger(4),
            "l0_stop_trigger",
        ),
    ];
    for (options, field) in cases {
        match Db::open_with_fs(mem.clone(), "/db", options) {
            Err(Error::InvalidArgument(message)) => assert!(message.contains(field), "{message}"),
            other => panic!("{field}: expected InvalidArgument, got {other:?}"),
        }
    }
    // Nothing was created by the refused opens.
    assert!(mem.file_names().is_empty(), "{:?}", mem.file_names());
}

#[test]
fn create_if_missing_and_error_if_exists() {
    let mem = Arc::new(MemFs::new());
    let missing = Db::open_with_fs(
        mem.clone(),
        "/db",
        Options::default().create_if_missing(false),
    );
    assert!(
        matches!(missing, Err(Error::InvalidArgument(_))),
        "{missing:?}"
    );
    mem_db(&mem).close().expect("close");
    let exists = Db::open_with_fs(mem.clone(), "/db", Options::default().error_if_exists(true));
    assert!(
        matches!(exists, Err(Error::InvalidArgument(_))),
        "{exists:?}"
    );
}

fn names(mem: &MemFs) -> Vec<String> {
    mem.file_names()
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn foreign_files_are_left_alone_and_orphans_below_the_counter_removed() {
    let mem = Arc::new(MemFs::new());
    mem.create_dir_all("/db".as_ref()).expect("mkdir");
    mem.write_file("/db/README.txt".as_ref(), b"not ours")
        .expect("write");
    mem.write_file("/db/notes.sst.bak".as_ref(), b"garbage")
        .expect("write");
    let db = mem_db(&mem);
    db.put("k", "v").expect("put");
    db.flush().expect("flush");
    db.close().expect("close");
    // A table named like ours that no version names, numbered below the
    // manifest's file counter (as an interrupted flush leaves one), is
    // deleted at open; files that are not ours stay.
    let state = kevo_manifest::VersionSet::recover(mem.as_ref(), "/db".as_ref())
        .expect("recover")
        .expect("a database");
    let orphan = state.next_file_number - 1;
    let orphan_path = format!("/db/{}", kevo_manifest::table_file_name(orphan));
    assert!(!names(&mem).contains(&orphan_path), "{orphan} is in use");
    mem.write_file(orphan_path.as_ref(), b"garbage")
        .expect("write");
    let db = mem_db(&mem);
    let names = names(&mem);
    assert!(!names.contains(&orphan_path), "{names:?}");
    assert!(names.contains(&"/db/README.txt".to_string()), "{names:?}");
    assert!(
        names.contains(&"/db/notes.sst.bak".to_string()),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("/db/OPTIONS-")),
        "{names:?}"
    );
    assert_eq!(db.get("k").expect("get").as_deref(), Some(&b"v"[..]));
    assert!(db.stats().unexplained_files.is_empty());
    db.put("k2", "v2").expect("put");
    db.flush().expect("flush");
    db.close().expect("close");
}

/// A table past the file counter cannot be an interrupted flush's (its
/// number would have been reserved first): edits were lost, and the open
/// refuses without deleting it.
#[test]
fn a_table_past_the_file_counter_is_corruption() {
    let mem = Arc::new(MemFs::new());
    let db = mem_db(&mem);
    db.put("k", "v").expect("put");
    db.flush().expect("flush");
    db.close().expect("close");
    mem.write_file("/db/999999.sst".as_ref(), b"garbage")
        .expect("write");
    let before = names(&mem);
    match Db::open_with_fs(mem.clone(), "/db", Options::default()) {
        Err(Error::Corruption { file, reason, .. }) => {
            assert!(file.to_string_lossy().contains("MANIFEST"), "{file:?}");
            assert!(reason.contains("999999.sst"), "{reason}");
        }
        other => panic!("expected Corruption, got {other:?}"),
    }
    assert_eq!(names(&mem), before);
}

#[test]
fn garbage_current_is_corruption() {
    let mem = Arc::new(MemFs::new());
    mem_db(&mem).close().expect("close");
    mem.write_file("/db/CURRENT".as_ref(), b"\xff\xfe garbage")
        .expect("write");
    let result = Db::open_with_fs(mem.clone(), "/db", Options::default());
    match result {
        Err(Error::Corruption { file, .. }) => assert!(file.ends_with("CURRENT"), "{file:?}"),
        other => panic!("expected Corruption, got {other:?}"),
    }
}

#[test]
fn a_damaged_table_is_reported_with_its_name() {
    let mem = Arc::new(MemFs::new());
    let db = mem_db(&mem);
    for i in 0..2000 {
        db.put(format!("key{i:05}"), format!("value{i}"))
            .expect("put");
    }
    db.flush().expect("flush");
    db.close().expect("close");
    let table = mem
        .file_names()
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .expect("a table");
    mem.corrupt(&table, 100, 0x40).expect("corrupt");
    let db = mem_db(&mem);
    let scan: Result<Vec<_>, _> = db.range::<&[u8], _>(..).collect();
    match scan {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, table),
        other => panic!("expected Corruption, got {:?}", other.map(|v| v.len())),
    }
}

#[test]
fn a_missing_table_is_corruption() {
    let mem = Arc::new(MemFs::new());
    let db = mem_db(&mem);
    db.put("k", "v").expect("put");
    db.flush().expect("flush");
    db.close().expect("close");
    let table = mem
        .file_names()
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .expect("a table");
    mem.remove_file(&table).expect("remove");
    match Db::open_with_fs(mem.clone(), "/db", Options::default()) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, table),
        other => panic!("expected Corruption, got {other:?}"),
    }
}

#[test]
fn calls_after_close_are_closed() {
    let mem = Arc::new(MemFs::new());
    let db = mem_db(&mem);
    db.put("k", "v").expect("put");
    let snapshot = db.snapshot();
    let other_handle = db.clone();
    db.close().expect("close");
    assert!(matches!(db.close(), Err(Error::Closed)));
    assert!(matches!(other_handle.put("k", "v"), Err(Error::Closed)));
    assert!(matches!(other_handle.get("k"), Err(Error::Closed)));
    assert!(matches!(other_handle.flush(), Err(Error::Closed)));
    assert!(matches!(snapshot.get("k"), Err(Error::Closed)));
    let mut iter = db.range::<&[u8], _>(..);
    assert!(matches!(iter.next(), Some(Err(Error::Closed))));
    assert!(iter.next().is_none());
}
