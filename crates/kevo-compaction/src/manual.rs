//! [`ManualCompaction`]: the progress of one `compact_range`, driving the
//! strategy's own [`ManualPlan`].
//!
//! A plan (the leveled strategy's moves the range down level by level, the
//! tiered one's merges everything overlapping it at once) hands out merges
//! until the range's data lies in one level. Then, when that bottommost
//! level still holds tables overlapping the range that existed before the
//! manual compaction started (they may carry tombstones and shadowed
//! versions), one last task re-merges them in place with
//! `drop_tombstones`. Tables written since were written by a merge into that
//! bottom level and are clean already, so a clean bottom is never re-merged
//! twice, and the whole compaction ends after a bounded number of tasks
//! even while writes go on.

use std::collections::BTreeSet;
use std::sync::Arc;

use kevo_manifest::{NUM_LEVELS, TableMeta, Version};

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

/// The range of a `compact_range` and the size of its output tables.
#[derive(Debug, Clone)]
pub struct ManualScope {
    start: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
    target_file_bytes: u64,
}

impl ManualScope {
    /// The user keys `start..=end` (`None` = unbounded), output tables cut
    /// at about `target_file_bytes`.
    pub fn new(start: Option<&[u8]>, end: Option<&[u8]>, target_file_bytes: u64) -> Self {
        ManualScope {
            start: start.map(<[u8]>::to_vec),
            end: end.map(<[u8]>::to_vec),
            target_file_bytes: target_file_bytes.max(1),
        }
    }

    /// The tables of `level` overlapping the range.
    pub fn in_range(&self, version: &Version, level: usize) -> Vec<Arc<TableMeta>> {
        version.overlapping(level, self.start.as_deref(), self.end.as_deref())
    }

    /// The manual task merging `inputs` into `output_level`, whose inputs
    /// and outputs cover `range`.
    pub fn task(
        &self,
        version: &Version,
        inputs: Vec<LevelInputs>,
        output_level: usize,
        range: &KeyRange,
    ) -> CompactionTask {
        CompactionTask {
            inputs,
            output_level,
            trivial_move: false,
            reason: CompactionReason::Manual,
            score: 1.0,
            drop_tombstones: nothing_below(version, output_level, range),
            grandparents: grandparents(version, output_level, range),
            target_file_bytes: self.target_file_bytes,
        }
    }
}

/// A strategy's plan for `compact_range`: the merges that bring the
/// range's data down into one level, and the rule that keeps them from
/// colliding with running compactions.
pub trait ManualPlan: Send + Sync + std::fmt::Debug {
    /// The next merge moving range data down, [`ManualStep::Wait`] when it
    /// needs busy tables, or `None` when the plan has nothing more to merge
    /// (`last` is the deepest level holding range data).
    fn next_merge(
        &mut self,
        scope: &ManualScope,
        version: &Version,
        busy: &BTreeSet<u64>,
        last: usize,
    ) -> Option<ManualStep>;

    /// Whether a running compaction (as far as `busy` reveals it) may
    /// write into `range` at a level from `top` to `bottom`.
    fn may_conflict(
        &self,
        version: &Version,
        busy: &BTreeSet<u64>,
        top: usize,
        bottom: usize,
        range: &KeyRange,
    ) -> bool;
}

/// The state of one `compact_range(start..=end)`: the strategy's plan, then
/// the clean-up of the bottom level. See `docs/compaction.md`.
#[derive(Debug)]
pub struct ManualCompaction {
    scope: ManualScope,
    plan: Box<dyn ManualPlan>,
    /// Largest table number when the first step was asked for: tables
    /// numbered above were written after the manual compaction started.
    mark: Option<u64>,
    done: bool,
}

impl ManualCompaction {
    /// A manual compaction of `scope` following `plan`.
    pub fn new(scope: ManualScope, plan: Box<dyn ManualPlan>) -> Self {
        ManualCompaction {
            scope,
            plan,
            mark: None,
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
            .find(|&l| !self.scope.in_range(version, l).is_empty())
        else {
            self.done = true;
            return ManualStep::Done;
        };
        if let Some(step) = self.plan.next_merge(&self.scope, version, busy, last) {
            return step;
        }
        self.bottom_step(version, busy, last, mark)
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
        let tables = self.scope.in_range(version, last);
        if last == 0 || tables.iter().all(|t| t.number > mark) {
            self.done = true;
            return ManualStep::Done;
        }
        let Some(range) = KeyRange::of(&tables) else {
            self.done = true;
            return ManualStep::Done;
        };
        if any_busy(&tables, busy) || self.plan.may_conflict(version, busy, last, last, &range) {
            return ManualStep::Wait;
        }
        self.done = true;
        let inputs = vec![LevelInputs {
            level: last,
            tables,
        }];
        ManualStep::Task(self.scope.task(version, inputs, last, &range))
    }
}
