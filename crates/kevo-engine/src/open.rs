//! Opening a database: every check first, then the changes.
//!
//! Reading and checking (nothing on disk changes; a failure here leaves the
//! directory byte for byte as it was):
//! 1. refuse a directory that holds data but no `CURRENT`, before even
//!    taking `LOCK` ([`recover::refuse_missing_current`]);
//! 2. take `LOCK` (a second opener gets [`Error::Busy`]);
//! 3. read the manifest and check the directory against it
//!    ([`recover::read_manifest`], [`recover::check`]): tables, WAL
//!    segments, file numbers;
//! 4. replay the WAL segments the checks name into a memtable, checking
//!    that sequence numbers run on without a gap from the manifest's last
//!    seqno ([`SeqnoCheck`]).
//!
//! Changing (each step leaves a state the next open accepts, whatever
//! crash interrupts it):
//! 5. make the replayed records durable (sync the last segment); when the
//!    WAL cannot stay live (a format 1 manifest never recorded it; a
//!    `SkipCorrupted` recovery may have skipped damage in it), write the
//!    memtable to an L0 table instead and move the log number past it;
//! 6. start a fresh manifest holding the state, the replayed segments
//!    sealed at the end of their records, and switch `CURRENT` to it;
//! 7. delete obsolete WAL segments; finish the WAL: trim a torn tail and
//!    start a new segment, recorded in the manifest (and every later one,
//!    through [`SegmentTracker`]);
//! 8. delete what the checks found obsolete (tables no version names below
//!    the file counter, old manifests, `CURRENT.dbtmp`), keep the newest
//!    earlier `OPTIONS` file, write `OPTIONS-NNNNNN`.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;

use kevo_core::{Fs, SeqNo};
use kevo_manifest::{
    ManifestOptions, RecoveredManifest, VersionEdit, VersionSet, manifest_file_name,
    table_file_name,
};
use kevo_memtable::MemTable;
use kevo_wal::{RecoveryMode, ReplayedBatch, SegmentListener, Wal, WalOptions, segment_file_name};

use crate::db::{BgState, MemState, Shared, SuperVersion};
use crate::error::{Error, Result, from_wal};
use crate::options::Options;
use crate::recover::{self, Checked, Inventory};
use crate::stats::Counters;
use crate::tables::{CountingCache, TableCache};
use crate::write::Queue;

/// Name of the lock file held while the database is open.
pub const LOCK_FILE: &str = "LOCK";

/// Prefix of the options files (`OPTIONS-000012`).
pub const OPTIONS_FILE_PREFIX: &str = "OPTIONS-";

pub(crate) fn open(fs: Arc<dyn Fs>, dir: &Path, options: Options) -> Result<Arc<Shared>> {
    options.validate()?;
    let started = Instant::now();
    let span = tracing::info_span!("kevo.open", dir = %dir.display());
    let _entered = span.enter();

    // 1-2. Refuse what is not ours to create, then lock.
    let exists = fs
        .exists(dir)
        .map_err(|e| Error::io(format!("looking for {}", dir.display()), e))?;
    if exists {
        let inventory = Inventory::of(fs.as_ref(), dir)?;
        recover::refuse_missing_current(&fs, dir, &inventory)?;
        check_exists_options(dir, inventory.has_current, &options)?;
    } else {
        check_exists_options(dir, false, &options)?;
        fs.create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let lock_file = lock_dir(fs.as_ref(), dir)?;

    // 3. Read and check, under the lock.
    let inventory = Inventory::of(fs.as_ref(), dir)?;
    let recovered = recover::read_manifest(&fs, dir, &inventory)?;
    check_exists_options(dir, recovered.is_some(), &options)?;
    let created = recovered.is_none();
    let manifest = recovered.unwrap_or_default();
    let checked = if created {
        Checked::default()
    } else {
        recover::check(&fs, dir, &inventory, &manifest, options.recovery_mode)?
    };

    // 4. Replay the WAL into a fresh memtable.
    let recovery_started = Instant::now();
    let recovery_span = tracing::info_span!("kevo.recovery", log_number = manifest.log_number);
    let recovery_entered = recovery_span.enter();
    let mem = Arc::new(MemTable::new());
    let mut recovery = Wal::open_with_plan(
        fs.clone(),
        dir,
        wal_options(&options),
        Some(checked.plan.clone()),
    )
    .map_err(|e| from_wal(dir, e))?;
    let mut seqnos = SeqnoCheck::new(&manifest, options.recovery_mode);
    let mut replayed_entries = 0u64;
    for replayed in recovery.by_ref() {
        let replayed = replayed.map_err(|e| from_wal(dir, e))?;
        seqnos.check(dir, &replayed)?;
        let first = replayed.batch.seqno();
        for (i, entry) in replayed.batch.iter().enumerate() {
            mem.insert(entry.key, first + i as u64, entry.kind, entry.value);
            replayed_entries += 1;
        }
    }
    let report = recovery.report().clone();
    let mut checked = checked;
    recover::explain_legacy_tables(fs.as_ref(), dir, &mut checked, &seqnos.covered);
    tracing::info!(
        segments = report.segments.len(),
        batches = report.batches,
        entries = replayed_entries,
        tail_bytes_dropped = report.tail_bytes_dropped,
        skipped = report.skipped.len(),
        ms = recovery_started.elapsed().as_millis() as u64,
        "replayed the WAL"
    );
    drop(recovery_entered);
    // Every check passed: from here on, files change.

    // 5-6. The state the new manifest starts from.
    let table_options = crate::flush::table_options_for(&options);
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
    let lenient = options.recovery_mode == kevo_wal::RecoveryMode::SkipCorrupted;
    let flush_replayed = (lenient && !report.segments.is_empty())
        || (!manifest.tracks_wal_segments && !mem.is_empty());
    let mut last_seqno = seqnos.last.unwrap_or(manifest.last_seqno);
    state.wal_segments = Default::default();
    if flush_replayed {
        let mut edit = VersionEdit {
            last_seqno: Some(last_seqno),
            log_number: Some(newest_segment + 1),
            ..VersionEdit::default()
        };
        let next = AtomicU64::new(state.next_file_number);
        let new_number = || Ok(next.fetch_add(1, Ordering::Relaxed));
        let table =
            crate::flush::write_memtable(fs.as_ref(), dir, table_options, &mem, &new_number, &[])?;
        if let Some(table) = table {
            tracing::info!(
                table = table.number,
                entries = table.entries,
                "wrote the replayed WAL to a table"
            );
            edit.added.push((0, table));
            edit.next_file_number = Some(next.load(Ordering::Relaxed));
        }
        state.apply_edit(&edit).map_err(Error::InvalidArgument)?;
        // Exactly the writes replayed, even where a format 1 manifest
        // recorded a later seqno that the WAL lost.
        state.last_seqno = last_seqno;
    } else {
        recovery.sync_replayed().map_err(|e| from_wal(dir, e))?;
        for &(segment, end) in &report.segment_ends {
            state.wal_segments.insert(segment, Some(end));
        }
    }
    last_seqno = last_seqno.max(state.last_seqno);
    let manifest_options = ManifestOptions {
        rewrite_bytes: options.manifest_rewrite_bytes,
        create_if_missing: options.create_if_missing,
    };
    let versions = Arc::new(VersionSet::create(
        fs.clone(),
        dir,
        state.clone(),
        manifest_options,
    )?);

    // 7. Obsolete segments go before the WAL starts its new one.
    let mut obsolete_segments = checked.obsolete_segments.clone();
    if flush_replayed {
        obsolete_segments.extend(report.segments.iter().copied());
    }
    for segment in &obsolete_segments {
        remove(fs.as_ref(), &dir.join(segment_file_name(*segment)))?;
    }
    let tracker: Arc<dyn SegmentListener> = Arc::new(SegmentTracker {
        versions: versions.clone(),
    });
    let first_segment = state.log_number.max(newest_segment + 1);
    let (wal, _) = recovery
        .finish_with(Some(tracker), first_segment)
        .map_err(|e| from_wal(dir, e))?;

    // 8. Tidy up what the checks proved obsolete; write OPTIONS-N.
    for number in &checked.obsolete_tables {
        tracing::info!(
            table = number,
            "deleting a table no version names (below the file counter)"
        );
        remove(fs.as_ref(), &dir.join(table_file_name(*number)))?;
    }
    versions.remove_obsolete_manifests();
    let unexplained_files: Vec<String> = checked
        .unexplained
        .iter()
        .map(|&n| table_file_name(n))
        .collect();
    for name in &unexplained_files {
        tracing::warn!(
            file = %dir.join(name).display(),
            "no version names this table and the manifest cannot explain it: it is left in place"
        );
    }
    // Keep the newest earlier OPTIONS file, for reference.
    let options_files: Vec<u64> = inventory.options_files.iter().copied().collect();
    if options_files.len() > 1 {
        for number in &options_files[..options_files.len() - 1] {
            remove(
                fs.as_ref(),
                &dir.join(format!("{OPTIONS_FILE_PREFIX}{number:06}")),
            )?;
        }
    }
    let options_number = versions.new_file_number();
    write_options_file(fs.as_ref(), dir, options_number, &options)?;

    let version = versions.current();
    let block_cache = (options.block_cache_bytes > 0)
        .then(|| Arc::new(CountingCache::new(options.block_cache_bytes)));
    let tables = TableCache::new(
        fs.clone(),
        dir.to_path_buf(),
        block_cache,
        options.table_cache_tables,
    );
    let strategy = crate::compact::strategy(&options);
    // After a recovery flush the memtable's writes are in a table.
    let mem = if flush_replayed {
        Arc::new(MemTable::new())
    } else {
        mem
    };
    let sv = Arc::new(SuperVersion {
        mem: mem.clone(),
        imms: Vec::new(),
        version: version.clone(),
    });
    tracing::info!(
        tables = version.table_count(),
        bytes = version.total_bytes(),
        last_seqno,
        created,
        manifest = manifest_file_name(versions.manifest_number()),
        ms = started.elapsed().as_millis() as u64,
        "opened"
    );
    Ok(Arc::new(Shared {
        dir: dir.to_path_buf(),
        fs,
        versions,
        wal: RwLock::new(Some(wal)),
        writer: Mutex::new(last_seqno),
        queue: Mutex::new(Queue::default()),
        queue_cv: Condvar::new(),
        mem: Mutex::new(MemState {
            mem,
            imms: VecDeque::new(),
            pending_compaction_bytes: strategy.pending_bytes(&version),
            version,
            next_imm_id: 1,
        }),
        super_version: RwLock::new(sv),
        visible_seqno: AtomicU64::new(last_seqno),
        bg: Mutex::new(BgState::default()),
        bg_cv: Condvar::new(),
        bg_threads: Mutex::new(Vec::new()),
        bg_error: Default::default(),
        closed: AtomicBool::new(false),
        lock_file: Mutex::new(Some(lock_file)),
        snapshots: Mutex::new(Default::default()),
        tables,
        counters: Counters::new(report.tail_bytes_dropped),
        strategy,
        tracker: Mutex::new(kevo_txn::ConflictTracker::new(
            kevo_txn::TrackerOptions::default(),
        )),
        stop: AtomicBool::new(false),
        delayed_bytes: AtomicU64::new(0),
        unexplained_files,
        options,
    }))
}

/// Takes the database's `LOCK`: [`Error::Busy`] if this or another process
/// holds it.
pub(crate) fn lock_dir(fs: &dyn Fs, dir: &Path) -> Result<Box<dyn kevo_core::FileLock>> {
    fs.lock(&dir.join(LOCK_FILE)).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => Error::Busy {
            path: dir.to_path_buf(),
        },
        _ => Error::io(format!("locking {}", dir.display()), e),
    })
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
        // Under None/Interval, gather appends in memory up to 64 KiB
        // (written before every sync, rotation and close): a process crash
        // may lose what a power loss could lose anyway under those modes.
        buffer_bytes: 64 * 1024,
        ..WalOptions::default()
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
/// record goes into it (see [`SegmentListener`]), and the length of the
/// segment it seals: what lets open tell a lost segment from a crash.
#[derive(Debug)]
pub(crate) struct SegmentTracker {
    pub(crate) versions: Arc<VersionSet>,
}

impl SegmentListener for SegmentTracker {
    fn segment_started(&self, started: u64, sealed: Option<(u64, u64)>) -> std::io::Result<()> {
        let edit = VersionEdit {
            wal_segments_added: vec![started],
            wal_segments_sealed: sealed.into_iter().collect(),
            ..VersionEdit::default()
        };
        match self.versions.log_and_apply(edit) {
            Ok(_) => Ok(()),
            // The kind (a full disk, say) decides whether to retry.
            Err(kevo_core::Error::Io { context, source }) => Err(std::io::Error::new(
                source.kind(),
                format!("{context}: {source}"),
            )),
            Err(other) => Err(std::io::Error::other(other.to_string())),
        }
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
