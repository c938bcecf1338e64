//! Round trips: what a writer puts in, gets and cursors give back, checked
//! against a sorted model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use kevo_core::{
    Cursor, InternalKey, MemFs, SEQNO_MAX, ValueKind, compare_internal_keys, parse_internal_key,
};
use kevo_sstable::{Compression, LruBlockCache, ReadOptions, Table, TableOptions};
use proptest::prelude::*;

fn user_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(0u8..3, 0..6),
        1 => proptest::collection::vec(any::<u8>(), 0..=300),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(0u8..4, 0..40),
        1 => proptest::collection::vec(any::<u8>(), 0..=10 * 1024),
        1 => (0usize..=10 * 1024).prop_map(|n| vec![b'x'; n]),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (user_key(), 0..50u64, any::<bool>(), value()).prop_map(|(key, seqno, tombstone, value)| {
        if tombstone {
            Entry::new(&key, seqno, ValueKind::Delete, b"")
        } else {
            Entry::new(&key, seqno, ValueKind::Put, &value)
        }
    })
}

fn table_options() -> impl Strategy<Value = TableOptions> {
    (
        prop_oneof![1usize..200, 200usize..8192],
        1usize..=32,
        any::<bool>(),
        prop_oneof![Just(0u32), 1u32..=20],
    )
        .prop_map(|(block, restart, lz4, bloom)| TableOptions {
            block_bytes_target: block,
            restart_interval: restart,
            compression: if lz4 && cfg!(feature = "lz4") {
                Compression::Lz4
            } else {
                Compression::None
            },
            bloom_bits_per_key: bloom,
            ..options()
        })
}

#[derive(Debug, Clone)]
enum Move {
    First,
    Last,
    Next,
    Prev,
    /// Seek to a model key (by index) or to an arbitrary key.
    Seek(Target),
    SeekForPrev(Target),
}

#[derive(Debug, Clone)]
enum Target {
    Model(prop::sample::Index, bool),
    Free(Vec<u8>, u64),
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<bool>())
            .prop_map(|(i, exact)| Target::Model(i, exact)),
        (user_key(), 0..60u64).prop_map(|(k, s)| Target::Free(k, s)),
    ]
}

fn moves() -> impl Strategy<Value = Vec<Move>> {
    let one = prop_oneof![
        1 => Just(Move::First),
        1 => Just(Move::Last),
        4 => Just(Move::Next),
        4 => Just(Move::Prev),
        2 => target().prop_map(Move::Seek),
        2 => target().prop_map(Move::SeekForPrev),
    ];
    proptest::collection::vec(one, 0..40)
}

fn resolve(target: &Target, model: &[Entry]) -> Vec<u8> {
    match target {
        Target::Model(i, exact) => {
            let key = &model[i.index(model.len())].key;
            if *exact {
                key.clone()
            } else {
                // Between this key and the next version of its user key.
                let parsed = parse_internal_key(key).unwrap();
                InternalKey::for_lookup(parsed.user_key, parsed.seqno.saturating_sub(1))
                    .as_bytes()
                    .to_vec()
            }
        }
        Target::Free(k, s) => InternalKey::for_lookup(k, *s).as_bytes().to_vec(),
    }
}

/// Applies a move to the model position.
fn model_move(pos: Option<usize>, mv: &Move, model: &[Entry]) -> Option<usize> {
    let n = model.len();
    let lower = |t: &[u8]| model.partition_point(|e| compare_internal_keys(&e.key, t).is_lt());
    match mv {
        Move::First => (n > 0).then_some(0),
        Move::Last => n.checked_sub(1),
        Move::Next => pos.and_then(|p| (p + 1 < n).then_some(p + 1)),
        Move::Prev => pos.and_then(|p| p.checked_sub(1)),
        Move::Seek(t) => {
            let i = lower(&resolve(t, model));
            (i < n).then_some(i)
        }
        Move::SeekForPrev(t) => {
            let t = resolve(t, model);
            let upper = model.partition_point(|e| compare_internal_keys(&e.key, &t).is_le());
            upper.checked_sub(1)
        }
    }
}

fn apply(cursor: &mut impl Cursor, mv: &Move, model: &[Entry]) {
    match mv {
        Move::First => cursor.seek_to_first().unwrap(),
        Move::Last => cursor.seek_to_last().unwrap(),
        Move::Next => cursor.next().unwrap(),
        Move::Prev => cursor.prev().unwrap(),
        Move::Seek(t) => cursor.seek(&resolve(t, model)).unwrap(),
        Move::SeekForPrev(t) => cursor.seek_for_prev(&resolve(t, model)).unwrap(),
    }
}

fn check_gets(table: &Table, model: &[Entry]) -> Result<(), TestCaseError> {
    for entry in model {
        let parsed = parse_internal_key(&entry.key).unwrap();
        for snapshot in [parsed.seqno, parsed.seqno.saturating_sub(1), SEQNO_MAX] {
            let got = table
                .get(parsed.user_key, snapshot)
                .unwrap()
                .map(|f| (f.seqno, f.kind, f.value.to_vec()));
            prop_assert_eq!(got, model_get(model, parsed.user_key, snapshot));
        }
        let mut absent = parsed.user_key.to_vec();
        absent.push(0xEE);
        let got = table.get(&absent, SEQNO_MAX).unwrap().map(|f| f.seqno);
        prop_assert_eq!(got, model_get(model, &absent, SEQNO_MAX).map(|m| m.0));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn gets_and_cursor_moves_match_a_sorted_model(
        entries in proptest::collection::vec(entry(), 1..60),
        options in table_options(),
        moves in moves(),
    ) {
        let model = sorted(entries);
        let fs = MemFs::new();
        let meta = write_table(&fs, PATH, &model, options);
        prop_assert_eq!(meta.entry_count, model.len() as u64);
        prop_assert_eq!(meta.smallest_key.as_bytes(), &model[0].key[..]);
        prop_assert_eq!(meta.largest_key.as_bytes(), &model[model.len() - 1].key[..]);
        let cache = Arc::new(LruBlockCache::new(1 << 20));
        let table = Arc::new(
            Table::open(&fs, Path::new(PATH), ReadOptions::default().with_cache(cache)).unwrap(),
        );
        check_gets(&table, &model)?;
        let report = table.verify().unwrap();
        prop_assert_eq!(report.entries, model.len() as u64);

        let mut cursor = table.cursor();
        let mut pos = None;
        for mv in &moves {
            if matches!(mv, Move::Next | Move::Prev) && pos.is_none() {
                continue; // requires a valid cursor
            }
            apply(&mut cursor, mv, &model);
            pos = model_move(pos, mv, &model);
            prop_assert_eq!(cursor.valid(), pos.is_some(), "after {:?}", mv);
            if let Some(p) = pos {
                prop_assert_eq!(cursor.key(), &model[p].key[..], "after {:?}", mv);
                prop_assert_eq!(cursor.value(), &model[p].value[..]);
            }
        }
    }
}

#[test]
fn full_scans_in_both_directions_see_every_entry() {
    let model = entries(500, 30);
    let fs = memfs_with_table(
        &model,
        TableOptions {
            block_bytes_target: 256,
            ..options()
        },
    );
    let table = open(&fs);
    let mut cursor = table.cursor();
    cursor.seek_to_first().unwrap();
    for entry in &model {
        assert_eq!(
            (cursor.key(), cursor.value()),
            (&entry.key[..], &entry.value[..])
        );
        cursor.next().unwrap();
    }
    assert!(!cursor.valid());
    cursor.seek_to_last().unwrap();
    for entry in model.iter().rev() {
        assert_eq!(cursor.key(), &entry.key[..]);
        cursor.prev().unwrap();
    }
    assert!(!cursor.valid());
}

#[test]
fn cursor_outlives_the_table_handle_and_moves_threads() {
    let model = entries(50, 10);
    let fs = memfs_with_table(&model, options());
    let mut cursor = open(&fs).cursor();
    let handle = std::thread::spawn(move || {
        cursor.seek_to_first().unwrap();
        let mut n = 0;
        while cursor.valid() {
            n += 1;
            cursor.next().unwrap();
        }
        n
    });
    assert_eq!(handle.join().unwrap(), model.len());
}

#[test]
fn get_respects_the_snapshot() {
    let model = sorted(vec![
        Entry::new(b"k", 9, ValueKind::Delete, b""),
        Entry::new(b"k", 5, ValueKind::Put, b"five"),
        Entry::new(b"k", 2, ValueKind::Put, b"two"),
    ]);
    let fs = memfs_with_table(&model, options());
    let table = open(&fs);
    let get = |s| {
        table
            .get(b"k", s)
            .unwrap()
            .map(|f| (f.kind, f.value.to_vec()))
    };
    assert_eq!(get(1), None);
    assert_eq!(get(4), Some((ValueKind::Put, b"two".to_vec())));
    assert_eq!(get(8), Some((ValueKind::Put, b"five".to_vec())));
    assert_eq!(get(u64::MAX), Some((ValueKind::Delete, vec![])));
}
