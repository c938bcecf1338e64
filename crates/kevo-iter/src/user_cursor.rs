//! The [`UserCursor`] trait: a cursor over user keys.

use kevo_core::Result;

/// A position in an ordered sequence of `(user key, value)` entries: one
/// entry per user key, user keys strictly ascending bytewise.
///
/// This is what a reader sees at a snapshot, with versions and tombstones
/// resolved. It mirrors [`Cursor`](kevo_core::Cursor) method for method, but
/// it is a separate trait on purpose: a `Cursor`'s keys and seek targets are
/// *internal* keys, and a user-key cursor passed where an internal one is
/// expected (say, as a child of a [`MergingCursor`](crate::MergingCursor))
/// would be silently wrong. The type system keeps the two apart.
///
/// [`VisibleCursor`](crate::VisibleCursor) implements it; a transaction can
/// implement it to merge its own writes over a snapshot, and
/// [`RangeIter`](crate::RangeIter) iterates any implementation.
///
/// # Contract
/// The same as [`Cursor`](kevo_core::Cursor)'s, with user keys:
/// - a new cursor is not [`valid`](UserCursor::valid) until positioned by a
///   `seek*` method;
/// - `key()` and `value()` may only be called while `valid()`, and panic
///   otherwise;
/// - `next()` and `prev()` require `valid()`;
/// - a method that returns `Err` leaves the cursor invalid;
/// - moving past either end leaves the cursor invalid.
pub trait UserCursor {
    /// Whether the cursor is positioned at an entry.
    fn valid(&self) -> bool;

    /// The current entry's user key.
    fn key(&self) -> &[u8];

    /// The current entry's value.
    fn value(&self) -> &[u8];

    /// Positions at the first entry whose user key is `>= target`.
    ///
    /// # Errors
    /// I/O or corruption in the underlying sources.
    fn seek(&mut self, target: &[u8]) -> Result<()>;

    /// Positions at the last entry whose user key is `<= target`.
    ///
    /// # Errors
    /// I/O or corruption in the underlying sources.
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()>;

    /// Positions at the first entry.
    ///
    /// # Errors
    /// I/O or corruption in the underlying sources.
    fn seek_to_first(&mut self) -> Result<()>;

    /// Positions at the last entry.
    ///
    /// # Errors
    /// I/O or corruption in the underlying sources.
    fn seek_to_last(&mut self) -> Result<()>;

    /// Moves to the next entry. Requires `valid()`.
    ///
    /// # Errors
    /// I/O or corruption in the underlying sources.
    fn next(&mut self) -> Result<()>;

    /// Moves to the previous entry. Requires `valid()`.
    ///
    /// # Errors
    /// I/O or corruption in the underlying sources.
    fn prev(&mut self) -> Result<()>;
}

impl<U: UserCursor + ?Sized> UserCursor for Box<U> {
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
}
