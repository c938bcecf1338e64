//! Opening a database: lock, manifest, WAL replay, orphans, `OPTIONS-N`.
//!
//! The order matters:
//! 1. take `LOCK` (a second opener gets [`Error::Busy`]);
//! 2. open the version set (replays the manifest, starts a fresh one);
//! 3. delete WAL segments below the manifest's `log_number` (their data is
//!    in tables; a crash may have left them after the edit that made them
//!    obsolete), so that the WAL sees no gap;
//! 4. replay the remaining segments into the memtable (the WAL trims a torn
//!    tail and starts a new segment);
//! 5. check that every table the manifest names exists, delete tables it
//!    does not name (orphans of an interrupted flush or compaction) and
//!    temporary files, and mark every file number seen as used;
//! 6. write `OPTIONS-NNNNNN` (keeping the previous one for reference).

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Instant;

use kevo_core::{Fs, SeqNo};
use kevo_manifest::{
    ManifestOptions, VersionSet, parse_manifest_file_name, parse_table_file_name, table_file_name,
};
use kevo_memtable::MemTable;
use kevo_wal::{Wal, WalOptions, parse_segment_file_name};

use crate::db::{BgState, MemState, Shared, SuperVersion};
use crate::error::{Error, Result, from_wal};
use crate::options::Options;
use crate::stats::Counters;
use crate::tables::{CountingCache, TableCache};
use crate::write::Queue;

/// Name of the lock file held while the database is open.
pub const LOCK_FILE: &str = "LOCK";

/// Prefix of the options files (`OPTIONS-000012`).
pub const OPTIONS_FILE_PREFIX: &str = "OPTIONS-";

fn parse_options_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(OPTIONS_FILE_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn open(fs: Arc<dyn Fs>, dir: &Path, options: Options) -> Result<Arc<Shared>> {
    options.validate()?;
    let started = Instant::now();
    let span = tracing::info_span!("kevo.open", dir = %dir.display());
    let _entered = span.enter();
    let io = |what: &str, e| Error::io(format!("{what} {}", dir.display()), e);

    fs.create_dir_all(dir).map_err(|e| io("creating", e))?;
    let lock_file = fs.lock(&dir.join(LOCK_FILE)).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => Error::Busy {
            path: dir.to_path_buf(),
        },
        _ => io("locking", e),
    })?;

    let exists = VersionSet::exists(fs.as_ref(), dir)?;
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
    let (versions, manifest) = VersionSet::open(
        fs.clone(),
        dir,
        ManifestOptions {
            rewrite_bytes: options.manifest_rewrite_bytes,
            create_if_missing: options.create_if_missing,
        },
    )?;
    let log_number = versions.log_number();

    // Obsolete WAL segments first: the WAL refuses a gap between segments.
    let names = fs.list_dir(dir).map_err(|e| io("listing", e))?;
    for name in &names {
        if parse_segment_file_name(name).is_some_and(|n| n < log_number) {
            remove(fs.as_ref(), &dir.join(name))?;
        }
    }

    // Replay the WAL into a fresh memtable.
    let recovery_started = Instant::now();
    let recovery_span = tracing::info_span!("kevo.recovery", log_number);
    let recovery_entered = recovery_span.enter();
    let mem = Arc::new(MemTable::new());
    let wal_options = WalOptions {
        sync_mode: options.sync_mode,
        segment_bytes: options.wal_segment_bytes,
        recovery_mode: options.recovery_mode,
        // Under None/Interval, gather appends in memory up to 64 KiB
        // (written before every sync, rotation and close): a process crash
        // may lose what a power loss could lose anyway under those modes.
        buffer_bytes: 64 * 1024,
        ..WalOptions::default()
    };
    let mut recovery = Wal::open(fs.clone(), dir, wal_options).map_err(|e| from_wal(dir, e))?;
    let mut last_seqno: SeqNo = versions.last_seqno();
    let mut replayed_entries = 0u64;
    for replayed in recovery.by_ref() {
        let replayed = replayed.map_err(|e| from_wal(dir, e))?;
        let first = replayed.batch.seqno();
        for (i, entry) in replayed.batch.iter().enumerate() {
            mem.insert(entry.key, first + i as u64, entry.kind, entry.value);
            replayed_entries += 1;
        }
        last_seqno = last_seqno.max(replayed.batch.last_seqno());
    }
    let (wal, report) = recovery.finish().map_err(|e| from_wal(dir, e))?;
    tracing::info!(
        segments = report.segments.len(),
        batches = report.batches,
        entries = replayed_entries,
        tail_bytes_dropped = report.tail_bytes_dropped,
        last_seqno,
        ms = recovery_started.elapsed().as_millis() as u64,
        "replayed the WAL"
    );
    drop(recovery_entered);

    // Tables: every named one must exist; unnamed ones are orphans.
    let version = versions.current();
    let live: BTreeSet<u64> = version.tables().map(|(_, t)| t.number).collect();
    let names = fs.list_dir(dir).map_err(|e| io("listing", e))?;
    let mut on_disk = BTreeSet::new();
    let mut options_files = Vec::new();
    for name in &names {
        let path = dir.join(name);
        if let Some(number) = parse_table_file_name(name) {
            versions.mark_file_number_used(number);
            if live.contains(&number) {
                on_disk.insert(number);
            } else {
                tracing::info!(file = %name, "deleting an orphaned table");
                remove(fs.as_ref(), &path)?;
            }
        } else if let Some(number) = parse_manifest_file_name(name) {
            versions.mark_file_number_used(number);
        } else if let Some(number) = parse_options_file_name(name) {
            versions.mark_file_number_used(number);
            options_files.push(number);
        } else if name.ends_with(".dbtmp") {
            remove(fs.as_ref(), &path)?;
        }
    }
    if let Some(missing) = live.difference(&on_disk).next() {
        return Err(Error::Corruption {
            file: dir.join(table_file_name(*missing)),
            offset: 0,
            reason: "the manifest names this table but the file is missing".to_string(),
        });
    }
    // Keep the newest earlier OPTIONS file, for reference.
    options_files.sort_unstable();
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

    let block_cache = (options.block_cache_bytes > 0)
        .then(|| Arc::new(CountingCache::new(options.block_cache_bytes)));
    let tables = TableCache::new(
        fs.clone(),
        dir.to_path_buf(),
        block_cache,
        options.table_cache_tables,
    );
    let strategy = crate::compact::strategy(&options);
    let sv = Arc::new(SuperVersion {
        mem: mem.clone(),
        imms: Vec::new(),
        version: version.clone(),
    });
    tracing::info!(
        tables = version.table_count(),
        bytes = version.total_bytes(),
        last_seqno,
        created = manifest.created,
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
        bg_error: OnceLock::new(),
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
        options,
    }))
}

fn remove(fs: &dyn Fs, path: &Path) -> Result<()> {
    fs.remove_file(path)
        .map_err(|e| Error::io(format!("removing {}", path.display()), e))
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
