//! The span of keys a range delete covers: any `RangeBounds` of keys, or
//! a prefix, as the half-open `[start, end)` a range tombstone stores.
//!
//! A range that runs to the end of the key space (or through a key of the
//! largest length, which has no successor that is a key) ends at the
//! largest key, [`KEY_BYTES_MAX`] bytes of `0xff`, which a point delete
//! deletes besides: no key is ever left out.

use std::ops::{Bound, RangeBounds};

use kevo_core::{KEY_BYTES_MAX, KeyspaceId};

/// The largest key there can be: [`KEY_BYTES_MAX`] bytes of `0xff`.
fn max_key() -> Vec<u8> {
    vec![0xff; KEY_BYTES_MAX]
}

/// Adds to `batch` the range tombstone of `range` in `keyspace`: keys in
/// `[start, end)`. A range running to the end of the key space (or through
/// a key of the largest length) ends at the largest key, which is deleted
/// with a point delete besides: no key is left out.
pub(crate) fn push_range_delete<K: AsRef<[u8]>, R: RangeBounds<K>>(
    batch: &mut kevo_wal::Batch,
    keyspace: KeyspaceId,
    range: &R,
) {
    let (start, end, last) = span_of(range);
    push_span(batch, keyspace, start, end, last);
}

/// The span `[start, end)` of `range`, and the largest key when the range
/// reaches it (it is then deleted with a point delete besides).
pub(crate) type Span = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// The [`Span`] of `range`.
pub(crate) fn span_of<K: AsRef<[u8]>, R: RangeBounds<K>>(range: &R) -> Span {
    let start = match range.start_bound() {
        Bound::Included(s) => s.as_ref().to_vec(),
        Bound::Excluded(s) => successor(s.as_ref()),
        Bound::Unbounded => Vec::new(),
    };
    let (end, last) = match range.end_bound() {
        Bound::Excluded(e) => (e.as_ref().to_vec(), None),
        Bound::Included(e) if e.as_ref().len() < KEY_BYTES_MAX => (successor(e.as_ref()), None),
        // A longest key has no successor that is a key: end at it and
        // delete it too.
        Bound::Included(e) => (e.as_ref().to_vec(), Some(e.as_ref().to_vec())),
        Bound::Unbounded => (max_key(), Some(max_key())),
    };
    (start, end, last)
}

/// The [`Span`] of every key starting with `prefix`.
pub(crate) fn prefix_span(prefix: &[u8]) -> Span {
    match prefix_end(prefix) {
        Some(end) => (prefix.to_vec(), end, None),
        None => (prefix.to_vec(), max_key(), Some(max_key())),
    }
}

/// Adds to `batch` the range tombstone of every key starting with
/// `prefix` in `keyspace`.
pub(crate) fn push_prefix_delete(batch: &mut kevo_wal::Batch, keyspace: KeyspaceId, prefix: &[u8]) {
    let (start, end, last) = prefix_span(prefix);
    push_span(batch, keyspace, start, end, last);
}

fn push_span(
    batch: &mut kevo_wal::Batch,
    keyspace: KeyspaceId,
    start: Vec<u8>,
    end: Vec<u8>,
    last: Option<Vec<u8>>,
) {
    // A key longer than the largest is refused by the write, like any.
    let covers = last.as_ref().is_some_and(|last| start <= *last);
    batch.delete_range_in(keyspace, &start, &end);
    if let Some(last) = last
        && covers
    {
        batch.delete_in(keyspace, last);
    }
}

/// The smallest key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// The first key after every key starting with `prefix`, if there is one
/// (none for an empty prefix or one of `0xff` bytes only).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let keep = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=keep].to_vec();
    end[keep] += 1;
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::DEFAULT_KEYSPACE;
    use kevo_wal::{Batch, EntryKind};

    fn entries(batch: &Batch) -> Vec<(EntryKind, Vec<u8>, Vec<u8>)> {
        batch
            .iter()
            .map(|e| (e.kind, e.key.to_vec(), e.value.to_vec()))
            .collect()
    }

    #[test]
    fn ranges_become_half_open_spans() {
        let mut b = Batch::new();
        push_range_delete(&mut b, DEFAULT_KEYSPACE, &("a".."c"));
        push_range_delete(&mut b, DEFAULT_KEYSPACE, &("a"..="c"));
        push_range_delete::<&str, _>(
            &mut b,
            DEFAULT_KEYSPACE,
            &(Bound::Excluded("a"), Bound::Excluded("c")),
        );
        let r = EntryKind::RangeDelete;
        assert_eq!(
            entries(&b),
            vec![
                (r, b"a".to_vec(), b"c".to_vec()),
                (r, b"a".to_vec(), b"c\0".to_vec()),
                (r, b"a\0".to_vec(), b"c".to_vec()),
            ]
        );
    }

    #[test]
    fn unbounded_ranges_and_prefixes_reach_the_largest_key() {
        let mut b = Batch::new();
        push_range_delete::<&[u8], _>(&mut b, DEFAULT_KEYSPACE, &(..));
        let e = entries(&b);
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].0, &e[0].1[..], e[0].2.len()),
            (EntryKind::RangeDelete, &b""[..], KEY_BYTES_MAX)
        );
        assert_eq!((e[1].0, e[1].1.len()), (EntryKind::Delete, KEY_BYTES_MAX));
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
        let mut p = Batch::new();
        push_prefix_delete(&mut p, DEFAULT_KEYSPACE, b"ab");
        assert_eq!(
            entries(&p),
            vec![(EntryKind::RangeDelete, b"ab".to_vec(), b"ac".to_vec())]
        );
        assert!(b.check_limits().is_ok());
    }
}
