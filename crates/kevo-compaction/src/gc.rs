//! Garbage collection of versions: which entries of a sorted stream a
//! compaction (or a flush) keeps.
//!
//! Snapshots `s0 < s1 < .. < sn-1` cut the seqno line into *stripes*:
//! stripe `i` holds the seqnos `s(i-1) < seqno <= s(i)` (stripe 0 everything
//! up to `s0`, stripe `n` everything above the newest snapshot, seen only by
//! "latest"). A snapshot `s` sees, of one user key, the newest version with
//! `seqno <= s`. Two versions of a key in the same stripe are seen by
//! exactly the same snapshots except that the newer one always wins, so the
//! older one is invisible to everyone: it is dropped. Kept per user key: the
//! newest version of each stripe that holds any.
//!
//! A tombstone in stripe 0 is seen by every snapshot that sees anything of
//! the key at or below it, and hides everything older. When the caller
//! knows that nothing older than the stream lies below it (`drop_tombstones`:
//! a compaction into the bottommost data of its key range), such a tombstone
//! and everything older (all in stripe 0) are dropped: every reader then
//! finds no entry where it found a deletion, which reads the same.
//!
//! With the range tombstones of the inputs
//! ([`GcFilter::with_range_tombstones`]), a version `key@v` covered by a
//! range tombstone `@t` (`v < t`) in the same stripe is dropped as well:
//! every reader that could see `v` sees `t`, which deletes it. What the
//! range tombstones themselves become is
//! [`FragmentedTombstones::compacted`].

use std::sync::Arc;

use kevo_core::{
    Cursor, Error, FragmentedTombstones, Result, SeqNo, ValueKind, parse_internal_key,
};

/// What [`GcFilter::decide`] says of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it out.
    Keep,
    /// A newer version of the key in the same snapshot stripe hides it from
    /// every reader (or a dropped tombstone above it did).
    DropShadowed,
    /// A tombstone no snapshot needs, with nothing older below the stream.
    DropTombstone,
    /// A version a range tombstone of the same stripe deletes for every
    /// reader that could see it.
    DropCovered,
}

/// Counters of a [`GcFilter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Entries decided.
    pub entries_in: u64,
    /// Entries kept.
    pub entries_kept: u64,
    /// Entries dropped as shadowed ([`Verdict::DropShadowed`]), tombstones
    /// among them.
    pub versions_dropped: u64,
    /// Tombstones dropped as obsolete ([`Verdict::DropTombstone`]).
    pub tombstones_dropped: u64,
    /// Versions dropped as deleted by a range tombstone
    /// ([`Verdict::DropCovered`]).
    pub covered_dropped: u64,
}

/// Decides, entry by entry of a stream in internal-key order, what to keep.
///
/// Snapshots `s0 < .. < sn-1` cut the seqnos into stripes (stripe `i`:
/// `s(i-1) < seqno <= s(i)`; stripe `n`: above every snapshot). Per user
/// key, the newest version of each stripe is kept and older versions of the
/// same stripe, seen by nobody, are dropped. With `drop_tombstones` (nothing
/// older lies below the stream), a tombstone in stripe 0 is dropped together
/// with everything older. See `docs/compaction.md`.
///
/// The stream must be in [`kevo_core::compare_internal_keys`] order: the
/// versions of one user key newest first. Reusable: the engine's flush runs
/// it with `drop_tombstones = false`, compactions with the task's setting.
#[derive(Debug, Clone)]
pub struct GcFilter {
    snapshots: Vec<SeqNo>,
    drop_tombstones: bool,
    user_key: Vec<u8>,
    has_key: bool,
    /// Stripe of the last version seen of `user_key`.
    last_stripe: usize,
    stats: GcStats,
    /// The range tombstones of the input (empty: none).
    range_tombstones: Arc<FragmentedTombstones>,
}

impl GcFilter {
    /// A filter for the live snapshots `snapshots` (any order; duplicates
    /// are fine).
    pub fn new(snapshots: &[SeqNo], drop_tombstones: bool) -> Self {
        let mut snapshots = snapshots.to_vec();
        snapshots.sort_unstable();
        snapshots.dedup();
        GcFilter {
            snapshots,
            drop_tombstones,
            user_key: Vec::new(),
            has_key: false,
            last_stripe: 0,
            stats: GcStats::default(),
            range_tombstones: Arc::default(),
        }
    }

    /// Also drops the versions the range tombstones of the input delete
    /// for every reader that could see them (see the module docs).
    pub fn with_range_tombstones(mut self, tombstones: Arc<FragmentedTombstones>) -> Self {
        self.range_tombstones = tombstones;
        self
    }

    /// The snapshots, ascending.
    pub fn snapshots(&self) -> &[SeqNo] {
        &self.snapshots
    }

    /// Whether tombstones no snapshot needs are dropped (nothing older lies
    /// below the stream).
    pub fn drops_tombstones(&self) -> bool {
        self.drop_tombstones
    }

    /// Whether a range tombstone in the same stripe as `seqno` deletes
    /// `user_key@seqno`.
    fn covered(&self, user_key: &[u8], seqno: SeqNo, stripe: usize) -> bool {
        if self.range_tombstones.is_empty() {
            return false;
        }
        let Some(fragment) = self.range_tombstones.fragment_at(user_key) else {
            return false;
        };
        // The oldest tombstone above the version: if any is in its stripe,
        // that one is.
        fragment
            .seqnos
            .iter()
            .rev()
            .find(|&&t| t > seqno)
            .is_some_and(|&t| self.stripe(t) == stripe)
    }

    /// The stripe of `seqno`: the index of the oldest snapshot that sees it,
    /// or the number of snapshots if none does.
    pub fn stripe(&self, seqno: SeqNo) -> usize {
        self.snapshots.partition_point(|&s| s < seqno)
    }

    /// The verdict on the next entry of the stream.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `internal_key` is not an internal key
    /// with a valid kind.
    pub fn decide(&mut self, internal_key: &[u8]) -> Result<Verdict> {
        let parsed = parse_internal_key(internal_key).ok_or_else(|| {
            Error::InvalidArgument("compaction input holds a malformed internal key".into())
        })?;
        let stripe = self.stripe(parsed.seqno);
        let same_key = self.has_key && self.user_key == parsed.user_key;
        if !same_key {
            self.user_key.clear();
            self.user_key.extend_from_slice(parsed.user_key);
            self.has_key = true;
        }
        let verdict = if same_key && stripe >= self.last_stripe {
            Verdict::DropShadowed
        } else if self.covered(parsed.user_key, parsed.seqno, stripe) {
            Verdict::DropCovered
        } else if parsed.kind == ValueKind::Delete && self.drop_tombstones && stripe == 0 {
            Verdict::DropTombstone
        } else {
            Verdict::Keep
        };
        self.last_stripe = stripe;
        self.stats.entries_in += 1;
        match verdict {
            Verdict::Keep => self.stats.entries_kept += 1,
            Verdict::DropShadowed => self.stats.versions_dropped += 1,
            Verdict::DropTombstone => self.stats.tombstones_dropped += 1,
            Verdict::DropCovered => self.stats.covered_dropped += 1,
        }
        Ok(verdict)
    }

    /// The counters so far.
    pub fn stats(&self) -> GcStats {
        self.stats
    }
}

/// A forward-only cursor over the entries of `C` that a [`GcFilter`] keeps.
///
/// ```
/// use bytes::Bytes;
/// use kevo_compaction::{GcFilter, GcIter};
/// use kevo_core::{InternalKey, ValueKind};
/// use kevo_iter::VecCursor;
///
/// # fn main() -> kevo_core::Result<()> {
/// let entry = |seqno, kind| {
///     let key = InternalKey::new(b"k", seqno, kind);
///     (Bytes::copy_from_slice(key.as_bytes()), Bytes::from(format!("v{seqno}")))
/// };
/// let source = VecCursor::from_unsorted(vec![
///     entry(9, ValueKind::Put),
///     entry(7, ValueKind::Put), // same stripe as 9: nobody sees it
///     entry(4, ValueKind::Put), // snapshot 5 sees this one
///     entry(2, ValueKind::Put),
/// ])?;
/// let mut kept = GcIter::new(source, GcFilter::new(&[5], false));
/// kept.seek_to_first()?;
/// let mut values = Vec::new();
/// while kept.valid() {
///     values.push(kept.value().to_vec());
///     kept.next()?;
/// }
/// assert_eq!(values, [b"v9".to_vec(), b"v4".to_vec()]);
/// assert_eq!(kept.filter().stats().versions_dropped, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct GcIter<C> {
    cursor: C,
    filter: GcFilter,
}

impl<C: Cursor> GcIter<C> {
    /// Keeps what `filter` keeps of `cursor`. Unpositioned until
    /// [`GcIter::seek_to_first`].
    pub fn new(cursor: C, filter: GcFilter) -> Self {
        GcIter { cursor, filter }
    }

    /// Positions at the first kept entry.
    ///
    /// # Errors
    /// The source's errors; a malformed key ([`GcFilter::decide`]).
    pub fn seek_to_first(&mut self) -> Result<()> {
        self.cursor.seek_to_first()?;
        self.skip_dropped()
    }

    /// Whether positioned at a kept entry.
    pub fn valid(&self) -> bool {
        self.cursor.valid()
    }

    /// The current entry's internal key. Requires `valid()`.
    pub fn key(&self) -> &[u8] {
        self.cursor.key()
    }

    /// The current entry's value. Requires `valid()`.
    pub fn value(&self) -> &[u8] {
        self.cursor.value()
    }

    /// Moves to the next kept entry. Requires `valid()`.
    ///
    /// # Errors
    /// As [`GcIter::seek_to_first`].
    #[allow(clippy::should_implement_trait)] // a cursor step, named as `Cursor::next`
    pub fn next(&mut self) -> Result<()> {
        self.cursor.next()?;
        self.skip_dropped()
    }

    /// The filter, for its [`GcStats`].
    pub fn filter(&self) -> &GcFilter {
        &self.filter
    }

    /// Gives the source back.
    pub fn into_inner(self) -> C {
        self.cursor
    }

    fn skip_dropped(&mut self) -> Result<()> {
        while self.cursor.valid() {
            if self.filter.decide(self.cursor.key())? == Verdict::Keep {
                return Ok(());
            }
            self.cursor.next()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::InternalKey;

    fn decide_all(filter: &mut GcFilter, entries: &[(&str, SeqNo, ValueKind)]) -> Vec<Verdict> {
        entries
            .iter()
            .map(|&(k, s, kind)| {
                filter
                    .decide(InternalKey::new(k.as_bytes(), s, kind).as_bytes())
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn without_snapshots_only_the_newest_version_survives() {
        let mut f = GcFilter::new(&[], false);
        let v = decide_all(
            &mut f,
            &[
                ("a", 5, ValueKind::Put),
                ("a", 3, ValueKind::Delete),
                ("a", 1, ValueKind::Put),
                ("b", 2, ValueKind::Delete),
            ],
        );
        use Verdict::*;
        assert_eq!(v, [Keep, DropShadowed, DropShadowed, Keep]);
    }

    #[test]
    fn each_snapshot_keeps_the_version_it_sees() {
        let mut f = GcFilter::new(&[4, 2], false);
        let v = decide_all(
            &mut f,
            &[
                ("a", 6, ValueKind::Put),
                ("a", 5, ValueKind::Put),
                ("a", 4, ValueKind::Put),
                ("a", 3, ValueKind::Put),
                ("a", 2, ValueKind::Put),
                ("a", 1, ValueKind::Put),
            ],
        );
        use Verdict::*;
        assert_eq!(
            v,
            [Keep, DropShadowed, Keep, DropShadowed, Keep, DropShadowed]
        );
    }

    #[test]
    fn a_bottom_tombstone_in_the_oldest_stripe_drops_with_what_it_hides() {
        let mut f = GcFilter::new(&[3], true);
        let v = decide_all(
            &mut f,
            &[
                ("a", 5, ValueKind::Delete), // stripe 1: snapshot 3 needs it hidden? keep
                ("a", 2, ValueKind::Delete), // stripe 0: dropped
                ("a", 1, ValueKind::Put),
                ("b", 3, ValueKind::Delete),
            ],
        );
        use Verdict::*;
        assert_eq!(v, [Keep, DropTombstone, DropShadowed, DropTombstone]);
        assert_eq!(f.stats().tombstones_dropped, 2);
        assert_eq!(f.stats().versions_dropped, 1);
    }

    #[test]
    fn tombstones_stay_when_something_may_lie_below() {
        let mut f = GcFilter::new(&[], false);
        let v = decide_all(&mut f, &[("a", 2, ValueKind::Delete)]);
        assert_eq!(v, [Verdict::Keep]);
    }

    #[test]
    fn a_range_tombstone_drops_what_it_deletes_for_every_reader() {
        use kevo_core::RangeTombstone;
        let tombstones = Arc::new(FragmentedTombstones::new([RangeTombstone::new(
            b"b".to_vec(),
            b"d".to_vec(),
            10,
        )]));
        // A snapshot at 5: versions at or below 5 stay for it.
        let mut f = GcFilter::new(&[5], false).with_range_tombstones(tombstones);
        let v = decide_all(
            &mut f,
            &[
                ("a", 7, ValueKind::Put),  // outside the range
                ("b", 12, ValueKind::Put), // after the delete
                ("b", 8, ValueKind::Put),  // stripe 1 with @10: deleted for all
                ("c", 9, ValueKind::Put),  // the same
                ("c", 4, ValueKind::Put),  // snapshot 5 sees it
                ("d", 1, ValueKind::Put),  // the end is exclusive
            ],
        );
        use Verdict::*;
        assert_eq!(v, [Keep, Keep, DropShadowed, DropCovered, Keep, Keep]);
        assert_eq!(f.stats().covered_dropped, 1);
    }

    #[test]
    fn malformed_keys_are_an_error() {
        let mut f = GcFilter::new(&[], false);
        assert!(matches!(f.decide(b"short"), Err(Error::InvalidArgument(_))));
    }
}
