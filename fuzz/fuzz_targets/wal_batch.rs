//! Decoding of an arbitrary WAL batch (a record's payload).
//!
//! The input is handed to `Batch::decode` as it is, so that mutations reach
//! the entry decoder (tags, keyspace fields, lengths) without first having
//! to pass a fragment checksum as in `wal_replay`. What must hold for *any*
//! input:
//!
//! - nothing panics, and nothing is allocated from a length read from the
//!   input beyond the input itself (the decoder's bounds);
//! - an accepted batch is well formed: exactly `len()` entries iterate, keys
//!   and values within their limits, deletes with empty values, the limits
//!   check passes, `as_bytes()` is the input;
//! - decode → encode round trip: rebuilt with `put_in` / `delete_in` (each
//!   entry in its keyspace) it has the same entries in at most as many bytes,
//!   the same bytes when the input was canonical (`kevo_fuzz::check_reencodes`);
//! - `extend` with itself keeps every entry (keyspace included), twice over.
#![no_main]

use kevo_core::{KEY_BYTES_MAX, VALUE_BYTES_MAX};
use kevo_fuzz::check_reencodes;
use kevo_wal::{Batch, EntryKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = Batch::decode(data) else {
        return;
    };
    assert_eq!(batch.as_bytes(), data, "a decoded batch keeps its bytes");
    assert!(batch.check_limits().is_ok(), "{:?}", batch.check_limits());
    let mut n = 0;
    for e in batch.iter() {
        n += 1;
        assert!(e.key.len() <= KEY_BYTES_MAX);
        assert!(e.value.len() <= VALUE_BYTES_MAX);
        match e.kind {
            EntryKind::Delete => assert!(e.value.is_empty()),
            EntryKind::RangeDelete => assert!(e.value.len() <= KEY_BYTES_MAX),
            EntryKind::Put => {}
        }
    }
    assert_eq!(n, batch.len(), "entries iterated vs batch.len()");
    assert_eq!(batch.iter().size_hint(), (n, Some(n)));
    check_reencodes(&batch, data);

    let mut twice = batch.clone();
    twice.extend(&batch);
    assert_eq!(twice.len(), 2 * batch.len());
    assert!(
        twice.iter().eq(batch.iter().chain(batch.iter())),
        "extend changed an entry"
    );
    assert_eq!(twice.seqno(), batch.seqno());
});
