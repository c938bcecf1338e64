//! The kevo storage engine: an embeddable, crash-safe LSM-tree key-value
//! store. Depend on this crate for the whole database.
//!
//! [`Db`] is a thin facade: it owns the threads, the write queue and the
//! order in which the lower crates are called; the formats and algorithms
//! live in `kevo-wal` (the log), `kevo-memtable`, `kevo-sstable` (tables),
//! `kevo-iter` (merging and visibility) and `kevo-manifest` (which files
//! are live).
//!
//! ```
//! use kevo_engine::{Db, Options, WriteBatch, WriteOptions};
//!
//! # fn main() -> kevo_engine::Result<()> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let db = Db::open_with(dir.path(), Options::default().memtable_bytes(1 << 20))?;
//! db.put("apple", "red")?;
//! let mut batch = WriteBatch::new();
//! batch.put("banana", "yellow");
//! batch.delete("apple");
//! db.write_with(batch, &WriteOptions { sync: true })?; // on disk when it returns
//!
//! let snapshot = db.snapshot();
//! db.put("cherry", "dark")?;
//! assert_eq!(snapshot.get("cherry")?, None);
//! for item in db.range::<&str, _>(..).rev() {
//!     let (key, value) = item?;
//!     println!("{key:?} = {value:?}");
//! }
//! db.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! - **Writes** go through one queue: a group leader appends every waiting
//!   batch to the WAL as one record, syncs as [`Options::sync_mode`] or
//!   [`WriteOptions::sync`] asks, applies them to the memtable and makes
//!   them visible. A batch is all-or-nothing, also after a crash.
//! - **Flushes**: a full memtable becomes immutable and a background thread
//!   writes it to an L0 table, records it in the manifest and retires the
//!   WAL segments it no longer needs. Writers slow down, then wait, when
//!   immutable memtables pile up; they never fail for it.
//! - **Reads** ([`Db::get`], [`Db::range`], [`Db::prefix`], [`Snapshot`])
//!   look newest first and never wait for writers.
//! - **Failures**: a failed background flush, manifest or WAL write makes
//!   the database read-only ([`Error::ReadOnly`] carries the cause); nothing
//!   acknowledged is lost. [`Db::resume`] makes it writable again (after a
//!   full disk it does so by itself); reopening recovers too.
//! - **Damage**: open reads and checks everything before it changes a file,
//!   and refuses damage ([`Error::Corruption`] naming the file) instead of
//!   deleting what it cannot explain; [`repair`] rebuilds such a database
//!   from the tables and the WAL, moving what it does not use to `lost/`.
//! - **Copies**: [`Db::checkpoint`] makes a directory that opens as its own
//!   database at one seqno (tables hard-linked), and [`Backup`] keeps
//!   incremental backups that share tables, with verify and restore; both
//!   while writes go on (`docs/operations.md`).
//!
//! What survives a crash under each sync mode is in `docs/durability.md`;
//! the map of the code in `docs/architecture.md`.

mod backup;
mod batch;
mod checkpoint;
mod commit;
mod compact;
mod cursor;
mod db;
mod engine;
mod error;
mod files;
mod flush;
mod install;
mod iter;
mod jobs;
mod keyspace;
mod keyspace_handle;
mod lifecycle;
mod open;
mod options;
mod read;
mod recover;
mod repair;
mod resume;
mod retention;
mod schedule;
mod snapshot;
mod span;
mod stats;
mod sync;
mod tables;
mod txn;
mod write;

pub use backup::{BACKUP_META_VERSION, Backup, BackupFile, BackupId, BackupInfo};
pub use batch::WriteBatch;
pub use checkpoint::{CheckpointInfo, CheckpointOptions};
pub use cursor::DbCursor;
pub use db::Db;
pub use error::{BusyReason, Conflict, ConflictReason, Error, Result};
pub use files::{LOCK_FILE, OPTIONS_FILE_PREFIX};
pub use iter::DbIter;
pub use kevo_core::{KEY_BYTES_MAX, VALUE_BYTES_MAX};
pub use kevo_sstable::Compression;
pub use kevo_wal::{BATCH_BYTES_MAX, RecoveryMode, SyncMode};
pub use keyspace_handle::Keyspace;
pub use options::{
    CompactionStyle, KeyspaceOptions, MEMTABLE_BYTES_MAX, MEMTABLE_BYTES_MIN, Options, WriteOptions,
};
pub use repair::{LOST_DIR, MovedFile, RepairReport, Unreadable, repair, repair_with_fs};
pub use snapshot::Snapshot;
pub use stats::{KeyspaceStats, LevelCompactionStats, LevelStats, Stats, TableFile};
pub use txn::{TRANSACTION_ATTEMPTS_MAX, Transaction, TxnIter};

#[cfg(test)]
mod tests {
    /// The handles the public API promises can move across threads.
    #[test]
    fn public_handles_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<crate::Db>();
        send_sync::<crate::Snapshot>();
        send::<crate::DbIter>();
        send_sync::<crate::Error>();
        send_sync::<crate::WriteBatch>();
        send_sync::<crate::Transaction>();
        send::<crate::TxnIter>();
    }
}
