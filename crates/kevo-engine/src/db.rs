//! [`Db`]: the handle, the shared state behind it, and the public calls.
//!
//! The work itself lives in sibling modules: `open` (recovery), `write`
//! (the write queue and memtable switches), `flush` (background threads),
//! `read` (point reads, iterators, snapshots).

use std::collections::{BTreeMap, VecDeque};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use kevo_core::{FileLock, Fs, OsFs, SeqNo};
use kevo_iter::KeyBounds;
use kevo_manifest::{Version, VersionSet};
use kevo_memtable::MemTable;
use kevo_wal::Wal;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::lock;
use crate::options::{Options, WriteOptions};
use crate::read::{DbIter, Snapshot};
use crate::stats::{Counters, Stats};
use crate::tables::TableCache;
use crate::write::Queue;

/// An open database.
///
/// `Db` is `Send + Sync` and cheap to clone: every clone is a handle to the
/// same database. The database closes when [`Db::close`] is called or when
/// the last handle, [`Snapshot`] and iterator are dropped.
///
/// ```
/// # fn main() -> kevo_engine::Result<()> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let db = kevo_engine::Db::open(dir.path())?;
/// db.put("apple", "red")?;
/// assert_eq!(db.get("apple")?.as_deref(), Some(&b"red"[..]));
/// db.close()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.inner.shared.dir)
            .finish_non_exhaustive()
    }
}

/// Owns the background threads; dropping the last `Arc<Inner>` (held by
/// handles, snapshots and iterators, never by the threads themselves)
/// closes the database.
pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.shared.close()
            && !matches!(e, Error::Closed)
        {
            tracing::warn!(error = %e, "closing the database on drop failed");
        }
    }
}

/// A memtable that no longer takes writes, waiting to be flushed.
#[derive(Debug, Clone)]
pub(crate) struct Immutable {
    pub(crate) table: Arc<MemTable>,
    /// Order of the switch that froze it (flushes go oldest first).
    pub(crate) id: u64,
    /// The WAL segment started when it was frozen: once it is flushed, every
    /// segment below this one is no longer needed.
    pub(crate) next_log: u64,
    /// The last seqno assigned when it was frozen: it holds every write up
    /// to here that is not in a table yet, and `next_log` on holds the
    /// writes after it.
    pub(crate) last_seqno: SeqNo,
}

/// What a read needs, published as one `Arc` so that a reader sees a
/// consistent set: the memtable, the immutable ones, and the tables.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    pub(crate) mem: Arc<MemTable>,
    /// Newest first.
    pub(crate) imms: Vec<Arc<MemTable>>,
    pub(crate) version: Arc<Version>,
}

/// The memtables and the installed version; changed only under its mutex,
/// which also publishes the matching [`SuperVersion`].
#[derive(Debug)]
pub(crate) struct MemState {
    pub(crate) mem: Arc<MemTable>,
    /// Oldest first.
    pub(crate) imms: VecDeque<Immutable>,
    pub(crate) version: Arc<Version>,
    pub(crate) next_imm_id: u64,
    /// The strategy's estimate of the bytes compaction is behind, for the
    /// version installed (write stalls read it).
    pub(crate) pending_compaction_bytes: u64,
}

/// State of the background threads.
#[derive(Debug, Default)]
pub(crate) struct BgState {
    /// A flush is running.
    pub(crate) flushing: bool,
    pub(crate) shutdown: bool,
    /// Id of the newest immutable memtable flushed.
    pub(crate) flushed_id: Option<u64>,
    /// Tables that running compactions read (automatic and manual).
    pub(crate) compacting: std::collections::BTreeSet<u64>,
    /// Automatic compactions running.
    pub(crate) running_compactions: usize,
    /// Manual compaction tasks running in callers' threads (`close` waits
    /// for them).
    pub(crate) manual_running: usize,
    /// Failed automatic compactions in a row, and when to try again.
    pub(crate) compaction_failures: u32,
    pub(crate) retry_at: Option<std::time::Instant>,
    /// Failed automatic resume attempts in a row, and when to try again
    /// (set while a full disk keeps the database read-only).
    pub(crate) resume_attempts: u32,
    pub(crate) resume_at: Option<std::time::Instant>,
}

/// Everything the handles and the background threads share.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) options: Options,
    pub(crate) versions: Arc<VersionSet>,
    /// `None` once closed.
    pub(crate) wal: RwLock<Option<Wal>>,
    /// Held by the group leader for the whole write, and by memtable
    /// switches: the single-writer section. Holds the last assigned seqno.
    pub(crate) writer: Mutex<SeqNo>,
    pub(crate) queue: Mutex<Queue>,
    pub(crate) queue_cv: Condvar,
    pub(crate) mem: Mutex<MemState>,
    pub(crate) super_version: RwLock<Arc<SuperVersion>>,
    /// The newest seqno whose write is fully applied: reads see up to here.
    pub(crate) visible_seqno: AtomicU64,
    pub(crate) bg: Mutex<BgState>,
    /// Signalled when a flush ends, memtables are switched, or on shutdown.
    pub(crate) bg_cv: Condvar,
    pub(crate) bg_threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) bg_error: crate::resume::BackgroundError,
    pub(crate) closed: AtomicBool,
    pub(crate) lock_file: Mutex<Option<Box<dyn FileLock>>>,
    /// Live snapshots: seqno -> how many.
    pub(crate) snapshots: Mutex<BTreeMap<SeqNo, usize>>,
    pub(crate) tables: TableCache,
    pub(crate) counters: Counters,
    pub(crate) strategy: Box<dyn kevo_compaction::CompactionStrategy>,
    /// Recent commits, for transactions' conflict checks.
    pub(crate) tracker: Mutex<kevo_txn::ConflictTracker>,
    /// Set by `close`: running compactions abort.
    pub(crate) stop: AtomicBool,
    /// Bytes written since the last delay, while writes are delayed.
    pub(crate) delayed_bytes: AtomicU64,
    /// kevo's files the manifest could not explain at open: left in place
    /// and reported in [`Stats`].
    pub(crate) unexplained_files: Vec<String>,
}

impl Db {
    /// Opens the database in directory `path` with default [`Options`],
    /// creating it if missing.
    ///
    /// # Errors
    /// See [`Db::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Self::open_with(path, Options::default())
    }

    /// Opens (or creates) the database in `path` on the operating system's
    /// file system.
    ///
    /// Takes the `LOCK` file, replays the manifest and the WAL segments
    /// newer than the last flush (trimming a torn tail), deletes orphaned
    /// files, writes `OPTIONS-NNNNNN` and starts the background threads.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad option (named) or a missing
    /// database without `create_if_missing` (or an existing one with
    /// `error_if_exists`); [`Error::Busy`] if another handle or process has
    /// it open; [`Error::Corruption`] if the manifest, `CURRENT`, a table
    /// or the WAL before its tail is damaged; [`Error::Io`].
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        Self::open_with_fs(Arc::new(OsFs::new()), path, options)
    }

    /// [`Db::open_with`] on the file system `fs`: an in-memory
    /// [`MemFs`](kevo_core::MemFs) for tests, a
    /// [`FaultFs`](kevo_core::FaultFs) to inject failures.
    ///
    /// # Errors
    /// As [`Db::open_with`].
    pub fn open_with_fs(fs: Arc<dyn Fs>, path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let shared = crate::open::open(fs, path.as_ref(), options)?;
        crate::flush::start_threads(&shared);
        Ok(Db {
            inner: Arc::new(Inner { shared }),
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] over a size limit; [`Error::ReadOnly`]
    /// after a background failure; [`Error::Closed`]; [`Error::Io`] if the
    /// WAL write failed (the database is then read-only).
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        self.write(batch)
    }

    /// Deletes `key` (a no-op if it is absent).
    ///
    /// # Errors
    /// As [`Db::put`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write(batch)
    }

    /// Applies `batch` atomically with default [`WriteOptions`].
    ///
    /// # Errors
    /// As [`Db::put`].
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_with(batch, &WriteOptions::default())
    }

    /// Applies `batch` atomically; with `options.sync` it is on disk when
    /// this returns.
    ///
    /// # Errors
    /// As [`Db::put`].
    pub fn write_with(&self, batch: WriteBatch, options: &WriteOptions) -> Result<()> {
        self.inner.shared.write(batch.inner, options.sync)
    }

    /// The newest value of `key`, if any.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Io`] or [`Error::Corruption`] reading a
    /// table.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let shared = &self.inner.shared;
        shared.check_open()?;
        let (seqno, sv) = crate::read::read_view(shared);
        crate::read::get(shared, &sv, key.as_ref(), seqno)
    }

    /// The entries with keys in `range`, in key order; reverse it with
    /// `.rev()`. The iterator reads a consistent view as of its creation
    /// and pins the files it needs.
    ///
    /// ```
    /// # fn main() -> kevo_engine::Result<()> {
    /// # let dir = tempfile::tempdir().expect("temp dir");
    /// # let db = kevo_engine::Db::open(dir.path())?;
    /// for key in ["a", "b", "c"] { db.put(key, key)?; }
    /// let keys: Vec<_> = db.range("b"..).rev().map(|kv| kv.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    /// assert_eq!(keys, ["c", "b"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        self.iter_at(KeyBounds::new(range), None)
    }

    /// The entries whose keys start with `prefix`, in key order.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> DbIter {
        self.iter_at(KeyBounds::prefix(prefix), None)
    }

    pub(crate) fn iter_at(&self, bounds: KeyBounds, snapshot: Option<SeqNo>) -> DbIter {
        let shared = &self.inner.shared;
        if let Err(e) = shared.check_open() {
            return DbIter::failed(e);
        }
        let (visible, sv) = crate::read::read_view(shared);
        DbIter::new(self.inner.clone(), sv, bounds, snapshot.unwrap_or(visible))
    }

    /// A consistent point-in-time view of the database. It stays valid
    /// while writes and flushes go on; dropping it releases it.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.inner.clone())
    }

    /// Flushes the memtable (and every immutable one) to L0 tables and
    /// waits for it.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] if a flush failed; [`Error::Closed`];
    /// [`Error::Io`] if rotating the WAL failed.
    pub fn flush(&self) -> Result<()> {
        self.inner.shared.flush()
    }

    /// Flushes, then compacts every table overlapping `range` down to the
    /// bottom of the tree, dropping the tombstones and overwritten versions
    /// no snapshot needs: after deleting keys, this reclaims their space.
    /// Runs in the calling thread, alongside background compactions.
    ///
    /// # Errors
    /// [`Error::Io`] if a compaction failed (nothing is lost; the database
    /// stays writable and the call may be retried); [`Error::ReadOnly`] if a
    /// flush or manifest write failed; [`Error::Closed`].
    pub fn compact_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<()> {
        use std::ops::Bound;
        let bound = |b: Bound<&K>| match b {
            Bound::Included(k) | Bound::Excluded(k) => Some(k.as_ref().to_vec()),
            Bound::Unbounded => None,
        };
        // Inclusive either way: compacting one key too many is harmless.
        let (start, end) = (bound(range.start_bound()), bound(range.end_bound()));
        self.inner
            .shared
            .compact_range(start.as_deref(), end.as_deref())
    }

    /// Waits until no flush is pending and no compaction is running or due
    /// (with `auto_compactions` on), so that the tree has reached its
    /// target shape: for benchmarks that measure space, and for tools.
    /// Writes made meanwhile may keep it waiting.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] after a background failure; [`Error::Closed`].
    pub fn wait_for_compactions(&self) -> Result<()> {
        self.inner.shared.wait_for_compactions()
    }

    /// The live tables, level by level (L0 newest first): for inspection
    /// and tools.
    pub fn table_files(&self) -> Vec<crate::stats::TableFile> {
        let version = lock(&self.inner.shared.mem).version.clone();
        version
            .tables()
            .map(|(level, t)| crate::stats::TableFile {
                level,
                number: t.number,
                file_size: t.file_size,
                smallest_key: Bytes::copy_from_slice(t.smallest_user_key()),
                largest_key: Bytes::copy_from_slice(t.largest_user_key()),
                smallest_seqno: t.smallest_seqno,
                largest_seqno: t.largest_seqno,
                entries: t.entries,
                tombstones: t.tombstones,
            })
            .collect()
    }

    /// Counters and sizes (see [`Stats`]); `Display` renders them.
    pub fn stats(&self) -> Stats {
        crate::stats::collect(&self.inner.shared)
    }

    /// Makes a database that a background failure put in read-only mode
    /// take writes again, without reopening it: repairs what the failure
    /// left unusable (a fresh manifest after a failed manifest write; the
    /// WAL cut back to its last complete record after a failed write),
    /// lifts [`Error::ReadOnly`], and waits until the memtables that were
    /// waiting for a flush are flushed. Every acknowledged write is kept.
    /// A no-op on a healthy database.
    ///
    /// A failure caused by a full disk is resumed automatically, with
    /// back-off (20 ms doubling to 1 s), as soon as there is room again:
    /// calling this is then only a way to find out at once.
    ///
    /// # Errors
    /// The error of the step that failed again (the database stays
    /// read-only; try again later); [`Error::Io`] saying so if the WAL's
    /// fsync had failed, which is never retried: close and reopen the
    /// database. [`Error::Closed`].
    pub fn resume(&self) -> Result<()> {
        self.inner.shared.resume()
    }

    /// Syncs the WAL, stops the background threads and releases the lock.
    /// Later calls on any handle, snapshot or iterator of this database
    /// return [`Error::Closed`]. Dropping the last handle does the same.
    ///
    /// # Errors
    /// [`Error::Closed`] if already closed; [`Error::Io`] if the last WAL
    /// sync failed (the lock is released all the same).
    pub fn close(&self) -> Result<()> {
        self.inner.shared.close()
    }
}

impl Shared {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// `Err(ReadOnly)` while a background error stands.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        match self.bg_error.get() {
            Some(cause) => Err(Error::ReadOnly { cause }),
            None => Ok(()),
        }
    }

    pub(crate) fn super_version(&self) -> Arc<SuperVersion> {
        self.super_version
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes the super version matching `state`; call with the
    /// `mem` mutex held.
    pub(crate) fn publish(&self, state: &MemState) {
        let sv = Arc::new(SuperVersion {
            mem: state.mem.clone(),
            imms: state
                .imms
                .iter()
                .rev()
                .map(|imm| imm.table.clone())
                .collect(),
            version: state.version.clone(),
        });
        *self
            .super_version
            .write()
            .unwrap_or_else(|e| e.into_inner()) = sv;
    }

    pub(crate) fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed);
        }
        let _span = tracing::info_span!("kevo.close", dir = %self.dir.display()).entered();
        // Wait for the group leader in flight, then stop the threads.
        let writer = lock(&self.writer);
        self.stop.store(true, Ordering::Release);
        {
            let mut bg = lock(&self.bg);
            bg.shutdown = true;
        }
        self.bg_cv.notify_all();
        let threads = std::mem::take(&mut *lock(&self.bg_threads));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a background thread panicked");
            }
        }
        // Manual compactions in callers' threads see `stop` and end soon.
        {
            let mut bg = lock(&self.bg);
            while bg.manual_running > 0 {
                bg = self
                    .bg_cv
                    .wait_timeout(bg, Duration::from_millis(10))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        // The WAL is synced even after a background error: the writes it
        // acknowledged must reach the disk. Only a poisoned WAL cannot.
        let wal = self.wal.write().unwrap_or_else(|e| e.into_inner()).take();
        let result = match wal {
            Some(wal) => match wal.sync().and_then(|()| {
                let end = wal.position();
                wal.close().map(|()| end)
            }) {
                Ok(end) => {
                    self.seal_wal_segment(end);
                    Ok(())
                }
                Err(e) if self.bg_error.get().is_some() => {
                    tracing::warn!(error = %e, "syncing the WAL at close after a background error");
                    Ok(())
                }
                Err(e) => Err(crate::error::from_wal(&self.dir, e)),
            },
            None => Ok(()),
        };
        drop(writer);
        // Wake writers queued behind the closing: they see `closed`.
        self.queue_cv.notify_all();
        lock(&self.lock_file).take();
        result
    }

    /// Records the last WAL segment as sealed at `end` (synced): the next
    /// open then knows its exact length, so a cut or emptied segment is
    /// damage, not a torn tail. A failure only loses that knowledge.
    fn seal_wal_segment(&self, end: kevo_wal::WalPosition) {
        if self.versions.is_poisoned() {
            return;
        }
        let edit = kevo_manifest::VersionEdit {
            wal_segments_sealed: vec![(end.segment, end.offset)],
            ..Default::default()
        };
        if let Err(e) = self.versions.log_and_apply(edit) {
            tracing::warn!(error = %e, segment = end.segment, "recording the last WAL segment as sealed");
        }
    }

    /// Registers a snapshot at the current visible seqno.
    pub(crate) fn acquire_snapshot(&self) -> SeqNo {
        let mut snapshots = lock(&self.snapshots);
        let seqno = self.visible_seqno.load(Ordering::Acquire);
        *snapshots.entry(seqno).or_insert(0) += 1;
        seqno
    }

    pub(crate) fn release_snapshot(&self, seqno: SeqNo) {
        let mut snapshots = lock(&self.snapshots);
        if let Some(count) = snapshots.get_mut(&seqno) {
            *count -= 1;
            if *count == 0 {
                snapshots.remove(&seqno);
            }
        }
    }

    /// The seqnos of the live snapshots, ascending (for compaction to keep
    /// what each of them can see).
    pub(crate) fn live_snapshots(&self) -> Vec<SeqNo> {
        lock(&self.snapshots).keys().copied().collect()
    }

    /// While compaction is behind, writers sleep 1 ms per this many bytes
    /// written (about 16 MB/s, RocksDB's default delayed write rate).
    pub(crate) const DELAYED_WRITE_BYTES_PER_MS: u64 = 16 * 1024;
}
