//! Replay and recovery: what comes back from a log, intact or damaged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use kevo_wal::{
    BLOCK_BYTES, Batch, Error, FRAGMENT_HEADER_BYTES, RecoveryMode, SEGMENT_HEADER_BYTES, SyncMode,
    WalOptions,
};

fn options() -> WalOptions {
    WalOptions::default()
}

#[test]
fn appended_batches_replay_in_order() {
    let (_, fs) = memfs();
    let batches: Vec<Batch> = (1..=20).map(|i| batch(i, (i % 4) as usize, 10)).collect();
    write_log(fs.clone(), options(), &batches);
    let (replayed, report) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, batches);
    assert_eq!(report.batches, 20);
    assert_eq!(report.tail_bytes_dropped, 0);
    assert_eq!(report.last_seqno, Some(19 * 1000 + 2));
}

/// With `buffer_bytes`, appends wait in memory until the buffer fills, a
/// sync, a rotation, or the log is dropped; then they replay as usual.
#[test]
fn buffered_appends_reach_the_file_on_sync_rotation_and_drop() {
    let (_, fs) = memfs();
    let options = WalOptions {
        sync_mode: SyncMode::None,
        buffer_bytes: 1 << 20,
        segment_bytes: 256 * 1024,
        ..WalOptions::default()
    };
    let wal = open(fs.clone(), options.clone());
    let path = segment_path(1);
    let header = file_len(fs.as_ref(), &path);
    wal.append(&batch(1, 2, 10)).unwrap();
    assert_eq!(file_len(fs.as_ref(), &path), header, "still in memory");
    wal.sync().unwrap();
    assert!(file_len(fs.as_ref(), &path) > header, "written by the sync");
    // Enough to rotate: the sealed segment holds everything before.
    let big: Vec<Batch> = (2..=40).map(|i| batch(i, 1, 10_000)).collect();
    for b in &big {
        wal.append(b).unwrap();
    }
    drop(wal);
    let (replayed, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    let mut want = vec![batch(1, 2, 10)];
    want.extend(big);
    assert_eq!(replayed, want);
}

#[test]
fn empty_directory_replays_nothing() {
    let (_, fs) = memfs();
    fs.create_dir_all(&dir()).unwrap();
    let (replayed, report) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert!(replayed.is_empty());
    assert!(report.segments.is_empty());
}

#[test]
fn batch_spanning_many_blocks_round_trips() {
    let (_, fs) = memfs();
    let batches = vec![batch(1, 3, 5), batch(2, 4, 3 * BLOCK_BYTES), batch(3, 1, 0)];
    write_log(fs.clone(), options(), &batches);
    let (replayed, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, batches);
}

#[test]
fn reopening_continues_in_a_new_segment() {
    let (_, fs) = memfs();
    write_log(fs.clone(), options(), &[batch(1, 1, 1)]);
    let mut recovery = kevo_wal::Wal::open(fs.clone(), &dir(), options()).unwrap();
    assert_eq!(recovery.next().unwrap().unwrap().batch, batch(1, 1, 1));
    let (wal, report) = recovery.finish().unwrap();
    assert_eq!(report.segments, vec![1]);
    assert_eq!(wal.current_segment(), 2);
    wal.append(&batch(2, 1, 1)).unwrap();
    drop(wal);
    let (replayed, report) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, vec![batch(1, 1, 1), batch(2, 1, 1)]);
    assert_eq!(report.segments, vec![1, 2]);
}

#[test]
fn torn_tail_record_is_trimmed() {
    let (_, fs) = memfs();
    let batches: Vec<Batch> = (1..=3).map(|i| batch(i, 2, 50)).collect();
    write_log(fs.clone(), options(), &batches);
    let path = segment_path(1);
    let len = file_len(fs.as_ref(), &path);
    fs.open_write(&path).unwrap().set_len(len - 7).unwrap();

    let (replayed, report) = replay(fs.clone(), RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(replayed, batches[..2].to_vec());
    assert!(report.tail_bytes_dropped > 0);
    assert_eq!(report.torn_tail.map(|(segment, _)| segment), Some(1));
}

#[test]
fn recovery_truncates_the_torn_tail_so_the_next_recovery_is_clean() {
    let (_, fs) = memfs();
    let batches: Vec<Batch> = (1..=3).map(|i| batch(i, 2, 50)).collect();
    write_log(fs.clone(), options(), &batches);
    let path = segment_path(1);
    let len = file_len(fs.as_ref(), &path);
    fs.open_write(&path).unwrap().set_len(len - 7).unwrap();

    let (wal, report) = kevo_wal::Wal::open(fs.clone(), &dir(), options())
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(report.batches, 2);
    wal.append(&batch(9, 1, 1)).unwrap();
    drop(wal);
    // The damaged segment is no longer the last one: had its tail not been
    // cut, this would be corruption in the middle of the log.
    let (replayed, report) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(
        replayed,
        vec![batches[0].clone(), batches[1].clone(), batch(9, 1, 1)]
    );
    assert_eq!(report.tail_bytes_dropped, 0);
}

#[test]
fn record_cut_inside_a_later_block_is_a_torn_tail() {
    let (_, fs) = memfs();
    let batches = vec![batch(1, 1, 10), batch(2, 1, 2 * BLOCK_BYTES)];
    write_log(fs.clone(), options(), &batches);
    let path = segment_path(1);
    // Cut inside the second block: the big record's Last fragment is lost.
    fs.open_write(&path)
        .unwrap()
        .set_len(BLOCK_BYTES as u64 + 100)
        .unwrap();
    let (replayed, report) = replay(fs, RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(replayed, batches[..1].to_vec());
    let first_record_end =
        SEGMENT_HEADER_BYTES + FRAGMENT_HEADER_BYTES + batches[0].as_bytes().len();
    assert_eq!(report.torn_tail, Some((1, first_record_end as u64)));
    assert_eq!(
        report.tail_bytes_dropped,
        BLOCK_BYTES as u64 + 100 - first_record_end as u64
    );
}

#[test]
fn bit_flip_in_middle_is_corruption() {
    let (mem, fs) = memfs();
    let batches: Vec<Batch> = (1..=3).map(|i| batch(i, 2, 50)).collect();
    let positions = write_log(fs.clone(), options(), &batches);
    let damaged = positions[1].offset + FRAGMENT_HEADER_BYTES as u64 + 3;
    mem.corrupt(&segment_path(1), damaged, 0x10).unwrap();

    let err = replay(fs, RecoveryMode::TolerateTornTail).unwrap_err();
    match err {
        Error::Corruption {
            segment, offset, ..
        } => {
            assert_eq!(segment, 1);
            assert_eq!(offset, positions[1].offset);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn bit_flip_in_an_earlier_segment_is_corruption() {
    let (mem, fs) = memfs();
    let wal = open(fs.clone(), options());
    let first = wal.append(&batch(1, 1, 10)).unwrap();
    wal.rotate().unwrap();
    wal.append(&batch(2, 1, 10)).unwrap();
    drop(wal);
    // The only record of segment 1 is damaged; segment 2 follows.
    mem.corrupt(&segment_path(1), first.offset + 20, 1).unwrap();
    let err = replay(fs, RecoveryMode::TolerateTornTail).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { segment: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn damaged_last_record_is_trimmed_like_a_torn_tail() {
    let (mem, fs) = memfs();
    let batches: Vec<Batch> = (1..=3).map(|i| batch(i, 2, 50)).collect();
    let positions = write_log(fs.clone(), options(), &batches);
    mem.corrupt(&segment_path(1), positions[2].offset + 30, 0x01)
        .unwrap();
    let (replayed, report) = replay(fs, RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(replayed, batches[..2].to_vec());
    assert_eq!(report.torn_tail, Some((1, positions[2].offset)));
}

#[test]
fn absolute_consistency_rejects_a_torn_tail() {
    let (_, fs) = memfs();
    write_log(fs.clone(), options(), &[batch(1, 1, 10), batch(2, 1, 10)]);
    let path = segment_path(1);
    let len = file_len(fs.as_ref(), &path);
    fs.open_write(&path).unwrap().set_len(len - 1).unwrap();
    let err = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap_err();
    assert!(err.is_corruption(), "{err:?}");
}

#[test]
fn skip_corrupted_salvages_records_after_damage() {
    let (mem, fs) = memfs();
    let batches: Vec<Batch> = (1..=4).map(|i| batch(i, 2, 50)).collect();
    let positions = write_log(fs.clone(), options(), &batches);
    mem.corrupt(&segment_path(1), positions[1].offset + 40, 0xFF)
        .unwrap();
    let (replayed, report) = replay(fs, RecoveryMode::SkipCorrupted).unwrap();
    assert_eq!(
        replayed,
        vec![batches[0].clone(), batches[2].clone(), batches[3].clone()]
    );
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].offset, positions[1].offset);
    assert_eq!(
        report.skipped[0].len,
        positions[2].offset - positions[1].offset
    );
}

#[test]
fn skip_corrupted_drops_a_multi_block_record_with_a_damaged_fragment() {
    let (mem, fs) = memfs();
    let batches = vec![
        batch(1, 1, 10),
        batch(2, 1, 3 * BLOCK_BYTES),
        batch(3, 1, 10),
    ];
    let positions = write_log(fs.clone(), options(), &batches);
    // Damage the big record's second fragment (in block 1).
    mem.corrupt(&segment_path(1), BLOCK_BYTES as u64 + 50, 0x04)
        .unwrap();
    let (replayed, report) = replay(fs, RecoveryMode::SkipCorrupted).unwrap();
    assert_eq!(replayed, vec![batches[0].clone(), batches[2].clone()]);
    assert!(!report.skipped.is_empty());
    assert_eq!(report.skipped[0].offset, positions[1].offset);
}

#[test]
fn zeroed_space_after_the_last_record_is_a_clean_end() {
    let (_, fs) = memfs();
    write_log(fs.clone(), options(), &[batch(1, 1, 10)]);
    let path = segment_path(1);
    let len = file_len(fs.as_ref(), &path);
    fs.open_write(&path)
        .unwrap()
        .set_len(len + 3 * BLOCK_BYTES as u64)
        .unwrap();
    let (replayed, report) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, vec![batch(1, 1, 10)]);
    assert_eq!(report.tail_bytes_dropped, 0);
}

#[test]
fn zeroed_record_before_valid_records_is_corruption() {
    let (_, fs) = memfs();
    let batches: Vec<Batch> = (1..=3).map(|i| batch(i, 1, 10)).collect();
    let positions = write_log(fs.clone(), options(), &batches);
    let file = fs.open_write(&segment_path(1)).unwrap();
    let len = (positions[2].offset - positions[1].offset) as usize;
    file.write_all_at(&vec![0; len], positions[1].offset)
        .unwrap();
    let err = replay(fs, RecoveryMode::TolerateTornTail).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { offset, .. } if offset == positions[1].offset),
        "{err:?}"
    );
}

#[test]
fn stale_records_of_a_recycled_segment_are_not_replayed() {
    let (_, fs) = memfs();
    let options = WalOptions {
        recycle_segments: 1,
        sync_mode: SyncMode::None,
        ..WalOptions::default()
    };
    let wal = open(fs.clone(), options.clone());
    for i in 0..50 {
        wal.append(&batch(i, 1, 100)).unwrap();
    }
    let retired = wal.current_segment();
    let second = wal.rotate().unwrap();
    assert_eq!(wal.remove_segments_before(second).unwrap(), 1);
    // The next segment reuses the retired file, still full of old records.
    let third = wal.rotate().unwrap();
    assert_eq!(wal.stats().segments_recycled, 1);
    let fresh = vec![batch(100, 1, 10), batch(101, 1, 10)];
    for b in &fresh {
        wal.append(b).unwrap();
    }
    assert!(file_len(fs.as_ref(), &segment_path(third)) > 50 * 100);
    wal.close().unwrap();
    assert!(!fs.exists(&segment_path(retired)).unwrap());

    let (replayed, report) = replay(fs.clone(), RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, fresh);
    assert_eq!(report.segments, vec![second, third]);
}

#[test]
fn torn_record_over_stale_bytes_is_trimmed() {
    let (mem, fs) = memfs();
    let options = WalOptions {
        recycle_segments: 1,
        ..WalOptions::default()
    };
    let wal = open(fs.clone(), options.clone());
    for i in 0..20 {
        wal.append(&batch(i, 1, 100)).unwrap();
    }
    let second = wal.rotate().unwrap();
    wal.remove_segments_before(second).unwrap();
    let third = wal.rotate().unwrap();
    wal.append(&batch(200, 1, 10)).unwrap();
    let last = wal.append(&batch(201, 1, 10)).unwrap();
    drop(wal);
    mem.corrupt(&segment_path(third), last.offset + 15, 0x40)
        .unwrap();
    let (replayed, report) = replay(fs, RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(replayed, vec![batch(200, 1, 10)]);
    assert_eq!(report.torn_tail, Some((third, last.offset)));
}

#[test]
fn missing_segment_in_the_middle_is_corruption() {
    let (_, fs) = memfs();
    let wal = open(fs.clone(), options());
    wal.append(&batch(1, 1, 1)).unwrap();
    wal.rotate().unwrap();
    wal.append(&batch(2, 1, 1)).unwrap();
    wal.rotate().unwrap();
    wal.append(&batch(3, 1, 1)).unwrap();
    drop(wal);
    fs.remove_file(&segment_path(2)).unwrap();
    let err = replay(fs.clone(), RecoveryMode::TolerateTornTail).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { segment: 2, .. }),
        "{err:?}"
    );
    let (salvaged, _) = replay(fs, RecoveryMode::SkipCorrupted).unwrap();
    assert_eq!(salvaged, vec![batch(1, 1, 1), batch(3, 1, 1)]);
}

#[test]
fn unsupported_format_version_is_an_error_in_every_mode() {
    let (mem, fs) = memfs();
    write_log(fs.clone(), options(), &[batch(1, 1, 1)]);
    let path = segment_path(1);
    let mut bytes = mem.read_file(&path).unwrap();
    bytes[8] = 9; // version
    let crc = kevo_core::crc32(&[&bytes[..20]]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    mem.write_file(&path, &bytes).unwrap();
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::SkipCorrupted,
    ] {
        let err = replay(fs.clone(), mode).unwrap_err();
        assert!(
            matches!(&err, Error::Corruption { reason, .. } if reason.contains("version 9")),
            "{mode:?}: {err:?}"
        );
    }
}

#[test]
fn segments_rotate_at_the_configured_size() {
    let (_, fs) = memfs();
    let options = WalOptions {
        segment_bytes: 4096,
        sync_mode: SyncMode::None,
        ..WalOptions::default()
    };
    let batches: Vec<Batch> = (0..100).map(|i| batch(i, 1, 200)).collect();
    let positions = write_log(fs.clone(), options, &batches);
    let segments: std::collections::BTreeSet<u64> = positions.iter().map(|p| p.segment).collect();
    assert!(segments.len() > 4, "{segments:?}");
    for &segment in &segments {
        assert!(file_len(fs.as_ref(), &segment_path(segment)) <= 4096);
    }
    let (replayed, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, batches);
}

#[test]
fn remove_segments_before_never_removes_the_current_segment() {
    let (_, fs) = memfs();
    let options = WalOptions {
        recycle_segments: 0,
        ..WalOptions::default()
    };
    let wal = open(fs.clone(), options);
    wal.append(&batch(1, 1, 1)).unwrap();
    let current = wal.rotate().unwrap();
    wal.append(&batch(2, 1, 1)).unwrap();
    assert_eq!(wal.remove_segments_before(u64::MAX).unwrap(), 1);
    assert_eq!(wal.current_segment(), current);
    drop(wal);
    let (replayed, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, vec![batch(2, 1, 1)]);
}

#[test]
fn oversized_batch_is_an_invalid_argument() {
    let (_, fs) = memfs();
    let wal = open(fs, options());
    let mut b = Batch::new();
    b.put(vec![0u8; kevo_core::KEY_BYTES_MAX + 1], b"v");
    assert!(matches!(wal.append(&b), Err(Error::InvalidArgument(_))));
    // The log is still usable.
    wal.append(&batch(1, 1, 1)).unwrap();
}

#[test]
fn interval_mode_syncs_in_the_background() {
    let (mem, fs) = memfs();
    let options = WalOptions {
        sync_mode: SyncMode::Interval(std::time::Duration::from_millis(5)),
        ..WalOptions::default()
    };
    let wal = open(fs.clone(), options);
    wal.append(&batch(1, 1, 1)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal.stats().syncs == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background sync within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    mem.crash_keep_nothing_unsynced();
    drop(wal);
    let (replayed, _) = replay(Arc::new(mem), RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(replayed, vec![batch(1, 1, 1)]);
}

#[test]
fn appends_under_always_survive_a_crash_that_keeps_nothing_unsynced() {
    let (mem, fs) = memfs();
    let wal = open(fs, options());
    let batches: Vec<Batch> = (0..10).map(|i| batch(i, 3, 30)).collect();
    for b in &batches {
        wal.append(b).unwrap();
    }
    mem.crash_keep_nothing_unsynced();
    drop(wal);
    let (replayed, _) = replay(Arc::new(mem), RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, batches);
}

#[test]
fn replay_skips_segments_below_the_minimum() {
    let (_, fs) = memfs();
    let wal = open(fs.clone(), options());
    wal.append(&batch(1, 1, 1)).unwrap();
    let second = wal.rotate().unwrap();
    wal.append(&batch(2, 1, 1)).unwrap();
    drop(wal);
    let replay =
        kevo_wal::Replay::open(fs, &dir(), RecoveryMode::AbsoluteConsistency, second).unwrap();
    let batches: Vec<Batch> = replay.map(|r| r.unwrap().batch).collect();
    assert_eq!(batches, vec![batch(2, 1, 1)]);
}

#[test]
fn second_open_of_the_same_directory_is_busy() {
    let (_, fs) = memfs();
    let wal = open(fs.clone(), options());
    let err = kevo_wal::Wal::open(fs.clone(), &dir(), options()).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    drop(wal);
    open(fs, options());
}

#[test]
fn an_owner_that_locks_the_directory_itself_leaves_no_wal_lock_file() {
    let (_, fs) = memfs();
    let unlocked = WalOptions {
        lock_dir: false,
        ..options()
    };
    let wal = open(fs.clone(), unlocked);
    wal.append(&batch(1, 1, 1)).unwrap();
    let names = fs.list_dir(&dir()).unwrap();
    assert!(
        !names.iter().any(|n| n == kevo_wal::WAL_LOCK_FILE),
        "{names:?}"
    );
    // Without the lock file, a locking `Wal` is not kept out: the owner's
    // own lock is what keeps a second owner away.
    drop(wal);
    open(fs, options());
}

#[test]
fn zero_sync_interval_is_rejected() {
    let (_, fs) = memfs();
    let options = WalOptions {
        sync_mode: SyncMode::Interval(std::time::Duration::ZERO),
        ..WalOptions::default()
    };
    assert!(matches!(
        kevo_wal::Wal::open(fs, &dir(), options),
        Err(Error::InvalidArgument(_))
    ));
}

/// Found by the `wal_roundtrip` fuzz target: a record starting in the
/// padding at the end of a block reported the padding's offset.
#[test]
fn append_reports_the_offset_replay_finds_after_block_padding() {
    let (_, fs) = memfs();
    let wal = open(fs.clone(), options());
    // Leave fewer than a fragment header's bytes in block 1.
    let mut filler = Batch::new();
    let overhead = kevo_wal::BATCH_HEADER_BYTES + 1 + 1 + 3;
    let first_end = SEGMENT_HEADER_BYTES + FRAGMENT_HEADER_BYTES; // first fragment's header
    let value_len = 2 * BLOCK_BYTES - 2 - first_end - FRAGMENT_HEADER_BYTES - overhead - 1;
    filler.put(b"f", vec![1u8; value_len]);
    wal.append(&filler).unwrap();
    let position = wal.append(&batch(2, 1, 1)).unwrap();
    drop(wal);
    let mut replay =
        kevo_wal::Replay::open(fs, &dir(), RecoveryMode::AbsoluteConsistency, 0).unwrap();
    replay.next().unwrap().unwrap();
    let second = replay.next().unwrap().unwrap();
    assert_eq!(second.offset, position.offset);
    assert_eq!(
        position.offset % BLOCK_BYTES as u64,
        0,
        "the test no longer lands in padding"
    );
}

/// Found by the `wal_replay` fuzz target: a checksummed batch whose seqnos
/// overflow made replay panic. It is corruption (and the writer refuses such
/// a batch).
#[test]
fn batch_with_overflowing_seqnos_is_corruption_not_a_panic() {
    let (mem, fs) = memfs();
    let hex = "4b45564f57414c0001000000010000000000000004bda8008d14dce714000101000000ffffffffffffffff020000000201610131010162";
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    fs.create_dir_all(&dir()).unwrap();
    mem.write_file(&segment_path(1), &bytes).unwrap();
    let err = replay(fs.clone(), RecoveryMode::TolerateTornTail).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corruption {
                segment: 1,
                offset: 24,
                ..
            }
        ),
        "{err:?}"
    );
    let (salvaged, report) = replay(fs.clone(), RecoveryMode::SkipCorrupted).unwrap();
    assert!(salvaged.is_empty());
    assert_eq!(report.skipped.len(), 1);

    let wal = open(memfs().1, options());
    let mut b = batch(1, 2, 1);
    b.set_seqno(u64::MAX);
    assert!(matches!(wal.append(&b), Err(Error::InvalidArgument(_))));
}

/// A caller's sync writes zeros ahead of the write offset, so that synced
/// appends overwrite allocated space instead of growing the file; the zeros
/// replay as the end of the log, in either recovery mode, and appends
/// continue past them.
#[test]
fn synced_appends_land_in_space_zeroed_ahead_and_replay_exactly() {
    let (_, fs) = memfs();
    let options = WalOptions {
        sync_mode: SyncMode::Always,
        segment_bytes: 8 << 20,
        ..WalOptions::default()
    };
    let wal = open(fs.clone(), options.clone());
    let path = segment_path(1);
    let header = SEGMENT_HEADER_BYTES as u64;
    wal.append(&batch(1, 1, 10)).unwrap();
    let prepared = file_len(fs.as_ref(), &path);
    assert!(
        prepared > header + (1 << 20) && prepared < header + (1 << 20) + 100,
        "one MiB zeroed ahead: {prepared}"
    );
    // 2 000 synced appends of ~100 bytes: all inside the zeroed MiB but the
    // last few, so the file grew by at most one more step.
    let batches: Vec<Batch> = (2..=2000).map(|i| batch(i, 1, 80)).collect();
    for b in &batches {
        wal.append(b).unwrap();
    }
    let len = file_len(fs.as_ref(), &path);
    assert!(len == prepared || len == prepared + (1 << 20), "{len}");
    drop(wal);
    for mode in [
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::TolerateTornTail,
    ] {
        let (replayed, report) = replay(fs.clone(), mode).unwrap();
        assert_eq!(replayed.len(), 2000);
        assert_eq!(replayed[1..], batches[..]);
        assert_eq!(report.tail_bytes_dropped, 0);
    }
    // The segment size caps the zeroing.
    let small = WalOptions {
        segment_bytes: 64 << 10,
        ..options
    };
    let (_, fs) = memfs();
    let wal = open(fs.clone(), small);
    wal.append(&batch(1, 1, 10)).unwrap();
    assert_eq!(file_len(fs.as_ref(), &segment_path(1)), 64 << 10);
    // Close cuts the zeros: the file ends where its records do.
    wal.close().unwrap();
    let len = file_len(fs.as_ref(), &segment_path(1));
    assert!(len > header && len < header + 100, "{len}");
}
