//! Snapshots: a consistent view while writes and flushes go on.
//!
//! Run with `cargo run -p kevo-engine --example snapshot`.

use std::thread;

use kevo_engine::{Db, Options, Result};

fn main() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| kevo_engine::Error::Io {
        context: "creating a temporary directory".to_string(),
        source: e,
    })?;
    let db = Db::open_with(dir.path(), Options::default().memtable_bytes(256 << 10))?;
    for i in 0..1000u32 {
        db.put(format!("key{i:04}"), "v1")?;
    }
    let snapshot = db.snapshot();

    // Overwrite and delete in another thread while the snapshot is held;
    // the small memtable makes these writes flush to tables.
    let writer = {
        let db = db.clone();
        thread::spawn(move || -> Result<()> {
            for i in 0..1000u32 {
                db.put(format!("key{i:04}"), "v2")?;
                if i % 2 == 0 {
                    db.delete(format!("key{i:04}"))?;
                }
            }
            db.flush()
        })
    };
    writer.join().map_err(|_| kevo_engine::Error::Closed)??;

    // The snapshot still sees the first version of every key...
    let old: Vec<_> = snapshot.range::<&str, _>(..).collect::<Result<_>>()?;
    assert_eq!(old.len(), 1000);
    assert!(old.iter().all(|(_, v)| v == "v1"));
    // ...while the database shows the new state.
    assert_eq!(db.range::<&str, _>(..).count(), 500);
    println!(
        "snapshot at seqno {} saw {} keys; now {} keys",
        snapshot.seqno(),
        old.len(),
        500
    );

    // A snapshot can move to another thread and outlive the handle.
    drop(db);
    let reader = thread::spawn(move || snapshot.get("key0000"));
    let value = reader.join().map_err(|_| kevo_engine::Error::Closed)??;
    assert_eq!(value.as_deref(), Some(&b"v1"[..]));
    Ok(())
}
