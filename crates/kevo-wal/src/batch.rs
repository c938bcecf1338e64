//! [`Batch`]: the unit the log stores and replays all-or-nothing.
//!
//! ```text
//! batch   = seqno u64 LE | count u32 LE | entry * count
//! entry   = tag u8 | (tag & 0x80 only) keyspace varint32
//!           | key_len varint32 | key
//!           | (Put only) value_len varint32 | value
//!           | (RangeDelete only) end_len varint32 | end
//! tag     = kind                    default keyspace: no keyspace field (format 1's bytes)
//!         | kind | 0x80             any other keyspace: the field follows, never 0
//! kind    = 1 Delete | 2 Put        (ValueKind)
//!         | 3 RangeDelete           (segment format 3): keys in [key, end) deleted
//! ```
//!
//! Entry `i` of a batch has sequence number `seqno + i`, whatever its
//! keyspace (one seqno sequence across keyspaces). An entry has exactly one
//! encoding: the default keyspace is never written as a keyspace field, so a
//! batch of the default keyspace only is byte for byte a format-1 batch.
//! See `docs/format/wal.md`.

use kevo_core::{
    DEFAULT_KEYSPACE, KEY_BYTES_MAX, KeyspaceId, RANGE_DELETE_KIND, Reader, SEQNO_MAX, SeqNo,
    VALUE_BYTES_MAX, ValueKind, put_varint32,
};

use crate::format::BATCH_BYTES_MAX;

/// Bytes in a batch's header: seqno (8) and entry count (4).
pub const BATCH_HEADER_BYTES: usize = 12;

/// The capacity a new batch starts with.
const BATCH_INITIAL_BYTES: usize = 256;

/// Set in an entry's tag when a keyspace field follows it (segment format
/// 2): the low bits are the kind. Never set for the default keyspace.
pub(crate) const KEYSPACE_TAG_BIT: u8 = 0x80;

const _: () = assert!(ValueKind::Put as u8 & KEYSPACE_TAG_BIT == 0);
const _: () = assert!(ValueKind::Delete as u8 & KEYSPACE_TAG_BIT == 0);
const _: () = assert!(RANGE_DELETE_KIND & KEYSPACE_TAG_BIT == 0);

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A put of `key` to `value`.
    Put,
    /// A delete of `key`.
    Delete,
    /// A delete of every key in `[key, value)`: `value` holds the end key.
    RangeDelete,
}

impl EntryKind {
    /// The point kind ([`ValueKind`]) of a put or delete; `None` for a
    /// range delete.
    pub fn value_kind(self) -> Option<ValueKind> {
        match self {
            EntryKind::Put => Some(ValueKind::Put),
            EntryKind::Delete => Some(ValueKind::Delete),
            EntryKind::RangeDelete => None,
        }
    }

    fn tag(self) -> u8 {
        match self {
            EntryKind::Put => ValueKind::Put as u8,
            EntryKind::Delete => ValueKind::Delete as u8,
            EntryKind::RangeDelete => RANGE_DELETE_KIND,
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            RANGE_DELETE_KIND => Some(EntryKind::RangeDelete),
            tag => match ValueKind::from_u8(tag)? {
                ValueKind::Put => Some(EntryKind::Put),
                ValueKind::Delete => Some(EntryKind::Delete),
            },
        }
    }
}

/// What a segment's format lets its batches hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowed {
    /// Entries of keyspaces other than the default one (format 2 on).
    pub(crate) keyspaces: bool,
    /// Range deletes (format 3 on).
    pub(crate) range_deletes: bool,
}

impl Allowed {
    /// Everything this code writes.
    pub(crate) const ALL: Allowed = Allowed {
        keyspaces: true,
        range_deletes: true,
    };
}

/// An ordered list of puts and deletes applied atomically, each in a
/// keyspace ([`Batch::put`] and [`Batch::delete`] write to the default one).
///
/// Building a batch never fails; limits (key and value sizes, total size) are
/// checked when it is appended to the log.
#[derive(Clone, PartialEq, Eq)]
pub struct Batch {
    rep: Vec<u8>,
    count: u32,
    oversized: bool,
    /// Some entry names a keyspace other than the default one.
    other_keyspaces: bool,
    /// Some entry is a range delete.
    range_deletes: bool,
}

/// One entry of a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry<'a> {
    /// The keyspace the entry belongs to ([`DEFAULT_KEYSPACE`] for entries
    /// added by [`Batch::put`] and [`Batch::delete`], and for every entry of
    /// a format-1 segment).
    pub keyspace: KeyspaceId,
    /// Put, delete or range delete.
    pub kind: EntryKind,
    /// The user key (a range delete's first key).
    pub key: &'a [u8],
    /// The value (empty for deletes; a range delete's end key, exclusive).
    pub value: &'a [u8],
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch with sequence number 0.
    pub fn new() -> Self {
        // Room for a few small entries up front: a put of a short key and
        // value then costs one allocation instead of a chain of regrowths.
        let mut rep = Vec::with_capacity(BATCH_INITIAL_BYTES);
        rep.resize(BATCH_HEADER_BYTES, 0);
        Batch {
            rep,
            count: 0,
            oversized: false,
            other_keyspaces: false,
            range_deletes: false,
        }
    }

    /// Adds a put of `key` to `value` in the default keyspace.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.put_in(DEFAULT_KEYSPACE, key, value);
    }

    /// Adds a delete of `key` in the default keyspace.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.delete_in(DEFAULT_KEYSPACE, key);
    }

    /// Adds a put of `key` to `value` in `keyspace`. With
    /// [`DEFAULT_KEYSPACE`] it is [`Batch::put`], byte for byte.
    pub fn put_in(&mut self, keyspace: KeyspaceId, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.push(EntryKind::Put, keyspace, key);
        self.push_bytes(value, VALUE_BYTES_MAX);
    }

    /// Adds a delete of `key` in `keyspace`. With [`DEFAULT_KEYSPACE`] it is
    /// [`Batch::delete`], byte for byte.
    pub fn delete_in(&mut self, keyspace: KeyspaceId, key: impl AsRef<[u8]>) {
        self.push(EntryKind::Delete, keyspace, key.as_ref());
    }

    /// Adds a delete of every key in `[start, end)` of the default
    /// keyspace: one entry (one seqno) whatever the number of keys it
    /// covers. An empty range (`start >= end`) is kept and deletes nothing.
    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) {
        self.delete_range_in(DEFAULT_KEYSPACE, start, end);
    }

    /// Adds a delete of every key in `[start, end)` of `keyspace` (see
    /// [`Batch::delete_range`]).
    pub fn delete_range_in(
        &mut self,
        keyspace: KeyspaceId,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
    ) {
        self.push(EntryKind::RangeDelete, keyspace, start.as_ref());
        self.push_bytes(end.as_ref(), KEY_BYTES_MAX);
        self.range_deletes = true;
    }

    /// Whether some entry is a range delete.
    pub fn has_range_deletes(&self) -> bool {
        self.range_deletes
    }

    /// Appends an entry's tag, keyspace (unless the default) and key.
    fn push(&mut self, kind: EntryKind, keyspace: KeyspaceId, key: &[u8]) {
        self.count = self.count.saturating_add(1);
        self.rep[8..12].copy_from_slice(&self.count.to_le_bytes());
        if keyspace == DEFAULT_KEYSPACE {
            self.rep.push(kind.tag());
        } else {
            self.other_keyspaces = true;
            self.rep.push(kind.tag() | KEYSPACE_TAG_BIT);
            put_varint32(&mut self.rep, keyspace);
        }
        self.push_bytes(key, KEY_BYTES_MAX);
    }

    fn push_bytes(&mut self, bytes: &[u8], max: usize) {
        match u32::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= max => {
                put_varint32(&mut self.rep, len);
                self.rep.extend_from_slice(bytes);
            }
            _ => {
                // Keep the encoding well-formed but remember the batch is unusable.
                self.oversized = true;
                put_varint32(&mut self.rep, 0);
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether some entry names a keyspace other than the default one
    /// (known without reading the entries: a writer's fast path).
    pub fn has_other_keyspaces(&self) -> bool {
        self.other_keyspaces
    }

    /// Sequence number of the first entry.
    pub fn seqno(&self) -> SeqNo {
        let mut r = Reader::new(&self.rep);
        r.u64_le().unwrap_or(0)
    }

    /// Sets the sequence number of the first entry.
    pub fn set_seqno(&mut self, seqno: SeqNo) {
        self.rep[0..8].copy_from_slice(&seqno.to_le_bytes());
    }

    /// Removes every entry (keeping the allocation) and resets the seqno.
    pub fn clear(&mut self) {
        self.rep.clear();
        self.rep.resize(BATCH_HEADER_BYTES, 0);
        self.count = 0;
        self.oversized = false;
        self.other_keyspaces = false;
        self.range_deletes = false;
    }

    /// Appends every entry of `other` after this batch's entries (the group
    /// leader merges waiting batches this way). Each entry keeps its key,
    /// value and keyspace; its seqno follows from its new position.
    pub fn extend(&mut self, other: &Batch) {
        self.count = self.count.saturating_add(other.count);
        self.rep[8..12].copy_from_slice(&self.count.to_le_bytes());
        self.rep.extend_from_slice(&other.rep[BATCH_HEADER_BYTES..]);
        self.oversized |= other.oversized;
        self.other_keyspaces |= other.other_keyspaces;
        self.range_deletes |= other.range_deletes;
    }

    /// The encoded batch, as stored in the log.
    pub fn as_bytes(&self) -> &[u8] {
        &self.rep
    }

    /// Checks the limits: no key over [`KEY_BYTES_MAX`], no value over
    /// [`VALUE_BYTES_MAX`], the whole batch (keyspace fields included)
    /// within [`BATCH_BYTES_MAX`]. Every keyspace id is valid here: which
    /// keyspaces exist is the owner's business.
    ///
    /// # Errors
    /// A description of the first limit broken.
    pub fn check_limits(&self) -> Result<(), String> {
        if self.oversized {
            return Err(format!(
                "a key is longer than {KEY_BYTES_MAX} bytes or a value longer than {VALUE_BYTES_MAX} bytes"
            ));
        }
        if self.rep.len() > BATCH_BYTES_MAX {
            return Err(format!(
                "batch of {} bytes exceeds the maximum of {BATCH_BYTES_MAX} bytes",
                self.rep.len()
            ));
        }
        if self.count == u32::MAX {
            return Err("batch has too many entries".to_string());
        }
        check_seqnos(self.seqno(), self.count)
    }

    /// The sequence number of the last entry (the first one's for an empty
    /// batch).
    pub fn last_seqno(&self) -> SeqNo {
        self.seqno()
            .saturating_add(u64::from(self.count).saturating_sub(1))
    }

    /// The entries in order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            reader: Reader::new(&self.rep[BATCH_HEADER_BYTES..]),
            left: self.count,
        }
    }

    /// Decodes and fully validates an encoded batch (of segment format 2:
    /// entries of any keyspace).
    ///
    /// # Errors
    /// A description of the first defect: truncation, an unknown kind, a
    /// keyspace field that is truncated, overlong or holds the default
    /// keyspace, a length over its maximum, a count that does not match,
    /// trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Batch, String> {
        Self::decode_format(bytes, Allowed::ALL)
    }

    /// [`Batch::decode`] for a segment of a given format: what the format
    /// does not allow (a keyspace field before format 2, a range delete
    /// before format 3) is a defect, as it was for that format's readers.
    pub(crate) fn decode_format(bytes: &[u8], allowed: Allowed) -> Result<Batch, String> {
        if bytes.len() > BATCH_BYTES_MAX {
            return Err(format!(
                "batch of {} bytes exceeds the maximum",
                bytes.len()
            ));
        }
        let mut r = Reader::new(bytes);
        let seqno = r.u64_le().ok_or("batch header is truncated")?;
        let count = r.u32_le().ok_or("batch header is truncated")?;
        check_seqnos(seqno, count)?;
        let mut other_keyspaces = false;
        let mut range_deletes = false;
        for i in 0..count {
            let tag = r.u8().ok_or_else(|| format!("entry {i} is truncated"))?;
            let (kind, has_keyspace) = split_tag(tag)
                .ok_or_else(|| format!("entry {i} has unknown kind {}", tag & !KEYSPACE_TAG_BIT))?;
            if has_keyspace {
                if !allowed.keyspaces {
                    return Err(format!(
                        "entry {i} names a keyspace, which a format-1 segment cannot hold"
                    ));
                }
                let keyspace = r
                    .varint32()
                    .ok_or_else(|| format!("entry {i} has a truncated or oversized keyspace"))?;
                if keyspace == DEFAULT_KEYSPACE {
                    return Err(format!(
                        "entry {i} writes the default keyspace explicitly (it has no keyspace field)"
                    ));
                }
                other_keyspaces = true;
            }
            r.length_prefixed(KEY_BYTES_MAX)
                .ok_or_else(|| format!("entry {i} has a truncated or oversized key"))?;
            match kind {
                EntryKind::Put => {
                    r.length_prefixed(VALUE_BYTES_MAX)
                        .ok_or_else(|| format!("entry {i} has a truncated or oversized value"))?;
                }
                EntryKind::Delete => {}
                EntryKind::RangeDelete => {
                    if !allowed.range_deletes {
                        return Err(format!(
                            "entry {i} is a range delete, which a segment of this format cannot hold"
                        ));
                    }
                    r.length_prefixed(KEY_BYTES_MAX).ok_or_else(|| {
                        format!("entry {i} has a truncated or oversized range end")
                    })?;
                    range_deletes = true;
                }
            }
        }
        if !r.is_empty() {
            return Err(format!(
                "{} bytes follow the last of {count} entries",
                r.remaining()
            ));
        }
        Ok(Batch {
            rep: bytes.to_vec(),
            count,
            oversized: false,
            other_keyspaces,
            range_deletes,
        })
    }
}

/// The kind in an entry's tag and whether a keyspace field follows it.
fn split_tag(tag: u8) -> Option<(EntryKind, bool)> {
    let kind = EntryKind::from_tag(tag & !KEYSPACE_TAG_BIT)?;
    Some((kind, tag & KEYSPACE_TAG_BIT != 0))
}

/// Every entry's seqno must fit in the 56 bits of a key trailer.
fn check_seqnos(first: SeqNo, count: u32) -> Result<(), String> {
    let last = first.checked_add(u64::from(count.saturating_sub(1)));
    match last {
        Some(last) if last <= SEQNO_MAX => Ok(()),
        _ => Err(format!(
            "seqnos {first}.. of {count} entries exceed the maximum {SEQNO_MAX}"
        )),
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("seqno", &self.seqno())
            .field("count", &self.count)
            .field("bytes", &self.rep.len())
            .finish()
    }
}

/// Iterator over a batch's entries, from [`Batch::iter`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    reader: Reader<'a>,
    left: u32,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchEntry<'a>;

    fn next(&mut self) -> Option<BatchEntry<'a>> {
        if self.left == 0 {
            return None;
        }
        // A batch is well-formed by construction (built by `put`/`delete` or
        // validated by `decode`), so these reads cannot fail; stop if they do.
        let (kind, has_keyspace) = split_tag(self.reader.u8()?)?;
        let keyspace = if has_keyspace {
            self.reader.varint32()?
        } else {
            DEFAULT_KEYSPACE
        };
        let key = self.reader.length_prefixed(KEY_BYTES_MAX)?;
        let value = match kind {
            EntryKind::Put => self.reader.length_prefixed(VALUE_BYTES_MAX)?,
            EntryKind::Delete => &[],
            EntryKind::RangeDelete => self.reader.length_prefixed(KEY_BYTES_MAX)?,
        };
        self.left -= 1;
        Some(BatchEntry {
            keyspace,
            kind,
            key,
            value,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FORMAT_1: Allowed = Allowed {
        keyspaces: false,
        range_deletes: false,
    };
    const FORMAT_2: Allowed = Allowed {
        keyspaces: true,
        range_deletes: false,
    };

    #[test]
    fn range_deletes_round_trip_and_need_format_3() {
        let mut batch = Batch::new();
        batch.put("a", "1");
        assert!(!batch.has_range_deletes());
        batch.delete_range("b", "m");
        batch.delete_range_in(4, "", "z");
        batch.set_seqno(10);
        assert!(batch.has_range_deletes());
        let decoded = Batch::decode(batch.as_bytes()).unwrap();
        assert_eq!(decoded, batch);
        let entries: Vec<_> = decoded
            .iter()
            .map(|e| (e.keyspace, e.kind, e.key, e.value))
            .collect();
        assert_eq!(
            entries,
            vec![
                (DEFAULT_KEYSPACE, EntryKind::Put, &b"a"[..], &b"1"[..]),
                (
                    DEFAULT_KEYSPACE,
                    EntryKind::RangeDelete,
                    &b"b"[..],
                    &b"m"[..]
                ),
                (4, EntryKind::RangeDelete, &b""[..], &b"z"[..]),
            ]
        );
        assert_eq!(EntryKind::RangeDelete.value_kind(), None);
        let e = Batch::decode_format(batch.as_bytes(), FORMAT_2).unwrap_err();
        assert!(e.contains("range delete"), "{e}");
        // A truncated end is a defect, not a short read.
        let bytes = batch.as_bytes();
        assert!(Batch::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut merged = Batch::new();
        merged.extend(&batch);
        assert!(merged.has_range_deletes());
        merged.clear();
        assert!(!merged.has_range_deletes());
    }

    #[test]
    fn batch_round_trips_through_its_encoding() {
        let mut batch = Batch::new();
        batch.put(b"k1", b"v1");
        batch.delete(b"k2");
        batch.put(b"", b"");
        batch.set_seqno(77);
        let decoded = Batch::decode(batch.as_bytes()).unwrap();
        assert_eq!(decoded, batch);
        assert_eq!(decoded.seqno(), 77);
        let entries: Vec<_> = decoded.iter().collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[1],
            BatchEntry {
                keyspace: DEFAULT_KEYSPACE,
                kind: EntryKind::Delete,
                key: b"k2",
                value: b""
            }
        );
    }

    #[test]
    fn a_batch_knows_whether_it_names_other_keyspaces() {
        let mut batch = Batch::new();
        batch.put("a", "1");
        batch.put_in(DEFAULT_KEYSPACE, "b", "2");
        assert!(!batch.has_other_keyspaces());
        assert!(
            !Batch::decode(batch.as_bytes())
                .unwrap()
                .has_other_keyspaces()
        );
        let mut other = Batch::new();
        other.delete_in(3, "c");
        assert!(other.has_other_keyspaces());
        assert!(
            Batch::decode(other.as_bytes())
                .unwrap()
                .has_other_keyspaces()
        );
        batch.extend(&other);
        assert!(batch.has_other_keyspaces());
        batch.clear();
        assert!(!batch.has_other_keyspaces());
    }

    #[test]
    fn extend_appends_entries_and_counts() {
        let mut a = Batch::new();
        a.put("a", "1");
        let mut b = Batch::new();
        b.delete("b");
        b.put("c", "3");
        a.extend(&b);
        assert_eq!(a.len(), 3);
        let keys: Vec<_> = a.iter().map(|e| e.key.to_vec()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(Batch::decode(a.as_bytes()).is_ok());
    }

    #[test]
    fn oversized_key_fails_the_limit_check() {
        let mut batch = Batch::new();
        batch.put(vec![0u8; KEY_BYTES_MAX + 1], b"v");
        assert!(batch.check_limits().is_err());
        batch.clear();
        assert!(batch.check_limits().is_ok());
    }

    #[test]
    fn seqnos_past_56_bits_are_rejected() {
        let mut batch = Batch::new();
        batch.put("a", "1");
        batch.put("b", "2");
        batch.set_seqno(SEQNO_MAX);
        assert!(batch.check_limits().is_err());
        assert!(Batch::decode(batch.as_bytes()).is_err());
        batch.set_seqno(u64::MAX);
        assert!(batch.check_limits().is_err());
        batch.set_seqno(SEQNO_MAX - 1);
        assert!(batch.check_limits().is_ok());
        assert_eq!(batch.last_seqno(), SEQNO_MAX);
    }

    #[test]
    fn decode_rejects_trailing_bytes_and_bad_counts() {
        let mut batch = Batch::new();
        batch.put("k", "v");
        let mut bytes = batch.as_bytes().to_vec();
        bytes.push(0);
        assert!(Batch::decode(&bytes).is_err());
        let mut wrong_count = batch.as_bytes().to_vec();
        wrong_count[8] = 2;
        assert!(Batch::decode(&wrong_count).is_err());
        assert!(Batch::decode(&batch.as_bytes()[..5]).is_err());
    }

    /// Rebuilds a batch from its entries with the public API.
    fn rebuild(batch: &Batch) -> Batch {
        let mut rebuilt = Batch::new();
        rebuilt.set_seqno(batch.seqno());
        for e in batch.iter() {
            match e.kind {
                EntryKind::Put => rebuilt.put_in(e.keyspace, e.key, e.value),
                EntryKind::Delete => rebuilt.delete_in(e.keyspace, e.key),
                EntryKind::RangeDelete => rebuilt.delete_range_in(e.keyspace, e.key, e.value),
            }
        }
        rebuilt
    }

    /// A batch with one entry whose tag and following bytes are `entry`.
    fn one_entry(entry: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; BATCH_HEADER_BYTES];
        bytes[8] = 1;
        bytes.extend_from_slice(entry);
        bytes
    }

    #[test]
    fn default_keyspace_batch_keeps_the_format_1_bytes() {
        let mut batch = Batch::new();
        batch.set_seqno(5);
        batch.put("a", "b");
        batch.delete("c");
        let expected: &[u8] = &[
            0x05, 0, 0, 0, 0, 0, 0, 0, // seqno 5
            0x02, 0, 0, 0, // 2 entries
            0x02, 0x01, b'a', 0x01, b'b', // Put "a" "b"
            0x01, 0x01, b'c', // Delete "c"
        ];
        assert_eq!(batch.as_bytes(), expected);
        let mut explicit = Batch::new();
        explicit.set_seqno(5);
        explicit.put_in(DEFAULT_KEYSPACE, "a", "b");
        explicit.delete_in(DEFAULT_KEYSPACE, "c");
        assert_eq!(explicit.as_bytes(), expected);
        assert!(
            Batch::decode(expected)
                .unwrap()
                .iter()
                .all(|e| e.keyspace == DEFAULT_KEYSPACE)
        );
    }

    #[test]
    fn other_keyspaces_set_the_tag_bit_and_follow_it_with_the_keyspace() {
        let mut batch = Batch::new();
        batch.set_seqno(1);
        batch.put_in(300, "a", "b");
        batch.delete_in(1, "c");
        batch.put("d", "");
        let expected: &[u8] = &[
            0x01, 0, 0, 0, 0, 0, 0, 0, // seqno 1
            0x03, 0, 0, 0, // 3 entries
            0x82, 0xac, 0x02, 0x01, b'a', 0x01, b'b', // Put in keyspace 300
            0x81, 0x01, 0x01, b'c', // Delete in keyspace 1
            0x02, 0x01, b'd', 0x00, // Put in the default keyspace
        ];
        assert_eq!(batch.as_bytes(), expected);
    }

    #[test]
    fn mixed_keyspace_batch_round_trips_through_its_encoding() {
        let mut batch = Batch::new();
        batch.set_seqno(40);
        batch.put("k", "v0");
        batch.put_in(7, "k", "v7");
        batch.delete_in(u32::MAX, "k");
        batch.delete("gone");
        batch.put_in(128, "", "");
        let decoded = Batch::decode(batch.as_bytes()).unwrap();
        assert_eq!(decoded, batch);
        let entries: Vec<_> = decoded
            .iter()
            .map(|e| (e.keyspace, e.kind, e.key, e.value))
            .collect();
        assert_eq!(
            entries,
            vec![
                (DEFAULT_KEYSPACE, EntryKind::Put, &b"k"[..], &b"v0"[..]),
                (7, EntryKind::Put, b"k", b"v7"),
                (u32::MAX, EntryKind::Delete, b"k", b""),
                (DEFAULT_KEYSPACE, EntryKind::Delete, b"gone", b""),
                (128, EntryKind::Put, b"", b""),
            ]
        );
        // One seqno sequence across keyspaces.
        assert_eq!(decoded.len(), 5);
        assert_eq!(decoded.last_seqno(), 44);
        assert!(decoded.check_limits().is_ok());
    }

    #[test]
    fn decode_rejects_an_explicit_default_keyspace() {
        // Put, keyspace field 0: the default keyspace has no field.
        let bytes = one_entry(&[0x82, 0x00, 0x01, b'a', 0x01, b'b']);
        let err = Batch::decode(&bytes).unwrap_err();
        assert!(err.contains("default keyspace"), "{err}");
        // Also when the 0 is spelled with a redundant continuation byte.
        assert!(Batch::decode(&one_entry(&[0x81, 0x80, 0x00, 0x01, b'a'])).is_err());
        // The same entry without the field is fine.
        assert!(Batch::decode(&one_entry(&[0x02, 0x01, b'a', 0x01, b'b'])).is_ok());
    }

    #[test]
    fn decode_rejects_a_truncated_keyspace() {
        // The tag promises a keyspace and the batch ends.
        assert!(Batch::decode(&one_entry(&[0x82])).is_err());
        // The varint's continuation bit is set on the last byte.
        assert!(Batch::decode(&one_entry(&[0x82, 0xac])).is_err());
        assert!(Batch::decode(&one_entry(&[0x81, 0xff, 0xff])).is_err());
        // A keyspace, then no key.
        assert!(Batch::decode(&one_entry(&[0x81, 0x05])).is_err());
    }

    #[test]
    fn decode_rejects_an_oversized_keyspace_varint() {
        // 2^32: one past u32::MAX.
        let bytes = one_entry(&[0x81, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01, b'a']);
        assert!(Batch::decode(&bytes).is_err());
        // Six bytes: longer than any varint32.
        let bytes = one_entry(&[0x81, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01, b'a']);
        assert!(Batch::decode(&bytes).is_err());
        // u32::MAX itself is a valid keyspace.
        let bytes = one_entry(&[0x81, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, b'a']);
        let batch = Batch::decode(&bytes).unwrap();
        assert_eq!(batch.iter().next().map(|e| e.keyspace), Some(u32::MAX));
    }

    #[test]
    fn decode_rejects_unknown_kinds_with_or_without_the_keyspace_bit() {
        for tag in [0x00, 0x04, 0x7f, 0x80, 0x84, 0xff] {
            let bytes = one_entry(&[tag, 0x01, 0x01, b'a', 0x01, b'b']);
            assert!(Batch::decode(&bytes).is_err(), "tag {tag:#04x}");
        }
    }

    #[test]
    fn format_1_decoding_refuses_keyspace_entries() {
        let mut batch = Batch::new();
        batch.put("a", "1");
        assert!(Batch::decode_format(batch.as_bytes(), FORMAT_1).is_ok());
        batch.put_in(2, "b", "2");
        assert!(Batch::decode_format(batch.as_bytes(), FORMAT_1).is_err());
        assert!(Batch::decode_format(batch.as_bytes(), Allowed::ALL).is_ok());
    }

    #[test]
    fn extend_keeps_each_entrys_keyspace() {
        let mut a = Batch::new();
        a.set_seqno(10);
        a.put_in(3, "a", "1");
        a.delete("b");
        let mut b = Batch::new();
        b.set_seqno(99);
        b.delete_in(4, "c");
        b.put("d", "4");
        b.put_in(3, "e", "5");
        a.extend(&b);
        let got: Vec<_> = a.iter().map(|e| (e.keyspace, e.key.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (3, b"a".to_vec()),
                (DEFAULT_KEYSPACE, b"b".to_vec()),
                (4, b"c".to_vec()),
                (DEFAULT_KEYSPACE, b"d".to_vec()),
                (3, b"e".to_vec()),
            ]
        );
        assert_eq!(a.seqno(), 10);
        assert_eq!(a.last_seqno(), 14);
        assert_eq!(Batch::decode(a.as_bytes()).unwrap(), a);
    }

    #[test]
    fn oversized_key_in_another_keyspace_fails_the_limit_check() {
        let mut batch = Batch::new();
        batch.put_in(9, vec![0u8; KEY_BYTES_MAX + 1], b"v");
        assert!(batch.check_limits().is_err());
        // The encoding stays well-formed and keeps the keyspace.
        let e = batch.iter().next().unwrap();
        assert_eq!((e.keyspace, e.key.len()), (9, 0));
        let mut batch = Batch::new();
        batch.delete_in(9, vec![0u8; KEY_BYTES_MAX]);
        assert!(batch.check_limits().is_ok());
    }

    /// One entry of the model: keyspace, kind, key, value.
    type ModelEntry = (KeyspaceId, EntryKind, Vec<u8>, Vec<u8>);

    fn keyspace() -> impl Strategy<Value = KeyspaceId> {
        prop_oneof![
            Just(DEFAULT_KEYSPACE),
            1..200u32,
            Just(127u32),
            Just(128u32),
            Just(u32::MAX),
            any::<u32>(),
        ]
    }

    fn model_entry() -> impl Strategy<Value = ModelEntry> {
        (
            keyspace(),
            0u8..3,
            proptest::collection::vec(any::<u8>(), 0..12),
            proptest::collection::vec(any::<u8>(), 0..140),
        )
            .prop_map(|(keyspace, kind, key, value)| match kind {
                0 => (keyspace, EntryKind::Put, key, value),
                1 => (keyspace, EntryKind::Delete, key, Vec::new()),
                _ => (keyspace, EntryKind::RangeDelete, key, value),
            })
    }

    fn build(seqno: SeqNo, model: &[ModelEntry]) -> Batch {
        let mut batch = Batch::new();
        batch.set_seqno(seqno);
        for (keyspace, kind, key, value) in model {
            match kind {
                EntryKind::Put => batch.put_in(*keyspace, key, value),
                EntryKind::Delete => batch.delete_in(*keyspace, key),
                EntryKind::RangeDelete => batch.delete_range_in(*keyspace, key, value),
            }
        }
        batch
    }

    fn entries(batch: &Batch) -> Vec<ModelEntry> {
        batch
            .iter()
            .map(|e| (e.keyspace, e.kind, e.key.to_vec(), e.value.to_vec()))
            .collect()
    }

    proptest! {
        #[test]
        fn mixed_keyspace_batches_match_the_model(
            seqno in 0..=SEQNO_MAX - 64,
            model in proptest::collection::vec(model_entry(), 0..24),
            split in 0..24usize,
        ) {
            let batch = build(seqno, &model);
            prop_assert_eq!(batch.len(), model.len());
            prop_assert_eq!(entries(&batch), model.clone());
            prop_assert!(batch.check_limits().is_ok());
            let decoded = Batch::decode(batch.as_bytes()).map_err(TestCaseError::fail)?;
            prop_assert_eq!(entries(&decoded), model.clone());
            prop_assert_eq!(&decoded, &batch);
            prop_assert_eq!(decoded.seqno(), seqno);
            // A batch of the default keyspace only, without range
            // deletes, is a valid format-1 batch; without range deletes, a
            // valid format-2 one.
            let points = model.iter().all(|e| e.1 != EntryKind::RangeDelete);
            prop_assert_eq!(batch.has_range_deletes(), !points);
            let default_only = model.iter().all(|e| e.0 == DEFAULT_KEYSPACE);
            prop_assert_eq!(Batch::decode_format(batch.as_bytes(), FORMAT_1).is_ok(), default_only && points);
            prop_assert_eq!(Batch::decode_format(batch.as_bytes(), FORMAT_2).is_ok(), points);
            // extend: the same entries, split over two batches.
            let split = split.min(model.len());
            let mut front = build(seqno, &model[..split]);
            front.extend(&build(0, &model[split..]));
            prop_assert_eq!(front.as_bytes(), batch.as_bytes());
        }

        #[test]
        fn decode_never_panics_and_accepts_only_what_reencodes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            check_reencodes(&bytes)?;
        }

        #[test]
        fn damaged_mixed_batches_never_panic_and_reencode(
            model in proptest::collection::vec(model_entry(), 1..6),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let batch = build(1, &model);
            let mut bytes = batch.as_bytes().to_vec();
            let at = at.index(bytes.len());
            bytes[at] = byte;
            check_reencodes(&bytes)?;
            bytes.truncate(cut.index(bytes.len()));
            check_reencodes(&bytes)?;
        }
    }

    /// Whatever `decode` accepts has well-formed entries that encode again
    /// to the same entries, in no more bytes (the input may use overlong
    /// varints; only the canonical encoding is shorter or equal).
    fn check_reencodes(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Ok(batch) = Batch::decode(bytes) {
            let rebuilt = rebuild(&batch);
            prop_assert_eq!(entries(&rebuilt), entries(&batch));
            prop_assert_eq!(rebuilt.len(), batch.len());
            prop_assert!(rebuilt.as_bytes().len() <= bytes.len());
            prop_assert_eq!(Batch::decode(rebuilt.as_bytes()).ok(), Some(rebuilt));
        }
        Ok(())
    }
}
