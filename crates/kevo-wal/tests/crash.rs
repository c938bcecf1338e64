//! Crash tests: random appends under every sync mode, a simulated power
//! loss at a random point, then recovery.
//!
//! The properties checked after every crash:
//! - recovery succeeds (a crash never looks like corruption);
//! - the replayed batches are a prefix of the appended ones, each whole;
//! - every batch appended under `SyncMode::Always`, or before an explicit
//!   `sync()`, is in that prefix.
//!
//! `KEVO_CRASH_CASES` sets the number of cases (`cargo xtask crash` runs
//! many); CI runs 256.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use kevo_core::{Fs, MemFs};
use kevo_wal::{Batch, RecoveryMode, SyncMode, Wal, WalOptions};
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

/// Runs `ops` against a log on `mem`, then crashes it. Returns the model.
fn run_and_crash(mem: &MemFs, options: &WalOptions, ops: &[Op], mut model: Model) -> Model {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let (wal, _) = Wal::open(fs, &dir(), options.clone())
        .unwrap()
        .finish()
        .unwrap();
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
                wal.remove_segments_before(current).unwrap();
                // Retiring is durable on return (directory synced).
                let gone = model.live.iter().take_while(|(s, _)| *s < current).count();
                model.live.drain(..gone);
                model.durable = model.durable.saturating_sub(gone);
            }
        }
    }
    mem.crash();
    // The background syncer (if any) now fails on its dead handle and stops.
    drop(wal);
    model
}

/// Recovers the log and checks the model; returns what was recovered.
fn recover_and_check(mem: &MemFs, model: &Model) -> Result<Vec<Batch>, TestCaseError> {
    let fs: Arc<dyn Fs> = Arc::new(mem.clone());
    let recovered = match replay(fs, RecoveryMode::TolerateTornTail) {
        Ok((batches, _)) => batches,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "recovery failed after a crash: {e}"
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
    ) {
        let mem = MemFs::with_seed(seed);
        // First life: write, crash, recover.
        let model = run_and_crash(&mem, &options, &first, Model::new(Vec::new()));
        let recovered = recover_and_check(&mem, &model)?;
        // Second life: continue after the recovered prefix, crash again.
        let model = run_and_crash(&mem, &options, &second, Model::new(recovered));
        recover_and_check(&mem, &model)?;
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
