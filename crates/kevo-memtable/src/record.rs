//! One memtable entry as the skip list stores it, and the borrowed key type
//! the skip list is searched with.
//!
//! ```text
//! Record (inline in the skip-list node)     one heap buffer (`Bytes`)
//! +------------------------------+          +-----------+---------+-----------+
//! | buf: Bytes  ---------------------------> | user key  | trailer | value     |
//! | key_len: u32 (user key + 8)  |          | n bytes   | 8 bytes | m bytes   |
//! | kind: ValueKind              |          +-----------+---------+-----------+
//! +------------------------------+          |<-- internal key -->|
//! ```
//!
//! The skip list orders records by their internal key, as
//! [`kevo_core::compare_internal_keys`] does, and is searched with
//! [`InternalKeyRef`], an unsized view of an encoded internal key with the
//! same order, reached through [`Borrow`]. A lookup therefore needs no owned
//! key.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::mem::size_of;
use std::sync::atomic::AtomicUsize;

use std::sync::Mutex;

use bytes::Bytes;
use kevo_core::{ChunkArena, SeqNo, TRAILER_BYTES, ValueKind, compare_internal_keys, pack_trailer};

/// Bytes a memtable entry is charged beyond its user key, trailer and value:
/// the skip-list node's fixed part (the inline record with its `Bytes`
/// handle, length and kind, plus the node's reference count and height),
/// the node's tower at its expected height of two links, and an allowance
/// of two words: the node allocation's header and rounding, and the arena
/// space an entry leaves unused at a chunk's end.
///
/// On a 64-bit target this is 80 bytes: a 40-byte record, an 8-byte count,
/// two 8-byte links and 2 × 8 bytes of allowance. With glibc's `malloc` (an
/// 8-byte header per chunk, chunks rounded up to 16 bytes) the charge comes
/// close to the heap actually taken; `tests/accounting.rs` measures both.
pub const ENTRY_OVERHEAD_BYTES: usize = size_of::<Record>()
    + size_of::<AtomicUsize>()
    + TOWER_LINKS_EXPECTED * size_of::<usize>()
    + ALLOWANCE_WORDS * size_of::<usize>();

/// The skip list draws each node's height from a geometric distribution
/// with p = 1/2 (`crossbeam-skiplist` 0.1), so a tower holds two links on
/// average.
const TOWER_LINKS_EXPECTED: usize = 2;

/// Words of allowance per entry: the node's allocator header and rounding,
/// and the arena's waste.
const ALLOWANCE_WORDS: usize = 2;

/// One entry: its internal key and value in a single buffer.
///
/// Never modified after construction; the skip list owns it inside its node.
pub(crate) struct Record {
    /// Internal key followed by the value: a slice of an [`Arena`] chunk
    /// (or, for a large entry, a buffer of its own).
    buf: Bytes,
    /// Length of the internal key (user key plus trailer) at the front of
    /// `buf`. A `u32` keeps the record at 40 bytes; user keys are far
    /// shorter than 4 GiB (`KEY_BYTES_MAX` is 64 KiB).
    key_len: u32,
    kind: ValueKind,
}

impl Record {
    /// Encodes an entry into `arena`. A tombstone stores no value.
    ///
    /// # Panics
    /// If the internal key (user key + 8) is 4 GiB or longer; in debug
    /// builds, if `seqno > SEQNO_MAX`.
    pub(crate) fn new(
        user_key: &[u8],
        seqno: SeqNo,
        kind: ValueKind,
        value: &[u8],
        arena: &Arena,
    ) -> Self {
        let value = match kind {
            ValueKind::Put => value,
            ValueKind::Delete => &[],
        };
        let key_len = user_key.len() + TRAILER_BYTES;
        let Ok(key_len_u32) = u32::try_from(key_len) else {
            panic!(
                "user key of {} bytes is too long for a memtable",
                user_key.len()
            );
        };
        let trailer = pack_trailer(seqno, kind as u8).to_le_bytes();
        Record {
            buf: arena.copy(&[user_key, &trailer, value]),
            key_len: key_len_u32,
            kind,
        }
    }

    fn key_len(&self) -> usize {
        self.key_len as usize
    }

    /// The encoded internal key (user key, then trailer).
    pub(crate) fn internal_key(&self) -> &[u8] {
        &self.buf[..self.key_len()]
    }

    /// The user key.
    pub(crate) fn user_key(&self) -> &[u8] {
        &self.buf[..self.key_len() - TRAILER_BYTES]
    }

    /// The entry's seqno.
    pub(crate) fn seqno(&self) -> SeqNo {
        let trailer = &self.buf[self.key_len() - TRAILER_BYTES..self.key_len()];
        let mut bytes = [0u8; TRAILER_BYTES];
        bytes.copy_from_slice(trailer);
        u64::from_le_bytes(bytes) >> 8
    }

    /// The entry's kind.
    pub(crate) fn kind(&self) -> ValueKind {
        self.kind
    }

    /// The value (empty for a tombstone).
    pub(crate) fn value(&self) -> &[u8] {
        &self.buf[self.key_len()..]
    }

    /// The value, copied into its own buffer: a slice of the entry's buffer
    /// would keep a whole arena chunk alive for as long as the caller keeps
    /// the value.
    pub(crate) fn value_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.value())
    }

    /// Bytes the memtable accounts for this entry.
    pub(crate) fn charge(&self) -> usize {
        self.buf.len() + ENTRY_OVERHEAD_BYTES
    }

    /// Where the buffer lives; tells two records apart without comparing
    /// contents.
    pub(crate) fn buf_ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }
}

/// Bytes of one arena chunk.
pub(crate) const ARENA_CHUNK_BYTES: usize = 64 * 1024;

/// Entries longer than this get a buffer of their own instead of a share of
/// a chunk, so that a chunk is never mostly wasted by an entry that did not
/// fit at its end.
const ARENA_ENTRY_MAX: usize = ARENA_CHUNK_BYTES / 8;

/// Where a memtable's entry buffers are carved from: a [`ChunkArena`] of
/// [`ARENA_CHUNK_BYTES`] chunks, behind a lock (inserts may be concurrent).
///
/// One allocation per few hundred small entries instead of one each: the
/// thread that frees a flushed memtable then frees a few chunks instead of
/// every entry's buffer, and no longer holds the allocator's lock against
/// the writer that is filling the next memtable.
#[derive(Debug)]
pub(crate) struct Arena {
    chunks: Mutex<ChunkArena>,
}

impl Default for Arena {
    fn default() -> Self {
        Arena {
            chunks: Mutex::new(ChunkArena::new(ARENA_CHUNK_BYTES, ARENA_ENTRY_MAX)),
        }
    }
}

impl Arena {
    /// `parts`, concatenated into one buffer of exactly their length.
    pub(crate) fn copy(&self, parts: &[&[u8]]) -> Bytes {
        // A panic while the lock is held cannot leave the chunk torn: it
        // only ever holds whole entries.
        self.chunks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .copy(parts)
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Record {}

impl PartialOrd for Record {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Record {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal_keys(self.internal_key(), other.internal_key())
    }
}

impl Borrow<InternalKeyRef> for Record {
    fn borrow(&self) -> &InternalKeyRef {
        InternalKeyRef::new(self.internal_key())
    }
}

/// A borrowed, encoded internal key, ordered as
/// [`kevo_core::compare_internal_keys`] orders it.
///
/// `Record: Borrow<InternalKeyRef>` lets the skip list be searched with a
/// `&[u8]` target. `Borrow` requires both types to order alike; they do,
/// because both compare the same bytes with the same function.
#[repr(transparent)]
pub(crate) struct InternalKeyRef([u8]);

impl InternalKeyRef {
    /// Views `bytes` as an internal key.
    pub(crate) fn new(bytes: &[u8]) -> &InternalKeyRef {
        let ptr = std::ptr::from_ref::<[u8]>(bytes) as *const InternalKeyRef;
        // SAFETY: `InternalKeyRef` is `#[repr(transparent)]` over `[u8]`, so
        // the two unsized types have the same layout, alignment and pointer
        // metadata (the slice length): casting the fat pointer keeps both
        // the address and the length. The result borrows `bytes` for the
        // same lifetime, so it cannot outlive or alias mutably what it views.
        unsafe { &*ptr }
    }

    /// The encoded bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for InternalKeyRef {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for InternalKeyRef {}

impl PartialOrd for InternalKeyRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InternalKeyRef {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal_keys(self.as_bytes(), other.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::InternalKey;

    #[test]
    fn record_holds_key_and_value_in_one_exact_buffer() {
        let record = Record::new(b"key", 7, ValueKind::Put, b"value", &Arena::default());
        assert_eq!(
            record.internal_key(),
            InternalKey::new(b"key", 7, ValueKind::Put).as_bytes()
        );
        assert_eq!(record.user_key(), b"key");
        assert_eq!(record.value(), b"value");
        assert_eq!(
            record.charge(),
            3 + TRAILER_BYTES + 5 + ENTRY_OVERHEAD_BYTES
        );
        // The value sits in the same buffer, right after the key; a caller
        // gets a copy of its own.
        assert_eq!(
            record.value().as_ptr(),
            record.buf_ptr().wrapping_add(3 + TRAILER_BYTES)
        );
        let value = record.value_bytes();
        assert_eq!(value, &b"value"[..]);
        assert_ne!(value.as_ptr(), record.value().as_ptr());
    }

    #[test]
    fn arena_packs_small_entries_into_shared_chunks_and_large_ones_alone() {
        let arena = Arena::default();
        let entries: Vec<(Vec<u8>, Bytes)> = (0..3000u32)
            .map(|i| {
                // Sizes from 1 to ~9 KiB: some straddle a chunk's end, some
                // are over ARENA_ENTRY_MAX.
                let len = 1 + (i as usize * 7919) % (ARENA_ENTRY_MAX + 1024);
                let data: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
                let (a, b) = data.split_at(len / 3);
                let buf = arena.copy(&[a, b]);
                (data, buf)
            })
            .collect();
        let mut shared = 0;
        for (i, (data, buf)) in entries.iter().enumerate() {
            assert_eq!(&buf[..], &data[..], "entry {i}");
            if let Some((_, next)) = entries.get(i + 1)
                && buf.as_ptr().wrapping_add(buf.len()) == next.as_ptr()
            {
                assert!(data.len() <= ARENA_ENTRY_MAX);
                shared += 1;
            }
        }
        // Most small entries follow the previous one in the same chunk.
        assert!(shared > 1000, "{shared}");
        drop(arena);
        // The buffers outlive the arena.
        assert!(entries.iter().all(|(data, buf)| buf[..] == data[..]));
    }

    #[test]
    fn tombstone_stores_no_value() {
        let record = Record::new(b"key", 7, ValueKind::Delete, b"ignored", &Arena::default());
        assert_eq!(record.value(), b"");
        assert_eq!(record.kind(), ValueKind::Delete);
        assert_eq!(record.charge(), 3 + TRAILER_BYTES + ENTRY_OVERHEAD_BYTES);
    }

    #[test]
    fn internal_key_ref_views_the_same_bytes() {
        let encoded = InternalKey::new(b"abc", 1, ValueKind::Put);
        let view = InternalKeyRef::new(encoded.as_bytes());
        assert_eq!(view.as_bytes(), encoded.as_bytes());
        assert_eq!(view.as_bytes().as_ptr(), encoded.as_bytes().as_ptr());
        assert_eq!(view.as_bytes().len(), encoded.as_bytes().len());
        assert_eq!(std::mem::size_of_val(view), encoded.as_bytes().len());
    }

    #[test]
    fn borrowed_key_orders_like_the_record() {
        let keys: [(&[u8], SeqNo, ValueKind); 6] = [
            (b"", 3, ValueKind::Put),
            (b"a", 9, ValueKind::Put),
            (b"a", 9, ValueKind::Delete),
            (b"a", 2, ValueKind::Put),
            (b"ab", 1, ValueKind::Put),
            (b"b", 0, ValueKind::Delete),
        ];
        let arena = Arena::default();
        let records: Vec<Record> = keys
            .iter()
            .map(|&(k, s, kind)| Record::new(k, s, kind, b"v", &arena))
            .collect();
        for (i, a) in records.iter().enumerate() {
            for (j, b) in records.iter().enumerate() {
                let by_record = a.cmp(b);
                let by_ref = Borrow::<InternalKeyRef>::borrow(a).cmp(b.borrow());
                assert_eq!(by_record, by_ref, "{i} vs {j}");
                // The table above is in internal-key order.
                assert_eq!(by_record, i.cmp(&j), "{i} vs {j}");
            }
        }
    }

    #[test]
    fn entry_overhead_is_a_node_with_two_links_and_two_allocations() {
        #[cfg(target_pointer_width = "64")]
        assert_eq!(ENTRY_OVERHEAD_BYTES, 48 + 2 * 8 + 2 * 8);
        assert_eq!(size_of::<Record>(), size_of::<Bytes>() + size_of::<u64>());
    }
}
