//! [`Lifecycle`]: whether the database is open, and whether a background
//! error (or a read-only open) has made it read-only — the two facts every
//! call checks first.
//!
//! One closing flag: `close` sets it once; calls, iterators, waits and
//! running compactions all see the same flag. A database opened read-only
//! starts with [`Error::OpenedReadOnly`] as its standing cause, which
//! nothing lifts: every write path then fails as it does after a
//! background error, without a check of its own.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::sync::lock;

/// Open or closed, writable or read-only.
///
/// # Thread safety
/// Both facts are read with an atomic load on every call; the cause of a
/// background error sits behind a mutex taken only when there is one.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    closed: AtomicBool,
    /// Whether `cause` holds an error.
    read_only: AtomicBool,
    cause: Mutex<Option<Arc<Error>>>,
    /// Opened read-only: `cause` stands for good.
    opened_read_only: bool,
}

impl Lifecycle {
    /// The lifecycle of a database opened read-only: read-only from the
    /// start, for good, with `cause` (an [`Error::OpenedReadOnly`]).
    pub(crate) fn opened_read_only(cause: Arc<Error>) -> Self {
        Lifecycle {
            closed: AtomicBool::new(false),
            read_only: AtomicBool::new(true),
            cause: Mutex::new(Some(cause)),
            opened_read_only: true,
        }
    }

    /// Whether the database was opened read-only.
    pub(crate) fn is_opened_read_only(&self) -> bool {
        self.opened_read_only
    }

    /// Whether `close` has begun.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The closing flag itself, for work that polls it (a running
    /// compaction stops when it is set).
    pub(crate) fn closing_flag(&self) -> &AtomicBool {
        &self.closed
    }

    /// Marks the database closed; `false` if it already was.
    pub(crate) fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// `Err(Closed)` once closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// `Err(Closed)` once closed, `Err(ReadOnly)` while a background error
    /// stands.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        match self.background_error() {
            Some(cause) => Err(Error::ReadOnly { cause }),
            None => Ok(()),
        }
    }

    /// The background error, if the database is read-only.
    pub(crate) fn background_error(&self) -> Option<Arc<Error>> {
        if !self.read_only.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.cause).clone()
    }

    /// Records `error` unless a cause is already recorded; returns the
    /// recorded cause and whether it is `error`.
    pub(crate) fn set_background_error(&self, error: Error) -> (Arc<Error>, bool) {
        let mut cause = lock(&self.cause);
        if let Some(existing) = cause.as_ref() {
            return (existing.clone(), false);
        }
        let error = Arc::new(error);
        *cause = Some(error.clone());
        self.read_only.store(true, Ordering::Release);
        (error, true)
    }

    /// Lifts the background error (after a successful resume); never the
    /// cause of a read-only open.
    pub(crate) fn clear_background_error(&self) {
        if self.opened_read_only {
            return;
        }
        let mut cause = lock(&self.cause);
        *cause = None;
        self.read_only.store(false, Ordering::Release);
    }
}

/// Whether `error` comes from a full disk: such failures are resumed
/// automatically once there is room again.
pub(crate) fn is_out_of_space(error: &Error) -> bool {
    error.io_kind() == Some(io::ErrorKind::StorageFull)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_is_once_and_errors_are_kept_until_cleared() {
        let life = Lifecycle::default();
        life.check_writable().unwrap();
        let (first, is_first) = life.set_background_error(Error::Closed);
        assert!(is_first);
        let (kept, is_first) = life.set_background_error(Error::InvalidArgument("x".into()));
        assert!(!is_first);
        assert!(Arc::ptr_eq(&first, &kept));
        assert!(matches!(life.check_writable(), Err(Error::ReadOnly { .. })));
        life.clear_background_error();
        life.check_writable().unwrap();
        assert!(life.close());
        assert!(!life.close());
        assert!(matches!(life.check_open(), Err(Error::Closed)));
    }

    #[test]
    fn a_read_only_open_stays_read_only() {
        let cause = Arc::new(Error::OpenedReadOnly { path: "/db".into() });
        let life = Lifecycle::opened_read_only(cause.clone());
        assert!(life.is_opened_read_only());
        life.check_open().unwrap();
        let (kept, is_first) = life.set_background_error(Error::Closed);
        assert!(!is_first);
        assert!(Arc::ptr_eq(&kept, &cause));
        life.clear_background_error();
        match life.check_writable() {
            Err(Error::ReadOnly { cause: got }) => assert!(Arc::ptr_eq(&got, &cause)),
            other => panic!("expected ReadOnly, got {other:?}"),
        }
    }

    #[test]
    fn only_a_full_disk_is_resumed_automatically() {
        let full = Error::io("writing", io::Error::from(io::ErrorKind::StorageFull));
        let eio = Error::io("writing", io::Error::other("EIO"));
        assert!(is_out_of_space(&full));
        assert!(!is_out_of_space(&eio));
        assert!(is_out_of_space(&Error::ReadOnly {
            cause: Arc::new(full)
        }));
    }
}
