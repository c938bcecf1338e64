//! The flush job: an immutable memtable becomes an L0 table.
//!
//! Oldest immutable memtable first, one at a time:
//! 1. write every entry to a new table `NNNNNN.sst` (its number reserved
//!    by a synced manifest edit first) through the one table-output path
//!    ([`kevo_compaction::write_tables`]), which syncs it and the directory;
//! 2. apply a version edit adding it to L0, with `log_number` = the WAL
//!    segment started when the memtable was frozen and `last_seqno` = the
//!    last seqno assigned then ([`install::apply_edit`]: logged and synced
//!    by the manifest, installed with the memtable dropped from the read
//!    set, then the WAL segments below `log_number` and the tables no
//!    live version names are deleted).
//!
//! A crash between any two steps loses nothing: until step 2 is durable the
//! WAL still holds the data (and the table, named by no version and below
//! the reserved counter, is deleted at the next open); after it, the table
//! does. A failure puts the database in read-only mode; the memtable stays
//! readable, and is flushed again after a resume.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kevo_compaction::{GcFilter, OutputSpec, write_tables};
use kevo_core::{Fs, SeqNo};
use kevo_manifest::{TableMeta, VersionEdit};
use kevo_memtable::MemTable;
use kevo_sstable::TableOptions;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::install::{self, Applied, Change};
use crate::keyspace::KeyspaceCore;
use crate::read::Immutable;

/// Flushes `imm` (the oldest immutable memtable of `keyspace`) to an L0
/// table of that keyspace.
///
/// # Errors
/// Writing the table or the manifest failed; the caller records it as the
/// background error (a failed manifest write already is).
pub(crate) fn run(engine: &Engine, keyspace: &Arc<KeyspaceCore>, imm: &Immutable) -> Result<()> {
    let started = Instant::now();
    let span = tracing::info_span!("kevo.flush", keyspace = %keyspace.name, memtable = imm.id);
    let _entered = span.enter();
    let versions = engine
        .versions()
        .map_err(|cause| Error::ReadOnly { cause })?;
    let table = write_memtable(
        engine.fs.as_ref(),
        &engine.dir,
        keyspace.table_options(),
        &imm.table,
        &|| versions.reserve_file_number(),
        &engine.visibility.live_snapshots(),
    )?;
    let point = log_point(engine, keyspace, imm)?;
    let mut edit = VersionEdit {
        keyspace: keyspace.id,
        keyspace_log_number: Some(point.keyspace_log_number),
        log_number: Some(point.log_number),
        last_seqno: Some(point.last_seqno),
        ..VersionEdit::default()
    };
    let (bytes, entries) = table.as_ref().map_or((0, 0), |t| (t.file_size, t.entries));
    let new_tables: Vec<u64> = table.iter().map(|t| t.number).collect();
    edit.added.extend(table.map(|meta| (0, meta)));
    let change = Change::Flush {
        keyspace: Arc::clone(keyspace),
        memtable: imm.id,
        log_number: point.log_number,
    };
    match install::apply_edit(engine, edit, &new_tables, change) {
        Ok(Applied::Installed) => {}
        Ok(Applied::Refused(_)) if keyspace.is_dropped() => {
            // Dropped while its memtable was being written: nothing of it
            // is wanted any more (the new table is already removed).
            return Ok(());
        }
        Ok(Applied::Refused(refused)) => {
            // Nothing else races a flush's edit: the version set disagrees
            // with the engine about its own state.
            return Err(Error::Internal {
                reason: format!(
                    "the manifest refused the flush of memtable {}: {}",
                    imm.id, refused.reason
                ),
            });
        }
        Err(cause) => return Err(Error::ReadOnly { cause }),
    }
    engine
        .counters
        .record_flush(bytes, entries, started.elapsed());
    tracing::info!(
        entries,
        bytes,
        ms = started.elapsed().as_millis() as u64,
        "flushed memtable to L0"
    );
    Ok(())
}

/// Where the WAL stands once `imm` of `keyspace` is in a table (see
/// `retention`).
struct LogPoint {
    /// The first segment that may hold a write of `keyspace` in no table.
    keyspace_log_number: u64,
    /// The first segment any keyspace still needs.
    log_number: u64,
    /// The last seqno before `log_number`.
    last_seqno: SeqNo,
}

fn log_point(engine: &Engine, keyspace: &KeyspaceCore, imm: &Immutable) -> Result<LogPoint> {
    // Writes arriving now land in the newest switch's segment or later.
    let newest = engine.wal_starts.newest().max(imm.next_log);
    let keyspace_log_number = keyspace
        .read
        .first_unflushed_log(Some(imm.id))
        .map_or(newest, |log| log.min(newest));
    let log_number = engine
        .keyspaces
        .all()
        .iter()
        .filter(|other| other.id != keyspace.id)
        .filter_map(|other| other.read.first_unflushed_log(None))
        .fold(keyspace_log_number, u64::min);
    let last_seqno = engine
        .wal_starts
        .last_seqno_before(log_number)
        .ok_or_else(|| Error::Internal {
            reason: format!("no memtable switch started WAL segment {log_number}"),
        })?;
    Ok(LogPoint {
        keyspace_log_number,
        log_number,
        last_seqno,
    })
}

/// [`run`] for a flush the caller claimed (set the job state's `flushing`):
/// releases the claim and, on success, records `imm` as flushed. Used by the
/// background threads and by resume.
///
/// # Errors
/// As [`run`].
pub(crate) fn run_claimed(
    engine: &Engine,
    keyspace: &Arc<KeyspaceCore>,
    imm: &Immutable,
) -> Result<()> {
    let result = run(engine, keyspace, imm);
    {
        let mut state = engine.jobs.state();
        state.flushing = false;
        if result.is_ok() {
            state.flushed.insert(keyspace.id, imm.id);
        }
    }
    engine.jobs.notify();
    result
}

/// Writes every entry of `mem` that a reader at one of `snapshots` (or the
/// latest) can see to a new table in `dir` (numbered by `new_number`),
/// through the one table-output path: synced, with the directory, and
/// removed again on failure. Tombstones and range tombstones stay (older
/// data may lie in the tables below). `None` for an empty memtable.
///
/// # Errors
/// Writing failed; [`Error::Internal`] if a memtable with entries produced
/// no table (the filter always keeps the newest version of a key).
pub(crate) fn write_memtable(
    fs: &dyn Fs,
    dir: &Path,
    options: TableOptions,
    mem: &Arc<MemTable>,
    new_number: &(dyn Fn() -> kevo_core::Result<u64> + Sync),
    snapshots: &[SeqNo],
) -> Result<Option<TableMeta>> {
    let spec = OutputSpec {
        fs,
        dir,
        new_file_number: new_number,
        table_options: options,
        target_file_bytes: u64::MAX,
        grandparents: &[],
        stop: None,
    };
    let written = write_tables(
        mem.cursor(),
        mem.range_tombstones(),
        GcFilter::new(snapshots, false),
        &spec,
    )?;
    // Without a stop flag the run always completes.
    let table = written.and_then(|w| w.tables.into_iter().next());
    if table.is_none() && !mem.is_empty() {
        return Err(Error::Internal {
            reason: "a memtable with entries flushed to no table".to_string(),
        });
    }
    Ok(table)
}
