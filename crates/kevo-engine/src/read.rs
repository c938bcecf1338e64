//! The read path: point reads, iterators and snapshots.
//!
//! A read takes the visible seqno and the current [`SuperVersion`] together
//! ([`read_view`]: every write at or below the seqno is in that super
//! version's memtables or tables), and looks newest first: the memtable, the
//! immutable memtables, L0 tables newest first, then the one table per
//! deeper level whose key range holds the key. Tables whose key range
//! misses the key are skipped; a table's Bloom filter is checked before any
//! block is read. The super version pins the [`Version`](kevo_manifest::Version),
//! so no file the read uses is deleted under it.

use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use kevo_core::{Cursor, SeqNo, ValueKind};
use kevo_iter::{
    BoundedCursor, ConcatCursor, ConcatSource, KeyBounds, MergingCursor, RangeIter, UserCursor,
    VisibleCursor,
};
use kevo_manifest::TableMeta;
use kevo_memtable::Lookup;

use crate::db::{Inner, Shared, SuperVersion};
use crate::error::{Error, Result};

/// The newest value of `key` at or below `seqno`.
pub(crate) fn get(
    shared: &Shared,
    sv: &SuperVersion,
    key: &[u8],
    seqno: SeqNo,
) -> Result<Option<Bytes>> {
    for mem in std::iter::once(&sv.mem).chain(sv.imms.iter()) {
        match mem.get(key, seqno) {
            Lookup::Found(value) => return Ok(Some(value)),
            Lookup::Deleted => return Ok(None),
            Lookup::Absent => {}
        }
    }
    let in_range = |t: &TableMeta| t.smallest_user_key() <= key && key <= t.largest_user_key();
    for meta in sv.version.level(0) {
        if in_range(meta)
            && let Some(found) = table_get(shared, meta, key, seqno)?
        {
            return Ok(found);
        }
    }
    for level in 1..sv.version.num_levels() {
        if let Some(meta) = sv.version.table_for_key(level, key)
            && let Some(found) = table_get(shared, meta, key, seqno)?
        {
            return Ok(found);
        }
    }
    Ok(None)
}

/// `Some(answer)` if the table decides the key, `None` to look further.
fn table_get(
    shared: &Shared,
    meta: &TableMeta,
    key: &[u8],
    seqno: SeqNo,
) -> Result<Option<Option<Bytes>>> {
    if seqno < meta.smallest_seqno {
        return Ok(None);
    }
    let table = shared.tables.get(meta)?;
    Ok(table.get(key, seqno)?.map(|found| match found.kind {
        ValueKind::Put => Some(found.value),
        _ => None,
    }))
}

type Factory = Box<dyn FnMut() -> kevo_core::Result<Box<dyn UserCursor + Send>> + Send>;

/// An iterator over `(key, value)` pairs of a range or prefix, in key order
/// or (with `.rev()`) reverse; from [`Db::range`](crate::Db::range),
/// [`Db::prefix`](crate::Db::prefix) or a [`Snapshot`].
///
/// It reads a consistent view: the snapshot it was made at. It holds the
/// database open and pins every file it reads until it is dropped. After
/// an error it returns `None`; once the database is closed it returns
/// [`Error::Closed`] (once), whether it was advanced or not.
pub struct DbIter {
    inner: Option<RangeIter<Box<dyn UserCursor + Send>, Factory>>,
    error: Option<Error>,
    _db: Option<Arc<Inner>>,
}

impl std::fmt::Debug for DbIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIter").finish_non_exhaustive()
    }
}

impl DbIter {
    pub(crate) fn new(
        db: Arc<Inner>,
        sv: Arc<SuperVersion>,
        bounds: KeyBounds,
        seqno: SeqNo,
    ) -> Self {
        let shared = db.shared.clone();
        let factory: Factory = Box::new(move || {
            let mut sources: Vec<Box<dyn Cursor + Send>> = Vec::new();
            sources.push(Box::new(sv.mem.cursor()));
            for imm in &sv.imms {
                sources.push(Box::new(imm.cursor()));
            }
            let (start, end) = (bounds.start(), bounds.end());
            for meta in sv.version.level(0) {
                if meta.smallest_seqno <= seqno && meta.overlaps(start, end) {
                    let table = shared.tables.get(meta).map_err(to_core)?;
                    sources.push(Box::new(table.cursor()));
                }
            }
            // Deeper levels: one cursor per level, opening one table at a time.
            for level in 1..sv.version.num_levels() {
                let tables = sv.version.overlapping(level, start, end);
                if !tables.is_empty() {
                    sources.push(Box::new(ConcatCursor::new(LevelTables {
                        shared: shared.clone(),
                        tables,
                    })));
                }
            }
            let merged = MergingCursor::new(sources);
            let cursor = VisibleCursor::new(BoundedCursor::new(merged, bounds.clone()), seqno);
            Ok(Box::new(cursor) as Box<dyn UserCursor + Send>)
        });
        DbIter {
            inner: Some(RangeIter::new(factory)),
            error: None,
            _db: Some(db),
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        DbIter {
            inner: None,
            error: Some(error),
            _db: None,
        }
    }

    /// `Closed` (once: the iterator is then exhausted) if the database
    /// was closed.
    fn check_open(&mut self) -> Option<Error> {
        let closed = self
            ._db
            .as_ref()
            .is_some_and(|db| db.shared.check_open().is_err());
        if closed && self.inner.take().is_some() {
            return Some(Error::Closed);
        }
        None
    }

    fn map(
        &mut self,
        item: Option<kevo_core::Result<(Bytes, Bytes)>>,
    ) -> Option<Result<(Bytes, Bytes)>> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        item.map(|r| r.map_err(Error::from))
    }
}

/// The tables of one level (L1+) that a range may touch, in key order.
struct LevelTables {
    shared: Arc<Shared>,
    tables: Vec<Arc<TableMeta>>,
}

impl ConcatSource for LevelTables {
    type Cursor = kevo_sstable::TableCursor;

    fn len(&self) -> usize {
        self.tables.len()
    }

    fn smallest(&self, i: usize) -> &[u8] {
        self.tables[i].smallest.as_bytes()
    }

    fn largest(&self, i: usize) -> &[u8] {
        self.tables[i].largest.as_bytes()
    }

    fn open(&self, i: usize) -> kevo_core::Result<kevo_sstable::TableCursor> {
        let table = self.shared.tables.get(&self.tables[i]).map_err(to_core)?;
        Ok(table.cursor())
    }
}

/// The table cache speaks the engine's error; the cursor stack speaks
/// kevo-core's. Only I/O and corruption can come from opening a table.
pub(crate) fn to_core(e: Error) -> kevo_core::Error {
    match e {
        Error::Io { context, source } => kevo_core::Error::Io { context, source },
        Error::Corruption {
            file,
            offset,
            reason,
        } => kevo_core::Error::Corruption {
            file,
            offset,
            reason,
        },
        other => kevo_core::Error::InvalidArgument(other.to_string()),
    }
}

impl Iterator for DbIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(closed) = self.check_open() {
            return Some(Err(closed));
        }
        let item = self.inner.as_mut().and_then(|inner| inner.next());
        self.map(item)
    }
}

impl DoubleEndedIterator for DbIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        if let Some(closed) = self.check_open() {
            return Some(Err(closed));
        }
        let item = self.inner.as_mut().and_then(|inner| inner.next_back());
        self.map(item)
    }
}

impl std::iter::FusedIterator for DbIter {}

/// A consistent point-in-time view of the database, from
/// [`Db::snapshot`](crate::Db::snapshot).
///
/// It reads what the database held when it was taken, whatever is written,
/// flushed or compacted afterwards. It borrows nothing: store it, move it
/// across threads, let it outlive the handle it came from (it keeps the
/// database open). Dropping it releases what it holds.
///
/// ```
/// # fn main() -> kevo_engine::Result<()> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// let db = kevo_engine::Db::open(dir.path())?;
/// db.put("k", "old")?;
/// let snapshot = db.snapshot();
/// db.put("k", "new")?;
/// assert_eq!(snapshot.get("k")?.as_deref(), Some(&b"old"[..]));
/// assert_eq!(db.get("k")?.as_deref(), Some(&b"new"[..]));
/// # Ok(())
/// # }
/// ```
pub struct Snapshot {
    db: Arc<Inner>,
    seqno: SeqNo,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("seqno", &self.seqno)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    pub(crate) fn new(db: Arc<Inner>) -> Self {
        let seqno = db.shared.acquire_snapshot();
        Snapshot { db, seqno }
    }

    /// The sequence number this snapshot reads at: it sees every write with
    /// a seqno at or below it.
    pub fn seqno(&self) -> SeqNo {
        self.seqno
    }

    /// The value of `key` as of the snapshot.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Io`] or [`Error::Corruption`] reading a
    /// table.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let shared = &self.db.shared;
        shared.check_open()?;
        let sv = shared.super_version();
        get(shared, &sv, key.as_ref(), self.seqno)
    }

    /// The entries with keys in `range` as of the snapshot.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        self.iter(KeyBounds::new(range))
    }

    /// The entries whose keys start with `prefix` as of the snapshot.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> DbIter {
        self.iter(KeyBounds::prefix(prefix))
    }

    fn iter(&self, bounds: KeyBounds) -> DbIter {
        let shared = &self.db.shared;
        if let Err(e) = shared.check_open() {
            return DbIter::failed(e);
        }
        DbIter::new(self.db.clone(), shared.super_version(), bounds, self.seqno)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.db.shared.release_snapshot(self.seqno);
    }
}

/// The visible seqno and the super version to read it in.
///
/// The seqno is loaded under the super version's read lock: a flush or
/// compaction that drops versions no snapshot needs publishes under the
/// write lock, so a reader either gets the super version from before it
/// (which still holds those versions) or a seqno at least as new as every
/// entry it rewrote.
pub(crate) fn read_view(shared: &Shared) -> (SeqNo, Arc<SuperVersion>) {
    let guard = shared
        .super_version
        .read()
        .unwrap_or_else(|e| e.into_inner());
    let seqno = shared.visible_seqno.load(Ordering::Acquire);
    (seqno, guard.clone())
}
