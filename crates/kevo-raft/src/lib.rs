//! openraft's storage on kevo: a Raft log store ([`LogStore`], openraft's
//! `RaftLogStorage`) and a key-value state machine ([`StateMachine`],
//! `RaftStateMachine`) kept in kevo databases, so that a service grows past
//! one machine by putting a proven consensus engine over a crash-safe
//! storage engine (as TiKV does with RocksDB and CockroachDB with Pebble).
//!
//! ```no_run
//! # async fn example(
//! #     network: impl openraft::RaftNetworkFactory<kevo_raft::TypeConfig>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let (log_store, state_machine) = kevo_raft::open("/var/lib/node-1")?;
//! let config = Arc::new(openraft::Config::default().validate()?);
//! let raft = openraft::Raft::<kevo_raft::TypeConfig>::new(
//!     1, config, network, log_store, state_machine.clone(),
//! ).await?;
//! let put = kevo_raft::Request::Put { key: b"k".to_vec(), value: b"v".to_vec() };
//! raft.client_write(put).await?;           // replicated to a quorum, then applied
//! raft.ensure_linearizable().await?;       // a read: the leader's read index
//! assert_eq!(state_machine.get(b"k")?, Some(b"v".to_vec()));
//! # Ok(()) }
//! ```
//!
//! A node's directory holds:
//!
//! | path | what |
//! |---|---|
//! | `log/` | a kevo database: keyspace `raft_log` (entries under big-endian indexes), keyspace `raft_meta` (vote, committed, last purged) |
//! | `sm-<generation>/` | a kevo database: keyspace `kv` (the user's data), keyspace `sm_meta` (last applied log id, membership) |
//! | `SM_CURRENT` | names the live state-machine generation; replacing it (write, sync, rename) is the commit point of a snapshot install |
//! | `snapshots/current.snap` | the newest snapshot: a checkpoint of a state-machine database packed into one archive (`docs/format/raft-snapshot.md`) |
//!
//! What is synced when (openraft's contract, kept exactly): an append is
//! reported flushed only after one WAL sync covering it (appends are
//! written unsynced and a syncer thread acknowledges every append waiting
//! with one shared fsync: group commit); a vote, a truncate and a purge are
//! each one synced atomic batch before they return. The state machine is
//! not synced per apply: a crash may take it back to an earlier applied
//! log id (never a torn batch), and openraft applies the committed log
//! again; a snapshot flushes it first, so the log is never purged past what
//! the state machine holds durably. See `docs/raft.md`.
//!
//! Feature `raft` (on by default) holds everything above. Without it the
//! crate is only [`archive`] (the snapshot file format) and [`Error`],
//! built without openraft and tokio: what the fuzz target reads.

pub mod archive;
mod error;
#[cfg(feature = "raft")]
mod log_store;
#[cfg(feature = "raft")]
mod service;
#[cfg(feature = "raft")]
mod state_machine;

pub use error::{Error, Result};
#[cfg(feature = "raft")]
pub use log_store::{LogReader, LogStore};
#[cfg(feature = "raft")]
pub use service::{
    REQUEST_KEY_BYTES_MAX, REQUEST_VALUE_BYTES_MAX, Request, Response, TypeConfig, open, open_with,
};
#[cfg(feature = "raft")]
pub use state_machine::{InstallStep, SnapshotBuilder, StateMachine};
