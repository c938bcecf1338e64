//! Decoders given arbitrary bytes never panic and never allocate more than
//! the input warrants: no size read from the input is trusted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use common::dir;
use kevo_core::{Fs, MemFs};
use kevo_manifest::{CURRENT_FILE, MANIFEST_MAGIC, ManifestOptions, VersionEdit, VersionSet};
use kevo_wal::log::LogWriter;
use proptest::prelude::*;

/// Tracks the largest single allocation made by the current thread while
/// tracking is on.
struct LargestAllocation;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the thread-locals may already be gone while a thread exits.
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping touches only `Cell`s and never allocates.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract; we pass it through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds
        // the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Runs `f` and returns its result and the largest allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, LARGEST.with(Cell::get))
}

/// Allowed for decoding `len` bytes: lists of decoded entries (at most a
/// few dozen bytes of memory per input byte, doubled by `Vec` growth).
fn decode_budget(len: usize) -> usize {
    1024 + 16 * len
}

/// Opens a version set whose manifest holds `records` (framed) or, with
/// `raw`, their concatenation as the whole file; returns whether it opened
/// and the largest allocation made.
fn open_manifest(records: &[Vec<u8>], raw: bool) -> (bool, usize) {
    let mem = MemFs::new();
    mem.create_dir_all(dir()).unwrap();
    let path = dir().join("MANIFEST-000001");
    if raw {
        mem.write_file(&path, &records.concat()).unwrap();
    } else {
        let file = mem.create(&path).unwrap();
        let mut log = LogWriter::new(file, 1, MANIFEST_MAGIC).unwrap();
        for r in records {
            log.add_record(r).unwrap();
        }
        log.sync().unwrap();
        mem.sync_dir(dir()).unwrap();
    }
    mem.write_file(&dir().join(CURRENT_FILE), b"MANIFEST-000001\n")
        .unwrap();
    let fs: Arc<dyn Fs> = Arc::new(mem);
    let (result, largest) =
        largest_allocation(|| VersionSet::open(fs, Path::new(dir()), ManifestOptions::default()));
    if let Err(e) = &result {
        assert!(e.is_corruption(), "{e:?}");
    }
    (result.is_ok(), largest)
}

#[test]
fn many_small_fields_allocate_in_proportion_to_the_input() {
    // 20 000 removed-table fields of 3 bytes each.
    let mut bytes = vec![1u8];
    for _ in 0..20_000 {
        bytes.extend_from_slice(&[4, 1, 7]);
    }
    let (decoded, largest) = largest_allocation(|| VersionEdit::decode(&bytes));
    assert_eq!(decoded.unwrap().removed.len(), 20_000);
    assert!(largest <= decode_budget(bytes.len()), "{largest}");
}

#[test]
fn huge_key_length_is_refused_before_allocating() {
    // An added table whose smallest key claims 4 GiB.
    let bytes = [1u8, 5, 0, 7, 9, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a'];
    let (decoded, largest) = largest_allocation(|| VersionEdit::decode(&bytes));
    assert!(decoded.is_err());
    assert!(largest <= decode_budget(bytes.len()), "{largest}");
}

proptest! {
    #[test]
    fn edit_decode_allocates_in_proportion_to_the_input(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096)
    ) {
        let (_, largest) = largest_allocation(|| VersionEdit::decode(&bytes));
        prop_assert!(largest <= decode_budget(bytes.len()), "{}", largest);
    }

    #[test]
    fn open_on_an_arbitrary_manifest_is_corruption_or_bounded(
        records in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..512)).prop_map(
                |(edit_like, mut bytes)| {
                    if edit_like {
                        bytes.insert(0, 1);
                    }
                    bytes
                },
            ),
            0..8,
        ),
        raw in any::<bool>(),
    ) {
        let len: usize = records.iter().map(Vec::len).sum();
        let (_, largest) = open_manifest(&records, raw);
        // A block buffer, plus what the records warrant.
        prop_assert!(largest <= 64 * 1024 + 16 * len, "{}", largest);
    }
}
