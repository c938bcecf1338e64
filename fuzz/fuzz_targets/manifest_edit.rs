//! Decoding an arbitrary version edit, and encoding one built from the
//! input.
//!
//! The input is the payload of one manifest record. What must hold for *any*
//! input:
//!
//! - `VersionEdit::decode` never panics (overflow checks are on in
//!   `cargo fuzz` builds) and allocates nothing sized by the input;
//! - when it decodes, the edit is well formed (levels below `NUM_LEVELS`,
//!   seqnos at most `SEQNO_MAX`, keyspace fields that pass
//!   `check_keyspace_fields`: a created keyspace's name passes
//!   `check_keyspace_name`, the default keyspace is neither created nor
//!   dropped) and re-encoding it decodes to the same edit; the re-encoding
//!   is canonical: encoding it again gives the same bytes, and it is never
//!   longer than the input;
//! - the same input, read as the fields of an edit (`built`: keyspace id,
//!   create / drop / neither, a name of allowed characters, log numbers, the
//!   id counter, a table), gives an edit that passes the checks and
//!   round-trips through `encode` and `decode` unchanged.
#![no_main]

use kevo_core::{InternalKey, KeyspaceId, SEQNO_MAX, ValueKind, check_keyspace_name};
use kevo_manifest::{NUM_LEVELS, TableMeta, VersionEdit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    decoded(data);
    built(data);
});

fn decoded(data: &[u8]) {
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
    assert_eq!(edit.check_keyspace_fields(), Ok(()));
    if let Some(name) = &edit.keyspace_created {
        assert_eq!(check_keyspace_name(name), Ok(()));
        assert_ne!(edit.keyspace, 0);
    }
    assert!(!edit.keyspace_dropped || edit.keyspace != 0);
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
}

/// Reads values from the input; past its end every byte is 0.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        first
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
}

const NAME_BYTES: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.";

fn built(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.u8();
    let mut keyspace: KeyspaceId = input.u32();
    let log_number = input.u64();
    let name_len = usize::from(input.u8()) + 1; // 1..=256, cut to 255 below
    let name: String = (0..name_len.min(255))
        .map(|i| {
            let pick = usize::from(input.u8());
            // Not starting with '.', the last of NAME_BYTES.
            let choices = if i == 0 {
                NAME_BYTES.len() - 1
            } else {
                NAME_BYTES.len()
            };
            char::from(NAME_BYTES[pick % choices])
        })
        .collect();
    let mut edit = VersionEdit::default();
    match flags % 3 {
        1 => {
            if keyspace == 0 || keyspace == KeyspaceId::MAX {
                keyspace = 1;
            }
            edit.keyspace_created = Some(name);
        }
        2 => {
            keyspace = keyspace.max(1);
            edit.keyspace_dropped = true;
        }
        _ => {}
    }
    edit.keyspace = keyspace;
    if flags & 0x04 != 0 && !edit.keyspace_dropped {
        edit.keyspace_log_number = Some(log_number);
    }
    if flags & 0x08 != 0 {
        edit.next_keyspace_id = Some(input.u32());
    }
    if flags & 0x10 != 0 {
        edit.log_number = Some(log_number.rotate_left(17));
    }
    if flags & 0x20 != 0 && !edit.keyspace_dropped {
        let seqno = input.u64() % (SEQNO_MAX + 1);
        let table = TableMeta {
            number: input.u64(),
            file_size: input.u64(),
            smallest: InternalKey::new(b"a", seqno, ValueKind::Put),
            largest: InternalKey::new(b"z", 0, ValueKind::Delete),
            smallest_seqno: 0,
            largest_seqno: seqno,
            entries: input.u64(),
            tombstones: 0,
            // Tag 14 (format 4) for some tables.
            range_tombstones: u64::from(input.u8() % 3),
        };
        edit.added
            .push((usize::from(input.u8()) % NUM_LEVELS, table));
    }
    assert_eq!(edit.check_keyspace_fields(), Ok(()), "{edit:?}");
    let bytes = edit.encode();
    assert_eq!(VersionEdit::decode(&bytes), Ok(edit));
}
