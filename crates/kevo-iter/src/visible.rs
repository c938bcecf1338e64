//! [`VisibleCursor`]: what a reader sees at a snapshot.
//!
//! The inner cursor holds every version of every key, newest first within a
//! user key. At snapshot `s`, the entry shown for a user key is its newest
//! version with seqno `<= s`; if that version is a tombstone, the key is not
//! shown at all. Versions newer than `s` are skipped as if absent.
//!
//! # Moving forward
//! The inner cursor sits *on* the shown entry (the newest visible version);
//! `value()` reads through it, and `key()` answers from `saved_key`, the
//! copy of the shown user key that `next` needs anyway. `next` skips the
//! rest of that user key's versions, then every user key whose newest
//! visible version is a tombstone.
//!
//! # Moving backward
//! Moving backward, a user key's versions arrive oldest first, so which one
//! is the newest visible is only known once the walk has passed all of them.
//! The inner cursor therefore sits *before* the shown entry (on the last
//! version of the previous user key, or invalid at the start), and the shown
//! entry is a copy (`saved_key`, `saved_value`), as in LevelDB's `DBIter`.
//!
//! A change of direction converts one position into the other: forward to
//! backward steps the inner cursor back over every version of the current
//! user key; backward to forward seeks to its first version and skips them.

use std::cell::Cell;
use std::sync::Arc;

use kevo_core::{
    Cursor, Error, Fragment, FragmentedTombstones, LOOKUP_KIND, ParsedInternalKey, Result,
    SEQNO_MAX, SeqNo, ValueKind, encode_internal_key, parse_internal_key, user_key,
};

use crate::UserCursor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
}

/// A [`UserCursor`] showing one entry per user key: the newest version at
/// or below a snapshot, with keys whose newest visible version is a
/// tombstone hidden.
///
/// Its keys are user keys, so it implements [`UserCursor`] rather than
/// [`Cursor`] (whose keys are internal keys); see [`UserCursor`] for why.
/// Stack it on a [`BoundedCursor`](crate::BoundedCursor) to restrict it to a
/// key range: the bounds then stop the scan for visible entries as well.
///
/// # Errors
/// Errors from the inner cursor are returned as is. An inner key that does
/// not parse as an internal key of a known [`ValueKind`] is an
/// [`Error::Corruption`]; sources are expected to reject malformed keys
/// themselves with their file and offset, so this error names no file.
/// Either way the cursor is left invalid.
///
/// ```
/// use bytes::Bytes;
/// use kevo_core::{InternalKey, ValueKind};
/// use kevo_iter::{UserCursor, VecCursor, VisibleCursor};
///
/// # fn main() -> kevo_core::Result<()> {
/// let entry = |key: &[u8], seqno, kind, value: &'static str| {
///     (Bytes::copy_from_slice(InternalKey::new(key, seqno, kind).as_bytes()), Bytes::from(value))
/// };
/// let source = VecCursor::from_unsorted(vec![
///     entry(b"a", 1, ValueKind::Put, "a1"),
///     entry(b"a", 3, ValueKind::Put, "a3"),
///     entry(b"b", 2, ValueKind::Put, "b2"),
///     entry(b"b", 4, ValueKind::Delete, ""),
/// ])?;
/// let mut at_2 = VisibleCursor::new(source.clone(), 2);
/// at_2.seek_to_first()?;
/// assert_eq!((at_2.key(), at_2.value()), (&b"a"[..], &b"a1"[..]));
/// at_2.next()?;
/// assert_eq!((at_2.key(), at_2.value()), (&b"b"[..], &b"b2"[..]));
///
/// let mut at_4 = VisibleCursor::new(source, 4);
/// at_4.seek_to_last()?; // "b" is deleted at seqno 4
/// assert_eq!((at_4.key(), at_4.value()), (&b"a"[..], &b"a3"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct VisibleCursor<C> {
    inner: C,
    snapshot: SeqNo,
    direction: Direction,
    valid: bool,
    /// While valid, the current entry's user key (both directions); while
    /// a forward step searches, the user key whose remaining versions are
    /// being skipped.
    saved_key: Vec<u8>,
    /// Backward: the current entry's value.
    saved_value: Vec<u8>,
    /// Scratch buffer for seek targets.
    target: Vec<u8>,
    /// The range tombstones of every source (empty: none).
    tombstones: Arc<FragmentedTombstones>,
    /// The last target a covered span was skipped to (each span is skipped
    /// with one call; entries the skip left behind are stepped over).
    skipped_to: Vec<u8>,
    /// Where the last key looked up among the tombstones fell (see
    /// [`Interval`]): consecutive keys mostly fall in the same one, so
    /// most lookups are two comparisons instead of a binary search.
    interval: Cell<Option<Interval>>,
}

/// The run of fragments around fragment `i` that one skip may pass: those
/// adjacent to it without a gap whose tombstones a reader at `snapshot`
/// sees at `covering` or newer, so that every entry older than `covering`
/// in the whole run is deleted. Fragments cut by an overlapping newer
/// tombstone (a small range delete inside a large one) are passed in one
/// seek instead of one seek each. Returns the first and last index.
fn covered_run(
    fragments: &[Fragment],
    i: usize,
    covering: SeqNo,
    snapshot: SeqNo,
) -> (usize, usize) {
    let joins = |a: &Fragment, b: &Fragment| {
        a.end == b.start && b.visible_seqno(snapshot).is_some_and(|s| s >= covering)
    };
    let mut last = i;
    while let Some(next) = fragments.get(last + 1) {
        if !joins(&fragments[last], next) {
            break;
        }
        last += 1;
    }
    let mut first = i;
    while first > 0 {
        let (prev, this) = (&fragments[first - 1], &fragments[first]);
        let newer = prev.visible_seqno(snapshot).is_some_and(|s| s >= covering);
        if prev.end != this.start || !newer {
            break;
        }
        first -= 1;
    }
    (first, last)
}

/// A run of user keys over which the fragment covering them does not
/// change: the fragment `p - 1` (`inside`), or the gap between fragments
/// `p - 1` and `p` (either may be missing), where `p` is the number of
/// fragments starting at or before the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interval {
    p: usize,
    inside: bool,
}

impl Interval {
    /// The interval `key` falls in.
    fn of(tombstones: &FragmentedTombstones, key: &[u8]) -> Interval {
        let fragments = tombstones.fragments();
        let p = tombstones.count_starting_at_or_before(key);
        let inside = p > 0 && key < fragments[p - 1].end.as_slice();
        Interval { p, inside }
    }

    /// Whether `key` falls in this interval.
    fn contains(self, fragments: &[Fragment], key: &[u8]) -> bool {
        let Interval { p, inside } = self;
        if inside {
            return fragments.get(p - 1).is_some_and(|f| f.contains(key));
        }
        let after_previous = match p.checked_sub(1) {
            Some(i) => fragments.get(i).is_some_and(|f| f.end.as_slice() <= key),
            None => true,
        };
        after_previous && fragments.get(p).is_none_or(|f| key < f.start.as_slice())
    }
}

impl<C: Cursor> VisibleCursor<C> {
    /// A view of `inner` as of `snapshot` (entries with seqno `<= snapshot`
    /// are visible; a snapshot above [`SEQNO_MAX`] means `SEQNO_MAX`). It
    /// starts unpositioned.
    pub fn new(inner: C, snapshot: SeqNo) -> Self {
        VisibleCursor {
            inner,
            snapshot: snapshot.min(SEQNO_MAX),
            direction: Direction::Forward,
            valid: false,
            saved_key: Vec::new(),
            saved_value: Vec::new(),
            target: Vec::new(),
            tombstones: Arc::default(),
            skipped_to: Vec::new(),
            interval: Cell::new(None),
        }
    }

    /// Hides, as well, every version a range tombstone of `tombstones`
    /// covers at the snapshot (see [`FragmentedTombstones`]): pass the
    /// range tombstones of every source of the inner cursor. On a covered
    /// entry the cursor asks the inner one to skip the tombstone's whole
    /// span ([`Cursor::skip_deleted`]) instead of stepping through it.
    pub fn with_range_tombstones(mut self, tombstones: Arc<FragmentedTombstones>) -> Self {
        self.tombstones = tombstones;
        self.interval.set(None);
        self
    }

    /// If `user_key@seqno` is covered by a range tombstone at the
    /// snapshot: the covering seqno and the bounds of the span one skip
    /// may pass (see [`covered_run`]).
    ///
    /// `#[inline]` for the check that there are no tombstones at all, which
    /// a scan makes once per entry; the search is [`covering`](Self::covering).
    #[inline]
    fn covered(&self, user_key: &[u8], seqno: SeqNo) -> Option<(SeqNo, &[u8], &[u8])> {
        if self.tombstones.fragments().is_empty() {
            return None;
        }
        self.covering(user_key, seqno)
    }

    /// [`covered`](Self::covered) where there are tombstones.
    fn covering(&self, user_key: &[u8], seqno: SeqNo) -> Option<(SeqNo, &[u8], &[u8])> {
        let fragments = self.tombstones.fragments();
        let interval = match self.interval.get() {
            Some(cached) if cached.contains(fragments, user_key) => cached,
            _ => {
                let found = Interval::of(&self.tombstones, user_key);
                self.interval.set(Some(found));
                found
            }
        };
        if !interval.inside {
            return None;
        }
        let i = interval.p - 1;
        let covering = fragments[i].visible_seqno(self.snapshot)?;
        if covering <= seqno {
            return None;
        }
        let (first, last) = covered_run(fragments, i, covering, self.snapshot);
        Some((
            covering,
            &fragments[first].start[..],
            &fragments[last].end[..],
        ))
    }

    /// Seeks the inner cursor to the internal key `target`; landing in a
    /// range tombstone's span, the sources holding only older entries go
    /// straight past it ([`Cursor::seek_past_deleted`]: one seek, not two).
    fn seek_inner(&mut self, target: &[u8]) -> Result<()> {
        let mut past = std::mem::take(&mut self.skipped_to);
        let covering = self.covered(user_key(target), 0).map(|(covering, _, end)| {
            past.clear();
            encode_internal_key(&mut past, end, SEQNO_MAX, LOOKUP_KIND);
            covering
        });
        let result = match covering {
            Some(covering) => self.inner.seek_past_deleted(target, &past, covering),
            None => self.inner.seek(target),
        };
        self.skipped_to = past;
        result
    }

    /// The inner cursor is on an entry of `saved_key` covered by
    /// `[start, end)@covering`: asks it to skip the span (forward: to
    /// `end`, backward: to before `start`), once per span. Returns whether
    /// the inner cursor left the entry (else the caller steps).
    fn skip_span(&mut self, covering: SeqNo, bound: Vec<u8>, forward: bool) -> Result<bool> {
        self.target.clear();
        // The first possible internal key of `bound`.
        encode_internal_key(&mut self.target, &bound, SEQNO_MAX, LOOKUP_KIND);
        if self.target == self.skipped_to {
            return Ok(false);
        }
        self.skipped_to.clear();
        self.skipped_to.extend_from_slice(&self.target);
        let before = self.inner.key().to_vec();
        self.inner.skip_deleted(&self.target, covering, forward)?;
        Ok(!self.inner.valid() || self.inner.key() != &before[..])
    }

    /// The snapshot seqno.
    pub fn snapshot(&self) -> SeqNo {
        self.snapshot
    }

    /// Gives the inner cursor back.
    pub fn into_inner(self) -> C {
        self.inner
    }

    /// The inner cursor, to adjust while this one is unpositioned (after
    /// [`release`](Self::release) or [`reset`](Self::reset)): a move made
    /// through it is not seen until the next `seek*` of this cursor.
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Leaves the cursor unpositioned and releases the inner cursor (see
    /// [`Cursor::release`]), for a cursor put aside to be reused.
    pub fn release(&mut self) {
        self.valid = false;
        self.inner.release();
    }

    /// Readies the cursor for another read: unpositioned, as of
    /// `snapshot`, hiding what `tombstones` cover (as
    /// [`new`](Self::new) and
    /// [`with_range_tombstones`](Self::with_range_tombstones) would make
    /// it), keeping its buffers. The inner cursor is left where it is (the
    /// next `seek*` repositions it); [`release`](Self::release) it first
    /// to let go of what it holds.
    pub fn reset(&mut self, snapshot: SeqNo, tombstones: Arc<FragmentedTombstones>) {
        self.valid = false;
        self.snapshot = snapshot.min(SEQNO_MAX);
        self.direction = Direction::Forward;
        self.tombstones = tombstones;
        self.skipped_to.clear();
        self.interval.set(None);
    }

    /// From the inner position onwards, finds the first entry to show and
    /// leaves the inner cursor on it. With `skipping`, versions of
    /// `saved_key` are skipped first.
    fn find_next_user_entry(&mut self, mut skipping: bool) -> Result<()> {
        self.valid = false;
        self.skipped_to.clear();
        while self.inner.valid() {
            let entry = parse(self.inner.key())?;
            if entry.seqno <= self.snapshot {
                let covered = self
                    .covered(entry.user_key, entry.seqno)
                    .map(|(covering, _, end)| (covering, end.to_vec()));
                match (entry.kind, covered) {
                    (_, Some((covering, end))) => {
                        self.saved_key.clear();
                        self.saved_key.extend_from_slice(entry.user_key);
                        skipping = true;
                        if self.skip_span(covering, end, true)? {
                            continue;
                        }
                    }
                    (ValueKind::Delete, None) => {
                        self.saved_key.clear();
                        self.saved_key.extend_from_slice(entry.user_key);
                        skipping = true;
                    }
                    (ValueKind::Put, None) => {
                        if !(skipping && entry.user_key <= &self.saved_key[..]) {
                            // The shown key, kept: `key()` answers from it
                            // and `next` skips its older versions.
                            self.saved_key.clear();
                            self.saved_key.extend_from_slice(entry.user_key);
                            self.valid = true;
                            return Ok(());
                        }
                    }
                }
            }
            self.inner.next()?;
        }
        Ok(())
    }

    /// From the inner position backwards, finds the last entry to show,
    /// copies it into `saved_key`/`saved_value`, and leaves the inner cursor
    /// on the last version of the user key before it.
    fn find_prev_user_entry(&mut self) -> Result<()> {
        self.valid = false;
        // Whether `saved_key`/`saved_value` hold a visible put whose older
        // versions have all been passed.
        let mut found = false;
        self.skipped_to.clear();
        while self.inner.valid() {
            let entry = parse(self.inner.key())?;
            if entry.seqno <= self.snapshot {
                if found && entry.user_key < &self.saved_key[..] {
                    break;
                }
                let covered = self
                    .covered(entry.user_key, entry.seqno)
                    .map(|(covering, start, _)| (covering, start.to_vec()));
                match (entry.kind, covered) {
                    (_, Some((covering, start))) => {
                        found = false;
                        if self.skip_span(covering, start, false)? {
                            continue;
                        }
                    }
                    (ValueKind::Delete, None) => found = false,
                    (ValueKind::Put, None) => {
                        found = true;
                        self.saved_key.clear();
                        self.saved_key.extend_from_slice(entry.user_key);
                        self.saved_value.clear();
                        self.saved_value.extend_from_slice(self.inner.value());
                    }
                }
            }
            self.inner.prev()?;
        }
        self.valid = found;
        if !found {
            self.direction = Direction::Forward;
        }
        Ok(())
    }
}

/// Parses an inner key, reporting a malformed one as corruption.
/// `#[inline]`: a scan parses every entry; the error is built out of line.
#[inline]
fn parse(key: &[u8]) -> Result<ParsedInternalKey<'_>> {
    match parse_internal_key(key) {
        Some(parsed) => Ok(parsed),
        None => Err(malformed(key)),
    }
}

#[cold]
fn malformed(key: &[u8]) -> Error {
    Error::corruption(
        "",
        0,
        format!(
            "malformed internal key {:?} (too short, or of an unknown kind)",
            String::from_utf8_lossy(key)
        ),
    )
}

impl<C: Cursor> UserCursor for VisibleCursor<C> {
    fn valid(&self) -> bool {
        self.valid
    }

    /// # Panics
    /// If the cursor is not valid.
    fn key(&self) -> &[u8] {
        assert!(self.valid, "VisibleCursor::key on an invalid cursor");
        &self.saved_key
    }

    /// # Panics
    /// If the cursor is not valid.
    fn value(&self) -> &[u8] {
        assert!(self.valid, "VisibleCursor::value on an invalid cursor");
        match self.direction {
            Direction::Forward => self.inner.value(),
            Direction::Backward => &self.saved_value,
        }
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.valid = false;
        self.direction = Direction::Forward;
        self.target.clear();
        // The newest version of `target` at or below the snapshot, or later.
        encode_internal_key(&mut self.target, target, self.snapshot, LOOKUP_KIND);
        let inner_target = std::mem::take(&mut self.target);
        let result = self.seek_inner(&inner_target);
        self.target = inner_target;
        result?;
        self.find_next_user_entry(false)
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.valid = false;
        self.direction = Direction::Backward;
        self.target.clear();
        // Trailer 0 sorts after every real version of `target`.
        encode_internal_key(&mut self.target, target, 0, 0);
        self.inner.seek_for_prev(&self.target)?;
        self.find_prev_user_entry()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.valid = false;
        self.direction = Direction::Forward;
        // A bounded inner cursor starts at its bound, which may lie in a
        // range tombstone's span: seek there as `seek` does.
        let mut start = std::mem::take(&mut self.target);
        start.clear();
        let bounded = match self.inner.lower_bound() {
            Some(bound) if !self.tombstones.is_empty() => {
                start.extend_from_slice(bound);
                true
            }
            _ => false,
        };
        let result = if bounded {
            self.seek_inner(&start)
        } else {
            self.inner.seek_to_first()
        };
        self.target = start;
        result?;
        self.find_next_user_entry(false)
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.valid = false;
        self.direction = Direction::Backward;
        self.inner.seek_to_last()?;
        self.find_prev_user_entry()
    }

    fn next(&mut self) -> Result<()> {
        debug_assert!(self.valid, "VisibleCursor::next on an invalid cursor");
        if !self.valid {
            return Ok(());
        }
        self.valid = false;
        match self.direction {
            // `saved_key` holds the current user key, whose older versions
            // are skipped below.
            Direction::Forward => self.inner.next()?,
            Direction::Backward => {
                // Back to the first version of the current key; its
                // versions are skipped below. A seek, not a step from the
                // inner position: a skipped range tombstone span may lie
                // between that position and the current key.
                self.direction = Direction::Forward;
                self.target.clear();
                encode_internal_key(&mut self.target, &self.saved_key, SEQNO_MAX, LOOKUP_KIND);
                self.inner.seek(&self.target)?;
            }
        }
        self.find_next_user_entry(true)
    }

    fn prev(&mut self) -> Result<()> {
        debug_assert!(self.valid, "VisibleCursor::prev on an invalid cursor");
        if !self.valid {
            return Ok(());
        }
        self.valid = false;
        if self.direction == Direction::Forward {
            // The inner cursor is on the current entry (its user key is
            // `saved_key`): step back over every version of that user key,
            // newer invisible ones included.
            self.direction = Direction::Backward;
            loop {
                self.inner.prev()?;
                if !self.inner.valid() || user_key(self.inner.key()) < &self.saved_key[..] {
                    break;
                }
            }
        }
        self.find_prev_user_entry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoundedCursor, KeyBounds, MergingCursor, VecCursor};
    use bytes::Bytes;
    use kevo_core::InternalKey;

    /// `(user key, seqno, value)`; a value of `None` is a tombstone.
    fn source(entries: &[(&str, u64, Option<&str>)]) -> VecCursor {
        VecCursor::from_unsorted(
            entries
                .iter()
                .map(|&(key, seqno, value)| {
                    let kind = if value.is_some() {
                        ValueKind::Put
                    } else {
                        ValueKind::Delete
                    };
                    let ik = InternalKey::new(key.as_bytes(), seqno, kind);
                    (
                        Bytes::copy_from_slice(ik.as_bytes()),
                        Bytes::from(value.unwrap_or("").to_string()),
                    )
                })
                .collect(),
        )
        .unwrap()
    }

    fn entry<U: UserCursor>(c: &U) -> Option<(String, String)> {
        c.valid().then(|| {
            (
                String::from_utf8(c.key().to_vec()).unwrap(),
                String::from_utf8(c.value().to_vec()).unwrap(),
            )
        })
    }

    fn forward<U: UserCursor>(c: &mut U) -> Vec<(String, String)> {
        let mut out = Vec::new();
        c.seek_to_first().unwrap();
        while let Some(e) = entry(c) {
            out.push(e);
            c.next().unwrap();
        }
        out
    }

    fn backward<U: UserCursor>(c: &mut U) -> Vec<(String, String)> {
        let mut out = Vec::new();
        c.seek_to_last().unwrap();
        while let Some(e) = entry(c) {
            out.push(e);
            c.prev().unwrap();
        }
        out.reverse();
        out
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Scans both ways and checks they agree.
    fn scan<U: UserCursor>(c: &mut U) -> Vec<(String, String)> {
        let f = forward(c);
        assert_eq!(f, backward(c), "forward and backward scans disagree");
        f
    }

    fn history() -> VecCursor {
        source(&[
            ("a", 1, Some("a1")),
            ("a", 5, Some("a5")),
            ("b", 2, Some("b2")),
            ("b", 4, None),
            ("c", 3, None),
            ("c", 6, Some("c6")),
            ("d", 7, Some("d7")),
        ])
    }

    #[test]
    fn newest_version_at_or_below_snapshot_is_shown() {
        let mut c = VisibleCursor::new(history(), 3);
        assert_eq!(scan(&mut c), pairs(&[("a", "a1"), ("b", "b2")]));
        let mut c = VisibleCursor::new(history(), 100);
        assert_eq!(
            scan(&mut c),
            pairs(&[("a", "a5"), ("c", "c6"), ("d", "d7")])
        );
    }

    #[test]
    fn tombstone_hides_older_versions() {
        let mut c = VisibleCursor::new(history(), 4);
        assert_eq!(scan(&mut c), pairs(&[("a", "a1")]));
    }

    #[test]
    fn put_after_tombstone_resurrects_key() {
        let mut c = VisibleCursor::new(history(), 6);
        assert_eq!(scan(&mut c), pairs(&[("a", "a5"), ("c", "c6")]));
    }

    #[test]
    fn snapshot_zero_sees_nothing() {
        let mut c = VisibleCursor::new(history(), 0);
        assert!(scan(&mut c).is_empty());
    }

    #[test]
    fn seek_lands_on_next_visible_key() {
        let mut c = VisibleCursor::new(history(), 4);
        c.seek(b"b").unwrap();
        assert!(!c.valid(), "b and c are deleted or invisible at 4");
        let mut c = VisibleCursor::new(history(), 7);
        c.seek(b"b").unwrap();
        assert_eq!(entry(&c).unwrap(), ("c".into(), "c6".into()));
        c.seek(b"a\0").unwrap();
        assert_eq!(entry(&c).unwrap(), ("c".into(), "c6".into()));
    }

    #[test]
    fn seek_for_prev_lands_on_previous_visible_key() {
        let mut c = VisibleCursor::new(history(), 7);
        c.seek_for_prev(b"b").unwrap();
        assert_eq!(entry(&c).unwrap(), ("a".into(), "a5".into()));
        c.seek_for_prev(b"c").unwrap();
        assert_eq!(entry(&c).unwrap(), ("c".into(), "c6".into()));
        c.seek_for_prev(b"zzz").unwrap();
        assert_eq!(entry(&c).unwrap(), ("d".into(), "d7".into()));
        c.seek_for_prev(b"").unwrap();
        assert!(!c.valid());
    }

    #[test]
    fn visible_changes_direction_over_hidden_versions() {
        let mut c = VisibleCursor::new(history(), 6);
        c.seek_to_first().unwrap();
        c.next().unwrap();
        assert_eq!(entry(&c).unwrap(), ("c".into(), "c6".into()));
        c.prev().unwrap();
        assert_eq!(entry(&c).unwrap(), ("a".into(), "a5".into()));
        c.next().unwrap();
        assert_eq!(entry(&c).unwrap(), ("c".into(), "c6".into()));
        c.next().unwrap();
        assert!(!c.valid(), "d7 is above the snapshot");
    }

    #[test]
    fn backward_walk_picks_newest_visible_version_not_the_first_met() {
        // Moving backward the seqno-1 version is met first.
        let mut c = VisibleCursor::new(
            source(&[
                ("k", 1, Some("old")),
                ("k", 2, Some("mid")),
                ("k", 3, Some("new")),
                ("k", 9, Some("future")),
            ]),
            3,
        );
        c.seek_to_last().unwrap();
        assert_eq!(entry(&c).unwrap(), ("k".into(), "new".into()));
        c.next().unwrap();
        assert!(!c.valid());
    }

    #[test]
    fn versions_spread_over_merged_sources_resolve_as_one_history() {
        let merged = MergingCursor::new(vec![
            source(&[("a", 5, None), ("b", 1, Some("b1"))]),
            source(&[("a", 3, Some("a3")), ("b", 6, Some("b6"))]),
            source(&[("a", 7, Some("a7"))]),
        ]);
        let mut c = VisibleCursor::new(merged, 6);
        assert_eq!(scan(&mut c), pairs(&[("b", "b6")]));
    }

    #[test]
    fn bounds_below_visibility_limit_what_is_shown() {
        let bounded = BoundedCursor::new(history(), KeyBounds::new("b".."d"));
        let mut c = VisibleCursor::new(bounded, 100);
        assert_eq!(scan(&mut c), pairs(&[("c", "c6")]));
        c.seek(b"a").unwrap();
        assert_eq!(entry(&c).unwrap(), ("c".into(), "c6".into()));
        c.seek_for_prev(b"z").unwrap();
        assert_eq!(entry(&c).unwrap(), ("c".into(), "c6".into()));
    }

    #[test]
    fn one_skip_passes_adjacent_fragments_at_least_as_new() {
        let frag = |start: &str, end: &str, seqnos: &[u64]| Fragment {
            start: start.as_bytes().to_vec(),
            end: end.as_bytes().to_vec(),
            seqnos: seqnos.to_vec(),
        };
        // A large delete at 5 cut by a small one at 9 inside it, then a gap.
        let fragments = [
            frag("a", "c", &[5]),
            frag("c", "d", &[9, 5]),
            frag("d", "f", &[5]),
            frag("g", "h", &[5]),
        ];
        let all = SEQNO_MAX;
        assert_eq!(covered_run(&fragments, 0, 5, all), (0, 2));
        assert_eq!(covered_run(&fragments, 2, 5, all), (0, 2));
        // From inside the newer one: its older neighbours would delete less.
        assert_eq!(covered_run(&fragments, 1, 9, all), (1, 1));
        // A snapshot before the small delete sees one large span.
        assert_eq!(covered_run(&fragments, 1, 5, 6), (0, 2));
        // Not across the gap.
        assert_eq!(covered_run(&fragments, 3, 5, all), (3, 3));
        // Through the cursor: a seek into the large span lands past all
        // three fragments, on the first visible key.
        let mut cursor = VisibleCursor::new(
            source(&[
                ("b", 1, Some("b")),
                ("e", 2, Some("e")),
                ("f", 3, Some("f")),
            ]),
            20,
        )
        .with_range_tombstones(Arc::new(
            FragmentedTombstones::from_fragments(fragments.to_vec()).unwrap(),
        ));
        cursor.seek(b"a").unwrap();
        assert_eq!(entry(&cursor), Some(("f".to_string(), "f".to_string())));
    }

    #[test]
    fn cached_interval_holds_exactly_the_keys_of_its_lookup() {
        let frag = |start: &str, end: &str| Fragment {
            start: start.as_bytes().to_vec(),
            end: end.as_bytes().to_vec(),
            seqnos: vec![9],
        };
        // Adjacent fragments, a gap, and open ends on both sides.
        let set = FragmentedTombstones::from_fragments(vec![
            frag("b", "d"),
            frag("d", "f"),
            frag("h", "k"),
        ])
        .unwrap();
        let fragments = set.fragments();
        let keys = ["", "a", "b", "c", "d", "e", "f", "g", "h", "j", "k", "z"];
        for a in keys {
            let cached = Interval::of(&set, a.as_bytes());
            assert!(cached.contains(fragments, a.as_bytes()), "{a}");
            for b in keys {
                let fresh = Interval::of(&set, b.as_bytes());
                assert_eq!(
                    cached.contains(fragments, b.as_bytes()),
                    cached == fresh,
                    "{a} then {b}"
                );
            }
        }
        assert!(Interval::of(&set, b"c").inside);
        assert!(!Interval::of(&set, b"f").inside);
        let none = FragmentedTombstones::default();
        assert!(Interval::of(&none, b"a").contains(&[], b"z"));
    }

    #[test]
    fn a_reset_cursor_reads_as_a_new_one_would() {
        let entries = [
            ("a", 1, Some("a1")),
            ("b", 2, Some("b2")),
            ("b", 5, Some("b5")),
            ("c", 3, Some("c3")),
            ("d", 6, None),
            ("d", 4, Some("d4")),
        ];
        let tombstone = |start: &str, end: &str, seqno: u64| {
            Arc::new(
                FragmentedTombstones::from_fragments(vec![Fragment {
                    start: start.as_bytes().to_vec(),
                    end: end.as_bytes().to_vec(),
                    seqnos: vec![seqno],
                }])
                .unwrap(),
            )
        };
        let mut reused =
            VisibleCursor::new(source(&entries), 10).with_range_tombstones(tombstone("c", "d", 7));
        reused.seek(b"b").unwrap();
        reused.prev().unwrap();
        assert_eq!(entry(&reused), Some(("a".into(), "a1".into())));
        for (snapshot, tombstones) in [
            (4, Arc::default()),
            (10, tombstone("a", "b", 8)),
            (6, tombstone("b", "c", 3)),
            (SEQNO_MAX + 5, Arc::default()),
        ] {
            reused.reset(snapshot, tombstones.clone());
            assert!(!reused.valid());
            assert_eq!(reused.snapshot(), snapshot.min(SEQNO_MAX));
            let mut fresh =
                VisibleCursor::new(source(&entries), snapshot).with_range_tombstones(tombstones);
            assert_eq!(forward(&mut reused), forward(&mut fresh), "at {snapshot}");
            assert_eq!(backward(&mut reused), backward(&mut fresh), "at {snapshot}");
        }
    }

    #[test]
    fn malformed_inner_key_is_corruption() {
        let bad = VecCursor::new(vec![(Bytes::from_static(b"short"), Bytes::new())]).unwrap();
        let mut c = VisibleCursor::new(bad, 10);
        let err = c.seek_to_first().unwrap_err();
        assert!(err.is_corruption(), "{err}");
        assert!(!c.valid());
    }
}
