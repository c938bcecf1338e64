//! [`ManualCompaction`]: the progress of one `compact_range`.
//!
//! Two plans, chosen by the strategy:
//!
//! - **level by level** ([`Leveled`](crate::Leveled)): for each level k from
//!   L0 down, take every table of k overlapping the range (for L0 also the
//!   older L0 tables overlapping those) and merge them into the first level
//!   below k that overlaps them, or into the bottommost level holding range
//!   data (into the last level when only L0 holds any). The plan never goes
//!   back up, so it takes at most one task per level.
//! - **all at once** ([`Tiered`](crate::Tiered)): one task with every table
//!   of every level overlapping the range, closed under overlap (a table
//!   overlapping what is taken is taken too), into the deepest level among
//!   them.
//!
//! Then, when the bottommost level still holds tables overlapping the range
//! that existed before the manual compaction started (they may carry
//! tombstones and shadowed versions), one last task re-merges them in place
//! with `drop_tombstones`. Tables written since were written by a merge into
//! that bottom level and are clean already, so a clean bottom is never
//! re-merged twice, and the whole plan ends after a bounded number of tasks
//! even while writes go on.

use std::collections::BTreeSet;
use std::sync::Arc;

use kevo_manifest::{NUM_LEVELS, TableMeta, Version};

use crate::leveled::output_conflicts;
use crate::task::{
    CompactionReason, CompactionTask, KeyRange, LevelInputs, any_busy, grandparents, nothing_below,
};

/// What [`ManualCompaction::next_task`] says to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum ManualStep {
    /// Run this task, install its edit, and call again.
    Task(CompactionTask),
    /// Tables the next task needs are being compacted: call again after a
    /// running compaction ends.
    Wait,
    /// All data overlapping the range lives in one level, clean.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    LevelByLevel,
    AllAtOnce,
}

/// The state of one `compact_range(start..=end)`.
///
/// Leveled plans move the range down level by level (at most one task per
/// level), tiered plans merge everything overlapping it at once; then the
/// bottom level's range tables that predate the manual compaction are
/// re-merged once with `drop_tombstones`. See `docs/compaction.md`.
#[derive(Debug, Clone)]
pub struct ManualCompaction {
    start: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
    plan: Plan,
    target_file_bytes: u64,
    /// The next level the level-by-level plan empties.
    next_level: usize,
    /// Largest table number when the first step was asked for: tables
    /// numbered above were written after the manual compaction started.
    mark: Option<u64>,
    /// The all-at-once merge was handed out.
    merged: bool,
    done: bool,
}

impl ManualCompaction {
    /// A level-by-level plan (the leveled strategy's).
    pub fn level_by_level(
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        target_file_bytes: u64,
    ) -> Self {
        Self::new(start, end, Plan::LevelByLevel, target_file_bytes)
    }

    /// An all-at-once plan (the tiered strategy's).
    pub fn all_at_once(start: Option<&[u8]>, end: Option<&[u8]>, target_file_bytes: u64) -> Self {
        Self::new(start, end, Plan::AllAtOnce, target_file_bytes)
    }

    fn new(start: Option<&[u8]>, end: Option<&[u8]>, plan: Plan, target_file_bytes: u64) -> Self {
        ManualCompaction {
            start: start.map(<[u8]>::to_vec),
            end: end.map(<[u8]>::to_vec),
            plan,
            target_file_bytes: target_file_bytes.max(1),
            next_level: 0,
            mark: None,
            merged: false,
            done: false,
        }
    }

    /// The next step for `version`, where `busy` holds the tables running
    /// compactions read. Returns [`ManualStep::Done`] forever once done.
    pub fn next_task(&mut self, version: &Version, busy: &BTreeSet<u64>) -> ManualStep {
        if self.done {
            return ManualStep::Done;
        }
        let mark = *self
            .mark
            .get_or_insert_with(|| version.tables().map(|(_, t)| t.number).max().unwrap_or(0));
        let Some(last) = (0..NUM_LEVELS)
            .rev()
            .find(|&l| !self.in_range(version, l).is_empty())
        else {
            self.done = true;
            return ManualStep::Done;
        };
        let step = match self.plan {
            Plan::LevelByLevel => self.level_step(version, busy, last),
            Plan::AllAtOnce => self.all_at_once_step(version, busy),
        };
        if let Some(step) = step {
            return step;
        }
        self.bottom_step(version, busy, last, mark)
    }

    fn in_range(&self, version: &Version, level: usize) -> Vec<Arc<TableMeta>> {
        version.overlapping(level, self.start.as_deref(), self.end.as_deref())
    }

    /// The task moving level `next_level` down, if one is left.
    fn level_step(
        &mut self,
        version: &Version,
        busy: &BTreeSet<u64>,
        last: usize,
    ) -> Option<ManualStep> {
        while self.next_level < last || (self.next_level == 0 && last == 0) {
            let level = self.next_level;
            let mut inputs = self.in_range(version, level);
            if level == 0 {
                inputs = with_older_l0_overlaps(version, &inputs);
            }
            let Some(range) = KeyRange::of(&inputs) else {
                self.next_level += 1;
                continue;
            };
            let floor = if last > level { last } else { NUM_LEVELS - 1 };
            let output_level = (level + 1..=floor)
                .find(|&l| !range.overlapping_in(version, l).is_empty())
                .unwrap_or(floor);
            let outputs = range.overlapping_in(version, output_level);
            let mut full = range;
            for t in &outputs {
                full.extend(t);
            }
            if any_busy(&inputs, busy)
                || any_busy(&outputs, busy)
                || busy_between(version, busy, level, output_level, &full)
            {
                return Some(ManualStep::Wait);
            }
            // Never a trivial move: a table moved into the bottom level would
            // have to be re-merged there anyway; merging now cleans it once.
            let grandparents = grandparents(version, output_level, &full);
            let mut levels = vec![LevelInputs {
                level,
                tables: inputs,
            }];
            if !outputs.is_empty() {
                levels.push(LevelInputs {
                    level: output_level,
                    tables: outputs,
                });
            }
            self.next_level += 1;
            return Some(ManualStep::Task(CompactionTask {
                inputs: levels,
                output_level,
                trivial_move: false,
                reason: CompactionReason::Manual,
                score: 1.0,
                drop_tombstones: nothing_below(version, output_level, &full),
                grandparents,
                target_file_bytes: self.target_file_bytes,
            }));
        }
        None
    }

    /// The one merge of everything overlapping the range, if not handed out
    /// yet and the range data is not already in one level.
    fn all_at_once_step(&mut self, version: &Version, busy: &BTreeSet<u64>) -> Option<ManualStep> {
        if self.merged {
            return None;
        }
        let mut inputs: Vec<Vec<Arc<TableMeta>>> =
            (0..NUM_LEVELS).map(|l| self.in_range(version, l)).collect();
        let mut range = KeyRange::of(inputs.iter().flatten())?;
        // Close under overlap: whatever meets the range must move with it.
        loop {
            let grown: Vec<Vec<Arc<TableMeta>>> = (0..NUM_LEVELS)
                .map(|l| range.overlapping_in(version, l))
                .collect();
            let count = |v: &[Vec<Arc<TableMeta>>]| v.iter().map(Vec::len).sum::<usize>();
            let stable = count(&grown) == count(&inputs);
            inputs = grown;
            if let Some(r) = KeyRange::of(inputs.iter().flatten()) {
                range = r;
            }
            if stable {
                break;
            }
        }
        let levels_used: Vec<usize> = (0..NUM_LEVELS).filter(|&l| !inputs[l].is_empty()).collect();
        if levels_used.len() <= 1 && levels_used.first() != Some(&0) {
            // Already one level: only the bottom clean-up may be left.
            self.merged = true;
            return None;
        }
        if inputs.iter().any(|tables| any_busy(tables, busy)) {
            return Some(ManualStep::Wait);
        }
        let deepest = levels_used.last().copied().unwrap_or(0);
        let output_level = if deepest == 0 {
            NUM_LEVELS - 1
        } else {
            deepest
        };
        self.merged = true;
        Some(ManualStep::Task(CompactionTask {
            inputs: levels_used
                .iter()
                .map(|&level| LevelInputs {
                    level,
                    tables: inputs[level].clone(),
                })
                .collect(),
            output_level,
            trivial_move: false,
            reason: CompactionReason::Manual,
            score: 1.0,
            drop_tombstones: nothing_below(version, output_level, &range),
            grandparents: grandparents(version, output_level, &range),
            target_file_bytes: self.target_file_bytes,
        }))
    }

    /// Re-merges the bottom level's range tables that predate the manual
    /// compaction, once; then done.
    fn bottom_step(
        &mut self,
        version: &Version,
        busy: &BTreeSet<u64>,
        last: usize,
        mark: u64,
    ) -> ManualStep {
        let tables = self.in_range(version, last);
        if last == 0 || tables.iter().all(|t| t.number > mark) {
            self.done = true;
            return ManualStep::Done;
        }
        let Some(range) = KeyRange::of(&tables) else {
            self.done = true;
            return ManualStep::Done;
        };
        if any_busy(&tables, busy) || busy_between(version, busy, last, last, &range) {
            return ManualStep::Wait;
        }
        self.done = true;
        ManualStep::Task(CompactionTask {
            inputs: vec![LevelInputs {
                level: last,
                tables,
            }],
            output_level: last,
            trivial_move: false,
            reason: CompactionReason::Manual,
            score: 1.0,
            drop_tombstones: nothing_below(version, last, &range),
            grandparents: grandparents(version, last, &range),
            target_file_bytes: self.target_file_bytes,
        })
    }
}

/// `tables` (of L0) plus every older L0 table overlapping one of them, in
/// L0's order.
fn with_older_l0_overlaps(version: &Version, tables: &[Arc<TableMeta>]) -> Vec<Arc<TableMeta>> {
    let level = version.level(0);
    let Some(first) = level
        .iter()
        .position(|t| tables.iter().any(|p| p.number == t.number))
    else {
        return Vec::new();
    };
    let mut picked: Vec<Arc<TableMeta>> = Vec::new();
    for table in &level[first..] {
        let chosen = tables.iter().any(|p| p.number == table.number)
            || picked
                .iter()
                .any(|p| table.overlaps(Some(p.smallest_user_key()), Some(p.largest_user_key())));
        if chosen {
            picked.push(Arc::clone(table));
        }
    }
    picked
}

/// Whether a running compaction may write into `range` at a level from
/// `top` to `bottom`: a busy table there (or in L0) meets the range, or the
/// leveled reservation rule says so. Conservative: a manual step simply
/// waits.
fn busy_between(
    version: &Version,
    busy: &BTreeSet<u64>,
    top: usize,
    bottom: usize,
    range: &KeyRange,
) -> bool {
    let busy_meets = |level: usize| {
        range
            .overlapping_in(version, level)
            .iter()
            .any(|t| busy.contains(&t.number))
    };
    busy_meets(0)
        || (top..=bottom).any(busy_meets)
        || output_conflicts(version, busy, bottom, bottom, range)
}
