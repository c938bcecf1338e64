//! Incremental backups: a backup directory holds many backups of one
//! database, sharing the table files they have in common.
//!
//! ```text
//! <backup dir>/
//!   LOCK                          held by the open `Backup`
//!   tables/NNNNNN-SIZE-CRC.sst    shared tables: number, bytes, CRC-32 (hex)
//!   private/<id>/                 one backup's own files: WAL segments,
//!                                 MANIFEST, CURRENT, OPTIONS
//!   meta/<id>                     one backup's metadata, written last
//! ```
//!
//! [`Backup::create`] takes the same consistent picture a checkpoint takes
//! (every keyspace at one seqno, while writes go on), copies the tables the
//! directory does not hold yet (a table is stored once, named by its
//! number, size and checksum), the WAL tail and a fresh manifest into
//! `private/<id>/`, and writes `meta/<id>` last (temporary name, sync,
//! rename, directory sync): a crash before that leaves files no metadata
//! names, never a backup that is listed but incomplete. Deleting removes
//! the metadata first, then the files no remaining backup names. The
//! metadata format is in `docs/format/backup.md`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use kevo_core::{FileLock, Fs, OsFs, SeqNo};
use kevo_manifest::{ManifestOptions, VersionSet, table_file_name};
use kevo_wal::segment_file_name;

use crate::checkpoint::{NewDir, capture, copy_file, flush_all, newest_options};
use crate::db::Db;
use crate::error::{BusyReason, Error, Result};
use crate::sync::lock;

/// The first line of a metadata file, with its format version.
const META_MAGIC: &str = "kevo-backup";
/// The metadata format version this code writes and reads.
pub const BACKUP_META_VERSION: u32 = 1;
/// Metadata files larger than this are refused before reading.
const META_BYTES_MAX: u64 = 64 << 20;
const TABLES_DIR: &str = "tables";
const PRIVATE_DIR: &str = "private";
const META_DIR: &str = "meta";
const LOCK_NAME: &str = "LOCK";
/// Bytes read at a time when checking a file.
const CHUNK: usize = 1 << 20;

/// A backup's number in its directory (1, 2, ...; never reused while a
/// higher one exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupId(pub u64);

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One file a backup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    /// Where it is stored, relative to the backup directory
    /// (`tables/...` or `private/<id>/...`).
    pub stored: String,
    /// Its name in a restored database directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// CRC-32 of its content.
    pub crc: u32,
}

/// One backup, as its metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Its id.
    pub id: BackupId,
    /// It holds every keyspace exactly as of this seqno.
    pub seqno: SeqNo,
    /// When it was made (milliseconds since the Unix epoch).
    pub created_unix_ms: u64,
    /// Bytes this backup copied into the directory (new tables, its own
    /// files).
    pub bytes_copied: u64,
    /// Bytes of tables it shares with backups made before it (not copied).
    pub bytes_reused: u64,
    /// Every file it needs.
    pub files: Vec<BackupFile>,
}

impl BackupInfo {
    /// Bytes of every file it needs.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The metadata file's content (format in `docs/format/backup.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{META_MAGIC} {BACKUP_META_VERSION}\nid {}\nseqno {}\ncreated-unix-ms {}\n\
             bytes-copied {}\nbytes-reused {}\n",
            self.id, self.seqno, self.created_unix_ms, self.bytes_copied, self.bytes_reused
        );
        for f in &self.files {
            out.push_str(&format!(
                "file {} {} {} {:08x}\n",
                f.stored, f.name, f.size, f.crc
            ));
        }
        let crc = kevo_core::crc32(&[out.as_bytes()]);
        out.push_str(&format!("end {crc:08x}\n"));
        out.into_bytes()
    }

    /// Decodes a metadata file's content; `path` names it in errors.
    ///
    /// # Errors
    /// [`Error::Corruption`] with the byte offset of the bad line: a wrong
    /// checksum, an unknown version, a malformed or missing field, a file
    /// name that could escape its directory.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<BackupInfo> {
        let bad = |offset: usize, reason: String| Error::Corruption {
            file: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| bad(e.valid_up_to(), "not UTF-8 text".to_string()))?;
        // The last line is `end <crc>` over everything before it.
        let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
        let (body, end) = text.split_at(body_end);
        let crc = end
            .strip_prefix("end ")
            .and_then(|c| c.strip_suffix('\n'))
            .and_then(canonical_hex)
            .ok_or_else(|| bad(body_end, "no `end <crc>` line: cut short".to_string()))?;
        let actual = kevo_core::crc32(&[body.as_bytes()]);
        if actual != crc {
            return Err(bad(
                body_end,
                format!("checksum {actual:08x}, the file says {crc:08x}"),
            ));
        }
        let mut lines = Vec::new();
        let mut offset = 0;
        for line in body.split_terminator('\n') {
            lines.push((offset, line));
            offset += line.len() + 1;
        }
        let mut lines = lines.into_iter();
        let mut field = |name: &str| -> Result<(usize, String)> {
            let (at, line) = lines
                .next()
                .ok_or_else(|| bad(body_end, format!("no `{name}` line")))?;
            let value = line
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .ok_or_else(|| bad(at, format!("expected `{name} ...`")))?;
            Ok((at, value.to_string()))
        };
        let (at, version) = field(META_MAGIC)?;
        if version != BACKUP_META_VERSION.to_string() {
            return Err(bad(
                at,
                format!("metadata format {version}; this build reads {BACKUP_META_VERSION}"),
            ));
        }
        let mut number = |name: &str| -> Result<u64> {
            let (at, value) = field(name)?;
            canonical_u64(&value)
                .ok_or_else(|| bad(at, format!("`{name}` is not a number: {value:?}")))
        };
        let id = BackupId(number("id")?);
        let seqno = number("seqno")?;
        let created_unix_ms = number("created-unix-ms")?;
        let bytes_copied = number("bytes-copied")?;
        let bytes_reused = number("bytes-reused")?;
        let mut files = Vec::new();
        for (at, line) in lines {
            let parts: Vec<&str> = line.split(' ').collect();
            let [tag, stored, name, size, crc] = parts[..] else {
                return Err(bad(at, "expected `file STORED NAME SIZE CRC`".to_string()));
            };
            let (size, crc) = (canonical_u64(size), canonical_hex(crc));
            let (Some(size), Some(crc)) = (size, crc) else {
                return Err(bad(
                    at,
                    "a file's size or checksum is malformed".to_string(),
                ));
            };
            if tag != "file" || !stored_path_ok(stored, id) || !plain_name(name) {
                return Err(bad(at, format!("a file entry no backup writes: {line:?}")));
            }
            files.push(BackupFile {
                stored: stored.to_string(),
                name: name.to_string(),
                size,
                crc,
            });
        }
        Ok(BackupInfo {
            id,
            seqno,
            created_unix_ms,
            bytes_copied,
            bytes_reused,
            files,
        })
    }
}

/// A number written as [`BackupInfo::encode`] writes one (decimal, no sign,
/// no leading zero): one spelling per value.
fn canonical_u64(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|n| n.to_string() == text)
}

/// A checksum written as [`BackupInfo::encode`] writes one (8 lowercase hex
/// digits).
fn canonical_hex(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 16)
        .ok()
        .filter(|n| format!("{n:08x}") == text)
}

/// A file name with nothing that could leave its directory.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Where a backup's files may be stored: a shared table, or its own
/// private directory.
fn stored_path_ok(stored: &str, id: BackupId) -> bool {
    match stored.split_once('/') {
        Some((TABLES_DIR, name)) => plain_name(name),
        Some((PRIVATE_DIR, rest)) => rest
            .split_once('/')
            .is_some_and(|(dir, name)| dir == id.to_string() && plain_name(name)),
        _ => false,
    }
}

/// The parts of a shared table's name: number, size, checksum.
fn parse_shared_table(name: &str) -> Option<(u64, u64, u32)> {
    let stem = name.strip_suffix(".sst")?;
    let mut parts = stem.split('-');
    let number = parts.next()?.parse().ok()?;
    let size = parts.next()?.parse().ok()?;
    let crc = u32::from_str_radix(parts.next()?, 16).ok()?;
    parts.next().is_none().then_some((number, size, crc))
}

/// A directory of backups of one database (see the module documentation).
/// One `Backup` at a time holds a directory (its `LOCK`); it may be shared
/// between threads (changes to the directory take turns).
pub struct Backup {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    _lock: Box<dyn FileLock>,
    /// Held by whatever adds or removes files (create, delete, purge): a
    /// deletion's garbage collection must never see the files of a backup
    /// still being made.
    changing: Mutex<()>,
}

impl fmt::Debug for Backup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backup").field("dir", &self.dir).finish()
    }
}

impl Backup {
    /// Opens the backup directory `dir`, creating it if it does not exist.
    ///
    /// # Errors
    /// [`Error::Busy`] if another `Backup` (in this process or another)
    /// holds it; any I/O error.
    pub fn open(dir: impl AsRef<Path>) -> Result<Backup> {
        Backup::open_with_fs(Arc::new(OsFs::new()), dir)
    }

    /// [`Backup::open`] on the file system `fs`.
    ///
    /// # Errors
    /// As [`Backup::open`].
    pub fn open_with_fs(fs: Arc<dyn Fs>, dir: impl AsRef<Path>) -> Result<Backup> {
        let dir = dir.as_ref().to_path_buf();
        for sub in [TABLES_DIR, PRIVATE_DIR, META_DIR] {
            let path = dir.join(sub);
            fs.create_dir_all(&path)
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        }
        let lock_path = dir.join(LOCK_NAME);
        let lock = fs.lock(&lock_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::Busy {
                    path: lock_path.clone(),
                    reason: BusyReason::OpenForWriting,
                }
            } else {
                Error::io(format!("locking {}", lock_path.display()), e)
            }
        })?;
        Ok(Backup {
            fs,
            dir,
            _lock: lock,
            changing: Mutex::new(()),
        })
    }

    /// The backup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let context = format!("{what} {}", path.display());
        move |e| Error::io(context, e)
    }

    fn meta_path(&self, id: BackupId) -> PathBuf {
        self.dir.join(META_DIR).join(id.to_string())
    }

    /// Every backup's id, oldest first.
    fn ids(&self) -> Result<Vec<BackupId>> {
        let meta = self.dir.join(META_DIR);
        let names = self.fs.list_dir(&meta).map_err(self.io("listing", &meta))?;
        let mut ids: Vec<BackupId> = names
            .iter()
            .filter_map(|n| n.parse().ok().map(BackupId))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Reads backup `id`'s metadata.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if there is no such backup;
    /// [`Error::Corruption`] if its metadata is damaged.
    pub fn info(&self, id: BackupId) -> Result<BackupInfo> {
        let path = self.meta_path(id);
        let file = match self.fs.open_read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::InvalidArgument(format!(
                    "no backup {id} in {}",
                    self.dir.display()
                )));
            }
            Err(e) => return Err(self.io("opening", &path)(e)),
        };
        let len = file.len().map_err(self.io("sizing", &path))?;
        if len > META_BYTES_MAX {
            return Err(Error::Corruption {
                file: path,
                offset: 0,
                reason: format!("{len} bytes, more than any backup's metadata"),
            });
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(self.io("reading", &path))?;
        let info = BackupInfo::decode(&bytes, &path)?;
        if info.id != id {
            return Err(Error::Corruption {
                file: path,
                offset: 0,
                reason: format!("the metadata of backup {} under the name {id}", info.id),
            });
        }
        Ok(info)
    }

    /// Every backup, oldest first.
    ///
    /// # Errors
    /// [`Error::Corruption`] if a backup's metadata is damaged; I/O errors.
    pub fn list(&self) -> Result<Vec<BackupInfo>> {
        self.ids()?.into_iter().map(|id| self.info(id)).collect()
    }

    /// Backs `db` up: every keyspace exactly as of one seqno (at or after
    /// every write acknowledged before the call), while writes go on. The
    /// memtables are flushed first, so that what they held goes into
    /// tables later backups share rather than into each one's WAL copy.
    /// Tables the directory already holds are not copied again
    /// ([`BackupInfo::bytes_reused`]).
    ///
    /// # Errors
    /// I/O errors (the directory keeps every earlier backup; the files
    /// this one copied are removed by the next [`Backup::delete`] or
    /// [`Backup::purge_old`]); [`Error::Corruption`] if a table the database
    /// holds is shorter than its manifest says; [`Error::ReadOnly`] if `db`
    /// was opened read-only; [`Error::Closed`].
    pub fn create(&self, db: &Db) -> Result<BackupId> {
        let engine = &db.handle().engine;
        engine.life.check_open()?;
        let versions = engine
            .versions()
            .map_err(|cause| Error::ReadOnly { cause })?;
        crate::checkpoint::refuse_inside(&self.dir, &engine.dir, "backup directory")?;
        let _changing = lock(&self.changing);
        let fs = self.fs.as_ref();
        let next = self.next_id()?;
        let private = self.dir.join(PRIVATE_DIR).join(next.to_string());
        if fs
            .exists(&private)
            .map_err(self.io("looking at", &private))?
        {
            fs.remove_dir_all(&private)
                .map_err(self.io("removing", &private))?;
        }
        fs.create_dir_all(&private)
            .map_err(self.io("creating", &private))?;

        // Memtables first into tables, which later backups share: the WAL
        // tail, copied by every backup, is then only what came meanwhile.
        flush_all(engine)?;
        let captured = capture(engine, versions)?;
        let shared = self.shared_tables()?;
        let mut info = BackupInfo {
            id: next,
            seqno: captured.seqno,
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            bytes_copied: 0,
            bytes_reused: 0,
            files: Vec::new(),
        };
        let tables_dir = self.dir.join(TABLES_DIR);
        for &(number, size) in &captured.tables {
            let name = table_file_name(number);
            let stored = match shared.iter().find(|&&(n, s, _)| n == number && s == size) {
                Some(&(n, s, crc)) => {
                    info.bytes_reused += size;
                    BackupFile {
                        stored: format!("{TABLES_DIR}/{n:06}-{s}-{crc:08x}.sst"),
                        name,
                        size,
                        crc,
                    }
                }
                None => {
                    let tmp = tables_dir.join(format!("{number:06}-{size}.tmp"));
                    let from = engine.dir.join(&name);
                    let crc = copy_with_crc(engine.fs.as_ref(), &from, fs, &tmp, Some(size))?;
                    let stored = format!("{TABLES_DIR}/{number:06}-{size}-{crc:08x}.sst");
                    fs.rename(&tmp, &self.dir.join(&stored))
                        .map_err(self.io("renaming", &tmp))?;
                    info.bytes_copied += size;
                    BackupFile {
                        stored,
                        name,
                        size,
                        crc,
                    }
                }
            };
            info.files.push(stored);
        }
        let mut copied = Vec::new();
        for &(number, len) in &captured.segments {
            let name = segment_file_name(number);
            let from = engine.dir.join(&name);
            let size = match len {
                Some(len) => len,
                None => engine
                    .fs
                    .file_len(&from)
                    .map_err(self.io("sizing", &from))?,
            };
            let file = self.copy_private(engine.fs.as_ref(), &from, next, &name, size)?;
            info.bytes_copied += size;
            info.files.push(file);
            copied.push((number, size, len.is_some()));
        }
        let options = newest_options(engine.fs.as_ref(), &engine.dir)?;
        let state = captured.manifest_state(&copied);
        drop(captured);
        if let Some(name) = options {
            let from = engine.dir.join(&name);
            let size = engine
                .fs
                .file_len(&from)
                .map_err(self.io("sizing", &from))?;
            let file = self.copy_private(engine.fs.as_ref(), &from, next, &name, size)?;
            info.bytes_copied += size;
            info.files.push(file);
        }
        // The manifest and CURRENT, written into the private directory.
        let before: BTreeSet<String> = fs
            .list_dir(&private)
            .map_err(self.io("listing", &private))?
            .into_iter()
            .collect();
        drop(VersionSet::create(
            Arc::clone(&self.fs),
            &private,
            state,
            ManifestOptions::default(),
        )?);
        let after = fs
            .list_dir(&private)
            .map_err(self.io("listing", &private))?;
        for name in after.into_iter().filter(|n| !before.contains(n)) {
            let path = private.join(&name);
            let size = fs.file_len(&path).map_err(self.io("sizing", &path))?;
            let crc = checksum_file(fs, &path, size)?;
            info.bytes_copied += size;
            info.files.push(BackupFile {
                stored: format!("{PRIVATE_DIR}/{next}/{name}"),
                name,
                size,
                crc,
            });
        }
        for dir in [&tables_dir, &private] {
            fs.sync_dir(dir).map_err(self.io("syncing", dir))?;
        }
        // Last: the metadata that makes it a backup.
        let meta = self.meta_path(next);
        let tmp = meta.with_extension("tmp");
        let file = fs.create(&tmp).map_err(self.io("creating", &tmp))?;
        file.write_all_at(&info.encode(), 0)
            .and_then(|()| file.sync_all())
            .map_err(self.io("writing", &tmp))?;
        fs.rename(&tmp, &meta).map_err(self.io("renaming", &tmp))?;
        let meta_dir = self.dir.join(META_DIR);
        fs.sync_dir(&meta_dir)
            .map_err(self.io("syncing", &meta_dir))?;
        tracing::info!(
            id = next.0,
            seqno = info.seqno,
            copied = info.bytes_copied,
            reused = info.bytes_reused,
            "backup made"
        );
        Ok(next)
    }

    /// The id after every one in use (metadata or a private directory left
    /// by a backup that did not finish).
    fn next_id(&self) -> Result<BackupId> {
        let private = self.dir.join(PRIVATE_DIR);
        let names = self
            .fs
            .list_dir(&private)
            .map_err(self.io("listing", &private))?;
        let highest = names
            .iter()
            .filter_map(|n| n.parse::<u64>().ok())
            .chain(self.ids()?.into_iter().map(|id| id.0))
            .max()
            .unwrap_or(0);
        Ok(BackupId(highest + 1))
    }

    /// The shared tables stored: (number, size, checksum).
    fn shared_tables(&self) -> Result<Vec<(u64, u64, u32)>> {
        let dir = self.dir.join(TABLES_DIR);
        let names = self.fs.list_dir(&dir).map_err(self.io("listing", &dir))?;
        Ok(names.iter().filter_map(|n| parse_shared_table(n)).collect())
    }

    /// Copies `size` bytes of `from` into backup `id`'s private directory
    /// as `name`.
    fn copy_private(
        &self,
        from_fs: &dyn Fs,
        from: &Path,
        id: BackupId,
        name: &str,
        size: u64,
    ) -> Result<BackupFile> {
        let stored = format!("{PRIVATE_DIR}/{id}/{name}");
        let crc = copy_with_crc(
            from_fs,
            from,
            self.fs.as_ref(),
            &self.dir.join(&stored),
            Some(size),
        )?;
        Ok(BackupFile {
            stored,
            name: name.to_string(),
            size,
            crc,
        })
    }

    /// Reads every file backup `id` needs and checks its size and
    /// checksum.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the first file that is missing, of the
    /// wrong size or whose content does not match its checksum;
    /// [`Error::InvalidArgument`] if there is no such backup.
    pub fn verify(&self, id: BackupId) -> Result<()> {
        let info = self.info(id)?;
        for file in &info.files {
            let path = self.dir.join(&file.stored);
            let len = self.fs.file_len(&path).map_err(|e| Error::Corruption {
                file: path.clone(),
                offset: 0,
                reason: format!("backup {id} needs it: {e}"),
            })?;
            if len != file.size {
                return Err(Error::Corruption {
                    file: path,
                    offset: len.min(file.size),
                    reason: format!("{len} bytes, backup {id} recorded {}", file.size),
                });
            }
            let crc = checksum_file(self.fs.as_ref(), &path, file.size)?;
            if crc != file.crc {
                return Err(Error::Corruption {
                    file: path,
                    offset: 0,
                    reason: format!("checksum {crc:08x}, backup {id} recorded {:08x}", file.crc),
                });
            }
        }
        Ok(())
    }

    /// Restores backup `id` into `target`, a directory that must not exist
    /// (its parent must): every file copied and checked against its
    /// checksum, built under `<target>.restore-tmp` and renamed last. The
    /// result opens as a database holding exactly the backup's state.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad target or an unknown backup;
    /// [`Error::Corruption`] if a file of the backup is damaged (nothing is
    /// left at `target`); I/O errors.
    pub fn restore(&self, id: BackupId, target: impl AsRef<Path>) -> Result<()> {
        let target = target.as_ref();
        let info = self.info(id)?;
        let fs = self.fs.as_ref();
        let dir = NewDir::start(fs, target, "restore-tmp", "restore target", &self.dir)?;
        dir.finish(|tmp| {
            for file in &info.files {
                let from = self.dir.join(&file.stored);
                let crc = copy_with_crc(fs, &from, fs, &tmp.join(&file.name), Some(file.size))?;
                if crc != file.crc {
                    return Err(Error::Corruption {
                        file: from,
                        offset: 0,
                        reason: format!(
                            "checksum {crc:08x}, backup {id} recorded {:08x}",
                            file.crc
                        ),
                    });
                }
            }
            Ok(())
        })
    }

    /// Deletes backup `id`: its metadata first, then every file no other
    /// backup needs.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if there is no such backup; I/O errors;
    /// [`Error::Corruption`] if another backup's metadata is damaged (then
    /// no file is removed: it might be one that backup needs).
    pub fn delete(&self, id: BackupId) -> Result<()> {
        let _changing = lock(&self.changing);
        self.info(id)?;
        self.remove_meta(id)?;
        self.collect_garbage()
    }

    /// Deletes every backup but the newest `keep`; returns the ids deleted.
    ///
    /// # Errors
    /// As [`Backup::delete`].
    pub fn purge_old(&self, keep: usize) -> Result<Vec<BackupId>> {
        let _changing = lock(&self.changing);
        let ids = self.ids()?;
        let old = ids[..ids.len().saturating_sub(keep)].to_vec();
        for &id in &old {
            self.remove_meta(id)?;
        }
        self.collect_garbage()?;
        Ok(old)
    }

    fn remove_meta(&self, id: BackupId) -> Result<()> {
        let path = self.meta_path(id);
        self.fs
            .remove_file(&path)
            .map_err(self.io("removing", &path))?;
        let dir = self.dir.join(META_DIR);
        self.fs.sync_dir(&dir).map_err(self.io("syncing", &dir))
    }

    /// Removes every stored file no backup's metadata names (what a
    /// deletion or a backup that did not finish left).
    fn collect_garbage(&self) -> Result<()> {
        let fs = self.fs.as_ref();
        let backups = self.list()?;
        let needed: BTreeSet<&str> = backups
            .iter()
            .flat_map(|b| b.files.iter().map(|f| f.stored.as_str()))
            .collect();
        let ids: BTreeSet<String> = backups.iter().map(|b| b.id.to_string()).collect();
        let tables = self.dir.join(TABLES_DIR);
        for name in fs.list_dir(&tables).map_err(self.io("listing", &tables))? {
            if !needed.contains(format!("{TABLES_DIR}/{name}").as_str()) {
                let path = tables.join(&name);
                fs.remove_file(&path).map_err(self.io("removing", &path))?;
            }
        }
        let private = self.dir.join(PRIVATE_DIR);
        for name in fs
            .list_dir(&private)
            .map_err(self.io("listing", &private))?
        {
            if !ids.contains(&name) {
                let path = private.join(&name);
                fs.remove_dir_all(&path)
                    .map_err(self.io("removing", &path))?;
            }
        }
        for dir in [&tables, &private] {
            fs.sync_dir(dir).map_err(self.io("syncing", dir))?;
        }
        Ok(())
    }
}

/// [`copy_file`]'s checksum.
fn copy_with_crc(
    from_fs: &dyn Fs,
    from: &Path,
    to_fs: &dyn Fs,
    to: &Path,
    len: Option<u64>,
) -> Result<u32> {
    copy_file(from_fs, from, to_fs, to, len).map(|(_, crc)| crc)
}

/// The CRC-32 of the first `len` bytes of `path`.
fn checksum_file(fs: &dyn Fs, path: &Path, len: u64) -> Result<u32> {
    let file = fs
        .open_read(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut offset = 0u64;
    while offset < len {
        let n = ((len - offset) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], offset)
            .map_err(|e| Error::Corruption {
                file: path.to_path_buf(),
                offset,
                reason: format!("unreadable: {e}"),
            })?;
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> BackupInfo {
        BackupInfo {
            id: BackupId(3),
            seqno: 1234,
            created_unix_ms: 1_700_000_000_000,
            bytes_copied: 10,
            bytes_reused: 20,
            files: vec![
                BackupFile {
                    stored: "tables/000012-4096-0a0b0c0d.sst".into(),
                    name: "000012.sst".into(),
                    size: 4096,
                    crc: 0x0a0b_0c0d,
                },
                BackupFile {
                    stored: "private/3/000015.wal".into(),
                    name: "000015.wal".into(),
                    size: 77,
                    crc: 0xdead_beef,
                },
            ],
        }
    }

    #[test]
    fn metadata_round_trips_and_names_its_damage() {
        let info = sample();
        let bytes = info.encode();
        let path = Path::new("meta/3");
        assert_eq!(BackupInfo::decode(&bytes, path).unwrap(), info);
        // Every single flipped byte is caught, never decoded as something
        // else.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            match BackupInfo::decode(&bad, path) {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
                other => panic!("byte {i}: {other:?}"),
            }
        }
        // Cut short anywhere.
        for len in 0..bytes.len() {
            assert!(BackupInfo::decode(&bytes[..len], path).is_err(), "{len}");
        }
    }

    #[test]
    fn entries_that_could_escape_their_directory_are_refused() {
        for (stored, name) in [
            ("tables/../../etc", "000012.sst"),
            ("private/4/000015.wal", "000015.wal"),
            ("private/3/../x", "x"),
            ("elsewhere/x", "x"),
            ("tables/000012-1-00000000.sst", "../x"),
            ("tables/000012-1-00000000.sst", ""),
        ] {
            let mut info = sample();
            info.files[0].stored = stored.into();
            info.files[0].name = name.into();
            let err = BackupInfo::decode(&info.encode(), Path::new("m")).unwrap_err();
            assert!(matches!(err, Error::Corruption { .. }), "{stored} {name}");
        }
        assert_eq!(
            parse_shared_table("000012-4096-0a0b0c0d.sst"),
            Some((12, 4096, 0x0a0b_0c0d))
        );
        assert_eq!(parse_shared_table("000012-4096.tmp"), None);
    }

    #[test]
    fn only_the_one_spelling_of_a_number_is_read() {
        let good = String::from_utf8(sample().encode()).unwrap();
        for (from, to) in [
            ("seqno 1234", "seqno +1234"),
            ("seqno 1234", "seqno 01234"),
            (" 4096 0a0b0c0d", " 4096 0A0B0C0D"),
            (" 4096 0a0b0c0d", " 4096 a0b0c0d"),
        ] {
            let body_end = good.trim_end_matches('\n').rfind('\n').unwrap() + 1;
            let body = good[..body_end].replacen(from, to, 1);
            assert_ne!(body, good[..body_end], "{to}");
            let crc = kevo_core::crc32(&[body.as_bytes()]);
            let bytes = format!("{body}end {crc:08x}\n");
            let err = BackupInfo::decode(bytes.as_bytes(), Path::new("m")).unwrap_err();
            assert!(matches!(err, Error::Corruption { .. }), "{to}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = BackupInfo::decode(&bytes, Path::new("m"));
        }
    }
}
