//! The pieces of optimistic serializable transactions for the kevo storage
//! engine, independent of the engine itself.
//!
//! A transaction reads at a snapshot, buffers its writes, and at commit is
//! checked against what others committed meanwhile (serializable snapshot
//! isolation, optimistic: nothing is locked while it runs). This crate holds
//! the parts that need no storage:
//!
//! - [`WriteBuffer`]: the transaction's pending writes, one per key, in key
//!   order (`None` = delete).
//! - [`MergedIter`]: read-your-writes over a range, the buffer laid over the
//!   snapshot's entries, from either end.
//! - [`ReadSet`]: the point keys the transaction read and the ranges it
//!   scanned.
//! - [`ConflictTracker`]: the keys written by commits while transactions are
//!   active, and the commit-time [`check`](ConflictTracker::check) that
//!   fails with a [`Conflict`] if a later commit wrote a key the transaction
//!   read, a key in a range it scanned (a phantom), or a key it writes.
//!
//! The engine owns the snapshot, the locking and the write path; it calls
//! [`ConflictTracker::record`] for every write group while
//! [`ConflictTracker::has_active`], and checks and applies a transaction's
//! buffer under its single-writer mutex. Architecture invariant: this crate
//! does no I/O and starts no threads; it depends on `bytes` only.
//!
//! ```
//! use std::ops::Bound;
//! use bytes::Bytes;
//! use kevo_txn::{ConflictReason, ConflictTracker, MergedIter, ReadSet, TrackerOptions, WriteBuffer};
//!
//! let mut tracker = ConflictTracker::new(TrackerOptions::default());
//! // The snapshot, as of seqno 7: a=1, b=2.
//! let snapshot = 7;
//! let base = vec![(Bytes::from("a"), Bytes::from("1")), (Bytes::from("b"), Bytes::from("2"))];
//! tracker.begin(snapshot);
//!
//! // The transaction deletes a, puts c, then scans everything.
//! let mut writes = WriteBuffer::new();
//! writes.delete(Bytes::from("a"));
//! writes.put(Bytes::from("c"), Bytes::from("3"));
//! let mut reads = ReadSet::new();
//! reads.add_range(Bound::Unbounded, Bound::Unbounded);
//! let buffered = writes.range(Bound::Unbounded, Bound::Unbounded).collect();
//! let base = base.into_iter().map(Ok::<_, std::io::Error>);
//! let seen: Vec<_> = MergedIter::new(base, buffered).rev().collect::<Result<_, _>>().unwrap();
//! assert_eq!(seen, [(Bytes::from("c"), Bytes::from("3")), (Bytes::from("b"), Bytes::from("2"))]);
//!
//! // Meanwhile another writer commits "bb" at seqno 8: a phantom in the scan.
//! tracker.record(8, [Bytes::from("bb")]);
//! let keys: Vec<Bytes> = writes.keys().cloned().collect();
//! let conflict = tracker.check(snapshot, &reads, &keys).unwrap_err();
//! assert_eq!(conflict.reason, ConflictReason::ScannedRangeWritten);
//! assert_eq!((conflict.key, conflict.committed_seqno), (Bytes::from("bb"), 8));
//! tracker.end(snapshot);
//! ```

mod key_range;
mod merged_iter;
mod read_set;
mod tracker;
mod write_buffer;

pub use merged_iter::MergedIter;
pub use read_set::ReadSet;
pub use tracker::{
    Conflict, ConflictReason, ConflictTracker, DEFAULT_MAX_HISTORY_BYTES, TrackerOptions,
};
pub use write_buffer::WriteBuffer;
