//! The reader given arbitrary bytes: it never panics, never returns a batch
//! that was not written, and never allocates more than the input warrants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use common::*;
use kevo_core::{Fs, MemFs};
use kevo_wal::{BLOCK_BYTES, Batch, RecoveryMode, SEGMENT_HEADER_BYTES, SyncMode, WalOptions};
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

/// Replays `bytes` as segment 1 under `mode`; returns the batches read before
/// the first error and the largest allocation made.
fn replay_bytes(bytes: &[u8], mode: RecoveryMode) -> (Vec<Batch>, bool, usize) {
    let mem = MemFs::new();
    mem.create_dir_all(&dir()).unwrap();
    mem.write_file(&segment_path(1), bytes).unwrap();
    let fs: Arc<dyn Fs> = Arc::new(mem);
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let mut batches = Vec::new();
    let mut failed = false;
    for item in kevo_wal::Replay::open(fs, &dir(), mode, 0).unwrap() {
        match item {
            Ok(replayed) => batches.push(replayed.batch),
            Err(_) => failed = true,
        }
    }
    TRACKING.with(|t| t.set(false));
    (batches, failed, LARGEST.with(Cell::get))
}

/// The most any replay of `len` input bytes may allocate at once: a block
/// buffer, or a copy of (at most) the whole input.
fn allocation_bound(len: usize) -> usize {
    BLOCK_BYTES.max(len) * 2
}

fn valid_log() -> (Vec<u8>, Vec<Batch>) {
    let mem = MemFs::new();
    let batches: Vec<Batch> = (1..=6)
        .map(|i| batch(i, (i % 3) as usize + 1, 40 * i as usize))
        .collect();
    let options = WalOptions {
        sync_mode: SyncMode::None,
        ..WalOptions::default()
    };
    write_log(Arc::new(mem.clone()), options, &batches);
    (mem.read_file(&segment_path(1)).unwrap(), batches)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_or_overallocate(
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        with_header: bool,
    ) {
        let mut bytes = Vec::new();
        if with_header {
            bytes.extend_from_slice(&valid_log().0[..SEGMENT_HEADER_BYTES]);
        }
        bytes.extend_from_slice(&body);
        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::AbsoluteConsistency, RecoveryMode::SkipCorrupted] {
            let (_, _, largest) = replay_bytes(&bytes, mode);
            prop_assert!(largest <= allocation_bound(bytes.len()), "allocated {largest} for {} input bytes", bytes.len());
        }
    }

    #[test]
    fn damaged_log_never_yields_a_batch_that_was_not_written(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate: bool,
    ) {
        let (mut bytes, written) = valid_log();
        for (at, mask) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::AbsoluteConsistency, RecoveryMode::SkipCorrupted] {
            let (batches, _, largest) = replay_bytes(&bytes, mode);
            prop_assert!(largest <= allocation_bound(bytes.len()));
            // Whatever comes back is a subsequence of what was written.
            let mut next = 0;
            for b in &batches {
                let found = written[next..].iter().position(|w| w == b);
                prop_assert!(found.is_some(), "{:?}: replayed a batch that was never written", mode);
                next += found.unwrap_or(0) + 1;
            }
            if mode != RecoveryMode::SkipCorrupted {
                // Without skipping, what comes back is a prefix.
                prop_assert_eq!(&batches[..], &written[..batches.len()]);
            }
        }
    }
}

#[test]
fn huge_declared_lengths_are_not_trusted() {
    let (mut bytes, _) = valid_log();
    // Claim a 65535-byte fragment and a batch with 2^32-1 entries.
    let at = SEGMENT_HEADER_BYTES;
    bytes[at + 4] = 0xFF;
    bytes[at + 5] = 0xFF;
    bytes[at + 11 + 8..at + 11 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::SkipCorrupted,
    ] {
        let (_, _, largest) = replay_bytes(&bytes, mode);
        assert!(
            largest <= allocation_bound(bytes.len()),
            "{mode:?}: allocated {largest}"
        );
    }
}
