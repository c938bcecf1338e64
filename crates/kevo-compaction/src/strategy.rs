//! The [`CompactionStrategy`] trait.

use std::collections::BTreeSet;

use kevo_manifest::Version;

use crate::manual::ManualCompaction;
use crate::task::{CompactionTask, LevelScore};

/// A policy that decides which tables to merge next.
///
/// Strategies are stateless: everything they decide follows from the
/// [`Version`] and the set of tables already being compacted, so the engine
/// may call them from any thread. See `docs/compaction.md` for the two
/// strategies kevo ships, [`Leveled`](crate::Leveled) and
/// [`Tiered`](crate::Tiered).
///
/// # Concurrency contract
/// `busy` holds the numbers of every table that a running compaction reads.
/// A task returned by [`CompactionStrategy::pick`] never reads a busy table
/// and never writes a key range of a level that a running task (as far as
/// the busy tables reveal it) writes too, so its edit still applies after
/// the running ones are installed, in any order.
pub trait CompactionStrategy: Send + Sync + std::fmt::Debug {
    /// A short name for logs and stats (`"leveled"`, `"tiered"`).
    fn name(&self) -> &'static str;

    /// The most urgent task (highest score, and only if score >= 1), never
    /// one that touches a table in `busy` (tables already being compacted)
    /// or whose output range overlaps a busy task's output in the same
    /// level. `None` when nothing is due (or everything due is busy).
    fn pick(&self, version: &Version, busy: &BTreeSet<u64>) -> Option<CompactionTask>;

    /// The state of a `compact_range(start..=end)` (`None` = unbounded):
    /// call [`ManualCompaction::next_task`] with the current version, run
    /// and install each task, and call again until it says
    /// [`ManualStep::Done`](crate::ManualStep::Done). Afterwards all data
    /// overlapping the range lives in one level (the bottommost non-empty
    /// one) and holds no tombstone and no shadowed version that no snapshot
    /// needs.
    fn manual(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> ManualCompaction;

    /// Estimated bytes that compaction still has to rewrite to reach the
    /// strategy's targets (for write stalls).
    fn pending_bytes(&self, version: &Version) -> u64;

    /// One [`LevelScore`] per level, L0 first (for stats).
    fn level_scores(&self, version: &Version) -> Vec<LevelScore>;

    /// A task that carries `table` (of `level`, holding range tombstones
    /// that cover only part of the data below it) one step down, so that
    /// its tombstones meet what they delete and compaction drops it: what
    /// the engine runs ahead of size-driven work (as Pebble compensates a
    /// table's size by the bytes its range deletions cover). `None` if
    /// nothing lies below it, it is busy, or the strategy has no such
    /// step (the default: the tombstones then wait for size-driven work).
    fn pick_range_tombstones(
        &self,
        version: &Version,
        level: usize,
        table: &std::sync::Arc<kevo_manifest::TableMeta>,
        busy: &BTreeSet<u64>,
    ) -> Option<CompactionTask> {
        let _ = (version, level, table, busy);
        None
    }
}
