//! Property: after `run_compaction`, reading every key at every snapshot
//! through the output tables gives the model's answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Db, Entry, del, model_read, put, version_read};
use kevo_compaction::{CompactionReason, CompactionTask, LevelInputs};
use kevo_core::{MemFs, SEQNO_MAX, SeqNo, ValueKind};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    /// (key index, is a put), seqno = position + 1.
    ops: Vec<(u8, bool)>,
    /// Ops before this go to L1, the rest to L0 tables cut at `cuts`.
    l1_len: usize,
    cuts: Vec<usize>,
    snapshots: Vec<SeqNo>,
    target_file_bytes: u64,
}

fn case() -> impl Strategy<Value = Case> {
    proptest::collection::vec((0u8..16, proptest::bool::weighted(0.7)), 1..120).prop_flat_map(
        |ops| {
            let n = ops.len();
            (
                Just(ops),
                0..=n,
                proptest::collection::vec(0..=n, 0..3),
                proptest::collection::vec(0..=n as SeqNo + 1, 0..4),
                prop_oneof![Just(200u64), Just(1000), Just(1 << 20)],
            )
                .prop_map(|(ops, l1_len, cuts, snapshots, target_file_bytes)| Case {
                    ops,
                    l1_len,
                    cuts,
                    snapshots,
                    target_file_bytes,
                })
        },
    )
}

fn entry(i: usize, (key, is_put): (u8, bool)) -> Entry {
    let key = format!("k{key:02}");
    let seqno = i as SeqNo + 1;
    if is_put {
        put(&key, seqno, &format!("v{seqno}"))
    } else {
        del(&key, seqno)
    }
}

fn check(case: &Case, drop_tombstones: bool) -> Result<(), TestCaseError> {
    let db = Db::new(Arc::new(MemFs::new()));
    let model: Vec<Entry> = case
        .ops
        .iter()
        .enumerate()
        .map(|(i, &op)| entry(i, op))
        .collect();
    let mut inputs = Vec::new();
    if case.l1_len > 0 {
        db.add_table(1, &model[..case.l1_len]);
    }
    let mut bounds: Vec<usize> = case
        .cuts
        .iter()
        .copied()
        .filter(|&c| c > case.l1_len)
        .chain([case.l1_len, model.len()])
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    for pair in bounds.windows(2) {
        db.add_table(0, &model[pair[0]..pair[1]]);
    }
    let version = db.version();
    for level in [0, 1] {
        if !version.level(level).is_empty() {
            inputs.push(LevelInputs {
                level,
                tables: version.level(level).to_vec(),
            });
        }
    }
    let task = CompactionTask {
        inputs,
        output_level: 1,
        trivial_move: false,
        reason: CompactionReason::Manual,
        score: 1.0,
        drop_tombstones,
        grandparents: Vec::new(),
        target_file_bytes: case.target_file_bytes,
    };
    let mut snapshots = case.snapshots.clone();
    snapshots.sort_unstable();
    let out = db.run(&task, &snapshots).unwrap();
    db.set.log_and_apply(out.edit.clone()).unwrap();
    let after = db.version();
    prop_assert!(after.level(0).is_empty());
    if drop_tombstones {
        let oldest = snapshots.first().copied().unwrap_or(SEQNO_MAX);
        for e in db.entries_of(&out.outputs).concat() {
            prop_assert!(!(e.2 == ValueKind::Delete && e.1 <= oldest));
        }
    }
    prop_assert_eq!(
        out.stats.entries_read,
        out.stats.entries_written + out.stats.versions_dropped + out.stats.tombstones_dropped
    );
    for key in 0..16 {
        let key = format!("k{key:02}");
        for snapshot in snapshots.iter().copied().chain([SEQNO_MAX]) {
            prop_assert_eq!(
                version_read(&db, &after, key.as_bytes(), snapshot),
                model_read(&model, key.as_bytes(), snapshot),
                "{} at {}",
                key,
                snapshot
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_snapshot_reads_the_model_after_compaction(case in case()) {
        check(&case, false)?;
        check(&case, true)?;
    }
}
