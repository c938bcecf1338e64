//! Keyspaces: independent key spaces in one database, one WAL. Isolation,
//! batches across keyspaces (atomic in memory and after a crash), reopen
//! with data in the WAL and in tables, drops (durable, re-creatable), WAL
//! retention with an idle keyspace, and names.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::MemFs;
use kevo_engine::{
    CompactionStyle, Db, Error, KeyspaceOptions, Options, SyncMode, WriteBatch, WriteOptions,
};

const DIR: &str = "/db";

fn open(mem: &MemFs, options: Options) -> Db {
    Db::open_with_fs(Arc::new(mem.clone()), DIR, options).expect("open")
}

fn all(iter: kevo_engine::DbIter) -> Vec<(Bytes, Bytes)> {
    iter.collect::<kevo_engine::Result<Vec<_>>>().expect("scan")
}

fn wal_segments(mem: &MemFs) -> usize {
    mem.file_names()
        .iter()
        .filter(|p| p.starts_with(DIR) && p.to_string_lossy().ends_with(".wal"))
        .count()
}

#[test]
fn keyspaces_are_independent_and_survive_reopen() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default());
    let users = db.keyspace("users", KeyspaceOptions::default()).unwrap();
    let index = db
        .keyspace(
            "index",
            KeyspaceOptions::default().compaction_style(CompactionStyle::Tiered),
        )
        .unwrap();
    db.put("k", "default").unwrap();
    users.put("k", "users").unwrap();
    index.put("k", "index").unwrap();
    users.put("u2", "x").unwrap();
    users.delete("u2").unwrap();
    assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"default"[..]));
    assert_eq!(users.get("k").unwrap().as_deref(), Some(&b"users"[..]));
    assert_eq!(index.get("k").unwrap().as_deref(), Some(&b"index"[..]));
    assert_eq!(users.get("u2").unwrap(), None);
    assert_eq!(all(db.range::<&[u8], _>(..)).len(), 1);
    assert_eq!(all(users.range::<&[u8], _>(..)).len(), 1);
    assert_eq!(all(index.prefix("k")).len(), 1);
    assert_eq!(db.keyspace_names().unwrap(), ["default", "users", "index"]);
    // The same name gives the same keyspace.
    let again = db.keyspace("users", KeyspaceOptions::default()).unwrap();
    assert_eq!(again.get("k").unwrap().as_deref(), Some(&b"users"[..]));
    assert_eq!(db.stats().keyspaces.len(), 3);
    assert_eq!(index.stats().compaction_style, "tiered");

    // Half of it in tables, half only in the WAL.
    users.flush().unwrap();
    users.put("after-flush", "1").unwrap();
    index.put("after-flush", "2").unwrap();
    db.close().unwrap();

    let db = open(&mem, Options::default());
    assert_eq!(db.keyspace_names().unwrap(), ["default", "users", "index"]);
    let users = db.keyspace("users", KeyspaceOptions::default()).unwrap();
    let index = db.keyspace("index", KeyspaceOptions::default()).unwrap();
    assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"default"[..]));
    assert_eq!(users.get("k").unwrap().as_deref(), Some(&b"users"[..]));
    assert_eq!(
        users.get("after-flush").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        index.get("after-flush").unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(index.get("k").unwrap().as_deref(), Some(&b"index"[..]));
    assert_eq!(users.get("u2").unwrap(), None);
    assert_eq!(db.get("after-flush").unwrap(), None);
    db.close().unwrap();
}

#[test]
fn names_are_checked_and_the_default_keyspace_cannot_be_dropped() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default());
    for bad in ["", "a b", ".x", "ünï", &"n".repeat(300)] {
        assert!(
            matches!(
                db.keyspace(bad, KeyspaceOptions::default()),
                Err(Error::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        db.drop_keyspace("default"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.drop_keyspace("nope"),
        Err(Error::InvalidArgument(_))
    ));
    let bad_options = KeyspaceOptions::default().memtable_bytes(1);
    assert!(matches!(
        db.keyspace("x", bad_options),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        db.keyspace_names().unwrap(),
        ["default"],
        "a refused create leaves nothing"
    );
    // "default" is the default keyspace.
    let default = db.keyspace("default", KeyspaceOptions::default()).unwrap();
    default.put("a", "1").unwrap();
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn a_batch_across_keyspaces_is_atomic_and_one_snapshot_sees_all() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default());
    let a = db.keyspace("a", KeyspaceOptions::default()).unwrap();
    let b = db.keyspace("b", KeyspaceOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put_in(&a, "k", "1");
    batch.put_in(&b, "k", "2");
    batch.put("k", "0");
    db.write(batch).unwrap();
    let snapshot = db.snapshot();
    let mut batch = WriteBatch::new();
    batch.delete_in(&a, "k");
    batch.put_in(&b, "k", "3");
    db.write(batch).unwrap();
    assert_eq!(a.get("k").unwrap(), None);
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(snapshot.get("k").unwrap().as_deref(), Some(&b"0"[..]));
    // A batch naming a dropped keyspace writes nothing at all.
    let mut batch = WriteBatch::new();
    batch.put_in(&a, "x", "1");
    batch.put_in(&b, "x", "1");
    db.drop_keyspace("a").unwrap();
    assert!(matches!(db.write(batch), Err(Error::InvalidArgument(_))));
    assert_eq!(b.get("x").unwrap(), None);
}

#[test]
fn batches_across_keyspaces_are_all_or_nothing_after_a_crash() {
    for crash_after in [10u32, 57, 200] {
        let mem = MemFs::new();
        let options = Options::default().sync_mode(SyncMode::None);
        let db = open(&mem, options.clone());
        let ks: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| db.keyspace(n, KeyspaceOptions::default()).unwrap())
            .collect();
        for i in 0..crash_after {
            let mut batch = WriteBatch::new();
            for (j, k) in ks.iter().enumerate() {
                batch.put_in(k, format!("key{i:04}"), format!("{i}-{j}"));
            }
            batch.put(format!("key{i:04}"), format!("{i}-d"));
            // Every tenth batch synced: at least those survive.
            let sync = i % 10 == 9;
            db.write_with(batch, &WriteOptions { sync }).unwrap();
            if i == crash_after / 2 {
                ks[1].flush().unwrap();
            }
        }
        drop(ks);
        drop(db);
        mem.crash();
        let db = open(&mem, options);
        let ks: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| db.keyspace(n, KeyspaceOptions::default()).unwrap())
            .collect();
        let synced = crash_after / 10 * 10;
        let mut present = None;
        for i in 0..crash_after {
            let key = format!("key{i:04}");
            let values: Vec<Option<Bytes>> = ks
                .iter()
                .map(|k| k.get(&key).unwrap())
                .chain(std::iter::once(db.get(&key).unwrap()))
                .collect();
            let all = values.iter().all(Option::is_some);
            let none = values.iter().all(Option::is_none);
            assert!(all || none, "batch {i} torn after a crash: {values:?}");
            if i < synced {
                assert!(all, "synced batch {i} lost");
            }
            // A prefix of the history: no hole.
            match (present, all) {
                (Some(false), true) => panic!("batch {i} present after a missing one"),
                _ => present = Some(all),
            }
        }
        db.close().unwrap();
    }
}

#[test]
fn a_dropped_keyspace_is_gone_for_good_and_its_name_is_free() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default());
    let doomed = db.keyspace("doomed", KeyspaceOptions::default()).unwrap();
    for i in 0..100 {
        doomed.put(format!("k{i}"), "v").unwrap();
    }
    doomed.flush().unwrap();
    doomed.put("wal-only", "v").unwrap();
    let tables_before = db.stats().table_count();
    assert!(tables_before >= 1);
    db.drop_keyspace("doomed").unwrap();
    assert!(matches!(doomed.get("k1"), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        doomed.put("k1", "v"),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(db.keyspace_names().unwrap(), ["default"]);
    assert_eq!(
        db.stats().table_count(),
        tables_before - 1,
        "its table is gone"
    );
    let table_files = mem
        .file_names()
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".sst"))
        .count();
    assert_eq!(table_files, 0, "its files are deleted");
    // Re-created: a new, empty keyspace.
    let reborn = db.keyspace("doomed", KeyspaceOptions::default()).unwrap();
    assert_eq!(reborn.get("k1").unwrap(), None);
    reborn.put("new", "1").unwrap();
    db.close().unwrap();

    // After a reopen its WAL entries are not read into the new one.
    let db = open(&mem, Options::default());
    assert_eq!(db.keyspace_names().unwrap(), ["default", "doomed"]);
    let reborn = db.keyspace("doomed", KeyspaceOptions::default()).unwrap();
    assert_eq!(reborn.get("wal-only").unwrap(), None);
    assert_eq!(reborn.get("k1").unwrap(), None);
    assert_eq!(reborn.get("new").unwrap().as_deref(), Some(&b"1"[..]));
    db.close().unwrap();
}

#[test]
fn a_drop_is_durable_or_absent_across_a_crash() {
    let mem = MemFs::new();
    let options = Options::default().sync_mode(SyncMode::Always);
    let db = open(&mem, options.clone());
    let a = db.keyspace("a", KeyspaceOptions::default()).unwrap();
    a.put("k", "v").unwrap();
    db.drop_keyspace("a").unwrap();
    drop(a);
    drop(db);
    mem.crash();
    let db = open(&mem, options);
    assert_eq!(db.keyspace_names().unwrap(), ["default"]);
    let a = db.keyspace("a", KeyspaceOptions::default()).unwrap();
    assert_eq!(a.get("k").unwrap(), None);
}

#[test]
fn an_idle_keyspace_does_not_keep_the_wal_forever() {
    let mem = MemFs::new();
    let options = Options::default()
        .memtable_bytes(1 << 20)
        .max_total_wal_bytes(4 << 20);
    let db = open(&mem, options.clone());
    let idle = db.keyspace("idle", KeyspaceOptions::default()).unwrap();
    let busy = db.keyspace("busy", KeyspaceOptions::default()).unwrap();
    idle.put("once", "1").unwrap();
    let value = vec![7u8; 1000];
    for i in 0..40_000u32 {
        busy.put(i.to_be_bytes(), &value).unwrap();
    }
    db.wait_for_compactions().unwrap();
    let segments = wal_segments(&mem);
    // 40 MB went through the WAL in ~1 MiB memtables; without the limit
    // the idle keyspace's first write would keep every segment.
    assert!(segments <= 12, "{segments} WAL segments kept");
    assert_eq!(idle.get("once").unwrap().as_deref(), Some(&b"1"[..]));
    db.close().unwrap();
    let db = open(&mem, options);
    let idle = db.keyspace("idle", KeyspaceOptions::default()).unwrap();
    let busy = db.keyspace("busy", KeyspaceOptions::default()).unwrap();
    assert_eq!(idle.get("once").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        busy.get(39_999u32.to_be_bytes()).unwrap().as_deref(),
        Some(&value[..])
    );
}

/// A model test: random puts, deletes and cross-keyspace batches over 3
/// keyspaces with different options, flushes, compactions, drops and
/// re-creates, reopens and crashes, checked against one `BTreeMap` per
/// keyspace after every step.
#[test]
fn three_keyspaces_match_a_model() {
    let cases: u64 = std::env::var("KEVO_KEYSPACE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    for seed in 0..cases {
        run_model(seed);
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn run_model(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mem = MemFs::new();
    let options = Options::default()
        .memtable_bytes(64 << 10)
        .sync_mode(SyncMode::Always)
        .l0_compaction_trigger(2);
    let names = ["default", "small", "tiered"];
    let keyspace_options = |name: &str| match name {
        "small" => KeyspaceOptions::default()
            .memtable_bytes(64 << 10)
            .bloom_bits_per_key(4)
            .block_bytes(512),
        "tiered" => KeyspaceOptions::default().compaction_style(CompactionStyle::Tiered),
        _ => KeyspaceOptions::default(),
    };
    let mut db = open(&mem, options.clone());
    let mut model: BTreeMap<&str, BTreeMap<Vec<u8>, Vec<u8>>> =
        names.iter().map(|n| (*n, BTreeMap::new())).collect();
    let mut handles: Vec<_> = names
        .iter()
        .map(|n| db.keyspace(n, keyspace_options(n)).unwrap())
        .collect();
    for step in 0..300 {
        let which = rng.below(3) as usize;
        let key = format!("key{:03}", rng.below(200)).into_bytes();
        match rng.below(100) {
            0..=39 => {
                let value = format!("{seed}-{step}")
                    .repeat(1 + rng.below(40) as usize)
                    .into_bytes();
                handles[which].put(&key, &value).unwrap();
                model.get_mut(names[which]).unwrap().insert(key, value);
            }
            40..=54 => {
                handles[which].delete(&key).unwrap();
                model.get_mut(names[which]).unwrap().remove(&key);
            }
            55..=79 => {
                let mut batch = WriteBatch::new();
                for (i, handle) in handles.iter().enumerate() {
                    if rng.below(2) == 0 {
                        let value = format!("b{step}-{i}").into_bytes();
                        batch.put_in(handle, &key, &value);
                        model.get_mut(names[i]).unwrap().insert(key.clone(), value);
                    } else {
                        batch.delete_in(handle, &key);
                        model.get_mut(names[i]).unwrap().remove(&key);
                    }
                }
                db.write(batch).unwrap();
            }
            80..=84 => handles[which].flush().unwrap(),
            85..=87 => handles[which].compact_range::<&[u8], _>(..).unwrap(),
            88..=90 if which > 0 => {
                db.drop_keyspace(names[which]).unwrap();
                handles[which] = db
                    .keyspace(names[which], keyspace_options(names[which]))
                    .unwrap();
                model.get_mut(names[which]).unwrap().clear();
            }
            91..=95 => {
                drop(handles);
                db.close().unwrap();
                db = open(&mem, options.clone());
                handles = names
                    .iter()
                    .map(|n| db.keyspace(n, keyspace_options(n)).unwrap())
                    .collect();
            }
            96..=99 => {
                // Power loss: every write was synced, so none is lost.
                drop(handles);
                drop(db);
                mem.crash();
                db = open(&mem, options.clone());
                handles = names
                    .iter()
                    .map(|n| db.keyspace(n, keyspace_options(n)).unwrap())
                    .collect();
            }
            _ => {}
        }
        for (i, handle) in handles.iter().enumerate() {
            let expected = &model[names[i]];
            let got: Vec<(Vec<u8>, Vec<u8>)> = all(handle.range::<&[u8], _>(..))
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> = expected
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(got, want, "seed {seed} step {step}: keyspace {}", names[i]);
            let probe = format!("key{:03}", rng.below(200)).into_bytes();
            assert_eq!(
                handle.get(&probe).unwrap().map(|v| v.to_vec()),
                expected.get(&probe).cloned(),
                "seed {seed} step {step}: get in {}",
                names[i]
            );
        }
    }
    drop(handles);
    db.close().unwrap();
    let _ = Path::new(DIR);
}

#[test]
fn repair_refuses_a_database_with_keyspaces_and_changes_nothing() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default());
    let a = db.keyspace("a", KeyspaceOptions::default()).unwrap();
    a.put("k", "v").unwrap();
    a.flush().unwrap();
    db.put("d", "1").unwrap();
    drop(a);
    db.close().unwrap();
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = mem
        .file_names()
        .into_iter()
        .map(|p| {
            let bytes = mem.read_file(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect();
    let refused = kevo_engine::repair_with_fs(Arc::new(mem.clone()), DIR, &Options::default());
    match refused {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("keyspaces"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let after: Vec<(std::path::PathBuf, Vec<u8>)> = mem
        .file_names()
        .into_iter()
        .map(|p| {
            let bytes = mem.read_file(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect();
    assert!(before == after, "a refused repair changed files");
}

#[test]
fn transactions_span_keyspaces_and_conflict_per_keyspace() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default());
    let a = db.keyspace("a", KeyspaceOptions::default()).unwrap();
    let b = db.keyspace("b", KeyspaceOptions::default()).unwrap();
    a.put("k", "a0").unwrap();
    b.put("k", "b0").unwrap();

    // One transaction reads and writes both, atomically.
    let mut tx = db.begin();
    assert_eq!(tx.get_in(&a, "k").unwrap().as_deref(), Some(&b"a0"[..]));
    tx.put_in(&b, "k", "b1").unwrap();
    tx.put_in(&a, "new", "1").unwrap();
    tx.delete_in(&a, "k").unwrap();
    assert_eq!(
        tx.get_in(&b, "k").unwrap().as_deref(),
        Some(&b"b1"[..]),
        "its own write"
    );
    let scanned: Vec<Bytes> = tx
        .range_in::<&[u8], _>(&a, ..)
        .map(|kv| kv.map(|(k, _)| k))
        .collect::<kevo_engine::Result<_>>()
        .unwrap();
    assert_eq!(scanned, [Bytes::from_static(b"new")]);
    assert_eq!(
        b.get("k").unwrap().as_deref(),
        Some(&b"b0"[..]),
        "not before commit"
    );
    tx.commit().unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"b1"[..]));
    assert_eq!(a.get("k").unwrap(), None);
    assert_eq!(a.get("new").unwrap().as_deref(), Some(&b"1"[..]));

    // The same key in another keyspace is another key: no conflict.
    let mut tx = db.begin();
    tx.get_in(&a, "x").unwrap();
    tx.put_in(&a, "y", "1").unwrap();
    b.put("x", "other keyspace").unwrap();
    db.put("x", "default keyspace").unwrap();
    tx.commit().unwrap();

    // A write to a key read in that keyspace conflicts, naming it.
    let mut tx = db.begin();
    tx.get_in(&b, "x").unwrap();
    tx.put_in(&a, "z", "1").unwrap();
    b.put("x", "changed").unwrap();
    match tx.commit() {
        Err(Error::Conflict(conflict)) => {
            assert_eq!(conflict.key, Bytes::from_static(b"x"));
            assert_eq!(conflict.keyspace, b.id());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(a.get("z").unwrap(), None, "nothing of a conflicting commit");

    // A scan of one keyspace does not conflict with writes to another.
    let mut tx = db.begin();
    let _ = tx.range_in::<&[u8], _>(&a, ..).count();
    tx.put_in(&a, "w", "1").unwrap();
    b.put("anything", "1").unwrap();
    db.put("anything", "1").unwrap();
    tx.commit().unwrap();

    // Snapshots read every keyspace at one point.
    let snapshot = db.snapshot();
    a.put("w", "2").unwrap();
    b.put("x", "3").unwrap();
    assert_eq!(
        snapshot.get_in(&a, "w").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        snapshot.get_in(&b, "x").unwrap().as_deref(),
        Some(&b"changed"[..])
    );
    assert_eq!(snapshot.range_in::<&[u8], _>(&b, ..).count(), 3);
    assert_eq!(snapshot.prefix_in(&a, "n").count(), 1);
}

/// A copy of `tests/fixtures/format2-db` (written before keyspaces) in a
/// temporary directory.
fn format2_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format2-db");
    for entry in std::fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn check_format2_content(db: &Db) {
    assert_eq!(db.get("table-1").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(db.get("table-2").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(db.get("gone").unwrap(), None, "deleted in the WAL");
    assert_eq!(
        db.get("wal-1").unwrap().as_deref(),
        Some(&b"in the WAL"[..])
    );
    assert_eq!(
        db.get([0u8, 0xff]).unwrap().as_deref(),
        Some(&b"binary"[..])
    );
    assert_eq!(all(db.range::<&[u8], _>(..)).len(), 4);
}

#[test]
fn a_database_written_before_keyspaces_opens_unchanged() {
    // Read-only first: nothing is rewritten.
    let dir = format2_copy();
    let ro = Db::open_read_only(dir.path()).unwrap();
    check_format2_content(&ro);
    assert_eq!(ro.keyspace_names().unwrap(), ["default"]);
    ro.close().unwrap();

    // Then for writing: its data is the default keyspace, and it takes
    // keyspaces from then on.
    let db = Db::open(dir.path()).unwrap();
    check_format2_content(&db);
    assert_eq!(db.keyspace_names().unwrap(), ["default"]);
    let added = db.keyspace("added", KeyspaceOptions::default()).unwrap();
    added.put("k", "v").unwrap();
    db.put("after", "1").unwrap();
    db.close().unwrap();
    let db = Db::open(dir.path()).unwrap();
    check_format2_content_after(&db);
    let added = db.keyspace("added", KeyspaceOptions::default()).unwrap();
    assert_eq!(added.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    db.flush().unwrap();
    added.flush().unwrap();
    db.close().unwrap();
    let db = Db::open(dir.path()).unwrap();
    check_format2_content_after(&db);
    db.close().unwrap();
}

fn check_format2_content_after(db: &Db) {
    assert_eq!(db.get("table-1").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(
        db.get("wal-1").unwrap().as_deref(),
        Some(&b"in the WAL"[..])
    );
    assert_eq!(db.get("gone").unwrap(), None);
    assert_eq!(db.get("after").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get("k").unwrap(), None, "the other keyspace's key");
}

#[test]
fn many_keyspaces_share_one_write_buffer() {
    let mem = MemFs::new();
    let options = Options::default()
        .memtable_bytes(1 << 20)
        .write_buffer_bytes(2 << 20);
    let db = open(&mem, options);
    let keyspaces: Vec<_> = (0..8)
        .map(|i| {
            db.keyspace(&format!("ks{i}"), KeyspaceOptions::default())
                .unwrap()
        })
        .collect();
    let value = vec![1u8; 200];
    for i in 0..40_000u32 {
        keyspaces[i as usize % 8]
            .put(i.to_be_bytes(), &value)
            .unwrap();
        if i % 1000 == 999 {
            let held: u64 = db.stats().keyspaces.iter().map(|k| k.memtable_bytes).sum();
            // The limit, give or take the group in flight and the lag of
            // one group per keyspace in what the commit path has seen.
            assert!(
                held <= (2 << 20) + (256 << 10),
                "{held} bytes in active memtables"
            );
        }
    }
    db.wait_for_compactions().unwrap();
    for (i, k) in keyspaces.iter().enumerate() {
        assert_eq!(
            k.get((39_992 + i as u32).to_be_bytes()).unwrap().as_deref(),
            Some(&value[..])
        );
    }
    // Written evenly, the keyspaces fill up together and switch together:
    // one WAL segment for several flushes, not one per small memtable.
    let stats = db.stats();
    assert!(
        stats.flushes >= 3 * stats.wal_segments_started,
        "{} flushes, {} WAL segments",
        stats.flushes,
        stats.wal_segments_started
    );
}

#[test]
fn a_hot_keyspace_switches_alone_when_the_write_buffer_is_full() {
    let mem = MemFs::new();
    let options = Options::default()
        .memtable_bytes(1 << 20)
        .write_buffer_bytes(2 << 20);
    let db = open(&mem, options);
    let hot = db.keyspace("hot", KeyspaceOptions::default()).unwrap();
    let cold = db.keyspace("cold", KeyspaceOptions::default()).unwrap();
    let value = vec![2u8; 200];
    // The cold keyspace holds a little, far less than half the hot one.
    for i in 0..100u32 {
        cold.put(i.to_be_bytes(), &value).unwrap();
    }
    // The default keyspace's memtable holds up to 1 MiB: the write buffer
    // (2 MiB) is reached through the hot keyspace with it.
    for i in 0..4_000u32 {
        db.put(i.to_be_bytes(), &value).unwrap();
    }
    for i in 0..20_000u32 {
        hot.put(i.to_be_bytes(), &value).unwrap();
    }
    db.wait_for_compactions().unwrap();
    let stats = db.stats();
    let cold_stats = stats.keyspaces.iter().find(|k| k.name == "cold").unwrap();
    assert!(
        cold_stats.memtable_bytes > 0,
        "the cold memtable was switched"
    );
    assert_eq!(cold_stats.table_count(), 0);
    let hot_stats = stats.keyspaces.iter().find(|k| k.name == "hot").unwrap();
    assert!(hot_stats.table_count() > 0);
    assert_eq!(
        cold.get(99u32.to_be_bytes()).unwrap().as_deref(),
        Some(&value[..])
    );
}

/// Every file under the database: name and contents.
fn image(mem: &MemFs) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    mem.file_names()
        .into_iter()
        .filter(|p| p.starts_with(DIR))
        .map(|p| {
            let bytes = mem.read_file(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect()
}

#[test]
fn keyspace_handles_return_closed_after_close() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default());
    let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
    ks.put("k", "v").unwrap();
    let mut started = ks.range::<&[u8], _>(..);
    assert!(started.next().unwrap().is_ok());
    let snapshot = db.snapshot();
    let mut tx = db.begin();
    tx.put_in(&ks, "t", "1").unwrap();
    db.close().unwrap();
    assert!(matches!(ks.get("k"), Err(Error::Closed)));
    assert!(matches!(ks.put("k", "v"), Err(Error::Closed)));
    assert!(matches!(ks.flush(), Err(Error::Closed)));
    assert!(matches!(started.next(), Some(Err(Error::Closed))));
    assert!(matches!(
        ks.range::<&[u8], _>(..).next(),
        Some(Err(Error::Closed))
    ));
    assert!(matches!(snapshot.get_in(&ks, "k"), Err(Error::Closed)));
    assert!(matches!(tx.commit(), Err(Error::Closed)));
    assert!(matches!(
        db.keyspace("other", KeyspaceOptions::default()),
        Err(Error::Closed)
    ));
    assert!(matches!(db.drop_keyspace("ks"), Err(Error::Closed)));
    // Nothing after the close reached the disk.
    let db = open(&mem, Options::default());
    let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
    assert_eq!(ks.get("t").unwrap(), None);
    assert_eq!(db.keyspace_names().unwrap(), ["default", "ks"]);
}

#[test]
fn a_missing_keyspace_table_is_refused_and_nothing_changes() {
    let mem = MemFs::new();
    let db = open(&mem, Options::default());
    let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
    ks.put("k", "v").unwrap();
    ks.flush().unwrap();
    drop(ks);
    db.close().unwrap();
    let table = mem
        .file_names()
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".sst"))
        .unwrap();
    kevo_core::Fs::remove_file(&mem, &table).unwrap();
    let before = image(&mem);
    let refused = Db::open_with_fs(Arc::new(mem.clone()), DIR, Options::default());
    match refused {
        Err(e) => assert!(e.is_corruption() && e.to_string().contains(".sst"), "{e}"),
        Ok(_) => panic!("opened with a keyspace's table missing"),
    }
    assert!(image(&mem) == before, "a refused open changed files");
}

#[test]
fn a_full_disk_during_a_create_or_drop_loses_nothing() {
    use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger};
    for drop_it in [false, true] {
        let mem = MemFs::new();
        let fs = Arc::new(FaultFs::new(Arc::new(mem.clone())));
        let options = Options::default().sync_mode(SyncMode::Always);
        let db = Db::open_with_fs(fs.clone(), DIR, options.clone()).unwrap();
        db.put("acked", "1").unwrap();
        let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
        ks.put("k", "v").unwrap();
        fs.add_rule(
            FaultRule::new(FaultOp::Write, FaultTrigger::Nth(1), FaultKind::Enospc)
                .on_path_containing("MANIFEST"),
        );
        let failed = if drop_it {
            db.drop_keyspace("ks").is_err()
        } else {
            db.keyspace("new", KeyspaceOptions::default()).is_err()
        };
        assert!(failed, "the manifest write should have failed");
        drop(ks);
        drop(db);
        mem.crash();
        let db = open(&mem, options);
        assert_eq!(db.get("acked").unwrap().as_deref(), Some(&b"1"[..]));
        let names = db.keyspace_names().unwrap();
        if drop_it {
            // Either the whole keyspace or none of it.
            if names.contains(&"ks".to_string()) {
                let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
                assert_eq!(ks.get("k").unwrap().as_deref(), Some(&b"v"[..]));
            }
        } else {
            assert_eq!(names, ["default", "ks"], "the failed create left nothing");
            let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
            assert_eq!(ks.get("k").unwrap().as_deref(), Some(&b"v"[..]));
        }
        db.close().unwrap();
    }
}
