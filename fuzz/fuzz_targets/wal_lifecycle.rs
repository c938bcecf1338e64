//! Append, rotate, retire and recycle segments, reopen: at every reopen and
//! at the end the log replays exactly the batches still in live segments.
//!
//! The input is decoded with `kevo_fuzz::decode(data, true)`: batches as in
//! `wal_roundtrip`, plus `Wal::rotate`, `Wal::remove_segments_before` (which
//! renames up to `recycle_segments` retired files `NNNNNN.wal.free` for
//! reuse, so later segments are written over the old records of a recycled
//! file) and drop-and-reopen. A model tracks the live segments and the
//! batches they hold. What must hold:
//!
//! - every operation succeeds; `rotate`, `finish` and an append that does not
//!   fit start the next segment number; `remove_segments_before` retires exactly the live segments below
//!   its argument, the current one excepted;
//! - at each reopen, and at the end under every recovery mode, the replay
//!   returns exactly the batches of the live segments, in order, at the
//!   positions their appends returned, with nothing trimmed or skipped, and
//!   reads exactly the live segments;
//! - the directory holds the live segment files and at most
//!   `recycle_segments` free files.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use kevo_core::{Fs, MemFs};
use kevo_fuzz::{DIR, MODES, Op, assert_clean, assert_replayed, decode, replay_all};
use kevo_wal::{
    Batch, RecoveryMode, ReplayReport, ReplayedBatch, Wal, WalOptions, WalPosition,
    parse_segment_file_name,
};
use libfuzzer_sys::fuzz_target;

fn check(
    what: &str,
    replayed: &[ReplayedBatch],
    report: &ReplayReport,
    expected: &[(WalPosition, Batch)],
    live: &BTreeSet<u64>,
) {
    assert_eq!(replayed.len(), expected.len(), "{what}: batch count");
    for (got, (pos, batch)) in replayed.iter().zip(expected) {
        assert_replayed(what, got, pos, batch);
    }
    assert_eq!(
        report.batches,
        expected.len() as u64,
        "{what}: report.batches"
    );
    assert_eq!(
        report.segments,
        live.iter().copied().collect::<Vec<_>>(),
        "{what}: segments read"
    );
}

fn open(
    fs: &Arc<dyn Fs>,
    options: &WalOptions,
    expected: &[(WalPosition, Batch)],
    live: &BTreeSet<u64>,
) -> Wal {
    let mut recovery = Wal::open(fs.clone(), Path::new(DIR), options.clone()).expect("open");
    let replayed: Vec<_> = recovery
        .by_ref()
        .collect::<Result<_, _>>()
        .expect("recovery of a cleanly written log");
    let (wal, report) = recovery.finish().expect("finish");
    assert_clean(&report, RecoveryMode::TolerateTornTail);
    check("reopen", &replayed, &report, expected, live);
    wal
}

fuzz_target!(|data: &[u8]| {
    let script = decode(data, true);
    let options = script.options;
    let fs: Arc<dyn Fs> = Arc::new(MemFs::new());

    let mut expected: Vec<(WalPosition, Batch)> = Vec::new();
    let mut live = BTreeSet::new();
    let mut wal = open(&fs, &options, &expected, &live);
    assert_eq!(wal.current_segment(), 1);
    live.insert(1);

    for op in script.ops {
        match op {
            Op::Append(batch) => {
                let before = wal.current_segment();
                let pos = wal.append(&batch).expect("append");
                assert_eq!(pos.segment, wal.current_segment());
                // An append that does not fit rotates first.
                assert!(
                    pos.segment == before || pos.segment == before + 1,
                    "{before} -> {pos:?}"
                );
                live.insert(pos.segment);
                if let Some((p, _)) = expected.last() {
                    assert!(
                        (p.segment, p.offset) < (pos.segment, pos.offset),
                        "positions go backwards: {p:?} then {pos:?}"
                    );
                }
                expected.push((pos, batch));
            }
            Op::Rotate => {
                let before = wal.current_segment();
                let next = wal.rotate().expect("rotate");
                assert_eq!(next, before + 1);
                live.insert(next);
            }
            Op::RemoveBefore(back) => {
                let current = wal.current_segment();
                let below = current.saturating_sub(back);
                let gone = live.iter().filter(|&&n| n < below && n != current).count();
                let removed = wal
                    .remove_segments_before(below)
                    .expect("remove_segments_before");
                assert_eq!(
                    removed, gone,
                    "remove_segments_before({below}) with live {live:?}"
                );
                live.retain(|&n| n >= below || n == current);
                expected.retain(|(p, _)| live.contains(&p.segment));
            }
            Op::Reopen => {
                drop(wal);
                wal = open(&fs, &options, &expected, &live);
                let next = live.last().copied().unwrap_or(0) + 1;
                assert_eq!(wal.current_segment(), next);
                live.insert(next);
            }
        }
    }
    drop(wal);

    let names = fs.list_dir(Path::new(DIR)).expect("list");
    let segments: BTreeSet<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    assert_eq!(segments, live, "segment files: {names:?}");
    let free = names.iter().filter(|n| n.ends_with(".wal.free")).count();
    assert!(
        free <= options.recycle_segments,
        "{free} free files, recycle_segments = {}",
        options.recycle_segments
    );

    for mode in MODES {
        let (replayed, report) = replay_all(&fs, mode);
        assert_clean(&report, mode);
        check(&format!("{mode:?}"), &replayed, &report, &expected, &live);
    }
});
