//! The write pipeline: one queue, one group leader at a time, and the
//! single-writer section every change of the write side runs in.
//!
//! A writer enqueues its batch and waits. The writer at the front of the
//! queue, when no leader is active, becomes the leader: it takes every
//! waiting batch (up to [`GROUP_BYTES_MAX`]; a transaction's commit always
//! alone) and, holding the writer mutex:
//! 1. makes room in the memtable ([`CommitEnv::make_room`]: switch it, or
//!    stall while flushes and compactions catch up);
//! 2. checks a transaction's reads and writes against the commits after its
//!    snapshot ([`CommitEnv::check_conflicts`]);
//! 3. assigns consecutive seqnos and appends the group to the WAL as **one**
//!    record, synced if any member asked ([`CommitEnv::append`]);
//! 4. inserts the entries into the memtable ([`CommitEnv::apply`]);
//! 5. makes them visible ([`CommitEnv::publish`]).
//!
//! Then it hands each member the group's result and wakes the next leader.
//! This is the engine's only group-commit layer: the WAL sees one appender
//! at a time, and a sync covers every batch that queued while the previous
//! one ran.
//!
//! The pipeline works only through [`CommitEnv`] (as Pebble's commit
//! pipeline works through its `commitEnv`), so it is tested here without a
//! database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};

use bytes::Bytes;
use kevo_core::{SEQNO_MAX, SeqNo};
use kevo_wal::Batch;

use crate::error::{Error, Result};
use crate::sync::{lock, wait};

/// A leader stops adding batches to its group past this many bytes, so that
/// one huge group does not delay a small synced write for long.
pub(crate) const GROUP_BYTES_MAX: usize = 1 << 20;

/// What a committing transaction read and writes, checked against the
/// commits after its snapshot.
#[derive(Debug)]
pub(crate) struct TxnCheck {
    pub(crate) snapshot: SeqNo,
    pub(crate) reads: kevo_txn::ReadSet,
    pub(crate) writes: Vec<Bytes>,
    /// Ranges `[start, end)` the transaction deletes (conflict keys).
    pub(crate) range_writes: Vec<(Bytes, Bytes)>,
}

/// What the pipeline needs from the rest of the engine. Every method but
/// [`CommitEnv::check_writable`] is called by the leader with the writer
/// mutex held.
pub(crate) trait CommitEnv {
    /// `Err(Closed)` or `Err(ReadOnly)` when writes are refused.
    fn check_writable(&self) -> Result<()>;

    /// Makes room for `batch` in the memtables it writes to; may wait.
    /// `last_seqno` is the last seqno assigned (the memtables hold every
    /// write up to it). Refuses a batch for a keyspace that is gone.
    fn make_room(&self, batch: &Batch, last_seqno: SeqNo) -> Result<()>;

    /// `Err(Conflict)` if a commit after `txn`'s snapshot touched what it
    /// read or writes.
    fn check_conflicts(&self, txn: &TxnCheck) -> Result<()>;

    /// Makes the database read-only because of `cause` (a write could not
    /// be made durable, or seqnos ran out); returns the error for the
    /// writers.
    fn make_read_only(&self, cause: Error) -> Error;

    /// Appends `batch` (its seqnos assigned) to the WAL, synced if `sync`.
    /// A failure must leave nothing acknowledged lost (the database goes
    /// read-only).
    fn append(&self, batch: &Batch, sync: bool) -> Result<()>;

    /// Inserts `batch`'s entries into the memtable; returns the user bytes
    /// (keys and values) inserted.
    fn apply(&self, batch: &Batch) -> u64;

    /// Makes every write up to `last` visible to reads; `batch` came from
    /// `batches` writers and holds `user_bytes` of keys and values.
    fn publish(&self, batch: &Batch, last: SeqNo, batches: usize, user_bytes: u64);
}

/// The queue, the group leader's hand-over, and the writer mutex.
#[derive(Debug)]
pub(crate) struct CommitPipeline {
    queue: Mutex<Queue>,
    queue_cv: Condvar,
    /// The single-writer section; holds the last assigned seqno.
    writer: Mutex<SeqNo>,
}

/// Writers waiting for a leader.
#[derive(Debug, Default)]
struct Queue {
    next_ticket: u64,
    waiting: VecDeque<Pending>,
    /// Results for writers whose batch a leader wrote.
    done: HashMap<u64, Result<()>>,
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
    /// A transaction's commit: checked for conflicts, alone in its group.
    txn: Option<TxnCheck>,
}

/// Hands leadership on if the leader unwinds, and gives the members of
/// its group an error instead of leaving them waiting.
struct LeaderGuard<'a> {
    pipeline: &'a CommitPipeline,
    members: Vec<u64>,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        let mut queue = lock(&self.pipeline.queue);
        for &ticket in &self.members {
            queue.done.insert(
                ticket,
                Err(Error::Internal {
                    reason: "the leader of this write's group panicked".to_string(),
                }),
            );
        }
        queue.leader_active = false;
        drop(queue);
        self.pipeline.queue_cv.notify_all();
    }
}

impl CommitPipeline {
    /// A pipeline whose last assigned seqno is `last_seqno`.
    pub(crate) fn new(last_seqno: SeqNo) -> Self {
        CommitPipeline {
            queue: Mutex::new(Queue::default()),
            queue_cv: Condvar::new(),
            writer: Mutex::new(last_seqno),
        }
    }

    /// The single-writer section: while the guard lives no group commits.
    /// It holds the last assigned seqno.
    pub(crate) fn writer(&self) -> MutexGuard<'_, SeqNo> {
        lock(&self.writer)
    }

    /// [`CommitPipeline::writer`] if no one holds it now.
    pub(crate) fn try_writer(&self) -> Option<MutexGuard<'_, SeqNo>> {
        match self.writer.try_lock() {
            Ok(writer) => Some(writer),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Wakes every queued writer (after a close, to see it).
    pub(crate) fn wake_all(&self) {
        drop(lock(&self.queue));
        self.queue_cv.notify_all();
    }

    /// Commits `batch` (see the module documentation); with `txn`, only if
    /// the transaction does not conflict.
    ///
    /// # Errors
    /// Those of `env`; [`Error::InvalidArgument`] for a batch over a limit.
    pub(crate) fn commit(
        &self,
        env: &impl CommitEnv,
        batch: Batch,
        sync: bool,
        txn: Option<TxnCheck>,
    ) -> Result<()> {
        env.check_writable()?;
        batch.check_limits().map_err(Error::InvalidArgument)?;
        if batch.is_empty() && txn.is_none() {
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
        let head = loop {
            if let Some(result) = queue.done.remove(&ticket) {
                return result;
            }
            let at_front = queue.waiting.front().is_some_and(|p| p.ticket == ticket);
            if at_front
                && !queue.leader_active
                && let Some(head) = queue.waiting.pop_front()
            {
                break head;
            }
            queue.sleepers += 1;
            queue = wait(&self.queue_cv, queue);
            queue.sleepers -= 1;
        };
        // Leader: take the group. A transaction's commit is checked on its
        // own: it leads a group of one, and ends no one else's group.
        queue.leader_active = true;
        let mut rest = Vec::new();
        let mut bytes = head.batch.as_bytes().len();
        while head.txn.is_none()
            && let Some(next) = queue.waiting.front()
        {
            let size = next.batch.as_bytes().len();
            if bytes + size > GROUP_BYTES_MAX || next.txn.is_some() {
                break;
            }
            bytes += size;
            rest.extend(queue.waiting.pop_front());
        }
        drop(queue);

        let guard = LeaderGuard {
            pipeline: self,
            members: rest.iter().map(|p| p.ticket).collect(),
        };
        let result = self.lead(env, head, &rest);
        std::mem::forget(guard);

        let mut queue = lock(&self.queue);
        for member in &rest {
            let shared = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(e.share()),
            };
            queue.done.insert(member.ticket, shared);
        }
        queue.leader_active = false;
        let wake = queue.sleepers > 0;
        drop(queue);
        if wake {
            self.queue_cv.notify_all();
        }
        result
    }

    /// The leader's work for the group `head` + `rest`, under the writer
    /// mutex.
    fn lead(&self, env: &impl CommitEnv, head: Pending, rest: &[Pending]) -> Result<()> {
        let mut last_seqno = lock(&self.writer);
        // Checked again under the writer mutex: `close` takes it first.
        env.check_writable()?;
        let mut combined = head.batch;
        for member in rest {
            combined.extend(&member.batch);
        }
        env.make_room(&combined, *last_seqno)?;
        if let Some(txn) = &head.txn {
            env.check_conflicts(txn)?;
        }
        let count = combined.len() as u64;
        if count == 0 {
            // A transaction that wrote nothing: checked, nothing to write.
            return Ok(());
        }
        let first = *last_seqno + 1;
        if first.saturating_add(count) > SEQNO_MAX {
            return Err(env.make_read_only(Error::InvalidArgument(format!(
                "sequence numbers are exhausted: {count} more would pass {SEQNO_MAX}"
            ))));
        }
        combined.set_seqno(first);
        combined.check_limits().map_err(Error::InvalidArgument)?;
        let sync = head.sync || rest.iter().any(|p| p.sync);
        env.append(&combined, sync)?;
        let user_bytes = env.apply(&combined);
        let last = first + count - 1;
        *last_seqno = last;
        env.publish(&combined, last, 1 + rest.len(), user_bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    /// Records what the pipeline asks for.
    #[derive(Default)]
    struct FakeEnv {
        /// (first seqno, batch) of every append, in order.
        appended: Mutex<Vec<(SeqNo, Batch)>>,
        /// Every group's size.
        groups: Mutex<Vec<usize>>,
        visible: AtomicU64,
        fail_appends: AtomicBool,
        read_only: Mutex<Option<String>>,
        /// `apply` panics on a batch holding this key.
        panic_on: Mutex<Option<Vec<u8>>>,
        /// Keys written by commits, with their seqno (for conflicts).
        committed: Mutex<Vec<(Bytes, SeqNo)>>,
        /// Blocks `make_room` until set, so that a group can queue.
        gate: Mutex<bool>,
        gate_cv: Condvar,
        in_make_room: AtomicU64,
    }

    impl FakeEnv {
        fn open_gate(&self) {
            *lock(&self.gate) = true;
            self.gate_cv.notify_all();
        }
    }

    impl CommitEnv for FakeEnv {
        fn check_writable(&self) -> Result<()> {
            match lock(&self.read_only).as_ref() {
                Some(cause) => Err(Error::ReadOnly {
                    cause: Arc::new(Error::InvalidArgument(cause.clone())),
                }),
                None => Ok(()),
            }
        }

        fn make_room(&self, _batch: &Batch, _last: SeqNo) -> Result<()> {
            self.in_make_room.fetch_add(1, Ordering::SeqCst);
            let mut open = lock(&self.gate);
            while !*open {
                open = wait(&self.gate_cv, open);
            }
            Ok(())
        }

        fn check_conflicts(&self, txn: &TxnCheck) -> Result<()> {
            let committed = lock(&self.committed);
            for (key, seqno) in committed.iter() {
                if *seqno > txn.snapshot && txn.writes.contains(key) {
                    return Err(Error::Conflict(crate::error::Conflict {
                        key: key.clone(),
                        keyspace: 0,
                        reason: kevo_txn::ConflictReason::WriteWriteConflict,
                        committed_seqno: *seqno,
                        snapshot_seqno: txn.snapshot,
                    }));
                }
            }
            Ok(())
        }

        fn make_read_only(&self, cause: Error) -> Error {
            *lock(&self.read_only) = Some(cause.to_string());
            Error::ReadOnly {
                cause: Arc::new(cause),
            }
        }

        fn append(&self, batch: &Batch, _sync: bool) -> Result<()> {
            if self.fail_appends.load(Ordering::SeqCst) {
                let cause = Error::io("appending", std::io::Error::other("EIO"));
                return Err(self.make_read_only(cause));
            }
            lock(&self.appended).push((batch.seqno(), batch.clone()));
            Ok(())
        }

        fn apply(&self, batch: &Batch) -> u64 {
            if let Some(key) = lock(&self.panic_on).as_ref() {
                assert!(
                    !batch.iter().any(|e| e.key == key.as_slice()),
                    "injected panic in apply"
                );
            }
            let mut committed = lock(&self.committed);
            for (i, entry) in batch.iter().enumerate() {
                committed.push((Bytes::copy_from_slice(entry.key), batch.seqno() + i as u64));
            }
            0
        }

        fn publish(&self, _batch: &Batch, last: SeqNo, batches: usize, _user_bytes: u64) {
            self.visible.store(last, Ordering::SeqCst);
            lock(&self.groups).push(batches);
        }
    }

    fn put(key: &str) -> Batch {
        let mut batch = Batch::new();
        batch.put(key, "v");
        batch
    }

    fn open_env() -> FakeEnv {
        let env = FakeEnv::default();
        env.open_gate();
        env
    }

    #[test]
    fn concurrent_writers_get_consecutive_seqnos_each_batch_once() {
        let env = Arc::new(open_env());
        let pipeline = Arc::new(CommitPipeline::new(10));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (env, pipeline) = (env.clone(), pipeline.clone());
                std::thread::spawn(move || {
                    for i in 0..200 {
                        pipeline
                            .commit(&*env, put(&format!("{t}-{i}")), i % 7 == 0, None)
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let appended = lock(&env.appended);
        let mut next = 11;
        let mut keys = std::collections::BTreeSet::new();
        for (first, batch) in appended.iter() {
            assert_eq!(*first, next, "seqnos run on without a gap");
            next += batch.len() as u64;
            for entry in batch.iter() {
                assert!(keys.insert(entry.key.to_vec()), "each batch once");
            }
        }
        assert_eq!(keys.len(), 1600);
        assert_eq!(env.visible.load(Ordering::SeqCst), 10 + 1600);
        assert_eq!(*pipeline.writer(), 10 + 1600);
        assert_eq!(lock(&env.groups).iter().sum::<usize>(), 1600);
    }

    #[test]
    fn writers_queued_behind_a_leader_join_its_group() {
        let env = Arc::new(FakeEnv::default());
        let pipeline = Arc::new(CommitPipeline::new(0));
        let spawn = |key: &'static str| {
            let (env, pipeline) = (env.clone(), pipeline.clone());
            std::thread::spawn(move || pipeline.commit(&*env, put(key), false, None))
        };
        let first = spawn("a");
        // The first leader waits in make_room; the others queue behind it.
        while env.in_make_room.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let rest: Vec<_> = ["b", "c", "d"].into_iter().map(spawn).collect();
        while lock(&pipeline.queue).waiting.len() < 3 {
            std::thread::yield_now();
        }
        env.open_gate();
        first.join().unwrap().unwrap();
        for writer in rest {
            writer.join().unwrap().unwrap();
        }
        assert_eq!(*lock(&env.groups), vec![1, 3]);
    }

    #[test]
    fn every_member_of_a_failed_group_gets_the_error_and_later_writes_are_refused() {
        let env = Arc::new(FakeEnv::default());
        env.fail_appends.store(true, Ordering::SeqCst);
        let pipeline = Arc::new(CommitPipeline::new(0));
        let writers: Vec<_> = (0..4)
            .map(|i| {
                let (env, pipeline) = (env.clone(), pipeline.clone());
                std::thread::spawn(move || pipeline.commit(&*env, put(&i.to_string()), true, None))
            })
            .collect();
        while env.in_make_room.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        env.open_gate();
        for writer in writers {
            match writer.join().unwrap() {
                Err(Error::ReadOnly { cause }) => {
                    assert!(cause.to_string().contains("EIO"), "{cause}")
                }
                other => panic!("expected ReadOnly, got {other:?}"),
            }
        }
        assert!(lock(&env.appended).is_empty());
        assert_eq!(*pipeline.writer(), 0, "no seqno was consumed");
        assert!(matches!(
            pipeline.commit(&*env, put("late"), false, None),
            Err(Error::ReadOnly { .. })
        ));
    }

    #[test]
    fn a_transaction_commits_alone_and_a_conflict_fails_only_it() {
        let env = open_env();
        let pipeline = CommitPipeline::new(0);
        pipeline.commit(&env, put("k"), false, None).unwrap();
        let txn = TxnCheck {
            snapshot: 0,
            reads: kevo_txn::ReadSet::new(),
            writes: vec![Bytes::from_static(b"k")],
            range_writes: Vec::new(),
        };
        match pipeline.commit(&env, put("k"), false, Some(txn)) {
            Err(Error::Conflict(conflict)) => {
                assert_eq!(conflict.key, Bytes::from_static(b"k"));
                assert_eq!((conflict.committed_seqno, conflict.snapshot_seqno), (1, 0));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            *pipeline.writer(),
            1,
            "the conflicting commit took no seqno"
        );
        let txn = TxnCheck {
            snapshot: 1,
            reads: kevo_txn::ReadSet::new(),
            writes: vec![Bytes::from_static(b"k")],
            range_writes: Vec::new(),
        };
        pipeline.commit(&env, put("k"), false, Some(txn)).unwrap();
        assert_eq!(*lock(&env.groups), vec![1, 1]);
    }

    #[test]
    fn an_empty_batch_writes_nothing() {
        let env = open_env();
        let pipeline = CommitPipeline::new(5);
        pipeline.commit(&env, Batch::new(), true, None).unwrap();
        assert!(lock(&env.appended).is_empty());
        assert_eq!(*pipeline.writer(), 5);
    }

    #[test]
    fn exhausted_seqnos_make_the_database_read_only() {
        let env = open_env();
        let pipeline = CommitPipeline::new(SEQNO_MAX);
        assert!(matches!(
            pipeline.commit(&env, put("k"), false, None),
            Err(Error::ReadOnly { .. })
        ));
        assert!(
            lock(&env.read_only)
                .as_ref()
                .is_some_and(|c| c.contains("exhausted"))
        );
        assert!(lock(&env.appended).is_empty());
    }

    #[test]
    fn a_panicking_leader_fails_its_group_and_hands_leadership_on() {
        let env = Arc::new(FakeEnv::default());
        *lock(&env.panic_on) = Some(b"a".to_vec());
        let pipeline = Arc::new(CommitPipeline::new(0));
        let spawn = |key: &'static str| {
            let (env, pipeline) = (env.clone(), pipeline.clone());
            std::thread::spawn(move || pipeline.commit(&*env, put(key), false, None))
        };
        // "x" leads and waits in make_room while "a" and "b" queue: "a"
        // leads the next group, with "b" in it.
        let first = spawn("x");
        while env.in_make_room.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let leader = spawn("a");
        while lock(&pipeline.queue).waiting.is_empty() {
            std::thread::yield_now();
        }
        let member = spawn("b");
        while lock(&pipeline.queue).waiting.len() < 2 {
            std::thread::yield_now();
        }
        env.open_gate();
        first.join().unwrap().unwrap();
        assert!(leader.join().is_err(), "the leader panicked");
        assert!(matches!(
            member.join().unwrap(),
            Err(Error::Internal { .. })
        ));
        pipeline.commit(&*env, put("c"), false, None).unwrap();
    }
}
