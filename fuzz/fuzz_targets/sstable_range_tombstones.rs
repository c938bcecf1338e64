//! Decoding an arbitrary range-tombstone block (format version 2).
//!
//! The input is the contents of a range-tombstone block after
//! decompression, handed to `kevo_sstable::decode_range_tombstones`. For any
//! input:
//!
//! - nothing panics (overflow checks are on in `cargo fuzz` builds);
//! - when it decodes, the result is in canonical fragmented form:
//!   `FragmentedTombstones::from_fragments` accepts its fragments and gives
//!   the same set, fragmenting its tombstones again
//!   (`FragmentedTombstones::new`) gives the same set, and every key is at
//!   most `KEY_BYTES_MAX` bytes and every seqno at most `SEQNO_MAX`.
#![no_main]

use kevo_core::{FragmentedTombstones, KEY_BYTES_MAX, SEQNO_MAX};
use kevo_sstable::decode_range_tombstones;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(set) = decode_range_tombstones(data) else {
        return;
    };
    assert!(!set.is_empty(), "an empty block decoded");
    let again = FragmentedTombstones::from_fragments(set.fragments().to_vec())
        .expect("decoded fragments are not in fragmented form");
    assert_eq!(again, set);
    assert_eq!(
        FragmentedTombstones::new(set.tombstones()),
        set,
        "decoded fragments are not in canonical fragmented form"
    );
    for f in set.fragments() {
        assert!(f.start.len() <= KEY_BYTES_MAX && f.end.len() <= KEY_BYTES_MAX);
        assert!(f.seqnos.iter().all(|&s| s <= SEQNO_MAX));
    }
    assert!(set.len() <= data.len(), "more tombstones than bytes");
});
