//! Tables found by the `sstable_read` fuzz target, kept as named cases.
//!
//! The first three have valid checksums but inconsistent contents (crafted,
//! not bit rot): `verify()` must refuse them, since `get` would otherwise
//! answer wrongly or fail. The last claims a huge uncompressed length.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use kevo_core::{Fs, MemFs};
use kevo_sstable::{ReadOptions, Table};

fn open(bytes: &[u8]) -> kevo_core::Result<Table> {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/t")).unwrap();
    let path = Path::new("/t/000001.sst");
    fs.write_file(path, bytes).unwrap();
    Table::open(&fs, path, ReadOptions::default())
}

fn assert_verify_refuses(bytes: &[u8], reason_part: &str) {
    let table = open(bytes).expect("the table opens: its checksums are valid");
    let err = table.verify().unwrap_err();
    assert!(err.is_corruption(), "{err:?}");
    assert!(err.to_string().contains(reason_part), "{err}");
}

#[test]
fn verify_refuses_a_filter_that_rejects_keys_the_table_holds() {
    assert_verify_refuses(
        include_bytes!("regressions/filter_zeroed.sst"),
        "filter rejects",
    );
}

#[test]
fn verify_refuses_a_separator_past_the_next_blocks_first_key() {
    assert_verify_refuses(
        include_bytes!("regressions/separator_between.sst"),
        "previous separator",
    );
}

#[test]
fn verify_refuses_a_restart_point_inside_an_entry() {
    assert_verify_refuses(
        include_bytes!("regressions/restart_misaligned.sst"),
        "restart point",
    );
}

#[test]
fn lz4_block_claiming_more_than_it_can_expand_to_is_corruption() {
    // Either open already refuses the file, or reading every block does.
    let err = match open(include_bytes!("regressions/lz4_claims_huge_length.sst")) {
        Err(err) => err,
        Ok(table) => Arc::new(table).verify().unwrap_err(),
    };
    assert!(err.is_corruption(), "{err:?}");
}
