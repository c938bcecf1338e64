//! Opening a version set from an arbitrary manifest.
//!
//! The first input byte chooses how the rest is used:
//!
//! - bit 0 clear: the rest is the whole content of `MANIFEST-000001`;
//!   bit 0 set: the rest is a list of records (`u16` little-endian length,
//!   then that many bytes, the last one cut short if the input ends), written
//!   with the real framing (`kevo_wal::log::LogWriter`, the manifest magic),
//!   so that the checksums pass and the edit decoder and the rules for
//!   applying edits are reached;
//! - bit 1 set: `CURRENT` names `MANIFEST-000002`, which does not exist;
//!   otherwise it names `MANIFEST-000001`.
//!
//! Both files are placed durable in a `MemFs`, then `VersionSet::open` runs.
//! What must hold for *any* input:
//!
//! - nothing panics;
//! - an error is `Corruption` (a `MemFs` has no I/O errors, and `CURRENT`
//!   exists);
//! - when it opens: every keyspace's version keeps its invariants (L0
//!   newest first, deeper levels sorted and disjoint, each number once in
//!   the whole set, below the file counter); the default keyspace is listed
//!   first, ids ascend and are below the keyspace id counter, names pass
//!   `check_keyspace_name` and are unique; `tail_bytes_dropped` is at most
//!   the manifest's size; the set accepts an edit; and a second open (of
//!   the manifest the first one wrote) finds the same state, every keyspace
//!   included, with nothing dropped and one snapshot record per keyspace.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use kevo_core::{DEFAULT_KEYSPACE, Fs, MemFs, check_keyspace_name};
use kevo_manifest::{
    CURRENT_FILE, MANIFEST_MAGIC, ManifestOptions, Version, VersionEdit, VersionSet,
};
use kevo_wal::log::LogWriter;
use libfuzzer_sys::fuzz_target;

const DIR: &str = "/db";
const MANIFEST: &str = "/db/MANIFEST-000001";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mem = MemFs::new();
    mem.create_dir_all(Path::new(DIR)).expect("mkdir");
    if mode & 1 == 0 {
        mem.write_file(Path::new(MANIFEST), rest)
            .expect("write_file");
    } else {
        let file = mem.create(Path::new(MANIFEST)).expect("create");
        let mut log = LogWriter::new(file, 1, MANIFEST_MAGIC).expect("header");
        let mut input = rest;
        while input.len() >= 2 {
            let len = usize::from(u16::from_le_bytes([input[0], input[1]]));
            let end = (2 + len).min(input.len());
            log.add_record(&input[2..end]).expect("add_record");
            input = &input[end..];
        }
        log.sync().expect("sync");
        mem.sync_dir(Path::new(DIR)).expect("sync_dir");
    }
    let current: &[u8] = if mode & 2 == 0 {
        b"MANIFEST-000001\n"
    } else {
        b"MANIFEST-000002\n"
    };
    mem.write_file(&Path::new(DIR).join(CURRENT_FILE), current)
        .expect("write_file");
    let manifest_len = mem
        .read_file(Path::new(MANIFEST))
        .map_or(0, |b| b.len() as u64);

    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (set, recovery) =
        match VersionSet::open(fs.clone(), Path::new(DIR), ManifestOptions::default()) {
            Ok(opened) => opened,
            Err(e) => {
                let _ = e.to_string();
                assert!(e.is_corruption(), "not a corruption error: {e:?}");
                return;
            }
        };
    assert!(!recovery.created);
    assert!(recovery.tail_bytes_dropped <= manifest_len);
    check_keyspaces(&set);
    let state = describe(&set);
    drop(set);

    let (set, recovery) = VersionSet::open(fs, Path::new(DIR), ManifestOptions::default())
        .expect("a manifest written by open opens again");
    assert_eq!(recovery.tail_bytes_dropped, 0);
    assert_eq!(recovery.edits_replayed, set.keyspaces().len() as u64);
    assert_eq!(describe(&set), state);
    set.log_and_apply(VersionEdit::default())
        .expect("an empty edit applies");
});

fn describe(set: &VersionSet) -> String {
    let keyspaces: Vec<_> = set
        .keyspaces()
        .into_iter()
        .map(|k| {
            let version = set
                .current_in(k.id)
                .expect("a listed keyspace has a version");
            let tables: Vec<_> = version.tables().map(|(l, t)| (l, (**t).clone())).collect();
            (k, tables)
        })
        .collect();
    format!(
        "{keyspaces:?} {} {} {}",
        set.last_seqno(),
        set.log_number(),
        set.next_keyspace_id()
    )
}

fn check_keyspaces(set: &VersionSet) {
    let keyspaces = set.keyspaces();
    assert_eq!(keyspaces.first().map(|k| k.id), Some(DEFAULT_KEYSPACE));
    assert!(keyspaces.windows(2).all(|w| w[0].id < w[1].id));
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for k in &keyspaces {
        assert!(k.id < set.next_keyspace_id());
        assert!(names.insert(k.name.clone()), "name {} twice", k.name);
        if k.id != DEFAULT_KEYSPACE {
            assert_eq!(check_keyspace_name(&k.name), Ok(()));
        }
        assert_eq!(set.keyspace_log_number(k.id), Some(k.log_number));
        let version = set
            .current_in(k.id)
            .expect("a listed keyspace has a version");
        check_version(&version, set.next_file_number(), &mut numbers);
    }
}

fn check_version(version: &Version, next_file_number: u64, numbers: &mut BTreeSet<u64>) {
    for (_, t) in version.tables() {
        assert!(numbers.insert(t.number), "table {} twice", t.number);
        assert!(t.number < next_file_number);
    }
    for w in version.level(0).windows(2) {
        assert!((w[0].largest_seqno, w[0].number) > (w[1].largest_seqno, w[1].number));
    }
    for level in 1..version.num_levels() {
        for w in version.level(level).windows(2) {
            assert!(w[0].largest_user_key() < w[1].smallest_user_key());
        }
    }
}
