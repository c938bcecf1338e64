//! [`DbIter`]: range and prefix iteration over a super version.
//!
//! The cursor stack, built lazily on the first call: one cursor per
//! memtable (the memtable, then the immutable ones newest first), one per
//! L0 table that may hold the range, one [`ConcatCursor`] per deeper level
//! (opening one table at a time), merged ([`MergingCursor`]), cut to the
//! bounds ([`BoundedCursor`]) and filtered to what the read's seqno sees
//! ([`VisibleCursor`]), range tombstones included: those of the whole view
//! (merged once per super version, see `SuperVersion::range_tombstones`),
//! with each source's largest seqno, so that a covered span is skipped
//! with one seek per source holding only older entries.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use kevo_compaction::LevelTables;
use kevo_core::{Cursor, SeqNo};
use kevo_iter::{
    BoundedCursor, ConcatCursor, KeyBounds, MergingCursor, RangeIter, UserCursor, VisibleCursor,
};
use kevo_manifest::{TableMeta, Version};

use crate::engine::Handle;
use crate::error::{Error, Result};
use crate::keyspace::KeyspaceCore;
use crate::read::{CursorStack, SuperVersion};
use crate::tables::TableCache;

type Factory = Box<dyn FnMut() -> kevo_core::Result<Box<dyn UserCursor + Send>> + Send>;

/// What a range read of `keyspace` reads: its super version now, at
/// `snapshot` (the visible seqno for `None`).
///
/// # Errors
/// [`Error::Closed`] once the database is closed.
pub(crate) fn open_view(
    handle: &Handle,
    keyspace: &KeyspaceCore,
    snapshot: Option<SeqNo>,
) -> Result<(Arc<SuperVersion>, SeqNo)> {
    let engine = &handle.engine;
    engine.life.check_open()?;
    let (visible, sv) = keyspace.read.view(&engine.visibility);
    Ok((sv, snapshot.unwrap_or(visible)))
}

/// The cursor stack over `sv` (see the module comment), cut to `bounds`,
/// reading at `seqno`. It holds `sv` (and so every file it may read) until
/// dropped.
pub(crate) fn build_cursor(
    tables: &Arc<TableCache>,
    sv: &Arc<SuperVersion>,
    bounds: &KeyBounds,
    seqno: SeqNo,
) -> kevo_core::Result<Box<dyn UserCursor + Send>> {
    Ok(build_stack(tables, sv, bounds, seqno)?.0)
}

/// [`build_cursor`]'s stack, as its own type, and whether it is complete:
/// whether it reads every source of `sv` (no L0 table left out for lying
/// outside `bounds` or holding only entries newer than `seqno`), so that
/// it serves a read at any seqno (see `SuperVersion::keep_cursor`).
pub(crate) fn build_stack(
    tables: &Arc<TableCache>,
    sv: &Arc<SuperVersion>,
    bounds: &KeyBounds,
    seqno: SeqNo,
) -> kevo_core::Result<(Box<CursorStack>, bool)> {
    let most = 1 + sv.imms.len() + sv.version.level(0).len() + sv.version.num_levels();
    let mut sources: Vec<Box<dyn Cursor + Send>> = Vec::with_capacity(most);
    let mut max_seqnos = Vec::with_capacity(most);
    let tombstones = sv.range_tombstones(tables)?;
    // The memtable first: `reuse_stack` raises its bound.
    for mem in std::iter::once(&sv.mem).chain(&sv.imms) {
        sources.push(Box::new(mem.cursor()));
        max_seqnos.push(mem.max_seqno());
    }
    let (start, end) = (bounds.start(), bounds.end());
    let mut complete = true;
    for meta in sv.version.level(0) {
        if meta.smallest_seqno <= seqno && meta.overlaps(start, end) {
            let table = tables.get(meta)?;
            sources.push(Box::new(table.cursor()));
            max_seqnos.push(meta.largest_seqno);
        } else {
            complete = false;
        }
    }
    for level in 1..sv.version.num_levels() {
        let run = LevelRun::new(&sv.version, level, start, end);
        complete &= run.as_ref().len() == sv.version.level(level).len();
        let Some(largest_seqno) = run.as_ref().iter().map(|t| t.largest_seqno).max() else {
            continue;
        };
        max_seqnos.push(largest_seqno);
        let cache = tables.clone();
        let open = move |meta: &TableMeta| Ok(cache.get(meta)?.cursor());
        sources.push(Box::new(ConcatCursor::new(LevelTables::new(run, open))));
    }
    let merged = MergingCursor::new(sources).with_max_seqnos(max_seqnos);
    let cursor = VisibleCursor::new(BoundedCursor::new(merged, bounds.clone()), seqno)
        .with_range_tombstones(tombstones);
    Ok((Box::new(cursor), complete))
}

/// A stack `sv` kept (see `SuperVersion::keep_cursor`), readied to read at
/// `seqno` as [`build_stack`] would build it; `None` if none is kept.
///
/// # Errors
/// Opening a table that holds range tombstones failed.
pub(crate) fn reuse_stack(
    tables: &TableCache,
    sv: &SuperVersion,
    seqno: SeqNo,
) -> kevo_core::Result<Option<Box<CursorStack>>> {
    let Some(mut stack) = sv.take_cursor() else {
        return Ok(None);
    };
    stack.reset(seqno, sv.range_tombstones(tables)?);
    // The memtable (the first source) may have taken writes since the
    // stack was built: a bound below its newest entry would let a
    // range-tombstone skip pass entries newer than the tombstone.
    stack
        .inner_mut()
        .inner_mut()
        .raise_max_seqno(0, sv.mem.max_seqno());
    Ok(Some(stack))
}

/// The tables of one level that a range read may visit, as a run of the
/// version's own list: a cursor holds the version once instead of a clone
/// of every table's handle, so making one costs the same with 5 tables in
/// a level as with 5 000.
struct LevelRun {
    version: Arc<Version>,
    level: usize,
    run: Range<usize>,
}

impl LevelRun {
    /// The tables of `level` (1 or deeper) overlapping `[start, end]`.
    fn new(version: &Arc<Version>, level: usize, start: Option<&[u8]>, end: Option<&[u8]>) -> Self {
        LevelRun {
            version: version.clone(),
            level,
            run: version.overlapping_run(level, start, end),
        }
    }
}

impl AsRef<[Arc<TableMeta>]> for LevelRun {
    fn as_ref(&self) -> &[Arc<TableMeta>] {
        self.version
            .level(self.level)
            .get(self.run.clone())
            .unwrap_or(&[])
    }
}

/// An iterator over `(key, value)` pairs of a range or prefix, in key order
/// or (with `.rev()`) reverse; from [`Db::range`](crate::Db::range),
/// [`Db::prefix`](crate::Db::prefix) or a [`Snapshot`](crate::Snapshot).
///
/// It reads a consistent view: the snapshot it was made at. It holds the
/// database open and pins every file it reads until it is dropped. After
/// an error it returns `None`; once the database is closed it returns
/// [`Error::Closed`] (once), whether it was advanced or not.
pub struct DbIter {
    inner: Option<RangeIter<Box<dyn UserCursor + Send>, Factory>>,
    error: Option<Error>,
    handle: Option<Arc<Handle>>,
}

impl std::fmt::Debug for DbIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIter").finish_non_exhaustive()
    }
}

impl DbIter {
    /// An iterator over `bounds` as of `snapshot` (the visible seqno for
    /// `None`), or one that returns the error of a closed database.
    pub(crate) fn open(
        handle: &Arc<Handle>,
        keyspace: &KeyspaceCore,
        bounds: KeyBounds,
        snapshot: Option<SeqNo>,
    ) -> Self {
        match open_view(handle, keyspace, snapshot) {
            Ok((sv, seqno)) => DbIter::new(handle.clone(), sv, bounds, seqno),
            Err(e) => DbIter::failed(e),
        }
    }

    fn new(handle: Arc<Handle>, sv: Arc<SuperVersion>, bounds: KeyBounds, seqno: SeqNo) -> Self {
        let tables = handle.engine.tables.clone();
        let factory: Factory = Box::new(move || build_cursor(&tables, &sv, &bounds, seqno));
        DbIter {
            inner: Some(RangeIter::new(factory)),
            error: None,
            handle: Some(handle),
        }
    }

    /// An iterator that returns `error` once.
    pub(crate) fn failed(error: Error) -> Self {
        DbIter {
            inner: None,
            error: Some(error),
            handle: None,
        }
    }

    /// `Closed` (once: the iterator is then exhausted) if the database
    /// was closed.
    fn check_open(&mut self) -> Option<Error> {
        let closed = self
            .handle
            .as_ref()
            .is_some_and(|handle| handle.engine.life.is_closed());
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
