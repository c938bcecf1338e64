//! Range tombstones in a table (format version 2): written in any order,
//! read back fragmented, covered by the table's bounds, checked on open and
//! by `verify`, and never visible to point reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use common::*;
use kevo_core::{
    Cursor, Error, FragmentedTombstones, Fs, InternalKey, MemFs, RANGE_DELETE_KIND, RangeTombstone,
    SEQNO_MAX, SeqNo, ValueKind, compare_internal_keys, encode_internal_key, parse_internal_key,
    xxh3_64,
};
use kevo_sstable::{
    BLOCK_TRAILER_BYTES, BlockHandle, BlockKind, ChecksumStatus, Compression, FORMAT_VERSION,
    FORMAT_VERSION_MIN, ReadOptions, Table, TableMeta, TableOptions, TableWriter,
};
use proptest::prelude::*;

fn t(start: &str, end: &str, seqno: SeqNo) -> RangeTombstone {
    RangeTombstone::new(start.as_bytes().to_vec(), end.as_bytes().to_vec(), seqno)
}

/// Writes `entries` (sorted) and `tombstones` (in the order given, after
/// the first entry, so they interleave with the points) to [`PATH`].
fn write(
    fs: &dyn Fs,
    entries: &[Entry],
    tombstones: &[RangeTombstone],
    options: TableOptions,
) -> TableMeta {
    let mut writer = TableWriter::create(fs, Path::new(PATH), options).unwrap();
    let (early, late) = tombstones.split_at(tombstones.len() / 2);
    for tombstone in early {
        writer.add_range_tombstone(tombstone).unwrap();
    }
    for entry in entries {
        writer.add(&entry.key, &entry.value).unwrap();
    }
    for tombstone in late {
        writer.add_range_tombstone(tombstone).unwrap();
    }
    writer.finish().unwrap()
}

fn range_key(user_key: &[u8], seqno: SeqNo) -> Vec<u8> {
    let mut key = Vec::new();
    encode_internal_key(&mut key, user_key, seqno, RANGE_DELETE_KIND);
    key
}

fn is_invalid_argument<T>(result: kevo_core::Result<T>) -> bool {
    matches!(result, Err(Error::InvalidArgument(_)))
}

/// Asserts `result` is `Corruption` in [`PATH`] at `offset`.
fn assert_corruption_at<T: std::fmt::Debug>(result: kevo_core::Result<T>, offset: u64) -> String {
    match result {
        Err(Error::Corruption {
            file,
            offset: at,
            reason,
        }) => {
            assert_eq!(file, Path::new(PATH));
            assert_eq!(at, offset, "{reason}");
            reason
        }
        other => panic!("expected corruption at {offset}, got {other:?}"),
    }
}

#[test]
fn overlapping_tombstones_read_back_fragmented() {
    let fs = MemFs::new();
    let points = entries(60, 8);
    let tombstones = [
        t("key000050", "key000070", 500),
        t("key000010", "key000030", 40),
        t("key000020", "key000055", 300),
        t("key000020", "key000055", 300),
        t("zzz", "aaa", 900), // empty: ignored
    ];
    let meta = write(&fs, &points, &tombstones, options());
    let expected = FragmentedTombstones::new(tombstones.clone());
    // [10,20)@40 [20,30)@300,40 [30,50)@300 [50,55)@500,300 [55,70)@500
    assert_eq!(expected.len(), 7);
    let table = open(&fs);
    assert_eq!(**table.range_tombstones(), expected);
    let p = table.properties();
    assert_eq!(p.format_version, FORMAT_VERSION);
    assert_eq!(p.range_tombstone_count, 7);
    assert_eq!(meta.range_tombstone_count, 7);
    assert_eq!(meta.entry_count, points.len() as u64);
    // Point reads see the points alone, tombstoned or not.
    for entry in &points {
        let parsed = parse_internal_key(&entry.key).unwrap();
        let got = table.get(parsed.user_key, SEQNO_MAX).unwrap();
        assert_eq!(
            got.map(|f| (f.seqno, f.kind, f.value.to_vec())),
            model_get(&points, parsed.user_key, SEQNO_MAX)
        );
    }
    let mut cursor = table.cursor();
    cursor.seek_to_first().unwrap();
    let mut scanned = 0;
    while cursor.valid() {
        assert_eq!(cursor.key(), &points[scanned].key[..]);
        scanned += 1;
        cursor.next().unwrap();
    }
    assert_eq!(scanned, points.len());
    let report = table.verify().unwrap();
    assert_eq!(report.entries, points.len() as u64);
    assert_eq!(report.range_tombstones, 7);
    // The last tombstone ends after the last point: its end is the largest key.
    assert_eq!(
        meta.largest_key.as_bytes(),
        range_key(b"key000070", SEQNO_MAX)
    );
    assert_eq!(meta.smallest_key.as_bytes(), &points[0].key[..]);
    assert_eq!((meta.smallest_seqno, meta.largest_seqno), (10, 500));
}

#[test]
fn without_tombstones_the_table_is_version_1_byte_for_byte() {
    let points = entries(40, 10);
    // Version 1 holds no cache-local filter.
    let options = || TableOptions {
        cache_local_filter: false,
        ..options()
    };
    let plain = MemFs::new();
    write_table(&plain, PATH, &points, options());
    let with_empty = MemFs::new();
    // Empty tombstones are ignored: still version 1, the same bytes.
    write(
        &with_empty,
        &points,
        &[t("b", "b", 5), t("z", "a", 6)],
        options(),
    );
    let bytes = plain.read_file(Path::new(PATH)).unwrap();
    assert_eq!(with_empty.read_file(Path::new(PATH)).unwrap(), bytes);
    let table = open(&plain);
    assert_eq!(table.properties().format_version, FORMAT_VERSION_MIN);
    assert_eq!(table.footer().format_version, 1);
    assert!(table.range_tombstones().is_empty());
    assert_eq!(table.properties().range_tombstones, BlockHandle::default());
    assert_eq!(table.verify().unwrap().range_tombstones, 0);
}

#[test]
fn a_table_of_range_tombstones_alone_has_no_data_block() {
    for compression in [Compression::None, Compression::Lz4] {
        if !compression.is_supported() {
            continue;
        }
        for bloom_bits_per_key in [0, 10] {
            let fs = MemFs::new();
            let tombstones = [t("c", "f", 9), t("a", "d", 4)];
            let options = TableOptions {
                compression,
                bloom_bits_per_key,
                ..options()
            };
            let meta = write(&fs, &[], &tombstones, options);
            assert_eq!(meta.entry_count, 0);
            assert_eq!(meta.data_block_count, 0);
            assert_eq!(meta.range_tombstone_count, 4);
            assert_eq!(meta.smallest_key.as_bytes(), range_key(b"a", 4));
            assert_eq!(meta.largest_key.as_bytes(), range_key(b"f", SEQNO_MAX));
            assert_eq!((meta.smallest_seqno, meta.largest_seqno), (4, 9));

            let table = open(&fs);
            assert_eq!(
                **table.range_tombstones(),
                FragmentedTombstones::new(tombstones.clone())
            );
            for key in [&b"a"[..], b"c", b"e", b"z", b""] {
                assert_eq!(table.get(key, SEQNO_MAX).unwrap(), None);
            }
            let mut cursor = table.cursor();
            cursor.seek_to_first().unwrap();
            assert!(!cursor.valid());
            cursor.seek_to_last().unwrap();
            assert!(!cursor.valid());
            let target = InternalKey::for_lookup(b"c", SEQNO_MAX);
            cursor.seek(target.as_bytes()).unwrap();
            assert!(!cursor.valid());
            cursor.seek_for_prev(target.as_bytes()).unwrap();
            assert!(!cursor.valid());
            cursor.next().unwrap();
            cursor.prev().unwrap();
            assert!(!cursor.valid());

            let report = table.verify().unwrap();
            assert_eq!((report.data_blocks, report.entries), (0, 0));
            assert_eq!(report.range_tombstones, 4);

            let blocks: Vec<_> = table.blocks().map(Result::unwrap).collect();
            let kinds: Vec<_> = blocks.iter().map(|b| b.kind).collect();
            let mut expected = vec![BlockKind::RangeTombstones];
            if bloom_bits_per_key > 0 {
                expected.push(BlockKind::Filter);
            }
            expected.extend([BlockKind::Properties, BlockKind::Index]);
            assert_eq!(kinds, expected);
            assert_contiguous(&table, &blocks);

            let salvaged = table.salvage(|_, _| panic!("no entry")).unwrap();
            assert_eq!(salvaged.entries, 0);
            assert!(salvaged.skipped.is_empty());
        }
    }
}

fn assert_contiguous(table: &Table, blocks: &[kevo_sstable::BlockInfo]) {
    let mut offset = 0;
    for block in blocks {
        assert_eq!(block.handle.offset, offset, "{block:?}");
        assert_eq!(block.checksum, ChecksumStatus::Ok);
        offset = block.handle.end_with_trailer().unwrap();
    }
    assert_eq!(
        offset + kevo_sstable::FOOTER_BYTES as u64,
        table.file_size()
    );
}

#[test]
fn block_walk_puts_the_range_tombstones_between_data_and_filter() {
    let fs = MemFs::new();
    let points = entries(300, 30);
    let tombstones: Vec<_> = (0..50)
        .map(|i| {
            t(
                &format!("key{:06}", i * 5),
                &format!("key{:06}", i * 5 + 9),
                7 + i,
            )
        })
        .collect();
    write(
        &fs,
        &points,
        &tombstones,
        TableOptions {
            block_bytes_target: 512,
            ..options()
        },
    );
    let table = open(&fs);
    let blocks: Vec<_> = table.blocks().map(Result::unwrap).collect();
    let data = table.properties().data_block_count as usize;
    assert!(data > 3);
    assert!(blocks[..data].iter().all(|b| b.kind == BlockKind::Data));
    let kinds: Vec<_> = blocks[data..].iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
            BlockKind::RangeTombstones,
            BlockKind::Filter,
            BlockKind::Properties,
            BlockKind::Index
        ]
    );
    assert_eq!(blocks[data].handle, table.properties().range_tombstones);
    assert_contiguous(&table, &blocks);
    if cfg!(feature = "lz4") {
        // Many similar keys: the block compresses like a data block.
        assert_eq!(blocks[data].compression, Some(Compression::Lz4));
    }
    assert_eq!(
        **table.range_tombstones(),
        FragmentedTombstones::new(tombstones)
    );
}

#[test]
fn writer_refuses_oversized_keys_and_seqnos_and_empty_tables() {
    let fs = MemFs::new();
    let mut writer = TableWriter::create(&fs, Path::new(PATH), options()).unwrap();
    let long = vec![b'k'; kevo_core::KEY_BYTES_MAX + 1];
    assert!(is_invalid_argument(writer.add_range_tombstone(
        &RangeTombstone::new(b"a".to_vec(), long.clone(), 1)
    )));
    assert!(is_invalid_argument(writer.add_range_tombstone(
        &RangeTombstone::new(long, b"z".to_vec(), 1)
    )));
    assert!(is_invalid_argument(writer.add_range_tombstone(&t(
        "a",
        "b",
        SEQNO_MAX + 1
    ))));
    writer.add_range_tombstone(&t("b", "a", 3)).unwrap();
    writer.add_range_tombstone(&t("b", "b", 3)).unwrap();
    assert_eq!(writer.range_tombstone_count(), 0, "empty ones are ignored");
    assert!(is_invalid_argument(writer.finish()), "nothing to write");

    let mut writer = TableWriter::create(&fs, Path::new(PATH), options()).unwrap();
    writer.add_range_tombstone(&t("a", "b", SEQNO_MAX)).unwrap();
    writer.add_range_tombstone(&t("a", "b", 0)).unwrap();
    assert_eq!(writer.range_tombstone_count(), 2);
    let meta = writer.finish().unwrap();
    assert_eq!((meta.smallest_seqno, meta.largest_seqno), (0, SEQNO_MAX));
    open(&fs).verify().unwrap();
}

/// A table with points and tombstones, its bytes and the range-tombstone
/// block's handle.
fn v2_table(compression: Compression) -> (Vec<Entry>, Vec<RangeTombstone>, Vec<u8>, BlockHandle) {
    let fs = MemFs::new();
    let points = entries(24, 12);
    let tombstones = vec![
        t("key000003", "key000009", 150),
        t("key000005", "key000020", 90),
        t("a", "b", 12),
    ];
    write(
        &fs,
        &points,
        &tombstones,
        TableOptions {
            block_bytes_target: 200,
            restart_interval: 3,
            compression,
            ..options()
        },
    );
    let handle = open(&fs).properties().range_tombstones;
    (
        points,
        tombstones,
        fs.read_file(Path::new(PATH)).unwrap(),
        handle,
    )
}

fn open_bytes(bytes: &[u8]) -> kevo_core::Result<Table> {
    let fs = MemFs::new();
    fs.write_file(Path::new(PATH), bytes).unwrap();
    Table::open(&fs, Path::new(PATH), ReadOptions::default())
}

#[test]
fn a_flipped_bit_in_the_range_tombstone_block_is_corruption_at_its_offset() {
    for compression in [Compression::None, Compression::Lz4] {
        if !compression.is_supported() {
            continue;
        }
        let (_, _, bytes, handle) = v2_table(compression);
        let start = handle.offset as usize;
        let end = handle.end_with_trailer().unwrap() as usize;
        for bit in start * 8..end * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let reason = assert_corruption_at(open_bytes(&damaged), handle.offset);
            assert!(
                reason.contains("checksum") || reason.contains("compression"),
                "bit {bit}: {reason}"
            );
        }
    }
}

#[test]
fn every_single_bit_flip_of_a_version_2_table_is_caught() {
    let (points, tombstones, bytes, _) = v2_table(Compression::None);
    let expected = FragmentedTombstones::new(tombstones);
    for bit in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        let table = match open_bytes(&damaged) {
            Err(err) => {
                assert!(err.is_corruption(), "bit {bit}: {err}");
                continue;
            }
            Ok(table) => Arc::new(table),
        };
        // Only a data block can be damaged and still open; the range
        // tombstones were checked at open.
        assert_eq!(**table.range_tombstones(), expected, "bit {bit}");
        for entry in &points {
            let parsed = parse_internal_key(&entry.key).unwrap();
            match table.get(parsed.user_key, SEQNO_MAX) {
                Ok(got) => assert_eq!(
                    got.map(|f| (f.seqno, f.kind, f.value.to_vec())),
                    model_get(&points, parsed.user_key, SEQNO_MAX),
                    "bit {bit}"
                ),
                Err(err) => assert!(err.is_corruption(), "bit {bit}: {err}"),
            }
        }
        assert!(table.verify().unwrap_err().is_corruption(), "bit {bit}");
    }
}

/// `bytes` with the range-tombstone block's stored bytes changed by
/// `change` and its checksum recomputed (crafted damage, not bit rot).
fn resealed(bytes: &[u8], handle: BlockHandle, change: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let start = handle.offset as usize;
    let type_at = start + handle.size as usize;
    change(&mut bytes[start..type_at]);
    let checksum = xxh3_64(&bytes[start..=type_at]);
    bytes[type_at + 1..type_at + BLOCK_TRAILER_BYTES].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

#[test]
fn malformed_range_tombstones_with_valid_checksums_are_corruption_at_the_block() {
    let (_, _, bytes, handle) = v2_table(Compression::None);
    assert!(open_bytes(&resealed(&bytes, handle, |_| {})).is_ok());
    // The first entry: header (3 bytes), "a", trailer (8), value "b".
    const KIND_AT: usize = 3 + 1;
    const SEQNO_AT: usize = KIND_AT + 1;
    type Change = fn(&mut [u8]);
    let cases: [(&str, Change); 4] = [
        ("kind", |b| b[KIND_AT] = ValueKind::Put as u8),
        // Seqno 12 + 256: above the table's largest seqno (150).
        ("seqno", |b| b[SEQNO_AT + 1] = 1),
        // End "b" becomes "a": an empty fragment.
        ("fragment", |b| b[SEQNO_AT + 7] = b'a'),
        // The restart count.
        ("restart", |b| b[b.len() - 4] = 0),
    ];
    for (what, change) in cases {
        let damaged = resealed(&bytes, handle, change);
        let reason = assert_corruption_at(open_bytes(&damaged), handle.offset);
        assert!(reason.contains(what), "{what}: {reason}");
    }
}

#[test]
fn range_tombstone_seqnos_outside_the_properties_range_are_corruption() {
    // Two tables, the same but for one tombstone seqno: swapping their
    // range-tombstone blocks (same size) keeps every checksum valid.
    let fs = MemFs::new();
    let points = entries(5, 4);
    write(&fs, &points, &[t("a", "b", 1), t("a", "b", 3)], options());
    let one = fs.read_file(Path::new(PATH)).unwrap();
    let handle = open(&fs).properties().range_tombstones;
    write(&fs, &points, &[t("a", "b", 2), t("a", "b", 3)], options());
    let other = fs.read_file(Path::new(PATH)).unwrap();
    assert_eq!(open(&fs).properties().range_tombstones, handle);
    // Seqno 2 lies within the first table's range (1..): accepted.
    let end = handle.end_with_trailer().unwrap() as usize;
    let mut swapped = one.clone();
    swapped[handle.offset as usize..end].copy_from_slice(&other[handle.offset as usize..end]);
    let table = open_bytes(&swapped).unwrap();
    assert_eq!(table.range_tombstones().fragments()[0].seqnos, [3, 2]);
    // The other way round: seqno 1 lies below the second table's range.
    let mut swapped = other.clone();
    swapped[handle.offset as usize..end].copy_from_slice(&one[handle.offset as usize..end]);
    assert_corruption_at(open_bytes(&swapped), handle.offset);
}

fn tombstone() -> impl Strategy<Value = RangeTombstone> {
    let key = || {
        prop_oneof![
            4 => proptest::collection::vec(0u8..4, 0..5),
            1 => proptest::collection::vec(any::<u8>(), 0..40),
        ]
    };
    (key(), key(), 0..60u64).prop_map(|(a, b, s)| RangeTombstone::new(a, b, s))
}

fn point() -> impl Strategy<Value = Entry> {
    (
        proptest::collection::vec(0u8..4, 0..5),
        0..60u64,
        any::<bool>(),
    )
        .prop_map(|(key, seqno, delete)| {
            if delete {
                Entry::new(&key, seqno, ValueKind::Delete, b"")
            } else {
                Entry::new(&key, seqno, ValueKind::Put, &key)
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn bounds_cover_every_point_and_tombstone(
        points in proptest::collection::vec(point(), 0..40),
        tombstones in proptest::collection::vec(tombstone(), 0..12),
        block_bytes_target in 1usize..300,
        lz4 in any::<bool>(),
        bloom_bits_per_key in prop_oneof![Just(0u32), Just(10u32)],
        cache_local_filter in any::<bool>(),
    ) {
        let points = sorted(points);
        let expected = FragmentedTombstones::new(tombstones.clone());
        prop_assume!(!points.is_empty() || !expected.is_empty());
        let fs = MemFs::new();
        let options = TableOptions {
            block_bytes_target,
            compression: if lz4 && cfg!(feature = "lz4") { Compression::Lz4 } else { Compression::None },
            bloom_bits_per_key,
            cache_local_filter,
            ..options()
        };
        let meta = write(&fs, &points, &tombstones, options);
        let table = open(&fs);
        prop_assert_eq!(&**table.range_tombstones(), &expected);
        prop_assert_eq!(meta.range_tombstone_count, expected.len() as u64);
        let version = if bloom_bits_per_key > 0 && cache_local_filter {
            3
        } else if expected.is_empty() {
            1
        } else {
            2
        };
        prop_assert_eq!(table.properties().format_version, version);

        // Every key the table stores, points and tombstones alike, lies in
        // [smallest, largest]; the ends of the range are taken.
        let mut keys: Vec<Vec<u8>> = points.iter().map(|e| e.key.clone()).collect();
        let mut seqnos: Vec<SeqNo> = points.iter().map(|e| parse_internal_key(&e.key).unwrap().seqno).collect();
        for f in expected.fragments() {
            keys.push(range_key(&f.start, f.seqnos[0]));
            keys.push(end_bound(&f.end));
            seqnos.extend(&f.seqnos);
        }
        for key in &keys {
            prop_assert_ne!(compare_internal_keys(meta.smallest_key.as_bytes(), key), Ordering::Greater);
            prop_assert_ne!(compare_internal_keys(meta.largest_key.as_bytes(), key), Ordering::Less);
        }
        prop_assert!(keys.iter().any(|k| k == meta.smallest_key.as_bytes()));
        prop_assert!(keys.iter().any(|k| k == meta.largest_key.as_bytes()));
        prop_assert_eq!(meta.smallest_seqno, *seqnos.iter().min().unwrap());
        prop_assert_eq!(meta.largest_seqno, *seqnos.iter().max().unwrap());
        // Every tombstone key lies inside the sentinel: the end sorts
        // before every real entry of the end key.
        for f in expected.fragments() {
            let sentinel = end_bound(&f.end);
            let entry_at_end = InternalKey::new(&f.end, SEQNO_MAX, ValueKind::Put);
            prop_assert_eq!(compare_internal_keys(&sentinel, entry_at_end.as_bytes()), Ordering::Less);
        }

        let report = table.verify().unwrap();
        prop_assert_eq!(report.entries, points.len() as u64);
        prop_assert_eq!(report.range_tombstones, expected.len() as u64);
        for entry in &points {
            let parsed = parse_internal_key(&entry.key).unwrap();
            for snapshot in [parsed.seqno, SEQNO_MAX] {
                let got = table.get(parsed.user_key, snapshot).unwrap();
                prop_assert_eq!(
                    got.map(|f| (f.seqno, f.kind, f.value.to_vec())),
                    model_get(&points, parsed.user_key, snapshot)
                );
            }
        }
    }
}

/// The table bound a fragment ending at `end` gives: `end` with the
/// trailer `(SEQNO_MAX, RANGE_DELETE_KIND)` (before every entry of `end`),
/// or, for an end `k + [0]`, `k` with the trailer 0 (after every entry of
/// `k`, the largest key covered).
fn end_bound(end: &[u8]) -> Vec<u8> {
    match end.split_last() {
        Some((0, covered)) => {
            let mut key = covered.to_vec();
            key.extend_from_slice(&[0u8; 8]);
            key
        }
        _ => range_key(end, SEQNO_MAX),
    }
}

#[test]
fn an_end_just_after_a_key_bounds_the_table_at_that_key() {
    let fs = MemFs::new();
    let tombstones = [RangeTombstone::new(b"b".to_vec(), b"k\0".to_vec(), 9)];
    let meta = write(&fs, &[], &tombstones, options());
    assert_eq!(meta.largest_key.user_key(), b"k");
    assert_eq!(meta.largest_key.seqno(), 0);
    let table = open(&fs);
    table.verify().unwrap();
    assert_eq!(table.properties().largest_key, meta.largest_key);
}
