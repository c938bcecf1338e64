//! The iterators of the kevo storage engine.
//!
//! A read over a key range sees many sorted sources at once (the memtable,
//! the immutable memtables, the tables of each level), each holding every
//! version of its keys plus tombstones. This crate turns them into what a
//! reader expects: one entry per user key, as of a snapshot, within a range,
//! from either end. It composes [`Cursor`](kevo_core::Cursor)s and does no
//! I/O of its own; errors from the sources are passed up as
//! [`kevo_core::Error`].
//!
//! The pieces stack bottom-up:
//!
//! ```text
//!   RangeIter            Iterator + DoubleEndedIterator of (user key, value);
//!     |                  front and back each own a stack built by a factory
//!   VisibleCursor        UserCursor: the newest version <= snapshot per user key,
//!     |                  tombstoned keys hidden
//!   BoundedCursor        Cursor: only user keys within KeyBounds (range or prefix),
//!     |                  seeks clamped to the bounds
//!   MergingCursor        Cursor: the union of N children in internal-key order,
//!     |                  a binary heap, either direction
//!   sources              memtables, tables, levels, or VecCursor
//! ```
//!
//! - [`MergingCursor`] merges child cursors; ties between equal internal keys
//!   go to the lower child index, and changing direction repositions every
//!   other child around the current key.
//! - [`BoundedCursor`] restricts a cursor to a [`KeyBounds`]; **it never
//!   yields a key outside its bounds**.
//! - [`VisibleCursor`] resolves versions and tombstones at a snapshot. Its
//!   keys are user keys, so it implements the separate [`UserCursor`] trait,
//!   not `Cursor`.
//! - [`RangeIter`] is the user-facing iterator: its front and back meet in
//!   the middle without repeating or skipping an entry, like
//!   `BTreeMap::range`, and it is fused after an error.
//! - [`ConcatCursor`] is one `Cursor` over a run of disjoint sorted sources
//!   (the tables of one level), opening only the source it stands in.
//! - [`VecCursor`] is a `Cursor` over a sorted in-memory list, for tests,
//!   benchmarks and callers without a memtable.
//!
//! ```
//! use bytes::Bytes;
//! use kevo_core::{Cursor, InternalKey, ValueKind};
//! use kevo_iter::{BoundedCursor, KeyBounds, MergingCursor, RangeIter, VecCursor, VisibleCursor};
//!
//! # fn main() -> kevo_core::Result<()> {
//! // Two sources, say an older table and a newer memtable.
//! let entry = |key: &str, seqno, kind, value: &str| {
//!     let key = InternalKey::new(key.as_bytes(), seqno, kind);
//!     (Bytes::copy_from_slice(key.as_bytes()), Bytes::from(value.to_string()))
//! };
//! let table = VecCursor::from_unsorted(vec![
//!     entry("apple", 1, ValueKind::Put, "red"),
//!     entry("banana", 2, ValueKind::Put, "yellow"),
//!     entry("cherry", 3, ValueKind::Put, "dark"),
//! ])?;
//! let memtable = VecCursor::from_unsorted(vec![
//!     entry("banana", 4, ValueKind::Delete, ""),
//!     entry("cherry", 5, ValueKind::Put, "red"),
//! ])?;
//!
//! // Everything from "b" on, as of seqno 5, from both ends.
//! let (snapshot, bounds) = (5, KeyBounds::new("b"..));
//! let iter = RangeIter::new(move || {
//!     let sources: Vec<Box<dyn Cursor>> = vec![Box::new(memtable.clone()), Box::new(table.clone())];
//!     let merged = MergingCursor::new(sources);
//!     Ok(VisibleCursor::new(BoundedCursor::new(merged, bounds.clone()), snapshot))
//! });
//! let items: Vec<(Bytes, Bytes)> = iter.rev().collect::<kevo_core::Result<_>>()?;
//! assert_eq!(items, [(Bytes::from("cherry"), Bytes::from("red"))]);
//! # Ok(())
//! # }
//! ```

mod bounds;
mod concat;
mod merging;
mod range_iter;
mod user_cursor;
mod vec_cursor;
mod visible;

pub use bounds::{BoundedCursor, KeyBounds};
pub use concat::{ConcatCursor, ConcatSource};
pub use merging::MergingCursor;
pub use range_iter::RangeIter;
pub use user_cursor::UserCursor;
pub use vec_cursor::VecCursor;
pub use visible::VisibleCursor;
