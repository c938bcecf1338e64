//! The table cache (open table readers by file number), the block cache
//! wrapper that counts hits and misses, and the options new tables are
//! written with.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use kevo_core::Fs;
use kevo_manifest::{TableMeta, table_file_name};
use kevo_sstable::{Block, BlockCache, CacheKey, LruBlockCache, ReadOptions, Table, TableOptions};

use crate::options::Options;
use crate::sync::{read, write};

/// The shared block cache, counting hits and misses for `stats()`.
#[derive(Debug)]
pub(crate) struct CountingCache {
    inner: LruBlockCache,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CountingCache {
    pub(crate) fn new(bytes: usize) -> Self {
        CountingCache {
            inner: LruBlockCache::new(bytes),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl CountingCache {
    /// The cache's capacity now.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.inner.capacity_bytes()
    }

    /// Lookups that found their block, and lookups that did not.
    pub(crate) fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

impl BlockCache for CountingCache {
    fn get(&self, key: CacheKey) -> Option<Block> {
        let block = self.inner.get(key);
        let counter = if block.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        block
    }

    fn insert(&self, key: CacheKey, block: Block) {
        self.inner.insert(key, block);
    }

    fn remove(&self, key: CacheKey) {
        self.inner.remove(key);
    }

    fn used_bytes(&self) -> usize {
        self.inner.used_bytes()
    }
}

/// What the block cache may hold under a memory budget: `cache_max` (the
/// budget less the memtables' share) less the open tables' index and filter
/// blocks and the blocks cursors hold.
#[derive(Debug)]
struct Budget {
    cache_max: usize,
}

/// Open table readers by file number, at most `capacity` of them.
///
/// Readers are shared (`Arc<Table>`): evicting one only closes it once the
/// last cursor using it is dropped. A table is opened outside the lock, so
/// two threads missing at once may both open it; one copy wins.
#[derive(Debug)]
pub(crate) struct TableCache {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    block_cache: Option<Arc<CountingCache>>,
    capacity: usize,
    /// Readers by file number: a read lock per lookup (every get takes
    /// one), the write lock only to add or remove a reader.
    open: RwLock<HashMap<u64, Arc<Table>>>,
    /// Index and filter bytes of the readers in `open`.
    metadata_bytes: AtomicUsize,
    /// Bytes of data blocks table cursors hold (see
    /// `ReadOptions::with_pin_counter`).
    pinned_bytes: Arc<AtomicUsize>,
    budget: Option<Budget>,
}

impl TableCache {
    pub(crate) fn new(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        block_cache: Option<Arc<CountingCache>>,
        capacity: usize,
        budget_cache_max: Option<usize>,
    ) -> Self {
        TableCache {
            fs,
            dir,
            block_cache,
            capacity,
            open: RwLock::new(HashMap::new()),
            metadata_bytes: AtomicUsize::new(0),
            pinned_bytes: Arc::new(AtomicUsize::new(0)),
            budget: budget_cache_max.map(|cache_max| Budget { cache_max }),
        }
    }

    /// Index and filter bytes of the open readers.
    pub(crate) fn metadata_bytes(&self) -> usize {
        self.metadata_bytes.load(Ordering::Relaxed)
    }

    /// Bytes of data blocks table cursors hold now.
    pub(crate) fn pinned_bytes(&self) -> usize {
        self.pinned_bytes.load(Ordering::Relaxed)
    }

    /// Under a memory budget, sets the block cache's capacity to what the
    /// open tables and the cursors leave of its share (at least 1 MiB).
    pub(crate) fn fit_cache_to_budget(&self) {
        if let (Some(budget), Some(cache)) = (&self.budget, &self.block_cache) {
            let taken = self.metadata_bytes() + self.pinned_bytes();
            cache
                .inner
                .set_capacity(budget.cache_max.saturating_sub(taken).max(1 << 20));
        }
    }

    /// The reader of `meta`'s table, opened if needed.
    ///
    /// # Errors
    /// Those of [`Table::open`], in `kevo-core`'s terms: the cursors built
    /// over tables speak them too.
    pub(crate) fn get(&self, meta: &TableMeta) -> kevo_core::Result<Arc<Table>> {
        if let Some(table) = read(&self.open).get(&meta.number) {
            return Ok(table.clone());
        }
        let path = self.dir.join(table_file_name(meta.number));
        let mut options = ReadOptions::default().with_pin_counter(self.pinned_bytes.clone());
        if let Some(cache) = &self.block_cache {
            options = options.with_cache(cache.clone() as Arc<dyn BlockCache>);
        }
        let table = Arc::new(Table::open(self.fs.as_ref(), &path, options)?);
        let (table, victim) = {
            let mut open = write(&self.open);
            let mut victim = None;
            if open.len() >= self.capacity {
                // Any victim will do: the cache only saves the cost of opening.
                if let Some(number) = open.keys().next().copied() {
                    victim = open.remove(&number);
                }
            }
            let entry = open.entry(meta.number).or_insert_with(|| {
                self.metadata_bytes
                    .fetch_add(table.metadata_bytes(), Ordering::Relaxed);
                table
            });
            (entry.clone(), victim)
        };
        // A reopened table gets a new cache id: the victim's cached blocks
        // could never be found again, so they go now instead of waiting to
        // age out of the cache.
        if let Some(victim) = victim {
            self.closed(&victim);
        }
        self.fit_cache_to_budget();
        Ok(table)
    }

    /// Accounts for a reader that left `open`, and drops its cached blocks.
    fn closed(&self, table: &Table) {
        self.metadata_bytes
            .fetch_sub(table.metadata_bytes(), Ordering::Relaxed);
        table.forget_cached_blocks();
    }

    /// Forgets the reader of table `number` and its cached blocks (its file
    /// is being deleted).
    pub(crate) fn evict(&self, number: u64) {
        let table = write(&self.open).remove(&number);
        if let Some(table) = table {
            self.closed(&table);
            self.fit_cache_to_budget();
        }
    }

    /// Readers open now.
    pub(crate) fn len(&self) -> usize {
        read(&self.open).len()
    }

    pub(crate) fn block_cache(&self) -> Option<&Arc<CountingCache>> {
        self.block_cache.as_ref()
    }
}

/// The options new tables (flushes, compactions, repair) are written with.
pub(crate) fn table_options(options: &Options) -> TableOptions {
    TableOptions {
        block_bytes_target: options.block_bytes,
        restart_interval: options.block_restart_interval,
        compression: options.compression,
        bloom_bits_per_key: options.bloom_bits_per_key,
        ..TableOptions::default()
    }
}
