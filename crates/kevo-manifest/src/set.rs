//! [`VersionSet`]: the current [`Version`] of every keyspace, the file
//! counter, and the manifest that makes them durable.
//!
//! The protocols (open, rewrite, the `CURRENT` switch) and why they are
//! crash-safe are in `docs/format/manifest.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use kevo_core::{
    DEFAULT_KEYSPACE, Error, Fs, KeyspaceId, Result, SEQNO_MAX, SeqNo, check_keyspace_name,
};
use kevo_wal::log::{LogEnd, LogReader, LogWriter};

use crate::edit::{EDIT_FORMAT_VERSION_MIN, VersionEdit};
use crate::keyspaces::{Applied, KeyspaceInfo, Keyspaces, RecoveredKeyspace};
use crate::meta::FILE_NUMBER_MAX;
use crate::names::{
    CURRENT_FILE, CURRENT_TEMP_FILE, manifest_file_name, parse_manifest_file_name,
    parse_table_file_name,
};
use crate::version::Version;
use crate::wals::WalSegments;

/// How many file numbers past the one being handed out an edit reserves:
/// [`VersionSet::reserve_file_number`] writes an edit only once every 16
/// numbers, and a table numbered at or above the recorded reservation can
/// only exist if edits were lost.
pub const FILE_NUMBERS_RESERVED_AHEAD: u64 = 16;

/// The magic number in a manifest file's header (where a WAL segment has
/// `KEVOWAL\0`).
pub const MANIFEST_MAGIC: [u8; 8] = *b"KEVOMAN\0";

/// Largest manifest number `CURRENT` may name. The counter starts at most
/// just above [`FILE_NUMBER_MAX`] (counters read from disk are clamped), so
/// this leaves 2^62 numbers to hand out and `number + 1` never overflows.
const MANIFEST_NUMBER_MAX: u64 = u64::MAX / 2;

/// Largest `CURRENT` file read: the longest manifest name and a newline,
/// with room to spare.
const CURRENT_BYTES_MAX: u64 = 64;

/// How a [`VersionSet`] is opened and run.
#[derive(Debug, Clone)]
pub struct ManifestOptions {
    /// Rewrite the manifest from a snapshot once the log grows past this
    /// (and past twice the size it had right after its own snapshot, so a
    /// large version does not roll on every edit). Default: 8 MiB.
    pub rewrite_bytes: u64,
    /// Create a new, empty version set when `CURRENT` is missing (default
    /// true).
    pub create_if_missing: bool,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            rewrite_bytes: 8 * 1024 * 1024,
            create_if_missing: true,
        }
    }
}

/// An edit [`VersionSet::try_log_and_apply`] refused because it does not
/// apply to the current version; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditRefused {
    /// Why it does not apply.
    pub reason: String,
}

/// Counters since the set was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestStats {
    /// Edits appended by [`VersionSet::log_and_apply`].
    pub edits: u64,
    /// Bytes written to manifest files (headers, snapshots and framing
    /// included), the manifest written by open included.
    pub bytes_written: u64,
    /// Manifest rewrites by [`VersionSet::log_and_apply`] (not counting the
    /// one every open does).
    pub rewrites: u64,
    /// The live manifest's number.
    pub manifest_number: u64,
}

/// What [`VersionSet::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestRecovery {
    /// `CURRENT` was missing and a new, empty version set was created.
    pub created: bool,
    /// Edits read from the old manifest (its snapshot included).
    pub edits_replayed: u64,
    /// Bytes dropped from the end of the old manifest: an edit torn by a
    /// crash, which was never acknowledged. 0 if it ended cleanly.
    pub tail_bytes_dropped: u64,
    /// The number of the manifest open started (the live one).
    pub manifest_number: u64,
}

/// The durable state a manifest describes, as [`VersionSet::recover`]
/// read it without changing anything; [`VersionSet::create`] starts a new
/// manifest from it.
///
/// The default keyspace's tables are `version` (all a manifest written
/// before keyspaces holds); every other live keyspace is in `keyspaces`.
/// `Default` is the state of a new database: the default keyspace alone,
/// empty.
#[derive(Debug, Clone)]
pub struct RecoveredManifest {
    /// The default keyspace's tables, level by level.
    pub version: Arc<Version>,
    /// The file-number horizon: no file number at or above it had been
    /// handed out when the last edit was written (every table is created
    /// only after an edit reserved its number; see
    /// [`VersionSet::reserve_file_number`]).
    pub next_file_number: u64,
    /// The largest sequence number whose write is in the tables: the WAL
    /// segments from `log_number` on hold the writes after it.
    pub last_seqno: SeqNo,
    /// The global log number: WAL segments numbered below this are no
    /// longer needed by any keyspace.
    pub log_number: u64,
    /// The tracked WAL segments (empty when `tracks_wal_segments` is
    /// false).
    pub wal_segments: WalSegments,
    /// Tables the directory holds that no version names and that an
    /// earlier open could not explain: never deleted (see
    /// [`VersionEdit::unexplained_tables`]).
    pub unexplained_tables: BTreeSet<u64>,
    /// The manifest was written by edit format 2 or later, which records
    /// every WAL segment and file-number reservation. A format 1 manifest
    /// (written before) does not: its WAL segments and its file-number
    /// horizon cannot be checked.
    pub tracks_wal_segments: bool,
    /// The manifest read (`MANIFEST-NNNNNN`).
    pub manifest_number: u64,
    /// Edits read, the snapshot included.
    pub edits_replayed: u64,
    /// Bytes dropped from the end of the manifest: an edit torn by a crash
    /// (or a cut the caller must check for, by checking the directory
    /// against the recovered state).
    pub tail_bytes_dropped: u64,
    /// Every live keyspace but the default one, by id. Names are unique
    /// (and never [`DEFAULT_KEYSPACE_NAME`](kevo_core::DEFAULT_KEYSPACE_NAME)),
    /// ids are neither 0 nor `KeyspaceId::MAX`, and a table is in at most
    /// one keyspace; [`VersionSet::create`] refuses a state that breaks
    /// this.
    pub keyspaces: BTreeMap<KeyspaceId, RecoveredKeyspace>,
    /// The default keyspace's log number: WAL segments below it hold
    /// nothing of the default keyspace that is not in its tables. In a
    /// manifest written before keyspaces, the global `log_number`.
    pub default_log_number: u64,
    /// The keyspace id counter: ids at or above it were never handed out
    /// (at least 1, and above every id in `keyspaces`).
    pub next_keyspace_id: KeyspaceId,
}

impl Default for RecoveredManifest {
    fn default() -> Self {
        RecoveredManifest {
            version: Arc::default(),
            next_file_number: 0,
            last_seqno: 0,
            log_number: 0,
            wal_segments: WalSegments::default(),
            unexplained_tables: BTreeSet::new(),
            tracks_wal_segments: false,
            manifest_number: 0,
            edits_replayed: 0,
            tail_bytes_dropped: 0,
            keyspaces: BTreeMap::new(),
            default_log_number: 0,
            next_keyspace_id: DEFAULT_KEYSPACE + 1,
        }
    }
}

impl RecoveredManifest {
    /// Applies `edit` to this state in memory, as replaying it would: for
    /// callers that build a state to start a manifest from (a recovery
    /// that writes the WAL to a table, repair). The edit may change any
    /// keyspace's tables, and create or drop a keyspace (a dropped
    /// keyspace's tables are simply gone from the state). Counters only
    /// rise. On an error the state is unchanged.
    ///
    /// # Errors
    /// Why the edit does not apply (as [`VersionSet::log_and_apply`]
    /// would refuse it), or why this state is not one a manifest can hold
    /// (see [`RecoveredManifest::keyspaces`]).
    pub fn apply_edit(&mut self, edit: &VersionEdit) -> std::result::Result<(), String> {
        check_counters(edit).map_err(|e| e.to_string())?;
        let log_number = self.log_number.max(edit.log_number.unwrap_or(0));
        let applied = self.keyspace_state()?.apply(edit, log_number)?;
        let wal_segments = self.wal_segments.apply(edit, log_number)?;
        self.set_keyspaces(&applied.keyspaces);
        for (_, table) in &edit.added {
            self.next_file_number = self.next_file_number.max(table.number + 1);
        }
        let max = |slot: &mut u64, value: Option<u64>| *slot = (*slot).max(value.unwrap_or(0));
        max(&mut self.next_file_number, edit.next_file_number);
        max(&mut self.last_seqno, edit.last_seqno);
        self.log_number = log_number;
        self.wal_segments = wal_segments;
        self.unexplained_tables
            .extend(edit.unexplained_tables.iter().copied());
        Ok(())
    }

    /// The keyspaces this state describes, checked.
    fn keyspace_state(&self) -> std::result::Result<Keyspaces, String> {
        Keyspaces::from_parts(
            Arc::clone(&self.version),
            self.default_log_number,
            &self.keyspaces,
            self.next_keyspace_id,
        )
    }

    /// Sets the keyspace fields to `keyspaces`.
    fn set_keyspaces(&mut self, keyspaces: &Keyspaces) {
        let default = keyspaces.default_keyspace();
        self.version = Arc::clone(&default.version);
        self.default_log_number = default.log_number;
        self.keyspaces = keyspaces.others().clone();
        self.next_keyspace_id = keyspaces.next_id();
    }
}

/// The version set: the current [`Version`] of the tree of every keyspace,
/// the file counter, the last sequence number and the WAL's log numbers,
/// kept durable in a manifest.
///
/// Every database has the default keyspace ([`VersionSet::current`]);
/// [`VersionSet::create_keyspace`] adds others, each with its own version
/// ([`VersionSet::current_in`]) and log number, sharing the counters and
/// the WAL segments.
///
/// # Thread safety
/// `Send + Sync`; shared by the engine's flush and compaction threads.
/// [`VersionSet::log_and_apply`] calls are serialised by the writer mutex,
/// held across the manifest write and sync. Everything else
/// ([`VersionSet::current`], the counters, [`VersionSet::take_obsolete_tables`])
/// takes only a short state mutex (or an atomic) and never waits for an
/// fsync. The file counter is an atomic: [`VersionSet::new_file_number`]
/// never blocks.
///
/// # Invariants
/// - The current versions are the ones the manifest named by `CURRENT`
///   leads to: a version, or a keyspace created or dropped, is installed
///   only after its edit is synced.
/// - Every edit written records the file counter, so numbers handed out
///   before it are never handed out again after a reopen; every snapshot
///   and create records the keyspace id counter, so a dropped keyspace's id
///   is never handed out again.
/// - `last_seqno`, `log_number` and every keyspace's log number never
///   decrease.
///
/// # Failure
/// After a failed write, sync, create, rename or directory sync of a
/// manifest or of `CURRENT`, the set is unusable: every later
/// [`VersionSet::log_and_apply`] returns [`Error::Io`] saying so. What
/// reached the disk is unknown, so nothing is appended after a possibly
/// partial record and no fsync is retried. Reopen to recover: the state on
/// disk is the one before or the one after the failed call.
#[derive(Debug)]
pub struct VersionSet {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: ManifestOptions,
    /// The next file number to hand out.
    next_file_number: AtomicU64,
    /// The largest file counter a synced edit recorded: numbers below it
    /// may be used for files without writing an edit first.
    horizon: AtomicU64,
    manifest_number: AtomicU64,
    writer: Mutex<Writer>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct Writer {
    log: LogWriter,
    manifest_number: u64,
    /// The manifest's length right after its snapshot.
    snapshot_end: u64,
    /// Why the set is unusable, after a failed write.
    poison: Option<String>,
}

#[derive(Debug)]
struct State {
    /// Every live keyspace with its current version.
    keyspaces: Keyspaces,
    last_seqno: SeqNo,
    /// The global log number.
    log_number: u64,
    wals: WalSegments,
    unexplained: BTreeSet<u64>,
    /// Every version installed since open; dead ones are pruned.
    live: Vec<Weak<Version>>,
    /// Tables removed by an edit (or of a dropped keyspace) and not yet
    /// returned by `take_obsolete_tables`.
    removed: BTreeSet<u64>,
    stats: ManifestStats,
}

/// The state an edit is checked against and a snapshot is made of.
#[derive(Debug)]
struct Base {
    keyspaces: Keyspaces,
    last_seqno: SeqNo,
    log_number: u64,
    wals: WalSegments,
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves its
/// state consistent before anything can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A kevo-wal error as the kevo-core error this crate reports.
fn from_wal(e: kevo_wal::Error) -> Error {
    match e {
        kevo_wal::Error::Io { context, source } => Error::Io { context, source },
        kevo_wal::Error::FileCorruption {
            file,
            offset,
            reason,
        } => Error::Corruption {
            file,
            offset,
            reason,
        },
        kevo_wal::Error::InvalidArgument(reason) => Error::InvalidArgument(reason),
        poisoned @ kevo_wal::Error::Poisoned { .. } => {
            let kind = poisoned.io_kind().unwrap_or(io::ErrorKind::Other);
            Error::io(
                "writing the manifest",
                io::Error::new(kind, poisoned.to_string()),
            )
        }
        // The manifest's log is one file: these never come from it.
        kevo_wal::Error::Corruption {
            segment,
            offset,
            reason,
        } => Error::Corruption {
            file: kevo_wal::segment_file_name(segment).into(),
            offset,
            reason,
        },
        kevo_wal::Error::Busy { dir } => Error::io(
            "opening the manifest",
            io::Error::new(io::ErrorKind::WouldBlock, format!("{dir} is busy")),
        ),
    }
}

impl VersionSet {
    /// Opens the version set of the database in `dir`: [`VersionSet::recover`],
    /// then [`VersionSet::create`] from what it read (or from nothing when
    /// `CURRENT` is missing and `options.create_if_missing` is set), then
    /// [`VersionSet::remove_obsolete_manifests`].
    ///
    /// A torn last record is dropped and reported in
    /// [`ManifestRecovery::tail_bytes_dropped`]; nothing is ever appended
    /// after it, since a fresh manifest is started. The file counter starts
    /// above every manifest and table number found in `dir`.
    ///
    /// This checks the manifest alone. A database engine must also check
    /// the directory against the recovered state before it changes anything
    /// (tables and WAL segments present, none unexplained): call `recover`
    /// and `create` itself, as `kevo-engine` does.
    ///
    /// # Errors
    /// - [`Error::Corruption`] naming the manifest and offset for damage
    ///   before its tail or an edit that does not decode or apply; naming
    ///   `CURRENT` when it holds garbage or names a missing manifest.
    /// - [`Error::InvalidArgument`] when `CURRENT` is missing and
    ///   `options.create_if_missing` is false.
    /// - [`Error::Io`] when a file operation fails.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: ManifestOptions,
    ) -> Result<(VersionSet, ManifestRecovery)> {
        let mut recovery = ManifestRecovery::default();
        let state = match Self::recover(fs.as_ref(), dir)? {
            Some(state) => {
                recovery.edits_replayed = state.edits_replayed;
                recovery.tail_bytes_dropped = state.tail_bytes_dropped;
                state
            }
            None if options.create_if_missing => {
                fs.create_dir_all(dir)
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
                recovery.created = true;
                RecoveredManifest::default()
            }
            None => {
                return Err(Error::InvalidArgument(format!(
                    "{} holds no {CURRENT_FILE} file and create_if_missing is off",
                    dir.display()
                )));
            }
        };
        let set = Self::create(fs, dir, state, options)?;
        set.remove_obsolete_manifests();
        recovery.manifest_number = set.manifest_number();
        tracing::info!(
            dir = %dir.display(),
            manifest = recovery.manifest_number,
            created = recovery.created,
            edits_replayed = recovery.edits_replayed,
            tail_bytes_dropped = recovery.tail_bytes_dropped,
            "opened the version set"
        );
        Ok((set, recovery))
    }

    /// Reads `CURRENT` and replays the manifest it names, changing nothing
    /// on disk. `Ok(None)` when `dir` holds no `CURRENT`.
    ///
    /// A torn last record is dropped and its size reported in
    /// [`RecoveredManifest::tail_bytes_dropped`]: a crash during an append
    /// leaves one, but so does a manifest cut short by damage, which only
    /// the directory can tell (an edit that was lost named files that were
    /// then created, deleted or retired).
    ///
    /// # Errors
    /// As [`VersionSet::open`], except that a missing `CURRENT` is
    /// `Ok(None)`.
    pub fn recover(fs: &dyn Fs, dir: &Path) -> Result<Option<RecoveredManifest>> {
        if !Self::exists(fs, dir)? {
            return Ok(None);
        }
        replay(fs, dir).map(Some)
    }

    /// Starts a fresh manifest in `dir` holding a snapshot of `state` (use
    /// `RecoveredManifest::default()` for a new database): one edit for the
    /// default keyspace and the shared counters, then one create edit per
    /// other keyspace; writes and syncs them and the directory, then
    /// switches `CURRENT` to it atomically (write `CURRENT.dbtmp`, sync,
    /// rename, sync the directory). Deletes nothing. The file counter starts
    /// above `state.next_file_number` and every manifest and table number
    /// in `dir`; the snapshot reserves [`FILE_NUMBERS_RESERVED_AHEAD`]
    /// numbers past it.
    ///
    /// # Errors
    /// - [`Error::InvalidArgument`] when `state`'s keyspaces break the rules
    ///   of [`RecoveredManifest::keyspaces`]; nothing is written.
    /// - [`Error::Io`] when a file operation fails; the old `CURRENT` then
    ///   still names the old manifest, or names the new one durably.
    pub fn create(
        fs: Arc<dyn Fs>,
        dir: &Path,
        state: RecoveredManifest,
        options: ManifestOptions,
    ) -> Result<VersionSet> {
        let keyspaces = state
            .keyspace_state()
            .map_err(|reason| Error::InvalidArgument(format!("the state's keyspaces: {reason}")))?;
        let names = fs
            .list_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let mut next_file_number = state.next_file_number.clamp(1, FILE_NUMBER_MAX + 1);
        for name in &names {
            if let Some(n) = parse_manifest_file_name(name).or_else(|| parse_table_file_name(name))
            {
                next_file_number = next_file_number.max(n.min(FILE_NUMBER_MAX) + 1);
            }
        }
        let number = next_file_number;
        next_file_number += 1;
        let horizon = next_file_number + FILE_NUMBERS_RESERVED_AHEAD;
        let snapshot = snapshot_edits(
            &keyspaces,
            horizon,
            state.last_seqno,
            state.log_number,
            &state.wal_segments,
            &state.unexplained_tables,
        );
        let log = start_manifest(fs.as_ref(), dir, number, &snapshot)?;
        let bytes_written = log.offset();
        Ok(VersionSet {
            dir: dir.to_path_buf(),
            options,
            next_file_number: AtomicU64::new(next_file_number),
            horizon: AtomicU64::new(horizon),
            manifest_number: AtomicU64::new(number),
            writer: Mutex::new(Writer {
                snapshot_end: log.offset(),
                manifest_number: number,
                poison: None,
                log,
            }),
            state: Mutex::new(State {
                live: keyspaces.versions().map(Arc::downgrade).collect(),
                keyspaces,
                last_seqno: state.last_seqno,
                log_number: state.log_number,
                wals: state.wal_segments,
                unexplained: state.unexplained_tables,
                removed: BTreeSet::new(),
                stats: ManifestStats {
                    bytes_written,
                    ..ManifestStats::default()
                },
            }),
            fs,
        })
    }

    /// Deletes every `MANIFEST-*` file but the live one, and a stray
    /// `CURRENT.dbtmp`: once `CURRENT` durably names the live manifest,
    /// which holds a snapshot of the whole state, the others are obsolete.
    /// A failed deletion is only logged.
    pub fn remove_obsolete_manifests(&self) {
        let live = self.manifest_number();
        let names = match self.fs.list_dir(&self.dir) {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "listing old manifests");
                return;
            }
        };
        for name in &names {
            let stale = parse_manifest_file_name(name).is_some_and(|n| n != live)
                || name == CURRENT_TEMP_FILE;
            if stale {
                remove_quietly(self.fs.as_ref(), &self.dir, name);
            }
        }
    }

    /// Whether `dir` holds a `CURRENT` file.
    ///
    /// # Errors
    /// [`Error::Io`] if the file system cannot tell.
    pub fn exists(fs: &dyn Fs, dir: &Path) -> Result<bool> {
        let path = dir.join(CURRENT_FILE);
        fs.exists(&path)
            .map_err(|e| Error::io(format!("looking for {}", path.display()), e))
    }

    /// The current version of the default keyspace.
    pub fn current(&self) -> Arc<Version> {
        Arc::clone(&lock(&self.state).keyspaces.default_keyspace().version)
    }

    /// The current version of keyspace `keyspace`; `None` if it was never
    /// created or was dropped.
    pub fn current_in(&self, keyspace: KeyspaceId) -> Option<Arc<Version>> {
        let state = lock(&self.state);
        state
            .keyspaces
            .get(keyspace)
            .map(|k| Arc::clone(&k.version))
    }

    /// Every live keyspace: the default one first, then by ascending id.
    pub fn keyspaces(&self) -> Vec<KeyspaceInfo> {
        let state = lock(&self.state);
        state
            .keyspaces
            .iter()
            .map(|(id, k)| KeyspaceInfo {
                id,
                name: k.name.clone(),
                log_number: k.log_number,
            })
            .collect()
    }

    /// Keyspace `keyspace`'s log number (WAL segments below it hold
    /// nothing of it that is not in its tables); `None` if it was never
    /// created or was dropped.
    pub fn keyspace_log_number(&self, keyspace: KeyspaceId) -> Option<u64> {
        lock(&self.state)
            .keyspaces
            .get(keyspace)
            .map(|k| k.log_number)
    }

    /// The keyspace id counter: the id the next
    /// [`VersionSet::create_keyspace`] takes. Ids below it were handed out
    /// (to live or dropped keyspaces) and are never handed out again.
    pub fn next_keyspace_id(&self) -> KeyspaceId {
        lock(&self.state).keyspaces.next_id()
    }

    /// Creates a keyspace named `name`, empty, whose log number is
    /// `log_number` (WAL segments below it hold nothing of it: the engine
    /// passes the segment its writes will start in), and returns its id:
    /// the next keyspace id, never one handed out before. The create edit
    /// (which records the id counter past the new id) is written and
    /// synced before the keyspace becomes visible; a crash keeps either the
    /// whole create or none of it.
    ///
    /// # Errors
    /// - [`Error::InvalidArgument`] when [`check_keyspace_name`] refuses
    ///   `name`, a live keyspace (the default one included) has that name,
    ///   or every id has been handed out. Nothing is written.
    /// - [`Error::Io`] as [`VersionSet::log_and_apply`].
    pub fn create_keyspace(&self, name: &str, log_number: u64) -> Result<KeyspaceId> {
        check_keyspace_name(name).map_err(Error::InvalidArgument)?;
        let mut writer = lock(&self.writer);
        if let Some(cause) = &writer.poison {
            return Err(poisoned(cause));
        }
        let (id, in_use) = {
            let state = lock(&self.state);
            (state.keyspaces.next_id(), state.keyspaces.id_of(name))
        };
        if let Some(other) = in_use {
            return Err(Error::InvalidArgument(format!(
                "keyspace name `{name}` is in use by keyspace {other}"
            )));
        }
        if id == KeyspaceId::MAX {
            return Err(Error::InvalidArgument(
                "every keyspace id has been handed out".to_string(),
            ));
        }
        let edit = VersionEdit {
            keyspace: id,
            keyspace_created: Some(name.to_string()),
            keyspace_log_number: Some(log_number),
            next_keyspace_id: Some(id + 1),
            ..VersionEdit::default()
        };
        match self.log_locked(&mut writer, edit, 0)? {
            Ok(_) => {
                tracing::info!(keyspace = id, name, log_number, "created a keyspace");
                Ok(id)
            }
            Err(refused) => Err(Error::InvalidArgument(refused.reason)),
        }
    }

    /// Drops keyspace `keyspace`: the drop edit is written and synced, then
    /// the keyspace is gone ([`VersionSet::current_in`] says `None`), its
    /// name is free, its id is never handed out again, and its tables are
    /// reported by [`VersionSet::take_obsolete_tables`] once no live
    /// version refers to them. A crash keeps either the whole drop or none
    /// of it.
    ///
    /// # Errors
    /// - [`Error::InvalidArgument`] for the default keyspace, which cannot
    ///   be dropped, and for a keyspace that does not exist. Nothing is
    ///   written.
    /// - [`Error::Io`] as [`VersionSet::log_and_apply`].
    pub fn drop_keyspace(&self, keyspace: KeyspaceId) -> Result<()> {
        if keyspace == DEFAULT_KEYSPACE {
            return Err(Error::InvalidArgument(
                "the default keyspace cannot be dropped".to_string(),
            ));
        }
        let mut writer = lock(&self.writer);
        if let Some(cause) = &writer.poison {
            return Err(poisoned(cause));
        }
        if lock(&self.state).keyspaces.get(keyspace).is_none() {
            return Err(Error::InvalidArgument(format!(
                "keyspace {keyspace} does not exist (never created, or dropped)"
            )));
        }
        let edit = VersionEdit {
            keyspace,
            keyspace_dropped: true,
            ..VersionEdit::default()
        };
        match self.log_locked(&mut writer, edit, 0)? {
            Ok(_) => {
                tracing::info!(keyspace, "dropped a keyspace");
                Ok(())
            }
            Err(refused) => Err(Error::InvalidArgument(refused.reason)),
        }
    }

    /// Allocates a file number. Tables, manifests and OPTIONS files share
    /// one counter; a number is never handed out twice (across reopens too,
    /// once an edit has recorded the counter, and for every numbered file
    /// found on disk).
    ///
    /// A number for a *table* must come from
    /// [`VersionSet::reserve_file_number`], which makes it durable first.
    pub fn new_file_number(&self) -> u64 {
        self.next_file_number.fetch_add(1, Ordering::AcqRel)
    }

    /// Makes sure every later [`VersionSet::new_file_number`] is above
    /// `number` (the engine calls it for every numbered file found on disk).
    /// Numbers above an internal maximum (2^62) are treated as that maximum.
    pub fn mark_file_number_used(&self, number: u64) {
        self.next_file_number
            .fetch_max(number.min(FILE_NUMBER_MAX) + 1, Ordering::AcqRel);
    }

    /// The number the next [`VersionSet::new_file_number`] would return.
    pub fn next_file_number(&self) -> u64 {
        self.next_file_number.load(Ordering::Acquire)
    }

    /// Allocates a file number that a synced edit has reserved: the
    /// manifest records a file counter above it before this returns, so a
    /// crash can never leave a file whose number the manifest does not
    /// cover. At open, a table numbered at or above the recovered counter
    /// therefore proves that edits were lost. Writes an edit once every
    /// [`FILE_NUMBERS_RESERVED_AHEAD`] numbers.
    ///
    /// # Errors
    /// As [`VersionSet::log_and_apply`] (the set is unusable after a failed
    /// write).
    pub fn reserve_file_number(&self) -> Result<u64> {
        let number = self.new_file_number();
        if number < self.horizon.load(Ordering::Acquire) {
            return Ok(number);
        }
        let reserve = number
            .saturating_add(1 + FILE_NUMBERS_RESERVED_AHEAD)
            .min(FILE_NUMBER_MAX + 1);
        match self.log(VersionEdit::default(), reserve)? {
            Ok(_) => Ok(number),
            Err(refused) => Err(Error::InvalidArgument(refused.reason)),
        }
    }

    /// The file counter the manifest durably records: every number below it
    /// may already name a file.
    pub fn file_number_horizon(&self) -> u64 {
        self.horizon.load(Ordering::Acquire)
    }

    /// The whole state as one consistent picture, as
    /// [`VersionSet::recover`] would read it back from the manifest now:
    /// every keyspace's version and log number, the counters and the
    /// tracked WAL segments. Holding it keeps its versions live, so their
    /// tables are not deleted ([`VersionSet::take_obsolete_tables`]):
    /// what a checkpoint copies from. `manifest_number` is the live
    /// manifest's; nothing is counted as replayed or dropped.
    pub fn state(&self) -> RecoveredManifest {
        let next_file_number = self.next_file_number.load(Ordering::Acquire);
        let state = lock(&self.state);
        let mut recovered = RecoveredManifest {
            next_file_number,
            last_seqno: state.last_seqno,
            log_number: state.log_number,
            wal_segments: state.wals.clone(),
            unexplained_tables: state.unexplained.clone(),
            tracks_wal_segments: true,
            manifest_number: self.manifest_number(),
            ..RecoveredManifest::default()
        };
        recovered.set_keyspaces(&state.keyspaces);
        recovered
    }

    /// The WAL segments the manifest tracks.
    pub fn wal_segments(&self) -> WalSegments {
        lock(&self.state).wals.clone()
    }

    /// Whether an earlier failed write made the set unusable (until
    /// [`VersionSet::recover_from_failure`]).
    pub fn is_poisoned(&self) -> bool {
        lock(&self.writer).poison.is_some()
    }

    /// Makes an unusable set usable again: starts a fresh manifest holding
    /// a snapshot of the in-memory state (which a failed call never
    /// changed), switches `CURRENT` to it and deletes the old one. The
    /// outcome of the failed edit no longer matters: the old manifest is
    /// not read again, and a failed fsync is never retried. A no-op when
    /// the set is usable.
    ///
    /// # Errors
    /// [`Error::Io`] if starting the manifest fails (the set stays
    /// unusable; call again later).
    pub fn recover_from_failure(&self) -> Result<()> {
        let mut writer = lock(&self.writer);
        if writer.poison.is_none() {
            return Ok(());
        }
        let base = self.snapshot_state();
        self.roll(&mut writer, &base)?;
        writer.poison = None;
        tracing::info!(
            manifest = writer.manifest_number,
            "the manifest is usable again after a failure"
        );
        Ok(())
    }

    /// The largest sequence number recorded by an edit.
    pub fn last_seqno(&self) -> SeqNo {
        lock(&self.state).last_seqno
    }

    /// The global log number: WAL segments numbered below this are no
    /// longer needed by any keyspace.
    pub fn log_number(&self) -> u64 {
        lock(&self.state).log_number
    }

    /// The live manifest's number (`MANIFEST-NNNNNN`).
    pub fn manifest_number(&self) -> u64 {
        self.manifest_number.load(Ordering::Acquire)
    }

    /// Validates `edit` against the current version of its keyspace
    /// ([`VersionEdit::keyspace`]), writes it to the manifest as one record,
    /// syncs, and only then installs and returns that keyspace's new
    /// version.
    ///
    /// The record always carries the file counter; `last_seqno`,
    /// `log_number` and `keyspace_log_number`, when set, are raised to at
    /// least their current values (they never decrease). An edit for the
    /// default keyspace that sets `log_number` without
    /// `keyspace_log_number` raises the default keyspace's log number to
    /// it too. When the manifest has grown past
    /// [`ManifestOptions::rewrite_bytes`], the set first rolls to a new one
    /// (snapshot edit, sync, `CURRENT` switch, old manifest deleted).
    /// Callable from several threads; calls are serialised.
    ///
    /// # Errors
    /// - [`Error::InvalidArgument`] when the edit does not apply: it names
    ///   a keyspace that does not exist (never created, or dropped), removes
    ///   a table that is not at that level, adds a number that is already
    ///   there (in any keyspace) or twice, names a level past the last,
    ///   holds an impossible table, or makes tables overlap in a level from
    ///   L1 on; or it creates or drops a keyspace (use
    ///   [`VersionSet::create_keyspace`] and [`VersionSet::drop_keyspace`]).
    ///   Nothing is written and the set stays usable.
    /// - [`Error::Io`] when a write or sync fails. The set is then unusable:
    ///   this and every later call return `Error::Io`; reopen it. The
    ///   in-memory current version is unchanged by a failed call.
    pub fn log_and_apply(&self, edit: VersionEdit) -> Result<Arc<Version>> {
        refuse_keyspace_changes(&edit)?;
        match self.log(edit, 0)? {
            Ok(version) => Ok(version),
            Err(refused) => Err(Error::InvalidArgument(refused.reason)),
        }
    }

    /// [`VersionSet::log_and_apply`] for an edit that a concurrent change
    /// may have made stale (a compaction's, computed against an older
    /// version): `Ok(Err(refused))` when it does not apply, with nothing
    /// written and the set still usable.
    ///
    /// # Errors
    /// As [`VersionSet::log_and_apply`], except that an edit that does not
    /// apply (its keyspace dropped meanwhile included) is `Ok(Err(_))`. An
    /// edit that creates or drops a keyspace is still
    /// [`Error::InvalidArgument`].
    pub fn try_log_and_apply(
        &self,
        edit: VersionEdit,
    ) -> Result<std::result::Result<Arc<Version>, EditRefused>> {
        refuse_keyspace_changes(&edit)?;
        self.log(edit, 0)
    }

    /// [`VersionSet::log_and_apply`], recording a file counter of at least
    /// `reserve`; `Ok(Err(_))` for an edit that does not apply.
    fn log(
        &self,
        edit: VersionEdit,
        reserve: u64,
    ) -> Result<std::result::Result<Arc<Version>, EditRefused>> {
        let mut writer = lock(&self.writer);
        if let Some(cause) = &writer.poison {
            return Err(poisoned(cause));
        }
        self.log_locked(&mut writer, edit, reserve)
    }

    /// [`VersionSet::log`] with the writer locked and not poisoned.
    fn log_locked(
        &self,
        writer: &mut Writer,
        edit: VersionEdit,
        reserve: u64,
    ) -> Result<std::result::Result<Arc<Version>, EditRefused>> {
        let base = self.snapshot_state();
        let refused = |reason: String| Ok(Err(EditRefused { reason }));
        // The record as written, counters raised: what a replay applies.
        let mut record = edit;
        record.last_seqno = record.last_seqno.map(|s| s.max(base.last_seqno));
        record.log_number = record.log_number.map(|n| n.max(base.log_number));
        if let Some(keyspace) = base.keyspaces.get(record.keyspace) {
            record.keyspace_log_number = record
                .keyspace_log_number
                .map(|n| n.max(keyspace.log_number));
        }
        let new_log_number = record.log_number.unwrap_or(base.log_number);
        let applied = match base.keyspaces.apply(&record, new_log_number) {
            Ok(applied) => applied,
            Err(reason) => return refused(reason),
        };
        let new_wals = match base.wals.apply(&record, new_log_number) {
            Ok(wals) => wals,
            Err(reason) => return refused(reason),
        };
        if let Err(e) = check_counters(&record) {
            return refused(e.to_string());
        }
        for (_, table) in &record.added {
            self.mark_file_number_used(table.number);
        }
        if let Some(next) = record.next_file_number {
            self.next_file_number.fetch_max(next, Ordering::AcqRel);
        }
        let threshold = self
            .options
            .rewrite_bytes
            .max(writer.snapshot_end.saturating_mul(2));
        if writer.log.offset() >= threshold {
            self.roll(writer, &base)?;
        }

        record.next_file_number = Some(self.counter_to_record().max(reserve));
        let start = writer.log.offset();
        let written = writer
            .log
            .add_record(&record.encode())
            .and_then(|()| writer.log.sync());
        if let Err(kevo_wal::Error::InvalidArgument(reason)) = written {
            // Too large a record: refused before anything was written.
            return Err(Error::InvalidArgument(reason));
        }
        if let Err(e) = written {
            let e = from_wal(e);
            writer.poison = Some(format!(
                "appending to {}: {e}",
                manifest_file_name(writer.manifest_number)
            ));
            return Err(e);
        }
        let bytes = writer.log.offset() - start;
        if let Some(next) = record.next_file_number {
            self.horizon.fetch_max(next, Ordering::AcqRel);
        }

        let moved: BTreeSet<u64> = record.added.iter().map(|(_, t)| t.number).collect();
        let Applied {
            keyspaces,
            version,
            installed,
            dropped_tables,
        } = applied;
        let mut state = lock(&self.state);
        if installed {
            state.live.retain(|v| v.strong_count() > 0);
            state.live.push(Arc::downgrade(&version));
        }
        state.keyspaces = keyspaces;
        if let Some(s) = record.last_seqno {
            state.last_seqno = s;
        }
        if let Some(n) = record.log_number {
            state.log_number = n;
        }
        state.wals = new_wals;
        state
            .unexplained
            .extend(record.unexplained_tables.iter().copied());
        let removed = record
            .removed
            .iter()
            .map(|&(_, n)| n)
            .filter(|n| !moved.contains(n));
        state.removed.extend(removed);
        state.removed.extend(dropped_tables);
        state.stats.edits += 1;
        state.stats.bytes_written += bytes;
        Ok(Ok(version))
    }

    /// The file counter an edit records: the counter, or the reservation
    /// if that is higher.
    fn counter_to_record(&self) -> u64 {
        self.next_file_number()
            .max(self.horizon.load(Ordering::Acquire))
    }

    /// Table numbers referenced by any version still alive: the current one
    /// or one a reader holds (feature `testing`: for tests that check what
    /// is deleted).
    #[cfg(any(test, feature = "testing"))]
    pub fn live_table_numbers(&self) -> BTreeSet<u64> {
        let mut state = lock(&self.state);
        live_numbers(&mut state)
    }

    /// Tables removed by an edit, or of a dropped keyspace, that no live
    /// version (of any keyspace) refers to any more. Each number is
    /// returned once; the caller deletes the files.
    ///
    /// Tables dropped before this open (files a crash left behind) are not
    /// reported: the engine's open finds them as `.sst` files no version
    /// names, below the reserved file counter.
    pub fn take_obsolete_tables(&self) -> Vec<u64> {
        let mut state = lock(&self.state);
        let live = live_numbers(&mut state);
        let obsolete: Vec<u64> = state
            .removed
            .iter()
            .copied()
            .filter(|n| !live.contains(n))
            .collect();
        for n in &obsolete {
            state.removed.remove(n);
        }
        obsolete
    }

    /// Counters since open.
    pub fn stats(&self) -> ManifestStats {
        let mut stats = lock(&self.state).stats.clone();
        stats.manifest_number = self.manifest_number();
        stats
    }

    fn snapshot_state(&self) -> Base {
        let state = lock(&self.state);
        Base {
            keyspaces: state.keyspaces.clone(),
            last_seqno: state.last_seqno,
            log_number: state.log_number,
            wals: state.wals.clone(),
        }
    }

    /// Moves to a new manifest holding a snapshot of `base`. Poisons the set
    /// on failure.
    fn roll(&self, writer: &mut Writer, base: &Base) -> Result<()> {
        let number = self.new_file_number();
        let unexplained = lock(&self.state).unexplained.clone();
        let snapshot = snapshot_edits(
            &base.keyspaces,
            self.counter_to_record(),
            base.last_seqno,
            base.log_number,
            &base.wals,
            &unexplained,
        );
        let log = match start_manifest(self.fs.as_ref(), &self.dir, number, &snapshot) {
            Ok(log) => log,
            Err(e) => {
                writer.poison = Some(format!("rolling to {}: {e}", manifest_file_name(number)));
                return Err(e);
            }
        };
        let old = writer.manifest_number;
        let bytes = log.offset();
        for next in snapshot.iter().filter_map(|edit| edit.next_file_number) {
            self.horizon.fetch_max(next, Ordering::AcqRel);
        }
        writer.snapshot_end = log.offset();
        writer.log = log;
        writer.manifest_number = number;
        self.manifest_number.store(number, Ordering::Release);
        {
            let mut state = lock(&self.state);
            state.stats.rewrites += 1;
            state.stats.bytes_written += bytes;
        }
        remove_quietly(self.fs.as_ref(), &self.dir, &manifest_file_name(old));
        tracing::debug!(old, new = number, "rolled the manifest");
        Ok(())
    }
}

/// Refuses counters that could not be read back: a last seqno past
/// [`SEQNO_MAX`] or a file counter past the maximum.
fn check_counters(edit: &VersionEdit) -> Result<()> {
    if let Some(seqno) = edit.last_seqno.filter(|&s| s > SEQNO_MAX) {
        return Err(Error::InvalidArgument(format!(
            "last seqno {seqno} exceeds the maximum {SEQNO_MAX}"
        )));
    }
    if let Some(next) = edit.next_file_number.filter(|&n| n > FILE_NUMBER_MAX + 1) {
        return Err(Error::InvalidArgument(format!(
            "next file number {next} exceeds the maximum {}",
            FILE_NUMBER_MAX + 1
        )));
    }
    Ok(())
}

/// Refuses an edit that creates or drops a keyspace: those go through
/// [`VersionSet::create_keyspace`] and [`VersionSet::drop_keyspace`], which
/// choose the id and check the name.
fn refuse_keyspace_changes(edit: &VersionEdit) -> Result<()> {
    if edit.keyspace_created.is_some() || edit.keyspace_dropped {
        return Err(Error::InvalidArgument(format!(
            "an edit creating or dropping keyspace {} goes through \
             VersionSet::create_keyspace or drop_keyspace",
            edit.keyspace
        )));
    }
    Ok(())
}

fn poisoned(cause: &str) -> Error {
    Error::io(
        format!("the manifest is unusable after an earlier failure ({cause}); reopen to recover"),
        io::Error::other("manifest poisoned"),
    )
}

fn live_numbers(state: &mut State) -> BTreeSet<u64> {
    state.live.retain(|v| v.strong_count() > 0);
    let mut numbers: BTreeSet<u64> = state
        .keyspaces
        .versions()
        .flat_map(|v| v.table_numbers())
        .collect();
    for version in state.live.iter().filter_map(Weak::upgrade) {
        numbers.extend(version.table_numbers());
    }
    numbers
}

/// The edits that recreate `keyspaces` and the counters from nothing: the
/// first records of every manifest. The first one holds the counters, the
/// WAL segments, the unexplained tables and the default keyspace; then one
/// create per other keyspace; the last one records the keyspace id counter.
fn snapshot_edits(
    keyspaces: &Keyspaces,
    next_file_number: u64,
    last_seqno: SeqNo,
    log_number: u64,
    wals: &WalSegments,
    unexplained_tables: &BTreeSet<u64>,
) -> Vec<VersionEdit> {
    let mut first = VersionEdit {
        next_file_number: Some(next_file_number),
        last_seqno: Some(last_seqno),
        log_number: Some(log_number),
        unexplained_tables: unexplained_tables.iter().copied().collect(),
        ..VersionEdit::default()
    };
    wals.fill_snapshot(&mut first);
    keyspaces.snapshot_edits(first)
}

/// Writes manifest `number` in `dir` holding the `snapshot` records, syncs
/// it and the directory, and points `CURRENT` at it. Returns the writer,
/// positioned after the snapshot.
fn start_manifest(
    fs: &dyn Fs,
    dir: &Path,
    number: u64,
    snapshot: &[VersionEdit],
) -> Result<LogWriter> {
    let name = manifest_file_name(number);
    let path = dir.join(&name);
    let file = fs
        .create(&path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let mut log = LogWriter::new(file, number, MANIFEST_MAGIC).map_err(from_wal)?;
    for edit in snapshot {
        log.add_record(&edit.encode()).map_err(from_wal)?;
    }
    log.sync().map_err(from_wal)?;
    sync_dir(fs, dir)?;
    set_current(fs, dir, &name)?;
    Ok(log)
}

/// Points `CURRENT` in `dir` at manifest `name` atomically: writes
/// `CURRENT.dbtmp`, syncs it, renames it over `CURRENT`, syncs the
/// directory.
fn set_current(fs: &dyn Fs, dir: &Path, name: &str) -> Result<()> {
    let temp = dir.join(CURRENT_TEMP_FILE);
    let current = dir.join(CURRENT_FILE);
    let context = |what: &str, path: &Path| format!("{what} {}", path.display());
    let file = fs
        .create(&temp)
        .map_err(|e| Error::io(context("creating", &temp), e))?;
    file.write_all_at(format!("{name}\n").as_bytes(), 0)
        .map_err(|e| Error::io(context("writing", &temp), e))?;
    file.sync_all()
        .map_err(|e| Error::io(context("syncing", &temp), e))?;
    fs.rename(&temp, &current)
        .map_err(|e| Error::io(context("renaming into", &current), e))?;
    sync_dir(fs, dir)
}

fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))
}

/// Deletes a file that is no longer needed; a failure is only logged (the
/// next open deletes it again).
fn remove_quietly(fs: &dyn Fs, dir: &Path, name: &str) {
    let path = dir.join(name);
    if let Err(e) = fs.remove_file(&path) {
        tracing::warn!(file = %path.display(), error = %e, "could not delete an old manifest file");
    }
}

/// Reads `CURRENT` and replays the manifest it names.
fn replay(fs: &dyn Fs, dir: &Path) -> Result<RecoveredManifest> {
    let current_path = dir.join(CURRENT_FILE);
    let (name, number) = read_current(fs, &current_path)?;
    let path = dir.join(&name);
    let file = match fs.open_read(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::corruption(
                &current_path,
                0,
                format!("names {name}, which does not exist"),
            ));
        }
        Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
    };
    replay_file(file, &path, number)
}

impl VersionSet {
    /// Replays the manifest file at `path` (named `MANIFEST-NNNNNN`),
    /// whether or not `CURRENT` names it, changing nothing: for tools and
    /// repair, which look at every manifest in a directory.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the file name is not a manifest's;
    /// otherwise as [`VersionSet::recover`].
    pub fn read_manifest_file(fs: &dyn Fs, path: &Path) -> Result<RecoveredManifest> {
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_manifest_file_name)
            .filter(|&n| n <= MANIFEST_NUMBER_MAX)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{} is not a manifest file name", path.display()))
            })?;
        let file = fs
            .open_read(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        replay_file(file, path, number)
    }
}

/// Replays the records of manifest `number`, read from `file` at `path`.
fn replay_file(
    file: Arc<dyn kevo_core::File>,
    path: &Path,
    number: u64,
) -> Result<RecoveredManifest> {
    let path = path.to_path_buf();
    let mut reader = LogReader::open(file, &path, number, MANIFEST_MAGIC).map_err(from_wal)?;
    let mut recovered = RecoveredManifest {
        manifest_number: number,
        ..RecoveredManifest::default()
    };
    let mut keyspaces = Keyspaces::default();
    while let Some(record) = reader.read_record().map_err(from_wal)? {
        let bad = |reason: String| Error::corruption(&path, record.offset, reason);
        let edit = VersionEdit::decode(&record.bytes)
            .map_err(|reason| bad(format!("undecodable version edit: {reason}")))?;
        if recovered.edits_replayed == 0 {
            // The snapshot's format says whether WAL segments are tracked.
            recovered.tracks_wal_segments = record
                .bytes
                .first()
                .is_some_and(|&format| format > EDIT_FORMAT_VERSION_MIN);
        }
        let log_number = recovered.log_number.max(edit.log_number.unwrap_or(0));
        keyspaces = keyspaces
            .apply(&edit, log_number)
            .map_err(|reason| bad(format!("version edit does not apply: {reason}")))?
            .keyspaces;
        for (_, table) in &edit.added {
            // Checked against FILE_NUMBER_MAX by `apply`.
            recovered.next_file_number = recovered.next_file_number.max(table.number + 1);
        }
        let max = |slot: &mut u64, value: Option<u64>| *slot = (*slot).max(value.unwrap_or(0));
        // An absurd counter is clamped so that allocating never overflows.
        let next = edit.next_file_number.map(|n| n.min(FILE_NUMBER_MAX + 1));
        max(&mut recovered.next_file_number, next);
        max(&mut recovered.last_seqno, edit.last_seqno);
        recovered.log_number = log_number;
        recovered.wal_segments = recovered
            .wal_segments
            .apply(&edit, recovered.log_number)
            .map_err(|reason| bad(format!("version edit does not apply: {reason}")))?;
        recovered
            .unexplained_tables
            .extend(edit.unexplained_tables.iter().copied());
        recovered.edits_replayed += 1;
    }
    if let Some(LogEnd::TornTail { bytes_dropped, .. }) = reader.end() {
        recovered.tail_bytes_dropped = *bytes_dropped;
    }
    if recovered.edits_replayed == 0 {
        return Err(Error::corruption(
            &path,
            0,
            "the manifest holds no version edit",
        ));
    }
    // The manifest's own number was handed out by the counter too (checked
    // against MANIFEST_NUMBER_MAX by `read_current`).
    recovered.next_file_number = recovered.next_file_number.max(number + 1);
    recovered.set_keyspaces(&keyspaces);
    Ok(recovered)
}

/// The manifest name and number `CURRENT` holds.
fn read_current(fs: &dyn Fs, path: &Path) -> Result<(String, u64)> {
    let io_error = |e| Error::io(format!("reading {}", path.display()), e);
    let file = fs.open_read(path).map_err(io_error)?;
    let len = file.len().map_err(io_error)?;
    if len > CURRENT_BYTES_MAX {
        return Err(Error::corruption(
            path,
            0,
            format!("{len} bytes is too long for CURRENT"),
        ));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0).map_err(io_error)?;
    let parsed = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.strip_suffix('\n'))
        .and_then(|name| Some((name.to_string(), parse_manifest_file_name(name)?)))
        .filter(|&(_, number)| number <= MANIFEST_NUMBER_MAX);
    parsed.ok_or_else(|| {
        Error::corruption(
            path,
            0,
            format!(
                "does not name a manifest: {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        )
    })
}
