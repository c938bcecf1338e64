//! Running compactions: picking by score on the background threads, the
//! manual `compact_range`, and installing the result.
//!
//! A compaction (from `kevo-compaction`) writes and syncs its output tables;
//! the engine then logs the edit that swaps inputs for outputs, installs the
//! new version, and deletes the inputs once no version refers to them.
//!
//! Failures:
//! - the merge itself fails (a read, write or sync of a table): the outputs
//!   are removed, nothing changed, and the task is retried with back-off
//!   (100 ms doubling to 10 s); the database stays writable;
//! - the manifest refuses the edit as inconsistent (a racing change made it
//!   stale): the outputs become orphans, deleted with the obsolete files;
//! - the manifest write or sync fails: the database turns read-only.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kevo_compaction::{
    CompactionStrategy, CompactionTask, Leveled, LeveledOptions, ManualStep, RunContext, Tiered,
    TieredOptions, run_compaction,
};
use kevo_manifest::table_file_name;

use crate::db::Shared;
use crate::error::{Error, Result};
use crate::lock;
use crate::options::{CompactionStyle, Options};

/// The strategy the options ask for.
pub(crate) fn strategy(options: &Options) -> Box<dyn CompactionStrategy> {
    match options.compaction_style {
        CompactionStyle::Leveled => Box::new(Leveled::new(LeveledOptions {
            l0_trigger: options.l0_compaction_trigger,
            level_multiplier: options.level_multiplier,
            base_level_bytes: options.base_level_bytes,
            target_file_bytes: options.target_file_bytes,
            dynamic_level_bytes: true,
        })),
        CompactionStyle::Tiered => Box::new(Tiered::new(TieredOptions {
            min_merge_width: options.l0_compaction_trigger,
            target_file_bytes: options.target_file_bytes,
            ..TieredOptions::default()
        })),
    }
}

/// How many compactions may run at once: every background thread but one,
/// which stays free for flushes.
pub(crate) fn max_running(options: &Options) -> usize {
    options.background_threads.saturating_sub(1).max(1)
}

/// Back-off after `failures` failed compactions in a row.
pub(crate) fn backoff(failures: u32) -> Duration {
    let millis = 100u64.saturating_mul(1u64 << failures.min(7));
    Duration::from_millis(millis.min(10_000))
}

/// What running one task came to.
pub(crate) enum Outcome {
    Done,
    /// The merge failed or was refused; nothing changed. Retry later.
    Retry(Error),
    /// The manifest could not be written: the database is now read-only.
    Fatal(Arc<Error>),
}

/// Runs `task` (its inputs already marked busy by the caller) and installs
/// the result.
pub(crate) fn run_task(shared: &Shared, task: &CompactionTask) -> Outcome {
    let snapshots = shared.live_snapshots();
    let open_table =
        |meta: &kevo_manifest::TableMeta| shared.tables.get(meta).map_err(crate::read::to_core);
    let new_file_number = || shared.versions.reserve_file_number();
    let ctx = RunContext {
        fs: shared.fs.as_ref(),
        dir: &shared.dir,
        open_table: &open_table,
        new_file_number: &new_file_number,
        table_options: crate::flush::table_options(shared),
        snapshots: &snapshots,
        stop: &shared.stop,
    };
    let output = match run_compaction(task, &ctx) {
        Ok(output) => output,
        // Reserving an output's file number wrote to the manifest and
        // failed: nothing more can be recorded until a resume.
        Err(e) if shared.versions.is_poisoned() => {
            return Outcome::Fatal(shared.set_background_error(e.into()));
        }
        Err(e) => return Outcome::Retry(e.into()),
    };
    let outputs: Vec<u64> = output.outputs.iter().map(|t| t.number).collect();
    if shared.stop.load(Ordering::Acquire) {
        // Closing: install nothing after the lock may be released.
        remove_new_outputs(shared, task, outputs);
        return Outcome::Retry(Error::Closed);
    }
    match shared.versions.log_and_apply(output.edit) {
        Ok(_) => {}
        Err(kevo_core::Error::InvalidArgument(reason)) => {
            // Stale against a racing edit: nothing was written.
            remove_new_outputs(shared, task, outputs);
            return Outcome::Retry(Error::InvalidArgument(format!(
                "compaction edit refused: {reason}"
            )));
        }
        Err(e) => return Outcome::Fatal(shared.set_background_error(e.into())),
    }
    shared.install_current_version();
    shared
        .counters
        .record_compaction(task.output_level, &output.stats);
    tracing::info!(
        reason = ?task.reason,
        output_level = task.output_level,
        trivial_move = task.trivial_move,
        bytes_read = output.stats.bytes_read,
        bytes_written = output.stats.bytes_written,
        ms = output.stats.duration.as_millis() as u64,
        "compaction installed"
    );
    crate::flush::retire_files(shared, None);
    Outcome::Done
}

/// Removes the tables a compaction wrote that no edit installed. A trivial
/// move's "output" is its input, still live: it stays.
fn remove_new_outputs(shared: &Shared, task: &CompactionTask, outputs: Vec<u64>) {
    let inputs = task.input_numbers();
    for number in outputs.into_iter().filter(|n| !inputs.contains(n)) {
        let _ = shared
            .fs
            .remove_file(&shared.dir.join(table_file_name(number)));
    }
}

impl Shared {
    /// Installs the version set's current version in the read set.
    pub(crate) fn install_current_version(&self) {
        let mut state = lock(&self.mem);
        state.version = self.versions.current();
        state.pending_compaction_bytes = self.strategy.pending_bytes(&state.version);
        self.publish(&state);
    }

    /// `Db::compact_range`: flush, then run the strategy's manual plan for
    /// the range to its end, in the calling thread.
    pub(crate) fn compact_range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        self.flush()?;
        let started = Instant::now();
        let mut manual = self.strategy.manual(start, end);
        let mut tasks = 0;
        loop {
            self.check_writable()?;
            let task = {
                let mut bg = lock(&self.bg);
                let version = lock(&self.mem).version.clone();
                match manual.next_task(&version, &bg.compacting) {
                    ManualStep::Done => break,
                    ManualStep::Wait => {
                        let _ = self
                            .bg_cv
                            .wait_timeout(bg, Duration::from_millis(50))
                            .unwrap_or_else(|e| e.into_inner());
                        continue;
                    }
                    ManualStep::Task(task) => {
                        if bg.shutdown {
                            return Err(Error::Closed);
                        }
                        bg.compacting.extend(task.input_numbers());
                        bg.manual_running += 1;
                        task
                    }
                }
            };
            let outcome = run_task(self, &task);
            {
                let mut bg = lock(&self.bg);
                for number in task.input_numbers() {
                    bg.compacting.remove(&number);
                }
                bg.manual_running -= 1;
            }
            self.bg_cv.notify_all();
            match outcome {
                Outcome::Done => tasks += 1,
                Outcome::Retry(e) => {
                    if self.stop.load(Ordering::Acquire) {
                        return Err(Error::Closed);
                    }
                    self.counters
                        .compaction_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
                Outcome::Fatal(cause) => return Err(Error::ReadOnly { cause }),
            }
        }
        tracing::info!(
            tasks,
            ms = started.elapsed().as_millis() as u64,
            "compact_range done"
        );
        Ok(())
    }
}

impl Shared {
    /// `Db::wait_for_compactions`.
    pub(crate) fn wait_for_compactions(&self) -> Result<()> {
        let mut bg = lock(&self.bg);
        loop {
            if let Some(cause) = self.bg_error.get() {
                return Err(Error::ReadOnly { cause });
            }
            if bg.shutdown || self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let (flushes_pending, version) = {
                let state = lock(&self.mem);
                (!state.imms.is_empty(), state.version.clone())
            };
            let busy = bg.flushing || flushes_pending || bg.running_compactions > 0;
            let due = self.options.auto_compactions
                && self.strategy.pick(&version, &bg.compacting).is_some();
            if !busy && !due {
                return Ok(());
            }
            bg = self
                .bg_cv
                .wait_timeout(bg, Duration::from_millis(20))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Picks an automatic compaction, if one is due and allowed; marks its
/// inputs busy. Called with the `bg` lock held.
pub(crate) fn pick(shared: &Shared, bg: &mut crate::db::BgState) -> Option<CompactionTask> {
    if !shared.options.auto_compactions
        || bg.running_compactions >= max_running(&shared.options)
        || bg.retry_at.is_some_and(|at| Instant::now() < at)
    {
        return None;
    }
    let version = lock(&shared.mem).version.clone();
    let task = shared.strategy.pick(&version, &bg.compacting)?;
    bg.compacting.extend(task.input_numbers());
    bg.running_compactions += 1;
    Some(task)
}

/// A background thread ran `task`: release it and handle the outcome.
pub(crate) fn finish_background(shared: &Shared, task: &CompactionTask, outcome: Outcome) {
    let mut bg = lock(&shared.bg);
    for number in task.input_numbers() {
        bg.compacting.remove(&number);
    }
    bg.running_compactions -= 1;
    match outcome {
        Outcome::Done => {
            bg.compaction_failures = 0;
            bg.retry_at = None;
        }
        Outcome::Retry(e) => {
            if shared.stop.load(Ordering::Acquire) {
                return; // Stopped for close: not a failure.
            }
            shared
                .counters
                .compaction_errors
                .fetch_add(1, Ordering::Relaxed);
            let wait = backoff(bg.compaction_failures);
            bg.compaction_failures = bg.compaction_failures.saturating_add(1);
            bg.retry_at = Some(Instant::now() + wait);
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "compaction failed; will retry");
        }
        Outcome::Fatal(_) => {}
    }
}
