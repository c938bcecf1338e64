//! What the WAL tells its owner and what the owner tells it back: the
//! segment listener (every segment is announced before it holds a record,
//! and sealed before a later one is synced), recovery plans with sealed
//! segments (a sealed segment cut short is damage, never a torn tail; an
//! unsealed one cut short ends the log), and resuming after a failed
//! write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use common::*;
use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, Fs, MemFs};
use kevo_wal::{
    Batch, Error, RecoveryMode, RecoveryPlan, SegmentListener, SyncMode, Wal, WalOptions,
};

/// Records what it is told; refuses to start segments numbered
/// `refuse_from` or higher, and to seal any while `refuse_seals` is set.
#[derive(Debug, Default)]
struct Recorder {
    started: Mutex<Vec<u64>>,
    sealed: Mutex<Vec<(u64, u64)>>,
    refuse_from: Mutex<Option<u64>>,
    refuse_seals: Mutex<bool>,
}

fn manifest_full() -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, "manifest full")
}

impl SegmentListener for Recorder {
    fn segment_started(&self, started: u64) -> io::Result<()> {
        if self
            .refuse_from
            .lock()
            .unwrap()
            .is_some_and(|n| started >= n)
        {
            return Err(manifest_full());
        }
        self.started.lock().unwrap().push(started);
        Ok(())
    }

    fn segment_sealed(&self, segment: u64, len: u64) -> io::Result<()> {
        if *self.refuse_seals.lock().unwrap() {
            return Err(manifest_full());
        }
        self.sealed.lock().unwrap().push((segment, len));
        Ok(())
    }
}

impl Recorder {
    fn started(&self) -> Vec<u64> {
        self.started.lock().unwrap().clone()
    }

    fn sealed(&self) -> BTreeMap<u64, u64> {
        self.sealed.lock().unwrap().iter().copied().collect()
    }
}

/// Waits until the log has started `n` segments (its spare included).
fn wait_for_segments(wal: &Wal, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal.stats().segments_started < n {
        assert!(std::time::Instant::now() < deadline, "{:?}", wal.stats());
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes: 64 * 1024,
        ..WalOptions::default()
    }
}

fn open_with(fs: Arc<dyn Fs>, options: WalOptions, listener: Arc<Recorder>) -> Wal {
    Wal::open(fs, &dir(), options)
        .unwrap()
        .finish_with(Some(listener), 0)
        .unwrap()
        .0
}

#[test]
fn every_segment_is_announced_before_it_holds_a_record() {
    let (mem, fs) = memfs();
    let recorder = Arc::new(Recorder::default());
    let wal = open_with(fs.clone(), small_segments(), recorder.clone());
    for id in 1..=40 {
        wal.append(&batch(id, 4, 1000)).unwrap();
    }
    wal.rotate().unwrap();
    let position = wal.position();
    wal.close().unwrap();
    let started = recorder.started();
    let sealed = recorder.sealed();
    // Every segment in order, and perhaps the spare after the live one.
    assert!(started.len() as u64 >= position.segment, "{started:?}");
    assert!(started.len() as u64 <= position.segment + 1, "{started:?}");
    assert_eq!(started, (1..=started.len() as u64).collect::<Vec<_>>());
    // Closing sealed every segment rotated away from, in order, each at
    // its synced size.
    assert_eq!(
        sealed.keys().copied().collect::<Vec<_>>(),
        (1..position.segment).collect::<Vec<_>>()
    );
    for (&segment, &len) in &sealed {
        assert_eq!(file_len(fs.as_ref(), &segment_path(segment)), len);
    }
    drop(mem);
}

/// A synced append in a segment finds every earlier segment sealed: its
/// seal is never left for later when a record after it is acknowledged as
/// durable.
#[test]
fn a_sync_seals_every_earlier_segment_first() {
    let (_mem, fs) = memfs();
    let recorder = Arc::new(Recorder::default());
    let wal = open_with(fs, small_segments(), recorder.clone());
    for id in 1..=40 {
        let position = wal.append(&batch(id, 4, 1000)).unwrap();
        let sealed = recorder.sealed();
        for segment in 1..position.segment {
            assert!(sealed.contains_key(&segment), "{segment} {sealed:?}");
        }
    }
    assert!(wal.position().segment >= 3);
    wal.close().unwrap();
}

#[test]
fn a_refused_segment_poisons_the_log_until_resume() {
    let (_mem, fs) = memfs();
    let recorder = Arc::new(Recorder::default());
    // The spare is refused too: the rotation starts segment 2 itself.
    *recorder.refuse_from.lock().unwrap() = Some(2);
    let wal = open_with(fs.clone(), WalOptions::default(), recorder.clone());
    wal.append(&batch(1, 1, 10)).unwrap();
    let err = wal.rotate().unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull),
        "{err}"
    );
    assert!(matches!(
        wal.append(&batch(2, 1, 10)),
        Err(Error::Poisoned { .. })
    ));
    assert_eq!(wal.poisoned(), Some(true));
    // Still refused: resume lifts the poison, the next rotation fails again.
    wal.resume().unwrap();
    assert!(wal.rotate().is_err());
    *recorder.refuse_from.lock().unwrap() = None;
    wal.resume().unwrap();
    wal.append(&batch(2, 1, 10)).unwrap();
    assert_eq!(wal.rotate().unwrap(), 2);
    wal.append(&batch(3, 1, 10)).unwrap();
    wal.close().unwrap();
    let (batches, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(
        batches,
        vec![batch(1, 1, 10), batch(2, 1, 10), batch(3, 1, 10)]
    );
}

/// A seal the listener refuses poisons the log before any later record
/// is acknowledged as durable, and fails the synced append that needed it
/// before its record is written; once the listener takes seals again,
/// `resume` lets the seal through, and nothing is lost or duplicated.
/// Under `Always` through `append`, under `Interval` through `append_sync`.
#[test]
fn a_refused_seal_poisons_the_log_until_resume() {
    for sync_mode in [
        SyncMode::Always,
        SyncMode::Interval(std::time::Duration::from_secs(3600)),
    ] {
        let (_mem, fs) = memfs();
        let recorder = Arc::new(Recorder::default());
        let options = WalOptions {
            sync_mode,
            ..WalOptions::default()
        };
        let wal = open_with(fs.clone(), options, recorder.clone());
        wal.append_sync(&batch(1, 1, 10)).unwrap();
        wal_spare_ready(&wal);
        *recorder.refuse_seals.lock().unwrap() = true;
        // The spare was announced earlier: the rotation itself asks nothing.
        assert_eq!(wal.rotate().unwrap(), 2);
        let err = wal.append_sync(&batch(2, 1, 10)).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
                || matches!(
                    &err,
                    Error::Poisoned {
                        resumable: true,
                        ..
                    }
                ),
            "{err}"
        );
        assert_eq!(wal.poisoned(), Some(true));
        assert!(recorder.sealed().is_empty());
        *recorder.refuse_seals.lock().unwrap() = false;
        wal.resume().unwrap();
        wal.append_sync(&batch(2, 1, 10)).unwrap();
        assert!(recorder.sealed().contains_key(&1));
        wal.close().unwrap();
        let (batches, _) = replay(fs, RecoveryMode::AbsoluteConsistency).unwrap();
        assert_eq!(
            batches,
            vec![batch(1, 1, 10), batch(2, 1, 10)],
            "{sync_mode:?}"
        );
    }
}

/// Waits for the spare after the first segment.
fn wal_spare_ready(wal: &Wal) {
    wait_for_segments(wal, 2);
}

/// A full disk fails a write; once there is room, `resume` makes the log
/// usable again and everything acknowledged, gathered appends included,
/// reaches the file exactly once. The failed append is not there.
#[test]
fn resume_after_a_failed_write_loses_and_invents_nothing() {
    for buffer_bytes in [0, 4096] {
        let mem = MemFs::new();
        let faults = Arc::new(FaultFs::new(Arc::new(mem.clone())));
        let fs: Arc<dyn Fs> = faults.clone();
        let options = WalOptions {
            sync_mode: SyncMode::None,
            buffer_bytes,
            ..WalOptions::default()
        };
        let wal = Wal::open(fs.clone(), &dir(), options)
            .unwrap()
            .finish()
            .unwrap()
            .0;
        let mut acknowledged = Vec::new();
        let mut failed = None;
        faults.add_rule(FaultRule::new(
            FaultOp::Write,
            FaultTrigger::FromNth(3),
            FaultKind::Enospc,
        ));
        for id in 1..=50 {
            let b = batch(id, 2, 300);
            match wal.append(&b) {
                Ok(_) => acknowledged.push(b),
                Err(e) => {
                    assert!(matches!(&e, Error::Io { .. }), "{e}");
                    failed = Some(b);
                    break;
                }
            }
        }
        let failed = failed.expect("the disk filled up");
        assert_eq!(wal.poisoned(), Some(true));
        if buffer_bytes > 0 {
            // The gathered appends cannot be written yet.
            assert!(wal.resume().is_err(), "still no room");
        }
        faults.clear_rules();
        wal.resume().unwrap();
        let after = batch(99, 2, 300);
        wal.append(&after).unwrap();
        acknowledged.push(after);
        wal.sync().unwrap();
        drop(wal);
        mem.crash_keep_nothing_unsynced();
        let (batches, _) = replay(Arc::new(mem), RecoveryMode::AbsoluteConsistency).unwrap();
        assert_eq!(batches, acknowledged, "buffer {buffer_bytes}");
        assert!(!batches.contains(&failed));
    }
}

#[test]
fn a_failed_fsync_is_never_resumed() {
    let mem = MemFs::new();
    let faults = Arc::new(FaultFs::new(Arc::new(mem.clone())));
    let wal = Wal::open(faults.clone(), &dir(), WalOptions::default())
        .unwrap()
        .finish()
        .unwrap()
        .0;
    wal.append(&batch(1, 1, 10)).unwrap();
    faults.add_rule(FaultRule::new(
        FaultOp::Sync,
        FaultTrigger::Nth(1),
        FaultKind::Eio,
    ));
    assert!(wal.append(&batch(2, 1, 10)).is_err());
    assert_eq!(wal.poisoned(), Some(false));
    let syncs = faults.op_count(FaultOp::Sync);
    assert!(matches!(wal.resume(), Err(Error::Poisoned { .. })));
    assert!(matches!(
        wal.append(&batch(3, 1, 10)),
        Err(Error::Poisoned { .. })
    ));
    assert_eq!(faults.op_count(FaultOp::Sync), syncs);
}

/// Three sealed segments and an open one, as an engine's manifest knows
/// them; returns the plan.
fn tracked_log(mem: &MemFs) -> RecoveryPlan {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let recorder = Arc::new(Recorder::default());
    let wal = open_with(fs, small_segments(), recorder.clone());
    for id in 1..=60 {
        wal.append(&batch(id, 4, 1000)).unwrap();
    }
    wal.close().unwrap();
    let started = recorder.started();
    let sealed = recorder.sealed();
    assert!(sealed.len() >= 3, "{started:?}");
    RecoveryPlan {
        segments: started,
        sealed,
        headers_durable: true,
        seals_tracked: true,
    }
}

fn replay_plan(
    mem: &MemFs,
    plan: &RecoveryPlan,
) -> kevo_wal::Result<(u64, kevo_wal::ReplayReport)> {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let mut replay =
        kevo_wal::Replay::with_plan(fs, &dir(), RecoveryMode::TolerateTornTail, plan.clone());
    let mut n = 0;
    for item in replay.by_ref() {
        item?;
        n += 1;
    }
    Ok((n, replay.report().clone()))
}

#[test]
fn sealed_segments_replay_exactly_to_their_sealed_length() {
    let mem = MemFs::new();
    let plan = tracked_log(&mem);
    let (batches, report) = replay_plan(&mem, &plan).unwrap();
    assert_eq!(batches, 60);
    for (segment, end) in &report.segment_ends {
        if let Some(sealed) = plan.sealed.get(segment) {
            assert_eq!(end, sealed);
        }
    }
}

#[test]
fn a_sealed_segment_cut_short_is_corruption_even_if_last() {
    let mem = MemFs::new();
    let plan = tracked_log(&mem);
    let (&victim, &len) = plan.sealed.iter().next().unwrap();
    let path = segment_path(victim);
    let bytes = mem.read_file(&path).unwrap();
    // Cut at a record boundary inside the segment: a plain reader sees a
    // clean, shorter log.
    mem.write_file(&path, &bytes[..32 * 1024]).unwrap();
    let err = replay_plan(&mem, &plan).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { segment, .. } if segment == victim),
        "{err}"
    );
    // Even as the last segment of the plan, it may not be torn.
    let only = RecoveryPlan {
        segments: vec![victim],
        ..plan.clone()
    };
    assert!(replay_plan(&mem, &only).is_err());
    // A torn last record in a sealed segment is damage as well.
    mem.write_file(&path, &bytes[..len as usize - 3]).unwrap();
    assert!(replay_plan(&mem, &only).is_err());
    // Emptied.
    mem.write_file(&path, b"").unwrap();
    assert!(replay_plan(&mem, &only).is_err());
}

#[test]
fn bytes_past_a_sealed_length_are_not_read() {
    let mem = MemFs::new();
    let plan = tracked_log(&mem);
    let (&victim, _) = plan.sealed.iter().next().unwrap();
    let path = segment_path(victim);
    let mut bytes = mem.read_file(&path).unwrap();
    bytes.extend_from_slice(&[0xab; 100]);
    mem.write_file(&path, &bytes).unwrap();
    let (batches, _) = replay_plan(&mem, &plan).unwrap();
    assert_eq!(batches, 60);
}

#[test]
fn sync_replayed_makes_a_killed_writers_records_durable() {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let options = WalOptions {
        sync_mode: SyncMode::None,
        ..WalOptions::default()
    };
    let wal = Wal::open(fs.clone(), &dir(), options.clone())
        .unwrap()
        .finish()
        .unwrap()
        .0;
    for id in 1..=5 {
        wal.append(&batch(id, 1, 100)).unwrap();
    }
    // A killed process: the records are in the page cache, not synced
    // (dropping a log under `SyncMode::None` syncs nothing).
    drop(wal);
    let mut recovery = Wal::open(fs.clone(), &dir(), options).unwrap();
    let replayed: Vec<Batch> = recovery.by_ref().map(|b| b.unwrap().batch).collect();
    assert_eq!(replayed.len(), 5);
    recovery.sync_replayed().unwrap();
    drop(recovery);
    mem.crash_keep_nothing_unsynced();
    let (batches, _) = replay(Arc::new(mem), RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(batches, replayed);
}

/// A damaged header in the last segment is a torn tail for a log used
/// alone (a crash while creating it), but damage when the owner knows the
/// header was synced.
#[test]
fn a_durable_header_is_never_torn() {
    let mem = MemFs::new();
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let wal = open_with(fs, WalOptions::default(), Arc::new(Recorder::default()));
    wal.append(&batch(1, 1, 10)).unwrap();
    // The last segment holds no record: a crash while creating it could
    // have torn its header.
    let last = wal.rotate().unwrap();
    wal.close().unwrap();
    let mut plan = RecoveryPlan {
        segments: vec![1, last],
        ..RecoveryPlan::default()
    };
    // As it was before its `Predecessor` fragment went in.
    let bytes = mem.read_file(&segment_path(last)).unwrap();
    mem.write_file(
        &segment_path(last),
        &bytes[..kevo_wal::SEGMENT_HEADER_BYTES],
    )
    .unwrap();
    mem.corrupt(&segment_path(last), 3, 0x20).unwrap();
    plan.headers_durable = false;
    let (_, report) = replay_plan(&mem, &plan).unwrap();
    assert_eq!(report.torn_tail, Some((last, 0)));
    plan.headers_durable = true;
    let err = replay_plan(&mem, &plan).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { segment, .. } if segment == last),
        "{err}"
    );
}

/// A log of several segments written under `SyncMode::None` with nothing
/// synced at the end and no seal recorded (a process killed, or a machine
/// that lost power, before the background sealer ran): the batches and the
/// plan an owner's manifest would give.
fn unsealed_log(mem: &MemFs) -> (Vec<Batch>, Vec<kevo_wal::WalPosition>, RecoveryPlan) {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let recorder = Arc::new(Recorder::default());
    let options = WalOptions {
        sync_mode: SyncMode::None,
        ..small_segments()
    };
    let wal = open_with(fs, options, recorder.clone());
    let batches: Vec<Batch> = (1..=40).map(|id| batch(id, 4, 1000)).collect();
    let positions = batches.iter().map(|b| wal.append(b).unwrap()).collect();
    assert!(wal.position().segment >= 3);
    drop(wal);
    let plan = RecoveryPlan {
        segments: recorder.started(),
        sealed: BTreeMap::new(),
        headers_durable: true,
        seals_tracked: true,
    };
    (batches, positions, plan)
}

/// A killed process leaves every appended record in the page cache: each
/// segment is as long as its successor's `Predecessor` fragment says, so
/// the replay reads on although no seal was recorded.
#[test]
fn a_killed_writer_loses_nothing_across_unrecorded_seals() {
    let mem = MemFs::new();
    let (batches, _, plan) = unsealed_log(&mem);
    let (n, report) = replay_plan(&mem, &plan).unwrap();
    assert_eq!(n, batches.len() as u64);
    assert!(report.segments_dropped.is_empty() && report.torn_tail.is_none());
}

/// A power loss cut segment 1 short before its seal was recorded, while
/// later segments' pages reached the disk: the log ends in segment 1 (a
/// prefix of the appends; nothing after it was acknowledged as durable),
/// the later segments are dropped, and recovery cuts them to their
/// headers. The same cut in a sealed segment, or for an owner that does
/// not track seals, is corruption.
#[test]
fn a_segment_cut_before_its_seal_ends_the_log() {
    for torn in [false, true] {
        let mem = MemFs::new();
        let (batches, positions, plan) = unsealed_log(&mem);
        let path = segment_path(1);
        let bytes = mem.read_file(&path).unwrap();
        // Where the sixth record starts, or inside it.
        let cut = positions[5].offset as usize + if torn { 100 } else { 0 };
        mem.write_file(&path, &bytes[..cut]).unwrap();
        let (n, report) = replay_plan(&mem, &plan).unwrap();
        assert_eq!(n, 5, "torn {torn} cut {cut} {report:?}");
        assert_eq!(report.segments_dropped, plan.segments[1..], "torn {torn}");
        assert_eq!(report.torn_tail.is_some(), torn);

        let untracked = RecoveryPlan {
            seals_tracked: false,
            ..plan.clone()
        };
        assert!(matches!(
            replay_plan(&mem, &untracked),
            Err(Error::Corruption { segment: 1, .. })
        ));

        // Recovery keeps the prefix and empties the dropped segments.
        let fs: Arc<dyn Fs> = Arc::new(mem.clone());
        let mut recovery = Wal::open_with_plan(
            fs.clone(),
            &dir(),
            WalOptions::default(),
            Some(plan.clone()),
        )
        .unwrap();
        let replayed: Vec<Batch> = recovery.by_ref().map(|b| b.unwrap().batch).collect();
        assert_eq!(replayed, batches[..n as usize]);
        recovery.sync_replayed().unwrap();
        let (wal, report) = recovery.finish().unwrap();
        assert!(wal.current_segment() > *plan.segments.last().unwrap());
        wal.close().unwrap();
        for &segment in &report.segments_dropped {
            assert_eq!(
                file_len(fs.as_ref(), &segment_path(segment)),
                kevo_wal::SEGMENT_HEADER_BYTES as u64
            );
        }
        let (again, report) = replay_plan(&mem, &plan).unwrap();
        assert_eq!(again, n);
        assert!(report.torn_tail.is_none(), "trimmed: {report:?}");
    }
}

/// The successor of a segment cut before its seal has a damaged header:
/// headers are synced before a segment is recorded, so that is no crash's
/// doing, and the replay refuses instead of dropping what follows.
#[test]
fn a_damaged_header_after_an_unsealed_segment_is_corruption() {
    let mem = MemFs::new();
    let (_, positions, plan) = unsealed_log(&mem);
    let path = segment_path(1);
    let bytes = mem.read_file(&path).unwrap();
    mem.write_file(&path, &bytes[..positions[5].offset as usize])
        .unwrap();
    mem.corrupt(&segment_path(2), 3, 0x20).unwrap();
    let err = replay_plan(&mem, &plan).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corruption {
                segment: 2,
                offset: 0,
                ..
            }
        ),
        "{err}"
    );
}

/// A successor's `Predecessor` fragment that disagrees with the segment
/// before it in a way no crash leaves — a shorter length than that
/// segment's records reach, or another segment's number — is corruption.
#[test]
fn a_predecessor_that_disagrees_is_corruption() {
    for (previous, shorten) in [(1u64, 100u64), (7, 0)] {
        let mem = MemFs::new();
        let (_, _, plan) = unsealed_log(&mem);
        let path = segment_path(2);
        let mut bytes = mem.read_file(&path).unwrap();
        let fragment = &mut bytes[24..24 + kevo_wal::PREDECESSOR_FRAGMENT_BYTES];
        let len = u64::from_le_bytes(fragment[19..27].try_into().unwrap());
        fragment[11..19].copy_from_slice(&previous.to_le_bytes());
        fragment[19..27].copy_from_slice(&(len - shorten).to_le_bytes());
        let crc = kevo_core::crc32(&[&fragment[4..]]);
        fragment[0..4].copy_from_slice(&crc.to_le_bytes());
        mem.write_file(&path, &bytes).unwrap();
        let err = replay_plan(&mem, &plan).unwrap_err();
        assert!(
            matches!(err, Error::Corruption { segment: 1, .. }),
            "{previous} {shorten}: {err}"
        );
    }
}
