//! [`TableWriter`]: streams sorted internal keys into a new table file,
//! with range tombstones on the side.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kevo_core::{
    Error, File, FragmentedTombstones, Fs, InternalKey, KEY_BYTES_MAX, RANGE_DELETE_KIND,
    RangeTombstone, Result, SEQNO_MAX, SeqNo, TRAILER_BYTES, VALUE_BYTES_MAX, ValueKind,
    compare_internal_keys, encode_internal_key, pack_trailer, parse_internal_key, user_key,
};

use crate::block::BlockBuilder;
use crate::filter::{
    BLOOM_BITS_PER_KEY_DEFAULT, BLOOM_BITS_PER_KEY_MAX, build_bloom, build_local_bloom, key_hash,
};
use crate::format::{
    BLOCK_BYTES_MAX, BLOCK_BYTES_TARGET_DEFAULT, BLOCK_BYTES_TARGET_MAX, BlockHandle, Compression,
    FORMAT_VERSION_LOCAL_FILTER, FORMAT_VERSION_MIN, FORMAT_VERSION_RANGE_TOMBSTONES, FilterType,
    Footer, IndexType, RESTART_INTERVAL_DEFAULT, RESTART_INTERVAL_MAX, seal_block,
};
use crate::properties::Properties;
use crate::range_tombstones;

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
    /// Compression of data, range-tombstone and index blocks (default LZ4
    /// when the `lz4` feature is on). A block is stored uncompressed when compression saves
    /// less than 1/8 of its size.
    pub compression: Compression,
    /// Bloom filter bits per distinct user key; 0 writes no filter
    /// (0 ..= [`BLOOM_BITS_PER_KEY_MAX`]; default 10).
    pub bloom_bits_per_key: u32,
    /// Whether the filter is the cache-local Bloom filter (default `true`:
    /// a lookup waits for one cache miss in it instead of one per probe,
    /// for a false-positive rate about 0.1 point higher at 10 bits per
    /// key). It makes the table format version 3; `false` writes the
    /// Bloom filter every version reads, for tables that builds before
    /// version 3 must open.
    pub cache_local_filter: bool,
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
            cache_local_filter: true,
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
    /// The smallest internal key: of the first point entry and the first
    /// range tombstone (`start` with the trailer `(seqno,
    /// RANGE_DELETE_KIND)`), the smaller. Its kind may be
    /// [`RANGE_DELETE_KIND`], which `parse_internal_key` refuses.
    pub smallest_key: InternalKey,
    /// The largest internal key: of the last point entry and the end of the
    /// last range tombstone (`end` with the trailer `(SEQNO_MAX,
    /// RANGE_DELETE_KIND)`, an exclusive bound: it sorts before every real
    /// entry of `end`), the larger.
    pub largest_key: InternalKey,
    /// Smallest seqno of any entry or range tombstone.
    pub smallest_seqno: SeqNo,
    /// Largest seqno of any entry or range tombstone.
    pub largest_seqno: SeqNo,
    /// Point entries (puts and tombstones); 0 for a table of range
    /// tombstones alone.
    pub entry_count: u64,
    /// Tombstones among them.
    pub tombstone_count: u64,
    /// Data blocks.
    pub data_block_count: u64,
    /// Sum of internal key lengths.
    pub raw_key_bytes: u64,
    /// Sum of value lengths.
    pub raw_value_bytes: u64,
    /// Range tombstones stored, in fragmented form: one per (fragment,
    /// seqno) (see [`FragmentedTombstones::len`]).
    pub range_tombstone_count: u64,
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
pub(crate) fn compress_lz4(raw: &[u8], out: &mut Vec<u8>) -> bool {
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
pub(crate) fn compress_lz4(_raw: &[u8], _out: &mut Vec<u8>) -> bool {
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

/// Writes one table file from internal keys added in order, and range
/// tombstones added in any order.
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
/// Range tombstones ([`TableWriter::add_range_tombstone`]) are kept in
/// memory and written at [`TableWriter::finish`], fragmented, in a
/// range-tombstone block; a table with any is written in format version 2,
/// one without in version 1 (see `docs/format/sstable.md`).
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
    /// Range tombstones added so far (non-empty ones), in any order.
    range_tombstones: Vec<RangeTombstone>,
    /// Their keys' bytes, for [`TableWriter::estimated_file_size`].
    range_tombstone_bytes: u64,
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
            range_tombstones: Vec::new(),
            range_tombstone_bytes: 0,
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

    /// Adds a range tombstone: every key in `[start, end)` deleted as of
    /// `seqno`. Tombstones may come in any order, before, between or after
    /// the point entries, and may overlap; an empty one (`start >= end`)
    /// is ignored. They are fragmented and written at
    /// [`TableWriter::finish`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a key is longer than `KEY_BYTES_MAX`,
    /// the seqno is above `SEQNO_MAX`, or the writer failed earlier.
    pub fn add_range_tombstone(&mut self, tombstone: &RangeTombstone) -> Result<()> {
        self.check_usable()?;
        if tombstone.start.len() > KEY_BYTES_MAX || tombstone.end.len() > KEY_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "range tombstone key of {} or {} bytes is too long",
                tombstone.start.len(),
                tombstone.end.len()
            )));
        }
        if tombstone.seqno > SEQNO_MAX {
            return Err(Error::InvalidArgument(format!(
                "range tombstone seqno {} above SEQNO_MAX",
                tombstone.seqno
            )));
        }
        if tombstone.is_empty() {
            return Ok(());
        }
        self.range_tombstone_bytes +=
            (tombstone.start.len() + tombstone.end.len() + TRAILER_BYTES) as u64;
        self.range_tombstones.push(tombstone.clone());
        Ok(())
    }

    /// Range tombstones added so far (empty ones not counted), before
    /// fragmentation.
    pub fn range_tombstone_count(&self) -> usize {
        self.range_tombstones.len()
    }

    /// Entries added so far.
    pub fn entry_count(&self) -> u64 {
        self.totals.entries
    }

    /// Roughly the file's size if it were finished now (data written and
    /// buffered, plus the open block and the range tombstones' keys): for
    /// cutting compaction output.
    pub fn estimated_file_size(&self) -> u64 {
        self.sink.offset() + self.data.size_estimate() as u64 + self.range_tombstone_bytes
    }

    /// Writes the remaining data block, the range-tombstone block (if any
    /// tombstone was added), the filter, properties and index blocks and
    /// the footer, then syncs the file's data.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if neither an entry nor a (non-empty)
    /// range tombstone was added, if the writer failed earlier, or if the
    /// index, filter or range-tombstone block outgrows [`BLOCK_BYTES_MAX`];
    /// [`Error::Io`] if a write or the sync fails (the file must then be
    /// discarded).
    pub fn finish(mut self) -> Result<TableMeta> {
        self.check_usable()?;
        if self.totals.entries == 0 && self.range_tombstones.is_empty() {
            return Err(Error::InvalidArgument(
                "a table needs at least one entry or range tombstone".to_string(),
            ));
        }
        if !self.data.is_empty() {
            self.flush_data_block()?;
        }
        if let Some(handle) = self.pending.take() {
            let successor = successor(&self.last_key);
            self.add_index_entry(&successor, handle);
        }
        let fragmented = FragmentedTombstones::new(std::mem::take(&mut self.range_tombstones));
        let range_tombstones = if fragmented.is_empty() {
            BlockHandle::default()
        } else {
            let block = range_tombstones::encode(&fragmented);
            self.sink.emit(&block, self.options.compression)?
        };
        let filter_type = self.filter_type();
        let bloom = match filter_type {
            FilterType::None => None,
            FilterType::Bloom => Some(build_bloom(&self.hashes, self.bloom_bits_per_key)),
            FilterType::LocalBloom => {
                Some(build_local_bloom(&self.hashes, self.bloom_bits_per_key))
            }
        };
        let filter = match bloom {
            Some(bloom) => self.sink.emit(&bloom, Compression::None)?,
            None => BlockHandle::default(),
        };
        let properties = self.properties(&fragmented, range_tombstones, filter_type)?;
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
            format_version: properties.format_version,
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
            range_tombstone_count: properties.range_tombstone_count,
        })
    }

    /// The filter the table being finished gets.
    fn filter_type(&self) -> FilterType {
        if self.bloom_bits_per_key == 0 {
            FilterType::None
        } else if self.options.cache_local_filter {
            FilterType::LocalBloom
        } else {
            FilterType::Bloom
        }
    }

    /// The properties of the table being finished, whose range tombstones
    /// are `fragmented`, in the block at `range_tombstones`, with a filter
    /// of `filter_type`.
    fn properties(
        &self,
        fragmented: &FragmentedTombstones,
        range_tombstones: BlockHandle,
        filter_type: FilterType,
    ) -> Result<Properties> {
        let key = |bytes: &[u8]| {
            InternalKey::from_encoded(bytes.to_vec())
                .ok_or_else(|| Error::InvalidArgument("internal key too short".to_string()))
        };
        let points = (self.totals.entries > 0).then(|| PointBounds {
            first_key: &self.first_key,
            last_key: &self.last_key,
            smallest_seqno: self.totals.smallest_seqno,
            largest_seqno: self.totals.largest_seqno,
        });
        let bounds = TableBounds::compute(points, fragmented).ok_or_else(|| {
            Error::InvalidArgument("a table needs at least one entry or range tombstone".into())
        })?;
        let creation_time_unix_s = self.options.creation_time_unix_s.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        let t = &self.totals;
        // The oldest version that holds the table.
        let format_version = if filter_type == FilterType::LocalBloom {
            FORMAT_VERSION_LOCAL_FILTER
        } else if fragmented.is_empty() {
            FORMAT_VERSION_MIN
        } else {
            FORMAT_VERSION_RANGE_TOMBSTONES
        };
        Ok(Properties {
            entry_count: t.entries,
            tombstone_count: t.tombstones,
            raw_key_bytes: t.raw_key_bytes,
            raw_value_bytes: t.raw_value_bytes,
            smallest_seqno: bounds.smallest_seqno,
            largest_seqno: bounds.largest_seqno,
            creation_time_unix_s,
            data_block_count: t.data_blocks,
            index_entry_count: t.index_entries,
            compression: self.options.compression,
            block_bytes_target: self.options.block_bytes_target as u32,
            restart_interval: self.options.restart_interval as u32,
            bloom_bits_per_key: self.bloom_bits_per_key,
            format_version,
            smallest_key: key(&bounds.smallest_key)?,
            largest_key: key(&bounds.largest_key)?,
            range_tombstone_count: fragmented.len() as u64,
            range_tombstones,
        })
    }
}

/// The first and last point entries' keys of a table and their seqno range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PointBounds<'a> {
    pub(crate) first_key: &'a [u8],
    pub(crate) last_key: &'a [u8],
    pub(crate) smallest_seqno: SeqNo,
    pub(crate) largest_seqno: SeqNo,
}

/// The key and seqno range of a table (keys encoded): what its properties
/// (and the manifest) record, from its point entries and its range
/// tombstones. Computed by the writer and again by `Table::verify`, so
/// both agree by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableBounds {
    pub(crate) smallest_key: Vec<u8>,
    pub(crate) largest_key: Vec<u8>,
    pub(crate) smallest_seqno: SeqNo,
    pub(crate) largest_seqno: SeqNo,
}

impl TableBounds {
    /// The bounds of a table with the point entries `points` (`None`: no
    /// point entry) and the range tombstones `fragmented`; `None` if it
    /// holds neither.
    ///
    /// The range tombstones' smallest key is the first fragment's start
    /// with its newest seqno (its first entry in the block). Their largest
    /// is the last fragment's end with the trailer `(SEQNO_MAX,
    /// RANGE_DELETE_KIND)`, which sorts before every entry of that user
    /// key (the end is exclusive) — except for an end `k + [0]`, the
    /// smallest key after `k`: the largest key covered is then `k` itself,
    /// and the bound is `k` with the trailer 0, after every entry of `k`.
    /// Compaction cuts tombstones at such ends between output tables, so
    /// that neighbouring tables of a level never share a user key.
    pub(crate) fn compute(
        points: Option<PointBounds<'_>>,
        fragmented: &FragmentedTombstones,
    ) -> Option<TableBounds> {
        let points = points.map(|p| TableBounds {
            smallest_key: p.first_key.to_vec(),
            largest_key: p.last_key.to_vec(),
            smallest_seqno: p.smallest_seqno,
            largest_seqno: p.largest_seqno,
        });
        let fragments = fragmented.fragments();
        let tombstones = match (fragments.first(), fragments.last()) {
            (Some(first), Some(last)) => Some(TableBounds {
                smallest_key: range_key(&first.start, first.seqnos.first().copied().unwrap_or(0)),
                largest_key: tombstones_end_key(&last.end),
                smallest_seqno: fragmented.min_seqno().unwrap_or(0),
                largest_seqno: fragmented.max_seqno().unwrap_or(0),
            }),
            _ => None,
        };
        match (points, tombstones) {
            (Some(p), Some(t)) => Some(TableBounds {
                smallest_key: min_key(p.smallest_key, t.smallest_key),
                largest_key: max_key(p.largest_key, t.largest_key),
                smallest_seqno: p.smallest_seqno.min(t.smallest_seqno),
                largest_seqno: p.largest_seqno.max(t.largest_seqno),
            }),
            (p, t) => p.or(t),
        }
    }
}

fn min_key(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    if compare_internal_keys(&b, &a) == Ordering::Less {
        b
    } else {
        a
    }
}

fn max_key(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    if compare_internal_keys(&b, &a) == Ordering::Greater {
        b
    } else {
        a
    }
}

/// The largest key of a table whose range tombstones end at `end`
/// (exclusive): see [`TableBounds::compute`].
fn tombstones_end_key(end: &[u8]) -> Vec<u8> {
    match end.split_last() {
        Some((0, covered)) => {
            let mut encoded = Vec::with_capacity(covered.len() + TRAILER_BYTES);
            encode_internal_key(&mut encoded, covered, 0, 0);
            encoded
        }
        _ => range_key(end, SEQNO_MAX),
    }
}

/// The encoded internal key `user_key + trailer(seqno, RANGE_DELETE_KIND)`.
pub(crate) fn range_key(user_key: &[u8], seqno: SeqNo) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(user_key.len() + TRAILER_BYTES);
    encode_internal_key(&mut encoded, user_key, seqno, RANGE_DELETE_KIND);
    encoded
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
