//! [`Engine`]: the components of an open database, wired together, and
//! [`Handle`], whose drop closes it.
//!
//! Each component owns its state and its locks; the engine only holds
//! them side by side and does what needs several at once: record a
//! background error ([`Engine::fail`]), close, and gather the stats. The
//! work lives in the modules above it: `write` (the commit pipeline's
//! environment, stalls, memtable switches), `flush` and `compact` (the job
//! bodies), `install` (applying an edit), `jobs` (the threads), `resume`.
//!
//! Lock order (a thread holding one may take only those after it):
//! 1. the commit queue (`CommitPipeline`, never held while taking another);
//! 2. the writer mutex (`CommitPipeline::writer`);
//! 3. the WAL slot (`Engine::wal`, read-locked for appends, write-locked
//!    only by `close`), then the WAL's own writer and sync mutexes;
//! 4. the job state (`Schedule::state`);
//! 5. the read state's mutex, then its super-version lock;
//! 6. the conflict tracker (`Engine::tracker`), then the snapshot list
//!    (`Visibility`);
//! 7. the version set's writer mutex, then its state mutex;
//! 8. the table cache, then the block cache's shards.
//!
//! Leaves, taken with nothing else inside: the lifecycle's cause, the list
//! of background threads, the `LOCK` slot.
//!
//! A database opened read-only is the same engine with no WAL, no version
//! set ([`Manifest::ReadOnly`]), no background threads and a lifecycle
//! that is read-only from the start: every write path stops at its
//! writability check, and [`Engine::versions`] refuses the rest.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use kevo_core::{FileLock, Fs};
use kevo_manifest::{ManifestStats, VersionEdit, VersionSet};
use kevo_sstable::BlockCache as _;
use kevo_txn::ConflictTracker;
use kevo_wal::{Wal, WalPosition};

use crate::commit::CommitPipeline;
use crate::error::{Error, Result, from_wal};
use crate::keyspace::{GroupKeyspaces, KeyspaceCore, Keyspaces};
use crate::lifecycle::{Lifecycle, is_out_of_space};
use crate::options::Options;
use crate::read::Visibility;
use crate::retention::{WalHold, WalStarts};
use crate::schedule::{Schedule, auto_resume_wait};
use crate::stats::{Counters, Gauges, KeyspaceStats, MemoryGauges, Stats};
use crate::sync::{lock, read, write};
use crate::tables::TableCache;

/// An open database's components.
pub(crate) struct Engine {
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) options: Options,
    /// Open or closed, writable or read-only.
    pub(crate) life: Lifecycle,
    /// Which tables are live: the manifest (none when opened read-only).
    pub(crate) manifest: Manifest,
    /// The log; `None` once closed, and for a database opened read-only.
    pub(crate) wal: RwLock<Option<Wal>>,
    /// The write queue, the group leader and the writer mutex.
    pub(crate) commit: CommitPipeline,
    /// The keyspaces: each one's memtables, version and strategy.
    pub(crate) keyspaces: Keyspaces,
    /// The next immutable memtable's id: ids rise across every keyspace,
    /// so that flushes go oldest first.
    pub(crate) next_imm_id: AtomicU64,
    /// The segments memtable switches started (see `retention`).
    pub(crate) wal_starts: WalStarts,
    /// Batch bytes appended to the WAL since open (what the WAL limit and
    /// `WalStarts` measure).
    pub(crate) wal_bytes: AtomicU64,
    /// The `wal_bytes` at which the commit path next checks
    /// `max_total_wal_bytes`.
    pub(crate) next_wal_check: AtomicU64,
    /// The keyspaces' active memtable bytes, as the commit path last saw
    /// them (the sum of their `seen_bytes`), against `write_buffer_bytes`.
    pub(crate) write_buffer_bytes: AtomicU64,
    /// The keyspaces the group being committed writes to, from the leader's
    /// `make_room` to its `apply` (both under the writer mutex).
    pub(crate) group_keyspaces: Mutex<GroupKeyspaces>,
    /// The visible seqno and the live snapshots.
    pub(crate) visibility: Visibility,
    /// The background jobs and their threads.
    pub(crate) jobs: Schedule,
    /// Open table readers and the block cache.
    pub(crate) tables: Arc<TableCache>,
    pub(crate) counters: Counters,
    /// Recent commits, for transactions' conflict checks.
    pub(crate) tracker: Mutex<ConflictTracker>,
    /// Bytes written since the last delay, while writes are delayed.
    pub(crate) delayed_bytes: AtomicU64,
    /// The directory's `LOCK`; released by `close`.
    pub(crate) lock_file: Mutex<Option<Box<dyn FileLock>>>,
    /// kevo's files the manifest could not explain at open: left in place
    /// and reported in [`Stats`].
    pub(crate) unexplained_files: Vec<String>,
    /// Checkpoints being made hold WAL segments from retirement.
    pub(crate) wal_hold: WalHold,
    /// The targets of the checkpoints being made.
    pub(crate) checkpoint_targets: Mutex<std::collections::BTreeSet<PathBuf>>,
}

/// The manifest an engine logs its edits to.
pub(crate) enum Manifest {
    /// Opened for writing: every flush, compaction and WAL segment is
    /// recorded in the version set.
    Live(Arc<VersionSet>),
    /// Opened read-only: `MANIFEST-{number}` was read at open and is never
    /// written; the installed version stays the one read.
    ReadOnly {
        /// The manifest read.
        number: u64,
    },
}

impl Engine {
    /// The version set, which logs edits; for a database opened read-only,
    /// which has none, `Err` with the standing cause
    /// ([`Error::OpenedReadOnly`]).
    pub(crate) fn versions(&self) -> Result<&Arc<VersionSet>, Arc<Error>> {
        match &self.manifest {
            Manifest::Live(versions) => Ok(versions),
            Manifest::ReadOnly { .. } => Err(self.life.background_error().unwrap_or_else(|| {
                Arc::new(Error::OpenedReadOnly {
                    path: self.dir.clone(),
                })
            })),
        }
    }

    /// Runs `f` on the WAL; `Err(Closed)` once it is closed.
    pub(crate) fn with_wal<T>(&self, f: impl FnOnce(&Wal) -> T) -> Result<T> {
        let wal = read(&self.wal);
        wal.as_ref().map(f).ok_or(Error::Closed)
    }

    /// Records the first background error: the database becomes read-only.
    /// A full disk schedules an automatic resume. Returns the recorded
    /// cause (an earlier one, if there was).
    pub(crate) fn fail(&self, error: Error) -> Arc<Error> {
        let out_of_space = is_out_of_space(&error);
        let (cause, first) = self.life.set_background_error(error);
        if first {
            tracing::error!(error = %cause, auto_resume = out_of_space, "background error: the database is now read-only");
            if out_of_space {
                let mut state = self.jobs.state();
                let wait = auto_resume_wait(state.resume_attempts);
                state.resume_at = Some(Instant::now() + wait);
            }
        }
        self.jobs.notify();
        cause
    }

    /// `error` from a call of the version set: if it left the set unusable
    /// (a manifest write failed), the database turns read-only and the
    /// caller gets [`Error::ReadOnly`]; otherwise `error` itself.
    pub(crate) fn read_only_if_poisoned(&self, versions: &VersionSet, error: Error) -> Error {
        if versions.is_poisoned() {
            self.read_only(error)
        } else {
            error
        }
    }

    /// [`Engine::fail`], as the error a writer gets.
    pub(crate) fn read_only(&self, error: Error) -> Error {
        Error::ReadOnly {
            cause: self.fail(error),
        }
    }

    /// The version set's current version of `keyspace`, with the
    /// keyspace strategy's estimate of its compaction debt; `None` opened
    /// read-only (no version set: the read state's version stands). Takes
    /// no read state lock, so installs call it under theirs.
    pub(crate) fn current_version(
        &self,
        keyspace: &KeyspaceCore,
    ) -> Option<(Arc<kevo_manifest::Version>, u64)> {
        let version = match &self.manifest {
            Manifest::Live(versions) => versions.current_in(keyspace.id)?,
            Manifest::ReadOnly { .. } => return None,
        };
        let pending = keyspace.settings().strategy.pending_bytes(&version);
        Some((version, pending))
    }

    /// Closes the database: waits for the write in flight, stops the
    /// background threads, syncs and closes the WAL, releases the lock.
    ///
    /// # Errors
    /// [`Error::Closed`] if already closed; [`Error::Io`] if the last WAL
    /// sync failed (the lock is released all the same).
    pub(crate) fn close(&self) -> Result<()> {
        if !self.life.close() {
            return Err(Error::Closed);
        }
        let _span = tracing::info_span!("kevo.close", dir = %self.dir.display()).entered();
        // Wake every waiter (a leader stalled for a flush holds the writer
        // mutex) to see the closing flag; wait for the group leader in
        // flight, then stop the threads and the manual compactions.
        self.jobs.notify();
        let writer = self.commit.writer();
        self.jobs.join_threads();
        // The WAL is synced even after a background error: the writes it
        // acknowledged must reach the disk. Only a poisoned WAL cannot.
        let wal = write(&self.wal).take();
        let result = match wal {
            Some(wal) => match wal.sync().and_then(|()| {
                let end = wal.position();
                wal.close().map(|()| end)
            }) {
                Ok(end) => {
                    self.seal_wal_segment(end);
                    Ok(())
                }
                // Even after a background error the caller learns that
                // writes it was told of may not be on disk.
                Err(e) => Err(from_wal(&self.dir, e)),
            },
            None => Ok(()),
        };
        drop(writer);
        // Wake writers queued behind the closing: they see it.
        self.commit.wake_all();
        lock(&self.lock_file).take();
        result
    }

    /// Records the last WAL segment as sealed at `end` (synced): the next
    /// open then knows its exact length, so a cut or emptied segment is
    /// damage, not a torn tail. A failure only loses that knowledge.
    fn seal_wal_segment(&self, end: WalPosition) {
        let Ok(versions) = self.versions() else {
            return;
        };
        if versions.is_poisoned() {
            return;
        }
        let edit = VersionEdit {
            wal_segments_sealed: vec![(end.segment, end.offset)],
            ..Default::default()
        };
        if let Err(e) = versions.log_and_apply(edit) {
            tracing::warn!(error = %e, segment = end.segment, "recording the last WAL segment as sealed");
        }
    }

    /// Counters and sizes.
    pub(crate) fn stats(&self) -> Stats {
        let (snapshots, oldest_snapshot) = self.visibility.snapshot_counts();
        let cache = self.tables.block_cache().map_or((0, 0, 0), |cache| {
            let (hits, misses) = cache.hits_and_misses();
            (hits, misses, cache.used_bytes() as u64)
        });
        let gauges = Gauges {
            keyspaces: self
                .keyspaces
                .all()
                .iter()
                .map(|k| KeyspaceStats::of(k))
                .collect(),
            last_seqno: self.visibility.visible(),
            wal: self.with_wal(|wal| wal.stats()).unwrap_or_default(),
            manifest: match &self.manifest {
                Manifest::Live(versions) => versions.stats(),
                Manifest::ReadOnly { number } => ManifestStats {
                    manifest_number: *number,
                    ..ManifestStats::default()
                },
            },
            snapshots,
            oldest_snapshot,
            cache,
            memory: MemoryGauges {
                cache_capacity: self
                    .tables
                    .block_cache()
                    .map_or(0, |c| c.capacity_bytes() as u64),
                table_metadata: self.tables.metadata_bytes() as u64,
                pinned_blocks: self.tables.pinned_bytes() as u64,
                budget: self.options.memory_budget_bytes as u64,
            },
            open_tables: self.tables.len(),
            read_only_cause: self.life.background_error().map(|e| e.to_string()),
            unexplained_files: self.unexplained_files.clone(),
        };
        self.counters.stats(gauges)
    }
}

/// What the public handles share: dropping the last one (held by [`Db`]
/// clones, snapshots, iterators and transactions, never by the background
/// threads) closes the database.
///
/// [`Db`]: crate::Db
pub(crate) struct Handle {
    pub(crate) engine: Arc<Engine>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        match self.engine.close() {
            Ok(()) | Err(Error::Closed) => {}
            Err(e) => tracing::warn!(error = %e, "closing the database on drop failed"),
        }
    }
}
