//! Compaction for the kevo storage engine: which tables to merge next, and
//! the merge itself.
//!
//! A [`CompactionStrategy`] looks at a [`kevo_manifest::Version`] and picks
//! a [`CompactionTask`]: input tables per level, an output level, whether
//! tombstones may be dropped. Two strategies ship:
//!
//! - [`Leveled`]: RocksDB-style leveled compaction with dynamic level sizes
//!   (low space amplification, more rewriting);
//! - [`Tiered`]: size-tiered ("universal") compaction over sorted runs
//!   (little rewriting, more space and more runs to read).
//!
//! [`run_compaction`] runs a task: it merges the inputs in internal-key
//! order, keeps what a live snapshot or the latest view can see
//! ([`GcFilter`], reusable by a flush through [`GcIter`]), writes and syncs
//! output tables split at user-key boundaries, and returns the
//! [`kevo_manifest::VersionEdit`] to log. [`ManualCompaction`] drives
//! `compact_range`. The engine owns threads, scheduling and write stalls;
//! this crate starts no thread. See `docs/compaction.md`.
//!
//! ```
//! use std::collections::BTreeSet;
//! use std::path::Path;
//! use std::sync::Arc;
//! use kevo_compaction::{CompactionReason, CompactionStrategy, Leveled};
//! use kevo_core::{InternalKey, MemFs, ValueKind};
//! use kevo_manifest::{ManifestOptions, TableMeta, VersionEdit, VersionSet};
//!
//! # fn main() -> kevo_core::Result<()> {
//! let fs = Arc::new(MemFs::new());
//! let (set, _) = VersionSet::open(fs, Path::new("/db"), ManifestOptions::default())?;
//! // Four flushes, each a table over "a".."z" in L0.
//! for flush in 0..4u64 {
//!     let table = TableMeta {
//!         number: set.new_file_number(),
//!         file_size: 1 << 20,
//!         smallest: InternalKey::new(b"a", flush * 10 + 9, ValueKind::Put),
//!         largest: InternalKey::new(b"z", flush * 10, ValueKind::Put),
//!         smallest_seqno: flush * 10,
//!         largest_seqno: flush * 10 + 9,
//!         entries: 10,
//!         tombstones: 0,
//!         range_tombstones: 0,
//!     };
//!     set.log_and_apply(VersionEdit { added: vec![(0, table)], ..VersionEdit::default() })?;
//! }
//!
//! let strategy = Leveled::default();
//! let task = strategy.pick(&set.current(), &BTreeSet::new()).expect("L0 is full");
//! assert_eq!(task.reason, CompactionReason::L0FileCount);
//! assert_eq!(task.input_numbers().len(), 4);
//! // Nothing lives below L0 yet, so L0 goes straight to the last level.
//! assert_eq!(task.output_level, 6);
//! assert!(task.drop_tombstones);
//! // The engine would now call `run_compaction(&task, &ctx)` and log the
//! // edit it returns.
//! # Ok(())
//! # }
//! ```

mod delete_only;
mod gc;
mod leveled;
mod manual;
mod output;
mod runner;
mod strategy;
mod task;
mod tiered;

pub use delete_only::{TombstoneHolder, pick_delete_only};
pub use gc::{GcFilter, GcIter, GcStats, Verdict};
pub use leveled::{LevelTargets, Leveled, LeveledOptions};
pub use manual::{ManualCompaction, ManualPlan, ManualScope, ManualStep};
pub use output::{OutputSpec, Written, table_meta, write_tables};
pub use runner::{CompactionOutput, CompactionStats, LevelTables, RunContext, run_compaction};
pub use strategy::CompactionStrategy;
pub use task::{CompactionReason, CompactionTask, KeyRange, LevelInputs, LevelScore};
#[cfg(feature = "testing")]
pub use tiered::sorted_runs;
pub use tiered::{SortedRun, Tiered, TieredOptions};
