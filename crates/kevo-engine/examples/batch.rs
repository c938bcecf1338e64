//! Atomic batches and synced writes.
//!
//! Run with `cargo run -p kevo-engine --example batch`.

use kevo_engine::{Db, Options, Result, SyncMode, WriteBatch, WriteOptions};

fn main() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| kevo_engine::Error::Io {
        context: "creating a temporary directory".to_string(),
        source: e,
    })?;
    // The WAL is not synced on every write; the writes that must survive a
    // crash say so.
    let db = Db::open_with(dir.path(), Options::default().sync_mode(SyncMode::None))?;

    db.put("account/alice", 100u64.to_be_bytes())?;
    db.put("account/bob", 50u64.to_be_bytes())?;

    // Move 30 from alice to bob: both writes or neither, even after a crash.
    let mut transfer = WriteBatch::new();
    transfer.put("account/alice", 70u64.to_be_bytes());
    transfer.put("account/bob", 80u64.to_be_bytes());
    transfer.put("log/0001", "alice -> bob: 30");
    db.write_with(transfer, &WriteOptions { sync: true })?; // durable on return

    let balance = |key: &str| -> Result<u64> {
        let value = db.get(key)?.unwrap_or_default();
        let bytes: [u8; 8] = value.as_ref().try_into().unwrap_or([0; 8]);
        Ok(u64::from_be_bytes(bytes))
    };
    assert_eq!(balance("account/alice")? + balance("account/bob")?, 150);
    println!(
        "alice {}, bob {}",
        balance("account/alice")?,
        balance("account/bob")?
    );

    // Oversized keys are refused, and nothing of their batch is applied.
    let mut bad = WriteBatch::new();
    bad.put("fine", "value");
    bad.put(vec![b'k'; kevo_engine::KEY_BYTES_MAX + 1], "value");
    assert!(matches!(
        db.write(bad),
        Err(kevo_engine::Error::InvalidArgument(_))
    ));
    assert_eq!(db.get("fine")?, None);
    db.close()
}
