//! The write side over the engine: [`CommitEnv`] for the commit pipeline
//! (the WAL append, the memtable insert, publishing), the stalls that make
//! room in the memtable, memtable switches, and `Db::flush`.
//!
//! Stalls, checked by every group leader before it writes:
//! - compaction behind (L0 tables or pending bytes past the slowdown
//!   limits): each group is delayed so that writes go at about
//!   [`Options::delayed_write_rate`](crate::Options::delayed_write_rate),
//!   rather than stopping anyone; so is each group while every immutable
//!   memtable slot is taken (the memtables at their share of memory);
//! - the memtable full: it is switched for an empty one (the frozen one is
//!   flushed in the background), unless the immutable memtables, or L0
//!   tables and pending bytes past the stop limits, pile up: then writers
//!   wait for the background jobs.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::sync::Arc;

use kevo_core::{KeyspaceId, SeqNo};
use kevo_memtable::MemTable;
use kevo_wal::{Batch, SyncMode};

use crate::commit::{CommitEnv, TxnCheck};
use crate::engine::Engine;
use crate::error::{Conflict, Error, Result, from_wal};
use crate::keyspace::{GroupKeyspaces, KeyspaceCore};
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

    fn make_room(&self, batch: &Batch, last_seqno: SeqNo) -> Result<()> {
        let bytes = batch.as_bytes().len();
        if !batch.has_other_keyspaces() {
            // The default keyspace alone: no lookup, nothing for `apply`.
            if !batch.is_empty() {
                make_room_in(self, self.keyspaces.default(), bytes, last_seqno)?;
            }
            limit_write_buffer(self, last_seqno)?;
            return limit_wal(self, last_seqno);
        }
        // The group's keyspaces, with their memtables, for `apply` (the
        // writer mutex is held from this call to that one). The vector is
        // reused from group to group: no allocation on the write path.
        let mut group = std::mem::take(&mut *lock(&self.group_keyspaces));
        group.clear();
        touched(self, batch, &mut group)?;
        for (keyspace, memtable, switches) in &mut group {
            *memtable = make_room_in(self, keyspace, bytes, last_seqno)?;
            *switches = keyspace.switches.load(Ordering::Relaxed);
        }
        limit_write_buffer(self, last_seqno)?;
        limit_wal(self, last_seqno)?;
        // A memtable switched since it was taken (by its own room or by a
        // limit) is asked for again: the group must write to the new one,
        // never to one already frozen for a flush.
        for (keyspace, memtable, switches) in &mut group {
            if memtable.is_none() || keyspace.switches.load(Ordering::Relaxed) != *switches {
                *memtable = Some(keyspace.read.memtable());
            }
        }
        *lock(&self.group_keyspaces) = group;
        Ok(())
    }

    fn check_conflicts(&self, txn: &TxnCheck) -> Result<()> {
        lock(&self.tracker)
            .check_with_ranges(txn.snapshot, &txn.reads, &txn.writes, &txn.range_writes)
            .map_err(|conflict| Error::Conflict(Conflict::new(conflict, txn.snapshot)))
    }

    fn make_read_only(&self, cause: Error) -> Error {
        self.read_only(cause)
    }

    fn append(&self, batch: &Batch, sync: bool) -> Result<()> {
        let sync_now = sync && self.options.sync_mode != SyncMode::Always;
        let appended = self.with_wal(|wal| {
            if sync_now {
                wal.append_sync(batch).map(|_| ())
            } else {
                wal.append(batch).map(|_| ())
            }
        })?;
        if appended.is_ok() {
            self.wal_bytes
                .fetch_add(batch.as_bytes().len() as u64, Ordering::Relaxed);
        }
        // The WAL is poisoned: nothing more can be made durable.
        appended.map_err(|e| self.read_only(from_wal(&self.dir, e)))
    }

    fn apply(&self, batch: &Batch) -> u64 {
        let first = batch.seqno();
        let mut user_bytes = 0u64;
        if !batch.has_other_keyspaces() {
            let mem = self.keyspaces.default().read.memtable();
            for (i, entry) in batch.iter().enumerate() {
                insert(&mem, &entry, first + i as u64);
                user_bytes += (entry.key.len() + entry.value.len()) as u64;
            }
            return user_bytes;
        }
        // `make_room` found every keyspace of the batch and its memtable,
        // under the same writer mutex: none can be dropped or switched in
        // between.
        let group = lock(&self.group_keyspaces);
        for (i, entry) in batch.iter().enumerate() {
            let found = group.iter().find(|(k, _, _)| k.id == entry.keyspace);
            let Some((_, Some(mem), _)) = found else {
                continue;
            };
            insert(mem, &entry, first + i as u64);
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
                let mut keys: Vec<bytes::Bytes> = Vec::with_capacity(batch.len());
                let mut ranges = Vec::new();
                for e in batch.iter() {
                    let key = crate::error::conflict_key(e.keyspace, e.key);
                    match e.kind {
                        kevo_wal::EntryKind::RangeDelete => {
                            ranges.push((key, crate::error::conflict_key(e.keyspace, e.value)));
                        }
                        _ => keys.push(key),
                    }
                }
                tracker.record_with_ranges(last, keys, ranges);
            }
            self.visibility.publish(last);
        }
        self.counters
            .record_write_group(batches as u64, batch.len() as u64, user_bytes);
    }
}

/// Puts one batch entry with its seqno into `mem`.
fn insert(mem: &MemTable, entry: &kevo_wal::BatchEntry<'_>, seqno: SeqNo) {
    match entry.kind.value_kind() {
        Some(kind) => mem.insert(entry.key, seqno, kind, entry.value),
        None => mem.delete_range(entry.key, entry.value, seqno),
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

/// Adds the keyspaces `batch` writes to, each once, to `group`.
///
/// # Errors
/// [`Error::InvalidArgument`] for a keyspace that was dropped (or never
/// existed): nothing of the batch is written.
fn touched(engine: &Engine, batch: &Batch, group: &mut GroupKeyspaces) -> Result<()> {
    for entry in batch.iter() {
        if group.iter().any(|(k, _, _)| k.id == entry.keyspace) {
            continue;
        }
        let core = engine
            .keyspaces
            .get(entry.keyspace)
            .filter(|core| !core.is_dropped())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "keyspace {} was dropped: the batch was not written",
                    entry.keyspace
                ))
            })?;
        group.push((core, None, 0));
    }
    Ok(())
}

/// Makes room for `bytes` more in `keyspace`'s memtable: delays writes
/// while its compaction is behind, switches a full memtable, and waits
/// while its immutable memtables or L0 tables pile up.
/// Returns the memtable the group writes to, unless it was just switched
/// (then the caller asks the read state).
fn make_room_in(
    engine: &Engine,
    keyspace: &Arc<KeyspaceCore>,
    bytes: usize,
    last_seqno: SeqNo,
) -> Result<Option<Arc<MemTable>>> {
    let settings = keyspace.settings();
    let options = &settings.options;
    let compacting = options.auto_compactions;
    let mut slowed = false;
    loop {
        engine.life.check_writable()?;
        let (pressure, memtable) = keyspace.read.room();
        let behind = pressure.l0_tables >= options.l0_slowdown_trigger
            || pressure.pending_compaction_bytes >= options.pending_compaction_bytes_slowdown;
        // Every immutable memtable slot taken: the memtables are at their
        // share of memory, and a full active one would stop writes until a
        // flush ends. Slowing them now lets the flush catch up first.
        let memtables_full = pressure.immutables >= options.max_immutable_memtables;
        if ((compacting && behind) || memtables_full) && !slowed {
            delay(engine, bytes);
            slowed = true;
            continue;
        }
        if pressure.memtable_bytes < options.memtable_bytes {
            saw(engine, keyspace, pressure.memtable_bytes as u64);
            return Ok(Some(memtable));
        }
        if pressure.immutables >= options.max_immutable_memtables {
            stall(engine, keyspace, |p| {
                p.immutables < options.max_immutable_memtables
            })?;
            continue;
        }
        let stopped = pressure.l0_tables >= options.l0_stop_trigger
            || pressure.pending_compaction_bytes >= options.pending_compaction_bytes_stop;
        if compacting && stopped {
            stall(engine, keyspace, |p| {
                p.l0_tables < options.l0_stop_trigger
                    && p.pending_compaction_bytes < options.pending_compaction_bytes_stop
            })?;
            continue;
        }
        switch_memtable(engine, keyspace, last_seqno)?;
        return Ok(None);
    }
}

/// Records `bytes` as `keyspace`'s active memtable size in the engine's
/// write buffer total (writer mutex held).
fn saw(engine: &Engine, keyspace: &KeyspaceCore, bytes: u64) {
    let before = keyspace.seen_bytes.swap(bytes, Ordering::Relaxed);
    if bytes >= before {
        engine
            .write_buffer_bytes
            .fetch_add(bytes - before, Ordering::Relaxed);
    } else {
        engine
            .write_buffer_bytes
            .fetch_sub(before - bytes, Ordering::Relaxed);
    }
}

/// With several keyspaces: once their active memtables hold more than
/// `write_buffer_bytes` together, switches the largest and, under the same
/// WAL rotation, every other one holding at least half as much (unless a
/// keyspace's immutable memtables are at their limit: their flushes come
/// first). Writes spread evenly over many keyspaces thus switch them
/// together, as one keyspace's memtable would, instead of one small
/// memtable (and one WAL segment) at a time.
///
/// # Errors
/// As [`switch_memtables`].
fn limit_write_buffer(engine: &Engine, last_seqno: SeqNo) -> Result<()> {
    if engine.keyspaces.len() < 2 {
        return Ok(());
    }
    let limit = match engine.options.write_buffer_bytes {
        0 => engine.options.memtable_bytes as u64,
        limit => limit,
    };
    if engine.write_buffer_bytes.load(Ordering::Relaxed) <= limit {
        return Ok(());
    }
    let sized: Vec<(u64, Arc<KeyspaceCore>)> = engine
        .keyspaces
        .all()
        .into_iter()
        .filter(|k| !k.is_dropped())
        .map(|k| (k.seen_bytes.load(Ordering::Relaxed), k))
        .collect();
    let Some(largest) = sized.iter().map(|(bytes, _)| *bytes).max() else {
        return Ok(());
    };
    let room = |k: &KeyspaceCore| {
        k.read.pressure().immutables < k.settings().options.max_immutable_memtables
    };
    // The largest first: while its flushes are behind, nothing switches
    // (smaller ones would only make more, smaller tables).
    if !sized.iter().any(|(bytes, k)| *bytes == largest && room(k)) {
        return Ok(());
    }
    let chosen: Vec<&KeyspaceCore> = sized
        .iter()
        .filter(|(bytes, k)| *bytes > 0 && *bytes >= largest / 2 && room(k))
        .map(|(_, k)| &**k)
        .collect();
    tracing::debug!(
        keyspaces = chosen.len(),
        "switching the largest memtables: the write buffer is full"
    );
    switch_memtables(engine, &chosen, last_seqno).map(drop)
}

/// With several keyspaces: once the WAL from its oldest needed segment on
/// is past `max_total_wal_bytes`, switches the memtables of the keyspaces
/// that hold that segment, so that their flushes let it go (one keyspace
/// written rarely must not keep the WAL forever).
///
/// # Errors
/// As [`switch_memtable`].
fn limit_wal(engine: &Engine, last_seqno: SeqNo) -> Result<()> {
    if engine.keyspaces.len() < 2 {
        // One keyspace: its own memtable switches bound the WAL.
        return Ok(());
    }
    // Looked at again only after the WAL has grown by a sixteenth of the
    // limit since the last look: one atomic load per group otherwise.
    let written = engine.wal_bytes.load(Ordering::Relaxed);
    if written < engine.next_wal_check.load(Ordering::Relaxed) {
        return Ok(());
    }
    let keyspaces = engine.keyspaces.all();
    let max = match engine.options.max_total_wal_bytes {
        0 => keyspaces
            .iter()
            .map(|k| 4 * k.settings().options.memtable_bytes as u64)
            .sum(),
        max => max,
    };
    let firsts: Vec<(u64, &Arc<KeyspaceCore>)> = keyspaces
        .iter()
        .filter_map(|k| k.read.first_unflushed_log(None).map(|log| (log, k)))
        .collect();
    let Some(oldest) = firsts.iter().map(|(log, _)| *log).min() else {
        return Ok(());
    };
    engine
        .next_wal_check
        .store(written.saturating_add((max / 16).max(1)), Ordering::Relaxed);
    let Some(before) = engine.wal_starts.wal_bytes_before(oldest) else {
        return Ok(());
    };
    if written.saturating_sub(before) <= max {
        return Ok(());
    }
    // A keyspace whose memtable is already frozen needs only its flush.
    let holding: Vec<&KeyspaceCore> = firsts
        .iter()
        .filter(|(log, keyspace)| *log == oldest && keyspace.read.pressure().immutables == 0)
        .map(|(_, keyspace)| &***keyspace)
        .collect();
    tracing::debug!(
        keyspaces = holding.len(),
        segment = oldest,
        "flushing the keyspaces that hold the oldest WAL segment"
    );
    switch_memtables(engine, &holding, last_seqno).map(drop)
}

/// Blocks (counting the stall) until `ready` holds for `keyspace`'s
/// pressure.
fn stall(engine: &Engine, keyspace: &KeyspaceCore, ready: impl Fn(Pressure) -> bool) -> Result<()> {
    let started = Instant::now();
    engine.jobs.wait_until(&engine.life, |_| {
        ready(keyspace.read.pressure()).then_some(())
    })?;
    engine.counters.record_stall(started.elapsed(), true);
    Ok(())
}

/// Freezes `keyspace`'s memtable (if it holds anything) and starts a new
/// WAL segment for its successor; wakes the flush thread. Returns the id
/// of the keyspace's newest immutable memtable, if any. Called with the
/// writer mutex held; `last_seqno` is the last seqno assigned (the
/// memtable holds every write of the keyspace up to it).
///
/// # Errors
/// The WAL rotation failed: the database is now read-only.
fn switch_memtable(
    engine: &Engine,
    keyspace: &KeyspaceCore,
    last_seqno: SeqNo,
) -> Result<Option<u64>> {
    if keyspace.read.memtable_is_empty() {
        return Ok(keyspace.read.newest_immutable_id());
    }
    switch_memtables(engine, &[keyspace], last_seqno)
}

/// Freezes the memtable of each of `keyspaces` that holds anything, all
/// behind one new WAL segment for their successors (one rotation however
/// many switch), and wakes the flush thread. Called with the writer mutex
/// held; `last_seqno` is the last seqno assigned (each frozen memtable
/// holds every write of its keyspace up to it). Returns the id of the
/// last memtable frozen, if any.
///
/// # Errors
/// The WAL rotation failed: the database is now read-only and nothing was
/// frozen.
fn switch_memtables(
    engine: &Engine,
    keyspaces: &[&KeyspaceCore],
    last_seqno: SeqNo,
) -> Result<Option<u64>> {
    if keyspaces.iter().all(|k| k.read.memtable_is_empty()) {
        return Ok(None);
    }
    let next_log = engine
        .with_wal(|wal| wal.rotate())?
        .map_err(|e| engine.read_only(from_wal(&engine.dir, e)))?;
    let wal_bytes = engine.wal_bytes.load(Ordering::Relaxed);
    engine.wal_starts.record(next_log, last_seqno, wal_bytes);
    let mut frozen = None;
    for keyspace in keyspaces {
        if keyspace.read.memtable_is_empty() {
            continue;
        }
        let id = engine.next_imm_id.fetch_add(1, Ordering::Relaxed);
        keyspace.read.freeze(id, next_log);
        keyspace.switches.fetch_add(1, Ordering::Relaxed);
        saw(engine, keyspace, 0);
        frozen = Some(id);
        tracing::debug!(keyspace = %keyspace.name, id, next_log, "memtable switched");
    }
    engine.jobs.notify();
    Ok(frozen)
}

/// `Db::flush` and `Keyspace::flush`: freezes `keyspace`'s memtable and
/// waits until it and every older immutable memtable of the keyspace are
/// in tables.
///
/// # Errors
/// [`Error::ReadOnly`]; [`Error::Closed`].
pub(crate) fn flush(engine: &Engine, keyspace: &KeyspaceCore) -> Result<()> {
    engine.life.check_writable()?;
    let target = {
        let writer = engine.commit.writer();
        engine.life.check_writable()?;
        switch_memtable(engine, keyspace, *writer)?
    };
    match target {
        Some(target) => wait_for_flushed(engine, &[(keyspace.id, target)]),
        None => Ok(()),
    }
}

/// Waits until, for every `(keyspace, id)` of `targets`, immutable
/// memtable `id` of that keyspace and every older one are in tables (or the
/// keyspace was dropped).
///
/// # Errors
/// [`Error::ReadOnly`]; [`Error::Closed`].
pub(crate) fn wait_for_flushed(engine: &Engine, targets: &[(KeyspaceId, u64)]) -> Result<()> {
    engine.jobs.wait_until(&engine.life, |state| {
        targets
            .iter()
            .all(|(keyspace, target)| {
                state.flushed.get(keyspace).is_some_and(|id| id >= target)
                    || engine
                        .keyspaces
                        .get(*keyspace)
                        .is_none_or(|k| k.is_dropped())
            })
            .then_some(())
    })
}
