//! [`run_compaction`]: merges a task's inputs into new tables.
//!
//! The inputs are merged in internal-key order ([`MergingCursor`]): each L0
//! table is a child of its own, each deeper level one [`ConcatCursor`] that
//! opens its tables one at a time (as reads do). The merged stream goes
//! through the one table-output path, [`write_tables`]: a [`GcFilter`],
//! tables cut at the target size and at grandparent overlap between user
//! keys, every table synced, the directory once at the end, all before the
//! caller logs the returned edit. On any error (or when `stop` is set) the
//! outputs written so far are removed; inputs are never touched.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use kevo_core::{Cursor, FragmentedTombstones, Fs, Result, SeqNo};
use kevo_iter::{ConcatCursor, ConcatSource, MergingCursor};
use kevo_manifest::{TableMeta, VersionEdit};
use kevo_sstable::{Table, TableCursor, TableOptions};

use crate::gc::GcFilter;
use crate::output::{OutputSpec, write_tables};
use crate::task::{CompactionReason, CompactionTask};

/// What a compaction needs from the engine.
pub struct RunContext<'a> {
    /// The file system holding the database.
    pub fs: &'a dyn Fs,
    /// The database directory (tables are `dir/NNNNNN.sst`).
    pub dir: &'a std::path::Path,
    /// Opens an input table (normally through the engine's table cache).
    pub open_table: &'a (dyn Fn(&TableMeta) -> Result<Arc<Table>> + Sync),
    /// Hands out a fresh file number for each output table (normally
    /// `VersionSet::reserve_file_number`, which makes it durable first).
    pub new_file_number: &'a (dyn Fn() -> Result<u64> + Sync),
    /// How output tables are written (`bottom_level` is set from the task).
    pub table_options: TableOptions,
    /// Live snapshot seqnos, ascending.
    pub snapshots: &'a [SeqNo],
    /// Set to abort: checked before each output table and every
    /// 1024 entries.
    pub stop: &'a AtomicBool,
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("dir", &self.dir)
            .field("table_options", &self.table_options)
            .field("snapshots", &self.snapshots)
            .finish_non_exhaustive()
    }
}

/// Figures of one compaction.
#[derive(Debug, Clone, Default)]
pub struct CompactionStats {
    /// Bytes of the input tables.
    pub bytes_read: u64,
    /// Bytes of the output tables.
    pub bytes_written: u64,
    /// Input tables.
    pub tables_read: u64,
    /// Output tables.
    pub tables_written: u64,
    /// Entries merged.
    pub entries_read: u64,
    /// Entries written.
    pub entries_written: u64,
    /// Entries dropped because a newer version hides them from every
    /// reader (see [`GcStats`](crate::GcStats)).
    pub versions_dropped: u64,
    /// Tombstones dropped because nothing needs them any more.
    pub tombstones_dropped: u64,
    /// Entries dropped because a range tombstone deletes them for every
    /// reader.
    pub covered_dropped: u64,
    /// Tables a delete-only compaction removed without reading them.
    pub tables_deleted: u64,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Wall time of the compaction.
    pub duration: Duration,
}

/// What [`run_compaction`] produced.
#[derive(Debug, Clone)]
pub struct CompactionOutput {
    /// Removes every input and adds every output at the output level; the
    /// caller logs it with `VersionSet::log_and_apply`.
    pub edit: VersionEdit,
    /// Figures.
    pub stats: CompactionStats,
    /// The output tables (for a trivial move, the moved table).
    pub outputs: Vec<TableMeta>,
}

/// Runs `task`: a trivial move becomes an edit without I/O; anything else
/// merges the inputs into new synced tables at the output level. `None`
/// when `stop` was set before it finished (its outputs removed).
///
/// # Errors
/// Errors of the file system and of the input tables ([`Error::Io`],
/// [`Error::Corruption`]). Output files written before the error are
/// removed.
///
/// [`Error::Io`]: kevo_core::Error::Io
/// [`Error::Corruption`]: kevo_core::Error::Corruption
pub fn run_compaction(
    task: &CompactionTask,
    ctx: &RunContext<'_>,
) -> Result<Option<CompactionOutput>> {
    let started = Instant::now();
    let span = tracing::info_span!(
        "compaction",
        reason = ?task.reason,
        output_level = task.output_level,
        inputs = task.inputs.iter().map(|l| l.tables.len()).sum::<usize>(),
        trivial_move = task.trivial_move,
    );
    let _entered = span.enter();
    let mut edit = VersionEdit::default();
    for (level, table) in task.input_tables() {
        edit.removed.push((level, table.number));
    }
    let mut stats = CompactionStats {
        tables_read: task.input_tables().count() as u64,
        bytes_read: task.input_bytes(),
        ..CompactionStats::default()
    };
    if task.trivial_move {
        let outputs: Vec<TableMeta> = task.input_tables().map(|(_, t)| (**t).clone()).collect();
        edit.added = outputs
            .iter()
            .map(|t| (task.output_level, t.clone()))
            .collect();
        tracing::info!(moved = outputs.len(), "trivial move");
        // Tables moved, nothing read or written: what counts as a move.
        let stats = CompactionStats {
            tables_read: outputs.len() as u64,
            duration: started.elapsed(),
            ..CompactionStats::default()
        };
        return Ok(Some(CompactionOutput {
            edit,
            stats,
            outputs,
        }));
    }
    if task.reason == CompactionReason::DeleteOnly {
        // Covered whole by a range tombstone every reader sees: removed
        // from the version, nothing read or written.
        tracing::info!(
            tables = stats.tables_read,
            bytes = stats.bytes_read,
            "delete-only compaction"
        );
        let stats = CompactionStats {
            tables_read: stats.tables_read,
            tables_deleted: stats.tables_read,
            bytes_deleted: stats.bytes_read,
            duration: started.elapsed(),
            ..CompactionStats::default()
        };
        return Ok(Some(CompactionOutput {
            edit,
            stats,
            outputs: Vec::new(),
        }));
    }
    let merged = merge_inputs(task, ctx);
    let range_tombstones = input_range_tombstones(task, ctx)?;
    let spec = OutputSpec {
        fs: ctx.fs,
        dir: ctx.dir,
        new_file_number: ctx.new_file_number,
        table_options: TableOptions {
            bottom_level: task.drop_tombstones,
            ..ctx.table_options.clone()
        },
        target_file_bytes: task.target_file_bytes,
        grandparents: &task.grandparents,
        stop: Some(ctx.stop),
    };
    let written = write_tables(
        merged,
        range_tombstones,
        GcFilter::new(ctx.snapshots, task.drop_tombstones),
        &spec,
    )
    .inspect_err(|error| tracing::warn!(%error, "compaction failed"))?;
    let Some(written) = written else {
        tracing::info!("compaction stopped");
        return Ok(None);
    };
    stats.duration = started.elapsed();
    stats.tables_written = written.tables.len() as u64;
    stats.bytes_written = written.bytes();
    stats.entries_written = written.entries();
    stats.entries_read = written.gc.entries_in;
    stats.versions_dropped = written.gc.versions_dropped;
    stats.tombstones_dropped = written.gc.tombstones_dropped;
    stats.covered_dropped = written.gc.covered_dropped;
    edit.added = written
        .tables
        .iter()
        .map(|t| (task.output_level, t.clone()))
        .collect();
    tracing::info!(
        bytes_in = stats.bytes_read,
        bytes_out = stats.bytes_written,
        tables_in = stats.tables_read,
        tables_out = stats.tables_written,
        versions_dropped = stats.versions_dropped,
        tombstones_dropped = stats.tombstones_dropped,
        ms = stats.duration.as_millis() as u64,
        "compaction done"
    );
    Ok(Some(CompactionOutput {
        edit,
        stats,
        outputs: written.tables,
    }))
}

/// The range tombstones of every input table that holds some, merged.
fn input_range_tombstones(
    task: &CompactionTask,
    ctx: &RunContext<'_>,
) -> Result<Arc<FragmentedTombstones>> {
    let mut sets = Vec::new();
    for (_, meta) in task.input_tables() {
        if meta.has_range_tombstones() {
            sets.push((ctx.open_table)(meta)?.range_tombstones().clone());
        }
    }
    Ok(FragmentedTombstones::merge_shared(sets))
}

/// The task's inputs as one cursor: each L0 table a child, each deeper
/// level one [`ConcatCursor`] over its (disjoint, ordered) tables.
fn merge_inputs<'a>(
    task: &'a CompactionTask,
    ctx: &'a RunContext<'a>,
) -> MergingCursor<Box<dyn Cursor + 'a>> {
    // Opened through the context, once the run is not stopped.
    let open = move |meta: &TableMeta| -> Result<TableCursor> {
        if ctx.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(crate::output::stopped());
        }
        Ok((ctx.open_table)(meta)?.cursor().without_cache_fill())
    };
    let mut children: Vec<Box<dyn Cursor + 'a>> = Vec::new();
    for inputs in &task.inputs {
        if inputs.level == 0 {
            for table in &inputs.tables {
                let one = std::slice::from_ref(table);
                children.push(Box::new(ConcatCursor::new(LevelTables::new(one, open))));
            }
        } else if !inputs.tables.is_empty() {
            let level = LevelTables::new(inputs.tables.as_slice(), open);
            children.push(Box::new(ConcatCursor::new(level)));
        }
    }
    MergingCursor::new(children)
}

/// The tables of one level (or one L0 table), in key order, as the sources
/// of a [`ConcatCursor`]: each opened by `open` only when the cursor reaches
/// it. Compaction inputs and the engine's range reads both read levels
/// through it.
pub struct LevelTables<T, F> {
    tables: T,
    open: F,
}

impl<T, F> LevelTables<T, F>
where
    T: AsRef<[Arc<TableMeta>]>,
    F: Fn(&TableMeta) -> Result<TableCursor>,
{
    /// `tables` (disjoint, in key order), opened by `open`.
    pub fn new(tables: T, open: F) -> Self {
        LevelTables { tables, open }
    }
}

impl<T, F> ConcatSource for LevelTables<T, F>
where
    T: AsRef<[Arc<TableMeta>]>,
    F: Fn(&TableMeta) -> Result<TableCursor>,
{
    type Cursor = TableCursor;

    fn len(&self) -> usize {
        self.tables.as_ref().len()
    }

    fn smallest(&self, i: usize) -> &[u8] {
        self.tables.as_ref()[i].smallest.as_bytes()
    }

    fn largest(&self, i: usize) -> &[u8] {
        self.tables.as_ref()[i].largest.as_bytes()
    }

    fn open(&self, i: usize) -> Result<TableCursor> {
        (self.open)(&self.tables.as_ref()[i])
    }
}
