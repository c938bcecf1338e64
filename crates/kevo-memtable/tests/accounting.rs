//! `MemTable::approximate_bytes` against the heap bytes the inserts really
//! allocate, measured with a counting global allocator: within 20% for
//! small (16 B key, 10 B value) and large (16 B key, 4 KiB value) entries.
//!
//! The allocator counts, per thread (so tests running side by side do not
//! disturb each other; each test inserts from its own thread only):
//! - the bytes requested (`Layout::size`) and the number of allocations;
//! - with glibc, the bytes of heap chunks taken (`malloc_usable_size` plus
//!   the 8-byte chunk header), which is what the process really pays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kevo_core::ValueKind;
use kevo_memtable::MemTable;

/// Forwards to the system allocator and keeps, per thread, the bytes
/// allocated minus the bytes freed, and the number of allocations.
struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
    static CHUNK_BYTES: Cell<i64> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn add(bytes: i64) {
    // `try_with`: the thread-locals may already be gone while a thread exits.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + bytes));
}

/// Adds (or, with `sign = -1`, removes) the chunk holding `ptr`.
///
/// # Safety
/// `ptr` must be a live allocation of the system allocator.
unsafe fn add_chunk(ptr: *mut u8, sign: i64) {
    // SAFETY: the caller passes a live allocation of `System`.
    let bytes = unsafe { chunk::bytes(ptr) } as i64;
    let _ = CHUNK_BYTES.try_with(|live| live.set(live.get() + sign * bytes));
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod chunk {
    use std::ffi::c_void;

    pub(crate) const MEASURED: bool = true;

    unsafe extern "C" {
        /// glibc: the usable bytes of the chunk holding `ptr`.
        fn malloc_usable_size(ptr: *mut c_void) -> usize;
    }

    /// The heap bytes the chunk holding `ptr` takes: its usable size plus
    /// glibc's 8-byte size header.
    ///
    /// # Safety
    /// `ptr` must be a live allocation of glibc's `malloc` (which `System`
    /// uses on this target).
    pub(crate) unsafe fn bytes(ptr: *mut u8) -> usize {
        // SAFETY: `ptr` is live and came from glibc, as the caller promises.
        unsafe { malloc_usable_size(ptr.cast()) + 8 }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod chunk {
    pub(crate) const MEASURED: bool = false;

    /// Not measured on this target.
    pub(crate) unsafe fn bytes(_ptr: *mut u8) -> usize {
        0
    }
}

fn chunk_bytes() -> i64 {
    CHUNK_BYTES.with(Cell::get)
}

fn count_allocation() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn live_bytes() -> i64 {
    LIVE_BYTES.with(Cell::get)
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the bookkeeping only touches a `const`-initialised
// thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract; we pass it through.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            add(layout.size() as i64);
            count_allocation();
            // SAFETY: `ptr` was just allocated by `System`.
            unsafe { add_chunk(ptr, 1) };
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(layout.size() as i64);
            count_allocation();
            // SAFETY: `ptr` was just allocated by `System`.
            unsafe { add_chunk(ptr, 1) };
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as i64));
        // SAFETY: `ptr` is live until the `dealloc` below.
        unsafe { add_chunk(ptr, -1) };
        // SAFETY: `ptr` was allocated by `System` (every allocation goes
        // through this type) with this `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is live until the `realloc` below.
        unsafe { add_chunk(ptr, -1) };
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s
        // contract on `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if new.is_null() {
            // The old block is untouched and still live.
            // SAFETY: `ptr` is still a live allocation.
            unsafe { add_chunk(ptr, 1) };
        } else {
            add(new_size as i64 - layout.size() as i64);
            count_allocation();
            // SAFETY: `new` was just allocated by `System`.
            unsafe { add_chunk(new, 1) };
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEY_BYTES: usize = 16;

/// Bytes of one of the memtable's arena chunks.
const ARENA_CHUNK_BYTES: u64 = 64 * 1024;

/// A 16-byte key from a counter, scrambled so inserts land all over the
/// list (splitmix64 is a bijection: no duplicates).
fn key(i: u64) -> [u8; KEY_BYTES] {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let mut key = [0u8; KEY_BYTES];
    key[..8].copy_from_slice(&z.to_be_bytes());
    key[8..].copy_from_slice(&i.to_be_bytes());
    key
}

/// What one run measured.
struct Measured {
    entries: u64,
    requested: i64,
    chunks: i64,
    estimated: usize,
}

/// Inserts `entries` puts of `value_len`-byte values; returns the measured
/// growth of the heap and the table's estimate.
fn measure(entries: u64, value_len: usize) -> Measured {
    // Warm up what is allocated once per thread or process (the epoch
    // collector and this thread's registration with it).
    let warm = MemTable::new();
    warm.insert(b"warm", 1, ValueKind::Put, b"up");
    drop(warm);

    let value = vec![b'v'; value_len];
    let table = MemTable::new();
    let before = live_bytes();
    let chunks_before = chunk_bytes();
    let allocations_before = allocations();
    for i in 0..entries {
        table.insert(&key(i), i + 1, ValueKind::Put, &value);
    }
    let measured = Measured {
        entries,
        requested: live_bytes() - before,
        chunks: chunk_bytes() - chunks_before,
        estimated: table.approximate_bytes(),
    };
    assert_eq!(table.len() as u64, entries);
    // One skip-list node per insert, and per arena chunk of 64 KiB its
    // buffer and `bytes`' reference-count header; nothing else.
    let entry = (KEY_BYTES + 8 + value_len) as u64;
    let chunks = entries.div_ceil(ARENA_CHUNK_BYTES / entry);
    assert_eq!(allocations() - allocations_before, entries + 2 * chunks);
    measured
}

/// Asserts the estimate is within `tolerance` of the bytes requested and,
/// where measured, of the heap chunks taken.
fn assert_within(label: &str, m: &Measured, tolerance: f64) {
    let mut against = vec![("requested", m.requested)];
    if chunk::MEASURED {
        against.push(("glibc chunks", m.chunks));
    }
    for (what, measured) in against {
        let error = (m.estimated as f64 - measured as f64) / measured as f64;
        eprintln!(
            "{label}: {} entries, {what} {measured} B ({:.1} B/entry), \
             approximate_bytes {} B ({:.1} B/entry), error {:+.1}%",
            m.entries,
            measured as f64 / m.entries as f64,
            m.estimated,
            m.estimated as f64 / m.entries as f64,
            error * 100.0
        );
        assert!(
            error.abs() <= tolerance,
            "{label}: estimate off the {what} bytes by {:.1}% (more than {:.0}%)",
            error * 100.0,
            tolerance * 100.0
        );
    }
}

#[test]
fn approximate_bytes_tracks_heap_use_of_small_entries() {
    let measured = measure(100_000, 10);
    assert_within("16 B key, 10 B value", &measured, 0.20);
}

#[test]
fn approximate_bytes_tracks_heap_use_of_large_entries() {
    let measured = measure(5_000, 4096);
    assert_within("16 B key, 4 KiB value", &measured, 0.20);
}

#[test]
fn lookups_allocate_only_the_values_they_return() {
    // Warm up the epoch machinery on this thread.
    MemTable::new().insert(b"warm", 1, ValueKind::Put, b"up");

    let table = MemTable::new();
    for i in 0..1_000 {
        table.insert(&key(i), i + 1, ValueKind::Put, b"value");
    }
    let before = live_bytes();
    let allocations_before = allocations();
    let mut found = 0;
    for i in 0..1_000 {
        // Hits and misses alike; only a hit allocates (its value's copy).
        if let kevo_memtable::Lookup::Found(v) = table.get(&key(i), u64::MAX) {
            found += v.len();
        }
        drop(table.get(&key(i + 5_000), u64::MAX));
    }
    assert_eq!(found, 5_000);
    assert_eq!(allocations() - allocations_before, 1_000);
    assert_eq!(live_bytes(), before);
}
