//! The worked example in `docs/format/sstable.md` is checked byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use kevo_core::{MemFs, ValueKind};
use kevo_sstable::{Compression, TableOptions};

const SPEC: &str = include_str!("../../../docs/format/sstable.md");

/// The example table: two entries, no compression, a 10-bit Bloom filter.
fn example_bytes() -> Vec<u8> {
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
            ..options()
        },
    );
    fs.read_file(Path::new(PATH)).unwrap()
}

/// The bytes of the spec's worked example: lines `offset | hex bytes | meaning`
/// inside the `text` block that follows the "## Worked example" heading.
fn spec_bytes() -> Vec<u8> {
    let section = SPEC.split("## Worked example").nth(1).expect("section");
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
    let actual = example_bytes();
    let spec = spec_bytes();
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
