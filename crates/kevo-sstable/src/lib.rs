//! Sorted table files ("SSTs") of the kevo storage engine.
//!
//! A table holds internal keys (see [`kevo_core::InternalKey`]) in order,
//! with their values, in checksummed blocks. This crate depends on
//! `kevo-core` alone, so a file tool can read tables without the engine.
//!
//! ```text
//! data block + trailer ... | range tombstones + trailer (version 2)
//!                          | filter + trailer | properties + trailer
//!                          | index + trailer  | footer (72 bytes)
//! ```
//!
//! - [`TableWriter`] streams sorted entries into a new file through a
//!   [`kevo_core::Fs`] and returns a [`TableMeta`] for the manifest. Range
//!   tombstones ([`kevo_core::RangeTombstone`]) are added in any order and
//!   stored fragmented in a range-tombstone block (format version 2; a
//!   table without any is written in version 1, as before).
//! - [`Table::open`] checks the footer, index, filter and properties and
//!   keeps them in memory, the index decoded into flat arrays (28 bytes
//!   plus the separator key per data block; see [`Table`]);
//!   [`Table::get`] consults the Bloom filter and then reads one data block;
//!   [`Table::cursor`] returns a [`TableCursor`], a [`kevo_core::Cursor`]
//!   in both directions; both see point entries only.
//!   [`Table::range_tombstones`] are the range tombstones, decoded at open
//!   ([`decode_range_tombstones`] is the block decoder alone).
//! - Data blocks come through a [`BlockCache`]; [`LruBlockCache`] is a
//!   sharded, byte-bounded LRU shared by every table.
//! - [`Table::blocks`], [`Table::verify`] and [`Table::properties`] are the
//!   hooks for `kevo sst dump` and `kevo sst verify`.
//!
//! Every block read verifies its checksum; damage is reported as
//! [`kevo_core::Error::Corruption`] with the file and offset, never
//! returned as data. The byte format is specified in
//! `docs/format/sstable.md`.
//!
//! Errors are [`kevo_core::Error`]: the [`kevo_core::Cursor`] trait returns
//! it, and a table's failures are exactly its `Io`, `Corruption` and
//! `InvalidArgument` variants.
//!
//! # Cargo features
//! - `lz4` (default): LZ4 block compression through the pure-Rust
//!   `lz4_flex`. Without it, tables are written uncompressed and an LZ4
//!   block is refused with `InvalidArgument`.

mod block;
mod cache;
mod cursor;
pub mod filter;
mod format;
mod index;
mod properties;
mod range_tombstones;
mod table;
mod writer;

pub use block::Block;
pub use cache::{BlockCache, CacheKey, LruBlockCache};
pub use cursor::TableCursor;
pub use filter::{BLOOM_BITS_PER_KEY_DEFAULT, BLOOM_BITS_PER_KEY_MAX, BLOOM_PROBES_MAX};
pub use format::{
    BLOCK_BYTES_MAX, BLOCK_BYTES_TARGET_DEFAULT, BLOCK_BYTES_TARGET_MAX, BLOCK_TRAILER_BYTES,
    BlockHandle, Compression, FOOTER_BYTES, FORMAT_VERSION, FORMAT_VERSION_LOCAL_FILTER,
    FORMAT_VERSION_MIN, FORMAT_VERSION_RANGE_TOMBSTONES, FilterType, Footer,
    INTERNAL_KEY_BYTES_MAX, IndexType, RESTART_INTERVAL_DEFAULT, RESTART_INTERVAL_MAX, TABLE_MAGIC,
};
pub use properties::Properties;
pub use range_tombstones::decode_range_tombstones;
pub use table::{
    BlockInfo, BlockKind, BlockWalk, ChecksumStatus, Found, ReadOptions, SalvageReport,
    SkippedBlock, Table, VerifyReport,
};
pub use writer::{TableMeta, TableOptions, TableWriter};
