//! The WAL's error type.

use std::io;
use std::path::PathBuf;

/// Errors from the write-ahead log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("WAL I/O error while {context}: {source}")]
    Io {
        /// What was being done, e.g. `syncing 000004.wal`.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A segment holds bytes that are not a valid record where one was
    /// expected, and the recovery mode does not allow skipping them.
    #[error("WAL corruption in segment {segment} at offset {offset}: {reason}")]
    Corruption {
        /// Number of the damaged segment (`NNNNNN.wal`).
        segment: u64,
        /// Byte offset of the damage within the segment file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A log file read by a [`LogReader`](crate::log::LogReader) holds
    /// bytes that are not a valid record before its tail.
    #[error("corruption in {} at offset {offset}: {reason}", file.display())]
    FileCorruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage within the file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// Another `Wal` (in this or another process) has the directory open.
    #[error("the WAL in {dir} is already open elsewhere")]
    Busy {
        /// The log's directory.
        dir: String,
    },
    /// The caller passed something the WAL cannot accept (a batch too large).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An earlier write or sync failed, so the log refuses every further
    /// append and sync: what reached the disk after that failure is unknown,
    /// and a retried fsync could report success for data the kernel already
    /// dropped. Reopen the log to recover.
    #[error("WAL is unusable after an earlier failure ({cause}); reopen it to recover")]
    Poisoned {
        /// The failure that poisoned the log.
        cause: String,
    },
}

impl Error {
    /// Whether this error reports damaged data.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corruption { .. } | Error::FileCorruption { .. }
        )
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// `Result` with the WAL's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
