//! The Raft log on kevo: [`LogStore`] (openraft's `RaftLogStorage`) and
//! [`LogReader`].
//!
//! Keyspace `raft_log` maps an entry's index, 8 bytes big-endian (so key
//! order is index order), to the entry as JSON. Keyspace `raft_meta` holds
//! `vote`, `committed` and `last_purged` (JSON). Appends are written
//! unsynced, so that they are readable at once, and handed to a syncer
//! thread that acknowledges every append waiting with one `Db::sync_wal`
//! (group commit: one fsync for all of them); votes, truncations and
//! purges are single synced batches.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kevo_engine::{Db, Keyspace, KeyspaceOptions, Options, WriteBatch, WriteOptions};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, StorageError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result, TypeConfig};

const LOG_KEYSPACE: &str = "raft_log";
const META_KEYSPACE: &str = "raft_meta";
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";
/// An append larger than this is written as several batches (kevo's batch
/// limit is 128 MiB); the callback still waits for all of them.
const APPEND_BATCH_BYTES: usize = 32 << 20;

type StorageResult<T> = std::result::Result<T, StorageError<u64>>;

/// The key of the entry at `index`.
fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The open databases and the syncer, shared by the store and its readers.
struct Shared {
    db: Db,
    log: Keyspace,
    meta: Keyspace,
    /// Appends waiting for their sync; `None` once shut down.
    to_sync: Mutex<Option<mpsc::Sender<LogFlushed<TypeConfig>>>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the channel ends the syncer after the appends already
        // queued (it syncs them first); joining it lets the directory be
        // opened again as soon as this returns.
        drop(self.to_sync.lock().map(|mut s| s.take()));
        if let Ok(mut handle) = self.syncer.lock()
            && let Some(handle) = handle.take()
        {
            let _ = handle.join();
        }
    }
}

/// openraft's log storage on a kevo database (see the module docs). Cheap
/// to clone; clones share the database.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

/// Reads the log for openraft's replication tasks; shares the store's
/// database.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

impl LogStore {
    /// Opens (or creates) the log database at `path`.
    ///
    /// # Errors
    /// [`Error::Kevo`] if the database cannot be opened.
    pub fn open(path: &Path, options: Options) -> Result<LogStore> {
        let db = Db::open_with(path, options)?;
        let log = db.keyspace(LOG_KEYSPACE, KeyspaceOptions::default())?;
        let meta = db.keyspace(META_KEYSPACE, KeyspaceOptions::default())?;
        let (sender, receiver) = mpsc::channel();
        let syncer_db = db.clone();
        let syncer = std::thread::Builder::new()
            .name("kevo-raft-log-sync".into())
            .spawn(move || sync_appends(&syncer_db, &receiver))
            .map_err(|e| Error::io(path, e))?;
        Ok(LogStore {
            shared: Arc::new(Shared {
                db,
                log,
                meta,
                to_sync: Mutex::new(Some(sender)),
                syncer: Mutex::new(Some(syncer)),
            }),
        })
    }

    /// The kevo database under the log (for stats and tools).
    pub fn db(&self) -> &Db {
        &self.shared.db
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        read_json(&self.shared.meta, key)
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<()> {
        Ok(self
            .shared
            .db
            .write_with(batch, &WriteOptions { sync: true })?)
    }

    fn state(&self) -> Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId<u64>> = self.read_meta(LAST_PURGED)?;
        let last = match self.shared.log.range::<&[u8], _>(..).next_back() {
            Some(item) => {
                let (key, value) = item?;
                Some(*decode_entry(&key, &value)?.get_log_id())
            }
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }
}

/// The syncer thread: each round takes every append waiting, syncs the WAL
/// once, and acknowledges them all.
fn sync_appends(db: &Db, receiver: &mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = receiver.recv() {
        let mut waiting = vec![first];
        waiting.extend(receiver.try_iter());
        let result = db.sync_wal();
        for callback in waiting {
            callback.log_io_completed(flush_result(&result));
        }
    }
}

/// A WAL sync's outcome as openraft's flush callback takes it.
fn flush_result(synced: &kevo_engine::Result<()>) -> std::io::Result<()> {
    synced
        .as_ref()
        .map(|_| ())
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The JSON value stored under `key`, if any (damage is `Corruption`).
pub(crate) fn read_json<T: DeserializeOwned>(keyspace: &Keyspace, key: &[u8]) -> Result<Option<T>> {
    match keyspace.get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::corruption(
                format!("{}/{}", keyspace.name(), String::from_utf8_lossy(key)),
                e.column() as u64,
                e.to_string(),
            )
        }),
    }
}

/// `value` as JSON.
pub(crate) fn to_json(value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// The entry stored under `key`, checked to be the entry of that index.
fn decode_entry(key: &[u8], value: &[u8]) -> Result<Entry<TypeConfig>> {
    let index = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::corruption(LOG_KEYSPACE, 0, format!("a key of {} bytes", key.len())))?;
    let entry: Entry<TypeConfig> = serde_json::from_slice(value).map_err(|e| {
        Error::corruption(
            format!("{LOG_KEYSPACE}/{index}"),
            e.column() as u64,
            e.to_string(),
        )
    })?;
    if entry.get_log_id().index != index {
        return Err(Error::corruption(
            format!("{LOG_KEYSPACE}/{index}"),
            0,
            format!("holds the entry of index {}", entry.get_log_id().index),
        ));
    }
    Ok(entry)
}

/// A range of entry keys.
type KeyBounds = (Bound<[u8; 8]>, Bound<[u8; 8]>);

/// The keys of the indexes in `range`; `None` if no index can be in it.
fn key_bounds(range: &impl RangeBounds<u64>) -> Option<KeyBounds> {
    let start = match range.start_bound() {
        Bound::Included(&i) => Bound::Included(index_key(i)),
        Bound::Excluded(&i) => Bound::Included(index_key(i.checked_add(1)?)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => Bound::Included(index_key(i)),
        Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
        Bound::Unbounded => Bound::Unbounded,
    };
    Some((start, end))
}

fn read_entries(shared: &Shared, range: &impl RangeBounds<u64>) -> Result<Vec<Entry<TypeConfig>>> {
    let Some(bounds) = key_bounds(range) else {
        return Ok(Vec::new());
    };
    if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) =
        (&bounds.0, &bounds.1)
        && s > e
    {
        return Ok(Vec::new());
    }
    shared
        .log
        .range(bounds)
        .map(|item| {
            let (key, value) = item?;
            decode_entry(&key, &value)
        })
        .collect()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        read_entries(&self.shared, &range)
            .map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        self.get_log_reader().await.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        self.state()
            .map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        let write = || {
            let mut batch = WriteBatch::new();
            batch.put_in(&self.shared.meta, VOTE, to_json(vote)?);
            self.write_synced(batch)
        };
        write().map_err(|e| e.storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        self.read_meta(VOTE)
            .map_err(|e| e.storage(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StorageResult<()> {
        // Not synced: openraft asks only that a committed id read back is
        // one it saved; an older one after a crash just applies less at
        // start-up (the leader's commit index brings the rest).
        let write = || -> Result<()> {
            let meta = &self.shared.meta;
            match committed {
                Some(id) => meta.put(COMMITTED, to_json(&id)?)?,
                None => meta.delete(COMMITTED)?,
            }
            Ok(())
        };
        write().map_err(|e| e.storage(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<u64>>> {
        self.read_meta(COMMITTED)
            .map_err(|e| e.storage(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = || -> Result<()> {
            let mut batch = WriteBatch::new();
            for entry in entries {
                let key = index_key(entry.get_log_id().index);
                batch.put_in(&self.shared.log, key, to_json(&entry)?);
                if batch.encoded_bytes() >= APPEND_BATCH_BYTES {
                    self.shared.db.write(std::mem::take(&mut batch))?;
                }
            }
            Ok(self.shared.db.write(batch)?)
        };
        write().map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Write))?;
        let queued = match self.shared.to_sync.lock() {
            Ok(sender) => match sender.as_ref() {
                Some(sender) => sender.send(callback).map_err(|e| e.0),
                None => Err(callback),
            },
            Err(_) => Err(callback),
        };
        if let Err(callback) = queued {
            // No syncer (never expected while the store is alive): sync here.
            callback.log_io_completed(flush_result(&self.shared.db.sync_wal()));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let mut batch = WriteBatch::new();
        batch.delete_range_in(&self.shared.log, index_key(log_id.index)..);
        self.write_synced(batch)
            .map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let write = || {
            let mut batch = WriteBatch::new();
            batch.put_in(&self.shared.meta, LAST_PURGED, to_json(&log_id)?);
            match log_id.index.checked_add(1) {
                Some(end) => batch.delete_range_in(&self.shared.log, ..index_key(end)),
                None => batch.delete_range_in::<&[u8], _>(&self.shared.log, ..),
            }
            self.write_synced(batch)
        };
        write().map_err(|e| e.storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn index_keys_sort_as_indexes() {
        let mut indexes = [0u64, 1, 255, 256, 65_536, u64::MAX - 1, u64::MAX];
        let mut keys: Vec<_> = indexes.iter().map(|&i| index_key(i)).collect();
        keys.sort();
        indexes.sort();
        let back: Vec<_> = keys.into_iter().map(u64::from_be_bytes).collect();
        assert_eq!(back, indexes);
    }

    #[test]
    fn bounds_map_to_keys() {
        assert!(key_bounds(&(u64::MAX..)).is_some());
        let excluded = (Bound::Excluded(u64::MAX), Bound::<u64>::Unbounded);
        assert!(
            key_bounds(&excluded).is_none(),
            "nothing is after the last index"
        );
        let (start, end) = key_bounds(&(3..=5)).unwrap();
        assert_eq!(start, Bound::Included(index_key(3)));
        assert_eq!(end, Bound::Included(index_key(5)));
    }

    #[test]
    fn a_damaged_entry_is_corruption_not_a_panic() {
        let err = decode_entry(&index_key(7), b"{\"log_id\":").unwrap_err();
        assert!(matches!(err, Error::Corruption { .. }), "{err}");
        let err = decode_entry(b"short", b"{}").unwrap_err();
        assert!(matches!(err, Error::Corruption { .. }), "{err}");
    }
}
