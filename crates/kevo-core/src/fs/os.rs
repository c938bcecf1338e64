//! [`OsFs`]: real files through `std::fs`.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::{File, FileLock, Fs};

/// The real file system.
///
/// `sync_data` is `fdatasync(2)`, [`Fs::sync_dir`] opens the directory and
/// `fsync`s it, `rename` is `rename(2)` (atomic on POSIX), [`Fs::lock`]
/// takes an exclusive `flock`-style lock held for the life of the guard, so a
/// second process (or a second open in this process) gets `WouldBlock`, and
/// [`Fs::lock_shared`] takes a shared one (`File::try_lock_shared`) on the
/// lock file opened read-only, never creating it.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

impl OsFs {
    /// The real file system.
    pub fn new() -> Self {
        OsFs
    }
}

#[derive(Debug)]
struct OsFile {
    file: fs::File,
}

impl File for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.file.write_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

#[derive(Debug)]
struct OsLock {
    // Held only for its lock; closing the descriptor releases it.
    _file: fs::File,
}

impl FileLock for OsLock {}

impl Fs for OsFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Arc::new(OsFile { file }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        let file = fs::File::open(path)?;
        Ok(Arc::new(OsFile { file }))
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        let file = fs::OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(OsFile { file }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)?;
        // Make the new directory's own name durable in its parent.
        let parent = super::parent_dir(path);
        if parent.exists() {
            self.sync_dir(&parent)?;
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                // kevo never creates such names; a stray one is not ours.
                Err(_) => continue,
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        fs::File::open(path)?.sync_all()
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(OsLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another user", path.display()),
            )),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn lock_shared(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        // Opened for reading and never created: a shared lock changes
        // nothing on disk (`flock` needs no write access).
        let file = fs::File::open(path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Box::new(OsLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked exclusively by another user", path.display()),
            )),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_bytes_read_back_positionally() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("a");
        let f = fs.create(&path).unwrap();
        f.write_all_at(b"hello world", 0).unwrap();
        f.write_all_at(b"W", 6).unwrap();
        f.sync_data().unwrap();
        let r = fs.open_read(&path).unwrap();
        let mut buf = [0u8; 11];
        r.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello World");
        assert_eq!(r.len().unwrap(), 11);
        assert_eq!(fs.file_len(&path).unwrap(), 11);
        let mut past = [0u8; 4];
        assert_eq!(r.read_at(&mut past, 11).unwrap(), 0);
    }

    #[test]
    fn read_only_handle_rejects_writes() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("a");
        fs.create(&path).unwrap();
        let r = fs.open_read(&path).unwrap();
        assert!(r.write_at(b"x", 0).is_err());
    }

    #[test]
    fn rename_replaces_target_and_lists_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let a = dir.path().join("b.tmp");
        let b = dir.path().join("a");
        fs.create(&a).unwrap().write_all_at(b"new", 0).unwrap();
        fs.create(&b).unwrap().write_all_at(b"old", 0).unwrap();
        fs.rename(&a, &b).unwrap();
        fs.sync_dir(dir.path()).unwrap();
        assert_eq!(fs.list_dir(dir.path()).unwrap(), vec!["a".to_string()]);
        let mut buf = [0u8; 3];
        fs.open_read(&b)
            .unwrap()
            .read_exact_at(&mut buf, 0)
            .unwrap();
        assert_eq!(&buf, b"new");
        fs.remove_file(&b).unwrap();
        assert!(!fs.exists(&b).unwrap());
    }

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("LOCK");
        let first = fs.lock(&path).unwrap();
        let second = fs.lock(&path);
        assert_eq!(second.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(first);
        fs.lock(&path).unwrap();
    }

    #[test]
    fn shared_locks_coexist() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("LOCK");
        drop(fs.lock(&path).unwrap());
        let first = fs.lock_shared(&path).unwrap();
        let second = fs.lock_shared(&path).unwrap();
        drop((first, second));
    }

    #[test]
    fn a_shared_lock_blocks_the_exclusive_one_until_the_last_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("LOCK");
        drop(fs.lock(&path).unwrap());
        let first = fs.lock_shared(&path).unwrap();
        let second = fs.lock_shared(&path).unwrap();
        let refused = fs.lock(&path).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        let refused = fs.lock(&path).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        drop(second);
        fs.lock(&path).unwrap();
    }

    #[test]
    fn an_exclusive_lock_blocks_shared_ones_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("LOCK");
        let exclusive = fs.lock(&path).unwrap();
        let refused = fs.lock_shared(&path).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        drop(exclusive);
        fs.lock_shared(&path).unwrap();
    }

    #[test]
    fn a_shared_lock_never_creates_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFs::new();
        let path = dir.path().join("LOCK");
        let err = fs.lock_shared(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!fs.exists(&path).unwrap());
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = OsFs::new().open_read(&dir.path().join("nope")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
