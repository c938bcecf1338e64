//! The in-memory table of the kevo storage engine.
//!
//! Every write lands here after the write-ahead log: a [`MemTable`] keeps
//! entries `(user key, seqno, kind) → value` in internal-key order (user key
//! ascending, newest seqno first; see [`kevo_core::compare_internal_keys`]).
//! It answers point lookups as of a snapshot ([`MemTable::get`] →
//! [`Lookup`]) and ordered scans through a [`MemTableCursor`], which
//! implements [`kevo_core::Cursor`] so the merging iterators treat it like
//! any table. When [`MemTable::approximate_bytes`] passes the engine's
//! threshold, the engine freezes the table (stops inserting), starts a new
//! one and flushes the frozen one to an L0 table with a cursor.
//!
//! ```
//! use std::sync::Arc;
//! use kevo_core::{Cursor, InternalKey, ValueKind};
//! use kevo_memtable::{Lookup, MemTable};
//!
//! # fn main() -> kevo_core::Result<()> {
//! let table = Arc::new(MemTable::new());
//! table.insert(b"apple", 1, ValueKind::Put, b"red");
//! table.insert(b"apple", 3, ValueKind::Put, b"green");
//! table.insert(b"pear", 2, ValueKind::Delete, b"");
//!
//! // Point lookups answer from the newest entry at or below the snapshot.
//! assert_eq!(table.get(b"apple", 2), Lookup::Found("red".into()));
//! assert_eq!(table.get(b"apple", 9), Lookup::Found("green".into()));
//! assert_eq!(table.get(b"pear", 9), Lookup::Deleted);
//! assert_eq!(table.get(b"plum", 9), Lookup::Absent);
//!
//! // A cursor owns its share of the table and walks every version.
//! let mut cursor = table.cursor();
//! drop(table);
//! cursor.seek(InternalKey::for_lookup(b"apple", 2).as_bytes())?;
//! assert_eq!(cursor.key(), InternalKey::new(b"apple", 1, ValueKind::Put).as_bytes());
//! assert_eq!(cursor.value(), b"red");
//! cursor.next()?;
//! assert_eq!(cursor.key(), InternalKey::new(b"pear", 2, ValueKind::Delete).as_bytes());
//! cursor.prev()?;
//! cursor.prev()?;
//! assert_eq!(cursor.value(), b"green");
//! # Ok(())
//! # }
//! ```
//!
//! # Thread safety
//!
//! `MemTable` and `MemTableCursor` are `Send + Sync`. The intended use is
//! **one writer and any number of readers at once**: the engine's write
//! leader inserts while `get`s and cursors run on other threads. Nothing
//! takes a lock: the skip list (`crossbeam-skiplist`) is lock-free, a read
//! never waits for the writer, and the byte counter is an atomic.
//!
//! - An entry is visible to every `get` and cursor that starts after its
//!   `insert` returned, on any thread that synchronises with the inserting
//!   one (for example through the engine's published visible seqno). A
//!   reader running concurrently with an insert may or may not see it.
//! - Readers get isolation from seqnos, not from the memtable: a cursor may
//!   yield entries inserted after it was created. The engine publishes a
//!   seqno only after all entries up to it are inserted, and readers skip
//!   entries above their snapshot.
//! - Concurrent writers are safe too (the skip list accepts concurrent
//!   inserts, and the byte count misses none), but then entries may become
//!   visible out of seqno order; publishing seqnos in order is the caller's
//!   job.
//!
//! # What an insert costs
//!
//! One insert of a user key of `k` bytes and a value of `v` bytes makes
//! **one heap allocation**, the skip-list node: 48 bytes (the 40-byte
//! inline record with the `Bytes` handle, key length and kind; the node's
//! reference count and height) plus 8 bytes per tower link; heights are
//! geometric with p = 1/2, so 64 bytes on average.
//!
//! The internal key (user key and trailer) and the value (a tombstone
//! stores none) are copied side by side, `k + 8 + v` bytes, into the
//! memtable's arena: chunks of 64 KiB that the entries' [`bytes::Bytes`]
//! share and that are freed with the last entry in them. An entry over
//! 8 KiB gets a buffer of its own instead. Freeing a flushed memtable then
//! frees a node per entry and a chunk per few hundred entries: with a
//! buffer per entry, the background thread freeing them held glibc's
//! allocator lock against the writer filling the next memtable (1 M random
//! 100-byte puts: 343 k/s with a buffer each, 431 k/s with the arena).
//!
//! [`MemTable::approximate_bytes`] charges each entry `k + 8 + v +`
//! [`ENTRY_OVERHEAD_BYTES`] (80 on 64-bit targets): the requested bytes
//! above, on average, plus two words for the allocator's header and
//! rounding and for the chunk space left unused at a chunk's end. Measured
//! (`tests/accounting.rs`), the charge is within 20% of both the bytes
//! requested and, with glibc, the heap chunks taken. `get` copies the value
//! it returns into a buffer of its own (a slice of the chunk would keep the
//! whole chunk alive as long as the caller keeps the value), and builds its
//! lookup key on the stack for user keys up to 120 bytes.
//!
//! The skip list itself (head tower, counters) costs under 1 KiB per
//! memtable, not charged.

mod cursor;
mod memtable;
mod record;

pub use cursor::MemTableCursor;
pub use memtable::{Lookup, MemTable};
pub use record::ENTRY_OVERHEAD_BYTES;
