//! Serializable transactions: read-your-writes, conflicts, and the retrying
//! `Db::transaction`.
//!
//! Run with `cargo run -p kevo-engine --example transaction`.

use std::thread;

use kevo_engine::{Db, Error, Result};

fn balance(value: Option<bytes::Bytes>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Io {
        context: "creating a temporary directory".to_string(),
        source: e,
    })?;
    let db = Db::open(dir.path())?;
    db.put("alice", "100")?;
    db.put("bob", "100")?;

    // A transaction sees its own writes before it commits; nobody else does.
    let mut tx = db.begin();
    tx.put("carol", "0")?;
    assert_eq!(tx.get("carol")?.as_deref(), Some(&b"0"[..]));
    assert_eq!(db.get("carol")?, None);
    tx.commit()?;

    // Two transactions read the same balance and both write it: the second
    // commit loses with Error::Conflict instead of silently overwriting.
    let mut first = db.begin();
    let mut second = db.begin();
    let a = balance(first.get("alice")?);
    let b = balance(second.get("alice")?);
    first.put("alice", (a - 10).to_string())?;
    second.put("alice", (b - 20).to_string())?;
    first.commit()?;
    match second.commit() {
        Err(Error::Conflict(conflict)) => println!("second transaction lost: {conflict}"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // db.transaction retries the closure on conflict: 4 threads moving money
    // between three accounts never create or destroy any.
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let db = db.clone();
            thread::spawn(move || -> Result<()> {
                let accounts = ["alice", "bob", "carol"];
                for i in 0..250u64 {
                    let from = accounts[((t + i) % 3) as usize];
                    let to = accounts[((t + i + 1) % 3) as usize];
                    db.transaction(|tx| {
                        let f = balance(tx.get(from)?);
                        let moved = f.min(3);
                        let d = balance(tx.get(to)?);
                        tx.put(from, (f - moved).to_string())?;
                        tx.put(to, (d + moved).to_string())?;
                        Ok(())
                    })?;
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| Error::Closed)??;
    }
    let snapshot = db.begin_read();
    let total: u64 = ["alice", "bob", "carol"]
        .iter()
        .map(|k| snapshot.get(k).map(balance))
        .sum::<Result<u64>>()?;
    println!("total after 1000 transfers: {total}");
    assert_eq!(total, 190);
    db.close()
}
