//! [`run_compaction`]: merges a task's inputs into new tables.
//!
//! The inputs are merged in internal-key order ([`MergingCursor`]), passed
//! through a [`GcFilter`], and written to tables of about
//! `target_file_bytes`, each cut only between two user keys. Every output
//! table is synced as it is finished, the directory once at the end, all
//! before the caller logs the returned edit. On any error (or when `stop`
//! is set) the outputs written so far are removed; inputs are never
//! touched.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kevo_core::{Cursor, Error, Fs, Result, SeqNo, user_key};
use kevo_iter::MergingCursor;
use kevo_manifest::{TableMeta, VersionEdit, table_file_name};
use kevo_sstable::{Table, TableOptions, TableWriter};

use crate::gc::{GcFilter, GcIter};
use crate::task::{CompactionTask, GRANDPARENT_OVERLAP_FACTOR};

/// Entries merged between two looks at the `stop` flag.
const STOP_CHECK_ENTRIES: u64 = 1024;

/// What a compaction needs from the engine.
pub struct RunContext<'a> {
    /// The file system holding the database.
    pub fs: &'a dyn Fs,
    /// The database directory (tables are `dir/NNNNNN.sst`).
    pub dir: &'a Path,
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

/// Whether `error` is the one [`run_compaction`] returns when its `stop`
/// flag was set.
pub fn is_stopped(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. } if source.kind() == io::ErrorKind::Interrupted)
}

fn stopped() -> Error {
    Error::io(
        "compacting",
        io::Error::new(io::ErrorKind::Interrupted, "compaction stopped"),
    )
}

/// Runs `task`: a trivial move becomes an edit without I/O; anything else
/// merges the inputs into new synced tables at the output level.
///
/// # Errors
/// Errors of the file system and of the input tables ([`Error::Io`],
/// [`Error::Corruption`]); an `Interrupted` [`Error::Io`] when `stop` was
/// set ([`is_stopped`]). Output files written before the error are removed.
pub fn run_compaction(task: &CompactionTask, ctx: &RunContext<'_>) -> Result<CompactionOutput> {
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
    if task.trivial_move {
        let outputs: Vec<TableMeta> = task.input_tables().map(|(_, t)| (**t).clone()).collect();
        edit.added = outputs
            .iter()
            .map(|t| (task.output_level, t.clone()))
            .collect();
        tracing::info!(moved = outputs.len(), "trivial move");
        let stats = CompactionStats {
            duration: started.elapsed(),
            ..CompactionStats::default()
        };
        return Ok(CompactionOutput {
            edit,
            stats,
            outputs,
        });
    }
    let mut merge = Merge {
        task,
        ctx,
        created: Vec::new(),
        numbers: Vec::new(),
        outputs: Vec::new(),
        stats: CompactionStats::default(),
    };
    let result = merge.run();
    if let Err(error) = result {
        for path in &merge.created {
            if let Err(e) = ctx.fs.remove_file(path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "removing a failed compaction's output");
            }
        }
        tracing::warn!(%error, "compaction failed");
        return Err(error);
    }
    let mut stats = merge.stats;
    stats.duration = started.elapsed();
    edit.added = merge
        .outputs
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
    Ok(CompactionOutput {
        edit,
        stats,
        outputs: merge.outputs,
    })
}

/// One running merge: what it created so far, for clean-up on error.
struct Merge<'t, 'c> {
    task: &'t CompactionTask,
    ctx: &'t RunContext<'c>,
    created: Vec<PathBuf>,
    /// Numbers of the outputs created, in order.
    numbers: Vec<u64>,
    outputs: Vec<TableMeta>,
    stats: CompactionStats,
}

impl Merge<'_, '_> {
    fn run(&mut self) -> Result<()> {
        let ctx = self.ctx;
        let mut children: Vec<Box<dyn Cursor + Send>> = Vec::new();
        for (_, meta) in self.task.input_tables() {
            if ctx.stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            let table = (ctx.open_table)(meta)?;
            children.push(Box::new(table.cursor()));
            self.stats.tables_read += 1;
            self.stats.bytes_read += meta.file_size;
        }
        let merged = MergingCursor::new(children);
        let filter = GcFilter::new(ctx.snapshots, self.task.drop_tombstones);
        let mut kept = GcIter::new(merged, filter);
        kept.seek_to_first()?;
        let mut splitter = Splitter::new(self.task);
        let mut writer: Option<TableWriter> = None;
        let mut last_user_key: Vec<u8> = Vec::new();
        let mut checked_at = 0;
        while kept.valid() {
            let entries = kept.filter().stats().entries_in;
            if entries >= checked_at + STOP_CHECK_ENTRIES {
                checked_at = entries;
                if ctx.stop.load(Ordering::Relaxed) {
                    return Err(stopped());
                }
            }
            let key = kept.key();
            let user = user_key(key);
            let new_user_key = writer.is_none() || user != last_user_key.as_slice();
            if new_user_key {
                let size = writer.as_ref().map_or(0, TableWriter::estimated_file_size);
                if splitter.cut_before(user, size, writer.is_some())
                    && let Some(done) = writer.take()
                {
                    self.finish(done)?;
                }
                last_user_key.clear();
                last_user_key.extend_from_slice(user);
            }
            let out = match &mut writer {
                Some(w) => w,
                None => writer.insert(self.create()?),
            };
            out.add(key, kept.value())?;
            kept.next()?;
        }
        if let Some(done) = writer.take() {
            self.finish(done)?;
        }
        let gc = kept.filter().stats();
        self.stats.entries_read = gc.entries_in;
        self.stats.versions_dropped = gc.versions_dropped;
        self.stats.tombstones_dropped = gc.tombstones_dropped;
        if !self.outputs.is_empty() {
            ctx.fs
                .sync_dir(ctx.dir)
                .map_err(|e| Error::io(format!("syncing {}", ctx.dir.display()), e))?;
        }
        Ok(())
    }

    fn create(&mut self) -> Result<TableWriter> {
        let ctx = self.ctx;
        if ctx.stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        let number = (ctx.new_file_number)()?;
        let path = ctx.dir.join(table_file_name(number));
        let options = TableOptions {
            bottom_level: self.task.drop_tombstones,
            ..ctx.table_options.clone()
        };
        // Recorded first: a create that fails half-way may leave a file.
        self.created.push(path.clone());
        let writer = TableWriter::create(ctx.fs, &path, options)?;
        self.numbers.push(number);
        Ok(writer)
    }

    fn finish(&mut self, writer: TableWriter) -> Result<()> {
        let number = self.numbers[self.outputs.len()];
        let meta = writer.finish()?;
        self.stats.tables_written += 1;
        self.stats.bytes_written += meta.file_size;
        self.stats.entries_written += meta.entry_count;
        self.outputs.push(TableMeta {
            number,
            file_size: meta.file_size,
            smallest: meta.smallest_key,
            largest: meta.largest_key,
            smallest_seqno: meta.smallest_seqno,
            largest_seqno: meta.largest_seqno,
            entries: meta.entry_count,
            tombstones: meta.tombstone_count,
        });
        Ok(())
    }
}

/// Decides where output tables are cut: at `target_file_bytes`, and when
/// the current output's overlap with the grandparents would exceed
/// [`GRANDPARENT_OVERLAP_FACTOR`] × `target_file_bytes` (as LevelDB's
/// `ShouldStopBefore`), only ever between two user keys.
struct Splitter<'t> {
    target_file_bytes: u64,
    grandparents: &'t [Arc<TableMeta>],
    next_grandparent: usize,
    overlapped_bytes: u64,
    max_overlap_bytes: u64,
}

impl<'t> Splitter<'t> {
    fn new(task: &'t CompactionTask) -> Self {
        Splitter {
            target_file_bytes: task.target_file_bytes,
            grandparents: &task.grandparents,
            next_grandparent: 0,
            overlapped_bytes: 0,
            max_overlap_bytes: task
                .target_file_bytes
                .saturating_mul(GRANDPARENT_OVERLAP_FACTOR),
        }
    }

    /// Called at each new user key: whether to finish the open output
    /// (`open`, `size` bytes so far) before it.
    fn cut_before(&mut self, user_key: &[u8], size: u64, open: bool) -> bool {
        while let Some(gp) = self.grandparents.get(self.next_grandparent) {
            if user_key <= gp.largest_user_key() {
                break;
            }
            if open {
                self.overlapped_bytes += gp.file_size;
            }
            self.next_grandparent += 1;
        }
        let cut = open
            && (size >= self.target_file_bytes || self.overlapped_bytes > self.max_overlap_bytes);
        if cut || !open {
            self.overlapped_bytes = 0;
        }
        cut
    }
}
