//! One writer inserting while readers scan and look up, as the engine uses
//! a memtable: every reader sees a sorted view, only values that were
//! written for their key and seqno, and at least everything published
//! before it started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering as CmpOrdering;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kevo_core::{Cursor, SeqNo, ValueKind, compare_internal_keys, parse_internal_key};
use kevo_memtable::{Lookup, MemTable};

const ENTRIES: SeqNo = 30_000;
const KEYS: u64 = 997;
const READERS: usize = 3;
/// The writer pauses every this many inserts until some reader finishes a
/// scan, so scans overlap the inserts even on a busy machine.
const CHECKPOINT_EVERY: SeqNo = 1_000;

/// The writer's schedule: seqno `s` (from 1) writes this key index...
fn key_index(seqno: SeqNo) -> u64 {
    (seqno * 7919) % KEYS
}

fn user_key(index: u64) -> Vec<u8> {
    format!("key-{index:05}").into_bytes()
}

/// ...with this kind (every seventh write is a delete)...
fn kind(seqno: SeqNo) -> ValueKind {
    if seqno.is_multiple_of(7) {
        ValueKind::Delete
    } else {
        ValueKind::Put
    }
}

/// ...and this value, derived from key and seqno so readers can check it.
fn value(user_key: &[u8], seqno: SeqNo) -> Vec<u8> {
    let mut value = user_key.to_vec();
    value.extend_from_slice(format!("@{seqno}:").as_bytes());
    // Vary the length too.
    value.resize(value.len() + (seqno % 13) as usize, b'v');
    value
}

/// What `get(key, snapshot)` must answer once every seqno up to `snapshot`
/// is inserted.
fn expected_get(index: u64, snapshot: SeqNo) -> Lookup {
    let newest = (1..=snapshot).rev().find(|&s| key_index(s) == index);
    match newest {
        None => Lookup::Absent,
        Some(s) if kind(s) == ValueKind::Delete => Lookup::Deleted,
        Some(s) => Lookup::Found(value(&user_key(index), s).into()),
    }
}

/// Checks one entry a cursor stands on against the writer's schedule.
fn check_entry(cursor: &impl Cursor) {
    let parsed = parse_internal_key(cursor.key()).unwrap();
    assert!((1..=ENTRIES).contains(&parsed.seqno));
    assert_eq!(parsed.user_key, user_key(key_index(parsed.seqno)));
    assert_eq!(parsed.kind, kind(parsed.seqno));
    let want = match parsed.kind {
        ValueKind::Put => value(parsed.user_key, parsed.seqno),
        ValueKind::Delete => Vec::new(),
    };
    assert_eq!(cursor.value(), want, "value of seqno {}", parsed.seqno);
}

/// Scans the whole table in one direction; returns the entries seen.
fn scan(table: &Arc<MemTable>, forward: bool) -> u64 {
    let mut cursor = table.cursor();
    let mut last: Option<Vec<u8>> = None;
    let mut seen = 0;
    if forward {
        cursor.seek_to_first().unwrap();
    } else {
        cursor.seek_to_last().unwrap();
    }
    while cursor.valid() {
        check_entry(&cursor);
        if let Some(last) = &last {
            let want = if forward {
                CmpOrdering::Less
            } else {
                CmpOrdering::Greater
            };
            assert_eq!(
                compare_internal_keys(last, cursor.key()),
                want,
                "scan out of order"
            );
        }
        last = Some(cursor.key().to_vec());
        seen += 1;
        if forward {
            cursor.next().unwrap();
        } else {
            cursor.prev().unwrap();
        }
    }
    seen
}

#[test]
fn readers_see_a_sorted_consistent_view_while_one_writer_inserts() {
    let table = Arc::new(MemTable::new());
    // The highest seqno whose entry (and every one below it) is inserted.
    let published = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let scans = Arc::new(AtomicU64::new(0));

    let readers: Vec<_> = (0..READERS)
        .map(|reader| {
            let table = Arc::clone(&table);
            let published = Arc::clone(&published);
            let done = Arc::clone(&done);
            let scans = Arc::clone(&scans);
            thread::spawn(move || {
                let mut rounds = 0u64;
                let mut probe = reader as u64;
                while !done.load(Ordering::Acquire) || rounds < 2 {
                    let before = published.load(Ordering::Acquire);
                    let forward = rounds.is_multiple_of(2);
                    let seen = scan(&table, forward);
                    assert!(
                        seen >= before,
                        "scan saw {seen} entries, {before} were published before it began"
                    );
                    scans.fetch_add(1, Ordering::Release);
                    // Point lookups at the published snapshot.
                    for _ in 0..200 {
                        probe = (probe * 31 + 17) % KEYS;
                        let snapshot = published.load(Ordering::Acquire);
                        assert_eq!(
                            table.get(&user_key(probe), snapshot),
                            expected_get(probe, snapshot),
                            "get(key {probe}, {snapshot})"
                        );
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();

    for seqno in 1..=ENTRIES {
        let key = user_key(key_index(seqno));
        table.insert(&key, seqno, kind(seqno), &value(&key, seqno));
        published.store(seqno, Ordering::Release);
        if seqno.is_multiple_of(CHECKPOINT_EVERY) {
            // Wait for a scan that ran (at least partly) after this point.
            let target = scans.load(Ordering::Acquire) + 2;
            let deadline = Instant::now() + Duration::from_secs(10);
            while scans.load(Ordering::Acquire) < target && Instant::now() < deadline {
                thread::yield_now();
            }
        }
    }
    done.store(true, Ordering::Release);

    for reader in readers {
        let rounds = reader.join().unwrap();
        assert!(rounds >= 2);
    }
    assert_eq!(table.len() as u64, ENTRIES);
    assert_eq!(scan(&table, true), ENTRIES);
    assert_eq!(scan(&table, false), ENTRIES);
}
