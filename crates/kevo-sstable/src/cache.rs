//! The block cache: decoded blocks shared between tables and cursors.
//!
//! [`BlockCache`] is the interface tables use; [`LruBlockCache`] is the
//! implementation: a byte-bounded CLOCK (approximate LRU) split into shards, each behind its own
//! mutex, so concurrent readers rarely contend.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::block::Block;

/// Identifies a block in a cache: the table's cache id and the block's
/// offset in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Unique per opened table ([`Table::cache_id`](crate::Table::cache_id)).
    pub table_id: u64,
    /// Offset of the block in its file.
    pub offset: u64,
}

/// A cache of decoded blocks, shared by tables.
///
/// Implementations must be cheap to call concurrently and must never return
/// a block for a key it was not inserted under.
pub trait BlockCache: Send + Sync + fmt::Debug {
    /// The block cached under `key`, marking it recently used.
    fn get(&self, key: CacheKey) -> Option<Block>;

    /// Caches `block` under `key` (replacing any block there), evicting
    /// blocks not used recently to stay within the capacity.
    fn insert(&self, key: CacheKey, block: Block);

    /// Drops the block cached under `key`, if any (its table's file is
    /// going away, so the block can never be read again).
    fn remove(&self, key: CacheKey);

    /// Bytes of blocks held now (sum of [`Block::charge`]).
    fn used_bytes(&self) -> usize;
}

/// Shards in an [`LruBlockCache`].
const SHARDS: usize = 16;

/// A sharded, byte-bounded [`BlockCache`] with approximately-LRU eviction.
///
/// 16 shards, each behind its own mutex, each evicting by CLOCK (second
/// chance): a hit sets a bit; the eviction hand clears set bits and evicts
/// the first block whose bit is clear.
///
/// # Thread safety and invariants
/// - Every method takes `&self`; the cache is `Send + Sync` and meant to be
///   shared (`Arc<dyn BlockCache>`) by every table of a database.
/// - Per shard: the sum of the charges of the blocks it holds is at most
///   its capacity (`capacity_bytes / shard count`), except that a single
///   block larger than that is not cached at all.
/// - A shard's lock is held only for a hash-map lookup and a few pointer
///   moves, never during I/O or decoding.
/// - Hits and misses are counted per shard under its lock
///   ([`LruBlockCache::hits_and_misses`]), not in one shared counter that
///   every lookup of every thread would write.
pub struct LruBlockCache {
    shards: Box<[Padded]>,
}

/// A shard on cache lines of its own, so that two threads locking
/// neighbouring shards do not write the same line.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

impl LruBlockCache {
    /// A cache holding at most about `capacity_bytes` of blocks.
    pub fn new(capacity_bytes: usize) -> Self {
        let per_shard = capacity_bytes / SHARDS;
        let shards = (0..SHARDS)
            .map(|_| Padded(Mutex::new(Shard::new(per_shard))))
            .collect();
        LruBlockCache { shards }
    }

    /// Changes the capacity to about `capacity_bytes`, evicting blocks
    /// (least recently used first, as inserts do) until each shard fits.
    pub fn set_capacity(&self, capacity_bytes: usize) {
        let per_shard = capacity_bytes / SHARDS;
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.capacity = per_shard;
            shard.evict_to(per_shard);
        }
    }

    /// The capacity in bytes.
    pub fn capacity_bytes(&self) -> usize {
        self.shards.iter().map(|s| lock(s).capacity).sum()
    }

    /// Lookups that found their block, and lookups that did not, since the
    /// cache was made.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(hits, misses), s| {
            let shard = lock(s);
            (hits + shard.hits, misses + shard.misses)
        })
    }

    /// Blocks held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether the cache holds no block.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: CacheKey) -> MutexGuard<'_, Shard> {
        lock(&self.shards[(mix(key) >> 60) as usize % SHARDS])
    }
}

impl fmt::Debug for LruBlockCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruBlockCache")
            .field("blocks", &self.len())
            .field("used_bytes", &self.used_bytes())
            .finish()
    }
}

impl BlockCache for LruBlockCache {
    fn get(&self, key: CacheKey) -> Option<Block> {
        self.shard(key).get(key)
    }

    fn insert(&self, key: CacheKey, block: Block) {
        self.shard(key).insert(key, block);
    }

    fn remove(&self, key: CacheKey) {
        self.shard(key).remove(key);
    }

    fn used_bytes(&self) -> usize {
        self.shards.iter().map(|s| lock(s).used).sum()
    }
}

fn lock(shard: &Padded) -> MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave the list half-linked in a
    // way later calls rely on for memory safety; keep serving.
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Mixes both fields of a key into 64 well-spread bits (blocks of one table
/// are usually about 4 KiB apart).
fn mix(key: CacheKey) -> u64 {
    ((key.offset >> 10) ^ key.table_id.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A hasher for [`CacheKey`]s: keys are not attacker-chosen, so a multiply
/// per field is enough (SipHash would cost more than the rest of a lookup).
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(29) ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type KeyMap = HashMap<CacheKey, Entry, BuildHasherDefault<KeyHasher>>;

/// What the map holds for a cached block: the block itself, so that a hit
/// reads the map's bucket and nothing else of the shard, and the slot that
/// stands for it in the clock ring.
#[derive(Debug)]
struct Entry {
    block: Block,
    slot: usize,
}

/// A block's place in the clock ring.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The block's key; `None` for a free slot.
    key: Option<CacheKey>,
    charge: usize,
}

/// One shard: a hash map from keys to blocks, and a ring of slots swept by
/// a clock hand (CLOCK, the second-chance approximation of LRU: a hit only
/// sets a bit, instead of relinking list neighbours that are likely cache
/// misses). The bits live in their own dense array, which stays in the CPU
/// cache, so a hit touches no slot.
#[derive(Debug)]
struct Shard {
    map: KeyMap,
    slots: Vec<Slot>,
    /// Per slot: set by a hit, cleared when the clock hand passes.
    referenced: Vec<bool>,
    free: Vec<usize>,
    hand: usize,
    used: usize,
    capacity: usize,
    /// Lookups that found their block, and lookups that did not.
    hits: u64,
    misses: u64,
}

impl Shard {
    fn new(capacity: usize) -> Self {
        Shard {
            map: KeyMap::default(),
            slots: Vec::new(),
            referenced: Vec::new(),
            free: Vec::new(),
            hand: 0,
            used: 0,
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    fn get(&mut self, key: CacheKey) -> Option<Block> {
        let Some(entry) = self.map.get(&key) else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
        self.referenced[entry.slot] = true;
        // The caller searches the block next, starting with its restart
        // keys. Start fetching them now: the clone's atomic increment
        // waits for every earlier load, so these misses overlap instead of
        // following each other.
        entry.block.touch_restart_keys();
        Some(entry.block.clone())
    }

    fn insert(&mut self, key: CacheKey, block: Block) {
        if let Some(entry) = self.map.remove(&key) {
            self.release(entry.slot);
        }
        let charge = block.charge();
        if charge > self.capacity {
            return;
        }
        self.evict_to(self.capacity - charge);
        let slot = Slot {
            key: Some(key),
            charge,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = slot;
                self.referenced[index] = false;
                index
            }
            None => {
                self.slots.push(slot);
                self.referenced.push(false);
                self.slots.len() - 1
            }
        };
        self.map.insert(key, Entry { block, slot: index });
        self.used += charge;
    }

    /// Evicts blocks not used recently until at most `limit` bytes are
    /// held. Each full turn of the hand clears every bit, so this ends
    /// within two turns once anything is held.
    fn evict_to(&mut self, limit: usize) {
        while self.used > limit && !self.map.is_empty() {
            self.hand = (self.hand + 1) % self.slots.len();
            let Some(key) = self.slots[self.hand].key else {
                continue;
            };
            if self.referenced[self.hand] {
                self.referenced[self.hand] = false;
            } else {
                self.map.remove(&key);
                self.release(self.hand);
            }
        }
    }

    fn remove(&mut self, key: CacheKey) {
        if let Some(entry) = self.map.remove(&key) {
            self.release(entry.slot);
        }
    }

    /// Frees a slot whose entry has left the map.
    fn release(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if slot.key.take().is_some() {
            self.used -= slot.charge;
            self.free.push(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn block(len: usize) -> Block {
        // One entry: shared 0, unshared 0, value_len n, value, restart array.
        let mut data = vec![0, 0];
        kevo_core::put_varint32(&mut data, len as u32);
        data.resize(data.len() + len, 7);
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        Block::new(Bytes::from(data)).unwrap()
    }

    fn key(table_id: u64, offset: u64) -> CacheKey {
        CacheKey { table_id, offset }
    }

    #[test]
    fn cached_block_is_returned_for_its_key_only() {
        let cache = LruBlockCache::new(1 << 20);
        let b = block(100);
        cache.insert(key(1, 0), b.clone());
        let got = cache.get(key(1, 0)).unwrap();
        assert_eq!(got.data().as_ptr(), b.data().as_ptr());
        assert!(cache.get(key(2, 0)).is_none());
        assert!(cache.get(key(1, 4096)).is_none());
        assert_eq!(cache.hits_and_misses(), (1, 2));
    }

    #[test]
    fn unreferenced_block_is_evicted_before_a_recently_used_one() {
        let mut shard = Shard::new(3 * block(100).charge());
        for offset in 0..3 {
            shard.insert(key(1, offset), block(100));
        }
        shard.get(key(1, 0)); // 0 gets a second chance; 1 goes first
        shard.insert(key(1, 3), block(100));
        assert!(shard.get(key(1, 1)).is_none());
        for offset in [0, 2, 3] {
            assert!(shard.get(key(1, offset)).is_some(), "offset {offset}");
        }
        assert!(shard.used <= shard.capacity);
    }

    #[test]
    fn used_bytes_never_exceed_capacity() {
        let cache = LruBlockCache::new(64 * 1024);
        for offset in 0..1000 {
            cache.insert(key(offset % 7, offset * 4096), block(500));
            assert!(cache.used_bytes() <= 64 * 1024);
        }
        assert!(!cache.is_empty());
    }

    #[test]
    fn block_larger_than_a_shard_is_not_cached() {
        let cache = LruBlockCache::new(16 * 1024);
        cache.insert(key(1, 0), block(4096));
        assert!(cache.get(key(1, 0)).is_none());
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn a_smaller_capacity_evicts_at_once_and_bounds_later_inserts() {
        let cache = LruBlockCache::new(1 << 20);
        for offset in 0..1000 {
            cache.insert(key(offset % 7, offset * 4096), block(500));
        }
        let full = cache.used_bytes();
        assert!(full > 256 * 1024);
        cache.set_capacity(256 * 1024);
        assert!(cache.used_bytes() <= 256 * 1024);
        assert_eq!(cache.capacity_bytes(), 256 * 1024);
        for offset in 1000..2000 {
            cache.insert(key(1, offset * 4096), block(500));
            assert!(cache.used_bytes() <= 256 * 1024);
        }
        cache.set_capacity(1 << 20);
        for offset in 2000..4000 {
            cache.insert(key(1, offset * 4096), block(500));
        }
        assert!(cache.used_bytes() > 256 * 1024, "grows again");
    }
}
