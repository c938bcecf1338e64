//! `DbCursor` (`Db::cursor`, `Snapshot::cursor`, `Keyspace::cursor`)
//! against a model: a `BTreeMap` and a position in it, over random writes
//! spread across memtables, L0 and deeper levels, and random moves.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::sync::Arc;

use kevo_core::MemFs;
use kevo_engine::{Db, DbCursor, Error, KeyspaceOptions, Options};
use proptest::prelude::*;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn key(k: u8) -> Vec<u8> {
    format!("k{k:03}").into_bytes()
}

fn open(fs: &Arc<MemFs>) -> Db {
    let options = Options::new()
        .memtable_bytes(64 << 10)
        .block_bytes(256)
        .l0_compaction_trigger(2);
    Db::open_with_fs(fs.clone(), "/db", options).unwrap()
}

#[derive(Debug, Clone)]
enum Write {
    Put(u8, u8),
    Delete(u8),
    DeleteRange(u8, u8),
    Flush,
}

#[derive(Debug, Clone)]
enum Move {
    Seek(u8),
    SeekForPrev(u8),
    First,
    Last,
    Next,
    Prev,
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        6 => (0u8..120, any::<u8>()).prop_map(|(k, v)| Write::Put(k, v)),
        2 => (0u8..120).prop_map(Write::Delete),
        1 => (0u8..120, 0u8..20).prop_map(|(a, n)| Write::DeleteRange(a, a.saturating_add(n))),
        1 => Just(Write::Flush),
    ]
}

fn a_move() -> impl Strategy<Value = Move> {
    prop_oneof![
        2 => (0u8..130).prop_map(Move::Seek),
        2 => (0u8..130).prop_map(Move::SeekForPrev),
        1 => Just(Move::First),
        1 => Just(Move::Last),
        4 => Just(Move::Next),
        3 => Just(Move::Prev),
    ]
}

fn apply(db: &Db, model: &mut Model, w: &Write) {
    match *w {
        Write::Put(k, v) => {
            let value = vec![v; 1 + usize::from(v) % 40];
            db.put(key(k), &value).unwrap();
            model.insert(key(k), value);
        }
        Write::Delete(k) => {
            db.delete(key(k)).unwrap();
            model.remove(&key(k));
        }
        Write::DeleteRange(a, b) => {
            db.delete_range(key(a)..key(b)).unwrap();
            let doomed: Vec<_> = model
                .range(key(a)..key(b))
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                model.remove(&k);
            }
        }
        Write::Flush => db.flush().unwrap(),
    }
}

/// Applies `m` to the model position (`None`: invalid); `next`/`prev` on an
/// invalid position are errors, which the caller checks.
fn model_move(model: &Model, at: Option<Vec<u8>>, m: &Move) -> Option<Vec<u8>> {
    let first_at_or_after = |k: &[u8]| model.range(k.to_vec()..).next().map(|(k, _)| k.clone());
    let last_at_or_before = |k: &[u8]| {
        model
            .range(..=k.to_vec())
            .next_back()
            .map(|(k, _)| k.clone())
    };
    match m {
        Move::Seek(k) => first_at_or_after(&key(*k)),
        Move::SeekForPrev(k) => last_at_or_before(&key(*k)),
        Move::First => model.keys().next().cloned(),
        Move::Last => model.keys().next_back().cloned(),
        Move::Next => {
            let at = at?;
            model
                .range((std::ops::Bound::Excluded(at), std::ops::Bound::Unbounded))
                .next()
                .map(|(k, _)| k.clone())
        }
        Move::Prev => {
            let at = at?;
            model.range(..at).next_back().map(|(k, _)| k.clone())
        }
    }
}

fn run_moves(cursor: &mut DbCursor, model: &Model, moves: &[Move]) {
    let mut at: Option<Vec<u8>> = None;
    for (i, m) in moves.iter().enumerate() {
        let result = match m {
            Move::Seek(k) => cursor.seek(key(*k)),
            Move::SeekForPrev(k) => cursor.seek_for_prev(key(*k)),
            Move::First => cursor.seek_to_first(),
            Move::Last => cursor.seek_to_last(),
            Move::Next => cursor.next(),
            Move::Prev => cursor.prev(),
        };
        if at.is_none() && matches!(m, Move::Next | Move::Prev) {
            assert!(
                matches!(result, Err(Error::InvalidArgument(_))),
                "move {i} {m:?} on an invalid cursor: {result:?}"
            );
            assert!(!cursor.valid());
            continue;
        }
        result.unwrap();
        at = model_move(model, at, m);
        match &at {
            Some(k) => {
                assert!(cursor.valid(), "move {i} {m:?}: expected {k:?}");
                assert_eq!(cursor.key(), k.as_slice(), "move {i} {m:?}");
                assert_eq!(cursor.value(), model[k].as_slice(), "move {i} {m:?}");
            }
            None => {
                assert!(!cursor.valid(), "move {i} {m:?}: expected the end");
                assert!(cursor.key().is_empty() && cursor.value().is_empty());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cursor_moves_like_the_model(
        writes in prop::collection::vec(write(), 1..300),
        later in prop::collection::vec(write(), 0..40),
        moves in prop::collection::vec(a_move(), 1..120),
    ) {
        let fs = Arc::new(MemFs::new());
        let db = open(&fs);
        let mut model = Model::new();
        for w in &writes {
            apply(&db, &mut model, w);
        }
        let snapshot = db.snapshot();
        let mut cursor = db.cursor();
        let mut at_snapshot = snapshot.cursor();
        // Writes after the cursors were made are not seen by them.
        let mut newer = model.clone();
        for w in &later {
            apply(&db, &mut newer, w);
        }
        run_moves(&mut cursor, &model, &moves);
        run_moves(&mut at_snapshot, &model, &moves);
        // A new cursor sees them. Dropped first, the two cursors leave
        // their stacks to the next cursors over the same view (when no
        // memtable switch or flush came between): one reused at the newest
        // seqno must see the later writes, one reused by the snapshot none.
        drop((cursor, at_snapshot));
        run_moves(&mut db.cursor(), &newer, &moves);
        run_moves(&mut snapshot.cursor(), &model, &moves);
        run_moves(&mut db.cursor(), &newer, &moves);
        db.close().unwrap();
    }
}

#[test]
fn a_cursor_reports_a_closed_database_and_misuse() {
    let fs = Arc::new(MemFs::new());
    let db = open(&fs);
    db.put("a", "1").unwrap();
    let mut cursor = db.cursor();
    assert!(!cursor.valid());
    assert!(matches!(cursor.next(), Err(Error::InvalidArgument(_))));
    cursor.seek("a").unwrap();
    assert_eq!((cursor.key(), cursor.value()), (&b"a"[..], &b"1"[..]));
    cursor.next().unwrap();
    assert!(!cursor.valid());
    assert!(matches!(cursor.prev(), Err(Error::InvalidArgument(_))));
    db.close().unwrap();
    assert!(matches!(cursor.seek_to_first(), Err(Error::Closed)));
    assert!(!cursor.valid() && cursor.key().is_empty());
    assert!(matches!(db.cursor().seek("a"), Err(Error::Closed)));
}

#[test]
fn a_keyspace_cursor_sees_only_its_keyspace_and_fails_once_dropped() {
    let fs = Arc::new(MemFs::new());
    let db = open(&fs);
    let ks = db.keyspace("other", KeyspaceOptions::default()).unwrap();
    db.put("a", "default").unwrap();
    ks.put("b", "other").unwrap();
    let mut cursor = ks.cursor();
    cursor.seek_to_first().unwrap();
    assert_eq!(cursor.key(), b"b");
    cursor.next().unwrap();
    assert!(!cursor.valid());
    let snapshot = db.snapshot();
    ks.put("c", "later").unwrap();
    let mut old = snapshot.cursor_in(&ks);
    old.seek_to_last().unwrap();
    assert_eq!(old.key(), b"b");
    drop(old);
    drop(cursor);
    db.drop_keyspace("other").unwrap();
    assert!(matches!(
        ks.cursor().seek_to_first(),
        Err(Error::InvalidArgument(_))
    ));
    db.close().unwrap();
}

#[test]
fn a_reused_cursor_stack_sees_what_the_memtable_took_since() {
    let fs = Arc::new(MemFs::new());
    let db = open(&fs);
    for k in 0..100 {
        db.put(key(k), b"table").unwrap();
    }
    db.flush().unwrap();
    db.put(key(1), b"old").unwrap();
    // Left behind by this cursor: a stack whose memtable held seqnos up to
    // the put of key 1, and no block pinned.
    let mut cursor = db.cursor();
    cursor.seek_to_first().unwrap();
    assert_eq!(cursor.key(), key(0));
    assert!(db.stats().pinned_block_bytes > 0);
    drop(cursor);
    assert_eq!(db.stats().pinned_block_bytes, 0);
    // A range delete over key 1 and the tables' keys, then a put inside
    // it: the next cursor, on the same view, must not skip the new entry
    // with the deleted ones (as it would if the memtable's largest seqno
    // were still the one its stack was built with).
    db.delete_range(key(0)..key(90)).unwrap();
    db.put(key(5), b"new").unwrap();
    let mut cursor = db.cursor();
    cursor.seek_to_first().unwrap();
    assert_eq!((cursor.key(), cursor.value()), (&key(5)[..], &b"new"[..]));
    cursor.next().unwrap();
    assert_eq!(cursor.key(), key(90));
    drop(cursor);
    // Backward over the same span, and after the memtable took more.
    db.put(key(6), b"newer").unwrap();
    let mut cursor = db.cursor();
    cursor.seek_for_prev(key(89)).unwrap();
    assert_eq!((cursor.key(), cursor.value()), (&key(6)[..], &b"newer"[..]));
    cursor.prev().unwrap();
    assert_eq!(cursor.key(), key(5));
    cursor.prev().unwrap();
    assert!(!cursor.valid());
    drop(cursor);
    db.close().unwrap();
}

#[test]
fn a_cursor_that_meets_damage_is_invalid_until_positioned_again() {
    let fs = Arc::new(MemFs::new());
    let db = open(&fs);
    for k in 0..200 {
        db.put(key(k), [b'v'; 20]).unwrap();
    }
    db.flush().unwrap();
    db.close().unwrap();
    let table = fs
        .file_names()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .max_by_key(|p| fs.read_file(p).map_or(0, |b| b.len()))
        .expect("a table");
    let size = fs.read_file(&table).unwrap().len() as u64;
    // A byte a third of the way in: inside a data block, not the first.
    fs.corrupt(&table, size / 3, 0xFF).unwrap();
    let db = open(&fs);
    let mut cursor = db.cursor();
    cursor.seek_to_first().unwrap();
    assert_eq!(cursor.key(), key(0));
    let error = loop {
        match cursor.next() {
            Ok(()) => assert!(cursor.valid(), "the scan ended before the damage"),
            Err(e) => break e,
        }
    };
    assert!(matches!(error, Error::Corruption { .. }), "{error:?}");
    assert!(!cursor.valid());
    assert!(cursor.key().is_empty() && cursor.value().is_empty());
    assert!(matches!(cursor.next(), Err(Error::InvalidArgument(_))));
    cursor.seek(key(0)).unwrap();
    assert!(cursor.valid());
    assert_eq!(
        (cursor.key(), cursor.value()),
        (&key(0)[..], &[b'v'; 20][..])
    );
    drop(cursor);
    db.close().unwrap();
}

/// Every key from `"00000000"` up to the one before the cursor ends, one
/// each, in order (the writer puts them in that order): the count.
fn unbroken_run(cursor: &mut DbCursor) -> usize {
    cursor.seek_to_first().unwrap();
    let mut n = 0;
    while cursor.valid() {
        assert_eq!(cursor.key(), format!("{n:08}").as_bytes(), "a gap");
        assert_eq!(cursor.value().len(), n % 50, "value of key {n}");
        n += 1;
        cursor.next().unwrap();
    }
    n
}

#[test]
fn cursors_made_on_many_threads_each_see_one_whole_view() {
    // One writer puts keys 0, 1, 2, ... in order, flushing now and then
    // (new super versions); three readers make cursors, snapshots and
    // snapshot cursors without pause, so stacks pass between cursors and
    // threads through the super versions' pools. Each cursor must see an
    // unbroken run of the keys, and every cursor of one snapshot the same.
    const KEYS: usize = 6000;
    let fs = Arc::new(MemFs::new());
    let db = open(&fs);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (db, done) = (db.clone(), done.clone());
            std::thread::spawn(move || {
                let mut views = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let snapshot = db.snapshot();
                    let at_snapshot = unbroken_run(&mut snapshot.cursor());
                    let now = unbroken_run(&mut db.cursor());
                    assert!(now >= at_snapshot, "{now} < {at_snapshot}");
                    assert_eq!(unbroken_run(&mut snapshot.cursor()), at_snapshot);
                    views += 1;
                }
                views
            })
        })
        .collect();
    for n in 0..KEYS {
        db.put(format!("{n:08}"), vec![b'v'; n % 50]).unwrap();
        if n % 1500 == 1499 {
            db.flush().unwrap();
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    assert_eq!(unbroken_run(&mut db.cursor()), KEYS);
    db.close().unwrap();
}
