//! The snapshot archive: the files of a kevo checkpoint and the snapshot's
//! metadata in one checksummed stream (format `KEVOSNAP`, version 1,
//! documented byte by byte in `docs/format/raft-snapshot.md`).
//!
//! ```text
//! magic "KEVOSNAP" | version u32 | meta_len u32 | meta | file_count u32 | header_crc u32
//! file_count x ( name_len u16 | name | size u64 | entry_crc u32 | data (size bytes) | data_crc u32 )
//! end of stream
//! ```
//!
//! Integers are little-endian; CRCs are CRC-32 (IEEE). The reader trusts no
//! length it reads: the metadata is at most [`META_BYTES_MAX`], names at
//! most [`NAME_BYTES_MAX`] of `[A-Za-z0-9._-]`, the count at most
//! [`FILES_MAX`], and file data is streamed through a fixed buffer, never
//! allocated at its stated size. Any damage is [`Error::Corruption`] with
//! the stream's name and the offset. A name may appear once.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The first 8 bytes of every archive.
pub const MAGIC: &[u8; 8] = b"KEVOSNAP";
/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;
/// The longest metadata accepted.
pub const META_BYTES_MAX: u32 = 1 << 20;
/// The longest file name accepted.
pub const NAME_BYTES_MAX: u16 = 255;
/// The most files one archive may hold.
pub const FILES_MAX: u32 = 1 << 16;

const CHUNK: usize = 64 * 1024;

/// Where [`read`] puts the files it reads, one at a time, in archive order.
pub trait Sink {
    /// A new file called `name` (already checked to be a plain name).
    fn create(&mut self, name: &str) -> io::Result<()>;
    /// The next bytes of the current file.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// The current file is complete and its checksum verified.
    fn finish(&mut self) -> io::Result<()>;
}

/// A [`Sink`] that keeps nothing: [`read`] with it only verifies.
pub struct Discard;

impl Sink for Discard {
    fn create(&mut self, _name: &str) -> io::Result<()> {
        Ok(())
    }
    fn write(&mut self, _data: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A [`Sink`] that writes each file into a directory and syncs it.
pub struct DirSink {
    dir: PathBuf,
    file: Option<File>,
    names: Vec<String>,
}

impl DirSink {
    /// Files go into `dir`, which must exist.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirSink {
            dir: dir.into(),
            file: None,
            names: Vec::new(),
        }
    }

    /// The names of the files written so far.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Sink for DirSink {
    fn create(&mut self, name: &str) -> io::Result<()> {
        if self.names.iter().any(|n| n == name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("`{name}` twice in one archive"),
            ));
        }
        self.file = Some(
            File::options()
                .write(true)
                .create_new(true)
                .open(self.dir.join(name))?,
        );
        self.names.push(name.to_string());
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.write_all(data),
            None => Err(io::Error::other("write before create")),
        }
    }
    fn finish(&mut self) -> io::Result<()> {
        match self.file.take() {
            Some(file) => file.sync_all(),
            None => Err(io::Error::other("finish before create")),
        }
    }
}

/// Whether `name` may be a file name in an archive: no separators, no
/// `..`, nothing outside `[A-Za-z0-9._-]`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= usize::from(NAME_BYTES_MAX)
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Writes the archive of the files of `dir` (plain files only, by name
/// order) with `meta` to `out`; returns the bytes written.
///
/// # Errors
/// [`Error::Io`] reading `dir` or writing `out`; [`Error::InvalidArgument`]
/// if `dir` holds a sub-directory or a name [`is_plain_name`] refuses, or
/// `meta` is longer than [`META_BYTES_MAX`].
pub fn pack(dir: &Path, meta: &[u8], out: &mut impl Write) -> Result<u64> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        let name = entry.file_name().into_string().unwrap_or_default();
        if !kind.is_file() || !is_plain_name(&name) {
            return Err(Error::InvalidArgument(format!(
                "{}: only plain files with plain names can be archived",
                path.display()
            )));
        }
        names.push(name);
    }
    names.sort();
    let meta_len = u32::try_from(meta.len())
        .ok()
        .filter(|&n| n <= META_BYTES_MAX)
        .ok_or_else(|| Error::InvalidArgument(format!("{} bytes of metadata", meta.len())))?;
    let count = u32::try_from(names.len())
        .ok()
        .filter(|&n| n <= FILES_MAX)
        .ok_or_else(|| Error::InvalidArgument(format!("{} files", names.len())))?;

    let out_err = |e| Error::io(Path::new("<archive>"), e);
    let mut header = Vec::with_capacity(24 + meta.len());
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&meta_len.to_le_bytes());
    header.extend_from_slice(meta);
    header.extend_from_slice(&count.to_le_bytes());
    let crc = crc32fast::hash(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    out.write_all(&header).map_err(out_err)?;
    let mut written = header.len() as u64;

    let mut buf = vec![0u8; CHUNK];
    for name in &names {
        let path = dir.join(name);
        let mut file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let size = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let mut entry = Vec::with_capacity(14 + name.len());
        entry.extend_from_slice(&(name.len() as u16).to_le_bytes());
        entry.extend_from_slice(name.as_bytes());
        entry.extend_from_slice(&size.to_le_bytes());
        let crc = crc32fast::hash(&entry);
        entry.extend_from_slice(&crc.to_le_bytes());
        out.write_all(&entry).map_err(out_err)?;
        let mut hasher = crc32fast::Hasher::new();
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            file.read_exact(&mut buf[..want])
                .map_err(|e| Error::io(&path, e))?;
            hasher.update(&buf[..want]);
            out.write_all(&buf[..want]).map_err(out_err)?;
            left -= want as u64;
        }
        out.write_all(&hasher.finalize().to_le_bytes())
            .map_err(out_err)?;
        written += entry.len() as u64 + size + 4;
    }
    out.flush().map_err(out_err)?;
    Ok(written)
}

/// Counts what it reads, for the offsets of errors.
struct Counted<'a, R> {
    inner: &'a mut R,
    offset: u64,
    name: &'a str,
}

impl<R: Read> Counted<'_, R> {
    fn corruption(&self, what: impl Into<String>) -> Error {
        Error::corruption(self.name, self.offset, what)
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.corruption(format!("truncated: the stream ends inside {what}")))
            }
            Err(e) => Err(Error::io(Path::new(self.name), e)),
        }
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let mut b = [0; 2];
        self.exact(&mut b, what)?;
        Ok(u16::from_le_bytes(b))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let mut b = [0; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let mut b = [0; 8];
        self.exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Reads only the header of an archive: its metadata bytes.
///
/// # Errors
/// [`Error::Corruption`] (with `name` and the offset) for a damaged or
/// truncated header or an unknown version; [`Error::Io`] reading.
pub fn read_meta(input: &mut impl Read, name: &str) -> Result<Vec<u8>> {
    let mut r = Counted {
        inner: input,
        offset: 0,
        name,
    };
    read_header(&mut r).map(|(meta, _)| meta)
}

fn read_header<R: Read>(r: &mut Counted<'_, R>) -> Result<(Vec<u8>, u32)> {
    let mut magic = [0u8; 8];
    r.exact(&mut magic, "the magic")?;
    if &magic != MAGIC {
        return Err(Error::corruption(
            r.name,
            0,
            "not a kevo snapshot archive (bad magic)",
        ));
    }
    let version = r.u32("the version")?;
    if version != VERSION {
        return Err(Error::corruption(
            r.name,
            8,
            format!("archive version {version}; this build reads version {VERSION}"),
        ));
    }
    let meta_len = r.u32("the metadata length")?;
    if meta_len > META_BYTES_MAX {
        return Err(r.corruption(format!(
            "metadata of {meta_len} bytes (at most {META_BYTES_MAX})"
        )));
    }
    let mut meta = vec![0u8; meta_len as usize];
    r.exact(&mut meta, "the metadata")?;
    let count = r.u32("the file count")?;
    let header_crc = r.u32("the header checksum")?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(MAGIC);
    hasher.update(&version.to_le_bytes());
    hasher.update(&meta_len.to_le_bytes());
    hasher.update(&meta);
    hasher.update(&count.to_le_bytes());
    if hasher.finalize() != header_crc {
        return Err(Error::corruption(r.name, 0, "header checksum mismatch"));
    }
    if count > FILES_MAX {
        return Err(r.corruption(format!("{count} files (at most {FILES_MAX})")));
    }
    Ok((meta, count))
}

/// Reads a whole archive, verifying every checksum, handing each file to
/// `sink`; returns the metadata. The stream must end right after the last
/// file.
///
/// # Errors
/// [`Error::Corruption`] with `name` and the offset for any damage (a
/// checksum mismatch, a truncation, a bad name or length, bytes after the
/// end); [`Error::Io`] reading the stream or from `sink`. A sink may have
/// received files before the damage was found: its caller discards them.
pub fn read(input: &mut impl Read, name: &str, sink: &mut impl Sink) -> Result<Vec<u8>> {
    let mut r = Counted {
        inner: input,
        offset: 0,
        name,
    };
    let (meta, count) = read_header(&mut r)?;
    let sink_err = |e| Error::io(Path::new(name), e);
    let mut buf = vec![0u8; CHUNK];
    // At most FILES_MAX names of at most NAME_BYTES_MAX bytes: bounded.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..count {
        let entry_at = r.offset;
        let name_len = r.u16("a file name's length")?;
        if name_len == 0 || name_len > NAME_BYTES_MAX {
            return Err(Error::corruption(
                name,
                entry_at,
                format!("a file name of {name_len} bytes"),
            ));
        }
        let mut file_name = vec![0u8; usize::from(name_len)];
        r.exact(&mut file_name, "a file name")?;
        let size = r.u64("a file's size")?;
        let entry_crc = r.u32("a file entry's checksum")?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&name_len.to_le_bytes());
        hasher.update(&file_name);
        hasher.update(&size.to_le_bytes());
        if hasher.finalize() != entry_crc {
            return Err(Error::corruption(
                name,
                entry_at,
                "file entry checksum mismatch",
            ));
        }
        let file_name = String::from_utf8(file_name)
            .ok()
            .filter(|n| is_plain_name(n))
            .ok_or_else(|| Error::corruption(name, entry_at, "a file name that is not plain"))?;
        if !seen.insert(file_name.clone()) {
            return Err(Error::corruption(
                name,
                entry_at,
                format!("`{file_name}` named twice"),
            ));
        }
        sink.create(&file_name).map_err(sink_err)?;
        let data_at = r.offset;
        let mut hasher = crc32fast::Hasher::new();
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            r.exact(&mut buf[..want], "a file's data")?;
            hasher.update(&buf[..want]);
            sink.write(&buf[..want]).map_err(sink_err)?;
            left -= want as u64;
        }
        let data_crc = r.u32("a file's checksum")?;
        if hasher.finalize() != data_crc {
            return Err(Error::corruption(
                name,
                data_at,
                format!("checksum mismatch in the data of `{file_name}`"),
            ));
        }
        sink.finish().map_err(sink_err)?;
    }
    let mut extra = [0u8; 1];
    loop {
        match r.inner.read(&mut extra) {
            Ok(0) => return Ok(meta),
            Ok(_) => return Err(r.corruption("bytes after the last file")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(Path::new(name), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    /// Collects files in memory.
    #[derive(Default)]
    struct Collect(Vec<(String, Vec<u8>)>);

    impl Sink for Collect {
        fn create(&mut self, name: &str) -> io::Result<()> {
            self.0.push((name.to_string(), Vec::new()));
            Ok(())
        }
        fn write(&mut self, data: &[u8]) -> io::Result<()> {
            self.0.last_mut().unwrap().1.extend_from_slice(data);
            Ok(())
        }
        fn finish(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn archive_of(files: &[(&str, &[u8])], meta: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        for (name, data) in files {
            std::fs::write(dir.path().join(name), data).unwrap();
        }
        let mut out = Vec::new();
        let n = pack(dir.path(), meta, &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    /// The worked example of docs/format/raft-snapshot.md, byte for byte.
    #[test]
    fn worked_example_bytes() {
        let bytes = archive_of(&[("CURRENT", b"M1\n")], b"{}");
        let mut want = Vec::new();
        want.extend_from_slice(b"KEVOSNAP");
        want.extend_from_slice(&[1, 0, 0, 0]);
        want.extend_from_slice(&[2, 0, 0, 0]);
        want.extend_from_slice(b"{}");
        want.extend_from_slice(&[1, 0, 0, 0]);
        let crc = crc32fast::hash(&want);
        want.extend_from_slice(&crc.to_le_bytes());
        let entry_at = want.len();
        want.extend_from_slice(&[7, 0]);
        want.extend_from_slice(b"CURRENT");
        want.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
        let crc = crc32fast::hash(&want[entry_at..]);
        want.extend_from_slice(&crc.to_le_bytes());
        want.extend_from_slice(b"M1\n");
        want.extend_from_slice(&crc32fast::hash(b"M1\n").to_le_bytes());
        assert_eq!(bytes, want);
        assert_eq!(bytes.len(), 54);
    }

    #[test]
    fn round_trip_and_meta_only() {
        let big = vec![7u8; 3 * CHUNK + 5];
        let bytes = archive_of(
            &[("a.sst", &big), ("CURRENT", b"x"), ("empty", b"")],
            b"meta",
        );
        let mut got = Collect::default();
        let meta = read(&mut &bytes[..], "t", &mut got).unwrap();
        assert_eq!(meta, b"meta");
        let names: Vec<_> = got.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["CURRENT", "a.sst", "empty"]);
        assert_eq!(got.0[1].1, big);
        assert_eq!(read_meta(&mut &bytes[..], "t").unwrap(), b"meta");
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_corruption() {
        let bytes = archive_of(&[("a", b"hello"), ("b", b"world!")], b"{\"m\":1}");
        for cut in 0..bytes.len() {
            let err = read(&mut &bytes[..cut], "t", &mut Discard).unwrap_err();
            assert!(matches!(err, Error::Corruption { .. }), "cut {cut}: {err}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let err = read(&mut &damaged[..], "t", &mut Discard).unwrap_err();
            assert!(matches!(err, Error::Corruption { .. }), "byte {at}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            read(&mut &longer[..], "t", &mut Discard),
            Err(Error::Corruption { .. })
        ));
    }

    #[test]
    fn names_that_escape_the_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "x\0", "é"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert!(is_plain_name("000012.sst") && is_plain_name("MANIFEST-000003"));
        // An archive naming "..", with valid checksums, is refused.
        let mut bytes = archive_of(&[("ab", b"x")], b"");
        let entry_at = bytes.len() - (2 + 2 + 8 + 4 + 1 + 4);
        bytes[entry_at + 2..entry_at + 4].copy_from_slice(b"..");
        let crc = crc32fast::hash(&bytes[entry_at..entry_at + 12]);
        bytes[entry_at + 12..entry_at + 16].copy_from_slice(&crc.to_le_bytes());
        let err = read(&mut &bytes[..], "t", &mut Discard).unwrap_err();
        assert!(err.to_string().contains("not plain"), "{err}");
    }

    #[test]
    fn a_name_twice_is_refused() {
        let mut bytes = archive_of(&[("a", b"x"), ("b", b"y")], b"");
        // The second entry: name_len(2) name(1) size(8) crc(4) data(1) crc(4).
        let entry_at = bytes.len() - (2 + 1 + 8 + 4 + 1 + 4);
        bytes[entry_at + 2] = b'a';
        let crc = crc32fast::hash(&bytes[entry_at..entry_at + 11]);
        bytes[entry_at + 11..entry_at + 15].copy_from_slice(&crc.to_le_bytes());
        let err = read(&mut &bytes[..], "t", &mut Discard).unwrap_err();
        assert!(err.to_string().contains("named twice"), "{err}");
    }

    #[test]
    fn huge_stated_sizes_are_not_allocated() {
        let mut header = Vec::new();
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = read(&mut &header[..], "t", &mut Discard).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        // A file claiming u64::MAX bytes: read in chunks until the stream ends.
        let mut bytes = archive_of(&[("a", b"")], b"");
        let entry_at = bytes.len() - (2 + 1 + 8 + 4 + 4);
        bytes[entry_at + 3..entry_at + 11].copy_from_slice(&u64::MAX.to_le_bytes());
        let crc = crc32fast::hash(&bytes[entry_at..entry_at + 11]);
        bytes[entry_at + 11..entry_at + 15].copy_from_slice(&crc.to_le_bytes());
        let err = read(&mut &bytes[..], "t", &mut Discard).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = read(&mut &bytes[..], "t", &mut Discard);
        }

        #[test]
        fn archives_round_trip(
            files in proptest::collection::btree_map("[a-z0-9]{1,8}", proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            meta in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let list: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
            let bytes = archive_of(&list, &meta);
            let mut got = Collect::default();
            prop_assert_eq!(read(&mut &bytes[..], "t", &mut got).unwrap(), meta);
            let want: Vec<(String, Vec<u8>)> = files.into_iter().collect();
            prop_assert_eq!(got.0, want);
        }
    }
}
