//! [`FaultFs`]: wraps any [`Fs`] and fails chosen operations.
//!
//! A test adds [`FaultRule`]s ("the 3rd write to a file whose path contains
//! `wal` fails with `EIO`"), runs the code under test, and then checks both
//! how the code reacted and, through [`FaultFs::op_count`], what it did
//! afterwards (for example that a failed sync was never retried).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{File, FileLock, Fs};

/// The kinds of operation a [`FaultRule`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// [`File::write_at`] (and so each step of [`File::write_all_at`]).
    Write,
    /// [`File::sync_data`] and [`File::sync_all`].
    Sync,
    /// [`File::read_at`] (and so each step of [`File::read_exact_at`]).
    Read,
    /// [`Fs::create`].
    Create,
    /// [`Fs::rename`]; a path filter matches either path.
    Rename,
    /// [`Fs::remove_file`].
    Remove,
    /// [`Fs::sync_dir`].
    SyncDir,
    /// [`File::set_len`].
    SetLen,
}

impl FaultOp {
    const COUNT: usize = 8;

    fn index(self) -> usize {
        self as usize
    }
}

/// Which of the operations matching a [`FaultRule`] fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultTrigger {
    /// Only the n-th matching operation, counting from 1 (0 never fires).
    Nth(u64),
    /// The n-th matching operation and every later one, counting from 1.
    FromNth(u64),
    /// Every matching operation.
    Always,
    /// Reads that overlap the byte range `from..to` (end excluded). Only
    /// meaningful for [`FaultOp::Read`]: on any other operation it never
    /// fires.
    ReadAt {
        /// First byte of the failing range.
        from: u64,
        /// One past the last byte of the failing range.
        to: u64,
    },
}

/// How an operation chosen by a [`FaultRule`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `EIO`: the error's [`io::Error::raw_os_error`] is `Some(5)`.
    Eio,
    /// `ENOSPC`: the error's [`io::Error::raw_os_error`] is `Some(28)`.
    Enospc,
    /// For a write: only the first half of the buffer is written and its
    /// length returned as `Ok` (a one-byte write fails with `ENOSPC`
    /// instead, since it has no nonempty half). Any other operation fails
    /// with `EIO`.
    ShortWrite,
}

impl FaultKind {
    /// The error this kind injects for operations other than a short write.
    fn error(self) -> io::Error {
        match self {
            Self::Eio | Self::ShortWrite => io::Error::from_raw_os_error(EIO),
            Self::Enospc => io::Error::from_raw_os_error(ENOSPC),
        }
    }
}

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// One fault to inject: which operations, which of them, and how they fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// The kind of operation the rule applies to.
    pub op: FaultOp,
    /// Which of the matching operations fail.
    pub trigger: FaultTrigger,
    /// How they fail.
    pub kind: FaultKind,
    /// If set, only operations on a path containing this string match
    /// (the path as given when the file was created or opened).
    pub path_contains: Option<String>,
}

impl FaultRule {
    /// A rule applying to every `op` on any path.
    #[must_use]
    pub fn new(op: FaultOp, trigger: FaultTrigger, kind: FaultKind) -> Self {
        Self {
            op,
            trigger,
            kind,
            path_contains: None,
        }
    }

    /// Restricts the rule to operations on paths containing `part`.
    #[must_use]
    pub fn on_path_containing(mut self, part: impl Into<String>) -> Self {
        self.path_contains = Some(part.into());
        self
    }

    fn matches_path(&self, paths: &[&Path]) -> bool {
        self.path_contains.as_deref().is_none_or(|part| {
            paths
                .iter()
                .any(|path| path.to_string_lossy().contains(part))
        })
    }
}

/// An [`Fs`] that forwards to another one, failing the operations its
/// [`FaultRule`]s pick.
///
/// Files opened through it are wrapped too, so their reads, writes, syncs
/// and truncations are checked against the rules. A failed operation does
/// nothing to the inner file system: a failed write writes nothing (a
/// [`FaultKind::ShortWrite`] writes its half), a failed sync syncs nothing.
/// Opening files, listing, [`Fs::exists`], [`Fs::create_dir_all`],
/// [`Fs::lock`] and [`Fs::lock_shared`] are never failed: locks are the
/// inner file system's, held and refused as it holds and refuses them.
///
/// Each rule counts the operations that match its op and path filter, so
/// [`FaultTrigger::Nth`] is "the n-th such operation since the rule was
/// added". When several rules fire on one operation, the first added wins.
/// Injected errors are plain OS errors (`raw_os_error()` is 5 or 28), so
/// code under test sees what a real disk would report.
///
/// Clones share their rules and counters.
#[derive(Clone)]
pub struct FaultFs {
    inner: Arc<dyn Fs>,
    faults: Arc<Mutex<Faults>>,
}

impl FaultFs {
    /// Wraps `inner`, with no rules yet.
    #[must_use]
    pub fn new(inner: Arc<dyn Fs>) -> Self {
        Self {
            inner,
            faults: Arc::default(),
        }
    }

    /// Adds a rule; it starts counting matching operations now.
    pub fn add_rule(&self, rule: FaultRule) {
        lock(&self.faults)
            .rules
            .push(ActiveRule { rule, matched: 0 });
    }

    /// Fails every operation that would change the disk from now on
    /// (writes, syncs, creations, renames, removals, directory syncs,
    /// `set_len`) with `EIO`; reads still work. Tests use it as a process
    /// kill: the instance can change nothing more, then `MemFs::crash()`
    /// drops what it had not synced.
    pub fn fail_every_change(&self) {
        for op in [
            FaultOp::Write,
            FaultOp::Sync,
            FaultOp::Create,
            FaultOp::Rename,
            FaultOp::Remove,
            FaultOp::SyncDir,
            FaultOp::SetLen,
        ] {
            self.add_rule(FaultRule::new(op, FaultTrigger::Always, FaultKind::Eio));
        }
    }

    /// Removes every rule. The counters of [`FaultFs::op_count`] and
    /// [`FaultFs::injected_count`] keep going.
    pub fn clear_rules(&self) {
        lock(&self.faults).rules.clear();
    }

    /// How many operations of kind `op` were attempted through this file
    /// system (and its clones and files), failed ones included.
    #[must_use]
    pub fn op_count(&self, op: FaultOp) -> u64 {
        lock(&self.faults).attempts[op.index()]
    }

    /// How many faults were injected so far.
    #[must_use]
    pub fn injected_count(&self) -> u64 {
        lock(&self.faults).injected
    }

    fn check(&self, op: FaultOp, paths: &[&Path]) -> Option<FaultKind> {
        lock(&self.faults).check(op, paths, None)
    }

    fn fail_if_chosen(&self, op: FaultOp, paths: &[&Path]) -> io::Result<()> {
        self.check(op, paths)
            .map_or(Ok(()), |kind| Err(kind.error()))
    }

    fn wrap(&self, file: Arc<dyn File>, path: &Path) -> Arc<dyn File> {
        Arc::new(FaultFile {
            inner: file,
            path: path.to_path_buf(),
            faults: Arc::clone(&self.faults),
        })
    }
}

impl fmt::Debug for FaultFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultFs")
            .field("inner", &self.inner)
            .field("faults", &*lock(&self.faults))
            .finish()
    }
}

impl Fs for FaultFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        self.fail_if_chosen(FaultOp::Create, &[path])?;
        let file = self.inner.create(path)?;
        Ok(self.wrap(file, path))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        let file = self.inner.open_read(path)?;
        Ok(self.wrap(file, path))
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        let file = self.inner.open_write(path)?;
        Ok(self.wrap(file, path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.fail_if_chosen(FaultOp::Rename, &[from, to])?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.fail_if_chosen(FaultOp::Remove, &[path])?;
        self.inner.remove_file(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        // A new name, as a create makes.
        self.fail_if_chosen(FaultOp::Create, &[from, to])?;
        self.inner.hard_link(from, to)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.fail_if_chosen(FaultOp::Remove, &[path])?;
        self.inner.remove_dir_all(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.fail_if_chosen(FaultOp::SyncDir, &[path])?;
        self.inner.sync_dir(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        self.inner.lock(path)
    }

    fn lock_shared(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        self.inner.lock_shared(path)
    }
}

/// The rules and counters shared by a [`FaultFs`], its clones and files.
#[derive(Debug, Default)]
struct Faults {
    rules: Vec<ActiveRule>,
    attempts: [u64; FaultOp::COUNT],
    injected: u64,
}

#[derive(Debug)]
struct ActiveRule {
    rule: FaultRule,
    /// Operations matching the rule's op and path filter so far.
    matched: u64,
}

impl Faults {
    /// Counts an attempt of `op` on `paths` (reading the bytes `read`, as
    /// `(offset, len)`, for a read) and returns the fault to inject, if any.
    fn check(
        &mut self,
        op: FaultOp,
        paths: &[&Path],
        read: Option<(u64, u64)>,
    ) -> Option<FaultKind> {
        self.attempts[op.index()] += 1;
        let mut chosen = None;
        for active in &mut self.rules {
            let rule = &active.rule;
            if rule.op != op || !rule.matches_path(paths) {
                continue;
            }
            active.matched += 1;
            let fires = match rule.trigger {
                FaultTrigger::Nth(n) => active.matched == n,
                FaultTrigger::FromNth(n) => active.matched >= n,
                FaultTrigger::Always => true,
                FaultTrigger::ReadAt { from, to } => read.is_some_and(|(offset, len)| {
                    len > 0 && offset < to && from < offset.saturating_add(len)
                }),
            };
            if fires && chosen.is_none() {
                chosen = Some(rule.kind);
            }
        }
        if chosen.is_some() {
            self.injected += 1;
        }
        chosen
    }
}

/// A file opened through a [`FaultFs`].
#[derive(Debug)]
struct FaultFile {
    inner: Arc<dyn File>,
    path: PathBuf,
    faults: Arc<Mutex<Faults>>,
}

impl FaultFile {
    fn check(&self, op: FaultOp, read: Option<(u64, u64)>) -> Option<FaultKind> {
        lock(&self.faults).check(op, &[&self.path], read)
    }

    fn fail_if_chosen(&self, op: FaultOp) -> io::Result<()> {
        self.check(op, None)
            .map_or(Ok(()), |kind| Err(kind.error()))
    }
}

impl File for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let read = (offset, buf.len() as u64);
        match self.check(FaultOp::Read, Some(read)) {
            None => self.inner.read_at(buf, offset),
            Some(kind) => Err(kind.error()),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        match self.check(FaultOp::Write, None) {
            None => self.inner.write_at(buf, offset),
            Some(FaultKind::ShortWrite) if buf.len() > 1 => {
                self.inner.write_at(&buf[..buf.len() / 2], offset)
            }
            Some(FaultKind::ShortWrite) => Err(io::Error::from_raw_os_error(ENOSPC)),
            Some(kind) => Err(kind.error()),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.fail_if_chosen(FaultOp::Sync)?;
        self.inner.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.fail_if_chosen(FaultOp::Sync)?;
        self.inner.sync_all()
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fail_if_chosen(FaultOp::SetLen)?;
        self.inner.set_len(len)
    }
}

/// Locks the fault state, shrugging off poisoning (the counters stay
/// meaningful even if a test panicked mid-operation).
fn lock(faults: &Mutex<Faults>) -> MutexGuard<'_, Faults> {
    faults.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::MemFs;

    fn setup() -> (MemFs, FaultFs) {
        let mem = MemFs::new();
        mem.create_dir_all(Path::new("db")).unwrap();
        let fault = FaultFs::new(Arc::new(mem.clone()));
        (mem, fault)
    }

    fn raw(err: &io::Error) -> Option<i32> {
        err.raw_os_error()
    }

    #[test]
    fn nth_write_fails_once_with_eio_then_writes_succeed() {
        let (mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::Write,
            FaultTrigger::Nth(2),
            FaultKind::Eio,
        ));
        let f = fs.create(Path::new("db/a")).unwrap();
        f.write_all_at(b"one", 0).unwrap();
        let err = f.write_all_at(b"two", 3).unwrap_err();
        assert_eq!(raw(&err), Some(EIO));
        assert_eq!(
            mem.read_file(Path::new("db/a")).unwrap(),
            b"one",
            "failed write wrote"
        );
        f.write_all_at(b"two", 3).unwrap();
        assert_eq!(mem.read_file(Path::new("db/a")).unwrap(), b"onetwo");
        assert_eq!(fs.injected_count(), 1);
    }

    #[test]
    fn from_nth_sync_keeps_failing() {
        let (_mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::Sync,
            FaultTrigger::FromNth(2),
            FaultKind::Eio,
        ));
        let f = fs.create(Path::new("db/a")).unwrap();
        f.sync_data().unwrap();
        for _ in 0..3 {
            assert_eq!(raw(&f.sync_data().unwrap_err()), Some(EIO));
            assert_eq!(raw(&f.sync_all().unwrap_err()), Some(EIO));
        }
        assert_eq!(fs.op_count(FaultOp::Sync), 7);
        assert_eq!(fs.injected_count(), 6);
    }

    #[test]
    fn failed_sync_syncs_nothing() {
        let (mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::Sync,
            FaultTrigger::Always,
            FaultKind::Eio,
        ));
        let f = fs.create(Path::new("db/a")).unwrap();
        fs.sync_dir(Path::new("db")).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync_data().unwrap_err();
        mem.crash_keep_nothing_unsynced();
        assert_eq!(mem.read_file(Path::new("db/a")).unwrap(), b"");
    }

    #[test]
    fn enospc_carries_its_raw_os_error() {
        let (mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::Write,
            FaultTrigger::Always,
            FaultKind::Enospc,
        ));
        let f = fs.create(Path::new("db/a")).unwrap();
        let err = f.write_at(b"data", 0).unwrap_err();
        assert_eq!(raw(&err), Some(ENOSPC));
        assert_eq!(mem.read_file(Path::new("db/a")).unwrap(), b"");
    }

    #[test]
    fn short_write_writes_the_first_half() {
        let (mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::Write,
            FaultTrigger::Nth(1),
            FaultKind::ShortWrite,
        ));
        let f = fs.create(Path::new("db/a")).unwrap();
        assert_eq!(f.write_at(b"abcdefgh", 0).unwrap(), 4);
        assert_eq!(mem.read_file(Path::new("db/a")).unwrap(), b"abcd");
    }

    #[test]
    fn short_write_of_one_byte_is_enospc() {
        let (mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::Write,
            FaultTrigger::Always,
            FaultKind::ShortWrite,
        ));
        let f = fs.create(Path::new("db/a")).unwrap();
        assert_eq!(raw(&f.write_at(b"x", 0).unwrap_err()), Some(ENOSPC));
        assert_eq!(mem.read_file(Path::new("db/a")).unwrap(), b"");
    }

    #[test]
    fn write_all_at_completes_through_a_short_write() {
        let (mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::Write,
            FaultTrigger::Nth(1),
            FaultKind::ShortWrite,
        ));
        let f = fs.create(Path::new("db/a")).unwrap();
        f.write_all_at(b"abcdefgh", 0).unwrap();
        assert_eq!(mem.read_file(Path::new("db/a")).unwrap(), b"abcdefgh");
        assert_eq!(fs.op_count(FaultOp::Write), 2);
    }

    #[test]
    fn short_write_kind_on_other_ops_is_eio() {
        let (_mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::SyncDir,
            FaultTrigger::Always,
            FaultKind::ShortWrite,
        ));
        assert_eq!(raw(&fs.sync_dir(Path::new("db")).unwrap_err()), Some(EIO));
    }

    #[test]
    fn read_at_range_fails_only_overlapping_reads() {
        let (mem, fs) = setup();
        mem.write_file(Path::new("db/t.sst"), &[7u8; 100]).unwrap();
        let trigger = FaultTrigger::ReadAt { from: 40, to: 50 };
        fs.add_rule(FaultRule::new(FaultOp::Read, trigger, FaultKind::Eio));
        let f = fs.open_read(Path::new("db/t.sst")).unwrap();
        let mut buf = [0u8; 10];
        f.read_exact_at(&mut buf, 30).unwrap();
        f.read_exact_at(&mut buf, 50).unwrap();
        for offset in [31, 40, 45, 49] {
            let err = f.read_exact_at(&mut buf, offset).unwrap_err();
            assert_eq!(raw(&err), Some(EIO), "offset {offset}");
        }
        assert_eq!(fs.injected_count(), 4);
    }

    #[test]
    fn path_filter_limits_rule_and_its_count() {
        let (_mem, fs) = setup();
        let rule = FaultRule::new(FaultOp::Write, FaultTrigger::Nth(2), FaultKind::Eio)
            .on_path_containing("wal");
        fs.add_rule(rule);
        let wal = fs.create(Path::new("db/000001.wal")).unwrap();
        let sst = fs.create(Path::new("db/000002.sst")).unwrap();
        wal.write_all_at(b"a", 0).unwrap();
        for i in 0..5 {
            sst.write_all_at(b"b", i).unwrap();
        }
        assert!(
            wal.write_all_at(b"a", 1).is_err(),
            "2nd wal write should fail"
        );
        wal.write_all_at(b"a", 1).unwrap();
        assert_eq!(fs.op_count(FaultOp::Write), 8);
        assert_eq!(fs.injected_count(), 1);
    }

    #[test]
    fn rename_filter_matches_either_path() {
        let (mem, fs) = setup();
        mem.write_file(Path::new("db/tmp"), b"x").unwrap();
        let rule = FaultRule::new(FaultOp::Rename, FaultTrigger::Always, FaultKind::Eio)
            .on_path_containing("CURRENT");
        fs.add_rule(rule);
        let err = fs
            .rename(Path::new("db/tmp"), Path::new("db/CURRENT"))
            .unwrap_err();
        assert_eq!(raw(&err), Some(EIO));
        assert!(
            mem.exists(Path::new("db/tmp")).unwrap(),
            "failed rename renamed"
        );
    }

    #[test]
    fn namespace_faults_leave_inner_fs_untouched() {
        let (mem, fs) = setup();
        mem.write_file(Path::new("db/a"), b"x").unwrap();
        for op in [FaultOp::Create, FaultOp::Remove, FaultOp::SetLen] {
            fs.add_rule(FaultRule::new(op, FaultTrigger::Always, FaultKind::Enospc));
        }
        assert!(fs.create(Path::new("db/b")).is_err());
        assert!(!mem.exists(Path::new("db/b")).unwrap());
        assert!(fs.remove_file(Path::new("db/a")).is_err());
        let f = fs.open_write(Path::new("db/a")).unwrap();
        assert!(f.set_len(0).is_err());
        assert_eq!(mem.read_file(Path::new("db/a")).unwrap(), b"x");
        assert_eq!(fs.injected_count(), 3);
    }

    #[test]
    fn counters_count_attempts_and_survive_clear_rules() {
        let (_mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::Sync,
            FaultTrigger::Always,
            FaultKind::Eio,
        ));
        let f = fs.create(Path::new("db/a")).unwrap();
        assert!(f.sync_data().is_err());
        // The code under test must not retry: a test asserts on the count.
        assert_eq!(fs.op_count(FaultOp::Sync), 1);
        fs.clear_rules();
        f.sync_data().unwrap();
        fs.clone().sync_dir(Path::new("db")).unwrap();
        assert_eq!(fs.op_count(FaultOp::Sync), 2);
        assert_eq!(fs.op_count(FaultOp::SyncDir), 1);
        assert_eq!(fs.op_count(FaultOp::Create), 1);
        assert_eq!(fs.op_count(FaultOp::Read), 0);
        assert_eq!(fs.injected_count(), 1);
    }

    #[test]
    fn first_added_rule_wins_but_all_count() {
        let (_mem, fs) = setup();
        fs.add_rule(FaultRule::new(
            FaultOp::Write,
            FaultTrigger::Always,
            FaultKind::Enospc,
        ));
        fs.add_rule(FaultRule::new(
            FaultOp::Write,
            FaultTrigger::Nth(2),
            FaultKind::Eio,
        ));
        let f = fs.create(Path::new("db/a")).unwrap();
        assert_eq!(raw(&f.write_at(b"ab", 0).unwrap_err()), Some(ENOSPC));
        assert_eq!(raw(&f.write_at(b"ab", 0).unwrap_err()), Some(ENOSPC));
        assert_eq!(fs.injected_count(), 2);
    }

    #[test]
    fn locks_are_the_inner_file_systems_and_never_failed() {
        let (mem, fs) = setup();
        fs.fail_every_change();
        let lock = Path::new("db/LOCK");
        assert_eq!(
            fs.lock_shared(lock).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(!mem.exists(lock).unwrap(), "a shared lock created its file");
        let exclusive = fs.lock(lock).unwrap();
        assert_eq!(
            mem.lock_shared(lock).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(
            fs.lock_shared(lock).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(exclusive);
        let first = fs.lock_shared(lock).unwrap();
        let second = mem.lock_shared(lock).unwrap();
        assert_eq!(fs.lock(lock).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop((first, second));
        let _exclusive = mem.lock(lock).unwrap();
        assert_eq!(fs.injected_count(), 0);
    }

    #[test]
    fn fail_every_change_fails_changes_and_lets_reads_through() {
        let mem = Arc::new(MemFs::new());
        mem.write_file(Path::new("/f"), b"data").unwrap();
        let fs = FaultFs::new(mem);
        let file = fs.open_write(Path::new("/f")).unwrap();
        fs.fail_every_change();
        assert!(file.write_at(b"x", 0).is_err());
        assert!(file.sync_data().is_err());
        assert!(file.set_len(1).is_err());
        assert!(fs.create(Path::new("/g")).is_err());
        assert!(fs.rename(Path::new("/f"), Path::new("/h")).is_err());
        assert!(fs.remove_file(Path::new("/f")).is_err());
        assert!(fs.sync_dir(Path::new("/")).is_err());
        let mut buf = [0u8; 4];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"data");
    }
}
