//! Internal keys: a user key followed by an 8-byte trailer.
//!
//! ```text
//! +----------------------+----------------------------------+
//! | user key (n bytes)   | trailer: u64 little-endian       |
//! |                      | (seqno << 8) | kind               |
//! +----------------------+----------------------------------+
//! ```
//!
//! Internal keys order by user key ascending (bytewise), then by trailer
//! *descending*: the newest version of a key (highest seqno) comes first, and
//! for equal seqnos the higher kind comes first. A lookup for `key` as of
//! snapshot `s` therefore seeks to `(key, s, LOOKUP_KIND)` and lands on the
//! newest entry with seqno `<= s`.

use std::cmp::Ordering;
use std::fmt;

/// A sequence number: a 56-bit logical timestamp assigned by the single
/// writer. A snapshot is just a seqno.
pub type SeqNo = u64;

/// The largest sequence number a trailer can hold.
pub const SEQNO_MAX: SeqNo = (1 << 56) - 1;

/// Bytes in an internal key's trailer.
pub const TRAILER_BYTES: usize = 8;

/// Longest user key kevo accepts.
pub const KEY_BYTES_MAX: usize = 64 * 1024;

/// Longest value kevo accepts.
pub const VALUE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The kind stored in a lookup key's trailer. It sorts before every real
/// kind of the same seqno and is never persisted.
pub const LOOKUP_KIND: u8 = 0xFF;

/// What an entry is. Persisted as one byte: values are explicit, 0 is never
/// valid, and retired values are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone: the key is deleted as of this seqno.
    Delete = 1,
    /// A value.
    Put = 2,
    // 3: a range tombstone (`RANGE_DELETE_KIND`), never a point kind.
    // 4: reserved for Merge.
}

impl ValueKind {
    /// The kind with this persisted tag, if any.
    #[inline]
    pub fn from_u8(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(ValueKind::Delete),
            2 => Some(ValueKind::Put),
            _ => None,
        }
    }
}

/// Packs a seqno and a kind tag into a trailer.
///
/// # Panics
/// In debug builds, if `seqno > SEQNO_MAX`.
#[inline]
pub fn pack_trailer(seqno: SeqNo, kind: u8) -> u64 {
    debug_assert!(seqno <= SEQNO_MAX, "seqno {seqno} exceeds 56 bits");
    (seqno << 8) | u64::from(kind)
}

/// Splits a trailer into its seqno and kind tag.
#[inline]
pub fn unpack_trailer(trailer: u64) -> (SeqNo, u8) {
    (trailer >> 8, (trailer & 0xFF) as u8)
}

/// Appends the internal key for `(user_key, seqno, kind)` to `buf`.
pub fn encode_internal_key(buf: &mut Vec<u8>, user_key: &[u8], seqno: SeqNo, kind: u8) {
    buf.reserve(user_key.len() + TRAILER_BYTES);
    buf.extend_from_slice(user_key);
    buf.extend_from_slice(&pack_trailer(seqno, kind).to_le_bytes());
}

/// An internal key split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedInternalKey<'a> {
    /// The user key.
    pub user_key: &'a [u8],
    /// The entry's sequence number.
    pub seqno: SeqNo,
    /// The entry's kind.
    pub kind: ValueKind,
}

/// Parses an internal key; `None` if it is shorter than a trailer or its
/// kind is not a valid [`ValueKind`].
#[inline]
pub fn parse_internal_key(key: &[u8]) -> Option<ParsedInternalKey<'_>> {
    let (user_key, trailer) = split_internal_key(key)?;
    let (seqno, tag) = unpack_trailer(trailer);
    Some(ParsedInternalKey {
        user_key,
        seqno,
        kind: ValueKind::from_u8(tag)?,
    })
}

/// Splits an internal key into its user key and raw trailer; `None` if it is
/// shorter than a trailer.
#[inline]
pub fn split_internal_key(key: &[u8]) -> Option<(&[u8], u64)> {
    let (user_key, trailer) = key.split_last_chunk::<TRAILER_BYTES>()?;
    Some((user_key, u64::from_le_bytes(*trailer)))
}

/// The user key of an internal key (the whole slice if it is too short to
/// hold a trailer).
#[inline]
pub fn user_key(key: &[u8]) -> &[u8] {
    split_internal_key(key).map_or(key, |(user_key, _)| user_key)
}

/// Orders two internal keys: user key ascending, then trailer descending.
///
/// Never panics: a slice too short to hold a trailer compares as a user key
/// with trailer 0 (after every real entry of that user key).
///
/// `#[inline]`: skip lists and block searches call it tens of times per
/// operation, and an out-of-line call across crates cost ~10% on scans.
#[inline]
pub fn compare_internal_keys(a: &[u8], b: &[u8]) -> Ordering {
    let (a_user, a_trailer) = split_internal_key(a).unwrap_or((a, 0));
    let (b_user, b_trailer) = split_internal_key(b).unwrap_or((b, 0));
    a_user.cmp(b_user).then_with(|| b_trailer.cmp(&a_trailer))
}

/// An owned internal key, ordered as [`compare_internal_keys`] says.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct InternalKey {
    encoded: Vec<u8>,
}

impl InternalKey {
    /// The internal key for an entry.
    pub fn new(user_key: &[u8], seqno: SeqNo, kind: ValueKind) -> Self {
        let mut encoded = Vec::new();
        encode_internal_key(&mut encoded, user_key, seqno, kind as u8);
        InternalKey { encoded }
    }

    /// The key to seek to for the newest entry of `user_key` visible at
    /// `snapshot` (the first entry at or after it).
    pub fn for_lookup(user_key: &[u8], snapshot: SeqNo) -> Self {
        let mut encoded = Vec::new();
        encode_internal_key(&mut encoded, user_key, snapshot, LOOKUP_KIND);
        InternalKey { encoded }
    }

    /// Takes an encoded internal key; `None` if it does not parse.
    pub fn from_encoded(encoded: Vec<u8>) -> Option<Self> {
        split_internal_key(&encoded)?;
        Some(InternalKey { encoded })
    }

    /// The encoded bytes (user key then trailer).
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// The user key.
    pub fn user_key(&self) -> &[u8] {
        user_key(&self.encoded)
    }

    /// The sequence number.
    pub fn seqno(&self) -> SeqNo {
        split_internal_key(&self.encoded).map_or(0, |(_, t)| unpack_trailer(t).0)
    }

    /// The raw kind tag (may be [`LOOKUP_KIND`]).
    pub fn kind_tag(&self) -> u8 {
        split_internal_key(&self.encoded).map_or(0, |(_, t)| unpack_trailer(t).1)
    }
}

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal_keys(&self.encoded, &other.encoded)
    }
}

impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for InternalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}@{}#{}",
            String::from_utf8_lossy(self.user_key()),
            self.seqno(),
            self.kind_tag()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ik(key: &[u8], seqno: SeqNo, kind: ValueKind) -> Vec<u8> {
        InternalKey::new(key, seqno, kind).as_bytes().to_vec()
    }

    #[test]
    fn user_keys_order_bytewise_ascending() {
        let a = ik(b"a", 1, ValueKind::Put);
        let ab = ik(b"ab", 9, ValueKind::Put);
        let b = ik(b"b", 0, ValueKind::Put);
        assert_eq!(compare_internal_keys(&a, &ab), Ordering::Less);
        assert_eq!(compare_internal_keys(&ab, &b), Ordering::Less);
        // A prefix sorts before its extensions regardless of the trailer.
        let empty = ik(b"", SEQNO_MAX, ValueKind::Put);
        assert_eq!(compare_internal_keys(&empty, &a), Ordering::Less);
    }

    #[test]
    fn newer_seqno_of_same_key_comes_first() {
        let new = ik(b"k", 10, ValueKind::Put);
        let old = ik(b"k", 9, ValueKind::Delete);
        assert_eq!(compare_internal_keys(&new, &old), Ordering::Less);
    }

    #[test]
    fn higher_kind_comes_first_at_equal_seqno() {
        let put = ik(b"k", 5, ValueKind::Put);
        let del = ik(b"k", 5, ValueKind::Delete);
        assert_eq!(compare_internal_keys(&put, &del), Ordering::Less);
    }

    #[test]
    fn lookup_key_lands_on_newest_visible_entry() {
        let entries = [ik(b"k", 7, ValueKind::Put), ik(b"k", 5, ValueKind::Put)];
        let lookup = InternalKey::for_lookup(b"k", 6);
        // Not before the seqno-5 entry, but after the seqno-7 one.
        assert_eq!(
            compare_internal_keys(lookup.as_bytes(), &entries[0]),
            Ordering::Greater
        );
        assert_eq!(
            compare_internal_keys(lookup.as_bytes(), &entries[1]),
            Ordering::Less
        );
        let exact = InternalKey::for_lookup(b"k", 5);
        assert_eq!(
            compare_internal_keys(exact.as_bytes(), &entries[1]),
            Ordering::Less
        );
    }

    #[test]
    fn parse_rejects_short_keys_and_unknown_kinds() {
        assert!(parse_internal_key(b"short").is_none());
        let mut bad = Vec::new();
        encode_internal_key(&mut bad, b"k", 1, 0);
        assert!(parse_internal_key(&bad).is_none());
        encode_internal_key(&mut bad, b"k", 1, 3);
        assert!(parse_internal_key(&bad).is_none());
    }

    #[test]
    fn value_kind_tags_are_stable() {
        assert_eq!(ValueKind::Delete as u8, 1);
        assert_eq!(ValueKind::Put as u8, 2);
        assert_eq!(ValueKind::from_u8(0), None);
        assert_eq!(ValueKind::from_u8(2), Some(ValueKind::Put));
    }

    #[test]
    fn short_slices_compare_without_panicking() {
        assert_eq!(compare_internal_keys(b"", b""), Ordering::Equal);
        assert_eq!(compare_internal_keys(b"ab", b"abc"), Ordering::Less);
    }

    proptest! {
        #[test]
        fn ordering_matches_tuple_model(
            a in (proptest::collection::vec(any::<u8>(), 0..6), 0..=SEQNO_MAX, 1u8..=2),
            b in (proptest::collection::vec(any::<u8>(), 0..6), 0..=SEQNO_MAX, 1u8..=2),
        ) {
            let ka = ik(&a.0, a.1, ValueKind::from_u8(a.2).unwrap());
            let kb = ik(&b.0, b.1, ValueKind::from_u8(b.2).unwrap());
            let model = a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then(b.2.cmp(&a.2));
            prop_assert_eq!(compare_internal_keys(&ka, &kb), model);
            let parsed = parse_internal_key(&ka).unwrap();
            prop_assert_eq!(parsed.user_key, &a.0[..]);
            prop_assert_eq!(parsed.seqno, a.1);
            prop_assert_eq!(parsed.kind as u8, a.2);
        }
    }
}
