//! Write stalls: when immutable memtables pile up faster than they flush,
//! writers wait; they never fail for it, and nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::thread;

use kevo_engine::{Db, Options, SyncMode};

#[test]
fn writers_wait_for_flushes_and_never_fail() {
    // On the real file system, where a flush costs fsyncs. The smallest memtable and one immutable slot: four writers fill
    // memtables much faster than one thread flushes them.
    let options = Options::default()
        .memtable_bytes(64 * 1024)
        .max_immutable_memtables(1)
        .background_threads(1)
        .sync_mode(SyncMode::None);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open_with(dir.path(), options.clone()).expect("open");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            thread::spawn(move || {
                for i in 0..3000u32 {
                    db.put(format!("w{w}-{i:05}"), vec![b'v'; 200])
                        .expect("a write never fails for a stall");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    let stats = db.stats();
    assert!(stats.flushes >= 20, "{stats}");
    assert!(
        stats.stops > 0 && !stats.stall_time.is_zero(),
        "no writer ever waited:\n{stats}"
    );
    db.close().expect("close");
    let db = Db::open_with(dir.path(), options).expect("reopen");
    assert_eq!(db.range::<&[u8], _>(..).count(), 12_000);
}

/// A memory budget sizes the memtables and the block cache, reports each
/// part, keeps them inside it while a scan holds blocks and tables come
/// and go, and slows writes down (never stops them) when memtables are at
/// their share.
#[test]
fn a_memory_budget_bounds_memtables_cache_and_metadata() {
    use kevo_engine::Options;
    let budget = 8 << 20;
    let options = Options::default()
        .memory_budget_bytes(budget)
        .sync_mode(kevo_engine::SyncMode::None);
    let db =
        kevo_engine::Db::open_with_fs(std::sync::Arc::new(kevo_core::MemFs::new()), "/db", options)
            .unwrap();
    let stats = db.stats();
    assert_eq!(stats.memory_budget_bytes, budget as u64);
    assert_eq!(stats.block_cache_capacity, (budget - budget / 4) as u64);
    let value = vec![7u8; 200];
    for i in 0..60_000u32 {
        db.put(format!("key{i:08}"), &value).unwrap();
        if i % 10_000 == 0 {
            let s = db.stats();
            assert!(s.memory_bytes() <= budget as u64, "{s}");
        }
    }
    db.flush().unwrap();
    db.wait_for_compactions().unwrap();
    // Reads fill the cache; a cursor holds a block while it is open.
    for i in (0..60_000u32).step_by(7) {
        assert!(db.get(format!("key{i:08}")).unwrap().is_some());
    }
    let mut cursor = db.cursor();
    cursor.seek("key00030000").unwrap();
    let s = db.stats();
    assert!(s.pinned_block_bytes > 0, "{s}");
    assert!(s.table_metadata_bytes > 0, "{s}");
    assert!(s.block_cache_bytes > 0, "{s}");
    assert!(
        s.block_cache_capacity + s.table_metadata_bytes <= (budget - budget / 4) as u64,
        "{s}"
    );
    assert!(s.memory_bytes() <= budget as u64, "{s}");
    assert_eq!(s.stops, 0, "writes slowed down, never stopped: {s}");
    drop(cursor);
    assert_eq!(db.stats().pinned_block_bytes, 0);
    assert!(db.stats().to_string().contains("of a 8.0 MiB budget"));
    db.close().unwrap();
}
