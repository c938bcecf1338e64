//! The read state: what a read looks at, and the only code that changes it.
//!
//! - [`ReadState`]: the memtable, the immutable memtables waiting for a
//!   flush, and the installed version, published together as one
//!   [`SuperVersion`]. Writers freeze the memtable ([`ReadState::freeze`]);
//!   flushes and compactions install versions ([`ReadState::flushed`],
//!   [`ReadState::install`]). A keyspace will own one.
//! - [`Visibility`]: the newest visible seqno and the live snapshots,
//!   shared by every keyspace (one WAL, one sequence).
//! - [`get`]: a point read, newest first: the memtable, the immutable
//!   memtables newest first, the L0 tables newest first, then the one
//!   table per deeper level whose key range holds the key. A table whose
//!   key range misses the key, or whose oldest entry is newer than the
//!   read, is skipped; its Bloom filter is checked before any block is
//!   read.
//!
//! The super version pins its [`Version`], so no file a read uses is
//! deleted under it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::{ArcSwap, Guard};
use bytes::Bytes;
use kevo_core::{Cursor, FragmentedTombstones, SeqNo, ValueKind};
use kevo_iter::{BoundedCursor, MergingCursor, VisibleCursor};
use kevo_manifest::{TableMeta, Version};
use kevo_memtable::{Lookup, MemTable};

use crate::error::Result;
use crate::sync::lock;
use crate::tables::TableCache;

/// A memtable that no longer takes writes, waiting to be flushed.
#[derive(Debug, Clone)]
pub(crate) struct Immutable {
    pub(crate) table: Arc<MemTable>,
    /// Order of the switch that froze it (flushes go oldest first).
    pub(crate) id: u64,
    /// The WAL segment started when it was frozen: its keyspace's writes
    /// after it are in that segment or later.
    pub(crate) next_log: u64,
    /// The WAL segment its writes start in: every one of them is in that
    /// segment or later.
    pub(crate) first_log: u64,
}

/// What a read needs, published as one `Arc` so that a reader sees a
/// consistent set: the memtable, the immutable ones, and the tables.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    pub(crate) mem: Arc<MemTable>,
    /// Newest first.
    pub(crate) imms: Vec<Arc<MemTable>>,
    pub(crate) version: Arc<Version>,
    /// The range tombstones of the immutable memtables and of every table
    /// of the version, merged once, on the first read that needs them.
    frozen_tombstones: OnceLock<Arc<FragmentedTombstones>>,
    /// The last merge of the frozen set with the memtable's: the
    /// memtable's set it was made with, and the result (reused while the
    /// memtable takes no new range delete).
    merged_tombstones: Mutex<Option<(Arc<FragmentedTombstones>, Arc<FragmentedTombstones>)>>,
    /// Cursor stacks over this view that dropped cursors left, for the next
    /// cursor to reuse instead of building one.
    cursors: CursorPool,
}

/// The cursor stack a range read builds over a super version (see
/// `crate::iter`): a cursor per memtable (the memtable first), per L0
/// table and per deeper level, merged, bounded, and filtered to a seqno.
pub(crate) type CursorStack = VisibleCursor<BoundedCursor<MergingCursor<Box<dyn Cursor + Send>>>>;

/// How many released cursor stacks a super version keeps: one per thread
/// making cursors at once, up to this many (a stack is a few hundred bytes
/// and an allocation per source; it holds no data block while kept).
const POOLED_CURSORS: usize = 4;

/// Released cursor stacks of one super version, as Pebble keeps its
/// iterator allocations in a pool: making a cursor (a merging cursor, a
/// boxed cursor per source, buffers) and dropping it cost a fifth of a
/// short scan (seek and 10 steps); a kept stack is reset instead. Only
/// stacks that cover every source of the view are kept (see
/// [`SuperVersion::keep_cursor`]), so that any later read at any seqno
/// may use one.
#[derive(Default)]
#[allow(
    clippy::vec_box,
    reason = "a stack moves between a cursor and the pool as one pointer, not its few hundred bytes"
)]
struct CursorPool(Mutex<Vec<Box<CursorStack>>>);

impl std::fmt::Debug for CursorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CursorPool")
            .field(&lock(&self.0).len())
            .finish()
    }
}

impl SuperVersion {
    /// Every range tombstone of this view (the memtable's as of now),
    /// fragmented: the immutable part is merged once per super version,
    /// and merged again with the memtable's only when it holds some.
    ///
    /// # Errors
    /// Opening a table that holds range tombstones failed.
    pub(crate) fn range_tombstones(
        &self,
        tables: &TableCache,
    ) -> kevo_core::Result<Arc<FragmentedTombstones>> {
        let frozen = match self.frozen_tombstones.get() {
            Some(frozen) => frozen.clone(),
            None => {
                let mut sets: Vec<Arc<FragmentedTombstones>> =
                    self.imms.iter().map(|imm| imm.range_tombstones()).collect();
                for level in 0..self.version.num_levels() {
                    for meta in self.version.level(level) {
                        if meta.has_range_tombstones() {
                            sets.push(tables.get(meta)?.range_tombstones().clone());
                        }
                    }
                }
                self.frozen_tombstones
                    .get_or_init(|| FragmentedTombstones::merge_shared(sets))
                    .clone()
            }
        };
        let mem = self.mem.range_tombstones();
        if mem.is_empty() {
            return Ok(frozen);
        }
        if frozen.is_empty() {
            return Ok(mem);
        }
        let mut cached = lock(&self.merged_tombstones);
        if let Some((seen, merged)) = &*cached
            && Arc::ptr_eq(seen, &mem)
        {
            return Ok(merged.clone());
        }
        let merged = FragmentedTombstones::merge_shared(vec![frozen, mem.clone()]);
        *cached = Some((mem, merged.clone()));
        Ok(merged)
    }

    /// A kept cursor stack over this view, if any (see
    /// `crate::iter::reuse_stack`, which readies it).
    pub(crate) fn take_cursor(&self) -> Option<Box<CursorStack>> {
        lock(&self.cursors.0).pop()
    }

    /// Keeps `stack` for a later cursor over this view (releasing its
    /// data blocks), if fewer than [`POOLED_CURSORS`] are kept; drops it
    /// otherwise. The caller passes only a stack built over this view by
    /// `crate::iter::build_stack`, unbounded (as `DbCursor` builds it, and
    /// as a reused one is read), with nothing left out (`complete`) and no
    /// error seen since.
    pub(crate) fn keep_cursor(&self, mut stack: Box<CursorStack>) {
        stack.release();
        let mut kept = lock(&self.cursors.0);
        if kept.len() < POOLED_CURSORS {
            kept.push(stack);
        }
    }
}

/// How full the write side is, for the writers' stalls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pressure {
    pub(crate) memtable_bytes: usize,
    pub(crate) immutables: usize,
    pub(crate) l0_tables: usize,
    pub(crate) pending_compaction_bytes: u64,
}

/// What the memtables hold, for `stats()`.
#[derive(Debug)]
pub(crate) struct MemoryUse {
    pub(crate) memtable_bytes: u64,
    pub(crate) immutables: usize,
    pub(crate) immutable_bytes: u64,
    pub(crate) version: Arc<Version>,
    pub(crate) pending_compaction_bytes: u64,
}

/// The memtables and the installed version.
#[derive(Debug)]
struct MemState {
    mem: Arc<MemTable>,
    /// Oldest first.
    imms: VecDeque<Immutable>,
    version: Arc<Version>,
    /// The WAL segment the writes of `mem` start in (see
    /// [`Immutable::first_log`]).
    mem_first_log: u64,
    /// The strategy's estimate of the bytes compaction is behind, for the
    /// version installed (write stalls read it).
    pending_compaction_bytes: u64,
}

/// The memtables and version of the database, and the super version that
/// publishes them.
///
/// # Thread safety
/// Changes happen under one mutex, which also publishes the matching
/// super version into `current`. Readers load `current` without a lock:
/// [`ArcSwap::load`] borrows the published `Arc` through a slot of the
/// reading thread's own, so a get writes no cache line another core reads
/// (an `RwLock` read and an `Arc` clone would write two, and on two
/// threads those lines moved between the cores on every get). Lock order:
/// the writer mutex (when held), then this mutex.
#[derive(Debug)]
pub(crate) struct ReadState {
    state: Mutex<MemState>,
    current: ArcSwap<SuperVersion>,
}

impl ReadState {
    /// A read state of `mem` (no immutable memtables, its writes in WAL
    /// segment `first_log` or later) over `version`.
    pub(crate) fn new(
        mem: Arc<MemTable>,
        first_log: u64,
        version: Arc<Version>,
        pending: u64,
    ) -> Self {
        let state = MemState {
            mem,
            imms: VecDeque::new(),
            version,
            mem_first_log: first_log,
            pending_compaction_bytes: pending,
        };
        let current = ArcSwap::from_pointee(super_version_of(&state));
        ReadState {
            state: Mutex::new(state),
            current,
        }
    }

    /// The current super version.
    #[cfg(test)]
    pub(crate) fn super_version(&self) -> Arc<SuperVersion> {
        self.current.load_full()
    }

    /// The current super version, borrowed for one read at a seqno the
    /// caller already holds (a snapshot's or a transaction's): no lock, no
    /// shared count.
    pub(crate) fn pinned(&self) -> Guard<Arc<SuperVersion>> {
        self.current.load()
    }

    /// The visible seqno and the super version to read it in, as an owned
    /// `Arc` (for iterators, which outlive the call).
    pub(crate) fn view(&self, visibility: &Visibility) -> (SeqNo, Arc<SuperVersion>) {
        let (seqno, sv) = self.pinned_view(visibility);
        (seqno, Guard::into_inner(sv))
    }

    /// The visible seqno and the super version to read it in, borrowed for
    /// one read (a get): no lock taken, no shared count written.
    ///
    /// The seqno must be one loaded while that super version was the
    /// published one. A flush or compaction that drops versions no snapshot
    /// needs publishes its super version after the seqno passed every entry
    /// it rewrote, so a reader of it needs a seqno at least that new; and a
    /// memtable switch publishes before any write goes to the new memtable,
    /// so a reader of the super version before it must not see a seqno of
    /// such a write. Loading the super version, then the seqno, then
    /// checking that the super version is still the published one gives
    /// both: a super version's load acquires what its store released and
    /// the seqno's load what the write's publish released, so a seqno that
    /// came after a publish makes the second load see that publish (and
    /// the held guard keeps the first one's address from being reused). A
    /// publish in between, rare, only makes the reader load again.
    pub(crate) fn pinned_view(&self, visibility: &Visibility) -> (SeqNo, Guard<Arc<SuperVersion>>) {
        loop {
            let sv = self.current.load();
            let seqno = visibility.visible();
            if std::ptr::eq(Arc::as_ptr(&sv), Arc::as_ptr(&self.current.load())) {
                return (seqno, sv);
            }
        }
    }

    /// The installed version.
    pub(crate) fn version(&self) -> Arc<Version> {
        lock(&self.state).version.clone()
    }

    /// The memtable that takes writes.
    pub(crate) fn memtable(&self) -> Arc<MemTable> {
        lock(&self.state).mem.clone()
    }

    /// How full the write side is.
    pub(crate) fn pressure(&self) -> Pressure {
        let state = lock(&self.state);
        Pressure {
            memtable_bytes: state.mem.approximate_bytes(),
            immutables: state.imms.len(),
            l0_tables: state.version.level(0).len(),
            pending_compaction_bytes: state.pending_compaction_bytes,
        }
    }

    /// [`ReadState::pressure`] and the memtable that takes writes, under
    /// one lock (the commit path wants both).
    pub(crate) fn room(&self) -> (Pressure, Arc<MemTable>) {
        let state = lock(&self.state);
        let pressure = Pressure {
            memtable_bytes: state.mem.approximate_bytes(),
            immutables: state.imms.len(),
            l0_tables: state.version.level(0).len(),
            pending_compaction_bytes: state.pending_compaction_bytes,
        };
        (pressure, state.mem.clone())
    }

    /// What the memtables hold, and the installed version.
    pub(crate) fn memory_use(&self) -> MemoryUse {
        let state = lock(&self.state);
        MemoryUse {
            memtable_bytes: state.mem.approximate_bytes() as u64,
            immutables: state.imms.len(),
            immutable_bytes: state
                .imms
                .iter()
                .map(|imm| imm.table.approximate_bytes() as u64)
                .sum(),
            version: state.version.clone(),
            pending_compaction_bytes: state.pending_compaction_bytes,
        }
    }

    /// The oldest immutable memtable: the next to flush.
    pub(crate) fn oldest_immutable(&self) -> Option<Immutable> {
        lock(&self.state).imms.front().cloned()
    }

    /// The id of the newest immutable memtable.
    pub(crate) fn newest_immutable_id(&self) -> Option<u64> {
        lock(&self.state).imms.back().map(|imm| imm.id)
    }

    /// Whether the memtable that takes writes holds nothing.
    pub(crate) fn memtable_is_empty(&self) -> bool {
        lock(&self.state).mem.is_empty()
    }

    /// Freezes the memtable into immutable memtable `id` (ids rise across
    /// every keyspace) and starts an empty one, whose writes go to segment
    /// `next_log` on. Called with the writer mutex held.
    pub(crate) fn freeze(&self, id: u64, next_log: u64) {
        let mut state = lock(&self.state);
        let frozen = std::mem::replace(&mut state.mem, Arc::new(MemTable::new()));
        let first_log = std::mem::replace(&mut state.mem_first_log, next_log);
        state.imms.push_back(Immutable {
            table: frozen,
            id,
            next_log,
            first_log,
        });
        self.publish(&state);
    }

    /// No write of this keyspace that is in no table lies below segment
    /// `log_number` (the global log number an edit just recorded): raises
    /// every memtable's first segment to it, so that none names a segment
    /// that is forgotten (a memtable empty when the log number was computed
    /// may have kept an older one; its writes came later).
    pub(crate) fn raise_first_log(&self, log_number: u64) {
        let mut state = lock(&self.state);
        state.mem_first_log = state.mem_first_log.max(log_number);
        for imm in &mut state.imms {
            imm.first_log = imm.first_log.max(log_number);
        }
    }

    /// The oldest WAL segment holding a write of this keyspace that is in
    /// no table, leaving out immutable memtable `except` (the one being
    /// flushed); `None` if every write is in a table.
    pub(crate) fn first_unflushed_log(&self, except: Option<u64>) -> Option<u64> {
        let state = lock(&self.state);
        let imms = state
            .imms
            .iter()
            .filter(|imm| Some(imm.id) != except)
            .map(|imm| imm.first_log);
        let mem = (!state.mem.is_empty()).then_some(state.mem_first_log);
        imms.chain(mem).min()
    }

    /// Immutable memtable `id` is in a table now: drops it from the read
    /// set and installs the version `current` gives (the version set's
    /// current one, which holds that table, and its compaction debt).
    ///
    /// `current` is called under this read state's mutex, so that two
    /// installs (a flush's and a compaction's) never put an older version
    /// back over a newer one: each takes the newest there is when it
    /// installs.
    pub(crate) fn flushed(&self, id: u64, current: impl FnOnce() -> Option<(Arc<Version>, u64)>) {
        let mut state = lock(&self.state);
        if state.imms.front().map(|front| front.id) == Some(id) {
            state.imms.pop_front();
        }
        if let Some((version, pending)) = current() {
            state.version = version;
            state.pending_compaction_bytes = pending;
        }
        self.publish(&state);
    }

    /// Empties the read set (its keyspace was dropped): readers that hold
    /// a super version keep theirs, no one else pins its files.
    pub(crate) fn clear(&self) {
        let mut state = lock(&self.state);
        state.mem = Arc::new(MemTable::new());
        state.imms.clear();
        state.version = Arc::new(Version::default());
        state.pending_compaction_bytes = 0;
        self.publish(&state);
    }

    /// Installs the version `current` gives (after a compaction), called
    /// under this read state's mutex as in [`ReadState::flushed`].
    pub(crate) fn install(&self, current: impl FnOnce() -> Option<(Arc<Version>, u64)>) {
        let mut state = lock(&self.state);
        if let Some((version, pending)) = current() {
            state.version = version;
            state.pending_compaction_bytes = pending;
        }
        self.publish(&state);
    }

    /// Publishes the super version matching `state` (its mutex held).
    fn publish(&self, state: &MemState) {
        self.current.store(Arc::new(super_version_of(state)));
    }
}

fn super_version_of(state: &MemState) -> SuperVersion {
    SuperVersion {
        mem: state.mem.clone(),
        imms: state
            .imms
            .iter()
            .rev()
            .map(|imm| imm.table.clone())
            .collect(),
        version: state.version.clone(),
        frozen_tombstones: OnceLock::new(),
        merged_tombstones: Mutex::new(None),
        cursors: CursorPool::default(),
    }
}

/// The newest visible seqno and the live snapshots.
#[derive(Debug, Default)]
pub(crate) struct Visibility {
    /// The newest seqno whose write is fully applied: reads see up to here.
    visible: AtomicU64,
    /// Live snapshots: seqno -> how many.
    snapshots: Mutex<BTreeMap<SeqNo, usize>>,
}

impl Visibility {
    /// Every write up to `last_seqno` visible.
    pub(crate) fn new(last_seqno: SeqNo) -> Self {
        Visibility {
            visible: AtomicU64::new(last_seqno),
            snapshots: Mutex::new(BTreeMap::new()),
        }
    }

    /// The newest visible seqno.
    pub(crate) fn visible(&self) -> SeqNo {
        self.visible.load(Ordering::Acquire)
    }

    /// Makes every write up to `last` visible.
    pub(crate) fn publish(&self, last: SeqNo) {
        self.visible.store(last, Ordering::Release);
    }

    /// Registers a snapshot at the visible seqno.
    pub(crate) fn acquire_snapshot(&self) -> SeqNo {
        let mut snapshots = lock(&self.snapshots);
        let seqno = self.visible();
        *snapshots.entry(seqno).or_insert(0) += 1;
        seqno
    }

    /// Releases a snapshot taken at `seqno`.
    pub(crate) fn release_snapshot(&self, seqno: SeqNo) {
        let mut snapshots = lock(&self.snapshots);
        if let Some(count) = snapshots.get_mut(&seqno) {
            *count -= 1;
            if *count == 0 {
                snapshots.remove(&seqno);
            }
        }
    }

    /// The seqnos of the live snapshots, ascending (compaction keeps what
    /// each of them can see).
    pub(crate) fn live_snapshots(&self) -> Vec<SeqNo> {
        lock(&self.snapshots).keys().copied().collect()
    }

    /// How many snapshots are live, and the oldest one's seqno.
    pub(crate) fn snapshot_counts(&self) -> (usize, Option<SeqNo>) {
        let snapshots = lock(&self.snapshots);
        (snapshots.values().sum(), snapshots.keys().next().copied())
    }
}

/// The newest value of `key` at or below `seqno` in `sv`.
///
/// Sources are visited newest first (memtable, immutable memtables, L0
/// tables, then one table per level). In each, the range tombstones
/// covering `key` are looked at before its entries: a version older than
/// the newest covering tombstone seen so far is deleted, and once a
/// tombstone covers the key and the source holds no newer version, no
/// older source can (every version there is older than the tombstone), so
/// the search stops.
pub(crate) fn get(
    tables: &TableCache,
    sv: &SuperVersion,
    key: &[u8],
    seqno: SeqNo,
) -> Result<Option<Bytes>> {
    let mut covering: Option<SeqNo> = None;
    let deleted = |found: SeqNo, covering: Option<SeqNo>| covering.is_some_and(|t| t > found);
    for mem in std::iter::once(&sv.mem).chain(sv.imms.iter()) {
        raise(&mut covering, mem.covering_seqno(key, seqno));
        match mem.get_entry(key, seqno) {
            Some((found, Lookup::Found(value))) if !deleted(found, covering) => {
                return Ok(Some(value));
            }
            Some(_) => return Ok(None),
            None if covering.is_some() => return Ok(None),
            None => {}
        }
    }
    let in_range = |t: &TableMeta| t.smallest_user_key() <= key && key <= t.largest_user_key();
    let candidates = sv
        .version
        .level(0)
        .iter()
        .filter(|meta| in_range(meta))
        .chain(
            (1..sv.version.num_levels()).filter_map(|level| sv.version.table_for_key(level, key)),
        );
    for meta in candidates {
        if seqno < meta.smallest_seqno {
            continue;
        }
        let found = tables.with_table(meta, |table| {
            if meta.has_range_tombstones() {
                raise(
                    &mut covering,
                    table.range_tombstones().covering_seqno(key, seqno),
                );
            }
            table.get(key, seqno)
        })??;
        match found {
            Some(found) if found.kind == ValueKind::Put && !deleted(found.seqno, covering) => {
                return Ok(Some(found.value));
            }
            Some(_) => return Ok(None),
            None if covering.is_some() => return Ok(None),
            None => {}
        }
    }
    Ok(None)
}

/// Keeps in `covering` the newer of it and `found`.
fn raise(covering: &mut Option<SeqNo>, found: Option<SeqNo>) {
    if let Some(found) = found {
        *covering = Some(covering.map_or(found, |c| c.max(found)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freezing_and_flushing_change_the_published_super_version() {
        let read_state = ReadState::new(
            Arc::new(MemTable::new()),
            3,
            Arc::new(Version::default()),
            0,
        );
        assert_eq!(
            read_state.first_unflushed_log(None),
            None,
            "nothing written"
        );
        read_state.memtable().insert(b"k", 1, ValueKind::Put, b"v");
        assert_eq!(read_state.first_unflushed_log(None), Some(3));
        let before = read_state.super_version();
        let id = 11;
        read_state.freeze(id, 7);
        assert_eq!(
            read_state.first_unflushed_log(None),
            Some(3),
            "the frozen one"
        );
        assert_eq!(
            read_state.first_unflushed_log(Some(id)),
            None,
            "the new one is empty"
        );
        let frozen = read_state.super_version();
        assert!(!Arc::ptr_eq(&before, &frozen));
        assert_eq!(frozen.imms.len(), 1);
        assert!(frozen.mem.is_empty());
        read_state.memtable().insert(b"k", 2, ValueKind::Put, b"w");
        assert_eq!(read_state.first_unflushed_log(Some(id)), Some(7));
        assert_eq!(
            read_state
                .oldest_immutable()
                .map(|imm| (imm.id, imm.next_log)),
            Some((id, 7))
        );
        read_state.flushed(id, || Some((Arc::new(Version::default()), 5)));
        assert!(read_state.super_version().imms.is_empty());
        assert_eq!(read_state.pressure().pending_compaction_bytes, 5);
        // The reader that took the old super version still has its memtable.
        assert!(matches!(before.mem.get(b"k", 1), Lookup::Found(_)));
    }

    /// A reader's seqno never runs ahead of its super version: every write
    /// at or below the seqno `pinned_view` returns is in the memtables of
    /// the super version it returns, even while the writer switches
    /// memtables (a switch publishes before any write goes to the new
    /// memtable). Without the second load in `pinned_view` a reader could
    /// pair the super version before a switch with the seqno of a write
    /// after it.
    #[test]
    fn a_pinned_view_holds_every_write_its_seqno_makes_visible() {
        const WRITES: u64 = 100_000;
        let read_state = ReadState::new(
            Arc::new(MemTable::new()),
            1,
            Arc::new(Version::default()),
            0,
        );
        let visibility = Visibility::new(0);
        let key = |seqno: SeqNo| seqno.to_be_bytes();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for seqno in 1..=WRITES {
                    if seqno % 16 == 0 {
                        read_state.freeze(seqno, 1);
                    }
                    read_state
                        .memtable()
                        .insert(&key(seqno), seqno, ValueKind::Put, b"v");
                    visibility.publish(seqno);
                }
            });
            let mut checked = 0u64;
            loop {
                let (seqno, sv) = read_state.pinned_view(&visibility);
                if seqno > 0 {
                    let found = std::iter::once(&sv.mem)
                        .chain(sv.imms.iter())
                        .any(|mem| matches!(mem.get(&key(seqno), seqno), Lookup::Found(_)));
                    assert!(found, "write {seqno} is visible but not in the view");
                    checked += 1;
                }
                if seqno == WRITES {
                    break;
                }
            }
            assert!(checked > 0);
        });
    }

    #[test]
    fn snapshots_are_counted_per_seqno() {
        let visibility = Visibility::new(4);
        let a = visibility.acquire_snapshot();
        let b = visibility.acquire_snapshot();
        visibility.publish(9);
        let c = visibility.acquire_snapshot();
        assert_eq!((a, b, c), (4, 4, 9));
        assert_eq!(visibility.snapshot_counts(), (3, Some(4)));
        visibility.release_snapshot(a);
        assert_eq!(visibility.live_snapshots(), vec![4, 9]);
        visibility.release_snapshot(b);
        assert_eq!(visibility.live_snapshots(), vec![9]);
    }
}
