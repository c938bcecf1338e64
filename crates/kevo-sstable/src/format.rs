//! Layout constants, block handles, the block trailer and the footer: what
//! the writer and the reader must agree on. No I/O happens here.
//!
//! ```text
//! +--------------+---------+-----+----------------+------------+---------+--------+
//! | data block 0 | trailer | ... | filter block + | properties | index   | footer |
//! |              |         |     | trailer (opt.) | + trailer  | + trail.| 72 B   |
//! +--------------+---------+-----+----------------+------------+---------+--------+
//! ```
//!
//! Version 2 adds a range-tombstone block between the last data block and
//! the filter block; its handle is in the properties block, not the footer.
//!
//! Every block is followed by a 9-byte trailer: the compression type (1 byte)
//! and the xxHash3-64 of the stored bytes and that type byte (8 bytes, little
//! endian). The footer holds the handles of the index, filter and properties
//! blocks, the index and filter types, the format version, its own checksum
//! and the magic. The byte-by-byte specification is `docs/format/sstable.md`.
//!
//! Format versions, in one place:
//!
//! | version | what it adds | written when |
//! |---|---|---|
//! | 1 ([`FORMAT_VERSION_MIN`]) | the first format | the table has no range tombstone |
//! | 2 ([`FORMAT_VERSION_RANGE_TOMBSTONES`]) | the range-tombstone block and two properties fields | the table has range tombstones |
//! | 3 ([`FORMAT_VERSION_LOCAL_FILTER`], [`FORMAT_VERSION`]) | filter type 3, the cache-local Bloom filter; properties as in version 2 | the table has a cache-local filter (the default) |

use std::fmt;

use kevo_core::{KEY_BYTES_MAX, Reader, TRAILER_BYTES, VALUE_BYTES_MAX, xxh3_64};

/// The newest format version: this crate reads every version from
/// [`FORMAT_VERSION_MIN`] to this one, and writes the oldest one that can
/// hold a table (3 with a cache-local filter; otherwise 1 without range
/// tombstones and 2 with them), so a table written without a cache-local
/// filter is read by older builds too.
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format version this crate reads (and the one it writes for a
/// table without range tombstones).
pub const FORMAT_VERSION_MIN: u32 = 1;

/// The format version that added the range-tombstone block (and the two
/// properties fields that locate it).
pub const FORMAT_VERSION_RANGE_TOMBSTONES: u32 = 2;

/// The format version that added the cache-local Bloom filter
/// ([`FilterType::LocalBloom`]); its properties block is laid out as in
/// version 2.
pub const FORMAT_VERSION_LOCAL_FILTER: u32 = 3;

const _: () = assert!(FORMAT_VERSION_MIN <= FORMAT_VERSION_RANGE_TOMBSTONES);
const _: () = assert!(FORMAT_VERSION_RANGE_TOMBSTONES <= FORMAT_VERSION_LOCAL_FILTER);
const _: () = assert!(FORMAT_VERSION_LOCAL_FILTER <= FORMAT_VERSION);

/// The last 8 bytes of every table file.
pub const TABLE_MAGIC: [u8; 8] = *b"KEVOSST\0";

/// Bytes in a block trailer: compression type (1) + checksum (8).
pub const BLOCK_TRAILER_BYTES: usize = 1 + 8;

/// Bytes of the footer covered by its checksum.
const FOOTER_CHECKED_BYTES: usize = 3 * BlockHandle::ENCODED_BYTES + 1 + 1 + 2 + 4;
/// Bytes in the footer, at the very end of the file.
pub const FOOTER_BYTES: usize = FOOTER_CHECKED_BYTES + 8 + TABLE_MAGIC.len();
const _: () = assert!(FOOTER_BYTES == 72);

/// Largest block, stored or uncompressed, a reader accepts (and a writer
/// produces): one entry of the largest key and value plus room to spare.
pub const BLOCK_BYTES_MAX: usize = 128 * 1024 * 1024;
const _: () = assert!(BLOCK_BYTES_MAX > VALUE_BYTES_MAX + KEY_BYTES_MAX + 64);
const _: () = assert!(BLOCK_BYTES_MAX <= u32::MAX as usize);

/// Largest configurable target size of a data block.
pub const BLOCK_BYTES_TARGET_MAX: usize = 16 * 1024 * 1024;

/// Largest configurable restart interval.
pub const RESTART_INTERVAL_MAX: usize = 1024;

/// Longest internal key (user key + trailer) a table holds.
pub const INTERNAL_KEY_BYTES_MAX: usize = KEY_BYTES_MAX + TRAILER_BYTES;

/// Default target size of a data block (uncompressed).
pub const BLOCK_BYTES_TARGET_DEFAULT: usize = 4 * 1024;

/// Default number of entries between restart points in a data block.
pub const RESTART_INTERVAL_DEFAULT: usize = 16;

/// How a block's stored bytes are compressed. Persisted as one byte in
/// every block trailer; 0 is never valid, retired values are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is.
    None = 1,
    /// `varint32(uncompressed length)` followed by one LZ4 block
    /// (the LZ4 block format, not the frame format).
    Lz4 = 2,
}

impl Compression {
    /// The compression with this persisted tag, if any.
    pub fn from_u8(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Compression::None),
            2 => Some(Compression::Lz4),
            _ => None,
        }
    }

    /// Whether this build can read and write it (LZ4 needs the `lz4` feature).
    pub fn is_supported(self) -> bool {
        match self {
            Compression::None => true,
            Compression::Lz4 => cfg!(feature = "lz4"),
        }
    }
}

/// How the index is organised. Persisted in the footer; 0 is never valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum IndexType {
    /// One index block whose entries point at data blocks.
    SingleLevel = 1,
    // 2: reserved for a two-level (partitioned) index, whose top block
    //    points at index partitions. Not written by format versions 1 and 2.
}

impl IndexType {
    /// The index type with this persisted tag, if any.
    pub fn from_u8(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(IndexType::SingleLevel),
            _ => None,
        }
    }
}

/// Which filter the table carries. Persisted in the footer; 0 is never valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FilterType {
    /// No filter block; the filter handle is `(0, 0)`.
    None = 1,
    /// A Bloom filter over user keys: xxHash3-64, double hashing (see
    /// `docs/format/sstable.md`).
    Bloom = 2,
    /// A cache-local Bloom filter over user keys: every probe of a key in
    /// one 64-byte line (format version 3 on).
    LocalBloom = 3,
}

impl FilterType {
    /// The filter type with this persisted tag, if any.
    pub fn from_u8(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(FilterType::None),
            2 => Some(FilterType::Bloom),
            3 => Some(FilterType::LocalBloom),
            _ => None,
        }
    }
}

/// Where a block lies in the file: its offset and the length of its stored
/// bytes (the trailer follows and is not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockHandle {
    /// Offset of the block's first byte.
    pub offset: u64,
    /// Length of the stored (possibly compressed) bytes, trailer excluded.
    pub size: u64,
}

impl BlockHandle {
    /// Bytes of a handle in the footer (two fixed `u64`s).
    pub const ENCODED_BYTES: usize = 16;

    /// Offset one past the block's trailer.
    pub fn end_with_trailer(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size)?
            .checked_add(BLOCK_TRAILER_BYTES as u64)
    }

    /// Appends the handle as two varints (its form in index entries).
    pub(crate) fn encode_varint(&self, buf: &mut Vec<u8>) {
        kevo_core::put_varint64(buf, self.offset);
        kevo_core::put_varint64(buf, self.size);
    }

    /// Decodes an index entry's value: exactly two varints.
    pub(crate) fn decode_varint(bytes: &[u8]) -> Option<BlockHandle> {
        let mut reader = Reader::new(bytes);
        let handle = BlockHandle {
            offset: reader.varint64()?,
            size: reader.varint64()?,
        };
        reader.is_empty().then_some(handle)
    }

    fn encode_fixed(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.offset.to_le_bytes());
        buf.extend_from_slice(&self.size.to_le_bytes());
    }

    fn decode_fixed(reader: &mut Reader<'_>) -> Option<BlockHandle> {
        Some(BlockHandle {
            offset: reader.u64_le()?,
            size: reader.u64_le()?,
        })
    }
}

impl fmt::Display for BlockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.offset, self.size)
    }
}

/// The checksum of a block: xxHash3-64 of its stored bytes followed by the
/// compression type byte (contiguous on disk, so one pass).
pub(crate) fn block_checksum(stored_and_type: &[u8]) -> u64 {
    xxh3_64(stored_and_type)
}

/// Appends the trailer for the block whose stored bytes end `buf`
/// (starting at `start`).
pub(crate) fn seal_block(buf: &mut Vec<u8>, start: usize, compression: Compression) {
    buf.push(compression as u8);
    let checksum = block_checksum(&buf[start..]);
    buf.extend_from_slice(&checksum.to_le_bytes());
}

/// What a block trailer says about the stored bytes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrailerCheck {
    /// The raw compression byte.
    pub(crate) compression_tag: u8,
    /// The checksum stored in the trailer.
    pub(crate) stored: u64,
    /// The checksum computed over the bytes.
    pub(crate) computed: u64,
}

/// Splits `raw` (stored bytes + trailer) and computes its checksum; `None`
/// if it is too short to hold a trailer.
pub(crate) fn check_trailer(raw: &[u8]) -> Option<TrailerCheck> {
    let split = raw.len().checked_sub(8)?;
    let (covered, checksum) = raw.split_at(split);
    let compression_tag = *covered.last()?;
    let stored = u64::from_le_bytes(checksum.try_into().ok()?);
    Some(TrailerCheck {
        compression_tag,
        stored,
        computed: block_checksum(covered),
    })
}

/// The fixed-size record at the end of every table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// The index block.
    pub index: BlockHandle,
    /// The filter block, `(0, 0)` when `filter_type` is [`FilterType::None`].
    pub filter: BlockHandle,
    /// The properties block.
    pub properties: BlockHandle,
    /// How the index is organised.
    pub index_type: IndexType,
    /// Which filter the table carries.
    pub filter_type: FilterType,
    /// The format version ([`FORMAT_VERSION_MIN`] ..= [`FORMAT_VERSION`]).
    pub format_version: u32,
}

/// Why a footer did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FooterError {
    /// Not [`FOOTER_BYTES`] long.
    Length,
    /// The last 8 bytes are not [`TABLE_MAGIC`].
    Magic,
    /// The checksum does not match.
    Checksum { stored: u64, computed: u64 },
    /// Checksum right, but a version this crate does not read.
    Version(u32),
    /// Checksum right, but an unknown type tag or nonzero flags.
    Field(&'static str),
}

impl fmt::Display for FooterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FooterError::Length => write!(f, "footer is not {FOOTER_BYTES} bytes"),
            FooterError::Magic => write!(f, "bad magic: not a kevo table, or truncated"),
            FooterError::Checksum { stored, computed } => write!(
                f,
                "footer checksum mismatch (stored {stored:#018x}, computed {computed:#018x})"
            ),
            FooterError::Version(v) => write!(
                f,
                "unsupported format version {v} (this build reads \
                 {FORMAT_VERSION_MIN} ..= {FORMAT_VERSION})"
            ),
            FooterError::Field(what) => write!(f, "footer: {what}"),
        }
    }
}

impl Footer {
    /// The encoded footer, exactly [`FOOTER_BYTES`] long.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(FOOTER_BYTES);
        self.index.encode_fixed(&mut buf);
        self.filter.encode_fixed(&mut buf);
        self.properties.encode_fixed(&mut buf);
        buf.push(self.index_type as u8);
        buf.push(self.filter_type as u8);
        buf.extend_from_slice(&0u16.to_le_bytes()); // flags
        buf.extend_from_slice(&self.format_version.to_le_bytes());
        debug_assert_eq!(buf.len(), FOOTER_CHECKED_BYTES);
        let checksum = xxh3_64(&buf);
        buf.extend_from_slice(&checksum.to_le_bytes());
        buf.extend_from_slice(&TABLE_MAGIC);
        debug_assert_eq!(buf.len(), FOOTER_BYTES);
        buf
    }

    /// Decodes and checks a footer: length, magic, checksum, then version,
    /// types and flags.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Footer, FooterError> {
        if bytes.len() != FOOTER_BYTES {
            return Err(FooterError::Length);
        }
        if bytes[FOOTER_BYTES - TABLE_MAGIC.len()..] != TABLE_MAGIC {
            return Err(FooterError::Magic);
        }
        let (checked, rest) = bytes.split_at(FOOTER_CHECKED_BYTES);
        let mut reader = Reader::new(rest);
        let stored = reader.u64_le().ok_or(FooterError::Length)?;
        let computed = xxh3_64(checked);
        if stored != computed {
            return Err(FooterError::Checksum { stored, computed });
        }
        let mut reader = Reader::new(checked);
        let short = FooterError::Length;
        let index = BlockHandle::decode_fixed(&mut reader).ok_or(short)?;
        let filter = BlockHandle::decode_fixed(&mut reader).ok_or(short)?;
        let properties = BlockHandle::decode_fixed(&mut reader).ok_or(short)?;
        let index_tag = reader.u8().ok_or(short)?;
        let filter_tag = reader.u8().ok_or(short)?;
        let flags = reader.u16_le().ok_or(short)?;
        let format_version = reader.u32_le().ok_or(short)?;
        if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&format_version) {
            return Err(FooterError::Version(format_version));
        }
        let index_type =
            IndexType::from_u8(index_tag).ok_or(FooterError::Field("unknown index type"))?;
        let filter_type =
            FilterType::from_u8(filter_tag).ok_or(FooterError::Field("unknown filter type"))?;
        if flags != 0 {
            return Err(FooterError::Field("nonzero flags"));
        }
        if filter_type == FilterType::None && filter != BlockHandle::default() {
            return Err(FooterError::Field("filter handle without a filter"));
        }
        if filter_type == FilterType::LocalBloom && format_version < FORMAT_VERSION_LOCAL_FILTER {
            return Err(FooterError::Field(
                "cache-local filter in a table older than version 3",
            ));
        }
        Ok(Footer {
            index,
            filter,
            properties,
            index_type,
            filter_type,
            format_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer() -> Footer {
        Footer {
            index: BlockHandle {
                offset: 100,
                size: 20,
            },
            filter: BlockHandle { offset: 1, size: 2 },
            properties: BlockHandle { offset: 3, size: 4 },
            index_type: IndexType::SingleLevel,
            filter_type: FilterType::Bloom,
            format_version: FORMAT_VERSION,
        }
    }

    #[test]
    fn footer_round_trips() {
        let encoded = footer().encode();
        assert_eq!(encoded.len(), FOOTER_BYTES);
        assert_eq!(Footer::decode(&encoded), Ok(footer()));
    }

    #[test]
    fn footer_with_any_flipped_bit_is_rejected() {
        let encoded = footer().encode();
        for bit in 0..encoded.len() * 8 {
            let mut damaged = encoded.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(Footer::decode(&damaged).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn every_readable_version_decodes_and_others_are_refused() {
        for format_version in FORMAT_VERSION_MIN..=FORMAT_VERSION {
            let footer = Footer {
                format_version,
                ..footer()
            };
            assert_eq!(Footer::decode(&footer.encode()), Ok(footer));
        }
        for format_version in [0, FORMAT_VERSION + 1, u32::MAX] {
            let encoded = Footer {
                format_version,
                ..footer()
            }
            .encode();
            assert_eq!(
                Footer::decode(&encoded),
                Err(FooterError::Version(format_version))
            );
        }
    }

    #[test]
    fn persisted_tags_are_stable() {
        assert_eq!(Compression::None as u8, 1);
        assert_eq!(Compression::Lz4 as u8, 2);
        assert_eq!(Compression::from_u8(0), None);
        assert_eq!(IndexType::from_u8(2), None);
        assert_eq!(FilterType::from_u8(0), None);
        assert_eq!(FilterType::Bloom as u8, 2);
        assert_eq!(FilterType::LocalBloom as u8, 3);
        assert_eq!(FilterType::from_u8(4), None);
    }

    #[test]
    fn a_cache_local_filter_needs_version_3() {
        for format_version in FORMAT_VERSION_MIN..=FORMAT_VERSION {
            let footer = Footer {
                format_version,
                filter_type: FilterType::LocalBloom,
                ..footer()
            };
            let decoded = Footer::decode(&footer.encode());
            if format_version >= FORMAT_VERSION_LOCAL_FILTER {
                assert_eq!(decoded, Ok(footer));
            } else {
                assert!(
                    matches!(decoded, Err(FooterError::Field(_))),
                    "version {format_version}: {decoded:?}"
                );
            }
        }
    }

    #[test]
    fn trailer_checksum_covers_the_type_byte() {
        let mut buf = b"block".to_vec();
        seal_block(&mut buf, 0, Compression::None);
        let check = check_trailer(&buf).unwrap();
        assert_eq!(check.stored, check.computed);
        buf[5] = Compression::Lz4 as u8;
        let check = check_trailer(&buf).unwrap();
        assert_ne!(check.stored, check.computed);
    }
}
