//! The engine's error type: one variant per thing a caller can act on.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Errors returned by [`Db`](crate::Db) and everything it hands out.
///
/// Each variant is something a caller can act on differently: retry later
/// ([`Error::Busy`]), fix the call ([`Error::InvalidArgument`]), restore
/// from a backup ([`Error::Corruption`]), reopen ([`Error::ReadOnly`],
/// [`Error::Closed`]), or retry the transaction ([`Error::Conflict`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What was being done, e.g. `syncing /db/000012.sst`.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file holds bytes kevo did not write: a checksum mismatch, an
    /// impossible length, a record cut short before the end of the log.
    #[error("corruption in {} at offset {offset}: {reason}", file.display())]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged structure in the file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The caller passed something kevo cannot accept: a key or value over
    /// its limit, an invalid option (named in the message).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A transaction lost a conflict with one that committed first; retry
    /// it.
    #[error("transaction conflict: {reason}")]
    Conflict {
        /// What the conflict was about.
        reason: String,
    },
    /// Another handle (in this process or another) has the database open.
    #[error("database {} is in use by another process or handle", path.display())]
    Busy {
        /// The database directory.
        path: PathBuf,
    },
    /// The database was closed; open it again to go on.
    #[error("the database is closed")]
    Closed,
    /// A background flush or manifest update failed, so the database stopped
    /// accepting writes to keep what it acknowledged safe. Reads go on;
    /// reopen the database to recover.
    #[error("the database is read-only after a background error: {cause}")]
    ReadOnly {
        /// The error that put the database in read-only mode.
        cause: Arc<Error>,
    },
}

impl Error {
    /// Whether this error reports damaged data.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<kevo_core::Error> for Error {
    fn from(e: kevo_core::Error) -> Self {
        match e {
            kevo_core::Error::Io { context, source } => Error::Io { context, source },
            kevo_core::Error::Corruption {
                file,
                offset,
                reason,
            } => Error::Corruption {
                file,
                offset,
                reason,
            },
            kevo_core::Error::InvalidArgument(message) => Error::InvalidArgument(message),
            other => Error::InvalidArgument(other.to_string()),
        }
    }
}

/// Converts a WAL error; `dir` is the database directory, so that a damaged
/// segment is reported by its path.
pub(crate) fn from_wal(dir: &std::path::Path, e: kevo_wal::Error) -> Error {
    match e {
        kevo_wal::Error::Io { context, source } => Error::Io { context, source },
        kevo_wal::Error::Corruption {
            segment,
            offset,
            reason,
        } => Error::Corruption {
            file: dir.join(kevo_wal::segment_file_name(segment)),
            offset,
            reason,
        },
        kevo_wal::Error::Busy { .. } => Error::Busy {
            path: dir.to_path_buf(),
        },
        kevo_wal::Error::InvalidArgument(message) => Error::InvalidArgument(message),
        poisoned @ kevo_wal::Error::Poisoned { .. } => {
            Error::io("writing the WAL", io::Error::other(poisoned.to_string()))
        }
        other => Error::io("using the WAL", io::Error::other(other.to_string())),
    }
}

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
