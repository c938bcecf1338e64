//! Decoding an arbitrary version edit.
//!
//! The input is the payload of one manifest record. What must hold for *any*
//! input:
//!
//! - `VersionEdit::decode` never panics (overflow checks are on in
//!   `cargo fuzz` builds) and allocates nothing sized by the input;
//! - when it decodes, the edit is well formed (levels below `NUM_LEVELS`,
//!   seqnos at most `SEQNO_MAX`) and re-encoding it decodes to the same edit;
//!   the re-encoding is canonical: encoding it again gives the same bytes,
//!   and it is never longer than the input.
#![no_main]

use kevo_core::SEQNO_MAX;
use kevo_manifest::{NUM_LEVELS, VersionEdit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(edit) = VersionEdit::decode(data) else {
        return;
    };
    assert!(edit.added.iter().all(|(level, _)| *level < NUM_LEVELS));
    assert!(edit.removed.iter().all(|(level, _)| *level < NUM_LEVELS));
    assert!(edit.last_seqno.is_none_or(|s| s <= SEQNO_MAX));
    for (_, t) in &edit.added {
        assert!(t.smallest_seqno <= SEQNO_MAX && t.largest_seqno <= SEQNO_MAX);
        let _ = (t.smallest_user_key(), t.largest_user_key());
    }
    let bytes = edit.encode();
    assert!(
        bytes.len() <= data.len(),
        "re-encoding grew: {} > {}",
        bytes.len(),
        data.len()
    );
    let again = VersionEdit::decode(&bytes).expect("a re-encoded edit decodes");
    assert_eq!(again, edit);
    assert_eq!(again.encode(), bytes, "the encoding is not canonical");
});
