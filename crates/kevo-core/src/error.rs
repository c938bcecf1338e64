//! The error type shared by the lower layers (file system, decoders, cursors).

use std::io;
use std::path::PathBuf;

/// Errors from kevo-core and from [`Cursor`](crate::Cursor) implementations.
///
/// Higher crates wrap this in their own error enums; every one of them
/// answers `is_corruption()`. Not `#[non_exhaustive]`: the crates of the
/// workspace map every variant, so a new one is a compile error there,
/// never a silent catch-all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operation on the file system failed.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What was being done, e.g. `reading 000007.sst`.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Bytes read from a file are not what was written: a checksum
    /// mismatch, an impossible length, a truncated structure.
    #[error("corruption in {} at offset {offset}: {reason}", file.display())]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged structure within the file.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The caller passed something kevo cannot accept (a key too long, keys
    /// out of order, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// An [`Error::Io`] with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::Corruption`].
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Whether this error reports damaged data.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

/// `Result` with kevo-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
