//! Obsolete tables: a removed table is reported for deletion only once no
//! live version refers to it, and only once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{dir, table};
use kevo_core::{Fs, MemFs};
use kevo_manifest::{ManifestOptions, VersionEdit, VersionSet};

fn open() -> VersionSet {
    let fs: Arc<dyn Fs> = Arc::new(MemFs::new());
    VersionSet::open(fs, dir(), ManifestOptions::default())
        .unwrap()
        .0
}

fn add(set: &VersionSet, level: usize, lo: &[u8], hi: &[u8]) -> u64 {
    let number = set.new_file_number();
    set.log_and_apply(VersionEdit {
        added: vec![(level, table(number, lo, hi, (1, 1)))],
        ..VersionEdit::default()
    })
    .unwrap();
    number
}

fn remove(set: &VersionSet, level: usize, number: u64) {
    set.log_and_apply(VersionEdit {
        removed: vec![(level, number)],
        ..VersionEdit::default()
    })
    .unwrap();
}

#[test]
fn table_held_by_a_reader_is_not_obsolete_until_the_reader_drops() {
    let set = open();
    let a = add(&set, 0, b"a", b"b");
    let b = add(&set, 0, b"c", b"d");
    let reader = set.current();
    remove(&set, 0, a);
    assert_eq!(set.take_obsolete_tables(), Vec::<u64>::new());
    assert_eq!(set.live_table_numbers(), BTreeSet::from([a, b]));
    drop(reader);
    assert_eq!(set.live_table_numbers(), BTreeSet::from([b]));
    assert_eq!(set.take_obsolete_tables(), vec![a]);
    // Each number is returned once.
    assert_eq!(set.take_obsolete_tables(), Vec::<u64>::new());
}

#[test]
fn removed_table_without_readers_is_obsolete_at_once() {
    let set = open();
    let a = add(&set, 0, b"a", b"b");
    remove(&set, 0, a);
    assert_eq!(set.take_obsolete_tables(), vec![a]);
}

#[test]
fn older_reader_keeps_only_its_own_tables() {
    let set = open();
    let a = add(&set, 0, b"a", b"b");
    let old = set.current();
    let b = add(&set, 0, b"c", b"d");
    let middle = set.current();
    remove(&set, 0, a);
    remove(&set, 0, b);
    assert_eq!(set.take_obsolete_tables(), Vec::<u64>::new());
    drop(middle);
    // `old` still holds `a`; nobody holds `b`.
    assert_eq!(set.take_obsolete_tables(), vec![b]);
    drop(old);
    assert_eq!(set.take_obsolete_tables(), vec![a]);
}

#[test]
fn moved_table_is_never_obsolete() {
    let set = open();
    let a = add(&set, 1, b"a", b"b");
    let t = set.current().level(1)[0].as_ref().clone();
    set.log_and_apply(VersionEdit {
        removed: vec![(1, a)],
        added: vec![(2, t)],
        ..VersionEdit::default()
    })
    .unwrap();
    assert_eq!(set.take_obsolete_tables(), Vec::<u64>::new());
    assert_eq!(set.live_table_numbers(), BTreeSet::from([a]));
    remove(&set, 2, a);
    assert_eq!(set.take_obsolete_tables(), vec![a]);
}
