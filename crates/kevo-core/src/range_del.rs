//! Range tombstones: "every key in `[start, end)` is deleted as of seqno
//! `s`", and the fragmented form the layers above store and query.
//!
//! A [`RangeTombstone`] is what a caller writes (one WAL entry, whatever
//! the number of keys it covers). Tombstones overlap freely; before they
//! are stored or queried they are **fragmented** (as Pebble and RocksDB
//! do): cut at every start and end into non-overlapping [`Fragment`]s, each
//! carrying the seqnos of every tombstone that covers it, newest first.
//! Then "is `key@seqno` deleted for a reader at `read_seqno`?" is one
//! binary search ([`FragmentedTombstones::covering_seqno`]), and a reader
//! that lands on a covered key knows the whole span it may skip
//! ([`FragmentedTombstones::fragment_at`]).
//!
//! A key version `key@v` is **covered** for a reader at `r` when some
//! tombstone `[start, end)@s` has `start <= key < end` and `v < s <= r`.
//! Point writes and range tombstones share one seqno space, so a put after
//! a range delete (a larger seqno) is never covered by it.
//!
//! ```
//! use kevo_core::{FragmentedTombstones, RangeTombstone};
//!
//! let set = FragmentedTombstones::new([
//!     RangeTombstone::new(b"b".to_vec(), b"f".to_vec(), 10),
//!     RangeTombstone::new(b"d".to_vec(), b"h".to_vec(), 20),
//! ]);
//! // Cut into [b,d)@10, [d,f)@20,10 and [f,h)@20.
//! assert_eq!(set.fragments().len(), 3);
//! assert_eq!(set.covering_seqno(b"e", 15), Some(10)); // the reader sees only @10
//! assert!(set.covers(b"e", 12, u64::MAX >> 8)); // e@12 lies under @20
//! assert!(!set.covers(b"a", 1, 100));
//! ```

use std::cmp::Ordering;

use crate::key::SeqNo;

/// The kind tag of a range tombstone in an internal key's trailer (stored
/// only in a table's range-tombstone block and in WAL batches; never among
/// point entries, where [`ValueKind`](crate::ValueKind) applies).
pub const RANGE_DELETE_KIND: u8 = 3;

/// Keys in `[start, end)` deleted as of `seqno`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RangeTombstone {
    /// First key deleted.
    pub start: Vec<u8>,
    /// First key after the deleted range (exclusive).
    pub end: Vec<u8>,
    /// The seqno of the deletion.
    pub seqno: SeqNo,
}

impl RangeTombstone {
    /// The tombstone `[start, end)@seqno`.
    pub fn new(start: Vec<u8>, end: Vec<u8>, seqno: SeqNo) -> Self {
        RangeTombstone { start, end, seqno }
    }

    /// Whether it covers no key (`start >= end`).
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// Whether `key` lies in `[start, end)`.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }
}

/// One span of a fragmented set: every key in `[start, end)` is covered by
/// the tombstones with `seqnos` (strictly descending, at least one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// First key of the span.
    pub start: Vec<u8>,
    /// First key after the span (exclusive).
    pub end: Vec<u8>,
    /// The seqnos of the tombstones covering the span, newest first.
    pub seqnos: Vec<SeqNo>,
}

impl Fragment {
    /// The newest seqno a reader at `read_seqno` sees, if any.
    pub fn visible_seqno(&self, read_seqno: SeqNo) -> Option<SeqNo> {
        // Descending: the first one at or below the read point.
        self.seqnos.iter().copied().find(|&s| s <= read_seqno)
    }

    /// Whether `key` lies in `[start, end)`.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }
}

/// Range tombstones cut into sorted, non-overlapping fragments (see the
/// module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FragmentedTombstones {
    fragments: Vec<Fragment>,
    /// Finds the fragment of a key without comparing whole keys (see
    /// [`StartIndex`]); derived from `fragments`.
    index: StartIndex,
}

/// A search aid over the fragments' start keys, for the lookup every read
/// makes: the bytes all start keys share, and for each fragment the next 8
/// bytes of its start as a big-endian integer (zero-padded). A key with
/// the shared prefix is placed among the fragments by a binary search over
/// integers; whole keys are compared only where its 8 bytes tie with a
/// start's (usually none or one fragment).
///
/// Why that is exact: for keys sharing the prefix, a smaller padded window
/// means a smaller key (the first differing byte decides, and a zero pad
/// stands for "shorter", which sorts first), so only ties need a look at
/// the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct StartIndex {
    /// The longest prefix every start key has.
    common: Vec<u8>,
    /// Per fragment, in order: [`window`] of its start after `common`.
    windows: Vec<u64>,
}

/// The 8 bytes of `key` from `from` on (zero-padded past its end) as a
/// big-endian integer.
fn window(key: &[u8], from: usize) -> u64 {
    let mut bytes = [0u8; 8];
    let rest = key.get(from..).unwrap_or_default();
    let n = rest.len().min(8);
    bytes[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(bytes)
}

impl FragmentedTombstones {
    /// Fragments `tombstones` (in any order, overlapping or not; empty ones
    /// are ignored, duplicates kept once).
    pub fn new(tombstones: impl IntoIterator<Item = RangeTombstone>) -> Self {
        let mut tombstones: Vec<RangeTombstone> =
            tombstones.into_iter().filter(|t| !t.is_empty()).collect();
        if tombstones.is_empty() {
            return FragmentedTombstones::default();
        }
        tombstones.sort_by(|a, b| a.start.cmp(&b.start));
        let mut bounds: Vec<&[u8]> = tombstones
            .iter()
            .flat_map(|t| [t.start.as_slice(), t.end.as_slice()])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        // Sweep the boundaries left to right with the tombstones that
        // cover the current span (those started and not yet ended).
        let mut fragments: Vec<Fragment> = Vec::new();
        let mut active: Vec<&RangeTombstone> = Vec::new();
        let mut next = 0;
        for pair in bounds.windows(2) {
            let (lo, hi) = (pair[0], pair[1]);
            active.retain(|t| t.end.as_slice() > lo);
            while next < tombstones.len() && tombstones[next].start.as_slice() <= lo {
                active.push(&tombstones[next]);
                next += 1;
            }
            if active.is_empty() {
                continue;
            }
            let mut seqnos: Vec<SeqNo> = active.iter().map(|t| t.seqno).collect();
            seqnos.sort_unstable_by(|a, b| b.cmp(a));
            seqnos.dedup();
            // Adjacent spans with the same tombstones are one fragment.
            if let Some(last) = fragments.last_mut()
                && last.end.as_slice() == lo
                && last.seqnos == seqnos
            {
                last.end = hi.to_vec();
                continue;
            }
            fragments.push(Fragment {
                start: lo.to_vec(),
                end: hi.to_vec(),
                seqnos,
            });
        }
        FragmentedTombstones::indexed(fragments)
    }

    /// Wraps sorted, non-overlapping `fragments` with their search index.
    fn indexed(fragments: Vec<Fragment>) -> Self {
        let common = match (fragments.first(), fragments.last()) {
            (Some(first), Some(last)) => {
                // Sorted: what the first and last share, all share.
                let shared = first
                    .start
                    .iter()
                    .zip(&last.start)
                    .take_while(|(a, b)| a == b)
                    .count();
                first.start[..shared].to_vec()
            }
            _ => Vec::new(),
        };
        let windows = fragments
            .iter()
            .map(|f| window(&f.start, common.len()))
            .collect();
        FragmentedTombstones {
            fragments,
            index: StartIndex { common, windows },
        }
    }

    /// The number of fragments starting at or before `key`: the fragment
    /// before that position is the only one that can contain `key`. Mostly
    /// a binary search over integers (see the type's search index).
    pub fn count_starting_at_or_before(&self, key: &[u8]) -> usize {
        let common = &self.index.common;
        let head = &key[..key.len().min(common.len())];
        match head.cmp(&common[..head.len()]) {
            Ordering::Less => return 0,
            Ordering::Greater => return self.fragments.len(),
            // A proper prefix of the shared bytes: before every start.
            Ordering::Equal if head.len() < common.len() => return 0,
            Ordering::Equal => {}
        }
        let w = window(key, common.len());
        let windows = &self.index.windows;
        let lo = windows.partition_point(|&x| x < w);
        // Ties are rare: look at one or two before searching for their end.
        let ties = match (windows.get(lo), windows.get(lo + 1)) {
            (Some(&x), _) if x != w => 0,
            (None, _) => 0,
            (_, Some(&y)) if y == w => windows[lo..].partition_point(|&x| x == w),
            _ => 1,
        };
        lo + self.fragments[lo..lo + ties].partition_point(|f| f.start.as_slice() <= key)
    }

    /// Takes fragments already in fragmented form (as decoded from a
    /// table), checking that they are: each non-empty with at least one
    /// seqno, seqnos strictly descending, fragments sorted and not
    /// overlapping.
    ///
    /// # Errors
    /// What is wrong, naming the fragment's index.
    pub fn from_fragments(fragments: Vec<Fragment>) -> Result<Self, String> {
        for (i, f) in fragments.iter().enumerate() {
            if f.start >= f.end {
                return Err(format!("range tombstone fragment {i} is empty"));
            }
            if f.seqnos.is_empty() {
                return Err(format!("range tombstone fragment {i} has no seqno"));
            }
            if f.seqnos.windows(2).any(|w| w[0] <= w[1]) {
                return Err(format!(
                    "range tombstone fragment {i}: seqnos not strictly descending"
                ));
            }
            if i > 0 && fragments[i - 1].end > f.start {
                return Err(format!(
                    "range tombstone fragment {i} overlaps or precedes the one before it"
                ));
            }
        }
        Ok(FragmentedTombstones::indexed(fragments))
    }

    /// The fragments, in key order.
    #[inline]
    pub fn fragments(&self) -> &[Fragment] {
        &self.fragments
    }

    /// Whether there is no tombstone at all.
    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty()
    }

    /// The number of (fragment, seqno) pairs: tombstones in stored form.
    pub fn len(&self) -> usize {
        self.fragments.iter().map(|f| f.seqnos.len()).sum()
    }

    /// The first key any fragment covers and the end of the last (the
    /// extent of the set), if any.
    pub fn bounds(&self) -> Option<(&[u8], &[u8])> {
        let first = self.fragments.first()?;
        let last = self.fragments.last()?;
        Some((&first.start, &last.end))
    }

    /// The largest seqno of any tombstone.
    pub fn max_seqno(&self) -> Option<SeqNo> {
        self.fragments.iter().map(|f| f.seqnos[0]).max()
    }

    /// The smallest seqno of any tombstone.
    pub fn min_seqno(&self) -> Option<SeqNo> {
        self.fragments
            .iter()
            .filter_map(|f| f.seqnos.last().copied())
            .min()
    }

    /// The index of the fragment containing `key`, if any.
    pub fn fragment_index(&self, key: &[u8]) -> Option<usize> {
        // The last fragment starting at or before the key.
        let i = self.count_starting_at_or_before(key).checked_sub(1)?;
        (key < self.fragments[i].end.as_slice()).then_some(i)
    }

    /// The fragment containing `key`, if any.
    pub fn fragment_at(&self, key: &[u8]) -> Option<&Fragment> {
        self.fragment_index(key).map(|i| &self.fragments[i])
    }

    /// The first fragment that ends after `key` (contains it or lies after
    /// it): where a forward scan from `key` meets tombstones next.
    pub fn first_ending_after(&self, key: &[u8]) -> Option<&Fragment> {
        // Sorted and not overlapping: every fragment before the last one
        // starting at or before `key` ends at or before it.
        let p = self.count_starting_at_or_before(key);
        match p.checked_sub(1) {
            Some(i) if key < self.fragments[i].end.as_slice() => self.fragments.get(i),
            _ => self.fragments.get(p),
        }
    }

    /// The last fragment that starts at or before `key`: where a backward
    /// scan from `key` meets tombstones next.
    pub fn last_starting_at_or_before(&self, key: &[u8]) -> Option<&Fragment> {
        let i = self.count_starting_at_or_before(key).checked_sub(1)?;
        self.fragments.get(i)
    }

    /// The newest seqno of a tombstone covering `key` that a reader at
    /// `read_seqno` sees, if any.
    pub fn covering_seqno(&self, key: &[u8], read_seqno: SeqNo) -> Option<SeqNo> {
        self.fragment_at(key)?.visible_seqno(read_seqno)
    }

    /// Whether `key@seqno` is deleted for a reader at `read_seqno`.
    pub fn covers(&self, key: &[u8], seqno: SeqNo, read_seqno: SeqNo) -> bool {
        self.covering_seqno(key, read_seqno)
            .is_some_and(|s| s > seqno)
    }

    /// Every stored tombstone: each fragment once per seqno, in key order
    /// then seqno descending.
    pub fn tombstones(&self) -> impl Iterator<Item = RangeTombstone> + '_ {
        self.fragments.iter().flat_map(|f| {
            f.seqnos
                .iter()
                .map(|&s| RangeTombstone::new(f.start.clone(), f.end.clone(), s))
        })
    }

    /// The union of several sets, fragmented again.
    pub fn merge<'a>(sets: impl IntoIterator<Item = &'a FragmentedTombstones>) -> Self {
        FragmentedTombstones::new(sets.into_iter().flat_map(|s| s.tombstones()))
    }

    /// The union of shared sets, itself shared: the one non-empty set as
    /// is (no copy), a new merged set when there are several, an empty one
    /// when there is none.
    pub fn merge_shared(
        mut sets: Vec<std::sync::Arc<FragmentedTombstones>>,
    ) -> std::sync::Arc<FragmentedTombstones> {
        sets.retain(|set| !set.is_empty());
        match sets.len() {
            0 => std::sync::Arc::default(),
            1 => sets.swap_remove(0),
            _ => std::sync::Arc::new(FragmentedTombstones::merge(sets.iter().map(|s| &**s))),
        }
    }

    /// The part of the set inside `[lo, hi)` (`None`: unbounded), with
    /// fragments cut at the bounds: what a table whose keys lie in that
    /// range must store.
    pub fn clip(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Self {
        let mut fragments = Vec::new();
        for f in &self.fragments {
            let start = match lo {
                Some(lo) if f.start.as_slice() < lo => lo,
                _ => f.start.as_slice(),
            };
            let end = match hi {
                Some(hi) if f.end.as_slice() > hi => hi,
                _ => f.end.as_slice(),
            };
            if start < end {
                fragments.push(Fragment {
                    start: start.to_vec(),
                    end: end.to_vec(),
                    seqnos: f.seqnos.clone(),
                });
            }
        }
        FragmentedTombstones::indexed(fragments)
    }

    /// What compaction keeps: in each fragment, only the newest seqno of
    /// each snapshot stripe (an older one in the same stripe hides nothing
    /// the newer does not), and with `bottom` (no older data below the
    /// output), none at or below `earliest_snapshot`: every reader sees
    /// them and the keys they covered are gone.
    ///
    /// `snapshots` is the sorted list of live snapshot seqnos; the
    /// stripes are `(snapshots[i-1], snapshots[i]]` and the last one runs
    /// to the newest seqno.
    pub fn compacted(&self, snapshots: &[SeqNo], bottom: bool) -> Self {
        let earliest = snapshots.first().copied();
        let stripe = |s: SeqNo| snapshots.partition_point(|&snap| snap < s);
        let mut fragments: Vec<Fragment> = Vec::new();
        for f in &self.fragments {
            let mut seqnos: Vec<SeqNo> = Vec::new();
            let mut last_stripe = None;
            for &s in &f.seqnos {
                let st = stripe(s);
                if last_stripe == Some(st) {
                    continue;
                }
                last_stripe = Some(st);
                seqnos.push(s);
            }
            if bottom {
                // Every reader at or after `earliest` sees the tombstone
                // (no snapshot: every reader).
                seqnos.retain(|&s| earliest.is_some_and(|e| s > e));
            }
            if seqnos.is_empty() {
                continue;
            }
            if let Some(last) = fragments.last_mut()
                && last.end == f.start
                && last.seqnos == seqnos
            {
                last.end = f.end.clone();
                continue;
            }
            fragments.push(Fragment {
                start: f.start.clone(),
                end: f.end.clone(),
                seqnos,
            });
        }
        FragmentedTombstones::indexed(fragments)
    }

    /// Whether some visible tombstone (for a reader at `read_seqno`) with
    /// a seqno above `max_seqno` covers all of `[lo, hi]`: every key
    /// version with seqnos up to `max_seqno` in that range is deleted for
    /// that reader (a whole table, say).
    pub fn covers_range(&self, lo: &[u8], hi: &[u8], max_seqno: SeqNo, read_seqno: SeqNo) -> bool {
        let Some(mut i) = self.fragment_index(lo) else {
            return false;
        };
        loop {
            let f = &self.fragments[i];
            if f.visible_seqno(read_seqno).is_none_or(|s| s <= max_seqno) {
                return false;
            }
            if hi < f.end.as_slice() {
                return true;
            }
            // The next fragment must continue without a gap.
            match self.fragments.get(i + 1) {
                Some(next) if next.start == f.end => i += 1,
                _ => return false,
            }
        }
    }
}

/// Orders tombstones by start key, then seqno descending (the order of a
/// table's range-tombstone block).
pub fn compare_tombstones(a: &RangeTombstone, b: &RangeTombstone) -> Ordering {
    a.start
        .cmp(&b.start)
        .then(b.seqno.cmp(&a.seqno))
        .then(a.end.cmp(&b.end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(start: &str, end: &str, seqno: SeqNo) -> RangeTombstone {
        RangeTombstone::new(start.as_bytes().to_vec(), end.as_bytes().to_vec(), seqno)
    }

    fn frag(start: &str, end: &str, seqnos: &[SeqNo]) -> Fragment {
        Fragment {
            start: start.as_bytes().to_vec(),
            end: end.as_bytes().to_vec(),
            seqnos: seqnos.to_vec(),
        }
    }

    #[test]
    fn overlapping_tombstones_are_cut_at_every_bound() {
        let set = FragmentedTombstones::new([t("d", "h", 20), t("b", "f", 10), t("x", "z", 5)]);
        assert_eq!(
            set.fragments(),
            &[
                frag("b", "d", &[10]),
                frag("d", "f", &[20, 10]),
                frag("f", "h", &[20]),
                frag("x", "z", &[5]),
            ]
        );
        assert_eq!(set.len(), 5);
        assert_eq!(set.bounds(), Some((&b"b"[..], &b"z"[..])));
        assert_eq!((set.min_seqno(), set.max_seqno()), (Some(5), Some(20)));
    }

    #[test]
    fn empty_and_duplicate_tombstones_and_equal_neighbours() {
        let set = FragmentedTombstones::new([
            t("c", "c", 9),
            t("a", "c", 3),
            t("a", "c", 3),
            t("c", "e", 3),
        ]);
        // Adjacent spans with the same seqnos are one fragment.
        assert_eq!(set.fragments(), &[frag("a", "e", &[3])]);
        assert!(FragmentedTombstones::new([t("b", "a", 1)]).is_empty());
    }

    #[test]
    fn queries_find_the_fragment_and_the_visible_seqno() {
        let set = FragmentedTombstones::new([t("b", "f", 10), t("d", "h", 20)]);
        assert_eq!(set.covering_seqno(b"a", 100), None);
        assert_eq!(set.covering_seqno(b"b", 100), Some(10));
        assert_eq!(set.covering_seqno(b"d", 100), Some(20));
        assert_eq!(set.covering_seqno(b"d", 19), Some(10));
        assert_eq!(set.covering_seqno(b"d", 9), None);
        assert_eq!(set.covering_seqno(b"h", 100), None);
        assert!(set.covers(b"e", 19, 100));
        assert!(
            !set.covers(b"e", 20, 100),
            "a tombstone never hides its own seqno"
        );
        assert!(!set.covers(b"g", 25, 100), "a put after the delete");
        assert_eq!(
            set.first_ending_after(b"a").map(|f| &f.start[..]),
            Some(&b"b"[..])
        );
        assert_eq!(
            set.first_ending_after(b"f").map(|f| &f.start[..]),
            Some(&b"f"[..])
        );
        assert!(set.first_ending_after(b"h").is_none());
        assert!(set.last_starting_at_or_before(b"a").is_none());
        assert_eq!(
            set.last_starting_at_or_before(b"z").map(|f| &f.end[..]),
            Some(&b"h"[..])
        );
    }

    #[test]
    fn from_fragments_checks_the_form() {
        assert!(
            FragmentedTombstones::from_fragments(vec![
                frag("a", "c", &[3]),
                frag("c", "d", &[5, 1])
            ])
            .is_ok()
        );
        let bad = [
            vec![frag("c", "a", &[3])],
            vec![frag("a", "c", &[])],
            vec![frag("a", "c", &[3, 3])],
            vec![frag("a", "c", &[3, 4])],
            vec![frag("a", "d", &[3]), frag("c", "e", &[1])],
            vec![frag("c", "d", &[3]), frag("a", "b", &[1])],
        ];
        for fragments in bad {
            assert!(
                FragmentedTombstones::from_fragments(fragments.clone()).is_err(),
                "{fragments:?}"
            );
        }
    }

    #[test]
    fn clip_cuts_at_the_bounds() {
        let set = FragmentedTombstones::new([t("b", "f", 10), t("d", "h", 20)]);
        let clipped = set.clip(Some(b"c"), Some(b"e"));
        assert_eq!(
            clipped.fragments(),
            &[frag("c", "d", &[10]), frag("d", "e", &[20, 10])]
        );
        assert_eq!(set.clip(None, None), set);
        assert!(set.clip(Some(b"h"), None).is_empty());
    }

    #[test]
    fn compaction_keeps_one_seqno_per_stripe_and_drops_at_the_bottom() {
        let set = FragmentedTombstones::new([
            t("a", "c", 30),
            t("a", "c", 20),
            t("a", "c", 10),
            t("c", "e", 5),
        ]);
        // Snapshots at 15 and 25: stripes ..=15, 16..=25, 26.. .
        let kept = set.compacted(&[15, 25], false);
        assert_eq!(
            kept.fragments(),
            &[frag("a", "c", &[30, 20, 10]), frag("c", "e", &[5])]
        );
        // One snapshot at 15: 30 and 20 share a stripe.
        assert_eq!(
            set.compacted(&[15], false).fragments()[0].seqnos,
            vec![30, 10]
        );
        // No snapshot: one stripe; at the bottom, nothing is needed.
        assert_eq!(set.compacted(&[], false).fragments()[0].seqnos, vec![30]);
        assert!(set.compacted(&[], true).is_empty());
        // At the bottom with a snapshot at 15: only what it cannot see stays.
        assert_eq!(
            set.compacted(&[15], true).fragments(),
            &[frag("a", "c", &[30])]
        );
    }

    #[test]
    fn covers_range_needs_one_unbroken_newer_span() {
        let set = FragmentedTombstones::new([t("b", "f", 10), t("d", "h", 20), t("h", "k", 15)]);
        assert!(set.covers_range(b"c", b"j", 9, 100));
        assert!(
            !set.covers_range(b"c", b"j", 10, 100),
            "the [b,d) span is @10 only"
        );
        assert!(set.covers_range(b"d", b"j", 14, 100));
        assert!(
            !set.covers_range(b"d", b"k", 14, 100),
            "k is the exclusive end"
        );
        assert!(!set.covers_range(b"a", b"c", 1, 100), "a is not covered");
        assert!(
            !set.covers_range(b"c", b"e", 9, 9),
            "invisible to the reader"
        );
        let gap = FragmentedTombstones::new([t("a", "c", 10), t("d", "f", 10)]);
        assert!(!gap.covers_range(b"a", b"e", 1, 100));
    }

    /// The naive model: is `key@seqno` covered for a reader at `read`?
    fn model_covering(tombstones: &[RangeTombstone], key: &[u8], read: SeqNo) -> Option<SeqNo> {
        tombstones
            .iter()
            .filter(|t| t.contains(key) && t.seqno <= read)
            .map(|t| t.seqno)
            .max()
    }

    fn tombstone() -> impl Strategy<Value = RangeTombstone> {
        (0u8..20, 0u8..20, 1u64..40)
            .prop_map(|(a, b, s)| RangeTombstone::new(vec![b'a' + a], vec![b'a' + b], s))
    }

    /// Keys that share long prefixes, differ past 8 bytes, end in zero
    /// bytes and are prefixes of each other: the start index's hard cases.
    fn long_key() -> impl Strategy<Value = Vec<u8>> {
        (
            0usize..3,
            proptest::collection::vec(
                prop_oneof![Just(0u8), Just(1), Just(b'a'), Just(0xff)],
                0..12,
            ),
        )
            .prop_map(|(shared, tail)| {
                let mut key = b"tenant-0000"[..shared * 5].to_vec();
                key.extend(tail);
                key
            })
    }

    proptest! {
        #[test]
        fn start_index_places_keys_as_a_plain_search_does(
            bounds in proptest::collection::vec((long_key(), long_key()), 0..10),
            queries in proptest::collection::vec(long_key(), 1..40),
        ) {
            let set = FragmentedTombstones::new(
                bounds.into_iter().enumerate().map(|(i, (a, b))| RangeTombstone::new(a, b, i as u64 + 1)),
            );
            let fragments = set.fragments();
            for key in &queries {
                let p = fragments.partition_point(|f| f.start <= *key);
                prop_assert_eq!(set.count_starting_at_or_before(key), p, "{:?}", key);
                let containing = fragments.iter().position(|f| f.contains(key));
                prop_assert_eq!(set.fragment_index(key), containing);
                let ending_after = fragments.iter().find(|f| f.end > *key);
                prop_assert_eq!(set.first_ending_after(key), ending_after);
                let starting = fragments.iter().rev().find(|f| f.start <= *key);
                prop_assert_eq!(set.last_starting_at_or_before(key), starting);
            }
        }
    }

    proptest! {
        #[test]
        fn fragmented_queries_match_the_model(
            tombstones in proptest::collection::vec(tombstone(), 0..12),
            queries in proptest::collection::vec((0u8..22, 0u64..45), 1..40),
            snapshots in proptest::collection::btree_set(0u64..45, 0..4),
        ) {
            let set = FragmentedTombstones::new(tombstones.clone());
            // Well formed.
            prop_assert!(FragmentedTombstones::from_fragments(set.fragments().to_vec()).is_ok());
            for (k, read) in &queries {
                let key = [b'a' + k];
                prop_assert_eq!(set.covering_seqno(&key, *read), model_covering(&tombstones, &key, *read));
            }
            // Merging with itself or re-fragmenting changes nothing.
            prop_assert_eq!(&FragmentedTombstones::merge([&set, &set]), &set);
            prop_assert_eq!(&FragmentedTombstones::new(set.tombstones()), &set);
            // Clipping keeps exactly the answers inside the bounds.
            let clipped = set.clip(Some(b"e"), Some(b"p"));
            for (k, read) in &queries {
                let key = [b'a' + k];
                let inside = key[..] >= b"e"[..] && key[..] < b"p"[..];
                let want = if inside { set.covering_seqno(&key, *read) } else { None };
                prop_assert_eq!(clipped.covering_seqno(&key, *read), want);
            }
            // Compaction: every snapshot (and the newest reader) answers
            // "is key@v covered" the same for every v that could exist.
            let snapshots: Vec<SeqNo> = snapshots.into_iter().collect();
            let kept = set.compacted(&snapshots, false);
            let readers: Vec<SeqNo> = snapshots.iter().copied().chain([u64::MAX >> 8]).collect();
            for &read in &readers {
                for k in 0u8..22 {
                    let key = [b'a' + k];
                    for v in 0..45 {
                        prop_assert_eq!(kept.covers(&key, v, read), set.covers(&key, v, read),
                            "key {} v {} read {}", k, v, read);
                    }
                }
            }
        }
    }
}
