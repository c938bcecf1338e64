//! The WAL's error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Errors from the write-ahead log.
///
/// Not `#[non_exhaustive]`: the crates of the workspace map every variant,
/// so a new one is a compile error there, never a silent catch-all.
#[derive(Debug, thiserror::Error)]
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
    /// dropped. After a failed write, [`Wal::resume`](crate::Wal::resume)
    /// recovers; after a failed fsync, only reopening the log does.
    #[error("WAL is unusable after an earlier failure ({cause}); {}", if *.resumable { "resume or reopen it" } else { "a failed fsync is never retried: reopen it" })]
    Poisoned {
        /// The failure that poisoned the log (an [`Error::Io`]).
        cause: Arc<Error>,
        /// Whether [`Wal::resume`](crate::Wal::resume) can lift it (no
        /// fsync failed).
        resumable: bool,
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

    /// The kind of the I/O error behind this one (through a poisoned log's
    /// cause), if there is one: a full disk is `StorageFull`.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            Error::Poisoned { cause, .. } => cause.io_kind(),
            Error::Corruption { .. }
            | Error::FileCorruption { .. }
            | Error::Busy { .. }
            | Error::InvalidArgument(_) => None,
        }
    }

    /// An [`Error::Io`] like `self` (same context, kind and message), for a
    /// cause kept while the original is returned.
    pub(crate) fn copy_io(context: &str, source: &io::Error) -> Error {
        Error::io(context, io::Error::new(source.kind(), source.to_string()))
    }
}

/// `Result` with the WAL's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
