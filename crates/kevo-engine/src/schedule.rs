//! [`Schedule`]: the state of the background jobs (which flush and
//! compactions run, which tables they hold, when a failed one is retried),
//! the threads that run them, and the one way to wait for them
//! ([`Schedule::wait_until`]).
//!
//! Everything that changes what a waiter waits for (a job ends, a memtable
//! is frozen, a version installed, a background error set, the database
//! closed) calls [`Schedule::notify`] afterwards, so waits need no polling;
//! they still wake every [`WAIT_SLICE`] as a safety net.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kevo_core::KeyspaceId;

use crate::error::{Error, Result};
use crate::lifecycle::Lifecycle;
use crate::sync::{lock, wait_timeout};

/// The longest a waiter sleeps before checking again without a
/// notification.
pub(crate) const WAIT_SLICE: Duration = Duration::from_secs(1);

/// The first wait before an automatic resume; it doubles after each
/// failed attempt up to [`AUTO_RESUME_WAIT_MAX`].
pub(crate) const AUTO_RESUME_WAIT_MIN: Duration = Duration::from_millis(20);

/// The longest wait between two automatic resume attempts.
pub(crate) const AUTO_RESUME_WAIT_MAX: Duration = Duration::from_secs(1);

/// The wait before automatic resume attempt `attempt` (0 first).
pub(crate) fn auto_resume_wait(attempt: u32) -> Duration {
    AUTO_RESUME_WAIT_MIN
        .saturating_mul(1u32 << attempt.min(16))
        .min(AUTO_RESUME_WAIT_MAX)
}

/// The wait before retrying a compaction after `failures` failures in a
/// row: 100 ms doubling to 10 s.
pub(crate) fn compaction_backoff(failures: u32) -> Duration {
    let millis = 100u64.saturating_mul(1u64 << failures.min(7));
    Duration::from_millis(millis.min(10_000))
}

/// What the background jobs are doing.
#[derive(Debug, Default)]
pub(crate) struct JobState {
    /// A flush is running.
    pub(crate) flushing: bool,
    /// Per keyspace, the id of its newest immutable memtable flushed.
    pub(crate) flushed: BTreeMap<KeyspaceId, u64>,
    /// Tables that running compactions read (automatic and manual).
    pub(crate) compacting: BTreeSet<u64>,
    /// Automatic compactions running.
    pub(crate) running_compactions: usize,
    /// Manual compaction tasks running in callers' threads (`close` waits
    /// for them).
    pub(crate) manual_running: usize,
    /// Failed automatic compactions in a row, and when to try again.
    pub(crate) compaction_failures: u32,
    pub(crate) retry_at: Option<Instant>,
    /// Failed automatic resume attempts in a row, and when to try again
    /// (set while a full disk keeps the database read-only).
    pub(crate) resume_attempts: u32,
    pub(crate) resume_at: Option<Instant>,
    /// The visible seqno and block-cache lookup count last seen by a
    /// background thread, and since when they have not changed (for the
    /// idle compaction).
    pub(crate) idle_since: Option<((u64, u64), Instant)>,
    /// An idle compaction runs.
    pub(crate) idle_compacting: bool,
}

impl JobState {
    /// The earliest back-off that ends, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [self.retry_at, self.resume_at].into_iter().flatten().min()
    }
}

/// The job state, its condition variable and the background threads.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    state: Mutex<JobState>,
    changed: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Schedule {
    /// The job state, locked.
    pub(crate) fn state(&self) -> MutexGuard<'_, JobState> {
        lock(&self.state)
    }

    /// Wakes every waiter. Taking the state lock first orders the wake-up
    /// after any waiter's check of its condition: none misses it.
    pub(crate) fn notify(&self) {
        drop(lock(&self.state));
        self.changed.notify_all();
    }

    /// Waits until `ready` returns `Some`, re-checking it whenever anything
    /// changes. `ready` gets the job state (locked); it may look at other
    /// state as long as every change to that is followed by
    /// [`Schedule::notify`].
    ///
    /// # Errors
    /// Checked before `ready` on each wake-up, the same for every waiter:
    /// [`Error::Closed`] once the database is closing; [`Error::ReadOnly`]
    /// once a background error stands.
    pub(crate) fn wait_until<T>(
        &self,
        life: &Lifecycle,
        mut ready: impl FnMut(&mut JobState) -> Option<T>,
    ) -> Result<T> {
        let mut state = lock(&self.state);
        loop {
            life.check_open()?;
            if let Some(cause) = life.background_error() {
                return Err(Error::ReadOnly { cause });
            }
            if let Some(value) = ready(&mut state) {
                return Ok(value);
            }
            state = wait_timeout(&self.changed, state, WAIT_SLICE);
        }
    }

    /// Sleeps with the job state until something changes or `deadline`
    /// (for the background threads' idle wait).
    pub(crate) fn sleep<'a>(
        &'a self,
        state: MutexGuard<'a, JobState>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, JobState> {
        let timeout = deadline.map_or(WAIT_SLICE, |at| {
            at.saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), WAIT_SLICE)
        });
        wait_timeout(&self.changed, state, timeout)
    }

    /// Keeps `thread` to be joined by [`Schedule::join_threads`].
    pub(crate) fn add_thread(&self, thread: JoinHandle<()>) {
        lock(&self.threads).push(thread);
    }

    /// Joins every background thread (they end once the database is
    /// closing), then waits for the manual compactions in callers' threads
    /// to notice the close.
    pub(crate) fn join_threads(&self) {
        self.notify();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a background thread panicked");
            }
        }
        let mut state = lock(&self.state);
        while state.manual_running > 0 {
            state = wait_timeout(&self.changed, state, WAIT_SLICE);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn back_offs_double_up_to_a_limit() {
        assert_eq!(auto_resume_wait(0), AUTO_RESUME_WAIT_MIN);
        assert_eq!(auto_resume_wait(1), AUTO_RESUME_WAIT_MIN * 2);
        assert_eq!(auto_resume_wait(30), AUTO_RESUME_WAIT_MAX);
        assert_eq!(compaction_backoff(0), Duration::from_millis(100));
        assert_eq!(compaction_backoff(1), Duration::from_millis(200));
        assert_eq!(compaction_backoff(40), Duration::from_secs(10));
    }

    #[test]
    fn a_wait_ends_when_its_condition_holds_or_the_database_closes() {
        let schedule = Arc::new(Schedule::default());
        let life = Arc::new(Lifecycle::default());
        let waiter = {
            let (schedule, life) = (schedule.clone(), life.clone());
            std::thread::spawn(move || {
                schedule.wait_until(&life, |state| {
                    state.flushed.get(&0).copied().filter(|&id| id >= 3)
                })
            })
        };
        schedule.state().flushed.insert(0, 3);
        schedule.notify();
        assert_eq!(waiter.join().unwrap().unwrap(), 3);

        let waiter = {
            let (schedule, life) = (schedule.clone(), life.clone());
            std::thread::spawn(move || schedule.wait_until(&life, |_| None::<()>))
        };
        life.close();
        schedule.notify();
        assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
    }

    #[test]
    fn a_background_error_ends_every_wait() {
        let schedule = Schedule::default();
        let life = Lifecycle::default();
        life.set_background_error(Error::Closed);
        assert!(matches!(
            schedule.wait_until(&life, |_| None::<()>),
            Err(Error::ReadOnly { .. })
        ));
        // Even one whose condition holds: the error comes first.
        assert!(matches!(
            schedule.wait_until(&life, |_| Some(7)),
            Err(Error::ReadOnly { .. })
        ));
        life.clear_background_error();
        assert_eq!(schedule.wait_until(&life, |_| Some(7)).unwrap(), 7);
    }
}
