//! Keyspaces in the log: batches whose entries name keyspaces replay
//! unchanged, new segments carry format version 2, and segments of format
//! version 1 (written before keyspaces) are still read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use kevo_core::{DEFAULT_KEYSPACE, Fs, KeyspaceId, MemFs, crc32};
use kevo_wal::{
    BLOCK_BYTES, Batch, EntryKind, Error, FORMAT_VERSION, FORMAT_VERSION_MIN, RecoveryMode,
    SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, Wal, WalOptions,
};

/// A batch whose entries cycle through keyspaces 0, 1, 300 and `u32::MAX`,
/// puts and deletes, with values of `value_len` bytes.
fn mixed_batch(seqno: u64, n: usize, value_len: usize) -> Batch {
    const KEYSPACES: [KeyspaceId; 4] = [DEFAULT_KEYSPACE, 1, 300, u32::MAX];
    let mut batch = Batch::new();
    batch.set_seqno(seqno);
    for i in 0..n {
        let keyspace = KEYSPACES[i % KEYSPACES.len()];
        let key = format!("key-{seqno}-{i}");
        if i % 3 == 2 {
            batch.delete_in(keyspace, key);
        } else {
            batch.put_in(keyspace, key, vec![(seqno as usize + i) as u8; value_len]);
        }
    }
    batch
}

/// Every entry of `batches`: keyspace, kind, key and value.
fn entries(batches: &[Batch]) -> Vec<(KeyspaceId, EntryKind, Vec<u8>, Vec<u8>)> {
    batches
        .iter()
        .flat_map(|b| b.iter())
        .map(|e| (e.keyspace, e.kind, e.key.to_vec(), e.value.to_vec()))
        .collect()
}

/// A segment file of format `version`: its header, then each payload as
/// one `Full` fragment. Built byte by byte from `docs/format/wal.md`, not
/// with the crate's encoder.
fn segment_bytes(version: u16, segment: u64, payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&SEGMENT_MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&segment.to_le_bytes());
    let crc = crc32(&[&out[..20]]);
    out.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(out.len(), SEGMENT_HEADER_BYTES);
    for payload in payloads {
        let mut header = Vec::new();
        header.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        header.push(1); // Full
        header.extend_from_slice(&(segment as u32).to_le_bytes());
        out.extend_from_slice(&crc32(&[&header, payload]).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
    }
    out
}

/// Segment 1 at version 1 holding one batch, seqno 1, `put("k", "v")`:
/// byte for byte the worked example of the version-1 format.
const V1_SEGMENT: &[u8] = &[
    0x4b, 0x45, 0x56, 0x4f, 0x57, 0x41, 0x4c, 0x00, // magic
    0x01, 0x00, 0x00, 0x00, // version 1, flags
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // segment 1
    0x04, 0xbd, 0xa8, 0x00, // header crc
    0xe8, 0x1d, 0x23, 0x63, // fragment crc
    0x11, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, // length 17, Full, tag 1
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seqno 1
    0x01, 0x00, 0x00, 0x00, // count 1
    0x02, 0x01, 0x6b, 0x01, 0x76, // Put "k" "v"
];

fn write_segment(mem: &MemFs, segment: u64, bytes: &[u8]) {
    mem.create_dir_all(&dir()).unwrap();
    mem.write_file(&segment_path(segment), bytes).unwrap();
}

#[test]
fn mixed_keyspace_batches_replay_unchanged() {
    let (_, fs) = memfs();
    let batches = vec![
        mixed_batch(1, 7, 10),
        mixed_batch(8, 1, 0),
        // Spans several blocks.
        mixed_batch(9, 8, BLOCK_BYTES / 2),
        Batch::new(),
        mixed_batch(17, 13, 3),
    ];
    write_log(fs.clone(), WalOptions::default(), &batches);
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::SkipCorrupted,
    ] {
        let (replayed, report) = replay(fs.clone(), mode).unwrap();
        assert_eq!(replayed, batches, "{mode:?}");
        assert_eq!(entries(&replayed), entries(&batches), "{mode:?}");
        assert!(report.skipped.is_empty() && report.torn_tail.is_none());
        // One seqno sequence across keyspaces: the last entry's.
        assert_eq!(report.last_seqno, Some(29));
    }
    let keyspaces: Vec<_> = entries(&batches).iter().map(|e| e.0).collect();
    assert!(keyspaces.contains(&u32::MAX) && keyspaces.contains(&DEFAULT_KEYSPACE));
}

#[test]
fn new_segments_carry_format_version_4() {
    assert_eq!((FORMAT_VERSION_MIN, FORMAT_VERSION), (1, 4));
    let (mem, fs) = memfs();
    let wal = open(fs, WalOptions::default());
    wal.append(&mixed_batch(1, 2, 1)).unwrap();
    let rotated = wal.rotate().unwrap();
    wal.close().unwrap();
    for segment in [1, rotated] {
        let bytes = mem.read_file(&segment_path(segment)).unwrap();
        assert_eq!(bytes[8..10], [0x04, 0x00], "segment {segment}");
    }
    // The rotated segment opens with its `Predecessor` fragment: type 5,
    // then segment 1 and its final length.
    let first = mem.read_file(&segment_path(1)).unwrap();
    let bytes = mem.read_file(&segment_path(rotated)).unwrap();
    let fragment = &bytes[24..24 + 27];
    assert_eq!(fragment[4..7], [16, 0, 5]);
    assert_eq!(fragment[11..19], 1u64.to_le_bytes());
    assert_eq!(fragment[19..27], (first.len() as u64).to_le_bytes());
}

#[test]
fn a_version_1_segment_still_replays() {
    let (mem, fs) = memfs();
    write_segment(&mem, 1, V1_SEGMENT);
    let (replayed, report) = replay(fs.clone(), RecoveryMode::AbsoluteConsistency).unwrap();
    let mut expected = Batch::new();
    expected.set_seqno(1);
    expected.put("k", "v");
    assert_eq!(replayed, vec![expected.clone()]);
    assert_eq!(
        entries(&replayed),
        vec![(
            DEFAULT_KEYSPACE,
            EntryKind::Put,
            b"k".to_vec(),
            b"v".to_vec()
        )]
    );
    assert_eq!(report.segment_ends, vec![(1, V1_SEGMENT.len() as u64)]);

    // The log goes on in a version-4 segment; both replay, in order.
    let mut recovery = Wal::open(fs.clone(), &dir(), WalOptions::default()).unwrap();
    assert_eq!(recovery.next().unwrap().unwrap().batch, expected);
    let (wal, _) = recovery.finish().unwrap();
    assert_eq!(wal.current_segment(), 2);
    let next = mixed_batch(2, 4, 5);
    wal.append(&next).unwrap();
    wal.close().unwrap();
    assert_eq!(mem.read_file(&segment_path(1)).unwrap(), V1_SEGMENT);
    assert_eq!(
        mem.read_file(&segment_path(2)).unwrap()[8..10],
        [0x04, 0x00]
    );
    let (replayed, report) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, vec![expected, next]);
    assert_eq!(report.segments, vec![1, 2]);
}

#[test]
fn a_version_1_segment_built_from_the_spec_matches_the_fixture() {
    let mut payload = Vec::new();
    payload.extend_from_slice(&1u64.to_le_bytes());
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&[0x02, 0x01, b'k', 0x01, b'v']);
    assert_eq!(segment_bytes(1, 1, &[&payload]), V1_SEGMENT);
}

#[test]
fn a_keyspace_entry_in_a_version_1_segment_is_corruption() {
    let (mem, fs) = memfs();
    let mut batch = Batch::new();
    batch.set_seqno(1);
    batch.put("a", "1");
    let mut keyspaced = Batch::new();
    keyspaced.set_seqno(2);
    keyspaced.put_in(5, "b", "2");
    let mut after = Batch::new();
    after.set_seqno(3);
    after.delete("c");
    let payloads = [batch.as_bytes(), keyspaced.as_bytes(), after.as_bytes()];
    write_segment(&mem, 1, &segment_bytes(1, 1, &payloads));
    match replay(fs.clone(), RecoveryMode::TolerateTornTail) {
        Err(Error::Corruption {
            segment: 1, reason, ..
        }) => assert!(reason.contains("format-1"), "{reason}"),
        other => panic!("expected corruption, got {other:?}"),
    }
    // Salvage skips that batch only.
    let (replayed, report) = replay(fs.clone(), RecoveryMode::SkipCorrupted).unwrap();
    assert_eq!(replayed, vec![batch.clone(), after.clone()]);
    assert_eq!(report.skipped.len(), 1);
    // The same records in a version-2 segment are fine.
    write_segment(&mem, 1, &segment_bytes(2, 1, &payloads));
    let (replayed, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, vec![batch, keyspaced, after]);
}

#[test]
fn a_range_delete_in_a_version_2_segment_is_corruption() {
    let (mem, fs) = memfs();
    let mut batch = Batch::new();
    batch.set_seqno(1);
    batch.put_in(3, "a", "1");
    let mut ranged = Batch::new();
    ranged.set_seqno(2);
    ranged.delete_range_in(3, "a", "m");
    let payloads = [batch.as_bytes(), ranged.as_bytes()];
    write_segment(&mem, 1, &segment_bytes(2, 1, &payloads));
    match replay(fs.clone(), RecoveryMode::AbsoluteConsistency) {
        Err(Error::Corruption {
            segment: 1, reason, ..
        }) => assert!(reason.contains("range delete"), "{reason}"),
        other => panic!("expected corruption, got {other:?}"),
    }
    // At version 3 the same records replay, the range delete whole.
    write_segment(&mem, 1, &segment_bytes(3, 1, &payloads));
    let (replayed, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, vec![batch, ranged.clone()]);
    assert_eq!(
        entries(&replayed[1..]),
        vec![(3, EntryKind::RangeDelete, b"a".to_vec(), b"m".to_vec())]
    );
}

#[test]
fn a_segment_of_an_unknown_version_is_refused_in_every_mode() {
    let (mem, fs) = memfs();
    let batch = mixed_batch(1, 2, 2);
    for version in [0, FORMAT_VERSION + 1] {
        write_segment(&mem, 1, &segment_bytes(version, 1, &[batch.as_bytes()]));
        for mode in [
            RecoveryMode::TolerateTornTail,
            RecoveryMode::AbsoluteConsistency,
            RecoveryMode::SkipCorrupted,
        ] {
            match replay(fs.clone(), mode) {
                Err(Error::Corruption { reason, .. }) => assert!(
                    reason.contains(&format!("unsupported segment format version {version}")),
                    "{reason}"
                ),
                other => panic!("{mode:?}, version {version}: {other:?}"),
            }
        }
    }
}

#[test]
fn an_explicit_default_keyspace_in_a_segment_is_corruption() {
    let (mem, fs) = memfs();
    // seqno 1, one Put in keyspace "0" (tag | 0x80 followed by 0).
    let mut payload = Vec::new();
    payload.extend_from_slice(&1u64.to_le_bytes());
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&[0x82, 0x00, 0x01, b'k', 0x01, b'v']);
    write_segment(&mem, 1, &segment_bytes(2, 1, &[&payload]));
    let err = replay(fs.clone(), RecoveryMode::TolerateTornTail).unwrap_err();
    assert!(err.is_corruption(), "{err:?}");
    let (replayed, report) = replay(fs, RecoveryMode::SkipCorrupted).unwrap();
    assert!(replayed.is_empty());
    assert_eq!(report.skipped.len(), 1);
}

#[test]
fn group_of_mixed_batches_extends_into_one_record() {
    let (_, fs) = memfs();
    let mut group = mixed_batch(1, 5, 3);
    group.extend(&mixed_batch(100, 6, 4));
    write_log(
        fs.clone(),
        WalOptions::default(),
        std::slice::from_ref(&group),
    );
    let (replayed, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, vec![group.clone()]);
    let mut expected = entries(&[mixed_batch(1, 5, 3)]);
    expected.extend(entries(&[mixed_batch(100, 6, 4)]));
    assert_eq!(entries(&replayed), expected);
    assert_eq!(replayed[0].last_seqno(), 11);
}

/// A manifest-like log written with `kevo_wal::log` keeps header version 1.
#[test]
fn logs_written_with_the_log_module_keep_version_1() {
    use kevo_wal::log::{LOG_FORMAT_VERSION, LogReader, LogWriter};
    const MAGIC: [u8; 8] = *b"KEVOMAN\0";
    let mem = MemFs::new();
    let path = std::path::Path::new("/MANIFEST-000001");
    let file = mem.create(path).unwrap();
    let mut writer = LogWriter::new(file, 1, MAGIC).unwrap();
    writer.add_record(b"edit").unwrap();
    writer.sync().unwrap();
    let bytes = mem.read_file(path).unwrap();
    assert_eq!(LOG_FORMAT_VERSION, 1);
    assert_eq!(bytes[8..10], [0x01, 0x00]);
    let file: Arc<dyn kevo_core::File> = mem.open_read(path).unwrap();
    let mut reader = LogReader::open(file, path, 1, MAGIC).unwrap();
    assert_eq!(reader.read_record().unwrap().unwrap().bytes, b"edit");
}
