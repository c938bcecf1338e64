//! [`Table`]: an open table file serving point lookups, cursors, and the
//! block walk that dump and verify tools are built on.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use kevo_core::{
    Error, File, FragmentedTombstones, Fs, LOOKUP_KIND, Result, SEQNO_MAX, SeqNo, ValueKind,
    compare_internal_keys, pack_trailer, parse_internal_key, unpack_trailer,
};

use crate::block::{Block, BlockIter};
use crate::cache::{BlockCache, CacheKey};
use crate::filter::BloomFilter;
use crate::format::{
    BLOCK_BYTES_MAX, BLOCK_TRAILER_BYTES, BlockHandle, Compression, FOOTER_BYTES, FilterType,
    Footer, check_trailer,
};
use crate::index::BlockIndex;
use crate::properties::Properties;
use crate::range_tombstones::decode_range_tombstones;
use crate::writer::{PointBounds, TableBounds};

/// Source of [`Table::cache_id`]s: unique for the life of the process.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// How a table is opened.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    cache: Option<Arc<dyn BlockCache>>,
    pins: Option<Arc<AtomicUsize>>,
}

impl ReadOptions {
    /// Data blocks go through `cache` (shared by any number of tables).
    /// Without a cache every lookup reads its block from the file.
    #[must_use]
    pub fn with_cache(mut self, cache: Arc<dyn BlockCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Cursors over the table add the [`Block::charge`] of the data block
    /// they hold to `pins` while they hold it: memory a block cache does
    /// not bound (a block stays alive after the cache drops it).
    #[must_use]
    pub fn with_pin_counter(mut self, pins: Arc<AtomicUsize>) -> Self {
        self.pins = Some(pins);
        self
    }
}

/// The entry [`Table::get`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its seqno (at most the snapshot asked for).
    pub seqno: SeqNo,
    /// A value or a tombstone.
    pub kind: ValueKind,
    /// The value (a zero-copy slice of the cached block).
    pub value: Bytes,
}

/// An open, immutable table file.
///
/// `Table` is `Send + Sync`; share it as `Arc<Table>` (cursors hold one).
/// The index, the filter, the properties and the range tombstones are kept
/// in memory from [`Table::open`] on; data blocks are read on demand
/// through the block cache, each read verifying the block's checksum.
///
/// Point reads ([`Table::get`], [`Table::cursor`]) see point entries only;
/// the range tombstones are [`Table::range_tombstones`], for the layers
/// above to apply. A table may hold range tombstones and no point entry:
/// it has no data block, `get` finds nothing and cursors are never valid.
///
/// # Memory
/// The index block is decoded at open into flat arrays that a lookup
/// binary-searches without decoding anything: per data block, its handle
/// (16 bytes), its separator key's bytes and offset (4 bytes) and an 8-byte
/// slice of the separator's user key (the bytes after the prefix all
/// separators share) for the search. That is `28 bytes + separator length`
/// per data block: about 52 bytes for 16-byte user keys, 1.4 MiB for a
/// table of 1 M such entries in 4 KiB blocks (the raw index block, which
/// is not kept, is about 37 bytes per block). The Bloom filter takes its
/// on-disk size (`bits_per_key / 8` bytes per key). The range tombstones
/// take about their keys' bytes (each fragment's start and end once) plus
/// 8 bytes per seqno.
pub struct Table {
    src: TableFile,
    cache_id: u64,
    cache: Option<Arc<dyn BlockCache>>,
    footer: Footer,
    index: BlockIndex,
    filter: Option<BloomFilter>,
    properties: Properties,
    range_tombstones: Arc<FragmentedTombstones>,
    pins: Option<Arc<AtomicUsize>>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.src.path)
            .field("file_size", &self.src.size)
            .field("cache_id", &self.cache_id)
            .field("footer", &self.footer)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// Opens the table at `path`: reads and checks the footer, then the
    /// properties, index, range-tombstone (format version 2) and filter
    /// blocks (every checksum verified), decodes the index into memory
    /// (checking that its separators are in order and its handles inside
    /// the data), and decodes and checks the range tombstones.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or read;
    /// [`Error::Corruption`] with the file and offset if any of those
    /// structures is damaged, truncated or inconsistent (including a file
    /// too short for a footer, or of an unsupported format version);
    /// [`Error::InvalidArgument`] if a block is LZ4-compressed and this
    /// build lacks the `lz4` feature.
    pub fn open(fs: &dyn Fs, path: &Path, options: ReadOptions) -> Result<Table> {
        let file = fs
            .open_read(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let file_size = file
            .len()
            .map_err(|e| Error::io(format!("sizing {}", path.display()), e))?;
        let corrupt = |offset: u64, reason: String| Error::corruption(path, offset, reason);
        let footer_offset = file_size
            .checked_sub(FOOTER_BYTES as u64)
            .ok_or_else(|| corrupt(0, format!("file of {file_size} bytes has no footer")))?;
        let src = TableFile {
            file,
            path: path.to_path_buf(),
            size: file_size,
        };
        let mut footer_bytes = [0u8; FOOTER_BYTES];
        read_exact(&*src.file, path, &mut footer_bytes, footer_offset)?;
        let footer =
            Footer::decode(&footer_bytes).map_err(|e| corrupt(footer_offset, e.to_string()))?;
        check_layout(&footer, footer_offset)
            .map_err(|reason| corrupt(footer_offset, reason.into()))?;
        let properties = src.read_contents(footer.properties)?;
        let properties = Properties::decode(&properties, footer.format_version)
            .map_err(|reason| corrupt(footer.properties.offset, reason.into()))?;
        check_range_tombstone_layout(&footer, &properties)
            .map_err(|reason| corrupt(footer.properties.offset, reason.into()))?;
        let index = BlockIndex::decode(
            src.read_contents(footer.index)?,
            data_end(&footer, &properties),
            properties.entry_count == 0,
        )
        .map_err(|reason| corrupt(footer.index.offset, reason.into()))?;
        let range_tombstones = Arc::new(src.read_range_tombstones(&properties)?);
        let filter = match footer.filter_type {
            FilterType::None => None,
            kind => {
                let bytes = src.read_contents(footer.filter)?;
                let filter = if kind == FilterType::LocalBloom {
                    BloomFilter::new_local(&bytes)
                } else {
                    BloomFilter::new(bytes.to_vec())
                };
                Some(filter.map_err(|reason| corrupt(footer.filter.offset, reason.into()))?)
            }
        };
        Ok(Table {
            src,
            cache_id: NEXT_CACHE_ID.fetch_add(1, AtomicOrdering::Relaxed),
            cache: options.cache,
            footer,
            index,
            filter,
            properties,
            range_tombstones,
            pins: options.pins,
        })
    }

    /// The newest entry for `user_key` with seqno `<= snapshot`, if the
    /// table holds one (a tombstone is returned as such). Consults the
    /// filter first, then reads at most one data block.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Corruption`] reading the data block.
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Result<Option<Found>> {
        if !self.may_contain(user_key) {
            return Ok(None);
        }
        // The lookup key `(user_key, snapshot, LOOKUP_KIND)` sorts before
        // every version of `user_key` visible at `snapshot`; it is compared
        // as a (user key, trailer) pair and never encoded.
        let trailer = pack_trailer(snapshot.min(SEQNO_MAX), LOOKUP_KIND);
        let position = self.index.find(user_key, trailer);
        if position == self.index.len() {
            return Ok(None);
        }
        let handle = self.index.handle(position);
        let block = self.data_block(handle, true)?;
        let hit = block
            .get(user_key, trailer)
            .map_err(|reason| self.corrupt(handle.offset, reason))?;
        let Some(hit) = hit else {
            return Ok(None);
        };
        let (seqno, tag) = unpack_trailer(hit.trailer);
        let kind = ValueKind::from_u8(tag)
            .ok_or_else(|| self.corrupt(handle.offset, "entry key does not parse"))?;
        Ok(Some(Found {
            seqno,
            kind,
            value: block.data().slice(hit.value),
        }))
    }

    /// Whether the filter lets `user_key` through (`true` without a filter).
    /// `false` means the table certainly holds no entry for it.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter.as_ref().is_none_or(|f| f.may_contain(user_key))
    }

    /// The properties block.
    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    /// The table's range tombstones, in fragmented form, as decoded and
    /// checked at [`Table::open`]; empty for a table without any (every
    /// version-1 table).
    pub fn range_tombstones(&self) -> &Arc<FragmentedTombstones> {
        &self.range_tombstones
    }

    /// The footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.src.path
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.src.size
    }

    /// This table's namespace in the block cache: unique per [`Table::open`]
    /// in this process, so a reopened or replaced file never sees stale blocks.
    pub fn cache_id(&self) -> u64 {
        self.cache_id
    }

    /// Bloom filter size in bits and probes per key, if the table has one.
    pub fn filter_shape(&self) -> Option<(u64, u8)> {
        self.filter.as_ref().map(|f| (f.bit_count(), f.probes()))
    }

    /// The decoded index.
    pub(crate) fn index(&self) -> &BlockIndex {
        &self.index
    }

    pub(crate) fn corrupt(&self, offset: u64, reason: &str) -> Error {
        self.src.corrupt(offset, reason)
    }

    /// The data block at `handle`, from the cache or the file; a block read
    /// from the file is cached if `fill_cache`.
    pub(crate) fn data_block(&self, handle: BlockHandle, fill_cache: bool) -> Result<Block> {
        let key = CacheKey {
            table_id: self.cache_id,
            offset: handle.offset,
        };
        if let Some(block) = self.cache.as_ref().and_then(|c| c.get(key)) {
            return Ok(block);
        }
        let block = self.src.read_block(handle)?;
        if fill_cache && let Some(cache) = &self.cache {
            cache.insert(key, block.clone());
        }
        Ok(block)
    }

    /// Bytes this open table holds in memory outside the block cache: its
    /// decoded index and its filter (what a memory budget counts for every
    /// open table).
    pub fn metadata_bytes(&self) -> usize {
        self.index.memory_bytes() + self.filter.as_ref().map_or(0, BloomFilter::memory_bytes)
    }

    /// The counter of bytes of blocks held by cursors, if the table was
    /// opened with one ([`ReadOptions::with_pin_counter`]).
    pub(crate) fn pin_counter(&self) -> Option<&Arc<AtomicUsize>> {
        self.pins.as_ref()
    }

    /// Drops this table's data blocks from the block cache, for a table
    /// whose file is being deleted or whose reader is being closed: no
    /// lookup can find them again (a reopened table has a new
    /// [`cache_id`](Table::cache_id)), so they would only take room until
    /// they aged out. One cache removal per data block; blocks read later
    /// by a cursor still open on this table are cached again as usual.
    pub fn forget_cached_blocks(&self) {
        let Some(cache) = &self.cache else {
            return;
        };
        for i in 0..self.index.len() {
            cache.remove(CacheKey {
                table_id: self.cache_id,
                offset: self.index.handle(i).offset,
            });
        }
    }

    /// Walks every block of the table in file order (data blocks, then the
    /// range-tombstone, filter, properties and index blocks, each when the
    /// table has it), reading each one once without the cache and reporting
    /// its handle, compression and checksum status.
    pub fn blocks(&self) -> BlockWalk<'_> {
        BlockWalk {
            table: self,
            next_data_block: 0,
            stage: WalkStage::Data,
        }
    }

    /// Checks the whole table: every block's checksum, every entry's key
    /// (valid, strictly increasing, within its index separator), the
    /// range-tombstone block (read again and decoded: count, seqnos and
    /// bounds within the properties'), and the properties' counts, key
    /// range and seqno range against entries and range tombstones.
    ///
    /// # Errors
    /// [`Error::Corruption`] at the first problem found; [`Error::Io`].
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let mut first: Option<Vec<u8>> = None;
        let mut last: Option<Vec<u8>> = None;
        let (mut smallest_seqno, mut largest_seqno) = (SeqNo::MAX, 0);
        for position in 0..self.index.len() {
            let handle = self.index.handle(position);
            let separator = self.index.key(position);
            let bad = |reason: &str| self.corrupt(handle.offset, reason);
            let block = self.src.read_block(handle)?;
            block.check_restarts().map_err(bad)?;
            let mut data = BlockIter::new(block);
            data.seek_to_first().map_err(bad)?;
            let mut first_in_block = true;
            while data.valid() {
                let parsed = parse_internal_key(data.key()).ok_or_else(|| bad("bad key"))?;
                if last
                    .as_ref()
                    .is_some_and(|l| compare_internal_keys(l, data.key()) != Ordering::Less)
                {
                    return Err(bad("keys out of order"));
                }
                if compare_internal_keys(data.key(), separator) == Ordering::Greater {
                    return Err(bad("key sorts after its index separator"));
                }
                // A get seeks the index: a key at or before the previous
                // separator would be looked for in the previous block.
                if first_in_block
                    && position > 0
                    && compare_internal_keys(data.key(), self.index.key(position - 1))
                        != Ordering::Greater
                {
                    return Err(bad(
                        "block's first key does not sort after the previous separator",
                    ));
                }
                first_in_block = false;
                if !self.may_contain(parsed.user_key) {
                    return Err(self.corrupt(
                        self.footer.filter.offset,
                        "the filter rejects a key the table holds",
                    ));
                }
                smallest_seqno = smallest_seqno.min(parsed.seqno);
                largest_seqno = largest_seqno.max(parsed.seqno);
                report.entries += 1;
                report.tombstones += u64::from(parsed.kind == ValueKind::Delete);
                if first.is_none() {
                    first = Some(data.key().to_vec());
                }
                last = Some(data.key().to_vec());
                data.next().map_err(bad)?;
            }
            report.data_blocks += 1;
            report.data_bytes += handle.size;
        }
        // Read the range tombstones again: open checked them, but verify
        // reads every byte from the file.
        let tombstones = self.src.read_range_tombstones(&self.properties)?;
        if tombstones != *self.range_tombstones {
            return Err(self.corrupt(
                self.properties.range_tombstones.offset,
                "range tombstones differ from those read at open",
            ));
        }
        report.range_tombstones = tombstones.len() as u64;
        let points = first
            .as_deref()
            .zip(last.as_deref())
            .map(|(first, last)| PointBounds {
                first_key: first,
                last_key: last,
                smallest_seqno,
                largest_seqno,
            });
        let bounds = TableBounds::compute(points, &tombstones);
        let p = &self.properties;
        let consistent = report.entries == p.entry_count
            && report.tombstones == p.tombstone_count
            && report.data_blocks == p.data_block_count
            && bounds.as_ref().is_some_and(|b| {
                b.smallest_seqno == p.smallest_seqno
                    && b.largest_seqno == p.largest_seqno
                    && b.largest_key == p.largest_key.as_bytes()
            });
        if !consistent {
            return Err(self.corrupt(
                self.footer.properties.offset,
                "properties disagree with the data blocks and range tombstones",
            ));
        }
        if bounds.is_some_and(|b| b.smallest_key != p.smallest_key.as_bytes()) {
            return Err(self.corrupt(
                self.footer.properties.offset,
                "properties' smallest key is not the first key",
            ));
        }
        Ok(report)
    }
}

/// What [`Table::salvage`] read and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Data blocks whose entries were handed over.
    pub data_blocks_read: u64,
    /// Entries handed over.
    pub entries: u64,
    /// Data blocks that could not be read.
    pub skipped: Vec<SkippedBlock>,
}

/// A data block [`Table::salvage`] could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedBlock {
    /// Its offset in the file.
    pub offset: u64,
    /// Its stored size (trailer excluded).
    pub size: u64,
    /// What was wrong.
    pub reason: String,
}

impl Table {
    /// Hands every readable entry to `sink`, in order, data block by data
    /// block: a block whose checksum fails, that does not decode, or whose
    /// keys are not internal keys in increasing order (after those handed
    /// over so far) is skipped whole and reported. For repair tools, which
    /// keep every readable entry of a damaged table. Needs the table to
    /// open (its index locates the blocks).
    ///
    /// Only point entries are handed to `sink`. The range tombstones of a
    /// format-version-2 table are not: `open` has already read and checked
    /// them (a damaged range-tombstone block makes `open` fail), and a
    /// repair tool that keeps them takes [`Table::range_tombstones`] and
    /// writes them with [`TableWriter::add_range_tombstone`]. A table of
    /// range tombstones alone has no data block: nothing is handed over.
    ///
    /// [`TableWriter::add_range_tombstone`]: crate::TableWriter::add_range_tombstone
    ///
    /// # Errors
    /// [`Error::Io`] if reading fails for a reason other than damage;
    /// whatever `sink` returns.
    pub fn salvage(
        &self,
        mut sink: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<SalvageReport> {
        let mut report = SalvageReport::default();
        let mut last: Option<Vec<u8>> = None;
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for position in 0..self.index.len() {
            let handle = self.index.handle(position);
            let bad = |reason: &str| self.corrupt(handle.offset, reason);
            let skipped = |e: Error| SkippedBlock {
                offset: handle.offset,
                size: handle.size,
                reason: match e {
                    Error::Corruption { reason, .. } => reason,
                    other => other.to_string(),
                },
            };
            let block = match self.src.read_block(handle) {
                Ok(block) => block,
                Err(e @ Error::Corruption { .. }) => {
                    report.skipped.push(skipped(e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Decode the whole block before handing anything over, so that
            // a block is kept or skipped whole.
            entries.clear();
            let decoded = (|| {
                block.check_restarts().map_err(bad)?;
                let mut data = BlockIter::new(block);
                data.seek_to_first().map_err(bad)?;
                let mut previous = last.clone();
                while data.valid() {
                    parse_internal_key(data.key()).ok_or_else(|| bad("bad key"))?;
                    if previous
                        .as_ref()
                        .is_some_and(|p| compare_internal_keys(p, data.key()) != Ordering::Less)
                    {
                        return Err(bad("keys out of order"));
                    }
                    previous = Some(data.key().to_vec());
                    entries.push((data.key().to_vec(), data.value().to_vec()));
                    data.next().map_err(bad)?;
                }
                Ok(previous)
            })();
            match decoded {
                Ok(previous) => {
                    for (key, value) in &entries {
                        sink(key, value)?;
                    }
                    report.entries += entries.len() as u64;
                    report.data_blocks_read += 1;
                    last = previous;
                }
                Err(e) => report.skipped.push(skipped(e)),
            }
        }
        Ok(report)
    }
}

/// What [`Table::verify`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Data blocks read and checked.
    pub data_blocks: u64,
    /// Stored bytes of those blocks.
    pub data_bytes: u64,
    /// Entries decoded.
    pub entries: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Range tombstones decoded (one per fragment and seqno).
    pub range_tombstones: u64,
}

/// Which structure a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// Entries.
    Data,
    /// The range tombstones (format version 2).
    RangeTombstones,
    /// The Bloom filter.
    Filter,
    /// The properties.
    Properties,
    /// The index.
    Index,
}

/// Whether a block's stored checksum matches its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// The checksum matches.
    Ok,
    /// It does not.
    Mismatch {
        /// The checksum in the trailer.
        stored: u64,
        /// The checksum of the bytes.
        computed: u64,
    },
}

/// One block as [`Table::blocks`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// Which structure it is.
    pub kind: BlockKind,
    /// Where it lies (stored size, trailer excluded).
    pub handle: BlockHandle,
    /// The compression tag in its trailer, if it is a known one.
    pub compression: Option<Compression>,
    /// Uncompressed size, when the checksum matches and it is known
    /// without decompressing.
    pub uncompressed_bytes: Option<u64>,
    /// Whether the checksum matches.
    pub checksum: ChecksumStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WalkStage {
    Data,
    RangeTombstones,
    Filter,
    Properties,
    Index,
    Done,
}

/// The iterator [`Table::blocks`] returns. Yields `Err` (and then ends) on
/// an I/O error; checksum mismatches are reported in
/// [`BlockInfo::checksum`] and the walk goes on.
#[derive(Debug)]
pub struct BlockWalk<'a> {
    table: &'a Table,
    /// Position in the index of the next data block to report.
    next_data_block: usize,
    stage: WalkStage,
}

impl BlockWalk<'_> {
    fn step(&mut self) -> Result<Option<BlockInfo>> {
        let table = self.table;
        loop {
            let (kind, handle) = match self.stage {
                WalkStage::Data if self.next_data_block < table.index.len() => {
                    let handle = table.index.handle(self.next_data_block);
                    self.next_data_block += 1;
                    (BlockKind::Data, handle)
                }
                WalkStage::Data => {
                    self.stage = WalkStage::RangeTombstones;
                    let handle = table.properties.range_tombstones;
                    if handle == BlockHandle::default() {
                        continue;
                    }
                    (BlockKind::RangeTombstones, handle)
                }
                WalkStage::RangeTombstones => {
                    self.stage = WalkStage::Filter;
                    if table.footer.filter_type == FilterType::None {
                        continue;
                    }
                    (BlockKind::Filter, table.footer.filter)
                }
                WalkStage::Filter => {
                    self.stage = WalkStage::Properties;
                    (BlockKind::Properties, table.footer.properties)
                }
                WalkStage::Properties => {
                    self.stage = WalkStage::Index;
                    (BlockKind::Index, table.footer.index)
                }
                WalkStage::Index | WalkStage::Done => {
                    self.stage = WalkStage::Done;
                    return Ok(None);
                }
            };
            return table.block_info(kind, handle).map(Some);
        }
    }
}

impl Iterator for BlockWalk<'_> {
    type Item = Result<BlockInfo>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stage == WalkStage::Done {
            return None;
        }
        let item = self.step();
        if item.is_err() {
            self.stage = WalkStage::Done;
        }
        item.transpose()
    }
}

impl Table {
    fn block_info(&self, kind: BlockKind, handle: BlockHandle) -> Result<BlockInfo> {
        let raw = self.src.read_raw(handle)?;
        let check = check_trailer(&raw).ok_or_else(|| self.corrupt(handle.offset, "no trailer"))?;
        let compression = Compression::from_u8(check.compression_tag);
        let checksum = if check.stored == check.computed {
            ChecksumStatus::Ok
        } else {
            ChecksumStatus::Mismatch {
                stored: check.stored,
                computed: check.computed,
            }
        };
        let uncompressed_bytes = match (checksum, compression) {
            (ChecksumStatus::Ok, Some(Compression::None)) => Some(handle.size),
            (ChecksumStatus::Ok, Some(Compression::Lz4)) => {
                kevo_core::get_varint32(&raw).map(|(len, _)| u64::from(len))
            }
            _ => None,
        };
        Ok(BlockInfo {
            kind,
            handle,
            compression,
            uncompressed_bytes,
            checksum,
        })
    }
}

/// The open file and what errors about it need.
#[derive(Debug)]
pub(crate) struct TableFile {
    file: Arc<dyn File>,
    path: PathBuf,
    size: u64,
}

impl TableFile {
    fn corrupt(&self, offset: u64, reason: &str) -> Error {
        Error::corruption(&self.path, offset, reason)
    }

    /// Reads, verifies, decompresses and checks the block at `handle`,
    /// bypassing the cache.
    pub(crate) fn read_block(&self, handle: BlockHandle) -> Result<Block> {
        let contents = self.read_contents(handle)?;
        Block::new(contents).map_err(|reason| self.corrupt(handle.offset, reason))
    }

    /// The stored bytes and trailer of the block at `handle` (one read).
    pub(crate) fn read_raw(&self, handle: BlockHandle) -> Result<Vec<u8>> {
        let len = usize::try_from(handle.size)
            .ok()
            .filter(|&size| size <= BLOCK_BYTES_MAX)
            .ok_or_else(|| self.corrupt(handle.offset, "block longer than BLOCK_BYTES_MAX"))?;
        let in_file = handle
            .end_with_trailer()
            .is_some_and(|end| end <= self.size);
        if !in_file {
            return Err(self.corrupt(handle.offset, "block extends past the end of the file"));
        }
        let mut raw = vec![0u8; len + BLOCK_TRAILER_BYTES];
        read_exact(&*self.file, &self.path, &mut raw, handle.offset)?;
        Ok(raw)
    }

    /// The range tombstones the properties `p` locate, decoded and checked
    /// against them (count, seqno range, key range); empty without a
    /// range-tombstone block.
    pub(crate) fn read_range_tombstones(&self, p: &Properties) -> Result<FragmentedTombstones> {
        let handle = p.range_tombstones;
        if handle == BlockHandle::default() {
            return Ok(FragmentedTombstones::default());
        }
        let contents = self.read_contents(handle)?;
        let set = decode_range_tombstones(&contents)
            .and_then(|set| check_range_tombstones(&set, p).map(|()| set))
            .map_err(|reason| self.corrupt(handle.offset, &reason))?;
        Ok(set)
    }

    /// The uncompressed contents of the block at `handle`, checksum verified.
    pub(crate) fn read_contents(&self, handle: BlockHandle) -> Result<Bytes> {
        let mut raw = self.read_raw(handle)?;
        let check =
            check_trailer(&raw).ok_or_else(|| self.corrupt(handle.offset, "missing trailer"))?;
        if check.stored != check.computed {
            return Err(self.corrupt(
                handle.offset,
                &format!(
                    "block checksum mismatch (stored {:#018x}, computed {:#018x})",
                    check.stored, check.computed
                ),
            ));
        }
        raw.truncate(raw.len() - BLOCK_TRAILER_BYTES);
        match Compression::from_u8(check.compression_tag) {
            Some(Compression::None) => Ok(Bytes::from(raw)),
            Some(Compression::Lz4) => self.decompress_lz4(&raw, handle.offset).map(Bytes::from),
            None => Err(self.corrupt(handle.offset, "unknown compression type")),
        }
    }

    #[cfg(feature = "lz4")]
    fn decompress_lz4(&self, stored: &[u8], offset: u64) -> Result<Vec<u8>> {
        decode_lz4_block(stored).map_err(|reason| self.corrupt(offset, reason))
    }

    #[cfg(not(feature = "lz4"))]
    fn decompress_lz4(&self, _stored: &[u8], offset: u64) -> Result<Vec<u8>> {
        Err(Error::InvalidArgument(format!(
            "{} holds an LZ4 block at offset {offset}; this build lacks the `lz4` feature",
            self.path.display()
        )))
    }
}

/// A stored LZ4 block (its uncompressed length as a varint, then the LZ4
/// block) decompressed, or why not.
///
/// `lz4_flex` is built without its `safe-decode` feature: its decoder then
/// writes through pointers (about 10 % more gets per second at a 64 MiB
/// cache, where a get that misses the cache spends a quarter of its time
/// here) but still checks every read and write against the input and
/// output bounds and returns an error for a malformed block (the property
/// test below feeds it damaged ones). Blocks reach it only after their
/// checksum matched.
#[cfg(feature = "lz4")]
fn decode_lz4_block(stored: &[u8]) -> Result<Vec<u8>, &'static str> {
    let (len, header) = lz4_uncompressed_len(stored).ok_or("bad uncompressed length")?;
    let mut out = vec![0u8; len];
    let compressed = stored.get(header..).unwrap_or(&[]);
    match lz4_flex::block::decompress_into(compressed, &mut out) {
        Ok(n) if n == len => Ok(out),
        _ => Err("LZ4 block does not decompress to its length"),
    }
}

/// How many bytes one byte of an LZ4 block can decompress to, at most.
#[cfg(feature = "lz4")]
const LZ4_EXPANSION_MAX: usize = 255;

/// The uncompressed length an LZ4 stored block claims, and the bytes its
/// varint takes; `None` if it is unreadable, over [`BLOCK_BYTES_MAX`], or
/// more than the compressed bytes can expand to (so that a damaged length
/// never makes the reader allocate more than the file warrants).
#[cfg(feature = "lz4")]
fn lz4_uncompressed_len(stored: &[u8]) -> Option<(usize, usize)> {
    let mut reader = kevo_core::Reader::new(stored);
    let len = reader.varint32()? as usize;
    let header = reader.position();
    let compressed_len = stored.len() - header;
    let expansion_max = compressed_len
        .saturating_mul(LZ4_EXPANSION_MAX)
        .saturating_add(16);
    (len <= BLOCK_BYTES_MAX && len <= expansion_max).then_some((len, header))
}

#[cfg(all(test, feature = "lz4"))]
mod lz4_tests {
    use super::*;

    #[test]
    fn lz4_length_is_bounded_by_what_the_stored_bytes_can_expand_to() {
        let mut stored = Vec::new();
        kevo_core::put_varint32(&mut stored, 100_000);
        stored.extend_from_slice(&[0u8; 10]);
        assert_eq!(lz4_uncompressed_len(&stored), None);
        let mut honest = Vec::new();
        kevo_core::put_varint32(&mut honest, 2_000);
        honest.extend_from_slice(&[0u8; 10]);
        assert_eq!(lz4_uncompressed_len(&honest), Some((2_000, 2)));
        assert_eq!(lz4_uncompressed_len(&[0xFF]), None);
    }

    proptest::proptest! {
        /// The decoder (built without `safe-decode`) given a damaged block
        /// (bytes flipped, cut short, the length changed) returns the
        /// original, an error, or other bytes of the claimed length: it
        /// never panics and never reads or writes out of bounds. Checksums
        /// catch the third case before the decoder runs.
        #[test]
        fn damaged_lz4_blocks_decode_to_an_error_or_bytes_of_their_length(
            raw in proptest::collection::vec(0u8..4, 0..3000),
            flips in proptest::collection::vec((0usize..4000, 1u8..=255), 0..6),
            cut in 0usize..4000,
            claimed in proptest::option::of(0u32..70000),
        ) {
            // A stored block of `raw`, as the writer makes one.
            let mut good = Vec::new();
            proptest::prop_assert!(crate::writer::compress_lz4(&raw, &mut good));
            let (_, header) = lz4_uncompressed_len(&good).unwrap();
            proptest::prop_assert_eq!(decode_lz4_block(&good), Ok(raw.clone()));
            let mut bad = good.clone();
            for (at, mask) in flips {
                let len = bad.len();
                bad[at % len] ^= mask;
            }
            bad.truncate(cut.max(1));
            if let Some(claimed) = claimed {
                let mut relabelled = Vec::new();
                kevo_core::put_varint32(&mut relabelled, claimed);
                relabelled.extend_from_slice(bad.get(header..).unwrap_or(&[]));
                bad = relabelled;
            }
            if let Ok(out) = decode_lz4_block(&bad) {
                let (len, _) = lz4_uncompressed_len(&bad).unwrap();
                proptest::prop_assert_eq!(out.len(), len);
            }
        }

        /// Random bytes are refused or decoded to their claimed length.
        #[test]
        fn random_bytes_never_panic_the_lz4_decoder(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            if let Ok(out) = decode_lz4_block(&bytes) {
                let (len, _) = lz4_uncompressed_len(&bytes).unwrap();
                proptest::prop_assert_eq!(out.len(), len);
            }
        }
    }
}

/// Handles must lie in order before the footer, the index block last.
fn check_layout(footer: &Footer, footer_offset: u64) -> Result<(), &'static str> {
    let end = |h: &BlockHandle| h.end_with_trailer().ok_or("block handle overflows");
    if end(&footer.index)? != footer_offset {
        return Err("index block does not end at the footer");
    }
    if end(&footer.properties)? > footer.index.offset {
        return Err("properties block overlaps the index");
    }
    if footer.filter_type != FilterType::None && end(&footer.filter)? > footer.properties.offset {
        return Err("filter block overlaps the properties");
    }
    Ok(())
}

/// The range-tombstone block, when there is one, must end by the filter
/// block (or by the properties block without a filter). That it begins
/// after the data blocks is checked with the index (see [`data_end`]).
fn check_range_tombstone_layout(footer: &Footer, p: &Properties) -> Result<(), &'static str> {
    let handle = p.range_tombstones;
    if handle == BlockHandle::default() {
        return Ok(());
    }
    let next = first_after_data(footer);
    let end = handle.end_with_trailer().ok_or("block handle overflows")?;
    if end > next {
        return Err("range-tombstone block does not lie before the filter and properties blocks");
    }
    Ok(())
}

/// Where the data blocks must end: at the first block after them (the
/// range-tombstone, filter or properties block).
fn data_end(footer: &Footer, p: &Properties) -> u64 {
    if p.range_tombstones != BlockHandle::default() {
        return p.range_tombstones.offset;
    }
    first_after_data(footer)
}

/// Where the filter block begins, or the properties block without one.
fn first_after_data(footer: &Footer) -> u64 {
    if footer.filter_type == FilterType::None {
        footer.properties.offset
    } else {
        footer.filter.offset
    }
}

/// Checks decoded range tombstones against the properties: their count,
/// their seqnos inside the table's seqno range, and their keys inside the
/// table's key range (the first fragment's start at its newest seqno at or
/// after `smallest_key`, the last fragment's end as the sentinel
/// `end + trailer(SEQNO_MAX, RANGE_DELETE_KIND)` at or before
/// `largest_key`).
fn check_range_tombstones(set: &FragmentedTombstones, p: &Properties) -> Result<(), String> {
    if set.len() as u64 != p.range_tombstone_count {
        return Err(format!(
            "{} range tombstones, the properties say {}",
            set.len(),
            p.range_tombstone_count
        ));
    }
    let seqnos = set.min_seqno().zip(set.max_seqno());
    if seqnos.is_some_and(|(lo, hi)| lo < p.smallest_seqno || hi > p.largest_seqno) {
        return Err("range tombstone seqnos outside the table's seqno range".to_string());
    }
    let bounds = TableBounds::compute(None, set);
    let inside = bounds.is_none_or(|b| {
        compare_internal_keys(&b.smallest_key, p.smallest_key.as_bytes()) != Ordering::Less
            && compare_internal_keys(&b.largest_key, p.largest_key.as_bytes()) != Ordering::Greater
    });
    if !inside {
        return Err("range tombstones outside the table's key range".to_string());
    }
    Ok(())
}

fn read_exact(file: &dyn File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corruption(path, offset, "file ends inside a block")
        } else {
            Error::io(format!("reading {} at {offset}", path.display()), e)
        }
    })
}

#[cfg(test)]
mod range_tombstone_tests {
    use super::*;
    use crate::format::IndexType;
    use kevo_core::{InternalKey, RANGE_DELETE_KIND, RangeTombstone};

    fn ik(user_key: &[u8], seqno: SeqNo, kind: u8) -> InternalKey {
        let mut encoded = Vec::new();
        kevo_core::encode_internal_key(&mut encoded, user_key, seqno, kind);
        InternalKey::from_encoded(encoded).unwrap()
    }

    /// Properties of a table of the tombstones `[b, d)@5` and `[c, e)@7`.
    fn properties() -> Properties {
        Properties {
            entry_count: 0,
            tombstone_count: 0,
            raw_key_bytes: 0,
            raw_value_bytes: 0,
            smallest_seqno: 5,
            largest_seqno: 7,
            creation_time_unix_s: 0,
            data_block_count: 0,
            index_entry_count: 0,
            compression: Compression::None,
            block_bytes_target: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 0,
            format_version: 2,
            smallest_key: ik(b"b", 5, RANGE_DELETE_KIND),
            largest_key: ik(b"e", SEQNO_MAX, RANGE_DELETE_KIND),
            range_tombstone_count: 4,
            range_tombstones: BlockHandle {
                offset: 0,
                size: 50,
            },
        }
    }

    fn set() -> FragmentedTombstones {
        FragmentedTombstones::new([
            RangeTombstone::new(b"b".to_vec(), b"d".to_vec(), 5),
            RangeTombstone::new(b"c".to_vec(), b"e".to_vec(), 7),
        ])
    }

    #[test]
    fn range_tombstones_must_agree_with_the_properties() {
        assert_eq!(check_range_tombstones(&set(), &properties()), Ok(()));
        let bad = [
            Properties {
                range_tombstone_count: 3,
                ..properties()
            },
            Properties {
                smallest_seqno: 6,
                ..properties()
            },
            Properties {
                largest_seqno: 6,
                ..properties()
            },
            // The first tombstone key b@5 sorts before b@4.
            Properties {
                smallest_key: ik(b"b", 4, RANGE_DELETE_KIND),
                ..properties()
            },
            // The sentinel e@SEQNO_MAX sorts after d@9.
            Properties {
                largest_key: ik(b"d", 9, ValueKind::Put as u8),
                ..properties()
            },
        ];
        for p in bad {
            assert!(check_range_tombstones(&set(), &p).is_err(), "{p:?}");
        }
        // Wider bounds are fine here (verify checks them exactly).
        let wider = Properties {
            smallest_key: ik(b"a", 1, ValueKind::Put as u8),
            smallest_seqno: 1,
            ..properties()
        };
        assert_eq!(check_range_tombstones(&set(), &wider), Ok(()));
    }

    #[test]
    fn the_range_tombstone_block_lies_before_the_filter_or_properties() {
        let footer = |filter_type| Footer {
            index: BlockHandle {
                offset: 200,
                size: 10,
            },
            filter: match filter_type {
                FilterType::None => BlockHandle::default(),
                FilterType::Bloom | FilterType::LocalBloom => BlockHandle {
                    offset: 100,
                    size: 10,
                },
            },
            properties: BlockHandle {
                offset: 150,
                size: 10,
            },
            index_type: IndexType::SingleLevel,
            filter_type,
            format_version: 2,
        };
        let at = |offset, size| Properties {
            range_tombstones: BlockHandle { offset, size },
            ..properties()
        };
        let bloom = footer(FilterType::Bloom);
        assert!(check_range_tombstone_layout(&bloom, &at(50, 41)).is_ok());
        assert!(check_range_tombstone_layout(&bloom, &at(50, 42)).is_err());
        assert!(check_range_tombstone_layout(&bloom, &at(u64::MAX, 1)).is_err());
        assert_eq!(data_end(&bloom, &at(50, 41)), 50);
        let none = footer(FilterType::None);
        assert!(check_range_tombstone_layout(&none, &at(50, 91)).is_ok());
        assert!(check_range_tombstone_layout(&none, &at(50, 92)).is_err());
        let no_tombstones = Properties {
            range_tombstone_count: 0,
            range_tombstones: BlockHandle::default(),
            ..properties()
        };
        assert!(check_range_tombstone_layout(&bloom, &no_tombstones).is_ok());
        assert_eq!(data_end(&bloom, &no_tombstones), 100);
        assert_eq!(data_end(&none, &no_tombstones), 150);
        let local = footer(FilterType::LocalBloom);
        assert!(check_range_tombstone_layout(&local, &at(50, 41)).is_ok());
        assert!(check_range_tombstone_layout(&local, &at(50, 42)).is_err());
        assert_eq!(data_end(&local, &no_tombstones), 100);
    }
}
