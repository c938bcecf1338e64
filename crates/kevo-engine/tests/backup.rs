//! Incremental backups: each restore equals the database at its backup;
//! a second backup copies only what changed; `verify` catches any flipped
//! byte; `purge_old` keeps every file a kept backup needs; a crash at any
//! step of a backup leaves the earlier ones intact and no half backup
//! listed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, Fs, MemFs};
use kevo_engine::{Backup, BackupId, Db, Error, KeyspaceOptions, Options, SyncMode};

type Model = BTreeMap<(bool, String), String>;

fn key(i: u64) -> String {
    format!("key{i:06}")
}

/// Puts `keys` (value tagged with `round`) into the default keyspace, and
/// every tenth into keyspace `ks` as well, recording them in `model`.
fn write(
    db: &Db,
    ks: &kevo_engine::Keyspace,
    keys: impl Iterator<Item = u64>,
    round: u32,
    model: &mut Model,
) {
    for i in keys {
        let value = format!("v{round}-{i}-{}", "x".repeat(40));
        db.put(key(i), &value).unwrap();
        model.insert((false, key(i)), value.clone());
        if i % 10 == 0 {
            ks.put(key(i), &value).unwrap();
            model.insert((true, key(i)), value);
        }
    }
}

/// What `db` holds, in the model's shape.
fn contents(db: &Db) -> Model {
    let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
    let mut out = Model::new();
    for (k, v) in db.range::<&[u8], _>(..).map(Result::unwrap) {
        out.insert(
            (false, String::from_utf8(k.to_vec()).unwrap()),
            String::from_utf8(v.to_vec()).unwrap(),
        );
    }
    for (k, v) in ks.range::<&[u8], _>(..).map(Result::unwrap) {
        out.insert(
            (true, String::from_utf8(k.to_vec()).unwrap()),
            String::from_utf8(v.to_vec()).unwrap(),
        );
    }
    out
}

fn options() -> Options {
    Options::default().memtable_bytes(256 << 10)
}

#[test]
fn restores_equal_the_database_at_each_incremental_backup() {
    let dir = tempfile::tempdir().unwrap();
    // No compaction between the first two backups (each flushes one
    // table): what the second copies is what changed, not a rewrite.
    let db = Db::open_with(dir.path().join("db"), options().l0_compaction_trigger(8)).unwrap();
    let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
    let backup = Backup::open(dir.path().join("backups")).unwrap();
    let mut model = Model::new();
    let mut taken = Vec::new();
    write(&db, &ks, 0..20_000, 0, &mut model);
    db.flush().unwrap();
    ks.flush().unwrap();
    db.compact_range::<&[u8], _>(..).unwrap();
    db.wait_for_compactions().unwrap();
    for round in 1..=4u32 {
        let id = backup.create(&db).unwrap();
        taken.push((id, model.clone()));
        // 1% of the keys change, some deleted.
        write(
            &db,
            &ks,
            (0..200).map(|i| i * 97 % 20_000 + u64::from(round)),
            round,
            &mut model,
        );
        db.delete(key(u64::from(round) * 1000)).unwrap();
        model.remove(&(false, key(u64::from(round) * 1000)));
    }
    let list = backup.list().unwrap();
    assert_eq!(
        list.iter().map(|b| b.id).collect::<Vec<_>>(),
        taken.iter().map(|t| t.0).collect::<Vec<_>>()
    );
    // Incremental: later backups reuse the tables; after 1% of the keys
    // changed, the next one copies under a tenth of the first's bytes.
    let first = &list[0];
    assert!(
        first.bytes_reused == 0 && first.bytes_copied > 0,
        "{first:?}"
    );
    assert!(
        list[1].bytes_copied * 10 < first.bytes_copied,
        "the second backup copied {} bytes, the first {}",
        list[1].bytes_copied,
        first.bytes_copied
    );
    // (Later ones may reuse nothing: a compaction can rewrite every table
    // in between.)
    assert!(list[1].bytes_reused > 0, "{:?}", list[1]);
    for (id, want) in &taken {
        backup.verify(*id).unwrap();
        let target = dir.path().join(format!("restored-{id}"));
        backup.restore(*id, &target).unwrap();
        let restored = Db::open_with(&target, options()).unwrap();
        assert_eq!(&contents(&restored), want, "backup {id}");
        restored.close().unwrap();
        // A restore never lands on an existing directory.
        assert!(matches!(
            backup.restore(*id, &target),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        backup.verify(BackupId(99)),
        Err(Error::InvalidArgument(_))
    ));
    db.close().unwrap();
}

#[test]
fn verify_catches_a_flipped_byte_in_any_file_and_restore_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path().join("db"), options()).unwrap();
    let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
    let mut model = Model::new();
    write(&db, &ks, 0..3000, 0, &mut model);
    db.flush().unwrap();
    write(&db, &ks, 0..100, 1, &mut model);
    let backup = Backup::open(dir.path().join("backups")).unwrap();
    let id = backup.create(&db).unwrap();
    db.close().unwrap();
    let info = backup.info(id).unwrap();
    assert!(
        info.files.len() >= 4,
        "tables, WAL, manifest, CURRENT: {info:?}"
    );
    for (n, file) in info.files.iter().enumerate() {
        let path = dir.path().join("backups").join(&file.stored);
        let original = std::fs::read(&path).unwrap();
        let mut damaged = original.clone();
        let at = (n * 7919) % damaged.len();
        damaged[at] ^= 0x20;
        std::fs::write(&path, &damaged).unwrap();
        match backup.verify(id) {
            Err(Error::Corruption { file: named, .. }) => assert_eq!(named, path),
            other => panic!("{}: {other:?}", file.stored),
        }
        let target = dir.path().join("restored");
        assert!(matches!(
            backup.restore(id, &target),
            Err(Error::Corruption { .. })
        ));
        assert!(!target.exists(), "a failed restore leaves nothing");
        std::fs::write(&path, &original).unwrap();
    }
    backup.verify(id).unwrap();
    // A missing file, and damaged metadata.
    let first = dir.path().join("backups").join(&info.files[0].stored);
    let saved = std::fs::read(&first).unwrap();
    std::fs::remove_file(&first).unwrap();
    assert!(matches!(backup.verify(id), Err(Error::Corruption { .. })));
    std::fs::write(&first, saved).unwrap();
    let meta = dir.path().join("backups/meta").join(id.to_string());
    let mut bytes = std::fs::read(&meta).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&meta, &bytes).unwrap();
    match backup.list() {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, meta),
        other => panic!("{other:?}"),
    }
    // With a backup's metadata unreadable, nothing is collected.
    assert!(backup.purge_old(1).is_err());
    assert!(first.exists());
}

#[test]
fn purge_old_keeps_every_file_a_kept_backup_needs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path().join("db"), options()).unwrap();
    let ks = db.keyspace("ks", KeyspaceOptions::default()).unwrap();
    let backup = Backup::open(dir.path().join("backups")).unwrap();
    let mut model = Model::new();
    let mut taken = Vec::new();
    for round in 0..4u32 {
        write(
            &db,
            &ks,
            (0..4000).map(|i| i + u64::from(round) * 1500),
            round,
            &mut model,
        );
        db.flush().unwrap();
        db.compact_range::<&[u8], _>(..).unwrap();
        taken.push((backup.create(&db).unwrap(), model.clone()));
    }
    db.close().unwrap();
    let stored = |b: &Backup| -> usize {
        ["tables", "private"]
            .iter()
            .map(|d| std::fs::read_dir(b.dir().join(d)).unwrap().count())
            .sum()
    };
    let before = stored(&backup);
    let gone = backup.purge_old(2).unwrap();
    assert_eq!(gone, vec![taken[0].0, taken[1].0]);
    assert!(stored(&backup) < before, "nothing removed");
    assert_eq!(backup.list().unwrap().len(), 2);
    for (id, want) in &taken[2..] {
        backup.verify(*id).unwrap();
        let target = dir.path().join(format!("r{id}"));
        backup.restore(*id, &target).unwrap();
        let db = Db::open_with(&target, options()).unwrap();
        assert_eq!(&contents(&db), want);
        db.close().unwrap();
    }
    // Exactly the files the kept backups name remain.
    let named: usize = backup
        .list()
        .unwrap()
        .iter()
        .map(|b| b.files.len())
        .sum::<usize>();
    let tables_named: std::collections::BTreeSet<String> = backup
        .list()
        .unwrap()
        .iter()
        .flat_map(|b| b.files.iter().map(|f| f.stored.clone()))
        .filter(|s| s.starts_with("tables/"))
        .collect();
    let tables_stored = std::fs::read_dir(backup.dir().join("tables"))
        .unwrap()
        .count();
    assert_eq!(tables_stored, tables_named.len(), "{named} files named");
    backup.delete(taken[2].0).unwrap();
    assert!(matches!(
        backup.delete(taken[2].0),
        Err(Error::InvalidArgument(_))
    ));
    backup.verify(taken[3].0).unwrap();
    // One `Backup` holds a directory at a time.
    assert!(matches!(
        Backup::open(backup.dir()),
        Err(Error::Busy { .. })
    ));
}

/// Dead at the n-th operation of one kind under the backup directory
/// (nothing after it happens), then a crash: the earlier backup is intact,
/// nothing half-made is listed, and the next backup works.
#[test]
fn a_crash_at_any_step_of_a_backup_leaves_the_earlier_ones_intact() {
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
            let mut model = Model::new();
            write(&db, &ks, 0..600, 0, &mut model);
            db.flush().unwrap();
            let first_model = model.clone();
            let first = {
                let backup = Backup::open_with_fs(fs.clone(), "/bk").unwrap();
                backup.create(&db).unwrap()
            };
            write(&db, &ks, 300..900, 1, &mut model);
            fs.add_rule(
                FaultRule::new(op, FaultTrigger::FromNth(n), FaultKind::Eio)
                    .on_path_containing("/bk"),
            );
            fs.add_rule(
                FaultRule::new(FaultOp::Remove, FaultTrigger::Always, FaultKind::Eio)
                    .on_path_containing("/bk"),
            );
            let failed = {
                let backup = Backup::open_with_fs(fs.clone(), "/bk").unwrap();
                backup.create(&db).is_err()
            };
            drop(db);
            mem.crash();
            fs.clear_rules();
            let backup = Backup::open_with_fs(mem.clone(), "/bk").unwrap();
            let list = backup.list().unwrap();
            assert!(
                list.len() == 1 || (!failed && list.len() == 2),
                "{op:?} {n}: {list:?}"
            );
            assert!(
                list.len() == 2 || failed,
                "{op:?} {n}: a backup that succeeded is lost"
            );
            backup.verify(first).unwrap();
            backup.restore(first, "/restored").unwrap();
            let restored = Db::open_with_fs(mem.clone(), "/restored", options()).unwrap();
            assert_eq!(contents(&restored), first_model, "{op:?} {n}");
            restored.close().unwrap();
            mem.remove_dir_all(Path::new("/restored")).unwrap();
            // The database and the backups go on.
            let db = Db::open_with_fs(mem.clone(), "/db", options()).unwrap();
            assert_eq!(contents(&db), model, "{op:?} {n}");
            let id = backup.create(&db).unwrap();
            backup.verify(id).unwrap();
            backup.purge_old(1).unwrap();
            backup.verify(id).unwrap();
            db.close().unwrap();
            if !failed {
                break;
            }
            steps += 1;
        }
    }
    assert!(steps > 10, "only {steps} failure points");
}
