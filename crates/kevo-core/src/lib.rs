//! The shared vocabulary of the kevo storage engine.
//!
//! Every other kevo crate depends on this one and on nothing above it. It
//! holds what the layers must agree on:
//!
//! - **internal keys** ([`InternalKey`], [`compare_internal_keys`]): a user
//!   key plus an 8-byte trailer `(seqno << 8) | kind`, ordered by user key
//!   ascending then seqno descending;
//! - **sequence numbers and kinds** ([`SeqNo`], [`ValueKind`]), and
//!   **keyspace ids** ([`KeyspaceId`], [`DEFAULT_KEYSPACE`]);
//! - **range tombstones** ([`RangeTombstone`]) and their fragmented form
//!   ([`FragmentedTombstones`]) that memtables, tables and iterators query;
//! - the **[`Cursor`]** trait that memtables, tables and merging iterators
//!   implement;
//! - **coding** helpers: varints, fixed-width integers and the bounds-checked
//!   [`Reader`] decoders are built on;
//! - **checksums** ([`crc32`], [`xxh3_64`]);
//! - the **file-system trait** [`Fs`] with [`OsFs`] for real use and, with
//!   the `testing` feature, `MemFs` for tests (with a power-loss
//!   `MemFs::crash`) and `FaultFs` to inject I/O errors.
//!
//! ```
//! use kevo_core::{compare_internal_keys, InternalKey, ValueKind};
//! use std::cmp::Ordering;
//!
//! let newer = InternalKey::new(b"apple", 7, ValueKind::Put);
//! let older = InternalKey::new(b"apple", 3, ValueKind::Delete);
//! // The newest version of a key sorts first.
//! assert_eq!(compare_internal_keys(newer.as_bytes(), older.as_bytes()), Ordering::Less);
//! ```

mod checksum;
mod chunk;
mod coding;
mod cursor;
mod error;
pub mod fs;
mod key;
mod keyspace;
mod range_del;

pub use checksum::{crc32, xxh3_64};
pub use chunk::ChunkArena;
pub use coding::{
    Reader, VARINT32_BYTES_MAX, VARINT64_BYTES_MAX, get_varint32, get_varint64, put_varint32,
    put_varint64, varint_len,
};
pub use cursor::Cursor;
pub use error::{Error, Result};
#[cfg(any(test, feature = "testing"))]
pub use fs::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger, MemFs};
pub use fs::{File, FileLock, Fs, OsFs};
pub use key::{
    InternalKey, KEY_BYTES_MAX, LOOKUP_KIND, ParsedInternalKey, SEQNO_MAX, SeqNo, TRAILER_BYTES,
    VALUE_BYTES_MAX, ValueKind, compare_internal_keys, encode_internal_key, pack_trailer,
    parse_internal_key, split_internal_key, unpack_trailer, user_key,
};
pub use keyspace::{
    DEFAULT_KEYSPACE, DEFAULT_KEYSPACE_NAME, KEYSPACE_NAME_BYTES_MAX, KeyspaceId,
    check_keyspace_name,
};
pub use range_del::{
    Fragment, FragmentedTombstones, RANGE_DELETE_KIND, RangeTombstone, compare_tombstones,
};
