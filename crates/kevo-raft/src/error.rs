//! The crate's errors, and their mapping to openraft's `StorageError`.

use std::path::{Path, PathBuf};

#[cfg(feature = "raft")]
use openraft::{ErrorSubject, ErrorVerb, StorageError, StorageIOError};

/// What can go wrong in the Raft storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kevo database refused or failed.
    #[error("kevo: {0}")]
    Kevo(#[from] kevo_engine::Error),
    /// A file operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Stored bytes are not what was written: `file` at byte `offset`.
    #[error("corruption in {file} at offset {offset}: {what}")]
    Corruption {
        /// The file (or stored record) that holds them.
        file: String,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A caller's argument cannot be used.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corruption(
        file: impl Into<String>,
        offset: u64,
        what: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            what: what.into(),
        }
    }

    /// This error as openraft's, about `subject` and what was being done.
    #[cfg(feature = "raft")]
    pub(crate) fn storage(self, subject: ErrorSubject<u64>, verb: ErrorVerb) -> StorageError<u64> {
        StorageIOError::new(subject, verb, &self).into()
    }
}
