//! [`Db`]: the public facade. Every call checks and converts its
//! arguments and hands the work to the component that does it.

use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{Fs, OsFs};
use kevo_iter::KeyBounds;

use crate::batch::WriteBatch;
use crate::checkpoint::{CheckpointInfo, CheckpointOptions};
use crate::engine::Handle;
use crate::error::{Error, Result};
use crate::iter::DbIter;
use crate::keyspace_handle::Keyspace;
use crate::options::{KeyspaceOptions, Options, WriteOptions};
use crate::snapshot::Snapshot;
use crate::stats::{Stats, TableFile};
use crate::txn::{TRANSACTION_ATTEMPTS_MAX, Transaction};

/// An open database.
///
/// `Db` is `Send + Sync` and cheap to clone: every clone is a handle to the
/// same database. The database closes when [`Db::close`] is called or when
/// the last handle, [`Snapshot`], iterator and [`Transaction`] are dropped.
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
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.handle.engine.dir)
            .finish_non_exhaustive()
    }
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
    /// it open, for writing or read-only ([`BusyReason`](crate::BusyReason)
    /// says which); [`Error::Corruption`] if the manifest, `CURRENT`, a
    /// table or the WAL before its tail is damaged; [`Error::Io`].
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        Self::open_with_fs(Arc::new(OsFs::new()), path, options)
    }

    /// [`Db::open_with`] on the file system `fs`: an in-memory
    /// `kevo_core::MemFs` for tests, a `kevo_core::FaultFs` to inject
    /// failures (both behind `kevo-core`'s `testing` feature).
    ///
    /// # Errors
    /// As [`Db::open_with`].
    pub fn open_with_fs(fs: Arc<dyn Fs>, path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let engine = Arc::new(crate::open::open(fs, path.as_ref(), options)?);
        crate::jobs::start(&engine);
        Ok(Db {
            handle: Arc::new(Handle { engine }),
        })
    }

    /// Opens the existing database in directory `path` read-only, with
    /// default [`Options`]: changes nothing on disk.
    ///
    /// ```
    /// # fn main() -> kevo_engine::Result<()> {
    /// # let dir = tempfile::tempdir().expect("temp dir");
    /// # let db = kevo_engine::Db::open(dir.path())?;
    /// # db.put("apple", "red")?;
    /// # db.close()?;
    /// let ro = kevo_engine::Db::open_read_only(dir.path())?;
    /// assert_eq!(ro.get("apple")?.as_deref(), Some(&b"red"[..]));
    /// assert!(matches!(ro.put("apple", "green"), Err(kevo_engine::Error::ReadOnly { .. })));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// See [`Db::open_read_only_with`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Db> {
        Self::open_read_only_with(path, Options::default())
    }

    /// Opens the existing database in `path` read-only, on the operating
    /// system's file system. Nothing on disk changes: no file is created,
    /// written, synced, truncated, renamed or deleted.
    ///
    /// What it does: takes the `LOCK` file *shared* (any number of
    /// read-only opens, in this process or others, hold it together; a
    /// writer is kept out while they do, and keeps them out while it holds
    /// it; a directory without `LOCK` is opened without a lock, as creating
    /// one would be a change, and then a writer is not kept out), reads the
    /// manifest, checks the directory against it as [`Db::open_with`] does,
    /// and replays the WAL into memory, a torn tail skipped in memory but
    /// left in the file. What it does not do: sync or trim the WAL, start a
    /// WAL segment, write a manifest, switch `CURRENT`, write `OPTIONS`,
    /// delete obsolete files, flush, compact, or start background threads.
    ///
    /// Reads ([`Db::get`], [`Db::range`], [`Db::prefix`], snapshots,
    /// read-only transactions, [`Db::stats`], [`Db::table_files`]) see the
    /// database as of the open, the replayed WAL's writes included. Every
    /// write ([`Db::put`], [`Db::delete`], [`Db::write`], a
    /// [`Transaction`] commit that writes), [`Db::flush`],
    /// [`Db::compact_range`], [`Db::wait_for_compactions`] and
    /// [`Db::resume`] return [`Error::ReadOnly`] whose cause is
    /// [`Error::OpenedReadOnly`] (its message says "opened read-only", never
    /// "background error"), and [`Stats::read_only_cause`] says so too.
    /// [`Db::close`] (or dropping the last handle) releases the lock.
    ///
    /// `options` tune the reads (`block_cache_bytes`, `table_cache_tables`)
    /// and the replay (`recovery_mode`: under `SkipCorrupted` damage in the
    /// WAL is skipped in memory too); `create_if_missing` is ignored (a
    /// read-only open creates nothing) and `error_if_exists` refuses as it
    /// does for [`Db::open_with`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad option, or a path that holds no
    /// database (no `CURRENT`; the directory need not exist, and is not
    /// created); [`Error::Busy`] with
    /// [`BusyReason::OpenForWriting`](crate::BusyReason::OpenForWriting) if a
    /// writer has it open; [`Error::Corruption`] for damage
    /// [`Db::open_with`] refuses (under the default recovery mode, a torn
    /// tail of the newest WAL segment is not damage); [`Error::Io`].
    pub fn open_read_only_with(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        Self::open_read_only_with_fs(Arc::new(OsFs::new()), path, options)
    }

    /// [`Db::open_read_only_with`] on the file system `fs`.
    ///
    /// # Errors
    /// As [`Db::open_read_only_with`].
    pub fn open_read_only_with_fs(
        fs: Arc<dyn Fs>,
        path: impl AsRef<Path>,
        options: Options,
    ) -> Result<Db> {
        // No background threads: there is nothing to flush or compact.
        let engine = Arc::new(crate::open::open_read_only(fs, path.as_ref(), options)?);
        Ok(Db {
            handle: Arc::new(Handle { engine }),
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.handle.engine.dir
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] over a size limit; [`Error::ReadOnly`]
    /// after a background failure, or always if opened with
    /// [`Db::open_read_only`]; [`Error::Closed`]; [`Error::Io`] if the
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

    /// Deletes every key in `range` (any [`RangeBounds`] of keys, as for
    /// [`Db::range`]) with one range tombstone: one WAL record, constant
    /// time whatever the number of keys it covers. Reads skip the covered
    /// keys at once; compaction reclaims their space, and drops a table the
    /// tombstone covers whole without reading it.
    ///
    /// ```
    /// # fn main() -> kevo_engine::Result<()> {
    /// # let dir = tempfile::tempdir().map_err(|e| kevo_engine::Error::Io { context: "tempdir".into(), source: e })?;
    /// let db = kevo_engine::Db::open(dir.path())?;
    /// for i in 0..100u32 {
    ///     db.put(format!("user/{i:03}"), "x")?;
    /// }
    /// db.delete_range("user/010".."user/090")?;
    /// assert_eq!(db.range::<&[u8], _>(..).count(), 20);
    /// db.delete_prefix("user/")?;
    /// assert_eq!(db.get("user/000")?, None);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Db::put`]; [`Error::InvalidArgument`] for a bound longer than
    /// [`KEY_BYTES_MAX`](crate::KEY_BYTES_MAX).
    pub fn delete_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete_range(range);
        self.write(batch)
    }

    /// Deletes every key starting with `prefix` (one range tombstone, as
    /// [`Db::delete_range`]).
    ///
    /// # Errors
    /// As [`Db::delete_range`].
    pub fn delete_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete_prefix(prefix);
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
        crate::write::write(&self.handle.engine, batch.inner, options.sync, None)
    }

    /// The newest value of `key`, if any.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Io`] or [`Error::Corruption`] reading a
    /// table.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let engine = &self.handle.engine;
        engine.life.check_open()?;
        let (seqno, sv) = engine
            .keyspaces
            .default()
            .read
            .pinned_view(&engine.visibility);
        crate::read::get(&engine.tables, &sv, key.as_ref(), seqno)
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
        let engine = &self.handle.engine;
        DbIter::open(
            &self.handle,
            engine.keyspaces.default(),
            KeyBounds::new(range),
            None,
        )
    }

    /// A cursor over every entry as of now (see [`DbCursor`](crate::DbCursor)): positioned
    /// by `seek`, `seek_for_prev` or either end, moved by `next` and `prev`,
    /// lending each key and value without a copy.
    pub fn cursor(&self) -> crate::DbCursor {
        crate::DbCursor::open(&self.handle, self.handle.engine.keyspaces.default(), None)
    }

    /// The entries whose keys start with `prefix`, in key order.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> DbIter {
        let engine = &self.handle.engine;
        DbIter::open(
            &self.handle,
            engine.keyspaces.default(),
            KeyBounds::prefix(prefix),
            None,
        )
    }

    /// Opens keyspace `name`, creating it (durably, before this returns)
    /// if it does not exist; `options` apply to it from now on (see
    /// [`KeyspaceOptions`]). `"default"` is the default keyspace, the one
    /// [`Db::put`] and the other `Db` calls use.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name that is not 1 to 255 ASCII
    /// letters, digits, `_`, `-` or `.` (not starting with `.`), or for
    /// options [`Options::validate`] refuses; [`Error::ReadOnly`] to create
    /// one in a read-only database; [`Error::Closed`].
    pub fn keyspace(&self, name: &str, options: KeyspaceOptions) -> Result<Keyspace> {
        crate::keyspace_handle::open(&self.handle, name, &options)
    }

    /// The names of every keyspace, `"default"` first, then in the order
    /// they were created.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn keyspace_names(&self) -> Result<Vec<String>> {
        crate::keyspace_handle::names(&self.handle.engine)
    }

    /// Drops keyspace `name` and everything in it: durably before this
    /// returns (a crash keeps all of it or none), together with every write
    /// acknowledged before it (the WAL is synced first, as by a flush), its
    /// files deleted once no reader uses them. Its handles then return
    /// [`Error::InvalidArgument`]; the name can be created again (as a new,
    /// empty keyspace).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for the default keyspace or a name that
    /// does not exist; [`Error::ReadOnly`]; [`Error::Closed`].
    pub fn drop_keyspace(&self, name: &str) -> Result<()> {
        crate::keyspace_handle::drop_keyspace(&self.handle.engine, name)
    }

    /// A consistent point-in-time view of the database. It stays valid
    /// while writes and flushes go on; dropping it releases it.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.handle.clone())
    }

    /// Flushes the memtable (and every immutable one) to L0 tables and
    /// waits for it.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] if a flush failed, or if opened with
    /// [`Db::open_read_only`]; [`Error::Closed`]; [`Error::Io`] if rotating
    /// the WAL failed.
    pub fn flush(&self) -> Result<()> {
        let engine = &self.handle.engine;
        crate::write::flush(engine, engine.keyspaces.default())
    }

    /// Flushes, then compacts every table overlapping `range` down to the
    /// bottom of the tree, dropping the tombstones and overwritten versions
    /// no snapshot needs: after deleting keys, this reclaims their space.
    /// Runs in the calling thread, alongside background compactions.
    ///
    /// # Errors
    /// [`Error::Io`] if a compaction failed (nothing is lost; the database
    /// stays writable and the call may be retried); [`Error::ReadOnly`] if a
    /// flush or manifest write failed, or if opened with
    /// [`Db::open_read_only`]; [`Error::Closed`].
    pub fn compact_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<()> {
        let (start, end) = crate::compact::range_ends(&range);
        let engine = &self.handle.engine;
        crate::compact::compact_range(
            engine,
            engine.keyspaces.default(),
            start.as_deref(),
            end.as_deref(),
        )
    }

    /// Waits until no flush is pending and no compaction is running or due
    /// (with `auto_compactions` on), so that the tree has reached its
    /// target shape: for benchmarks that measure space, and for tools.
    /// Writes made meanwhile may keep it waiting.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] after a background failure, or if opened with
    /// [`Db::open_read_only`]; [`Error::Closed`].
    pub fn wait_for_compactions(&self) -> Result<()> {
        crate::compact::wait_for_compactions(&self.handle.engine)
    }

    /// Makes a checkpoint in `target` (a directory that must not exist;
    /// its parent must): a database of its own, opened like any other,
    /// holding every keyspace exactly as of one sequence number, at or
    /// after every write acknowledged before the call. Writes, flushes and
    /// compactions go on meanwhile. Tables are hard-linked where `target`
    /// is on the same file system (copied otherwise), the WAL tail copied;
    /// see [`Db::checkpoint_with`] to flush first instead.
    ///
    /// The directory is built under `<target>.checkpoint-tmp` and renamed
    /// to `target` only once complete and synced: a crash or an error
    /// leaves no `target` that could be taken for a good checkpoint.
    ///
    /// ```
    /// # use kevo_engine::Db;
    /// # fn main() -> kevo_engine::Result<()> {
    /// # let dir = tempfile::tempdir().expect("tempdir");
    /// let db = Db::open(dir.path().join("db"))?;
    /// db.put("k", "v")?;
    /// let info = db.checkpoint(dir.path().join("copy"))?;
    /// db.put("k", "later")?;
    /// let copy = Db::open(&info.dir)?;
    /// assert_eq!(copy.get("k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `target` exists or its parent does
    /// not; [`Error::Io`] if a file operation failed (the temporary
    /// directory is removed, the database is unchanged);
    /// [`Error::ReadOnly`] if opened with [`Db::open_read_only`], or if
    /// syncing the WAL failed; [`Error::Closed`].
    pub fn checkpoint(&self, target: impl AsRef<Path>) -> Result<CheckpointInfo> {
        self.checkpoint_with(target, &CheckpointOptions::default())
    }

    /// [`Db::checkpoint`] with `options` (whether to flush first).
    ///
    /// # Errors
    /// As [`Db::checkpoint`]; with `flush_first`, those of [`Db::flush`].
    pub fn checkpoint_with(
        &self,
        target: impl AsRef<Path>,
        options: &CheckpointOptions,
    ) -> Result<CheckpointInfo> {
        crate::checkpoint::checkpoint(&self.handle.engine, target.as_ref(), options)
    }

    /// Makes every write acknowledged before this call durable, whatever
    /// the [`SyncMode`](crate::SyncMode) (RocksDB's `SyncWAL`, fjall's
    /// `persist`): one fsync shared with concurrent callers and synced
    /// writes. Lets a caller acknowledge many unsynced writes with one sync
    /// after them, off its own write path (the Raft log store does).
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::ReadOnly`] if the sync failed (the
    /// database turns read-only, as after any failed WAL sync) or if opened
    /// with [`Db::open_read_only`].
    pub fn sync_wal(&self) -> Result<()> {
        let engine = &self.handle.engine;
        engine.life.check_writable()?;
        engine
            .with_wal(|wal| wal.sync())?
            .map_err(|e| engine.read_only(crate::error::from_wal(&engine.dir, e)))
    }

    /// The engine behind this handle (for the crate's tools: backups).
    pub(crate) fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    /// The live tables, level by level (L0 newest first): for inspection
    /// and tools.
    pub fn table_files(&self) -> Vec<TableFile> {
        TableFile::all(&self.handle.engine.keyspaces.default().read.version())
    }

    /// Counters and sizes (see [`Stats`]); `Display` renders them.
    pub fn stats(&self) -> Stats {
        self.handle.engine.stats()
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
    /// database. [`Error::ReadOnly`] with [`Error::OpenedReadOnly`] if
    /// opened with [`Db::open_read_only`]. [`Error::Closed`].
    pub fn resume(&self) -> Result<()> {
        crate::resume::resume(&self.handle.engine)
    }

    /// Syncs the WAL, stops the background threads and releases the lock
    /// (for a read-only open, only releases its shared lock). Later calls
    /// on any handle, snapshot or iterator of this database return
    /// [`Error::Closed`]. Dropping the last handle does the same.
    ///
    /// # Errors
    /// [`Error::Closed`] if already closed; [`Error::Io`] if the last WAL
    /// sync failed (the lock is released all the same).
    pub fn close(&self) -> Result<()> {
        self.handle.engine.close()
    }

    /// Starts a read-write [`Transaction`] at the current state.
    pub fn begin(&self) -> Transaction {
        Transaction::new(self.handle.clone())
    }

    /// Starts a read-only transaction: a [`Snapshot`], which never
    /// conflicts and costs what a snapshot costs.
    pub fn begin_read(&self) -> Snapshot {
        self.snapshot()
    }

    /// Runs `f` in a transaction and commits it, running it again (up to
    /// [`TRANSACTION_ATTEMPTS_MAX`] times) while the commit, or `f` itself,
    /// fails with [`Error::Conflict`]; returns `f`'s value. Any other error
    /// from `f` rolls the transaction back and is returned.
    ///
    /// # Errors
    /// The last [`Error::Conflict`] once the attempts are spent; any other
    /// error of `f` or of the commit.
    pub fn transaction<T>(&self, mut f: impl FnMut(&mut Transaction) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.begin();
            let outcome = f(&mut tx).and_then(|value| tx.commit().map(|()| value));
            match outcome {
                Err(Error::Conflict(_)) if attempt < TRANSACTION_ATTEMPTS_MAX => {
                    // Back off a little, more each time, so that contenders
                    // spread out.
                    if attempt > 2 {
                        std::thread::sleep(std::time::Duration::from_micros(
                            (attempt as u64).min(50) * 20,
                        ));
                    } else {
                        std::thread::yield_now();
                    }
                }
                other => return other,
            }
        }
    }
}
