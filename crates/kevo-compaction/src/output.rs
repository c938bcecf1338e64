//! [`write_tables`]: the one path from a sorted stream of internal keys to
//! synced tables recorded as the manifest records them — for flushes,
//! compactions and repair alike (as LevelDB's `BuildTable` serves flush and
//! compaction).
//!
//! The stream goes through a [`GcFilter`] (what a live snapshot or the
//! latest view can see), is cut into tables of about `target_file_bytes`
//! (only between two user keys, and earlier where an output would overlap
//! too many grandparent tables), every table is synced as it is finished
//! and the directory once at the end. On any error, or when `stop` is set,
//! the tables written so far are removed; the input is never touched.
//!
//! The range tombstones of the input go along: what compaction keeps of
//! them ([`FragmentedTombstones::compacted`]) is cut at the output
//! boundaries, table `i` taking the part from the end of table `i - 1`
//! (just after its last user key) to just after its own last user key, so
//! that together the tables hold every kept tombstone exactly once and
//! their user-key ranges stay disjoint. Versions they delete for every
//! reader are dropped by the filter. Tombstones without any entry still
//! make a table.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kevo_core::{Cursor, Error, FragmentedTombstones, Fs, KEY_BYTES_MAX, Result, user_key};
use kevo_manifest::{TableMeta, table_file_name};
use kevo_sstable::{TableOptions, TableWriter};

use crate::gc::{GcFilter, GcIter, GcStats};
use crate::task::GRANDPARENT_OVERLAP_FACTOR;

/// Entries written between two looks at the `stop` flag.
const STOP_CHECK_ENTRIES: u64 = 1024;

/// Where and how [`write_tables`] writes.
pub struct OutputSpec<'a> {
    /// The file system holding the database.
    pub fs: &'a dyn Fs,
    /// The database directory (tables are `dir/NNNNNN.sst`).
    pub dir: &'a Path,
    /// Hands out a fresh file number for each table (normally
    /// `VersionSet::reserve_file_number`, which makes it durable first).
    pub new_file_number: &'a (dyn Fn() -> Result<u64> + Sync),
    /// How tables are written.
    pub table_options: TableOptions,
    /// A table is cut once it reaches about this many bytes; `u64::MAX`
    /// writes one table.
    pub target_file_bytes: u64,
    /// Tables of the level below the output, in key order: a table is cut
    /// early rather than overlap more than
    /// `GRANDPARENT_OVERLAP_FACTOR × target_file_bytes` of them.
    pub grandparents: &'a [Arc<TableMeta>],
    /// Set to abort: checked before each table and every 1024 entries.
    pub stop: Option<&'a AtomicBool>,
}

impl std::fmt::Debug for OutputSpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSpec")
            .field("dir", &self.dir)
            .field("table_options", &self.table_options)
            .field("target_file_bytes", &self.target_file_bytes)
            .field("grandparents", &self.grandparents.len())
            .finish_non_exhaustive()
    }
}

/// What [`write_tables`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// The tables, in key order, as the manifest records them.
    pub tables: Vec<TableMeta>,
    /// What the filter kept and dropped.
    pub gc: GcStats,
}

impl Written {
    /// Bytes of the tables written.
    pub fn bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.file_size).sum()
    }

    /// Entries in the tables written.
    pub fn entries(&self) -> u64 {
        self.tables.iter().map(|t| t.entries).sum()
    }
}

/// What aborts a run once `stop` is set; [`write_tables`] turns it into
/// `Ok(None)` and never returns it.
pub(crate) fn stopped() -> Error {
    Error::io(
        "writing tables",
        io::Error::new(io::ErrorKind::Interrupted, "stopped"),
    )
}

/// What the manifest records of a table the writer finished as `number`.
pub fn table_meta(number: u64, written: &kevo_sstable::TableMeta) -> TableMeta {
    TableMeta {
        number,
        file_size: written.file_size,
        smallest: written.smallest_key.clone(),
        largest: written.largest_key.clone(),
        smallest_seqno: written.smallest_seqno,
        largest_seqno: written.largest_seqno,
        entries: written.entry_count,
        tombstones: written.tombstone_count,
        range_tombstones: written.range_tombstone_count,
    }
}

/// Writes what `filter` keeps of `input` (a cursor in internal-key order,
/// not positioned) and of its range tombstones `range_tombstones` (all of
/// them, fragmented) to new synced tables; see the module docs. Returns no
/// table when nothing is kept, and `None` when `stop` was set (the tables
/// written so far are removed).
///
/// # Errors
/// Errors of the input and the file system ([`Error::Io`],
/// [`Error::Corruption`]). Tables written before the error are removed.
pub fn write_tables<C: Cursor>(
    input: C,
    range_tombstones: Arc<FragmentedTombstones>,
    filter: GcFilter,
    spec: &OutputSpec<'_>,
) -> Result<Option<Written>> {
    let kept_tombstones = range_tombstones.compacted(filter.snapshots(), filter.drops_tombstones());
    let mut output = Output {
        spec,
        created: Vec::new(),
        numbers: Vec::new(),
        tables: Vec::new(),
        tombstones: kept_tombstones,
        lower: None,
    };
    let filter = filter.with_range_tombstones(range_tombstones);
    let result = output.run(GcIter::new(input, filter));
    match result {
        Ok(gc) => Ok(Some(Written {
            tables: output.tables,
            gc,
        })),
        Err(error) => {
            for path in &output.created {
                if let Err(e) = spec.fs.remove_file(path)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e, "removing an unfinished output table");
                }
            }
            if output.stopped() {
                return Ok(None);
            }
            Err(error)
        }
    }
}

/// One run of [`write_tables`]: what it created so far, for clean-up.
struct Output<'s, 'a> {
    spec: &'s OutputSpec<'a>,
    created: Vec<PathBuf>,
    /// Numbers of the tables created, in order.
    numbers: Vec<u64>,
    tables: Vec<TableMeta>,
    /// The range tombstones to write, compacted.
    tombstones: FragmentedTombstones,
    /// Where the next table's share of the tombstones starts (`None`: the
    /// first table takes everything before its end).
    lower: Option<Vec<u8>>,
}

impl Output<'_, '_> {
    fn stopped(&self) -> bool {
        self.spec.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    }

    fn run<C: Cursor>(&mut self, mut kept: GcIter<C>) -> Result<GcStats> {
        kept.seek_to_first()?;
        let mut splitter = Splitter::new(self.spec.target_file_bytes, self.spec.grandparents);
        let mut writer: Option<TableWriter> = None;
        let mut last_user_key: Vec<u8> = Vec::new();
        let mut checked_at = 0;
        while kept.valid() {
            let entries = kept.filter().stats().entries_in;
            if entries >= checked_at + STOP_CHECK_ENTRIES {
                checked_at = entries;
                if self.stopped() {
                    return Err(stopped());
                }
            }
            let key = kept.key();
            let user = user_key(key);
            let new_user_key = writer.is_none() || user != last_user_key.as_slice();
            if new_user_key {
                let size = writer.as_ref().map_or(0, TableWriter::estimated_file_size);
                // A cut gives the tombstones up to just after the last user
                // key to the table it ends: that key must have a successor.
                if splitter.cut_before(user, size, writer.is_some())
                    && last_user_key.len() < KEY_BYTES_MAX
                    && let Some(done) = writer.take()
                {
                    let mut upper = last_user_key.clone();
                    upper.push(0);
                    self.finish(done, Some(upper))?;
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
            self.finish(done, None)?;
        } else if !self.tombstones.is_empty() {
            // Range tombstones and no entry: a table of tombstones only.
            let done = self.create()?;
            self.finish(done, None)?;
        }
        if !self.tables.is_empty() {
            self.spec
                .fs
                .sync_dir(self.spec.dir)
                .map_err(|e| Error::io(format!("syncing {}", self.spec.dir.display()), e))?;
        }
        Ok(kept.filter().stats())
    }

    fn create(&mut self) -> Result<TableWriter> {
        if self.stopped() {
            return Err(stopped());
        }
        let number = (self.spec.new_file_number)()?;
        let path = self.spec.dir.join(table_file_name(number));
        // Recorded first: a create that fails half-way may leave a file.
        self.created.push(path.clone());
        let writer = TableWriter::create(self.spec.fs, &path, self.spec.table_options.clone())?;
        self.numbers.push(number);
        Ok(writer)
    }

    /// Adds the table's share of the range tombstones (from `lower` to
    /// `upper`, `None`: unbounded) and finishes it.
    fn finish(&mut self, mut writer: TableWriter, upper: Option<Vec<u8>>) -> Result<()> {
        let share = self
            .tombstones
            .clip(self.lower.as_deref(), upper.as_deref());
        for tombstone in share.tombstones() {
            writer.add_range_tombstone(&tombstone)?;
        }
        self.lower = upper;
        let number = self.numbers[self.tables.len()];
        let written = writer.finish()?;
        self.tables.push(table_meta(number, &written));
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
    fn new(target_file_bytes: u64, grandparents: &'t [Arc<TableMeta>]) -> Self {
        Splitter {
            target_file_bytes,
            grandparents,
            next_grandparent: 0,
            overlapped_bytes: 0,
            max_overlap_bytes: target_file_bytes.saturating_mul(GRANDPARENT_OVERLAP_FACTOR),
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
