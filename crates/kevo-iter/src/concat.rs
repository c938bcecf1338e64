//! [`ConcatCursor`]: one cursor over a run of sorted, disjoint sources (the
//! tables of one level), opening only the source it stands in.

use std::cmp::Ordering;

use kevo_core::{Cursor, Result, compare_internal_keys};

/// A run of sorted sources whose key ranges do not overlap and are in
/// ascending order: source `i`'s largest key sorts before source `i + 1`'s
/// smallest. The tables of one level below L0 are such a run.
pub trait ConcatSource {
    /// The cursor over one source.
    type Cursor: Cursor;

    /// How many sources there are.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Source `i`'s smallest internal key.
    fn smallest(&self, i: usize) -> &[u8];

    /// Source `i`'s largest internal key.
    fn largest(&self, i: usize) -> &[u8];

    /// Opens a cursor over source `i` (not positioned).
    ///
    /// # Errors
    /// Whatever opening the source reports (I/O, corruption).
    fn open(&self, i: usize) -> Result<Self::Cursor>;
}

/// A [`Cursor`] over a [`ConcatSource`]: the sources one after another.
///
/// Only the source the cursor stands in is open; a seek binary-searches the
/// sources' key ranges and opens one (or, when the target falls between two
/// sources or a source turns out to hold nothing past it, the next). So a
/// seek into a level costs one table, not one per table as merging every
/// table of the level would.
pub struct ConcatCursor<S: ConcatSource> {
    source: S,
    /// The open source and its index.
    current: Option<(usize, S::Cursor)>,
}

impl<S: ConcatSource> std::fmt::Debug for ConcatCursor<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcatCursor")
            .field("sources", &self.source.len())
            .field("current", &self.current.as_ref().map(|(i, _)| *i))
            .finish()
    }
}

impl<S: ConcatSource> ConcatCursor<S> {
    /// A cursor over `source`, not positioned.
    pub fn new(source: S) -> Self {
        ConcatCursor {
            source,
            current: None,
        }
    }

    /// Opens source `i` (reusing it if it is the open one), applies `action`
    /// to its cursor, and says whether the cursor is then valid.
    fn at(&mut self, i: usize, action: impl FnOnce(&mut S::Cursor) -> Result<()>) -> Result<bool> {
        if self.current.as_ref().map(|(open, _)| *open) != Some(i) {
            self.current = None;
            let cursor = self.source.open(i)?;
            self.current = Some((i, cursor));
        }
        match &mut self.current {
            Some((_, cursor)) => {
                action(cursor)?;
                Ok(cursor.valid())
            }
            None => Ok(false),
        }
    }

    /// Positions at the first entry of source `i` or, if it is empty, of the
    /// first non-empty source after it.
    fn first_from(&mut self, mut i: usize) -> Result<()> {
        while i < self.source.len() {
            if self.at(i, |c| c.seek_to_first())? {
                return Ok(());
            }
            i += 1;
        }
        self.current = None;
        Ok(())
    }

    /// Positions at the last entry of source `i` or, if it is empty, of the
    /// last non-empty source before it.
    fn last_from(&mut self, i: Option<usize>) -> Result<()> {
        let mut i = i;
        while let Some(at) = i {
            if self.at(at, |c| c.seek_to_last())? {
                return Ok(());
            }
            i = at.checked_sub(1);
        }
        self.current = None;
        Ok(())
    }

    fn valid_cursor(&self) -> Option<&S::Cursor> {
        self.current
            .as_ref()
            .map(|(_, cursor)| cursor)
            .filter(|c| c.valid())
    }
}

impl<S: ConcatSource> Cursor for ConcatCursor<S> {
    fn valid(&self) -> bool {
        self.valid_cursor().is_some()
    }

    // Called only while valid (the `Cursor` contract): the open source's
    // cursor answers without a second validity check per call.
    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |(_, c)| c.key())
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |(_, c)| c.value())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        // The first source whose largest key is at or after the target.
        let (mut lo, mut hi) = (0, self.source.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if compare_internal_keys(self.source.largest(mid), target) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == self.source.len() {
            self.current = None;
            return Ok(());
        }
        if self.at(lo, |c| c.seek(target))? {
            return Ok(());
        }
        self.first_from(lo + 1)
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        // The last source whose smallest key is at or before the target.
        let (mut lo, mut hi) = (0, self.source.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if compare_internal_keys(self.source.smallest(mid), target) != Ordering::Greater {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let Some(at) = lo.checked_sub(1) else {
            self.current = None;
            return Ok(());
        };
        if self.at(at, |c| c.seek_for_prev(target))? {
            return Ok(());
        }
        self.last_from(at.checked_sub(1))
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.first_from(0)
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.last_from(self.source.len().checked_sub(1))
    }

    fn next(&mut self) -> Result<()> {
        let Some((i, cursor)) = &mut self.current else {
            return Ok(());
        };
        let i = *i;
        cursor.next()?;
        if cursor.valid() {
            return Ok(());
        }
        self.first_from(i + 1)
    }

    fn prev(&mut self) -> Result<()> {
        let Some((i, cursor)) = &mut self.current else {
            return Ok(());
        };
        let i = *i;
        cursor.prev()?;
        if cursor.valid() {
            return Ok(());
        }
        self.last_from(i.checked_sub(1))
    }

    /// Closes the open source's cursor: a level cursor put aside keeps no
    /// table open (the table cache may have let it go since), and the next
    /// seek opens the one it lands in, as a new cursor would.
    fn release(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use bytes::Bytes;
    use kevo_core::{InternalKey, ValueKind};
    use proptest::prelude::*;

    use super::*;
    use crate::VecCursor;

    struct Run {
        parts: Vec<(Vec<u8>, Vec<u8>, VecCursor)>,
        opened: Cell<usize>,
    }

    impl ConcatSource for &Run {
        type Cursor = VecCursor;
        fn len(&self) -> usize {
            self.parts.len()
        }
        fn smallest(&self, i: usize) -> &[u8] {
            &self.parts[i].0
        }
        fn largest(&self, i: usize) -> &[u8] {
            &self.parts[i].1
        }
        fn open(&self, i: usize) -> Result<VecCursor> {
            self.opened.set(self.opened.get() + 1);
            Ok(self.parts[i].2.clone())
        }
    }

    fn entry(k: u16) -> (Bytes, Bytes) {
        let key = InternalKey::new(format!("k{k:05}").as_bytes(), 1, ValueKind::Put);
        (
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::from(format!("v{k}")),
        )
    }

    /// Splits sorted distinct keys into runs of the given sizes.
    fn build(keys: &[u16], sizes: &[usize]) -> (Run, VecCursor) {
        let entries: Vec<_> = keys.iter().map(|&k| entry(k)).collect();
        let mut parts = Vec::new();
        let mut at = 0;
        for &size in sizes {
            if at >= entries.len() {
                break;
            }
            let end = (at + size.max(1)).min(entries.len());
            let slice = entries[at..end].to_vec();
            let smallest = slice[0].0.to_vec();
            let largest = slice[slice.len() - 1].0.to_vec();
            parts.push((smallest, largest, VecCursor::from_unsorted(slice).unwrap()));
            at = end;
        }
        if at < entries.len() {
            let slice = entries[at..].to_vec();
            let smallest = slice[0].0.to_vec();
            let largest = slice[slice.len() - 1].0.to_vec();
            parts.push((smallest, largest, VecCursor::from_unsorted(slice).unwrap()));
        }
        let model = VecCursor::from_unsorted(entries).unwrap();
        (
            Run {
                parts,
                opened: Cell::new(0),
            },
            model,
        )
    }

    fn same(a: &impl Cursor, b: &impl Cursor) -> bool {
        a.valid() == b.valid() && (!a.valid() || (a.key() == b.key() && a.value() == b.value()))
    }

    #[test]
    fn a_seek_opens_one_source() {
        let keys: Vec<u16> = (0..100).map(|k| k * 2).collect();
        let (run, _) = build(&keys, &[10; 10]);
        let mut cursor = ConcatCursor::new(&run);
        cursor.seek(entry(101).0.as_ref()).unwrap();
        assert_eq!(cursor.key(), entry(102).0.as_ref());
        assert_eq!(run.opened.get(), 1);
        // Between two sources: the seek lands on the next one's first key.
        cursor.seek(entry(19).0.as_ref()).unwrap();
        assert_eq!(cursor.key(), entry(20).0.as_ref());
        cursor.seek_for_prev(entry(19).0.as_ref()).unwrap();
        assert_eq!(cursor.key(), entry(18).0.as_ref());
    }

    #[test]
    fn empty_run() {
        let run = Run {
            parts: Vec::new(),
            opened: Cell::new(0),
        };
        let mut cursor = ConcatCursor::new(&run);
        cursor.seek_to_first().unwrap();
        assert!(!cursor.valid());
        cursor.seek_to_last().unwrap();
        assert!(!cursor.valid());
        cursor.seek(b"x").unwrap();
        assert!(!cursor.valid());
        cursor.seek_for_prev(b"x").unwrap();
        assert!(!cursor.valid());
    }

    #[derive(Debug, Clone)]
    enum Move {
        Seek(u16),
        SeekForPrev(u16),
        First,
        Last,
        Next,
        Prev,
    }

    fn moves() -> impl Strategy<Value = Move> {
        prop_oneof![
            (0u16..300).prop_map(Move::Seek),
            (0u16..300).prop_map(Move::SeekForPrev),
            Just(Move::First),
            Just(Move::Last),
            Just(Move::Next),
            Just(Move::Next),
            Just(Move::Prev),
            Just(Move::Prev),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_one_sorted_source(
            keys in prop::collection::btree_set(0u16..300, 0..120),
            sizes in prop::collection::vec(1usize..20, 1..20),
            steps in prop::collection::vec(moves(), 1..60),
        ) {
            let keys: Vec<u16> = keys.into_iter().collect();
            let (run, mut model) = build(&keys, &sizes);
            let mut cursor = ConcatCursor::new(&run);
            for step in steps {
                match step {
                    Move::Seek(k) => {
                        let target = InternalKey::for_lookup(format!("k{k:05}").as_bytes(), 1);
                        cursor.seek(target.as_bytes()).unwrap();
                        model.seek(target.as_bytes()).unwrap();
                    }
                    Move::SeekForPrev(k) => {
                        let target = entry(k).0;
                        cursor.seek_for_prev(&target).unwrap();
                        model.seek_for_prev(&target).unwrap();
                    }
                    Move::First => {
                        cursor.seek_to_first().unwrap();
                        model.seek_to_first().unwrap();
                    }
                    Move::Last => {
                        cursor.seek_to_last().unwrap();
                        model.seek_to_last().unwrap();
                    }
                    Move::Next if model.valid() => {
                        cursor.next().unwrap();
                        model.next().unwrap();
                    }
                    Move::Prev if model.valid() => {
                        cursor.prev().unwrap();
                        model.prev().unwrap();
                    }
                    _ => {}
                }
                prop_assert!(same(&cursor, &model), "{:?} vs {:?}", cursor.valid(), model.valid());
            }
        }
    }
}
