//! An in-memory log store and state machine, after openraft's own
//! `memstore`: the upper bound the benchmark compares kevo-raft with (no
//! disk on the write path; appends acknowledged at once). Nothing survives
//! a restart, so it is for `--store memory` benchmarks only.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kevo_raft::{Request, Response, TypeConfig};
use openraft::storage::{
    LogFlushed, LogState, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine,
    Snapshot, SnapshotMeta,
};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError,
    StoredMembership, Vote,
};

type StorageResult<T> = Result<T, StorageError<u64>>;
type Meta = SnapshotMeta<u64, BasicNode>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct Log {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    last_purged: Option<LogId<u64>>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
}

/// The log in a `BTreeMap`.
#[derive(Clone, Default)]
pub(crate) struct MemLog {
    log: Arc<Mutex<Log>>,
}

impl RaftLogReader<TypeConfig> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        Ok(lock(&self.log)
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let log = lock(&self.log);
        let last = log.entries.values().next_back().map(|e| *e.get_log_id());
        Ok(LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: last.or(log.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> MemLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        lock(&self.log).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        Ok(lock(&self.log).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> StorageResult<()> {
        lock(&self.log).committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<u64>>> {
        Ok(lock(&self.log).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut log = lock(&self.log);
        for entry in entries {
            log.entries.insert(entry.get_log_id().index, entry);
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        lock(&self.log).entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let mut log = lock(&self.log);
        log.last_purged = Some(log_id);
        let keep = log.entries.split_off(&(log_id.index + 1));
        log.entries = keep;
        Ok(())
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct State {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// JSON maps need string keys: the pairs as a list.
    #[serde(with = "pairs")]
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A byte-keyed map as a list of pairs.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<Vec<u8>, Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, D::Error> {
        Ok(Vec::<(Vec<u8>, Vec<u8>)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

struct Shared {
    state: Mutex<State>,
    /// The current snapshot: its metadata and the file that holds it.
    snapshot: Mutex<Option<(Meta, PathBuf)>>,
    dir: PathBuf,
    counter: AtomicU64,
    generation: AtomicU64,
}

/// The state machine in a `BTreeMap`; snapshots are JSON files in `dir`.
#[derive(Clone)]
pub(crate) struct MemStateMachine {
    shared: Arc<Shared>,
}

fn io_error(e: impl std::error::Error + 'static) -> StorageError<u64> {
    StorageIOError::write_snapshot(None, &e).into()
}

impl MemStateMachine {
    pub(crate) fn new(dir: PathBuf) -> std::io::Result<MemStateMachine> {
        std::fs::create_dir_all(&dir)?;
        Ok(MemStateMachine {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                snapshot: Mutex::new(None),
                dir,
                counter: AtomicU64::new(0),
                generation: AtomicU64::new(0),
            }),
        })
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        lock(&self.shared.state).kv.get(key).cloned()
    }

    pub(crate) fn dump(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let state = lock(&self.shared.state);
        state
            .kv
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn applied(&self) -> Option<LogId<u64>> {
        lock(&self.shared.state).applied
    }

    pub(crate) fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Relaxed)
    }

    fn file(&self) -> PathBuf {
        let n = self.shared.counter.fetch_add(1, Ordering::Relaxed);
        self.shared.dir.join(format!("mem-{n}.snap"))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let (bytes, meta) = {
            let state = lock(&self.shared.state);
            let bytes = serde_json::to_vec(&*state).map_err(io_error)?;
            let meta = Meta {
                last_log_id: state.applied,
                last_membership: state.membership.clone(),
                snapshot_id: format!("mem-{}", self.shared.counter.load(Ordering::Relaxed)),
            };
            (bytes, meta)
        };
        let path = self.file();
        std::fs::write(&path, &bytes).map_err(io_error)?;
        let file = std::fs::File::open(&path).map_err(io_error)?;
        if let Some((_, old)) = lock(&self.shared.snapshot).replace((meta.clone(), path)) {
            let _ = std::fs::remove_file(old);
        }
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotBuilder = MemStateMachine;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>)> {
        let state = lock(&self.shared.state);
        Ok((state.applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = lock(&self.shared.state);
        let mut responses = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            state.applied = Some(log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Request::Put { key, value }) => {
                    state.kv.insert(key, value);
                }
                EntryPayload::Normal(Request::Delete { key }) => {
                    state.kv.remove(&key);
                }
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(log_id), m);
                }
            }
            responses.push(Response {
                index: log_id.index,
                rejected: None,
            });
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> MemStateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<tokio::fs::File>> {
        let path = self.file();
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_error)?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> StorageResult<()> {
        let mut file = snapshot.into_std().await;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(io_error)?;
        let state: State = serde_json::from_slice(&bytes).map_err(io_error)?;
        *lock(&self.shared.state) = state;
        self.shared.generation.fetch_add(1, Ordering::Relaxed);
        let path = self.file();
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(io_error)?;
        if let Some((_, old)) = lock(&self.shared.snapshot).replace((meta.clone(), path)) {
            let _ = std::fs::remove_file(old);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let Some((meta, path)) = lock(&self.shared.snapshot).clone() else {
            return Ok(None);
        };
        let file = std::fs::File::open(&path).map_err(io_error)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}
