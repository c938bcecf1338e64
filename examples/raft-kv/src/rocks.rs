//! The peer for the benchmark (`--features rocksdb`, `--store rocksdb` or
//! `rocksdb-synced`): openraft's `raft-kv-rocksdb` example store, written
//! again against this example's types. The log lives in RocksDB (column
//! family `logs`, big-endian index keys, JSON entries; `store` for the vote,
//! committed and last purged ids); the state machine is the in-memory one,
//! as in openraft's example.
//!
//! `rocksdb` does what openraft's example does: entries are put unsynced and
//! the append is reported flushed at once (only the vote is synced), so an
//! acknowledged append may be lost by a power failure. `rocksdb-synced`
//! writes each append as one synced batch: the promise kevo-raft keeps.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use kevo_raft::TypeConfig;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError, Vote};
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, WriteBatch, WriteOptions};

type StorageResult<T> = Result<T, StorageError<u64>>;

fn failed(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write_logs(&e).into()
}

/// The log in RocksDB.
#[derive(Clone)]
pub(crate) struct RocksLog {
    db: Arc<DB>,
    sync_appends: bool,
}

impl RocksLog {
    pub(crate) fn open(path: &Path, sync_appends: bool) -> Result<RocksLog, rocksdb::Error> {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = ["logs", "store"]
            .map(|name| ColumnFamilyDescriptor::new(name, rocksdb::Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)?;
        Ok(RocksLog {
            db: Arc::new(db),
            sync_appends,
        })
    }

    fn cf(&self, name: &str) -> StorageResult<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| failed(std::io::Error::other(format!("no column family {name}"))))
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> StorageResult<Option<T>> {
        match self.db.get_cf(self.cf("store")?, key).map_err(failed)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(failed),
        }
    }

    fn put_json(&self, key: &[u8], value: &impl serde::Serialize, sync: bool) -> StorageResult<()> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        let bytes = serde_json::to_vec(value).map_err(failed)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf("store")?, key, bytes);
        self.db.write_opt(batch, &options).map_err(failed)
    }

    fn last_entry(&self) -> StorageResult<Option<LogId<u64>>> {
        let mut iter = self.db.iterator_cf(self.cf("logs")?, IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(failed)?;
                let entry: Entry<TypeConfig> = serde_json::from_slice(&value).map_err(failed)?;
                Ok(Some(*entry.get_log_id()))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for RocksLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let from = start.to_be_bytes();
        let mode = IteratorMode::From(&from, Direction::Forward);
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(self.cf("logs")?, mode) {
            let (key, value) = item.map_err(failed)?;
            let index = u64::from_be_bytes(key.as_ref().try_into().map_err(failed)?);
            if !range.contains(&index) {
                break;
            }
            entries.push(serde_json::from_slice(&value).map_err(failed)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLog {
    type LogReader = RocksLog;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged: Option<LogId<u64>> = self.get_json(b"last_purged")?;
        let last = self.last_entry()?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> RocksLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        self.put_json(b"vote", vote, true)
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        self.get_json(b"vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StorageResult<()> {
        self.put_json(b"committed", &committed, false)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<u64>>> {
        Ok(self.get_json::<Option<LogId<u64>>>(b"committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let logs = self.cf("logs")?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let key = entry.get_log_id().index.to_be_bytes();
            batch.put_cf(logs, key, serde_json::to_vec(&entry).map_err(failed)?);
        }
        let mut options = WriteOptions::default();
        options.set_sync(self.sync_appends);
        self.db.write_opt(batch, &options).map_err(failed)?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let logs = self.cf("logs")?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(logs, log_id.index.to_be_bytes(), u64::MAX.to_be_bytes());
        batch.delete_cf(logs, u64::MAX.to_be_bytes());
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options).map_err(failed)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        self.put_json(b"last_purged", &log_id, true)?;
        let logs = self.cf("logs")?;
        self.db
            .delete_range_cf(logs, 0u64.to_be_bytes(), (log_id.index + 1).to_be_bytes())
            .map_err(failed)
    }
}
