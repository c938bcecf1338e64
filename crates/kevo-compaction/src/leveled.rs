//! [`Leveled`]: RocksDB-style leveled compaction with dynamic level sizes.
//!
//! - **L0** is compacted when it holds `l0_trigger` tables (score = count /
//!   trigger), into the *base level*, taking every L0 table that may go
//!   (never one without the older L0 tables overlapping it) plus the base
//!   level's tables overlapping them.
//! - **L1+** are compacted when larger than their target (score = bytes /
//!   target): one table of level n, the one whose overlap with level n+1 is
//!   the smallest fraction of its own size (RocksDB's
//!   `kMinOverlappingRatio`: the least rewriting per byte moved down), plus
//!   the overlapping tables of n+1.
//! - A single input table with nothing to merge with in the output level
//!   and bounded overlap with the level after it is *moved*, not rewritten.
//!
//! With `dynamic_level_bytes`, the targets follow the data: the largest
//! level (normally the last) keeps its size as target, each level above
//! gets 1/multiplier of the one below, and the first level whose target
//! falls to `base_level_bytes` or below becomes the base level (its target
//! raised to `base_level_bytes`); the levels above it get no target and stay
//! empty. L0 compacts straight into the base level, so the levels above the
//! last hold about 1/(multiplier - 1) of the data: ~1.11x space
//! amplification at multiplier 10.

use std::collections::BTreeSet;
use std::sync::Arc;

use kevo_manifest::{NUM_LEVELS, TableMeta, Version};

use crate::manual::{ManualCompaction, ManualPlan, ManualScope, ManualStep};
use crate::strategy::CompactionStrategy;
use crate::task::{
    CompactionReason, CompactionTask, GRANDPARENT_OVERLAP_FACTOR, KeyRange, LevelInputs,
    LevelScore, any_busy, grandparents, l0_with_older_overlaps, movable_l0, nothing_below,
    reserved_by_running, total_bytes,
};

const MIB: u64 = 1024 * 1024;
const LAST_LEVEL: usize = NUM_LEVELS - 1;

/// Options of [`Leveled`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeveledOptions {
    /// L0 is compacted once it holds this many tables (default 4; at least 1).
    pub l0_trigger: usize,
    /// Each level's target is this many times the one above (default 10; at
    /// least 2).
    pub level_multiplier: u64,
    /// Target of the base level (default 256 MiB).
    pub base_level_bytes: u64,
    /// Output tables are cut at about this size (default 64 MiB).
    pub target_file_bytes: u64,
    /// Targets follow the size of the largest level (default `true`); with
    /// `false`, L1 is the base level with target `base_level_bytes` and each
    /// level below is `level_multiplier` times larger.
    pub dynamic_level_bytes: bool,
}

impl Default for LeveledOptions {
    fn default() -> Self {
        LeveledOptions {
            l0_trigger: 4,
            level_multiplier: 10,
            base_level_bytes: 256 * MIB,
            target_file_bytes: 64 * MIB,
            dynamic_level_bytes: true,
        }
    }
}

/// Leveled compaction with RocksDB-style dynamic level sizes.
///
/// L0 compacts into the base level once it holds `l0_trigger` tables; L1+
/// levels compact one table (the smallest overlap ratio with the next
/// level) when over their target; a lone table with nothing below to merge
/// with is moved. With `dynamic_level_bytes` the largest level sets the
/// targets above it (1/multiplier per level) and L0 skips the levels whose
/// share would be below `base_level_bytes` (see [`Leveled::targets`] and
/// `docs/compaction.md`).
#[derive(Debug, Clone, Default)]
pub struct Leveled {
    options: LeveledOptions,
}

/// The base level and the target of every level (0 = none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelTargets {
    /// The level L0 compacts into.
    pub base_level: usize,
    /// Target bytes per level; 0 for L0 and the levels above the base.
    pub target_bytes: [u64; NUM_LEVELS],
}

impl Leveled {
    /// A leveled strategy with `options` (out-of-range values are raised to
    /// their minimum).
    pub fn new(mut options: LeveledOptions) -> Self {
        options.l0_trigger = options.l0_trigger.max(1);
        options.level_multiplier = options.level_multiplier.max(2);
        options.base_level_bytes = options.base_level_bytes.max(1);
        options.target_file_bytes = options.target_file_bytes.max(1);
        Leveled { options }
    }

    /// The options in force.
    pub fn options(&self) -> &LeveledOptions {
        &self.options
    }

    /// The base level and per-level targets for `version`.
    pub fn targets(&self, version: &Version) -> LevelTargets {
        let o = &self.options;
        let mut target_bytes = [0; NUM_LEVELS];
        if !o.dynamic_level_bytes {
            let mut size = o.base_level_bytes;
            for target in &mut target_bytes[1..] {
                *target = size;
                size = size.saturating_mul(o.level_multiplier);
            }
            return LevelTargets {
                base_level: 1,
                target_bytes,
            };
        }
        let sizes: Vec<u64> = (0..NUM_LEVELS).map(|l| version.level_bytes(l)).collect();
        let largest = sizes[1..].iter().copied().max().unwrap_or(0);
        let Some(first_non_empty) = (1..NUM_LEVELS).find(|&l| sizes[l] > 0) else {
            target_bytes[LAST_LEVEL] = o.base_level_bytes;
            return LevelTargets {
                base_level: LAST_LEVEL,
                target_bytes,
            };
        };
        // The base level: going up from the first non-empty level, the first
        // whose share of the largest level (1/multiplier per level) is at
        // most base_level_bytes; never below the first non-empty level, never
        // above L1.
        let share = |level: usize| {
            let mut size = largest;
            for _ in level..LAST_LEVEL {
                size /= o.level_multiplier;
            }
            size
        };
        let mut base_level = first_non_empty;
        while base_level > 1 && share(base_level) > o.base_level_bytes {
            base_level -= 1;
        }
        for (level, target) in target_bytes.iter_mut().enumerate().skip(base_level) {
            *target = share(level).max(o.base_level_bytes);
        }
        LevelTargets {
            base_level,
            target_bytes,
        }
    }

    fn scores(&self, version: &Version, busy: &BTreeSet<u64>, targets: &LevelTargets) -> Vec<f64> {
        let mut scores = vec![0.0; NUM_LEVELS];
        let idle = version
            .level(0)
            .iter()
            .filter(|t| !busy.contains(&t.number))
            .count();
        scores[0] = idle as f64 / self.options.l0_trigger as f64;
        for (level, score) in scores.iter_mut().enumerate().take(LAST_LEVEL).skip(1) {
            let target = targets.target_bytes[level];
            let bytes: u64 = version
                .level(level)
                .iter()
                .filter(|t| !busy.contains(&t.number))
                .map(|t| t.file_size)
                .sum();
            *score = if target == 0 {
                // Above the base level: should be empty.
                if bytes > 0 { f64::INFINITY } else { 0.0 }
            } else {
                bytes as f64 / target as f64
            };
        }
        scores
    }

    /// The task moving `inputs` (of `input_level`) into `output_level`, if
    /// nothing it needs is busy.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        version: &Version,
        busy: &BTreeSet<u64>,
        base_level: usize,
        input_level: usize,
        inputs: Vec<Arc<TableMeta>>,
        output_level: usize,
        reason: CompactionReason,
        score: f64,
    ) -> Option<CompactionTask> {
        let range = KeyRange::of(&inputs)?;
        let outputs = range.overlapping_in(version, output_level);
        if any_busy(&inputs, busy) || any_busy(&outputs, busy) {
            return None;
        }
        let mut full = range;
        for t in &outputs {
            full.extend(t);
        }
        if reserved_by_running(version, busy, base_level, output_level, &full) {
            return None;
        }
        let grandparents = grandparents(version, output_level, &full);
        let max_overlap = self
            .options
            .target_file_bytes
            .saturating_mul(GRANDPARENT_OVERLAP_FACTOR);
        let trivial_move =
            inputs.len() == 1 && outputs.is_empty() && total_bytes(&grandparents) <= max_overlap;
        let drop_tombstones = nothing_below(version, output_level, &full);
        let mut levels = vec![LevelInputs {
            level: input_level,
            tables: inputs,
        }];
        if !outputs.is_empty() {
            levels.push(LevelInputs {
                level: output_level,
                tables: outputs,
            });
        }
        Some(CompactionTask {
            inputs: levels,
            output_level,
            trivial_move,
            reason,
            score,
            drop_tombstones,
            grandparents,
            target_file_bytes: self.options.target_file_bytes,
        })
    }

    fn pick_l0(
        &self,
        version: &Version,
        busy: &BTreeSet<u64>,
        base_level: usize,
        score: f64,
    ) -> Option<CompactionTask> {
        let movable = movable_l0(version, busy);
        if movable.is_empty() {
            return None;
        }
        let in_level_order = |mut tables: Vec<Arc<TableMeta>>| {
            tables.reverse();
            tables
        };
        let reason = CompactionReason::L0FileCount;
        let all = in_level_order(movable.clone());
        if let Some(task) = self.build(version, busy, base_level, 0, all, base_level, reason, score)
        {
            return Some(task);
        }
        // Some base-level table the whole set needs is busy: try smaller
        // sets, oldest first.
        movable.iter().find_map(|seed| {
            let tables = l0_with_older_overlaps(version, std::slice::from_ref(seed));
            if any_busy(&tables, busy) {
                return None;
            }
            self.build(
                version, busy, base_level, 0, tables, base_level, reason, score,
            )
        })
    }

    fn pick_level(
        &self,
        version: &Version,
        busy: &BTreeSet<u64>,
        base_level: usize,
        level: usize,
        score: f64,
    ) -> Option<CompactionTask> {
        let mut candidates: Vec<(f64, Arc<TableMeta>)> = version
            .level(level)
            .iter()
            .filter(|t| !busy.contains(&t.number))
            .map(|t| {
                let below = version.overlapping(
                    level + 1,
                    Some(t.smallest_user_key()),
                    Some(t.largest_user_key()),
                );
                let ratio = total_bytes(&below) as f64 / t.file_size.max(1) as f64;
                (ratio, Arc::clone(t))
            })
            .collect();
        // Stable: equal ratios keep key order.
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
        candidates.into_iter().find_map(|(_, table)| {
            self.build(
                version,
                busy,
                base_level,
                level,
                vec![table],
                level + 1,
                CompactionReason::LevelSize,
                score,
            )
        })
    }
}

impl CompactionStrategy for Leveled {
    fn name(&self) -> &'static str {
        "leveled"
    }

    fn pick(&self, version: &Version, busy: &BTreeSet<u64>) -> Option<CompactionTask> {
        let targets = self.targets(version);
        let scores = self.scores(version, busy, &targets);
        let mut order: Vec<usize> = (0..LAST_LEVEL).filter(|&l| scores[l] >= 1.0).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.into_iter().find_map(|level| {
            if level == 0 {
                self.pick_l0(version, busy, targets.base_level, scores[0])
            } else {
                self.pick_level(version, busy, targets.base_level, level, scores[level])
            }
        })
    }

    fn manual(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> ManualCompaction {
        let scope = ManualScope::new(start, end, self.options.target_file_bytes);
        ManualCompaction::new(scope, Box::new(LevelByLevel::default()))
    }

    fn pick_range_tombstones(
        &self,
        version: &Version,
        level: usize,
        table: &Arc<TableMeta>,
        busy: &BTreeSet<u64>,
    ) -> Option<CompactionTask> {
        let targets = self.targets(version);
        let reason = CompactionReason::RangeTombstones;
        if level == 0 {
            // With the older L0 tables it overlaps, into the base level.
            let tables = l0_with_older_overlaps(version, std::slice::from_ref(table));
            if any_busy(&tables, busy) {
                return None;
            }
            return self.build(
                version,
                busy,
                targets.base_level,
                0,
                tables,
                targets.base_level,
                reason,
                1.0,
            );
        }
        if level >= LAST_LEVEL {
            return None;
        }
        // A trivial move is progress too: the tombstones get one level
        // nearer the data they cover.
        self.build(
            version,
            busy,
            targets.base_level,
            level,
            vec![Arc::clone(table)],
            level + 1,
            reason,
            1.0,
        )
    }

    fn pending_bytes(&self, version: &Version) -> u64 {
        let targets = self.targets(version);
        let base = targets.base_level;
        let mut debt = 0.0;
        let mut incoming = 0.0;
        if version.level(0).len() >= self.options.l0_trigger {
            incoming = version.level_bytes(0) as f64;
            debt += incoming + version.level_bytes(base) as f64;
        }
        for level in base..LAST_LEVEL {
            let size = version.level_bytes(level) as f64 + incoming;
            let target = targets.target_bytes[level] as f64;
            incoming = 0.0;
            if size > target {
                let excess = size - target;
                let below = version.level_bytes(level + 1) as f64;
                debt += excess * (below / size + 1.0);
                incoming = excess;
            }
        }
        debt as u64
    }

    fn level_scores(&self, version: &Version) -> Vec<LevelScore> {
        let targets = self.targets(version);
        let scores = self.scores(version, &BTreeSet::new(), &targets);
        (0..NUM_LEVELS)
            .map(|level| LevelScore {
                level,
                tables: version.level(level).len(),
                bytes: version.level_bytes(level),
                target_bytes: targets.target_bytes[level],
                score: scores[level],
            })
            .collect()
    }
}

/// The leveled strategy's `compact_range` plan: for each level k from L0
/// down, every table of k overlapping the range (for L0 also the older L0
/// tables overlapping those) merges into the first level below k that
/// overlaps them, or into the bottommost level holding range data (the
/// last level when only L0 holds any). It never goes back up, so it takes
/// at most one task per level.
#[derive(Debug, Default)]
struct LevelByLevel {
    /// The next level to empty.
    next_level: usize,
}

impl ManualPlan for LevelByLevel {
    fn next_merge(
        &mut self,
        scope: &ManualScope,
        version: &Version,
        busy: &BTreeSet<u64>,
        last: usize,
    ) -> Option<ManualStep> {
        while self.next_level < last || (self.next_level == 0 && last == 0) {
            let level = self.next_level;
            let mut inputs = scope.in_range(version, level);
            if level == 0 {
                inputs = l0_with_older_overlaps(version, &inputs);
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
                || self.may_conflict(version, busy, level, output_level, &full)
            {
                return Some(ManualStep::Wait);
            }
            // Never a trivial move: a table moved into the bottom level would
            // have to be re-merged there anyway; merging now cleans it once.
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
            return Some(ManualStep::Task(scope.task(
                version,
                levels,
                output_level,
                &full,
            )));
        }
        None
    }

    /// A busy table in L0 or in the levels the task spans meets the range,
    /// or the reservation rule says a running task writes it.
    fn may_conflict(
        &self,
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
            || reserved_by_running(version, busy, bottom, bottom, range)
    }
}
