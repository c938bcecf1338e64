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

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{DEFAULT_KEYSPACE, KeyspaceId, SeqNo};
use kevo_iter::KeyBounds;
use kevo_txn::{MergedIter, ReadSet, WriteBuffer};
use kevo_wal::Batch;

use crate::commit::TxnCheck;
use crate::engine::Handle;
use crate::error::{Conflict, Error, Result, conflict_key};
use crate::iter::DbIter;
use crate::keyspace::KeyspaceCore;
use crate::keyspace_handle::Keyspace;
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
    /// Writes to the default keyspace.
    buffer: WriteBuffer,
    /// Writes to other keyspaces.
    others: BTreeMap<KeyspaceId, (Arc<KeyspaceCore>, WriteBuffer)>,
    /// What it read, as conflict keys ([`conflict_key`]).
    reads: ReadSet,
    /// Room to build a conflict key in without an allocation per read.
    scratch: Vec<u8>,
    ended: bool,
}

/// `bounds` of `keyspace` as bounds over conflict keys: an open end stays
/// within the keyspace.
fn conflict_bounds(keyspace: KeyspaceId, bounds: &KeyBounds) -> (Bound<Bytes>, Bound<Bytes>) {
    let start = Bound::Included(conflict_key(keyspace, bounds.start().unwrap_or(&[])));
    let end = match bounds.end() {
        Some(end) => Bound::Excluded(conflict_key(keyspace, end)),
        None => match keyspace.checked_add(1) {
            Some(next) => Bound::Excluded(conflict_key(next, &[])),
            None => Bound::Unbounded,
        },
    };
    (start, end)
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
            others: BTreeMap::new(),
            reads: ReadSet::new(),
            scratch: Vec::new(),
            ended: false,
        }
    }

    /// The sequence number the transaction reads at.
    pub fn snapshot_seqno(&self) -> SeqNo {
        self.snapshot
    }

    /// The value of `key` in the default keyspace: the transaction's own
    /// write if it made one, else the database's as of `begin`.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Io`] or [`Error::Corruption`] reading a
    /// table.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.get_at(None, key.as_ref())
    }

    /// The value of `key` in `keyspace`, as [`get`](Self::get): every
    /// keyspace is read as of the same `begin`.
    ///
    /// # Errors
    /// As [`get`](Self::get); [`Error::InvalidArgument`] for a dropped
    /// keyspace.
    pub fn get_in(&mut self, keyspace: &Keyspace, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.get_at(Some(&keyspace.core), key.as_ref())
    }

    /// A read of `key` in `keyspace` (the default one for `None`: no
    /// reference count is touched on that path).
    fn get_at(
        &mut self,
        keyspace: Option<&Arc<KeyspaceCore>>,
        key: &[u8],
    ) -> Result<Option<Bytes>> {
        let engine = &self.handle.engine;
        let keyspace: &KeyspaceCore = keyspace.map_or(engine.keyspaces.default(), |k| k);
        engine.life.check_open()?;
        check_keyspace(keyspace)?;
        let buffer = if keyspace.id == DEFAULT_KEYSPACE {
            Some(&self.buffer)
        } else {
            self.others.get(&keyspace.id).map(|(_, buffer)| buffer)
        };
        if let Some(buffered) = buffer.and_then(|b| b.get(key)) {
            return Ok(buffered.cloned());
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&keyspace.id.to_be_bytes());
        self.scratch.extend_from_slice(key);
        self.reads.add_key(&self.scratch);
        let sv = keyspace.read.pinned();
        crate::read::get(&engine.tables, &sv, key, self.snapshot)
    }

    /// Sets `key` to `value` in the default keyspace when the transaction
    /// commits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the key or value is over its limit;
    /// [`Error::Closed`].
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.write_at(None, key.as_ref(), Some(value.as_ref()))
    }

    /// Sets `key` to `value` in `keyspace` when the transaction commits
    /// (with its other writes, in every keyspace, atomically).
    ///
    /// # Errors
    /// As [`put`](Self::put); [`Error::InvalidArgument`] for a dropped
    /// keyspace.
    pub fn put_in(
        &mut self,
        keyspace: &Keyspace,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<()> {
        self.write_at(Some(&keyspace.core), key.as_ref(), Some(value.as_ref()))
    }

    /// Deletes `key` from the default keyspace when the transaction commits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the key is over its limit;
    /// [`Error::Closed`].
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<()> {
        self.write_at(None, key.as_ref(), None)
    }

    /// Deletes `key` from `keyspace` when the transaction commits.
    ///
    /// # Errors
    /// As [`delete`](Self::delete); [`Error::InvalidArgument`] for a
    /// dropped keyspace.
    pub fn delete_in(&mut self, keyspace: &Keyspace, key: impl AsRef<[u8]>) -> Result<()> {
        self.write_at(Some(&keyspace.core), key.as_ref(), None)
    }

    /// Deletes every key of the default keyspace in `range` when the
    /// transaction commits (one range tombstone, as
    /// [`Db::delete_range`](crate::Db::delete_range)). Reads inside the
    /// transaction no longer see those keys, except the ones it writes
    /// afterwards. For the conflict check it is a write of the whole range:
    /// a commit since `begin` that wrote a key inside it makes this
    /// transaction conflict.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a bound is over the key limit;
    /// [`Error::Closed`].
    pub fn delete_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&mut self, range: R) -> Result<()> {
        self.delete_span(None, crate::span::span_of(&range))
    }

    /// [`Transaction::delete_range`] in `keyspace`.
    ///
    /// # Errors
    /// As [`Transaction::delete_range`]; [`Error::InvalidArgument`] for a
    /// dropped keyspace.
    pub fn delete_range_in<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &mut self,
        keyspace: &Keyspace,
        range: R,
    ) -> Result<()> {
        self.delete_span(Some(&keyspace.core), crate::span::span_of(&range))
    }

    /// Deletes every key of the default keyspace starting with `prefix`
    /// when the transaction commits (as [`Transaction::delete_range`]).
    ///
    /// # Errors
    /// As [`Transaction::delete_range`].
    pub fn delete_prefix(&mut self, prefix: impl AsRef<[u8]>) -> Result<()> {
        self.delete_span(None, crate::span::prefix_span(prefix.as_ref()))
    }

    /// [`Transaction::delete_prefix`] in `keyspace`.
    ///
    /// # Errors
    /// As [`Transaction::delete_range_in`].
    pub fn delete_prefix_in(
        &mut self,
        keyspace: &Keyspace,
        prefix: impl AsRef<[u8]>,
    ) -> Result<()> {
        self.delete_span(
            Some(&keyspace.core),
            crate::span::prefix_span(prefix.as_ref()),
        )
    }

    /// A buffered range delete of `span` in `keyspace`.
    fn delete_span(
        &mut self,
        keyspace: Option<&Arc<KeyspaceCore>>,
        (start, end, last): crate::span::Span,
    ) -> Result<()> {
        self.handle.engine.life.check_open()?;
        check_sizes(&start, &[])?;
        check_sizes(&end, &[])?;
        let buffer = self.buffer_mut(keyspace)?;
        buffer.delete_range(Bytes::from(start), Bytes::from(end));
        if let Some(last) = last {
            buffer.delete(Bytes::from(last));
        }
        Ok(())
    }

    /// The write buffer of `keyspace` (the default one for `None`),
    /// created if needed.
    fn buffer_mut(&mut self, keyspace: Option<&Arc<KeyspaceCore>>) -> Result<&mut WriteBuffer> {
        Ok(match keyspace {
            Some(keyspace) if keyspace.id != DEFAULT_KEYSPACE => {
                check_keyspace(keyspace)?;
                &mut self
                    .others
                    .entry(keyspace.id)
                    .or_insert_with(|| (Arc::clone(keyspace), WriteBuffer::new()))
                    .1
            }
            _ => &mut self.buffer,
        })
    }

    /// A buffered write to `keyspace` (the default one for `None`).
    fn write_at(
        &mut self,
        keyspace: Option<&Arc<KeyspaceCore>>,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<()> {
        self.handle.engine.life.check_open()?;
        check_sizes(key, value.unwrap_or_default())?;
        let buffer = self.buffer_mut(keyspace)?;
        let key = Bytes::copy_from_slice(key);
        match value {
            Some(value) => buffer.put(key, Bytes::copy_from_slice(value)),
            None => buffer.delete(key),
        }
        Ok(())
    }

    /// The buffered writes to `keyspace`, if any.
    fn buffer_of(&self, keyspace: &KeyspaceCore) -> Option<&WriteBuffer> {
        if keyspace.id == DEFAULT_KEYSPACE {
            Some(&self.buffer)
        } else {
            self.others.get(&keyspace.id).map(|(_, buffer)| buffer)
        }
    }

    /// The entries of the default keyspace with keys in `range`, the
    /// transaction's writes over the database as of `begin`, in key order
    /// (`.rev()` for reverse). The whole range counts as read: a commit by
    /// someone else that inserts, changes or deletes a key in it makes this
    /// transaction conflict.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&mut self, range: R) -> TxnIter {
        let default = Arc::clone(self.handle.engine.keyspaces.default());
        self.scan(&default, KeyBounds::new(range))
    }

    /// The entries whose keys start with `prefix`, as [`range`](Self::range).
    pub fn prefix(&mut self, prefix: impl AsRef<[u8]>) -> TxnIter {
        let default = Arc::clone(self.handle.engine.keyspaces.default());
        self.scan(&default, KeyBounds::prefix(prefix))
    }

    /// The entries of `keyspace` with keys in `range`, as
    /// [`range`](Self::range).
    pub fn range_in<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &mut self,
        keyspace: &Keyspace,
        range: R,
    ) -> TxnIter {
        self.scan(&Arc::clone(&keyspace.core), KeyBounds::new(range))
    }

    fn scan(&mut self, keyspace: &Arc<KeyspaceCore>, bounds: KeyBounds) -> TxnIter {
        if let Err(e) = check_keyspace(keyspace) {
            return TxnIter {
                inner: MergedIter::new(Unwritten::new(DbIter::failed(e), Vec::new()), Vec::new()),
            };
        }
        let (read_start, read_end) = conflict_bounds(keyspace.id, &bounds);
        self.reads
            .add_range(bound_ref(&read_start), bound_ref(&read_end));
        let start = bounds.start().map_or(Bound::Unbounded, Bound::Included);
        let end = bounds.end().map_or(Bound::Unbounded, Bound::Excluded);
        let buffered: Vec<(Bytes, Option<Bytes>)> = self
            .buffer_of(keyspace)
            .map(|b| b.range(start, end).collect())
            .unwrap_or_default();
        let deleted = self
            .buffer_of(keyspace)
            .map(|b| b.range_deletes().to_vec())
            .unwrap_or_default();
        let base = DbIter::open(&self.handle, keyspace, bounds, Some(self.snapshot));
        TxnIter {
            inner: MergedIter::new(Unwritten::new(base, deleted), buffered),
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
        if self.buffer.is_empty() && self.others.values().all(|(_, b)| b.is_empty()) {
            // Nothing to write, but the commit still orders it after every
            // commit so far: it must not have read anything they changed.
            let checked = lock(&engine.tracker).check(self.snapshot, &self.reads, &[]);
            self.end();
            return checked
                .map_err(|conflict| Error::Conflict(Conflict::new(conflict, self.snapshot)));
        }
        let mut batch = Batch::new();
        let mut writes = Vec::with_capacity(self.buffer.len());
        let mut range_writes = Vec::new();
        let buffers = std::iter::once((DEFAULT_KEYSPACE, &self.buffer))
            .chain(self.others.iter().map(|(id, (_, buffer))| (*id, buffer)));
        for (keyspace, buffer) in buffers {
            // Range deletes first: every buffered entry inside one was
            // written after it.
            for (start, end) in buffer.range_deletes() {
                batch.delete_range_in(keyspace, start, end);
                range_writes.push((conflict_key(keyspace, start), conflict_key(keyspace, end)));
            }
            for (key, value) in buffer.iter() {
                match value {
                    Some(value) => batch.put_in(keyspace, key, value),
                    None => batch.delete_in(keyspace, key),
                }
                writes.push(conflict_key(keyspace, key));
            }
        }
        let check = TxnCheck {
            snapshot: self.snapshot,
            reads: std::mem::take(&mut self.reads),
            writes,
            range_writes,
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

/// `Err` for a keyspace that was dropped.
fn check_keyspace(keyspace: &KeyspaceCore) -> Result<()> {
    if keyspace.is_dropped() {
        return Err(crate::keyspace_handle::dropped(&keyspace.name));
    }
    Ok(())
}

/// `bound` borrowed.
fn bound_ref(bound: &Bound<Bytes>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key),
        Bound::Excluded(key) => Bound::Excluded(key),
        Bound::Unbounded => Bound::Unbounded,
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
    inner: MergedIter<Unwritten, Error>,
}

/// The snapshot's entries a transaction still sees: those no range delete
/// of its own covers.
struct Unwritten {
    base: DbIter,
    deleted: Vec<(Bytes, Bytes)>,
}

impl Unwritten {
    fn new(base: DbIter, deleted: Vec<(Bytes, Bytes)>) -> Self {
        Unwritten { base, deleted }
    }

    fn keeps(&self, item: &Result<(Bytes, Bytes)>) -> bool {
        match item {
            Ok((key, _)) => !self
                .deleted
                .iter()
                .any(|(start, end)| start <= key && key < end),
            Err(_) => true,
        }
    }
}

impl Iterator for Unwritten {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let item = self.base.next()?;
            if self.keeps(&item) {
                return Some(item);
            }
        }
    }
}

impl DoubleEndedIterator for Unwritten {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            let item = self.base.next_back()?;
            if self.keeps(&item) {
                return Some(item);
            }
        }
    }
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
