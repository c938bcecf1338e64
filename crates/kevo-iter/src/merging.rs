//! [`MergingCursor`]: one ordered view over many cursors.
//!
//! The children are kept in a binary heap of child indices ordered by each
//! child's current key: a min-heap while moving forward, a max-heap while
//! moving backward. The current entry is the heap's top; a step moves that
//! one child and sifts it back down, `O(log n)` key comparisons.
//!
//! # Changing direction
//!
//! Moving forward, every child other than the current one sits at its first
//! entry *after* the current entry; moving backward, at its last entry
//! *before* it. A step in the other direction must first restore that
//! invariant for the new direction (as LevelDB's `MergingIterator` does):
//!
//! - forward → backward: every other child `seek_for_prev(current key)`, then
//!   steps back over entries that must not come before the current one;
//! - backward → forward: every other child `seek(current key)`, then steps
//!   forward over entries that must not come after it.
//!
//! The current child is already at the current key and is left alone.

use std::cmp::Ordering;

use kevo_core::{Cursor, Result, SeqNo, compare_internal_keys};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
}

/// A [`Cursor`] over the union of its children's entries, in internal-key
/// order.
///
/// The children are any cursors: memtables, tables, levels, other merging
/// cursors, [`VecCursor`](crate::VecCursor)s. By default they are boxed trait
/// objects; the engine can use `MergingCursor<Box<dyn Cursor + Send>>` so the
/// stack can move across threads, and a homogeneous merge can name the child
/// type to avoid the indirection.
///
/// # Order and ties
/// The merged sequence is ordered by `(internal key, child index)`: when
/// children hold equal internal keys (same user key, seqno and kind; an LSM
/// never writes that), the child with the lower index comes first moving
/// forward, and therefore last moving backward. Entries of one user key keep
/// their seqno-descending order whatever child holds them, because that
/// order is part of the internal-key order: merging never reorders equal
/// user keys.
///
/// Each child must hold strictly ascending keys, as the [`Cursor`] contract
/// says.
///
/// # Errors
/// An error from any child is returned as is and leaves the merging cursor
/// invalid (re-seek to use it again).
///
/// ```
/// use bytes::Bytes;
/// use kevo_core::{Cursor, InternalKey, ValueKind};
/// use kevo_iter::{MergingCursor, VecCursor};
///
/// # fn main() -> kevo_core::Result<()> {
/// let source = |key: &[u8], seqno| -> kevo_core::Result<Box<dyn Cursor>> {
///     let key = Bytes::copy_from_slice(InternalKey::new(key, seqno, ValueKind::Put).as_bytes());
///     Ok(Box::new(VecCursor::new(vec![(key, Bytes::new())])?))
/// };
/// let mut merged = MergingCursor::new(vec![source(b"b", 1)?, source(b"a", 2)?]);
/// merged.seek_to_first()?;
/// assert_eq!(kevo_core::user_key(merged.key()), b"a");
/// merged.next()?;
/// assert_eq!(kevo_core::user_key(merged.key()), b"b");
/// merged.prev()?; // a change of direction
/// assert_eq!(kevo_core::user_key(merged.key()), b"a");
/// # Ok(())
/// # }
/// ```
pub struct MergingCursor<C: Cursor = Box<dyn Cursor>> {
    children: Vec<C>,
    /// Indices of the valid children, heap-ordered for `direction`; the top
    /// (`heap[0]`) is the current child. Empty when not valid.
    heap: Vec<usize>,
    /// Where in the heap the runner-up is (the child that comes first
    /// after the top), when known: set by a step whose child kept the top,
    /// cleared by every other change to the heap. While the current child
    /// keeps coming before it, a step costs one comparison instead of a
    /// sift (a scan mostly reads long runs from one level).
    runner_up: Option<usize>,
    direction: Direction,
    /// The current key, copied while changing direction (reused buffer).
    scratch: Vec<u8>,
    /// Per child, the largest seqno it may hold, if known: what
    /// [`Cursor::skip_deleted`] needs to know which children it may seek
    /// past a range tombstone. Empty: unknown (nothing is skipped).
    max_seqnos: Vec<SeqNo>,
}

impl<C: Cursor> MergingCursor<C> {
    /// A merging cursor over `children` (in tie-break order: see the type's
    /// docs). It starts unpositioned.
    pub fn new(children: Vec<C>) -> Self {
        let heap = Vec::with_capacity(children.len());
        MergingCursor {
            children,
            heap,
            runner_up: None,
            direction: Direction::Forward,
            scratch: Vec::new(),
            max_seqnos: Vec::new(),
        }
    }

    /// Records, per child (same order and number as the children), the
    /// largest seqno it may hold. With them, [`Cursor::skip_deleted`] seeks
    /// every child whose entries are all older than a covering range
    /// tombstone past the tombstone's span: one seek per such child instead
    /// of a step per deleted entry (Pebble's merging iterator does the
    /// same per level). A wrong (too small) bound would hide live entries.
    ///
    /// # Panics
    /// If the number of bounds differs from the number of children.
    pub fn with_max_seqnos(mut self, max_seqnos: Vec<SeqNo>) -> Self {
        assert_eq!(
            max_seqnos.len(),
            self.children.len(),
            "one max seqno per child"
        );
        self.max_seqnos = max_seqnos;
        self
    }

    /// Raises the largest seqno recorded for child `index` (see
    /// [`with_max_seqnos`](Self::with_max_seqnos)) to `seqno`: for a
    /// reused cursor whose child (a memtable) took writes since. Does
    /// nothing for a child beyond the last, or when no bounds are recorded.
    pub fn raise_max_seqno(&mut self, index: usize, seqno: SeqNo) {
        if let Some(max) = self.max_seqnos.get_mut(index) {
            *max = (*max).max(seqno);
        }
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Gives the children back.
    pub fn into_children(self) -> Vec<C> {
        self.children
    }

    /// The current child.
    ///
    /// # Panics
    /// If the cursor is not valid.
    fn current(&self) -> &C {
        assert!(
            self.valid(),
            "MergingCursor::key/value on an invalid cursor"
        );
        &self.children[self.heap[0]]
    }

    /// Runs `op` on every child, then rebuilds the heap for `direction`.
    fn reposition_all(
        &mut self,
        direction: Direction,
        mut op: impl FnMut(&mut C) -> Result<()>,
    ) -> Result<()> {
        self.heap.clear();
        self.direction = direction;
        for child in &mut self.children {
            op(child)?;
        }
        self.rebuild_heap();
        Ok(())
    }

    /// Refills the heap with every valid child, ordered for `self.direction`.
    fn rebuild_heap(&mut self) {
        self.runner_up = None;
        self.heap.clear();
        self.heap
            .extend((0..self.children.len()).filter(|&i| self.children[i].valid()));
        let order = HeapOrder {
            children: &self.children,
            direction: self.direction,
        };
        for i in (0..self.heap.len() / 2).rev() {
            order.sift_down(&mut self.heap, i);
        }
    }

    /// Moves every child but the current one to its last entry before the
    /// current one in the merged order, and makes the heap a max-heap.
    fn switch_to_backward(&mut self) -> Result<()> {
        let current = self.heap[0];
        self.scratch.clear();
        self.scratch.extend_from_slice(self.children[current].key());
        self.heap.clear();
        self.direction = Direction::Backward;
        let key = &self.scratch[..];
        for (i, child) in self.children.iter_mut().enumerate() {
            if i == current {
                continue;
            }
            child.seek_for_prev(key)?;
            // A higher-indexed child's equal key comes after the current
            // entry in the merged order, so it must not be visited again.
            if i > current {
                while child.valid() && compare_internal_keys(child.key(), key) == Ordering::Equal {
                    child.prev()?;
                }
            }
        }
        self.rebuild_heap();
        debug_assert_eq!(self.heap.first(), Some(&current));
        Ok(())
    }

    /// Moves every child but the current one to its first entry after the
    /// current one in the merged order, and makes the heap a min-heap.
    fn switch_to_forward(&mut self) -> Result<()> {
        let current = self.heap[0];
        self.scratch.clear();
        self.scratch.extend_from_slice(self.children[current].key());
        self.heap.clear();
        self.direction = Direction::Forward;
        let key = &self.scratch[..];
        for (i, child) in self.children.iter_mut().enumerate() {
            if i == current {
                continue;
            }
            child.seek(key)?;
            // A lower-indexed child's equal key comes before the current
            // entry in the merged order, so it was already visited.
            if i < current {
                while child.valid() && compare_internal_keys(child.key(), key) == Ordering::Equal {
                    child.next()?;
                }
            }
        }
        self.rebuild_heap();
        debug_assert_eq!(self.heap.first(), Some(&current));
        Ok(())
    }

    /// Steps the current child with `step` and restores the heap.
    fn step_current(&mut self, step: impl FnOnce(&mut C) -> Result<()>) -> Result<()> {
        let current = self.heap[0];
        if let Err(e) = step(&mut self.children[current]) {
            self.heap.clear();
            self.runner_up = None;
            return Err(e);
        }
        let order = HeapOrder {
            children: &self.children,
            direction: self.direction,
        };
        if self.children[current].valid() {
            if let Some(at) = self.runner_up {
                // The rest of the heap is as it was: the top keeps its place
                // if it still comes before the runner-up.
                let runner_up = self.heap[at];
                let key = self.children[current].key();
                if order.before_key(current, key, runner_up, self.children[runner_up].key()) {
                    return Ok(());
                }
            }
            self.runner_up = order.sift_down(&mut self.heap, 0);
        } else {
            self.runner_up = None;
            order.pop_top(&mut self.heap);
        }
        Ok(())
    }

    /// Makes the cursor invalid if `result` is an error.
    fn invalid_on_err(&mut self, result: Result<()>) -> Result<()> {
        if result.is_err() {
            self.heap.clear();
        }
        result
    }
}

impl<C: Cursor> Cursor for MergingCursor<C> {
    fn valid(&self) -> bool {
        !self.heap.is_empty()
    }

    /// # Panics
    /// If the cursor is not valid.
    fn key(&self) -> &[u8] {
        self.current().key()
    }

    /// # Panics
    /// If the cursor is not valid.
    fn value(&self) -> &[u8] {
        self.current().value()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let result = self.reposition_all(Direction::Forward, |c| c.seek(target));
        self.invalid_on_err(result)
    }

    /// Seeks the children whose largest seqno (see
    /// [`MergingCursor::with_max_seqnos`]) is below `seqno` to `skip_to`,
    /// the others to `target`.
    fn seek_past_deleted(&mut self, target: &[u8], skip_to: &[u8], seqno: SeqNo) -> Result<()> {
        if self.max_seqnos.is_empty() {
            return self.seek(target);
        }
        self.heap.clear();
        self.direction = Direction::Forward;
        let mut result = Ok(());
        for (child, &max) in self.children.iter_mut().zip(&self.max_seqnos) {
            result = child.seek(if max < seqno { skip_to } else { target });
            if result.is_err() {
                break;
            }
        }
        self.rebuild_heap();
        self.invalid_on_err(result)
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let result = self.reposition_all(Direction::Backward, |c| c.seek_for_prev(target));
        self.invalid_on_err(result)
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let result = self.reposition_all(Direction::Forward, C::seek_to_first);
        self.invalid_on_err(result)
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let result = self.reposition_all(Direction::Backward, C::seek_to_last);
        self.invalid_on_err(result)
    }

    fn next(&mut self) -> Result<()> {
        debug_assert!(self.valid(), "MergingCursor::next on an invalid cursor");
        if !self.valid() {
            return Ok(());
        }
        if self.direction == Direction::Backward {
            let result = self.switch_to_forward();
            self.invalid_on_err(result)?;
        }
        self.step_current(C::next)
    }

    fn prev(&mut self) -> Result<()> {
        debug_assert!(self.valid(), "MergingCursor::prev on an invalid cursor");
        if !self.valid() {
            return Ok(());
        }
        if self.direction == Direction::Forward {
            let result = self.switch_to_backward();
            self.invalid_on_err(result)?;
        }
        self.step_current(C::prev)
    }

    /// Seeks every child whose largest seqno (see
    /// [`MergingCursor::with_max_seqnos`]) is below `seqno`, and which has
    /// not yet passed `target`, to `target` (forward: its first entry at or
    /// after it; backward: its last entry at or before it). Children that
    /// may hold newer entries are left where they are. Only in the
    /// direction the cursor moves; the other is a no-op.
    fn skip_deleted(&mut self, target: &[u8], seqno: SeqNo, forward: bool) -> Result<bool> {
        let direction = if forward {
            Direction::Forward
        } else {
            Direction::Backward
        };
        if !self.valid() || self.max_seqnos.is_empty() || self.direction != direction {
            return Ok(false);
        }
        let mut moved = false;
        let mut result = Ok(());
        for (child, &max) in self.children.iter_mut().zip(&self.max_seqnos) {
            if max >= seqno || !child.valid() {
                continue;
            }
            let order = compare_internal_keys(child.key(), target);
            if forward && order == Ordering::Less {
                result = child.seek(target);
                moved = true;
            } else if !forward && order == Ordering::Greater {
                result = child.seek_for_prev(target);
                moved = true;
            }
            if result.is_err() {
                break;
            }
        }
        if moved {
            self.rebuild_heap();
        }
        self.invalid_on_err(result)?;
        Ok(moved)
    }

    fn release(&mut self) {
        self.heap.clear();
        self.runner_up = None;
        for child in &mut self.children {
            child.release();
        }
    }
}

impl<C: Cursor> std::fmt::Debug for MergingCursor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergingCursor")
            .field("children", &self.children.len())
            .field("current", &self.heap.first())
            .field("direction", &self.direction)
            .finish()
    }
}

/// The heap order: which of two valid children comes first in the current
/// direction. Kept apart from the cursor so the heap (a `&mut` borrow) can
/// be sifted while the children are read.
struct HeapOrder<'a, C> {
    children: &'a [C],
    direction: Direction,
}

impl<C: Cursor> HeapOrder<'_, C> {
    /// Whether child `a` (at key `a_key`) must be nearer the top than child
    /// `b` (at `b_key`): the smaller `(key, index)` moving forward, the
    /// larger moving backward.
    fn before_key(&self, a: usize, a_key: &[u8], b: usize, b_key: &[u8]) -> bool {
        let order = compare_internal_keys(a_key, b_key).then(a.cmp(&b));
        match self.direction {
            Direction::Forward => order == Ordering::Less,
            Direction::Backward => order == Ordering::Greater,
        }
    }

    /// Moves `heap[i]` down to its place. Every key is fetched once (a
    /// child's `key()` is a virtual call through the levels below it); each
    /// level costs one comparison between the two children and one with
    /// the moving key. Returns, if `heap[i]` stayed where it was and has a
    /// child, the position of the child that comes first (for `i = 0`: the
    /// runner-up).
    fn sift_down(&self, heap: &mut [usize], mut i: usize) -> Option<usize> {
        let start = i;
        let moving = heap[i];
        let moving_key = self.children[moving].key();
        let mut stayed_before = None;
        loop {
            let left = 2 * i + 1;
            if left >= heap.len() {
                break;
            }
            let (mut child, mut child_key) = (left, self.children[heap[left]].key());
            if let Some(&right) = heap.get(left + 1) {
                let right_key = self.children[right].key();
                if self.before_key(right, right_key, heap[left], child_key) {
                    (child, child_key) = (left + 1, right_key);
                }
            }
            if !self.before_key(heap[child], child_key, moving, moving_key) {
                if i == start {
                    stayed_before = Some(child);
                }
                break;
            }
            heap[i] = heap[child];
            i = child;
        }
        heap[i] = moving;
        stayed_before
    }

    fn pop_top(&self, heap: &mut Vec<usize>) {
        if let Some(last) = heap.pop()
            && !heap.is_empty()
        {
            heap[0] = last;
            self.sift_down(heap, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecCursor;
    use bytes::Bytes;
    use kevo_core::{InternalKey, ValueKind, user_key};

    /// A source holding `(user key, seqno)` puts whose value names the
    /// source and the seqno.
    fn source(id: usize, entries: &[(&str, u64)]) -> VecCursor {
        VecCursor::from_unsorted(
            entries
                .iter()
                .map(|&(key, seqno)| {
                    let ik = InternalKey::new(key.as_bytes(), seqno, ValueKind::Put);
                    (
                        Bytes::copy_from_slice(ik.as_bytes()),
                        Bytes::from(format!("{id}:{key}@{seqno}")),
                    )
                })
                .collect(),
        )
        .unwrap()
    }

    fn current(c: &MergingCursor<VecCursor>) -> Option<String> {
        c.valid()
            .then(|| String::from_utf8(c.value().to_vec()).unwrap())
    }

    fn scan_forward(c: &mut MergingCursor<VecCursor>) -> Vec<String> {
        let mut out = Vec::new();
        c.seek_to_first().unwrap();
        while let Some(v) = current(c) {
            out.push(v);
            c.next().unwrap();
        }
        out
    }

    fn scan_backward(c: &mut MergingCursor<VecCursor>) -> Vec<String> {
        let mut out = Vec::new();
        c.seek_to_last().unwrap();
        while let Some(v) = current(c) {
            out.push(v);
            c.prev().unwrap();
        }
        out
    }

    fn three_sources() -> MergingCursor<VecCursor> {
        MergingCursor::new(vec![
            source(0, &[("a", 1), ("d", 4)]),
            source(1, &[("b", 2), ("e", 5)]),
            source(2, &[("c", 3), ("f", 6)]),
        ])
    }

    #[test]
    fn merging_yields_union_in_key_order() {
        let mut c = three_sources();
        assert_eq!(
            scan_forward(&mut c),
            ["0:a@1", "1:b@2", "2:c@3", "0:d@4", "1:e@5", "2:f@6"]
        );
    }

    #[test]
    fn merging_backward_yields_reverse_order() {
        let mut c = three_sources();
        assert_eq!(
            scan_backward(&mut c),
            ["2:f@6", "1:e@5", "0:d@4", "2:c@3", "1:b@2", "0:a@1"]
        );
    }

    #[test]
    fn merging_changes_direction_mid_scan() {
        let mut c = three_sources();
        c.seek_to_first().unwrap();
        c.next().unwrap();
        c.next().unwrap();
        assert_eq!(current(&c).unwrap(), "2:c@3");
        c.prev().unwrap();
        assert_eq!(current(&c).unwrap(), "1:b@2");
        c.next().unwrap();
        assert_eq!(current(&c).unwrap(), "2:c@3");
        c.next().unwrap();
        assert_eq!(current(&c).unwrap(), "0:d@4");
        c.prev().unwrap();
        c.prev().unwrap();
        assert_eq!(current(&c).unwrap(), "1:b@2");
    }

    #[test]
    fn merging_changes_direction_after_seek() {
        let mut c = three_sources();
        c.seek(InternalKey::for_lookup(b"c", 100).as_bytes())
            .unwrap();
        assert_eq!(current(&c).unwrap(), "2:c@3");
        c.prev().unwrap();
        assert_eq!(current(&c).unwrap(), "1:b@2");
        c.seek_for_prev(InternalKey::for_lookup(b"e", 100).as_bytes())
            .unwrap();
        assert_eq!(current(&c).unwrap(), "0:d@4");
        c.next().unwrap();
        assert_eq!(current(&c).unwrap(), "1:e@5");
    }

    #[test]
    fn merging_keeps_seqno_order_of_a_user_key_across_sources() {
        let mut c = MergingCursor::new(vec![
            source(0, &[("k", 3), ("k", 8)]),
            source(1, &[("k", 5), ("k", 9)]),
            source(2, &[("k", 1)]),
        ]);
        let forward = scan_forward(&mut c);
        assert_eq!(forward, ["1:k@9", "0:k@8", "1:k@5", "0:k@3", "2:k@1"]);
        let mut backward = scan_backward(&mut c);
        backward.reverse();
        assert_eq!(backward, forward);
    }

    #[test]
    fn equal_keys_tie_to_the_lower_child_index() {
        let mut c = MergingCursor::new(vec![
            source(0, &[("k", 5)]),
            source(1, &[("k", 5)]),
            source(2, &[("k", 5)]),
        ]);
        assert_eq!(scan_forward(&mut c), ["0:k@5", "1:k@5", "2:k@5"]);
        assert_eq!(scan_backward(&mut c), ["2:k@5", "1:k@5", "0:k@5"]);
        // Direction changes among the equal keys keep that one order.
        c.seek_to_first().unwrap();
        c.next().unwrap();
        assert_eq!(current(&c).unwrap(), "1:k@5");
        c.prev().unwrap();
        assert_eq!(current(&c).unwrap(), "0:k@5");
        c.next().unwrap();
        c.next().unwrap();
        assert_eq!(current(&c).unwrap(), "2:k@5");
        c.prev().unwrap();
        assert_eq!(current(&c).unwrap(), "1:k@5");
    }

    #[test]
    fn merging_nothing_is_never_valid() {
        let mut c: MergingCursor<VecCursor> = MergingCursor::new(Vec::new());
        c.seek_to_first().unwrap();
        assert!(!c.valid());
        c.seek_to_last().unwrap();
        assert!(!c.valid());
    }

    #[test]
    fn exhausted_children_rejoin_after_a_direction_change() {
        // Child 1 runs out first moving forward; moving back must find it.
        let mut c = MergingCursor::new(vec![
            source(0, &[("a", 1), ("z", 2)]),
            source(1, &[("m", 3)]),
        ]);
        c.seek(InternalKey::for_lookup(b"n", 100).as_bytes())
            .unwrap();
        assert_eq!(user_key(c.key()), b"z");
        c.prev().unwrap();
        assert_eq!(user_key(c.key()), b"m");
        c.prev().unwrap();
        assert_eq!(user_key(c.key()), b"a");
        c.prev().unwrap();
        assert!(!c.valid());
    }

    #[test]
    fn boxed_children_of_mixed_types_merge() {
        let children: Vec<Box<dyn Cursor>> = vec![
            Box::new(source(0, &[("a", 1)])),
            Box::new(MergingCursor::new(vec![source(1, &[("b", 2)])])),
        ];
        let mut c = MergingCursor::new(children);
        c.seek_to_last().unwrap();
        assert_eq!(user_key(c.key()), b"b");
        c.prev().unwrap();
        assert_eq!(user_key(c.key()), b"a");
    }

    /// A source whose `seek_for_prev` fails (as a table read might).
    struct SeekForPrevFails(VecCursor);

    impl Cursor for SeekForPrevFails {
        fn valid(&self) -> bool {
            self.0.valid()
        }
        fn key(&self) -> &[u8] {
            self.0.key()
        }
        fn value(&self) -> &[u8] {
            self.0.value()
        }
        fn seek(&mut self, target: &[u8]) -> Result<()> {
            self.0.seek(target)
        }
        fn seek_for_prev(&mut self, _target: &[u8]) -> Result<()> {
            self.0 = VecCursor::new(Vec::new()).unwrap();
            Err(kevo_core::Error::corruption("000009.sst", 0, "bad index"))
        }
        fn seek_to_first(&mut self) -> Result<()> {
            self.0.seek_to_first()
        }
        fn seek_to_last(&mut self) -> Result<()> {
            self.0.seek_to_last()
        }
        fn next(&mut self) -> Result<()> {
            self.0.next()
        }
        fn prev(&mut self) -> Result<()> {
            self.0.prev()
        }
    }

    #[test]
    fn child_error_during_direction_change_leaves_cursor_invalid() {
        let children: Vec<Box<dyn Cursor>> = vec![
            Box::new(source(0, &[("a", 1), ("c", 3)])),
            Box::new(SeekForPrevFails(source(1, &[("b", 2)]))),
        ];
        let mut c = MergingCursor::new(children);
        c.seek_to_first().unwrap();
        c.next().unwrap();
        c.next().unwrap();
        assert_eq!(user_key(c.key()), b"c");
        let err = c.prev().unwrap_err();
        assert!(err.is_corruption());
        assert!(!c.valid());
        // A fresh seek makes it usable again.
        c.seek_to_first().unwrap();
        assert_eq!(user_key(c.key()), b"a");
    }
}
