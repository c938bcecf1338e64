//! The memtable: a lock-free skip list of entries in internal-key order.

use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use kevo_core::{
    FragmentedTombstones, LOOKUP_KIND, RangeTombstone, SEQNO_MAX, SeqNo, TRAILER_BYTES, ValueKind,
    pack_trailer,
};

use crate::record::{Arena, InternalKeyRef, Record};

/// Lookup keys up to this length are built on the stack; longer ones
/// allocate.
const LOOKUP_KEY_STACK_BYTES: usize = 128;

/// The answer of [`MemTable::get`]: what the newest entry of a user key at
/// or below the snapshot says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible entry is a put with this value (a copy: the
    /// memtable's buffers are shared chunks).
    Found(Bytes),
    /// The newest visible entry is a tombstone: the key is deleted, and
    /// older sources (immutable memtables, tables) must not be consulted.
    Deleted,
    /// No entry of the key is visible: look in older sources.
    Absent,
}

/// An in-memory table of entries ordered by internal key.
///
/// See the [crate documentation](crate) for the thread-safety contract and
/// what an insert costs.
///
/// # Invariants
/// - An entry is never modified or removed once inserted; the table only
///   grows until it is dropped.
/// - [`approximate_bytes`](MemTable::approximate_bytes) is the sum, over
///   the entries inserted so far, of user key + 8 + value +
///   [`ENTRY_OVERHEAD_BYTES`](crate::ENTRY_OVERHEAD_BYTES) bytes.
pub struct MemTable {
    /// Entries; the value type is unit because a [`Record`] holds both the
    /// key and the value in one buffer.
    map: SkipMap<Record, ()>,
    approximate_bytes: AtomicUsize,
    /// Range tombstones, kept apart from the point entries (as Pebble's
    /// memtable does): readers ask for their fragmented form.
    range_dels: RwLock<RangeDels>,
    /// Whether `range_dels` holds any: readers of a memtable without range
    /// deletes never take its lock.
    has_range_dels: AtomicBool,
    /// The largest seqno of an entry inserted (range tombstones aside).
    max_seqno: AtomicU64,
    /// Where the entries' buffers are carved from.
    arena: Arena,
}

/// A memtable's range tombstones, and their fragmented form once a reader
/// asked for it (dropped by the next insert).
#[derive(Default)]
struct RangeDels {
    tombstones: Vec<RangeTombstone>,
    fragmented: Option<Arc<FragmentedTombstones>>,
}

impl MemTable {
    /// An empty memtable.
    pub fn new() -> Self {
        MemTable {
            map: SkipMap::new(),
            approximate_bytes: AtomicUsize::new(0),
            range_dels: RwLock::new(RangeDels::default()),
            has_range_dels: AtomicBool::new(false),
            max_seqno: AtomicU64::new(0),
            arena: Arena::default(),
        }
    }

    /// Adds the range tombstone `[start, end)@seqno`: every key in the
    /// range with a smaller seqno is deleted. Constant work whatever the
    /// number of keys it covers; visible to readers that start after this
    /// call returns, through [`MemTable::range_tombstones`]. An empty range
    /// (`start >= end`) deletes nothing and is not kept.
    ///
    /// It is accounted like an entry holding `start` and `end`.
    pub fn delete_range(&self, start: &[u8], end: &[u8], seqno: SeqNo) {
        if start >= end {
            return;
        }
        let charge = start.len() + end.len() + TRAILER_BYTES + crate::ENTRY_OVERHEAD_BYTES;
        {
            let mut dels = self
                .range_dels
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            dels.tombstones
                .push(RangeTombstone::new(start.to_vec(), end.to_vec(), seqno));
            dels.fragmented = None;
        }
        self.has_range_dels.store(true, Ordering::Release);
        self.approximate_bytes.fetch_add(charge, Ordering::Relaxed);
    }

    /// The largest seqno of an entry inserted so far (0 without entries):
    /// every entry a cursor over the memtable yields has a seqno at most
    /// this. Range tombstones do not count (a cursor never yields them), so
    /// a memtable whose range delete came after all its entries can be
    /// skipped past the deleted span by a seek.
    pub fn max_seqno(&self) -> SeqNo {
        self.max_seqno.load(Ordering::Relaxed)
    }

    /// The range tombstones, fragmented (see [`FragmentedTombstones`]);
    /// empty without range deletes. Fragmenting happens once per change and
    /// is shared by every reader until the next [`MemTable::delete_range`].
    pub fn range_tombstones(&self) -> Arc<FragmentedTombstones> {
        if !self.has_range_dels.load(Ordering::Acquire) {
            return empty_tombstones();
        }
        if let Some(fragmented) = &self
            .range_dels
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .fragmented
        {
            return fragmented.clone();
        }
        let mut dels = self
            .range_dels
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(fragmented) = &dels.fragmented {
            return fragmented.clone();
        }
        let fragmented = Arc::new(FragmentedTombstones::new(dels.tombstones.iter().cloned()));
        dels.fragmented = Some(fragmented.clone());
        fragmented
    }

    /// The newest seqno of a range tombstone covering `user_key` that a
    /// reader at `read_seqno` sees (see
    /// [`FragmentedTombstones::covering_seqno`]): without range deletes,
    /// one atomic load and no allocation.
    pub fn covering_seqno(&self, user_key: &[u8], read_seqno: SeqNo) -> Option<SeqNo> {
        if !self.has_range_dels.load(Ordering::Acquire) {
            return None;
        }
        // Under the read lock while fragmented (no reference count to
        // touch); the first reader after a change fragments.
        if let Some(fragmented) = &self
            .range_dels
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .fragmented
        {
            return fragmented.covering_seqno(user_key, read_seqno);
        }
        self.range_tombstones().covering_seqno(user_key, read_seqno)
    }

    /// The number of range tombstones added.
    pub fn range_tombstone_count(&self) -> usize {
        if !self.has_range_dels.load(Ordering::Acquire) {
            return 0;
        }
        self.range_dels
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .tombstones
            .len()
    }

    /// Adds the entry `(user_key, seqno, kind)` with `value`.
    ///
    /// For [`ValueKind::Delete`] the value is ignored: a tombstone stores
    /// none. The entry is visible to every `get` and cursor that starts
    /// after this call returns (on any thread that synchronises with this
    /// one), and may be seen by those running concurrently.
    ///
    /// REQUIRES: no entry with the same user key, seqno and kind exists; the
    /// engine never reuses a seqno. If one does, the existing entry is kept,
    /// this one is discarded and nothing is accounted.
    ///
    /// # Panics
    /// If `user_key` is 4 GiB − 8 bytes or longer (far past
    /// [`KEY_BYTES_MAX`](kevo_core::KEY_BYTES_MAX)); in debug builds, if
    /// `seqno > SEQNO_MAX` (release builds lose the seqno's top bits).
    pub fn insert(&self, user_key: &[u8], seqno: SeqNo, kind: ValueKind, value: &[u8]) {
        let record = Record::new(user_key, seqno, kind, value, &self.arena);
        let charge = record.charge();
        let buf_ptr = record.buf_ptr();
        let entry = self.map.get_or_insert(record, ());
        // The returned entry holds our buffer exactly when it was inserted
        // (a discarded record's buffer was live alongside the existing one,
        // so their addresses differ).
        if entry.key().buf_ptr() == buf_ptr {
            self.approximate_bytes.fetch_add(charge, Ordering::Relaxed);
        }
        self.max_seqno.fetch_max(seqno, Ordering::Relaxed);
    }

    /// What the newest entry of `user_key` with seqno `<= snapshot` says.
    ///
    /// A snapshot above [`SEQNO_MAX`] reads as `SEQNO_MAX` (everything).
    /// Allocates only the returned value's copy when the user key is at
    /// most 120 bytes long (see the crate docs).
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Lookup {
        with_lookup_key(user_key, snapshot, |lookup| {
            let Some(entry) = self
                .map
                .lower_bound(Bound::Included(InternalKeyRef::new(lookup)))
            else {
                return Lookup::Absent;
            };
            let record = entry.key();
            if record.user_key() != user_key {
                return Lookup::Absent;
            }
            match record.kind() {
                ValueKind::Put => Lookup::Found(record.value_bytes()),
                ValueKind::Delete => Lookup::Deleted,
            }
        })
    }

    /// [`MemTable::get`] with the seqno of the entry found (`None`: no
    /// entry of the key is visible): what a reader needs to tell whether a
    /// range tombstone covers it.
    pub fn get_entry(&self, user_key: &[u8], snapshot: SeqNo) -> Option<(SeqNo, Lookup)> {
        with_lookup_key(user_key, snapshot, |lookup| {
            let entry = self
                .map
                .lower_bound(Bound::Included(InternalKeyRef::new(lookup)))?;
            let record = entry.key();
            if record.user_key() != user_key {
                return None;
            }
            let found = match record.kind() {
                ValueKind::Put => Lookup::Found(record.value_bytes()),
                ValueKind::Delete => Lookup::Deleted,
            };
            Some((record.seqno(), found))
        })
    }

    /// Number of entries (every version of every key counts).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the memtable holds no entry and no range tombstone.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && !self.has_range_dels.load(Ordering::Acquire)
    }

    /// Approximate heap bytes the entries use: for each, its user key,
    /// trailer and value plus [`ENTRY_OVERHEAD_BYTES`](crate::ENTRY_OVERHEAD_BYTES).
    /// The engine compares it with its flush threshold.
    pub fn approximate_bytes(&self) -> usize {
        self.approximate_bytes.load(Ordering::Relaxed)
    }

    /// The skip list, for the cursor.
    pub(crate) fn map(&self) -> &SkipMap<Record, ()> {
        &self.map
    }
}

impl Default for MemTable {
    fn default() -> Self {
        MemTable::new()
    }
}

impl fmt::Debug for MemTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemTable")
            .field("len", &self.len())
            .field("approximate_bytes", &self.approximate_bytes())
            .field("range_tombstones", &self.range_tombstone_count())
            .finish()
    }
}

/// Calls `f` with the lookup key `(user_key, snapshot, LOOKUP_KIND)`: the
/// internal key that sorts just before every entry of `user_key` with seqno
/// `<= snapshot`.
fn with_lookup_key<R>(user_key: &[u8], snapshot: SeqNo, f: impl FnOnce(&[u8]) -> R) -> R {
    let trailer = pack_trailer(snapshot.min(SEQNO_MAX), LOOKUP_KIND).to_le_bytes();
    let len = user_key.len() + TRAILER_BYTES;
    if len <= LOOKUP_KEY_STACK_BYTES {
        let mut buf = [0u8; LOOKUP_KEY_STACK_BYTES];
        buf[..user_key.len()].copy_from_slice(user_key);
        buf[user_key.len()..len].copy_from_slice(&trailer);
        f(&buf[..len])
    } else {
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(user_key);
        buf.extend_from_slice(&trailer);
        f(&buf)
    }
}

/// The one empty set of range tombstones, shared (cloning it allocates
/// nothing).
fn empty_tombstones() -> Arc<FragmentedTombstones> {
    static EMPTY: std::sync::OnceLock<Arc<FragmentedTombstones>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Arc::default).clone()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{ENTRY_OVERHEAD_BYTES, MemTableCursor};
    use kevo_core::{Cursor, InternalKey};

    #[test]
    fn range_tombstones_are_kept_apart_and_fragmented_once_per_change() {
        let table = MemTable::new();
        assert!(table.range_tombstones().is_empty());
        table.insert(b"c", 1, ValueKind::Put, b"v");
        table.delete_range(b"b", b"f", 5);
        table.delete_range(b"x", b"x", 6); // empty: not kept
        assert_eq!(table.range_tombstone_count(), 1);
        assert_eq!(table.len(), 1, "point entries only");
        // The point entry is still there; the reader combines the two.
        assert_eq!(table.get(b"c", 10), found(b"v"));
        let first = table.range_tombstones();
        assert!(first.covers(b"c", 1, 10));
        assert!(!first.covers(b"c", 1, 4), "a reader before the delete");
        assert!(Arc::ptr_eq(&first, &table.range_tombstones()), "cached");
        table.delete_range(b"d", b"h", 7);
        let second = table.range_tombstones();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.fragments().len(), 3);
        assert_eq!(second.covering_seqno(b"e", 10), Some(7));
        assert_eq!(
            table.approximate_bytes(),
            (1 + 8 + 1 + ENTRY_OVERHEAD_BYTES) + 2 * (2 + 8 + ENTRY_OVERHEAD_BYTES)
        );
    }

    #[test]
    fn get_entry_reports_the_seqno_found() {
        let table = MemTable::new();
        table.insert(b"k", 3, ValueKind::Put, b"three");
        table.insert(b"k", 7, ValueKind::Delete, b"");
        assert_eq!(table.get_entry(b"k", 5), Some((3, found(b"three"))));
        assert_eq!(table.get_entry(b"k", 9), Some((7, Lookup::Deleted)));
        assert_eq!(table.get_entry(b"k", 2), None);
        assert_eq!(table.get_entry(b"j", 9), None);
    }

    #[test]
    fn max_seqno_counts_entries_not_range_tombstones() {
        let table = MemTable::new();
        assert_eq!(table.max_seqno(), 0);
        table.insert(b"a", 4, ValueKind::Put, b"v");
        table.insert(b"b", 2, ValueKind::Delete, b"");
        table.delete_range(b"a", b"z", 9);
        assert_eq!(table.max_seqno(), 4, "a cursor yields nothing newer");
        table.insert(b"c", 10, ValueKind::Put, b"v");
        assert_eq!(table.max_seqno(), 10);
    }

    #[test]
    fn a_memtable_with_only_range_tombstones_is_not_empty() {
        let table = MemTable::new();
        table.delete_range(b"a", b"b", 1);
        assert!(!table.is_empty());
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn range_tombstones_added_while_others_read() {
        let table = Arc::new(MemTable::new());
        let writer = {
            let table = table.clone();
            std::thread::spawn(move || {
                for i in 0..500u64 {
                    let start = format!("k{:04}", i * 2);
                    let end = format!("k{:04}", i * 2 + 1);
                    table.delete_range(start.as_bytes(), end.as_bytes(), i + 1);
                }
            })
        };
        let mut seen = 0;
        while seen < 500 {
            let set = table.range_tombstones();
            // What a reader sees is always a well-formed prefix.
            assert!(set.len() >= seen);
            seen = set.len();
            if seen < 500 {
                std::thread::yield_now();
            }
            if writer.is_finished() && table.range_tombstones().len() == 500 {
                break;
            }
        }
        writer.join().unwrap();
        assert_eq!(table.range_tombstones().len(), 500);
        assert!(table.range_tombstones().covers(b"k0998", 1, 600));
    }

    fn found(value: &[u8]) -> Lookup {
        Lookup::Found(Bytes::copy_from_slice(value))
    }

    #[test]
    fn newest_entry_at_or_below_snapshot_wins() {
        let table = MemTable::new();
        table.insert(b"k", 3, ValueKind::Put, b"three");
        table.insert(b"k", 7, ValueKind::Put, b"seven");
        table.insert(b"k", 5, ValueKind::Put, b"five");
        assert_eq!(table.get(b"k", 2), Lookup::Absent);
        assert_eq!(table.get(b"k", 3), found(b"three"));
        assert_eq!(table.get(b"k", 4), found(b"three"));
        assert_eq!(table.get(b"k", 5), found(b"five"));
        assert_eq!(table.get(b"k", 6), found(b"five"));
        assert_eq!(table.get(b"k", 7), found(b"seven"));
        assert_eq!(table.get(b"k", 100), found(b"seven"));
    }

    #[test]
    fn tombstone_hides_older_put() {
        let table = MemTable::new();
        table.insert(b"k", 1, ValueKind::Put, b"v");
        table.insert(b"k", 2, ValueKind::Delete, b"");
        assert_eq!(table.get(b"k", 1), found(b"v"));
        assert_eq!(table.get(b"k", 2), Lookup::Deleted);
        assert_eq!(table.get(b"k", SEQNO_MAX), Lookup::Deleted);
    }

    #[test]
    fn put_after_tombstone_is_found_again() {
        let table = MemTable::new();
        table.insert(b"k", 1, ValueKind::Delete, b"");
        table.insert(b"k", 2, ValueKind::Put, b"back");
        assert_eq!(table.get(b"k", 1), Lookup::Deleted);
        assert_eq!(table.get(b"k", 2), found(b"back"));
    }

    #[test]
    fn keys_sharing_a_prefix_do_not_answer_for_each_other() {
        let table = MemTable::new();
        table.insert(b"ab", 1, ValueKind::Put, b"ab");
        table.insert(b"abc", 2, ValueKind::Put, b"abc");
        assert_eq!(table.get(b"a", 10), Lookup::Absent);
        assert_eq!(table.get(b"ab", 10), found(b"ab"));
        assert_eq!(table.get(b"abc", 10), found(b"abc"));
        assert_eq!(table.get(b"abcd", 10), Lookup::Absent);
        assert_eq!(table.get(b"", 10), Lookup::Absent);
    }

    #[test]
    fn empty_user_key_and_empty_value_are_entries_like_any_other() {
        let table = MemTable::new();
        table.insert(b"", 1, ValueKind::Put, b"");
        assert_eq!(table.get(b"", 1), found(b""));
        assert_eq!(table.get(b"\0", 1), Lookup::Absent);
    }

    #[test]
    fn snapshot_above_seqno_max_sees_everything() {
        let table = MemTable::new();
        table.insert(b"k", SEQNO_MAX, ValueKind::Put, b"last");
        assert_eq!(table.get(b"k", SEQNO_MAX), found(b"last"));
        assert_eq!(table.get(b"k", u64::MAX), found(b"last"));
        assert_eq!(table.get(b"k", SEQNO_MAX - 1), Lookup::Absent);
    }

    #[test]
    fn long_user_keys_are_looked_up_too() {
        let table = MemTable::new();
        let long = vec![b'x'; 4 * LOOKUP_KEY_STACK_BYTES];
        let mut longer = long.clone();
        longer.push(b'y');
        table.insert(&long, 1, ValueKind::Put, b"long");
        table.insert(&longer, 2, ValueKind::Put, b"longer");
        assert_eq!(table.get(&long, 5), found(b"long"));
        assert_eq!(table.get(&longer, 5), found(b"longer"));
        assert_eq!(table.get(&long[1..], 5), Lookup::Absent);
        // Right at the stack buffer's edge.
        let edge = vec![b'e'; LOOKUP_KEY_STACK_BYTES - TRAILER_BYTES];
        table.insert(&edge, 3, ValueKind::Put, b"edge");
        assert_eq!(table.get(&edge, 5), found(b"edge"));
    }

    #[test]
    fn get_returns_a_copy_that_outlives_the_memtable() {
        let table = MemTable::new();
        table.insert(b"k", 1, ValueKind::Put, b"value");
        let Lookup::Found(first) = table.get(b"k", 1) else {
            panic!("the lookup finds the value");
        };
        assert_eq!(first, "value");
        let table = Arc::new(table);
        let mut cursor = table.cursor();
        cursor.seek_to_first().unwrap();
        // A copy, not a view of the shared chunk.
        assert_ne!(cursor.value().as_ptr(), first.as_ptr());
        drop(cursor);
        drop(table);
        assert_eq!(first, "value");
    }

    #[test]
    fn value_outlives_the_memtable() {
        let table = MemTable::new();
        table.insert(b"k", 1, ValueKind::Put, b"kept");
        let value = table.get(b"k", 1);
        drop(table);
        assert_eq!(value, found(b"kept"));
    }

    #[test]
    fn tombstone_ignores_the_value_it_is_given() {
        let table = Arc::new(MemTable::new());
        table.insert(b"k", 1, ValueKind::Delete, b"ignored");
        let mut cursor = table.cursor();
        cursor.seek_to_first().unwrap();
        assert_eq!(cursor.value(), b"");
        assert_eq!(
            table.approximate_bytes(),
            1 + TRAILER_BYTES + ENTRY_OVERHEAD_BYTES
        );
    }

    #[test]
    fn duplicate_internal_key_keeps_the_first_entry() {
        let table = Arc::new(MemTable::new());
        table.insert(b"k", 1, ValueKind::Put, b"first");
        let bytes = table.approximate_bytes();
        table.insert(b"k", 1, ValueKind::Put, b"second!");
        assert_eq!(table.len(), 1);
        assert_eq!(table.approximate_bytes(), bytes);
        assert_eq!(table.get(b"k", 1), found(b"first"));
        // Same seqno, different kind: a different internal key.
        table.insert(b"k", 1, ValueKind::Delete, b"");
        assert_eq!(table.len(), 2);
        let mut cursor = table.cursor();
        cursor.seek_to_first().unwrap();
        assert_eq!(
            cursor.key(),
            InternalKey::new(b"k", 1, ValueKind::Put).as_bytes()
        );
    }

    #[test]
    fn len_and_bytes_count_every_version() {
        let table = MemTable::new();
        assert!(table.is_empty());
        assert_eq!(table.len(), 0);
        assert_eq!(table.approximate_bytes(), 0);
        table.insert(b"key", 1, ValueKind::Put, b"value");
        table.insert(b"key", 2, ValueKind::Put, b"value2");
        assert!(!table.is_empty());
        assert_eq!(table.len(), 2);
        let expected = (3 + TRAILER_BYTES + 5) + (3 + TRAILER_BYTES + 6) + 2 * ENTRY_OVERHEAD_BYTES;
        assert_eq!(table.approximate_bytes(), expected);
        assert_eq!(
            format!("{table:?}"),
            format!("MemTable {{ len: 2, approximate_bytes: {expected}, range_tombstones: 0 }}")
        );
    }

    #[test]
    fn memtable_and_values_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<MemTable>();
        send_sync::<Lookup>();
        send_sync::<MemTableCursor>();
    }
}
