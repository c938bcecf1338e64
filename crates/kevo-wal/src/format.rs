//! The segment layout, shared by the writer and the reader.
//!
//! See `docs/format/wal.md` for the byte tables and a worked example.
//!
//! ```text
//! segment file = block 0 | block 1 | ...          (blocks of BLOCK_BYTES, the last may be short)
//! block 0      = segment header (SEGMENT_HEADER_BYTES) | fragments ...
//! block k      = fragments ... | zero padding (< FRAGMENT_HEADER_BYTES)
//!
//! segment header: magic "KEVOWAL\0" | version u16 | flags u16 | segment u64 | crc32 u32
//!                 version: FORMAT_VERSION (4) written, FORMAT_VERSION_MIN..=FORMAT_VERSION read;
//!                 log files (log::LogWriter): LOG_FORMAT_VERSION (1), the only one read
//! fragment:       crc32 u32 | length u16 | type u8 | tag u32 | payload (length bytes)
//!                 crc32 covers length, type, tag and payload
//! ```
//!
//! A record (one [`Batch`](crate::Batch)) is stored as one `Full` fragment
//! or as `First`, `Middle`*, `Last` fragments; a fragment never crosses a
//! block boundary. From version 4, a segment the log rotated into opens
//! with one `Predecessor` fragment: the number and final length of the
//! segment before it. The tag is the low 32 bits of the segment number, so bytes
//! left in a recycled segment file by its previous life never pass for
//! records of the new one.

use std::ops::RangeInclusive;

use kevo_core::{Reader, crc32};

/// Bytes in one block. Fragments never cross a block boundary.
pub const BLOCK_BYTES: usize = 32 * 1024;

/// Bytes in a fragment header: crc (4), length (2), type (1), tag (4).
pub const FRAGMENT_HEADER_BYTES: usize = 4 + 2 + 1 + 4;

/// Bytes in the segment header at the start of every segment file.
pub const SEGMENT_HEADER_BYTES: usize = 8 + 2 + 2 + 8 + 4;

/// The segment header's magic number.
pub const SEGMENT_MAGIC: [u8; 8] = *b"KEVOWAL\0";

/// The segment format this code writes in every new WAL segment's header.
///
/// | version | change |
/// |---|---|
/// | 1 | first format |
/// | 2 | entries of a non-default keyspace: tag `kind \| 0x80`, then the keyspace as a varint32 |
/// | 3 | range deletes: kind `3`, the start key, then the end key length-prefixed |
/// | 4 | a segment started by a rotation opens with a `Predecessor` fragment (type `5`) |
///
/// Versions 1 to 3 share the framing; only batches changed. An older reader
/// refuses a newer segment rather than misread it.
pub const FORMAT_VERSION: u16 = 4;

/// The oldest segment format this code reads. A version-1 segment holds
/// entries of the default keyspace only (a keyspace field in one is damage).
pub const FORMAT_VERSION_MIN: u16 = 1;

/// The header version of log files written with
/// [`LogWriter`](crate::log::LogWriter) (the manifest), the only one their
/// reader accepts. Their framing has not changed since version 1, and they
/// hold no batches, so they keep it: a manifest written by this code is
/// read by older code, and an older one by this code.
pub const LOG_FORMAT_VERSION: u16 = 1;

/// The first segment format whose batches may hold entries of keyspaces
/// other than the default one.
pub(crate) const FORMAT_VERSION_KEYSPACES: u16 = 2;

/// The first segment format whose batches may hold range deletes.
pub(crate) const FORMAT_VERSION_RANGE_DELETES: u16 = 3;

/// The first segment format with `Predecessor` fragments.
pub(crate) const FORMAT_VERSION_PREDECESSOR: u16 = 4;

const _: () = assert!(FORMAT_VERSION_MIN <= FORMAT_VERSION);
const _: () = assert!(FORMAT_VERSION_KEYSPACES <= FORMAT_VERSION);
const _: () = assert!(FORMAT_VERSION_RANGE_DELETES <= FORMAT_VERSION);
const _: () = assert!(FORMAT_VERSION_PREDECESSOR <= FORMAT_VERSION);

/// Largest payload one fragment can carry (its length is a `u16` and it
/// must fit in a block after its header).
pub(crate) const FRAGMENT_PAYLOAD_BYTES_MAX: usize = BLOCK_BYTES - FRAGMENT_HEADER_BYTES;

/// Largest encoded batch the log accepts; the reader never assembles more.
pub const BATCH_BYTES_MAX: usize = 128 * 1024 * 1024;

const _: () = assert!(FRAGMENT_PAYLOAD_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(SEGMENT_HEADER_BYTES + FRAGMENT_HEADER_BYTES < BLOCK_BYTES);

/// The role of a fragment in its record. Persisted as one byte; 0 is never
/// valid (it is what zeroed space reads as).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FragmentType {
    /// A whole record.
    Full = 1,
    /// The first fragment of a record.
    First = 2,
    /// A fragment inside a record.
    Middle = 3,
    /// The last fragment of a record.
    Last = 4,
    /// Alone, right after the header of a segment the log rotated into
    /// (version 4 on): the segment before it and that segment's final
    /// length ([`PREDECESSOR_PAYLOAD_BYTES`]). Not a record of its own.
    Predecessor = 5,
}

impl FragmentType {
    pub(crate) fn from_u8(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(FragmentType::Full),
            2 => Some(FragmentType::First),
            3 => Some(FragmentType::Middle),
            4 => Some(FragmentType::Last),
            5 => Some(FragmentType::Predecessor),
            _ => None,
        }
    }
}

/// The tag written in every fragment of segment (or log file) `segment`.
pub(crate) fn segment_tag(segment: u64) -> u32 {
    segment as u32
}

/// File name of segment `segment`: at least six digits, then `.wal`.
pub fn segment_file_name(segment: u64) -> String {
    format!("{segment:06}.wal")
}

/// Suffix of segment files kept for reuse (`NNNNNN.wal.free`).
pub const FREE_SUFFIX: &str = ".wal.free";

/// The segment number in a segment file name, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, ".wal")
}

/// The segment number in the name of a segment file kept for reuse
/// (`NNNNNN.wal.free`), if it is one.
pub fn parse_free_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, FREE_SUFFIX)
}

fn parse_numbered(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes a segment header (of version [`FORMAT_VERSION`]).
pub(crate) fn encode_segment_header(segment: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    encode_file_header(SEGMENT_MAGIC, segment, FORMAT_VERSION)
}

/// Encodes the header of a log file: a segment header with `magic` in
/// place of [`SEGMENT_MAGIC`] and format `version` (the WAL's segments and
/// other logs written with the same framing, such as the manifest, share
/// this layout).
pub(crate) fn encode_file_header(
    magic: [u8; 8],
    number: u64,
    version: u16,
) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut out = [0u8; SEGMENT_HEADER_BYTES];
    out[0..8].copy_from_slice(&magic);
    out[8..10].copy_from_slice(&version.to_le_bytes());
    // 10..12: flags, all zero in versions 1 and 2.
    out[12..20].copy_from_slice(&number.to_le_bytes());
    let crc = crc32(&[&out[..20]]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Why a segment header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Not a kevo WAL segment, or damaged.
    Damaged(&'static str),
    /// A valid header of a format version this code does not read.
    UnsupportedVersion(u16),
}

/// The segment format versions a WAL segment reader accepts.
pub(crate) const SEGMENT_VERSIONS: RangeInclusive<u16> = FORMAT_VERSION_MIN..=FORMAT_VERSION;

/// The format versions a log file reader accepts.
pub(crate) const LOG_VERSIONS: RangeInclusive<u16> = LOG_FORMAT_VERSION..=LOG_FORMAT_VERSION;

/// A decoded file header: the file number it names and its format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    /// The segment (or log file) number.
    pub(crate) number: u64,
    /// The format version, one of those the caller accepts.
    pub(crate) version: u16,
}

/// Decodes a segment header.
#[cfg(test)]
pub(crate) fn decode_segment_header(bytes: &[u8]) -> Result<FileHeader, HeaderError> {
    decode_file_header(bytes, SEGMENT_MAGIC, SEGMENT_VERSIONS)
}

/// Decodes the header of a log file whose magic must be `magic` and whose
/// format version must be in `versions`.
pub(crate) fn decode_file_header(
    bytes: &[u8],
    magic: [u8; 8],
    versions: RangeInclusive<u16>,
) -> Result<FileHeader, HeaderError> {
    let mut r = Reader::new(bytes);
    let truncated = HeaderError::Damaged("file header is truncated");
    let found_magic = r.array::<8>().ok_or(truncated.clone())?;
    let version = r.u16_le().ok_or(truncated.clone())?;
    let flags = r.u16_le().ok_or(truncated.clone())?;
    let number = r.u64_le().ok_or(truncated.clone())?;
    let crc = r.u32_le().ok_or(truncated)?;
    if found_magic != magic {
        return Err(HeaderError::Damaged("bad file magic"));
    }
    if crc != crc32(&[&bytes[..20]]) {
        return Err(HeaderError::Damaged("file header checksum mismatch"));
    }
    if !versions.contains(&version) {
        return Err(HeaderError::UnsupportedVersion(version));
    }
    if flags != 0 {
        return Err(HeaderError::Damaged("unknown file header flags"));
    }
    Ok(FileHeader { number, version })
}

/// Checksum of a fragment: over length, type, tag and payload.
pub(crate) fn fragment_crc(header_tail: &[u8], payload: &[u8]) -> u32 {
    crc32(&[header_tail, payload])
}

/// Appends `payload` to `out` as the fragments of one record, for a record
/// starting at file offset `offset`. Pads the end of a block with zeros when
/// less than a fragment header is left in it. Returns nothing: the caller
/// advances its offset by the bytes appended.
pub(crate) fn encode_record(out: &mut Vec<u8>, mut offset: u64, tag: u32, payload: &[u8]) {
    let mut rest = payload;
    let mut first = true;
    loop {
        let in_block = (offset % BLOCK_BYTES as u64) as usize;
        let left = BLOCK_BYTES - in_block;
        if left < FRAGMENT_HEADER_BYTES {
            out.extend(std::iter::repeat_n(0u8, left));
            offset += left as u64;
            continue;
        }
        let take = rest.len().min(left - FRAGMENT_HEADER_BYTES);
        let last = take == rest.len();
        let kind = match (first, last) {
            (true, true) => FragmentType::Full,
            (true, false) => FragmentType::First,
            (false, false) => FragmentType::Middle,
            (false, true) => FragmentType::Last,
        };
        let (chunk, tail) = rest.split_at(take);
        let mut header = [0u8; FRAGMENT_HEADER_BYTES];
        header[4..6].copy_from_slice(&(take as u16).to_le_bytes());
        header[6] = kind as u8;
        header[7..11].copy_from_slice(&tag.to_le_bytes());
        let crc = fragment_crc(&header[4..], chunk);
        header[0..4].copy_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(chunk);
        offset += (FRAGMENT_HEADER_BYTES + take) as u64;
        rest = tail;
        first = false;
        if last {
            return;
        }
    }
}

/// Payload bytes of a `Predecessor` fragment: the segment number and its
/// final length, each a `u64`.
pub(crate) const PREDECESSOR_PAYLOAD_BYTES: usize = 16;

/// Bytes of a whole `Predecessor` fragment: a segment started by a
/// rotation holds its first record after `SEGMENT_HEADER_BYTES` plus these.
pub const PREDECESSOR_FRAGMENT_BYTES: usize = FRAGMENT_HEADER_BYTES + PREDECESSOR_PAYLOAD_BYTES;

/// The `Predecessor` fragment that opens segment `segment` (written at
/// [`SEGMENT_HEADER_BYTES`]): segment `previous` ended at `previous_len`
/// bytes.
pub(crate) fn encode_predecessor(
    segment: u64,
    previous: u64,
    previous_len: u64,
) -> [u8; PREDECESSOR_FRAGMENT_BYTES] {
    let mut out = [0u8; PREDECESSOR_FRAGMENT_BYTES];
    out[4..6].copy_from_slice(&(PREDECESSOR_PAYLOAD_BYTES as u16).to_le_bytes());
    out[6] = FragmentType::Predecessor as u8;
    out[7..11].copy_from_slice(&segment_tag(segment).to_le_bytes());
    out[11..19].copy_from_slice(&previous.to_le_bytes());
    out[19..27].copy_from_slice(&previous_len.to_le_bytes());
    let crc = fragment_crc(
        &out[4..FRAGMENT_HEADER_BYTES],
        &out[FRAGMENT_HEADER_BYTES..],
    );
    out[0..4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a `Predecessor` fragment's payload: (segment, final length).
pub(crate) fn decode_predecessor(payload: &[u8]) -> Option<(u64, u64)> {
    let mut r = Reader::new(payload);
    let previous = r.u64_le()?;
    let len = r.u64_le()?;
    r.is_empty().then_some((previous, len))
}

/// Padding bytes [`encode_record`] puts before a record's first fragment
/// when the record starts at file offset `offset`.
pub(crate) fn first_fragment_skip(offset: u64) -> u64 {
    let left = BLOCK_BYTES as u64 - offset % BLOCK_BYTES as u64;
    if left < FRAGMENT_HEADER_BYTES as u64 {
        left
    } else {
        0
    }
}

/// Bytes [`encode_record`] appends for a payload of `len` bytes starting at
/// block offset `in_block`.
pub(crate) fn encoded_record_len(mut in_block: usize, len: usize) -> usize {
    let mut total = 0;
    let mut rest = len;
    loop {
        let left = BLOCK_BYTES - in_block;
        if left < FRAGMENT_HEADER_BYTES {
            total += left;
            in_block = 0;
            continue;
        }
        let take = rest.min(left - FRAGMENT_HEADER_BYTES);
        total += FRAGMENT_HEADER_BYTES + take;
        in_block += FRAGMENT_HEADER_BYTES + take;
        rest -= take;
        if rest == 0 {
            return total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips() {
        let header = encode_segment_header(42);
        assert_eq!(
            decode_segment_header(&header),
            Ok(FileHeader {
                number: 42,
                version: FORMAT_VERSION
            })
        );
    }

    /// A header of `version`, with its checksum right.
    fn header_of_version(magic: [u8; 8], number: u64, version: u16) -> [u8; SEGMENT_HEADER_BYTES] {
        let header = encode_file_header(magic, number, version);
        assert_eq!(header[8..10], version.to_le_bytes());
        header
    }

    #[test]
    fn segment_header_rejects_damage_and_future_versions() {
        let mut header = encode_segment_header(7);
        header[13] ^= 1;
        assert!(matches!(
            decode_segment_header(&header),
            Err(HeaderError::Damaged(_))
        ));
        let future = header_of_version(SEGMENT_MAGIC, 7, FORMAT_VERSION + 1);
        assert_eq!(
            decode_segment_header(&future),
            Err(HeaderError::UnsupportedVersion(FORMAT_VERSION + 1))
        );
        let zero = header_of_version(SEGMENT_MAGIC, 7, 0);
        assert_eq!(
            decode_segment_header(&zero),
            Err(HeaderError::UnsupportedVersion(0))
        );
        assert!(decode_segment_header(&header[..10]).is_err());
    }

    #[test]
    fn segment_headers_of_versions_1_and_2_are_read() {
        for version in [1, 2] {
            let header = header_of_version(SEGMENT_MAGIC, 3, version);
            assert_eq!(
                decode_segment_header(&header),
                Ok(FileHeader { number: 3, version })
            );
        }
        // The header of segment 1 at version 1, byte for byte as format 1
        // wrote it (the old worked example of docs/format/wal.md).
        let v1: [u8; SEGMENT_HEADER_BYTES] = [
            0x4b, 0x45, 0x56, 0x4f, 0x57, 0x41, 0x4c, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xbd, 0xa8, 0x00,
        ];
        assert_eq!(header_of_version(SEGMENT_MAGIC, 1, 1), v1);
        assert_eq!(
            decode_segment_header(&v1),
            Ok(FileHeader {
                number: 1,
                version: 1
            })
        );
    }

    #[test]
    fn log_headers_accept_only_the_log_version() {
        const MAGIC: [u8; 8] = *b"TESTLOG\0";
        let v1 = header_of_version(MAGIC, 5, LOG_FORMAT_VERSION);
        assert_eq!(
            decode_file_header(&v1, MAGIC, LOG_VERSIONS).map(|h| h.number),
            Ok(5)
        );
        let v2 = header_of_version(MAGIC, 5, FORMAT_VERSION);
        assert_eq!(
            decode_file_header(&v2, MAGIC, LOG_VERSIONS),
            Err(HeaderError::UnsupportedVersion(FORMAT_VERSION))
        );
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(3), "000003.wal");
        assert_eq!(parse_segment_file_name("000003.wal"), Some(3));
        assert_eq!(parse_segment_file_name("1234567.wal"), Some(1_234_567));
        assert_eq!(parse_segment_file_name("000003.wal.free"), None);
        assert_eq!(parse_free_file_name("000003.wal.free"), Some(3));
        assert_eq!(parse_segment_file_name("x3.wal"), None);
        assert_eq!(parse_segment_file_name(".wal"), None);
    }

    #[test]
    fn record_spanning_blocks_is_split_into_first_middle_last() {
        let payload = vec![7u8; 2 * BLOCK_BYTES];
        let mut out = Vec::new();
        encode_record(&mut out, SEGMENT_HEADER_BYTES as u64, 1, &payload);
        assert_eq!(
            out.len(),
            encoded_record_len(SEGMENT_HEADER_BYTES, payload.len())
        );
        assert_eq!(out[6], FragmentType::First as u8);
        let second = BLOCK_BYTES - SEGMENT_HEADER_BYTES;
        assert_eq!(out[second + 6], FragmentType::Middle as u8);
        assert_eq!(out[second + BLOCK_BYTES + 6], FragmentType::Last as u8);
    }

    #[test]
    fn block_tail_shorter_than_a_header_is_padded() {
        let mut out = Vec::new();
        let offset = (BLOCK_BYTES - 5) as u64;
        encode_record(&mut out, offset, 1, b"abc");
        assert_eq!(&out[..5], &[0u8; 5]);
        assert_eq!(out[5 + 6], FragmentType::Full as u8);
        assert_eq!(out.len(), encoded_record_len(BLOCK_BYTES - 5, 3));
    }

    #[test]
    fn empty_payload_is_one_full_fragment() {
        let mut out = Vec::new();
        encode_record(&mut out, 100, 9, b"");
        assert_eq!(out.len(), FRAGMENT_HEADER_BYTES);
        assert_eq!(out[6], FragmentType::Full as u8);
    }
}
