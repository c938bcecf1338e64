//! Damaged files: every flipped bit and every truncation is reported as
//! corruption or ignored, never read as wrong data, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use kevo_core::{Cursor, Error, Fs, MemFs, SEQNO_MAX};
use kevo_sstable::{Compression, ReadOptions, Table, TableOptions};

/// A small table: a few data blocks, a filter, the given compression.
fn small_table(compression: Compression) -> (Vec<Entry>, Vec<u8>) {
    let model = entries(24, 12);
    let fs = memfs_with_table(
        &model,
        TableOptions {
            block_bytes_target: 200,
            restart_interval: 3,
            compression,
            ..options()
        },
    );
    let bytes = fs.read_file(Path::new(PATH)).unwrap();
    (model, bytes)
}

fn assert_corruption<T: std::fmt::Debug>(result: kevo_core::Result<T>, what: &str) {
    match result {
        Err(err) => assert!(err.is_corruption(), "{what}: not corruption: {err}"),
        Ok(v) => panic!("{what}: expected corruption, got {v:?}"),
    }
}

/// Reads everything a table offers; each read must be right or Corruption.
/// Returns whether some read reported corruption.
fn read_all(table: &std::sync::Arc<Table>, model: &[Entry]) -> bool {
    let mut damaged = false;
    let mut ok_or_corrupt = |err: Error| {
        assert!(err.is_corruption(), "unexpected error {err}");
        damaged = true;
    };
    for entry in model {
        let parsed = kevo_core::parse_internal_key(&entry.key).unwrap();
        match table.get(parsed.user_key, SEQNO_MAX) {
            Ok(got) => assert_eq!(
                got.map(|f| (f.seqno, f.kind, f.value.to_vec())),
                model_get(model, parsed.user_key, SEQNO_MAX),
                "wrong data for {:?}",
                parsed.user_key
            ),
            Err(err) => ok_or_corrupt(err),
        }
    }
    let mut cursor = table.cursor();
    let mut i = 0;
    let mut step = cursor.seek_to_first();
    loop {
        match step {
            Err(err) => {
                ok_or_corrupt(err);
                break;
            }
            Ok(()) if !cursor.valid() => {
                assert_eq!(i, model.len(), "forward scan ended early without an error");
                break;
            }
            Ok(()) => {
                assert_eq!(cursor.key(), &model[i].key[..], "wrong key at {i}");
                assert_eq!(cursor.value(), &model[i].value[..], "wrong value at {i}");
                i += 1;
                step = cursor.next();
            }
        }
    }
    let mut i = model.len();
    let mut step = cursor.seek_to_last();
    loop {
        match step {
            Err(err) => {
                ok_or_corrupt(err);
                break;
            }
            Ok(()) if !cursor.valid() => {
                assert_eq!(i, 0, "backward scan ended early without an error");
                break;
            }
            Ok(()) => {
                i -= 1;
                assert_eq!(cursor.key(), &model[i].key[..], "wrong key at {i}");
                step = cursor.prev();
            }
        }
    }
    damaged
}

fn every_bit_flip_is_detected_or_harmless(compression: Compression) {
    let (model, bytes) = small_table(compression);
    let fs = MemFs::new();
    let path = Path::new(PATH);
    for bit in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        fs.write_file(path, &damaged).unwrap();
        match Table::open(&fs, path, ReadOptions::default()) {
            Err(err) => assert!(err.is_corruption(), "bit {bit}: {err}"),
            Ok(table) => {
                let table = std::sync::Arc::new(table);
                let seen = read_all(&table, &model);
                // Every byte is covered by a checksum: a full verify finds it.
                assert_corruption(table.verify(), &format!("verify after flipping bit {bit}"));
                let _ = seen;
            }
        }
    }
}

#[test]
fn every_single_bit_flip_of_an_uncompressed_table_is_caught() {
    every_bit_flip_is_detected_or_harmless(Compression::None);
}

#[cfg(feature = "lz4")]
#[test]
fn every_single_bit_flip_of_an_lz4_table_is_caught() {
    every_bit_flip_is_detected_or_harmless(Compression::Lz4);
}

#[test]
fn undamaged_small_table_reads_back_whole() {
    let (model, bytes) = small_table(Compression::None);
    let fs = MemFs::new();
    fs.write_file(Path::new(PATH), &bytes).unwrap();
    let table = open(&fs);
    assert!(!read_all(&table, &model));
    assert!(
        table.properties().data_block_count >= 4,
        "want several blocks"
    );
}

#[test]
fn truncation_at_every_length_is_corruption_at_open() {
    let (_, bytes) = small_table(Compression::None);
    let fs = MemFs::new();
    let path = Path::new(PATH);
    for len in 0..bytes.len() {
        fs.write_file(path, &bytes[..len]).unwrap();
        assert_corruption(
            Table::open(&fs, path, ReadOptions::default()),
            &format!("open of the first {len} bytes"),
        );
    }
}

#[test]
fn appended_garbage_is_corruption_at_open() {
    let (_, mut bytes) = small_table(Compression::None);
    bytes.extend_from_slice(&[0; 100]);
    let fs = MemFs::new();
    fs.write_file(Path::new(PATH), &bytes).unwrap();
    assert_corruption(
        Table::open(&fs, Path::new(PATH), ReadOptions::default()),
        "open with trailing zeros",
    );
}

#[test]
fn corruption_names_the_file_and_the_damaged_block() {
    let (model, bytes) = small_table(Compression::None);
    let fs = MemFs::new();
    let mut damaged = bytes.clone();
    damaged[3] ^= 0x10; // inside the first data block
    fs.write_file(Path::new(PATH), &damaged).unwrap();
    let table = open(&fs);
    let parsed = kevo_core::parse_internal_key(&model[0].key).unwrap();
    match table.get(parsed.user_key, SEQNO_MAX) {
        Err(Error::Corruption { file, offset, .. }) => {
            assert_eq!(file, Path::new(PATH));
            assert_eq!(offset, 0);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// Salvage keeps every entry of every intact data block and reports the
/// damaged one, for a flipped byte at the start or in the middle of each
/// data block: what is missing is one contiguous run of entries (that
/// block's), and over all blocks the runs cover every entry exactly once.
#[test]
fn salvage_keeps_every_readable_block() {
    let (model, bytes) = small_table(Compression::None);
    let open = |bytes: &[u8]| {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new(PATH).parent().unwrap())
            .unwrap();
        fs.write_file(Path::new(PATH), bytes).unwrap();
        Table::open(&fs, Path::new(PATH), ReadOptions::default()).unwrap()
    };
    let salvage = |table: &Table| {
        let mut got = Vec::new();
        let report = table
            .salvage(|k, v| {
                got.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
        (got, report)
    };
    let table = open(&bytes);
    let handles: Vec<_> = table
        .blocks()
        .map(|b| b.unwrap())
        .filter(|b| b.kind == kevo_sstable::BlockKind::Data)
        .map(|b| b.handle)
        .collect();
    assert!(handles.len() >= 3, "{handles:?}");
    let (all, report) = salvage(&table);
    assert_eq!(all.len(), model.len());
    assert!(report.skipped.is_empty());
    for at_middle in [false, true] {
        let mut covered = 0;
        for handle in &handles {
            let at = handle.offset + if at_middle { handle.size / 2 } else { 0 };
            let mut copy = bytes.clone();
            copy[at as usize] ^= 0x5a;
            let (got, report) = salvage(&open(&copy));
            assert_eq!(report.skipped.len(), 1, "damage at {at}");
            assert_eq!(report.skipped[0].offset, handle.offset);
            assert_eq!(report.entries as usize, got.len());
            // `got` is `all` with one contiguous, non-empty run missing.
            let start = all.iter().zip(&got).take_while(|(a, g)| a == g).count();
            let missing = all.len() - got.len();
            assert!(missing > 0, "damage at {at} lost nothing");
            assert_eq!(&all[start + missing..], &got[start..], "damage at {at}");
            assert_eq!(start, covered, "blocks are salvaged in order");
            covered += missing;
        }
        assert_eq!(covered, all.len());
    }
}
