//! Background threads and the flush of an immutable memtable to an L0 table.
//!
//! A flush, oldest immutable memtable first, one at a time:
//! 1. write every entry to a new table `NNNNNN.sst` (number from the
//!    manifest's counter) and sync it (the table writer does) and the
//!    directory;
//! 2. log a version edit adding it to L0, with `log_number` = the WAL
//!    segment started when the memtable was frozen (synced by the manifest);
//! 3. install the new version and drop the memtable from the read set;
//! 4. retire the WAL segments below `log_number` and delete the tables no
//!    live version refers to.
//!
//! A crash between any two steps loses nothing: until step 2 is durable the
//! WAL still holds the data (and the table is an orphan deleted at the next
//! open); after it, the table does. A failure in steps 1–2 puts the
//! database in read-only mode; the memtable stays readable.

use std::sync::Arc;
use std::time::Instant;

use kevo_core::Cursor as _;
use kevo_manifest::{TableMeta, VersionEdit, table_file_name};
use kevo_sstable::{TableOptions, TableWriter};

use crate::db::{Immutable, Shared};
use crate::error::{Error, Result};
use crate::lock;

/// Whether a compaction thread exists to bring L0 down. Until compaction
/// lands, the L0 triggers are not applied: nothing would ever bring L0
/// below them, so a delay would be permanent and a wait endless. Writers
/// still wait for immutable memtables to flush.
pub(crate) const COMPACTION_RUNS: bool = false;

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

fn background_loop(shared: &Shared) {
    loop {
        let job = {
            let mut bg = lock(&shared.bg);
            loop {
                if bg.shutdown {
                    return;
                }
                if !bg.flushing
                    && shared.bg_error.get().is_none()
                    && let Some(imm) = lock(&shared.mem).imms.front().cloned()
                {
                    bg.flushing = true;
                    break imm;
                }
                bg = shared.bg_cv.wait(bg).unwrap_or_else(|e| e.into_inner());
            }
        };
        let id = job.id;
        let result = flush_memtable(shared, job);
        {
            let mut bg = lock(&shared.bg);
            bg.flushing = false;
            if result.is_ok() {
                bg.flushed_id = Some(id);
            }
        }
        if let Err(e) = result {
            shared.set_background_error(e);
        }
        shared.bg_cv.notify_all();
    }
}

/// Table options for new tables.
pub(crate) fn table_options(shared: &Shared) -> TableOptions {
    TableOptions {
        block_bytes_target: shared.options.block_bytes,
        compression: shared.options.compression,
        bloom_bits_per_key: shared.options.bloom_bits_per_key,
        ..TableOptions::default()
    }
}

/// Flushes `imm` (the oldest immutable memtable) to an L0 table.
fn flush_memtable(shared: &Shared, imm: Immutable) -> Result<()> {
    let started = Instant::now();
    let span = tracing::info_span!("kevo.flush", memtable = imm.id);
    let _entered = span.enter();
    let mut edit = VersionEdit {
        log_number: Some(imm.next_log),
        last_seqno: Some(
            shared
                .visible_seqno
                .load(std::sync::atomic::Ordering::Acquire),
        ),
        ..VersionEdit::default()
    };
    let mut written = None;
    if !imm.table.is_empty() {
        let number = shared.versions.new_file_number();
        let meta = write_table(shared, &imm, number).inspect_err(|_| {
            // The partial file is an orphan either way; try to tidy now.
            let _ = shared
                .fs
                .remove_file(&shared.dir.join(table_file_name(number)));
        })?;
        written = Some((meta.file_size, meta.entries));
        edit.added.push((0, meta));
    }
    let version = shared.versions.log_and_apply(edit)?;
    {
        let mut state = lock(&shared.mem);
        if state.imms.front().map(|front| front.id) == Some(imm.id) {
            state.imms.pop_front();
        }
        state.version = version;
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
    retire_files(shared, imm.next_log);
    Ok(())
}

fn write_table(shared: &Shared, imm: &Immutable, number: u64) -> Result<TableMeta> {
    let path = shared.dir.join(table_file_name(number));
    let mut writer = TableWriter::create(shared.fs.as_ref(), &path, table_options(shared))?;
    let mut cursor = imm.table.cursor();
    cursor.seek_to_first()?;
    while cursor.valid() {
        writer.add(cursor.key(), cursor.value())?;
        cursor.next()?;
    }
    let meta = writer.finish()?;
    shared
        .fs
        .sync_dir(&shared.dir)
        .map_err(|e| Error::io(format!("syncing directory {}", shared.dir.display()), e))?;
    Ok(TableMeta {
        number,
        file_size: meta.file_size,
        smallest: meta.smallest_key,
        largest: meta.largest_key,
        smallest_seqno: meta.smallest_seqno,
        largest_seqno: meta.largest_seqno,
        entries: meta.entry_count,
        tombstones: meta.tombstone_count,
    })
}

/// Retires WAL segments below `log_number` and deletes obsolete tables.
/// Failures here lose nothing (the files are orphans, deleted at the next
/// open), so they are logged, not fatal.
pub(crate) fn retire_files(shared: &Shared, log_number: u64) {
    {
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
