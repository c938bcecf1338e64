//! [`Tiered`]: size-tiered ("universal") compaction over sorted runs.
//!
//! The tree is a list of *sorted runs*, newest first: each L0 table (L0's
//! order), then each non-empty level L1..L6 (a level is one run). A merge
//! always takes a contiguous group of runs and writes one run, which goes
//! where the group was, so the list stays ordered newest above oldest:
//!
//! - the output goes to the level just above the next older run (the last
//!   level if the group includes the oldest run; L0 if the next older run
//!   is an L0 table). Every level between the group's oldest run and the
//!   next older run is empty, so the output never lands in a level it does
//!   not replace;
//! - an output that stays in L0 is written as one table (no splitting), and
//!   its seqnos lie between those of the newer and the older L0 runs, so
//!   L0's order by `largest_seqno` is the runs' order;
//! - an output in L1+ is one sorted run split at user-key boundaries, so the
//!   level's tables never overlap.
//!
//! Picks, most urgent first:
//! - **space amplification**: when (all runs but the oldest) / oldest
//!   exceeds `max_space_amplification_percent`, merge everything into the
//!   last level (score = ratio / limit);
//! - **size ratio**: starting from the newest run, grow a group while the
//!   next older run is at most `size_ratio_percent` % larger than the
//!   group so far; at least `min_merge_width` runs (at most
//!   `max_merge_width`) make a task (score = width / `min_merge_width`).

use std::collections::BTreeSet;
use std::sync::Arc;

use kevo_manifest::{NUM_LEVELS, TableMeta, Version};

use crate::manual::{ManualCompaction, ManualPlan, ManualScope, ManualStep};
use crate::strategy::CompactionStrategy;
use crate::task::{
    CompactionReason, CompactionTask, KeyRange, LevelInputs, LevelScore, any_busy, grandparents,
    total_bytes,
};

const MIB: u64 = 1024 * 1024;

/// Options of [`Tiered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TieredOptions {
    /// Fewest runs a size-ratio merge takes (default 4; at least 2).
    pub min_merge_width: usize,
    /// Most runs a size-ratio merge takes (default 16).
    pub max_merge_width: usize,
    /// A run joins the group while it is at most this many percent larger
    /// than the group so far (default 100).
    pub size_ratio_percent: u64,
    /// Merge everything when the newer runs hold more than this many
    /// percent of the oldest run's bytes (default 200).
    pub max_space_amplification_percent: u64,
    /// Output tables in L1+ are cut at about this size (default 64 MiB).
    pub target_file_bytes: u64,
}

impl Default for TieredOptions {
    fn default() -> Self {
        TieredOptions {
            min_merge_width: 4,
            max_merge_width: 16,
            size_ratio_percent: 100,
            max_space_amplification_percent: 200,
            target_file_bytes: 64 * MIB,
        }
    }
}

/// Size-tiered ("universal") compaction over sorted runs.
///
/// Runs are the L0 tables (newest first) then each non-empty level. A merge
/// takes contiguous runs and writes one run just above the next older run
/// (the last level when it includes the oldest, L0 — as one table — when
/// the next older run is an L0 table). Picks: everything when the space
/// amplification passes its limit, else the newest group of at least
/// `min_merge_width` similar-sized runs. See `sorted_runs` and
/// `docs/compaction.md`.
#[derive(Debug, Clone, Default)]
pub struct Tiered {
    options: TieredOptions,
}

/// One sorted run of a [`Version`], as [`Tiered`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SortedRun {
    /// Its level (0 for an L0 table).
    pub level: usize,
    /// Its tables (one for L0).
    pub tables: Vec<Arc<TableMeta>>,
    /// Sum of their sizes.
    pub bytes: u64,
}

/// The sorted runs of `version`, newest first (public with the `testing`
/// feature, for tests of the picker).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub fn sorted_runs(version: &Version) -> Vec<SortedRun> {
    let l0 = version.level(0).iter().map(|t| SortedRun {
        level: 0,
        tables: vec![Arc::clone(t)],
        bytes: t.file_size,
    });
    let levels = (1..NUM_LEVELS)
        .filter(|&l| !version.level(l).is_empty())
        .map(|level| SortedRun {
            level,
            tables: version.level(level).to_vec(),
            bytes: version.level_bytes(level),
        });
    l0.chain(levels).collect()
}

impl Tiered {
    /// A tiered strategy with `options` (out-of-range values are raised to
    /// their minimum).
    pub fn new(mut options: TieredOptions) -> Self {
        options.min_merge_width = options.min_merge_width.max(2);
        options.max_merge_width = options.max_merge_width.max(options.min_merge_width);
        options.target_file_bytes = options.target_file_bytes.max(1);
        Tiered { options }
    }

    /// The options in force.
    pub fn options(&self) -> &TieredOptions {
        &self.options
    }

    /// (newer runs' bytes / oldest run's bytes) / the limit, if there are at
    /// least two runs; a merge of everything is due above 1 (the limit is
    /// exclusive).
    fn space_amp_score(&self, runs: &[SortedRun]) -> f64 {
        let Some((oldest, newer)) = runs.split_last() else {
            return 0.0;
        };
        if newer.is_empty() {
            return 0.0;
        }
        let newer: u64 = newer.iter().map(|r| r.bytes).sum();
        let limit = self.options.max_space_amplification_percent.max(1) as f64;
        newer as f64 * 100.0 / oldest.bytes.max(1) as f64 / limit
    }

    /// The first (newest) group of similar-sized idle runs at least
    /// `min_merge_width` wide, as `start..end`.
    fn size_ratio_group(
        &self,
        runs: &[SortedRun],
        busy: &BTreeSet<u64>,
    ) -> Option<std::ops::Range<usize>> {
        let o = &self.options;
        let idle = |r: &SortedRun| !any_busy(&r.tables, busy);
        (0..runs.len()).find_map(|start| {
            if !idle(&runs[start]) {
                return None;
            }
            let mut sum = runs[start].bytes;
            let mut end = start + 1;
            while end < runs.len()
                && end - start < o.max_merge_width
                && idle(&runs[end])
                && u128::from(sum) * u128::from(100 + o.size_ratio_percent)
                    >= u128::from(runs[end].bytes) * 100
            {
                sum += runs[end].bytes;
                end += 1;
            }
            (end - start >= o.min_merge_width).then_some(start..end)
        })
    }

    fn task(
        &self,
        version: &Version,
        runs: &[SortedRun],
        group: std::ops::Range<usize>,
        reason: CompactionReason,
        score: f64,
    ) -> Option<CompactionTask> {
        let output_level = match runs.get(group.end) {
            None => NUM_LEVELS - 1,
            Some(next) if next.level == 0 => 0,
            Some(next) => next.level - 1,
        };
        merge_task(
            version,
            &runs[group.clone()],
            &runs[group.end..],
            output_level,
            reason,
            score,
            self.options.target_file_bytes,
        )
    }
}

/// A task merging `group` (contiguous runs, newest first) into
/// `output_level`; `older` are the runs below the group.
pub(crate) fn merge_task(
    version: &Version,
    group: &[SortedRun],
    older: &[SortedRun],
    output_level: usize,
    reason: CompactionReason,
    score: f64,
    target_file_bytes: u64,
) -> Option<CompactionTask> {
    let mut inputs: Vec<LevelInputs> = Vec::new();
    for run in group {
        match inputs.last_mut() {
            Some(last) if last.level == run.level => last.tables.extend(run.tables.clone()),
            _ => inputs.push(LevelInputs {
                level: run.level,
                tables: run.tables.clone(),
            }),
        }
    }
    let range = KeyRange::of(inputs.iter().flat_map(|l| &l.tables))?;
    let drop_tombstones = older
        .iter()
        .all(|run| run.tables.iter().all(|t| !range.overlaps(t)));
    let (grandparents, target_file_bytes) = if output_level == 0 {
        // An L0 output is one run, so one table.
        (Vec::new(), u64::MAX)
    } else {
        (
            grandparents(version, output_level, &range),
            target_file_bytes,
        )
    };
    Some(CompactionTask {
        inputs,
        output_level,
        trivial_move: false,
        reason,
        score,
        drop_tombstones,
        grandparents,
        target_file_bytes,
    })
}

impl CompactionStrategy for Tiered {
    fn name(&self) -> &'static str {
        "tiered"
    }

    fn pick(&self, version: &Version, busy: &BTreeSet<u64>) -> Option<CompactionTask> {
        let runs = sorted_runs(version);
        let space_amp = self.space_amp_score(&runs);
        let any_run_busy = runs.iter().any(|r| any_busy(&r.tables, busy));
        let space_task = (space_amp > 1.0 && !any_run_busy)
            .then(|| {
                self.task(
                    version,
                    &runs,
                    0..runs.len(),
                    CompactionReason::SpaceAmplification,
                    space_amp,
                )
            })
            .flatten();
        let ratio_task = self.size_ratio_group(&runs, busy).and_then(|group| {
            let score = group.len() as f64 / self.options.min_merge_width as f64;
            self.task(version, &runs, group, CompactionReason::SizeRatio, score)
        });
        match (space_task, ratio_task) {
            (Some(a), Some(b)) => Some(if a.score >= b.score { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    fn manual(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> ManualCompaction {
        let scope = ManualScope::new(start, end, self.options.target_file_bytes);
        ManualCompaction::new(scope, Box::new(AllAtOnce::default()))
    }

    fn pending_bytes(&self, version: &Version) -> u64 {
        let runs = sorted_runs(version);
        if self.space_amp_score(&runs) > 1.0 {
            return version.total_bytes();
        }
        self.size_ratio_group(&runs, &BTreeSet::new())
            .map_or(0, |group| {
                runs[group].iter().map(|r| total_bytes(&r.tables)).sum()
            })
    }

    /// Tiered sets no level targets. The L0 row's score is the size-ratio
    /// score (width of the newest mergeable group / `min_merge_width`, 0 if
    /// none); the row of the oldest run's level carries the space
    /// amplification score; other rows score 0.
    fn level_scores(&self, version: &Version) -> Vec<LevelScore> {
        let runs = sorted_runs(version);
        let ratio = self
            .size_ratio_group(&runs, &BTreeSet::new())
            .map_or(0.0, |g| {
                g.len() as f64 / self.options.min_merge_width as f64
            });
        let oldest_level = runs.last().map(|r| r.level);
        let space_amp = self.space_amp_score(&runs);
        (0..NUM_LEVELS)
            .map(|level| {
                let mut score = if level == 0 { ratio } else { 0.0 };
                if Some(level) == oldest_level {
                    score = score.max(space_amp);
                }
                LevelScore {
                    level,
                    tables: version.level(level).len(),
                    bytes: version.level_bytes(level),
                    target_bytes: 0,
                    score,
                }
            })
            .collect()
    }
}

/// The tiered strategy's `compact_range` plan: one merge of every table of
/// every level overlapping the range, closed under overlap (a table
/// overlapping what is taken is taken too), into the deepest level among
/// them.
#[derive(Debug, Default)]
struct AllAtOnce {
    /// The merge was handed out.
    merged: bool,
}

impl ManualPlan for AllAtOnce {
    fn next_merge(
        &mut self,
        scope: &ManualScope,
        version: &Version,
        busy: &BTreeSet<u64>,
        _last: usize,
    ) -> Option<ManualStep> {
        if self.merged {
            return None;
        }
        let mut inputs: Vec<Vec<Arc<TableMeta>>> = (0..NUM_LEVELS)
            .map(|l| scope.in_range(version, l))
            .collect();
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
        let levels = levels_used
            .iter()
            .map(|&level| LevelInputs {
                level,
                tables: inputs[level].clone(),
            })
            .collect();
        Some(ManualStep::Task(scope.task(
            version,
            levels,
            output_level,
            &range,
        )))
    }

    /// Tiered tasks merge whole runs into a level of their own choosing: a
    /// busy table overlapping the range in any level may belong to one
    /// that writes into it.
    fn may_conflict(
        &self,
        version: &Version,
        busy: &BTreeSet<u64>,
        _top: usize,
        _bottom: usize,
        range: &KeyRange,
    ) -> bool {
        (0..NUM_LEVELS).any(|level| {
            range
                .overlapping_in(version, level)
                .iter()
                .any(|t| busy.contains(&t.number))
        })
    }
}
