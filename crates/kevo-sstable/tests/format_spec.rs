//! The worked examples in `docs/format/sstable.md` (versions 1, 2 and 3)
//! are checked byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use kevo_core::{InternalKey, MemFs, RangeTombstone, ValueKind};
use kevo_sstable::{Compression, TableOptions, TableWriter};

const SPEC: &str = include_str!("../../../docs/format/sstable.md");

/// The example table: two entries, no compression, a 10-bit Bloom filter
/// (cache-local with `cache_local_filter`, which makes it version 3).
fn example_bytes(cache_local_filter: bool) -> Vec<u8> {
    let model = vec![
        Entry::new(b"apple", 2, ValueKind::Put, b"red"),
        Entry::new(b"banana", 1, ValueKind::Delete, b""),
    ];
    let fs = MemFs::new();
    write_table(
        &fs,
        PATH,
        &model,
        TableOptions {
            compression: Compression::None,
            cache_local_filter,
            ..options()
        },
    );
    fs.read_file(Path::new(PATH)).unwrap()
}

/// The version-2 example table: one put and one range tombstone, no
/// compression, no filter.
fn example_v2_bytes() -> Vec<u8> {
    let fs = MemFs::new();
    let options = TableOptions {
        compression: Compression::None,
        bloom_bits_per_key: 0,
        ..options()
    };
    let mut writer = TableWriter::create(&fs, Path::new(PATH), options).unwrap();
    writer
        .add(
            InternalKey::new(b"apple", 1, ValueKind::Put).as_bytes(),
            b"red",
        )
        .unwrap();
    writer
        .add_range_tombstone(&RangeTombstone::new(
            b"banana".to_vec(),
            b"cherry".to_vec(),
            2,
        ))
        .unwrap();
    writer.finish().unwrap();
    fs.read_file(Path::new(PATH)).unwrap()
}

/// The bytes of one of the spec's worked examples: lines `offset | hex bytes
/// | meaning` inside the first `text` block after `heading` (up to the next
/// heading that begins the same way).
fn spec_bytes(heading: &str) -> Vec<u8> {
    let section = SPEC.split(heading).nth(1).expect("section");
    let block = section.split("```text").nth(1).expect("code block");
    let block = block.split("```").next().expect("end of code block");
    let mut bytes = Vec::new();
    for line in block
        .lines()
        .skip_while(|l| !l.starts_with("offset"))
        .skip(1)
    {
        let mut columns = line.split('|');
        let offset: usize = columns.next().unwrap().trim().parse().expect("offset");
        assert_eq!(offset, bytes.len(), "offset column of {line:?}");
        for hex in columns.next().unwrap().split_whitespace() {
            bytes.push(u8::from_str_radix(hex, 16).expect("hex byte"));
        }
    }
    bytes
}

#[test]
fn worked_example_matches_the_format_spec() {
    let actual = example_bytes(false);
    // Without range tombstones or a cache-local filter: version 1.
    assert_eq!(actual[actual.len() - 20..actual.len() - 16], [1, 0, 0, 0]);
    assert_same_bytes(&actual, &spec_bytes("## Worked example"));
}

#[test]
fn worked_example_version_3_matches_the_format_spec() {
    let actual = example_bytes(true);
    assert_eq!(actual[actual.len() - 20..actual.len() - 16], [3, 0, 0, 0]);
    assert_same_bytes(&actual, &spec_bytes("## Worked example, version 3"));
}

#[test]
fn worked_example_version_2_matches_the_format_spec() {
    let actual = example_v2_bytes();
    // Bytes 52..56 of the footer: the version.
    assert_eq!(actual[actual.len() - 20..actual.len() - 16], [2, 0, 0, 0]);
    assert_same_bytes(&actual, &spec_bytes("## Worked example, version 2"));
}

fn assert_same_bytes(actual: &[u8], spec: &[u8]) {
    if actual != spec {
        let dump: Vec<String> = actual
            .chunks(16)
            .enumerate()
            .map(|(i, c)| {
                let hex: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
                format!("{:<5}| {}", i * 16, hex.join(" "))
            })
            .collect();
        panic!(
            "spec and writer differ; the writer produced:\n{}",
            dump.join("\n")
        );
    }
}
