//! The engine's error type, one variant per thing a caller can act on, and
//! the conversions from the lower crates' errors (exhaustive: a new
//! variant below is a compile error here, never a silent catch-all).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{DEFAULT_KEYSPACE, KeyspaceId, SeqNo};
pub use kevo_txn::ConflictReason;

/// Errors returned by [`Db`](crate::Db) and everything it hands out.
///
/// Each variant is something a caller can act on differently: retry later
/// ([`Error::Busy`]), fix the call ([`Error::InvalidArgument`]), restore
/// from a backup ([`Error::Corruption`]), resume or reopen
/// ([`Error::ReadOnly`], [`Error::Closed`]), or retry the transaction
/// ([`Error::Conflict`]).
#[derive(Debug, thiserror::Error)]
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
    /// A transaction lost a conflict with a commit after its snapshot;
    /// retry it. Nothing of it was applied.
    #[error("{0}")]
    Conflict(Conflict),
    /// Another handle (in this process or another) has the database open
    /// in a way that excludes this open: a writer excludes every other
    /// open, read-only opens exclude a writer. `reason` says which.
    #[error("database {} is {reason}", path.display())]
    Busy {
        /// The database directory.
        path: PathBuf,
        /// Who holds it.
        reason: BusyReason,
    },
    /// The database was closed; open it again to go on.
    #[error("the database is closed")]
    Closed,
    /// The database takes no writes: either a background flush, manifest
    /// or WAL write failed, so it stopped accepting writes to keep what it
    /// acknowledged safe (reads go on; [`Db::resume`](crate::Db::resume) or
    /// reopening recovers), or it was opened with
    /// [`Db::open_read_only`](crate::Db::open_read_only): then `cause` is
    /// [`Error::OpenedReadOnly`], and the message says "opened read-only"
    /// instead of "after a background error".
    #[error("the database is read-only{}: {cause}", read_only_why(.cause))]
    ReadOnly {
        /// The error that put the database in read-only mode, or
        /// [`Error::OpenedReadOnly`].
        cause: Arc<Error>,
    },
    /// The database was opened with
    /// [`Db::open_read_only`](crate::Db::open_read_only): only ever the
    /// cause of an [`Error::ReadOnly`], which every write, flush,
    /// compaction and resume of such a handle returns. Open it with
    /// [`Db::open`](crate::Db::open) to write.
    #[error(
        "database {} was opened read-only (Db::open_read_only): writes, flushes, \
         compactions and resume are refused",
        path.display()
    )]
    OpenedReadOnly {
        /// The database directory.
        path: PathBuf,
    },
    /// kevo found its own state inconsistent: a bug. The operation changed
    /// nothing; please report it with the message.
    #[error("internal error (a bug in kevo): {reason}")]
    Internal {
        /// The invariant that did not hold.
        reason: String,
    },
}

/// Who holds a database that an open found [`Error::Busy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyReason {
    /// A writer ([`Db::open`](crate::Db::open)) holds it: every other open,
    /// a read-only one included, is refused.
    OpenForWriting,
    /// Read-only opens ([`Db::open_read_only`](crate::Db::open_read_only))
    /// hold it: a writer is refused until the last of them closes.
    OpenReadOnly,
}

impl fmt::Display for BusyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BusyReason::OpenForWriting => "open for writing by another handle or process",
            BusyReason::OpenReadOnly => "open read-only by another handle or process",
        })
    }
}

/// What [`Error::ReadOnly`]'s message says after "read-only".
fn read_only_why(cause: &Error) -> &'static str {
    match cause {
        Error::OpenedReadOnly { .. } => "",
        _ => " after a background error",
    }
}

/// Why a transaction could not commit: the key it met and the commit that
/// wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The key that conflicts: one the transaction read or writes, or a key
    /// inside a range it scanned. Empty for
    /// [`ConflictReason::HistoryTrimmed`].
    pub key: Bytes,
    /// The keyspace of `key` (the default keyspace's id is 0).
    pub keyspace: KeyspaceId,
    /// Which part of the transaction the other commit met.
    pub reason: ConflictReason,
    /// The seqno of the commit that wrote `key` (for
    /// [`ConflictReason::HistoryTrimmed`], the newest trimmed seqno).
    pub committed_seqno: SeqNo,
    /// The transaction's snapshot: every commit after it is checked.
    pub snapshot_seqno: SeqNo,
}

impl Conflict {
    /// The engine's form of `conflict`, whose key is a conflict key
    /// ([`conflict_key`]: the keyspace, then the user key).
    pub(crate) fn new(conflict: kevo_txn::Conflict, snapshot_seqno: SeqNo) -> Self {
        let (keyspace, key) = split_conflict_key(&conflict.key);
        Conflict {
            key,
            keyspace,
            reason: conflict.reason,
            committed_seqno: conflict.committed_seqno,
            snapshot_seqno,
        }
    }
}

/// The key the conflict tracker knows `key` of `keyspace` by: the keyspace
/// (4 bytes, big-endian) then the user key, so that equal keys of two
/// keyspaces never meet and a keyspace's keys stay one range.
pub(crate) fn conflict_key(keyspace: KeyspaceId, key: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(4 + key.len());
    out.extend_from_slice(&keyspace.to_be_bytes());
    out.extend_from_slice(key);
    Bytes::from(out)
}

/// The keyspace and user key of a [`conflict_key`] (an empty key, from a
/// trimmed history, is the default keyspace's empty key).
pub(crate) fn split_conflict_key(key: &Bytes) -> (KeyspaceId, Bytes) {
    match key.get(..4) {
        Some(prefix) => {
            let mut id = [0u8; 4];
            id.copy_from_slice(prefix);
            (KeyspaceId::from_be_bytes(id), key.slice(4..))
        }
        None => (DEFAULT_KEYSPACE, key.clone()),
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.reason {
            ConflictReason::ReadKeyWritten => "a key it read",
            ConflictReason::ScannedRangeWritten => "a key in a range it scanned",
            ConflictReason::WriteWriteConflict => "a key it writes",
            ConflictReason::HistoryTrimmed => {
                return write!(
                    f,
                    "transaction conflict: the commit history after snapshot {} was trimmed up \
                     to seqno {}, so the transaction cannot be checked",
                    self.snapshot_seqno, self.committed_seqno
                );
            }
        };
        write!(
            f,
            "transaction conflict: commit {} (after snapshot {}) wrote {what}, {:?}",
            self.committed_seqno,
            self.snapshot_seqno,
            String::from_utf8_lossy(&self.key)
        )
    }
}

impl Error {
    /// Whether this error reports damaged data (also behind
    /// [`Error::ReadOnly`]).
    pub fn is_corruption(&self) -> bool {
        match self {
            Error::Corruption { .. } => true,
            Error::ReadOnly { cause } => cause.is_corruption(),
            Error::Io { .. }
            | Error::InvalidArgument(_)
            | Error::Conflict(_)
            | Error::Busy { .. }
            | Error::Closed
            | Error::OpenedReadOnly { .. }
            | Error::Internal { .. } => false,
        }
    }

    /// Whether this is a transaction conflict: running the transaction
    /// again may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }

    /// The kind of the I/O error behind this one (also behind
    /// [`Error::ReadOnly`]), if there is one: a full disk is
    /// [`io::ErrorKind::StorageFull`].
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            Error::ReadOnly { cause } => cause.io_kind(),
            Error::Corruption { .. }
            | Error::InvalidArgument(_)
            | Error::Conflict(_)
            | Error::Busy { .. }
            | Error::Closed
            | Error::OpenedReadOnly { .. }
            | Error::Internal { .. } => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An equal error for a second receiver: the members of a write group
    /// each get the leader's error. An I/O error keeps its kind and message.
    pub(crate) fn share(&self) -> Error {
        match self {
            Error::Io { context, source } => Error::Io {
                context: context.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corruption {
                file,
                offset,
                reason,
            } => Error::Corruption {
                file: file.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            Error::InvalidArgument(message) => Error::InvalidArgument(message.clone()),
            Error::Conflict(conflict) => Error::Conflict(conflict.clone()),
            Error::Busy { path, reason } => Error::Busy {
                path: path.clone(),
                reason: *reason,
            },
            Error::Closed => Error::Closed,
            Error::OpenedReadOnly { path } => Error::OpenedReadOnly { path: path.clone() },
            Error::ReadOnly { cause } => Error::ReadOnly {
                cause: cause.clone(),
            },
            Error::Internal { reason } => Error::Internal {
                reason: reason.clone(),
            },
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
        // Only a writer takes the WAL's own lock.
        kevo_wal::Error::Busy { .. } => Error::Busy {
            path: dir.to_path_buf(),
            reason: BusyReason::OpenForWriting,
        },
        kevo_wal::Error::FileCorruption {
            file,
            offset,
            reason,
        } => Error::Corruption {
            file,
            offset,
            reason,
        },
        kevo_wal::Error::InvalidArgument(message) => Error::InvalidArgument(message),
        // The first failure keeps its kind (a full disk stays one).
        poisoned @ kevo_wal::Error::Poisoned { .. } => {
            let kind = poisoned.io_kind().unwrap_or(io::ErrorKind::Other);
            Error::io(
                "writing the WAL",
                io::Error::new(kind, poisoned.to_string()),
            )
        }
    }
}

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_error_keeps_its_variant_kind_and_message() {
        let errors = [
            Error::io("writing", io::Error::from(io::ErrorKind::StorageFull)),
            Error::Corruption {
                file: "/db/000001.sst".into(),
                offset: 7,
                reason: "bad".into(),
            },
            Error::InvalidArgument("x".into()),
            Error::Conflict(Conflict {
                key: Bytes::from_static(b"k"),
                keyspace: 0,
                reason: ConflictReason::ReadKeyWritten,
                committed_seqno: 9,
                snapshot_seqno: 3,
            }),
            Error::Busy {
                path: "/db".into(),
                reason: BusyReason::OpenReadOnly,
            },
            Error::Closed,
            Error::ReadOnly {
                cause: Arc::new(Error::Closed),
            },
            Error::OpenedReadOnly { path: "/db".into() },
            Error::Internal { reason: "r".into() },
        ];
        for error in errors {
            let shared = error.share();
            assert_eq!(shared.to_string(), error.to_string());
            assert_eq!(
                std::mem::discriminant(&shared),
                std::mem::discriminant(&error)
            );
            assert_eq!(shared.io_kind(), error.io_kind());
        }
    }

    #[test]
    fn a_conflict_names_its_key_and_both_seqnos() {
        let error = Error::Conflict(Conflict {
            key: Bytes::from_static(b"alice"),
            keyspace: 0,
            reason: ConflictReason::ScannedRangeWritten,
            committed_seqno: 12,
            snapshot_seqno: 10,
        });
        let text = error.to_string();
        assert!(
            text.contains("alice") && text.contains("12") && text.contains("10"),
            "{text}"
        );
        assert!(error.is_conflict() && !error.is_corruption());
    }

    #[test]
    fn busy_names_who_holds_the_database() {
        let busy = |reason| Error::Busy {
            path: "/db".into(),
            reason,
        };
        assert_eq!(
            busy(BusyReason::OpenForWriting).to_string(),
            "database /db is open for writing by another handle or process"
        );
        assert_eq!(
            busy(BusyReason::OpenReadOnly).to_string(),
            "database /db is open read-only by another handle or process"
        );
    }

    #[test]
    fn a_read_only_open_is_told_from_a_background_error_by_its_message() {
        let opened = Error::ReadOnly {
            cause: Arc::new(Error::OpenedReadOnly { path: "/db".into() }),
        };
        let text = opened.to_string();
        assert!(
            text.starts_with("the database is read-only: database /db was opened read-only"),
            "{text}"
        );
        assert!(!text.contains("background"), "{text}");
        let failed = Error::ReadOnly {
            cause: Arc::new(Error::io("writing", io::Error::other("EIO"))),
        };
        assert!(
            failed
                .to_string()
                .starts_with("the database is read-only after a background error: "),
            "{failed}"
        );
        assert!(!opened.is_corruption() && opened.io_kind().is_none());
    }

    #[test]
    fn queries_look_through_read_only() {
        let full = Error::io("writing", io::Error::from(io::ErrorKind::StorageFull));
        let read_only = Error::ReadOnly {
            cause: Arc::new(full),
        };
        assert_eq!(read_only.io_kind(), Some(io::ErrorKind::StorageFull));
        let damaged = Error::ReadOnly {
            cause: Arc::new(Error::Corruption {
                file: "f".into(),
                offset: 0,
                reason: "r".into(),
            }),
        };
        assert!(damaged.is_corruption());
    }
}
