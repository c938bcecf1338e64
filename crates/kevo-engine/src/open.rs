//! Opening a database: every check first, then the changes, as named
//! steps that end by returning the [`Engine`].
//!
//! Reading and checking (nothing on disk changes; a failure here leaves the
//! directory byte for byte as it was):
//! 1. [`lock_directory`]: refuse a directory that holds data but no
//!    `CURRENT`, before even taking `LOCK`
//!    ([`recover::refuse_missing_current`]); take `LOCK` (a second opener
//!    gets [`Error::Busy`]);
//! 2. [`read_and_check`]: read the manifest and check the directory against
//!    it ([`recover::read_manifest`], [`recover::check`]): tables, WAL
//!    segments, file numbers;
//! 3. [`replay_wal`]: replay the WAL segments the checks name into a
//!    memtable, checking that sequence numbers run on without a gap from
//!    the manifest's last seqno ([`SeqnoCheck`]).
//!
//! Changing (each step leaves a state the next open accepts, whatever
//! crash interrupts it):
//! 4. [`start_manifest`]: make the replayed records durable (sync the last
//!    segment); when the WAL cannot stay live (a format 1 manifest never
//!    recorded it; a `SkipCorrupted` recovery may have skipped damage in
//!    it), write the memtable to an L0 table instead and move the log
//!    number past it. Then start a fresh manifest holding the state, the
//!    replayed segments sealed at the end of their records, and switch
//!    `CURRENT` to it;
//! 5. [`start_wal`]: delete obsolete WAL segments; finish the WAL: trim a
//!    torn tail and start a new segment, recorded in the manifest (and
//!    every later one, through [`SegmentTracker`]);
//! 6. [`tidy`]: delete what the checks found obsolete (tables no version
//!    names below the file counter, old manifests, `CURRENT.dbtmp`), keep
//!    the newest earlier `OPTIONS` file, write `OPTIONS-NNNNNN`;
//! 7. [`assemble`]: build the components over the recovered state.
//!
//! A read-only open ([`open_read_only`]) runs the reading steps only, and
//! changes nothing on disk: step 1 refuses a directory that holds no
//! database instead of creating one, and takes `LOCK` shared
//! ([`lock_directory_shared`]; a directory without `LOCK` is opened
//! without a lock, since creating it would be a change); steps 2 and 3 read
//! and check as above, the WAL replayed by a bare [`Replay`] (no sync, a
//! torn tail left where it is and skipped in memory). Then [`assemble`]
//! builds an engine over what they read, with no WAL and no version set.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use kevo_core::{DEFAULT_KEYSPACE, DEFAULT_KEYSPACE_NAME, FileLock, Fs, KeyspaceId, SeqNo};
use kevo_manifest::{
    ManifestOptions, RecoveredManifest, Version, VersionEdit, VersionSet, manifest_file_name,
    table_file_name,
};
use kevo_memtable::MemTable;
use kevo_wal::{
    Recovery, RecoveryMode, Replay, ReplayReport, ReplayedBatch, SegmentListener, Wal, WalOptions,
    segment_file_name,
};

use crate::commit::CommitPipeline;
use crate::engine::{Engine, Manifest};
use crate::error::{BusyReason, Error, Result, from_wal};
use crate::files::LOCK_FILE;
use crate::files::OPTIONS_FILE_PREFIX;
use crate::flush::write_memtable;
use crate::keyspace::{KeyspaceCore, Keyspaces};
use crate::lifecycle::Lifecycle;
use crate::options::Options;
use crate::read::Visibility;
use crate::recover::{self, Checked, Inventory};
use crate::retention::{WalHold, WalStarts};
use crate::schedule::Schedule;
use crate::stats::Counters;
use crate::tables::{TableCache, table_options};

/// Opens the database in `dir` (see the module documentation).
pub(crate) fn open(fs: Arc<dyn Fs>, dir: &Path, options: Options) -> Result<Engine> {
    options.validate()?;
    let options = options.with_budget_applied();
    let started = Instant::now();
    let span = tracing::info_span!("kevo.open", dir = %dir.display());
    let _entered = span.enter();
    let (lock_file, inventory) = lock_directory(&fs, dir, &options)?;
    let found = read_and_check(&fs, dir, &inventory, &options)?;
    let found_created = found.created;
    let replayed = replay_wal(&fs, dir, &options, found)?;
    // Every check passed: from here on, files change.
    let durable = start_manifest(&fs, dir, &options, &inventory, &replayed)?;
    let Replayed {
        found,
        replay: recovery,
        report,
        mems,
        ..
    } = replayed;
    let wal = start_wal(&fs, dir, recovery, &found, &report, &durable)?;
    let unexplained_files = tidy(&fs, dir, &inventory, &found.checked, &durable, &options)?;
    let manifest_number = durable.versions.manifest_number();
    // The live WAL's first segment follows the last seqno; the replayed
    // writes (unless a recovery flush put them in a table) start in the
    // recovered log number's segment, after the manifest's last seqno.
    let live_segment = wal.current_segment();
    let mut wal_starts = vec![(live_segment, durable.last_seqno)];
    let replayed_from = found.manifest.log_number;
    // After a recovery flush the memtables' writes are in tables.
    let mems = if durable.flushed_replayed {
        BTreeMap::new()
    } else {
        mems
    };
    if mems.values().any(|m| !m.is_empty()) {
        wal_starts.push((replayed_from, found.manifest.last_seqno));
    }
    let versions = Arc::clone(&durable.versions);
    let keyspaces = recovered_spaces(
        &found.manifest,
        mems,
        |id| versions.current_in(id),
        replayed_from,
        live_segment,
    );
    let recovered = Recovered {
        lock_file: Some(lock_file),
        wal: Some(wal),
        manifest: Manifest::Live(durable.versions),
        keyspaces,
        wal_starts,
        last_seqno: durable.last_seqno,
        wal_tail_bytes_dropped: report.tail_bytes_dropped,
        unexplained_files,
        life: Lifecycle::default(),
    };
    let engine = assemble(fs, dir, options, recovered);
    let version = engine.keyspaces.default().read.version();
    tracing::info!(
        tables = version.table_count(),
        bytes = version.total_bytes(),
        last_seqno = engine.visibility.visible(),
        created = found_created,
        manifest = manifest_file_name(manifest_number),
        ms = started.elapsed().as_millis() as u64,
        "opened"
    );
    Ok(engine)
}

/// Opens the database in `dir` read-only: the reading steps, then
/// [`assemble`] over what they read (see the module documentation).
/// Nothing on disk changes, whatever happens.
pub(crate) fn open_read_only(fs: Arc<dyn Fs>, dir: &Path, options: Options) -> Result<Engine> {
    options.validate()?;
    let options = options.with_budget_applied();
    let started = Instant::now();
    let span = tracing::info_span!("kevo.open_read_only", dir = %dir.display());
    let _entered = span.enter();
    let (lock_file, inventory) = lock_directory_shared(&fs, dir, &options)?;
    let found = read_and_check(&fs, dir, &inventory, &options)?;
    if found.created {
        // `CURRENT` went away after step 1 looked.
        return Err(not_a_database(dir));
    }
    let replay = Replay::with_plan(
        fs.clone(),
        dir,
        options.recovery_mode,
        found.checked.plan.clone(),
    );
    let Replayed {
        found,
        report,
        mems,
        last_seqno,
        ..
    } = replay_batches(&fs, dir, &options, found, replay, Replay::report)?;
    let manifest = found.manifest;
    let cause = Arc::new(Error::OpenedReadOnly {
        path: dir.to_path_buf(),
    });
    let recovered = Recovered {
        lock_file,
        wal: None,
        // No WAL: nothing is written, so no segment matters.
        keyspaces: recovered_spaces(
            &manifest,
            mems,
            |id| {
                if id == DEFAULT_KEYSPACE {
                    Some(manifest.version.clone())
                } else {
                    manifest.keyspaces.get(&id).map(|k| k.version.clone())
                }
            },
            0,
            0,
        ),
        manifest: Manifest::ReadOnly {
            number: manifest.manifest_number,
        },
        wal_starts: Vec::new(),
        // A format 1 manifest may record a seqno past the WAL's last.
        last_seqno: last_seqno.unwrap_or(0).max(manifest.last_seqno),
        wal_tail_bytes_dropped: report.tail_bytes_dropped,
        unexplained_files: found
            .checked
            .unexplained
            .iter()
            .map(|&n| table_file_name(n))
            .collect(),
        life: Lifecycle::opened_read_only(cause),
    };
    let engine = assemble(fs, dir, options, recovered);
    let version = engine.keyspaces.default().read.version();
    tracing::info!(
        tables = version.table_count(),
        bytes = version.total_bytes(),
        last_seqno = engine.visibility.visible(),
        manifest = manifest_file_name(manifest.manifest_number),
        wal_tail_bytes_ignored = report.tail_bytes_dropped,
        ms = started.elapsed().as_millis() as u64,
        "opened read-only"
    );
    Ok(engine)
}

/// Step 1: refuse what is not ours to create, then take `LOCK`. Returns
/// the lock and what the directory holds under it.
fn lock_directory(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    options: &Options,
) -> Result<(Box<dyn FileLock>, Inventory)> {
    let exists = fs
        .exists(dir)
        .map_err(|e| Error::io(format!("looking for {}", dir.display()), e))?;
    if exists {
        let inventory = Inventory::of(fs.as_ref(), dir)?;
        recover::refuse_missing_current(fs, dir, &inventory)?;
        check_exists_options(dir, inventory.has_current, options)?;
    } else {
        check_exists_options(dir, false, options)?;
        fs.create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let lock_file = lock_dir(fs.as_ref(), dir)?;
    let inventory = Inventory::of(fs.as_ref(), dir)?;
    Ok((lock_file, inventory))
}

/// Step 1 of a read-only open: refuse a directory that holds no database
/// (creating nothing), then take `LOCK` shared, if there is one. Returns
/// the lock and what the directory holds under it.
fn lock_directory_shared(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    options: &Options,
) -> Result<(Option<Box<dyn FileLock>>, Inventory)> {
    let exists = fs
        .exists(dir)
        .map_err(|e| Error::io(format!("looking for {}", dir.display()), e))?;
    if !exists {
        return Err(not_a_database(dir));
    }
    let inventory = Inventory::of(fs.as_ref(), dir)?;
    recover::refuse_missing_current(fs, dir, &inventory)?;
    if !inventory.has_current {
        return Err(not_a_database(dir));
    }
    check_exists_options(dir, true, options)?;
    let lock_file = lock_dir_shared(fs.as_ref(), dir)?;
    let inventory = Inventory::of(fs.as_ref(), dir)?;
    Ok((lock_file, inventory))
}

/// What a read-only open says of a directory that holds no database.
fn not_a_database(dir: &Path) -> Error {
    Error::InvalidArgument(format!(
        "no database in {} (no CURRENT file): a read-only open creates nothing",
        dir.display()
    ))
}

/// What the manifest and the checks found.
struct Found {
    manifest: RecoveredManifest,
    checked: Checked,
    /// No manifest: the database is new.
    created: bool,
}

/// Step 2: read the manifest and check the directory against it.
fn read_and_check(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    inventory: &Inventory,
    options: &Options,
) -> Result<Found> {
    let recovered = recover::read_manifest(fs, dir, inventory)?;
    check_exists_options(dir, recovered.is_some(), options)?;
    let created = recovered.is_none();
    let manifest = recovered.unwrap_or_default();
    let checked = if created {
        Checked::default()
    } else {
        recover::check(fs, dir, inventory, &manifest, options.recovery_mode)?
    };
    Ok(Found {
        manifest,
        checked,
        created,
    })
}

/// What the WAL replay produced.
struct Replayed<R> {
    found: Found,
    /// The replay: a writable open finishes it into the live WAL.
    replay: R,
    report: ReplayReport,
    /// Per keyspace, its replayed writes not in a table.
    mems: BTreeMap<KeyspaceId, Arc<MemTable>>,
    /// The last seqno replayed, if any.
    last_seqno: Option<SeqNo>,
}

/// Step 3: replay the WAL into a fresh memtable, checking its seqnos.
fn replay_wal(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    options: &Options,
    found: Found,
) -> Result<Replayed<Recovery>> {
    let recovery = Wal::open_with_plan(
        fs.clone(),
        dir,
        wal_options(options),
        Some(found.checked.plan.clone()),
    )
    .map_err(|e| from_wal(dir, e))?;
    replay_batches(fs, dir, options, found, recovery, Recovery::report)
}

/// Step 3's body, for either open: drains `replay` into a fresh memtable,
/// checking its seqnos; `report` reads what the replay found.
fn replay_batches<R>(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    options: &Options,
    found: Found,
    mut replay: R,
    report: fn(&R) -> &ReplayReport,
) -> Result<Replayed<R>>
where
    R: Iterator<Item = kevo_wal::Result<ReplayedBatch>>,
{
    let started = Instant::now();
    let span = tracing::info_span!("kevo.recovery", log_number = found.manifest.log_number);
    let _entered = span.enter();
    let mut mems: BTreeMap<KeyspaceId, Arc<MemTable>> = BTreeMap::new();
    let mut seqnos = SeqnoCheck::new(&found.manifest, options.recovery_mode);
    let (mut entries, mut skipped) = (0u64, 0u64);
    for replayed in replay.by_ref() {
        let replayed = replayed.map_err(|e| from_wal(dir, e))?;
        seqnos.check(dir, &replayed)?;
        let first = replayed.batch.seqno();
        for (i, entry) in replayed.batch.iter().enumerate() {
            let Some(log_number) =
                keyspace_log_number(dir, &found.manifest, &replayed, entry.keyspace)?
            else {
                skipped += 1;
                continue;
            };
            // A segment below the keyspace's log number holds nothing of
            // it that is not in its tables.
            if replayed.segment < log_number {
                skipped += 1;
                continue;
            }
            let mem = mems
                .entry(entry.keyspace)
                .or_insert_with(|| Arc::new(MemTable::new()));
            let seqno = first + i as u64;
            match entry.kind.value_kind() {
                Some(kind) => mem.insert(entry.key, seqno, kind, entry.value),
                None => mem.delete_range(entry.key, entry.value, seqno),
            }
            entries += 1;
        }
    }
    let report = report(&replay).clone();
    let mut found = found;
    recover::explain_legacy_tables(fs.as_ref(), dir, &mut found.checked, &seqnos.covered);
    tracing::info!(
        segments = report.segments.len(),
        batches = report.batches,
        entries,
        skipped,
        tail_bytes_dropped = report.tail_bytes_dropped,
        skipped = report.skipped.len(),
        ms = started.elapsed().as_millis() as u64,
        "replayed the WAL"
    );
    Ok(Replayed {
        found,
        replay,
        report,
        mems,
        last_seqno: seqnos.last,
    })
}

/// The log number of `keyspace` for an entry `replayed` holds: `None` for
/// a keyspace that was dropped (its entries are skipped).
///
/// # Errors
/// [`Error::Corruption`] for a keyspace the manifest never created.
fn keyspace_log_number(
    dir: &Path,
    manifest: &RecoveredManifest,
    replayed: &ReplayedBatch,
    keyspace: KeyspaceId,
) -> Result<Option<u64>> {
    if keyspace == DEFAULT_KEYSPACE {
        return Ok(Some(manifest.default_log_number));
    }
    if let Some(k) = manifest.keyspaces.get(&keyspace) {
        return Ok(Some(k.log_number));
    }
    if keyspace < manifest.next_keyspace_id {
        return Ok(None);
    }
    Err(Error::Corruption {
        file: dir.join(segment_file_name(replayed.segment)),
        offset: replayed.offset,
        reason: format!(
            "a write to keyspace {keyspace}, which the manifest never created (ids below {} were handed out)",
            manifest.next_keyspace_id
        ),
    })
}

/// The state made durable by [`start_manifest`].
struct Durable {
    versions: Arc<VersionSet>,
    last_seqno: SeqNo,
    /// The replayed writes went to a table (the memtable starts empty and
    /// the replayed segments are obsolete).
    flushed_replayed: bool,
    /// The first segment number the live WAL may use.
    first_segment: u64,
}

/// Step 4: make the replayed writes durable (synced in place, or written
/// to a table) and start a fresh manifest holding the state.
fn start_manifest(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    options: &Options,
    inventory: &Inventory,
    replayed: &Replayed<Recovery>,
) -> Result<Durable> {
    let Found {
        manifest, checked, ..
    } = &replayed.found;
    let report = &replayed.report;
    let mut state = manifest.clone();
    state.unexplained_tables = checked.unexplained.iter().copied().collect();
    state.next_file_number = state
        .next_file_number
        .max(inventory.max_file_number().saturating_add(1));
    // The newest segment that stays: the segments the checks dropped held
    // nothing, and numbers follow each other without a gap.
    let newest_segment = checked.plan.segments.last().copied().unwrap_or(0);
    // The replayed segments cannot stay live when a format 1 manifest
    // never recorded them, or when a lenient recovery skipped damage in
    // them (or whole segments): their writes go to a table, and the log
    // number moves past them.
    let lenient = options.recovery_mode == RecoveryMode::SkipCorrupted;
    // Nor need they stay when they held nothing to replay (every write
    // flushed before the last close, or none made): kept, each open would
    // leave its live segment and spare behind for good.
    let nothing_replayed =
        !report.segments.is_empty() && replayed.mems.values().all(|m| m.is_empty());
    let flushed_replayed = (lenient && !report.segments.is_empty())
        || (!manifest.tracks_wal_segments && replayed.mems.values().any(|m| !m.is_empty()))
        || nothing_replayed;
    let mut last_seqno = replayed.last_seqno.unwrap_or(manifest.last_seqno);
    state.wal_segments = Default::default();
    if flushed_replayed {
        let next = AtomicU64::new(state.next_file_number);
        let new_number = || Ok(next.fetch_add(1, Ordering::Relaxed));
        let log_number = newest_segment + 1;
        // One edit per keyspace: the default one's also moves the log
        // number and records the seqno, even with nothing to write.
        let mut keyspaces: Vec<KeyspaceId> = replayed.mems.keys().copied().collect();
        if !keyspaces.contains(&DEFAULT_KEYSPACE) {
            keyspaces.insert(0, DEFAULT_KEYSPACE);
        }
        for keyspace in keyspaces {
            let mut edit = VersionEdit {
                keyspace,
                keyspace_log_number: Some(log_number),
                last_seqno: Some(last_seqno),
                log_number: Some(log_number),
                ..VersionEdit::default()
            };
            if let Some(mem) = replayed.mems.get(&keyspace) {
                let table = write_memtable(
                    fs.as_ref(),
                    dir,
                    table_options(options),
                    mem,
                    &new_number,
                    &[],
                )?;
                if let Some(table) = table {
                    tracing::info!(
                        keyspace,
                        table = table.number,
                        entries = table.entries,
                        "wrote the replayed WAL to a table"
                    );
                    edit.added.push((0, table));
                    edit.next_file_number = Some(next.load(Ordering::Relaxed));
                }
            }
            state.apply_edit(&edit).map_err(|reason| Error::Internal {
                reason: format!("the recovered state refused the replayed WAL's table: {reason}"),
            })?;
        }
        // Exactly the writes replayed, even where a format 1 manifest
        // recorded a later seqno that the WAL lost.
        state.last_seqno = last_seqno;
    } else {
        replayed
            .replay
            .sync_replayed()
            .map_err(|e| from_wal(dir, e))?;
        for &(segment, end) in &report.segment_ends {
            state.wal_segments.insert(segment, Some(end));
        }
        // Cut to their headers by `sync_replayed`: tracked, sealed empty,
        // so that the tracked segments still follow each other.
        for &segment in &report.segments_dropped {
            state
                .wal_segments
                .insert(segment, Some(kevo_wal::SEGMENT_HEADER_BYTES as u64));
        }
    }
    last_seqno = last_seqno.max(state.last_seqno);
    let manifest_options = ManifestOptions {
        rewrite_bytes: options.manifest_rewrite_bytes,
        create_if_missing: options.create_if_missing,
    };
    let first_segment = state.log_number.max(newest_segment + 1);
    let versions = Arc::new(VersionSet::create(
        fs.clone(),
        dir,
        state,
        manifest_options,
    )?);
    Ok(Durable {
        versions,
        last_seqno,
        flushed_replayed,
        first_segment,
    })
}

/// Step 5: delete the obsolete segments, then finish the replay into the
/// live WAL, whose segments are recorded in the manifest from now on.
fn start_wal(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    recovery: Recovery,
    found: &Found,
    report: &ReplayReport,
    durable: &Durable,
) -> Result<Wal> {
    let mut obsolete = found.checked.obsolete_segments.clone();
    if durable.flushed_replayed {
        obsolete.extend(report.segments.iter().copied());
        obsolete.extend(report.segments_dropped.iter().copied());
    }
    for segment in &obsolete {
        remove(fs.as_ref(), &dir.join(segment_file_name(*segment)))?;
    }
    let tracker: Arc<dyn SegmentListener> = Arc::new(SegmentTracker {
        versions: durable.versions.clone(),
    });
    let (wal, _) = recovery
        .finish_with(Some(tracker), durable.first_segment)
        .map_err(|e| from_wal(dir, e))?;
    Ok(wal)
}

/// Step 6: delete what the checks proved obsolete, keep the newest earlier
/// `OPTIONS` file, write `OPTIONS-NNNNNN`. Returns the tables left in place
/// because the manifest cannot explain them.
fn tidy(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    inventory: &Inventory,
    checked: &Checked,
    durable: &Durable,
    options: &Options,
) -> Result<Vec<String>> {
    for number in &checked.obsolete_tables {
        tracing::info!(
            table = number,
            "deleting a table no version names (below the file counter)"
        );
        remove(fs.as_ref(), &dir.join(table_file_name(*number)))?;
    }
    durable.versions.remove_obsolete_manifests();
    // Written by kevo before the database's `LOCK` became the only lock
    // file; no one holds it now that we hold `LOCK`.
    remove(fs.as_ref(), &dir.join(kevo_wal::WAL_LOCK_FILE))?;
    let unexplained: Vec<String> = checked
        .unexplained
        .iter()
        .map(|&n| table_file_name(n))
        .collect();
    for name in &unexplained {
        tracing::warn!(
            file = %dir.join(name).display(),
            "no version names this table and the manifest cannot explain it: it is left in place"
        );
    }
    let options_files: Vec<u64> = inventory.options_files.iter().copied().collect();
    if options_files.len() > 1 {
        for number in &options_files[..options_files.len() - 1] {
            remove(
                fs.as_ref(),
                &dir.join(format!("{OPTIONS_FILE_PREFIX}{number:06}")),
            )?;
        }
    }
    let number = durable.versions.new_file_number();
    write_options_file(fs.as_ref(), dir, number, options)?;
    Ok(unexplained)
}

/// What the steps before [`assemble`] hand it.
struct Recovered {
    /// `None` for a read-only open of a directory without `LOCK`.
    lock_file: Option<Box<dyn FileLock>>,
    /// `None` for a read-only open.
    wal: Option<Wal>,
    manifest: Manifest,
    /// Every keyspace, the default first.
    keyspaces: Vec<RecoveredSpace>,
    /// The segments whose first seqno is known: (segment, last seqno
    /// before it); see `retention`.
    wal_starts: Vec<(u64, SeqNo)>,
    /// The last seqno written: every write up to it is in a keyspace's
    /// version or memtable.
    last_seqno: SeqNo,
    wal_tail_bytes_dropped: u64,
    unexplained_files: Vec<String>,
    /// Writable, or read-only from the start.
    life: Lifecycle,
}

/// One keyspace as open found it.
struct RecoveredSpace {
    id: KeyspaceId,
    name: String,
    /// The installed version.
    version: Arc<Version>,
    /// The replayed writes not in a table.
    mem: Arc<MemTable>,
    /// The WAL segment the writes of `mem` start in.
    first_log: u64,
}

/// The keyspaces of `manifest` (the default first), each with its
/// replayed memtable from `mems` (an empty one where none is given) and
/// the version `version_of` gives; a non-empty memtable's writes start in
/// `replayed_from`, an empty one's in `live_segment`.
fn recovered_spaces(
    manifest: &RecoveredManifest,
    mut mems: BTreeMap<KeyspaceId, Arc<MemTable>>,
    version_of: impl Fn(KeyspaceId) -> Option<Arc<Version>>,
    replayed_from: u64,
    live_segment: u64,
) -> Vec<RecoveredSpace> {
    let names = std::iter::once((DEFAULT_KEYSPACE, DEFAULT_KEYSPACE_NAME.to_string())).chain(
        manifest
            .keyspaces
            .iter()
            .map(|(id, k)| (*id, k.name.clone())),
    );
    names
        .map(|(id, name)| {
            let mem = mems.remove(&id).filter(|m| !m.is_empty());
            let first_log = if mem.is_some() {
                replayed_from
            } else {
                live_segment
            };
            RecoveredSpace {
                id,
                name,
                version: version_of(id).unwrap_or_default(),
                mem: mem.unwrap_or_else(|| Arc::new(MemTable::new())),
                first_log,
            }
        })
        .collect()
}

/// Step 7: the components over the recovered state.
fn assemble(fs: Arc<dyn Fs>, dir: &Path, options: Options, recovered: Recovered) -> Engine {
    let Recovered {
        lock_file,
        wal,
        manifest,
        keyspaces,
        wal_starts,
        last_seqno,
        wal_tail_bytes_dropped,
        unexplained_files,
        life,
    } = recovered;
    let block_cache = (options.block_cache_bytes > 0)
        .then(|| Arc::new(kevo_sstable::LruBlockCache::new(options.block_cache_bytes)));
    let budget = (options.memory_budget_bytes > 0).then_some(options.block_cache_bytes);
    let tables = Arc::new(TableCache::new(
        fs.clone(),
        dir.to_path_buf(),
        block_cache,
        options.table_cache_tables,
        budget,
    ));
    // A keyspace found at open takes the database's options until
    // `Db::keyspace` gives it its own.
    let mut cores = keyspaces
        .into_iter()
        .map(|k| KeyspaceCore::new(k.id, k.name, options.clone(), k.mem, k.first_log, k.version));
    let default = cores.next().unwrap_or_else(|| {
        KeyspaceCore::new(
            DEFAULT_KEYSPACE,
            DEFAULT_KEYSPACE_NAME.to_string(),
            options.clone(),
            Arc::new(MemTable::new()),
            0,
            Arc::new(Version::default()),
        )
    });
    let others: Vec<KeyspaceCore> = cores.collect();
    Engine {
        dir: dir.to_path_buf(),
        fs,
        life,
        manifest,
        wal: RwLock::new(wal),
        commit: CommitPipeline::new(last_seqno),
        keyspaces: Keyspaces::new(default, others),
        next_imm_id: AtomicU64::new(1),
        wal_starts: WalStarts::new(wal_starts),
        wal_bytes: AtomicU64::new(0),
        next_wal_check: AtomicU64::new(0),
        write_buffer_bytes: AtomicU64::new(0),
        group_keyspaces: Mutex::new(Vec::new()),
        visibility: Visibility::new(last_seqno),
        jobs: Schedule::default(),
        tables,
        counters: Counters::new(wal_tail_bytes_dropped),
        tracker: Mutex::new(kevo_txn::ConflictTracker::new(kevo_txn::TrackerOptions {
            max_history_bytes: options.transaction_history_bytes,
        })),
        delayed_bytes: AtomicU64::new(0),
        lock_file: Mutex::new(lock_file),
        unexplained_files,
        wal_hold: WalHold::default(),
        checkpoint_targets: Mutex::default(),
        options,
    }
}

/// Takes the database's `LOCK` exclusively: [`Error::Busy`] if this or
/// another process holds it, for writing or read-only.
pub(crate) fn lock_dir(fs: &dyn Fs, dir: &Path) -> Result<Box<dyn kevo_core::FileLock>> {
    let path = dir.join(LOCK_FILE);
    fs.lock(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => Error::Busy {
            path: dir.to_path_buf(),
            reason: holder(fs, &path),
        },
        _ => Error::io(format!("locking {}", dir.display()), e),
    })
}

/// Who holds the lock file at `lock`, which an exclusive lock found taken:
/// read-only opens if a shared lock can be taken beside them (it is
/// released at once), a writer otherwise. For the message only: the
/// holders may have changed meanwhile.
fn holder(fs: &dyn Fs, lock: &Path) -> BusyReason {
    match fs.lock_shared(lock) {
        Ok(_probe) => BusyReason::OpenReadOnly,
        Err(_) => BusyReason::OpenForWriting,
    }
}

/// Takes the database's `LOCK` shared, beside any other read-only opens:
/// [`Error::Busy`] if a writer holds it. `None` if there is no `LOCK`: a
/// read-only open does not create it (kevo creates `LOCK` before anything
/// else in a new database, so only a copy made without it lacks one), and
/// then holds no lock, so a writer that opens the directory meanwhile is
/// not kept out.
fn lock_dir_shared(fs: &dyn Fs, dir: &Path) -> Result<Option<Box<dyn FileLock>>> {
    match fs.lock_shared(&dir.join(LOCK_FILE)) {
        Ok(lock) => Ok(Some(lock)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(
                dir = %dir.display(),
                "no LOCK file: opened read-only without a lock (a writer is not kept out)"
            );
            Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Error::Busy {
            path: dir.to_path_buf(),
            reason: BusyReason::OpenForWriting,
        }),
        Err(e) => Err(Error::io(format!("locking {} shared", dir.display()), e)),
    }
}

/// `create_if_missing` and `error_if_exists` against whether a database
/// exists in `dir`.
fn check_exists_options(dir: &Path, exists: bool, options: &Options) -> Result<()> {
    if exists && options.error_if_exists {
        return Err(Error::InvalidArgument(format!(
            "database {} already exists (Options::error_if_exists is set)",
            dir.display()
        )));
    }
    if !exists && !options.create_if_missing {
        return Err(Error::InvalidArgument(format!(
            "no database in {} (Options::create_if_missing is off)",
            dir.display()
        )));
    }
    Ok(())
}

/// The WAL's options for the database's.
pub(crate) fn wal_options(options: &Options) -> WalOptions {
    WalOptions {
        sync_mode: options.sync_mode,
        segment_bytes: options.wal_segment_bytes,
        recovery_mode: options.recovery_mode,
        // Under None/Interval, appends are gathered in memory (written
        // before every sync, rotation and close): a process crash may lose
        // what a power loss could lose anyway under those modes.
        buffer_bytes: options.wal_buffer_bytes,
        recycle_segments: options.wal_recycle_segments,
        // The database's `LOCK` keeps a second opener out.
        lock_dir: false,
    }
}

/// Checks that the replayed batches' sequence numbers run on without a gap
/// from the manifest's last seqno: a missing, emptied or cut segment whose
/// neighbours survived shows up as a jump.
///
/// A manifest of edit format 2 or later records exactly the last seqno in
/// the tables, so the first replayed write must follow it. A format 1
/// manifest recorded the newest seqno at its last flush, which may lie past
/// writes still in the WAL, and the code that wrote it continued after a
/// torn tail from that seqno: jumps that end at or below it are what that
/// code did, not damage.
struct SeqnoCheck {
    /// The seqno the next batch must start at (`None` until the first
    /// batch of a format 1 manifest).
    expected: Option<SeqNo>,
    /// Format 1: batches may start anywhere up to here.
    legacy_limit: Option<SeqNo>,
    lenient: bool,
    first: Option<SeqNo>,
    last: Option<SeqNo>,
    /// The stretches of consecutive seqnos replayed, ascending.
    covered: Vec<(SeqNo, SeqNo)>,
    /// A jump was skipped under `SkipCorrupted`.
    gaps: bool,
}

impl SeqnoCheck {
    fn new(manifest: &RecoveredManifest, mode: RecoveryMode) -> Self {
        let legacy = !manifest.tracks_wal_segments;
        SeqnoCheck {
            expected: (!legacy).then_some(manifest.last_seqno + 1),
            legacy_limit: legacy.then_some(manifest.last_seqno + 1),
            lenient: mode == RecoveryMode::SkipCorrupted,
            first: None,
            last: None,
            covered: Vec::new(),
            gaps: false,
        }
    }

    fn check(&mut self, dir: &Path, replayed: &ReplayedBatch) -> Result<()> {
        let batch = &replayed.batch;
        if batch.is_empty() {
            return Ok(());
        }
        let first = batch.seqno();
        let follows = match (self.expected, self.legacy_limit) {
            (Some(expected), None) => first == expected,
            (expected, Some(limit)) => {
                let after_last = self.last.is_none_or(|last| first > last);
                after_last && (Some(first) == expected || first <= limit)
            }
            (None, None) => true,
        };
        if !follows {
            let reason = match self.last.or(self.expected.map(|e| e - 1)) {
                Some(before) if first > before => format!(
                    "sequence numbers jump from {before} to {first}: the writes between are \
                     missing (a WAL segment was deleted, emptied or cut)"
                ),
                Some(before) => format!(
                    "sequence number {first} follows {before}: the log holds writes twice or \
                     out of order"
                ),
                None => format!("the first write has sequence number {first}"),
            };
            if !self.lenient {
                return Err(Error::Corruption {
                    file: dir.join(segment_file_name(replayed.segment)),
                    offset: replayed.offset,
                    reason,
                });
            }
            tracing::warn!(segment = replayed.segment, offset = replayed.offset, %reason, "skipping a gap in the WAL");
            self.gaps = true;
        }
        self.first.get_or_insert(first);
        match self.covered.last_mut() {
            Some(stretch) if stretch.1 + 1 == first => stretch.1 = batch.last_seqno(),
            _ => self.covered.push((first, batch.last_seqno())),
        }
        self.last = Some(batch.last_seqno());
        self.expected = Some(batch.last_seqno() + 1);
        Ok(())
    }
}

/// Records every WAL segment the log starts in the manifest before any
/// record goes into it (see [`SegmentListener`]), and the length of each
/// segment it seals: what lets open tell a lost segment from a crash.
#[derive(Debug)]
pub(crate) struct SegmentTracker {
    pub(crate) versions: Arc<VersionSet>,
}

impl SegmentTracker {
    fn record(&self, edit: VersionEdit) -> std::io::Result<()> {
        match self.versions.log_and_apply(edit) {
            Ok(_) => Ok(()),
            // The kind (a full disk, say) decides whether to retry.
            Err(kevo_core::Error::Io { context, source }) => Err(std::io::Error::new(
                source.kind(),
                format!("{context}: {source}"),
            )),
            Err(e @ kevo_core::Error::Corruption { .. }) => {
                Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            }
            Err(e @ kevo_core::Error::InvalidArgument(_)) => {
                Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            }
        }
    }
}

impl SegmentListener for SegmentTracker {
    fn segment_started(&self, started: u64) -> std::io::Result<()> {
        self.record(VersionEdit {
            wal_segments_added: vec![started],
            ..VersionEdit::default()
        })
    }

    fn segment_sealed(&self, segment: u64, len: u64) -> std::io::Result<()> {
        self.record(VersionEdit {
            wal_segments_sealed: vec![(segment, len)],
            ..VersionEdit::default()
        })
    }
}

fn remove(fs: &dyn Fs, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

fn write_options_file(fs: &dyn Fs, dir: &Path, number: u64, options: &Options) -> Result<()> {
    let path = dir.join(format!("{OPTIONS_FILE_PREFIX}{number:06}"));
    let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
    let file = fs.create(&path).map_err(|e| io("creating", e))?;
    file.write_all_at(options.to_options_file().as_bytes(), 0)
        .map_err(|e| io("writing", e))?;
    file.sync_data().map_err(|e| io("syncing", e))?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}
