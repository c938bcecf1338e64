//! The write path: one queue, one group leader at a time.
//!
//! A writer enqueues its batch and waits. The writer at the front of the
//! queue, when no leader is active, becomes the leader: it takes every
//! waiting batch (up to [`GROUP_BYTES_MAX`]), and under the writer mutex
//! makes room in the memtable (switching it, or stalling, as needed),
//! assigns consecutive seqnos, appends the group to the WAL as **one**
//! record, syncs if any member asked for it, inserts the entries into the
//! memtable, and publishes the last seqno as visible. Then it hands each
//! member its result and wakes the next leader.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use kevo_core::{SEQNO_MAX, SeqNo};
use kevo_memtable::MemTable;
use kevo_wal::{Batch, SyncMode};

use crate::db::{Immutable, Shared};
use crate::error::{Error, Result, from_wal};
use crate::lock;

/// A leader stops adding batches to its group past this many bytes, so that
/// one huge group does not delay a small synced write for long.
pub(crate) const GROUP_BYTES_MAX: usize = 1 << 20;

/// Clears `leader_active` if the leader unwinds.
struct LeaderGuard<'a> {
    shared: &'a Shared,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.queue).leader_active = false;
        self.shared.queue_cv.notify_all();
    }
}

/// Writers waiting for a leader.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    next_ticket: u64,
    waiting: VecDeque<Pending>,
    /// Results for writers whose batch a leader wrote.
    done: HashMap<u64, std::result::Result<(), Arc<Error>>>,
    leader_active: bool,
    /// Writers blocked on the condition variable: a leader wakes them only
    /// if there are any (a wake-up is a system call even with no waiter).
    sleepers: usize,
}

#[derive(Debug)]
struct Pending {
    ticket: u64,
    batch: Batch,
    sync: bool,
    /// A transaction's commit: checked for conflicts under the writer
    /// mutex, alone in its group.
    txn: Option<TxnCheck>,
}

/// What a committing transaction read and writes, to check against the
/// commits after its snapshot.
#[derive(Debug)]
pub(crate) struct TxnCheck {
    pub(crate) snapshot: SeqNo,
    pub(crate) reads: kevo_txn::ReadSet,
    pub(crate) writes: Vec<bytes::Bytes>,
}

impl Shared {
    /// Writes `batch` through the queue (see the module documentation).
    pub(crate) fn write(&self, batch: Batch, sync: bool) -> Result<()> {
        self.write_checked(batch, sync, None)
    }

    /// Writes `batch`; with `txn`, only if the transaction does not
    /// conflict with a commit after its snapshot (`Error::Conflict`).
    pub(crate) fn write_checked(
        &self,
        batch: Batch,
        sync: bool,
        txn: Option<TxnCheck>,
    ) -> Result<()> {
        self.check_writable()?;
        batch.check_limits().map_err(Error::InvalidArgument)?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut queue = lock(&self.queue);
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push_back(Pending {
            ticket,
            batch,
            sync,
            txn,
        });
        loop {
            if let Some(result) = queue.done.remove(&ticket) {
                return result.map_err(|shared| match &*shared {
                    Error::Closed => Error::Closed,
                    Error::ReadOnly { cause } => Error::ReadOnly {
                        cause: cause.clone(),
                    },
                    Error::InvalidArgument(message) => Error::InvalidArgument(message.clone()),
                    _ => Error::ReadOnly { cause: shared },
                });
            }
            let at_front = queue.waiting.front().is_some_and(|p| p.ticket == ticket);
            if at_front && !queue.leader_active {
                break;
            }
            queue.sleepers += 1;
            queue = self.queue_cv.wait(queue).unwrap_or_else(|e| e.into_inner());
            queue.sleepers -= 1;
        }
        // Leader: take the group.
        queue.leader_active = true;
        let mut group = Vec::new();
        let mut bytes = 0;
        while let Some(next) = queue.waiting.front() {
            let size = next.batch.as_bytes().len();
            // A transaction's commit is checked on its own: it leads a
            // group of one, and ends no one else's group.
            let alone =
                next.txn.is_some() || group.first().is_some_and(|p: &Pending| p.txn.is_some());
            if !group.is_empty() && (bytes + size > GROUP_BYTES_MAX || alone) {
                break;
            }
            bytes += size;
            if let Some(pending) = queue.waiting.pop_front() {
                group.push(pending);
            }
        }
        drop(queue);

        // If the leader's work panics, the guard still hands leadership on,
        // so that the other writers do not wait forever.
        let guard = LeaderGuard { shared: self };
        let result = self.write_group(&mut group);
        std::mem::forget(guard);

        let mut queue = lock(&self.queue);
        // What the other members of the group get: the same error, shared.
        let shared_result = result.as_ref().map(|_| ()).map_err(|e| match e {
            Error::Closed => Arc::new(Error::Closed),
            Error::ReadOnly { cause } => Arc::new(Error::ReadOnly {
                cause: cause.clone(),
            }),
            Error::InvalidArgument(message) => Arc::new(Error::InvalidArgument(message.clone())),
            other => self.bg_error.get().unwrap_or_else(|| {
                Arc::new(Error::io(
                    "writing",
                    std::io::Error::other(other.to_string()),
                ))
            }),
        });
        for member in group.iter().skip(1) {
            queue.done.insert(member.ticket, shared_result.clone());
        }
        queue.leader_active = false;
        let wake = queue.sleepers > 0;
        drop(queue);
        if wake {
            self.queue_cv.notify_all();
        }
        result
    }

    /// The leader's work for one group, under the writer mutex.
    fn write_group(&self, group: &mut [Pending]) -> Result<()> {
        let mut last_seqno = lock(&self.writer);
        // Checked again under the writer mutex: `close` takes it first.
        self.check_writable()?;
        let bytes = group.iter().map(|p| p.batch.as_bytes().len()).sum();
        self.make_room(bytes, *last_seqno)?;
        let count: u64 = group.iter().map(|p| p.batch.len() as u64).sum();
        let first = *last_seqno + 1;
        if first.saturating_add(count) > SEQNO_MAX {
            return Err(Error::InvalidArgument(
                "sequence numbers are exhausted".to_string(),
            ));
        }
        let sync = group.iter().any(|p| p.sync);
        if let Some(check) = group.first().and_then(|p| p.txn.as_ref()) {
            let tracker = lock(&self.tracker);
            tracker
                .check(check.snapshot, &check.reads, &check.writes)
                .map_err(|conflict| crate::txn::conflict_error(&conflict, check.snapshot))?;
        }
        let (head, rest) = group.split_first_mut().ok_or(Error::Closed)?;
        let combined = &mut head.batch;
        for member in rest.iter() {
            combined.extend(&member.batch);
        }
        combined.set_seqno(first);
        combined.check_limits().map_err(Error::InvalidArgument)?;

        {
            let wal = self.wal.read().unwrap_or_else(|e| e.into_inner());
            let wal = wal.as_ref().ok_or(Error::Closed)?;
            let appended = wal.append(combined).and_then(|_| {
                if sync && self.options.sync_mode != SyncMode::Always {
                    wal.sync()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = appended {
                // The WAL is poisoned: nothing more can be made durable.
                let e = from_wal(&self.dir, e);
                let cause = self.set_background_error(e);
                return Err(Error::ReadOnly { cause });
            }
        }
        let mem = lock(&self.mem).mem.clone();
        let mut user_bytes = 0u64;
        for (i, entry) in combined.iter().enumerate() {
            mem.insert(entry.key, first + i as u64, entry.kind, entry.value);
            user_bytes += (entry.key.len() + entry.value.len()) as u64;
        }
        let last = first + count - 1;
        *last_seqno = last;
        {
            // Recorded for open transactions' conflict checks, and made
            // visible, under the tracker mutex: a transaction beginning now
            // either sees this write in its snapshot or finds it recorded.
            let mut tracker = lock(&self.tracker);
            if tracker.has_active() {
                let keys: Vec<bytes::Bytes> = combined
                    .iter()
                    .map(|e| bytes::Bytes::copy_from_slice(e.key))
                    .collect();
                tracker.record(last, keys);
            }
            self.visible_seqno.store(last, Ordering::Release);
        }
        self.counters
            .record_write_group(group.len() as u64, count, user_bytes);
        Ok(())
    }

    /// Makes room for a write of `bytes`: switches a full memtable, delays
    /// writes while compaction falls behind (L0 tables or pending bytes past
    /// the slowdown limits), and waits while immutable memtables, or L0
    /// tables and pending bytes past the stop limits, pile up. Called with
    /// the writer mutex held; `last_seqno` is the last seqno assigned.
    fn make_room(&self, bytes: usize, last_seqno: SeqNo) -> Result<()> {
        let mut slowed = false;
        let compacting = self.options.auto_compactions;
        loop {
            self.check_writable()?;
            let (mem_bytes, imm_count, l0, pending) = {
                let state = lock(&self.mem);
                (
                    state.mem.approximate_bytes(),
                    state.imms.len(),
                    state.version.level(0).len(),
                    state.pending_compaction_bytes,
                )
            };
            let behind = l0 >= self.options.l0_slowdown_trigger
                || pending >= self.options.pending_compaction_bytes_slowdown;
            if compacting && behind && !slowed {
                // Delayed writes: about DELAYED_WRITE_BYTES_PER_MS of writes
                // per millisecond while compaction catches up, rather than
                // stopping anyone.
                let debt = self
                    .delayed_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed)
                    + bytes as u64;
                if debt >= Self::DELAYED_WRITE_BYTES_PER_MS {
                    self.delayed_bytes.store(0, Ordering::Relaxed);
                    let started = Instant::now();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    self.counters.record_stall(started.elapsed(), false);
                }
                slowed = true;
                continue;
            }
            if mem_bytes < self.options.memtable_bytes {
                return Ok(());
            }
            if imm_count >= self.options.max_immutable_memtables {
                self.wait_for_flush(|bg_state| {
                    let state = lock(&self.mem);
                    let _ = bg_state;
                    state.imms.len() < self.options.max_immutable_memtables
                })?;
                continue;
            }
            let stopped = l0 >= self.options.l0_stop_trigger
                || pending >= self.options.pending_compaction_bytes_stop;
            if compacting && stopped {
                self.wait_for_flush(|_| {
                    let state = lock(&self.mem);
                    state.version.level(0).len() < self.options.l0_stop_trigger
                        && state.pending_compaction_bytes
                            < self.options.pending_compaction_bytes_stop
                })?;
                continue;
            }
            self.switch_memtable(last_seqno)?;
            return Ok(());
        }
    }

    /// Blocks (counting the stall) until `ready` holds, re-checking it each
    /// time a background job ends.
    fn wait_for_flush(&self, ready: impl Fn(&crate::db::BgState) -> bool) -> Result<()> {
        let started = Instant::now();
        let mut bg = lock(&self.bg);
        while !ready(&bg) {
            if let Some(cause) = self.bg_error.get() {
                return Err(Error::ReadOnly { cause });
            }
            if bg.shutdown || self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            bg = self
                .bg_cv
                .wait_timeout(bg, std::time::Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(bg);
        self.counters.record_stall(started.elapsed(), true);
        Ok(())
    }

    /// Freezes the memtable (if it holds anything) and starts a new WAL
    /// segment for its successor; wakes the flush thread. Returns the id of
    /// the newest immutable memtable, if any. Called with the writer mutex
    /// held; `last_seqno` is the last seqno assigned (the memtable holds
    /// every write up to it).
    pub(crate) fn switch_memtable(&self, last_seqno: SeqNo) -> Result<Option<u64>> {
        {
            let state = lock(&self.mem);
            if state.mem.is_empty() {
                return Ok(state.imms.back().map(|imm| imm.id));
            }
        }
        let next_log = {
            let wal = self.wal.read().unwrap_or_else(|e| e.into_inner());
            let wal = wal.as_ref().ok_or(Error::Closed)?;
            match wal.rotate() {
                Ok(segment) => segment,
                Err(e) => {
                    let cause = self.set_background_error(from_wal(&self.dir, e));
                    return Err(Error::ReadOnly { cause });
                }
            }
        };
        let id = {
            let mut state = lock(&self.mem);
            let id = state.next_imm_id;
            state.next_imm_id += 1;
            let frozen = std::mem::replace(&mut state.mem, Arc::new(MemTable::new()));
            state.imms.push_back(Immutable {
                table: frozen,
                id,
                next_log,
                last_seqno,
            });
            self.publish(&state);
            id
        };
        tracing::debug!(id, next_log, "memtable switched");
        // Taking `bg` orders this wake-up after any background thread's
        // check of the immutable list: none can miss it.
        drop(lock(&self.bg));
        self.bg_cv.notify_all();
        Ok(Some(id))
    }

    /// `Db::flush`: freeze the memtable and wait until it and every older
    /// immutable memtable are in tables.
    pub(crate) fn flush(&self) -> Result<()> {
        self.check_writable()?;
        let target = {
            let writer = lock(&self.writer);
            self.check_writable()?;
            self.switch_memtable(*writer)?
        };
        let Some(target) = target else {
            return Ok(());
        };
        self.wait_for_flushed(target)
    }

    /// Waits until immutable memtable `target` and every older one are in
    /// tables.
    pub(crate) fn wait_for_flushed(&self, target: u64) -> Result<()> {
        let mut bg = lock(&self.bg);
        loop {
            if bg.flushed_id.is_some_and(|id| id >= target) {
                return Ok(());
            }
            if let Some(cause) = self.bg_error.get() {
                return Err(Error::ReadOnly { cause });
            }
            if bg.shutdown {
                return Err(Error::Closed);
            }
            bg = self
                .bg_cv
                .wait_timeout(bg, std::time::Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
