//! Damaged manifests and `CURRENT` files: a torn tail is dropped and
//! reported; anything else is `Error::Corruption` naming the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{current_manifest, dir, durable, table};
use kevo_core::{Error, Fs, MemFs};
use kevo_manifest::{
    CURRENT_FILE, MANIFEST_MAGIC, ManifestOptions, VersionEdit, VersionSet, manifest_file_name,
};
use kevo_wal::log::LogWriter;

fn open(mem: &MemFs) -> kevo_core::Result<(VersionSet, kevo_manifest::ManifestRecovery)> {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    VersionSet::open(fs, dir(), ManifestOptions::default())
}

/// A database whose manifest holds a snapshot and `edits` more edits;
/// returns the file offsets where each record ends.
fn with_edits(mem: &MemFs, edits: u8) -> VersionSet {
    let (set, _) = open(mem).unwrap();
    for i in 0..edits {
        let number = set.new_file_number();
        set.log_and_apply(VersionEdit {
            added: vec![(0, table(number, &[i], &[i, 1], (1, 1)))],
            last_seqno: Some(u64::from(i) + 1),
            ..VersionEdit::default()
        })
        .unwrap();
    }
    set
}

fn manifest_path(mem: &MemFs) -> PathBuf {
    dir().join(current_manifest(mem))
}

fn expect_corruption(result: kevo_core::Result<impl std::fmt::Debug>, file: &Path) -> u64 {
    match result {
        Err(Error::Corruption {
            file: got, offset, ..
        }) => {
            assert_eq!(got, file);
            offset
        }
        other => panic!("expected corruption in {}, got {other:?}", file.display()),
    }
}

#[test]
fn bit_flip_in_the_middle_of_the_manifest_is_corruption_naming_it() {
    let mem = MemFs::new();
    drop(with_edits(&mem, 6));
    let path = manifest_path(&mem);
    let len = mem.read_file(&path).unwrap().len() as u64;
    // Inside the snapshot record, with five intact edits after it.
    mem.corrupt(&path, 40, 0x10).unwrap();
    let offset = expect_corruption(open(&mem).map(|(s, _)| durable(&s)), &path);
    assert!(offset < len / 2, "{offset}");
    // And in the middle of the file.
    let mem = MemFs::new();
    drop(with_edits(&mem, 6));
    let path = manifest_path(&mem);
    mem.corrupt(&path, len / 2, 0x01).unwrap();
    expect_corruption(open(&mem).map(|(s, _)| durable(&s)), &path);
}

#[test]
fn damaged_manifest_header_is_corruption() {
    let mem = MemFs::new();
    drop(with_edits(&mem, 2));
    let path = manifest_path(&mem);
    mem.corrupt(&path, 3, 0xff).unwrap();
    assert_eq!(expect_corruption(open(&mem).map(|_| ()), &path), 0);
}

#[test]
fn garbage_current_is_corruption() {
    let current = dir().join(CURRENT_FILE);
    for garbage in [
        &b"garbage"[..],
        b"",
        b"MANIFEST-000001",
        b"MANIFEST-00000x\n",
        b"000001.sst\n",
        b"\xff\xfe\n",
        &[b'M'; 200],
    ] {
        let mem = MemFs::new();
        drop(with_edits(&mem, 1));
        mem.write_file(&current, garbage).unwrap();
        expect_corruption(open(&mem).map(|_| ()), &current);
    }
}

#[test]
fn current_naming_a_missing_manifest_is_corruption() {
    let mem = MemFs::new();
    drop(with_edits(&mem, 1));
    let current = dir().join(CURRENT_FILE);
    mem.write_file(
        &current,
        format!("{}\n", manifest_file_name(999)).as_bytes(),
    )
    .unwrap();
    let err = open(&mem).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("MANIFEST-000999"), "{err}");
    expect_corruption(Err::<(), _>(err), &current);
}

#[test]
fn missing_current_without_create_if_missing_is_invalid_argument() {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem);
    let options = ManifestOptions {
        create_if_missing: false,
        ..ManifestOptions::default()
    };
    let err = VersionSet::open(fs.clone(), dir(), options)
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(!VersionSet::exists(fs.as_ref(), dir()).unwrap());
}

#[test]
fn torn_last_edit_is_dropped_and_reported() {
    let mem = MemFs::new();
    let set = with_edits(&mem, 3);
    let path = manifest_path(&mem);
    let before_last = {
        // The state before the last edit, from a twin database.
        let twin = MemFs::new();
        durable(&with_edits(&twin, 2))
    };
    drop(set);
    let bytes = mem.read_file(&path).unwrap();
    for cut in [1, 5, 11, 20] {
        mem.write_file(&path, &bytes[..bytes.len() - cut]).unwrap();
        let mem = mem.clone();
        let (set, recovery) = open(&mem).unwrap();
        assert!(recovery.tail_bytes_dropped > 0, "{recovery:?}");
        assert_eq!(durable(&set), before_last);
        drop(set);
        // The torn manifest is gone: the next open replays cleanly.
        let (_, recovery) = open(&mem).unwrap();
        assert_eq!(recovery.tail_bytes_dropped, 0);
        assert_eq!(recovery.edits_replayed, 1);
        // Put the torn file back for the next cut.
        mem.write_file(&path, &bytes).unwrap();
        mem.write_file(
            &dir().join(CURRENT_FILE),
            format!("{}\n", path.file_name().unwrap().to_string_lossy()).as_bytes(),
        )
        .unwrap();
    }
}

/// Writes `records` as manifest 3 and points `CURRENT` at it.
fn handmade(mem: &MemFs, records: &[Vec<u8>]) -> PathBuf {
    let path = dir().join(manifest_file_name(3));
    mem.create_dir_all(dir()).unwrap();
    let file = mem.create(&path).unwrap();
    let mut log = LogWriter::new(file, 3, MANIFEST_MAGIC).unwrap();
    for r in records {
        log.add_record(r).unwrap();
    }
    log.sync().unwrap();
    mem.sync_dir(dir()).unwrap();
    mem.write_file(&dir().join(CURRENT_FILE), b"MANIFEST-000003\n")
        .unwrap();
    path
}

#[test]
fn edit_that_does_not_apply_is_corruption() {
    let mem = MemFs::new();
    let snapshot = VersionEdit {
        added: vec![(1, table(5, b"a", b"c", (1, 1)))],
        next_file_number: Some(6),
        ..VersionEdit::default()
    };
    let bad = VersionEdit {
        removed: vec![(1, 99)],
        ..VersionEdit::default()
    };
    let path = handmade(&mem, &[snapshot.encode(), bad.encode()]);
    let err = open(&mem).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("does not apply"), "{err}");
    expect_corruption(Err::<(), _>(err), &path);
}

#[test]
fn unknown_field_tag_is_corruption() {
    let mem = MemFs::new();
    let mut bytes = VersionEdit::default().encode();
    bytes.extend_from_slice(&[42, 0]);
    let path = handmade(&mem, &[VersionEdit::default().encode(), bytes]);
    let err = open(&mem).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("unknown field tag 42"), "{err}");
    expect_corruption(Err::<(), _>(err), &path);
}

#[test]
fn manifest_without_edits_is_corruption() {
    let mem = MemFs::new();
    let path = handmade(&mem, &[]);
    expect_corruption(open(&mem).map(|_| ()), &path);
}

#[test]
fn handmade_manifest_opens_and_counters_cover_its_numbers() {
    let mem = MemFs::new();
    let snapshot = VersionEdit {
        added: vec![(2, table(5, b"a", b"c", (1, 7)))],
        next_file_number: Some(4),
        last_seqno: Some(7),
        log_number: Some(2),
        ..VersionEdit::default()
    };
    handmade(&mem, &[snapshot.encode()]);
    let (set, recovery) = open(&mem).unwrap();
    assert_eq!(recovery.edits_replayed, 1);
    assert_eq!(set.last_seqno(), 7);
    assert_eq!(set.log_number(), 2);
    // Above table 5 and manifest 3 and the new manifest, whatever the
    // recorded counter said.
    assert!(set.manifest_number() > 5);
    assert!(set.new_file_number() > set.manifest_number());
}

/// Found by the `manifest_replay` fuzz target: a counter near `u64::MAX`
/// made open write a manifest number that `CURRENT` could not name, so the
/// second open failed.
#[test]
fn absurd_file_counter_is_clamped_and_reopens() {
    for next in [u64::MAX, u64::MAX / 2, 1 << 62, (1 << 62) + 1] {
        let mem = MemFs::new();
        let snapshot = VersionEdit {
            next_file_number: Some(next),
            added: vec![(0, table(1 << 62, b"a", b"b", (1, 1)))],
            ..VersionEdit::default()
        };
        handmade(&mem, &[snapshot.encode()]);
        let (set, _) = open(&mem).unwrap();
        let state = durable(&set);
        let number = set.new_file_number();
        assert!(number > 1 << 62);
        drop(set);
        let (set, recovery) = open(&mem).unwrap();
        assert_eq!(recovery.edits_replayed, 1);
        assert_eq!(durable(&set), state);
        assert!(set.new_file_number() > 1 << 62);
    }
}
