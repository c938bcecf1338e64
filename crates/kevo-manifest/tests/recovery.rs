//! Reading a manifest without changing anything, starting a fresh one from
//! what was read, file-number reservations, WAL segment tracking, recovery
//! after a failed write, and manifests of the first format.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{dir, table};
use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, Fs, MemFs};
use kevo_manifest::{
    FILE_NUMBERS_RESERVED_AHEAD, ManifestOptions, RecoveredManifest, VersionEdit, VersionSet,
};

fn image(mem: &MemFs) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    mem.file_names()
        .into_iter()
        .map(|p| {
            let bytes = mem.read_file(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn recover_reads_without_changing_anything() {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    assert!(VersionSet::recover(fs.as_ref(), dir()).unwrap().is_none());
    let (set, _) = VersionSet::open(fs.clone(), dir(), ManifestOptions::default()).unwrap();
    let number = set.reserve_file_number().unwrap();
    set.log_and_apply(VersionEdit {
        added: vec![(0, table(number, b"a", b"k", (1, 9)))],
        last_seqno: Some(9),
        log_number: Some(4),
        wal_segments_added: vec![4],
        ..VersionEdit::default()
    })
    .unwrap();
    drop(set);
    let before = image(&mem);
    let state = VersionSet::recover(fs.as_ref(), dir()).unwrap().unwrap();
    assert_eq!(image(&mem), before);
    assert!(state.tracks_wal_segments);
    assert_eq!(state.version.level(0)[0].number, number);
    assert_eq!((state.last_seqno, state.log_number), (9, 4));
    assert_eq!(state.wal_segments.iter().collect::<Vec<_>>(), [(4, None)]);
    assert!(state.next_file_number > number);

    // `create` starts a fresh manifest from it and deletes nothing.
    let old = state.manifest_number;
    let set = VersionSet::create(fs.clone(), dir(), state, ManifestOptions::default()).unwrap();
    assert!(set.manifest_number() > old);
    let old_name = dir().join(kevo_manifest::manifest_file_name(old));
    assert!(
        mem.read_file(&old_name).is_ok(),
        "create deleted the old manifest"
    );
    set.remove_obsolete_manifests();
    assert!(mem.read_file(&old_name).is_err());
    assert_eq!(set.wal_segments().iter().collect::<Vec<_>>(), [(4, None)]);
}

#[test]
fn reservations_cover_every_number_handed_out() {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (set, _) = VersionSet::open(fs.clone(), dir(), ManifestOptions::default()).unwrap();
    let mut numbers = Vec::new();
    for _ in 0..100 {
        let edits_before = set.stats().edits;
        let number = set.reserve_file_number().unwrap();
        // Durable before it is returned.
        assert!(set.file_number_horizon() > number);
        let recovered = VersionSet::recover(fs.as_ref(), dir()).unwrap().unwrap();
        assert!(
            recovered.next_file_number > number,
            "{number} not reserved on disk"
        );
        numbers.push((number, set.stats().edits - edits_before));
    }
    let edits: u64 = numbers.iter().map(|(_, e)| e).sum();
    // One edit per FILE_NUMBERS_RESERVED_AHEAD numbers or so, not one each.
    assert!(
        edits <= 100 / FILE_NUMBERS_RESERVED_AHEAD + 1,
        "{edits} edits"
    );
    assert!(numbers.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn wal_segment_edits_are_checked_and_replayed() {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (set, _) = VersionSet::open(fs.clone(), dir(), ManifestOptions::default()).unwrap();
    let wal = |added: Vec<u64>, sealed: Vec<(u64, u64)>| VersionEdit {
        wal_segments_added: added,
        wal_segments_sealed: sealed,
        ..VersionEdit::default()
    };
    set.log_and_apply(wal(vec![1], vec![])).unwrap();
    set.log_and_apply(wal(vec![2], vec![(1, 5000)])).unwrap();
    // Refused, nothing written: sealing an unknown segment, adding an old one.
    assert!(set.log_and_apply(wal(vec![], vec![(9, 1)])).is_err());
    assert!(set.log_and_apply(wal(vec![2], vec![])).is_err());
    set.log_and_apply(VersionEdit {
        log_number: Some(2),
        ..VersionEdit::default()
    })
    .unwrap();
    assert_eq!(set.wal_segments().iter().collect::<Vec<_>>(), [(2, None)]);
    drop(set);
    let (set, _) = VersionSet::open(fs, dir(), ManifestOptions::default()).unwrap();
    assert_eq!(set.wal_segments().iter().collect::<Vec<_>>(), [(2, None)]);
}

#[test]
fn a_failed_manifest_write_is_recovered_without_reopening() {
    let mem = MemFs::new();
    let fault = Arc::new(FaultFs::new(Arc::new(mem.clone())));
    let fs: Arc<dyn Fs> = fault.clone();
    let (set, _) = VersionSet::open(fs.clone(), dir(), ManifestOptions::default()).unwrap();
    let first = set.reserve_file_number().unwrap();
    set.log_and_apply(VersionEdit {
        added: vec![(0, table(first, b"a", b"c", (1, 2)))],
        ..VersionEdit::default()
    })
    .unwrap();
    fault.add_rule(
        FaultRule::new(FaultOp::Sync, FaultTrigger::Nth(1), FaultKind::Enospc)
            .on_path_containing("MANIFEST"),
    );
    let second = set.reserve_file_number().unwrap();
    let failed = set.log_and_apply(VersionEdit {
        added: vec![(0, table(second, b"d", b"f", (3, 4)))],
        ..VersionEdit::default()
    });
    assert!(failed.is_err());
    assert!(set.is_poisoned());
    assert!(set.log_and_apply(VersionEdit::default()).is_err());
    // The in-memory state never took the failed edit; a fresh manifest
    // holding it makes the set usable again.
    set.recover_from_failure().unwrap();
    assert!(!set.is_poisoned());
    assert_eq!(set.current().table_count(), 1);
    set.log_and_apply(VersionEdit {
        added: vec![(0, table(second, b"d", b"f", (3, 4)))],
        ..VersionEdit::default()
    })
    .unwrap();
    drop(set);
    // A power loss keeps the recovered state: the failed edit's outcome
    // never mattered.
    mem.crash();
    let state = VersionSet::recover(&mem, dir()).unwrap().unwrap();
    let numbers: Vec<u64> = state.version.tables().map(|(_, t)| t.number).collect();
    assert_eq!(numbers, [second, first]);
}

/// The worked example of the first manifest format (edit format 1), byte
/// for byte as version 0.1 wrote it: it still opens, and says it does not
/// track WAL segments.
#[test]
fn a_format_1_manifest_still_opens() {
    let v1: &[u8] = &[
        0x4b, 0x45, 0x56, 0x4f, 0x4d, 0x41, 0x4e, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x1b, 0xfd, 0x52, 0xf3, 0x9f, 0xd7, 0xd6, 0x01, 0x07, 0x00,
        0x01, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x02, 0x02, 0x03, 0x00, 0x66, 0xad, 0x43,
        0xa3, 0x24, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01, 0x02, 0x03, 0x03, 0x05,
        0x05, 0x00, 0x02, 0xe8, 0x07, 0x09, 0x61, 0x02, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x09, 0x63, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x05, 0x03, 0x01,
    ];
    let mem = MemFs::new();
    mem.create_dir_all(dir()).unwrap();
    mem.write_file(&dir().join("CURRENT"), b"MANIFEST-000001\n")
        .unwrap();
    mem.write_file(&dir().join("MANIFEST-000001"), v1).unwrap();
    let state: RecoveredManifest = VersionSet::recover(&mem, dir()).unwrap().unwrap();
    assert!(!state.tracks_wal_segments);
    assert!(state.wal_segments.is_empty());
    assert_eq!(state.version.level(0)[0].number, 2);
    assert_eq!((state.last_seqno, state.log_number), (5, 1));
    assert_eq!(state.next_file_number, 3);
    // Opened, it is rewritten in the current format.
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (set, _) = VersionSet::open(fs.clone(), dir(), ManifestOptions::default()).unwrap();
    drop(set);
    let state = VersionSet::recover(fs.as_ref(), Path::new(dir()))
        .unwrap()
        .unwrap();
    assert!(state.tracks_wal_segments);
    assert_eq!(state.version.level(0)[0].number, 2);
}

/// Unexplained tables are carried by every snapshot, rolls included, until
/// a state without them is created.
#[test]
fn unexplained_tables_survive_rolls() {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let state = RecoveredManifest {
        unexplained_tables: [50, 60].into_iter().collect(),
        ..RecoveredManifest::default()
    };
    mem.create_dir_all(dir()).unwrap();
    let options = ManifestOptions {
        rewrite_bytes: 1,
        ..ManifestOptions::default()
    };
    let set = VersionSet::create(fs.clone(), dir(), state, options).unwrap();
    for _ in 0..5 {
        set.log_and_apply(VersionEdit::default()).unwrap();
    }
    assert!(set.stats().rewrites >= 1);
    drop(set);
    let state = VersionSet::recover(fs.as_ref(), dir()).unwrap().unwrap();
    assert_eq!(
        state.unexplained_tables.into_iter().collect::<Vec<_>>(),
        [50, 60]
    );
}
