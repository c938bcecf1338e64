//! [`MemFs`]: an in-memory file system for tests, whose [`MemFs::crash`]
//! models a power loss.
//!
//! Each file (an *inode*) keeps two versions of its content: `durable`, as
//! of its last sync, and `current`, what reads see; plus the ordered log of
//! the writes and truncations issued since that sync. The namespace is kept
//! twice in the same way: the current map from path to inode, changed by
//! [`Fs::create`], [`Fs::rename`] and [`Fs::remove_file`], and the durable
//! map, which catches up with the current one directory by directory on
//! [`Fs::sync_dir`].
//!
//! A crash reverts the namespace to the durable map and keeps, for every
//! surviving file, its durable content plus a pseudo-random prefix of its
//! unsynced log, the last operation of the prefix possibly torn. The choice
//! comes from a small deterministic generator seeded by [`MemFs::with_seed`],
//! so a failing crash test replays exactly from its seed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{File, FileLock, Fs};

/// An in-memory [`Fs`] for tests, with power-loss simulation.
///
/// Cloning gives another handle to the *same* file system. It follows the
/// durability model of the [module docs](super) exactly:
///
/// - file data is durable only after [`File::sync_data`] or
///   [`File::sync_all`] (the two are the same here);
/// - a name (creation, rename, removal) is durable only after
///   [`Fs::sync_dir`] on its parent directory;
/// - directories made by [`Fs::create_dir_all`] are durable at once, and
///   are never removed;
/// - [`Fs::create`] on an existing path makes a *new* empty file under that
///   name, as if the old one were removed first: until the directory is
///   synced, a crash brings back the old file with its old content. (A real
///   `O_TRUNC` truncates the same inode, which a crash may or may not keep;
///   the new-inode model is a simpler stand-in for it.)
///
/// - a lock file is held by one exclusive holder ([`Fs::lock`]) or by any
///   number of shared ones ([`Fs::lock_shared`], which needs the file to
///   exist and never creates it); each guard is a holder of its own, as a
///   separate open of the file is for `flock`. A lock is released when its
///   last guard is dropped, or by a crash.
///
/// [`MemFs::crash`] and [`MemFs::crash_keep_nothing_unsynced`] simulate a
/// power loss; every file handle and lock guard taken before it becomes dead.
///
/// Paths are normalised only by dropping `.` components, so `dir/a` and
/// `dir/./a` name the same file; `..` is not resolved. Relative paths live
/// under an implicit root directory `.` (the empty path), absolute paths
/// under `/`; both always exist.
#[derive(Clone)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
}

impl MemFs {
    /// An empty file system whose crashes use seed 0.
    #[must_use]
    pub fn new() -> Self {
        Self::with_seed(0)
    }

    /// An empty file system whose crashes are drawn from `seed`: the same
    /// seed and the same operations give the same crash results.
    #[must_use]
    pub fn with_seed(seed: u64) -> Self {
        let dirs = [PathBuf::new(), PathBuf::from("/")].into_iter().collect();
        let state = State {
            dirs,
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            inodes: BTreeMap::new(),
            next_inode: 0,
            locks: BTreeMap::new(),
            generation: 0,
            rng: SplitMix64(seed),
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Simulates a power loss.
    ///
    /// The namespace reverts to its durable state. Each file that is still
    /// there keeps its synced content plus the first `k` of its unsynced
    /// writes and truncations, in the order they were issued, with `k`
    /// drawn at random; the next write after them may be torn (a random
    /// prefix of its bytes lands). What survives is then the durable content.
    /// Handles and lock guards from before the crash become dead: their
    /// methods fail, and dropping them does nothing.
    pub fn crash(&self) {
        self.crash_with(CrashMode::Random);
    }

    /// Simulates a power loss that keeps nothing unsynced: every file
    /// reverts to exactly its synced content and the namespace to its
    /// durable state. Deterministic, for exact assertions. Otherwise as
    /// [`MemFs::crash`].
    pub fn crash_keep_nothing_unsynced(&self) {
        self.crash_with(CrashMode::DropUnsynced);
    }

    /// The current content of the file at `path` (what a read would see,
    /// synced or not).
    ///
    /// # Errors
    /// `NotFound` if there is no such file.
    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.lock_state();
        let id = state.file_id(&normalize(path))?;
        Ok(state.inode(id)?.current.clone())
    }

    /// Places a file at `path` with content `bytes`, replacing any file of
    /// that name; both the content and the name are durable at once, as if
    /// the file had been written, synced and its directory synced.
    ///
    /// # Errors
    /// `NotFound` if the parent directory does not exist, `IsADirectory` if
    /// `path` is a directory.
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.lock_state();
        let path = normalize(path);
        state.check_can_hold_file(&path)?;
        let id = state.new_inode(Inode::with_durable(bytes.to_vec()));
        let old = state.names.insert(path.clone(), id);
        let old_durable = state.durable_names.insert(path, id);
        for old in old.into_iter().chain(old_durable) {
            state.free_if_unreferenced(old);
        }
        Ok(())
    }

    /// The paths of all files in the current namespace, sorted (directories
    /// are not listed).
    #[must_use]
    pub fn file_names(&self) -> Vec<PathBuf> {
        self.lock_state().names.keys().cloned().collect()
    }

    /// Flips the bits of `xor_mask` in the byte at `offset` of the file at
    /// `path`, in both its current and its durable content (where the
    /// durable content reaches that far), to model on-disk corruption.
    ///
    /// Unsynced writes still in the file's log are left alone: if a crash
    /// replays one that covers `offset`, it overwrites the damaged byte. Use
    /// it on synced files for exact results.
    ///
    /// # Errors
    /// `NotFound` if there is no such file, `InvalidInput` if `offset` is
    /// not inside the file.
    pub fn corrupt(&self, path: &Path, offset: u64, xor_mask: u8) -> io::Result<()> {
        let mut state = self.lock_state();
        let id = state.file_id(&normalize(path))?;
        let inode = state.inode_mut(id)?;
        let at = usize::try_from(offset)
            .ok()
            .filter(|&at| at < inode.current.len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "corrupt: offset past end of file",
                )
            })?;
        inode.current[at] ^= xor_mask;
        if let Some(byte) = inode.durable.get_mut(at) {
            *byte ^= xor_mask;
        }
        Ok(())
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn crash_with(&self, mode: CrashMode) {
        let mut guard = self.lock_state();
        let state = &mut *guard;
        state.generation += 1;
        state.locks.clear();
        state.names = state.durable_names.clone();
        let survivors: BTreeSet<InodeId> = state.durable_names.values().copied().collect();
        state.inodes.retain(|id, _| survivors.contains(id));
        // `inodes` is ordered by id, so the draws are deterministic.
        for inode in state.inodes.values_mut() {
            let (kept, torn) = match mode {
                CrashMode::DropUnsynced => (0, 0),
                CrashMode::Random => {
                    let kept = state.rng.below(inode.unsynced.len() + 1);
                    let torn = match inode.unsynced.get(kept) {
                        Some(Op::Write { bytes, .. }) => state.rng.below(bytes.len()),
                        Some(Op::SetLen(_)) | None => 0,
                    };
                    (kept, torn)
                }
            };
            inode.survive_crash(kept, torn);
        }
    }

    fn open(&self, path: &Path, writable: bool) -> io::Result<Arc<dyn File>> {
        let mut state = self.lock_state();
        let path = normalize(path);
        if state.dirs.contains(&path) {
            return Err(is_a_directory());
        }
        let id = state.file_id(&path)?;
        state.inode_mut(id)?.open_handles += 1;
        Ok(Arc::new(MemFile {
            state: Arc::clone(&self.state),
            inode: id,
            generation: state.generation,
            writable,
        }))
    }
}

impl Default for MemFs {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock_state();
        f.debug_struct("MemFs")
            .field("files", &state.names.len())
            .field("dirs", &state.dirs.len())
            .field("generation", &state.generation)
            .finish_non_exhaustive()
    }
}

impl Fs for MemFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        let mut state = self.lock_state();
        let path = normalize(path);
        state.check_can_hold_file(&path)?;
        let mut inode = Inode::with_durable(Vec::new());
        inode.open_handles = 1;
        let id = state.new_inode(inode);
        if let Some(old) = state.names.insert(path, id) {
            state.free_if_unreferenced(old);
        }
        Ok(Arc::new(MemFile {
            state: Arc::clone(&self.state),
            inode: id,
            generation: state.generation,
            writable: true,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        self.open(path, false)
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        self.open(path, true)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock_state();
        let (from, to) = (normalize(from), normalize(to));
        if state.dirs.contains(&from) {
            return state.rename_dir(&from, &to);
        }
        let id = state.file_id(&from)?;
        state.check_can_hold_file(&to)?;
        if from == to {
            return Ok(());
        }
        state.names.remove(&from);
        if let Some(old) = state.names.insert(to, id) {
            state.free_if_unreferenced(old);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock_state();
        let path = normalize(path);
        if state.dirs.contains(&path) {
            return Err(is_a_directory());
        }
        let id = state.names.remove(&path).ok_or_else(not_found)?;
        state.free_if_unreferenced(id);
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock_state();
        let (from, to) = (normalize(from), normalize(to));
        if state.dirs.contains(&from) {
            return Err(is_a_directory());
        }
        let id = state.file_id(&from)?;
        state.check_can_hold_file(&to)?;
        if state.names.contains_key(&to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the link's name exists",
            ));
        }
        state.names.insert(to, id);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut guard = self.lock_state();
        let state = &mut *guard;
        let dir = normalize(path);
        if !state.dirs.contains(&dir) || dir.parent().is_none() {
            return Err(not_found());
        }
        let mut dropped = Vec::new();
        state.names.retain(|p, &mut id| {
            let keep = !p.starts_with(&dir);
            if !keep {
                dropped.push(id);
            }
            keep
        });
        // Directories are durable at once (see `create_dir_all`), and so
        // is their removal, with every name in them.
        state.durable_names.retain(|p, &mut id| {
            let keep = !p.starts_with(&dir);
            if !keep {
                dropped.push(id);
            }
            keep
        });
        state.dirs.retain(|d| !d.starts_with(&dir));
        for id in dropped {
            state.free_if_unreferenced(id);
        }
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock_state();
        let path = normalize(path);
        if path.ancestors().any(|dir| state.names.contains_key(dir)) {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "a file is in the way of the directory",
            ));
        }
        for dir in path.ancestors() {
            state.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.lock_state();
        let dir = normalize(path);
        if !state.dirs.contains(&dir) {
            return Err(not_found());
        }
        let inside = |p: &&PathBuf| p.parent() == Some(dir.as_path());
        let entries: BTreeSet<String> = (state.names.keys().filter(inside))
            .chain(state.dirs.iter().filter(inside))
            .filter_map(|p| p.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        Ok(entries.into_iter().collect())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut guard = self.lock_state();
        let state = &mut *guard;
        let dir = normalize(path);
        if !state.dirs.contains(&dir) {
            return Err(not_found());
        }
        let inside = |p: &Path| p.parent() == Some(dir.as_path());
        let mut dropped = Vec::new();
        state.durable_names.retain(|p, &mut id| {
            let keep = !inside(p) || state.names.contains_key(p);
            if !keep {
                dropped.push(id);
            }
            keep
        });
        for (p, &id) in state.names.iter().filter(|(p, _)| inside(p)) {
            if let Some(old) = state.durable_names.insert(p.clone(), id) {
                dropped.push(old);
            }
        }
        for id in dropped {
            state.free_if_unreferenced(id);
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock_state();
        let path = normalize(path);
        Ok(state.dirs.contains(&path) || state.names.contains_key(&path))
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let mut state = self.lock_state();
        let path = normalize(path);
        if let Some(held) = state.locks.get(&path) {
            let how = match held {
                Held::Exclusive => "the lock file is already locked",
                Held::Shared(_) => "the lock file is locked shared",
            };
            return Err(io::Error::new(io::ErrorKind::WouldBlock, how));
        }
        if !state.names.contains_key(&path) {
            state.check_can_hold_file(&path)?;
            let id = state.new_inode(Inode::with_durable(Vec::new()));
            state.names.insert(path.clone(), id);
        }
        state.locks.insert(path.clone(), Held::Exclusive);
        Ok(Box::new(MemLock {
            state: Arc::clone(&self.state),
            path,
            generation: state.generation,
        }))
    }

    fn lock_shared(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let mut state = self.lock_state();
        let path = normalize(path);
        if state.dirs.contains(&path) {
            return Err(is_a_directory());
        }
        // Like opening the file for reading: never created.
        state.file_id(&path)?;
        match state.locks.get_mut(&path) {
            Some(Held::Exclusive) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the lock file is locked exclusively",
                ));
            }
            Some(Held::Shared(holders)) => *holders += 1,
            None => {
                state.locks.insert(path.clone(), Held::Shared(1));
            }
        }
        Ok(Box::new(MemLock {
            state: Arc::clone(&self.state),
            path,
            generation: state.generation,
        }))
    }
}

type InodeId = u64;

/// How a lock file is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// By one [`Fs::lock`] guard.
    Exclusive,
    /// By this many [`Fs::lock_shared`] guards (at least one).
    Shared(usize),
}

/// Everything behind a [`MemFs`]'s mutex.
struct State {
    /// Directories; always durable. Holds the two roots `""` and `"/"`.
    dirs: BTreeSet<PathBuf>,
    /// The current namespace: what opens, lists and renames see.
    names: BTreeMap<PathBuf, InodeId>,
    /// The namespace a crash reverts to.
    durable_names: BTreeMap<PathBuf, InodeId>,
    /// Files still named in either namespace or still open.
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    /// The lock files currently locked, and how.
    locks: BTreeMap<PathBuf, Held>,
    /// Bumped by each crash; handles and guards of older generations are dead.
    generation: u64,
    rng: SplitMix64,
}

impl State {
    fn new_inode(&mut self, inode: Inode) -> InodeId {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, inode);
        id
    }

    fn file_id(&self, path: &Path) -> io::Result<InodeId> {
        self.names.get(path).copied().ok_or_else(not_found)
    }

    fn inode(&self, id: InodeId) -> io::Result<&Inode> {
        self.inodes.get(&id).ok_or_else(lost_inode)
    }

    fn inode_mut(&mut self, id: InodeId) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&id).ok_or_else(lost_inode)
    }

    /// Checks that a file may be created at (normalised) `path`.
    fn check_can_hold_file(&self, path: &Path) -> io::Result<()> {
        if self.dirs.contains(path) {
            return Err(is_a_directory());
        }
        match path.parent() {
            Some(parent) if self.dirs.contains(parent) => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "parent directory does not exist",
            )),
        }
    }

    /// Renames directory `from` (normalised) to `to`, which must not
    /// exist and whose parent must. As directory creation, the rename is
    /// durable at once: every name under `from`, current and durable,
    /// moves. (On a real file system it is durable after a sync of the
    /// parents; treating it as durable at once keeps the one property
    /// callers rely on: the directory is seen whole under one name or the
    /// other.)
    fn rename_dir(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if from == to {
            return Ok(());
        }
        if self.dirs.contains(to) || self.names.contains_key(to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "MemFs renames a directory only to a free name",
            ));
        }
        if to.starts_with(from) || from.parent().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a directory cannot move into itself",
            ));
        }
        match to.parent() {
            Some(parent) if self.dirs.contains(parent) => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "parent directory does not exist",
                ));
            }
        }
        let moved = |p: &Path| match p.strip_prefix(from) {
            Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
            Ok(rest) => to.join(rest),
            Err(_) => p.to_path_buf(),
        };
        self.dirs = self.dirs.iter().map(|d| moved(d)).collect();
        self.names = self.names.iter().map(|(p, &id)| (moved(p), id)).collect();
        self.durable_names = self
            .durable_names
            .iter()
            .map(|(p, &id)| (moved(p), id))
            .collect();
        Ok(())
    }

    /// Forgets an inode that no name, durable or current, and no open
    /// handle refers to any more.
    fn free_if_unreferenced(&mut self, id: InodeId) {
        let open = self
            .inodes
            .get(&id)
            .is_some_and(|inode| inode.open_handles > 0);
        let named = self
            .names
            .values()
            .chain(self.durable_names.values())
            .any(|&n| n == id);
        if !open && !named {
            self.inodes.remove(&id);
        }
    }
}

/// One file's content, durable and current, and what lies between them.
struct Inode {
    /// The content as of the last sync.
    durable: Vec<u8>,
    /// The content reads see; `durable` with `unsynced` applied.
    current: Vec<u8>,
    /// The writes and truncations since the last sync, in issue order.
    unsynced: Vec<Op>,
    /// Live handles of the current generation on this inode.
    open_handles: usize,
}

impl Inode {
    fn with_durable(content: Vec<u8>) -> Self {
        Self {
            current: content.clone(),
            durable: content,
            unsynced: Vec::new(),
            open_handles: 0,
        }
    }

    fn sync(&mut self) {
        if !self.unsynced.is_empty() {
            self.durable.clone_from(&self.current);
            self.unsynced.clear();
        }
    }

    /// Keeps the durable content plus the first `kept` unsynced operations
    /// and `torn` bytes of the next one (if it is a write), and makes that
    /// the durable and current content.
    fn survive_crash(&mut self, kept: usize, torn: usize) {
        let mut content = std::mem::take(&mut self.durable);
        for op in &self.unsynced[..kept] {
            op.apply(&mut content);
        }
        if let Some(Op::Write { offset, bytes }) = self.unsynced.get(kept)
            && torn > 0
        {
            write_into(&mut content, *offset, &bytes[..torn]);
        }
        self.unsynced.clear();
        self.current.clone_from(&content);
        self.durable = content;
        self.open_handles = 0;
    }
}

/// An unsynced change to a file's content.
enum Op {
    /// `bytes` written at `offset`.
    Write { offset: usize, bytes: Vec<u8> },
    /// The file truncated or zero-extended to this length.
    SetLen(usize),
}

impl Op {
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            Self::Write { offset, bytes } => write_into(content, *offset, bytes),
            Self::SetLen(len) => content.resize(*len, 0),
        }
    }
}

/// Writes `bytes` at `offset`, zero-filling any gap past the end.
fn write_into(content: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    let end = offset + bytes.len();
    if content.len() < end {
        content.resize(end, 0);
    }
    content[offset..end].copy_from_slice(bytes);
}

#[derive(Clone, Copy)]
enum CrashMode {
    Random,
    DropUnsynced,
}

/// A file handle of a [`MemFs`].
struct MemFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
    generation: u64,
    writable: bool,
}

impl MemFile {
    /// Runs `f` on this handle's inode, after checking the handle is from
    /// the current generation and, if `write`, that it may write.
    fn with_inode<R>(&self, write: bool, f: impl FnOnce(&mut Inode) -> R) -> io::Result<R> {
        let mut state = lock(&self.state);
        if state.generation != self.generation {
            return Err(io::Error::other("file handle from before a crash"));
        }
        if write && !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "file handle is open for reading only",
            ));
        }
        Ok(f(state.inode_mut(self.inode)?))
    }
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile")
            .field("inode", &self.inode)
            .field("generation", &self.generation)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

impl File for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with_inode(false, |inode| {
            let content = &inode.current;
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(content.len());
            let n = buf.len().min(content.len() - start);
            buf[..n].copy_from_slice(&content[start..start + n]);
            n
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let offset = usize::try_from(offset)
            .ok()
            .filter(|offset| offset.checked_add(buf.len()).is_some())
            .ok_or_else(too_large)?;
        self.with_inode(true, |inode| {
            if !buf.is_empty() {
                write_into(&mut inode.current, offset, buf);
                inode.unsynced.push(Op::Write {
                    offset,
                    bytes: buf.to_vec(),
                });
            }
            buf.len()
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_inode(false, Inode::sync)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.with_inode(false, Inode::sync)
    }

    fn len(&self) -> io::Result<u64> {
        self.with_inode(false, |inode| inode.current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| too_large())?;
        self.with_inode(true, |inode| {
            inode.current.resize(len, 0);
            inode.unsynced.push(Op::SetLen(len));
        })
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if state.generation == self.generation {
            if let Some(inode) = state.inodes.get_mut(&self.inode) {
                inode.open_handles = inode.open_handles.saturating_sub(1);
            }
            state.free_if_unreferenced(self.inode);
        }
    }
}

/// A lock held on a [`MemFs`] lock file, exclusive or shared (the state
/// says which); released on drop (a shared lock once its last guard is
/// dropped) or by a crash.
struct MemLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    generation: u64,
}

impl fmt::Debug for MemLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemLock")
            .field("path", &self.path)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl FileLock for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if state.generation != self.generation {
            return;
        }
        let last = match state.locks.get_mut(&self.path) {
            Some(Held::Shared(holders)) if *holders > 1 => {
                *holders -= 1;
                false
            }
            Some(Held::Shared(_) | Held::Exclusive) => true,
            None => false,
        };
        if last {
            state.locks.remove(&self.path);
        }
    }
}

/// The splitmix64 generator: tiny, deterministic, good enough to pick crash
/// outcomes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n`, or 0 if `n` is 0.
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // The remainder is below `n`, so it always fits back in `usize`.
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

/// Locks the state, shrugging off poisoning: a test that panicked while
/// holding the lock has already failed, and the state is still consistent
/// enough to inspect.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `path` without its `.` components, so `dir/./a`, `./dir/a` and `dir/a`
/// are one key; `.` alone becomes the empty path, the relative root.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such file")
}

fn is_a_directory() -> io::Error {
    io::Error::new(io::ErrorKind::IsADirectory, "is a directory")
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "offset or length too large for memory",
    )
}

fn lost_inode() -> io::Error {
    io::Error::other("MemFs inode missing (a MemFs bug)")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "db";

    fn p(name: &str) -> PathBuf {
        Path::new(DIR).join(name)
    }

    fn fs_with_dir(seed: u64) -> MemFs {
        let fs = MemFs::with_seed(seed);
        fs.create_dir_all(Path::new(DIR)).unwrap();
        fs
    }

    /// Creates `name` with `content`, syncs it and its directory.
    fn durable_file(fs: &MemFs, name: &str, content: &[u8]) -> Arc<dyn File> {
        let f = fs.create(&p(name)).unwrap();
        f.write_all_at(content, 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new(DIR)).unwrap();
        f
    }

    #[test]
    fn synced_data_survives_crash() {
        for seed in 0..20 {
            let fs = fs_with_dir(seed);
            durable_file(&fs, "a", b"hello world");
            fs.crash();
            assert_eq!(fs.read_file(&p("a")).unwrap(), b"hello world");
        }
    }

    #[test]
    fn unsynced_append_is_lost_or_torn_on_crash() {
        let synced = b"synced-part|".to_vec();
        let mut outcomes = BTreeSet::new();
        for seed in 0..500 {
            let fs = fs_with_dir(seed);
            let f = durable_file(&fs, "log", &synced);
            let mut full = synced.clone();
            for chunk in [&b"first-append|"[..], b"second|", b"third-and-last"] {
                f.write_all_at(chunk, full.len() as u64).unwrap();
                full.extend_from_slice(chunk);
            }
            assert_eq!(fs.read_file(&p("log")).unwrap(), full);
            fs.crash();
            let got = fs.read_file(&p("log")).unwrap();
            assert!(got.starts_with(&synced), "seed {seed}: lost synced data");
            assert!(full.starts_with(&got), "seed {seed}: invented data");
            outcomes.insert(got.len());
        }
        // Nothing kept, everything kept, and some torn write in between.
        assert!(outcomes.contains(&synced.len()));
        assert!(outcomes.iter().any(|&n| n > synced.len() && n < 25));
        assert!(outcomes.contains(&(synced.len() + 34)));
    }

    #[test]
    fn crash_survivor_becomes_durable() {
        let fs = fs_with_dir(7);
        let f = durable_file(&fs, "a", b"base");
        f.write_all_at(b"-more", 4).unwrap();
        fs.crash();
        let survived = fs.read_file(&p("a")).unwrap();
        fs.crash_keep_nothing_unsynced();
        assert_eq!(fs.read_file(&p("a")).unwrap(), survived);
    }

    #[test]
    fn crash_keep_nothing_unsynced_reverts_to_synced_content() {
        let fs = fs_with_dir(0);
        let f = durable_file(&fs, "a", b"0123456789");
        f.write_all_at(b"XX", 2).unwrap();
        f.write_all_at(b"tail", 10).unwrap();
        fs.crash_keep_nothing_unsynced();
        assert_eq!(fs.read_file(&p("a")).unwrap(), b"0123456789");
    }

    #[test]
    fn same_seed_gives_same_crash_result() {
        let run = |seed: u64| {
            let fs = fs_with_dir(seed);
            durable_file(&fs, "a", b"");
            let mut results = Vec::new();
            for round in 0..5u8 {
                let f = fs.open_write(&p("a")).unwrap();
                for i in 0..8u8 {
                    let len = f.len().unwrap();
                    f.write_all_at(&[round, i, 0xAA, 0xBB, 0xCC], len).unwrap();
                }
                fs.crash();
                results.push(fs.read_file(&p("a")).unwrap());
            }
            results
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(1), run(2), "different seeds should usually differ");
    }

    #[test]
    fn creation_without_dir_sync_is_forgotten_on_crash() {
        let fs = fs_with_dir(0);
        let f = fs.create(&p("new")).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync_data().unwrap();
        fs.crash();
        assert!(!fs.exists(&p("new")).unwrap());
        assert!(fs.list_dir(Path::new(DIR)).unwrap().is_empty());
    }

    #[test]
    fn creation_with_dir_sync_survives_crash() {
        let fs = fs_with_dir(0);
        fs.create(&p("new")).unwrap();
        fs.sync_dir(Path::new(DIR)).unwrap();
        fs.crash();
        assert_eq!(fs.read_file(&p("new")).unwrap(), b"");
    }

    #[test]
    fn rename_without_dir_sync_is_forgotten_on_crash() {
        let fs = fs_with_dir(0);
        durable_file(&fs, "tmp", b"manifest");
        fs.rename(&p("tmp"), &p("CURRENT")).unwrap();
        assert!(!fs.exists(&p("tmp")).unwrap());
        fs.crash();
        assert_eq!(fs.read_file(&p("tmp")).unwrap(), b"manifest");
        assert!(!fs.exists(&p("CURRENT")).unwrap());
    }

    #[test]
    fn hard_link_shares_the_file_and_is_durable_after_a_dir_sync() {
        let fs = fs_with_dir(0);
        let f = durable_file(&fs, "a", b"one");
        fs.create_dir_all(Path::new("other")).unwrap();
        let link = Path::new("other/b");
        fs.hard_link(&p("a"), link).unwrap();
        f.write_all_at(b"two", 0).unwrap();
        f.sync_data().unwrap();
        assert_eq!(fs.read_file(link).unwrap(), b"two");
        let err = fs.hard_link(&p("a"), link).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            fs.hard_link(&p("none"), Path::new("other/c"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        // Removing one name leaves the other.
        fs.remove_file(&p("a")).unwrap();
        assert_eq!(fs.read_file(link).unwrap(), b"two");
        // Not synced: the link is forgotten by a crash, the old name back.
        fs.crash();
        assert!(!fs.exists(link).unwrap());
        assert_eq!(fs.read_file(&p("a")).unwrap(), b"two");
        fs.hard_link(&p("a"), link).unwrap();
        fs.sync_dir(Path::new("other")).unwrap();
        fs.crash();
        assert_eq!(fs.read_file(link).unwrap(), b"two");
    }

    #[test]
    fn directories_rename_whole_and_remove_whole() {
        let fs = fs_with_dir(0);
        durable_file(&fs, "a", b"one");
        fs.create_dir_all(&p("sub")).unwrap();
        fs.create(&p("sub/b"))
            .unwrap()
            .write_all_at(b"x", 0)
            .unwrap();
        fs.rename(Path::new(DIR), Path::new("moved")).unwrap();
        assert!(!fs.exists(Path::new(DIR)).unwrap());
        assert_eq!(fs.read_file(Path::new("moved/a")).unwrap(), b"one");
        assert_eq!(fs.read_file(Path::new("moved/sub/b")).unwrap(), b"x");
        // Durable at once, names in it as durable as they were.
        fs.crash();
        assert_eq!(fs.read_file(Path::new("moved/a")).unwrap(), b"one");
        assert!(!fs.exists(Path::new("moved/sub/b")).unwrap());
        assert!(fs.exists(Path::new("moved/sub")).unwrap());
        // Never onto an existing name, never into itself.
        fs.create_dir_all(Path::new("taken")).unwrap();
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(
            kind(fs.rename(Path::new("moved"), Path::new("taken"))),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(fs.rename(Path::new("moved"), Path::new("moved/sub/x"))),
            io::ErrorKind::InvalidInput
        );
        fs.remove_dir_all(Path::new("moved")).unwrap();
        assert!(!fs.exists(Path::new("moved")).unwrap());
        assert!(!fs.exists(Path::new("moved/a")).unwrap());
        fs.crash();
        assert!(!fs.exists(Path::new("moved/a")).unwrap());
        assert_eq!(
            kind(fs.remove_dir_all(Path::new("moved"))),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn rename_with_dir_sync_survives_crash() {
        let fs = fs_with_dir(0);
        durable_file(&fs, "CURRENT", b"old");
        durable_file(&fs, "tmp", b"new");
        fs.rename(&p("tmp"), &p("CURRENT")).unwrap();
        fs.sync_dir(Path::new(DIR)).unwrap();
        fs.crash();
        assert_eq!(fs.read_file(&p("CURRENT")).unwrap(), b"new");
        assert!(!fs.exists(&p("tmp")).unwrap());
    }

    #[test]
    fn rename_replacing_without_dir_sync_restores_old_target_on_crash() {
        let fs = fs_with_dir(0);
        durable_file(&fs, "CURRENT", b"old");
        durable_file(&fs, "tmp", b"new");
        fs.rename(&p("tmp"), &p("CURRENT")).unwrap();
        assert_eq!(fs.read_file(&p("CURRENT")).unwrap(), b"new");
        fs.crash();
        assert_eq!(fs.read_file(&p("CURRENT")).unwrap(), b"old");
        assert_eq!(fs.read_file(&p("tmp")).unwrap(), b"new");
    }

    #[test]
    fn removal_without_dir_sync_comes_back_on_crash() {
        let fs = fs_with_dir(0);
        durable_file(&fs, "old.sst", b"table");
        fs.remove_file(&p("old.sst")).unwrap();
        assert!(!fs.exists(&p("old.sst")).unwrap());
        fs.crash();
        assert_eq!(fs.read_file(&p("old.sst")).unwrap(), b"table");
    }

    #[test]
    fn removal_with_dir_sync_is_kept_on_crash() {
        let fs = fs_with_dir(0);
        durable_file(&fs, "old.sst", b"table");
        fs.remove_file(&p("old.sst")).unwrap();
        fs.sync_dir(Path::new(DIR)).unwrap();
        fs.crash();
        assert!(!fs.exists(&p("old.sst")).unwrap());
    }

    #[test]
    fn sync_dir_only_affects_that_directory() {
        let fs = fs_with_dir(0);
        fs.create_dir_all(&p("sub")).unwrap();
        fs.create(&p("top")).unwrap();
        fs.create(&p("sub/inner")).unwrap();
        fs.sync_dir(&p("sub")).unwrap();
        fs.crash();
        assert!(!fs.exists(&p("top")).unwrap());
        assert!(fs.exists(&p("sub/inner")).unwrap());
    }

    #[test]
    fn create_over_existing_without_dir_sync_restores_old_file_on_crash() {
        let fs = fs_with_dir(0);
        durable_file(&fs, "a", b"old content");
        let f = fs.create(&p("a")).unwrap();
        assert_eq!(f.len().unwrap(), 0);
        f.write_all_at(b"new", 0).unwrap();
        f.sync_data().unwrap();
        fs.crash();
        assert_eq!(fs.read_file(&p("a")).unwrap(), b"old content");
    }

    #[test]
    fn create_dir_all_is_durable_at_once() {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("a/b/c")).unwrap();
        fs.crash();
        assert!(fs.exists(Path::new("a/b/c")).unwrap());
        assert_eq!(fs.list_dir(Path::new("a")).unwrap(), ["b"]);
    }

    #[test]
    fn create_without_parent_dir_is_not_found() {
        let fs = MemFs::new();
        let err = fs.create(Path::new("missing/a")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn handles_from_before_a_crash_are_dead() {
        let fs = fs_with_dir(0);
        let f = durable_file(&fs, "a", b"abc");
        let r = fs.open_read(&p("a")).unwrap();
        fs.crash();
        let mut buf = [0u8; 3];
        for err in [
            f.write_at(b"x", 0).unwrap_err(),
            f.sync_data().unwrap_err(),
            f.len().unwrap_err(),
            f.set_len(0).unwrap_err(),
            r.read_at(&mut buf, 0).unwrap_err(),
            r.sync_all().unwrap_err(),
        ] {
            assert_eq!(err.kind(), io::ErrorKind::Other);
            assert_eq!(err.to_string(), "file handle from before a crash");
        }
        drop((f, r));
        // A fresh handle works, and dropping the stale ones harmed nothing.
        let f = fs.open_read(&p("a")).unwrap();
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abc");
    }

    #[test]
    fn read_only_handle_rejects_writes() {
        let fs = fs_with_dir(0);
        durable_file(&fs, "a", b"abc");
        let r = fs.open_read(&p("a")).unwrap();
        assert_eq!(
            r.write_at(b"x", 0).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(
            r.set_len(0).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(fs.read_file(&p("a")).unwrap(), b"abc");
    }

    #[test]
    fn open_write_does_not_truncate_and_sees_other_handles_writes() {
        let fs = fs_with_dir(0);
        let a = durable_file(&fs, "a", b"abc");
        let b = fs.open_write(&p("a")).unwrap();
        assert_eq!(b.len().unwrap(), 3);
        b.write_all_at(b"d", 3).unwrap();
        let mut buf = [0u8; 4];
        a.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abcd");
    }

    #[test]
    fn reads_stop_at_end_of_file() {
        let fs = fs_with_dir(0);
        let f = durable_file(&fs, "a", b"abcdef");
        let mut buf = [0u8; 4];
        assert_eq!(f.read_at(&mut buf, 4).unwrap(), 2);
        assert_eq!(&buf[..2], b"ef");
        assert_eq!(f.read_at(&mut buf, 6).unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, 100).unwrap(), 0);
        let err = f.read_exact_at(&mut buf, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn write_past_end_zero_fills_the_gap() {
        let fs = fs_with_dir(0);
        let f = durable_file(&fs, "a", b"ab");
        f.write_all_at(b"z", 5).unwrap();
        assert_eq!(fs.read_file(&p("a")).unwrap(), b"ab\0\0\0z");
    }

    #[test]
    fn set_len_survives_crash_only_after_sync() {
        let fs = fs_with_dir(0);
        let f = durable_file(&fs, "a", b"0123456789");
        f.set_len(4).unwrap();
        assert_eq!(f.len().unwrap(), 4);
        fs.crash_keep_nothing_unsynced();
        assert_eq!(fs.read_file(&p("a")).unwrap(), b"0123456789");

        let f = fs.open_write(&p("a")).unwrap();
        f.set_len(4).unwrap();
        f.set_len(6).unwrap();
        f.sync_all().unwrap();
        fs.crash();
        assert_eq!(fs.read_file(&p("a")).unwrap(), b"0123\0\0");
    }

    #[test]
    fn unsynced_set_len_is_replayed_in_order_on_crash() {
        for seed in 0..100 {
            let fs = fs_with_dir(seed);
            let f = durable_file(&fs, "a", b"0123456789");
            f.set_len(2).unwrap();
            f.write_all_at(b"xy", 2).unwrap();
            fs.crash();
            let got = fs.read_file(&p("a")).unwrap();
            let allowed: [&[u8]; 4] = [b"0123456789", b"01", b"01x", b"01xy"];
            assert!(allowed.contains(&got.as_slice()), "seed {seed}: {got:?}");
        }
    }

    #[test]
    fn lock_is_exclusive_until_dropped() {
        let fs = fs_with_dir(0);
        let guard = fs.lock(&p("LOCK")).unwrap();
        assert!(fs.exists(&p("LOCK")).unwrap());
        let err = fs.lock(&p("LOCK")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let other = fs.clone().lock(&p("./LOCK")).unwrap_err();
        assert_eq!(other.kind(), io::ErrorKind::WouldBlock);
        drop(guard);
        let _again = fs.lock(&p("LOCK")).unwrap();
    }

    #[test]
    fn crash_releases_locks_and_stale_guards_release_nothing() {
        let fs = fs_with_dir(0);
        let stale = fs.lock(&p("LOCK")).unwrap();
        fs.sync_dir(Path::new(DIR)).unwrap();
        fs.crash();
        let fresh = fs.lock(&p("LOCK")).unwrap();
        drop(stale);
        let err = fs.lock(&p("LOCK")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(fresh);
    }

    #[test]
    fn shared_locks_coexist() {
        let fs = fs_with_dir(0);
        drop(fs.lock(&p("LOCK")).unwrap());
        let first = fs.lock_shared(&p("LOCK")).unwrap();
        let second = fs.clone().lock_shared(&p("./LOCK")).unwrap();
        assert_eq!(
            lock(&fs.state).locks.get(&p("LOCK")),
            Some(&Held::Shared(2))
        );
        drop((first, second));
        assert!(lock(&fs.state).locks.is_empty());
    }

    #[test]
    fn a_shared_lock_blocks_the_exclusive_one_until_the_last_is_dropped() {
        let fs = fs_with_dir(0);
        drop(fs.lock(&p("LOCK")).unwrap());
        let first = fs.lock_shared(&p("LOCK")).unwrap();
        let second = fs.lock_shared(&p("LOCK")).unwrap();
        let err = fs.lock(&p("LOCK")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        let err = fs.lock(&p("LOCK")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(second);
        let _exclusive = fs.lock(&p("LOCK")).unwrap();
    }

    #[test]
    fn an_exclusive_lock_blocks_shared_ones_until_dropped() {
        let fs = fs_with_dir(0);
        let exclusive = fs.lock(&p("LOCK")).unwrap();
        let err = fs.lock_shared(&p("LOCK")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(exclusive);
        let _shared = fs.lock_shared(&p("LOCK")).unwrap();
    }

    #[test]
    fn a_shared_lock_never_creates_the_lock_file() {
        let fs = fs_with_dir(0);
        let err = fs.lock_shared(&p("LOCK")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(fs.file_names().is_empty());
        assert!(lock(&fs.state).locks.is_empty());
        let err = fs.lock_shared(Path::new(DIR)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
    }

    #[test]
    fn crash_releases_shared_locks_and_stale_shared_guards_release_nothing() {
        let fs = fs_with_dir(0);
        drop(fs.lock(&p("LOCK")).unwrap());
        fs.sync_dir(Path::new(DIR)).unwrap();
        let stale = fs.lock_shared(&p("LOCK")).unwrap();
        fs.crash();
        let fresh = fs.lock_shared(&p("LOCK")).unwrap();
        drop(stale);
        let err = fs.lock(&p("LOCK")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(fresh);
        let _exclusive = fs.lock(&p("LOCK")).unwrap();
    }

    #[test]
    fn dot_components_name_the_same_file() {
        let fs = fs_with_dir(0);
        durable_file(&fs, "a", b"x");
        assert_eq!(fs.read_file(Path::new("db/./a")).unwrap(), b"x");
        assert_eq!(fs.read_file(Path::new("./db/a")).unwrap(), b"x");
        assert_eq!(fs.list_dir(Path::new(".")).unwrap(), ["db"]);
    }

    #[test]
    fn list_dir_is_sorted_and_includes_subdirectories() {
        let fs = fs_with_dir(0);
        for name in ["b", "a", "c"] {
            fs.create(&p(name)).unwrap();
        }
        fs.create_dir_all(&p("sub/deeper")).unwrap();
        fs.create(&p("sub/hidden")).unwrap();
        assert_eq!(fs.list_dir(Path::new(DIR)).unwrap(), ["a", "b", "c", "sub"]);
        let err = fs.list_dir(Path::new("nope")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn missing_files_are_not_found() {
        let fs = fs_with_dir(0);
        let kinds = [
            fs.open_read(&p("x")).unwrap_err().kind(),
            fs.open_write(&p("x")).unwrap_err().kind(),
            fs.remove_file(&p("x")).unwrap_err().kind(),
            fs.rename(&p("x"), &p("y")).unwrap_err().kind(),
            fs.read_file(&p("x")).unwrap_err().kind(),
        ];
        assert!(kinds.iter().all(|&k| k == io::ErrorKind::NotFound));
    }

    #[test]
    fn open_handle_outlives_removal() {
        let fs = fs_with_dir(0);
        let f = durable_file(&fs, "a", b"still here");
        fs.remove_file(&p("a")).unwrap();
        fs.sync_dir(Path::new(DIR)).unwrap();
        let mut buf = [0u8; 10];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"still here");
        drop(f);
        assert!(lock(&fs.state).inodes.is_empty(), "inode not freed");
    }

    #[test]
    fn write_file_is_durable_at_once() {
        let fs = fs_with_dir(0);
        fs.write_file(&p("placed"), b"bytes").unwrap();
        fs.crash();
        assert_eq!(fs.read_file(&p("placed")).unwrap(), b"bytes");
        assert_eq!(fs.file_names(), [p("placed")]);
    }

    #[test]
    fn corrupt_flips_bits_in_current_and_durable_content() {
        let fs = fs_with_dir(0);
        fs.write_file(&p("a"), b"abc").unwrap();
        fs.corrupt(&p("a"), 1, 0x01).unwrap();
        assert_eq!(fs.read_file(&p("a")).unwrap(), b"acc");
        fs.crash();
        assert_eq!(fs.read_file(&p("a")).unwrap(), b"acc");
        let err = fs.corrupt(&p("a"), 3, 0xFF).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
