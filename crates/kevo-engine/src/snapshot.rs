//! [`Snapshot`]: a registered point-in-time view.

use std::ops::RangeBounds;
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::SeqNo;
use kevo_iter::KeyBounds;

use crate::engine::Handle;
use crate::error::Result;
use crate::iter::DbIter;
use crate::keyspace_handle::Keyspace;

/// A consistent point-in-time view of the database, from
/// [`Db::snapshot`](crate::Db::snapshot).
///
/// It reads what the database held when it was taken, whatever is written,
/// flushed or compacted afterwards (compaction keeps every version a live
/// snapshot can see). It borrows nothing: store it, move it across
/// threads, let it outlive the handle it came from (it keeps the database
/// open). Dropping it releases what it holds.
///
/// ```
/// # fn main() -> kevo_engine::Result<()> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// let db = kevo_engine::Db::open(dir.path())?;
/// db.put("k", "old")?;
/// let snapshot = db.snapshot();
/// db.put("k", "new")?;
/// assert_eq!(snapshot.get("k")?.as_deref(), Some(&b"old"[..]));
/// assert_eq!(db.get("k")?.as_deref(), Some(&b"new"[..]));
/// # Ok(())
/// # }
/// ```
pub struct Snapshot {
    handle: Arc<Handle>,
    seqno: SeqNo,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("seqno", &self.seqno)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Registers a snapshot at the visible seqno.
    pub(crate) fn new(handle: Arc<Handle>) -> Self {
        let seqno = handle.engine.visibility.acquire_snapshot();
        Snapshot { handle, seqno }
    }

    /// The sequence number this snapshot reads at: it sees every write with
    /// a seqno at or below it.
    pub fn seqno(&self) -> SeqNo {
        self.seqno
    }

    /// The value of `key` as of the snapshot.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed); [`Error::Io`](crate::Error::Io)
    /// or [`Error::Corruption`](crate::Error::Corruption) reading a table.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let engine = &self.handle.engine;
        engine.life.check_open()?;
        let sv = engine.keyspaces.default().read.pinned();
        crate::read::get(&engine.tables, &sv, key.as_ref(), self.seqno)
    }

    /// The entries with keys in `range` as of the snapshot.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> DbIter {
        let default = self.handle.engine.keyspaces.default();
        DbIter::open(
            &self.handle,
            default,
            KeyBounds::new(range),
            Some(self.seqno),
        )
    }

    /// A cursor over every entry as of the snapshot (see
    /// [`DbCursor`](crate::DbCursor)).
    pub fn cursor(&self) -> crate::DbCursor {
        let default = self.handle.engine.keyspaces.default();
        crate::DbCursor::open(&self.handle, default, Some(self.seqno))
    }

    /// A cursor over every entry of `keyspace` as of the snapshot.
    pub fn cursor_in(&self, keyspace: &Keyspace) -> crate::DbCursor {
        crate::DbCursor::open(&self.handle, &keyspace.core, Some(self.seqno))
    }

    /// The entries whose keys start with `prefix` as of the snapshot.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> DbIter {
        let default = self.handle.engine.keyspaces.default();
        DbIter::open(
            &self.handle,
            default,
            KeyBounds::prefix(prefix),
            Some(self.seqno),
        )
    }
}

impl Snapshot {
    /// The value of `key` in `keyspace` as of the snapshot (one snapshot
    /// sees every keyspace at the same point).
    ///
    /// # Errors
    /// As [`Snapshot::get`]; [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for a dropped keyspace.
    pub fn get_in(&self, keyspace: &Keyspace, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let engine = &self.handle.engine;
        engine.life.check_open()?;
        if keyspace.core.is_dropped() {
            return Err(crate::keyspace_handle::dropped(&keyspace.core.name));
        }
        let sv = keyspace.core.read.pinned();
        crate::read::get(&engine.tables, &sv, key.as_ref(), self.seqno)
    }

    /// The entries of `keyspace` with keys in `range` as of the snapshot.
    pub fn range_in<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &self,
        keyspace: &Keyspace,
        range: R,
    ) -> DbIter {
        DbIter::open(
            &self.handle,
            &keyspace.core,
            KeyBounds::new(range),
            Some(self.seqno),
        )
    }

    /// The entries of `keyspace` whose keys start with `prefix` as of the
    /// snapshot.
    pub fn prefix_in(&self, keyspace: &Keyspace, prefix: impl AsRef<[u8]>) -> DbIter {
        DbIter::open(
            &self.handle,
            &keyspace.core,
            KeyBounds::prefix(prefix),
            Some(self.seqno),
        )
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.handle.engine.visibility.release_snapshot(self.seqno);
    }
}
