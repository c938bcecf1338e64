//! [`WriteBuffer`]: a transaction's pending writes, in key order.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::key_range::range_is_empty;

/// Bytes charged per buffered entry on top of its key and value: the map
/// node's share and the two `Bytes` handles, roughly.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// A transaction's pending writes: at most one entry per key, the last write
/// to it, kept in key order.
///
/// An entry is `Some(value)` for a put and `None` for a delete. Range
/// deletes are kept apart, in order: a range delete removes the buffered
/// entries it covers, so a buffered entry is always newer than every
/// buffered range delete covering it (and is applied after them). Nothing
/// here is visible to other readers; the engine applies the buffer as one
/// write group when the transaction commits: the range deletes first, then
/// the entries.
#[derive(Debug, Clone, Default)]
pub struct WriteBuffer {
    entries: BTreeMap<Bytes, Option<Bytes>>,
    /// Range deletes `[start, end)`, in the order they were made.
    range_deletes: Vec<(Bytes, Bytes)>,
    /// Sum of [`entry_bytes`] over `entries` and the range deletes.
    bytes: usize,
}

fn entry_bytes(key: &Bytes, value: Option<&Bytes>) -> usize {
    ENTRY_OVERHEAD_BYTES + key.len() + value.map_or(0, Bytes::len)
}

impl WriteBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffers a put of `value` at `key`, replacing any earlier write to it.
    pub fn put(&mut self, key: Bytes, value: Bytes) {
        self.insert(key, Some(value));
    }

    /// Buffers a delete of `key`, replacing any earlier write to it.
    pub fn delete(&mut self, key: Bytes) {
        self.insert(key, None);
    }

    /// Buffers a delete of every key in `[start, end)`: the keys the
    /// snapshot holds there and those buffered so far (an empty range does
    /// nothing).
    pub fn delete_range(&mut self, start: Bytes, end: Bytes) {
        if start >= end {
            return;
        }
        let covered: Vec<Bytes> = self
            .entries
            .range::<[u8], _>((Bound::Included(&start[..]), Bound::Excluded(&end[..])))
            .map(|(k, _)| k.clone())
            .collect();
        for key in covered {
            if let Some(old) = self.entries.remove(&key) {
                self.bytes -= entry_bytes(&key, old.as_ref());
            }
        }
        self.bytes += ENTRY_OVERHEAD_BYTES + start.len() + end.len();
        self.range_deletes.push((start, end));
    }

    /// The buffered range deletes, in the order they were made.
    pub fn range_deletes(&self) -> &[(Bytes, Bytes)] {
        &self.range_deletes
    }

    /// Whether a buffered range delete covers `key`.
    pub fn range_deleted(&self, key: &[u8]) -> bool {
        self.range_deletes
            .iter()
            .any(|(start, end)| &start[..] <= key && key < &end[..])
    }

    fn insert(&mut self, key: Bytes, value: Option<Bytes>) {
        let added = entry_bytes(&key, value.as_ref());
        if let Some(old) = self.entries.insert(key.clone(), value) {
            self.bytes -= entry_bytes(&key, old.as_ref());
        }
        self.bytes += added;
    }

    /// The buffered write to `key`: `Some(Some(value))` for a put,
    /// `Some(None)` for a delete (or a range delete covering it), `None` if
    /// the transaction has not written `key` (the snapshot decides).
    pub fn get(&self, key: &[u8]) -> Option<Option<&Bytes>> {
        match self.entries.get(key) {
            Some(entry) => Some(entry.as_ref()),
            None if self.range_deleted(key) => Some(None),
            None => None,
        }
    }

    /// The number of buffered keys (range deletes not counted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is buffered: no entry and no range delete.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.range_deletes.is_empty()
    }

    /// Every buffered entry in key order (`None` = delete).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, Option<&Bytes>)> {
        self.entries.iter().map(|(k, v)| (k, v.as_ref()))
    }

    /// Every buffered key in order: the write set a commit is checked with.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Bytes> {
        self.entries.keys()
    }

    /// The buffered entries with keys within `(start, end)`, owned, in key
    /// order: the `buffer` argument of [`MergedIter::new`](crate::MergedIter::new).
    /// A range whose start lies after its end is empty.
    pub fn range(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
    ) -> std::vec::IntoIter<(Bytes, Option<Bytes>)> {
        if range_is_empty(start, end) {
            return Vec::new().into_iter();
        }
        self.entries
            .range::<[u8], _>((start, end))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Roughly how much memory the buffer holds: keys, values and a fixed
    /// overhead per entry. For a limit on transaction size.
    pub fn approximate_bytes(&self) -> usize {
        self.bytes
    }
}

impl IntoIterator for WriteBuffer {
    type Item = (Bytes, Option<Bytes>);
    type IntoIter = std::collections::btree_map::IntoIter<Bytes, Option<Bytes>>;

    /// The buffered entries in key order, for applying them at commit.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Bound::{Excluded, Included, Unbounded};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn last_write_to_a_key_wins() {
        let mut buf = WriteBuffer::new();
        buf.put(b("k"), b("1"));
        buf.delete(b("k"));
        assert_eq!(buf.get(b"k"), Some(None));
        buf.put(b("k"), b("2"));
        assert_eq!(buf.get(b"k"), Some(Some(&b("2"))));
        assert_eq!(buf.get(b"other"), None);
        assert_eq!(buf.len(), 1);
    }

    #[test]
    fn a_range_delete_hides_older_buffered_writes_and_newer_ones_win() {
        let mut buf = WriteBuffer::new();
        buf.put(b("a"), b("1"));
        buf.put(b("c"), b("3"));
        buf.put(b("e"), b("5"));
        buf.delete_range(b("b"), b("e"));
        assert_eq!(buf.get(b"c"), Some(None), "covered: deleted");
        assert_eq!(buf.get(b"d"), Some(None), "covered, never written");
        assert_eq!(buf.get(b"a"), Some(Some(&b("1"))));
        assert_eq!(buf.get(b"e"), Some(Some(&b("5"))), "the end is exclusive");
        assert_eq!(buf.len(), 2);
        buf.put(b("c"), b("again"));
        assert_eq!(buf.get(b"c"), Some(Some(&b("again"))));
        assert_eq!(buf.range_deletes(), &[(b("b"), b("e"))]);
        buf.delete_range(b("z"), b("a"));
        assert_eq!(buf.range_deletes().len(), 1, "an empty range is dropped");
        let mut only = WriteBuffer::new();
        only.delete_range(b("a"), b("b"));
        assert!(!only.is_empty());
    }

    #[test]
    fn approximate_bytes_follows_replacements() {
        let mut buf = WriteBuffer::new();
        assert!(buf.is_empty());
        assert_eq!(buf.approximate_bytes(), 0);
        buf.put(b("key"), b("value"));
        let one = buf.approximate_bytes();
        assert_eq!(one, ENTRY_OVERHEAD_BYTES + 8);
        buf.delete(b("key"));
        assert_eq!(buf.approximate_bytes(), ENTRY_OVERHEAD_BYTES + 3);
        buf.put(b("key"), b("value"));
        assert_eq!(buf.approximate_bytes(), one);
    }

    #[test]
    fn iter_is_in_key_order_from_both_ends() {
        let mut buf = WriteBuffer::new();
        buf.put(b("c"), b("3"));
        buf.delete(b("a"));
        buf.put(b("b"), b("2"));
        let keys: Vec<_> = buf.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, [b("a"), b("b"), b("c")]);
        let (k, v) = buf.iter().next_back().unwrap();
        assert_eq!((k, v), (&b("c"), Some(&b("3"))));
    }

    #[test]
    fn range_honours_bounds_and_tolerates_inverted_ones() {
        let mut buf = WriteBuffer::new();
        for k in ["a", "b", "c", "d"] {
            buf.put(b(k), b(k));
        }
        buf.delete(b("c"));
        let got: Vec<_> = buf.range(Included(b"b"), Excluded(b"d")).collect();
        assert_eq!(got, [(b("b"), Some(b("b"))), (b("c"), None)]);
        let got: Vec<_> = buf
            .range(Excluded(b"b"), Unbounded)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(got, [b("c"), b("d")]);
        assert_eq!(buf.range(Included(b"d"), Excluded(b"a")).len(), 0);
        assert_eq!(buf.range(Excluded(b"b"), Excluded(b"b")).len(), 0);
    }
}
