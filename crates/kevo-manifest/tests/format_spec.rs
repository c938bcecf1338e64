//! The worked examples in `docs/format/manifest.md` are checked byte for
//! byte against what the code writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use kevo_core::{Fs, InternalKey, MemFs, ValueKind};
use kevo_manifest::{ManifestOptions, TableMeta, VersionEdit, VersionSet};

const SPEC: &str = include_str!("../../../docs/format/manifest.md");

/// The example: a new database, an edit adding table 2 and WAL segment 1,
/// a rotation sealing segment 1 at 4096 bytes and adding segment 2.
fn example_bytes() -> Vec<u8> {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (set, _) = VersionSet::open(fs, Path::new("/db"), ManifestOptions::default()).unwrap();
    let number = set.reserve_file_number().unwrap();
    let table = TableMeta {
        number,
        file_size: 1000,
        smallest: InternalKey::new(b"a", 5, ValueKind::Put),
        largest: InternalKey::new(b"c", 3, ValueKind::Delete),
        smallest_seqno: 3,
        largest_seqno: 5,
        entries: 3,
        tombstones: 1,
        range_tombstones: 0,
    };
    set.log_and_apply(VersionEdit {
        added: vec![(0, table)],
        last_seqno: Some(5),
        log_number: Some(1),
        wal_segments_added: vec![1],
        ..VersionEdit::default()
    })
    .unwrap();
    set.log_and_apply(VersionEdit {
        wal_segments_added: vec![2],
        wal_segments_sealed: vec![(1, 4096)],
        ..VersionEdit::default()
    })
    .unwrap();
    assert_eq!(
        mem.read_file(Path::new("/db/CURRENT")).unwrap(),
        b"MANIFEST-000001\n"
    );
    mem.read_file(Path::new("/db/MANIFEST-000001")).unwrap()
}

/// The keyspace example: a new database, keyspace "index" created with
/// log number 1, then table 2 added to it with keyspace log number 2; then a
/// reopen, whose new manifest's snapshot is two records. Returns both
/// manifests.
fn keyspace_example_bytes() -> (Vec<u8>, Vec<u8>) {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let options = ManifestOptions::default;
    let (set, _) = VersionSet::open(fs.clone(), Path::new("/db"), options()).unwrap();
    let id = set.create_keyspace("index", 1).unwrap();
    assert_eq!(id, 1);
    let number = set.reserve_file_number().unwrap();
    let table = TableMeta {
        number,
        file_size: 1000,
        smallest: InternalKey::new(b"a", 5, ValueKind::Put),
        largest: InternalKey::new(b"c", 3, ValueKind::Delete),
        smallest_seqno: 3,
        largest_seqno: 5,
        entries: 3,
        tombstones: 1,
        range_tombstones: 0,
    };
    set.log_and_apply(VersionEdit {
        added: vec![(0, table)],
        last_seqno: Some(5),
        keyspace: id,
        keyspace_log_number: Some(2),
        ..VersionEdit::default()
    })
    .unwrap();
    let first = mem.read_file(Path::new("/db/MANIFEST-000001")).unwrap();
    drop(set);
    let (set, recovery) = VersionSet::open(fs, Path::new("/db"), options()).unwrap();
    assert_eq!(recovery.edits_replayed, 3);
    assert_eq!(set.manifest_number(), 18);
    assert_eq!(set.current_in(id).unwrap().level(0)[0].number, number);
    let second = mem.read_file(Path::new("/db/MANIFEST-000018")).unwrap();
    (first, second)
}

/// The bytes of each code block in the section of the spec under
/// `heading` (up to the next `## ` heading): in each block, each line after
/// the `offset` header is an offset, hex bytes (two digits each), then
/// what they mean.
fn spec_blocks(heading: &str) -> Vec<Vec<u8>> {
    let section = SPEC
        .split("\n## ")
        .find(|s| s.lines().next() == Some(heading))
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let mut blocks = Vec::new();
    for block in section.split("```").skip(1).step_by(2) {
        let mut bytes = Vec::new();
        for line in block
            .lines()
            .skip_while(|l| !l.starts_with("offset"))
            .skip(1)
        {
            let mut tokens = line.split_whitespace();
            let Some(offset) = tokens.next() else {
                continue;
            };
            let offset: usize = offset.parse().expect("offset");
            assert_eq!(offset, bytes.len(), "offset column of {line:?}");
            for token in tokens {
                if token.len() != 2 {
                    break;
                }
                match u8::from_str_radix(token, 16) {
                    Ok(byte) => bytes.push(byte),
                    Err(_) => break,
                }
            }
        }
        blocks.push(bytes);
    }
    blocks
}

#[test]
fn worked_example_matches_the_format_spec() {
    let actual = example_bytes();
    let spec = spec_blocks("Worked example");
    assert_eq!(
        spec,
        std::slice::from_ref(&actual),
        "docs/format/manifest.md's worked example differs from what the code writes:\n{actual:02x?}"
    );
}

#[test]
fn keyspace_worked_example_matches_the_format_spec() {
    let (first, second) = keyspace_example_bytes();
    let spec = spec_blocks("Worked example: keyspaces");
    assert_eq!(
        spec,
        [first.clone(), second.clone()],
        "docs/format/manifest.md's keyspace example differs from what the code writes:\n\
         {first:02x?}\n{second:02x?}"
    );
}
