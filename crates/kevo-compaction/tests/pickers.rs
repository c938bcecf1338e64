//! Strategy picks on versions built through a real `VersionSet` over
//! `MemFs`, with synthetic table metadata (no table files).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use kevo_compaction::{
    CompactionReason, CompactionStrategy, CompactionTask, KeyRange, Leveled, LeveledOptions,
    ManualStep, Tiered, TieredOptions, sorted_runs,
};
use kevo_core::{InternalKey, MemFs, SeqNo, ValueKind};
use kevo_manifest::{ManifestOptions, NUM_LEVELS, TableMeta, Version, VersionEdit, VersionSet};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

struct Tree {
    set: VersionSet,
    next_seqno: SeqNo,
}

impl Tree {
    fn new() -> Tree {
        let fs = Arc::new(MemFs::new());
        let (set, _) = VersionSet::open(fs, Path::new("/db"), ManifestOptions::default()).unwrap();
        Tree { set, next_seqno: 1 }
    }

    fn version(&self) -> Arc<Version> {
        self.set.current()
    }

    fn meta(&self, lo: &str, hi: &str, bytes: u64, seqnos: (SeqNo, SeqNo)) -> TableMeta {
        TableMeta {
            number: self.set.new_file_number(),
            file_size: bytes,
            smallest: InternalKey::new(lo.as_bytes(), seqnos.1, ValueKind::Put),
            largest: InternalKey::new(hi.as_bytes(), seqnos.0, ValueKind::Put),
            smallest_seqno: seqnos.0,
            largest_seqno: seqnos.1,
            entries: 10,
            tombstones: 1,
            range_tombstones: 0,
        }
    }

    /// Adds a table over `lo..=hi` with fresh seqnos; returns its number.
    fn add(&mut self, level: usize, lo: &str, hi: &str, bytes: u64) -> u64 {
        let seqnos = (self.next_seqno, self.next_seqno + 9);
        self.next_seqno += 10;
        let meta = self.meta(lo, hi, bytes, seqnos);
        let number = meta.number;
        self.set
            .log_and_apply(VersionEdit {
                added: vec![(level, meta)],
                ..VersionEdit::default()
            })
            .unwrap();
        number
    }

    /// Installs what running `task` would: one output table over the
    /// inputs' range (or the moved table).
    fn apply(&self, task: &CompactionTask) {
        let mut edit = VersionEdit::default();
        for (level, t) in task.input_tables() {
            edit.removed.push((level, t.number));
        }
        if task.trivial_move {
            let (_, t) = task.input_tables().next().unwrap();
            edit.added.push((task.output_level, (**t).clone()));
        } else {
            let range = task.key_range().unwrap();
            let lo = task
                .input_tables()
                .map(|(_, t)| t.smallest_seqno)
                .min()
                .unwrap();
            let hi = task
                .input_tables()
                .map(|(_, t)| t.largest_seqno)
                .max()
                .unwrap();
            let meta = TableMeta {
                number: self.set.new_file_number(),
                file_size: task.input_bytes(),
                smallest: InternalKey::new(&range.smallest, hi, ValueKind::Put),
                largest: InternalKey::new(&range.largest, lo, ValueKind::Put),
                smallest_seqno: lo,
                largest_seqno: hi,
                entries: 10,
                tombstones: 0,
                range_tombstones: 0,
            };
            edit.added.push((task.output_level, meta));
        }
        self.set.log_and_apply(edit).unwrap();
    }
}

fn none_busy() -> BTreeSet<u64> {
    BTreeSet::new()
}

fn numbers(task: &CompactionTask) -> BTreeSet<u64> {
    task.input_numbers().into_iter().collect()
}

fn leveled(options: LeveledOptions) -> Leveled {
    Leveled::new(options)
}

fn static_leveled(base_level_bytes: u64, target_file_bytes: u64) -> Leveled {
    leveled(LeveledOptions {
        dynamic_level_bytes: false,
        base_level_bytes,
        target_file_bytes,
        ..LeveledOptions::default()
    })
}

#[test]
fn l0_compacts_once_it_holds_l0_trigger_tables() {
    let mut tree = Tree::new();
    let strategy = Leveled::default();
    for _ in 0..3 {
        tree.add(0, "a", "z", MIB);
    }
    assert!(strategy.pick(&tree.version(), &none_busy()).is_none());
    tree.add(0, "a", "z", MIB);
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert_eq!(task.reason, CompactionReason::L0FileCount);
    assert_eq!(task.score, 1.0);
    assert_eq!(task.inputs.len(), 1);
    assert_eq!(task.inputs[0].level, 0);
    assert_eq!(task.inputs[0].tables.len(), 4);
    // An empty tree's base level is the last one.
    assert_eq!(task.output_level, NUM_LEVELS - 1);
    assert!(task.drop_tombstones && task.is_bottommost());
    assert!(!task.trivial_move);
    assert_eq!(task.input_bytes(), 4 * MIB);
}

#[test]
fn dynamic_targets_follow_the_last_level_and_pick_the_base_level() {
    let mut tree = Tree::new();
    // 10 GiB in the last level, in ten 1 GiB tables.
    for i in 0..10 {
        tree.add(6, &format!("k{i}0"), &format!("k{i}9"), GIB);
    }
    let strategy = Leveled::default();
    let targets = strategy.targets(&tree.version());
    assert_eq!(targets.target_bytes[6], 10 * GIB);
    assert_eq!(targets.target_bytes[5], GIB);
    // L4 would get 102.4 MiB, at most base_level_bytes: it is the base
    // level, its target raised to base_level_bytes.
    assert_eq!(targets.base_level, 4);
    assert_eq!(targets.target_bytes[4], 256 * MIB);
    assert_eq!(&targets.target_bytes[..4], &[0, 0, 0, 0]);

    let scores = strategy.level_scores(&tree.version());
    assert_eq!(scores.len(), NUM_LEVELS);
    assert_eq!(scores[5].target_bytes, GIB);
    assert_eq!(scores[6].bytes, 10 * GIB);

    for _ in 0..4 {
        tree.add(0, "k00", "k99", 16 * MIB);
    }
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert_eq!(task.reason, CompactionReason::L0FileCount);
    assert_eq!(task.output_level, 4);
    // L6 lies below: tombstones must stay.
    assert!(!task.drop_tombstones);

    // A 100 GiB last level moves the base up one level.
    let mut tree = Tree::new();
    for i in 0..10 {
        tree.add(6, &format!("k{i}0"), &format!("k{i}9"), 10 * GIB);
    }
    let targets = strategy.targets(&tree.version());
    assert_eq!(targets.base_level, 3);
    assert_eq!(targets.target_bytes[5], 10 * GIB);
    assert_eq!(targets.target_bytes[4], GIB);
}

#[test]
fn a_level_over_its_target_compacts_into_the_next() {
    let mut tree = Tree::new();
    for i in 0..10 {
        tree.add(6, &format!("k{i}0"), &format!("k{i}9"), GIB);
    }
    // L5's target is 1 GiB; give it 2 GiB.
    tree.add(5, "k05", "k15", GIB);
    tree.add(5, "k50", "k52", GIB);
    let strategy = Leveled::default();
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert_eq!(task.reason, CompactionReason::LevelSize);
    assert!(task.score >= 2.0);
    assert_eq!(task.output_level, 6);
    // The table overlapping less of L6 (one table, not two) goes first.
    assert_eq!(task.inputs[0].level, 5);
    assert_eq!(task.inputs[0].tables[0].smallest_user_key(), b"k50");
    assert_eq!(task.inputs[1].level, 6);
    assert_eq!(task.inputs[1].tables.len(), 1);
    assert!(task.drop_tombstones);
    assert!(strategy.pending_bytes(&tree.version()) > 0);
}

#[test]
fn a_table_without_overlap_below_is_moved_not_rewritten() {
    let mut tree = Tree::new();
    let strategy = static_leveled(MIB, MIB);
    let moved = tree.add(1, "a", "c", 2 * MIB);
    tree.add(2, "x", "z", MIB);
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert!(task.trivial_move);
    assert_eq!(task.input_numbers(), vec![moved]);
    assert_eq!(task.output_level, 2);

    // Too much overlap with the grandparents (L3) forbids the move.
    let mut tree = Tree::new();
    tree.add(1, "a", "c", 2 * MIB);
    tree.add(3, "a", "c", 11 * MIB);
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert!(!task.trivial_move);
    assert_eq!(task.grandparents.len(), 1);
}

#[test]
fn busy_tables_are_never_picked() {
    let mut tree = Tree::new();
    let strategy = static_leveled(MIB, MIB);
    let a = tree.add(1, "a", "c", 2 * MIB);
    let b = tree.add(1, "m", "o", 2 * MIB);
    let first = strategy.pick(&tree.version(), &none_busy()).unwrap();
    let busy: BTreeSet<u64> = numbers(&first);
    let second = strategy.pick(&tree.version(), &busy).unwrap();
    assert!(numbers(&second).is_disjoint(&busy));
    assert_eq!(
        numbers(&first)
            .union(&numbers(&second))
            .copied()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b])
    );
    let both = BTreeSet::from([a, b]);
    assert!(strategy.pick(&tree.version(), &both).is_none());
}

#[test]
fn an_l0_table_never_leaves_without_the_older_ones_it_overlaps() {
    let mut tree = Tree::new();
    let strategy = leveled(LeveledOptions {
        l0_trigger: 2,
        ..LeveledOptions::default()
    });
    let oldest = tree.add(0, "a", "c", MIB);
    let _newer = tree.add(0, "b", "d", MIB); // overlaps the oldest
    let apart = tree.add(0, "x", "z", MIB);
    let newest = tree.add(0, "y", "y", MIB); // overlaps `apart`
    let task = strategy
        .pick(&tree.version(), &BTreeSet::from([oldest]))
        .unwrap();
    assert_eq!(numbers(&task), BTreeSet::from([apart, newest]));
    // L0's order is kept in the task: newest first.
    assert_eq!(task.inputs[0].tables[0].number, newest);
    // Without busy tables everything goes.
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert_eq!(task.input_numbers().len(), 4);
}

#[test]
fn a_range_a_running_task_writes_is_not_written_twice() {
    let mut tree = Tree::new();
    let strategy = leveled(LeveledOptions {
        l0_trigger: 1,
        dynamic_level_bytes: false,
        base_level_bytes: MIB,
        ..LeveledOptions::default()
    });
    // A running L0 -> L1 task reads a..b and y..z: its output tables may
    // span anything from a to z in L1.
    let running = BTreeSet::from([tree.add(0, "a", "b", MIB), tree.add(0, "y", "z", MIB)]);
    // A newer L0 table m..n may leave L0 on its own, but not into L1 now.
    tree.add(0, "m", "n", MIB);
    assert!(strategy.pick(&tree.version(), &running).is_none());
    // Level 1 -> 2 is not written by the running task.
    let free = tree.add(1, "p", "q", 4 * MIB);
    let task = strategy.pick(&tree.version(), &running).unwrap();
    assert_eq!(task.input_numbers(), vec![free]);
    assert_eq!(task.output_level, 2);
}

#[test]
fn tiered_merges_once_min_merge_width_similar_runs_accumulate() {
    let mut tree = Tree::new();
    let strategy = Tiered::default();
    tree.add(6, "a", "z", 100 * MIB);
    for _ in 0..3 {
        tree.add(0, "a", "z", MIB);
    }
    assert!(strategy.pick(&tree.version(), &none_busy()).is_none());
    tree.add(0, "a", "z", MIB);
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert_eq!(task.reason, CompactionReason::SizeRatio);
    assert_eq!(task.score, 1.0);
    assert_eq!(task.input_numbers().len(), 4);
    assert!(task.inputs.iter().all(|l| l.level == 0));
    // Just above the next older run (L6).
    assert_eq!(task.output_level, 5);
    assert!(!task.drop_tombstones);
    assert_eq!(strategy.pending_bytes(&tree.version()), 4 * MIB);
    let scores = strategy.level_scores(&tree.version());
    assert_eq!(scores[0].score, 1.0);
    assert_eq!(scores[6].score, 0.02);
}

#[test]
fn tiered_groups_stop_at_a_run_much_larger_than_the_group() {
    let mut tree = Tree::new();
    let strategy = Tiered::new(TieredOptions {
        max_space_amplification_percent: 10_000,
        ..TieredOptions::default()
    });
    tree.add(6, "a", "z", 100 * MIB);
    // Sizes growing 3x: no group of 4 similar runs.
    for size in [27, 9, 3, 1] {
        tree.add(0, "a", "z", size * MIB);
    }
    assert!(strategy.pick(&tree.version(), &none_busy()).is_none());
    // Four more similar small runs on top: they start a group that then
    // takes each next run while it is at most twice the group so far.
    let mut small = BTreeSet::new();
    for _ in 0..4 {
        small.insert(tree.add(0, "a", "z", MIB / 4));
    }
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert_eq!(task.reason, CompactionReason::SizeRatio);
    // 4 x 1/4 MiB, then 1 (<= 2 x 1), 3 (<= 2 x 2), 9 (<= 2 x 5) and 27
    // (<= 2 x 14) MiB, but not the 100 MiB of L6 (> 2 x 41): eight runs,
    // into L5, just above the next older run.
    assert_eq!(task.input_numbers().len(), 8);
    assert!(small.is_subset(&numbers(&task)));
    assert_eq!(task.output_level, 5);
    assert!(!task.drop_tombstones);

    // When the next older run is an L0 table, the output stays in L0, as
    // one table.
    let mut tree = Tree::new();
    tree.add(0, "a", "z", 100 * MIB);
    for _ in 0..4 {
        tree.add(0, "a", "z", MIB);
    }
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert_eq!(task.input_numbers().len(), 4);
    assert_eq!(task.output_level, 0);
    assert_eq!(task.target_file_bytes, u64::MAX);
    assert!(!task.drop_tombstones);
}

#[test]
fn tiered_merges_everything_past_the_space_amplification_limit() {
    let mut tree = Tree::new();
    let strategy = Tiered::default();
    tree.add(6, "a", "z", 10 * MIB);
    tree.add(0, "a", "z", 10 * MIB);
    tree.add(0, "a", "z", 11 * MIB);
    assert!(
        strategy
            .pick(&tree.version(), &none_busy())
            .is_some_and(|t| t.score >= 1.0)
    );
    let task = strategy.pick(&tree.version(), &none_busy()).unwrap();
    assert_eq!(task.reason, CompactionReason::SpaceAmplification);
    assert_eq!(task.input_numbers().len(), 3);
    assert_eq!(task.output_level, NUM_LEVELS - 1);
    assert!(task.drop_tombstones);
    assert_eq!(strategy.pending_bytes(&tree.version()), 31 * MIB);
    // A busy run blocks it.
    let busy = BTreeSet::from([task.input_numbers()[0]]);
    assert!(strategy.pick(&tree.version(), &busy).is_none());
}

/// Runs newest first hold strictly newer seqnos than every run below.
fn assert_runs_in_order(version: &Version) {
    let runs = sorted_runs(version);
    for pair in runs.windows(2) {
        let older_max = pair[1]
            .tables
            .iter()
            .map(|t| t.largest_seqno)
            .max()
            .unwrap();
        let newer_min = pair[0]
            .tables
            .iter()
            .map(|t| t.smallest_seqno)
            .min()
            .unwrap();
        assert!(
            newer_min > older_max,
            "run in L{} (seqnos from {newer_min}) above run in L{} (up to {older_max})",
            pair[0].level,
            pair[1].level
        );
    }
}

#[test]
fn tiered_keeps_runs_ordered_newest_above_oldest() {
    let mut tree = Tree::new();
    let strategy = Tiered::new(TieredOptions {
        min_merge_width: 2,
        max_merge_width: 4,
        ..TieredOptions::default()
    });
    let mut merges = 0;
    for flush in 0..200u64 {
        let lo = format!("k{:02}", flush % 7);
        let hi = format!("k{:02}", 50 + flush % 13);
        tree.add(0, &lo, &hi, MIB + (flush % 5) * MIB / 3);
        while let Some(task) = strategy.pick(&tree.version(), &none_busy()) {
            tree.apply(&task);
            merges += 1;
            assert_runs_in_order(&tree.version());
        }
    }
    assert!(merges > 50, "{merges} merges");
    let levels_used = (1..NUM_LEVELS)
        .filter(|&l| !tree.version().level(l).is_empty())
        .count();
    assert!(levels_used >= 1);
}

fn run_manual(tree: &Tree, strategy: &dyn CompactionStrategy, start: &str, end: &str) -> usize {
    let mut manual = strategy.manual(Some(start.as_bytes()), Some(end.as_bytes()));
    let mut tasks = 0;
    loop {
        match manual.next_task(&tree.version(), &none_busy()) {
            ManualStep::Task(task) => {
                assert!(!task.input_numbers().is_empty());
                tree.apply(&task);
                tasks += 1;
                assert!(tasks <= 2 * NUM_LEVELS, "manual compaction does not end");
            }
            ManualStep::Wait => panic!("nothing is busy"),
            ManualStep::Done => break,
        }
    }
    assert_eq!(
        manual.next_task(&tree.version(), &none_busy()),
        ManualStep::Done
    );
    tasks
}

fn levels_holding(version: &Version, start: &str, end: &str) -> Vec<usize> {
    (0..NUM_LEVELS)
        .filter(|&l| {
            !version
                .overlapping(l, Some(start.as_bytes()), Some(end.as_bytes()))
                .is_empty()
        })
        .collect()
}

fn messy_tree() -> Tree {
    let mut tree = Tree::new();
    tree.add(6, "a", "f", 10 * MIB);
    tree.add(6, "g", "p", 10 * MIB);
    tree.add(6, "q", "z", 10 * MIB);
    tree.add(4, "c", "h", MIB);
    tree.add(4, "r", "s", MIB);
    tree.add(3, "e", "k", MIB);
    tree.add(0, "b", "d", MIB);
    tree.add(0, "m", "t", MIB);
    tree
}

#[test]
fn manual_compaction_ends_with_the_range_in_one_level() {
    for strategy in [
        Box::new(Leveled::default()) as Box<dyn CompactionStrategy>,
        Box::new(Tiered::default()),
    ] {
        let tree = messy_tree();
        let tasks = run_manual(&tree, strategy.as_ref(), "d", "n");
        assert!(tasks >= 1);
        assert_eq!(
            levels_holding(&tree.version(), "d", "n"),
            vec![6],
            "{strategy:?}"
        );
        // Again: the bottom is re-merged once (its tables predate the new
        // manual compaction), and never twice.
        assert_eq!(run_manual(&tree, strategy.as_ref(), "d", "n"), 1);
        // The whole key space.
        run_manual(&tree, strategy.as_ref(), "", "\u{10ffff}");
        assert_eq!(levels_holding(&tree.version(), "", "\u{10ffff}"), vec![6]);
    }
}

#[test]
fn manual_compaction_of_an_empty_range_is_done_at_once() {
    let tree = messy_tree();
    let strategy = Leveled::default();
    let mut manual = strategy.manual(Some(b"zz"), None);
    assert_eq!(
        manual.next_task(&tree.version(), &none_busy()),
        ManualStep::Done
    );
}

#[test]
fn manual_compaction_waits_for_busy_inputs() {
    let mut tree = Tree::new();
    let busy_table = tree.add(1, "a", "c", MIB);
    tree.add(2, "a", "z", MIB);
    let strategy = Leveled::default();
    let mut manual = strategy.manual(None, None);
    let busy = BTreeSet::from([busy_table]);
    assert_eq!(manual.next_task(&tree.version(), &busy), ManualStep::Wait);
    let ManualStep::Task(task) = manual.next_task(&tree.version(), &none_busy()) else {
        panic!("expected a task");
    };
    assert_eq!(task.output_level, 2);
    assert_eq!(task.reason, CompactionReason::Manual);
    tree.apply(&task);
    assert_eq!(
        manual.next_task(&tree.version(), &none_busy()),
        ManualStep::Done
    );
}

#[test]
fn key_ranges_meet_inclusively() {
    let a = KeyRange {
        smallest: b"a".to_vec(),
        largest: b"c".to_vec(),
    };
    let b = KeyRange {
        smallest: b"c".to_vec(),
        largest: b"d".to_vec(),
    };
    assert!(a.meets(&b) && b.meets(&a));
    let c = KeyRange {
        smallest: b"c\0".to_vec(),
        largest: b"d".to_vec(),
    };
    assert!(!a.meets(&c));
}
