//! The table cache (open table readers by file number), which also sizes
//! the shared block cache under a memory budget, and the options new tables
//! are written with.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use kevo_core::Fs;
use kevo_manifest::{TableMeta, table_file_name};
use kevo_sstable::{BlockCache, LruBlockCache, ReadOptions, Table, TableOptions};

use crate::options::Options;
use crate::sync::lock;

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
    block_cache: Option<Arc<LruBlockCache>>,
    capacity: usize,
    /// Readers by file number, published copy-on-write: a lookup (every
    /// get does one per table it reads) loads the map without a lock and
    /// writes no shared line; adding or removing a reader (once per table
    /// opened or deleted) copies the map under `update`.
    open: ArcSwap<HashMap<u64, Arc<Table>>>,
    /// Serialises the copies of `open`.
    update: Mutex<()>,
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
        block_cache: Option<Arc<LruBlockCache>>,
        capacity: usize,
        budget_cache_max: Option<usize>,
    ) -> Self {
        TableCache {
            fs,
            dir,
            block_cache,
            capacity,
            open: ArcSwap::from_pointee(HashMap::new()),
            update: Mutex::new(()),
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
            cache.set_capacity(budget.cache_max.saturating_sub(taken).max(1 << 20));
        }
    }

    /// The reader of `meta`'s table, opened if needed.
    ///
    /// # Errors
    /// Those of [`Table::open`], in `kevo-core`'s terms: the cursors built
    /// over tables speak them too.
    pub(crate) fn get(&self, meta: &TableMeta) -> kevo_core::Result<Arc<Table>> {
        if let Some(table) = self.open.load().get(&meta.number) {
            return Ok(table.clone());
        }
        self.open_table(meta)
    }

    /// `f` of the reader of `meta`'s table, opened if needed: for a read
    /// that needs the reader only for the call (a get), it is borrowed from
    /// the published map instead of cloned, so the lookup writes no shared
    /// count.
    ///
    /// # Errors
    /// As [`TableCache::get`].
    pub(crate) fn with_table<T>(
        &self,
        meta: &TableMeta,
        f: impl FnOnce(&Table) -> T,
    ) -> kevo_core::Result<T> {
        if let Some(table) = self.open.load().get(&meta.number) {
            return Ok(f(table));
        }
        let table = self.open_table(meta)?;
        Ok(f(&table))
    }

    /// Opens `meta`'s table and adds it to `open` (unless another thread
    /// added it first: that copy wins), closing a victim past `capacity`.
    fn open_table(&self, meta: &TableMeta) -> kevo_core::Result<Arc<Table>> {
        let path = self.dir.join(table_file_name(meta.number));
        let mut options = ReadOptions::default().with_pin_counter(self.pinned_bytes.clone());
        if let Some(cache) = &self.block_cache {
            options = options.with_cache(cache.clone() as Arc<dyn BlockCache>);
        }
        let table = Arc::new(Table::open(self.fs.as_ref(), &path, options)?);
        let (table, victim) = self.update_open(|open| {
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
        });
        // A reopened table gets a new cache id: the victim's cached blocks
        // could never be found again, so they go now instead of waiting to
        // age out of the cache.
        if let Some(victim) = victim {
            self.closed(&victim);
        }
        self.fit_cache_to_budget();
        Ok(table)
    }

    /// Applies `f` to a copy of `open` and publishes the copy: readers that
    /// loaded the map before keep the one they hold.
    fn update_open<T>(&self, f: impl FnOnce(&mut HashMap<u64, Arc<Table>>) -> T) -> T {
        let _update = lock(&self.update);
        let mut open = HashMap::clone(&self.open.load());
        let result = f(&mut open);
        self.open.store(Arc::new(open));
        result
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
        let table = self.update_open(|open| open.remove(&number));
        if let Some(table) = table {
            self.closed(&table);
            self.fit_cache_to_budget();
        }
    }

    /// Readers open now.
    pub(crate) fn len(&self) -> usize {
        self.open.load().len()
    }

    pub(crate) fn block_cache(&self) -> Option<&Arc<LruBlockCache>> {
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
        cache_local_filter: options.cache_local_filter,
        ..TableOptions::default()
    }
}
