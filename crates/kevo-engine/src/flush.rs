//! Background threads and the flush of an immutable memtable to an L0 table.
//!
//! A flush, oldest immutable memtable first, one at a time:
//! 1. write every entry to a new table `NNNNNN.sst` (its number reserved
//!    by a synced manifest edit first) and sync it (the table writer does)
//!    and the directory;
//! 2. log a version edit adding it to L0, with `log_number` = the WAL
//!    segment started when the memtable was frozen and `last_seqno` = the
//!    last seqno assigned then (synced by the manifest);
//! 3. install the new version and drop the memtable from the read set;
//! 4. retire the WAL segments below `log_number` and delete the tables no
//!    live version refers to.
//!
//! A crash between any two steps loses nothing: until step 2 is durable the
//! WAL still holds the data (and the table, named by no version and below
//! the reserved counter, is deleted at the next open); after it, the table
//! does. A failure in steps 1–2 puts the
//! database in read-only mode; the memtable stays readable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kevo_compaction::{GcFilter, OutputSpec, write_tables};
use kevo_manifest::{TableMeta, VersionEdit, table_file_name};
use kevo_sstable::TableOptions;

use crate::db::{Immutable, Shared};
use crate::error::{Error, Result};
use crate::lock;

/// Starts `options.background_threads` threads; they hold the shared state
/// but not the handle, so dropping the last handle still closes the
/// database (which stops them).
pub(crate) fn start_threads(shared: &Arc<Shared>) {
    let mut threads = lock(&shared.bg_threads);
    for i in 0..shared.options.background_threads {
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("kevo-bg-{i}"))
            .spawn(move || background_loop(&worker));
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                shared.set_background_error(Error::io("starting a background thread", e));
            }
        }
    }
}

/// Work for a background thread.
enum Job {
    Flush(Immutable),
    Compact(kevo_compaction::CompactionTask),
    /// An automatic resume after a full disk is due.
    Resume,
}

/// Each background thread: flushes first (oldest immutable memtable, one
/// flush at a time), then compactions by score (at most
/// `background_threads - 1` at once, so that a thread stays free for
/// flushes), until shutdown or a background error.
fn background_loop(shared: &Shared) {
    loop {
        let job = {
            let mut bg = lock(&shared.bg);
            loop {
                if bg.shutdown {
                    return;
                }
                if bg.resume_at.is_some_and(|at| Instant::now() >= at) {
                    bg.resume_at = None;
                    break Job::Resume;
                }
                if shared.bg_error.get().is_none() {
                    if !bg.flushing
                        && let Some(imm) = lock(&shared.mem).imms.front().cloned()
                    {
                        bg.flushing = true;
                        break Job::Flush(imm);
                    }
                    if let Some(task) = crate::compact::pick(shared, &mut bg) {
                        break Job::Compact(task);
                    }
                }
                // Wake for new work, or when a back-off ends.
                let wait = [bg.retry_at, bg.resume_at]
                    .into_iter()
                    .flatten()
                    .min()
                    .map_or(Duration::from_secs(1), |at| {
                        at.saturating_duration_since(Instant::now())
                            .max(Duration::from_millis(1))
                    });
                bg = shared
                    .bg_cv
                    .wait_timeout(bg, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        match job {
            Job::Flush(imm) => {
                let id = imm.id;
                let result = flush_memtable(shared, imm);
                {
                    let mut bg = lock(&shared.bg);
                    bg.flushing = false;
                    if result.is_ok() {
                        bg.flushed_id = Some(id);
                    }
                }
                if let Err(e) = result
                    && !shared.stop.load(std::sync::atomic::Ordering::Acquire)
                {
                    shared.set_background_error(e);
                }
            }
            Job::Compact(task) => {
                let outcome = crate::compact::run_task(shared, &task);
                crate::compact::finish_background(shared, &task, outcome);
            }
            Job::Resume => shared.auto_resume(),
        }
        shared.bg_cv.notify_all();
    }
}

/// Table options for new tables.
pub(crate) fn table_options(shared: &Shared) -> TableOptions {
    table_options_for(&shared.options)
}

/// Table options for new tables under `options`.
pub(crate) fn table_options_for(options: &crate::Options) -> TableOptions {
    TableOptions {
        block_bytes_target: options.block_bytes,
        restart_interval: options.block_restart_interval,
        compression: options.compression,
        bloom_bits_per_key: options.bloom_bits_per_key,
        ..TableOptions::default()
    }
}

/// Flushes `imm` (the oldest immutable memtable) to an L0 table.
fn flush_memtable(shared: &Shared, imm: Immutable) -> Result<()> {
    let started = Instant::now();
    let span = tracing::info_span!("kevo.flush", memtable = imm.id);
    let _entered = span.enter();
    // Every write up to the freeze is in this memtable or in tables, and
    // the segments from `next_log` on hold exactly the writes after it.
    let mut edit = VersionEdit {
        log_number: Some(imm.next_log),
        last_seqno: Some(imm.last_seqno),
        ..VersionEdit::default()
    };
    let table = write_memtable(
        shared.fs.as_ref(),
        &shared.dir,
        table_options(shared),
        &imm.table,
        &|| shared.versions.reserve_file_number(),
        &shared.live_snapshots(),
    )?;
    if table.is_none() && !imm.table.is_empty() {
        // Cannot happen: the newest version of each key is always kept.
        return Err(Error::InvalidArgument(
            "a non-empty memtable flushed to no entry".to_string(),
        ));
    }
    let written = table.as_ref().map(|meta| (meta.file_size, meta.entries));
    edit.added.extend(table.map(|meta| (0, meta)));
    shared.versions.log_and_apply(edit)?;
    {
        // The version set's current version, not the one returned: a
        // compaction may have installed a newer one in between.
        let mut state = lock(&shared.mem);
        if state.imms.front().map(|front| front.id) == Some(imm.id) {
            state.imms.pop_front();
        }
        state.version = shared.versions.current();
        state.pending_compaction_bytes = shared.strategy.pending_bytes(&state.version);
        shared.publish(&state);
    }
    let (bytes, entries) = written.unwrap_or((0, 0));
    shared
        .counters
        .record_flush(bytes, entries, started.elapsed());
    tracing::info!(
        entries,
        bytes,
        ms = started.elapsed().as_millis() as u64,
        "flushed memtable to L0"
    );
    retire_files(shared, Some(imm.next_log));
    Ok(())
}

/// Writes every entry of `mem` that a reader at one of `snapshots` (or the
/// latest) can see to a new table in `dir` (numbered by `new_number`),
/// through the one table-output path ([`kevo_compaction::write_tables`]):
/// synced, with the directory, and removed again on failure. Tombstones
/// stay (older data may lie in the tables below). `None` for a memtable
/// with nothing to keep.
pub(crate) fn write_memtable(
    fs: &dyn kevo_core::Fs,
    dir: &std::path::Path,
    options: TableOptions,
    mem: &Arc<kevo_memtable::MemTable>,
    new_number: &(dyn Fn() -> kevo_core::Result<u64> + Sync),
    snapshots: &[kevo_core::SeqNo],
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
    let written = write_tables(mem.cursor(), GcFilter::new(snapshots, false), &spec)?;
    Ok(written.tables.into_iter().next())
}

/// Retires WAL segments below `log_number` (if given) and deletes obsolete
/// tables. Failures here lose nothing (the files are orphans, deleted at
/// the next open), so they are logged, not fatal.
pub(crate) fn retire_files(shared: &Shared, log_number: Option<u64>) {
    if let Some(log_number) = log_number {
        let wal = shared.wal.read().unwrap_or_else(|e| e.into_inner());
        if let Some(wal) = wal.as_ref()
            && let Err(e) = wal.remove_segments_before(log_number)
        {
            tracing::warn!(error = %e, "retiring WAL segments failed");
        }
    }
    for number in shared.versions.take_obsolete_tables() {
        shared.tables.evict(number);
        let path = shared.dir.join(table_file_name(number));
        if let Err(e) = shared.fs.remove_file(&path) {
            tracing::warn!(error = %e, path = %path.display(), "deleting an obsolete table failed");
        }
    }
}
