//! A standalone record log with the WAL's framing: [`LogWriter`] and
//! [`LogReader`].
//!
//! Other files that need a crash-safe, checksummed sequence of records (the
//! manifest) are written with exactly the same bytes as a WAL segment: a
//! 24-byte file header, then 32 KiB blocks of fragments (see
//! `docs/format/wal.md`). Only the header's magic differs, chosen by the
//! caller, so a file of one kind is never read as another. The fragment tag
//! is the low 32 bits of the file number written in the header. The
//! header's format version is [`LOG_FORMAT_VERSION`] (1), the only one a
//! [`LogReader`] accepts: the WAL's segments moved to version 2 for their
//! batches' keyspace entries, but the framing a log uses did not change.
//!
//! ```text
//! log file = header(magic, version 1, number) | fragments ... | zero padding | fragments ...
//! ```
//!
//! Unlike [`Wal`](crate::Wal), a log is one file, has no sync thread and no
//! recycling: the owner decides when to [`LogWriter::sync`] and when to start
//! a new file.
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//! use kevo_core::{Fs, MemFs};
//! use kevo_wal::log::{LogEnd, LogReader, LogWriter};
//!
//! # fn main() -> Result<(), kevo_wal::Error> {
//! const MAGIC: [u8; 8] = *b"EXAMPLE\0";
//! let fs = MemFs::new();
//! let path = Path::new("/log-7");
//! let file = fs.create(path).map_err(|e| kevo_wal::Error::Io { context: "creating".into(), source: e })?;
//! let mut writer = LogWriter::new(file, 7, MAGIC)?;
//! writer.add_record(b"first")?;
//! writer.add_record(b"second")?;
//! writer.sync()?;
//!
//! let file = fs.open_read(path).map_err(|e| kevo_wal::Error::Io { context: "opening".into(), source: e })?;
//! let mut reader = LogReader::open(file, path, 7, MAGIC)?;
//! assert_eq!(reader.read_record()?.map(|r| r.bytes), Some(b"first".to_vec()));
//! assert_eq!(reader.read_record()?.map(|r| r.bytes), Some(b"second".to_vec()));
//! assert_eq!(reader.read_record()?, None);
//! assert_eq!(reader.end(), Some(&LogEnd::Clean));
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kevo_core::File;

use crate::error::{Error, Result};
pub use crate::format::LOG_FORMAT_VERSION;
use crate::format::{
    BATCH_BYTES_MAX, LOG_VERSIONS, SEGMENT_HEADER_BYTES, encode_file_header, encode_record,
    segment_tag,
};
use crate::reader::SegmentReader;
use crate::record::{RecordReader, RecordStep};

/// Largest record a log accepts and its reader assembles (the WAL's batch
/// limit).
pub const LOG_RECORD_BYTES_MAX: usize = BATCH_BYTES_MAX;

/// Bytes in a log file's header (the same layout as a segment header).
pub const LOG_HEADER_BYTES: usize = SEGMENT_HEADER_BYTES;

/// Appends records to one log file.
///
/// # Failure
/// After a failed write or sync the writer refuses every further call with
/// [`Error::Poisoned`]: a record may have reached the file partially, and a
/// retried fsync could report success for data the kernel already dropped.
/// Start a new file to continue.
#[derive(Debug)]
pub struct LogWriter {
    file: Arc<dyn File>,
    tag: u32,
    /// Next write offset.
    offset: u64,
    buf: Vec<u8>,
    /// The failure that poisoned the writer.
    poison: Option<Arc<Error>>,
}

impl LogWriter {
    /// Writes the file header (with `magic` and `file_number`) at offset 0 of
    /// `file`, which should be empty, and returns a writer that appends after
    /// it. Nothing is synced.
    ///
    /// # Errors
    /// [`Error::Io`] if the header cannot be written; the writer is then not
    /// returned.
    pub fn new(file: Arc<dyn File>, file_number: u64, magic: [u8; 8]) -> Result<LogWriter> {
        let header = encode_file_header(magic, file_number, LOG_FORMAT_VERSION);
        file.write_all_at(&header, 0)
            .map_err(|e| Error::io(format!("writing the header of log {file_number}"), e))?;
        Ok(LogWriter {
            file,
            tag: segment_tag(file_number),
            offset: LOG_HEADER_BYTES as u64,
            buf: Vec::new(),
            poison: None,
        })
    }

    /// Appends one record (not synced).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a record over [`LOG_RECORD_BYTES_MAX`]
    /// (nothing written); [`Error::Io`] if the write fails, after which the
    /// writer is poisoned; [`Error::Poisoned`] after an earlier failure.
    pub fn add_record(&mut self, record: &[u8]) -> Result<()> {
        self.check_poison()?;
        if record.len() > LOG_RECORD_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "log record of {} bytes exceeds the maximum of {LOG_RECORD_BYTES_MAX}",
                record.len()
            )));
        }
        self.buf.clear();
        encode_record(&mut self.buf, self.offset, self.tag, record);
        if let Err(e) = self.file.write_all_at(&self.buf, self.offset) {
            let context = format!("appending to a log at offset {}", self.offset);
            self.poison = Some(Arc::new(Error::copy_io(&context, &e)));
            return Err(Error::io(context, e));
        }
        self.offset += self.buf.len() as u64;
        Ok(())
    }

    /// Makes every record appended so far durable (`fdatasync`).
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails, after which the writer is poisoned
    /// (the sync is never retried); [`Error::Poisoned`] after an earlier
    /// failure.
    pub fn sync(&mut self) -> Result<()> {
        self.check_poison()?;
        if let Err(e) = self.file.sync_data() {
            self.poison = Some(Arc::new(Error::copy_io("syncing a log", &e)));
            return Err(Error::io("syncing a log", e));
        }
        Ok(())
    }

    /// The file's length as written: the offset the next record starts at
    /// (before any block padding).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether an earlier write or sync failed.
    pub fn is_poisoned(&self) -> bool {
        self.poison.is_some()
    }

    fn check_poison(&self) -> Result<()> {
        match &self.poison {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
                resumable: false,
            }),
            None => Ok(()),
        }
    }
}

/// One record read back by a [`LogReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// File offset of the record's first fragment.
    pub offset: u64,
    /// The record as appended.
    pub bytes: Vec<u8>,
}

/// How a log ended, once [`LogReader::read_record`] returned `Ok(None)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// The file ends (or zeroed space begins) right after the last record.
    Clean,
    /// The end of the file holds an incomplete record or bytes that are not
    /// a valid fragment, and no valid fragment follows them: what a crash
    /// during an append leaves. The bytes from `offset` on were not returned.
    TornTail {
        /// The first byte not part of a returned record.
        offset: u64,
        /// Bytes from `offset` to the end of the file.
        bytes_dropped: u64,
        /// What was wrong at `offset`.
        reason: String,
    },
}

/// Reads the records of one log file back in order.
///
/// Damage with a valid fragment anywhere after it is not a torn tail:
/// [`LogReader::read_record`] returns [`Error::FileCorruption`] with the
/// file's path and the damaged offset. A file of length 0 is a clean,
/// empty log; a header cut off by the end of the file is a torn tail.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    reader: RecordReader,
    end: Option<LogEnd>,
    failed: bool,
}

impl LogReader {
    /// Opens the log `file` (named `path` in errors), which must hold
    /// `magic` and `file_number` in its header.
    ///
    /// # Errors
    /// [`Error::Io`] if the file's length or header cannot be read. A bad
    /// header is reported by the first [`LogReader::read_record`].
    pub fn open(
        file: Arc<dyn File>,
        path: impl AsRef<Path>,
        file_number: u64,
        magic: [u8; 8],
    ) -> Result<LogReader> {
        let path = path.as_ref().to_path_buf();
        let reader = SegmentReader::open_with_magic(file, file_number, magic, LOG_VERSIONS)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let reader = RecordReader::new(reader);
        Ok(LogReader {
            path,
            reader,
            end: None,
            failed: false,
        })
    }

    /// The next record, or `None` at the end of the log (then
    /// [`LogReader::end`] says how it ended).
    ///
    /// # Errors
    /// [`Error::FileCorruption`] for damage before the tail (a bad header
    /// included), [`Error::Io`] if a read fails. After an error every call
    /// returns `Ok(None)`.
    pub fn read_record(&mut self) -> Result<Option<LogRecord>> {
        if self.end.is_some() || self.failed {
            return Ok(None);
        }
        let result = self.step();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// How the log ended; `None` until [`LogReader::read_record`] returned
    /// `Ok(None)` (and after an error).
    pub fn end(&self) -> Option<&LogEnd> {
        self.end.as_ref()
    }

    /// Bytes dropped from the end of the file as a torn tail (0 for a clean
    /// end or before the end was reached).
    pub fn tail_bytes_dropped(&self) -> u64 {
        match &self.end {
            Some(LogEnd::TornTail { bytes_dropped, .. }) => *bytes_dropped,
            _ => 0,
        }
    }

    /// The next record, with the log's damage policy: damage with no
    /// valid fragment after it is a torn tail (a header is torn only when
    /// the file is shorter than one); any other damage is corruption.
    fn step(&mut self) -> Result<Option<LogRecord>> {
        let io = |e| Error::io(format!("reading {}", self.path.display()), e);
        let damage = match self.reader.next_record().map_err(io)? {
            RecordStep::Record { offset, bytes } => return Ok(Some(LogRecord { offset, bytes })),
            RecordStep::End => {
                self.end = Some(LogEnd::Clean);
                return Ok(None);
            }
            // Only WAL segments have them; its checksum passed, so this is
            // no torn write.
            RecordStep::Predecessor { offset, .. } => {
                return Err(self.corruption(
                    offset,
                    "a WAL predecessor fragment in a log file".to_string(),
                ));
            }
            RecordStep::Damage(damage) => damage,
        };
        let torn = if damage.fatal {
            false
        } else if damage.in_header() {
            self.reader.len() < LOG_HEADER_BYTES as u64
        } else {
            let io = |e| Error::io(format!("reading {}", self.path.display()), e);
            self.reader
                .valid_fragment_after(damage.scan_from)
                .map_err(io)?
                .is_none()
        };
        if !torn {
            return Err(self.corruption(damage.cut, damage.reason));
        }
        self.set_torn(damage.cut, damage.reason);
        Ok(None)
    }

    fn set_torn(&mut self, offset: u64, reason: String) {
        let bytes_dropped = self.reader.len().saturating_sub(offset);
        tracing::warn!(
            file = %self.path.display(),
            offset,
            bytes_dropped,
            reason = %reason,
            "dropping the torn tail of a log"
        );
        self.end = Some(LogEnd::TornTail {
            offset,
            bytes_dropped,
            reason,
        });
    }

    fn corruption(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::FileCorruption {
            file: self.path.clone(),
            offset,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{BLOCK_BYTES, FRAGMENT_HEADER_BYTES};
    use kevo_core::{Fs, MemFs};

    const MAGIC: [u8; 8] = *b"TESTLOG\0";
    const PATH: &str = "/log";

    fn write_log(fs: &MemFs, number: u64, records: &[Vec<u8>]) -> Vec<u64> {
        let file = fs.create(Path::new(PATH)).unwrap();
        let mut writer = LogWriter::new(file, number, MAGIC).unwrap();
        let mut ends = Vec::new();
        for r in records {
            writer.add_record(r).unwrap();
            ends.push(writer.offset());
        }
        writer.sync().unwrap();
        ends
    }

    fn read_all(fs: &MemFs, number: u64, magic: [u8; 8]) -> (Result<Vec<Vec<u8>>>, Option<LogEnd>) {
        let file = fs.open_read(Path::new(PATH)).unwrap();
        let mut reader = LogReader::open(file, PATH, number, magic).unwrap();
        let mut out = Vec::new();
        loop {
            match reader.read_record() {
                Ok(Some(r)) => out.push(r.bytes),
                Ok(None) => return (Ok(out), reader.end().cloned()),
                Err(e) => return (Err(e), reader.end().cloned()),
            }
        }
    }

    fn records() -> Vec<Vec<u8>> {
        vec![
            b"alpha".to_vec(),
            vec![3u8; 2 * BLOCK_BYTES + 100],
            Vec::new(),
            b"omega".to_vec(),
        ]
    }

    #[test]
    fn records_round_trip_across_blocks() {
        let fs = MemFs::new();
        write_log(&fs, 9, &records());
        let (read, end) = read_all(&fs, 9, MAGIC);
        assert_eq!(read.unwrap(), records());
        assert_eq!(end, Some(LogEnd::Clean));
    }

    #[test]
    fn log_bytes_are_segment_bytes_with_another_magic() {
        let fs = MemFs::new();
        write_log(&fs, 1, &[b"x".to_vec()]);
        let bytes = fs.read_file(Path::new(PATH)).unwrap();
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(
            &bytes[..LOG_HEADER_BYTES],
            &encode_file_header(MAGIC, 1, LOG_FORMAT_VERSION)[..]
        );
        assert_eq!(bytes.len(), LOG_HEADER_BYTES + FRAGMENT_HEADER_BYTES + 1);
    }

    #[test]
    fn truncated_tail_record_is_dropped_and_reported() {
        let fs = MemFs::new();
        let ends = write_log(&fs, 2, &records());
        let bytes = fs.read_file(Path::new(PATH)).unwrap();
        // Cut the long record in its second block.
        let cut = ends[0] as usize + BLOCK_BYTES;
        fs.write_file(Path::new(PATH), &bytes[..cut]).unwrap();
        let (read, end) = read_all(&fs, 2, MAGIC);
        assert_eq!(read.unwrap(), vec![b"alpha".to_vec()]);
        let expected_dropped = cut as u64 - ends[0];
        assert!(
            matches!(end, Some(LogEnd::TornTail { offset, bytes_dropped, .. })
                if offset == ends[0] && bytes_dropped == expected_dropped),
            "{end:?}"
        );
        // Cut exactly at a block boundary: the record ends with the file.
        let cut = 2 * BLOCK_BYTES;
        fs.write_file(Path::new(PATH), &bytes[..cut]).unwrap();
        let (read, end) = read_all(&fs, 2, MAGIC);
        assert_eq!(read.unwrap(), vec![b"alpha".to_vec()]);
        assert_eq!(
            end,
            Some(LogEnd::TornTail {
                offset: ends[0],
                bytes_dropped: cut as u64 - ends[0],
                reason: "record is cut off by the end of the file".into()
            })
        );
    }

    #[test]
    fn trailing_garbage_is_a_torn_tail() {
        let fs = MemFs::new();
        let ends = write_log(&fs, 2, &[b"a".to_vec()]);
        let mut bytes = fs.read_file(Path::new(PATH)).unwrap();
        bytes.extend_from_slice(&[0xAB; 30]);
        fs.write_file(Path::new(PATH), &bytes).unwrap();
        let (read, end) = read_all(&fs, 2, MAGIC);
        assert_eq!(read.unwrap(), vec![b"a".to_vec()]);
        assert!(
            matches!(end, Some(LogEnd::TornTail { offset, bytes_dropped: 30, .. }) if offset == ends[0])
        );
    }

    #[test]
    fn damage_before_a_valid_record_is_corruption_with_path_and_offset() {
        let fs = MemFs::new();
        let ends = write_log(&fs, 2, &[b"first".to_vec(), b"second".to_vec()]);
        // Flip a payload byte of the first record.
        fs.corrupt(Path::new(PATH), LOG_HEADER_BYTES as u64 + 12, 0x01)
            .unwrap();
        let (read, _) = read_all(&fs, 2, MAGIC);
        match read {
            Err(Error::FileCorruption { file, offset, .. }) => {
                assert_eq!(file, PathBuf::from(PATH));
                assert_eq!(offset, LOG_HEADER_BYTES as u64);
            }
            other => panic!("expected corruption, got {other:?} (ends {ends:?})"),
        }
    }

    #[test]
    fn wrong_magic_or_number_is_corruption() {
        let fs = MemFs::new();
        write_log(&fs, 4, &[b"r".to_vec()]);
        let (read, _) = read_all(&fs, 4, *b"KEVOWAL\0");
        assert!(read.unwrap_err().is_corruption());
        let (read, _) = read_all(&fs, 5, MAGIC);
        assert!(read.unwrap_err().is_corruption());
    }

    #[test]
    fn logs_keep_header_version_1_and_refuse_others() {
        let fs = MemFs::new();
        write_log(&fs, 3, &[b"r".to_vec()]);
        let mut bytes = fs.read_file(Path::new(PATH)).unwrap();
        assert_eq!(bytes[8..10], [0x01, 0x00], "log header version");
        assert_eq!(LOG_FORMAT_VERSION, 1);
        // The same file with a version-2 header (what WAL segments carry
        // now): refused, never read as version 1.
        bytes[..LOG_HEADER_BYTES].copy_from_slice(&encode_file_header(MAGIC, 3, 2));
        fs.write_file(Path::new(PATH), &bytes).unwrap();
        let (read, _) = read_all(&fs, 3, MAGIC);
        let err = read.unwrap_err();
        assert!(err.is_corruption(), "{err:?}");
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn empty_file_is_a_clean_empty_log_and_a_short_header_is_torn() {
        let fs = MemFs::new();
        fs.write_file(Path::new(PATH), b"").unwrap();
        let (read, end) = read_all(&fs, 1, MAGIC);
        assert_eq!(read.unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(end, Some(LogEnd::Clean));
        fs.write_file(
            Path::new(PATH),
            &encode_file_header(MAGIC, 1, LOG_FORMAT_VERSION)[..10],
        )
        .unwrap();
        let (read, end) = read_all(&fs, 1, MAGIC);
        assert_eq!(read.unwrap(), Vec::<Vec<u8>>::new());
        assert!(matches!(
            end,
            Some(LogEnd::TornTail {
                offset: 0,
                bytes_dropped: 10,
                ..
            })
        ));
    }

    #[test]
    fn writer_refuses_everything_after_a_failed_sync() {
        use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger};
        let mem = MemFs::new();
        let fs = FaultFs::new(Arc::new(mem));
        fs.add_rule(FaultRule::new(
            FaultOp::Sync,
            FaultTrigger::Nth(1),
            FaultKind::Eio,
        ));
        let file = fs.create(Path::new(PATH)).unwrap();
        let mut writer = LogWriter::new(file, 1, MAGIC).unwrap();
        writer.add_record(b"a").unwrap();
        assert!(matches!(writer.sync(), Err(Error::Io { .. })));
        assert!(matches!(
            writer.add_record(b"b"),
            Err(Error::Poisoned { .. })
        ));
        assert!(matches!(writer.sync(), Err(Error::Poisoned { .. })));
        assert_eq!(fs.op_count(FaultOp::Sync), 1, "a failed sync was retried");
    }
}
