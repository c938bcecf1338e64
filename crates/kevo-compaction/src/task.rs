//! [`CompactionTask`]: what a strategy picked, and the key-range helpers the
//! pickers share.

use std::collections::BTreeSet;
use std::sync::Arc;

use kevo_manifest::{NUM_LEVELS, TableMeta, Version};

/// Why a task was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompactionReason {
    /// Leveled: L0 holds `l0_trigger` tables or more.
    L0FileCount,
    /// Leveled: a level from L1 on is larger than its target.
    LevelSize,
    /// Tiered: enough sorted runs of similar size accumulated.
    SizeRatio,
    /// Tiered: the newer runs together outgrew the oldest one by more than
    /// the allowed space amplification.
    SpaceAmplification,
    /// `compact_range` asked for it.
    Manual,
    /// A table holding range tombstones that cover part of the data below
    /// it is carried down ahead of size-driven work, so that the space
    /// they free comes back.
    RangeTombstones,
    /// Every input is covered whole by a newer range tombstone that every
    /// reader sees: the inputs are removed by a manifest edit, nothing is
    /// read or written ([`crate::pick_delete_only`]).
    DeleteOnly,
}

/// The input tables a task takes from one level.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelInputs {
    /// The level.
    pub level: usize,
    /// The tables, in the level's order (L0 newest first, L1+ by key).
    pub tables: Vec<Arc<TableMeta>>,
}

/// One compaction: which tables to merge and where the result goes.
///
/// Built by a [`CompactionStrategy`](crate::CompactionStrategy) and run by
/// [`run_compaction`](crate::run_compaction).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionTask {
    /// One entry per input level, lowest level first.
    pub inputs: Vec<LevelInputs>,
    /// Where the output tables go.
    pub output_level: usize,
    /// Move the single input table to `output_level` without rewriting it.
    pub trivial_move: bool,
    /// Why the task was picked.
    pub reason: CompactionReason,
    /// How urgent it was (>= 1 for automatic picks).
    pub score: f64,
    /// Nothing older than the inputs can lie below `output_level` in their
    /// key range, so tombstones no snapshot needs can be dropped (with what
    /// they shadow).
    pub drop_tombstones: bool,
    /// Tables of `output_level + 1` overlapping the inputs, in key order:
    /// the output is split so that no output table overlaps too many of
    /// them.
    pub grandparents: Vec<Arc<TableMeta>>,
    /// Output tables are cut once they reach about this many bytes
    /// (`u64::MAX`: never split).
    pub target_file_bytes: u64,
}

impl CompactionTask {
    /// The numbers of every input table, in input order.
    pub fn input_numbers(&self) -> Vec<u64> {
        self.input_tables().map(|(_, t)| t.number).collect()
    }

    /// Sum of the input tables' file sizes.
    pub fn input_bytes(&self) -> u64 {
        self.input_tables().map(|(_, t)| t.file_size).sum()
    }

    /// Whether the output is the bottommost data of its key range (no older
    /// table below it overlaps): what [`CompactionTask::drop_tombstones`]
    /// records.
    pub fn is_bottommost(&self) -> bool {
        self.drop_tombstones
    }

    /// Every input table with its level.
    pub fn input_tables(&self) -> impl Iterator<Item = (usize, &Arc<TableMeta>)> {
        self.inputs
            .iter()
            .flat_map(|l| l.tables.iter().map(move |t| (l.level, t)))
    }

    /// The user-key range the inputs cover (both ends inclusive); `None`
    /// when the task has no input.
    pub fn key_range(&self) -> Option<KeyRange> {
        KeyRange::of(self.input_tables().map(|(_, t)| t))
    }
}

/// One level's size, target and score, as a strategy sees it (for stats).
#[derive(Debug, Clone, PartialEq)]
pub struct LevelScore {
    /// The level.
    pub level: usize,
    /// Tables in the level.
    pub tables: usize,
    /// Bytes in the level.
    pub bytes: u64,
    /// The level's target size in bytes; 0 where the strategy sets none
    /// (L0, levels above the leveled base level, the tiered levels).
    pub target_bytes: u64,
    /// The level's score: a compaction is due at 1 or more. Leveled: L0 is
    /// table count / `l0_trigger`, L1+ bytes / target (0 for the last
    /// level, which has nowhere to go). Tiered: see
    /// [`Tiered`](crate::Tiered).
    pub score: f64,
}

/// An inclusive range of user keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// The smallest user key.
    pub smallest: Vec<u8>,
    /// The largest user key.
    pub largest: Vec<u8>,
}

impl KeyRange {
    /// The smallest range covering every table; `None` for no table.
    pub fn of<'a>(tables: impl IntoIterator<Item = &'a Arc<TableMeta>>) -> Option<KeyRange> {
        let mut range: Option<KeyRange> = None;
        for table in tables {
            match &mut range {
                None => {
                    range = Some(KeyRange {
                        smallest: table.smallest_user_key().to_vec(),
                        largest: table.largest_user_key().to_vec(),
                    });
                }
                Some(range) => range.extend(table),
            }
        }
        range
    }

    /// Grows the range to cover `table`.
    pub fn extend(&mut self, table: &TableMeta) {
        if table.smallest_user_key() < self.smallest.as_slice() {
            self.smallest = table.smallest_user_key().to_vec();
        }
        if table.largest_user_key() > self.largest.as_slice() {
            self.largest = table.largest_user_key().to_vec();
        }
    }

    /// Whether `table`'s user-key range meets this one.
    pub fn overlaps(&self, table: &TableMeta) -> bool {
        table.overlaps(Some(&self.smallest), Some(&self.largest))
    }

    /// Whether the two ranges meet.
    pub fn meets(&self, other: &KeyRange) -> bool {
        self.smallest <= other.largest && other.smallest <= self.largest
    }

    /// The tables of `level` overlapping the range, in the level's order.
    pub fn overlapping_in(&self, version: &Version, level: usize) -> Vec<Arc<TableMeta>> {
        version.overlapping(level, Some(&self.smallest), Some(&self.largest))
    }
}

/// Whether any table of `tables` is in `busy`.
pub(crate) fn any_busy(tables: &[Arc<TableMeta>], busy: &BTreeSet<u64>) -> bool {
    tables.iter().any(|t| busy.contains(&t.number))
}

/// Whether no table in a level below `output_level` overlaps `range`: the
/// output is then the oldest data of its key range.
pub(crate) fn nothing_below(version: &Version, output_level: usize, range: &KeyRange) -> bool {
    (output_level + 1..NUM_LEVELS).all(|level| range.overlapping_in(version, level).is_empty())
}

/// The tables of `output_level + 1` overlapping `range` (none past the last
/// level).
pub(crate) fn grandparents(
    version: &Version,
    output_level: usize,
    range: &KeyRange,
) -> Vec<Arc<TableMeta>> {
    if output_level + 1 >= NUM_LEVELS {
        return Vec::new();
    }
    range.overlapping_in(version, output_level + 1)
}

/// The largest grandparent overlap (in multiples of the target file size)
/// before an output table is cut, and the largest one a trivial move may
/// leave behind.
pub(crate) const GRANDPARENT_OVERLAP_FACTOR: u64 = 10;

/// Sum of the tables' file sizes.
pub(crate) fn total_bytes(tables: &[Arc<TableMeta>]) -> u64 {
    tables.iter().map(|t| t.file_size).sum()
}

/// L0 tables that may go down now, oldest first: every L0 table that is not
/// busy and does not overlap an older table that is busy or blocked (an L0
/// table may only leave L0 together with every older L0 table overlapping
/// it, or reads would find the older version first).
pub(crate) fn movable_l0(version: &Version, busy: &BTreeSet<u64>) -> Vec<Arc<TableMeta>> {
    let mut blocked: Vec<Arc<TableMeta>> = Vec::new();
    let mut movable = Vec::new();
    for table in version.level(0).iter().rev() {
        let overlaps_blocked = blocked
            .iter()
            .any(|b| table.overlaps(Some(b.smallest_user_key()), Some(b.largest_user_key())));
        if busy.contains(&table.number) || overlaps_blocked {
            blocked.push(Arc::clone(table));
        } else {
            movable.push(Arc::clone(table));
        }
    }
    movable
}

/// `tables` (of L0) plus every older L0 table overlapping one already
/// taken, in L0's order (newest first): what must leave L0 together, or
/// reads would find an older version first.
pub(crate) fn l0_with_older_overlaps(
    version: &Version,
    tables: &[Arc<TableMeta>],
) -> Vec<Arc<TableMeta>> {
    let level = version.level(0);
    let member = |t: &TableMeta| tables.iter().any(|p| p.number == t.number);
    let Some(first) = level.iter().position(|t| member(t)) else {
        return Vec::new();
    };
    let mut picked: Vec<Arc<TableMeta>> = Vec::new();
    for table in &level[first..] {
        let chosen = member(table)
            || picked
                .iter()
                .any(|p| table.overlaps(Some(p.smallest_user_key()), Some(p.largest_user_key())));
        if chosen {
            picked.push(Arc::clone(table));
        }
    }
    picked
}

/// The reservation rule: whether a running task (as far as `busy` reveals
/// it) writes a key range of `output_level` that meets `range`, so that a
/// new task writing there could not be installed in any order.
///
/// A running task writing level O reads tables of O-1 (or L0, when O is the
/// base level) and the tables of O overlapping them; its output covers
/// their hull. So the ranges reserved in O are: each busy table of O-1 with
/// the busy tables of O overlapping it, and, for O up to the base level (or
/// wherever busy tables of O meet them), the hull of the busy L0 tables.
/// This is conservative: a busy table of O-1 may be an input of a task
/// writing O-1 instead.
pub(crate) fn reserved_by_running(
    version: &Version,
    busy: &BTreeSet<u64>,
    base_level: usize,
    output_level: usize,
    range: &KeyRange,
) -> bool {
    let busy_in = |level: usize| -> Vec<Arc<TableMeta>> {
        version
            .level(level)
            .iter()
            .filter(|t| busy.contains(&t.number))
            .cloned()
            .collect()
    };
    let busy_out = busy_in(output_level);
    let with_outputs = |mut hull: KeyRange| {
        for t in &busy_out {
            if hull.overlaps(t) {
                hull.extend(t);
            }
        }
        hull
    };
    if output_level >= 2 {
        for table in busy_in(output_level - 1) {
            if let Some(hull) = KeyRange::of([&table])
                && with_outputs(hull).meets(range)
            {
                return true;
            }
        }
    }
    if let Some(l0) = KeyRange::of(&busy_in(0)) {
        let feeds_here = output_level <= base_level || busy_out.iter().any(|t| l0.overlaps(t));
        if feeds_here && with_outputs(l0).meets(range) {
            return true;
        }
    }
    false
}
