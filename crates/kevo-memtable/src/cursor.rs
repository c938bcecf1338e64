//! A cursor over a memtable that owns its share of the table.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use crossbeam_skiplist::map::Entry;
use kevo_core::{Cursor, Result};

use crate::memtable::MemTable;
use crate::record::{InternalKeyRef, Record};

/// A position in the skip list, borrowing it for `'a`.
type SkipEntry<'a> = Entry<'a, Record, ()>;

/// A [`Cursor`] over a [`MemTable`], made by [`MemTable::cursor`].
///
/// It holds an `Arc` of the table, so it can be stored, moved to another
/// thread and kept after every other handle to the table is dropped.
///
/// - `next` follows the skip list's level-0 link: O(1).
/// - `prev` asks the skip list for the last entry before the current one,
///   which (the list being singly linked, as in LevelDB) is a search from
///   the head: O(log n). Backward scans cost about that much more than
///   forward ones.
/// - `seek*` are O(log n) searches.
///
/// The cursor is not a snapshot: it may yield entries inserted after it was
/// created, wherever they land ahead of it. Readers get isolation from
/// seqnos (skipping entries above their snapshot), not from the memtable.
/// What it does promise, even while a writer inserts: each step moves to
/// the entry immediately after (or before) the current one at that moment,
/// so keys are strictly increasing along `next` and strictly decreasing
/// along `prev`.
///
/// Calling `next` or `prev` on an invalid cursor does nothing (it stays
/// invalid). No method fails: every `Result` is `Ok`.
pub struct MemTableCursor {
    // Field order matters: fields drop in declaration order, so `entry`
    // (which points into the skip list and releases its node reference on
    // drop) goes before the `Arc` that keeps the skip list alive.
    /// The current entry, `None` when invalid.
    ///
    /// The `'static` is a lie told to the type system: the entry borrows
    /// `table.map`. It is sound because `table` keeps the skip list alive
    /// and in place for as long as `self` exists (see [`extend`]), and no
    /// reference with the false lifetime ever leaves this type: `key()` and
    /// `value()` return borrows of `&self`.
    entry: Option<SkipEntry<'static>>,
    table: Arc<MemTable>,
}

/// Extends the lifetime of an entry of `table`'s skip list to `'static`.
///
/// # Safety
/// `entry` must borrow the skip list of a `MemTable` that lives in an
/// `Arc`, and the caller must hold a clone of that `Arc` until the returned
/// entry is dropped. [`MemTableCursor`] does: it stores the entry beside a
/// clone of the `Arc`, in a field declared (and so dropped) before it.
unsafe fn extend(entry: Option<SkipEntry<'_>>) -> Option<SkipEntry<'static>> {
    // SAFETY: only the lifetime parameter changes, so the layout is the
    // same. The borrowed data is the `SkipMap` inside an `Arc<MemTable>`:
    // it sits at a fixed heap address until the `Arc`'s strong count drops
    // to zero, and is never mutated through `&mut` meanwhile (the `Arc` is
    // shared, and `MemTable` has no `&mut self` methods and no interior
    // mutation that moves or frees nodes: entries are never removed). The
    // caller keeps a strong reference alive until the entry is dropped, and
    // the entry's own reference count keeps its node alive, so everything
    // it points to outlives it. Its `Drop` (which pins the epoch and
    // decrements the node's count) therefore runs while the skip list
    // exists.
    unsafe { std::mem::transmute::<Option<SkipEntry<'_>>, Option<SkipEntry<'static>>>(entry) }
}

impl MemTable {
    /// A cursor over the entries, not yet positioned.
    ///
    /// The cursor holds a clone of the `Arc`, so it borrows nothing and may
    /// outlive every other handle to the memtable.
    pub fn cursor(self: &Arc<Self>) -> MemTableCursor {
        MemTableCursor::new(Arc::clone(self))
    }
}

impl MemTableCursor {
    pub(crate) fn new(table: Arc<MemTable>) -> Self {
        MemTableCursor { entry: None, table }
    }

    /// The memtable this cursor walks.
    pub fn memtable(&self) -> &Arc<MemTable> {
        &self.table
    }

    fn record(&self) -> &Record {
        match &self.entry {
            Some(entry) => entry.key(),
            None => panic!("MemTableCursor: key() or value() called on an invalid cursor"),
        }
    }
}

impl Cursor for MemTableCursor {
    fn valid(&self) -> bool {
        self.entry.is_some()
    }

    /// The current entry's internal key.
    ///
    /// # Panics
    /// If the cursor is not valid.
    fn key(&self) -> &[u8] {
        self.record().internal_key()
    }

    /// The current entry's value (empty for tombstones).
    ///
    /// # Panics
    /// If the cursor is not valid.
    fn value(&self) -> &[u8] {
        self.record().value()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let bound = Bound::Included(InternalKeyRef::new(target));
        // SAFETY: the entry comes from `self.table`'s skip list and is
        // stored in `self.entry`, which drops before `self.table`.
        let entry = unsafe { extend(self.table.map().lower_bound(bound)) };
        self.entry = entry;
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let bound = Bound::Included(InternalKeyRef::new(target));
        // SAFETY: as in `seek`.
        let entry = unsafe { extend(self.table.map().upper_bound(bound)) };
        self.entry = entry;
        Ok(())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        // SAFETY: as in `seek`.
        let entry = unsafe { extend(self.table.map().front()) };
        self.entry = entry;
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        // SAFETY: as in `seek`.
        let entry = unsafe { extend(self.table.map().back()) };
        self.entry = entry;
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if let Some(entry) = &mut self.entry
            && !entry.move_next()
        {
            self.entry = None;
        }
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        if let Some(entry) = &mut self.entry
            && !entry.move_prev()
        {
            self.entry = None;
        }
        Ok(())
    }
}

impl fmt::Debug for MemTableCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("MemTableCursor");
        match &self.entry {
            Some(entry) => s.field(
                "key",
                &kevo_core::parse_internal_key(entry.key().internal_key()),
            ),
            None => s.field("key", &None::<()>),
        };
        s.field("memtable", &self.table).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevo_core::{InternalKey, LOOKUP_KIND, SeqNo, ValueKind, encode_internal_key};

    fn ik(user_key: &[u8], seqno: SeqNo, kind: ValueKind) -> Vec<u8> {
        InternalKey::new(user_key, seqno, kind).as_bytes().to_vec()
    }

    fn lookup(user_key: &[u8], seqno: SeqNo) -> Vec<u8> {
        let mut key = Vec::new();
        encode_internal_key(&mut key, user_key, seqno, LOOKUP_KIND);
        key
    }

    /// `a@3 a@1(del) b@2 c@5 c@4`, in internal-key order.
    fn sample() -> Arc<MemTable> {
        let table = Arc::new(MemTable::new());
        table.insert(b"c", 4, ValueKind::Put, b"c4");
        table.insert(b"a", 1, ValueKind::Delete, b"");
        table.insert(b"b", 2, ValueKind::Put, b"b2");
        table.insert(b"c", 5, ValueKind::Put, b"c5");
        table.insert(b"a", 3, ValueKind::Put, b"a3");
        table
    }

    fn expected() -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (ik(b"a", 3, ValueKind::Put), b"a3".to_vec()),
            (ik(b"a", 1, ValueKind::Delete), Vec::new()),
            (ik(b"b", 2, ValueKind::Put), b"b2".to_vec()),
            (ik(b"c", 5, ValueKind::Put), b"c5".to_vec()),
            (ik(b"c", 4, ValueKind::Put), b"c4".to_vec()),
        ]
    }

    fn current(cursor: &MemTableCursor) -> (Vec<u8>, Vec<u8>) {
        (cursor.key().to_vec(), cursor.value().to_vec())
    }

    #[test]
    fn new_cursor_is_not_valid_until_positioned() {
        let cursor = sample().cursor();
        assert!(!cursor.valid());
    }

    #[test]
    fn cursor_walks_entries_in_internal_key_order() {
        let mut cursor = sample().cursor();
        cursor.seek_to_first().unwrap();
        let mut seen = Vec::new();
        while cursor.valid() {
            seen.push(current(&cursor));
            cursor.next().unwrap();
        }
        assert_eq!(seen, expected());
    }

    #[test]
    fn cursor_walks_backward_in_reverse_order() {
        let mut cursor = sample().cursor();
        cursor.seek_to_last().unwrap();
        let mut seen = Vec::new();
        while cursor.valid() {
            seen.push(current(&cursor));
            cursor.prev().unwrap();
        }
        let mut reversed = expected();
        reversed.reverse();
        assert_eq!(seen, reversed);
    }

    #[test]
    fn cursor_changes_direction_mid_scan() {
        let all = expected();
        let mut cursor = sample().cursor();
        cursor.seek_to_first().unwrap();
        cursor.next().unwrap();
        cursor.next().unwrap();
        assert_eq!(current(&cursor), all[2]);
        cursor.prev().unwrap();
        assert_eq!(current(&cursor), all[1]);
        cursor.next().unwrap();
        cursor.next().unwrap();
        assert_eq!(current(&cursor), all[3]);
        cursor.prev().unwrap();
        cursor.prev().unwrap();
        cursor.prev().unwrap();
        assert_eq!(current(&cursor), all[0]);
    }

    #[test]
    fn seek_lands_on_first_entry_at_or_after_target() {
        let all = expected();
        let mut cursor = sample().cursor();
        // Exact hit.
        cursor.seek(&all[3].0).unwrap();
        assert_eq!(current(&cursor), all[3]);
        // A lookup key lands on the newest entry at or below its seqno.
        cursor.seek(&lookup(b"a", 2)).unwrap();
        assert_eq!(current(&cursor), all[1]);
        cursor.seek(&lookup(b"c", 100)).unwrap();
        assert_eq!(current(&cursor), all[3]);
        // Between user keys.
        cursor.seek(&lookup(b"bb", 0)).unwrap();
        assert_eq!(current(&cursor), all[3]);
        // Past the end.
        cursor.seek(&ik(b"c", 3, ValueKind::Put)).unwrap();
        assert!(!cursor.valid());
    }

    #[test]
    fn seek_for_prev_lands_on_last_entry_at_or_before_target() {
        let all = expected();
        let mut cursor = sample().cursor();
        cursor.seek_for_prev(&all[2].0).unwrap();
        assert_eq!(current(&cursor), all[2]);
        // `a@2` sorts between `a@3` and `a@1`.
        cursor.seek_for_prev(&lookup(b"a", 2)).unwrap();
        assert_eq!(current(&cursor), all[0]);
        cursor.seek_for_prev(&lookup(b"zz", 0)).unwrap();
        assert_eq!(current(&cursor), all[4]);
        // Before the start.
        cursor.seek_for_prev(&lookup(b"a", 100)).unwrap();
        assert!(!cursor.valid());
    }

    #[test]
    fn moving_past_either_end_invalidates_until_the_next_seek() {
        let all = expected();
        let mut cursor = sample().cursor();
        cursor.seek_to_last().unwrap();
        cursor.next().unwrap();
        assert!(!cursor.valid());
        // Stepping an invalid cursor does nothing.
        cursor.next().unwrap();
        cursor.prev().unwrap();
        assert!(!cursor.valid());
        cursor.seek_to_first().unwrap();
        cursor.prev().unwrap();
        assert!(!cursor.valid());
        cursor.seek_to_first().unwrap();
        assert_eq!(current(&cursor), all[0]);
    }

    #[test]
    fn cursor_on_an_empty_memtable_is_never_valid() {
        let mut cursor = Arc::new(MemTable::new()).cursor();
        cursor.seek_to_first().unwrap();
        assert!(!cursor.valid());
        cursor.seek_to_last().unwrap();
        assert!(!cursor.valid());
        cursor.seek(&lookup(b"", 0)).unwrap();
        assert!(!cursor.valid());
        cursor.seek_for_prev(&lookup(b"zz", 0)).unwrap();
        assert!(!cursor.valid());
    }

    /// Exercises the lifetime extension in `extend`: the cursor keeps the
    /// table (and the entry it stands on) alive after the caller's `Arc` is
    /// gone, also on another thread, and drops its entry before the table.
    #[test]
    fn cursor_outlives_the_callers_arc() {
        let table = sample();
        let weak = Arc::downgrade(&table);
        let mut cursor = table.cursor();
        cursor.seek(&lookup(b"b", 100)).unwrap();
        drop(table);
        assert_eq!(weak.strong_count(), 1, "only the cursor holds the table");
        let all = expected();
        assert_eq!(current(&cursor), all[2]);
        let walked = std::thread::spawn(move || {
            let mut seen = Vec::new();
            cursor.prev().unwrap();
            while cursor.valid() {
                seen.push(current(&cursor));
                cursor.next().unwrap();
            }
            cursor.seek_to_last().unwrap();
            // Dropped while positioned: the entry must go before the table.
            drop(cursor);
            seen
        })
        .join()
        .unwrap();
        assert_eq!(walked, all[1..]);
        assert_eq!(weak.strong_count(), 0, "the cursor freed the table");
    }

    #[test]
    fn two_cursors_move_independently() {
        let table = sample();
        let mut forward = table.cursor();
        let mut backward = table.cursor();
        forward.seek_to_first().unwrap();
        backward.seek_to_last().unwrap();
        forward.next().unwrap();
        backward.prev().unwrap();
        let all = expected();
        assert_eq!(current(&forward), all[1]);
        assert_eq!(current(&backward), all[3]);
        assert!(Arc::ptr_eq(forward.memtable(), backward.memtable()));
    }

    #[test]
    fn cursor_sees_entries_inserted_ahead_of_it() {
        let table = sample();
        let mut cursor = table.cursor();
        cursor.seek_to_first().unwrap();
        table.insert(b"a", 2, ValueKind::Put, b"a2");
        cursor.next().unwrap();
        assert_eq!(
            current(&cursor),
            (ik(b"a", 2, ValueKind::Put), b"a2".to_vec())
        );
    }

    #[test]
    fn debug_shows_the_position() {
        let mut cursor = sample().cursor();
        assert!(format!("{cursor:?}").contains("key: None"));
        cursor.seek_to_first().unwrap();
        let shown = format!("{cursor:?}");
        assert!(shown.contains("seqno: 3"), "{shown}");
    }
}
