//! The file-system trait: the only door to the disk.
//!
//! Every kevo crate takes the [`Fs`] it is given instead of calling `std::fs`,
//! which is what makes crash and fault tests fast and deterministic:
//!
//! - [`OsFs`]: real files through `std::fs` (`fdatasync`, directory sync,
//!   atomic rename, a lock file taken exclusive or shared);
//! - `MemFs` (feature `testing`): an in-memory file system for tests whose
//!   `MemFs::crash` models a power loss;
//! - `FaultFs` (feature `testing`): wraps any `Fs` and fails chosen
//!   operations with `EIO`, `ENOSPC` or a short write.
//!
//! # The model every implementation follows
//!
//! - Files are read and written *positionally* (`pread`/`pwrite`): a
//!   [`File`] has no cursor, so one handle can be shared by a writer and a
//!   syncing thread (`&self` everywhere).
//! - Data written to a file is durable only after [`File::sync_data`] (or
//!   [`File::sync_all`]) returns `Ok`.
//! - A file's *name* (creation, rename, removal) is durable only after
//!   [`Fs::sync_dir`] on its parent directory returns `Ok`.
//! - A crash keeps, for each file, everything synced plus possibly a prefix
//!   of the unsynced writes in the order they were issued, the last of them
//!   possibly torn. This is what `MemFs::crash` produces and what recovery
//!   code must cope with.
//! - Directories themselves are created with [`Fs::create_dir_all`], which is
//!   durable when it returns (the database directory is created once).

#[cfg(any(test, feature = "testing"))]
mod fault;
#[cfg(any(test, feature = "testing"))]
mod mem;
mod os;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(any(test, feature = "testing"))]
pub use fault::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger};
#[cfg(any(test, feature = "testing"))]
pub use mem::MemFs;
pub use os::OsFs;

/// An open file, read and written at explicit offsets.
///
/// Handles are shared (`Arc<dyn File>`): every method takes `&self`, so one
/// thread may write while another syncs. Dropping the last handle closes the
/// file; closing never syncs.
#[allow(clippy::len_without_is_empty)] // a file's length is an I/O result, not a collection size
pub trait File: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (fewer only at the end of the file).
    ///
    /// # Errors
    /// Any I/O error of the underlying file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes up to `buf.len()` bytes at `offset`, extending the file if
    /// needed; returns how many were written (a short write is allowed, as
    /// with `pwrite`).
    ///
    /// # Errors
    /// Any I/O error of the underlying file (`EIO`, `ENOSPC`, ...).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;

    /// Makes the file's data (and the size, if it changed) durable.
    ///
    /// # Errors
    /// Any I/O error. After a failed sync the state of the data on disk is
    /// unknown: callers must not retry and report success.
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's data and all of its metadata durable.
    ///
    /// # Errors
    /// As [`File::sync_data`].
    fn sync_all(&self) -> io::Result<()>;

    /// The file's current length in bytes.
    ///
    /// # Errors
    /// Any I/O error of the underlying file.
    fn len(&self) -> io::Result<u64>;

    /// Truncates or extends (with zeros) the file to `len` bytes.
    ///
    /// # Errors
    /// Any I/O error of the underlying file.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    /// `UnexpectedEof` if the file ends first, or any I/O error.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended before the requested range",
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`, looping over short writes.
    ///
    /// # Errors
    /// Any I/O error; a `WriteZero` error if the file accepts no bytes. On
    /// error a prefix of `buf` may have been written.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "file accepted no bytes",
                    ));
                }
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A held lock on a lock file, exclusive ([`Fs::lock`]) or shared
/// ([`Fs::lock_shared`]); dropping it releases the lock.
pub trait FileLock: Send + Sync + fmt::Debug {}

/// The file-system operations kevo needs. See the [module docs](self) for
/// the durability model every implementation follows.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Creates `path` (truncating it if it exists), open for reading and
    /// writing. The new name is durable only after [`Fs::sync_dir`].
    ///
    /// # Errors
    /// Any I/O error, `NotFound` if the parent directory does not exist.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn File>>;

    /// Opens an existing file for reading only; writes through the handle fail.
    ///
    /// # Errors
    /// `NotFound` if there is no such file, or any I/O error.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn File>>;

    /// Opens an existing file for reading and writing, without truncating it.
    ///
    /// # Errors
    /// `NotFound` if there is no such file, or any I/O error.
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn File>>;

    /// Atomically renames `from` to `to`, replacing `to` if it exists. The
    /// change is durable only after [`Fs::sync_dir`] on both parents.
    ///
    /// # Errors
    /// `NotFound` if `from` does not exist, or any I/O error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file. The removal is durable only after [`Fs::sync_dir`].
    ///
    /// # Errors
    /// `NotFound` if there is no such file, or any I/O error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Gives the file at `from` a second name `to` (a hard link: one file,
    /// two names; writes through either are seen through both). The new
    /// name is durable only after [`Fs::sync_dir`] on its parent.
    ///
    /// # Errors
    /// `AlreadyExists` if `to` exists; `NotFound` if `from` does not;
    /// `CrossesDevices` (or `Unsupported`) where the two cannot share a
    /// file: copy instead. Any I/O error.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the directory at `path` and everything in it. Durable only
    /// after [`Fs::sync_dir`] on its parent.
    ///
    /// # Errors
    /// `NotFound` if there is no such directory, or any I/O error (part of
    /// it may be gone).
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Creates a directory and its missing parents; durable on return.
    ///
    /// # Errors
    /// Any I/O error.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Lists the names (not paths) of the entries of a directory, sorted.
    ///
    /// # Errors
    /// `NotFound` if there is no such directory, or any I/O error.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    ///
    /// # Errors
    /// Any I/O error.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Whether a file or directory exists at `path`.
    ///
    /// # Errors
    /// Any I/O error other than `NotFound`.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// The length in bytes of the file at `path`, without reading it.
    ///
    /// # Errors
    /// `NotFound` if there is no such file, or any I/O error.
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.open_read(path)?.len()
    }

    /// Takes an exclusive lock on the lock file at `path`, creating it if
    /// needed. Held until the returned guard is dropped.
    ///
    /// A lock file is held either by one exclusive holder or by any number
    /// of shared ones ([`Fs::lock_shared`]), never both: in this process
    /// (each call is a holder of its own) and across processes alike.
    ///
    /// # Errors
    /// `WouldBlock` if someone (this or another process) holds it already,
    /// exclusively or shared; any I/O error.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;

    /// Takes a shared lock on the existing lock file at `path`. Held until
    /// the returned guard is dropped.
    ///
    /// Shared holders coexist (this call succeeds however many already hold
    /// it shared); a shared lock is refused while an exclusive one
    /// ([`Fs::lock`]) is held, and an exclusive one while any shared lock is
    /// held. The file is opened for reading and never created: taking a
    /// shared lock changes nothing on disk, so a reader may take it in a
    /// directory it must leave as it found it.
    ///
    /// # Errors
    /// `NotFound` if there is no lock file at `path`; `WouldBlock` while
    /// someone (this or another process) holds it exclusively; any I/O
    /// error.
    fn lock_shared(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;
}

/// The parent directory of `path`, or `.` for a bare file name.
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
