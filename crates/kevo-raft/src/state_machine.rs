//! The replicated key-value state machine on kevo: [`StateMachine`]
//! (openraft's `RaftStateMachine`) and its [`SnapshotBuilder`].
//!
//! The state lives in its own kevo database, `sm-<generation>/`: keyspace
//! `kv` holds the user's keys, keyspace `sm_meta` the last applied log id
//! and membership, written in the same batch as the entries they cover.
//! `SM_CURRENT` names the live generation.
//!
//! **Building a snapshot** holds off `apply` for the moment of a kevo
//! checkpoint (flushed first, so tables are hard-linked and nothing is
//! copied in memory), then packs the checkpoint's files into
//! `snapshots/current.snap` (`docs/format/raft-snapshot.md`).
//!
//! **Installing a snapshot** unpacks the received archive, verifying every
//! checksum, into `sm-<next>.tmp/`, renames it `sm-<next>/`, opens it and
//! checks its applied log id against the snapshot's metadata, then
//! replaces `SM_CURRENT` (write, sync, rename, sync the directory): that
//! rename is the commit point. A crash before it leaves the old state (the
//! next open deletes `sm-<next>`), after it the new one (the next open
//! deletes the old generation). [`StateMachine::set_install_fault`] stops
//! an install after any [`InstallStep`], as a crash there would.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use kevo_engine::{CheckpointOptions, Db, Keyspace, KeyspaceOptions, Options, WriteBatch};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId,
    StorageError, StoredMembership,
};

use crate::archive::{self, DirSink};
use crate::log_store::{read_json, to_json};
use crate::{Error, Request, Response, Result, TypeConfig};

const DATA_KEYSPACE: &str = "kv";
const META_KEYSPACE: &str = "sm_meta";
const APPLIED: &[u8] = b"applied";
const MEMBERSHIP: &[u8] = b"membership";
pub(crate) const SM_CURRENT: &str = "SM_CURRENT";
const SNAPSHOTS: &str = "snapshots";
const CURRENT_SNAPSHOT: &str = "current.snap";
const INSTALL_ARCHIVE: &str = "install.snap.tmp";
/// Applies larger than this are written as several batches (kevo's batch
/// limit is 128 MiB; one entry is at most ~8 MiB of key and value).
const APPLY_BATCH_BYTES: usize = 32 << 20;

type StorageResult<T> = std::result::Result<T, StorageError<u64>>;
type Meta = SnapshotMeta<u64, BasicNode>;
type Membership = StoredMembership<u64, BasicNode>;

/// The steps of a snapshot install, in order; an install stopped after one
/// of them (by a crash, or by [`StateMachine::set_install_fault`]) leaves
/// the old state if it is before [`InstallStep::Committed`], the new state
/// from it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InstallStep {
    /// The archive is verified and unpacked (and synced) into `sm-<next>.tmp/`.
    Unpacked,
    /// `sm-<next>.tmp/` is renamed `sm-<next>/`.
    Renamed,
    /// The new database opened and its applied log id matched the snapshot's.
    Opened,
    /// `SM_CURRENT` names the new generation (the commit point).
    Committed,
    /// Reads and applies go to the new database; the old one is closed.
    Swapped,
    /// The received archive is kept as `snapshots/current.snap` and the old
    /// generation deleted.
    Kept,
}

/// The live generation: its database and keyspaces.
struct Live {
    generation: u64,
    db: Db,
    data: Keyspace,
    meta: Keyspace,
}

impl Live {
    fn open(dir: &Path, generation: u64, options: Options) -> Result<Live> {
        let db = Db::open_with(generation_dir(dir, generation), options)?;
        let data = db.keyspace(DATA_KEYSPACE, KeyspaceOptions::default())?;
        let meta = db.keyspace(META_KEYSPACE, KeyspaceOptions::default())?;
        Ok(Live {
            generation,
            db,
            data,
            meta,
        })
    }

    fn applied(&self) -> Result<(Option<LogId<u64>>, Membership)> {
        let applied = read_json(&self.meta, APPLIED)?;
        let membership = read_json(&self.meta, MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    /// Writes `batch` (unsynced) with the applied id `last` and, if one
    /// came with it, the new `membership`: the state and what it reflects
    /// change together.
    fn write_applied(
        &self,
        mut batch: WriteBatch,
        last: Option<LogId<u64>>,
        membership: Option<Membership>,
    ) -> Result<()> {
        if let Some(last) = last {
            batch.put_in(&self.meta, APPLIED, to_json(&last)?);
        }
        if let Some(membership) = membership {
            batch.put_in(&self.meta, MEMBERSHIP, to_json(&membership)?);
        }
        self.db.write(batch)?;
        Ok(())
    }
}

struct Shared {
    dir: PathBuf,
    options: Options,
    live: Mutex<Live>,
    /// Serialises what replaces `snapshots/current.snap` (builds, installs).
    snapshots: Mutex<()>,
    /// Names temporary files uniquely within this process.
    counter: AtomicU64,
    /// Receiving files handed out and not yet installed.
    incoming: Mutex<Vec<PathBuf>>,
    fault: Mutex<Option<InstallStep>>,
}

/// openraft's state machine: a key-value map in a kevo database (see the
/// module docs). Cheap to clone; clones share the state, so the service
/// keeps one for reads while openraft owns another.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

/// Builds snapshots of a [`StateMachine`] (shares its state).
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

fn generation_dir(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("sm-{generation}"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Syncs the directory `dir` (a rename or creation in it becomes durable).
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Writes `contents` to `path` durably: a temporary file, synced, renamed
/// over `path`, the directory synced.
fn replace_file(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn remove_dir_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn remove_file_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn parse_meta(bytes: &[u8], file: &str) -> Result<Meta> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::corruption(file, e.column() as u64, format!("snapshot metadata: {e}")))
}

/// The archive at `path`, if there is one: its metadata, and the file
/// opened and positioned at its start (for streaming it whole).
fn open_archive(path: &Path) -> Result<Option<(Meta, File)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let name = path.display().to_string();
    let bytes = archive::read_meta(&mut file, &name)?;
    let meta = parse_meta(&bytes, &name)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    Ok(Some((meta, file)))
}

/// The generation `SM_CURRENT` names (0 if there is no such file yet).
fn current_generation(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(SM_CURRENT);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim_end_matches('\n').parse().map(Some).map_err(|_| {
            Error::corruption(
                path.display().to_string(),
                0,
                format!("{text:?} is not a generation number"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

impl StateMachine {
    /// Opens the state machine of the node directory `dir`, creating it if
    /// needed, and finishes or discards what an interrupted snapshot build
    /// or install left behind.
    ///
    /// # Errors
    /// [`Error::Kevo`] opening the database; [`Error::Io`] on the
    /// directory's files; [`Error::Corruption`] for a damaged `SM_CURRENT`.
    pub fn open(dir: &Path, options: Options) -> Result<StateMachine> {
        std::fs::create_dir_all(dir.join(SNAPSHOTS)).map_err(|e| Error::io(dir, e))?;
        let generation = current_generation(dir)?;
        if let Some(generation) = generation
            && !generation_dir(dir, generation).exists()
        {
            return Err(Error::corruption(
                dir.join(SM_CURRENT).display().to_string(),
                0,
                format!(
                    "names generation {generation}, whose directory sm-{generation} is missing"
                ),
            ));
        }
        let live = Live::open(dir, generation.unwrap_or(0), options.clone())?;
        if generation.is_none() {
            replace_file(&dir.join(SM_CURRENT), b"0\n")?;
        }
        let machine = StateMachine {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                options,
                live: Mutex::new(live),
                snapshots: Mutex::new(()),
                counter: AtomicU64::new(0),
                incoming: Mutex::new(Vec::new()),
                fault: Mutex::new(None),
            }),
        };
        machine.clean_up()?;
        Ok(machine)
    }

    /// Deletes other generations and temporary files; keeps a received
    /// archive whose install committed but was not yet kept.
    fn clean_up(&self) -> Result<()> {
        let dir = &self.shared.dir;
        let live = lock(&self.shared.live);
        let keep = format!("sm-{}", live.generation);
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("sm-") && name != keep {
                remove_dir_if_present(&entry.path())?;
            }
        }
        remove_file_if_present(&dir.join(SM_CURRENT).with_extension("tmp"))?;
        let snapshots = dir.join(SNAPSHOTS);
        let installed = snapshots.join(INSTALL_ARCHIVE);
        // Damage makes it useless, not the node: it is then discarded.
        if let Ok(Some((meta, _))) = open_archive(&installed)
            && meta.last_log_id == live.applied()?.0
        {
            std::fs::rename(&installed, snapshots.join(CURRENT_SNAPSHOT))
                .map_err(|e| Error::io(&installed, e))?;
            sync_dir(&snapshots)?;
        }
        for entry in std::fs::read_dir(&snapshots).map_err(|e| Error::io(&snapshots, e))? {
            let entry = entry.map_err(|e| Error::io(&snapshots, e))?;
            if entry.file_name() != CURRENT_SNAPSHOT {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_dir_if_present(&path)?;
                } else {
                    remove_file_if_present(&path)?;
                }
            }
        }
        Ok(())
    }

    /// The value of `key` in the state, as applied on this node so far (for
    /// a linearizable read, ask the leader's `ensure_linearizable` first).
    ///
    /// # Errors
    /// [`Error::Kevo`] reading.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let live = lock(&self.shared.live);
        Ok(live.data.get(key)?.map(|v| v.to_vec()))
    }

    /// Every key and value of the state, in key order.
    ///
    /// # Errors
    /// [`Error::Kevo`] reading.
    pub fn dump(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let live = lock(&self.shared.live);
        live.data
            .range::<&[u8], _>(..)
            .map(|item| {
                let (k, v) = item?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    /// The last applied log id and membership.
    ///
    /// # Errors
    /// [`Error::Kevo`] or [`Error::Corruption`] reading them.
    pub fn applied(&self) -> Result<(Option<LogId<u64>>, Membership)> {
        lock(&self.shared.live).applied()
    }

    /// The live generation (how many snapshots this node has installed).
    pub fn generation(&self) -> u64 {
        lock(&self.shared.live).generation
    }

    /// For crash tests: the next installs stop right after `step`, with
    /// [`Error::InvalidArgument`] and the files as a crash there would leave
    /// them (drop every handle and reopen to recover). `None` lifts it.
    pub fn set_install_fault(&self, step: Option<InstallStep>) {
        *lock(&self.shared.fault) = step;
    }

    fn check_fault(&self, step: InstallStep) -> Result<()> {
        if *lock(&self.shared.fault) == Some(step) {
            return Err(Error::InvalidArgument(format!(
                "install stopped after {step:?} (simulated crash)"
            )));
        }
        Ok(())
    }

    fn apply_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<Vec<Response>> {
        let live = lock(&self.shared.live);
        let mut batch = WriteBatch::new();
        let mut responses = Vec::new();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            let log_id = *entry.get_log_id();
            let mut rejected = None;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(request) => match request.validate() {
                    Err(e) => rejected = Some(e.to_string()),
                    Ok(()) => match request {
                        Request::Put { key, value } => batch.put_in(&live.data, key, value),
                        Request::Delete { key } => batch.delete_in(&live.data, key),
                    },
                },
                EntryPayload::Membership(m) => membership = Some(Membership::new(Some(log_id), m)),
            }
            responses.push(Response {
                index: log_id.index,
                rejected,
            });
            last = Some(log_id);
            if batch.encoded_bytes() >= APPLY_BATCH_BYTES {
                // Kept under kevo's batch limit: each part carries its own
                // applied id, so a crash between parts leaves a prefix.
                live.write_applied(std::mem::take(&mut batch), last.take(), membership.take())?;
            }
        }
        // Not synced: a crash may take the state back to an earlier applied
        // id (each batch is all or nothing), and openraft applies the log
        // from there again.
        live.write_applied(batch, last, membership)?;
        Ok(responses)
    }

    fn begin_receiving(&self) -> Result<tokio::fs::File> {
        let n = self.shared.counter.fetch_add(1, Ordering::Relaxed);
        let path = self
            .shared
            .dir
            .join(SNAPSHOTS)
            .join(format!("incoming-{n}.snap"));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        lock(&self.shared.incoming).push(path);
        Ok(tokio::fs::File::from_std(file))
    }

    fn current_snapshot(&self) -> Result<Option<Snapshot<TypeConfig>>> {
        let _snapshots = lock(&self.shared.snapshots);
        let path = self.shared.dir.join(SNAPSHOTS).join(CURRENT_SNAPSHOT);
        let Some((meta, file)) = open_archive(&path)? else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }

    /// Installs the archive read from `input` (see the module docs).
    fn install(&self, meta: &Meta, input: &mut File) -> Result<()> {
        let _snapshots = lock(&self.shared.snapshots);
        let dir = &self.shared.dir;
        let snapshots = dir.join(SNAPSHOTS);
        let next = lock(&self.shared.live).generation + 1;
        let unpacked = dir.join(format!("sm-{next}.tmp"));
        let target = generation_dir(dir, next);
        remove_dir_if_present(&unpacked)?;
        remove_dir_if_present(&target)?;
        std::fs::create_dir(&unpacked).map_err(|e| Error::io(&unpacked, e))?;
        let kept = snapshots.join(INSTALL_ARCHIVE);

        let name = format!("snapshot {}", meta.snapshot_id);
        input
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(Path::new(&name), e))?;
        let copy = File::create(&kept).map_err(|e| Error::io(&kept, e))?;
        let mut tee = Tee { input, copy };
        let read = archive::read(&mut tee, &name, &mut DirSink::new(&unpacked));
        let unpacked_ok = read.and_then(|meta_bytes| {
            tee.copy.sync_all().map_err(|e| Error::io(&kept, e))?;
            let stored = parse_meta(&meta_bytes, &name)?;
            if stored.last_log_id != meta.last_log_id
                || stored.last_membership != meta.last_membership
            {
                return Err(Error::InvalidArgument(format!(
                    "{name} holds the state at {:?}, not at {:?}",
                    stored.last_log_id, meta.last_log_id
                )));
            }
            sync_dir(&unpacked)
        });
        if let Err(e) = unpacked_ok {
            let _ = remove_dir_if_present(&unpacked);
            let _ = remove_file_if_present(&kept);
            return Err(e);
        }
        self.check_fault(InstallStep::Unpacked)?;

        std::fs::rename(&unpacked, &target).map_err(|e| Error::io(&target, e))?;
        sync_dir(dir)?;
        self.check_fault(InstallStep::Renamed)?;

        let new = Live::open(dir, next, self.shared.options.clone())?;
        let (applied, membership) = new.applied()?;
        if applied != meta.last_log_id || membership != meta.last_membership {
            drop(new);
            let _ = remove_dir_if_present(&target);
            let _ = remove_file_if_present(&kept);
            return Err(Error::corruption(
                target.display().to_string(),
                0,
                format!(
                    "the snapshot's database is at {applied:?}, its metadata says {:?}",
                    meta.last_log_id
                ),
            ));
        }
        self.check_fault(InstallStep::Opened)?;

        replace_file(&dir.join(SM_CURRENT), format!("{next}\n").as_bytes())?;
        self.check_fault(InstallStep::Committed)?;

        let old = std::mem::replace(&mut *lock(&self.shared.live), new);
        let old_generation = old.generation;
        drop(old);
        self.check_fault(InstallStep::Swapped)?;

        std::fs::rename(&kept, snapshots.join(CURRENT_SNAPSHOT))
            .map_err(|e| Error::io(&kept, e))?;
        sync_dir(&snapshots)?;
        remove_dir_if_present(&generation_dir(dir, old_generation))?;
        for path in lock(&self.shared.incoming).drain(..) {
            remove_file_if_present(&path)?;
        }
        self.check_fault(InstallStep::Kept)
    }
}

/// Copies what is read from `input` into `copy`.
struct Tee<'a> {
    input: &'a mut File,
    copy: File,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl SnapshotBuilder {
    fn build(&self) -> Result<Snapshot<TypeConfig>> {
        let _snapshots = lock(&self.shared.snapshots);
        let snapshots = self.shared.dir.join(SNAPSHOTS);
        let n = self.shared.counter.fetch_add(1, Ordering::Relaxed);
        let work = snapshots.join(format!("build-{n}"));
        remove_dir_if_present(&work)?;
        // Applies wait for the checkpoint: the metadata read and the
        // checkpoint then see the same state.
        let meta = {
            let live = lock(&self.shared.live);
            let (last_log_id, last_membership) = live.applied()?;
            live.db
                .checkpoint_with(&work, &CheckpointOptions { flush_first: true })?;
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            Meta {
                snapshot_id: format!(
                    "{}-{}-{nanos:x}",
                    last_log_id.map(|id| id.index).unwrap_or_default(),
                    live.generation
                ),
                last_log_id,
                last_membership,
            }
        };
        let packed = snapshots.join(format!("build-{n}.snap.tmp"));
        let result = (|| -> Result<File> {
            let mut out =
                std::io::BufWriter::new(File::create(&packed).map_err(|e| Error::io(&packed, e))?);
            archive::pack(&work, &to_json(&meta)?, &mut out)?;
            let file = out
                .into_inner()
                .map_err(|e| Error::io(&packed, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(&packed, e))?;
            let reader = File::open(&packed).map_err(|e| Error::io(&packed, e))?;
            std::fs::rename(&packed, snapshots.join(CURRENT_SNAPSHOT))
                .map_err(|e| Error::io(&packed, e))?;
            sync_dir(&snapshots)?;
            Ok(reader)
        })();
        remove_dir_if_present(&work)?;
        if result.is_err() {
            let _ = remove_file_if_present(&packed);
        }
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(result?)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        self.build()
            .map_err(|e| e.storage(ErrorSubject::Snapshot(None), ErrorVerb::Write))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<u64>>, Membership)> {
        self.applied()
            .map_err(|e| e.storage(ErrorSubject::StateMachine, ErrorVerb::Read))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.apply_entries(entries)
            .map_err(|e| e.storage(ErrorSubject::StateMachine, ErrorVerb::Write))
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<tokio::fs::File>> {
        self.begin_receiving()
            .map(Box::new)
            .map_err(|e| e.storage(ErrorSubject::Snapshot(None), ErrorVerb::Write))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> StorageResult<()> {
        let mut file = snapshot.into_std().await;
        self.install(meta, &mut file).map_err(|e| {
            e.storage(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        })
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        self.current_snapshot()
            .map_err(|e| e.storage(ErrorSubject::Snapshot(None), ErrorVerb::Read))
    }
}
