//! The cursor trait every ordered source in kevo implements.

use crate::Result;
use crate::key::SeqNo;

/// A position in an ordered sequence of `(internal key, value)` entries.
///
/// Memtables, table blocks, tables, levels and merging iterators all
/// implement `Cursor`; user-facing iterators are built on top of it.
///
/// # Contract
/// - A new cursor is not [`valid`](Cursor::valid) until positioned by one of
///   the `seek*` methods.
/// - Entries are in [`compare_internal_keys`](crate::compare_internal_keys)
///   order; `key()` returns an encoded internal key.
/// - `key()` and `value()` may only be called while `valid()`; they panic
///   otherwise (a caller bug, never a data error).
/// - A method that returns `Err` leaves the cursor invalid.
/// - Moving past either end leaves the cursor invalid; it can be
///   repositioned with any `seek*`.
pub trait Cursor {
    /// Whether the cursor is positioned at an entry.
    fn valid(&self) -> bool;

    /// The current entry's internal key.
    fn key(&self) -> &[u8];

    /// The current entry's value (empty for tombstones).
    fn value(&self) -> &[u8];

    /// Positions at the first entry `>= target` (an internal key).
    ///
    /// # Errors
    /// I/O or corruption in the underlying source.
    fn seek(&mut self, target: &[u8]) -> Result<()>;

    /// Positions at the last entry `<= target` (an internal key).
    ///
    /// # Errors
    /// I/O or corruption in the underlying source.
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()>;

    /// Positions at the first entry.
    ///
    /// # Errors
    /// I/O or corruption in the underlying source.
    fn seek_to_first(&mut self) -> Result<()>;

    /// Positions at the last entry.
    ///
    /// # Errors
    /// I/O or corruption in the underlying source.
    fn seek_to_last(&mut self) -> Result<()>;

    /// Moves to the next entry. Requires `valid()`.
    ///
    /// # Errors
    /// I/O or corruption in the underlying source.
    fn next(&mut self) -> Result<()>;

    /// Moves to the previous entry. Requires `valid()`.
    ///
    /// # Errors
    /// I/O or corruption in the underlying source.
    fn prev(&mut self) -> Result<()>;

    /// Moves past entries a range tombstone deletes, where the cursor can
    /// do that faster than stepping (a merging cursor seeks the sources
    /// that hold only older entries; see `kevo_iter::MergingCursor`).
    ///
    /// The caller guarantees that every entry with a seqno below `seqno`
    /// lying between the current entry and `target` (an internal key;
    /// `forward`: the entries before `target`, else the entries after it)
    /// is deleted for its reader. The cursor may move past any of those
    /// entries and must not move past any other; it stays valid or not as
    /// stepping would leave it. Returns whether anything moved. The default
    /// moves nothing and the caller steps. Requires `valid()`.
    ///
    /// # Errors
    /// I/O or corruption in the underlying source.
    fn skip_deleted(&mut self, target: &[u8], seqno: SeqNo, forward: bool) -> Result<bool> {
        let _ = (target, seqno, forward);
        Ok(false)
    }

    /// Seeks as [`seek`](Cursor::seek) does, where the caller guarantees
    /// that every entry with a seqno below `seqno` from `target` up to (not
    /// including) `skip_to` is deleted for its reader (a seek that lands in
    /// a range tombstone's span). A cursor that knows which of its sources
    /// hold only such older entries may seek those to `skip_to` straight
    /// away, sparing a second seek over the span. The default seeks to
    /// `target`.
    ///
    /// # Errors
    /// I/O or corruption in the underlying source.
    fn seek_past_deleted(&mut self, target: &[u8], skip_to: &[u8], seqno: SeqNo) -> Result<()> {
        let _ = (skip_to, seqno);
        self.seek(target)
    }

    /// The internal key [`seek_to_first`](Cursor::seek_to_first) seeks to,
    /// where the cursor has a lower bound (a bounded cursor); `None`: it
    /// starts at the first entry there is. Lets a caller that knows more
    /// (range tombstones) seek there itself.
    fn lower_bound(&self) -> Option<&[u8]> {
        None
    }

    /// Lets go of what the cursor's position holds (a table cursor's data
    /// block, counted as pinned while held; a level cursor's open table),
    /// keeping its own buffers: for a cursor put aside to serve a later
    /// read. The cursor may be invalid afterwards, and the caller must not
    /// read it before a `seek*` positions it again. The default lets go of
    /// nothing, for cursors whose position holds nothing.
    fn release(&mut self) {}
}

impl<C: Cursor + ?Sized> Cursor for Box<C> {
    fn valid(&self) -> bool {
        (**self).valid()
    }
    fn key(&self) -> &[u8] {
        (**self).key()
    }
    fn value(&self) -> &[u8] {
        (**self).value()
    }
    fn seek(&mut self, target: &[u8]) -> Result<()> {
        (**self).seek(target)
    }
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        (**self).seek_for_prev(target)
    }
    fn seek_to_first(&mut self) -> Result<()> {
        (**self).seek_to_first()
    }
    fn seek_to_last(&mut self) -> Result<()> {
        (**self).seek_to_last()
    }
    fn next(&mut self) -> Result<()> {
        (**self).next()
    }
    fn prev(&mut self) -> Result<()> {
        (**self).prev()
    }
    fn skip_deleted(&mut self, target: &[u8], seqno: SeqNo, forward: bool) -> Result<bool> {
        (**self).skip_deleted(target, seqno, forward)
    }
    fn seek_past_deleted(&mut self, target: &[u8], skip_to: &[u8], seqno: SeqNo) -> Result<()> {
        (**self).seek_past_deleted(target, skip_to, seqno)
    }
    fn lower_bound(&self) -> Option<&[u8]> {
        (**self).lower_bound()
    }
    fn release(&mut self) {
        (**self).release()
    }
}
