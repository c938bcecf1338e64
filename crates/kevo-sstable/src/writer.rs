//! [`TableWriter`]: streams sorted internal keys into a new table file.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kevo_core::{
    Error, File, Fs, InternalKey, KEY_BYTES_MAX, Result, SEQNO_MAX, SeqNo, VALUE_BYTES_MAX,
    ValueKind, compare_internal_keys, pack_trailer, parse_internal_key, user_key,
};

use crate::block::BlockBuilder;
use crate::filter::{BLOOM_BITS_PER_KEY_DEFAULT, BLOOM_BITS_PER_KEY_MAX, build_bloom, key_hash};
use crate::format::{
    BLOCK_BYTES_MAX, BLOCK_BYTES_TARGET_DEFAULT, BLOCK_BYTES_TARGET_MAX, BlockHandle, Compression,
    FORMAT_VERSION, FilterType, Footer, IndexType, RESTART_INTERVAL_DEFAULT, RESTART_INTERVAL_MAX,
    seal_block,
};
use crate::properties::Properties;

/// Bytes buffered before they are written to the file.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Restart interval of the index block: every separator is a restart point,
/// so an index seek is a pure binary search.
const INDEX_RESTART_INTERVAL: usize = 1;

/// How a table is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// A data block is cut once its uncompressed size reaches this
    /// (1 ..= [`BLOCK_BYTES_TARGET_MAX`]; default 4 KiB).
    pub block_bytes_target: usize,
    /// Entries between restart points in a data block
    /// (1 ..= [`RESTART_INTERVAL_MAX`]; default 16).
    pub restart_interval: usize,
    /// Compression of data and index blocks (default LZ4 when the `lz4`
    /// feature is on). A block is stored uncompressed when compression saves
    /// less than 1/8 of its size.
    pub compression: Compression,
    /// Bloom filter bits per distinct user key; 0 writes no filter
    /// (0 ..= [`BLOOM_BITS_PER_KEY_MAX`]; default 10).
    pub bloom_bits_per_key: u32,
    /// Whether the caller marks this table as bottom-level.
    pub bottom_level: bool,
    /// Whether a bottom-level table gets a filter too (default `true`; set
    /// it to `false` to save the filter's space where most lookups hit).
    pub filter_bottom_level: bool,
    /// Creation time to record, seconds since the Unix epoch; `None` takes
    /// the system clock.
    pub creation_time_unix_s: Option<u64>,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            block_bytes_target: BLOCK_BYTES_TARGET_DEFAULT,
            restart_interval: RESTART_INTERVAL_DEFAULT,
            compression: if cfg!(feature = "lz4") {
                Compression::Lz4
            } else {
                Compression::None
            },
            bloom_bits_per_key: BLOOM_BITS_PER_KEY_DEFAULT,
            bottom_level: false,
            filter_bottom_level: true,
            creation_time_unix_s: None,
        }
    }
}

impl TableOptions {
    fn check(&self) -> Result<()> {
        let invalid = |what: String| Err(Error::InvalidArgument(what));
        if !(1..=BLOCK_BYTES_TARGET_MAX).contains(&self.block_bytes_target) {
            return invalid(format!(
                "block_bytes_target {} not in 1..={BLOCK_BYTES_TARGET_MAX}",
                self.block_bytes_target
            ));
        }
        if !(1..=RESTART_INTERVAL_MAX).contains(&self.restart_interval) {
            return invalid(format!(
                "restart_interval {} not in 1..={RESTART_INTERVAL_MAX}",
                self.restart_interval
            ));
        }
        if self.bloom_bits_per_key > BLOOM_BITS_PER_KEY_MAX {
            return invalid(format!(
                "bloom_bits_per_key {} above {BLOOM_BITS_PER_KEY_MAX}",
                self.bloom_bits_per_key
            ));
        }
        if !self.compression.is_supported() {
            return invalid(format!(
                "{:?} compression needs the `lz4` feature",
                self.compression
            ));
        }
        Ok(())
    }

    fn effective_bloom_bits_per_key(&self) -> u32 {
        if self.bottom_level && !self.filter_bottom_level {
            0
        } else {
            self.bloom_bits_per_key
        }
    }
}

/// What a finished table holds: what the manifest records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    /// Bytes of the file.
    pub file_size: u64,
    /// The first internal key.
    pub smallest_key: InternalKey,
    /// The last internal key.
    pub largest_key: InternalKey,
    /// Smallest seqno of any entry.
    pub smallest_seqno: SeqNo,
    /// Largest seqno of any entry.
    pub largest_seqno: SeqNo,
    /// Entries (puts and tombstones).
    pub entry_count: u64,
    /// Tombstones among them.
    pub tombstone_count: u64,
    /// Data blocks.
    pub data_block_count: u64,
    /// Sum of internal key lengths.
    pub raw_key_bytes: u64,
    /// Sum of value lengths.
    pub raw_value_bytes: u64,
}

/// Buffered output: blocks are appended and sealed here, then written.
#[derive(Debug)]
struct Sink {
    file: Arc<dyn File>,
    path: PathBuf,
    out: Vec<u8>,
    /// Bytes already written to the file (the file offset of `out[0]`).
    flushed: u64,
    scratch: Vec<u8>,
}

impl Sink {
    fn offset(&self) -> u64 {
        self.flushed + self.out.len() as u64
    }

    /// Appends a block (compressed if worth it) and its trailer.
    fn emit(&mut self, raw: &[u8], compression: Compression) -> Result<BlockHandle> {
        if raw.len() > BLOCK_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "a block of {} bytes exceeds BLOCK_BYTES_MAX; the table is too large for a \
                 single-level index or filter",
                raw.len()
            )));
        }
        let start = self.out.len();
        // LZ4 only when it saves at least 1/8 of the block.
        let use_lz4 = compression == Compression::Lz4
            && compress_lz4(raw, &mut self.scratch)
            && self.scratch.len() <= raw.len() - raw.len() / 8;
        let stored = if use_lz4 {
            self.out.extend_from_slice(&self.scratch);
            Compression::Lz4
        } else {
            self.out.extend_from_slice(raw);
            Compression::None
        };
        let handle = BlockHandle {
            offset: self.flushed + start as u64,
            size: (self.out.len() - start) as u64,
        };
        seal_block(&mut self.out, start, stored);
        if self.out.len() >= WRITE_BUFFER_BYTES {
            self.flush()?;
        }
        Ok(handle)
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all_at(&self.out, self.flushed)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        self.flushed += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }
}

/// `varint32(raw.len())` then one LZ4 block, into `out`; `false` if this
/// build has no LZ4 or the compressor refused.
#[cfg(feature = "lz4")]
fn compress_lz4(raw: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    kevo_core::put_varint32(out, raw.len() as u32);
    let header = out.len();
    out.resize(
        header + lz4_flex::block::get_maximum_output_size(raw.len()),
        0,
    );
    match lz4_flex::block::compress_into(raw, &mut out[header..]) {
        Ok(n) => {
            out.truncate(header + n);
            true
        }
        Err(_) => false,
    }
}

#[cfg(not(feature = "lz4"))]
fn compress_lz4(_raw: &[u8], _out: &mut Vec<u8>) -> bool {
    false
}

/// Running totals for the properties block.
#[derive(Debug, Default)]
struct Totals {
    entries: u64,
    tombstones: u64,
    raw_key_bytes: u64,
    raw_value_bytes: u64,
    smallest_seqno: SeqNo,
    largest_seqno: SeqNo,
    data_blocks: u64,
    index_entries: u64,
}

/// Writes one table file from internal keys added in order.
///
/// ```
/// use kevo_core::{InternalKey, MemFs, ValueKind};
/// use kevo_sstable::{ReadOptions, Table, TableOptions, TableWriter};
/// use std::path::Path;
///
/// # fn main() -> kevo_core::Result<()> {
/// let fs = MemFs::new();
/// let path = Path::new("/000001.sst");
/// let mut writer = TableWriter::create(&fs, path, TableOptions::default())?;
/// writer.add(InternalKey::new(b"apple", 2, ValueKind::Put).as_bytes(), b"red")?;
/// writer.add(InternalKey::new(b"banana", 1, ValueKind::Delete).as_bytes(), b"")?;
/// let meta = writer.finish()?; // synced
/// assert_eq!(meta.entry_count, 2);
///
/// let table = Table::open(&fs, path, ReadOptions::default())?;
/// let found = table.get(b"apple", 10)?.expect("present");
/// assert_eq!((found.kind, &found.value[..]), (ValueKind::Put, &b"red"[..]));
/// # Ok(())
/// # }
/// ```
///
/// The file is complete only when [`TableWriter::finish`] returns `Ok`; a
/// writer dropped earlier, or one that returned an error, leaves a partial
/// file that the caller should delete. After an error the writer accepts
/// nothing more. The new file's directory entry is not synced here (the
/// caller syncs the directory when it installs the table).
#[derive(Debug)]
pub struct TableWriter {
    sink: Sink,
    options: TableOptions,
    bloom_bits_per_key: u32,
    data: BlockBuilder,
    index: BlockBuilder,
    /// The last data block written, waiting for the next key to choose its
    /// index separator.
    pending: Option<BlockHandle>,
    first_key: Vec<u8>,
    last_key: Vec<u8>,
    hashes: Vec<u64>,
    totals: Totals,
    failed: bool,
}

impl TableWriter {
    /// Creates (truncating) the file at `path` and a writer for it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for options out of range (or LZ4 without
    /// the `lz4` feature); [`Error::Io`] if the file cannot be created.
    pub fn create(fs: &dyn Fs, path: &Path, options: TableOptions) -> Result<TableWriter> {
        options.check()?;
        let file = fs
            .create(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(TableWriter {
            sink: Sink {
                file,
                path: path.to_path_buf(),
                out: Vec::with_capacity(WRITE_BUFFER_BYTES + options.block_bytes_target),
                flushed: 0,
                scratch: Vec::new(),
            },
            bloom_bits_per_key: options.effective_bloom_bits_per_key(),
            data: BlockBuilder::new(options.restart_interval),
            index: BlockBuilder::new(INDEX_RESTART_INTERVAL),
            options,
            pending: None,
            first_key: Vec::new(),
            last_key: Vec::new(),
            hashes: Vec::new(),
            totals: Totals::default(),
            failed: false,
        })
    }

    /// Appends an entry: `key` is an encoded internal key (user key + trailer
    /// with a valid [`ValueKind`]), `value` its value (empty for tombstones
    /// by convention; it is stored as given).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `key` is not a valid internal key, is
    /// too long, does not sort strictly after the previous key (out of
    /// order or duplicate), if `value` is too long, or if the writer failed
    /// earlier; [`Error::Io`] if writing a full block fails.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_usable()?;
        let parsed = parse_internal_key(key).ok_or_else(|| {
            Error::InvalidArgument("not an internal key with a valid kind".to_string())
        })?;
        if parsed.user_key.len() > KEY_BYTES_MAX || value.len() > VALUE_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "key of {} bytes or value of {} bytes is too long",
                parsed.user_key.len(),
                value.len()
            )));
        }
        let first = self.totals.entries == 0;
        if !first && compare_internal_keys(&self.last_key, key) != Ordering::Less {
            return Err(Error::InvalidArgument(format!(
                "key {:?} does not sort after the previous key {:?}",
                InternalKey::from_encoded(key.to_vec()),
                InternalKey::from_encoded(self.last_key.clone()),
            )));
        }
        let result = self.add_checked(key, value, parsed.seqno, parsed.kind, first);
        self.failed = result.is_err();
        result
    }

    fn add_checked(
        &mut self,
        key: &[u8],
        value: &[u8],
        seqno: SeqNo,
        kind: ValueKind,
        first: bool,
    ) -> Result<()> {
        if let Some(handle) = self.pending.take() {
            let separator = separator(&self.last_key, key);
            self.add_index_entry(&separator, handle);
        }
        let user = user_key(key);
        if self.bloom_bits_per_key > 0 && (first || user_key(&self.last_key) != user) {
            self.hashes.push(key_hash(user));
        }
        self.data.add(key, value);
        let totals = &mut self.totals;
        if first {
            self.first_key = key.to_vec();
            totals.smallest_seqno = seqno;
            totals.largest_seqno = seqno;
        }
        totals.entries += 1;
        totals.tombstones += u64::from(kind == ValueKind::Delete);
        totals.raw_key_bytes += key.len() as u64;
        totals.raw_value_bytes += value.len() as u64;
        totals.smallest_seqno = totals.smallest_seqno.min(seqno);
        totals.largest_seqno = totals.largest_seqno.max(seqno);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        if self.data.size_estimate() >= self.options.block_bytes_target {
            self.flush_data_block()?;
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "the table writer failed earlier and accepts nothing more".to_string(),
            ));
        }
        Ok(())
    }

    fn add_index_entry(&mut self, separator: &[u8], handle: BlockHandle) {
        let mut value = Vec::with_capacity(20);
        handle.encode_varint(&mut value);
        self.index.add(separator, &value);
        self.totals.index_entries += 1;
    }

    fn flush_data_block(&mut self) -> Result<()> {
        debug_assert!(!self.data.is_empty());
        debug_assert_eq!(self.data.last_key(), &self.last_key[..]);
        let handle = self
            .sink
            .emit(self.data.finish(), self.options.compression)?;
        self.data.reset();
        self.pending = Some(handle);
        self.totals.data_blocks += 1;
        Ok(())
    }

    /// Entries added so far.
    pub fn entry_count(&self) -> u64 {
        self.totals.entries
    }

    /// Roughly the file's size if it were finished now (data written and
    /// buffered, plus the open block): for cutting compaction output.
    pub fn estimated_file_size(&self) -> u64 {
        self.sink.offset() + self.data.size_estimate() as u64
    }

    /// Writes the remaining data block, the filter, properties and index
    /// blocks and the footer, then syncs the file's data.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if no entry was added, if the writer
    /// failed earlier, or if the index or filter outgrows
    /// [`BLOCK_BYTES_MAX`]; [`Error::Io`] if a write or the sync fails (the
    /// file must then be discarded).
    pub fn finish(mut self) -> Result<TableMeta> {
        self.check_usable()?;
        if self.totals.entries == 0 {
            return Err(Error::InvalidArgument(
                "a table needs at least one entry".to_string(),
            ));
        }
        if !self.data.is_empty() {
            self.flush_data_block()?;
        }
        if let Some(handle) = self.pending.take() {
            let successor = successor(&self.last_key);
            self.add_index_entry(&successor, handle);
        }
        let (filter, filter_type) = if self.bloom_bits_per_key > 0 {
            let bloom = build_bloom(&self.hashes, self.bloom_bits_per_key);
            (
                self.sink.emit(&bloom, Compression::None)?,
                FilterType::Bloom,
            )
        } else {
            (BlockHandle::default(), FilterType::None)
        };
        let properties = self.properties()?;
        let properties_handle = self.sink.emit(&properties.encode(), Compression::None)?;
        let index = self
            .sink
            .emit(self.index.finish(), self.options.compression)?;
        let footer = Footer {
            index,
            filter,
            properties: properties_handle,
            index_type: IndexType::SingleLevel,
            filter_type,
            format_version: FORMAT_VERSION,
        };
        self.sink.out.extend_from_slice(&footer.encode());
        self.sink.flush()?;
        self.sink
            .file
            .sync_data()
            .map_err(|e| Error::io(format!("syncing {}", self.sink.path.display()), e))?;
        Ok(TableMeta {
            file_size: self.sink.offset(),
            smallest_key: properties.smallest_key,
            largest_key: properties.largest_key,
            smallest_seqno: properties.smallest_seqno,
            largest_seqno: properties.largest_seqno,
            entry_count: properties.entry_count,
            tombstone_count: properties.tombstone_count,
            data_block_count: properties.data_block_count,
            raw_key_bytes: properties.raw_key_bytes,
            raw_value_bytes: properties.raw_value_bytes,
        })
    }

    fn properties(&self) -> Result<Properties> {
        let key = |bytes: &[u8]| {
            InternalKey::from_encoded(bytes.to_vec())
                .ok_or_else(|| Error::InvalidArgument("internal key too short".to_string()))
        };
        let creation_time_unix_s = self.options.creation_time_unix_s.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        let t = &self.totals;
        Ok(Properties {
            entry_count: t.entries,
            tombstone_count: t.tombstones,
            raw_key_bytes: t.raw_key_bytes,
            raw_value_bytes: t.raw_value_bytes,
            smallest_seqno: t.smallest_seqno,
            largest_seqno: t.largest_seqno,
            creation_time_unix_s,
            data_block_count: t.data_blocks,
            index_entry_count: t.index_entries,
            compression: self.options.compression,
            block_bytes_target: self.options.block_bytes_target as u32,
            restart_interval: self.options.restart_interval as u32,
            bloom_bits_per_key: self.bloom_bits_per_key,
            format_version: FORMAT_VERSION,
            smallest_key: key(&self.first_key)?,
            largest_key: key(&self.last_key)?,
        })
    }
}

/// The trailer given to shortened separators. Any trailer would do: a
/// shortened user key lies strictly between the two blocks' user keys.
fn separator_trailer() -> [u8; 8] {
    pack_trailer(SEQNO_MAX, ValueKind::Put as u8).to_le_bytes()
}

/// A short internal key `s` with `last <= s < next`: `last` itself unless a
/// user key strictly between the two user keys is shorter.
pub(crate) fn separator(last: &[u8], next: &[u8]) -> Vec<u8> {
    let (a, b) = (user_key(last), user_key(next));
    match shortest_between(a, b) {
        Some(mut s) if s.len() < a.len() => {
            s.extend_from_slice(&separator_trailer());
            s
        }
        _ => last.to_vec(),
    }
}

/// A short internal key `>= last`, for the last data block.
pub(crate) fn successor(last: &[u8]) -> Vec<u8> {
    let a = user_key(last);
    match a.iter().position(|&byte| byte != 0xFF) {
        Some(i) if i + 1 < a.len() => {
            let mut s = a[..=i].to_vec();
            s[i] += 1;
            s.extend_from_slice(&separator_trailer());
            s
        }
        _ => last.to_vec(),
    }
}

/// A short user key `s` with `a < s < b` (a prefix of `a` with its last
/// byte incremented), if this simple scheme finds one.
fn shortest_between(a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if p >= a.len() || p >= b.len() || a[p] >= b[p] {
        return None;
    }
    // `a[..p]` + `a[p] + 1` is below `b` if that byte is below `b[p]`, or
    // if it equals `b[p]` and `b` goes on (then it is a proper prefix of `b`).
    if a[p] + 1 < b[p] || b.len() > p + 1 {
        let mut s = a[..=p].to_vec();
        s[p] += 1;
        return Some(s);
    }
    let i = (p + 1..a.len()).find(|&i| a[i] != 0xFF)?;
    let mut s = a[..=i].to_vec();
    s[i] += 1;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ik(key: &[u8], seqno: SeqNo) -> Vec<u8> {
        InternalKey::new(key, seqno, ValueKind::Put)
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn separator_is_shortened_between_distant_keys() {
        let s = separator(&ik(b"apple-pie", 5), &ik(b"banana", 9));
        assert_eq!(user_key(&s), b"b");
        let s = separator(&ik(b"abcxyz", 5), &ik(b"abd", 9));
        assert_eq!(user_key(&s), b"abcy");
    }

    #[test]
    fn separator_keeps_the_last_key_when_user_keys_are_equal_or_prefixed() {
        assert_eq!(separator(&ik(b"k", 5), &ik(b"k", 3)), ik(b"k", 5));
        assert_eq!(separator(&ik(b"ab", 5), &ik(b"abc", 3)), ik(b"ab", 5));
    }

    #[test]
    fn successor_is_short_and_not_smaller() {
        assert_eq!(user_key(&successor(&ik(b"hello", 1))), b"i");
        assert_eq!(successor(&ik(b"\xff\xff", 1)), ik(b"\xff\xff", 1));
        assert_eq!(successor(&ik(b"h", 1)), ik(b"h", 1));
    }

    proptest! {
        #[test]
        fn separator_lies_between_its_keys(
            a in proptest::collection::vec(any::<u8>(), 0..8),
            b in proptest::collection::vec(any::<u8>(), 0..8),
            sa in 0..100u64,
            sb in 0..100u64,
        ) {
            let (ka, kb) = (ik(&a, sa), ik(&b, sb));
            let (lo, hi) = match compare_internal_keys(&ka, &kb) {
                Ordering::Less => (ka, kb),
                Ordering::Greater => (kb, ka),
                Ordering::Equal => return Ok(()),
            };
            let s = separator(&lo, &hi);
            prop_assert_ne!(compare_internal_keys(&s, &lo), Ordering::Less);
            prop_assert_eq!(compare_internal_keys(&s, &hi), Ordering::Less);
            prop_assert!(s.len() <= lo.len());
            let t = successor(&lo);
            prop_assert_ne!(compare_internal_keys(&t, &lo), Ordering::Less);
        }
    }
}
