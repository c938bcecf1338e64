#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Model tests: the iterator stack against a `BTreeMap` (and the merging
//! cursor alone against a sorted `Vec`), under random operation sequences.
//!
//! Every case builds a few [`VecCursor`] sources whose user keys overlap
//! (a four-symbol alphabet with `0x00` and `0xFF`, so exclusive bounds and
//! prefixes meet their edge cases), with distinct random seqnos, puts,
//! tombstones and range tombstones (fragmented, with each source's largest
//! seqno given to the merging cursor so that covered spans are skipped by
//! seeks), and then checks:
//!
//! - `visible_cursor_matches_btreemap`: a random snapshot and random bounds
//!   (or a prefix); any sequence of `seek`, `seek_for_prev`, `seek_to_first`,
//!   `seek_to_last`, `next`, `prev` on `VisibleCursor<BoundedCursor<
//!   MergingCursor>>` shows exactly what the model shows;
//! - `range_iter_matches_btreemap`: any interleaving of `next` and
//!   `next_back` on a `RangeIter` yields what `BTreeMap::range` yields;
//! - `merging_cursor_matches_sorted_vec`: random seeks and steps in both
//!   directions, with equal internal keys across sources, follow the merged
//!   order `(internal key, source index)`.
//!
//! Each runs 1000 cases (about a tenth of a second in all);
//! `KEVO_ITER_MODEL_CASES=200000` runs more. Failures proptest found are kept
//! below as named regression tests.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use std::sync::Arc;

use kevo_core::{
    Cursor, FragmentedTombstones, InternalKey, RangeTombstone, SeqNo, ValueKind,
    compare_internal_keys, encode_internal_key,
};
use kevo_iter::{
    BoundedCursor, KeyBounds, MergingCursor, RangeIter, UserCursor, VecCursor, VisibleCursor,
};
use proptest::prelude::*;
use proptest::sample::select;

/// Cases per property; `KEVO_ITER_MODEL_CASES` raises it for a long run.
fn cases() -> u32 {
    std::env::var("KEVO_ITER_MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}
const ALPHABET: &[u8] = &[0x00, b'a', b'b', 0xFF];

/// User keys from a small alphabet, short ones more often, so that keys
/// overlap across sources and have several versions.
fn arb_user_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(select(ALPHABET), 0..=2),
        1 => proptest::collection::vec(select(ALPHABET), 3..=3),
    ]
}

/// One write: which source holds it, the user key, and put or tombstone;
/// with `range_end`, a range tombstone over `[key, range_end)` instead.
#[derive(Debug, Clone)]
struct Write {
    source: usize,
    key: Vec<u8>,
    seqno: SeqNo,
    put: bool,
    range_end: Option<Vec<u8>>,
}

impl Write {
    fn value(&self) -> Vec<u8> {
        format!("v{}", self.seqno).into_bytes()
    }
}

/// A key range as the test describes it, checked by the model with
/// `RangeBounds::contains` / `starts_with`, independently of `KeyBounds`.
#[derive(Debug, Clone)]
enum Range {
    Bounds(Bound<Vec<u8>>, Bound<Vec<u8>>),
    Prefix(Vec<u8>),
}

impl Range {
    fn contains(&self, key: &[u8]) -> bool {
        match self {
            Range::Bounds(start, end) => (start.clone(), end.clone()).contains(&key.to_vec()),
            Range::Prefix(prefix) => key.starts_with(prefix),
        }
    }

    fn key_bounds(&self) -> KeyBounds {
        match self {
            Range::Bounds(start, end) => KeyBounds::from_bounds(
                start.as_ref().map(Vec::as_slice),
                end.as_ref().map(Vec::as_slice),
            ),
            Range::Prefix(prefix) => KeyBounds::prefix(prefix),
        }
    }
}

fn arb_bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => arb_user_key().prop_map(Bound::Included),
        2 => arb_user_key().prop_map(Bound::Excluded),
    ]
}

fn arb_range() -> impl Strategy<Value = Range> {
    prop_oneof![
        1 => Just(Range::Bounds(Bound::Unbounded, Bound::Unbounded)),
        4 => (arb_bound(), arb_bound()).prop_map(|(s, e)| Range::Bounds(s, e)),
        2 => proptest::collection::vec(select(ALPHABET), 0..=2).prop_map(Range::Prefix),
    ]
}

/// A database: sources, a snapshot and a range.
#[derive(Debug, Clone)]
struct Db {
    sources: usize,
    writes: Vec<Write>,
    snapshot: SeqNo,
    range: Range,
}

/// A write's kind: put, point tombstone, or (with its end) a range
/// tombstone.
fn arb_kind() -> impl Strategy<Value = (bool, Option<Vec<u8>>)> {
    prop_oneof![
        14 => Just((true, None)),
        5 => Just((false, None)),
        3 => arb_user_key().prop_map(|end| (false, Some(end))),
    ]
}

fn arb_db() -> impl Strategy<Value = Db> {
    (
        1usize..=4,
        proptest::collection::vec((arb_user_key(), arb_kind()), 0..40),
    )
        .prop_flat_map(|(sources, writes)| {
            let n = writes.len() as u64;
            // Distinct seqnos 2, 4, .., 2n in random order; odd snapshots
            // fall between them.
            let seqnos = Just((1..=n).map(|i| 2 * i).collect::<Vec<_>>()).prop_shuffle();
            let placement = proptest::collection::vec(0..sources, writes.len());
            (
                Just(sources),
                Just(writes),
                seqnos,
                placement,
                0..=2 * n + 2,
                arb_range(),
            )
        })
        .prop_map(|(sources, writes, seqnos, placement, snapshot, range)| Db {
            sources,
            writes: writes
                .into_iter()
                .zip(seqnos)
                .zip(placement)
                .map(|(((key, (put, range_end)), seqno), source)| Write {
                    source,
                    key,
                    seqno,
                    put,
                    range_end,
                })
                .collect(),
            snapshot,
            range,
        })
}

impl Db {
    fn source_cursors(&self) -> Vec<VecCursor> {
        (0..self.sources)
            .map(|source| {
                let entries = self
                    .writes
                    .iter()
                    .filter(|w| w.source == source && w.range_end.is_none())
                    .map(|w| {
                        let (kind, value) = if w.put {
                            (ValueKind::Put, w.value())
                        } else {
                            (ValueKind::Delete, Vec::new())
                        };
                        let key = InternalKey::new(&w.key, w.seqno, kind);
                        (Bytes::copy_from_slice(key.as_bytes()), Bytes::from(value))
                    })
                    .collect();
                VecCursor::from_unsorted(entries).unwrap()
            })
            .collect()
    }

    /// What a reader at the snapshot sees within the range.
    fn model(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut writes: Vec<&Write> = self
            .writes
            .iter()
            .filter(|w| w.seqno <= self.snapshot)
            .collect();
        writes.sort_by_key(|w| w.seqno);
        let mut model = BTreeMap::new();
        for w in writes {
            if let Some(end) = &w.range_end {
                model.retain(|k: &Vec<u8>, _| !(k >= &w.key && k < end));
            } else if w.put {
                model.insert(w.key.clone(), w.value());
            } else {
                model.remove(&w.key);
            }
        }
        model.retain(|k, _| self.range.contains(k));
        model
    }

    /// Every range tombstone, fragmented.
    fn tombstones(&self) -> Arc<FragmentedTombstones> {
        Arc::new(FragmentedTombstones::new(self.writes.iter().filter_map(
            |w| {
                let end = w.range_end.as_ref()?;
                Some(RangeTombstone::new(w.key.clone(), end.clone(), w.seqno))
            },
        )))
    }

    /// Per source, the largest seqno of its point entries (0: none).
    fn max_seqnos(&self) -> Vec<SeqNo> {
        (0..self.sources)
            .map(|source| {
                self.writes
                    .iter()
                    .filter(|w| w.source == source && w.range_end.is_none())
                    .map(|w| w.seqno)
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// The stack over this database's sources, range tombstones and
    /// max seqnos (so that covered spans are skipped by seeks).
    fn stack(&self, bounds: &KeyBounds) -> Stack {
        stack_of(
            &self.source_cursors(),
            self.max_seqnos(),
            self.tombstones(),
            self.snapshot,
            bounds,
        )
    }
}

type Stack = VisibleCursor<BoundedCursor<MergingCursor<VecCursor>>>;

/// The cursor stack the engine builds: merge, bounds, visibility.
fn stack_of(
    sources: &[VecCursor],
    max_seqnos: Vec<SeqNo>,
    tombstones: Arc<FragmentedTombstones>,
    snapshot: SeqNo,
    bounds: &KeyBounds,
) -> Stack {
    let merged = MergingCursor::new(sources.to_vec()).with_max_seqnos(max_seqnos);
    VisibleCursor::new(BoundedCursor::new(merged, bounds.clone()), snapshot)
        .with_range_tombstones(tombstones)
}

#[derive(Debug, Clone)]
enum CursorOp {
    SeekToFirst,
    SeekToLast,
    Seek(Vec<u8>),
    SeekForPrev(Vec<u8>),
    Next,
    Prev,
}

fn arb_cursor_op() -> impl Strategy<Value = CursorOp> {
    prop_oneof![
        1 => Just(CursorOp::SeekToFirst),
        1 => Just(CursorOp::SeekToLast),
        2 => arb_user_key().prop_map(CursorOp::Seek),
        2 => arb_user_key().prop_map(CursorOp::SeekForPrev),
        4 => Just(CursorOp::Next),
        4 => Just(CursorOp::Prev),
    ]
}

/// The model's answer to `op` from position `at`; `None` is invalid.
/// `Next`/`Prev` are only asked from a valid position.
fn model_step(
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    at: Option<&Vec<u8>>,
    op: &CursorOp,
) -> Option<Vec<u8>> {
    let found = match op {
        CursorOp::SeekToFirst => model.iter().next(),
        CursorOp::SeekToLast => model.iter().next_back(),
        CursorOp::Seek(k) => model.range(k.clone()..).next(),
        CursorOp::SeekForPrev(k) => model.range(..=k.clone()).next_back(),
        CursorOp::Next => model
            .range((Bound::Excluded(at?.clone()), Bound::Unbounded))
            .next(),
        CursorOp::Prev => model.range(..at?.clone()).next_back(),
    };
    found.map(|(k, _)| k.clone())
}

fn apply(cursor: &mut impl UserCursor, op: &CursorOp) -> kevo_core::Result<()> {
    match op {
        CursorOp::SeekToFirst => cursor.seek_to_first(),
        CursorOp::SeekToLast => cursor.seek_to_last(),
        CursorOp::Seek(k) => cursor.seek(k),
        CursorOp::SeekForPrev(k) => cursor.seek_for_prev(k),
        CursorOp::Next => cursor.next(),
        CursorOp::Prev => cursor.prev(),
    }
}

/// Runs `ops` on the stack and the model side by side.
fn check_visible_cursor(db: &Db, ops: &[CursorOp]) -> Result<(), TestCaseError> {
    let model = db.model();
    let mut cursor = db.stack(&db.range.key_bounds());
    let mut at: Option<Vec<u8>> = None;
    for (i, op) in ops.iter().enumerate() {
        if matches!(op, CursorOp::Next | CursorOp::Prev) && at.is_none() {
            continue; // requires a valid cursor
        }
        apply(&mut cursor, op).unwrap();
        at = model_step(&model, at.as_ref(), op);
        match &at {
            None => prop_assert!(!cursor.valid(), "op {i} {op:?}: expected invalid"),
            Some(key) => {
                prop_assert!(cursor.valid(), "op {i} {op:?}: expected {key:?}");
                prop_assert_eq!(cursor.key(), &key[..], "op {} {:?}", i, op);
                prop_assert_eq!(cursor.value(), &model[key][..], "op {} {:?}", i, op);
            }
        }
    }
    Ok(())
}

/// Runs a `next`/`next_back` interleaving (`true` = front) on a
/// `RangeIter` and `BTreeMap::range` side by side, then drains both.
fn check_range_iter(db: &Db, fronts: &[bool]) -> Result<(), TestCaseError> {
    let model = db.model();
    let mut expected = model.iter();
    let db_for_stack = db.clone();
    let bounds = db.range.key_bounds();
    let mut iter = RangeIter::new(move || Ok(db_for_stack.stack(&bounds)));
    let as_vecs = |item: Option<kevo_core::Result<(Bytes, Bytes)>>| {
        item.map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
    };
    let model_vecs = |item: Option<(&Vec<u8>, &Vec<u8>)>| item.map(|(k, v)| (k.clone(), v.clone()));
    for (i, &front) in fronts.iter().enumerate() {
        let (got, want) = if front {
            (as_vecs(iter.next()), model_vecs(expected.next()))
        } else {
            (as_vecs(iter.next_back()), model_vecs(expected.next_back()))
        };
        prop_assert_eq!(
            got,
            want,
            "step {} ({})",
            i,
            if front { "next" } else { "next_back" }
        );
    }
    let rest: Vec<_> = iter.map(|r| r.unwrap()).collect();
    let want: Vec<_> = expected
        .map(|(k, v)| (Bytes::from(k.clone()), Bytes::from(v.clone())))
        .collect();
    prop_assert_eq!(rest, want, "remaining entries");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn visible_cursor_matches_btreemap(
        db in arb_db(),
        ops in proptest::collection::vec(arb_cursor_op(), 1..40),
    ) {
        check_visible_cursor(&db, &ops)?;
    }

    #[test]
    fn range_iter_matches_btreemap(
        db in arb_db(),
        fronts in proptest::collection::vec(any::<bool>(), 0..30),
    ) {
        check_range_iter(&db, &fronts)?;
    }

    #[test]
    fn merging_cursor_matches_sorted_vec(
        sources in proptest::collection::vec(
            proptest::collection::vec((arb_user_key(), 0u64..6, 1u8..=2), 0..12),
            1..=5,
        ),
        ops in proptest::collection::vec(arb_merge_op(), 1..40),
    ) {
        check_merging_cursor(&sources, &ops)?;
    }
}

// ---- The merging cursor alone ----

#[derive(Debug, Clone)]
enum MergeOp {
    SeekToFirst,
    SeekToLast,
    Seek(Vec<u8>),
    SeekForPrev(Vec<u8>),
    Next,
    Prev,
}

/// A seek target: any user key, seqno and kind tag (lookup kind included).
fn arb_target() -> impl Strategy<Value = Vec<u8>> {
    (arb_user_key(), 0u64..7, select(&[0u8, 1, 2, 0xFF][..])).prop_map(|(key, seqno, kind)| {
        let mut target = Vec::new();
        encode_internal_key(&mut target, &key, seqno, kind);
        target
    })
}

fn arb_merge_op() -> impl Strategy<Value = MergeOp> {
    prop_oneof![
        1 => Just(MergeOp::SeekToFirst),
        1 => Just(MergeOp::SeekToLast),
        2 => arb_target().prop_map(MergeOp::Seek),
        2 => arb_target().prop_map(MergeOp::SeekForPrev),
        4 => Just(MergeOp::Next),
        4 => Just(MergeOp::Prev),
    ]
}

/// Builds the sources (each deduplicated; equal keys across sources are
/// kept) and checks `ops` against the merged, sorted list.
fn check_merging_cursor(
    sources: &[Vec<(Vec<u8>, u64, u8)>],
    ops: &[MergeOp],
) -> Result<(), TestCaseError> {
    // (internal key, value) per source; the value names source and key.
    let mut merged: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut cursors = Vec::new();
    for (s, entries) in sources.iter().enumerate() {
        let mut keys: Vec<Vec<u8>> = entries
            .iter()
            .map(|(key, seqno, kind)| {
                let kind = ValueKind::from_u8(*kind).unwrap();
                InternalKey::new(key, *seqno, kind).as_bytes().to_vec()
            })
            .collect();
        keys.sort_by(|a, b| compare_internal_keys(a, b));
        keys.dedup();
        let entries: Vec<(Bytes, Bytes)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (Bytes::from(k.clone()), Bytes::from(format!("{s}:{i}"))))
            .collect();
        merged.extend(entries.iter().map(|(k, v)| (s, k.to_vec(), v.to_vec())));
        cursors.push(VecCursor::new(entries).unwrap());
    }
    merged.sort_by(|a, b| compare_internal_keys(&a.1, &b.1).then(a.0.cmp(&b.0)));

    let mut cursor = MergingCursor::new(cursors);
    let mut at: Option<usize> = None;
    for (i, op) in ops.iter().enumerate() {
        at = match op {
            MergeOp::SeekToFirst => {
                cursor.seek_to_first().unwrap();
                (!merged.is_empty()).then_some(0)
            }
            MergeOp::SeekToLast => {
                cursor.seek_to_last().unwrap();
                merged.len().checked_sub(1)
            }
            MergeOp::Seek(target) => {
                cursor.seek(target).unwrap();
                let p = merged
                    .partition_point(|e| compare_internal_keys(&e.1, target) == Ordering::Less);
                (p < merged.len()).then_some(p)
            }
            MergeOp::SeekForPrev(target) => {
                cursor.seek_for_prev(target).unwrap();
                merged
                    .partition_point(|e| compare_internal_keys(&e.1, target) != Ordering::Greater)
                    .checked_sub(1)
            }
            MergeOp::Next => match at {
                None => continue,
                Some(p) => {
                    cursor.next().unwrap();
                    (p + 1 < merged.len()).then_some(p + 1)
                }
            },
            MergeOp::Prev => match at {
                None => continue,
                Some(p) => {
                    cursor.prev().unwrap();
                    p.checked_sub(1)
                }
            },
        };
        match at {
            None => prop_assert!(!cursor.valid(), "op {i} {op:?}: expected invalid"),
            Some(p) => {
                prop_assert!(cursor.valid(), "op {i} {op:?}: expected {:?}", merged[p]);
                prop_assert_eq!(cursor.key(), &merged[p].1[..], "op {} {:?}", i, op);
                prop_assert_eq!(cursor.value(), &merged[p].2[..], "op {} {:?}", i, op);
            }
        }
    }
    Ok(())
}

// ---- Named cases ----
//
// No model run has failed against the code as committed (1000 cases per
// property in CI, 200 000 by hand). The cases below pin down the edges the
// generators aim at, through the same checks; any failure a model run finds
// later is added here under a name that says what broke.

fn write(source: usize, key: &[u8], seqno: SeqNo, put: bool) -> Write {
    Write {
        source,
        key: key.to_vec(),
        seqno,
        put,
        range_end: None,
    }
}

fn range_delete(source: usize, start: &[u8], end: &[u8], seqno: SeqNo) -> Write {
    Write {
        source,
        key: start.to_vec(),
        seqno,
        put: false,
        range_end: Some(end.to_vec()),
    }
}

#[test]
fn range_tombstones_hide_older_versions_both_ways_and_are_skipped_by_seeks() {
    // Source 0 is newer (a memtable), source 1 older (a table): the range
    // delete @10 covers b..d; a put of `bb` @12 after it stays visible.
    let db = Db {
        sources: 2,
        writes: vec![
            write(1, b"a", 1, true),
            write(1, b"b", 2, true),
            write(1, b"ba", 3, true),
            write(1, b"c", 4, true),
            write(1, b"d", 5, true),
            range_delete(0, b"b", b"d", 10),
            write(0, b"bb", 12, true),
            write(0, b"c", 8, true),
        ],
        snapshot: 20,
        range: Range::Bounds(Bound::Unbounded, Bound::Unbounded),
    };
    let all: Vec<Vec<u8>> = db.model().into_keys().collect();
    assert_eq!(all, vec![b"a".to_vec(), b"bb".to_vec(), b"d".to_vec()]);
    let ops = [
        CursorOp::SeekToFirst,
        CursorOp::Next,
        CursorOp::Next,
        CursorOp::Next,
        CursorOp::SeekToLast,
        CursorOp::Prev,
        CursorOp::Prev,
        CursorOp::Prev,
        CursorOp::Seek(b"b".to_vec()),
        CursorOp::Prev,
        CursorOp::Next,
        CursorOp::Next,
        CursorOp::SeekForPrev(b"cz".to_vec()),
        CursorOp::Prev,
    ];
    check_visible_cursor(&db, &ops).unwrap();
    // A snapshot before the delete sees everything older.
    let before = Db {
        snapshot: 9,
        ..db.clone()
    };
    check_visible_cursor(&before, &ops).unwrap();
    check_range_iter(&db, &[true, false, true, false]).unwrap();
}

#[test]
fn a_covered_span_costs_one_seek_per_older_source() {
    // Source 1 (older, max seqno 1000) holds 1000 keys under a tombstone.
    let mut writes: Vec<Write> = (0..1000u64)
        .map(|i| write(1, format!("k{i:04}").as_bytes(), i + 1, true))
        .collect();
    writes.push(range_delete(0, b"k0000", b"k0999", 2000));
    writes.push(write(0, b"a", 2001, true));
    let db = Db {
        sources: 2,
        writes,
        snapshot: 3000,
        range: Range::Bounds(Bound::Unbounded, Bound::Unbounded),
    };
    check_visible_cursor(
        &db,
        &[CursorOp::SeekToFirst, CursorOp::Next, CursorOp::Next],
    )
    .unwrap();
    check_visible_cursor(&db, &[CursorOp::SeekToLast, CursorOp::Prev, CursorOp::Prev]).unwrap();
    // Counting steps: the stack over a counting source.
    let counted = Counting::new(db.source_cursors()[1].clone());
    let steps = counted.steps.clone();
    let sources: Vec<Box<dyn Cursor>> =
        vec![Box::new(db.source_cursors()[0].clone()), Box::new(counted)];
    let merged = MergingCursor::new(sources).with_max_seqnos(db.max_seqnos());
    let mut cursor = VisibleCursor::new(merged, db.snapshot).with_range_tombstones(db.tombstones());
    cursor.seek_to_first().unwrap();
    assert_eq!(cursor.key(), b"a");
    cursor.next().unwrap();
    assert_eq!(cursor.key(), b"k0999");
    cursor.next().unwrap();
    assert!(!cursor.valid());
    assert!(
        steps.get() < 10,
        "{} steps over a covered span",
        steps.get()
    );
    steps.set(0);
    cursor.seek_to_last().unwrap();
    assert_eq!(cursor.key(), b"k0999");
    cursor.prev().unwrap();
    assert_eq!(cursor.key(), b"a");
    assert!(
        steps.get() < 10,
        "{} steps back over a covered span",
        steps.get()
    );
}

/// A cursor that counts its `next` and `prev` calls.
struct Counting {
    inner: VecCursor,
    steps: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Counting {
    fn new(inner: VecCursor) -> Self {
        Counting {
            inner,
            steps: std::rc::Rc::default(),
        }
    }
}

impl Cursor for Counting {
    fn valid(&self) -> bool {
        self.inner.valid()
    }
    fn key(&self) -> &[u8] {
        self.inner.key()
    }
    fn value(&self) -> &[u8] {
        self.inner.value()
    }
    fn seek(&mut self, target: &[u8]) -> kevo_core::Result<()> {
        self.inner.seek(target)
    }
    fn seek_for_prev(&mut self, target: &[u8]) -> kevo_core::Result<()> {
        self.inner.seek_for_prev(target)
    }
    fn seek_to_first(&mut self) -> kevo_core::Result<()> {
        self.inner.seek_to_first()
    }
    fn seek_to_last(&mut self) -> kevo_core::Result<()> {
        self.inner.seek_to_last()
    }
    fn next(&mut self) -> kevo_core::Result<()> {
        self.steps.set(self.steps.get() + 1);
        self.inner.next()
    }
    fn prev(&mut self) -> kevo_core::Result<()> {
        self.steps.set(self.steps.get() + 1);
        self.inner.prev()
    }
}

#[test]
fn direction_changes_over_tombstones_and_invisible_versions_match_model() {
    let db = Db {
        sources: 3,
        writes: vec![
            write(0, b"a", 2, true),
            write(1, b"a", 4, false),
            write(2, b"a", 6, true), // above the snapshot
            write(2, b"b", 8, true), // above the snapshot
            write(0, b"b", 3, true),
            write(1, b"c", 5, true),
            write(0, b"c", 1, false),
        ],
        snapshot: 5,
        range: Range::Bounds(Bound::Unbounded, Bound::Unbounded),
    };
    use CursorOp::*;
    check_visible_cursor(
        &db,
        &[
            SeekToLast,
            Prev,
            Prev,
            Next,
            Next,
            Prev,
            SeekToFirst,
            Next,
            Prev,
        ],
    )
    .unwrap();
    check_range_iter(&db, &[false, true, false, true]).unwrap();
}

#[test]
fn excluded_start_keeps_the_zero_byte_successor() {
    let db = Db {
        sources: 2,
        writes: vec![
            write(0, b"a", 2, true),
            write(1, b"a\x00", 4, true),
            write(0, b"a\x00\x00", 6, true),
        ],
        snapshot: 10,
        range: Range::Bounds(
            Bound::Excluded(b"a".to_vec()),
            Bound::Excluded(b"a\x00\x00".to_vec()),
        ),
    };
    use CursorOp::*;
    check_visible_cursor(
        &db,
        &[SeekToFirst, Next, SeekToLast, Prev, Seek(b"a".to_vec())],
    )
    .unwrap();
    check_range_iter(&db, &[true, true]).unwrap();
}

#[test]
fn prefix_of_ff_bytes_runs_to_the_end_of_the_key_space() {
    let db = Db {
        sources: 2,
        writes: vec![
            write(0, b"b", 2, true),
            write(1, b"\xff", 4, true),
            write(0, b"\xff\xff\xff", 6, true),
            write(1, b"\xff\xff", 8, false),
        ],
        snapshot: 10,
        range: Range::Prefix(b"\xff".to_vec()),
    };
    use CursorOp::*;
    check_visible_cursor(
        &db,
        &[SeekToLast, Prev, Prev, SeekForPrev(b"\xff\xff".to_vec())],
    )
    .unwrap();
    check_range_iter(&db, &[false, false, false]).unwrap();
}

#[test]
fn forward_after_a_backward_skip_past_the_start_shows_the_next_key() {
    // Walking back from `\xff` skips the covered `\0a`@4 of the older
    // source to the front; `next` must then show `\xff`, not `\0\xff` again.
    let db = Db {
        sources: 2,
        writes: vec![
            range_delete(0, &[], b"b", 6),
            write(0, b"a", 2, true),
            write(0, &[0, 255], 10, true),
            write(1, &[0, b'a'], 4, true),
            write(0, &[255], 8, true),
        ],
        snapshot: 10,
        range: Range::Bounds(Bound::Unbounded, Bound::Unbounded),
    };
    let ops = [
        CursorOp::SeekToFirst,
        CursorOp::Next,
        CursorOp::Prev,
        CursorOp::Next,
        CursorOp::Prev,
        CursorOp::Prev,
    ];
    check_visible_cursor(&db, &ops).unwrap();
}
