//! What the WAL tells its owner and what the owner tells it back: the
//! segment listener (every segment is announced before it holds a record),
//! recovery plans with sealed segments (a sealed segment cut short is
//! damage, never a torn tail), and resuming after a failed write.
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

/// A segment started, and the one it sealed with its length.
type Started = (u64, Option<(u64, u64)>);

/// Records what it is told; refuses while `refuse` is set.
#[derive(Debug, Default)]
struct Recorder {
    started: Mutex<Vec<Started>>,
    refuse: Mutex<bool>,
}

impl SegmentListener for Recorder {
    fn segment_started(&self, started: u64, sealed: Option<(u64, u64)>) -> io::Result<()> {
        if *self.refuse.lock().unwrap() {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "manifest full"));
        }
        self.started.lock().unwrap().push((started, sealed));
        Ok(())
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
    let started = recorder.started.lock().unwrap().clone();
    assert_eq!(started[0], (1, None));
    assert!(started.len() >= 3, "{started:?}");
    for pair in started.windows(2) {
        let (sealed, len) = pair[1].1.expect("a rotation seals the previous segment");
        assert_eq!(sealed, pair[0].0);
        assert_eq!(pair[1].0, sealed + 1);
        // The sealed length is the segment's synced size.
        assert_eq!(file_len(fs.as_ref(), &segment_path(sealed)), len);
    }
    assert_eq!(position.segment, started.last().unwrap().0);
    drop(mem);
}

#[test]
fn a_refused_segment_poisons_the_log_until_resume() {
    let (_mem, fs) = memfs();
    let recorder = Arc::new(Recorder::default());
    let wal = open_with(fs.clone(), WalOptions::default(), recorder.clone());
    wal.append(&batch(1, 1, 10)).unwrap();
    *recorder.refuse.lock().unwrap() = true;
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
    *recorder.refuse.lock().unwrap() = false;
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
    let started = recorder.started.lock().unwrap().clone();
    let sealed: BTreeMap<u64, u64> = started.iter().filter_map(|s| s.1).collect();
    assert!(sealed.len() >= 3, "{started:?}");
    RecoveryPlan {
        segments: started.iter().map(|s| s.0).collect(),
        sealed,
        headers_durable: true,
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
