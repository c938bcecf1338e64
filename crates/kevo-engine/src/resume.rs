//! The background error that makes the database read-only, and how it is
//! lifted without reopening: [`Db::resume`](crate::Db::resume), and an
//! automatic retry with back-off when the cause is a full disk (RocksDB's
//! auto-recovery from out-of-space).
//!
//! Resuming repairs what the failure left unusable, under the writer mutex
//! (no write runs meanwhile), then lets writes and background work go on:
//! - the manifest, after a failed write or sync: a fresh one holding the
//!   in-memory state ([`kevo_manifest::VersionSet::recover_from_failure`]);
//! - the WAL, after a failed write or rotation: cut back to its last
//!   complete record, its gathered appends written again
//!   ([`kevo_wal::Wal::resume`]). After a failed WAL *fsync* the database
//!   cannot resume (the outcome of an fsync is never guessed): reopen it;
//! - a failed flush needs nothing: its memtable is still there and the
//!   flush runs again.
//!
//! Nothing acknowledged is lost on the way: acknowledged writes are in the
//! memtables and in the WAL (the gathered ones included), and no edit that
//! failed was ever installed.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use kevo_core::SeqNo;

use crate::db::Shared;
use crate::error::{Error, Result, from_wal};
use crate::lock;

/// The first wait before an automatic resume; it doubles after each
/// failed attempt up to [`AUTO_RESUME_WAIT_MAX`].
pub(crate) const AUTO_RESUME_WAIT_MIN: Duration = Duration::from_millis(20);

/// The longest wait between two automatic resume attempts.
pub(crate) const AUTO_RESUME_WAIT_MAX: Duration = Duration::from_secs(1);

/// Why the database is read-only, if it is.
#[derive(Debug, Default)]
pub(crate) struct BackgroundError {
    /// Whether `cause` is set (read on every write).
    set: AtomicBool,
    cause: Mutex<Option<Arc<Error>>>,
}

impl BackgroundError {
    /// The cause, if the database is read-only.
    pub(crate) fn get(&self) -> Option<Arc<Error>> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.cause).clone()
    }

    /// Records `error` unless a cause is already recorded; returns the
    /// recorded cause and whether it is `error`.
    fn set(&self, error: Error) -> (Arc<Error>, bool) {
        let mut cause = lock(&self.cause);
        if let Some(existing) = cause.as_ref() {
            return (existing.clone(), false);
        }
        let error = Arc::new(error);
        *cause = Some(error.clone());
        self.set.store(true, Ordering::Release);
        (error, true)
    }

    fn clear(&self) {
        let mut cause = lock(&self.cause);
        *cause = None;
        self.set.store(false, Ordering::Release);
    }
}

/// Whether `error` comes from a full disk: such failures are resumed
/// automatically once there is room again.
pub(crate) fn is_out_of_space(error: &Error) -> bool {
    match error {
        Error::Io { source, .. } => source.kind() == io::ErrorKind::StorageFull,
        Error::ReadOnly { cause } => is_out_of_space(cause),
        _ => false,
    }
}

/// The wait before automatic resume attempt `attempt` (0 first).
pub(crate) fn auto_resume_wait(attempt: u32) -> Duration {
    AUTO_RESUME_WAIT_MIN
        .saturating_mul(1u32 << attempt.min(16))
        .min(AUTO_RESUME_WAIT_MAX)
}

impl Shared {
    /// Records the first background error: the database becomes read-only.
    /// A full disk schedules an automatic resume.
    pub(crate) fn set_background_error(&self, error: Error) -> Arc<Error> {
        let out_of_space = is_out_of_space(&error);
        let (cause, first) = self.bg_error.set(error);
        if first {
            tracing::error!(error = %cause, auto_resume = out_of_space, "background error: the database is now read-only");
            if out_of_space {
                let mut bg = lock(&self.bg);
                let wait = auto_resume_wait(bg.resume_attempts);
                bg.resume_at = Some(Instant::now() + wait);
            }
        }
        self.bg_cv.notify_all();
        cause
    }

    /// `Db::resume`: lifts the background error (see the module docs),
    /// then waits until the memtables that were waiting for a flush are
    /// flushed, so that `Ok` means the database works again.
    pub(crate) fn resume(&self) -> Result<()> {
        self.check_open()?;
        let Some(target) = self.try_resume()? else {
            return Ok(());
        };
        self.wait_for_flushed(target)
    }

    /// Lifts the background error if it can. Returns the id of the newest
    /// memtable waiting for a flush, if the database was read-only and one
    /// is waiting.
    pub(crate) fn try_resume(&self) -> Result<Option<u64>> {
        let writer = lock(&self.writer);
        self.resume_locked(&writer)
    }

    /// [`Shared::try_resume`] with the writer mutex held.
    fn resume_locked(&self, _writer: &MutexGuard<'_, SeqNo>) -> Result<Option<u64>> {
        self.check_open()?;
        let Some(cause) = self.bg_error.get() else {
            return Ok(None);
        };
        let _span = tracing::info_span!("kevo.resume", cause = %cause).entered();
        self.versions.recover_from_failure()?;
        {
            let wal = self.wal.read().unwrap_or_else(|e| e.into_inner());
            if let Some(wal) = wal.as_ref() {
                wal.resume().map_err(|e| from_wal(&self.dir, e))?;
            }
        }
        {
            let mut bg = lock(&self.bg);
            bg.resume_attempts = 0;
            bg.resume_at = None;
            bg.compaction_failures = 0;
            bg.retry_at = None;
        }
        self.bg_error.clear();
        self.counters.record_resume();
        tracing::info!(%cause, "resumed: the database takes writes again");
        self.bg_cv.notify_all();
        let target = lock(&self.mem).imms.back().map(|imm| imm.id);
        Ok(target)
    }

    /// An automatic resume attempt, from a background thread whose turn it
    /// is; a failure schedules the next one. It never waits for the writer
    /// mutex: `close` holds it while it joins the background threads.
    pub(crate) fn auto_resume(&self) {
        let writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let mut bg = lock(&self.bg);
                if !bg.shutdown {
                    bg.resume_at = Some(Instant::now() + AUTO_RESUME_WAIT_MIN);
                }
                return;
            }
        };
        match self.resume_locked(&writer) {
            Ok(_) => {}
            Err(e) => {
                let mut bg = lock(&self.bg);
                bg.resume_attempts = bg.resume_attempts.saturating_add(1);
                let wait = auto_resume_wait(bg.resume_attempts);
                if self.bg_error.get().is_some() && !bg.shutdown {
                    bg.resume_at = Some(Instant::now() + wait);
                }
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "automatic resume failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_a_limit() {
        assert_eq!(auto_resume_wait(0), AUTO_RESUME_WAIT_MIN);
        assert_eq!(auto_resume_wait(1), AUTO_RESUME_WAIT_MIN * 2);
        assert_eq!(auto_resume_wait(30), AUTO_RESUME_WAIT_MAX);
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
