//! The memtable against a `BTreeMap` model: random puts and deletes over a
//! small key alphabet (so user keys collect many versions), then random
//! snapshot lookups and random cursor walks, compared entry by entry.
//!
//! 256 cases; `KEVO_MEMTABLE_MODEL_CASES=20000` runs more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::sync::Arc;

use kevo_core::{
    Cursor, InternalKey, LOOKUP_KIND, SEQNO_MAX, SeqNo, ValueKind, encode_internal_key,
};
use kevo_memtable::{Lookup, MemTable};
use proptest::prelude::*;

type Model = BTreeMap<(Vec<u8>, Reverse<SeqNo>), (ValueKind, Vec<u8>)>;

/// Seqnos are drawn from `0..SEQNOS`, so the same (key, seqno) comes up
/// now and then; the engine never reuses a seqno, so such a draw is
/// skipped.
const SEQNOS: SeqNo = 64;

#[derive(Debug, Clone)]
struct Insert {
    user_key: Vec<u8>,
    seqno: SeqNo,
    kind: ValueKind,
    value: Vec<u8>,
}

/// A seek target: a user key (possibly absent from the table), a seqno and
/// a kind tag (a real kind or the lookup kind).
#[derive(Debug, Clone)]
struct Target {
    user_key: Vec<u8>,
    seqno: SeqNo,
    tag: u8,
}

impl Target {
    fn encode(&self) -> Vec<u8> {
        let mut key = Vec::new();
        encode_internal_key(&mut key, &self.user_key, self.seqno, self.tag);
        key
    }

    /// Orders the target against a model entry, with the model's own
    /// tuple order (user key ascending, then seqno and kind descending).
    fn cmp_entry(&self, entry: &Entry) -> Ordering {
        self.user_key
            .cmp(&entry.user_key)
            .then(entry.seqno.cmp(&self.seqno))
            .then((entry.kind as u8).cmp(&self.tag))
    }
}

#[derive(Debug, Clone)]
enum Step {
    Seek(Target),
    SeekForPrev(Target),
    First,
    Last,
    Next,
    Prev,
}

#[derive(Debug, Clone)]
struct Entry {
    user_key: Vec<u8>,
    seqno: SeqNo,
    kind: ValueKind,
    value: Vec<u8>,
}

impl Entry {
    fn internal_key(&self) -> Vec<u8> {
        InternalKey::new(&self.user_key, self.seqno, self.kind)
            .as_bytes()
            .to_vec()
    }
}

/// Keys over a two-letter alphabet, up to 3 long: 15 distinct keys,
/// including the empty key and keys that are prefixes of others.
fn user_key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 0..=3)
}

/// Seek and lookup keys also reach past the table's keys (`c...`).
fn probe_key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 0..=3)
}

fn insert() -> impl Strategy<Value = Insert> {
    (
        user_key(),
        0..SEQNOS,
        prop_oneof![3 => Just(ValueKind::Put), 1 => Just(ValueKind::Delete)],
        proptest::collection::vec(any::<u8>(), 0..12),
    )
        .prop_map(|(user_key, seqno, kind, value)| Insert {
            user_key,
            seqno,
            kind,
            value,
        })
}

fn snapshot() -> impl Strategy<Value = SeqNo> {
    prop_oneof![8 => 0..SEQNOS + 2, 1 => Just(SEQNO_MAX), 1 => Just(u64::MAX)]
}

fn target() -> impl Strategy<Value = Target> {
    (
        probe_key(),
        0..SEQNOS + 2,
        prop_oneof![Just(1u8), Just(2u8), Just(LOOKUP_KIND)],
    )
        .prop_map(|(user_key, seqno, tag)| Target {
            user_key,
            seqno,
            tag,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => target().prop_map(Step::Seek),
        2 => target().prop_map(Step::SeekForPrev),
        1 => Just(Step::First),
        1 => Just(Step::Last),
        6 => Just(Step::Next),
        6 => Just(Step::Prev),
    ]
}

/// The model's answer to `get(user_key, snapshot)`.
fn model_get(model: &Model, user_key: &[u8], snapshot: SeqNo) -> Lookup {
    let from = (user_key.to_vec(), Reverse(snapshot.min(SEQNO_MAX)));
    match model.range(from..).next() {
        Some(((key, _), (kind, value))) if key.as_slice() == user_key => match kind {
            ValueKind::Put => Lookup::Found(value.clone().into()),
            ValueKind::Delete => Lookup::Deleted,
        },
        _ => Lookup::Absent,
    }
}

/// Applies one step to the model cursor (an index into `entries`).
fn model_step(entries: &[Entry], at: Option<usize>, step: &Step) -> Option<usize> {
    match step {
        Step::Seek(target) => entries
            .iter()
            .position(|e| target.cmp_entry(e) != Ordering::Greater),
        Step::SeekForPrev(target) => entries
            .iter()
            .rposition(|e| target.cmp_entry(e) != Ordering::Less),
        Step::First => (!entries.is_empty()).then_some(0),
        Step::Last => entries.len().checked_sub(1),
        Step::Next => at.and_then(|i| (i + 1 < entries.len()).then_some(i + 1)),
        Step::Prev => at.and_then(|i| i.checked_sub(1)),
    }
}

fn cursor_step(cursor: &mut impl Cursor, step: &Step) {
    match step {
        Step::Seek(target) => cursor.seek(&target.encode()).unwrap(),
        Step::SeekForPrev(target) => cursor.seek_for_prev(&target.encode()).unwrap(),
        Step::First => cursor.seek_to_first().unwrap(),
        Step::Last => cursor.seek_to_last().unwrap(),
        Step::Next => cursor.next().unwrap(),
        Step::Prev => cursor.prev().unwrap(),
    }
}

/// 256 cases by default; `KEVO_MEMTABLE_MODEL_CASES` asks for more.
fn cases() -> u32 {
    std::env::var("KEVO_MEMTABLE_MODEL_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn memtable_matches_btreemap_model(
        inserts in proptest::collection::vec(insert(), 0..160),
        gets in proptest::collection::vec((probe_key(), snapshot()), 1..60),
        walks in proptest::collection::vec(proptest::collection::vec(step(), 1..40), 1..8),
    ) {
        let table = Arc::new(MemTable::new());
        let mut model = Model::new();
        let mut bytes = 0;
        for insert in &inserts {
            let key = (insert.user_key.clone(), Reverse(insert.seqno));
            if model.contains_key(&key) {
                continue; // a reused seqno: never happens in the engine
            }
            let value = match insert.kind {
                ValueKind::Put => insert.value.clone(),
                ValueKind::Delete => Vec::new(),
            };
            bytes += insert.user_key.len() + 8 + value.len() + kevo_memtable::ENTRY_OVERHEAD_BYTES;
            model.insert(key, (insert.kind, value));
            table.insert(&insert.user_key, insert.seqno, insert.kind, &insert.value);
        }
        prop_assert_eq!(table.len(), model.len());
        prop_assert_eq!(table.is_empty(), model.is_empty());
        prop_assert_eq!(table.approximate_bytes(), bytes);

        for (user_key, snapshot) in &gets {
            prop_assert_eq!(
                table.get(user_key, *snapshot),
                model_get(&model, user_key, *snapshot),
                "get({:?}, {})", user_key, snapshot
            );
        }

        let entries: Vec<Entry> = model
            .iter()
            .map(|((user_key, Reverse(seqno)), (kind, value))| Entry {
                user_key: user_key.clone(),
                seqno: *seqno,
                kind: *kind,
                value: value.clone(),
            })
            .collect();
        let mut cursor = table.cursor();
        for walk in &walks {
            // Every walk starts from a positioning step.
            let mut at = None;
            for (i, step) in walk.iter().enumerate() {
                let step = match (i, step) {
                    (0, Step::Next) => &Step::First,
                    (0, Step::Prev) => &Step::Last,
                    _ => step,
                };
                at = model_step(&entries, at, step);
                cursor_step(&mut cursor, step);
                match at {
                    None => {
                        prop_assert!(!cursor.valid(), "after {:?}: {:?}", step, cursor);
                    }
                    Some(i) => {
                        let want = &entries[i];
                        prop_assert!(cursor.valid(), "after {:?}: want {:?}", step, want);
                        prop_assert_eq!(cursor.key(), &want.internal_key()[..], "after {:?}", step);
                        prop_assert_eq!(cursor.value(), &want.value[..], "after {:?}", step);
                    }
                }
            }
        }
    }
}

/// The model's order is the memtable's: a full forward scan lists the model
/// in order (a fixed case of the property above, kept readable).
#[test]
fn full_scan_lists_versions_newest_first_within_a_key() {
    let table = Arc::new(MemTable::new());
    for (seqno, key) in [(1, "b"), (2, "a"), (3, "b"), (4, "ab"), (5, "")] {
        table.insert(key.as_bytes(), seqno, ValueKind::Put, key.as_bytes());
    }
    let mut cursor = table.cursor();
    cursor.seek_to_first().unwrap();
    let mut seen = Vec::new();
    while cursor.valid() {
        let parsed = kevo_core::parse_internal_key(cursor.key()).unwrap();
        seen.push((
            String::from_utf8(parsed.user_key.to_vec()).unwrap(),
            parsed.seqno,
        ));
        cursor.next().unwrap();
    }
    let expected = [("", 5), ("a", 2), ("ab", 4), ("b", 3), ("b", 1)];
    let expected: Vec<(String, SeqNo)> =
        expected.iter().map(|&(k, s)| (k.to_string(), s)).collect();
    assert_eq!(seen, expected);
}
