//! Keyspaces: creating and dropping them, edits for one keyspace, their log
//! numbers, their tables' lifecycle, and their survival through reopens,
//! manifest rolls, `recover` + `create`, I/O failures and crashes; and
//! manifests written before keyspaces, which hold only the default one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{dir, keyspaces_state, recovered_keyspaces_state, table};
use kevo_core::{
    DEFAULT_KEYSPACE, DEFAULT_KEYSPACE_NAME, Error, FaultFs, FaultKind, FaultOp, FaultRule,
    FaultTrigger, Fs, KeyspaceId, MemFs,
};
use kevo_manifest::{
    KeyspaceInfo, ManifestOptions, RecoveredKeyspace, RecoveredManifest, VersionEdit, VersionSet,
};

fn options(rewrite_bytes: u64) -> ManifestOptions {
    ManifestOptions {
        rewrite_bytes,
        create_if_missing: true,
    }
}

fn open(mem: &MemFs) -> VersionSet {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    VersionSet::open(fs, dir(), options(8 << 20)).unwrap().0
}

/// Adds a table over `lo..=hi` to level 0 of `keyspace`.
fn add(set: &VersionSet, keyspace: KeyspaceId, lo: &[u8], hi: &[u8]) -> u64 {
    let number = set.reserve_file_number().unwrap();
    set.log_and_apply(VersionEdit {
        keyspace,
        added: vec![(0, table(number, lo, hi, (1, 2)))],
        ..VersionEdit::default()
    })
    .unwrap();
    number
}

fn info(id: KeyspaceId, name: &str, log_number: u64) -> KeyspaceInfo {
    KeyspaceInfo {
        id,
        name: name.to_string(),
        log_number,
    }
}

fn invalid_argument<T: std::fmt::Debug>(result: kevo_core::Result<T>, what: &str) {
    match result {
        Err(Error::InvalidArgument(reason)) => {
            assert!(reason.contains(what), "{reason:?} does not say {what:?}");
        }
        other => panic!("expected InvalidArgument ({what}), got {other:?}"),
    }
}

#[test]
fn a_new_database_has_only_the_default_keyspace() {
    let set = open(&MemFs::new());
    assert_eq!(set.keyspaces(), [info(0, DEFAULT_KEYSPACE_NAME, 0)]);
    assert!(Arc::ptr_eq(
        &set.current(),
        &set.current_in(DEFAULT_KEYSPACE).unwrap()
    ));
    assert!(set.current_in(1).is_none());
    assert_eq!(set.keyspace_log_number(1), None);
    assert_eq!(set.next_keyspace_id(), 1);
}

#[test]
fn created_keyspaces_get_fresh_ids_and_survive_a_reopen() {
    let mem = MemFs::new();
    let set = open(&mem);
    let edits = set.stats().edits;
    assert_eq!(set.create_keyspace("index", 3).unwrap(), 1);
    assert_eq!(set.create_keyspace("raft-log", 4).unwrap(), 2);
    // One synced edit each.
    assert_eq!(set.stats().edits, edits + 2);
    assert_eq!(
        set.keyspaces(),
        [
            info(0, DEFAULT_KEYSPACE_NAME, 0),
            info(1, "index", 3),
            info(2, "raft-log", 4)
        ]
    );
    assert_eq!(set.current_in(1).unwrap().table_count(), 0);
    let a = add(&set, 1, b"a", b"c");
    let b = add(&set, 2, b"a", b"c");
    let expected = keyspaces_state(&set);
    drop(set);
    mem.crash();
    let set = open(&mem);
    assert_eq!(keyspaces_state(&set), expected);
    assert_eq!(set.current_in(1).unwrap().level(0)[0].number, a);
    assert_eq!(set.current_in(2).unwrap().level(0)[0].number, b);
    assert_eq!(set.current().table_count(), 0);
    assert_eq!(set.next_keyspace_id(), 3);
    assert!(set.new_file_number() > b);
}

#[test]
fn keyspace_names_are_validated_and_unique() {
    let set = open(&MemFs::new());
    let edits = set.stats().edits;
    for bad in ["", ".hidden", "a b", "a/b", "ünï", &"k".repeat(256)] {
        invalid_argument(set.create_keyspace(bad, 0), "keyspace name");
    }
    invalid_argument(set.create_keyspace("default", 0), "in use by keyspace 0");
    set.create_keyspace("index", 0).unwrap();
    invalid_argument(set.create_keyspace("index", 0), "in use by keyspace 1");
    assert_eq!(
        set.stats().edits,
        edits + 1,
        "a refused create wrote an edit"
    );
    assert_eq!(set.next_keyspace_id(), 2);
}

#[test]
fn the_default_keyspace_cannot_be_dropped_and_unknown_ids_are_refused() {
    let set = open(&MemFs::new());
    let edits = set.stats().edits;
    invalid_argument(set.drop_keyspace(DEFAULT_KEYSPACE), "cannot be dropped");
    invalid_argument(set.drop_keyspace(1), "does not exist");
    invalid_argument(set.drop_keyspace(KeyspaceId::MAX), "does not exist");
    let id = set.create_keyspace("index", 0).unwrap();
    set.drop_keyspace(id).unwrap();
    invalid_argument(set.drop_keyspace(id), "does not exist");
    assert_eq!(set.stats().edits, edits + 2);
}

#[test]
fn a_dropped_keyspace_id_is_never_reused_across_reopens_and_rolls() {
    for rewrite_bytes in [1, 8 << 20] {
        let mem = MemFs::new();
        let fs: Arc<dyn Fs> = Arc::new(mem.clone());
        let reopen = || {
            VersionSet::open(fs.clone(), dir(), options(rewrite_bytes))
                .unwrap()
                .0
        };
        let set = reopen();
        let first = set.create_keyspace("index", 0).unwrap();
        let second = set.create_keyspace("other", 0).unwrap();
        set.drop_keyspace(second).unwrap();
        set.drop_keyspace(first).unwrap();
        // Only the default keyspace is left; the counter is still past both.
        assert_eq!(set.keyspaces(), [info(0, DEFAULT_KEYSPACE_NAME, 0)]);
        assert_eq!(set.next_keyspace_id(), 3);
        for _ in 0..4 {
            set.log_and_apply(VersionEdit::default()).unwrap();
        }
        if rewrite_bytes == 1 {
            assert!(set.stats().rewrites >= 1, "{:?}", set.stats());
        }
        drop(set);
        let set = reopen();
        assert_eq!(set.next_keyspace_id(), 3);
        // The same name again gets a new id.
        assert_eq!(set.create_keyspace("index", 0).unwrap(), 3);
        drop(set);
        mem.crash();
        let set = reopen();
        assert_eq!(set.next_keyspace_id(), 4);
        assert_eq!(
            set.keyspaces(),
            [info(0, DEFAULT_KEYSPACE_NAME, 0), info(3, "index", 0)]
        );
    }
}

#[test]
fn edits_for_a_missing_keyspace_are_refused_and_write_nothing() {
    let set = open(&MemFs::new());
    let id = set.create_keyspace("index", 0).unwrap();
    let edit = |keyspace| VersionEdit {
        keyspace,
        added: vec![(0, table(set.new_file_number(), b"a", b"b", (1, 1)))],
        ..VersionEdit::default()
    };
    // A compaction computed before its keyspace was dropped.
    let stale = edit(id);
    set.drop_keyspace(id).unwrap();
    let edits = set.stats().edits;
    let refused = set.try_log_and_apply(stale).unwrap().unwrap_err();
    assert!(refused.reason.contains("does not exist"), "{refused:?}");
    invalid_argument(set.log_and_apply(edit(id)), "does not exist");
    invalid_argument(set.log_and_apply(edit(7)), "keyspace 7");
    assert_eq!(set.stats().edits, edits);
    assert!(!set.is_poisoned());
    set.log_and_apply(edit(DEFAULT_KEYSPACE)).unwrap();
}

#[test]
fn log_and_apply_refuses_creates_and_drops() {
    let set = open(&MemFs::new());
    let id = set.create_keyspace("index", 0).unwrap();
    let edits = set.stats().edits;
    let create = VersionEdit {
        keyspace: 5,
        keyspace_created: Some("other".to_string()),
        ..VersionEdit::default()
    };
    let drop_it = VersionEdit {
        keyspace: id,
        keyspace_dropped: true,
        ..VersionEdit::default()
    };
    for edit in [create, drop_it] {
        invalid_argument(set.log_and_apply(edit.clone()), "create_keyspace");
        invalid_argument(set.try_log_and_apply(edit), "create_keyspace");
    }
    assert_eq!(set.stats().edits, edits);
    assert!(set.current_in(id).is_some());
}

#[test]
fn each_edit_changes_only_its_own_keyspace() {
    let set = open(&MemFs::new());
    let id = set.create_keyspace("index", 0).unwrap();
    // The same key range in two keyspaces: independent levels.
    let a = add(&set, DEFAULT_KEYSPACE, b"a", b"z");
    let b = add(&set, id, b"a", b"z");
    let moved = set
        .log_and_apply(VersionEdit {
            keyspace: id,
            removed: vec![(0, b)],
            added: vec![(1, table(b, b"a", b"z", (1, 2)))],
            ..VersionEdit::default()
        })
        .unwrap();
    assert!(Arc::ptr_eq(&moved, &set.current_in(id).unwrap()));
    assert_eq!(moved.level(1)[0].number, b);
    assert_eq!(set.current().level(0)[0].number, a);
    // Removing a table from the wrong keyspace does not apply.
    invalid_argument(
        set.log_and_apply(VersionEdit {
            removed: vec![(1, b)],
            ..VersionEdit::default()
        }),
        "not in level 1",
    );
    // A table number is in at most one keyspace.
    invalid_argument(
        set.log_and_apply(VersionEdit {
            keyspace: id,
            added: vec![(2, table(a, b"a", b"b", (1, 1)))],
            ..VersionEdit::default()
        }),
        "keyspace 0 holds it",
    );
    let numbers: BTreeSet<u64> = [a, b].into();
    assert_eq!(set.live_table_numbers(), numbers);
}

#[test]
fn keyspace_log_numbers_never_decrease_and_the_default_follows_the_global_one() {
    let mem = MemFs::new();
    let set = open(&mem);
    let id = set.create_keyspace("index", 5).unwrap();
    let log = |keyspace, log_number, keyspace_log_number| {
        set.log_and_apply(VersionEdit {
            keyspace,
            log_number,
            keyspace_log_number,
            ..VersionEdit::default()
        })
        .unwrap();
    };
    // Today's engine: edits for the default keyspace with the global one.
    log(DEFAULT_KEYSPACE, Some(3), None);
    assert_eq!(set.keyspace_log_number(DEFAULT_KEYSPACE), Some(3));
    assert_eq!(set.log_number(), 3);
    log(id, None, Some(8));
    log(id, None, Some(6));
    assert_eq!(set.keyspace_log_number(id), Some(8));
    // A keyspace's edit moves the global log number only.
    log(id, Some(4), None);
    assert_eq!(set.log_number(), 4);
    assert_eq!(set.keyspace_log_number(DEFAULT_KEYSPACE), Some(3));
    assert_eq!(set.keyspace_log_number(id), Some(8));
    // The default follows the global log number as the edit leaves it,
    // even when the edit's own value is lower (found by the model test).
    log(DEFAULT_KEYSPACE, Some(1), None);
    assert_eq!(set.log_number(), 4);
    assert_eq!(set.keyspace_log_number(DEFAULT_KEYSPACE), Some(4));
    // With an explicit keyspace log number the default does not follow.
    log(DEFAULT_KEYSPACE, Some(5), Some(9));
    log(DEFAULT_KEYSPACE, Some(6), None);
    assert_eq!(set.keyspace_log_number(DEFAULT_KEYSPACE), Some(9));
    assert_eq!(set.log_number(), 6);
    log(DEFAULT_KEYSPACE, Some(2), Some(1));
    assert_eq!(set.keyspace_log_number(DEFAULT_KEYSPACE), Some(9));
    assert_eq!(set.log_number(), 6);
    // A created keyspace without a log number takes the global one.
    let state = keyspaces_state(&set);
    drop(set);
    let set = open(&mem);
    assert_eq!(keyspaces_state(&set), state);
    let mut recovered = VersionSet::recover(&mem, dir()).unwrap().unwrap();
    recovered
        .apply_edit(&VersionEdit {
            keyspace: 7,
            keyspace_created: Some("late".to_string()),
            ..VersionEdit::default()
        })
        .unwrap();
    assert_eq!(recovered.keyspaces[&7].log_number, 6);
    assert_eq!(recovered.default_log_number, 9);
}

#[test]
fn dropped_keyspace_tables_become_obsolete_once_unreferenced() {
    let set = open(&MemFs::new());
    let id = set.create_keyspace("index", 0).unwrap();
    let kept = add(&set, DEFAULT_KEYSPACE, b"a", b"b");
    let a = add(&set, id, b"a", b"b");
    let b = add(&set, id, b"c", b"d");
    let reader = set.current_in(id).unwrap();
    set.drop_keyspace(id).unwrap();
    assert!(set.current_in(id).is_none());
    assert_eq!(set.take_obsolete_tables(), Vec::<u64>::new());
    assert_eq!(set.live_table_numbers(), BTreeSet::from([kept, a, b]));
    drop(reader);
    assert_eq!(set.live_table_numbers(), BTreeSet::from([kept]));
    assert_eq!(set.take_obsolete_tables(), vec![a, b]);
    assert_eq!(set.take_obsolete_tables(), Vec::<u64>::new());
    // The name is free again, under a new id.
    assert_eq!(set.create_keyspace("index", 0).unwrap(), id + 1);
}

#[test]
fn recover_and_create_carry_every_keyspace() {
    let mem = MemFs::new();
    let set = open(&mem);
    let id = set.create_keyspace("index", 2).unwrap();
    let gone = set.create_keyspace("gone", 2).unwrap();
    let t = add(&set, id, b"a", b"k");
    add(&set, DEFAULT_KEYSPACE, b"a", b"k");
    set.drop_keyspace(gone).unwrap();
    let expected = keyspaces_state(&set);
    drop(set);

    let state = VersionSet::recover(&mem, dir()).unwrap().unwrap();
    assert_eq!(recovered_keyspaces_state(&state), expected);
    assert_eq!(state.keyspaces.len(), 1);
    assert_eq!(state.keyspaces[&id].name, "index");
    assert_eq!(state.keyspaces[&id].version.level(0)[0].number, t);
    assert_eq!(state.next_keyspace_id, 3);

    // A state built in memory (as recovery and repair do), then a fresh
    // manifest from it.
    let mut state = state;
    let late = 9;
    state
        .apply_edit(&VersionEdit {
            keyspace: late,
            keyspace_created: Some("late".to_string()),
            keyspace_log_number: Some(4),
            ..VersionEdit::default()
        })
        .unwrap();
    let before = recovered_keyspaces_state(&state);
    let err = state
        .apply_edit(&VersionEdit {
            keyspace: gone,
            keyspace_created: Some("again".to_string()),
            ..VersionEdit::default()
        })
        .unwrap_err();
    assert!(err.contains("handed out before"), "{err}");
    assert_eq!(
        recovered_keyspaces_state(&state),
        before,
        "a refused edit changed the state"
    );
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let set = VersionSet::create(fs, dir(), state, options(8 << 20)).unwrap();
    assert_eq!(keyspaces_state(&set), before);
    assert_eq!(set.next_keyspace_id(), late + 1);
    drop(set);
    let set = open(&mem);
    assert_eq!(keyspaces_state(&set), before);
}

#[test]
fn create_refuses_an_impossible_recovered_state() {
    let mem = MemFs::new();
    mem.create_dir_all(dir()).unwrap();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let named = |name: &str| RecoveredKeyspace {
        name: name.to_string(),
        ..RecoveredKeyspace::default()
    };
    for keyspaces in [
        vec![(0, named("zero"))],
        vec![(1, named("bad name"))],
        vec![(1, named("default"))],
        vec![(1, named("twice")), (2, named("twice"))],
    ] {
        let state = RecoveredManifest {
            keyspaces: keyspaces.into_iter().collect(),
            ..RecoveredManifest::default()
        };
        let result = VersionSet::create(fs.clone(), dir(), state, options(8 << 20));
        invalid_argument(result, "keyspaces");
    }
    assert!(mem.file_names().is_empty(), "{:?}", mem.file_names());
    // A counter below an id in use is raised past it.
    let state = RecoveredManifest {
        keyspaces: [(4, named("four"))].into_iter().collect(),
        next_keyspace_id: 2,
        ..RecoveredManifest::default()
    };
    let set = VersionSet::create(fs, dir(), state, options(8 << 20)).unwrap();
    assert_eq!(set.next_keyspace_id(), 5);
}

/// A manifest of edit format 2, as the code before keyspaces wrote it (the
/// worked example of `docs/format/manifest.md` at that version): it
/// recovers exactly as it did, with the default keyspace alone.
#[test]
fn a_format_2_manifest_recovers_with_only_the_default_keyspace() {
    let v2: &[u8] = &[
        0x4b, 0x45, 0x56, 0x4f, 0x4d, 0x41, 0x4e, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x1b, 0xfd, 0x52, 0xf3, 0x72, 0x6e, 0x18, 0x2c, 0x07, 0x00,
        0x01, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00, 0x02, 0x12, 0x03, 0x00, 0xf3, 0x2b, 0xc5,
        0x2b, 0x26, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x02, 0x12, 0x03, 0x05,
        0x05, 0x00, 0x02, 0xe8, 0x07, 0x09, 0x61, 0x02, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x09, 0x63, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x05, 0x03, 0x01, 0x06,
        0x01, 0x14, 0x85, 0xaa, 0xdd, 0x09, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x02, 0x02, 0x12,
        0x06, 0x02, 0x07, 0x01, 0x80, 0x20,
    ];
    let mem = MemFs::new();
    mem.create_dir_all(dir()).unwrap();
    mem.write_file(&dir().join("CURRENT"), b"MANIFEST-000001\n")
        .unwrap();
    mem.write_file(&dir().join("MANIFEST-000001"), v2).unwrap();
    let state = VersionSet::recover(&mem, dir()).unwrap().unwrap();
    assert!(state.tracks_wal_segments);
    assert_eq!(state.edits_replayed, 3);
    assert_eq!(state.tail_bytes_dropped, 0);
    assert_eq!(state.manifest_number, 1);
    assert_eq!(state.next_file_number, 18);
    assert_eq!((state.last_seqno, state.log_number), (5, 1));
    let tables: Vec<(usize, u64)> = state.version.tables().map(|(l, t)| (l, t.number)).collect();
    assert_eq!(tables, [(0, 2)]);
    let t = &state.version.level(0)[0];
    assert_eq!((t.file_size, t.entries, t.tombstones), (1000, 3, 1));
    assert_eq!(
        state.wal_segments.iter().collect::<Vec<_>>(),
        [(1, Some(4096)), (2, None)]
    );
    assert!(state.unexplained_tables.is_empty());
    // Only the default keyspace, whose log number is the global one.
    assert!(state.keyspaces.is_empty());
    assert_eq!(state.default_log_number, 1);
    assert_eq!(state.next_keyspace_id, 1);

    // Opened, it is rewritten in format 3 and reads back the same.
    let expected = recovered_keyspaces_state(&state);
    let set = open(&mem);
    assert_eq!(keyspaces_state(&set), expected);
    assert_eq!(set.keyspaces(), [info(0, DEFAULT_KEYSPACE_NAME, 1)]);
    drop(set);
    let state = VersionSet::recover(&mem, dir()).unwrap().unwrap();
    assert_eq!(recovered_keyspaces_state(&state), expected);
    assert_eq!(state.edits_replayed, 1);
}

/// A keyspace tag inside a format 2 edit is an unknown tag: the manifest
/// is corrupt at that record, not read as a keyspace edit.
#[test]
fn keyspace_tags_in_a_format_2_manifest_are_refused() {
    for body in [&[9u8, 1][..], &[10, 1, b'a'], &[11], &[12, 4], &[13, 2]] {
        let mem = MemFs::new();
        mem.create_dir_all(dir()).unwrap();
        let file = mem.create(&dir().join("MANIFEST-000001")).unwrap();
        let mut log =
            kevo_wal::log::LogWriter::new(file, 1, kevo_manifest::MANIFEST_MAGIC).unwrap();
        log.add_record(&[2, 1, 0, 2, 5, 3, 0]).unwrap();
        let mut edit = vec![2, 2, 5];
        edit.extend_from_slice(body);
        log.add_record(&edit).unwrap();
        log.sync().unwrap();
        mem.write_file(&dir().join("CURRENT"), b"MANIFEST-000001\n")
            .unwrap();
        let err = VersionSet::recover(&mem, dir()).unwrap_err();
        assert!(err.is_corruption(), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("unknown field tag {}", body[0])),
            "{err}"
        );
    }
}

/// What a create or drop leaves after a failure at every I/O step it takes
/// (its record's write and sync; with a roll, every step of starting the
/// new manifest), then a crash: the state before the call or the one after,
/// never a keyspace half made or half gone.
#[test]
fn a_failed_create_or_drop_is_whole_or_absent_after_a_crash() {
    #[derive(Clone, Copy, Debug)]
    enum Call {
        Create,
        Drop,
    }
    const OPS: [FaultOp; 5] = [
        FaultOp::Create,
        FaultOp::Write,
        FaultOp::Sync,
        FaultOp::Rename,
        FaultOp::SyncDir,
    ];
    // Two keyspaces with a table each, then `padding` empty edits.
    let prepare = |fault: &FaultFs, rewrite_bytes, padding| {
        let fs: Arc<dyn Fs> = Arc::new(fault.clone());
        let set = VersionSet::open(fs, dir(), options(rewrite_bytes))
            .unwrap()
            .0;
        let id = set.create_keyspace("index", 1).unwrap();
        add(&set, id, b"a", b"c");
        add(&set, DEFAULT_KEYSPACE, b"a", b"c");
        for _ in 0..padding {
            set.log_and_apply(VersionEdit::default()).unwrap();
        }
        set
    };
    let call = |set: &VersionSet, call| match call {
        Call::Create => set.create_keyspace("fresh", 2).map(drop),
        Call::Drop => set.drop_keyspace(1),
    };
    let mut points = 0;
    for roll in [true, false] {
        for which in [Call::Create, Call::Drop] {
            // The padding that makes the call roll the manifest first.
            let (rewrite_bytes, padding) = if roll {
                let rolls = |padding| {
                    let fault = FaultFs::new(Arc::new(MemFs::new()));
                    let set = prepare(&fault, 1, padding);
                    let rewrites = set.stats().rewrites;
                    call(&set, which).unwrap();
                    set.stats().rewrites > rewrites
                };
                (
                    1,
                    (0..64).find(|&k| rolls(k)).expect("the call never rolls"),
                )
            } else {
                (8 << 20, 0)
            };
            let (old, new) = {
                let fault = FaultFs::new(Arc::new(MemFs::new()));
                let set = prepare(&fault, rewrite_bytes, padding);
                let old = keyspaces_state(&set);
                call(&set, which).unwrap();
                (old, keyspaces_state(&set))
            };
            for op in OPS {
                for n in 1..32 {
                    let mem = MemFs::with_seed(n * 7 + op as u64);
                    let fault = FaultFs::new(Arc::new(mem.clone()));
                    let set = prepare(&fault, rewrite_bytes, padding);
                    fault.add_rule(FaultRule::new(op, FaultTrigger::Nth(n), FaultKind::Eio));
                    let result = call(&set, which);
                    if fault.injected_count() == 0 {
                        result.unwrap();
                        break;
                    }
                    points += 1;
                    let err = result.unwrap_err();
                    assert!(
                        matches!(err, Error::Io { .. }),
                        "{which:?} {op:?} #{n}: {err:?}"
                    );
                    // Nothing became visible.
                    assert_eq!(keyspaces_state(&set), old, "{which:?} {op:?} #{n}");
                    drop(set);
                    if n % 2 == 0 {
                        mem.crash();
                    } else {
                        mem.crash_keep_nothing_unsynced();
                    }
                    let set = open(&mem);
                    let state = keyspaces_state(&set);
                    assert!(
                        state == old || state == new,
                        "{which:?} {op:?} #{n}: reopened to {state:?}"
                    );
                }
            }
        }
    }
    // Without a roll: the record's write and sync. With one, also: the new
    // manifest's create, header and snapshot writes (two records), sync and
    // directory sync, CURRENT's create, write, sync, rename and directory
    // sync.
    assert_eq!(points, 2 * 2 + 2 * 13, "{points}");
}

#[test]
fn concurrent_creates_of_one_name_make_one_keyspace() {
    let set = Arc::new(open(&MemFs::new()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let set = Arc::clone(&set);
            std::thread::spawn(move || set.create_keyspace("shared", 0))
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let created: Vec<KeyspaceId> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(created, [1]);
    for result in results.into_iter().filter(Result::is_err) {
        invalid_argument(result, "in use by keyspace 1");
    }
    assert_eq!(set.keyspaces().len(), 2);
}
