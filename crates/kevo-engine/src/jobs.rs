//! The background threads and what each runs next.
//!
//! `options.background_threads` threads share the work: an automatic
//! resume when one is due, then flushes (oldest immutable memtable first,
//! one at a time), then compactions by score (at most
//! `background_threads - 1` at once, so that a thread stays free for
//! flushes). While a background error stands only the resume runs. Each
//! thread ends once the database is closing. The job bodies are in
//! `flush`, `compact` and `resume`.

use std::sync::Arc;
use std::time::Instant;

use kevo_compaction::CompactionTask;

use crate::compact;
use crate::engine::Engine;
use crate::error::Error;
use crate::flush;
use crate::keyspace::KeyspaceCore;
use crate::read::Immutable;
use crate::resume;

/// Work for a background thread.
enum Job {
    Flush(Arc<KeyspaceCore>, Immutable),
    Compact(Arc<KeyspaceCore>, CompactionTask),
    /// An automatic resume after a full disk is due.
    Resume,
    /// The database is idle and this keyspace's upper levels hold more
    /// than `idle_compaction_percent` of its bytes.
    Idle(Arc<KeyspaceCore>),
}

/// Starts the background threads. They hold the engine but not a
/// [`Handle`](crate::engine::Handle), so dropping the last handle still
/// closes the database (which ends them).
pub(crate) fn start(engine: &Arc<Engine>) {
    for i in 0..engine.options.background_threads {
        let worker = engine.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("kevo-bg-{i}"))
            .spawn(move || run(&worker));
        match spawned {
            Ok(handle) => engine.jobs.add_thread(handle),
            Err(e) => {
                engine.fail(Error::io("starting a background thread", e));
            }
        }
    }
}

/// One background thread: takes the next job, runs it, until closing.
fn run(engine: &Engine) {
    while let Some(job) = next_job(engine) {
        match job {
            Job::Flush(keyspace, imm) => {
                if let Err(e) = flush::run_claimed(engine, &keyspace, &imm)
                    && !engine.life.is_closed()
                {
                    engine.fail(e);
                }
            }
            Job::Compact(keyspace, task) => {
                let outcome = compact::run_task(engine, &keyspace, &task);
                compact::finish_background(engine, &task, outcome);
            }
            Job::Resume => resume::auto_resume(engine),
            Job::Idle(keyspace) => compact::run_idle(engine, &keyspace),
        }
        engine.jobs.notify();
    }
}

/// Waits for the next job; `None` once the database is closing.
fn next_job(engine: &Engine) -> Option<Job> {
    let mut state = engine.jobs.state();
    loop {
        if engine.life.is_closed() {
            return None;
        }
        if state.resume_at.is_some_and(|at| Instant::now() >= at) {
            state.resume_at = None;
            return Some(Job::Resume);
        }
        if engine.life.background_error().is_none() {
            if !state.flushing
                && let Some((keyspace, imm)) = engine.keyspaces.oldest_immutable()
            {
                state.flushing = true;
                return Some(Job::Flush(keyspace, imm));
            }
            if let Some((keyspace, task)) = compact::pick(engine, &mut state) {
                return Some(Job::Compact(keyspace, task));
            }
            if let Some(keyspace) = compact::pick_idle(engine, &mut state) {
                return Some(Job::Idle(keyspace));
            }
        }
        // Wake for new work, or when a back-off or an idle wait ends.
        let deadline = [
            state.next_deadline(),
            compact::idle_deadline(engine, &state),
        ]
        .into_iter()
        .flatten()
        .min();
        state = engine.jobs.sleep(state, deadline);
    }
}
