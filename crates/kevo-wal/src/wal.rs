//! [`Wal`]: the appending side of the log — segments, sync modes, group
//! commit, rotation, recycling.
//!
//! The contracts (thread safety, failure) are on [`Wal`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use kevo_core::{File, FileLock, Fs};

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::format::{
    BLOCK_BYTES, FREE_SUFFIX, PREDECESSOR_FRAGMENT_BYTES, SEGMENT_HEADER_BYTES, encode_predecessor,
    encode_record, encode_segment_header, encoded_record_len, first_fragment_skip,
    parse_free_file_name, parse_segment_file_name, segment_file_name, segment_tag,
};
use crate::replay::{RecoveryMode, RecoveryPlan, Replay, ReplayReport, ReplayedBatch};

/// When appended records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Never fsync on the append path; the OS writes back when it likes. A
    /// crash (power loss) may lose any suffix of the log; recovery still
    /// yields a prefix of the appended batches. Segments are still synced when
    /// they are sealed.
    None,
    /// A background thread syncs every interval: a crash loses at most about
    /// one interval of appends (plus the sync's own duration).
    Interval(Duration),
    /// [`Wal::append`] returns only once the record is durable. Appenders
    /// that arrive while a sync is in flight share the next one.
    Always,
}

/// How a [`Wal`] is opened and run.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// When appends are synced. Default: [`SyncMode::Always`].
    pub sync_mode: SyncMode,
    /// A segment is sealed and a new one started once it reaches this size.
    /// Default: 64 MiB.
    pub segment_bytes: u64,
    /// How many obsolete segment files to keep for reuse instead of deleting
    /// them. Overwriting an allocated file syncs faster than appending to a
    /// new one (no metadata to journal). Default: 2.
    pub recycle_segments: usize,
    /// How replay treats damage. Default: [`RecoveryMode::TolerateTornTail`].
    pub recovery_mode: RecoveryMode,
    /// Under [`SyncMode::None`] and [`SyncMode::Interval`], appended records
    /// are gathered in memory and written to the file once this many bytes
    /// wait (and before every sync, rotation and close), saving a system
    /// call per append. A process crash may then lose up to this many bytes
    /// of appends that a power loss could have lost anyway under those
    /// modes; recovery still yields a prefix. 0 writes every record at once.
    /// Ignored under [`SyncMode::Always`]. Default: 0.
    pub buffer_bytes: usize,
    /// Take [`WAL_LOCK_FILE`] so that no second `Wal` opens the directory.
    /// An owner that already holds a lock on the directory (the engine
    /// holds its `LOCK`) turns this off: one lock file per directory.
    /// Default: `true`.
    pub lock_dir: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            sync_mode: SyncMode::Always,
            segment_bytes: 64 * 1024 * 1024,
            recycle_segments: 2,
            recovery_mode: RecoveryMode::TolerateTornTail,
            buffer_bytes: 0,
            lock_dir: true,
        }
    }
}

/// The lock file that keeps a second `Wal` out of a directory (unless
/// [`WalOptions::lock_dir`] is off).
pub const WAL_LOCK_FILE: &str = "WAL.LOCK";

/// Told about every segment the log starts, before any record goes into
/// it, and about every segment it seals: the engine records both in its
/// manifest, so that a segment holding records is always one the manifest
/// knows, and a sealed segment cut short is damage, never a crash.
///
/// With a listener, a rotation takes nothing slow onto the append path:
/// the next segment is created and announced ahead of time (a *spare*),
/// and the segment rotated away from is sealed afterwards by the log's
/// background thread (synced, then announced) — always before any record
/// of a later segment is synced. A recovery therefore replays with
/// [`RecoveryPlan::seals_tracked`](crate::RecoveryPlan::seals_tracked).
///
/// Calls come from the thread that appends, rotates or finishes the
/// recovery, or from the log's background thread, sometimes two at once:
/// an implementation serialises what it records. Segments are announced
/// started in ascending order, and sealed in ascending order.
pub trait SegmentListener: Send + Sync + std::fmt::Debug {
    /// Segment `started` now exists durably (its header and directory
    /// entry are synced) and holds no record.
    ///
    /// # Errors
    /// Any error refuses the segment: a rotation that needed it fails and
    /// the log is poisoned until [`Wal::resume`]; a spare prepared ahead
    /// is given up (the next rotation creates the segment itself).
    fn segment_started(&self, started: u64) -> std::io::Result<()>;

    /// Segment `segment`, which the log rotated away from, is synced at
    /// its final length `len` and will never change. It may already be
    /// retired (see [`Wal::remove_segments_before`]).
    ///
    /// # Errors
    /// Any error poisons the log until [`Wal::resume`]; the seal is then
    /// tried again.
    fn segment_sealed(&self, segment: u64, len: u64) -> std::io::Result<()>;
}

/// Where an appended record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPosition {
    /// Segment number.
    pub segment: u64,
    /// File offset of the record's first fragment.
    pub offset: u64,
}

/// Counters since the log was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records appended.
    pub appends: u64,
    /// Bytes written (fragment headers and padding included).
    pub bytes_written: u64,
    /// `fdatasync` calls on behalf of appends and explicit syncs.
    pub syncs: u64,
    /// Segments started, recycled ones included.
    pub segments_started: u64,
    /// Segments started by reusing an obsolete file.
    pub segments_recycled: u64,
    /// The longest a rotation held the append lock (appends wait that
    /// long). With a listener it writes no more than the gathered appends
    /// and the `Predecessor` fragment, unless the spare was not ready.
    pub slowest_rotation: Duration,
}

/// The write-ahead log.
///
/// # Thread safety
/// `Wal` is `Send + Sync`; any number of threads may call [`Wal::append`] and
/// [`Wal::sync`] at once. Appends are serialised by one mutex (the writer
/// state: current segment, offset, encode buffer) and reach the file in the
/// order they take it. Syncs are coordinated separately so that appends
/// continue while an `fdatasync` is in flight:
///
/// - every append advances `written`, the log's length in bytes since open;
/// - a thread that needs its bytes durable waits until `synced >= its end`;
///   if no sync is in flight it becomes the syncer: it reads `written`,
///   syncs the current segment and publishes `synced = that value`;
/// - threads whose bytes arrived while a sync was in flight share the next
///   one (group commit).
///
/// A rotation writes a `Predecessor` fragment (the old segment's number and
/// final length) at the start of the new segment. Without a
/// [`SegmentListener`] it syncs the old segment, and creates the new one
/// durably, before any record goes into the new segment. With one, both
/// happen off the append path (see [`SegmentListener`]), and a sync first
/// seals every segment rotated away from, so that syncing the current
/// segment covers everything written before it either way.
///
/// # Failure
/// The first failed write, sync or rotation *poisons* the log: every later
/// append and sync returns [`Error::Poisoned`]. A failed fsync is never
/// retried, because the kernel may already have dropped the dirty pages and
/// a second fsync would report success for lost data. After a failed
/// *write* (a full disk, most often) or rotation, [`Wal::resume`] makes the
/// log usable again: nothing that failed was acknowledged, and what was
/// acknowledged is still in the page cache (or in the gathered appends,
/// which a failed write keeps).
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
    /// Seals segments and prepares spares (only with a listener).
    sealer: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// Held for the life of the log (`None` when the owner locks).
    _lock: Option<Box<dyn FileLock>>,
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: WalOptions,
    writer: Mutex<WriterState>,
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
    /// Whether `poison` holds a failure (read on every append).
    poisoned: AtomicBool,
    poison: Mutex<Option<Poison>>,
    listener: Option<Arc<dyn SegmentListener>>,
    stats: Counters,
    /// Held while segments are sealed (one sealer at a time, in order).
    seal_lock: Mutex<()>,
    /// Paired with `writer`: a spare's creation finished.
    spare_cv: Condvar,
    /// Wakes the background sealer.
    sealer_state: Mutex<SealerState>,
    sealer_cv: Condvar,
}

/// What the background sealer is asked to do.
#[derive(Debug, Default)]
struct SealerState {
    wake: bool,
    shutdown: bool,
}

/// A segment rotated away from, still to be sealed.
#[derive(Debug, Clone)]
struct Sealing {
    segment: u64,
    file: Arc<dyn File>,
    /// Its final length.
    len: u64,
    /// `written` at its end: a sync up to there needs this segment synced,
    /// not its seal recorded.
    end_written: u64,
}

/// The next segment, prepared ahead of a rotation (with a listener only).
#[derive(Debug)]
enum Spare {
    None,
    /// The background sealer is creating it; a rotation waits.
    Creating,
    /// Created durably and announced: (segment number, file).
    Ready(u64, Arc<dyn File>),
    /// The last try failed; the next rotation creates the segment itself.
    Failed,
}

/// Why the log refuses work.
#[derive(Debug, Clone)]
struct Poison {
    /// The first failure (an [`Error::Io`]).
    cause: Arc<Error>,
    /// An fsync failed: the state of the data on disk is unknown and the
    /// log can never be resumed.
    fsync_failed: bool,
}

impl Poison {
    fn error(&self) -> Error {
        Error::Poisoned {
            cause: self.cause.clone(),
            resumable: !self.fsync_failed,
        }
    }
}

#[derive(Debug)]
struct WriterState {
    segment: u64,
    file: Arc<dyn File>,
    /// Next write offset in the current segment file.
    offset: u64,
    /// Where the current segment's records begin (after its header, and
    /// its `Predecessor` fragment if it has one).
    records_start: u64,
    /// Offsets of the current segment below this are already in the file
    /// (records, or zeros written ahead by [`Shared::prepare_ahead`]): an
    /// append below it overwrites allocated blocks instead of growing the
    /// file, so the fdatasync that follows has no size change to journal.
    prepared: u64,
    /// Bytes appended since open, over all segments.
    written: u64,
    /// `written` when the interval syncer was last woken early (see
    /// [`SYNC_KICK_BYTES`]).
    kicked: u64,
    /// Reused encode buffer.
    buf: Vec<u8>,
    /// Encoded records not yet written to the file (see
    /// [`WalOptions::buffer_bytes`]), starting at file offset
    /// `pending_offset`.
    pending: Vec<u8>,
    pending_offset: u64,
    /// Live segments, the current one included.
    live: BTreeSet<u64>,
    /// Obsolete segment files kept for reuse (`NNNNNN.wal.free`).
    free: VecDeque<u64>,
    /// Segments rotated away from whose seal is still to come, oldest
    /// first (with a listener only).
    sealing: VecDeque<Sealing>,
    /// The final length of each live segment rotated away from.
    ended: BTreeMap<u64, u64>,
    spare: Spare,
}

#[derive(Debug, Default)]
struct SyncState {
    /// `written` as of the last successful sync.
    synced: u64,
    syncing: bool,
    shutdown: bool,
}

#[derive(Debug, Default)]
struct Counters {
    appends: AtomicU64,
    bytes_written: AtomicU64,
    syncs: AtomicU64,
    segments_started: AtomicU64,
    segments_recycled: AtomicU64,
    slowest_rotation_nanos: AtomicU64,
}

/// A replay of the log that ends by opening it for appending.
///
/// Iterate it to get every intact batch, then call [`Recovery::finish`].
#[derive(Debug)]
pub struct Recovery {
    lock: Option<Box<dyn FileLock>>,
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: WalOptions,
    replay: Replay,
}

/// What a failed file operation did to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// A write, create or rename: resumable.
    Write,
    /// An fsync of a segment holding acknowledged records: never retried.
    Sync,
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves its
/// state consistent before anything can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Wal {
    /// Starts recovering the log in `dir` (created if missing): iterate the
    /// returned [`Recovery`] for the logged batches, then
    /// [`finish`](Recovery::finish) it to get the `Wal`. The directory is
    /// locked ([`WAL_LOCK_FILE`]) until the `Wal` is dropped.
    ///
    /// # Errors
    /// [`Error::Busy`] if another `Wal` has the directory open;
    /// [`Error::InvalidArgument`] for a zero sync interval; [`Error::Io`] if
    /// the directory cannot be created, locked or listed.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, options: WalOptions) -> Result<Recovery> {
        Self::open_with_plan(fs, dir, options, None)
    }

    /// [`Wal::open`], replaying exactly the segments of `plan` (or every
    /// segment in `dir` for `None`), with what the caller knows of them:
    /// the engine passes the segments its manifest tracks, so that a sealed
    /// segment cut short is damage, never a torn tail.
    ///
    /// # Errors
    /// As [`Wal::open`].
    pub fn open_with_plan(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: WalOptions,
        plan: Option<RecoveryPlan>,
    ) -> Result<Recovery> {
        if options.sync_mode == SyncMode::Interval(Duration::ZERO) {
            return Err(Error::InvalidArgument(
                "the sync interval must not be zero".to_string(),
            ));
        }
        fs.create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let lock = if options.lock_dir {
            let lock = fs
                .lock(&dir.join(WAL_LOCK_FILE))
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::WouldBlock => Error::Busy {
                        dir: dir.display().to_string(),
                    },
                    _ => Error::io(format!("locking {}", dir.display()), e),
                })?;
            Some(lock)
        } else {
            None
        };
        let replay = match plan {
            None => Replay::open(fs.clone(), dir, options.recovery_mode, 0)?,
            Some(plan) => Replay::with_plan(fs.clone(), dir, options.recovery_mode, plan),
        };
        Ok(Recovery {
            lock,
            fs,
            dir: dir.to_path_buf(),
            options,
            replay,
        })
    }

    /// Appends one batch as one record. Under [`SyncMode::Always`] it returns
    /// once the record is durable.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the batch breaks a limit (see
    /// [`Batch::check_limits`]); [`Error::Io`] if the write or sync failed
    /// (the log is then poisoned); [`Error::Poisoned`] after an earlier
    /// failure.
    pub fn append(&self, batch: &Batch) -> Result<WalPosition> {
        if self.shared.options.sync_mode == SyncMode::Always {
            return self.append_sync(batch);
        }
        batch.check_limits().map_err(Error::InvalidArgument)?;
        loop {
            if let Some((position, _)) = self.shared.write_record(batch.as_bytes(), false)? {
                return Ok(position);
            }
        }
    }

    /// Appends one batch as one record and returns once it is durable,
    /// whatever the sync mode (as [`Wal::append`] does under
    /// [`SyncMode::Always`]), sharing the sync with concurrent callers.
    /// Unlike an append followed by [`Wal::sync`], a failure to seal an
    /// earlier segment fails it before its record is written: a failed
    /// call leaves no record that a later replay could bring back (except
    /// after a failed fsync, whose outcome is unknown).
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub fn append_sync(&self, batch: &Batch) -> Result<WalPosition> {
        batch.check_limits().map_err(Error::InvalidArgument)?;
        let shared = &self.shared;
        let (position, end) = loop {
            shared.seal_pending()?;
            if let Some(written) = shared.write_record(batch.as_bytes(), true)? {
                break written;
            }
        };
        shared.sync_to(end, true)?;
        Ok(position)
    }

    /// Makes every record appended before this call durable, sharing the
    /// sync with concurrent callers.
    ///
    /// # Errors
    /// [`Error::Io`] if the sync failed (the log is then poisoned);
    /// [`Error::Poisoned`] after an earlier failure.
    pub fn sync(&self) -> Result<()> {
        let end = lock(&self.shared.writer).written;
        self.shared.sync_to(end, true)
    }

    /// Seals the current segment and starts the next one; returns its number.
    /// Every record appended before the call is in an older segment.
    ///
    /// # Errors
    /// [`Error::Io`] if a file operation failed (the log is then poisoned).
    pub fn rotate(&self) -> Result<u64> {
        let shared = &self.shared;
        let mut writer = shared.wait_for_spare(lock(&shared.writer));
        shared.check_poison()?;
        shared.rotate_locked(&mut writer)?;
        Ok(writer.segment)
    }

    /// The final length of segment `segment`, if the log rotated away from
    /// it and has not retired it. Once a [`Wal::sync`] that began after the
    /// rotation returned, the segment is durable at that length.
    pub fn segment_end(&self, segment: u64) -> Option<u64> {
        lock(&self.shared.writer).ended.get(&segment).copied()
    }

    /// The segment new records go to.
    pub fn current_segment(&self) -> u64 {
        lock(&self.shared.writer).segment
    }

    /// Where the next record goes: the current segment and the end of its
    /// records (gathered appends included). After [`Wal::sync`] returned,
    /// everything before it is durable.
    pub fn position(&self) -> WalPosition {
        let writer = lock(&self.shared.writer);
        WalPosition {
            segment: writer.segment,
            offset: writer.offset,
        }
    }

    /// Whether an earlier failure makes the log refuse work, and if so
    /// whether [`Wal::resume`] can lift it (`Some(true)`: a write or
    /// rotation failed) or not (`Some(false)`: an fsync failed).
    pub fn poisoned(&self) -> Option<bool> {
        self.shared.poison_state().map(|p| !p.fsync_failed)
    }

    /// Makes the log usable again after a failed write or rotation, as
    /// when the disk was full and has room again: cuts off whatever the
    /// failed write left after the last complete record, writes the
    /// gathered appends again (acknowledged under [`SyncMode::None`] and
    /// [`SyncMode::Interval`]; a failed write keeps them), and lifts the
    /// poison. Nothing that failed was acknowledged, so nothing is lost and
    /// nothing appears that was not acknowledged. A no-op on a healthy log.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if an fsync failed: its outcome is unknown and
    /// never retried; reopen the log to recover. [`Error::Io`] if cutting
    /// or writing fails again (the log stays poisoned; try again later).
    pub fn resume(&self) -> Result<()> {
        let shared = &self.shared;
        let mut writer = lock(&shared.writer);
        let Some(poison) = shared.poison_state() else {
            return Ok(());
        };
        if poison.fsync_failed {
            return Err(poison.error());
        }
        let good = if writer.pending.is_empty() {
            writer.offset
        } else {
            writer.pending_offset
        };
        let path = shared.path(writer.segment);
        writer.file.set_len(good).map_err(|e| {
            Error::io(
                format!("cutting {} back to {good} bytes", path.display()),
                e,
            )
        })?;
        shared.write_pending(&mut writer)?;
        *lock(&shared.poison) = None;
        shared.poisoned.store(false, Ordering::Release);
        // A seal that failed is tried again.
        shared.wake_sealer();
        tracing::info!(
            segment = writer.segment,
            offset = good,
            "WAL resumed after a failure"
        );
        Ok(())
    }

    /// Removes every segment numbered below `segment` (the current one is
    /// always kept). Up to [`WalOptions::recycle_segments`] files are kept for
    /// reuse by later rotations instead of deleted: each is renamed
    /// `NNNNNN.wal.free` and overwritten with zeros, so that its old records
    /// can never be mistaken for new ones and the next life of the file
    /// overwrites allocated blocks. Returns how many segments were retired.
    ///
    /// The file work happens outside the lock appends take. Call it from a
    /// background thread: zeroing a segment writes `segment_bytes`.
    ///
    /// # Errors
    /// [`Error::Io`] if a rename, write, removal or directory sync failed.
    pub fn remove_segments_before(&self, segment: u64) -> Result<usize> {
        let shared = &self.shared;
        let (obsolete, free_slots) = {
            let mut writer = lock(&shared.writer);
            let current = writer.segment;
            let obsolete: Vec<u64> = writer.live.range(..segment.min(current)).copied().collect();
            for n in &obsolete {
                writer.live.remove(n);
                writer.ended.remove(n);
            }
            let free_slots = shared
                .options
                .recycle_segments
                .saturating_sub(writer.free.len());
            (obsolete, free_slots)
        };
        if obsolete.is_empty() {
            return Ok(0);
        }
        let (recycle, remove) = obsolete.split_at(obsolete.len().min(free_slots));
        for &n in remove {
            let path = shared.path(n);
            shared
                .fs
                .remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        }
        for &n in recycle {
            let path = shared.path(n);
            let free = free_path(&shared.dir, n);
            shared
                .fs
                .rename(&path, &free)
                .map_err(|e| Error::io(format!("renaming {} for reuse", path.display()), e))?;
        }
        // The retired names must be gone before their files are reused.
        shared
            .fs
            .sync_dir(&shared.dir)
            .map_err(|e| Error::io(format!("syncing directory {}", shared.dir.display()), e))?;
        for &n in recycle {
            zero_fill(shared.fs.as_ref(), &free_path(&shared.dir, n))?;
            lock(&shared.writer).free.push_back(n);
        }
        Ok(obsolete.len())
    }

    /// The counters since open.
    pub fn stats(&self) -> WalStats {
        let c = &self.shared.stats;
        WalStats {
            appends: c.appends.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            segments_started: c.segments_started.load(Ordering::Relaxed),
            segments_recycled: c.segments_recycled.load(Ordering::Relaxed),
            slowest_rotation: Duration::from_nanos(
                c.slowest_rotation_nanos.load(Ordering::Relaxed),
            ),
        }
    }

    /// Stops the background syncer and, unless the mode is
    /// [`SyncMode::None`], syncs what was appended; writes any gathered
    /// appends and removes the files kept for reuse.
    ///
    /// # Errors
    /// As [`Wal::sync`].
    pub fn close(mut self) -> Result<()> {
        self.stop_syncer();
        self.stop_sealer();
        self.shared.seal_pending()?;
        if self.shared.options.sync_mode != SyncMode::None {
            self.sync()?;
        }
        self.shared.write_pending_now()?;
        self.shared.trim_prepared();
        // Files kept for reuse are no use to the next open (which deletes
        // them, as it cannot trust their zeroing): free the space now.
        let free: Vec<u64> = lock(&self.shared.writer).free.drain(..).collect();
        for segment in free {
            let path = free_path(&self.shared.dir, segment);
            if let Err(e) = self.shared.fs.remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "removing a free WAL file");
            }
        }
        Ok(())
    }

    fn stop_syncer(&mut self) {
        if let Some(handle) = self.syncer.take() {
            lock(&self.shared.sync).shutdown = true;
            self.shared.synced_cv.notify_all();
            // The syncer only returns; a panic in it has nothing to report here.
            let _ = handle.join();
        }
    }

    fn stop_sealer(&mut self) {
        if let Some(handle) = self.sealer.take() {
            lock(&self.shared.sealer_state).shutdown = true;
            self.shared.sealer_cv.notify_all();
            // As for the syncer.
            let _ = handle.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.stop_syncer();
        self.stop_sealer();
        // Hand gathered records to the OS; a failure poisons nothing that
        // anyone will use again.
        let _ = self.shared.write_pending_now();
    }
}

impl Shared {
    fn path(&self, segment: u64) -> PathBuf {
        self.dir.join(segment_file_name(segment))
    }

    fn poison_state(&self) -> Option<Poison> {
        if !self.poisoned.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.poison).clone()
    }

    fn check_poison(&self) -> Result<()> {
        match self.poison_state() {
            Some(poison) => Err(poison.error()),
            None => Ok(()),
        }
    }

    /// Records a failure; every later operation reports it (the first
    /// failure is kept, except that a failed fsync always marks the log as
    /// never resumable).
    fn fail(&self, context: String, source: std::io::Error, failed: Failed) -> Error {
        {
            let mut poison = lock(&self.poison);
            let fsync_failed = failed == Failed::Sync;
            match poison.as_mut() {
                None => {
                    *poison = Some(Poison {
                        cause: Arc::new(Error::copy_io(&context, &source)),
                        fsync_failed,
                    });
                }
                Some(p) => p.fsync_failed |= fsync_failed,
            }
            self.poisoned.store(true, Ordering::Release);
        }
        tracing::error!(%context, error = %source, "WAL poisoned");
        self.synced_cv.notify_all();
        Error::io(context, source)
    }

    /// Writes one record; returns its position and `written` after it.
    /// With `unless_sealing`, writes nothing and returns `None` while a
    /// seal is pending (before the record, or after the rotation it
    /// needed); without, never `None`.
    fn write_record(
        &self,
        payload: &[u8],
        unless_sealing: bool,
    ) -> Result<Option<(WalPosition, u64)>> {
        let mut guard = lock(&self.writer);
        loop {
            self.check_poison()?;
            let in_block = (guard.offset % BLOCK_BYTES as u64) as usize;
            let len = encoded_record_len(in_block, payload.len()) as u64;
            if guard.offset <= guard.records_start
                || guard.offset + len <= self.options.segment_bytes
            {
                break;
            }
            if matches!(guard.spare, Spare::Creating) {
                // Another append may rotate meanwhile: look again after.
                guard = self.wait_for_spare(guard);
                continue;
            }
            self.rotate_locked(&mut guard)?;
            break;
        }
        if unless_sealing && !guard.sealing.is_empty() {
            return Ok(None);
        }
        let writer = &mut *guard;
        let start = writer.offset;
        // The first fragment starts after any padding at the end of a block.
        let first_fragment = start + first_fragment_skip(start);
        writer.buf.clear();
        encode_record(&mut writer.buf, start, segment_tag(writer.segment), payload);
        if self.buffering() {
            if writer.pending.is_empty() {
                writer.pending_offset = start;
            }
            let before = writer.pending.len();
            let WriterState { pending, buf, .. } = &mut *writer;
            pending.extend_from_slice(buf);
            if writer.pending.len() >= self.options.buffer_bytes
                && let Err(e) = self.write_pending(writer)
            {
                // This record fails and is not acknowledged; the gathered
                // ones before it were, and are kept for `resume`.
                writer.pending.truncate(before);
                return Err(e);
            }
        } else if let Err(e) = writer.file.write_all_at(&writer.buf, start) {
            return Err(self.fail(
                format!("writing {}", self.path(writer.segment).display()),
                e,
                Failed::Write,
            ));
        }
        let written = writer.buf.len() as u64;
        if writer.buf.capacity() > 4 * 1024 * 1024 {
            writer.buf = Vec::new();
        }
        writer.offset += written;
        writer.written += written;
        if writer.written - writer.kicked >= SYNC_KICK_BYTES
            && matches!(self.options.sync_mode, SyncMode::Interval(_))
        {
            // Wake the interval syncer early: a seal's sync then finds
            // little unsynced data.
            writer.kicked = writer.written;
            self.synced_cv.notify_all();
        }
        self.stats.appends.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_written
            .fetch_add(written, Ordering::Relaxed);
        Ok(Some((
            WalPosition {
                segment: writer.segment,
                offset: first_fragment,
            },
            writer.written,
        )))
    }

    /// Whether appends are gathered in memory ([`WalOptions::buffer_bytes`]).
    fn buffering(&self) -> bool {
        self.options.buffer_bytes > 0 && self.options.sync_mode != SyncMode::Always
    }

    /// Writes the gathered records to the file. On failure they stay
    /// gathered (they were acknowledged), for [`Wal::resume`].
    fn write_pending(&self, writer: &mut WriterState) -> Result<()> {
        if writer.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = writer
            .file
            .write_all_at(&writer.pending, writer.pending_offset)
        {
            return Err(self.fail(
                format!("writing {}", self.path(writer.segment).display()),
                e,
                Failed::Write,
            ));
        }
        writer.pending.clear();
        if writer.pending.capacity() > 4 * self.options.buffer_bytes.max(BLOCK_BYTES) {
            writer.pending = Vec::new();
        }
        Ok(())
    }

    /// Writes what is gathered, if anything (for close and drop).
    fn write_pending_now(&self) -> Result<()> {
        let mut writer = lock(&self.writer);
        self.check_poison()?;
        self.write_pending(&mut writer)
    }

    /// Waits until no spare is being created (a rotation needs its number).
    fn wait_for_spare<'a>(
        &self,
        mut writer: MutexGuard<'a, WriterState>,
    ) -> MutexGuard<'a, WriterState> {
        while matches!(writer.spare, Spare::Creating) {
            writer = self
                .spare_cv
                .wait(writer)
                .unwrap_or_else(|e| e.into_inner());
        }
        writer
    }

    /// Ends the current segment and goes on in the next one, which opens
    /// with a `Predecessor` fragment naming the old one and its final
    /// length. Without a listener, the old segment is synced and the new
    /// one created durably here; with one, the new one is the spare when
    /// it is ready (else created and announced here), and the old one is
    /// queued for the background sealer. The caller waited until no spare
    /// is in creation ([`Shared::wait_for_spare`]).
    fn rotate_locked(&self, writer: &mut WriterState) -> Result<()> {
        let started = std::time::Instant::now();
        self.write_pending(writer)?;
        // A segment ends where its records do.
        trim_prepared(writer);
        let previous = writer.segment;
        let previous_len = writer.offset;
        if self.listener.is_none() {
            let old = self.path(previous);
            writer.file.sync_data().map_err(|e| {
                self.fail(
                    format!("syncing {} to seal it", old.display()),
                    e,
                    Failed::Sync,
                )
            })?;
        }
        let next = previous + 1;
        let file = match std::mem::replace(&mut writer.spare, Spare::None) {
            Spare::Ready(number, file) if number == next => file,
            // (`Creating` cannot be: every caller waits it out first.)
            _ => {
                let file = self.start_segment(next, writer.free.pop_front())?;
                if let Some(listener) = &self.listener
                    && let Err(e) = listener.segment_started(next)
                {
                    // The new file holds nothing; the next rotation
                    // recreates it.
                    return Err(self.fail(
                        format!("recording the start of {}", self.path(next).display()),
                        e,
                        Failed::Write,
                    ));
                }
                file
            }
        };
        let fragment = encode_predecessor(next, previous, previous_len);
        if let Err(e) = file.write_all_at(&fragment, SEGMENT_HEADER_BYTES as u64) {
            // The new segment is durable and announced: the next try uses it.
            writer.spare = Spare::Ready(next, file);
            return Err(self.fail(
                format!("writing {}", self.path(next).display()),
                e,
                Failed::Write,
            ));
        }
        let end_written = writer.written;
        // A sync must cover the fragment even if no record follows it.
        writer.written += fragment.len() as u64;
        self.stats
            .bytes_written
            .fetch_add(fragment.len() as u64, Ordering::Relaxed);
        if self.listener.is_some() {
            writer.sealing.push_back(Sealing {
                segment: previous,
                file: writer.file.clone(),
                len: previous_len,
                end_written,
            });
        }
        writer.ended.insert(previous, previous_len);
        writer.segment = next;
        writer.offset = RECORDS_START;
        writer.records_start = RECORDS_START;
        // A recycled file is zeroed to its full length already.
        writer.prepared = file.len().unwrap_or(0).max(RECORDS_START);
        writer.file = file;
        writer.live.insert(next);
        self.wake_sealer();
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stats
            .slowest_rotation_nanos
            .fetch_max(took, Ordering::Relaxed);
        Ok(())
    }

    /// Asks the background sealer (if any) to seal what rotations queued
    /// and to prepare a spare.
    fn wake_sealer(&self) {
        if self.listener.is_some() {
            lock(&self.sealer_state).wake = true;
            self.sealer_cv.notify_all();
        }
    }

    /// Seals every segment queued by rotations, oldest first: syncs it,
    /// then tells the listener. Concurrent callers take turns.
    ///
    /// # Errors
    /// A failed sync ([`Error::Io`]; the log is poisoned for good) or
    /// listener call (poisoned until [`Wal::resume`]; the seal stays
    /// queued); [`Error::Poisoned`] after an earlier failure.
    fn seal_pending(&self) -> Result<()> {
        let Some(listener) = &self.listener else {
            return Ok(());
        };
        if lock(&self.writer).sealing.is_empty() {
            // The common case: no turn to wait for behind a sync.
            return Ok(());
        }
        let _turn = lock(&self.seal_lock);
        while let Some(next) = self.next_seal() {
            self.seal(listener.as_ref(), &next)?;
        }
        Ok(())
    }

    /// The oldest segment still to be sealed.
    fn next_seal(&self) -> Option<Sealing> {
        lock(&self.writer).sealing.front().cloned()
    }

    /// Seals `next`, the oldest segment still to be sealed: syncs it, tells
    /// `listener`, and takes it off the queue. The caller holds `seal_lock`.
    fn seal(&self, listener: &dyn SegmentListener, next: &Sealing) -> Result<()> {
        self.check_poison()?;
        self.sync_sealing(next)?;
        let path = self.path(next.segment);
        listener
            .segment_sealed(next.segment, next.len)
            .map_err(|e| {
                self.fail(
                    format!("recording {} as sealed", path.display()),
                    e,
                    Failed::Write,
                )
            })?;
        lock(&self.writer).sealing.pop_front();
        Ok(())
    }

    /// Syncs a segment to be sealed (a failure poisons the log for good).
    fn sync_sealing(&self, next: &Sealing) -> Result<()> {
        next.file.sync_data().map_err(|e| {
            self.fail(
                format!("syncing {} to seal it", self.path(next.segment).display()),
                e,
                Failed::Sync,
            )
        })
    }

    /// Creates and announces the next segment ahead of the rotation that
    /// will need it, unless one is ready (or its last try failed). A
    /// failure is only logged: that rotation creates the segment itself.
    fn prepare_spare(&self) {
        let Some(listener) = &self.listener else {
            return;
        };
        let (number, reuse) = {
            let mut writer = lock(&self.writer);
            if !matches!(writer.spare, Spare::None) || self.poisoned.load(Ordering::Acquire) {
                return;
            }
            writer.spare = Spare::Creating;
            (writer.segment + 1, writer.free.pop_front())
        };
        let path = self.path(number);
        let created = create_segment(self.fs.as_ref(), &self.dir, number, reuse).and_then(|file| {
            listener
                .segment_started(number)
                .map(|()| file)
                .map_err(|e| (format!("recording the start of {}", path.display()), e))
        });
        let spare = match created {
            Ok(file) => {
                self.stats.segments_started.fetch_add(1, Ordering::Relaxed);
                if reuse.is_some() {
                    self.stats.segments_recycled.fetch_add(1, Ordering::Relaxed);
                }
                Spare::Ready(number, file)
            }
            Err((context, e)) => {
                tracing::warn!(%context, error = %e, "preparing the next WAL segment ahead");
                Spare::Failed
            }
        };
        lock(&self.writer).spare = spare;
        self.spare_cv.notify_all();
    }

    /// The body of the background sealer (with a listener only).
    fn run_sealer(&self) {
        let mut state = lock(&self.sealer_state);
        loop {
            while !state.wake && !state.shutdown {
                state = self
                    .sealer_cv
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if state.shutdown {
                return;
            }
            state.wake = false;
            drop(state);
            // A failure poisons the log; appenders and syncs report it.
            if self.seal_pending().is_ok() {
                self.prepare_spare();
            }
            state = lock(&self.sealer_state);
        }
    }

    /// Writes zeros into the current segment from where its file ends to
    /// [`PREPARE_AHEAD_BYTES`] further (at most to the segment size) once
    /// the write offset is within [`PREPARE_LOW_BYTES`] of that end. Runs
    /// under the writer lock, so no append can land in the range while it
    /// is zeroed; the sync that follows makes the new length durable once,
    /// and the synced appends after it overwrite allocated blocks (on this
    /// machine's disk 40–60% faster than appends that grow the file). The
    /// reader takes zeroed space for the end of the segment, as it does in
    /// recycled files.
    ///
    /// A failure (a full disk, say) is no failure of the log: the appends
    /// grow the file as they would have, and this segment is not prepared
    /// again.
    fn prepare_ahead(&self, writer: &mut WriterState) {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let limit = self.options.segment_bytes;
        if writer.prepared >= limit || writer.offset + PREPARE_LOW_BYTES <= writer.prepared {
            return;
        }
        let mut at = writer.prepared.max(writer.offset);
        let end = (at + PREPARE_AHEAD_BYTES).min(limit);
        while at < end {
            let n = (end - at).min(ZEROS.len() as u64);
            if let Err(e) = writer.file.write_all_at(&ZEROS[..n as usize], at) {
                tracing::debug!(error = %e, segment = writer.segment, "zeroing WAL space ahead");
                writer.prepared = limit;
                return;
            }
            at += n;
            writer.prepared = at;
        }
    }

    /// Cuts the zeros written ahead off the current segment (at close: the
    /// log's files end where their records do).
    fn trim_prepared(&self) {
        trim_prepared(&mut lock(&self.writer));
    }

    /// Starts segment `segment` (see [`create_segment`]), poisoning the log
    /// on failure.
    fn start_segment(&self, segment: u64, reuse: Option<u64>) -> Result<Arc<dyn File>> {
        let file = create_segment(self.fs.as_ref(), &self.dir, segment, reuse)
            .map_err(|(context, e)| self.fail(context, e, Failed::Write))?;
        self.stats.segments_started.fetch_add(1, Ordering::Relaxed);
        if reuse.is_some() {
            self.stats.segments_recycled.fetch_add(1, Ordering::Relaxed);
        }
        Ok(file)
    }

    /// Returns once `synced >= target`, syncing if no one else is. A
    /// caller's sync (`prepare`; not the interval syncer's) also writes
    /// zeros ahead of the write offset when it runs low (see
    /// [`Shared::prepare_ahead`]), so that the synced appends after it do
    /// not grow the file.
    fn sync_to(&self, target: u64, prepare: bool) -> Result<()> {
        let mut state = lock(&self.sync);
        loop {
            self.check_poison()?;
            if state.synced >= target {
                return Ok(());
            }
            if !state.syncing {
                break;
            }
            state = self
                .synced_cv
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.syncing = true;
        drop(state);

        let result = self.sync_current(target, prepare);
        let mut state = lock(&self.sync);
        state.syncing = false;
        let outcome = match result {
            Ok(upto) => {
                state.synced = state.synced.max(upto);
                self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e),
        };
        drop(state);
        self.synced_cv.notify_all();
        outcome
    }

    /// Makes everything up to `target` (in `written` units) durable;
    /// returns how far that reaches. Every segment before the one holding
    /// `target` is sealed first, seal recorded; the one holding it is only
    /// synced (its seal is not needed for what is before `target`, so a
    /// refused seal never fails a sync that it does not concern).
    fn sync_current(&self, target: u64, prepare: bool) -> Result<u64> {
        let turn = lock(&self.seal_lock);
        let (file, upto, segment) = loop {
            let mut writer = lock(&self.writer);
            let Some(next) = writer.sealing.front().cloned() else {
                self.write_pending(&mut writer)?;
                if prepare {
                    self.prepare_ahead(&mut writer);
                }
                break (writer.file.clone(), writer.written, writer.segment);
            };
            drop(writer);
            if next.end_written >= target {
                self.sync_sealing(&next)?;
                return Ok(next.end_written);
            }
            if let Some(listener) = &self.listener {
                self.seal(listener.as_ref(), &next)?;
            }
        };
        // Seals of later rotations may go on meanwhile: they come after.
        drop(turn);
        file.sync_data().map_err(|e| {
            self.fail(
                format!("syncing {}", self.path(segment).display()),
                e,
                Failed::Sync,
            )
        })?;
        Ok(upto)
    }

    /// The body of the [`SyncMode::Interval`] thread.
    fn run_syncer(&self, interval: Duration) {
        let mut state = lock(&self.sync);
        loop {
            // Asked to stop while it synced: the wake-up came before the
            // wait, which would otherwise sleep a whole interval.
            if state.shutdown {
                return;
            }
            let (next, _) = self
                .synced_cv
                .wait_timeout(state, interval)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            if state.shutdown {
                return;
            }
            if self.poisoned.load(Ordering::Acquire) {
                // Nothing to sync until the log is resumed (or closed).
                continue;
            }
            drop(state);
            let written = lock(&self.writer).written;
            // A failure poisons the log; appenders report it.
            let _ = self.sync_to(written, false);
            state = lock(&self.sync);
        }
    }
}

/// Cuts the zeros written ahead (or left by a recycled file's zeroing) off
/// the current segment, so that it ends where its records do. A failure is
/// only logged: a zeroed tail reads as the end of the segment.
fn trim_prepared(writer: &mut WriterState) {
    if writer.prepared <= writer.offset {
        return;
    }
    match writer.file.set_len(writer.offset) {
        Ok(()) => writer.prepared = writer.offset,
        Err(e) => {
            tracing::debug!(error = %e, segment = writer.segment, "trimming zeroed WAL space")
        }
    }
}

/// Where the records of a segment started by a rotation begin: after its
/// header and its `Predecessor` fragment.
const RECORDS_START: u64 = (SEGMENT_HEADER_BYTES + PREDECESSOR_FRAGMENT_BYTES) as u64;

/// Under [`SyncMode::Interval`], appends wake the syncer early each time
/// this many bytes were appended since it was last woken, so that the
/// unsynced data a rotation must sync stays small.
const SYNC_KICK_BYTES: u64 = 1 << 20;

/// How far ahead of the write offset a caller's sync zeroes the segment
/// (see [`Shared::prepare_ahead`]): one size change per this many bytes of
/// synced appends.
const PREPARE_AHEAD_BYTES: u64 = 1 << 20;

/// The write offset this close to the zeroed end starts the next zeroing.
const PREPARE_LOW_BYTES: u64 = 256 << 10;

/// The name a retired segment file has while it waits for reuse.
fn free_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:06}{FREE_SUFFIX}"))
}

/// Overwrites a whole file with zeros and syncs it.
fn zero_fill(fs: &dyn Fs, path: &Path) -> Result<()> {
    const CHUNK_BYTES: usize = 1024 * 1024;
    let context = |what: &str| format!("{what} {} for reuse", path.display());
    let file = fs
        .open_write(path)
        .map_err(|e| Error::io(context("opening"), e))?;
    let len = file.len().map_err(|e| Error::io(context("sizing"), e))?;
    let zeros = vec![0u8; CHUNK_BYTES.min(len as usize)];
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeros[..n], offset)
            .map_err(|e| Error::io(context("zeroing"), e))?;
        offset += n as u64;
    }
    file.sync_data()
        .map_err(|e| Error::io(context("syncing"), e))
}

/// Cuts each of `segments` (dropped by a replay) back to its header,
/// synced: it holds no record any more. Missing files are skipped.
fn cut_dropped(fs: &dyn Fs, dir: &Path, segments: &[u64]) -> Result<()> {
    for &segment in segments {
        let path = dir.join(segment_file_name(segment));
        let context = |what: &str| format!("{what} {}", path.display());
        let file = match fs.open_write(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(context("opening dropped segment"), e)),
        };
        if file.len().map_err(|e| Error::io(context("sizing"), e))? > SEGMENT_HEADER_BYTES as u64 {
            file.set_len(SEGMENT_HEADER_BYTES as u64)
                .map_err(|e| Error::io(context("cutting"), e))?;
            file.sync_all()
                .map_err(|e| Error::io(context("syncing"), e))?;
        }
    }
    Ok(())
}

/// Creates segment `segment` (or renames the free file `reuse` to it) and
/// writes its header; the header and the directory entry are synced before
/// it returns, so the segment is durable before it receives any record.
fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    segment: u64,
    reuse: Option<u64>,
) -> Result<Arc<dyn File>, (String, std::io::Error)> {
    let path = dir.join(segment_file_name(segment));
    let context = |what: &str| format!("{what} {}", path.display());
    let file = match reuse {
        Some(old) => {
            fs.rename(&free_path(dir, old), &path)
                .map_err(|e| (context("recycling a free file as"), e))?;
            fs.open_write(&path).map_err(|e| (context("opening"), e))?
        }
        None => fs.create(&path).map_err(|e| (context("creating"), e))?,
    };
    file.write_all_at(&encode_segment_header(segment), 0)
        .map_err(|e| (context("writing the header of"), e))?;
    file.sync_data().map_err(|e| (context("syncing"), e))?;
    fs.sync_dir(dir)
        .map_err(|e| (format!("syncing directory {}", dir.display()), e))?;
    Ok(file)
}

impl Recovery {
    /// What the replay found so far.
    pub fn report(&self) -> &ReplayReport {
        self.replay.report()
    }

    /// Makes what the replay read durable and what it dropped harmless:
    /// syncs every segment read that the plan did not list as sealed (a
    /// process killed after appending leaves records in the page cache),
    /// and cuts each dropped segment ([`ReplayReport::segments_dropped`])
    /// back to its header, synced, so that no later open finds its
    /// records. Call it once the replay is exhausted, before recording the
    /// segments as sealed at the lengths the replay reported
    /// ([`ReplayReport::segment_ends`]).
    ///
    /// # Errors
    /// [`Error::Io`] if a sync or cut fails.
    pub fn sync_replayed(&self) -> Result<()> {
        let report = self.replay.report();
        for &segment in &report.segments {
            if self.replay.is_sealed(segment) {
                continue;
            }
            let path = self.dir.join(segment_file_name(segment));
            let context = |what: &str| format!("{what} {}", path.display());
            let file = self
                .fs
                .open_write(&path)
                .map_err(|e| Error::io(context("opening"), e))?;
            file.sync_data()
                .map_err(|e| Error::io(context("syncing"), e))?;
        }
        cut_dropped(self.fs.as_ref(), &self.dir, &report.segments_dropped)
    }

    /// Drains any batches not yet read (checking them), truncates a torn
    /// tail, takes back recycled files, and opens the log for appending in a
    /// new segment.
    ///
    /// # Errors
    /// Whatever the replay reports ([`Error::Corruption`] under the recovery
    /// mode's rules, [`Error::Io`]), or an I/O error while truncating or
    /// creating files.
    pub fn finish(self) -> Result<(Wal, ReplayReport)> {
        self.finish_with(None, 0)
    }

    /// [`Recovery::finish`], telling `listener` about the new segment and
    /// about every segment later rotations start (see [`SegmentListener`]).
    /// The new segment is numbered above every segment file in the
    /// directory and at least `first_segment` (an owner whose manifest
    /// retired segments below a log number passes it, so that a new
    /// segment is never taken for a retired one).
    ///
    /// # Errors
    /// As [`Recovery::finish`]; an error of the listener about the first
    /// segment fails the whole call (as [`Error::Io`]).
    pub fn finish_with(
        mut self,
        listener: Option<Arc<dyn SegmentListener>>,
        first_segment: u64,
    ) -> Result<(Wal, ReplayReport)> {
        for batch in self.replay.by_ref() {
            batch?;
        }
        let report = self.replay.report().clone();
        let fs = self.fs;
        let dir = self.dir;
        cut_dropped(fs.as_ref(), &dir, &report.segments_dropped)?;
        if let Some((segment, offset)) = report.torn_tail {
            let path = dir.join(segment_file_name(segment));
            let context = |what: &str| format!("{what} the torn tail of {}", path.display());
            match fs.open_write(&path) {
                Ok(file) => {
                    file.set_len(offset)
                        .map_err(|e| Error::io(context("truncating"), e))?;
                    file.sync_all()
                        .map_err(|e| Error::io(context("syncing"), e))?;
                }
                // The caller retired the segment after the replay (it held
                // nothing the caller still needs): nothing to trim.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(context("opening"), e)),
            }
        }
        let names = fs
            .list_dir(&dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let live: BTreeSet<u64> = names
            .iter()
            .filter_map(|n| parse_segment_file_name(n))
            .collect();
        // Files left for reuse by an earlier run may have been cut short
        // while being zeroed: delete them rather than trust their content.
        for n in names.iter().filter_map(|n| parse_free_file_name(n)) {
            let path = free_path(&dir, n);
            fs.remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        }
        let next = live
            .iter()
            .next_back()
            .map_or(1, |n| n + 1)
            .max(first_segment);
        let file = create_segment(fs.as_ref(), &dir, next, None)
            .map_err(|(context, e)| Error::io(context, e))?;
        if let Some(listener) = &listener {
            listener.segment_started(next).map_err(|e| {
                Error::io(
                    format!(
                        "recording the start of {}",
                        dir.join(segment_file_name(next)).display()
                    ),
                    e,
                )
            })?;
        }
        // The replayed segments still on disk are live until the caller
        // retires them (it may have removed some already); any other
        // segment file was left alone by the plan's caller.
        let mut live: BTreeSet<u64> = if report.segments.is_empty() {
            live
        } else {
            report
                .segments
                .iter()
                .copied()
                .filter(|n| live.contains(n))
                .collect()
        };
        live.insert(next);
        let stats = Counters::default();
        stats.segments_started.store(1, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            _lock: self.lock,
            fs,
            dir,
            options: self.options.clone(),
            writer: Mutex::new(WriterState {
                segment: next,
                file,
                offset: SEGMENT_HEADER_BYTES as u64,
                records_start: SEGMENT_HEADER_BYTES as u64,
                prepared: SEGMENT_HEADER_BYTES as u64,
                written: 0,
                kicked: 0,
                buf: Vec::new(),
                pending: Vec::new(),
                pending_offset: 0,
                live,
                free: VecDeque::new(),
                sealing: VecDeque::new(),
                ended: BTreeMap::new(),
                spare: Spare::None,
            }),
            sync: Mutex::new(SyncState::default()),
            synced_cv: Condvar::new(),
            poisoned: AtomicBool::new(false),
            poison: Mutex::new(None),
            listener,
            stats,
            seal_lock: Mutex::new(()),
            spare_cv: Condvar::new(),
            sealer_state: Mutex::new(SealerState::default()),
            sealer_cv: Condvar::new(),
        });
        let syncer = match self.options.sync_mode {
            SyncMode::Interval(interval) => {
                let shared = shared.clone();
                Some(
                    std::thread::Builder::new()
                        .name("kevo-wal-sync".to_string())
                        .spawn(move || shared.run_syncer(interval))
                        .map_err(|e| Error::io("starting the WAL sync thread", e))?,
                )
            }
            SyncMode::None | SyncMode::Always => None,
        };
        let sealer = match &shared.listener {
            Some(_) => {
                // The first spare is prepared here, with open's other file
                // work, rather than beside the first writes: its syncs
                // would queue with theirs.
                shared.prepare_spare();
                let shared = shared.clone();
                Some(
                    std::thread::Builder::new()
                        .name("kevo-wal-seal".to_string())
                        .spawn(move || shared.run_sealer())
                        .map_err(|e| Error::io("starting the WAL seal thread", e))?,
                )
            }
            None => None,
        };
        Ok((
            Wal {
                shared,
                syncer,
                sealer,
            },
            report,
        ))
    }
}

impl Iterator for Recovery {
    type Item = Result<ReplayedBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.replay.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::MemFs;

    const SPEC: &str = include_str!("../../../docs/format/wal.md");

    /// The bytes of the spec's worked example: in the code block after the
    /// "## Worked example" heading, each line is an offset, hex bytes (two
    /// digits each), then what they mean.
    fn spec_bytes() -> Vec<u8> {
        let section = SPEC.split("## Worked example").nth(1).expect("section");
        let block = section.split("```").nth(1).expect("code block");
        let mut bytes = Vec::new();
        for line in block
            .lines()
            .skip_while(|l| !l.starts_with("offset"))
            .skip(1)
        {
            let mut tokens = line.split_whitespace();
            let Some(offset) = tokens.next() else {
                continue;
            };
            let offset: usize = offset.parse().expect("offset");
            assert_eq!(offset, bytes.len(), "offset column of {line:?}");
            for token in tokens {
                match u8::from_str_radix(token, 16) {
                    Ok(byte) if token.len() == 2 => bytes.push(byte),
                    _ => break,
                }
            }
        }
        bytes
    }

    #[test]
    fn worked_example_matches_the_format_spec() {
        let mem = MemFs::new();
        let fs: Arc<dyn Fs> = Arc::new(mem.clone());
        let (wal, _) = Wal::open(fs, Path::new("/db"), WalOptions::default())
            .unwrap()
            .finish()
            .unwrap();
        let mut batch = Batch::new();
        batch.set_seqno(1);
        batch.put("k", "v");
        batch.delete_in(7, "k");
        batch.delete_range("a", "c");
        wal.append(&batch).unwrap();
        let bytes = mem.read_file(Path::new("/db/000001.wal")).unwrap();
        let expected: &[u8] = &[
            0x4b, 0x45, 0x56, 0x4f, 0x57, 0x41, 0x4c, 0x00, // magic
            0x04, 0x00, 0x00, 0x00, // version 4, flags
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // segment 1
            0x14, 0xca, 0x0b, 0x98, // header crc
            0x24, 0x42, 0x4c, 0x06, // fragment crc
            0x1a, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, // length 26, Full, tag 1
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seqno 1
            0x03, 0x00, 0x00, 0x00, // count 3
            0x02, 0x01, 0x6b, 0x01, 0x76, // Put "k" "v"
            0x81, 0x07, 0x01, 0x6b, // Delete in keyspace 7 "k"
            0x03, 0x01, 0x61, 0x01, 0x63, // RangeDelete ["a", "c")
        ];
        // The synced append zeroed space ahead of itself (see
        // `Shared::prepare_ahead`): the record, then zeros.
        assert_eq!(&bytes[..expected.len()], expected);
        assert!(bytes[expected.len()..].iter().all(|&b| b == 0));
        assert_eq!(spec_bytes(), expected, "docs/format/wal.md, worked example");
    }

    #[test]
    fn concurrent_appends_need_at_most_one_sync_each() {
        let mem = MemFs::new();
        let fs: Arc<dyn Fs> = Arc::new(mem);
        let (wal, _) = Wal::open(fs, Path::new("/db"), WalOptions::default())
            .unwrap()
            .finish()
            .unwrap();
        let wal = Arc::new(wal);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let mut batch = Batch::new();
                        batch.put(format!("{t}-{i}"), "v");
                        wal.append(&batch).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = wal.stats();
        assert_eq!(stats.appends, 800);
        // Every append was synced, never more than once each.
        assert!(stats.syncs >= 1 && stats.syncs <= 800, "{stats:?}");
    }
}
