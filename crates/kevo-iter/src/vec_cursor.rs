//! [`VecCursor`]: a [`Cursor`] over entries held in memory.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use kevo_core::{Cursor, Error, Result, compare_internal_keys};

/// A [`Cursor`] over a sorted list of `(internal key, value)` entries held
/// in memory.
///
/// It lets tests, benchmarks and other crates build sources without a
/// memtable or a table file. The entries are copied once into two contiguous
/// buffers (keys and values, with end offsets), so a seek's binary search
/// touches little memory, much as a table block's would. They are shared:
/// cloning a `VecCursor` is cheap (one reference count) and gives an
/// independent position over the same entries, which suits the cursor
/// factories of [`RangeIter`](crate::RangeIter).
///
/// Seeks are binary searches (`O(log n)`); steps are `O(1)`. It never fails.
#[derive(Debug, Clone)]
pub struct VecCursor {
    entries: Arc<Entries>,
    /// Index of the current entry; `entries.len()` when not valid.
    pos: usize,
}

/// The entries, packed: entry `i`'s key is `keys[key_ends[i - 1]..key_ends[i]]`
/// (from 0 for the first), and likewise for values.
#[derive(Debug, Default)]
struct Entries {
    keys: Vec<u8>,
    key_ends: Vec<usize>,
    values: Vec<u8>,
    value_ends: Vec<usize>,
}

impl Entries {
    fn len(&self) -> usize {
        self.key_ends.len()
    }

    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.key_ends[i - 1] };
        &self.keys[start..self.key_ends[i]]
    }

    fn value(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.value_ends[i - 1] };
        &self.values[start..self.value_ends[i]]
    }

    /// Index of the first entry whose key is not `before` the target.
    fn partition_point(&self, mut before: impl FnMut(&[u8]) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(self.key(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

impl VecCursor {
    /// A cursor over `entries`, which must be in strictly ascending
    /// [`compare_internal_keys`] order (no two equal keys).
    ///
    /// The cursor starts unpositioned (not valid).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if two neighbouring keys are out of order
    /// or equal.
    pub fn new(entries: Vec<(Bytes, Bytes)>) -> Result<Self> {
        for (i, pair) in entries.windows(2).enumerate() {
            if compare_internal_keys(&pair[0].0, &pair[1].0) != Ordering::Less {
                return Err(Error::InvalidArgument(format!(
                    "VecCursor entries {i} and {} are not in strictly ascending internal-key order",
                    i + 1
                )));
            }
        }
        let mut packed = Entries {
            keys: Vec::with_capacity(entries.iter().map(|(k, _)| k.len()).sum()),
            key_ends: Vec::with_capacity(entries.len()),
            values: Vec::with_capacity(entries.iter().map(|(_, v)| v.len()).sum()),
            value_ends: Vec::with_capacity(entries.len()),
        };
        for (key, value) in &entries {
            packed.keys.extend_from_slice(key);
            packed.key_ends.push(packed.keys.len());
            packed.values.extend_from_slice(value);
            packed.value_ends.push(packed.values.len());
        }
        let pos = packed.len();
        Ok(VecCursor {
            entries: Arc::new(packed),
            pos,
        })
    }

    /// A cursor over `entries` in any order: they are sorted first.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if two entries have equal internal keys.
    pub fn from_unsorted(mut entries: Vec<(Bytes, Bytes)>) -> Result<Self> {
        entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
        Self::new(entries)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    fn assert_valid(&self) {
        assert!(self.valid(), "VecCursor::key/value on an invalid cursor");
    }
}

impl Cursor for VecCursor {
    fn valid(&self) -> bool {
        self.pos < self.entries.len()
    }

    /// # Panics
    /// If the cursor is not valid.
    fn key(&self) -> &[u8] {
        self.assert_valid();
        self.entries.key(self.pos)
    }

    /// # Panics
    /// If the cursor is not valid.
    fn value(&self) -> &[u8] {
        self.assert_valid();
        self.entries.value(self.pos)
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.pos = self
            .entries
            .partition_point(|key| compare_internal_keys(key, target) == Ordering::Less);
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let after = self
            .entries
            .partition_point(|key| compare_internal_keys(key, target) != Ordering::Greater);
        self.pos = after.checked_sub(1).unwrap_or(self.entries.len());
        Ok(())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.pos = 0;
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.pos = self.entries.len().saturating_sub(1);
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        debug_assert!(self.valid(), "VecCursor::next on an invalid cursor");
        self.pos = (self.pos + 1).min(self.entries.len());
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        debug_assert!(self.valid(), "VecCursor::prev on an invalid cursor");
        self.pos = self.pos.checked_sub(1).unwrap_or(self.entries.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::{InternalKey, ValueKind};

    fn entry(key: &[u8], seqno: u64) -> (Bytes, Bytes) {
        let key = InternalKey::new(key, seqno, ValueKind::Put);
        (
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::from(format!("v{seqno}")),
        )
    }

    fn cursor() -> VecCursor {
        VecCursor::new(vec![entry(b"a", 5), entry(b"a", 2), entry(b"c", 9)]).unwrap()
    }

    fn user(c: &VecCursor) -> &[u8] {
        kevo_core::user_key(c.key())
    }

    #[test]
    fn new_cursor_is_not_valid_until_positioned() {
        let mut c = cursor();
        assert!(!c.valid());
        c.seek_to_first().unwrap();
        assert!(c.valid());
        assert_eq!(c.value(), b"v5");
    }

    #[test]
    fn out_of_order_entries_are_an_invalid_argument() {
        let err = VecCursor::new(vec![entry(b"b", 1), entry(b"a", 1)]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        let err = VecCursor::new(vec![entry(b"a", 1), entry(b"a", 1)]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
    }

    #[test]
    fn from_unsorted_sorts_by_internal_key() {
        let mut c =
            VecCursor::from_unsorted(vec![entry(b"c", 9), entry(b"a", 2), entry(b"a", 5)]).unwrap();
        c.seek_to_first().unwrap();
        assert_eq!(c.value(), b"v5");
        c.next().unwrap();
        assert_eq!(c.value(), b"v2");
    }

    #[test]
    fn seek_lands_on_first_entry_at_or_after_target() {
        let mut c = cursor();
        c.seek(InternalKey::for_lookup(b"a", 3).as_bytes()).unwrap();
        assert_eq!(c.value(), b"v2");
        c.seek(InternalKey::for_lookup(b"b", 100).as_bytes())
            .unwrap();
        assert_eq!(user(&c), b"c");
        c.seek(InternalKey::for_lookup(b"d", 100).as_bytes())
            .unwrap();
        assert!(!c.valid());
    }

    #[test]
    fn seek_for_prev_lands_on_last_entry_at_or_before_target() {
        let mut c = cursor();
        c.seek_for_prev(InternalKey::for_lookup(b"b", 1).as_bytes())
            .unwrap();
        assert_eq!(c.value(), b"v2");
        c.seek_for_prev(InternalKey::for_lookup(b"a", 6).as_bytes())
            .unwrap();
        assert!(!c.valid());
        c.seek_for_prev(InternalKey::new(b"c", 9, ValueKind::Put).as_bytes())
            .unwrap();
        assert_eq!(c.value(), b"v9");
    }

    #[test]
    fn stepping_past_either_end_invalidates() {
        let mut c = cursor();
        c.seek_to_last().unwrap();
        c.next().unwrap();
        assert!(!c.valid());
        c.seek_to_first().unwrap();
        c.prev().unwrap();
        assert!(!c.valid());
    }

    #[test]
    fn empty_cursor_is_never_valid() {
        let mut c = VecCursor::new(Vec::new()).unwrap();
        assert!(c.is_empty());
        c.seek_to_first().unwrap();
        assert!(!c.valid());
        c.seek_to_last().unwrap();
        assert!(!c.valid());
    }
}
