//! The write side over the engine: [`CommitEnv`] for the commit pipeline
//! (the WAL append, the memtable insert, publishing), the stalls that make
//! room in the memtable, memtable switches, and `Db::flush`.
//!
//! Stalls, checked by every group leader before it writes:
//! - compaction behind (L0 tables or pending bytes past the slowdown
//!   limits): each group is delayed so that writes go at about
//!   [`Options::delayed_write_rate`](crate::Options::delayed_write_rate),
//!   rather than stopping anyone;
//! - the memtable full: it is switched for an empty one (the frozen one is
//!   flushed in the background), unless the immutable memtables, or L0
//!   tables and pending bytes past the stop limits, pile up: then writers
//!   wait for the background jobs.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kevo_core::SeqNo;
use kevo_wal::{Batch, SyncMode};

use crate::commit::{CommitEnv, TxnCheck};
use crate::engine::Engine;
use crate::error::{Conflict, Error, Result, from_wal};
use crate::read::Pressure;
use crate::sync::lock;

/// Writes `batch` through the commit pipeline; with `txn`, only if the
/// transaction does not conflict.
///
/// # Errors
/// See [`Db::write`](crate::Db::write); [`Error::Conflict`] for `txn`.
pub(crate) fn write(
    engine: &Engine,
    batch: Batch,
    sync: bool,
    txn: Option<TxnCheck>,
) -> Result<()> {
    engine.commit.commit(engine, batch, sync, txn)
}

impl CommitEnv for Engine {
    fn check_writable(&self) -> Result<()> {
        self.life.check_writable()
    }

    fn make_room(&self, bytes: usize, last_seqno: SeqNo) -> Result<()> {
        let options = &self.options;
        let compacting = options.auto_compactions;
        let mut slowed = false;
        loop {
            self.life.check_writable()?;
            let pressure = self.read.pressure();
            let behind = pressure.l0_tables >= options.l0_slowdown_trigger
                || pressure.pending_compaction_bytes >= options.pending_compaction_bytes_slowdown;
            if compacting && behind && !slowed {
                delay(self, bytes);
                slowed = true;
                continue;
            }
            if pressure.memtable_bytes < options.memtable_bytes {
                return Ok(());
            }
            if pressure.immutables >= options.max_immutable_memtables {
                stall(self, |p| p.immutables < options.max_immutable_memtables)?;
                continue;
            }
            let stopped = pressure.l0_tables >= options.l0_stop_trigger
                || pressure.pending_compaction_bytes >= options.pending_compaction_bytes_stop;
            if compacting && stopped {
                stall(self, |p| {
                    p.l0_tables < options.l0_stop_trigger
                        && p.pending_compaction_bytes < options.pending_compaction_bytes_stop
                })?;
                continue;
            }
            switch_memtable(self, last_seqno)?;
            return Ok(());
        }
    }

    fn check_conflicts(&self, txn: &TxnCheck) -> Result<()> {
        lock(&self.tracker)
            .check(txn.snapshot, &txn.reads, &txn.writes)
            .map_err(|conflict| Error::Conflict(Conflict::new(conflict, txn.snapshot)))
    }

    fn make_read_only(&self, cause: Error) -> Error {
        self.read_only(cause)
    }

    fn append(&self, batch: &Batch, sync: bool) -> Result<()> {
        let sync_now = sync && self.options.sync_mode != SyncMode::Always;
        let appended = self.with_wal(|wal| {
            wal.append(batch)
                .and_then(|_| if sync_now { wal.sync() } else { Ok(()) })
        })?;
        // The WAL is poisoned: nothing more can be made durable.
        appended.map_err(|e| self.read_only(from_wal(&self.dir, e)))
    }

    fn apply(&self, batch: &Batch) -> u64 {
        let mem = self.read.memtable();
        let first = batch.seqno();
        let mut user_bytes = 0u64;
        for (i, entry) in batch.iter().enumerate() {
            mem.insert(entry.key, first + i as u64, entry.kind, entry.value);
            user_bytes += (entry.key.len() + entry.value.len()) as u64;
        }
        user_bytes
    }

    fn publish(&self, batch: &Batch, last: SeqNo, batches: usize, user_bytes: u64) {
        {
            // Recorded for open transactions' conflict checks, and made
            // visible, under the tracker mutex: a transaction beginning now
            // either sees this write in its snapshot or finds it recorded.
            let mut tracker = lock(&self.tracker);
            if tracker.has_active() {
                let keys: Vec<bytes::Bytes> = batch
                    .iter()
                    .map(|e| bytes::Bytes::copy_from_slice(e.key))
                    .collect();
                tracker.record(last, keys);
            }
            self.visibility.publish(last);
        }
        self.counters
            .record_write_group(batches as u64, batch.len() as u64, user_bytes);
    }
}

/// Delays a write of `bytes` while compaction is behind: one 1 ms sleep per
/// `delayed_write_rate / 1000` bytes written by all writers together.
fn delay(engine: &Engine, bytes: usize) {
    let bytes_per_ms = (engine.options.delayed_write_rate / 1000).max(1);
    let debt = engine
        .delayed_bytes
        .fetch_add(bytes as u64, Ordering::Relaxed)
        + bytes as u64;
    if debt >= bytes_per_ms {
        engine.delayed_bytes.store(0, Ordering::Relaxed);
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(1));
        engine.counters.record_stall(started.elapsed(), false);
    }
}

/// Blocks (counting the stall) until `ready` holds for the read state's
/// pressure.
fn stall(engine: &Engine, ready: impl Fn(Pressure) -> bool) -> Result<()> {
    let started = Instant::now();
    engine.jobs.wait_until(&engine.life, |_| {
        ready(engine.read.pressure()).then_some(())
    })?;
    engine.counters.record_stall(started.elapsed(), true);
    Ok(())
}

/// Freezes the memtable (if it holds anything) and starts a new WAL
/// segment for its successor; wakes the flush thread. Returns the id of
/// the newest immutable memtable, if any. Called with the writer mutex
/// held; `last_seqno` is the last seqno assigned (the memtable holds every
/// write up to it).
///
/// # Errors
/// The WAL rotation failed: the database is now read-only.
fn switch_memtable(engine: &Engine, last_seqno: SeqNo) -> Result<Option<u64>> {
    if engine.read.memtable_is_empty() {
        return Ok(engine.read.newest_immutable_id());
    }
    let next_log = engine
        .with_wal(|wal| wal.rotate())?
        .map_err(|e| engine.read_only(from_wal(&engine.dir, e)))?;
    let id = engine.read.freeze(next_log, last_seqno);
    tracing::debug!(id, next_log, "memtable switched");
    engine.jobs.notify();
    Ok(Some(id))
}

/// `Db::flush`: freezes the memtable and waits until it and every older
/// immutable memtable are in tables.
///
/// # Errors
/// [`Error::ReadOnly`]; [`Error::Closed`].
pub(crate) fn flush(engine: &Engine) -> Result<()> {
    engine.life.check_writable()?;
    let target = {
        let writer = engine.commit.writer();
        engine.life.check_writable()?;
        switch_memtable(engine, *writer)?
    };
    match target {
        Some(target) => wait_for_flushed(engine, target),
        None => Ok(()),
    }
}

/// Waits until immutable memtable `target` and every older one are in
/// tables.
///
/// # Errors
/// [`Error::ReadOnly`]; [`Error::Closed`].
pub(crate) fn wait_for_flushed(engine: &Engine, target: u64) -> Result<()> {
    engine.jobs.wait_until(&engine.life, |state| {
        state.flushed_id.filter(|&id| id >= target).map(|_| ())
    })
}
