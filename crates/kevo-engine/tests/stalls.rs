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
