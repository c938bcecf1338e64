//! Key bounds on user keys ([`KeyBounds`]) and the cursor that enforces
//! them ([`BoundedCursor`]).
//!
//! Every bound is normalised to a half-open interval `[start, end)` of user
//! keys, each side optional. Bytewise, the key right after `k` is `k` followed
//! by a zero byte, so `> k` is `>= k\0` and `<= k` is `< k\0`; a prefix `p`
//! is `[p, successor(p))`, where the successor increments the last byte that
//! is not `0xFF` and drops what follows (no end if there is none).

use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use kevo_core::{Cursor, InternalKey, Result, SEQNO_MAX, SeqNo, user_key};

/// A range of user keys: an optional inclusive start and an optional
/// exclusive end.
///
/// Built from any [`RangeBounds`] over byte strings (inclusive, exclusive or
/// unbounded on each side) or from a prefix. Unlike `BTreeMap::range`, a
/// range whose start is after its end is not a panic: it is simply empty.
///
/// ```
/// use kevo_iter::KeyBounds;
///
/// let range = KeyBounds::new(&b"b"[..]..=&b"d"[..]);
/// assert!(range.contains(b"b") && range.contains(b"d") && !range.contains(b"d\0"));
///
/// let prefix = KeyBounds::prefix(b"ab");
/// assert!(prefix.contains(b"ab") && prefix.contains(b"ab\xff") && !prefix.contains(b"ac"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyBounds {
    /// Smallest user key in the range; `None` for no lower bound.
    start: Option<Bytes>,
    /// First user key after the range; `None` for no upper bound.
    end: Option<Bytes>,
}

impl KeyBounds {
    /// Every user key.
    pub fn unbounded() -> Self {
        KeyBounds::default()
    }

    /// The user keys in `range`, e.g. `KeyBounds::new(&b"a"[..]..&b"c"[..])`,
    /// `KeyBounds::new(b"k".as_slice()..)` or
    /// `KeyBounds::new::<&[u8], _>(..)`.
    pub fn new<K, R>(range: R) -> Self
    where
        K: AsRef<[u8]> + ?Sized,
        R: RangeBounds<K>,
    {
        KeyBounds::from_bounds(
            range.start_bound().map(AsRef::as_ref),
            range.end_bound().map(AsRef::as_ref),
        )
    }

    /// The user keys between `start` and `end`. Handy where a tuple of
    /// [`Bound`]s would leave [`new`](Self::new)'s key type ambiguous.
    pub fn from_bounds(start: Bound<&[u8]>, end: Bound<&[u8]>) -> Self {
        let start = match start {
            Bound::Included(k) => Some(Bytes::copy_from_slice(k)),
            Bound::Excluded(k) => Some(successor_key(k)),
            Bound::Unbounded => None,
        };
        let end = match end {
            Bound::Included(k) => Some(successor_key(k)),
            Bound::Excluded(k) => Some(Bytes::copy_from_slice(k)),
            Bound::Unbounded => None,
        };
        KeyBounds { start, end }
    }

    /// The user keys that start with `prefix` (every key if it is empty).
    pub fn prefix(prefix: impl AsRef<[u8]>) -> Self {
        let prefix = prefix.as_ref();
        KeyBounds {
            start: (!prefix.is_empty()).then(|| Bytes::copy_from_slice(prefix)),
            end: prefix_successor(prefix),
        }
    }

    /// The smallest user key in the range (inclusive), if bounded below.
    pub fn start(&self) -> Option<&[u8]> {
        self.start.as_deref()
    }

    /// The first user key after the range (exclusive), if bounded above.
    pub fn end(&self) -> Option<&[u8]> {
        self.end.as_deref()
    }

    /// Whether `user_key` is in the range.
    #[inline]
    pub fn contains(&self, user_key: &[u8]) -> bool {
        !self.is_before_start(user_key) && !self.is_at_or_past_end(user_key)
    }

    /// Whether no key can be in the range.
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (Some(start), Some(end)) => start >= end,
            (None, Some(end)) => end.is_empty(),
            _ => false,
        }
    }

    /// Whether `user_key` sorts before the range.
    #[inline]
    pub fn is_before_start(&self, user_key: &[u8]) -> bool {
        self.start.as_deref().is_some_and(|start| user_key < start)
    }

    /// Whether `user_key` sorts after the range.
    #[inline]
    pub fn is_at_or_past_end(&self, user_key: &[u8]) -> bool {
        self.end.as_deref().is_some_and(|end| user_key >= end)
    }
}

/// The user key right after `key` bytewise: `key` followed by a zero byte.
fn successor_key(key: &[u8]) -> Bytes {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next.into()
}

/// The smallest key greater than every key starting with `prefix`; `None`
/// if there is none (the prefix is empty or all `0xFF`).
fn prefix_successor(prefix: &[u8]) -> Option<Bytes> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end.into())
}

/// A [`Cursor`] that shows only the entries of its inner cursor whose user
/// key is within a [`KeyBounds`].
///
/// Seeks are clamped to the bounds: a seek before the start lands on the
/// start, a `seek_for_prev` past the end lands on the last entry before it,
/// and a seek wholly outside the bounds does not touch the inner cursor.
/// A step that leaves the bounds makes the cursor invalid, so the inner
/// cursor never reads further than one entry past either bound.
///
/// **Invariant:** a `BoundedCursor` never yields a key outside its bounds.
/// Keys are internal keys, as for every [`Cursor`]; the bounds apply to
/// their user keys, so all versions of a user key are in or out together.
#[derive(Debug)]
pub struct BoundedCursor<C> {
    inner: C,
    bounds: KeyBounds,
    /// The smallest internal key of the start user key.
    start_seek: Option<Vec<u8>>,
    /// The smallest internal key of the end user key: `seek_for_prev` to it
    /// lands on the last entry before the end.
    end_seek: Option<Vec<u8>>,
    /// Whether the inner cursor's position is within the bounds.
    in_bounds: bool,
}

impl<C: Cursor> BoundedCursor<C> {
    /// `inner`, restricted to `bounds`. It starts unpositioned.
    pub fn new(inner: C, bounds: KeyBounds) -> Self {
        let smallest = |k: &[u8]| InternalKey::for_lookup(k, SEQNO_MAX).as_bytes().to_vec();
        BoundedCursor {
            start_seek: bounds.start().map(smallest),
            end_seek: bounds.end().map(smallest),
            inner,
            bounds,
            in_bounds: false,
        }
    }

    /// The inner cursor, to adjust while this one is unpositioned: a move
    /// made through it is not seen until the next `seek*` of this cursor.
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// The bounds.
    pub fn bounds(&self) -> &KeyBounds {
        &self.bounds
    }

    /// Gives the inner cursor back.
    pub fn into_inner(self) -> C {
        self.inner
    }

    /// Records whether the inner cursor's new position is within the
    /// bounds.
    fn check_position(&mut self) {
        self.in_bounds = self.inner.valid() && self.bounds.contains(user_key(self.inner.key()));
    }

    /// [`check_position`](Self::check_position) after a step from an entry
    /// inside the bounds: moving forward only the end can be crossed, and
    /// backward only the start.
    fn check_step(&mut self, forward: bool) {
        self.in_bounds = self.inner.valid() && {
            let key = user_key(self.inner.key());
            if forward {
                !self.bounds.is_at_or_past_end(key)
            } else {
                !self.bounds.is_before_start(key)
            }
        };
    }
}

impl<C: Cursor> Cursor for BoundedCursor<C> {
    fn valid(&self) -> bool {
        self.in_bounds && self.inner.valid()
    }

    /// # Panics
    /// If the cursor is not valid.
    fn key(&self) -> &[u8] {
        assert!(self.in_bounds, "BoundedCursor::key on an invalid cursor");
        self.inner.key()
    }

    /// # Panics
    /// If the cursor is not valid.
    fn value(&self) -> &[u8] {
        assert!(self.in_bounds, "BoundedCursor::value on an invalid cursor");
        self.inner.value()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.in_bounds = false;
        let target_user = user_key(target);
        if self.bounds.is_empty() || self.bounds.is_at_or_past_end(target_user) {
            return Ok(());
        }
        let target = match &self.start_seek {
            Some(start) if self.bounds.is_before_start(target_user) => start,
            _ => target,
        };
        self.inner.seek(target)?;
        self.check_position();
        Ok(())
    }

    fn lower_bound(&self) -> Option<&[u8]> {
        self.start_seek.as_deref()
    }

    fn seek_past_deleted(&mut self, target: &[u8], skip_to: &[u8], seqno: SeqNo) -> Result<()> {
        let target_user = user_key(target);
        // Where `seek` would move or clamp the target, it does all.
        if self.bounds.is_empty()
            || self.bounds.is_at_or_past_end(target_user)
            || self.bounds.is_before_start(target_user)
        {
            return self.seek(target);
        }
        self.in_bounds = false;
        self.inner.seek_past_deleted(target, skip_to, seqno)?;
        self.check_position();
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.in_bounds = false;
        let target_user = user_key(target);
        if self.bounds.is_empty() || self.bounds.is_before_start(target_user) {
            return Ok(());
        }
        let target = match &self.end_seek {
            Some(end) if self.bounds.is_at_or_past_end(target_user) => end,
            _ => target,
        };
        self.inner.seek_for_prev(target)?;
        self.check_position();
        Ok(())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.in_bounds = false;
        if self.bounds.is_empty() {
            return Ok(());
        }
        match &self.start_seek {
            Some(start) => self.inner.seek(start)?,
            None => self.inner.seek_to_first()?,
        }
        self.check_position();
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.in_bounds = false;
        if self.bounds.is_empty() {
            return Ok(());
        }
        match &self.end_seek {
            Some(end) => self.inner.seek_for_prev(end)?,
            None => self.inner.seek_to_last()?,
        }
        self.check_position();
        Ok(())
    }

    fn skip_deleted(&mut self, target: &[u8], seqno: SeqNo, forward: bool) -> Result<bool> {
        if !self.valid() {
            return Ok(false);
        }
        self.in_bounds = false;
        let moved = self.inner.skip_deleted(target, seqno, forward)?;
        self.check_position();
        Ok(moved)
    }

    fn next(&mut self) -> Result<()> {
        debug_assert!(self.valid(), "BoundedCursor::next on an invalid cursor");
        if !self.in_bounds {
            return Ok(());
        }
        self.in_bounds = false;
        self.inner.next()?;
        self.check_step(true);
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        debug_assert!(self.valid(), "BoundedCursor::prev on an invalid cursor");
        if !self.in_bounds {
            return Ok(());
        }
        self.in_bounds = false;
        self.inner.prev()?;
        self.check_step(false);
        Ok(())
    }

    fn release(&mut self) {
        self.in_bounds = false;
        self.inner.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecCursor;
    use kevo_core::ValueKind;

    fn cursor(keys: &[&[u8]], bounds: KeyBounds) -> BoundedCursor<VecCursor> {
        let entries = keys
            .iter()
            .map(|k| {
                let ik = InternalKey::new(k, 1, ValueKind::Put);
                (Bytes::copy_from_slice(ik.as_bytes()), Bytes::new())
            })
            .collect();
        BoundedCursor::new(VecCursor::new(entries).unwrap(), bounds)
    }

    fn forward(c: &mut BoundedCursor<VecCursor>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        c.seek_to_first().unwrap();
        while c.valid() {
            out.push(user_key(c.key()).to_vec());
            c.next().unwrap();
        }
        out
    }

    fn backward(c: &mut BoundedCursor<VecCursor>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        c.seek_to_last().unwrap();
        while c.valid() {
            out.push(user_key(c.key()).to_vec());
            c.prev().unwrap();
        }
        out.reverse();
        out
    }

    const KEYS: &[&[u8]] = &[b"a", b"b", b"b\0", b"c", b"d"];

    fn keys(c: &mut BoundedCursor<VecCursor>) -> Vec<Vec<u8>> {
        let f = forward(c);
        assert_eq!(f, backward(c), "forward and backward disagree");
        f
    }

    fn v(keys: &[&[u8]]) -> Vec<Vec<u8>> {
        keys.iter().map(|k| k.to_vec()).collect()
    }

    #[test]
    fn inclusive_bounds_include_both_ends() {
        let mut c = cursor(KEYS, KeyBounds::new(&b"b"[..]..=&b"c"[..]));
        assert_eq!(keys(&mut c), v(&[b"b", b"b\0", b"c"]));
    }

    #[test]
    fn exclusive_upper_bound_excludes_key() {
        let mut c = cursor(KEYS, KeyBounds::new(&b"b"[..]..&b"c"[..]));
        assert_eq!(keys(&mut c), v(&[b"b", b"b\0"]));
    }

    #[test]
    fn exclusive_lower_bound_excludes_key_but_not_its_successor() {
        let bounds = KeyBounds::from_bounds(Bound::Excluded(b"b"), Bound::Unbounded);
        let mut c = cursor(KEYS, bounds);
        assert_eq!(keys(&mut c), v(&[b"b\0", b"c", b"d"]));
    }

    #[test]
    fn unbounded_range_yields_everything() {
        let mut c = cursor(KEYS, KeyBounds::new::<&[u8], _>(..));
        assert_eq!(keys(&mut c), v(KEYS));
    }

    #[test]
    fn inverted_range_is_empty() {
        let bounds = KeyBounds::new(&b"c"[..]..&b"b"[..]);
        assert!(bounds.is_empty());
        let mut c = cursor(KEYS, bounds);
        assert!(keys(&mut c).is_empty());
        c.seek(InternalKey::for_lookup(b"b", 9).as_bytes()).unwrap();
        assert!(!c.valid());
    }

    #[test]
    fn prefix_stops_at_first_non_matching_key() {
        let mut c = cursor(
            &[b"a", b"ab", b"ab\xff", b"ab\xff\xff", b"ac", b"b"],
            KeyBounds::prefix(b"ab"),
        );
        assert_eq!(keys(&mut c), v(&[b"ab", b"ab\xff", b"ab\xff\xff"]));
    }

    #[test]
    fn prefix_of_all_ff_bytes_has_no_end() {
        let bounds = KeyBounds::prefix(b"\xff");
        assert_eq!(bounds.end(), None);
        let mut c = cursor(&[b"a", b"\xff", b"\xff\x00"], bounds);
        assert_eq!(keys(&mut c), v(&[b"\xff", b"\xff\x00"]));
    }

    #[test]
    fn empty_prefix_is_unbounded() {
        assert_eq!(KeyBounds::prefix(b""), KeyBounds::unbounded());
    }

    #[test]
    fn seek_before_start_is_clamped_to_start() {
        let mut c = cursor(KEYS, KeyBounds::new(&b"b"[..]..));
        c.seek(InternalKey::for_lookup(b"a", 9).as_bytes()).unwrap();
        assert_eq!(user_key(c.key()), b"b");
        c.seek_for_prev(InternalKey::for_lookup(b"a", 9).as_bytes())
            .unwrap();
        assert!(!c.valid());
    }

    #[test]
    fn seek_for_prev_past_end_is_clamped_to_last_key_in_range() {
        let mut c = cursor(KEYS, KeyBounds::new(..&b"c"[..]));
        c.seek_for_prev(InternalKey::for_lookup(b"z", 9).as_bytes())
            .unwrap();
        assert_eq!(user_key(c.key()), b"b\0");
        c.seek(InternalKey::for_lookup(b"c", 9).as_bytes()).unwrap();
        assert!(!c.valid());
    }

    #[test]
    fn stepping_out_of_bounds_invalidates() {
        let mut c = cursor(KEYS, KeyBounds::new(&b"b"[..]..=&b"b"[..]));
        c.seek_to_first().unwrap();
        assert_eq!(user_key(c.key()), b"b");
        c.next().unwrap();
        assert!(!c.valid());
        c.seek_to_last().unwrap();
        c.prev().unwrap();
        assert!(!c.valid());
    }
}
