//! The compaction job: picking by score for the background threads, the
//! manual `compact_range` in the caller's thread, and running one task.
//!
//! A task (from `kevo-compaction`) writes and syncs its output tables; the
//! edit that swaps inputs for outputs is then applied like every edit
//! ([`install::apply_edit`]). Failures:
//! - the merge itself fails (a read, write or sync of a table): its outputs
//!   are removed, nothing changed, and the task is retried with back-off
//!   (100 ms doubling to 10 s); the database stays writable;
//! - the manifest refuses the edit as stale (a racing change): the outputs
//!   are removed, and the task is retried;
//! - the manifest write or sync fails: the database turns read-only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kevo_compaction::{CompactionTask, ManualStep, RunContext, run_compaction};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::install::{self, Applied, Change};
use crate::keyspace::KeyspaceCore;
use crate::options::{CompactionStyle, Options};
use crate::schedule::{JobState, compaction_backoff};
use crate::write::flush;

/// How many compactions may run at once: every background thread but one,
/// which stays free for flushes.
fn max_running(options: &Options) -> usize {
    options.background_threads.saturating_sub(1).max(1)
}

/// What running one task came to.
pub(crate) enum Outcome {
    Done,
    /// The database is closing: the task was abandoned, nothing changed.
    Stopped,
    /// The merge failed or its edit was refused; nothing changed. Retry
    /// later.
    Retry(Error),
    /// The manifest could not be written: the database is now read-only.
    ReadOnly(Arc<Error>),
}

/// Runs `task` on `keyspace` (its inputs already marked busy by the
/// caller) and applies the result.
pub(crate) fn run_task(
    engine: &Engine,
    keyspace: &Arc<KeyspaceCore>,
    task: &CompactionTask,
) -> Outcome {
    let versions = match engine.versions() {
        Ok(versions) => versions,
        Err(cause) => return Outcome::ReadOnly(cause),
    };
    let snapshots = engine.visibility.live_snapshots();
    let open_table = |meta: &kevo_manifest::TableMeta| engine.tables.get(meta);
    let new_file_number = || versions.reserve_file_number();
    let ctx = RunContext {
        fs: engine.fs.as_ref(),
        dir: &engine.dir,
        open_table: &open_table,
        new_file_number: &new_file_number,
        table_options: keyspace.table_options(),
        snapshots: &snapshots,
        stop: engine.life.closing_flag(),
    };
    let output = match run_compaction(task, &ctx) {
        Ok(Some(output)) => output,
        Ok(None) => return Outcome::Stopped,
        // Reserving an output's file number wrote to the manifest and
        // failed: nothing more can be recorded until a resume.
        Err(e) if versions.is_poisoned() => {
            return Outcome::ReadOnly(engine.fail(e.into()));
        }
        Err(e) => return Outcome::Retry(e.into()),
    };
    // A trivial move's "output" is its input, still live: never removed.
    let inputs = task.input_numbers();
    let new_tables: Vec<u64> = output
        .outputs
        .iter()
        .map(|t| t.number)
        .filter(|n| !inputs.contains(n))
        .collect();
    if engine.life.is_closed() {
        // Closing: install nothing after the threads were told to stop.
        install::remove_tables(engine, &new_tables);
        return Outcome::Stopped;
    }
    let mut edit = output.edit;
    edit.keyspace = keyspace.id;
    let change = Change::Compaction {
        keyspace: Arc::clone(keyspace),
    };
    match install::apply_edit(engine, edit, &new_tables, change) {
        Ok(Applied::Installed) => {}
        Ok(Applied::Refused(refused)) => {
            return Outcome::Retry(Error::Internal {
                reason: format!(
                    "the manifest refused a compaction's edit: {}",
                    refused.reason
                ),
            });
        }
        Err(cause) => return Outcome::ReadOnly(cause),
    }
    engine
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
    Outcome::Done
}

/// Picks an automatic compaction, if one is due and allowed, and marks its
/// inputs busy: from the keyspace whose levels score highest first.
/// Called with the job state locked.
pub(crate) fn pick(
    engine: &Engine,
    state: &mut JobState,
) -> Option<(Arc<KeyspaceCore>, CompactionTask)> {
    if !engine.options.auto_compactions
        || state.running_compactions >= max_running(&engine.options)
        || state.retry_at.is_some_and(|at| Instant::now() < at)
    {
        return None;
    }
    let mut keyspaces: Vec<(f64, Arc<KeyspaceCore>)> = engine
        .keyspaces
        .all()
        .into_iter()
        .filter(|k| !k.is_dropped() && k.settings().options.auto_compactions)
        .map(|k| {
            let score = k
                .settings()
                .strategy
                .level_scores(&k.read.version())
                .iter()
                .map(|level| level.score)
                .fold(0.0, f64::max);
            (score, k)
        })
        .collect();
    keyspaces.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Range tombstones first: tables one deletes whole go without any
    // I/O, then a table whose tombstones cover part of the data below it
    // is carried down to meet it; size-driven work then has less to do.
    for (_, keyspace) in &keyspaces {
        if let Some(task) = pick_range_tombstone_work(engine, keyspace, &state.compacting) {
            state.compacting.extend(task.input_numbers());
            state.running_compactions += 1;
            return Some((Arc::clone(keyspace), task));
        }
    }
    for (_, keyspace) in keyspaces {
        let version = keyspace.read.version();
        if let Some(task) = keyspace
            .settings()
            .strategy
            .pick(&version, &state.compacting)
        {
            state.compacting.extend(task.input_numbers());
            state.running_compactions += 1;
            return Some((keyspace, task));
        }
    }
    None
}

/// Work that range tombstones of `keyspace` call for: a delete-only task
/// (see `kevo_compaction::pick_delete_only`) if one of its tables' range
/// tombstones covers other tables whole for every reader; else a task
/// carrying a table with range tombstones one step down, when older data
/// below it lies in their range and a reader-wide tombstone can drop some
/// of it (`CompactionStrategy::pick_range_tombstones`).
fn pick_range_tombstone_work(
    engine: &Engine,
    keyspace: &KeyspaceCore,
    busy: &std::collections::BTreeSet<u64>,
) -> Option<CompactionTask> {
    let version = keyspace.read.version();
    let mut holders = Vec::new();
    for level in 0..version.num_levels() {
        for table in version.level(level) {
            if !table.has_range_tombstones() || busy.contains(&table.number) {
                continue;
            }
            // A table that cannot be opened now is looked at next time.
            let Ok(opened) = engine.tables.get(table) else {
                continue;
            };
            holders.push(kevo_compaction::TombstoneHolder {
                level,
                table: Arc::clone(table),
                tombstones: opened.range_tombstones().clone(),
            });
        }
    }
    if holders.is_empty() {
        return None;
    }
    // Every reader: the oldest live snapshot, or the newest seqno.
    let visible = engine.visibility.visible();
    let read_seqno = engine
        .visibility
        .snapshot_counts()
        .1
        .map_or(visible, |oldest| oldest.min(visible));
    if let Some(task) = kevo_compaction::pick_delete_only(&version, &holders, read_seqno, busy) {
        return Some(task);
    }
    let strategy = &keyspace.settings().strategy;
    holders.iter().find_map(|holder| {
        let seen_by_all = holder.tombstones.min_seqno()? <= read_seqno;
        let (lo, hi) = holder.tombstones.bounds()?;
        let older_below = (holder.level..version.num_levels()).any(|level| {
            version
                .overlapping(level, Some(lo), Some(hi))
                .iter()
                .any(|t| {
                    let below = level > holder.level
                        || (level == 0 && t.largest_seqno < holder.table.smallest_seqno);
                    below && t.smallest_seqno < holder.table.largest_seqno
                })
        });
        if !(seen_by_all && older_below) {
            return None;
        }
        strategy.pick_range_tombstones(&version, holder.level, &holder.table, busy)
    })
}

/// A background thread ran `task`: releases its inputs and handles the
/// outcome (a failure backs off).
pub(crate) fn finish_background(engine: &Engine, task: &CompactionTask, outcome: Outcome) {
    let mut state = engine.jobs.state();
    for number in task.input_numbers() {
        state.compacting.remove(&number);
    }
    state.running_compactions -= 1;
    match outcome {
        Outcome::Done => {
            state.compaction_failures = 0;
            state.retry_at = None;
        }
        Outcome::Retry(e) => {
            engine.counters.record_compaction_error();
            let wait = compaction_backoff(state.compaction_failures);
            state.compaction_failures = state.compaction_failures.saturating_add(1);
            state.retry_at = Some(Instant::now() + wait);
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "compaction failed; will retry");
        }
        Outcome::Stopped | Outcome::ReadOnly(_) => {}
    }
}

/// `Db::compact_range` and `Keyspace::compact_range`: flushes `keyspace`,
/// then runs its strategy's manual plan for the range to its end, in the
/// calling thread, alongside the background compactions (waiting for those
/// holding tables it needs).
///
/// # Errors
/// The first failed task's error (nothing lost; retry the call);
/// [`Error::ReadOnly`]; [`Error::Closed`].
pub(crate) fn compact_range(
    engine: &Engine,
    keyspace: &Arc<KeyspaceCore>,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
) -> Result<()> {
    flush(engine, keyspace)?;
    run_manual(engine, keyspace, start, end)
}

/// The manual plan for `start..=end` of `keyspace`, run to its end in the
/// calling thread (see [`compact_range`], which flushes first).
fn run_manual(
    engine: &Engine,
    keyspace: &Arc<KeyspaceCore>,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
) -> Result<()> {
    let started = Instant::now();
    let mut manual = keyspace.settings().strategy.manual(start, end);
    let mut tasks = 0;
    loop {
        engine.life.check_writable()?;
        let task = engine.jobs.wait_until(&engine.life, |state| {
            if keyspace.is_dropped() {
                return Some(None);
            }
            let version = keyspace.read.version();
            match manual.next_task(&version, &state.compacting) {
                ManualStep::Done => Some(None),
                ManualStep::Wait => None,
                ManualStep::Task(task) => {
                    state.compacting.extend(task.input_numbers());
                    state.manual_running += 1;
                    Some(Some(task))
                }
            }
        })?;
        let Some(task) = task else { break };
        let outcome = run_task(engine, keyspace, &task);
        {
            let mut state = engine.jobs.state();
            for number in task.input_numbers() {
                state.compacting.remove(&number);
            }
            state.manual_running -= 1;
        }
        engine.jobs.notify();
        match outcome {
            Outcome::Done => tasks += 1,
            Outcome::Stopped => return Err(Error::Closed),
            Outcome::Retry(e) => {
                engine.counters.record_compaction_error();
                return Err(e);
            }
            Outcome::ReadOnly(cause) => return Err(Error::ReadOnly { cause }),
        }
    }
    tracing::info!(
        tasks,
        ms = started.elapsed().as_millis() as u64,
        "compact_range done"
    );
    Ok(())
}

/// Whether `version`'s levels above its last non-empty one hold more than
/// `percent` of its table bytes, or everything is in L0 in more than one
/// table (their keys may overlap, and there is no level to merge into but
/// the one the merge makes).
fn wants_idle_compaction(version: &kevo_manifest::Version, percent: u64) -> bool {
    let Some(last) = (0..version.num_levels())
        .rev()
        .find(|&l| !version.level(l).is_empty())
    else {
        return false;
    };
    if last == 0 {
        return version.level(0).len() > 1;
    }
    let above: u64 = (0..last).map(|l| version.level_bytes(l)).sum();
    let total = version.total_bytes();
    above > 0 && u128::from(above) * 100 > u128::from(percent) * u128::from(total)
}

/// The keyspaces an idle compaction would take now (live, compacting
/// automatically, no flush pending, upper levels over the percentage).
fn idle_candidates(engine: &Engine) -> impl Iterator<Item = Arc<KeyspaceCore>> {
    let percent = engine.options.idle_compaction_percent;
    engine.keyspaces.all().into_iter().filter(move |k| {
        // Tiered keeps its runs by design (and bounds their space itself).
        !k.is_dropped()
            && k.settings().options.auto_compactions
            && k.settings().options.compaction_style == CompactionStyle::Leveled
            && k.read.pressure().immutables == 0
            && wants_idle_compaction(&k.read.version(), percent)
    })
}

/// Whether idle compactions may run at all with these options.
fn idle_enabled(engine: &Engine) -> bool {
    let options = &engine.options;
    options.idle_compaction_percent > 0
        && options.auto_compactions
        && options.background_threads >= 2
}

/// What moves while the database is used: the visible seqno (writes) and
/// the block cache's lookups (reads that reach a table). An idle
/// compaction waits until neither has moved for the delay: one started
/// under a read-heavy load would take a core and the disk from it.
fn activity(engine: &Engine) -> (u64, u64) {
    let lookups = engine.tables.block_cache().map_or(0, |cache| {
        let (hits, misses) = cache.hits_and_misses();
        hits.wrapping_add(misses)
    });
    (engine.visibility.visible(), lookups)
}

/// An idle compaction to run now: the database has taken no write and no
/// table read for `idle_compaction_delay_ms` (see [`activity`]), nothing
/// else runs, and a keyspace's upper levels hold more than
/// `idle_compaction_percent` of its bytes (see `Options`).
pub(crate) fn pick_idle(engine: &Engine, state: &mut JobState) -> Option<Arc<KeyspaceCore>> {
    if !idle_enabled(engine) || state.retry_at.is_some_and(|at| Instant::now() < at) {
        return None;
    }
    let activity = activity(engine);
    let now = Instant::now();
    let since = match state.idle_since {
        Some((seen, since)) if seen == activity => since,
        _ => {
            state.idle_since = Some((activity, now));
            return None;
        }
    };
    let delay = Duration::from_millis(engine.options.idle_compaction_delay_ms);
    if state.idle_compacting
        || state.flushing
        || state.running_compactions > 0
        || state.manual_running > 0
        || now.duration_since(since) < delay
    {
        return None;
    }
    let keyspace = idle_candidates(engine).next()?;
    state.idle_compacting = true;
    Some(keyspace)
}

/// When the idle wait of [`pick_idle`] ends, if one is under way and a
/// keyspace would be compacted then.
pub(crate) fn idle_deadline(engine: &Engine, state: &JobState) -> Option<Instant> {
    if !idle_enabled(engine) || state.idle_compacting {
        return None;
    }
    let (_, since) = state.idle_since?;
    let at = since + Duration::from_millis(engine.options.idle_compaction_delay_ms);
    (at > Instant::now() && idle_candidates(engine).next().is_some()).then_some(at)
}

/// Runs an idle compaction of `keyspace` (everything into its last level,
/// as `compact_range(..)` does, without the flush) in this background
/// thread. A failure loses nothing: it is logged and counted, and the next
/// idle period tries again.
pub(crate) fn run_idle(engine: &Engine, keyspace: &Arc<KeyspaceCore>) {
    let before = keyspace.read.version().total_bytes();
    let result = run_manual(engine, keyspace, None, None);
    {
        let mut state = engine.jobs.state();
        state.idle_compacting = false;
        // Wait a whole idle period again before the next one.
        state.idle_since = None;
    }
    match result {
        Ok(()) => tracing::info!(
            keyspace = %keyspace.name,
            before,
            after = keyspace.read.version().total_bytes(),
            "idle compaction done"
        ),
        Err(Error::Closed) => {}
        Err(e) => tracing::warn!(keyspace = %keyspace.name, error = %e, "idle compaction failed"),
    }
}

/// `Db::wait_for_compactions`: until no flush is pending and no compaction
/// is running or due.
///
/// # Errors
/// [`Error::ReadOnly`]; [`Error::Closed`].
pub(crate) fn wait_for_compactions(engine: &Engine) -> Result<()> {
    engine.jobs.wait_until(&engine.life, |state| {
        let keyspaces = engine.keyspaces.all();
        let flushes_pending = keyspaces.iter().any(|k| k.read.pressure().immutables > 0);
        let busy = state.flushing
            || flushes_pending
            || state.running_compactions > 0
            || state.idle_compacting;
        let due = engine.options.auto_compactions
            && keyspaces.iter().any(|k| {
                let settings = k.settings();
                settings.options.auto_compactions
                    && !k.is_dropped()
                    && settings
                        .strategy
                        .pick(&k.read.version(), &state.compacting)
                        .is_some()
            });
        (!busy && !due).then_some(())
    })
}

/// The ends of `range` as owned keys, inclusive either way (compacting one
/// key too many is harmless).
pub(crate) fn range_ends<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(
    range: &R,
) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    use std::ops::Bound;
    let bound = |b: Bound<&K>| match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(k.as_ref().to_vec()),
        Bound::Unbounded => None,
    };
    (bound(range.start_bound()), bound(range.end_bound()))
}
