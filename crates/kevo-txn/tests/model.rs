#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Model tests: the transaction pieces against brute-force models, under
//! random inputs.
//!
//! - `merged_iter_matches_btreemap_merge`: a random snapshot (with errors
//!   sometimes), a random buffer of puts and deletes, and any interleaving
//!   of `next` and `next_back` on a `MergedIter` yield exactly the merged
//!   `BTreeMap` in order, meeting in the middle; an error ends the sequence.
//! - `conflict_tracker_matches_full_history`: random commits, begins, ends
//!   and checks against a model that keeps every commit and scans them all.
//!   An `Ok` must agree with the model (never commit past a conflict); a
//!   conflict must be one the model finds, naming the newest write to its
//!   key; `HistoryTrimmed` only where the byte bound or a late begin allows.
//!
//! Each runs 1000 cases; `KEVO_TXN_MODEL_CASES=100000` runs more.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use bytes::Bytes;
use kevo_txn::{ConflictReason, ConflictTracker, MergedIter, ReadSet, TrackerOptions, WriteBuffer};
use proptest::prelude::*;
use proptest::sample::select;

/// Cases per property; `KEVO_TXN_MODEL_CASES` raises it for a long run.
fn cases() -> u32 {
    std::env::var("KEVO_TXN_MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

const ALPHABET: &[u8] = &[0x00, b'a', b'b', 0xFF];

/// Short keys from a small alphabet, so that snapshot and buffer overlap.
fn arb_key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(select(ALPHABET), 0..=2)
}

fn arb_bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => arb_key().prop_map(Bound::Included),
        2 => arb_key().prop_map(Bound::Excluded),
    ]
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    bound.as_ref().map(Vec::as_slice)
}

// ---------------------------------------------------------------- MergedIter

#[derive(Debug, Clone)]
struct MergeCase {
    /// The snapshot: key -> value.
    base: BTreeMap<Vec<u8>, u8>,
    /// The buffer: key -> Some(value) put, None delete.
    buffer: BTreeMap<Vec<u8>, Option<u8>>,
    /// Position in the base's key order at which it fails, if any.
    error_at: Option<usize>,
    /// For each step: true = `next`, false = `next_back`.
    steps: Vec<bool>,
}

fn arb_merge_case() -> impl Strategy<Value = MergeCase> {
    (
        proptest::collection::btree_map(arb_key(), any::<u8>(), 0..12),
        proptest::collection::btree_map(arb_key(), proptest::option::of(any::<u8>()), 0..12),
        proptest::option::weighted(0.2, 0..12usize),
        proptest::collection::vec(any::<bool>(), 0..30),
    )
        .prop_map(|(base, buffer, error_at, steps)| MergeCase {
            base,
            buffer,
            error_at,
            steps,
        })
}

type Item = Result<(Bytes, Bytes), usize>;

fn check_merged_iter(case: &MergeCase) -> Result<(), TestCaseError> {
    // The base: in key order, with an error item at `error_at` (its payload
    // is its position, so the test can tell which end reached it).
    let mut base_items: Vec<Item> = case
        .base
        .iter()
        .map(|(k, v)| Ok((Bytes::from(k.clone()), Bytes::from(vec![*v]))))
        .collect();
    let error_at = case.error_at.filter(|&i| i <= base_items.len());
    if let Some(i) = error_at {
        base_items.insert(i, Err(i));
    }
    let mut buffer = WriteBuffer::new();
    for (k, v) in &case.buffer {
        match v {
            Some(v) => buffer.put(Bytes::from(k.clone()), Bytes::from(vec![*v, 0xBB])),
            None => buffer.delete(Bytes::from(k.clone())),
        }
    }
    let buffered: Vec<_> = buffer.range(Bound::Unbounded, Bound::Unbounded).collect();
    let mut iter = MergedIter::new(base_items.clone().into_iter(), buffered);

    // The model without errors: the merge, as a deque of entries.
    let mut model: BTreeMap<Bytes, Bytes> = case
        .base
        .iter()
        .map(|(k, v)| (Bytes::from(k.clone()), Bytes::from(vec![*v])))
        .collect();
    for (k, v) in &case.buffer {
        match v {
            Some(v) => model.insert(Bytes::from(k.clone()), Bytes::from(vec![*v, 0xBB])),
            None => model.remove(k.as_slice()),
        };
    }
    let mut want: std::collections::VecDeque<(Bytes, Bytes)> = model.into_iter().collect();

    // Until the error, each end yields exactly what the model does; the
    // error must come before the end (the base is exhausted only through
    // it), and once.
    let mut steps = case.steps.clone();
    // Drain to the end, alternating, after the random steps.
    steps.extend((0..40).map(|i| i % 2 == 0));
    for forward in steps {
        let got = if forward {
            iter.next()
        } else {
            iter.next_back()
        };
        match got {
            Some(Err(i)) => {
                prop_assert_eq!(Some(i), error_at, "only the planted error");
                prop_assert!(iter.next().is_none(), "fused after an error");
                prop_assert!(iter.next_back().is_none(), "fused after an error");
                return Ok(());
            }
            Some(Ok(entry)) => {
                let expected = if forward {
                    want.pop_front()
                } else {
                    want.pop_back()
                };
                prop_assert_eq!(Some(entry), expected, "forward = {}", forward);
            }
            None => {
                prop_assert!(error_at.is_none(), "error never returned");
                prop_assert!(want.is_empty(), "ended early, left {:?}", want);
            }
        }
    }
    prop_assert!(want.is_empty() && error_at.is_none());
    Ok(())
}

// ----------------------------------------------------------- ConflictTracker

/// A scanned range: start and end bounds.
type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

#[derive(Debug, Clone)]
enum Op {
    /// A commit of these keys at the next seqno.
    Commit(Vec<Vec<u8>>),
    /// Another commit sharing the previous commit's seqno.
    CommitSameSeqno(Vec<Vec<u8>>),
    /// A transaction begins at the current seqno minus `lag` (a late begin
    /// when `lag > 0`).
    Begin { lag: u64 },
    /// The transaction at this index (modulo the active count) ends.
    End(usize),
    /// Checks the active transaction at this index.
    Check {
        txn: usize,
        keys: Vec<Vec<u8>>,
        ranges: Vec<KeyRange>,
        writes: Vec<Vec<u8>>,
    },
}

fn arb_keys(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(arb_key(), 0..=max)
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => arb_keys(3).prop_map(Op::Commit),
        1 => arb_keys(2).prop_map(Op::CommitSameSeqno),
        3 => prop_oneof![8 => Just(0u64), 1 => 1..3u64].prop_map(|lag| Op::Begin { lag }),
        2 => any::<usize>().prop_map(Op::End),
        4 => (
            any::<usize>(),
            arb_keys(2),
            proptest::collection::vec((arb_bound(), arb_bound()), 0..=2),
            arb_keys(2),
        )
            .prop_map(|(txn, keys, ranges, writes)| Op::Check { txn, keys, ranges, writes }),
    ]
}

/// Whether `key` lies within the bounds.
fn in_range(key: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let after_start = match start {
        Bound::Included(s) => key >= s.as_slice(),
        Bound::Excluded(s) => key > s.as_slice(),
        Bound::Unbounded => true,
    };
    let before_end = match end {
        Bound::Included(e) => key <= e.as_slice(),
        Bound::Excluded(e) => key < e.as_slice(),
        Bound::Unbounded => true,
    };
    after_start && before_end
}

fn check_tracker(max_history_bytes: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut tracker = ConflictTracker::new(TrackerOptions { max_history_bytes });
    // The model: every commit ever, and the active snapshots in begin order.
    let mut history: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut active: Vec<(u64, bool)> = Vec::new(); // (snapshot, began late)
    let mut seqno = 10u64;
    // Whether the byte bound may trim history a transaction needs.
    let bounded = max_history_bytes < usize::MAX;

    for op in ops {
        match op {
            Op::Commit(keys) | Op::CommitSameSeqno(keys) => {
                if matches!(op, Op::Commit(_)) {
                    seqno += 1;
                }
                // Recorded even with nobody active: it then keeps nothing.
                tracker.record(seqno, keys.iter().map(|k| Bytes::from(k.clone())));
                history.extend(keys.iter().map(|k| (seqno, k.clone())));
            }
            Op::Begin { lag } => {
                let snapshot = seqno.saturating_sub(*lag);
                tracker.begin(snapshot);
                active.push((snapshot, *lag > 0));
            }
            Op::End(i) => {
                if !active.is_empty() {
                    let (snapshot, _) = active.remove(i % active.len());
                    tracker.end(snapshot);
                }
                if active.is_empty() {
                    prop_assert_eq!(tracker.history_len(), 0);
                    prop_assert_eq!(tracker.history_bytes(), 0);
                }
            }
            Op::Check {
                txn,
                keys,
                ranges,
                writes,
            } => {
                if active.is_empty() {
                    continue;
                }
                let (snapshot, late) = active[txn % active.len()];
                let mut reads = ReadSet::new();
                for k in keys {
                    reads.add_key(k);
                }
                for (s, e) in ranges {
                    reads.add_range(as_slice(s), as_slice(e));
                }
                let write_keys: Vec<Bytes> =
                    writes.iter().map(|k| Bytes::from(k.clone())).collect();
                let result = tracker.check(snapshot, &reads, &write_keys);

                // Brute force: every (seqno, key, reason) that conflicts.
                let newer = history.iter().filter(|(s, _)| *s > snapshot);
                let mut found: BTreeSet<(u64, Vec<u8>, u8)> = BTreeSet::new();
                for (s, k) in newer {
                    if keys.contains(k) {
                        found.insert((*s, k.clone(), 0));
                    }
                    if ranges.iter().any(|(a, b)| in_range(k, a, b)) {
                        found.insert((*s, k.clone(), 1));
                    }
                    if writes.contains(k) {
                        found.insert((*s, k.clone(), 2));
                    }
                }
                match &result {
                    Ok(()) => prop_assert!(found.is_empty(), "missed conflicts {:?}", found),
                    Err(c) if c.reason == ConflictReason::HistoryTrimmed => {
                        prop_assert!(late || bounded, "trimmed without cause");
                        prop_assert!(c.committed_seqno > snapshot);
                        prop_assert!(!reads.is_empty() || !writes.is_empty());
                    }
                    Err(c) => {
                        let tag = match c.reason {
                            ConflictReason::ReadKeyWritten => 0,
                            ConflictReason::ScannedRangeWritten => 1,
                            _ => 2,
                        };
                        let key = c.key.to_vec();
                        prop_assert!(
                            found.contains(&(c.committed_seqno, key.clone(), tag)),
                            "not a real conflict: {:?}",
                            c
                        );
                        let newest = history
                            .iter()
                            .filter(|(_, k)| *k == key)
                            .map(|(s, _)| *s)
                            .max();
                        prop_assert_eq!(
                            Some(c.committed_seqno),
                            newest,
                            "the newest write to the key"
                        );
                    }
                }
                // Without a byte bound and a late begin, the check is exact.
                if !bounded && !late {
                    prop_assert_eq!(result.is_ok(), found.is_empty());
                }
            }
        }
        // Only history newer than the oldest active snapshot is kept.
        let oldest = active.iter().map(|(s, _)| *s).min();
        prop_assert_eq!(tracker.oldest_active(), oldest);
        let needed: BTreeSet<u64> = match oldest {
            Some(o) => history.iter().map(|(s, _)| *s).filter(|s| *s > o).collect(),
            None => BTreeSet::new(),
        };
        prop_assert!(tracker.history_len() <= needed.len());
        // A late begin finds older writes already dropped; otherwise, with
        // no byte bound, exactly the needed records are kept.
        if !bounded && !active.iter().any(|&(_, late)| late) {
            prop_assert_eq!(tracker.history_len(), needed.len());
        }
        prop_assert!(tracker.history_bytes() <= max_history_bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn merged_iter_matches_btreemap_merge(case in arb_merge_case()) {
        check_merged_iter(&case)?;
    }

    #[test]
    fn conflict_tracker_matches_full_history(
        ops in proptest::collection::vec(arb_op(), 1..60),
    ) {
        check_tracker(usize::MAX, &ops)?;
    }

    #[test]
    fn conflict_tracker_under_a_byte_bound_never_commits_unchecked(
        max_history_bytes in 0..2000usize,
        ops in proptest::collection::vec(arb_op(), 1..60),
    ) {
        check_tracker(max_history_bytes, &ops)?;
    }
}
