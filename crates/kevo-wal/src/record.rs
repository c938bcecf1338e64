//! [`RecordReader`]: the records of one log file, assembled from its
//! fragments — the one reader behind both the WAL's replay and the
//! standalone [`LogReader`](crate::log::LogReader) (the manifest).
//!
//! It walks the fragments a [`SegmentReader`] finds (`Full`, or `First`,
//! `Middle`*, `Last`) and hands back whole records. When bytes are not an
//! intact record it stops and describes the [`Damage`]; what happens next
//! is the caller's *damage policy* (as LevelDB's `log::Reader` takes a
//! `Reporter`): trim a torn tail, skip to the next valid fragment
//! ([`RecordReader::skip_to`]), or fail. The reader itself never decides.

use std::io;

use crate::format::{BATCH_BYTES_MAX, FRAGMENT_HEADER_BYTES, FragmentType, decode_predecessor};
use crate::reader::{SegmentReader, Step};

/// What [`RecordReader::next_record`] found.
#[derive(Debug)]
pub(crate) enum RecordStep {
    /// A whole record whose first fragment starts at `offset`.
    Record { offset: u64, bytes: Vec<u8> },
    /// A `Predecessor` fragment at `offset`: segment `segment` ended at
    /// `len` bytes. Where it may stand is the caller's to check.
    Predecessor { offset: u64, segment: u64, len: u64 },
    /// The file holds no more records.
    End,
    /// Bytes that are not an intact record.
    Damage(Damage),
}

/// Where the records of a file stop being intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// The first byte not part of an intact record (the start of the
    /// record in progress, if any).
    pub(crate) cut: u64,
    /// Where a search for a later valid fragment starts: a torn tail has
    /// none at or after it.
    pub(crate) scan_from: u64,
    /// What was wrong.
    pub(crate) reason: String,
    /// A format version this code cannot read: never trimmed or skipped.
    pub(crate) fatal: bool,
}

impl Damage {
    /// Damage in the file header (the first fragment starts after it).
    pub(crate) fn in_header(&self) -> bool {
        self.cut == 0
    }
}

/// Assembles the records of one file (see the module docs).
#[derive(Debug)]
pub(crate) struct RecordReader {
    segment: SegmentReader,
    /// The record being assembled and the offset of its first fragment.
    partial: Option<(u64, Vec<u8>)>,
    /// Where the last whole record ends.
    record_end: u64,
}

impl RecordReader {
    pub(crate) fn new(segment: SegmentReader) -> Self {
        let record_end = segment.records_start();
        RecordReader {
            segment,
            partial: None,
            record_end,
        }
    }

    /// The file's length (or the limit set by [`RecordReader::limit_len`]).
    pub(crate) fn len(&self) -> u64 {
        self.segment.len()
    }

    /// Where the last whole record ends (after the header if none).
    pub(crate) fn record_end(&self) -> u64 {
        self.record_end
    }

    /// The format version in the file's header (see
    /// [`SegmentReader::format_version`]).
    pub(crate) fn format_version(&self) -> u16 {
        self.segment.format_version()
    }

    /// Reads no byte at or past `len`.
    pub(crate) fn limit_len(&mut self, len: u64) {
        self.segment.limit_len(len);
    }

    /// The offset of the first valid fragment at or after `from`.
    pub(crate) fn valid_fragment_after(&mut self, from: u64) -> io::Result<Option<u64>> {
        self.segment.valid_fragment_after(from)
    }

    /// After damage: drops the record in progress and goes on at `pos`.
    pub(crate) fn skip_to(&mut self, pos: u64) {
        self.partial = None;
        self.segment.set_position(pos);
    }

    /// The next record, the end, or the damage that stops the records.
    ///
    /// # Errors
    /// An I/O error reading the file.
    pub(crate) fn next_record(&mut self) -> io::Result<RecordStep> {
        loop {
            let step = self.segment.next_step()?;
            let (kind, offset, payload) = match step {
                Step::Fragment {
                    kind,
                    offset,
                    payload,
                } => (kind, offset, payload),
                Step::End => {
                    return Ok(match self.partial.take() {
                        Some((start, _)) => RecordStep::Damage(Damage {
                            cut: start,
                            scan_from: self.len(),
                            reason: "record is cut off by the end of the file".to_string(),
                            fatal: false,
                        }),
                        None => RecordStep::End,
                    });
                }
                Step::Damage {
                    offset,
                    reason,
                    fatal,
                } => {
                    let cut = self.partial.take().map_or(offset, |(start, _)| start);
                    return Ok(damage(cut, offset + 1, reason, fatal));
                }
            };
            let fragment_end = offset + (FRAGMENT_HEADER_BYTES + payload.len()) as u64;
            let bytes = &self.segment.block()[payload];
            match (kind, self.partial.take()) {
                (FragmentType::Predecessor, None) => {
                    let Some((segment, len)) = decode_predecessor(bytes) else {
                        return Ok(damage(
                            offset,
                            offset + 1,
                            "predecessor fragment of the wrong length".to_string(),
                            false,
                        ));
                    };
                    self.record_end = fragment_end;
                    return Ok(RecordStep::Predecessor {
                        offset,
                        segment,
                        len,
                    });
                }
                (FragmentType::Full, None) => {
                    self.record_end = fragment_end;
                    return Ok(RecordStep::Record {
                        offset,
                        bytes: bytes.to_vec(),
                    });
                }
                (FragmentType::First, None) => self.partial = Some((offset, bytes.to_vec())),
                (FragmentType::Middle | FragmentType::Last, Some((start, mut record))) => {
                    if record.len() + bytes.len() > BATCH_BYTES_MAX {
                        return Ok(damage(
                            start,
                            offset + 1,
                            "record exceeds the maximum size".to_string(),
                            false,
                        ));
                    }
                    record.extend_from_slice(bytes);
                    if kind == FragmentType::Middle {
                        self.partial = Some((start, record));
                    } else {
                        self.record_end = fragment_end;
                        return Ok(RecordStep::Record {
                            offset: start,
                            bytes: record,
                        });
                    }
                }
                (
                    FragmentType::Full | FragmentType::First | FragmentType::Predecessor,
                    Some((start, _)),
                ) => {
                    // This fragment is intact: skipping resumes at it.
                    self.segment.set_position(offset);
                    return Ok(damage(
                        start,
                        offset,
                        "record without its last fragment".to_string(),
                        false,
                    ));
                }
                (FragmentType::Middle | FragmentType::Last, None) => {
                    return Ok(damage(
                        offset,
                        offset + 1,
                        "fragment without the start of its record".to_string(),
                        false,
                    ));
                }
            }
        }
    }
}

fn damage(cut: u64, scan_from: u64, reason: String, fatal: bool) -> RecordStep {
    RecordStep::Damage(Damage {
        cut,
        scan_from,
        reason,
        fatal,
    })
}
