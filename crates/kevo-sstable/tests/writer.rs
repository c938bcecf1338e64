//! What the writer accepts, refuses and reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use kevo_core::{
    Error, FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, Fs, InternalKey, MemFs, ValueKind,
};
use kevo_sstable::{BlockKind, ChecksumStatus, Compression, TableOptions, TableWriter};
use std::sync::Arc;

fn key(user: &str, seqno: u64) -> Vec<u8> {
    InternalKey::new(user.as_bytes(), seqno, ValueKind::Put)
        .as_bytes()
        .to_vec()
}

fn is_invalid_argument<T>(result: kevo_core::Result<T>) -> bool {
    matches!(result, Err(Error::InvalidArgument(_)))
}

#[test]
fn out_of_order_and_duplicate_keys_are_invalid_arguments() {
    let fs = MemFs::new();
    let mut writer = TableWriter::create(&fs, Path::new(PATH), options()).unwrap();
    writer.add(&key("b", 5), b"v").unwrap();
    assert!(
        is_invalid_argument(writer.add(&key("b", 5), b"v")),
        "duplicate"
    );
    assert!(
        is_invalid_argument(writer.add(&key("a", 9), b"v")),
        "smaller user key"
    );
    assert!(
        is_invalid_argument(writer.add(&key("b", 6), b"v")),
        "newer seqno after older"
    );
    writer.add(&key("b", 4), b"older").unwrap();
    writer.add(&key("c", 1), b"v").unwrap();
    assert_eq!(writer.finish().unwrap().entry_count, 3);
}

#[test]
fn malformed_keys_and_options_are_invalid_arguments() {
    let fs = MemFs::new();
    let mut writer = TableWriter::create(&fs, Path::new(PATH), options()).unwrap();
    assert!(is_invalid_argument(writer.add(b"short", b"")));
    let mut bad_kind = b"k".to_vec();
    bad_kind.extend_from_slice(&kevo_core::pack_trailer(1, 0).to_le_bytes());
    assert!(is_invalid_argument(writer.add(&bad_kind, b"")));
    assert!(is_invalid_argument(writer.finish()), "empty table");
    for options in [
        TableOptions {
            block_bytes_target: 0,
            ..options()
        },
        TableOptions {
            restart_interval: 0,
            ..options()
        },
        TableOptions {
            bloom_bits_per_key: 1000,
            ..options()
        },
    ] {
        assert!(is_invalid_argument(TableWriter::create(
            &fs,
            Path::new(PATH),
            options
        )));
    }
}

#[test]
fn finish_syncs_and_returns_the_table_meta() {
    let mem = MemFs::new();
    let fs = FaultFs::new(Arc::new(mem.clone()));
    let model = entries(300, 20);
    let meta = write_table(&fs, PATH, &model, options());
    assert_eq!(fs.op_count(FaultOp::Sync), 1);
    let bytes = mem.read_file(Path::new(PATH)).unwrap();
    assert_eq!(meta.file_size, bytes.len() as u64);
    assert_eq!(meta.entry_count, model.len() as u64);
    assert_eq!(meta.smallest_key.as_bytes(), &model[0].key[..]);
    assert_eq!(meta.largest_key.as_bytes(), &model.last().unwrap().key[..]);
    assert_eq!(meta.smallest_seqno, 10);
    assert_eq!(meta.largest_seqno, 399);
    assert_eq!(meta.tombstone_count, 60);
    // Once the caller syncs the directory, all of it survives a power loss.
    mem.sync_dir(Path::new("/")).unwrap();
    mem.crash_keep_nothing_unsynced();
    assert_eq!(mem.read_file(Path::new(PATH)).unwrap(), bytes);
    let table = open(&mem);
    assert_eq!(table.properties().entry_count, meta.entry_count);
}

#[test]
fn failed_write_poisons_the_writer() {
    let fs = FaultFs::new(Arc::new(MemFs::new()));
    fs.add_rule(FaultRule::new(
        FaultOp::Sync,
        FaultTrigger::Always,
        FaultKind::Eio,
    ));
    let mut writer = TableWriter::create(&fs, Path::new(PATH), options()).unwrap();
    writer.add(&key("a", 1), b"v").unwrap();
    assert!(matches!(writer.finish(), Err(Error::Io { .. })));

    let fs = FaultFs::new(Arc::new(MemFs::new()));
    fs.add_rule(FaultRule::new(
        FaultOp::Write,
        FaultTrigger::Always,
        FaultKind::Enospc,
    ));
    let opts = TableOptions {
        block_bytes_target: 64,
        compression: Compression::None,
        ..options()
    };
    let mut writer = TableWriter::create(&fs, Path::new(PATH), opts).unwrap();
    let big = vec![7u8; 300 * 1024];
    assert!(matches!(
        writer.add(&key("a", 1), &big),
        Err(Error::Io { .. })
    ));
    assert!(is_invalid_argument(writer.add(&key("b", 1), b"v")));
}

#[test]
fn block_walk_lists_every_block_in_file_order() {
    let model = entries(400, 40);
    let fs = memfs_with_table(
        &model,
        TableOptions {
            block_bytes_target: 1024,
            ..options()
        },
    );
    let table = open(&fs);
    let blocks: Vec<_> = table.blocks().map(Result::unwrap).collect();
    let data = blocks.iter().filter(|b| b.kind == BlockKind::Data).count() as u64;
    assert_eq!(data, table.properties().data_block_count);
    let kinds: Vec<_> = blocks.iter().skip(data as usize).map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [BlockKind::Filter, BlockKind::Properties, BlockKind::Index]
    );
    let mut offset = 0;
    for block in &blocks {
        assert_eq!(block.handle.offset, offset, "blocks are contiguous");
        assert_eq!(block.checksum, ChecksumStatus::Ok);
        assert!(
            block.uncompressed_bytes.unwrap() >= block.handle.size
                || block.compression == Some(Compression::Lz4)
        );
        offset = block.handle.end_with_trailer().unwrap();
    }
    assert_eq!(
        offset + kevo_sstable::FOOTER_BYTES as u64,
        table.file_size()
    );
    let report = table.verify().unwrap();
    assert_eq!(report.entries, model.len() as u64);
}

#[test]
fn block_walk_reports_a_checksum_mismatch_and_goes_on() {
    let model = entries(400, 40);
    let fs = memfs_with_table(
        &model,
        TableOptions {
            block_bytes_target: 1024,
            ..options()
        },
    );
    fs.corrupt(Path::new(PATH), 5, 0x01).unwrap();
    let table = open(&fs);
    let blocks: Vec<_> = table.blocks().map(Result::unwrap).collect();
    assert!(matches!(
        blocks[0].checksum,
        ChecksumStatus::Mismatch { .. }
    ));
    assert!(blocks[1..].iter().all(|b| b.checksum == ChecksumStatus::Ok));
    assert!(table.verify().unwrap_err().is_corruption());
}

#[cfg(feature = "lz4")]
#[test]
fn incompressible_blocks_are_stored_uncompressed() {
    // Values of pseudo-random bytes: LZ4 cannot save 1/8.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let model: Vec<Entry> = (0..200)
        .map(|i| {
            let value: Vec<u8> = (0..100)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            Entry::new(format!("k{i:05}").as_bytes(), 1, ValueKind::Put, &value)
        })
        .collect();
    let fs = memfs_with_table(&model, options());
    let table = open(&fs);
    let data: Vec<_> = table
        .blocks()
        .map(Result::unwrap)
        .filter(|b| b.kind == BlockKind::Data)
        .collect();
    assert!(
        data.iter()
            .all(|b| b.compression == Some(Compression::None))
    );
    // Repetitive values compress.
    let model = entries(200, 100);
    let fs = memfs_with_table(&model, options());
    let table = open(&fs);
    let data: Vec<_> = table
        .blocks()
        .map(Result::unwrap)
        .filter(|b| b.kind == BlockKind::Data)
        .collect();
    assert!(data.iter().all(|b| b.compression == Some(Compression::Lz4)));
}
