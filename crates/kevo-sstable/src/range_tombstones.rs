//! The range-tombstone block (format version 2): a table's range
//! tombstones in fragmented form. No I/O here.
//!
//! The block has the layout of a data block with restart interval 1. It
//! holds one entry per (fragment, seqno) of a [`FragmentedTombstones`], in
//! internal-key order (fragment start ascending, then seqno descending):
//!
//! ```text
//! key   = fragment.start + trailer(seqno, RANGE_DELETE_KIND)   (an internal key)
//! value = fragment.end                                          (a user key)
//! ```
//!
//! Consecutive entries with the same start and end are one fragment. The
//! decoder accepts exactly what [`encode`] produces for some fragmented set
//! (the canonical form): fragments non-empty, sorted and not overlapping,
//! seqnos strictly descending within a fragment, and no two adjacent
//! fragments (one's end the next one's start) with the same seqnos, which
//! [`FragmentedTombstones::new`] would have joined.
//!
//! Memory: decoding allocates each fragment's start and end once and 8
//! bytes per seqno. A start key is prefix-compressed against the previous
//! entry's key, but its fragment's end is stored whole, and (fragments
//! sorted, not overlapping) every end shares that prefix, so what a
//! decoded block takes stays within a small multiple of its size.

use bytes::Bytes;
use kevo_core::{
    Fragment, FragmentedTombstones, KEY_BYTES_MAX, RANGE_DELETE_KIND, encode_internal_key,
    split_internal_key, unpack_trailer,
};

use crate::block::{Block, BlockBuilder, BlockIter};

/// Restart interval of the range-tombstone block: every entry stores its
/// whole key.
pub(crate) const RANGE_TOMBSTONE_RESTART_INTERVAL: usize = 1;

/// The uncompressed range-tombstone block holding `set`.
///
/// REQUIRES: `set` is not empty (a table without range tombstones has no
/// such block) and every key is at most `KEY_BYTES_MAX` long.
pub(crate) fn encode(set: &FragmentedTombstones) -> Vec<u8> {
    debug_assert!(!set.is_empty());
    let mut builder = BlockBuilder::new(RANGE_TOMBSTONE_RESTART_INTERVAL);
    let mut key = Vec::new();
    for fragment in set.fragments() {
        for &seqno in &fragment.seqnos {
            key.clear();
            encode_internal_key(&mut key, &fragment.start, seqno, RANGE_DELETE_KIND);
            builder.add(&key, &fragment.end);
        }
    }
    builder.finish().to_vec()
}

/// Decodes the contents of a range-tombstone block (after decompression)
/// and checks that they are the canonical form of a fragmented set (see
/// the module documentation).
///
/// This is a pure function for tools and fuzzers; [`Table::open`] calls it
/// on the block it reads and reports an error as
/// [`kevo_core::Error::Corruption`] at the block's offset.
///
/// # Errors
/// What is wrong, in words: a restart array or entry that does not decode,
/// a key that is not `user key + trailer` with kind `RANGE_DELETE_KIND`, an
/// end key over `KEY_BYTES_MAX`, an empty block, or fragments not in the
/// canonical fragmented form.
///
/// [`Table::open`]: crate::Table::open
pub fn decode_range_tombstones(contents: &[u8]) -> Result<FragmentedTombstones, String> {
    let block = Block::new(Bytes::copy_from_slice(contents)).map_err(str::to_string)?;
    block.check_restarts().map_err(str::to_string)?;
    let mut fragments: Vec<Fragment> = Vec::new();
    let mut entries = BlockIter::new(block);
    entries.seek_to_first().map_err(str::to_string)?;
    let mut index = 0usize;
    while entries.valid() {
        let (start, trailer) = split_internal_key(entries.key())
            .ok_or_else(|| format!("range tombstone {index}: key shorter than a trailer"))?;
        let (seqno, kind) = unpack_trailer(trailer);
        if kind != RANGE_DELETE_KIND {
            return Err(format!(
                "range tombstone {index}: kind {kind}, not RANGE_DELETE_KIND"
            ));
        }
        let end = entries.value();
        if end.len() > KEY_BYTES_MAX {
            return Err(format!(
                "range tombstone {index}: end key longer than KEY_BYTES_MAX"
            ));
        }
        match fragments.last_mut() {
            // Another seqno of the same fragment (descending order is
            // checked below, with the rest of the form).
            Some(last) if last.start == start && last.end == end => last.seqnos.push(seqno),
            _ => fragments.push(Fragment {
                start: start.to_vec(),
                end: end.to_vec(),
                seqnos: vec![seqno],
            }),
        }
        index += 1;
        entries.next().map_err(str::to_string)?;
    }
    if let Some(i) = (1..fragments.len()).find(|&i| {
        fragments[i - 1].end == fragments[i].start && fragments[i - 1].seqnos == fragments[i].seqnos
    }) {
        return Err(format!(
            "range tombstone fragments {} and {i} are adjacent with the same seqnos \
             (not in fragmented form)",
            i - 1
        ));
    }
    FragmentedTombstones::from_fragments(fragments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::{RangeTombstone, SEQNO_MAX, ValueKind, pack_trailer};
    use proptest::prelude::*;

    fn t(start: &str, end: &str, seqno: u64) -> RangeTombstone {
        RangeTombstone::new(start.as_bytes().to_vec(), end.as_bytes().to_vec(), seqno)
    }

    /// A block of the given `(key, value)` entries, in the given order
    /// (written by hand: the builder asserts the order in tests).
    fn raw_block(entries: &[RawEntry]) -> Vec<u8> {
        let (mut bytes, mut restarts) = (Vec::new(), Vec::new());
        for (key, value) in entries {
            restarts.push(bytes.len() as u32);
            kevo_core::put_varint32(&mut bytes, 0);
            kevo_core::put_varint32(&mut bytes, key.len() as u32);
            kevo_core::put_varint32(&mut bytes, value.len() as u32);
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(value);
        }
        for restart in &restarts {
            bytes.extend_from_slice(&restart.to_le_bytes());
        }
        bytes.extend_from_slice(&(restarts.len() as u32).to_le_bytes());
        bytes
    }

    /// A block entry: key and value.
    type RawEntry = (Vec<u8>, Vec<u8>);

    fn entry(start: &str, seqno: u64, kind: u8, end: &str) -> RawEntry {
        let mut key = start.as_bytes().to_vec();
        key.extend_from_slice(&pack_trailer(seqno, kind).to_le_bytes());
        (key, end.as_bytes().to_vec())
    }

    #[test]
    fn overlapping_tombstones_round_trip_in_fragmented_form() {
        let set = FragmentedTombstones::new([t("b", "f", 10), t("d", "h", 20), t("a", "c", 5)]);
        let block = encode(&set);
        assert_eq!(decode_range_tombstones(&block), Ok(set.clone()));
        // One entry per (fragment, seqno), every one a restart point.
        let decoded = Block::new(Bytes::from(block)).unwrap();
        assert_eq!(decoded.restart_count() as usize, set.len());
    }

    #[test]
    fn entries_are_internal_keys_of_kind_range_delete_with_the_end_as_value() {
        let set = FragmentedTombstones::new([t("k", "m", 7)]);
        let block = encode(&set);
        assert_eq!(block, raw_block(&[entry("k", 7, RANGE_DELETE_KIND, "m")]));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        let rd = RANGE_DELETE_KIND;
        let put = ValueKind::Put as u8;
        let cases: Vec<(&str, Vec<RawEntry>)> = vec![
            ("a point kind", vec![entry("a", 1, put, "b")]),
            (
                "key shorter than a trailer",
                vec![(b"abc".to_vec(), b"d".to_vec())],
            ),
            ("empty fragment", vec![entry("b", 1, rd, "b")]),
            ("end before start", vec![entry("b", 1, rd, "a")]),
            (
                "seqnos not descending",
                vec![entry("a", 1, rd, "b"), entry("a", 2, rd, "b")],
            ),
            (
                "a repeated seqno",
                vec![entry("a", 2, rd, "b"), entry("a", 2, rd, "b")],
            ),
            (
                "overlapping fragments",
                vec![entry("a", 1, rd, "c"), entry("b", 1, rd, "d")],
            ),
            (
                "same start, two ends",
                vec![entry("a", 2, rd, "c"), entry("a", 1, rd, "d")],
            ),
            (
                "unsorted fragments",
                vec![entry("c", 1, rd, "d"), entry("a", 1, rd, "b")],
            ),
            (
                "adjacent fragments that are one",
                vec![entry("a", 3, rd, "b"), entry("b", 3, rd, "c")],
            ),
        ];
        for (what, entries) in cases {
            assert!(
                decode_range_tombstones(&raw_block(&entries)).is_err(),
                "{what}"
            );
        }
        let too_long_end = vec![entry("a", 1, rd, &"z".repeat(KEY_BYTES_MAX + 1))];
        assert!(decode_range_tombstones(&raw_block(&too_long_end)).is_err());
        assert!(decode_range_tombstones(&[]).is_err());
        assert!(decode_range_tombstones(&crate::block::EMPTY_BLOCK).is_err());
        let ascending = raw_block(&[
            entry("a", 3, rd, "b"),
            entry("b", 4, rd, "c"),
            entry("b", SEQNO_MAX, rd, "c"),
        ]);
        assert!(
            decode_range_tombstones(&ascending).is_err(),
            "SEQNO_MAX after 4"
        );
        // Adjacent fragments with different seqnos are fine.
        let ok = raw_block(&[
            entry("a", 3, rd, "b"),
            entry("b", SEQNO_MAX, rd, "c"),
            entry("b", 4, rd, "c"),
        ]);
        assert_eq!(decode_range_tombstones(&ok).map(|s| s.len()), Ok(3));
    }

    fn tombstone() -> impl Strategy<Value = RangeTombstone> {
        (
            proptest::collection::vec(0u8..4, 0..4),
            proptest::collection::vec(0u8..4, 0..4),
            0..=SEQNO_MAX,
        )
            .prop_map(|(a, b, s)| RangeTombstone::new(a, b, s % 50))
    }

    proptest! {
        #[test]
        fn any_fragmented_set_round_trips(
            tombstones in proptest::collection::vec(tombstone(), 1..16),
        ) {
            let set = FragmentedTombstones::new(tombstones);
            prop_assume!(!set.is_empty());
            let decoded = decode_range_tombstones(&encode(&set));
            prop_assert_eq!(decoded, Ok(set));
        }
    }
}
