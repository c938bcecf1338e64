//! Crash tests: random appends under every sync mode, a simulated power
//! loss at a random point, then recovery.
//!
//! The properties checked after every crash:
//! - recovery succeeds (a crash never looks like corruption);
//! - the replayed batches are a prefix of the appended ones, each whole;
//! - every batch appended under `SyncMode::Always`, or before an explicit
//!   `sync()`, is in that prefix.
//!
//! Half the cases run the log as the engine does: with a segment listener
//! standing in for its manifest (what it records survives the crash), and
//! recovery through the plan it gives (seals tracked, later segments
//! dropped after one a crash cut before its seal).
//!
//! `KEVO_CRASH_CASES` sets the number of cases (`cargo xtask crash` runs
//! many); CI runs 256.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kevo_core::{Fs, MemFs};
use kevo_wal::{
    Batch, RecoveryMode, RecoveryPlan, SEGMENT_HEADER_BYTES, SegmentListener, SyncMode, Wal,
    WalOptions,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Batch),
    Sync,
    Rotate,
    /// Retire every segment before the current one.
    Retire,
}

fn arb_batch() -> impl Strategy<Value = Batch> {
    let entry = (
        proptest::collection::vec(any::<u8>(), 0..24),
        prop_oneof![
            3 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Some),
            1 => proptest::collection::vec(any::<u8>(), 0..40_000).prop_map(Some),
            1 => Just(None),
        ],
    );
    (proptest::collection::vec(entry, 0..6), any::<u32>()).prop_map(|(entries, seqno)| {
        let mut batch = Batch::new();
        batch.set_seqno(u64::from(seqno));
        for (key, value) in entries {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        batch
    })
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => arb_batch().prop_map(Op::Append),
        2 => Just(Op::Sync),
        1 => Just(Op::Rotate),
        1 => Just(Op::Retire),
    ]
}

fn arb_mode() -> impl Strategy<Value = SyncMode> {
    prop_oneof![
        Just(SyncMode::None),
        Just(SyncMode::Interval(Duration::from_millis(1))),
        Just(SyncMode::Always),
    ]
}

fn arb_options() -> impl Strategy<Value = WalOptions> {
    let buffer = prop_oneof![Just(0usize), 1usize..70_000];
    (arb_mode(), 1usize..64, 0usize..3, buffer).prop_map(|(sync_mode, kib, recycle, buffer)| {
        WalOptions {
            sync_mode,
            segment_bytes: kib as u64 * 1024,
            recycle_segments: recycle,
            recovery_mode: RecoveryMode::TolerateTornTail,
            buffer_bytes: buffer,
            lock_dir: true,
        }
    })
}

/// The owner's manifest: every tracked segment (at or above `log_number`)
/// and the sealed ones' lengths. What it records is durable at once; from
/// the crash on it records nothing (the log's background thread may still
/// run until the log is dropped, on the file system after the crash, as a
/// process without power could not).
#[derive(Debug, Default)]
struct Manifest {
    segments: Mutex<BTreeMap<u64, Option<u64>>>,
    log_number: Mutex<u64>,
    crashed: AtomicBool,
}

impl Manifest {
    fn check_alive(&self) -> std::io::Result<()> {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the machine lost power"));
        }
        Ok(())
    }
}

impl SegmentListener for Manifest {
    fn segment_started(&self, started: u64) -> std::io::Result<()> {
        self.check_alive()?;
        self.segments.lock().unwrap().insert(started, None);
        Ok(())
    }

    fn segment_sealed(&self, segment: u64, len: u64) -> std::io::Result<()> {
        self.check_alive()?;
        if segment >= *self.log_number.lock().unwrap() {
            self.segments.lock().unwrap().insert(segment, Some(len));
        }
        Ok(())
    }
}

impl Manifest {
    fn plan(&self) -> RecoveryPlan {
        let segments = self.segments.lock().unwrap();
        RecoveryPlan {
            segments: segments.keys().copied().collect(),
            sealed: segments
                .iter()
                .filter_map(|(&n, &sealed)| Some((n, sealed?)))
                .collect(),
            headers_durable: true,
            seals_tracked: true,
        }
    }

    fn retire_before(&self, segment: u64) {
        *self.log_number.lock().unwrap() = segment;
        self.segments.lock().unwrap().retain(|&n, _| n >= segment);
    }
}

/// What a run must find after a crash: the batches still in the log (in
/// order) and how many of them were durable before the crash.
struct Model {
    /// Batches in live segments, with the segment each went to.
    live: Vec<(u64, Batch)>,
    /// `live[..durable]` must survive.
    durable: usize,
}

impl Model {
    fn new(recovered: Vec<Batch>) -> Self {
        let durable = recovered.len();
        Model {
            live: recovered.into_iter().map(|b| (0, b)).collect(),
            durable,
        }
    }
}

/// Runs `ops` against a log on `mem` (tracked by `manifest`, if any),
/// then crashes it. Returns the model.
fn run_and_crash(
    mem: &MemFs,
    options: &WalOptions,
    ops: &[Op],
    mut model: Model,
    manifest: Option<&Arc<Manifest>>,
) -> Model {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let wal = match manifest {
        None => {
            Wal::open(fs, &dir(), options.clone())
                .unwrap()
                .finish()
                .unwrap()
                .0
        }
        Some(manifest) => recover_tracked(fs, options, manifest),
    };
    for op in ops {
        match op {
            Op::Append(batch) => {
                let position = wal.append(batch).unwrap();
                model.live.push((position.segment, batch.clone()));
                if options.sync_mode == SyncMode::Always {
                    model.durable = model.live.len();
                }
            }
            Op::Sync => {
                wal.sync().unwrap();
                model.durable = model.live.len();
            }
            Op::Rotate => {
                wal.rotate().unwrap();
            }
            Op::Retire => {
                let current = wal.current_segment();
                if let Some(manifest) = manifest {
                    manifest.retire_before(current);
                }
                wal.remove_segments_before(current).unwrap();
                // Retiring is durable on return (directory synced).
                let gone = model.live.iter().take_while(|(s, _)| *s < current).count();
                model.live.drain(..gone);
                model.durable = model.durable.saturating_sub(gone);
            }
        }
    }
    if let Some(manifest) = manifest {
        manifest.crashed.store(true, Ordering::SeqCst);
    }
    mem.crash();
    // The background syncer (if any) now fails on its dead handle and stops.
    drop(wal);
    if let Some(manifest) = manifest {
        manifest.crashed.store(false, Ordering::SeqCst);
    }
    model
}

/// Opens the log as the engine does: replays the manifest's plan, makes
/// the replay durable and records the replayed segments sealed at their
/// ends (the dropped ones at their headers), then goes on in a new segment.
fn recover_tracked(fs: Arc<dyn Fs>, options: &WalOptions, manifest: &Arc<Manifest>) -> Wal {
    let plan = manifest.plan();
    // Files the manifest does not track: retired, or created by a rotation
    // whose record never came (they hold no record). The engine deletes
    // them before it starts the log again.
    for name in fs.list_dir(&dir()).unwrap_or_default() {
        if let Some(n) = kevo_wal::parse_segment_file_name(&name)
            && !plan.segments.contains(&n)
        {
            fs.remove_file(&segment_path(n)).unwrap();
        }
    }
    let first = plan.segments.last().map_or(0, |n| n + 1);
    let mut recovery = Wal::open_with_plan(fs, &dir(), options.clone(), Some(plan)).unwrap();
    for batch in recovery.by_ref() {
        batch.unwrap();
    }
    recovery.sync_replayed().unwrap();
    let report = recovery.report().clone();
    {
        let mut segments = manifest.segments.lock().unwrap();
        segments.clear();
        for &(segment, end) in &report.segment_ends {
            segments.insert(segment, Some(end));
        }
        for &segment in &report.segments_dropped {
            segments.insert(segment, Some(SEGMENT_HEADER_BYTES as u64));
        }
    }
    let listener: Arc<dyn SegmentListener> = manifest.clone();
    recovery.finish_with(Some(listener), first).unwrap().0
}

/// Recovers the log (through the manifest's plan, if any) and checks the
/// model; returns what was recovered.
fn recover_and_check(
    mem: &MemFs,
    model: &Model,
    manifest: Option<&Arc<Manifest>>,
) -> Result<Vec<Batch>, TestCaseError> {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let replayed = match manifest {
        None => replay(fs, RecoveryMode::TolerateTornTail).map(|(batches, _)| batches),
        Some(manifest) => {
            let mut replay = kevo_wal::Replay::with_plan(
                fs,
                &dir(),
                RecoveryMode::TolerateTornTail,
                manifest.plan(),
            );
            replay
                .by_ref()
                .map(|b| b.map(|b| b.batch))
                .collect::<kevo_wal::Result<Vec<_>>>()
        }
    };
    let recovered = match replayed {
        Ok(batches) => batches,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "recovery failed after a crash: {e} (files {:?}, plan {:?})",
                mem.file_names(),
                manifest.map(|m| m.plan())
            )));
        }
    };
    prop_assert!(
        recovered.len() <= model.live.len(),
        "recovered more batches than were appended"
    );
    for (i, batch) in recovered.iter().enumerate() {
        prop_assert_eq!(batch, &model.live[i].1, "batch {} differs: not a prefix", i);
    }
    prop_assert!(
        recovered.len() >= model.durable,
        "lost a durable batch: recovered {} of {} durable",
        recovered.len(),
        model.durable
    );
    Ok(recovered)
}

fn cases() -> u32 {
    std::env::var("KEVO_CRASH_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn crash_recovery_yields_a_prefix_holding_every_durable_batch(
        options in arb_options(),
        first in proptest::collection::vec(arb_op(), 0..40),
        second in proptest::collection::vec(arb_op(), 0..20),
        seed: u64,
        tracked: bool,
    ) {
        let mem = MemFs::with_seed(seed);
        let manifest = tracked.then(|| Arc::new(Manifest::default()));
        let manifest = manifest.as_ref();
        // First life: write, crash, recover.
        let model = run_and_crash(&mem, &options, &first, Model::new(Vec::new()), manifest);
        let recovered = recover_and_check(&mem, &model, manifest)?;
        // Second life: continue after the recovered prefix, crash again.
        let model = run_and_crash(&mem, &options, &second, Model::new(recovered), manifest);
        recover_and_check(&mem, &model, manifest)?;
    }
}

#[test]
fn concurrent_appenders_lose_nothing_acknowledged_under_always() {
    for seed in 0..20u64 {
        let mem = MemFs::with_seed(seed);
        let fs: Arc<dyn Fs> = Arc::new(mem.clone());
        let options = WalOptions {
            segment_bytes: 8 * 1024,
            ..WalOptions::default()
        };
        let wal = Arc::new(open(fs.clone(), options));
        let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let next_id = Arc::new(AtomicU64::new(1));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (wal, acknowledged, stop, next_id) = (
                    wal.clone(),
                    acknowledged.clone(),
                    stop.clone(),
                    next_id.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        let b = batch(id, 1, (id % 300) as usize);
                        match wal.append(&b) {
                            Ok(_) => acknowledged.lock().unwrap().push(b),
                            // Appends fail once the crash kills the file handles.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        while next_id.load(Ordering::Relaxed) < 200 {
            std::thread::yield_now();
        }
        // Snapshot the acknowledged set, then crash: everything acknowledged
        // before the crash must survive.
        let before_crash: Vec<Batch> = acknowledged.lock().unwrap().clone();
        mem.crash();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let (replayed, _) = replay(Arc::new(mem.clone()), RecoveryMode::TolerateTornTail).unwrap();
        for b in &before_crash {
            assert!(
                replayed.contains(b),
                "seed {seed}: acknowledged batch {} lost",
                b.seqno()
            );
        }
        let mut seen = std::collections::HashSet::new();
        for b in &replayed {
            assert!(
                seen.insert(b.seqno()),
                "seed {seed}: batch {} replayed twice",
                b.seqno()
            );
        }
    }
}
