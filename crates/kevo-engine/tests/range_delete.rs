//! Range deletion through the whole engine: `delete_range` and
//! `delete_prefix` on the database, keyspaces, batches and transactions;
//! reads in both directions, snapshots, flushes, compactions, reopens and
//! crashes; the space that comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;

use bytes::Bytes;
use kevo_core::MemFs;
use kevo_engine::{Db, Error, KeyspaceOptions, Options, SyncMode, WriteBatch, WriteOptions};

const DIR: &str = "/db";

fn open(mem: &MemFs, options: Options) -> Db {
    Db::open_with_fs(Arc::new(mem.clone()), DIR, options).unwrap()
}

fn small() -> Options {
    Options::default()
        .memtable_bytes(64 << 10)
        .target_file_bytes(64 << 10)
        .base_level_bytes(256 << 10)
        .l0_compaction_trigger(2)
        .block_bytes(512)
}

fn key(i: u32) -> String {
    format!("k{i:05}")
}

fn keys(db: &Db) -> Vec<String> {
    db.range::<&[u8], _>(..)
        .map(|item| String::from_utf8(item.unwrap().0.to_vec()).unwrap())
        .collect()
}

fn keys_rev(db: &Db) -> Vec<String> {
    db.range::<&[u8], _>(..)
        .rev()
        .map(|item| String::from_utf8(item.unwrap().0.to_vec()).unwrap())
        .collect()
}

/// A value of `i` that LZ4 cannot shrink much (table sizes matter here).
fn value(i: u32) -> String {
    let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = format!("value-{i}-");
    for _ in 0..5 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out
}

fn fill(db: &Db, n: u32) {
    for i in 0..n {
        db.put(key(i), value(i)).unwrap();
    }
}

/// The keys `0..n` but `deleted`.
fn expect(n: u32, deleted: impl Fn(u32) -> bool) -> Vec<String> {
    (0..n).filter(|&i| !deleted(i)).map(key).collect()
}

#[test]
fn a_range_delete_hides_its_keys_everywhere_they_live() {
    let mem = MemFs::new();
    let db = open(&mem, small());
    fill(&db, 3000);
    db.flush().unwrap();
    db.compact_range::<&[u8], _>(..).unwrap();
    // Some versions in tables, newer ones in the memtable.
    for i in (0..3000).step_by(7) {
        db.put(key(i), "newer").unwrap();
    }
    let snapshot = db.snapshot();
    db.delete_range(key(1000)..key(2000)).unwrap();
    let want = expect(3000, |i| (1000..2000).contains(&i));
    assert_eq!(keys(&db), want);
    let mut back = want.clone();
    back.reverse();
    assert_eq!(keys_rev(&db), back);
    assert_eq!(db.get(key(1500)).unwrap(), None);
    assert_eq!(
        db.get(key(1001)).unwrap(),
        None,
        "a newer version, deleted too"
    );
    assert!(db.get(key(999)).unwrap().is_some());
    assert!(db.get(key(2000)).unwrap().is_some(), "the end is exclusive");
    // The snapshot from before sees everything.
    assert_eq!(
        snapshot.get(key(1500)).unwrap().as_deref(),
        Some(value(1500).as_bytes())
    );
    assert_eq!(snapshot.range::<&[u8], _>(..).count(), 3000);
    // A put after the delete is visible.
    db.put(key(1500), "after").unwrap();
    assert_eq!(db.get(key(1500)).unwrap().as_deref(), Some(&b"after"[..]));
    let want = expect(3000, |i| (1000..2000).contains(&i) && i != 1500);
    assert_eq!(keys(&db), want);
    // The same through a flush, a full compaction and a reopen.
    db.flush().unwrap();
    assert_eq!(keys(&db), want);
    assert_eq!(
        snapshot.range::<&[u8], _>(..).count(),
        3000,
        "the snapshot still sees all"
    );
    drop(snapshot);
    db.compact_range::<&[u8], _>(..).unwrap();
    assert_eq!(keys(&db), want);
    db.close().unwrap();
    let db = open(&mem, small());
    assert_eq!(keys(&db), want);
    let mut back = want.clone();
    back.reverse();
    assert_eq!(keys_rev(&db), back);
    assert_eq!(db.get(key(1234)).unwrap(), None);
}

#[test]
fn prefixes_open_ranges_and_seeks_inside_a_deleted_span() {
    let mem = MemFs::new();
    let db = open(&mem, small());
    for tenant in ["a", "b", "c"] {
        for i in 0..500u32 {
            db.put(format!("{tenant}/{i:04}"), "v").unwrap();
        }
    }
    db.flush().unwrap();
    db.delete_prefix("b/").unwrap();
    assert_eq!(db.prefix("b/").count(), 0);
    assert_eq!(db.prefix("a/").count(), 500);
    assert_eq!(db.prefix("c/").rev().count(), 500);
    // A range starting inside the deleted span.
    let first = db.range("b/0100"..).next().unwrap().unwrap().0;
    assert_eq!(first, Bytes::from("c/0000"));
    let last = db.range(.."b/0300").next_back().unwrap().unwrap().0;
    assert_eq!(last, Bytes::from("a/0499"));
    // Everything from c on, then everything.
    db.delete_range("c"..).unwrap();
    assert_eq!(db.range::<&[u8], _>(..).count(), 500);
    db.delete_range::<&[u8], _>(..).unwrap();
    assert_eq!(db.range::<&[u8], _>(..).count(), 0);
    assert_eq!(db.get("a/0000").unwrap(), None);
    db.put("a/0000", "back").unwrap();
    assert_eq!(keys(&db), vec!["a/0000".to_string()]);
    db.compact_range::<&[u8], _>(..).unwrap();
    assert_eq!(keys(&db), vec!["a/0000".to_string()]);
}

#[test]
fn a_range_delete_is_one_small_wal_record() {
    let mem = MemFs::new();
    let db = open(&mem, small());
    fill(&db, 20_000);
    let before = db.stats();
    db.delete_range(key(0)..key(20_000)).unwrap();
    let after = db.stats();
    assert_eq!(after.entries_written - before.entries_written, 1);
    let wal = after.wal_bytes_written - before.wal_bytes_written;
    assert!(wal < 100, "{wal} WAL bytes for one range delete");
    assert_eq!(db.range::<&[u8], _>(..).count(), 0);
}

#[test]
fn compaction_gives_the_space_back() {
    let mem = MemFs::new();
    let db = open(&mem, small());
    fill(&db, 20_000);
    db.compact_range::<&[u8], _>(..).unwrap();
    let full = db.stats().table_bytes();
    db.delete_range(key(0)..key(18_000)).unwrap();
    db.compact_range::<&[u8], _>(..).unwrap();
    let after = db.stats().table_bytes();
    assert!(
        after * 5 < full,
        "{after} table bytes after deleting 90% of {full}"
    );
    assert_eq!(db.range::<&[u8], _>(..).count(), 2000);
}

#[test]
fn batches_apply_their_range_deletes_in_order() {
    let mem = MemFs::new();
    let db = open(&mem, small());
    fill(&db, 100);
    let mut batch = WriteBatch::new();
    batch.put(key(10), "before: deleted by the range that follows");
    batch.delete_range(key(5)..key(15));
    batch.put(key(12), "after: kept");
    db.write_with(batch, &WriteOptions { sync: true }).unwrap();
    assert_eq!(db.get(key(10)).unwrap(), None);
    assert_eq!(
        db.get(key(12)).unwrap().as_deref(),
        Some(&b"after: kept"[..])
    );
    let want: Vec<String> = (0..100)
        .filter(|&i| !(5..15).contains(&i) || i == 12)
        .map(key)
        .collect();
    assert_eq!(keys(&db), want);
    // Synced: it survives a crash whole.
    mem.crash();
    drop(db);
    let db = open(&mem, small());
    assert_eq!(keys(&db), want);
}

#[test]
fn range_deletes_stay_in_their_keyspace() {
    let mem = MemFs::new();
    let db = open(&mem, small());
    let other = db.keyspace("other", KeyspaceOptions::default()).unwrap();
    for i in 0..200 {
        db.put(key(i), "d").unwrap();
        other.put(key(i), "o").unwrap();
    }
    other.delete_range(key(0)..key(100)).unwrap();
    let mut batch = WriteBatch::new();
    batch.delete_prefix_in(&other, "k0015");
    db.write(batch).unwrap();
    assert_eq!(db.range::<&[u8], _>(..).count(), 200);
    assert_eq!(other.range::<&[u8], _>(..).count(), 90);
    other.flush().unwrap();
    db.close().unwrap();
    let db = open(&mem, small());
    let other = db.keyspace("other", KeyspaceOptions::default()).unwrap();
    assert_eq!(db.range::<&[u8], _>(..).count(), 200);
    assert_eq!(other.range::<&[u8], _>(..).count(), 90);
    assert_eq!(other.get(key(150)).unwrap(), None);
    assert_eq!(other.get(key(200 - 1)).unwrap().as_deref(), Some(&b"o"[..]));
}

#[test]
fn transactions_see_their_range_deletes_and_conflict_over_the_range() {
    let mem = MemFs::new();
    let db = open(&mem, small());
    fill(&db, 100);
    let mut tx = db.begin();
    tx.delete_range(key(10)..key(20)).unwrap();
    assert_eq!(tx.get(key(15)).unwrap(), None);
    tx.put(key(15), "mine").unwrap();
    assert_eq!(tx.get(key(15)).unwrap().as_deref(), Some(&b"mine"[..]));
    let seen: Vec<Bytes> = tx
        .range(key(8)..key(22))
        .map(|item| item.unwrap().0)
        .collect();
    let want: Vec<Bytes> = [8, 9, 15, 20, 21]
        .into_iter()
        .map(|i| Bytes::from(key(i)))
        .collect();
    assert_eq!(seen, want);
    let back: Vec<Bytes> = tx
        .range(key(8)..key(22))
        .rev()
        .map(|item| item.unwrap().0)
        .collect();
    assert_eq!(back, want.iter().rev().cloned().collect::<Vec<_>>());
    tx.commit().unwrap();
    assert_eq!(db.get(key(12)).unwrap(), None);
    assert_eq!(db.get(key(15)).unwrap().as_deref(), Some(&b"mine"[..]));

    // A concurrent write inside the range makes the range delete conflict.
    let mut tx = db.begin();
    tx.delete_range(key(30)..key(40)).unwrap();
    db.put(key(35), "concurrent").unwrap();
    assert!(matches!(tx.commit(), Err(Error::Conflict(_))));
    assert_eq!(
        db.get(key(35)).unwrap().as_deref(),
        Some(&b"concurrent"[..])
    );

    // A transaction that read a key conflicts with a committed range delete.
    let mut reader = db.begin();
    assert!(reader.get(key(50)).unwrap().is_some());
    reader.put("elsewhere", "x").unwrap();
    db.delete_range(key(45)..key(55)).unwrap();
    assert!(matches!(reader.commit(), Err(Error::Conflict(_))));

    // A scan over a range a later range delete meets conflicts too.
    let mut scanner = db.begin();
    assert_eq!(scanner.range(key(60)..key(70)).count(), 10);
    scanner.put("elsewhere", "y").unwrap();
    db.delete_range(key(69)..key(80)).unwrap();
    assert!(matches!(scanner.commit(), Err(Error::Conflict(_))));

    // Disjoint ranges do not conflict.
    let mut apart = db.begin();
    apart.delete_range(key(90)..key(95)).unwrap();
    db.delete_range(key(0)..key(5)).unwrap();
    apart.commit().unwrap();
    assert_eq!(db.get(key(92)).unwrap(), None);
}

#[test]
fn a_range_delete_survives_a_crash_when_synced_and_never_half() {
    let mem = MemFs::new();
    let options = small().sync_mode(SyncMode::None);
    let db = open(&mem, options.clone());
    fill(&db, 1000);
    db.flush().unwrap();
    let mut batch = WriteBatch::new();
    batch.delete_range(key(100)..key(900));
    batch.put(key(500), "inside");
    db.write_with(batch, &WriteOptions { sync: true }).unwrap();
    // Unsynced: may be lost, but never half applied.
    let mut batch = WriteBatch::new();
    batch.delete_range(key(0)..key(50));
    batch.put(key(10), "ten");
    db.write(batch).unwrap();
    mem.crash();
    drop(db);
    let db = open(&mem, options);
    let got = keys(&db);
    let synced = expect(1000, |i| (100..900).contains(&i) && i != 500);
    let both = expect(1000, |i| {
        ((100..900).contains(&i) && i != 500) || (i < 50 && i != 10)
    });
    assert!(got == synced || got == both, "{} keys", got.len());
    assert_eq!(db.get(key(500)).unwrap().as_deref(), Some(&b"inside"[..]));
}

#[test]
fn keys_of_the_largest_length_are_covered_by_open_ranges() {
    let mem = MemFs::new();
    let db = open(&mem, small());
    let largest = vec![0xffu8; kevo_engine::KEY_BYTES_MAX];
    db.put(&largest, "max").unwrap();
    db.put("a", "a").unwrap();
    db.delete_range("b"..).unwrap();
    assert_eq!(db.get(&largest).unwrap(), None);
    assert_eq!(db.range::<&[u8], _>(..).count(), 1);
    db.flush().unwrap();
    db.compact_range::<&[u8], _>(..).unwrap();
    assert_eq!(db.get(&largest).unwrap(), None);
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"a"[..]));
    // A bound over the limit is refused, nothing written.
    let mut too_long = largest.clone();
    too_long.push(0);
    assert!(matches!(
        db.delete_range(too_long.clone()..),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"a"[..]));
}

#[test]
fn tables_covered_whole_are_dropped_without_reading_them() {
    let mem = MemFs::new();
    let db = open(&mem, small().l0_compaction_trigger(4));
    fill(&db, 20_000);
    db.compact_range::<&[u8], _>(..).unwrap();
    let before = db.stats();
    let tables_before = before.table_count();
    assert!(tables_before > 10, "{tables_before} tables");
    db.delete_range(key(1000)..key(19_000)).unwrap();
    db.flush().unwrap();
    // The background threads drop the covered tables: poll for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let after = loop {
        db.wait_for_compactions().unwrap();
        let stats = db.stats();
        if stats.tables_deleted_whole > 0 || std::time::Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(after.tables_deleted_whole > 0, "no table was dropped whole");
    assert!(after.bytes_deleted_whole > 0);
    // Nothing was read or written for them: what compactions wrote since
    // is the two partly covered tables at the ends of the range, carried
    // down with the tombstones (far less than what was dropped whole).
    let written = after.compaction_bytes_written - before.compaction_bytes_written;
    assert!(
        written * 4 < after.bytes_deleted_whole,
        "{written} bytes written, {} dropped whole",
        after.bytes_deleted_whole
    );
    assert!(after.table_count() < tables_before);
    let want = expect(20_000, |i| (1000..19_000).contains(&i));
    assert_eq!(keys(&db), want);
    db.close().unwrap();
    let db = open(&mem, small());
    assert_eq!(keys(&db), want);
}

#[test]
fn a_damaged_range_tombstone_block_is_corruption_never_a_resurrection() {
    let mem = MemFs::new();
    // No compaction may merge the tombstone table away before it is damaged.
    let options = small().auto_compactions(false);
    let db = open(&mem, options.clone());
    fill(&db, 500);
    db.flush().unwrap();
    let before: std::collections::BTreeSet<_> = mem
        .file_names()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .collect();
    // A table of range tombstones only.
    db.delete_range(key(0)..key(400)).unwrap();
    db.flush().unwrap();
    db.close().unwrap();
    let table = mem
        .file_names()
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "sst") && !before.contains(p))
        .unwrap();
    // Its first bytes are the range-tombstone block (no data block).
    mem.corrupt(&table, 2, 0x10).unwrap();
    let db = open(&mem, options);
    match db.get(key(10)) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, table),
        other => panic!("expected Corruption, got {other:?}"),
    }
    let scan: Result<Vec<_>, _> = db.range::<&[u8], _>(..).collect();
    assert!(
        matches!(scan, Err(Error::Corruption { .. })),
        "{:?}",
        scan.map(|v| v.len())
    );
}

#[test]
fn range_deletes_after_close_or_on_a_dropped_keyspace_write_nothing() {
    let mem = MemFs::new();
    let db = open(&mem, small());
    let ks = db.keyspace("gone", KeyspaceOptions::default()).unwrap();
    ks.put("k", "v").unwrap();
    let mut tx = db.begin();
    db.drop_keyspace("gone").unwrap();
    assert!(matches!(
        ks.delete_range("a".."z"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        tx.delete_range_in(&ks, "a".."z"),
        Err(Error::InvalidArgument(_))
    ));
    let mut batch = WriteBatch::new();
    batch.put("kept?", "no");
    batch.delete_prefix_in(&ks, "k");
    assert!(matches!(db.write(batch), Err(Error::InvalidArgument(_))));
    assert_eq!(
        db.get("kept?").unwrap(),
        None,
        "the whole batch was refused"
    );
    db.close().unwrap();
    assert!(matches!(db.delete_range("a".."z"), Err(Error::Closed)));
    assert!(matches!(db.delete_prefix("a"), Err(Error::Closed)));
}

/// A full disk while a memtable holding range tombstones is flushed: the
/// flush fails, the database turns read-only and keeps reading through the
/// tombstones; once there is room, `resume` writes the table and nothing is
/// lost or resurrected, also after a crash.
#[test]
fn a_full_disk_during_a_range_delete_flush_loses_and_resurrects_nothing() {
    use kevo_core::{FaultFs, FaultKind, FaultOp, FaultRule, FaultTrigger};
    let mem = MemFs::new();
    let fs = Arc::new(FaultFs::new(Arc::new(mem.clone())));
    let options = small().sync_mode(SyncMode::Always).background_threads(1);
    let db = Db::open_with_fs(fs.clone(), DIR, options.clone()).unwrap();
    fill(&db, 2000);
    db.flush().unwrap();
    db.delete_range(key(100)..key(900)).unwrap();
    db.delete_prefix("k015").unwrap();
    db.put(key(500), value(500)).unwrap();
    let deleted = |i: u32| ((100..900).contains(&i) && i != 500) || (1500..1600).contains(&i);
    let want = expect(2000, deleted);
    fs.add_rule(
        FaultRule::new(FaultOp::Write, FaultTrigger::Always, FaultKind::Enospc)
            .on_path_containing(".sst"),
    );
    match db.flush() {
        Err(Error::ReadOnly { cause }) => {
            assert_eq!(
                cause.io_kind(),
                Some(std::io::ErrorKind::StorageFull),
                "{cause}"
            );
        }
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    assert_eq!(keys(&db), want);
    assert!(matches!(
        db.delete_range(key(0)..key(10)),
        Err(Error::ReadOnly { .. })
    ));
    fs.clear_rules();
    db.resume().unwrap();
    db.flush().unwrap();
    assert_eq!(keys(&db), want);
    db.compact_range::<&[u8], _>(..).unwrap();
    assert_eq!(keys(&db), want);
    assert_eq!(
        keys_rev(&db),
        want.iter().rev().cloned().collect::<Vec<_>>()
    );
    db.close().unwrap();
    mem.crash();
    let db = open(&mem, options);
    assert_eq!(keys(&db), want);
    assert_eq!(
        db.get(key(500)).unwrap().as_deref(),
        Some(value(500).as_bytes())
    );
}
