//! Optimistic, serializable transactions over snapshots and the WAL.
//!
//! A [`Transaction`] reads at a snapshot, through its own buffered writes
//! (read-your-writes, both directions), and records what it read: point
//! keys and scanned ranges. Its commit is one batch through the write
//! queue, alone in its group: under the single-writer mutex the leader
//! checks that no write committed after the snapshot touched a key it read,
//! a range it scanned, or a key it writes (`kevo_txn::ConflictTracker`),
//! then applies the batch, so after a crash a transaction is wholly present
//! or wholly absent. Lost updates and write skew are both refused with
//! [`Error::Conflict`].

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::SeqNo;
use kevo_iter::KeyBounds;
use kevo_txn::{MergedIter, ReadSet, WriteBuffer};
use kevo_wal::Batch;

use crate::commit::TxnCheck;
use crate::engine::Handle;
use crate::error::{Conflict, Error, Result};
use crate::iter::DbIter;
use crate::sync::lock;
use crate::write::write;

/// How many times [`Db::transaction`](crate::Db::transaction) runs its closure before giving up
/// with the last [`Error::Conflict`].
pub const TRANSACTION_ATTEMPTS_MAX: usize = 100;

/// A read-write transaction, from [`Db::begin`](crate::Db::begin).
///
/// Reads see the database as of `begin` plus the transaction's own writes.
/// [`commit`](Transaction::commit) applies every write atomically, or fails
/// with [`Error::Conflict`] if a transaction or write committed since
/// `begin` changed something this one read or writes; dropping it without
/// committing rolls it back. It borrows nothing from the `Db` and can move
/// across threads.
///
/// ```
/// # fn main() -> kevo_engine::Result<()> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// let db = kevo_engine::Db::open(dir.path())?;
/// db.put("alice", "10")?;
/// let mut tx = db.begin();
/// let balance: u32 = std::str::from_utf8(&tx.get("alice")?.unwrap_or_default()).unwrap_or("0").parse().unwrap_or(0);
/// tx.put("alice", (balance - 3).to_string())?;
/// tx.put("bob", "3")?;
/// assert_eq!(tx.get("bob")?.as_deref(), Some(&b"3"[..])); // its own write
/// tx.commit()?;
/// assert_eq!(db.get("alice")?.as_deref(), Some(&b"7"[..]));
/// # Ok(())
/// # }
/// ```
pub struct Transaction {
    handle: Arc<Handle>,
    snapshot: SeqNo,
    buffer: WriteBuffer,
    reads: ReadSet,
    ended: bool,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("snapshot", &self.snapshot)
            .field("writes", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl Transaction {
    pub(crate) fn new(handle: Arc<Handle>) -> Self {
        let engine = &handle.engine;
        // The snapshot is taken under the tracker mutex, where writers
        // publish their seqnos: every later commit is recorded for it.
        let snapshot = {
            let mut tracker = lock(&engine.tracker);
            let snapshot = engine.visibility.acquire_snapshot();
            tracker.begin(snapshot);
            snapshot
        };
        Transaction {
            handle,
            snapshot,
            buffer: WriteBuffer::new(),
            reads: ReadSet::new(),
            ended: false,
        }
    }

    /// The sequence number the transaction reads at.
    pub fn snapshot_seqno(&self) -> SeqNo {
        self.snapshot
    }

    /// The value of `key`: the transaction's own write if it made one,
    /// else the database's as of `begin`.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Io`] or [`Error::Corruption`] reading a
    /// table.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        let engine = &self.handle.engine;
        engine.life.check_open()?;
        if let Some(buffered) = self.buffer.get(key) {
            return Ok(buffered.cloned());
        }
        self.reads.add_key(key);
        let sv = engine.read.super_version();
        crate::read::get(&engine.tables, &sv, key, self.snapshot)
    }

    /// Sets `key` to `value` when the transaction commits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the key or value is over its limit;
    /// [`Error::Closed`].
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.handle.engine.life.check_open()?;
        check_sizes(key, value)?;
        self.buffer
            .put(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        Ok(())
    }

    /// Deletes `key` when the transaction commits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the key is over its limit;
    /// [`Error::Closed`].
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<()> {
        let key = key.as_ref();
        self.handle.engine.life.check_open()?;
        check_sizes(key, &[])?;
        self.buffer.delete(Bytes::copy_from_slice(key));
        Ok(())
    }

    /// The entries with keys in `range`, the transaction's writes over the
    /// database as of `begin`, in key order (`.rev()` for reverse). The
    /// whole range counts as read: a commit by someone else that inserts,
    /// changes or deletes a key in it makes this transaction conflict.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&mut self, range: R) -> TxnIter {
        self.scan(KeyBounds::new(range))
    }

    /// The entries whose keys start with `prefix`, as [`range`](Self::range).
    pub fn prefix(&mut self, prefix: impl AsRef<[u8]>) -> TxnIter {
        self.scan(KeyBounds::prefix(prefix))
    }

    fn scan(&mut self, bounds: KeyBounds) -> TxnIter {
        let start = bounds.start().map_or(Bound::Unbounded, Bound::Included);
        let end = bounds.end().map_or(Bound::Unbounded, Bound::Excluded);
        self.reads.add_range(start, end);
        let buffered: Vec<(Bytes, Option<Bytes>)> = self.buffer.range(start, end).collect();
        let base = DbIter::open(&self.handle, bounds, Some(self.snapshot));
        TxnIter {
            inner: MergedIter::new(base, buffered),
        }
    }

    /// Applies every write atomically, or fails with [`Error::Conflict`]
    /// (nothing applied) if a commit since `begin` wrote a key this
    /// transaction read, a key inside a range it scanned, or a key it
    /// writes. A transaction that wrote nothing commits unless something it
    /// read changed since `begin` (so that every history is serial in
    /// commit order); use [`Db::begin_read`](crate::Db::begin_read) for reads that never conflict.
    ///
    /// # Errors
    /// [`Error::Conflict`]; [`Error::Closed`] once the database is closed
    /// (a transaction that only read included: its reads can no longer be
    /// ordered after the commits before the close); those of [`Db::write`](crate::Db::write).
    pub fn commit(mut self) -> Result<()> {
        let engine = self.handle.engine.clone();
        if let Err(closed) = engine.life.check_open() {
            self.end();
            return Err(closed);
        }
        if self.buffer.is_empty() {
            // Nothing to write, but the commit still orders it after every
            // commit so far: it must not have read anything they changed.
            let checked = lock(&engine.tracker).check(self.snapshot, &self.reads, &[]);
            self.end();
            return checked
                .map_err(|conflict| Error::Conflict(Conflict::new(conflict, self.snapshot)));
        }
        let mut batch = Batch::new();
        let mut writes = Vec::with_capacity(self.buffer.len());
        for (key, value) in self.buffer.iter() {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
            writes.push(key.clone());
        }
        let check = TxnCheck {
            snapshot: self.snapshot,
            reads: std::mem::take(&mut self.reads),
            writes,
        };
        let result = write(&engine, batch, false, Some(check));
        self.end();
        result
    }

    /// Discards the transaction's writes (as dropping it does).
    pub fn rollback(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            let engine = &self.handle.engine;
            lock(&engine.tracker).end(self.snapshot);
            engine.visibility.release_snapshot(self.snapshot);
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.end();
    }
}

fn check_sizes(key: &[u8], value: &[u8]) -> Result<()> {
    if key.len() > kevo_core::KEY_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "key of {} bytes exceeds the maximum of {} bytes",
            key.len(),
            kevo_core::KEY_BYTES_MAX
        )));
    }
    if value.len() > kevo_core::VALUE_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "value of {} bytes exceeds the maximum of {} bytes",
            value.len(),
            kevo_core::VALUE_BYTES_MAX
        )));
    }
    Ok(())
}

/// The iterator of [`Transaction::range`] and [`Transaction::prefix`]: the
/// transaction's own writes merged over its snapshot, in key order (or
/// reverse, with `.rev()`). A key the transaction deleted is absent; one it
/// wrote shows its new value.
pub struct TxnIter {
    inner: MergedIter<DbIter, Error>,
}

impl std::fmt::Debug for TxnIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnIter").finish_non_exhaustive()
    }
}

impl Iterator for TxnIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

impl DoubleEndedIterator for TxnIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back()
    }
}

impl std::iter::FusedIterator for TxnIter {}
