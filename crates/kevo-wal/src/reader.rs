//! Reading the fragments of one segment file.
//!
//! [`SegmentReader`] walks a segment block by block and classifies what it
//! finds at each position as a fragment, a clean end, or damage. It knows
//! nothing about records, batches or recovery modes: that is
//! [`Replay`](crate::Replay)'s job for the WAL, and
//! [`LogReader`](crate::log::LogReader)'s for other logs written with the
//! same framing (opened with their own magic).
//!
//! A *clean end* is the end of the file, zeroed space, or a well-formed
//! fragment of another segment (bytes left by the previous life of a
//! recycled file) — but only if no valid fragment of this segment follows
//! it; otherwise it is damage.

use std::io;
use std::ops::{Range, RangeInclusive};
use std::sync::Arc;

use kevo_core::File;

use crate::format::{
    BLOCK_BYTES, FORMAT_VERSION, FRAGMENT_HEADER_BYTES, FileHeader, FragmentType, HeaderError,
    SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, SEGMENT_VERSIONS, decode_file_header, fragment_crc,
    segment_tag,
};

/// What the reader found at its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A fragment whose checksum and tag are right. Its payload is
    /// `reader.block()[payload]`.
    Fragment {
        kind: FragmentType,
        offset: u64,
        payload: Range<usize>,
    },
    /// No more records in this segment.
    End,
    /// Bytes at `offset` are not a valid fragment. `fatal` damage (a format
    /// version this code cannot read) is never skipped or trimmed.
    Damage {
        offset: u64,
        reason: String,
        fatal: bool,
    },
}

/// Reads the fragments of one segment file in order.
#[derive(Debug)]
pub(crate) struct SegmentReader {
    file: Arc<dyn File>,
    tag: u32,
    len: u64,
    /// File offset of the next fragment header.
    pos: u64,
    block: Vec<u8>,
    /// Index of the block held in `block`, if any.
    block_index: Option<u64>,
    /// Damage found while opening (a bad header), reported by the first step.
    header_damage: Option<(String, bool)>,
    /// The format version in the header ([`FORMAT_VERSION`] when there is
    /// no valid header: then no fragment is ever returned).
    version: u16,
}

impl SegmentReader {
    /// Opens segment `segment` read from `file`, checking its header (of
    /// any segment format version this code reads).
    pub(crate) fn open(file: Arc<dyn File>, segment: u64) -> io::Result<Self> {
        Self::open_with_magic(file, segment, SEGMENT_MAGIC, SEGMENT_VERSIONS)
    }

    /// Opens log file `segment` read from `file`, checking that its header
    /// holds `magic`, that number and a format version in `versions`.
    pub(crate) fn open_with_magic(
        file: Arc<dyn File>,
        segment: u64,
        magic: [u8; 8],
        versions: RangeInclusive<u16>,
    ) -> io::Result<Self> {
        let len = file.len()?;
        let mut reader = SegmentReader {
            file,
            tag: segment_tag(segment),
            len,
            pos: SEGMENT_HEADER_BYTES as u64,
            block: Vec::with_capacity(BLOCK_BYTES),
            block_index: None,
            header_damage: None,
            version: FORMAT_VERSION,
        };
        if len == 0 {
            // Created but never written: an empty segment.
            reader.pos = 0;
            return Ok(reader);
        }
        let mut header = [0u8; SEGMENT_HEADER_BYTES];
        let available = (len as usize).min(SEGMENT_HEADER_BYTES);
        reader.file.read_exact_at(&mut header[..available], 0)?;
        let (first, last) = (*versions.start(), *versions.end());
        reader.header_damage = match decode_file_header(&header[..available], magic, versions) {
            Ok(FileHeader { number, version }) if number == segment => {
                reader.version = version;
                None
            }
            Ok(FileHeader { number, .. }) => {
                Some((format!("header names segment {number}"), false))
            }
            Err(HeaderError::Damaged(reason)) => Some((reason.to_string(), false)),
            Err(HeaderError::UnsupportedVersion(v)) => Some((
                format!(
                    "unsupported segment format version {v} (this code reads {first} to {last})"
                ),
                true,
            )),
        };
        Ok(reader)
    }

    /// The format version in the file's header (the newest one when the
    /// header is missing or damaged: no fragment is returned then).
    pub(crate) fn format_version(&self) -> u16 {
        self.version
    }

    /// The file's length when it was opened (or the limit set by
    /// [`SegmentReader::limit_len`]).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Where the first record would start: after the header (0 for an
    /// empty file).
    pub(crate) fn records_start(&self) -> u64 {
        self.pos
    }

    /// Reads no byte at or past `len`: what lies there is not part of the
    /// segment (a sealed segment's bytes past its sealed length).
    pub(crate) fn limit_len(&mut self, len: u64) {
        self.len = self.len.min(len);
        self.pos = self.pos.min(self.len);
    }

    /// The block currently loaded (fragment payloads point into it).
    pub(crate) fn block(&self) -> &[u8] {
        &self.block
    }

    /// Moves the read position (used to resynchronise after damage).
    pub(crate) fn set_position(&mut self, pos: u64) {
        self.pos = pos.min(self.len);
    }

    fn load_block(&mut self, index: u64) -> io::Result<()> {
        if self.block_index == Some(index) {
            return Ok(());
        }
        let start = index * BLOCK_BYTES as u64;
        let end = (start + BLOCK_BYTES as u64).min(self.len);
        self.block.clear();
        self.block.resize((end - start) as usize, 0);
        self.block_index = None;
        self.file.read_exact_at(&mut self.block, start)?;
        self.block_index = Some(index);
        Ok(())
    }

    /// Reads the next fragment.
    pub(crate) fn next_step(&mut self) -> io::Result<Step> {
        if let Some((reason, fatal)) = self.header_damage.take() {
            self.pos = self.len;
            return Ok(Step::Damage {
                offset: 0,
                reason,
                fatal,
            });
        }
        loop {
            if self.pos >= self.len {
                return Ok(Step::End);
            }
            let in_block = (self.pos % BLOCK_BYTES as u64) as usize;
            let left_in_block = BLOCK_BYTES - in_block;
            if left_in_block < FRAGMENT_HEADER_BYTES {
                self.pos += left_in_block as u64;
                continue;
            }
            self.load_block(self.pos / BLOCK_BYTES as u64)?;
            let offset = self.pos;
            let available = self.block.len() - in_block;
            if available < FRAGMENT_HEADER_BYTES {
                if self.block[in_block..].iter().all(|&b| b == 0) {
                    return Ok(Step::End);
                }
                return Ok(damage(
                    offset,
                    "fragment header is cut off by the end of the file",
                ));
            }
            let header = &self.block[in_block..in_block + FRAGMENT_HEADER_BYTES];
            if header.iter().all(|&b| b == 0) {
                return self.clean_end(offset, "zeroed bytes");
            }
            let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let length = usize::from(u16::from_le_bytes([header[4], header[5]]));
            let type_tag = header[6];
            let tag = u32::from_le_bytes([header[7], header[8], header[9], header[10]]);
            if length > left_in_block - FRAGMENT_HEADER_BYTES {
                return Ok(damage(offset, "fragment length overruns its block"));
            }
            if length > available - FRAGMENT_HEADER_BYTES {
                return Ok(damage(offset, "fragment is cut off by the end of the file"));
            }
            let payload =
                in_block + FRAGMENT_HEADER_BYTES..in_block + FRAGMENT_HEADER_BYTES + length;
            if crc != fragment_crc(&header[4..], &self.block[payload.clone()]) {
                return Ok(damage(offset, "fragment checksum mismatch"));
            }
            if tag != self.tag {
                return self.clean_end(offset, "a fragment of another segment");
            }
            let Some(kind) = FragmentType::from_u8(type_tag) else {
                return Ok(damage(offset, format!("unknown fragment type {type_tag}")));
            };
            self.pos += (FRAGMENT_HEADER_BYTES + length) as u64;
            return Ok(Step::Fragment {
                kind,
                offset,
                payload,
            });
        }
    }

    /// Zeroed space or stale bytes end the segment, unless a valid fragment
    /// of this segment follows: then they are damage.
    fn clean_end(&mut self, offset: u64, what: &str) -> io::Result<Step> {
        if self.valid_fragment_after(offset + 1)?.is_some() {
            return Ok(damage(offset, format!("{what} before valid fragments")));
        }
        self.pos = self.len;
        Ok(Step::End)
    }

    /// The offset of the first valid fragment of this segment (right
    /// checksum, right tag, known type) at or after `from`, if any. Scans
    /// every byte position: only called on the damage path.
    pub(crate) fn valid_fragment_after(&mut self, from: u64) -> io::Result<Option<u64>> {
        let mut index = from / BLOCK_BYTES as u64;
        let tag = self.tag.to_le_bytes();
        while index * (BLOCK_BYTES as u64) < self.len {
            self.load_block(index)?;
            let block_start = index * BLOCK_BYTES as u64;
            let mut start = from.saturating_sub(block_start) as usize;
            if index == 0 {
                start = start.max(SEGMENT_HEADER_BYTES);
            }
            let block = &self.block;
            // Zeroed and preallocated space is common and holds nothing.
            if block
                .get(start..)
                .is_none_or(|rest| rest.iter().all(|&b| b == 0))
            {
                index += 1;
                continue;
            }
            let last_start = block.len().saturating_sub(FRAGMENT_HEADER_BYTES);
            for at in start..=last_start.min(block.len()) {
                if at + FRAGMENT_HEADER_BYTES > block.len() {
                    break;
                }
                let header = &block[at..at + FRAGMENT_HEADER_BYTES];
                if header[7..11] != tag || FragmentType::from_u8(header[6]).is_none() {
                    continue;
                }
                let length = usize::from(u16::from_le_bytes([header[4], header[5]]));
                let end = at + FRAGMENT_HEADER_BYTES + length;
                if end > block.len() {
                    continue;
                }
                let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
                if crc == fragment_crc(&header[4..], &block[at + FRAGMENT_HEADER_BYTES..end]) {
                    return Ok(Some(block_start + at as u64));
                }
            }
            index += 1;
        }
        Ok(None)
    }
}

/// A [`Step::Damage`] that recovery may skip or trim.
fn damage(offset: u64, reason: impl Into<String>) -> Step {
    Step::Damage {
        offset,
        reason: reason.into(),
        fatal: false,
    }
}
