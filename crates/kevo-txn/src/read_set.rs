//! [`ReadSet`]: what a transaction read, for the conflict check at commit.

use std::collections::BTreeSet;
use std::ops::Bound;

use bytes::Bytes;

use crate::key_range::{as_slice_bound, range_is_empty};

/// Bytes charged per point key on top of its length (set node share and the
/// `Bytes` handle), and per range on top of its bounds' lengths.
const KEY_OVERHEAD_BYTES: usize = 48;
const RANGE_OVERHEAD_BYTES: usize = 80;

/// The keys a transaction read and the key ranges it scanned.
///
/// A scanned range stands for every key in it, present or not, so that a
/// key inserted into it later (a phantom) is a conflict too. Ranges are kept
/// as given, neither merged nor sorted; an empty range is not kept.
#[derive(Debug, Clone, Default)]
pub struct ReadSet {
    keys: BTreeSet<Bytes>,
    ranges: Vec<(Bound<Bytes>, Bound<Bytes>)>,
    /// Sum of the charged sizes of `keys` and `ranges`.
    bytes: usize,
}

fn owned_bound(bound: Bound<&[u8]>) -> Bound<Bytes> {
    bound.map(Bytes::copy_from_slice)
}

fn bound_len(bound: &Bound<Bytes>) -> usize {
    match bound {
        Bound::Included(k) | Bound::Excluded(k) => k.len(),
        Bound::Unbounded => 0,
    }
}

impl ReadSet {
    /// An empty read set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a point read of `key` (whether or not it was found).
    pub fn add_key(&mut self, key: &[u8]) {
        if !self.keys.contains(key) {
            self.bytes += KEY_OVERHEAD_BYTES + key.len();
            self.keys.insert(Bytes::copy_from_slice(key));
        }
    }

    /// Records a scan of the keys within `(start, end)`. A range whose start
    /// lies after its end holds no key and is not recorded.
    ///
    /// Record the range the scan covered: the whole requested range if it
    /// ran to the end, or up to and including the last key returned if the
    /// caller stopped early.
    pub fn add_range(&mut self, start: Bound<&[u8]>, end: Bound<&[u8]>) {
        if range_is_empty(start, end) {
            return;
        }
        let range = (owned_bound(start), owned_bound(end));
        self.bytes += RANGE_OVERHEAD_BYTES + bound_len(&range.0) + bound_len(&range.1);
        self.ranges.push(range);
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.ranges.is_empty()
    }

    /// The point keys read, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Bytes> {
        self.keys.iter()
    }

    /// The ranges scanned, in the order recorded, borrowed.
    pub fn ranges(&self) -> impl Iterator<Item = (Bound<&[u8]>, Bound<&[u8]>)> {
        self.ranges
            .iter()
            .map(|(s, e)| (as_slice_bound(s), as_slice_bound(e)))
    }

    /// Roughly how much memory the read set holds. For a limit on
    /// transaction size.
    pub fn approximate_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Bound::{Excluded, Included, Unbounded};

    #[test]
    fn repeated_keys_are_kept_and_charged_once() {
        let mut reads = ReadSet::new();
        assert!(reads.is_empty());
        reads.add_key(b"k");
        let once = reads.approximate_bytes();
        reads.add_key(b"k");
        assert_eq!(reads.approximate_bytes(), once);
        assert_eq!(reads.keys().count(), 1);
        assert!(!reads.is_empty());
    }

    #[test]
    fn empty_ranges_are_not_recorded() {
        let mut reads = ReadSet::new();
        reads.add_range(Included(b"b"), Excluded(b"a"));
        reads.add_range(Excluded(b"a"), Excluded(b"a"));
        assert!(reads.is_empty());
        reads.add_range(Included(b"a"), Unbounded);
        assert_eq!(
            reads.ranges().collect::<Vec<_>>(),
            [(Included(&b"a"[..]), Unbounded)]
        );
        assert_eq!(reads.approximate_bytes(), RANGE_OVERHEAD_BYTES + 1);
    }
}
