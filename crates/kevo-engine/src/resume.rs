//! Lifting a background error without reopening:
//! [`Db::resume`](crate::Db::resume), and an automatic retry with back-off
//! when the cause is a full disk (RocksDB's auto-recovery from
//! out-of-space).
//!
//! Resuming repairs what the failure left unusable, under the writer mutex
//! (no write runs meanwhile), then lets writes and background work go on:
//! - the manifest, after a failed write or sync: a fresh one holding the
//!   in-memory state ([`kevo_manifest::VersionSet::recover_from_failure`]);
//! - the WAL, after a failed write or rotation: cut back to its last
//!   complete record, its gathered appends written again
//!   ([`kevo_wal::Wal::resume`]). After a failed WAL *fsync* the database
//!   cannot resume (the outcome of an fsync is never guessed): reopen it;
//! - a failed flush: the memtables waiting for one are flushed before
//!   writes are let in, so that while the disk is still full an attempt
//!   fails again and changes nothing (RocksDB's recovery flush).
//!
//! Nothing acknowledged is lost on the way: acknowledged writes are in the
//! memtables and in the WAL (the gathered ones included), and no edit that
//! failed was ever installed.

use std::time::Instant;

use kevo_core::SeqNo;

use kevo_core::KeyspaceId;

use crate::engine::Engine;
use crate::error::{Error, Result, from_wal};
use crate::flush;
use crate::schedule::{AUTO_RESUME_WAIT_MIN, auto_resume_wait};
use crate::write::wait_for_flushed;

/// `Db::resume`: lifts the background error (see the module docs), then
/// waits until the memtables that were waiting for a flush are flushed,
/// so that `Ok` means the database works again.
///
/// # Errors
/// The error of the step that failed again (the database stays
/// read-only); [`Error::ReadOnly`] with [`Error::OpenedReadOnly`] for a
/// database opened read-only; [`Error::Closed`].
pub(crate) fn resume(engine: &Engine) -> Result<()> {
    engine.life.check_open()?;
    let target = {
        let writer = engine.commit.writer();
        resume_locked(engine, &writer)?
    };
    wait_for_flushed(engine, &target)
}

/// Lifts the background error if it can, with the writer mutex held (the
/// guard's seqno). Returns, per keyspace, the id of the newest memtable
/// waiting for a flush, if the database was read-only.
fn resume_locked(engine: &Engine, _writer: &SeqNo) -> Result<Vec<(KeyspaceId, u64)>> {
    engine.life.check_open()?;
    let Some(cause) = engine.life.background_error() else {
        return Ok(Vec::new());
    };
    if engine.life.is_opened_read_only() {
        // Nothing failed: nothing to resume.
        return Err(Error::ReadOnly { cause });
    }
    let _span = tracing::info_span!("kevo.resume", cause = %cause).entered();
    engine
        .versions()
        .map_err(|cause| Error::ReadOnly { cause })?
        .recover_from_failure()?;
    engine
        .with_wal(|wal| wal.resume())?
        .map_err(|e| from_wal(&engine.dir, e))?;
    flush_waiting(engine)?;
    {
        let mut state = engine.jobs.state();
        state.resume_attempts = 0;
        state.resume_at = None;
        state.compaction_failures = 0;
        state.retry_at = None;
    }
    engine.life.clear_background_error();
    engine.counters.record_resume();
    tracing::info!(%cause, "resumed: the database takes writes again");
    engine.jobs.notify();
    Ok(engine.keyspaces.newest_immutables())
}

/// Flushes the immutable memtables waiting for a flush, oldest first,
/// while writes are still refused. Leaves them to the flush already
/// running, if one is.
fn flush_waiting(engine: &Engine) -> Result<()> {
    loop {
        let imm = {
            let mut state = engine.jobs.state();
            if state.flushing {
                return Ok(());
            }
            let Some((keyspace, imm)) = engine.keyspaces.oldest_immutable() else {
                return Ok(());
            };
            state.flushing = true;
            (keyspace, imm)
        };
        flush::run_claimed(engine, &imm.0, &imm.1)?;
    }
}

/// An automatic resume attempt, from a background thread whose turn it
/// is; a failure schedules the next one. It never waits for the writer
/// mutex: `close` holds it while it joins the background threads.
pub(crate) fn auto_resume(engine: &Engine) {
    let Some(writer) = engine.commit.try_writer() else {
        let mut state = engine.jobs.state();
        if !engine.life.is_closed() {
            state.resume_at = Some(Instant::now() + AUTO_RESUME_WAIT_MIN);
        }
        return;
    };
    if let Err(e) = resume_locked(engine, &writer) {
        let mut state = engine.jobs.state();
        state.resume_attempts = state.resume_attempts.saturating_add(1);
        let wait = auto_resume_wait(state.resume_attempts);
        if engine.life.background_error().is_some() && !engine.life.is_closed() {
            state.resume_at = Some(Instant::now() + wait);
        }
        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "automatic resume failed");
    }
}
