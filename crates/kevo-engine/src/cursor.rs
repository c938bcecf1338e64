//! [`DbCursor`]: a positioned cursor over one consistent view, the way to
//! scan without an allocation per entry.
//!
//! [`DbIter`](crate::DbIter) hands out owned `(Bytes, Bytes)` pairs, which
//! costs two copies per entry; a `DbCursor` lends the current key and value
//! as slices of the block or memtable entry they live in, and can be moved
//! anywhere in its view again (`seek`, `seek_for_prev`, either end) without
//! building a new cursor stack, as RocksDB's iterators can.

use std::sync::Arc;

use kevo_core::SeqNo;
use kevo_iter::{KeyBounds, UserCursor};

use crate::engine::Handle;
use crate::error::{Error, Result};
use crate::iter::{build_stack, open_view, reuse_stack};
use crate::keyspace::KeyspaceCore;
use crate::read::{CursorStack, SuperVersion};

/// A cursor over every entry of a keyspace as of one view: the moment
/// [`Db::cursor`](crate::Db::cursor) (or
/// [`Keyspace::cursor`](crate::Keyspace::cursor)) was called, or a
/// [`Snapshot`](crate::Snapshot)'s seqno. Writes made after that are not
/// seen; the files the view reads stay pinned until the cursor is dropped.
///
/// A new cursor is not [`valid`](DbCursor::valid) until positioned. While
/// valid, [`key`](DbCursor::key) and [`value`](DbCursor::value) borrow the
/// current entry without copying it; moving the cursor ends the borrow. Any
/// method that moves the cursor returns an error for an I/O failure or
/// damage found on the way (the cursor is then invalid, and may be
/// positioned again), and [`Error::Closed`] once the database is closed.
///
/// ```
/// # fn main() -> Result<(), kevo_engine::Error> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// # let db = kevo_engine::Db::open(dir.path())?;
/// for key in ["a", "b", "c", "d"] { db.put(key, key.to_uppercase())?; }
/// let mut cursor = db.cursor();
/// cursor.seek("b")?;
/// let mut seen = Vec::new();
/// while cursor.valid() {
///     seen.push((cursor.key().to_vec(), cursor.value().to_vec()));
///     cursor.next()?;
/// }
/// assert_eq!(seen.len(), 3);
/// cursor.seek_for_prev("bb")?; // the last key <= "bb"
/// assert_eq!(cursor.key(), b"b");
/// # Ok(())
/// # }
/// ```
pub struct DbCursor {
    handle: Option<Arc<Handle>>,
    /// The view, until the first positioning call builds the stack over it.
    view: Option<(Arc<SuperVersion>, SeqNo)>,
    inner: Option<Box<CursorStack>>,
    /// Whether `inner` may be kept for a later cursor when this one is
    /// dropped: it reads every source of the view, and no call on it
    /// failed.
    reusable: bool,
    /// Whether `inner` is valid, as of the last call that moved it (kept
    /// so that `valid`, `key` and `value` ask the stack nothing more).
    at_entry: bool,
    /// Why the cursor could not be made (a closed database, a dropped
    /// keyspace): every positioning call returns it.
    failed: Option<Error>,
}

impl std::fmt::Debug for DbCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCursor")
            .field("valid", &self.valid())
            .finish_non_exhaustive()
    }
}

impl DbCursor {
    /// A cursor over `keyspace` as of `snapshot` (the visible seqno for
    /// `None`), or one whose every call fails as the closed database does.
    pub(crate) fn open(
        handle: &Arc<Handle>,
        keyspace: &KeyspaceCore,
        snapshot: Option<SeqNo>,
    ) -> Self {
        match open_view(handle, keyspace, snapshot) {
            Ok(view) => DbCursor {
                handle: Some(handle.clone()),
                view: Some(view),
                inner: None,
                reusable: false,
                at_entry: false,
                failed: None,
            },
            Err(e) => DbCursor::failed(e),
        }
    }

    /// A cursor whose every positioning call returns `error`.
    pub(crate) fn failed(error: Error) -> Self {
        DbCursor {
            handle: None,
            view: None,
            inner: None,
            reusable: false,
            at_entry: false,
            failed: Some(error),
        }
    }

    /// Whether the cursor is at an entry.
    pub fn valid(&self) -> bool {
        self.at_entry
    }

    /// The current entry's key; empty when the cursor is not
    /// [`valid`](DbCursor::valid).
    pub fn key(&self) -> &[u8] {
        match &self.inner {
            Some(c) if self.at_entry => c.key(),
            _ => &[],
        }
    }

    /// The current entry's value; empty when the cursor is not
    /// [`valid`](DbCursor::valid).
    pub fn value(&self) -> &[u8] {
        match &self.inner {
            Some(c) if self.at_entry => c.value(),
            _ => &[],
        }
    }

    /// Moves to the first entry whose key is `>= key` (invalid if none).
    ///
    /// # Errors
    /// See the type's documentation.
    pub fn seek(&mut self, key: impl AsRef<[u8]>) -> Result<()> {
        self.with_stack(|c| c.seek(key.as_ref()))
    }

    /// Moves to the last entry whose key is `<= key` (invalid if none).
    ///
    /// # Errors
    /// See the type's documentation.
    pub fn seek_for_prev(&mut self, key: impl AsRef<[u8]>) -> Result<()> {
        self.with_stack(|c| c.seek_for_prev(key.as_ref()))
    }

    /// Moves to the first entry (invalid if there is none).
    ///
    /// # Errors
    /// See the type's documentation.
    pub fn seek_to_first(&mut self) -> Result<()> {
        self.with_stack(|c| c.seek_to_first())
    }

    /// Moves to the last entry (invalid if there is none).
    ///
    /// # Errors
    /// See the type's documentation.
    pub fn seek_to_last(&mut self) -> Result<()> {
        self.with_stack(|c| c.seek_to_last())
    }

    /// Moves to the next entry (invalid past the last). Named as
    /// RocksDB's iterators name it; a cursor is not an [`Iterator`] (its
    /// entries are borrowed from it, and a move can fail).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the cursor is not valid; otherwise see
    /// the type's documentation.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<()> {
        self.step(|c| c.next())
    }

    /// Moves to the previous entry (invalid before the first).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the cursor is not valid; otherwise see
    /// the type's documentation.
    pub fn prev(&mut self) -> Result<()> {
        self.step(|c| c.prev())
    }

    /// `Closed` once the database is closed (the cursor is then invalid
    /// for good). Inline: every step asks; the answer is built out of line.
    #[inline]
    fn check_open(&mut self) -> Result<()> {
        let open = self.failed.is_none()
            && self
                .handle
                .as_ref()
                .is_some_and(|handle| !handle.engine.life.is_closed());
        if open { Ok(()) } else { self.not_open() }
    }

    /// Why [`check_open`](Self::check_open) refuses.
    #[cold]
    fn not_open(&mut self) -> Result<()> {
        if let Some(e) = &self.failed {
            // Creation fails only for a closed database or a dropped
            // keyspace; every call reports the same.
            return Err(match e {
                Error::InvalidArgument(reason) => Error::InvalidArgument(reason.clone()),
                _ => Error::Closed,
            });
        }
        let closed = self
            .handle
            .as_ref()
            .is_none_or(|handle| handle.engine.life.is_closed());
        if closed {
            self.inner = None;
            self.at_entry = false;
            self.view = None;
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Runs a call that moves the cursor stack (building the stack on the
    /// first call) and records whether it is then at an entry.
    fn with_stack(
        &mut self,
        call: impl FnOnce(&mut dyn UserCursor) -> kevo_core::Result<()>,
    ) -> Result<()> {
        self.check_open()?;
        self.at_entry = false;
        if self.inner.is_none()
            && let (Some(handle), Some((sv, seqno))) = (&self.handle, &self.view)
        {
            let tables = &handle.engine.tables;
            if let Some(stack) = reuse_stack(tables, sv, *seqno)? {
                self.inner = Some(stack);
                self.reusable = true;
            } else {
                let (stack, complete) = build_stack(tables, sv, &KeyBounds::unbounded(), *seqno)?;
                self.inner = Some(stack);
                self.reusable = complete;
            }
        }
        match self.inner.as_deref_mut() {
            Some(inner) => {
                let result = call(inner);
                self.at_entry = inner.valid();
                if result.is_err() {
                    self.reusable = false;
                }
                Ok(result?)
            }
            None => Err(Error::Closed),
        }
    }

    /// Runs `next` or `prev`, which need a valid cursor.
    fn step(
        &mut self,
        call: impl FnOnce(&mut dyn UserCursor) -> kevo_core::Result<()>,
    ) -> Result<()> {
        if !self.at_entry {
            self.check_open()?;
            return Err(Error::InvalidArgument(
                "the cursor is not at an entry: position it with a seek first".to_string(),
            ));
        }
        // At an entry: the stack is built, and `with_stack` only moves it.
        self.with_stack(call)
    }
}

impl Drop for DbCursor {
    /// Leaves the stack to the view's next cursor (see
    /// `SuperVersion::keep_cursor`) when it may serve one.
    fn drop(&mut self) {
        if let (Some(stack), Some((sv, _)), true) = (self.inner.take(), &self.view, self.reusable) {
            sv.keep_cursor(stack);
        }
    }
}
