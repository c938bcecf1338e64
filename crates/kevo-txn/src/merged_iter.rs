//! [`MergedIter`]: a transaction's view of a key range, its own buffered
//! writes laid over the snapshot it reads at.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::iter::FusedIterator;

use bytes::Bytes;

/// The union of a snapshot's entries and a transaction's buffered writes,
/// in key order, from either end (read-your-writes).
///
/// - Where both hold a key, the buffered write wins; a buffered delete hides
///   the key.
/// - The front and the back meet in the middle without repeating or skipping
///   an entry, in any interleaving of `next` and `next_back`, like
///   `BTreeMap::range`.
/// - An error from the base is returned once; the iterator is fused after it.
///
/// Invariants between calls: every base entry not yet yielded is `front`,
/// `back`, or still inside `base`, in that key order; every buffered entry
/// not yet yielded is in `buffer`.
pub struct MergedIter<I, E> {
    base: I,
    /// The base returned `None` from one end, so from both: whatever it
    /// still holds is in `front` and `back`.
    base_done: bool,
    /// A base entry taken from the front and not yet yielded.
    front: Option<(Bytes, Bytes)>,
    /// A base entry taken from the back and not yet yielded.
    back: Option<(Bytes, Bytes)>,
    buffer: VecDeque<(Bytes, Option<Bytes>)>,
    /// Set after an error: fused.
    failed: bool,
    _error: std::marker::PhantomData<fn() -> E>,
}

impl<I, E> MergedIter<I, E>
where
    I: DoubleEndedIterator<Item = Result<(Bytes, Bytes), E>>,
{
    /// Merges `base`, the snapshot's entries in key order, with `buffer`,
    /// the transaction's buffered entries over the same key range in key
    /// order (`None` = delete), such as [`WriteBuffer::range`] returns.
    ///
    /// REQUIRES: `base` yields strictly increasing keys and its two ends meet
    /// in the middle (once it returns `None` from one end it holds nothing
    /// more); `buffer` keys are strictly increasing. Checked for `buffer` in
    /// debug builds.
    ///
    /// [`WriteBuffer::range`]: crate::WriteBuffer::range
    pub fn new(base: I, buffer: Vec<(Bytes, Option<Bytes>)>) -> Self {
        debug_assert!(
            buffer.windows(2).all(|w| w[0].0 < w[1].0),
            "buffer keys must be strictly increasing"
        );
        Self {
            base,
            base_done: false,
            front: None,
            back: None,
            buffer: buffer.into(),
            failed: false,
            _error: std::marker::PhantomData,
        }
    }

    /// Makes `front` the smallest base entry not yet yielded, if any.
    fn fill_front(&mut self) -> Result<(), E> {
        if self.front.is_none() && !self.base_done {
            match self.base.next() {
                Some(Ok(entry)) => self.front = Some(entry),
                Some(Err(e)) => return Err(e),
                None => self.base_done = true,
            }
        }
        if self.front.is_none() {
            // The base is exhausted between the ends: what is left of it is
            // the entry peeked at from the back.
            self.front = self.back.take();
        }
        Ok(())
    }

    /// Makes `back` the largest base entry not yet yielded, if any.
    fn fill_back(&mut self) -> Result<(), E> {
        if self.back.is_none() && !self.base_done {
            match self.base.next_back() {
                Some(Ok(entry)) => self.back = Some(entry),
                Some(Err(e)) => return Err(e),
                None => self.base_done = true,
            }
        }
        if self.back.is_none() {
            self.back = self.front.take();
        }
        Ok(())
    }

    /// Records the error and fuses the iterator.
    fn fail(&mut self, e: E) -> Option<Result<(Bytes, Bytes), E>> {
        self.failed = true;
        self.front = None;
        self.back = None;
        self.buffer.clear();
        Some(Err(e))
    }
}

/// Which source the next entry comes from.
enum Next {
    Base,
    Buffer,
    /// Both hold the key: the buffered write wins, the base entry is dropped.
    Both,
}

/// Picks the source of the next entry from the keys each offers at one end:
/// the smaller key going forward, the larger going backward. `None` when
/// both are exhausted.
fn pick(base: Option<&Bytes>, buffer: Option<&Bytes>, forward: bool) -> Option<Next> {
    match (base, buffer) {
        (None, None) => None,
        (Some(_), None) => Some(Next::Base),
        (None, Some(_)) => Some(Next::Buffer),
        (Some(b), Some(w)) => Some(match (b.cmp(w), forward) {
            (Ordering::Equal, _) => Next::Both,
            (Ordering::Less, true) | (Ordering::Greater, false) => Next::Base,
            (Ordering::Less, false) | (Ordering::Greater, true) => Next::Buffer,
        }),
    }
}

impl<I, E> Iterator for MergedIter<I, E>
where
    I: DoubleEndedIterator<Item = Result<(Bytes, Bytes), E>>,
{
    type Item = Result<(Bytes, Bytes), E>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Err(e) = self.fill_front() {
                return self.fail(e);
            }
            let base_key = self.front.as_ref().map(|(k, _)| k);
            let buffer_key = self.buffer.front().map(|(k, _)| k);
            match pick(base_key, buffer_key, true)? {
                Next::Base => return self.front.take().map(Ok),
                Next::Both => self.front = None,
                Next::Buffer => {}
            }
            if let Some((key, Some(value))) = self.buffer.pop_front() {
                return Some(Ok((key, value)));
            }
            // A buffered delete: the key is hidden; look further.
        }
    }
}

impl<I, E> DoubleEndedIterator for MergedIter<I, E>
where
    I: DoubleEndedIterator<Item = Result<(Bytes, Bytes), E>>,
{
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Err(e) = self.fill_back() {
                return self.fail(e);
            }
            let base_key = self.back.as_ref().map(|(k, _)| k);
            let buffer_key = self.buffer.back().map(|(k, _)| k);
            match pick(base_key, buffer_key, false)? {
                Next::Base => return self.back.take().map(Ok),
                Next::Both => self.back = None,
                Next::Buffer => {}
            }
            if let Some((key, Some(value))) = self.buffer.pop_back() {
                return Some(Ok((key, value)));
            }
        }
    }
}

impl<I, E> FusedIterator for MergedIter<I, E> where
    I: DoubleEndedIterator<Item = Result<(Bytes, Bytes), E>>
{
}

impl<I, E> std::fmt::Debug for MergedIter<I, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergedIter")
            .field("front", &self.front)
            .field("back", &self.back)
            .field("buffer_left", &self.buffer.len())
            .field("base_done", &self.base_done)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entry = Result<(Bytes, Bytes), &'static str>;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn base(keys: &[&str]) -> std::vec::IntoIter<Entry> {
        keys.iter()
            .map(|k| Ok((b(k), b(&format!("base-{k}")))))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn put(k: &str) -> (Bytes, Option<Bytes>) {
        (b(k), Some(b(&format!("buf-{k}"))))
    }

    fn del(k: &str) -> (Bytes, Option<Bytes>) {
        (b(k), None)
    }

    fn keys(items: Vec<Entry>) -> Vec<String> {
        items
            .into_iter()
            .map(|e| {
                let (k, v) = e.unwrap();
                format!(
                    "{}={}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                )
            })
            .collect()
    }

    #[test]
    fn buffer_wins_on_equal_keys_and_deletes_hide() {
        let it = MergedIter::new(
            base(&["a", "b", "c", "d"]),
            vec![put("b"), del("c"), put("e")],
        );
        assert_eq!(
            keys(it.collect()),
            ["a=base-a", "b=buf-b", "d=base-d", "e=buf-e"]
        );
    }

    #[test]
    fn reverse_is_the_forward_order_reversed() {
        let it = MergedIter::new(base(&["a", "b", "c"]), vec![del("a"), put("bb"), del("c")]);
        assert_eq!(keys(it.rev().collect()), ["bb=buf-bb", "b=base-b"]);
    }

    #[test]
    fn deletes_at_both_ends_hide_the_ends() {
        let mut it = MergedIter::new(
            base(&["a", "b", "c", "d"]),
            vec![del("a"), del("b"), del("d")],
        );
        assert_eq!(keys(vec![it.next_back().unwrap()]), ["c=base-c"]);
        assert!(it.next().is_none());
        assert!(it.next_back().is_none());
    }

    #[test]
    fn entry_peeked_from_the_back_is_still_yielded_from_the_front() {
        // The back peeks at "c" from the base, then yields the buffered "d";
        // the front must then find "a", "b" in the base and "c" in the peek.
        let mut it = MergedIter::new(base(&["a", "b", "c"]), vec![put("bb"), put("d")]);
        assert_eq!(keys(vec![it.next_back().unwrap()]), ["d=buf-d"]);
        assert_eq!(
            keys(it.by_ref().collect()),
            ["a=base-a", "b=base-b", "bb=buf-bb", "c=base-c"]
        );
        assert!(it.next_back().is_none());
    }

    #[test]
    fn entry_peeked_from_the_front_is_still_yielded_from_the_back() {
        let mut it = MergedIter::new(base(&["b", "c"]), vec![put("a"), del("c")]);
        assert_eq!(keys(vec![it.next().unwrap()]), ["a=buf-a"]);
        // The front now holds "b" peeked; "c" is deleted.
        assert_eq!(keys(vec![it.next_back().unwrap()]), ["b=base-b"]);
        assert!(it.next().is_none());
    }

    #[test]
    fn equal_key_split_across_ends_is_merged() {
        // Base "b" is peeked by the front while the buffered "b" is the back
        // of the buffer: the delete must still hide it.
        let mut it = MergedIter::new(base(&["b"]), vec![put("a"), del("b")]);
        assert_eq!(keys(vec![it.next().unwrap()]), ["a=buf-a"]);
        assert!(it.next_back().is_none());
        assert!(it.next().is_none());
    }

    #[test]
    fn an_error_is_returned_once_then_fused() {
        let source: Vec<Entry> = vec![
            Ok((b("a"), b("1"))),
            Err("disk on fire"),
            Ok((b("c"), b("3"))),
        ];
        let mut it = MergedIter::new(source.into_iter(), vec![put("0")]);
        assert_eq!(keys(vec![it.next().unwrap()]), ["0=buf-0"]);
        assert_eq!(keys(vec![it.next().unwrap()]), ["a=1"]);
        assert_eq!(it.next(), Some(Err("disk on fire")));
        assert!(it.next().is_none());
        assert!(it.next_back().is_none());
    }

    #[test]
    fn an_error_from_the_back_fuses_both_ends() {
        // The back reads the base's last entry before it can order "z".
        let source: Vec<Entry> = vec![Ok((b("a"), b("1"))), Err("bad block")];
        let mut it = MergedIter::new(source.into_iter(), vec![put("z")]);
        assert_eq!(it.next_back(), Some(Err("bad block")));
        assert!(it.next().is_none());
        assert!(it.next_back().is_none());
    }

    #[test]
    fn empty_sides() {
        let it = MergedIter::new(base(&[]), vec![del("a"), put("b")]);
        assert_eq!(keys(it.collect()), ["b=buf-b"]);
        let it = MergedIter::new(base(&["a"]), Vec::new());
        assert_eq!(keys(it.rev().collect()), ["a=base-a"]);
        let mut it = MergedIter::new(base(&[]), Vec::new());
        assert!(it.next().is_none());
    }
}
