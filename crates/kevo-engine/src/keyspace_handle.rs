//! [`Keyspace`]: a handle to one keyspace of a database, and the `Db`
//! calls that open, list and drop keyspaces.
//!
//! A keyspace is an independent key space with its own memtables, levels
//! and options; every keyspace of a database shares its WAL (a batch
//! across keyspaces is atomic, in memory and after a crash), its seqnos (a
//! snapshot or transaction sees every keyspace at one point in time), its
//! background threads and its caches. The default keyspace is the one
//! `Db::put`, `Db::get` and the rest use.

use std::ops::RangeBounds;
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{DEFAULT_KEYSPACE_NAME, KeyspaceId, check_keyspace_name};
use kevo_iter::KeyBounds;
use kevo_manifest::Version;
use kevo_memtable::MemTable;
use kevo_wal::Batch;

use crate::engine::{Engine, Handle};
use crate::error::{Error, Result};
use crate::iter::DbIter;
use crate::keyspace::KeyspaceCore;
use crate::options::KeyspaceOptions;
use crate::stats::KeyspaceStats;

/// A keyspace of an open database: `Clone + Send + Sync` and cheap (an
/// `Arc` inside), from [`Db::keyspace`](crate::Db::keyspace).
///
/// It keeps the database open, like a [`Db`](crate::Db) handle. Once the
/// keyspace is dropped ([`Db::drop_keyspace`](crate::Db::drop_keyspace))
/// every call returns [`Error::InvalidArgument`].
///
/// ```
/// # fn main() -> kevo_engine::Result<()> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// use kevo_engine::{Db, KeyspaceOptions, WriteBatch};
/// let db = Db::open(dir.path())?;
/// let users = db.keyspace("users", KeyspaceOptions::default())?;
/// let index = db.keyspace("users-by-email", KeyspaceOptions::default())?;
/// let mut batch = WriteBatch::new();
/// batch.put_in(&users, "u1", "Ada");
/// batch.put_in(&index, "ada@example.com", "u1");
/// db.write(batch)?; // both or neither, even across a crash
/// assert_eq!(index.get("ada@example.com")?.as_deref(), Some(&b"u1"[..]));
/// assert_eq!(db.get("u1")?, None); // the default keyspace is another one
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Keyspace {
    handle: Arc<Handle>,
    pub(crate) core: Arc<KeyspaceCore>,
}

impl std::fmt::Debug for Keyspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyspace")
            .field("name", &self.core.name)
            .field("id", &self.core.id)
            .finish_non_exhaustive()
    }
}

impl Keyspace {
    pub(crate) fn new(handle: Arc<Handle>, core: Arc<KeyspaceCore>) -> Self {
        Keyspace { handle, core }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Its id: what its WAL entries and manifest edits carry (the default
    /// keyspace's is 0; ids are never reused, even after a drop).
    pub fn id(&self) -> KeyspaceId {
        self.core.id
    }

    fn engine(&self) -> &Engine {
        &self.handle.engine
    }

    fn check(&self) -> Result<()> {
        self.engine().life.check_open()?;
        if self.core.is_dropped() {
            return Err(dropped(&self.core.name));
        }
        Ok(())
    }

    /// Sets `key` to `value` in this keyspace.
    ///
    /// # Errors
    /// As [`Db::put`](crate::Db::put); [`Error::InvalidArgument`] once the
    /// keyspace is dropped.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = Batch::new();
        batch.put_in(self.core.id, key, value);
        self.write(batch)
    }

    /// Deletes `key` from this keyspace.
    ///
    /// # Errors
    /// As [`Keyspace::put`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = Batch::new();
        batch.delete_in(self.core.id, key);
        self.write(batch)
    }

    /// Deletes every key of this keyspace in `range` with one range
    /// tombstone (see [`Db::delete_range`](crate::Db::delete_range)).
    ///
    /// # Errors
    /// As [`Keyspace::put`].
    pub fn delete_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<()> {
        let mut batch = Batch::new();
        crate::span::push_range_delete(&mut batch, self.core.id, &range);
        self.write(batch)
    }

    /// Deletes every key of this keyspace starting with `prefix`.
    ///
    /// # Errors
    /// As [`Keyspace::put`].
    pub fn delete_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = Batch::new();
        crate::span::push_prefix_delete(&mut batch, self.core.id, prefix.as_ref());
        self.write(batch)
    }

    fn write(&self, batch: Batch) -> Result<()> {
        self.check()?;
        crate::write::write(self.engine(), batch, false, None)
    }

    /// The newest value of `key` in this keyspace.
    ///
    /// # Errors
    /// As [`Db::get`](crate::Db::get); [`Error::InvalidArgument`] once the
    /// keyspace is dropped.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.check()?;
        let engine = self.engine();
        let (seqno, sv) = self.core.read.pinned_view(&engine.visibility);
        crate::read::get(&engine.tables, &sv, key.as_ref(), seqno)
    }

    /// The entries of this keyspace with keys in `range`, in key order
    /// (`.rev()` for reverse).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        if let Err(e) = self.check() {
            return DbIter::failed(e);
        }
        DbIter::open(&self.handle, &self.core, KeyBounds::new(range), None)
    }

    /// A cursor over every entry of this keyspace as of now (see
    /// [`DbCursor`](crate::DbCursor)).
    pub fn cursor(&self) -> crate::DbCursor {
        if let Err(e) = self.check() {
            return crate::DbCursor::failed(e);
        }
        crate::DbCursor::open(&self.handle, &self.core, None)
    }

    /// The entries of this keyspace whose keys start with `prefix`.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> DbIter {
        if let Err(e) = self.check() {
            return DbIter::failed(e);
        }
        DbIter::open(&self.handle, &self.core, KeyBounds::prefix(prefix), None)
    }

    /// Flushes this keyspace's memtables to L0 tables and waits for it.
    ///
    /// # Errors
    /// As [`Db::flush`](crate::Db::flush).
    pub fn flush(&self) -> Result<()> {
        self.check()?;
        crate::write::flush(self.engine(), &self.core)
    }

    /// Compacts this keyspace's tables overlapping `range` down its levels
    /// (see [`Db::compact_range`](crate::Db::compact_range)).
    ///
    /// # Errors
    /// As [`Db::compact_range`](crate::Db::compact_range).
    pub fn compact_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<()> {
        self.check()?;
        let (start, end) = crate::compact::range_ends(&range);
        crate::compact::compact_range(self.engine(), &self.core, start.as_deref(), end.as_deref())
    }

    /// This keyspace's levels and memtables.
    pub fn stats(&self) -> KeyspaceStats {
        KeyspaceStats::of(&self.core)
    }
}

/// The error of a call on a dropped keyspace.
pub(crate) fn dropped(name: &str) -> Error {
    Error::InvalidArgument(format!("keyspace `{name}` was dropped"))
}

/// `Db::keyspace`: opens keyspace `name`, creating it if it does not
/// exist; `options` apply to it from now on.
pub(crate) fn open(
    handle: &Arc<Handle>,
    name: &str,
    options: &KeyspaceOptions,
) -> Result<Keyspace> {
    check_keyspace_name(name).map_err(Error::InvalidArgument)?;
    let engine = &handle.engine;
    engine.life.check_open()?;
    let resolved = options.resolve(&engine.options)?;
    if name == DEFAULT_KEYSPACE_NAME {
        let core = Arc::clone(engine.keyspaces.default());
        if *options != KeyspaceOptions::default() {
            core.set_options(resolved);
        }
        return Ok(Keyspace::new(Arc::clone(handle), core));
    }
    if let Some(core) = engine.keyspaces.by_name(name) {
        core.set_options(resolved);
        return Ok(Keyspace::new(Arc::clone(handle), core));
    }
    // Created under the writer mutex: no group is in flight, and none
    // starts until the keyspace is in the set.
    let _writer = engine.commit.writer();
    engine.life.check_writable()?;
    if let Some(core) = engine.keyspaces.by_name(name) {
        core.set_options(resolved);
        return Ok(Keyspace::new(Arc::clone(handle), core));
    }
    let versions = engine
        .versions()
        .map_err(|cause| Error::ReadOnly { cause })?;
    // Its writes start in the segment writes go to now, or later.
    let first_log = engine.wal_starts.newest();
    let id = versions
        .create_keyspace(name, first_log)
        .map_err(|e| engine.read_only_if_poisoned(versions, e.into()))?;
    let core = Arc::new(KeyspaceCore::new(
        id,
        name.to_string(),
        resolved,
        Arc::new(MemTable::new()),
        first_log,
        Arc::new(Version::default()),
    ));
    engine.keyspaces.insert(Arc::clone(&core));
    tracing::info!(keyspace = name, id, "keyspace created");
    Ok(Keyspace::new(Arc::clone(handle), core))
}

/// `Db::keyspace_names`: every keyspace's name, the default first.
pub(crate) fn names(engine: &Engine) -> Result<Vec<String>> {
    engine.life.check_open()?;
    Ok(engine
        .keyspaces
        .all()
        .iter()
        .map(|k| k.name.clone())
        .collect())
}

/// `Db::drop_keyspace`: removes keyspace `name` and everything in it.
pub(crate) fn drop_keyspace(engine: &Engine, name: &str) -> Result<()> {
    check_keyspace_name(name).map_err(Error::InvalidArgument)?;
    if name == DEFAULT_KEYSPACE_NAME {
        return Err(Error::InvalidArgument(
            "the default keyspace cannot be dropped".to_string(),
        ));
    }
    engine.life.check_open()?;
    let _writer = engine.commit.writer();
    engine.life.check_writable()?;
    let core = engine
        .keyspaces
        .by_name(name)
        .ok_or_else(|| Error::InvalidArgument(format!("no keyspace `{name}`")))?;
    let versions = engine
        .versions()
        .map_err(|cause| Error::ReadOnly { cause })?;
    // Every write acknowledged before the drop is made durable first, so
    // that no crash can keep the drop and lose one of them (the state after
    // a crash is always the state after some prefix of the operations).
    engine
        .with_wal(|wal| wal.sync())?
        .map_err(|e| engine.read_only(crate::error::from_wal(&engine.dir, e)))?;
    // Durable first: a crash before this keeps the whole keyspace, after it
    // none of it (its WAL entries are skipped at the next open).
    versions
        .drop_keyspace(core.id)
        .map_err(|e| engine.read_only_if_poisoned(versions, e.into()))?;
    core.mark_dropped();
    engine.keyspaces.remove(core.id);
    core.read.clear();
    let seen = core
        .seen_bytes
        .swap(0, std::sync::atomic::Ordering::Relaxed);
    engine
        .write_buffer_bytes
        .fetch_sub(seen, std::sync::atomic::Ordering::Relaxed);
    crate::install::retire_tables(engine, versions);
    engine.jobs.notify();
    tracing::info!(keyspace = name, id = core.id, "keyspace dropped");
    Ok(())
}
