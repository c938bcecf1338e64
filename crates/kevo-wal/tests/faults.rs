//! I/O failures injected with `FaultFs`: they surface as errors, poison the
//! log, are never retried, and lose nothing that was acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, Fs, MemFs};
use kevo_wal::{Error, RecoveryMode, SyncMode, WalOptions};

fn faulty() -> (MemFs, FaultFs, Arc<dyn Fs>) {
    let mem = MemFs::new();
    let faults = FaultFs::new(Arc::new(mem.clone()));
    let fs: Arc<dyn Fs> = Arc::new(faults.clone());
    (mem, faults, fs)
}

fn is_os_error(err: &Error, code: i32) -> bool {
    matches!(err, Error::Io { source, .. } if source.raw_os_error() == Some(code))
}

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

#[test]
fn eio_on_write_fails_the_append_and_poisons_the_log() {
    let (_, faults, fs) = faulty();
    let wal = open(fs, WalOptions::default());
    wal.append(&batch(1, 1, 10)).unwrap();
    faults.add_rule(FaultRule::new(
        FaultOp::Write,
        FaultTrigger::Nth(1),
        FaultKind::Eio,
    ));
    let err = wal.append(&batch(2, 1, 10)).unwrap_err();
    assert!(is_os_error(&err, EIO), "{err:?}");
    // The fault fired once, but the log stays closed to writes.
    assert!(matches!(
        wal.append(&batch(3, 1, 10)),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(wal.sync(), Err(Error::Poisoned { .. })));
    assert!(matches!(wal.rotate(), Err(Error::Poisoned { .. })));
}

#[test]
fn enospc_on_sync_is_reported_and_never_retried() {
    let (_, faults, fs) = faulty();
    let wal = open(fs, WalOptions::default());
    wal.append(&batch(1, 1, 10)).unwrap();
    faults.add_rule(FaultRule::new(
        FaultOp::Sync,
        FaultTrigger::Nth(1),
        FaultKind::Enospc,
    ));
    let err = wal.append(&batch(2, 1, 10)).unwrap_err();
    assert!(is_os_error(&err, ENOSPC), "{err:?}");
    let syncs = faults.op_count(FaultOp::Sync);
    // The next sync would succeed, but trying it could report success for
    // pages the kernel already dropped: the log must refuse instead.
    assert!(matches!(wal.sync(), Err(Error::Poisoned { .. })));
    assert!(matches!(
        wal.append(&batch(3, 1, 10)),
        Err(Error::Poisoned { .. })
    ));
    assert_eq!(
        faults.op_count(FaultOp::Sync),
        syncs,
        "a sync was retried after a failure"
    );
}

#[test]
fn acknowledged_batches_survive_a_failed_write_and_a_crash() {
    let (mem, faults, fs) = faulty();
    let wal = open(fs, WalOptions::default());
    let acknowledged: Vec<_> = (1..=5).map(|i| batch(i, 2, 100)).collect();
    for b in &acknowledged {
        wal.append(b).unwrap();
    }
    faults.add_rule(FaultRule::new(
        FaultOp::Write,
        FaultTrigger::Nth(1),
        FaultKind::ShortWrite,
    ));
    faults.add_rule(FaultRule::new(
        FaultOp::Write,
        FaultTrigger::Nth(2),
        FaultKind::Enospc,
    ));
    assert!(wal.append(&batch(6, 2, 100)).is_err());
    mem.crash();
    drop(wal);
    let (replayed, _) = replay(Arc::new(mem), RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(replayed, acknowledged);
}

#[test]
fn half_written_record_after_enospc_is_trimmed_on_recovery() {
    let (mem, faults, fs) = faulty();
    let wal = open(fs, WalOptions::default());
    wal.append(&batch(1, 1, 10)).unwrap();
    faults.add_rule(FaultRule::new(
        FaultOp::Write,
        FaultTrigger::Nth(1),
        FaultKind::ShortWrite,
    ));
    faults.add_rule(FaultRule::new(
        FaultOp::Write,
        FaultTrigger::Nth(2),
        FaultKind::Enospc,
    ));
    assert!(wal.append(&batch(2, 1, 500)).is_err());
    drop(wal);
    // No crash: the half record is on "disk". Recovery trims it and the log
    // continues cleanly.
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (wal, report) = kevo_wal::Wal::open(fs.clone(), &dir(), WalOptions::default())
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(report.batches, 1);
    assert!(report.tail_bytes_dropped > 0);
    wal.append(&batch(3, 1, 10)).unwrap();
    drop(wal);
    let (replayed, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, vec![batch(1, 1, 10), batch(3, 1, 10)]);
}

#[test]
fn short_write_alone_is_completed_by_the_log() {
    let (mem, faults, fs) = faulty();
    let wal = open(fs, WalOptions::default());
    faults.add_rule(FaultRule::new(
        FaultOp::Write,
        FaultTrigger::Nth(1),
        FaultKind::ShortWrite,
    ));
    wal.append(&batch(1, 3, 100)).unwrap();
    assert_eq!(faults.injected_count(), 1);
    drop(wal);
    let (replayed, _) = replay(Arc::new(mem), RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, vec![batch(1, 3, 100)]);
}

#[test]
fn failure_while_sealing_a_segment_poisons_the_log() {
    let (mem, faults, fs) = faulty();
    let wal = open(fs, WalOptions::default());
    wal.append(&batch(1, 1, 10)).unwrap();
    faults.add_rule(FaultRule::new(
        FaultOp::Create,
        FaultTrigger::Always,
        FaultKind::Enospc,
    ));
    assert!(wal.rotate().is_err());
    assert!(matches!(
        wal.append(&batch(2, 1, 10)),
        Err(Error::Poisoned { .. })
    ));
    mem.crash();
    drop(wal);
    let (replayed, _) = replay(Arc::new(mem), RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(replayed, vec![batch(1, 1, 10)]);
}

#[test]
fn failed_background_sync_poisons_interval_mode() {
    let (_, faults, fs) = faulty();
    let options = WalOptions {
        sync_mode: SyncMode::Interval(std::time::Duration::from_millis(2)),
        ..WalOptions::default()
    };
    let wal = open(fs, options);
    faults.add_rule(FaultRule::new(
        FaultOp::Sync,
        FaultTrigger::Always,
        FaultKind::Eio,
    ));
    wal.append(&batch(1, 1, 10)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match wal.append(&batch(2, 1, 10)) {
            Err(Error::Poisoned { cause, resumable }) => {
                assert!(cause.to_string().contains("syncing"), "{cause}");
                assert!(!resumable, "a failed fsync is never resumable");
                break;
            }
            Ok(_) => assert!(
                std::time::Instant::now() < deadline,
                "background sync failure not reported"
            ),
            Err(other) => panic!("unexpected error {other:?}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn read_error_during_replay_is_an_io_error_not_corruption() {
    let (mem, faults, fs) = faulty();
    write_log(
        Arc::new(mem.clone()),
        WalOptions::default(),
        &[batch(1, 1, 10), batch(2, 1, 10)],
    );
    faults.add_rule(FaultRule::new(
        FaultOp::Read,
        FaultTrigger::ReadAt { from: 30, to: 31 },
        FaultKind::Eio,
    ));
    let err = replay(fs, RecoveryMode::SkipCorrupted).unwrap_err();
    assert!(is_os_error(&err, EIO), "{err:?}");
    assert!(!err.is_corruption());
}

#[test]
fn failed_directory_sync_on_retire_is_reported() {
    let (_, faults, fs) = faulty();
    let wal = open(fs, WalOptions::default());
    wal.append(&batch(1, 1, 10)).unwrap();
    let current = wal.rotate().unwrap();
    faults.add_rule(FaultRule::new(
        FaultOp::SyncDir,
        FaultTrigger::Nth(1),
        FaultKind::Eio,
    ));
    let err = wal.remove_segments_before(current).unwrap_err();
    assert!(is_os_error(&err, EIO), "{err:?}");
}

/// Zeroing space ahead of synced appends is an optimisation: when its write
/// fails (a full disk), the append that triggered it still succeeds, the
/// log is not poisoned, that segment is not zeroed again, and every append
/// replays.
#[test]
fn a_failed_zeroing_ahead_fails_nothing_and_is_not_retried() {
    let (_, faults, fs) = faulty();
    let wal = open(fs.clone(), WalOptions::default());
    let before = faults.op_count(FaultOp::Write);
    // Write 1: the first record; write 2: the zeros after it.
    faults.add_rule(FaultRule::new(
        FaultOp::Write,
        FaultTrigger::Nth(2),
        FaultKind::Enospc,
    ));
    let batches: Vec<_> = (1..=50).map(|i| batch(i, 1, 100)).collect();
    for b in &batches {
        wal.append(b).unwrap();
    }
    assert_eq!(
        faults.op_count(FaultOp::Write) - before,
        50 + 1,
        "one record write each, and one (failed) zeroing"
    );
    let len = file_len(fs.as_ref(), &segment_path(1));
    assert!(len < 50 * 200, "no zeros after the records: {len}");
    drop(wal);
    let (replayed, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(replayed, batches);
}
