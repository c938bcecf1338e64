//! [`RangeIter`]: the user-facing iterator, from both ends.
//!
//! # Meeting in the middle
//! The front and the back each walk their own [`UserCursor`], built lazily
//! by the iterator's factory the first time that end is used (a forward-only
//! scan never builds a back cursor). Each end's cursor stays on the last
//! entry it yielded until that end is stepped again, so its key is that
//! end's last user key (nothing is copied to remember it). The front stops as soon as its next key is at or past the back's
//! last key, and the back as soon as its next key is at or before the
//! front's: the keys strictly between the two are exactly what is left, so
//! no entry is yielded twice or skipped, as with `BTreeMap::range`.
//!
//! This needs both cursors to show the same entries, which holds when the
//! factory builds every cursor over the same pinned sources and snapshot.

use bytes::Bytes;
use kevo_core::{ChunkArena, Result};

use crate::UserCursor;

/// One end of the iteration.
#[derive(Debug)]
struct End<U> {
    /// The cursor, once built: while the iteration goes on, it stands on
    /// the last entry this end yielded.
    cursor: Option<U>,
    /// Where yielded entries are copied (see [`copy_out`]).
    arena: ChunkArena,
}

impl<U> Default for End<U> {
    fn default() -> Self {
        End {
            cursor: None,
            arena: ChunkArena::new(ARENA_BYTES, ARENA_ENTRY_MAX),
        }
    }
}

/// Bytes of one buffer that yielded keys and values are copied into.
const ARENA_BYTES: usize = 4096;

/// Keys and values longer than this get buffers of their own, so that a
/// kept item never holds much more than itself.
const ARENA_ENTRY_MAX: usize = ARENA_BYTES / 4;

/// `key` and `value` as owned [`Bytes`], small ones side by side in
/// `arena`'s shared [`ARENA_BYTES`] chunks: a scan of 100-byte entries then
/// allocates once per few dozen entries instead of twice per entry, and an
/// item kept after the scan holds at most [`ARENA_BYTES`]. A small entry's
/// key and value are copied into the arena together and split (one call
/// and one copy instead of two); a large one's separately, so that a kept
/// key never holds its value's buffer.
fn copy_out(arena: &mut ChunkArena, key: &[u8], value: &[u8]) -> (Bytes, Bytes) {
    if key.len() + value.len() > ARENA_ENTRY_MAX {
        return (arena.copy(&[key]), arena.copy(&[value]));
    }
    let mut entry = arena.copy(&[key, value]);
    let key = entry.split_to(key.len());
    (key, entry)
}

/// An iterator over `(user key, value)` pairs that is also double-ended:
/// `next()` yields ascending keys, `next_back()` descending ones, and the two
/// meet in the middle without repeating or skipping an entry.
///
/// It owns a factory closure that builds the cursor stack it reads, usually
/// `VisibleCursor::new(BoundedCursor::new(merged sources, bounds), snapshot)`.
/// The front and the back each get their own cursor from it, built lazily.
/// Every cursor the factory builds must show the same entries (same pinned
/// sources, same snapshot, same bounds).
///
/// Items are copied out of the cursor into [`Bytes`]: small ones into a
/// buffer of 4 KiB per end that they share (one allocation per few dozen
/// entries), so an item kept long after the scan may hold up to 4 KiB. After an `Err` (from
/// the factory or a cursor) the iterator is fused: every later call to
/// `next` or `next_back` returns `None`. The cursors are dropped as soon as
/// the iteration ends, releasing whatever they pin.
///
/// ```
/// use bytes::Bytes;
/// use kevo_core::{InternalKey, ValueKind};
/// use kevo_iter::{BoundedCursor, KeyBounds, RangeIter, VecCursor, VisibleCursor};
///
/// # fn main() -> kevo_core::Result<()> {
/// let source = VecCursor::new(
///     ["a", "b", "c", "d"]
///         .iter()
///         .map(|k| {
///             let key = InternalKey::new(k.as_bytes(), 1, ValueKind::Put);
///             (Bytes::copy_from_slice(key.as_bytes()), Bytes::from(k.to_uppercase()))
///         })
///         .collect(),
/// )?;
/// let bounds = KeyBounds::new("b"..);
/// let mut iter = RangeIter::new(move || {
///     Ok(VisibleCursor::new(BoundedCursor::new(source.clone(), bounds.clone()), 1))
/// });
/// assert_eq!(iter.next().transpose()?, Some((Bytes::from("b"), Bytes::from("B"))));
/// assert_eq!(iter.next_back().transpose()?, Some((Bytes::from("d"), Bytes::from("D"))));
/// assert_eq!(iter.next().transpose()?, Some((Bytes::from("c"), Bytes::from("C"))));
/// assert!(iter.next_back().is_none() && iter.next().is_none());
/// # Ok(())
/// # }
/// ```
pub struct RangeIter<U, F> {
    factory: F,
    front: End<U>,
    back: End<U>,
    /// Set once the ends have met, a cursor ran out, or an error was
    /// returned.
    done: bool,
}

impl<U, F> RangeIter<U, F>
where
    U: UserCursor,
    F: FnMut() -> Result<U>,
{
    /// An iterator over what the cursors built by `factory` show. Nothing is
    /// built until the first call to `next` or `next_back`.
    pub fn new(factory: F) -> Self {
        RangeIter {
            factory,
            front: End::default(),
            back: End::default(),
            done: false,
        }
    }

    /// Ends the iteration and drops the cursors.
    fn finish(&mut self) {
        self.done = true;
        self.front.cursor = None;
        self.back.cursor = None;
    }

    /// Steps the front cursor (building and positioning it on first use) and
    /// returns its entry unless it is exhausted or has reached the back.
    fn step_front(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        let cursor = match &mut self.front.cursor {
            Some(cursor) => {
                cursor.next()?;
                cursor
            }
            None => {
                let mut cursor = (self.factory)()?;
                cursor.seek_to_first()?;
                self.front.cursor.insert(cursor)
            }
        };
        if !cursor.valid() {
            return Ok(None);
        }
        let key = cursor.key();
        // The back's cursor stands on the last key the back yielded.
        if self
            .back
            .cursor
            .as_ref()
            .is_some_and(|back| key >= back.key())
        {
            return Ok(None);
        }
        let entry = copy_out(&mut self.front.arena, key, cursor.value());
        Ok(Some(entry))
    }

    /// The mirror of [`step_front`](Self::step_front).
    fn step_back(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        let cursor = match &mut self.back.cursor {
            Some(cursor) => {
                cursor.prev()?;
                cursor
            }
            None => {
                let mut cursor = (self.factory)()?;
                cursor.seek_to_last()?;
                self.back.cursor.insert(cursor)
            }
        };
        if !cursor.valid() {
            return Ok(None);
        }
        let key = cursor.key();
        if self
            .front
            .cursor
            .as_ref()
            .is_some_and(|front| key <= front.key())
        {
            return Ok(None);
        }
        let entry = copy_out(&mut self.back.arena, key, cursor.value());
        Ok(Some(entry))
    }

    /// Turns a step's result into an item, ending the iteration on `None` or
    /// `Err`.
    fn item(&mut self, step: Result<Option<(Bytes, Bytes)>>) -> Option<Result<(Bytes, Bytes)>> {
        match step {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.finish();
                None
            }
            Err(e) => {
                self.finish();
                Some(Err(e))
            }
        }
    }
}

impl<U, F> Iterator for RangeIter<U, F>
where
    U: UserCursor,
    F: FnMut() -> Result<U>,
{
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = self.step_front();
        self.item(step)
    }
}

impl<U, F> DoubleEndedIterator for RangeIter<U, F>
where
    U: UserCursor,
    F: FnMut() -> Result<U>,
{
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = self.step_back();
        self.item(step)
    }
}

impl<U, F> std::iter::FusedIterator for RangeIter<U, F>
where
    U: UserCursor,
    F: FnMut() -> Result<U>,
{
}

impl<U, F> std::fmt::Debug for RangeIter<U, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeIter")
            .field("front_built", &self.front.cursor.is_some())
            .field("back_built", &self.back.cursor.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoundedCursor, KeyBounds, MergingCursor, VecCursor, VisibleCursor};
    use kevo_core::{Cursor, Error, InternalKey, ValueKind};

    fn source(keys: &[&str], seqno: u64) -> VecCursor {
        VecCursor::from_unsorted(
            keys.iter()
                .map(|k| {
                    let ik = InternalKey::new(k.as_bytes(), seqno, ValueKind::Put);
                    (
                        Bytes::copy_from_slice(ik.as_bytes()),
                        Bytes::from(format!("{k}{seqno}")),
                    )
                })
                .collect(),
        )
        .unwrap()
    }

    type Stack = VisibleCursor<BoundedCursor<MergingCursor<VecCursor>>>;

    fn iter(
        sources: Vec<VecCursor>,
        bounds: KeyBounds,
    ) -> RangeIter<Stack, impl FnMut() -> Result<Stack>> {
        RangeIter::new(move || {
            Ok(VisibleCursor::new(
                BoundedCursor::new(MergingCursor::new(sources.clone()), bounds.clone()),
                100,
            ))
        })
    }

    fn key(item: Option<Result<(Bytes, Bytes)>>) -> Option<String> {
        item.map(|r| String::from_utf8(r.unwrap().0.to_vec()).unwrap())
    }

    fn abcde() -> Vec<VecCursor> {
        vec![source(&["a", "c", "e"], 1), source(&["b", "d"], 2)]
    }

    #[test]
    fn forward_iteration_yields_ascending_keys() {
        let keys: Vec<_> = iter(abcde(), KeyBounds::unbounded())
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(keys, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn reverse_iteration_yields_descending_keys() {
        let keys: Vec<_> = iter(abcde(), KeyBounds::new("b"..="d"))
            .rev()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(keys, ["d", "c", "b"]);
    }

    #[test]
    fn front_and_back_meet_without_repeating() {
        let mut it = iter(abcde(), KeyBounds::unbounded());
        assert_eq!(key(it.next()).as_deref(), Some("a"));
        assert_eq!(key(it.next_back()).as_deref(), Some("e"));
        assert_eq!(key(it.next_back()).as_deref(), Some("d"));
        assert_eq!(key(it.next()).as_deref(), Some("b"));
        assert_eq!(key(it.next()).as_deref(), Some("c"));
        assert_eq!(key(it.next_back()), None);
        assert_eq!(key(it.next()), None);
    }

    #[test]
    fn back_meets_front_on_a_single_entry() {
        let mut it = iter(vec![source(&["only"], 1)], KeyBounds::unbounded());
        assert_eq!(key(it.next_back()).as_deref(), Some("only"));
        assert_eq!(key(it.next()), None);
        assert_eq!(key(it.next_back()), None);
    }

    #[test]
    fn forward_only_scan_never_builds_a_back_cursor() {
        let mut built = 0;
        let source = source(&["a", "b"], 1);
        let it = RangeIter::new(|| {
            built += 1;
            Ok(VisibleCursor::new(source.clone(), 1))
        });
        assert_eq!(it.count(), 2);
        assert_eq!(built, 1);
    }

    /// A cursor over one entry whose `next` fails.
    struct FailingCursor {
        inner: VecCursor,
    }

    impl Cursor for FailingCursor {
        fn valid(&self) -> bool {
            self.inner.valid()
        }
        fn key(&self) -> &[u8] {
            self.inner.key()
        }
        fn value(&self) -> &[u8] {
            self.inner.value()
        }
        fn seek(&mut self, target: &[u8]) -> Result<()> {
            self.inner.seek(target)
        }
        fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
            self.inner.seek_for_prev(target)
        }
        fn seek_to_first(&mut self) -> Result<()> {
            self.inner.seek_to_first()
        }
        fn seek_to_last(&mut self) -> Result<()> {
            self.inner.seek_to_last()
        }
        fn next(&mut self) -> Result<()> {
            self.inner = VecCursor::new(Vec::new()).unwrap();
            Err(Error::corruption("000007.sst", 4096, "bad block checksum"))
        }
        fn prev(&mut self) -> Result<()> {
            self.next()
        }
    }

    #[test]
    fn iterator_is_fused_after_an_error() {
        let mut it = RangeIter::new(|| {
            Ok(VisibleCursor::new(
                FailingCursor {
                    inner: source(&["a", "b"], 1),
                },
                1,
            ))
        });
        assert_eq!(key(it.next()).as_deref(), Some("a"));
        let err = it.next().unwrap().unwrap_err();
        assert!(err.is_corruption());
        assert!(it.next().is_none());
        assert!(it.next_back().is_none());
    }

    #[test]
    fn factory_error_is_returned_once() {
        let mut it: RangeIter<VisibleCursor<VecCursor>, _> =
            RangeIter::new(|| Err(Error::InvalidArgument("no version".into())));
        assert!(matches!(
            it.next_back(),
            Some(Err(Error::InvalidArgument(_)))
        ));
        assert!(it.next_back().is_none());
        assert!(it.next().is_none());
    }

    #[test]
    fn empty_range_yields_nothing_from_either_end() {
        let mut it = iter(abcde(), KeyBounds::new("c".."c"));
        assert!(it.next_back().is_none());
        let mut it = iter(abcde(), KeyBounds::new("c".."c"));
        assert!(it.next().is_none());
    }

    #[test]
    fn copied_entries_keep_every_byte_whatever_their_sizes() {
        let mut arena = ChunkArena::new(ARENA_BYTES, ARENA_ENTRY_MAX);
        let big = vec![7u8; ARENA_ENTRY_MAX];
        let cases: [(&[u8], &[u8]); 6] = [
            (b"", b""),
            (b"k", b""),
            (b"", b"v"),
            (b"key", b"value"),
            (b"k", &big),
            (&big, b"v"),
        ];
        for round in 0..100 {
            for (key, value) in cases {
                let (k, v) = copy_out(&mut arena, key, value);
                assert_eq!((&k[..], &v[..]), (key, value), "round {round}");
                if !key.is_empty() && key.len() + value.len() <= ARENA_ENTRY_MAX {
                    // One copy of both, split in place.
                    assert_eq!(k.as_ptr().wrapping_add(k.len()), v.as_ptr());
                }
            }
        }
    }

    #[test]
    fn stack_of_send_cursors_is_send() {
        // What the engine builds must be able to move across threads.
        type SendStack = VisibleCursor<BoundedCursor<MergingCursor<Box<dyn Cursor + Send>>>>;
        fn assert_send<T: Send>() {}
        assert_send::<SendStack>();
        assert_send::<RangeIter<SendStack, Box<dyn FnMut() -> Result<SendStack> + Send>>>();
    }
}
