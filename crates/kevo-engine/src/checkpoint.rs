//! Online checkpoints: `Db::checkpoint(dir)` makes, while writes, flushes
//! and compactions go on, a directory that opens as a database of its own
//! holding exactly the state at one sequence number.
//!
//! How (the order is the argument):
//! 1. WAL retirement is held (`retention::WalHold`): no segment is deleted or
//!    recycled until the checkpoint is done; a flush that would retire some
//!    records its log number, and the segments go when the hold is lifted.
//! 2. Under the writer mutex (no batch is being appended, no memtable
//!    switched, no keyspace created or dropped) the checkpoint takes the
//!    version set's whole state ([`VersionSet::state`]: every keyspace's
//!    version and log number) and the WAL's end position, and the last
//!    seqno: every write acknowledged before the call is in the tables of
//!    that state or in the WAL before that position. Holding the state
//!    keeps its versions live, so their tables are not deleted either. The
//!    mutex is held for microseconds; the copying happens after.
//! 3. The WAL is synced, so that everything before the position is in the
//!    segment files.
//! 4. Into `<target>.checkpoint-tmp`: every table of the state hard-linked
//!    (copied where the file system cannot link), the WAL segments from the
//!    state's log number on copied up to the position (older ones to the
//!    length they were sealed at), each synced; a fresh manifest written
//!    from the state (its segments exactly the copied ones, each sealed at
//!    its copied length, so that opening it replays them whole and never
//!    mistakes their end for a torn tail); `CURRENT` last; the newest
//!    `OPTIONS` file copied for inspection.
//! 5. The directory is synced and renamed to `target`, and the parent
//!    synced. A crash or an error before the rename leaves only the
//!    temporary directory (removed on error, and by the next checkpoint to
//!    the same target), never a `target` that could be taken for a good one.
//!
//! Opening the checkpoint is an ordinary recovery: its tables, then its WAL
//! replayed on top, giving the state at the position's seqno.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kevo_core::fs::parent_dir;
use kevo_core::{Fs, SeqNo};
use kevo_manifest::{ManifestOptions, RecoveredManifest, VersionSet, WalSegments, table_file_name};
use kevo_wal::segment_file_name;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::files::OPTIONS_FILE_PREFIX;
use crate::sync::lock;

/// How [`Db::checkpoint_with`](crate::Db::checkpoint_with) makes a
/// checkpoint.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    /// Flush every keyspace's memtable first, so that the checkpoint holds
    /// (almost) no WAL: more tables written by the live database, less to
    /// copy and replay. The default (`false`) copies the WAL tail instead.
    pub flush_first: bool,
}

/// What a checkpoint holds and what making it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The checkpoint's directory.
    pub dir: PathBuf,
    /// It holds exactly the writes up to this seqno (every write
    /// acknowledged before the call, and perhaps some that were being
    /// committed during it).
    pub seqno: SeqNo,
    /// Tables in it, of every keyspace.
    pub tables: usize,
    /// Of those, how many were hard-linked (the rest were copied).
    pub tables_linked: usize,
    /// Bytes of the tables in it.
    pub table_bytes: u64,
    /// Bytes copied: copied tables, WAL segments, the options file.
    pub bytes_copied: u64,
    /// WAL segments copied, and their bytes.
    pub wal_segments: usize,
    /// Bytes of WAL copied.
    pub wal_bytes: u64,
    /// How long it took.
    pub duration: Duration,
}

/// Holds WAL retirement while alive; the last one to go retires what was
/// deferred.
struct WalHoldGuard<'a> {
    engine: &'a Engine,
}

impl<'a> WalHoldGuard<'a> {
    fn new(engine: &'a Engine) -> Self {
        engine.wal_hold.hold();
        WalHoldGuard { engine }
    }
}

impl Drop for WalHoldGuard<'_> {
    fn drop(&mut self) {
        if let Some(log_number) = self.engine.wal_hold.release()
            && let Ok(Err(e)) = self
                .engine
                .with_wal(|wal| wal.remove_segments_before(log_number))
        {
            tracing::warn!(error = %e, "retiring WAL segments after a checkpoint failed");
        }
    }
}

/// Refuses a `path` inside the database directory `db_dir` (the database
/// would find the copy among its own files). Paths are compared as given
/// and, where both exist, as the file system resolves them.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `what`.
pub(crate) fn refuse_inside(path: &Path, db_dir: &Path, what: &str) -> Result<()> {
    let resolved = |p: &Path| {
        // The deepest existing ancestor resolved, the rest appended.
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        while !existing.as_os_str().is_empty() {
            if let Ok(real) = std::fs::canonicalize(&existing) {
                return rest
                    .iter()
                    .rev()
                    .fold(real, |acc: PathBuf, part| acc.join(part));
            }
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(up)) => {
                    rest.push(name.to_os_string());
                    existing = up.to_path_buf();
                }
                _ => break,
            }
        }
        p.to_path_buf()
    };
    if path.starts_with(db_dir) || resolved(path).starts_with(resolved(db_dir)) {
        return Err(Error::InvalidArgument(format!(
            "{what} {} is inside the database directory {}",
            path.display(),
            db_dir.display()
        )));
    }
    Ok(())
}

/// Marks a checkpoint target as being made until dropped.
struct TargetClaim<'a> {
    engine: &'a Engine,
    target: PathBuf,
}

impl<'a> TargetClaim<'a> {
    fn new(engine: &'a Engine, target: &Path) -> Result<Self> {
        if !lock(&engine.checkpoint_targets).insert(target.to_path_buf()) {
            return Err(Error::InvalidArgument(format!(
                "a checkpoint to {} is being made already",
                target.display()
            )));
        }
        Ok(TargetClaim {
            engine,
            target: target.to_path_buf(),
        })
    }
}

impl Drop for TargetClaim<'_> {
    fn drop(&mut self) {
        lock(&self.engine.checkpoint_targets).remove(&self.target);
    }
}

/// A directory built under a temporary name and published whole (a
/// checkpoint, a restored backup): `target` must not exist, its parent
/// must; it is built in `<target>.<suffix>` (a leftover of a crashed
/// attempt is removed first) and renamed to `target` only once synced.
pub(crate) struct NewDir<'a> {
    fs: &'a dyn Fs,
    /// Where it is published.
    pub(crate) target: PathBuf,
    /// Where it is built.
    pub(crate) tmp: PathBuf,
    parent: PathBuf,
}

impl<'a> NewDir<'a> {
    /// Checks `target` (`what` names it in errors; it may not lie inside
    /// `not_inside`) and creates the empty temporary directory.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a target that names no directory,
    /// exists, has no parent or lies inside `not_inside`; I/O errors.
    pub(crate) fn start(
        fs: &'a dyn Fs,
        target: &Path,
        suffix: &str,
        what: &str,
        not_inside: &Path,
    ) -> Result<Self> {
        let exists = |path: &Path| {
            fs.exists(path)
                .map_err(|e| Error::io(format!("looking at {}", path.display()), e))
        };
        let Some(name) = target.file_name() else {
            return Err(Error::InvalidArgument(format!(
                "{what} {} names no directory",
                target.display()
            )));
        };
        if exists(target)? {
            return Err(Error::InvalidArgument(format!(
                "{what} {} exists: it must be a new directory",
                target.display()
            )));
        }
        let parent = parent_dir(target);
        if !exists(&parent)? {
            return Err(Error::InvalidArgument(format!(
                "{what}'s parent {} does not exist",
                parent.display()
            )));
        }
        refuse_inside(target, not_inside, what)?;
        let mut tmp_name = name.to_os_string();
        tmp_name.push(".");
        tmp_name.push(suffix);
        let tmp = target.with_file_name(tmp_name);
        if exists(&tmp)? {
            // Left by an attempt that crashed: never a database of its own.
            fs.remove_dir_all(&tmp)
                .map_err(|e| Error::io(format!("removing {}", tmp.display()), e))?;
        }
        fs.create_dir_all(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        Ok(NewDir {
            fs,
            target: target.to_path_buf(),
            tmp,
            parent,
        })
    }

    /// Publishes what `built` (run on the temporary directory) made: syncs
    /// it, renames it to the target and syncs the parent. On any failure
    /// the temporary directory (or the renamed target, if the parent sync
    /// failed) is removed: a failed call leaves nothing at the target.
    ///
    /// # Errors
    /// `built`'s error, or the I/O error of a sync or the rename.
    pub(crate) fn finish<T>(self, built: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        let (fs, tmp, target) = (self.fs, &self.tmp, &self.target);
        let done = built(tmp).and_then(|value| {
            fs.sync_dir(tmp)
                .map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
            fs.rename(tmp, target).map_err(|e| {
                Error::io(
                    format!("renaming {} to {}", tmp.display(), target.display()),
                    e,
                )
            })?;
            Ok(value)
        });
        let value = match done {
            Ok(value) => value,
            Err(e) => {
                remove_quietly(fs, tmp);
                return Err(e);
            }
        };
        if let Err(e) = fs.sync_dir(&self.parent) {
            // Complete, but its name may not survive a crash.
            remove_quietly(fs, target);
            return Err(Error::io(format!("syncing {}", self.parent.display()), e));
        }
        Ok(value)
    }
}

/// `Db::checkpoint_with`.
pub(crate) fn checkpoint(
    engine: &Engine,
    target: &Path,
    options: &CheckpointOptions,
) -> Result<CheckpointInfo> {
    let started = Instant::now();
    engine.life.check_open()?;
    let versions = engine
        .versions()
        .map_err(|cause| Error::ReadOnly { cause })?;
    // One checkpoint per target at a time in this process: two would share
    // the temporary directory.
    let _claim = TargetClaim::new(engine, target)?;
    let dir = NewDir::start(
        engine.fs.as_ref(),
        target,
        "checkpoint-tmp",
        "checkpoint target",
        &engine.dir,
    )?;
    if options.flush_first
        && let Err(e) = flush_all(engine)
    {
        remove_quietly(engine.fs.as_ref(), &dir.tmp);
        return Err(e);
    }
    let mut info = dir.finish(|tmp| build(engine, versions, tmp, started))?;
    info.dir = target.to_path_buf();
    info.duration = started.elapsed();
    tracing::info!(
        dir = %target.display(),
        seqno = info.seqno,
        tables = info.tables,
        linked = info.tables_linked,
        wal_bytes = info.wal_bytes,
        "checkpoint made"
    );
    Ok(info)
}

/// Flushes every keyspace's memtable (what is in the WAL now goes into
/// tables).
///
/// # Errors
/// As [`Db::flush`](crate::Db::flush).
pub(crate) fn flush_all(engine: &Engine) -> Result<()> {
    for keyspace in engine.keyspaces.all() {
        crate::write::flush(engine, &keyspace)?;
    }
    Ok(())
}

/// Removes a failed checkpoint's directory; a failure is only logged (the
/// temporary one is removed by the next checkpoint to the same target).
fn remove_quietly(fs: &dyn Fs, dir: &Path) {
    if let Err(e) = fs.remove_dir_all(dir) {
        tracing::warn!(error = %e, dir = %dir.display(), "removing a failed checkpoint's directory");
    }
}

/// A consistent picture of the database to copy from (steps 1 to 3 of the
/// module documentation): while it lives, WAL retirement is held and its
/// versions keep their tables.
pub(crate) struct Capture<'a> {
    _hold: WalHoldGuard<'a>,
    /// The version set's state; its WAL segments are replaced by the
    /// copied ones before a manifest is written from it.
    pub(crate) state: RecoveredManifest,
    /// The last seqno in the tables and WAL captured.
    pub(crate) seqno: SeqNo,
    /// Every table of every keyspace: (number, bytes).
    pub(crate) tables: Vec<(u64, u64)>,
    /// The WAL segments to copy: (number, bytes to copy: `None` for the
    /// whole file, left unsealed; only where the log no longer knows a
    /// segment's final length, which a checkpoint never meets).
    pub(crate) segments: Vec<(u64, Option<u64>)>,
}

impl Capture<'_> {
    /// The state to write a manifest from, for a copy holding the captured
    /// tables and `copied` WAL segments (number, bytes copied, sealed).
    pub(crate) fn manifest_state(&self, copied: &[(u64, u64, bool)]) -> RecoveredManifest {
        let mut state = self.state.clone();
        let mut segments = WalSegments::default();
        let mut next = state.next_file_number;
        for &(number, len, sealed) in copied {
            segments.insert(number, sealed.then_some(len));
            next = next.max(number + 1);
        }
        for &(number, _) in &self.tables {
            next = next.max(number + 1);
        }
        state.wal_segments = segments;
        state.next_file_number = next;
        state.unexplained_tables.clear();
        state
    }
}

/// Takes a [`Capture`] of `engine` (see the module documentation).
///
/// # Errors
/// [`Error::Closed`]; [`Error::ReadOnly`] if syncing the WAL failed.
pub(crate) fn capture<'a>(engine: &'a Engine, versions: &VersionSet) -> Result<Capture<'a>> {
    let hold = WalHoldGuard::new(engine);
    let (mut state, position, seqno) = {
        let writer = engine.commit.writer();
        engine.life.check_open()?;
        let state = versions.state();
        let position = engine.with_wal(|wal| wal.position())?;
        (state, position, *writer)
    };
    // A failed sync poisons the log: the database turns read-only, as for
    // any write's.
    engine
        .with_wal(|wal| wal.sync())?
        .map_err(|e| engine.read_only(crate::error::from_wal(&engine.dir, e)))?;
    state.next_file_number = state.next_file_number.max(versions.file_number_horizon());
    let tables = std::iter::once(&state.version)
        .chain(state.keyspaces.values().map(|k| &k.version))
        .flat_map(|version| version.tables().map(|(_, t)| (t.number, t.file_size)))
        .collect();
    // The WAL from the global log number on, each segment up to where its
    // records end: the position for the live one, the final length for
    // the others (the manifest's seal may come after the state was read;
    // the sync above made them durable either way).
    let segments = engine.with_wal(|wal| {
        state
            .wal_segments
            .iter()
            .filter(|&(number, _)| number >= state.log_number && number <= position.segment)
            .map(|(number, sealed)| {
                let len = if number == position.segment {
                    Some(position.offset)
                } else {
                    sealed.or_else(|| wal.segment_end(number))
                };
                (number, len)
            })
            .collect()
    })?;
    Ok(Capture {
        _hold: hold,
        state,
        seqno,
        tables,
        segments,
    })
}

/// Steps 4 of the module documentation, into `tmp`.
fn build(
    engine: &Engine,
    versions: &Arc<VersionSet>,
    tmp: &Path,
    started: Instant,
) -> Result<CheckpointInfo> {
    let fs = engine.fs.as_ref();
    let capture = capture(engine, versions)?;
    let mut info = CheckpointInfo {
        dir: tmp.to_path_buf(),
        seqno: capture.seqno,
        tables: 0,
        tables_linked: 0,
        table_bytes: 0,
        bytes_copied: 0,
        wal_segments: 0,
        wal_bytes: 0,
        duration: Duration::ZERO,
    };
    for &(number, size) in &capture.tables {
        let name = table_file_name(number);
        let (from, to) = (engine.dir.join(&name), tmp.join(&name));
        info.tables += 1;
        info.table_bytes += size;
        match fs.hard_link(&from, &to) {
            Ok(()) => info.tables_linked += 1,
            Err(e) if can_copy_instead(&e) => {
                info.bytes_copied += copy_file(fs, &from, fs, &to, None)?.0;
            }
            Err(e) => {
                return Err(Error::io(
                    format!("linking {} to {}", from.display(), to.display()),
                    e,
                ));
            }
        }
    }
    let mut copied = Vec::new();
    for &(number, len) in &capture.segments {
        let name = segment_file_name(number);
        let (bytes, _) = copy_file(fs, &engine.dir.join(&name), fs, &tmp.join(&name), len)?;
        info.wal_segments += 1;
        info.wal_bytes += bytes;
        info.bytes_copied += bytes;
        copied.push((number, bytes, len.is_some()));
    }
    // The newest options file, for inspection (opening the checkpoint takes
    // the caller's options).
    if let Some(name) = newest_options(fs, &engine.dir)? {
        info.bytes_copied += copy_file(fs, &engine.dir.join(&name), fs, &tmp.join(&name), None)?.0;
    }

    // The manifest (and CURRENT, synced) last: before it, the directory
    // does not open as a database.
    let state = capture.manifest_state(&copied);
    drop(capture);
    let fs_arc: Arc<dyn Fs> = Arc::clone(&engine.fs);
    drop(VersionSet::create(
        fs_arc,
        tmp,
        state,
        ManifestOptions::default(),
    )?);
    info.duration = started.elapsed();
    Ok(info)
}

/// Whether a failed hard link means "copy instead" (another file system,
/// or one without links) rather than a real failure.
fn can_copy_instead(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{CrossesDevices, PermissionDenied, Unsupported};
    matches!(e.kind(), CrossesDevices | Unsupported | PermissionDenied)
}

/// Copies the first `len` bytes of `from` (all of it for `None`) into a new
/// file `to` (each on its own file system), synced. Returns the bytes
/// copied and their CRC-32.
///
/// # Errors
/// I/O errors; [`Error::Corruption`] if `from` is shorter than `len`.
pub(crate) fn copy_file(
    from_fs: &dyn Fs,
    from: &Path,
    to_fs: &dyn Fs,
    to: &Path,
    len: Option<u64>,
) -> Result<(u64, u32)> {
    const CHUNK: usize = 1 << 20;
    let src = from_fs
        .open_read(from)
        .map_err(|e| Error::io(format!("opening {}", from.display()), e))?;
    let available = src
        .len()
        .map_err(|e| Error::io(format!("sizing {}", from.display()), e))?;
    let len = len.unwrap_or(available);
    if available < len {
        return Err(Error::Corruption {
            file: from.to_path_buf(),
            offset: available,
            reason: format!("{available} bytes, shorter than the {len} to copy"),
        });
    }
    let dst = to_fs
        .create(to)
        .map_err(|e| Error::io(format!("creating {}", to.display()), e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut offset = 0u64;
    while offset < len {
        let n = ((len - offset) as usize).min(buf.len());
        src.read_exact_at(&mut buf[..n], offset)
            .map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
        hasher.update(&buf[..n]);
        dst.write_all_at(&buf[..n], offset)
            .map_err(|e| Error::io(format!("writing {}", to.display()), e))?;
        offset += n as u64;
    }
    dst.sync_all()
        .map_err(|e| Error::io(format!("syncing {}", to.display()), e))?;
    Ok((len, hasher.finalize()))
}

/// The newest `OPTIONS-` file of `dir`, if any.
pub(crate) fn newest_options(fs: &dyn Fs, dir: &Path) -> Result<Option<String>> {
    let names = fs
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    Ok(names
        .into_iter()
        .filter(|n| n.starts_with(OPTIONS_FILE_PREFIX))
        .max_by_key(|n| n[OPTIONS_FILE_PREFIX.len()..].parse::<u64>().unwrap_or(0)))
}
