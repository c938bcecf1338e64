//! The write-ahead log of the kevo storage engine.
//!
//! Every batch of writes is appended here before it is applied in memory,
//! so that a crash loses nothing that was acknowledged as durable. The crate
//! can be used alone as a crash-safe, checksummed record log.
//!
//! - [`Batch`]: puts and deletes with a first sequence number, replayed
//!   all-or-nothing; each entry belongs to a keyspace ([`Batch::put_in`]),
//!   and all keyspaces share the one seqno sequence.
//! - [`Wal`]: appends batches to numbered segment files, syncs them as the
//!   [`SyncMode`] says (appenders that arrive during a sync share the
//!   next one), rotates and
//!   recycles segments. After a failed write or sync it refuses all further
//!   work ([`Error::Poisoned`]).
//! - [`log`]: the same framing as a standalone record log over one file
//!   ([`log::LogWriter`], [`log::LogReader`]), with the caller's magic; the
//!   manifest is written with it.
//! - [`Replay`]: reads every intact batch back in order under a
//!   [`RecoveryMode`], trimming a torn tail or reporting damage as
//!   [`Error::Corruption`] with the segment and offset.
//!
//! The byte format is specified in `docs/format/wal.md`; what each sync mode
//! promises is in `docs/durability.md`.
//!
//! ```
//! use std::sync::Arc;
//! use kevo_core::MemFs;
//! use kevo_wal::{Batch, Wal, WalOptions};
//!
//! # fn main() -> Result<(), kevo_wal::Error> {
//! let fs = Arc::new(MemFs::new());
//! let dir = std::path::Path::new("/db");
//! let (wal, _report) = Wal::open(fs.clone(), dir, WalOptions::default())?.finish()?;
//! let mut batch = Batch::new();
//! batch.set_seqno(1);
//! batch.put(b"key", b"value");
//! wal.append(&batch)?; // durable on return under SyncMode::Always
//! drop(wal);
//!
//! let mut recovery = Wal::open(fs, dir, WalOptions::default())?;
//! let replayed = recovery.next().expect("one batch")?;
//! assert_eq!(replayed.batch, batch);
//! # Ok(())
//! # }
//! ```

mod batch;
mod error;
mod format;
pub mod log;
mod reader;
mod record;
mod replay;
mod wal;

pub use batch::{BATCH_HEADER_BYTES, Batch, BatchEntry, BatchIter, EntryKind};
pub use error::{Error, Result};
pub use format::{
    BATCH_BYTES_MAX, BLOCK_BYTES, FORMAT_VERSION, FORMAT_VERSION_MIN, FRAGMENT_HEADER_BYTES,
    FREE_SUFFIX, PREDECESSOR_FRAGMENT_BYTES, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC,
    parse_free_file_name, parse_segment_file_name, segment_file_name,
};
pub use replay::{RecoveryMode, RecoveryPlan, Replay, ReplayReport, ReplayedBatch, SkippedRange};
pub use wal::{
    Recovery, SegmentListener, SyncMode, WAL_LOCK_FILE, Wal, WalOptions, WalPosition, WalStats,
};
