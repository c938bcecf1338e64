//! The garbage-collection step against a model: whatever a snapshot (or the
//! latest view) saw before, it sees after — with range tombstones too
//! (their compacted form and the versions they let the filter drop).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use kevo_compaction::{GcFilter, Verdict};
use kevo_core::{FragmentedTombstones, InternalKey, RangeTombstone, SEQNO_MAX, SeqNo, ValueKind};
use proptest::prelude::*;

/// (user key, seqno, kind, value), in internal-key order.
type Entry = (Vec<u8>, SeqNo, ValueKind, u32);

/// The newest entry of `key` at or below `snapshot`, if any.
fn visible<'a>(entries: &'a [Entry], key: &[u8], snapshot: SeqNo) -> Option<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.0 == key && e.1 <= snapshot)
        .max_by_key(|e| e.1)
}

/// What a reader gets: the value, or `None` for a tombstone or nothing.
fn read(entries: &[Entry], key: &[u8], snapshot: SeqNo) -> Option<u32> {
    visible(entries, key, snapshot).and_then(|e| (e.2 == ValueKind::Put).then_some(e.3))
}

fn history() -> impl Strategy<Value = (Vec<Entry>, Vec<SeqNo>)> {
    let ops = proptest::collection::vec((0u8..4, any::<bool>()), 1..40);
    (ops, proptest::collection::vec(0u64..45, 0..5)).prop_map(|(ops, snapshots)| {
        let mut entries: Vec<Entry> = ops
            .into_iter()
            .enumerate()
            .map(|(i, (key, put))| {
                let kind = if put {
                    ValueKind::Put
                } else {
                    ValueKind::Delete
                };
                (vec![b'a' + key], i as SeqNo + 1, kind, i as u32)
            })
            .collect();
        entries.sort_by(|a, b| {
            InternalKey::new(&a.0, a.1, a.2).cmp(&InternalKey::new(&b.0, b.1, b.2))
        });
        (entries, snapshots)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_snapshot_reads_the_same_after_gc((entries, snapshots) in history(), drop_tombstones: bool) {
        let mut filter = GcFilter::new(&snapshots, drop_tombstones);
        let mut kept = Vec::new();
        for e in &entries {
            let key = InternalKey::new(&e.0, e.1, e.2);
            if filter.decide(key.as_bytes()).unwrap() == Verdict::Keep {
                kept.push(e.clone());
            }
        }
        let stats = filter.stats();
        prop_assert_eq!(stats.entries_in, entries.len() as u64);
        prop_assert_eq!(stats.entries_kept, kept.len() as u64);
        prop_assert_eq!(
            stats.entries_kept + stats.versions_dropped + stats.tombstones_dropped,
            entries.len() as u64
        );

        let keys: BTreeSet<Vec<u8>> = entries.iter().map(|e| e.0.clone()).collect();
        let views: Vec<SeqNo> = snapshots.iter().copied().chain([SEQNO_MAX]).collect();
        for key in &keys {
            for &view in &views {
                prop_assert_eq!(read(&entries, key, view), read(&kept, key, view),
                    "key {:?} at {}", key, view);
                // Nothing a reader sees is dropped: the same entry, unless it
                // was a tombstone dropped at the bottom (then nothing).
                let before = visible(&entries, key, view);
                let after = visible(&kept, key, view);
                match before {
                    Some(e) if e.2 == ValueKind::Put => prop_assert_eq!(after, Some(e)),
                    Some(e) if !drop_tombstones => prop_assert_eq!(after, Some(e)),
                    Some(_) => prop_assert!(after.is_none_or(|a| a.2 == ValueKind::Delete)),
                    None => prop_assert!(after.is_none()),
                }
            }
        }
        // With drop_tombstones, no tombstone survives in the oldest stripe.
        if drop_tombstones {
            let oldest = snapshots.iter().copied().min().unwrap_or(SEQNO_MAX);
            for e in &kept {
                prop_assert!(!(e.2 == ValueKind::Delete && e.1 <= oldest),
                    "tombstone {:?}@{} kept below snapshot {}", e.0, e.1, oldest);
            }
        }
        // At most one version per key per stripe (stripes: snapshot count + 1).
        for key in &keys {
            let versions = kept.iter().filter(|e| &e.0 == key).count();
            let stripes = snapshots.iter().collect::<BTreeSet<_>>().len() + 1;
            prop_assert!(versions <= stripes);
        }
    }
}

/// What a reader gets with range tombstones: the newest visible version,
/// unless a tombstone newer than it (and visible) covers the key.
fn read_with(
    entries: &[Entry],
    tombstones: &FragmentedTombstones,
    key: &[u8],
    snapshot: SeqNo,
) -> Option<u32> {
    let found = visible(entries, key, snapshot);
    let covering = tombstones.covering_seqno(key, snapshot);
    match (found, covering) {
        (Some(e), Some(t)) if t > e.1 => None,
        (Some(e), _) => (e.2 == ValueKind::Put).then_some(e.3),
        (None, _) => None,
    }
}

fn history_with_ranges() -> impl Strategy<Value = (Vec<Entry>, Vec<RangeTombstone>, Vec<SeqNo>)> {
    // Each op: a point write, or a range tombstone over [a, b).
    let ops = proptest::collection::vec((0u8..6, any::<bool>(), 0u8..6, 0u8..5), 1..40);
    (ops, proptest::collection::vec(0u64..45, 0..5)).prop_map(|(ops, snapshots)| {
        let mut entries: Vec<Entry> = Vec::new();
        let mut tombstones = Vec::new();
        for (i, (key, put, end, what)) in ops.into_iter().enumerate() {
            let seqno = i as SeqNo + 1;
            if what == 0 {
                tombstones.push(RangeTombstone::new(
                    vec![b'a' + key],
                    vec![b'a' + end],
                    seqno,
                ));
            } else {
                let kind = if put {
                    ValueKind::Put
                } else {
                    ValueKind::Delete
                };
                entries.push((vec![b'a' + key], seqno, kind, i as u32));
            }
        }
        entries.sort_by(|a, b| {
            InternalKey::new(&a.0, a.1, a.2).cmp(&InternalKey::new(&b.0, b.1, b.2))
        });
        (entries, tombstones, snapshots)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn every_snapshot_reads_the_same_after_gc_with_range_tombstones(
        (entries, tombstones, snapshots) in history_with_ranges(),
        drop_tombstones: bool,
    ) {
        let all = Arc::new(FragmentedTombstones::new(tombstones));
        let mut filter = GcFilter::new(&snapshots, drop_tombstones).with_range_tombstones(all.clone());
        let kept_tombstones = all.compacted(filter.snapshots(), drop_tombstones);
        let mut kept = Vec::new();
        for e in &entries {
            let key = InternalKey::new(&e.0, e.1, e.2);
            if filter.decide(key.as_bytes()).unwrap() == Verdict::Keep {
                kept.push(e.clone());
            }
        }
        let stats = filter.stats();
        prop_assert_eq!(
            stats.entries_kept + stats.versions_dropped + stats.tombstones_dropped + stats.covered_dropped,
            entries.len() as u64
        );
        let views: Vec<SeqNo> = snapshots.iter().copied().chain([SEQNO_MAX]).collect();
        for k in 0u8..7 {
            let key = [b'a' + k];
            for &view in &views {
                prop_assert_eq!(
                    read_with(&entries, &all, &key, view),
                    read_with(&kept, &kept_tombstones, &key, view),
                    "key {:?} at {}", key, view
                );
            }
        }
    }
}
